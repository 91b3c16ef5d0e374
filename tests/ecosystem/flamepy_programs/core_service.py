"""A flamepy 0.6 program with its own service (counter_service.py):
register_application, a stateful session, common data, futures, a failing
task, unregister."""
import os
import sys

import flamepy
from flamepy import FlameError, SessionState

TAG = os.environ["SWAP_TAG"]
SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "counter_service.py")
# the service runs with this program's interpreter and import path
env = {k: os.environ[k] for k in ("PYTHONPATH", "LD_LIBRARY_PATH") if k in os.environ}
env["PYTHONUNBUFFERED"] = "1"
app = f"counter-{TAG}"

flamepy.register_application(app, flamepy.ApplicationAttributes(
    command=sys.executable, arguments=[SERVICE], environments=env,
    description="a counter", max_instances=1))
a = flamepy.get_application(app)
assert (a.name, a.command, a.arguments, a.description) == \
    (app, sys.executable, [SERVICE], "a counter"), a
assert app in [x.name for x in flamepy.list_applications()]

s = flamepy.create_session(app, common_data=b"shared", max_instances=1)
assert s.invoke(b"x") == b"1"
assert s.invoke(b"x") == b"2"  # the same executor, its state kept
futures = [s.run(b"x") for _ in range(5)]
assert sorted(f.result(timeout=120) for f in futures) == [b"3", b"4", b"5", b"6", b"7"]
assert s.invoke(b"common") == b"shared"
assert s.invoke(b"none") is None
sid, appname, task_sid = s.invoke(b"info").decode().split()
assert (sid, appname, task_sid) == (s.id, app, s.id)

try:
    s.run(b"fail").result(timeout=120)
    raise AssertionError("the task did not fail")
except FlameError as e:
    assert "asked to fail" in str(e), e
try:
    s.invoke(b"fail")
    raise AssertionError("the task did not fail")
except FlameError as e:
    assert "asked to fail" in str(e), e
assert s.invoke(b"x") == b"8"

s.close()
info = flamepy.get_session(s.id)
assert info.state == SessionState.CLOSED and (info.succeed, info.failed) == (11, 2), vars(info)
flamepy.unregister_application(app)
assert flamepy.get_application(app) is None
print("PASS core_service")
