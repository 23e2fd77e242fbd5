"""MLflow lineage: a release run carries params, MLflow's standard tags, grouped metrics, artifacts
and dataset inputs; runs span their work; one digest per concept; the store may hold originals only
when allowed; ``fam audit`` lists each release once and refuses an unknown fingerprint; revocation
is visible to it; no key material ever reaches the store."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from click.testing import CliRunner

from fam.artifacts import KeyIdentity, LossCurve, Metrics, ReleaseIndex
from fam.config import parse_params
from fam.keys import new_key_file
from fam.provenance import code_version
from tasks import mlflow_conventions as conv
from tasks import mlflow_lineage as lineage
from tasks.keyref import FlowKeyRef
from tests.helpers.artifacts import aligned_row, protect_item, write_align_manifest, write_protect_output

pytestmark = pytest.mark.flow

FLAT = {"psr_anonymity_tiny_fmr1e-3": 0.75, "fid": 31.5, "n_items": 2.0, "my_metric": 1.0}
NAMES = {"Ann": "p0"}


@pytest.fixture(autouse=True)
def _no_mlflow_environment(monkeypatch):
    """The store comes from the test's settings unless a test sets MLflow's variables itself."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)


@pytest.fixture()
def store(tmp_path: Path) -> lineage.Store:
    return lineage.Store(f"sqlite:///{tmp_path / 'mlflow.db'}", "fam-test", str(tmp_path / "artifacts"))


def _client(store: lineage.Store):
    from mlflow import MlflowClient

    return MlflowClient(store.tracking_uri)


def _release(tmp_path: Path, fingerprint: str, params=None, name: str = "out") -> tuple[Path, Path]:
    out, ev, aligned = tmp_path / name, tmp_path / "eval", tmp_path / "aligned"
    items = []
    for i in range(2):
        output = f"release/images/p0/{i:04d}.png"
        (out / output).parent.mkdir(parents=True, exist_ok=True)
        (out / output).write_bytes(b"\x89PNG fake %d" % i)
        items.append(protect_item(out, tmp_path / f"a{i}.png", "Ann", "p0", output, i))
    write_protect_output(out, items, KeyIdentity("secret", fingerprint), generator_id="g", params=params)
    write_align_manifest(
        aligned, [aligned_row(f"Ann/a{i}.jpg", "Ann", f"images/Ann/{i}.png") for i in range(2)]
    )
    if not ev.exists():
        (ev / "plots").mkdir(parents=True)
        Metrics(FLAT).write(ev)
        (ev / "report.md").write_text("# report\n\n![roc](plots/roc.png)\n\n![web](https://x.org/a.png)\n")
        (ev / "plots" / "roc.png").write_bytes(b"\x89PNG roc")
        (ev / "grid.png").write_bytes(b"\x89PNG original faces")
    return out, ev


def _record(tmp_path, params, fingerprint, **kw) -> lineage.ReleaseRecord:
    out, ev = _release(tmp_path, fingerprint, params)
    return lineage.ReleaseRecord(
        params=params,
        key_fingerprint=fingerprint,
        key_kind="secret",
        out_dir=out,
        aligned_dir=tmp_path / "aligned",
        eval_dir=ev,
        run_name="test-release",
        source_name="flows/protect.py:protect_dataset",
        **kw,
    )


def _cli():
    from fam.cli import cli

    return cli


def _params_yaml(folder: Path, store: lineage.Store, **mlops: str) -> Path:
    settings = {"tracking_uri": store.tracking_uri, "experiment": store.experiment, **mlops}
    path = folder / "params.yaml"
    path.write_text(
        "mlops:\n"
        + "".join(f"  {k}: {v}\n" for k, v in settings.items())
        + f"  artifact_root: {store.artifact_root}\n"
    )
    return path


