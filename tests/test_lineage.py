"""MLflow lineage: a release run carries params, tags, metrics, artifacts and dataset inputs;
revocation is visible to ``fam audit``; no key material ever reaches the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fam.artifacts import KeyIdentity, Metrics
from fam.config import parse_params
from fam.keys import new_key_file
from tasks import mlflow_lineage as lineage
from tasks.keyref import FlowKeyRef
from tests.helpers.artifacts import protect_item, write_protect_output

pytestmark = pytest.mark.flow


@pytest.fixture()
def store(tmp_path: Path) -> lineage.Store:
    return lineage.Store(f"sqlite:///{tmp_path / 'mlflow.db'}", "fam-test", str(tmp_path / "artifacts"))


def _release(tmp_path: Path, fingerprint: str) -> tuple[Path, Path]:
    out, ev = tmp_path / "out", tmp_path / "eval"
    items = []
    for i in range(2):
        output = f"release/images/p0/{i:04d}.png"
        (out / output).parent.mkdir(parents=True, exist_ok=True)
        (out / output).write_bytes(b"\x89PNG fake %d" % i)
        items.append(protect_item(out, tmp_path / f"a{i}.png", "Ann", "p0", output, i))
    write_protect_output(out, items, KeyIdentity("secret", fingerprint), generator_id="g")
    (ev / "plots").mkdir(parents=True)
    Metrics({"psr_fmr_0.1": 0.75, "fid": 31.5}).write(ev)
    (ev / "report.md").write_text("# report\n")
    (ev / "plots" / "roc.png").write_bytes(b"\x89PNG fake")
    return out, ev


def test_release_run_records_lineage_and_audit_sees_revocation(tmp_path, store, monkeypatch):
    key_file = tmp_path / "k.fam-key"
    key = new_key_file(key_file)
    key_hex = FlowKeyRef(key_file=str(key_file)).material_hex()
    assert key_hex and len(key_hex) == 64
    out, ev = _release(tmp_path, key.fingerprint)
    params = parse_params({"optimise": {"steps": 3}})
    record = lineage.ReleaseRecord(
        params=params,
        key_fingerprint=key.fingerprint,
        key_kind=key.kind,
        out_dir=out,
        eval_dir=ev,
        flow_run_id="flow-run-1",
        run_name="test-release",
    )
    run_id = lineage.log_release(record, store)

    from mlflow import MlflowClient

    client = MlflowClient(store.tracking_uri)
    run = client.get_run(run_id)
    assert run.data.params["optimise.steps"] == "3"
    assert run.data.params["optimise.weights.anonymity"] == "10.0"
    assert run.data.tags["fam.key_fingerprint"] == key.fingerprint
    assert run.data.tags["fam.params_digest"] == params.digest()
    assert run.data.tags["fam.prefect_flow_run_id"] == "flow-run-1"
    assert run.data.tags["fam.n_images"] == "2"
    assert len(run.data.tags["fam.git_commit"]) == 40
    assert run.data.metrics == {"psr_fmr_0.1": 0.75, "fid": 31.5}
    arts = {a.path for a in client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation/metrics.json", "evaluation/report.md", "evaluation/plots"} <= arts
    assert {a.path for a in client.list_artifacts(run_id, "protect")} == {
        "protect/manifest.json",
        "protect/release.json",
        "protect/settings.json",
    }

    lineage.revoke(store, key.fingerprint, reason="leaked laptop", replacement_fingerprint="fp-new")
    assert client.get_run(run_id).data.tags["fam.key_revoked"] == "true"
    monkeypatch.chdir(tmp_path)
    Path("params.yaml").write_text(
        f"mlops:\n  tracking_uri: {store.tracking_uri}\n  experiment: fam-test\n"
        f"  artifact_root: {store.artifact_root}\n"
    )
    res = CliRunner().invoke(_cli(), ["audit", "--fingerprint", key.fingerprint, "--json"])
    assert res.exit_code == 0, res.output
    answer = json.loads(res.output)
    assert answer["revoked"] and answer["revocation"]["replacement_fingerprint"] == "fp-new"
    assert [r["run_id"] for r in answer["releases"]] == [run_id]
    res = CliRunner().invoke(_cli(), ["audit", "--fingerprint", "fp-unknown"])
    assert "not revoked" in res.output and "no release recorded" in res.output

    # No trace of the key in the whole store: sqlite file and artifact tree.
    for f in [Path(store.tracking_uri.removeprefix("sqlite:///")), *Path(store.artifact_root).rglob("*")]:
        if f.is_file():
            data = f.read_bytes().lower()
            assert key_hex.encode() not in data and bytes.fromhex(key_hex) not in f.read_bytes(), f


def _cli():
    from fam.cli import cli

    return cli


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
