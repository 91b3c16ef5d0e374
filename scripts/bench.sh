#!/usr/bin/env bash
# The performance figures of issue 4, measured on this machine in one run:
# starts a local cluster (session manager with sqlite + one executor
# manager), runs each measurement, runs Dask's equivalent (the system's
# python3-distributed, else a venv of its own), prints a table and, as its last line,
# one JSON object with every figure. Throughput and latency are measured
# again on a cluster with mutual TLS on every hop (issue 8: at most 10%
# fewer tasks/s on the batched path, at most +50 us p50), beside plaintext.
# Then the companions, each on its own cluster: scripts/bench_makespan.sh
# (tasks that take time on 4 executors, against the ideal),
# bench_start.sh (session start, C and flamepy, cold and warm: start_*),
# bench_pysvc.sh (flamepy-service throughput: pysvc_*) and bench_shims.sh
# (shim_*); the last stdout line of each is merged into ours. One that is
# missing, fails or prints no JSON leaves its figures null, and says why.
# The goals of issue 15 are the targets of the table.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
load0=$(cut -d' ' -f1-3 /proc/loadavg)
scripts/deps.sh
# Dask for the comparison: the system's python3-distributed when installed,
# else a venv of its own from PyPI (never apt: python3-distributed pulls
# Debian's numpy into the system python, which breaks the pyarrow of the
# flamepy venv that scripts/pyvenv.sh makes)
dask_py=
if [ -z "${BENCH_NO_DASK:-}" ]; then
    dask_venv="${XDG_CACHE_HOME:-$HOME/.cache}/flame/dask-venv"
    if /usr/bin/python3 -c "import distributed" 2>/dev/null; then
        dask_py=/usr/bin/python3
    elif [ -x "$dask_venv/bin/python" ] && "$dask_venv/bin/python" -c "import distributed" 2>/dev/null; then
        dask_py="$dask_venv/bin/python"
    else
        echo "bench: installing Dask (distributed, from PyPI) into $dask_venv for the comparison" >&2
        if python3 -m venv "$dask_venv" >/dev/null 2>&1 &&
            "$dask_venv/bin/pip" install -q distributed >/dev/null 2>&1; then
            dask_py="$dask_venv/bin/python"
        else
            echo "bench: Dask could not be installed; its figures will be null" >&2
        fi
    fi
fi
scripts/build.sh build
B="$root/build"
tmp=$(mktemp -d)
sm_pid= em_pid= pids=
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FLAME_ENDPOINT="http://127.0.0.1:$port"
# start_cluster NAME [mtls]: a session manager (sqlite) and an executor
# manager; mtls: mutual TLS with a test PKI (the node presents its own
# certificate, the clients of this script an admin one)
start_cluster() {
    local sm_tls=() em_tls=()
    if [ "${2:-}" = mtls ]; then
        local pki="$tmp/pki"
        sm_tls=(--tls-cert "$pki/server.crt" --tls-key "$pki/server.key" --tls-ca "$pki/ca.crt" --mtls)
        # the node is named as its certificate is (a node speaks only for itself)
        em_tls=(--tls-ca "$pki/ca.crt" --tls-cert "$pki/node.crt" --tls-key "$pki/node.key"
                --node test-node)
    fi
    "$B/daemons/flame-session-manager" --endpoint "$FLAME_ENDPOINT" --storage "sqlite://$tmp/$1.db" \
        "${sm_tls[@]}" >"$tmp/sm-$1.log" 2>&1 &
    sm_pid=$!
    "$B/daemons/flame-executor-manager" --endpoint "$FLAME_ENDPOINT" --work-dir "$tmp/work-$1" \
        "${em_tls[@]}" >"$tmp/em-$1.log" 2>&1 &
    em_pid=$!
    pids="$pids $sm_pid $em_pid"
    for _ in $(seq 100); do "$B/cli/flmctl" list -n 2>/dev/null | grep -q " Ready " && break; sleep 0.1; done
}
start_cluster main

json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
throughput() { "$B/cli/flmping" "$@" -p | awk '/Throughput:/ {print $2}'; }
best() { local b=0 x; for x in "$@"; do b=$(python3 -c "print(max($b, $x))"); done; echo "$b"; }

