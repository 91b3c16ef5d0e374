#!/usr/bin/env bash
# Session start (issue 15 item 2): from CreateSession to the first task's
# output, p50/p99, for a C service (flmping-service, host shim) and a
# flamepy 0.6 echo service (tests/bench/echo_service.py, the venv python of
# scripts/pyvenv.sh), both in the default process sandbox, cold (executor
# manager with --warm-pool 0: every session spawns its service) and warm
# (the warm pool: a service started ahead waits for each session).
#
# A/B in the same run: two clusters side by side (one session manager and
# one executor manager each, the same build), measured alternately in
# rounds, so that the machine's load falls on both alike. Each round opens
# a few sessions one after the other, GAP ms apart (the pool refills in the
# gap, as between an agent's sessions; cold sessions get the same gap).
# One session per application and cluster first, not counted: a node's
# first session of an application is always cold (nothing says yet that
# the application is wanted there).
#
# Human lines on stderr; the last stdout line is one JSON object (keys
# start_*). Usage: scripts/bench_start.sh [BUILD_DIR] [ROUNDS]
#   env: START_C_PER_ROUND (6), START_PY_PER_ROUND (3), START_C_GAP_MS (200),
#        START_PY_GAP_MS (2500), START_PYTHON (a python with flamepy; default:
#        scripts/pyvenv.sh's; "none" skips the flamepy service)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
B=$(realpath "${1:-build}") rounds=${2:-3}
c_per=${START_C_PER_ROUND:-6} py_per=${START_PY_PER_ROUND:-3}
c_gap=${START_C_GAP_MS:-200} py_gap=${START_PY_GAP_MS:-2500}
tmp=$(mktemp -d)
chmod 755 "$tmp"
pids=
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
export HOME="$tmp" FLAME_CONFIG="$tmp/none.yaml"
say() { echo "$*" >&2; }

py=${START_PYTHON:-}
if [ -z "$py" ]; then
    py=$(scripts/pyvenv.sh 2>"$tmp/pyvenv.log" | tail -1) || py=
    [ -n "$py" ] || say "bench_start: no flamepy venv (scripts/pyvenv.sh failed: $(tail -1 "$tmp/pyvenv.log")); the flamepy service is skipped"
fi
[ "$py" = none ] && py=

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# cluster NAME WARM_POOL: a session manager and an executor manager
cluster() {
    local name=$1 warm=$2 port
    port=$(free_port)
    mkdir -p "$tmp/$name"
    printf 'cluster:\n  endpoint: "http://127.0.0.1:%s"\n  storage: none\n' "$port" \
        >"$tmp/$name/cluster.yaml"
    "$B/daemons/flame-session-manager" --config "$tmp/$name/cluster.yaml" >"$tmp/$name/sm.log" 2>&1 &
    pids="$pids $!"
    "$B/daemons/flame-executor-manager" --endpoint "http://127.0.0.1:$port" --node "$name" \
        --work-dir "$tmp/$name/work" --resources cpu=4,mem=8g --warm-pool "$warm" \
        >"$tmp/$name/em.log" 2>&1 &
    pids="$pids $!"
    eval "ep_$name=http://127.0.0.1:$port"
    for _ in $(seq 200); do
        FLAME_ENDPOINT="http://127.0.0.1:$port" "$B/cli/flmctl" list -n 2>/dev/null | grep -q " Ready " && break
        sleep 0.1
    done
    {
        echo "metadata: {name: start-c}"
        echo "spec: {command: flmping-service}"
        if [ -n "$py" ]; then
            echo "---"
            echo "metadata: {name: start-py}"
            echo "spec: {command: $py, arguments: [$root/tests/bench/echo_service.py],"
            echo "       environments: {PYTHONUNBUFFERED: \"1\"}}"
        fi
    } >"$tmp/$name/apps.yaml"
    FLAME_ENDPOINT="http://127.0.0.1:$port" "$B/cli/flmctl" register -f "$tmp/$name/apps.yaml" >/dev/null
}
cluster cold 0
cluster warm 2

# run CLUSTER APP N GAP: appends the samples to $tmp/CLUSTER-APP
run() {
    local ep
    eval "ep=\$ep_$1"
    FLAME_ENDPOINT="$ep" "$B/tests/flame_start_bench" "$2" "$3" "$4" | tail -1 >>"$tmp/$1-$2"
}
apps="start-c"
[ -n "$py" ] && apps="$apps start-py"
for a in $apps; do
    for c in cold warm; do
        run "$c" "$a" 1 1000 # the first session here: cold in both
        : >"$tmp/$c-$a"
    done
done
say "bench_start: $rounds rounds, alternately cold and warm: $c_per C sessions ${c_gap} ms apart$([ -n "$py" ] && echo ", $py_per flamepy sessions ${py_gap} ms apart")"
for r in $(seq "$rounds"); do
    for c in cold warm; do
        run "$c" start-c "$c_per" "$c_gap"
        [ -n "$py" ] && run "$c" start-py "$py_per" "$py_gap"
    done
    say "  round $r/$rounds done"
done
say "  processes started ahead: $(grep -c 'warm pool: .* ready' "$tmp/warm/em.log" || true) (warm), $(grep -c 'warm pool: .* ready' "$tmp/cold/em.log" || true) (cold)"

python3 - "$tmp" "$([ -n "$py" ] && echo 1 || echo 0)" "$(nproc)" <<'EOF'
import json, sys
tmp, have_py, cpus = sys.argv[1], sys.argv[2] == "1", sys.argv[3]

def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * (len(v) - 1) + 0.5))]

out = {}
rows = []
for app, key in (("start-c", "c"), ("start-py", "py")):
    for mode in ("cold", "warm"):
        k = f"start_{key}_{mode}"
        if app == "start-py" and not have_py:
            out[k + "_p50_ms"] = out[k + "_p99_ms"] = None
            continue
        v = []
        for line in open(f"{tmp}/{mode}-{app}"):
            v += json.loads(line)["samples_ms"]
        out[k + "_p50_ms"] = round(pct(v, 50), 2)
        out[k + "_p99_ms"] = round(pct(v, 99), 2)
        out[k + "_n"] = len(v)
        rows.append((app, mode, len(v), out[k + "_p50_ms"], out[k + "_p99_ms"]))
print(f"{'service':10} {'mode':5} {'n':>4} {'p50_ms':>9} {'p99_ms':>9}", file=sys.stderr)
for r in rows:
    print(f"{r[0]:10} {r[1]:5} {r[2]:>4} {r[3]:>9} {r[4]:>9}", file=sys.stderr)
out["start_cpus"] = int(cpus)
print(json.dumps(out))
EOF
