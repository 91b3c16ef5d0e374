#!/usr/bin/env bash
# Starts a local Flame cluster from a build directory, with mutual TLS:
# creates (once) a cluster CA and the certificates of the session manager,
# of this host's executor manager and of the current user (role admin),
# starts a session manager, the object cache (port $FLAME_CACHE_PORT, default
# 9090; grpcs with the cluster CA) and an executor manager in the background (state,
# certificates and logs under $FLAME_HOME, default ~/.flame; port
# $FLAME_PORT, default 8080), writes the client config $FLAME_HOME/flame.yaml,
# runs flmping and `flmctl list -s` over mTLS, and leaves the cluster running.
# scripts/quickstart.sh is this after installing packages and building.
#   scripts/local_cluster.sh [--build DIR]             start (or reuse) it
#   scripts/local_cluster.sh [--build DIR] --insecure  the same over plaintext
#                              on loopback, no certificates (development only)
#   scripts/local_cluster.sh --stop                    stop it
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build="$root/build"
export FLAME_HOME="${FLAME_HOME:-$HOME/.flame}"
port="${FLAME_PORT:-8080}"
pidfile_sm="$FLAME_HOME/session-manager.pid"
pidfile_em="$FLAME_HOME/executor-manager.pid"
pidfile_cache="$FLAME_HOME/object-cache.pid"
cache_port="${FLAME_CACHE_PORT:-9090}"
modefile="$FLAME_HOME/quickstart.mode"
ca="$FLAME_HOME/ca"
certs="$FLAME_HOME/certs"
marker="# written by scripts/quickstart.sh (rewritten while this line is here)"

usage() { # usage EXIT_CODE
    sed -n '11,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit "$1"
}

# ---- is what runs and answers ours? (the truth checks) ----
# ours PIDFILE: the pid in it runs one of our daemons (not a pid the system
# gave to something else since)
ours() {
    [ -f "$1" ] || return 1
    local pid exe
    pid=$(cat "$1")
    kill -0 "$pid" 2>/dev/null || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 0 # no /proc: trust the pid
    case "$(basename "${exe% (deleted)}")" in flame-*) return 0 ;; *) return 1 ;; esac
}
# alive PIDFILE: the process we just started still runs (while it starts it
# is still setsid or nohup on its way to the daemon)
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# listener_pids PORT: the pids listening on TCP PORT, as far as ss can tell
listener_pids() {
    ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}
port_in_use() { # PORT
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q . && return 0
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
describe_pids() { # PID... -> "pid 12 (name), ..."
    local out="" p
    for p in "$@"; do out="$out${out:+, }pid $p ($(ps -o comm= -p "$p" 2>/dev/null || echo '?'))"; done
    echo "$out"
}
# check_port_free PORT WHAT: before our WHAT starts, PORT must be free.
check_port_free() {
    port_in_use "$1" || return 0
    local pids
    pids=$(listener_pids "$1" | tr '\n' ' ')
    echo "local_cluster: port $1 is already taken by another program${pids:+: $(describe_pids $pids)}," >&2
    echo "  not by this cluster's $2; stop it, or start this cluster on another port" >&2
    echo "  (FLAME_PORT, FLAME_CACHE_PORT)" >&2
    exit 1
}
# check_listener_is_ours PORT PIDFILE WHAT: once it answers, what listens on
# PORT is our WHAT.
check_listener_is_ours() {
    local pids
    pids=$(listener_pids "$1")
    [ -n "$pids" ] || return 0 # ss cannot tell: the check before the start stands
    if ! grep -qx "$(cat "$2")" <<<"$pids"; then
        echo "local_cluster: another program answers on port $1 ($(describe_pids $pids))," \
            "not this cluster's $3; stop it or pick another port" >&2
        exit 1
    fi
}

stop() {
    for f in "$pidfile_em" "$pidfile_cache" "$pidfile_sm"; do
        if ours "$f"; then
            pid=$(cat "$f")
            kill "$pid"
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            echo "stopped $(basename "$f" .pid) ($pid)"
        fi
        rm -f "$f"
    done
}

mode=tls
while [ $# -gt 0 ]; do
    case "$1" in
        --stop) stop; rm -f "$modefile"; exit 0 ;;
        --insecure) mode=insecure ;;
        --build) [ $# -ge 2 ] || usage 2; build=$(cd "$2" && pwd); shift ;;
        -h|--help) usage 0 ;;
        *) echo "local_cluster: unknown option $1" >&2; usage 2 ;;
    esac
    shift
