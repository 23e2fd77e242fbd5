"""The time-boxed prior training run behind ``fam train-prior``.

Stops cleanly when ``kimg`` images have been shown or ``minutes`` have passed (the device
machine runs commands of at most 10 minutes), or when the file ``OUT/STOP`` appears (how a
background run is ended on request), always leaving a full ``state.pt`` in ``out`` and,
if asked, a lifeboat (fp16 pieces under 16 MiB, see :mod:`fam.training.checkpoint`) plus the
log and a samples grid in ``export``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import save_image
from tqdm import tqdm

from fam.config import PriorTrainingConfig, _to_plain
from fam.errors import InputError, OutputExistsError
from fam.evaluate.fid import InceptionFeatures, fid_from_features
from fam.io_utils import atomic_open, atomic_write_bytes, atomic_write_json, sha256_file
from fam.models.stylegan2 import StyleGAN2Generator
from fam.runtime import Engine
from fam.training.pack import load_pack
from fam.training.prior import PriorTrainer

LOG_EVERY_STEPS = 50
STOP_FILE = "STOP"  # create OUT/STOP to end a run cleanly after the current step (state saved)
FID_BATCH = 100


@dataclass(frozen=True)
class RunSummary:
    step: int
    kimg: float
    resumed_from: str
    seconds: float
    images_per_s: float
    last_fid: float | None


def _log(path: Path, record: dict[str, object]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _real_batches(images: torch.Tensor, n: int) -> Iterator[torch.Tensor]:
    for i in range(0, min(n, images.shape[0]), FID_BATCH):
        yield images[i : min(i + FID_BATCH, n)].float() / 127.5 - 1.0


def _sample_batches(gen: StyleGAN2Generator, n: int, device: torch.device) -> Iterator[torch.Tensor]:
    """``n`` images for fixed seeds (psi 1, no mixing), in batches."""
    rng = torch.Generator().manual_seed(12345)
    for start in range(0, n, FID_BATCH):
        z = torch.randn(min(FID_BATCH, n - start), gen.z_dim, generator=rng).to(device)
        with torch.no_grad():
            yield gen.synthesis(gen.mapping(z).unsqueeze(1).expand(-1, gen.num_ws, -1)).clamp(-1, 1)


def _fid(trainer: PriorTrainer, out: Path, n: int) -> float:
    """FID of ``n`` EMA samples against ``n`` training images (their features cached in ``out``)."""
    inception = InceptionFeatures(trainer.device)
    ref_file = out / "fid_ref_features.npy"
    if ref_file.is_file():
        ref = np.load(ref_file)
    else:
        ref = inception.features(_real_batches(trainer.images, n))
        with atomic_open(ref_file) as fh:  # a cut-off cache would be loaded by the next run
            np.save(fh, ref)
    return fid_from_features(inception.features(_sample_batches(trainer.G_ema, n, trainer.device)), ref)


def train_prior_run(
    cfg: PriorTrainingConfig,
    data: Path,  # packed train faces (fam.training.pack) at cfg.resolution
    out: Path,  # full state, log and FID cache; stays where training runs
    engine: Engine | torch.device,  # resolved runtime settings (a bare device: fp32, fused)
    resume: bool = False,  # continue from out/state.pt, else from the lifeboat
    lifeboat: Path | None = None,  # a returned lifeboat folder, used when out/state.pt is absent
    export: Path | None = None,  # where to write the lifeboat, log copy and samples (device: $OUT)
    kimg: float | None = None,  # total kimg to reach (default cfg.kimg)
    minutes: float | None = None,  # wall-clock budget of this call
) -> RunSummary:
    t_start = time.perf_counter()
    out = Path(out)
    state_file = out / "state.pt"
    if state_file.exists() and not resume:
        raise OutputExistsError(f"{state_file} exists; pass --resume to continue it or choose another --out")
    pack = load_pack(data)  # refuses held-out people
    if pack.resolution != cfg.resolution:
        raise InputError(
            f"{data} holds {pack.resolution} px faces; training.prior.resolution is {cfg.resolution}"
        )
    engine = engine if isinstance(engine, Engine) else Engine(engine)
    device = engine.device
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    trainer = PriorTrainer(cfg, pack.images, engine)
    resumed_from = "scratch"
    history: Path | None = None  # a lifeboat's log, which the new run's log continues
    if resume:
        if state_file.is_file():
            trainer.load(state_file)
            resumed_from = str(state_file)
        elif lifeboat is not None and Path(lifeboat).is_dir():
            trainer.load_lifeboat(lifeboat)
            resumed_from = f"lifeboat {lifeboat}"
            history = Path(lifeboat) / "log.jsonl"
        else:
            raise InputError(f"--resume: neither {state_file} nor a lifeboat folder ({lifeboat}) exists")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        out / "training_options.json",
        {
            "config": _to_plain(cfg),
            "data": str(data),
            "pack_meta": {k: v for k, v in pack.meta.items() if k != "rejects"},
            "engine": engine.describe(),
            "threads": torch.get_num_threads(),
        },
        sort_keys=False,
    )
    log_file = out / "log.jsonl"
    if history is not None and history.is_file() and not log_file.exists():
        # the lifeboat's log is the run's history: the training curve outlives a replaced machine
        shutil.copyfile(history, log_file)
    target = int((kimg if kimg is not None else cfg.kimg) * 1000)
    deadline = t_start + minutes * 60 if minutes is not None else float("inf")
    next_ckpt = time.perf_counter() + cfg.checkpoint_every_minutes * 60
    fid_every = int(cfg.fid_every_kimg * 1000)
    last_fid: float | None = None
    _log(
        log_file,
        {
            "event": "start",
            "step": trainer.step,
            "kimg": trainer.nimg / 1000,
            "resumed_from": resumed_from,
            **engine.describe(),
            **({"notes": trainer.notes} if trainer.notes else {}),
        },
    )
    t0, n0 = time.perf_counter(), trainer.nimg
    window_t, window_n = t0, trainer.nimg
    bar = tqdm(total=target, initial=min(trainer.nimg, target), unit="img", unit_scale=True, mininterval=5)
    # Keep ~1 step plus checkpoint time in hand so the call ends before the device kills it.
    margin = 30.0
    stop_file = out / STOP_FILE
    stop_file.unlink(missing_ok=True)  # a request left by an earlier run is not for this one
    while trainer.nimg < target and time.perf_counter() < deadline - margin and not stop_file.exists():
        before = trainer.nimg
        stats = trainer.train_step()
        bar.update(trainer.nimg - before)
        if trainer.step % LOG_EVERY_STEPS == 0:
            if device.type == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            rate = (trainer.nimg - window_n) / max(now - window_t, 1e-9)
            window_t, window_n = now, trainer.nimg
            _log(
                log_file,
                {
                    "step": trainer.step,
                    "kimg": trainer.nimg / 1000,
                    "img_per_s": round(rate, 1),
                    "w_avg_norm": trainer.G.latent_avg.norm().item(),
                    **stats,
                },
            )
            bar.set_postfix(g=f"{stats['loss_g']:.3f}", d=f"{stats['loss_d']:.3f}", ips=f"{rate:.0f}")
        if fid_every > 0 and trainer.nimg // fid_every != before // fid_every:
            last_fid = _fid(trainer, out, cfg.fid_samples)
            _log(
                log_file,
                {
                    "step": trainer.step,
                    "kimg": trainer.nimg / 1000,
                    "fid": last_fid,
                    "fid_samples": cfg.fid_samples,
                },
            )
        if time.perf_counter() > next_ckpt:
            trainer.save(state_file)
            next_ckpt = time.perf_counter() + cfg.checkpoint_every_minutes * 60
    bar.close()
    trainer.save(state_file)
    seconds = time.perf_counter() - t0
    rate = (trainer.nimg - n0) / max(seconds, 1e-9)
    _log(
        log_file,
        {
            "event": "stop",
            "step": trainer.step,
            "kimg": trainer.nimg / 1000,
            "seconds": round(seconds, 1),
            "img_per_s": round(rate, 1),
            "done": trainer.nimg >= target,
            "stopped_on_request": stop_file.exists(),
        },
    )
    if export is not None:
        export = Path(export)
        trainer.write_lifeboat(export)
        save_image(trainer.samples(64), export / "samples.png", nrow=8, normalize=True, value_range=(-1, 1))
        atomic_write_bytes(export / "log.jsonl", log_file.read_bytes())
    return RunSummary(trainer.step, trainer.nimg / 1000, resumed_from, seconds, rate, last_fid)


def reference_features(data: Path, samples: int, device: torch.device) -> np.ndarray:
    """Inception features of the first ``samples`` packed faces, cached beside the pack.

    The cache name carries the pack's sha256 and the count, so a repacked file is never scored
    against stale features. Embedding 5k faces costs ~15 min on two CPU cores; this pays it once.
    """
    digest = sha256_file(data)[:16]
    cache = Path(data).with_name(f"{Path(data).stem}.fid-ref-{samples}-{digest}.npy")
    if cache.is_file():
        return np.load(cache)
    ref = InceptionFeatures(device).features(_real_batches(load_pack(data).images, samples))
    with atomic_open(cache) as fh:
        np.save(fh, ref)
    return ref


def prior_file_fid(prior_dir: Path, data: Path, samples: int, device: torch.device) -> float:
    """FID of a lifeboat's ``prior.pt`` (EMA G, psi 1) against the pack's first ``samples`` faces."""
    from fam.training.encoder import load_prior

    gen, _, _ = load_prior(prior_dir, device)
    real = reference_features(data, samples, device)
    fake = InceptionFeatures(device).features(_sample_batches(gen, samples, device))
    return fid_from_features(fake, real)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="FID of a returned prior.pt against packed train faces")
    ap.add_argument("--prior", type=Path, required=True, help="folder with prior.pt")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--samples", type=int, default=5000)
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(json.dumps({"fid": prior_file_fid(a.prior, a.data, a.samples, dev), "samples": a.samples}))
