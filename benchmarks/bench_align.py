"""Align all of LFW and the in-the-wild photos; print outcomes, time per image; write a contact sheet.

    nice -n 10 python benchmarks/bench_align.py --size 128 --lfw-out /work/aligned/lfw128 \
        --wild-out /tmp/aligned/wild128 --sheet /tmp/contact_sheet.png

Settings are params.yaml's ``align`` section with ``size`` replaced. Outputs go outside git.
``--resume`` continues an interrupted run (the timing then covers only the remaining files).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fam.artifacts import AlignManifest
from fam.config import load_params
from fam.faces.align import align_dataset


def contact_sheet(out_dirs: list[Path], path: Path, n: int = 64, cols: int = 8) -> int:
    """Tile ``n`` aligned faces, spread evenly over the manifests' aligned rows."""
    picked: list[Path] = []
    shares = [n - n // 4, n // 4] if len(out_dirs) == 2 else [n]
    for out_dir, share in zip(out_dirs, shares, strict=True):
        aligned = [r.output_path for r in AlignManifest.read(out_dir).aligned()]
        idx = np.linspace(0, len(aligned) - 1, num=min(share, len(aligned))).round().astype(int)
        picked += [out_dir / aligned[i] for i in idx]
    tiles = [Image.open(p).convert("RGB") for p in picked]
    side = tiles[0].size[0]
    rows = (len(tiles) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * side, rows * side))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % cols) * side, (k // cols) * side))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return len(tiles)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lfw", type=Path, default=Path("data/lfw/images"))
    ap.add_argument("--wild", type=Path, default=Path("data/wild"))
    ap.add_argument("--lfw-out", type=Path, default=Path("/work/aligned/lfw128"))
    ap.add_argument("--wild-out", type=Path, default=Path("/tmp/aligned/wild128"))
    ap.add_argument("--sheet", type=Path, default=Path("/tmp/contact_sheet.png"))
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument(
        "--lfw-main-face",
        default="centre",
        help="LFW crops are centred on their subject by construction, so 'centre' resolves photos with "
        "several similar faces; the wild photos use params.yaml's policy",
    )
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_params(args.params, {"align.size": args.size}).align
    print(f"settings: {cfg}")
    lfw_cfg = dataclasses.replace(cfg, main_face=args.lfw_main_face)
    print(f"LFW main_face policy: {lfw_cfg.main_face}")
    results = {}
    for name, src, dst, c in (
        ("lfw", args.lfw, args.lfw_out, lfw_cfg),
        ("wild", args.wild, args.wild_out, cfg),
    ):
        t0 = time.perf_counter()
        s = align_dataset(src, dst, c, resume=args.resume, force=args.force)
        wall = time.perf_counter() - t0
        results[name] = s
        print(
            f"{name}: inputs={s.n_inputs} aligned={s.aligned} rejected={s.n_rejected} "
            f"processed_now={s.processed} sec_per_image={s.seconds_per_image:.4f} wall_s={wall:.1f}"
        )
        for reason, count in s.rejected.items():
            print(f"  rejected {reason}: {count}")
        print(f"  output: {dst}")
    n = contact_sheet([args.lfw_out, args.wild_out], args.sheet)
    print(f"contact sheet of {n} faces: {args.sheet}")
    lfw, wild = results["lfw"], results["wild"]
    print(
        f"align_lfw_aligned={lfw.aligned}/{lfw.n_inputs} align_wild_aligned={wild.aligned}/{wild.n_inputs} "
        f"lfw_sec_per_image={lfw.seconds_per_image:.4f} wild_sec_per_image={wild.seconds_per_image:.4f} "
        f"size={cfg.size}"
    )


if __name__ == "__main__":
    main()
