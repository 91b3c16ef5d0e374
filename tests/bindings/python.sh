#!/usr/bin/env bash
# The Python binding, as a user installs it: a fresh venv (Debian's python3,
# its setuptools and wheel: works offline with --no-build-isolation), then
# its tests against a real local cluster. Usage: python.sh SOURCE_ROOT BUILD_DIR
set -euo pipefail
root="$1"
build="$(cd "$2" && pwd)"
venv="$build/pyvenv"
rm -rf "$venv"
/usr/bin/python3 -m venv --system-site-packages "$venv"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# build from a copy: setuptools writes build/ and egg-info next to setup.py
cp -r "$root/bindings/python" "$work/src"
FLAME_SOURCE_DIR="$root" FLAME_BUILD_DIR="$build" "$venv/bin/pip" install -q --no-build-isolation --no-index "$work/src"
cd "$work"
"$venv/bin/python" -c 'import flame, sys; print("flame", flame.__version__, "from", flame.__file__)'
FLAME_BUILD_DIR="$build" "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/bindings/python/tests"
