"""Pack the train-split aligned LFW faces for the device machine and print the sizes.

    python -m benchmarks.pack_dataset --aligned /work/aligned/lfw128 --out .device/packed \
        --resolution 64 --resolution 128 --quality 95

Writes ``lfw<R>_q<Q>.npz`` per resolution and prints images, people, bytes, bytes per image,
the raw uint8 size for comparison, and whether the file fits the device call's carry budget.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from fam.training.pack import pack_faces

CARRY_LIMIT = 64 * 2**20  # the device tool's limit for the whole working tree of one call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aligned", type=Path, required=True, help="output folder of `fam align`")
    ap.add_argument("--out", type=Path, required=True, help="folder for the packs (outside git)")
    ap.add_argument("--resolution", type=int, action="append", required=True)
    ap.add_argument("--quality", type=int, action="append", default=None, help="JPEG quality (repeatable)")
    args = ap.parse_args()
    for res in args.resolution:
        for q in args.quality or [95]:
            t0 = time.perf_counter()
            rep = pack_faces(args.aligned, args.out / f"lfw{res}_q{q}.npz", res, q)
            raw = rep.images * 3 * res * res
            print(
                json.dumps(
                    {
                        "file": str(rep.path),
                        "resolution": res,
                        "quality": q,
                        "images": rep.images,
                        "people": rep.people,
                        "heldout_images_excluded": rep.heldout_images_excluded,
                        "rejects": len(rep.rejects),
                        "bytes": rep.bytes,
                        "MiB": round(rep.bytes / 2**20, 2),
                        "bytes_per_image": round(rep.bytes / rep.images),
                        "raw_uint8_MiB": round(raw / 2**20, 2),
                        "fits_carry_64MiB": rep.bytes < CARRY_LIMIT,
                        "sha256": rep.sha256,
                        "seconds": round(time.perf_counter() - t0, 1),
                    }
                )
            )


if __name__ == "__main__":
    main()
