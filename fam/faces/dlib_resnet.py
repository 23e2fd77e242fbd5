"""dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

Same computation as dlib's ``dnn_face_recognition_ex.cpp`` network, loaded from the ``.dat``
file by :mod:`fam.faces.dlib_format`, so it is differentiable and runs batched on any device.
It reproduces ``dlib.face_recognition_model_v1.compute_face_descriptor`` on the same 150x150
chip to float32 rounding (see ``tests/test_dlib_resnet.py``).

The output is dlib's raw 128-D descriptor (not normalised): dlib calls two chips the same
person when their descriptors are closer than 0.6 in L2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from fam.faces.dlib_format import (
    FINAL_DOWN_CHANNELS,
    LEVELS,
    AffineParams,
    ConvParams,
    DlibResNetParams,
    load_dlib_resnet,
)
from fam.faces.pooling import max_pool2d

if TYPE_CHECKING:
    from fam.config import ModelSpec
    from fam.models.factory import BuildContext

INPUT_SIZE = 150
CHANNEL_MEANS = (122.782, 117.001, 104.298)  # RGB, subtracted from 0..255 pixels, then / 256
DESCRIPTOR_DIM = 128
SAME_PERSON_L2 = 0.6  # dlib's decision threshold on raw descriptors


class Affine(nn.Module):
    """dlib ``affine``: per-channel ``x * gamma + beta`` (a batch norm folded after training)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma[None, :, None, None] + self.beta[None, :, None, None]


def add_zero_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib ``add_prev``: the sum over the larger of the two shapes, the smaller operand
    zero-padded at the end of channels, rows and columns (e.g. 4x4 shortcut + 3x3 block)."""
    if a.shape == b.shape:  # most blocks: F.pad would copy both operands for nothing
        return a + b
    c, h, w = (max(sa, sb) for sa, sb in zip(a.shape[1:], b.shape[1:], strict=True))

    def pad(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, w - x.shape[3], 0, h - x.shape[2], 0, c - x.shape[1]))

    return pad(a) + pad(b)


class Residual(nn.Module):
    """``relu(add_prev(block(x), x))``; a down residual strides the first conv by 2 and
    adds a 2x2/2 average pool of ``x`` instead of ``x``."""

    def __init__(self, in_channels: int, channels: int, down: bool) -> None:
        super().__init__()
        stride = 2 if down else 1
        # dlib pads with zeros when stride != 1 and with k // 2 when stride == 1.
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=0 if down else 1)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1)
        self.affine2 = Affine(channels)
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_zero_padded(y, shortcut))


class DlibResNet(nn.Module):
    """150x150 RGB chips with pixel values in 0..255 -> raw 128-D dlib descriptors."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(CHANNEL_MEANS).view(1, 3, 1, 1), persistent=False)
        self.stem = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.stem_affine = Affine(32)
        blocks: list[Residual] = []
        in_channels = 32
        for channels, count, down_first in LEVELS:
            for i in range(count):
                blocks.append(Residual(in_channels, channels, down=down_first and i == 0))
                in_channels = channels
        blocks.append(Residual(in_channels, FINAL_DOWN_CHANNELS, down=True))
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(FINAL_DOWN_CHANNELS, DESCRIPTOR_DIM, bias=False)

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """``chips [B, 3, 150, 150]`` float RGB in 0..255 -> descriptors ``[B, 128]``."""
        if chips.ndim != 4 or tuple(chips.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"dlib ResNet expects chips [B, 3, 150, 150], got {tuple(chips.shape)}")
        x = (chips - self.mean) / 256.0
        x = F.relu(self.stem_affine(self.stem(x)))
        x = max_pool2d(x, 3, 2)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))

    @torch.no_grad()
    def load_dlib_params(self, params: DlibResNetParams) -> DlibResNet:
        """Copy parsed ``.dat`` arrays in; every shape and stride is checked against this module."""
        convs: list[tuple[nn.Conv2d, Affine]] = [(self.stem, self.stem_affine)]
        for block in self.blocks:
            convs += [(block.conv1, block.affine1), (block.conv2, block.affine2)]
        if len(convs) != len(params.convs):
            raise ValueError(f"module has {len(convs)} convs, file has {len(params.convs)}")
        for index, ((conv, affine), p, a) in enumerate(zip(convs, params.convs, params.affines, strict=True)):
            _load_conv(conv, affine, p, a, index)
        self.fc.weight.copy_(torch.from_numpy(params.fc_weight.T))  # dlib: y = x W, W [256, 128]
        file_means = torch.tensor(params.channel_means, dtype=torch.float32)
        if not torch.allclose(file_means, torch.tensor(CHANNEL_MEANS), atol=1e-3):
            raise ValueError(f"file channel means {params.channel_means} differ from {CHANNEL_MEANS}")
        self.mean.copy_(file_means.view(1, 3, 1, 1))  # use the file's exact float values
        return self


def _load_conv(conv: nn.Conv2d, affine: Affine, p: ConvParams, a: AffineParams, index: int) -> None:
    same_geometry = conv.stride[0] == p.stride and conv.padding[0] == p.padding
    if tuple(conv.weight.shape) != p.weight.shape or not same_geometry:
        raise ValueError(
            f"conv {index}: module {tuple(conv.weight.shape)}/{conv.stride[0]} pad {conv.padding[0]}, "
            f"file {p.weight.shape}/{p.stride} pad {p.padding}"
        )
    conv.weight.copy_(torch.from_numpy(p.weight))
    assert conv.bias is not None
    conv.bias.copy_(torch.from_numpy(p.bias))
    affine.gamma.copy_(torch.from_numpy(a.gamma))
    affine.beta.copy_(torch.from_numpy(a.beta))


def load_dlib_resnet_module(path: str | Path | None = None, sha256: str | None = None) -> DlibResNet:
    """The network with dlib's weights, resolved (and hash-checked) through ``fam.weights``."""
    from fam.weights import resolve

    file = resolve("dlib-face-recognition-resnet-v1", path=path, sha256=sha256)
    return DlibResNet().load_dlib_params(load_dlib_resnet(file)).eval()


class DlibIdentityEncoder(nn.Module):
    """``fam.interfaces.IdentityEncoder`` over dlib's network: aligned ``[-1, 1]`` faces ->
    L2-normalised 128-D embeddings, differentiable through the crop (for the losses)."""

    embedding_dim = DESCRIPTOR_DIM

    def __init__(self, net: DlibResNet) -> None:
        super().__init__()
        self.net = net

    def descriptors(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, R, R]`` aligned, ``[-1, 1]`` -> dlib's raw descriptors ``[B, 128]``."""
        from fam.faces.chip import DLIB_150, crop_to_template

        chips = crop_to_template(images, DLIB_150)
        return self.net((chips + 1.0) * 127.5)  # [-1, 1] -> dlib's 0..255 pixel scale

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.descriptors(images), dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images)


def build_identity_encoder(spec: ModelSpec, ctx: BuildContext) -> DlibIdentityEncoder:
    """Factory builder for ``models.identity.name: dlib``.

    Options: ``path`` / ``sha256`` to load a copy of the ``.dat`` from elsewhere (default:
    the installed face-recognition-models package, hash-checked by the weight registry).
    """
    from fam.models.factory import check_options

    options = check_options(spec, "identity", {"path": None, "sha256": None})
    net = load_dlib_resnet_module(options["path"], options["sha256"])
    return DlibIdentityEncoder(net).to(ctx.device)
