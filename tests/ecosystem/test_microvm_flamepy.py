"""A flamepy 0.6.0 service (microvm_service.py) at the microvm sandbox level,
end to end under TCG: scripts/microvm-image.sh puts this venv's Python
runtime (interpreter, standard library, flamepy and what it imports, pyarrow
included) on the image's python.img; a cluster of ours runs the service in
a QEMU microvm guest (the guest's kernel answers, not the host's), a session
keeps its state across tasks and gets its common data. Skips, saying why,
only where QEMU is not installed or the image cannot be built here."""
import os
import shutil
import subprocess
import sys

import flamepy
import pytest

from conftest import build_path, skip
from run_cluster import Cluster

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVICE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "microvm_service.py")


@pytest.fixture(scope="module")
def image():
    if not shutil.which("qemu-system-x86_64"):
        skip("the microvm level needs qemu-system-x86_64 (Debian: qemu-system-x86)")
    p = subprocess.run([os.path.join(SRC, "scripts", "microvm-image.sh"), "--build",
                        build_path(), "--python", sys.executable, "--file", SERVICE],
                       capture_output=True, text=True, timeout=1200)
    if p.returncode != 0:
        skip(f"the microvm image cannot be built here: {p.stderr[-2000:]}")
    d = p.stdout.strip().splitlines()[-1]
    assert os.path.exists(os.path.join(d, "python.img")), p.stdout + p.stderr
    return d


@pytest.fixture(scope="module")
def cluster(image):
    # a guest of 1 GB: Python, grpcio and pyarrow; TCG, chosen explicitly
    c = Cluster(resreq="cpu=1,mem=1g",
                em_args=["--microvm-accel", "tcg", "--microvm-image", image]).start()
    yield c
    c.stop()


def test_a_flamepy_service_runs_in_a_microvm(cluster):
    app = os.path.join(cluster.dir, "app.yaml")
    with open(app, "w") as f:
        f.write(f"metadata:\n  name: py-vm\nspec:\n  command: {sys.executable}\n"
                f"  arguments: [\"{SERVICE}\"]\n  sandbox: microvm\n  max_instances: 1\n")
    r = subprocess.run([build_path("cli", "flmctl"), "register", "-f", app],
                       capture_output=True, text=True, env=cluster.env | {"FLAME_ENDPOINT": cluster.url})
    assert r.returncode == 0, r.stdout + r.stderr
    s = flamepy.create_session("py-vm", common_data=b"shared", max_instances=1)
    try:
        out = [s.run(f"t{i}".encode()).result(timeout=600).decode().split(";")
               for i in range(3)]
    finally:
        s.close()
    print(f"microvm flamepy service answered: {out}")
    # the count kept across the session's tasks, the session's common data
    assert [o[0] for o in out] == ["1", "2", "3"], out
    assert all(o[3] == "shared" and o[4] == f"t{i}" for i, o in enumerate(out)), out
    # the guest's kernel (the image's Debian cloud kernel), not the host's
    host = os.uname().release
    assert all(o[1] != host and o[1].endswith("-cloud-amd64") for o in out), (host, out)
    # its log is the VM's console: the guest agent started it there
    logs = os.path.join(cluster.dir, "work", "logs")
    text = "".join(open(os.path.join(logs, n), errors="replace").read()
                   for n in os.listdir(logs))
    assert "flame-vm-agent" in text, text[-3000:]
