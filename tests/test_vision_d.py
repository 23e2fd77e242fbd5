"""Vision-aided discriminator head of the prior trainer (fam.training.vision_d).

They use a random-weight EfficientNet-Lite0 of the real architecture, so they need no weight file;
tests/test_efficientnet_lite_weights.py checks the real weights (``model``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fam.config import ConfigError, PriorTrainingConfig, parse_params
from fam.models.efficientnet_lite import EfficientNetLite0, SameConv2d
from fam.runtime import Engine
from fam.training.prior import PriorTrainer
from fam.training.vision_d import FEATURE_RMS, VisionDiscriminator, VisionHead, mode_seeking_loss

pytestmark = pytest.mark.unit

TINY = {"resolution": 32, "channels": {4: 16, 8: 16, 16: 16, 32: 8}, "w_dim": 32, "n_mlp": 2, "batch": 4}


def tiny_cfg(**kw: object) -> PriorTrainingConfig:
    return PriorTrainingConfig(**{**TINY, "r1_interval": 2, "ema_kimg": 0.01, **kw})  # type: ignore[arg-type]


def faces(n: int = 12, r: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, r, r), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def random_lite0(seed: int = 0) -> EfficientNetLite0:
    """The real architecture with He-scaled random convolutions and non-trivial BatchNorm statistics."""
    net = EfficientNetLite0()
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if t.ndim == 4:  # conv [out, in / groups, k, k]
                t.copy_(torch.randn(t.shape, generator=rng) * math.sqrt(2.0 / t[0].numel()))
            elif name.endswith(("running_var", ".weight")) and t.ndim == 1:
                t.copy_(torch.rand(t.shape, generator=rng) + 0.5)
            else:  # BN bias / running mean, fc
                t.copy_(torch.randn(t.shape, generator=rng) * 0.1)
    return net.eval()


def trainer(cfg: PriorTrainingConfig, precision: str = "fp32") -> PriorTrainer:
    engine = Engine(torch.device("cpu"), precision, "split")  # type: ignore[arg-type]
    return PriorTrainer(cfg, faces(), engine, vision_extractor=random_lite0())


def params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


# ---------------------------------------------------------------------------------------------- network


def test_same_padding_puts_the_extra_row_after() -> None:
    conv = SameConv2d(2, 3, 3, stride=2, bias=False)
    x = torch.randn(1, 2, 8, 8)
    want = F.conv2d(F.pad(x, [0, 1, 0, 1]), conv.weight, stride=2)  # TF SAME for an even side
    assert torch.equal(conv(x), want) and want.shape[-1] == 4


def test_folded_frozen_extractor_matches_and_stays_frozen() -> None:
    net = random_lite0()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        want = net.features(x, [4, 10, 15])
        logits = net(x)
    net.frozen()
    with torch.no_grad():
        got = net.features(x, [4, 10, 15])
        # folding BN reorders float sums: compare at the logits' scale (up to ~13 here)
        assert torch.allclose(net(x), logits, rtol=1e-4, atol=1e-4 * logits.abs().max().item())
    assert [tuple(f.shape[1:]) for f in got] == [(40, 8, 8), (112, 4, 4), (320, 2, 2)]
    for a, b in zip(got, want, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())
    assert not any(p.requires_grad for p in net.parameters())
    assert not net.train().training  # a frozen net ignores train()


def test_head_gives_one_logit_per_image_and_refuses_bad_sizes() -> None:
    vision = VisionDiscriminator(random_lite0(), 128)
    vision.head.reset_parameters(0)
    x = (torch.rand(3, 3, 32, 32) * 2 - 1).requires_grad_(True)
    logits = vision(x)
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # G's gradient flows through the extractor
    assert sum(p.numel() for p in vision.head.parameters()) < 500_000
    with pytest.raises(ValueError, match="power of two"):
        VisionHead(96)
    with pytest.raises(ConfigError, match="vision_size"):
        parse_params({"training": {"prior": {"vision_size": 224}}})
    assert parse_params({}).training.prior.vision_weight == 0.0  # off by default


# ---------------------------------------------------------------------------------------------- trainer


def test_head_off_or_not_yet_started_leaves_the_step_unchanged() -> None:
    off = trainer(tiny_cfg())
    waiting = trainer(tiny_cfg(vision_weight=0.5, vision_start_kimg=1.0))
    assert off.vision is None and waiting.vision is not None
    head0 = {k: v.clone() for k, v in waiting.vision.head.state_dict().items()}
    for _ in range(3):
        assert off.train_step() == waiting.train_step()
    assert params_equal(off.G, waiting.G) and params_equal(off.D, waiting.D)
    assert torch.equal(off.rng.get_state(), waiting.rng.get_state())
    assert all(torch.equal(v, head0[k]) for k, v in waiting.vision.head.state_dict().items())


def test_active_head_trains_draws_nothing_and_keeps_the_extractor_frozen() -> None:
    off = trainer(tiny_cfg())
    on = trainer(tiny_cfg(vision_weight=0.1, vision_start_kimg=0.0, vision_rampup_kimg=0.008))
    assert on.vision is not None
    head0 = [p.clone() for p in on.vision.head.parameters()]
    extractor0 = {k: v.clone() for k, v in on.vision.extractor.state_dict().items()}
    weights = []
    for _ in range(3):
        off.train_step()
        stats = on.train_step()
        assert all(np.isfinite(v) for v in stats.values()) and {"loss_gv", "loss_dv"} <= set(stats)
        weights.append(stats["vision_weight"])
    assert weights == pytest.approx([0.0, 0.05, 0.1])  # ramp over 8 images, batch 4
    assert any(not torch.equal(a, b) for a, b in zip(head0, on.vision.head.parameters(), strict=True))
    assert all(torch.equal(v, extractor0[k]) for k, v in on.vision.extractor.state_dict().items())
    assert torch.equal(off.rng.get_state(), on.rng.get_state())  # same draws as with the head off
    assert not params_equal(off.G, on.G)  # the head's gradient reached G


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_with_the_head_repeats_the_next_step_exactly(tmp_path: Path, precision: str) -> None:
    cfg = tiny_cfg(vision_weight=0.1, vision_start_kimg=0.004, vision_rampup_kimg=0.0)
    a = trainer(cfg, precision)
    a.train_step()
    a.train_step()
    a.save(tmp_path / "state.pt")
    want = a.train_step()
    b = trainer(cfg, precision)
    b.load(tmp_path / "state.pt")
    got = b.train_step()
    assert got == want and "loss_dv" in got and not b.notes
    assert a.vision is not None and b.vision is not None
    assert params_equal(a.vision.head, b.vision.head) and params_equal(a.G_ema, b.G_ema)


def test_a_headless_state_resumes_with_the_head_on(tmp_path: Path) -> None:
    old = trainer(tiny_cfg())  # e.g. the run in progress, saved before the head existed
    old.train_step()
    old.save(tmp_path / "state.pt")
    old.write_lifeboat(tmp_path / "lb")
    cfg = tiny_cfg(vision_weight=0.1, vision_start_kimg=0.0)
    for load in ("state", "lifeboat"):
        new = trainer(cfg)
        fresh = {k: v.clone() for k, v in new.vision.head.state_dict().items()}  # type: ignore[union-attr]
        if load == "state":
            new.load(tmp_path / "state.pt")
            assert params_equal(new.G, old.G) and params_equal(new.D, old.D)
        else:
            new.load_lifeboat(tmp_path / "lb")
        assert new.step == 1 and len(new.notes) == 1 and "starts fresh" in new.notes[0]
        assert all(torch.equal(v, fresh[k]) for k, v in new.vision.head.state_dict().items())  # type: ignore[union-attr]
        stats = new.train_step()
        assert all(np.isfinite(v) for v in stats.values()) and "loss_dv" in stats


def test_lifeboat_carries_the_head_and_a_headless_trainer_drops_it(tmp_path: Path) -> None:
    cfg = tiny_cfg(vision_weight=0.1, vision_start_kimg=0.0)
    a = trainer(cfg)
    a.train_step()
    a.write_lifeboat(tmp_path / "lb")
    assert (tmp_path / "lb" / "vision_head_fp16.pt").is_file()
    b = trainer(cfg)
    b.load_lifeboat(tmp_path / "lb")
    assert a.vision is not None and b.vision is not None and not b.notes
    for pa, pb in zip(a.vision.head.parameters(), b.vision.head.parameters(), strict=True):
        assert torch.allclose(pa, pb, rtol=1e-3, atol=1e-3)  # fp16 copies
    c = trainer(tiny_cfg())
    c.load_lifeboat(tmp_path / "lb")
    assert c.vision is None and "dropped" in c.notes[0]


# ---------------------------------------------------------------------------------------------- diversity


def feature_maps(pooled: torch.Tensor, side: int = 4) -> list[torch.Tensor]:
    """Tapped maps whose global means are ``pooled`` [B, 432] (the stride-16 and -32 parts) times
    the RMS scale; the stride-8 map is random, since the term must ignore it."""
    b = pooled.shape[0]
    lo = torch.randn(b, 40, 2 * side, 2 * side)
    mid = (pooled[:, :112] * FEATURE_RMS[1]).view(b, 112, 1, 1).expand(-1, -1, side, side)
    top = (pooled[:, 112:] * FEATURE_RMS[2]).view(b, 320, 1, 1).expand(-1, -1, side // 2, side // 2)
    return [lo, mid.contiguous(), top.contiguous()]


def test_mode_seeking_loss_is_minus_the_mean_log_pair_distance() -> None:
    pooled = torch.randn(4, 112 + 320, generator=torch.Generator().manual_seed(1))
    got = mode_seeking_loss(feature_maps(pooled))
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    want = -torch.stack([(pooled[i] - pooled[j]).abs().mean().log() for i, j in pairs]).mean()
    assert torch.allclose(got, want, atol=1e-5)
    # it ignores the stride-8 tap and where in the map a feature sits (DiffAugment's translation)
    maps = feature_maps(pooled)
    moved = [torch.randn_like(maps[0]), maps[1].roll(1, dims=3), maps[2]]
    assert torch.allclose(mode_seeking_loss(moved), got, atol=1e-5)
    # fakes that sit closer together cost more: this is what pushes G's outputs apart
    assert mode_seeking_loss(feature_maps(pooled * 0.5)) > got
    with pytest.raises(ValueError, match="at least 2"):
        mode_seeking_loss(feature_maps(pooled[:1]))


def test_diversity_term_reaches_g_draws_nothing_and_needs_the_head() -> None:
    cfg = {"vision_weight": 0.1, "vision_start_kimg": 0.0, "vision_rampup_kimg": 0.0}
    plain = trainer(tiny_cfg(**cfg))
    diverse = trainer(tiny_cfg(**cfg, diversity_weight=1.0))
    for _ in range(2):
        assert "loss_div" not in plain.train_step()
        stats = diverse.train_step()
        assert np.isfinite(stats["loss_div"])
    assert torch.equal(plain.rng.get_state(), diverse.rng.get_state())
    assert not params_equal(plain.G, diverse.G)
    with pytest.raises(ConfigError, match="diversity_weight > 0 needs vision_weight"):
        parse_params({"training": {"prior": {"diversity_weight": 1.0}}})
    assert parse_params({}).training.prior.diversity_weight == 0.0  # off by default
