"""StyleGAN2 training for a small face data set (the embedded prior).

Per step (as StyleGAN2 / -ADA): a generator step on the non-saturating logistic loss, an optional
lazy path-length step, a discriminator step on the logistic loss, a lazy R1 step every
``r1_interval`` steps, then the EMA generator update. Latents use style mixing (a per-sample
crossover with probability ``style_mixing``) so that W+ layers stay separable, which the method's
layer mixing relies on. Every random draw comes from one CPU ``torch.Generator`` whose state is
checkpointed, so a resumed run repeats exactly the steps an uninterrupted run would take.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from fam.config import PriorTrainingConfig, _to_plain
from fam.errors import InputError
from fam.models.stylegan2 import StyleGAN2Config, StyleGAN2Generator, seeded_noise
from fam.runtime import Engine, fp32
from fam.training import checkpoint as ckpt
from fam.training.augment import diff_augment
from fam.training.discriminator import Discriminator

KIND = "fam-prior-train-v1"
SAMPLE_SEED = 20240601  # fixed latents of the progress grid


def channel_map(cfg: PriorTrainingConfig) -> dict[int, int]:
    """``{resolution: width}`` with int keys (params.yaml keys arrive as strings)."""
    return {int(k): int(v) for k, v in cfg.channels.items()}


def generator_config(cfg: PriorTrainingConfig) -> StyleGAN2Config:
    return StyleGAN2Config.make(cfg.resolution, channel_map(cfg), style_dim=cfg.w_dim, n_mlp=cfg.n_mlp)


def build_networks(cfg: PriorTrainingConfig) -> tuple[StyleGAN2Generator, Discriminator]:
    """Freshly initialised G and D, a pure function of ``cfg.seed``; ``w_avg`` starts at zero."""
    g = StyleGAN2Generator(generator_config(cfg))
    g.reset_parameters(cfg.seed)
    g.set_noise(seeded_noise(cfg.resolution, cfg.seed))
    d = Discriminator(cfg.resolution, channel_map(cfg))
    d.reset_parameters(cfg.seed + 1)
    return g, d


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

    # ---------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One full iteration; returns the losses of this step."""
        cfg, b = self.cfg, self.cfg.batch
        stats: dict[str, float] = {}
        real = self.real_batch(b)

        # Generator: non-saturating logistic loss.
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        with self._autocast():
            fake = self.G.synthesis(self.sample_ws(b, track_w_avg=True))
            loss_g = F.softplus(-self.D(self.augment(fake))).float().mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        stats["loss_g"] = loss_g.item()

        if cfg.pl_weight > 0 and self.step % cfg.pl_interval == 0:
            stats["pl"] = self._path_length_step(max(b // 2, 1))

        # Discriminator: logistic loss on augmented fakes and reals.
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        with torch.no_grad(), self._autocast():
            fake = self.G.synthesis(self.sample_ws(b))
        with self._autocast():
            loss_d = (
                F.softplus(self.D(self.augment(fake.detach()))).float().mean()
                + F.softplus(-self.D(self.augment(real))).float().mean()
            )
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        stats["loss_d"] = loss_d.item()

        if cfg.r1_gamma > 0 and self.step % cfg.r1_interval == 0:
            stats["r1"] = self._r1_step(real)

        self.nimg += b
        self.step += 1
        self._update_ema()
        return stats

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
        img = self.G.synthesis(ws)
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
        }

    def save(self, path: Path) -> None:
        ckpt.atomic_save(self.state(), path)

    def _check_config(self, saved: dict[str, Any], source: Path) -> None:
        mine = _to_plain(self.cfg)
        arch = ("resolution", "channels", "w_dim", "n_mlp")
        diff = [
            k for k in arch if json.dumps(saved.get(k), sort_keys=True) != json.dumps(mine[k], sort_keys=True)
        ]
        if diff:
            raise InputError(f"{source} was trained with other {diff} than training.prior; cannot resume")

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

    def write_lifeboat(self, folder: Path) -> None:
        """``prior.pt`` (rosinality {'g_ema', 'latent_avg'}, fp16: the shippable generator), the
        training G and D in fp16, and the counters: everything under 16 MiB per file."""
        folder = Path(folder)
        ckpt.atomic_save(
            {
                "g_ema": ckpt.half_state(self.G_ema.state_dict()),
                "latent_avg": self.G_ema.latent_avg.cpu().clone(),
            },
            folder / "prior.pt",
        )
        meta = {
            k: v for k, v in self.state().items() if k in ("kind", "config", "step", "nimg", "rng", "pl_mean")
        }
        meta["w_avg"] = self.G.latent_avg.detach().cpu().clone()
        ckpt.write_lifeboat(folder, {"g": self.G.state_dict(), "d": self.D.state_dict()}, meta)

    def load_lifeboat(self, folder: Path) -> None:
        """Approximate resume: weights from fp16 copies, fresh Adam moments."""
        nets, meta = ckpt.read_lifeboat(folder, ["g", "d"])
        if meta.get("kind") != KIND:
            raise InputError(f"{folder}: not a prior lifeboat ({meta.get('kind')!r})")
        self._check_config(meta["config"], folder)
        prior = ckpt.load(Path(folder) / "prior.pt")
        self.G.load_state_dict(nets["g"])
        self.D.load_state_dict(nets["d"])
        self.G_ema.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in prior["g_ema"].items()}
        )
        self.G.latent_avg.copy_(meta["w_avg"])
        self.G_ema.latent_avg.copy_(prior["latent_avg"])
        self.step, self.nimg = int(meta["step"]), int(meta["nimg"])
        self.rng.set_state(meta["rng"])
        self.pl_mean = meta["pl_mean"].to(self.device)
