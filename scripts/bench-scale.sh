#!/usr/bin/env bash
# Scale figures: one session manager serving many executor managers (real
# processes), on loopback or spread over network namespaces of
# scripts/testbed.sh. Prints: the time until every node is Ready
# (registration), the executors live at once and how long until they were
# all there, the session manager's own scheduler cycle (its
# flame_scheduler_cycle_seconds while the run held them), tasks/s, the
# session manager's RSS (empty, nodes registered, at the peak, after), and
# flame_bench sched at that size. Every loop is bounded; everything it
# starts is stopped at the end.
#   scripts/bench-scale.sh [--build DIR] [--nodes N] [--cpu C] [--tasks T]
#                          [--sessions S] [--duration MS] [--process] [--netns K]
#     --nodes N     executor managers (default 200)
#     --cpu C       cpus each advertises (default 20: N x C executor slots,
#                   4,000 by default; --cpu 100 makes the 20,000 of issue 12:
#                   ~40,000 threads, past the usual kernel.pid_max: as root
#                   the script raises it for the run and puts it back)
#     --tasks T     tasks per session (default: two per slot, 4000 at
#                   least), S sessions at once (default 4), each task MS ms
#                   long (default slots / 2, 2000 at least): an executor of
#                   cpu=1 each, the flmping service in-process
#                   ("inproc:flmping": no process per executor), so the run
#                   fills every slot: N x C executors
#     --process     the flmping service as a process per executor instead;
#                   each executor then takes a whole node (at most N live:
#                   20,000 service processes do not fit this machine)
#     --netns K     the managers spread over K namespaces (the session
#                   manager and the clients in another), plaintext with
#                   --insecure; default: all on loopback
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build="$root/build" nodes=200 cpu=20 tasks="" sessions=4 netns=0 duration="" process=0
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build=$(cd "$2" && pwd); shift ;;
        --nodes) nodes=$2; shift ;;
        --cpu) cpu=$2; shift ;;
        --tasks) tasks=$2; shift ;;
        --sessions) sessions=$2; shift ;;
        --netns) netns=$2; shift ;;
        --duration) duration=$2; shift ;;
        --process) process=1 ;;
        -h|--help) sed -n '11,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-scale: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
# enough tasks for two per executor slot (4000 per session at least), long
# enough (slots / 2 ms, 2 s at least) to outlast the ramp to every slot: the
# session manager creates executors only for tasks still pending
[ -n "$tasks" ] || tasks=$(( (2 * nodes * cpu + sessions - 1) / sessions > 4000 ? (2 * nodes * cpu + sessions - 1) / sessions : 4000 ))
[ -n "$duration" ] || duration=$(( nodes * cpu / 2 > 2000 ? nodes * cpu / 2 : 2000 ))
for b in daemons/flame-session-manager daemons/flame-executor-manager cli/flmctl cli/flmping tests/flame_bench; do
    [ -x "$build/$b" ] || { echo "bench-scale: $build/$b missing: build first (ninja -C build)" >&2; exit 1; }
done

# Every thread takes a pid, and a live executor is two threads of its
# manager while it runs a session (its own and its stream's reader): 2 x N x
# C, plus the managers' own (about 16 each), must fit under kernel.pid_max
# (and threads-max, and RLIMIT_NPROC) beside everything else running here,
# or clone/fork fails with EAGAIN across the whole machine. When they would
# not fit in 3/4 of pid_max, raise it for this run (root only) and put the
# old value back on exit.
pid_max_file=/proc/sys/kernel/pid_max pid_max_old="" pid_max_set=""
need=$((nodes * (2 * cpu + 16) + 1000))
running=$(ls -d /proc/[0-9]*/task/[0-9]* 2>/dev/null | wc -l)
pid_max=$(cat "$pid_max_file")
if [ $((running + need)) -gt $((pid_max * 3 / 4)) ]; then
    want=4194304
    if [ -w "$pid_max_file" ] && echo "$want" >"$pid_max_file" 2>/dev/null; then
        pid_max_old=$pid_max pid_max_set=$want
        echo "bench-scale: kernel.pid_max $pid_max -> $want for this run (~$need threads for it, $running running); put back on exit" >&2
    else
        echo "bench-scale: ~$need threads for this run beside the $running running do not fit kernel.pid_max=$pid_max, which cannot be raised here: set it (sysctl kernel.pid_max=4194304) or run smaller" >&2
        exit 1
    fi
