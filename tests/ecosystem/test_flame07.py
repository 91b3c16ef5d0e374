"""Both generations of Flame's SDKs against one cluster of ours.

flame-rs 0.7.0 (crates.io; tests/ecosystem/rust: a client and a service)
runs its checks (WatchTasks, plural lists, suspend/resume, a 0.7 service's
wrapped replies) while a 0.6-style client (grpcio with stubs from proto/,
the singular calls) works the same cluster; and many concurrent WatchTask
streams on one connection, each dropped on its final message as Flame
0.6's flmping does, all complete.

The Rust build goes to ~/.cache/flame/cargo-target (FLAME_CARGO_TARGET_DIR),
outside the repo, so it is built once per machine. Without cargo, or with
crates.io unreachable, the Rust test is skipped with the reason printed."""
import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
from conftest import cargo_build

HERE = os.path.dirname(os.path.abspath(__file__))
RUST_DIR = os.path.join(HERE, "rust")
N_TASKS = int(os.environ.get("FLAME07_TASKS", "30000"))
N_STREAMS = int(os.environ.get("FLAME07_STREAMS", "30000"))

_spec = importlib.util.spec_from_file_location(
    "interop_conftest", os.path.join(HERE, "..", "interop", "conftest.py"))
interop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(interop)
pb = interop.pb  # the stubs fixture


@pytest.fixture(scope="module")
def rust_bins():
    """Builds the crate (once per machine: the target dir is a cache)."""
    return cargo_build(RUST_DIR, "flame07-client", "flame07-service", "flame06-watch")


@pytest.fixture
def cluster():
    d = interop.Daemon(tempfile.mkdtemp(prefix="flame-eco07-"))
    d.start()
    d.start_em()
    yield d
    try:
        try:
            d.stop_em()
        finally:
            d.stop()
    finally:
        if not os.environ.get("FLAME07_KEEP"):
            shutil.rmtree(d.workdir, ignore_errors=True)


def old_generation_flow(port, pb, n, errors):
    """What a flamepy 0.6-era client does, with 0.6's singular calls."""
    try:
        ch = interop.channel(port)
        fe = pb.grpc.FrontendStub(ch)
        spec = pb.types.SessionSpec(application="flmping", batch_size=1)
        s = fe.CreateSession(pb.fe.CreateSessionRequest(session_id="py06", session=spec))
        assert s.metadata.id == "py06"
        ids = [fe.CreateTask(pb.fe.CreateTaskRequest(
            task=pb.types.TaskSpec(session_id="py06"))).metadata.id for _ in range(n)]
        for tid in ids:
            last = None
            for last in fe.WatchTask(pb.fe.WatchTaskRequest(session_id="py06", task_id=tid),
                                     timeout=300):
                pass
            assert last.status.state == pb.types.Succeed, last
        assert any(x.metadata.id == "py06"
                   for x in fe.ListSession(pb.fe.ListSessionRequest()).sessions)
        assert len(list(fe.ListTask(pb.fe.ListTaskRequest(session_id="py06")))) == n
        assert any(a.metadata.name == "flmping"
                   for a in fe.ListApplication(pb.fe.ListApplicationRequest()).applications)
        fe.CloseSession(pb.fe.CloseSessionRequest(session_id="py06"))
        ch.close()
    except BaseException as e:  # reported by the test thread
        errors.append(e)


