"""What a benchmark line needs to be read next to another machine's: the CPU, whether the
background prior training was running, and this machine's measured convolution peak.

``peak_fraction`` = FLOP/s achieved by the timed work (counted with
``torch.utils.flop_counter.FlopCounterMode``) / the FLOP/s of plain 3x3 convolutions at the same
precision, measured here in the same process (forward + backward, batch 16, widths 64-256 at
the resolutions the networks use). 1.0 means the timed work runs as fast as bare convolutions do.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from fam.runtime import Engine, cpu_capabilities

# (batch, channels, side): the per-level shapes of the 64-px prior (equal FLOPs per level)
PEAK_SHAPES = ((16, 64, 64), (16, 128, 32), (16, 256, 16))


def training_running() -> bool | str:
    """Whether a background ``fam train-prior`` shares the CPU (benchmarks run at higher priority);
    ``"paused"`` when every such process is stopped (``scripts/prior_background.sh pause``)."""
    try:
        out = subprocess.run(["pgrep", "-f", "train-prior|train_prior"], capture_output=True, text=True)
    except OSError:
        return False
    states = [s for s in map(process_state, out.stdout.split()) if s is not None]
    if not states:
        return False
    return "paused" if all(s == "T" for s in states) else True


def process_state(pid: int | str) -> str | None:
    """The kernel's one-letter state of a process (R, S, T = stopped, ...); None once it is gone."""
    try:  # /proc/PID/stat: "pid (comm) state ..."; comm may hold spaces, so split after the last ')'
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def machine_line(engine: Engine) -> str:
    caps = cpu_capabilities()
    return (
        f"machine: {caps.describe()} isa={caps.isa} threads={torch.get_num_threads()} "
        f"torch={torch.__version__} device={engine.device} training_running={training_running()}"
    )


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` (forward and backward ops alike), as torch counts them."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def conv_peak_flops(precision: str, device: torch.device, repeats: int = 3) -> float:
    """Best-of FLOP/s of plain 3x3 convolutions, forward + backward, at ``precision``."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    gen = torch.Generator().manual_seed(0)
    total_flops, total_time = 0.0, 0.0
    for b, c, s in PEAK_SHAPES:
        x = torch.randn(b, c, s, s, generator=gen).to(device, dtype).requires_grad_(True)
        w = torch.randn(c, c, 3, 3, generator=gen).to(device, dtype).requires_grad_(True)

        def step(x: torch.Tensor = x, w: torch.Tensor = w) -> None:
            F.conv2d(x, w, padding=1).sum().backward()

        step()
        best = float("inf")
        for _ in range(repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        total_flops += 3 * 2 * b * c * c * 9 * s * s  # forward, input grad, weight grad
        total_time += best
    return total_flops / total_time
