#!/usr/bin/env bash
# The shim figures of issue 13: tasks/s (flmping -p: batched, the way a
# client submits many tasks) and p50 latency (flame_bench latency-stream:
# one task at a time) through the gRPC host shim (flmping-service, C) beside
# the stdio shim (cat in line mode: a program that costs nothing, so the
# figure is the shim's; the Python echo in frame mode) and the REST shim
# (the FastAPI echo under uvicorn, when a python with fastapi is given), all
# in the default process sandbox, one executor. The goal: stdio within 20%
# of the host shim's tasks/s. The machine may be loaded: the apps are
# measured in turns, ROUNDS rounds (each in another order), and each
# stdio/host ratio is taken within a round; the figures are the medians.
# Prints the rounds and a table on stderr and, as its last stdout line, one
# JSON object (keys shims_*).
# Usage: scripts/bench_shims.sh [BUILD_DIR] [N] [PYTHON_WITH_FASTAPI] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
B=$(realpath "${1:-build}") n=${2:-20000} py=${3:-} rounds=${4:-3}
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
declare -A T P
for a in $apps; do tput "$a" 200 >/dev/null; done # bind and warm
for r in $(seq "$rounds"); do
    set -- $apps
    for _ in $(seq $(((r - 1) % $#))); do set -- "${@:2}" "$1"; done # another order each round
    line="round $r:"
    for a in "$@"; do
        m=$n l=2000
        [ $a = rest-fastapi ] && m=$((n / 10)) l=500
        T[$a]="${T[$a]:-} $(tput "$a" "$m")"
        P[$a]="${P[$a]:-} $(p50 "$a" "$l")"
    done
    for a in $apps; do line="$line $a $(echo ${T[$a]} | awk '{print $NF}')"; done
    echo "$line tasks/s" >&2
done
# medians, and each shim's ratio to the host shim within each round
python3 - "$apps" "$(for a in $apps; do echo "$a:${T[$a]}:${P[$a]}"; done)" <<'PY'
import json, statistics, sys
apps = sys.argv[1].split()
t, p = {}, {}
for row in sys.argv[2].splitlines():
    a, ts, ps = row.split(":")
    t[a], p[a] = [float(x) for x in ts.split()], [float(x) for x in ps.split()]
keys = {"host-c": "host", "stdio-cat": "stdio_line", "stdio-py": "stdio_frame",
        "rest-fastapi": "rest"}
what = {"host-c": "gRPC host, flmping-service (C)", "stdio-cat": "stdio line, /bin/cat",
        "stdio-py": "stdio frame, Python echo", "rest-fastapi": "REST, FastAPI under uvicorn"}
out = {}
print(f"{'shim':34} {'tasks/s':>10} {'p50 us':>8} {'vs host':>8}", file=sys.stderr)
for a in apps:
    k = keys[a]
    out[f"shims_{k}_tasks_per_s"] = round(statistics.median(t[a]), 1)
    out[f"shims_{k}_p50_us"] = round(statistics.median(p[a]), 1)
    vs = ""
    if a != "host-c":
        r = statistics.median(x / h for x, h in zip(t[a], t["host-c"]))
        out[f"shims_{k}_vs_host"] = round(r, 3)
        vs = f"{r:.0%}"
    print(f"{what[a]:34} {out[f'shims_{k}_tasks_per_s']:>10} {out[f'shims_{k}_p50_us']:>8} "
          f"{vs:>8}", file=sys.stderr)
print(json.dumps(out))
PY
