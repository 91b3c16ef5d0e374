#!/usr/bin/env python3
# Reference peer benchmark (from the project's shared/peers), run by scripts/bench.sh.
"""Bounded dask.distributed micro-benchmark (loopback / in-process only).

usage: dask_bench.py MODE [--n 10000] [--nlat 1000] [--gap-ms 0] [--sat inf] [--no-lat]
  MODE: processes   -> LocalCluster(processes=True,  n_workers=2, threads_per_worker=1), tcp://127.0.0.1
        threads     -> LocalCluster(processes=False, n_workers=2, threads_per_worker=1), inproc:// (dask default)
        threads-tcp -> as threads, but protocol tcp://127.0.0.1
Prints one JSON line with:
  cold_start_s  : LocalCluster()+Client() creation until first task result
  map_gather_tasks_per_s        : client.map(noop, range(n)) + client.gather
  submit_loop_gather_tasks_per_s: n x client.submit(noop, i) + client.gather
  lat_p50_us/lat_p99_us         : nlat sequential client.submit(noop,i).result()
  gap_lat_*                      : same, with an untimed sleep of --gap-ms between iterations
"""
import argparse, json, time, statistics

def noop(x):
    return x

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]

def lat_loop(client, nlat, gap_s):
    lat = []
    for i in range(nlat):
        if gap_s:
            time.sleep(gap_s)
        t = time.perf_counter()
        r = client.submit(noop, i, pure=False).result()
        lat.append((time.perf_counter() - t) * 1e6)
        assert r == i
    return lat

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["processes", "threads", "threads-tcp"])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--nlat", type=int, default=1000)
    ap.add_argument("--gap-ms", type=float, default=0.0)
    ap.add_argument("--sat", default=None, help="scheduler worker-saturation (default 1.1 in this dask; 'inf' disables queuing)")
    ap.add_argument("--no-lat", action="store_true")
    a = ap.parse_args()
    assert a.n <= 100000 and a.nlat <= 5000  # keep bounded
    import dask
    from distributed import LocalCluster, Client
    if a.sat is not None:
        dask.config.set({"distributed.scheduler.worker-saturation": float(a.sat)})
    kw = dict(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=40)
    if a.mode == "processes":
        kw.update(processes=True, host="127.0.0.1")
    elif a.mode == "threads":
        kw.update(processes=False)
    else:
        kw.update(processes=False, protocol="tcp://", host="127.0.0.1")
    t0 = time.perf_counter()
    cluster = LocalCluster(**kw)
    client = Client(cluster)
    t_up = time.perf_counter() - t0
    assert client.submit(noop, -1, pure=False).result() == -1
    cold = time.perf_counter() - t0
    out = {"peer": "dask.distributed " + dask.__version__, "mode": a.mode,
           "worker_saturation": dask.config.get("distributed.scheduler.worker-saturation"),
           "cold_start_s": cold, "cluster_up_s": t_up, "n_tasks": a.n}
    client.gather(client.map(noop, range(200), pure=False))  # warm-up, untimed
    t = time.perf_counter()
    futs = client.map(noop, range(a.n), pure=False)
    res = client.gather(futs)
    out["map_gather_tasks_per_s"] = a.n / (time.perf_counter() - t)
    assert len(res) == a.n and res[-1] == a.n - 1
    del futs, res
    time.sleep(0.5)
    t = time.perf_counter()
    futs = [client.submit(noop, i, pure=False) for i in range(a.n)]
    res = client.gather(futs)
    out["submit_loop_gather_tasks_per_s"] = a.n / (time.perf_counter() - t)
    assert res[-1] == a.n - 1
    del futs, res
    time.sleep(0.5)
    if not a.no_lat:
        lat = lat_loop(client, a.nlat, 0)
        out.update(n_lat=a.nlat, lat_p50_us=pct(lat, 50), lat_p99_us=pct(lat, 99),
                   lat_mean_us=statistics.mean(lat))
        if a.gap_ms:
            lat = lat_loop(client, a.nlat, a.gap_ms / 1000.0)
            out.update(gap_ms=a.gap_ms, gap_lat_p50_us=pct(lat, 50), gap_lat_p99_us=pct(lat, 99))
    client.close()
    cluster.close()
    print(json.dumps(out), flush=True)

if __name__ == "__main__":
    main()
