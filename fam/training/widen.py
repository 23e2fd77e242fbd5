"""Widen a trained prior's generator without changing what it draws (Net2Net-style growth).

Why: past ~900 kimg the CPU-trained prior stopped gaining identity diversity while both
discriminators still separate its faces from real ones as easily as before and score training
and held-out faces alike (docs/training.md, "Where the gap sits"): the generator, not the data
or the discriminator, is the limit. Restarting at a larger width would throw away ~25 hours of
CPU training, so the trained generator grows in place instead.

How, for every modulated convolution whose width grows (``weight [1, out, in, k, k]``):

- old outputs keep their weights; their weights from the NEW input channels are zero, so they
  compute exactly what they did (a demodulated layer normalises each output over its inputs,
  which the zeros leave alone);
- new output channels start from a fresh initialisation (a new seed), so they carry signal
  and gradient at once, and everything downstream ignores them until it learns to use them;
- ``ToRGB`` is not demodulated, and its run-time scale ``1/sqrt(in)`` falls as ``in`` grows:
  the kept weights are multiplied back by ``sqrt(in_new / in_old)``;
- biases, styles (modulation rows) and the constant input grow with fresh values in the new
  slots; the mapping network and ``w_avg`` do not change.

Adam's moments grow with the weights: the old entries keep theirs, new entries start with a
zero first moment and the tensor's mean second moment (a zero second moment after thousands of
bias-corrected steps would make their first updates ~10x the learning rate). The EMA generator
grows identically, with the same new values, so the two stay comparable. The discriminators and
their optimisers are untouched, and so is the training RNG: the run continues where it was.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from fam.config import PriorTrainingConfig, _to_plain
from fam.errors import InputError, OutputExistsError
from fam.io_utils import atomic_write_text
from fam.models.stylegan2 import ModulatedConv2d, StyleGAN2Generator
from fam.training.prior import KIND, channel_map, d_channel_map, generator_config

GROWTH_SEED_OFFSET = 7919  # new channels' initialisation: not the original run's (seed) stream


def grows(old: dict[int, int], new: dict[int, int]) -> bool:
    """True when ``new`` widens ``old``: the same resolutions, none narrower, one wider."""
    return old.keys() == new.keys() and old != new and all(new[r] >= old[r] for r in old)


def _check_growth(old: dict[int, int], new: dict[int, int]) -> None:
    """Why ``new`` does not widen ``old`` (:func:`grows`), as an error that says what to set."""
    if set(old) != set(new):
        raise InputError(
            f"widening keeps the resolutions: the state has {sorted(old)}, the target {sorted(new)}"
        )
    narrower = {r: (old[r], new[r]) for r in old if new[r] < old[r]}
    if narrower:
        raise InputError(f"widening cannot narrow a layer: {narrower} (resolution: (state, target))")
    if old == new:
        raise InputError(f"the target widths {new} are the state's own: nothing to widen")


def _grown_generator_state(
    old_state: dict[str, torch.Tensor], fresh: StyleGAN2Generator
) -> dict[str, torch.Tensor]:
    """``fresh``'s state with ``old_state`` pasted into the leading slots (rules: module doc)."""
    out: dict[str, torch.Tensor] = {}
    fresh_state = fresh.state_dict()
    modconvs = {name: m for name, m in fresh.named_modules() if isinstance(m, ModulatedConv2d)}
    for key, new_value in fresh_state.items():
        old_value = old_state[key]
        value = new_value.detach().clone().to(old_value.dtype)
        if value.shape == old_value.shape:
            out[key] = old_value.detach().clone()
            continue
        if value.ndim != old_value.ndim or any(
            n < o for n, o in zip(value.shape, old_value.shape, strict=True)
        ):
            raise InputError(f"{key}: cannot grow {tuple(old_value.shape)} into {tuple(value.shape)}")
        region = tuple(slice(0, n) for n in old_value.shape)
        module = modconvs.get(key.removesuffix(".weight")) if key.endswith(".weight") else None
        if module is not None:  # [1, out, in, k, k]
            out_old, in_old = old_value.shape[1], old_value.shape[2]
            value[:, :out_old, in_old:] = 0.0  # old outputs ignore the new inputs
            kept = old_value
            if not module.demodulate:  # run-time scale 1/sqrt(in) shrank; demodulation would undo it
                kept = old_value * math.sqrt(value.shape[2] / in_old)
            value[region] = kept
        else:
            value[region] = old_value
        out[key] = value
    return out


def _fresh_generator(target: PriorTrainingConfig) -> StyleGAN2Generator:
    fresh = StyleGAN2Generator(generator_config(target))
    fresh.reset_parameters(target.seed + GROWTH_SEED_OFFSET)
    return fresh