fi
threads_max=$(cat /proc/sys/kernel/threads-max)
[ $((running + need)) -le "$threads_max" ] || { echo "bench-scale: ~$need threads beside $running running exceed kernel.threads-max=$threads_max" >&2; exit 1; }
# RLIMIT_NPROC counts the user's threads (root is exempt)
ulimit -S -u "$(ulimit -H -u)" 2>/dev/null || true
nproc_lim=$(ulimit -u)
if [ "$(id -u)" != 0 ] && [ "$nproc_lim" != unlimited ] && [ "$nproc_lim" -lt $((need + $(ps -L -U "$(id -u)" --no-headers | wc -l))) ]; then
    echo "bench-scale: ~$need threads for this run exceed ulimit -u ($nproc_lim) with the ones you run" >&2
    exit 1
fi
tmp=$(mktemp -d)
bed="" pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$bed" ] && scripts/testbed.sh down "$bed"
    rm -rf "$tmp"
    # put pid_max back, unless someone changed it meanwhile
    if [ -n "$pid_max_old" ] && [ "$(cat "$pid_max_file")" = "$pid_max_set" ]; then
        echo "$pid_max_old" >"$pid_max_file" && echo "bench-scale: kernel.pid_max back to $pid_max_old" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
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
# the executor managers' threads and RSS (MiB), summed; the machine's
# threads and available memory (MiB)
ems() { (cd /proc && cat $(for p in $em_pids; do echo "$p/status"; done) 2>/dev/null) |
    awk '/^Threads/ { t += $2 } /^VmRSS/ { r += $2 } END { printf "%d %.0f\n", t, r / 1024 }'; }
machine() { echo "$(ls -d /proc/[0-9]*/task/[0-9]* 2>/dev/null | wc -l) $(awk '/MemAvailable/ { printf "%.0f", $2 / 1024 }' /proc/meminfo)"; }
mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# the session manager's own figures: live executors, and the scheduler
# cycle's histogram sum and count
metric() { in_ns 0 python3 - "$mport" <<'PY'
import sys, urllib.request
ex = cs = cn = 0.0
try:
    text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
except Exception:
    print("0 0 0"); sys.exit(0)
for line in text.splitlines():
    if line.startswith("flame_executors{") and 'state="released"' not in line:
        ex += float(line.split()[-1])
    elif line.startswith("flame_scheduler_cycle_seconds_sum"):
        cs = float(line.split()[-1])
    elif line.startswith("flame_scheduler_cycle_seconds_count"):
        cn = float(line.split()[-1])
print(int(ex), cs, int(cn))
PY
}

# spawn in a subshell: $! is the daemon itself (exec all the way down)
(spawn 0 "$build/daemons/flame-session-manager" --endpoint "$FLAME_ENDPOINT" "${insecure[@]}" \
    --storage "sqlite://$tmp/flame.db" --metrics "127.0.0.1:$mport" >"$tmp/sm.log" 2>&1) &
sm_pid=$!
pids="$sm_pid"
for _ in $(seq 100); do ctl list -a >/dev/null 2>&1 && break; sleep 0.1; done
ctl list -a >/dev/null || { echo "bench-scale: the session manager did not start" >&2; tail "$tmp/sm.log" >&2; exit 1; }
rss0=$(rss_mb "$sm_pid")

