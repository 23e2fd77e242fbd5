"""Atomic checkpoint files, and the compact "lifeboat" that carries training to another machine.

Two forms of the same training state:

- ``state.pt`` (full): every tensor in float32, both optimisers and the RNG state. Resuming from
  it gives bit-identical next steps. It stays where training runs (~100 MB for the prior).
- the "lifeboat" (``lifeboat/``): each network's weights in float16, one file per network, plus a
  small ``meta.pt`` with counters and RNG state. It is what moves: committed to the repository
  between CPU training sessions (so a replaced machine loses little), or brought back from a
  remote GPU run (whose returned files are capped, hence the per-file limit below). Resuming from
  it restarts the Adam moments (with beta1 = 0 and beta2 = 0.99 they re-estimate within ~100
  steps).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fam.errors import InputError
from fam.io_utils import atomic_open

RETURN_LIMIT = 16 * 2**20  # bytes per lifeboat file: what a remote GPU run may return per file


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` streamed into the atomic writer: a crash never leaves half a checkpoint."""
    with atomic_open(path) as fh:
        torch.save(obj, fh)


def load(path: Path) -> dict[str, Any]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise InputError(
            f"{path}: cannot be read as a training checkpoint ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(obj, dict):
        raise InputError(f"{path}: holds a {type(obj).__name__}, expected a checkpoint dict")
    return obj


def half_state(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors to float16 (weights under equalised lr are ~N(0, 1): fp16 keeps ~3 digits)."""
    return {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu() for k, v in sd.items()}


def write_lifeboat(
    folder: Path, nets: Mapping[str, Mapping[str, torch.Tensor]], meta: dict[str, Any]
) -> None:
    """One float16 file per network plus ``meta.pt``; refuses pieces over the return limit."""
    folder = Path(folder)
    for name, sd in nets.items():
        path = folder / f"{name}_fp16.pt"
        atomic_save(half_state(sd), path)
        if path.stat().st_size > RETURN_LIMIT:
            raise InputError(
                f"{path} is {path.stat().st_size / 2**20:.1f} MiB, over the 16 MiB the device tool returns; "
                "use a smaller model or split the network"
            )
    atomic_save(meta, folder / "meta.pt")


def read_lifeboat(
    folder: Path, names: list[str]
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    folder = Path(folder)
    missing = [n for n in [*(f"{n}_fp16.pt" for n in names), "meta.pt"] if not (folder / n).is_file()]
    if missing:
        raise InputError(f"lifeboat {folder} lacks {missing}; pass the folder a device call returned")
    nets = {
        n: {k: v.float() if v.is_floating_point() else v for k, v in load(folder / f"{n}_fp16.pt").items()}
        for n in names
    }
    return nets, load(folder / "meta.pt")
