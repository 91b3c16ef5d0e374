#!/usr/bin/env bash
# deploy-image: scripts/image.sh builds the OCI image from this build
# (cached by content hash outside the repo: a rebuild only when the installed
# files change); the image's config says what it should (entrypoint, user,
# labels), its blobs match their digests, and the daemons in its root run:
# the layers unpacked, a session manager, an object cache and an executor
# manager started in that root (chroot, own mount+pid namespaces, the host's
# loopback) answer /readyz, the node registers and flmping from the image
# runs tasks through them. The executor manager runs sandbox level none
# there: a chrooted process may not create user namespaces (the kernel says
# EPERM), which the process level needs.
#   image.sh BUILD_DIR   (exit 77, saying why, where Debian's mirror is unreachable)
set -uo pipefail
build=$1
src=${FLAME_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
[ "$(id -u)" = 0 ] || { echo "SKIP: unpacking and chroot need root"; exit 77; }
out=$(timeout 1500 "$src/scripts/image.sh" --build "$build")
rc=$?
[ $rc = 77 ] && exit 77
[ $rc = 0 ] || { echo "FAIL: scripts/image.sh exited $rc"; exit 1; }
echo "image: $out ($(cat "$out/../assembled-by"))"
version=$(meson introspect "$build" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')

work=$(mktemp -d)
pids=()
# pids are unshare's (inroot execs it); each one's child is the daemon, the
# first process of its pid namespace: signalled itself (SIGTERM reaches a
# namespace's PID 1 from outside when it handles it, as our daemons do;
# unshare blocks SIGTERM, and chroot --userspec drops a parent-death
# signal), SIGKILL after 10 s; the namespace dies with it, and unshare.
cleanup() {
    for p in "${pids[@]}"; do pkill -TERM -P "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        pkill -KILL -P "$p" 2>/dev/null
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT

# ---- the config and the blobs ----
python3 - "$out" "$version" "$work/rootfs" <<'PY' || exit 1
import hashlib, json, os, subprocess, sys
layout, version, rootfs = sys.argv[1:4]
def blob(d):
    alg, h = d.split(":")
    p = os.path.join(layout, "blobs", alg, h)
    data = open(p, "rb").read()
    assert hashlib.sha256(data).hexdigest() == h, f"blob {d} does not match its digest"
    return p, data
index = json.load(open(os.path.join(layout, "index.json")))
assert index["schemaVersion"] == 2 and index["manifests"], "index.json has no manifest"
mdesc = index["manifests"][0]
tag = mdesc.get("annotations", {}).get("org.opencontainers.image.ref.name")
assert tag == version, f"tag {tag!r}, want {version!r}"
_, m = blob(mdesc["digest"]); m = json.loads(m)
_, c = blob(m["config"]["digest"]); c = json.loads(c)
cfg = c["config"]
fails = []
def want(cond, what):
    print(("ok: " if cond else "FAIL: ") + what); cond or fails.append(what)
want(c["architecture"] == "amd64" and c["os"] == "linux", f"platform {c['os']}/{c['architecture']}")
want(cfg.get("Entrypoint", [""])[0].endswith("/flame-session-manager"), f"entrypoint {cfg.get('Entrypoint')}")
want(cfg.get("Cmd") == ["--config", "/etc/flame/flame-cluster.yaml"], f"cmd {cfg.get('Cmd')}")
want(cfg.get("User") == "65532:65532", f"user {cfg.get('User')}")
labels = cfg.get("Labels") or {}
want(labels.get("org.opencontainers.image.title") == "flame", "label title=flame")
want(labels.get("org.opencontainers.image.version") == version, f"label version={version}")
want(len(labels.get("org.opencontainers.image.revision", "")) == 40, "label revision (a commit)")
want("8080/tcp" in (cfg.get("ExposedPorts") or {}), "exposes 8080/tcp")
os.makedirs(rootfs)
size = 0
for l in m["layers"]:
    p, data = blob(l["digest"]); size += len(data)
    subprocess.run(["tar", "-xf", p, "-C", rootfs], check=True)
print(f"image: {len(m['layers'])} layers, {size / 1e6:.1f} MB of blobs")
open(os.path.join(os.path.dirname(rootfs), "bindir"), "w").write(cfg["Entrypoint"][0].rsplit("/", 1)[0])
sys.exit(1 if fails else 0)
PY
# a real consumer of the archive: podman loads it (storage in our temp dir).
# `podman run` cannot start containers on this machine (crun: setrlimit
# RLIMIT_NPROC: EPERM), so the daemons run below by unshare + chroot.
if command -v podman >/dev/null; then
    P=(podman --root "$work/podman" --runroot "$work/podman-run" --storage-driver vfs
       --cgroup-manager cgroupfs --events-backend file)
    timeout 300 "${P[@]}" load -q -i "$out/../flame.oci.tar" >"$work/load" 2>&1 ||
        { cat "$work/load"; echo "FAIL: podman load of flame.oci.tar"; exit 1; }
    got=$("${P[@]}" image inspect "localhost/flame:$version" \
          --format '{{.Config.User}} {{index .Config.Labels "org.opencontainers.image.title"}}' 2>&1)
    [ "$got" = "65532:65532 flame" ] || { echo "FAIL: podman sees $got"; exit 1; }
    echo "ok: podman loads the archive ($(cat "$work/load"))"
    "${P[@]}" rmi -a -f >/dev/null 2>&1
    rm -rf "$work/podman" 2>/dev/null || true
fi
root=$work/rootfs
bindir=$(cat "$work/bindir")
grep -q '^flame:x:65532:65532:' "$root/etc/passwd" || { echo "FAIL: no user flame (65532) in the image"; exit 1; }

# in ROOT, in mount+pid namespaces of their own, with /proc: CMD... Called
# in a subshell only ($(...) or &): exec makes $! unshare's pid.
inroot() { exec unshare -m -p -f --mount-proc="$root/proc" chroot "$@"; }
for d in flame-session-manager flame-executor-manager flame-object-cache flmctl flmping flmadm; do
    v=$(inroot --userspec=65532:65532 "$root" "$bindir/$d" --version 2>&1) ||
        { echo "FAIL: $d --version in the image: $v"; exit 1; }
    echo "ok: $d runs in the image: $v"
done

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sm=$(port) smm=$(port) cp=$(port) cm=$(port) em=$(port)
mkdir -p "$root/var/lib/flame/cache" && chown -R 65532:65532 "$root/var/lib/flame"
inroot --userspec=65532:65532 "$root" "$bindir/flame-session-manager" \
    --endpoint "http://127.0.0.1:$sm" --storage sqlite:///var/lib/flame/flame.db \
    --metrics "127.0.0.1:$smm" >"$work/sm.log" 2>&1 &
pids+=($!)
inroot --userspec=65532:65532 "$root" "$bindir/flame-object-cache" \
    --endpoint "grpc://127.0.0.1:$cp" --storage fs:///var/lib/flame/cache \
    --metrics "127.0.0.1:$cm" >"$work/cache.log" 2>&1 &
pids+=($!)
ready() { # PORT WHAT LOG PID
    for _ in $(seq 600); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz")" = 200 ] && { echo "ok: $2 in the image is ready"; return 0; }
        kill -0 "$4" 2>/dev/null || { echo "FAIL: $2 in the image exited"; tail -20 "$3"; return 1; }
        sleep 0.1
    done
    echo "FAIL: $2 in the image not ready in 60 s"; tail -20 "$3"; return 1
}
ready "$smm" "session manager" "$work/sm.log" "${pids[0]}" || exit 1
ready "$cm" "object cache" "$work/cache.log" "${pids[1]}" || exit 1
inroot "$root" "$bindir/flame-executor-manager" \
    --endpoint "http://127.0.0.1:$sm" --node image-node --work-dir /var/lib/flame/work \
    --sandbox none --sandbox-allow none --resources cpu=2,mem=2g --metrics "127.0.0.1:$em" >"$work/em.log" 2>&1 &
pids+=($!)
ready "$em" "executor manager" "$work/em.log" "${pids[2]}" || exit 1
ping=$(FLAME_ENDPOINT="http://127.0.0.1:$sm" FLAME_CONFIG=/nonexistent.yaml \
       timeout 120 unshare -m -p -f --mount-proc="$root/proc" chroot --userspec=65532:65532 "$root" \
       "$bindir/flmping" -t 20 2>&1) || { echo "$ping"; echo "FAIL: flmping in the image"; tail -20 "$work/em.log"; exit 1; }
echo "$ping" | tail -3
echo "ok: flmping ran 20 tasks through the image's daemons"
