#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_h2 (tests/fuzz/corpus/fuzz_h2/): a
service's answers to the host shim's HTTP/2 client (byte 0 even: the mode
of fuzz_h2.c, then the service's bytes) and HPACK header blocks (byte 0
odd, byte 1 the small table's size / 2, then blocks, each after its length
byte), RFC 7541's examples among them. Files named found-* (the fuzzer's
findings) stay. Needs nothing but Python:
    tests/fuzz/make_corpus_h2.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_h2")

DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)


def frame(ftype, flags, stream, payload=b""):
    n = len(payload)
    return bytes([n >> 16, (n >> 8) & 255, n & 255, ftype, flags]) + \
        struct.pack(">I", stream) + payload


def lit(name, value):
    """a literal header field without indexing, a new name"""
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value


def lit_indexed(name, value):
    """a literal header field with incremental indexing, a new name"""
    return bytes([0x40, len(name)]) + name + bytes([len(value)]) + value


RESP = b"\x88" + lit(b"content-type", b"application/grpc")
MSG = b"\x00\x00\x00\x00\x04pong"
OK_TRAILERS = lit(b"grpc-status", b"0")


def answer(stream):
    return (frame(HEADERS, 4, stream, RESP) + frame(DATA, 0, stream, MSG) +
            frame(HEADERS, 5, stream, OK_TRAILERS))


def h2(mode, data):
    return bytes([mode]) + data


def hpack(small, blocks):
    out = bytes([1, small // 2])
    for b in blocks:
        assert len(b) < 256
        out += bytes([len(b)]) + b
    return out


EMPTY_SETTINGS = frame(SETTINGS, 0, 0)
seeds = {
    "ok": h2(0x00, EMPTY_SETTINGS + answer(1)),
    "ok-three-calls": h2(0x04, EMPTY_SETTINGS + answer(1) + answer(3) + answer(5)),
    "ok-indexed-headers": h2(0x02, EMPTY_SETTINGS +
                             frame(HEADERS, 4, 1, b"\x88" + lit_indexed(b"content-type",
                                                                         b"application/grpc")) +
                             frame(DATA, 0, 1, MSG) +
                             frame(HEADERS, 5, 1, lit_indexed(b"grpc-status", b"0")) +
                             frame(HEADERS, 4, 3, b"\x88\xbf") + frame(DATA, 0, 3, MSG) +
                             frame(HEADERS, 5, 3, b"\xbe")),
    "split-padded-continuation": h2(0x00, EMPTY_SETTINGS +
                                    frame(HEADERS, 0x8 | 0x20, 1,
                                          b"\x03" + b"\x00" * 5 + RESP[:4] + b"\x00" * 3) +
                                    frame(CONT, 0, 1, RESP[4:10]) +
                                    frame(CONT, 4, 1, RESP[10:]) +
                                    frame(PING, 0, 0, b"12345678") +
                                    frame(PRIORITY, 0, 1, b"\x00" * 5) +
                                    frame(0xFA, 0, 1, b"x") +
                                    frame(DATA, 0x8, 1, b"\x02" + MSG + b"\x00\x00") +
                                    frame(HEADERS, 5, 1, OK_TRAILERS)),
    "grpc-error": h2(0x00, EMPTY_SETTINGS +
                     frame(HEADERS, 5, 1, b"\x88" + lit(b"grpc-status", b"12") +
                           lit(b"grpc-message", b"no%20such method%2"))),
    # a service's own DEADLINE_EXCEEDED is no wait of the client's
    "service-deadline-exceeded": h2(0x00, frame(HEADERS, 5, 1, b"\x88" +
                                                lit(b"grpc-status", b"4"))),
    "http-error": h2(0x00, frame(HEADERS, 5, 1, b"\x8d")),
    "goaway": h2(0x00, EMPTY_SETTINGS + frame(GOAWAY, 0, 0, b"\x00" * 8)),
    "goaway-after-answer": h2(0x02, answer(1) + frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0))),
    "rst-cancel": h2(0x00, frame(RST, 0, 1, struct.pack(">I", 8))),
    "rst-refused": h2(0x00, frame(RST, 0, 1, struct.pack(">I", 7)) + answer(3)),
    "window-shut": h2(0x30, frame(SETTINGS, 0, 0, b"\x00\x04\x00\x00\x00\x0a") +
                      frame(WINDOW, 0, 0, struct.pack(">I", 70000)) +
                      frame(WINDOW, 0, 1, struct.pack(">I", 70000)) + answer(1)),
    "settings-all": h2(0x00, frame(SETTINGS, 0, 0, b"\x00\x01\x00\x00\x10\x00"
                                                   b"\x00\x03\x00\x00\x00\x64"
                                                   b"\x00\x05\x00\x00\x40\x00") +
                       frame(SETTINGS, 1, 0) + frame(PING, 1, 0, b"87654321") + answer(1)),
    "too-big": h2(0x08, frame(HEADERS, 4, 1, RESP) +
                  frame(DATA, 0, 1, b"\x00\x00\x00\x00\x64" + b"x" * 100) +
                  frame(HEADERS, 5, 1, OK_TRAILERS)),
    "not-one-message": h2(0x00, frame(HEADERS, 4, 1, RESP) +
                          frame(DATA, 0, 1, MSG + MSG) + frame(HEADERS, 5, 1, OK_TRAILERS)),
    # 64 KiB of empty frames: the read buffer once moved per frame made
    # this quadratic (a copy of the buffer per 9 bytes)
    "many-small-frames": h2(0x00, frame(0xFA, 0, 1) * (65535 // 9)),
    "push-promise": h2(0x00, frame(PUSH, 4, 1, b"\x00\x00\x00\x02\x88")),
    "frame-too-large": h2(0x00, b"\xff\xff\xff\x00\x00\x00\x00\x00\x01"),
    # RFC 7541 C.3 (requests, no Huffman), C.4 (with Huffman), C.6 (responses
    # with Huffman, a 256-byte table)
    "hpack-rfc-c3": hpack(256, [
        bytes.fromhex("828684410f7777772e6578616d706c652e636f6d"),
        bytes.fromhex("828684be58086e6f2d6361636865"),
        bytes.fromhex("828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565")]),
    "hpack-rfc-c4": hpack(256, [
        bytes.fromhex("828684418cf1e3c2e5f23a6ba0ab90f4ff"),
        bytes.fromhex("828684be5886a8eb10649cbf"),
        bytes.fromhex("828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf")]),
    "hpack-rfc-c6": hpack(256, [
        bytes.fromhex("488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff"
                      "6e919d29ad171863c78f0b97c8e9ae82ae43d3"),
        bytes.fromhex("4883640effc1c0bf"),
        bytes.fromhex("88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94"
                      "e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c0"
                      "03ed4ee5b1063d5007")]),
    "hpack-size-updates": hpack(64, [bytes.fromhex("3fe11f3f0182"), bytes.fromhex("20"),
                                     bytes.fromhex("3f6182")]),
}

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    if not f.startswith("found-"):
        os.remove(os.path.join(OUT, f))
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {OUT}")
