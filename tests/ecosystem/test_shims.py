"""The stdio and REST shims (README: Shims) with programs nobody here wrote a
Flame SDK for: a shell script (line mode), a Python script, a Go program and
a Node program (frame mode; Go and Node when the machine has them), and a
FastAPI app run by uvicorn from PyPI (REST), each under the default process
sandbox of a real cluster of ours, driven by flamepy 0.6.0. Each keeps state across a session's tasks, reports failures, and
survives a crash of its process (that task fails, the next one runs in a
new process) and a task that hangs (it times out, the next one runs in a
new process).

Run by tests/ecosystem/run.sh shims (meson test ecosystem-shims).
Environment: FLAME_BUILD_DIR."""
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import flamepy
import pytest
from conftest import BUILD, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.path.join(ROOT, "examples")
FLMCTL = os.path.join(BUILD, "cli", "flmctl")


def go_program(tmp):
    """examples/stdio-go/notes.go built with the machine's go, or None (with
    the reason)."""
    go = shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go")
                                else None)
    if not go:
        return None, "no go on PATH or in /usr/local/go"
    home = pwd.getpwuid(os.getuid()).pw_dir
    env = dict(os.environ, GOCACHE=os.path.join(home, ".cache", "go-build"), GOPROXY="off",
               GOFLAGS="", GO111MODULE="off")
    out = os.path.join(tmp, "notes-go")
    r = subprocess.run([go, "build", "-o", out, os.path.join(EXAMPLES, "stdio-go", "notes.go")],
                       env=env, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return None, f"go build failed: {r.stderr[-2000:]}"
    return out, None


def start_cluster(task_timeout, apps):
    """Our session and executor managers on a free port (the default process
    sandbox: no --sandbox) with apps registered; a dict with "tmp" and
    "stop" (which checks both daemons stop cleanly)."""
    tmp = tempfile.mkdtemp(prefix="flame-shims-")
    os.chmod(tmp, 0o755)
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = dict(os.environ, FLAME_ENDPOINT=endpoint)
    sm = subprocess.Popen([os.path.join(BUILD, "daemons", "flame-session-manager"),
                           "--endpoint", endpoint, "--storage", f"sqlite://{tmp}/flame.db"],
                          stdout=open(f"{tmp}/sm.log", "ab"), stderr=subprocess.STDOUT)
    em = subprocess.Popen([os.path.join(BUILD, "daemons", "flame-executor-manager"),
                           "--endpoint", endpoint, "--work-dir", f"{tmp}/work",
                           "--resources", "cpu=4,mem=4g", "--task-timeout", str(task_timeout)],
                          stdout=open(f"{tmp}/em.log", "ab"), stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while True:
        r = subprocess.run([FLMCTL, "list", "-n"], env=env, capture_output=True, text=True)
        if r.returncode == 0 and " Ready " in r.stdout:
            break
        assert time.time() < deadline, f"the cluster did not come up: {r.stdout}{r.stderr}"
        time.sleep(0.1)
    with open(f"{tmp}/apps.yaml", "w") as f:
        f.write(apps)
    r = subprocess.run([FLMCTL, "register", "-f", f"{tmp}/apps.yaml"], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    os.environ["FLAME_ENDPOINT"] = endpoint
    from flamepy.core.client import ConnectionInstance
    ConnectionInstance._connection = None  # a new cluster: a new connection

    def stop():
        em.terminate()
        sm.terminate()
        assert em.wait(60) == 0 and sm.wait(60) == 0
        shutil.rmtree(tmp, ignore_errors=True)
    return {"tmp": tmp, "env": env, "stop": stop}


def example_apps(sh, py, rest):
    """The examples as apps named sh (examples/stdio-shell, line mode), py
    (examples/stdio-python, frame mode) and rest (examples/rest-fastapi, run
    by uvicorn): the YAML of the three."""
    return f"""
metadata: {{name: {sh}}}
spec:
  shim: stdio
  stdio_mode: line
  command: /bin/sh
  arguments: [{EXAMPLES}/stdio-shell/counter.sh]
---
metadata: {{name: {py}}}
spec:
  shim: stdio
  command: /usr/bin/python3
  arguments: [{EXAMPLES}/stdio-python/notes.py]
---
metadata: {{name: {rest}}}
spec:
  shim: rest
  command: {sys.executable}
  arguments: [-m, uvicorn, --app-dir, {EXAMPLES}/rest-fastapi, "app:app",
              --host, 127.0.0.1, --port, "$PORT"]
"""


@pytest.fixture(scope="module")
def cluster():
    # the program in a directory of its own: the sandbox shows it read-only
    godir = tempfile.mkdtemp(prefix="flame-shims-go-")
    os.chmod(godir, 0o755)
    go, why_not = go_program(godir)
    apps = example_apps("counter-sh", "notes-py", "notes-rest") + f"""---
metadata: {{name: bad-frames}}
spec:
  shim: stdio
  command: /usr/bin/python3
  arguments: [{HERE}/shims/bad_frames.py]
"""
    if go:
        apps += f"""---
metadata: {{name: notes-go}}
spec: {{shim: stdio, command: {go}}}
"""
    node = shutil.which("node")
    if node:
        apps += f"""---
metadata: {{name: notes-node}}
spec: {{shim: stdio, command: {node}, arguments: [{HERE}/shims/notes.js]}}
"""
    c = start_cluster(120, apps)
    yield dict(c, go=go, go_why_not=why_not, node=node)
    c["stop"]()
    shutil.rmtree(godir, ignore_errors=True)


def logs(tmp):
    paths = [f"{tmp}/em.log"]
    if os.path.isdir(f"{tmp}/work/logs"):
        paths += sorted(os.path.join(f"{tmp}/work/logs", f) for f in os.listdir(f"{tmp}/work/logs"))
    out = ""
    for path in paths:
        out += f"\n--- {path}\n" + "".join(open(path, errors="replace").readlines()[-30:])
    return out


def run(app, common, inputs):
    """Each input's answer: the output, or ("failed", message)."""
    s = flamepy.create_session(app, common_data=common)
    got = []
    try:
        for i in inputs:
            try:  # bounded: a service that never starts must not hang the test
                got.append(s.run(i).result(timeout=300))
            except flamepy.FlameError as e:
                got.append(("failed", str(e)))
    finally:
        s.close()
    return got


def run_at_once(app, inputs):
    """Every input submitted before any answer is awaited: the answers, in
    order."""
    s = flamepy.create_session(app)
    try:
        futures = [s.run(i) for i in inputs]
        return [f.result(timeout=300) for f in futures]
    finally:
        s.close()


def check_notes(cluster, app, fail_text):
    got = run(app, b"nb", [b"a", b"b", b"fail", b"c", b"crash", b"d"])
    ctx = f"{app}: {got}{logs(cluster['tmp'])}"
    assert got[0] == b"nb: a" and got[1] == b"nb: a | b", ctx          # state across tasks
    assert got[2][0] == "failed" and fail_text in got[2][1], ctx       # a reported failure
    assert got[3] == b"nb: a | b | c", ctx                             # not a crash: state kept
    assert got[4][0] == "failed" and "exited with code 3" in got[4][1], ctx  # the crash
    assert got[5] == b"nb: d", ctx                                     # a new process, entered again


def test_shell_line_mode(cluster):
    got = run("counter-sh", None, [b"1", b"2", b"x", b"3", b"crash", b"5", b"a\nb"])
    ctx = f"{got}{logs(cluster['tmp'])}"
    assert got[:2] == [b"1", b"3"] and got[3] == b"6", ctx
    assert got[2] == ("failed", got[2][1]) and "not a number: x" in got[2][1], ctx
    assert got[4][0] == "failed" and "exited with code 3" in got[4][1], ctx
    assert got[5] == b"5", ctx
    assert got[6][0] == "failed" and "must not hold a newline" in got[6][1], ctx


def test_python_frame_mode(cluster):
    check_notes(cluster, "notes-py", "asked to fail")


def test_go_frame_mode(cluster):
    if not cluster["go"]:
        pytest.skip(f"no Go program: {cluster['go_why_not']}")
    check_notes(cluster, "notes-go", "asked to fail")


def test_node_frame_mode(cluster):
    if not cluster["node"]:
        pytest.skip("no node on PATH")
    check_notes(cluster, "notes-node", "asked to fail")


def test_fastapi_rest(cluster):
    check_notes(cluster, "notes-rest", "HTTP 422: asked to fail")


def test_malformed_frames_restart(cluster):
    got = run("bad-frames", None, [b"x", b"garbage", b"y", b"huge", b"z"])
    ctx = f"{got}{logs(cluster['tmp'])}"
    assert got[0] == b"x" and got[2] == b"y" and got[4] == b"z", ctx
    assert got[1][0] == "failed" and "malformed frame (type byte 0x5a" in got[1][1], ctx
    assert got[3][0] == "failed" and "frame of 4294967295 bytes" in got[3][1], ctx


def test_program_logs_go_to_the_executor_log(cluster):
    run("notes-py", None, [b"crash"])
    text = logs(cluster["tmp"])
    assert "notes.py: asked to crash" in text and "flame-shim: the program exited" in text, text


def test_yaml_refuses_a_bad_stdio_mode(cluster, tmp_path):
    (tmp_path / "bad.yaml").write_text("metadata: {name: bad}\nspec: {shim: stdio, "
                                       "stdio_mode: lines, command: /bin/cat}\n")
    r = subprocess.run([FLMCTL, "register", "-f", str(tmp_path / "bad.yaml")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "expected frame or line" in r.stdout + r.stderr, r


def test_many_tasks_at_once(cluster):
    """Tasks submitted together reach flame-shim in batches, whose frames go
    to the program pipelined: every answer still belongs to its task."""
    inputs = [b"t%d" % i for i in range(500)]
    assert run_at_once("bad-frames", inputs) == inputs, logs(cluster["tmp"])


def test_big_batch_both_ways(cluster):
    """A batch whose frames and answers are each far beyond a pipe buffer:
    flame-shim writes and reads at once, so neither side blocks."""
    inputs = [bytes([65 + i % 26]) * (300 << 10) for i in range(40)]
    assert run_at_once("bad-frames", inputs) == inputs, logs(cluster["tmp"])


# The task timeout: a short --task-timeout of its own cluster, generous for
# the tasks that answer (they take milliseconds), certain for the hung one
# (it sleeps for ever).
TIMEOUT_S = 10


@pytest.fixture(scope="module")
def slow_cluster():
    c = start_cluster(TIMEOUT_S, example_apps("hang-sh", "hang-py", "hang-rest"))
    yield c
    c["stop"]()


def check_timeout(cluster, app, inputs, want):
    """The hung task fails saying it timed out; its process is stopped and a
    new one runs the session's next tasks; the node keeps serving."""
    got = run(app, b"nb", inputs)
    ctx = f"{app}: {got}{logs(cluster['tmp'])}"
    k = inputs.index(b"hang")
    assert got[k][0] == "failed" and "timed out" in got[k][1], ctx
    assert "started again" in got[k][1], ctx  # flame-shim gave up first, not the executor
    assert got[:k] + got[k + 1:] == want, ctx
    assert run(app, b"again", [b"1"]) == [b"1" if app == "hang-sh" else b"again: 1"], ctx
    r = subprocess.run([FLMCTL, "list", "-n"], env=cluster["env"], capture_output=True, text=True)
    assert r.returncode == 0 and " Ready " in r.stdout, r.stdout + r.stderr + ctx


def test_timeout_stdio_line(slow_cluster):
    check_timeout(slow_cluster, "hang-sh", [b"1", b"2", b"hang", b"4", b"5"], [b"1", b"3", b"4", b"9"])


def test_timeout_stdio_frame(slow_cluster):
    check_timeout(slow_cluster, "hang-py", [b"a", b"hang", b"b", b"c"],
                  [b"nb: a", b"nb: b", b"nb: b | c"])


def test_timeout_rest(slow_cluster):
    check_timeout(slow_cluster, "hang-rest", [b"a", b"hang", b"b", b"c"],
                  [b"nb: a", b"nb: b", b"nb: b | c"])
