"""Dispatch of tasks that take time: a task is Running only while a service
has it, tasks sent ahead to a busy executor are taken back by an idle one,
and a task that waits for another task of its own session never deadlocks."""
from test_execution import open_session, register_pyservice, run_task, wait_for, wait_node


def task_state(pb, fe, sid, tid):
    return fe.GetTask(pb.fe.GetTaskRequest(session_id=sid, task_id=tid)).status.state


def test_a_task_sent_ahead_stays_pending_until_started(cluster, pb, cfe):
    wait_node(pb, cfe)
    register_pyservice(pb, cfe, "ahead")
    open_session(pb, cfe, "ahead-1", "ahead", max_instances=1)
    first, second = (cfe.CreateTask(pb.fe.CreateTaskRequest(task=pb.types.TaskSpec(
        session_id="ahead-1", input=d))).metadata.id for d in (b"sleep:1500", b"sleep:10"))
    wait_for(lambda: task_state(pb, cfe, "ahead-1", first) == pb.types.Running,
             what="the first task to run")
    # the one executor has the second task queued behind the first (its
    # window is two), but no service has it yet: it is Pending, not Running
    for _ in range(5):
        assert task_state(pb, cfe, "ahead-1", second) == pb.types.Pending
        assert task_state(pb, cfe, "ahead-1", first) == pb.types.Running
    wait_for(lambda: task_state(pb, cfe, "ahead-1", second) == pb.types.Succeed,
             what="the second task")
    s = cfe.GetSession(pb.fe.GetSessionRequest(session_id="ahead-1"))
    assert (s.status.succeed, s.status.failed) == (2, 0)


def test_a_task_waiting_for_a_task_of_its_session_does_not_deadlock(cluster, pb, cfe):
    """The child is sent ahead to the parent's executor, which is busy with
    the parent until the child ends: a second executor must take it back."""
    wait_node(pb, cfe)
    register_pyservice(pb, cfe, "nested")
    open_session(pb, cfe, "nested-1", "nested", max_instances=2)
    for _ in range(3):
        last = run_task(pb, cfe, "nested-1", b"spawn:50", timeout=30)
        assert last.status.state == pb.types.Succeed, last
        assert last.spec.output == b"child:slept"
    s = cfe.GetSession(pb.fe.GetSessionRequest(session_id="nested-1"))
    assert (s.status.succeed, s.status.failed, s.status.pending) == (6, 0, 0)


def test_a_long_task_after_quick_ones_is_running_while_it_runs(cluster, pb, cfe):
    """Quick tasks have their start reported with their outcome (one message
    instead of two); a task that then runs long must still show Running
    while it runs, not jump from Pending to Succeed."""
    wait_node(pb, cfe)
    open_session(pb, cfe, "quick-1", "flmping", max_instances=1)
    for _ in range(30):
        assert run_task(pb, cfe, "quick-1", b"").status.state == pb.types.Succeed
    t = cfe.CreateTask(pb.fe.CreateTaskRequest(task=pb.types.TaskSpec(
        session_id="quick-1", input=b'{"duration": 2500}'))).metadata.id
    wait_for(lambda: task_state(pb, cfe, "quick-1", t) != pb.types.Pending,
             what="the long task to leave Pending")
    assert task_state(pb, cfe, "quick-1", t) == pb.types.Running
    wait_for(lambda: task_state(pb, cfe, "quick-1", t) == pb.types.Succeed,
             what="the long task to end")


def test_run_session_acknowledges_every_task(cluster, pb, cfe):
    """A RunSession acknowledgement waits (1 ms at most) to go out with its
    task's outcome: a quick task's comes in the outcome's message, a long
    task's alone before its outcome, and one still held when the client
    half-closes goes out before the stream's end."""
    import queue
    wait_node(pb, cfe)
    open_session(pb, cfe, "ack-1", "flmping", max_instances=1)
    assert run_task(pb, cfe, "ack-1", b"").status.state == pb.types.Succeed  # bound, streaming
    out = queue.Queue()

    def requests():
        while (m := out.get()) is not None:
            yield m
    stream = cfe.RunSession(requests(), timeout=30)
    out.put(pb.fe.RunSessionRequest(session_id="ack-1", inputs=[b""]))
    acked, outcomes = 0, {}

    def take(m):
        nonlocal acked
        if m.created_count:
            acked = max(acked, m.created_first + m.created_count - 1)
        for o in m.outcomes:
            outcomes[o.task_id] = o
    while not outcomes:  # a quick task: acknowledged with (or before) its outcome
        take(next(stream))
    first = min(outcomes)
    assert acked >= first
    out.put(pb.fe.RunSessionRequest(inputs=[b'{"duration": 300}']))
    m = next(stream)  # the long task: its acknowledgement comes alone, first
    take(m)
    assert acked == first + 1 and not m.outcomes
    while first + 1 not in outcomes:
        take(next(stream))
    # a burst, then the client's end at once: whatever is held goes out first
    out.put(pb.fe.RunSessionRequest(inputs=[b""] * 5))
    out.put(None)
    for m in stream:
        take(m)
    assert acked == first + 6
