"""Non-invertibility attacks by an adversary who knows the key and sees protected images.

1. Latent replacement (paper section 4, fig. 6): invert the protected image into W+, replace
   the layers that the key face supplies in the mixing (the identity layers 3-7 for the paper's
   equation 1; the coarse layers in the authors'-code mode) by the key face's layers, and decode.
   This is the paper's attack as it is described, taken literally.
2. Learned mapper (table 4): a small U-Net trained on (protected, original) pairs of training
   people with an L1 loss, then applied to held-out people. Small enough to train on a CPU in
   minutes at 64 px.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fam.interfaces import Generator, Inverter


@torch.no_grad()
def latent_replacement(
    protected: torch.Tensor,  # [B, 3, S, S] in [-1, 1]
    inverter: Inverter,
    generator: Generator,
    key_ws: torch.Tensor,  # [1, num_ws, w_dim]: the key face's latent (fam.keys.key_latent)
    key_layers: Sequence[int],  # W+ layers that the key supplied in the mixing
) -> torch.Tensor:
    """Reconstructions ``[B, 3, R, R]`` at the generator's resolution."""
    r = generator.resolution
    x = protected
    if x.shape[-1] != r:
        x = F.interpolate(x, size=(r, r), mode="bilinear", align_corners=False, antialias=x.shape[-1] > r)
    with torch.enable_grad():  # optimisation-based inverters need gradients inside
        ws = inverter.invert(x).detach()
    if ws.shape[1:] != key_ws.shape[1:]:
        raise ValueError(
            f"inverted latents {tuple(ws.shape)} do not match the key latent {tuple(key_ws.shape)}"
        )
    ws = ws.clone()
    idx = list(key_layers)
    ws[:, idx] = key_ws[:, idx].to(ws)
    return generator.synthesis(ws).clamp(-1, 1)


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.GroupNorm(min(8, cout), cout),
            nn.SiLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.SiLU(),
        )


class MapperNet(nn.Module):
    """A three-level U-Net: ``[B, 3, S, S] -> [B, 3, S, S]`` in [-1, 1] (S divisible by 4)."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        c = channels
        self.enc1, self.enc2, self.mid = _Block(3, c), _Block(c, 2 * c), _Block(2 * c, 4 * c)
        self.up2, self.dec2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, stride=2), _Block(4 * c, 2 * c)
        self.up1, self.dec1 = nn.ConvTranspose2d(2 * c, c, 2, stride=2), _Block(2 * c, c)
        self.out = nn.Conv2d(c, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"MapperNet needs a side divisible by 4, got {tuple(x.shape[-2:])}")
        e1 = self.enc1(x)
        e2 = self.enc2(F.avg_pool2d(e1, 2))
        m = self.mid(F.avg_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return torch.tanh(self.out(d1) + x)  # residual: starts near the identity map


def train_mapper(
    protected: torch.Tensor,  # [N, 3, S, S] protected images of training people
    original: torch.Tensor,  # [N, 3, S, S] the matching originals
    *,
    steps: int,
    lr: float,
    batch: int,
    channels: int,
    seed: int,
) -> tuple[MapperNet, list[float]]:
    """Fit the mapper with L1; returns it (eval mode) and the loss of every step.

    Deterministic for a seed: initialisation and batch order come from a private generator.
    """
    if protected.shape != original.shape or len(protected) == 0:
        raise ValueError(
            f"need equal, non-empty pair tensors, got {tuple(protected.shape)} / {tuple(original.shape)}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = MapperNet(channels)
    rng = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses: list[float] = []
    net.train()
    for _ in range(steps):
        idx = torch.randint(len(protected), (min(batch, len(protected)),), generator=rng)
        loss = F.l1_loss(net(protected[idx]), original[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return net.eval().requires_grad_(False), losses


@torch.no_grad()
def apply_mapper(net: MapperNet, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """Reconstructions ``[N, 3, S, S]`` of protected images ``[N, 3, S, S]``."""
    return torch.cat([net(images[i : i + batch]) for i in range(0, len(images), batch)])
