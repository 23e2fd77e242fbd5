"""``fam key``: create key files and show their public fingerprint.

``fam key revoke`` records a revocation in the MLflow lineage store, so it lives in the
orchestration layer (``tasks/key_revoke.py``) and joins this group through the ``fam.commands``
entry point ``key.revoke`` (pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import click

from fam.cli.common import PluginGroup, key_options
from fam.keys import load_key, new_key_file


@click.group(cls=PluginGroup, plugin_path="key")
def key() -> None:
    """Create, inspect and revoke keys (the key itself is never printed)."""


@key.command("new")
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the new key file (never overwritten; mode 0600).",
)
def new(out: Path) -> None:
    """Create a fresh 256-bit key file."""
    k = new_key_file(out)
    click.echo(f"wrote {out} (mode 0600)\nfingerprint {k.fingerprint}")


@key.command("fingerprint")
@key_options
def fingerprint(key_file: Path | None, key_env: str | None, research_seed: int | None) -> None:
    """Print the public fingerprint of a key (safe to share, log and record)."""
    k = load_key(key_file, key_env, research_seed)
    click.echo(k.fingerprint)
