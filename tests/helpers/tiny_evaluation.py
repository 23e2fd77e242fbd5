"""A tiny synthetic evaluation: aligned people, releases under three keys, a generator and inverter.

Each synthetic "person" is a smooth colour pattern plus per-image noise; the tiny recognizer
(:class:`tests.helpers.tiny_models.TinyRecognizer`) embeds a 4x4 thumbnail, so images of one
person match and different people do not. A "protected" image is the pattern of a (key, person)
pseudo-identity: unlinked to the original. Everything is a function of names and seeds, so two
runs (two processes) write the same pixels and :func:`evaluate_tiny` gives the same metrics.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from fam.artifacts import KeyIdentity
from fam.config import Params
from fam.keys import research_key
from tests.helpers.artifacts import protect_item, write_protect_output
from tests.helpers.tiny_models import TinyRecognizer

R = 32


class TinyGenerator(torch.nn.Module):
    z_dim = w_dim = 8
    num_ws = 10
    resolution = R
    generator_id = "tiny-generator"

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = torch.randn(self.num_ws * self.w_dim, 3 * 8 * 8, generator=g) * 0.1
        self.register_buffer("_w_avg", torch.zeros(self.w_dim))

    @property
    def w_avg(self) -> torch.Tensor:
        return self._w_avg

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        x = torch.tanh(ws.flatten(1) @ self.proj).view(-1, 3, 8, 8)
        return F.interpolate(x, size=(R, R), mode="bilinear", align_corners=False)


class TinyInverter:
    def __init__(self, gen: TinyGenerator) -> None:
        self.pinv = torch.linalg.pinv(gen.proj)

    def invert(self, images: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(images, 8).flatten(1).clamp(-0.99, 0.99)
        return (torch.atanh(x) @ self.pinv).view(-1, TinyGenerator.num_ws, TinyGenerator.w_dim)


def _seed(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def _pattern(tag: str, noise_seed: int | None = None) -> np.ndarray:
    base = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(_seed(tag)))
    img = F.interpolate(base, size=(R, R), mode="bilinear", align_corners=False)[0]
    if noise_seed is not None:
        img = img + 0.15 * torch.randn(img.shape, generator=torch.Generator().manual_seed(noise_seed))
    img = (img.clamp(-2, 2) / 2 + 1) * 127.5
    return img.permute(1, 2, 0).round().byte().numpy()


def write_aligned(root: Path, people: list[str], per_person: int) -> list[Path]:
    paths = []
    for p in people:
        for k in range(per_person):
            path = root / "images" / p / f"{k:04d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_pattern(p, noise_seed=_seed(f"{p}/{k}") % 10_000)).save(path)
            paths.append(path)
    return paths


def write_release(out: Path, originals: list[Path], seed: int) -> None:
    key = research_key(seed)
    items = []
    for n, orig in enumerate(originals):
        person = orig.parent.name
        pseudonym = key.person_pseudonym(person)
        rel = f"release/images/{pseudonym}/{n:04d}.png"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_pattern(f"{seed}/{person}", noise_seed=n + 7)).save(out / rel)
        items.append(protect_item(out, orig.resolve(), person, pseudonym, rel, n))
    write_protect_output(
        out, items, KeyIdentity.from_dict(key.describe()), generator_id=TinyGenerator.generator_id
    )


TINY_EVALUATE_SETTINGS: dict[str, Any] = {
    "evaluate.recognizers": ["tiny"],
    "evaluate.min_impostor_pairs": 3000,
    "evaluate.fid": False,
    # its releases are drawn patterns, not protect outputs: nothing for the stolen-key attack to
    # re-protect (tests/test_stolen_key.py runs it on a real tiny release)
    "evaluate.attacks": ["latent_replacement", "mapper"],
    "evaluate.attack_max_images": 8,
    "evaluate.mapper.steps": 5,
    "evaluate.mapper.size": 16,
    "evaluate.mapper.identity_weight": 0.0,  # L1 only: no real identity model in unit tests
    "evaluate.image_size": 32,
    # the mapper trains at runtime.precision: pinned, so the reference numbers hold on any CPU
    "runtime.precision": "fp32",
    "layers.coarse": [0, 1, 2],
    "layers.identity": [3, 4, 5, 6, 7],
    "layers.fine": [8, 9],
}


@dataclass(frozen=True)
class TinyEvaluationInputs:
    """12 people x 4 images, 30 impostor people x 3 images, releases rel1..rel3 (research keys 1-3)."""

    root: Path
    aligned: Path
    impostors: Path
    params: Params

    def release(self, seed: int) -> Path:
        return self.root / f"rel{seed}"


def write_tiny_evaluation_inputs(root: Path) -> TinyEvaluationInputs:
    people = [f"person_{i:02d}" for i in range(12)]
    originals = write_aligned(root / "aligned", people, 4)
    write_aligned(root / "impostors", [f"other_{i:02d}" for i in range(30)], 3)
    for seed in (1, 2, 3):
        write_release(root / f"rel{seed}", originals, seed)
    return TinyEvaluationInputs(
        root, root / "aligned", root / "impostors", Params().replace(TINY_EVALUATE_SETTINGS)
    )


def evaluate_tiny(
    inputs: TinyEvaluationInputs,
    out: Path,
    params: Params | None = None,
    *,
    more_keys: bool = True,  # release 2 as the second key, release 3 as a third (table 6)
    naive: bool = False,  # release 3 stands in for a release made without optimisation
) -> Any:
    """The evaluation of release 1 of the tiny inputs (attacks and baselines as ``params`` say)."""
    from fam.evaluate.runner import evaluate_release

    gen = TinyGenerator()
    return evaluate_release(
        inputs.aligned,
        inputs.release(1),
        out,
        params or inputs.params,
        release2_dir=inputs.release(2) if more_keys else None,
        key_release_dirs=[inputs.release(3)] if more_keys else [],
        naive_release_dir=inputs.release(3) if naive else None,
        thresholds_from=inputs.impostors,
        recognizers=[TinyRecognizer()],
        models=(gen, TinyInverter(gen)),
        progress=False,
    )
