"""The publish task: copy a validated release to where its consumers read it."""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import task

from fam.artifacts import ReleaseIndex
from fam.errors import UserError
from fam.io_utils import atomic_write_json


@task(name="publish")
def publish(out_dir: str, publish_dir: str) -> str:
    """Copy ``OUT/release/`` (and only it) to ``publish_dir``; flows run it after every suite passed."""
    src, dst = Path(out_dir) / ReleaseIndex.FOLDER, Path(publish_dir)
    if dst.exists() and any(dst.iterdir()):
        raise UserError(f"{dst} is not empty; publishing never overwrites an earlier release")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    atomic_write_json(dst / "PUBLISHED.json", {"from": str(src.resolve())})
    return str(dst)
