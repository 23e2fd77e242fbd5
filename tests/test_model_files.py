"""``fam models`` lists the models the settings select, with the state of every file they load."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from fam.cli import cli
from fam.config import ModelSpec, parse_params
from fam.model_files import _needs, configured_models
from fam.models import factory
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.unit


def test_every_built_in_model_says_which_files_it_loads():
    plugin_note = _needs("generator", ModelSpec("tiny"))  # registered by the tests, like a plugin
    assert isinstance(plugin_note, str) and "plugin" in plugin_note
    # the names a fresh process knows: tests (and users) register more
    code = (
        "import json; from fam import recognizers; from fam.models import factory; "
        "print(json.dumps({**{r: factory.available(r) for r in factory.ROLES}, "
        "'recognizer': recognizers.available()}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    built_in = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        ).stdout
    )
    assert set(built_in) == {*factory.ROLES, "recognizer"} and all(built_in.values())
    for role, names in built_in.items():
        for name in names:
            assert _needs(role, ModelSpec(name)) != plugin_note, (role, name)


def test_configured_models_report_present_missing_and_corrupt_files(tmp_path):
    good = tmp_path / "g.pt"
    good.write_bytes(b"generator weights")
    sha = hashlib.sha256(good.read_bytes()).hexdigest()
    params = parse_params(
        {
            "models": {
                "generator": {"name": "stylegan2", "weights": str(good), "sha256": sha},
                "inverter": {"name": "e4e", "checkpoint": str(tmp_path / "nope.pt"), "sha256": "0" * 64},
                "identity": {"name": "dlib", "path": str(good), "sha256": "1" * 64},
                "attribute": {"name": "farl"},
            },
            "evaluate": {"recognizers": ["faceres", {"name": "facenet", "path": str(good)}]},
        }
    )
    found = {(m.setting, m.name): [(f.label, f.state) for f in m.files] for m in configured_models(params)}
    assert found[("models.generator", "stylegan2")] == [(str(good), "present")]
    assert found[("models.inverter", "e4e")] == [("e4e-ffhq-encode", "missing")]
    assert found[("models.identity", "dlib")] == [("dlib-face-recognition-resnet-v1", "corrupt")]
    assert found[("models.attribute", "farl")] == [("farl-ep64", "missing")]  # user weights, no path set
    assert [label for label, _ in found[("evaluate.recognizers[0]", "faceres")]] == [
        "faceres-graph",
        "faceres-weights",
    ]
    # no sha256 pinned for a user path: found, but nothing to check it against
    assert found[("evaluate.recognizers[1]", "facenet")] == [("facenet-inception-resnet-v1", "unchecked")]


def test_fam_models_prints_the_configured_models(tmp_path):
    params = tmp_path / "params.yaml"
    models = {"generator": {"name": "stylegan2", "weights": "random", "resolution": 64}}
    models["inverter"] = {"name": "e4e", "checkpoint": "/no/e4e.pt"}
    params.write_text(yaml.safe_dump({"models": models}))
    res = CliRunner().invoke(cli, ["models", "--no-check", "--params", str(params)])
    assert res.exit_code == 0, res.output
    section = res.stdout.split(f"configured models ({params}):\n")[1].split("\n\n")[0]
    assert "models.generator:        stylegan2  (random weights (untrained), no file)" in section
    assert "e4e-ffhq-encode  [missing]  /no/e4e.pt does not exist (models.inverter.checkpoint)" in section
    assert "evaluate.recognizers[0]: dlib" in section


def test_fam_models_outside_the_project_still_lists_the_catalog(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here
    res = CliRunner().invoke(cli, ["models", "--no-check"])
    assert res.exit_code == 0 and "configured models: no params.yaml here" in res.stdout
