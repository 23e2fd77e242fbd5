"""Flow ``evaluate-release``: evaluate a finished release, gate its metrics, record its lineage."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks import evaluate, lineage, protect, validation


@flow(
    name="evaluate-release",
    on_failure=[lineage.fail_lineage_runs],
    on_crashed=[lineage.fail_lineage_runs],
)
def evaluate_release(
    aligned_dir: str,
    release_dir: str,
    eval_dir: str,
    release2_dir: str | None = None,
    thresholds_from: str | None = None,
    key: dict[str, Any] | None = None,
    params_path: str = "params.yaml",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``release_dir`` is a protect output folder (``manifest.json`` + ``release/``); ``key`` (a
    reference) enables the key-holder attacks for secret keys."""
    overrides = dict(overrides or {})
    run_id = lineage.open_lineage_run(params_path, overrides, "evaluate-release", eval_dir)
    identity = protect.release_identity(release_dir)
    reports = validation.reports_dir_for(release_dir)
    reports.mkdir(parents=True, exist_ok=True)
    evaluate.evaluate(
        aligned_dir, release_dir, eval_dir, params_path, overrides, release2_dir, thresholds_from, key
    )
    report = validation.validate_metrics(eval_dir, str(reports / "metrics.json"))
    run_id = lineage.record_lineage(
        params_path,
        overrides,
        release_dir,
        aligned_dir,
        identity,
        [report],
        eval_dir,
        "evaluate-release",
        {"release2_dir": release2_dir or ""},
        run_id,
    )
    return {"mlflow_run_id": run_id, "metrics": evaluate.metrics(eval_dir)}
