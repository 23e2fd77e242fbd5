"""Differentiable crops from FFHQ-aligned faces to each face recognition model's input.

Every FR model was trained on its own face crop: dlib on ``get_face_chip`` (150 px, padding
0.25), ArcFace on insightface's five-point 112 px template, FaceNet on MTCNN boxes at 160 px.
FFHQ-aligned images put the eyes and mouth at fixed relative positions, so each crop is one
fixed affine map from the model's normalised input coordinates to the aligned image's,
applied with ``affine_grid`` + ``grid_sample``: differentiable, batched, resolution-free.

Coordinates are normalised to ``[-1, 1]`` over pixel edges (``align_corners=False``), so a
template serves aligned images of any resolution R.

How the constants were derived (``benchmarks/derive_chip_template.py``, 54 LFW photos with one
face each): dlib's HOG detector + 5-point predictor gave dlib's chip, dlib's 68-point predictor
gave the FFHQ alignment quad (StyleGAN's ``recreate_aligned_images``), and facenet-pytorch's
MTCNN gave its box and five landmarks. Each crop was written in FFHQ-aligned coordinates and
averaged over the photos (std of the entries 0.015-0.08: a fixed template is ~3% off dlib's
own per-face chip in scale, which the descriptor tolerates; see docs/face_models.md). The
ArcFace template is the least-squares similarity from insightface's 112 px points to the
mean MTCNN landmarks (residual 0.03, ~2 px at 112).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Theta = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class CropTemplate:
    name: str
    size: int  # output side in pixels
    # affine_grid theta: output normalised (x, y, 1) -> aligned-image normalised (x, y)
    theta: Theta

    @property
    def scale(self) -> float:
        """Half-width of the crop in aligned normalised units (1.0 = the whole image)."""
        return math.hypot(self.theta[0][0], self.theta[1][0])


DLIB_150 = CropTemplate("dlib", 150, ((0.68762, -0.00847, 0.00544), (0.00847, 0.68762, 0.20559)))
ARCFACE_112 = CropTemplate("arcface", 112, ((0.77271, -0.00584, 0.00583), (0.00584, 0.77271, -0.01128)))
FACENET_160 = CropTemplate("facenet", 160, ((0.5546, -0.0147, -0.0033), (0.01113, 0.7281, 0.10752)))
# faceres: the whole aligned image. Not derived from landmarks but measured: on LFW View 1
# (pairsDevTest) square crops of half-width 0.8-1.0 tie (94.0-94.3%), narrower ones lose (0.6: 91.9%);
# the whole image ties for best and samples nothing outside it (docs/face_models.md).
FACERES_224 = CropTemplate("faceres", 224, ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)))

TEMPLATES: dict[str, CropTemplate] = {t.name: t for t in (DLIB_150, ARCFACE_112, FACENET_160, FACERES_224)}


def crop_to_template(images: torch.Tensor, template: CropTemplate) -> torch.Tensor:
    """Crop aligned faces to a model's input, differentiably.

    images: ``[B, C, R, R]`` FFHQ-aligned, any value range (interpolation is linear).
    Returns ``[B, C, S, S]`` with ``S = template.size``. Where the crop samples more than one
    aligned pixel per output pixel, the image is first resized with antialiasing to the
    resolution the crop needs, so a 1024 px face is not aliased into a 150 px chip.
    Points outside the aligned image take the nearest border value.
    """
    if images.ndim != 4 or images.shape[2] != images.shape[3]:
        raise ValueError(f"expected square images [B, C, R, R], got {tuple(images.shape)}")
    needed = math.ceil(template.size / template.scale)
    if images.shape[-1] > needed:
        images = F.interpolate(
            images, size=(needed, needed), mode="bilinear", antialias=True, align_corners=False
        )
    theta = torch.tensor(template.theta, dtype=images.dtype, device=images.device)
    batch = images.shape[0]
    grid = F.affine_grid(
        theta.expand(batch, 2, 3), [batch, images.shape[1], template.size, template.size], align_corners=False
    )
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
