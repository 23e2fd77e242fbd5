"""A StyleGAN2 generator (config-f architecture) in plain PyTorch, for the Generator protocol.

The module tree mirrors rosinality's ``stylegan2-pytorch`` ``Generator`` name for name
(``style.N``, ``input.input``, ``conv1``, ``to_rgb1``, ``convs.N``, ``to_rgbs.N``,
``noises.noise_N`` and the FIR ``kernel`` buffers), so the converted official FFHQ file and the
decoder inside an e4e checkpoint load with ``strict=True``. The code is ours: the resampling and
activation ops are pure PyTorch (no custom CUDA), modulated convolutions are one grouped
convolution per layer, and the per-layer noise images are fixed buffers, so ``synthesis`` is a
deterministic function of ``ws``.

W+ indexing (rosinality's): ``ws[:, 0]`` drives ``conv1`` (4 px), ``ws[:, 1]`` ``to_rgb1``; then
for each resolution ``2**k`` (k = 3..log2 R) the pair of convolutions takes ``ws[:, i]``,
``ws[:, i + 1]`` and its ToRGB ``ws[:, i + 2]`` with ``i = 2k - 5``. ``num_ws = 2 log2(R) - 2``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from fam.errors import ConfigError, InputError
from fam.layers import LayerGroups
from fam.weights import WEIGHTS, resolve
from fam.weights import get as weight_entry
from fam.weights_catalog import read_model_card

BLUR_KERNEL = (1, 3, 3, 1)
SQRT2 = math.sqrt(2.0)

GENERATOR_WEIGHTS = weight_entry("stylegan2-ffhq-config-f")  # fam/weights_catalog.py


# --------------------------------------------------------------------------------------------
# Ops, pure PyTorch.


def upfirdn2d(
    x: torch.Tensor,  # [B, C, H, W]
    kernel: torch.Tensor,  # [kh, kw] FIR filter (applied as a true convolution, i.e. flipped)
    up: int = 1,  # zero-insertion upsampling factor
    down: int = 1,  # subsampling factor after filtering
    pad: tuple[int, int] = (0, 0),  # (before, after) padding of both spatial axes; negative crops
) -> torch.Tensor:
    """Upsample, pad, FIR-filter, downsample; the reference semantics of StyleGAN2's op."""
    batch, channels, height, width = x.shape
    if up > 1:
        x = x.reshape(batch, channels, height, 1, width, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(batch, channels, height * up, width * up)
    p0, p1 = pad
    x = F.pad(x, [max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)])
    if p0 < 0 or p1 < 0:
        h, w = x.shape[-2:]
        x = x[:, :, max(-p0, 0) : h - max(-p1, 0), max(-p0, 0) : w - max(-p1, 0)]
    weight = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].expand(channels, 1, *kernel.shape)
    x = F.conv2d(x, weight, groups=channels)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def fused_leaky_relu(
    x: torch.Tensor,  # [B, C, ...]
    bias: torch.Tensor,  # [C]
    negative_slope: float = 0.2,
    scale: float = SQRT2,  # keeps the activation's second moment at 1 (He gain)
) -> torch.Tensor:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    # In x's dtype: under bf16 autocast a float32 bias would promote every activation to float32
    # and the next convolution would cast it back (two extra passes over the largest tensors).
    return F.leaky_relu(x + bias.view(shape).to(x.dtype), negative_slope) * scale


