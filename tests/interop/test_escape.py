"""The escape suite: a service nobody would trust (tests/escape/escape-service.c)
tries, one attack per task, to get out of its sandbox. At the level
"process" every attempt must be blocked (the task fails with a message
saying what was blocked, the host shows no trace of it) and the node keeps
serving (the executor manager's pid is unchanged, flmping runs). The level
"none" is the control: the harmless attacks go through there, which proves
each probe can see an escape (the harmful ones never run unconfined). The
level "microvm" runs the part that applies to a VM, where it is available.

The same attacks as flmexec scripts (item 4: "run this LLM-written script"
is safe) are in test_flmexec_sandbox.py."""
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid

import pytest

from conftest import BUILD_DIR, Daemon
from test_execution import open_session, run_task, wait_for, wait_node

ESCAPE = os.environ.get("FLAME_ESCAPE_SERVICE") or os.path.join(
    BUILD_DIR, "tests", "escape", "escape-service")
WORK_PARENT = "/var/tmp" if os.path.isdir("/var/tmp") else BUILD_DIR


_vm_image = []


def vm_image():
    """A microvm image holding the escape service (scripts/microvm-image.sh:
    idempotent, a few seconds), cached in the build dir next to the shared
    Debian packages; (dir, None) or (None, why not)."""
    if not _vm_image:
        cache = os.path.join(BUILD_DIR, "microvm-escape")
        shared = os.path.expanduser("~/.cache/flame/microvm/debs")
        os.makedirs(cache, exist_ok=True)
        if os.path.isdir(shared) and not os.path.exists(os.path.join(cache, "debs")):
            os.symlink(shared, os.path.join(cache, "debs"))
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                              "microvm-image.sh")
        r = subprocess.run(["bash", script, "--build", BUILD_DIR, "--service", ESCAPE],
                           env=dict(os.environ, FLAME_MICROVM_CACHE=cache),
                           capture_output=True, text=True, timeout=600)
        out = r.stdout.strip().splitlines()
        _vm_image.append((out[-1], None) if r.returncode == 0 and out else
                         (None, (r.stderr or r.stdout)[-500:]))
    return _vm_image[0]


@pytest.fixture
def cluster(request):
    """As conftest's, with its files outside /tmp: a sandbox has a /tmp of
    its own, where a write to a host path below /tmp would land unseen by
    the host and prove nothing. The microvm tests (test_microvm_*) get the
    escape service's VM image, under TCG (KVM guests hang on these hosts)."""
    d = Daemon(tempfile.mkdtemp(prefix="flame-escape-cluster-", dir=WORK_PARENT))
    if request.node.name.startswith("test_microvm"):
        image, why = vm_image()
        if not image:
            pytest.skip(f"no microvm image with the escape service: {why}")
        d.em_args = ["--microvm-accel", "tcg", "--microvm-image", image]
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


class Listener:
    """A TCP listener on the host's loopback that counts its connections."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            c.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def register(pb, fe, name, level, network="none", show=None):
    """show: a file of the host's the application is given (its directory
    appears read-only in the sandbox, as an argument's does)."""
    t = pb.types
    spec = t.ApplicationSpec(command=ESCAPE, sandbox=level, network=network,
                             arguments=[show] if show else [])
    fe.RegisterApplication(pb.fe.RegisterApplicationRequest(name=name, application=spec))


def attack(pb, fe, sid, what):
    """Runs one attack; (ok, text): ok if it went through, text its output
    or its failure message."""
    last = run_task(pb, fe, sid, what.encode(), timeout=60)
    if last.status.state == pb.types.Succeed:
        return True, last.spec.output.decode()
    assert last.status.state == pb.types.Failed, last
    return False, last.status.events[-1].message


def assert_blocked(pb, fe, sid, what, *words):
    ok, text = attack(pb, fe, sid, what)
    assert not ok, f"{what}: NOT BLOCKED: {text}"
    assert "blocked" in text, f"{what}: failed, but not blocked: {text}"
    for w in words:
        assert w in text, f"{what}: {text!r} does not say {w!r}"
    return text


def assert_through(pb, fe, sid, what):
    ok, text = attack(pb, fe, sid, what)
    assert ok, f"{what}: the control attack failed: {text}"
    return text


def em_pid(cluster):
    return cluster.em.pid


