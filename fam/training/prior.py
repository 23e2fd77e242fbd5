"""StyleGAN2 training for a small face data set (the embedded prior).

Per step (as StyleGAN2 / -ADA): a generator step on the non-saturating logistic loss, an optional
lazy path-length step, a discriminator step on the logistic loss, a lazy R1 step every
``r1_interval`` steps, then the EMA generator update. Latents use style mixing (a per-sample
crossover with probability ``style_mixing``) so that W+ layers stay separable, which the method's
layer mixing relies on. Every random draw comes from one CPU ``torch.Generator`` whose state is
checkpointed, so a resumed run repeats exactly the steps an uninterrupted run would take.

Optionally (``vision_weight > 0``) a second, vision-aided discriminator (:mod:`fam.training.vision_d`)
sees the same augmented images as the pixel D from ``vision_start_kimg`` on: it adds
``weight * softplus(-logit)`` to G's loss (the weight ramped in over ``vision_rampup_kimg``) and
trains its head on its own logistic loss with its own Adam. It draws nothing from the RNG, so
switching it on or off never shifts the random sequence of the pixel path. With
``diversity_weight > 0`` G's loss also gets a mode-seeking term on the same pass's features
(:func:`fam.training.vision_d.mode_seeking_loss`), ramped in with the vision D: it pays G for fakes
that the pretrained features tell apart, against the crowding of key faces (docs/training.md).
"""

from __future__ import annotations

import copy
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from fam.config import PriorTrainingConfig, _to_plain
from fam.errors import InputError
from fam.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator, seeded_noise
from fam.runtime import Engine, fp32
from fam.training import checkpoint as ckpt
from fam.training.augment import diff_augment
from fam.training.discriminator import Discriminator
from fam.training.vision_d import VisionDiscriminator, mode_seeking_loss

if TYPE_CHECKING:
    from fam.models.efficientnet_lite import EfficientNetLite0

KIND = "fam-prior-train-v1"
SAMPLE_SEED = 20240601  # fixed latents of the progress grid


def channel_map(cfg: PriorTrainingConfig) -> dict[int, int]:
    """``{resolution: width}`` with int keys (params.yaml keys arrive as strings)."""
    return {int(k): int(v) for k, v in cfg.channels.items()}


def d_channel_map(cfg: PriorTrainingConfig | Mapping[str, Any]) -> dict[int, int]:
    """The discriminator's ``{resolution: width}``: ``d_channels``, else the generator's widths
    (also for a saved config, a plain dict, from before ``d_channels`` existed)."""
    raw = cfg if isinstance(cfg, Mapping) else _to_plain(cfg)
    return {int(k): int(v) for k, v in (raw.get("d_channels") or raw["channels"]).items()}


def generator_config(cfg: PriorTrainingConfig) -> StyleGAN2Config:
    return StyleGAN2Config.make(cfg.resolution, channel_map(cfg), style_dim=cfg.w_dim, n_mlp=cfg.n_mlp)


def build_networks(cfg: PriorTrainingConfig) -> tuple[StyleGAN2Generator, Discriminator]:
    """Freshly initialised G and D, a pure function of ``cfg.seed``; ``w_avg`` starts at zero."""
    g = StyleGAN2Generator(generator_config(cfg))
    g.reset_parameters(cfg.seed)
    g.set_noise(seeded_noise(cfg.resolution, cfg.seed))
    d = Discriminator(cfg.resolution, d_channel_map(cfg))
    d.reset_parameters(cfg.seed + 1)
    return g, d


def build_vision(cfg: PriorTrainingConfig, extractor: EfficientNetLite0 | None) -> VisionDiscriminator:
    """The vision D with a fresh head seeded from ``cfg.seed``; the extractor defaults to the
    registry's ImageNet EfficientNet-Lite0 (a MissingWeightsError names the package if absent)."""
    if extractor is None:
        from fam.models.efficientnet_lite import load_efficientnet_lite0

        extractor = load_efficientnet_lite0()
    vision = VisionDiscriminator(extractor, cfg.vision_size)
    vision.head.reset_parameters(cfg.seed + 2)
    return vision


def _adam(
    params: Any, lr: float, betas: tuple[float, float], reg_interval: int, active: bool
) -> torch.optim.Adam:
    # Lazy regularisation (StyleGAN2 app. B): the main loss is optimised in reg/(reg+1) of the steps.
    c = reg_interval / (reg_interval + 1) if active else 1.0
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c), eps=1e-8)


