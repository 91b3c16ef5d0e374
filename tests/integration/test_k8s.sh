#!/usr/bin/env bash
# Integration: the session manager with provider kubernetes against a real
# kube-apiserver (scripts/kube-apiserver.sh: etcd + kube-apiserver, no
# kubelet, so pods stay Pending). Checks the pods asked for (labels,
# resources, security context, each pod's own node certificate in a Secret
# it owns), their deletion (and their Secrets') on close, mutual TLS refused
# without a CA to sign pods' certificates, an API server restart, a session
# manager restart (adopt what is wanted, delete what is not) and a token
# without RBAC rights (403 in the log, the session manager serving on).
# The first run builds kube-apiserver (~8 min on 2 cores, cached in
# ~/.cache/flame/kube/); exit 77 (skip) only where Go cannot build it.
# Usage: test_k8s.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
build="$1"
src="$2"
sm="$build/daemons/flame-session-manager"
flmctl="$build/cli/flmctl"
flmping="$build/cli/flmping"
kas="$src/scripts/kube-apiserver.sh"
tmp=$(mktemp -d)
. "$(dirname "$0")/tap.sh"
pid=
# the flmping clients: children of this shell (new_session runs in it, not
# in a $(...) subshell), so they are stopped and reaped here, not left to
# run on after the test
pings=()
# running (a child that exited stays a zombie until waited for)
running() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [ "${st:0:1}" != Z ]; }
# stops the given children: SIGTERM, up to 5 s, then SIGKILL; reaps them
stop_children() {
    [ $# -eq 0 ] && return 0
    kill "$@" 2>/dev/null
    local p
    for _ in $(seq 50); do
        for p in "$@"; do running "$p" && break; p=; done
        [ -z "$p" ] && break
        sleep 0.1
    done
    kill -9 "$@" 2>/dev/null
    wait "$@" 2>/dev/null
}
kill_pings() { stop_children "${pings[@]}"; pings=(); }
cleanup() {
    kill_pings
    [ -n "$pid" ] && stop_children "$pid"
    "$kas" stop "$tmp/kube" >/dev/null 2>&1
    rm -rf "$tmp"
}
# every way out runs cleanup: a signal exits (128 + its number) through EXIT
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

command -v kubectl >/dev/null || { echo "SKIP: kubectl not installed (scripts/deps.sh)"; exit 77; }
command -v etcd >/dev/null || { echo "SKIP: etcd not installed (Debian etcd-server; scripts/deps.sh)"; exit 77; }
"$kas" build >/dev/null
rc=$?
[ $rc -eq 77 ] && { echo "SKIP: kube-apiserver cannot be built here (see above)"; exit 77; }
[ $rc -ne 0 ] && { echo "not ok - building kube-apiserver"; exit 1; }
"$kas" start "$tmp/kube" || { echo "not ok - starting the API server"; exit 1; }
. "$tmp/kube/env"
kc() { kubectl --kubeconfig "$tmp/kube/kubeconfig" --request-timeout=20s "$@"; }

# the provider's rights: pods in namespace default, for the group flame
kc apply -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: flame-provider, namespace: default}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: flame-provider, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: flame-provider}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: flame}
YAML
[ $? -eq 0 ] && ok "RBAC for the provider applied" || bad "RBAC for the provider applied"

# the cluster CA (as flmadm makes one): it signs each pod's node certificate
sh "$src/tests/tls/make_certs.sh" "$tmp/pki" >/dev/null 2>&1 || { echo "not ok - making the test PKI"; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export FLAME_ENDPOINT="http://127.0.0.1:$port"
write_config() { # KUBECONFIG
    cat >"$tmp/cluster.yaml" <<EOF
cluster:
  name: k8s-test
  endpoint: "http://127.0.0.1:$port"
  storage: "sqlite://$tmp/flame.db"
  resreq: "cpu=1,mem=1g"
  schedule_interval: 200
provider: kubernetes
kubernetes:
  namespace: default
  image: flame-executor-manager:test
  kubeconfig: $1
  endpoint: "http://flame-session-manager.flame.svc:8080"
  labels: {team: qa}
  scale_down_delay: 0
  node_ca_cert: $tmp/pki/ca.crt
  node_ca_key: $tmp/pki/ca.key
  node_cert_ttl: 2h
EOF
}
start_sm() {
    "$sm" --config "$tmp/cluster.yaml" >>"$tmp/sm.log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do "$flmctl" list -s >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "# the session manager did not come up:"; sed 's/^/#   /' "$tmp/sm.log"; return 1
}
stop_sm() { # a clean stop (a sanitizer's report would make it fail)
    kill "$pid"; wait "$pid"; local rc=$?; pid=
    [ $rc -eq 0 ] && ok "the session manager stops cleanly" ||
        bad "the session manager stops cleanly (exit $rc)" "$(tail -30 "$tmp/sm.log")"
}

# pods of ours with label selector $1: "NAME PHASE" lines
pods() {
    kc get pods -l "app.kubernetes.io/managed-by=flame,flame.io/cluster=k8s-test${1:+,$1}" \
        -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}' 2>/dev/null
}
count() { pods "$1" | grep -c . ; }
# waits (bounded: 90 s) until count SELECTOR == N
wait_count() {
    for _ in $(seq 180); do [ "$(count "$1")" = "$2" ] && return 0; sleep 0.5; done
    return 1
}
# a session of flmping with N Pending tasks (no executor will ever come)
new_session() { # N RESREQ -> its id in $sid ("" when it did not show)
    local before after
    sid=
    before=$("$flmctl" list -s | awk 'NR>1 {print $1}' | sort)
    "$flmping" -t "$1" -r "$2" >/dev/null 2>&1 &
    pings+=($!)
    for _ in $(seq 100); do
        after=$("$flmctl" list -s | awk 'NR>1 {print $1}' | sort)
        sid=$(comm -13 <(echo "$before") <(echo "$after") | head -1)
        [ -n "$sid" ] && return 0
        sleep 0.1
    done
    return 1
}

