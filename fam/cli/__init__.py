"""The ``fam`` command line. Subcommands live in their own modules and are imported lazily,
so ``fam --help`` stays fast and ``fam key`` never imports torch's heavy model code."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

import click

from fam import __version__
from fam.cli.common import Group

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "align": "fam.cli.align:align",
    "evaluate": "fam.cli.evaluate:evaluate",
    "key": "fam.cli.key:key",
    "models": "fam.cli.models:models",
    "protect": "fam.cli.protect:protect",
    "invert": "fam.cli.protect:invert",
    "train-prior": "fam.cli.train:train_prior",
    "train-encoder": "fam.cli.train:train_encoder",
}


# Commands other installed packages add (entry point group ``fam.commands``): the project's own
# orchestration layer adds ``audit`` this way, so the library never imports it.
PLUGIN_GROUP = "fam.commands"


def _targets() -> dict[str, str]:
    plugins = {ep.name: ep.value for ep in entry_points(group=PLUGIN_GROUP)}
    clash = sorted(set(plugins) & set(COMMANDS))
    if clash:
        raise click.ClickException(f"entry points {clash} ({PLUGIN_GROUP}) clash with fam's own commands")
    return {**COMMANDS, **plugins}


class _LazyGroup(Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_targets())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _targets().get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_LazyGroup)
@click.version_option(__version__, prog_name="fam")
def cli() -> None:
    """FaceAnonyMixer: cancelable face biometrics (protect, evaluate, audit)."""


def main() -> None:
    cli(prog_name="fam")
