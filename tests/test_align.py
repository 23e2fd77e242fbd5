"""FFHQ geometry, the main-face policy, and the dataset contract (one manifest row per file)."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fam.artifacts import AlignManifest, AlignSummary, Reject, ResolvedSettings
from fam.config import AlignConfig
from fam.errors import InputError, OutputExistsError
from fam.faces.align import (
    FACE_TOO_SMALL,
    NO_FACE,
    SEVERAL_FACES,
    AlignResult,
    align_dataset,
    align_image,
    choose_face,
    ffhq_landmark_positions,
    warp_ffhq,
)
from fam.faces.detect import Face

LFW_FACE = Path("data/lfw/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")
COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255)]


def _landmarks(cx: float, cy: float, eye_dist: float, roll_deg: float) -> np.ndarray:
    """Eyes, nose, mouth corners of an upright face rotated by ``roll_deg`` about (cx, cy)."""
    e = eye_dist
    base = np.array([[-e / 2, 0], [e / 2, 0], [0, 0.5 * e], [-0.4 * e, e], [0.4 * e, e]])
    t = np.deg2rad(roll_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return base @ rot.T + [cx, cy]


def _dot_image(w: int, h: int, lm: np.ndarray, r: float) -> np.ndarray:
    img = Image.new("RGB", (w, h), (128, 128, 128))
    draw = ImageDraw.Draw(img)
    for (x, y), c in zip(lm, COLOURS, strict=True):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=c)
    return np.asarray(img)


def _centroid(img: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    mask = (np.abs(img.astype(int) - colour).sum(axis=2) < 90).astype(float)
    assert mask.sum() > 0, f"colour {colour} not found in the aligned image"
    ys, xs = np.indices(mask.shape)
    # +0.5: a pixel's centre, so centroids are in the same continuous coordinates as landmarks.
    return np.array([(xs * mask).sum() / mask.sum() + 0.5, (ys * mask).sum() / mask.sum() + 0.5])


@pytest.mark.unit
@pytest.mark.parametrize(
    ("w", "h", "cx", "cy", "eye", "roll", "size"),
    [
        (400, 400, 200, 180, 80, 0, 128),  # plain crop
        (400, 300, 210, 150, 60, 25, 64),  # rolled face
        (3000, 2000, 1500, 900, 600, -10, 128),  # huge face: the pre-shrink path
        (300, 300, 60, 70, 70, 5, 96),  # near the corner: the reflect-pad path
    ],
)
def test_landmarks_land_where_ffhq_puts_them(w, h, cx, cy, eye, roll, size) -> None:
    lm = _landmarks(cx, cy, eye, roll)
    out = warp_ffhq(_dot_image(w, h, lm, r=eye * 0.08), lm, size)
    assert out.shape == (size, size, 3)
    expected = ffhq_landmark_positions(lm, size)
    for k in (0, 1, 3, 4):  # eyes and mouth corners
        got = _centroid(out, COLOURS[k])
        assert np.abs(got - expected[k]).max() < 0.02 * size + 0.5, (k, got, expected[k])
    # FFHQ's layout for an upright face with eye distance e and eye-to-mouth m (2e > 1.8m):
    # the eyes sit at x = 3/8 and 5/8 of the width on one horizontal line, whatever the roll.
    assert np.allclose(expected[0], [0.375 * size, expected[0][1]], atol=1e-6)
    assert np.allclose(expected[1], [0.625 * size, expected[0][1]], atol=1e-6)
    assert 0.4 * size < expected[0][1] < 0.5 * size


def _face(x: float, y: float, side: float, score: float = 0.99) -> Face:
    box = np.array([x, y, x + side, y + side])
    return Face(box=box, score=score, landmarks=np.zeros((5, 2)))


@pytest.mark.unit
def test_main_face_policy() -> None:
    cfg = AlignConfig(min_face_px=40, ambiguity_ratio=0.8, min_det_score=0.9)
    big, small, twin = _face(10, 10, 100), _face(300, 10, 50), _face(200, 200, 95)
    assert choose_face([small, big], 400, 400, cfg) is big
    assert choose_face([], 400, 400, cfg).reason == NO_FACE
    assert choose_face([_face(0, 0, 100, score=0.5)], 400, 400, cfg).reason == NO_FACE
    assert choose_face([_face(0, 0, 30)], 400, 400, cfg).reason == FACE_TOO_SMALL
    assert choose_face([big, twin], 400, 400, cfg).reason == SEVERAL_FACES
    assert choose_face([big, _face(300, 300, 30)], 400, 400, cfg) is big  # tiny ones are ignored
    reject = AlignConfig(main_face="reject")
    assert choose_face([big, small], 400, 400, reject).reason == SEVERAL_FACES
    centre = AlignConfig(main_face="centre")
    middle = _face(160, 160, 80)
    assert choose_face([big, middle], 400, 400, centre) is middle  # central beats larger at the edge


# ------------------------------------------------------------------------------------------
# The dataset contract. Detection runs on generated images (no faces) -> needs the MTCNN files.


def _make_inputs(root: Path) -> list[str]:
    (root / "alice").mkdir(parents=True)
    (root / "bob").mkdir()
    Image.new("RGB", (120, 90), (200, 180, 160)).save(root / "alice" / "blank.png")
    (root / "alice" / "notes.jpg").write_text("not a photo")
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "JPEG")
    (root / "bob" / "cut.jpg").write_bytes(buf.getvalue()[:600])
    Image.new("RGB", (64, 64), (10, 20, 30)).save(root / "bob" / "dark.webp", format="WEBP")
    return ["alice/blank.png", "alice/notes.jpg", "bob/cut.jpg", "bob/dark.webp"]


def _manifest(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == AlignManifest.COLUMNS
        return list(reader)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.model
def test_every_file_gets_one_manifest_row_with_a_reason(tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    names = _make_inputs(inp)
    before = _snapshot(inp)
    summary = align_dataset(inp, out, AlignConfig(size=32), progress=False)
    rows = _manifest(out)
    assert [r["input_path"] for r in rows] == names
    reasons = {r["input_path"]: r["reason"] for r in rows}
    assert reasons == {
        "alice/blank.png": "no_face",
        "alice/notes.jpg": "not_an_image",
        "bob/cut.jpg": "unreadable",
        "bob/dark.webp": "no_face",
    }
    assert all(r["status"] == "rejected" and r["output_path"] == "" for r in rows)
    assert {r["input_path"]: r["input_format"] for r in rows}["bob/dark.webp"] == "WEBP"
    assert summary.n_inputs == 4 and summary.aligned == 0 and summary.rejected["no_face"] == 2
    assert AlignSummary.read(out) == summary and not (out / ".manifest.partial.csv").exists()
    assert summary.formats == {"-": 2, "PNG": 1, "WEBP": 1}  # "-": not an image, or cut in its header
    settings = ResolvedSettings.read(out)
    assert (settings.stage, list(settings.params), settings.params["align"]["size"]) == (
        "align",
        ["align"],
        32,
    )
    assert settings.choices == {"detector": "mtcnn"}
    assert [r.input_path for r in AlignManifest.read(out).rows] == names
    assert _snapshot(inp) == before  # the input folder is untouched


@pytest.mark.model
def test_no_overwrite_resume_and_force(tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    _make_inputs(inp)
    cfg = AlignConfig(size=32)
    align_dataset(inp, out, cfg, progress=False)
    first = (out / "manifest.csv").read_bytes()
    with pytest.raises(OutputExistsError):
        align_dataset(inp, out, cfg, progress=False)
    resumed = align_dataset(inp, out, cfg, progress=False, resume=True)
    assert resumed.processed == 0 and (out / "manifest.csv").read_bytes() == first
    # A new file appears: resume processes only it.
    Image.new("RGB", (50, 50)).save(inp / "bob" / "new.png")
    resumed = align_dataset(inp, out, cfg, progress=False, resume=True)
    assert resumed.processed == 1 and resumed.n_inputs == 5
    with pytest.raises(OutputExistsError, match="different settings"):
        align_dataset(inp, out, AlignConfig(size=64), progress=False, resume=True)
    forced = align_dataset(inp, out, AlignConfig(size=64), progress=False, force=True)
    assert forced.processed == 5


@pytest.mark.model
def test_refuses_foreign_or_overlapping_output(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    _make_inputs(inp)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("precious")
    with pytest.raises(OutputExistsError):
        align_dataset(inp, foreign, AlignConfig(size=32), progress=False, force=True)
    assert (foreign / "thesis.docx").read_text() == "precious"
    with pytest.raises(InputError):
        align_dataset(inp, inp / "alice" / "aligned", AlignConfig(size=32), progress=False)
    with pytest.raises(InputError, match="not found"):
        align_dataset(inp, tmp_path / "o", AlignConfig(size=32), persons=["carol"], progress=False)


# ------------------------------------------------------------------------------------------
# Real faces.


def _lfw_face() -> np.ndarray:
    if not LFW_FACE.is_file():
        pytest.fail(f"{LFW_FACE} is missing: run `dvc pull` (see docs/reference.md, face data)")
    return np.asarray(Image.open(LFW_FACE).convert("RGB"))


@pytest.mark.data
@pytest.mark.model
def test_real_face_aligns_and_policies_reject() -> None:
    face = _lfw_face()
    cfg = AlignConfig(size=64)
    res = align_image(face, cfg)
    assert isinstance(res, AlignResult) and res.image.shape == (64, 64, 3) and res.n_faces == 1
    # The eyes the detector found land near FFHQ's eye positions (3/8 and 5/8 across, just
    # above the middle); exact only when eye line and eye-to-mouth line are perpendicular.
    eyes = ffhq_landmark_positions(res.face.landmarks, 64)[:2] / 64
    assert np.abs(eyes[:, 0] - [0.375, 0.625]).max() < 0.03
    assert np.all((eyes[:, 1] > 0.4) & (eyes[:, 1] < 0.52))

    tiny = np.asarray(Image.fromarray(face).resize((80, 80), Image.Resampling.LANCZOS))
    canvas = np.full((240, 240, 3), 127, dtype=np.uint8)
    canvas[80:160, 80:160] = tiny
    small = align_image(canvas, cfg)
    assert isinstance(small, Reject) and small.reason == FACE_TOO_SMALL

    pair = np.concatenate([face, face], axis=1)  # the same face twice, side by side
    several = align_image(pair, cfg)
    assert isinstance(several, Reject) and several.reason == SEVERAL_FACES

    gray = Image.fromarray(face).convert("L")
    assert isinstance(align_image(gray, AlignConfig(size=64, grayscale="convert")), AlignResult)
    rejected = align_image(gray, AlignConfig(size=64, grayscale="reject"))
    assert isinstance(rejected, Reject) and rejected.reason == "grayscale_rejected"


@pytest.mark.data
@pytest.mark.model
def test_webp_named_jpg_in_wild_is_aligned(tmp_path: Path) -> None:
    src = Path("data/wild/scarlett_johansson/img47.jpg")
    if not src.is_file():
        pytest.fail(f"{src} is missing: run `dvc pull`")
    inp = tmp_path / "in" / "scarlett"
    inp.mkdir(parents=True)
    (inp / "img47.jpg").write_bytes(src.read_bytes())
    summary = align_dataset(tmp_path / "in", tmp_path / "out", AlignConfig(size=64), progress=False)
    (row,) = _manifest(tmp_path / "out")
    assert summary.aligned == 1
    assert (row["input_format"], row["extension_format"], row["status"]) == ("WEBP", "JPEG", "aligned")
    assert (tmp_path / "out" / row["output_path"]).is_file()
    assert int(row["input_width"]) == 1350 and float(row["face_px"]) > 300


@pytest.mark.model
def test_cli_prints_the_summary_table(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from fam.cli import cli

    inp, out = tmp_path / "in", tmp_path / "out"
    _make_inputs(inp)
    params = tmp_path / "params.yaml"
    params.write_text("align:\n  size: 32\n")
    args = ["align", "--input", str(inp), "--out", str(out), "--params", str(params), "--quiet"]
    res = CliRunner().invoke(cli, [*args, "--set", "align.min_face_px=30"])
    assert res.exit_code == 0, res.output
    assert "rejected: no_face" in res.output and "total" in res.output
    assert len(_manifest(out)) == 4
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 2, again.output
    assert again.output.startswith(f"error: output folder {out.resolve()} is not empty; pass --resume")


# ------------------------------------------------------------------------------------------
# Whatever a folder holds.


@pytest.mark.model
def test_every_directory_entry_is_aligned_or_rejected_with_a_reason(tmp_path: Path) -> None:
    inp = tmp_path / "in"
    _make_inputs(inp)  # alice, bob: images and junk files
    odd = inp / "odd"
    odd.mkdir()
    (odd / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (odd / "loop.jpg").symlink_to(odd / "loop.jpg")
    os.mkfifo(odd / "pipe.jpg")  # reading it would block for ever
    (odd / "nested").mkdir()
    (odd / ".DS_Store").write_bytes(b"\0")
    (odd / "huge.jpg").write_bytes(b"\xff\xd8\xff" + b"\0" * 5000)  # starts as a JPEG
    (inp / "loose.jpg").write_bytes(b"x")
    s = align_dataset(inp, tmp_path / "out", AlignConfig(size=32, max_file_bytes=4096), progress=False)
    rows = {r["input_path"]: r for r in _manifest(tmp_path / "out")}
    expected = {
        "odd/dangling.jpg": "broken_link",
        "odd/loop.jpg": "broken_link",
        "odd/pipe.jpg": "not_a_regular_file",
        "odd/nested": "nested_folder",
        "odd/.DS_Store": "hidden_entry",
        "odd/huge.jpg": "file_too_large",
        "loose.jpg": "not_in_person_folder",
    }
    assert {k: rows[k]["reason"] for k in expected} == expected
    assert rows["loose.jpg"]["person"] == "" and rows["odd/pipe.jpg"]["person"] == "odd"
    assert s.n_inputs == len(rows) and s.rejected["broken_link"] == 2


@pytest.mark.model
def test_force_refuses_a_manifest_that_points_outside_the_output(tmp_path: Path) -> None:
    inp, out = tmp_path / "in", tmp_path / "out"
    _make_inputs(inp)
    align_dataset(inp, out, AlignConfig(size=32), progress=False)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    rows = _manifest(out)
    rows[0]["output_path"] = "../victim.txt"  # no face was found, so the row named no output
    with open(out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=AlignManifest.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(InputError, match="outside"):
        align_dataset(inp, out, AlignConfig(size=32), progress=False, force=True)
    assert victim.read_text() == "keep me"


class _DotDetector:
    """Stands in for MTCNN: every photo holds one face whose landmarks the test drew."""

    def __init__(self, landmarks: np.ndarray) -> None:
        self.landmarks = landmarks

    def detect(self, photos: list[np.ndarray]) -> list[list[Face]]:
        box = np.array([20.0, 20.0, 140.0, 150.0])
        return [[Face(box, 0.99, self.landmarks)] for _ in photos]


@pytest.mark.unit
def test_per_photo_work_gives_the_same_files_and_rows_with_any_pool_size(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from fam.faces.align import InputEntry, _process_chunk

    lm = _landmarks(80, 85, 40, 7)
    inp = tmp_path / "in" / "ann"
    inp.mkdir(parents=True)
    chunk = []
    for k in range(6):
        Image.fromarray(_dot_image(160 + 4 * k, 170, lm, 4)).save(inp / f"{k}.png")
        chunk.append(InputEntry(f"ann/{k}.png", f"images/ann/{k}.png"))
    (inp / "bad.png").write_bytes(b"not an image")
    chunk.insert(2, InputEntry("ann/bad.png", "images/ann/bad.png"))
    chunk.append(InputEntry("ann/.hidden", "", "not_an_image"))
    results = {}
    for workers in (1, 4):
        out = tmp_path / f"out{workers}"
        (out / "images" / "ann").mkdir(parents=True)
        with ThreadPoolExecutor(workers) as pool:
            rows = _process_chunk(chunk, tmp_path / "in", out, AlignConfig(size=32), _DotDetector(lm), pool)
        results[workers] = (rows, _snapshot(out))
    rows, files = results[1]
    assert [r.input_path for r in rows] == [e.rel for e in chunk]  # rows in input order
    assert [r.status for r in rows].count("aligned") == 6 and rows[2].reason == "not_an_image"
    assert len(files) == 6 and results[4] == results[1]
