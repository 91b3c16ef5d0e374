#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/)
from proto/ with python protobuf: small valid messages and call scripts,
plus the known crashers of issue 8. Files named found-* are
reproducers the fuzzers found: kept as they are (a non-canonical varint field number,
invalid UTF-8, a count of 2^32-1). Run it again after a proto change:
    tests/fuzz/make_corpus.py
The call scripts follow tests/fuzz/inject_driver.h; method numbers come
from the servers' method tables (the order of the C source)."""
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO = os.path.join(ROOT, "proto")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")

stubs = tempfile.mkdtemp()
subprocess.check_call(["protoc", "-I", PROTO, f"--python_out={stubs}"] +
                      [os.path.join(PROTO, p) for p in
                       ("types.proto", "frontend.proto", "backend.proto", "shim.proto")])
sys.path.insert(0, stubs)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import types_pb2 as T  # noqa: E402
import frontend_pb2 as F  # noqa: E402
import backend_pb2 as B  # noqa: E402
import shim_pb2 as S  # noqa: E402


def table(path):
    """The method names of an rpc_method table, in order."""
    src = open(os.path.join(ROOT, "libflame", path)).read()
    return re.findall(r'\{ "(\w+)", RPC_KIND_', src)


SM_METHODS = table("sm/frontend.c") + table("sm/backend.c")
SHIM_METHODS = table("service/service.c")


def clear(target):
    """Removes what this script wrote; found-* (fuzzers' findings) stay."""
    d = os.path.join(OUT, target)
    for f in os.listdir(d) if os.path.isdir(d) else []:
        if not f.startswith("found-"):
            os.remove(os.path.join(d, f))


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


class Script:
    """A call script (inject_driver.h)."""

    def __init__(self, methods):
        self.methods = methods
        self.b = b""

    def rec(self, action, slot, method=0, payload=b"", batch=False):
        op = action | (slot << 3) | (0x80 if batch else 0)
        self.b += struct.pack("<BBH", op, method, len(payload)) + payload

    def call(self, method, msg, slot=0, batch=False):
        data = msg if isinstance(msg, bytes) else msg.SerializeToString()
        self.rec(0, slot, self.methods.index(method), data, batch)

    def send(self, slot, msg):
        self.rec(3, slot, 0, msg if isinstance(msg, bytes) else msg.SerializeToString())

    def half_close(self, slot):
        self.rec(4, slot)

    def end(self, slot):
        self.rec(5, slot)

    def tick(self):
        self.rec(6, 0)

    def restart(self):
        self.rec(7, 0)


from requests_v1 import app_spec, node, session_spec, valid_requests  # noqa: E402


# ---- fuzz_sm: the session manager --------------------------------------
clear("fuzz_sm")
EXEC = "n1-0-1"  # fuzz_sm makes executor ids "<node>-0-<n>"

# every method once, with a valid request
every = Script(SM_METHODS)
valid = valid_requests(T, F, B, EXEC)
missing = set(SM_METHODS) - set(valid)
assert not missing, f"make_corpus.py: no request for {missing}"
for m in SM_METHODS:
    s = Script(SM_METHODS)
    s.call(m, valid[m])
    write("fuzz_sm", f"one-{m}", s.b)
order = ["RegisterApplication", "CreateSession", "CreateTask", "CreateTasks", "GetTask",
         "ListTask", "WatchSession", "GetSession", "ListSession", "ListApplication",
         "GetApplication", "UpdateApplication", "CloseSession", "OpenSession", "DeleteSession",
         "UnregisterApplication"]
for i, m in enumerate(order):
    every.call(m, valid[m], slot=i % 8)
write("fuzz_sm", "frontend-tour", every.b)

