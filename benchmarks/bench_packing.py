"""What keeping persons apart costs: ``groups.pack_persons`` false (default) vs true, side by side.

The same generated face folder (persons of 1-3 images, the shipped models at their resolution)
is protected twice with one key and settings, once per mode, interleaved ``--repeats`` times so
that background load hits both alike. A third run protects the first person alone in each mode
and compares its release bytes with the company run: the default must be byte-identical.

Last line: ``pack_speedup=<x> alone_identical_default=<bool> alone_identical_packed=<bool>``
(x = seconds unpacked / seconds packed).

    python -m benchmarks.bench_packing --persons 8 --steps 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import machine_line
from fam.config import load_params
from fam.keys import research_key
from fam.models.factory import build_models
from fam.protect import protect_dataset
from fam.runtime import resolve_engine
from tests.helpers.faces import make_face_folder


def _release(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "release").rglob("*.png"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=8)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()

    base = load_params(args.params).replace(
        {"release.allow_research_keys": True, "optimise.steps": args.steps, "models.inverter.steps": 2}
    )
    engine = resolve_engine(base.runtime)
    models = build_models(base.models, engine.device)
    print(machine_line(engine))
    tmp = Path(tempfile.mkdtemp(prefix="fam-bench-packing-"))
    people = {f"P{i:03d}": 1 + i % 3 for i in range(args.persons)}
    faces = make_face_folder(tmp / "aligned", people, size=models.generator.resolution)
    key = research_key(1)
    seconds: dict[bool, list[float]] = {False: [], True: []}
    company: dict[bool, Path] = {}
    for r in range(args.repeats):
        for pack in (False, True):
            params = base.replace({"groups.pack_persons": pack})
            out = tmp / f"{'packed' if pack else 'apart'}-{r}"
            t0 = time.perf_counter()
            protect_dataset(faces, out, key, params, progress=False, models=models)
            seconds[pack].append(time.perf_counter() - t0)
            company[pack] = out
    identical: dict[bool, bool] = {}
    first = next(iter(people))
    for pack in (False, True):
        params = base.replace({"groups.pack_persons": pack})
        alone = protect_dataset(
            faces, tmp / f"alone-{pack}", key, params, persons=[first], progress=False, models=models
        )
        together = _release(company[pack])
        identical[pack] = all(together.get(k) == v for k, v in _release(alone.out_dir).items())
    n_images = sum(people.values())
    for pack in (False, True):
        best = min(seconds[pack])
        print(
            f"pack_persons={str(pack).lower():5s} persons={args.persons} images={n_images} "
            f"steps={args.steps} best_s={best:.1f} s_per_person={best / args.persons:.2f} "
            f"runs={[round(s, 1) for s in seconds[pack]]}"
        )
    speedup = min(seconds[False]) / min(seconds[True])
    print(
        f"pack_speedup={speedup:.2f} alone_identical_default={identical[False]} "
        f"alone_identical_packed={identical[True]}"
    )


if __name__ == "__main__":
    main()
