"""``OUT/loss_curve.csv``: how the protection's losses (eq. 5 and its terms) fell, step by step (CSV).

Row ``k`` holds the terms after ``k`` Adam steps (row 0: the naive mix of eq. 1), averaged over
the persons in ``persons``. ``fam protect`` keeps one such curve per person in its private state
(``OUT/.fam/curves/<pseudonym>.csv``, so a resumed run averages every person, whenever protected)
and writes their mean beside the manifest. It holds no names or paths: MLflow logs it as step
metrics, DVC plots it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from fam.artifacts._json import locate, missing
from fam.errors import InputError
from fam.io_utils import atomic_write_bytes

WRITTEN_BY = "`fam protect`"


@dataclass(frozen=True)
class LossCurve:
    """Mean per-group loss terms after 0..steps optimisation steps."""

    FILENAME: ClassVar[str] = "loss_curve.csv"
    TERMS: ClassVar[tuple[str, ...]] = ("total", "anonymity", "consistency", "attribute")
    COLUMNS: ClassVar[tuple[str, ...]] = ("step", *TERMS, "persons")

    rows: tuple[tuple[float, ...], ...]  # one per step, values in TERMS order
    persons: int = 1

    @property
    def steps(self) -> int:
        return len(self.rows) - 1

    def column(self, term: str) -> list[float]:
        i = self.TERMS.index(term)
        return [r[i] for r in self.rows]

    @classmethod
    def mean(cls, curves: Sequence[LossCurve]) -> LossCurve:
        """The persons-weighted mean of curves of the same length."""
        if not curves:
            raise ValueError("no loss curves to average")
        lengths = {len(c.rows) for c in curves}
        if len(lengths) > 1:
            raise InputError(f"loss curves of different lengths {sorted(lengths)}: not one protect run")
        total = sum(c.persons for c in curves)
        rows = tuple(
            tuple(sum(c.rows[k][i] * c.persons for c in curves) / total for i in range(len(cls.TERMS)))
            for k in range(lengths.pop())
        )
        return cls(rows, total)

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.COLUMNS)
        for step, row in enumerate(self.rows):
            writer.writerow([step, *(repr(float(v)) for v in row), self.persons])
        return buf.getvalue()

    def write(self, folder: str | Path, name: str = FILENAME) -> Path:
        path = Path(folder) / name
        atomic_write_bytes(path, self.csv_text().encode("utf-8"))
        return path

    @classmethod
    def read(cls, folder_or_path: str | Path) -> LossCurve:
        path = locate(folder_or_path, cls.FILENAME)
        if not path.is_file():
            raise missing(path, WRITTEN_BY)
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = tuple(next(reader, ()))
            if header != cls.COLUMNS:
                raise InputError(
                    f"{path} has columns {list(header)}, not {list(cls.COLUMNS)}: "
                    f"not a loss curve written by {WRITTEN_BY} of this version; re-run it"
                )
            rows, persons = [], set()
            for n, cells in enumerate(reader, start=2):
                try:
                    if len(cells) != len(cls.COLUMNS) or int(cells[0]) != n - 2:
                        raise ValueError("wrong number of cells or steps out of order")
                    rows.append(tuple(float(v) for v in cells[1:-1]))
                    persons.add(int(cells[-1]))
                except ValueError as exc:
                    raise InputError(f"{path}, line {n}: {exc} (written by {WRITTEN_BY}; re-run it)") from exc
        if not rows or len(persons) != 1:
            raise InputError(
                f"{path} holds no steps or mixed person counts (written by {WRITTEN_BY}; re-run it)"
            )
        return cls(tuple(rows), persons.pop())
