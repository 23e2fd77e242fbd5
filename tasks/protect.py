"""Prefect tasks around the ``fam`` library: align, protect a shard of people, evaluate, publish.

Rules these tasks keep:

* Settings travel as ``(params_path, overrides)`` and are parsed inside each task by
  :func:`fam.config.load_params`; key material travels as a :class:`tasks.keyref.FlowKeyRef`
  (a path or a name) and is loaded inside the task that uses it, so neither a Prefect
  parameter, a cache key, a persisted result nor a log line ever holds a key.
* A protect shard is cached under (task, aligned-manifest hash, params digest, key fingerprint,
  people, output folder): a re-run after a crash skips finished shards, and the library's
  ``resume=True`` skips finished people on disk inside an interrupted one.
* Retries are for transient failures only: a :class:`fam.errors.UserError` (bad setting,
  missing weights, bad key) fails at once, because retrying cannot fix it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.context import TaskRunContext

from fam.config import Params, load_params
from fam.errors import UserError
from tasks import validation
from tasks.keyref import FlowKeyRef


def settings(params_path: str, overrides: dict[str, Any] | None) -> Params:
    return load_params(params_path, overrides or {})


def _retry_if_transient(task_: Any, task_run: Any, state: Any) -> bool:
    exc = state.result(raise_on_failure=False)
    return not isinstance(exc, UserError)


def with_retries(t: Any, params: Params) -> Any:
    """The task with the retry policy of ``params.mlops``."""
    return t.with_options(
        retries=params.mlops.retries,
        retry_delay_seconds=params.mlops.retry_delay_s,
        retry_condition_fn=_retry_if_transient,
    )


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# Keys: only the public identity leaves a task.


@task(name="key-identity")
def key_identity(key: dict[str, Any]) -> dict[str, str]:
    """``{"fingerprint", "kind"}`` of the referenced key (loads it, returns nothing secret)."""
    loaded = FlowKeyRef.from_dict(key).load()
    get_run_logger().info(
        "key %s (%s) from %s", loaded.fingerprint, loaded.kind, FlowKeyRef.from_dict(key).describe()
    )
    return {"fingerprint": loaded.fingerprint, "kind": loaded.kind}


# --------------------------------------------------------------------------------------------
# Data.


@task(name="align")
def align(
    input_dir: str, aligned_dir: str, params_path: str, overrides: dict[str, Any], persons: list[str] | None
) -> dict[str, Any]:
    """Detect and align ``input_dir/<person>/*`` (resumable: a re-run skips recorded files)."""
    from fam.faces.align import align_dataset
    from fam.models.factory import resolve_device

    params = settings(params_path, overrides)
    summary = align_dataset(
        Path(input_dir),
        Path(aligned_dir),
        params.align,
        persons=persons,
        progress=False,
        resume=True,
        device=str(resolve_device(params.runtime.device)),
    )
    get_run_logger().info("aligned %s into %s: %s", input_dir, aligned_dir, summary)
    return {"aligned_dir": aligned_dir}


@task(name="validate-input")
def validate_input(aligned_dir: str, report_path: str) -> str:
    report = validation.validate_input_manifest(aligned_dir)
    report.write(report_path)
    report.raise_for_failure()
    return report_path


@task(name="list-people")
def list_people(aligned_dir: str, persons: list[str] | None) -> list[str]:
    """People with at least one aligned image, sorted (optionally limited to ``persons``)."""
    import pandas as pd

    rows = pd.read_csv(Path(aligned_dir) / "manifest.csv", dtype={"person": str})
    people = sorted(set(rows.loc[rows["status"] == "aligned", "person"]))
    if persons is not None:
        unknown = sorted(set(persons) - set(people))
        if unknown:
            raise UserError(f"people {unknown} have no aligned image in {aligned_dir}")
        people = [p for p in people if p in set(persons)]
    return people


def shards(people: list[str], size: int) -> list[list[str]]:
    return [people[i : i + size] for i in range(0, len(people), size)]


# --------------------------------------------------------------------------------------------
# Protect.


def _shard_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Inputs + params digest + key fingerprint (+ people and output folder): never the key."""
    p = parameters
    parts = [
        context.task.name,
        p["inputs_digest"],
        p["params_digest"],
        p["fingerprint"],
        ",".join(p["persons"]),
        str(Path(p["out_dir"]).resolve()),
        str(p.get("inversions_dir") or ""),
    ]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@task(name="protect-shard", cache_key_fn=_shard_cache_key, persist_result=True)
def protect_shard(
    aligned_dir: str,
    out_dir: str,
    key: dict[str, Any],
    params_path: str,
    overrides: dict[str, Any],
    persons: list[str],
    inputs_digest: str,
    params_digest: str,
    fingerprint: str,
    inversions_dir: str | None = None,
) -> dict[str, Any]:
    """Protect the people of one shard into ``out_dir`` (resumable); returns counts only."""
    from fam.protect import protect_dataset

    params = settings(params_path, overrides)
    if params.digest() != params_digest:
        raise UserError("params.yaml changed while the flow ran; start the flow again")
    loaded = FlowKeyRef.from_dict(key).load()
    if loaded.fingerprint != fingerprint:
        raise UserError(f"the key at {FlowKeyRef.from_dict(key).describe()} changed while the flow ran")
    summary = protect_dataset(
        Path(aligned_dir),
        Path(out_dir),
        loaded,
        params,
        inversions=Path(inversions_dir) if inversions_dir else None,
        persons=persons,
        resume=True,
        progress=False,
    )
    get_run_logger().info("protected %d images of %d people", summary.n_images, summary.n_persons)
    return {"persons": persons, "n_images": summary.n_images, "n_rejected": summary.n_rejected}


@task(name="protect-finalise")
def protect_finalise(
    aligned_dir: str,
    out_dir: str,
    key: dict[str, Any],
    params_path: str,
    overrides: dict[str, Any],
    persons: list[str],
    inversions_dir: str | None = None,
) -> dict[str, Any]:
    """One resumed pass over every person: finds all shards done on disk and writes the full manifest."""
    from fam.protect import protect_dataset

    params = settings(params_path, overrides)
    summary = protect_dataset(
        Path(aligned_dir),
        Path(out_dir),
        FlowKeyRef.from_dict(key).load(),
        params,
        inversions=Path(inversions_dir) if inversions_dir else None,
        persons=persons,
        resume=True,
        progress=False,
    )
    return {
        "manifest": str(summary.manifest_path),
        "n_images": summary.n_images,
        "n_persons": summary.n_persons,
        "n_rejected": summary.n_rejected,
        "key_fingerprint": summary.key_fingerprint,
        "key_kind": summary.key_kind,
    }


@task(name="validate-release")
def validate_release(
    out_dir: str, aligned_dir: str, key: dict[str, Any], persons: list[str] | None, report_path: str
) -> str:
    """The release suite; the key is scanned for inside this task and never returned."""
    ref = FlowKeyRef.from_dict(key)
    report = validation.validate_release(
        out_dir,
        aligned_dir,
        expected_fingerprint=ref.load().fingerprint,
        key_hex=ref.material_hex(),
        persons=persons,
    )
    report.write(report_path)
    report.raise_for_failure()
    return report_path


# --------------------------------------------------------------------------------------------
# Evaluate and publish.


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
    """``fam.evaluate.evaluate_release``; the key (for the attacks) is loaded here, never passed on."""
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


@task(name="validate-metrics")
def validate_metrics(eval_dir: str, report_path: str) -> str:
    report = validation.validate_metrics(Path(eval_dir) / "metrics.json")
    report.write(report_path)
    report.raise_for_failure()
    return report_path


@task(name="publish")
def publish(out_dir: str, publish_dir: str) -> str:
    """Copy ``OUT/release/`` (and only it) to ``publish_dir``; runs after every suite passed."""
    src, dst = Path(out_dir) / "release", Path(publish_dir)
    if dst.exists() and any(dst.iterdir()):
        raise UserError(f"{dst} is not empty; publishing never overwrites an earlier release")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    (dst / "PUBLISHED.json").write_text(json.dumps({"from": str(src.resolve())}) + "\n")
    return str(dst)


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
    from prefect.runtime import flow_run

    from tasks import lineage

    params = settings(params_path, overrides)
    record = lineage.ReleaseRecord(
        params=params,
        key_fingerprint=identity["fingerprint"],
        key_kind=identity["kind"],
        out_dir=Path(out_dir),
        aligned_dir=Path(aligned_dir),
        eval_dir=Path(eval_dir) if eval_dir else None,
        validation_reports=[Path(p) for p in validation_reports],
        flow_run_id=str(flow_run.id) if flow_run.id else None,
        run_name=f"{flow_name} {Path(out_dir).name} {identity['fingerprint'][:11]}",
        extra_tags={"flow": flow_name, **(extra_tags or {})},
    )
    run_id = lineage.log_release(record, lineage.Store.from_params(params))
    get_run_logger().info("MLflow run %s in %s", run_id, params.mlops.tracking_uri)
    return run_id