@pytest.mark.unit
def test_mlflow_environment_variables_win_over_params_yaml():
    params = parse_params({"mlops": {"tracking_uri": "sqlite:///a.db", "experiment": "from-yaml"}})
    assert conv.store_address(params, {}) == conv.StoreAddress(
        "sqlite:///a.db", "from-yaml", "mlops.tracking_uri", "mlops.experiment"
    )
    env = {"MLFLOW_TRACKING_URI": "http://mlflow:5000", "MLFLOW_EXPERIMENT_NAME": "from-env"}
    store = lineage.Store.from_params(params, env)
    assert (store.tracking_uri, store.experiment) == ("http://mlflow:5000", "from-env")
    assert "from MLFLOW_TRACKING_URI" in store.describe()
    only_uri = lineage.Store.from_params(
        params, {"MLFLOW_TRACKING_URI": "file:///x", "MLFLOW_EXPERIMENT_NAME": ""}
    )
    assert (only_uri.tracking_uri, only_uri.experiment) == ("file:///x", "from-yaml")  # empty = unset
    # a run's own setting (a flow's overrides parameter, --set) wins over the environment
    for given in (
        {"mlops.tracking_uri": "sqlite:///a.db"},
        {"mlops": {"tracking_uri": "x"}},
        ["mlops.tracking_uri=x"],
    ):
        assert conv.overridden_keys(given) == {"mlops.tracking_uri"}
    mine = lineage.Store.from_params(params, env, overrides={"mlops.tracking_uri": "sqlite:///a.db"})
    assert (mine.tracking_uri, mine.experiment) == ("sqlite:///a.db", "from-env")
    assert "from override mlops.tracking_uri" in mine.describe()
    assert conv.is_local_store("sqlite:///a.db") and conv.is_local_store("/srv/mlruns")
    assert not conv.is_local_store("http://mlflow:5000") and not conv.is_local_store("databricks://p")


@pytest.mark.unit
def test_metric_names_are_grouped_reversibly_and_every_old_name_maps_once():
    assert conv.metric_name("psr_anonymity_dlib_fmr1e-3") == "anonymity/psr_anonymity_dlib_fmr1e-3"
    assert conv.metric_name("psr_unlinkability_person_dlib_fmr1e-3").startswith("unlinkability/")
    assert conv.metric_name("dsys_bins") == "unlinkability/dsys_bins"
    assert conv.metric_name("psr_noninvert_mapper_dlib_fmr1e-4").startswith("noninvertibility/")
    assert conv.metric_name("eer_protected_dlib").startswith("utility/")
    assert conv.metric_name("fid_resolution_protected").startswith("quality/")
    assert conv.metric_name("psr_keys_std_dlib_fmr1e-3").startswith("key_robustness/")
    assert conv.metric_name("n_people") == "release/n_people"
    assert conv.metric_name("brand_new") == "other/brand_new"  # never dropped
    assert conv.metric_name("kimg", conv.TRAINING_GROUP) == "training/kimg"
    names = conv.metric_names(["fid", "fid_blur", "n_items", "auc_original_dlib"])
    assert {conv.flat_metric_name(v): k for k, v in names.items()} == {k: k for k in names}
    assert conv.flat_metric_name("fid") == "fid"  # a format-1 run's name is already flat


@pytest.mark.unit
def test_report_links_point_at_the_runs_artifacts_and_the_note_fits_a_tag():
    md = "![roc](plots/roc.png) ![grid](grid.png) ![web](https://x.org/a.png) ![gone](plots/x.png)"
    ui = conv.report_for_ui(md, "abc123", "evaluation", {"plots/roc.png"})
    assert "![roc](get-artifact?path=evaluation%2Fplots%2Froc.png&run_uuid=abc123)" in ui
    assert "![grid](grid.png)" in ui and "(https://x.org/a.png)" in ui and "(plots/x.png)" in ui
    long = conv.note("x" * 20_000, "report.md")
    assert len(long) == conv.MAX_NOTE_CHARS and long.endswith("the whole text is the artifact `report.md`)\n")


