"""A C service's Instance server (libflame/service/serve.c, our own HTTP/2)
called by a gRPC client nobody here wrote: grpcio from PyPI (the venv of
scripts/pyvenv.sh), with stubs generated from proto/ by its grpc_tools,
talks to flmping-service directly over its Unix socket (no cluster): the
four methods, a large input, calls on several streams at once, an unknown
method, a malformed request, and SIGTERM."""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import pytest

from conftest import build_path

PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    """shim_pb2, shim_pb2_grpc and types_pb2 on sys.path."""
    out = str(tmp_path_factory.mktemp("stubs"))
    subprocess.check_call([sys.executable, "-m", "grpc_tools.protoc", "-I", PROTO,
                           f"--python_out={out}", f"--grpc_python_out={out}",
                           os.path.join(PROTO, "types.proto"),
                           os.path.join(PROTO, "shim.proto")])
    sys.path.insert(0, out)
    yield
    sys.path.remove(out)


@pytest.fixture
def service(stubs):
    """flmping-service on a socket in a temporary directory: (its socket
    path, the process)."""
    d = tempfile.mkdtemp(prefix="flame-instance-")
    sock = os.path.join(d, "svc.sock")
    env = dict(os.environ, FLAME_INSTANCE_ENDPOINT=f"unix:{sock}")
    proc = subprocess.Popen([build_path("daemons", "flmping-service")], env=env)
    deadline = time.time() + 30
    while not os.path.exists(sock):
        assert proc.poll() is None, "flmping-service exited"
        assert time.time() < deadline, "flmping-service never listened"
        time.sleep(0.02)
    yield sock, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    if os.path.exists(sock):
        os.unlink(sock)
    os.rmdir(d)


def stub(sock):
    import shim_pb2_grpc
    ch = grpc.insecure_channel(f"unix:{sock}")
    return ch, shim_pb2_grpc.InstanceStub(ch)


def test_methods_and_errors(service):
    import shim_pb2
    import types_pb2
    sock, proc = service
    ch, st = stub(sock)
    r = st.OnSessionEnter(shim_pb2.SessionContext(
        session_id="s1", application=shim_pb2.ApplicationContext(name="flmping")), timeout=30)
    assert r.return_code == 0
    for i in range(20):
        r = st.OnTaskInvoke(shim_pb2.TaskContext(task_id=str(i), session_id="s1",
                                                 input=b"ping"), timeout=30)
        assert r.return_code == 0 and b"hostname" in r.output
    # 8 MiB: past grpcio's first windows and many frames of 16 KiB
    big = b"x" * (8 << 20)
    r = st.OnTaskInvoke(shim_pb2.TaskContext(task_id="big", session_id="s1", input=big),
                        timeout=60)
    assert r.return_code == 0
    # a failure is the service's answer, not an RPC error
    r = st.OnTaskInvoke(shim_pb2.TaskContext(task_id="bad", session_id="s1", input=b"{oops"),
                        timeout=30)
    assert r.return_code != 0 and "JSON" in r.message
    b = st.OnTaskInvokeBatch(shim_pb2.TaskContextBatch(tasks=[
        shim_pb2.TaskContext(task_id=str(i), session_id="s1", input=b"") for i in range(50)]),
        timeout=30)
    assert len(b.results) == 50 and all(x.return_code == 0 for x in b.results)

    # calls in flight together: streams side by side on grpcio's connection
    errors = []

    def caller(k):
        try:
            for i in range(30):
                r = st.OnTaskInvoke(shim_pb2.TaskContext(task_id=f"{k}-{i}", session_id="s1",
                                                         input=b"p" * (k * 1000)), timeout=30)
                assert r.return_code == 0
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
    threads = [threading.Thread(target=caller, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    nope = ch.unary_unary("/flame.v1.Instance/Nope")
    with pytest.raises(grpc.RpcError) as e:
        nope(b"", timeout=30)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "unknown method" in e.value.details()
    raw = ch.unary_unary("/flame.v1.Instance/OnTaskInvoke")
    with pytest.raises(grpc.RpcError) as e:
        raw(b"\xff\xff\xff\xff", timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # and the connection still serves
    r = st.OnTaskInvoke(shim_pb2.TaskContext(task_id="last", session_id="s1"), timeout=30)
    assert r.return_code == 0
    r = st.OnSessionLeave(types_pb2.EmptyRequest(), timeout=30)
    assert r.return_code == 0
    ch.close()

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert not os.path.exists(sock)