# the executor life cycle: a node, a session with work, an executor that
# registers, binds, streams its tasks and reports them, then leaves
life = Script(SM_METHODS)
life.call("RegisterApplication", valid["RegisterApplication"])
life.call("RegisterNode", valid["RegisterNode"])
life.call("WatchNode", valid["WatchNode"], slot=1)
life.call("CreateSession", valid["CreateSession"])
life.call("CreateTasks", F.CreateTasksRequest(session_id="s1", inputs=[b"a", b"b", b"c"]))
life.call("WatchSession", valid["WatchSession"], slot=2)
life.tick()
life.call("RegisterExecutor", valid["RegisterExecutor"])
life.call("BindExecutor", valid["BindExecutor"], slot=3)
life.tick()
life.call("BindExecutorCompleted", valid["BindExecutorCompleted"])
life.call("ExecutorStream", valid["ExecutorStream"], slot=4)
life.send(4, B.ExecutorUpdate(started=[1, 2]))
life.send(4, B.ExecutorUpdate(outcomes=[T.TaskOutcome(task_id=1, state=T.Succeed, output=b"x"),
                                        T.TaskOutcome(task_id=2, state=T.Failed, message="no",
                                                      return_code=3)],
                              credit=2, returned=[3]))
life.call("ListExecutor", valid["ListExecutor"], slot=5)
life.send(1, valid["WatchNode"])
life.call("CloseSession", valid["CloseSession"])
life.half_close(4)
life.call("UnbindExecutor", valid["UnbindExecutor"])
life.call("UnbindExecutorCompleted", valid["UnbindExecutorCompleted"])
life.call("UnregisterExecutor", valid["UnregisterExecutor"])
life.half_close(1)
life.call("ReleaseNode", valid["ReleaseNode"])
life.tick()
write("fuzz_sm", "executor-life-cycle", life.b)

# a parked stream refused at a later message (malformed, or invalid UTF-8
# once requests are validated) must be forgotten by its owner: fuzz_sm found
# the executor, and a RunSession watch, keeping the freed call
for name, later in (("malformed", b"\x12\x02\x08"),
                    ("utf8", b"\x12\x05\x08\x01\x22\x01\xff")):
    ps = Script(SM_METHODS)
    for m in ("RegisterApplication", "RegisterNode"):
        ps.call(m, valid[m])
    ps.call("WatchNode", valid["WatchNode"], slot=1)
    ps.call("CreateSession", valid["CreateSession"])
    ps.call("CreateTasks", valid["CreateTasks"])
    ps.tick()
    ps.call("RegisterExecutor", valid["RegisterExecutor"])
    ps.call("BindExecutor", valid["BindExecutor"], slot=3)
    ps.tick()
    ps.call("BindExecutorCompleted", valid["BindExecutorCompleted"])
    ps.call("ExecutorStream", valid["ExecutorStream"], slot=4)
    ps.send(4, later)  # ExecutorUpdate.outcomes: cut short, or message "\xff"
    ps.call("RunSession", valid["RunSession"], slot=5)
    ps.send(5, later.replace(b"\x12", b"\x0a", 1))  # RunSessionRequest.session_id
    ps.end(4)
    ps.end(5)
    ps.call("CreateTask", valid["CreateTask"])
    ps.tick()
    ps.end(1)  # the node leaves: its executor closes its stream
    write("fuzz_sm", f"parked-stream-refused-{name}", ps.b)

# the older path: LaunchTask / CompleteTask
launch = Script(SM_METHODS)
for m in ("RegisterApplication", "RegisterNode"):
    launch.call(m, valid[m])
launch.call("WatchNode", valid["WatchNode"], slot=1)
launch.call("CreateSession", valid["CreateSession"])
launch.call("CreateTask", valid["CreateTask"])
launch.call("WatchTask", valid["WatchTask"], slot=2)
launch.tick()
launch.call("RegisterExecutor", valid["RegisterExecutor"])
launch.call("BindExecutor", valid["BindExecutor"], slot=3)
launch.tick()
launch.call("BindExecutorCompleted", valid["BindExecutorCompleted"])
launch.call("LaunchTask", valid["LaunchTask"], slot=4)
launch.call("CompleteTask", valid["CompleteTask"])
launch.call("LaunchTask", valid["LaunchTask"], slot=4)
launch.end(1)
launch.tick()
write("fuzz_sm", "launch-complete", launch.b)

# a restart in the middle: what was stored comes back (fuzz_sm_sqlite)
rs = Script(SM_METHODS)
for m in ("RegisterApplication", "CreateSession", "CreateTask", "CreateTasks", "RegisterNode"):
    rs.call(m, valid[m])
rs.call("CloseSession", F.CloseSessionRequest(session_id="s1"))
rs.call("CreateSession", F.CreateSessionRequest(session_id="s2", session=session_spec()))
rs.restart()
for m in ("ListApplication", "ListSession", "ListTask", "GetTask", "ListNodes"):
    rs.call(m, valid[m], slot=1)
