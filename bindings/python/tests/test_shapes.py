"""flamepy 0.6's shapes on the `flame` package: records with attributes,
enums, FlameError.code, run futures without a thread each, the asyncio
forms."""
import asyncio
import concurrent.futures
import datetime
import threading

import pytest

import flame
from flame import FlameErrorCode, SessionState, TaskState


def pong(out):
    """flmping's answer: Flame's JSON, or the text of earlier versions."""
    return out.startswith(b'{"hostname":') or out.startswith(b"Completed on")


def test_session_objects(cluster):
    s = flame.create_session("flmping", common_data=b"cd", max_instances=2)
    assert s.id.startswith("flmping-") and len(s.id) == len("flmping-") + 6  # flamepy's naming
    assert s.application == "flmping" and s.common_data() == b"cd"
    assert s.state == SessionState.OPEN and isinstance(s.creation_time, datetime.datetime)
    assert pong(s.invoke(b"{}"))
    got = flame.get_session(s.id)
    assert isinstance(got, flame.Session)
    assert (got.id, got.application, got.state, got.succeed, got.pending, got.failed) == \
        (s.id, "flmping", SessionState.OPEN, 1, 0, 0)
    assert got.max_instances == 2 and got.common_data() == b"cd" and got.completion_time is None
    assert got["state"] == "Open" and got["succeed"] == 1  # the earlier dict keys
    # a listed session is usable as it is
    listed = [x for x in flame.list_sessions() if x.id == s.id][0]
    assert pong(listed.invoke(b"{}"))
    closed = flame.close_session(s.id)
    assert closed.state == SessionState.CLOSED and closed.succeed == 2
    assert closed.completion_time >= closed.creation_time
    assert s.state == SessionState.OPEN  # a snapshot, as flamepy's
    assert s.refresh().state == SessionState.CLOSED
    s.close()  # closing a closed session succeeds
    assert s.state == SessionState.CLOSED


def test_tasks_and_watch(cluster):
    with flame.create_session("flmping") as s:
        t = s.create_task(b'{"duration": 200}')
        assert isinstance(t, flame.Task) and t.session_id == s.id and t.input == b'{"duration": 200}'
        assert t.state in (TaskState.PENDING, TaskState.RUNNING)
        seen = list(s.watch_task(t.id, timeout=60))
        assert seen[-1].state == TaskState.SUCCEED and seen[-1].is_completed()
        assert pong(seen[-1].output)
        assert [x.id for x in s.list_tasks()] == [t.id]
        got = s.get_task(t.id)
        assert got.state == TaskState.SUCCEED and got.completion_time is not None
        assert all(isinstance(e, flame.Event) for e in got.events)
        with pytest.raises(flame.FlameError) as e:
            s.get_task("99")
        assert e.value.code == FlameErrorCode.NOT_FOUND


def test_errors_have_codes(cluster):
    with pytest.raises(flame.FlameError) as e:
        flame.open_session("no-such-session")
    assert e.value.code == FlameErrorCode.NOT_FOUND and e.value.status == "NOT_FOUND"
    assert str(e.value).endswith("(code: NOT_FOUND)") and "no-such-session" in str(e.value)
    with pytest.raises(flame.FlameError) as e:
        flame.create_session("no-such-app")
    assert e.value.code == FlameErrorCode.NOT_FOUND
    s = flame.create_session("flmping", session_id="shape-dup")
    with pytest.raises(flame.FlameError) as e:
        flame.create_session("flmping", session_id="shape-dup")
    assert e.value.code == FlameErrorCode.ALREADY_EXISTS
    s.close()
    with pytest.raises(flame.FlameError) as e:
        s.invoke(b"{}")
    assert e.value.code in (FlameErrorCode.INVALID_STATE, FlameErrorCode.INVALID_ARGUMENT)
    with pytest.raises(flame.FlameError) as e:
        flame.create_session("flmping", common_data="not bytes")
    assert e.value.code == FlameErrorCode.INVALID_ARGUMENT
    with pytest.raises(flame.FlameError) as e:
        flame.Connection("http://127.0.0.1:1").list_applications()
    assert e.value.code == FlameErrorCode.INTERNAL and e.value.status == "UNAVAILABLE"


