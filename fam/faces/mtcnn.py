"""MTCNN (Zhang et al. 2016): P-Net, R-Net, O-Net and a cascade batched over images.

Our own modules; the weights are the plain state dicts shipped in the facenet-pytorch wheel
(``fam.weights`` entries ``mtcnn-pnet|rnet|onet``), whose key names and the TensorFlow-style
flattening order (``permute(0, 3, 2, 1)`` before the dense layers) we match. facenet-pytorch's
own cascade crops every candidate box in a Python loop; here every stage handles all images of
a batch at once: the pyramid runs on the stacked batch, and the R-Net / O-Net crops of all
candidates of all images are cut in one ``torchvision.ops.roi_align`` call.

Conventions: images are float ``[B, 3, H, W]`` RGB with values in ``[0, 255]``; boxes are
``(x1, y1, x2, y2)`` in pixels; landmarks are ``[5, 2]`` (x, y) in the order left eye, right
eye, nose, left mouth corner, right mouth corner ("left" = smaller x in the image).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, roi_align

from fam import weights
from fam.faces.pooling import max_pool2d

# The published cascade settings (MTCNN paper / reference code).
DEFAULT_THRESHOLDS = (0.6, 0.7, 0.7)
PYRAMID_FACTOR = 0.709


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    """``[0, 255]`` -> the nets' input range (the reference code's ``(x - 127.5) / 128``)."""
    return (pixels - 127.5) * 0.0078125


class PNet(nn.Module):
    """Proposal net, fully convolutional: 12x12 windows at stride 2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, 3)
        self.prelu1 = nn.PReLU(10)
        self.conv2 = nn.Conv2d(10, 16, 3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, 3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, 3, H, W]`` normalised -> (box offsets ``[B, 4, h, w]``, face prob ``[B, h, w]``)."""
        x = self.prelu1(self.conv1(x))
        x = max_pool2d(x, 2, 2, ceil_mode=True)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)[:, 1]


class RNet(nn.Module):
    """Refinement net on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, 3)
        self.prelu1 = nn.PReLU(28)
        self.conv2 = nn.Conv2d(28, 48, 3)
        self.prelu2 = nn.PReLU(48)
        self.conv3 = nn.Conv2d(48, 64, 2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [N, 3, 24, 24]`` -> (box offsets ``[N, 4]``, face prob ``[N]``)."""
        x = max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x))
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))  # TF flattening order
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)[:, 1]


class ONet(nn.Module):
    """Output net on 48x48 crops: box, face prob and 5 landmarks. Differentiable end to end."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3)
        self.prelu1 = nn.PReLU(32)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.prelu2 = nn.PReLU(64)
        self.conv3 = nn.Conv2d(64, 64, 3)
        self.prelu3 = nn.PReLU(64)
        self.conv4 = nn.Conv2d(64, 128, 2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [N, 3, 48, 48]`` -> (box offsets ``[N, 4]``, landmarks ``[N, 10]``, face prob ``[N]``).

        Landmarks are fractions of the crop: the first five are x, the last five y.
        """
        x = max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).flatten(1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)[:, 1]


def load_net(name: str, device: torch.device | str = "cpu") -> nn.Module:
    """One of ``pnet|rnet|onet`` with its verified package weights, strictly loaded, in eval mode."""
    net = {"pnet": PNet, "rnet": RNet, "onet": ONet}[name]()
    state = torch.load(weights.resolve(f"mtcnn-{name}"), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.to(device).eval().requires_grad_(False)


@dataclass(frozen=True)
class RawDetections:
    """All faces found in a batch, flat: row k belongs to image ``image_index[k]``."""

    boxes: torch.Tensor  # [K, 4] x1, y1, x2, y2
    scores: torch.Tensor  # [K] O-Net face probability
    landmarks: torch.Tensor  # [K, 5, 2]
    image_index: torch.Tensor  # [K] long


class Mtcnn(nn.Module):
    def __init__(self, device: torch.device | str = "cpu") -> None:
        super().__init__()
        self.pnet = load_net("pnet", device)
        self.rnet = load_net("rnet", device)
        self.onet = load_net("onet", device)

    @torch.no_grad()
    def detect(
        self,
        images: torch.Tensor,
        *,
        min_face: float = 20.0,
        thresholds: tuple[float, float, float] = DEFAULT_THRESHOLDS,
    ) -> RawDetections:
        """Run the cascade on ``images [B, 3, H, W]`` (RGB, ``[0, 255]``, same size; pad to batch).

        ``min_face``: smallest face side in pixels of ``images`` that the pyramid looks for.
        """
        boxes, idx = self._propose(images, min_face, thresholds[0])
        if len(boxes):
            boxes, idx = self._refine(images, boxes, idx, thresholds[1])
        if not len(boxes):
            empty = images.new_zeros((0, 4))
            return RawDetections(empty, images.new_zeros(0), images.new_zeros((0, 5, 2)), idx[:0])
        return self._output(images, boxes, idx, thresholds[2])

    def _propose(self, images: torch.Tensor, min_face: float, threshold: float) -> tuple[torch.Tensor, ...]:
        """Stage 1: P-Net over the image pyramid of the whole batch."""
        _, _, h, w = images.shape
        scale = 12.0 / min_face
        side = min(h, w) * scale
        all_boxes, all_idx = [], []
        while side >= 12:
            size = (int(h * scale + 1), int(w * scale + 1))
            reg, prob = self.pnet(_normalise(F.interpolate(images, size=size, mode="area")))
            mask = prob >= threshold
            where = mask.nonzero()  # [n, 3] image, row, col
            if len(where):
                cells = where[:, 1:].flip(1).to(images.dtype)  # (col, row) = (x, y)
                # The exact per-axis factor of the resize (the reference divides by ``scale``,
                # which is off by the rounding of the size and so depends on the canvas).
                exact = images.new_tensor([size[1] / w, size[0] / h])
                top_left = ((2 * cells + 1) / exact).floor()
                bottom_right = ((2 * cells + 12) / exact).floor()
                score = prob[mask]
                offsets = reg.permute(0, 2, 3, 1)[mask]
                cand = torch.cat([top_left, bottom_right], dim=1)
                keep = batched_nms(cand, score, where[:, 0], 0.5)
                all_boxes.append(torch.cat([cand, score[:, None], offsets], dim=1)[keep])
                all_idx.append(where[keep, 0])
            scale *= PYRAMID_FACTOR
            side *= PYRAMID_FACTOR
        if not all_boxes:
            return images.new_zeros((0, 4)), torch.zeros(0, dtype=torch.long, device=images.device)
        cand = torch.cat(all_boxes)
        idx = torch.cat(all_idx)
        keep = batched_nms(cand[:, :4], cand[:, 4], idx, 0.7)
        cand, idx = cand[keep], idx[keep]
        wh = (cand[:, 2:4] - cand[:, 0:2]).repeat(1, 2)
        boxes = cand[:, :4] + cand[:, 5:9] * wh
        return _square(boxes), idx

    def _refine(
        self, images: torch.Tensor, boxes: torch.Tensor, idx: torch.Tensor, threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 2: R-Net on 24x24 crops of every candidate."""
        reg, prob = self.rnet(_normalise(_crops(images, boxes, idx, 24)))
        ok = prob > threshold
        boxes, idx, reg, prob = boxes[ok], idx[ok], reg[ok], prob[ok]
        keep = batched_nms(boxes, prob, idx, 0.7)
        return _square(_regress(boxes[keep], reg[keep])), idx[keep]

    def _output(
        self, images: torch.Tensor, boxes: torch.Tensor, idx: torch.Tensor, threshold: float
    ) -> RawDetections:
        """Stage 3: O-Net boxes, scores and landmarks, then NMS by intersection over the smaller box."""
        reg, points, prob = self.onet(_normalise(_crops(images, boxes, idx, 48)))
        ok = prob > threshold
        boxes, idx, reg, points, prob = boxes[ok], idx[ok], reg[ok], points[ok], prob[ok]
        size = boxes[:, 2:4] - boxes[:, 0:2] + 1  # reference convention: inclusive pixel boxes
        lx = points[:, :5] * size[:, :1] + boxes[:, :1] - 1
        ly = points[:, 5:] * size[:, 1:] + boxes[:, 1:2] - 1
        landmarks = torch.stack([lx, ly], dim=2)
        boxes = _regress(boxes, reg)
        keep = _nms_min(boxes, prob, idx, 0.7)
        return RawDetections(boxes[keep], prob[keep], landmarks[keep], idx[keep])


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square around its centre (the reference ``rerec``)."""
    wh = boxes[:, 2:4] - boxes[:, 0:2]
    side = wh.max(dim=1, keepdim=True).values
    top_left = boxes[:, 0:2] + wh * 0.5 - side * 0.5
    return torch.cat([top_left, top_left + side], dim=1)


def _regress(boxes: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    size = (boxes[:, 2:4] - boxes[:, 0:2] + 1).repeat(1, 2)
    return boxes + reg * size


def _crops(images: torch.Tensor, boxes: torch.Tensor, idx: torch.Tensor, out: int) -> torch.Tensor:
    """``[N, 3, out, out]`` crops of ``boxes`` from their images, in one call.

    The reference crops pixels ``[y1 - 1, y2)`` (1-based boxes) and pads outside the image with
    black; ``roi_align`` with ``aligned=True`` reads the same continuous region, samples several
    points per output cell (an area-style average) and returns 0 (black) outside the image.
    """
    rois = torch.cat([idx[:, None].to(boxes.dtype), boxes[:, 0:2] - 1, boxes[:, 2:4]], dim=1)
    return roi_align(images, rois, (out, out), spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, idx: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS where overlap = intersection / smaller area (drops boxes nested in a face).

    Runs over the few O-Net survivors of the whole batch at once (boxes of different images
    never overlap because the overlap matrix is masked by image index).
    """
    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    b = boxes.detach().cpu().double().numpy()
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    ix1 = np.maximum(b[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(b[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(b[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(b[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1 + 1, 0, None) * np.clip(iy2 - iy1 + 1, 0, None)
    overlap = inter / np.minimum(area[:, None], area[None, :])
    image = idx.cpu().numpy()
    overlap[image[:, None] != image[None, :]] = 0.0
    order = np.argsort(-scores.detach().cpu().numpy(), kind="stable")
    suppressed = np.zeros(len(b), dtype=bool)
    keep = []
    for i in order:  # over detections (a handful per image), not over images
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlap[i] > threshold
    return torch.as_tensor(keep, dtype=torch.long, device=boxes.device)
