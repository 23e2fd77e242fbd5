"""Inputs that could not be used, each with its reason: the :class:`Reject` record and ``rejects.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from fam.artifacts._json import Fields, check_format, locate, read_json
from fam.io_utils import atomic_write_json


@dataclass(frozen=True)
class Reject:
    """One input that was not used; reasons are codes (fam.faces.imageio, fam.faces.align, fam.dataset)."""

    reason: str  # short code: not_an_image, not_square, no_face, ... (the align manifest's reason column)
    detail: str = ""  # human-readable explanation: sizes, the decoder's message, what to do
    input: str = ""  # the input file, when there is one
    format: str = ""  # detected image format, when known
    width: int = 0  # image size when known (0 = unknown)
    height: int = 0

    def to_dict(self) -> dict[str, str]:
        return {"input": self.input, "reason": self.reason, "detail": self.detail}

    @classmethod
    def from_fields(cls, f: Fields) -> Reject:
        return cls(reason=f.get("reason", str), detail=f.get("detail", str, ""), input=f.get("input", str))


@dataclass(frozen=True)
class Rejects:
    """``OUT/rejects.json``: every input of a protect or invert run that could not be used (JSON)."""

    FILENAME: ClassVar[str] = "rejects.json"
    FORMAT: ClassVar[str] = "fam-rejects/v1"
    WRITTEN_BY: ClassVar[str] = "`fam protect` or `fam invert`"

    rejects: tuple[Reject, ...]

    def to_dict(self) -> dict[str, object]:
        return {"format": self.FORMAT, "rejects": [r.to_dict() for r in self.rejects]}

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / self.FILENAME
        atomic_write_json(path, self.to_dict(), sort_keys=False)
        return path

    @classmethod
    def read(cls, folder_or_path: str | Path) -> Rejects:
        path = locate(folder_or_path, cls.FILENAME)
        doc = check_format(read_json(path, cls.WRITTEN_BY), path, cls.FORMAT, cls.WRITTEN_BY)
        f = Fields(doc, path, cls.WRITTEN_BY)
        return cls(tuple(Reject.from_fields(r) for r in f.list_of("rejects")))
