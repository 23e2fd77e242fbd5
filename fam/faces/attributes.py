"""``fam-attr``: an identity-agnostic, differentiable attribute encoder built from what runs here.

The paper's attribute encoder is FaRL (fam.faces.farl loads it for users who have the weights).
Without it, the attribute loss needs features that follow pose, expression, illumination and
background but not who the person is. Each block below is cheap, differentiable with respect
to the image, and has no identity training behind it:

``geometry`` (10)
    MTCNN O-Net's 5 landmarks, regressed on the central face crop of the aligned image. After
    FFHQ alignment the eyes and mouth are nearly fixed, so what moves is what alignment cannot
    remove: the nose against the eyes (yaw, pitch), mouth width and height (expression).
``light`` (3)
    Mean luminance of the face crop and its left-right and top-bottom gradients (the
    direction of the light).
``colour`` (6)
    Per-channel mean and standard deviation of the whole image (white balance, contrast).
``layout`` (48)
    The image averaged to 4x4 cells: a colour layout that only sees large regions.
``background`` (144)
    An 8x8 average of the image with the central face cells left out: background and hair.

Each block is centred and scaled by constants measured on FFHQ-aligned LFW (benchmarks/
bench_attributes.py prints them as ``block_stats``) and divided by the square root of its size,
so every block contributes about equally to a squared distance. The LFW verification accuracy
of these features used as an identity embedding, and their response to rotation, flips and
lighting, are measured by benchmarks/bench_attributes.py (see docs/alignment.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fam.config import ModelSpec
from fam.faces.mtcnn import ONet, load_net

# O-Net's input crop inside an FFHQ-aligned image, as fractions of the side: the mean squared
# MTCNN box found by running the detector on 120 aligned LFW faces (centre 0.5, 0.555; side 0.71).
_ONET_CROP = (0.145, 0.2, 0.855, 0.91)  # x1, y1, x2, y2
# Face region for the lighting block: the O-Net crop without its forehead/chin margins.
_FACE_CROP = (0.25, 0.3, 0.75, 0.85)

# (centre, scale) per block: mean and standard deviation of the raw block values over aligned
# LFW faces at 128 px (bench_attributes.py --stats). Scalars, so the blocks stay comparable.
BLOCK_STATS: dict[str, tuple[float, float]] = {
    "geometry": (0.4806, 0.2291),
    "light": (0.0103, 0.1776),
    "colour": (0.1041, 0.4117),
    "layout": (-0.1689, 0.4587),
    "background": (-0.1759, 0.5044),
}
BLOCK_DIMS = {"geometry": 10, "light": 3, "colour": 6, "layout": 48, "background": 144}


def _crop(images: torch.Tensor, box: tuple[float, float, float, float]) -> torch.Tensor:
    r = images.shape[-1]
    x1, y1, x2, y2 = (round(v * r) for v in box)
    return images[..., y1:y2, x1:x2]


class FamAttributeEncoder(nn.Module):
    """Implements :class:`fam.interfaces.AttributeEncoder` on aligned ``[B, 3, R, R]`` in ``[-1, 1]``."""

    def __init__(self, onet: ONet) -> None:
        super().__init__()
        self.onet = onet
        self.feature_dim = sum(BLOCK_DIMS.values())
        centre = torch.tensor([BLOCK_STATS[k][0] for k in BLOCK_DIMS])
        scale = torch.tensor([BLOCK_STATS[k][1] * math.sqrt(d) for k, d in BLOCK_DIMS.items()])
        sizes = list(BLOCK_DIMS.values())
        self.register_buffer("centre", centre.repeat_interleave(torch.tensor(sizes)), persistent=False)
        self.register_buffer("scale", scale.repeat_interleave(torch.tensor(sizes)), persistent=False)
        ring = torch.ones(8, 8, dtype=torch.bool)
        ring[2:6, 2:6] = False  # the central 4x4 cells hold the face
        self.register_buffer("ring", ring, persistent=False)

    def raw_blocks(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unnormalised blocks, ``name -> [B, dim]`` (for calibration and diagnostics)."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != images.shape[3]:
            raise ValueError(f"expected aligned images [B, 3, R, R], got {tuple(images.shape)}")
        b = images.shape[0]
        # O-Net wants 48x48 in (pixel - 127.5) / 128; [-1, 1] * 127.5 / 128 is the same scale.
        face48 = F.interpolate(_crop(images, _ONET_CROP), size=(48, 48), mode="bilinear", antialias=True)
        _, landmarks, _ = self.onet(face48 * (127.5 / 128.0))

        face = _crop(images, _FACE_CROP)
        luma = 0.299 * face[:, 0] + 0.587 * face[:, 1] + 0.114 * face[:, 2]  # [B, h, w]
        h, w = luma.shape[-2:]
        ys = torch.linspace(-1, 1, h, device=images.device, dtype=images.dtype)[:, None].expand(h, w)
        xs = torch.linspace(-1, 1, w, device=images.device, dtype=images.dtype)[None, :].expand(h, w)
        centred = luma - luma.mean(dim=(1, 2), keepdim=True)
        # Least-squares slopes of luminance along x and y (the coordinate maps are zero-mean).
        gx = (centred * xs).sum(dim=(1, 2)) / (xs * xs).sum()
        gy = (centred * ys).sum(dim=(1, 2)) / (ys * ys).sum()
        light = torch.stack([luma.mean(dim=(1, 2)), gx, gy], dim=1)

        colour = torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], dim=1)
        layout = F.adaptive_avg_pool2d(images, 4).reshape(b, -1)
        background = F.adaptive_avg_pool2d(images, 8)[:, :, self.ring].reshape(b, -1)
        return {
            "geometry": landmarks,
            "light": light,
            "colour": colour,
            "layout": layout,
            "background": background,
        }

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, R, R]`` aligned in ``[-1, 1]`` -> ``[B, feature_dim]``; differentiable."""
        blocks = self.raw_blocks(images)
        raw = torch.cat([blocks[k] for k in BLOCK_DIMS], dim=1)
        return (raw - self.centre) / self.scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)


def build_attribute_encoder(spec: ModelSpec, ctx: object) -> FamAttributeEncoder:
    """Registry builder for ``models.attribute.name: fam-attr`` (no options)."""
    from fam.models.factory import check_options

    check_options(spec, "attribute", {})
    device = getattr(ctx, "device", torch.device("cpu"))
    return FamAttributeEncoder(load_net("onet", device)).to(device).eval().requires_grad_(False)