write_config "$tmp/kube/kubeconfig.flame"
start_sm || exit 1

# 1. a session with 3 Pending tasks gets 3 pods, labelled, with its resources
new_session 3 cpu=2,mem=256m; s1=$sid
[ -n "$s1" ] && ok "session $s1 created" || bad "session created"
if wait_count "flame.io/session=$s1" 3; then ok "3 pods for 3 Pending tasks"
else bad "3 pods for 3 Pending tasks" "$(kc get pods --show-labels 2>&1)"; fi
name=$(pods "flame.io/session=$s1" | awk 'NR==1 {print $1}')
json=$(kc get pod "$name" -o json)
check_pod() { # NAME PYTHON-EXPR
    if python3 -c "import json,sys; p=json.load(sys.stdin); sys.exit(0 if ($2) else 1)" <<<"$json"
    then ok "$1"; else bad "$1" "$json"; fi
}
check_pod "labels name the session and the application" \
    "p['metadata']['labels']['flame.io/session']=='$s1' and p['metadata']['labels']['flame.io/application']=='flmping'"
check_pod "the configured labels are there" "p['metadata']['labels']['team']=='qa'"
check_pod "the annotation keeps the session id" "p['metadata']['annotations']['flame.io/session-id']=='$s1'"
check_pod "requests = limits = the session's resreq" \
    "all(p['spec']['containers'][0]['resources'][k]=={'cpu':'2','memory':'268435456'} for k in ('requests','limits'))"
check_pod "the pod runs an executor manager that registers back" \
    "p['spec']['containers'][0]['command']==['flame-executor-manager'] and 'http://flame-session-manager.flame.svc:8080' in p['spec']['containers'][0]['args'] and p['spec']['containers'][0]['image']=='flame-executor-manager:test'"
check_pod "the node name is the pod's" \
    "p['spec']['containers'][0]['env'][0]['valueFrom']['fieldRef']['fieldPath']=='metadata.name'"
check_pod "the node's TLS files come from the pod's own Secret" \
    "[v['secret']['secretName'] for v in p['spec']['volumes'] if v['name']=='flame-tls']==['$name-tls'] and {'name':'flame-tls','mountPath':'/etc/flame/tls','readOnly':True} in p['spec']['containers'][0]['volumeMounts'] and '/etc/flame/tls/tls.key' in p['spec']['containers'][0]['args']"
check_pod "the sandbox's security context: own user namespace, capabilities, read-only root" \
    "p['spec'].get('hostUsers') is False and (lambda c: c['capabilities']['drop']==['ALL'] and 'SYS_ADMIN' in c['capabilities']['add'] and c['readOnlyRootFilesystem'] and not c['privileged'])(p['spec']['containers'][0]['securityContext']) and '--sandbox-uids' in p['spec']['containers'][0]['args']"
