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
# Python services (flamepy): --python PY, a venv's python (scripts/pyvenv.sh
# makes one with flamepy 0.6.0 from PyPI), puts that interpreter's standard
# library and the venv's site-packages (less pip, setuptools and pytest) on a
# read-only ext4 disk, python.img (mke2fs -d: no root or loop device needed),
# at their host paths: the guest's init mounts it (virtio-blk) and binds
# them where the host has them. The interpreter and every shared library the
# interpreter and the packages' extension modules load from outside those
# trees (ldd) go into the initramfs. A disk, not the initramfs: flamepy
# imports pyarrow (~170 MB), which the guest then reads on demand instead of
# holding it all in its memory. --file PATH adds a file (a service's script)
# at its own path.
#
# Output: $FLAME_MICROVM_CACHE (default ~/.cache/flame/microvm)/image-<key>/
# {vmlinuz,initramfs.img,KEY} and, with --python, python.img; the key a hash
# of the kernel and busybox versions, of every file of the initramfs and of
# the python trees' file list (names, sizes, times); `current` links to the
# latest. Idempotent: an image with the same key is reused. Prints the image
# dir.
#
# Usage: scripts/microvm-image.sh [--build DIR] [--service PROGRAM]... [--python PY] [--file PATH]...
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
services=()
extra=()
python=
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$2; shift 2 ;;
    --service) services+=("$(readlink -f "$2")"); shift 2 ;;
    --python) python=$2; shift 2 ;;
    --file) extra+=("$(readlink -f "$2")"); shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--service PROGRAM]... [--python PY] [--file PATH]..." >&2
       exit 2 ;;
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
         "$mods/char/virtio_console.ko" "$mods/block/virtio_blk.ko")
# the vsock channel's (loaded only when the kernel command line asks for it)
vsock=$kdir/lib/modules/$kver/kernel/net/vmw_vsock
modules+=("$vsock/vsock.ko" "$vsock/vmw_vsock_virtio_transport_common.ko"
          "$vsock/vmw_vsock_virtio_transport.ko")

# the libraries a program or module loads (ldd), as "real=path" entries
libs_of() {
    ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
        while read -r lib; do echo "$(readlink -f "$lib")=$lib"; done
}

# every file of the initramfs, and the key over them
files=("$agent")
for s in "${services[@]}"; do
    files+=("$s")
    while read -r f; do files+=("$f"); done < <(libs_of "$s")
done
files+=("${extra[@]}")

# the python runtime: its trees (on the disk) and what they load from outside
trees=()
if [ -n "$python" ]; then
    [ -x "$python" ] || { echo "microvm-image: $python is not a python" >&2; exit 1; }
    read -r venv stdlib exe < <("$python" -c 'import os, sys, sysconfig
print(sys.prefix, sysconfig.get_paths()["stdlib"], os.path.realpath(sys.executable))')
    trees=("$stdlib")
    [ "$venv" != "$(dirname "$(dirname "$exe")")" ] && trees+=("$venv")
    # the interpreter at its own path, and at every link on the way there from
    # the venv's bin/python that is outside the trees (pyenv: bin/python3)
    files+=("$exe")
    while read -r hop; do
        case "$hop" in "$stdlib"/* | "$venv"/*) ;; *) files+=("$exe=$hop") ;; esac
    done < <("$python" -c 'import os, sys
p = sys.argv[1]
while os.path.islink(p):
    p = os.path.join(os.path.dirname(p), os.readlink(p))
    print(os.path.normpath(p))' "$python")
    while read -r f; do files+=("$f"); done < <(libs_of "$exe")
fi
# what the disk leaves out (tar patterns, relative to a tree): the standard
# library's tests, tools, GUI and the interpreter's own site-packages; the
# venv's installers and test tools
skip=(./test ./idlelib ./tkinter ./turtledemo ./ensurepip ./lib2to3 ./site-packages
      ./dist-packages './config-*' '*/site-packages/pip' '*/site-packages/setuptools'
      '*/site-packages/pytest' '*/site-packages/_pytest' '*/site-packages/pygments')
excludes=(--anchored)
for x in "${skip[@]}"; do excludes+=("--exclude=$x"); done
listing() { # the trees' files (names, sizes, times) as the disk gets them
    for t in "${trees[@]}"; do
        tar -C "$t" "${excludes[@]}" -cvvf /dev/null . | awk '{print $3, $4, $5, $6}'
    done
}
key=$( { echo "$kver $bbver"; for f in "${files[@]}"; do echo "$f"; sha256sum < "${f%%=*}"; done;
         [ ${#trees[@]} -eq 0 ] || listing;
         sha256sum < "$0"; } | sha256sum | cut -c1-16)
out=$cache/image-$key
if [ -e "$out/KEY" ]; then
    ln -sfn "image-$key" "$cache/current"
    echo "$out"
    exit 0
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
if [ -n "$python" ]; then
    # what the extension modules load from outside the trees (not in the key:
    # the system's libraries, which the interpreter's own already stand for)
    while read -r so; do
        while read -r f; do
            case "${f#*=}" in "$stdlib"/* | "$venv"/*) ;; *) files+=("$f") ;; esac
        done < <(libs_of "$so")
    done < <(find "${trees[@]}" -name '*.so*' -type f)
    mapfile -t files < <(printf '%s\n' "${files[@]}" | awk '!seen[$0]++')
fi
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
if [ -n "$python" ]; then
    # the venv's bin/python (a link to the interpreter) and pyvenv.cfg come
    # with its tree; the trees' mount points and the list init binds
    mkdir -p "$stage/etc"
    printf '%s\n' "${trees[@]}" > "$stage/etc/flame-binds"
    for t in "${trees[@]}"; do mkdir -p "$stage$t"; done
fi
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
for m in virtio_ring virtio virtio_mmio virtio_console virtio_blk; do
    insmod /lib/modules/$m.ko
done
# the channel to the host: vsock where the host gave the VM a vhost-vsock
# device (libflame/sandbox/microvm.c), else the virtio-serial ports
case " $(cat /proc/cmdline) " in *" flame.channel=vsock "*)
    for m in vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport; do
        insmod /lib/modules/$m.ko
    done ;;
esac
# the python runtime's disk (python.img), where the image has one: its trees
# at their host paths
if [ -s /etc/flame-binds ]; then
    for _ in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.05; done
    mkdir -p /mnt/python
    if mount -t ext4 -o ro /dev/vda /mnt/python; then
        while read -r d; do mount --bind "/mnt/python$d" "$d"; done < /etc/flame-binds
    else
        echo "flame init: no python disk (/dev/vda) to mount" >&2
    fi
fi
exec /sbin/flame-vm-agent
EOF
chmod 755 "$stage/init"
tmp=$cache/.image-$key.$$
mkdir -p "$tmp"
(cd "$stage" && find . | "$busybox" cpio -o -H newc 2>/dev/null | gzip -1 > "$tmp/initramfs.img")
if [ -n "$python" ]; then
    disk=$(mktemp -d)
    trap 'rm -rf "$stage" "$disk"' EXIT
    for t in "${trees[@]}"; do
        mkdir -p "$disk$t"
        tar -C "$t" "${excludes[@]}" -cf - . | tar -C "$disk$t" -xf -
    done
    kb=$(du -sk "$disk" | cut -f1)
    inodes=$(find "$disk" | wc -l)
    mke2fs -q -t ext4 -O ^has_journal -L flame-python -N $((inodes + 1024)) -d "$disk" \
        "$tmp/python.img" $((kb * 12 / 10 + 32768))k
    rm -rf "$disk"
fi
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
