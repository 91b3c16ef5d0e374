"""Fixtures for the interop tests: a second, independent flame.v1 client
(Debian's python3-grpcio with stubs generated from our proto/) against the
real flame-session-manager daemon.

FLAME_TEST_TLS=1 runs every daemon with mutual TLS: the session manager
with the test PKI's server certificate (tests/tls/make_certs.sh), the
executor manager presenting the node certificate, and every client (grpcio
here, the CLIs through FLAME_CA_FILE/FLAME_CERT_FILE/FLAME_KEY_FILE) the
admin certificate. Tests reach the daemon through Daemon.url and channel()."""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

# grpcio's fork handlers can hang a child forked while its streams are busy
# (seen: a daemon started by subprocess spinning before exec); the daemons
# are started with fork+exec and need none of them.
os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"

SM_BIN = os.environ.get("FLAME_SM_BIN")
EM_BIN = os.environ.get("FLAME_EM_BIN")
BUILD_DIR = os.environ.get("FLAME_BUILD_DIR")
PROTO_DIR = os.environ.get("FLAME_PROTO_DIR")
MAKE_CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tls",
                          "make_certs.sh")
TLS = os.environ.get("FLAME_TEST_TLS") == "1"

_pki = None


def pki():
    """The test PKI (made once per run with the openssl CLI): a directory
    of NAME.crt/NAME.key, see tests/tls/make_certs.sh."""
    global _pki
    if _pki is None:
        d = tempfile.mkdtemp(prefix="flame-pki-")
        atexit.register(shutil.rmtree, d, True)
        subprocess.check_call(["sh", MAKE_CERTS, d])
        _pki = d
    return _pki


def pem(name):
    with open(os.path.join(pki(), name), "rb") as f:
        return f.read()


def tls_credentials(ca="ca", cert="admin"):
    """grpcio channel credentials: root certificates of ca, and the client
    certificate cert (None: none, as flamepy)."""
    import grpc
    return grpc.ssl_channel_credentials(
        root_certificates=pem(f"{ca}.crt"),
        private_key=pem(f"{cert}.key") if cert else None,
        certificate_chain=pem(f"{cert}.crt") if cert else None)


if TLS:
    # the CLIs started by the tests are admin clients, as the grpcio stubs
    os.environ["FLAME_CA_FILE"] = os.path.join(pki(), "ca.crt")
    os.environ["FLAME_CERT_FILE"] = os.path.join(pki(), "admin.crt")
    os.environ["FLAME_KEY_FILE"] = os.path.join(pki(), "admin.key")


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """Generates Python stubs from proto/ with protoc + grpc_python_plugin."""
    out = tmp_path_factory.mktemp("stubs")
    plugin = shutil.which("grpc_python_plugin")
    assert plugin, "grpc_python_plugin missing (package protobuf-compiler-grpc)"
    protos = [os.path.join(PROTO_DIR, p) for p in
              ("types.proto", "frontend.proto", "backend.proto", "shim.proto")]
    subprocess.check_call(["protoc", "-I", PROTO_DIR, f"--python_out={out}",
                           f"--grpc_python_out={out}",
                           f"--plugin=protoc-gen-grpc_python={plugin}"] + protos)
    sys.path.insert(0, str(out))
    import types_pb2, frontend_pb2, frontend_pb2_grpc  # noqa: E401

    class PB:
        types = types_pb2
        fe = frontend_pb2
        grpc = frontend_pb2_grpc
        stubs_dir = str(out)
    return PB


