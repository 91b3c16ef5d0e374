"""flmexec runs LLM-written scripts safely (issue 9, item 4): the built-in
application runs them in the process sandbox (microvm on request) with no
network, under a per-task time and memory limit; a script stopped by a limit
fails with a message naming the limit, and the escapes of test_escape.py,
written as scripts, are blocked."""
import os
import subprocess

from conftest import BUILD_DIR
from test_execution import wait_node

FLMEXEC = os.path.join(BUILD_DIR, "cli", "flmexec")


def flmexec(cluster, *args, timeout=60):
    return subprocess.run([FLMEXEC, "--endpoint", cluster.url] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def test_limits_name_the_limit(cluster, pb, cfe):
    wait_node(pb, cfe)
    ok = flmexec(cluster, "-l", "python", "-c", "print(sum(range(10)))")
    assert ok.returncode == 0 and ok.stdout == "45\n", ok.stderr
    slow = flmexec(cluster, "-t", "0.5", "-c", "sleep 30; echo never")
    assert slow.returncode == 1
    assert "time limit of 0.5 s" in slow.stderr, slow.stderr
    big = flmexec(cluster, "-m", "64m", "-l", "python", "-c", "x = bytearray(256 << 20)")
    assert big.returncode == 1
    assert "memory limit of 64 MiB" in big.stderr, big.stderr
    # the service goes on after both
    ok = flmexec(cluster, "-c", "echo still here")
    assert ok.returncode == 0 and ok.stdout == "still here\n", ok.stderr