def test_release_run_records_lineage_and_audit_sees_revocation(tmp_path, store, monkeypatch):
    key_file = tmp_path / "k.fam-key"
    key = new_key_file(key_file)
    key_hex = FlowKeyRef(key_file=str(key_file)).material_hex()
    assert key_hex and len(key_hex) == 64
    params = parse_params(
        {"optimise": {"steps": 3}, "mlops": {"subset": {"person": ["Ann_Real", "Bo_Real"]}}}
    )
    run_id = lineage.log_release(_record(tmp_path, params, key.fingerprint, flow_run_id="flow-run-1"), store)

    client = _client(store)
    run = client.get_run(run_id)
    assert run.info.run_name == "test-release" and run.info.status == "FINISHED"
    assert run.data.params["optimise.steps"] == "3"
    assert run.data.params["optimise.weights.anonymity"] == "10.0"
    tags = run.data.tags
    assert tags["fam.key_fingerprint"] == key.fingerprint
    assert tags["fam.prefect_flow_run_id"] == "flow-run-1"
    assert tags["fam.n_images"] == "2" and tags["fam.lineage_format"] == lineage.LINEAGE_FORMAT
    assert len(tags["fam.git_commit"]) == 40
    # MLflow's standard tags and experiment kind
    assert tags["mlflow.source.name"] == "flows/protect.py:protect_dataset"
    assert tags["mlflow.source.type"] == "JOB" and tags["mlflow.user"] == conv.user()
    assert tags["mlflow.source.git.commit"] == code_version().commit
    assert (
        client.get_experiment_by_name("fam-test").tags["mlflow.experimentKind"] == "custom_model_development"
    )
    # metrics grouped; the mapping from the flat names is logged beside them
    assert run.data.metrics == {conv.metric_name(k): v for k, v in FLAT.items()}
    assert (
        "anonymity/psr_anonymity_tiny_fmr1e-3" in run.data.metrics and "other/my_metric" in run.data.metrics
    )
    mapping = json.loads(
        Path(client.download_artifacts(run_id, "evaluation/metric_names.json", str(tmp_path))).read_text()
    )
    assert mapping == conv.metric_names(FLAT)
    # one digest per concept: params_digest = the method digest of release.json and the manifest
    release = ReleaseIndex.read(tmp_path / "out")
    assert tags["fam.params_digest"] == release.params_digest == params.method_digest()
    assert tags["fam.settings_digest"] == params.digest() != params.method_digest()
    # the description is the report as MLflow renders it, also logged at the artifact root
    note = tags["mlflow.note.content"]
    assert f"get-artifact?path=evaluation%2Fplots%2Froc.png&run_uuid={run_id}" in note
    arts = {a.path for a in client.list_artifacts(run_id)}
    assert {"report.md", "evaluation", "protect"} <= arts
    assert Path(client.download_artifacts(run_id, "report.md", str(tmp_path / "dl"))).read_text() == note
    arts = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation/metrics.json", "evaluation/report.md", "evaluation/plots"} <= arts
    # log_originals is false by default: no manifest (real names), no grid (original faces),
    # and the subset's names withheld from the params and the settings files
    assert "evaluation/grid.png" not in arts
    assert {a.path for a in client.list_artifacts(run_id, "protect")} == {
        "protect/release.json",
        "protect/settings.json",
    }
    assert run.data.params["mlops.subset.person"] == f"2 names {conv.WITHHELD}"
    settings = client.download_artifacts(run_id, "protect/settings.json", str(tmp_path / "dl2"))
    assert "Ann_Real" not in Path(settings).read_text()
    for f in Path(store.artifact_root).rglob("*"):
        if f.is_file():
            assert b"Ann_Real" not in f.read_bytes() and b"a0.png" not in f.read_bytes(), f
    assert [d.dataset.name for d in run.inputs.dataset_inputs][-1] == "aligned"

    lineage.revoke(store, key.fingerprint, reason="leaked laptop", replacement_fingerprint="fp-new")
    assert client.get_run(run_id).data.tags["fam.key_revoked"] == "true"
    monkeypatch.chdir(tmp_path)
    _params_yaml(tmp_path, store)
    res = CliRunner().invoke(_cli(), ["audit", "--fingerprint", key.fingerprint, "--json"])
    assert res.exit_code == 0, res.output
    answer = json.loads(res.output)
    assert answer["revoked"] and answer["revocation"]["replacement_fingerprint"] == "fp-new"
    assert [r["run_id"] for r in answer["releases"]] == [run_id]
    assert answer["releases"][0]["params_digest"] == release.params_digest

    # No trace of the key in the whole store: sqlite file and artifact tree.
    for f in [Path(store.tracking_uri.removeprefix("sqlite:///")), *Path(store.artifact_root).rglob("*")]:
        if f.is_file():
            data = f.read_bytes().lower()
            assert key_hex.encode() not in data and bytes.fromhex(key_hex) not in f.read_bytes(), f


