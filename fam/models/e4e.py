"""e4e (encoder4editing) over IR-SE-50, and the inverter built on it.

The module tree mirrors ``models/encoders/psp_encoders.py`` of the e4e repository
(``input_layer``, ``body.N``, ``styles.N.convs`` / ``styles.N.linear``, ``latlayer1/2``), so the
``encoder.*`` half of an official checkpoint (``e4e_ffhq_encode.pt``) loads strictly; its
``decoder.*`` half is our :mod:`fam.models.stylegan2` generator and ``latent_avg`` the W+ origin.

Forward (256x256 input in ``[-1, 1]``): the IR-SE body gives feature maps at 64 px (c1, 128 ch),
32 px (c2, 256 ch) and 16 px (c3, 512 ch); a feature pyramid adds ``latlayer1(c2)`` and
``latlayer2(c1)`` to upsampled coarser maps. Style block 0 reads c3 and gives the base code
``w0``; blocks 1-2 (coarse) read c3, 3-6 (middle) the 32-px map, 7+ (fine) the 64-px map, and each
adds a delta: ``w_i = w0 + delta_i`` (e4e) or ``w_i = style_i`` (pSp's GradualStyleEncoder).
The number of style blocks is the generator's ``num_ws``, so the same design serves smaller
generators; their width is the generator's ``w_dim``.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F

from fam.errors import ConfigError, InputError
from fam.models.irse import Mode, build_body, build_input_layer, stage_specs
from fam.models.stylegan2 import (
    EqualLinear,
    StyleGAN2Generator,
    generator_from_state_dict,
    generator_state_from_checkpoint,
    prefixed,
    read_checkpoint,
)
from fam.weights import get as weight_entry
from fam.weights import resolve

E4E_WEIGHTS = weight_entry("e4e-ffhq-encode")  # fam/weights_catalog.py

EncoderKind = Literal["e4e", "psp"]
INPUT_SIZE = 256  # the encoder's training resolution; inputs are resized to it
COARSE_END, MIDDLE_END = 3, 7  # style blocks [0, 3) read 16 px, [3, 7) 32 px, the rest 64 px


class GradualStyleBlock(nn.Module):
    """Strided 3x3 convs down to 1x1, then an equalised linear layer: one W vector."""

    def __init__(self, in_c: int, out_c: int, spatial: int) -> None:
        super().__init__()
        self.out_c = out_c
        layers: list[nn.Module] = []
        for i in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(in_c if i == 0 else out_c, out_c, 3, stride=2, padding=1), nn.LeakyReLU()]
        self.convs = nn.Sequential(*layers)
        self.linear = EqualLinear(out_c, out_c, lr_mul=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, in_c, spatial, spatial]`` -> ``[B, out_c]``."""
        return self.linear(self.convs(x).flatten(1))


def _upsample_add(x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=True) + lateral


