"""Prior training step (G + D + lazy R1 + EMA) at the configured size: the original engine
(fused modulation, fp32) and the resolved fast one (``runtime.*`` = auto), side by side.

    python -m benchmarks.bench_train_step --steps 6 --batch 32

Per engine: images/s (after one warm-up step; R1 every 4 steps, so it falls inside a short
window: over-counts its 1/16 share, i.e. conservative), FLOPs per image and ``peak_fraction``
(see benchmarks/machine.py). Last line: ``speedup=<x> images_per_s=<y> peak_fraction=<f>`` for
the fast engine against the original.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.machine import conv_peak_flops, count_flops, machine_line
from fam.cli.common import load_cli_params
from fam.runtime import Engine, resolve_engine
from fam.training.prior import PriorTrainer


def useful_flops(cfg, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    """FLOPs per image of one step (no R1), counted on the split path in fp32.

    Both paths compute the same function; counting on ``split`` gives the useful work (torch's
    counter over-counts the fused path's grouped transposed convolutions, and the fused path's
    per-sample weight arithmetic is overhead, not work).
    """
    images = torch.randint(0, 256, (64, 3, cfg.resolution, cfg.resolution), dtype=torch.uint8)
    trainer = PriorTrainer(cfg, images, Engine(device, "fp32", "split"))
    trainer.train_step()  # step 0 runs R1; the counted step 1 does not
    return count_flops(trainer.train_step) / cfg.batch


def measure(cfg, engine: Engine, steps: int, flops: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    images = torch.randint(0, 256, (256, 3, cfg.resolution, cfg.resolution), dtype=torch.uint8)
    trainer = PriorTrainer(cfg, images, engine)
    trainer.train_step()  # warm-up (oneDNN picks kernels on first use)
    sync = torch.cuda.synchronize if engine.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    sync()
    ips = steps * cfg.batch / (time.perf_counter() - t0)
    peak = conv_peak_flops(engine.precision, engine.device)
    return {"images_per_s": ips, "gflop_per_image": flops / 1e9, "peak_fraction": ips * flops / peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=None, help="default: training.prior.batch")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="params override KEY=VALUE")
    args = ap.parse_args()
    params = load_cli_params(Path("params.yaml"), tuple(args.overrides))
    cfg = replace(params.training.prior, r1_interval=4)
    if args.batch:
        cfg = replace(cfg, batch=args.batch)
    fast = resolve_engine(params.runtime)
    base = Engine(fast.device, "fp32", "fused")
    print(machine_line(fast))
    print(f"config: {cfg.resolution} px, widths {dict(cfg.channels)}, batch {cfg.batch}")
    flops = useful_flops(cfg, fast.device)
    results = {}
    for name, engine in (("original", base), ("fast", fast)):
        r = measure(cfg, engine, args.steps, flops)
        results[name] = r
        print(
            f"{name}: precision={engine.precision} modconv={engine.modconv} "
            f"images_per_s={r['images_per_s']:.1f} gflop_per_image={r['gflop_per_image']:.2f} "
            f"peak_fraction={r['peak_fraction']:.2f}",
            flush=True,
        )
    f = results["fast"]
    print(
        f"speedup={f['images_per_s'] / results['original']['images_per_s']:.2f} "
        f"images_per_s={f['images_per_s']:.1f} peak_fraction={f['peak_fraction']:.2f}"
    )


if __name__ == "__main__":
    main()
