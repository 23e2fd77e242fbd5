"""The ``fam`` command line. Subcommands live in their own modules and are imported lazily,
so ``fam --help`` stays fast and ``fam key`` never imports torch's heavy model code."""

from __future__ import annotations

import importlib

import click

from fam import __version__
from fam.cli.common import Group

# name -> "module:attribute" of a click command or group
COMMANDS: dict[str, str] = {
    "audit": "fam.cli.audit:audit",
    "align": "fam.cli.align:align",
    "evaluate": "fam.cli.evaluate:evaluate",
    "key": "fam.cli.key:key",
    "models": "fam.cli.models:models",
    "protect": "fam.cli.protect:protect",
    "invert": "fam.cli.protect:invert",
    "train-prior": "fam.cli.train:train_prior",
    "train-encoder": "fam.cli.train:train_encoder",
}


class _LazyGroup(Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
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
