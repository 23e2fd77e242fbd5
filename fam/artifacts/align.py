"""What ``fam align`` leaves in ``ALIGNED/``: the manifest (CSV) and the summary (JSON)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from fam.artifacts._json import Fields, check_format, locate, missing, read_json
from fam.errors import InputError
from fam.io_utils import atomic_write_bytes, atomic_write_json

WRITTEN_BY = "`fam align`"


@dataclass(frozen=True)
class AlignRow:
    """One input file and what became of it."""

    input_path: str  # relative to the input folder: <person>/<file>
    person: str
    status: str  # aligned | rejected
    reason: str  # empty when aligned
    output_path: str  # relative to the output folder; empty when rejected
    input_format: str  # detected from the bytes (JPEG, PNG, WEBP ...); empty if not an image
    extension_format: str  # what the file name claims; differs from input_format for disguised files
    input_width: int  # after EXIF orientation; 0 when unknown
    input_height: int
    det_score: float | None  # detector probability of the chosen (or largest) face; None when none
    face_px: float | None  # detection box side in input pixels of that face; None when none
    n_faces: int | None  # faces above align.min_det_score; None when the image was never decoded

    def to_csv(self) -> dict[str, str]:
        return {
            "input_path": self.input_path,
            "person": self.person,
            "status": self.status,
            "reason": self.reason,
            "output_path": self.output_path,
            "input_format": self.input_format,
            "extension_format": self.extension_format,
            "input_width": str(self.input_width),
            "input_height": str(self.input_height),
            "det_score": "" if self.det_score is None else f"{self.det_score:.4f}",
            "face_px": "" if self.face_px is None else f"{self.face_px:.1f}",
            "n_faces": "" if self.n_faces is None else str(self.n_faces),
        }

    @classmethod
    def from_csv(cls, row: dict[str, str]) -> AlignRow:
        """Raises ValueError on a cell that does not parse (the caller names file and line)."""
        return cls(
            input_path=row["input_path"],
            person=row["person"],
            status=row["status"],
            reason=row["reason"],
            output_path=row["output_path"],
            input_format=row["input_format"],
            extension_format=row["extension_format"],
            input_width=int(row["input_width"]),
            input_height=int(row["input_height"]),
            det_score=float(row["det_score"]) if row["det_score"] else None,
            face_px=float(row["face_px"]) if row["face_px"] else None,
            n_faces=int(row["n_faces"]) if row["n_faces"] else None,
        )


@dataclass(frozen=True)
class AlignManifest:
    """``ALIGNED/manifest.csv``: one row per input file, aligned or rejected with a reason (CSV).

    The format is the header: exactly :attr:`COLUMNS`, in this order.
    """

    FILENAME: ClassVar[str] = "manifest.csv"
    COLUMNS: ClassVar[tuple[str, ...]] = tuple(f.name for f in fields(AlignRow))

    rows: tuple[AlignRow, ...]

    def aligned(self) -> list[AlignRow]:
        return [r for r in self.rows if r.status == "aligned"]

    def people(self) -> list[str]:
        """People with at least one aligned image, sorted."""
        return sorted({r.person for r in self.aligned()})

    @classmethod
    def csv_text(cls, rows: Iterable[AlignRow]) -> str:
        buf = io.StringIO(newline="")
        writer = csv.DictWriter(buf, fieldnames=cls.COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(r.to_csv() for r in rows)
        return buf.getvalue()

    def write(self, folder: str | Path) -> Path:
        return self.write_file(Path(folder) / self.FILENAME)

    def write_file(self, path: str | Path) -> Path:
        """Write to any file name (``fam align`` keeps its resume journal in the same format)."""
        atomic_write_bytes(path, self.csv_text(self.rows).encode("utf-8"))
        return Path(path)

    @classmethod
    def read(cls, folder_or_path: str | Path, *, partial_ok: bool = False) -> AlignManifest:
        """``partial_ok``: a last row cut short (an interrupted append) is dropped instead of refused."""
        path = locate(folder_or_path, cls.FILENAME)
        if not path.is_file():
            raise missing(path, WRITTEN_BY)
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = tuple(reader.fieldnames or ())
            if header != cls.COLUMNS:
                lacks = [c for c in cls.COLUMNS if c not in header]
                extra = [c for c in header if c not in cls.COLUMNS]
                what = (
                    f"lacks {lacks}"
                    if lacks
                    else f"has unknown {extra}"
                    if extra
                    else "has its columns in another order"
                )
                raise InputError(
                    f"{path} {what}: it is not a manifest written by {WRITTEN_BY} of this version; re-run it"
                )
            raw = list(reader)
        rows = []
        for n, row in enumerate(raw, start=2):  # line 1 is the header
            try:
                if None in row or any(v is None for v in row.values()):
                    raise ValueError("wrong number of cells")
                rows.append(AlignRow.from_csv(row))
            except ValueError as exc:
                if partial_ok and n == len(raw) + 1:
                    break
                raise InputError(f"{path}, line {n}: {exc} (written by {WRITTEN_BY}; re-run it)") from exc
        return cls(tuple(rows))


@dataclass(frozen=True)
class AlignSummary:
    """``ALIGNED/align_summary.json``: counts of one alignment (JSON).

    ``out_dir`` is where the summary lives; it is not stored in the file.
    """

    FILENAME: ClassVar[str] = "align_summary.json"
    FORMAT: ClassVar[str] = "fam-align-summary/v1"

    input_dir: str
    n_inputs: int
    aligned: int
    rejected: dict[str, int]  # reason -> count
    formats: dict[str, int]  # detected input format ("-" when not an image) -> count
    processed: int  # images processed by the run that wrote it (resume skips the rest)
    seconds_per_image: float  # over the images processed by that run
    out_dir: Path = field(default=Path("."), compare=False)

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "input_dir": self.input_dir,
            "n_inputs": self.n_inputs,
            "aligned": self.aligned,
            "rejected": dict(sorted(self.rejected.items())),
            "formats": dict(sorted(self.formats.items())),
            "processed": self.processed,
            "seconds_per_image": round(self.seconds_per_image, 5),
        }

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / self.FILENAME
        atomic_write_json(path, self.to_dict(), sort_keys=False)
        return path

    @classmethod
    def read(cls, folder_or_path: str | Path) -> AlignSummary:
        path = locate(folder_or_path, cls.FILENAME)
        f = Fields(check_format(read_json(path, WRITTEN_BY), path, cls.FORMAT, WRITTEN_BY), path, WRITTEN_BY)
        counts = {k: f.child(k) for k in ("rejected", "formats")}
        return cls(
            input_dir=f.get("input_dir", str),
            n_inputs=f.get("n_inputs", int),
            aligned=f.get("aligned", int),
            rejected={k: counts["rejected"].get(k, int) for k in counts["rejected"].doc},
            formats={k: counts["formats"].get(k, int) for k in counts["formats"].doc},
            processed=f.get("processed", int),
            seconds_per_image=f.number("seconds_per_image"),
            out_dir=path.parent,
        )
