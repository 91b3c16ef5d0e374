"""flmexec's contract (ECOSYSTEM.md §4) and Flame's built-in applications
(§2) on a real cluster of ours, driven by flamepy 0.6.0 from PyPI.

flamepy 0.6.0 on PyPI has no flamepy.tools (Flame's Sandbox is newer than
that release), so `Sandbox` below is Flame's flamepy/tools/sandbox.py as
ECOSYSTEM.md §4 describes it, on flamepy 0.6.0's core API: the same RPCs
with the same payloads a Flame user's Sandbox sends."""
import json
import random
import string

import flamepy
import pytest
from flamepy import FlameError, FlameErrorCode

from run_cluster import Cluster


class Sandbox:
    def __init__(self, session):
        self._session = session
        self._closed = False

    @property
    def id(self):
        return self._session.id

    @classmethod
    def create(cls, language="shell", runtime=None, min_instances=0, max_instances=1):
        sid = "flmexec-" + "".join(random.choices(string.ascii_letters + string.digits, k=6))
        attr = {"language": language, "runtime": runtime, "min_instances": min_instances,
                "max_instances": max_instances, "resreq": None}
        s = flamepy.create_session("flmexec", common_data=json.dumps(attr).encode(),
                                   session_id=sid, min_instances=min_instances,
                                   max_instances=max_instances)
        return cls(s)

    @classmethod
    def open(cls, sid):
        try:
            s = flamepy.open_session(sid)
        except FlameError as e:
            raise FlameError(FlameErrorCode.INVALID_ARGUMENT, f"failed to open session: {e}")
        if s.application != "flmexec":
            raise FlameError(FlameErrorCode.INVALID_ARGUMENT, "session is not a flmexec session")
        data = s.common_data()
        if not data:
            raise FlameError(FlameErrorCode.INVALID_ARGUMENT,
                             "sandbox attr is missing from session common_data")
        try:
            json.loads(data)
        except ValueError:
            raise FlameError(FlameErrorCode.INVALID_ARGUMENT,
                             "session common_data is not a Sandbox attr")
        return cls(s)

    def _input(self, code, input=None, language="shell", runtime=None):
        d = {"language": language, "code": code, "input": list(input) if input else None}
        if runtime:
            d["runtime"] = runtime
        return json.dumps(d).encode()

    @staticmethod
    def _decode(output):
        if output is None:
            return b""
        try:
            return bytes(json.loads(output)["data"])
        except (ValueError, KeyError, TypeError):
            raise FlameError(FlameErrorCode.INTERNAL, "response is not valid flmexec output JSON")

    def run_code(self, code, input=None, language="shell", runtime=None):
        if self._closed:
            raise FlameError(FlameErrorCode.INVALID_STATE, "sandbox is closed")
        # invoke, bounded: a test never waits forever
        fut = self._session.run(self._input(code, input, language, runtime))
        return self._decode(fut.result(timeout=180))

    def submit_code(self, code, input=None, language="shell", runtime=None):
        if self._closed:
            raise FlameError(FlameErrorCode.INVALID_STATE, "sandbox is closed")
        fut = self._session.run(self._input(code, input, language, runtime))

        class Result:
            def result(_, timeout=None):
                return self._decode(fut.result(timeout))
        return Result()

    def close(self):
        if not self._closed:
            self._closed = True
            self._session.close()


@pytest.fixture(scope="module")
def cluster():
    c = Cluster().start()
    yield c
    c.stop()


def test_builtins_are_flames_three(cluster):
    apps = {a.name: a for a in flamepy.list_applications()}
    assert sorted(apps) == ["flmexec", "flmping", "flmrun"]
    e, p, r = apps["flmexec"], apps["flmping"], apps["flmrun"]
    assert e.description == "The Flame Executor application, which is used to run scripts."
    assert e.command == "${FLAME_HOME}/bin/flmexec-service"
    assert json.loads(e.schema.input)["required"] == ["language", "code"]
    assert json.loads(e.schema.output)["description"] == "The output of the script in UTF-8."
    assert p.command == "${FLAME_HOME}/bin/flmping-service"
    assert p.url == "file://${FLAME_HOME}/bin/flmping-service" and not p.installer
    assert r.command == "${FLAME_HOME}/bin/uv" and r.installer == "python"
    assert r.arguments == ["run", "--python", "python${FLAME_PYTHON_VERSION}", "python", "-m",
                           "flamepy.runner.runpy"]
    assert r.description == ("The Flame Runner application for executing customized Python "
                             "applications.")
    for a in apps.values():
        assert (a.max_instances, a.delay_release) == (1000000, 60)


def test_sandbox_shell_and_python(cluster):
    sb = Sandbox.create()
    try:
        assert sb.run_code("echo hello; echo $((6 * 7))") == b"hello\n42\n"
        assert sb.run_code("cat | tr a-z A-Z", input=b"from stdin") == b"FROM STDIN"
        assert sb.run_code("echo $0 is sh", runtime="sh") == b"main.sh is sh\n"
        assert sb.run_code("echo $BASH_VERSION", runtime="/bin/bash").strip() != b""
        # a non-zero exit is not an error: the output is what it printed
        assert sb.run_code("echo partial; exit 3") == b"partial\n"
        py = sb.run_code("import sys\nprint(sum(range(10)), sys.stdin.read())", input=b"in",
                         language="python")
        assert py == b"45 in\n"
        futs = [sb.submit_code(f"echo {i}") for i in range(5)]
        assert [f.result(120) for f in futs] == [f"{i}\n".encode() for i in range(5)]
    finally:
        sb.close()


def test_sandbox_errors_fail_the_task(cluster):
    sb = Sandbox.create()
    try:
        with pytest.raises(FlameError) as e:
            sb.run_code("true", runtime="pwsh")
        assert "Unsupported shell runtime: pwsh" in str(e.value)
        with pytest.raises(FlameError) as e:
            sb.run_code("puts 1", language="ruby")
        assert "Unsupported language: ruby" in str(e.value)
        with pytest.raises(FlameError) as e:
            sb._session.run(b"not json").result(timeout=180)
        assert "Failed to parse input" in str(e.value)
        assert sb.run_code("echo still fine") == b"still fine\n"
    finally:
        sb.close()


def test_sandbox_open_close_reopen(cluster):
    sb = Sandbox.create(language="python")
    sid = sb.id
    again = Sandbox.open(sid)
    assert again.run_code("print('reopened')", language="python") == b"reopened\n"
    sb.close()
    sb.close()  # idempotent
    with pytest.raises(FlameError) as e:
        sb.run_code("echo no")
    assert e.value.code == FlameErrorCode.INVALID_STATE and "sandbox is closed" in str(e.value)
    with pytest.raises(FlameError) as e:
        Sandbox.open(sid)
    assert e.value.code == FlameErrorCode.INVALID_ARGUMENT
    # Flame's text is "session <id> is not open" (the semantics branch lands it)
    assert "failed to open session" in str(e.value)
    assert "is not open" in str(e.value) or "is closed" in str(e.value), str(e.value)
    # a session of another application is not a sandbox
    s = flamepy.create_session("flmping", session_id="not-a-sandbox")
    with pytest.raises(FlameError) as e:
        Sandbox.open("not-a-sandbox")
    s.close()
