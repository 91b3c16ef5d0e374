#!/usr/bin/env bash
# Scale figures: one session manager serving many executor managers (real
# processes), on loopback or spread over network namespaces of
# scripts/testbed.sh. Prints: the time until every node is Ready
# (registration), the session manager's RSS with the nodes registered and
# after the run, tasks/s of flmping sessions spread over the nodes, and the
# scheduler's cycle at that size (flame_bench sched: the same scheduler, in
# process, sessions x nodes x executors). Every loop is bounded; everything
# it starts is stopped at the end.
#   scripts/bench-scale.sh [--build DIR] [--nodes N] [--cpu C] [--tasks T]
#                          [--sessions S] [--netns K]
#     --nodes N     executor managers (default 200)
#     --cpu C       cpus each advertises (default 100: N x C executor slots,
#                   20,000 by default)
#     --tasks T     tasks per session (default 20000), S sessions at once
#                   (default 4); each executor of the run takes all of a
#                   node's cpus, so the run holds at most N executors (one
#                   service process each: 20,000 of them would not fit here)
#     --netns K     the managers spread over K namespaces (the session
#                   manager and the clients in another), plaintext with
#                   --insecure; default: all on loopback
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build="$root/build" nodes=200 cpu=100 tasks=20000 sessions=4 netns=0
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build=$(cd "$2" && pwd); shift ;;
        --nodes) nodes=$2; shift ;;
        --cpu) cpu=$2; shift ;;
        --tasks) tasks=$2; shift ;;
        --sessions) sessions=$2; shift ;;
        --netns) netns=$2; shift ;;
        -h|--help) sed -n '11,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-scale: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
for b in daemons/flame-session-manager daemons/flame-executor-manager cli/flmctl cli/flmping tests/flame_bench; do
    [ -x "$build/$b" ] || { echo "bench-scale: $build/$b missing: build first (ninja -C build)" >&2; exit 1; }
done
tmp=$(mktemp -d)
bed="" pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$bed" ] && scripts/testbed.sh down "$bed"
    rm -rf "$tmp"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true

if [ "$netns" -gt 0 ]; then
    why=$(scripts/testbed.sh check 2>&1) || { echo "bench-scale: --netns: $why" >&2; exit 1; }
    out=$(scripts/testbed.sh up $((netns + 1)))
    bed=$(head -1 <<<"$out")
    host=$(scripts/testbed.sh addr "$bed" 0)
    port=18080
    in_ns() { local i=$1; shift; scripts/testbed.sh exec "$bed" "$i" "$@"; }
    spawn() { local i=$1; shift; exec scripts/testbed.sh exec "$bed" "$i" "$@"; }
    insecure=(--insecure)
else
    host=127.0.0.1
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    in_ns() { shift; "$@"; }
    spawn() { shift; exec "$@"; }
    insecure=()
fi
export FLAME_ENDPOINT="http://$host:$port" FLAME_CONFIG="$tmp/none.yaml"
ctl() { in_ns 0 timeout 60 "$build/cli/flmctl" "$@"; }
rss_mb() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# spawn in a subshell: $! is the daemon itself (exec all the way down)
(spawn 0 "$build/daemons/flame-session-manager" --endpoint "$FLAME_ENDPOINT" "${insecure[@]}" \
    --storage "sqlite://$tmp/flame.db" >"$tmp/sm.log" 2>&1) &
sm_pid=$!
pids="$sm_pid"
for _ in $(seq 100); do ctl list -a >/dev/null 2>&1 && break; sleep 0.1; done
ctl list -a >/dev/null || { echo "bench-scale: the session manager did not start" >&2; tail "$tmp/sm.log" >&2; exit 1; }
rss0=$(rss_mb "$sm_pid")

echo "== $nodes executor managers, cpu=$cpu each ($((nodes * cpu)) executor slots)$([ "$netns" -gt 0 ] && echo ", over $netns namespaces")" >&2
t0=$(date +%s%3N)
for ((i = 0; i < nodes; i++)); do
    ns=0
    [ "$netns" -gt 0 ] && ns=$((1 + i % netns))
    (spawn "$ns" "$build/daemons/flame-executor-manager" --endpoint "$FLAME_ENDPOINT" --node "n$i" \
        --work-dir "$tmp/w/$i" --resources "cpu=$cpu,mem=$((cpu * 2))g" --sandbox none \
        >"$tmp/em$i.log" 2>&1) &
    pids="$pids $!"
