#!/usr/bin/env bash
# Integration: nothing waits silently for ever. A real session manager and
# executor manager (2 CPUs); our CLIs against sessions that can never get
# an executor (no node yet, a resreq no node fits, a missing command) must
# exit with the session's own reason within a bound; a relative command
# is refused at registration; flmping rides out a kill -9 and restart of
# the session manager, five times in a row. Usage: test_waits.sh BUILD_DIR
set -uo pipefail
build="$1"
sm="$build/daemons/flame-session-manager"
em="$build/daemons/flame-executor-manager"
flmctl="$build/cli/flmctl"
flmping="$build/cli/flmping"
flmexec="$build/cli/flmexec"
tmp=$(mktemp -d)
. "$(dirname "$0")/tap.sh"
smpid= empid=
cleanup() {
    [ -n "$empid" ] && kill "$empid" 2>/dev/null
    [ -n "$smpid" ] && kill "$smpid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/cluster.yaml" <<EOF
cluster:
  name: waits-test
  endpoint: "http://127.0.0.1:$port"
  storage: "sqlite://$tmp/flame.db"
  resreq: "cpu=1,mem=64m"
  schedule_interval: 100
  recovery:
    session:
      retry_limits: 3
EOF
export FLAME_ENDPOINT="http://127.0.0.1:$port"

start_sm() {
    "$sm" --config "$tmp/cluster.yaml" >>"$tmp/sm.log" 2>&1 &
    smpid=$!
    for _ in $(seq 200); do "$flmctl" list -a >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "# the session manager did not come up:"; sed 's/^/#   /' "$tmp/sm.log" | tail -20
    return 1
}
start_sm || exit 1

# bounded: a wait that hangs is killed by timeout (exit 124), never passes
bounded() { timeout 90 "$@"; }

check "flmping: no executor manager at all, says so and exits" 1 'no executor manager has registered a node' -- \
    bounded "$flmping" -t 1

"$em" --endpoint "$FLAME_ENDPOINT" --work-dir "$tmp/work" --node waits-node \
    --resources cpu=2,mem=1g >"$tmp/em.log" 2>&1 &
empid=$!
for _ in $(seq 200); do "$flmctl" list -n 2>/dev/null | grep -q 'waits-node.*Ready' && break; sleep 0.1; done

check "flmping: no node fits cpu=64, says so and exits" 1 'No node can run session .*cpu=64' -- \
    bounded "$flmping" -t 2 -r cpu=64,mem=64m

printf 'metadata:\n  name: missing-cmd\nspec:\n  command: /nonexistent/flame-service\n' >"$tmp/missing.yaml"
check "register an application whose command is missing" 0 'was registered' -- \
    "$flmctl" register -f "$tmp/missing.yaml"
check "flmping: the binds keep failing, says so and exits" 1 \
    'Session retry limit reached after 3/3 failed attempts.*the last failure: Executor .* on node waits-node failed to bind session with return_code' -- \
    bounded "$flmping" -t 2 -a missing-cmd
check "flmexec: the same, with the bind's message" 1 'the script cannot run: .*retry limit reached' -- \
    bounded "$flmexec" -a missing-cmd -c 'echo hi'
sid=$("$flmctl" list -s | grep -o 'missing-cmd-[a-z0-9]*' | head -1)
check "flmctl view shows the events that say why" 0 '1002' -- "$flmctl" view -s "$sid"

# Wasm and Cri: no executor manager of ours runs them; the session says so
for shim in Wasm Cri; do
    printf 'metadata:\n  name: app-%s\nspec:\n  shim: %s\n  command: /bin/true\n' "$shim" "$shim" \
        >"$tmp/$shim.yaml"
    check "register a $shim application" 0 'was registered' -- "$flmctl" register -f "$tmp/$shim.yaml"
    check "flmping: a $shim session no node runs says which shim and exits" 1 \
        "No node can run session .*uses the $shim shim, which no executor manager" -- \
        bounded "$flmping" -t 1 -a "app-$shim"
done

printf 'metadata:\n  name: relative-cmd\nspec:\n  command: build/examples/pi_service\n' >"$tmp/rel.yaml"
check "a relative command path is refused at registration" 1 'command "build/examples/pi_service" is a relative path' -- \
    "$flmctl" register -f "$tmp/rel.yaml"
printf 'metadata:\n  name: relative-wd\nspec:\n  command: examples/pi_service\n  working_directory: %s\n' \
    "$(cd "$build" && pwd)" >"$tmp/rel-wd.yaml"
check "a relative command with a working_directory is taken" 0 'was registered' -- \
    "$flmctl" register -f "$tmp/rel-wd.yaml"

check "flmping runs on the cluster" 0 '' -- bounded "$flmping" -t 20

# flmping rides out a session-manager restart (kill -9) mid-run, 5 times
for i in 1 2 3 4 5; do
    "$flmping" -t 300 -d 10 >"$tmp/ping-$i.out" 2>&1 &
    ping=$!
    sleep 0.7
    kill -9 "$smpid"; wait "$smpid" 2>/dev/null
    start_sm || { bad "restart $i: the session manager did not come back"; break; }
    timeout 120 tail --pid="$ping" -f /dev/null
    wait "$ping"; rc=$?
    if [ "$rc" -eq 0 ] && grep -q "tasks was completed" "$tmp/ping-$i.out"; then
        ok "flmping rides out a session-manager kill -9 (run $i)"
    else
        bad "flmping rides out a session-manager kill -9 (run $i: exit $rc)" "$(tail -5 "$tmp/ping-$i.out")"
    fi
done

check "a first call to an endpoint nobody serves fails at once" 1 'flmctl: ' -- \
    timeout 10 "$flmctl" --endpoint "http://127.0.0.1:1" list -s

echo "$pass passed, $failn failed"
[ "$failn" -eq 0 ]
