"""Unlinkability after Gomez-Barrero et al., IEEE TIFS 13(6), 2018.

Mated scores compare the same subject under different keys; non-mated scores different
subjects under different keys. With the prior ratio omega = 1,
``D(s) = 2 LR(s) / (1 + LR(s)) - 1`` where ``LR(s) = p(s|mated) / p(s|non-mated) > 1`` and 0
elsewhere; ``D_sys`` is the integral of ``D(s) p(s|mated)`` (0 = unlinkable, 1 = fully
linkable). As in the authors' public implementation the densities are histograms with a fixed
number of bins over the joint score range, D = 1 where only mated scores fall and D = 0 where no
mated score falls. The bin count changes the number and is always reported with it.

One departure, on purpose: the common implementation integrates with the trapezoid rule over
the bin centres, which drops half of the mass of the two edge bins. Mated scores piled up at
the top of the range (raw templates of a good FR model: same-person scores near 1) then give
D_sys = 0.5 for a perfectly linkable system. We integrate the histogram density exactly
(sum of D * p_mated * bin width), which is what the trapezoid rule approximates and which
is 0 for identical and 1 for disjoint distributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Unlinkability:
    bins: int
    centers: np.ndarray  # [bins] score at each bin centre
    p_mated: np.ndarray  # [bins] density of mated scores
    p_nonmated: np.ndarray  # [bins] density of non-mated scores
    d_local: np.ndarray  # [bins] D(s)
    d_sys: float
    n_mated: int
    n_nonmated: int


def unlinkability(mated: np.ndarray, nonmated: np.ndarray, bins: int = 100) -> Unlinkability:
    mated = np.asarray(mated, dtype=np.float64)
    nonmated = np.asarray(nonmated, dtype=np.float64)
    if mated.size == 0 or nonmated.size == 0:
        raise ValueError(f"D_sys needs mated and non-mated scores (got {mated.size} and {nonmated.size})")
    lo = min(mated.min(), nonmated.min())
    hi = max(mated.max(), nonmated.max())
    if hi <= lo:  # every score identical: nothing distinguishes the two classes
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    p_m, _ = np.histogram(mated, bins=edges, density=True)
    p_n, _ = np.histogram(nonmated, bins=edges, density=True)
    centers = (edges[:-1] + edges[1:]) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = p_m / p_n
        d = np.where(lr > 1, 2 * lr / (1 + lr) - 1, 0.0)
    d = np.where(p_n == 0, 1.0, d)
    d = np.where(p_m == 0, 0.0, d)
    d_sys = float(np.sum(d * p_m * np.diff(edges)))
    return Unlinkability(
        bins=bins,
        centers=centers,
        p_mated=p_m,
        p_nonmated=p_n,
        d_local=d,
        d_sys=d_sys,
        n_mated=int(mated.size),
        n_nonmated=int(nonmated.size),
    )
