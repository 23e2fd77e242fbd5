"""What ``fam protect`` leaves in ``OUT/``: the private manifest and the public release index (JSON)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from fam.artifacts._json import Fields, check_format, locate, read_json
from fam.artifacts.rejects import Reject
from fam.io_utils import atomic_write_json

WRITTEN_BY = "`fam protect`"


@dataclass(frozen=True)
class KeyIdentity:
    """What may be recorded about a key: its kind and public fingerprint, never the material."""

    kind: str  # secret | research
    fingerprint: str
    research_seed: int | None = None  # research keys only: the paper's plain integer seed

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key_kind": self.kind, "key_fingerprint": self.fingerprint}
        if self.research_seed is not None:
            out["research_seed"] = self.research_seed
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeyIdentity:
        """From ``fam.keys.Key.describe()`` or a manifest's ``key`` object."""
        seed = d.get("research_seed")
        return cls(str(d["key_kind"]), str(d["key_fingerprint"]), None if seed is None else int(seed))


@dataclass(frozen=True)
class ProtectItem:
    """One protected image and where it came from."""

    input: str  # the aligned input image (absolute path)
    input_sha256: str  # its content when protected ("" in records older than the field): --resume compares
    person: str  # real name: this is why the manifest is private
    pseudonym: str  # key-dependent folder name in the release
    output: str  # the protected image, relative to OUT (release/images/<pseudonym>/NNNN.png)
    output_sha256: str
    latent_file: str  # relative to OUT (latents/<pseudonym>.pt)
    latent_index: int  # row of this image in the latent file
    augmented_views: int  # views optimised with it but never released (single-image persons)
    losses: dict[str, float]  # per-view and per-group loss terms at the end of optimisation

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "input_sha256": self.input_sha256,
            "person": self.person,
            "pseudonym": self.pseudonym,
            "output": self.output,
            "output_sha256": self.output_sha256,
            "latent_file": self.latent_file,
            "latent_index": self.latent_index,
            "augmented_views": self.augmented_views,
            "losses": dict(self.losses),
        }

    @classmethod
    def from_fields(cls, f: Fields) -> ProtectItem:
        losses = f.child("losses")
        return cls(
            input=f.get("input", str),
            input_sha256=f.get("input_sha256", str, ""),
            person=f.get("person", str),
            pseudonym=f.get("pseudonym", str),
            output=f.get("output", str),
            output_sha256=f.get("output_sha256", str),
            latent_file=f.get("latent_file", str),
            latent_index=f.get("latent_index", int),
            augmented_views=f.get("augmented_views", int),
            losses={k: losses.number(k) for k in losses.doc},
        )


