"""``--dry-run`` of align, invert, protect and evaluate: the resolved settings and the plan are
printed, nothing is written, and a bad input fails exactly as the real run fails."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

import fam.evaluate.runner
from fam.cli import cli
from fam.config import parse_params
from tests.helpers.faces import make_face_folder
from tests.helpers.tiny_models import TINY_SETTINGS, TinyRecognizer

pytestmark = pytest.mark.unit

PLAN_HEADER = "# plan (dry run: nothing was written)\n"


def _tree(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its modification time: any write shows up here."""
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def _dry(args: list[str], root: Path) -> tuple[dict, dict]:
    """Run ``args --dry-run``; check it wrote nothing under ``root``; return (settings, plan)."""
    before = _tree(root)
    res = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert res.exit_code == 0, res.output
    assert _tree(root) == before
    # stdout only: a warning (stderr) may precede it
    assert res.stdout.startswith("# resolved settings\n") and PLAN_HEADER in res.stdout
    settings, plan = res.stdout.split(PLAN_HEADER)
    return yaml.safe_load(settings), yaml.safe_load(plan)


def _fails_alike(args: list[str], root: Path) -> Result:
    """The real run and the dry run of ``args`` fail with the same message, and neither writes."""
    before = _tree(root)
    real = CliRunner().invoke(cli, args)
    dry = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert real.exit_code == dry.exit_code == 2, real.output + dry.output
    assert dry.output == real.output and real.output.startswith("error: ")
    assert _tree(root) == before
    return real


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """``photos/`` (3 people), ``aligned/images/`` (5 people) and a tiny ``params.yaml``."""
    make_face_folder(tmp_path / "photos", {"Alice": 3, "Bob": 2, "Carol": 1})
    make_face_folder(tmp_path / "aligned" / "images", {"Alice": 3, "Bob": 2, "Carol": 1, "Dan": 2, "Eve": 2})
    settings = {**TINY_SETTINGS, "evaluate": {"fid": False, "mapper": {"train_fraction": 0.05}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(settings))
    return tmp_path


def test_align_dry_run(work: Path) -> None:
    args = [
        "align",
        "--input",
        str(work / "photos"),
        "--out",
        str(work / "out"),
        "--params",
        str(work / "params.yaml"),
    ]
    settings, plan = _dry(args, work)
    assert settings == parse_params(yaml.safe_load((work / "params.yaml").read_text())).to_dict()
    assert plan["persons"] == 3 and plan["input_files"] == 6 and plan["files_to_process"] == 6
    assert plan["output"] == str((work / "out").resolve()) and plan["output_state"] == "new"
    assert plan["detector"] == "mtcnn on cpu" and not (work / "out").exists()
    res = _fails_alike([*args, "--person", "Nobody"], work)
    assert "person folder(s) Nobody not found" in res.output


def test_invert_dry_run(work: Path) -> None:
    aligned = work / "aligned" / "images"
    args = [
        "invert",
        "--input",
        str(aligned),
        "--out",
        str(work / "inv"),
        "--params",
        str(work / "params.yaml"),
    ]
    _, plan = _dry(args, work)
    assert plan["persons"] == 5 and plan["images"] == 10 and plan["rejected_inputs"] == 0
    assert plan["models"] == {"generator": "tiny-generator-r32-seed0", "inverter": "ProjectionInverter"}
    assert plan["engine"]["device"] == "cpu" and plan["engine"]["precision"] in ("fp32", "bf16")
    assert plan["output"] == str((work / "inv" / "inversions.pt").resolve())
    _fails_alike(
        [*args[:-2], "--out", str(aligned / "Alice" / "inv"), "--params", str(work / "params.yaml")], work
    )


@pytest.fixture
def key_file(work: Path) -> Path:
    path = work / "keys" / "k1"
    assert CliRunner().invoke(cli, ["key", "new", "--out", str(path)]).exit_code == 0
    return path


def test_protect_dry_run_then_resume_plan(work: Path, key_file: Path) -> None:
    out = work / "rel"
    args = [
        *("protect", "--input", str(work / "aligned" / "images"), "--person", "Alice,Bob,Carol"),
        *("--key-file", str(key_file), "--out", str(out), "--params", str(work / "params.yaml"), "--quiet"),
    ]
    _, plan = _dry(args, work)
    fingerprint = CliRunner().invoke(cli, ["key", "fingerprint", "--key-file", str(key_file)]).output.strip()
    assert plan["key"] == {"key_kind": "secret", "key_fingerprint": fingerprint}
    assert plan["persons"] == 3 and plan["images"] == 6 and plan["output_state"] == "new"
    assert (
        plan["inversions"] == "computed in this run"
        and plan["models"]["generator"] == "tiny-generator-r32-seed0"
    )
    assert plan["persons_finished_by_previous_run"] == 0 and not out.exists()
    assert key_file.read_text().split()[-1] not in yaml.safe_dump(plan)

    assert CliRunner().invoke(cli, args).exit_code == 0
    _, plan = _dry([*args, "--resume"], work)
    assert plan["output_state"] == "resume" and plan["persons_finished_by_previous_run"] == 3
    res = _fails_alike(args, work)  # neither --resume nor --force on a finished output
    assert "already holds output; pass --resume" in res.output


def test_evaluate_dry_run(work: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fam.evaluate.runner, "build_recognizers", lambda params: [TinyRecognizer()])
    params = str(work / "params.yaml")
    aligned = work / "aligned"
    protect = ["protect", "--input", str(aligned / "images"), "--person", "Alice,Bob,Carol", "--quiet"]
    res = CliRunner().invoke(
        cli, [*protect, "--key-file", str(key_file), "--out", str(work / "rel"), "--params", params]
    )
    assert res.exit_code == 0, res.output
    args = [
        "evaluate",
        "--aligned",
        str(aligned),
        "--release",
        str(work / "rel"),
        "--out",
        str(work / "eval"),
    ]
    args += ["--params", params]
    # Alice, Bob and Carol hash above mapper.train_fraction 0.05: all held out, so the latent attack
    # runs (and needs the release's key) while the mapper has no one to train on
    res = _fails_alike(args, work)
    assert "latent_replacement and stolen_key attacks need the key" in res.output
    _, plan = _dry([*args, "--key-file", str(key_file)], work)
    assert plan["release"] == {"path": str(work / "rel"), "images": 6, "people": 3}
    assert plan["thresholds"].startswith("computed from 4 images of 2 people not in the release")
    assert plan["recognizers"] == ["tiny"] and plan["attacks"] == ["latent_replacement", "stolen_key"]
    assert plan["models"]["generator"] == "tiny-generator-r32-seed0" and plan["key"]["kind"] == "secret"
    assert plan["output"] == str(work / "eval") and not (work / "eval").exists()
    res = _fails_alike([*args[:4], str(work / "photos"), *args[5:]], work)
    assert "has no manifest.json; point --release at the --out folder" in res.output
