"""The authorization matrix end to end: a real flame-session-manager over
mutual TLS, and grpcio clients presenting the certificates of
tests/data/certs.sh (CN = name, OU = role): admin; users alice and bob;
nodes n1 and n2; mallory, revoked. Every denial is checked with its exact
status code and message."""
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time

import grpc
import pytest

from conftest import CHANNEL_OPTIONS, SM_BIN, free_port

CERTS_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "certs.sh")
T = 10  # seconds, every call


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="flame-authz-pki-")
    subprocess.check_call(["sh", CERTS_SH, d])
    yield d
    shutil.rmtree(d, ignore_errors=True)


def read(pki, name):
    with open(os.path.join(pki, name), "rb") as f:
        return f.read()


class SecureDaemon:
    """A session manager with cluster.tls from the test PKI."""

    def __init__(self, pki, mutual=True, crl="crl.pem", anonymous_role=None, db=None):
        self.pki = pki
        self.workdir = tempfile.mkdtemp(prefix="flame-authz-")
        self.port = free_port()
        self.db = db or os.path.join(self.workdir, "flame.db")
        self.crl = os.path.join(self.workdir, "crl.pem")
        if crl:
            shutil.copy(os.path.join(pki, crl), self.crl)
        self.log = os.path.join(self.workdir, "sm.log")
        p = lambda n: os.path.join(pki, n)  # noqa: E731
        with open(os.path.join(self.workdir, "cluster.yaml"), "w") as f:
            f.write("cluster:\n  resreq: cpu=1,mem=64m\n  schedule_interval: 100\n"
                    f"  tls:\n    cert_file: {p('server.crt')}\n    key_file: {p('server.key')}\n"
                    f"    ca_file: {p('ca.crt')}\n    mutual: {'true' if mutual else 'false'}\n")
            if crl:
                f.write(f"    crl_file: {self.crl}\n")
            if anonymous_role:
                f.write(f"  auth:\n    anonymous_role: {anonymous_role}\n")
        self.proc = None

    def start(self):
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [SM_BIN, "--endpoint", f"https://127.0.0.1:{self.port}",
                 "--storage", f"sqlite://{self.db}",
                 "--config", os.path.join(self.workdir, "cluster.yaml")],
                stdout=log, stderr=log)
        ch = self.channel("admin")
        try:
            grpc.channel_ready_future(ch).result(timeout=10)
        except grpc.FutureTimeoutError:
            raise AssertionError(f"the session manager is not ready:\n{self.read_log()[-3000:]}")
        finally:
            ch.close()

    def read_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def channel(self, who):
        """A TLS channel presenting who's certificate (None: none)."""
        creds = grpc.ssl_channel_credentials(
            root_certificates=read(self.pki, "ca.crt"),
            private_key=read(self.pki, f"{who}.key") if who else None,
            certificate_chain=read(self.pki, f"{who}.crt") if who else None)
        return grpc.secure_channel(f"127.0.0.1:{self.port}", creds, options=CHANNEL_OPTIONS)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            rc = self.proc.wait(timeout=10)
            assert rc == 0, f"session manager exited {rc}:\n{self.read_log()[-3000:]}"

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


class Client:
    """Frontend and Backend stubs on one channel."""

    def __init__(self, pb, daemon, who):
        import backend_pb2
        import backend_pb2_grpc
        self.ch = daemon.channel(who)
        # Connected before the first call: a call fails fast (UNAVAILABLE) when
        # the first connection attempt of a new channel fails, which a loaded
        # 2-core machine running the daemons under ASan made happen (a TLS
        # handshake cut short); the readiness wait retries it, bounded by T.
        grpc.channel_ready_future(self.ch).result(timeout=T)
        self.fe = pb.grpc.FrontendStub(self.ch)
        self.be = backend_pb2_grpc.BackendStub(self.ch)
        self.bpb = backend_pb2


@pytest.fixture
def mtls(pki):
    d = SecureDaemon(pki)
    d.start()
    yield d
    d.cleanup()


