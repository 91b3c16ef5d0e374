import asyncio
import threading
import time

import pytest

import flame


def test_applications(cluster):
    names = [a["name"] for a in flame.list_applications()]
    assert "flmping" in names
    flame.register_application("py-app", {"command": "/bin/true", "arguments": ["x"],
                                          "environments": {"K": "V"}, "max_instances": 3})
    a = flame.get_application("py-app")
    assert a["command"] == "/bin/true" and a["arguments"] == ["x"]
    assert a["environments"] == {"K": "V"} and a["max_instances"] == 3
    with pytest.raises(flame.FlameError) as e:
        flame.register_application("py-app", {"command": "/bin/true"})
    assert "already exists" in str(e.value)
    with pytest.raises(flame.FlameError):
        flame.register_application("bad name", {})
    flame.unregister_application("py-app")
    assert flame.get_application("py-app") is None  # flamepy's: None when absent


def test_invoke_run_map_on_builtin(cluster):
    with flame.create_session("flmping") as s:
        assert s.invoke(b"{}").startswith(b'{"hostname":')
        fut = s.run(b"{}")
        assert fut.result(30).startswith(b'{"hostname":')
        outs = s.map([b"{}"] * 200)
        assert len(outs) == 200 and all(o.startswith(b'{"hostname":') for o in outs)
        assert len(s.list_tasks()) == 202
        states = [t["state"] for t in s.watch_task(1)]
        assert states == ["Succeed"]
    info = flame.get_session(s.id)
    assert info["state"] == "Closed" and info["succeed"] == 202


def test_asyncio_and_threads(cluster):
    s = flame.create_session("flmping")

    async def main():
        return await asyncio.gather(*[asyncio.wrap_future(s.run(b"{}")) for _ in range(20)])
    outs = asyncio.run(main())
    assert len(outs) == 20
    errors = []

    def worker():
        try:
            for _ in range(20):
                s.invoke(b"{}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert flame.get_session(s.id)["succeed"] == 180
    s.close()


def test_python_service_state_and_failure(pyservice):
    with flame.create_session(pyservice, common_data=b"shared", max_instances=1) as s:
        assert s.invoke(b"x") == b"1"
        assert s.invoke(b"x") == b"2"  # state kept across the session's tasks
        assert s.invoke(b"common") == b"shared"
        with pytest.raises(flame.FlameError) as e:
            s.invoke(b"fail")
        assert "asked to fail" in str(e.value)
        assert s.invoke(b"x") == b"3"
        assert s.map([b"x", b"x"]) == [b"4", b"5"]


def test_watch_task_live(cluster):
    with flame.create_session("flmping") as s:
        # a 300 ms task runs on another thread while this one watches it move
        th = threading.Thread(target=lambda: s.invoke(b'{"duration": 300}'))
        th.start()
        deadline = time.time() + 10
        while not s.list_tasks() and time.time() < deadline:
            time.sleep(0.01)
        states = [x["state"] for x in s.watch_task(1)]
        th.join()
        assert states[-1] == "Succeed" and len(states) >= 2  # saw it before it ended
        assert states[0] in ("Pending", "Running")
        with pytest.raises(flame.FlameError):
            list(s.watch_task(99))


def test_errors(cluster):
    with pytest.raises(flame.FlameError) as e:
        flame.open_session("no-such-session")
    assert "not found" in str(e.value)
    with pytest.raises(flame.FlameError):
        flame.create_session("no-such-app")
    s = flame.create_session("flmping", session_id="py-closed")
    s.close()
    with pytest.raises(flame.FlameError) as e:
        s.invoke(b"{}")
    assert "closed" in str(e.value)
    again = flame.open_session("py-open", {"application": "flmping", "priority": 2})
    assert flame.get_session("py-open")["priority"] == 2
    assert flame.open_session("py-open").id == "py-open"
    again.close()


def test_invoke_rides_out_a_session_manager_restart(cluster):
    """A blocking invoke whose session manager is killed and restarted
    meanwhile still returns the task's output (the task runs again)."""
    s = flame.create_session("flmping")
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("out", s.invoke(b'{"duration": 800}')))
    th.start()
    time.sleep(0.3)
    cluster.kill9_sm()
    cluster.start_sm()
    th.join(60)
    assert not th.is_alive()
    assert box["out"].startswith(b'{"hostname":')
    s.close()
