"""MLflow lineage: one run per release, and the key revocation register.

Every protect flow run (and the DVC ``report`` stage) records one MLflow run holding:

* params: the resolved ``params.yaml``, flattened to ``section.key`` names;
* tags: git commit (+ dirty flag), the ``data.dvc`` hash, for every entry of the weight catalog
  its sha256 (present) or status (missing, corrupt, user), the key fingerprint and kind (never
  the key), the Prefect flow run id, the release folder and its manifest hash;
* metrics: the flat ``EVAL/metrics.json``;
* artifacts: protect manifest, ``release.json``, the resolved ``settings.json`` of the align,
  protect and evaluation folders, validation reports, ``report.md``, plots and the small image grid;
* dataset inputs: the DVC-tracked data and the aligned set, named by their hashes.

This module is the MLflow adapter; :mod:`tasks.lineage` wraps it in Prefect tasks.
Revocation (the ``revoke-key`` flow) is a run in the ``<experiment>-revocations`` experiment
plus the tag ``fam.key_revoked=true`` on every release run of that fingerprint, so
``fam audit`` answers from MLflow alone.

Only :class:`mlflow.MlflowClient` calls with explicit run ids are used: MLflow's active run is
thread-local, and Prefect runs tasks in worker threads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fam.artifacts import (
    AlignManifest,
    AlignSummary,
    Metrics,
    ProtectManifest,
    ReleaseIndex,
    ResolvedSettings,
)
from fam.config import Params
from fam.errors import UserError
from fam.io_utils import sha256_file
from fam.provenance import code_version

TAG = "fam."  # prefix of every tag we write
REVOCATIONS_SUFFIX = "-revocations"
_MAX_BATCH = 100  # MLflow's log_batch limit on params/tags per call


@dataclass(frozen=True)
class Store:
    """Where lineage goes (``params.mlops``): tracking URI, experiment, artifact root."""

    tracking_uri: str
    experiment: str
    artifact_root: str

    @classmethod
    def from_params(cls, params: Params) -> Store:
        return cls(params.mlops.tracking_uri, params.mlops.experiment, params.mlops.artifact_root)

    def client(self) -> Any:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient

        if self.tracking_uri.startswith("sqlite:///"):
            db = Path(self.tracking_uri.removeprefix("sqlite:///"))
            db.parent.mkdir(parents=True, exist_ok=True)
        return MlflowClient(tracking_uri=self.tracking_uri)

    def experiment_id(self, client: Any, name: str | None = None) -> str:
        name = name or self.experiment
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        root = Path(self.artifact_root)
        location = root.resolve().as_uri() if "://" not in self.artifact_root else self.artifact_root
        return client.create_experiment(name, artifact_location=f"{location.rstrip('/')}/{name}")


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


def log_release(record: ReleaseRecord, store: Store, *, parent_run_id: str | None = None) -> str:
    """Create and finish one MLflow run for a release; returns its run id."""
    from mlflow.entities import Metric, Param

    client = store.client()
    exp_id = store.experiment_id(client)
    manifest_path = record.out_dir / ProtectManifest.FILENAME
    tags = {
        f"{TAG}key_fingerprint": record.key_fingerprint,
        f"{TAG}key_kind": record.key_kind,
        f"{TAG}key_revoked": "false",
        f"{TAG}release_dir": str(record.out_dir.resolve()),
        f"{TAG}aligned_dir": str(record.aligned_dir.resolve()) if record.aligned_dir else "",
        f"{TAG}params_digest": record.params.digest(),
        **{f"{TAG}{k}": v for k, v in git_tags().items()},
        **{f"{TAG}{k}": v for k, v in data_version().items()},
        **{f"{TAG}{k}": v for k, v in weight_hashes().items()},
        **{f"{TAG}{k}": v for k, v in record.extra_tags.items()},
    }
    if manifest_path.is_file():
        tags[f"{TAG}manifest_sha256"] = sha256_file(manifest_path)
        manifest = ProtectManifest.read(manifest_path)
        tags[f"{TAG}generator_id"] = manifest.generator_id
        tags[f"{TAG}code_version"] = manifest.code_version
        tags[f"{TAG}n_images"] = str(len(manifest.items))
    if record.flow_run_id:
        tags[f"{TAG}prefect_flow_run_id"] = record.flow_run_id
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(exp_id, run_name=record.run_name, tags=tags)
    run_id = run.info.run_id
    try:
        params = [Param(k, v[:6000]) for k, v in flatten(record.params.to_dict()).items()]
        for i in range(0, len(params), _MAX_BATCH):
            client.log_batch(run_id, params=params[i : i + _MAX_BATCH])
        metrics = _read_metrics(record.eval_dir)
        if metrics:
            ts = _now_ms()
            batch = [Metric(_metric_name(k), v, ts, 0) for k, v in metrics.items()]
            for i in range(0, len(batch), _MAX_BATCH):
                client.log_batch(run_id, metrics=batch[i : i + _MAX_BATCH])
        _log_datasets(client, run_id, record)
        _log_artifacts(client, run_id, record)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    return run_id


# --------------------------------------------------------------------------------------------
# Revocation register and audit.


def revoke(
    store: Store,
    fingerprint: str,
    *,
    reason: str,
    replacement_fingerprint: str | None = None,
    flow_run_id: str | None = None,
) -> str:
    """Record that ``fingerprint`` is revoked and tag every release run made with it."""
    client = store.client()
    exp_id = store.experiment_id(client, store.experiment + REVOCATIONS_SUFFIX)
    tags = {
        f"{TAG}revoked_fingerprint": fingerprint,
        f"{TAG}revocation_reason": reason,
        **({f"{TAG}replacement_fingerprint": replacement_fingerprint} if replacement_fingerprint else {}),
        **({f"{TAG}prefect_flow_run_id": flow_run_id} if flow_run_id else {}),
        **{f"{TAG}{k}": v for k, v in git_tags().items()},
    }
    run = client.create_run(exp_id, run_name=f"revoke {fingerprint}", tags=tags)
    client.set_terminated(run.info.run_id, status="FINISHED")
    for release in releases_for(store, fingerprint):
        client.set_tag(release["run_id"], f"{TAG}key_revoked", "true")
        client.set_tag(release["run_id"], f"{TAG}revocation_run_id", run.info.run_id)
    return run.info.run_id


def releases_for(store: Store, fingerprint: str) -> list[dict[str, Any]]:
    """Every release run made with ``fingerprint``, newest first."""
    client = store.client()
    exp = client.get_experiment_by_name(store.experiment)
    if exp is None:
        return []
    runs = _search(client, [exp.experiment_id], f"tags.`{TAG}key_fingerprint` = '{_quote(fingerprint)}'")
    out = []
    for r in runs:
        t = r.data.tags
        out.append(
            {
                "run_id": r.info.run_id,
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
                "key_kind": t.get(f"{TAG}key_kind"),
                "prefect_flow_run_id": t.get(f"{TAG}prefect_flow_run_id"),
                "key_revoked": t.get(f"{TAG}key_revoked") == "true",
            }
        )
    return out


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


def _metric_name(name: str) -> str:
    # MLflow allows alphanumerics, _ - . space / : ; anything else becomes _.
    return "".join(c if c.isalnum() or c in "_-. /:" else "_" for c in name)


def _read_metrics(eval_dir: Path | None) -> dict[str, float]:
    if eval_dir is None or not (eval_dir / Metrics.FILENAME).is_file():
        return {}
    return Metrics.read(eval_dir).values


def _log_datasets(client: Any, run_id: str, record: ReleaseRecord) -> None:
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import DatasetInput, InputTag

    inputs = []
    dv = data_version()
    if dv["data_dvc_md5"] != "unknown":
        source = LocalArtifactDatasetSource(str(Path(dv.get("data_dvc_path") or "data").resolve()))
        ds = MetaDataset(source, name="data (data.dvc)", digest=dv["data_dvc_md5"][:36])
        inputs.append(DatasetInput(ds._to_mlflow_entity(), [InputTag("mlflow.data.context", "source")]))
    if record.aligned_dir is not None and (record.aligned_dir / AlignManifest.FILENAME).is_file():
        digest = sha256_file(record.aligned_dir / AlignManifest.FILENAME)
        client.set_tag(run_id, f"{TAG}aligned_manifest_sha256", digest)
        source = LocalArtifactDatasetSource(str(record.aligned_dir.resolve()))
        ds = MetaDataset(source, name="aligned", digest=digest[:36])
        inputs.append(
            DatasetInput(ds._to_mlflow_entity(), [InputTag("mlflow.data.context", "protect-input")])
        )
    if inputs:
        client.log_inputs(run_id, datasets=inputs)


def _log_artifacts(client: Any, run_id: str, record: ReleaseRecord) -> None:
    def put(path: Path, folder: str) -> None:
        if path.is_file():
            client.log_artifact(run_id, str(path), artifact_path=folder)
        elif path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path=folder)

    for name in (
        ProtectManifest.FILENAME,
        f"{ReleaseIndex.FOLDER}/{ReleaseIndex.FILENAME}",
        ResolvedSettings.FILENAME,
    ):
        put(record.out_dir / name, "protect")
    if record.aligned_dir is not None:
        for name in (AlignSummary.FILENAME, ResolvedSettings.FILENAME):
            put(record.aligned_dir / name, "align")
    for report in record.validation_reports:
        put(Path(report), "validation")
    if record.eval_dir is not None:
        for name in (
            Metrics.FILENAME,
            Metrics.FAMILIES_FILENAME,
            ResolvedSettings.FILENAME,
            "report.md",
            "thresholds.json",
            "grid.png",
        ):
            put(record.eval_dir / name, "evaluation")
        put(record.eval_dir / "plots", "evaluation/plots")


# --------------------------------------------------------------------------------------------
# Training runs (flow train-prior): params, code and data versions, per-chunk metrics, artifacts.


def open_training_run(
    store: Store, params: Params, *, run_name: str, data_file: Path, flow_run_id: str | None
) -> str:
    from mlflow.entities import Param

    client = store.client()
    tags = {
        f"{TAG}flow": "train-prior",
        f"{TAG}params_digest": params.digest(),
        f"{TAG}train_data_sha256": sha256_file(data_file),
        f"{TAG}train_data_path": str(data_file.resolve()),
        **{f"{TAG}{k}": v for k, v in git_tags().items()},
        **({f"{TAG}prefect_flow_run_id": flow_run_id} if flow_run_id else {}),
    }
    run = client.create_run(store.experiment_id(client), run_name=run_name, tags=tags)
    values = [Param(k, v[:6000]) for k, v in flatten(params.to_dict()).items()]
    for i in range(0, len(values), _MAX_BATCH):
        client.log_batch(run.info.run_id, params=values[i : i + _MAX_BATCH])
    return run.info.run_id


def log_training_chunk(store: Store, run_id: str, step: int, values: Mapping[str, float | None]) -> None:
    from mlflow.entities import Metric

    batch = [Metric(k, float(v), _now_ms(), step) for k, v in values.items() if v is not None]
    store.client().log_batch(run_id, metrics=batch)


def close_training_run(store: Store, run_id: str, artifacts: list[Path], status: str = "FINISHED") -> None:
    client = store.client()
    for path in artifacts:
        if path.is_file():
            client.log_artifact(run_id, str(path), artifact_path="training")
    client.set_terminated(run_id, status=status)


# --------------------------------------------------------------------------------------------
# The DVC pipeline's releases (stage ``report``): one parent run, one nested run per key.


def record_pipeline(
    params: Params,
    *,
    aligned_dir: Path,
    protect_root: Path,
    eval_dir: Path,
    evaluated_key: str | None,
    validation_dir: Path,
    extra_reports: list[Path],
) -> dict[str, Any]:
    """Record every ``protect_root/<key name>/`` release of one ``dvc repro``; returns the run ids.

    The parent run holds the evaluated key's release, the metrics and evaluation artifacts and
    every key fingerprint; each key's release gets a nested run with its own validation report.
    """
    keys = sorted(p.name for p in protect_root.iterdir() if (p / ProtectManifest.FILENAME).is_file())
    if not keys:
        raise UserError(f"no protect output ({ProtectManifest.FILENAME}) under {protect_root}")
    evaluated_key = evaluated_key or keys[0]
    store = Store.from_params(params)
    manifests = {k: ProtectManifest.read(protect_root / k) for k in keys}
    fingerprints = {k: m.key.fingerprint for k, m in manifests.items()}
    parent = log_release(
        ReleaseRecord(
            params=params,
            key_fingerprint=fingerprints[evaluated_key],
            key_kind=manifests[evaluated_key].key.kind,
            out_dir=protect_root / evaluated_key,
            aligned_dir=aligned_dir,
            eval_dir=eval_dir,
            validation_reports=[*sorted(validation_dir.glob("*.json")), *extra_reports],
            run_name=f"dvc repro ({len(keys)} keys)",
            extra_tags={"flow": "dvc", "key_fingerprints": ",".join(fingerprints[k] for k in keys)},
        ),
        store,
    )
    children = {
        k: log_release(
            ReleaseRecord(
                params=params,
                key_fingerprint=fingerprints[k],
                key_kind=manifests[k].key.kind,
                out_dir=protect_root / k,
                aligned_dir=aligned_dir,
                validation_reports=sorted(validation_dir.glob(f"release-{k}.json")),
                run_name=f"dvc release {k}",
                extra_tags={"flow": "dvc", "dvc_key_name": k},
            ),
            store,
            parent_run_id=parent,
        )
        for k in keys
    }
    return {
        "tracking_uri": store.tracking_uri,
        "experiment": store.experiment,
        "parent_run_id": parent,
        "release_runs": children,
        "key_fingerprints": fingerprints,
    }
