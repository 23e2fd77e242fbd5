"""The PyTorch port of dlib's face recognition ResNet against dlib itself, and the
differentiable crop that feeds it from aligned images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fam.config import ModelSpec
from fam.errors import ConfigError
from fam.faces.chip import DLIB_150, TEMPLATES, crop_to_template
from fam.faces.dlib_resnet import DlibResNet, add_zero_padded, load_dlib_resnet_module
from fam.interfaces import IdentityEncoder
from fam.models.factory import BuildContext, build

LFW = Path("data/lfw/images")


@pytest.fixture(scope="module")
def net() -> DlibResNet:
    return load_dlib_resnet_module()


@pytest.mark.unit
def test_add_prev_zero_pads_the_smaller_operand() -> None:
    a = torch.ones(1, 2, 3, 3)
    b = torch.full((1, 4, 4, 4), 2.0)
    out = add_zero_padded(a, b)
    assert out.shape == (1, 4, 4, 4)
    assert out[0, :2, :3, :3].eq(3).all() and out[0, 2:].eq(2).all() and out[0, :, 3].eq(2).all()


@pytest.mark.data
@pytest.mark.model
def test_matches_dlib_on_lfw_chips(net: DlibResNet) -> None:
    import dlib  # dlib-bin, the project's 'faces' extra: the reference implementation
    from PIL import Image

    from fam.weights import resolve

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(resolve("dlib-shape-predictor-5")))
    reference = dlib.face_recognition_model_v1(str(resolve("dlib-face-recognition-resnet-v1")))
    files = sorted(LFW.glob("*/*_0001.jpg"))[::500][:10]
    assert len(files) == 10, f"LFW not found under {LFW} (run dvc pull)"
    chips, expected = [], []
    for file in files:
        img = np.asarray(Image.open(file).convert("RGB"))
        faces = detector(img, 1)
        assert faces, f"dlib finds no face in {file}"
        chip = dlib.get_face_chip(img, predictor(img, faces[0]), size=150, padding=0.25)
        chips.append(chip)
        expected.append(np.asarray(reference.compute_face_descriptor(chip)))
    x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        ours = net(x).numpy()
    assert np.abs(ours - np.stack(expected)).max() < 1e-5


@pytest.mark.model
def test_identity_encoder_is_normalised_and_differentiable() -> None:
    encoder = build("identity", ModelSpec("dlib"), BuildContext(torch.device("cpu")))
    assert isinstance(encoder, IdentityEncoder) and encoder.embedding_dim == 128
    torch.manual_seed(0)
    images = (torch.rand(2, 3, 64, 64) * 2 - 1).requires_grad_(True)
    emb = encoder.embed(images)
    assert emb.shape == (2, 128)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    emb[:, 0].sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="unknown option"):
        build("identity", ModelSpec("dlib", {"weights": "x"}), BuildContext(torch.device("cpu")))


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_crop_is_differentiable_and_resolution_free(name: str) -> None:
    template = TEMPLATES[name]
    # an image whose value is its own normalised x coordinate: the crop must reproduce the
    # template's x mapping at every resolution
    for res in (64, 256, 1024):
        coords = (torch.arange(res) + 0.5) / res * 2 - 1
        image = coords.view(1, 1, 1, res).expand(1, 3, res, res).clone().requires_grad_(True)
        crop = crop_to_template(image, template)
        assert crop.shape == (1, 3, template.size, template.size)
        centre = crop[0, 0, template.size // 2, template.size // 2].item()
        ox = (template.size // 2 + 0.5) / template.size * 2 - 1
        expected = template.theta[0][0] * ox + template.theta[0][1] * ox + template.theta[0][2]
        assert abs(centre - expected) < 4 / res + 1e-3
        crop.sum().backward()
        assert image.grad is not None and image.grad.abs().sum() > 0


@pytest.mark.unit
def test_crop_lies_inside_the_aligned_image() -> None:
    theta = torch.tensor(DLIB_150.theta)
    corners = torch.tensor([[-1.0, -1, 1], [1, -1, 1], [-1, 1, 1], [1, 1, 1]])
    assert (corners @ theta.T).abs().max() < 1.0
