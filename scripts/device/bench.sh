#!/usr/bin/env bash
# Throughput of one prior training step on the GPU at the configured size (seconds, not minutes).
set -euo pipefail
export PYTHONUNBUFFERED=1
python3 -m benchmarks.bench_train_step --steps 20 --device cuda
python3 -m benchmarks.bench_train_step --steps 20 --device cuda --batch 128
