"""The stolen-key attack: invert the whole protection, not just the mixing.

The attacker holds the key, the generator, the inverter, the identity and attribute models and
the release's own settings (``settings.json``): everything but the originals. For the protected
images of one pseudonym folder (one person) it looks for original latents ``w`` whose protection
decodes to those images, and returns ``G(w)`` as its reconstruction of the originals.

The protection of a candidate ``w`` is Algorithm 1 written as a differentiable function
(:func:`unrolled_protection`): eq. 1 mixes ``w`` with the key, then Adam steps on eq. 5 run with
``create_graph``, the candidate's own decoding ``G(w)`` standing in for the real images the
losses compare with. With ``unroll_steps`` equal to the release's ``optimise.steps`` it *is* the
protection (a test checks it against :func:`fam.optimise.protect_views`); fewer steps with a
proportionally larger learning rate are a cheaper surrogate, and the report says which ran.
Two things the attacker cannot reproduce: the augmented views of single-image persons (it sees
one image) and the real images themselves (it has ``G(w)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fam.config import MixingConfig, OptimiseConfig
from fam.interfaces import AttributeEncoder, Generator, IdentityEncoder, Inverter
from fam.layers import LayerGroups
from fam.mixing import mix
from fam.optimise import ProtectionObjective, check_margin, lr_milestones
from fam.runtime import Engine


@dataclass(frozen=True)
class MethodModels:
    """What the protection ran with; the attacker knows all of it."""

    generator: Generator
    identity: IdentityEncoder
    attribute: AttributeEncoder
    groups: LayerGroups
    mixing: MixingConfig
    optimise: OptimiseConfig  # the release's own, margin resolved


def unrolled_protection(
    w: torch.Tensor,  # [B, num_ws, w_dim] candidate originals
    w_key: torch.Tensor,  # [1, num_ws, w_dim]
    group_ids: torch.Tensor,  # [B] person of each view, in [0, num_groups)
    num_groups: int,
    m: MethodModels,
    steps: int,
    real_images: torch.Tensor | None = None,  # [B, 3, R, R]; default G(w), differentiably
) -> torch.Tensor:
    """Protected latents ``[B, num_ws, w_dim]`` of ``w``, differentiable with respect to ``w``.

    Adam (torch's update rule, bias-corrected) on eq. 5 for ``steps`` steps. The learning rate is
    scaled by ``optimise.steps / steps`` and the milestones placed at the same fractions, so a
    short unroll travels about as far as the protection does; ``steps = optimise.steps`` is exact.
    """
    cfg = m.optimise
    check_margin(cfg)
    with torch.enable_grad():  # Adam needs the gradients of eq. 5 even under a caller's no_grad
        return _unroll(w, w_key, group_ids, num_groups, m, steps, real_images)


def _unroll(
    w: torch.Tensor,
    w_key: torch.Tensor,
    group_ids: torch.Tensor,
    num_groups: int,
    m: MethodModels,
    steps: int,
    real_images: torch.Tensor | None,
) -> torch.Tensor:
    cfg = m.optimise
    real = m.generator.synthesis(w) if real_images is None else real_images
    objective = ProtectionObjective(
        m.generator,
        m.identity,
        m.attribute,
        cfg,
        Engine(w.device),
        m.identity.embed(real).float(),
        m.attribute.features(real).float(),
        group_ids,
        num_groups,
    )
    w0 = mix(w, w_key.to(w), m.groups, m.mixing.mode)
    idx = torch.tensor(m.groups.indices(m.mixing.optimise_layers), device=w.device, dtype=torch.long)
    p = w0.index_select(1, idx)
    if steps <= 0 or cfg.steps == 0:
        return w0
    if not p.requires_grad:  # w is a constant: differentiate with respect to the layers alone
        p = p.detach().requires_grad_(True)
    b1, b2 = cfg.betas
    eps = 1e-8  # torch.optim.Adam's default, as the protection uses it
    lr0 = cfg.lr * cfg.steps / steps
    milestones = lr_milestones(cfg, steps)
    exp_avg, exp_avg_sq = torch.zeros_like(p), torch.zeros_like(p)
    for k in range(steps):
        _, terms, _, _ = objective(w0.index_copy(1, idx, p))
        (grad,) = torch.autograd.grad(terms.total, p, create_graph=True)
        exp_avg = b1 * exp_avg + (1 - b1) * grad
        exp_avg_sq = b2 * exp_avg_sq + (1 - b2) * grad * grad
        t = k + 1
        lr = lr0 * cfg.lr_gamma ** sum(ms <= k for ms in milestones)
        # sqrt has an infinite derivative at 0; a gradient entry that is exactly 0 (a hinge at
        # rest) would poison the second-order graph, so the root is taken of a floor.
        denom = exp_avg_sq.clamp_min(1e-30).sqrt() / (1 - b2**t) ** 0.5 + eps
        p = p - (lr / (1 - b1**t)) * exp_avg / denom
    return w0.index_copy(1, idx, p)


@dataclass(frozen=True)
class StolenKeyResult:
    reconstructions: torch.Tensor  # [B, 3, R, R] in [-1, 1]: G(w) of the best candidate originals
    losses: list[float]  # the attack's objective at each iteration (before its step)


def stolen_key_attack(
    protected: torch.Tensor,  # [B, 3, S, S] in [-1, 1]
    group_ids: Sequence[int],  # the pseudonym folder (person) of each image
    w_key: torch.Tensor,
    m: MethodModels,
    inverter: Inverter,
    *,
    iterations: int,
    unroll_steps: int,
    lr: float,
    identity_weight: float,
) -> StolenKeyResult:
    """Find ``w`` minimising ``L1(G(P(w)), x_p) + identity_weight * (1 - cos(I(G(P(w))), I(x_p)))``
    with Adam from the inversion of the protected images, ``P`` being :func:`unrolled_protection`."""
    g = m.generator
    r = g.resolution
    x_p = protected
    if x_p.shape[-1] != r:
        x_p = F.interpolate(
            x_p, size=(r, r), mode="bilinear", align_corners=False, antialias=x_p.shape[-1] > r
        )
    ids = torch.tensor(list(group_ids), device=x_p.device, dtype=torch.long)
    num_groups = int(ids.max()) + 1 if len(ids) else 0
    with torch.enable_grad():  # optimisation-based inverters need gradients inside
        w = inverter.invert(x_p).detach().clone().requires_grad_(True)
    with torch.no_grad():
        target = m.identity.embed(x_p).float()
    opt = torch.optim.Adam([w], lr=lr)
    losses: list[float] = []
    best, best_w = float("inf"), w.detach().clone()
    with torch.enable_grad():
        for _ in range(iterations):
            x = g.synthesis(unrolled_protection(w, w_key, ids, num_groups, m, unroll_steps))
            loss = F.l1_loss(x, x_p)
            if identity_weight > 0:
                cos = F.cosine_similarity(m.identity.embed(x).float(), target, dim=1)
                loss = loss + identity_weight * (1 - cos).mean()
            losses.append(loss.item())
            # Adam's steps have a fixed size even where the gradient is ~0, so the last iterate
            # can be worse than an earlier one: the attacker keeps the best candidate it saw.
            if losses[-1] < best:
                best, best_w = losses[-1], w.detach().clone()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        return StolenKeyResult(g.synthesis(best_w).clamp(-1, 1), losses)
