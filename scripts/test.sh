#!/usr/bin/env bash
# The whole test suite: installs missing Debian packages (as root), builds,
# runs every test, then runs them again under AddressSanitizer + UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
echo "== build"
scripts/build.sh build
echo "== tests"
meson test -C build --print-errorlogs --num-processes 2
echo "== tests under ASan+UBSan"
scripts/build.sh build-asan -Dsanitize=true -Db_lundef=false
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp":print_suppressions=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3
echo "test.sh: all tests passed"