rs.call("DeleteSession", valid["DeleteSession"])
rs.restart()
rs.call("ListSession", valid["ListSession"])
write("fuzz_sm", "restart", rs.b)
c = Script(SM_METHODS)
spec = app_spec().SerializeToString() + b"\x80\x00\x01"
c.call("RegisterApplication", b"\x0a\x02fz\x12" + bytes([len(spec)]) + spec)
c.restart()
c.call("ListApplication", valid["ListApplication"])
write("fuzz_sm", "crash-field0-app-restart", c.b)

# RunSession: a bidi stream of inputs, then the half-close
run = Script(SM_METHODS)
run.call("RegisterApplication", valid["RegisterApplication"])
run.call("CreateSession", valid["CreateSession"])
run.call("RunSession", valid["RunSession"], slot=1)
run.send(1, F.RunSessionRequest(count=3))
run.half_close(1)
run.call("ListTask", valid["ListTask"], slot=2)
write("fuzz_sm", "run-session", run.b)

# known crashers of issue 8
# 22 bytes: a Node whose unknown field number 0 is a non-canonical varint
nm = T.Metadata(name="node-12345678").SerializeToString()      # 15 bytes
nd = b"\x0a" + bytes([len(nm)]) + nm + b"\x80\x00\x01"        # Node + field 0 = 1
bad_node = b"\x0a" + bytes([len(nd)]) + nd                       # RegisterNodeRequest
assert len(bad_node) == 22
c = Script(SM_METHODS)
c.call("RegisterNode", bad_node)
c.call("ListNodes", valid["ListNodes"])
write("fuzz_sm", "crash-registernode-field0-varint", c.b)
spec = app_spec().SerializeToString() + b"\x80\x00\x01"
for m in ("RegisterApplication", "UpdateApplication"):
    c = Script(SM_METHODS)
    if m == "UpdateApplication":
        c.call("RegisterApplication", valid["RegisterApplication"])
    c.call(m, b"\x0a\x02fz\x12" + bytes([len(spec)]) + spec)
    c.call("ListApplication", valid["ListApplication"])
    c.call("GetApplication", valid["GetApplication"])
    write("fuzz_sm", f"crash-{m}-field0-varint", c.b)
# invalid UTF-8 in proto3 strings (python refuses to write them: by hand)
c = Script(SM_METHODS)
bad = b"\xff\xfe\xc3"
env = b"\x0a\x01K\x12" + bytes([len(bad)]) + bad
spec = (app_spec().SerializeToString() + b"\x12" + bytes([len(bad)]) + bad  # description
        + b"\x1a" + bytes([len(bad)]) + bad + b"\x3a" + bytes([len(env)]) + env)  # label, env
c.call("RegisterApplication", b"\x0a\x02fz\x12" + bytes([len(spec)]) + spec)
c.call("ListApplication", valid["ListApplication"])
c.call("RegisterApplication", b"\x0a\x03f\xc3z\x12" + bytes([len(spec)]) + spec)
c.call("CreateSession", b"\x0a\x02s\xff\x12\x04\x12\x02fz")
c.call("CreateTask", b"\x0a\x05\x12\x03s\xff1")
c.call("ListSession", valid["ListSession"])
write("fuzz_sm", "utf8-invalid-strings", c.b)
# CreateTasks count 2^32-1 (stalled the daemon, then out of memory)
c = Script(SM_METHODS)
c.call("RegisterApplication", valid["RegisterApplication"])
c.call("CreateSession", valid["CreateSession"])
c.call("CreateTasks", F.CreateTasksRequest(session_id="s1", count=2**32 - 1))
c.call("ListSession", valid["ListSession"])
# the cap on counts is s3-hostile's: kept apart until it lands (known/)
os.makedirs(os.path.join(OUT, "..", "known", "fuzz_sm"), exist_ok=True)
with open(os.path.join(OUT, "..", "known", "fuzz_sm", "count-2pow32-1"), "wb") as f:
    f.write(c.b)

# ---- fuzz_shim: the Instance server of a C service -----------------------
clear("fuzz_shim")
sh = Script(SHIM_METHODS)
sh.call("OnSessionEnter", S.SessionContext(session_id="s1", common_data=b"cd",
                                           application=S.ApplicationContext(name="fz", shim=T.Host,
                                                                            command="/bin/true")))
