"""Batching is the default for services written with this package: a run of
tasks in one OnTaskInvokeBatch reaches the user's per-task on_task_invoke one
task at a time, each once and in order; an exception fails only its own task;
the session's state carries across batches and single calls. The service is
driven over flame.v1 Instance directly (Debian's python3-grpcio, messages
from our proto/), as the executor manager's host shim drives it, so that
the batch path is exercised whatever the machine's load; then end to end
through a cluster."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

import flame

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "..", "..", "proto")
SERVICE = os.path.join(HERE, "batch_service.py")


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    grpc = pytest.importorskip("grpc", reason="Debian's python3-grpcio drives the service")
    out = tmp_path_factory.mktemp("pb")
    subprocess.check_call(["protoc", "-I", PROTO, f"--python_out={out}", "types.proto",
                           "shim.proto"])
    sys.path.insert(0, str(out))
    import shim_pb2
    import types_pb2
    return grpc, shim_pb2, types_pb2


@pytest.fixture
def instance(pb):
    """The service, started as the host shim starts it; yields call(method,
    request, reply type)."""
    grpc, shim_pb2, types_pb2 = pb
    tmp = tempfile.mkdtemp(prefix="flame-batch-")
    sock = os.path.join(tmp, "svc.sock")
    proc = subprocess.Popen([sys.executable, SERVICE], env=dict(os.environ,
                            FLAME_INSTANCE_ENDPOINT=sock),
                            stdout=open(os.path.join(tmp, "svc.log"), "ab"),
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.close()
            break
        except OSError:
            assert proc.poll() is None, open(os.path.join(tmp, "svc.log")).read()
            assert time.time() < deadline, "the service did not listen"
            time.sleep(0.05)
    ch = grpc.insecure_channel("unix:" + sock)

    def call(method, req, reply):
        f = ch.unary_unary(f"/flame.v1.Instance/{method}",
                           request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=reply.FromString)
        return f(req, timeout=60)

    yield call, shim_pb2, types_pb2
    ch.close()
    proc.terminate()
    assert proc.wait(30) == 0
    shutil.rmtree(tmp, ignore_errors=True)


def batch(call, shim_pb2, types_pb2, items):
    """One OnTaskInvokeBatch of (task_id, input) pairs (input None: unset)."""
    tasks = [shim_pb2.TaskContext(task_id=t, session_id="s1", **({} if i is None else {"input": i}))
             for t, i in items]
    r = call("OnTaskInvokeBatch", shim_pb2.TaskContextBatch(tasks=tasks), shim_pb2.TaskResultBatch)
    assert len(r.results) == len(items)
    return [(x.return_code, x.output if x.HasField("output") else None,
             x.message if x.HasField("message") else None) for x in r.results]


def test_batch_runs_each_task_once_with_per_task_failures(instance):
    call, shim_pb2, types_pb2 = instance
    enter = shim_pb2.SessionContext(session_id="s1", common_data=b"shared",
                                    application=shim_pb2.ApplicationContext(name="batch"))
    assert call("OnSessionEnter", enter, types_pb2.Result).return_code == 0
    got = batch(call, shim_pb2, types_pb2, [
        ("1", b"x"), ("2", b"x"), ("3", b"fail"), ("4", b"x"), ("5", b"str"), ("6", b"array"),
        ("7", b"int"), ("8", b"none"), ("9", b"common"), ("10", b"exit"), ("11", None),
        ("12", b"x")])
    assert got[0] == (0, b"1", None) and got[1] == (0, b"2", None)
    assert got[2][0] != 0 and got[2][2] == "task 3 asked to fail"
    assert got[3] == (0, b"3", None)  # the failure cost its own task only
    assert got[4] == (0, b"text", None) and got[5] == (0, b"arr", None)
    assert got[6][0] != 0 and "must return bytes or None" in got[6][2]
    assert got[7] == (0, None, None)
    assert got[8] == (0, b"shared", None)
    assert got[9][0] != 0 and got[9][2] == "asked to exit"  # not the service's end
    assert got[10] == (0, b"4", None)  # no input: counted, as a task with input
    assert got[11] == (0, b"5", None)
    # state carries from batch to single call to batch
    one = call("OnTaskInvoke", shim_pb2.TaskContext(task_id="13", session_id="s1", input=b"x"),
               types_pb2.TaskResult)
    assert one.return_code == 0 and one.output == b"6"
    got = batch(call, shim_pb2, types_pb2, [(str(i), b"x") for i in range(14, 114)] +
                [("114", b"seen")])
    assert [o for _, o, _ in got[:-1]] == [str(n).encode() for n in range(7, 107)]
    assert got[-1][1].decode().split("\n") == [str(i) for i in range(1, 115)]  # each once, in order
    assert call("OnSessionLeave", types_pb2.EmptyRequest(), types_pb2.Result).return_code == 0


def test_many_tasks_through_a_cluster(cluster):
    """End to end: however the executor manager cuts them into batches, the
    handler sees every task once and one failure fails one task."""
    name = "py-batch"
    flame.register_application(name, {"command": sys.executable, "arguments": [SERVICE]})
    try:
        with flame.create_session(name, max_instances=1) as s:
            n = 600
            outs = s.map([b"x"] * n)
            assert sorted(int(o) for o in outs) == list(range(1, n + 1))
            futs = [s.run(b"fail" if i == 50 else b"x") for i in range(100)]
            failed = 0
            for i, f in enumerate(futs):
                if i == 50:
                    with pytest.raises(flame.FlameError) as e:
                        f.result(timeout=120)
                    assert "asked to fail" in str(e.value)
                    failed += 1
                else:
                    assert int(f.result(timeout=120)) > n
            assert failed == 1
            seen = s.invoke(b"seen").decode().split("\n")
            assert len(seen) == len(set(seen)) == n + 100 + 1
    finally:
        flame.unregister_application(name)
