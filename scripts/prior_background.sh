#!/usr/bin/env bash
# The embedded prior's long CPU training, run in the background across working sessions.
#
#   bash scripts/prior_background.sh start [MINUTES]   # detached, nice 19, resumes the state
#   bash scripts/prior_background.sh prepare           # the 64-px pack (start runs it when missing)
#   bash scripts/prior_background.sh status            # last log lines, kimg, images/s
#   bash scripts/prior_background.sh stop              # clean stop: state + lifeboat + samples saved
#   bash scripts/prior_background.sh pause | continue  # SIGSTOP / SIGCONT: a clean CPU for a benchmark
#                                                      # (MINUTES counts wall time, paused or not)
#   bash scripts/prior_background.sh snapshot [DIR]    # prior.pt of the running state, not stopping it
#   bash scripts/prior_background.sh lifeboat DIR      # copy the fp16 lifeboat (to commit; no training G) into DIR
#
# State lives outside the repository, in $FAM_PRIOR_HOME (default ~/.cache/fam/prior):
#   run/      full training state (state.pt: exact resume), log.jsonl, FID cache
#   export/   lifeboat (prior.pt, g_fp16.pt, d_fp16.pt, meta.pt), samples.png, log copy
#   train.log stdout/stderr of the runs
# A machine that lost that folder resumes from the committed lifeboat (training/lifeboat/), after
# `prepare` rebuilds the pack: dvc pull, align all of LFW at 128 px (resumable), pack the train
# split at 64 px (measured on a fresh 2-core machine: ~11 minutes in all).
set -euo pipefail
cd "$(dirname "$0")/.."
home="${FAM_PRIOR_HOME:-$HOME/.cache/fam/prior}"
pack="${FAM_PRIOR_PACK:-$HOME/.cache/fam/packed/lfw64_q90.npz}"
aligned="${FAM_PRIOR_ALIGNED:-$HOME/.cache/fam/aligned/lfw128}"
committed=training/lifeboat
mkdir -p "$home"

prepare_pack() {  # $1: the venv
  local name want
  name=$(basename "$pack")
  want="lfw64_q90.npz"
  [[ "$name" == "$want" ]] || { echo "prepare builds $want; FAM_PRIOR_PACK names $name"; exit 2; }
  if [[ ! -d data/lfw/images ]]; then
    echo "== dvc pull data.dvc (LFW from the DVC remote)"
    "$1/bin/dvc" pull data.dvc
  fi
  # LFW crops are centred on their subject, so 'centre' resolves photos with several faces
  echo "== fam align: all of LFW at 128 px into $aligned (resumable; ~10 min on 2 cores)"
  "$1/bin/fam" align --input data/lfw/images --out "$aligned" --quiet \
    --set align.size=128 --set align.main_face=centre $([[ -f "$aligned/manifest.csv" ]] && echo --resume)
  echo "== pack: the train split at 64 px, JPEG q90"
  "$1/bin/python" -m benchmarks.pack_dataset --aligned "$aligned" --out "$(dirname "$pack")" \
    --resolution 64 --quality 90
}

case "${1:-status}" in
  start)
    minutes="${2:-600}"
    venv=$(bash scripts/setup_env.sh | tail -n 1)
    if pgrep -f "fam train-prior.*$home/run" >/dev/null; then echo "already running"; exit 0; fi
    [[ -f "$pack" ]] || prepare_pack "$venv"
    resume=()
    if [[ -f "$home/run/state.pt" ]]; then resume=(--resume)
    elif [[ -d "$home/export" && -f "$home/export/meta.pt" ]]; then resume=(--resume --lifeboat "$home/export")
    elif [[ -f "$committed/meta.pt" ]]; then resume=(--resume --lifeboat "$committed")
    fi
    echo "== $(date -u +%FT%TZ) start (${resume[*]:-scratch}), $minutes min" >> "$home/train.log"
    PYTHONUNBUFFERED=1 nohup nice -n 19 "$venv/bin/fam" train-prior --data "$pack" --out "$home/run" \
      --export "$home/export" --minutes "$minutes" "${resume[@]}" "${@:3}" >> "$home/train.log" 2>&1 &
    echo "started (pid $!); log: $home/train.log"
    ;;
  prepare)
    prepare_pack "$(bash scripts/setup_env.sh | tail -n 1)"
    ;;
  stop)
    if ! pgrep -f "fam train-prior.*$home/run" >/dev/null; then echo "not running"; exit 0; fi
    touch "$home/run/STOP"
    while pgrep -f "fam train-prior.*$home/run" >/dev/null; do sleep 2; done
    echo "stopped; $(tail -n 1 "$home/run/log.jsonl")"
    ;;
  pause | continue)
    signal=STOP; [[ $1 == continue ]] && signal=CONT
    if ! pkill "-$signal" -f "fam train-prior.*$home/run"; then echo "not running"; exit 0; fi
    echo "sent SIG$signal to the training"
    ;;
  snapshot)
    dest="${2:-$home/snapshot}"
    [[ -f "$home/run/state.pt" ]] || { echo "no training state in $home/run: start one with \`$0 start\`"; exit 2; }
    "$(bash scripts/setup_env.sh | tail -n 1)/bin/python" -c 'import sys
from pathlib import Path
from fam.training.prior import snapshot_prior
nimg = snapshot_prior(Path(sys.argv[1]), Path(sys.argv[2]))
print(f"{sys.argv[2]}/prior.pt at {nimg / 1000:.1f} kimg (the last checkpoint of the running state)")' \
      "$home/run/state.pt" "$dest"
    ;;
  status)
    pgrep -fa "fam train-prior.*$home/run" || echo "not running"
    [[ -f "$home/run/log.jsonl" ]] && tail -n 3 "$home/run/log.jsonl"
    ;;
  lifeboat)
    dest="${2:-$committed}"
    mkdir -p "$dest"
    # without the training G (g_fp16.pt): a resume starts G from the EMA generator (prior.pt),
    # which keeps the widened prior's lifeboat under the 25 MB a commit may add (~17 MB)
    cp "$home/export/prior.pt" "$home/export/d_fp16.pt" "$home/export/meta.pt" "$dest/"
    if [[ -f "$dest/g_fp16.pt" ]]; then
      rm "$dest/g_fp16.pt"  # an older lifeboat's G: it must not pair with this EMA and D
      echo "removed $dest/g_fp16.pt (the previous lifeboat's training G)"
    fi
    # the vision D head exists from training.prior.vision_start_kimg on (~0.7 MB)
    if [[ -f "$home/export/vision_head_fp16.pt" ]]; then cp "$home/export/vision_head_fp16.pt" "$dest/"; fi
    # the training log (~14 KB per 100 kimg): a resume from this lifeboat continues it
    if [[ -f "$home/export/log.jsonl" ]]; then cp "$home/export/log.jsonl" "$dest/"; fi
    du -sh "$dest"
    ;;
  *) echo "usage: $0 start [MINUTES] | prepare | stop | pause | continue | snapshot [DIR] | status | lifeboat [DIR]"; exit 2 ;;
esac
