"""Recognition utility (paper table 5, figs 8-10): verification within one key.

Genuine pairs are two images of one person, impostor pairs of two people; EER and AUC for the
originals, FaceAnonyMixer, each baseline and the naive release, with ROC curves, score
histograms and a t-SNE of the protected embeddings.
"""

from __future__ import annotations

import numpy as np

from fam.evaluate import plots, report
from fam.evaluate.context import EvaluationContext, EvaluationOutput
from fam.evaluate.metrics import Evaluation
from fam.evaluate.scoring import labelled_pair_scores
from fam.evaluate.verification import Roc, auc, eer, roc
from fam.interfaces import FaceRecognizer


def utility(ctx: EvaluationContext) -> EvaluationOutput:
    out = EvaluationOutput()
    for rec in ctx.recognizers:
        _one_evaluator(ctx, rec, out)
    out.section = _section(ctx, {k: v for k, (v, _) in out.values.items()})
    return out


def _one_evaluator(ctx: EvaluationContext, rec: FaceRecognizer, out: EvaluationOutput) -> None:
    name, cfg, ts = rec.name, ctx.cfg, ctx.thresholds[rec.name]
    curves: dict[str, tuple[Roc, float]] = {}

    def verify(label: str, curve: str, genuine: np.ndarray, impostor: np.ndarray) -> None:
        out.add(f"eer_{label}_{name}", eer(genuine, impostor), "rate")
        out.add(f"auc_{label}_{name}", auc(genuine, impostor), "rate")
        curves[curve] = (roc(genuine, impostor), out.values[f"auc_{label}_{name}"][0])

    gen_o, imp_o = ctx.labelled_pairs(rec, "originals")
    gen_p, imp_p = ctx.labelled_pairs(rec, "protected")
    if gen_p.size and imp_p.size:
        verify("original", "original", gen_o, imp_o)
        verify("protected", "protected", gen_p, imp_p)
        out.add(f"n_genuine_pairs_{name}", gen_p.size, "count")
        out.add(f"n_impostor_pairs_{name}", imp_p.size, "count")
        lines = {f"FMR {f:g}": ts.at(f) for f in cfg.fmrs}
        plots.plot_histograms(
            gen_p,
            imp_p,
            lines,
            f"protected vs protected, one key ({name})",
            ctx.plots_dir / f"hist_protected_{name}.png",
        )
        plots.plot_histograms(
            gen_o, imp_o, lines, f"original vs original ({name})", ctx.plots_dir / f"hist_original_{name}.png"
        )
    else:
        out.notes.append(f"{name}: no person has two protected images: EER/AUC not computed")
    for b in cfg.baselines:
        g, i = ctx.labelled_pairs(rec, f"baseline:{b}")
        if g.size and i.size:
            verify(b, b, g, i)
    if ctx.naive is not None:
        e_n = ctx.protected(rec, ctx.naive)
        g, i = labelled_pair_scores(e_n, ctx.naive.persons, rec.similarity, chunk=cfg.score_chunk)
        if g.size and i.size:
            verify("naive", "naive mixing", g, i)
    if curves:
        plots.plot_roc(curves, f"verification ROC ({name})", ctx.plots_dir / f"roc_{name}.png")
        plots.write_roc_csv(curves, ctx.plots_dir / f"roc_{name}.csv")

    pick = _tsne_pick(ctx.persons, cfg.tsne_max_people)
    if len(pick) >= 5:
        plots.plot_tsne(
            ctx.protected(rec)[pick].numpy(),
            [ctx.persons[i] for i in pick],
            f"protected embeddings, one key ({name})",
            ctx.plots_dir / f"tsne_{name}.png",
        )


def _tsne_pick(persons: list[str], max_people: int) -> list[int]:
    counts: dict[str, int] = {}
    for p in persons:
        counts[p] = counts.get(p, 0) + 1
    chosen = set(sorted(counts, key=lambda p: (-counts[p], p))[:max_people])
    return [i for i, p in enumerate(persons) if p in chosen]


def _section(ctx: EvaluationContext, m: dict[str, float]) -> str:
    names, f = ctx.names, report.fmt
    rows = [["original (no protection)", "original"], ["FaceAnonyMixer", "protected"]]
    rows += [[b, b] for b in ctx.cfg.baselines] + ([["naive mixing", "naive"]] if ctx.naive else [])
    headers = ["method"] + [h for n in names for h in (f"EER {n}", f"AUC {n}")]
    body = [
        [label] + [f(m.get(f"{k}_{key}_{n}")) for n in names for k in ("eer", "auc")] for label, key in rows
    ]
    lines = [
        "## Recognition utility (table 5): same key, genuine = same person",
        "",
        report.table(headers, body),
    ]
    for n in names:
        for pic in (f"roc_{n}", f"hist_protected_{n}", f"hist_original_{n}", f"tsne_{n}"):
            if (ctx.plots_dir / f"{pic}.png").exists():
                lines.append(f"\n![{pic}](plots/{pic}.png)")
    return "\n".join(lines)


UTILITY = Evaluation(order=40, run=utility)
