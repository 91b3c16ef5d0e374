"""Session.run's completion logic (flame.client._Completions) against a fake
session handle whose submissions and outcome stream the test drives: an
outcome that arrives before its future is registered, a task id lower than
the running watch's start, a session that ends with futures left, a failing
watch. No cluster, no timing: every step waits on an event."""
import queue
import threading

import pytest

import flame
from flame.client import _Completions

WAIT = 30  # seconds; a bound, never a pace


class FakeHandle:
    """submit() returns the id the test hands it; watch_outcomes() delivers
    the batches the test queues (None ends the session; an exception is
    raised)."""

    def __init__(self, stop_gate=None):
        self.stop_gate = stop_gate  # an Event a stopped watch waits for before it returns
        self.ids = queue.Queue()
        self.batches = queue.Queue()
        self.watch_starts = queue.Queue()
        self.submitting = queue.Queue()

    def submit(self, data):
        self.submitting.put(data)
        return str(self.ids.get(timeout=WAIT))

    def watch_outcomes(self, start, cb, timeout_ms):
        self.watch_starts.put(start)
        while True:
            b = self.batches.get(timeout=WAIT)
            if b is None:
                return True
            if isinstance(b, BaseException):
                raise b
            if cb(b):
                if self.stop_gate is not None:
                    assert self.stop_gate.wait(WAIT)
                return True


def ok(tid, out=b"out"):
    return (tid, "Succeed", out, None, 1)


def run_bg(c, data):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("f", c.submit(data)))
    t.start()
    return t, box


def test_outcome_before_registration():
    h = FakeHandle()
    c = _Completions(h, "s")
    h.ids.put(1)
    f1 = c.submit(b"a")
    assert h.watch_starts.get(timeout=WAIT) == 1
    # task 2 is being submitted: its outcome comes before submit() returns
    t, box = run_bg(c, b"b")
    assert h.submitting.get(timeout=WAIT) == b"a" and h.submitting.get(timeout=WAIT) == b"b"
    h.batches.put([ok(2, b"two")])
    h.batches.put([ok(1, b"one")])
    assert f1.result(WAIT) == b"one"
    h.ids.put(2)
    t.join(WAIT)
    assert box["f"].result(WAIT) == b"two"


def test_lower_id_than_the_watch_start():
    h = FakeHandle()
    c = _Completions(h, "s")
    # A's submit is in flight (its id will be 4) while B's returns 5
    ta, boxa = run_bg(c, b"a")
    assert h.submitting.get(timeout=WAIT) == b"a"
    tb, boxb = run_bg(c, b"b")
    assert h.submitting.get(timeout=WAIT) == b"b"
    h.ids.put(5)  # whichever submit takes it, the other gets 4
    h.ids.put(4)
    ta.join(WAIT)
    tb.join(WAIT)
    # the watch started low enough for both
    assert h.watch_starts.get(timeout=WAIT) <= 4
    h.batches.put([ok(4, b"four"), ok(5, b"five")])
    assert sorted([boxa["f"].result(WAIT), boxb["f"].result(WAIT)]) == [b"five", b"four"]


def test_failed_and_cancelled_tasks():
    h = FakeHandle()
    c = _Completions(h, "s")
    h.ids.put(1)
    h.ids.put(2)
    f1, f2 = c.submit(b"a"), c.submit(b"b")
    h.batches.put([(1, "Failed", None, "boom", 1), (2, "Cancelled", None, None, 1)])
    with pytest.raises(flame.FlameError) as e:
        f1.result(WAIT)
    assert e.value.message == "boom" and e.value.status == "TASK_FAILED"
    with pytest.raises(flame.FlameError) as e:
        f2.result(WAIT)
    assert e.value.code == flame.FlameErrorCode.INVALID_STATE and e.value.status == "CANCELLED"


def test_session_ends_with_futures_left():
    h = FakeHandle()
    c = _Completions(h, "s")
    h.ids.put(1)
    f = c.submit(b"a")
    h.batches.put(None)
    with pytest.raises(flame.FlameError) as e:
        f.result(WAIT)
    assert "ended before its tasks did" in str(e.value)
    # a later run() starts a new watch
    h.ids.put(2)
    f2 = c.submit(b"b")
    h.batches.put([ok(2)])
    assert f2.result(WAIT) == b"out"


def test_watch_error_reaches_the_futures():
    h = FakeHandle()
    c = _Completions(h, "s")
    h.ids.put(1)
    f = c.submit(b"a")
    h.batches.put(flame.FlameError(flame.FlameErrorCode.INVALID_STATE, "session s cannot run"))
    with pytest.raises(flame.FlameError) as e:
        f.result(WAIT)
    assert "cannot run" in str(e.value)


def test_a_cancelled_future_is_left_alone():
    h = FakeHandle()
    c = _Completions(h, "s")
    h.ids.put(1)
    h.ids.put(2)
    f1, f2 = c.submit(b"a"), c.submit(b"b")
    assert f1.cancel()
    h.batches.put([ok(1), ok(2)])
    assert f2.result(WAIT) == b"out" and f1.cancelled()


def test_a_run_between_a_stop_and_its_thread_exit():
    """The callback stopped the watch (nothing outstanding); before that
    thread is done, run() registers a new future and starts another: the
    stopping thread must leave it alone."""
    gate = threading.Event()
    h = FakeHandle(stop_gate=gate)
    c = _Completions(h, "s")
    h.ids.put(1)
    f1 = c.submit(b"a")
    assert h.watch_starts.get(timeout=WAIT) == 1
    h.batches.put([ok(1, b"one")])
    assert f1.result(WAIT) == b"one"  # the first watch now waits at the gate
    h.ids.put(2)
    f2 = c.submit(b"b")
    assert h.watch_starts.get(timeout=WAIT) == 2  # a second thread
    gate.set()  # the first thread returns from its watch
    h.batches.put([ok(2, b"two")])
    assert f2.result(WAIT) == b"two"
