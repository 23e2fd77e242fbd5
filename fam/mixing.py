"""Latent mixing (paper eq. 1) and which layers the optimisation may move."""

from __future__ import annotations

from typing import Literal

import torch

from fam.layers import LayerGroups

MixMode = Literal["paper", "authors_code"]


def mix(
    w_real: torch.Tensor, w_key: torch.Tensor, groups: LayerGroups, mode: MixMode = "paper"
) -> torch.Tensor:
    """Naive FaceAnonyMixer.

    w_real: ``[B, num_ws, w_dim]`` inverted real faces.
    w_key:  ``[1 or B, num_ws, w_dim]`` the key face's W+ code.
    mode:   ``paper``: eq. 1, ``[real coarse | key identity | real fine]``;
            ``authors_code``: the public code's variant, ``[key coarse | real identity | real fine]``
            (docs/reference.md, the authors' public code), for comparison with their released numbers.
    Returns ``[B, num_ws, w_dim]``, a new tensor.
    """
    if w_real.ndim != 3 or w_key.ndim != 3 or w_real.shape[1:] != w_key.shape[1:]:
        raise ValueError(
            f"w_real {tuple(w_real.shape)} and w_key {tuple(w_key.shape)} must be [B, num_ws, w_dim]"
        )
    if w_real.shape[1] != groups.num_ws:
        raise ValueError(f"latents have {w_real.shape[1]} layers, the layer groups expect {groups.num_ws}")
    from_key = groups.identity if mode == "paper" else groups.coarse
    out = w_real.clone()
    idx = torch.tensor(from_key, device=w_real.device, dtype=torch.long)
    out[:, idx] = w_key.expand(w_real.shape[0], -1, -1)[:, idx].to(out.dtype)
    return out