class PriorTrainer:
    def __init__(
        self,
        cfg: PriorTrainingConfig,
        images: torch.Tensor,  # uint8 [N, 3, R, R] training faces (already split-checked)
        engine: Engine | torch.device,  # a bare device means fp32 with the fused modulation
        vision_extractor: EfficientNetLite0 | None = None,  # None: the registry's, if vision_weight > 0
    ) -> None:
        engine = engine if isinstance(engine, Engine) else Engine(engine)
        device = engine.device
        if (
            images.dtype != torch.uint8
            or images.ndim != 4
            or images.shape[1:] != (3, cfg.resolution, cfg.resolution)
        ):
            raise InputError(
                f"training images must be uint8 [N, 3, {cfg.resolution}, {cfg.resolution}], got "
                f"{images.dtype} {list(images.shape)}; pack the data at training.prior.resolution"
            )
        self.cfg = cfg
        self.device = device
        self.images = images.to(device)
        self.engine = engine
        self.G, self.D = build_networks(cfg)
        engine.prepare(self.G)
        self.G.to(device).train()
        self.D.to(device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.opt_g = _adam(self.G.parameters(), cfg.g_lr, cfg.betas, cfg.pl_interval, cfg.pl_weight > 0)
        self.opt_d = _adam(self.D.parameters(), cfg.d_lr, cfg.betas, cfg.r1_interval, cfg.r1_gamma > 0)
        # Built whenever the weight is set, also before the start: a missing weight file fails now,
        # not hours into the run, and every checkpoint of the run carries the head.
        self.vision: VisionDiscriminator | None = None
        self.opt_v: torch.optim.Adam | None = None
        if cfg.vision_weight > 0:
            self.vision = build_vision(cfg, vision_extractor).to(device).train()
            self.opt_v = _adam(self.vision.head.parameters(), cfg.vision_lr, cfg.betas, 1, False)
        self.notes: list[str] = []  # what loading a checkpoint had to make up (logged by the run)
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.nimg = 0
        self.pl_mean = torch.zeros((), device=device)

    # ---------------------------------------------------------------------------------------
    def _autocast(self) -> Any:
        return self.engine.autocast()

    def sample_ws(self, n: int, track_w_avg: bool = False) -> torch.Tensor:
        """``[n, num_ws, w_dim]`` with per-sample style mixing; optionally updates ``w_avg``."""
        g, num_ws = self.G, self.G.num_ws
        z = torch.randn(2 * n, g.z_dim, generator=self.rng).to(self.device)
        use = torch.rand(n, generator=self.rng) < self.cfg.style_mixing
        cut = torch.where(use, torch.randint(1, num_ws, (n,), generator=self.rng), num_ws).to(self.device)
        w = g.mapping(z)
        if track_w_avg:
            with torch.no_grad():
                g.latent_avg.copy_(w[:n].detach().float().mean(0).lerp(g.latent_avg, self.cfg.w_avg_beta))
        second = torch.arange(num_ws, device=self.device).view(1, -1) >= cut.view(-1, 1)  # [n, num_ws]
        return torch.where(second.unsqueeze(-1), w[n:].unsqueeze(1), w[:n].unsqueeze(1))

    def real_batch(self, n: int) -> torch.Tensor:
        idx = torch.randint(self.images.shape[0], (n,), generator=self.rng)
        flip = torch.rand(n, generator=self.rng) < (0.5 if self.cfg.mirror else 0.0)
        x = self.images[idx.to(self.device)].float() / 127.5 - 1.0
        return torch.where(flip.to(self.device).view(-1, 1, 1, 1), x.flip(3), x)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.cfg.augment, self.rng)

    def synthesise(self, ws: torch.Tensor) -> torch.Tensor:
        """``G.synthesis`` with fresh per-sample noise from the trainer's RNG (StyleGAN2 trains so):
        with the generator's fixed noise buffers, G learns to paint the same inner face from the
        same noise image onto every latent (what the first 170 kimg of the embedded prior did)."""
        noise = [torch.randn(s, generator=self.rng).to(self.device) for s in self.G.noise_shapes(ws.shape[0])]
        return self.G.synthesis(ws, noise)

    def vision_g_weight(self) -> float:
        """G-loss weight of the vision D now: 0 before ``vision_start_kimg``, then a linear ramp."""
        cfg = self.cfg
        if self.vision is None or self.nimg < cfg.vision_start_kimg * 1000:
            return 0.0
        ramp = cfg.vision_rampup_kimg * 1000
        done = (self.nimg - cfg.vision_start_kimg * 1000) / ramp if ramp > 0 else 1.0
        return cfg.vision_weight * min(1.0, done)

    def vision_active(self) -> bool:
        return self.vision is not None and self.nimg >= self.cfg.vision_start_kimg * 1000

    # ---------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One full iteration; returns the losses of this step."""
        cfg, b = self.cfg, self.cfg.batch
        stats: dict[str, float] = {}
        real = self.real_batch(b)

        vision = self.vision if self.vision_active() else None
        w_vision = self.vision_g_weight()

        # Generator: non-saturating logistic loss (plus the vision D's, weighted, once it is on).
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        if vision is not None:
            vision.head.requires_grad_(False)
        with self._autocast():
            fake = self.augment(self.synthesise(self.sample_ws(b, track_w_avg=True)))
            loss_g = F.softplus(-self.D(fake)).float().mean()
            total = loss_g
            if vision is not None:
                feats = vision.features(fake)
                loss_gv = F.softplus(-vision.head(feats)).float().mean()
                total = loss_g + w_vision * loss_gv
                if cfg.diversity_weight > 0:  # ramped in with the vision D it rides on
                    loss_div = mode_seeking_loss(feats)
                    total = total + cfg.diversity_weight * (w_vision / cfg.vision_weight) * loss_div
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        stats["loss_g"] = loss_g.item()
        if vision is not None:
            stats["loss_gv"] = loss_gv.item()
            stats["vision_weight"] = w_vision
            if cfg.diversity_weight > 0:
                stats["loss_div"] = loss_div.item()

        if cfg.pl_weight > 0 and self.step % cfg.pl_interval == 0:
            stats["pl"] = self._path_length_step(max(b // 2, 1))

        # Discriminator: logistic loss on augmented fakes and reals.
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        with torch.no_grad(), self._autocast():
            fake = self.synthesise(self.sample_ws(b))
        with self._autocast():
            fake_aug = self.augment(fake.detach())
            real_aug = self.augment(real)  # after the fakes': the RNG order of the pixel path is kept
            loss_d = (
                F.softplus(self.D(fake_aug)).float().mean() + F.softplus(-self.D(real_aug)).float().mean()
            )
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        stats["loss_d"] = loss_d.item()
        if vision is not None:
            stats["loss_dv"] = self._vision_d_step(vision, fake_aug.detach(), real_aug.detach())

        if cfg.r1_gamma > 0 and self.step % cfg.r1_interval == 0:
            stats["r1"] = self._r1_step(real)

        self.nimg += b
        self.step += 1
        self._update_ema()
        return stats

    def _vision_d_step(self, vision: VisionDiscriminator, fake: torch.Tensor, real: torch.Tensor) -> float:
        """Logistic loss of the vision head on the pixel D's augmented fakes and reals ``[B, 3, R, R]``.

        The extractor runs without a graph (only the head learns), on both halves in one batch.
        No R1 here: it would need second derivatives through the extractor, and the features are
        fixed and smooth; the low weight and the ramp keep the head from dominating instead.
        """
        assert self.opt_v is not None
        vision.head.requires_grad_(True)
        b = fake.shape[0]
        with torch.no_grad(), self._autocast():
            feats = vision.features(torch.cat([fake, real]))
        with self._autocast():
            logits = vision.head(feats)
            loss = F.softplus(logits[:b]).float().mean() + F.softplus(-logits[b:]).float().mean()
        self.opt_v.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_v.step()
        return loss.item()

    def _r1_step(self, real: torch.Tensor) -> float:
        """Lazy R1 on the (augmented) real images, in float32 (second derivatives)."""
        x = real.detach().requires_grad_(True)
        with fp32(self.device):
            logits = self.D(self.augment(x))
        (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        penalty = grad.square().sum(dim=(1, 2, 3)).mean()
        loss = penalty * (self.cfg.r1_gamma / 2) * self.cfg.r1_interval
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return penalty.item()

    def _path_length_step(self, n: int) -> float:
        ws = self.sample_ws(n)
        img = self.synthesise(ws)
        r = img.shape[-1]
        noise = torch.randn(img.shape, generator=self.rng).to(self.device) / math.sqrt(r * r)
        (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grad.square().sum(2).mean(1).sqrt()
        self.pl_mean = self.pl_mean.lerp(lengths.detach().mean(), 0.01)
        loss = (lengths - self.pl_mean).square().mean() * self.cfg.pl_weight * self.cfg.pl_interval
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        return lengths.mean().item()

    @torch.no_grad()
    def _update_ema(self) -> None:
        ema_nimg = self.cfg.ema_kimg * 1000
        if self.cfg.ema_rampup > 0:
            ema_nimg = min(ema_nimg, self.nimg * self.cfg.ema_rampup)
        beta = 0.5 ** (self.cfg.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)  # noise images, FIR kernels and w_avg

    # ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def samples(self, n: int = 64, psi: float = 1.0) -> torch.Tensor:
        """EMA generator images for fixed latents (the same every call): ``[n, 3, R, R]``."""
        z = torch.randn(n, self.G.z_dim, generator=torch.Generator().manual_seed(SAMPLE_SEED)).to(self.device)
        w = self.G_ema.mapping(z)
        w = self.G_ema.w_avg + psi * (w - self.G_ema.w_avg)
        return self.G_ema.synthesis(w.unsqueeze(1).expand(-1, self.G_ema.num_ws, -1)).clamp(-1, 1).cpu()

    def state(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "config": _to_plain(self.cfg),
            "g": self.G.state_dict(),
            "g_ema": self.G_ema.state_dict(),
            "d": self.D.state_dict(),
            "w_avg": self.G.latent_avg.detach().cpu().clone(),
            "w_avg_ema": self.G_ema.latent_avg.detach().cpu().clone(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "step": self.step,
            "nimg": self.nimg,
            "rng": self.rng.get_state(),
            "pl_mean": self.pl_mean.detach().cpu().clone(),
            **self._vision_state(),
        }

    def _vision_state(self) -> dict[str, Any]:
        """The head and its Adam (the frozen extractor is rebuilt from its file, never saved)."""
        if self.vision is None or self.opt_v is None:
            return {}
        return {"vision_head": self.vision.head.state_dict(), "opt_v": self.opt_v.state_dict()}

    def _load_vision(
        self, head: dict[str, torch.Tensor] | None, opt: dict[str, Any] | None, source: Path
    ) -> None:
        """Restore the head (and its Adam, if given: the lifeboat has none); a checkpoint without a
        head (saved before the head existed, or with it off) leaves the fresh one, with a note."""
        if self.vision is None:
            if head is not None:
                self._note(f"{source} holds a vision D head; vision_weight is 0, so it is dropped")
            return
        if head is None:
            self._note(f"{source} holds no vision D head: it starts fresh (seed {self.cfg.seed + 2})")
            return
        self.vision.head.load_state_dict(head)
        if opt is not None and self.opt_v is not None:
            self.opt_v.load_state_dict(opt)

    def _note(self, text: str) -> None:
        self.notes.append(text)
        print(f"note: {text}", file=sys.stderr)

    def save(self, path: Path) -> None:
        ckpt.atomic_save(self.state(), path)

    def _check_config(self, saved: dict[str, Any], source: Path, *, may_grow: bool = False) -> bool:
        """Refuse another architecture; with ``may_grow``, True when only G's widths grew since
        (:mod:`fam.training.widen` then grows the saved generator on load)."""
        mine = _to_plain(self.cfg)
        arch = ("resolution", "channels", "w_dim", "n_mlp")
        diff = [
            k for k in arch if json.dumps(saved.get(k), sort_keys=True) != json.dumps(mine[k], sort_keys=True)
        ]
        if d_channel_map(saved) != d_channel_map(mine):
            diff.append("d_channels")
        if diff == ["channels"] and may_grow:
            from fam.training.widen import grows

            if grows({int(k): int(v) for k, v in saved["channels"].items()}, channel_map(self.cfg)):
                return True
        if diff:
            raise InputError(f"{source} was trained with other {diff} than training.prior; cannot resume")
        return False

    def load(self, path: Path) -> None:
        """Exact resume from a full ``state.pt``."""
        st = ckpt.load(path)
        if st.get("kind") != KIND:
            raise InputError(f"{path}: not a prior training state ({st.get('kind')!r})")
        self._check_config(st["config"], path)
        self.G.load_state_dict(st["g"])
        self.G_ema.load_state_dict(st["g_ema"])
        self.D.load_state_dict(st["d"])
        self.G.latent_avg.copy_(st["w_avg"])
        self.G_ema.latent_avg.copy_(st["w_avg_ema"])
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        self.step, self.nimg = int(st["step"]), int(st["nimg"])
        self.rng.set_state(st["rng"])
        self.pl_mean = st["pl_mean"].to(self.device)
        self._load_vision(st.get("vision_head"), st.get("opt_v"), path)

    def write_lifeboat(self, folder: Path) -> None:
        """``prior.pt`` (rosinality {'g_ema', 'latent_avg'}, fp16: the shippable generator), the
        training G and D in fp16, and the counters: everything under 16 MiB per file."""
        folder = Path(folder)
        write_prior_file(self.G_ema.state_dict(), self.G_ema.latent_avg, folder / "prior.pt")
        meta = {
            k: v for k, v in self.state().items() if k in ("kind", "config", "step", "nimg", "rng", "pl_mean")
        }
        meta["w_avg"] = self.G.latent_avg.detach().cpu().clone()
        nets = {"g": self.G.state_dict(), "d": self.D.state_dict()}
        if self.vision is not None:
            nets["vision_head"] = self.vision.head.state_dict()
        ckpt.write_lifeboat(folder, nets, meta)

    def load_lifeboat(self, folder: Path) -> None:
        """Approximate resume: weights from fp16 copies, fresh Adam moments. Without the training
        G (``g_fp16.pt``: the committed lifeboat leaves it out to stay small), G starts from the
        EMA generator."""
        optional = [n for n in ("g", "vision_head") if (Path(folder) / f"{n}_fp16.pt").is_file()]
        nets, meta = ckpt.read_lifeboat(folder, ["d", *optional])
        if meta.get("kind") != KIND:
            raise InputError(f"{folder}: not a prior lifeboat ({meta.get('kind')!r})")
        grow = self._check_config(meta["config"], folder, may_grow=True)
        prior = ckpt.load(Path(folder) / "prior.pt")
        g_ema = {k: v.float() if v.is_floating_point() else v for k, v in prior["g_ema"].items()}
        g = nets.get("g")
        if g is None:
            g = g_ema
            self._note(f"{folder} has no training G (g_fp16.pt): G starts from the EMA generator")
        if grow:  # a lifeboat from before `fam widen-prior`: it is read, never rewritten, so grow it here
            from fam.training.widen import grow_generator_state

            g, g_ema = grow_generator_state(g, self.cfg), grow_generator_state(g_ema, self.cfg)
            self._note(
                f"{folder} holds a generator of widths {dict(meta['config']['channels'])}: grown to "
                f"{channel_map(self.cfg)} as `fam widen-prior` grows a state (same images)"
            )
        self.G.load_state_dict(g)
        self.D.load_state_dict(nets["d"])
        self.G_ema.load_state_dict(g_ema)
        self.G.latent_avg.copy_(meta["w_avg"])
        self.G_ema.latent_avg.copy_(prior["latent_avg"])
        self.step, self.nimg = int(meta["step"]), int(meta["nimg"])
        self.rng.set_state(meta["rng"])
        self.pl_mean = meta["pl_mean"].to(self.device)
        self._load_vision(nets.get("vision_head"), None, Path(folder))


def write_prior_file(g_ema: dict[str, torch.Tensor], latent_avg: torch.Tensor, path: Path) -> None:
    """The shippable generator: rosinality ``{'g_ema', 'latent_avg'}``, weights in fp16."""
    ckpt.atomic_save({"g_ema": ckpt.half_state(g_ema), "latent_avg": latent_avg.detach().cpu().clone()}, path)


def snapshot_prior(state_file: Path, folder: Path) -> int:
    """``folder/prior.pt`` from a full training state, as a stop's export would write it, without
    stopping the run that keeps writing ``state_file`` (it is replaced atomically). Returns the
    images the state has seen."""
    st = ckpt.load(state_file)
    if st.get("kind") != KIND:
        raise InputError(f"{state_file}: not a prior training state ({st.get('kind')!r})")
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_prior_file(st["g_ema"], st["w_avg_ema"], Path(folder) / "prior.pt")
    return int(st["nimg"])