echo "== warming up" >&2
"$B/cli/flmping" -t 20000 -p >/dev/null
echo "== scheduler cycle" >&2
sched=$("$B/tests/flame_bench" sched 10000 1000 100000)
echo "== session creation" >&2
screate=$("$B/tests/flame_bench" session-create 2000)
echo "== cold start" >&2
cold=$("$B/tests/flame_bench" cold-start "cold-$$")
echo "== sequential latency (C client; the C flmping service in-process, and through the host shim)" >&2
printf 'metadata:\n  name: flmping-inproc\nspec:\n  command: "inproc:flmping"\n' >"$tmp/inproc.yaml"
"$B/cli/flmctl" register -f "$tmp/inproc.yaml" >/dev/null
lat=$("$B/tests/flame_bench" latency-stream 3000 flmping-inproc)
lat_host=$("$B/tests/flame_bench" latency-stream 3000 flmping)
echo "== throughput, C service (flmping -p -t 100000), best of 3" >&2
tc=$(best "$(throughput -t 100000)" "$(throughput -t 100000)" "$(throughput -t 100000)")
echo "== throughput, Python service through the host shim" >&2
mkdir -p "$tmp/stubs"
protoc -I proto --python_out="$tmp/stubs" --grpc_python_out="$tmp/stubs" \
    --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" proto/*.proto
cat >"$tmp/pyapp.yaml" <<YAML
metadata:
  name: pybench
spec:
  command: /usr/bin/python3
  arguments: ["$root/tests/bench/pyservice_batch.py"]
  environments:
    PYTHONPATH: "$tmp/stubs"
YAML
"$B/cli/flmctl" register -f "$tmp/pyapp.yaml" >/dev/null
"$B/cli/flmping" -a pybench -t 2000 -p >/dev/null
tpy=$(best "$(throughput -a pybench -t 50000)" "$(throughput -a pybench -t 50000)")
# mTLS against plaintext: two fresh clusters up side by side (the idle one
# costs next to nothing), measured in turns so that the load of this shared
# machine falls on both alike
kill "$em_pid" "$sm_pid"; wait "$em_pid" "$sm_pid" 2>/dev/null || true
echo "== plaintext beside mutual TLS on every hop: throughput (flmping -p -t 100000) and latency" >&2
sh tests/tls/make_certs.sh "$tmp/pki"
port2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mtls_env=(FLAME_ENDPOINT="https://127.0.0.1:$port2" FLAME_CA_FILE="$tmp/pki/ca.crt"
          FLAME_CERT_FILE="$tmp/pki/admin.crt" FLAME_KEY_FILE="$tmp/pki/admin.key")
export "${mtls_env[@]}"
start_cluster mtls mtls
mtls_pids="$sm_pid $em_pid"
unset FLAME_CA_FILE FLAME_CERT_FILE FLAME_KEY_FILE
export FLAME_ENDPOINT="http://127.0.0.1:$port"
start_cluster plain
plain_pids="$sm_pid $em_pid"
on() { # on plain|mtls COMMAND...: runs it as a client of that cluster
    if [ "$1" = mtls ]; then shift; env "${mtls_env[@]}" "$@"; else shift; "$@"; fi
}
for c in plain mtls; do
    on $c "$B/cli/flmctl" register -f "$tmp/inproc.yaml" >/dev/null
    on $c "$B/cli/flmping" -t 20000 -p >/dev/null
done
tps_plain=() tps_mtls=() lats_plain=() lats_mtls=()
for _ in 1 2 3; do
    for c in plain mtls; do
        t=$(on $c "$B/cli/flmping" -t 100000 -p | awk '/Throughput:/ {print $2}')
        l=$(on $c "$B/tests/flame_bench" latency-stream 2000 flmping-inproc)
        if [ $c = plain ]; then tps_plain+=("$t") lats_plain+=("$l"); else tps_mtls+=("$t") lats_mtls+=("$l"); fi
    done
done
tc_plain=$(best "${tps_plain[@]}") tc_mtls=$(best "${tps_mtls[@]}")
# the lowest p50 of the three runs of each: the one the machine disturbed least
low_p50() { python3 -c "import json,sys; print(json.dumps(min((json.loads(a) for a in sys.argv[1:]), key=lambda d: d['latency_p50_us'])))" "$@"; }
lat_plain=$(low_p50 "${lats_plain[@]}") lat_mtls=$(low_p50 "${lats_mtls[@]}")
for p in $plain_pids $mtls_pids; do kill "$p"; done
wait $plain_pids $mtls_pids 2>/dev/null || true

