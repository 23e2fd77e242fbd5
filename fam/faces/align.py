"""FFHQ-style face alignment of single photos and of whole person folders.

The geometry is StyleGAN's FFHQ ``recreate_aligned_images`` (Karras et al.), step for step:
an oriented square ("quad") from the eye centres and mouth corners, an integer pre-shrink of
very large faces, a crop with a border, reflect padding blended with a blur and the median
colour where the quad leaves the photo, then a projective QUAD transform. FFHQ renders at
4096 px and downsamples to 1024; we render at 4x the requested ``size`` and downsample with the
same Lanczos filter, so any square output size gets the same supersampling.

Landmarks are MTCNN's 5 points (fam.faces.detect); FFHQ used dlib's 68 points, from which it
only takes the eye centres (mean of each eye's 6 points) and the two mouth corners, which is
what MTCNN gives directly.

:func:`align_dataset` turns ``INPUT/<person>/<file>`` into ``OUT/images/<person>/<stem>.png``
plus ``OUT/manifest.csv`` (one row per input file, aligned or rejected with a reason),
``OUT/align_summary.json`` and ``OUT/settings.json`` (their classes: :mod:`fam.artifacts`). It
never writes inside the input folder, never overwrites a finished output folder unless asked
(``resume`` / ``force``), and writes every file atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.ndimage
import torch
from PIL import Image

from fam import outdir
from fam.artifacts import AlignManifest, AlignRow, AlignSummary, Reject, ResolvedSettings
from fam.config import AlignConfig
from fam.errors import InputError, OutputExistsError
from fam.faces.detect import Face, FaceDetector
from fam.faces.imageio import DecodedImage, decode_image, extension_format, png_bytes, to_rgb
from fam.folder_entries import scan_person_folders
from fam.io_utils import atomic_write_bytes
from fam.outdir import STATE_DIR, inside, make_dir, output_lock

# Face-related reject reasons (decoding reasons live in fam.faces.imageio).
NO_FACE = "no_face"
FACE_TOO_SMALL = "face_too_small"
SEVERAL_FACES = "several_faces"

_SUPERSAMPLE = 4  # FFHQ: transform_size 4096 for output 1024
# Aligned faces are working files the pipeline reads back, written by the thousand (all of LFW
# for the prior): the fastest zlib level, same pixels (measured at 256 px: 4.5 vs 25 ms a face).
ALIGNED_PNG_LEVEL = 1


@dataclass(frozen=True)
class InputEntry:
    rel: str  # relative to the input folder
    out_rel: str  # the aligned image, relative to the output folder ("" when not read)
    skip: str = ""  # reason code when the entry is not read at all (fam.folder_entries)


@dataclass(frozen=True)
class AlignResult:
    image: np.ndarray  # uint8 [size, size, 3] RGB, FFHQ-aligned
    face: Face  # the chosen face, full-resolution coordinates
    n_faces: int  # faces above min_det_score in the photo


# --------------------------------------------------------------------------------------------
# Geometry


def ffhq_quad(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """FFHQ's oriented crop square from 5 landmarks.

    ``landmarks [5, 2]`` (x, y): left eye, right eye, nose, left mouth corner, right mouth corner.
    Returns ``quad [4, 2]`` (top-left, bottom-left, bottom-right, top-right of the output, in
    input pixels) and its side length ``qsize``.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    eye_left, eye_right = lm[0], lm[1]
    eye_avg = (eye_left + eye_right) * 0.5
    eye_to_eye = eye_right - eye_left
    mouth_avg = (lm[3] + lm[4]) * 0.5
    eye_to_mouth = mouth_avg - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    quad = np.stack([c - x - y, c - x + y, c + x + y, c + x - y])
    return quad, float(np.hypot(*x) * 2)


