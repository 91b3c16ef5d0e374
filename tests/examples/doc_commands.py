#!/usr/bin/env python3
"""Prints the shell commands of the ```sh blocks of Markdown files, one JSON
object a line: {"file", "line", "cmd", "expect": [...]}.

A command is a line of a ```sh block (with its backslash continuations);
comment lines right after it (`# ...`) are the output it is documented to
print, turned into regular expressions: `...` matches anything, and a number
written with x's or decimals (`3.141xxx`, `0.0xx`) matches any decimal number.
Blocks without a language are synopses (metavariables like NAME), and
```python/```yaml blocks are code and configuration: neither is a command.
Usage: doc_commands.py FILE.md..."""
import json
import re
import sys

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
NUMBER = re.compile(r"[0-9]+\.[0-9x]+")


def expectation(text):
    """A documented output line -> a regular expression."""
    parts = []
    for i, chunk in enumerate(text.split("...")):
        pieces, pos = [], 0
        for m in NUMBER.finditer(chunk):
            pieces.append(re.escape(chunk[pos:m.start()]))
            pieces.append(r"[0-9]+\.[0-9]+")
            pos = m.end()
        pieces.append(re.escape(chunk[pos:]))
        parts.append("".join(pieces))
    return ".*".join(parts)


def commands(path):
    text = open(path, encoding="utf-8").read()
    for block in FENCE.finditer(text):
        if block.group(1) not in ("sh", "bash", "shell"):
            continue
        first = text[:block.start()].count("\n") + 2
        lines = block.group(2).splitlines()
        i = 0
        current = None
        while i < len(lines):
            line, lineno = lines[i], first + i
            i += 1
            if not line.strip():
                current = None
                continue
            if line.lstrip().startswith("#"):
                if current is not None:
                    current["expect"].append(expectation(line.lstrip()[1:].strip()))
                continue
            cmd = line
            while cmd.endswith("\\") and i < len(lines):
                cmd = cmd[:-1] + " " + lines[i].strip()
                i += 1
            current = {"file": path, "line": lineno, "cmd": cmd.strip(), "expect": []}
            yield current


def main():
    out = []
    for path in sys.argv[1:]:
        out.extend(commands(path))  # expectations are filled in while iterating
    for c in out:
        print(json.dumps(c))


if __name__ == "__main__":
    main()
