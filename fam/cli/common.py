"""What every command line of the project shares: how a user error ends it, the settings options
(``--params``/``--set``), the key options and ``--dry-run``.

``fam`` and the DVC stage scripts under ``tasks/`` declare their commands with
``cls=Command`` / ``cls=Group`` from here, so a :class:`fam.errors.UserError` raised anywhere
below them prints ``error: <message>`` (no traceback) and exits with status 2, whether the
command runs as a program or under click's test runner.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import click
import yaml

from fam.config import DEFAULT_PARAMS_PATH, Params, load_params, parse_override
from fam.errors import UserError

USER_ERROR_EXIT_CODE = 2


class UserErrorExit(click.ClickException):
    """A :class:`UserError` as the user sees it: its message (which names the fix) and status 2."""

    exit_code = USER_ERROR_EXIT_CODE

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", file=file, err=True)


class _UserErrorsExit:
    """Mixin for click commands: a UserError from the callback becomes a :class:`UserErrorExit`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except UserError as exc:
            raise UserErrorExit(str(exc)) from exc


class Command(_UserErrorsExit, click.Command):
    """A click command whose user errors print ``error: ...`` and exit 2."""


class Group(_UserErrorsExit, click.Group):
    """A click group whose subcommands' user errors print ``error: ...`` and exit 2."""


def params_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--params PATH`` and repeatable ``--set KEY=VALUE``; read them with :func:`load_cli_params`."""
    func = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override one setting, e.g. --set optimise.steps=10 (repeatable).",
    )(func)
    func = click.option(
        "--params",
        "params_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_PARAMS_PATH,
        show_default=True,
        help="Settings file.",
    )(func)
    return func


def load_cli_params(params_path: Path, overrides: tuple[str, ...]) -> Params:
    return load_params(params_path, dict(parse_override(o) for o in overrides))


def key_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Key sources. There is deliberately no option that takes key material itself."""
    func = click.option(
        "--research-seed",
        type=int,
        default=None,
        help="INSECURE research key (plain integer seed), for reproducing the paper's tables.",
    )(func)
    func = click.option(
        "--key-env",
        metavar="VAR",
        default=None,
        help="Name of an environment variable holding the key (hex).",
    )(func)
    func = click.option(
        "--key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Key file made by `fam key new` (mode 0600).",
    )(func)
    return func


def key_given(key_file: Path | None, key_env: str | None, research_seed: int | None) -> bool:
    return any(v is not None for v in (key_file, key_env, research_seed))


def dry_run_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--dry-run",
        is_flag=True,
        help="Check the settings and inputs, print the resolved settings and what would run; write nothing.",
    )(func)


def echo_plan(params: Params, plan: dict[str, Any]) -> None:
    """Print a dry run: the resolved settings, then what the command would do, both as YAML."""
    click.echo("# resolved settings")
    click.echo(yaml.safe_dump(params.to_dict(), sort_keys=False).rstrip())
    click.echo("# plan (dry run: nothing was written)")
    click.echo(yaml.safe_dump(plan, sort_keys=False).rstrip())
