"""Batched engine vs the authors' loop structure, side by side, on the same models.

One identity group of 6 views x 50 steps (the single-image path: 1 real + 5 augmented views).

* ``batched``: fam.optimise.protect_views: all views through the generator and both encoders
  in one call per step, the pairwise term as one masked distance matrix.
* ``loop``: a faithful re-creation of the public code's loop structure on the SAME models and
  the same losses: the mixed latent assembled layer by layer (a Python loop over the W+
  layers), one generator call and one encoder call per image, a Python double loop over the
  pairs of the consistency term, and the attribute L1 accumulated token by token (their
  AttrLoss loops over the ViT tokens; our features are read as 16-wide tokens).

Both run from the same initial latents for the same number of steps, so the work is equal;
the final losses are printed to show they optimise the same objective. Prints one line per
configuration and, last, ``speedup=<x> peak_rss_mb=<y>`` (x = the smallest speed-up over
the configurations; y = the process's peak resident memory).

    python benchmarks/bench_protect.py                       # 64 px and 256 px, CPU
    python benchmarks/bench_protect.py --resolutions 1024 --device cuda --identity dlib
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fam.config import ModelSpec, parse_params
from fam.keys import key_latent, research_key
from fam.layers import resolve_groups
from fam.losses import anonymity_loss
from fam.models.factory import BuildContext, build
from fam.optimise import ViewBatch, protect_views

TOKEN_DIM = 16  # attribute features read as tokens of this width (FaRL: 197 tokens of 768)
CHANNELS = {
    64: {4: 256, 8: 256, 16: 256, 32: 128, 64: 64},
    256: {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64},
}


def loop_structure(batch, w_key, gen, ident, attr, groups, cfg) -> tuple[float, float]:
    """The authors' structure: per-token latent assembly, per-image calls, per-pair loop."""
    n = batch.images.shape[0]
    opt_layers = set(groups.identity)
    latents = []
    for i in range(n):  # mixed latent built token by token
        tokens = []
        for layer in range(gen.num_ws):
            src = w_key[0] if layer in opt_layers else batch.w_real[i]
            tokens.append(src[layer : layer + 1].clone())
        latents.append(torch.cat(tokens).unsqueeze(0))
    fixed = [lat.clone() for lat in latents]
    params = [lat[:, sorted(opt_layers)].clone().requires_grad_(True) for lat in latents]
    with torch.no_grad():
        emb_r = [ident.embed(batch.images[i : i + 1]) for i in range(n)]
        feat_r = [attr.features(batch.images[i : i + 1]) for i in range(n)]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas)
    first = last = 0.0
    for step in range(cfg.steps + 1):
        embs, loss_anon, loss_attr = [], 0.0, 0.0
        for i in range(n):  # one generator call per image
            tokens = []
            for layer in range(gen.num_ws):
                if layer in opt_layers:
                    tokens.append(params[i][:, sorted(opt_layers).index(layer)])
                else:
                    tokens.append(fixed[i][:, layer])
            img = gen.synthesis(torch.stack(tokens, dim=1))
            e = ident.embed(img)
            embs.append(e)
            loss_anon = loss_anon + anonymity_loss(e, emb_r[i], cfg.margin).sum()
            fa, fr = attr.features(img), feat_r[i]
            tokens_a, tokens_r = fa.split(TOKEN_DIM, dim=1), fr.split(TOKEN_DIM, dim=1)
            per_token = 0.0
            for ta, tr in zip(tokens_a, tokens_r, strict=True):  # loop over tokens, as AttrLoss does
                per_token = per_token + (ta - tr).abs().sum()
            loss_attr = loss_attr + per_token / fa.shape[1]
        loss_idp = 0.0
        for i in range(n):  # Python loop over pairs
            for j in range(i + 1, n):
                loss_idp = loss_idp + torch.sqrt(((embs[i] - embs[j]) ** 2).sum() + 1e-12)
        loss_idp = loss_idp / (n * (n - 1) / 2)
        w = cfg.weights
        total = w.anonymity * loss_anon / n + w.consistency * loss_idp + w.attribute * loss_attr / n
        if step == 0:
            first = float(total)
        if step == cfg.steps:
            last = float(total)
            break
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    return first, last


def run(
    resolution: int, device: torch.device, identity: str, attribute: str, steps: int, views: int
) -> float:
    params = parse_params({"optimise": {"steps": steps}})
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
    groups = resolve_groups(params.layers, gen.num_ws)
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

    t_batched, res = timed(
        lambda: protect_views(batch, w_key, gen, ident, attr, groups, params.mixing, params.optimise)
    )
    t_loop, (first, last) = timed(
        lambda: loop_structure(batch, w_key, gen, ident, attr, groups, params.optimise)
    )
    speedup = t_loop / t_batched
    print(
        f"res={resolution} device={device} views={views} steps={steps} "
        f"batched_s={t_batched:.2f} loop_s={t_loop:.2f} speedup={speedup:.2f} "
        f"batched_s_per_image={t_batched / views:.3f} loop_s_per_image={t_loop / views:.3f} "
        f"loss_batched={float(res.initial_terms.total):.4f}->{float(res.terms.total):.4f} "
        f"loss_loop={first:.4f}->{last:.4f}",
        flush=True,
    )
    return speedup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--identity", default="dlib")
    ap.add_argument("--attribute", default="fam-attr")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--views", type=int, default=6)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    speedups = [
        run(r, device, args.identity, args.attribute, args.steps, args.views) for r in args.resolutions
    ]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"speedup={min(speedups):.2f} peak_rss_mb={peak_mb:.0f}")


if __name__ == "__main__":
    main()
