"""A flamepy 0.6 program that handles errors: FlameError with .code and
.message, get_application's None."""
import os

import flamepy
from flamepy import FlameError, FlameErrorCode

TAG = os.environ["SWAP_TAG"]


def raises(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except FlameError as e:
        assert isinstance(e.code, FlameErrorCode) and e.message and str(e), repr(e)
        return e
    raise AssertionError(f"{fn.__name__} did not raise")


e = raises(flamepy.open_session, f"nope-{TAG}")
assert e.code == FlameErrorCode.NOT_FOUND, e
assert flamepy.get_application(f"nope-{TAG}") is None
raises(flamepy.create_session, f"noapp-{TAG}")

s = flamepy.create_session("flmping", session_id=f"dup-{TAG}")
raises(flamepy.create_session, "flmping", session_id=f"dup-{TAG}")
e = raises(flamepy.create_session, "flmping", common_data="not bytes")
assert e.code == FlameErrorCode.INVALID_ARGUMENT
e = raises(s.create_task, "not bytes")
assert e.code == FlameErrorCode.INVALID_ARGUMENT
s.close()
raises(s.invoke, b"{}")
raises(flamepy.open_session, f"dup-{TAG}")  # closed
print("PASS core_errors")
