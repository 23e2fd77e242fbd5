"""A second, vision-aided discriminator for the prior: a small trainable head on the multi-scale
features of a frozen ImageNet EfficientNet-Lite0 (Vision-aided GAN, Kumari et al. 2022; Projected
GAN, Sauer et al. 2021: pretrained-feature discriminators reach a given FID with several times
fewer images). The pixel discriminator stays; this one is added with a low weight, late
(``training.prior.vision_start_kimg``) and ramped in, because a pretrained-feature D can overpower
the pixel D and G early on.

Pipeline for images ``[B, 3, R, R]`` in ``[-1, 1]`` (already DiffAugmented by the trainer): bilinear
upsampling to ``size`` (the extractor was trained at 224 px; 64-px faces would leave its 1/32 map at
2x2), the frozen extractor's outputs at strides 8, 16 and 32, then per scale a 1x1 conv and blurred
strided 3x3 convs down to 4x4, and two linear layers over their concatenation to one logit.
The head uses the pixel D's equalised-lr layers and seeded init, so it is a pure function of the seed.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from fam.models.efficientnet_lite import EfficientNetLite0, block_channels, block_strides
from fam.models.stylegan2 import EqualLinear
from fam.training.discriminator import EqualConv2d

TAPS = (4, 10, 15)  # last blocks of the stride-8, -16 and -32 stages: 40, 112 and 320 channels
# RMS of those block outputs over 256 LFW train faces (64 px upsampled to 128): dividing by it gives
# the head unit-scale inputs, so its initial logits are O(1) like the pixel D's, not ~8x that.
FEATURE_RMS = (7.7, 7.5, 2.8)
HEAD_WIDTH = 64
HEAD_SIDE = 4  # each scale is reduced to 4x4 before the linear layers
# Taps the mode-seeking term compares: the semantic stride-16 and -32 ones (the stride-8 tap is
# mostly colour and texture, which DiffAugment's per-sample colour jitter would dominate).
DIVERSITY_TAPS = (1, 2)  # indices into TAPS


def check_size(size: int) -> None:
    """``size`` must be a power of two >= 128 so that every tapped map halves cleanly to 4x4."""
    if size < 128 or size & (size - 1):
        raise ValueError(f"vision_size = {size}; use a power of two >= 128 (128 is the tested default)")


class VisionHead(nn.Module):
    """Tapped feature maps ``[B, C_t, size / s_t, size / s_t]`` -> logits ``[B]`` (higher = real)."""

    def __init__(self, size: int, width: int = HEAD_WIDTH) -> None:
        super().__init__()
        check_size(size)
        self.branches = nn.ModuleList()
        for tap in TAPS:
            side = size // block_strides()[tap]
            downs = int(math.log2(side // HEAD_SIDE))
            layers = [EqualConv2d(block_channels()[tap], width, 1)]
            layers += [EqualConv2d(width, width, 3, down=True) for _ in range(downs)]
            self.branches.append(nn.Sequential(*layers))
        self.fc = EqualLinear(len(TAPS) * width * HEAD_SIDE**2, width, activation=True)
        self.out = EqualLinear(width, 1)

    def reset_parameters(self, seed: int) -> None:
        rng = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters(rng)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        parts = [
            branch(f / rms).flatten(1)
            for branch, f, rms in zip(self.branches, feats, FEATURE_RMS, strict=True)
        ]
        return self.out(self.fc(torch.cat(parts, dim=1))).squeeze(1)


class VisionDiscriminator(nn.Module):
    """Images ``[B, 3, R, R]`` in ``[-1, 1]`` -> logits ``[B]``; only ``head`` has parameters to train."""

    def __init__(self, extractor: EfficientNetLite0, size: int = 128) -> None:
        super().__init__()
        check_size(size)
        self.size = size
        # Channels-last: oneDNN's depthwise convolutions are faster in it on the CPU (G's pass at
        # batch 32, bf16: 0.87-0.94 s vs 1.00-1.09 s in NCHW, two runs on a loaded 2-core machine).
        self.extractor = extractor.frozen().to(memory_format=torch.channels_last)
        self.head = VisionHead(size)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Frozen features of the upsampled images; differentiable with respect to ``images``."""
        x = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.extractor.features(x.contiguous(memory_format=torch.channels_last), TAPS)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def mode_seeking_loss(feats: list[torch.Tensor]) -> torch.Tensor:
    """Mode-seeking term (MSGAN, Mao et al. 2019) on one batch of G's fakes: minus the mean log
    L1 distance, over all pairs, of the globally pooled, RMS-scaled features of ``DIVERSITY_TAPS``.

    ``feats`` are :meth:`VisionDiscriminator.features` of the fakes. Pooling makes the distance blind
    to DiffAugment's translation; the log makes the pull strongest on the pairs that are closest
    (the crowded ones) and saturate for pairs already apart, so it cannot grow without bound.
    """
    pooled = torch.cat([feats[t].float().mean((2, 3)) / FEATURE_RMS[t] for t in DIVERSITY_TAPS], dim=1)
    b = pooled.shape[0]
    if b < 2:
        raise ValueError("the mode-seeking term needs a batch of at least 2")
    dist = (pooled.unsqueeze(0) - pooled.unsqueeze(1)).abs().mean(-1)  # [B, B]
    pairs = dist[torch.triu(torch.ones(b, b, dtype=torch.bool, device=dist.device), diagonal=1)]
    return -(pairs + 1e-8).log().mean()
