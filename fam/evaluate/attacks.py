"""Non-invertibility attacks by an adversary who knows the key and sees protected images.

1. Latent replacement (paper section 4, fig. 6): invert the protected image into W+, replace
   the layers that the key face supplies in the mixing (the identity layers 3-7 for the paper's
   equation 1; the coarse layers in the authors'-code mode) by the key face's layers, and decode.
   This is the paper's attack as it is described, taken literally.
2. Learned mapper (table 4): a small U-Net trained on (protected, original) pairs of training
   people with L1 plus an identity loss (1 - cosine of the method's own identity model: the
   attacker knows the method), then applied to held-out people. Small enough to train on a CPU
   in minutes at 64 px; the report says whether its loss had settled.
3. Stolen key (:mod:`fam.evaluate.stolen_key`): with the key, the models and the release's
   settings, optimise original latents whose *whole protection* (eq. 1 and Algorithm 1, unrolled)
   reproduces the protected images of a person.

Each is registered in :data:`ATTACKS` under its ``evaluate.attacks`` name as a function of the
evaluation context; :func:`attack_tasks` makes the configured ones independent tasks (the
evaluation runs them beside its thresholds), :func:`run_attacks` runs them in turn.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fam.config import ModelSpec, Params
from fam.interfaces import Generator, Inverter
from fam.registry import Registry
from fam.runtime import Engine, resolve_engine

if TYPE_CHECKING:
    from fam.evaluate.context import EvaluationContext


@torch.no_grad()
def latent_replacement(
    protected: torch.Tensor,  # [B, 3, S, S] in [-1, 1]
    inverter: Inverter,
    generator: Generator,
    key_ws: torch.Tensor,  # [1, num_ws, w_dim]: the key face's latent (fam.keys.key_latent)
    key_layers: Sequence[int],  # W+ layers that the key supplied in the mixing
) -> torch.Tensor:
    """Reconstructions ``[B, 3, R, R]`` at the generator's resolution."""
    r = generator.resolution
    x = protected
    if x.shape[-1] != r:
        x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=x.shape[-1] > r)
    with torch.enable_grad():  # optimisation-based inverters need gradients inside
        ws = inverter.invert(x).detach()
    if ws.shape[1:] != key_ws.shape[1:]:
        raise ValueError(
            f"inverted latents {tuple(ws.shape)} do not match the key latent {tuple(key_ws.shape)}"
        )
    ws = ws.clone()
    idx = list(key_layers)
    ws[:, idx] = key_ws[:, idx].to(ws)
    return generator.synthesis(ws).clamp(-1, 1)


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.GroupNorm(min(8, cout), cout),
            nn.SiLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.SiLU(),
        )


