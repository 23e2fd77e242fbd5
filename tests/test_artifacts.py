"""The typed artifacts (fam.artifacts) and the plumbing under them (fam.io_utils, fam.provenance)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from fam import __version__, io_utils
from fam.artifacts import (
    AlignManifest,
    AlignRow,
    AlignSummary,
    Inversions,
    KeyIdentity,
    LossCurve,
    Metrics,
    ProtectItem,
    ProtectManifest,
    Reject,
    Rejects,
    ReleaseFile,
    ReleaseIndex,
    ResolvedSettings,
)
from fam.config import Params
from fam.errors import InputError
from fam.provenance import code_version

pytestmark = pytest.mark.unit


def _align_rows() -> tuple[AlignRow, ...]:
    return (
        AlignRow(
            "ann/a.jpg", "ann", "aligned", "", "images/ann/a.png", "JPEG", "JPEG", 250, 250, 0.9991, 88.2, 1
        ),
        AlignRow("ann/b.jpg", "ann", "rejected", "not_an_image", "", "", "JPEG", 0, 0, None, None, None),
        AlignRow("bo/c.png", "bo", "rejected", "no_face", "", "PNG", "PNG", 64, 48, 0.5, 12.0, 0),
    )


def _item(n: int) -> ProtectItem:
    return ProtectItem(
        input=f"/aligned/images/ann/{n}.png",
        input_sha256=f"{n + 1:064x}",
        person="ann",
        pseudonym="p0123456789ab",
        output=f"release/images/p0123456789ab/{n:04d}.png",
        output_sha256=f"{n:064x}",
        latent_file="latents/p0123456789ab.pt",
        latent_index=n,
        augmented_views=0,
        losses={"anonymity_cos": 0.1, "group_total": 1.5},
    )


def _manifest() -> ProtectManifest:
    return ProtectManifest(
        code_version="0.1.0+gabc",
        params_digest="d" * 64,
        generator_id="stylegan2-64:sd-sha256:00",
        aligned_dir="/aligned",
        precision="fp32",
        modconv="split",
        key=KeyIdentity("research", "fp-" + "0" * 32, 3),
        items=(_item(0), _item(1)),
        rejects=(Reject("not_square", "40x30 is not square", input="/aligned/ann/wide.png"),),
    )


def _release() -> ReleaseIndex:
    return ReleaseIndex(
        code_version="0.1.0+gabc",
        params_digest="d" * 64,
        generator_id="g",
        precision="fp32",
        modconv="split",
        key_fingerprint="fp-" + "1" * 32,
        key_kind="secret",
        n_persons=1,
        files=(ReleaseFile("images/p0/0000.png", "a" * 64), ReleaseFile("images/p0/0001.png", "b" * 64)),
    )


def _summary() -> AlignSummary:
    return AlignSummary(
        "/photos", 3, 1, {"no_face": 1, "not_an_image": 1}, {"JPEG": 1, "PNG": 1, "-": 1}, 3, 0.25
    )


# (instance, where write() puts the file relative to the folder) for every artifact class.
ARTIFACTS: dict[str, tuple[Callable[[], Any], str]] = {
    "align manifest": (lambda: AlignManifest(_align_rows()), "manifest.csv"),
    "align summary": (_summary, "align_summary.json"),
    "protect manifest": (_manifest, "manifest.json"),
    "release index": (_release, "release/release.json"),
    "rejects": (
        lambda: Rejects((Reject("no_face", "", input="x.png"), Reject("too_large", "9x9"))),
        "rejects.json",
    ),
    "metrics": (lambda: Metrics({"psr_anonymity_tiny_fmr1e-3": 0.75, "n_items": 12.0}), "metrics.json"),
    "settings": (lambda: ResolvedSettings.of("protect", Params(), device="cpu"), "settings.json"),
    "inversions": (
        lambda: Inversions(
            "g", {"name": "projection"}, ("/a/0.png", "/a/1.png"), torch.arange(24.0).view(2, 3, 4)
        ),
        "inversions.pt",
    ),
}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, Inversions):
        return (a.generator_id, a.inverter, a.paths) == (b.generator_id, b.inverter, b.paths) and torch.equal(
            a.ws, b.ws
        )
    return a == b


@pytest.mark.parametrize("name", ARTIFACTS)
def test_round_trip_from_folder_and_from_file(name: str, tmp_path: Path) -> None:
    make, rel = ARTIFACTS[name]
    original = make()
    path = original.write(tmp_path)
    assert path == tmp_path / rel
    cls = type(original)
    assert _equal(cls.read(tmp_path), original)
    assert _equal(cls.read(path), original)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "name", [n for n in ARTIFACTS if n not in ("align manifest", "metrics", "inversions")]
)
def test_wrong_format_string_names_the_file_and_the_command(name: str, tmp_path: Path) -> None:
    make, _ = ARTIFACTS[name]
    path = make().write(tmp_path)
    doc = json.loads(path.read_text())
    doc["format"] = "something-else/v9"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"format 'something-else/v9', expected 'fam-") as info:
        type(make()).read(tmp_path)
    assert str(path) in str(info.value) and "`fam " in str(info.value)


def test_wrong_inversions_format_is_refused(tmp_path: Path) -> None:
    torch.save({"format": "other", "ws": torch.zeros(1)}, tmp_path / Inversions.FILENAME)
    with pytest.raises(InputError, match=r"expected 'fam-inversions/v1'.*`fam invert`"):
        Inversions.read(tmp_path)


@pytest.mark.parametrize("name", ARTIFACTS)
def test_missing_file_says_which_command_writes_it(name: str, tmp_path: Path) -> None:
    make, rel = ARTIFACTS[name]
    with pytest.raises(InputError, match=r"does not exist; it is written by `fam ") as info:
        type(make()).read(tmp_path)
    assert Path(rel).name in str(info.value)


@pytest.mark.parametrize("name", ARTIFACTS)
def test_a_failed_write_leaves_no_partial_file_and_keeps_the_old_one(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make, _ = ARTIFACTS[name]
    fresh = tmp_path / "fresh"
    with monkeypatch.context() as m:
        m.setattr(io_utils.os, "fsync", _fail)
        with pytest.raises(OSError, match="disk full"):
            make().write(fresh)
    assert not [p for p in fresh.rglob("*") if p.is_file()]  # neither the file nor a temporary one

    kept = tmp_path / "kept"
    path = make().write(kept)
    before = path.read_bytes()
    with monkeypatch.context() as m:
        m.setattr(io_utils.os, "fsync", _fail)
        with pytest.raises(OSError, match="disk full"):
            make().write(kept)
    assert path.read_bytes() == before
    assert [p for p in kept.rglob("*") if p.is_file()] == [path]


def _fail(fd: int) -> None:
    raise OSError("disk full")


def test_align_manifest_columns_are_checked_by_name(tmp_path: Path) -> None:
    path = AlignManifest(_align_rows()).write(tmp_path)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    stale = [c for c in header if c != "extension_format"]  # the copy that had drifted
    path.write_text(
        "\n".join([",".join(stale)] + [",".join(r.split(",")[:6] + r.split(",")[7:]) for r in lines[1:]])
    )
    with pytest.raises(InputError, match=r"lacks \['extension_format'\].*`fam align`"):
        AlignManifest.read(tmp_path)
    assert tuple(header) == AlignManifest.COLUMNS


def test_align_manifest_bad_cell_names_the_line_and_a_cut_journal_row_is_dropped(tmp_path: Path) -> None:
    path = AlignManifest(_align_rows()).write(tmp_path)
    text = path.read_text()
    path.write_text(text.replace(",250,250,", ",wide,250,"))
    with pytest.raises(InputError, match=r"line 2: invalid literal"):
        AlignManifest.read(path)
    cut = text[: text.rindex("\n", 0, len(text) - 1) + 12]  # the last row written only in part
    path.write_text(cut)
    with pytest.raises(InputError, match=r"line 4"):
        AlignManifest.read(path)
    assert AlignManifest.read(path, partial_ok=True).rows == _align_rows()[:2]


def test_align_manifest_views() -> None:
    manifest = AlignManifest(_align_rows())
    assert [r.input_path for r in manifest.aligned()] == ["ann/a.jpg"]
    assert manifest.people() == ["ann"]


def test_release_index_reads_a_published_copy_and_checks_its_count(tmp_path: Path) -> None:
    path = _release().write(tmp_path)
    assert ReleaseIndex.read(path.parent) == _release()  # the published release folder itself
    doc = json.loads(path.read_text())
    doc["n_images"] = 5
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="n_images says 5 but 2 files are listed"):
        ReleaseIndex.read(tmp_path)


def test_protect_manifest_refuses_a_missing_field_and_keeps_the_v1_layout(tmp_path: Path) -> None:
    path = _manifest().write(tmp_path)
    doc = json.loads(path.read_text())
    assert doc["key_fingerprint"] == doc["key"]["key_fingerprint"] and doc["research_seed"] == 3
    del doc["items"][1]["output_sha256"]
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"field items\[1\]\.output_sha256 is missing"):
        ProtectManifest.read(tmp_path)


def test_metrics_must_be_numbers(tmp_path: Path) -> None:
    (tmp_path / Metrics.FILENAME).write_text(json.dumps({"fid": 3.5, "note": "hello"}))
    with pytest.raises(InputError, match="field note must be an integer or a number, not str"):
        Metrics.read(tmp_path)
    (tmp_path / Metrics.FILENAME).write_text(json.dumps({"fid": True}))
    with pytest.raises(InputError, match="not a boolean"):
        Metrics.read(tmp_path)


def test_inversions_need_one_path_per_latent() -> None:
    with pytest.raises(ValueError, match="2 paths but 1 latents"):
        Inversions("g", {}, ("a", "b"), torch.zeros(1, 3, 4))


def test_resolved_settings_give_back_the_params_and_compare_without_the_code_version(tmp_path: Path) -> None:
    params = Params().replace({"optimise.steps": 7})
    written = ResolvedSettings.of("protect", params, device="cpu")
    written.write(tmp_path)
    back = ResolvedSettings.read(tmp_path)
    assert back.to_params() == params and back.to_params().method_digest() == params.method_digest()
    assert back.same_run(ResolvedSettings("protect", params.to_dict(), {"device": "cpu"}, "another version"))
    assert not back.same_run(ResolvedSettings.of("protect", params, device="cuda"))
    assert not back.same_run(ResolvedSettings.of("protect", Params(), device="cpu"))


def test_sha256_of_bytes_and_of_a_file_agree(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000  # several read chunks
    (tmp_path / "f").write_bytes(data)
    assert io_utils.sha256_file(tmp_path / "f") == io_utils.sha256_bytes(data)
    assert io_utils.sha256_bytes(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_code_version_is_one_record() -> None:
    v = code_version()
    assert v.version.startswith(__version__)
    if v.commit != "unknown":  # a git checkout
        assert len(v.commit) == 40 and v.version.endswith(f"+g{v.commit[:12]}{'.dirty' if v.dirty else ''}")


def test_an_image_without_git_reports_the_commit_it_was_built_from(monkeypatch) -> None:
    from fam import provenance

    commit = "ab" * 20
    monkeypatch.setenv(provenance.BUILT_FROM_COMMIT, commit.upper())
    monkeypatch.setenv(provenance.BUILT_FROM_DIRTY, "1")
    v = provenance._built_from()
    assert (v.commit, v.dirty, v.version) == (commit, True, f"{__version__}+g{commit[:12]}.dirty")
    monkeypatch.setenv(provenance.BUILT_FROM_COMMIT, "not-a-commit")
    assert provenance._built_from() == provenance.CodeVersion("unknown", False, __version__)


def test_loss_curves_average_by_persons_and_refuse_bad_files(tmp_path):
    a = LossCurve(((4.0, 1.0, 2.0, 1.0), (2.0, 0.5, 1.0, 0.5)), persons=1)
    b = LossCurve(((1.0, 1.0, 0.0, 0.0), (0.5, 0.5, 0.0, 0.0)), persons=3)
    mean = LossCurve.mean([a, b])
    assert mean.persons == 4 and mean.column("total") == [1.75, 0.875]
    assert LossCurve.read(mean.write(tmp_path)) == mean  # exact round trip (repr floats)
    with pytest.raises(InputError, match="different lengths"):
        LossCurve.mean([a, LossCurve(a.rows[:1])])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / LossCurve.FILENAME).write_text("step,total\n0,1\n")
    with pytest.raises(InputError, match="not a loss curve"):
        LossCurve.read(bad)
    with pytest.raises(InputError, match="does not exist"):
        LossCurve.read(tmp_path / "nowhere")
