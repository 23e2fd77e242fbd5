"""What ``fam evaluate`` leaves in ``EVAL/``: ``metrics.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from fam.artifacts._json import Fields, locate, read_json
from fam.io_utils import atomic_write_json

WRITTEN_BY = "`fam evaluate`"


@dataclass(frozen=True)
class Metrics:
    """``EVAL/metrics.json``: flat ``{name: number}``, sorted by name (JSON).

    Its format is its shape and it carries no format string: DVC (``dvc metrics show``) and MLflow
    read the file as it is, and a text entry would become a metric there. Names and meanings:
    docs/evaluation.md. Values are not checked for range here; the ``metrics`` validation suite
    gates them.
    """

    FILENAME: ClassVar[str] = "metrics.json"

    values: dict[str, float]

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / self.FILENAME
        atomic_write_json(path, {k: float(v) for k, v in sorted(self.values.items())})
        return path

    @classmethod
    def read(cls, folder_or_path: str | Path) -> Metrics:
        path = locate(folder_or_path, cls.FILENAME)
        f = Fields(read_json(path, WRITTEN_BY), path, WRITTEN_BY)
        return cls({name: f.number(name) for name in f.doc})
