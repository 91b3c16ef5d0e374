"""Hostile input (issue 8, item 4): each attack of the issue's probe list
against the real flame-session-manager, from outside (grpcio with raw
bytes, raw sockets). Each must be refused or survived without a crash, a
stall of other clients, or memory that stays taken; a concurrent client
keeps being served meanwhile."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import grpc
import pytest

from conftest import SM_BIN, channel, free_port

# RegisterNodeRequest{node: Node{metadata{name "hostile1"}, <field 0 as a
# non-canonical two-byte tag, varint 1>, spec{hostname "h"}}}: protobuf-c
# accepts the field number 0 when its tag is padded, re-packs it
# canonically, and the re-packed bytes no longer unpack (the probe's
# SIGSEGV of a copy path).
NODE_22 = bytes([0x0a, 0x14,
                 0x0a, 0x0a, 0x0a, 0x08]) + b"hostile1" + bytes([
                 0x80, 0x00, 0x01,
                 0x12, 0x03, 0x0a, 0x01, 0x68])
assert len(NODE_22) == 22


class Daemon:
    """A session manager of its own (storage none: fast set-up), with a
    cluster.limits block the test chooses."""

    def __init__(self, limits=""):
        self.workdir = tempfile.mkdtemp(prefix="flame-hostile-")
        self.port = free_port()
        cfg = os.path.join(self.workdir, "cluster.yaml")
        with open(cfg, "w") as f:
            f.write("cluster:\n  resreq: cpu=1,mem=64m\n  schedule_interval: 100\n")
            if limits:
                f.write("  limits:\n" + "".join(f"    {l}\n" for l in limits.split(";")))
        self.log = os.path.join(self.workdir, "sm.log")
        self.proc = subprocess.Popen(
            [SM_BIN, "--endpoint", f"http://127.0.0.1:{self.port}", "--storage", "none",
             "--config", cfg], stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while True:
            assert self.proc.poll() is None, self.logtext()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "the session manager did not listen"
                time.sleep(0.01)
        self.ch = channel(self.port)
        grpc.channel_ready_future(self.ch).result(timeout=10)

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()[-3000:]

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def raw(self, method, data, timeout=10):
        """A unary call with raw request bytes; the raw reply bytes."""
        call = self.ch.unary_unary(method)  # no serializers: bytes in, bytes out
        return call(data, timeout=timeout)

    def stop(self, timeout=10):
        self.ch.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout=timeout)
            assert rc == 0, f"session manager exited {rc}:\n{self.logtext()}"
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def sm():
    d = Daemon()
    yield d
    d.stop()


def code_of(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


class Bystander:
    """Another client calling GetSession in a loop during an attack: every
    call must succeed, none may wait long."""

    def __init__(self, pb, port, session_id):
        self.ch = channel(port)
        grpc.channel_ready_future(self.ch).result(timeout=10)  # a client already there
        self.fe = pb.grpc.FrontendStub(self.ch)
        self.req = pb.fe.GetSessionRequest(session_id=session_id)
        self.calls, self.errors, self.slowest = 0, [], 0.0
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)  # a failed test never joins it
        self.thread.start()

    def run(self):
        while not self.stop_ev.is_set():
            t = time.monotonic()
            try:
                self.fe.GetSession(self.req, timeout=5)
                self.calls += 1
            except grpc.RpcError as e:
                self.errors.append((e.code(), e.details()))
            self.slowest = max(self.slowest, time.monotonic() - t)
            time.sleep(0.01)

    def check(self):
        self.stop_ev.set()
        self.thread.join()
        self.ch.close()
        assert not self.errors, self.errors
        assert self.calls > 0
        # a liveness bound, not a performance target
        assert self.slowest < 2.0, f"a bystander's call took {self.slowest:.2f} s"


def session(pb, fe, sid="s-1"):
    fe.CreateSession(pb.fe.CreateSessionRequest(
        session_id=sid, session=pb.types.SessionSpec(application="flmping")))


def test_invalid_utf8_is_refused_and_never_stored(pb, sm):
    fe = pb.grpc.FrontendStub(sm.ch)
    session(pb, fe)
    by = Bystander(pb, sm.port, "s-1")
    good = pb.fe.RegisterApplicationRequest(
        name="app-x", application=pb.types.ApplicationSpec(description="AAAA", command="/bin/true"))
    bad = good.SerializeToString().replace(b"AAAA", b"A\xff\xfeA")
    code, details = code_of(lambda: sm.raw("/flame.v1.Frontend/RegisterApplication", bad))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "ApplicationSpec.description" in details and "UTF-8" in details
    # overlong encodings and surrogates are not UTF-8 either
    for seq in (b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"):
        code, _ = code_of(lambda: sm.raw("/flame.v1.Frontend/RegisterApplication",
                                         good.SerializeToString().replace(b"AAAA", seq)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
    # in a session id, an environment value, a task lookup
    req = pb.fe.CreateSessionRequest(session_id="ZZZZ",
                                     session=pb.types.SessionSpec(application="flmping"))
    code, details = code_of(lambda: sm.raw(
        "/flame.v1.Frontend/CreateSession", req.SerializeToString().replace(b"ZZZZ", b"Z\x80ZZ")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "session_id" in details
    env = pb.fe.RegisterApplicationRequest(name="app-y", application=pb.types.ApplicationSpec(
        environments=[pb.types.Environment(name="K", value="VVVV")]))
    code, details = code_of(lambda: sm.raw(
        "/flame.v1.Frontend/RegisterApplication",
        env.SerializeToString().replace(b"VVVV", b"V\xc3(V")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "Environment.value" in details
    # nothing was stored: every client still decodes the list
    names = [a.metadata.name for a in fe.ListApplication(pb.fe.ListApplicationRequest()).applications]
    assert "app-x" not in names and "app-y" not in names and "flmping" in names
    # valid UTF-8 beyond ASCII is fine
    fe.RegisterApplication(pb.fe.RegisterApplicationRequest(
        name="app-u", application=pb.types.ApplicationSpec(description="héllo ✓ 𝄞")))
    by.check()


def test_ids_are_names(pb, sm):
    fe = pb.grpc.FrontendStub(sm.ch)
    for req, fn in ((pb.fe.GetSessionRequest(session_id="a/b"), fe.GetSession),
                    (pb.fe.GetApplicationRequest(name="x" * 300), fe.GetApplication),
                    (pb.fe.ListTaskRequest(session_id="../etc"), fe.ListTask)):
        code, details = code_of(lambda: list(fn(req)) if fn == fe.ListTask else fn(req))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details


def test_huge_task_count_is_refused_at_once(pb, sm):
    fe = pb.grpc.FrontendStub(sm.ch)
    session(pb, fe)
    by = Bystander(pb, sm.port, "s-1")
    t = time.monotonic()
    code, details = code_of(lambda: fe.CreateTasks(
        pb.fe.CreateTasksRequest(session_id="s-1", count=2**32 - 1), timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_tasks_per_request" in details
    assert time.monotonic() - t < 2.0
    code, _ = code_of(lambda: fe.CreateTasks(
        pb.fe.CreateTasksRequest(session_id="s-1", inputs=[b"x"] * 1025)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # the same on the RunSession stream
    replies = fe.RunSession(iter([pb.fe.RunSessionRequest(session_id="s-1", count=2**32 - 1)]))
    code, details = code_of(lambda: list(replies))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "max_tasks_per_request" in details
    # the largest legal batch is taken, and nothing of the refused ones
    r = fe.CreateTasks(pb.fe.CreateTasksRequest(session_id="s-1", count=1024))
    assert r.first_task_id == 1 and r.count == 1024
    by.check()


def test_task_cap_is_configurable(pb):
    d = Daemon("max_tasks_per_request: 10")
    try:
        fe = pb.grpc.FrontendStub(d.ch)
        session(pb, fe)
        fe.CreateTasks(pb.fe.CreateTasksRequest(session_id="s-1", count=10))
        code, details = code_of(lambda: fe.CreateTasks(
            pb.fe.CreateTasksRequest(session_id="s-1", count=11)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "limit of 10" in details
    finally:
        d.stop()


@pytest.mark.parametrize("method,wrap", [
    ("/flame.v1.Backend/RegisterNode", None),
    ("/flame.v1.Frontend/RegisterApplication", 2),
    ("/flame.v1.Frontend/UpdateApplication", 2),
])
def test_non_canonical_field_zero(pb, sm, method, wrap):
    """The probe's 22-byte RegisterNode (SIGSEGV), and the same pattern in an
    ApplicationSpec: refused, nothing stored, the daemon lives on."""
    fe = pb.grpc.FrontendStub(sm.ch)
    session(pb, fe)
    by = Bystander(pb, sm.port, "s-1")
    if wrap is None:
        data = NODE_22
    else:  # {name "flmping"; application: ApplicationSpec{<field 0>, command "/bin/true"}}
        spec = bytes([0x80, 0x00, 0x01]) + bytes([0x2a, 0x09]) + b"/bin/true"
        data = bytes([0x0a, 0x07]) + b"flmping" + bytes([0x12, len(spec)]) + spec
        if method.endswith("RegisterApplication"):
            data = data.replace(b"flmping", b"new-app")
    code, details = code_of(lambda: sm.raw(method, data))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, details
    # rpc_unpack or the generic check, whichever sees it first
    assert "malformed request message" in details or "field number 0" in details
    assert sm.proc.poll() is None
    names = [a.metadata.name for a in fe.ListApplication(pb.fe.ListApplicationRequest()).applications]
    assert "new-app" not in names
    by.check()


def test_oversized_messages(pb):
    d = Daemon("max_message_size: 1m")
    try:
        fe = pb.grpc.FrontendStub(d.ch)
        session(pb, fe)
        by = Bystander(pb, d.port, "s-1")
        code, _ = code_of(lambda: fe.CreateTasks(
            pb.fe.CreateTasksRequest(session_id="s-1", inputs=[b"x" * (2 << 20)])))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        # an input that would not fit in a Task reply with its output
        code, details = code_of(lambda: fe.CreateTask(pb.fe.CreateTaskRequest(
            task=pb.types.TaskSpec(session_id="s-1", input=b"y" * (700 << 10)))))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "above the limit" in details
        code, details = code_of(lambda: fe.CreateSession(pb.fe.CreateSessionRequest(
            session_id="s-2", session=pb.types.SessionSpec(application="flmping",
                                                            common_data=b"z" * (700 << 10)))))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "common_data" in details
        by.check()
        assert d.proc.poll() is None
    finally:
        d.stop()


def test_slow_readers_hold_bounded_memory(pb):
    """Ten ListTask streams that never read: the daemon's memory stays
    bounded, and comes back once their sockets close."""
    d = Daemon()
    try:
        fe = pb.grpc.FrontendStub(d.ch)
        session(pb, fe)
        blob = b"i" * 4096
        for _ in range(20):  # 20,000 tasks of 4 KiB: ~80 MB of listing per stream
            fe.CreateTasks(pb.fe.CreateTasksRequest(session_id="s-1", inputs=[blob] * 1000))
        time.sleep(0.5)
        base = d.rss_kb()
        socks = []
        req = pb.fe.ListTaskRequest(session_id="s-1").SerializeToString()
        for _ in range(10):
            socks.append(raw_call(d.port, "/flame.v1.Frontend/ListTask", req))
        by = Bystander(pb, d.port, "s-1")
        time.sleep(3)
        grown = d.rss_kb() - base
        by.check()
        # each stream holds a bounded chunk (the probe: +570 MB)
        assert grown < 150 * 1024, f"RSS grew by {grown // 1024} MB"
        for s in socks:
            s.close()
        time.sleep(1.5)
        assert d.rss_kb() - base < 60 * 1024
        # a reader that keeps up still gets every task
        n = sum(1 for _ in fe.ListTask(pb.fe.ListTaskRequest(session_id="s-1")))
        assert n == 20000
    finally:
        d.stop()


def test_watch_session_backlog_in_chunks(pb):
    """The outcomes of 20,000 finished tasks come in several messages, each
    task once, and the watch ends; a watcher that never reads meanwhile
    holds no more than a chunk."""
    d = Daemon()
    try:
        fe = pb.grpc.FrontendStub(d.ch)
        session(pb, fe)
        for _ in range(20):
            fe.CreateTasks(pb.fe.CreateTasksRequest(session_id="s-1", count=1000))
        fe.CloseSession(pb.fe.CloseSessionRequest(session_id="s-1"))  # all Cancelled
        req = pb.fe.WatchSessionRequest(session_id="s-1", from_task_id=1)
        stuck = raw_call(d.port, "/flame.v1.Frontend/WatchSession", req.SerializeToString())
        ids, messages = [], 0
        for batch in fe.WatchSession(req, timeout=30):
            messages += 1
            ids += [o.task_id for o in batch.outcomes]
        assert sorted(ids) == list(range(1, 20001))
        assert messages >= 5
        stuck.close()
        # small messages in numbers: the listing is paced by count as well
        listed = [x.metadata.id for x in fe.ListTask(pb.fe.ListTaskRequest(session_id="s-1"))]
        assert listed == [str(i) for i in range(1, 20001)]
    finally:
        d.stop()


def h2_frame(ftype, flags, stream, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([ftype, flags]) +
            stream.to_bytes(4, "big") + payload)


def hpack_literal(name, value):
    """A header field 'literal without indexing, new name' (no Huffman)."""
    def s(x):
        assert len(x) < 127
        return bytes([len(x)]) + x
    return b"\x00" + s(name) + s(value)


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def raw_call(port, path, request):
    """Starts a gRPC call on a raw socket and never reads: a client whose
    receive window stays closed (HTTP/2 initial window 65535)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    headers = b"".join(hpack_literal(k, v) for k, v in (
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
        (b":authority", b"localhost"), (b"content-type", b"application/grpc"),
        (b"te", b"trailers")))
    body = b"\x00" + len(request).to_bytes(4, "big") + request
    s.sendall(PREFACE + h2_frame(4, 0, 0) + h2_frame(1, 4, 1, headers) +
              h2_frame(0, 1, 1, body))
    return s


