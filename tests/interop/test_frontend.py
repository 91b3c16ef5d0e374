"""flame.v1 Frontend, as a client written only from shared/PROTOCOL.md sees it."""
import threading
import time

import grpc
import pytest

from conftest import channel


def code_of(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


def register(pb, fe, name, **spec):
    fe.RegisterApplication(pb.fe.RegisterApplicationRequest(
        name=name, application=pb.types.ApplicationSpec(**spec)))


def now_ms():
    return int(time.time() * 1000)


def test_builtin_applications(pb, fe):
    names = [a.metadata.name for a in fe.ListApplication(pb.fe.ListApplicationRequest()).applications]
    assert "flmping" in names and "flmexec" in names


def test_application_fields_round_trip(pb, fe):
    t = pb.types
    spec = t.ApplicationSpec(
        shim=t.Host, description="d", labels=["x", "y"], command="/usr/bin/env",
        arguments=["a", "b"], environments=[t.Environment(name="K", value="V")],
        working_directory="/tmp", max_instances=3, delay_release=0,
        schema=t.ApplicationSchema(input='{"type":"string"}'), url="http://u", installer="pip")
    fe.RegisterApplication(pb.fe.RegisterApplicationRequest(name="full", application=spec))
    got = fe.GetApplication(pb.fe.GetApplicationRequest(name="full"))
    assert got.spec == spec
    assert got.spec.HasField("delay_release") and got.spec.delay_release == 0
    assert abs(got.status.creation_time - now_ms()) < 60000
    # unset stays unset; an application with no command at all is fine
    register(pb, fe, "bare")
    bare = fe.GetApplication(pb.fe.GetApplicationRequest(name="bare")).spec
    for f in ("command", "image", "url", "installer", "description", "max_instances",
              "delay_release", "working_directory", "schema"):
        assert not bare.HasField(f), f
    register(pb, fe, "wasm-app", shim=t.Wasm)
    assert fe.GetApplication(pb.fe.GetApplicationRequest(name="wasm-app")).spec.shim == t.Wasm


@pytest.mark.parametrize("name", ["", ".x", "-x", "a..b", "a/b", "a b", "x" * 254])
def test_bad_application_names(pb, fe, name):
    code, details = code_of(lambda: register(pb, fe, name, command="/bin/true"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details


def test_application_errors(pb, fe):
    register(pb, fe, "a1", command="/bin/true")
    assert code_of(lambda: register(pb, fe, "a1"))[0] == grpc.StatusCode.ALREADY_EXISTS
    assert code_of(lambda: register(pb, fe, "a2", working_directory="rel"))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    bad_schema = pb.types.ApplicationSchema(output="{nope")
    assert code_of(lambda: register(pb, fe, "a3", schema=bad_schema))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: fe.GetApplication(pb.fe.GetApplicationRequest(name="zz")))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: fe.UnregisterApplication(
        pb.fe.UnregisterApplicationRequest(name="zz")))[0] == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: fe.UpdateApplication(pb.fe.UpdateApplicationRequest(
        name="zz", application=pb.types.ApplicationSpec())))[0] == grpc.StatusCode.NOT_FOUND


def test_sessions(pb, fe):
    t, f = pb.types, pb.fe
    register(pb, fe, "app", command="/bin/true")
    spec = t.SessionSpec(application="app", priority=2, common_data=b"cd")
    s = fe.CreateSession(f.CreateSessionRequest(session_id="app-abc123", session=spec))
    assert s.metadata.id == "app-abc123"
    assert s.status.state == t.Open and abs(s.status.creation_time - now_ms()) < 60000
    assert s.spec.batch_size == 1 and s.spec.common_data == b"cd"
    assert code_of(lambda: fe.CreateSession(f.CreateSessionRequest(
        session_id="app-abc123", session=spec)))[0] == grpc.StatusCode.ALREADY_EXISTS
    assert code_of(lambda: fe.CreateSession(f.CreateSessionRequest(
        session_id="x1", session=t.SessionSpec(application="missing"))))[0] == \
        grpc.StatusCode.NOT_FOUND
    gen = fe.CreateSession(f.CreateSessionRequest(session=spec))
    assert gen.metadata.id.startswith("app-")
    # OpenSession is get-or-create; the spec must match
    assert fe.OpenSession(f.OpenSessionRequest(session_id="app-abc123", session=spec)).metadata.id \
        == "app-abc123"
    assert fe.OpenSession(f.OpenSessionRequest(session_id="app-abc123")).spec.priority == 2
    other = t.SessionSpec(application="app", priority=9)
    assert code_of(lambda: fe.OpenSession(f.OpenSessionRequest(
        session_id="app-abc123", session=other)))[0] != grpc.StatusCode.OK
    created = fe.OpenSession(f.OpenSessionRequest(session_id="new-one", session=other))
    assert created.spec.priority == 9
    assert code_of(lambda: fe.GetSession(f.GetSessionRequest(session_id="nope")))[0] == \
        grpc.StatusCode.NOT_FOUND
    closed = fe.CloseSession(f.CloseSessionRequest(session_id="new-one"))
    assert closed.status.state == t.Closed and closed.status.HasField("completion_time")
    again = fe.CloseSession(f.CloseSessionRequest(session_id="new-one"))
    assert again.status.state == t.Closed
    assert code_of(lambda: fe.OpenSession(f.OpenSessionRequest(
        session_id="new-one", session=other)))[0] != grpc.StatusCode.OK
    ids = [x.metadata.id for x in fe.ListSession(f.ListSessionRequest()).sessions]
    assert ids == ["app-abc123", gen.metadata.id, "new-one"]
    # unregister refused while open, and deletes closed sessions
    assert code_of(lambda: fe.UnregisterApplication(f.UnregisterApplicationRequest(
        name="app")))[0] == grpc.StatusCode.FAILED_PRECONDITION


