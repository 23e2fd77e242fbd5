"""Training tasks: one resumable chunk of the prior's training."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import task

from tasks.common import settings


@task(name="train-prior-chunk")
def train_chunk(data: str, out_dir: str, params_path: str, overrides: dict[str, Any], kimg: float) -> dict:
    """Continue the training state in ``out_dir`` up to ``kimg`` (a retried chunk resumes, never restarts)."""
    from fam.runtime import resolve_engine
    from fam.training.run_prior import train_prior_run

    params = settings(params_path, overrides)
    summary = train_prior_run(
        params.training.prior,
        Path(data),
        Path(out_dir),
        resolve_engine(params.runtime),
        resume=(Path(out_dir) / "state.pt").is_file(),
        export=Path(out_dir) / "export",
        kimg=kimg,
    )
    return asdict(summary)
