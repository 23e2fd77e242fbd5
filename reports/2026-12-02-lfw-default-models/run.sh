#!/usr/bin/env bash
# How reports/2026-12-02-lfw-default-models was made (2-core CPU, default params.yaml, random-weight
# 64 px generator, dlib + faceres evaluators). Run from the repository root with the venv on PATH.
#   1. the main job (two keys, all three attacks, baselines, FID):
#        OUT=runs/main-t bash scripts/main_job.sh          -> runs/main-t/eval/report.md (report.md here)
#   2. the ablation: one key, the same aligned faces, inversions and thresholds; each variant changes
#      one of the choices issue 12 made, and is scored for anonymity, utility and FID only.
set -euo pipefail
base=runs/main-t
out=runs/ablation
key=runs/keys/main.fam-key
declare -A variant=(
  [default]=""
  [margin_0]="--set optimise.margin=0"                          # eq. 2 with m = 0 (uncalibrated)
  [attribute_mean]="--set optimise.weights.attribute=0.000711"  # eq. 4 as a mean over fam-attr's 211 dims
  [identity_layers_only]="--set mixing.optimise_layers=[identity]"  # the authors' code: identity layers only
  [naive]="--set optimise.steps=0"                              # eq. 1 alone
)
for name in default margin_0 attribute_mean identity_layers_only naive; do
  # shellcheck disable=SC2086
  python -m fam protect --input "$base/aligned" --inversions "$base/inversions/inversions.pt" \
    --key-file "$key" --out "$out/$name" --resume --quiet ${variant[$name]}
  python -m fam evaluate --aligned "$base/aligned" --release "$out/$name" --key-file "$key" \
    --thresholds-from "$base/eval/thresholds.json" --out "$out/$name-eval" --quiet \
    --set 'evaluate.attacks=[]' --set 'evaluate.baselines=[]' --set evaluate.grid_rows=0 ${variant[$name]}
done
python - "$out" <<'PY'
import sys
from pathlib import Path
from fam.artifacts import Metrics
cols = ["psr_anonymity_dlib_fmr1e-3", "psr_anonymity_faceres_fmr1e-3", "score_anonymity_mean_dlib",
        "score_anonymity_mean_faceres", "eer_protected_dlib", "eer_protected_faceres", "fid"]
print("| variant | " + " | ".join(cols) + " |")
print("|---" * (len(cols) + 1) + "|")
for name in ("default", "margin_0", "attribute_mean", "identity_layers_only", "naive"):
    d = Path(sys.argv[1]) / f"{name}-eval"
    m = Metrics.read(d).values
    print(f"| {d.name.removesuffix('-eval')} | " + " | ".join(f"{m[c]:.4f}" if c in m else "n/a" for c in cols) + " |")
PY