def make_fir_kernel(taps: tuple[int, ...] = BLUR_KERNEL, gain: float = 1.0) -> torch.Tensor:
    """Separable 2-D FIR kernel from 1-D taps, normalised to sum ``gain``."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum() * gain


# --------------------------------------------------------------------------------------------
# Layers. Parameters are created empty and filled by ``reset_parameters(rng)`` so that random
# initialisation is a function of an explicit seed.


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights stored N(0, 1/lr_mul^2), scaled at run time."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,  # 0.01 in the mapping network
        activation: bool = False,  # fused bias + leaky ReLU * sqrt(2)
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_dim, in_dim))
        self.bias = nn.Parameter(torch.empty(out_dim))
        self.bias_init = bias_init
        self.lr_mul = lr_mul
        self.scale = lr_mul / math.sqrt(in_dim)
        self.activation = activation

    def reset_parameters(self, rng: torch.Generator) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.randn(self.weight.shape, generator=rng) / self.lr_mul)
            self.bias.fill_(self.bias_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class FIRFilter(nn.Module):
    """A fixed FIR filter held in the ``kernel`` buffer (official name), applied by upfirdn2d."""

    def __init__(self, pad: tuple[int, int], up: int = 1, gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", make_fir_kernel(BLUR_KERNEL, gain))
        self.pad = pad
        self.up = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.up, pad=self.pad)


MODCONV_PATHS = ("fused", "split")


class ModulatedConv2d(nn.Module):
    """Style-modulated convolution (StyleGAN2 fig. 2c) with two equivalent ways to run it.

    ``fused`` (the original): per-sample weights ``[B, out, in, k, k]`` scaled by the style and
    demodulated, then one grouped convolution with ``groups = B``. ``split``: the input activations
    are scaled by the style, one shared-weight convolution serves the whole batch, and the output
    is multiplied by the demodulation coefficients, computed as ``s^2 @ sum_k(w^2)^T`` without
    materialising per-sample weights. They agree to float rounding (StyleGAN2 sec. 2.2 notes the
    equivalence); ``split`` turns the grouped convolution into a dense one, which CPU kernels run
    several times faster. :func:`set_modconv_path` switches every layer of a network.
    """

    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,  # 2x: transposed conv (stride 2) followed by the blur filter
    ) -> None:
        super().__init__()
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.kernel_size = kernel_size
        self.demodulate = demodulate
        self.upsample = upsample
        self.path = "fused"  # one of MODCONV_PATHS; not part of the state dict
        if upsample:
            # Transposed 3x3/2 conv gives 2H+1; padding (1, 1) then the 4-tap filter gives 2H.
            p = (len(BLUR_KERNEL) - 2) - (kernel_size - 1)
            self.blur = FIRFilter(pad=((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)
        self.scale = 1.0 / math.sqrt(in_channel * kernel_size**2)
        self.weight = nn.Parameter(torch.empty(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1.0)

    def reset_parameters(self, rng: torch.Generator) -> None:
        with torch.no_grad():
            self.weight.copy_(torch.randn(self.weight.shape, generator=rng))

    def forward(
        self,
        x: torch.Tensor,  # [B, in_channel, H, W]
        style: torch.Tensor,  # [B, style_dim], one W vector
    ) -> torch.Tensor:
        s = self.modulation(style)  # [B, in]
        if self.path == "split":
            return self._forward_split(x, s)
        return self._forward_fused(x, s)

    def _forward_fused(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        batch, in_ch, height, width = x.shape
        k = self.kernel_size
        weight = self.weight * self.scale * s.view(batch, 1, in_ch, 1, 1)  # [B, out, in, k, k]
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4)) + 1e-8)
            weight = weight * demod.view(batch, self.out_channel, 1, 1, 1)
        x = x.reshape(1, batch * in_ch, height, width)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(batch * in_ch, self.out_channel, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, padding=0, groups=batch)
            out = out.view(batch, self.out_channel, *out.shape[-2:])
            return self.blur(out)
        weight = weight.reshape(batch * self.out_channel, in_ch, k, k)
        out = F.conv2d(x, weight, padding=k // 2, groups=batch)
        return out.view(batch, self.out_channel, height, width)

    def _forward_split(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        weight = self.weight[0] * self.scale  # [out, in, k, k], shared by the batch
        x = x * s.to(x.dtype)[:, :, None, None]
        if self.upsample:
            out = self.blur(F.conv_transpose2d(x, weight.transpose(0, 1).to(x.dtype), stride=2))
        else:
            out = F.conv2d(x, weight.to(x.dtype), padding=self.kernel_size // 2)
        if self.demodulate:
            # sum_{i,kh,kw} (w s_i)^2 = s^2 @ (sum_{kh,kw} w^2)^T, in float32 whatever the autocast.
            energy = s.float().square() @ weight.float().square().sum(dim=(2, 3)).t()  # [B, out]
            out = out * torch.rsqrt(energy + 1e-8).to(out.dtype)[:, :, None, None]
        return out


def set_modconv_path(module: nn.Module, path: str) -> nn.Module:
    """Run every :class:`ModulatedConv2d` inside ``module`` the ``fused`` or ``split`` way."""
    if path not in MODCONV_PATHS:
        raise ConfigError(
            f"modulated convolution path {path!r} is unknown; valid: {', '.join(MODCONV_PATHS)}"
        )
    for layer in module.modules():
        if isinstance(layer, ModulatedConv2d):
            layer.path = path
    return module


class NoiseStrength(nn.Module):
    """Learned per-layer scale of the noise image (official name ``noise.weight``): the fixed
    buffer at inference, fresh per-sample noise in training."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def reset_parameters(self, rng: torch.Generator) -> None:
        with torch.no_grad():
            self.weight.zero_()

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return x + (self.weight * noise).to(x.dtype)


