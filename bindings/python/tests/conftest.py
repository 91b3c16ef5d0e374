"""A real local cluster for the binding's tests: the session manager and an
executor manager from the project's build directory, on a free port."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

BUILD = os.environ.get("FLAME_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "..", "build"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Cluster:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="flame-py-")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.sm = None

    def start_sm(self, extra=()):
        self.sm = subprocess.Popen([os.path.join(BUILD, "daemons", "flame-session-manager"),
                                    "--endpoint", self.endpoint,
                                    "--storage", f"sqlite://{self.tmp}/flame.db", *extra],
                                   stdout=open(f"{self.tmp}/sm.log", "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.time() < deadline, "the session manager did not start"
                time.sleep(0.02)

    def kill9_sm(self):
        self.sm.kill()
        self.sm.wait()


@pytest.fixture(scope="session")
def cluster():
    c = Cluster()
    c.start_sm()
    em = subprocess.Popen([os.path.join(BUILD, "daemons", "flame-executor-manager"), "--endpoint",
                           c.endpoint, "--work-dir", f"{c.tmp}/work", "--resources", "cpu=2,mem=2g"],
                          stdout=open(f"{c.tmp}/em.log", "ab"), stderr=subprocess.STDOUT)
    os.environ["FLAME_ENDPOINT"] = c.endpoint
    import flame
    flame.connect(c.endpoint)
    deadline = time.time() + 10
    while not any(n["state"] == "Ready" for n in flame.list_nodes()):
        assert time.time() < deadline, "the executor manager did not register"
        time.sleep(0.05)
    yield c
    em.terminate()
    c.sm.terminate()
    assert em.wait(20) == 0
    assert c.sm.wait(20) == 0
    shutil.rmtree(c.tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def pyservice(cluster):
    """A Python service written with flame.FlameService, registered."""
    import flame
    script = os.path.join(os.path.dirname(__file__), "counter_service.py")
    flame.register_application("py-counter", {
        "command": sys.executable,
        "arguments": [script],
        "environments": {"PYTHONUNBUFFERED": "1"},
    })
    return "py-counter"
