#!/usr/bin/env bash
# The Python-service figures of issue 15 item 3: tasks/s of one echo service
# in flamepy 0.6's shape (tests/bench/pysvc_echo.py) served by flamepy 0.6.0
# from PyPI and by our package (bindings/python, `import flame as flamepy`:
# batched by default), each on two executors through the host shim (sandbox
# none: the venv lives under the user's home), on one local cluster; beside
# them a bare grpcio echo server set up as flamepy's (tests/bench/
# pysvc_grpc.py), which tells grpcio's cost from flamepy's, and the CPU the
# executor manager and the session manager spend per flamepy task. The
# services are measured in turns (A, B, C, A, B, C, ...) so that the load of
# this shared machine falls on all alike; the best run of each counts.
# Human lines go to stderr; the last stdout line is one JSON object (keys
# pysvc_*).
# Usage: scripts/bench_pysvc.sh [BUILD_DIR] [ROUNDS]
#   PYSVC_TASKS_FLAMEPY (default 5000), PYSVC_TASKS_FLAME (default 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
B=$(realpath "${1:-build}") rounds=${2:-3}
nfp=${PYSVC_TASKS_FLAMEPY:-5000} nfl=${PYSVC_TASKS_FLAME:-100000}
py=$(scripts/pyvenv.sh) # flamepy 0.6.0 from PyPI
tmp=$(mktemp -d)
pids=
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
echo "pysvc: building our package for $py" >&2
cp -r bindings/python "$tmp/src" # setuptools writes beside setup.py
FLAME_SOURCE_DIR="$root" FLAME_BUILD_DIR="$B" "$py" -m pip install -q --disable-pip-version-check \
    --no-build-isolation --no-index --no-deps --target "$tmp/pkg" "$tmp/src" >&2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FLAME_ENDPOINT="http://127.0.0.1:$port" HOME="$tmp"
"$B/daemons/flame-session-manager" --endpoint "$FLAME_ENDPOINT" --storage none >"$tmp/sm.log" 2>&1 &
sm=$!
pids="$pids $sm"
"$B/daemons/flame-executor-manager" --endpoint "$FLAME_ENDPOINT" --work-dir "$tmp/work" \
    --resources cpu=2,mem=4g --sandbox none >"$tmp/em.log" 2>&1 &
em=$!
pids="$pids $em"
for _ in $(seq 100); do "$B/cli/flmctl" list -n 2>/dev/null | grep -q " Ready " && break; sleep 0.1; done
cat >"$tmp/apps.yaml" <<YAML
metadata: {name: pysvc-flamepy}
spec: {command: $py, arguments: [$root/tests/bench/pysvc_echo.py], max_instances: 2}
---
metadata: {name: pysvc-grpcio}
spec: {command: $py, arguments: [$root/tests/bench/pysvc_grpc.py], max_instances: 2}
---
metadata: {name: pysvc-flame}
spec: {command: $py, arguments: [$root/tests/bench/pysvc_echo.py, flame], max_instances: 2,
       environments: {PYTHONPATH: $tmp/pkg, LD_LIBRARY_PATH: $B/libflame}}
YAML
"$B/cli/flmctl" register -f "$tmp/apps.yaml" >/dev/null
tput() { "$B/cli/flmping" -a "$1" -t "$2" -p | awk '/Throughput:/ {print $2}'; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, in clock ticks
hz=$(getconf CLK_TCK)
for a in pysvc-flamepy pysvc-grpcio pysvc-flame; do tput $a 200 >/dev/null; done # import, bind once
fp=() gr=() fl=() emc=() smc=()
for i in $(seq "$rounds"); do
    e0=$(cpu $em) s0=$(cpu $sm)
    a=$(tput pysvc-flamepy "$nfp")
    emc+=("$(( ($(cpu $em) - e0) * 1000000 / hz / nfp ))") smc+=("$(( ($(cpu $sm) - s0) * 1000000 / hz / nfp ))")
    g=$(tput pysvc-grpcio "$nfp")
    b=$(tput pysvc-flame "$nfl")
    fp+=("$a") gr+=("$g") fl+=("$b")
    echo "pysvc: round $i: flamepy $a tasks/s ($nfp tasks; executor manager ${emc[-1]} us," \
         "session manager ${smc[-1]} us CPU per task), bare grpcio $g tasks/s, our package" \
         "$b tasks/s ($nfl tasks)" >&2
done
python3 - "${fp[*]}" "${fl[*]}" "$rounds" "${gr[*]}" "${emc[*]}" "${smc[*]}" <<'PY'
import json, sys, os, platform, datetime
fp = [float(x) for x in sys.argv[1].split()]
fl = [float(x) for x in sys.argv[2].split()]
gr = [float(x) for x in sys.argv[4].split()]
emc = sorted(int(x) for x in sys.argv[5].split())
smc = sorted(int(x) for x in sys.argv[6].split())
r = {
    "pysvc_flamepy_tasks_per_s": round(max(fp), 1),
    "pysvc_flame_tasks_per_s": round(max(fl), 1),
    "pysvc_grpcio_tasks_per_s": round(max(gr), 1),
    "pysvc_flamepy_em_cpu_us_per_task": emc[len(emc) // 2],
    "pysvc_flamepy_sm_cpu_us_per_task": smc[len(smc) // 2],
    "pysvc_flamepy_runs": fp,
    "pysvc_grpcio_runs": gr,
    "pysvc_flame_runs": fl,
    "pysvc_executors": 2,
    "pysvc_rounds": int(sys.argv[3]),
}
r["pysvc_flame_vs_flamepy"] = round(r["pysvc_flame_tasks_per_s"] / r["pysvc_flamepy_tasks_per_s"], 1)
print(f"pysvc: {os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, "
      f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; echo service, 2 executors, "
      f"host shim, best of {r['pysvc_rounds']} alternating rounds", file=sys.stderr)
print(f"pysvc: flamepy 0.6.0 service  {r['pysvc_flamepy_tasks_per_s']:>10,.1f} tasks/s", file=sys.stderr)
print(f"pysvc: bare grpcio server     {r['pysvc_grpcio_tasks_per_s']:>10,.1f} tasks/s", file=sys.stderr)
print(f"pysvc: our package's service  {r['pysvc_flame_tasks_per_s']:>10,.1f} tasks/s "
      f"({r['pysvc_flame_vs_flamepy']}x)", file=sys.stderr)
print(f"pysvc: per flamepy task, CPU of the executor manager {r['pysvc_flamepy_em_cpu_us_per_task']} us, "
      f"of the session manager {r['pysvc_flamepy_sm_cpu_us_per_task']} us (medians)", file=sys.stderr)
print(json.dumps(r))
PY
