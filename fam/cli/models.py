"""``fam models``: every model file the project can load, where it comes from and whether it is here,
the models the settings select with the state of their files, and every model and face
recognizer name the settings accept."""

from __future__ import annotations

from pathlib import Path

import click

from fam import weights
from fam.cli.common import load_cli_params, params_options
from fam.config import DEFAULT_PARAMS_PATH


@click.command("models")
@click.option(
    "--check/--no-check", default=True, show_default=True, help="hash-check model files (reads them)"
)
@params_options
def models(check: bool, params_path: Path, overrides: tuple[str, ...]) -> None:
    """List the weight catalog (name, role, source, license, status), the configured models and the names.

    Status: present (hash verified), missing or corrupt (with how to get it), user (not shipped:
    the path and sha256 go into params.yaml). Then the models the settings select (``models.*``,
    ``evaluate.recognizers``) with the state of each file they load, and the names those settings
    accept. Exits with 1 if a file is corrupt.
    """
    from fam import recognizers  # imports torch: only after the catalog, which needs nothing
    from fam.model_files import configured_models
    from fam.models import factory

    corrupt: set[str] = set()  # files, so that one used by a configured model counts once
    for entry in weights.entries():
        if check:
            state, detail = weights.status(entry)
        else:
            state, detail = ("user", entry.how_to_get) if entry.source == "user" else ("unchecked", "")
        if state == "corrupt":
            corrupt.add(str(weights.locate(entry)))
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
    if params_path == DEFAULT_PARAMS_PATH and not params_path.exists():
        click.echo(f"configured models: no {params_path} here (run from the project root or pass --params)")
        configured = []
    else:
        click.echo(f"configured models ({params_path}):")
        configured = configured_models(load_cli_params(params_path, overrides), check=check)
    for model in configured:
        click.echo(f"    {model.setting + ':':<25}{model.name}" + (f"  ({model.note})" if model.note else ""))
        for f in model.files:
            if f.state == "corrupt":
                corrupt.add(f.file)
            colour = {"present": "green", "missing": "yellow", "corrupt": "red"}.get(f.state)
            click.echo(f"        {f.label}  [{click.style(f.state, fg=colour)}]  {f.detail}")
    click.echo("")
    click.echo("model names (params.yaml models.<role>.name):")
    for role in factory.ROLES:
        click.echo(f"    {role + ':':<11}{', '.join(factory.available(role))}")
    click.echo("face recognizer names (params.yaml evaluate.recognizers):")
    click.echo(f"    {', '.join(recognizers.available())}")
    if corrupt:
        raise click.ClickException(f"{len(corrupt)} model file(s) fail their sha256 check; replace them")
