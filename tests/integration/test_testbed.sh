#!/usr/bin/env bash
# Integration: a cluster spread over network namespaces (scripts/testbed.sh),
# with mutual TLS and certificates that carry the namespaces' addresses:
# the session manager on node 0, executor managers on nodes 1-3, clients
# (flmping, flmctl, and the Python and Go bindings) on node 4. Checks that tasks spread over the nodes,
# then node failure in the middle of a 20,000-task run: an executor manager
# killed (kill -9), another cut off with its connection left open (the
# session manager finds it by cluster.node_timeout), both rejoining; then a
# session manager killed and restarted on the same sqlite while a node is
# cut off. Prints the figures: detection time, tasks re-run, tasks lost.
# Skips (exit 77, with the reason) where network namespaces cannot be made.
# Usage: test_testbed.sh SOURCE_DIR BUILD_DIR [bindings|sanitize]
set -uo pipefail
src="$(cd "$1" && pwd)" build="$(cd "$2" && pwd)"
# "bindings": run the Python and Go clients too; "sanitize": the sanitizer
# build (no bindings; executors at the none level: ASan's shadow memory
# does not fit under the process level's RLIMIT_AS)
mode=${3:-}
bindings="" sandbox=()
[ "$mode" = bindings ] && bindings=1
[ "$mode" = sanitize ] && sandbox=(--sandbox none)
. "$(dirname "$0")/tap.sh"
tb="$src/scripts/testbed.sh"
if ! why=$("$tb" check 2>&1); then
    echo "SKIP: $why"
    exit 77
