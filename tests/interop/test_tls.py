"""TLS and mutual TLS with the real daemons: handshakes a grpcio client and
our CLIs make (with certificates from tests/tls/make_certs.sh), certificate
reload without a restart, and bad TLS settings refused at start."""
import os
import shutil
import subprocess
import tempfile

import grpc
import pytest

from conftest import BUILD_DIR, SM_BIN, Daemon, channel, pki, tls_credentials

MUTUAL = {"cert_file": "server.crt", "key_file": "server.key", "ca_file": "ca.crt",
          "mutual": True}


def start(tls_yaml):
    d = Daemon(tempfile.mkdtemp(prefix="flame-tls-"), tls_yaml=tls_yaml)
    d.start()
    return d


@pytest.fixture
def mtls():
    d = start(MUTUAL)
    yield d
    try:
        d.stop()
    finally:
        shutil.rmtree(d.workdir, ignore_errors=True)


def list_apps(pb, port, tls):
    ch = channel(port, tls)
    try:
        return pb.grpc.FrontendStub(ch).ListApplication(pb.fe.ListApplicationRequest(), timeout=10)
    finally:
        ch.close()


def code_of(pb, port, tls):
    try:
        list_apps(pb, port, tls)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def sm_log(d):
    with open(os.path.join(d.workdir, "sm.log"), errors="replace") as f:
        return f.read()


def test_mutual_tls_handshake_matrix(mtls, pb):
    """Each refusal is UNAVAILABLE (the handshake fails, no RPC runs) and
    the session manager's log says why."""
    port = mtls.port
    assert code_of(pb, port, False) == grpc.StatusCode.UNAVAILABLE               # plaintext
    assert code_of(pb, port, tls_credentials(cert=None)) == grpc.StatusCode.UNAVAILABLE
    assert code_of(pb, port, tls_credentials(cert="rogue")) == grpc.StatusCode.UNAVAILABLE
    assert code_of(pb, port, tls_credentials(cert="expired")) == grpc.StatusCode.UNAVAILABLE
    assert code_of(pb, port, tls_credentials(ca="other-ca")) == grpc.StatusCode.UNAVAILABLE
    for cert in ("admin", "user"):
        assert code_of(pb, port, tls_credentials(cert=cert)) == grpc.StatusCode.OK, cert
    # the handshake passes; a node certificate speaks only the Backend (auth/)
    assert code_of(pb, port, tls_credentials(cert="node")) == grpc.StatusCode.PERMISSION_DENIED
    log = sm_log(mtls)
    assert "TLS handshake refused" in log
    assert "the client presented no certificate; mutual TLS requires one" in log
    assert "the peer speaks plaintext" in log
    assert "does not verify against the CA" in log
    assert "mutual TLS" in log  # said at start


def test_flamepy_shape_server_side_tls(pb):
    """Flame's cluster.tls (no ca_file, no mutual): a grpcio client with only
    the root certificates works, as flamepy does it."""
    d = start({"cert_file": "server.crt", "key_file": "server.key"})
    try:
        assert code_of(pb, d.port, tls_credentials(cert=None)) == grpc.StatusCode.OK
        assert code_of(pb, d.port, False) == grpc.StatusCode.UNAVAILABLE
    finally:
        d.stop()
        shutil.rmtree(d.workdir, ignore_errors=True)
    # with a ca_file and mutual off: no certificate still gets in (the
    # anonymous identity), a certificate from another CA does not
    d = start({"cert_file": "server.crt", "key_file": "server.key", "ca_file": "ca.crt"})
    try:
        assert code_of(pb, d.port, tls_credentials(cert=None)) == grpc.StatusCode.OK
        assert code_of(pb, d.port, tls_credentials(cert="user")) == grpc.StatusCode.OK
        assert code_of(pb, d.port, tls_credentials(cert="rogue")) == grpc.StatusCode.UNAVAILABLE
    finally:
        d.stop()
        shutil.rmtree(d.workdir, ignore_errors=True)


