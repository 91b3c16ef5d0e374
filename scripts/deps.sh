#!/usr/bin/env bash
# Installs the Debian 12 packages Flame in C needs to build and test, when
# they are missing (as root; otherwise it only reports what is missing).
set -euo pipefail
# Rust for the flame-rs 0.7.0 ecosystem test (not a Debian package: too old)
"$(dirname "$0")/rust.sh" || echo "deps: no Rust toolchain; the flame-rs test will skip" >&2
pkgs=(gcc pkg-config meson ninja-build
      libgrpc-dev libprotobuf-c-dev protobuf-c-compiler libssl-dev libcurl4-openssl-dev libarchive-dev
      libcjson-dev libbson-dev libzstd-dev check libsqlite3-dev libyaml-dev libseccomp-dev
      libmicrohttpd-dev
      python3 python3-dev python3-venv python3-setuptools python3-wheel
      python3-grpcio python3-protobuf python3-pytest protobuf-compiler protobuf-compiler-grpc
      clang libclang-rt-14-dev     # the fuzz targets only (scripts/fuzz.sh)
      golang-go                    # the Go binding (Debian 12: Go 1.19, what bindings/go/go.mod asks)
      qemu-system-x86              # the microvm sandbox level; its kernel and busybox: scripts/microvm-image.sh
      mmdebstrap buildah umoci systemd  # deployment artefacts (scripts/image.sh, systemd-analyze)
      prometheus                   # the metrics test scrapes the daemons with it (tests/integration/test_metrics.sh)
      etcd-server)                 # the kubernetes provider's test (scripts/kube-apiserver.sh)
# kubectl for that test: Debian's kubernetes-client, unless a kubectl is there
command -v kubectl >/dev/null || pkgs+=(kubernetes-client)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages (run as root to install): ${missing[*]}" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
