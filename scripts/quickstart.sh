#!/usr/bin/env bash
# A local Flame cluster in one command: installs missing Debian packages (as
# root), builds, starts a session manager and an executor manager in the
# background (state and logs under $FLAME_HOME, default ~/.flame), runs
# flmping and `flmctl list -s`, and leaves the cluster running.
#   scripts/quickstart.sh          start (or reuse) the cluster and ping it
#   scripts/quickstart.sh --stop   stop it
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export FLAME_HOME="${FLAME_HOME:-$HOME/.flame}"
port="${FLAME_PORT:-8080}"
pidfile_sm="$FLAME_HOME/session-manager.pid"
pidfile_em="$FLAME_HOME/executor-manager.pid"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
    for f in "$pidfile_em" "$pidfile_sm"; do
        if alive "$f"; then
            pid=$(cat "$f")
            kill "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            echo "stopped $(basename "$f" .pid) ($pid)"
        fi
        rm -f "$f"
    done
}

if [ "${1:-}" = "--stop" ]; then
    stop
    exit 0
fi

scripts/deps.sh
echo "== building"
scripts/build.sh build
mkdir -p "$FLAME_HOME/logs"
cat >"$FLAME_HOME/cluster.yaml" <<YAML
cluster:
  name: flame
  endpoint: "http://127.0.0.1:$port"
  storage: "sqlite://$FLAME_HOME/flame.db"
  resreq: "cpu=1,mem=1g"
  schedule_interval: 500
YAML
if [ ! -f "$FLAME_HOME/flame.yaml" ]; then
    cat >"$FLAME_HOME/flame.yaml" <<YAML
current-context: flame
contexts:
  - name: flame
    cluster:
      endpoint: "http://127.0.0.1:$port"
YAML
fi
export FLAME_ENDPOINT="http://127.0.0.1:$port"
flmctl="$root/build/cli/flmctl"

if ! alive "$pidfile_sm"; then
    setsid nohup "$root/build/daemons/flame-session-manager" --config "$FLAME_HOME/cluster.yaml" \
        >>"$FLAME_HOME/logs/session-manager.log" 2>&1 </dev/null &
    echo $! >"$pidfile_sm"
fi
for i in $(seq 100); do
    "$flmctl" list -a >/dev/null 2>&1 && break
    if ! alive "$pidfile_sm" || [ "$i" = 100 ]; then
        echo "quickstart: the session manager did not start; see $FLAME_HOME/logs/session-manager.log" >&2
        tail -5 "$FLAME_HOME/logs/session-manager.log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! alive "$pidfile_em"; then
    setsid nohup "$root/build/daemons/flame-executor-manager" --config "$FLAME_HOME/cluster.yaml" \
        --work-dir "$FLAME_HOME/work" >>"$FLAME_HOME/logs/executor-manager.log" 2>&1 </dev/null &
    echo $! >"$pidfile_em"
fi
for i in $(seq 100); do
    "$flmctl" list -n 2>/dev/null | grep -q " Ready " && break
    if ! alive "$pidfile_em" || [ "$i" = 100 ]; then
        echo "quickstart: the executor manager did not register; see $FLAME_HOME/logs/executor-manager.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo "== cluster up at $FLAME_ENDPOINT (state and logs in $FLAME_HOME)"
"$root/build/cli/flmping"
echo
"$flmctl" list -s
echo
echo "The cluster keeps running: build/cli/flmctl list -s | build/cli/flmping -t 1000 | scripts/quickstart.sh --stop"
