"""What a Flame client can observe (ECOSYSTEM.md §7), over the wire with
grpcio: OpenSession/CreateTask/CloseSession codes and Flame's texts, task
events, bind-failure events 1001/1002 with retry_limits from the config,
event 1003 for a session no node can fit, and nested tasks that never
deadlock."""
import os
import shutil
import tempfile

import grpc
import pytest
from conftest import Daemon, channel
from test_execution import open_session, register_pyservice, run_task, wait_for, wait_node


def err(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


def register(pb, fe, name):
    fe.RegisterApplication(pb.fe.RegisterApplicationRequest(
        name=name, application=pb.types.ApplicationSpec(command="/bin/true")))


def test_open_create_close_codes_and_texts(pb, fe):
    t, f = pb.types, pb.fe
    register(pb, fe, "sem")
    spec = t.SessionSpec(application="sem")
    # missing, no spec: NOT_FOUND; missing with a spec: created
    assert err(lambda: fe.OpenSession(f.OpenSessionRequest(session_id="o-1"))) == \
        (grpc.StatusCode.NOT_FOUND, "session o-1 not found")
    made = fe.OpenSession(f.OpenSessionRequest(session_id="o-1", session=spec))
    assert made.metadata.id == "o-1" and made.status.state == t.Open
    # open: returned after the spec check, with or without a spec
    assert fe.OpenSession(f.OpenSessionRequest(session_id="o-1")).metadata.id == "o-1"
    assert fe.OpenSession(f.OpenSessionRequest(session_id="o-1", session=spec)).metadata.id == "o-1"
    code, _ = err(lambda: fe.OpenSession(f.OpenSessionRequest(
        session_id="o-1", session=t.SessionSpec(application="sem", priority=3))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    fe.CreateTask(f.CreateTaskRequest(task=t.TaskSpec(session_id="o-1", input=b"a")))
    fe.CreateTasks(f.CreateTasksRequest(session_id="o-1", count=2))
    # close: pending tasks Cancelled; idempotent
    closed = fe.CloseSession(f.CloseSessionRequest(session_id="o-1"))
    assert closed.status.state == t.Closed and closed.status.cancelled == 3
    again = fe.CloseSession(f.CloseSessionRequest(session_id="o-1"))
    assert again.status.state == t.Closed and again.status.cancelled == 3
    # closed: OpenSession and CreateTask(s) are INVALID_ARGUMENT, Flame's words
    for req in (f.OpenSessionRequest(session_id="o-1"),
                f.OpenSessionRequest(session_id="o-1", session=spec)):
        assert err(lambda: fe.OpenSession(req)) == \
            (grpc.StatusCode.INVALID_ARGUMENT, "session o-1 is not open")
    code, msg = err(lambda: fe.CreateTask(f.CreateTaskRequest(
        task=t.TaskSpec(session_id="o-1", input=b"late"))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert msg.startswith("Cannot create task in closed session"), msg
    code, msg = err(lambda: fe.CreateTasks(f.CreateTasksRequest(session_id="o-1", count=1)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert msg.startswith("Cannot create task in closed session"), msg
    assert err(lambda: fe.CloseSession(f.CloseSessionRequest(session_id="nope")))[0] == \
        grpc.StatusCode.NOT_FOUND
    # Flame's task events: the code is the state, with its message
    task = fe.GetTask(f.GetTaskRequest(session_id="o-1", task_id="1"))
    assert [(e.code, e.message) for e in task.status.events][0] == \
        (t.Pending, "Task was created with state <Pending>")
    assert task.status.events[-1].code == t.Cancelled


@pytest.fixture
def patient_cluster():
    """A cluster whose executor manager lets a task run a minute (the
    default fixture's fails a task after 3 s)."""
    d = Daemon(tempfile.mkdtemp(prefix="flame-patient-"))
    d.em_args = ["--task-timeout", "60"]
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


def test_close_with_running_tasks_and_task_events(patient_cluster, pb):
    t, f = pb.types, pb.fe
    ch = channel(patient_cluster.port)
    cfe = pb.grpc.FrontendStub(ch)
    wait_node(pb, cfe)
    register_pyservice(pb, cfe, "closer")
    open_session(pb, cfe, "run-1", "closer", max_instances=1)
    gate = os.path.join(patient_cluster.workdir, "gate")
    slow = cfe.CreateTask(f.CreateTaskRequest(task=t.TaskSpec(session_id="run-1",
                                                                input=b"wait:" + gate.encode())))
    queued = cfe.CreateTask(f.CreateTaskRequest(task=t.TaskSpec(session_id="run-1", input=b"x")))
    wait_for(lambda: cfe.GetTask(f.GetTaskRequest(session_id="run-1", task_id=slow.metadata.id))
             .status.state == t.Running, what="the slow task to run")
    code, msg = err(lambda: cfe.CloseSession(f.CloseSessionRequest(session_id="run-1")))
    assert code == grpc.StatusCode.INTERNAL
    assert msg.startswith("Cannot close session with running tasks"), msg
    s = cfe.GetSession(f.GetSessionRequest(session_id="run-1"))
    assert s.status.state == t.Open and s.status.pending == 1 and s.status.running == 1
    open(gate, "w").close()
    # once nothing runs, the close goes through (what our clients do after
    # their last outcome)
    for tid in (slow.metadata.id, queued.metadata.id):
        for last in cfe.WatchTask(f.WatchTaskRequest(session_id="run-1", task_id=tid), timeout=60):
            pass
        assert last.status.state == t.Succeed, last
    done = cfe.GetTask(f.GetTaskRequest(session_id="run-1", task_id=slow.metadata.id))
    evs = [(e.code, e.message) for e in done.status.events]
    assert evs[0] == (t.Pending, "Task was created with state <Pending>")
    assert evs[-1] == (t.Succeed, "Task was completed with state <Succeed>")
    # Flame's launch event names the executor's node
    assert (t.Running, "Running task on host test-node.") in evs, evs
    closed = cfe.CloseSession(f.CloseSessionRequest(session_id="run-1"))
    assert closed.status.state == t.Closed and closed.status.succeed == 2
    open_session(pb, cfe, "run-2", "closer")
    failed = run_task(pb, cfe, "run-2", b"fail:broken")
    assert failed.status.state == t.Failed
    assert (failed.status.events[-1].code, failed.status.events[-1].message) == (t.Failed, "broken")
    cfe.CloseSession(f.CloseSessionRequest(session_id="run-2"))
    ch.close()


class RetryDaemon(Daemon):
    """A cluster whose sessions give up after 2 failed binds."""

    def config(self):
        path = super().config()
        with open(path, "a") as f:
            f.write("  recovery:\n    session:\n      retry_limits: 2\n")
        return path


@pytest.fixture
def retry_cluster():
    d = RetryDaemon(tempfile.mkdtemp(prefix="flame-retry-"))
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


def test_bind_failures_give_flames_events_at_the_configured_limit(retry_cluster, pb):
    ch = channel(retry_cluster.port)
    fe = pb.grpc.FrontendStub(ch)
    t, f = pb.types, pb.fe
    wait_node(pb, fe)
    register_pyservice(pb, fe, "picky")
    open_session(pb, fe, "refused", "picky", common_data=b"refuse")
    fe.CreateTask(f.CreateTaskRequest(task=t.TaskSpec(session_id="refused", input=b"x")))

    def events():
        return list(fe.GetSession(f.GetSessionRequest(session_id="refused")).status.events)
    evs = wait_for(lambda: [e for e in events() if e.code == 1002] and events(), timeout=60,
                   what="event 1002")
    binds = [e.message for e in evs if e.code == 1001]
    assert len(binds) == 2, binds
    assert binds[0].startswith("Executor ") and " on node test-node failed to bind session " \
        "with return_code " in binds[0], binds[0]
    assert binds[0].endswith("refused by service"), binds[0]
    limit = [e.message for e in evs if e.code == 1002]
    assert limit == ["Session retry limit reached after 2/2 failed attempts; new executor "
                     "assignment is paused until the session is closed"], limit
    # pending tasks are not failed; the session stays open
    s = fe.GetSession(f.GetSessionRequest(session_id="refused"))
    assert s.status.state == t.Open and s.status.pending == 1 and s.status.failed == 0
    fe.CloseSession(f.CloseSessionRequest(session_id="refused"))
    ch.close()


def test_a_session_no_node_can_fit_gets_event_1003(cluster, pb, cfe):
    t, f = pb.types, pb.fe
    wait_node(pb, cfe)
    register_pyservice(pb, cfe, "huge")
    open_session(pb, cfe, "huge-1", "huge",
                 resreq=t.ResourceRequirement(cpu=64, memory=64 << 20))
    cfe.CreateTask(f.CreateTaskRequest(task=t.TaskSpec(session_id="huge-1", input=b"x")))

    def unfit():
        return [e.message for e in cfe.GetSession(f.GetSessionRequest(session_id="huge-1"))
                .status.events if e.code == 1003]
    msgs = wait_for(unfit, timeout=30, what="event 1003")
    assert len(msgs) == 1 and "No node can run session huge-1" in msgs[0], msgs
    assert "cpu=64" in msgs[0] and "test-node" in msgs[0], msgs
    s = cfe.GetSession(f.GetSessionRequest(session_id="huge-1"))
    assert s.status.pending == 1  # still Pending, as Flame leaves it
    cfe.CloseSession(f.CloseSessionRequest(session_id="huge-1"))


def test_nested_tasks_never_deadlock(cluster, pb, cfe):
    """A task that submits a task to its own session and waits for it, with
    the session holding one executor already (warm, busy with the parent)
    and with no executor yet. (Two parents at once on a node with room for
    two executors would hold both while their children wait: that is a
    deadlock of the application's making, in Flame too.)"""
    t, f = pb.types, pb.fe
    wait_node(pb, cfe)
    register_pyservice(pb, cfe, "nest")
    open_session(pb, cfe, "warm", "nest")
    assert run_task(pb, cfe, "warm", b"count").status.state == t.Succeed  # one executor
    for _ in range(3):
        last = run_task(pb, cfe, "warm", b"spawn:20", timeout=60)
        assert last.status.state == t.Succeed and last.spec.output == b"child:slept", last
    open_session(pb, cfe, "cold", "nest")
    last = run_task(pb, cfe, "cold", b"spawn:300", timeout=60)
    assert last.status.state == t.Succeed and last.spec.output == b"child:slept", last
    for sid, n in (("warm", 7), ("cold", 2)):
        s = cfe.GetSession(f.GetSessionRequest(session_id=sid))
        assert (s.status.succeed, s.status.failed, s.status.pending) == (n, 0, 0), (sid, s.status)
        cfe.CloseSession(f.CloseSessionRequest(session_id=sid))


@pytest.fixture
def wide_cluster():
    """A node with room for four executors (the default fixture's two)."""
    d = Daemon(tempfile.mkdtemp(prefix="flame-wide-"))
    d.em_args = ["--resources", "cpu=4,mem=2g"]
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


def test_several_parents_waiting_for_children_never_deadlock(wide_cluster, pb):
    """Three tasks at once, each submitting a task to its own session and
    waiting for it, on room for four executors: the parents hold three, and
    every child must reach the fourth (none may wait behind a busy parent's
    executor)."""
    t, f = pb.types, pb.fe
    ch = channel(wide_cluster.port)
    fe = pb.grpc.FrontendStub(ch)
    wait_node(pb, fe)
    register_pyservice(pb, fe, "nest-wide")
    open_session(pb, fe, "wide", "nest-wide")
    for round_ in range(2):
        ids = [fe.CreateTask(f.CreateTaskRequest(task=t.TaskSpec(
            session_id="wide", input=b"spawn:100"))).metadata.id for _ in range(3)]
        for tid in ids:
            for last in fe.WatchTask(f.WatchTaskRequest(session_id="wide", task_id=tid),
                                     timeout=120):
                pass
            assert last.status.state == t.Succeed and last.spec.output == b"child:slept", last
    s = fe.GetSession(f.GetSessionRequest(session_id="wide"))
    assert (s.status.succeed, s.status.failed, s.status.pending) == (12, 0, 0), s.status
    fe.CloseSession(f.CloseSessionRequest(session_id="wide"))
    ch.close()
