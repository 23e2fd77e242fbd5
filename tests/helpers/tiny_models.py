"""Tiny random models behind the engine's interfaces, for fast unit tests only.

``conftest.py`` registers them in the model factory under the name ``tiny`` (``register_tiny_models``);
nothing outside ``tests/`` can select them. ``TINY_SETTINGS`` selects them in ``params.yaml`` terms.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fam.config import ModelSpec
from fam.evaluate.scoring import cosine_similarity
from fam.models import factory
from fam.models.factory import check_options

TINY_SETTINGS: dict[str, Any] = {
    "models": {
        "generator": {"name": "tiny", "resolution": 32},
        "inverter": {"name": "projection", "steps": 3, "lr": 0.05},
        "identity": "tiny",
        "attribute": "tiny",
    },
    "optimise": {"steps": 4, "margin": 0.0},  # the tiny identity model has no impostor calibration
    "groups": {"single_image_views": 3, "max_batch_views": 8},
    "runtime": {"device": "cpu"},
}


def register_tiny_models() -> None:
    """Make ``name: tiny`` buildable for the generator, identity and attribute roles (once per process)."""
    for role in ("generator", "identity", "attribute"):
        factory.register(role, "tiny", f"{__name__}:build_tiny_{role}")


class TinyGenerator(nn.Module):
    """A style-modulated conv generator: every W+ layer changes the output, like StyleGAN2."""

    def __init__(self, resolution: int = 32, w_dim: int = 16, z_dim: int = 16, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.resolution, self.w_dim, self.z_dim = resolution, w_dim, z_dim
        self.num_ws = 2 * int(resolution).bit_length() - 4  # 2*log2(R) - 2
        self.generator_id = f"tiny-generator-r{resolution}-seed{seed}"
        self.map = nn.Sequential(nn.Linear(z_dim, w_dim), nn.LeakyReLU(0.2), nn.Linear(w_dim, w_dim))
        ch = 8
        self.const = nn.Parameter(torch.randn(1, ch, 4, 4))
        self.styles = nn.ModuleList(nn.Linear(w_dim, ch) for _ in range(self.num_ws))
        self.convs = nn.ModuleList(nn.Conv2d(ch, ch, 3, padding=1) for _ in range(self.num_ws))
        self.to_rgb = nn.Conv2d(ch, 3, 1)
        with torch.no_grad():
            self.register_buffer("_w_avg", self.map(torch.randn(2000, z_dim)).mean(0))

    @property
    def w_avg(self) -> torch.Tensor:
        return self._w_avg

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return self.map(z)

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        for i in range(self.num_ws):
            if i in (1, 3, 5, 7, 9) and x.shape[-1] < self.resolution:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            s = self.styles[i](ws[:, i])[:, :, None, None]
            x = F.leaky_relu(self.convs[i](x * (1 + s)), 0.2)
        return torch.tanh(self.to_rgb(x))


class TinyIdentity(nn.Module):
    embedding_dim = 32

    def __init__(self, seed: int = 1) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(64, self.embedding_dim),
        )

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(images), dim=1)


class TinyAttribute(nn.Module):
    feature_dim = 48

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(images, 4).flatten(1)


def build_tiny_generator(spec: ModelSpec, ctx) -> TinyGenerator:
    opts = check_options(spec, "generator", {"resolution": 32, "seed": 0})
    return TinyGenerator(resolution=opts["resolution"], seed=opts["seed"]).to(ctx.device)


def build_tiny_identity(spec: ModelSpec, ctx) -> TinyIdentity:
    return TinyIdentity(**check_options(spec, "identity", {"seed": 1})).to(ctx.device)


def build_tiny_attribute(spec: ModelSpec, ctx) -> TinyAttribute:
    check_options(spec, "attribute", {})
    return TinyAttribute()


class TinyRecognizer:
    """A face recognizer for evaluation tests: a centred 4x4 thumbnail, compared by cosine."""

    name = "tiny"
    embedding_dim = 48

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(images, 4).flatten(1)
        return x - x.mean(1, keepdim=True)

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return cosine_similarity(a, b)
