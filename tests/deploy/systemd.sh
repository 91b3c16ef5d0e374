#!/usr/bin/env bash
# deploy-systemd: `meson install --destdir` puts the three units, their
# sysusers entry and the example config where systemd finds them; the units
# pass `systemd-analyze verify` (any complaint fails: verify exits 0 on an
# unknown key) and `systemd-analyze security` stays under each daemon's
# exposure threshold (the servers are locked down; the executor manager
# keeps what the sandbox levels need).
#   systemd.sh BUILD_DIR
set -euo pipefail
build=$1
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze (Debian's systemd package)"; exit 77; }
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$dest.log" 2>&1 ||
    { cat "$dest.log"; rm -f "$dest.log"; exit 1; }
rm -f "$dest.log"
unitdir=$(meson introspect "$build" --buildoptions |
          python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="systemdsystemunitdir"))')
[ -n "$unitdir" ] || unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
fail=0
units=()
for u in flame-session-manager flame-executor-manager flame-object-cache; do
    f="$dest$unitdir/$u.service"
    if [ ! -f "$f" ]; then echo "FAIL: $u.service is not installed in $unitdir"; fail=1; continue; fi
    units+=("$f")
    exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$f")
    [ -x "$dest$exe" ] || { echo "FAIL: $u.service runs $exe, which meson did not install"; fail=1; }
    grep -qE "@[a-z_]+@" "$f" && { echo "FAIL: $u.service keeps an unsubstituted @...@"; fail=1; }
done
[ "$fail" = 0 ] || exit 1
for f in $(find "$dest" -name flame.conf -path '*sysusers.d*') $(find "$dest" -name flame-cluster.yaml.example); do
    echo "installed: ${f#"$dest"}"
done
[ -n "$(find "$dest" -name flame.conf -path '*sysusers.d*')" ] || { echo "FAIL: no sysusers.d/flame.conf"; exit 1; }
[ -n "$(find "$dest" -name flame-cluster.yaml.example)" ] || { echo "FAIL: no flame-cluster.yaml.example"; exit 1; }

# verify inside the install root: the units it names (targets, slices)
# come from this host's systemd
mkdir -p "$dest$unitdir"
cp -rn /lib/systemd/system/. "$dest$unitdir/" 2>/dev/null || true
out=$(systemd-analyze verify --root="$dest" "${units[@]}" 2>&1) || { echo "$out"; echo "FAIL: verify"; exit 1; }
if [ -n "$out" ]; then echo "$out"; echo "FAIL: systemd-analyze verify complained"; exit 1; fi
echo "ok: systemd-analyze verify of ${#units[@]} units"

# exposure (0 = locked down .. 10 = unprotected)
for f in "${units[@]}"; do
    case "$f" in *executor-manager*) max=6.0 ;; *) max=2.0 ;; esac
    line=$(systemd-analyze security --offline=yes --root="$dest" "$f" 2>&1 | grep 'Overall exposure') || true
    score=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
    if [ -z "$score" ] || ! awk -v s="$score" -v m="$max" 'BEGIN{exit !(s <= m)}'; then
        echo "FAIL: $(basename "$f"): exposure ${score:-unknown} > $max"; fail=1
    else
        echo "ok: $(basename "$f") exposure $score (max $max)"
    fi
done
exit $fail