def test_certificates_reload_without_restart(pb):
    d = None
    live = tempfile.mkdtemp(prefix="flame-tls-live-")
    try:
        for name in ("server.crt", "server.key"):
            shutil.copy(os.path.join(pki(), name), os.path.join(live, name))
        d = start({"cert_file": os.path.join(live, "server.crt"),
                   "key_file": os.path.join(live, "server.key"),
                   "ca_file": "ca.crt", "mutual": True})
        assert code_of(pb, d.port, tls_credentials()) == grpc.StatusCode.OK
        # the operator replaces the files (each by a rename, key first)
        for src, dst in (("other-server.key", "server.key"), ("other-server.crt", "server.crt")):
            shutil.copy(os.path.join(pki(), src), os.path.join(live, dst + ".new"))
            os.rename(os.path.join(live, dst + ".new"), os.path.join(live, dst))
        # new connections see the new certificate, same process
        assert code_of(pb, d.port, tls_credentials(ca="other-ca")) == grpc.StatusCode.OK
        assert code_of(pb, d.port, tls_credentials()) == grpc.StatusCode.UNAVAILABLE
        assert d.alive()
        assert "certificates reloaded" in sm_log(d)
    finally:
        if d:
            d.stop()
            shutil.rmtree(d.workdir, ignore_errors=True)
        shutil.rmtree(live, ignore_errors=True)


@pytest.mark.parametrize("block,needle", [
    ({"cert_file": "nope.crt", "key_file": "server.key"}, "cluster.tls.cert_file: "),
    ({"cert_file": "server.crt", "key_file": "user.key"}, "does not match the certificate"),
    ({"cert_file": "server.crt", "key_file": "server.key", "ca_file": "server.key"},
     "cluster.tls.ca_file: "),
    ({"cert_file": "server.crt"}, "cluster.tls.key_file: required"),
])
def test_bad_tls_settings_stop_the_start(block, needle):
    d = Daemon(tempfile.mkdtemp(prefix="flame-tls-"), tls_yaml=block)
    try:
        out = subprocess.run([SM_BIN, "--endpoint", d.url, "--storage", "none",
                              "--config", d.config()],
                             capture_output=True, text=True, timeout=10)
        assert out.returncode == 2, out.stderr
        assert needle in out.stderr, out.stderr
    finally:
        shutil.rmtree(d.workdir, ignore_errors=True)


def test_flmping_over_mtls_with_an_executor_manager_on_mtls(mtls, pb):
    """End to end: the executor manager registers with its node certificate,
    flmping (the client core) runs tasks with a user certificate."""
    mtls.start_em()
    try:
        env = dict(os.environ, FLAME_CA_FILE=os.path.join(pki(), "ca.crt"),
                   FLAME_CERT_FILE=os.path.join(pki(), "admin.crt"),
                   FLAME_KEY_FILE=os.path.join(pki(), "admin.key"))
        out = subprocess.run([os.path.join(BUILD_DIR, "cli", "flmping"), "-t", "50",
                              "--endpoint", mtls.url], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-2].startswith("<50> tasks was completed in <")
        # without a certificate the same client is refused at the handshake
        env.pop("FLAME_CERT_FILE")
        env.pop("FLAME_KEY_FILE")
        out = subprocess.run([os.path.join(BUILD_DIR, "cli", "flmctl"), "--endpoint",
                              mtls.url, "list", "-a"], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
        # and an http:// endpoint does not speak TLS at all
        out = subprocess.run([os.path.join(BUILD_DIR, "cli", "flmctl"), "--endpoint",
                              mtls.url.replace("https", "http"), "list", "-a"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode != 0
    finally:
        mtls.stop_em()


def test_executor_manager_without_a_node_certificate_is_refused(mtls, pb):
    """Mutual TLS also guards the Backend: an executor manager that
    presents no certificate never registers, and the refusal is logged."""
    import time
    em_log = os.path.join(mtls.workdir, "em-nocert.log")
    env = {k: v for k, v in os.environ.items()
           if k not in ("FLAME_CERT_FILE", "FLAME_KEY_FILE")}
    em = subprocess.Popen([os.environ["FLAME_EM_BIN"], "--endpoint", mtls.url, "--work-dir",
                           os.path.join(mtls.workdir, "work"), "--node", "no-cert",
                           "--tls-ca", os.path.join(pki(), "ca.crt")],
                          env=env, stdout=open(em_log, "ab"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 10
        while "the client presented no certificate" not in sm_log(mtls):
            assert time.time() < deadline, sm_log(mtls)
            time.sleep(0.05)
        ch = channel(mtls.port, tls_credentials())
        try:
            nodes = pb.grpc.FrontendStub(ch).ListNodes(pb.fe.ListNodesRequest(), timeout=10).nodes
        finally:
            ch.close()
        assert [n for n in nodes if n.metadata.name == "no-cert"] == []
    finally:
        em.terminate()
        assert em.wait(20) == 0