check_pod "no service account token in the pod" "p['spec']['automountServiceAccountToken'] is False"
sjson=$(kc get secret "$name-tls" -o json 2>&1)
uid=$(kc get pod "$name" -o jsonpath='{.metadata.uid}')
if python3 -c "import json,sys; s=json.load(sys.stdin); o=s['metadata']['ownerReferences'][0]; sys.exit(0 if s['type']=='kubernetes.io/tls' and s.get('immutable') and o['kind']=='Pod' and o['name']=='$name' and o['uid']=='$uid' and s['metadata']['labels']['flame.io/pod']=='$name' else 1)" <<<"$sjson"
then ok "the pod's Secret: kubernetes.io/tls, owned by the pod"; else bad "the pod's Secret" "$sjson"; fi
secret_data() { # KEY < secret JSON
    python3 -c "import json,sys,base64; sys.stdout.buffer.write(base64.b64decode(json.load(sys.stdin)['data']['$1']))"
}
secret_file() { secret_data "$1" <<<"$sjson" >"$tmp/$1"; }
secret_file tls.crt; secret_file tls.key; secret_file ca.crt
subj=$(openssl x509 -in "$tmp/tls.crt" -noout -subject -nameopt RFC2253 2>&1)
[[ "$subj" == *"CN=$name"* && "$subj" == *"OU=node"* ]] && ok "its certificate names the pod, role node ($subj)" ||
    bad "its certificate names the pod, role node" "$subj"
openssl verify -CAfile "$tmp/pki/ca.crt" -purpose sslclient "$tmp/tls.crt" >/dev/null 2>&1 &&
    ok "its certificate is signed by the CA, for clients" || bad "its certificate verifies" "$(openssl verify -CAfile "$tmp/pki/ca.crt" "$tmp/tls.crt" 2>&1)"
[ "$(openssl x509 -in "$tmp/tls.crt" -noout -pubkey)" = "$(openssl pkey -in "$tmp/tls.key" -pubout)" ] &&
    ok "the key is the certificate's" || bad "the key is the certificate's"
cmp -s "$tmp/ca.crt" "$tmp/pki/ca.crt" && ok "ca.crt is the cluster CA" || bad "ca.crt is the cluster CA"
openssl x509 -in "$tmp/tls.crt" -noout -checkend 6900 >/dev/null && ! openssl x509 -in "$tmp/tls.crt" -noout -checkend 7500 >/dev/null &&
    ok "short-lived: it ends in node_cert_ttl (2h)" || bad "it ends in node_cert_ttl" "$(openssl x509 -in "$tmp/tls.crt" -noout -dates)"
other=$(pods "flame.io/session=$s1" | awk 'NR==2 {print $1}')
kc get secret "$other-tls" -o json | secret_data tls.crt | openssl x509 -noout -subject 2>/dev/null | grep -q "CN *= *$other" &&
    ok "another pod has a certificate of its own" || bad "another pod has a certificate of its own"
secrets() { kc get secrets -l "app.kubernetes.io/managed-by=flame,flame.io/cluster=k8s-test" -o name 2>/dev/null | grep -c . ; }
check_pod "it stays Pending (no kubelet)" "p['status']['phase']=='Pending'"
sleep 3
[ "$(count "flame.io/session=$s1")" = 3 ] && ok "no extra pods after a while" || bad "no extra pods" "$(pods)"

# 2. closing the session deletes its pods
"$flmctl" close -s "$s1" >/dev/null
if wait_count "flame.io/session=$s1" 0; then ok "closing the session deletes its pods"
else bad "closing the session deletes its pods" "$(pods)"; fi
for _ in $(seq 60); do [ "$(secrets)" = 0 ] && break; sleep 0.5; done
[ "$(secrets)" = 0 ] && ok "and their Secrets" || bad "and their Secrets" "$(kc get secrets 2>&1)"

# 3. the API server restarts mid-way: a session closed and one created
#    meanwhile are settled once it is back, the watch resumes
new_session 2 cpu=1,mem=128m; s2=$sid
wait_count "flame.io/session=$s2" 2 && ok "2 pods for session 2" || bad "2 pods for session 2" "$(pods)"
"$kas" stop-apiserver "$tmp/kube"
"$flmctl" close -s "$s2" >/dev/null && ok "session 2 closed while the API server is down" ||
    bad "session 2 closed while the API server is down"
new_session 1 cpu=1,mem=128m; s3=$sid
sleep 3
"$flmctl" list -s >/dev/null && ok "the session manager serves while the API server is down" ||
    bad "the session manager serves while the API server is down"
"$kas" start-apiserver "$tmp/kube" >/dev/null || bad "the API server starts again"
if wait_count "flame.io/session=$s2" 0; then ok "after the restart: session 2's pods deleted"
else bad "after the restart: session 2's pods deleted" "$(pods)"; fi
if wait_count "flame.io/session=$s3" 1; then ok "after the restart: session 3's pod created"
else bad "after the restart: session 3's pod created" "$(pods)"; fi
# the watch resumed: a pod deleted behind our back comes back
gone=$(pods "flame.io/session=$s3" | awk '{print $1}')
kc delete pod "$gone" --wait=false >/dev/null
for _ in $(seq 120); do
    now=$(pods "flame.io/session=$s3" | awk '{print $1}')
    [ -n "$now" ] && [ "$now" != "$gone" ] && break
    sleep 0.5
