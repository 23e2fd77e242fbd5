"""Reading a folder of aligned faces, one sub-folder per person.

Accepts either the output of ``fam align`` (``DIR/manifest.csv`` + ``DIR/images/<person>/``;
only rows with status ``aligned`` are used) or a plain ``DIR/<person>/<image>`` tree. Files that
cannot be used are returned as reject records with a reason, never dropped silently.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fam.errors import InputError

MAX_PIXELS = 4096 * 4096  # aligned faces are small; anything larger is not an aligned face


@dataclass(frozen=True)
class FaceFile:
    path: Path  # absolute
    person: str


@dataclass(frozen=True)
class Reject:
    path: str
    reason: str


@dataclass(frozen=True)
class Person:
    name: str
    files: tuple[FaceFile, ...]


def scan_aligned(
    aligned_dir: Path, persons: Sequence[str] | None = None
) -> tuple[list[Person], list[Reject]]:
    aligned_dir = Path(aligned_dir).resolve()
    if not aligned_dir.is_dir():
        raise InputError(f"input folder {aligned_dir} does not exist")
    manifest = aligned_dir / "manifest.csv"
    by_person: dict[str, list[FaceFile]] = {}
    rejects: list[Reject] = []
    if manifest.is_file():
        with open(manifest, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("status") != "aligned":
                    continue
                path = (aligned_dir / row["output_path"]).resolve()
                by_person.setdefault(row["person"], []).append(FaceFile(path, row["person"]))
    else:
        for person_dir in sorted(
            p for p in aligned_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            for file in sorted(f for f in person_dir.iterdir() if not f.name.startswith(".")):
                if file.is_file():
                    by_person.setdefault(person_dir.name, []).append(
                        FaceFile(file.resolve(), person_dir.name)
                    )
                else:
                    rejects.append(Reject(str(file), "not a file (nested folders are not read)"))
        loose = sorted(f for f in aligned_dir.iterdir() if f.is_file() and not f.name.startswith("."))
        rejects.extend(Reject(str(f), "not inside a person folder") for f in loose)
    if persons is not None:
        missing = sorted(set(persons) - set(by_person))
        if missing:
            raise InputError(f"person(s) not found in {aligned_dir}: {', '.join(missing)}")
        by_person = {p: by_person[p] for p in persons}
    people = [
        Person(name, tuple(sorted(files, key=lambda f: f.path.name)))
        for name, files in sorted(by_person.items())
    ]
    if not people:
        raise InputError(
            f"no faces found in {aligned_dir}: expected one folder per person (or the output of `fam align`)"
        )
    return people, rejects


def load_face(path: Path, resolution: int) -> torch.Tensor:
    """One aligned face as ``[3, R, R]`` in [-1, 1]; raises InputError with the reason."""
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputError(f"too large for an aligned face ({im.width}x{im.height})")
            if im.width != im.height:
                raise InputError(f"not square ({im.width}x{im.height}): align it with `fam align` first")
            im.load()
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"unreadable image ({type(exc).__name__})") from exc
    if rgb.width != resolution:
        rgb = rgb.resize((resolution, resolution), Image.Resampling.LANCZOS)
    arr = np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def validate_people(people: list[Person], resolution: int) -> tuple[list[Person], list[Reject]]:
    """Decode every file once; unusable files become reject records with their reason.

    Persons left with no usable image are dropped (their files are all in the rejects).
    Images are not kept: the protect loop decodes each batch when it needs it, so memory does
    not grow with the data set.
    """
    rejects: list[Reject] = []
    kept: list[Person] = []
    for person in people:
        good = []
        for f in person.files:
            try:
                load_face(f.path, resolution)
                good.append(f)
            except InputError as exc:
                rejects.append(Reject(str(f.path), str(exc)))
        if good:
            kept.append(Person(person.name, tuple(good)))
    return kept, rejects
