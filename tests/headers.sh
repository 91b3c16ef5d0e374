#!/bin/sh
# Compiles every public header alone with strict flags (C and C++ style).
set -e
inc="$1"
cc="${CC:-cc}"
n=0
for h in "$inc"/flame/*.h; do
    name=$(basename "$h")
    printf '#include <flame/%s>\nint main(void) { return 0; }\n' "$name" |
        $cc -std=c99 -Wall -Wextra -Werror -pedantic -I"$inc" -fsyntax-only -x c -
    printf '#include <flame/%s>\n#include <flame/%s>\n' "$name" "$name" |
        $cc -std=c11 -Wall -Wextra -Werror -pedantic -I"$inc" -fsyntax-only -x c -
    n=$((n + 1))
done
echo "headers: $n compiled alone with -Wall -Wextra -Werror -pedantic"
[ "$n" -ge 9 ]
