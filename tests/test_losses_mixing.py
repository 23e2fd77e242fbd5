"""Each loss against hand-computed values; mixing indices; the batched engine's invariants."""

from __future__ import annotations

import math

import pytest
import torch

from fam.config import OptimiseConfig, parse_params
from fam.groups import plan_batches
from fam.layers import auto_groups
from fam.losses import anonymity_loss, attribute_loss, consistency_loss, total_loss
from fam.mixing import mix

pytestmark = pytest.mark.unit


def test_mix_paper_and_authors_variant():
    g = auto_groups(18)
    real = torch.zeros(2, 18, 4)
    key = torch.ones(1, 18, 4)
    paper = mix(real, key, g, "paper")
    assert paper[:, 3:8].eq(1).all() and paper[:, :3].eq(0).all() and paper[:, 8:].eq(0).all()
    authors = mix(real, key, g, "authors_code")
    assert authors[:, :3].eq(1).all() and authors[:, 3:].eq(0).all()
    assert real.eq(0).all()  # inputs untouched


def test_anonymity_loss_hand_values():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0]])  # cos 1, 0, -0.7071
    assert torch.allclose(anonymity_loss(a, b, 0.0), torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(anonymity_loss(a, b, 0.5), torch.tensor([0.5, 0.0, 0.0]))
    assert torch.allclose(
        anonymity_loss(a, b, 0.0, "abs"), torch.tensor([1.0, 0.0, 1 / math.sqrt(2)]), atol=1e-6
    )


def test_consistency_loss_hand_values_block_diagonal():
    # group 0: points (0,0), (3,4), (0,4): distances 5, 4, 3 -> mean over 3 pairs = 4
    # group 1: points (1,1), (1,2): distance 1 -> 1; group 2: a single view -> 0
    emb = torch.tensor([[0.0, 0.0], [1.0, 1.0], [3.0, 4.0], [1.0, 2.0], [0.0, 4.0], [9.0, 9.0]])
    ids = torch.tensor([0, 1, 0, 1, 0, 2])
    assert torch.allclose(consistency_loss(emb, ids), torch.tensor([4.0, 1.0, 0.0]), atol=1e-5)
    # an anchor from an earlier chunk adds the pairs (view, anchor), not (anchor, anchor):
    # group 1 + anchor (1,4): distances 1 (views), 3 and 2 (view-anchor) -> 6 / 3 = 2
    out = consistency_loss(emb, ids, anchors=torch.tensor([[1.0, 4.0]]), anchor_group_ids=torch.tensor([1]))
    assert torch.allclose(out[1], torch.tensor(2.0), atol=1e-5)


def test_attribute_loss_is_the_l1_norm_of_eq_4():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[0.0, 2.0, 5.0, 4.0]])
    assert torch.allclose(attribute_loss(a, b), torch.tensor([3.0]))  # |1| + |0| + |-2| + |0|


def test_total_loss_weights_and_group_means():
    cfg = OptimiseConfig(margin=0.0)
    emb_p = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    emb_r = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    feat = torch.zeros(2, 3)
    t = total_loss(emb_p, emb_r, feat, feat + 1, torch.tensor([0, 0]), 1, cfg)
    # anon mean (1 + 0)/2 = 0.5; consistency: one pair at distance sqrt(2); attribute L1 = 3 x 1
    expect = 10 * 0.5 + 10 * math.sqrt(2) + 0.15 * 3.0
    assert torch.allclose(t.total, torch.tensor(expect), atol=1e-5)


def test_batching_groups_sums_independent_losses():
    cfg = OptimiseConfig(margin=0.0)
    torch.manual_seed(0)
    emb_p, emb_r, fp, fr = torch.randn(5, 8), torch.randn(5, 8), torch.randn(5, 4), torch.randn(5, 4)
    ids = torch.tensor([0, 0, 1, 1, 1])
    together = total_loss(emb_p, emb_r, fp, fr, ids, 2, cfg).total_per_group
    alone0 = total_loss(emb_p[:2], emb_r[:2], fp[:2], fr[:2], ids[:2], 1, cfg).total
    alone1 = total_loss(emb_p[2:], emb_r[2:], fp[2:], fr[2:], ids[2:] - 1, 1, cfg).total
    assert torch.allclose(together, torch.stack([alone0, alone1]), atol=1e-6)


def test_plan_keeps_persons_apart_unless_packing_is_asked_for():
    alone = plan_batches([6, 2, 3, 20, 1], max_views=8)
    assert all(len(b.groups) == 1 for b in alone)
    assert [b.groups for b in alone if b.groups != (3,)] == [(0,), (2,), (1,), (4,)]
    packed = plan_batches([6, 2, 3, 20, 1], max_views=8, pack=True)
    assert any(len(b.groups) > 1 for b in packed)


def test_plan_packs_small_groups_and_chunks_large_ones():
    plan = plan_batches([6, 2, 3, 20, 1], max_views=8, pack=True)
    covered = sorted((s.group, s.view) for b in plan for s in b.slots)
    assert covered == sorted((g, v) for g, n in enumerate([6, 2, 3, 20, 1]) for v in range(n))
    assert all(len(b.slots) <= 8 for b in plan)
    chunks = [b for b in plan if b.groups == (3,)]
    assert [b.chunk for b in chunks] == [0, 1, 2] and [len(b.slots) for b in chunks] == [7, 6, 7]
    assert plan == plan_batches([6, 2, 3, 20, 1], max_views=8, pack=True)  # deterministic
    with pytest.raises(ValueError):
        plan_batches([3], max_views=1)


def test_params_anonymity_form_switch():
    assert parse_params({"optimise": {"anonymity_form": "abs"}}).optimise.anonymity_form == "abs"
