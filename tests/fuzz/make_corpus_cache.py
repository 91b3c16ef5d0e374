#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_ipc and fuzz_cache
(tests/fuzz/corpus/fuzz_{ipc,cache}/) from real messages: Arrow IPC files
and streams written by pyarrow (opaque objects as Flame's SDKs write them,
native tables, ZSTD bodies), their schema and batch messages, BSON
ObjectRefs as flamepy writes them, and call scripts (inject_driver.h) of
Flight and Flame 0.7 cache calls carrying them. Files named found-* (the
fuzzers' findings) stay. Needs pyarrow and protobuf, and protoc:
    $(scripts/pyvenv.sh) tests/fuzz/make_corpus_cache.py"""
import io
import os
import re
import struct
import subprocess
import sys
import tempfile

import pyarrow as pa

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")
OUT = os.path.join(CORPUS, "fuzz_ipc")


def put(name, data, target="fuzz_ipc"):
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


def opaque(rows, kind=False):
    cols = {"version": pa.array([r[0] for r in rows], pa.uint64())}
    if kind:
        cols["kind"] = pa.array(["base"] * len(rows), pa.utf8())
    cols["data"] = pa.array([r[1] for r in rows], pa.binary())
    return pa.table(cols)


def native():
    t = pa.table({"x": pa.array([1, 2, 3], pa.int32()), "s": pa.array(["a", None, "c"])})
    return t.replace_schema_metadata({"flame.cache.format": "arrow-table-v1",
                                      "flame.cache.version": "3"})


def stream(t, compression=None, new=pa.ipc.new_stream):
    b = io.BytesIO()
    with new(b, t.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as w:
        w.write_table(t)
    return b.getvalue()


def file(t, compression=None):
    return stream(t, compression, pa.ipc.new_file)


def messages(data):
    """(header, body) of every message of a stream."""
    out, at = [], 0
    while at + 8 <= len(data):
        cont, n = struct.unpack_from("<Ii", data, at)
        if cont != 0xFFFFFFFF or n == 0:
            break
        at += 8
        header = data[at:at + n]
        at += n
        msg = pa.ipc.read_message(pa.py_buffer(data[at - n - 8:]))
        body = data[at:at + msg.body.size] if msg.body else b""
        at += len(body)
        out.append((header, body))
    return out


def bson_ref(endpoint, key, version, int32=False):
    def cstr(s):
        return s.encode() + b"\0"

    def utf8(k, v):
        b = v.encode() + b"\0"
        return b"\x02" + cstr(k) + struct.pack("<i", len(b)) + b

    body = utf8("endpoint", endpoint) + utf8("key", key)
    body += (b"\x10" + cstr("version") + struct.pack("<i", version)) if int32 else \
        (b"\x12" + cstr("version") + struct.pack("<q", version))
    return struct.pack("<i", len(body) + 5) + body + b"\0"


for t in ("fuzz_ipc", "fuzz_cache"):
    d = os.path.join(CORPUS, t)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if not f.startswith("found-"):
            os.remove(os.path.join(d, f))

small = opaque([(1, b"hello")])
two = opaque([(1, b"base"), (2, b"patch")], kind=True)
put("file-opaque", b"\0" + file(small))
put("file-opaque-zstd", b"\0" + file(opaque([(5, b"x" * 200)]), "zstd"))
put("stream-opaque-kind", b"\0" + stream(two))
put("file-native", b"\0" + file(native()))
put("stream-native-zstd", b"\0" + stream(native(), "zstd"))
put("schema-native", b"\1" + messages(stream(native()))[0][0])
put("schema-opaque", b"\1" + messages(stream(small))[0][0])
for name, t, comp in (("batch-opaque", small, None), ("batch-kind", two, None),
                      ("batch-zstd", opaque([(9, b"y" * 100)]), "zstd")):
    h, body = messages(stream(t, comp))[1]
    put(name, b"\2" + struct.pack("<H", len(h)) + h + body)
put("ref", b"\3" + bson_ref("grpc://10.0.0.1:9090", "app/ssn/obj", 7))
put("ref-int32", b"\3" + bson_ref("grpc+tls://cache:9090", "a/b/c", 0, int32=True))


# ---- fuzz_cache: call scripts --------------------------------------------

stubs = tempfile.mkdtemp()
subprocess.check_call(["protoc", "-I", os.path.join(ROOT, "proto"), f"--python_out={stubs}",
                       os.path.join(ROOT, "proto", "Flight.proto"),
                       os.path.join(ROOT, "proto", "cache07.proto")])
sys.path.insert(0, stubs)
import Flight_pb2 as F  # noqa: E402
import cache07_pb2 as C  # noqa: E402


def table(path, name):
    """The method names of an rpc_method table, in order."""
    src = open(os.path.join(ROOT, "libflame", path)).read()
    body = src[src.index(name):]
    return re.findall(r'\{ "(\w+)", RPC_KIND_', body[:body.index("};")])


METHODS = table("cache/server.c", "methods[] =") + table("cache/service07.c", "methods07[] =")


def rec(op, method, msg=b"", slot=0):
    """One record: op(1) method(1) len(2) payload (inject_driver.h)."""
    payload = msg.SerializeToString() if hasattr(msg, "SerializeToString") else msg
    return bytes([op | slot << 3, METHODS.index(method)]) + struct.pack("<H", len(payload)) + payload


def flight_put(key, t, slot=0, patch=False):
    desc = F.FlightDescriptor(type=F.FlightDescriptor.PATH,
                              path=[("PATCH:" if patch else "") + key])
    out = b""
    for i, (h, body) in enumerate(messages(stream(t))):
        d = F.FlightData(data_header=h, data_body=body)
        if i == 0:
            d.flight_descriptor.CopyFrom(desc)
        out += rec(0 if i == 0 else 3, "DoPut", d, slot)
    return out + rec(4, "DoPut", slot=slot)


def ticket(key):
    return F.Ticket(ticket=key.encode())


RESTART = bytes([7, 0, 0, 0])
put("flight-opaque", flight_put("app/s1/o1", small) + rec(0, "DoGet", ticket("app/s1/o1"), 1) +
    flight_put("app/s1/o1", opaque([(0, b"more")]), 2, patch=True) +
    rec(0, "DoGet", ticket("app/s1/o1:1"), 3) + RESTART +
    rec(0, "GetFlightInfo", F.FlightDescriptor(type=F.FlightDescriptor.PATH, path=["app/s1/o1"])) +
    rec(0, "ListFlights", F.Criteria(), 1) +
    rec(0, "DoAction", F.Action(type="DELETE", body=b"app/s1"), 2), "fuzz_cache")
put("flight-native", flight_put("app/s2/t", native()) + RESTART +
    rec(0, "DoGet", ticket("app/s2/t"), 1) +
    rec(0, "GetSchema", F.FlightDescriptor(type=F.FlightDescriptor.PATH, path=["app/s2/t"]), 2) +
    rec(0, "Get", C.CacheGetRequest(key="app/s2/t"), 3), "fuzz_cache")
w = lambda **kw: C.CacheWriteRequest(**kw)  # noqa: E731
put("cache07", rec(0, "Put", w(header=C.CacheWriteHeader(key="app/s3/x", data_type="raw"))) +
    rec(3, "Put", w(data=b"hello ")) + rec(3, "Put", w(data=b"world")) + rec(4, "Put") +
    rec(0, "Patch", w(header=C.CacheWriteHeader(key="app/s3/x", data_type="raw")), 1) +
    rec(3, "Patch", w(data=b"!"), 1) + rec(4, "Patch", slot=1) + RESTART +
    rec(0, "Get", C.CacheGetRequest(key="app/s3/x"), 2) +
    rec(0, "GetMetadata", C.CacheGetMetadataRequest(key="app/s3/x"), 3) +
    rec(0, "List", C.CacheListRequest(), 4) +
    rec(0, "DoGet", ticket("app/s3/x"), 5) +
    rec(0, "Delete", C.CacheDeleteRequest(key="app/s3/x"), 6), "fuzz_cache")
put("cache07-prefix", rec(0, "Put", w(header=C.CacheWriteHeader(key="app/s4", data_type="pickle"))) +
    rec(3, "Put", w(data=b"x" * 100)) + rec(4, "Put") + rec(0, "List", C.CacheListRequest(), 1),
    "fuzz_cache")
