"""The size of the evaluated release (the report's header states it)."""

from __future__ import annotations

from fam.evaluate.context import EvaluationContext, EvaluationOutput
from fam.evaluate.metrics import Evaluation


def release_size(ctx: EvaluationContext) -> EvaluationOutput:
    out = EvaluationOutput()
    out.add("n_items", len(ctx.release.items), "count")
    out.add("n_people", len(set(ctx.persons)), "count")
    return out


RELEASE = Evaluation(order=0, run=release_size)
