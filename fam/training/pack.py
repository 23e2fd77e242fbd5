"""One compact file of aligned training faces, small enough to travel to the device machine.

Format (``.npz``, uncompressed, no pickles): ``jpeg`` (uint8, all encoded images end to end),
``offsets`` (int64 ``[N + 1]``, image i is ``jpeg[offsets[i]:offsets[i + 1]]``), ``person`` and
``stem`` (unicode ``[N]``) and ``meta`` (one JSON string: resolution, JPEG quality, the people
split's content hash, counts, rejects). Why JPEG: 10k faces at 64 px are 120 MiB as raw uint8 and
about 90 MiB as PNG, both over the 64 MiB a device call may carry; JPEG at quality 95 with no
chroma subsampling is about a quarter of raw and its error (PSNR ~40 dB) is far below what a
small GAN can resolve. Images are decoded once at load into a uint8 tensor (tens of MB).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fam.dataset import scan_aligned
from fam.errors import InputError
from fam.io_utils import atomic_open, sha256_file
from fam.training.splits import PeopleSplit, check_trainable, load_split

FORMAT = "fam-facepack-v1"


@dataclass(frozen=True)
class PackReport:
    path: Path
    images: int
    people: int
    heldout_images_excluded: int
    rejects: list[dict[str, str]]
    bytes: int
    sha256: str


def encode_face(path: Path, resolution: int, quality: int) -> bytes:
    """One aligned face as the pack stores it: Lanczos to ``resolution``, JPEG without chroma
    subsampling (also what a comparison with packed faces must apply to other faces)."""
    with Image.open(path) as im:
        if im.width != im.height:
            raise InputError(f"not square ({im.width}x{im.height}): not an aligned face")
        if im.width < resolution:
            raise InputError(f"{im.width} px is smaller than the packed resolution {resolution}")
        rgb = im.convert("RGB")
    if rgb.width != resolution:
        rgb = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=quality, subsampling=0, optimize=True)
    return buf.getvalue()


def pack_faces(
    aligned_dir: Path,  # output of `fam align` (manifest.csv + images/<person>/) or <person>/<image> tree
    out: Path,  # the .npz to write (atomically)
    resolution: int,  # side of the packed images; inputs are downscaled with Lanczos
    quality: int = 95,  # JPEG quality; chroma is never subsampled
    split: PeopleSplit | None = None,
) -> PackReport:
    """Pack the TRAIN-split faces under ``aligned_dir``; held-out people are left out and counted."""
    split = split or load_split()
    people, rejects = scan_aligned(Path(aligned_dir))
    blobs: list[bytes] = []
    person_col: list[str] = []
    stem_col: list[str] = []
    excluded = 0
    bad = [{"path": r.path, "reason": r.reason} for r in rejects]
    for person in people:
        try:
            role = split.role(person.name)
        except InputError as exc:
            bad.extend({"path": str(f.path), "reason": str(exc)} for f in person.files)
            continue
        if role == "heldout":
            excluded += len(person.files)
            continue
        for f in person.files:
            try:
                blobs.append(encode_face(f.path, resolution, quality))
            except (InputError, UnidentifiedImageError, OSError, ValueError) as exc:
                bad.append({"path": str(f.path), "reason": str(exc) or type(exc).__name__})
                continue
            person_col.append(person.name)
            stem_col.append(f.path.stem)
    if not blobs:
        raise InputError(f"no train-split faces could be packed from {aligned_dir}")
    check_trainable(person_col, split)  # the invariant, restated where the file is made
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    meta = {
        "format": FORMAT,
        "resolution": resolution,
        "jpeg_quality": quality,
        "chroma_subsampling": "4:4:4",
        "split_sha256": split.content_sha256,
        "source": str(Path(aligned_dir).resolve()),
        "images": len(blobs),
        "people": len(set(person_col)),
        "heldout_images_excluded": excluded,
        "rejects": bad,
    }
    out = Path(out)
    with atomic_open(out) as fh:
        np.savez(
            fh,
            jpeg=np.frombuffer(b"".join(blobs), dtype=np.uint8),
            offsets=offsets,
            person=np.array(person_col),
            stem=np.array(stem_col),
            meta=np.array(json.dumps(meta)),
        )
    digest = sha256_file(out)
    return PackReport(out, len(blobs), meta["people"], excluded, bad, out.stat().st_size, digest)


@dataclass(frozen=True)
class PackedFaces:
    images: torch.Tensor  # uint8 [N, 3, R, R], RGB
    person: list[str]  # [N]
    stem: list[str]  # [N]
    meta: dict[str, Any]

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])


def pack_meta(path: Path) -> dict[str, Any]:
    """A pack's ``meta`` record (format, resolution, counts, split hash) without decoding a face."""
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"packed data {path} does not exist; make it with `python -m benchmarks.pack_dataset` "
            "(see docs/training.md)"
        )
    with np.load(path, allow_pickle=False) as z:
        meta: dict[str, Any] = json.loads(str(z["meta"]))
    if meta.get("format") != FORMAT:
        raise InputError(f"{path}: format {meta.get('format')!r}, expected {FORMAT}")
    return meta


def load_pack(path: Path, split: PeopleSplit | None = None) -> PackedFaces:
    """Decode a pack into memory; REFUSES any held-out person (see fam.training.splits)."""
    path = Path(path)
    meta = pack_meta(path)
    with np.load(path, allow_pickle=False) as z:
        jpeg, offsets = z["jpeg"], z["offsets"]
        person = [str(p) for p in z["person"]]
        stem = [str(s) for s in z["stem"]]
    split = split or load_split()
    if meta["split_sha256"] != split.content_sha256:
        raise InputError(
            f"{path} was packed under another people split ({meta['split_sha256'][:12]}); repack"
        )
    check_trainable(person, split)
    r = int(meta["resolution"])
    out = np.empty((len(person), r, r, 3), dtype=np.uint8)
    for i in range(len(person)):  # one-off decode at load time, not a training hot path
        with Image.open(io.BytesIO(jpeg[offsets[i] : offsets[i + 1]].tobytes())) as im:
            out[i] = np.asarray(im.convert("RGB"))
    images = torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
    return PackedFaces(images, person, stem, meta)
