"""Classic obfuscation baselines scored by the same code as the method.

All act on image batches ``[B, 3, S, S]`` in [-1, 1] and are defined relative to the image
side, so a setting means the same at every resolution. None has a key: they are scored for
anonymity, recognition utility and FID only. ``downsample`` resizes to the release resolution and
back, so it shows what the release resolution alone does to scores (with ``evaluate.score_at:
release`` every set is already at that resolution and it is the identity: PSR 0, a sanity row).

Each is registered in :data:`BASELINES` under its ``evaluate.baselines`` name as a builder
``(EvaluateConfig, release resolution) -> (images -> images)``; the evaluation reads only the
registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from fam.config import EvaluateConfig
from fam.registry import Registry

Transform = Callable[[torch.Tensor], torch.Tensor]  # [B, 3, S, S] -> [B, 3, S, S], both in [-1, 1]

BASELINES: Registry[Callable[[EvaluateConfig, int], Transform]] = Registry(
    "baseline", hint="set evaluate.baselines to registered names (fam.evaluate.baselines.BASELINES)"
)


def gaussian_blur(images: torch.Tensor, sigma_frac: float) -> torch.Tensor:
    """Separable Gaussian blur with sigma = ``sigma_frac`` x side, kernel +-3 sigma, reflect padding."""
    sigma = max(sigma_frac * images.shape[-1], 1e-3)
    radius = min(max(1, math.ceil(3 * sigma)), images.shape[-1] - 1)
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    c = images.shape[1]
    out = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def pixelate(images: torch.Tensor, blocks: int) -> torch.Tensor:
    """Average over a ``blocks x blocks`` grid of cells, then nearest upsampling to the input size."""
    small = F.adaptive_avg_pool2d(images, blocks)
    return F.interpolate(small, size=images.shape[-2:], mode="nearest")


def downsample(images: torch.Tensor, side: int) -> torch.Tensor:
    """Antialiased resize to ``side`` px, then bicubic back to the input size (the identity at ``side``)."""
    size = images.shape[-1]
    if size == side:
        return images
    small = F.interpolate(images, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def _blur(cfg: EvaluateConfig, resolution: int) -> Transform:
    return lambda x: gaussian_blur(x, cfg.blur_sigma)


def _pixelate(cfg: EvaluateConfig, resolution: int) -> Transform:
    return lambda x: pixelate(x, cfg.pixelate_blocks)


def _downsample(cfg: EvaluateConfig, resolution: int) -> Transform:
    return lambda x: downsample(x, resolution)


BASELINES.register("blur", _blur)
BASELINES.register("pixelate", _pixelate)
BASELINES.register("downsample", _downsample)


def baseline_transform(name: str, cfg: EvaluateConfig, resolution: int) -> Transform:
    """The transform of the baseline ``name`` under these settings, for a release at ``resolution`` px."""
    return BASELINES.get(name)(cfg, resolution)
