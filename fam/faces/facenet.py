"""FaceNet InceptionResnetV1 in the facenet-pytorch state-dict layout (no weights shipped).

Users load their own ``20180402-114759-vggface2.pt`` or ``20180408-102900-casia-webface.pt``
(facenet-pytorch's ports of David Sandberg's TensorFlow models): every key and shape matches,
so ``load_state_dict(strict=True)`` succeeds; the classifier head (``logits.*``) in those files
is dropped because only the 512-D embedding is used.

Input: ``[B, 3, 160, 160]`` RGB standardised as ``(pixel - 127.5) / 128`` (facenet-pytorch's
``fixed_image_standardization``); output: ``[B, 512]`` L2-normalised embeddings.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fam.errors import MissingWeightsError

INPUT_SIZE = 160
EMBEDDING_DIM = 512
_Kernel = int | tuple[int, int]


class BasicConv2d(nn.Module):
    """conv (no bias) -> batch norm (TensorFlow's eps 1e-3) -> relu."""

    def __init__(self, cin: int, cout: int, kernel: _Kernel, stride: int = 1, padding: _Kernel = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _chain(*convs: BasicConv2d) -> nn.Sequential:
    return nn.Sequential(*convs)


class _ScaledResidual(nn.Module):
    """Inception-ResNet block: concat(branches) -> 1x1 conv -> ``x + scale * out`` -> relu."""

    branches: tuple[str, ...]

    def __init__(self, channels: int, branch_width: int, scale: float, relu: bool) -> None:
        super().__init__()
        self.conv2d = nn.Conv2d(branch_width, channels, 1)
        self.scale = scale
        self.use_relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([getattr(self, b)(x) for b in self.branches], dim=1)
        out = x + self.scale * self.conv2d(out)
        return F.relu(out) if self.use_relu else out


class Block35(_ScaledResidual):
    """35x35 grid (here 17x17 at 160 px input), 256 channels."""

    branches = ("branch0", "branch1", "branch2")

    def __init__(self, scale: float) -> None:
        super().__init__(256, 96, scale, relu=True)
        self.branch0 = BasicConv2d(256, 32, 1)
        self.branch1 = _chain(BasicConv2d(256, 32, 1), BasicConv2d(32, 32, 3, padding=1))
        self.branch2 = _chain(
            BasicConv2d(256, 32, 1), BasicConv2d(32, 32, 3, padding=1), BasicConv2d(32, 32, 3, padding=1)
        )


class Block17(_ScaledResidual):
    """896 channels, factorised 1x7 / 7x1 branch."""

    branches = ("branch0", "branch1")

    def __init__(self, scale: float) -> None:
        super().__init__(896, 256, scale, relu=True)
        self.branch0 = BasicConv2d(896, 128, 1)
        self.branch1 = _chain(
            BasicConv2d(896, 128, 1),
            BasicConv2d(128, 128, (1, 7), padding=(0, 3)),
            BasicConv2d(128, 128, (7, 1), padding=(3, 0)),
        )


class Block8(_ScaledResidual):
    """1792 channels, factorised 1x3 / 3x1 branch; the last one has no relu."""

    branches = ("branch0", "branch1")

    def __init__(self, scale: float = 1.0, relu: bool = True) -> None:
        super().__init__(1792, 384, scale, relu=relu)
        self.branch0 = BasicConv2d(1792, 192, 1)
        self.branch1 = _chain(
            BasicConv2d(1792, 192, 1),
            BasicConv2d(192, 192, (1, 3), padding=(0, 1)),
            BasicConv2d(192, 192, (3, 1), padding=(1, 0)),
        )


class Mixed6a(nn.Module):
    """Reduction 256 -> 896 channels (384 + 256 + 256 pooled), stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = BasicConv2d(256, 384, 3, stride=2)
        self.branch1 = _chain(
            BasicConv2d(256, 192, 1), BasicConv2d(192, 192, 3, padding=1), BasicConv2d(192, 256, 3, stride=2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), F.max_pool2d(x, 3, 2)], dim=1)


class Mixed7a(nn.Module):
    """Reduction 896 -> 1792 channels (384 + 256 + 256 + 896 pooled), stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.branch0 = _chain(BasicConv2d(896, 256, 1), BasicConv2d(256, 384, 3, stride=2))
        self.branch1 = _chain(BasicConv2d(896, 256, 1), BasicConv2d(256, 256, 3, stride=2))
        self.branch2 = _chain(
            BasicConv2d(896, 256, 1), BasicConv2d(256, 256, 3, padding=1), BasicConv2d(256, 256, 3, stride=2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.branch0(x), self.branch1(x), self.branch2(x), F.max_pool2d(x, 3, 2)]
        return torch.cat(parts, dim=1)


class InceptionResnetV1(nn.Module):
    """FaceNet embedding network; attribute names are facenet-pytorch's state-dict keys."""

    def __init__(self) -> None:
        super().__init__()
        self.conv2d_1a = BasicConv2d(3, 32, 3, stride=2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3, padding=1)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.conv2d_4b = BasicConv2d(192, 256, 3, stride=2)
        self.repeat_1 = nn.Sequential(*(Block35(0.17) for _ in range(5)))
        self.mixed_6a = Mixed6a()
        self.repeat_2 = nn.Sequential(*(Block17(0.10) for _ in range(10)))
        self.mixed_7a = Mixed7a()
        self.repeat_3 = nn.Sequential(*(Block8(0.20) for _ in range(5)))
        self.block8 = Block8(relu=False)
        self.last_linear = nn.Linear(1792, EMBEDDING_DIM, bias=False)
        self.last_bn = nn.BatchNorm1d(EMBEDDING_DIM, eps=1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, 3, 160, 160]`` standardised -> ``[B, 512]`` unit vectors."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"InceptionResnetV1 expects [B, 3, H, W], got {tuple(x.shape)}")
        x = self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x)))
        x = F.max_pool2d(x, 3, 2)
        x = self.conv2d_4b(self.conv2d_4a(self.conv2d_3b(x)))
        x = self.repeat_3(self.mixed_7a(self.repeat_2(self.mixed_6a(self.repeat_1(x)))))
        x = self.block8(x).mean(dim=(2, 3))  # dropout of the original is inactive in eval
        return F.normalize(self.last_bn(self.last_linear(x)), dim=1)


def load_facenet_state_dict(
    state_dict: Mapping[str, torch.Tensor], source: str = "state dict"
) -> InceptionResnetV1:
    """Strictly load a facenet-pytorch state dict (its ``logits.*`` classifier is ignored)."""
    kept = {k.removeprefix("module."): v for k, v in state_dict.items() if not k.startswith("logits.")}
    model = InceptionResnetV1()
    try:
        result = model.load_state_dict(kept, strict=False)
    except RuntimeError as exc:  # a tensor of the wrong shape
        raise MissingWeightsError(f"{source}: not the facenet-pytorch layout: {exc}") from None
    if result.missing_keys or result.unexpected_keys:
        raise MissingWeightsError(
            f"{source}: not a facenet-pytorch InceptionResnetV1 state dict; missing "
            f"{result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return model.eval()


def load_facenet_file(path: str | Path, sha256: str | None) -> InceptionResnetV1:
    """Hash-check (``fam.weights`` entry ``facenet-inception-resnet-v1``) and load a user file."""
    from fam.weights import resolve

    file = resolve("facenet-inception-resnet-v1", path=path, sha256=sha256)
    state = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise MissingWeightsError(f"{file}: expected a state dict, found {type(state).__name__}")
    return load_facenet_state_dict(state, source=str(file))
