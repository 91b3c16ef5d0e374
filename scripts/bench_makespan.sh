#!/usr/bin/env bash
# Makespan of tasks that take time (issue 15, item 1): one node with room
# for 4 executors, the built-in flmping service through the host shim. Each
# case opens its sessions, waits until they hold the 4 executors (Bound),
# then times the first submission to the last outcome, against the ideal
# (ceil(tasks / 4) x duration). The last line is one JSON object.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh build >/dev/null
B="$PWD/build"
tmp=$(mktemp -d)
sm_pid= em_pid=
cleanup() {
    [ -n "$em_pid" ] && kill "$em_pid" 2>/dev/null
    [ -n "$sm_pid" ] && kill "$sm_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FLAME_ENDPOINT="http://127.0.0.1:$port"
"$B/daemons/flame-session-manager" --endpoint "$FLAME_ENDPOINT" --storage "sqlite://$tmp/flame.db" \
    >"$tmp/sm.log" 2>&1 &
sm_pid=$!
for _ in $(seq 100); do "$B/cli/flmctl" list -n >/dev/null 2>&1 && break; sleep 0.1; done
"$B/daemons/flame-executor-manager" --endpoint "$FLAME_ENDPOINT" --work-dir "$tmp/work" \
    --resources cpu=4,mem=8g >"$tmp/em.log" 2>&1 &
em_pid=$!
for _ in $(seq 100); do "$B/cli/flmctl" list -n 2>/dev/null | grep -q " Ready " && break; sleep 0.1; done
echo "== makespan: N tasks of MS ms on 4 bound executors (flame_bench makespan)" >&2
lines=()
for c in "100 10 4" "1000 10 4" "100 50 4" "16 500 4" "40 100 4" "8 1000 4" "5 1000 4" "160 100 4 2"; do
    lines+=("$("$B/tests/flame_bench" makespan $c)")
done
python3 - "${lines[@]}" <<'PY'
import json, sys
out = {}
print(f"{'case (1 node, 4 bound executors)':36} {'makespan (s)':>12} {'ideal (s)':>10} {'over':>7}")
for line in sys.argv[1:]:
    r = json.loads(line)
    name = f"{r['sessions']} x {r['tasks']} tasks of {r['ms']} ms"
    over = 100 * (r["makespan_s"] / r["ideal_s"] - 1)
    print(f"{name:36} {r['makespan_s']:>12.3f} {r['ideal_s']:>10.3f} {over:>6.1f}%")
    out[f"makespan_{r['sessions']}x{r['tasks']}x{r['ms']}ms_s"] = r["makespan_s"]
    assert r["succeed"] == r["tasks"] * r["sessions"], line
print(json.dumps(out))
PY
