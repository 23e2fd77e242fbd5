"""The fam-attr encoder: shape, differentiability, determinism and what its blocks respond to."""

from __future__ import annotations

import pytest
import torch

from fam.config import ModelSpec
from fam.errors import ConfigError
from fam.faces.attributes import BLOCK_DIMS, FamAttributeEncoder
from fam.interfaces import AttributeEncoder
from fam.models.factory import BuildContext, build

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def encoder() -> FamAttributeEncoder:
    return build("attribute", ModelSpec("fam-attr"), BuildContext(torch.device("cpu")))


def _images(b: int = 3, r: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(
        torch.rand(b, 3, 8, 8, generator=g), size=(r, r), mode="bilinear"
    )
    return smooth * 1.6 - 0.8


def test_shape_protocol_and_determinism(encoder: FamAttributeEncoder) -> None:
    assert isinstance(encoder, AttributeEncoder)
    assert encoder.feature_dim == sum(BLOCK_DIMS.values()) == 211
    for r in (64, 128):
        x = _images(r=r)
        f = encoder.features(x)
        assert f.shape == (3, encoder.feature_dim) and torch.isfinite(f).all()
        assert torch.equal(f, encoder.features(x))
    with pytest.raises(ValueError, match="aligned images"):
        encoder.features(torch.zeros(1, 3, 64, 32))


def test_gradients_reach_the_image_through_every_block(encoder: FamAttributeEncoder) -> None:
    for name in BLOCK_DIMS:
        x = _images().requires_grad_(True)
        encoder.raw_blocks(x)[name].pow(2).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, name


def test_blocks_follow_lighting(encoder: FamAttributeEncoder) -> None:
    x = _images() * 0.5
    light = encoder.raw_blocks(x)["light"]
    brighter = encoder.raw_blocks(x + 0.2)["light"]
    assert torch.allclose(brighter[:, 0] - light[:, 0], torch.full((3,), 0.2), atol=1e-5)
    ramp = torch.linspace(-0.3, 0.3, 64).view(1, 1, 1, 64)
    lit = encoder.raw_blocks(x + ramp)["light"]
    assert (lit[:, 1] > light[:, 1] + 0.1).all()  # light from the right: positive x-gradient
    assert torch.allclose(lit[:, 2], light[:, 2], atol=1e-5)  # and no vertical change


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        build("attribute", ModelSpec("fam-attr", {"size": 3}), BuildContext(torch.device("cpu")))
