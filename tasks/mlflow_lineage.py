"""MLflow lineage: one run per release, and the key revocation register.

Every protect flow run (and each release of the DVC pipeline) records one MLflow run holding:

* params: the resolved ``params.yaml``, flattened to ``section.key`` names;
* tags: MLflow's own (``mlflow.source.*``, ``mlflow.user``, ``mlflow.note.content``: the report),
  git commit (+ dirty flag), the ``data.dvc`` hash, for every entry of the weight catalog its
  sha256 (present) or status (missing, corrupt, user), the key fingerprint and kind (never the
  key), the Prefect flow run id, the release folder, its manifest hash and two digests:
  ``fam.params_digest`` (the method settings, the value ``release.json`` and the report carry)
  and ``fam.settings_digest`` (every setting, as logged in the params);
* metrics: the flat ``EVAL/metrics.json`` grouped by evaluation (``anonymity/psr_...``,
  :mod:`tasks.mlflow_conventions`);
* artifacts: ``release.json``, the resolved ``settings.json`` of the align, protect and
  evaluation folders, validation reports, ``report.md``, plots; the protect manifest and the
  image grid (real names, original faces) only with ``lineage.log_originals: true``;
* dataset inputs: the DVC-tracked data and the aligned set, named by their hashes.

A run is opened when its work starts (:func:`open_run`) and closed when it ends, so its duration
and status are those of the work. This module is the MLflow adapter; :mod:`tasks.lineage` wraps
it in Prefect tasks. Revocation (the ``revoke-key`` flow) is a run in the
``<experiment>-revocations`` experiment plus the tag ``fam.key_revoked=true`` on every release
run of that fingerprint, so ``fam audit`` answers from MLflow alone.

Only :class:`mlflow.MlflowClient` calls with explicit run ids are used: MLflow's active run is
thread-local, and Prefect runs tasks in worker threads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fam.artifacts import (
    AlignManifest,
    AlignSummary,
    LossCurve,
    Metrics,
    ProtectManifest,
    ReleaseIndex,
    ResolvedSettings,
)
from fam.config import Params
from fam.errors import UserError
from fam.io_utils import sha256_file
from fam.outdir import make_dir
from fam.provenance import code_version
from tasks import mlflow_conventions as conv

TAG = "fam."  # prefix of every tag we write
# fam.lineage_format of the runs this code writes. 2: metric names grouped with "/",
# fam.params_digest = the method digest (as in release.json), fam.settings_digest = all settings.
# Runs without the tag are format 1: flat metric names, fam.params_digest = all settings.
LINEAGE_FORMAT = "2"
REVOCATIONS_SUFFIX = "-revocations"
_MAX_BATCH = 100  # MLflow's log_batch limit on params/tags per call
REPORT = "report.md"  # fam evaluate's report; also the run's UI copy at the artifact root


@dataclass(frozen=True)
class Store:
    """Where lineage goes: tracking URI, experiment, artifact root (see :meth:`from_params`)."""

    tracking_uri: str
    experiment: str
    artifact_root: str
    log_originals: bool = False  # lineage.log_originals
    tracking_uri_from: str = "mlops.tracking_uri"
    experiment_from: str = "mlops.experiment"

    @classmethod
    def from_params(
        cls,
        params: Params,
        environ: Mapping[str, str] | None = None,
        overrides: Mapping[str, Any] | Iterable[str] | None = None,
    ) -> Store:
        """A setting given for this run (``overrides``: a flow's parameter or ``--set`` strings),
        then ``MLFLOW_TRACKING_URI`` / ``MLFLOW_EXPERIMENT_NAME``, then ``params.mlops``."""
        where = conv.store_address(params, environ, conv.overridden_keys(overrides))
        return cls(
            where.tracking_uri,
            where.experiment,
            params.mlops.artifact_root,
            params.lineage.log_originals,
            where.tracking_uri_from,
            where.experiment_from,
        )

    def describe(self) -> str:
        return f"{self.tracking_uri} (from {self.tracking_uri_from}), experiment {self.experiment!r}"

    def client(self) -> Any:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            # resolved: runs/ may be a link to a volume folder not made yet (the Docker image)
            make_dir(Path(self.tracking_uri.removeprefix("sqlite:///")).parent)
            if "://" not in self.artifact_root:
                make_dir(Path(self.artifact_root))
        return MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self, client: Any, name: str | None = None) -> str:
        """The experiment's id, creating it as a model-development experiment if it is new.

        A local store gets its artifacts under ``artifact_root``; a tracking server keeps its own
        artifact location (``mlflow server --artifacts-destination``), which its UI can serve.
        """
        name = name or self.experiment
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            if conv.EXPERIMENT_KIND_TAG not in exp.tags:  # made before the tag, or by someone else
                client.set_experiment_tag(exp.experiment_id, conv.EXPERIMENT_KIND_TAG, conv.EXPERIMENT_KIND)
            return exp.experiment_id
        location = None
        if conv.is_local_store(self.tracking_uri):
            root = Path(self.artifact_root)
            base = root.resolve().as_uri() if "://" not in self.artifact_root else self.artifact_root
            location = f"{base.rstrip('/')}/{name}"
        return client.create_experiment(
            name, artifact_location=location, tags={conv.EXPERIMENT_KIND_TAG: conv.EXPERIMENT_KIND}
        )


@dataclass
class ReleaseRecord:
    """What one release run records; paths are read when logged."""

    params: Params
    key_fingerprint: str
    key_kind: str
    out_dir: Path  # protect output (manifest.json + release/)
    aligned_dir: Path | None = None
    eval_dir: Path | None = None  # metrics.json, report.md, plots/, grid.png
    validation_reports: list[Path] = field(default_factory=list)
    flow_run_id: str | None = None
    run_name: str | None = None
    source_name: str = "fam"  # mlflow.source.name: the flow's entry point or the DVC stage
    extra_tags: dict[str, str] = field(default_factory=dict)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"optimise": {"weights": {"anonymity": 10}}}`` -> ``{"optimise.weights.anonymity": "10"}``."""
    out: dict[str, str] = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, f"{name}."))
        else:
            out[name] = json.dumps(v, sort_keys=True) if isinstance(v, list | tuple | Mapping) else str(v)
    return out


