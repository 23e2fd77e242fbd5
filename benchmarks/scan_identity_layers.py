"""Which W+ layers carry identity in a prior: swap each window of layers and measure.

    python -m benchmarks.scan_identity_layers --prior ~/.cache/fam/prior/export [--pairs 200]

The method's identity layers (``layers.identity``, paper eq. 1) are where a key's face replaces
the real one. ``layers: auto`` places them by absolute feature resolution, the paper's split of
the 1024-px FFHQ generator (16-32 px); a small prior may hold identity elsewhere, and mixing
layers that carry none leaves the output's identity to the original (and two keys' outputs
alike). For P generated pairs (A, B) and a third face C per pair (one truncated w per face,
``key.truncation_psi``, like bench_prior's swap pairs), every contiguous window of at least two
layers, leaving at least one out, is taken from B and from C by the method's own mixing:

- ``swap_change``: share where A with B's window no longer matches A (bench_prior's gate-2 metric,
  at that window);
- ``swap_distinct``: share where A with B's window and A with C's window do not match each other:
  how often two keys give one face different identities, the prior's bound on unlinkability;
- ``landmark_shift_px``: median MTCNN 5-point shift from A to A with B's window (pose must stay).

The window chosen is the smallest whose ``swap_distinct`` reaches ``--share`` of the best
window's, among those whose shift stays within ``--max-shift``: more layers always move the
output towards the key face, and the layers left to the original keep its attributes. It is
printed as a ``params.yaml`` ``layers:`` block. Identity is dlib at the prior's resolution with the threshold
at FMR 1e-3 from real held-out faces, as in bench_prior. Last line:
``identity_layers=<a,b,...> swap_change=<> swap_distinct=<> landmark_shift_px=<>``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks import bench_prior as bp
from fam.errors import UserError
from fam.layers import LayerGroups


@dataclass(frozen=True)
class WindowResult:
    layers: tuple[int, ...]
    swap_change: float
    swap_distinct: float
    landmark_shift_px: float  # nan when no pair holds a face in both images
    missing: int  # pairs without a confident face in A or swapped A


def windows(num_ws: int, min_len: int = 2) -> list[tuple[int, ...]]:
    """Every contiguous run of ``min_len`` .. ``num_ws - 1`` layers (one that swaps all is just B)."""
    return [tuple(range(a, a + n)) for n in range(min_len, num_ws) for a in range(0, num_ws - n + 1)]


def choose(results: Sequence[WindowResult], max_shift: float, share: float) -> WindowResult | None:
    """The fewest layers whose ``swap_distinct`` reaches ``share`` of the best window's, among
    windows within ``max_shift`` px (ties: more distinct, then more change).

    Not simply the most distinct: swapping more layers always moves the output towards the key
    face, and the layers left to the original are what keeps its attributes (and, at 64 px,
    aligned faces barely move, so the landmark bound rarely decides)."""
    ok = [r for r in results if not math.isnan(r.landmark_shift_px) and r.landmark_shift_px <= max_shift]
    if not ok:
        return None
    best = max(r.swap_distinct for r in ok)
    enough = [r for r in ok if r.swap_distinct >= share * best]
    return min(enough, key=lambda r: (len(r.layers), -r.swap_distinct, -r.swap_change))


@dataclass(frozen=True)
class Scan:
    """The shared faces of a scan: A (embedded, detected), donors B and C (W+ codes)."""

    bench: bp.Bench
    w_a: torch.Tensor
    w_b: torch.Tensor
    w_c: torch.Tensor
    emb_a: torch.Tensor
    faces_a: list[list[bp.Detection]]

    @classmethod
    def of(cls, bench: bp.Bench) -> Scan:
        o, g = bench.options, bench.generator
        w = bp.random_latents(g, 3 * o.pairs, o.psi, o.seed)
        w_a = w[: o.pairs]
        images_a = bp.synthesize(g, w_a, o.batch)
        return cls(
            bench,
            w_a,
            w[o.pairs : 2 * o.pairs],
            w[2 * o.pairs :],
            bench.embed_images(images_a),
            bench.detect_images(images_a),
        )

    def window(self, layers: tuple[int, ...]) -> WindowResult:
        b, t = self.bench, self.bench.threshold.value
        groups = LayerGroups.around(layers, self.bench.generator.num_ws)
        with_b = bp.synthesize(b.generator, bp.swap_identity(self.w_a, self.w_b, groups), b.options.batch)
        with_c = bp.synthesize(b.generator, bp.swap_identity(self.w_a, self.w_c, groups), b.options.batch)
        emb_b, emb_c = b.embed_images(with_b), b.embed_images(with_c)
        shifts, missing = bp.landmark_shifts(self.faces_a, b.detect_images(with_b), b.options.min_prob)
        return WindowResult(
            layers,
            float((~bp.row_matches(self.emb_a, emb_b, t)).float().mean()),
            float((~bp.row_matches(emb_b, emb_c, t)).float().mean()),
            float(np.median(shifts)) if shifts.size else math.nan,
            missing,
        )


def span(layers: Sequence[int]) -> str:
    return f"{layers[0]}-{layers[-1]}"


def scan(bench: bp.Bench, candidates: Sequence[tuple[int, ...]]) -> list[WindowResult]:
    """Measure every window, printing one line each (the current ``layers.identity`` is marked)."""
    state = Scan.of(bench)
    out = []
    for layers in candidates:
        t0 = time.perf_counter()
        with torch.no_grad():
            r = state.window(layers)
        mark = "  <- layers.identity now" if layers == tuple(bench.groups.identity) else ""
        print(
            f"identity {span(layers):>5}: swap_change {r.swap_change:.3f} "
            f"swap_distinct {r.swap_distinct:.3f} landmark_shift {r.landmark_shift_px:.2f} px "
            f"(no face: {r.missing}; "
            f"{time.perf_counter() - t0:.0f} s){mark}",
            flush=True,
        )
        out.append(r)
    return out


def layers_block(r: WindowResult, num_ws: int) -> str:
    g = LayerGroups.around(r.layers, num_ws)
    return "\n".join(
        ["layers:", *(f"  {name}: {list(getattr(g, name))}" for name in ("coarse", "identity", "fine"))]
    )


def summary_line(r: WindowResult | None) -> str:
    if r is None:
        return "identity_layers=none swap_change=nan swap_distinct=nan landmark_shift_px=nan"
    return (
        f"identity_layers={','.join(map(str, r.layers))} swap_change={r.swap_change:.4f} "
        f"swap_distinct={r.swap_distinct:.4f} landmark_shift_px={r.landmark_shift_px:.4f}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", type=Path, default=bp.DEFAULT_PRIOR, help="lifeboat folder with prior.pt")
    ap.add_argument("--aligned", type=Path, default=bp.DEFAULT_ALIGNED, help="`fam align` output (LFW)")
    ap.add_argument("--pairs", type=int, default=200, help="generated faces A (each with donors B and C)")
    ap.add_argument("--max-shift", type=float, default=2.0, help="px; gate 2's landmark_shift_px bound")
    ap.add_argument("--share", type=float, default=0.8, help="of the best window's swap_distinct")
    ap.add_argument("--windows", default="", help="e.g. 0-4,3-7 (default: every window of >= 2 layers)")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="params override KEY=VALUE")
    return ap.parse_args(argv)


def parse_windows(text: str, num_ws: int) -> list[tuple[int, ...]]:
    if not text:
        return windows(num_ws)
    out = []
    for part in text.split(","):
        try:
            lo, hi = (int(x) for x in part.split("-"))
        except ValueError:
            raise UserError(f"--windows: {part!r} is not FIRST-LAST (e.g. 0-4)") from None
        if not 0 <= lo <= hi < num_ws:
            raise UserError(f"--windows: {part!r} is outside this prior's layers 0-{num_ws - 1}")
        out.append(tuple(range(lo, hi + 1)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        bench = bp.bench_for(["swap_change"], args, ("prior", "aligned", "pairs", "batch", "seed", "params"))
        num_ws = bench.generator.num_ws
        results = scan(bench, parse_windows(args.windows, num_ws))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    best = choose(results, args.max_shift, args.share)
    if best is None:
        print(f"no window keeps the landmark shift within {args.max_shift} px")
    else:
        print(
            f"chosen (fewest layers reaching {args.share:g} of the best swap_distinct, landmark shift "
            f"within {args.max_shift:g} px):"
        )
        print(layers_block(best, num_ws))
    print(summary_line(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
