# Sourced by the shell integration tests: TAP-like ok/bad lines and check.
# The test keeps the counts in $pass and $failn and ends with
#   echo "$pass passed, $failn failed"; [ "$failn" -eq 0 ]
pass=0 failn=0
ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { failn=$((failn + 1)); echo "not ok - $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/#   /'; }
check() { # check NAME EXPECTED_RC PATTERN -- command...
    local name="$1" want="$2" pat="$3"; shift 4
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -ne "$want" ]; then bad "$name (exit $rc, wanted $want)" "$out"; return; fi
    if [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$out"; then bad "$name (no /$pat/)" "$out"; return; fi
    ok "$name"
}
