"""IR / IR-SE ResNets: the ArcFace backbone in the TreB1eN InsightFace_Pytorch layout.

The module tree mirrors the official one attribute by attribute (``input_layer``, ``body.N``
with ``shortcut_layer`` / ``res_layer``, ``output_layer``) so that official state dicts
(``model_ir_se50.pth``, ``ir152.pth``) load with ``strict=True``. The residual units are
reused by the e4e encoder (:mod:`fam.models.e4e`), whose body is the same IR-SE-50.

Input: ``[B, 3, 112, 112]`` RGB normalised to ``[-1, 1]`` (the official preprocessing is
``(x - 0.5) / 0.5``); output: ``[B, 512]`` L2-normalised embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from fam.errors import InputError

Mode = Literal["ir", "ir_se"]


@dataclass(frozen=True)
class UnitSpec:
    """One residual unit: channels in, channels out (``depth``) and stride of its 2nd conv."""

    in_channel: int
    depth: int
    stride: int


# Units per stage for each depth; the first unit of a stage changes width and halves the size.
_STAGE_UNITS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    152: (3, 8, 36, 3),
}
_STAGE_WIDTHS = ((64, 64), (64, 128), (128, 256), (256, 512))


def stage_specs(num_layers: int) -> list[list[UnitSpec]]:
    """The four stages of an IR-``num_layers`` network as lists of units."""
    if num_layers not in _STAGE_UNITS:
        raise ValueError(f"num_layers must be one of {sorted(_STAGE_UNITS)}, got {num_layers}")
    stages = []
    for (cin, depth), units in zip(_STAGE_WIDTHS, _STAGE_UNITS[num_layers], strict=True):
        stages.append([UnitSpec(cin, depth, 2)] + [UnitSpec(depth, depth, 1) for _ in range(units - 1)])
    return stages


class SqueezeExcite(nn.Module):
    """Channel gating: global pool -> 1x1 reduce -> ReLU -> 1x1 expand -> sigmoid -> scale."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, kernel_size=1, padding=0, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, kernel_size=1, padding=0, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * gate


class BottleneckIR(nn.Module):
    """Improved residual unit: BN -> conv3x3 -> PReLU -> conv3x3(stride) -> BN (+ SE), plus shortcut."""

    def __init__(self, in_channel: int, depth: int, stride: int, se: bool = False) -> None:
        super().__init__()
        if in_channel == depth:
            # A 1x1 max-pool with stride is plain subsampling; it has no parameters.
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False), nn.BatchNorm2d(depth)
            )
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se:
            layers.append(SqueezeExcite(depth, 16))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


def build_body(num_layers: int, mode: Mode) -> nn.Sequential:
    """The residual body shared by the ArcFace backbone and the e4e encoder."""
    if mode not in ("ir", "ir_se"):
        raise ValueError(f"mode must be 'ir' or 'ir_se', got {mode!r}")
    units = [
        BottleneckIR(u.in_channel, u.depth, u.stride, se=mode == "ir_se")
        for stage in stage_specs(num_layers)
        for u in stage
    ]
    return nn.Sequential(*units)


def build_input_layer() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 64, (3, 3), 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))


class Backbone(nn.Module):
    """ArcFace IR / IR-SE backbone, 112x112 input -> 512-D L2-normalised embedding.

    ``affine=False`` gives the variant whose final BatchNorm1d has no scale/shift (the
    face.evoLVe / pSp ``IR_152`` files); TreB1eN's ``model_ir_se50.pth`` has ``affine=True``.
    """

    input_size = 112
    embedding_dim = 512

    def __init__(
        self,
        num_layers: int,  # 50, 100 or 152
        mode: Mode = "ir_se",
        drop_ratio: float = 0.4,  # dropout before the embedding layer (inactive in eval)
        affine: bool = True,
    ) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.mode = mode
        self.input_layer = build_input_layer()
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512),
            nn.Dropout(drop_ratio),
            nn.Flatten(),
            nn.Linear(512 * 7 * 7, 512),
            nn.BatchNorm1d(512, affine=affine),
        )
        self.body = build_body(num_layers, mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, 3, 112, 112]`` in ``[-1, 1]`` -> ``[B, 512]`` unit vectors."""
        if x.ndim != 4 or x.shape[1:] != (3, 112, 112):
            raise ValueError(f"Backbone expects [B, 3, 112, 112], got {list(x.shape)}")
        x = self.output_layer(self.body(self.input_layer(x)))
        return F.normalize(x, dim=1)


_UNITS_TO_DEPTH = {sum(units): depth for depth, units in _STAGE_UNITS.items()}


def load_backbone_state_dict(state_dict: dict[str, torch.Tensor], source: str = "state dict") -> Backbone:
    """Build the backbone an official ArcFace state dict describes and load it strictly.

    Depth, IR vs IR-SE and the affine final BN are read from the keys. Files saved by
    PyTorch < 0.4.1 lack BatchNorm ``num_batches_tracked`` counters; those (and only those)
    may be missing, as they do not affect inference.
    """
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}  # DataParallel saves
    unit_ids = {int(k.split(".")[1]) for k in state_dict if k.startswith("body.")}
    if not unit_ids or len(unit_ids) not in _UNITS_TO_DEPTH:
        raise InputError(
            f"{source}: not an IR/IR-SE ArcFace backbone state dict ({len(unit_ids)} residual units found; "
            f"expected one of {sorted(_UNITS_TO_DEPTH)})"
        )
    mode: Mode = "ir_se" if "body.0.res_layer.5.fc1.weight" in state_dict else "ir"
    model = Backbone(_UNITS_TO_DEPTH[len(unit_ids)], mode, affine="output_layer.4.weight" in state_dict)
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        raise InputError(
            f"{source}: does not match the IR-{model.num_layers} ({mode}) layout; "
            f"missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}"
        )
    return model.eval()