@pytest.mark.unit
def test_protection_loss_curves_are_step_metrics(tmp_path, store):
    record = _record(tmp_path, parse_params({}), "fp-curve")
    curve = LossCurve(((3.0, 1.0, 1.5, 0.5), (2.0, 0.5, 1.2, 0.3), (1.5, 0.2, 1.0, 0.3)), persons=2)
    curve.write(record.out_dir)
    run_id = lineage.log_release(record, store)
    client = _client(store)
    for term in LossCurve.TERMS:
        history = client.get_metric_history(run_id, f"protect/loss/{term}")
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == list(
            enumerate(curve.column(term))
        )
    assert "protect/loss_curve.csv" in {a.path for a in client.list_artifacts(run_id, "protect")}


def test_log_originals_true_keeps_manifest_grid_and_names(tmp_path):
    params = parse_params({"lineage": {"log_originals": True}, "mlops": {"subset": {"person": ["Ann_Real"]}}})
    params = params.replace(
        {"mlops.tracking_uri": f"sqlite:///{tmp_path / 'm.db'}", "mlops.artifact_root": str(tmp_path / "art")}
    )
    store = lineage.Store.from_params(params, {})
    assert store.log_originals
    run_id = lineage.log_release(_record(tmp_path, params, "fp-" + "1" * 32), store)
    client = _client(store)
    assert "evaluation/grid.png" in {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert "protect/manifest.json" in {a.path for a in client.list_artifacts(run_id, "protect")}
    assert client.get_run(run_id).data.params["mlops.subset.person"] == '["Ann_Real"]'
    # the report's image resolves in the UI once the grid is logged
    assert (
        "get-artifact?path=evaluation%2Fplots%2Froc.png"
        in client.get_run(run_id).data.tags["mlflow.note.content"]
    )


def test_report_image_links_resolve_on_an_mlflow_server(tmp_path, store, monkeypatch):
    """The rewritten link, resolved as a browser does from the UI's artifact page, is served."""
    run_id = lineage.log_release(_record(tmp_path, parse_params({}), "fp-" + "2" * 32), store)
    note = _client(store).get_run(run_id).data.tags["mlflow.note.content"]
    link = note.split("![roc](", 1)[1].split(")", 1)[0]
    page = f"http://127.0.0.1:5000/#/experiments/1/runs/{run_id}/artifacts/report.md"
    url = urlsplit(urljoin(page, link))
    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", store.tracking_uri)
    monkeypatch.setenv("_MLFLOW_SERVER_SERVE_ARTIFACTS", "true")
    from mlflow.server import app

    resp = app.test_client().get(f"{url.path}?{url.query}")
    assert resp.status_code == 200 and resp.data == b"\x89PNG roc" and resp.mimetype == "image/png"


def test_runs_span_their_work_and_a_failed_flow_run_is_closed(tmp_path, store):
    params = parse_params({})
    run_id = lineage.open_run(
        store,
        run_name="protect-dataset out",
        source_name="s",
        params=params,
        tags={"prefect_flow_run_id": "f1"},
    )
    client = _client(store)
    assert client.get_run(run_id).info.status == "RUNNING"
    time.sleep(0.3)  # the work
    assert lineage.log_release(_record(tmp_path, params, "fp-" + "3" * 32), store, run_id=run_id) == run_id
    info = client.get_run(run_id).info
    assert info.status == "FINISHED" and info.run_name == "test-release"
    assert info.end_time - info.start_time >= 300

    stuck = lineage.open_run(store, run_name="x", source_name="s", tags={"prefect_flow_run_id": "f2"})
    other = lineage.open_run(store, run_name="y", source_name="s", tags={"prefect_flow_run_id": "f3"})
    assert lineage.fail_running(store, "f2") == [stuck]
    assert client.get_run(stuck).info.status == "FAILED" and client.get_run(other).info.status == "RUNNING"
    lineage.close_run(store, other)
    assert client.get_run(other).info.status == "FINISHED"


def test_audit_lists_a_release_once_and_refuses_unknown_fingerprints(tmp_path, store, monkeypatch):
    fp = "fp-" + "4" * 32
    first = lineage.log_release(_record(tmp_path, parse_params({}), fp), store)
    again = lineage.log_release(_record(tmp_path, parse_params({}), fp), store)  # e.g. evaluate-release
    [release] = lineage.releases_for(store, fp)
    assert release["run_id"] == first and release["runs"] == [first, again]

    monkeypatch.chdir(tmp_path)
    elsewhere = lineage.Store(f"sqlite:///{tmp_path / 'other.db'}", "nothing-here", store.artifact_root)
    _params_yaml(tmp_path, elsewhere)  # params.yaml points at an empty store ...
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.tracking_uri)  # ... the environment at ours
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", store.experiment)
    res = CliRunner().invoke(_cli(), ["audit", "--fingerprint", fp])
    assert res.exit_code == 0, res.output
    assert res.output.count("release ") == 1 and "(+1 later runs)" in res.output
    assert "from MLFLOW_TRACKING_URI" in res.output

    res = CliRunner().invoke(_cli(), ["audit", "--fingerprint", "fp-" + "5" * 32])
    assert res.exit_code == 2 and "no release or revocation of fp-5555" in res.output, res.output

    # a setting given for this run wins over the environment: --set points back at the empty store
    res = CliRunner().invoke(
        _cli(),
        ["audit", "--fingerprint", fp, "--set", f"mlops.tracking_uri={elsewhere.tracking_uri}"],
    )
    assert res.exit_code == 2 and "from override mlops.tracking_uri" in res.output, res.output


