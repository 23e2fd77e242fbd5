"""The three losses of Algorithm 1, batched over many identity groups at once.

Views of several people travel through the models as one batch; ``group_ids [B]`` says which
person each view belongs to. Every loss is returned per group and the total is their SUM, so
each group's latents get exactly the gradient they would get if the group were optimised
alone (Adam then treats every latent element independently): batching changes speed, not
results.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fam.config import OptimiseConfig


def anonymity_loss(
    emb_protected: torch.Tensor, emb_real: torch.Tensor, margin: float, form: str = "hinge"
) -> torch.Tensor:
    """Eq. 2 per view: ``max(0, cos(I(x_p), I(x_r)) - m)``; ``form="abs"`` is the authors' ``|cos - m|``.

    emb_*: ``[B, D]``. Returns ``[B]``.
    """
    cos = F.cosine_similarity(emb_protected, emb_real, dim=1)
    if form == "hinge":
        return torch.clamp(cos - margin, min=0.0)
    if form == "abs":
        return (cos - margin).abs()
    raise ValueError(f"unknown anonymity loss form {form!r}")


def consistency_loss(
    emb_protected: torch.Tensor,
    group_ids: torch.Tensor,
    anchors: torch.Tensor | None = None,
    anchor_group_ids: torch.Tensor | None = None,
    num_groups: int | None = None,
) -> torch.Tensor:
    """Eq. 3 per group: the mean L2 distance over the pairs of a group's protected views.

    Eq. 3's normaliser is 1/(N(N-1)); with the sum over ordered pairs (i != j), as the authors'
    code and docstring have it, that is the mean over the N(N-1)/2 unordered pairs (the
    typeset ``j > i`` would halve it). One pairwise distance matrix for the whole batch,
    masked block-diagonally by group: no Python loop over pairs or groups.

    ``anchors [A, D]`` (detached identity embeddings of views of the same groups that an
    earlier chunk already optimised) extend the mean to the pairs (view, anchor), so a large
    group processed in memory-bounded chunks still converges on ONE identity. A group with a
    single view and no anchors has no pairs and contributes 0.

    emb_protected: ``[B, D]``; group_ids: ``[B]`` ints in ``[0, num_groups)``. Returns ``[G]``.
    """
    num_groups = int(group_ids.max().item()) + 1 if num_groups is None else num_groups
    dist = _pairwise_l2(emb_protected, emb_protected)
    same = group_ids[:, None] == group_ids[None, :]
    upper = torch.triu(torch.ones_like(same), diagonal=1)
    pair_sum = torch.zeros(num_groups, device=emb_protected.device, dtype=emb_protected.dtype)
    pair_sum = pair_sum.index_add(0, group_ids, (dist * (same & upper)).sum(dim=1))
    n = torch.bincount(group_ids, minlength=num_groups).to(emb_protected.dtype)
    pairs = n * (n - 1) / 2
    if anchors is not None and anchors.numel():
        assert anchor_group_ids is not None
        dist_a = _pairwise_l2(emb_protected, anchors)
        same_a = group_ids[:, None] == anchor_group_ids[None, :]
        pair_sum = pair_sum.index_add(0, group_ids, (dist_a * same_a).sum(dim=1))
        pairs = pairs + n * torch.bincount(anchor_group_ids, minlength=num_groups).to(n.dtype)
    return torch.where(pairs > 0, pair_sum / pairs.clamp(min=1), torch.zeros_like(pair_sum))


def attribute_loss(feat_protected: torch.Tensor, feat_real: torch.Tensor) -> torch.Tensor:
    """Eq. 4 per view: ``||A(x_p) - A(x_r)||_1``, the L1 norm (a sum over feature dimensions).

    As typeset in the paper, so that lambda_attr = 0.15 weighs the term as the paper's does for
    an encoder of the same width. Its size grows with the feature width of the attribute encoder
    (fam-attr: see ``feature_dim``); the authors' code instead sums a per-token MEAN L1 over
    FaRL's 197 ViT tokens (docs/reference.md). Returns ``[B]``.
    """
    return (feat_protected - feat_real).abs().sum(dim=1)


@dataclass(frozen=True)
class LossTerms:
    """Per-group terms ``[G]`` and the scalar to minimise."""

    anonymity: torch.Tensor
    consistency: torch.Tensor
    attribute: torch.Tensor
    total_per_group: torch.Tensor
    total: torch.Tensor


def total_loss(
    emb_p: torch.Tensor,
    emb_r: torch.Tensor,
    feat_p: torch.Tensor,
    feat_r: torch.Tensor,
    group_ids: torch.Tensor,
    num_groups: int,
    cfg: OptimiseConfig,
    anchors: torch.Tensor | None = None,
    anchor_group_ids: torch.Tensor | None = None,
) -> LossTerms:
    """Eq. 5 per group; the anonymity and attribute terms are means over the group's views."""
    counts = torch.bincount(group_ids, minlength=num_groups).to(emb_p.dtype).clamp(min=1)
    per_view_anon = anonymity_loss(emb_p, emb_r, cfg.margin, cfg.anonymity_form)
    per_view_attr = attribute_loss(feat_p, feat_r)
    zeros = torch.zeros(num_groups, device=emb_p.device, dtype=emb_p.dtype)
    anon = zeros.index_add(0, group_ids, per_view_anon) / counts
    attr = zeros.index_add(0, group_ids, per_view_attr) / counts
    cons = consistency_loss(emb_p, group_ids, anchors, anchor_group_ids, num_groups)
    w = cfg.weights
    per_group = w.anonymity * anon + w.consistency * cons + w.attribute * attr
    return LossTerms(anon, cons, attr, per_group, per_group.sum())


def _pairwise_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # cdist's gradient is NaN at zero distance (a view paired with an identical embedding); the
    # epsilon keeps the sqrt differentiable there without changing non-degenerate distances.
    sq = (a[:, None, :] - b[None, :, :]).pow(2).sum(-1)
    return torch.sqrt(sq + 1e-12)