def git_tags() -> dict[str, str]:
    """Commit and dirty flag of the code that runs (:func:`fam.provenance.code_version`)."""
    version = code_version()
    return {"git_commit": version.commit, "git_dirty": str(version.dirty).lower()}


def data_version(dvc_file: Path = Path("data.dvc")) -> dict[str, str]:
    """The md5 DVC recorded for the data directory (what `dvc pull` restores)."""
    import yaml  # the .dvc file is DVC's own format, not params.yaml

    if not dvc_file.is_file():
        return {"data_dvc_md5": "unknown"}
    outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or [{}]
    return {"data_dvc_md5": str(outs[0].get("md5", "unknown")), "data_dvc_path": str(outs[0].get("path", ""))}


def weight_hashes() -> dict[str, str]:
    """Every weight catalog entry: its sha256 when the file is here and verified, else its status."""
    from fam import weights

    out = {}
    for entry in weights.entries():
        state, _ = weights.status(entry)
        out[f"weight.{entry.name}.sha256"] = str(entry.sha256) if state == "present" else state
    return out


# --------------------------------------------------------------------------------------------
# Run lifecycle: open when the work starts, fill and close when it ends.


def open_run(
    store: Store,
    *,
    run_name: str,
    source_name: str,
    params: Params | None = None,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    experiment: str | None = None,
) -> str:
    """Create a RUNNING run (start time: now) with the standard tags; returns its id."""
    client = store.client()
    all_tags = {
        **conv.standard_tags(source_name),
        f"{TAG}lineage_format": LINEAGE_FORMAT,
        **{f"{TAG}{k}": v for k, v in git_tags().items()},
        **{f"{TAG}{k}": v for k, v in (tags or {}).items()},
    }
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(store.experiment_id(client, experiment), run_name=run_name, tags=all_tags)
    if params is not None:
        _log_params(client, run.info.run_id, params, store.log_originals)
    return run.info.run_id


def close_run(store: Store, run_id: str, status: str = "FINISHED") -> None:
    """End a run (end time: now) unless it already ended."""
    client = store.client()
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, status=status)


def _experiment_runs(client: Any, store: Store, where: str) -> list[Any]:
    """Runs of the store's experiment that match an MLflow search filter ([] before it exists)."""
    exp = client.get_experiment_by_name(store.experiment)
    return [] if exp is None else _search(client, [exp.experiment_id], where)


