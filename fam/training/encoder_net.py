"""A compact e4e-style encoder into a small StyleGAN2's W+, and the inverter built on it.

The paper's e4e (IR-SE-50 at 256 px, ~45M parameters) is oversized for a 64 px prior, and
no trained copy exists here, so this is a small residual pyramid of our own with e4e's output
structure: a base code ``w0`` from the coarsest features plus a per-layer delta, coarse layers
(those driving 4-8 px) read the coarsest map, middle ones (16-32 px) the next, fine ones the
finest, exactly the split e4e uses at 1024 px. Codes are offsets from the prior's ``w_avg``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fam.config import ModelSpec
from fam.errors import ConfigError, InputError
from fam.io_utils import sha256_file

KIND = "fam-encoder-v1"
COARSE_END, MIDDLE_END = 3, 7  # W+ layers [0, 3) coarse, [3, 7) middle, rest fine (e4e's split)
HEAD_CH = 64  # features per position fed to the linear heads


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 3, padding=1)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, 0.2)), 0.2))
        return (y + self.skip(x)) / math.sqrt(2.0)


class LevelHead(nn.Module):
    """Feature map ``[B, C, s, s]`` -> ``[B, n, w_dim]`` (n W vectors) via 4x4 pooling + linear."""

    def __init__(self, in_ch: int, n: int, w_dim: int) -> None:
        super().__init__()
        self.n, self.w_dim = n, w_dim
        self.reduce = nn.Conv2d(in_ch, HEAD_CH, 1)
        self.linear = nn.Linear(HEAD_CH * 16, n * w_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(F.leaky_relu(self.reduce(x), 0.2), 4)
        return self.linear(x.flatten(1)).view(-1, self.n, self.w_dim)


class CompactEncoder(nn.Module):
    def __init__(
        self,
        resolution: int,  # input side R (the prior's resolution), power of two >= 32
        num_ws: int,  # W+ layers of the prior
        w_dim: int,
        channels: tuple[int, ...] = (64, 128, 256, 256, 256),  # widths at R, R/2, R/4, R/8, R/16
    ) -> None:
        super().__init__()
        if len(channels) != 5 or resolution < 32:
            raise ValueError("CompactEncoder needs 5 widths (R .. R/16) and resolution >= 32")
        self.resolution, self.num_ws, self.w_dim, self.channels = resolution, num_ws, w_dim, tuple(channels)
        self.stem = nn.Conv2d(3, channels[0], 3, padding=1)
        self.blocks = nn.ModuleList(ResBlock(channels[i], channels[i + 1]) for i in range(4))
        n_coarse = min(COARSE_END, num_ws)
        n_middle = max(min(MIDDLE_END, num_ws) - n_coarse, 0)
        n_fine = num_ws - n_coarse - n_middle
        self.split = (n_coarse, n_middle, n_fine)
        self.base = LevelHead(channels[4], 1, w_dim)
        self.heads = nn.ModuleList(
            [
                LevelHead(channels[4], n_coarse, w_dim),
                LevelHead(channels[3], n_middle, w_dim),
                LevelHead(channels[2], n_fine, w_dim),
            ]
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, 3, R, R]`` in [-1, 1] -> (codes ``[B, num_ws, w_dim]`` relative to w_avg, deltas)."""
        if images.ndim != 4 or images.shape[1:] != (3, self.resolution, self.resolution):
            raise ValueError(
                f"encoder expects [B, 3, {self.resolution}, {self.resolution}], got {list(images.shape)}"
            )
        x = self.stem(images)
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)  # R/2, R/4, R/8, R/16
        w0 = self.base(feats[3])  # [B, 1, w_dim]
        deltas = torch.cat(
            [
                h(f)
                for h, f, n in zip(self.heads, (feats[3], feats[2], feats[1]), self.split, strict=True)
                if n > 0
            ],
            dim=1,
        )
        deltas = torch.cat([torch.zeros_like(deltas[:, :1]), deltas[:, 1:]], dim=1)  # layer 0 is w0 itself
        return w0 + deltas, deltas


def encoder_checkpoint(encoder: CompactEncoder, w_avg: torch.Tensor, prior_sha256: str) -> dict[str, Any]:
    return {
        "kind": KIND,
        "arch": {
            "resolution": encoder.resolution,
            "num_ws": encoder.num_ws,
            "w_dim": encoder.w_dim,
            "channels": list(encoder.channels),
        },
        "encoder": {k: v.detach().cpu().clone() for k, v in encoder.state_dict().items()},
        "w_avg": w_avg.detach().cpu().float().clone(),
        "prior_sha256": prior_sha256,
    }


def encoder_from_checkpoint(ckpt: dict[str, Any], source: str) -> tuple[CompactEncoder, torch.Tensor, str]:
    if ckpt.get("kind") != KIND:
        raise InputError(f"{source}: not a fam encoder checkpoint ({ckpt.get('kind')!r})")
    a = ckpt["arch"]
    enc = CompactEncoder(int(a["resolution"]), int(a["num_ws"]), int(a["w_dim"]), tuple(a["channels"]))
    enc.load_state_dict({k: v.float() for k, v in ckpt["encoder"].items()}, strict=True)
    return enc.eval(), ckpt["w_avg"].float(), str(ckpt["prior_sha256"])


