"""Prefect flows end to end on tiny registered models, under one session-scoped test harness.

* protect-dataset records one MLflow run with the resolved params, lineage tags and artifacts,
  and no byte of the key anywhere in the lineage store or the Prefect database;
* a failed validation suite stops the flow before publishing; its MLflow run ends FAILED;
* a crash half-way through, then a re-run, gives byte-identical outputs and skips cached shards;
* revoke-key marks the key revoked and re-protects its release under the new key.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fam.artifacts import LossCurve, Metrics, ProtectManifest
from fam.io_utils import sha256_file
from fam.keys import new_key_file
from tasks.keyref import FlowKeyRef
from tasks.mlflow_conventions import metric_name
from tests.helpers.artifacts import make_aligned_folder
from tests.helpers.paths import ROOT
from tests.helpers.tiny_models import TINY_SETTINGS

pytestmark = [pytest.mark.flow, pytest.mark.slow]  # one Prefect server start (~15-40 s) + real flow runs

PEOPLE = {"Alice": 3, "Bob": 2, "Carol": 1, "Dan": 2}  # protected
OTHERS = {f"Other{i}": 2 for i in range(6)}  # aligned but not protected: impostors for thresholds


def make_aligned(root: Path) -> Path:
    return make_aligned_folder(root, {**PEOPLE, **OTHERS})


@pytest.fixture()
def setup(tmp_path: Path, prefect_home):
    aligned = make_aligned(tmp_path / "aligned")
    key_file = tmp_path / "keys" / "k1.fam-key"
    key = new_key_file(key_file)
    settings = {
        **TINY_SETTINGS,
        "evaluate": {
            "recognizers": ["tiny"],  # built by the patched build_recognizers below
            "min_impostor_pairs": 50,
            "fid": False,
            "attacks": [],
            "baselines": [],
            "image_size": 32,
        },
        "mlops": {
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "artifact_root": str(tmp_path / "mlartifacts"),
            "experiment": "fam-flow-test",
            "shard_size": 2,
            "max_workers": 2,
            "retries": 0,
        },
    }
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(settings))
    return {"tmp": tmp_path, "aligned": aligned, "key_file": key_file, "key": key, "params": str(params_path)}


def run_protect(s: dict, out: Path, **kw):
    from flows.protect import protect_dataset

    return protect_dataset(
        aligned_dir=str(s["aligned"]),
        out_dir=str(out),
        key={"key_file": str(s["key_file"])},
        params_path=s["params"],
        persons=sorted(PEOPLE),
        **kw,
    )


def test_protect_flow_records_lineage_without_key_material(setup, monkeypatch):
    from mlflow import MlflowClient

    import fam.evaluate.runner
    from tests.helpers.tiny_models import TinyRecognizer

    monkeypatch.setattr(fam.evaluate.runner, "build_recognizers", lambda cfg: [TinyRecognizer()])
    s = setup
    result = run_protect(
        s, s["tmp"] / "out", eval_dir=str(s["tmp"] / "eval"), publish_dir=str(s["tmp"] / "published")
    )
    assert result["n_images"] == sum(PEOPLE.values()) and result["n_persons"] == len(PEOPLE)
    assert result["key_fingerprint"] == s["key"].fingerprint
    published = sorted(
        p.relative_to(s["tmp"] / "published").as_posix() for p in (s["tmp"] / "published").rglob("*.png")
    )
    assert len(published) == sum(PEOPLE.values()) and not any(n in "".join(published) for n in PEOPLE)

    client = MlflowClient(f"sqlite:///{s['tmp'] / 'mlflow.db'}")
    run = client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.end_time - run.info.start_time > 1000  # opened when the flow started, not at the end
    assert run.data.params["optimise.steps"] == "4"
    assert run.data.params["models.generator.name"] == "tiny"
    assert run.data.params["mlops.shard_size"] == "2"
    tags = run.data.tags
    assert tags["fam.key_fingerprint"] == s["key"].fingerprint and tags["fam.key_kind"] == "secret"
    assert tags["fam.n_images"] == str(sum(PEOPLE.values()))
    assert len(tags["fam.prefect_flow_run_id"]) == 36  # a UUID
    assert tags["fam.flow"] == "protect-dataset"
    assert tags["mlflow.source.name"] == "flows/protect.py:protect_dataset"
    assert tags["mlflow.source.type"] == "JOB"
    release_index = json.loads((s["tmp"] / "out" / "release" / "release.json").read_text())
    assert tags["fam.params_digest"] == release_index["params_digest"]  # one name, one value
    assert tags["mlflow.note.content"].startswith("# FaceAnonyMixer evaluation")
    assert tags["fam.manifest_sha256"] == sha256_file(s["tmp"] / "out" / "manifest.json")
    assert len(tags["fam.aligned_manifest_sha256"]) == 64
    assert any(k.startswith("fam.weight.") for k in tags)  # registry files present here are hashed
    metrics = {metric_name(k): v for k, v in Metrics.read(s["tmp"] / "eval").values.items()}
    # the evaluation's metrics, plus the protection's loss curve as step metrics (last step shown)
    curve = LossCurve.read(s["tmp"] / "out")
    metrics |= {f"protect/loss/{t}": curve.column(t)[-1] for t in LossCurve.TERMS}
    assert run.data.metrics == pytest.approx(metrics)
    history = client.get_metric_history(run.info.run_id, "protect/loss/total")
    assert sorted(m.step for m in history) == list(range(curve.steps + 1))
    assert "anonymity/psr_anonymity_tiny_fmr1e-3" in run.data.metrics
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "validation")}
    # the reports, and the Data Docs of the metrics suite only (the others quote input paths)
    reports = {"validation/input.json", "validation/release.json", "validation/metrics.json"}
    assert arts == reports | {"validation/metrics-data-docs"}
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/metrics.json", "evaluation/report.md", "evaluation/plots"} <= arts
    assert "evaluation/grid.png" not in arts  # original faces: lineage.log_originals is false
    assert {a.path for a in client.list_artifacts(run.info.run_id, "protect")} == {
        "protect/release.json",
        "protect/settings.json",
        "protect/loss_curve.csv",  # means over persons: no names
    }
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["data (data.dvc)", "aligned"] or [
        d.dataset.name for d in run.inputs.dataset_inputs
    ] == ["aligned"]

    # The key never reaches the lineage store, the artifacts or the Prefect database.
    key_hex = FlowKeyRef(key_file=str(s["key_file"])).material_hex()
    assert key_hex
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL

    stores = [
        s["tmp"] / "mlflow.db",
        *(s["tmp"] / "mlartifacts").rglob("*"),
        *(s["tmp"] / "out" / "release").rglob("*"),
    ]
    prefect_db = PREFECT_API_DATABASE_CONNECTION_URL.value() or ""
    if prefect_db.startswith("sqlite"):
        stores.append(Path(prefect_db.split("///", 1)[1]))
    stores += list(Path(s["tmp"].parent).glob("prefect-results*/**/*"))
    checked = 0
    for f in stores:
        if f.is_file():
            data = f.read_bytes()
            assert key_hex.encode() not in data.lower() and bytes.fromhex(key_hex) not in data, f
            checked += 1
    assert checked > 5


def test_failed_suite_stops_before_lineage_and_publish(setup):
    s = setup
    lines = (s["aligned"] / "manifest.csv").read_text().splitlines()
    (s["aligned"] / "manifest.csv").write_text("\n".join([*lines, lines[1]]) + "\n")  # an input listed twice
    from tasks.gx_suites import ValidationFailed

    with pytest.raises(ValidationFailed, match="every input appears once"):
        run_protect(s, s["tmp"] / "out", publish_dir=str(s["tmp"] / "published"))
    assert not (s["tmp"] / "published").exists()
    assert not (s["tmp"] / "out").exists()
    report = json.loads((s["tmp"] / "out-validation" / "input.json").read_text())
    assert report["success"] is False
    # The flow's run was opened when it started and ends FAILED, holding no release.
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{s['tmp'] / 'mlflow.db'}")
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FAILED" and "fam.key_fingerprint" not in run.data.tags


def test_crash_half_way_then_rerun_is_byte_identical(setup, monkeypatch):
    import fam.protect

    s = setup
    clean = run_protect(s, s["tmp"] / "clean")
    real = fam.protect.protect_dataset
    calls: list[tuple[str, ...]] = []
    crash = [True]

    def crashing(*args, persons=None, **kw):
        calls.append(tuple(persons or ()))
        if crash[0] and len(calls) == 2:  # the second shard dies half-way through the flow
            raise RuntimeError("worker lost (injected)")
        return real(*args, persons=persons, **kw)

    monkeypatch.setattr(fam.protect, "protect_dataset", crashing)
    with pytest.raises(RuntimeError, match="injected"):
        run_protect(s, s["tmp"] / "crashed")
    assert (s["tmp"] / "crashed" / ".fam" / "persons").is_dir()
    assert not (s["tmp"] / "crashed-validation" / "release.json").exists()

    calls.clear()
    crash[0] = False
    resumed = run_protect(s, s["tmp"] / "crashed")
    # The shard that finished before the crash came from Prefect's cache; only the rest ran,
    # plus the final resumed pass that writes the whole manifest.
    all_people = tuple(sorted(PEOPLE))
    assert calls[-1] == all_people and len(calls) == 2, calls
    assert resumed["n_images"] == clean["n_images"]

    def tree(root: Path) -> dict[str, bytes]:
        files = [*(root / "release").rglob("*"), root / "manifest.json", root / "rejects.json"]
        return {f.relative_to(root).as_posix(): f.read_bytes() for f in files if f.is_file()}

    a, b = tree(s["tmp"] / "clean"), tree(s["tmp"] / "crashed")
    assert a.keys() == b.keys() and len(a) == sum(PEOPLE.values()) + 3
    assert [k for k in a if a[k] != b[k]] == []


def test_revoke_key_records_revocation_and_reprotects(setup):
    from click.testing import CliRunner
    from mlflow import MlflowClient

    from fam.cli import cli
    from flows.revoke import revoke_key

    s = setup
    first = run_protect(s, s["tmp"] / "out")
    new_file = s["tmp"] / "keys" / "k2.fam-key"
    new = new_key_file(new_file)
    result = revoke_key(
        fingerprint=s["key"].fingerprint,
        new_key={"key_file": str(new_file)},
        reason="test: laptop lost",
        params_path=s["params"],
    )
    assert result["new_fingerprint"] == new.fingerprint
    [redone] = result["releases"]
    new_out = Path(redone["new"])
    assert (new_out / "release" / "release.json").is_file()
    assert ProtectManifest.read(new_out).key.fingerprint == new.fingerprint

    client = MlflowClient(f"sqlite:///{s['tmp'] / 'mlflow.db'}")
    assert client.get_run(first["mlflow_run_id"]).data.tags["fam.key_revoked"] == "true"
    new_tags = client.get_run(redone["mlflow_run_id"]).data.tags
    assert new_tags["fam.replaces_fingerprint"] == s["key"].fingerprint
    assert new_tags["fam.key_fingerprint"] == new.fingerprint

    res = CliRunner().invoke(
        cli,
        ["audit", "--fingerprint", s["key"].fingerprint, "--params", s["params"], "--json"],
    )
    assert res.exit_code == 0, res.output
    answer = json.loads(res.output)
    assert answer["revoked"] and answer["revocation"]["replacement_fingerprint"] == new.fingerprint
    assert [r["run_id"] for r in answer["releases"]] == [first["mlflow_run_id"]]


def test_train_prior_flow_runs_in_resumable_chunks_with_lineage(tmp_path, prefect_home):
    from mlflow import MlflowClient
    from PIL import Image

    from fam.training.pack import pack_faces
    from fam.training.splits import load_split
    from flows.train import train_prior

    for person in sorted(load_split().train)[:3]:
        (tmp_path / "al" / person).mkdir(parents=True)
        Image.new("RGB", (32, 32), (120, 80, 60)).save(tmp_path / "al" / person / "a.png")
    pack_faces(tmp_path / "al", tmp_path / "p.npz", resolution=32)
    settings = {
        "training": {
            "prior": {"resolution": 32, "channels": {4: 8, 8: 8, 16: 8, 32: 8}, "w_dim": 16, "n_mlp": 1,
                      "batch": 2, "fid_every_kimg": 0}
        },
        "runtime": {"device": "cpu"},
        "mlops": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
                  "artifact_root": str(tmp_path / "art"), "retries": 0},
    }  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(settings))
    result = train_prior(
        data=str(tmp_path / "p.npz"), out_dir=str(tmp_path / "run"),
        params_path=str(tmp_path / "params.yaml"), kimg=0.008, chunk_kimg=0.004,
    )  # fmt: skip
    assert result["step"] == 4  # 8 images at batch 2, in two resumed chunks
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(result["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["training.prior.w_dim"] == "16"
    assert run.data.tags["fam.flow"] == "train-prior" and len(run.data.tags["fam.train_data_sha256"]) == 64
    assert [m.step for m in client.get_metric_history(run.info.run_id, "training/kimg")] == [2, 4]
    assert "training/log.jsonl" in {a.path for a in client.list_artifacts(run.info.run_id, "training")}


@pytest.mark.data
def test_shipped_local_deployments_run_with_their_own_parameters(
    tmp_path, prefect_home, lfw_available, monkeypatch
):
    """prefect.yaml's */local deployments, each with the parameters it ships (paths relative to
    the project, as the worker runs them), on tiny models and 3 LFW people + 30 impostors."""
    import fam.evaluate.runner
    from flows.evaluate import evaluate_release
    from flows.protect import protect_dataset
    from flows.revoke import revoke_key
    from tests.helpers.tiny_models import TinyRecognizer

    monkeypatch.setattr(fam.evaluate.runner, "build_recognizers", lambda cfg: [TinyRecognizer()])
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    local = {d["entrypoint"]: d.get("parameters") or {} for d in deployments if d["name"] == "local"}
    assert set(local) == {
        "flows/protect.py:protect_dataset",
        "flows/evaluate.py:evaluate_release",
        "flows/revoke.py:revoke_key",
    }
    monkeypatch.chdir(tmp_path)  # the deployment's working directory: its relative paths resolve here
    (tmp_path / "data" / "lfw").mkdir(parents=True)
    (tmp_path / "data" / "lfw" / "images").symlink_to(lfw_available / "images")
    settings = yaml.safe_load((ROOT / "params.yaml").read_text())
    settings.update({k: v for k, v in TINY_SETTINGS.items() if k != "runtime"})
    settings["evaluate"].update(
        {"recognizers": ["tiny"], "min_impostor_pairs": 1000, "fid": False, "attacks": [], "image_size": 32}
    )
    settings["mlops"].update(
        {
            "subset": {"person": ["Aaron_Peirsol", "Abdoulaye_Wade", "Abel_Pacheco"]},
            "impostors": {"n_people": 30, "images_per_person": 2},
            "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "artifact_root": str(tmp_path / "mlartifacts"),
            "retries": 0,
        }
    )
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(settings))
    new_key_file(Path(local["flows/protect.py:protect_dataset"]["key"]["key_file"]))

    protected = protect_dataset(**local["flows/protect.py:protect_dataset"])
    assert protected["n_persons"] == 3 and Path("runs/prefect/eval/report.md").is_file()
    assert Path("runs/prefect/aligned-impostors/manifest.csv").is_file()  # aligned by the flow itself
    evaluated = evaluate_release(**local["flows/evaluate.py:evaluate_release"])
    assert evaluated["metrics"]
    new = new_key_file(tmp_path / "keys" / "new.fam-key")
    revoked = revoke_key(
        **local["flows/revoke.py:revoke_key"],
        fingerprint=protected["key_fingerprint"],
        new_key={"key_file": str(tmp_path / "keys" / "new.fam-key")},
        reason="deployment test",
    )
    assert revoked["new_fingerprint"] == new.fingerprint and len(revoked["releases"]) == 1


def test_dask_local_cluster_gives_the_thread_runners_bytes(setup):
    """mlops.task_runner: dask on a LocalCluster of 2 worker processes (the tiny models reach them
    through mlops.worker_preload) protects into the same bytes as the thread runner."""
    s = setup
    threads = run_protect(s, s["tmp"] / "threads")
    dask = run_protect(
        s,
        s["tmp"] / "dask",
        overrides={
            "mlops.task_runner": "dask",
            "mlops.max_workers": 2,
            "mlops.worker_preload": ["tests.helpers.tiny_models_worker"],
        },
    )
    assert dask["n_images"] == threads["n_images"] == sum(PEOPLE.values())

    def release(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.png"))}

    assert release(s["tmp"] / "dask" / "release") == release(s["tmp"] / "threads" / "release")
