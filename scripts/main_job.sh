#!/usr/bin/env bash
# The project's main job (README, first command): set up the environment, fetch the data, then
# align -> protect (under a key file) -> validate -> evaluate -> record in MLflow, on the
# embedded default models and the mlops.subset people of LFW. Re-running resumes finished work.
# Prints where to look: the report, the release and the MLflow UI command.
#   OUT (default runs/main)   KEY_FILE (default runs/keys/main.fam-key)
#   KEY2_FILE (default runs/keys/second.fam-key): the same faces under a second key (unlinkability)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(scripts/setup_env.sh | tail -n 1)"
export PATH="$venv/bin:$PATH" MLFLOW_DISABLE_TELEMETRY=true PREFECT_SERVER_ANALYTICS_ENABLED=false
out="${OUT:-runs/main}"
key_file="${KEY_FILE:-runs/keys/main.fam-key}"
fam() { python -m fam "$@"; }
t0=$SECONDS
t_step=""
# Each step's heading also closes the one before with its wall time, so a slow step shows itself.
step() {
  if [[ -n $t_step ]]; then printf '   (%d s)\n' $((SECONDS - t_step)); fi
  t_step=$SECONDS
  printf '\n== %s\n' "$*"
}

bash scripts/fetch_faceres.sh   # the black-box evaluator (evaluate.recognizers); once, then cached

if [[ ! -d data/lfw/images ]]; then
  step "dvc pull (LFW from the shared DVC remote)"
  dvc pull data.dvc
fi

# People from params.yaml (read through fam.config: nothing else parses the YAML).
mapfile -t people < <(python -c "from fam.config import load_params
for p in load_params().mlops.subset.person: print(p)")
person_args=()
for p in "${people[@]}"; do person_args+=(--person "$p"); done

step "align ${#people[@]} LFW people -> $out/aligned"
fam align --input data/lfw/images --out "$out/aligned" --resume "${person_args[@]}"
python -m tasks.stages validate input "$out/aligned" --report "$out/validation/input.json"

step "invert the aligned faces once (both keys reuse the latents) -> $out/inversions"
fam invert --input "$out/aligned" --out "$out/inversions" --resume

# The other people's faces only feed the evaluation's thresholds, so on a fresh run they are
# aligned in the background, on one thread, while the two keys protect on the other core.
# Measured (2 cores): alignment gains nothing from a second thread (120 LFW photos 12.4 s on one,
# 13.1 s on two, byte-identical) and protection little (23 s on two, 29 s on one, byte-identical
# releases), while a 2-thread step beside the alignment runs several times slower (OpenMP threads
# wait on a busy core: the inversion took 129 s instead of 26), hence one thread each.
# The inversion runs before, alone: its latents depend on the thread count.
impostors_pid=""
protect_threads=()
if [[ ! -d "$out/impostors" ]]; then
  step "choose and align other LFW people for the FMR thresholds -> $out/impostors (background; log: $out/impostors.log)"
  rm -rf "$out/impostor-input" "$out/impostors.partial"
  (python -m tasks.stages impostors --input data/lfw/images --out "$out/impostor-input" &&
    fam align --input "$out/impostor-input" --out "$out/impostors.partial" --set runtime.threads=1 &&
    mv "$out/impostors.partial" "$out/impostors") >"$out/impostors.log" 2>&1 &
  impostors_pid=$!
  # an error elsewhere stops it too: its running step first (killing the subshell alone leaves it)
  trap 'pkill -P "$impostors_pid" 2>/dev/null; kill "$impostors_pid" 2>/dev/null || true' EXIT
  protect_threads=(--set runtime.threads=1)
fi

# Two keys: the release is scored under "main", and the same faces under "second" show that a new
# key gives unlinkable templates (unlinkability PSR and D_sys): revocability is the point.
key2_file="${KEY2_FILE:-runs/keys/second.fam-key}"
key_of() { if [[ $1 == second ]]; then echo "$key2_file"; else echo "$key_file"; fi; }
for name in main second; do
  file=$(key_of "$name")
  if [[ ! -f "$file" ]]; then
    step "new key file $file (keep it secret; only its fingerprint is ever recorded)"
    fam key new --out "$file"
  fi
  step "protect under $file -> $out/protect/$name"
  fam protect --input "$out/aligned" --inversions "$out/inversions/inversions.pt" --key-file "$file" \
    --out "$out/protect/$name" --resume "${protect_threads[@]}"
done

# The releases' GX suites (one single-threaded process each, ~5 s, most of it importing GX) run
# beside the evaluation, which only reads the releases; the gate below waits for them, so a
# failed suite still stops the job before anything is recorded. Measured: they took 11 s of the
# job's critical path one after the other between the protections.
mkdir -p "$out/validation"
declare -A validating=()
for name in main second; do
  python -m tasks.stages validate release "$out/protect/$name" --aligned "$out/aligned" \
    --key-file "$(key_of "$name")" --report "$out/validation/release-$name.json" \
    >"$out/validation/release-$name.log" 2>&1 &
  validating[$name]=$!
done

step "evaluate -> $out/eval"
if [[ -n $impostors_pid ]]; then
  t_wait=$SECONDS
  if ! wait "$impostors_pid"; then
    tail -n 20 "$out/impostors.log" >&2
    echo "aligning the other people failed (log: $out/impostors.log)" >&2
    exit 1
  fi
  trap - EXIT
  printf '   (waited %d s for the background alignment of other people)\n' $((SECONDS - t_wait))
fi
rm -rf "$out/eval"
fam evaluate --aligned "$out/aligned" --release "$out/protect/main" --release2 "$out/protect/second" \
  --thresholds-from "$out/impostors" --key-file "$key_file" --out "$out/eval"

step "metrics gate + MLflow lineage"
for name in main second; do
  if ! wait "${validating[$name]}"; then
    cat "$out/validation/release-$name.log" >&2
    echo "the release under the $name key failed its GX suite (report: $out/validation/release-$name.json)" >&2
    exit 1
  fi
  cat "$out/validation/release-$name.log"
done
python -m tasks.stages report --aligned "$out/aligned" --protect "$out/protect" --eval "$out/eval" \
  --evaluated-key main --validation "$out/validation" --out "$out/report"

# MLFLOW_TRACKING_URI, when set, is where the report stage recorded (it wins over params.yaml).
tracking_uri="${MLFLOW_TRACKING_URI:-$(python -c "from fam.config import load_params; print(load_params().mlops.tracking_uri)")}"
step "headline metrics ($out/eval/metrics.json; all of them in the report)"
python - "$out/eval" <<'PY'
import sys
from fam.artifacts import Metrics
rows = Metrics.read(sys.argv[1]).headline()
width = max(map(len, rows), default=0)
for k, v in rows.items():
    print(f"  {k:<{width}}  {v:8.4f}")
PY
printf '   (%d s)\n' $((SECONDS - t_step))
cat <<MSG

== done in $((SECONDS - t0)) s
report:   $out/eval/report.md   (grid: $out/eval/grid.png, plots: $out/eval/plots/)
release:  $out/protect/main/release   (publishable; manifest.json beside it is private)
lineage:  $out/report/lineage.json
MLflow:   $venv/bin/mlflow ui --backend-store-uri $tracking_uri   (then http://127.0.0.1:5000)
audit:    python -m fam audit --fingerprint \$(python -c "import json;print(json.load(open('$out/protect/main/manifest.json'))['key']['key_fingerprint'])")
MSG
