"""The DVC pipeline's stage commands that need the orchestration layer (GX suites, MLflow).

Stages that only run the library call ``fam`` itself; these call the adapters in ``tasks/``::

    python -m tasks.stages validate input ALIGNED --report runs/validation/input.json
    python -m tasks.stages validate release OUT --aligned ALIGNED --report ... [--research-seed N]
    python -m tasks.stages validate metrics EVAL/metrics.json --report ...
    python -m tasks.stages impostors --input data/lfw/images --out runs/impostor-input
    python -m tasks.stages report --aligned runs/aligned --protect runs/protect --eval runs/eval \\
        --validation runs/validation --out runs/report

A failed suite exits 1 (``report`` gates the metrics before anything is recorded); a user error
(missing input, bad setting) exits 2 with a message that says what to do.
"""

from __future__ import annotations

from pathlib import Path

import click

from fam.artifacts import Metrics
from fam.cli.common import Group, key_given, key_options, load_cli_params, params_options
from fam.io_utils import atomic_write_json
from tasks import gx_suites


@click.group(cls=Group)
def main() -> None:
    """DVC stage commands of the orchestration layer."""


# --------------------------------------------------------------------------------------------
# Great Expectations gates.


@main.group()
def validate() -> None:
    """Validate an alignment manifest, a protected release or evaluation metrics."""


def _finish(report: gx_suites.ValidationReport, report_path: str | None) -> None:
    if report_path:
        report.write(report_path)
    for r in report.results:
        mark = "ok  " if r["success"] else "FAIL"
        at_fault = f": {', '.join(r['examples'])}" if not r["success"] and r.get("examples") else ""
        click.echo(
            f"{mark} {report.suite}.{r['frame']}: {r['why']} [{r['unexpected_count']} unexpected{at_fault}]"
        )
    if report_path:
        click.echo(f"Data Docs: {gx_suites.data_docs_dir(report_path) / 'index.html'}")
    if not report.success:
        raise SystemExit(1)


@validate.command("input")
@click.argument("aligned", type=click.Path(file_okay=False))
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="write the results as JSON")
def validate_input(aligned: str, report_path: str | None) -> None:
    _finish(gx_suites.validate_input_manifest(aligned), report_path)


@validate.command("release")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--aligned", required=True, type=click.Path(file_okay=False))
@click.option("--report", "report_path", type=click.Path(dir_okay=False))
@key_options
def validate_release(
    out: str,
    aligned: str,
    report_path: str | None,
    key_file: Path | None,
    key_env: str | None,
    research_seed: int | None,
) -> None:
    """Check a release; with the key it was made with, also scan release/ for that key."""
    from tasks.keyref import FlowKeyRef

    fingerprint, key_hex = None, None
    if key_given(key_file, key_env, research_seed):
        path = str(key_file) if key_file is not None else None
        ref = FlowKeyRef(key_file=path, env_var=key_env, research_seed=research_seed)
        fingerprint, key_hex = ref.load().fingerprint, ref.material_hex()
    report = gx_suites.validate_release(out, aligned, expected_fingerprint=fingerprint, key_hex=key_hex)
    _finish(report, report_path)


@validate.command("metrics")
@click.argument("metrics", type=click.Path(dir_okay=False))
@click.option("--report", "report_path", type=click.Path(dir_okay=False))
def validate_metrics(metrics: str, report_path: str | None) -> None:
    _finish(gx_suites.validate_metrics(metrics), report_path)


# --------------------------------------------------------------------------------------------
# Data and lineage stages.


@main.command()
@click.option(
    "--input", "input_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@params_options
def impostors(input_dir: Path, out_dir: Path, params_path: Path, overrides: tuple[str, ...]) -> None:
    """Copy people outside the protected subset into OUT, for the evaluation's FMR thresholds."""
    from fam.impostors import copy_impostors

    params = load_cli_params(params_path, overrides)
    chosen = copy_impostors(input_dir, out_dir, params.mlops)
    n = sum(len(v) for v in chosen.values())
    click.echo(f"{n} images of {len(chosen)} people outside the subset -> {out_dir}")


@main.command()
@click.option("--aligned", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option(
    "--protect",
    "protect_root",
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="folder of protect outputs, one sub-folder per key name",
)
@click.option(
    "--eval", "eval_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.option("--evaluated-key", default=None, help="key name whose release --eval scored (default: first)")
@click.option(
    "--validation", "validation_dir", required=True, type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@params_options
def report(
    aligned: Path,
    protect_root: Path,
    eval_dir: Path,
    evaluated_key: str | None,
    validation_dir: Path,
    out_dir: Path,
    params_path: Path,
    overrides: tuple[str, ...],
) -> None:
    """Gate the metrics, then record the pipeline's releases in MLflow: a run named after this
    stage (opened when it starts, FAILED if the gate fails) with one nested run per key's release.

    Writes OUT/metrics.json (for `dvc metrics show`), OUT/lineage.json (the run ids) and
    OUT/validation-metrics.json.
    """
    from tasks import mlflow_lineage

    params = load_cli_params(params_path, overrides)
    out_dir.mkdir(parents=True, exist_ok=True)
    store = mlflow_lineage.Store.from_params(params, overrides=overrides)
    run_id = mlflow_lineage.open_pipeline_run(store, params, mlflow_lineage.pipeline_keys(protect_root))
    try:
        gate = gx_suites.validate_metrics(eval_dir)
        metrics_report = gate.write(out_dir / "validation-metrics.json")
        gate.raise_for_failure()
    except BaseException:
        mlflow_lineage.close_run(store, run_id, "FAILED")
        raise
    lineage = mlflow_lineage.record_pipeline(
        params,
        aligned_dir=aligned,
        protect_root=protect_root,
        eval_dir=eval_dir,
        evaluated_key=evaluated_key,
        validation_dir=validation_dir,
        extra_reports=[metrics_report],
        run_id=run_id,
        store=store,
    )
    Metrics.read(eval_dir).write(out_dir)
    atomic_write_json(out_dir / "lineage.json", lineage, sort_keys=False)
    click.echo(f"MLflow run {lineage['parent_run_id']} ({store.describe()}); report {eval_dir / 'report.md'}")


if __name__ == "__main__":
    main()
