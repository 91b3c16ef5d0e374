#!/usr/bin/env bash
# Integration: the microvm sandbox level through the real daemons under TCG:
# an application registered with `sandbox: microvm` runs flmping tasks in a
# QEMU microvm guest (a cold bind, then a warm one from the pool), and no VM
# is left once the executor manager stops. Two TCG boots. Skipped without
# QEMU or when the image cannot be made. Usage: test_microvm_cluster.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src="$1" build="$2"
tmp=$(mktemp -d)
. "$(dirname "$0")/tap.sh"
sm_pid= em_pid=
cleanup() {
    for p in $em_pid $sm_pid; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
command -v qemu-system-x86_64 >/dev/null || { echo "SKIP: no qemu-system-x86_64 (Debian: qemu-system-x86)"; exit 77; }
image=$("$src/scripts/microvm-image.sh" --build "$build" 2>&1 | tail -n 1) && [ -e "$image/KEY" ] ||
    { echo "SKIP: the microvm image cannot be made: $image"; exit 77; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'cluster:\n  name: microvm-test\n  endpoint: "http://127.0.0.1:%s"\n  storage: "sqlite://%s/flame.db"\n  resreq: "cpu=1,mem=256m"\n  schedule_interval: 200\n' \
    "$port" "$tmp" >"$tmp/cluster.yaml"
export FLAME_ENDPOINT="http://127.0.0.1:$port"
"$build/daemons/flame-session-manager" --config "$tmp/cluster.yaml" >"$tmp/sm.log" 2>&1 &
sm_pid=$!
"$build/daemons/flame-executor-manager" --config "$tmp/cluster.yaml" -w "$tmp/work" \
    --resources cpu=2,mem=1g --microvm-accel tcg --microvm-image "$image" --microvm-pool 1 \
    >"$tmp/em.log" 2>&1 &
em_pid=$!
flmctl=(timeout 60 "$build/cli/flmctl")
for _ in $(seq 100); do "${flmctl[@]}" list -a >/dev/null 2>&1 && break; sleep 0.1; done

cat >"$tmp/app.yaml" <<YAML
metadata:
  name: ping-vm
spec:
  shim: Host
  command: $(readlink -f "$build/daemons/flmping-service")
  sandbox: microvm
YAML
check "register an application with sandbox: microvm" 0 'ping-vm was registered' -- \
    "${flmctl[@]}" register -f "$tmp/app.yaml"
check "view -a shows the level" 0 'Sandbox: +microvm' -- "${flmctl[@]}" view -a ping-vm

host=$(hostname)
for round in cold warm; do
    out=$(timeout 300 "$build/cli/flmping" -a ping-vm -t 4 -r cpu=1,mem=256m 2>&1)
    n=$(grep -cE 'Succeed' <<<"$out")
    if [ "$n" = 4 ] && ! grep -q "<$host>" <<<"$out"; then
        ok "$round bind: 4 flmping tasks ran in the VM, not on the host"
    else
        bad "$round bind: flmping in a microvm" "$out
$(tail -n 20 "$tmp/em.log")
$(tail -n 20 "$tmp"/work/logs/*.log 2>/dev/null)"
    fi
    # the pool fills (one VM booted with the service) before the warm round
    for _ in $(seq 600); do grep -q "pool: a VM is ready" "$tmp/em.log" && break; sleep 0.1; done
done

grep -qs "a VM from the pool" "$tmp"/work/logs/*.log && ok "the warm bind took a VM from the pool" ||
    bad "no bind took a pooled VM" "$(tail -n 20 "$tmp/em.log")"
# QEMU runs in a process sandbox: the child of its init, the manager's child
vms=$(for box in $(pgrep -P "$em_pid"); do pgrep -P "$box" qemu-system-x86; done)
[ -n "$vms" ] && ok "the pool keeps a VM booted" || bad "no pooled VM" "$(tail -n 20 "$tmp/em.log")"
kill "$em_pid"
# a generous bound: the stop waits for a pool VM still booting (TCG, under
# a sanitizer on a loaded machine: 10 s and more)
for _ in $(seq 600); do kill -0 "$em_pid" 2>/dev/null || break; sleep 0.1; done
running=$(kill -0 "$em_pid" 2>/dev/null && echo yes)
em_pid=
left=
for p in $vms; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
[ -z "$left" ] && ok "no VM is left after the executor manager stops" ||
    bad "VMs left:$left${running:+ (the executor manager had not stopped within 60 s)}"

echo "$pass passed, $failn failed"
[ "$failn" -eq 0 ]
