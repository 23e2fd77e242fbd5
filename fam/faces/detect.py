"""Face detection with 5 landmarks on photos of any size, batched.

MTCNN (fam.faces.mtcnn) is the detector: it gives eye centres AND mouth corners, which the
FFHQ alignment needs (dlib's 5-point model has eye corners and the nose base but no mouth),
it is what the paper aligns with, its weights ship in a registry wheel (MIT), and it runs
batched on CPU or GPU. See docs/alignment.md.

Large photos are downscaled so their longer side is at most ``max_side`` before detection;
boxes and landmarks are mapped back to full-resolution pixel coordinates, where the
alignment then crops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from fam.faces.mtcnn import DEFAULT_THRESHOLDS, Mtcnn


@dataclass(frozen=True)
class Face:
    box: np.ndarray  # [4] x1, y1, x2, y2 in full-resolution pixels
    score: float  # detector face probability
    landmarks: np.ndarray  # [5, 2] (x, y): left eye, right eye, nose, left mouth, right mouth

    @property
    def side(self) -> float:
        """Face size in pixels: the longer side of the detection box."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


class FaceDetector:
    """MTCNN over lists of RGB photos of mixed sizes."""

    def __init__(
        self,
        device: torch.device | str = "cpu",
        *,
        max_side: int = 1024,  # photos are downscaled to at most this many pixels per side
        min_face: float = 20.0,  # smallest face side searched, in detection-scale pixels
        thresholds: tuple[float, float, float] = DEFAULT_THRESHOLDS,
    ) -> None:
        self.device = torch.device(device)
        self.max_side = max_side
        self.min_face = min_face
        self.thresholds = thresholds
        self.mtcnn = Mtcnn(self.device)

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces per image (any order), for ``images`` = uint8 ``[H, W, 3]`` RGB arrays.

        Images of one call share a batch: they are downscaled, zero-padded (black, as the
        cascade pads crops anyway) to the largest size among them and run together.
        """
        if not images:
            return []
        small, factors = zip(*(self._downscale(im) for im in images), strict=True)
        canvas_h = max(s.shape[0] for s in small)
        canvas_w = max(s.shape[1] for s in small)
        batch = np.zeros((len(small), canvas_h, canvas_w, 3), dtype=np.uint8)
        for i, s in enumerate(small):  # a copy per image into the shared canvas
            batch[i, : s.shape[0], : s.shape[1]] = s
        tensor = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
        raw = self.mtcnn.detect(tensor, min_face=self.min_face, thresholds=self.thresholds)
        boxes = raw.boxes.cpu().double().numpy()
        scores = raw.scores.cpu().double().numpy()
        marks = raw.landmarks.cpu().double().numpy()
        owner = raw.image_index.cpu().numpy()
        out: list[list[Face]] = [[] for _ in images]
        for k in range(len(boxes)):  # over detections, a handful per image
            i = int(owner[k])
            h, w = small[i].shape[:2]
            cx, cy = (boxes[k, 0] + boxes[k, 2]) / 2, (boxes[k, 1] + boxes[k, 3]) / 2
            if not (0 <= cx < w and 0 <= cy < h):
                continue  # a box centred in the padding belongs to no real pixel
            f = factors[i]
            out[i].append(Face(box=boxes[k] / f, score=float(scores[k]), landmarks=marks[k] / f))
        return out

    def _downscale(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected uint8 [H, W, 3] RGB, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        factor = min(1.0, self.max_side / max(h, w))
        if factor == 1.0:
            return image, 1.0
        size = (max(1, round(w * factor)), max(1, round(h * factor)))
        resized = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
        # The exact factor per axis differs by rounding; the mean is within half a pixel.
        return resized, (size[0] / w + size[1] / h) / 2
