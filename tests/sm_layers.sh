#!/bin/sh
# Keeps the session manager's layering honest: each file of libflame/sm may
# call only the functions of the files listed after it, never of those
# before it (handler files are leaves nothing calls; services never call
# the core), and only reply.c answers calls. Grep-based: a definition is a
# line at column 0 that names a non-static sm_ function and does not end
# with ';'.
# Usage: sm_layers.sh LIBFLAME_SM_DIR
set -eu
dir=${1:?usage: sm_layers.sh libflame/sm}

# top to bottom
order="frontend.c backend.c
engine.c options.c validate.c
undo.c schedule.c builtin.c app.c node.c session.c executor.c task.c launch_none.c provide.c metrics.c
journal.c dispatch.c watch.c reply.c"

defs() {
    grep -v '^static' "$dir/$1" | grep -v ';[[:space:]]*$' |
        sed -n 's/^[A-Za-z][^(=]*[ *]\(sm_[a-z0-9_]*\)(.*/\1/p'
}

status=0
above=""
for f in $order; do
    [ -f "$dir/$f" ] || { echo "sm_layers: $dir/$f is missing (update the order)"; exit 1; }
    for g in $above; do
        for fn in $(defs "$g"); do
            # a call or a use of the name, outside comments
            if grep -v '^[[:space:]]*/\?\*' "$dir/$f" | grep -qw "$fn"; then
                echo "sm_layers: $f calls $fn, defined in $g above it"
                status=1
            fi
        done
    done
    above="$above $f"
done

# every .c of the directory has a place in the order
for p in "$dir"/*.c; do
    f=$(basename "$p")
    case " $(echo $order) " in
        *" $f "*) ;;
        *) echo "sm_layers: $f has no layer; add it to the order"; status=1 ;;
    esac
done

# every answer goes through reply.c (after the commit)
for p in "$dir"/*.c; do
    f=$(basename "$p")
    [ "$f" = reply.c ] && continue
    if grep -n 'rpc_call_\(reply\|send\|finish\)' "$p"; then
        echo "sm_layers: $f answers a call directly; use reply.c (sm_reply, sm_send, sm_finish...)"
        status=1
    fi
done

# handler files export nothing but their method tables
for f in frontend.c backend.c; do
    if [ -n "$(defs "$f")" ]; then
        echo "sm_layers: $f defines non-static functions: $(defs "$f" | tr '\n' ' ')"
        status=1
    fi
done
exit $status
