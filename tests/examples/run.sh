#!/usr/bin/env bash
# Runs every example against a real local cluster and checks what it prints.
# Usage: run.sh SOURCE_ROOT BUILD_DIR
set -uo pipefail
root="$1"
build="$(cd "$2" && pwd)"
tmp=$(mktemp -d)
pass=0 failn=0
sm= em=
cleanup() { kill $em $sm 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { failn=$((failn + 1)); echo "not ok - $1"; printf '%s\n' "$2" | sed 's/^/#   /'; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FLAME_ENDPOINT="http://127.0.0.1:$port"
"$build/daemons/flame-session-manager" --endpoint "$FLAME_ENDPOINT" --storage "sqlite://$tmp/f.db" >"$tmp/sm.log" 2>&1 &
sm=$!
"$build/daemons/flame-executor-manager" --endpoint "$FLAME_ENDPOINT" --work-dir "$tmp/work" \
    --resources cpu=4,mem=4g >"$tmp/em.log" 2>&1 &
em=$!
for _ in $(seq 100); do "$build/cli/flmctl" list -n 2>/dev/null | grep -q " Ready " && break; sleep 0.1; done

out=$("$build/examples/pi_client" "$build/examples/pi_service" 50 20000 2>&1)
if grep -qE '^pi ~= 3\.1[0-9]{5} \(50 tasks x 20000 samples, 0 failed\) in [0-9.]+ s$' <<<"$out"; then
    ok "pi in C: $out"
else
    bad "pi in C" "$out"
fi

venv="$tmp/venv"
/usr/bin/python3 -m venv --system-site-packages "$venv"
cp -r "$root/bindings/python" "$tmp/pysrc"
FLAME_SOURCE_DIR="$root" FLAME_BUILD_DIR="$build" "$venv/bin/pip" install -q --no-build-isolation \
    --no-index "$tmp/pysrc" >"$tmp/pip.log" 2>&1 || bad "pip install" "$(tail -5 "$tmp/pip.log")"
cd "$tmp"
out=$("$venv/bin/python" "$root/examples/pi/pi.py" 10 20000 2>&1)
if grep -qE '^pi ~= 3\.1[0-9]{5} \(10 tasks x 20000 samples\) in [0-9.]+ s$' <<<"$out"; then
    ok "pi in Python: $out"
else
    bad "pi in Python" "$out"
fi
out=$(timeout 120 "$venv/bin/python" "$root/examples/agent/agent.py" 2>&1)
if grep -qF "turn 1: tools=['HELLO', 'FLAME'] memory=['hello flame']" <<<"$out" &&
    grep -qF "turn 3: tools=['WHAT', 'DID', 'I', 'SAY'] memory=['hello flame', 'remember me', 'what did I say']" <<<"$out"; then
    ok "agent keeps its memory and fans out tool calls"
else
    bad "agent" "$out
$(tail -20 "$tmp"/work/logs/*.log 2>/dev/null)"
fi
echo "$pass passed, $failn failed"
[ "$failn" -eq 0 ]
