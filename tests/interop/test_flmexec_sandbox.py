"""flmexec runs LLM-written scripts safely (issue 9, item 4): the built-in
application runs them in the process sandbox (microvm on request) with no
network, under a per-task time and memory limit; a script stopped by a limit
fails with a message naming the limit, and the escapes of test_escape.py,
written as scripts, are blocked."""
import os
import subprocess

from conftest import BUILD_DIR
from test_escape import cluster  # noqa: F401 (its files outside /tmp)
from test_execution import wait_node

FLMEXEC = os.path.join(BUILD_DIR, "cli", "flmexec")
FLMCTL = os.path.join(BUILD_DIR, "cli", "flmctl")
MICROVM_YAML = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                            "flmexec-microvm.yaml")


def register_microvm(cluster):
    """The documented way to a microVM flmexec: Flame's built-ins are three,
    an admin registers examples/flmexec-microvm.yaml."""
    r = subprocess.run([FLMCTL, "--endpoint", cluster.url, "register", "-f", MICROVM_YAML],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def flmexec(cluster, *args, timeout=60):
    return subprocess.run([FLMEXEC, "--endpoint", cluster.url] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def test_limits_name_the_limit(cluster, pb, cfe):
    wait_node(pb, cfe)
    ok = flmexec(cluster, "-l", "python", "-c", "print(sum(range(10)))")
    assert ok.returncode == 0 and ok.stdout == "45\n", ok.stderr
    slow = flmexec(cluster, "-t", "0.5", "-c", "sleep 30; echo never")
    assert slow.returncode == 1
    assert "time limit of 0.5 s" in slow.stderr, slow.stderr
    big = flmexec(cluster, "-m", "64m", "-l", "python", "-c", "x = bytearray(256 << 20)")
    assert big.returncode == 1
    assert "memory limit of 64 MiB" in big.stderr, big.stderr
    # the service goes on after both
    ok = flmexec(cluster, "-c", "echo still here")
    assert ok.returncode == 0 and ok.stdout == "still here\n", ok.stderr


def test_builtin_runs_sandboxed_without_network(cluster, pb, cfe):
    wait_node(pb, cfe)
    a = cfe.GetApplication(pb.fe.GetApplicationRequest(name="flmexec"))
    assert (a.spec.sandbox, a.spec.network) == ("process", "none")
    register_microvm(cluster)
    a = cfe.GetApplication(pb.fe.GetApplicationRequest(name="flmexec-microvm"))
    assert (a.spec.sandbox, a.spec.network) == ("microvm", "none")


# Scripts as an LLM might write them: each tries one escape and, when the
# sandbox stops it, exits non-zero with what the system said.
LIBC = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"


def syscall_script(call, what):
    return (LIBC + f"if {call} != 0:\n"
            f"    raise SystemExit('{what}: ' + os.strerror(ctypes.get_errno()))\n")


FORKBOMB = """import os, time
n = 0
try:
    while n < 5000:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError as e:
    raise SystemExit(f"fork failed after {n} processes: {e}")
"""


def test_scripts_cannot_escape(cluster, pb, cfe, tmp_path):
    from test_escape import Listener, assert_node_serves
    wait_node(pb, cfe)
    pid = cluster.em.pid
    lst = Listener()
    etc = f"/etc/flame-escape-{os.getpid()}"
    planted = tmp_path / "planted"
    planted.write_text("the host's\n")
    planted.chmod(0o644)
    tmp_path.chmod(0o755)
    attempts = [
        ("shell", f"echo pwned > {etc}", etc),
        ("shell", f"echo pwned > {cluster.workdir}/work/dropped", "dropped"),
        ("shell", "cat /etc/shadow", "/etc/shadow"),
        ("shell", f"cat {planted}", str(planted)),
        ("shell", f"cat /proc/{pid}/cmdline", f"/proc/{pid}"),
        ("shell", f"kill -9 {pid}", "kill"),
        ("python", f"import socket\nsocket.create_connection(('127.0.0.1', {lst.port}), 3)",
         "Connection refused"),
        ("python", syscall_script("libc.unshare(0x10000000)", "unshare(CLONE_NEWUSER)"),
         "unshare(CLONE_NEWUSER)"),
        ("python", syscall_script("libc.mount(b'x', b'.', b'tmpfs', 0, None)", "mount"), "mount"),
        ("python", syscall_script("libc.ptrace(16, os.getppid(), None, None)", "ptrace"),
         "ptrace"),
        ("python", syscall_script("libc.syscall(175, b'junk', 4, b'')", "init_module"),
         "init_module"),
        ("python", FORKBOMB, "process limit of 64 more processes"),
        ("python", "x = bytearray(2 << 30)", "memory limit of 512 MiB"),
    ]
    try:
        for lang, code, words in attempts:
            r = flmexec(cluster, "-l", lang, "-c", code)
            assert r.returncode == 1, f"{code!r}: NOT BLOCKED: {r.stdout}{r.stderr}"
            words = words if isinstance(words, tuple) else (words,)
            assert any(w in r.stderr for w in words), \
                f"{code!r}: {r.stderr!r} does not say {' or '.join(words)!r}"
        assert not os.path.exists(etc)
        assert not os.path.exists(f"{cluster.workdir}/work/dropped")
        assert lst.accepted == 0
    finally:
        lst.close()
    ok = flmexec(cluster, "-l", "python", "-c", "print('a normal script')")
    assert ok.returncode == 0 and ok.stdout == "a normal script\n", ok.stderr
    assert_node_serves(cluster, pid)


def test_microvm_on_request(cluster, pb, cfe):
    """flmexec --sandbox microvm runs the script in a VM, or, on a node
    that cannot start one, fails with the bind's message (never hangs,
    never runs it elsewhere)."""
    wait_node(pb, cfe)
    missing = flmexec(cluster, "--sandbox", "microvm", "-c", "true")
    assert missing.returncode == 1 and "flmexec-microvm.yaml" in missing.stderr, missing.stderr
    register_microvm(cluster)
    r = flmexec(cluster, "--sandbox", "microvm", "-c", "echo in a vm", timeout=180)
    if r.returncode == 0:
        assert r.stdout == "in a vm\n"
    else:
        assert "cannot run" in r.stderr and "microvm" in r.stderr, r.stderr
    bad = flmexec(cluster, "--sandbox", "none", "-c", "true")
    assert bad.returncode == 2 and "never runs unconfined" in bad.stderr
