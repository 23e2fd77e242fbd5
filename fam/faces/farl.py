"""FaRL (Zheng et al., CVPR 2022) as the attribute encoder: the paper's choice, for users who have it.

FaRL's released checkpoints (e.g. ``FaRL-Base-Patch16-LAIONFace20M-ep64.pth``) are CLIP ViT-B/16
models: a dict whose ``state_dict`` holds the CLIP state dict, the image tower under ``visual.``
and the text tower beside it. We build OpenAI CLIP's ``VisionTransformer`` layout (patch-16
conv without bias, class token, 197 positions, ``ln_pre``, 12 residual attention blocks with
QuickGELU MLPs, ``ln_post``, a 768 -> 512 projection) and load the ``visual.`` keys strictly:
a missing, unexpected or mis-shaped key is an error, never a silently random layer. The text
tower is ignored. No weights ship here (docs/reference.md): the user gives the path and pins
its sha256 in ``params.yaml``::

    models:
      attribute:
        name: farl
        checkpoint: /models/FaRL-Base-Patch16-LAIONFace20M-ep64.pth
        sha256: <sha256sum of that file>
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fam import weights
from fam.config import ModelSpec
from fam.errors import MissingWeightsError

FARL_ENTRY = weights.get("farl-ep64")  # fam/weights_catalog.py

# CLIP's input normalisation (FaRL uses the same).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [
                    ("c_fc", nn.Linear(width, width * 4)),
                    ("gelu", QuickGELU()),
                    ("c_proj", nn.Linear(width * 4, width)),
                ]
            )
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [L, B, width]`` (sequence first, as nn.MultiheadAttention's default)."""
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.Sequential(*[ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    """OpenAI CLIP's image tower; ViT-B/16 defaults (the FaRL-B models)."""

    def __init__(
        self,
        input_resolution: int = 224,
        patch_size: int = 16,
        width: int = 768,
        layers: int = 12,
        heads: int = 12,
        output_dim: int = 512,
    ) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.output_dim = output_dim
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(width))
        self.positional_embedding = nn.Parameter(
            torch.zeros((input_resolution // patch_size) ** 2 + 1, width)
        )
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.zeros(width, output_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, 3, 224, 224]`` CLIP-normalised -> ``[B, output_dim]`` (the class token, projected)."""
        x = self.conv1(x).flatten(2).transpose(1, 2)  # [B, 196, width]
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x).permute(1, 0, 2)  # [L, B, width]
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


def visual_state_dict(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The ``visual.`` part of a FaRL / CLIP checkpoint, prefix removed."""
    state = checkpoint.get("state_dict", checkpoint)
    if not isinstance(state, dict):
        raise MissingWeightsError("FaRL checkpoint: expected a dict with a 'state_dict' mapping of tensors")
    visual = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
    if not visual:
        sample = ", ".join(list(state)[:5])
        raise MissingWeightsError(
            f"FaRL checkpoint has no 'visual.' keys (first keys: {sample}); expected a CLIP-format state dict"
        )
    return visual


def load_farl_visual(path: str | Path, sha256: str | None) -> VisionTransformer:
    """A strictly loaded ViT-B/16 image tower from a hash-checked FaRL checkpoint."""
    file = weights.resolve(FARL_ENTRY.name, path=path, sha256=sha256)
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors come in many types
        raise MissingWeightsError(f"{file} cannot be read as a FaRL/CLIP checkpoint: {exc}") from exc
    model = VisionTransformer()
    try:
        model.load_state_dict(visual_state_dict(checkpoint), strict=True)
    except RuntimeError as exc:
        raise MissingWeightsError(f"{file} is not a CLIP ViT-B/16 (FaRL-B) checkpoint: {exc}") from exc
    return model.eval()


class FarlAttributeEncoder(nn.Module):
    """:class:`fam.interfaces.AttributeEncoder` over FaRL: aligned ``[-1, 1]`` -> 512-D features."""

    def __init__(self, visual: VisionTransformer) -> None:
        super().__init__()
        self.visual = visual
        self.feature_dim = visual.output_dim
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, R, R]`` in ``[-1, 1]`` -> ``[B, 512]`` (not normalised); differentiable."""
        r = self.visual.input_resolution
        x = F.interpolate(images, size=(r, r), mode="bilinear", align_corners=False, antialias=True)
        x = ((x + 1) / 2 - self.mean) / self.std
        return self.visual(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)


def build_farl_encoder(spec: ModelSpec, ctx: object) -> FarlAttributeEncoder:
    """Registry builder for ``models.attribute.name: farl`` (options ``checkpoint``, ``sha256``)."""
    from fam.models.factory import check_options

    options = check_options(spec, "attribute", {"checkpoint": None, "sha256": None})
    if options["checkpoint"] is None:
        raise MissingWeightsError(f"models.attribute.checkpoint is not set; {FARL_ENTRY.how_to_get}")
    device = getattr(ctx, "device", torch.device("cpu"))
    return FarlAttributeEncoder(load_farl_visual(options["checkpoint"], options["sha256"])).to(device)
