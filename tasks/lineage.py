"""Lineage tasks: record a release, a revocation or a training run in MLflow.

Thin Prefect wrappers over the MLflow adapter :mod:`tasks.mlflow_lineage`; flows call these and
never MLflow itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from tasks.common import settings


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


def _store(params_path: str, overrides: dict[str, Any]) -> Any:
    from tasks import mlflow_lineage

    return mlflow_lineage.Store.from_params(settings(params_path, overrides))


@task(name="record-lineage")
def record_lineage(
    params_path: str,
    overrides: dict[str, Any],
    out_dir: str,
    aligned_dir: str,
    identity: dict[str, str],
    validation_reports: list[str],
    eval_dir: str | None,
    flow_name: str,
    extra_tags: dict[str, str] | None = None,
) -> str:
    """One MLflow run for this release (explicit run id: MLflow's active run is thread-local)."""
    from tasks import mlflow_lineage

    params = settings(params_path, overrides)
    record = mlflow_lineage.ReleaseRecord(
        params=params,
        key_fingerprint=identity["fingerprint"],
        key_kind=identity["kind"],
        out_dir=Path(out_dir),
        aligned_dir=Path(aligned_dir),
        eval_dir=Path(eval_dir) if eval_dir else None,
        validation_reports=[Path(p) for p in validation_reports],
        flow_run_id=_flow_run_id(),
        run_name=f"{flow_name} {Path(out_dir).name} {identity['fingerprint'][:11]}",
        extra_tags={"flow": flow_name, **(extra_tags or {})},
    )
    run_id = mlflow_lineage.log_release(record, mlflow_lineage.Store.from_params(params))
    get_run_logger().info("MLflow run %s in %s", run_id, params.mlops.tracking_uri)
    return run_id


@task(name="find-releases")
def find_releases(params_path: str, overrides: dict[str, Any], fingerprint: str) -> list[dict[str, Any]]:
    """Finished release runs made with ``fingerprint`` (public), newest first."""
    from tasks import mlflow_lineage

    runs = mlflow_lineage.releases_for(_store(params_path, overrides), fingerprint)
    return [r for r in runs if r["status"] == "FINISHED"]


@task(name="record-revocation")
def record_revocation(
    params_path: str, overrides: dict[str, Any], fingerprint: str, reason: str, replacement: str
) -> str:
    from tasks import mlflow_lineage

    return mlflow_lineage.revoke(
        _store(params_path, overrides),
        fingerprint,
        reason=reason,
        replacement_fingerprint=replacement,
        flow_run_id=_flow_run_id(),
    )


@task(name="open-training-run")
def open_training_run(params_path: str, overrides: dict[str, Any], run_name: str, data: str) -> str:
    from tasks import mlflow_lineage

    params = settings(params_path, overrides)
    return mlflow_lineage.open_training_run(
        mlflow_lineage.Store.from_params(params),
        params,
        run_name=run_name,
        data_file=Path(data),
        flow_run_id=_flow_run_id(),
    )


@task(name="log-training-chunk")
def log_training_chunk(
    params_path: str, overrides: dict[str, Any], run_id: str, step: int, values: dict[str, float | None]
) -> None:
    from tasks import mlflow_lineage

    mlflow_lineage.log_training_chunk(_store(params_path, overrides), run_id, step, values)


@task(name="close-training-run")
def close_training_run(
    params_path: str, overrides: dict[str, Any], run_id: str, artifacts: list[str], status: str = "FINISHED"
) -> None:
    from tasks import mlflow_lineage

    mlflow_lineage.close_training_run(
        _store(params_path, overrides), run_id, [Path(a) for a in artifacts], status=status
    )
