"""What a flow run shows in the Prefect UI: its report, key metrics and the MLflow run (artifacts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from fam.artifacts import Metrics
from tasks.common import settings


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """The run's page on an MLflow server; None for a local store (no server to link to)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    return f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def key_metrics(values: dict[str, float]) -> list[dict[str, Any]]:
    """Rows ``{metric, value}`` of :meth:`fam.artifacts.Metrics.headline` for a table artifact."""
    return [{"metric": k, "value": round(v, 4)} for k, v in Metrics(values).headline().items()]


@task(name="report-artifacts")
def report_artifacts(
    params_path: str,
    overrides: dict[str, Any],
    run_id: str,
    out_dir: str,
    key_fingerprint: str,
    eval_dir: str | None = None,
) -> None:
    """A markdown summary (and the evaluation report), a table of key metrics, a link to MLflow."""
    from tasks import mlflow_lineage

    store = mlflow_lineage.Store.from_params(settings(params_path, overrides), overrides=overrides)
    client = store.client()
    experiment_id = client.get_run(run_id).info.experiment_id
    url = run_url(store.tracking_uri, experiment_id, run_id)
    if url is not None:
        create_link_artifact(url, link_text=f"MLflow run {run_id}", key="mlflow-run")
    lines = [
        f"# Release `{Path(out_dir).name}`",
        "",
        f"- key fingerprint: `{key_fingerprint}`",
        f"- MLflow run: [{run_id}]({url})"
        if url
        else f"- MLflow run: `{run_id}` in `{store.tracking_uri}` "
        f"(`mlflow ui --backend-store-uri {store.tracking_uri}`)",
        f"- release: `{Path(out_dir) / 'release'}`",
    ]
    report = Path(eval_dir) / "report.md" if eval_dir else None
    if report is not None and report.is_file():
        lines += ["", "---", "", report.read_text()]
    create_markdown_artifact("\n".join(lines), key="release-summary", description="release and evaluation")
    if eval_dir and (Path(eval_dir) / Metrics.FILENAME).is_file():
        rows = key_metrics(Metrics.read(eval_dir).values)
        if rows:
            create_table_artifact(rows, key="key-metrics", description="headline metrics at FMR 1e-3")
