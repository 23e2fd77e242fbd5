"""The code version recorded with every output and every lineage run."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fam import __version__

UNKNOWN_COMMIT = "unknown"


@dataclass(frozen=True)
class CodeVersion:
    """Which code ran: the package version and, in a git checkout, the commit and whether it was edited."""

    commit: str  # full commit hash; "unknown" outside a git checkout (an installed wheel)
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
        return CodeVersion(UNKNOWN_COMMIT, False, __version__)
    return CodeVersion(commit, dirty, f"{__version__}+g{commit[:12]}{'.dirty' if dirty else ''}")
