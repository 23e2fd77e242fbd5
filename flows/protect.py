"""Flow ``protect-dataset``: protect a data set under one key and record its lineage.

Parameters carry a key *reference* (``{"key_file": PATH}``, ``{"env_var": NAME}``,
``{"secret_block": NAME}`` or ``{"research_seed": N}``), never key material. A failed
validation suite stops the flow before lineage is recorded or anything is published.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.runners import make_task_runner
from tasks import align, evaluate, lineage, prefect_artifacts, protect, publish, validation
from tasks.common import settings, with_retries
from tasks.keyref import FlowKeyRef


@flow(name="protect-shards")
def protect_shards(
    aligned_dir: str,
    out_dir: str,
    key: dict[str, Any],
    params_path: str,
    overrides: dict[str, Any],
    people: list[str],
    fingerprint: str,
    inversions_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Fan out one cached, retried task per shard of people on the configured task runner."""
    shard_task = with_retries(protect.protect_shard, settings(params_path, overrides))
    plan = protect.plan_shards(aligned_dir, params_path, overrides, people)
    args = (params_path, overrides)
    digests = (plan["inputs_digest"], plan["settings_digest"], fingerprint, inversions_dir)
    tasks = [
        (shard_task.with_options(task_run_name=f"protect-shard-{i:03d}"), shard)
        for i, shard in enumerate(plan["shards"])
    ]
    results = []
    if tasks and not (Path(out_dir) / ".fam" / "run.json").is_file():
        # The first shard runs alone: it creates the output folder's run record, which the
        # library's resume check needs before other writers may share the folder.
        first, shard = tasks.pop(0)
        results.append(first(aligned_dir, out_dir, key, *args, shard, *digests))
    futures = [task_.submit(aligned_dir, out_dir, key, *args, shard, *digests) for task_, shard in tasks]
    return results + [f.result() for f in futures]


@flow(
    name="protect-dataset",
    on_failure=[lineage.fail_lineage_runs],
    on_crashed=[lineage.fail_lineage_runs],
)
def protect_dataset(
    aligned_dir: str,
    out_dir: str,
    key: dict[str, Any],
    params_path: str = "params.yaml",
    overrides: dict[str, Any] | None = None,
    input_dir: str | None = None,
    persons: list[str] | None = None,
    inversions_dir: str | None = None,
    eval_dir: str | None = None,
    release2_dir: str | None = None,
    thresholds_from: str | None = None,
    publish_dir: str | None = None,
    lineage_tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Protect the faces of ``aligned_dir`` under one key into ``out_dir``, gate, evaluate, record.

    Args:
        aligned_dir: Aligned faces (a `fam align` output); the flow aligns ``input_dir`` into it
            first when that is given.
        out_dir: Protect output folder (``release/`` is the publishable part); re-running resumes.
        key: A key reference, never key material: ``{"key_file": PATH}``, ``{"env_var": NAME}``,
            ``{"secret_block": NAME}`` or ``{"research_seed": N}``.
        params_path: The settings file (params.yaml).
        overrides: Dotted settings overrides, e.g. ``{"optimise.steps": 10}``.
        input_dir: Raw photos, one folder per person, aligned into ``aligned_dir`` first.
        persons: People to protect (default: all aligned people; with ``input_dir`` and no
            ``persons``, the ``mlops.subset`` people).
        inversions_dir: A `fam invert` output to reuse instead of inverting again.
        eval_dir: Evaluate the release into this folder (privacy, utility, quality).
        release2_dir: The same inputs protected under a second key (unlinkability, D_sys).
        thresholds_from: Aligned folder of people NOT in the release, or a thresholds.json, for the
            FMR thresholds. Default: with ``input_dir`` the flow aligns ``mlops.impostors`` people
            outside the release beside ``aligned_dir`` itself; without it, the people of
            ``aligned_dir`` the release lacks (the evaluation names this parameter if too few).
        publish_dir: Copy the validated ``release/`` here (never overwrites).
        lineage_tags: Extra MLflow tags.

    Returns:
        The MLflow run id, the key fingerprint, the counts and the output folders.
    """
    log = get_run_logger()
    overrides = dict(overrides or {})
    ref = FlowKeyRef.from_dict(key)  # refuses unknown fields, so no "key material" field can sneak in
    key = ref.to_dict()
    params = settings(params_path, overrides)
    run_id = lineage.open_lineage_run(params_path, overrides, "protect-dataset", out_dir)
    reports = validation.reports_dir_for(out_dir)
    reports.mkdir(parents=True, exist_ok=True)

    if input_dir is not None:
        if persons is None:  # raw input and no explicit people: the configured subset ([] = all)
            persons = list(params.mlops.subset.person) or None
        with_retries(align.align, params)(input_dir, aligned_dir, params_path, overrides, persons)
    input_report = validation.validate_input(aligned_dir, str(reports / "input.json"))
    identity = protect.key_identity(key)
    people = align.list_people(aligned_dir, persons)
    log.info(
        "%d people in %d shards, key %s",
        len(people),
        -(-len(people) // params.mlops.shard_size),
        identity["fingerprint"],
    )

    protect_shards.with_options(task_runner=make_task_runner(params.mlops))(
        aligned_dir, out_dir, key, params_path, overrides, people, identity["fingerprint"], inversions_dir
    )
    summary = protect.protect_finalise(
        aligned_dir, out_dir, key, params_path, overrides, people, inversions_dir
    )
    release_report = validation.validate_release(
        out_dir, aligned_dir, key, people, str(reports / "release.json")
    )
    validation_reports = [input_report, release_report]
    if eval_dir is not None and thresholds_from is None and input_dir is not None:
        thresholds_from = with_retries(align.align_impostors, params)(
            input_dir, aligned_dir, params_path, overrides, people
        )
    if eval_dir is not None:
        evaluate.evaluate(
            aligned_dir, out_dir, eval_dir, params_path, overrides, release2_dir, thresholds_from, key
        )
        validation_reports.append(validation.validate_metrics(eval_dir, str(reports / "metrics.json")))
    run_id = lineage.record_lineage(
        params_path,
        overrides,
        out_dir,
        aligned_dir,
        identity,
        validation_reports,
        eval_dir,
        "protect-dataset",
        lineage_tags,
        run_id,
    )
    prefect_artifacts.report_artifacts(
        params_path, overrides, run_id, out_dir, identity["fingerprint"], eval_dir
    )
    published = publish.publish(out_dir, publish_dir) if publish_dir else None
    return {
        "mlflow_run_id": run_id,
        "key_fingerprint": identity["fingerprint"],
        "n_images": summary["n_images"],
        "n_persons": summary["n_persons"],
        "n_rejected": summary["n_rejected"],
        "out_dir": out_dir,
        "published": published,
    }


if __name__ == "__main__":  # `python -m flows.protect` serves the flow without a work pool
    protect_dataset.serve(name="serve")