class BiasLeakyReLU(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def reset_parameters(self, rng: torch.Generator) -> None:
        with torch.no_grad():
            self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fused_leaky_relu(x, self.bias)


class StyledConv(nn.Module):
    def __init__(self, in_channel: int, out_channel: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, 3, style_dim, upsample=upsample)
        self.noise = NoiseStrength()
        self.activate = BiasLeakyReLU(out_channel)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    """1x1 modulated conv (no demodulation) to RGB, added to the upsampled running image."""

    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            # Zero-insertion 2x then the 4-tap filter with gain 4 (pads (2, 1) keep 2H).
            self.upsample = FIRFilter(pad=(2, 1), up=2, gain=4.0)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def reset_parameters(self, rng: torch.Generator) -> None:
        with torch.no_grad():
            self.bias.zero_()

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.empty(1, channels, size, size))

    def reset_parameters(self, rng: torch.Generator) -> None:
        with torch.no_grad():
            self.input.copy_(torch.randn(self.input.shape, generator=rng))


# --------------------------------------------------------------------------------------------
# The generator.


def multiplier_channels(channel_multiplier: int) -> dict[int, int]:
    """rosinality's channel widths per resolution (config-f: ``channel_multiplier=2``)."""
    return {
        4: 512,
        8: 512,
        16: 512,
        32: 512,
        64: 256 * channel_multiplier,
        128: 128 * channel_multiplier,
        256: 64 * channel_multiplier,
        512: 32 * channel_multiplier,
        1024: 16 * channel_multiplier,
    }


