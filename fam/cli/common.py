"""Options shared by the subcommands: the settings file and dotted overrides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from fam.config import Params, load_params, parse_override


def params_options(func: Callable[..., Any]) -> Callable[..., Any]:
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
        default=Path("params.yaml"),
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
