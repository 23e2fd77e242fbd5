"""``fam invert``: person-by-person batches, and ``--resume`` that inverts only what an existing
``inversions.pt`` lacks, with latents identical to a fresh run's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import fam.protect as protect_mod
from fam.artifacts import Inversions
from fam.errors import InputError, OutputExistsError
from fam.protect import invert_dataset, plan_invert

pytestmark = pytest.mark.unit


def _table(out: Path) -> dict[str, torch.Tensor]:
    return Inversions.read(out).table()


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for path in a:
        assert torch.equal(a[path], b[path]), path  # bit for bit, not merely close


def test_a_resumed_inversion_equals_a_fresh_one(face_folder, tiny_params, tmp_path, monkeypatch):
    fresh = _table(invert_dataset(face_folder, tmp_path / "fresh", tiny_params, progress=False).parent)

    # a person added to the input after a first run
    out = tmp_path / "grown"
    invert_dataset(face_folder, out, tiny_params, persons=["Alice"], progress=False)
    plan = plan_invert(face_folder, out, tiny_params, resume=True)
    assert len(plan.reused) == 3 and plan.describe()["images_inverted_by_previous_run"] == 3
    protect_mod.run_invert(plan, progress=False)
    _assert_same(_table(out), fresh)

    # a run that crashed after its first batch, with the file written after every batch
    monkeypatch.setattr(protect_mod, "INVERT_CHECKPOINT_S", 0.0)
    inverter_cls = type(plan.models.inverter)
    real_invert, calls = inverter_cls.invert, []

    def crash_on_second_batch(self, images):
        calls.append(len(images))
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real_invert(self, images)

    monkeypatch.setattr(inverter_cls, "invert", crash_on_second_batch)
    crashed = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated"):
        invert_dataset(face_folder, crashed, tiny_params, progress=False)
    monkeypatch.setattr(inverter_cls, "invert", real_invert)
    assert len(Inversions.read(crashed).paths) == calls[0] == 3  # the first person (most images first)
    with pytest.raises(OutputExistsError, match="pass --resume"):
        plan_invert(face_folder, crashed, tiny_params)
    invert_dataset(face_folder, crashed, tiny_params, resume=True, progress=False)
    _assert_same(_table(crashed), fresh)


def test_resume_reinverts_changed_images_and_keeps_other_persons(face_folder, tiny_params, tmp_path):
    out = tmp_path / "inv"
    invert_dataset(face_folder, out, tiny_params, progress=False)
    before = _table(out)
    bob = sorted((face_folder / "Bob").iterdir())[0]
    bob.write_bytes((face_folder / "Carol" / "Carol_0001.png").read_bytes())  # edited content
    plan = plan_invert(face_folder, out, tiny_params, resume=True, persons=["Bob"])
    assert set(plan.reused) == {str(p.resolve()) for p in (face_folder / "Bob").iterdir()} - {
        str(bob.resolve())
    }
    protect_mod.run_invert(plan, progress=False)
    after = _table(out)
    assert after.keys() == before.keys()  # Alice and Carol kept although this run selected only Bob
    assert not torch.equal(after[str(bob.resolve())], before[str(bob.resolve())])
    assert all(torch.equal(after[p], before[p]) for p in before if p != str(bob.resolve()))


def test_resume_refuses_other_inverter_settings_or_force(face_folder, tiny_params, tmp_path):
    out = tmp_path / "inv"
    invert_dataset(face_folder, out, tiny_params, progress=False)
    other = tiny_params.replace({"models.inverter.steps": 2})
    with pytest.raises(OutputExistsError, match="another inverter settings"):
        plan_invert(face_folder, out, other, resume=True)
    with pytest.raises(InputError, match="either --resume"):
        plan_invert(face_folder, out, tiny_params, resume=True, force=True)


def test_cli_invert_resume(face_folder, tmp_path):
    import yaml

    from fam.cli import cli
    from tests.helpers.tiny_models import TINY_SETTINGS

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY_SETTINGS))
    args = ["invert", "--input", str(face_folder), "--out", str(tmp_path / "inv"), "--params", str(params)]
    first = CliRunner().invoke(cli, [*args, "--person", "Alice,Bob", "--quiet"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli, [*args, "--quiet"])
    assert again.exit_code == 2 and "pass --resume" in again.stderr
    res = CliRunner().invoke(cli, [*args, "--resume", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "6 images, 5 of them kept from the previous run" in res.stdout


def test_resume_refuses_another_thread_count(face_folder, tiny_params, tmp_path, monkeypatch):
    # the projection's latents depend on the thread count, so a resumed run must not mix two
    out = tmp_path / "inv"
    invert_dataset(face_folder, out, tiny_params, persons=["Alice"], progress=False)
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads + 1)
    with pytest.raises(OutputExistsError, match=rf"another thread count \({threads}, now {threads + 1}\)"):
        plan_invert(face_folder, out, tiny_params, resume=True)
