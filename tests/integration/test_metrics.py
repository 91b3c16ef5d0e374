#!/usr/bin/env python3
"""The operators' view end to end: a real session manager and executor
manager with --metrics, their /healthz and /readyz transitions (the
executor manager is not ready before it registers, ready after, and not
again when the session manager goes), hostile HTTP input that must not
hurt a daemon, JSON logs, and a real Prometheus (Debian's `prometheus`)
scraping both while flmping runs tasks: its HTTP API must show the series
with the values the run implies.

Usage: test_metrics.py BUILD_DIR. Exit 77 (skipped, with the reason
printed) only when no prometheus binary is installed; every other check
runs regardless."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

BUILD = os.path.abspath(sys.argv[1])
SM = os.path.join(BUILD, "daemons", "flame-session-manager")
EM = os.path.join(BUILD, "daemons", "flame-executor-manager")
FLMPING = os.path.join(BUILD, "cli", "flmping")
CACHE = os.path.join(BUILD, "daemons", "flame-object-cache")
TASKS = 30
WAIT = 90  # seconds: every wait below is bounded by this, generous on a loaded machine

procs = []
failures = []


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        failures.append(what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(port, path, method="GET"):
    """(status, body); (0, why) when no answer came."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


def wait_for(fn, what, timeout=WAIT):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    check(False, "%s (within %d s; last: %r)" % (what, timeout, last))
    return None


def start(argv, tmp, name):
    out = open(os.path.join(tmp, name + ".out"), "w+")
    err = open(os.path.join(tmp, name + ".err"), "w+")
    p = subprocess.Popen(argv, stdout=out, stderr=err, cwd=tmp)
    p.out, p.err, p.name = out, err, name
    procs.append(p)
    return p


def metrics_port(p):
    def find():
        p.out.flush()
        with open(p.out.name) as f:
            for line in f:
                if " metrics on port " in line:
                    return int(line.rsplit(" ", 1)[1])
        if p.poll() is not None:
            return -1
        return None
    port = wait_for(find, "%s prints its metrics port" % p.name)
    if not port or port < 0:
        with open(p.err.name) as f:
            print(f.read())
        sys.exit(1)
    return port