@pytest.fixture
def clients(pb, mtls):
    made = {}

    def get(who):
        if who not in made:
            made[who] = Client(pb, mtls, who)
        return made[who]
    yield get
    for c in made.values():
        c.ch.close()


def denied(fn, code=grpc.StatusCode.PERMISSION_DENIED):
    """Runs fn (a unary call, or a stream read to its first message) and
    returns the details of the error it must raise with code."""
    with pytest.raises(grpc.RpcError) as e:
        r = fn()
        if hasattr(r, "__next__"):
            next(r)
    assert e.value.code() == code, (e.value.code(), e.value.details())
    return e.value.details()


def register_app(pb, fe, name="app", **spec):
    fe.RegisterApplication(pb.fe.RegisterApplicationRequest(
        name=name, application=pb.types.ApplicationSpec(command="/bin/true", **spec)), timeout=T)


def create_session(pb, fe, sid, app="app", **spec):
    return fe.CreateSession(pb.fe.CreateSessionRequest(
        session_id=sid, session=pb.types.SessionSpec(application=app, **spec)), timeout=T)


def session_ids(pb, fe):
    return sorted(s.metadata.id for s in
                  fe.ListSession(pb.fe.ListSessionRequest(), timeout=T).sessions)


# ---- users ------------------------------------------------------------------

def test_user_b_touching_user_a_session(pb, clients):
    f = pb.fe
    register_app(pb, clients("admin").fe)
    alice, bob = clients("alice").fe, clients("bob").fe
    create_session(pb, alice, "alice-x1")
    task = alice.CreateTask(f.CreateTaskRequest(
        task=pb.types.TaskSpec(session_id="alice-x1", input=b"x")), timeout=T)
    tid = task.metadata.id
    sid = "alice-x1"
    spec = pb.types.SessionSpec(application="app")

    def run_session():
        return bob.RunSession(iter([f.RunSessionRequest(session_id=sid, count=1)]), timeout=T)

    cases = [
        ("get", lambda: bob.GetSession(f.GetSessionRequest(session_id=sid), timeout=T)),
        ("open", lambda: bob.OpenSession(f.OpenSessionRequest(session_id=sid), timeout=T)),
        ("open", lambda: bob.OpenSession(f.OpenSessionRequest(session_id=sid, session=spec),
                                         timeout=T)),
        ("close", lambda: bob.CloseSession(f.CloseSessionRequest(session_id=sid), timeout=T)),
        ("delete", lambda: bob.DeleteSession(f.DeleteSessionRequest(session_id=sid), timeout=T)),
        ("watch", lambda: bob.WatchSession(f.WatchSessionRequest(session_id=sid), timeout=T)),
        ("run tasks in", run_session),
        ("create tasks in", lambda: bob.CreateTask(f.CreateTaskRequest(
            task=pb.types.TaskSpec(session_id=sid, input=b"y")), timeout=T)),
        ("create tasks in", lambda: bob.CreateTasks(f.CreateTasksRequest(
            session_id=sid, count=3), timeout=T)),
        ("read tasks of", lambda: bob.GetTask(f.GetTaskRequest(session_id=sid, task_id=tid),
                                              timeout=T)),
        ("watch tasks of", lambda: bob.WatchTask(f.WatchTaskRequest(session_id=sid, task_id=tid),
                                                 timeout=T)),
        ("list tasks of", lambda: bob.ListTask(f.ListTaskRequest(session_id=sid), timeout=T)),
    ]
    for verb, call in cases:
        details = denied(call)
        assert f'user "bob" may not {verb} session "alice-x1" (owned by "alice")' in details, \
            (verb, details)
    # nothing happened to it: still open, one task, and alice still has it all
    s = alice.GetSession(f.GetSessionRequest(session_id=sid), timeout=T)
    assert s.status.state == pb.types.Open
    assert alice.CreateTasks(f.CreateTasksRequest(session_id=sid, count=2),
                             timeout=T).first_task_id == 2
    assert alice.GetTask(f.GetTaskRequest(session_id=sid, task_id=tid), timeout=T).metadata.id == tid
    assert len(list(alice.ListTask(f.ListTaskRequest(session_id=sid), timeout=T))) == 3
    alice.CloseSession(f.CloseSessionRequest(session_id=sid), timeout=T)
    alice.DeleteSession(f.DeleteSessionRequest(session_id=sid), timeout=T)
    # a session nobody has is still NOT_FOUND, for anyone
    assert denied(lambda: bob.GetSession(f.GetSessionRequest(session_id=sid), timeout=T),
                  grpc.StatusCode.NOT_FOUND)


