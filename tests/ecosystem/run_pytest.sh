#!/usr/bin/env bash
# Runs pytest with the ecosystem venv (scripts/pyvenv.sh: flamepy 0.6.0, uv,
# pyarrow from PyPI) on the given test files. HOME is a fresh directory:
# flamepy reads ~/.flame/flame.yaml, which on a developer's machine points at
# another cluster. Exits 77 (meson: skipped) with the reason when PyPI is
# unreachable and the venv does not exist yet.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if ! py="$("$root/scripts/pyvenv.sh")"; then
    if ! python3 -c 'import socket; socket.create_connection(("pypi.org", 443), 10)' 2>/dev/null; then
        echo "SKIP: pypi.org is unreachable and the ecosystem venv (flamepy 0.6.0) is not made yet"
        exit 77
    fi
    echo "scripts/pyvenv.sh failed" >&2
    exit 1
fi
home="$(mktemp -d)"
trap 'rm -rf "$home"' EXIT
cd "$root/tests/ecosystem"
HOME="$home" "$py" -m pytest -q -p no:cacheprovider "$@"
