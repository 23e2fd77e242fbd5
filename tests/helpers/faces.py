"""Generated face folders: smooth random images in the layout ``fam align`` and ``fam protect`` read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_face_folder(root: Path, people: dict[str, int], size: int = 32, seed: int = 0) -> Path:
    """``root/<person>/<person>_000N.png``: smooth random images, one colour scheme per person."""
    rng = np.random.default_rng(seed)
    for person, n in people.items():
        (root / person).mkdir(parents=True, exist_ok=True)
        base = rng.uniform(0, 255, size=(4, 4, 3))
        for i in range(n):
            small = np.clip(base + rng.normal(0, 20, size=base.shape), 0, 255).astype(np.uint8)
            img = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
            img.save(root / person / f"{person}_{i + 1:04d}.png")
    return root
