"""Identity-model impostor calibration (optimise.margin: auto) and its measurement."""

from __future__ import annotations

import pytest
import torch

from benchmarks.calibrate_identity import impostor_statistics
from fam.calibration import CALIBRATION_FILE, IdentityCalibration, load_calibration
from fam.errors import ConfigError, UserError

pytestmark = pytest.mark.unit


def test_impostor_statistics_separate_genuine_from_impostor_pairs() -> None:
    # two people, two faces each: genuine pairs are identical vectors, impostors orthogonal
    emb = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    stats = impostor_statistics(emb, ["a", "a", "b", "b"])
    assert stats["genuine_cos_mean"] == pytest.approx(1.0)
    assert stats["impostor_cos_mean"] == pytest.approx(0.0)
    assert (stats["impostor_pairs"], stats["genuine_pairs"], stats["people"]) == (4, 2, 2)


def test_impostor_statistics_need_two_people() -> None:
    with pytest.raises(UserError, match="at least two people"):
        impostor_statistics(torch.eye(3), ["a", "a", "a"])


def _entry(identity: str = "probe", resolution: int = 32) -> IdentityCalibration:
    return IdentityCalibration(identity, resolution, 0.5, 0.1, 0.8, 0.9, 10, 2, 5, 2, "test")


def test_record_then_load_round_trips(tmp_path) -> None:
    file = tmp_path / "cal.json"
    _entry().record(file)
    _entry("other", 64).record(file)
    assert load_calibration("probe", 32, file) == _entry()
    assert load_calibration("other", 64, file).impostor_cos_mean == 0.5


def test_a_missing_calibration_says_how_to_measure_it(tmp_path) -> None:
    _entry().record(tmp_path / "cal.json")
    with pytest.raises(ConfigError, match=r"calibrate_identity --identity probe --resolution 64 --write"):
        load_calibration("probe", 64, tmp_path / "cal.json")


def test_the_shipped_dlib_calibration_is_the_measured_one() -> None:
    entry = load_calibration("dlib", 64, CALIBRATION_FILE)
    assert entry.impostor_pairs > 1_000_000  # all different-person pairs of the held-out split
    assert entry.impostor_cos_mean < entry.impostor_cos_fmr1e3 < entry.genuine_cos_mean + 0.05
