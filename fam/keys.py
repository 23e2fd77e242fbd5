"""Revocable keys: where key material comes from, and what is derived from it.

Two kinds of key:

* ``secret``: at least 128 random bits from a key file (``fam key new``, mode 0600) or an
  environment variable; never from a command-line argument or a flow parameter. The only
  trace it leaves anywhere is its public fingerprint. Material that is trivially guessable
  (all zeros, one byte repeated, a counter, a short block repeated) is refused.
* ``research``: a plain integer seed ("key 1 ... key 5") for reproducing the paper's tables.
  Explicitly insecure: its seed may be logged, and a release refuses it unless
  ``release.allow_research_keys`` is true.

Derivation of the key's W+ latent (the paper's S(k), made a proper key-derivation function):
``HMAC-SHA256(key, "fam/key-latent/v1" || generator_id)`` -> a SHAKE-256 stream -> ``z ~ N(0, I)``
by Box-Muller -> the generator's mapping -> truncation towards ``w_avg`` (psi 0.7) -> broadcast
to all W+ layers. The stream carries the full 256 bits into ``z`` (a framework RNG seeded with
an integer would cut the key space to its seed width), is identical on every platform, and
binding the generator's identity means one key gives unrelated faces under different
generators.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from fam.errors import KeyMaterialError

if TYPE_CHECKING:  # torch only where a latent is made: the GX stages check keys without it
    import torch

    from fam.interfaces import Generator

KEY_FILE_HEADER = "fam-key v1"
MIN_KEY_BYTES = 16  # 128 bits
NEW_KEY_BYTES = 32

_CTX_LATENT = b"fam/key-latent/v1\x00"
_CTX_FINGERPRINT = b"fam/fingerprint/v1"
_CTX_PERSON = b"fam/person/v1\x00"

KeyKind = Literal["secret", "research"]


class Key:
    """Key material held in memory only. Its repr, str and fingerprint never reveal it.

    Keys refuse to be pickled, so an orchestrator's result cache or a process pool can never
    persist one by accident: pass the key's *reference* (file path or variable name) instead.
    """

    __slots__ = ("_material", "fingerprint", "kind", "research_seed")

    def __init__(self, material: bytes, kind: KeyKind, research_seed: int | None = None) -> None:
        if kind == "secret":
            check_secret_material(material, "key material")
        self._material = material
        self.kind: KeyKind = kind
        self.research_seed = research_seed
        self.fingerprint = "fp-" + hmac.new(material, _CTX_FINGERPRINT, hashlib.sha256).hexdigest()[:32]

    def __repr__(self) -> str:
        seed = f", seed={self.research_seed}" if self.kind == "research" else ""
        return f"Key(kind={self.kind!r}, fingerprint={self.fingerprint!r}{seed})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and hmac.compare_digest(self._material, other._material)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self):
        raise TypeError("fam.keys.Key cannot be pickled; pass the key file path or environment variable name")

    def describe(self) -> dict[str, object]:
        """What may be recorded about this key (manifests, MLflow): never the material."""
        out: dict[str, object] = {"key_kind": self.kind, "key_fingerprint": self.fingerprint}
        if self.kind == "research":
            out["research_seed"] = self.research_seed
        return out

    def derive(self, context: bytes) -> bytes:
        return hmac.new(self._material, context, hashlib.sha256).digest()

    def person_pseudonym(self, person: str) -> str:
        """Stable, key-dependent folder name for a person in a release (real names never leave)."""
        return "p" + self.derive(_CTX_PERSON + person.encode("utf-8")).hex()[:12]


# --------------------------------------------------------------------------------------------
# Where key material comes from.


def research_key(seed: int) -> Key:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise KeyMaterialError(f"a research key seed must be a non-negative integer, got {seed!r}")
    return Key(f"fam-research-key:{seed}".encode(), "research", research_seed=seed)


def new_key() -> Key:
    """A fresh 256-bit key, in memory only (:func:`write_key_file` stores it)."""
    return Key(secrets.token_bytes(NEW_KEY_BYTES), "secret")


def refuse_existing_key_file(path: Path) -> None:
    """A key file is never overwritten: commands check this early, before slow work."""
    if path.exists():
        raise KeyMaterialError(
            f"{path} already exists; a key file is never overwritten (choose another path)"
        )


def write_key_file(path: str | Path, key: Key) -> None:
    """Store a secret ``key`` at ``path`` with mode 0600; never overwrites."""
    path = Path(path)
    if key.kind != "secret":
        raise KeyMaterialError(f"only secret keys are written to key files, not a {key.kind} key")
    refuse_existing_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{KEY_FILE_HEADER}\n{key._material.hex()}\n")
    os.chmod(path, 0o600)  # the umask may have narrowed it further; make it exactly 0600


def new_key_file(path: str | Path) -> Key:
    """Write a fresh 256-bit key to ``path`` with mode 0600; never overwrites."""
    key = new_key()
    write_key_file(path, key)
    return key


def load_key_file(path: str | Path) -> Key:
    path = Path(path)
    if not path.is_file():
        raise KeyMaterialError(f"key file {path} does not exist; create one with `fam key new --out {path}`")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyMaterialError(
            f"key file {path} is readable by other users (mode {mode:04o}); run `chmod 600 {path}`"
        )
    text = path.read_text(errors="replace").strip().splitlines()
    if len(text) != 2 or text[0].strip() != KEY_FILE_HEADER:
        raise KeyMaterialError(
            f"{path} is not a fam key file (expected a '{KEY_FILE_HEADER}' header line and one hex line)"
        )
    return Key(_parse_hex(text[1].strip(), f"key file {path}"), "secret")


def load_key_env(var: str) -> Key:
    value = os.environ.get(var)
    if value is None or not value.strip():
        raise KeyMaterialError(f"environment variable {var} is not set or empty; it must hold the key as hex")
    return Key(_parse_hex(value.strip(), f"environment variable {var}"), "secret")


def load_keys(
    files: Sequence[str | Path], env_vars: Sequence[str], research_seeds: Sequence[int]
) -> list[Key]:
    """Several keys, each from its source: files, then variables, then research seeds."""
    keys = [load_key_file(f) for f in files] + [load_key_env(v) for v in env_vars]
    return keys + [research_key(s) for s in research_seeds]


def load_key(
    key_file: str | Path | None = None,
    env_var: str | None = None,
    research_seed: int | None = None,
) -> Key:
    """Exactly one source: a key file, an environment variable, or a research seed."""
    given = [x is not None for x in (key_file, env_var, research_seed)]
    if sum(given) != 1:
        raise KeyMaterialError(
            "give exactly one key source: --key-file FILE, --key-env VAR or --research-seed N "
            f"(got {sum(given)})"
        )
    if key_file is not None:
        return load_key_file(key_file)
    if env_var is not None:
        return load_key_env(env_var)
    assert research_seed is not None
    return research_key(research_seed)


def _parse_hex(text: str, where: str) -> bytes:
    try:
        material = bytes.fromhex(text)
    except ValueError:
        raise KeyMaterialError(f"{where} does not hold hexadecimal key material") from None
    check_secret_material(material, where)
    return material


def check_secret_material(material: bytes, where: str) -> None:
    """Refuse key material that is too short or trivially guessable; messages name ``where`` only.

    The patterns refused are what a person types or a broken generator writes (zeros, one byte
    repeated, a counter, a short block repeated, a handful of distinct byte values). Random
    material shows one of them with probability about 2**-64 at 16 bytes and below 2**-122 at
    the 32 bytes ``fam key new`` writes.
    """
    fix = "create a random key with `fam key new --out FILE`"
    if len(material) < MIN_KEY_BYTES:
        raise KeyMaterialError(
            f"{where} holds {len(material) * 8} bits; at least {MIN_KEY_BYTES * 8} are required ({fix})"
        )
    why = _guessable(material)
    if why is not None:
        raise KeyMaterialError(f"{where} is not a usable secret key: {why}; {fix}")


def _guessable(material: bytes) -> str | None:
    n = len(material)
    steps = {(b - a) % 256 for a, b in itertools.pairwise(material)}
    if steps == {0}:
        return "every byte is the same"
    if len(steps) == 1:
        return "the bytes count up or down by a fixed step"
    period = _smallest_period(material)
    if period <= n // 2:
        return f"a block of {period} bytes repeated"
    if len(set(material)) < n // 4:
        return f"only {len(set(material))} distinct byte values in {n} bytes"
    return None


def _smallest_period(data: bytes) -> int:
    """Length of the shortest block whose repetition gives ``data`` (KMP failure function:
    linear time, so an absurdly long key in a variable cannot stall the check)."""
    border = [0] * len(data)
    k = 0
    for i in range(1, len(data)):
        while k and data[i] != data[k]:
            k = border[k - 1]
        if data[i] == data[k]:
            k += 1
        border[i] = k
    return len(data) - border[-1]


# --------------------------------------------------------------------------------------------
# The key's latent (paper: z_f = S(k)).


def key_noise(key: Key, generator_id: str, z_dim: int) -> torch.Tensor:
    """``z [1, z_dim]`` ~ N(0, I), a pure function of the key and the generator's identity."""
    digest = key.derive(_CTX_LATENT + generator_id.encode("utf-8"))
    n_pairs = (z_dim + 1) // 2
    stream = hashlib.shake_256(digest).digest(16 * n_pairs)
    ints = np.frombuffer(stream, dtype="<u8").reshape(2, n_pairs)
    # 53-bit uniforms; u1 in (0, 1] so the logarithm is finite.
    u1 = ((ints[0] >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53
    u2 = (ints[1] >> np.uint64(11)).astype(np.float64) * 2.0**-53
    radius = np.sqrt(-2.0 * np.log(u1))
    z = np.concatenate([radius * np.cos(2 * np.pi * u2), radius * np.sin(2 * np.pi * u2)])[:z_dim]
    import torch

    return torch.from_numpy(z.astype(np.float32)).unsqueeze(0)


def key_latent(key: Key, generator: Generator, truncation_psi: float = 0.7) -> torch.Tensor:
    """The key face's W+ code ``[1, num_ws, w_dim]`` (psi 1 disables truncation)."""
    import torch

    if not 0.0 < truncation_psi <= 1.0:
        raise KeyMaterialError(f"key.truncation_psi must be in (0, 1], got {truncation_psi}")
    with torch.no_grad():
        w_avg = generator.w_avg
        z = key_noise(key, generator.generator_id, generator.z_dim).to(w_avg.device)
        w = generator.mapping(z)
        w = w_avg + truncation_psi * (w - w_avg)
        return w.unsqueeze(1).repeat(1, generator.num_ws, 1)


@dataclass(frozen=True)
class KeyReference:
    """Where to find key material, never the material: what flows and tasks pass around."""

    key_file: str | None = None
    env_var: str | None = None
    research_seed: int | None = None

    def load(self) -> Key:
        return load_key(self.key_file, self.env_var, self.research_seed)
