"""``fam align``: detect and FFHQ-align every photo of a folder of person folders."""

from __future__ import annotations

from pathlib import Path

import click

from fam.cli.common import (
    Command,
    dry_run_option,
    echo_plan,
    load_cli_params,
    params_options,
    persons_option,
    quiet_option,
)


@click.command(cls=Command)
@click.option(
    "--input",
    "input_dir",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder with one sub-folder of photos per person (never written to).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: images/<person>/<stem>.png, manifest.csv, align_summary.json.",
)
@persons_option
@click.option("--resume", is_flag=True, help="Continue a previous run with the same settings.")
@click.option("--force", is_flag=True, help="Discard a previous run's outputs in --out and redo it.")
@quiet_option
@dry_run_option
@params_options
def align(
    input_dir: Path,
    out_dir: Path,
    params_path: Path,
    overrides: tuple[str, ...],
    persons: list[str] | None,
    resume: bool,
    force: bool,
    quiet: bool,
    dry_run: bool,
) -> None:
    """Detect faces (MTCNN) and FFHQ-align them; every file ends aligned or rejected with a reason."""
    from fam.faces.align import plan_align, run_align  # torch is imported only when the command runs
    from fam.models.factory import resolve_device

    params = load_cli_params(params_path, overrides)
    device = resolve_device(params.runtime.device)
    plan = plan_align(
        input_dir,
        out_dir,
        params.align,
        persons=persons,
        resume=resume,
        force=force,
        device=str(device),
    )
    if dry_run:
        echo_plan(params, plan.describe())
        return
    summary = run_align(plan, progress=not quiet)
    rows = [("aligned", summary.aligned)] + [(f"rejected: {r}", n) for r, n in summary.rejected.items()]
    width = max(len(label) for label, _ in rows)
    click.echo(f"{'outcome'.ljust(width)}  count")
    for label, n in rows:
        click.echo(f"{label.ljust(width)}  {n:>5}")
    click.echo(f"{'total'.ljust(width)}  {summary.n_inputs:>5}")
    click.echo(
        f"processed {summary.processed} file(s) in this run, {summary.seconds_per_image:.3f} s per image; "
        f"manifest: {summary.out_dir / 'manifest.csv'}"
    )
