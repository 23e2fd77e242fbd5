"""Where a prior's key faces crowd in identity space, and where the training data crowds.

    python -m benchmarks.key_face_crowding --prior ~/.cache/fam/prior/export [--keys 1000]

``distinct`` (bench_prior) counts pairs of key faces that match. This says how they match:

- **match degree**: for each key face, how many of the other key faces it matches (dlib, the
  threshold at FMR 1e-3 from real held-out faces, as in bench_prior). One dense centre shows as a
  high median with hubs matching most others; a few look-alike clusters as a low median with a
  long tail.
- **nearest training person**: each key face and each real held-out face is assigned the training
  person whose mean descriptor is nearest. Key faces spread over few people, or over LFW's most
  photographed ones (a generator copying the data's imbalance), show here.
- **the data's own floor**: the share of pairs of training faces that show one person. A generator
  that reproduced the training distribution exactly would have that share of its key-face pairs
  show one person too.

Reads bench_prior's cached embeddings of the held-out faces and of the pack. Last line:
``degree_mean=<> degree_median=<> nearest_people=<> data_same_person_pairs=<>``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from benchmarks import bench_prior as bp
from fam.errors import UserError


@dataclass(frozen=True)
class Crowding:
    degree: torch.Tensor  # [K] matches of each key face among the other key faces
    key_nearest: Counter[str]  # training person -> key faces nearest to them
    heldout_nearest: Counter[str]  # training person -> real held-out faces nearest to them
    train_counts: Counter[str]  # training person -> faces in the pack
    keys: int
    heldout: int

    @property
    def same_person_pairs(self) -> float:
        """Share of pairs of training faces (drawn with replacement) that show one person."""
        n = sum(self.train_counts.values())
        return float(sum((c / n) ** 2 for c in self.train_counts.values()))


def person_centroids(embeddings: torch.Tensor, people: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    names = sorted(set(people))
    index = {name: i for i, name in enumerate(names)}
    labels = torch.tensor([index[p] for p in people])
    sums = torch.zeros(len(names), embeddings.shape[1]).index_add_(0, labels, embeddings.float())
    return names, F.normalize(sums, dim=1)


def nearest_people(embeddings: torch.Tensor, names: Sequence[str], centroids: torch.Tensor) -> Counter[str]:
    nearest = (F.normalize(embeddings.float(), dim=1) @ centroids.T).argmax(dim=1)
    return Counter(names[i] for i in nearest.tolist())


def match_degree(embeddings: torch.Tensor, threshold: float) -> torch.Tensor:
    e = F.normalize(embeddings.float(), dim=1)
    sim = e @ e.T
    sim.fill_diagonal_(-1.0)
    return (sim >= threshold).sum(dim=1)


def measure(bench: bp.Bench) -> Crowding:
    names, centroids = person_centroids(bench.train_embeddings, bench.train.people)
    return Crowding(
        degree=match_degree(bench.key_embeddings, bench.threshold.value),
        key_nearest=nearest_people(bench.key_embeddings, names, centroids),
        heldout_nearest=nearest_people(bench.heldout_embeddings, names, centroids),
        train_counts=Counter(bench.train.people),
        keys=bench.key_embeddings.shape[0],
        heldout=bench.heldout_embeddings.shape[0],
    )


def report(c: Crowding, top: int) -> list[str]:
    d = c.degree.float()
    q = np.quantile(d.numpy(), [0.5, 0.9])
    n_train = sum(c.train_counts.values())
    lines = [
        f"match degree: a key face matches {d.mean():.1f} of the {c.keys - 1} others on average "
        f"(median {q[0]:.0f}, p90 {q[1]:.0f}, max {d.max():.0f})",
        f"nearest training person: key faces spread over {len(c.key_nearest)} people "
        f"({len(c.key_nearest) / c.keys:.3f} per face); real held-out faces over {len(c.heldout_nearest)} "
        f"({len(c.heldout_nearest) / c.heldout:.3f} per face)",
        "most common nearest people of the key faces (share of key faces / of held-out faces / "
        "of training faces):",
    ]
    for name, count in c.key_nearest.most_common(top):
        lines.append(
            f"  {name:28s} {count / c.keys:.3f} / {c.heldout_nearest[name] / c.heldout:.3f} / "
            f"{c.train_counts[name] / n_train:.4f}"
        )
    lines.append("LFW's most photographed training people (same columns):")
    for name, count in c.train_counts.most_common(top):
        lines.append(
            f"  {name:28s} {c.key_nearest[name] / c.keys:.3f} / {c.heldout_nearest[name] / c.heldout:.3f} / "
            f"{count / n_train:.4f}"
        )
    lines.append(
        f"data floor: {c.same_person_pairs:.4f} of pairs of training faces show one person "
        f"({n_train:,} faces of {len(c.train_counts):,} people)"
    )
    lines.append(
        f"degree_mean={d.mean():.1f} degree_median={q[0]:.0f} nearest_people={len(c.key_nearest)} "
        f"data_same_person_pairs={c.same_person_pairs:.4f}"
    )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", type=Path, default=bp.DEFAULT_PRIOR, help="lifeboat folder with prior.pt")
    ap.add_argument("--aligned", type=Path, default=bp.DEFAULT_ALIGNED, help="`fam align` output (LFW)")
    ap.add_argument("--pack", type=Path, default=bp.DEFAULT_PACK, help="packed train-split faces (.npz)")
    ap.add_argument("--keys", type=int, default=1000, help="research keys 1..N")
    ap.add_argument("--top", type=int, default=8, help="people listed per table")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="params override KEY=VALUE")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        bench = bp.bench_for(
            ["distinct", "memorised"], args, ("prior", "aligned", "pack", "keys", "batch", "params")
        )
        crowding = measure(bench)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report(crowding, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
