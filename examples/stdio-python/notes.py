#!/usr/bin/env python3
"""A Flame application without a Flame SDK: the stdio shim's frame mode.

Frames: 1 type byte, 4-byte big-endian length, payload. We get E (session
enter: the common data), T (a task: its input), L (leave); we answer every
E and T with O (ok: the output) or X (failed: the message).

This service keeps notes across a session's tasks: every input is appended
and the answer is "<common data>: note1 | note2 | ...". The input "fail"
fails that task; "crash" kills the process (the executor fails that task
and starts us again); "hang" never answers (the task times out after the
executor manager's --task-timeout, the process is stopped and started
again)."""
import os
import struct
import sys
import time

inp, out = sys.stdin.buffer, sys.stdout.buffer


def send(kind, data):
    out.write(kind + struct.pack(">I", len(data)) + data)
    out.flush()


prefix, notes = b"", []
while True:
    head = inp.read(5)
    if len(head) < 5:
        break  # stdin closed: the executor is done with us
    kind, size = head[:1], struct.unpack(">I", head[1:])[0]
    data = inp.read(size)
    if kind == b"E":
        prefix, notes = data, []
        send(b"O", b"")
    elif kind == b"T":
        if data == b"fail":
            send(b"X", b"asked to fail")
        elif data == b"crash":
            print("notes.py: asked to crash", file=sys.stderr)  # goes to the executor's log
            os._exit(3)
        elif data == b"hang":
            time.sleep(1e9)
        else:
            notes.append(data)
            send(b"O", prefix + b": " + b" | ".join(notes))
    elif kind == b"L":
        break
