"""What an ``INPUT/<person>/<file>`` tree holds: every entry is a file to read or a reason why not.

`fam align` and `fam protect` (on a plain folder tree) both list their input here, so nothing
they meet is dropped silently: links to nowhere, link loops, FIFOs, devices, sockets, nested
folders, loose top-level files and hidden names all come back as entries with a reason code.
A FIFO is never opened (reading one blocks for ever) and a file's size is checked before it is
read.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fam.errors import InputError

BROKEN_LINK = "broken_link"  # a symbolic link to nothing, or a link loop
NOT_A_REGULAR_FILE = "not_a_regular_file"  # FIFO, socket, block or character device
NESTED_FOLDER = "nested_folder"  # a folder inside a person folder
NOT_IN_PERSON_FOLDER = "not_in_person_folder"  # an entry directly in the input folder
HIDDEN = "hidden_entry"  # a name starting with "." (.DS_Store, editor swap files, ...)
FILE_TOO_LARGE = "file_too_large"  # more bytes than the limit: never read


@dataclass(frozen=True)
class Entry:
    path: Path
    person: str  # the person folder's name; "" for entries directly in the input folder
    reason: str = ""  # "" = a regular file to read; else a code above
    detail: str = ""

    @property
    def relative(self) -> str:
        return f"{self.person}/{self.path.name}" if self.person else self.path.name


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device" if stat.S_ISBLK(mode) or stat.S_ISCHR(mode) else "special file"


def classify(path: Path, max_bytes: int | None = None) -> tuple[str, str]:
    """``(reason, detail)`` for an entry inside a person folder; ``("", "")`` = read it."""
    if path.name.startswith("."):
        return HIDDEN, "names starting with '.' are not read"
    try:
        st = path.stat()  # follows links
    except FileNotFoundError:
        return BROKEN_LINK, "a symbolic link to a file that does not exist"
    except OSError as exc:  # ELOOP and friends
        return BROKEN_LINK, f"cannot follow this link: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return NESTED_FOLDER, "folders inside a person folder are not read; put the images directly in it"
    if not stat.S_ISREG(st.st_mode):
        return NOT_A_REGULAR_FILE, f"a {_kind(st.st_mode)} is not read"
    if max_bytes is not None and st.st_size > max_bytes:
        return FILE_TOO_LARGE, f"{st.st_size} bytes, more than the limit of {max_bytes}"
    return "", ""


def scan_person_folders(
    root: Path, persons: Sequence[str] | None = None, *, max_bytes: int | None = None
) -> list[Entry]:
    """Every entry under ``root`` (person folders, their contents, loose top-level entries), sorted.

    With ``persons`` only those folders are listed (loose entries are then out of scope).
    """
    top = sorted(root.iterdir())
    folders = [p for p in top if not p.name.startswith(".") and p.is_dir()]
    entries: list[Entry] = []
    if persons is not None:
        known = {p.name for p in folders}
        missing = sorted(set(persons) - known)
        if missing:
            raise InputError(f"person folder(s) {', '.join(missing)} not found in {root}")
        folders = [p for p in folders if p.name in set(persons)]
    else:
        for p in top:
            if p in folders:
                continue
            hidden = p.name.startswith(".")
            entries.append(
                Entry(
                    p,
                    "",
                    HIDDEN if hidden else NOT_IN_PERSON_FOLDER,
                    "names starting with '.' are not read"
                    if hidden
                    else "put it in a folder named after the person",
                )
            )
    for folder in folders:
        for p in sorted(folder.iterdir()):
            reason, detail = classify(p, max_bytes)
            entries.append(Entry(p, folder.name, reason, detail))
    return entries
