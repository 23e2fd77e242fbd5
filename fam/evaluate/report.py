"""The Markdown report of one evaluation: tables of the flat metrics plus figure links."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from fam.evaluate.thresholds import EvaluatorThresholds, fmr_tag


def fmt(value: float | None, percent: bool = False, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.2f}" if percent else f"{value:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def psr_table(
    metrics: Mapping[str, float],
    prefix: str,  # e.g. "psr_anonymity"
    rows: Sequence[tuple[str, str]],  # (row label, infix between prefix and evaluator, "" for none)
    evaluators: Sequence[str],
    fmrs: Sequence[float],
    kinds: Mapping[str, str] | None = None,  # evaluator -> "white-box" | "black-box", shown in headers
) -> str:
    """PSR (%) per row x (evaluator, FMR), the layout of the paper's tables 1, 2 and 4."""
    kinds = kinds or {}
    label = {e: f"{e} ({kinds[e]})" if e in kinds else e for e in evaluators}
    headers = ["method"] + [f"{label[e]} @FMR {f:g}" for e in evaluators for f in fmrs]
    body = []
    for label, infix in rows:
        mid = f"_{infix}" if infix else ""
        body.append(
            [label]
            + [
                fmt(metrics.get(f"{prefix}{mid}_{e}_fmr{fmr_tag(f)}"), percent=True)
                for e in evaluators
                for f in fmrs
            ]
        )
    return table(headers, body)


def thresholds_table(sets: Mapping[str, EvaluatorThresholds], fmrs: Sequence[float]) -> str:
    headers = [
        "evaluator",
        "source",
        *[f"FMR {f:g}" for f in fmrs],
        "impostor pairs",
        "images",
        "people",
        "data hash",
    ]
    rows = []
    for s in sets.values():
        rows.append(
            [s.evaluator, s.source]
            + [f"{s.at(f):.4f}" for f in fmrs]
            + [str(s.n_pairs), str(s.n_images), str(s.n_people), s.data_hash[:12] or "-"]
        )
    return table(headers, rows)