CHANNEL_OPTIONS = [
    # each channel its own subchannels: grpcio otherwise shares them per
    # address, with the reconnect backoff an earlier test's daemon left
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


def channel(port, tls=None):
    """A grpcio channel to the daemon on port: TLS as the suite runs, or
    with the given credentials."""
    import grpc
    if tls is None and TLS:
        tls = tls_credentials()
    if tls:
        return grpc.secure_channel(f"127.0.0.1:{port}", tls, options=CHANNEL_OPTIONS)
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=CHANNEL_OPTIONS)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    def __init__(self, workdir, tls=TLS, tls_yaml=None):
        """tls: mutual TLS with the test PKI; tls_yaml: the cluster.tls
        block to use instead (its files: names in the PKI)."""
        self.workdir = workdir
        self.tls = tls or tls_yaml is not None
        self.tls_yaml = tls_yaml
        self.port = free_port()
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        self.db = os.path.join(workdir, "flame.db")
        self.proc = None
        self.em = None
        self.em_args = []  # more executor manager options

    def start(self):
        import grpc
        log = open(os.path.join(self.workdir, "sm.log"), "ab")
        self.proc = subprocess.Popen(
            [SM_BIN, "--endpoint", self.url,
             "--storage", f"sqlite://{self.db}", "--config", self.config()],
            stdout=log, stderr=log)
        deadline = time.time() + 10
        while True:  # wait for the port before gRPC's reconnect backoff starts
            assert self.proc.poll() is None, "the session manager exited"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "the session manager did not listen"
                time.sleep(0.01)
        ch = channel(self.port, tls_credentials() if self.tls else False)
        try:
            grpc.channel_ready_future(ch).result(timeout=10)
        except grpc.FutureTimeoutError:
            with open(os.path.join(self.workdir, "sm.log"), errors="replace") as f:
                log = f.read()
            raise AssertionError(f"the session manager is not ready (running: "
                                 f"{self.proc.poll() is None}):\n{log[-3000:]}")
        finally:
            ch.close()

    def config(self):
        path = os.path.join(self.workdir, "cluster.yaml")
        with open(path, "w") as f:
            f.write("cluster:\n  resreq: cpu=1,mem=64m\n  schedule_interval: 100\n")
            if self.tls:
                d = pki()
                block = self.tls_yaml or {"cert_file": "server.crt", "key_file": "server.key",
                                          "ca_file": "ca.crt", "mutual": True}
                f.write("  tls:\n")
                for k, v in block.items():
                    if isinstance(v, bool):
                        v = "true" if v else "false"
                    elif not v.startswith("/"):
                        v = os.path.join(d, v)
                    f.write(f"    {k}: {v}\n")
        return path

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def start_em(self):
        self.em_log = os.path.join(self.workdir, f"em-{time.time_ns()}.log")
        log = open(self.em_log, "ab")
        tls = []
        if self.tls:  # the node's own certificate, never the server's
            d = pki()
            tls = ["--tls-ca", os.path.join(d, "ca.crt"), "--tls-cert",
                   os.path.join(d, "node.crt"), "--tls-key", os.path.join(d, "node.key")]
        self.em = subprocess.Popen(
            [EM_BIN, "--endpoint", self.url,
             "--work-dir", os.path.join(self.workdir, "work"), "--node", "test-node",
             "--resources", "cpu=2,mem=1g", "--task-timeout", "3"] + tls + self.em_args,
            stdout=log, stderr=log)

    def kill9_em(self):
        self.em.send_signal(signal.SIGKILL)
        self.em.wait()

    def stop_em(self):
        if self.em and self.em.poll() is None:
            self.em.terminate()
            rc = self.em.wait(timeout=20)
            with open(self.em_log, errors="replace") as f:
                log = f.read()
            assert rc == 0, f"executor manager exited {rc}:\n{log[-4000:]}"

    def stop(self):
        """SIGTERM: a clean stop must exit 0 (under ASan, with no leak)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            rc = self.proc.wait(timeout=10)
            with open(os.path.join(self.workdir, "sm.log"), errors="replace") as f:
                log = f.read()
            assert rc == 0, f"session manager exited {rc}:\n{log[-4000:]}"


    def alive(self):
        return self.proc.poll() is None


@pytest.fixture
def daemon():
    d = Daemon(tempfile.mkdtemp(prefix="flame-interop-"))
    d.start()
    yield d
    try:
        d.stop()
    finally:
        shutil.rmtree(d.workdir, ignore_errors=True)


@pytest.fixture
def cluster():
    """A session manager and an executor manager (node test-node, 2 CPUs)."""
    d = Daemon(tempfile.mkdtemp(prefix="flame-cluster-"))
    d.start()
    d.start_em()
    yield d
    try:
        try:
            d.stop_em()
        finally:
            d.stop()
    finally:
        shutil.rmtree(d.workdir, ignore_errors=True)


@pytest.fixture
def cfe(cluster, pb):
    import grpc
    ch = channel(cluster.port)
    yield pb.grpc.FrontendStub(ch)
    ch.close()


@pytest.fixture
def fe(daemon, pb):
    import grpc
    ch = channel(daemon.port)
    yield pb.grpc.FrontendStub(ch)
    ch.close()
