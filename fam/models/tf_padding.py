"""TensorFlow's ``SAME`` padding, for networks ported from TensorFlow.

``SAME`` gives ``ceil(size / stride)`` outputs and, when the total padding is odd, puts the extra
row and column after the image, not before. A symmetric ``padding=`` in torch shifts every
feature map of a stride-2 layer by half a pixel against the trained weights, so ported layers pad
explicitly with :func:`same_pad` and convolve with ``padding=0``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """``(before, after)`` padding of one spatial axis of ``size`` pixels under TF's ``SAME``."""
    reach = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + reach - size, 0)
    return total // 2, total - total // 2


def same_pad(
    x: torch.Tensor,  # [B, C, H, W]
    kernel: tuple[int, int],  # (kh, kw)
    stride: tuple[int, int],  # (sh, sw)
    dilation: tuple[int, int] = (1, 1),
) -> torch.Tensor:
    """``x`` padded so that a ``padding=0`` window op on it equals TF's ``SAME``."""
    top, bottom = same_padding(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = same_padding(x.shape[-1], kernel[1], stride[1], dilation[1])
    if top == bottom == left == right == 0:
        return x
    return F.pad(x, [left, right, top, bottom])
