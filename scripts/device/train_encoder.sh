#!/usr/bin/env bash
# One <= 10-minute chunk of encoder training (after the prior). carry: .device/packed and
# .device/lifeboat/prior (prior.pt, d_fp16.pt, meta.pt). $OUT gets encoder.pt and encoder_log.jsonl.
set -euo pipefail
MINUTES="${MINUTES:-8.5}"
KIMG="${KIMG:-1000}"
PACK="${PACK:-.device/packed/lfw64_q90.npz}"
export PYTHONUNBUFFERED=1
RESUME=()
if [[ -f .device/run/encoder/state.pt ]]; then RESUME=(--resume); fi
python3 -m fam train-encoder --data "$PACK" --prior .device/lifeboat/prior --out .device/run/encoder \
  --export "$OUT" --kimg "$KIMG" --minutes "$MINUTES" "${RESUME[@]}" "$@" 2>&1 | tee "$OUT/stdout.txt"
ls -la "$OUT"
