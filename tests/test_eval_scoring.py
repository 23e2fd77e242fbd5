"""Chunked scoring equals the full matrix; labelled pairs are split and counted correctly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fam.evaluate.scoring import (
    cosine_similarity,
    labelled_pair_scores,
    negative_l2,
    paired_scores,
    similarity_chunked,
)

pytestmark = pytest.mark.unit


def _emb(n: int, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def test_chunked_similarity_equals_full_matrix() -> None:
    a, b = _emb(103), _emb(57, seed=1)
    for sim in (cosine_similarity, negative_l2):
        full = sim(a, b)
        assert torch.allclose(similarity_chunked(a, b, sim, chunk=10), full, atol=1e-5)


def test_paired_scores_are_the_diagonal() -> None:
    a, b = _emb(41), _emb(41, seed=1)
    full = cosine_similarity(a, b).diagonal().numpy()
    assert np.allclose(paired_scores(a, b, cosine_similarity, chunk=8), full, atol=1e-6)


def test_labelled_pairs_within_one_set() -> None:
    a = _emb(7)
    labels = ["x", "x", "x", "y", "y", "z", "z"]
    same, diff = labelled_pair_scores(a, labels, cosine_similarity, chunk=3)
    assert len(same) == 3 + 1 + 1  # C(3,2) + C(2,2) + C(2,2)
    assert len(diff) == 21 - 5
    full = cosine_similarity(a, a).numpy()
    expected_same = sorted(full[i, j] for i in range(7) for j in range(i + 1, 7) if labels[i] == labels[j])
    assert np.allclose(sorted(same), expected_same, atol=1e-6)


def test_labelled_pairs_across_sets_without_same_image() -> None:
    a, b = _emb(5), _emb(5, seed=1)
    labels = ["x", "x", "y", "y", "y"]
    same, diff = labelled_pair_scores(
        a, labels, cosine_similarity, b, labels, exclude_same_index=True, chunk=2
    )
    assert len(same) == 2 * 1 + 3 * 2  # ordered pairs of distinct images of one person
    assert len(diff) == 2 * 3 * 2
    same_all, _ = labelled_pair_scores(a, labels, cosine_similarity, b, labels, chunk=2)
    assert len(same_all) == 4 + 9