echo "== memory with 1,000,000 finished tasks (16-byte payloads), on a fresh cluster" >&2
start_cluster fresh
fill=$("$B/tests/flame_bench" fill 1000000 16)
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$sm_pid/status")
rss_mb=$(python3 -c "print(round($rss_kb / 1024, 1))")
kill "$em_pid" "$sm_pid"; wait "$em_pid" "$sm_pid" 2>/dev/null || true # the companions start their own

# companion NAME SCRIPT ARGS...: runs a companion benchmark when it is
# there; its human lines go to our stderr, indented, and its last stdout
# line (one JSON object) to $tmp/NAME.json. When it is missing, fails or
# prints no JSON, $tmp/NAME.why says why and its figures are null.
companion() {
    local name=$1 script=$2 rc=0
    shift 2
    if [ ! -x "$script" ]; then
        echo "$script is not there" >"$tmp/$name.why"
        echo "bench: $name: $script is not there; its figures are null" >&2
        return 0
    fi
    "$script" "$@" >"$tmp/$name.out" 2> >(sed 's/^/  /' >&2) || rc=$?
    sed '$d' "$tmp/$name.out" | sed 's/^/  /' >&2
    if [ $rc -ne 0 ]; then
        echo "$script failed (exit $rc)" >"$tmp/$name.why"
    elif ! tail -1 "$tmp/$name.out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert isinstance(d, dict)' 2>/dev/null; then
        echo "$script printed no JSON object last" >"$tmp/$name.why"
    else
        tail -1 "$tmp/$name.out" >"$tmp/$name.json"
        return 0
    fi
    echo "bench: $name: $(cat "$tmp/$name.why"); its figures are null" >&2
}

echo "== makespan: tasks that take time on 4 executors (scripts/bench_makespan.sh)" >&2
companion makespan scripts/bench_makespan.sh
echo "== session start, C and flamepy services, cold and warm (scripts/bench_start.sh)" >&2
companion start scripts/bench_start.sh "$B"
echo "== flamepy-service throughput (scripts/bench_pysvc.sh)" >&2
companion pysvc scripts/bench_pysvc.sh "$B"
echo "== shims: gRPC host, stdio and REST, process sandbox (scripts/bench_shims.sh)" >&2
shims_py=$(scripts/pyvenv.sh 2>/dev/null) || shims_py= # fastapi, uvicorn: else no REST figure
companion shims scripts/bench_shims.sh "$B" 20000 $shims_py

echo "== sandbox levels none / process: bind p50 cold and warm, steady tasks/s (scripts/bench_sandbox.sh)" >&2
scripts/bench_sandbox.sh "$B" 15 2>&1 | sed 's/^/  /' >&2 || echo "bench: the sandbox figures failed" >&2

dask_tp=null dask_p50=null dask_line=
if [ -n "$dask_py" ]; then
    echo "== Dask (processes, worker-saturation=inf)" >&2
    dask_line=$(timeout 600 "$dask_py" tests/bench/dask_bench.py processes --sat inf \
        --n 10000 --nlat 1000 2>/dev/null | tail -1) || dask_line=
    if [ -n "$dask_line" ]; then
        dask_tp=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(round(max(d['map_gather_tasks_per_s'], d['submit_loop_gather_tasks_per_s']), 1))" "$dask_line")
        dask_p50=$(json "$dask_line" lat_p50_us)
    fi
else
    echo "bench: Dask: not installed (or BENCH_NO_DASK); its figures are null" >&2
fi

