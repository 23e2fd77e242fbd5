#!/usr/bin/env bash
# Build the GPU-agent image (Dockerfile) in a real Docker engine on a machine that reaches no image
# registry, and run it: `fam --help`, `fam models` and a tiny protect inside, as uid 1000 with a
# host folder at /data. Prints one line per check and `docker_smoke=ok` at the end.
#
#   bash scripts/docker_smoke.sh            # needs root (dockerd, debootstrap); ~25 GB of disk
#
# 1. Engine: uses a running one, else starts `dockerd` (storage driver $FAM_DOCKER_STORAGE,
#    default overlay2; vfs where overlay mounts are refused) and stops it at the end.
# 2. Base: `python:3.11-slim` cannot be pulled, so Debian bookworm with python3 and python3-venv
#    is made with debootstrap from Debian's packages and `docker import`ed as fam-base:bookworm
#    (once; reused). The host's CA bundle goes into it, so pip inside trusts what the host trusts.
# 3. Build: `docker build --build-arg BASE=fam-base:bookworm` with the commit recorded
#    (GIT_COMMIT, GIT_DIRTY); pip fetches requirements.lock from PyPI (torch's CUDA wheels: GBs).
# 4. Run: the checks below, on generated images (no face data enters the image or the script).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "docker_smoke: run as root (it starts dockerd and runs debootstrap)"; exit 2; }
command -v docker >/dev/null && command -v dockerd >/dev/null || {
  echo "docker_smoke: no Docker engine; install one: apt-get install -y docker.io debootstrap"; exit 2; }
command -v debootstrap >/dev/null || { echo "docker_smoke: apt-get install -y debootstrap"; exit 2; }

work="${FAM_DOCKER_WORK:-/var/tmp/fam-docker-smoke}"
base=fam-base:bookworm
image=fam-worker:smoke
mkdir -p "$work"
started=""
cleanup() {
  if [[ -n "$started" ]]; then kill "$started" 2>/dev/null || true; wait "$started" 2>/dev/null || true; fi
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
  echo "== starting dockerd (storage driver ${FAM_DOCKER_STORAGE:-overlay2}); log: $work/dockerd.log"
  dockerd --storage-driver="${FAM_DOCKER_STORAGE:-overlay2}" --data-root "$work/docker" \
    >"$work/dockerd.log" 2>&1 &
  started=$!
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start: $work/dockerd.log"; exit 1; }
fi

if ! docker image inspect "$base" >/dev/null 2>&1; then
  rootfs="$work/rootfs"
  if [[ ! -x "$rootfs/usr/bin/python3" ]]; then
    echo "== debootstrap bookworm (python3, python3-venv) -> $rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" "${FAM_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log"
  fi
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  echo "== docker import -> $base"
  tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
fi

commit=$(git rev-parse HEAD)
dirty=0
[[ -z $(git status --porcelain --untracked-files=no) ]] || dirty=1
echo "== docker build -> $image (commit ${commit:0:12}, dirty=$dirty); log: $work/build.log"
t0=$SECONDS
docker build --network host --build-arg BASE="$base" --build-arg GIT_COMMIT="$commit" \
  --build-arg GIT_DIRTY="$dirty" -t "$image" . >"$work/build.log" 2>&1 ||
  { tail -n 30 "$work/build.log"; echo "docker build failed: $work/build.log"; exit 1; }
echo "built in $((SECONDS - t0)) s; $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.1f GB", $1/1e9}')"

# /data as the container sees it: a host folder owned by uid 1000, as the Dockerfile asks.
data="$work/data"
rm -rf "$data"
mkdir -p "$data"
python3 - "$data/faces" <<'EOF'
import sys, zlib, struct
from pathlib import Path
# Two "persons" of smooth random PNGs written with the standard library only (no face data).
def png(path, seed, size=64):
    rows = b"".join(b"\x00" + bytes(((x * (seed + 3) + y * 7 + seed * 40) % 256 for x in range(size) for _ in range(3))) for y in range(size))
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
root = Path(sys.argv[1])
for p, n in (("person_a", 2), ("person_b", 1)):
    (root / p).mkdir(parents=True)
    for i in range(n):
        png(root / p / f"{i:04d}.png", seed=len(p) * 10 + i + (p == "person_b") * 50)
EOF
chown -R 1000:1000 "$data"
run() { docker run --rm --network none -v "$data:/data" "$image" "$@"; }

check() {  # name, command...: prints "ok name" or the output and fails
  local name=$1; shift
  if out=$("$@" 2>&1); then echo "ok  $name"; else echo "$out" | tail -n 20; echo "FAIL $name"; exit 1; fi
}
check "fam --help" run fam --help
check "fam models" run fam models
check "runs as uid 1000" bash -c "[[ \$(docker run --rm $image id -u) == 1000 ]]"
check "code version = commit ${commit:0:12}" bash -c \
  "docker run --rm $image python -c 'from fam.provenance import code_version as v; print(v().commit)' | grep -qx $commit"
check "tiny protect (2 steps, research key)" run fam protect --input /data/faces --out /data/protected \
  --research-seed 1 --quiet --set release.allow_research_keys=true --set optimise.steps=2 \
  --set models.inverter.steps=2
check "release written on the volume" test -f "$data/protected/release/release.json"
check "MLflow store on the volume (runs/ -> /data/runs)" run python -c "
from fam.config import load_params
from tasks.mlflow_lineage import Store
s = Store.from_params(load_params())
s.experiment_id(s.client())
print(s.tracking_uri)"
check "mlflow.db under /data/runs" test -f "$data/runs/mlflow.db"
echo "docker_smoke=ok image=$image base=$base"
