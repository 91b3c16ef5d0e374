#!/usr/bin/env bash
# Integration: scripts/local_cluster.sh (what scripts/quickstart.sh runs once
# it has built) in a private HOME on a free port: the --insecure plaintext
# cluster, then the default one with mutual TLS: the CA and certificates it
# makes, the configs it writes, clients that find the cluster with no flags,
# clients without the right credentials refused, a second run reusing
# everything, a user added and revoked with flmadm, --stop. Usage: test_quickstart.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src="$1" build="$2"
tmp=$(mktemp -d)
. "$(dirname "$0")/tap.sh"
export HOME="$tmp/home"
unset FLAME_HOME FLAME_CONFIG FLAME_ENDPOINT FLAME_CA_FILE FLAME_CERT_FILE FLAME_KEY_FILE
FLAME_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FLAME_PORT
FLAME_CACHE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FLAME_CACHE_PORT
fh="$HOME/.flame"
lc() { "$src/scripts/local_cluster.sh" --build "$build" "$@"; }
cleanup() { lc --stop >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
# bounded: a cluster whose executor manager died would leave flmping waiting
flmctl=(timeout 60 "$build/cli/flmctl")
flmping=(timeout 60 "$build/cli/flmping")
mode() { stat -c %a "$1" 2>&1; }
logs() { tail -n 20 "$fh"/logs/*.log 2>&1; }

# ---- a foreign session manager on the port is an error, not "cluster up" ----
fport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/daemons/flame-session-manager" --endpoint "http://127.0.0.1:$fport" --storage none \
    >"$tmp/foreign.log" 2>&1 &
fpid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$fport") 2>/dev/null && break; sleep 0.1; done
out=$(FLAME_PORT=$fport lc --insecure 2>&1); rc=$?
if [ "$rc" = 1 ] && grep -q "port $fport is already taken by another program" <<<"$out" &&
    ! grep -q 'cluster up' <<<"$out"; then
    ok "a foreign session manager on FLAME_PORT is an error that says so"
else
    bad "foreign session manager: exit $rc" "$out"
fi
grep -q "pid $fpid (flame-session-m" <<<"$out" && ok "the error names the foreign process" ||
    bad "the foreign process is not named" "$out"
[ ! -e "$fh/flame.yaml" ] && ok "nothing was written for the foreign port" || bad "a config was written" "$(cat "$fh/flame.yaml")"
kill "$fpid"; wait "$fpid" 2>/dev/null
# a plain listener (not Flame at all) too
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); print("up",flush=True); time.sleep(120)' \
    "$fport" >"$tmp/listener.out" 2>&1 &
lpid=$!
for _ in $(seq 100); do grep -q up "$tmp/listener.out" && break; sleep 0.1; done
check "any program on FLAME_PORT is an error" 1 "port $fport is already taken" -- env FLAME_PORT="$fport" "$src/scripts/local_cluster.sh" --build "$build" --insecure
check "a program on FLAME_CACHE_PORT too" 1 "not by this cluster's object cache" -- env FLAME_CACHE_PORT="$fport" "$src/scripts/local_cluster.sh" --build "$build" --insecure
kill "$lpid"; wait "$lpid" 2>/dev/null

mkdir -p "$fh"
printf 'current-context: mine\ncontexts: []\n' >"$fh/flame.yaml"

# ---- --insecure ----
out=$(lc --insecure 2>&1); rc=$?
[ "$rc" = 0 ] && ok "--insecure starts a cluster" || bad "--insecure: exit $rc" "$out
$(logs)"
grep -q 'PLAINTEXT gRPC' <<<"$out" && ok "--insecure says so loudly" || bad "no warning" "$out"
[ "$(grep -cE '^ flmping-[^ ]+ +[0-9]+ +Succeed ' <<<"$out")" = 10 ] && ok "--insecure: flmping ran 10 tasks" || bad "flmping" "$out"
grep -q "endpoint: \"http://127.0.0.1:$FLAME_PORT\"" "$fh/cluster.yaml" && ok "--insecure: an http endpoint" ||
    bad "--insecure cluster.yaml" "$(cat "$fh/cluster.yaml")"
ls "$fh"/flame.yaml.*.bak >/dev/null 2>&1 && grep -q 'current-context: mine' "$fh"/flame.yaml.*.bak &&
    ok "the user's own flame.yaml is moved aside" || bad "the user's flame.yaml is lost"
check "a client finds the plaintext cluster with no flags" 0 'flmping' -- "${flmctl[@]}" list -a

# ---- mutual TLS (the default) ----
out=$(lc 2>&1); rc=$?
[ "$rc" = 0 ] && ok "the default starts a cluster with mutual TLS" || bad "default: exit $rc" "$out
$(logs)"
grep -q 'restarting the cluster in tls mode' <<<"$out" && ok "the plaintext cluster is restarted" ||
    bad "no restart" "$out"
grep -q 'with mutual TLS' <<<"$out" && ok "it says mutual TLS" || bad "no mutual TLS line" "$out"
[ "$(grep -cE '^ flmping-[^ ]+ +[0-9]+ +Succeed ' <<<"$out")" = 10 ] && ok "flmping ran 10 tasks over mTLS" || bad "flmping over mTLS" "$out"
[ "$(mode "$fh/ca")" = 700 ] && ok "the CA dir is 0700" || bad "the CA dir is $(mode "$fh/ca")"
user=$(id -un) host=$(hostname)
for k in "$fh/ca/ca.key" "$fh/certs/server/flame-session-manager.key" "$fh/certs/node/$host.key" \
    "$fh/certs/user/$user.key"; do
    [ "$(mode "$k")" = 600 ] && ok "$(basename "$k") is 0600" || bad "$k is $(mode "$k")"
done
check "flmadm lists the four certificates" 0 '' -- test "$("$build/cli/flmadm" list | grep -c 'Valid$')" = 4
check "the user is an admin" 0 " $user +admin " -- "$build/cli/flmadm" list
for want in "endpoint: \"https://127.0.0.1:$FLAME_PORT\"" "mutual: true" "crl_file: \"$fh/ca/crl.pem\"" \
    "ca_file: \"$fh/ca/ca.crt\"" "endpoint: \"grpcs://127.0.0.1:$FLAME_CACHE_PORT\"" \
    "cert_file: \"$fh/certs/server/flame-object-cache.crt\""; do
    grep -qF "$want" "$fh/cluster.yaml" && ok "cluster.yaml: $want" || bad "cluster.yaml lacks $want" "$(cat "$fh/cluster.yaml")"
done
for want in "endpoint: \"https://127.0.0.1:$FLAME_PORT\"" "cert_file: \"$fh/certs/user/$user.crt\"" \
    "key_file: \"$fh/certs/user/$user.key\"" "ca_file: \"$fh/ca/ca.crt\""; do
    grep -qF "$want" "$fh/flame.yaml" && ok "flame.yaml: $want" || bad "flame.yaml lacks $want" "$(cat "$fh/flame.yaml")"
done
grep -qF "endpoint: \"grpcs://127.0.0.1:$FLAME_CACHE_PORT\"" "$fh/flame.yaml" && ok "flame.yaml: the cache endpoint" ||
    bad "flame.yaml lacks the cache endpoint" "$(cat "$fh/flame.yaml")"
check "the object cache listens" 0 '' -- bash -c "exec 3<>/dev/tcp/127.0.0.1/$FLAME_CACHE_PORT"
check "a client finds the cluster and the certificate with no flags" 0 'flmping' -- "${flmctl[@]}" list -a
check "flmping with no flags" 0 '<10> tasks was completed' -- "${flmping[@]}"
check "a plaintext client is refused" 1 '' -- env FLAME_ENDPOINT="http://127.0.0.1:$FLAME_PORT" "${flmctl[@]}" list -a
printf 'current-context: c\ncontexts:\n  - name: c\n    cluster:\n      endpoint: "https://127.0.0.1:%s"\n      tls:\n        ca_file: "%s"\n' \
    "$FLAME_PORT" "$fh/ca/ca.crt" >"$tmp/nocert.yaml"
check "a TLS client without a certificate is refused" 1 '' -- env FLAME_CONFIG="$tmp/nocert.yaml" "${flmctl[@]}" list -a
"$build/cli/flmadm" ca init --dir "$tmp/other" >/dev/null && "$build/cli/flmadm" issue user "$user" --role admin \
    --dir "$tmp/other" --out "$tmp/other-out" >/dev/null
check "an admin certificate of another CA is refused" 1 '' -- env FLAME_CONFIG="$tmp/nocert.yaml" \
    FLAME_CERT_FILE="$tmp/other-out/$user.crt" FLAME_KEY_FILE="$tmp/other-out/$user.key" "${flmctl[@]}" list -a
check "the server's certificate does not make a client" 1 '' -- env FLAME_CONFIG="$tmp/nocert.yaml" \
    FLAME_CERT_FILE="$fh/certs/server/flame-session-manager.crt" \
    FLAME_KEY_FILE="$fh/certs/server/flame-session-manager.key" "${flmctl[@]}" list -a

# ---- a user added and revoked as the README says ----
check "flmadm issue user bob" 0 'user certificate of bob' -- "$build/cli/flmadm" issue user bob --out "$tmp/bob"
bob=(env FLAME_CONFIG="$tmp/nocert.yaml" FLAME_CERT_FILE="$tmp/bob/bob.crt" FLAME_KEY_FILE="$tmp/bob/bob.key")
check "bob runs tasks" 0 '<2> tasks was completed' -- "${bob[@]}" "${flmping[@]}" -t 2
check "bob sees his own session only" 0 '' -- test "$("${bob[@]}" "${flmctl[@]}" list -s | grep -c '^ flmping-')" = 1
check "bob may not list the nodes" 1 'user "bob" may not' -- "${bob[@]}" "${flmctl[@]}" list -n
check "flmadm revoke bob" 0 'Revoked .*user bob' -- "$build/cli/flmadm" revoke bob
for _ in $(seq 50); do "${bob[@]}" "${flmctl[@]}" list -s >/dev/null 2>&1 || break; sleep 0.1; done
check "bob is refused once the CRL is reloaded" 1 'certificate of bob .* is revoked' -- "${bob[@]}" "${flmctl[@]}" list -s
check "the admin is not" 0 'flmping-' -- "${flmctl[@]}" list -s

# ---- again: everything reused ----
serials=$("$build/cli/flmadm" list)
out=$(lc 2>&1); rc=$?
[ "$rc" = 0 ] && ok "a second run" || bad "second run: exit $rc" "$out"
grep -q 'creating the cluster CA\|Issued' <<<"$out" && bad "the second run made certificates" "$out" ||
    ok "the second run reuses the CA and the certificates"
grep -q 'restarting' <<<"$out" && bad "the second run restarted the cluster" "$out" || ok "and the running cluster"
[ "$serials" = "$("$build/cli/flmadm" list)" ] && ok "the index is unchanged" || bad "the index changed"

# another FLAME_PORT restarts the cluster there, and the client config follows
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$(FLAME_PORT=$nport lc 2>&1); rc=$?
[ "$rc" = 0 ] && grep -q "restarting the cluster in tls mode on port $nport" <<<"$out" &&
    ok "another FLAME_PORT restarts the cluster on it" || bad "FLAME_PORT=$nport: exit $rc" "$out"
grep -qF "endpoint: \"https://127.0.0.1:$nport\"" "$fh/flame.yaml" && ok "flame.yaml follows FLAME_PORT" ||
    bad "flame.yaml" "$(cat "$fh/flame.yaml")"
check "a client follows" 0 'flmping' -- "${flmctl[@]}" list -a

check "--stop" 0 'stopped session-manager' -- lc --stop
check "nothing listens after --stop" 1 '' -- "${flmctl[@]}" list -a
# under the sanitizer build the daemons report into their logs
if grep -q 'Sanitizer' "$fh"/logs/*.log; then bad "a sanitizer report in the daemons' logs" "$(grep -h -A5 'Sanitizer' "$fh"/logs/*.log)"
else ok "no sanitizer report in the daemons' logs"; fi

echo "$pass passed, $failn failed"
[ "$failn" -eq 0 ]