sh.call("OnTaskInvoke", S.TaskContext(task_id="1", session_id="s1", input=b"in"))
sh.call("OnTaskInvoke", S.TaskContext(task_id="x2", session_id="s1"))
sh.call("OnTaskInvokeBatch", S.TaskContextBatch(tasks=[
    S.TaskContext(task_id=str(i), session_id="s1", input=bytes([i])) for i in range(4)]))
sh.call("OnSessionLeave", T.EmptyRequest())
write("fuzz_shim", "session", sh.b)
sh = Script(SHIM_METHODS)
sh.call("OnSessionEnter", S.SessionContext(session_id="x-refused"))
write("fuzz_shim", "refused", sh.b)
sh = Script(SHIM_METHODS)
sh.call("OnTaskInvoke", b"\x0a\x01\xff\x12\x02s\xfe")
sh.call("OnTaskInvokeBatch", b"\x0a\x03\x80\x00\x01")
write("fuzz_shim", "bad-utf8-field0", sh.b)

# ---- fuzz_wire: one message of each kind (first byte: the type's index,
# which fuzz_wire assigns; the fuzzer finds the others) -------------------
clear("fuzz_wire")
samples = [valid[m].SerializeToString() for m in SM_METHODS] + [
    app_spec().SerializeToString(), node().SerializeToString(),
    T.TaskStatus(events=[T.Event(code=1, message="e", creation_time=5)]).SerializeToString(),
    session_spec().SerializeToString(),
    B.ExecutorWork(tasks=[T.Task(metadata=T.Metadata(id="1"),
                                 spec=T.TaskSpec(session_id="s1", input=b"i"))],
                   unbind=True, revoke=[1, 2]).SerializeToString(),
]
for i, data in enumerate(samples):
    for t in range(0, 64, 16):  # a few type indexes per sample
        write("fuzz_wire", f"msg-{i}-{t}", bytes([(i + t) % 64]) + data)
write("fuzz_wire", "encoders", b"\xff" + struct.pack("<Qi", 2**63 + 5, -7) + b"out")

# ---- fuzz_yaml: the cluster config, application files, the context file --
clear("fuzz_yaml")
write("fuzz_yaml", "cluster", b"\x00" + b"""cluster:
  name: flame
  endpoint: http://127.0.0.1:8080
  storage: sqlite://flame.db
  slot: "cpu=1,mem=1g"
  schedule_interval_ms: 500
  tls:
    cert_file: server.crt
    key_file: server.key
    ca_file: ca.crt
    mutual: true
    crl_file: crl.pem
  auth:
    anonymous_role: user
executors:
  shim: host
  limits:
    max_executors: 10
""")
write("fuzz_yaml", "appfile", b"\x01" + b"""metadata:
  name: pi
spec:
  shim: host
  description: "Pi"
  labels: [a, b]
  image: img
  command: /usr/bin/pi
  arguments: ["-n", "1"]
  environments:
    - name: K
      value: V
  working_directory: /tmp
  max_instances: 10
  delay_release: 5
  schema:
    input: '{"type":"string"}'
    output: '{}'
  url: file:///tmp/pkg
  installer: uv
---
metadata:
  name: second
spec:
  command: /bin/true
""")
write("fuzz_yaml", "context", b"\x02" + b"""current-context: flame
contexts:
  - name: flame
    cluster:
      endpoint: "http://127.0.0.1:8080"
      tls:
        ca_file: ca.crt
        cert_file: me.crt
        key_file: me.key
    package:
      storage: file:///tmp
""")
write("fuzz_yaml", "anchors", b"\x00a: &x [*x, *x]\nb: *x\n")

# ---- fuzz_endpoint -----------------------------------------------------
clear("fuzz_endpoint")
for i, e in enumerate([b"http://127.0.0.1:8080", b"127.0.0.1:0", b"https://host:443",
                       b"http://[::1]:8080", b"unix:/tmp/s", b"http://host:99999", b"host"]):
    write("fuzz_endpoint", f"ep-{i}", e)

shutil.rmtree(stubs)
print(f"make_corpus.py: wrote {sum(len(f) for _, _, f in os.walk(OUT))} files under {OUT}")
