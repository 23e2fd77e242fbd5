"""Pick clean images of people outside the protected subset, for the evaluation's thresholds.

FMR thresholds must come from impostor pairs of people who are NOT in the release (docs/reference.md,
evaluation conventions): this copies the first ``mlops.impostors.n_people`` other people of an LFW-style
folder (sorted by name, each with at least ``images_per_person`` images; their first files by
name) into ``OUT/<person>/``, which ``fam align`` then aligns for ``fam evaluate
--thresholds-from``. Deterministic: the same data and settings give the same selection.

    python -m tasks.impostors --input data/lfw/images --out runs/impostor-input
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from fam.config import DEFAULT_PARAMS_PATH, load_params, parse_override
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


@click.command()
@click.option(
    "--input", "input_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path)
)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--params", "params_path", default=str(DEFAULT_PARAMS_PATH), show_default=True)
@click.option("--set", "overrides", multiple=True)
def main(input_dir: Path, out_dir: Path, params_path: str, overrides: tuple[str, ...]) -> None:
    params = load_params(params_path, dict(parse_override(o) for o in overrides))
    cfg = params.mlops
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"{out_dir} is not empty; remove it first (DVC does this before the stage runs)")
    chosen = select_impostors(
        input_dir, set(cfg.subset.person), cfg.impostors.n_people, cfg.impostors.images_per_person
    )
    for person, files in chosen.items():
        (out_dir / person).mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copyfile(f, out_dir / person / f.name)
    n = sum(len(v) for v in chosen.values())
    click.echo(f"{n} images of {len(chosen)} people outside the subset -> {out_dir}")


if __name__ == "__main__":
    try:
        main(standalone_mode=True)
    except UserError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
