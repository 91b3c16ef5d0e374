#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang, ASan+UBSan) in build-fuzz
# and runs each for SECONDS (default 60) on its seed corpus:
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# New corpus entries and reproducers stay out of the repo, in $FUZZ_WORK
# (default /tmp/flame-fuzz/<target>; kept between runs, so a campaign goes on
# where the last one stopped). Prints a line per target (execs, execs/s,
# coverage, new corpus entries) and exits non-zero if any target found a
# crash, a leak, an out-of-memory or a timeout, naming the reproducer.
# FUZZ_SMOKE=1: a fresh temporary work directory per target and a fixed
# seed (the test suite).
set -uo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_sm fuzz_sm_sqlite fuzz_shim fuzz_wire fuzz_yaml fuzz_endpoint fuzz_ipc fuzz_frames
    fuzz_kube fuzz_archive fuzz_cache fuzz_h2 fuzz_serve)
cc="$(command -v clang || command -v clang-14 || true)"
if [ -z "$cc" ]; then
    echo "fuzz.sh: clang not found (Debian: clang libclang-rt-14-dev; scripts/deps.sh installs them)" >&2
    exit 1
fi
if [ ! -f build-fuzz/build.ninja ]; then
    CC="$cc" meson setup build-fuzz -Dfuzz=true -Dtests=false >/dev/null || exit 1
fi
ninja -C build-fuzz "${targets[@]/#/tests/fuzz/}" >/dev/null || { echo "fuzz.sh: build failed" >&2; exit 1; }
work_root="${FUZZ_WORK:-/tmp/flame-fuzz}"
echo "fuzz.sh: ${#targets[@]} targets, ${secs}s each, ASan+UBSan"
failed=0
for t in "${targets[@]}"; do
    work=()
    [ "${FUZZ_SMOKE:-0}" = 1 ] && export FUZZ_SEED="${FUZZ_SEED:-1}" || work=("$work_root/$t")
    # fuzz_sm_sqlite: the same scripts as fuzz_sm
    tests/fuzz/run_one.sh "build-fuzz/tests/fuzz/$t" "tests/fuzz/corpus/${t%_sqlite}" "$secs" \
        "${work[@]}" ||
        failed=1
done
if [ $failed -ne 0 ]; then
    echo "fuzz.sh: FINDINGS (see the reproducers above)"
    exit 1
fi
echo "fuzz.sh: no findings"
