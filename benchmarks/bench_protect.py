"""Batched engine vs the authors' loop structure, side by side, on the same models.

One identity group of 6 views x 50 steps (the single-image path: 1 real + 5 augmented views).

* ``batched``: fam.optimise.protect_views: all views through the generator and both encoders
  in one call per step, the pairwise term as one masked distance matrix.
* ``loop``: a faithful re-creation of the public code's loop structure (anonymize.py with its
  IDLoss, AttrLoss and ConsistencyLoss) on the SAME models and the same objective: latents
  assembled layer by layer, one optimiser per latent, one generator call per image, the
  original re-embedded by every loss call (3 identity and 2 attribute passes per image and
  step, against fam's 1 and 1), the attribute L1 accumulated token by token (their AttrLoss
  loops over the ViT tokens; our features are read as 16-wide tokens) and a Python double
  loop over the pairs of the consistency term.

Three runs per resolution from the same initial latents for the same number of steps: the
batched engine as it was (fp32, fused modulation), the batched engine with the resolved fast
settings (``runtime.*`` = auto: precision and modulation path by hardware), and the loop
structure on the same fast settings. Final losses are printed to show they optimise the same
objective. Per resolution: ``s_per_group`` (fast engine, scaled to 50 steps if fewer ran) and
``peak_fraction`` (benchmarks/machine.py). Last line:
``speedup=<x> peak_rss_mb=<y> s_per_group=<s> peak_fraction=<f>`` (x = the smallest speed-up of
the fast batched engine over the loop structure; y = the process's peak resident memory; s and f
of the first resolution).

    python benchmarks/bench_protect.py --resolutions 64      # CPU
    python benchmarks/bench_protect.py --resolutions 1024 --device cuda --identity dlib
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import conv_peak_flops, count_flops, machine_line
from fam.calibration import resolve_margin
from fam.config import ModelSpec, RuntimeConfig, parse_params
from fam.errors import ConfigError
from fam.keys import key_latent, research_key
from fam.layers import resolve_groups_for
from fam.losses import anonymity_loss
from fam.models.factory import BuildContext, build
from fam.optimise import ViewBatch, protect_views
from fam.runtime import MODCONV_SETTINGS, PRECISIONS, Engine, resolve_engine

TOKEN_DIM = 16  # attribute features read as tokens of this width (FaRL: 197 tokens of 768)
CHANNELS = {
    64: {4: 256, 8: 256, 16: 256, 32: 128, 64: 32},  # the embedded prior's widths (params.yaml)
    256: {4: 256, 8: 256, 16: 256, 32: 128, 64: 64, 128: 32, 256: 16},
}


def loop_structure(batch, w_key, gen, ident, attr, groups, mixing, cfg) -> tuple[float, float]:
    """The public code's per-step structure (anonymize.py with IDLoss, AttrLoss, ConsistencyLoss).

    Per step and image: one generator call on a latent assembled layer by layer; the anonymity
    loss embeds the original and the protected image (2 identity passes); the attribute loss
    encodes both and accumulates L1 token by token (2 attribute passes); the consistency loss
    embeds every protected image once more and loops over the pairs. One Adam optimiser per
    latent code, as there. Loss normalisation, the key's layers (eq. 1) and the optimised layers
    follow fam's settings, so both runs minimise the same objective and their losses compare.
    """
    n = batch.images.shape[0]
    key_layers = set(groups.identity)
    opt_layers = sorted(groups.indices(mixing.optimise_layers))
    fixed, params = [], []
    for i in range(n):  # mixed latent built token by token
        tokens = [
            (w_key[0] if layer in key_layers else batch.w_real[i])[layer : layer + 1].clone()
            for layer in range(gen.num_ws)
        ]
        lat = torch.cat(tokens).unsqueeze(0)
        fixed.append(lat)
        params.append(lat[:, opt_layers].clone().requires_grad_(True))
    optimizers = [torch.optim.Adam([p], lr=cfg.lr, betas=cfg.betas) for p in params]
    originals = [batch.images[i : i + 1] for i in range(n)]
    w = cfg.weights
    first = last = 0.0
    for step in range(cfg.steps + 1):
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        anon_images = []
        for i in range(n):  # one generator call per image
            tokens = [
                params[i][:, opt_layers.index(layer)] if layer in opt_layers else fixed[i][:, layer]
                for layer in range(gen.num_ws)
            ]
            anon_images.append(gen.synthesis(torch.stack(tokens, dim=1)))
        loss_anon = sum(  # IDLoss: embeds the original and the protected image every call
            anonymity_loss(ident.embed(a), ident.embed(o).detach(), cfg.margin, cfg.anonymity_form).sum()
            for a, o in zip(anon_images, originals, strict=True)
        )
        loss_attr = 0.0
        for a, o in zip(anon_images, originals, strict=True):  # AttrLoss: both encoded, token loop
            fa, fo = attr.features(a), attr.features(o)
            per_token = 0.0
            for ta, to in zip(fa.split(TOKEN_DIM, dim=1), fo.split(TOKEN_DIM, dim=1), strict=True):
                per_token = per_token + (ta - to).abs().sum()
            loss_attr = loss_attr + per_token  # eq. 4: the L1 norm, a sum (fam.losses)
        embs = [ident.embed(a) for a in anon_images]  # ConsistencyLoss: embeds each image again
        loss_idp, count = 0.0, 0
        for i in range(n):  # Python loop over pairs
            for j in range(i + 1, n):
                loss_idp = loss_idp + torch.norm(embs[i] - embs[j], p=2)
                count += 1
        loss_idp = loss_idp / count
        total = w.anonymity * loss_anon / n + w.consistency * loss_idp + w.attribute * loss_attr / n
        if step == 0:
            first = float(total.detach())
        if step == cfg.steps:
            last = float(total.detach())
            break
        total.backward()
        for opt in optimizers:
            opt.step()
    return first, last


def run(
    resolution: int, engine: Engine, identity: str, attribute: str, steps: int, views: int
) -> dict[str, float]:
    device = engine.device
    # the margin the protection would use with this identity model at this resolution (calibrated);
    # where no calibration exists the speed is measured at m = 0 (the margin does not change the work)
    params = parse_params({"optimise": {"steps": steps}, "models": {"identity": identity}})
    try:
        params = resolve_margin(params, resolution)
    except ConfigError:
        print(f"# res={resolution}: no impostor calibration of {identity}; optimise.margin = 0 for timing")
        params = params.replace({"optimise.margin": 0.0})
    gen_spec = ModelSpec(
        "stylegan2",
        {"resolution": resolution, "weights": "random", "seed": 0, "channels": CHANNELS.get(resolution)}
        if resolution in CHANNELS
        else {"resolution": resolution, "weights": "random", "seed": 0},
    )
    ctx = BuildContext(device)
    gen = build("generator", gen_spec, ctx)
    ident = build("identity", ModelSpec(identity), ctx)
    attr = build("attribute", ModelSpec(attribute), ctx)
    groups = resolve_groups_for(params.layers, gen)
    torch.manual_seed(0)
    w_real = gen.w_avg.reshape(1, 1, -1).repeat(views, gen.num_ws, 1) + 0.5 * torch.randn(
        views, gen.num_ws, gen.w_dim, device=device
    )
    with torch.no_grad():
        images = gen.synthesis(w_real).clamp(-1, 1)
    batch = ViewBatch(images, w_real, torch.zeros(views, dtype=torch.long, device=device), 1)
    w_key = key_latent(research_key(1), gen)

    def timed(fn):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, out

    def batched(eng: Engine, cfg=params.optimise):  # type: ignore[no-untyped-def]
        eng.prepare(gen)
        return protect_views(batch, w_key, gen, ident, attr, groups, params.mixing, cfg, eng)

    t_orig, res_orig = timed(lambda: batched(Engine(device, "fp32", "fused")))
    t_fast, res = timed(lambda: batched(engine))
    with engine.autocast():
        t_loop, (first, last) = timed(
            lambda: loop_structure(batch, w_key, gen, ident, attr, groups, params.mixing, params.optimise)
        )
    # FLOPs of the fast run: the steps-free part plus `steps` times one step.
    f0 = count_flops(lambda: batched(engine, replace(params.optimise, steps=0)))
    f1 = count_flops(lambda: batched(engine, replace(params.optimise, steps=1)))
    flops = f0 + steps * (f1 - f0)
    peak = flops / t_fast / conv_peak_flops(engine.precision, device)
    s_per_group = t_fast * 50 / max(steps, 1)
    print(
        f"res={resolution} device={device} views={views} steps={steps} "
        f"original_s={t_orig:.2f} fast_s={t_fast:.2f} loop_s={t_loop:.2f} "
        f"fast_vs_original={t_orig / t_fast:.2f} speedup_vs_loop={t_loop / t_fast:.2f} "
        f"s_per_group={s_per_group:.2f} gflop={flops / 1e9:.1f} peak_fraction={peak:.2f} "
        f"loss_original={float(res_orig.initial_terms.total):.4f}->{float(res_orig.terms.total):.4f} "
        f"loss_fast={float(res.initial_terms.total):.4f}->{float(res.terms.total):.4f} "
        f"loss_loop={first:.4f}->{last:.4f}",
        flush=True,
    )
    return {"speedup": t_loop / t_fast, "s_per_group": s_per_group, "peak_fraction": peak}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--identity", default="dlib")
    ap.add_argument("--attribute", default="fam-attr")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--threads", type=int, default=0, help="0: the physical cores")
    ap.add_argument("--precision", default="auto", choices=PRECISIONS)
    ap.add_argument("--modconv", default="auto", choices=MODCONV_SETTINGS)
    args = ap.parse_args()
    engine = resolve_engine(RuntimeConfig(args.device, args.threads, args.precision, args.modconv))
    print(machine_line(engine), f"precision={engine.precision} modconv={engine.modconv}")
    rows = [run(r, engine, args.identity, args.attribute, args.steps, args.views) for r in args.resolutions]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"speedup={min(r['speedup'] for r in rows):.2f} peak_rss_mb={peak_mb:.0f} "
        f"s_per_group={rows[0]['s_per_group']:.2f} peak_fraction={rows[0]['peak_fraction']:.2f}"
    )


if __name__ == "__main__":
    main()
