"""Shared fixtures: tiny registered models, tiny settings and generated face folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fam.config import Params, parse_params
from fam.models import factory

ROOT = Path(__file__).resolve().parent.parent
LFW = ROOT / "data" / "lfw"

factory.register("generator", "tiny", "tests.tiny_models:build_tiny_generator")
factory.register("identity", "tiny", "tests.tiny_models:build_tiny_identity")
factory.register("attribute", "tiny", "tests.tiny_models:build_tiny_attribute")

TINY_SETTINGS = {
    "models": {
        "generator": {"name": "tiny", "resolution": 32},
        "inverter": {"name": "projection", "steps": 3, "lr": 0.05},
        "identity": "tiny",
        "attribute": "tiny",
    },
    "optimise": {"steps": 4},
    "groups": {"single_image_views": 3, "max_batch_views": 8},
    "runtime": {"device": "cpu"},
}


@pytest.fixture
def tiny_params() -> Params:
    return parse_params(TINY_SETTINGS)


def make_face_folder(root: Path, people: dict[str, int], size: int = 32, seed: int = 0) -> Path:
    """``root/<person>/<person>_000N.png``: smooth random images, one colour scheme per person."""
    rng = np.random.default_rng(seed)
    for person, n in people.items():
        (root / person).mkdir(parents=True, exist_ok=True)
        base = rng.uniform(0, 255, size=(4, 4, 3))
        for i in range(n):
            small = np.clip(base + rng.normal(0, 20, size=base.shape), 0, 255).astype(np.uint8)
            img = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
            img.save(root / person / f"{person}_{i + 1:04d}.png")
    return root


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
