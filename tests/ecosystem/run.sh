#!/bin/sh
# Runs one area of the ecosystem tests (tests/ecosystem/test_AREA.py) with
# the venv python of scripts/pyvenv.sh (flamepy 0.6.0, pyarrow... from PyPI).
# Exit 77 (meson: skipped) with the reason printed only when that venv cannot
# be made because PyPI is unreachable.
# Usage: run.sh AREA [pytest args...]
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
area=$1
shift
log=$(mktemp)
if ! py=$("$src/scripts/pyvenv.sh" 2>"$log"); then
    cat "$log" >&2
    rm -f "$log"
    if ! python3 -c 'import urllib.request; urllib.request.urlopen("https://pypi.org/simple/flamepy/", timeout=20)' 2>/dev/null; then
        echo "SKIP: PyPI is unreachable, so the venv with flamepy 0.6.0 and pyarrow cannot be made"
        exit 77
    fi
    echo "scripts/pyvenv.sh failed (PyPI is reachable)" >&2
    exit 1
fi
rm -f "$log"
cd "$src/tests/ecosystem"
exec "$py" -m pytest -q -p no:cacheprovider "test_$area.py" "$@"
