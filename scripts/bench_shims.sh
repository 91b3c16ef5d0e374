#!/usr/bin/env bash
# The shim figures of issue 13: tasks/s (flmping -p: batched, the way a
# client submits many tasks) and p50 latency (flame_bench latency-stream:
# one task at a time) through the gRPC host shim (flmping-service, C) beside
# the stdio shim (cat in line mode: a program that costs nothing, so the
# figure is the shim's; the Python notes example in frame mode) and the
# REST shim (the FastAPI example under uvicorn, when a python with fastapi
# is given), all in the default process sandbox. The goal: stdio within 20%
# of the host shim's tasks/s. Prints a table and, last, one JSON line.
# Usage: scripts/bench_shims.sh [BUILD_DIR] [N] [PYTHON_WITH_FASTAPI]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
B=$(realpath "${1:-build}") n=${2:-20000} py=${3:-}
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FLAME_ENDPOINT="http://127.0.0.1:$port" HOME="$tmp"
"$B/daemons/flame-session-manager" --endpoint "$FLAME_ENDPOINT" --storage none >"$tmp/sm.log" 2>&1 &
pids="$pids $!"
"$B/daemons/flame-executor-manager" --endpoint "$FLAME_ENDPOINT" --work-dir "$tmp/work" \
    --resources cpu=4,mem=4g >"$tmp/em.log" 2>&1 &
pids="$pids $!"
for _ in $(seq 100); do "$B/cli/flmctl" list -n 2>/dev/null | grep -q " Ready " && break; sleep 0.1; done
cat >"$tmp/apps.yaml" <<YAML
metadata: {name: host-c}
spec: {command: flmping-service, max_instances: 1}
---
metadata: {name: stdio-cat}
spec: {shim: stdio, stdio_mode: line, command: /bin/cat, max_instances: 1}
---
metadata: {name: stdio-py}
spec: {shim: stdio, command: /usr/bin/python3, arguments: [$root/tests/ecosystem/shims/echo.py],
       max_instances: 1}
YAML
if [ -n "$py" ]; then
    cat >>"$tmp/apps.yaml" <<YAML
---
metadata: {name: rest-fastapi}
spec: {shim: rest, command: $py, max_instances: 1,
       arguments: [-m, uvicorn, --app-dir, $root/tests/ecosystem/shims, "echo_app:app", --host,
                   127.0.0.1, --port, "\$PORT", --log-level, warning]}
YAML
fi
"$B/cli/flmctl" register -f "$tmp/apps.yaml" >/dev/null
tput() { "$B/cli/flmping" -a "$1" -t "$2" -p | awk '/Throughput:/ {print $2}'; }
p50() { "$B/tests/flame_bench" latency-stream "$2" "$1" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_p50_us"])'; }
apps="host-c stdio-cat stdio-py"
[ -n "$py" ] && apps="$apps rest-fastapi"
json="{"
printf '%-14s %12s %12s\n' app tasks/s p50_us
for a in $apps; do
    m=$n l=2000
    [ $a = rest-fastapi ] && m=$((n / 10)) l=500
    tput "$a" 200 >/dev/null # bind and warm
    t=$(tput "$a" "$m")
    p=$(p50 "$a" "$l")
    printf '%-14s %12s %12s\n' "$a" "$t" "$p"
    json="$json\"${a}_tasks_per_s\": $t, \"${a}_p50_us\": $p, "
done
echo "${json%, }}"