def test_listings_show_users_only_their_own(pb, clients):
    register_app(pb, clients("admin").fe)
    alice, bob, admin = clients("alice").fe, clients("bob").fe, clients("admin").fe
    create_session(pb, alice, "alice-1")
    create_session(pb, alice, "alice-2")
    create_session(pb, bob, "bob-1")
    # OpenSession creating a session makes it the caller's too
    bob.OpenSession(pb.fe.OpenSessionRequest(
        session_id="bob-2", session=pb.types.SessionSpec(application="app")), timeout=T)
    assert session_ids(pb, alice) == ["alice-1", "alice-2"]
    assert session_ids(pb, bob) == ["bob-1", "bob-2"]
    assert session_ids(pb, admin) == ["alice-1", "alice-2", "bob-1", "bob-2"]


def test_application_environments_are_for_admins(pb, clients):
    t = pb.types
    admin, bob = clients("admin").fe, clients("bob").fe
    register_app(pb, admin, "secret-app", environments=[t.Environment(name="TOKEN", value="s3cr3t")],
                 description="d")
    got = admin.GetApplication(pb.fe.GetApplicationRequest(name="secret-app"), timeout=T)
    assert [(e.name, e.value) for e in got.spec.environments] == [("TOKEN", "s3cr3t")]
    seen = bob.GetApplication(pb.fe.GetApplicationRequest(name="secret-app"), timeout=T)
    assert len(seen.spec.environments) == 0 and seen.spec.command == "/bin/true"
    assert seen.spec.description == "d"
    listed = {a.metadata.name: a for a in
              bob.ListApplication(pb.fe.ListApplicationRequest(), timeout=T).applications}
    assert len(listed["secret-app"].spec.environments) == 0
    assert "s3cr3t" not in str(listed)


def test_users_own_sandboxed_applications(pb, clients):
    f = pb.fe
    bob, alice = clients("bob").fe, clients("alice").fe
    register_app(pb, clients("admin").fe, "shared", sandbox="none")
    # a user registers sandboxed applications, owns them, and no level
    # given means process (never the node's default, which may be none)
    register_app(pb, bob, "mine")
    register_app(pb, bob, "vm", sandbox="microvm", network="host")
    got = bob.GetApplication(f.GetApplicationRequest(name="mine"), timeout=T).spec
    assert (got.sandbox, got.owner) == ("process", "bob")
    bob.UpdateApplication(f.UpdateApplicationRequest(
        name="mine", application=pb.types.ApplicationSpec(command="/bin/sh")), timeout=T)
    assert bob.GetApplication(f.GetApplicationRequest(name="mine"), timeout=T).spec.owner == "bob"
    # an owner in the request is ignored
    register_app(pb, alice, "hers", owner="bob")
    assert alice.GetApplication(f.GetApplicationRequest(name="hers"), timeout=T).spec.owner == \
        "alice"
    assert 'user bob may not register application bad with sandbox none' in \
        denied(lambda: register_app(pb, bob, "bad", sandbox="none"))
    for call, what in [
        (lambda: bob.UpdateApplication(f.UpdateApplicationRequest(
            name="shared", application=pb.types.ApplicationSpec(command="/bin/sh")), timeout=T),
         "user bob may not change application shared: it belongs to the admins"),
        (lambda: bob.UnregisterApplication(f.UnregisterApplicationRequest(name="flmping"),
                                           timeout=T),
         "user bob may not unregister application flmping: it belongs to the admins"),
        (lambda: alice.UpdateApplication(f.UpdateApplicationRequest(
            name="mine", application=pb.types.ApplicationSpec(command="/bin/sh")), timeout=T),
         "user alice may not change application mine: it belongs to bob"),
        (lambda: alice.UnregisterApplication(f.UnregisterApplicationRequest(name="mine"),
                                             timeout=T),
         "user alice may not unregister application mine: it belongs to bob"),
        (lambda: bob.UpdateApplication(f.UpdateApplicationRequest(
            name="mine", application=pb.types.ApplicationSpec(command="/bin/sh",
                                                               sandbox="none")), timeout=T),
         "user bob may not register application mine with sandbox none"),
    ]:
        assert what in denied(call)
    bob.UnregisterApplication(f.UnregisterApplicationRequest(name="mine"), timeout=T)


