#!/usr/bin/env bash
# The performance figures of issue 4, measured on this machine in one run:
# starts a local cluster (session manager with sqlite + one executor
# manager), runs each measurement, runs Dask's equivalent when
# python3-distributed is installed, prints a table and, as its last line,
# one JSON object with every figure. Throughput and latency are measured
# again on a cluster with mutual TLS on every hop (issue 8: at most 10%
# fewer tasks/s on the batched path, at most +50 us p50), beside plaintext.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scripts/deps.sh
if [ "$(id -u)" -eq 0 ] && [ -z "${BENCH_NO_DASK:-}" ] &&
    ! dpkg-query -W -f='${Status}' python3-distributed 2>/dev/null | grep -q "install ok installed"; then
    echo "bench: installing python3-distributed (Dask) for the comparison" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-distributed >/dev/null 2>&1 ||
        echo "bench: python3-distributed could not be installed; Dask figures will be null" >&2
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
        em_tls=(--tls-ca "$pki/ca.crt" --tls-cert "$pki/node.crt" --tls-key "$pki/node.key")
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

echo "== shims: gRPC host, stdio and REST, process sandbox (scripts/bench_shims.sh)" >&2
shims_py=$(scripts/pyvenv.sh 2>/dev/null) || shims_py= # fastapi, uvicorn: else no REST figure
scripts/bench_shims.sh "$B" 20000 $shims_py | sed 's/^/  /' >&2 || echo "bench: the shim figures failed" >&2

echo "== sandbox levels none / process: bind p50 cold and warm, steady tasks/s (scripts/bench_sandbox.sh)" >&2
scripts/bench_sandbox.sh "$B" 15 2>&1 | sed 's/^/  /' >&2 || echo "bench: the sandbox figures failed" >&2

dask_tp=null dask_p50=null dask_line=
if /usr/bin/python3 -c "import distributed" 2>/dev/null && [ -z "${BENCH_NO_DASK:-}" ]; then
    echo "== Dask (processes, worker-saturation=inf)" >&2
    dask_line=$(timeout 600 /usr/bin/python3 tests/bench/dask_bench.py processes --sat inf \
        --n 10000 --nlat 1000 2>/dev/null | tail -1) || dask_line=
    if [ -n "$dask_line" ]; then
        dask_tp=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(round(max(d['map_gather_tasks_per_s'], d['submit_loop_gather_tasks_per_s']), 1))" "$dask_line")
        dask_p50=$(json "$dask_line" lat_p50_us)
    fi
fi

python3 - "$tc" "$tpy" "$lat" "$screate" "$cold" "$rss_mb" "$sched" "$dask_tp" "$dask_p50" "$fill" "$lat_host" "$tc_mtls" "$lat_mtls" "$tc_plain" "$lat_plain" <<'PY'
import json, sys, platform, os
tc, tpy, lat, sc, cold, rss, sched, dtp, dp50, fill, lat_host, tc_mtls, lat_mtls, tc_plain, lat_plain = sys.argv[1:]
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
targets = [
    ("throughput, C service (tasks/s)", "throughput_c_tasks_per_s", ">=", 50000),
    ("throughput, Python service (tasks/s)", "throughput_py_tasks_per_s", ">=", 10000),
    ("latency p50 (us)", "latency_p50_us", "<=", 200),
    ("latency p99 (us)", "latency_p99_us", "<=", 1000),
    ("session creation p50 (us)", "session_create_p50_us", "<=", 1000),
    ("cold start (ms)", "cold_start_ms", "<=", 50),
    ("RSS with 1M finished tasks (MB)", "rss_mb_1m_tasks", "<=", 400),
    ("scheduler cycle 10k/1k/100k (ms)", "sched_cycle_ms", "<=", 20),
    ("throughput vs Dask (x)", "throughput_vs_dask", ">=", 15),
    ("latency p50 vs Dask (x lower)", "latency_vs_dask", ">=", 30),
    ("mTLS: fewer tasks/s than plaintext (%)", "mtls_throughput_loss_pct", "<=", 10),
    ("mTLS: p50 added to plaintext (us)", "mtls_latency_p50_added_us", "<=", 50),
]
print(f"machine: {os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}")
print(f"{'figure':40} {'measured':>14} {'target':>10}  met")
for name, key, op, t in targets:
    v = r[key]
    ok = None if v is None else (v >= t if op == ">=" else v <= t)
    vs = "n/a" if v is None else f"{v:,.1f}"
    print(f"{name:40} {vs:>14} {op + ' ' + format(t, ','):>10}  {'-' if ok is None else 'yes' if ok else 'NO'}")
print(f"{'latency p50, host-shim service (us)':40} {r['latency_host_shim_p50_us']:>14,.1f}")
print(f"{'latency p99, host-shim service (us)':40} {r['latency_host_shim_p99_us']:>14,.1f}")
print(f"{'throughput, fresh cluster: plain / mTLS':40} {r['throughput_c_plain_tasks_per_s']:>14,.1f} / {r['throughput_c_mtls_tasks_per_s']:,.1f}")
print(f"{'latency p50, fresh cluster: plain / mTLS':40} {r['latency_plain_p50_us']:>14,.1f} / {r['latency_mtls_p50_us']:,.1f}")
print(f"{'latency p99, mTLS (us)':40} {r['latency_mtls_p99_us']:>14,.1f}")
print(f"{'Dask throughput (tasks/s)':40} {('n/a' if r['dask_throughput_tasks_per_s'] is None else format(r['dask_throughput_tasks_per_s'], ',.1f')):>14}")
print(f"{'Dask latency p50 (us)':40} {('n/a' if r['dask_latency_p50_us'] is None else format(r['dask_latency_p50_us'], ',.1f')):>14}")
print(json.dumps(r))
PY