echo "== $nodes executor managers, cpu=$cpu each ($((nodes * cpu)) executor slots)$([ "$netns" -gt 0 ] && echo ", over $netns namespaces")" >&2
t0=$(date +%s%3N)
em_pids=""
for ((i = 0; i < nodes; i++)); do
    ns=0
    [ "$netns" -gt 0 ] && ns=$((1 + i % netns))
    (spawn "$ns" "$build/daemons/flame-executor-manager" --endpoint "$FLAME_ENDPOINT" --node "n$i" \
        --work-dir "$tmp/w/$i" --resources "cpu=$cpu,mem=$((cpu * 2))g" --sandbox none \
        >"$tmp/em$i.log" 2>&1) &
    pids="$pids $!" em_pids="$em_pids $!"
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

if [ "$process" = 1 ]; then
    app=flmping resreq="cpu=$cpu,mem=1g" dur=() slots=$nodes
    echo "== $sessions flmping sessions x $tasks tasks, one executor (a service process) per node" >&2
else
    app=flmping-inproc resreq="cpu=1,mem=1g" dur=(-d "$duration") slots=$((nodes * cpu))
    printf 'metadata:\n  name: flmping-inproc\nspec:\n  command: "inproc:flmping"\n' >"$tmp/inproc.yaml"
    ctl register -f "$tmp/inproc.yaml" >/dev/null
    echo "== $sessions flmping sessions x $tasks tasks of $duration ms, executors of cpu=1 (the service in-process): up to $slots" >&2
fi
read -r _ cs0 cn0 <<<"$(metric)"
s0=$(date +%s%3N)
fpids=""
for ((s = 0; s < sessions; s++)); do
    (spawn 0 timeout 1200 "$build/cli/flmping" -a "$app" -p -t "$tasks" -r "$resreq" "${dur[@]}" \
        >"$tmp/ping$s.out" 2>&1) &
    fpids="$fpids $!"
done
maxexec=0 full_ms="" rss_peak=0 cs1=$cs0 cn1=$cn0
em_thr=0 em_rss=0 m_thr=0 m_avail=$(machine | cut -d' ' -f2)
while :; do
    alive=0
    for p in $fpids; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    read -r n cs cn <<<"$(metric)"
    if [ "$n" -gt "$maxexec" ]; then maxexec=$n; fi
    # the cycle while the executors are (nearly) all there
    if [ -z "$full_ms" ] && [ "$n" -ge "$slots" ]; then full_ms=$(($(date +%s%3N) - s0)); cs0=$cs cn0=$cn; fi
    [ -n "$full_ms" ] && [ "$n" -ge $((slots * 9 / 10)) ] && { cs1=$cs cn1=$cn; }
    r=$(rss_mb "$sm_pid"); awk -v a="$r" -v b="$rss_peak" 'BEGIN { exit !(a > b) }' && rss_peak=$r
    read -r t r <<<"$(ems)"
    [ "$t" -gt "$em_thr" ] && em_thr=$t
    [ "$r" -gt "$em_rss" ] && em_rss=$r
    read -r t a <<<"$(machine)"
    [ "$t" -gt "$m_thr" ] && m_thr=$t
    [ "$a" -lt "$m_avail" ] && m_avail=$a
    sleep 1
done
rc=0
for p in $fpids; do wait "$p" || rc=1; done
s1=$(date +%s%3N)
[ "$rc" = 0 ] || { echo "bench-scale: a flmping run failed" >&2; tail "$tmp"/ping*.out >&2; exit 1; }
done_tasks=$(cat "$tmp"/ping*.out | awk '/Succeeded:/ { s += $2 } END { print s + 0 }')
tps=$(awk -v n="$done_tasks" -v ms=$((s1 - s0)) 'BEGIN { printf "%.0f", n / (ms / 1000) }')
rss2=$(rss_mb "$sm_pid")
sm_cycle=$(awk -v s0="$cs0" -v s1="$cs1" -v n0="$cn0" -v n1="$cn1" 'BEGIN { if (n1 > n0) printf "%.2f", (s1 - s0) / (n1 - n0) * 1000; else print "n/a" }')
echo "   $done_tasks tasks in $((s1 - s0)) ms: $tps tasks/s; at most $maxexec executors at once${full_ms:+ (all $slots after $full_ms ms)}; the session manager's cycle with them: $sm_cycle ms over $((cn1 - cn0)) cycles; RSS peak $rss_peak, after $rss2 MiB" >&2
echo "   the executor managers at most: $em_thr threads, $em_rss MiB RSS in all; the machine: $m_thr threads, $m_avail MiB available at the least" >&2

