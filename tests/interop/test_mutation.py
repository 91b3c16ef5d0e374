"""Structure-aware mutation of requests against a live session manager.

Valid requests of every Frontend and Backend method (tests/fuzz/requests_v1.py)
are mutated at the protobuf level (field values: huge and negative numbers,
empty, long and invalid UTF-8 strings; unknown fields, field number 0
written as a non-canonical varint; repeated fields blown up; truncations
and bit flips of the serialized bytes) and sent, a bounded number with a
fixed seed. After every batch the daemon must be alive, answer a second
client's GetApplication and ListSession promptly, and keep its RSS bounded.
FLAME_MUTATION_SEED and FLAME_MUTATION_COUNT change the seed and the count."""
import os
import random
import struct
import sys
import time

import grpc
import pytest

from conftest import channel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fuzz"))
from requests_v1 import valid_requests  # noqa: E402

SEED = int(os.environ.get("FLAME_MUTATION_SEED", "8"))
COUNT = int(os.environ.get("FLAME_MUTATION_COUNT", "3000"))
BATCH = 250
RSS_GROWTH_MB = 512  # over the RSS after the warm-up
# ASan keeps freed memory in quarantine (256 MB) and pads every block
RSS_GROWTH_MB_ASAN = 1536
EXEC = "n1-mutation"

STREAMS_OUT = {"WatchTask", "ListTask", "WatchSession"}
BIDI = {"RunSession", "WatchNode", "ExecutorStream"}
BACKEND = {"RegisterNode", "SyncNode", "ReleaseNode", "WatchNode", "RegisterExecutor",
           "UnregisterExecutor", "BindExecutor", "BindExecutorCompleted", "UnbindExecutor",
           "UnbindExecutorCompleted", "LaunchTask", "CompleteTask", "ExecutorStream"}

NUMBERS = [0, 1, -1, 2**31 - 1, -2**31, 2**32 - 1, 2**63 - 1, -2**63, 2**64 - 1, 1000000]
BAD_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"a\x00b", b"\xf4\x90\x80\x80"]


def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def raw_field(number, wire_type, payload):
    return varint(number << 3 | wire_type) + payload


class Mutator:
    def __init__(self, rng):
        self.r = rng

    def fields(self, msg, depth=0):
        """(message, field descriptor) pairs of msg and its set sub-messages."""
        out = [(msg, f) for f in msg.DESCRIPTOR.fields]
        if depth < 3:
            for f, v in msg.ListFields():
                if f.message_type is None or f.message_type.GetOptions().map_entry:
                    continue
                if f.label == f.LABEL_REPEATED:
                    for sub in v:
                        out += self.fields(sub, depth + 1)
                else:
                    out += self.fields(v, depth + 1)
        return out

    def value(self, f):
        r = self.r
        t = f.type
        if t == f.TYPE_STRING:
            return r.choice(["", "x" * r.choice([1, 256, 4096, 70000]), "s1", "fz", "n1", EXEC,
                             "../../etc/passwd", "a b", "\u00e9\u4e2d"])
        if t == f.TYPE_BYTES:
            return r.choice([b"", b"\x00" * r.choice([1, 65536, 1 << 20])])
        if t == f.TYPE_BOOL:
            return r.choice([True, False])
        if t == f.TYPE_ENUM:
            return r.choice([0, 1, 2, 7, 2**31 - 1, -1])
        return r.choice(NUMBERS)

    def set_field(self, msg, f):
        if f.message_type is not None:
            if f.message_type.GetOptions().map_entry:  # the map<string, string> tokens
                getattr(msg, f.name)[self.value(f.message_type.fields[0])] = "v"
            elif f.label == f.LABEL_REPEATED:
                getattr(msg, f.name).add()
            else:
                getattr(msg, f.name).SetInParent()
            return
        v = self.value(f)
        try:
            if f.label == f.LABEL_REPEATED:
                getattr(msg, f.name).append(v)
            else:
                setattr(msg, f.name, v)
        except (ValueError, TypeError):
            pass  # out of the field's range: python refuses, the raw paths cover it

    def blow_up(self, msg, f):
        """Repeats an element of a repeated field many times."""
        n = self.r.choice([100, 1000, 20000])
        field = getattr(msg, f.name)
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            for i in range(n):
                field["k%d" % i] = "v"
        elif f.message_type is not None:
            proto = field[0] if len(field) else None
            for _ in range(min(n, 2000)):
                e = field.add()
                if proto is not None:
                    e.CopyFrom(proto)
        else:
            v = field[0] if len(field) else self.value(f)
            if isinstance(v, (bytes, str)) and len(v) > 1024:
                n = min(n, 16)  # stays far below protobuf's 2 GB
            try:
                field.extend([v] * n)
            except (ValueError, TypeError):
                pass

    def mutate(self, valid):
        r = self.r
        msg = type(valid)()
        msg.CopyFrom(valid)
        for _ in range(r.choice([1, 1, 2, 3])):
            fs = self.fields(msg)
            if fs:
                m, f = r.choice(fs)
                if f.label == f.LABEL_REPEATED and r.random() < 0.3:
                    self.blow_up(m, f)
                else:
                    self.set_field(m, f)
        data = msg.SerializeToString()
        k = r.randrange(9)
        strings = [f for f in msg.DESCRIPTOR.fields if f.type == f.TYPE_STRING]
        if k == 0 and strings:  # invalid UTF-8 in a top-level string
            f = r.choice(strings)
            bad = r.choice(BAD_UTF8)
            data += raw_field(f.number, 2, varint(len(bad)) + bad)
        elif k == 1:  # unknown fields of every wire type
            n = r.choice([99, 536870911, 19000])
            data += r.choice([raw_field(n, 0, varint(r.choice(NUMBERS) & (2**64 - 1))),
                              raw_field(n, 1, b"\x00" * 8), raw_field(n, 5, b"\x00" * 4),
                              raw_field(n, 2, b"\x03abc"), raw_field(n, 3, b"") +
                              raw_field(n, 4, b"")])
        elif k == 2:  # field number 0 as a non-canonical varint (issue 8)
            data += b"\x80\x00\x01"
        elif k == 3 and data:  # truncation
            data = data[:r.randrange(len(data))]
        elif k == 4 and data:  # bit flips
            b = bytearray(data)
            for _ in range(r.choice([1, 2, 8])):
                i = r.randrange(len(b))
                b[i] ^= 1 << r.randrange(8)
            data = bytes(b)
        elif k == 5:  # a length that lies
            data += b"\x12" + varint(r.choice([2**31, 2**32 + 5, 1000]))
        return data


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


