#!/usr/bin/env bash
# The project's test command (README): the whole suite, unit + model + data + flow tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" MLFLOW_DISABLE_TELEMETRY=true PREFECT_SERVER_ANALYTICS_ENABLED=false
exec python -m pytest "$@"
