"""fam.registry: one name means one thing, lazy targets load on first use, unknown names say what to do."""

from __future__ import annotations

import sys

import pytest

from fam.errors import ConfigError, MissingWeightsError
from fam.registry import Registry

pytestmark = pytest.mark.unit


def test_register_get_and_names() -> None:
    reg: Registry[int] = Registry("number")
    reg.register("two", 2)
    reg.register("one", 1)
    assert reg.get("two") == 2
    assert reg.names() == ["one", "two"]
    assert "one" in reg and "three" not in reg and len(reg) == 2


def test_a_taken_name_is_refused_unless_replacing_on_purpose() -> None:
    reg: Registry[int] = Registry("number")
    reg.register("x", 1)
    with pytest.raises(ValueError, match=r"number 'x' is already registered as 1; .*replace=True"):
        reg.register("x", 2)
    assert reg.get("x") == 1
    reg.register("x", 1)  # the identical target again (a module imported twice) changes nothing
    reg.register("x", 2, replace=True)
    assert reg.get("x") == 2


def test_unknown_name_lists_the_known_ones_with_the_hint() -> None:
    reg: Registry[int] = Registry("colour", hint="set paint.colour to one of them")
    reg.register("red", 1)
    reg.register("blue", 2)
    with pytest.raises(
        ConfigError, match=r"^unknown colour 'green'; known names: blue, red; set paint\.colour"
    ):
        reg.get("green")
    empty: Registry[int] = Registry("model file", error=MissingWeightsError)
    with pytest.raises(
        MissingWeightsError, match=r"unknown model file 'x'; known names: \(none registered\)$"
    ):
        empty.get("x")


def test_lazy_targets_import_on_first_get_only() -> None:
    reg: Registry[object] = Registry("parser")
    sys.modules.pop("wave", None)  # a small standard-library module nothing else here imports
    reg.register("wave", "wave:open")
    assert "wave" not in sys.modules  # registering and listing import nothing
    assert reg.names() == ["wave"]
    target = reg.get("wave")
    import wave

    assert target is wave.open
    reg.register("wave", "wave:open")  # same lazy reference again: accepted
    assert reg.get("wave") is wave.open


def test_bad_lazy_targets_are_named() -> None:
    reg: Registry[object] = Registry("parser")
    with pytest.raises(ValueError, match=r"not of the form 'package\.module:attribute'"):
        reg.register("p", "wave.open")
    with pytest.raises(ValueError, match="non-empty name"):
        reg.register("", 1)
    reg.register("missing-module", "fam.no_such_module:build")
    reg.register("missing-attr", "fam.registry:no_such_function")
    with pytest.raises(ImportError, match=r"parser 'missing-module' points to fam\.no_such_module:build"):
        reg.get("missing-module")
    with pytest.raises(ImportError, match="no_such_function"):
        reg.get("missing-attr")
