"""Impostor statistics of identity models, which set the anonymity loss's margin.

Eq. 2 hinges on ``cos(I(x_p), I(x_r)) - m``. What cosine means "another person" depends on the
model: dlib's raw descriptors are not centred, so two different people score ~0.84 on average
at 64 px and ``m = 0`` would push every protected face far past any real other person for all
optimisation steps. ``optimise.margin: auto`` uses the mean impostor cosine of the identity model
at the generator's resolution, measured by ``benchmarks/calibrate_identity.py`` and recorded in
``fam/assets/identity_calibration.json`` (keyed ``<identity>@<resolution>``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fam.config import Params
from fam.errors import ConfigError

CALIBRATION_FILE = Path(__file__).resolve().parent / "assets" / "identity_calibration.json"


@dataclass(frozen=True)
class IdentityCalibration:
    identity: str  # models.identity name
    resolution: int  # the face size the statistics were measured at
    impostor_cos_mean: float  # mean cosine of two different people: optimise.margin auto
    impostor_cos_std: float
    impostor_cos_fmr1e3: float  # the 0.999 quantile: the verification threshold at FMR 1e-3
    genuine_cos_mean: float
    impostor_pairs: int
    genuine_pairs: int
    faces: int
    people: int
    source: str

    @property
    def key(self) -> str:
        return f"{self.identity}@{self.resolution}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def record(self, file: Path = CALIBRATION_FILE) -> None:
        from fam.io_utils import atomic_write_json

        table = json.loads(file.read_text()) if file.is_file() else {}
        table[self.key] = self.to_json()
        atomic_write_json(file, dict(sorted(table.items())))


def load_calibration(identity: str, resolution: int, file: Path = CALIBRATION_FILE) -> IdentityCalibration:
    table = json.loads(file.read_text()) if file.is_file() else {}
    entry = table.get(f"{identity}@{resolution}")
    if entry is None:
        known = ", ".join(sorted(table)) or "none"
        raise ConfigError(
            f"optimise.margin = auto, but identity model {identity!r} has no impostor calibration at "
            f"{resolution} px (known: {known}); measure it with `python -m benchmarks.calibrate_identity "
            f"--identity {identity} --resolution {resolution} --write`, or set optimise.margin to a number"
        )
    return IdentityCalibration(**entry)


def resolve_margin(params: Params, resolution: int) -> Params:
    """``params`` with ``optimise.margin: auto`` replaced by the calibrated number (others as given).

    Resolved before a run so that the manifest's digest and ``settings.json`` hold the margin
    the losses actually used.
    """
    if params.optimise.margin != "auto":
        return params
    entry = load_calibration(params.models.identity.name, resolution)
    return params.replace({"optimise.margin": entry.impostor_cos_mean})
