#!/bin/sh
# The exported-symbol check: libflame.so exports exactly the functions
# declared in include/flame/ (all named flame_*) and its version node;
# nothing else leaves it, and nothing declared is missing. Prints the
# offenders. Needs gcc (its -aux-info lists every declared function).
set -e
lib="$1"
inc="$2"
gcc="${GCC:-gcc}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Declared: the non-static functions whose declarations sit in include/flame/.
printf '#include <flame/flame.h>\n' |
    $gcc -std=c11 -I"$inc" -fsyntax-only -aux-info "$tmp/aux" -x c -
grep '/flame/[a-z_]*\.h:' "$tmp/aux" | grep -v '\*/ static ' |
    sed -E 's/^.*[ *]([A-Za-z_][A-Za-z0-9_]*) \(.*$/\1/' | sort -u >"$tmp/declared"

# Exported: every defined dynamic symbol but the version node (FLAME_<n>).
nm -D --defined-only --without-symbol-versions "$lib" |
    awk '!($2 == "A" && $3 ~ /^FLAME_[0-9_]+$/) { print $3 }' | sort -u >"$tmp/exported"

bad=0
report() {
    if [ -s "$2" ]; then
        echo "symbols: $1:"
        sed 's/^/    /' "$2"
        bad=1
    fi
}
grep -v '^flame_[a-z0-9]' "$tmp/declared" >"$tmp/badname" || true
grep -v '^flame_[a-z0-9]' "$tmp/exported" >>"$tmp/badname" || true
report "not named flame_<name>" "$tmp/badname"
comm -23 "$tmp/declared" "$tmp/exported" >"$tmp/missing"
report "declared in include/flame/ but not exported" "$tmp/missing"
comm -13 "$tmp/declared" "$tmp/exported" >"$tmp/extra"
report "exported but not declared in include/flame/" "$tmp/extra"
[ $bad -eq 0 ] || exit 1
n=$(wc -l <"$tmp/exported")
echo "symbols: $n exported, each declared in include/flame/, none missing"
[ "$n" -ge 60 ]
