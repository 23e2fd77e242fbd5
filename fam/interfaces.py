"""The small interfaces every model sits behind.

The paper's full-scale models (StyleGAN2-FFHQ 1024, e4e, ArcFace, FaRL) and the embedded
defaults that run here are interchangeable by configuration alone because the engine only
ever talks to these protocols (built by :mod:`fam.models.factory`).

Image convention everywhere: float tensors ``[B, 3, R, R]``, RGB, values in ``[-1, 1]``,
FFHQ-style aligned (fam.faces.align), at the generator's resolution ``R``. Encoders resize and
crop internally with differentiable operations.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Generator(Protocol):
    """A StyleGAN2-like generator with a W+ latent space.

    It may also carry ``layer_groups`` (a :class:`fam.layers.LayerGroups`): where it holds
    identity, as measured; ``layers: auto`` then means that split (:func:`fam.layers.resolve_groups_for`).
    """

    z_dim: int  # input noise dimension of the mapping network
    w_dim: int  # dimension of one W vector (512 for the paper's generator)
    num_ws: int  # number of W+ layers (18 at 1024 px)
    resolution: int  # output side length in pixels
    generator_id: str  # stable identity of architecture + weights; enters key derivation

    @property
    def w_avg(self) -> torch.Tensor:
        """Tracked mean of the mapping output, ``[w_dim]``; the truncation centre."""
        ...

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """``z [B, z_dim]`` -> ``w [B, w_dim]`` (no truncation: callers apply it)."""
        ...

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """``ws [B, num_ws, w_dim]`` -> images ``[B, 3, R, R]`` in ``[-1, 1]``.

        Deterministic: noise inputs are fixed buffers, never drawn inside ``forward``.
        """
        ...


@runtime_checkable
class Inverter(Protocol):
    """Maps aligned real images into the generator's W+ space (the paper's E)."""

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, R, R]`` -> ``ws [B, num_ws, w_dim]``; deterministic."""
        ...


@runtime_checkable
class IdentityEncoder(Protocol):
    """A face recognition embedding used inside the losses (the paper's I, ArcFace there)."""

    embedding_dim: int

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, R, R]`` -> L2-normalised embeddings ``[B, embedding_dim]``.

        Differentiable with respect to ``images`` (the crop to the model's input included).
        """
        ...


@runtime_checkable
class AttributeEncoder(Protocol):
    """Identity-agnostic features: pose, expression, illumination, background (the paper's A)."""

    feature_dim: int

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, R, R]`` -> ``[B, feature_dim]``; differentiable."""
        ...


@runtime_checkable
class FaceRecognizer(Protocol):
    """A face recognition model used as a black box by the evaluation (never by the loss)."""

    name: str
    embedding_dim: int

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, R, R]`` aligned as above -> ``[B, embedding_dim]``."""
        ...

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pairwise scores ``[Na, Nb]``, higher means more alike (cosine or negative L2)."""
        ...