fi
tmp=$(mktemp -d)
chmod 755 "$tmp"
TIMEOUT_MS=3000   # cluster.node_timeout of this bed
TASKS=20000
id=""
cleanup() {
    [ -n "$id" ] && "$tb" down "$id"
    if [ -n "${TESTBED_KEEP:-}" ]; then echo "# kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
out=$("$tb" up 5) || { echo "testbed up failed: $out"; exit 1; }
id=$(head -1 <<<"$out")
echo "# bed $id: $(tail -n +2 <<<"$out" | tr '\n' ';')"
on() { local i=$1; shift; "$tb" exec "$id" "$i" "$@"; }
sm_ip=$("$tb" addr "$id" 0)
port=18080
endpoint="https://$sm_ip:$port"

# ---- certificates: the quickstart's flmadm flow, the server's with its address ----
adm="$build/cli/flmadm"
{
    "$adm" ca init --dir "$tmp/ca" --name "Flame testbed CA" &&
        "$adm" issue server flame-session-manager --dir "$tmp/ca" --out "$tmp/certs/server" --san "IP:$sm_ip" &&
        "$adm" issue user admin --role admin --dir "$tmp/ca" --out "$tmp/certs/user" &&
        for i in 1 2 3; do "$adm" issue node "node$i" --dir "$tmp/ca" --out "$tmp/certs/node" || exit 1; done
} >"$tmp/adm.log" 2>&1 && ok "flmadm: a CA, the server's certificate with IP:$sm_ip, three nodes, an admin" ||
    bad "flmadm" "$(cat "$tmp/adm.log")"
if command -v openssl >/dev/null; then
    openssl x509 -noout -ext subjectAltName -in "$tmp/certs/server/flame-session-manager.crt" 2>/dev/null |
        grep -q "IP Address:$sm_ip" && ok "the server certificate carries $sm_ip" || bad "no SAN $sm_ip"
fi # else the mTLS connections below show it

cat >"$tmp/cluster.yaml" <<YAML
cluster:
  name: testbed
  endpoint: "$endpoint"
  storage: "sqlite://$tmp/flame.db"
  schedule_interval: 200
  node_timeout: ${TIMEOUT_MS}ms
  tls:
    cert_file: "$tmp/certs/server/flame-session-manager.crt"
    key_file: "$tmp/certs/server/flame-session-manager.key"
    ca_file: "$tmp/ca/ca.crt"
    mutual: true
YAML
cat >"$tmp/flame.yaml" <<YAML
current-context: bed
contexts:
  - name: bed
    cluster:
      endpoint: "$endpoint"
      tls:
        ca_file: "$tmp/ca/ca.crt"
        cert_file: "$tmp/certs/user/admin.crt"
        key_file: "$tmp/certs/user/admin.key"
YAML
export FLAME_CONFIG="$tmp/flame.yaml"
unset FLAME_ENDPOINT FLAME_CA_FILE FLAME_CERT_FILE FLAME_KEY_FILE
flmctl() { on 4 timeout 60 "$build/cli/flmctl" "$@"; }

sm_pid=""
start_sm() {
    "$tb" exec "$id" 0 "$build/daemons/flame-session-manager" --config "$tmp/cluster.yaml" >>"$tmp/sm.log" 2>&1 &
    sm_pid=$!
    for _ in $(seq 200); do flmctl list -a >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}
declare -A em_pid
start_em() { # I
    local i=$1
    "$tb" exec "$id" "$i" "$build/daemons/flame-executor-manager" --config "$tmp/cluster.yaml" --node "node$i" \
        --work-dir "$tmp/work$i" --resources cpu=4,mem=16g "${sandbox[@]}" --sandbox-uids "$((200000 + i * 1000))-$((200999 + i * 1000))" \
        --tls-cert "$tmp/certs/node/node$i.crt" --tls-key "$tmp/certs/node/node$i.key" \
        >>"$tmp/em$i.log" 2>&1 &
    em_pid[$i]=$!
}
# awk prelude: c["name"] = the column of each header (lower case), so the
# checks do not depend on the order of flmctl's columns
HDR='NR == 1 { for (i = 1; i <= NF; i++) c[tolower($i)] = i; if (!c["state"]) c["state"] = c["status"]; next }'
node_state() { flmctl list -n 2>/dev/null | awk -v n="$1" "$HDR"' $1 == n { print $c["state"] }'; }
wait_state() { # NODE STATE SECONDS
    local end=$((SECONDS + $3))
    while [ $SECONDS -lt $end ]; do [ "$(node_state "$1")" = "$2" ] && return 0; sleep 0.1; done
    return 1
}
now_ms() { date +%s%3N; }
logs() { for f in "$tmp"/*.log; do echo "== $f"; tail -n 15 "$f"; done; }
# Succeed and Failed of the session whose ID starts with $1
counts() { flmctl list -s | awk -v p="$1" "$HDR"' index($1, p) == 1 { print $c["succeed"], $c["failed"] }'; }

start_sm && ok "the session manager serves mTLS on $endpoint (node 0)" || { bad "session manager" "$(logs)"; exit 1; }
for i in 1 2 3; do start_em "$i"; done
all=1
for i in 1 2 3; do wait_state "node$i" Ready 30 || all=0; done
[ "$all" = 1 ] && ok "three executor managers (nodes 1-3) registered over mTLS" || bad "nodes" "$(flmctl list -n; logs)"
check "a plaintext client is refused" 1 '' -- on 4 env FLAME_ENDPOINT="http://$sm_ip:$port" timeout 20 "$build/cli/flmctl" list -a

# ---- tasks spread over the nodes ----
"$tb" exec "$id" 4 timeout 120 "$build/cli/flmping" -t 240 -d 100 >"$tmp/spread.out" 2>&1 &
ping_pid=$!
declare -A seen
while kill -0 "$ping_pid" 2>/dev/null; do
    while read -r node cnt; do
        [ "${seen[$node]:-0}" -lt "$cnt" ] && seen[$node]=$cnt
    done < <(flmctl list -e 2>/dev/null | awk "$HDR"' $c["state"] != "Void" { k[$c["node"]]++ } END { for (n in k) print n, k[n] }')
    sleep 0.2
done
wait "$ping_pid"; rc=$?
[ "$rc" = 0 ] && grep -qE '<?240>? tasks was completed' "$tmp/spread.out" && ok "flmping from node 4: 240 tasks" ||
    bad "flmping" "$(tail "$tmp/spread.out"; logs)"
echo "# executors per node (most seen at once): node1=${seen[node1]:-0} node2=${seen[node2]:-0} node3=${seen[node3]:-0}"
[ "${seen[node1]:-0}" -ge 1 ] && [ "${seen[node2]:-0}" -ge 1 ] && [ "${seen[node3]:-0}" -ge 1 ] &&
    ok "the session's executors spread over the three nodes" || bad "executors did not spread" "$(flmctl list -e)"

# ---- Python (our binding) and Go clients on node 4: their sessions spread too ----
# Executors of sessions whose id starts with $1 per node, the most seen at
# once while process $2 runs; prints "node1=N node2=N node3=N".
spread() {
    local -A most=()
    while kill -0 "$2" 2>/dev/null; do
        while read -r node cnt; do
            [ "${most[$node]:-0}" -lt "$cnt" ] && most[$node]=$cnt
        done < <(flmctl list -e 2>/dev/null | awk -v p="$1" "$HDR"' index($c["session"], p) == 1 { k[$c["node"]]++ } END { for (n in k) print n, k[n] }')
        sleep 0.2
    done
    echo "node1=${most[node1]:-0} node2=${most[node2]:-0} node3=${most[node3]:-0}"
}
spread_ok() { [[ "$1" =~ node1=[1-9].*node2=[1-9].*node3=[1-9] ]]; }
if [ -n "$bindings" ]; then
    cp -r "$src/bindings/python" "$tmp/py"
    if (cd "$tmp/py" && FLAME_SOURCE_DIR="$src" FLAME_BUILD_DIR="$build" python3 setup.py -q build_ext --inplace) \
        >"$tmp/pybuild.log" 2>&1; then
        cat >"$tmp/client.py" <<'PY'
import concurrent.futures, sys
import flame
n = int(sys.argv[1])
s = flame.create_session("flmping", session_id=sys.argv[2])
futs = [s.run(b'{"duration": 100}') for _ in range(n)]
done = 0
for f in concurrent.futures.as_completed(futs, timeout=300):
    f.result()  # raises when the task failed
    done += 1
s.close()
print(f"python: {done} of {n} tasks done")
PY
        "$tb" exec "$id" 4 env PYTHONPATH="$tmp/py" timeout 300 python3 "$tmp/client.py" 240 "py-$id" >"$tmp/py.out" 2>&1 &
        p=$!
        got=$(spread "py-$id" "$p")
        wait "$p"; rc=$?
        echo "# python session: executors per node $got"
        [ "$rc" = 0 ] && grep -q "240 of 240" "$tmp/py.out" && ok "the Python binding on node 4 ran 240 tasks over mTLS" ||
            bad "python client (exit $rc)" "$(cat "$tmp/py.out")"
        spread_ok "$got" && ok "the Python session's executors spread over the three nodes" || bad "python: $got"
    else
        bad "the Python binding does not build" "$(tail "$tmp/pybuild.log")"
    fi
    if command -v go >/dev/null; then
        mkdir -p "$tmp/goclient"
        cat >"$tmp/goclient/go.mod" <<GOMOD
module testbedclient

go 1.21

require github.com/flame-in-c/flame/bindings/go v0.0.0

replace github.com/flame-in-c/flame/bindings/go => $src/bindings/go
GOMOD
        cat >"$tmp/goclient/main.go" <<'GO'
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"

	flame "github.com/flame-in-c/flame/bindings/go"
)

func main() {
	n, _ := strconv.Atoi(os.Args[1])
	cl, err := flame.Connect("")
	if err != nil {
		fmt.Println("connect:", err)
		os.Exit(1)
	}
	s, err := cl.CreateSession(os.Args[2], flame.SessionSpec{Application: "flmping"})
	if err != nil {
		fmt.Println("create:", err)
		os.Exit(1)
	}
	inputs := make([][]byte, n)
	for i := range inputs {
		inputs[i] = []byte(`{"duration": 100}`)
	}
	res, err := s.Map(context.Background(), inputs)
	if err != nil {
		fmt.Println("map:", err)
		os.Exit(1)
	}
	done := 0
	for _, r := range res {
		if r.Err == nil {
			done++
		}
	}
	s.Close()
	fmt.Printf("go: %d of %d tasks done\n", done, n)
}
GO
        if (cd "$tmp/goclient" && GOPROXY=off GOFLAGS=-mod=mod CGO_LDFLAGS="-L$build/libflame -Wl,-rpath,$build/libflame" \
            CGO_CFLAGS="-I$src/include" go build -o "$tmp/goclient/client" .) >"$tmp/gobuild.log" 2>&1; then
            "$tb" exec "$id" 4 timeout 300 "$tmp/goclient/client" 240 "go-$id" >"$tmp/go.out" 2>&1 &
            p=$!
            got=$(spread "go-$id" "$p")
            wait "$p"; rc=$?
            echo "# go session: executors per node $got"
            [ "$rc" = 0 ] && grep -q "240 of 240" "$tmp/go.out" && ok "the Go binding on node 4 ran 240 tasks over mTLS" ||
                bad "go client (exit $rc)" "$(cat "$tmp/go.out")"
            spread_ok "$got" && ok "the Go session's executors spread over the three nodes" || bad "go: $got"
        else
            bad "the Go client does not build" "$(tail "$tmp/gobuild.log")"
        fi
    else
        echo "# SKIP the Go client: go is not installed"
    fi
fi

# ---- node failure in the middle of a 20,000-task run ----
rerun_before=$(grep -o 'executor [^ ]*: [0-9]* running task' "$tmp/sm.log" | awk '{ s += $3 } END { print s + 0 }')
"$tb" exec "$id" 4 timeout 300 "$build/cli/flmping" -p -t "$TASKS" -d 2 >"$tmp/big.out" 2>&1 &
ping_pid=$!
sid=""
for _ in $(seq 300); do
    read -r succ _ < <(counts flmping- | sort -n | tail -1)
    sid=$(flmctl list -s | awk "$HDR"' $c["state"] == "Open" && index($1, "flmping-") == 1 { print $1 }' | tail -1)
    [ -n "$sid" ] && [ "${succ:-0}" -ge 1 ] && break
    sleep 0.1
done
read -r succ _ < <(counts "$sid")
echo "# session $sid: $succ of $TASKS tasks done when the nodes fail"
[ "${succ:-0}" -lt "$TASKS" ] && ok "the failures come in the middle of the run" || bad "the run ended before the failures"
kill -9 "${em_pid[1]}"
t0=$(now_ms)
wait_state node1 NotReady 30 && d1=$(($(now_ms) - t0)) && ok "node1 (kill -9) NotReady after ${d1} ms" ||
    bad "node1 stayed $(node_state node1)" "$(logs)"
"$tb" cut "$id" 2
t0=$(now_ms)
wait_state node2 NotReady $((TIMEOUT_MS / 1000 + 30)) && d2=$(($(now_ms) - t0)) &&
    ok "node2 (link cut, connection open) NotReady after ${d2} ms (node_timeout ${TIMEOUT_MS} ms)" ||
    bad "node2 stayed $(node_state node2)" "$(logs)"
echo "# detection: kill -9 ${d1:-?} ms; cut link ${d2:-?} ms (node_timeout ${TIMEOUT_MS} ms)"
[ "$(flmctl list -e | awk "$HDR"' $c["node"] == "node1" || $c["node"] == "node2"' | wc -l)" = 0 ] &&
    ok "the lost nodes' executors are released" || bad "executors left on lost nodes" "$(flmctl list -e)"
wait "$ping_pid"; rc=$?
[ "$rc" = 0 ] && ok "the 20,000-task session finished on the node left (exit 0)" || bad "flmping exit $rc" "$(tail "$tmp/big.out"; logs)"
read -r succ failed < <(counts "$sid")
lost=$((TASKS - ${succ:-0}))
rerun=$(($(grep -o 'executor [^ ]*: [0-9]* running task' "$tmp/sm.log" | awk '{ s += $3 } END { print s + 0 }') - rerun_before))
echo "# tasks: $TASKS; succeeded ${succ:-?}; failed ${failed:-?}; re-run $rerun; lost $lost"
[ "$lost" = 0 ] && [ "${failed:-1}" = 0 ] && ok "no task lost, none failed ($rerun re-run)" || bad "tasks lost: $lost, failed: ${failed:-?}"
[ "$rerun" -ge 1 ] && ok "the lost nodes' running tasks ran again elsewhere" || bad "no task re-ran" "$(grep -i lost "$tmp/sm.log" | tail)"

# both come back
"$tb" heal "$id" 2
start_em 1
wait_state node1 Ready 30 && ok "node1 rejoins once restarted" || bad "node1: $(node_state node1)" "$(logs)"
wait_state node2 Ready $((TIMEOUT_MS / 1000 + 40)) && ok "node2 rejoins once its link is back" ||
    bad "node2: $(node_state node2)" "$(logs)"
check "the cluster runs tasks on the rejoined nodes" 0 '<?60>? tasks was completed' -- on 4 timeout 120 "$build/cli/flmping" -t 60 -d 20

# ---- a session manager restart (kill -9) in the middle of a run, a node cut off ----
"$tb" exec "$id" 4 timeout 300 "$build/cli/flmping" -p -t "$TASKS" -d 2 >"$tmp/big2.out" 2>&1 &
ping_pid=$!
sid2=""
for _ in $(seq 600); do
    # every task submitted (Pending + Running + Succeed), a few done
    read -r sid2 total succ < <(flmctl list -s | awk -v old="$sid" "$HDR"' $c["state"] == "Open" &&
        index($1, "flmping-") == 1 && $1 != old { print $1, $c["pending"] + $c["running"] + $c["succeed"], $c["succeed"] }' | tail -1)
    [ "${total:-0}" = "$TASKS" ] && [ "${succ:-0}" -ge 1 ] && break
    sleep 0.1
done
echo "# session $sid2: ${succ:-?} of $TASKS tasks done when the session manager is killed"
[ "${total:-0}" = "$TASKS" ] && [ "${succ:-0}" -lt "$TASKS" ] && ok "the restart comes in the middle of the run" ||
    bad "the run was not caught in the middle (total ${total:-?}, done ${succ:-?})"
"$tb" cut "$id" 3
kill -9 "$sm_pid"
wait "$sm_pid" 2>/dev/null
kill "$ping_pid" 2>/dev/null; wait "$ping_pid" 2>/dev/null # its connection is gone with the process
start_sm && ok "the session manager restarts on the same sqlite (node3 cut off)" || bad "restart" "$(logs)"
all=1
for i in 1 2; do wait_state "node$i" Ready 40 || all=0; done
[ "$all" = 1 ] && ok "nodes 1 and 2 rejoin the restarted session manager" || bad "rejoin" "$(flmctl list -n; logs)"
[ "$(node_state node3)" != Ready ] && ok "node3, cut off, is not Ready" || bad "node3 Ready while cut off"
for _ in $(seq 1200); do
    read -r succ failed < <(counts "$sid2")
    [ "${succ:-0}" -ge "$TASKS" ] && break
    sleep 0.1
done
lost=$((TASKS - ${succ:-0}))
rerun=$(grep -o '[0-9]* task(s) were running when the session manager stopped' "$tmp/sm.log" | awk '{ s += $1 } END { print s + 0 }')
echo "# session manager restart: tasks $TASKS; succeeded ${succ:-?}; failed ${failed:-?}; re-run (Running in the store) $rerun; lost $lost"
[ "$lost" = 0 ] && [ "${failed:-1}" = 0 ] && ok "the session finished after the restart: no task lost, none failed ($rerun re-run)" ||
    bad "after the restart: lost $lost, failed ${failed:-?}" "$(flmctl list -s; logs)"
check "the session closes" 0 "" -- flmctl close -s "$sid2"
"$tb" heal "$id" 3
wait_state node3 Ready $((TIMEOUT_MS / 1000 + 40)) && ok "node3 rejoins once its link is back" ||
    bad "node3: $(node_state node3)" "$(logs)"
check "tasks run on all three nodes again" 0 '<?60>? tasks was completed' -- on 4 timeout 120 "$build/cli/flmping" -t 60 -d 20
read -r succ failed < <(counts "$sid")
[ "${succ:-0}" = "$TASKS" ] && ok "the first 20,000-task session is still whole after the restart" || bad "after restart: $succ succeeded"

for i in 1 2 3; do kill "${em_pid[$i]}" 2>/dev/null; done
kill "$sm_pid" 2>/dev/null
wait 2>/dev/null
if grep -q 'Sanitizer' "$tmp"/*.log; then bad "a sanitizer report" "$(grep -h -A5 Sanitizer "$tmp"/*.log)"
else ok "no sanitizer report in the daemons' logs"; fi
echo "$pass passed, $failn failed"
[ "$failn" -eq 0 ]
