"""Protection success rate and verification statistics (ROC, EER, AUC).

Convention: a comparison *matches* when its similarity is ``>= threshold``. PSR is the share of
comparisons that do NOT match (docs/reference.md, evaluation conventions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata


def psr(scores: np.ndarray, threshold: float) -> float:
    """Protection success rate in [0, 1]: share of ``scores`` below ``threshold``."""
    scores = np.asarray(scores)
    if scores.size == 0:
        raise ValueError("PSR of an empty set of comparisons is undefined")
    return float(np.mean(scores < threshold))


@dataclass(frozen=True)
class Roc:
    """False match rate and false non-match rate at every candidate threshold (ascending)."""

    thresholds: np.ndarray  # [T]
    fmr: np.ndarray  # [T] share of impostor scores >= threshold (non-increasing)
    fnmr: np.ndarray  # [T] share of genuine scores < threshold (non-decreasing)


def roc(genuine: np.ndarray, impostor: np.ndarray) -> Roc:
    """ROC over all distinct observed scores, vectorised with sorted search."""
    genuine = np.sort(np.asarray(genuine, dtype=np.float64))
    impostor = np.sort(np.asarray(impostor, dtype=np.float64))
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError(f"ROC needs genuine and impostor scores (got {genuine.size} and {impostor.size})")
    t = np.unique(np.concatenate([genuine, impostor, [np.inf]]))
    fmr = 1.0 - np.searchsorted(impostor, t, side="left") / impostor.size
    fnmr = np.searchsorted(genuine, t, side="left") / genuine.size
    return Roc(thresholds=t, fmr=fmr, fnmr=fnmr)


def eer(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Equal error rate: where FMR and FNMR cross, linearly interpolated between thresholds."""
    curve = roc(genuine, impostor)
    d = curve.fmr - curve.fnmr  # starts at 1 (t = min score) and ends at -1 (t = inf)
    k = int(np.argmax(d <= 0))  # first threshold where FNMR has caught up with FMR
    if k == 0:
        return float(curve.fmr[0])
    w = d[k - 1] / (d[k - 1] - d[k])
    fmr = curve.fmr[k - 1] + w * (curve.fmr[k] - curve.fmr[k - 1])
    fnmr = curve.fnmr[k - 1] + w * (curve.fnmr[k] - curve.fnmr[k - 1])
    return float((fmr + fnmr) / 2)


def auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """Area under the ROC = P(genuine > impostor) + P(tie)/2 (Mann-Whitney, exact, by ranks)."""
    genuine = np.asarray(genuine, dtype=np.float64)
    impostor = np.asarray(impostor, dtype=np.float64)
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError("AUC needs genuine and impostor scores")
    ranks = rankdata(np.concatenate([genuine, impostor]))
    n_g = genuine.size
    return float((ranks[:n_g].sum() - n_g * (n_g + 1) / 2) / (n_g * impostor.size))