def test_tasks_and_events(pb, fe):
    t, f = pb.types, pb.fe
    register(pb, fe, "app", command="/bin/true")
    fe.CreateSession(f.CreateSessionRequest(session_id="s", session=t.SessionSpec(application="app")))
    t1 = fe.CreateTask(f.CreateTaskRequest(task=t.TaskSpec(session_id="s", input=b"one")))
    t2 = fe.CreateTask(f.CreateTaskRequest(task=t.TaskSpec(session_id="s")))
    assert (t1.metadata.id, t2.metadata.id) == ("1", "2")
    assert t1.status.state == t.Pending and t1.spec.input == b"one"
    assert not t2.spec.HasField("input")
    got = fe.GetTask(f.GetTaskRequest(session_id="s", task_id="1"))
    assert got.spec.input == b"one"
    assert code_of(lambda: fe.GetTask(f.GetTaskRequest(session_id="s", task_id="9")))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: fe.GetTask(f.GetTaskRequest(session_id="x", task_id="1")))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: fe.CreateTask(f.CreateTaskRequest(
        task=t.TaskSpec(session_id="nope"))))[0] == grpc.StatusCode.NOT_FOUND
    listed = [x.metadata.id for x in fe.ListTask(f.ListTaskRequest(session_id="s"))]
    assert listed == ["1", "2"]

    # WatchTask: the current state first, then each change, then the end
    seen = []
    watch = fe.WatchTask(f.WatchTaskRequest(session_id="s", task_id="1"))
    th = threading.Thread(target=lambda: seen.extend(x.status.state for x in watch))
    th.start()
    time.sleep(0.3)
    s = fe.GetSession(f.GetSessionRequest(session_id="s"))
    assert s.status.pending == 2
    closed = fe.CloseSession(f.CloseSessionRequest(session_id="s"))
    th.join(10)
    assert not th.is_alive()
    assert seen == [t.Pending, t.Cancelled]
    assert closed.status.cancelled == 2 and closed.status.pending == 0
    done = fe.GetTask(f.GetTaskRequest(session_id="s", task_id="1"))
    assert done.status.state == t.Cancelled and done.status.HasField("completion_time")
    assert done.status.events[-1].code == t.Cancelled
    assert abs(done.status.events[-1].creation_time - now_ms()) < 60000
    assert code_of(lambda: fe.CreateTask(f.CreateTaskRequest(
        task=t.TaskSpec(session_id="s", input=b"late"))))[0] == grpc.StatusCode.INVALID_ARGUMENT
    # unregister now deletes the closed session and its tasks
    fe.UnregisterApplication(f.UnregisterApplicationRequest(name="app"))
    assert code_of(lambda: fe.GetSession(f.GetSessionRequest(session_id="s")))[0] == \
        grpc.StatusCode.NOT_FOUND


