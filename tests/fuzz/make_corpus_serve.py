#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_serve (tests/fuzz/corpus/fuzz_serve/): a
client's bytes to a C service's Instance server (byte 0: the mode of
fuzz_serve.c; bit 1 set: records the target makes into requests; else the
frames after the preface). Files named found-* (the fuzzer's findings)
stay. Needs nothing but Python:
    tests/fuzz/make_corpus_serve.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_serve")

DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)
ENTER, INVOKE, LEAVE, BATCH, UNKNOWN = range(5)


def frame(ftype, flags, stream, payload=b""):
    n = len(payload)
    return bytes([n >> 16, (n >> 8) & 255, n & 255, ftype, flags]) + \
        struct.pack(">I", stream) + payload


def s(text):
    return bytes([len(text)]) + text


def headers(path, extra=b""):
    """:method POST, :scheme http, :path, content-type (literals without
    indexing, names from the static table)"""
    return b"\x83\x86" + b"\x04" + s(path) + b"\x0f\x10" + s(b"application/grpc") + extra


def msg(body, flag=0):
    return bytes([flag]) + struct.pack(">I", len(body)) + body


def pb_str(field, text):
    return bytes([field << 3 | 2, len(text)]) + text


TASK = pb_str(1, b"t1") + pb_str(2, b"s1") + pb_str(4, b"ping")
SESSION = pb_str(1, b"s1") + bytes([0x12, 5]) + pb_str(1, b"app") + pb_str(3, b"common")
BATCH_MSG = b"".join(bytes([0x0a, len(TASK)]) + TASK for _ in range(3))
INVOKE_PATH = b"/flame.v1.Instance/OnTaskInvoke"
SET = frame(SETTINGS, 0, 0)


def call(stream, path, body, flag=0):
    return frame(HEADERS, 4, stream, headers(path)) + frame(DATA, 1, stream, msg(body, flag))


def rec(method, flags, payload):
    return bytes([method, flags]) + struct.pack("<H", len(payload)) + payload


seeds = {
    "invoke": b"\x00" + SET + call(1, INVOKE_PATH, TASK),
    "session": b"\x00" + SET + call(1, b"/flame.v1.Instance/OnSessionEnter", SESSION) +
    call(3, INVOKE_PATH, TASK) +
    call(5, b"/flame.v1.Instance/OnTaskInvokeBatch", BATCH_MSG) +
    call(7, b"/flame.v1.Instance/OnSessionLeave", b""),
    "refused-session": b"\x00" + SET + call(1, b"/flame.v1.Instance/OnSessionEnter",
                                            pb_str(1, b"xno")),
    "unknown": b"\x00" + SET + call(1, b"/flame.v1.Instance/Nope", b""),
    "compressed": b"\x00" + SET + call(1, INVOKE_PATH, TASK, flag=1),
    "too-big": b"\x01" + SET + call(1, INVOKE_PATH, b"x" * 100),
    "malformed": b"\x00" + SET + call(1, INVOKE_PATH, b"\xff\xff\xff"),
    "not-post": b"\x00" + SET + frame(HEADERS, 5, 1, b"\x82\x86\x04" + s(INVOKE_PATH)),
    "padded-continuation-priority": b"\x00" + SET +
    frame(HEADERS, 0x8 | 0x20, 1, b"\x02" + b"\x00" * 5 + headers(INVOKE_PATH)[:10] + b"\x00\x00") +
    frame(CONT, 4, 1, headers(INVOKE_PATH)[10:]) + frame(PRIORITY, 0, 1, b"\x00" * 5) +
    frame(DATA, 0x8, 1, b"\x03" + msg(TASK)[:4] + b"\x00" * 3) +
    frame(DATA, 0x1, 1, msg(TASK)[4:]),
    "trailers": b"\x00" + SET + frame(HEADERS, 4, 1, headers(INVOKE_PATH)) +
    frame(DATA, 0, 1, msg(TASK)) + frame(HEADERS, 5, 1, b"\x00" + s(b"x-trailer") + s(b"1")),
    "windows-ping": b"\x00" + frame(SETTINGS, 0, 0, b"\x00\x04\x00\x00\x00\x04"
                                                    b"\x00\x05\x00\x00\x80\x00"
                                                    b"\x00\x01\x00\x00\x00\x00") +
    frame(SETTINGS, 1, 0) + call(1, INVOKE_PATH, TASK) + frame(PING, 0, 0, b"12345678") +
    frame(WINDOW, 0, 1, struct.pack(">I", 10)) + frame(WINDOW, 0, 0, struct.pack(">I", 100)),
    "rst-goaway": b"\x00" + SET + frame(HEADERS, 4, 1, headers(INVOKE_PATH)) +
    frame(RST, 0, 1, struct.pack(">I", 8)) + call(3, INVOKE_PATH, TASK) +
    frame(GOAWAY, 0, 0, b"\x00" * 8),
    "indexed-headers": b"\x00" + SET +
    frame(HEADERS, 4, 1, b"\x83\x86\x44" + s(INVOKE_PATH) + b"\x5f" + s(b"application/grpc")) +
    frame(DATA, 1, 1, msg(TASK)) + frame(HEADERS, 4, 3, b"\x83\x86\xbf\xbe") +
    frame(DATA, 1, 3, msg(TASK)),
    "even-stream": b"\x00" + SET + call(2, INVOKE_PATH, TASK),
    "no-preface": b"\x04GET / HTTP/1.1\r\n\r\n",
    "frame-too-large": b"\x00" + SET + b"\x01\x00\x00\x00\x00\x00\x00\x00\x01",
    "records": b"\x02" + rec(ENTER, 0, SESSION) + rec(INVOKE, 8, TASK) +
    rec(BATCH, 2, BATCH_MSG) + rec(LEAVE, 0, b"") + rec(UNKNOWN, 0, b""),
    "records-errors": b"\x03" + rec(INVOKE, 1, TASK) + rec(INVOKE, 4, TASK) +
    rec(INVOKE, 0, b"\x0a\xff") + rec(INVOKE, 0, b"x" * 200),
}

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    if not f.startswith("found-"):
        os.remove(os.path.join(OUT, f))
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {OUT}")