python3 - "$tc" "$tpy" "$lat" "$screate" "$cold" "$rss_mb" "$sched" "$dask_tp" "$dask_p50" "$fill" "$lat_host" "$tc_mtls" "$lat_mtls" "$tc_plain" "$lat_plain" "$tmp" "$load0" <<'PY'
import datetime, json, math, os, platform, sys
tc, tpy, lat, sc, cold, rss, sched, dtp, dp50, fill, lat_host, tc_mtls, lat_mtls, tc_plain, lat_plain, tmp, load0 = sys.argv[1:]
lat, sc, cold, sched, fill, lat_host, lat_mtls, lat_plain = map(json.loads, (lat, sc, cold, sched, fill, lat_host, lat_mtls, lat_plain))
num = lambda x: None if x == "null" else float(x)
r = {
    "throughput_c_tasks_per_s": round(float(tc), 1),
    "throughput_py_tasks_per_s": round(float(tpy), 1),
    "latency_p50_us": lat["latency_p50_us"],
    "latency_p99_us": lat["latency_p99_us"],
    "session_create_p50_us": sc["session_create_p50_us"],
    "cold_start_ms": cold["cold_start_ms"],
    "rss_mb_1m_tasks": float(rss),
    "sched_cycle_ms": sched["sched_cycle_ms"],
    "dask_throughput_tasks_per_s": num(dtp),
    "dask_latency_p50_us": num(dp50),
    "latency_host_shim_p50_us": lat_host["latency_p50_us"],
    "latency_host_shim_p99_us": lat_host["latency_p99_us"],
    "throughput_c_plain_tasks_per_s": round(float(tc_plain), 1),
    "latency_plain_p50_us": lat_plain["latency_p50_us"],
    "throughput_c_mtls_tasks_per_s": round(float(tc_mtls), 1),
    "latency_mtls_p50_us": lat_mtls["latency_p50_us"],
    "latency_mtls_p99_us": lat_mtls["latency_p99_us"],
}
r["mtls_throughput_loss_pct"] = round(100 * (1 - r["throughput_c_mtls_tasks_per_s"] / r["throughput_c_plain_tasks_per_s"]), 1)
r["mtls_latency_p50_added_us"] = round(r["latency_mtls_p50_us"] - r["latency_plain_p50_us"], 1)
r["throughput_vs_dask"] = round(r["throughput_c_tasks_per_s"] / r["dask_throughput_tasks_per_s"], 1) if r["dask_throughput_tasks_per_s"] else None
r["latency_vs_dask"] = round(r["dask_latency_p50_us"] / r["latency_p50_us"], 1) if r["dask_latency_p50_us"] else None

# the companions' figures: theirs as they print them (the shims' keys get
# the prefix shim_), and the ones the table shows null when one is missing
expect = {
    "makespan": ["makespan_1x100x50ms_s", "makespan_1x16x500ms_s"],
    "start": [f"start_{s}_{m}_{p}_ms" for s in ("c", "py") for m in ("cold", "warm") for p in ("p50", "p99")],
    "pysvc": ["pysvc_flamepy_tasks_per_s", "pysvc_flame_tasks_per_s"],
    "shims": [f"shim_shims_{a}_{k}" for a in ("host", "stdio_line", "stdio_frame", "rest") for k in ("tasks_per_s", "p50_us")],
}
for name, keys in expect.items():
    d = {}
    if os.path.exists(f"{tmp}/{name}.json"):
        d = json.load(open(f"{tmp}/{name}.json"))
        if name == "shims":
            d = {f"shim_{k}": v for k, v in d.items()}
    else:
        r[f"{name}_error"] = open(f"{tmp}/{name}.why").read().strip()
    for k in keys:
        r.setdefault(k, None)
    r.update(d)
for n, ms in ((100, 50), (16, 500)):
    k = f"makespan_1x{n}x{ms}ms_s"
    ideal = math.ceil(n / 4) * ms / 1000
    r[f"makespan_{n}x{ms}ms_ideal_s"] = ideal
    r[f"makespan_{n}x{ms}ms_over_ideal_pct"] = round(100 * (r[k] / ideal - 1), 1) if r.get(k) is not None else None

