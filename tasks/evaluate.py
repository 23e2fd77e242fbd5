"""Evaluation tasks: score a finished release (``fam.evaluate.evaluate_release``), read its metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from fam.artifacts import Metrics
from tasks.common import settings
from tasks.keyref import FlowKeyRef


@task(name="evaluate")
def evaluate(
    aligned_dir: str,
    release_dir: str,
    eval_dir: str,
    params_path: str,
    overrides: dict[str, Any],
    release2_dir: str | None = None,
    thresholds_from: str | None = None,
    key: dict[str, Any] | None = None,
) -> str:
    """The key (for the key-holder attacks) is loaded here from its reference, never passed on."""
    from fam.evaluate import evaluate_release

    params = settings(params_path, overrides)
    evaluate_release(
        Path(aligned_dir),
        Path(release_dir),
        Path(eval_dir),
        params,
        release2_dir=Path(release2_dir) if release2_dir else None,
        thresholds_from=Path(thresholds_from) if thresholds_from else None,
        key=FlowKeyRef.from_dict(key).load() if key else None,
        progress=False,
    )
    return eval_dir


@task(name="read-metrics")
def metrics(eval_dir: str) -> dict[str, float]:
    """The flat metrics an evaluation wrote (``EVAL/metrics.json``)."""
    return Metrics.read(eval_dir).values