def test_users_do_not_administer(pb, clients):
    f = pb.fe
    bob = clients("bob").fe
    for name, call in [
        ("ListNodes", lambda: bob.ListNodes(f.ListNodesRequest(), timeout=T)),
        ("ListExecutor", lambda: bob.ListExecutor(f.ListExecutorRequest(), timeout=T)),
        ("GetNode", lambda: bob.GetNode(f.GetNodeRequest(name="n1"), timeout=T)),
    ]:
        assert f'user "bob" may not call Frontend.{name}: the cluster\'s nodes and executors ' \
               'are for admins' in denied(call)


def node_msg(pb, name):
    t = pb.types
    rr = t.ResourceRequirement(cpu=8, memory=8 << 30)
    return t.Node(metadata=t.Metadata(id=name, name=name), spec=t.NodeSpec(hostname=name),
                  status=t.NodeStatus(state=t.Ready, capacity=rr, allocatable=rr))


def test_a_user_calling_the_backend(pb, clients):
    bob = clients("bob")
    details = denied(lambda: bob.be.RegisterNode(
        bob.bpb.RegisterNodeRequest(node=node_msg(pb, "bob-node")), timeout=T))
    assert 'user "bob" may not call Backend.RegisterNode: the Backend is for executor managers ' \
           '(role node)' in details
    details = denied(lambda: bob.be.BindExecutor(
        bob.bpb.BindExecutorRequest(executor_id="x"), timeout=T))
    assert 'user "bob" may not call Backend.BindExecutor' in details


# ---- nodes ------------------------------------------------------------------

class FakeNode:
    """What an executor manager does on its WatchNode stream: one heartbeat,
    then executors to start arrive."""

    def __init__(self, client, name):
        self.c = client
        self.out = queue.Queue()
        self.executors = queue.Queue()
        hb = client.bpb.WatchNodeRequest(heartbeat=client.bpb.NodeHeartbeat(node_name=name))
        self.out.put(hb)

        def requests():
            while True:
                m = self.out.get()
                if m is None:
                    return
                yield m
        self.stream = client.be.WatchNode(requests())
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        try:
            for r in self.stream:
                if r.HasField("executor"):
                    self.executors.put(r.executor)
        except grpc.RpcError:
            pass

    def close(self):
        self.out.put(None)
        self.stream.cancel()


