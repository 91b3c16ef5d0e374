#!/usr/bin/env bash
# The Go binding's tests (a real local cluster), offline: the module has no
# requirements. Then a module of its own that uses the binding as the
# README's Go section says (a replace directive to the checkout), built and
# run against a cluster. Usage: go.sh SOURCE_ROOT BUILD_DIR
# The Go used is the first of $GO, `go` on PATH and Debian's
# /usr/lib/go-1.*/bin/go whose version is at least the go line of go.mod;
# with none, the test is skipped (exit 77) saying what to install.
set -euo pipefail
root="$1"
build="$(cd "$2" && pwd)"
mod="$(cd "$root/bindings/go" && pwd)"
need=$(awk '$1 == "go" {print $2; exit}' "$mod/go.mod")
go_version() { "$1" env GOVERSION 2>/dev/null | sed 's/^go//'; }
fits() { [ "$(printf '%s\n%s\n' "$need" "$1" | sort -V | head -1)" = "$need" ]; }
go= found=()
for cand in ${GO:-} $(command -v go || true) /usr/lib/go-1.*/bin/go; do
    [ -x "$cand" ] || continue
    cand=$(readlink -f "$cand")
    case " ${found[*]:-} " in *" $cand ("*) continue ;; esac
    v=$(go_version "$cand") || continue
    [ -n "$v" ] || continue
    found+=("$cand ($v)")
    if fits "$v"; then go=$cand; break; fi
done
if [ -z "$go" ]; then
    echo "SKIP: the Go binding needs Go >= $need (bindings/go/go.mod); found: ${found[*]:-no Go at all}." \
        "On Debian 12: apt-get install golang-go (1.19), or set GO=/path/to/go" >&2
    exit 77
fi
echo "# Go: $go ($(go_version "$go"))"
export PATH="$(dirname "$go"):$PATH" GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod FLAME_BUILD_DIR="$build"
export CGO_LDFLAGS="-L$build/libflame -Wl,-rpath,$build/libflame"
tmp=$(mktemp -d)
sm= em=
cleanup() { kill $em $sm 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
export GOCACHE="${GOCACHE:-$tmp/gocache}" GOPATH="$tmp/gopath"

cd "$mod"
go vet ./...
go test -count=1 -v ./... 2>&1 | grep -E "^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go" || true
go test -count=1 ./...

# ---- a module of the user's own, as the README's Go section has it ----
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
endpoint="http://127.0.0.1:$port"
"$build/daemons/flame-session-manager" --endpoint "$endpoint" --storage none >"$tmp/sm.log" 2>&1 &
sm=$!
"$build/daemons/flame-executor-manager" --endpoint "$endpoint" --work-dir "$tmp/work" \
    --resources cpu=2,mem=2g >"$tmp/em.log" 2>&1 &
em=$!
mkdir "$tmp/myapp"
cd "$tmp/myapp"
go mod init example.com/myapp >/dev/null 2>&1
go mod edit -require=github.com/flame-in-c/flame/bindings/go@v0.0.0 \
    -replace=github.com/flame-in-c/flame/bindings/go="$mod"
cat >main.go <<'GO'
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	flame "github.com/flame-in-c/flame/bindings/go"
)

func main() {
	c, err := flame.Connect(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "connect:", err)
		os.Exit(1)
	}
	defer c.Close()
	s, err := c.CreateSession("", flame.SessionSpec{Application: "flmping"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "create session:", err)
		os.Exit(1)
	}
	defer s.Free()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := s.Invoke(ctx, []byte("{}"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "invoke:", err)
		os.Exit(1)
	}
	s.Close()
	fmt.Printf("%s\n", out)
}
GO
go build -o myapp .
for _ in $(seq 100); do "$build/cli/flmctl" --endpoint "$endpoint" list -n 2>/dev/null | grep -q " Ready " && break; sleep 0.1; done
out=$(./myapp "$endpoint")
echo "# a module of its own: $out"
grep -q '"hostname":' <<<"$out" || { echo "FAIL: the separate module's program printed: $out" >&2; exit 1; }
echo "ok - a separate module imports the binding with a replace directive, builds and runs a task"
