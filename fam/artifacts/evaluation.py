"""What ``fam evaluate`` leaves in ``EVAL/``: ``metrics.json`` and ``metric_families.json``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, cast, get_args

from fam.artifacts._json import Fields, check_format, locate, read_json
from fam.io_utils import atomic_write_json

WRITTEN_BY = "`fam evaluate`"

Family = Literal["rate", "score", "count", "distance"]

# The closed range each family's values lie in; the ``metrics`` validation suite checks them.
FAMILY_RANGES: dict[Family, tuple[float, float]] = {
    "rate": (0.0, 1.0),  # shares and probabilities: PSR, EER, AUC, D_sys
    "score": (-1.0, 1.0),  # means of cosine similarities
    "count": (0.0, math.inf),  # numbers of images, pairs, keys, bins, pixels
    "distance": (0.0, math.inf),  # FID
}


@dataclass(frozen=True)
class Metrics:
    """``EVAL/metrics.json``: flat ``{name: number}``, sorted by name (JSON); beside it
    ``EVAL/metric_families.json``: ``{"format": ..., "families": {name: family}}``.

    ``metrics.json`` carries no format string: DVC (``dvc metrics show``) and MLflow read the
    file as it is, and a text entry would become a metric there. Each metric's family (rate,
    score, count, distance: :data:`FAMILY_RANGES`) therefore lives in its own file, written by
    the same call. Names and meanings: docs/evaluation.md. Values are not checked for range
    here; the ``metrics`` validation suite gates them.
    """

    FILENAME: ClassVar[str] = "metrics.json"
    FAMILIES_FILENAME: ClassVar[str] = "metric_families.json"
    FAMILIES_FORMAT: ClassVar[str] = "fam-metric-families/v1"

    values: dict[str, float]
    families: dict[str, Family] = field(default_factory=dict)  # empty: not recorded (older outputs)

    def __post_init__(self) -> None:
        unknown = {k: v for k, v in self.families.items() if v not in FAMILY_RANGES}
        if unknown:
            raise ValueError(f"unknown metric families {unknown}; known: {', '.join(FAMILY_RANGES)}")
        if self.families and self.families.keys() != self.values.keys():
            odd = sorted(self.families.keys() ^ self.values.keys())
            raise ValueError(f"metrics and families name different metrics: {odd}")

    # Metric prefixes a reader looks at first; the full set is in metrics.json, the report, MLflow.
    HEADLINE: ClassVar[tuple[str, ...]] = (
        "psr_anonymity_",
        "psr_unlinkability_",
        "psr_noninvert_",
        "eer_",
        "dsys_",
        "fid",
    )

    def headline(self) -> dict[str, float]:
        """The headline metrics, sorted by name: at FMR 1e-3 where a metric has an FMR."""
        return {
            k: v
            for k, v in sorted(self.values.items())
            if k.startswith(self.HEADLINE) and ("fmr" not in k or k.endswith("fmr1e-3"))
        }

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / self.FILENAME
        if self.families:
            atomic_write_json(
                Path(folder) / self.FAMILIES_FILENAME,
                {"format": self.FAMILIES_FORMAT, "families": dict(sorted(self.families.items()))},
            )
        atomic_write_json(path, {k: float(v) for k, v in sorted(self.values.items())})
        return path

    @classmethod
    def read(cls, folder_or_path: str | Path) -> Metrics:
        """``metrics.json`` and, when it exists beside it, ``metric_families.json``."""
        path = locate(folder_or_path, cls.FILENAME)
        f = Fields(read_json(path, WRITTEN_BY), path, WRITTEN_BY)
        values = {name: f.number(name) for name in f.doc}
        fam_path = path.parent / cls.FAMILIES_FILENAME
        if not fam_path.is_file():
            return cls(values)
        doc = check_format(read_json(fam_path, WRITTEN_BY), fam_path, cls.FAMILIES_FORMAT, WRITTEN_BY)
        fams = Fields(doc, fam_path, WRITTEN_BY).child("families")
        known = get_args(Family)
        families = {}
        for name in fams.doc:
            family = fams.get(name, str)
            if family not in known:
                raise fams.error(name, f"is {family!r}, not one of {', '.join(known)}")
            families[name] = cast(Family, family)
        if families.keys() != values.keys():
            raise fams.error(
                "", f"names other metrics than {path} ({sorted(families.keys() ^ values.keys())})"
            )
        return cls(values, families)