done
t_spawned=$(date +%s%3N)
ready=0
for _ in $(seq 1200); do # at most ~2 min
    ready=$(ctl list -n 2>/dev/null | awk 'NR > 1 && / Ready /' | wc -l)
    [ "$ready" -ge "$nodes" ] && break
    sleep 0.1
done
t1=$(date +%s%3N)
[ "$ready" -ge "$nodes" ] || { echo "bench-scale: only $ready of $nodes nodes Ready after 2 min" >&2; exit 1; }
reg_ms=$((t1 - t0))
rss1=$(rss_mb "$sm_pid")
echo "   all Ready after $reg_ms ms (processes started in $((t_spawned - t0)) ms); session manager RSS $rss0 -> $rss1 MiB" >&2

echo "== $sessions flmping sessions x $tasks tasks, one executor per node each (cpu=$cpu)" >&2
s0=$(date +%s%3N)
fpids=""
for ((s = 0; s < sessions; s++)); do
    (spawn 0 timeout 600 "$build/cli/flmping" -p -t "$tasks" -r "cpu=$cpu,mem=1g" >"$tmp/ping$s.out" 2>&1) &
    fpids="$fpids $!"
done
maxexec=0
while :; do
    alive=0
    for p in $fpids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    n=$(ctl list -e 2>/dev/null | awk 'NR > 1' | wc -l)
    [ "$n" -gt "$maxexec" ] && maxexec=$n
    sleep 0.5
done
rc=0
for p in $fpids; do wait "$p" || rc=1; done
s1=$(date +%s%3N)
[ "$rc" = 0 ] || { echo "bench-scale: a flmping run failed" >&2; tail "$tmp"/ping*.out >&2; exit 1; }
done_tasks=$(cat "$tmp"/ping*.out | awk '/Succeeded:/ { s += $2 } END { print s + 0 }')
tps=$(awk -v n="$done_tasks" -v ms=$((s1 - s0)) 'BEGIN { printf "%.0f", n / (ms / 1000) }')
rss2=$(rss_mb "$sm_pid")
echo "   $done_tasks tasks in $((s1 - s0)) ms: $tps tasks/s; at most $maxexec executors at once; RSS $rss2 MiB" >&2

echo "== scheduler cycle at $sessions sessions x $nodes nodes x $((nodes * cpu)) executors (flame_bench sched)" >&2
sched=$("$build/tests/flame_bench" sched "$sessions" "$nodes" $((nodes * cpu)))
cycle=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["sched_cycle_ms"])' "$sched")
echo "   $cycle ms" >&2

printf '\n%-44s %s\n' "figure" "value"
printf '%-44s %s\n' "executor managers (processes)" "$nodes$([ "$netns" -gt 0 ] && echo " over $netns namespaces" || echo " on loopback")"
printf '%-44s %s\n' "executor slots (nodes x cpu)" "$((nodes * cpu))"
printf '%-44s %s ms\n' "registration: all nodes Ready" "$reg_ms"
printf '%-44s %s ms\n' "scheduler cycle (flame_bench sched)" "$cycle"
printf '%-44s %s tasks/s (%s tasks, %s sessions, <= %s executors)\n' "throughput" "$tps" "$done_tasks" "$sessions" "$maxexec"
printf '%-44s %s / %s / %s MiB\n' "session manager RSS: empty / nodes / after" "$rss0" "$rss1" "$rss2"
printf '{"nodes": %s, "slots": %s, "registration_ms": %s, "sched_cycle_ms": %s, "tasks_per_s": %s, "max_executors": %s, "sm_rss_mb": [%s, %s, %s]}\n' \
    "$nodes" "$((nodes * cpu))" "$reg_ms" "$cycle" "$tps" "$maxexec" "$rss0" "$rss1" "$rss2"
