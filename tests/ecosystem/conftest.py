"""Shared fixtures of the ecosystem tests: Flame's own software (flamepy 0.6.0,
pyarrow from PyPI) against our daemons, built in $FLAME_BUILD_DIR.

HOME points at an empty directory, so flamepy never reads the machine's
~/.flame/flame.yaml (a quick start's context would steer it)."""
import os
import subprocess
import tempfile
import time

import pytest

_home = tempfile.mkdtemp(prefix="flame-eco-home-")
os.environ["HOME"] = _home
for _v in ("FLAME_ENDPOINT", "FLAME_CACHE_ENDPOINT", "FLAME_CACHE_STORAGE", "FLAME_CA_FILE"):
    os.environ.pop(_v, None)

BUILD = os.environ.get("FLAME_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build")


def build_path(*parts):
    return os.path.join(BUILD, *parts)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """The test PKI of tests/tls/make_certs.sh (ca, server: SAN localhost,
    127.0.0.1, ...): a directory of NAME.crt/NAME.key."""
    d = tmp_path_factory.mktemp("pki")
    script = os.environ.get("FLAME_MAKE_CERTS") or os.path.join(
        os.path.dirname(__file__), "..", "tls", "make_certs.sh")
    subprocess.run(["sh", script, str(d)], check=True)
    return d


class ObjectCache:
    """A flame-object-cache daemon on a free port (port 0, read back)."""

    def __init__(self, storage=None, args=(), tls=None):
        self.storage = storage
        self.args = list(args)
        self.tls = tls  # (cert, key) or None
        self.proc = None
        self.port = None
        self.uri = None

    def start(self):
        scheme = "grpcs" if self.tls else "grpc"
        cmd = [build_path("daemons", "flame-object-cache"), "-e", f"{scheme}://127.0.0.1:0"]
        if self.storage:
            cmd += ["-s", str(self.storage)]
        if self.tls:
            cmd += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        cmd += self.args
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()  # "... listening on port N (URI)"; bounded by exit
        if "listening on port" not in line:
            self.proc.wait(timeout=30)
            self.log.seek(0)
            raise RuntimeError(f"flame-object-cache did not start: {line}{self.log.read()}")
        self.port = int(line.split("port ")[1].split()[0])
        self.uri = line.split("(")[1].rstrip(")\n")
        return self

    @property
    def endpoint(self):
        return f"{'grpcs' if self.tls else 'grpc'}://127.0.0.1:{self.port}"

    @property
    def location(self):
        return f"{'grpc+tls' if self.tls else 'grpc'}://127.0.0.1:{self.port}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM; the daemon must exit 0 without a sanitizer report."""
        if not self.proc:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
        proc.stdout.close()
        self.log.seek(0)
        log = self.log.read()
        self.log.close()
        assert proc.returncode == 0 and "Sanitizer" not in log, \
            f"flame-object-cache exited {proc.returncode}:\n{log[-4000:]}"


@pytest.fixture
def object_cache():
    """A factory of started caches, stopped at the end of the test:
    object_cache(storage=None, args=(), tls=None)."""
    made = []

    def make(**kw):
        c = ObjectCache(**kw).start()
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def wait_for(pred, timeout=60.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False
