"""``fam models``: every model file the project can load, where it comes from and whether it is here."""

from __future__ import annotations

import click

from fam import weights


@click.command("models")
@click.option(
    "--check/--no-check", default=True, show_default=True, help="hash-check package files (reads them)"
)
def models(check: bool) -> None:
    """List the weight registry: name, role, source, license and status.

    Status: present (hash verified), missing or corrupt (with how to get it), user (not shipped:
    the path and sha256 go into params.yaml). Exits with 1 if a package file is corrupt.
    """
    corrupt = 0
    for entry in weights.entries():
        if check:
            state, detail = weights.status(entry)
        else:
            state, detail = ("user", entry.how_to_get) if entry.source == "user" else ("unchecked", "")
        corrupt += state == "corrupt"
        colour = {"present": "green", "missing": "yellow", "corrupt": "red"}.get(state)
        click.echo(f"{entry.name}  [{click.style(state, fg=colour)}]")
        click.echo(f"    role:    {entry.role}")
        click.echo(f"    source:  {entry.source}: {entry.location}")
        click.echo(f"    license: {entry.license}")
        if state == "present":
            click.echo(f"    file:    {detail}")
        elif detail:
            click.echo(f"    get it:  {detail}")
    if corrupt:
        raise click.ClickException(f"{corrupt} package model file(s) fail their sha256 check; reinstall them")