targets = [
    ("throughput, C service (tasks/s)", "throughput_c_tasks_per_s", ">=", 150000),
    ("throughput, Python service (tasks/s)", "throughput_py_tasks_per_s", ">=", 10000),
    ("latency p50, in-process (us)", "latency_p50_us", "<=", 100),
    ("latency p99, in-process (us)", "latency_p99_us", "<=", 500),
    ("latency p50, host shim (us)", "latency_host_shim_p50_us", "<=", 200),
    ("latency p99, host shim (us)", "latency_host_shim_p99_us", "<=", 500),
    ("session creation p50 (us)", "session_create_p50_us", "<=", 1000),
    ("cold start (ms)", "cold_start_ms", "<=", 50),
    ("RSS with 1M finished tasks (MB)", "rss_mb_1m_tasks", "<=", 400),
    ("scheduler cycle 10k/1k/100k (ms)", "sched_cycle_ms", "<=", 20),
    ("throughput vs Dask (x)", "throughput_vs_dask", ">=", 15),
    ("latency p50 vs Dask (x lower)", "latency_vs_dask", ">=", 30),
    ("mTLS: fewer tasks/s than plaintext (%)", "mtls_throughput_loss_pct", "<=", 10),
    ("mTLS: p50 added to plaintext (us)", "mtls_latency_p50_added_us", "<=", 50),
    ("makespan 100 x 50 ms, 4 executors: over ideal (%)", "makespan_100x50ms_over_ideal_pct", "<=", 10),
    ("makespan 16 x 500 ms, 4 executors: over ideal (%)", "makespan_16x500ms_over_ideal_pct", "<=", 10),
    ("session start p50, C service, warm (ms)", "start_c_warm_p50_ms", "<=", 5),
    ("session start p50, flamepy service, warm (ms)", "start_py_warm_p50_ms", "<=", 50),
]
shown = [
    ("makespan 100 x 50 ms / ideal (s)", "makespan_1x100x50ms_s", "makespan_100x50ms_ideal_s"),
    ("makespan 16 x 500 ms / ideal (s)", "makespan_1x16x500ms_s", "makespan_16x500ms_ideal_s"),
    ("session start C, cold: p50 / p99 (ms)", "start_c_cold_p50_ms", "start_c_cold_p99_ms"),
    ("session start C, warm: p50 / p99 (ms)", "start_c_warm_p50_ms", "start_c_warm_p99_ms"),
    ("session start flamepy, cold: p50 / p99 (ms)", "start_py_cold_p50_ms", "start_py_cold_p99_ms"),
    ("session start flamepy, warm: p50 / p99 (ms)", "start_py_warm_p50_ms", "start_py_warm_p99_ms"),
    ("flamepy service / our package (tasks/s)", "pysvc_flamepy_tasks_per_s", "pysvc_flame_tasks_per_s"),
    ("shim host, C (tasks/s, p50 us)", "shim_shims_host_tasks_per_s", "shim_shims_host_p50_us"),
    ("shim stdio line, cat (tasks/s, p50 us)", "shim_shims_stdio_line_tasks_per_s", "shim_shims_stdio_line_p50_us"),
    ("shim stdio frame, Python (tasks/s, p50 us)", "shim_shims_stdio_frame_tasks_per_s", "shim_shims_stdio_frame_p50_us"),
    ("shim REST, FastAPI (tasks/s, p50 us)", "shim_shims_rest_tasks_per_s", "shim_shims_rest_p50_us"),
    ("throughput, fresh cluster: plain / mTLS", "throughput_c_plain_tasks_per_s", "throughput_c_mtls_tasks_per_s"),
    ("latency p50, fresh cluster: plain / mTLS", "latency_plain_p50_us", "latency_mtls_p50_us"),
    ("latency p99, mTLS (us)", "latency_mtls_p99_us", None),
    ("Dask throughput (tasks/s) / p50 (us)", "dask_throughput_tasks_per_s", "dask_latency_p50_us"),
]
fmt = lambda v: "n/a" if v is None else f"{v:,.2f}" if abs(v) < 10 else f"{v:,.1f}"
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
print(f"machine: {os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, "
      f"{mem / 1048576:.0f} GiB; {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
      f"load average at the start {load0}")
print(f"{'figure':52} {'measured':>16} {'target':>10}  met")
for name, key, op, t in targets:
    v = r.get(key)
    ok = None if v is None else (v >= t if op == ">=" else v <= t)
    print(f"{name:52} {fmt(v):>16} {op + ' ' + format(t, ','):>10}  {'-' if ok is None else 'yes' if ok else 'NO'}")
for name, a, b in shown:
    print(f"{name:52} {fmt(r.get(a)):>16}" + ("" if b is None else f" / {fmt(r.get(b))}"))
for name in expect:
    if f"{name}_error" in r:
        print(f"{name}: no figures: {r[name + '_error']}")
print(json.dumps(r))
PY
