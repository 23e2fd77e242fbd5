"""The ``fam`` command line. Subcommands live in their own modules and are imported lazily,
so ``fam --help`` stays fast and ``fam key`` never imports torch's heavy model code."""

from __future__ import annotations

import click

from fam import __version__
from fam.cli.common import PluginGroup

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
    "widen-prior": "fam.cli.train:widen_prior",
    "ship-prior": "fam.cli.train:ship_prior",
}


class _Fam(PluginGroup):
    def own_targets(self) -> dict[str, str]:
        return COMMANDS


@click.group(cls=_Fam)
@click.version_option(__version__, prog_name="fam")
def cli() -> None:
    """FaceAnonyMixer: cancelable face biometrics (protect, evaluate, audit)."""


def main() -> None:
    cli(prog_name="fam")
