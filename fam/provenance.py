"""The code version recorded with every output and every lineage run."""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fam import __version__

UNKNOWN_COMMIT = "unknown"
BUILT_FROM_COMMIT = "FAM_CODE_COMMIT"  # an image's build arguments (Dockerfile); read outside git only
BUILT_FROM_DIRTY = "FAM_CODE_DIRTY"


@dataclass(frozen=True)
class CodeVersion:
    """Which code ran: the package version and, in a git checkout, the commit and whether it was edited."""

    commit: str  # full commit hash; outside a checkout the image's FAM_CODE_COMMIT, else "unknown"
    dirty: bool  # tracked files had uncommitted changes
    version: str  # "<package version>+g<12-digit commit>[.dirty]", or the package version outside git


@functools.cache
def code_version() -> CodeVersion:
    """Of the checkout this ``fam`` package was imported from (not of the current folder)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return _built_from()
    return _version(commit, dirty)


def _version(commit: str, dirty: bool) -> CodeVersion:
    return CodeVersion(commit, dirty, f"{__version__}+g{commit[:12]}{'.dirty' if dirty else ''}")


def _built_from() -> CodeVersion:
    """Outside a checkout: the commit an image was built from, as its build recorded it
    (``FAM_CODE_COMMIT`` / ``FAM_CODE_DIRTY``, set by the Dockerfile's build arguments)."""
    commit = os.environ.get(BUILT_FROM_COMMIT, "").strip().lower()
    if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit):
        return _version(commit, os.environ.get(BUILT_FROM_DIRTY, "0").strip() not in ("", "0", "false"))
    return CodeVersion(UNKNOWN_COMMIT, False, __version__)
