"""What ``fam invert`` leaves in ``INV/``: ``inversions.pt``, the W+ latents of every aligned face."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fam.artifacts._json import check_format, locate, missing
from fam.errors import InputError
from fam.io_utils import atomic_torch_save

if TYPE_CHECKING:  # torch is imported where a file is read: the GX and MLflow stages never need it
    import torch

WRITTEN_BY = "`fam invert`"


@dataclass(frozen=True)
class Inversions:
    """``INV/inversions.pt`` (a torch file of plain types, loaded with ``weights_only=True``).

    One inversion per aligned image, computed once and reused by every key's protect run.
    """

    FILENAME: ClassVar[str] = "inversions.pt"
    FORMAT: ClassVar[str] = "fam-inversions/v1"

    generator_id: str  # the generator the latents belong to
    inverter: dict[str, Any]  # the resolved models.inverter settings
    paths: tuple[str, ...]  # the aligned images (absolute paths), one per row of ws
    ws: torch.Tensor  # [N, num_ws, w_dim] float32
    # sha256 of each aligned image when it was inverted (what `fam invert --resume` checks);
    # empty in files written before it was recorded
    input_sha256: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.ws.shape[0] != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {self.ws.shape[0]} latents")
        if self.input_sha256 and len(self.input_sha256) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.input_sha256)} hashes")

    def table(self) -> dict[str, torch.Tensor]:
        """Aligned image path -> its latent ``[num_ws, w_dim]``."""
        return {p: self.ws[i] for i, p in enumerate(self.paths)}

    def hashes(self) -> dict[str, str]:
        """Aligned image path -> its sha256 when inverted (empty for files that did not record it)."""
        return dict(zip(self.paths, self.input_sha256, strict=True)) if self.input_sha256 else {}

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / self.FILENAME
        doc = {
            "format": self.FORMAT,
            "generator_id": self.generator_id,
            "inverter": self.inverter,
            "paths": list(self.paths),
            "ws": self.ws,
            "input_sha256": list(self.input_sha256),
        }
        atomic_torch_save(path, doc)
        return path

    @classmethod
    def read(cls, folder_or_path: str | Path) -> Inversions:
        path = locate(folder_or_path, cls.FILENAME)
        if not path.is_file():
            raise missing(path, WRITTEN_BY)
        import torch

        try:
            doc = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises several types for files it cannot read
            raise InputError(
                f"{path} cannot be read as inversions ({type(exc).__name__}); re-run {WRITTEN_BY}"
            ) from exc
        doc = check_format(doc, path, cls.FORMAT, WRITTEN_BY)
        try:
            return cls(
                str(doc["generator_id"]),
                dict(doc["inverter"]),
                tuple(map(str, doc["paths"])),
                doc["ws"],
                tuple(map(str, doc.get("input_sha256", ()))),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"{path} is incomplete ({exc}); re-run {WRITTEN_BY}") from exc
