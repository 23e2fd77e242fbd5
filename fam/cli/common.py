"""What every command line of the project shares: how a user error ends it, the settings options
(``--params``/``--set``), the key options, person selection (``--person``), ``--quiet`` and
``--dry-run``.

``fam`` and the DVC stage scripts under ``tasks/`` declare their commands with
``cls=Command`` / ``cls=Group`` from here, so a :class:`fam.errors.UserError` raised anywhere
below them prints ``error: <message>`` (no traceback) and exits with status 2, whether the
command runs as a program or under click's test runner.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
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


# Commands other installed packages add (entry point group ``fam.commands``): the project's own
# orchestration layer adds ``fam audit`` and ``fam key revoke`` this way, so the library never
# imports it. An entry point's name is the command's path below ``fam``, dotted: ``audit``,
# ``key.revoke``.
PLUGIN_GROUP = "fam.commands"


class PluginGroup(Group):
    """A :class:`Group` that also offers the commands entry points add below it (``plugin_path``:
    its own dotted path below ``fam``; "" for ``fam`` itself). A command is imported when used."""

    def __init__(self, *args: Any, plugin_path: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin_path = plugin_path

    def own_targets(self) -> dict[str, str]:
        """Commands of this group given as ``"module:attribute"`` (imported when used)."""
        return {}

    def _targets(self) -> dict[str, str]:
        plugins = {}
        for ep in entry_points(group=PLUGIN_GROUP):
            parent, _, name = ep.name.rpartition(".")
            if parent == self.plugin_path:
                plugins[name] = ep.value
        own = set(self.own_targets()) | set(self.commands)
        clash = sorted(set(plugins) & own)
        if clash:
            raise click.ClickException(f"entry points {clash} ({PLUGIN_GROUP}) clash with fam's own commands")
        return {**self.own_targets(), **plugins}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self._targets()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = self._targets().get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


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


def keys_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The key sources of :func:`key_options`, each repeatable, for commands that take several keys
    (``key_file``, ``key_env``, ``research_seed``: tuples; :func:`fam.keys.load_keys` reads them)."""
    for name, kind, text in (
        ("--research-seed", int, "An INSECURE research key (plain integer seed; repeatable)."),
        ("--key-env", str, "Name of an environment variable holding a key (hex; repeatable)."),
        ("--key-file", click.Path(dir_okay=False, path_type=Path), "A key file (repeatable)."),
    ):
        func = click.option(name, multiple=True, type=kind, help=text)(func)
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


def deprecated(old: str, new: str) -> None:
    """One line on stderr for an old spelling that still works (it is hidden from --help)."""
    click.echo(f"note: {old} is deprecated; use {new}", err=True)


def split_names(values: tuple[str, ...]) -> list[str] | None:
    """``("a,b", "c")`` -> ``["a", "b", "c"]`` (first occurrence order, duplicates dropped); None if empty."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return list(dict.fromkeys(names)) or None


def persons_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--person NAME`` (repeatable, or ``NAME,NAME``); the command receives ``persons: list | None``.

    The singular repeatable flag is what DVC writes from ``mlops.subset.person`` (``parsing.list:
    append``). ``--persons a,b``, the old spelling of ``fam protect`` and ``fam invert``, still works.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, person: tuple[str, ...], old_persons: tuple[str, ...], **kwargs: Any) -> Any:
        if old_persons:
            deprecated("--persons", "--person NAME (repeatable, or NAME,NAME)")
        return func(*args, persons=split_names(person + old_persons), **kwargs)

    wrapper = click.option("--persons", "old_persons", multiple=True, hidden=True)(wrapper)
    return click.option(
        "--person",
        "person",
        multiple=True,
        metavar="NAME",
        help="Only this person folder (repeatable, or NAME,NAME,...). Default: every person.",
    )(wrapper)


def quiet_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--quiet``: no progress bars (for logs); the command receives ``quiet: bool``.

    ``--no-progress``, the old spelling of ``fam align``, still works.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, quiet: bool, no_progress: bool, **kwargs: Any) -> Any:
        if no_progress:
            deprecated("--no-progress", "--quiet")
        return func(*args, quiet=quiet or no_progress, **kwargs)

    wrapper = click.option("--no-progress", "no_progress", is_flag=True, hidden=True)(wrapper)
    return click.option(
        "--quiet",
        is_flag=True,
        help="No progress output (bars, stage messages), for logs; results are still printed.",
    )(wrapper)
