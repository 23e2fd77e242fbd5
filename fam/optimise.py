"""Algorithm 1, batched: optimise the mixed latents of many identity groups at once.

All views of a packed batch go through the generator and both encoders in one call per step;
the consistency term is a block-diagonal pairwise matrix (fam.losses). Only the configured
layers (default: the identity layers) are parameters; every other layer is a constant copy of
the naive mix, so gradients cannot reach it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from fam.config import MixingConfig, OptimiseConfig
from fam.errors import ConfigError
from fam.interfaces import AttributeEncoder, Generator, IdentityEncoder
from fam.layers import LayerGroups
from fam.losses import LossTerms, attribute_loss, total_loss
from fam.mixing import mix
from fam.runtime import Engine


@dataclass(frozen=True)
class ViewBatch:
    """Views of several identity groups, packed for one optimisation run.

    images:  ``[B, 3, R, R]`` aligned real views (augmented ones included) in [-1, 1].
    w_real:  ``[B, num_ws, w_dim]`` their inversions.
    group_ids: ``[B]`` local group index in ``[0, num_groups)``.
    anchors / anchor_group_ids: detached identity embeddings of the same groups' views that an
        earlier chunk already optimised (large groups); None when the batch holds whole groups.
    """

    images: torch.Tensor
    w_real: torch.Tensor
    group_ids: torch.Tensor
    num_groups: int
    anchors: torch.Tensor | None = None
    anchor_group_ids: torch.Tensor | None = None


@dataclass(frozen=True)
class OptimiseResult:
    ws: torch.Tensor  # [B, num_ws, w_dim] protected latents (z_p*)
    images: torch.Tensor  # [B, 3, R, R] decoded protected faces
    identity: torch.Tensor  # [B, D] identity embeddings of the protected faces
    view_anonymity_cos: torch.Tensor  # [B] cos(I(x_p), I(x_r)) per view, after optimisation
    view_attribute: torch.Tensor  # [B] eq. 4 per view
    terms: LossTerms  # per-group terms after optimisation
    initial_terms: LossTerms  # per-group terms of the naive mix (step 0)
    # [steps + 1, G, 4]: per-group terms after 0..steps steps, in fam.artifacts.LossCurve.TERMS order
    curve: torch.Tensor


def _curve_row(terms: LossTerms) -> torch.Tensor:
    parts = (terms.total_per_group, terms.anonymity, terms.consistency, terms.attribute)
    return torch.stack([t.detach().float() for t in parts], dim=1)


@dataclass(frozen=True)
class ProtectionObjective:
    """Eq. 5 of a batch of views as a function of their latents: decode, embed, score.

    ``emb_r``/``feat_r`` are the real views' identity embeddings and attribute features; the
    protection holds them fixed, the stolen-key attack (fam.evaluate.stolen_key) computes them
    from its candidate originals and differentiates through them.
    """

    generator: Generator
    identity: IdentityEncoder
    attribute: AttributeEncoder
    cfg: OptimiseConfig
    engine: Engine
    emb_r: torch.Tensor
    feat_r: torch.Tensor
    group_ids: torch.Tensor
    num_groups: int
    anchors: torch.Tensor | None = None
    anchor_group_ids: torch.Tensor | None = None

    def __call__(self, ws: torch.Tensor) -> tuple[torch.Tensor, LossTerms, torch.Tensor, torch.Tensor]:
        """(decoded images, per-group terms, identity embeddings, attribute features) of ``ws``."""
        with self.engine.autocast():
            x = self.generator.synthesis(ws)
            emb_p = self.identity.embed(x)
            feat_p = self.attribute.features(x)
        # Losses in float32 whatever the forward precision (outside autocast, which would run
        # the pairwise distances in bf16).
        emb_p, feat_p = emb_p.float(), feat_p.float()
        terms = total_loss(
            emb_p,
            self.emb_r,
            feat_p,
            self.feat_r,
            self.group_ids,
            self.num_groups,
            self.cfg,
            self.anchors,
            self.anchor_group_ids,
        )
        return x.float(), terms, emb_p, feat_p


def check_margin(cfg: OptimiseConfig) -> None:
    if not isinstance(cfg.margin, float | int):
        raise ConfigError(
            f"optimise.margin = {cfg.margin!r} must be resolved to a number before protecting "
            "(fam.calibration.resolve_margin; fam protect does this)"
        )


def lr_milestones(cfg: OptimiseConfig, steps: int) -> list[int]:
    """The steps after which the learning rate is multiplied by ``lr_gamma``."""
    return sorted({max(1, round(f * steps)) for f in cfg.lr_milestones})


def protect_views(
    batch: ViewBatch,
    w_key: torch.Tensor,
    generator: Generator,
    identity: IdentityEncoder,
    attribute: AttributeEncoder,
    groups: LayerGroups,
    mixing: MixingConfig,
    cfg: OptimiseConfig,
    engine: Engine | None = None,  # precision of the forward passes (default fp32); latents stay fp32
    on_step: Callable[[int], None] | None = None,
) -> OptimiseResult:
    """Naive mixing (eq. 1) followed by ``cfg.steps`` Adam steps on eq. 5.

    ``on_step(n)`` is called after the n-th Adam step (1..steps), e.g. to move a progress bar.
    """
    check_margin(cfg)
    device = batch.w_real.device
    engine = engine or Engine(device)
    images = batch.images.to(device)
    w0 = mix(batch.w_real, w_key.to(device), groups, mixing.mode).detach()
    opt_idx = torch.tensor(groups.indices(mixing.optimise_layers), device=device, dtype=torch.long)

    with torch.no_grad(), engine.autocast():
        emb_r = identity.embed(images).float()
        feat_r = attribute.features(images).float()
    forward = ProtectionObjective(
        generator,
        identity,
        attribute,
        cfg,
        engine,
        emb_r,
        feat_r,
        batch.group_ids,
        batch.num_groups,
        batch.anchors,
        batch.anchor_group_ids,
    )
    with torch.no_grad():
        _, initial_terms, _, _ = forward(w0)

    param = w0.index_select(1, opt_idx).clone().requires_grad_(True)
    # Row k is the loss each step's forward already computes (after k updates): no extra pass.
    rows = [_curve_row(initial_terms)]
    if cfg.steps > 0:
        opt = torch.optim.Adam([param], lr=cfg.lr, betas=cfg.betas)
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=lr_milestones(cfg, cfg.steps), gamma=cfg.lr_gamma
        )
        with torch.enable_grad():
            for step in range(cfg.steps):
                _, terms, _, _ = forward(w0.index_copy(1, opt_idx, param))
                if step > 0:
                    rows.append(_curve_row(terms))
                opt.zero_grad(set_to_none=True)
                terms.total.backward()
                opt.step()
                sched.step()
                if on_step is not None:
                    on_step(step + 1)

    with torch.no_grad():
        ws = w0.index_copy(1, opt_idx, param.detach())
        x, terms, emb_p, feat_p = forward(ws)
        cos = torch.nn.functional.cosine_similarity(emb_p, emb_r, dim=1)
        view_attr = attribute_loss(feat_p, feat_r)
    if cfg.steps > 0:
        rows.append(_curve_row(terms))
    return OptimiseResult(
        ws=ws,
        images=x.clamp(-1, 1),
        identity=emb_p,
        view_anonymity_cos=cos,
        view_attribute=view_attr,
        terms=terms,
        initial_terms=initial_terms,
        curve=torch.stack(rows).cpu(),
    )
