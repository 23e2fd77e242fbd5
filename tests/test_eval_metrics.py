"""Known-answer tests of the evaluation statistics (synthetic scores, no models)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from fam.evaluate.thresholds import fmr_tag, quantile_thresholds
from fam.evaluate.unlinkability import unlinkability
from fam.evaluate.verification import auc, eer, psr, roc

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("d", [1.0, 2.0, 3.0])
def test_eer_and_auc_of_two_gaussians(d: float) -> None:
    rng = np.random.default_rng(0)
    impostor = rng.normal(0.0, 1.0, 200_000)
    genuine = rng.normal(d, 1.0, 200_000)
    assert eer(genuine, impostor) == pytest.approx(norm.cdf(-d / 2), abs=0.004)
    assert auc(genuine, impostor) == pytest.approx(norm.cdf(d / np.sqrt(2)), abs=0.003)


def test_eer_auc_extremes() -> None:
    assert eer(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 0.0
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 0.0
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5  # a tie counts half


def test_roc_rates_on_a_small_example() -> None:
    curve = roc(np.array([0.5, 0.9]), np.array([0.1, 0.5]))
    # at t = 0.5: impostors >= t: 1 of 2; genuine < t: 0 of 2
    i = int(np.where(curve.thresholds == 0.5)[0][0])
    assert curve.fmr[i] == 0.5 and curve.fnmr[i] == 0.0
    assert curve.fmr[-1] == 0.0 and curve.fnmr[-1] == 1.0


def test_psr_counts_non_matches() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert psr(scores, 0.3) == 0.4  # 0.3, 0.4, 0.5 match (>=); two of five do not
    assert psr(scores, 10.0) == 1.0
    assert psr(scores, -10.0) == 0.0
    with pytest.raises(ValueError):
        psr(np.array([]), 0.5)


def test_threshold_quantiles_on_a_known_array() -> None:
    scores = np.arange(1_000_000, dtype=np.float64) / 1_000_000  # uniform on [0, 1)
    thresholds, above = quantile_thresholds(scores, (1e-3, 1e-4, 1e-5))
    assert thresholds == pytest.approx({"1e-3": 0.999, "1e-4": 0.9999, "1e-5": 0.99999}, abs=2e-6)
    assert above == {"1e-3": 1000, "1e-4": 100, "1e-5": 10}
    assert fmr_tag(1e-3) == "1e-3" and fmr_tag(0.00001) == "1e-5" and fmr_tag(5e-2) == "5e-2"


def test_dsys_identical_distributions_is_zero() -> None:
    rng = np.random.default_rng(1)
    s = rng.normal(0.0, 1.0, 50_000)
    result = unlinkability(s, s.copy(), bins=100)
    assert result.d_sys == 0.0
    assert result.bins == 100 and len(result.d_local) == 100


def test_dsys_disjoint_distributions_is_near_one() -> None:
    rng = np.random.default_rng(2)
    mated = rng.uniform(0.6, 1.0, 20_000)
    nonmated = rng.uniform(-1.0, 0.2, 20_000)
    result = unlinkability(mated, nonmated, bins=100)
    assert result.d_sys == pytest.approx(1.0)
    assert np.all(result.d_local[result.centers > 0.62] == 1.0)


def test_dsys_grows_with_separation() -> None:
    rng = np.random.default_rng(3)
    nonmated = rng.normal(0.0, 1.0, 50_000)
    values = [unlinkability(rng.normal(d, 1.0, 50_000), nonmated).d_sys for d in (0.5, 1.5, 3.0)]
    assert values[0] < values[1] < values[2]


def test_dsys_mated_mass_in_the_top_bin_is_fully_linkable() -> None:
    # the case where a trapezoid over bin centres would report 0.5
    mated = np.full(100, 0.999)
    nonmated = np.linspace(-0.5, 0.5, 1000)
    assert unlinkability(mated, nonmated, bins=100).d_sys == pytest.approx(1.0)
