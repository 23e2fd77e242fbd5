"""Impostor statistics of an identity model: what "like another person" means to the anonymity loss.

    python -m benchmarks.calibrate_identity [--identity dlib] [--resolution 64] \
        [--aligned ~/.cache/fam/aligned/lfw128] [--write]

Eq. 2 of the paper pushes ``cos(I(x_p), I(x_r))`` below a margin ``m``. Raw descriptors of some
models are far from centred (dlib: two different people score ~0.84 on average), so ``m = 0``
asks for a face far less alike than any other person and keeps pushing for all steps. This
measures, for the identity model the loss uses (``models.identity``), the cosine between faces of
DIFFERENT people among the real held-out-split faces of an aligned LFW folder, resized to the
generator resolution as protection sees them: its mean (the default ``optimise.margin: auto``),
spread and the FMR 1e-3 quantile. ``--write`` records the entry in
``fam/assets/identity_calibration.json`` under ``<identity>@<resolution>``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench_prior import DEFAULT_ALIGNED, embed_uint8, load_heldout
from fam.calibration import CALIBRATION_FILE, IdentityCalibration
from fam.errors import UserError


def impostor_statistics(
    embeddings: torch.Tensor, people: Sequence[str], *, max_pairs: int = 2_000_000, seed: int = 0
) -> dict[str, float | int]:
    """Cosine statistics over all pairs of different people (quantiles from a seeded subsample)."""
    emb = torch.nn.functional.normalize(embeddings.double(), dim=1)
    _, codes_np = np.unique(np.asarray(people), return_inverse=True)
    codes = torch.from_numpy(codes_np)
    sims = emb @ emb.T
    upper = torch.triu(torch.ones_like(sims, dtype=torch.bool), diagonal=1)
    impostor = sims[upper & (codes[:, None] != codes[None, :])]
    genuine = sims[upper & (codes[:, None] == codes[None, :])]
    if impostor.numel() == 0 or genuine.numel() == 0:
        raise UserError("need at least two people, one of them with two faces, to calibrate")
    pick = torch.randperm(impostor.numel(), generator=torch.Generator().manual_seed(seed))[:max_pairs]
    sample = impostor[pick]
    return {
        "impostor_cos_mean": round(float(impostor.mean()), 4),
        "impostor_cos_std": round(float(impostor.std()), 4),
        "impostor_cos_fmr1e3": round(float(torch.quantile(sample, 0.999)), 4),
        "genuine_cos_mean": round(float(genuine.mean()), 4),
        "impostor_pairs": int(impostor.numel()),
        "genuine_pairs": int(genuine.numel()),
        "faces": int(emb.shape[0]),
        "people": int(codes.max()) + 1,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identity", default="dlib", help="models.identity name")
    ap.add_argument("--resolution", type=int, default=64, help="generator resolution the faces are seen at")
    ap.add_argument("--aligned", type=Path, default=DEFAULT_ALIGNED, help="`fam align` output of LFW")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--write", action="store_true", help=f"record the entry in {CALIBRATION_FILE}")
    args = ap.parse_args(argv)
    from fam.config import ModelSpec
    from fam.models.factory import BuildContext, build

    try:
        faces = load_heldout(args.aligned, args.resolution)
        model = build("identity", ModelSpec(args.identity, {}), BuildContext(torch.device("cpu")))
        with torch.no_grad():
            emb = embed_uint8(model.embed, faces.images, args.batch)
        stats = impostor_statistics(emb, faces.people)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    entry = IdentityCalibration(
        identity=args.identity,
        resolution=args.resolution,
        source=f"real LFW held-out-split faces of {args.aligned.name} resized to {args.resolution} px",
        **stats,
    )
    print(json.dumps(entry.to_json(), indent=1))
    if args.write:
        entry.record()
        print(f"recorded {entry.key} in {CALIBRATION_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
