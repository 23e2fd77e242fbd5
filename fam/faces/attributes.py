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

Each feature is centred by its mean over FFHQ-aligned LFW faces, and each block is divided by its
total standard deviation there (the square root of the summed per-feature variances), so every
block contributes about equally to a squared distance whatever its size. These statistics are the
encoder's only "weights": a small JSON file shipped with the project (``fam/assets/
fam_attr_stats.json``, entry ``fam-attr-stats`` in the weight registry, hash-checked), written by
``benchmarks/bench_attributes.py --write-stats``. The LFW verification accuracy of the features
used as an identity embedding, and their response to rotation, flips and lighting, are measured
by the same benchmark (see docs/alignment.md).
"""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from torch import nn

from fam import weights
from fam.config import ModelSpec
from fam.errors import MissingWeightsError
from fam.faces.mtcnn import ONet, load_net

STATS_ENTRY = weights.get("fam-attr-stats")  # fam/weights_catalog.py

# O-Net's input crop inside an FFHQ-aligned image, as fractions of the side: the mean squared
# MTCNN box found by running the detector on 120 aligned LFW faces (centre 0.5, 0.555; side 0.71).
_ONET_CROP = (0.145, 0.2, 0.855, 0.91)  # x1, y1, x2, y2
# Face region for the lighting block: the O-Net crop without its forehead/chin margins.
_FACE_CROP = (0.25, 0.3, 0.75, 0.85)

BLOCK_DIMS = {"geometry": 10, "light": 3, "colour": 6, "layout": 48, "background": 144}


def _crop(images: torch.Tensor, box: tuple[float, float, float, float]) -> torch.Tensor:
    r = images.shape[-1]
    x1, y1, x2, y2 = (round(v * r) for v in box)
    return images[..., y1:y2, x1:x2]


class AttributeBlocks(nn.Module):
    """The raw, unnormalised blocks: aligned ``[B, 3, R, R]`` in ``[-1, 1]`` -> ``name -> [B, dim]``."""

    def __init__(self, onet: ONet) -> None:
        super().__init__()
        self.onet = onet
        ring = torch.ones(8, 8, dtype=torch.bool)
        ring[2:6, 2:6] = False  # the central 4x4 cells hold the face
        self.register_buffer("ring", ring, persistent=False)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
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


class FamAttributeEncoder(nn.Module):
    """Implements :class:`fam.interfaces.AttributeEncoder` on aligned ``[B, 3, R, R]`` in ``[-1, 1]``."""

    def __init__(self, onet: ONet, stats: dict) -> None:
        super().__init__()
        self.blocks = AttributeBlocks(onet)
        self.feature_dim = sum(BLOCK_DIMS.values())
        mean = torch.tensor(stats["mean"], dtype=torch.float32)
        if mean.shape != (self.feature_dim,) or set(stats["block_scale"]) != set(BLOCK_DIMS):
            raise MissingWeightsError(
                f"{STATS_ENTRY.location}: expected {self.feature_dim} means and scales for blocks "
                f"{', '.join(BLOCK_DIMS)}; {STATS_ENTRY.how_to_get}"
            )
        scale = torch.cat([torch.full((d,), float(stats["block_scale"][k])) for k, d in BLOCK_DIMS.items()])
        self.register_buffer("centre", mean, persistent=False)
        self.register_buffer("scale", scale, persistent=False)

    def raw_blocks(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The unnormalised blocks, ``name -> [B, dim]`` (for calibration and diagnostics)."""
        return self.blocks(images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, R, R]`` aligned in ``[-1, 1]`` -> ``[B, feature_dim]``; differentiable."""
        blocks = self.blocks(images)
        raw = torch.cat([blocks[k] for k in BLOCK_DIMS], dim=1)
        return (raw - self.centre) / self.scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)


def load_stats() -> dict:
    """The shipped, hash-checked feature statistics."""
    return json.loads(weights.resolve(STATS_ENTRY.name).read_text())


def build_attribute_encoder(spec: ModelSpec, ctx: object) -> FamAttributeEncoder:
    """Registry builder for ``models.attribute.name: fam-attr`` (no options)."""
    from fam.models.factory import check_options

    check_options(spec, "attribute", {})
    device = getattr(ctx, "device", torch.device("cpu"))
    encoder = FamAttributeEncoder(load_net("onet", device), load_stats())
    return encoder.to(device).eval().requires_grad_(False)
