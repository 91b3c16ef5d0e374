"""An executor is dedicated to one session (issue 9, item 2): when the
session leaves, its service process and sandbox are gone, and the next
session bound to the executor gets new ones; only an application that opts
in (spec.sandbox_reuse) keeps them for the next session, and only when that
session has the same owner. Over mutual TLS with two users of the test PKI
(bob, carol): each session is one flmexec script that reports the file the
last script left in its HOME (the sandbox's private work dir), the executor
it ran on, and leaves a file of its own."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import BUILD_DIR, Daemon, channel, pki, tls_credentials
from test_execution import wait_node

FLMEXEC = os.path.join(BUILD_DIR, "cli", "flmexec")
SCRIPT = ('echo "$FLAME_EXECUTOR_ID"; cat "$HOME/marker" 2>/dev/null || echo none; '
          'echo "{tag}" > "$HOME/marker"')
CERTS = {"bob": "user", "carol": "user2"}


@pytest.fixture
def cluster():
    d = Daemon(tempfile.mkdtemp(prefix="flame-reuse-"), tls=True)
    d.start()
    d.start_em()
    yield d
    try:
        try:
            d.stop_em()
        finally:
            d.stop()
    finally:
        shutil.rmtree(d.workdir, ignore_errors=True)


@pytest.fixture
def admin(cluster, pb):
    ch = channel(cluster.port, tls_credentials())
    yield pb.grpc.FrontendStub(ch)
    ch.close()


def register(pb, fe, name, reuse):
    fe.RegisterApplication(pb.fe.RegisterApplicationRequest(
        name=name, application=pb.types.ApplicationSpec(
            command="flmexec-service", sandbox="process", sandbox_reuse=reuse,
            delay_release=60, max_instances=1)), timeout=10)


def wait_idle(pb, fe):
    """Until no executor is between sessions: the next session then binds
    the idle one (else the session manager may start another)."""
    busy = {pb.types.ExecutorBinding, pb.types.ExecutorBound, pb.types.ExecutorUnbinding}
    deadline = time.time() + 30
    while any(e.status.state in busy for e in
              fe.ListExecutor(pb.fe.ListExecutorRequest(), timeout=10).executors):
        assert time.time() < deadline, "executors stay busy"
        time.sleep(0.05)


def session(cluster, who, app, tag):
    """One session of user who: (executor id, what the last script left)."""
    d, cert = pki(), CERTS[who]
    env = dict(os.environ, FLAME_CA_FILE=os.path.join(d, "ca.crt"),
               FLAME_CERT_FILE=os.path.join(d, f"{cert}.crt"),
               FLAME_KEY_FILE=os.path.join(d, f"{cert}.key"))
    r = subprocess.run([FLMEXEC, "--endpoint", cluster.url, "-a", app, "-c",
                        SCRIPT.format(tag=tag)], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    executor, found = r.stdout.split()
    return executor, found


def run_sessions(pb, admin, cluster, app, plan):
    """Runs plan [(who, tag)] one session at a time; [(who, tag, executor, found)]."""
    out = []
    for who, tag in plan:
        wait_idle(pb, admin)
        out.append((who, tag) + session(cluster, who, app, tag))
    return out


def test_no_reuse_by_default(cluster, pb, admin):
    wait_node(pb, admin)
    register(pb, admin, "fresh", False)
    runs = run_sessions(pb, admin, cluster, "fresh", [("bob", "b1"), ("bob", "b2"),
                                                      ("bob", "b3")])
    # the same owner, the same executor: still nothing of the last session
    assert all(found == "none" for _, _, _, found in runs), runs
    assert len({ex for _, _, ex, _ in runs}) < len(runs), f"no executor served twice: {runs}"


def test_reuse_only_for_the_same_owner(cluster, pb, admin):
    wait_node(pb, admin)
    register(pb, admin, "keep", True)
    plan = [("bob", "b1"), ("bob", "b2"), ("carol", "c1"), ("carol", "c2"), ("bob", "b3"),
            ("bob", "b4")]
    runs = run_sessions(pb, admin, cluster, "keep", plan)
    last = {}  # executor -> (owner, tag) of the last session on it
    reused = 0
    for who, tag, ex, found in runs:
        before = last.get(ex)
        if before and before[0] == who:
            # opted in, same owner, same executor: the service and its files stayed
            assert found == before[1], runs
            reused += 1
        else:
            # never another owner's files (nor a stale one's after a switch)
            assert found == "none", runs
        last[ex] = (who, tag)
    assert reused >= 2, f"the same owner's sessions never met on one executor: {runs}"
    # and the switch between owners happened on one executor
    owners_on = {}
    for who, _, ex, _ in runs:
        owners_on.setdefault(ex, set()).add(who)
    assert any(len(o) == 2 for o in owners_on.values()), runs
