"""The Great Expectations suites pass a well-formed release and catch each kind of leak.

Fixtures are built through the artifact classes (``ALIGNED/manifest.csv``, ``OUT/manifest.json``,
``OUT/release/release.json``) from small generated images, so these tests need neither models nor
data. Only the tampering a test simulates writes raw bytes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fam.artifacts import KeyIdentity, Metrics, ProtectManifest, ReleaseIndex
from tasks.gx_suites import (
    ValidationFailed,
    data_docs_dir,
    validate_input_manifest,
    validate_metrics,
    validate_release,
)
from tests.helpers.artifacts import (
    aligned_row,
    protect_item,
    rejected_row,
    write_align_manifest,
    write_protect_output,
)

pytestmark = pytest.mark.flow

KEY_HEX = "ab" * 32
PEOPLE = {"Alice_Example": 2, "Bob_Example": 1}


def _png(path: Path, seed: int, size: int = 48) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("val")
    raw, aligned, out = root / "raw", root / "aligned", root / "out"
    rows, items = [], []
    seed = 0
    for person, n in PEOPLE.items():
        for i in range(n):
            seed += 1
            src = raw / person / f"{person}_{i + 1:04d}.jpg"
            src.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((64, 64, 3), seed * 20, np.uint8)).save(src, format="JPEG")
            rel = f"images/{person}/{src.stem}.png"
            _png(aligned / rel, seed)
            rows.append(aligned_row(src.relative_to(raw).as_posix(), person, rel, side=64))
            pseudo = f"p{seed:012d}"
            rel_out = f"release/images/{pseudo}/{i}.png"
            _png(out / rel_out, 1000 + seed)
            items.append(protect_item(out, src, person, pseudo, rel_out, i))
    rows.append(rejected_row("Bob_Example/bad.jpg", "Bob_Example"))
    write_align_manifest(aligned, rows, input_dir=raw)  # input paths relative to raw/, as fam align writes
    write_protect_output(out, items, KeyIdentity("secret", "fp-test"))
    return raw, aligned, out


def _copy(out: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "out"
    shutil.copytree(out, dst)
    return dst


def _failed(report) -> set[str]:
    return {r["why"] for r in report.failed}


def test_input_manifest_suite_passes_and_catches_duplicates(good, tmp_path):
    _, aligned, _ = good
    assert validate_input_manifest(aligned).success
    bad = tmp_path / "aligned"
    shutil.copytree(aligned, bad)
    lines = (bad / "manifest.csv").read_text().splitlines()
    (bad / "manifest.csv").write_text("\n".join([*lines, lines[1]]) + "\n")  # same input twice
    report = validate_input_manifest(bad)
    assert not report.success
    assert "every input appears once" in _failed(report)


def test_release_suite_passes_on_a_clean_release(good):
    _, aligned, out = good
    report = validate_release(out, aligned, expected_fingerprint="fp-test", key_hex=KEY_HEX)
    assert report.success, report.failed
    assert report.n_rows > 0


def test_release_suite_rejects_wrong_fingerprint(good):
    _, aligned, out = good
    report = validate_release(out, aligned, expected_fingerprint="fp-other")
    assert _failed(report) == {"key fingerprint"}


def test_release_suite_finds_key_material_and_latents(good, tmp_path):
    _, aligned, out = good
    out2 = _copy(out, tmp_path)
    (out2 / "release" / "release.json").write_text(json.dumps({"note": KEY_HEX.upper()}))
    np.save(out2 / "release" / "latents.npy", np.zeros(3))
    report = validate_release(out2, aligned, key_hex=KEY_HEX)
    assert {"no key material", "only png/json (no latents)", "no unlisted file"} <= _failed(report)
    # The key itself never enters the results Great Expectations echoes back.
    assert KEY_HEX not in json.dumps(report.results).lower()


def test_release_suite_finds_original_pixels_names_and_missing_outputs(good, tmp_path):
    _, aligned, out = good
    out2 = _copy(out, tmp_path)
    manifest = ProtectManifest.read(out2)
    first, *kept, dropped = manifest.items  # the last: an accepted input with no output
    # An aligned original re-encoded under a pseudonym: same pixels, different bytes.
    with Image.open(aligned / "images" / "Alice_Example" / "Alice_Example_0001.png") as im:
        im.save(out2 / first.output, compress_level=1)
    first = protect_item(out2, Path(first.input), first.person, first.pseudonym, first.output, 0)
    (out2 / dropped.output).unlink()
    dataclasses.replace(manifest, items=(first, *kept)).write(out2)
    (out2 / "release" / "release.json").write_text(json.dumps({"who": "Alice_Example"}))
    failed = _failed(validate_release(out2, aligned))
    assert {
        "no original pixels",
        "no real names",
        "one protected image per accepted input (or a recorded reject)",
    } <= failed


def test_a_raw_photo_copied_into_the_release_is_caught_and_named(good, tmp_path):
    raw, aligned, out = good
    out2 = _copy(out, tmp_path)
    item = ProtectManifest.read(out2).items[0]
    shutil.copy(raw / "Alice_Example" / "Alice_Example_0001.jpg", out2 / item.output)  # bytes of the photo
    report = validate_release(out2, aligned)
    leak = next(r for r in report.failed if r["why"] == "no original pixels")
    assert leak["examples"] == [item.output]  # the file at fault, not a bare False
    assert f"[{item.output}]" in str(ValidationFailed(report))


def test_a_release_whose_photos_cannot_be_found_fails_closed(good, tmp_path):
    _, aligned, out = good
    moved = tmp_path / "aligned"
    shutil.copytree(aligned, moved)
    (moved / "align_summary.json").unlink()  # nowhere recorded where the photos were
    report = validate_release(out, moved)
    assert any(r["column"] == "raw_input_found" for r in report.failed)


def test_reports_hold_native_gx_results_and_data_docs(good, tmp_path):
    _, aligned, out = good
    report = validate_release(out, aligned, expected_fingerprint="fp-test")
    path = report.write(tmp_path / "release.json")
    doc = json.loads(path.read_text())
    assert doc["success"] and len(doc["gx_results"]) == 4  # one per frame
    assert {"success", "results", "statistics", "suite_name"} <= set(doc["gx_results"][0])
    site = data_docs_dir(path)
    assert (site / "index.html").is_file()
    assert len(list((site / "validations").rglob("*.html"))) == 4


def test_release_suite_checks_the_release_index_against_the_manifest(good, tmp_path):
    _, aligned, out = good
    out2 = _copy(out, tmp_path)
    index = ReleaseIndex.read(out2)
    dataclasses.replace(index, files=index.files[1:]).write(out2)  # one released image unlisted
    assert _failed(validate_release(out2, aligned)) == {
        "release.json lists exactly the released images, key and settings"
    }


def test_release_suite_catches_hash_mismatch_and_undecodable_file(good, tmp_path):
    _, aligned, out = good
    out2 = _copy(out, tmp_path)
    (out2 / ProtectManifest.read(out2).items[0].output).write_bytes(b"not a png")
    failed = _failed(validate_release(out2, aligned))
    assert {"hash matches file", "every file decodes"} <= failed


def test_metrics_suite_checks_each_value_against_its_family():
    families = {
        "psr_anonymity_dlib_fmr1e-3": "rate",
        "dsys_bins": "count",
        "fid": "distance",
        "n_impostor_pairs_dlib": "count",
        "score_anonymity_mean_dlib": "score",
    }
    good = {
        "psr_anonymity_dlib_fmr1e-3": 0.9,
        "dsys_bins": 100.0,
        "fid": 12.0,
        "n_impostor_pairs_dlib": 100.0,
        "score_anonymity_mean_dlib": -0.2,
    }
    assert validate_metrics(Metrics(good, families)).success
    bad = {
        "psr_anonymity_dlib_fmr1e-3": 1.5,
        "dsys_bins": 100.0,
        "fid": -1.0,
        "n_impostor_pairs_dlib": -1.0,
        "score_anonymity_mean_dlib": float("nan"),
    }
    assert _failed(validate_metrics(Metrics(bad, families))) == {
        "rate in [0, 1]",
        "finite",
        "count >= 0",
        "distance >= 0",
    }
    # the family decides, not the name: a score named like a rate may be negative
    assert validate_metrics(Metrics({"psr_like_score": -0.5}, {"psr_like_score": "score"})).success
    assert _failed(validate_metrics(Metrics({"score_x": 1.5}, {"score_x": "score"}))) == {"score in [-1, 1]"}


def test_metrics_suite_fails_a_metric_without_a_family(tmp_path):
    Metrics({"psr_anonymity_dlib_fmr1e-3": 0.9}).write(tmp_path)  # no metric_families.json
    assert not (tmp_path / Metrics.FAMILIES_FILENAME).exists()
    failed = _failed(validate_metrics(tmp_path))
    assert len(failed) == 1 and next(iter(failed)).startswith("every metric has a family")
    Metrics({"psr_anonymity_dlib_fmr1e-3": 0.9}, {"psr_anonymity_dlib_fmr1e-3": "rate"}).write(tmp_path)
    assert validate_metrics(tmp_path).success