def test_dvc_pipeline_runs_are_named_after_their_stages(tmp_path, store):
    params = parse_params({}).replace(
        {
            "mlops.tracking_uri": store.tracking_uri,
            "mlops.experiment": store.experiment,
            "mlops.artifact_root": store.artifact_root,
        }
    )
    root = tmp_path / "protect"
    fps = {"k1": "fp-" + "6" * 32, "k2": "fp-" + "7" * 32}
    for k, fp in fps.items():
        _release(tmp_path, fp, params, name=f"protect/{k}")
    (tmp_path / "validation").mkdir()
    out = lineage.record_pipeline(
        params,
        aligned_dir=tmp_path / "aligned",
        protect_root=root,
        eval_dir=tmp_path / "eval",
        evaluated_key="k1",
        validation_dir=tmp_path / "validation",
        extra_reports=[],
    )
    client = _client(store)
    parent = client.get_run(out["parent_run_id"])
    assert parent.info.run_name == "report (k1, k2)" and parent.info.status == "FINISHED"
    assert parent.data.tags["mlflow.source.name"] == "tasks/stages.py:report"
    assert "fam.key_fingerprint" not in parent.data.tags  # the releases are the child runs
    assert parent.data.tags["fam.params_digest"] == params.method_digest()
    assert "anonymity/psr_anonymity_tiny_fmr1e-3" in parent.data.metrics
    for k, rid in out["release_runs"].items():
        run = client.get_run(rid)
        assert run.info.run_name == f"protect@{k[1:]}"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["fam.stage"] == f"protect@{k[1:]}"
        assert [r["run_id"] for r in lineage.releases_for(store, fps[k])] == [rid]
    assert client.get_run(out["release_runs"]["k1"]).data.tags["fam.evaluation_run_id"] == parent.info.run_id