# throughput: the executors are there (idle, kept for delay_release):
# sessions of tasks that take no time reuse them
tput=""
if [ "$process" = 0 ]; then
    echo "== throughput over the live executors: $sessions sessions x 20000 tasks of 0 ms" >&2
    t0=$(date +%s%3N)
    fpids=""
    for ((s = 0; s < sessions; s++)); do
        (spawn 0 timeout 600 "$build/cli/flmping" -a "$app" -p -t 20000 -r "$resreq" \
            >"$tmp/fast$s.out" 2>&1) &
        fpids="$fpids $!"
    done
    rc=0
    for p in $fpids; do wait "$p" || rc=1; done
    t1=$(date +%s%3N)
    [ "$rc" = 0 ] || { echo "bench-scale: a flmping run failed" >&2; tail "$tmp"/fast*.out >&2; exit 1; }
    n=$(cat "$tmp"/fast*.out | awk '/Succeeded:/ { s += $2 } END { print s + 0 }')
    tput=$(awk -v n="$n" -v ms=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (ms / 1000) }')
    echo "   $n tasks in $((t1 - t0)) ms: $tput tasks/s" >&2
fi

echo "== scheduler cycle at $sessions sessions x $nodes nodes x $((nodes * cpu)) executors (flame_bench sched)" >&2
sched=$("$build/tests/flame_bench" sched "$sessions" "$nodes" $((nodes * cpu)))
cycle=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["sched_cycle_ms"])' "$sched")
echo "   $cycle ms" >&2

printf '\n%-44s %s\n' "figure" "value"
printf '%-44s %s\n' "executor managers (processes)" "$nodes$([ "$netns" -gt 0 ] && echo " over $netns namespaces" || echo " on loopback")"
printf '%-44s %s\n' "executor slots (nodes x cpu)" "$((nodes * cpu))"
printf '%-44s %s ms\n' "registration: all nodes Ready" "$reg_ms"
printf '%-44s %s%s\n' "executors live at once (peak)" "$maxexec" "${full_ms:+ (all $slots after $full_ms ms)}"
printf '%-44s %s ms (mean over %s cycles)\n' "session manager's scheduler cycle, full" "$sm_cycle" "$((cn1 - cn0))"
printf '%-44s %s ms\n' "scheduler cycle (flame_bench sched)" "$cycle"
printf '%-44s %s tasks/s (%s tasks, %s sessions, <= %s executors)\n' "tasks/s of the run$([ "$process" = 0 ] && echo " ($duration ms tasks)")" "$tps" "$done_tasks" "$sessions" "$maxexec"
[ -n "$tput" ] && printf '%-44s %s tasks/s (%s sessions x 20000, 0 ms tasks)\n' "throughput over the live executors" "$tput" "$sessions"
printf '%-44s %s / %s / %s / %s MiB\n' "session manager RSS: empty / nodes / peak / after" "$rss0" "$rss1" "$rss_peak" "$rss2"
printf '%-44s %s threads, %s MiB RSS (peak)\n' "the executor managers, all together" "$em_thr" "$em_rss"
printf '%-44s %s threads, %s MiB available (at the least)\n' "the machine during the run" "$m_thr" "$m_avail"
printf '{"nodes": %s, "slots": %s, "registration_ms": %s, "max_executors": %s, "all_executors_ms": %s, "sm_sched_cycle_ms": "%s", "sched_cycle_ms": %s, "tasks_per_s": %s, "throughput_tasks_per_s": %s, "sm_rss_mb": [%s, %s, %s, %s], "em_threads": %s, "em_rss_mb": %s}\n' \
    "$nodes" "$slots" "$reg_ms" "$maxexec" "${full_ms:-null}" "$sm_cycle" "$cycle" "$tps" "${tput:-null}" "$rss0" "$rss1" "$rss_peak" "$rss2" "$em_thr" "$em_rss"