class MapperNet(nn.Module):
    """A three-level U-Net: ``[B, 3, S, S] -> [B, 3, S, S]`` in [-1, 1] (S divisible by 4)."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        c = channels
        self.enc1, self.enc2, self.mid = _Block(3, c), _Block(c, 2 * c), _Block(2 * c, 4 * c)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2), _Block(4 * c, 2 * c)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2), _Block(2 * c, c)
        self.out = nn.Conv2d(c, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"MapperNet needs a side divisible by 4, got {tuple(x.shape[-2:])}")
        e1 = self.enc1(x)
        e2 = self.enc2(F.avg_pool2d(e1, 2))
        m = self.mid(F.avg_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return torch.tanh(self.out(d1) + x)  # residual: starts near the identity map


def train_mapper(
    protected: torch.Tensor,  # [N, 3, S, S] protected images of training people
    original: torch.Tensor,  # [N, 3, S, S] the matching originals
    *,
    steps: int,
    lr: float,
    batch: int,
    channels: int,
    seed: int,
    identity: Callable[[torch.Tensor], torch.Tensor] | None = None,  # images -> embeddings
    identity_weight: float = 0.0,
    engine: Engine | None = None,  # forward precision (bf16 autocast where it pays); default fp32
) -> tuple[MapperNet, list[float]]:
    """Fit the mapper with L1 (+ ``identity_weight`` x (1 - cos) of ``identity`` embeddings);
    returns it (eval mode, float32 weights) and the loss of every step.

    Deterministic for a seed and precision: initialisation and batch order come from a private
    generator. The originals' embeddings are computed once, not per step.
    """
    if protected.shape != original.shape or len(protected) == 0:
        raise ValueError(
            f"need equal, non-empty pair tensors, got {tuple(protected.shape)} / {tuple(original.shape)}"
        )
    net = MapperNet(channels)
    _seeded_init(net, seed)
    engine = engine or Engine(protected.device)
    rng = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses: list[float] = []
    embed = identity if identity_weight > 0 else None
    if embed is not None:
        with torch.no_grad(), engine.autocast():
            targets = torch.cat([embed(original[i : i + 64]).float() for i in range(0, len(original), 64)])
    net.train()
    for _ in range(steps):
        idx = torch.randint(len(protected), (min(batch, len(protected)),), generator=rng)
        with engine.autocast():
            out = net(protected[idx])
            embedded = embed(out) if embed is not None else None
        loss = F.l1_loss(out.float(), original[idx])
        if embedded is not None:
            cos = F.cosine_similarity(embedded.float(), targets[idx], dim=1)
            loss = loss + identity_weight * (1 - cos).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return net.eval().requires_grad_(False), losses


@torch.no_grad()
def _seeded_init(net: nn.Module, seed: int) -> None:
    """PyTorch's default initialisation of every convolution, drawn from a private generator: the
    global RNG is shared with whatever runs beside the attack (fam.runtime.run_side_by_side)."""
    rng = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=rng)
            if m.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(m.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
                nn.init.uniform_(m.bias, -bound, bound, generator=rng)


@torch.no_grad()
def apply_mapper(net: MapperNet, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Reconstructions ``[N, 3, S, S]`` of protected images ``[N, 3, S, S]``."""
    return torch.cat([net(images[i : i + batch]) for i in range(0, len(images), batch)])


# --------------------------------------------------------------------------------------------
# The attacks as the evaluation runs them: name -> function of the evaluation context.


@dataclass(frozen=True)
class Reconstruction:
    """What one attack recovered from held-out protected images."""

    name: str  # infix of its metrics: psr_noninvert_<name>_...
    label: str  # row label in the report
    indices: list[int]  # into release 1's items
    images: torch.Tensor  # [n, 3, S, S] in [-1, 1], one per index
    notes: tuple[str, ...] = ()


# (context, training item indices, held-out item indices) -> reconstructions, or why it cannot run
AttackFn = Callable[["EvaluationContext", list[int], list[int]], "Reconstruction | str"]

ATTACKS: Registry[AttackFn] = Registry(
    "attack", hint="set evaluate.attacks to registered names (fam.evaluate.attacks.ATTACKS)"
)
KEY_ATTACKS = frozenset({"latent_replacement", "stolen_key"})  # these need the release's key


