"""Flow ``evaluate-release``: evaluate a finished release, gate its metrics, record its lineage."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks import evaluate, lineage, prefect_artifacts, protect, validation


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
    """Evaluate a finished release, gate its metrics (Great Expectations) and record it in MLflow.

    Args:
        aligned_dir: The aligned faces the release was made from.
        release_dir: A protect output folder (``manifest.json`` + ``release/``).
        eval_dir: Where metrics.json, report.md, plots/ and thresholds.json go.
        release2_dir: The same inputs protected under a second key (unlinkability, D_sys).
        thresholds_from: Aligned folder of people NOT in the release, or a thresholds.json
            (default: the people of ``aligned_dir`` the release lacks).
        key: A key reference (never material); enables the key-holder attacks for secret keys.
        params_path: The settings file (params.yaml).
        overrides: Dotted settings overrides.

    Returns:
        The MLflow run id and the evaluation folder.
    """
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
    prefect_artifacts.report_artifacts(
        params_path, overrides, run_id, release_dir, identity["fingerprint"], eval_dir
    )
    return {"mlflow_run_id": run_id, "metrics": evaluate.metrics(eval_dir)}
