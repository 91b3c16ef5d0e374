#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_ipc (tests/fuzz/corpus/fuzz_ipc/) from
real messages: Arrow IPC files and streams written by pyarrow (opaque
objects as Flame's SDKs write them, native tables, ZSTD bodies), their
schema and batch messages, and BSON ObjectRefs as flamepy writes them.
Files named found-* (the fuzzers' findings) stay. Needs pyarrow:
    $(scripts/pyvenv.sh) tests/fuzz/make_corpus_cache.py"""
import io
import os
import struct

import pyarrow as pa

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_ipc")


def put(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
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


def stream(t, compression=None):
    b = io.BytesIO()
    with pa.ipc.new_stream(b, t.schema,
                           options=pa.ipc.IpcWriteOptions(compression=compression)) as w:
        w.write_table(t)
    return b.getvalue()


def file(t, compression=None):
    b = io.BytesIO()
    with pa.ipc.new_file(b, t.schema,
                         options=pa.ipc.IpcWriteOptions(compression=compression)) as w:
        w.write_table(t)
    return b.getvalue()


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


os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    if not f.startswith("found-"):
        os.remove(os.path.join(OUT, f))

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
