"""Non-invertibility (paper table 4): each original against an attacker's reconstruction.

The attacks (:data:`fam.evaluate.attacks.ATTACKS`, chosen by ``evaluate.attacks``) run once per
evaluation on people held out of the mapper's training split; the grid shows their output too.
"""

from __future__ import annotations

from fam.evaluate import report
from fam.evaluate.context import EvaluationContext, EvaluationOutput
from fam.evaluate.metrics import Evaluation
from fam.evaluate.metrics._psr import add_psr
from fam.evaluate.scoring import paired_scores


def noninvertibility(ctx: EvaluationContext) -> EvaluationOutput:
    out = EvaluationOutput()
    if not ctx.cfg.attacks:
        out.notes.append("evaluate.attacks is empty: non-invertibility (table 4) not computed")
        return out
    recon = ctx.reconstructions()
    out.notes.extend(ctx.attack_notes)
    for rec in ctx.recognizers:
        e_orig = ctx.originals(rec)
        for attack, r in recon.items():
            scores = paired_scores(e_orig[r.indices], ctx.reconstruction(rec, attack), rec.similarity)
            add_psr(out, ctx, rec.name, f"noninvert_{r.name}", scores)
    if recon:
        m = {k: v for k, (v, _) in out.values.items()}
        rows = [(r.label, r.name) for r in recon.values()]
        out.section = "\n".join(
            [
                "## Non-invertibility (table 4): original vs attacker's reconstruction (held-out people)",
                "",
                report.psr_table(m, "psr_noninvert", rows, ctx.names, ctx.cfg.fmrs, ctx.kinds),
                "",
                *[f"- {r.label}: {len(r.indices)} images" for r in recon.values()],
            ]
        )
    return out


NONINVERTIBILITY = Evaluation(order=30, run=noninvertibility)
