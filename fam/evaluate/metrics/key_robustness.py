"""Key robustness (paper table 6): anonymity PSR under every available key, mean and std.

Std is the population std (ddof=0): the paper's table 6 reports 2.33 only under that convention.
"""

from __future__ import annotations

import numpy as np

from fam.evaluate import report
from fam.evaluate.context import EvaluationContext, EvaluationOutput
from fam.evaluate.metrics import Evaluation
from fam.evaluate.scoring import paired_scores
from fam.evaluate.thresholds import fmr_tag
from fam.evaluate.verification import psr


def key_robustness(ctx: EvaluationContext) -> EvaluationOutput:
    out = EvaluationOutput()
    releases = [ctx.release] + ([ctx.release2] if ctx.release2 is not None else []) + list(ctx.key_releases)
    if len(releases) < 2:
        out.notes.append(
            "one key only (no --release2 or --key-release): key robustness (table 6) not computed"
        )
        return out
    fmrs = ctx.cfg.fmrs
    for rec in ctx.recognizers:
        ts = ctx.thresholds[rec.name]
        per_key = []
        for r in releases:
            scores = paired_scores(ctx.originals_for(rec, r), ctx.protected(rec, r), rec.similarity)
            per_key.append([psr(scores, ts.at(f)) for f in fmrs])
        arr = np.array(per_key)
        for k, f in enumerate(fmrs):
            out.add(f"psr_keys_mean_{rec.name}_fmr{fmr_tag(f)}", float(arr[:, k].mean()), "rate")
            out.add(f"psr_keys_std_{rec.name}_fmr{fmr_tag(f)}", float(arr[:, k].std(ddof=0)), "rate")
    out.add("n_keys", len(releases), "count")

    m = {k: v for k, (v, _) in out.values.items()}
    headers = ["evaluator"] + [f"FMR {x:g} mean ± std" for x in fmrs]
    body = [
        [n]
        + [
            f"{report.fmt(m[f'psr_keys_mean_{n}_fmr{fmr_tag(x)}'], True)} ± "
            f"{report.fmt(m[f'psr_keys_std_{n}_fmr{fmr_tag(x)}'], True)}"
            for x in fmrs
        ]
        for n in ctx.names
    ]
    out.section = "\n".join(
        [
            f"## Key robustness (table 6): anonymity PSR over {len(releases)} keys",
            "",
            report.table(headers, body),
        ]
    )
    return out


KEY_ROBUSTNESS = Evaluation(order=60, run=key_robustness)
