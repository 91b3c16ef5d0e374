"""flame.connect / flame.Client over mutual TLS, against a session manager
of its own (certificates from tests/tls/make_certs.sh)."""
import os
import shutil
import subprocess
import tempfile

import pytest

import flame
from conftest import Cluster

MAKE_CERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests",
                          "tls", "make_certs.sh")


@pytest.fixture
def mtls():
    pki = tempfile.mkdtemp(prefix="flame-py-pki-")
    subprocess.check_call(["sh", MAKE_CERTS, pki])
    c = Cluster()
    c.endpoint = c.endpoint.replace("http://", "https://")
    c.start_sm(["--tls-cert", f"{pki}/server.crt", "--tls-key", f"{pki}/server.key",
                "--tls-ca", f"{pki}/ca.crt", "--mtls"])
    yield c, pki
    c.sm.terminate()
    assert c.sm.wait(20) == 0
    shutil.rmtree(c.tmp, ignore_errors=True)
    shutil.rmtree(pki, ignore_errors=True)


def test_connect_with_a_client_certificate(mtls):
    c, pki = mtls
    cl = flame.Client(c.endpoint, ca_file=f"{pki}/ca.crt", cert_file=f"{pki}/admin.crt",
                      key_file=f"{pki}/admin.key")
    assert cl.endpoint == c.endpoint
    assert "flmping" in [a["name"] for a in cl.list_applications()]
    # no certificate: refused at the handshake
    with pytest.raises(flame.FlameError):
        flame.Client(c.endpoint, ca_file=f"{pki}/ca.crt").list_applications()
    # a file that is not there is said at once
    with pytest.raises(flame.FlameError) as e:
        flame.Client(c.endpoint, ca_file=f"{pki}/nope.crt")
    assert "nope.crt" in str(e.value)
