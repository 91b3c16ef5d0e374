"""Storage failures tell the truth, with real daemons: the session manager's
files stop growing (RLIMIT_FSIZE set from outside with prlimit, so its
writes fail with EFBIG as on a disk that cannot take more), or its disk is
full (a small tmpfs, where mounts are allowed), and what the clients were
told, what ran and what a restart finds all agree."""
import os
import resource
import shutil
import subprocess

import grpc
import pytest

from conftest import Daemon, channel
from test_execution import open_session, register_pyservice, wait_for, wait_node


def tasks(pb, fe, sid):
    return list(fe.ListTask(pb.fe.ListTaskRequest(session_id=sid), timeout=30))


def marks(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().split()


def create(pb, fe, sid, data):
    return fe.CreateTask(pb.fe.CreateTaskRequest(task=pb.types.TaskSpec(session_id=sid,
                                                                        input=data)))


def test_files_stop_growing(cluster, pb, cfe):
    """Also: the database, its WAL, the work and log directories and the
    Instance sockets are private to the daemons' user (the WAL index is in
    memory: no -shm file)."""
    wait_node(pb, cfe)
    register_pyservice(pb, cfe, "marker")
    open_session(pb, cfe, "disk", "marker")
    ran = os.path.join(cluster.workdir, "ran")
    pad = b":" + b"x" * 8000  # the log of writes grows fast
    create(pb, cfe, "disk", b"mark:%s:first" % ran.encode() + pad)
    wait_for(lambda: "first" in marks(ran), what="the first task")

    # what the daemons created is their user's alone
    work = os.path.join(cluster.workdir, "work")
    socks = [os.path.join(work, f) for f in os.listdir(work) if f.endswith(".sock")]
    assert socks
    assert not os.path.exists(cluster.db + "-shm")
    for path in [cluster.db, cluster.db + "-wal", work, os.path.join(work, "logs")] + socks:
        assert os.stat(path).st_mode & 0o077 == 0, f"{path}: {oct(os.stat(path).st_mode)}"

    # from now on no file of the session manager may grow past this size
    limit = max(os.path.getsize(cluster.db + "-wal"), 1 << 16) + (1 << 16)
    resource.prlimit(cluster.proc.pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    acked, failed = ["first"], []
    for i in range(400):
        tag = f"t{i}"
        try:
            create(pb, cfe, "disk", b"mark:%s:%s" % (ran.encode(), tag.encode()) + pad)
            assert not failed, "a write past the limit succeeded"
            acked.append(tag)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INTERNAL, e
            assert "storage commit failed" in e.details() and "File too large" in e.details(), \
                e.details()
            failed.append(tag)
            if len(failed) == 5:
                break
    assert len(failed) == 5
    assert cluster.alive()
    # nothing of a failed batch reached an executor
    assert not set(marks(ran)) & set(failed)
    with open(os.path.join(cluster.workdir, "sm.log"), errors="replace") as f:
        assert "ERROR sm: commit failed" in f.read()

    # room again: everything acknowledged runs, nothing else ever did
    resource.prlimit(cluster.proc.pid, resource.RLIMIT_FSIZE,
                     (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    create(pb, cfe, "disk", b"mark:%s:after" % ran.encode() + pad)
    acked.append("after")
    wait_for(lambda: set(marks(ran)) >= set(acked), what="the acknowledged tasks")
    assert set(marks(ran)) == set(acked)
    done = wait_for(lambda: (lambda ts: ts if all(t.status.state == pb.types.Succeed for t in ts)
                             else None)(tasks(pb, cfe, "disk")), what="every task to succeed")
    assert [t.spec.output.decode() for t in done] == acked

    # a restart finds exactly what the clients were told
    cluster.stop()
    cluster.start()
    after = tasks(pb, cfe, "disk")
    assert [t.spec.input.split(b":")[2].decode() for t in after] == acked
    assert all(t.status.state == pb.types.Succeed for t in after)


def test_a_full_disk(pb, tmp_path):
    """A real ENOSPC: the database on a 512 KiB tmpfs (needs the right to
    mount; skipped where there is none)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if not shutil.which("mount") or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    d = Daemon(str(tmp_path))
    d.db = str(mnt / "flame.db")
    try:
        d.start()
        ch = channel(d.port)
        fe = pb.grpc.FrontendStub(ch)
        fe.RegisterApplication(pb.fe.RegisterApplicationRequest(
            name="app", application=pb.types.ApplicationSpec(command="/bin/true")))
        open_session(pb, fe, "full", "app")
        acked, failed = 0, 0
        while failed < 3:
            assert acked < 200, "the disk never filled"
            try:
                create(pb, fe, "full", b"%06d" % acked + b"x" * 16000)
                assert not failed, "a write on the full disk succeeded"
                acked += 1
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INTERNAL, e
                assert "database or disk is full (No space left on device)" in e.details(), \
                    e.details()
                failed += 1
        assert len(tasks(pb, fe, "full")) == acked

        subprocess.run(["mount", "-o", "remount,size=16m", str(mnt)], check=True)
        t = create(pb, fe, "full", b"after")
        assert t.metadata.id == str(acked + 1)
        ch.close()
        d.stop()
        d.start()
        ch = channel(d.port)
        fe = pb.grpc.FrontendStub(ch)
        after = tasks(pb, fe, "full")
        assert [x.spec.input[:6] for x in after[:-1]] == [b"%06d" % i for i in range(acked)]
        assert after[-1].spec.input == b"after"
        ch.close()
    finally:
        d.stop()
        subprocess.run(["umount", str(mnt)])
