"""``fam key``: create key files, show their public fingerprint, check that keys' faces are apart.

``fam key revoke`` records a revocation in the MLflow lineage store, so it lives in the
orchestration layer (``tasks/key_revoke.py``) and joins this group through the ``fam.commands``
entry point ``key.revoke`` (pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import click

from fam.cli.common import PluginGroup, key_options, keys_options, load_cli_params, params_options
from fam.keys import (
    load_key,
    load_key_file,
    load_keys,
    new_key_file,
    refuse_existing_key_file,
    write_key_file,
)


@click.group(cls=PluginGroup, plugin_path="key")
def key() -> None:
    """Create, inspect and revoke keys (the key itself is never printed)."""


threshold_option = click.option(
    "--threshold",
    type=float,
    default=None,
    help="Cosine at or above which two key faces match (default: the identity model's calibrated "
    "FMR 1e-3 threshold at the generator's resolution).",
)


@key.command("new")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the new key file (never overwritten; mode 0600).",
)
@click.option(
    "--apart-from",
    "apart_from",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A key file (repeatable; e.g. a revoked key) whose key face the new key's face must not "
    "match for the identity model: a reissue that stays unlinkable. Builds the models of the settings.",
)
@click.option(
    "--max-draws",
    type=click.IntRange(1, 1000),
    default=32,
    show_default=True,
    help="With --apart-from: fresh keys to try before giving up.",
)
@threshold_option
@params_options
def new(
    out: Path,
    apart_from: tuple[Path, ...],
    max_draws: int,
    threshold: float | None,
    params_path: Path,
    overrides: tuple[str, ...],
) -> None:
    """Create a fresh 256-bit key file."""
    if not apart_from:
        k = new_key_file(out)
        click.echo(f"wrote {out} (mode 0600)\nfingerprint {k.fingerprint}")
        return
    refuse_existing_key_file(out)  # before the models are built, not after
    from fam.key_check import draw_apart, key_faces_from_params, linking_threshold

    params = load_cli_params(params_path, overrides)
    others = [load_key_file(p) for p in apart_from]
    faces = key_faces_from_params(params)
    limit, source = linking_threshold(params, faces.generator.resolution, threshold)
    found = draw_apart(others, faces, limit, max_draws)
    write_key_file(out, found.key)
    click.echo(f"wrote {out} (mode 0600)\nfingerprint {found.key.fingerprint}")
    click.echo(
        f"its key face is apart from {len(others)} key(s): highest cosine {found.nearest:.4f} < "
        f"{limit:.4f} ({source}); {found.draws} draw(s); generator {faces.generator.generator_id}"
    )


@key.command("check")
@keys_options
@threshold_option
@params_options
def check(
    key_file: tuple[Path, ...],
    key_env: tuple[str, ...],
    research_seed: tuple[int, ...],
    threshold: float | None,
    params_path: Path,
    overrides: tuple[str, ...],
) -> None:
    """Whether the given keys' faces are apart for the identity model (exit 1 if any pair matches).

    Releases of one person under two keys whose faces match can be linked to each other: check
    before relying on a pair, or reissue with `fam key new --apart-from`."""
    from fam.key_check import check_keys, key_faces_from_params, linking_threshold

    keys = load_keys(key_file, key_env, research_seed)
    params = load_cli_params(params_path, overrides)
    faces = key_faces_from_params(params)
    result = check_keys(keys, faces, *linking_threshold(params, faces.generator.resolution, threshold))
    click.echo(
        f"generator {faces.generator.generator_id}, identity {params.models.identity.name} at "
        f"{faces.generator.resolution} px, truncation psi {faces.truncation_psi}; "
        f"threshold {result.threshold:.4f} ({result.threshold_source})"
    )
    for pair in result.pairs:
        verdict = "LINKED" if pair.linked else "apart"
        click.echo(f"{pair.a}  {pair.b}  cosine {pair.cosine:.4f}  {verdict}")
    linked = len(result.linked)
    click.echo(f"{linked} of {len(result.pairs)} pairs linked")
    if linked:
        click.get_current_context().exit(1)


@key.command("fingerprint")
@key_options
def fingerprint(key_file: Path | None, key_env: str | None, research_seed: int | None) -> None:
    """Print the public fingerprint of a key (safe to share, log and record)."""
    k = load_key(key_file, key_env, research_seed)
    click.echo(k.fingerprint)
