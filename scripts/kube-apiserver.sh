#!/usr/bin/env bash
# A real Kubernetes API server for tests (no kubelet, no controller manager):
#   kube-apiserver.sh build        builds kube-apiserver once into the cache, prints its path
#   kube-apiserver.sh path         prints the cached binary's path (exit 1 when not built)
#   kube-apiserver.sh start DIR    etcd + kube-apiserver on free loopback ports; writes
#                                  DIR/kubeconfig (admin, token auth), DIR/env (ports, tokens)
#   kube-apiserver.sh stop DIR     stops what `start DIR` started (by the pids it wrote)
#   kube-apiserver.sh restart-apiserver DIR   stops and starts kube-apiserver only (etcd keeps its data)
# Exit 77 (with a printed reason) where Go cannot build it: tests map that to a skip.
#
# The build (~8 min on 2 cores, 146 MB) follows TOOLCHAIN.md: the k8s.io/kubernetes module from
# the Go module proxy, its staging replaces turned into the published v0.X.Y modules. It is cached
# outside the repo in ${FLAME_KUBE_CACHE:-~/.cache/flame/kube}/<version>/, keyed by version, under
# a flock so two callers never build twice.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.34.4}
CACHE_ROOT=${FLAME_KUBE_CACHE:-$HOME/.cache/flame/kube}
CACHE=$CACHE_ROOT/$KUBE_VERSION
BIN=$CACHE/kube-apiserver

die() { echo "kube-apiserver.sh: $*" >&2; exit 1; }
skip() { echo "kube-apiserver.sh: SKIP: $*" >&2; exit 77; }