def fail_running(store: Store, flow_run_id: str) -> list[str]:
    """Mark FAILED every still-running run of a Prefect flow run (its flow failed or crashed)."""
    client = store.client()
    where = f"tags.`{TAG}prefect_flow_run_id` = '{_quote(flow_run_id)}' and attributes.status = 'RUNNING'"
    runs = _experiment_runs(client, store, where)
    for r in runs:
        client.set_terminated(r.info.run_id, status="FAILED")
    return [r.info.run_id for r in runs]


def log_release(
    record: ReleaseRecord, store: Store, *, run_id: str | None = None, parent_run_id: str | None = None
) -> str:
    """Record a release in ``run_id`` (opened when its work started; a new run if None) and close it."""
    if run_id is None:
        run_id = open_run(
            store,
            run_name=record.run_name or record.out_dir.name,
            source_name=record.source_name,
            params=record.params,
            parent_run_id=parent_run_id,
        )
    client = store.client()
    try:
        _log_params(client, run_id, record.params, store.log_originals)
        tags = _release_tags(record)
        if record.run_name:
            client.update_run(run_id, name=record.run_name)
        _log_tags(client, run_id, tags)
        _log_datasets(client, run_id, record.aligned_dir)
        _log_release_artifacts(client, run_id, record, store.log_originals)
        report = None
        if record.eval_dir is not None:
            report = _log_evaluation(client, run_id, record.eval_dir, store.log_originals)
        client.set_tag(run_id, "mlflow.note.content", conv.note(report or conv.release_summary(tags), REPORT))
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


def _release_tags(record: ReleaseRecord) -> dict[str, str]:
    manifest_path = record.out_dir / ProtectManifest.FILENAME
    tags = {
        f"{TAG}key_fingerprint": record.key_fingerprint,
        f"{TAG}key_kind": record.key_kind,
        f"{TAG}key_revoked": "false",
        f"{TAG}release_dir": str(record.out_dir.resolve()),
        f"{TAG}aligned_dir": str(record.aligned_dir.resolve()) if record.aligned_dir else "",
        # The method digest, as release.json and the report give it; the settings logged as
        # params have their own digest. Without a manifest the settings' method digest stands in.
        f"{TAG}params_digest": record.params.method_digest(),
        f"{TAG}settings_digest": record.params.digest(),
        **{f"{TAG}{k}": v for k, v in data_version().items()},
        **{f"{TAG}{k}": v for k, v in weight_hashes().items()},
        **{f"{TAG}{k}": v for k, v in record.extra_tags.items()},
    }
    if manifest_path.is_file():
        tags[f"{TAG}manifest_sha256"] = sha256_file(manifest_path)
        manifest = ProtectManifest.read(manifest_path)
        tags[f"{TAG}params_digest"] = manifest.params_digest
        tags[f"{TAG}generator_id"] = manifest.generator_id
        tags[f"{TAG}code_version"] = manifest.code_version
        tags[f"{TAG}n_images"] = str(len(manifest.items))
    if record.flow_run_id:
        tags[f"{TAG}prefect_flow_run_id"] = record.flow_run_id
    if record.aligned_dir is not None and (record.aligned_dir / AlignManifest.FILENAME).is_file():
        tags[f"{TAG}aligned_manifest_sha256"] = sha256_file(record.aligned_dir / AlignManifest.FILENAME)
    return tags


# --------------------------------------------------------------------------------------------
# Revocation register and audit.


def revoke(
    store: Store,
    fingerprint: str,
    *,
    reason: str,
    replacement_fingerprint: str | None = None,
    flow_run_id: str | None = None,
    source_name: str = "fam",
) -> str:
    """Record that ``fingerprint`` is revoked and tag every release run made with it."""
    client = store.client()
    tags = {
        "revoked_fingerprint": fingerprint,
        "revocation_reason": reason,
        **({"replacement_fingerprint": replacement_fingerprint} if replacement_fingerprint else {}),
        **({"prefect_flow_run_id": flow_run_id} if flow_run_id else {}),
    }
    run_id = open_run(
        store,
        run_name=f"revoke {fingerprint}",
        source_name=source_name,
        tags=tags,
        experiment=store.experiment + REVOCATIONS_SUFFIX,
    )
    note = f"Key {fingerprint} revoked: {reason}. Replacement key: {replacement_fingerprint or 'none'}."
    client.set_tag(run_id, "mlflow.note.content", note)
    client.set_terminated(run_id, status="FINISHED")
    for release in releases_for(store, fingerprint):
        for rid in release["runs"]:
            client.set_tag(rid, f"{TAG}key_revoked", "true")
            client.set_tag(rid, f"{TAG}revocation_run_id", run_id)
    return run_id


