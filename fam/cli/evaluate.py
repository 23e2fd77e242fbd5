"""``fam evaluate``: score a protected release (paper section 4) into a Markdown report."""

from __future__ import annotations

from pathlib import Path

import click

from fam.cli.common import (
    Command,
    dry_run_option,
    echo_plan,
    key_given,
    key_options,
    load_cli_params,
    params_options,
    quiet_option,
)


@click.command(cls=Command)
@click.option(
    "--aligned",
    "aligned",
    required=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="`fam align` output holding the originals",
)
@click.option(
    "--release",
    "release",
    required=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="`fam protect --out` folder to evaluate",
)
@click.option(
    "--release2",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="the same inputs protected under a second key (unlinkability, D_sys)",
)
@click.option(
    "--key-release",
    "key_releases",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="more releases of the same inputs under other keys (PSR mean/std, table 6); repeatable",
)
@click.option(
    "--naive-release",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="the same inputs protected with optimise.steps=0 (the paper's naive mixing baseline)",
)
@click.option(
    "--thresholds-from",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="aligned folder of people NOT in the release, or a thresholds.json (default: the "
    "--aligned people that the release does not contain)",
)
@key_options
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, file_okay=False))
@quiet_option
@dry_run_option
@params_options
def evaluate(
    aligned: Path,
    release: Path,
    release2: Path | None,
    key_releases: tuple[Path, ...],
    naive_release: Path | None,
    thresholds_from: Path | None,
    key_file: Path | None,
    key_env: str | None,
    research_seed: int | None,
    out: Path,
    quiet: bool,
    dry_run: bool,
    params_path: Path,
    overrides: tuple[str, ...],
) -> None:
    """Thresholds, PSR, EER/AUC, D_sys, attacks, FID, baselines -> OUT/report.md + metrics.json.

    The key of --release is needed only for the latent-replacement and stolen-key attacks; a
    research key is read from the release's manifest.
    """
    from fam.evaluate.runner import plan_evaluation, run_evaluation
    from fam.keys import load_key

    params = load_cli_params(params_path, overrides)
    key = load_key(key_file, key_env, research_seed) if key_given(key_file, key_env, research_seed) else None
    plan = plan_evaluation(
        aligned,
        release,
        out,
        params,
        release2_dir=release2,
        key_release_dirs=key_releases,
        naive_release_dir=naive_release,
        thresholds_from=thresholds_from,
        key=key,
    )
    if dry_run:
        echo_plan(params, plan.describe())
        return
    result = run_evaluation(plan, progress=not quiet)
    click.echo(f"report: {result.report_path}")
    for name in sorted(result.metrics):
        if name.startswith(("psr_anonymity_", "eer_protected", "dsys_", "fid")) and "_lit" not in name:
            click.echo(f"  {name} = {result.metrics[name]:.4f}")
