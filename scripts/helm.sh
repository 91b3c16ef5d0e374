#!/usr/bin/env bash
# Helm for charts/flame (README, Deploying).
#   scripts/helm.sh path          builds helm once (Go module proxy) into
#                                 ${FLAME_HELM_CACHE:-~/.cache/flame/helm}/<version>/helm, prints its path
#   scripts/helm.sh certs [--ca DIR] [--flmadm PATH] [--release NAME] [--namespace NS]
#                         [--executor-managers N]
#                                 prints the chart's four TLS Secrets (kubectl apply -f -),
#                                 made by flmadm with the cluster CA in DIR (created when missing)
#   scripts/helm.sh -- ARGS...    runs that helm
# Exit 77 (with a printed reason) where helm cannot be built here (no Go, no proxy).
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.22.0}
CACHE=${FLAME_HELM_CACHE:-$HOME/.cache/flame/helm}/$HELM_VERSION
BIN=$CACHE/helm
root=$(cd "$(dirname "$0")/.." && pwd)

skip() { echo "helm.sh: SKIP: $*" >&2; exit 77; }
usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "$1"; }

build() {
    [ -x "$BIN" ] && return 0
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9
    [ -x "$BIN" ] && return 0
    command -v go >/dev/null || skip "no go on PATH: cannot build helm $HELM_VERSION"
    echo "helm.sh: building helm $HELM_VERSION into $CACHE (a few minutes)" >&2
    local tmp; tmp=$(mktemp -d "$CACHE/bin.XXXXXX")
    if ! GOBIN=$tmp GOFLAGS= nice go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2; then
        rm -rf "$tmp"
        skip "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed (no module proxy?)"
    fi
    mv "$tmp/helm" "$BIN"
    rm -rf "$tmp"
}

# certs: every key and certificate from flmadm (README, Certificates); the
# servers' certificates name their Services, each executor manager's its pod
# (the node name the session manager checks against the certificate).
certs() {
    local ca="" flmadm="" release=flame ns=default n=2
    while [ $# -gt 0 ]; do
        case "$1" in
            --ca) ca=$2; shift ;;
            --flmadm) flmadm=$2; shift ;;
            --release) release=$2; shift ;;
            --namespace) ns=$2; shift ;;
            --executor-managers) n=$2; shift ;;
            *) usage 2 ;;
        esac
        shift
    done
    [ -n "$flmadm" ] || flmadm=$(command -v flmadm || echo "$root/build/cli/flmadm")
    [ -x "$flmadm" ] || { echo "helm.sh: no flmadm ($flmadm): build first or pass --flmadm" >&2; exit 1; }
    [ -n "$ca" ] || ca=$HOME/.flame/k8s-$release-$ns/ca
    local full=$release
    case "$release" in *flame*) ;; *) full=$release-flame ;; esac
    [ -f "$ca/ca.crt" ] || "$flmadm" ca init --dir "$ca" --name "Flame CA $release.$ns" >&2
    local out; out=$(mktemp -d)
    trap 'rm -rf "$out"' RETURN
    local sm=$full-session-manager cache=$full-object-cache
    "$flmadm" issue server "$sm" --dir "$ca" --out "$out/sm" --force \
        --san "DNS:$sm,DNS:$sm.$ns,DNS:$sm.$ns.svc,DNS:$sm.$ns.svc.cluster.local" >&2
    "$flmadm" issue server "$cache" --dir "$ca" --out "$out/cache" --force \
        --san "DNS:$cache,DNS:$cache.$ns,DNS:$cache.$ns.svc,DNS:$cache.$ns.svc.cluster.local" >&2
    local args=() i
    for ((i = 0; i < n; i++)); do
        "$flmadm" issue node "$full-executor-manager-$i" --dir "$ca" --out "$out/em" --force >&2
        args+=(--from-file="$out/em/$full-executor-manager-$i.crt" --from-file="$out/em/$full-executor-manager-$i.key")
    done
    secret() { # NAME FILES...
        local name=$1; shift
        kubectl create secret generic "$name" --namespace "$ns" --dry-run=client -o yaml "$@"
        echo ---
    }
    secret "$sm-tls" --from-file=tls.crt="$out/sm/$sm.crt" --from-file=tls.key="$out/sm/$sm.key" \
        --from-file=ca.crt="$ca/ca.crt"
    secret "$cache-tls" --from-file=tls.crt="$out/cache/$cache.crt" \
        --from-file=tls.key="$out/cache/$cache.key" --from-file=ca.crt="$ca/ca.crt"
    secret "$full-executor-manager-tls" --from-file=ca.crt="$ca/ca.crt" "${args[@]}"
    # provider: kubernetes: the session manager issues each pod it makes a
    # node certificate of its own with this CA
    secret "$full-node-ca" --from-file=ca.crt="$ca/ca.crt" --from-file=ca.key="$ca/ca.key"
}

case "${1:-}" in
    path) build; echo "$BIN" ;;
    certs) shift; certs "$@" ;;
    --) shift; build; exec "$BIN" "$@" ;;
    -h|--help) usage 0 ;;
    *) usage 2 ;;
esac