def grow_generator_state(
    state: dict[str, torch.Tensor], target: PriorTrainingConfig
) -> dict[str, torch.Tensor]:
    """One generator state dict grown to ``target.channels`` (the rules above); for a G and its EMA
    to stay comparable, grow both with the same ``target``: the new channels are a pure function
    of its seed."""
    return _grown_generator_state(state, _fresh_generator(target))


def _grown_adam_state(
    opt_state: dict[str, Any], old_shapes: list[torch.Size], new_shapes: list[torch.Size]
) -> dict[str, Any]:
    grown = {"param_groups": opt_state["param_groups"], "state": {}}
    for index, moments in opt_state["state"].items():
        old_shape, new_shape = old_shapes[index], new_shapes[index]
        if old_shape == new_shape:
            grown["state"][index] = moments
            continue
        region = tuple(slice(0, n) for n in old_shape)
        entry = dict(moments)
        avg = torch.zeros(new_shape, dtype=moments["exp_avg"].dtype)
        avg[region] = moments["exp_avg"]
        sq = torch.full(new_shape, float(moments["exp_avg_sq"].mean()), dtype=moments["exp_avg_sq"].dtype)
        sq[region] = moments["exp_avg_sq"]
        entry["exp_avg"], entry["exp_avg_sq"] = avg, sq
        grown["state"][index] = entry
    return grown


def widen_prior_state(state: dict[str, Any], target: PriorTrainingConfig) -> dict[str, Any]:
    """A full training state (``state.pt`` of ``fam train-prior``) with G and its EMA grown to
    ``target.channels``; D keeps its widths (``target.d_channels`` must say them)."""
    if state.get("kind") != KIND:
        raise InputError(f"not a prior training state ({state.get('kind')!r})")
    saved = dict(state["config"])
    old_widths = {int(k): int(v) for k, v in saved["channels"].items()}
    new_widths = channel_map(target)
    _check_growth(old_widths, new_widths)
    for k in ("resolution", "w_dim", "n_mlp"):
        if saved[k] != getattr(target, k):
            raise InputError(f"widening keeps {k}: the state has {saved[k]}, the target {getattr(target, k)}")
    if d_channel_map(saved) != d_channel_map(target):
        raise InputError(
            f"widening grows G alone: set training.prior.d_channels to the state's D widths "
            f"{d_channel_map(saved)} (the target's D would be {d_channel_map(target)})"
        )
    fresh = _fresh_generator(target)
    g = _grown_generator_state(state["g"], fresh)
    g_ema = _grown_generator_state(state["g_ema"], fresh)
    names = [name for name, _ in fresh.named_parameters()]  # the optimiser's parameter order
    opt_g = _grown_adam_state(
        state["opt_g"], [state["g"][n].shape for n in names], [g[n].shape for n in names]
    )
    return {**state, "config": _to_plain(target), "g": g, "g_ema": g_ema, "opt_g": opt_g}


def widen_prior_run(source: Path, out: Path, target: PriorTrainingConfig) -> dict[str, Any]:
    """``source`` (a ``state.pt``) widened into ``out/state.pt``, which ``fam train-prior --out out
    --resume`` continues; the source's log comes along with a ``widen`` event, so the training
    curve stays one file. Returns that event."""
    from fam.training import checkpoint as ckpt

    source, out = Path(source), Path(out)
    if not source.is_file():
        raise InputError(f"{source} does not exist: give the state.pt of a `fam train-prior` run")
    if (out / "state.pt").exists():
        raise OutputExistsError(
            f"{out / 'state.pt'} exists; widen into a new folder (the source stays as it is)"
        )
    state = ckpt.load(source)
    before = sum(v.numel() for k, v in state.get("g", {}).items() if not k.startswith("noises."))
    grown = widen_prior_state(state, target)
    after = sum(v.numel() for k, v in grown["g"].items() if not k.startswith("noises."))
    event = {
        "event": "widen",
        "step": int(state["step"]),
        "kimg": int(state["nimg"]) / 1000,
        "from": str(source),
        "channels_before": {str(k): int(v) for k, v in state["config"]["channels"].items()},
        "channels_after": {str(k): v for k, v in channel_map(target).items()},
        "d_channels": {str(k): v for k, v in d_channel_map(target).items()},
        "g_parameters_before": before,
        "g_parameters_after": after,
    }
    out.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_save(grown, out / "state.pt")
    history = source.parent / "log.jsonl"
    lines = history.read_text() if history.is_file() else ""
    atomic_write_text(out / "log.jsonl", lines + json.dumps(event) + "\n")
    return event
