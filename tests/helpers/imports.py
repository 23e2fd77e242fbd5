"""Static import graph of the project's packages, read from the source (nothing is imported).

Counts ``import``/``from`` statements anywhere in a module (function-level imports too, since a
lazy import still runs that code) and lazy registry targets written as ``"package.module:attr"``
strings, except in a package's ``__init__`` (the CLI's dispatch table names every command; only
the chosen one runs).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fam", "tasks", "flows")
_LAZY_TARGET = re.compile(r"^((?:fam|tasks|flows)(?:\.\w+)+):\w+$")


def module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def imported_names(path: Path, *, lazy_targets: bool = True) -> set[str]:
    """Every dotted name ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            lazy_targets
            and path.name != "__init__.py"
            and isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and (match := _LAZY_TARGET.match(node.value))
        ):
            names.add(match.group(1))
    return names


def closure(module: str) -> set[Path]:
    """Project files that run when ``module`` runs: its imports, transitively, and parent packages."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        if parts[0] not in PACKAGES:
            continue
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported_names(path))
    return seen


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))
