"""A cluster of ours for the flmrun/installer/flmexec ecosystem tests: a
session manager and an executor manager on free ports, plaintext loopback
(flamepy's local admin), FLAME_HOME in a directory of the test's outside
/tmp (a sandboxed service has a /tmp of its own), and flamepy pointed at it
through FLAME_ENDPOINT. The daemons come from FLAME_BUILD_DIR."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from conftest import free_port

BUILD_DIR = os.environ["FLAME_BUILD_DIR"]
SM_BIN = os.path.join(BUILD_DIR, "daemons", "flame-session-manager")
EM_BIN = os.path.join(BUILD_DIR, "daemons", "flame-executor-manager")
WORK_PARENT = "/var/tmp" if os.path.isdir("/var/tmp") else BUILD_DIR
VENV_BIN = os.path.dirname(sys.executable)


def wait_for(cond, timeout=60, what="the condition"):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Cluster:
    def __init__(self, sandbox="process", cache_endpoint=None, extra_yaml="",
                 resreq="cpu=1,mem=64m", em_args=()):
        self.dir = tempfile.mkdtemp(prefix="flame-eco-run-", dir=WORK_PARENT)
        os.chmod(self.dir, 0o755)
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sandbox = sandbox
        self.cache_endpoint = cache_endpoint  # the cluster yaml's cache.endpoint
        self.extra_yaml = extra_yaml  # more top-level sections of the cluster yaml
        self.resreq = resreq  # the sessions' default
        self.em_args = list(em_args)
        self.sm = self.em = None

    def log(self, name):
        with open(os.path.join(self.dir, name), errors="replace") as f:
            return f.read()

    def start(self):
        cfg = os.path.join(self.dir, "cluster.yaml")
        with open(cfg, "w") as f:
            f.write(f"cluster:\n  resreq: {self.resreq}\n  schedule_interval: 100\n")
            if self.cache_endpoint:
                f.write(f"cache:\n  endpoint: {self.cache_endpoint}\n")
            f.write(self.extra_yaml)
        env = dict(os.environ, FLAME_HOME=self.home,
                   # uv from the test venv, as $FLAME_HOME/bin/uv or PATH would give it
                   PATH=VENV_BIN + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
        self.env = env
        self.sm = subprocess.Popen(
            [SM_BIN, "--endpoint", self.url, "--storage",
             f"sqlite://{os.path.join(self.dir, 'flame.db')}", "--config", cfg],
            stdout=open(os.path.join(self.dir, "sm.log"), "ab"), stderr=subprocess.STDOUT,
            env=env)
        wait_for(lambda: self._listening(), 20, "the session manager")
        self.em = subprocess.Popen(
            [EM_BIN, "--endpoint", self.url, "--work-dir", os.path.join(self.dir, "work"),
             "--node", "eco-node", "--resources", "cpu=4,mem=4g",
             "--sandbox", self.sandbox, "--config", cfg] + self.em_args,
            stdout=open(os.path.join(self.dir, "em.log"), "ab"), stderr=subprocess.STDOUT,
            env=env)
        os.environ["FLAME_ENDPOINT"] = self.url
        import flamepy
        from flamepy.core.client import ConnectionInstance
        ConnectionInstance._connection = None  # a new cluster: a new connection
        wait_for(lambda: any(n.status.state == 1 for n in self._nodes()), 30,
                 "the node (Ready)")
        return self

    def _nodes(self):
        import flamepy
        try:
            return flamepy.list_nodes()
        except Exception:
            return []

    def _listening(self):
        assert self.sm.poll() is None, "the session manager exited:\n" + self.log("sm.log")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        """SIGTERM to both; each must exit 0 without a sanitizer report."""
        bad = []
        for p, log in ((self.em, "em.log"), (self.sm, "sm.log")):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            text = self.log(log) if p else ""
            if p and (p.returncode != 0 or "Sanitizer" in text):
                bad.append(f"{log}: exit {p.returncode}\n{text[-4000:]}")
        shutil.rmtree(self.dir, ignore_errors=True)
        assert not bad, "\n".join(bad)