def test_failed_task_in_a_future(pyservice):
    with flame.create_session(pyservice, max_instances=1) as s:
        ok, bad = s.run(b"x"), s.run(b"fail")
        assert ok.result(60) == b"1"
        with pytest.raises(flame.FlameError) as e:
            bad.result(60)
        assert "asked to fail" in str(e.value) and e.value.code == FlameErrorCode.INTERNAL
        assert e.value.status == "TASK_FAILED"


def test_run_futures_share_one_thread(cluster):
    with flame.create_session("flmping") as s:
        before = threading.active_count()
        futs = [s.run(b'{"duration": 20}') for _ in range(100)]
        during = threading.active_count()
        done, _ = concurrent.futures.wait(futs, timeout=120)
        assert len(done) == 100 and all(pong(f.result()) for f in futs)
        # one completion thread for the session, not one per future
        assert during - before <= 1
        # futures from several threads at once, some registered after their task ended
        out = []

        def worker():
            out.extend(f.result(60) for f in [s.run(b"{}") for _ in range(25)])
        ts = [threading.Thread(target=worker) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert len(out) == 100


def test_asyncio(cluster):
    with flame.create_session("flmping") as s:
        async def main():
            outs = await asyncio.gather(*[s.invoke_async(b"{}") for _ in range(30)])
            more = await s.map_async([b"{}"] * 10)
            return outs + more
        outs = asyncio.run(main())
        assert len(outs) == 40 and all(pong(o) for o in outs)


def test_applications_as_records(cluster):
    attrs = flame.ApplicationAttributes(
        command="/bin/true", arguments=["a"], environments={"K": "V"}, labels=["l1"],
        description="d", max_instances=2, delay_release=5,
        schema=flame.ApplicationSchema(input='{"type": "string"}'))
    flame.register_application("shape-app", attrs)
    a = flame.get_application("shape-app")
    assert isinstance(a, flame.Application)
    assert (a.name, a.command, a.arguments, a.environments, a.labels, a.description) == \
        ("shape-app", "/bin/true", ["a"], {"K": "V"}, ["l1"], "d")
    assert a.max_instances == 2 and a.delay_release == 5 and a.shim == flame.Shim.HOST
    assert a.state == flame.ApplicationState.ENABLED and a.schema.input == '{"type": "string"}'
    assert "shape-app" in [x.name for x in flame.list_applications()]
    flame.unregister_application("shape-app")
    assert flame.get_application("shape-app") is None


def test_open_session_with_attributes(cluster):
    spec = flame.SessionAttributes(application="flmping", min_instances=0)
    s = flame.open_session("shape-open", spec)
    assert s.id == "shape-open" and s.state == SessionState.OPEN
    assert flame.open_session("shape-open", spec).id == "shape-open"
    with pytest.raises(flame.FlameError) as e:
        flame.open_session("shape-open", flame.SessionAttributes(application="flmexec"))
    assert e.value.code == FlameErrorCode.INVALID_ARGUMENT
    s.close()


def test_core_module_and_types():
    import flame.core
    assert flame.core.Session is flame.Session and flame.core.FlameError is flame.FlameError
    r = flame.ResourceRequirement.from_string("cpu=2,mem=1g")
    assert (r.cpu, r.memory, r.gpu) == (2, 1 << 30, 0)
    e = flame.FlameError(FlameErrorCode.INVALID_STATE, "x")
    assert (e.code, e.message, str(e)) == (FlameErrorCode.INVALID_STATE, "x", "x (code: INVALID_STATE)")
    import pickle
    assert str(pickle.loads(pickle.dumps(e))) == str(e)


def test_watch_timeout_is_a_timeout_error(cluster):
    s = flame.create_session("flmping")
    t = s.create_task(b'{"duration": 5000}')
    with pytest.raises(TimeoutError) as e:  # flamepy's TaskWatcher raises TimeoutError
        list(s.watch_task(t.id, timeout=0.3))
    assert isinstance(e.value, flame.FlameError) and e.value.status == "TIMEOUT"
    assert [x.state for x in s.watch_task(t.id)][-1] == TaskState.SUCCEED
    s.close()