def test_garbage_and_unknown_methods(daemon, pb, fe):
    ch = channel(daemon.port)
    for method in ("/flame.v1.Frontend/CreateTask", "/flame.v1.Frontend/RegisterApplication",
                   "/flame.v1.Frontend/WatchTask"):
        call = ch.unary_unary(method)
        with pytest.raises(grpc.RpcError) as e:
            call(b"\xff\xff\xff\xff\xff\x01garbage", timeout=5)
        assert e.value.code() != grpc.StatusCode.OK
    with pytest.raises(grpc.RpcError) as e:
        ch.unary_unary("/flame.v1.Frontend/Nope")(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as e:  # a node with no name
        ch.unary_unary("/flame.v1.Backend/RegisterNode")(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        ch.unary_unary("/flame.v1.Backend/LaunchTask")(b"\x0a\x03xyz", timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    ch.close()
    assert daemon.alive()
    assert fe.ListSession(pb.fe.ListSessionRequest()) is not None


def test_kill9_loses_no_acknowledged_task(daemon, pb, fe):
    t, f = pb.types, pb.fe
    register(pb, fe, "app", command="/bin/true")
    fe.CreateSession(f.CreateSessionRequest(session_id="durable", session=t.SessionSpec(application="app")))
    acked = []
    lock = threading.Lock()
    stop = threading.Event()

    def submit(k):
        i = 0
        while not stop.is_set():
            try:
                r = fe.CreateTask(f.CreateTaskRequest(task=t.TaskSpec(
                    session_id="durable", input=f"{k}-{i}".encode())), timeout=5)
            except grpc.RpcError:
                return
            with lock:
                acked.append((r.metadata.id, f"{k}-{i}".encode()))
            i += 1

    threads = [threading.Thread(target=submit, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    daemon.kill9()  # while the submitters are still going
    stop.set()
    for th in threads:
        th.join(10)
    assert len(acked) > 50
    daemon.start()
    tasks = {x.metadata.id: x.spec.input for x in fe.ListTask(f.ListTaskRequest(session_id="durable"))}
    for tid, inp in acked:
        assert tasks.get(tid) == inp, f"acknowledged task {tid} lost"
    s = fe.GetSession(f.GetSessionRequest(session_id="durable"))
    assert s.status.pending == len(tasks)
    assert fe.GetApplication(f.GetApplicationRequest(name="app")).spec.command == "/bin/true"


def test_flame_backend_unary_executor_flow(daemon, pb):
    """An executor manager written from PROTOCOL.md alone, on Flame's unary
    Backend RPCs (RegisterNode, WatchNode, RegisterExecutor, BindExecutor,
    LaunchTask, CompleteTask, UnbindExecutorCompleted)."""
    import queue
    import backend_pb2 as be
    import backend_pb2_grpc as beg
    t, f = pb.types, pb.fe
    ch = channel(daemon.port)
    fe, bk = pb.grpc.FrontendStub(ch), beg.BackendStub(ch)
    rr = t.ResourceRequirement(cpu=1, memory=1 << 30)
    node = t.Node(metadata=t.Metadata(id="py-node", name="py-node"), spec=t.NodeSpec(hostname="py-node"),
                  status=t.NodeStatus(state=t.Ready, capacity=rr, allocatable=rr,
                                      info=t.NodeInfo(arch="x86_64", os="linux")))
    assert bk.RegisterNode(be.RegisterNodeRequest(node=node)).return_code == 0
    beats = queue.Queue()
    beats.put(be.WatchNodeRequest(heartbeat=be.NodeHeartbeat(node_name="py-node", status=node.status)))
    pushed = queue.Queue()
    watch = bk.WatchNode(iter(beats.get, None))

    def read():
        try:
            for r in watch:
                if r.WhichOneof("response") == "executor":
                    pushed.put(r.executor)
        except grpc.RpcError:
            pass  # the channel closes at the end of the test
    threading.Thread(target=read, daemon=True).start()
    register(pb, fe, "unary-app", command="/bin/true")
    fe.CreateSession(f.CreateSessionRequest(session_id="u-1", session=t.SessionSpec(
        application="unary-app", resreq=rr)))
    for i in range(3):
        fe.CreateTask(f.CreateTaskRequest(task=t.TaskSpec(session_id="u-1", input=f"in{i}".encode())))
    ex = pushed.get(timeout=10)  # the scheduler made an executor on our node
    assert ex.spec.node == "py-node" and ex.status.state == t.ExecutorVoid
    eid = ex.metadata.id
    assert bk.RegisterExecutor(be.RegisterExecutorRequest(executor_id=eid)).return_code == 0
    bound = bk.BindExecutor(be.BindExecutorRequest(executor_id=eid), timeout=10)
    assert bound.session.metadata.id == "u-1" and bound.application.metadata.name == "unary-app"
    bk.BindExecutorCompleted(be.BindExecutorCompletedRequest(executor_id=eid, result=t.Result(return_code=0)))
    for _ in range(3):
        r = bk.LaunchTask(be.LaunchTaskRequest(executor_id=eid), timeout=10)
        assert r.HasField("task") and r.task.status.state == t.Running
        bk.CompleteTask(be.CompleteTaskRequest(executor_id=eid, task_result=t.TaskResult(
            return_code=0, output=r.task.spec.input.upper())))
    done = {x.metadata.id: x for x in fe.ListTask(f.ListTaskRequest(session_id="u-1"))}
    assert all(x.status.state == t.Succeed for x in done.values())
    assert done["2"].spec.output == b"IN1"
    # closing the session unbinds the executor: LaunchTask answers with no task
    pending = bk.LaunchTask.future(be.LaunchTaskRequest(executor_id=eid), timeout=10)
    fe.CloseSession(f.CloseSessionRequest(session_id="u-1"))
    assert not pending.result().HasField("task")
    bk.UnbindExecutorCompleted(be.UnbindExecutorCompletedRequest(executor_id=eid))
    execs = {e.metadata.id: e for e in fe.ListExecutor(f.ListExecutorRequest()).executors}
    assert execs[eid].status.state == t.ExecutorIdle
    assert [n.metadata.name for n in fe.ListNodes(f.ListNodesRequest()).nodes] == ["py-node"]
    with pytest.raises(grpc.RpcError) as e:
        bk.CompleteTask(be.CompleteTaskRequest(executor_id=eid, task_result=t.TaskResult()))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    beats.put(None)
    ch.close()
