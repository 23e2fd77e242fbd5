"""PSR at every FMR threshold plus the mean score: the shape of the paper's tables 1, 2 and 4."""

from __future__ import annotations

import numpy as np

from fam.evaluate.context import EvaluationContext, EvaluationOutput
from fam.evaluate.thresholds import fmr_tag
from fam.evaluate.verification import psr


def add_psr(
    out: EvaluationOutput, ctx: EvaluationContext, evaluator: str, kind: str, scores: np.ndarray
) -> None:
    """``psr_<kind>_<evaluator>_fmr<tag>`` (and ``..._lit`` at the literature thresholds) and
    ``score_<kind>_mean_<evaluator>``."""
    ts, lit = ctx.thresholds[evaluator], ctx.literature.get(evaluator)
    for f in ctx.cfg.fmrs:
        out.add(f"psr_{kind}_{evaluator}_fmr{fmr_tag(f)}", psr(scores, ts.at(f)), "rate")
        if lit is not None:
            out.add(f"psr_{kind}_{evaluator}_fmr{fmr_tag(f)}_lit", psr(scores, lit.at(f)), "rate")
    out.add(f"score_{kind}_mean_{evaluator}", float(np.mean(scores)), "score")
