#!/usr/bin/env bash
# Makes (once) and prints the path of a Python venv with flamepy 0.6.0, pyarrow,
# uv and pytest from PyPI, for the ecosystem tests. The venv lives outside the
# repo, keyed by tests/ecosystem/requirements.txt, so a fresh clone reuses it and
# a change of requirements makes a new one. Prints the venv's python on stdout;
# everything else goes to stderr. Safe to run from several tests at once (flock).
#   FLAME_VENV_DIR   where venvs live (default ~/.cache/flame/venv)
set -euo pipefail
cd "$(dirname "$0")/.."
req=$PWD/tests/ecosystem/requirements.txt
key=$(sha256sum "$req" | cut -c1-12)
root=${FLAME_VENV_DIR:-$HOME/.cache/flame/venv}
venv=$root/$key
mkdir -p "$root"
exec 9>"$root/.lock-$key"
flock -w 900 9 || { echo "pyvenv: waited 900 s for $root/.lock-$key" >&2; exit 1; }
if [ ! -f "$venv/.complete" ]; then
    echo "pyvenv: creating $venv from $req (PyPI)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
    touch "$venv/.complete"
fi
echo "$venv/bin/python"