def check_alive(daemon, fe, pb, what):
    assert daemon.alive(), f"the session manager died ({what})"
    t0 = time.monotonic()
    try:
        fe.GetApplication(pb.fe.GetApplicationRequest(name="flmping"), timeout=10)
        fe.ListSession(pb.fe.ListSessionRequest(), timeout=10)
    except grpc.RpcError as e:
        pytest.fail(f"a second client is not served ({what}): {e.code()} {e.details()}")
    return time.monotonic() - t0


def test_mutated_requests(daemon, pb, fe):
    import backend_pb2 as B  # generated by the pb fixture
    valid = valid_requests(pb.types, pb.fe, B, EXEC)
    ch = channel(daemon.port)
    raw = {}
    for name in valid:
        svc = "Backend" if name in BACKEND else "Frontend"
        path = f"/flame.v1.{svc}/{name}"
        if name in STREAMS_OUT:
            raw[name] = ch.unary_stream(path)
        elif name in BIDI:
            raw[name] = ch.stream_stream(path)
        else:
            raw[name] = ch.unary_unary(path)

    def send(name, data, timeout):
        try:
            if name in STREAMS_OUT:
                for _ in raw[name](data, timeout=timeout):
                    pass
            elif name in BIDI:
                for _ in raw[name](iter([data, data]), timeout=timeout):
                    pass
            else:
                raw[name](data, timeout=timeout)
        except grpc.RpcError as e:
            assert e.code() != grpc.StatusCode.UNKNOWN or "Exception" not in (e.details() or ""), \
                e.details()

    # warm-up: a valid state for the mutants to hit (app, session, tasks, node)
    for name in ("RegisterApplication", "CreateSession", "CreateTasks", "RegisterNode"):
        send(name, valid[name].SerializeToString(), 5)
    check_alive(daemon, fe, pb, "warm-up")
    base = rss_mb(daemon.proc.pid)
    with open(f"/proc/{daemon.proc.pid}/maps") as f:
        budget = RSS_GROWTH_MB_ASAN if "libasan" in f.read() else RSS_GROWTH_MB
    rng = random.Random(SEED)
    mut = Mutator(rng)
    names = sorted(valid)
    worst = 0.0
    for i in range(COUNT):
        name = rng.choice(names)
        data = mut.mutate(valid[name]) if rng.random() < 0.9 else valid[name].SerializeToString()
        send(name, data, 0.3 if name in STREAMS_OUT | BIDI else 5)
        if (i + 1) % BATCH == 0 or i + 1 == COUNT:
            what = f"after {i + 1} requests, seed {SEED}, last {name} {data[:64].hex()}"
            worst = max(worst, check_alive(daemon, fe, pb, what))
            rss = rss_mb(daemon.proc.pid)
            assert rss < base + budget, f"RSS {rss} MB, was {base} MB ({what})"
    ch.close()
    print(f"mutation: {COUNT} requests, seed {SEED}, RSS {base} -> {rss_mb(daemon.proc.pid)} MB, "
          f"slowest health check {worst * 1000:.0f} ms")


def test_invalid_utf8_is_refused(daemon, pb, fe):
    """Found again by fuzz_sm with FUZZ_UTF8=1 (corpus utf8-invalid-strings):
    a proto3 string that is not UTF-8 was stored, and ListApplication became
    undecodable for every grpcio client."""
    spec = pb.types.ApplicationSpec(command="/bin/true").SerializeToString()
    spec += b"\x12\x02\xff\xfe"  # description
    req = b"\x0a\x02u8\x12" + bytes([len(spec)]) + spec
    register = channel(daemon.port).unary_unary("/flame.v1.Frontend/RegisterApplication")
    with pytest.raises(grpc.RpcError) as e:
        register(req, timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fe.ListApplication(pb.fe.ListApplicationRequest(), timeout=5)
