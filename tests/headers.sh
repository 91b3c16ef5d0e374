#!/bin/sh
# Compiles every public header alone with strict flags, as C (C99 and
# C11, twice in a row for the include guard) and as C++11, and initializes
# each FLAME_<TYPE>_INIT macro's flame_<type> in both languages (and
# checks that a flame_<type>_init() function is declared beside it).
set -e
inc="$1"
cc="${CC:-cc}"
cxx="${CXX:-c++}"
strict="-Wall -Wextra -Werror -pedantic -I$inc -fsyntax-only"
n=0
for h in "$inc"/flame/*.h; do
    name=$(basename "$h")
    printf '#include <flame/%s>\nint main(void) { return 0; }\n' "$name" |
        $cc -std=c99 $strict -x c -
    printf '#include <flame/%s>\n#include <flame/%s>\n' "$name" "$name" |
        $cc -std=c11 $strict -x c -
    printf '#include <flame/%s>\n#include <flame/%s>\nint main() { return 0; }\n' "$name" "$name" |
        $cxx -std=c++11 $strict -x c++ -
    n=$((n + 1))
done
echo "headers: $n compiled alone with -Wall -Wextra -Werror -pedantic (C99, C11, C++11)"
[ "$n" -ge 9 ]

# FLAME_FOO_BAR_INIT initializes a flame_foo_bar, every field given.
inits=$(grep -ho '^#define FLAME_[A-Z0-9_]*_INIT\b' "$inc"/flame/*.h | sed 's/^#define //')
src='#include <flame/flame.h>
'
m=0
for macro in $inits; do
    type=$(echo "$macro" | sed 's/_INIT$//' | tr 'A-Z' 'a-z')
    src="$src$type v_$type = $macro;
"
    # and a flame_<type>_init() beside it, for callers without the macro
    if ! grep -q "^void ${type}_init($type \*[a-z]*);" "$inc"/flame/*.h; then
        echo "headers: $macro has no void ${type}_init($type *) beside it"
        exit 1
    fi
    m=$((m + 1))
done
src="${src}int main(void) { return 0; }"
printf '%s\n' "$src" | $cc -std=c99 $strict -x c -
printf '%s\n' "$src" | sed 's/(void)/()/' | $cxx -std=c++11 $strict -x c++ -
echo "headers: $m _INIT macros initialize their types in C and C++, each with its _init()"
[ "$m" -ge 5 ]