def assert_node_serves(cluster, pid):
    """The executor manager is the same process, and flmping runs."""
    assert cluster.em.poll() is None, "the executor manager died"
    assert cluster.em.pid == pid
    out = subprocess.run([os.path.join(BUILD_DIR, "cli", "flmping"), "-t", "3",
                          "--endpoint", cluster.url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def host_ip():
    """A non-loopback address of this host, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.254", 9))  # no packet is sent
        ip = s.getsockname()[0]
        return None if ip.startswith("127.") else ip
    except OSError:
        return None
    finally:
        s.close()


def find_file(root, name):
    for d, _, files in os.walk(root):
        if name in files:
            return os.path.join(d, name)
    return None


@pytest.fixture
def scratch():
    d = tempfile.mkdtemp(prefix="flame-escape-", dir=WORK_PARENT)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def setuid_copy(scratch):
    """A setuid copy of id owned by uid 4242 (a uid nobody uses): who runs it
    gets uid 4242 where setuid works. None unless we may chown. Its own
    directory, given to the application (register's show)."""
    os.makedirs(os.path.join(scratch, "bin"), mode=0o755)
    path = os.path.join(scratch, "bin", "setuid-id")
    shutil.copy("/usr/bin/id", path)
    try:
        os.chown(path, 4242, 4242)
    except PermissionError:
        return None
    os.chmod(path, 0o4755)
    return path


# ---- the level "process" ---------------------------------------------------

def test_process_sandbox_blocks_every_escape(cluster, pb, cfe, listener, scratch):
    wait_node(pb, cfe)
    pid = em_pid(cluster)
    suid = setuid_copy(scratch)
    register(pb, cfe, "escape", "process", show=suid)
    open_session(pb, cfe, "esc", "escape", max_instances=1)
    who = assert_through(pb, cfe, "esc", "whoami")
    assert "NoNewPrivs=1" in who and "CapEff=0000000000000000" in who and "Seccomp=2" in who, who
    assert f"uid={os.geteuid()} " not in who, who

    tag = uuid.uuid4().hex[:8]
    workdir = os.path.join(cluster.workdir, "work")
    targets = [f"/etc/flame-escape-{tag}", f"/usr/flame-escape-{tag}",
               os.path.join(workdir, f"flame-escape-{tag}"),
               os.path.join(scratch, f"flame-escape-{tag}")]
    for path in targets:
        assert_blocked(pb, cfe, "esc", f"write:{path}", "write", path)
        assert not os.path.exists(path), f"{path} was written"
    assert_blocked(pb, cfe, "esc", "read:/etc/shadow", "read /etc/shadow")
    planted = os.path.join(scratch, "planted")
    with open(planted, "w") as f:
        f.write("a file of the host's\n")
    os.chmod(planted, 0o644)  # readable by anyone on the host: the sandbox hides it
    assert_blocked(pb, cfe, "esc", f"read:{planted}", "read")
    assert_blocked(pb, cfe, "esc", f"ps:{pid}", "not visible")
    assert_blocked(pb, cfe, "esc", f"kill:{pid}", "kill -9")
    assert_blocked(pb, cfe, "esc", f"ptrace:{pid}", "ptrace")
    assert_blocked(pb, cfe, "esc", "ptrace:child", "ptrace our child")
    assert_blocked(pb, cfe, "esc", f"connect:127.0.0.1:{listener.port}", "connect")
    ip = host_ip()
    if ip:
        assert_blocked(pb, cfe, "esc", f"connect:{ip}:{listener.port}", "connect")
    assert listener.accepted == 0
    assert_blocked(pb, cfe, "esc", "mount", "mount")
    assert_blocked(pb, cfe, "esc", "module", "init_module")
    assert_blocked(pb, cfe, "esc", "userns", "user namespace")
    if suid:
        text = assert_blocked(pb, cfe, "esc", f"setuid:{suid}", "setuid")
        assert "4242" not in text.split("ran with")[-1], text
    # the pids limit stops a fork bomb, or the memory limit first (its
    # kernel stacks and page tables count): then the kernel kills the service
    ok, text = attack(pb, cfe, "esc", "forkbomb:5000")
    assert not ok, f"fork bomb NOT BLOCKED: {text}"
    assert "blocked: fork bomb" in text or "killed by signal 9" in text, text
    ok, text = attack(pb, cfe, "esc", "alloc:2048")
    assert not ok, f"allocated past the memory limit: {text}"
    assert "blocked: allocate" in text or "killed by signal 9" in text, text
    # after all that, the same session goes on
    assert_through(pb, cfe, "esc", "whoami")
    cfe.CloseSession(pb.fe.CloseSessionRequest(session_id="esc"))
    assert_node_serves(cluster, pid)


def test_process_sandbox_network_host(cluster, pb, cfe, listener):
    """network: host lets the service out (and only that changes)."""
    wait_node(pb, cfe)
    register(pb, cfe, "escape-net", "process", network="host")
    open_session(pb, cfe, "net", "escape-net", max_instances=1)
    assert_through(pb, cfe, "net", f"connect:127.0.0.1:{listener.port}")
    wait_for(lambda: listener.accepted == 1, what="the connection")
    assert_blocked(pb, cfe, "net", f"ps:{em_pid(cluster)}", "not visible")


def test_executors_cannot_read_each_other(cluster, pb, cfe):
    """Two sessions at once, each on its own executor: neither reads or
    writes the other's files."""
    wait_node(pb, cfe)
    register(pb, cfe, "escape-two", "process")
    open_session(pb, cfe, "two-a", "escape-two", max_instances=1)
    open_session(pb, cfe, "two-b", "escape-two", max_instances=1)
    secret = uuid.uuid4().hex
    inside = assert_through(pb, cfe, "two-a", f"plant:secret-{secret[:8]}:{secret}")
    host = find_file(os.path.join(cluster.workdir, "work"), f"secret-{secret[:8]}")
    assert host, "the planted file is not under the executor manager's work dir"
    with open(host) as f:
        assert f.read() == secret
    # b runs at the same time, on another executor
    assert_through(pb, cfe, "two-b", "whoami")
    execs = cfe.ListExecutor(pb.fe.ListExecutorRequest()).executors
    assert len({e.status.session_id for e in execs if e.status.session_id}) == 2
    for path in {inside, host}:
        assert_blocked(pb, cfe, "two-b", f"read:{path}", "read")
    assert_blocked(pb, cfe, "two-b", f"write:{os.path.dirname(host)}/dropped", "write")
    assert not os.path.exists(os.path.join(os.path.dirname(host), "dropped"))


# ---- the control: the level "none" -----------------------------------------

def test_none_level_control(cluster, pb, cfe, listener, scratch):
    """Unconfined, the harmless probes go through: each probe of the suite
    can tell an escape from a block."""
    wait_node(pb, cfe)
    pid = em_pid(cluster)
    suid = setuid_copy(scratch)
    register(pb, cfe, "escape-none", "none", network="host", show=suid)
    open_session(pb, cfe, "ctl", "escape-none", max_instances=1)
    who = assert_through(pb, cfe, "ctl", "whoami")
    assert "NoNewPrivs=0" in who, who
    path = os.path.join(scratch, "written")
    assert_through(pb, cfe, "ctl", f"write:{path}")
    assert os.path.exists(path)
    planted = os.path.join(scratch, "planted")
    with open(planted, "w") as f:
        f.write("planted\n")
    assert assert_through(pb, cfe, "ctl", f"read:{planted}") == f"read 8 bytes of {planted}"
    assert_through(pb, cfe, "ctl", f"ps:{pid}")
    assert_through(pb, cfe, "ctl", f"connect:127.0.0.1:{listener.port}")
    wait_for(lambda: listener.accepted == 1, what="the connection")
    assert_through(pb, cfe, "ctl", "ptrace:child")
    assert_through(pb, cfe, "ctl", "userns")
    if suid:
        assert "ran with uid 4242" in assert_through(pb, cfe, "ctl", f"setuid:{suid}")
    cfe.CloseSession(pb.fe.CloseSessionRequest(session_id="ctl"))
    assert_node_serves(cluster, pid)


# ---- the level "microvm": what applies to a VM -----------------------------

def first_task_or_skip(pb, fe, sid, what, timeout=120):
    """Runs the session's first task; skips the test, with the bind's own
    message, when the node cannot start the microVM (no level, no KVM, no
    image: never a silent downgrade)."""
    t = fe.CreateTask(pb.fe.CreateTaskRequest(task=pb.types.TaskSpec(session_id=sid,
                                                                      input=what.encode())))

    def done():
        s = fe.GetSession(pb.fe.GetSessionRequest(session_id=sid))
        fails = [e.message for e in s.status.events if e.code == 1001]
        if fails:
            return ("skip", fails[0])
        task = fe.GetTask(pb.fe.GetTaskRequest(session_id=sid, task_id=t.metadata.id))
        return task.status.state in (pb.types.Succeed, pb.types.Failed) and ("ran", task)
    how, v = wait_for(done, timeout=timeout, what="the microVM's first task")
    if how == "skip":
        fe.CloseSession(pb.fe.CloseSessionRequest(session_id=sid))
        pytest.skip(f"the microvm level is not available on this node: {v}")
    return v


def test_microvm_keeps_the_host_untouched(cluster, pb, cfe, listener, scratch):
    """In a VM the guest's own files and processes are its business: what
    counts is that nothing reaches the host."""
    wait_node(pb, cfe)
    pid = em_pid(cluster)
    register(pb, cfe, "escape-vm", "microvm")
    open_session(pb, cfe, "vm", "escape-vm", max_instances=1)
    first_task_or_skip(pb, cfe, "vm", "whoami")
    tag = uuid.uuid4().hex[:8]
    targets = [f"/etc/flame-escape-{tag}", os.path.join(cluster.workdir, "work", f"x-{tag}"),
               os.path.join(scratch, f"x-{tag}")]
    for path in targets:
        attack(pb, cfe, "vm", f"write:{path}")
        assert not os.path.exists(path), f"{path} was written on the host"
    planted = os.path.join(scratch, "planted")
    with open(planted, "w") as f:
        f.write("a file of the host's\n")
    assert not attack(pb, cfe, "vm", f"read:{planted}")[0]
    assert not attack(pb, cfe, "vm", f"ps:{pid}")[0]
    attack(pb, cfe, "vm", f"kill:{pid}")
    attack(pb, cfe, "vm", f"ptrace:{pid}")
    attack(pb, cfe, "vm", f"connect:127.0.0.1:{listener.port}")
    ip = host_ip()
    if ip:
        attack(pb, cfe, "vm", f"connect:{ip}:{listener.port}")
    assert listener.accepted == 0
    for what in ("mount", "module", "forkbomb:5000", "alloc:2048"):
        attack(pb, cfe, "vm", what)  # inside the guest: its kernel's business
    cfe.CloseSession(pb.fe.CloseSessionRequest(session_id="vm"))
    assert_node_serves(cluster, pid)
