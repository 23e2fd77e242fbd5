"""``fam protect`` and ``fam invert``."""

from __future__ import annotations

from pathlib import Path

import click

from fam.cli.common import (
    Command,
    dry_run_option,
    echo_plan,
    key_options,
    load_cli_params,
    params_options,
    persons_option,
    quiet_option,
)


def warn_unless_aligned(input_dir: Path) -> None:
    """One line on stderr when ``input_dir`` is not a ``fam align`` output (a warning, not a refusal:
    person folders of faces aligned elsewhere are a valid input, but raw photos would be used unaligned)."""
    from fam.dataset import is_align_output

    if not is_align_output(input_dir):
        click.echo(
            f"warning: {input_dir} is not a `fam align` output (no manifest.csv): its images are used as "
            "they are, so raw photos would go in unaligned; run `fam align` first unless they are "
            "FFHQ-aligned faces",
            err=True,
        )


@click.command(cls=Command)
@click.option(
    "--input",
    "input_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    required=True,
    help="Aligned faces: the output of `fam align`, or one folder per person of faces aligned "
    "elsewhere (a warning reminds you: raw photos must go through `fam align` first).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Output folder (release/, manifest.json, latents/); never inside the input.",
)
@key_options
@click.option(
    "--inversions",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Reuse the latents of `fam invert` instead of inverting again.",
)
@persons_option
@click.option(
    "--resume",
    is_flag=True,
    help="Continue a run with the same key and settings: skip finished persons whose input files are "
    "unchanged, redo changed ones, remove the outputs of persons no longer in the input.",
)
@click.option(
    "--force", is_flag=True, help="Redo everything, replacing this command's earlier output in --out."
)
@quiet_option
@dry_run_option
@params_options
def protect(
    input_dir: Path,
    out_dir: Path,
    key_file: Path | None,
    key_env: str | None,
    research_seed: int | None,
    inversions: Path | None,
    persons: list[str] | None,
    resume: bool,
    force: bool,
    quiet: bool,
    dry_run: bool,
    params_path: Path,
    overrides: tuple[str, ...],
) -> None:
    """Protect every person's faces under one key (FaceAnonyMixer, Algorithm 1)."""
    from fam.keys import load_key
    from fam.protect import plan_protect, run_protect

    params = load_cli_params(params_path, overrides)
    key = load_key(key_file, key_env, research_seed)
    plan = plan_protect(
        input_dir,
        out_dir,
        key,
        params,
        inversions=inversions,
        persons=persons,
        resume=resume,
        force=force,
    )
    warn_unless_aligned(input_dir)
    if dry_run:
        echo_plan(params, plan.describe())
        return
    click.echo(f"key {key.fingerprint} ({key.kind}); params {params.digest()[:12]}")
    summary = run_protect(plan, progress=not quiet)
    click.echo(
        f"protected {summary.n_images} images of {summary.n_persons} persons in {summary.seconds:.1f} s "
        f"({summary.n_resumed_persons} persons resumed); {summary.n_rejected} inputs rejected "
        f"(see {summary.out_dir / 'rejects.json'})\nrelease: {summary.out_dir / 'release'}\n"
        f"manifest: {summary.manifest_path}"
    )
    if summary.n_redone_persons or summary.n_removed_persons or summary.n_stale_files:
        click.echo(
            f"resume: {summary.n_redone_persons} persons protected again (their input files changed), "
            f"outputs of {summary.n_removed_persons} persons no longer in the input removed, "
            f"{summary.n_stale_files} temporary files of an interrupted run removed"
        )


@click.command(cls=Command)
@click.option(
    "--input", "input_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@persons_option
@click.option(
    "--resume",
    is_flag=True,
    help="Keep the latents of an existing OUT/inversions.pt made with the same generator, inverter "
    "settings and precision for images that are unchanged; invert only the others.",
)
@click.option("--force", is_flag=True, help="Recompute an existing inversions file.")
@quiet_option
@dry_run_option
@params_options
def invert(
    input_dir: Path,
    out_dir: Path,
    persons: list[str] | None,
    resume: bool,
    force: bool,
    quiet: bool,
    dry_run: bool,
    params_path: Path,
    overrides: tuple[str, ...],
) -> None:
    """Invert aligned faces into W+ once, for reuse by several keys."""
    from fam.protect import plan_invert, run_invert

    params = load_cli_params(params_path, overrides)
    plan = plan_invert(input_dir, out_dir, params, persons=persons, force=force, resume=resume)
    warn_unless_aligned(input_dir)
    if dry_run:
        echo_plan(params, plan.describe())
        return
    target = run_invert(plan, progress=not quiet)
    n_images = sum(len(p.files) for p in plan.people)
    click.echo(f"wrote {target}: {n_images} images, {len(plan.reused)} of them kept from the previous run")
