"""Key references for flows: where key material is, never the material.

A flow parameter names one source: a key file path, an environment variable name, a Prefect
Secret block name, or (for reproducing the paper's tables only) a research seed. The key is
loaded inside the task that needs it and never crosses a task boundary, a cache key or a log:
``fam.keys.Key`` refuses to be pickled, so a mistake here fails loudly instead of persisting it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from fam.errors import KeyMaterialError
from fam.keys import KEY_FILE_HEADER, Key, KeyReference


@dataclass(frozen=True)
class FlowKeyRef:
    """Exactly one of the four fields is set (checked in ``__post_init__``)."""

    key_file: str | None = None  # path of a `fam key new` file (mode 0600)
    env_var: str | None = None  # name of an environment variable holding the key as hex
    secret_block: str | None = None  # name of a Prefect Secret block holding the key as hex
    research_seed: int | None = None  # insecure "key N" of the paper's tables

    def __post_init__(self) -> None:
        given = [v is not None for v in (self.key_file, self.env_var, self.secret_block, self.research_seed)]
        if sum(given) != 1:
            raise KeyMaterialError(
                "a key reference names exactly one of key_file, env_var, secret_block, research_seed "
                f"(got {sum(given)})"
            )

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | FlowKeyRef) -> FlowKeyRef:
        if isinstance(raw, FlowKeyRef):
            return raw
        unknown = sorted(set(raw) - {"key_file", "env_var", "secret_block", "research_seed"})
        if unknown:
            raise KeyMaterialError(
                f"unknown key reference field(s) {unknown}; a flow never takes key material"
            )
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        """Where the key comes from, safe to log (a path or a name, never the value)."""
        (kind, value), *_ = self.to_dict().items()
        return f"{kind}={value}"

    def load(self) -> Key:
        if self.secret_block is not None:
            return Key(
                _parse_hex(_secret_block_value(self.secret_block), f"Secret block {self.secret_block}"),
                "secret",
            )
        return KeyReference(self.key_file, self.env_var, self.research_seed).load()

    def material_hex(self) -> str | None:
        """The key as hex, for scanning a release for leaked key material; None for research seeds.

        Read from the source, as the loader does, and only kept in the caller's memory.
        """
        if self.key_file is not None:
            self.load()  # checks the file's mode and format first
            with open(self.key_file) as fh:
                return fh.read().strip().splitlines()[1].strip().lower()
        if self.env_var is not None:
            self.load()
            return os.environ[self.env_var].strip().lower()
        if self.secret_block is not None:
            return _secret_block_value(self.secret_block).strip().lower()
        return None


def _secret_block_value(name: str) -> str:
    from prefect.blocks.system import (
        Secret,
    )  # only flows resolve Secret blocks; fam/ knows nothing of Prefect

    try:
        value = Secret.load(name).get()
    except ValueError as exc:
        raise KeyMaterialError(f"Prefect Secret block {name!r} cannot be loaded: {exc}") from None
    if not isinstance(value, str):
        raise KeyMaterialError(f"Prefect Secret block {name!r} must hold the key as a hex string")
    return value


def _parse_hex(text: str, where: str) -> bytes:
    try:
        material = bytes.fromhex(text.strip())
    except ValueError:
        raise KeyMaterialError(
            f"{where} does not hold hexadecimal key material (a `fam key new` file's second line; "
            f"the file starts with '{KEY_FILE_HEADER}')"
        ) from None
    return material