def test_a_node_speaking_for_another_node(pb, clients):
    n1, n2 = clients("n1"), clients("n2")
    b = n1.bpb
    details = denied(lambda: n2.be.RegisterNode(b.RegisterNodeRequest(node=node_msg(pb, "n1")),
                                                timeout=T))
    assert 'node "n2" may not register node "n1": a node speaks only for itself' in details
    n1.be.RegisterNode(b.RegisterNodeRequest(node=node_msg(pb, "n1")), timeout=T)
    for verb, call in [
        ("sync", lambda: n2.be.SyncNode(b.SyncNodeRequest(node=node_msg(pb, "n1")), timeout=T)),
        ("release", lambda: n2.be.ReleaseNode(b.ReleaseNodeRequest(node_name="n1"), timeout=T)),
        ("watch", lambda: n2.be.WatchNode(iter([b.WatchNodeRequest(
            heartbeat=b.NodeHeartbeat(node_name="n1"))]), timeout=T)),
    ]:
        assert f'node "n2" may not {verb} node "n1": a node speaks only for itself' in \
            denied(call), verb
    # a node does not speak the Frontend
    assert 'node "n1" may not call Frontend.ListSession: a node certificate speaks only the ' \
           'Backend' in denied(lambda: n1.fe.ListSession(pb.fe.ListSessionRequest(), timeout=T))

    # an executor the session manager puts on n1 is n1's alone
    register_app(pb, clients("admin").fe)
    node = FakeNode(n1, "n1")
    try:
        create_session(pb, clients("alice").fe, "alice-busy", min_instances=1)
        ex = node.executors.get(timeout=10)
        eid = ex.metadata.id
        assert ex.spec.node == "n1"
        for verb, call in [
            ("register", lambda: n2.be.RegisterExecutor(b.RegisterExecutorRequest(
                executor_id=eid), timeout=T)),
            ("bind", lambda: n2.be.BindExecutor(b.BindExecutorRequest(executor_id=eid),
                                                timeout=T)),
            ("unregister", lambda: n2.be.UnregisterExecutor(b.UnregisterExecutorRequest(
                executor_id=eid), timeout=T)),
            ("launch tasks on", lambda: n2.be.LaunchTask(b.LaunchTaskRequest(executor_id=eid),
                                                         timeout=T)),
            ("stream work of", lambda: n2.be.ExecutorStream(iter([b.ExecutorUpdate(
                executor_id=eid)]), timeout=T)),
        ]:
            assert f'node "n2" may not {verb} executor "{eid}" (on node "n1")' in denied(call), \
                verb
        n1.be.RegisterExecutor(b.RegisterExecutorRequest(executor_id=eid), timeout=T)
    finally:
        node.close()


# ---- who-are-you failures -----------------------------------------------------

def test_a_revoked_certificate(pb, pki, mtls):
    c = Client(pb, mtls, "revoked")
    serial = read(pki, "revoked.serial").decode().strip()
    details = denied(lambda: c.fe.ListSession(pb.fe.ListSessionRequest(), timeout=T),
                     grpc.StatusCode.UNAUTHENTICATED)
    assert f"certificate of mallory (serial {serial}) is revoked" in details
    c.ch.close()


def test_a_crl_is_reloaded_when_it_changes(pb, pki):
    """New calls are refused once the file changes, and an open stream at
    its next message."""
    d = SecureDaemon(pki, crl="crl-empty.pem")
    d.start()
    try:
        register_app(pb, Client(pb, d, "admin").fe)
        c = Client(pb, d, "revoked")
        create_session(pb, c.fe, "m-1")
        out = queue.Queue()

        def requests():
            while (m := out.get()) is not None:
                yield m
        stream = c.fe.RunSession(requests(), timeout=30)
        out.put(pb.fe.RunSessionRequest(session_id="m-1", count=1))
        assert next(stream).created_count == 1
        tmp = d.crl + ".new"
        shutil.copy(os.path.join(pki, "crl.pem"), tmp)
        os.rename(tmp, d.crl)
        deadline = time.time() + 5
        while True:
            try:
                c.fe.ListSession(pb.fe.ListSessionRequest(), timeout=T)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "certificate of mallory (serial" in e.details()
                assert "is revoked" in e.details()
                break
            assert time.time() < deadline, "the new CRL was not taken"
            time.sleep(0.2)
        out.put(pb.fe.RunSessionRequest(count=1))
        with pytest.raises(grpc.RpcError) as e:
            next(stream)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "is revoked" in e.value.details()
        out.put(None)
        c.ch.close()
    finally:
        d.cleanup()