def test_half_open_connections_and_sigterm(pb):
    """1,000 connections that never finish HTTP/2 (nothing sent, the
    preface, part of it) or never read a call's output, a concurrent client
    served meanwhile, then SIGTERM: the daemon exits, cleanly, within a
    bound."""
    d = Daemon("handshake_timeout: 2000")
    socks = []
    try:
        fe = pb.grpc.FrontendStub(d.ch)
        session(pb, fe)
        by = Bystander(pb, d.port, "s-1")
        fe.CreateTasks(pb.fe.CreateTasksRequest(session_id="s-1", inputs=[b"i" * 4096] * 100))
        listing = pb.fe.ListTaskRequest(session_id="s-1").SerializeToString()
        for i in range(1000):
            if i % 4 == 3:  # a call whose output is never read
                socks.append(raw_call(d.port, "/flame.v1.Frontend/ListTask", listing))
                continue
            s = socket.create_connection(("127.0.0.1", d.port))
            if i % 4 == 1:
                s.sendall(PREFACE)
            elif i % 4 == 2:
                s.sendall(PREFACE[:10])
            socks.append(s)
        time.sleep(0.5)
        by.check()
        fe.GetSession(pb.fe.GetSessionRequest(session_id="s-1"), timeout=5)
        d.ch.close()
        t = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(timeout=15)
        took = time.monotonic() - t
        assert rc == 0, d.logtext()
        assert took < 8, f"SIGTERM took {took:.1f} s"
    finally:
        for s in socks:
            s.close()
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        shutil.rmtree(d.workdir, ignore_errors=True)


def test_handshake_timeout_drops_silent_connections(pb):
    d = Daemon("handshake_timeout: 500")
    try:
        s = socket.create_connection(("127.0.0.1", d.port))
        s.settimeout(5)
        t = time.monotonic()
        while s.recv(4096):  # the server's SETTINGS, then its close
            pass
        assert time.monotonic() - t < 4
        s.close()
    finally:
        d.stop()


def test_limits_config_errors(tmp_path):
    for bad, key in (("max_tasks_per_request: 0", "max_tasks_per_request"),
                     ("max_message_size: lots", "max_message_size"),
                     ("shutdown_grace: -5", "shutdown_grace")):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"cluster:\n  limits:\n    {bad}\n")
        p = subprocess.run([SM_BIN, "--config", str(cfg), "--storage", "none",
                            "--endpoint", "http://127.0.0.1:0"],
                           capture_output=True, text=True, timeout=10)
        assert p.returncode == 2, p.stderr
        assert f"cluster.limits.{key}" in p.stderr
