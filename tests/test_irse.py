"""ArcFace IR / IR-SE backbones load official TreB1eN / face.evoLVe state dicts strictly."""

from __future__ import annotations

import pytest
import torch

from fam.errors import InputError
from fam.models.irse import Backbone, load_backbone_state_dict
from tests.helpers.official_layouts import arcface_backbone, materialise

pytestmark = pytest.mark.unit


def test_ir_se50_treb1en_layout_loads_and_embeds():
    layout = arcface_backbone(50, "ir_se", affine=True)
    sd = materialise(layout, seed=0)
    model = load_backbone_state_dict(sd)
    assert (model.num_layers, model.mode) == (50, "ir_se")
    assert set(model.state_dict()) == set(layout)
    with torch.no_grad():
        emb = model(torch.rand(2, 3, 112, 112) * 2 - 1)
    assert emb.shape == (2, 512)
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match=r"\[B, 3, 112, 112\]"):
        model(torch.zeros(1, 3, 128, 128))


def test_ir152_layout_loads_strictly():
    layout = arcface_backbone(152, "ir", affine=False)  # face.evoLVe / pSp IR_152: BatchNorm1d(affine=False)
    model = load_backbone_state_dict(materialise(layout, seed=1))
    assert (model.num_layers, model.mode) == (152, "ir")
    assert set(model.state_dict()) == set(layout)
    assert model.output_layer[4].weight is None


def test_legacy_and_dataparallel_files_load_but_other_gaps_do_not():
    sd = materialise(arcface_backbone(50, "ir_se"), seed=0)
    legacy = {f"module.{k}": v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    assert load_backbone_state_dict(legacy).mode == "ir_se"
    broken = dict(sd)
    del broken["body.3.res_layer.1.weight"]
    with pytest.raises(InputError, match=r"body\.3\.res_layer\.1\.weight"):
        load_backbone_state_dict(broken)
    with pytest.raises(InputError, match="not an IR/IR-SE"):
        load_backbone_state_dict({"fc.weight": torch.zeros(1)})


def test_block_counts_match_the_depth_names():
    with torch.device("meta"):  # shapes only, nothing allocated
        for depth, units in ((50, 24), (100, 49), (152, 50)):
            assert len(Backbone(depth, "ir").body) == units
