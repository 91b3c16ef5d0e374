#!/usr/bin/env python3
"""Build step: rewrite proto3 `optional` (strip_optional.py) and run protoc-c.

usage: protoc_c.py PROTOC_C SRC_DIR OUT_DIR NAME.proto...
"""
import os
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)

protoc, src, out = sys.argv[1], sys.argv[2], sys.argv[3]
names = sys.argv[4:]
with tempfile.TemporaryDirectory() as tmp:
    for n in names:
        subprocess.check_call([sys.executable, os.path.join(here, 'strip_optional.py'),
                               os.path.join(src, n), os.path.join(tmp, n)])
    subprocess.check_call([protoc, '--proto_path=' + tmp, '--c_out=' + out] + names)
