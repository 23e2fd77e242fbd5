"""Latent inversion: real aligned faces -> W+ (the paper's E).

The paper uses e4e (``fam.models.e4e``). This module holds the generator-agnostic fallback that
works with any generator, trained or not: projection by gradient descent on the pixel error,
started from ``w_avg`` (as in the StyleGAN2 projector, without noise optimisation, so the
result is a pure function of the image). It is slower than an encoder but needs no training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fam.config import ModelSpec
from fam.interfaces import Generator


class ProjectionInverter:
    """W+ projection: ``steps`` Adam steps on MSE at the generator's resolution.

    Images of one batch are optimised together but independently (the loss is a sum over
    images), so the result for an image does not depend on its batch neighbours.
    """

    def __init__(self, generator: Generator, steps: int = 100, lr: float = 0.05) -> None:
        if steps < 0:
            raise ValueError("steps must be >= 0")
        self.generator = generator
        self.steps = steps
        self.lr = lr

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        g = self.generator
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B, 3, R, R], got {tuple(images.shape)}")
        target = images.to(g.w_avg.device, torch.float32)
        if target.shape[-1] != g.resolution:
            target = F.interpolate(
                target,
                size=(g.resolution, g.resolution),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        ws = g.w_avg.detach().reshape(1, 1, -1).repeat(target.shape[0], g.num_ws, 1).clone()
        if self.steps == 0:
            return ws
        ws.requires_grad_(True)
        opt = torch.optim.Adam([ws], lr=self.lr)
        with torch.enable_grad():
            for _ in range(self.steps):
                loss = F.mse_loss(g.synthesis(ws), target, reduction="none").mean(dim=(1, 2, 3)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return ws.detach()


def build_projection_inverter(spec: ModelSpec, ctx) -> ProjectionInverter:
    from fam.models.factory import check_options

    opts = check_options(spec, "inverter", {"steps": 100, "lr": 0.05})
    if ctx.generator is None:
        raise ValueError("the projection inverter needs the generator")
    return ProjectionInverter(ctx.generator, steps=int(opts["steps"]), lr=float(opts["lr"]))
