#!/usr/bin/env bash
# The project's test command (README): sets up the environment if needed, pulls the LFW data
# from the DVC remote, then runs the whole suite (unit, model, data and flow tests).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m unit -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(bash scripts/setup_env.sh | tail -n 1)
# shellcheck disable=SC1091
source "$venv/bin/activate"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}" MLFLOW_DISABLE_TELEMETRY=true PREFECT_SERVER_ANALYTICS_ENABLED=false
dvc pull -q data.dvc
bash scripts/fetch_faceres.sh   # the black-box evaluator (npm registry; never committed)
exec python -m pytest "$@"