def releases_for(store: Store, fingerprint: str) -> list[dict[str, Any]]:
    """Each release made with ``fingerprint`` once, newest first.

    A release may be recorded by several finished runs (the protect flow, then evaluate-release,
    or a re-run of the DVC ``report`` stage); they are one release when they name the same
    manifest (by hash, else the same folder). ``run_id`` is the first run that recorded it,
    ``runs`` all of them, oldest first. Runs that failed or still run are not releases.
    """
    client = store.client()
    where = f"tags.`{TAG}key_fingerprint` = '{_quote(fingerprint)}' and attributes.status = 'FINISHED'"
    runs = _experiment_runs(client, store, where)
    found: dict[str, dict[str, Any]] = {}
    for r in reversed(runs):  # oldest first: the first run of a release describes it
        t = r.data.tags
        same = t.get(f"{TAG}manifest_sha256") or t.get(f"{TAG}release_dir") or r.info.run_id
        if same in found:
            found[same]["runs"].append(r.info.run_id)
            found[same]["key_revoked"] |= t.get(f"{TAG}key_revoked") == "true"
            continue
        found[same] = {
            "run_id": r.info.run_id,
            "runs": [r.info.run_id],
            "run_name": r.info.run_name,
            "status": r.info.status,
            "start_time": r.info.start_time,
            "release_dir": t.get(f"{TAG}release_dir"),
            "aligned_dir": t.get(f"{TAG}aligned_dir"),
            "manifest_sha256": t.get(f"{TAG}manifest_sha256"),
            "n_images": t.get(f"{TAG}n_images"),
            "data_dvc_md5": t.get(f"{TAG}data_dvc_md5"),
            "aligned_manifest_sha256": t.get(f"{TAG}aligned_manifest_sha256"),
            "git_commit": t.get(f"{TAG}git_commit"),
            "git_dirty": t.get(f"{TAG}git_dirty"),
            "params_digest": t.get(f"{TAG}params_digest"),
            "settings_digest": t.get(f"{TAG}settings_digest"),
            "lineage_format": t.get(f"{TAG}lineage_format", "1"),
            "key_kind": t.get(f"{TAG}key_kind"),
            "prefect_flow_run_id": t.get(f"{TAG}prefect_flow_run_id"),
            "key_revoked": t.get(f"{TAG}key_revoked") == "true",
        }
    return sorted(found.values(), key=lambda x: x["start_time"] or 0, reverse=True)


def revocation_of(store: Store, fingerprint: str) -> dict[str, Any] | None:
    """The revocation record of ``fingerprint``, or None if it was never revoked."""
    client = store.client()
    exp = client.get_experiment_by_name(store.experiment + REVOCATIONS_SUFFIX)
    if exp is None:
        return None
    runs = _search(client, [exp.experiment_id], f"tags.`{TAG}revoked_fingerprint` = '{_quote(fingerprint)}'")
    if not runs:
        return None
    t = runs[-1].data.tags  # the first revocation (runs come newest first)
    return {
        "run_id": runs[-1].info.run_id,
        "time": runs[-1].info.start_time,
        "reason": t.get(f"{TAG}revocation_reason"),
        "replacement_fingerprint": t.get(f"{TAG}replacement_fingerprint"),
        "prefect_flow_run_id": t.get(f"{TAG}prefect_flow_run_id"),
    }


# --------------------------------------------------------------------------------------------


