"""StyleGAN2's residual discriminator with minibatch standard deviation, in plain PyTorch.

Layout for resolution R with widths ``ch[r]``: FromRGB (1x1 to ``ch[R]``), one residual block per
resolution R..8 (two 3x3 convs, the second blurred and strided; a blurred strided 1x1 skip; the sum
scaled by 1/sqrt 2), then at 4x4 the minibatch-stddev channel, a 3x3 conv, and two linear layers
to one logit. Equalised learning rate throughout; weights are filled from an explicit seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F

from fam.models.stylegan2 import BLUR_KERNEL, EqualLinear, fused_leaky_relu, make_fir_kernel, upfirdn2d


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate; optional 2x blur-then-stride downsampling."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int,
        down: bool = False,  # blur with the [1,3,3,1] filter, then stride 2
        bias: bool = True,
        activate: bool = True,  # fused bias + leaky ReLU * sqrt 2
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel**2)
        self.down = down
        self.activate = activate
        self.kernel = kernel
        if down:
            self.register_buffer("blur_kernel", make_fir_kernel(BLUR_KERNEL))

    def reset_parameters(self, rng: torch.Generator) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.randn(self.weight.shape, generator=rng))
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.scale
        if self.down:
            # Pads chosen so that blur + stride-2 conv maps H to H / 2 (as in StyleGAN2).
            p = (len(BLUR_KERNEL) - 2) + (self.kernel - 1)
            x = upfirdn2d(x, self.blur_kernel, pad=((p + 1) // 2, p // 2))
            x = F.conv2d(x, w, stride=2)
        else:
            x = F.conv2d(x, w, padding=self.kernel // 2)
        if self.activate:
            return fused_leaky_relu(x, self.bias if self.bias is not None else x.new_zeros(x.shape[1]))
        return x if self.bias is None else x + self.bias.view(1, -1, 1, 1).to(x.dtype)


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3, down=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, down=True, bias=False, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


class Discriminator(nn.Module):
    """Images ``[B, 3, R, R]`` in ``[-1, 1]`` -> logits ``[B]`` (higher = more real)."""

    def __init__(
        self,
        resolution: int,  # power of two >= 8
        channels: Mapping[int, int],  # width per resolution 4..R
        mbstd_group: int = 4,  # samples per minibatch-stddev group (smaller batches use the batch)
    ) -> None:
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"discriminator resolution must be a power of two >= 8, got {resolution}")
        levels = [2**k for k in range(int(math.log2(resolution)), 2, -1)]  # R, R/2, ..., 8
        missing = [r for r in [*levels, 4] if r not in channels]
        if missing:
            raise ValueError(f"discriminator channels has no width for resolution(s) {missing}")
        self.resolution = resolution
        self.mbstd_group = mbstd_group
        self.from_rgb = EqualConv2d(3, channels[resolution], 1)
        self.blocks = nn.ModuleList(DiscriminatorBlock(channels[r], channels[r // 2]) for r in levels)
        c4 = channels[4]
        self.final_conv = EqualConv2d(c4 + 1, c4, 3)
        self.final_linear = EqualLinear(c4 * 16, c4, activation=True)
        self.out = EqualLinear(c4, 1)

    def reset_parameters(self, seed: int) -> None:
        rng = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters(rng)

    def minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        """Append one channel: the mean over features of the per-group stddev across samples."""
        b, c, h, w = x.shape
        g = math.gcd(min(self.mbstd_group, b), b)
        y = x.float().reshape(g, -1, c, h, w)
        y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [B / g]
        y = y.to(x.dtype).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Activations after FromRGB and after each block (for the encoder's perceptual loss)."""
        x = self.from_rgb(images)
        feats = [x]
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1:] != (3, self.resolution, self.resolution):
            raise ValueError(
                f"discriminator expects [B, 3, {self.resolution}, {self.resolution}], "
                f"got {list(images.shape)}"
            )
        x = self.features(images)[-1]
        x = self.final_conv(self.minibatch_stddev(x))
        return self.out(self.final_linear(x.flatten(1))).squeeze(1)
