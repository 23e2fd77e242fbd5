"""benchmarks/discriminator_gap.py: three sets scored plain and augmented, held-out faces packed alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import discriminator_gap as dg
from fam.training.pack import pack_faces
from fam.training.prior import PriorTrainer
from fam.training.splits import load_split
from tests.test_training import tiny_prior_cfg

pytestmark = pytest.mark.unit


def test_report_reads_a_memorising_discriminator_as_a_gap() -> None:
    sets = {
        "train": torch.full((5, 1), 2.0),
        "heldout": torch.full((5, 1), -0.5),
        "fake": torch.full((5, 1), -1.0),
    }
    scores = dg.score_sets({"d": lambda x: x.sum(1)}, sets, augment=lambda x: x * 0.5)
    assert scores["d", "train", False] == dg.Scores(2.0, 1.0)
    assert scores["d", "train", True] == dg.Scores(1.0, 1.0)
    last = dict(p.split("=") for p in dg.report(scores)[-1].split())
    assert float(last["overfit_gap"]) == pytest.approx(2.5) and float(last["rt_aug"]) == 1.0
    assert last["vision_train"] == "nan"  # no vision head given


def test_main_scores_a_training_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    split = load_split()
    rng = np.random.default_rng(0)
    for person in [*sorted(split.train)[:2], sorted(split.heldout)[0]]:
        (tmp_path / "al" / person).mkdir(parents=True)
        for i in range(3):
            base = rng.integers(0, 256, (8, 8, 3)).astype(np.uint8)
            Image.fromarray(base).resize((64, 64)).save(tmp_path / "al" / person / f"{person}_{i:04d}.png")
    pack_faces(tmp_path / "al", tmp_path / "p.npz", resolution=32, quality=90)
    from fam.training.pack import load_pack

    t = PriorTrainer(tiny_prior_cfg(), load_pack(tmp_path / "p.npz").images, torch.device("cpu"))
    t.train_step()
    t.save(tmp_path / "state.pt")
    code = dg.main(
        [
            "--state",
            str(tmp_path / "state.pt"),
            "--data",
            str(tmp_path / "p.npz"),
            "--aligned",
            str(tmp_path / "al"),
            "--n",
            "6",
        ]
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and "faces: train 6, heldout 3, fake 6" in out[0]
    last = {k: float(v) for k, v in (p.split("=") for p in out[-1].split())}
    assert all(np.isfinite(last[k]) for k in ("d_train", "d_heldout", "d_fake", "overfit_gap", "rt_aug"))
    assert dg.main(["--state", str(tmp_path / "missing.pt")]) == 2
