"""FaceNet InceptionResnetV1: facenet-pytorch's state-dict layout loads strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fam.errors import MissingWeightsError
from fam.faces.facenet import InceptionResnetV1, load_facenet_file, load_facenet_state_dict
from fam.io_utils import sha256_file

pytestmark = pytest.mark.unit

# Written down from facenet-pytorch 2.6.0's inception_resnet_v1.py (a sample of its keys).
OFFICIAL_SHAPES = {
    "conv2d_1a.conv.weight": (32, 3, 3, 3),
    "conv2d_1a.bn.running_var": (32,),
    "conv2d_4b.conv.weight": (256, 192, 3, 3),
    "repeat_1.4.branch2.2.conv.weight": (32, 32, 3, 3),
    "repeat_1.0.conv2d.weight": (256, 96, 1, 1),
    "repeat_1.0.conv2d.bias": (256,),
    "mixed_6a.branch1.2.conv.weight": (256, 192, 3, 3),
    "repeat_2.9.branch1.1.conv.weight": (128, 128, 1, 7),
    "repeat_2.9.branch1.2.conv.weight": (128, 128, 7, 1),
    "mixed_7a.branch2.2.bn.weight": (256,),
    "repeat_3.4.branch1.1.conv.weight": (192, 192, 1, 3),
    "block8.conv2d.weight": (1792, 384, 1, 1),
    "last_linear.weight": (512, 1792),
    "last_bn.running_mean": (512,),
}
OFFICIAL_NUM_KEYS = 714  # without the logits head
OFFICIAL_NUM_VALUES = 23_512_336


def _random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = InceptionResnetV1()
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("running_var"):
            value.uniform_(0.5, 1.5)
        elif key.endswith("running_mean"):
            value.normal_(0, 0.1)
    return state


def test_layout_matches_the_official_keys() -> None:
    state = InceptionResnetV1().state_dict()
    assert len(state) == OFFICIAL_NUM_KEYS
    assert sum(v.numel() for v in state.values()) == OFFICIAL_NUM_VALUES
    for key, shape in OFFICIAL_SHAPES.items():
        assert tuple(state[key].shape) == shape, key


def test_official_model_state_loads_strictly_and_agrees() -> None:
    # facenet-pytorch is installed (--no-deps) for its MTCNN files; its code is the reference here
    from facenet_pytorch.models.inception_resnet_v1 import InceptionResnetV1 as Official

    official = Official(classify=True, num_classes=7).eval()
    state = _random_state()
    state["logits.weight"] = torch.randn(7, 512)  # the released files carry a classifier head
    state["logits.bias"] = torch.zeros(7)
    official.load_state_dict(state, strict=True)
    official.classify = False  # embeddings, as the evaluator uses them
    ours = load_facenet_state_dict(state)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), official(x), atol=1e-5, rtol=1e-4)


def test_wrong_state_dicts_are_refused(tmp_path: Path) -> None:
    state = _random_state()
    del state["block8.conv2d.bias"]
    with pytest.raises(MissingWeightsError, match=r"missing \['block8.conv2d.bias'\]"):
        load_facenet_state_dict(state)
    state = _random_state()
    state["last_linear.weight"] = torch.zeros(128, 1792)
    with pytest.raises(MissingWeightsError, match="not the facenet-pytorch layout"):
        load_facenet_state_dict(state)
    file = tmp_path / "facenet.pt"
    torch.save(_random_state(), file)
    model = load_facenet_file(file, sha256_file(file))
    assert isinstance(model, InceptionResnetV1) and not model.training
