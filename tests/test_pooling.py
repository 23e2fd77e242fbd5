"""fam.faces.pooling: the channels-last max pool is F.max_pool2d, value for value and layout for layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fam.faces.pooling import max_pool2d

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("kernel", "stride", "ceil_mode"), [(3, 2, False), (3, 2, True), (2, 2, True)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_max_pool_matches_torch_in_values_layout_and_gradient(
    kernel: int, stride: int, ceil_mode: bool, layout: torch.memory_format
) -> None:
    x = torch.randn(2, 5, 21, 17, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=layout)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, ref = (
        max_pool2d(a, kernel, stride, ceil_mode=ceil_mode),
        F.max_pool2d(b, kernel, stride, ceil_mode=ceil_mode),
    )
    assert torch.equal(ours, ref) and ours.stride() == ref.stride()
    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    (ours * weights).sum().backward()
    (ref * weights).sum().backward()
    assert a.grad is not None and b.grad is not None and torch.equal(a.grad, b.grad)
