"""What an evaluation reads: aligned input folders, protected releases, and image batches.

Aligned folders follow ``fam align``: ``ALIGNED/images/<person>/<stem>.png``. A release is
the output folder of ``fam protect``, read through its manifest
(:class:`fam.artifacts.ProtectManifest`), whose items name the aligned input, the real person and
the released image (relative to ``OUT``). Images are loaded by :func:`fam.faces.imageio.load_face`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from fam.artifacts import KeyIdentity, ProtectManifest
from fam.errors import InputError
from fam.faces.imageio import load_face

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


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
    key: KeyIdentity  # kind, fingerprint[, research seed]: never the material
    generator_id: str
    params_digest: str
    resolution: int  # side of the released images (px)

    @property
    def persons(self) -> list[str]:
        return [i.person for i in self.items]


def load_release(out_dir: str | Path) -> Release:
    """A protect output folder, with every input and output image it names checked to exist."""
    root = Path(out_dir)
    if not (root / ProtectManifest.FILENAME).is_file():  # the general message lacks the option to fix
        raise InputError(
            f"{root} has no {ProtectManifest.FILENAME}; point --release at the --out folder of `fam protect`"
        )
    manifest = ProtectManifest.read(root)
    items: list[ReleaseItem] = []
    problems: list[str] = []
    for n, item in enumerate(manifest.items):
        original = Path(item.input)
        protected = root / item.output
        for label, p in (("input", original), ("output", protected)):
            if not p.is_file():
                problems.append(f"item {n} ({item.person}): {label} {p} does not exist")
        items.append(
            ReleaseItem(
                original=original,
                protected=protected,
                person=item.person,
                latent_file=root / item.latent_file if item.latent_file else None,
                latent_index=item.latent_index,
            )
        )
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(f"release {root} is incomplete:\n  {shown}{more}")
    if not items:
        raise InputError(f"release {root} has no items")
    sides = {image_side(items[0].protected), image_side(items[-1].protected)}
    if len(sides) != 1:
        raise InputError(
            f"release {root} holds images of several sizes ({sorted(sides)} px); re-run `fam protect`"
        )
    return Release(
        root=root,
        items=tuple(items),
        key=manifest.key,
        generator_id=manifest.generator_id,
        params_digest=manifest.params_digest,
        resolution=sides.pop(),
    )


def resize_batch(images: torch.Tensor, side: int) -> torch.Tensor:
    """``[B, 3, S, S]`` -> ``[B, 3, side, side]`` (antialiased when shrinking), range kept."""
    mode = {"mode": "bilinear", "align_corners": False, "antialias": images.shape[-1] > side}
    return torch.nn.functional.interpolate(images, size=(side, side), **mode).clamp(-1, 1)


def image_side(path: Path) -> int:
    """Width of an image from its header (no pixel is decoded)."""
    with Image.open(path) as img:
        return int(img.size[0])


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


def iter_image_batches(
    paths: Sequence[Path],
    batch: int,
    size: int | None = None,  # None: the first image's size (all images of a batch must share it)
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,  # applied per batch
) -> Iterator[torch.Tensor]:
    """Batches ``[B, 3, S, S]`` in [-1, 1], loaded lazily so that large sets never sit in memory."""
    if size is None and paths:
        size = load_face(paths[0]).shape[-1]
    for start in range(0, len(paths), batch):
        x = torch.stack([load_face(p, size) for p in paths[start : start + batch]])
        yield transform(x) if transform is not None else x