def test_flame_rs_07_beside_06(cluster, pb, rust_bins):
    client, service, _ = rust_bins
    errors = []
    old = threading.Thread(target=old_generation_flow, args=(cluster.port, pb, 300, errors))
    t0 = time.time()
    proc = subprocess.Popen([client, cluster.url, service, str(N_TASKS)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    old.start()
    out, _ = proc.communicate(timeout=1200)
    old.join(timeout=600)
    print(out)
    print(f"flame07-client took {time.time() - t0:.1f} s", flush=True)
    assert proc.returncode == 0, f"flame07-client failed:\n{out}"
    assert "all checks passed" in out
    assert not old.is_alive(), "the 0.6-style client did not finish"
    assert not errors, f"the 0.6-style client failed beside it: {errors[0]!r}"


def test_many_watch_streams_one_connection(cluster, pb):
    """N_STREAMS WatchTask streams open at once on one channel, each
    cancelled by the client as soon as its final message arrives (as Flame
    0.6's flmping does over h2): every one sees its task end, and the
    connection still works after."""
    import asyncio
    import grpc

    async def run():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{cluster.port}",
                                             options=interop.CHANNEL_OPTIONS) as ch:
            fe = pb.grpc.FrontendStub(ch)
            spec = pb.types.SessionSpec(application="flmping", batch_size=1)
            await fe.CreateSession(pb.fe.CreateSessionRequest(session_id="many", session=spec))
            first = None
            left = N_STREAMS
            while left:
                k = min(left, 1000)
                r = await fe.CreateTasks(pb.fe.CreateTasksRequest(session_id="many", count=k))
                first = first or r.first_task_id
                left -= k

            async def watch(tid):
                call = fe.WatchTask(pb.fe.WatchTaskRequest(session_id="many", task_id=str(tid)),
                                    timeout=900)
                async for t in call:
                    if t.status.state == pb.types.Succeed:
                        call.cancel()  # drop the stream on the final message
                        return True
                return False

            t0 = time.time()
            done = await asyncio.gather(*(watch(first + i) for i in range(N_STREAMS)))
            took = time.time() - t0
            s = await fe.GetSession(pb.fe.GetSessionRequest(session_id="many"))
            return sum(done), took, s

    ok, took, s = asyncio.run(run())
    print(f"{N_STREAMS} concurrent WatchTask streams on one connection: {ok} saw their task "
          f"end in {took:.1f} s", flush=True)
    assert ok == N_STREAMS
    assert s.status.succeed == N_STREAMS


def test_flmping06_pattern_over_h2(cluster, pb, rust_bins):
    """Flame 0.6's flmping over Rust's h2: N_STREAMS CreateTask calls and
    WatchTask streams at once on one connection, each stream dropped on its
    final message. Trailers sent apart from the last message made h2 reset
    those streams itself and, after 2,000-3,000 of them, end the connection
    with GOAWAY too_many_internal_resets."""
    ch = interop.channel(cluster.port)
    fe = pb.grpc.FrontendStub(ch)
    spec = pb.types.SessionSpec(application="flmping", batch_size=1)
    fe.CreateSession(pb.fe.CreateSessionRequest(session_id="h2", session=spec))
    p = subprocess.run([rust_bins[2], cluster.url, "h2", str(N_STREAMS)], capture_output=True,
                       text=True, timeout=1200)
    print(p.stdout + p.stderr[-2000:], flush=True)
    assert p.returncode == 0, p.stderr[-3000:]
    s = fe.GetSession(pb.fe.GetSessionRequest(session_id="h2"))
    assert s.status.succeed == N_STREAMS
    ch.close()


def test_generation_07_calls_grpcio(daemon07, pb):
    """Flame 0.7's calls from grpcio (no Rust needed): WatchTasks on one
    bidirectional stream, the plural lists and their filters, suspend and
    resume of a session no executor serves (no node here)."""
    import queue
    import grpc
    ch = interop.channel(daemon07.port)
    fe = pb.grpc.FrontendStub(ch)
    T, F = pb.types, pb.fe
    spec = T.SessionSpec(application="flmping", batch_size=1)
    fe.CreateSession(F.CreateSessionRequest(session_id="g7", session=spec))
    fe.CreateSession(F.CreateSessionRequest(session_id="g7b", session=spec))
    ids = [fe.CreateTask(F.CreateTaskRequest(task=T.TaskSpec(session_id="g7"))).metadata.id
           for _ in range(3)]

    # suspend: nothing holds it, so Suspended at once; tasks still come in
    s = fe.SuspendSession(F.SuspendSessionRequest(session_id="g7"))
    assert s.status.state == T.Suspended
    ids.append(fe.CreateTask(F.CreateTaskRequest(task=T.TaskSpec(session_id="g7"))).metadata.id)
    got = fe.ListSessions(F.ListSessionsRequest(state=T.Suspended)).sessions
    assert [x.metadata.id for x in got] == ["g7"]
    got = fe.ListSessions(F.ListSessionsRequest(ids=["g7b", "nope"])).sessions
    assert [x.metadata.id for x in got] == ["g7b"]
    got = fe.ListSessions(F.ListSessionsRequest(application="flmping")).sessions
    assert sorted(x.metadata.id for x in got) == ["g7", "g7b"]
    assert len(fe.ListSessions(F.ListSessionsRequest(application="other")).sessions) == 0
    assert fe.ResumeSession(F.ResumeSessionRequest(session_id="g7")).status.state == T.Open
    assert fe.ResumeSession(F.ResumeSessionRequest(session_id="g7")).status.state == T.Open
    with pytest.raises(grpc.RpcError) as e:
        fe.SuspendSession(F.SuspendSessionRequest(session_id="nope"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    apps = fe.ListApplications(F.ListApplicationsRequest()).applications
    assert "flmping" in [a.metadata.name for a in apps]
    assert len(fe.ListApplications(F.ListApplicationsRequest(state=T.Disabled)).applications) == 0
    assert len(list(fe.ListTasks(F.ListTasksRequest(session_id="g7")))) == 4
    fe.ListExecutors(F.ListExecutorsRequest())

    # WatchTasks: every watched task's state now, then its changes; the
    # stream stays open after they end, until the client ends it
    reqs = queue.Queue()

    def requests():
        while True:
            r = reqs.get()
            if r is None:
                return
            yield r

    stream = fe.WatchTasks(requests(), timeout=120)
    for tid in ids:
        reqs.put(F.WatchTaskRequest(session_id="g7", task_id=tid))
    seen = {}
    for _ in ids:
        t = next(stream)
        seen[t.metadata.id] = t.status.state
    assert seen == {tid: T.Pending for tid in ids}
    # closing the session cancels them: each watch hears of it
    fe.CloseSession(F.CloseSessionRequest(session_id="g7"))
    ended = {}
    while len(ended) < len(ids):
        t = next(stream)
        ended[t.metadata.id] = t.status.state
    assert ended == {tid: T.Cancelled for tid in ids}
    reqs.put(F.WatchTaskRequest(session_id="g7", task_id=ids[0]))  # already ended
    assert next(stream).status.state == T.Cancelled
    reqs.put(None)  # half-close: nothing left to watch, the stream ends OK
    assert list(stream) == []

    stream = fe.WatchTasks(iter([F.WatchTaskRequest(session_id="g7", task_id="999")]), timeout=60)
    with pytest.raises(grpc.RpcError) as e:
        list(stream)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    ch.close()


def test_07_fields_stored_and_returned(daemon07, pb):
    """SessionSpec.tokens and batch_size and TaskSpec.affinity come back from
    every read, and from sqlite after a session manager restart."""
    import grpc
    T, F = pb.types, pb.fe

    def fe_call():
        ch = interop.channel(daemon07.port)
        return ch, pb.grpc.FrontendStub(ch)

    ch, fe = fe_call()
    spec = T.SessionSpec(application="flmping", batch_size=3,
                         tokens={"svc": "secret", "db": "pw=1;x"})
    s = fe.CreateSession(F.CreateSessionRequest(session_id="tok7", session=spec))
    assert dict(s.spec.tokens) == {"svc": "secret", "db": "pw=1;x"} and s.spec.batch_size == 3
    aff = [b"gpu-cache:abc", b"", b"\x00\xffbinary"]
    t = fe.CreateTask(F.CreateTaskRequest(task=T.TaskSpec(session_id="tok7", input=b"x",
                                                           affinity=aff)))
    assert list(t.spec.affinity) == aff
    plain = fe.CreateTask(F.CreateTaskRequest(task=T.TaskSpec(session_id="tok7")))
    assert list(plain.spec.affinity) == []
    with pytest.raises(grpc.RpcError) as e:  # bounded
        fe.CreateTask(F.CreateTaskRequest(task=T.TaskSpec(session_id="tok7",
                                                          affinity=[b"k"] * 65)))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ch.close()
    daemon07.stop()
    daemon07.start()
    ch, fe = fe_call()
    s = fe.GetSession(F.GetSessionRequest(session_id="tok7"))
    assert dict(s.spec.tokens) == {"svc": "secret", "db": "pw=1;x"} and s.spec.batch_size == 3
    got = fe.GetTask(F.GetTaskRequest(session_id="tok7", task_id=t.metadata.id))
    assert list(got.spec.affinity) == aff and got.spec.input == b"x"
    listed = {x.metadata.id: list(x.spec.affinity)
              for x in fe.ListTasks(F.ListTasksRequest(session_id="tok7"))}
    assert listed == {t.metadata.id: aff, plain.metadata.id: []}
    ch.close()


def test_batch_size_is_a_gang(cluster, pb):
    """SessionSpec.batch_size k > 1: the session is bound k executors at a
    time (one task still gets a whole gang), never part of one; a gang no
    cluster can hold, or one beyond its max_instances, gets event 1003 and
    holds nothing. The node here has 2 CPUs, each executor takes 1."""
    T, F = pb.types, pb.fe
    ch = interop.channel(cluster.port)
    fe = pb.grpc.FrontendStub(ch)

    def bound(sid):
        return [e for e in fe.ListExecutors(F.ListExecutorsRequest()).executors
                if e.status.session_id == sid and e.status.state in (T.ExecutorBinding,
                                                                     T.ExecutorBound)]

    def wait_for(cond, what, timeout=120):
        deadline = time.time() + timeout
        while not (v := cond()):
            assert time.time() < deadline, f"timed out waiting for {what}"
            time.sleep(0.1)
        return v

    def events_1003(sid):
        return [e.message for e in fe.GetSession(F.GetSessionRequest(session_id=sid))
                .status.events if e.code == 1003]

    fe.CreateSession(F.CreateSessionRequest(session_id="gang3", session=T.SessionSpec(
        application="flmping", batch_size=3)))
    fe.CreateSession(F.CreateSessionRequest(session_id="gangmax", session=T.SessionSpec(
        application="flmping", batch_size=2, max_instances=1)))
    for sid in ("gang3", "gangmax"):
        fe.CreateTask(F.CreateTaskRequest(task=T.TaskSpec(session_id=sid)))
    msg = wait_for(lambda: events_1003("gang3"), "event 1003 of gang3")
    assert "batch_size (gang) is 3 executors" in msg[0] and "hold only 2" in msg[0], msg
    msg = wait_for(lambda: events_1003("gangmax"), "event 1003 of gangmax")
    assert "max_instances only 1" in msg[0], msg
    assert bound("gang3") == [] and bound("gangmax") == []
    for sid in ("gang3", "gangmax"):
        fe.CloseSession(F.CloseSessionRequest(session_id=sid))

    fe.CreateSession(F.CreateSessionRequest(session_id="gang2", session=T.SessionSpec(
        application="flmping", batch_size=2)))
    tid = fe.CreateTask(F.CreateTaskRequest(task=T.TaskSpec(session_id="gang2"))).metadata.id
    last = None
    for last in fe.WatchTask(F.WatchTaskRequest(session_id="gang2", task_id=tid), timeout=120):
        pass
    assert last.status.state == T.Succeed, last
    assert len(wait_for(lambda: len(bound("gang2")) == 2 and bound("gang2"),
                        "both executors of the gang")) == 2
    fe.CloseSession(F.CloseSessionRequest(session_id="gang2"))
    ch.close()


@pytest.fixture
def daemon07():
    d = interop.Daemon(tempfile.mkdtemp(prefix="flame-eco07-"))
    d.start()
    yield d
    try:
        d.stop()
    finally:
        shutil.rmtree(d.workdir, ignore_errors=True)


class FlameOnly:
    """A gRPC proxy in front of our session manager that answers only what
    Flame's own session manager has: our additions (CreateTasks,
    WatchSession, RunSession, OnTaskInvokeBatch) get UNIMPLEMENTED, and an
    empty session id is refused (Flame would store it)."""
    OURS = {"CreateTasks", "WatchSession", "RunSession"}

    def __init__(self, target_port):
        import grpc
        from concurrent import futures
        self.up = grpc.insecure_channel(f"127.0.0.1:{target_port}")
        self.refused = []
        self.created = []
        proxy = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                method = details.method.rsplit("/", 1)[-1]
                if method in FlameOnly.OURS:
                    def unimplemented(req, ctx):
                        proxy.refused.append(method)
                        ctx.abort(grpc.StatusCode.UNIMPLEMENTED, f"Method not found: {method}")
                    return grpc.unary_unary_rpc_method_handler(unimplemented)
                streams = method in ("WatchTask", "ListTask")
                call = (proxy.up.unary_stream if streams else proxy.up.unary_unary)(details.method)

                def forward(req, ctx):
                    if method == "CreateSession":
                        sid = proxy.session_id(req)
                        proxy.created.append(sid)
                        if not sid:
                            ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty session id")
                    try:
                        return call(req) if not streams else list(call(req))
                    except grpc.RpcError as e:
                        ctx.abort(e.code(), e.details())

                if streams:
                    return grpc.unary_stream_rpc_method_handler(lambda r, c: iter(forward(r, c)))
                return grpc.unary_unary_rpc_method_handler(forward)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                  handlers=[Handler()])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @staticmethod
    def session_id(raw):
        """CreateSessionRequest.session_id (field 1) of the raw bytes."""
        if len(raw) >= 2 and raw[0] == 0x0A:
            n, i, shift = 0, 1, 0
            while True:
                b = raw[i]
                n |= (b & 0x7F) << shift
                i += 1
                shift += 7
                if not b & 0x80:
                    break
            return raw[i:i + n].decode()
        return ""

    def stop(self):
        self.server.stop(None)
        self.up.close()


def test_our_clients_against_flame_semantics(cluster):
    """Our flmping through a server with Flame's calls only: it names its
    session itself and falls back from CreateTasks and WatchSession to
    CreateTask and polling."""
    proxy = FlameOnly(cluster.port)
    try:
        flmping = os.path.join(interop.BUILD_DIR, "cli", "flmping")
        p = subprocess.run([flmping, "--endpoint", f"http://127.0.0.1:{proxy.port}", "-t", "20"],
                           capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, FLAME_CONFIG="/nonexistent"))
        print(p.stdout[-1500:], p.stderr[-1500:], flush=True)
        assert p.returncode == 0, p.stderr
        assert "<20> tasks was completed" in p.stdout
        assert len(proxy.created) == 1 and proxy.created[0].startswith("flmping-"), proxy.created
        assert "CreateTasks" in proxy.refused and "WatchSession" in proxy.refused
    finally:
        proxy.stop()
