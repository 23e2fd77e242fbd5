"""The weight registry: finds a model file of the catalog and checks its hash before anything loads it.

Every entry is listed in :mod:`fam.weights_catalog` (one table, plain data) and registered here
under its name. :func:`resolve` finds the file and checks its sha256; a missing or corrupt file
is a :class:`~fam.errors.MissingWeightsError` that says how to get it. There is no silent
fallback and nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

from fam.errors import MissingWeightsError
from fam.io_utils import sha256_file
from fam.registry import Registry
from fam.weights_catalog import CATALOG, WeightEntry

WEIGHTS: Registry[WeightEntry] = Registry(
    "model file",
    hint="fam/weights_catalog.py lists every model file the project can load (see `fam models`)",
    error=MissingWeightsError,
)
for _entry in CATALOG:
    WEIGHTS.register(_entry.name, _entry)


def get(name: str) -> WeightEntry:
    return WEIGHTS.get(name)


def entries() -> list[WeightEntry]:
    """Every catalog entry, sorted by name."""
    return [WEIGHTS.get(name) for name in WEIGHTS.names()]


def models_dir() -> Path:
    """Where set-up scripts put fetched model files: $FAM_MODELS_DIR, else $FAM_CACHE_DIR/models,
    else ~/.cache/fam/models (the scripts read the same variables)."""
    if os.environ.get("FAM_MODELS_DIR"):
        return Path(os.environ["FAM_MODELS_DIR"]).expanduser()
    return Path(os.environ.get("FAM_CACHE_DIR") or Path.home() / ".cache" / "fam").expanduser() / "models"


def locate(entry: WeightEntry) -> Path | None:
    """Where the file would be on this machine, or None if its package is not installed."""
    if entry.source == "package":
        module, _, rel = entry.location.partition("/")
        # find_spec, not import: face_recognition_models' __init__ needs the removed pkg_resources.
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))) / rel
    if entry.source == "project":
        return Path(__file__).resolve().parent / entry.location
    if entry.source == "fetched":
        return models_dir() / entry.location
    return None


def resolve(name: str, path: str | Path | None = None, sha256: str | None = None) -> Path:
    """Path of a verified model file.

    ``path`` overrides the registry location (required for ``user`` entries); ``sha256``
    overrides or supplies the expected hash. Raises MissingWeightsError with the fix.
    """
    entry = get(name)
    file = Path(path).expanduser() if path is not None else locate(entry)
    expected = sha256 or entry.sha256
    if file is None:
        if entry.source == "user":
            raise MissingWeightsError(
                f"{entry.name} ({entry.role}) is not shipped here; {entry.how_to_get} "
                f"and set its path in params.yaml"
            )
        raise MissingWeightsError(f"{entry.name} ({entry.role}) is missing: {entry.how_to_get}")
    if not file.is_file():
        raise MissingWeightsError(
            f"{entry.name} ({entry.role}): file {file} does not exist; {entry.how_to_get}"
        )
    if expected is None:
        raise MissingWeightsError(
            f"{entry.name}: no sha256 is pinned for {file}; add its sha256 next to the path in params.yaml "
            f"(compute it with `sha256sum {file}`) so that every run loads exactly the file you checked"
        )
    actual = sha256_file(file)
    if actual != expected:
        raise MissingWeightsError(
            f"{entry.name}: {file} has sha256 {actual[:16]}..., expected {expected[:16]}...; "
            "the file is corrupt "
            f"or a different version. {entry.how_to_get}"
        )
    return file


def status(entry: WeightEntry) -> tuple[Literal["present", "missing", "corrupt", "user"], str]:
    """For ``fam models``: present / missing / corrupt (with detail), or user-supplied."""
    if entry.source == "user":
        return "user", entry.how_to_get
    file = locate(entry)
    if file is None or not file.is_file():
        return "missing", entry.how_to_get
    if sha256_file(file) != entry.sha256:
        return "corrupt", f"{file}: hash mismatch; {entry.how_to_get}"
    return "present", str(file)
