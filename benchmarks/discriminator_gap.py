"""Which side limits the prior: do its discriminators overfit the training faces, or just win?

    python -m benchmarks.discriminator_gap --state ~/.cache/fam/prior/run/state.pt
        [--data ~/.cache/fam/packed/lfw64_q90.npz] [--aligned ~/.cache/fam/aligned/lfw128] [--n 1500]

Scores three sets with the training state's pixel D (and its vision D, when it has one): faces of
the training pack, faces of held-out people prepared exactly as the pack's (Lanczos to the
resolution, the pack's JPEG quality: an encoding difference would read as a gap), and the raw
generator's samples, each plain and through the training augmentation. Read it as the ADA paper's
figure 1 does: a discriminator that memorises its data scores training faces clearly above unseen
real ones (the gap grows as it overfits); one that only beats the generator scores both real sets
alike and the fakes far below. ``rt_aug`` is ADA's overfitting heuristic, the mean sign of D on
augmented training faces (ADA steers it to 0.6). Measured on CPU, one thread.

Last line: ``d_train=<> d_heldout=<> d_fake=<> overfit_gap=<> rt_aug=<> vision_train=<>
vision_heldout=<> vision_fake=<>`` (mean logits, plain inputs; vision values ``nan`` without a head).
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fam.errors import InputError, UserError

CACHE = Path.home() / ".cache" / "fam"
BATCH = 100


@dataclass(frozen=True)
class Scores:
    """Mean logit and mean sign of one discriminator on one set."""

    mean: float
    sign: float

    @staticmethod
    def of(logits: torch.Tensor) -> Scores:
        x = logits.float().flatten()
        return Scores(float(x.mean()), float(x.sign().mean()))


def score_sets(
    heads: dict[str, Callable[[torch.Tensor], torch.Tensor]],  # name -> images [-1, 1] -> logits
    sets: dict[str, torch.Tensor],  # name -> images [-1, 1]
    augment: Callable[[torch.Tensor], torch.Tensor],
) -> dict[tuple[str, str, bool], Scores]:
    """``(head, set, augmented) -> Scores`` in batches of ``BATCH``."""
    out: dict[tuple[str, str, bool], Scores] = {}
    with torch.no_grad():
        for aug in (False, True):
            for set_name, images in sets.items():
                batches = [images[i : i + BATCH] for i in range(0, images.shape[0], BATCH)]
                if aug:
                    batches = [augment(b) for b in batches]
                for head_name, head in heads.items():
                    out[head_name, set_name, aug] = Scores.of(torch.cat([head(b).flatten() for b in batches]))
    return out


def report(scores: dict[tuple[str, str, bool], Scores]) -> list[str]:
    heads = sorted({h for h, _, _ in scores}, key=lambda h: h != "d")
    lines = []
    for aug in (False, True):
        for set_name in ("train", "heldout", "fake"):
            parts = [
                f"{h} mean {scores[h, set_name, aug].mean:+.3f} sign {scores[h, set_name, aug].sign:+.3f}"
                for h in heads
            ]
            lines.append(f"{'augmented' if aug else 'plain':9s} {set_name:8s} " + " | ".join(parts))

    def value(head: str, set_name: str) -> float:
        s = scores.get((head, set_name, False))
        return s.mean if s is not None else math.nan

    summary = {
        "d_train": value("d", "train"),
        "d_heldout": value("d", "heldout"),
        "d_fake": value("d", "fake"),
        "overfit_gap": value("d", "train") - value("d", "heldout"),
        "rt_aug": scores["d", "train", True].sign,
        "vision_train": value("vision", "train"),
        "vision_heldout": value("vision", "heldout"),
        "vision_fake": value("vision", "fake"),
    }
    lines.append(" ".join(f"{k}={v:.3f}" for k, v in summary.items()))
    return lines


def heldout_like_pack(aligned: Path, resolution: int, quality: int, n: int, seed: int) -> torch.Tensor:
    """``n`` faces of held-out-split people (a seeded draw), encoded as the pack encodes."""
    from fam.dataset import scan_aligned
    from fam.training.pack import encode_face
    from fam.training.splits import load_split

    split = load_split()
    people, _ = scan_aligned(aligned)
    files = [f.path for p in people if p.name in split.heldout for f in p.files]
    if not files:
        raise InputError(f"{aligned} holds no faces of held-out-split people (splits/lfw_people_split.json)")
    order = np.random.default_rng(seed).permutation(len(files))[:n]
    faces = []
    for i in order:
        with Image.open(io.BytesIO(encode_face(files[i], resolution, quality))) as im:
            faces.append(np.asarray(im.convert("RGB")))
    return torch.from_numpy(np.stack(faces)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state", type=Path, required=True, help="state.pt of a `fam train-prior` run")
    ap.add_argument("--data", type=Path, default=CACHE / "packed" / "lfw64_q90.npz")
    ap.add_argument("--aligned", type=Path, default=CACHE / "aligned" / "lfw128")
    ap.add_argument("--n", type=int, default=1500, help="faces per set")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        from fam.config import parse_params
        from fam.runtime import Engine
        from fam.training import checkpoint as ckpt
        from fam.training.pack import load_pack

        torch.set_num_threads(1)
        if not args.state.is_file():
            raise InputError(f"{args.state} does not exist: give the state.pt of a `fam train-prior` run")
        saved = ckpt.load(args.state)
        cfg = parse_params({"training": {"prior": saved["config"]}}).training.prior
        pack = load_pack(args.data)
        from fam.training.prior import PriorTrainer

        trainer = PriorTrainer(cfg, pack.images, Engine(torch.device("cpu"), "fp32", "split"))
        trainer.load(args.state)
        trainer.rng.manual_seed(args.seed)  # the sets and augmentations, not the run's stream
        pick = torch.randperm(pack.images.shape[0], generator=torch.Generator().manual_seed(args.seed))[
            : args.n
        ]
        n = int(pick.numel())
        with torch.no_grad():
            fakes = torch.cat(
                [trainer.synthesise(trainer.sample_ws(min(BATCH, n - i))) for i in range(0, n, BATCH)]
            ).clamp(-1, 1)
        sets = {
            "train": pack.images[pick].float() / 127.5 - 1.0,
            "heldout": heldout_like_pack(
                args.aligned, cfg.resolution, int(pack.meta["jpeg_quality"]), n, args.seed
            ),
            "fake": fakes,
        }
        heads: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"d": trainer.D}
        if trainer.vision is not None:
            vision = trainer.vision
            heads["vision"] = lambda x: vision.head(vision.features(x))
        counts = ", ".join(f"{k} {v.shape[0]}" for k, v in sets.items())
        print(f"state: {args.state} at {trainer.nimg / 1000:.1f} kimg; faces: {counts}; CPU, fp32")
        for line in report(score_sets(heads, sets, trainer.augment)):
            print(line)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
