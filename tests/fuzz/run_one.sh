#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS on its seed corpus:
#   run_one.sh FUZZER SEED_DIR SECONDS [WORK_DIR]
# New corpus entries and crash reproducers go to WORK_DIR (default: a
# temporary directory, removed afterwards), never into the seed corpus.
# Prints one summary line; exits non-zero on a crash, a leak, an
# out-of-memory or a timeout, naming the reproducer. FUZZ_SEED: libFuzzer's
# -seed (default 0: a random one).
set -uo pipefail
fuzzer="$1" seeds="$2" secs="$3" work="${4:-}"
name="$(basename "$fuzzer")"
if [ -z "$work" ]; then
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work/corpus" "$work/artifacts"
log="$work/log"
touch "$work/.start" # reproducers of earlier runs in a kept WORK_DIR are not news
dict=()
[ -f "$seeds.dict" ] && dict=(-dict="$seeds.dict")
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
"$fuzzer" -max_total_time="$secs" -seed="${FUZZ_SEED:-0}" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "${dict[@]}" \
    "$work/corpus" "$seeds" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
corp=$(ls "$work/corpus" | wc -l)
printf '%-14s %4ss  execs %-9s %6s/s  cov %-5s ft %-6s new-corpus %-5s rss %sMB' \
    "$name" "$secs" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$corp" "${rss:-?}"
crash=$(find "$work/artifacts" -type f -newer "$work/.start" -printf '%f\n' | head -1)
if [ $rc -ne 0 ] || [ -n "$crash" ]; then
    echo "  FINDING"
    grep -m1 -E '^==[0-9]+==ERROR|runtime error|ERROR: libFuzzer|^fuzz:' "$log" | sed 's/^/    /'
    [ -n "$crash" ] && echo "    reproducer: $work/artifacts/$crash (run: $fuzzer $work/artifacts/$crash)"
    echo "    log: $log"
    [ -z "${4:-}" ] && { tail -40 "$log"; trap - EXIT; echo "    (kept $work)"; }
    exit 1
fi
echo "  ok"
