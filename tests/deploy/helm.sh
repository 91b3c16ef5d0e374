#!/usr/bin/env bash
# deploy-helm: charts/flame passes `helm lint --strict`, renders with
# `helm template` in four variants (defaults: mTLS, process sandbox; no TLS;
# provider kubernetes; sandbox none), each rendering holds what an SRE
# expects (every daemon probed on /healthz and /readyz, the session manager a
# StatefulSet with a volume claim, the object cache a Deployment + Service, a
# ConfigMap with flame-cluster.yaml, the TLS Secrets mounted, the Role of the
# provider, securityContexts), and the API server accepts it:
# `kubectl apply --dry-run=server` against a real kube-apiserver
# (scripts/kube-apiserver.sh), with the Secrets scripts/helm.sh certs makes.
#   helm.sh BUILD_DIR   (exit 77, saying why, where helm or kube-apiserver cannot be built)
set -uo pipefail
build=$1
src=${FLAME_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
chart=$src/charts/flame
helm=$("$src/scripts/helm.sh" path)
rc=$?
[ $rc = 77 ] && exit 77
[ $rc = 0 ] || { echo "FAIL: scripts/helm.sh path exited $rc"; exit 1; }
echo "helm: $helm ($("$helm" version --short))"
work=$(mktemp -d)
kdir=""
cleanup() {
    [ -n "$kdir" ] && "$src/scripts/kube-apiserver.sh" stop "$kdir" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
# helm's and kubectl's state in the temp dir (HOME stays: the caches of
# helm.sh and kube-apiserver.sh live under it)
export HELM_CACHE_HOME=$work/helm/cache HELM_CONFIG_HOME=$work/helm/config HELM_DATA_HOME=$work/helm/data
export KUBECONFIG=$work/no-kubeconfig

"$helm" lint --strict "$chart" >"$work/lint" 2>&1 || { cat "$work/lint"; echo "FAIL: helm lint"; exit 1; }
echo "ok: helm lint --strict"

ns=flame-test
variants=(default notls k8s nosandbox)
declare -A sets=([default]="" [notls]="--set tls.enabled=false"
                 [k8s]="--set provider=kubernetes --set executorManager.replicas=0"
                 [nosandbox]="--set executorManager.sandbox=none")
for v in "${variants[@]}"; do
    # shellcheck disable=SC2086
    "$helm" template flame "$chart" --namespace "$ns" ${sets[$v]} >"$work/$v.yaml" 2>"$work/$v.err" ||
        { cat "$work/$v.err"; echo "FAIL: helm template ($v)"; exit 1; }
done
python3 - "$work" <<'PY' || exit 1
import sys, yaml
work = sys.argv[1]
fails = []
def want(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    cond or fails.append(what)
def load(v):
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(open(f"{work}/{v}.yaml")) if d}
def containers(docs):
    for (kind, name), d in docs.items():
        if kind in ("StatefulSet", "Deployment", "DaemonSet"):
            for c in d["spec"]["template"]["spec"]["containers"]:
                yield kind, name, d["spec"]["template"]["spec"], c
for v in ("default", "notls", "k8s", "nosandbox"):
    docs = load(v)
    kinds = sorted(f"{k}/{n}" for k, n in docs)
    print(f"{v}: {', '.join(kinds)}")
    sm = docs.get(("StatefulSet", "flame-session-manager"))
    want(sm is not None and sm["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
         f"{v}: session manager StatefulSet with a volume claim")
    want(("Service", "flame-session-manager") in docs and ("Service", "flame-object-cache") in docs
         and ("Deployment", "flame-object-cache") in docs, f"{v}: object cache Deployment and Services")
    cm = docs.get(("ConfigMap", "flame-config"))
    cluster = yaml.safe_load(cm["data"]["flame-cluster.yaml"]) if cm else {}
    want("cluster" in cluster and "cache" in cluster, f"{v}: ConfigMap flame-cluster.yaml parses")
    tls = v != "notls"
    want(("tls" in cluster.get("cluster", {})) == tls and
         (cluster.get("cluster", {}).get("tls", {}).get("mutual") is True) == tls,
         f"{v}: mutual TLS {'on' if tls else 'off'} in the config")
    k8s = cluster.get("kubernetes", {})
    want((cluster.get("provider") == "kubernetes") == (v == "k8s"), f"{v}: provider")
    if v == "k8s":
        want(k8s.get("image") == "localhost/flame:0.1.0" and k8s.get("namespace") == "flame-test"
             and k8s.get("endpoint") == "https://flame-session-manager.flame-test.svc:8080"
             and k8s.get("node_ca_cert") == "/etc/flame/node-ca/ca.crt" and k8s.get("node_ca_key") == "/etc/flame/node-ca/ca.key"
             and k8s.get("host_users") is False and "tls_secret" not in k8s, f"{v}: kubernetes section {k8s}")
        sm_c = sm["spec"]["template"]["spec"]["containers"][0]
        want({"name": "node-ca", "mountPath": "/etc/flame/node-ca", "readOnly": True} in sm_c["volumeMounts"]
             and {"name": "node-ca", "secret": {"secretName": "flame-node-ca", "defaultMode": 0o400}} in sm["spec"]["template"]["spec"]["volumes"],
             f"{v}: the session manager has the CA that signs the pods' certificates")
        sm_pod = sm["spec"]["template"]["spec"]
        want(sm_pod["serviceAccountName"] == "flame-session-manager"
             and sm_pod["automountServiceAccountToken"] is True, f"{v}: the session manager has the provider's token")
    role = docs.get(("Role", "flame-session-manager"))
    want(role is not None and set(role["rules"][0]["verbs"]) >= {"create", "delete", "list", "watch", "get"}
         and role["rules"][0]["resources"] == ["pods"] and role["rules"][1]["resources"] == ["secrets"]
         and set(role["rules"][1]["verbs"]) == {"create", "delete"}, f"{v}: Role for pods and their Secrets")
    want(("RoleBinding", "flame-session-manager") in docs and ("ServiceAccount", "flame-session-manager") in docs,
         f"{v}: ServiceAccount and RoleBinding")
    n = 0
    for kind, name, pod, c in containers(docs):
        n += 1
        probes = {p: c.get(p, {}).get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe")}
        want(probes == {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}, f"{v}: {name} probes {probes}")
        want(any(a.startswith("--metrics=0.0.0.0:") for a in c["args"]), f"{v}: {name} serves its probes")
        sc = c.get("securityContext", {})
        want("drop" in sc.get("capabilities", {}) and sc["capabilities"]["drop"] == ["ALL"],
             f"{v}: {name} drops all capabilities")
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        want(("/etc/flame/tls" in mounts) == tls, f"{v}: {name} TLS secret {'mounted' if tls else 'absent'}")
        sandboxed = name.endswith("executor-manager") and v != "nosandbox"
        want((pod.get("hostUsers") is False) == sandboxed and (sc.get("procMount") == "Unmasked") == sandboxed
             and ("--sandbox-uids=10000-65535" in c["args"]) == sandboxed,
             f"{v}: {name} {'in a user namespace of its own' if sandboxed else 'as is'}")
        want((pod["securityContext"].get("runAsNonRoot") is True) != sandboxed and
             (sc.get("allowPrivilegeEscalation") is False) != sandboxed,
             f"{v}: {name} {'root for its sandboxes' if sandboxed else 'non-root, no privilege escalation'}")
    want(n == (2 if v == "k8s" else 3), f"{v}: {n} daemons")
sys.exit(1 if fails else 0)
PY

# the Secrets, made by flmadm
"$src/scripts/helm.sh" certs --ca "$work/ca" --flmadm "$build/cli/flmadm" --namespace "$ns" \
    --executor-managers 2 >"$work/secrets.yaml" 2>"$work/certs.err" ||
    { cat "$work/certs.err"; echo "FAIL: scripts/helm.sh certs"; exit 1; }
python3 - "$work/secrets.yaml" <<'PY' || exit 1
import base64, sys, yaml
s = {d["metadata"]["name"]: d for d in yaml.safe_load_all(open(sys.argv[1])) if d}
want = {"flame-session-manager-tls": {"tls.crt", "tls.key", "ca.crt"},
        "flame-object-cache-tls": {"tls.crt", "tls.key", "ca.crt"},
        "flame-executor-manager-tls": {"ca.crt", "flame-executor-manager-0.crt", "flame-executor-manager-0.key",
                                        "flame-executor-manager-1.crt", "flame-executor-manager-1.key"},
        "flame-node-ca": {"ca.crt", "ca.key"}}
for n, keys in want.items():
    got = set(s.get(n, {}).get("data", {}))
    assert got == keys, f"Secret {n}: {sorted(got)}, want {sorted(keys)}"
    assert b"BEGIN CERTIFICATE" in base64.b64decode(s[n]["data"]["ca.crt"])
assert b"PRIVATE KEY" in base64.b64decode(s["flame-node-ca"]["data"]["ca.key"])
print("ok: scripts/helm.sh certs made the four Secrets")
PY
[ $? = 0 ] || exit 1

# the API server's word
if [ ! -x "$src/scripts/kube-apiserver.sh" ]; then
    # until branch s5-k8s (which writes it) is merged: lint and render stand
    echo "NOTE: no scripts/kube-apiserver.sh in this tree: the API server check did not run"; exit 0
fi
"$src/scripts/kube-apiserver.sh" build >/dev/null
rc=$?
[ $rc = 77 ] && { echo "SKIP: kube-apiserver cannot be built here (above); lint and render passed"; exit 77; }
[ $rc = 0 ] || { echo "FAIL: kube-apiserver.sh build exited $rc"; exit 1; }
kdir=$work/kube
mkdir -p "$kdir"
timeout 180 "$src/scripts/kube-apiserver.sh" start "$kdir" >"$work/kube.log" 2>&1 ||
    { cat "$work/kube.log"; echo "FAIL: kube-apiserver did not start"; exit 1; }
k=(kubectl --kubeconfig "$kdir/kubeconfig" --request-timeout=60s)
"${k[@]}" create namespace "$ns" >/dev/null || { echo "FAIL: create namespace"; exit 1; }
"${k[@]}" apply --dry-run=server -n "$ns" -f "$work/secrets.yaml" >"$work/apply" 2>&1 ||
    { cat "$work/apply"; echo "FAIL: the API server rejects the Secrets"; exit 1; }
for v in "${variants[@]}"; do
    if ! "${k[@]}" apply --dry-run=server -n "$ns" -f "$work/$v.yaml" >"$work/apply" 2>&1; then
        cat "$work/apply"; echo "FAIL: the API server rejects the $v rendering"; exit 1
    fi
    echo "ok: kubectl apply --dry-run=server accepts the $v rendering ($(grep -c . "$work/apply") objects)"
done
# Pod Security Standards: with sandbox none every pod meets "restricted"
# (the API server warns about any that does not); the default's executor
# managers need "privileged" (SYS_ADMIN, no seccomp profile) and are named
"${k[@]}" create namespace flame-restricted >/dev/null &&
    "${k[@]}" label namespace flame-restricted pod-security.kubernetes.io/warn=restricted >/dev/null ||
    { echo "FAIL: create namespace flame-restricted"; exit 1; }
for v in nosandbox default; do
    "$helm" template flame "$chart" --namespace flame-restricted ${sets[$v]} >"$work/r-$v.yaml" &&
        "${k[@]}" apply --dry-run=server -n flame-restricted -f "$work/r-$v.yaml" >"$work/apply" 2>&1 ||
        { cat "$work/apply"; echo "FAIL: apply $v in flame-restricted"; exit 1; }
    warned=$(grep -i '^Warning:' "$work/apply" | sed 's/^/  /')
    if [ $v = nosandbox ]; then
        [ -z "$warned" ] || { echo "$warned"; echo "FAIL: sandbox none is not restricted"; exit 1; }
        echo "ok: with sandbox none every pod meets the restricted Pod Security Standard"
    else
        grep -q 'executor-manager' <<<"$warned" && ! grep -qE 'session-manager|object-cache' <<<"$warned" ||
            { echo "$warned"; echo "FAIL: want warnings for the executor managers only"; exit 1; }
        echo "ok: by default only the executor managers fall outside restricted:"; echo "$warned"
    fi
done