done
[ -n "$now" ] && [ "$now" != "$gone" ] && ok "the watch resumed: a pod deleted outside is replaced" ||
    bad "the watch resumed: a pod deleted outside is replaced" "$(pods)"
grep -q 'kubernetes.*\(watching\|listing\) pods\|kubernetes.*Connection refused\|kubernetes.*Couldn' "$tmp/sm.log" &&
    ok "the outage is in the log" || bad "the outage is in the log" "$(grep kubernetes "$tmp/sm.log")"

# 4. the session manager restarts: it adopts the pod session 3 still wants
#    and deletes a pod no session wants
keep=$(pods "flame.io/session=$s3" | awk '{print $1}')
stop_sm
kill_pings
kc run stray --image=flame-executor-manager:test --restart=Never \
    --labels="app.kubernetes.io/managed-by=flame,flame.io/cluster=k8s-test,flame.io/session=gone" >/dev/null ||
    bad "a stray pod created"
start_sm || exit 1
if wait_count "flame.io/session=gone" 0; then ok "after a restart: a pod of no session is deleted"
else bad "after a restart: a pod of no session is deleted" "$(pods)"; fi
sleep 3
[ "$(pods "flame.io/session=$s3" | awk '{print $1}')" = "$keep" ] &&
    ok "after a restart: the wanted pod is adopted, not made again" ||
    bad "after a restart: the wanted pod is adopted" "kept $keep; now: $(pods)"
"$flmctl" close -s "$s3" >/dev/null
wait_count "" 0 && ok "every session closed: no pod left" || bad "no pod left" "$(pods)"
for _ in $(seq 60); do [ "$(secrets)" = 0 ] && break; sleep 0.5; done
[ "$(secrets)" = 0 ] && ok "no Secret left" || bad "no Secret left" "$(kc get secrets 2>&1)"
stop_sm

# 5. a token without rights: 403, readable, and the session manager serves on
mv "$tmp/sm.log" "$tmp/sm1.log"
write_config "$tmp/kube/kubeconfig.norights"
start_sm || exit 1
new_session 1 cpu=1,mem=128m; s4=$sid
for _ in $(seq 60); do grep -q '403' "$tmp/sm.log" && break; sleep 0.5; done
grep -q 'kubernetes.*403 Forbidden: pods is forbidden: User "nobody" cannot' "$tmp/sm.log" &&
    ok "a 403 is logged with the API server's reason" || bad "a 403 is logged" "$(cat "$tmp/sm.log")"
"$flmctl" view -s "$s4" >/dev/null && ok "the session manager serves on" || bad "the session manager serves on"
[ "$(count "")" = 0 ] && ok "no pod made without rights" || bad "no pod made without rights" "$(pods)"
n=$(grep -c '403' "$tmp/sm.log")
[ "$n" -le 4 ] && ok "the error is not logged in a loop ($n lines)" || bad "the error is logged $n times"
stop_sm

# mutual TLS with no CA for the pods' certificates is refused, naming the keys
{ printf 'cluster:\n  name: k8s-test\n  endpoint: "https://127.0.0.1:%s"\n  storage: "sqlite://%s/m.db"\n' "$port" "$tmp"
  printf '  tls: {cert_file: %s, key_file: %s, ca_file: %s, mutual: true}\n' "$tmp/pki/server.crt" "$tmp/pki/server.key" "$tmp/pki/ca.crt"
  printf 'provider: kubernetes\nkubernetes:\n  image: x\n  kubeconfig: %s\n' "$tmp/kube/kubeconfig.flame"; } >"$tmp/mutual.yaml"
out=$("$sm" --config "$tmp/mutual.yaml" 2>&1 & p=$!; sleep 3; kill $p 2>/dev/null; wait $p)
grep -q 'kubernetes.node_ca_cert, node_ca_key: required with cluster.tls.mutual' <<<"$out" &&
    ok "mutual TLS without a CA for the pods is refused" || bad "mutual TLS without a CA for the pods is refused" "$out"

# a config without an image is refused, naming the key
printf 'cluster:\n  name: x\nprovider: kubernetes\nkubernetes:\n  namespace: default\n' >"$tmp/bad.yaml"
out=$("$sm" --config "$tmp/bad.yaml" 2>&1 & p=$!; sleep 2; kill $p 2>/dev/null; wait $p)
grep -q 'kubernetes.image' <<<"$out" && ok "a missing kubernetes.image is named" || bad "a missing kubernetes.image is named" "$out"

echo "# the provider's log lines:"
grep -h 'kubernetes' "$tmp/sm1.log" "$tmp/sm.log" | sed 's/^/#   /'
echo "$pass passed, $failn failed"
[ "$failn" -eq 0 ]
