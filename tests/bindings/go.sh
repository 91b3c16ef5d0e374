#!/usr/bin/env bash
# The Go binding's tests (a real local cluster), offline: the module has no
# requirements. Usage: go.sh SOURCE_ROOT BUILD_DIR
set -euo pipefail
root="$1"
build="$(cd "$2" && pwd)"
command -v go >/dev/null || { echo "go.sh: Go is not installed" >&2; exit 1; }
cd "$root/bindings/go"
export GOPROXY=off GOFLAGS=-mod=mod FLAME_BUILD_DIR="$build"
export CGO_LDFLAGS="-L$build/libflame -Wl,-rpath,$build/libflame"
go vet ./...
go test -count=1 -v ./... 2>&1 | grep -E "^(=== RUN|--- |PASS|FAIL|ok|panic)|_test.go" || true
go test -count=1 ./...