@dataclass(frozen=True)
class ProtectManifest:
    """``OUT/manifest.json``: the PRIVATE lineage of one protect run (JSON).

    Input -> output for every image, real names, losses, the key's identity, the settings digest
    and the code version. Without items it is also the run's resume record (``OUT/.fam/run.json``).
    """

    FILENAME: ClassVar[str] = "manifest.json"
    FORMAT: ClassVar[str] = "fam-protect-manifest/v1"

    code_version: str
    params_digest: str  # Params.method_digest(): the sections that determine the protected outputs
    generator_id: str
    aligned_dir: str
    precision: str  # fp32 | bf16: outputs are reproducible per precision and modulation path
    modconv: str
    key: KeyIdentity
    items: tuple[ProtectItem, ...] = ()
    rejects: tuple[Reject, ...] = ()

    def run_fields(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run it resumes (everything but the results)."""
        return {
            "key_fingerprint": self.key.fingerprint,
            "params_digest": self.params_digest,
            "generator_id": self.generator_id,
            "aligned_dir": self.aligned_dir,
            "precision": self.precision,
            "modconv": self.modconv,
        }

    def to_dict(self) -> dict[str, Any]:
        key = self.key.to_dict()
        return {
            "format": self.FORMAT,
            "code_version": self.code_version,
            "params_digest": self.params_digest,
            "generator_id": self.generator_id,
            "aligned_dir": self.aligned_dir,
            "precision": self.precision,
            "modconv": self.modconv,
            **key,  # v1 keeps the key fields at the top level as well as under "key"
            "key": key,
            "items": [it.to_dict() for it in self.items],
            "rejects": [r.to_dict() for r in self.rejects],
        }

    def write(self, folder: str | Path, name: str = FILENAME) -> Path:
        path = Path(folder) / name
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def read(cls, folder_or_path: str | Path) -> ProtectManifest:
        path = locate(folder_or_path, cls.FILENAME)
        f = Fields(check_format(read_json(path, WRITTEN_BY), path, cls.FORMAT, WRITTEN_BY), path, WRITTEN_BY)
        key = f.child("key")
        seed = key.get("research_seed", int, None)
        return cls(
            code_version=f.get("code_version", str),
            params_digest=f.get("params_digest", str),
            generator_id=f.get("generator_id", str),
            aligned_dir=f.get("aligned_dir", str),
            precision=f.get("precision", str),
            modconv=f.get("modconv", str),
            key=KeyIdentity(key.get("key_kind", str), key.get("key_fingerprint", str), seed),
            items=tuple(ProtectItem.from_fields(x) for x in f.list_of("items")),
            rejects=tuple(Reject.from_fields(x) for x in f.list_of("rejects")),
        )


@dataclass(frozen=True)
class ReleaseFile:
    path: str  # relative to the release folder
    sha256: str


@dataclass(frozen=True)
class ReleaseIndex:
    """``OUT/release/release.json``: the PUBLIC index of a release (JSON).

    Provenance (code version, settings digest, generator, key fingerprint and kind) and the
    sha256 of every released image; no real names, no input paths, no key material. The full
    settings are in ``OUT/settings.json`` (private side): their method digest is ``params_digest``.
    """

    FILENAME: ClassVar[str] = "release.json"
    FOLDER: ClassVar[str] = "release"
    FORMAT: ClassVar[str] = "fam-release/v1"

    code_version: str
    params_digest: str
    generator_id: str
    precision: str
    modconv: str
    key_fingerprint: str
    key_kind: str
    n_persons: int
    files: tuple[ReleaseFile, ...]

    @property
    def n_images(self) -> int:
        return len(self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.FORMAT,
            "code_version": self.code_version,
            "params_digest": self.params_digest,
            "generator_id": self.generator_id,
            "precision": self.precision,
            "modconv": self.modconv,
            "key_fingerprint": self.key_fingerprint,
            "key_kind": self.key_kind,
            "n_images": self.n_images,
            "n_persons": self.n_persons,
            "files": [{"path": f.path, "sha256": f.sha256} for f in self.files],
        }

    def write(self, out_dir: str | Path) -> Path:
        """Into ``out_dir/release/`` (``out_dir`` is the protect output folder)."""
        path = Path(out_dir) / self.FOLDER / self.FILENAME
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def read(cls, folder_or_path: str | Path) -> ReleaseIndex:
        """From the protect output folder, the release folder itself (a published copy) or the file."""
        path = locate(folder_or_path, f"{cls.FOLDER}/{cls.FILENAME}", cls.FILENAME)
        f = Fields(check_format(read_json(path, WRITTEN_BY), path, cls.FORMAT, WRITTEN_BY), path, WRITTEN_BY)
        files = tuple(ReleaseFile(x.get("path", str), x.get("sha256", str)) for x in f.list_of("files"))
        index = cls(
            code_version=f.get("code_version", str),
            params_digest=f.get("params_digest", str),
            generator_id=f.get("generator_id", str),
            precision=f.get("precision", str),
            modconv=f.get("modconv", str),
            key_fingerprint=f.get("key_fingerprint", str),
            key_kind=f.get("key_kind", str),
            n_persons=f.get("n_persons", int),
            files=files,
        )
        if f.get("n_images", int) != index.n_images:
            raise f.error("n_images", f"says {f.doc['n_images']} but {index.n_images} files are listed")
        return index
