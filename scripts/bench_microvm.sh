#!/usr/bin/env bash
# The microvm level's figures (issue 9, item 6): session bind p50 cold (no
# pool) and warm (from the pool), beside the same application with sandbox
# none, steady tasks/s through the VM's channel, and the host memory (RSS) of
# an idle pooled VM. A bind is timed as a client sees it: flmping with one
# task, session open to its result and close.
# The accelerator is $FLAME_MICROVM_ACCEL (default kvm). Where KVM guests do
# not boot (these machines), run it with FLAME_MICROVM_ACCEL=tcg: the cold
# figures and the RSS are then TCG figures, not KVM ones, and say so; the
# warm bind does not depend on the boot.
# Usage: scripts/bench_microvm.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${1:-5}
accel=${FLAME_MICROVM_ACCEL:-kvm}
scripts/deps.sh
scripts/build.sh build >/dev/null
B="$root/build"
image=$(scripts/microvm-image.sh --build "$B" | tail -n 1)
tmp=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FLAME_ENDPOINT="http://127.0.0.1:$port"
"$B/daemons/flame-session-manager" --endpoint "$FLAME_ENDPOINT" --storage "sqlite://$tmp/sm.db" \
    >"$tmp/sm.log" 2>&1 &
pids="$pids $!"
em_pid=
start_em() { # start_em POOL
    [ -n "$em_pid" ] && { kill "$em_pid"; wait "$em_pid" 2>/dev/null || true; }
    "$B/daemons/flame-executor-manager" --endpoint "$FLAME_ENDPOINT" --work-dir "$tmp/work" \
        --resources cpu=2,mem=2g --microvm-accel "$accel" --microvm-image "$image" \
        --microvm-pool "$1" >"$tmp/em-$1.log" 2>&1 &
    em_pid=$!
    pids="$pids $em_pid"
    for _ in $(seq 100); do "$B/cli/flmctl" list -n 2>/dev/null | grep -q " Ready " && break; sleep 0.1; done
}
ms_now() { date +%s%N | cut -c1-16; } # microseconds
bind_ms() { # bind_ms APP: one session with one task, in ms
    local t0 t1
    t0=$(ms_now)
    "$B/cli/flmping" -a "$1" -t 1 -r cpu=1,mem=256m >/dev/null
    t1=$(ms_now)
    python3 -c "print(round(($t1 - $t0) / 1000, 1))"
}
p50() { python3 -c "import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))" "$@"; }
ready_count() { grep -c "pool: a VM is ready" "$tmp/em-1.log" 2>/dev/null || true; }

start_em 0
svc=$(readlink -f "$B/daemons/flmping-service")
printf 'metadata:\n  name: ping-vm\nspec:\n  command: %s\n  sandbox: microvm\n---\nmetadata:\n  name: ping-none\nspec:\n  command: %s\n  sandbox: none\n' \
    "$svc" "$svc" >"$tmp/apps.yaml"
"$B/cli/flmctl" register -f "$tmp/apps.yaml" >/dev/null
echo "== bind, sandbox none ($rounds rounds)" >&2
none=()
for _ in $(seq "$rounds"); do none+=("$(bind_ms ping-none)"); done
echo "== cold bind, microvm ($accel, $rounds rounds)" >&2
cold=()
for _ in $(seq "$rounds"); do cold+=("$(bind_ms ping-vm)"); done

start_em 1
bind_ms ping-vm >/dev/null # the application's first bind fills the pool
echo "== warm bind, microvm from the pool ($rounds rounds)" >&2
warm=()
for i in $(seq "$rounds"); do
    for _ in $(seq 1200); do [ "$(ready_count)" -ge "$i" ] && break; sleep 0.1; done
    sleep 0.5 # the executor of the previous round is released
    warm+=("$(bind_ms ping-vm)")
done
for _ in $(seq 1200); do [ "$(ready_count)" -gt "$rounds" ] && break; sleep 0.1; done
rss_kb=0
# QEMU runs in a process sandbox: the child of its init, the manager's child
for p in $(for box in $(pgrep -P "$em_pid"); do pgrep -P "$box" qemu-system-x86; done); do
    rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$p/status")
done
echo "== steady tasks/s through the channel (flmping -p -t 2000)" >&2
tps=$("$B/cli/flmping" -a ping-vm -t 2000 -p -r cpu=1,mem=256m | awk '/Throughput:/ {print $2}')
tps_none=$("$B/cli/flmping" -a ping-none -t 2000 -p | awk '/Throughput:/ {print $2}')

python3 - "$accel" "$(p50 "${none[@]}")" "$(p50 "${cold[@]}")" "$(p50 "${warm[@]}")" "$tps" "$tps_none" "$rss_kb" <<'PY'
import json, sys
accel, none, cold, warm, tps, tps_none, rss = sys.argv[1:]
r = {"accel": accel,
     "bind_none_p50_ms": float(none),
     "bind_microvm_cold_p50_ms": float(cold),
     "bind_microvm_warm_p50_ms": float(warm),
     "tasks_per_s_microvm": float(tps),
     "tasks_per_s_none": float(tps_none),
     "idle_vm_rss_mb": round(int(rss) / 1024, 1)}
note = " (TCG: not a KVM figure)" if accel == "tcg" else ""
print(f"microvm figures, accelerator {accel}")
print(f"  bind p50, sandbox none           {r['bind_none_p50_ms']:10.1f} ms")
print(f"  bind p50, microvm cold           {r['bind_microvm_cold_p50_ms']:10.1f} ms{note}")
print(f"  bind p50, microvm warm (pool)    {r['bind_microvm_warm_p50_ms']:10.1f} ms")
print(f"  steady tasks/s, microvm / none   {r['tasks_per_s_microvm']:10.1f} / {r['tasks_per_s_none']:.1f}{note}")
print(f"  idle pooled VM, host RSS         {r['idle_vm_rss_mb']:10.1f} MB{note}")
print(json.dumps(r))
PY
