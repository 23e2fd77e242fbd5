"""Reading a folder of aligned faces, one sub-folder per person.

Accepts either the output of ``fam align`` (``DIR/manifest.csv`` + ``DIR/images/<person>/``;
only rows with status ``aligned`` are used) or a plain ``DIR/<person>/<image>`` tree. Files that
cannot be used are returned as reject records with a reason, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fam.artifacts import AlignManifest, Reject
from fam.errors import InputError
from fam.faces.imageio import read_face
from fam.folder_entries import scan_person_folders
from fam.outdir import inside

OUTSIDE_INPUT = "outside_input"  # an align manifest row that points outside its folder


@dataclass(frozen=True)
class FaceFile:
    path: Path  # absolute
    person: str


@dataclass(frozen=True)
class Person:
    name: str
    files: tuple[FaceFile, ...]


def is_align_output(folder: Path) -> bool:
    """``folder`` is an output of ``fam align`` (or its ``images/`` folder): its faces are aligned.

    A plain person-folder tree may hold aligned faces too, but nothing in it says so.
    """
    folder = Path(folder)
    return (folder / AlignManifest.FILENAME).is_file() or (
        folder.name == "images" and (folder.parent / AlignManifest.FILENAME).is_file()
    )


def scan_aligned(
    aligned_dir: Path, persons: Sequence[str] | None = None
) -> tuple[list[Person], list[Reject]]:
    aligned_dir = Path(aligned_dir).resolve()
    if not aligned_dir.is_dir():
        raise InputError(f"input folder {aligned_dir} does not exist")
    by_person: dict[str, list[FaceFile]] = {}
    rejects: list[Reject] = []
    if (aligned_dir / AlignManifest.FILENAME).is_file():
        source = str(aligned_dir / AlignManifest.FILENAME)
        for row in AlignManifest.read(aligned_dir).aligned():
            try:
                path = inside(aligned_dir, row.output_path, source=source)
            except InputError as exc:  # an edited manifest must not make us read files elsewhere
                rejects.append(Reject(OUTSIDE_INPUT, str(exc), input=row.output_path))
                continue
            by_person.setdefault(row.person, []).append(FaceFile(path, row.person))
    else:
        for entry in scan_person_folders(aligned_dir):
            if entry.reason:
                rejects.append(Reject(entry.reason, entry.detail, input=str(entry.path)))
            else:
                by_person.setdefault(entry.person, []).append(FaceFile(entry.path.resolve(), entry.person))
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
            face = read_face(f.path, resolution)
            if isinstance(face, Reject):
                rejects.append(face)
            else:
                good.append(f)
        if good:
            kept.append(Person(person.name, tuple(good)))
    return kept, rejects