def raw(port, data, read=True):
    """Sends data on a fresh connection; returns what came back (b"" when
    the server closed it)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(data)
    except OSError:
        pass  # the server may close early on a hostile request
    got = b""
    if read:
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got += b
        except OSError:
            pass
    s.close()
    return got


def hostile(port, name):
    r = raw(port, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" +
            b"x" * 100000)
    check(r.startswith(b"HTTP/1.1 405"), "%s: POST gets 405" % name)
    r = raw(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 431") or r == b"",
          "%s: a 1 MiB header is refused (431)" % name)
    raw(port, b"\x00\xff garbage \r\n\r\n")
    r = raw(port, b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    check(not r.startswith(b"HTTP/1.1 200"), "%s: a 100 kB URL is not served" % name)
    # many connections at once, some sending half a request (slowloris)
    socks = []
    for i in range(300):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i % 2:
                s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        except OSError:
            break
    for s in socks:
        s.close()
    check(wait_for(lambda: http(port, "/healthz")[0] == 200,
                   "%s answers /healthz after 300 connections" % name) is True,
          "%s still serves after hostile input" % name)


def main():
    for b in (SM, EM, FLMPING, CACHE):
        if not os.access(b, os.X_OK):
            print("missing %s" % b)
            return 1
    tmp = tempfile.mkdtemp(prefix="flame-metrics-")
    env_port = free_port()
    endpoint = "http://127.0.0.1:%d" % env_port
    os.environ["FLAME_ENDPOINT"] = endpoint
    prom = None
    try:
        # the executor manager first: alive, not ready (no session manager yet)
        em = start([EM, "-e", endpoint, "-w", os.path.join(tmp, "work"), "-n", "metrics-node",
                    "--sandbox", "none", "--metrics", "127.0.0.1:0"], tmp, "em")
        em_m = metrics_port(em)
        check(wait_for(lambda: http(em_m, "/healthz")[0] == 200, "em /healthz 200") is True,
              "executor manager healthy before the session manager exists")
        code, body = http(em_m, "/readyz")
        check(code == 503 and "not registered" in body,
              "executor manager not ready before it registers (%d %s)" % (code, body.strip()))

        sm = start([SM, "-e", endpoint, "-s", "sqlite://" + os.path.join(tmp, "flame.db"),
                    "--metrics", "0", "--log-format", "json"], tmp, "sm")
        sm_m = metrics_port(sm)
        check(wait_for(lambda: http(sm_m, "/readyz")[0] == 200, "sm /readyz 200") is True,
              "session manager ready once serving")
        check(http(sm_m, "/healthz")[0] == 200, "session manager healthy")
        check(wait_for(lambda: http(em_m, "/readyz")[0] == 200, "em /readyz 200") is True,
              "executor manager ready after it registered")

        cache = start([CACHE, "-e", "grpc://127.0.0.1:%d" % free_port(), "-s", "none",
                       "--metrics", "127.0.0.1:0"], tmp, "cache")
        cache_m = metrics_port(cache)
        check(wait_for(lambda: http(cache_m, "/readyz")[0] == 200, "cache /readyz 200") is True,
              "object cache ready once serving")
        code, body = http(cache_m, "/metrics")
        check(code == 200 and 'daemon="flame-object-cache"' in body,
              "object cache /metrics names its build")

        code, body = http(sm_m, "/metrics")
        check(code == 200 and "# TYPE flame_tasks_total counter" in body,
              "session manager /metrics in the text format")
        hostile(sm_m, "session manager")
        hostile(em_m, "executor manager")
        hostile(cache_m, "object cache")
        check(sm.poll() is None and em.poll() is None and cache.poll() is None,
              "the daemons survived the hostile input")

        prom = shutil.which("prometheus")
        if prom:
            prom_port = free_port()
            cfg = os.path.join(tmp, "prometheus.yml")
            with open(cfg, "w") as f:
                f.write("global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
                        "scrape_configs:\n"
                        "  - job_name: sm\n"
                        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                        "  - job_name: em\n"
                        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                        "  - job_name: cache\n"
                        "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                        % (sm_m, em_m, cache_m))
            start([prom, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(tmp, "tsdb"),
                   "--web.listen-address=127.0.0.1:%d" % prom_port, "--log.level=warn"],
                  tmp, "prometheus")
            wait_for(lambda: http(prom_port, "/-/ready")[0] == 200, "prometheus ready")

        r = subprocess.run([FLMPING, "-t", str(TASKS)], capture_output=True, text=True,
                           timeout=WAIT * 2, cwd=tmp)
        check(r.returncode == 0, "flmping -t %d ran (%s)" % (TASKS, r.stdout.strip()[-200:]))

        # the session manager's own exposition agrees before Prometheus is asked
        code, body = http(sm_m, "/metrics")
        check('flame_tasks_total{state="succeed"} %d\n' % TASKS in body,
              "/metrics counts %d succeeded tasks" % TASKS)

        if not prom:
            print("SKIP: Prometheus checks: no `prometheus` binary (Debian package prometheus; "
                  "scripts/deps.sh installs it as root)")
        else:
            def query(q):
                code, body = http(prom_port, "/api/v1/query?query=" + urllib.parse.quote(q))
                if code != 200:
                    return None
                res = json.loads(body)["data"]["result"]
                return [float(x["value"][1]) for x in res]

            def value_is(q, pred, what):
                got = wait_for(lambda: (lambda v: v if v and pred(v) else None)(query(q)),
                               "prometheus: " + what)
                check(got is not None, "prometheus: %s (%s = %r)" % (what, q, got))

            value_is('up{job="sm"}', lambda v: v == [1.0], "the session manager is up")
            value_is('up{job="em"}', lambda v: v == [1.0], "the executor manager is up")
            value_is('up{job="cache"}', lambda v: v == [1.0], "the object cache is up")
            value_is('flame_tasks_total{job="sm",state="succeed"}', lambda v: v == [TASKS],
                     "flame_tasks_total{state=succeed} equals the tasks run")
            value_is('flame_task_latency_seconds_count{job="sm"}', lambda v: v == [TASKS],
                     "one latency observation per task")
            value_is('flame_task_run_seconds_count{job="sm"}', lambda v: v == [TASKS],
                     "one run-time observation per task")
            value_is('flame_task_latency_seconds_sum{job="sm"}', lambda v: 0 < v[0] < WAIT * TASKS,
                     "task latencies are plausible")
            value_is('flame_rpc_requests_total{job="sm",method="CreateSession",code="OK"}',
                     lambda v: v == [1.0], "one CreateSession counted")
            value_is('sum(flame_rpc_requests_total{job="sm",service="flame.v1.Backend"})',
                     lambda v: v[0] >= 3, "backend calls counted")
            value_is('flame_nodes{job="sm",state="ready"}', lambda v: v == [1.0],
                     "one node ready")
            value_is('flame_sessions{job="sm",state="closed"}', lambda v: v == [1.0],
                     "flmping's session closed")
            value_is('flame_scheduler_cycle_seconds_count{job="sm"}', lambda v: v[0] >= 1,
                     "scheduler cycles timed")
            value_is('flame_store_commit_seconds_count{job="sm"}', lambda v: v[0] >= 1,
                     "store commits timed")
            value_is('flame_em_binds_total{job="em",result="ok"}', lambda v: v[0] >= 1,
                     "the executor manager bound executors")
            value_is('sum(flame_em_shim_call_seconds_count{job="em"})', lambda v: v[0] >= 1,
                     "shim calls timed")
            value_is('flame_process_resident_memory_bytes', lambda v: len(v) == 3 and
                     all(x > 1e6 for x in v), "all three report their memory")
            value_is('flame_process_open_fds', lambda v: len(v) == 3 and all(x > 2 for x in v),
                     "all three report their open files")
            value_is('flame_build_info', lambda v: v == [1.0] * 3, "all three report their build")

        # JSON logs: every line of the session manager's stderr is an object
        sm.err.flush()
        with open(sm.err.name) as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        ok = bool(lines)
        for l in lines:
            try:
                o = json.loads(l)
                ok = ok and {"time", "level", "module", "msg"} <= set(o)
            except ValueError:
                ok = False
                print("not JSON: %r" % l)
        check(ok, "--log-format json: %d log lines, each one JSON object" % len(lines))

        # the session manager goes: the executor manager is no longer ready
        sm.send_signal(signal.SIGTERM)
        sm.wait(timeout=WAIT)
        check(wait_for(lambda: http(em_m, "/readyz")[0] == 503, "em /readyz 503") is True,
              "executor manager not ready once the session manager is gone")
        check(http(em_m, "/healthz")[0] == 200, "executor manager still healthy (reconnecting)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        return 1
    return 0 if prom else 77


if __name__ == "__main__":
    sys.exit(main())