def warp_ffhq(pixels: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """FFHQ-align ``pixels`` (uint8 ``[H, W, 3]``) given ``landmarks [5, 2]`` -> uint8 ``[size, size, 3]``."""
    img = Image.fromarray(pixels)
    quad, qsize = ffhq_quad(landmarks)
    transform_size = _SUPERSAMPLE * size

    # Shrink: integer pre-downscale when the face is much larger than the output.
    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        rsize = (int(np.rint(float(img.size[0]) / shrink)), int(np.rint(float(img.size[1]) / shrink)))
        img = img.resize(rsize, Image.Resampling.LANCZOS)
        quad /= shrink
        qsize /= shrink

    # Crop to the quad plus a border.
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (
        int(np.floor(min(quad[:, 0]))),
        int(np.floor(min(quad[:, 1]))),
        int(np.ceil(max(quad[:, 0]))),
        int(np.ceil(max(quad[:, 1]))),
    )
    crop = (
        max(crop[0] - border, 0),
        max(crop[1] - border, 0),
        min(crop[2] + border, img.size[0]),
        min(crop[3] + border, img.size[1]),
    )
    if crop[2] - crop[0] < img.size[0] or crop[3] - crop[1] < img.size[1]:
        img = img.crop(crop)
        quad -= crop[0:2]

    # Pad where the quad leaves the photo: reflect, then fade into a blur and the median colour.
    pad = (
        int(np.floor(min(quad[:, 0]))),
        int(np.floor(min(quad[:, 1]))),
        int(np.ceil(max(quad[:, 0]))),
        int(np.ceil(max(quad[:, 1]))),
    )
    pad = (
        max(-pad[0] + border, 0),
        max(-pad[1] + border, 0),
        max(pad[2] - img.size[0] + border, 0),
        max(pad[3] - img.size[1] + border, 0),
    )
    if max(pad) > border - 4:
        pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
        arr = np.pad(np.float32(img), ((pad[1], pad[3]), (pad[0], pad[2]), (0, 0)), "reflect")
        h, w, _ = arr.shape
        yy, xx, _ = np.ogrid[:h, :w, :1]
        mask = np.maximum(
            1.0 - np.minimum(np.float32(xx) / pad[0], np.float32(w - 1 - xx) / pad[2]),
            1.0 - np.minimum(np.float32(yy) / pad[1], np.float32(h - 1 - yy) / pad[3]),
        )
        blur = qsize * 0.02
        blurred = scipy.ndimage.gaussian_filter(arr, [blur, blur, 0])
        arr += (blurred - arr) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        arr += (np.median(arr, axis=(0, 1)) - arr) * np.clip(mask, 0.0, 1.0)
        img = Image.fromarray(np.uint8(np.clip(np.rint(arr), 0, 255)), "RGB")
        quad += pad[:2]

    # Transform.
    img = img.transform(
        (transform_size, transform_size),
        Image.Transform.QUAD,
        tuple((quad + 0.5).flatten()),
        Image.Resampling.BILINEAR,
    )
    if size < transform_size:
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(img)


def ffhq_landmark_positions(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Where ``landmarks [K, 2]`` land in the ``size`` x ``size`` aligned output (for checks and tests)."""
    quad, _ = ffhq_quad(landmarks[:5])
    origin, down, right = quad[0], quad[1] - quad[0], quad[3] - quad[0]
    basis = np.stack([right, down], axis=1)  # columns: output x and y directions
    uv = np.linalg.solve(basis, (np.asarray(landmarks, dtype=np.float64) - origin).T).T
    return uv * size


# --------------------------------------------------------------------------------------------
# One photo


@functools.lru_cache(maxsize=4)
def default_detector(device: str = "cpu", max_side: int = 1024) -> FaceDetector:
    """A shared detector (loading the three nets costs ~0.1 s; reuse it across calls)."""
    return FaceDetector(device, max_side=max_side)


def choose_face(faces: Sequence[Face], width: int, height: int, cfg: AlignConfig) -> Face | Reject:
    """Apply the main-face policy to the detections of one photo."""
    found = [f for f in faces if f.score >= cfg.min_det_score]
    if not found:
        return Reject(NO_FACE, "the detector found no face")
    big = [f for f in found if f.side >= cfg.min_face_px]
    if not big:
        largest = max(found, key=lambda f: f.area)
        detail = f"largest face is {largest.side:.0f} px < align.min_face_px={cfg.min_face_px}"
        return Reject(FACE_TOO_SMALL, detail)
    if len(big) == 1:
        return big[0]
    if cfg.main_face == "reject":
        return Reject(SEVERAL_FACES, f"{len(big)} faces and align.main_face = reject")
    by_area = sorted(big, key=lambda f: f.area, reverse=True)
    if cfg.main_face == "largest":
        chosen, rival = by_area[0], by_area[1]
        ambiguous = rival.area > cfg.ambiguity_ratio * chosen.area
    else:  # centre: nearest to the photo centre; ambiguous if a rival is as central and as large
        centre = np.array([width / 2, height / 2])
        by_dist = sorted(big, key=lambda f: float(np.linalg.norm(f.centre - centre)))
        chosen, rival = by_dist[0], by_dist[1]
        gap = np.linalg.norm(rival.centre - centre) - np.linalg.norm(chosen.centre - centre)
        near = gap < 0.5 * chosen.side
        ambiguous = near and rival.area > cfg.ambiguity_ratio * chosen.area
    if ambiguous:
        return Reject(
            SEVERAL_FACES,
            f"{len(big)} faces; a second face is {rival.area / chosen.area:.2f} of the chosen one's area "
            f"(> align.ambiguity_ratio={cfg.ambiguity_ratio})",
        )
    return chosen


def align_image(
    image: Image.Image | np.ndarray,
    cfg: AlignConfig,
    *,
    detector: FaceDetector | None = None,
) -> AlignResult | Reject:
    """Detect, pick the main face and FFHQ-align one decoded photo.

    ``image``: a PIL image (any mode; EXIF orientation is NOT applied here, see
    :func:`fam.faces.imageio.decode_image` for files) or a uint8 ``[H, W, 3]`` / ``[H, W]`` array.
    """
    if isinstance(image, Image.Image):
        pixels, gray = to_rgb(image)
    else:
        arr = np.asarray(image)
        if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
            raise InputError(f"align_image needs uint8 [H, W, 3] or [H, W], got {arr.dtype} {arr.shape}")
        pixels = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr
        gray = arr.ndim == 2
    decoded = DecodedImage(pixels=pixels, format="", was_grayscale=gray)
    if gray and cfg.grayscale == "reject":
        return Reject("grayscale_rejected", "photo has no colour")
    detector = detector or default_detector("cpu", cfg.detect_max_side)
    return _align_batch([decoded], cfg, detector)[0].result


@dataclass(frozen=True)
class _Outcome:
    result: AlignResult | Reject
    face: Face | None  # the chosen face, or the largest one seen when rejected (for the manifest)
    n_faces: int  # faces above min_det_score


def _align_batch(
    images: Sequence[DecodedImage], cfg: AlignConfig, detector: FaceDetector, pool: Executor | None = None
) -> list[_Outcome]:
    """Detection batched over ``images``; the warp is per photo (each has its own quad), on
    ``pool``'s threads when given."""
    detections = detector.detect([im.pixels for im in images])

    def outcome(im: DecodedImage, faces: Sequence[Face]) -> _Outcome:
        choice = choose_face(faces, im.width, im.height, cfg)
        n_faces = sum(f.score >= cfg.min_det_score for f in faces)
        if isinstance(choice, Reject):
            largest = max(faces, key=lambda f: f.area) if faces else None
            reject = dataclasses.replace(choice, format=im.format, width=im.width, height=im.height)
            return _Outcome(reject, largest, n_faces)
        aligned = AlignResult(warp_ffhq(im.pixels, choice.landmarks, cfg.size), choice, n_faces)
        return _Outcome(aligned, choice, n_faces)

    return list((pool.map if pool else map)(outcome, images, detections))


# --------------------------------------------------------------------------------------------
# A folder of person folders


@dataclass(frozen=True)
class AlignPlan:
    """What :func:`align_dataset` will do, decided before it writes anything (``fam align --dry-run``)."""

    input_dir: Path
    out_dir: Path
    cfg: AlignConfig
    inputs: tuple[InputEntry, ...]  # every entry of the input tree
    done: dict[str, AlignRow]  # input path -> row of a previous run that --resume keeps
    settings: ResolvedSettings  # recorded in settings.json; --resume needs the same
    resume: bool
    force: bool
    device: str

    @property
    def todo(self) -> list[InputEntry]:
        return [e for e in self.inputs if e.rel not in self.done]

    @property
    def persons(self) -> list[str]:
        return sorted({e.rel.split("/", 1)[0] for e in self.inputs if "/" in e.rel})

    def describe(self) -> dict[str, Any]:
        return {
            "command": "align",
            "input": str(self.input_dir),
            "output": str(self.out_dir),
            "persons": len(self.persons),
            "input_files": len([e for e in self.inputs if not e.skip]),
            "entries_not_read": len([e for e in self.inputs if e.skip]),  # rejected without reading
            "files_to_process": len(self.todo),
            "files_kept_from_previous_run": len(self.inputs) - len(self.todo),
            "output_state": "resume" if self.resume else "force" if self.force else "new",
            "detector": f"{self.settings.choices['detector']} on {self.device}",
            "size": self.settings.params["align"]["size"],
        }


def plan_align(
    input_dir: Path,
    out_dir: Path,
    cfg: AlignConfig,
    *,
    persons: Sequence[str] | None = None,
    resume: bool = False,
    force: bool = False,
    device: str = "cpu",
) -> AlignPlan:
    """Check the inputs and the output folder's state; write nothing."""
    input_dir, out_dir = Path(input_dir).resolve(), Path(out_dir).resolve()
    if resume and force:
        raise InputError("choose either resume or force, not both")
    if not input_dir.is_dir():
        raise InputError(f"input folder {input_dir} does not exist or is not a folder")
    if out_dir == input_dir or input_dir in out_dir.parents or out_dir in input_dir.parents:
        raise InputError(
            f"output folder {out_dir} and input folder {input_dir} overlap; "
            "choose an output folder outside the input (inputs are never written to)"
        )
    inputs = _list_inputs(input_dir, persons, cfg.max_file_bytes)
    settings = ResolvedSettings("align", {"align": dataclasses.asdict(cfg)}, {"detector": "mtcnn"})
    done = _check_out_dir(out_dir, settings, resume=resume, force=force)
    return AlignPlan(input_dir, out_dir, cfg, tuple(inputs), done, settings, resume, force, device)


def align_dataset(
    input_dir: Path,
    out_dir: Path,
    cfg: AlignConfig,
    *,
    persons: Sequence[str] | None = None,
    progress: bool = True,
    resume: bool = False,
    force: bool = False,
    device: str = "cpu",
) -> AlignSummary:
    """Align every file of ``input_dir/<person>/`` into ``out_dir`` (see the module docstring).

    ``persons``: only these person folders (all when None). ``resume``: keep the records of a
    previous run with the same settings and process only the files it has not recorded.
    ``force``: discard the outputs of a previous run (only files it wrote) and start again.
    Anything else in a non-empty ``out_dir`` is an :class:`OutputExistsError`.
    """
    plan = plan_align(input_dir, out_dir, cfg, persons=persons, resume=resume, force=force, device=device)
    return run_align(plan, progress=progress)


def run_align(plan: AlignPlan, *, progress: bool = True) -> AlignSummary:
    """Carry out a plan of :func:`plan_align`, holding the output folder's lock."""
    with output_lock(plan.out_dir, "align"):
        _check_out_dir(plan.out_dir, plan.settings, resume=plan.resume, force=plan.force)  # again, locked
        return _run_locked(plan, progress)


def _run_locked(plan: AlignPlan, progress: bool) -> AlignSummary:
    input_dir, out_dir, inputs, cfg = plan.input_dir, plan.out_dir, plan.inputs, plan.cfg
    _prepare_out_dir(plan)
    done = dict(plan.done)
    todo = plan.todo
    journal_path = out_dir / _JOURNAL
    new_file = not journal_path.exists()
    detector = default_detector(plan.device, cfg.detect_max_side)
    start = time.perf_counter()
    with open(journal_path, "a", newline="") as journal:
        writer = csv.DictWriter(journal, fieldnames=AlignManifest.COLUMNS, lineterminator="\n")
        if new_file:
            writer.writeheader()
        bar = _progress(len(todo), progress)
        # as many threads as torch uses (runtime.threads): detection and the per-photo work alternate
        pool = ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()), thread_name_prefix="align")
        with pool:
            for chunk in _chunks(todo, cfg.batch_size):
                rows = _process_chunk(chunk, input_dir, out_dir, cfg, detector, pool)
                for row in rows:
                    done[row.input_path] = row
                    writer.writerow(row.to_csv())
                journal.flush()
                os.fsync(journal.fileno())
                bar.update(len(chunk))
        bar.close()
    seconds = time.perf_counter() - start

    rows = [done[e.rel] for e in inputs]
    AlignManifest(tuple(rows)).write(out_dir)
    summary = AlignSummary(
        input_dir=str(input_dir),
        n_inputs=len(rows),
        aligned=sum(r.status == "aligned" for r in rows),
        rejected=dict(Counter(r.reason for r in rows if r.status == "rejected")),
        formats=dict(Counter(r.input_format or "-" for r in rows)),
        processed=len(todo),
        seconds_per_image=round(seconds / max(len(todo), 1), 5),  # as the file keeps it
        out_dir=out_dir,
    )
    summary.write(out_dir)
    journal_path.unlink()
    return summary


