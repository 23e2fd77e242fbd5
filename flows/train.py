"""Flow ``train-prior``: train the compact StyleGAN2 prior in resumable chunks, with lineage.

Each chunk is a task that continues the training state in ``out_dir`` up to the next kimg
target (``fam.training.run_prior.train_prior_run(resume=True)``), so a retried or re-run chunk
picks up from the last saved state instead of starting over. One MLflow run per flow run:
params (``training.prior`` and the rest), code and data versions, and per-chunk metrics.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from tasks import lineage, training
from tasks.common import settings, with_retries


@flow(name="train-prior")
def train_prior(
    data: str,
    out_dir: str,
    params_path: str = "params.yaml",
    overrides: dict[str, Any] | None = None,
    kimg: float | None = None,
    chunk_kimg: float = 50.0,
) -> dict[str, Any]:
    """Train the compact StyleGAN2 prior in resumable chunks, one MLflow run per flow run.

    Args:
        data: Packed training faces (``python -m benchmarks.pack_dataset`` output, .npz).
        out_dir: Training state folder (state.pt, log.jsonl, export/); a re-run resumes from it.
        params_path: The settings file (params.yaml; ``training.prior``).
        overrides: Dotted settings overrides.
        kimg: Thousands of images to reach in all (default ``training.prior.kimg``).
        chunk_kimg: Thousands of images per task: the unit of retry and progress logging.

    Returns:
        The MLflow run id and the last chunk's summary.
    """
    log = get_run_logger()
    overrides = dict(overrides or {})
    params = settings(params_path, overrides)
    total = float(kimg if kimg is not None else params.training.prior.kimg)
    args = (params_path, overrides)
    run_id = lineage.open_training_run(*args, f"train-prior {Path(out_dir).name}", data)
    chunk = with_retries(training.train_chunk, params)
    summary: dict = {}
    try:
        for i in range(1, math.ceil(total / chunk_kimg - 1e-9) + 1):
            target = min(total, i * chunk_kimg)
            summary = chunk.with_options(task_run_name=f"train-prior-to-{target:g}kimg")(
                data, out_dir, params_path, overrides, target
            )
            lineage.log_training_chunk(
                *args,
                run_id,
                summary["step"],
                {
                    "kimg": summary["kimg"],
                    "images_per_s": summary["images_per_s"],
                    "fid": summary["last_fid"],
                },
            )
            log.info("reached %.3f kimg (step %d)", summary["kimg"], summary["step"])
    except BaseException:
        lineage.close_training_run(*args, run_id, [str(Path(out_dir) / "log.jsonl")], status="FAILED")
        raise
    export = Path(out_dir) / "export"
    lineage.close_training_run(*args, run_id, [str(Path(out_dir) / "log.jsonl"), str(export / "samples.png")])
    return {"mlflow_run_id": run_id, **summary}
