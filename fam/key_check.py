"""Whether keys' key faces are apart for the identity model: what revocation rests on.

Two releases of one person under two keys are unlinkable only if the two keys' synthetic faces
(the identity the protected faces take on) are different people to a face recognition system. A
generator draws key faces from one distribution, so two keys can land on look-alikes: how often
is the prior's ``distinct`` (benchmarks/bench_prior.py). ``fam key check`` measures a given set of
keys, ``fam key new --apart-from`` draws a key whose face is apart from the faces of given ones
(a reissue after a revocation). The threshold is the identity model's calibrated impostor cosine
at FMR 1e-3 at the generator's resolution (:mod:`fam.calibration`), the point where one pair of
real different people in a thousand already matches.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from fam.calibration import load_calibration
from fam.config import Params
from fam.errors import ConfigError, InputError
from fam.interfaces import Generator, IdentityEncoder
from fam.keys import Key, key_latent, new_key


@dataclass(frozen=True)
class KeyPair:
    a: str  # fingerprints only: a key check is safe to print and log
    b: str
    cosine: float
    linked: bool  # cosine >= the threshold: the identity model takes the two key faces for one person


@dataclass(frozen=True)
class KeyCheck:
    threshold: float
    threshold_source: str
    pairs: tuple[KeyPair, ...]

    @property
    def linked(self) -> list[KeyPair]:
        return [p for p in self.pairs if p.linked]


class KeyFaces:
    """Identity embeddings of key faces, with the generator and identity model they come from."""

    def __init__(self, generator: Generator, identity: IdentityEncoder, truncation_psi: float) -> None:
        self.generator, self.identity, self.truncation_psi = generator, identity, truncation_psi

    @torch.no_grad()
    def embed(self, keys: Sequence[Key]) -> torch.Tensor:
        """``[len(keys), D]`` L2-normalised embeddings of the keys' faces (one key at a time, so a
        key's embedding does not depend on which others are checked with it)."""
        rows = []
        for key in keys:
            image = self.generator.synthesis(key_latent(key, self.generator, self.truncation_psi))
            rows.append(self.identity.embed(image.float()).float()[0])
        return torch.stack(rows)


def linking_threshold(params: Params, resolution: int, given: float | None = None) -> tuple[float, str]:
    """The cosine at or above which two key faces count as one person, and where it comes from."""
    if given is not None:
        if not -1.0 <= given <= 1.0:
            raise InputError(f"--threshold {given} is not a cosine in [-1, 1]")
        return given, "given"
    name = params.models.identity.name
    try:
        calibration = load_calibration(name, resolution)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; or pass --threshold COSINE") from None
    return calibration.impostor_cos_fmr1e3, f"{calibration.key} impostor cosine at FMR 1e-3"


def check_keys(keys: Sequence[Key], faces: KeyFaces, threshold: float, source: str) -> KeyCheck:
    """Every pair of ``keys`` (two or more, all different) scored against ``threshold``."""
    if len(keys) < 2:
        raise InputError(f"a key check needs two keys or more, got {len(keys)}")
    if len({k.fingerprint for k in keys}) < len(keys):
        raise InputError("the same key is given twice: its faces are identical by construction")
    emb = faces.embed(keys)
    cos = (emb @ emb.T).tolist()
    pairs = tuple(
        KeyPair(keys[i].fingerprint, keys[j].fingerprint, cos[i][j], cos[i][j] >= threshold)
        for i, j in itertools.combinations(range(len(keys)), 2)
    )
    return KeyCheck(threshold, source, pairs)


@dataclass(frozen=True)
class Draw:
    key: Key
    draws: int  # how many keys were drawn to find this one
    nearest: float  # its face's highest cosine to the faces it must be apart from


def draw_apart(
    others: Sequence[Key],
    faces: KeyFaces,
    threshold: float,
    max_draws: int = 32,
    draw: Callable[[], Key] = new_key,
) -> Draw:
    """A fresh key whose face is below ``threshold`` against every key face of ``others``.

    Rejecting look-alikes costs the key a fraction of a bit (``-log2`` of the share of draws that
    pass); ``max_draws`` failing in a row means the generator cannot tell faces apart at this
    threshold, which is reported rather than looped on."""
    if not others:
        raise InputError("--apart-from needs at least one key file")
    taken = faces.embed(others)
    best = float("inf")
    for attempt in range(1, max_draws + 1):
        key = draw()
        nearest = float((faces.embed([key]) @ taken.T).max())
        if nearest < threshold:
            return Draw(key, attempt, nearest)
        best = min(best, nearest)
    raise InputError(
        f"{max_draws} fresh keys all drew a face that the identity model matches to one of the given "
        f"keys' faces (closest {best:.4f} >= {threshold:.4f}): this generator's key faces are too "
        "alike to reissue safely; see its distinct rate (benchmarks/bench_prior.py)"
    )


def key_faces_from_params(params: Params) -> KeyFaces:
    """The generator and identity model of ``params``, built as ``fam protect`` builds them."""
    from fam.models.factory import BuildContext, build, resolve_device

    device = resolve_device(params.runtime.device)
    generator = build("generator", params.models.generator, BuildContext(device))
    identity = build("identity", params.models.identity, BuildContext(device, generator=generator))
    return KeyFaces(generator, identity, params.key.truncation_psi)
