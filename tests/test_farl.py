"""FaRL loader: strict load of a CLIP ViT-B/16 image tower in the official key layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fam.config import ModelSpec
from fam.errors import MissingWeightsError
from fam.faces.farl import VisionTransformer, visual_state_dict
from fam.io_utils import sha256_file
from fam.models.factory import BuildContext, build


def official_visual_shapes() -> dict[str, tuple[int, ...]]:
    """OpenAI CLIP ViT-B/16 image-tower keys and shapes, written from CLIP's model.py layout.

    width 768, 12 layers, patch 16 at 224 px (14 x 14 + 1 = 197 tokens), output 512.
    """
    w, out = 768, 512
    shapes: dict[str, tuple[int, ...]] = {
        "visual.class_embedding": (w,),
        "visual.positional_embedding": (197, w),
        "visual.proj": (w, out),
        "visual.conv1.weight": (w, 3, 16, 16),  # no bias in CLIP's patch embedding
        "visual.ln_pre.weight": (w,),
        "visual.ln_pre.bias": (w,),
        "visual.ln_post.weight": (w,),
        "visual.ln_post.bias": (w,),
    }
    for i in range(12):
        p = f"visual.transformer.resblocks.{i}."
        shapes |= {
            p + "attn.in_proj_weight": (3 * w, w),
            p + "attn.in_proj_bias": (3 * w,),
            p + "attn.out_proj.weight": (w, w),
            p + "attn.out_proj.bias": (w,),
            p + "ln_1.weight": (w,),
            p + "ln_1.bias": (w,),
            p + "mlp.c_fc.weight": (4 * w, w),
            p + "mlp.c_fc.bias": (4 * w,),
            p + "mlp.c_proj.weight": (w, 4 * w),
            p + "mlp.c_proj.bias": (w,),
            p + "ln_2.weight": (w,),
            p + "ln_2.bias": (w,),
        }
    return shapes


def random_checkpoint(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(s, generator=g) * 0.02 for k, s in official_visual_shapes().items()}
    # A few text-tower keys, which the loader must ignore.
    state |= {
        "token_embedding.weight": torch.zeros(10, 8),
        "logit_scale": torch.tensor(4.6),
        "text_projection": torch.zeros(8, 4),
    }
    return {"state_dict": state}


@pytest.mark.unit
def test_official_layout_loads_strictly() -> None:
    model = VisionTransformer()
    model.load_state_dict(visual_state_dict(random_checkpoint()), strict=True)
    ours = {f"visual.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == official_visual_shapes()


@pytest.mark.unit
def test_builder_loads_a_checkpoint_file_and_is_differentiable(tmp_path: Path) -> None:
    path = tmp_path / "farl.pth"
    torch.save(random_checkpoint(), path)
    spec = ModelSpec("farl", {"checkpoint": str(path), "sha256": sha256_file(path)})
    enc = build("attribute", spec, BuildContext(torch.device("cpu")))
    assert enc.feature_dim == 512
    x = torch.rand(2, 3, 64, 64, requires_grad=True) * 2 - 1
    x.retain_grad()
    f = enc.features(x)
    assert f.shape == (2, 512) and torch.isfinite(f).all()
    f.pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # The loaded values are the file's, not an initialisation.
    expected = random_checkpoint()["state_dict"]["visual.proj"]
    assert torch.equal(enc.visual.proj, expected)


@pytest.mark.unit
def test_wrong_or_missing_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError, match="checkpoint is not set"):
        build("attribute", ModelSpec("farl"), BuildContext(torch.device("cpu")))
    ckpt = random_checkpoint()
    del ckpt["state_dict"]["visual.ln_post.bias"]
    with pytest.raises(RuntimeError, match=r"ln_post\.bias"):
        VisionTransformer().load_state_dict(visual_state_dict(ckpt), strict=True)
    with pytest.raises(MissingWeightsError, match=r"no 'visual\.' keys"):
        visual_state_dict({"state_dict": {"token_embedding.weight": torch.zeros(1)}})
    bad = tmp_path / "bad.pth"
    torch.save({"state_dict": {"visual.proj": torch.zeros(768, 512)}}, bad)
    spec = ModelSpec("farl", {"checkpoint": str(bad), "sha256": sha256_file(bad)})
    with pytest.raises(MissingWeightsError, match="not a CLIP ViT-B/16"):
        build("attribute", spec, BuildContext(torch.device("cpu")))