done
flmadm="$build/cli/flmadm"
flmctl="$build/cli/flmctl"
if [ "$mode" = insecure ]; then
    cat >&2 <<'EOF'
################################################################################
## --insecure: PLAINTEXT gRPC on 127.0.0.1, no certificates.
## Every local process is an admin of this cluster and nothing is encrypted.
## For development on this machine only; without --insecure the cluster
## requires mutual TLS.
################################################################################
EOF
fi

mkdir -p "$FLAME_HOME/logs"
chmod 700 "$FLAME_HOME"

# A running cluster of the other mode, or on another port, is restarted.
if { ours "$pidfile_sm" || ours "$pidfile_em" || ours "$pidfile_cache"; } &&
    [ "$(cat "$modefile" 2>/dev/null)" != "$mode $port $cache_port" ]; then
    echo "== restarting the cluster in $mode mode on port $port (object cache $cache_port)"
    stop
fi
# before anything is written: a port someone else has is an error
ours "$pidfile_sm" || check_port_free "$port" "session manager"
ours "$pidfile_cache" || check_port_free "$cache_port" "object cache"

# The CA and the three certificates, made once; a new CA re-issues them all.
setup_certs() {
    local force=()
    if [ ! -f "$ca/ca.crt" ]; then
        echo "== creating the cluster CA in $ca"
        "$flmadm" ca init --dir "$ca" --name "Flame CA $(hostname)"
        force=(--force)
    fi
    issue_once() { # KIND NAME [options]
        local kind=$1 name=$2; shift 2
        local out="$certs/$kind"
        if [ ${#force[@]} -eq 0 ] && [ -f "$out/$name.crt" ] && [ -f "$out/$name.key" ]; then
            return 0
        fi
        "$flmadm" issue "$kind" "$name" --dir "$ca" --out "$out" "${force[@]}" "$@"
    }
    issue_once server flame-session-manager
    issue_once server flame-object-cache
    issue_once node "$node"
    issue_once user "$user" --role admin
}

user=$(id -un)
node=$(hostname)   # the executor manager's node name (its default)
if [ "$mode" = tls ]; then
    scheme=https
    setup_certs
    server_crt="$certs/server/flame-session-manager.crt"
    server_key="$certs/server/flame-session-manager.key"
    node_crt="$certs/node/$node.crt" node_key="$certs/node/$node.key"
    user_crt="$certs/user/$user.crt" user_key="$certs/user/$user.key"
    tls_cluster=$(cat <<YAML
  tls:
    cert_file: "$server_crt"
    key_file: "$server_key"
    ca_file: "$ca/ca.crt"
    mutual: true
    crl_file: "$ca/crl.pem"
YAML
)
    tls_context=$(cat <<YAML
      tls:
        ca_file: "$ca/ca.crt"
        cert_file: "$user_crt"
        key_file: "$user_key"
YAML
)
    cache_endpoint="grpcs://127.0.0.1:$cache_port"
    tls_cache=$(cat <<YAML
  tls:
    cert_file: "$certs/server/flame-object-cache.crt"
    key_file: "$certs/server/flame-object-cache.key"
    ca_file: "$ca/ca.crt"
YAML
)
    tls_cache_context=$(cat <<YAML
      tls:
        ca_file: "$ca/ca.crt"
YAML
)
else
    scheme=http tls_cluster="" tls_context="" tls_cache="" tls_cache_context=""
    cache_endpoint="grpc://127.0.0.1:$cache_port"
fi
endpoint="$scheme://127.0.0.1:$port"

cat >"$FLAME_HOME/cluster.yaml" <<YAML
$marker
cluster:
  name: flame
  endpoint: "$endpoint"
  storage: "sqlite://$FLAME_HOME/flame.db"
  resreq: "cpu=1,mem=1g"
  schedule_interval: 500
$tls_cluster
cache:
  endpoint: "$cache_endpoint"
  storage: "fs://$FLAME_HOME/cache"
$tls_cache
YAML

# The client config: clients (flmctl, flmping, Python, Go) find the cluster
# and the user's certificate with no flags. A file of the user's own is kept
# aside, not lost.
client_cfg="$FLAME_HOME/flame.yaml"
if [ -f "$client_cfg" ] && ! grep -qxF "$marker" "$client_cfg"; then
    backup="$client_cfg.$(date +%Y%m%d%H%M%S).bak"
    mv "$client_cfg" "$backup"
    echo "local_cluster: your $client_cfg was moved to $backup" >&2
fi
cat >"$client_cfg" <<YAML
$marker
current-context: flame
contexts:
  - name: flame
    cluster:
      endpoint: "$endpoint"
$tls_context
    cache:
      endpoint: "$cache_endpoint"
$tls_cache_context
YAML
echo "$mode $port $cache_port" >"$modefile"

# Our own calls name the files explicitly, so a stray FLAME_* variable of the
# caller's does not change what is checked.
export FLAME_CONFIG="$client_cfg"
unset FLAME_ENDPOINT FLAME_CA_FILE FLAME_CERT_FILE FLAME_KEY_FILE

if ! ours "$pidfile_sm"; then
    setsid nohup "$build/daemons/flame-session-manager" --config "$FLAME_HOME/cluster.yaml" \
        >>"$FLAME_HOME/logs/session-manager.log" 2>&1 </dev/null &
    echo $! >"$pidfile_sm"
fi
for i in $(seq 100); do
    "$flmctl" list -a >/dev/null 2>&1 && break
    if ! alive "$pidfile_sm" || [ "$i" = 100 ]; then
        echo "local_cluster: the session manager did not start; see $FLAME_HOME/logs/session-manager.log" >&2
        tail -5 "$FLAME_HOME/logs/session-manager.log" >&2
        exit 1
    fi
    sleep 0.1
done
check_listener_is_ours "$port" "$pidfile_sm" "session manager"
if ! ours "$pidfile_cache"; then
    setsid nohup "$build/daemons/flame-object-cache" --config "$FLAME_HOME/cluster.yaml" \
        >>"$FLAME_HOME/logs/object-cache.log" 2>&1 </dev/null &
    echo $! >"$pidfile_cache"
fi
for i in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$cache_port") 2>/dev/null && break
    if ! alive "$pidfile_cache" || [ "$i" = 100 ]; then
        echo "local_cluster: the object cache did not start; see $FLAME_HOME/logs/object-cache.log" >&2
        tail -5 "$FLAME_HOME/logs/object-cache.log" >&2
        exit 1
    fi
    sleep 0.1
done
check_listener_is_ours "$cache_port" "$pidfile_cache" "object cache"
if ! ours "$pidfile_em"; then
    # the executor manager speaks for its node with the node's certificate
    em_tls=()
    [ "$mode" = tls ] && em_tls=(--tls-cert "$node_crt" --tls-key "$node_key")
    setsid nohup "$build/daemons/flame-executor-manager" --config "$FLAME_HOME/cluster.yaml" \
        --node "$node" --work-dir "$FLAME_HOME/work" "${em_tls[@]}" \
        >>"$FLAME_HOME/logs/executor-manager.log" 2>&1 </dev/null &
    echo $! >"$pidfile_em"
fi
for i in $(seq 100); do
    # our node, Ready (a node of someone else's would not do)
    "$flmctl" list -n 2>/dev/null | grep -qE "^ $node +[^ ]+ +Ready " && break
    if ! alive "$pidfile_em" || [ "$i" = 100 ]; then
        echo "local_cluster: the executor manager did not register; see $FLAME_HOME/logs/executor-manager.log" >&2
        tail -5 "$FLAME_HOME/logs/executor-manager.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [ "$mode" = tls ]; then
    echo "== cluster up at $endpoint with mutual TLS (you are $user, role admin; state and logs in $FLAME_HOME)"
    echo "== object cache at $cache_endpoint (TLS, the cluster CA)"
else
    echo "== cluster up at $endpoint, PLAINTEXT (--insecure; state and logs in $FLAME_HOME)"
    echo "== object cache at $cache_endpoint"
fi
"$build/cli/flmping"
echo
"$flmctl" list -s
echo
if [ "$client_cfg" != "$HOME/.flame/flame.yaml" ]; then
    echo "Clients find this cluster with: export FLAME_CONFIG=$client_cfg"
fi
echo "The cluster keeps running: build/cli/flmctl list -s | build/cli/flmping -t 1000 | scripts/quickstart.sh --stop"
[ "$mode" = tls ] && echo "Certificates: build/cli/flmadm list (see README, Certificates)"
exit 0