def test_anonymous_with_role_none(pb, pki):
    d = SecureDaemon(pki, mutual=False, anonymous_role="none")
    d.start()
    try:
        anon = Client(pb, d, None)
        details = denied(lambda: anon.fe.ListSession(pb.fe.ListSessionRequest(), timeout=T),
                         grpc.StatusCode.UNAUTHENTICATED)
        assert "a client certificate is required (cluster.auth.anonymous_role is none)" in details
        # a certificate still works without mutual
        assert session_ids(pb, Client(pb, d, "alice").fe) == []
    finally:
        d.cleanup()


def test_anonymous_with_role_user(pb, pki):
    d = SecureDaemon(pki, mutual=False, anonymous_role="user")
    d.start()
    try:
        admin, alice, anon = (Client(pb, d, w).fe for w in ("admin", "alice", None))
        register_app(pb, admin)
        create_session(pb, alice, "alice-1")
        create_session(pb, anon, "anon-1")
        assert session_ids(pb, anon) == ["anon-1"]
        assert 'user anonymous may not write applications: that takes a certificate' in \
            denied(lambda: register_app(pb, anon, "x"))
        assert 'user "anonymous" may not close session "alice-1" (owned by "alice")' in \
            denied(lambda: anon.CloseSession(pb.fe.CloseSessionRequest(session_id="alice-1"),
                                             timeout=T))
    finally:
        d.cleanup()


# ---- admins -------------------------------------------------------------------

def test_an_admin_does_everything(pb, clients):
    f = pb.fe
    admin, alice = clients("admin"), clients("alice").fe
    register_app(pb, admin.fe, "a1")
    admin.fe.UpdateApplication(f.UpdateApplicationRequest(
        name="a1", application=pb.types.ApplicationSpec(command="/bin/echo")), timeout=T)
    create_session(pb, alice, "alice-1", app="a1")
    assert session_ids(pb, admin.fe) == ["alice-1"]
    admin.fe.GetSession(f.GetSessionRequest(session_id="alice-1"), timeout=T)
    admin.fe.CreateTasks(f.CreateTasksRequest(session_id="alice-1", count=2), timeout=T)
    assert len(list(admin.fe.ListTask(f.ListTaskRequest(session_id="alice-1"), timeout=T))) == 2
    admin.fe.CloseSession(f.CloseSessionRequest(session_id="alice-1"), timeout=T)
    admin.fe.DeleteSession(f.DeleteSessionRequest(session_id="alice-1"), timeout=T)
    admin.fe.ListNodes(f.ListNodesRequest(), timeout=T)
    admin.fe.ListExecutor(f.ListExecutorRequest(), timeout=T)
    admin.be.RegisterNode(admin.bpb.RegisterNodeRequest(node=node_msg(pb, "n9")), timeout=T)
    assert admin.fe.GetNode(f.GetNodeRequest(name="n9"), timeout=T).node.metadata.name == "n9"
    admin.be.ReleaseNode(admin.bpb.ReleaseNodeRequest(node_name="n9"), timeout=T)
    admin.fe.UnregisterApplication(f.UnregisterApplicationRequest(name="a1"), timeout=T)


# ---- owners are durable --------------------------------------------------------

def test_owners_survive_a_restart(pb, pki):
    d = SecureDaemon(pki)
    d.start()
    try:
        register_app(pb, Client(pb, d, "admin").fe)
        create_session(pb, Client(pb, d, "alice").fe, "alice-1")
        d.stop()
        d.start()
        bob, alice = Client(pb, d, "bob").fe, Client(pb, d, "alice").fe
        assert 'user "bob" may not get session "alice-1" (owned by "alice")' in \
            denied(lambda: bob.GetSession(pb.fe.GetSessionRequest(session_id="alice-1"),
                                          timeout=T))
        assert session_ids(pb, alice) == ["alice-1"]
    finally:
        d.cleanup()


