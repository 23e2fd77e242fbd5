#!/usr/bin/env bash
# One command, offline: start a local Prefect server (sqlite) and a process worker, register the
# */local deployments of prefect.yaml, so that `prefect deployment run 'protect-dataset/local'`
# runs here. State lives in runs/prefect-home; `scripts/deploy_local.sh stop` ends both processes.
#   PORT (default 4200)  PYTHON (default: python on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python}"
port="${PORT:-4200}"
home="$PWD/runs/prefect-home"
mkdir -p "$home"
export PREFECT_HOME="$home" PREFECT_API_URL="http://127.0.0.1:$port/api"
export PREFECT_SERVER_ANALYTICS_ENABLED=false MLFLOW_DISABLE_TELEMETRY=true FAM_PROJECT_DIR="$PWD"
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120

stop() {  # only the processes this script started, by their recorded ids; worker first
  for name in worker server; do
    [[ -f "$home/$name.pid" ]] || continue
    pid="$(cat "$home/$name.pid")"
    kill -INT "$pid" 2>/dev/null || true  # Prefect shuts down cleanly on Ctrl-C (SIGINT)
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    echo "stopped $name $pid"
    rm -f "$home/$name.pid"
  done
}
if [[ "${1:-}" == "stop" ]]; then stop; exit 0; fi

running() { [[ -f "$home/$1.pid" ]] && kill -0 "$(cat "$home/$1.pid")" 2>/dev/null; }

if ! running server; then
  echo "== starting Prefect server on $PREFECT_API_URL (log: $home/server.log)"
  nohup "$py" -m prefect server start --host 127.0.0.1 --port "$port" >"$home/server.log" 2>&1 &
  echo $! >"$home/server.pid"
fi
for _ in $(seq 1 120); do
  if "$py" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1]+'/health', timeout=2)" \
      "$PREFECT_API_URL" 2>/dev/null; then break; fi
  sleep 1
done
"$py" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1]+'/health', timeout=2)" "$PREFECT_API_URL" \
  || { echo "server did not start; see $home/server.log" >&2; exit 1; }

"$py" -m prefect work-pool inspect fam-local >/dev/null 2>&1 \
  || "$py" -m prefect work-pool create fam-local --type process
if [[ ! -f runs/keys/main.fam-key ]]; then
  "$py" -m fam key new --out runs/keys/main.fam-key
fi
echo "== deploying protect-dataset/local, evaluate-release/local, revoke-key/local"
"$py" -m prefect --no-prompt deploy -n 'protect-dataset/local' -n 'evaluate-release/local' -n 'revoke-key/local'

if ! running worker; then
  echo "== starting a process worker on pool fam-local (log: $home/worker.log)"
  nohup "$py" -m prefect worker start --pool fam-local --type process >"$home/worker.log" 2>&1 &
  echo $! >"$home/worker.pid"
fi
cat <<MSG
== ready. In this shell:
  export PREFECT_API_URL=$PREFECT_API_URL PREFECT_HOME=$home
  $py -m prefect deployment run 'protect-dataset/local' --watch
  (UI: http://127.0.0.1:$port ; stop both: scripts/deploy_local.sh stop)
MSG
