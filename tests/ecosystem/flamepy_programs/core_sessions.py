"""A flamepy 0.6 program on the core API: sessions, invoke, run futures,
tasks and their watch, list/get/open/close. Run as it is against flamepy,
and with `import flame as flamepy` against ours (test_flamepy_swap.py)."""
import concurrent.futures
import os

import flamepy
from flamepy import SessionState, TaskState

TAG = os.environ["SWAP_TAG"]

s = flamepy.create_session("flmping", common_data=b"shared", session_id=f"core-{TAG}")
assert s.id == f"core-{TAG}" and s.application == "flmping", s
assert s.state == SessionState.OPEN and s.common_data() == b"shared"
out = s.invoke(b"{}")
assert isinstance(out, bytes) and out, out

futures = [s.run(b"{}") for _ in range(20)]
done, not_done = concurrent.futures.wait(futures, timeout=120)
assert not not_done and all(f.result() for f in futures)
for f in concurrent.futures.as_completed([s.run(b"{}") for _ in range(5)], timeout=120):
    assert f.result()

task = s.create_task(b"{}")
assert task.session_id == s.id and task.state in (TaskState.PENDING, TaskState.RUNNING)
last = None
for update in s.watch_task(task.id):
    last = update
    if update.is_completed():
        break
assert last.state == TaskState.SUCCEED and last.output, last
got = s.get_task(task.id)
assert got.state == TaskState.SUCCEED and got.output == last.output
assert got.creation_time <= got.completion_time
assert len(list(s.list_tasks())) == 27

info = flamepy.get_session(s.id)
assert (info.id, info.application, info.state, info.succeed, info.failed, info.pending) == \
    (s.id, "flmping", SessionState.OPEN, 27, 0, 0), vars(info)
assert info.common_data() == b"shared"
assert s.id in [x.id for x in flamepy.list_sessions()]
closed = flamepy.close_session(s.id)
assert closed.id == s.id and closed.state == SessionState.CLOSED
assert flamepy.get_session(s.id).state == SessionState.CLOSED

spec = flamepy.SessionAttributes(application="flmping", min_instances=0)
opened = flamepy.open_session(f"open-{TAG}", spec)
assert opened.id == f"open-{TAG}" and opened.state == SessionState.OPEN
again = flamepy.open_session(f"open-{TAG}")
assert again.invoke(b"{}")
again.close()
print("PASS core_sessions")
