"""Reading the JSON artifacts: locating the file, checking its format string, typed fields.

Every problem is an :class:`~fam.errors.InputError` that names the file and the command that
writes it (``written_by``, already quoted: "`fam align`"), so the message says what to run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fam.errors import InputError


def locate(folder_or_path: str | Path, *names: str) -> Path:
    """The file itself, or the first of ``names`` that exists inside the folder (else the first name)."""
    path = Path(folder_or_path)
    if not path.is_dir():
        return path
    for name in names:
        if (path / name).is_file():
            return path / name
    return path / names[0]


def missing(path: Path, written_by: str) -> InputError:
    return InputError(
        f"{path} does not exist; it is written by {written_by}: run that first, or point to its output"
    )


def read_json(path: Path, written_by: str) -> Any:
    if not path.is_file():
        raise missing(path, written_by)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"{path} is not valid JSON ({exc}); it should be the output of {written_by}"
        ) from exc


def check_format(doc: Any, path: Path, expected: str, written_by: str) -> dict[str, Any]:
    """``doc`` as a mapping whose ``format`` is ``expected``."""
    found = doc.get("format") if isinstance(doc, dict) else None
    if found != expected:
        raise InputError(
            f"{path} has format {found!r}, expected {expected!r}: it is not the output of {written_by} "
            "(or comes from an incompatible version); re-run the command"
        )
    return doc


class Fields:
    """Typed access to one JSON object; a missing or mistyped field names the file and the place."""

    def __init__(self, doc: Any, path: Path, written_by: str, where: str = "") -> None:
        if not isinstance(doc, dict):
            raise InputError(
                f"{path}: {where or 'the top level'} must be a JSON object ({_hint(written_by)})"
            )
        self.doc, self.path, self.written_by, self.where = doc, path, written_by, where

    def error(self, name: str, what: str) -> InputError:
        return InputError(f"{self.path}: field {self.where}{name} {what} ({_hint(self.written_by)})")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if name not in self.doc:
            if default is ...:
                raise self.error(name, "is missing")
            return default
        value = self.doc[name]
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            raise self.error(name, f"must be {_names(kind)}, not a boolean")
        if not isinstance(value, kind):
            raise self.error(name, f"must be {_names(kind)}, not {type(value).__name__}")
        return value

    def number(self, name: str) -> float:
        return float(self.get(name, (int, float)))

    def list_of(self, name: str) -> list[Fields]:
        return [
            Fields(x, self.path, self.written_by, f"{self.where}{name}[{i}].")
            for i, x in enumerate(self.get(name, list))
        ]

    def child(self, name: str) -> Fields:
        return Fields(self.get(name, dict), self.path, self.written_by, f"{self.where}{name}.")


def _hint(written_by: str) -> str:
    return f"written by {written_by}; re-run it rather than editing the file"


def _names(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    words = {
        str: "text",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "an object",
        bool: "true/false",
    }
    return " or ".join(words.get(k, k.__name__) for k in kinds)
