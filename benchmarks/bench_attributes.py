"""How identity-agnostic and how attribute-sensitive is the ``fam-attr`` encoder? Numbers.

    nice -n 10 python benchmarks/bench_attributes.py --aligned /work/aligned/lfw128

(i) LFW verification (the 6,000 pairs of pairs.txt, 10-fold cross-validated threshold) when the
attribute features are used as if they were an identity embedding, by cosine and by L2, for the
whole vector and for each block alone. 50% = no identity information. The dlib identity network
is run on the same aligned faces for comparison when ``fam.faces.dlib_resnet`` is importable.
(ii) Feature distance between an aligned face and a rotated / flipped / relit copy, averaged over
``--n-robust`` faces and divided by the mean distance between two different people's faces.
(iii) ``--write-stats PATH`` writes the encoder's statistics (per-feature means, per-block scales).
The last line is ``attr_lfw_acc=<x> ...``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from fam.artifacts import AlignManifest
from fam.config import ModelSpec
from fam.faces.attributes import BLOCK_DIMS, AttributeBlocks, build_attribute_encoder
from fam.faces.mtcnn import load_net
from fam.io_utils import sha256_file
from fam.models.factory import BuildContext


def read_pairs(path: Path) -> list[tuple[str, str, bool, int]]:
    """``(input_path_a, input_path_b, same, fold)`` for the 6,000 LFW pairs."""
    lines = path.read_text().split("\n")
    folds, per = (int(v) for v in lines[0].split())
    out, k = [], 1
    for fold in range(folds):
        for same in (True, False):
            for _ in range(per):
                f = lines[k].split()
                k += 1
                if same:
                    a, b = (f[0], int(f[1])), (f[0], int(f[2]))
                else:
                    a, b = (f[0], int(f[1])), (f[2], int(f[3]))
                out.append((f"{a[0]}/{a[0]}_{a[1]:04d}.jpg", f"{b[0]}/{b[0]}_{b[1]:04d}.jpg", same, fold))
    return out


def aligned_paths(out_dir: Path) -> dict[str, Path]:
    """input_path -> aligned file, from the manifest (or the journal of a run in progress)."""
    done = (out_dir / AlignManifest.FILENAME).exists()
    path = out_dir / (AlignManifest.FILENAME if done else ".manifest.partial.csv")
    return {
        r.input_path: out_dir / r.output_path for r in AlignManifest.read(path, partial_ok=not done).aligned()
    }


def load_batch(paths: list[Path]) -> torch.Tensor:
    arr = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def cv_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> float:
    """LFW protocol: per fold, the threshold that is best on the other 9 folds, applied to it."""
    accs = []
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        cands = np.unique(scores[train])
        best = max(cands, key=lambda t: np.mean((scores[train] >= t) == same[train]))
        accs.append(np.mean((scores[test] >= best) == same[test]))
    return float(np.mean(accs))


def verification(feats: dict[str, np.ndarray], pairs, label: str) -> dict[str, float]:
    keep = [p for p in pairs if p[0] in feats and p[1] in feats]
    a = np.stack([feats[p[0]] for p in keep])
    b = np.stack([feats[p[1]] for p in keep])
    same = np.array([p[2] for p in keep])
    folds = np.array([p[3] for p in keep])
    an = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    cos = cv_accuracy((an * bn).sum(1), same, folds)
    l2 = cv_accuracy(-np.linalg.norm(a - b, axis=1), same, folds)
    print(f"  {label:<12} pairs={len(keep)} acc_cosine={cos:.4f} acc_l2={l2:.4f}")
    return {"cos": cos, "l2": l2, "pairs": len(keep)}


def write_stats(path: Path, images: list[Path], batch: int) -> None:
    """Per-feature means and per-block total standard deviations over ``images`` -> JSON."""
    raw = AttributeBlocks(load_net("onet"))
    rows = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            blocks = raw(load_batch(images[i : i + batch]))
            rows.append(torch.cat([blocks[k] for k in BLOCK_DIMS], dim=1).double().numpy())
    x = np.concatenate(rows)
    var = x.var(axis=0)
    scale, start = {}, 0
    for k, d in BLOCK_DIMS.items():
        scale[k] = round(float(np.sqrt(var[start : start + d].sum())), 6)
        start += d
    stats = {
        "about": f"fam-attr statistics over {len(x)} FFHQ-aligned LFW faces (pair images), "
        "written by benchmarks/bench_attributes.py --write-stats",
        "n_images": len(x),
        "block_scale": scale,
        "mean": [round(float(v), 6) for v in x.mean(axis=0)],
    }
    path.write_text(json.dumps(stats, indent=1) + "\n")
    print(f"wrote {path}: block scales {scale}; sha256 {sha256_file(path)}")


def perturbations() -> dict[str, object]:
    def gradient(x: torch.Tensor) -> torch.Tensor:
        ramp = torch.linspace(0.6, 1.4, x.shape[-1])  # light from the right
        return ((x + 1) * ramp - 1).clamp(-1, 1)

    out: dict[str, object] = {
        f"rot{d}": (lambda x, d=d: TF.rotate(x, d, TF.InterpolationMode.BILINEAR)) for d in (0, 5, 10, 20, 30)
    }
    out["hflip"] = TF.hflip
    out["bright+0.2"] = lambda x: (x + 0.2).clamp(-1, 1)
    out["bright-0.2"] = lambda x: (x - 0.2).clamp(-1, 1)
    out["gamma0.7"] = lambda x: (((x + 1) / 2) ** 0.7) * 2 - 1
    out["gamma1.5"] = lambda x: (((x + 1) / 2) ** 1.5) * 2 - 1
    out["light_gradient"] = gradient
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aligned", type=Path, default=Path("/work/aligned/lfw128"))
    ap.add_argument("--pairs", type=Path, default=Path("data/lfw/pairs.txt"))
    ap.add_argument("--n-robust", type=int, default=100)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--write-stats", type=Path, help="write the encoder's statistics (JSON) measured here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    pairs = read_pairs(args.pairs)
    files = aligned_paths(args.aligned)
    needed = sorted({p for pair in pairs for p in pair[:2]} & set(files))
    print(f"aligned faces available for {len(needed)} of the pair images")
    if args.write_stats:
        write_stats(args.write_stats, [files[n] for n in needed], args.batch)
    enc = build_attribute_encoder(ModelSpec("fam-attr"), BuildContext(torch.device("cpu")))
    print(f"encoder dim {enc.feature_dim}")

    feats: dict[str, np.ndarray] = {}
    blocks: dict[str, dict[str, np.ndarray]] = {k: {} for k in BLOCK_DIMS}
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(needed), args.batch):
            names = needed[i : i + args.batch]
            x = load_batch([files[n] for n in names])
            raw = enc.raw_blocks(x)
            f = enc.features(x).numpy()
            for j, n in enumerate(names):
                feats[n] = f[j]
                for k in BLOCK_DIMS:
                    blocks[k][n] = raw[k][j].numpy()
    print(
        f"features: {(time.perf_counter() - t0) / max(len(needed), 1) * 1000:.2f} ms per image "
        f"(batch {args.batch})"
    )

    print("(i) LFW verification with attribute features as an identity embedding")
    res = verification(feats, pairs, "fam-attr")
    for k in BLOCK_DIMS:
        verification(blocks[k], pairs, k)
    try:
        from fam.faces.dlib_resnet import load_dlib_resnet_module, DlibIdentityEncoder  # noqa: I001
    except ImportError:
        print("  dlib identity network: fam.faces.dlib_resnet not on this branch; not compared")
    else:
        idn = DlibIdentityEncoder(load_dlib_resnet_module()).eval()
        emb: dict[str, np.ndarray] = {}
        with torch.no_grad():
            for i in range(0, len(needed), args.batch):
                names = needed[i : i + args.batch]
                e = idn.embed(load_batch([files[n] for n in names])).numpy()
                emb.update(zip(names, e, strict=True))
        verification(emb, pairs, "dlib-resnet")

    print(f"(ii) distance change under edits, {args.n_robust} faces; ratio = dist / mean impostor distance")
    impostors = [p for p in pairs if not p[2] and p[0] in feats and p[1] in feats]
    ref = float(np.mean([np.linalg.norm(feats[a] - feats[b]) for a, b, _, _ in impostors]))
    genuines = [p for p in pairs if p[2] and p[0] in feats and p[1] in feats]
    gen = float(np.mean([np.linalg.norm(feats[a] - feats[b]) for a, b, _, _ in genuines]))
    print(f"  mean L2: impostor pairs {ref:.4f}, genuine pairs {gen:.4f} (ratio {gen / ref:.3f})")
    sample = needed[:: max(1, len(needed) // args.n_robust)][: args.n_robust]
    x = load_batch([files[n] for n in sample])
    ratios: dict[str, float] = {}
    with torch.no_grad():
        base = enc.features(x)
        for name, fn in perturbations().items():
            d = (enc.features(fn(x)) - base).norm(dim=1).mean().item()
            ratios[name] = d / ref
            print(f"  {name:<15} mean_L2={d:.4f} ratio={d / ref:.3f}")

    print(
        f"attr_lfw_acc={res['cos']:.4f} attr_lfw_acc_l2={res['l2']:.4f} pairs={res['pairs']} "
        f"rot10_ratio={ratios['rot10']:.3f} rot30_ratio={ratios['rot30']:.3f} "
        f"hflip_ratio={ratios['hflip']:.3f} "
        f"gamma0.7_ratio={ratios['gamma0.7']:.3f} light_gradient_ratio={ratios['light_gradient']:.3f} "
        f"genuine_ratio={gen / ref:.3f}"
    )


if __name__ == "__main__":
    main()
