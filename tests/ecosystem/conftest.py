"""Shared fixtures of the ecosystem tests: Flame's own software (flamepy 0.6.0,
pyarrow from PyPI) against our daemons, built in $FLAME_BUILD_DIR.

HOME points at an empty directory, so flamepy never reads the machine's
~/.flame/flame.yaml (a quick start's context would steer it)."""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

# The user's real home: Rust's toolchain and the shared build caches live there.
REAL_HOME = __import__("pwd").getpwuid(os.getuid()).pw_dir
_home = tempfile.mkdtemp(prefix="flame-eco-home-")
os.environ["HOME"] = _home
for _v in ("FLAME_ENDPOINT", "FLAME_CACHE_ENDPOINT", "FLAME_CACHE_STORAGE", "FLAME_CA_FILE"):
    os.environ.pop(_v, None)

BUILD = os.path.abspath(os.environ.get("FLAME_BUILD_DIR") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build"))


def build_path(*parts):
    return os.path.join(BUILD, *parts)


def free_port():
    """A free loopback TCP port (for a daemon a test starts)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def skip(reason):
    print(f"SKIP: {reason}", flush=True)
    pytest.skip(reason)


CARGO_TARGET = os.environ.get("FLAME_CARGO_TARGET_DIR",
                              os.path.join(REAL_HOME, ".cache", "flame", "cargo-target"))


def cargo_build(crate_dir, *binaries):
    """Builds a crate of tests/ecosystem (flame-rs 0.7.0 from crates.io) into a
    target dir outside the repo shared by every crate here, so the dependencies
    are built once per machine; returns the paths of its binaries. Skips, saying
    why, where cargo, crates.io or a new enough rustc is missing."""
    cargo = next((c for c in (shutil.which("cargo"), os.path.join(REAL_HOME, ".cargo/bin/cargo"))
                  if c and os.access(c, os.X_OK)), None)
    if not cargo:
        skip("cargo not found (scripts/rust.sh installs Rust with rustup into ~/.cargo); "
             "flame-rs 0.7.0's locked dependencies need rustc >= 1.89, Debian 12's 1.63 is too old")
    env = dict(os.environ, CARGO_TARGET_DIR=CARGO_TARGET,
               RUSTUP_HOME=os.environ.get("RUSTUP_HOME", os.path.join(REAL_HOME, ".rustup")),
               CARGO_HOME=os.environ.get("CARGO_HOME", os.path.join(REAL_HOME, ".cargo")))
    env["PATH"] = os.path.dirname(cargo) + os.pathsep + env.get("PATH", "")
    t0 = time.time()
    p = subprocess.run([cargo, "build", "--locked", "-q", "-j2"], cwd=crate_dir, env=env,
                       capture_output=True, text=True, timeout=1500)
    if p.returncode != 0:
        err = p.stderr[-3000:]
        if any(s in err for s in ("failed to download", "Couldn't resolve host", "failed to get",
                                  "network failure", "spurious network")):
            skip(f"crates.io unreachable, flame-rs 0.7.0 cannot be fetched:\n{err}")
        if "requires rustc" in err:
            skip(f"rustc too old for flame-rs 0.7.0's dependencies (scripts/rust.sh installs a "
                 f"new one):\n{err}")
        raise AssertionError(f"cargo build of {crate_dir} failed:\n{err}")
    print(f"{os.path.basename(crate_dir)} built in {time.time() - t0:.1f} s "
          f"(target dir {CARGO_TARGET})", flush=True)
    return [os.path.join(CARGO_TARGET, "debug", b) for b in binaries]


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
