"""Training the compact W+ encoder against a trained prior (``fam train-encoder``).

Each batch mixes (a) generated pairs, whose W+ code is known: ws drawn with truncation and style
mixing, images synthesised, and the encoder regresses both the code and the image; and (b) real
train-split faces, reconstructed through the frozen generator. Losses: L2 on codes (generated
only), L2 on pixels, L2 between the prior discriminator's features (an LPIPS-free perceptual
proxy; LPIPS weights are not obtainable here), 1 - cosine between identity embeddings (real
only), and e4e's delta regulariser. Random draws come from one checkpointed CPU generator.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from tqdm import tqdm

from fam.config import EncoderTrainingConfig, _to_plain
from fam.errors import InputError, OutputExistsError
from fam.io_utils import atomic_write_bytes, sha256_file
from fam.models.factory import BuildContext, build
from fam.models.stylegan2 import StyleGAN2Generator, load_generator_file
from fam.training import checkpoint as ckpt
from fam.training.discriminator import Discriminator
from fam.training.encoder_net import CompactEncoder, encoder_checkpoint
from fam.training.pack import load_pack
from fam.training.prior import d_channel_map

KIND = "fam-encoder-train-v1"


def load_prior(folder: Path, device: torch.device) -> tuple[StyleGAN2Generator, Discriminator | None, str]:
    """The frozen prior from a lifeboat folder: ``prior.pt`` (+ ``d_fp16.pt`` and ``meta.pt`` if present)."""
    prior_file = Path(folder) / "prior.pt"
    if not prior_file.is_file():
        raise InputError(f"{prior_file} is missing: pass the folder a `fam train-prior --export` run wrote")
    digest = sha256_file(prior_file)
    gen = load_generator_file(prior_file, digest).to(device).eval().requires_grad_(False)
    disc = None
    if (Path(folder) / "d_fp16.pt").is_file() and (Path(folder) / "meta.pt").is_file():
        meta = ckpt.load(Path(folder) / "meta.pt")
        cfg = meta["config"]
        disc = Discriminator(int(cfg["resolution"]), d_channel_map(cfg))
        disc.load_state_dict({k: v.float() for k, v in ckpt.load(Path(folder) / "d_fp16.pt").items()})
        disc = disc.to(device).eval().requires_grad_(False)
    return gen, disc, digest


class EncoderTrainer:
    def __init__(
        self,
        cfg: EncoderTrainingConfig,
        generator: StyleGAN2Generator,  # frozen prior
        discriminator: Discriminator | None,  # prior's D for the perceptual term (None: term off)
        images: torch.Tensor,  # uint8 [N, 3, R, R] train-split faces
        device: torch.device,
        identity: Any = None,  # IdentityEncoder or None (term off)
    ) -> None:
        self.cfg, self.G, self.D, self.identity, self.device = cfg, generator, discriminator, identity, device
        self.images = images.to(device)
        with torch.random.fork_rng(devices=[]):  # nn.Conv2d's init draws from the global generator
            torch.manual_seed(cfg.seed)
            self.E = CompactEncoder(generator.resolution, generator.num_ws, generator.w_dim, cfg.channels)
        self.E.to(device)
        self.opt = torch.optim.Adam(self.E.parameters(), lr=cfg.lr)
        self.rng = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.nimg = 0

    def _synthetic(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.G
        z = torch.randn(2 * n, g.z_dim, generator=self.rng).to(self.device)
        cut = torch.randint(1, g.num_ws + 1, (n,), generator=self.rng).to(self.device)  # num_ws: no mixing
        with torch.no_grad():
            w = g.mapping(z)
            w = g.w_avg + self.cfg.truncation_psi * (w - g.w_avg)
            second = torch.arange(g.num_ws, device=self.device).view(1, -1) >= cut.view(-1, 1)
            ws = torch.where(second.unsqueeze(-1), w[n:].unsqueeze(1), w[:n].unsqueeze(1))
            return ws, g.synthesis(ws).clamp(-1, 1)

    def _real(self, n: int) -> torch.Tensor:
        idx = torch.randint(self.images.shape[0], (n,), generator=self.rng).to(self.device)
        return self.images[idx].float() / 127.5 - 1.0

    def train_step(self) -> dict[str, float]:
        cfg, b = self.cfg, self.cfg.batch
        n_syn = round(b * cfg.synthetic_fraction)
        ws_true, x_syn = self._synthetic(n_syn) if n_syn > 0 else (None, None)
        x_real = self._real(b - n_syn)
        x = torch.cat([t for t in (x_syn, x_real) if t is not None and len(t) > 0])
        codes, deltas = self.E(x)
        ws = codes + self.G.w_avg
        rec = self.G.synthesis(ws)
        stats: dict[str, torch.Tensor] = {"pixel": F.mse_loss(rec, x)}
        loss = cfg.pixel_weight * stats["pixel"] + cfg.delta_weight * deltas.square().sum(dim=(1, 2)).mean()
        if ws_true is not None and n_syn > 0:
            stats["latent"] = F.mse_loss(ws[:n_syn], ws_true)
            loss = loss + cfg.latent_weight * stats["latent"]
        if self.D is not None and cfg.perceptual_weight > 0:
            fr, fx = self.D.features(rec), self.D.features(x)
            stats["perceptual"] = sum(F.mse_loss(a, t.detach()) for a, t in zip(fr, fx, strict=True)) / len(
                fr
            )
            loss = loss + cfg.perceptual_weight * stats["perceptual"]
        if self.identity is not None and cfg.identity_weight > 0 and len(x_real) > 0:
            real_rec = rec[n_syn:]
            cos = (self.identity.embed(real_rec) * self.identity.embed(x_real).detach()).sum(1)
            stats["identity"] = (1 - cos).mean()
            loss = loss + cfg.identity_weight * stats["identity"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        self.nimg += b
        return {"loss": loss.item(), **{k: float(v.item()) for k, v in stats.items()}}

    def state(self) -> dict[str, Any]:
        return {
            "kind": KIND,
            "config": _to_plain(self.cfg),
            "encoder": self.E.state_dict(),
            "opt": self.opt.state_dict(),
            "step": self.step,
            "nimg": self.nimg,
            "rng": self.rng.get_state(),
        }

    def load(self, path: Path) -> None:
        st = ckpt.load(path)
        if st.get("kind") != KIND:
            raise InputError(f"{path}: not an encoder training state ({st.get('kind')!r})")
        self.E.load_state_dict(st["encoder"])
        self.opt.load_state_dict(st["opt"])
        self.step, self.nimg = int(st["step"]), int(st["nimg"])
        self.rng.set_state(st["rng"])


def train_encoder_run(
    cfg: EncoderTrainingConfig,
    data: Path,  # packed train faces at the prior's resolution
    prior: Path,  # folder with prior.pt (+ d_fp16.pt, meta.pt): a prior run's export
    out: Path,  # full state and log
    device: torch.device,
    resume: bool = False,
    export: Path | None = None,  # encoder.pt (the shippable inverter checkpoint) + log copy
    kimg: float | None = None,
    minutes: float | None = None,
) -> dict[str, Any]:
    t_start = time.perf_counter()
    out = Path(out)
    state_file = out / "state.pt"
    if state_file.exists() and not resume:
        raise OutputExistsError(f"{state_file} exists; pass --resume or choose another --out")
    gen, disc, prior_sha = load_prior(prior, device)
    pack = load_pack(data)  # refuses held-out people
    if pack.resolution != gen.resolution:
        raise InputError(f"{data} holds {pack.resolution} px faces; the prior is {gen.resolution} px")
    identity = None
    if cfg.identity_weight > 0:
        identity = build("identity", cfg.identity, BuildContext(device))
    trainer = EncoderTrainer(cfg, gen, disc, pack.images, device, identity)
    if resume:
        if not state_file.is_file():
            raise InputError(f"--resume: {state_file} does not exist")
        trainer.load(state_file)
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / "log.jsonl"
    target = int((kimg if kimg is not None else cfg.kimg) * 1000)
    deadline = t_start + minutes * 60 if minutes is not None else float("inf")
    next_ckpt = time.perf_counter() + cfg.checkpoint_every_minutes * 60
    t0, n0 = time.perf_counter(), trainer.nimg
    with tqdm(
        total=target, initial=min(trainer.nimg, target), unit="img", unit_scale=True, mininterval=5
    ) as bar:
        while trainer.nimg < target and time.perf_counter() < deadline - 30.0:
            stats = trainer.train_step()
            bar.update(cfg.batch)
            if trainer.step % 50 == 0:
                with open(log_file, "a") as fh:
                    fh.write(json.dumps({"step": trainer.step, "kimg": trainer.nimg / 1000, **stats}) + "\n")
            if time.perf_counter() > next_ckpt:
                ckpt.atomic_save(trainer.state(), state_file)
                next_ckpt = time.perf_counter() + cfg.checkpoint_every_minutes * 60
    ckpt.atomic_save(trainer.state(), state_file)
    seconds = time.perf_counter() - t0
    summary = {
        "step": trainer.step,
        "kimg": trainer.nimg / 1000,
        "seconds": round(seconds, 1),
        "img_per_s": round((trainer.nimg - n0) / max(seconds, 1e-9), 1),
        "prior_sha256": prior_sha,
    }
    with open(log_file, "a") as fh:
        fh.write(json.dumps({"event": "stop", **summary}) + "\n")
    if export is not None:
        Path(export).mkdir(parents=True, exist_ok=True)
        ckpt.atomic_save(encoder_checkpoint(trainer.E, gen.w_avg, prior_sha), Path(export) / "encoder.pt")
        atomic_write_bytes(Path(export) / "encoder_log.jsonl", log_file.read_bytes())
    return summary