go_ok() {
    command -v go >/dev/null 2>&1 || return 1
    # k8s 1.34 needs Go >= 1.24 (Debian 12's 1.19 cannot build it)
    local v; v=$(go env GOVERSION 2>/dev/null | sed 's/^go//') || return 1
    local maj=${v%%.*} rest=${v#*.}; local min=${rest%%.*}
    [ "$maj" -gt 1 ] || { [ "$maj" -eq 1 ] && [ "$min" -ge 24 ]; }
}

do_build() {
    [ -x "$BIN" ] && { echo "$BIN"; return 0; }
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
    [ -x "$BIN" ] && { echo "$BIN"; return 0; }
    go_ok || skip "no Go >= 1.24 on PATH ($(command -v go || echo none)): cannot build kube-apiserver $KUBE_VERSION"
    local minor=${KUBE_VERSION#v1.}   # 34.4 -> staging modules are v0.34.4
    local work="$CACHE/src"
    rm -rf "$work"
    echo "kube-apiserver.sh: building kube-apiserver $KUBE_VERSION into $CACHE (about 8 minutes on 2 cores)" >&2
    local started=$SECONDS
    local dir
    dir=$(GOFLAGS= go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
          sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') ||
        skip "go mod download k8s.io/kubernetes@$KUBE_VERSION failed (no module proxy?)"
    [ -n "$dir" ] && [ -d "$dir" ] || skip "go mod download gave no module directory"
    cp -r "$dir" "$work"
    chmod -R u+w "$work"
    rm -f "$work"/go.work*
    # drop the staging replaces and pin each k8s.io/<x> v0.0.0 to the published v0.<minor>
    sed -i -e '/=> \.\/staging\//d' \
        -e 's#^\(\s*k8s\.io/[^ ]*\) v0\.0\.0\(\s.*\)\?$#\1 v0.'"$minor"'\2#' "$work/go.mod"
    if ! (cd "$work" && GOWORK=off GOFLAGS=-mod=mod nice go build -o "$BIN.tmp" ./cmd/kube-apiserver) >&2; then
        rm -f "$BIN.tmp"
        skip "go build of kube-apiserver $KUBE_VERSION failed"
    fi
    mv "$BIN.tmp" "$BIN"
    rm -rf "$work"
    echo "kube-apiserver.sh: built in $((SECONDS - started)) s" >&2
    echo "$BIN"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_apiserver() {
    local d=$1
    # shellcheck disable=SC1091
    . "$d/env"
    "$BIN" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --secure-port="$API_PORT" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
        --tls-cert-file="$d/pki/server.crt" --tls-private-key-file="$d/pki/server.key" \
        --client-ca-file="$d/pki/ca.crt" \
        --service-account-key-file="$d/pki/sa.pub" \
        --service-account-signing-key-file="$d/pki/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc \
        --token-auth-file="$d/tokens.csv" \
        --authorization-mode=RBAC \
        --disable-admission-plugins=ServiceAccount \
        --service-cluster-ip-range=10.96.0.0/16 \
        --storage-backend=etcd3 \
        >"$d/apiserver.log" 2>&1 &
    echo $! >"$d/apiserver.pid"
    local i
    for i in $(seq 1 180); do   # bounded: 90 s
        if curl -s --max-time 2 --cacert "$d/pki/ca.crt" -H "Authorization: Bearer $ADMIN_TOKEN" \
            "https://127.0.0.1:$API_PORT/readyz" 2>/dev/null | grep -q '^ok$'; then
            return 0
        fi
        kill -0 "$(cat "$d/apiserver.pid")" 2>/dev/null ||
            { tail -20 "$d/apiserver.log" >&2; die "kube-apiserver exited (log: $d/apiserver.log)"; }
        sleep 0.5
    done
    tail -20 "$d/apiserver.log" >&2
    die "kube-apiserver not ready after 90 s (log: $d/apiserver.log)"
}

stop_pid() {
    local f=$1 pid
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill "$pid" 2>/dev/null; then
        local i
        for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

do_start() {
    local d=${1:?start DIR}
    [ -x "$BIN" ] || do_build >/dev/null
    command -v etcd >/dev/null || die "etcd not found (Debian package etcd-server; scripts/deps.sh installs it)"
    mkdir -p "$d/pki"
    d=$(cd "$d" && pwd)
    local p=$d/pki
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=flame-test-kube-ca \
        -keyout "$p/ca.key" -out "$p/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj /CN=kube-apiserver \
        -keyout "$p/server.key" -out "$p/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >"$p/san.ext"
    openssl x509 -req -in "$p/server.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
        -days 2 -extfile "$p/san.ext" -out "$p/server.crt" 2>/dev/null
    openssl genrsa -out "$p/sa.key" 2048 2>/dev/null
    openssl rsa -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
    local admin flame norights
    admin=$(openssl rand -hex 16); flame=$(openssl rand -hex 16); norights=$(openssl rand -hex 16)
    # token,user,uid,"groups": admin is in system:masters; the others get what RBAC grants them
    {
        echo "$admin,admin,1,system:masters"
        echo "$flame,flame-provider,2,flame"
        echo "$norights,nobody,3,nobody"
    } >"$d/tokens.csv"
    local etcd_port etcd_peer api_port
    etcd_port=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
    cat >"$d/env" <<EOF
ETCD_PORT=$etcd_port
API_PORT=$api_port
ADMIN_TOKEN=$admin
FLAME_TOKEN=$flame
NORIGHTS_TOKEN=$norights
KUBE_SERVER=https://127.0.0.1:$api_port
KUBE_CA=$p/ca.crt
EOF
    etcd --name flame-test --data-dir "$d/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-cluster "flame-test=http://127.0.0.1:$etcd_peer" \
        >"$d/etcd.log" 2>&1 &
    echo $! >"$d/etcd.pid"
    local i
    for i in $(seq 1 60); do
        curl -s --max-time 2 "http://127.0.0.1:$etcd_port/health" 2>/dev/null | grep -q true && break
        kill -0 "$(cat "$d/etcd.pid")" 2>/dev/null || { tail -20 "$d/etcd.log" >&2; die "etcd exited"; }
        [ "$i" -eq 60 ] && die "etcd not healthy after 30 s (log: $d/etcd.log)"
        sleep 0.5
    done
    start_apiserver "$d"
    write_kubeconfig "$d/kubeconfig" "$admin" "$d"
    write_kubeconfig "$d/kubeconfig.flame" "$flame" "$d"
    write_kubeconfig "$d/kubeconfig.norights" "$norights" "$d"
    echo "kube-apiserver.sh: serving at https://127.0.0.1:$api_port (kubeconfig: $d/kubeconfig)"
}

write_kubeconfig() {
    local f=$1 token=$2 d=$3
    # shellcheck disable=SC1091
    . "$d/env"
    cat >"$f" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: flame-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $d/pki/ca.crt
users:
- name: flame-test
  user:
    token: $token
contexts:
- name: flame-test
  context:
    cluster: flame-test
    user: flame-test
    namespace: default
current-context: flame-test
EOF
}

do_stop() {
    local d=${1:?stop DIR}
    stop_pid "$d/apiserver.pid"
    stop_pid "$d/etcd.pid"
}

case "${1:-}" in
    build) do_build ;;
    path) [ -x "$BIN" ] && echo "$BIN" || exit 1 ;;
    start) do_start "${2:-}" ;;
    stop) do_stop "${2:-}" ;;
    restart-apiserver)
        stop_pid "${2:?restart-apiserver DIR}/apiserver.pid"
        start_apiserver "$(cd "$2" && pwd)" ;;
    stop-apiserver) stop_pid "${2:?stop-apiserver DIR}/apiserver.pid" ;;
    start-apiserver) start_apiserver "$(cd "${2:?start-apiserver DIR}" && pwd)" ;;
    *) echo "usage: $0 build|path|start DIR|stop DIR|restart-apiserver DIR|stop-apiserver DIR|start-apiserver DIR" >&2; exit 2 ;;
esac
