"""A stdio-shim service that breaks the framing on request
(tests/ecosystem/test_shims.py): "garbage" answers with an unknown type
byte, "huge" announces a frame beyond any bound; other inputs echo."""
import struct
import sys

inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    head = inp.read(5)
    if len(head) < 5:
        break
    kind, data = head[:1], inp.read(struct.unpack(">I", head[1:])[0])
    if kind == b"T" and data == b"garbage":
        out.write(b"Z\x00\x00\x00\x00")
    elif kind == b"T" and data == b"huge":
        out.write(b"O\xff\xff\xff\xff")
    elif kind in (b"E", b"T"):
        out.write(b"O" + struct.pack(">I", len(data)) + data)
    out.flush()
