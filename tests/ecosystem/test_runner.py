"""flamepy 0.6.0's Runner (ECOSYSTEM.md §5) on a real cluster of ours with
our object cache: the package goes up to the cache, the flmrun template's
python installer fetches it over grpc://, installs it with uv and the
service (flamepy.runner.runpy, started by `uv run`) runs a function, a
class and a stateful object, with ObjectFutures as arguments.

The node runs services in the default process sandbox with network none:
runpy reaches the cache only through the executor manager's relay inside
the sandbox (libflame/shim/relay.h), and uv's cache is in the sandbox's own
directory. The installer (uv pip install, from PyPI) runs in the executor
manager, outside the sandbox.
flamepy comes to the service from the test venv through the
template's PYTHONPATH (Flame ships it in $FLAME_HOME/lib/python<v>/
site-packages), so the test registers the template flmrun-eco, flmrun plus
that variable, and names it in the client's flame.yaml (runner.template)."""
import os
import sys
import textwrap

import flamepy
import pytest

from run_cluster import Cluster
from test_installers import release_hash

SITE = next(p for p in sys.path if p.endswith("site-packages") and
            os.path.isdir(os.path.join(p, "flamepy")))

MODULE = '''
def square(x):
    return x * x


def add(a, b):
    return a + b


def dumps_toml(d):
    import tomli_w  # from the Runner's dependencies, installed by uv on the node
    return tomli_w.dumps(d)


class Greeter:
    def hello(self, name):
        return f"hello {name}"


class Counter:
    def __init__(self):
        self.n = 0

    def incr(self, by=1):
        self.n += by
        return self.n

    def value(self):
        return self.n
'''


@pytest.fixture(scope="module")
def project(object_cache_module, tmp_path_factory):
    cache = object_cache_module
    c = Cluster(cache_endpoint=cache.endpoint).start()  # the default: the process sandbox
    os.environ["FLAME_CACHE_ENDPOINT"] = cache.endpoint
    flmrun = flamepy.get_application("flmrun")
    flamepy.register_application("flmrun-eco", {
        "command": flmrun.command, "arguments": flmrun.arguments,
        "installer": flmrun.installer, "max_instances": flmrun.max_instances,
        "delay_release": flmrun.delay_release,
        # uv run picks the venv's interpreter: the system python would also
        # see Debian's dist-packages (a python3-numpy or -pandas there breaks
        # pyarrow and flamepy's imports)
        "environments": {"PYTHONPATH": SITE,
                         "VIRTUAL_ENV": os.path.dirname(os.path.dirname(sys.executable))}})
    home = os.environ["HOME"]
    os.makedirs(os.path.join(home, ".flame"), exist_ok=True)
    with open(os.path.join(home, ".flame", "flame.yaml"), "w") as f:
        f.write(textwrap.dedent(f"""\
            current-context: eco
            contexts:
              - name: eco
                cluster:
                  endpoint: {c.url}
                cache:
                  endpoint: {cache.endpoint}
                runner:
                  template: flmrun-eco
            """))
    d = tmp_path_factory.mktemp("runner-project")
    (d / "ecomath.py").write_text(MODULE)
    old = os.getcwd()
    os.chdir(d)
    sys.path.insert(0, str(d))
    yield c
    sys.path.remove(str(d))
    os.chdir(old)
    os.environ.pop("FLAME_CACHE_ENDPOINT", None)
    os.remove(os.path.join(home, ".flame", "flame.yaml"))
    c.stop()


@pytest.fixture(scope="module")
def object_cache_module():
    from conftest import ObjectCache
    cache = ObjectCache().start()
    yield cache
    cache.stop()


def test_runner_function_class_object(project):
    import ecomath
    from flamepy.runner import Runner
    try:
        with Runner("eco-runner", python_version="3.11") as rr:
            sq = rr.service(ecomath.square)
            futs = [sq(i) for i in range(5)]
            assert [f.get() for f in futs] == [0, 1, 4, 9, 16]
            # an ObjectFuture as an argument: resolved on the service side
            add = rr.service(ecomath.add)
            assert add(sq(3), sq(4)).get() == 25
            greeter = rr.service(ecomath.Greeter)
            assert greeter.hello("flame").get() == "hello flame"
            counter = rr.service(ecomath.Counter())  # an object: stateful
            counter.incr(2).get()
            counter.incr(3).get()
            assert counter.value().get() == 5
            # the package came from the cache (grpc://) into Flame's release directory
            url = flamepy.get_application("eco-runner").url
            assert url.startswith("grpc://") and url.endswith("/eco-runner/pkg/eco-runner.tar.gz")
            rel = os.path.join(project.home, "data", "apps", "eco-runner", "releases",
                               release_hash("eco-runner", "python", url, "3.11"))
            assert os.path.isfile(os.path.join(rel, "download", "eco-runner.tar.gz"))
            assert os.path.isfile(os.path.join(rel, "src", "ecomath.py"))
    except Exception:
        logs = os.path.join(project.home, "logs", "install", "eco-runner.log")
        text = open(logs).read() if os.path.exists(logs) else "(no install log)"
        print("install log:", text[-3000:], "\nem log:", project.log("em.log")[-3000:])
        raise
    # close() unregistered the application
    assert_unregistered("eco-runner")


def assert_unregistered(name):
    try:
        gone = flamepy.get_application(name) is None
    except flamepy.FlameError as e:
        gone = e.code == flamepy.FlameErrorCode.NOT_FOUND or "not found" in str(e).lower()
    assert gone


def test_runner_dependencies(project):
    """Runner(dependencies=...): flamepy generates a pyproject.toml with them
    and the python installer's uv installs them (from PyPI) into deps/."""
    import ecomath
    from flamepy.runner import Runner
    try:
        with Runner("eco-deps", dependencies=["tomli-w"], python_version="3.11") as rr:
            dumps = rr.service(ecomath.dumps_toml)
            assert dumps({"a": 1}).get() == "a = 1\n"
    except Exception:
        log = os.path.join(project.home, "logs", "install", "eco-deps.log")
        text = open(log).read() if os.path.exists(log) else "(no install log)"
        if "pypi.org" in text and ("connect" in text or "dns" in text.lower()):
            pytest.skip(f"uv could not reach PyPI for tomli-w: {text[-500:]}")
        print("install log:", text[-3000:])
        raise
    assert_unregistered("eco-deps")
