"""Load: many people in one run, and a Prefect flow killed mid-run then resumed.

1. ``fam protect`` (the library, in a fresh process per size) on the first ``--persons`` people
   of an aligned LFW folder, and on the ``--small`` of them with the most images, with reduced
   steps. Peak memory follows the largest batch (a person's views, up to
   ``groups.max_batch_views``), so the small set holds the largest persons: what remains between
   the two peaks is growth with the number of people.
2. The ``protect-dataset`` flow on the same ``--persons`` people (shards of ``--shard-size``,
   thread runner, a private Prefect home and MLflow store) is killed with SIGKILL (the whole
   process group: flow, workers, the ephemeral Prefect server) once about half the people are
   on disk, then run again; its release must be byte-identical to the one-process run of step 1
   (persons never share a batch, so sharding cannot change bytes).

Last line: ``persons=<n> peak_rss_mb_small=<a> peak_rss_mb_large=<b> rss_growth=<b/a>
s_per_person=<s> flow_killed_at=<k> flow_resume_identical=<bool>``.

    python -m benchmarks.bench_load --aligned ~/.cache/fam/aligned/lfw128 --persons 200
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REDUCED = {"optimise.steps": 2, "models.inverter.steps": 2, "release.allow_research_keys": True}


def _first_people(aligned: Path, n: int, largest: int = 0) -> list[str]:
    """The first ``n`` aligned people by name; with ``largest``, only that many of them with the
    most images (ties by name)."""
    from collections import Counter

    from fam.artifacts import AlignManifest

    counts = Counter(row.person for row in AlignManifest.read(aligned).aligned())
    people = sorted(counts)
    if len(people) < n:
        raise SystemExit(f"{aligned} holds {len(people)} aligned people, fewer than {n}")
    people = people[:n]
    return sorted(sorted(people, key=lambda p: (-counts[p], p))[:largest]) if largest else people


def _protect_child(aligned: Path, out: Path, n: int, largest: int) -> None:
    """One process: protect the people of :func:`_first_people`; print seconds and peak RSS as JSON."""
    from fam.config import load_params
    from fam.keys import research_key
    from fam.protect import protect_dataset

    params = load_params("params.yaml", REDUCED)
    t0 = time.perf_counter()
    s = protect_dataset(
        aligned, out, research_key(1), params, persons=_first_people(aligned, n, largest), progress=False
    )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": time.perf_counter() - t0, "rss_mb": rss_mb, "images": s.n_images}))


def _flow_child(aligned: Path, out: Path, n: int, params_path: Path) -> None:
    from flows.protect import protect_dataset

    protect_dataset(
        aligned_dir=str(aligned),
        out_dir=str(out),
        key={"research_seed": 1},
        params_path=str(params_path),
        persons=_first_people(aligned, n),
    )


def _run(cmd: list[str], env: dict[str, str]) -> dict:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _release(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "release").rglob("*.png"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aligned", type=Path, required=True, help="a `fam align` output holding LFW")
    ap.add_argument("--persons", type=int, default=200)
    ap.add_argument("--small", type=int, default=20)
    ap.add_argument("--shard-size", type=int, default=25)
    ap.add_argument("--child", choices=["protect", "flow"], help=argparse.SUPPRESS)
    ap.add_argument("--largest", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--flow-params", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    aligned = args.aligned.expanduser().resolve()
    if args.child == "protect":
        return _protect_child(aligned, args.out, args.persons, args.largest)
    if args.child == "flow":
        return _flow_child(aligned, args.out, args.persons, args.flow_params)

    from benchmarks.machine import training_running

    tmp = Path(tempfile.mkdtemp(prefix="fam-bench-load-"))
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    me = [sys.executable, "-m", "benchmarks.bench_load", "--aligned", str(aligned)]
    print(f"training_running={training_running()} work={tmp}")
    largest = ["--largest", str(args.small)]
    small = _run(
        [*me, "--child", "protect", "--persons", str(args.persons), *largest, "--out", str(tmp / "small")],
        env,
    )
    print(f"protect the {args.small} largest of the {args.persons} persons: {small}")
    large = _run(
        [*me, "--child", "protect", "--persons", str(args.persons), "--out", str(tmp / "large")], env
    )
    print(f"protect persons={args.persons}: {large}")

    settings = yaml.safe_load(Path("params.yaml").read_text())
    settings["optimise"]["steps"] = REDUCED["optimise.steps"]
    settings["models"]["inverter"]["steps"] = REDUCED["models.inverter.steps"]
    settings["release"] = {**settings.get("release", {}), "allow_research_keys": True}
    settings["mlops"].update(
        {
            "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
            "artifact_root": str(tmp / "mlartifacts"),
            "shard_size": args.shard_size,
            "retries": 0,
        }
    )
    params_path = tmp / "params.yaml"
    params_path.write_text(yaml.safe_dump(settings))
    flow_env = {
        **env,
        "PREFECT_HOME": str(tmp / "prefect"),
        "PREFECT_LOCAL_STORAGE_PATH": str(tmp / "results"),
    }
    flow_out = tmp / "flow"
    cmd = [*me, "--child", "flow", "--persons", str(args.persons), "--out", str(flow_out)]
    cmd += ["--flow-params", str(params_path)]
    log = open(tmp / "flow-1.log", "w")  # noqa: SIM115 - open for the child's lifetime
    proc = subprocess.Popen(cmd, env=flow_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    records = flow_out / ".fam" / "persons"
    killed_at = -1
    while proc.poll() is None:
        n_done = len(list(records.glob("*.json"))) if records.is_dir() else 0
        if n_done >= args.persons // 2:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            killed_at = n_done
            break
        time.sleep(0.5)
    log.close()
    if killed_at < 0:
        raise SystemExit(
            f"the flow ended (rc {proc.returncode}) before it could be killed; see {tmp}/flow-1.log"
        )
    print(f"flow killed with {killed_at} of {args.persons} people on disk")
    t0 = time.perf_counter()
    with open(tmp / "flow-2.log", "w") as log2:
        rc = subprocess.run(cmd, env=flow_env, stdout=log2, stderr=subprocess.STDOUT, check=False).returncode
    # Protection ends before the gates run: a gate failure (say, an aligned folder from an older
    # fam) still leaves a complete release to compare, and the line below says the flow failed.
    print(f"resumed flow ended in {time.perf_counter() - t0:.0f} s, rc {rc} (log: {tmp}/flow-2.log)")
    identical = _release(flow_out) == _release(tmp / "large")
    a, b = small["rss_mb"], large["rss_mb"]
    print(
        f"persons={args.persons} peak_rss_mb_small={a:.0f} peak_rss_mb_large={b:.0f} rss_growth={b / a:.2f} "
        f"s_per_person={large['seconds'] / args.persons:.2f} "
        f"flow_killed_at={killed_at} flow_resume_identical={identical} flow_rc={rc}"
    )


if __name__ == "__main__":
    main()
