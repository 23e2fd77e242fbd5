"""MTCNN cascade: our modules with the package weights, batching and full-resolution mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fam.faces.detect import FaceDetector

LFW_FACE = Path("data/lfw/images/Aaron_Eckhart/Aaron_Eckhart_0001.jpg")


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector("cpu", max_side=256)


def _face() -> np.ndarray:
    if not LFW_FACE.is_file():
        pytest.fail(f"{LFW_FACE} is missing: run `dvc pull` (docs/reference.md, face data)")
    return np.asarray(Image.open(LFW_FACE).convert("RGB"))


@pytest.mark.model
def test_blank_images_have_no_faces(detector: FaceDetector) -> None:
    blank = np.full((120, 160, 3), 128, dtype=np.uint8)
    noise = np.random.default_rng(0).integers(0, 255, (90, 90, 3), dtype=np.uint8)
    assert detector.detect([blank, noise]) == [[], []]
    assert detector.detect([]) == []


@pytest.mark.data
@pytest.mark.model
def test_one_lfw_face_with_ordered_landmarks(detector: FaceDetector) -> None:
    (faces,) = detector.detect([_face()])
    assert len(faces) == 1
    f = faces[0]
    assert f.score > 0.99 and 80 < f.side < 160
    lm = f.landmarks
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # left before right
    assert max(lm[0, 1], lm[1, 1]) < lm[2, 1] < min(lm[3, 1], lm[4, 1])  # eyes, nose, mouth downwards
    x1, y1, x2, y2 = f.box
    assert ((lm[:, 0] > x1) & (lm[:, 0] < x2) & (lm[:, 1] > y1) & (lm[:, 1] < y2)).all()


@pytest.mark.data
@pytest.mark.model
def test_batching_and_downscaling_map_back_to_full_resolution(detector: FaceDetector) -> None:
    face = _face()
    (alone,) = detector.detect([face])
    # The same photo at twice the size is detected at 256 px and mapped back: landmarks double.
    big = np.asarray(Image.fromarray(face).resize((500, 500), Image.Resampling.BICUBIC))
    wide = np.zeros((200, 256, 3), dtype=np.uint8)
    in_batch = detector.detect([big, face, wide])
    assert len(in_batch[0]) == 1 and len(in_batch[1]) == 1 and in_batch[2] == []
    assert np.abs(in_batch[0][0].landmarks / 2 - alone[0].landmarks).max() < 3.0
    # Padding to the batch's canvas does not move the face of the smaller photo.
    assert np.abs(in_batch[1][0].landmarks - alone[0].landmarks).max() < 2.0
