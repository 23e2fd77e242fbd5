"""benchmarks.key_face_crowding on constructed descriptors."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from benchmarks.key_face_crowding import Crowding, match_degree, nearest_people, person_centroids, report

pytestmark = pytest.mark.unit


def test_match_degree_counts_other_faces_above_the_threshold() -> None:
    e = torch.tensor([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0]])
    assert match_degree(e, 0.9).tolist() == [1, 1, 0]  # never itself


def test_nearest_people_uses_each_persons_mean_descriptor() -> None:
    train = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    names, centroids = person_centroids(train, ["ann", "ann", "bob"])
    assert names == ["ann", "bob"]
    assert torch.allclose(centroids.norm(dim=1), torch.ones(2))
    probes = torch.tensor([[0.9, 0.3], [0.1, 1.0], [0.2, 0.9]])
    assert nearest_people(probes, names, centroids) == Counter({"bob": 2, "ann": 1})


def test_same_person_pairs_is_the_sum_of_squared_shares() -> None:
    c = Crowding(torch.zeros(2), Counter(), Counter(), Counter({"a": 3, "b": 1}), keys=2, heldout=1)
    assert c.same_person_pairs == pytest.approx(0.75**2 + 0.25**2)


def test_report_ends_with_the_summary_line() -> None:
    c = Crowding(
        torch.tensor([2, 1, 0]), Counter({"a": 3}), Counter({"a": 1, "b": 1}), Counter({"a": 2, "b": 2}), 3, 2
    )
    lines = report(c, top=2)
    assert lines[-1] == "degree_mean=1.0 degree_median=1 nearest_people=1 data_same_person_pairs=0.5000"
    assert any(line.strip().startswith("a ") and "1.000 / 0.500 / 0.5000" in line for line in lines)
