#!/usr/bin/env bash
# Issue-4 evaluation run (interim generator: random-weight StyleGAN2 64 px; see params.yaml)
set -euo pipefail
cd /work/main
export PYTHONPATH=/work/main OMP_NUM_THREADS=2 MLFLOW_DISABLE_TELEMETRY=true
fam() { /work/venv/bin/python -m fam "$@"; }
E=/work/evalrun
S=(--set models.inverter.steps=50 --set groups.max_batch_views=20)
P=(--persons Bashar_Assad,David_Stern,Herb_Sendek,Aaron_Sorkin,Bruce_Weber,Chuck_Amato,Daryl_Hannah)
t0=$SECONDS
mkdir -p $E/keys
[[ -f $E/keys/a ]] || fam key new --out $E/keys/a
[[ -f $E/keys/b ]] || fam key new --out $E/keys/b
echo "== invert $((SECONDS-t0))"; [[ -f $E/inv/inversions.pt ]] || fam invert --input $E/faces --out $E/inv --quiet "${P[@]}" "${S[@]}"
echo "== protect a $((SECONDS-t0))"; fam protect --input $E/faces --key-file $E/keys/a --out $E/rel_a --inversions $E/inv --resume --quiet "${P[@]}" "${S[@]}"
echo "== protect naive $((SECONDS-t0))"; fam protect --input $E/faces --key-file $E/keys/a --out $E/rel_naive --inversions $E/inv --resume --quiet "${P[@]}" "${S[@]}" --set optimise.steps=0
echo "== protect b $((SECONDS-t0))"; fam protect --input $E/faces --key-file $E/keys/b --out $E/rel_b --inversions $E/inv --resume --quiet "${P[@]}" "${S[@]}"
echo "== evaluate $((SECONDS-t0))"; rm -rf $E/eval
fam evaluate --aligned $E/al_faces --release $E/rel_a --release2 $E/rel_b --naive-release $E/rel_naive \
  --thresholds-from $E/al_imp --key-file $E/keys/a --out $E/eval "${S[@]}"
echo "== done $((SECONDS-t0)) s"
