"""Lineage tasks: record a release, a revocation or a training run in MLflow.

Thin Prefect wrappers over the MLflow adapter :mod:`tasks.mlflow_lineage`; flows call these and
never MLflow itself. A flow opens its run when it starts (:func:`open_lineage_run`) and fills and
closes it at the end (:func:`record_lineage`); :func:`fail_lineage_runs`, a flow state hook,
closes it as FAILED when the flow fails or crashes in between.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from tasks.common import settings


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


def _store(params_path: str, overrides: dict[str, Any]) -> Any:
    from tasks import mlflow_lineage

    return mlflow_lineage.Store.from_params(settings(params_path, overrides), overrides=overrides)


def flow_source() -> str:
    """``mlflow.source.name`` of a flow's run: its entry point (``flows/protect.py:protect_dataset``,
    as in prefect.yaml), or ``prefect flow <name>`` where the flow function is not at hand."""
    from prefect.context import FlowRunContext
    from prefect.runtime import flow_run

    ctx = FlowRunContext.get()
    fn = getattr(getattr(ctx, "flow", None), "fn", None)
    if fn is None:
        return f"prefect flow {flow_run.flow_name or '?'}"
    path = Path(inspect.getsourcefile(fn) or "?").resolve()
    root = Path(__file__).resolve().parents[1]
    shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    return f"{shown}:{fn.__name__}"


@task(name="open-lineage-run")
def open_lineage_run(params_path: str, overrides: dict[str, Any], flow_name: str, out_dir: str) -> str:
    """Open this flow run's MLflow run now, so its start, duration and status are the flow's."""
    from tasks import mlflow_lineage

    params = settings(params_path, overrides)
    store = mlflow_lineage.Store.from_params(params, overrides=overrides)
    run_id = mlflow_lineage.open_run(
        store,
        run_name=f"{flow_name} {Path(out_dir).name}",
        source_name=flow_source(),
        params=params,
        tags={"flow": flow_name, **({"prefect_flow_run_id": fid} if (fid := _flow_run_id()) else {})},
    )
    get_run_logger().info("MLflow run %s in %s", run_id, store.describe())
    return run_id


def fail_lineage_runs(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow state hook (``on_failure``, ``on_crashed``, ``on_cancellation``): the flow run's
    MLflow runs that are still open end as FAILED, with the time the flow stopped."""
    from tasks import mlflow_lineage

    parameters = flow_run.parameters or {}
    store = _store(parameters.get("params_path", "params.yaml"), parameters.get("overrides") or {})
    mlflow_lineage.fail_running(store, str(flow_run.id))


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
    run_id: str | None = None,
) -> str:
    """Fill and close the release's MLflow run ``run_id`` (opened by :func:`open_lineage_run`;
    a new run if None). Explicit run ids: MLflow's active run is thread-local."""
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
        source_name=flow_source(),
        extra_tags={"flow": flow_name, **(extra_tags or {})},
    )
    store = mlflow_lineage.Store.from_params(params, overrides=overrides)
    run_id = mlflow_lineage.log_release(record, store, run_id=run_id)
    get_run_logger().info("MLflow run %s in %s", run_id, store.describe())
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
        source_name=flow_source(),
    )


@task(name="open-training-run")
def open_training_run(params_path: str, overrides: dict[str, Any], run_name: str, data: str) -> str:
    from tasks import mlflow_lineage

    params = settings(params_path, overrides)
    return mlflow_lineage.open_training_run(
        mlflow_lineage.Store.from_params(params, overrides=overrides),
        params,
        run_name=run_name,
        data_file=Path(data),
        flow_run_id=_flow_run_id(),
        source_name=flow_source(),
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
