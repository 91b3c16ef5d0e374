"""The stdio shim's frame mode at its cheapest in Python (scripts/bench_shims.sh):
answers every enter and task with its payload."""
import struct
import sys

inp, out = sys.stdin.buffer, sys.stdout.buffer
while (head := inp.read(5)) and len(head) == 5:
    data = inp.read(struct.unpack(">I", head[1:])[0])
    if head[:1] in (b"E", b"T"):
        out.write(b"O" + struct.pack(">I", len(data)) + data)
        out.flush()
