"""What an evaluation reads: aligned input folders, protected releases, and image batches.

Aligned folders follow ``fam align``: ``ALIGNED/images/<person>/<stem>.png``. A release is
``OUT/manifest.json`` (format ``fam-protect-manifest/v1``) whose items name the aligned input,
the real person and the released image (relative to ``OUT``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fam.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MANIFEST_FORMAT = "fam-protect-manifest/v1"


@dataclass(frozen=True)
class FaceImage:
    path: Path
    person: str


def list_aligned(aligned_dir: str | Path) -> list[FaceImage]:
    """Every aligned image, sorted by (person, file name)."""
    root = Path(aligned_dir) / "images"
    if not root.is_dir():
        raise InputError(f"{aligned_dir} has no images/ folder; point --aligned at the output of `fam align`")
    out = [
        FaceImage(path=p, person=p.parent.name)
        for p in sorted(root.glob("*/*"))
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    ]
    if not out:
        raise InputError(f"{root} holds no images (*.png / *.jpg in one folder per person)")
    return out


def data_hash(images: Sequence[FaceImage], root: str | Path) -> str:
    """sha256 over the sorted (path relative to ``root``, size in bytes) list: names the data set."""
    root = Path(root).resolve()
    lines = sorted(f"{_rel(i.path, root)}\t{i.path.stat().st_size}" for i in images)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def person_hash(person: str) -> str:
    """A person's name as stored in thresholds files: enough to check disjointness, not the name."""
    return hashlib.sha256(b"fam/eval-person/v1\x00" + person.encode()).hexdigest()[:16]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path.resolve())


@dataclass(frozen=True)
class ReleaseItem:
    original: Path  # the aligned input image
    protected: Path  # the released image
    person: str  # real name (evaluation only; never leaves the evaluation output)
    latent_file: Path | None
    latent_index: int | None


@dataclass(frozen=True)
class Release:
    root: Path
    items: tuple[ReleaseItem, ...]
    key: dict[str, object]  # key_kind, key_fingerprint[, research_seed]: never the material
    generator_id: str
    params_digest: str

    @property
    def persons(self) -> list[str]:
        return [i.person for i in self.items]


def load_release(out_dir: str | Path) -> Release:
    root = Path(out_dir)
    path = root / "manifest.json"
    if not path.is_file():
        raise InputError(f"{root} has no manifest.json; point --release at the --out folder of `fam protect`")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from exc
    if manifest.get("format") != MANIFEST_FORMAT:
        raise InputError(f"{path} has format {manifest.get('format')!r}; expected {MANIFEST_FORMAT!r}")
    items: list[ReleaseItem] = []
    problems: list[str] = []
    for n, item in enumerate(manifest.get("items", [])):
        original = Path(item["input"])
        protected = root / item["output"]
        for label, p in (("input", original), ("output", protected)):
            if not p.is_file():
                problems.append(f"item {n} ({item.get('person', '?')}): {label} {p} does not exist")
        latent = item.get("latent_file")
        items.append(
            ReleaseItem(
                original=original,
                protected=protected,
                person=str(item["person"]),
                latent_file=root / latent if latent else None,
                latent_index=item.get("latent_index"),
            )
        )
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(f"release {root} is incomplete:\n  {shown}{more}")
    if not items:
        raise InputError(f"release {root} has no items")
    return Release(
        root=root,
        items=tuple(items),
        key=dict(manifest.get("key", {})),
        generator_id=str(manifest.get("generator_id", "")),
        params_digest=str(manifest.get("params_digest", "")),
    )


def match_items(first: Release, second: Release) -> tuple[list[int], list[int]]:
    """Indices into both releases of the items made from the same aligned input."""
    where = {item.original.resolve(): n for n, item in enumerate(second.items)}
    a_idx, b_idx = [], []
    for n, item in enumerate(first.items):
        m = where.get(item.original.resolve())
        if m is not None:
            a_idx.append(n)
            b_idx.append(m)
    if not a_idx:
        raise InputError(
            f"releases {first.root} and {second.root} share no input image; protect the same inputs"
        )
    return a_idx, b_idx


def load_image(path: Path, size: int | None = None) -> torch.Tensor:
    """One RGB image as ``[3, S, S]`` in [-1, 1]; resized (antialiased bilinear) to ``size``."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot be read as an image ({exc})") from exc
    x = torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0
    if size is not None and (x.shape[1] != size or x.shape[2] != size):
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return x


def iter_image_batches(
    paths: Sequence[Path],
    batch: int,
    size: int | None = None,  # None: the first image's size (all images of a batch must share it)
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,  # applied per batch
) -> Iterator[torch.Tensor]:
    """Batches ``[B, 3, S, S]`` in [-1, 1], loaded lazily so that large sets never sit in memory."""
    if size is None and paths:
        size = load_image(paths[0]).shape[-1]
    for start in range(0, len(paths), batch):
        x = torch.stack([load_image(p, size) for p in paths[start : start + batch]])
        yield transform(x) if transform is not None else x


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[B, 3, S, S]`` in [-1, 1] -> ``[B, S, S, 3]`` uint8 for writing or plotting."""
    x = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()
