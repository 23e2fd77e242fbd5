#!/usr/bin/env bash
# Create or reuse a virtual environment keyed by the hash of the dependency files, and install
# the project into it. `--print-venv` only prints where that environment lives.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${FAM_VENV_ROOT:-$HOME/.cache/fam/venvs}"
key=$(cat requirements.lock pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)
venv="$root/$key"
if [[ "${1:-}" == "--print-venv" ]]; then echo "$venv"; exit 0; fi
# pip prints one warning per missing local index folder here; keep its exit status, drop the noise.
quiet() { "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
if [[ ! -f "$venv/.complete" ]]; then
  echo "== creating environment $venv (first run takes a few minutes: torch is large)"
  rm -rf "$venv"
  mkdir -p "$root"
  python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
  quiet "$venv/bin/python" -m pip install -q -r requirements.lock
  # Only its MTCNN weights are used; its own pins (torch 2.2, numpy<2) would break the stack.
  quiet "$venv/bin/python" -m pip install -q --no-deps facenet-pytorch==2.6.0
  "$venv/bin/python" -c "import torch, torchvision, dlib, prefect, mlflow, dvc, great_expectations"
  touch "$venv/.complete"
fi
quiet "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
echo "$venv"