class EncoderInverter(nn.Module):
    """:class:`fam.interfaces.Inverter`: encoder, then optionally a few Adam steps on the latent."""

    def __init__(
        self,
        encoder: CompactEncoder,
        w_avg: torch.Tensor,  # [w_dim]
        inverter_id: str,
        generator: Any = None,  # needed when refine_steps > 0
        identity: Any = None,  # IdentityEncoder for the refinement's identity term, or None
        refine_steps: int = 0,
        refine_lr: float = 0.01,
        identity_weight: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("w_avg", w_avg.reshape(1, 1, -1).clone())
        self.inverter_id = inverter_id
        self.generator, self.identity = generator, identity
        self.refine_steps, self.refine_lr, self.identity_weight = refine_steps, refine_lr, identity_weight

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, R, R]`` in [-1, 1] -> ``ws [B, num_ws, w_dim]``; deterministic."""
        r = self.encoder.resolution
        if images.shape[-1] != r:
            images = F.interpolate(images, size=(r, r), mode="bilinear", antialias=True, align_corners=False)
        with torch.no_grad():
            ws = self.encoder(images)[0] + self.w_avg
        if self.refine_steps > 0:
            ws = self._refine(images, ws)
        return ws

    def _refine(self, images: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        ws = ws.detach().clone().requires_grad_(True)
        opt = torch.optim.Adam([ws], lr=self.refine_lr)
        target_id = self.identity.embed(images).detach() if self.identity is not None else None
        with torch.enable_grad():
            for _ in range(self.refine_steps):
                rec = self.generator.synthesis(ws)
                loss = F.mse_loss(rec, images, reduction="none").mean(dim=(1, 2, 3)).sum()
                if target_id is not None:
                    loss = (
                        loss
                        + self.identity_weight * (1 - (self.identity.embed(rec) * target_id).sum(1)).sum()
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return ws.detach()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.invert(images)


def build_inverter(spec: ModelSpec, ctx: Any) -> EncoderInverter:
    """``models.inverter`` with ``name: fam-encoder``.

    Options: ``checkpoint`` (path, required), ``sha256`` (pin, required), ``refine_steps`` (Adam
    steps on the latent after the encoder, default 0), ``refine_lr``, ``identity`` (identity model
    name for the refinement's identity term, or null), ``identity_weight``.
    """
    from fam.models import factory

    opts = factory.check_options(
        spec,
        "inverter",
        {
            "checkpoint": None,
            "sha256": None,
            "refine_steps": 0,
            "refine_lr": 0.01,
            "identity": None,
            "identity_weight": 0.1,
        },
    )
    if opts["checkpoint"] is None or opts["sha256"] is None:
        raise ConfigError(
            "models.inverter (fam-encoder) needs checkpoint: PATH and sha256: HEX (sha256sum PATH)"
        )
    path = Path(opts["checkpoint"]).expanduser()
    if not path.is_file():
        raise InputError(
            f"models.inverter.checkpoint {path} does not exist; train it with `fam train-encoder`"
        )
    actual = sha256_file(path)
    if actual != str(opts["sha256"]).lower():
        raise InputError(
            f"{path} has sha256 {actual[:16]}..., models.inverter.sha256 pins {str(opts['sha256'])[:16]}..."
        )
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    encoder, w_avg, prior_sha = encoder_from_checkpoint(ckpt, str(path))
    gen = ctx.generator
    if gen is None:
        raise ConfigError(
            "the fam-encoder inverter needs the generator it was trained for (BuildContext.generator)"
        )
    if (gen.num_ws, gen.w_dim, gen.resolution) != (encoder.num_ws, encoder.w_dim, encoder.resolution):
        raise ConfigError(
            f"models.inverter: the encoder gives {encoder.num_ws}x{encoder.w_dim} codes at "
            f"{encoder.resolution} px; "
            f"the generator takes {gen.num_ws}x{gen.w_dim} at {gen.resolution} px"
        )
    if prior_sha not in getattr(gen, "generator_id", ""):
        raise ConfigError(
            f"models.inverter: the encoder was trained for the prior with sha256 {prior_sha[:16]}..., "
            "but the "
            f"generator is {gen.generator_id}; use that prior file"
        )
    identity = None
    if int(opts["refine_steps"]) > 0 and opts["identity"] is not None:
        identity = factory.build(
            "identity", ModelSpec(str(opts["identity"])), factory.BuildContext(ctx.device)
        )
    inv = EncoderInverter(
        encoder,
        w_avg,
        f"fam-encoder:sha256:{actual}",
        gen,
        identity,
        int(opts["refine_steps"]),
        float(opts["refine_lr"]),
        float(opts["identity_weight"]),
    )
    return inv.to(ctx.device)