@pytest.mark.unit
def test_weight_tags_cover_the_catalog_and_hash_only_present_files(tmp_path, monkeypatch):
    from fam import weights
    from fam.errors import MissingWeightsError
    from fam.registry import Registry
    from fam.weights_catalog import CATALOG

    assert set(lineage.weight_hashes()) == {f"weight.{e.name}.sha256" for e in CATALOG}

    here, changed = tmp_path / "here.bin", tmp_path / "changed.bin"
    here.write_bytes(b"a model file")
    changed.write_bytes(b"a changed model file")
    sha = weights.sha256_file(here)
    common = {"role": "test", "license": "CC0", "how_to_get": "-"}
    entries = [
        weights.WeightEntry(name="present", source="project", location=str(here), sha256=sha, **common),
        weights.WeightEntry(name="corrupt", source="project", location=str(changed), sha256=sha, **common),
        weights.WeightEntry(
            name="missing", source="package", location="zz_no_such_pkg/m.bin", sha256=sha, **common
        ),
        weights.WeightEntry(name="user", source="user", location="your copy", sha256=None, **common),
    ]
    registry: Registry[weights.WeightEntry] = Registry("model file", error=MissingWeightsError)
    for entry in entries:
        registry.register(entry.name, entry)
    monkeypatch.setattr(weights, "WEIGHTS", registry)
    assert lineage.weight_hashes() == {
        "weight.present.sha256": sha,
        "weight.corrupt.sha256": "corrupt",
        "weight.missing.sha256": "missing",
        "weight.user.sha256": "user",
    }


def test_fam_key_revoke_records_the_revocation_audit_reports(tmp_path, store, monkeypatch):
    from tests.helpers.plugins import use_declared_plugins

    use_declared_plugins(monkeypatch)
    old, new = tmp_path / "old.fam-key", tmp_path / "new.fam-key"
    key, replacement = new_key_file(old), new_key_file(new)
    run_id = lineage.log_release(_record(tmp_path, parse_params({}), key.fingerprint), store)
    monkeypatch.chdir(tmp_path)
    _params_yaml(tmp_path, store)
    args = ["key", "revoke", "--key-file", str(old), "--reason", "laptop stolen"]
    res = CliRunner().invoke(_cli(), [*args, "--replacement-key-file", str(new)])
    assert res.exit_code == 0, res.output
    assert f"key {key.fingerprint} revoked" in res.stdout and "1 release(s)" in res.stdout
    client = _client(store)
    assert client.get_run(run_id).data.tags["fam.key_revoked"] == "true"
    revocation = lineage.revocation_of(store, key.fingerprint)
    assert revocation["reason"] == "laptop stolen"
    assert revocation["replacement_fingerprint"] == replacement.fingerprint
    assert client.get_run(revocation["run_id"]).data.tags["mlflow.source.name"] == "fam key revoke"

    again = CliRunner().invoke(_cli(), args)  # reported, not recorded twice
    assert again.exit_code == 0 and "already revoked" in again.stdout
    exp = client.get_experiment_by_name(store.experiment + lineage.REVOCATIONS_SUFFIX)
    assert len(client.search_runs([exp.experiment_id])) == 1
    audit = CliRunner().invoke(_cli(), ["audit", "--fingerprint", key.fingerprint, "--json"])
    assert json.loads(audit.stdout)["revoked"]

    lost = "fp-" + "8" * 32  # a lost key is revoked by its fingerprint
    res = CliRunner().invoke(_cli(), ["key", "revoke", "--fingerprint", lost, "--reason", "lost"])
    assert res.exit_code == 0 and "0 release(s)" in res.stdout
    assert lineage.revocation_of(store, lost)["replacement_fingerprint"] is None
    same = CliRunner().invoke(_cli(), [*args, "--replacement-key-file", str(old)])
    assert same.exit_code == 2 and "the replacement key is the revoked key" in same.stderr


@pytest.mark.unit
def test_validation_reports_lose_quoted_rows_on_their_way_to_the_store():
    report = {
        "suite": "input",
        "results": [{"why": "aligned file exists", "examples": ["Alice_Example/x.jpg"]}],
        "gx_results": [
            {
                "results": [
                    {"result": {"partial_unexpected_index_list": [{"input_path": "Alice_Example/x.jpg"}]}}
                ]
            }
        ],
    }
    stored = conv.validation_report_for_store(json.dumps(report), log_originals=False)
    assert "Alice" not in stored
    assert conv.validation_report_for_store(json.dumps(report), log_originals=True) == json.dumps(report)
