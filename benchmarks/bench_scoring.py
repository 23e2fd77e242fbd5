"""Time of scoring 10,000 x 10,000 embeddings in chunks (the evaluation's hot path).

Run: ``OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_scoring.py [--n 10000] [--chunk 2048]``.
Prints seconds for (a) the full matrix assembled block by block, (b) all i < j pairs split into
same / different person (what thresholds, EER and D_sys consume), (c) 10,000 paired scores.
"""

from __future__ import annotations

import argparse
import time

import torch

from fam.evaluate.scoring import cosine_similarity, labelled_pair_scores, paired_scores, similarity_chunked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--people", type=int, default=1000)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(args.n, args.dim, generator=g)
    labels = [f"p{i % args.people}" for i in range(args.n)]
    print(f"n={args.n} dim={args.dim} chunk={args.chunk} torch threads={torch.get_num_threads()}")

    t = time.perf_counter()
    full = similarity_chunked(emb, emb, cosine_similarity, args.chunk)
    print(f"full {tuple(full.shape)} matrix in chunks: {time.perf_counter() - t:.2f} s")
    del full

    t = time.perf_counter()
    same, diff = labelled_pair_scores(emb, labels, cosine_similarity, chunk=args.chunk)
    dt = time.perf_counter() - t
    print(f"all i<j pairs split by person ({same.size} same, {diff.size} different): {dt:.2f} s")

    t = time.perf_counter()
    paired = paired_scores(emb, emb.flip(0), cosine_similarity)
    print(f"{paired.size} paired scores: {time.perf_counter() - t:.3f} s")


if __name__ == "__main__":
    main()
