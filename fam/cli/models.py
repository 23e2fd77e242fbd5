"""``fam models``: every model file the project can load, where it comes from and whether it is here,
and every model and face recognizer name the settings accept."""

from __future__ import annotations

import click

from fam import weights


@click.command("models")
@click.option(
    "--check/--no-check", default=True, show_default=True, help="hash-check package files (reads them)"
)
def models(check: bool) -> None:
    """List the weight catalog (name, role, source, license, status) and the registered names.

    Status: present (hash verified), missing or corrupt (with how to get it), user (not shipped:
    the path and sha256 go into params.yaml). Then the names ``models.<role>.name`` and
    ``evaluate.recognizers`` accept. Exits with 1 if a package file is corrupt.
    """
    from fam import recognizers  # imports torch: only after the catalog, which needs nothing
    from fam.models import factory

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
    click.echo("")
    click.echo("model names (params.yaml models.<role>.name):")
    for role in factory.ROLES:
        click.echo(f"    {role + ':':<11}{', '.join(factory.available(role))}")
    click.echo("face recognizer names (params.yaml evaluate.recognizers):")
    click.echo(f"    {', '.join(recognizers.available())}")
    if corrupt:
        raise click.ClickException(f"{corrupt} package model file(s) fail their sha256 check; reinstall them")