SCHEMA_V1 = """
CREATE TABLE applications(name TEXT PRIMARY KEY, spec BLOB NOT NULL,
  state INTEGER NOT NULL, creation_time INTEGER NOT NULL);
CREATE TABLE sessions(id TEXT PRIMARY KEY, seq INTEGER NOT NULL, application TEXT NOT NULL,
  common_data BLOB, min_instances INTEGER NOT NULL, max_instances INTEGER,
  priority INTEGER NOT NULL, cpu INTEGER NOT NULL, memory INTEGER NOT NULL,
  gpu INTEGER NOT NULL, state INTEGER NOT NULL, creation_time INTEGER NOT NULL,
  completion_time INTEGER, events BLOB, bind_failures INTEGER NOT NULL DEFAULT 0);
CREATE TABLE tasks(session_id TEXT NOT NULL, id INTEGER NOT NULL, state INTEGER NOT NULL,
  creation_time INTEGER NOT NULL, completion_time INTEGER, input BLOB, output BLOB,
  events BLOB, PRIMARY KEY(session_id, id)) WITHOUT ROWID;
INSERT INTO sessions(id, seq, application, min_instances, priority, cpu, memory, gpu, state,
  creation_time) VALUES('old-1', 1, 'flmping', 0, 0, 1, 67108864, 0, 0, 1000);
PRAGMA user_version = 1;
"""


def test_sessions_of_an_older_database_are_the_admins(pb, pki):
    db = os.path.join(tempfile.mkdtemp(prefix="flame-authz-db-"), "flame.db")
    con = sqlite3.connect(db)
    con.executescript(SCHEMA_V1)
    con.close()
    d = SecureDaemon(pki, db=db)
    d.start()
    try:
        alice, admin = Client(pb, d, "alice").fe, Client(pb, d, "admin").fe
        assert 'user "alice" may not get session "old-1" (created before owners were recorded: ' \
               'admins only)' in denied(lambda: alice.GetSession(
                   pb.fe.GetSessionRequest(session_id="old-1"), timeout=T))
        assert session_ids(pb, alice) == []
        assert admin.GetSession(pb.fe.GetSessionRequest(session_id="old-1"),
                                timeout=T).metadata.id == "old-1"
    finally:
        d.cleanup()
        shutil.rmtree(os.path.dirname(db), ignore_errors=True)


# ---- plaintext ------------------------------------------------------------------

def run_plaintext(endpoint, *extra):
    work = tempfile.mkdtemp(prefix="flame-authz-plain-")
    log = os.path.join(work, "sm.log")
    with open(log, "ab") as f:
        proc = subprocess.Popen([SM_BIN, "--endpoint", endpoint, "--storage", "none", *extra],
                                stdout=f, stderr=f)
    return proc, log, work


def test_plaintext_off_loopback_needs_insecure():
    port = free_port()
    proc, log, work = run_plaintext(f"http://0.0.0.0:{port}")
    try:
        assert proc.wait(timeout=10) == 2
        with open(log) as f:
            out = f.read()
        assert f"endpoint http://0.0.0.0:{port} is not a loopback address and TLS is off" in out
        assert "--insecure" in out
    finally:
        shutil.rmtree(work, ignore_errors=True)
    proc, log, work = run_plaintext(f"http://0.0.0.0:{port}", "--insecure")
    try:
        deadline = time.time() + 10
        while True:
            with open(log) as f:
                out = f.read()
            if "listening on port" in out:
                break
            assert proc.poll() is None and time.time() < deadline, out
            time.sleep(0.05)
        assert "WARN" in out and "INSECURE: listening on 0.0.0.0" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        shutil.rmtree(work, ignore_errors=True)


def test_plaintext_on_loopback_says_so():
    proc, log, work = run_plaintext(f"http://127.0.0.1:{free_port()}")
    try:
        deadline = time.time() + 10
        while True:
            with open(log) as f:
                out = f.read()
            if "listening on port" in out:
                break
            assert proc.poll() is None and time.time() < deadline, out
            time.sleep(0.05)
        assert 'listening on loopback only' in out and 'identity "local" with role admin' in out
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        shutil.rmtree(work, ignore_errors=True)
