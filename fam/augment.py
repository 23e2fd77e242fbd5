"""Augmented views for a person with a single image (paper section 3.4.2, N = 5).

The views exist only to give the consistency loss pairs to work with: their outputs are never
released and never overwrite the real image's output. They are a pure function of the image
content and ``groups.augment.seed`` (no hidden randomness), so a re-run reproduces them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

from fam.config import AugmentConfig


def view_seed(image: torch.Tensor, seed: int) -> int:
    """A seed derived from the image's bytes and the configured seed."""
    digest = hashlib.sha256(image.detach().cpu().numpy().tobytes() + seed.to_bytes(8, "little")).digest()
    return int.from_bytes(digest[:8], "little")


def augmented_views(image: torch.Tensor, n: int, cfg: AugmentConfig) -> torch.Tensor:
    """``image [3, R, R]`` in [-1, 1] -> ``[n, 3, R, R]``: flip, rotation, colour jitter, crop."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected one image [3, R, R], got {tuple(image.shape)}")
    rng = np.random.default_rng(view_seed(image, cfg.seed))
    size = list(image.shape[-2:])
    x01 = ((image.detach().float() + 1) / 2).clamp(0, 1)
    views = []
    for _ in range(n):  # n is 5: a per-view loop at preparation time, not in the hot path
        v = x01
        if cfg.flip and rng.random() < 0.5:
            v = TF.horizontal_flip(v)
        angle = float(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
        v = TF.rotate(v, angle, interpolation=TF.InterpolationMode.BILINEAR)
        v = TF.adjust_brightness(v, float(rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)))
        v = TF.adjust_contrast(v, float(rng.uniform(1 - cfg.contrast, 1 + cfg.contrast)))
        v = TF.adjust_saturation(v, float(rng.uniform(1 - cfg.saturation, 1 + cfg.saturation)))
        v = TF.adjust_hue(v, float(rng.uniform(-cfg.hue, cfg.hue)))
        scale = float(rng.uniform(cfg.crop_min, cfg.crop_max))
        ch, cw = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
        top = int(rng.integers(0, size[0] - ch + 1))
        left = int(rng.integers(0, size[1] - cw + 1))
        v = TF.resized_crop(v, top, left, ch, cw, size, antialias=True)
        views.append(v.clamp(0, 1))
    return torch.stack(views) * 2 - 1