@dataclass(frozen=True)
class StyleGAN2Config:
    resolution: int  # output side, a power of two in 32..1024
    channels: tuple[tuple[int, int], ...]  # (resolution, channels) for 4..resolution
    style_dim: int = 512  # z_dim == w_dim
    n_mlp: int = 8  # mapping layers
    lr_mlp: float = 0.01

    def __post_init__(self) -> None:
        r = self.resolution
        if r < 32 or r > 1024 or r & (r - 1):
            raise ConfigError(f"StyleGAN2 resolution must be a power of two in 32..1024, got {r}")
        needed = [2**k for k in range(2, int(math.log2(r)) + 1)]
        have = dict(self.channels)
        missing = [n for n in needed if n not in have]
        if missing:
            raise ConfigError(f"StyleGAN2 channels has no width for resolution(s) {missing}; need {needed}")
        if any(have[n] < 1 for n in needed):
            raise ConfigError(f"StyleGAN2 channel widths must be positive, got {have}")
        object.__setattr__(self, "channels", tuple((n, int(have[n])) for n in needed))

    @classmethod
    def make(
        cls,
        resolution: int,
        channels: Mapping[int, int] | None = None,  # explicit widths, or None for the multiplier scheme
        channel_multiplier: int = 2,
        style_dim: int = 512,
        n_mlp: int = 8,
    ) -> StyleGAN2Config:
        widths = {int(k): int(v) for k, v in (channels or multiplier_channels(channel_multiplier)).items()}
        return cls(resolution, tuple(sorted(widths.items())), style_dim, n_mlp)

    @property
    def num_ws(self) -> int:
        return 2 * int(math.log2(self.resolution)) - 2

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def seeded_noise(resolution: int, seed: int) -> list[torch.Tensor]:
    """The fixed per-layer noise images ``[1, 1, r, r]`` (layer i at ``r = 2**((i + 5) // 2)``)."""
    rng = torch.Generator().manual_seed(seed)
    num_layers = (int(math.log2(resolution)) - 2) * 2 + 1
    sides = [2 ** ((i + 5) // 2) for i in range(num_layers)]
    return [torch.randn(1, 1, side, side, generator=rng) for side in sides]


class StyleGAN2Generator(nn.Module):
    """StyleGAN2 generator implementing :class:`fam.interfaces.Generator`.

    Built with empty parameters; use :func:`random_generator` or the loaders below, which
    fill the weights, the noise buffers, ``w_avg`` and ``generator_id``.
    """

    def __init__(self, config: StyleGAN2Config) -> None:
        super().__init__()
        self.config = config
        ch = dict(config.channels)
        self.resolution = config.resolution
        self.z_dim = self.w_dim = config.style_dim
        self.num_ws = config.num_ws
        self.generator_id = f"stylegan2-uninitialised:{config.digest()}"
        self.style = nn.Sequential(
            PixelNorm(),
            *[
                EqualLinear(config.style_dim, config.style_dim, lr_mul=config.lr_mlp, activation=True)
                for _ in range(config.n_mlp)
            ],
        )
        self.input = ConstantInput(ch[4])
        self.conv1 = StyledConv(ch[4], ch[4], config.style_dim)
        self.to_rgb1 = ToRGB(ch[4], config.style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_ch = ch[4]
        for k in range(3, int(math.log2(config.resolution)) + 1):
            out_ch = ch[2**k]
            self.convs.append(StyledConv(in_ch, out_ch, config.style_dim, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, config.style_dim))
            self.to_rgbs.append(ToRGB(out_ch, config.style_dim))
            in_ch = out_ch
        self.noises = nn.Module()
        for i, noise in enumerate(seeded_noise(config.resolution, 0)):
            self.noises.register_buffer(f"noise_{i}", noise)
        # Not part of the official state dict: it comes from the file's latent_avg or is estimated.
        self.register_buffer("latent_avg", torch.zeros(config.style_dim), persistent=False)
        # Where this generator holds identity, as measured for a shipped prior (its model card);
        # None: `layers: auto` follows the resolution rule of fam.layers.
        self.layer_groups: LayerGroups | None = None

    @property
    def w_avg(self) -> torch.Tensor:
        """Truncation centre ``[w_dim]``."""
        return self.latent_avg

    def noise_buffers(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise_{i}") for i in range(2 * len(self.to_rgbs) + 1)]

    def noise_shapes(self, batch: int) -> list[tuple[int, ...]]:
        """Shapes of per-sample noise for :meth:`synthesis`: ``(batch, 1, r, r)`` per layer."""
        return [(batch, *b.shape[1:]) for b in self.noise_buffers()]

    def set_noise(self, noises: list[torch.Tensor]) -> None:
        current = self.noise_buffers()
        if [n.shape for n in noises] != [c.shape for c in current]:
            raise ValueError("noise images do not match this generator's layers")
        with torch.no_grad():
            for dst, src in zip(current, noises, strict=True):
                dst.copy_(src)

    def reset_parameters(self, seed: int) -> None:
        """Random initialisation as in training from scratch, a pure function of ``seed``."""
        rng = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters(rng)

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, z_dim]`` -> ``w [B, w_dim]``; no truncation."""
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"mapping expects z [B, {self.z_dim}], got {list(z.shape)}")
        return self.style(z)

    def synthesis(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``ws [B, num_ws, w_dim]`` -> ``[B, 3, R, R]``, roughly in ``[-1, 1]``.

        Deterministic with the fixed noise buffers (the default, what every user of a generator
        gets); ``noise`` (per layer ``[B or 1, 1, r, r]``, :meth:`noise_shapes`) replaces them, as
        training must: a generator trained on one fixed noise image learns to draw its content
        from that image, the same for every latent.
        """
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"synthesis expects ws [B, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        if noise is None:
            noise = self.noise_buffers()
        elif [tuple(n.shape[1:]) for n in noise] != [tuple(b.shape[1:]) for b in self.noise_buffers()]:
            raise ValueError("noise images do not match this generator's layers")
        x = self.input.input.expand(ws.shape[0], -1, -1, -1)
        x = self.conv1(x, ws[:, 0], noise[0])
        skip = self.to_rgb1(x, ws[:, 1])
        i = 1
        for level, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * level](x, ws[:, i], noise[2 * level + 1])
            x = self.convs[2 * level + 1](x, ws[:, i + 1], noise[2 * level + 2])
            skip = to_rgb(x, ws[:, i + 2], skip)
            i += 2
        return skip

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.synthesis(ws)

    @torch.no_grad()
    def estimate_w_avg(self, samples: int = 4096, seed: int = 0, chunk: int = 1024) -> torch.Tensor:
        """Mean of ``mapping(z)`` over ``samples`` seeded draws (when no file provides it)."""
        rng = torch.Generator().manual_seed(seed)
        total = torch.zeros(self.w_dim, dtype=torch.float64)
        device = self.latent_avg.device
        for start in range(0, samples, chunk):
            z = torch.randn(min(chunk, samples - start), self.z_dim, generator=rng).to(device)
            total += self.mapping(z).double().sum(0).cpu()
        return (total / samples).float()


# --------------------------------------------------------------------------------------------
# Construction and loading.


def random_generator(config: StyleGAN2Config, seed: int, noise_seed: int | None = None) -> StyleGAN2Generator:
    """Randomly initialised generator; only ever built on an explicit ``weights: random``."""
    gen = StyleGAN2Generator(config)
    gen.reset_parameters(seed)
    noise_seed = seed if noise_seed is None else noise_seed
    gen.set_noise(seeded_noise(config.resolution, noise_seed))
    gen.latent_avg.copy_(gen.estimate_w_avg(seed=seed))
    gen.generator_id = f"stylegan2-random:{config.digest()}:seed{seed}:noise{noise_seed}"
    return gen.eval()


def config_from_state_dict(sd: Mapping[str, torch.Tensor], source: str = "state dict") -> StyleGAN2Config:
    """Read resolution, widths, style size and mapping depth off a rosinality state dict."""
    try:
        style_dim = sd["style.1.weight"].shape[1]
        n_mlp = len({k.split(".")[1] for k in sd if k.startswith("style.")})
        levels = len({k.split(".")[1] for k in sd if k.startswith("to_rgbs.")})
        channels = {4: sd["conv1.conv.weight"].shape[1]}
        for level in range(levels):
            channels[2 ** (level + 3)] = sd[f"convs.{2 * level}.conv.weight"].shape[1]
    except KeyError as exc:
        raise InputError(
            f"{source}: not a rosinality StyleGAN2 generator state dict (no {exc.args[0]!r}); expected keys "
            "like style.1.weight, conv1.conv.weight, convs.0.conv.weight, to_rgbs.0.conv.weight"
        ) from None
    return StyleGAN2Config.make(2 ** (levels + 2), channels, style_dim=style_dim, n_mlp=n_mlp)


def state_dict_digest(sd: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict, in sorted key order."""
    digest = hashlib.sha256()
    for key in sorted(sd):
        t = sd[key].detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def load_rosinality_state_dict(
    gen: StyleGAN2Generator, sd: Mapping[str, torch.Tensor], source: str = "state dict"
) -> None:
    """Strictly load a rosinality-format generator state dict (float16 or float32) into ``gen``."""
    ours = gen.state_dict()
    missing = sorted(set(ours) - set(sd))
    unexpected = sorted(set(sd) - set(ours))
    wrong = [
        f"{k} {tuple(sd[k].shape)} != {tuple(v.shape)}"
        for k, v in ours.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        raise InputError(
            f"{source}: does not match the StyleGAN2 layout {gen.config}; missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}), wrong shapes {wrong[:5]}"
        )
    # load_state_dict copies into our float32 tensors, so half-precision files load as float32.
    gen.load_state_dict(dict(sd), strict=True)


def latent_avg_to_w_avg(latent_avg: torch.Tensor, w_dim: int, source: str) -> torch.Tensor:
    """``latent_avg`` as ``[w_dim]``, ``[1, w_dim]`` or ``[num_ws, w_dim]`` (e4e) -> ``[w_dim]``."""
    if latent_avg.shape[-1] != w_dim or latent_avg.ndim > 2:
        raise InputError(f"{source}: latent_avg has shape {list(latent_avg.shape)}, expected [..., {w_dim}]")
    rows = latent_avg.float().reshape(-1, w_dim)
    # e4e saves one vector repeated num_ws times: keep it exact rather than averaging rounding in.
    return rows[0].clone() if bool((rows == rows[0]).all()) else rows.mean(0)


def generator_from_state_dict(
    sd: Mapping[str, torch.Tensor],
    latent_avg: torch.Tensor | None,
    source: str = "state dict",
    generator_id: str | None = None,  # default: digest of the tensors
) -> StyleGAN2Generator:
    """Build the generator a rosinality state dict describes, load it strictly, set ``w_avg``.

    Without ``latent_avg`` the truncation centre is estimated from 4096 seeded mapping draws.
    """
    config = config_from_state_dict(sd, source)
    gen = StyleGAN2Generator(config)
    load_rosinality_state_dict(gen, sd, source)
    with torch.no_grad():
        if latent_avg is not None:
            gen.latent_avg.copy_(latent_avg_to_w_avg(latent_avg, config.style_dim, source))
        else:
            gen.latent_avg.copy_(gen.estimate_w_avg())
    gen.generator_id = generator_id or f"stylegan2-{config.resolution}:sd-sha256:{state_dict_digest(sd)}"
    return gen.eval()


def read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``; rosinality training files carry an argparse Namespace."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a corrupt or foreign file
        raise InputError(
            f"{path}: cannot be read as a PyTorch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, dict):
        raise InputError(f"{path}: holds a {type(obj).__name__}, expected a checkpoint dict")
    return obj


def prefixed(sd: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Entries under ``prefix.`` with the prefix removed (how pSp / e4e split their state dict)."""
    return {k[len(prefix) + 1 :]: v for k, v in sd.items() if k.startswith(prefix + ".")}


def generator_state_from_checkpoint(
    ckpt: Mapping[str, Any], source: str
) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Generator state dict and ``latent_avg`` from a rosinality file, an e4e checkpoint or a bare dict."""
    latent_avg = ckpt.get("latent_avg")
    if "g_ema" in ckpt:
        return dict(ckpt["g_ema"]), latent_avg
    if "state_dict" in ckpt:
        decoder = prefixed(ckpt["state_dict"], "decoder")
        if not decoder:
            raise InputError(f"{source}: checkpoint state_dict has no decoder.* entries (not e4e/pSp)")
        return decoder, latent_avg
    if "style.1.weight" in ckpt:
        return {k: v for k, v in ckpt.items() if isinstance(v, torch.Tensor)}, None
    raise InputError(
        f"{source}: no generator inside (looked for 'g_ema', 'state_dict' with decoder.*, or a bare "
        f"state dict); top-level keys: {sorted(ckpt)[:8]}"
    )


def load_generator_file(path: str | Path, sha256: str | None) -> StyleGAN2Generator:
    """Verify the file's sha256 (via the weight registry) and load the generator inside it.

    ``path`` is a file, or the name of a generator the project ships (``fam models`` lists them;
    its catalog entry pins the hash, so ``sha256`` may be left out)."""
    shipped = isinstance(path, str) and path in WEIGHTS and weight_entry(path).source == "project"
    if shipped:
        file = resolve(path, sha256=sha256)
        digest = str(sha256 or weight_entry(path).sha256).lower()
    else:
        file = resolve(GENERATOR_WEIGHTS.name, path=path, sha256=sha256)  # raises unless the pin matches
        digest = str(sha256).lower()
    sd, latent_avg = generator_state_from_checkpoint(read_checkpoint(file), str(file))
    config = config_from_state_dict(sd, str(file))
    generator_id = f"stylegan2-{config.resolution}:sha256:{digest}"
    gen = generator_from_state_dict(sd, latent_avg, str(file), generator_id)
    card = file.with_suffix(".json")
    if shipped and card.is_file():
        gen.layer_groups = card_layer_groups(read_model_card(card), gen.num_ws, card)
        if gen.layer_groups is not None:  # the split decides the outputs as much as the weights do
            ids = gen.layer_groups.identity
            gen.generator_id += f":identity{ids[0]}-{ids[-1]}"
    return gen


def card_layer_groups(card: Mapping[str, Any], num_ws: int, where: Path) -> LayerGroups | None:
    """The identity layers measured for a shipped prior (``layers`` on its card), or None."""
    layers = card.get("layers")
    if layers is None:
        return None
    try:
        return LayerGroups.around(layers["identity"], num_ws)
    except (KeyError, TypeError, ConfigError) as exc:
        raise InputError(
            f"model card {where}: its layers entry is not a measured split ({exc}); ship the prior again "
            "with `fam ship-prior --layers` (the output of benchmarks/scan_identity_layers.py) and --replace"
        ) from exc


# --------------------------------------------------------------------------------------------
# Factory builder.


def build_generator(spec: Any, ctx: Any) -> StyleGAN2Generator:
    """``models.generator`` with ``name: stylegan2``.

    Options: ``weights`` ("random", a path to a rosinality .pt / e4e checkpoint, or the name of
    a generator the project ships, e.g. from ``fam ship-prior``; required), ``sha256`` (pin,
    required with a path), ``resolution``, ``channels`` ({res: width}) or
    ``channel_multiplier``, ``n_mlp``, ``w_dim`` (random weights only; a file defines its own
    architecture and must agree with any of these given), ``seed`` (random init), ``noise_seed``
    (replaces the noise images, also of a loaded file).
    """
    from fam.models.factory import check_options

    opts = check_options(
        spec,
        "generator",
        {
            "weights": None,
            "sha256": None,
            "resolution": 1024,
            "channels": None,
            "channel_multiplier": 2,
            "n_mlp": 8,
            "w_dim": 512,
            "seed": 0,
            "noise_seed": None,
        },
    )
    given = set(spec.options)
    weights = opts["weights"]
    if weights is None:
        raise ConfigError(
            "models.generator.weights is not set: give the path of a rosinality StyleGAN2 .pt or an e4e "
            "checkpoint (with its sha256), or write `weights: random` to build an untrained generator "
            "on purpose"
        )
    if opts["channels"] is not None and "channel_multiplier" in given:
        raise ConfigError("models.generator: give either channels or channel_multiplier, not both")
    config = StyleGAN2Config.make(
        int(opts["resolution"]),
        opts["channels"],
        int(opts["channel_multiplier"]),
        int(opts["w_dim"]),
        int(opts["n_mlp"]),
    )
    if weights == "random":
        if opts["sha256"] is not None:
            raise ConfigError("models.generator.sha256 is set but weights is random; remove one of them")
        gen = random_generator(config, int(opts["seed"]), opts["noise_seed"])
    else:
        if not isinstance(weights, str | Path):
            raise ConfigError(f"models.generator.weights must be 'random' or a file path, got {weights!r}")
        gen = load_generator_file(weights, opts["sha256"])
        _check_file_matches_options(gen.config, opts, given)
        if opts["noise_seed"] is not None:
            gen.set_noise(seeded_noise(gen.resolution, int(opts["noise_seed"])))
            gen.generator_id += f":noise{opts['noise_seed']}"
    return gen.to(ctx.device)


def _check_file_matches_options(file_config: StyleGAN2Config, opts: dict[str, Any], given: set[str]) -> None:
    stated = {
        "resolution": file_config.resolution,
        "n_mlp": file_config.n_mlp,
        "w_dim": file_config.style_dim,
    }
    for name, actual in stated.items():
        if name in given and int(opts[name]) != actual:
            raise ConfigError(
                f"models.generator.{name} = {opts[name]} but the weights file has {name} = {actual}"
            )
    if "channels" in given or "channel_multiplier" in given:
        expected = StyleGAN2Config.make(
            file_config.resolution, opts["channels"], int(opts["channel_multiplier"])
        ).channels
        if expected != file_config.channels:
            raise ConfigError(
                f"models.generator channel widths {dict(expected)} differ from the file's "
                f"{dict(file_config.channels)}"
            )
