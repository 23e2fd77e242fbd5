"""The DVC ``report`` stage: gate the metrics, then record the pipeline's releases in MLflow.

One parent run per ``dvc repro`` (tags: flow=dvc, every key fingerprint, git and data versions;
metrics and evaluation artifacts) with one nested run per key's release (params, lineage tags,
manifest, validation reports). Writes ``OUT/metrics.json`` (for ``dvc metrics show``) and
``OUT/lineage.json`` (the run ids) and ``OUT/validation-metrics.json``. A failed metrics
suite exits 1 before anything is recorded.

    python -m tasks.report --aligned runs/aligned --protect runs/protect --eval runs/eval \\
        --validation runs/validation --out runs/report
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click

from fam.config import DEFAULT_PARAMS_PATH, load_params, parse_override
from fam.errors import UserError


@click.command()
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
@click.option("--params", "params_path", default=str(DEFAULT_PARAMS_PATH), show_default=True)
@click.option("--set", "overrides", multiple=True)
def main(
    aligned: Path,
    protect_root: Path,
    eval_dir: Path,
    evaluated_key: str | None,
    validation_dir: Path,
    out_dir: Path,
    params_path: str,
    overrides: tuple[str, ...],
) -> None:
    from tasks import lineage
    from tasks.validation import validate_metrics

    params = load_params(params_path, dict(parse_override(o) for o in overrides))
    out_dir.mkdir(parents=True, exist_ok=True)
    report = validate_metrics(eval_dir / "metrics.json")
    metrics_report = report.write(out_dir / "validation-metrics.json")
    report.raise_for_failure()

    keys = sorted(p.name for p in protect_root.iterdir() if (p / "manifest.json").is_file())
    if not keys:
        raise UserError(f"no protect output (manifest.json) under {protect_root}")
    evaluated_key = evaluated_key or keys[0]
    store = lineage.Store.from_params(params)
    manifests = {k: json.loads((protect_root / k / "manifest.json").read_text()) for k in keys}
    fingerprints = {k: m["key"]["key_fingerprint"] for k, m in manifests.items()}
    parent = lineage.log_release(
        lineage.ReleaseRecord(
            params=params,
            key_fingerprint=fingerprints[evaluated_key],
            key_kind=manifests[evaluated_key]["key"]["key_kind"],
            out_dir=protect_root / evaluated_key,
            aligned_dir=aligned,
            eval_dir=eval_dir,
            validation_reports=[*sorted(validation_dir.glob("*.json")), metrics_report],
            run_name=f"dvc repro ({len(keys)} keys)",
            extra_tags={"flow": "dvc", "key_fingerprints": ",".join(fingerprints[k] for k in keys)},
        ),
        store,
    )
    children = {}
    for k in keys:
        children[k] = lineage.log_release(
            lineage.ReleaseRecord(
                params=params,
                key_fingerprint=fingerprints[k],
                key_kind=manifests[k]["key"]["key_kind"],
                out_dir=protect_root / k,
                aligned_dir=aligned,
                validation_reports=sorted(validation_dir.glob(f"release-{k}.json")),
                run_name=f"dvc release {k}",
                extra_tags={"flow": "dvc", "dvc_key_name": k},
            ),
            store,
            parent_run_id=parent,
        )
    shutil.copyfile(eval_dir / "metrics.json", out_dir / "metrics.json")
    (out_dir / "lineage.json").write_text(
        json.dumps(
            {
                "tracking_uri": store.tracking_uri,
                "experiment": store.experiment,
                "parent_run_id": parent,
                "release_runs": children,
                "key_fingerprints": fingerprints,
            },
            indent=2,
        )
        + "\n"
    )
    click.echo(f"MLflow run {parent} ({store.tracking_uri}); report {eval_dir / 'report.md'}")


if __name__ == "__main__":
    try:
        main(standalone_mode=True)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
