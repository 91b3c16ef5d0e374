#!/usr/bin/env bash
# Runs every command of the README's and the examples' READMEs (their ```sh
# blocks, tests/examples/doc_commands.py) as written, from a copy of the
# source tree whose build/ is the build under test, against a cluster of its
# own (FLAME_ENDPOINT), in a private HOME; checks the output documented under
# a command. Paths under /tmp/ in the docs are moved into the test's own
# directory, and /path/to/flame is the copy. The commands not run here are
# listed in SKIP with where they are tested instead, or why not.
# Usage: docs.sh SOURCE_ROOT BUILD_DIR
set -uo pipefail
root="$(cd "$1" && pwd)"
build="$(cd "$2" && pwd)"
tmp=$(mktemp -d)
. "$root/tests/integration/tap.sh"
sm= em=
cleanup() { kill $em $sm 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# command (as written, before the path moves) -> where it is tested or why not
declare -A SKIP=(
    ["scripts/quickstart.sh"]="the quick start itself: installs packages and binds port 8080 on this machine; tests/integration/test_quickstart.sh runs what it runs after building (scripts/local_cluster.sh) on a free port"
    ["scripts/test.sh"]="the whole suite, this test included (.ci/run runs it)"
    ["scripts/deps.sh"]="apt-get install as root: it changes the machine (scripts/test.sh runs it first)"
    ["meson setup build && ninja -C build"]="the build these tests run from"
    ["meson setup build-asan -Dsanitize=true -Db_lundef=false"]="scripts/test.sh builds and tests it"
    ["cd bindings/go && GOPROXY=off go test ./..."]="tests/bindings/go.sh (go-binding) runs it with a Go that fits"
    ["go mod init example.com/myapp"]="tests/bindings/go.sh (go-binding) makes such a module and runs it"
    ["go mod edit -require=github.com/flame-in-c/flame/bindings/go@v0.0.0  -replace=github.com/flame-in-c/flame/bindings/go=/path/to/flame/bindings/go"]="tests/bindings/go.sh (go-binding) makes such a module and runs it"
)

# the source tree as a user has it, with the build under test at build/
mkdir "$tmp/repo"
(cd "$root" && tar --exclude='./build*' --exclude=./.git -cf - .) | tar -xf - -C "$tmp/repo"
ln -s "$build" "$tmp/repo/build"
export HOME="$tmp/home"
mkdir -p "$HOME"
export PATH="/usr/bin:$PATH" # Debian's python3, as on a fresh machine

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FLAME_ENDPOINT="http://127.0.0.1:$port"
"$build/daemons/flame-session-manager" --endpoint "$FLAME_ENDPOINT" --storage "sqlite://$tmp/f.db" >"$tmp/sm.log" 2>&1 &
sm=$!
"$build/daemons/flame-executor-manager" --endpoint "$FLAME_ENDPOINT" --work-dir "$tmp/work" \
    --resources cpu=4,mem=4g >"$tmp/em.log" 2>&1 &
em=$!
for _ in $(seq 100); do "$build/cli/flmctl" list -n 2>/dev/null | grep -q " Ready " && break; sleep 0.1; done
# what the Certificates section has done before its commands: a CA
"$build/cli/flmadm" ca init >/dev/null || bad "flmadm ca init (setup)"

python3 "$root/tests/examples/doc_commands.py" "$root/README.md" "$root"/examples/*/README.md \
    >"$tmp/commands.jsonl" || { bad "extracting the commands"; exit 1; }
n=0
while IFS= read -r json; do
    n=$((n + 1))
    where=$(python3 -c 'import json,sys; c=json.loads(sys.argv[1]); print("%s:%d" % (c["file"].split("/./")[-1], c["line"]))' "$json")
    where=${where#"$root/"}
    cmd=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cmd"])' "$json")
    bare=$(sed 's/[[:space:]]*#.*$//' <<<"$cmd")
    if [ -n "${SKIP[$bare]+x}" ]; then
        echo "ok - $where: $bare # SKIP ${SKIP[$bare]}"
        continue
    fi
    run=${cmd//\/tmp\//$tmp\/}
    run=${run//\/path\/to\/flame/$tmp\/repo}
    out=$(cd "$tmp/repo" && timeout 600 bash -c "$run" 2>&1 </dev/null)
    rc=$?
    if [ "$rc" -ne 0 ]; then
        # pip with build isolation fetches setuptools from PyPI: unreachable, it is skipped
        if grep -q 'pip install' <<<"$bare" && ! grep -q -- '--no-build-isolation' <<<"$bare" &&
            ! python3 -c 'import urllib.request; urllib.request.urlopen("https://pypi.org/simple/setuptools/", timeout=15)' 2>/dev/null; then
            echo "ok - $where: $bare # SKIP PyPI is unreachable from here (exit $rc); its offline twin runs"
            continue
        fi
        bad "$where: $bare (exit $rc)" "$(tail -n 20 <<<"$out")"
        continue
    fi
    missing=$(python3 -c '
import json, re, sys
c = json.loads(sys.argv[1]); out = sys.stdin.read()
for e in c["expect"]:
    if not re.search("^" + e + "$", out, re.M):
        print(e)' "$json" <<<"$out")
    if [ -n "$missing" ]; then
        bad "$where: $bare (not the documented output)" "$missing
--- it printed:
$(tail -n 20 <<<"$out")"
    else
        ok "$where: $bare"
    fi
done <"$tmp/commands.jsonl"
[ "$n" -gt 10 ] || bad "only $n commands found in the READMEs"

# The README's application YAML registers as shown.
python3 - "$root/README.md" >"$tmp/app.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"An application YAML.*?```yaml\n(.*?)```", text, re.S)
print(m.group(1) if m else "")
PY
check "README: the application YAML example registers" 0 'Application my-app was registered' -- \
    "$build/cli/flmctl" register -f "$tmp/app.yaml"
check "README: and shows as written" 0 '^	LOG_LEVEL: info$' -- "$build/cli/flmctl" view -a my-app

# The installed Python package carries libflame and finds it relative to itself.
ext=$(ls "$tmp"/flame-venv/lib/python3*/site-packages/flame/_flame*.so 2>/dev/null | head -1)
if [ -z "$ext" ]; then
    bad "the README's venv has no flame extension"
else
    rp=$(readelf -d "$ext" | grep -E 'RUNPATH|RPATH')
    if grep -q "$build\|$root" <<<"$rp" || ! grep -qF '[$ORIGIN]' <<<"$rp"; then
        bad "the installed extension's RUNPATH is not \$ORIGIN" "$rp"
    else
        ok "the installed extension's RUNPATH is \$ORIGIN, no build tree"
    fi
    mkdir "$tmp/moved"
    cp -r "$(dirname "$ext")" "$tmp/moved/flame"
    # LD_LIBRARY_PATH (meson sets it to the build) would win over RUNPATH
    out=$(cd "$tmp/moved" && env -u LD_LIBRARY_PATH /usr/bin/python3 -I -c '
import glob, subprocess, sys
sys.path.insert(0, ".")
import flame
ext = glob.glob("flame/_flame*.so")[0]
print(flame.__file__)
print(subprocess.run(["ldd", ext], capture_output=True, text=True).stdout)' 2>&1)
    if grep -q "libflame.so.0 => $tmp/moved/flame/libflame.so.0" <<<"$out" && ! grep -q "$build" <<<"$out"; then
        ok "the package works moved elsewhere: libflame from beside it, not from the build"
    else
        bad "the moved package" "$out"
    fi
fi

echo "$pass passed, $failn failed"
[ "$failn" -eq 0 ]
