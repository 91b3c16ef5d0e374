"""flamepy programs (core API) run unchanged on flamepy 0.6.0 from PyPI and,
with their import changed to `import flame as flamepy`, on our package —
both against a real cluster of ours (session manager + executor manager from
the build directory).

Run by tests/ecosystem/run.sh flamepy_swap (meson test
ecosystem-flamepy_swap). Environment: FLAME_BUILD_DIR; FLAME_SWAP_PKG may
name a directory where our `flame` package is already built for this
interpreter (else it is built here from bindings/python, as a user would
pip-install it)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from conftest import BUILD, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROGRAMS = os.path.join(HERE, "flamepy_programs")


@pytest.fixture(scope="module")
def pkg(tmp_path_factory):
    """A directory with our package, pip-installed for this interpreter."""
    if os.environ.get("FLAME_SWAP_PKG"):
        return os.environ["FLAME_SWAP_PKG"]
    work = tmp_path_factory.mktemp("flame-pkg")
    src = work / "src"
    shutil.copytree(os.path.join(ROOT, "bindings", "python"), src)  # setuptools writes beside it
    env = dict(os.environ, FLAME_SOURCE_DIR=ROOT, FLAME_BUILD_DIR=BUILD)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--no-build-isolation", "--no-index", "--no-deps", "--target",
                        str(work / "pkg"), str(src)], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return str(work / "pkg")


@pytest.fixture(scope="module")
def cluster():
    tmp = tempfile.mkdtemp(prefix="flamepy-swap-")
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = dict(os.environ, FLAME_ENDPOINT=endpoint)
    sm = subprocess.Popen([os.path.join(BUILD, "daemons", "flame-session-manager"),
                           "--endpoint", endpoint, "--storage", f"sqlite://{tmp}/flame.db"],
                          stdout=open(f"{tmp}/sm.log", "ab"), stderr=subprocess.STDOUT)
    # --sandbox none: the venv's interpreter lives under the user's home
    # (often 0700), out of reach of process-level executors (uids 100000+);
    # the sandbox is not what these tests are about
    em = subprocess.Popen([os.path.join(BUILD, "daemons", "flame-executor-manager"),
                           "--endpoint", endpoint, "--work-dir", f"{tmp}/work",
                           "--resources", "cpu=4,mem=4g", "--sandbox", "none"],
                          stdout=open(f"{tmp}/em.log", "ab"), stderr=subprocess.STDOUT)
    cache = subprocess.Popen([os.path.join(BUILD, "daemons", "flame-object-cache"), "-e",
                              "grpc://127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    line = cache.stdout.readline()  # "... listening on port N (URI)"; bounded by its exit
    assert "listening on port" in line, line
    cache_endpoint = f"grpc://127.0.0.1:{int(line.split('port ')[1].split()[0])}"
    flmctl = os.path.join(BUILD, "cli", "flmctl")
    deadline = time.time() + 30
    while True:
        r = subprocess.run([flmctl, "list", "-n"], env=env, capture_output=True, text=True)
        if r.returncode == 0 and " Ready " in r.stdout:
            break
        assert time.time() < deadline, f"the cluster did not come up: {r.stdout}{r.stderr}"
        time.sleep(0.1)
    yield endpoint, tmp, cache_endpoint
    em.terminate()
    sm.terminate()
    cache.terminate()
    assert em.wait(30) == 0 and sm.wait(30) == 0 and cache.wait(30) == 0
    shutil.rmtree(tmp, ignore_errors=True)


def swap_imports(src):
    """What a user moving to our package changes: the import lines."""
    src = re.sub(r"^(\s*)import flamepy\s*$", r"\1import flame as flamepy", src, flags=re.M)
    return re.sub(r"^(\s*)from flamepy(\.core)?( import)", r"\1from flame\2\3", src, flags=re.M)


def programs():
    return sorted(p for p in os.listdir(PROGRAMS) if p.startswith("core_") and p.endswith(".py"))


def test_swap_changes_only_imports():
    src = "import flamepy\nfrom flamepy import FlameError\nfrom flamepy.core import Task\nx = flamepy.run\n"
    assert swap_imports(src) == ("import flame as flamepy\nfrom flame import FlameError\n"
                                 "from flame.core import Task\nx = flamepy.run\n")


@pytest.mark.parametrize("sdk", ["flamepy", "flame"])
@pytest.mark.parametrize("program", programs())
def test_program(cluster, pkg, program, sdk, tmp_path):
    endpoint, tmp, cache_endpoint = cluster
    progdir = tmp_path / "programs"
    progdir.mkdir()
    for name in os.listdir(PROGRAMS):
        if name.endswith(".py"):
            src = open(os.path.join(PROGRAMS, name)).read()
            (progdir / name).write_text(swap_imports(src) if sdk == "flame" else src)
    env = dict(os.environ, FLAME_ENDPOINT=endpoint, FLAME_CACHE_ENDPOINT=cache_endpoint,
               SWAP_TAG=f"{sdk}-{os.getpid()}",
               HOME=str(tmp_path))  # flamepy reads ~/.flame/flame.yaml: not this machine's
    env.pop("PYTHONPATH", None)
    if sdk == "flame":
        env["PYTHONPATH"] = pkg
        lib = os.path.join(BUILD, "libflame")
        env["LD_LIBRARY_PATH"] = lib + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "run_prog.py"), str(progdir / program),
                          sdk], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=str(tmp_path))
    try:
        out, err = p.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        err += "\n(killed after 180 s)"
    if p.returncode != 0:
        logs = [os.path.join(tmp, "sm.log"), os.path.join(tmp, "em.log")]
        logdir = os.path.join(tmp, "work", "logs")
        if os.path.isdir(logdir):
            logs += [os.path.join(logdir, f) for f in sorted(os.listdir(logdir))]
        for path in logs:
            err += f"\n--- {path} (tail)\n" + "".join(open(path, errors="replace").readlines()[-20:])
    assert p.returncode == 0, f"{program} on {sdk}:\n{out}\n{err}"
    assert f"PASS {program[:-3]}" in out and f"ran on {sdk}" in out


CROSS = """
import flame, flamepy
ours = flame.put_object("cross/s", {"from": "flame", "n": [1, 2]})
theirs_view = flamepy.get_object(flamepy.ObjectRef(ours.endpoint, ours.key, 0))
assert theirs_view == {"from": "flame", "n": [1, 2]}, theirs_view
theirs = flamepy.put_object("cross/s", ("from flamepy", 3.5))
assert flame.get_object(flame.ObjectRef(theirs.endpoint, theirs.key)) == ("from flamepy", 3.5)
p = flamepy.core.patch_object(theirs, [9])
assert flame.get_object(flame.ObjectRef(p.endpoint, p.key), lambda b, d: (b, d)) == (("from flamepy", 3.5), [[9]])
q = flame.patch_object(flame.ObjectRef(theirs.endpoint, theirs.key), [10])
got = flamepy.get_object(flamepy.ObjectRef(q.endpoint, q.key, 0), lambda b, d: d)
assert got == [[9], [10]], got
assert flame.ObjectRef.decode(theirs.encode()) == flame.ObjectRef(theirs.endpoint, theirs.key, theirs.version)
back = flamepy.ObjectRef.decode(flame.ObjectRef(ours.endpoint, ours.key, ours.version).encode())
assert (back.endpoint, back.key, back.version) == (ours.endpoint, ours.key, ours.version)
print("PASS cross")
"""


def test_cache_objects_cross_sdks(cluster, pkg, tmp_path):
    """What one SDK stores in the cache, the other reads: objects, patches,
    ObjectRefs' BSON."""
    _endpoint, _tmp, cache_endpoint = cluster
    lib = os.path.join(BUILD, "libflame")
    env = dict(os.environ, FLAME_CACHE_ENDPOINT=cache_endpoint, HOME=str(tmp_path), PYTHONPATH=pkg,
               LD_LIBRARY_PATH=lib)
    r = subprocess.run([sys.executable, "-c", CROSS], env=env, capture_output=True, text=True,
                       timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0 and "PASS cross" in r.stdout, r.stdout + r.stderr
