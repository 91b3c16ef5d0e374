#!/usr/bin/env bash
# flamepy programs run on flamepy 0.6.0 (PyPI) and, import changed, on our
# `flame` package, against a real cluster of ours (test_flamepy_swap.py).
# Usage: flamepy_swap.sh SOURCE_ROOT BUILD_DIR. Exit 77 (skip) only when
# PyPI cannot be reached to make the venv, saying so.
set -euo pipefail
root="$(cd "$1" && pwd)"
build="$(cd "$2" && pwd)"
if ! py=$("$root/scripts/pyvenv.sh"); then
    if ! /usr/bin/python3 -c 'import urllib.request; urllib.request.urlopen("https://pypi.org/simple/flamepy/", timeout=20)' 2>/dev/null; then
        echo "SKIP: PyPI (https://pypi.org) is unreachable: cannot install flamepy 0.6.0 into the test venv"
        exit 77
    fi
    echo "scripts/pyvenv.sh failed with PyPI reachable" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# our package, built for the venv's interpreter, outside the venv (shared)
cp -r "$root/bindings/python" "$work/src"
FLAME_SOURCE_DIR="$root" FLAME_BUILD_DIR="$build" "$py" -m pip install -q --disable-pip-version-check \
    --no-build-isolation --no-index --no-deps --target "$work/pkg" "$work/src"
cd "$work"
FLAME_BUILD_DIR="$build" FLAME_SWAP_PKG="$work/pkg" \
    "$py" -m pytest -q -p no:cacheprovider "$root/tests/ecosystem/test_flamepy_swap.py"
