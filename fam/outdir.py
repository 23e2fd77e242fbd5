"""Output folders a command owns: creating them, locking them, and keeping paths inside them.

Every writing command (align, invert, protect) holds ``OUT/.fam/lock`` while it runs, so two
runs on one folder cannot interleave: the second is refused at once with a message. Prefect
shards of one protect flow write disjoint persons into one folder and take the lock *shared*;
a plain run takes it *exclusive*, so it never runs beside shards nor shards beside it.

Paths read from a manifest (which a user, or an attacker, can edit) are resolved and must stay
inside the folder they are relative to before anything is read or deleted through them.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fam.errors import InputError, UserError

STATE_DIR = ".fam"  # a command's private state inside its output folder
_LOCK = "lock"
# Temporary names of fam.io_utils.atomic_open: ".<name>.<random>.tmp" (mkstemp)
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")


class OutputBusyError(UserError):
    """Another run holds the output folder's lock."""


def entries(out_dir: Path) -> list[Path]:
    """What ``out_dir`` holds, leaving out a state folder that holds only the lock."""
    if not out_dir.is_dir():
        return []
    return sorted(
        e for e in out_dir.iterdir() if e.name != STATE_DIR or any(x.name != _LOCK for x in e.iterdir())
    )


def make_dir(path: Path) -> Path:
    """``mkdir -p`` whose failure is a :class:`UserError` naming the folder, not a traceback."""
    try:
        # resolved first: a link to a folder that does not exist yet (the image's runs/ ->
        # /data/runs on a fresh volume) is created through, where a plain mkdir -p refuses it
        path.resolve().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the output folder {path}: {exc.strerror or exc}; choose a folder you can write to"
        ) from None
    return path


def inside(root: Path, relative: str, *, source: str) -> Path:
    """``root / relative`` resolved, refused when it leaves ``root`` (``..``, absolute, symlinks)."""
    base = root.resolve()
    path = (base / relative).resolve()
    if path != base and base not in path.parents:
        raise InputError(f"{source} names {relative!r}, which is outside {base}; refusing to use it")
    return path


@contextmanager
def output_lock(out_dir: Path, command: str, *, shared: bool = False) -> Iterator[None]:
    """Hold ``OUT/.fam/lock`` (non-blocking); :class:`OutputBusyError` when another run holds it."""
    lock_path = make_dir(out_dir / STATE_DIR) / _LOCK
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputBusyError(
            f"{out_dir} is in use by another run (found while starting `fam {command}`); wait for it to "
            "finish or choose another --out"
        ) from None
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files an interrupted atomic write left under ``folder``; returns them."""
    stale = sorted(p for p in folder.rglob(".*.tmp") if p.is_file() and _TEMP.match(p.name))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
