"""Pick clean images of people outside the protected subset, for the evaluation's thresholds.

FMR thresholds must come from impostor pairs of people who are NOT in the release
(docs/reference.md, evaluation conventions): :func:`copy_impostors` copies the first
``mlops.impostors.n_people`` other people of an LFW-style folder (sorted by name, each with at
least ``images_per_person`` images; their first files by name) into ``OUT/<person>/``, which
``fam align`` then aligns for ``fam evaluate --thresholds-from``. Deterministic: the same data
and settings give the same selection.

    python -m tasks.stages impostors --input data/lfw/images --out runs/impostor-input
"""

from __future__ import annotations

import shutil
from pathlib import Path

from fam.config import MlopsConfig
from fam.errors import InputError, UserError


def select_impostors(
    input_dir: Path, exclude: set[str], n_people: int, per_person: int
) -> dict[str, list[Path]]:
    chosen: dict[str, list[Path]] = {}
    for person_dir in sorted(p for p in input_dir.iterdir() if p.is_dir() and p.name not in exclude):
        files = sorted(f for f in person_dir.iterdir() if f.is_file() and not f.name.startswith("."))
        if len(files) >= per_person:
            chosen[person_dir.name] = files[:per_person]
            if len(chosen) == n_people:
                return chosen
    raise InputError(
        f"{input_dir} has only {len(chosen)} people outside the subset with >= {per_person} images; "
        f"lower mlops.impostors.n_people (now {n_people})"
    )


def copy_impostors(
    input_dir: Path, out_dir: Path, mlops: MlopsConfig, exclude: set[str] | None = None
) -> dict[str, list[Path]]:
    """Copy the selection into an empty ``out_dir/<person>/`` (never into a folder with content).

    ``exclude``: the protected people (default: ``mlops.subset.person``).
    """
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} is not empty; remove it first (DVC does this before the stage runs)")
    exclude = set(mlops.subset.person) if exclude is None else exclude
    chosen = select_impostors(input_dir, exclude, mlops.impostors.n_people, mlops.impostors.images_per_person)
    for person, files in chosen.items():
        (out_dir / person).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copyfile(f, out_dir / person / f.name)
    return chosen
