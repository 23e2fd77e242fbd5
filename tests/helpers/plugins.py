"""The ``fam.commands`` entry points as pyproject.toml declares them.

The installed package's metadata holds the entry points of the pyproject.toml it was installed
from; tests patch these in (``fam.cli.common.entry_points``) so that they check this checkout's
declarations, whatever installed it.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import EntryPoint

from fam.cli.common import PLUGIN_GROUP
from tests.helpers.paths import ROOT


def declared_entry_points(*, group: str) -> list[EntryPoint]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project.get("entry-points", {}).get(group, {})
    return [EntryPoint(name, value, group) for name, value in declared.items()]


def use_declared_plugins(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Make ``fam`` find the commands pyproject.toml declares in group ``fam.commands``."""
    assert declared_entry_points(group=PLUGIN_GROUP)
    monkeypatch.setattr("fam.cli.common.entry_points", declared_entry_points)