_JOURNAL = ".manifest.partial.csv"  # rows appended as they finish; becomes manifest.csv at the end
_OWN_FILES = (AlignManifest.FILENAME, AlignSummary.FILENAME, ResolvedSettings.FILENAME, _JOURNAL)


def _list_inputs(input_dir: Path, persons: Sequence[str] | None, max_bytes: int) -> list[InputEntry]:
    """Every entry of the input tree: files to align (with their output path) and entries not read."""
    entries = scan_person_folders(input_dir, persons, max_bytes=max_bytes)
    if not any(p.is_dir() and not p.name.startswith(".") for p in input_dir.iterdir()):
        raise InputError(f"{input_dir} holds no person folders; expected INPUT/<person>/<image files>")
    stems = Counter((e.person, e.path.stem) for e in entries if e.person and not e.reason)
    out: list[InputEntry] = []
    for e in entries:
        if e.reason:
            out.append(InputEntry(e.relative, "", e.reason))
            continue
        # Two files with one stem (a.jpg, a.png) keep their extension in the output name.
        name = e.path.stem if stems[(e.person, e.path.stem)] == 1 else e.path.name
        out.append(InputEntry(e.relative, f"images/{e.person}/{name}.png"))
    return out


def _check_out_dir(
    out_dir: Path, settings: ResolvedSettings, *, resume: bool, force: bool
) -> dict[str, AlignRow]:
    """Check the output folder's state (reading only); return the rows a resume keeps, or {}."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"output path {out_dir} exists and is not a folder")
    entries = outdir.entries(out_dir)
    previous = _read_rows(out_dir)
    if entries and not (resume or force):
        raise OutputExistsError(
            f"output folder {out_dir} is not empty; pass --resume to continue a previous run with the same "
            "settings, --force to redo it, or choose an empty folder"
        )
    ours = {out_dir / n for n in _OWN_FILES} | {out_dir / "images", out_dir / STATE_DIR}
    settings_file = out_dir / ResolvedSettings.FILENAME
    if entries and not previous and not settings_file.exists():
        strangers = sorted(str(e) for e in entries if e not in ours)
        if strangers:
            raise OutputExistsError(
                f"output folder {out_dir} holds files that are not from `fam align` ({strangers[0]} ...); "
                "choose an empty folder (nothing a user put there is ever overwritten)"
            )
    if not (resume and entries):
        return {}
    old = ResolvedSettings.read(settings_file) if settings_file.exists() else None
    if old is None or not old.same_run(settings):
        raise OutputExistsError(
            f"{out_dir} was aligned with different settings ({settings_file}); use --force to redo it"
        )
    done = {}
    for row in previous.values():
        output = inside(out_dir, row.output_path, source=f"{out_dir / AlignManifest.FILENAME}")
        if row.status == "aligned" and not output.is_file():
            continue  # output vanished: redo it
        done[row.input_path] = row
    return done


def _prepare_out_dir(plan: AlignPlan) -> None:
    """Bring the output folder into the state the plan found acceptable."""
    out_dir = plan.out_dir
    if plan.resume and outdir.entries(out_dir):
        if not (out_dir / _JOURNAL).exists():
            AlignManifest(tuple(plan.done.values())).write_file(out_dir / _JOURNAL)
        return
    if plan.force:
        rows = _read_rows(out_dir).values()
        # Delete only what a previous run recorded writing, and nothing a tampered manifest
        # points at outside the folder (all paths are checked before the first deletion).
        source = str(out_dir / AlignManifest.FILENAME)
        for path in [inside(out_dir, r.output_path, source=source) for r in rows if r.output_path]:
            path.unlink(missing_ok=True)
        for name in _OWN_FILES:
            (out_dir / name).unlink(missing_ok=True)
    make_dir(out_dir)
    plan.settings.write(out_dir)


def _read_rows(out_dir: Path) -> dict[str, AlignRow]:
    rows: dict[str, AlignRow] = {}
    # The journal holds the newer rows of an interrupted run; its last append may be cut short.
    for name, partial_ok in ((AlignManifest.FILENAME, False), (_JOURNAL, True)):
        path = out_dir / name
        if path.is_file():
            for row in AlignManifest.read(path, partial_ok=partial_ok).rows:
                rows[row.input_path] = row
    return rows


def _process_chunk(
    chunk: Sequence[InputEntry],
    input_dir: Path,
    out_dir: Path,
    cfg: AlignConfig,
    detector: FaceDetector,
    pool: Executor,
) -> list[AlignRow]:
    """Decode each file, detect on all decoded photos at once, warp and write; one row per entry.

    Decoding, warping and PNG encoding are per photo and mostly inside Pillow, which releases the
    GIL: they run on ``pool``'s threads (each photo's result is independent of the others, so the
    outputs are the same with any number of threads)."""
    rows: dict[int, AlignRow] = {}
    for i, entry in enumerate(chunk):
        if entry.skip:  # not a file to read: recorded, never opened
            rows[i] = _row(entry.rel, "rejected", entry.skip, "", "", 0, 0)
    readable = [i for i in range(len(chunk)) if i not in rows]
    results = pool.map(
        lambda i: decode_image(input_dir / chunk[i].rel, max_pixels=cfg.max_pixels, grayscale=cfg.grayscale),
        readable,
    )
    decoded: list[tuple[int, DecodedImage]] = []
    for i, result in zip(readable, results, strict=True):
        if isinstance(result, Reject):
            rows[i] = _row(
                chunk[i].rel, "rejected", result.reason, "", result.format, result.width, result.height
            )
        else:
            decoded.append((i, result))
    if decoded:
        outcomes = _align_batch([d for _, d in decoded], cfg, detector, pool)

        def write(item: tuple[tuple[int, DecodedImage], _Outcome]) -> None:
            (i, im), outcome = item
            rel, out_rel = chunk[i].rel, chunk[i].out_rel
            res = outcome.result
            if isinstance(res, AlignResult):
                atomic_write_bytes(out_dir / out_rel, png_bytes(res.image, ALIGNED_PNG_LEVEL))
                status, reason, written = "aligned", "", out_rel
            else:
                status, reason, written = "rejected", res.reason, ""
            rows[i] = _row(
                rel, status, reason, written, im.format, im.width, im.height, outcome.face, outcome.n_faces
            )

        list(pool.map(write, zip(decoded, outcomes, strict=True)))
    return [rows[i] for i in range(len(chunk))]


def _row(
    rel: str,
    status: str,
    reason: str,
    output_path: str,
    fmt: str,
    width: int,
    height: int,
    face: Face | None = None,
    n_faces: int | None = None,
) -> AlignRow:
    return AlignRow(
        input_path=rel,
        person=rel.split("/", 1)[0] if "/" in rel else "",  # "": an entry outside any person folder
        status=status,
        reason=reason,
        output_path=output_path,
        input_format=fmt,
        extension_format=extension_format(rel),
        input_width=width,
        input_height=height,
        det_score=None if face is None else float(face.score),
        face_px=None if face is None else float(face.side),
        n_faces=n_faces,
    )


def _chunks(items: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="align", dynamic_ncols=True)
