#!/usr/bin/env bash
# The whole test suite: installs missing Debian packages (as root), builds,
# runs every test, then runs them again under AddressSanitizer + UBSan, then
# runs each libFuzzer target for a few seconds (clang; skipped without it).
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
echo "== fuzz targets (a few seconds each, ASan+UBSan)"
if command -v clang >/dev/null || command -v clang-14 >/dev/null; then
    FUZZ_SMOKE=1 scripts/fuzz.sh "${FUZZ_SECONDS:-5}"
else
    echo "fuzz: SKIPPED, clang not installed (scripts/deps.sh installs it as root)"
fi
echo "test.sh: all tests passed"
