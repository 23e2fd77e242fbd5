"""Time prior training steps (G + D + lazy R1 + EMA) at the configured size on this machine.

    nice -n 10 python -m benchmarks.bench_train_step --steps 5 --batch 16

Prints parameter counts and images per second (after one warm-up step), to size GPU needs.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fam.config import load_params
from fam.models.factory import resolve_device
from fam.training.prior import PriorTrainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=None, help="default: training.prior.batch")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    cfg = load_params().training.prior
    if args.batch:
        from dataclasses import replace

        # r1_interval 4: R1 falls inside a short timed window (over-counts its 1/16 share: conservative)
        cfg = replace(cfg, batch=args.batch, r1_interval=4)
    device = resolve_device(args.device)
    images = torch.randint(0, 256, (256, 3, cfg.resolution, cfg.resolution), dtype=torch.uint8)
    t = PriorTrainer(cfg, images, device)
    t.train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        t.train_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    sec = (time.perf_counter() - t0) / args.steps
    print(
        json.dumps(
            {
                "device": str(device),
                "threads": torch.get_num_threads(),
                "resolution": cfg.resolution,
                "batch": cfg.batch,
                "g_params": sum(p.numel() for p in t.G.parameters()),
                "d_params": sum(p.numel() for p in t.D.parameters()),
                "seconds_per_step": round(sec, 3),
                "images_per_s": round(cfg.batch / sec, 1),
                "r1_interval_in_bench": cfg.r1_interval,
            }
        )
    )


if __name__ == "__main__":
    main()
