"""Unlinkability (paper table 2) and the Gomez-Barrero D_sys (fig. 5).

PSR of release 1 against the same inputs under a second key (same image; same person, other
images) needs a second-key release; D_sys of the unprotected originals is always computed, as
the reference a protected system is compared with.
"""

from __future__ import annotations

from fam.evaluate import plots, report
from fam.evaluate.context import EvaluationContext, EvaluationOutput
from fam.evaluate.metrics import Evaluation
from fam.evaluate.metrics._psr import add_psr
from fam.evaluate.scoring import labelled_pair_scores, paired_scores
from fam.evaluate.unlinkability import Unlinkability, unlinkability

RAW, PROTECTED = "raw (no protection)", "protected (key 1 vs key 2)"


def unlinkability_metrics(ctx: EvaluationContext) -> EvaluationOutput:
    out = EvaluationOutput()
    cfg, rel2 = ctx.cfg, ctx.release2
    if rel2 is None:
        out.notes.append(
            "no second-key release (--release2): unlinkability PSR and protected D_sys not computed"
        )
    for rec in ctx.recognizers:
        name = rec.name
        dsys: dict[str, Unlinkability] = {}
        gen_o, imp_o = ctx.labelled_pairs(rec, "originals")
        if gen_o.size and imp_o.size:
            dsys[RAW] = unlinkability(gen_o, imp_o, cfg.unlinkability_bins)
            out.add(f"dsys_raw_{name}", dsys[RAW].d_sys, "rate")
            out.add(f"n_mated_raw_{name}", gen_o.size, "count")
        else:
            out.notes.append(
                f"{name}: raw D_sys n/a: it needs two people and a person with two images "
                f"(mated {gen_o.size}, non-mated {imp_o.size} pairs)"
            )
        if rel2 is not None:
            a_idx, e_prot2 = ctx.second_key(rec)
            sub = ctx.protected(rec)[a_idx]
            sub_persons = [ctx.persons[i] for i in a_idx]
            add_psr(out, ctx, name, "unlinkability", paired_scores(sub, e_prot2, rec.similarity))
            mated, nonmated = labelled_pair_scores(
                sub,
                sub_persons,
                rec.similarity,
                e_prot2,
                sub_persons,
                exclude_same_index=True,
                chunk=cfg.score_chunk,
            )
            if mated.size:
                add_psr(out, ctx, name, "unlinkability_person", mated)
            if mated.size and nonmated.size:
                dsys[PROTECTED] = unlinkability(mated, nonmated, cfg.unlinkability_bins)
                out.add(f"dsys_protected_{name}", dsys[PROTECTED].d_sys, "rate")
                out.add(f"n_mated_protected_{name}", mated.size, "count")
            else:
                out.notes.append(
                    f"{name}: protected D_sys n/a: it needs two people and a person with two images under "
                    f"both keys (mated {mated.size}, non-mated {nonmated.size} pairs)"
                )
        if dsys:
            if "dsys_bins" not in out.values:
                out.add("dsys_bins", cfg.unlinkability_bins, "count")
            plots.plot_unlinkability(dsys, f"unlinkability ({name})", ctx.plots_dir / f"dsys_{name}.png")
            for label, result in dsys.items():
                kind = "raw" if label == RAW else "protected"
                plots.write_unlinkability_csv(result, ctx.plots_dir / f"dsys_{kind}_{name}.csv")
    out.section = _section(ctx, {k: v for k, (v, _) in out.values.items()})
    return out


def _section(ctx: EvaluationContext, m: dict[str, float]) -> str:
    f, names, lines = report.fmt, ctx.names, []
    if ctx.release2 is not None:
        lines += ["## Unlinkability (table 2): protected under key 1 vs key 2", ""]
        rows = [("same image", ""), ("same person, other images", "person")]
        lines += [report.psr_table(m, "psr_unlinkability", rows, names, ctx.cfg.fmrs, ctx.kinds), ""]
    lines += [f"## Gomez-Barrero unlinkability (fig. 5), {ctx.cfg.unlinkability_bins} bins", ""]
    lines.append(
        report.table(
            ["evaluator", "D_sys raw (original vs original)", "D_sys protected (key 1 vs key 2)"],
            [[n, f(m.get(f"dsys_raw_{n}")), f(m.get(f"dsys_protected_{n}"))] for n in names],
        )
    )
    lines += [
        "",
        "Mated = same person, different images; non-mated = different people. Histogram densities are "
        "integrated exactly (see docs/evaluation.md). With few mated scores (under ~1000 for 100 bins) "
        "D_sys of an unlinkable system is biased upwards; mated counts: "
        + ", ".join(
            f"{n} raw {int(m.get(f'n_mated_raw_{n}', 0))} / "
            f"protected {int(m.get(f'n_mated_protected_{n}', 0))}"
            for n in names
        ),
        "",
        *[f"![D(s) {n}](plots/dsys_{n}.png)" for n in names if (ctx.plots_dir / f"dsys_{n}.png").exists()],
    ]
    return "\n".join(lines)


UNLINKABILITY = Evaluation(order=20, run=unlinkability_metrics)