class Encoder4Editing(nn.Module):
    """e4e / pSp gradual style encoder; ``forward`` returns W+ codes relative to ``latent_avg``."""

    def __init__(
        self,
        num_ws: int = 18,  # style blocks = generator W+ layers
        w_dim: int = 512,  # width of each W vector
        num_layers: int = 50,  # IR-SE depth of the body
        mode: Mode = "ir_se",
        kind: EncoderKind = "e4e",  # e4e: w0 + delta_i; psp: independent styles
    ) -> None:
        super().__init__()
        if kind not in ("e4e", "psp"):
            raise ValueError(f"kind must be 'e4e' or 'psp', got {kind!r}")
        self.num_ws = num_ws
        self.w_dim = w_dim
        self.kind = kind
        self.input_layer = build_input_layer()
        self.body = build_body(num_layers, mode)
        # Feature taps: the last unit of stages 2, 3 and 4 (units 6, 20, 23 for IR-SE-50).
        ends = [n - 1 for n in itertools.accumulate(len(s) for s in stage_specs(num_layers))]
        self.taps = (ends[1], ends[2], ends[3])
        self.styles = nn.ModuleList()
        for i in range(num_ws):
            spatial = 16 if i < COARSE_END else 32 if i < MIDDLE_END else 64
            self.styles.append(GradualStyleBlock(512, w_dim, spatial))
        self.latlayer1 = nn.Conv2d(256, 512, kernel_size=1, stride=1, padding=0)
        self.latlayer2 = nn.Conv2d(128, 512, kernel_size=1, stride=1, padding=0)
        # e4e trains its deltas progressively; at inference every delta is active (stage = num_ws).
        self.progressive_stage = num_ws

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, 3, 256, 256]`` in ``[-1, 1]`` -> ``[B, num_ws, w_dim]`` (add ``latent_avg`` for ws)."""
        if x.ndim != 4 or x.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"encoder expects [B, 3, {INPUT_SIZE}, {INPUT_SIZE}], got {list(x.shape)}")
        x = self.input_layer(x)
        feats: dict[int, torch.Tensor] = {}
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self.taps:
                feats[i] = x
        c1, c2, c3 = (feats[t] for t in self.taps)
        p2 = _upsample_add(c3, self.latlayer1(c2))
        p1 = _upsample_add(p2, self.latlayer2(c1))
        inputs = [c3 if i < COARSE_END else p2 if i < MIDDLE_END else p1 for i in range(self.num_ws)]
        if self.kind == "psp":
            return torch.stack([style(f) for style, f in zip(self.styles, inputs, strict=True)], dim=1)
        w0 = self.styles[0](c3)
        active = min(self.progressive_stage + 1, self.num_ws)
        codes = [w0] + [w0 + self.styles[i](inputs[i]) if i < active else w0 for i in range(1, self.num_ws)]
        return torch.stack(codes, dim=1)


def encoder_from_state_dict(
    sd: dict[str, torch.Tensor], kind: EncoderKind = "e4e", source: str = "state dict"
) -> Encoder4Editing:
    """Build the encoder an official ``encoder.*`` state dict describes and load it strictly."""
    num_ws = len({k.split(".")[1] for k in sd if k.startswith("styles.")})
    units = len({k.split(".")[1] for k in sd if k.startswith("body.")})
    depth = {24: 50, 49: 100, 50: 152}.get(units)
    if num_ws == 0 or depth is None or "styles.0.linear.weight" not in sd:
        raise InputError(
            f"{source}: not an e4e/pSp encoder state dict ({num_ws} style blocks, {units} body units)"
        )
    mode: Mode = "ir_se" if "body.0.res_layer.5.fc1.weight" in sd else "ir"
    encoder = Encoder4Editing(num_ws, sd["styles.0.linear.weight"].shape[0], depth, mode, kind)
    ours = encoder.state_dict()
    missing = sorted(set(ours) - set(sd))
    unexpected = sorted(set(sd) - set(ours))
    wrong = [k for k, v in ours.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or wrong:
        raise InputError(
            f"{source}: encoder does not match the official layout; missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}"
        )
    encoder.load_state_dict(sd, strict=True)
    return encoder.eval()


def latent_avg_plus(latent_avg: torch.Tensor, num_ws: int, w_dim: int, source: str) -> torch.Tensor:
    """``latent_avg`` ``[w_dim]``, ``[1, w_dim]`` or ``[num_ws, w_dim]`` -> ``[num_ws, w_dim]``."""
    la = latent_avg.float()
    if la.shape[-1] != w_dim or la.ndim > 2 or (la.ndim == 2 and la.shape[0] not in (1, num_ws)):
        raise InputError(
            f"{source}: latent_avg has shape {list(la.shape)}; expected [{num_ws}, {w_dim}] or [{w_dim}]"
        )
    return la.reshape(-1, w_dim).expand(num_ws, w_dim).clone()


def load_e4e_checkpoint(
    path: str | Path, sha256: str | None
) -> tuple[StyleGAN2Generator, Encoder4Editing, torch.Tensor]:
    """Verify and read an official e4e/pSp checkpoint.

    Returns ``(generator, encoder, latent_avg [num_ws, w_dim])``; the generator's ``w_avg`` is
    the checkpoint's ``latent_avg``.
    """
    file = resolve(E4E_WEIGHTS.name, path=path, sha256=sha256)
    ckpt = read_checkpoint(file)
    source = str(file)
    if "state_dict" not in ckpt:
        raise InputError(f"{source}: no 'state_dict' entry; not an e4e/pSp checkpoint")
    if ckpt.get("latent_avg") is None:
        raise InputError(f"{source}: no latent_avg; e4e codes are offsets from it, so it is required")
    opts = ckpt.get("opts") or {}
    kind: EncoderKind = "psp" if opts.get("encoder_type") == "GradualStyleEncoder" else "e4e"
    encoder = encoder_from_state_dict(prefixed(ckpt["state_dict"], "encoder"), kind, source)
    decoder_sd, latent_avg = generator_state_from_checkpoint(ckpt, source)
    generator = generator_from_state_dict(
        decoder_sd, latent_avg, source, f"stylegan2-e4e:sha256:{str(sha256).lower()}"
    )
    if (generator.num_ws, generator.w_dim) != (encoder.num_ws, encoder.w_dim):
        raise InputError(
            f"{source}: encoder gives {encoder.num_ws}x{encoder.w_dim} codes but its decoder takes "
            f"{generator.num_ws}x{generator.w_dim}"
        )
    return generator, encoder, latent_avg_plus(ckpt["latent_avg"], encoder.num_ws, encoder.w_dim, source)


class E4EInverter(nn.Module):
    """:class:`fam.interfaces.Inverter`: aligned images at any size -> ``ws [B, num_ws, w_dim]``."""

    def __init__(self, encoder: Encoder4Editing, latent_avg: torch.Tensor, inverter_id: str) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("latent_avg", latent_avg.reshape(encoder.num_ws, encoder.w_dim).clone())
        self.num_ws = encoder.num_ws
        self.w_dim = encoder.w_dim
        self.inverter_id = inverter_id

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, R, R]`` in ``[-1, 1]`` -> ``ws [B, num_ws, w_dim]``; deterministic."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"invert expects images [B, 3, R, R], got {list(images.shape)}")
        if images.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            # Antialiased bilinear resize approximates the PIL resize the encoder was trained with.
            images = F.interpolate(
                images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False
            )
        return self.encoder(images) + self.latent_avg

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.invert(images)


def build_inverter(spec: Any, ctx: Any) -> E4EInverter:
    """``models.inverter`` with ``name: e4e``; options ``checkpoint`` (path) and ``sha256`` (pin)."""
    from fam.models.factory import check_options

    opts = check_options(spec, "inverter", {"checkpoint": None, "sha256": None})
    if opts["checkpoint"] is None:
        raise ConfigError(
            "models.inverter.checkpoint is not set: give the path of e4e_ffhq_encode.pt and its sha256 "
            "(see docs/models.md), or use name: projection"
        )
    _, encoder, latent_avg = load_e4e_checkpoint(opts["checkpoint"], opts["sha256"])
    gen = ctx.generator
    if gen is not None and (gen.num_ws, gen.w_dim) != (encoder.num_ws, encoder.w_dim):
        raise ConfigError(
            f"models.inverter: the e4e checkpoint gives {encoder.num_ws}x{encoder.w_dim} W+ codes but the "
            f"generator takes {gen.num_ws}x{gen.w_dim}; use the generator the encoder was trained for"
        )
    inverter = E4EInverter(encoder, latent_avg, f"e4e:sha256:{str(opts['sha256']).lower()}")
    return inverter.to(ctx.device)
