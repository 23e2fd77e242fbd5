"""Classic obfuscation baselines scored by the same code as the method.

Both act on image batches ``[B, 3, S, S]`` in [-1, 1] and are defined relative to the image
side, so a setting means the same at every resolution. Neither has a key: they are scored for
anonymity, recognition utility and FID only.

Each is registered in :data:`BASELINES` under its ``evaluate.baselines`` name as a builder
``EvaluateConfig -> (images -> images)``; the evaluation reads only the registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from fam.config import EvaluateConfig
from fam.registry import Registry

Transform = Callable[[torch.Tensor], torch.Tensor]  # [B, 3, S, S] -> [B, 3, S, S], both in [-1, 1]

BASELINES: Registry[Callable[[EvaluateConfig], Transform]] = Registry(
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


def _blur(cfg: EvaluateConfig) -> Transform:
    return lambda x: gaussian_blur(x, cfg.blur_sigma)


def _pixelate(cfg: EvaluateConfig) -> Transform:
    return lambda x: pixelate(x, cfg.pixelate_blocks)


BASELINES.register("blur", _blur)
BASELINES.register("pixelate", _pixelate)


def baseline_transform(name: str, cfg: EvaluateConfig) -> Transform:
    """The transform of the baseline ``name`` under these settings."""
    return BASELINES.get(name)(cfg)
