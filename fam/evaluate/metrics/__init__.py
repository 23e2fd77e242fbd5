"""The registry of evaluations: each computes its metrics and writes its section of report.md.

An evaluation is an :class:`Evaluation`: its place in the report (``order``, lower first) and a
function ``EvaluationContext -> EvaluationOutput`` (metrics with their family, the Markdown
section, notes). :func:`fam.evaluate.runner.run_evaluation` runs every registered evaluation in
order; one that does not apply to the inputs (no second key, FID switched off) returns a note
saying so. The built-in evaluations are listed here, imported on first use; adding one is a
module with its function and one line below (or ``EVALUATIONS.register`` from your own code):
docs/extending.md, "Adding a metric".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fam.evaluate.context import EvaluationContext, EvaluationOutput
from fam.registry import Registry


@dataclass(frozen=True)
class Evaluation:
    order: int  # position of its section in report.md, lower first (ties: by name)
    run: Callable[[EvaluationContext], EvaluationOutput]
    # reads neither the thresholds nor the attacks nor the context's shared embeddings, so it may
    # run beside them on its own thread (fam.evaluate.runner); its output is the same either way
    standalone: bool = False


EVALUATIONS: Registry[Evaluation] = Registry("evaluation")

for _name, _target in (
    ("release", "fam.evaluate.metrics.release:RELEASE"),
    ("anonymity", "fam.evaluate.metrics.anonymity:ANONYMITY"),
    ("unlinkability", "fam.evaluate.metrics.unlinkability:UNLINKABILITY"),
    ("noninvertibility", "fam.evaluate.metrics.noninvertibility:NONINVERTIBILITY"),
    ("utility", "fam.evaluate.metrics.utility:UTILITY"),
    ("quality", "fam.evaluate.metrics.quality:QUALITY"),
    ("key_robustness", "fam.evaluate.metrics.key_robustness:KEY_ROBUSTNESS"),
):
    EVALUATIONS.register(_name, _target)


def ordered() -> list[tuple[str, Evaluation]]:
    """Every registered evaluation, in report order."""
    found = [(name, EVALUATIONS.get(name)) for name in EVALUATIONS.names()]
    return sorted(found, key=lambda item: (item[1].order, item[0]))
