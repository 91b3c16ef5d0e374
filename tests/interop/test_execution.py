"""Execution with real daemons on loopback: the session manager, an executor
manager, flmping, and a service written in Python against shim.proto."""
import os
import subprocess
import sys
import time

import grpc
import pytest

from conftest import BUILD_DIR, TLS, pki

HERE = os.path.dirname(os.path.abspath(__file__))


def wait_for(pred, timeout=30, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def retry(fn, timeout=30):
    """Calls fn until the session manager answers (it may be restarting)."""
    deadline = time.time() + timeout
    while True:
        try:
            return fn()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.time() > deadline:
                raise
            time.sleep(0.1)


def register_pyservice(pb, fe, name, delay_release=None):
    t = pb.types
    spec = t.ApplicationSpec(
        command=sys.executable if sys.executable.startswith("/usr/bin") else "/usr/bin/python3",
        arguments=[os.path.join(HERE, "pyservice.py")],
        environments=[t.Environment(name="PYTHONPATH", value=pb.stubs_dir)],
        # unconfined (registered by an admin): these tests kill its host pid,
        # have it mark files of theirs and call back with the admin's key
        sandbox="none")
    if TLS:  # the service calls back as a client: with mutual TLS it needs a certificate
        for var, file in (("FLAME_CERT_FILE", "admin.crt"), ("FLAME_KEY_FILE", "admin.key")):
            spec.environments.append(t.Environment(name=var, value=os.path.join(pki(), file)))
    if delay_release is not None:
        spec.delay_release = delay_release
    fe.RegisterApplication(pb.fe.RegisterApplicationRequest(name=name, application=spec))


def open_session(pb, fe, sid, app, **kw):
    return fe.CreateSession(pb.fe.CreateSessionRequest(
        session_id=sid, session=pb.types.SessionSpec(application=app, **kw)))


def run_task(pb, fe, sid, data, timeout=30):
    t = fe.CreateTask(pb.fe.CreateTaskRequest(task=pb.types.TaskSpec(session_id=sid, input=data)))
    last = None
    for last in fe.WatchTask(pb.fe.WatchTaskRequest(session_id=sid, task_id=t.metadata.id),
                             timeout=timeout):
        pass
    return last


def wait_node(pb, fe):
    wait_for(lambda: any(n.status.state == pb.types.Ready for n in
                         fe.ListNodes(pb.fe.ListNodesRequest()).nodes), what="the node")


def test_flmping_1000(cluster, pb, cfe):
    wait_node(pb, cfe)
    out = subprocess.run([os.path.join(BUILD_DIR, "cli", "flmping"), "-t", "1000",
                          "--endpoint", cluster.url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("Session <flmping-") and "start to run <1,000> tasks" in lines[0]
    assert lines[2].split() == ["Session", "Task", "State", "Output"]
    rows = [ln for ln in lines if " Succeed " in ln]
    assert len(rows) == 1000
    assert lines[-2].startswith("<1,000> tasks was completed in <") and lines[-1] == ""
    perf = subprocess.run([os.path.join(BUILD_DIR, "cli", "flmping"), "-t", "200", "-p",
                           "--endpoint", cluster.url],
                          capture_output=True, text=True, timeout=120)
    assert perf.returncode == 0, perf.stderr
    assert "BENCHMARK RESULTS" in perf.stdout and "Succeeded:       200/200" in perf.stdout


def test_python_service_keeps_state_fails_and_survives_a_crash(cluster, pb, cfe):
    t = pb.types
    wait_node(pb, cfe)
    register_pyservice(pb, cfe, "pysvc")
    open_session(pb, cfe, "py-1", "pysvc", max_instances=1, common_data=b"hello")
    assert run_task(pb, cfe, "py-1", b"common").spec.output == b"hello"
    assert run_task(pb, cfe, "py-1", b"count").spec.output == b"1"
    assert run_task(pb, cfe, "py-1", b"count").spec.output == b"2"  # state kept
    failed = run_task(pb, cfe, "py-1", b"fail:bad input here")
    assert failed.status.state == t.Failed
    assert failed.status.events[-1].code == t.Failed
    assert failed.status.events[-1].message == "bad input here"
    pid1 = run_task(pb, cfe, "py-1", b"pid").spec.output
    crashed = run_task(pb, cfe, "py-1", b"crash")
    assert crashed.status.state == t.Failed
    assert "exited with code 3" in crashed.status.events[-1].message
    # the session goes on with a new service process
    assert run_task(pb, cfe, "py-1", b"count").spec.output == b"1"
    pid2 = run_task(pb, cfe, "py-1", b"pid").spec.output
    assert pid1 != pid2
    s = cfe.GetSession(pb.fe.GetSessionRequest(session_id="py-1"))
    assert (s.status.succeed, s.status.failed, s.status.pending, s.status.running) == (6, 2, 0, 0)


def test_bind_failures_are_recorded_and_stop_after_five(cluster, pb, cfe):
    wait_node(pb, cfe)
    register_pyservice(pb, cfe, "picky")
    open_session(pb, cfe, "refused", "picky", common_data=b"refuse")
    cfe.CreateTask(pb.fe.CreateTaskRequest(task=pb.types.TaskSpec(session_id="refused", input=b"x")))

    def events():
        return list(cfe.GetSession(pb.fe.GetSessionRequest(session_id="refused")).status.events)
    evs = wait_for(lambda: [e for e in events() if e.code == 1002] and events(), timeout=60,
                   what="event 1002")
    binds = [e for e in evs if e.code == 1001]
    assert len(binds) == 5
    assert "failed to bind session" in binds[0].message
    assert "refused by service" in binds[0].message
    time.sleep(0.5)
    s = cfe.GetSession(pb.fe.GetSessionRequest(session_id="refused"))
    assert s.status.state == pb.types.Open and s.status.pending == 1
    assert len([e for e in s.status.events if e.code == 1001]) == 5  # no more tries
    # the executor was freed: another session of another application runs
    register_pyservice(pb, cfe, "fine")
    open_session(pb, cfe, "ok-1", "fine")
    assert run_task(pb, cfe, "ok-1", b"count").spec.output == b"1"
    cfe.CloseSession(pb.fe.CloseSessionRequest(session_id="refused"))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone too
        return f.read().split(")")[-1].split()[0] != "Z"


def test_close_releases_executors_and_processes_exit(cluster, pb, cfe):
    wait_node(pb, cfe)
    register_pyservice(pb, cfe, "shortlived", delay_release=0)
    open_session(pb, cfe, "c-1", "shortlived", max_instances=1)
    pid = int(run_task(pb, cfe, "c-1", b"pid").spec.output)
    assert pid_alive(pid)
    execs = cfe.ListExecutor(pb.fe.ListExecutorRequest()).executors
    assert any(e.status.session_id == "c-1" for e in execs)
    cfe.CloseSession(pb.fe.CloseSessionRequest(session_id="c-1"))
    wait_for(lambda: not pid_alive(pid), what="the service process to exit")
    wait_for(lambda: not cfe.ListExecutor(pb.fe.ListExecutorRequest()).executors,
             what="the executors to be released")


def submit_sleepers(pb, fe, sid, n, ms):
    ids = []
    for _ in range(n):
        t = fe.CreateTask(pb.fe.CreateTaskRequest(task=pb.types.TaskSpec(
            session_id=sid, input=f"sleep:{ms}".encode())))
        ids.append(t.metadata.id)
    return ids


def all_done(pb, fe, sid, n):
    s = retry(lambda: fe.GetSession(pb.fe.GetSessionRequest(session_id=sid)))
    return s.status.succeed == n and s


def restart_mid_run(pb, fe, sid, app, restart):
    """20 tasks of 100 ms on two executors; restart() in the middle; all
    20 must end Succeed, none lost, none failed."""
    wait_node(pb, fe)
    register_pyservice(pb, fe, app)
    open_session(pb, fe, sid, app, max_instances=2)
    submit_sleepers(pb, fe, sid, 20, 100)
    wait_for(lambda: fe.GetSession(pb.fe.GetSessionRequest(session_id=sid)).status.succeed >= 3,
             what="some tasks to finish")
    before = fe.GetSession(pb.fe.GetSessionRequest(session_id=sid)).status
    restart()
    assert before.succeed < 20  # the restart lands in the middle of the run
    s = wait_for(lambda: all_done(pb, fe, sid, 20), timeout=60, what="all 20 tasks")
    assert (s.status.failed, s.status.pending, s.status.running) == (0, 0, 0)
    tasks = list(fe.ListTask(pb.fe.ListTaskRequest(session_id=sid)))
    assert len(tasks) == 20 and all(t.spec.output == b"slept" for t in tasks)


def test_executor_manager_restart_loses_no_task(cluster, pb, cfe):
    restart_mid_run(pb, cfe, "em-r", "sleepy", lambda: (cluster.kill9_em(), cluster.start_em()))


def test_session_manager_restart_loses_no_task(cluster, pb, cfe):
    restart_mid_run(pb, cfe, "sm-r", "sleepy2", lambda: (cluster.kill9(), cluster.start()))


def test_hanging_service_fails_only_its_task(cluster, pb, cfe):
    t = pb.types
    wait_node(pb, cfe)
    register_pyservice(pb, cfe, "hangs")
    open_session(pb, cfe, "h-1", "hangs", max_instances=1)
    assert run_task(pb, cfe, "h-1", b"count").spec.output == b"1"
    hung = run_task(pb, cfe, "h-1", b"sleep:60000")  # the executor manager allows 3 s
    assert hung.status.state == t.Failed
    assert "did not answer task" in hung.status.events[-1].message
    assert run_task(pb, cfe, "h-1", b"count").spec.output == b"1"  # a new process


def test_flmexec(cluster, pb, cfe):
    wait_node(pb, cfe)
    flmexec = os.path.join(BUILD_DIR, "cli", "flmexec")
    ep = ["--endpoint", cluster.url]
    out = subprocess.run([flmexec, "-c", "echo hello; echo world"] + ep,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello\nworld\n"
    out = subprocess.run([flmexec, "-l", "python", "-i", "abc", "-c",
                          "import sys; print(sys.stdin.read().upper())"] + ep,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == "ABC\n", out.stderr
    out = subprocess.run([flmexec, "-c", "echo broken >&2; exit 4"] + ep,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "exit code 4" in out.stderr and "broken" in out.stderr


def test_batched_path(cluster, pb, cfe):
    """CreateTasks and WatchSession: our additions for throughput."""
    f, t = pb.fe, pb.types
    wait_node(pb, cfe)
    open_session(pb, cfe, "b-1", "flmping")
    r = cfe.CreateTasks(f.CreateTasksRequest(session_id="b-1", inputs=[b"{}"] * 300))
    assert (r.first_task_id, r.count) == (1, 300)
    r = cfe.CreateTasks(f.CreateTasksRequest(session_id="b-1", count=200))
    assert (r.first_task_id, r.count) == (301, 200)
    seen = {}
    for batch in cfe.WatchSession(f.WatchSessionRequest(session_id="b-1", from_task_id=1), timeout=60):
        for o in batch.outcomes:
            seen[o.task_id] = o
        if len(seen) == 500:
            break
    assert sorted(seen) == list(range(1, 501))
    assert all(o.state == t.Succeed and o.output.startswith(b'{"hostname":') for o in seen.values())
    t7 = cfe.GetTask(f.GetTaskRequest(session_id="b-1", task_id="7"))
    assert t7.status.state == t.Succeed and t7.spec.input == b"{}"
    assert not cfe.GetTask(f.GetTaskRequest(session_id="b-1", task_id="400")).spec.HasField("input")
    with pytest.raises(grpc.RpcError) as e:
        cfe.CreateTasks(f.CreateTasksRequest(session_id="b-1", inputs=[b"a"], count=2))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        cfe.CreateTasks(f.CreateTasksRequest(session_id="nope", count=1))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # a watch of a closed session ends once everything is reported
    cfe.CloseSession(f.CloseSessionRequest(session_id="b-1"))
    n = sum(len(b.outcomes) for b in cfe.WatchSession(
        f.WatchSessionRequest(session_id="b-1", from_task_id=450), timeout=30))
    assert n == 51
    with pytest.raises(grpc.RpcError) as e:
        cfe.CreateTasks(f.CreateTasksRequest(session_id="b-1", count=1))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_inproc_builtin_service(cluster, pb, cfe):
    t = pb.types
    wait_node(pb, cfe)
    cfe.RegisterApplication(pb.fe.RegisterApplicationRequest(
        name="ping-inproc", application=t.ApplicationSpec(command="inproc:flmping")))
    open_session(pb, cfe, "ip-1", "ping-inproc")
    done = run_task(pb, cfe, "ip-1", b'{"duration": 1}')
    assert done.status.state == t.Succeed and done.spec.output.startswith(b'{"hostname":')
    bad = run_task(pb, cfe, "ip-1", b"{not json")
    assert bad.status.state == t.Failed and "must be JSON" in bad.status.events[-1].message
    # an unknown built-in: the bind fails with a message saying so
    cfe.RegisterApplication(pb.fe.RegisterApplicationRequest(
        name="no-such", application=t.ApplicationSpec(command="inproc:nothing")))
    open_session(pb, cfe, "ip-2", "no-such")
    cfe.CreateTask(pb.fe.CreateTaskRequest(task=t.TaskSpec(session_id="ip-2")))
    ev = wait_for(lambda: [e for e in cfe.GetSession(pb.fe.GetSessionRequest(
        session_id="ip-2")).status.events if e.code == 1001], what="a bind failure")
    assert "no built-in service named" in ev[0].message


def test_many_sessions_with_priorities_all_finish(cluster, pb, cfe):
    """Sessions of three priorities at once on a 2-cpu node: executors are
    bound, taken back for higher tiers and for fairness (also while still
    entering a session), and every task of every session ends Succeed."""
    wait_node(pb, cfe)
    flmping = os.path.join(BUILD_DIR, "cli", "flmping")
    procs = [subprocess.Popen([flmping, "-t", "500", "-p", "-P", str(i % 3), "--endpoint",
                               cluster.url],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(8)]
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out
        assert "Succeeded:       500/500" in out, out
    # once the sessions are closed their executors come back to Idle
    wait_for(lambda: all(e.status.state == pb.types.ExecutorIdle for e in
                         cfe.ListExecutor(pb.fe.ListExecutorRequest()).executors),
             what="the executors to be Idle again")


def test_flmping_rides_out_a_session_manager_restart(cluster, pb, cfe):
    """The client core's outcome stream comes back after the session
    manager restarts, and reports each task once."""
    wait_node(pb, cfe)
    p = subprocess.Popen([os.path.join(BUILD_DIR, "cli", "flmping"), "-t", "300", "-d", "5", "-p",
                          "--endpoint", cluster.url],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.5)  # tasks are in, some have run
    cluster.kill9()
    assert p.poll() is None  # still running when the kill lands
    cluster.start()
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    assert "Succeeded:       300/300" in out and "Failed:          0" in out, out
