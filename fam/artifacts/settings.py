"""The resolved settings a run used, saved next to its manifest: ``settings.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fam.artifacts._json import Fields, check_format, locate, read_json
from fam.config import Params, parse_params
from fam.io_utils import atomic_write_json
from fam.provenance import code_version

WRITTEN_BY = "`fam align`, `fam invert`, `fam protect` or `fam evaluate`"


@dataclass(frozen=True)
class ResolvedSettings:
    """``<output folder>/settings.json``: every setting a stage ran with, fully resolved (JSON).

    ``params`` has the layout of ``params.yaml`` after defaults and ``--set`` overrides were
    applied: all sections for invert, protect and evaluate (which receive the whole settings),
    the ``align`` section for align (which reads only that). ``choices`` holds what the run
    fixed that is not a setting (align: the detector). Settings never hold key material.
    """

    FILENAME: ClassVar[str] = "settings.json"
    FORMAT: ClassVar[str] = "fam-settings/v1"

    stage: str  # align | invert | protect | evaluate
    params: dict[str, Any]
    choices: dict[str, Any] = field(default_factory=dict)
    code_version: str = field(default_factory=lambda: code_version().version)

    def __post_init__(self) -> None:
        # Held as JSON reads them back (tuples as lists), so a fresh and a read record compare equal.
        object.__setattr__(self, "params", _plain(self.params))
        object.__setattr__(self, "choices", _plain(self.choices))

    @classmethod
    def of(cls, stage: str, params: Params, **choices: Any) -> ResolvedSettings:
        return cls(stage, params.to_dict(), dict(choices))

    def to_params(self) -> Params:
        """The settings as typed :class:`~fam.config.Params` (absent sections take their defaults)."""
        return parse_params(self.params)

    def same_run(self, other: ResolvedSettings) -> bool:
        """Same stage, settings and choices (the code version may differ: resuming after an update)."""
        return (self.stage, self.params, self.choices) == (other.stage, other.params, other.choices)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "stage": self.stage,
            "code_version": self.code_version,
            "params": self.params,
            "choices": self.choices,
        }

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / self.FILENAME
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def read(cls, folder_or_path: str | Path) -> ResolvedSettings:
        path = locate(folder_or_path, cls.FILENAME)
        f = Fields(check_format(read_json(path, WRITTEN_BY), path, cls.FORMAT, WRITTEN_BY), path, WRITTEN_BY)
        return cls(
            f.get("stage", str), f.get("params", dict), f.get("choices", dict), f.get("code_version", str)
        )


def _plain(tree: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(tree, sort_keys=True))
