"""Cost of the vision-aided D head: prior train steps with the head off and on, same engine.

    python -m benchmarks.bench_vision_d --steps 8 --weights PATH.pth

Default config (``training.prior`` of params.yaml; R1 every 16 steps as in training); the runtime
resolves as ``runtime.*`` says (``--precision`` / ``--modconv`` override it). Single steps with
the head off and on alternate, after two warm-up steps each, so that load from other processes
hits both alike; the median step time of each counts (a step with R1 falls on both sides alike).
The head is measured active (start 0). Its cost does not depend on the weights' values, but the
registry file is used unless ``--random-extractor`` is given.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.machine import machine_line
from fam.cli.common import load_cli_params
from fam.models.efficientnet_lite import EfficientNetLite0, load_efficientnet_lite0
from fam.runtime import Engine, resolve_engine
from fam.training.prior import PriorTrainer


def timed_step(trainer: PriorTrainer) -> float:
    t0 = time.perf_counter()
    trainer.train_step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="timed steps per side")
    ap.add_argument("--batch", type=int, default=None, help="default: training.prior.batch")
    ap.add_argument("--weight", type=float, default=0.1, help="vision_weight of the 'on' trainer")
    ap.add_argument("--weights", type=Path, default=None, help="the .pth (default: the registry's)")
    ap.add_argument("--random-extractor", action="store_true", help="random weights, same architecture")
    ap.add_argument("--precision", default=None)
    ap.add_argument("--modconv", default=None)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="params override KEY=VALUE")
    args = ap.parse_args()
    params = load_cli_params(Path("params.yaml"), tuple(args.overrides))
    cfg = params.training.prior
    if args.batch:
        cfg = replace(cfg, batch=args.batch)
    engine = resolve_engine(params.runtime)
    engine = Engine(engine.device, args.precision or engine.precision, args.modconv or engine.modconv)
    extractor = EfficientNetLite0() if args.random_extractor else load_efficientnet_lite0(args.weights)
    print(machine_line(engine))
    print(
        f"config: {cfg.resolution} px, widths {dict(cfg.channels)}, batch {cfg.batch}, "
        f"precision={engine.precision} modconv={engine.modconv}, vision_size {cfg.vision_size}, "
        f"extractor {'random' if args.random_extractor else 'registry weights'}"
    )
    images = torch.randint(0, 256, (256, 3, cfg.resolution, cfg.resolution), dtype=torch.uint8)
    off = PriorTrainer(cfg, images, engine)
    on = PriorTrainer(
        replace(cfg, vision_weight=args.weight, vision_start_kimg=0.0), images, engine, extractor
    )
    for trainer in (off, on, off, on):
        trainer.train_step()  # warm-up (oneDNN picks kernels on first use)
    times: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(args.steps):
        for name, trainer in (("off", off), ("on", on)):
            times[name].append(timed_step(trainer))
            print(f"step {i} {name}: {times[name][-1]:.2f} s", flush=True)
    ips = {name: cfg.batch / statistics.median(t) for name, t in times.items()}
    print(
        f"off_images_per_s={ips['off']:.1f} on_images_per_s={ips['on']:.1f} "
        f"slowdown={ips['off'] / ips['on']:.2f}"
    )


if __name__ == "__main__":
    main()
