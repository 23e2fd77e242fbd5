#!/usr/bin/env bash
# One <= 10-minute chunk of prior training on the device machine (run through the device tool's
# `run` from the repository root; see scripts/device/README.md for the sequence of calls).
#   carry: .device/packed (the pack) and, when the machine may be fresh, .device/lifeboat/prior
#   $OUT gets: prior.pt, g_fp16.pt, d_fp16.pt, meta.pt (the lifeboat, each < 16 MiB), samples.png, log.jsonl
# FID is off there: the Inception file (87 MB) cannot travel; compute it here from prior.pt.
# Full state (exact resume) stays in .device/run/prior on the machine while it is warm.
set -euo pipefail
MINUTES="${MINUTES:-8.5}"            # leaves ~1.5 min of the 10-minute limit for start-up and FID
KIMG="${KIMG:-3000}"
PACK="${PACK:-.device/packed/lfw64_q90.npz}"
export PYTHONUNBUFFERED=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
RESUME=()
if [[ -f .device/run/prior/state.pt || -d .device/lifeboat/prior ]]; then RESUME=(--resume --lifeboat .device/lifeboat/prior); fi
python3 -m fam train-prior --data "$PACK" --out .device/run/prior --export "$OUT" \
  --kimg "$KIMG" --minutes "$MINUTES" "${RESUME[@]}" --set training.prior.fid_every_kimg=0 "$@" \
  2>&1 | tee "$OUT/stdout.txt"
ls -la "$OUT"
