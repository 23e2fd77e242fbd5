"""What users actually do to `fam protect`: company, shards, --force on their own folders,
changed inputs on --resume, two runs on one folder, leftovers of a crash."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fam.artifacts import ProtectManifest, ReleaseIndex
from fam.config import load_params
from fam.errors import OutputExistsError, UserError
from fam.keys import research_key
from fam.outdir import OutputBusyError, output_lock
from fam.protect import invert_dataset, protect_dataset
from tests.helpers.faces import make_face_folder


def _release_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "release").rglob("*.png"))}


@pytest.fixture
def params(tiny_params):
    return tiny_params.replace({"release.allow_research_keys": True})


@pytest.mark.model
def test_a_persons_images_do_not_depend_on_who_else_is_protected(tmp_path):
    # The shipped models and enough steps for batch-dependent rounding to show: packed batches
    # gave up to 38/255 per pixel here before persons were kept apart.
    params = load_params("params.yaml").replace(
        {
            "release.allow_research_keys": True,
            "optimise.steps": 30,
            "models.inverter.steps": 2,
            "runtime.threads": 1,
        }
    )
    faces = make_face_folder(tmp_path / "aligned", {"Alice": 3, "Bob": 2, "Carol": 1}, size=64)
    alone = protect_dataset(
        faces, tmp_path / "alone", research_key(1), params, persons=["Alice"], progress=False
    )
    company = protect_dataset(faces, tmp_path / "company", research_key(1), params, progress=False)
    alice = _release_bytes(alone.out_dir)
    assert alice and all(_release_bytes(company.out_dir)[name] == data for name, data in alice.items())


@pytest.mark.unit
def test_release_index_is_ordered_by_pseudonym_not_by_name(params, tmp_path):
    faces = make_face_folder(tmp_path / "aligned", {"Alice": 1, "Bob": 1, "Carol": 1, "Dave": 1})
    s = protect_dataset(faces, tmp_path / "out", research_key(1), params, progress=False)
    paths = [f.path for f in ReleaseIndex.read(s.out_dir).files]
    assert paths == sorted(paths)
    manifest = ProtectManifest.read(s.manifest_path)
    by_name = [it.pseudonym for it in sorted(manifest.items, key=lambda it: it.person)]
    assert [it.pseudonym for it in manifest.items] == sorted(by_name)
    assert json.loads((s.out_dir / "release" / "release.json").read_text())["n_persons"] == 4


@pytest.mark.unit
def test_force_never_touches_a_folder_protect_did_not_write(face_folder, params, tmp_path):
    mine = tmp_path / "mine"
    for name in ("release/notes.txt", "latents/x.pt", "manifest.json"):
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).write_text("the user's own file")
    for flags in ({"force": True}, {"resume": True}):
        with pytest.raises(OutputExistsError, match="holds no `fam protect` output"):
            protect_dataset(face_folder, mine, research_key(1), params, progress=False, **flags)
    assert sorted(str(p.relative_to(mine)) for p in mine.rglob("*") if p.is_file()) == [
        "latents/x.pt",
        "manifest.json",
        "release/notes.txt",
    ]


@pytest.mark.unit
def test_resume_reconciles_added_edited_and_removed_inputs(face_folder, params, tmp_path):
    out = tmp_path / "out"
    first = protect_dataset(face_folder, out, research_key(1), params, progress=False)
    before = ProtectManifest.read(first.manifest_path)
    gone = {it.pseudonym for it in before.items if it.person == "Carol"}
    make_face_folder(tmp_path / "extra", {"Alice": 1}, seed=7)
    (tmp_path / "extra/Alice/Alice_0001.png").rename(face_folder / "Alice" / "Alice_0009.png")
    shutil.copy(face_folder / "Alice/Alice_0001.png", face_folder / "Bob/Bob_0001.png")  # edited content
    shutil.rmtree(face_folder / "Carol")

    s = protect_dataset(face_folder, out, research_key(1), params, progress=False, resume=True)
    assert (s.n_resumed_persons, s.n_redone_persons, s.n_removed_persons) == (0, 2, 1)
    after = ProtectManifest.read(s.manifest_path)
    assert sorted(Path(it.input).name for it in after.items if it.person == "Alice")[-1] == "Alice_0009.png"
    assert {it.person for it in after.items} == {"Alice", "Bob"}
    released = {p.relative_to(out / "release").as_posix() for p in (out / "release").rglob("*.png")}
    assert released == {f.path for f in ReleaseIndex.read(out).files}
    assert not any(p in gone for p in os.listdir(out / "release" / "images"))
    assert not any((out / "latents").glob(f"{next(iter(gone))}*"))

    again = protect_dataset(face_folder, out, research_key(1), params, progress=False, resume=True)
    assert (again.n_resumed_persons, again.n_redone_persons, again.n_removed_persons) == (2, 0, 0)


@pytest.mark.unit
def test_a_subset_run_leaves_the_other_persons_outputs_alone(face_folder, params, tmp_path):
    out = tmp_path / "out"
    protect_dataset(face_folder, out, research_key(1), params, progress=False)
    s = protect_dataset(
        face_folder, out, research_key(1), params, persons=["Bob"], progress=False, resume=True
    )
    assert (s.n_resumed_persons, s.n_removed_persons) == (1, 0)
    assert len(list((out / "release" / "images").iterdir())) == 3


@pytest.mark.unit
def test_resume_removes_temporary_files_of_an_interrupted_run(face_folder, params, tmp_path):
    out = tmp_path / "out"
    protect_dataset(face_folder, out, research_key(1), params, progress=False)
    folder = next((out / "release" / "images").iterdir())
    stale = folder / ".0000.png.k3j9x_a2.tmp"
    stale.write_bytes(b"half a png")
    user_file = folder / ".keep.tmp"  # not an atomic-write name: not ours
    user_file.write_text("")
    s = protect_dataset(face_folder, out, research_key(1), params, progress=False, resume=True)
    assert s.n_stale_files == 1 and not stale.exists() and user_file.exists()


@pytest.mark.unit
def test_two_runs_on_one_output_folder_cannot_interleave(face_folder, params, tmp_path):
    out = tmp_path / "out"
    with output_lock(out, "protect"):
        with pytest.raises(OutputBusyError, match="in use by another run"):
            protect_dataset(face_folder, out, research_key(1), params, progress=False)
        with pytest.raises(OutputBusyError):
            protect_dataset(face_folder, out, research_key(1), params, shared=True, progress=False)
    with output_lock(out, "protect", shared=True):  # a shard is running: other shards may join
        s = protect_dataset(
            face_folder, out, research_key(1), params, persons=["Bob"], shared=True, progress=False
        )
        assert s.n_persons == 1
        with pytest.raises(OutputBusyError):  # but a plain run may not
            protect_dataset(face_folder, out, research_key(1), params, resume=True, progress=False)


@pytest.mark.unit
def test_an_output_folder_that_cannot_be_created_is_a_clear_error(face_folder, params, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot create the output folder"):
        protect_dataset(face_folder, blocker / "out", research_key(1), params, progress=False)


@pytest.mark.unit
def test_invert_force_replaces_only_its_own_file(face_folder, params, tmp_path):
    out = tmp_path / "inv"
    out.mkdir()
    (out / "inversions.pt").write_text("a user's file")
    with pytest.raises(OutputExistsError, match="not written by `fam invert`"):
        invert_dataset(face_folder, out, params, force=True, progress=False)
    assert (out / "inversions.pt").read_text() == "a user's file"


@pytest.mark.unit
def test_orchestrators_hear_of_each_finished_person_by_pseudonym(face_folder, params, tmp_path):
    heard: list[tuple[str, int, int]] = []
    s = protect_dataset(
        face_folder,
        tmp_path / "out",
        research_key(1),
        params,
        progress=False,
        on_person=lambda *a: heard.append(a),
    )
    pseudonyms = {it.pseudonym for it in ProtectManifest.read(s.manifest_path).items}
    assert [(n, t) for _, n, t in heard] == [(1, 3), (2, 3), (3, 3)]
    assert {p for p, _, _ in heard} == pseudonyms


@pytest.mark.unit
def test_an_output_under_a_link_to_a_folder_not_made_yet_is_created_through_it(tmp_path):
    """The Docker image links /app/runs -> /data/runs; a fresh volume has no runs/ yet."""
    from fam.outdir import make_dir

    (tmp_path / "runs").symlink_to(tmp_path / "volume" / "runs")
    made = make_dir(tmp_path / "runs" / "protect" / "k1")
    assert made.is_dir() and (tmp_path / "volume" / "runs" / "protect" / "k1").is_dir()
