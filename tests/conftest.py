"""Fixtures and hooks only; code shared by test modules lives in ``tests/helpers/``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fam.config import Params, parse_params
from tests.helpers.faces import make_face_folder
from tests.helpers.paths import LFW
from tests.helpers.tiny_models import TINY_SETTINGS, register_tiny_models

register_tiny_models()

# Every test says what it needs (pyproject.toml describes them), so `-m unit` etc. select honestly.
PROJECT_MARKERS = frozenset({"unit", "data", "model", "flow", "slow"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: an unmarked test must not vanish silently
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = [i.nodeid for i in items if not any(m.name in PROJECT_MARKERS for m in i.iter_markers())]
    if unmarked:
        raise pytest.UsageError(
            f"{len(unmarked)} test(s) carry none of the markers {', '.join(sorted(PROJECT_MARKERS))}; "
            "add a module-level `pytestmark` or a decorator:\n  " + "\n  ".join(unmarked)
        )


@pytest.fixture
def tiny_params() -> Params:
    return parse_params(TINY_SETTINGS)


@pytest.fixture
def face_folder(tmp_path: Path) -> Path:
    return make_face_folder(tmp_path / "aligned", {"Alice": 3, "Bob": 2, "Carol": 1})


@pytest.fixture
def lfw_available() -> Path:
    if not (LFW / "images").is_dir():
        pytest.fail("LFW data missing: run `dvc pull` in the project root (the README's set-up does this)")
    return LFW


@pytest.fixture(autouse=True)
def _no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAM_KEY", raising=False)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session")
def prefect_home(tmp_path_factory: pytest.TempPathFactory):
    """One temporary Prefect server for every test that runs a flow (starting one takes ~15-40 s)."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-results")
    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings({PREFECT_LOCAL_STORAGE_PATH: storage}),
    ):
        yield storage
