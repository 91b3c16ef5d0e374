"""Warm session starts (issue 15 item 2) with flamepy 0.6 on both sides: an
idle executor keeps a flamepy service process started ahead for the next
session of the application it served (cluster yaml executors.warm_pool).
Checked here (behaviour, not timing): a process started ahead serves
exactly one session, and has its executor's FLAME_EXECUTOR_ID; the pool
refills after a take; its processes run inside the process sandbox; one
that crashes while waiting is noticed and replaced; the pool's memory is
counted (metrics, and the node's allocatable)."""
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request

import pytest

from conftest import build_path
from run_cluster import Cluster, wait_for

SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flamepy_programs",
                       "warm_service.py")
APP = "warm-echo"
READY = re.compile(r"warm pool: (warm-\d+) ready for application " + APP +
                   r" on executor (\S+) \(pid (\d+), sandbox (\w+)\)")


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(extra_yaml="executors:\n  warm_pool: 2\n  warm_pool_total: 4\n",
                em_args=["--metrics", "127.0.0.1:0"]).start()
    yield c
    c.stop()


def ready_lines(c):
    return READY.findall(c.log("em.log"))


def metrics(c):
    m = re.search(r"metrics on port (\d+)", c.log("em.log"))
    assert m, c.log("em.log")[-2000:]
    with urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("flame_em_warm"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def waiting(c):
    return metrics(c).get("flame_em_warm_processes", 0)


def executors():
    out = subprocess.run([build_path("cli", "flmctl"), "list", "-e"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def one_session(flamepy):
    s = flamepy.create_session(APP)
    try:
        a = s.invoke(b"x").decode().split()
        b = s.invoke(b"x").decode().split()
    finally:
        s.close()
    assert a == b, (a, b)  # one process for the whole session
    token, enters, sid, executor = a
    assert sid == s.id and enters == "1", a  # it entered this session and no other
    assert executor in executors(), (executor, executors())  # its executor's id
    return token


def node_memory(c):
    out = subprocess.run([build_path("cli", "flmctl"), "--endpoint", c.url, "view", "-n",
                          "eco-node", "-o", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_warm_pool(cluster):
    import flamepy
    env = {k: os.environ[k] for k in ("PYTHONPATH", "LD_LIBRARY_PATH") if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    flamepy.register_application(APP, flamepy.ApplicationAttributes(
        command=sys.executable, arguments=[SERVICE], environments=env))

    # the first session here is cold; it tells the node the application is wanted
    tokens = [one_session(flamepy)]
    assert wait_for(lambda: len(ready_lines(cluster)) >= 1 and waiting(cluster) >= 1, 180,
                    "a process started ahead")

    # it waits inside the process sandbox: another uid, its own pid namespace
    name, executor, pid, level = ready_lines(cluster)[0]
    assert level == "process"
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
    if os.getuid() == 0:
        assert int(status["Uid"].split()[0]) != 0, status["Uid"]
    assert len(status["NSpid"].split()) == 2, status["NSpid"]  # pid namespace of its own

    # its memory is counted, and taken off the node's allocatable
    assert wait_for(lambda: metrics(cluster).get("flame_em_warm_memory_bytes", 0) > 0, 60,
                    "the pool's memory in the metrics")
    def alloc_below():  # the heartbeats carry it (every 2 s)
        n = node_memory(cluster)
        return n if n["allocatable"]["memory"] < n["capacity"]["memory"] else None
    n = wait_for(alloc_below, 60, "the node's allocatable memory less the pool's")
    assert n["capacity"]["memory"] - n["allocatable"]["memory"] < 1 << 30, n  # RSS, not more

    # sessions take processes started ahead, one each, and the pool refills
    taken0 = metrics(cluster).get('flame_em_warm_events_total{event="taken"}', 0)
    for _ in range(3):
        assert wait_for(lambda: waiting(cluster) >= 1, 180, "the pool refilled")
        tokens.append(one_session(flamepy))
    taken = metrics(cluster).get('flame_em_warm_events_total{event="taken"}', 0)
    assert taken - taken0 == 3, (taken0, taken)
    assert len(set(tokens)) == len(tokens), tokens  # never a process twice
    assert wait_for(lambda: waiting(cluster) >= 1, 180, "the pool refilled")

    # a process that dies while it waits is noticed and replaced
    before = ready_lines(cluster)
    victim = before[-1]
    os.kill(int(victim[2]), signal.SIGKILL)
    assert wait_for(lambda: "exited while waiting for a session" in cluster.log("em.log"), 60,
                    "the crash noticed")
    assert wait_for(lambda: len(ready_lines(cluster)) > len(before) and waiting(cluster) >= 1,
                    180, "a replacement")
    m = metrics(cluster)
    assert m.get('flame_em_warm_events_total{event="exited"}', 0) >= 1, m
    tokens.append(one_session(flamepy))
    assert len(set(tokens)) == len(tokens), tokens
    flamepy.unregister_application(APP)
