"""Tasks over the input data: align raw photos, list the people an aligned set holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from fam.artifacts import AlignManifest
from fam.errors import UserError
from tasks.common import settings


@task(name="align")
def align(
    input_dir: str, aligned_dir: str, params_path: str, overrides: dict[str, Any], persons: list[str] | None
) -> dict[str, Any]:
    """Detect and align ``input_dir/<person>/*`` (resumable: a re-run skips recorded files)."""
    from fam.faces.align import align_dataset
    from fam.models.factory import resolve_device

    params = settings(params_path, overrides)
    summary = align_dataset(
        Path(input_dir),
        Path(aligned_dir),
        params.align,
        persons=persons,
        progress=False,
        resume=True,
        device=str(resolve_device(params.runtime.device)),
    )
    get_run_logger().info("aligned %s into %s: %s", input_dir, aligned_dir, summary)
    return {"aligned_dir": aligned_dir}


@task(name="align-impostors")
def align_impostors(
    input_dir: str, aligned_dir: str, params_path: str, overrides: dict[str, Any], protected: list[str]
) -> str:
    """Clean images of ``mlops.impostors`` people outside ``protected``, aligned beside
    ``aligned_dir`` (``<aligned_dir>-impostors``): the evaluation's FMR thresholds come from them.
    Resumable: a re-run reuses the copied selection and skips aligned files."""
    from fam.faces.align import align_dataset
    from fam.impostors import copy_impostors
    from fam.models.factory import resolve_device

    params = settings(params_path, overrides)
    base = Path(aligned_dir)
    raw, out = base.with_name(f"{base.name}-impostor-input"), base.with_name(f"{base.name}-impostors")
    if not (raw.is_dir() and any(raw.iterdir())):
        chosen = copy_impostors(Path(input_dir), raw, params.mlops, exclude=set(protected))
        get_run_logger().info("impostor set: %d people outside the release -> %s", len(chosen), raw)
    align_dataset(
        raw,
        out,
        params.align,
        progress=False,
        resume=True,
        device=str(resolve_device(params.runtime.device)),
    )
    return str(out)


@task(name="list-people")
def list_people(aligned_dir: str, persons: list[str] | None) -> list[str]:
    """People with at least one aligned image, sorted (optionally limited to ``persons``)."""
    people = AlignManifest.read(aligned_dir).people()
    if persons is not None:
        unknown = sorted(set(persons) - set(people))
        if unknown:
            raise UserError(f"people {unknown} have no aligned image in {aligned_dir}")
        people = [p for p in people if p in set(persons)]
    return people