def _search(client: Any, exp_ids: list[str], filter_string: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs(
            exp_ids,
            filter_string=filter_string,
            max_results=1000,
            order_by=["attributes.start_time DESC"],
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _log_params(client: Any, run_id: str, params: Params, log_originals: bool) -> None:
    # Logging a param again with the same value is allowed, so a run opened with its params
    # can be filled with the same ones at the end.
    from mlflow.entities import Param

    tree = conv.settings_for_store(params.to_dict(), log_originals)
    values = [Param(k, v[:6000]) for k, v in flatten(tree).items()]
    for i in range(0, len(values), _MAX_BATCH):
        client.log_batch(run_id, params=values[i : i + _MAX_BATCH])


def _log_tags(client: Any, run_id: str, tags: Mapping[str, str]) -> None:
    from mlflow.entities import RunTag

    batch = [RunTag(k, v) for k, v in tags.items()]
    for i in range(0, len(batch), _MAX_BATCH):
        client.log_batch(run_id, tags=batch[i : i + _MAX_BATCH])


def _log_datasets(client: Any, run_id: str, aligned_dir: Path | None) -> None:
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    dv = data_version()
    if dv["data_dvc_md5"] != "unknown":
        source = LocalArtifactDatasetSource(str(Path(dv.get("data_dvc_path") or "data").resolve()))
        ds = MetaDataset(source, name="data (data.dvc)", digest=dv["data_dvc_md5"][:36])
        inputs.append(DatasetInput(ds._to_mlflow_entity(), [InputTag("mlflow.data.context", "source")]))
    if aligned_dir is not None and (aligned_dir / AlignManifest.FILENAME).is_file():
        digest = sha256_file(aligned_dir / AlignManifest.FILENAME)
        source = LocalArtifactDatasetSource(str(aligned_dir.resolve()))
        ds = MetaDataset(source, name="aligned", digest=digest[:36])
        inputs.append(
            DatasetInput(ds._to_mlflow_entity(), [InputTag("mlflow.data.context", "protect-input")])
        )
    if inputs:
        client.log_inputs(run_id, datasets=inputs)


def _put(client: Any, run_id: str, path: Path, folder: str) -> None:
    if path.is_file():
        client.log_artifact(run_id, str(path), artifact_path=folder)
    elif path.is_dir():
        client.log_artifacts(run_id, str(path), artifact_path=folder)


def _put_settings(client: Any, run_id: str, folder: Path, artifact_dir: str, log_originals: bool) -> None:
    """``settings.json`` of an output folder, with real names withheld unless allowed."""
    if not (folder / ResolvedSettings.FILENAME).is_file():
        return
    doc = ResolvedSettings.read(folder).to_dict()
    doc["params"] = conv.settings_for_store(doc["params"], log_originals)
    client.log_dict(run_id, doc, f"{artifact_dir}/{ResolvedSettings.FILENAME}")


def _put_validation(client: Any, run_id: str, reports: list[Path], log_originals: bool) -> None:
    from tasks.gx_suites import data_docs_dir

    for report in reports:
        if report.is_file():
            text = conv.validation_report_for_store(report.read_text(), log_originals)
            client.log_text(run_id, text, f"validation/{report.name}")
            # Data Docs quote the rows at fault (input paths: real names) except for the metrics suite.
            docs = data_docs_dir(report)
            if docs.is_dir() and (log_originals or json.loads(text).get("suite") == "metrics"):
                client.log_artifacts(run_id, str(docs), f"validation/{docs.name}")


def _log_release_artifacts(client: Any, run_id: str, record: ReleaseRecord, log_originals: bool) -> None:
    if log_originals:  # input paths and real names: private lineage
        _put(client, run_id, record.out_dir / ProtectManifest.FILENAME, "protect")
    _put(client, run_id, record.out_dir / ReleaseIndex.FOLDER / ReleaseIndex.FILENAME, "protect")
    _put_settings(client, run_id, record.out_dir, "protect", log_originals)
    _log_loss_curve(client, run_id, record.out_dir)
    if record.aligned_dir is not None:
        _put(client, run_id, record.aligned_dir / AlignSummary.FILENAME, "align")
        _put_settings(client, run_id, record.aligned_dir, "align", log_originals)
    _put_validation(client, run_id, [Path(p) for p in record.validation_reports], log_originals)


def _log_loss_curve(client: Any, run_id: str, out_dir: Path) -> None:
    """The protection's mean loss terms as step metrics (``protect/loss/<term>``, step = Adam step)."""
    from mlflow.entities import Metric

    path = out_dir / LossCurve.FILENAME
    if not path.is_file():  # outputs of a version before loss curves
        return
    curve = LossCurve.read(path)
    ts = _now_ms()
    batch = [
        Metric(f"protect/loss/{term}", value, ts, step)
        for step, row in enumerate(curve.rows)
        for term, value in zip(LossCurve.TERMS, row, strict=True)
    ]
    for i in range(0, len(batch), _MAX_BATCH):
        client.log_batch(run_id, metrics=batch[i : i + _MAX_BATCH])
    _put(client, run_id, path, "protect")


def _log_evaluation(client: Any, run_id: str, eval_dir: Path, log_originals: bool) -> str | None:
    """Metrics (grouped names), evaluation files and plots; returns the report as MLflow shows it."""
    from mlflow.entities import Metric

    if (eval_dir / Metrics.FILENAME).is_file():
        values = Metrics.read(eval_dir).values
        names = conv.metric_names(values)
        ts = _now_ms()
        batch = [Metric(names[k], v, ts, 0) for k, v in values.items()]
        for i in range(0, len(batch), _MAX_BATCH):
            client.log_batch(run_id, metrics=batch[i : i + _MAX_BATCH])
        client.log_dict(run_id, names, "evaluation/metric_names.json")
    for name in (Metrics.FILENAME, Metrics.FAMILIES_FILENAME, REPORT, "thresholds.json"):
        _put(client, run_id, eval_dir / name, "evaluation")
    _put_settings(client, run_id, eval_dir, "evaluation", log_originals)
    logged = set()
    if log_originals and (eval_dir / "grid.png").is_file():  # original faces
        _put(client, run_id, eval_dir / "grid.png", "evaluation")
        logged.add("grid.png")
    plots = eval_dir / "plots"
    if plots.is_dir():
        _put(client, run_id, plots, "evaluation/plots")
        logged |= {p.relative_to(eval_dir).as_posix() for p in plots.rglob("*") if p.is_file()}
    if not (eval_dir / REPORT).is_file():
        return None
    # The copy MLflow's UI renders (artifact root and run description): its image links point
    # at the run's artifacts. evaluation/report.md stays the file as written, links relative.
    ui = conv.report_for_ui((eval_dir / REPORT).read_text(), run_id, "evaluation", logged)
    client.log_text(run_id, ui, REPORT)
    return ui


# --------------------------------------------------------------------------------------------
# Training runs (flow train-prior): params, code and data versions, per-chunk metrics, artifacts.


def open_training_run(
    store: Store,
    params: Params,
    *,
    run_name: str,
    data_file: Path,
    flow_run_id: str | None,
    source_name: str = "fam",
) -> str:
    tags = {
        "flow": "train-prior",
        "settings_digest": params.digest(),
        "train_data_sha256": sha256_file(data_file),
        "train_data_path": str(data_file.resolve()),
        **({"prefect_flow_run_id": flow_run_id} if flow_run_id else {}),
    }
    run_id = open_run(store, run_name=run_name, source_name=source_name, params=params, tags=tags)
    digest = tags["train_data_sha256"][:12]
    note = f"Training of the compact StyleGAN2 prior on `{data_file.name}` (sha256 {digest})."
    store.client().set_tag(run_id, "mlflow.note.content", note)
    return run_id


def log_training_chunk(store: Store, run_id: str, step: int, values: Mapping[str, float | None]) -> None:
    """Step metrics ``training/<name>`` (``training/kimg``, ``training/fid``, ...)."""
    from mlflow.entities import Metric

    ts = _now_ms()
    batch = [
        Metric(conv.metric_name(k, conv.TRAINING_GROUP), float(v), ts, step)
        for k, v in values.items()
        if v is not None
    ]
    store.client().log_batch(run_id, metrics=batch)


def close_training_run(store: Store, run_id: str, artifacts: list[Path], status: str = "FINISHED") -> None:
    client = store.client()
    for path in artifacts:
        if path.is_file():
            client.log_artifact(run_id, str(path), artifact_path="training")
    client.set_terminated(run_id, status=status)


# --------------------------------------------------------------------------------------------
# The DVC pipeline's releases (stage ``report``): one parent run, one nested run per key.


def pipeline_keys(protect_root: Path) -> list[str]:
    """Key names of the DVC pipeline's releases (``protect_root/<key name>/manifest.json``)."""
    keys = sorted(p.name for p in protect_root.iterdir() if (p / ProtectManifest.FILENAME).is_file())
    if not keys:
        raise UserError(f"no protect output ({ProtectManifest.FILENAME}) under {protect_root}")
    return keys


STAGE_SOURCE = "tasks/stages.py:report"  # the `report` stage command (DVC and the main job)


def open_pipeline_run(store: Store, params: Params, keys: list[str]) -> str:
    """The ``report`` stage's run, opened before its metrics gate; named after the stage and keys."""
    return open_run(
        store,
        run_name=f"report ({', '.join(keys)})",
        source_name=STAGE_SOURCE,
        params=params,
        tags={"flow": "dvc", "stage": "report"},
    )


def dvc_stage(release_folder: str) -> str:
    """The dvc.yaml stage that writes ``runs/protect/<release_folder>``: ``k1`` -> ``protect@1``."""
    return f"protect@{release_folder.removeprefix('k')}"


def record_pipeline(
    params: Params,
    *,
    aligned_dir: Path,
    protect_root: Path,
    eval_dir: Path,
    evaluated_key: str | None,
    validation_dir: Path,
    extra_reports: list[Path],
    run_id: str | None = None,
    store: Store | None = None,
) -> dict[str, Any]:
    """Record every ``protect_root/<key name>/`` release of one ``dvc repro``; returns the run ids.

    The parent run (``run_id``, opened by :func:`open_pipeline_run` when the stage started)
    holds the evaluation: metrics, report, every validation report and every key fingerprint.
    Each key's release is a nested run named after its DVC stage (``protect@1``) with its own
    validation report; only these carry ``fam.key_fingerprint``, so ``fam audit`` lists each
    release once. The evaluated release's run points at the parent (``fam.evaluation_run_id``).
    """
    keys = pipeline_keys(protect_root)
    evaluated_key = evaluated_key or keys[0]
    if evaluated_key not in keys:
        raise UserError(f"--evaluated-key {evaluated_key!r} is not one of the releases: {', '.join(keys)}")
    store = store or Store.from_params(params)
    parent = run_id or open_pipeline_run(store, params, keys)
    manifests = {k: ProtectManifest.read(protect_root / k) for k in keys}
    fingerprints = {k: m.key.fingerprint for k, m in manifests.items()}
    client = store.client()
    try:
        _log_tags(
            client,
            parent,
            {
                f"{TAG}key_fingerprints": ",".join(fingerprints[k] for k in keys),
                f"{TAG}evaluated_key": evaluated_key,
                f"{TAG}params_digest": manifests[evaluated_key].params_digest,
                f"{TAG}settings_digest": params.digest(),
                f"{TAG}release_dir": str((protect_root / evaluated_key).resolve()),
            },
        )
        _log_datasets(client, parent, aligned_dir)
        reports = [*sorted(validation_dir.glob("*.json")), *extra_reports]
        _put_validation(client, parent, reports, store.log_originals)
        report = _log_evaluation(client, parent, eval_dir, store.log_originals)
        summary = f"DVC pipeline: releases {', '.join(keys)}; evaluated {evaluated_key}."
        client.set_tag(parent, "mlflow.note.content", conv.note(report or summary, REPORT))
        children = {
            k: log_release(
                ReleaseRecord(
                    params=params,
                    key_fingerprint=fingerprints[k],
                    key_kind=manifests[k].key.kind,
                    out_dir=protect_root / k,
                    aligned_dir=aligned_dir,
                    validation_reports=sorted(validation_dir.glob(f"release-{k}.json")),
                    run_name=dvc_stage(k),
                    source_name=STAGE_SOURCE,
                    extra_tags={
                        "flow": "dvc",
                        "stage": dvc_stage(k),
                        **({"evaluation_run_id": parent} if k == evaluated_key else {}),
                    },
                ),
                store,
                parent_run_id=parent,
            )
            for k in keys
        }
    except BaseException:
        close_run(store, parent, "FAILED")
        raise
    close_run(store, parent)
    return {
        "tracking_uri": store.tracking_uri,
        "experiment": store.experiment,
        "parent_run_id": parent,
        "release_runs": children,
        "key_fingerprints": fingerprints,
    }
