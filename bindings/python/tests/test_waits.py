"""Nothing waits silently: a session that cannot get an executor raises
FlameError with the session's own event, within a bound; a relative
command path is refused at registration."""
import threading

import flame
import pytest


def bounded(fn, seconds=90):
    """fn() on a thread; its exception (or result) once it ends, which must
    be within seconds."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except Exception as e:  # noqa: BLE001 - handed to the test
            box["error"] = e
    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), f"still waiting after {seconds} s"
    return box


def test_no_node_fits_raises(cluster):
    s = flame.create_session("flmping", resreq="cpu=64,mem=64m")
    for call in (lambda: s.invoke(b"{}"), lambda: s.map([b"{}", b"{}"])):
        got = bounded(call)
        assert isinstance(got.get("error"), flame.FlameError), got
        assert "No node can run session" in str(got["error"]), str(got["error"])
    s.close()


def test_missing_command_raises_with_the_bind_failure(cluster):
    flame.register_application("py-missing-cmd", {"command": "/nonexistent/flame-service"})
    s = flame.create_session("py-missing-cmd")
    got = bounded(lambda: s.invoke(b"x"), seconds=180)
    err = str(got.get("error"))
    assert "Session retry limit reached" in err and "failed to bind session" in err, got
    s.close()


def test_relative_command_is_refused(cluster):
    with pytest.raises(flame.FlameError) as e:
        flame.register_application("py-relative", {"command": "build/examples/pi_service"})
    assert "relative path" in str(e.value)


def test_a_call_rides_out_a_restarting_session_manager(cluster):
    """A call that changes nothing when repeated (get, close) made while
    the session manager is down waits for it to come back."""
    s = flame.create_session("flmping")  # the client has reached the server
    cluster.kill9_sm()
    back = threading.Timer(1.0, cluster.start_sm)
    back.start()
    try:
        got = bounded(lambda: flame.get_session(s.id), seconds=60)
    finally:
        back.join()
    assert "error" not in got, got
    got = bounded(s.close, seconds=60)
    assert "error" not in got, got
