"""Fixtures in the formats of :mod:`fam.artifacts`, built through its classes, never hand-written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fam.artifacts import (
    AlignManifest,
    AlignRow,
    AlignSummary,
    KeyIdentity,
    ProtectItem,
    ProtectManifest,
    Reject,
    ReleaseFile,
    ReleaseIndex,
    ResolvedSettings,
)
from fam.config import Params
from fam.io_utils import sha256_file


def aligned_row(input_path: str, person: str, output_path: str, side: int = 250) -> AlignRow:
    """An input that ``fam align`` aligned (one face, found with confidence)."""
    return AlignRow(
        input_path, person, "aligned", "", output_path, "JPEG", "JPEG", side, side, 0.99, side / 2, 1
    )


def rejected_row(input_path: str, person: str, reason: str = "no_face", side: int = 64) -> AlignRow:
    return AlignRow(input_path, person, "rejected", reason, "", "JPEG", "JPEG", side, side, None, None, 0)


def write_align_manifest(aligned_dir: Path, rows: Sequence[AlignRow], input_dir: Path | None = None) -> Path:
    """``manifest.csv``, and with ``input_dir`` (where the photos are) ``align_summary.json`` as well."""
    if input_dir is not None:
        AlignSummary(
            input_dir=str(input_dir.resolve()),
            n_inputs=len(rows),
            aligned=sum(r.status == "aligned" for r in rows),
            rejected={},
            formats={},
            processed=len(rows),
            seconds_per_image=0.0,
        ).write(aligned_dir)
    return AlignManifest(tuple(rows)).write(aligned_dir)


def protect_item(
    out_dir: Path, original: Path, person: str, pseudonym: str, output: str, index: int
) -> ProtectItem:
    """The item of an image already written at ``out_dir/output`` (its hash is read from the file)."""
    return ProtectItem(
        input=str(original),
        input_sha256=sha256_file(original) if original.is_file() else "",
        person=person,
        pseudonym=pseudonym,
        output=output,
        output_sha256=sha256_file(out_dir / output),
        latent_file=f"latents/{pseudonym}.pt",
        latent_index=index,
        augmented_views=0,
        losses={"anonymity_cos": 0.1},
    )


def write_protect_output(
    out_dir: Path,
    items: Sequence[ProtectItem],
    key: KeyIdentity,
    *,
    generator_id: str = "gen",
    params: Params | None = None,
    rejects: Sequence[Reject] = (),
) -> ProtectManifest:
    """What ``fam protect`` leaves in ``out_dir`` besides the images: manifest, release index, settings."""
    params = params or Params()
    manifest = ProtectManifest(
        code_version="test",
        params_digest=params.method_digest(),
        generator_id=generator_id,
        aligned_dir="",
        precision="fp32",
        modconv="split",
        key=key,
        items=tuple(items),
        rejects=tuple(rejects),
    )
    manifest.write(out_dir)
    prefix = f"{ReleaseIndex.FOLDER}/"
    ReleaseIndex(
        code_version=manifest.code_version,
        params_digest=manifest.params_digest,
        generator_id=generator_id,
        precision=manifest.precision,
        modconv=manifest.modconv,
        key_fingerprint=key.fingerprint,
        key_kind=key.kind,
        n_persons=len({it.pseudonym for it in items}),
        files=tuple(ReleaseFile(it.output.removeprefix(prefix), it.output_sha256) for it in items),
    ).write(out_dir)
    ResolvedSettings.of("protect", params).write(out_dir)
    return manifest


def make_aligned_folder(root: Path, people: dict[str, int]) -> Path:
    """A `fam align` output of generated 32-px faces (``images/``, ``manifest.csv``,
    ``align_summary.json``) and the "photos" it was aligned from, JPEG copies in
    ``<root>-photos/`` (the release suite compares releases with them)."""
    from PIL import Image

    from tests.helpers.faces import make_face_folder

    make_face_folder(root / "images", people)
    photos = root.with_name(f"{root.name}-photos")
    rows = []
    for f in sorted((root / "images").rglob("*.png")):
        photo = photos / f.parent.name / f"{f.stem}.jpg"
        photo.parent.mkdir(parents=True, exist_ok=True)
        Image.open(f).convert("RGB").save(photo, "JPEG", quality=80)
        rows.append(
            aligned_row(photo.relative_to(photos).as_posix(), f.parent.name, f.relative_to(root).as_posix())
        )
    write_align_manifest(root, rows, input_dir=photos)
    return root
