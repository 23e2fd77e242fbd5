"""The LFW verification benchmark's protocol (benchmarks/bench_lfw_verify.py): pairs files of both
LFW views, the best threshold, 10-fold accuracy, and crop parsing, on constructed inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench_lfw_verify as bv

pytestmark = pytest.mark.unit


def test_pairs_files_of_both_views(tmp_path: Path) -> None:
    view2 = tmp_path / "pairs.txt"
    view2.write_text("2\t1\nAnn\t1\t2\nAnn\t1\tBob\t3\nCid\t2\t4\nBob\t1\tCid\t1\n")
    pairs, same, fold = bv.read_pairs(view2)
    assert pairs[0] == ("Ann/Ann_0001", "Ann/Ann_0002") and pairs[1] == ("Ann/Ann_0001", "Bob/Bob_0003")
    assert same.tolist() == [True, False, True, False] and fold.tolist() == [0, 0, 1, 1]
    view1 = tmp_path / "pairsDevTest.txt"
    view1.write_text("1\nAnn\t1\t2\nAnn\t1\tBob\t3\n")  # View 1: one set, "per" pairs of each kind
    _, same, fold = bv.read_pairs(view1)
    assert same.tolist() == [True, False] and fold.tolist() == [0, 0]
    view1.write_text("2\nAnn\t1\t2\nAnn\t1\tBob\t3\n")
    with pytest.raises(SystemExit, match="2 pairs, expected 4"):
        bv.read_pairs(view1)


def test_thresholds_are_fitted_on_the_other_folds() -> None:
    scores = np.array([0.9, 0.5, 0.4, 0.1])
    same = np.array([True, False, True, False])
    threshold, acc = bv.best_threshold(scores[:2], same[:2])
    assert threshold == pytest.approx(0.7) and acc == 1.0
    # each fold is separable alone, but the threshold of one misplaces a pair of the other
    assert bv.ten_fold_accuracy(scores, same, np.array([0, 0, 1, 1])) == 0.5
    # one fold (View 1): its own best threshold, -inf scores (rejected photos) count as "different"
    assert bv.ten_fold_accuracy(
        np.array([0.9, -np.inf, 0.2]), np.array([True, True, False]), np.zeros(3)
    ) == (pytest.approx(2 / 3))


def test_crops_are_square_templates_of_the_evaluators_size() -> None:
    crops = bv.parse_crops("0.8:0.1,1.0", size=224)
    assert [c.size for c in crops] == [224, 224] and [c.name for c in crops] == [
        "square 0.8:0.1",
        "square 1:0",
    ]
    assert crops[0].theta == ((0.8, 0.0, 0.0), (0.0, 0.8, 0.1)) and crops[1].scale == 1.0
