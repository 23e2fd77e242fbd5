"""Max pooling in the memory layout CPU kernels run fastest.

PyTorch's CPU max pooling over NCHW tensors is a scalar loop; over channels-last tensors it is
vectorised across channels and runs ~10x faster (3x3/2 over [6, 32, 72, 72]: 4.1 ms vs 0.35 ms
on a 2-core AVX-512 machine), which pays for the two layout copies many times over. The result
is bit-identical (a maximum has no rounding), so this is a pure speed choice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def max_pool2d(x: torch.Tensor, kernel: int, stride: int, *, ceil_mode: bool = False) -> torch.Tensor:
    """``F.max_pool2d``; an NCHW input is pooled channels-last and returned NCHW, any other layout
    is pooled as it is (the layout decides how the next convolution sums, hence its rounding)."""
    if not x.is_contiguous():
        return F.max_pool2d(x, kernel, stride, ceil_mode=ceil_mode)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    return F.max_pool2d(channels_last, kernel, stride, ceil_mode=ceil_mode).contiguous()
