#!/usr/bin/env bash
# A local Flame cluster in one command, with mutual TLS: installs missing
# Debian packages (as root), builds, then scripts/local_cluster.sh: creates
# (once) a cluster CA and the certificates of the session manager, of this
# host's executor manager and of the current user (role admin), starts the
# daemons in the background (state, certificates and logs under $FLAME_HOME,
# default ~/.flame), writes the client config $FLAME_HOME/flame.yaml, runs
# flmping and `flmctl list -s` over mTLS, and leaves the cluster running.
#   scripts/quickstart.sh             start (or reuse) the cluster and ping it
#   scripts/quickstart.sh --insecure  the same over plaintext on loopback,
#                                     without certificates (development only)
#   scripts/quickstart.sh --stop      stop it
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '9,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit "$1"; }
case "${1:-}" in
    ""|--insecure) ;;
    --stop) exec scripts/local_cluster.sh --stop ;;
    -h|--help) usage 0 ;;
    *) usage 2 ;;
esac
[ $# -le 1 ] || usage 2
scripts/deps.sh
echo "== building"
scripts/build.sh build
exec scripts/local_cluster.sh --build build "$@"
