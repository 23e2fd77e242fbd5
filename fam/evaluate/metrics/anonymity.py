"""Anonymity (paper table 1): each original against its protected version, same image.

PSR at every FMR threshold for FaceAnonyMixer, each baseline (the original after the baseline's
transform) and, when given, the naive mixing release.
"""

from __future__ import annotations

from fam.evaluate import report
from fam.evaluate.context import EvaluationContext, EvaluationOutput
from fam.evaluate.metrics import Evaluation
from fam.evaluate.metrics._psr import add_psr
from fam.evaluate.scoring import paired_scores


def method_rows(ctx: EvaluationContext) -> list[tuple[str, str]]:
    """(row label, metric infix) of every method scored for anonymity."""
    rows = [("FaceAnonyMixer", "")] + [(b, b) for b in ctx.cfg.baselines]
    if ctx.naive is not None:
        rows.append(("naive mixing (no optimisation)", "naive"))
    return rows


def anonymity(ctx: EvaluationContext) -> EvaluationOutput:
    out = EvaluationOutput()
    for rec in ctx.recognizers:
        e_orig = ctx.originals(rec)
        add_psr(out, ctx, rec.name, "anonymity", paired_scores(e_orig, ctx.protected(rec), rec.similarity))
        for b in ctx.cfg.baselines:
            scores = paired_scores(e_orig, ctx.baseline(rec, b), rec.similarity)
            add_psr(out, ctx, rec.name, f"anonymity_{b}", scores)
        if ctx.naive is not None:
            scores = paired_scores(
                ctx.originals_for(rec, ctx.naive), ctx.protected(rec, ctx.naive), rec.similarity
            )
            add_psr(out, ctx, rec.name, "anonymity_naive", scores)

    m = {k: v for k, (v, _) in out.values.items()}
    rows, fmrs = method_rows(ctx), ctx.cfg.fmrs
    lines = [
        "## Anonymity (table 1): original vs protected, same image",
        "",
        report.psr_table(m, "psr_anonymity", rows, ctx.names, fmrs, ctx.kinds),
    ]
    if ctx.literature:
        lit_m = {k[: -len("_lit")]: v for k, v in m.items() if k.endswith("_lit")}
        lines += ["", "At the literature thresholds:", ""]
        lines.append(report.psr_table(lit_m, "psr_anonymity", rows, list(ctx.literature), fmrs))
    out.section = "\n".join(lines)
    return out


ANONYMITY = Evaluation(order=10, run=anonymity)
