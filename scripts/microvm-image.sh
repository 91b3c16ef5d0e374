#!/usr/bin/env bash
# Builds the image of the microvm sandbox level from Debian packages: a kernel
# (linux-image-cloud-amd64) and an initramfs holding busybox (busybox-static),
# the virtio modules the kernel lacks built in, the guest agent
# (flame-vm-agent) and the service runtime: each service program at the same
# absolute path as on the host, with every shared library it loads (ldd) at
# its own path, so the executor manager's command resolves the same way in
# the VM. Included by default: the built-in services (flmping-service,
# flmexec-service) of the build dir, and so libflame and everything it needs
# (C services on libflame: add them with --service).
#
# Python services are not supported by this image: they would need python3,
# its standard library, grpcio, protobuf and flamepy in the guest (a root
# filesystem from mmdebstrap rather than an initramfs).
#
# Output: $FLAME_MICROVM_CACHE (default ~/.cache/flame/microvm)/image-<key>/
# {vmlinuz,initramfs.img,KEY}, the key a hash of the kernel and busybox
# versions and of every file in the image; `current` links to the latest.
# Idempotent: an image with the same key is reused. Prints the image dir.
#
# Usage: scripts/microvm-image.sh [--build DIR] [--service PROGRAM]...
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
services=()
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$2; shift 2 ;;
    --service) services+=("$(readlink -f "$2")"); shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--service PROGRAM]..." >&2; exit 2 ;;
    esac
done
cache=${FLAME_MICROVM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/flame/microvm}
mkdir -p "$cache/debs"
agent=$(readlink -f "$build/daemons/flame-vm-agent")
for s in flmping-service flmexec-service; do
    services+=("$(readlink -f "$build/daemons/$s")")
done
for f in "$agent" "${services[@]}"; do
    [ -x "$f" ] || { echo "microvm-image: $f is missing (build first: ninja -C $build)" >&2; exit 1; }
done

# the packages, downloaded once per version (no kernel is installed on the host)
kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
kver=${kpkg#linux-image-}
bbver=$(apt-cache policy busybox-static | awk '/Candidate:/ {print $2}')
fetch() { # package -> its extracted dir
    local dir="$cache/debs/$1"
    if [ ! -e "$dir/.done" ]; then
        rm -rf "$dir" && mkdir -p "$dir"
        (cd "$cache/debs" && rm -f "$1"_*.deb && apt-get download -o APT::Sandbox::User=root "$1" >/dev/null)
        dpkg-deb -x "$cache/debs/$1"_*.deb "$dir"
        touch "$dir/.done"
    fi
    echo "$dir"
}
kdir=$(fetch "$kpkg")
bbdir=$(fetch busybox-static)
busybox=$bbdir/bin/busybox
vmlinuz=$kdir/boot/vmlinuz-$kver
mods=$kdir/lib/modules/$kver/kernel/drivers
modules=("$mods/virtio/virtio.ko" "$mods/virtio/virtio_ring.ko" "$mods/virtio/virtio_mmio.ko"
         "$mods/char/virtio_console.ko")

# every file of the image, and the key over them
files=("$agent")
for s in "${services[@]}"; do
    files+=("$s")
    while read -r lib; do files+=("$(readlink -f "$lib")=$lib"); done < <(
        ldd "$s" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
done
key=$( { echo "$kver $bbver"; for f in "${files[@]}"; do echo "$f"; sha256sum < "${f%%=*}"; done;
         sha256sum < "$0"; } | sha256sum | cut -c1-16)
out=$cache/image-$key
if [ -e "$out/KEY" ]; then
    ln -sfn "image-$key" "$cache/current"
    echo "$out"
    exit 0
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,run,tmp,lib/modules}
cp "$busybox" "$stage/bin/busybox"
for m in "${modules[@]}"; do cp "$m" "$stage/lib/modules/"; done
cp "$agent" "$stage/sbin/flame-vm-agent"
for f in "${files[@]:1}"; do
    src=${f%%=*}
    dst=${f#*=}
    mkdir -p "$stage$(dirname "$dst")"
    cp -L "$src" "$stage$dst"
done
cat > "$stage/init" <<'EOF'
#!/bin/busybox sh
# the guest's first process: mounts, loads the virtio modules (in dependency
# order), hands over
/bin/busybox mkdir -p /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
# /tmp stays on the (writable) initramfs root: a tmpfs over it would hide
# services whose host path is under /tmp (a build dir there)
chmod 1777 /tmp
mount -t tmpfs run /run
for m in virtio_ring virtio virtio_mmio virtio_console; do
    insmod /lib/modules/$m.ko
done
exec /sbin/flame-vm-agent
EOF
chmod 755 "$stage/init"
tmp=$cache/.image-$key.$$
mkdir -p "$tmp"
(cd "$stage" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1 > "$tmp/initramfs.img")
cp "$vmlinuz" "$tmp/vmlinuz"
echo "$key kernel=$kver busybox=$bbver" > "$tmp/KEY"
# publish atomically; never replace a published image (a test may be booting
# it): a run that loses the race to the same key drops its own copy
if ! mv -T "$tmp" "$out" 2>/dev/null; then
    rm -rf "$tmp"
    [ -e "$out/KEY" ] || { echo "microvm-image: cannot publish $out" >&2; exit 1; }
fi
ln -sfn "image-$key" "$cache/current"
echo "$out"
