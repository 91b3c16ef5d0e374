#!/bin/sh
# A Flame application in plain shell: the stdio shim's line mode. One line
# in, one line out per task; a line starting "error: " fails the task.
# It keeps a running total across a session's tasks: every input is a
# number added to it, and the answer is the total. "crash" exits (the
# executor fails that task and starts the script again, from 0); "hang"
# never answers (the task times out; the script is started again).
total=0
while IFS= read -r line; do
    case "$line" in
        crash) echo "counter.sh: asked to crash" >&2; exit 3 ;;
        hang) sleep 1000000 ;;
        ''|*[!0-9-]*) echo "error: not a number: $line" ;;
        *) total=$((total + line)); echo "$total" ;;
    esac
done
