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
