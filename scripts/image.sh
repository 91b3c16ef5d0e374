#!/usr/bin/env bash
# Builds Flame's container image here, without a registry or a docker engine
# (README, Deploying):
#   1. `meson install --destdir` of a build (daemons, CLIs, libflame);
#   2. a Debian root made by mmdebstrap with exactly the runtime libraries
#      those binaries link (found with ldd + dpkg -S), ca-certificates, and
#      the user flame (65532);
#   3. both assembled into an OCI image with buildah (vfs storage in a temp
#      dir, nothing run inside the image), or with umoci where buildah cannot
#      run; written as an OCI layout directory and an oci-archive.
#   scripts/image.sh [--build DIR] [--tag TAG]   prints the OCI layout's path
# `podman load -i <dir>/flame.oci.tar` or `skopeo copy oci:<dir>:TAG docker://REGISTRY/flame:TAG`
# take it further. FLAME_IMAGE_TOOL=umoci skips buildah. Cached outside the repo in ${FLAME_IMAGE_CACHE:-~/.cache/flame/image}:
# the Debian root by its package list and suite, the image by the content
# hash of the root's key and the installed files; a second run with the same
# build does nothing. Exit 77 (with a printed reason) where Debian's mirror
# cannot be reached.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
suite=${FLAME_IMAGE_SUITE:-bookworm}
mirror=${FLAME_IMAGE_MIRROR:-http://deb.debian.org/debian}
security=${FLAME_IMAGE_SECURITY:-http://deb.debian.org/debian-security}
cache=${FLAME_IMAGE_CACHE:-$HOME/.cache/flame/image}
tag=
while [ $# -gt 0 ]; do
    case "$1" in
        --build) build=$(cd "$2" && pwd); shift ;;
        --tag) tag=$2; shift ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "image.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
say() { echo "image.sh: $*" >&2; }
skip() { echo "image.sh: SKIP: $*" >&2; exit 77; }
die() { echo "image.sh: $*" >&2; exit 1; }
for t in mmdebstrap meson; do
    command -v "$t" >/dev/null || die "needs $t (scripts/deps.sh installs mmdebstrap, buildah, umoci)"
done
version=$(meson introspect "$build" --projectinfo | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')
tag=${tag:-$version}
mkdir -p "$cache"
work=$(mktemp -d "$cache/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- 1. our files ----
stage=$work/stage
meson install -C "$build" --destdir "$stage" --no-rebuild --quiet >"$work/install.log" 2>&1 ||
    { cat "$work/install.log" >&2; die "meson install failed"; }
# no headers, pkg-config files or units in the image: it runs the daemons
rm -rf "$stage"/usr/local/include "$stage"/usr/local/lib/*/pkgconfig "$stage"/lib "$stage"/usr/local/lib/sysusers.d \
    "$stage"/usr/lib/sysusers.d "$stage"/usr/local/lib/python* "$stage"/usr/local/share
prefix=$(meson introspect "$build" --buildoptions |
         python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"))')
bindir=$prefix/bin
libdir=$(dirname "$(find "$stage$prefix" -name 'libflame.so.*' -type f | head -1)")
[ -x "$stage$bindir/flame-session-manager" ] || die "no flame-session-manager in $build's install"
mkdir -p "$stage/etc/flame/tls" "$stage/var/lib/flame"
cp "$root/deploy/image/flame-cluster.yaml" "$stage/etc/flame/flame-cluster.yaml"
chown -R 65532:65532 "$stage/var/lib/flame"
chmod 755 "$stage/etc/flame" "$stage/etc/flame/tls"

# ---- 2. the Debian root: the packages our binaries link ----
pkgs=$(for f in "$stage$bindir"/* "$stage$prefix"/libexec/*; do
           LD_LIBRARY_PATH=$libdir ldd "$f" 2>/dev/null || true
       done | awk '/=>/ { print $3 }' | grep '^/' | grep -v "^$stage" | sort -u |
       while read -r l; do dpkg -S "$l" 2>/dev/null || dpkg -S "$(realpath "$l")" 2>/dev/null || true; done |
       cut -d: -f1 | sort -u | tr '\n' ' ')
pkgs="$pkgs ca-certificates"
pkgs=$(echo $pkgs | tr ' ' '\n' | sort -u | tr '\n' ',' | sed 's/,$//')
base_key=$( { echo "$suite $mirror $security"; echo "$pkgs"; sed -n '/^# ---- 2/,/^# ---- 3/p' "$0"; } |
            sha256sum | cut -c1-16)
base=$cache/base-$suite-$base_key.tar
if [ ! -f "$base" ]; then
    say "mmdebstrap $suite with $pkgs"
    # the user of the servers (the executor manager's pod runs as root for its sandboxes)
    hook='echo "flame:x:65532:65532:Flame daemons:/var/lib/flame:/usr/sbin/nologin" >>"$1/etc/passwd";
          echo "flame:x:65532:" >>"$1/etc/group"; echo "flame:!:19000::::::" >>"$1/etc/shadow"'
    if ! nice timeout 1200 mmdebstrap --variant=essential --include="$pkgs" \
            --customize-hook="$hook" --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
            "$suite" "$work/base.tar" "deb $mirror $suite main" "deb $mirror $suite-updates main" \
            "deb $security $suite-security main" >"$work/mmdebstrap.log" 2>&1; then
        if grep -qiE "could not resolve|failed to fetch|temporary failure|connection (refused|timed out)|network is unreachable" "$work/mmdebstrap.log"; then
            tail -5 "$work/mmdebstrap.log" >&2
            skip "mmdebstrap cannot reach Debian's mirror $mirror"
        fi
        tail -20 "$work/mmdebstrap.log" >&2
        die "mmdebstrap failed"
    fi
    mv "$work/base.tar" "$base"
    # one Debian root kept per suite
    ls "$cache"/base-"$suite"-*.tar 2>/dev/null | grep -vxF "$base" | xargs -r rm -f
fi

# the root's ld.so.cache, with libflame in it: made by this host's ldconfig
# (Debian's glibc) on the merged tree, so nothing runs inside the image
mkdir "$work/merged"
tar -xf "$base" -C "$work/merged" ./etc ./usr/lib ./lib ./lib64 2>/dev/null || tar -xf "$base" -C "$work/merged"
cp -a "$stage/." "$work/merged/"
ldconfig -r "$work/merged"
mkdir -p "$stage/etc"
cp "$work/merged/etc/ld.so.cache" "$stage/etc/ld.so.cache"
rm -rf "$work/merged"

# ---- 3. the image ----
files_key=$(cd "$stage" && tar --sort=name --mtime=@0 --numeric-owner -cf - . | sha256sum | cut -c1-16)
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
# the revision label must tell the truth: a new commit, a new image
key=$( { echo "$base_key $files_key $tag $revision ${FLAME_IMAGE_TOOL:-}"; sed -n '/^# ---- 3/,$p' "$0"; } | sha256sum | cut -c1-16)
out=$cache/flame-$tag-$key
if [ -f "$out/oci/index.json" ]; then
    echo "$out/oci"
    exit 0
fi
mkdir -p "$work/out"
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
labels=(org.opencontainers.image.title=flame
        "org.opencontainers.image.description=Flame in C: flame-session-manager, flame-executor-manager, flame-object-cache and the CLIs"
        org.opencontainers.image.version="$version"
        org.opencontainers.image.revision="$revision"
        org.opencontainers.image.licenses=Apache-2.0
        org.opencontainers.image.base.name="debian:$suite")
entrypoint="[\"$bindir/flame-session-manager\"]"
cmd='["--config", "/etc/flame/flame-cluster.yaml"]'
assembled=""
blabels=()
for l in "${labels[@]}"; do blabels+=(--label "$l"); done
tool=${FLAME_IMAGE_TOOL:-}   # buildah or umoci; default: buildah, else umoci
if [ "$tool" != umoci ] && command -v buildah >/dev/null; then
    # storage of our own (vfs: no overlay mounts needed), removed afterwards
    b=(buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs)
    if c=$("${b[@]}" from scratch 2>"$work/buildah.log") &&
        "${b[@]}" add "$c" "$base" / >>"$work/buildah.log" 2>&1 &&
        "${b[@]}" copy "$c" "$stage/" / >>"$work/buildah.log" 2>&1 &&
        "${b[@]}" config --entrypoint "$entrypoint" --cmd "$cmd" --user 65532:65532 \
            --workingdir /var/lib/flame --port 8080/tcp --port 9090/tcp --port 9101/tcp \
            --env PATH="$bindir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
            --created-by "scripts/image.sh" "${blabels[@]}" "$c" >>"$work/buildah.log" 2>&1 &&
        "${b[@]}" commit --format oci --disable-compression=false --timestamp 0 "$c" "oci:$work/out/oci:$tag" >>"$work/buildah.log" 2>&1; then
        assembled=buildah
    else
        say "buildah could not assemble the image here (umoci next):"; tail -5 "$work/buildah.log" >&2
    fi
fi
if [ -z "$assembled" ] && command -v umoci >/dev/null; then
    rm -rf "$work/out/oci" "$work/bundle"
    u=(umoci --log error)
    "${u[@]}" init --layout "$work/out/oci"
    "${u[@]}" new --image "$work/out/oci:$tag"
    "${u[@]}" unpack --image "$work/out/oci:$tag" "$work/bundle"
    tar -xf "$base" -C "$work/bundle/rootfs"
    cp -a "$stage/." "$work/bundle/rootfs/"
    "${u[@]}" repack --image "$work/out/oci:$tag" "$work/bundle"
    largs=()
    for l in "${labels[@]}"; do largs+=(--config.label "$l"); done
    "${u[@]}" config --image "$work/out/oci:$tag" --config.entrypoint "$bindir/flame-session-manager" \
        --config.cmd --config --config.cmd /etc/flame/flame-cluster.yaml --config.user 65532:65532 \
        --config.workingdir /var/lib/flame --config.exposedports 8080/tcp --config.exposedports 9090/tcp --config.exposedports 9101/tcp \
        --config.env PATH="$bindir:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --created "$created" "${largs[@]}"
    "${u[@]}" gc --layout "$work/out/oci"
    assembled=umoci
fi
[ -n "$assembled" ] || die "neither buildah nor umoci (apt-get install buildah umoci)"
echo "$assembled" >"$work/out/assembled-by"
# the archive names the image in full, so `podman load` calls it localhost/flame:TAG
cp -al "$work/out/oci" "$work/arch"
rm "$work/arch/index.json"
python3 - "$work/out/oci/index.json" "$work/arch/index.json" "localhost/flame:$tag" <<'PY'
import json, sys
i = json.load(open(sys.argv[1]))
for m in i["manifests"]:
    m.setdefault("annotations", {})["org.opencontainers.image.ref.name"] = sys.argv[3]
json.dump(i, open(sys.argv[2], "w"))
PY
tar -C "$work/arch" -cf "$work/out/flame.oci.tar" .
rm -rf "$out"
mv "$work/out" "$out"
# older images of this tag: one kept
ls -d "$cache"/flame-"$tag"-* 2>/dev/null | grep -vx "$out" | xargs -r rm -rf
say "image flame:$tag assembled by $assembled in $out/oci (archive $out/flame.oci.tar)"
echo "$out/oci"