def split_people(persons: Sequence[str], train_fraction: float) -> tuple[list[int], list[int]]:
    """(train, held-out) item indices; a person's side is fixed by a hash of the name."""

    def frac(p: str) -> float:
        return int(hashlib.sha256(b"fam/eval-split/v1\x00" + p.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    train = [i for i, p in enumerate(persons) if frac(p) < train_fraction]
    held = [i for i, p in enumerate(persons) if frac(p) >= train_fraction]
    return train, held


def key_layers(params: Params, generator: Generator) -> tuple[int, ...]:
    """W+ layers the key supplies in the mixing."""
    from fam.layers import resolve_groups_for

    groups = resolve_groups_for(params.layers, generator)
    # paper eq. 1: the key supplies the identity layers; authors' code: the coarse ones
    return groups.coarse if params.mixing.mode == "authors_code" else groups.identity


def run_latent_replacement(ctx: EvaluationContext, train: list[int], held: list[int]) -> Reconstruction | str:
    from fam.evaluate.context import build_models
    from fam.faces.imageio import load_face
    from fam.keys import key_latent

    assert ctx.key is not None, "plan_evaluation refuses the latent-replacement attack without a key"
    generator, inverter = build_models(ctx.params, ctx.models)
    cfg, rel = ctx.cfg, ctx.release
    idx = held[: cfg.attack_max_images]
    ctx.say(f"[evaluate] latent-replacement attack on {len(idx)} held-out images")
    key_ws = key_latent(ctx.key, generator, ctx.params.key.truncation_psi)
    prot = torch.stack([load_face(rel.items[i].protected, generator.resolution) for i in idx])
    layers = key_layers(ctx.params, generator)
    recs = [
        latent_replacement(prot[i : i + cfg.embed_batch], inverter, generator, key_ws, layers)
        for i in range(0, len(prot), cfg.embed_batch)
    ]
    return Reconstruction("latent", "latent replacement", idx, torch.cat(recs))


def run_mapper(ctx: EvaluationContext, train: list[int], held: list[int]) -> Reconstruction | str:
    from fam.faces.imageio import load_face

    m, rel = ctx.cfg.mapper, ctx.release
    if not train:
        return "mapper attack: no person fell into the training split; not run"
    tr = train[: m.max_train_images]
    ctx.say(f"[evaluate] mapper attack: training on {len(tr)} pairs, applying to {len(held)} held-out images")
    prot = torch.stack([load_face(rel.items[i].protected, m.size) for i in tr])
    orig = torch.stack([load_face(rel.items[i].original, m.size) for i in tr])
    identity = _identity_model(ctx) if m.identity_weight > 0 else None
    net, losses = train_mapper(
        prot,
        orig,
        steps=m.steps,
        lr=m.lr,
        batch=m.batch,
        channels=m.channels,
        seed=m.seed,
        identity=identity,
        identity_weight=m.identity_weight,
        engine=resolve_engine(ctx.params.runtime),
    )
    held_prot = torch.stack([load_face(rel.items[i].protected, m.size) for i in held])
    loss_name = (
        f"L1 + {m.identity_weight:g} x identity ({ctx.params.models.identity.name})" if identity else "L1"
    )
    note = (
        f"mapper: {len(tr)} training pairs, {m.steps} steps at {m.size} px, {loss_name} "
        f"{losses[0]:.3f} -> {float(np.mean(losses[-10:])):.3f} ({settled(losses)})"
    )
    return Reconstruction("mapper", "learned mapper", held, apply_mapper(net, held_prot), (note,))


def settled(losses: Sequence[float], window: int = 20, tolerance: float = 0.02) -> str:
    """Whether a loss curve has settled: its last ``window`` steps' mean within ``tolerance``
    (relative) of the ``window`` before; the report quotes it so an unconverged attack shows."""
    if len(losses) < 2 * window:
        return f"too few steps to judge convergence (< {2 * window})"
    last, before = float(np.mean(losses[-window:])), float(np.mean(losses[-2 * window : -window]))
    change = (before - last) / max(abs(before), 1e-12)
    if change <= -tolerance:  # an optimiser that diverges has not settled either
        return f"rising {-change:.1%} per {window} steps: lower the learning rate"
    return "settled" if change < tolerance else f"still falling {change:.1%} per {window} steps: raise steps"


def run_stolen_key(ctx: EvaluationContext, train: list[int], held: list[int]) -> Reconstruction | str:
    from fam.artifacts import ResolvedSettings
    from fam.calibration import resolve_margin
    from fam.evaluate.context import build_models
    from fam.evaluate.stolen_key import MethodModels, stolen_key_attack
    from fam.faces.imageio import load_face
    from fam.keys import key_latent
    from fam.layers import resolve_groups_for

    assert ctx.key is not None, "plan_evaluation refuses the stolen-key attack without a key"
    cfg, rel = ctx.cfg.stolen_key, ctx.release
    generator, inverter = build_models(ctx.params, ctx.models)
    settings_file = rel.root / ResolvedSettings.FILENAME
    if settings_file.is_file():  # the attacker knows the method as the release ran it
        method, told = ResolvedSettings.read(settings_file).to_params(), "the release's settings.json"
    else:
        method, told = resolve_margin(ctx.params, generator.resolution), "the evaluation's settings"
    m = MethodModels(
        generator,
        _method_model(ctx, "identity", method.models.identity),
        _method_model(ctx, "attribute", method.models.attribute),
        resolve_groups_for(method.layers, generator),
        method.mixing,
        method.optimise,
    )
    # whole persons first: the protection optimised each person's views together
    idx = sorted(held, key=lambda i: (rel.items[i].person, i))[: cfg.max_images]
    people = sorted({rel.items[i].person for i in idx})
    unroll = cfg.unroll_steps or method.optimise.steps
    ctx.say(
        f"[evaluate] stolen-key attack on {len(idx)} held-out images of {len(people)} "
        f"{'person' if len(people) == 1 else 'people'} "
        f"({cfg.iterations} iterations, {unroll} protection steps unrolled)"
    )
    result = stolen_key_attack(
        torch.stack([load_face(rel.items[i].protected, generator.resolution) for i in idx]),
        [people.index(rel.items[i].person) for i in idx],
        key_latent(ctx.key, generator, method.key.truncation_psi),
        m,
        inverter,
        iterations=cfg.iterations,
        unroll_steps=unroll,
        lr=cfg.lr,
        identity_weight=cfg.identity_weight,
    )
    best = min(range(len(result.losses)), key=result.losses.__getitem__)
    exact = (
        "exact"
        if unroll == method.optimise.steps
        else f"a surrogate: lr x {method.optimise.steps / unroll:g}"
    )
    note = (
        f"stolen key: {len(idx)} images, {cfg.iterations} iterations, {unroll} of "
        f"{method.optimise.steps} protection steps unrolled ({exact}), method from {told}; "
        f"objective {result.losses[0]:.3f} -> {result.losses[-1]:.3f}, best {result.losses[best]:.3f} at "
        f"iteration {best} ({settled(result.losses, window=5)})"
    )
    if best == 0:
        note += "; no iterate beat the inversion it started from, which is what was scored"
    return Reconstruction("stolen_key", "stolen key", idx, result.reconstructions, (note,))


def _method_model(ctx: EvaluationContext, role: str, spec: ModelSpec) -> Any:
    """A model of the method (``spec`` for ``role``), frozen, on the evaluation's device."""
    from fam.models.factory import BuildContext, build, resolve_device

    return build(role, spec, BuildContext(resolve_device(ctx.params.runtime.device)))


def _identity_model(ctx: EvaluationContext) -> Callable[[torch.Tensor], torch.Tensor]:
    """The method's identity model (``models.identity``), frozen, as images -> embeddings."""
    return _method_model(ctx, "identity", ctx.params.models.identity).embed


ATTACKS.register("latent_replacement", run_latent_replacement)
ATTACKS.register("mapper", run_mapper)
ATTACKS.register("stolen_key", run_stolen_key)


AttackResults = dict[str, "Reconstruction | str"]


def attack_tasks(ctx: EvaluationContext) -> dict[str, Callable[[], AttackResults]]:
    """The configured attacks as independent tasks (:func:`fam.runtime.run_side_by_side`), each
    returning ``{attack: reconstruction or why not run}``; the longest (the mapper's) first."""
    names = list(ctx.cfg.attacks)
    if not names:
        return {}
    train, held = split_people(ctx.persons, ctx.cfg.mapper.train_fraction)
    if not held:
        return {}

    def task(group: list[str]) -> Callable[[], AttackResults]:
        return lambda: {name: ATTACKS.get(name)(ctx, train, held) for name in group}

    # the key attacks drive the method's generator and inverter (built once per evaluation, not
    # safe to drive from two threads): one task runs them in turn; the mapper has its own models
    shared = [n for n in names if n in KEY_ATTACKS]
    alone = [n for n in names if n not in KEY_ATTACKS]
    tasks = {f"attack:{n}": task([n]) for n in alone}
    if shared:
        tasks["attack:" + "+".join(shared)] = task(shared)
    return tasks


def collect_attacks(
    ctx: EvaluationContext, results: Sequence[AttackResults]
) -> tuple[dict[str, Reconstruction], list[str]]:
    """Reconstructions and notes from :func:`attack_tasks`' results, in ``evaluate.attacks`` order."""
    if ctx.cfg.attacks and not split_people(ctx.persons, ctx.cfg.mapper.train_fraction)[1]:
        return {}, ["attacks: every person fell into the mapper's training split; no held-out people"]
    merged: AttackResults = {k: v for r in results for k, v in r.items()}
    out: dict[str, Reconstruction] = {}
    notes: list[str] = []
    for name in ctx.cfg.attacks:
        result = merged[name]
        if isinstance(result, str):
            notes.append(result)
        else:
            out[name] = result
            notes.extend(result.notes)
    return out, notes


def run_attacks(ctx: EvaluationContext) -> tuple[dict[str, Reconstruction], list[str]]:
    """The reconstructions of every attack of ``evaluate.attacks`` (by name), and notes: the
    tasks of :func:`attack_tasks` one after the other."""
    return collect_attacks(ctx, [task() for task in attack_tasks(ctx).values()])
