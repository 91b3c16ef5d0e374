#!/usr/bin/env python3
"""Rewrite proto3 `optional T x = N;` as `oneof _x { T x = N; }` for protoc-c.

protoc-c 1.4 rejects proto3 optional; the oneof form is wire identical and
keeps field presence. Usage: strip_optional.py IN OUT
"""
import re
import sys

src, dst = sys.argv[1], sys.argv[2]
pat = re.compile(r'^(\s*)optional\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;(.*)$')
out = []
with open(src) as f:
    for line in f:
        m = pat.match(line.rstrip('\n'))
        if m:
            ind, typ, name, num, rest = m.groups()
            line = f'{ind}oneof _{name} {{ {typ} {name} = {num}; }}{rest}\n'
        out.append(line)
with open(dst, 'w') as f:
    f.writelines(out)
