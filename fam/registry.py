"""One kind of registry for every family of named, pluggable parts.

A :class:`Registry` maps a name to a target: the object itself, or a ``"package.module:attr"``
string imported on the first :meth:`Registry.get` of that name, so that registering costs no
import (``fam models`` can list every name without loading a network). Model builders, face
recognizers and weight files use it, and so can any later family (evaluation metrics). The
rules are the same for all of them:

- a name means one thing: registering a different target under a taken name is an error, and
  a deliberate replacement says so with ``replace=True``. Registering the identical target
  again changes nothing and is allowed, because a module imported under two names (pytest
  imports ``tests/conftest.py`` as ``conftest`` and again as ``tests.conftest``) runs its
  registrations twice;
- an unknown name is a :class:`~fam.errors.UserError` (which one is the registry's choice) that
  lists the known names and says what to do.

A string target is always read as a lazy reference, so a registry cannot hold plain strings.
"""

from __future__ import annotations

import importlib
import re
from typing import Generic, TypeVar, cast

from fam.errors import ConfigError, UserError

T = TypeVar("T")

_LAZY_TARGET = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


class Registry(Generic[T]):
    """Names -> targets of one kind, with lazy ``"module:attr"`` targets and no silent overwrite."""

    def __init__(
        self,
        kind: str,  # what one entry is, in words, for messages: "face recognizer"
        *,
        hint: str = "",  # what a user does about an unknown name: "set evaluate.recognizers to ..."
        error: type[UserError] = ConfigError,  # raised by get() for an unknown name
    ) -> None:
        self.kind = kind
        self.hint = hint
        self._error = error
        self._targets: dict[str, T | str] = {}
        self._loaded: dict[str, T] = {}

    def register(self, name: str, target: T | str, *, replace: bool = False) -> None:
        """Add ``name``; ``target`` is the object or ``"package.module:attr"`` (imported on first get)."""
        if not name:
            raise ValueError(f"a {self.kind} needs a non-empty name")
        if isinstance(target, str) and not _LAZY_TARGET.fullmatch(target):
            raise ValueError(
                f"{self.kind} {name!r}: lazy target {target!r} is not of the form 'package.module:attribute'"
            )
        if name in self._targets and not replace and self._targets[name] != target:
            raise ValueError(
                f"{self.kind} {name!r} is already registered as {self._targets[name]!r}; "
                "choose another name, or pass replace=True if replacing it is the intent"
            )
        self._targets[name] = target
        self._loaded.pop(name, None)

    def get(self, name: str) -> T:
        """The target of ``name``, importing it the first time if it was registered lazily."""
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._targets:
            known = ", ".join(self.names()) or "(none registered)"
            hint = f"; {self.hint}" if self.hint else ""
            raise self._error(f"unknown {self.kind} {name!r}; known names: {known}{hint}")
        target = self._targets[name]
        value = self._import(name, target) if isinstance(target, str) else target
        self._loaded[name] = value
        return value

    def names(self) -> list[str]:
        """Every registered name, sorted; imports nothing."""
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __len__(self) -> int:
        return len(self._targets)

    def _import(self, name: str, target: str) -> T:
        module_name, attr = target.split(":")
        try:
            return cast(T, getattr(importlib.import_module(module_name), attr))
        except (ImportError, AttributeError) as exc:
            raise ImportError(
                f"{self.kind} {name!r} points to {target}, which cannot be loaded: {exc}"
            ) from exc
