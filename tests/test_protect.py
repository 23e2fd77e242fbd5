"""The dataset-level engine and the CLI, end to end on tiny models and generated images."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import fam.protect as protect_mod
from fam.artifacts import Inversions, LossCurve, ProtectManifest, Rejects, ReleaseIndex, ResolvedSettings
from fam.cli import cli
from fam.errors import InputError, KeyMaterialError, OutputExistsError
from fam.keys import research_key
from fam.protect import invert_dataset, protect_dataset

pytestmark = pytest.mark.unit


@pytest.fixture
def params(tiny_params):
    return tiny_params.replace({"release.allow_research_keys": True})


def _latents(out: Path) -> dict[str, torch.Tensor]:
    return {p.name: torch.load(p, weights_only=True)["ws"] for p in sorted((out / "latents").glob("*.pt"))}


def _release_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "release").rglob("*.png"))}


def test_same_key_same_latents_other_key_other_latents(face_folder, params, tmp_path):
    a = protect_dataset(face_folder, tmp_path / "a", research_key(1), params, progress=False)
    b = protect_dataset(face_folder, tmp_path / "b", research_key(1), params, progress=False)
    c = protect_dataset(face_folder, tmp_path / "c", research_key(2), params, progress=False)
    la, lb, lc = _latents(a.out_dir), _latents(b.out_dir), _latents(c.out_dir)
    assert la.keys() == lb.keys()
    for name in la:
        assert torch.allclose(la[name], lb[name], atol=1e-6)
    assert la.keys().isdisjoint(lc.keys())  # pseudonyms depend on the key too
    ws_a = torch.cat([la[k] for k in sorted(la)])
    ws_c = torch.cat([lc[k] for k in sorted(lc)])
    assert not torch.allclose(ws_a, ws_c, atol=1e-3)


def test_manifest_release_and_single_image_path(face_folder, params, tmp_path):
    s = protect_dataset(face_folder, tmp_path / "out", research_key(1), params, progress=False)
    assert (s.n_images, s.n_persons, s.n_rejected) == (6, 3, 0)
    m = ProtectManifest.read(s.manifest_path)
    assert m.key.kind == "research" and m.key.research_seed == 1
    curve = LossCurve.read(s.out_dir)  # the mean over the 3 persons of their per-step terms
    assert curve.persons == 3 and curve.steps == params.optimise.steps
    assert "Alice" not in (s.out_dir / LossCurve.FILENAME).read_text()
    # row `steps` is each group's final total, which the manifest records per view
    finals = {it.pseudonym: it.losses["group_total"] for it in m.items}
    assert curve.column("total")[-1] == pytest.approx(sum(finals.values()) / 3, rel=1e-5)
    carol = [it for it in m.items if it.person == "Carol"]
    assert len(carol) == 1 and carol[0].augmented_views == 3  # views optimised, never released
    assert len(list((s.out_dir / "release/images" / carol[0].pseudonym).iterdir())) == 1
    text = (s.out_dir / "release/release.json").read_text()
    assert "Alice" not in text and "aligned" not in text  # no names or input paths in the release
    assert not any("Alice" in str(p) for p in (s.out_dir / "release").rglob("*"))
    release = ReleaseIndex.read(s.out_dir)
    assert (release.params_digest, release.key_fingerprint) == (m.params_digest, m.key.fingerprint)
    assert {f.path for f in release.files} == {
        str(p.relative_to(s.out_dir / "release")) for p in (s.out_dir / "release").rglob("*.png")
    }
    settings = ResolvedSettings.read(s.out_dir)  # the full settings, next to the manifest
    assert settings.stage == "protect" and settings.to_params() == params
    assert settings.to_params().method_digest() == release.params_digest


def test_no_overwrite_resume_and_force(face_folder, params, tmp_path):
    out = tmp_path / "out"
    protect_dataset(face_folder, out, research_key(1), params, progress=False)
    before = _release_bytes(out)
    with pytest.raises(OutputExistsError, match="--resume"):
        protect_dataset(face_folder, out, research_key(1), params, progress=False)
    s = protect_dataset(face_folder, out, research_key(1), params, progress=False, resume=True)
    assert s.n_resumed_persons == 3 and _release_bytes(out) == before
    with pytest.raises(OutputExistsError, match="different key"):
        protect_dataset(face_folder, out, research_key(2), params, progress=False, resume=True)
    s = protect_dataset(face_folder, out, research_key(2), params, progress=False, force=True)
    assert s.n_resumed_persons == 0 and _release_bytes(out).keys() != before.keys()


def test_resume_refuses_another_precision_or_modulation_path(face_folder, params, tmp_path):
    out = tmp_path / "out"
    fp32 = replace(params, runtime=replace(params.runtime, precision="fp32", modconv="split"))
    protect_dataset(face_folder, out, research_key(1), fp32, progress=False)
    run = ProtectManifest.read(out / ".fam" / "run.json")  # the run's record, without items
    assert (run.precision, run.modconv, run.items) == ("fp32", "split", ())
    fused = replace(fp32, runtime=replace(fp32.runtime, modconv="fused"))
    with pytest.raises(OutputExistsError, match="different modconv"):
        protect_dataset(face_folder, out, research_key(1), fused, progress=False, resume=True)


def test_crash_then_resume_is_byte_identical(face_folder, params, tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    protect_dataset(face_folder, ref, research_key(1), params, progress=False)
    real_write = protect_mod._write_person
    calls = {"n": 0}

    def crash_after_first(*args, **kwargs):
        if calls["n"] == 1:
            raise RuntimeError("simulated crash")
        calls["n"] += 1
        return real_write(*args, **kwargs)

    monkeypatch.setattr(protect_mod, "_write_person", crash_after_first)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated"):
        protect_dataset(face_folder, out, research_key(1), params, progress=False)
    monkeypatch.setattr(protect_mod, "_write_person", real_write)
    s = protect_dataset(face_folder, out, research_key(1), params, progress=False, resume=True)
    assert s.n_resumed_persons == 1
    assert _release_bytes(out) == _release_bytes(ref)


def test_never_writes_inside_input_and_research_key_policy(face_folder, tiny_params, params, tmp_path):
    with pytest.raises(InputError, match="inside the input"):
        protect_dataset(face_folder, face_folder / "out", research_key(1), params, progress=False)
    with pytest.raises(KeyMaterialError, match="research key"):
        protect_dataset(face_folder, tmp_path / "o", research_key(1), tiny_params, progress=False)


def test_bad_files_are_rejected_with_reasons(face_folder, params, tmp_path):
    (face_folder / "Bob" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (face_folder / "Bob" / "notes.txt").write_text("hello")
    from PIL import Image

    Image.new("RGB", (40, 30)).save(face_folder / "Alice" / "wide.png")
    (face_folder / "stray.png").write_bytes(b"")
    s = protect_dataset(face_folder, tmp_path / "out", research_key(1), params, progress=False)
    rejects = {Path(r.input).name: r for r in Rejects.read(s.out_dir).rejects}
    assert {name: r.reason for name, r in rejects.items()} == {
        "broken.png": "unreadable",
        "notes.txt": "not_an_image",
        "wide.png": "not_square",
        "stray.png": "not_in_person_folder",
    }
    assert "40x30 is not square" in rejects["wide.png"].detail
    assert ProtectManifest.read(s.out_dir).rejects == tuple(Rejects.read(s.out_dir).rejects)
    assert s.n_images == 6


def test_large_group_is_chunked_with_anchors(params, tmp_path):
    from tests.helpers.faces import make_face_folder

    folder = make_face_folder(tmp_path / "in", {"Dan": 7, "Eve": 2})
    p = params.replace({"groups.max_batch_views": 3})
    s = protect_dataset(folder, tmp_path / "out", research_key(1), p, progress=False)
    m = ProtectManifest.read(s.manifest_path)
    assert sum(it.person == "Dan" for it in m.items) == 7 and s.n_images == 9


def test_inversions_are_reused(face_folder, params, tmp_path):
    inv = invert_dataset(face_folder, tmp_path / "inv", params, progress=False)
    stored = Inversions.read(inv.parent)
    assert len(stored.paths) == 6 and stored.ws.shape[0] == 6
    assert ResolvedSettings.read(inv.parent).stage == "invert" and Rejects.read(inv.parent).rejects == ()
    a = protect_dataset(
        face_folder, tmp_path / "a", research_key(1), params, inversions=inv.parent, progress=False
    )
    b = protect_dataset(face_folder, tmp_path / "b", research_key(1), params, progress=False)
    la, lb = _latents(a.out_dir), _latents(b.out_dir)
    # inverting in another batch composition differs by ~1e-7; Adam's normalised steps can grow
    # such float noise to ~1e-4 over a few steps, hence the tolerance
    for name in la:
        assert torch.allclose(la[name], lb[name], atol=1e-3)


def test_cli_end_to_end(face_folder, tmp_path, monkeypatch):
    import yaml

    from tests.helpers.tiny_models import TINY_SETTINGS

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(TINY_SETTINGS))
    runner = CliRunner()
    key_path = tmp_path / "keys" / "k1"
    r = runner.invoke(cli, ["key", "new", "--out", str(key_path)])
    assert r.exit_code == 0, r.output
    material = key_path.read_text().split()[-1]
    out = tmp_path / "out"
    args = [
        "protect",
        "--input",
        str(face_folder),
        "--key-file",
        str(key_path),
        "--out",
        str(out),
        "--params",
        str(params_file),
        "--quiet",
    ]
    r = runner.invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "protected 6 images of 3 persons" in r.output
    every_text = r.output + "".join(p.read_text() for p in out.rglob("*.json"))
    assert material not in every_text
    assert material not in "".join(str(p) for p in out.rglob("*"))
    r = runner.invoke(cli, args)
    assert r.exit_code == 2 and "error:" in r.output and "already holds output" in r.output
    r = runner.invoke(cli, [*args, "--resume"])
    assert r.exit_code == 0 and "3 persons resumed" in r.output
    r = runner.invoke(cli, ["key", "fingerprint", "--key-file", str(key_path)])
    assert r.output.strip().startswith("fp-")


def test_the_progress_bar_counts_persons_and_shows_the_step(face_folder, params, tmp_path, capsys):
    protect_dataset(face_folder, tmp_path / "quiet", research_key(1), params, progress=False)
    assert capsys.readouterr().err == ""  # progress=False: the library prints nothing
    protect_dataset(face_folder, tmp_path / "out", research_key(1), params, progress=True)
    bar = capsys.readouterr().err
    steps = params.optimise.steps
    assert "protect: 100%" in bar and "3/3 [" in bar and ("person/s" in bar or "s/person" in bar)
    assert (
        "0/3 [" in bar and f"batch 1/3, step 1/{steps}" in bar and f"batch 3/3, step {steps}/{steps}" in bar
    )
    protect_dataset(face_folder, tmp_path / "out", research_key(1), params, progress=True, resume=True)
    assert "3/3 [" in capsys.readouterr().err  # resumed persons count as done from the start


def test_protect_warns_when_the_input_is_not_an_align_output(face_folder, tmp_path):
    import yaml

    from fam.dataset import is_align_output
    from tests.helpers.artifacts import aligned_row, write_align_manifest
    from tests.helpers.faces import make_face_folder
    from tests.helpers.tiny_models import TINY_SETTINGS

    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump({**TINY_SETTINGS, "release": {"allow_research_keys": True}}))
    aligned = tmp_path / "by_align"
    make_face_folder(aligned / "images", {"Ann": 2})
    write_align_manifest(
        aligned, [aligned_row(f"Ann/{i}.jpg", "Ann", f"images/Ann/Ann_000{i}.png") for i in (1, 2)]
    )
    assert (
        is_align_output(aligned) and is_align_output(aligned / "images") and not is_align_output(face_folder)
    )

    def dry(folder: Path):
        args = ["protect", "--input", str(folder), "--research-seed", "1", "--out", str(tmp_path / "o")]
        return CliRunner().invoke(cli, [*args, "--params", str(params_file), "--dry-run"])

    plain = dry(face_folder)
    assert plain.exit_code == 0 and plain.stderr.startswith(
        f"warning: {face_folder} is not a `fam align` output"
    )
    assert len(plain.stderr.splitlines()) == 1
    for folder in (aligned, aligned / "images"):
        res = dry(folder)
        assert res.exit_code == 0 and res.stderr == "", res.output
