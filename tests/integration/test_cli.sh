#!/usr/bin/env bash
# Integration: the real flame-session-manager daemon (config file, sqlite)
# driven through flmctl. Usage: test_cli.sh BUILD_DIR
set -uo pipefail
build="$1"
sm="$build/daemons/flame-session-manager"
flmctl="$build/cli/flmctl"
tmp=$(mktemp -d)
. "$(dirname "$0")/tap.sh"
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

wait_ready() {
    for _ in $(seq 100); do "$flmctl" list -a >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "# the session manager did not come up:"; sed 's/^/#   /' "$tmp/sm.log"; return 1
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'cluster:\n  name: cli-test\n  endpoint: "http://127.0.0.1:%s"\n  storage: "sqlite://%s/flame.db"\n  resreq: "cpu=1,mem=1g"\n  schedule_interval: 200\n' \
    "$port" "$tmp" >"$tmp/cluster.yaml"
"$sm" --config "$tmp/cluster.yaml" >"$tmp/sm.log" 2>&1 &
pid=$!
export FLAME_ENDPOINT="http://127.0.0.1:$port"
wait_ready || exit 1

check "list -a shows the built-in applications" 0 'flmping +Enabled +Host' -- "$flmctl" list -a
check "list -a header (Flame's columns)" 0 '^ Name +State +Shim +Tags +Created +Command +$' -- "$flmctl" list -a

cat >"$tmp/app.yaml" <<'YAML'
metadata:
  name: echo-app
spec:
  shim: Host
  command: /bin/cat
  arguments: ["-u"]
  environments:
    GREETING: hello
  working_directory: /tmp
  max_instances: 2
  delay_release: 10
  sandbox: process
  network: host
  sandbox_reuse: true
---
metadata:
  name: bare-app
YAML
check "register two documents" 0 'Application bare-app was registered' -- "$flmctl" register -f "$tmp/app.yaml"
check "register again: exists" 1 'already exists' -- "$flmctl" register -f "$tmp/app.yaml"
check "view -a" 0 '^	GREETING: hello$' -- "$flmctl" view -a echo-app
check "view -a -o json" 0 '"max_instances":[[:space:]]*2' -- "$flmctl" view -a echo-app -o json
check "view -a shows the sandbox" 0 'Sandbox: +process' -- "$flmctl" view -a echo-app
check "view -a shows the network" 0 'Network: +host' -- "$flmctl" view -a echo-app
check "view -a: no level is the node's" 0 'Sandbox: +default' -- "$flmctl" view -a bare-app
check "view -a shows sandbox reuse" 0 'Reuse: +by the same owner' -- "$flmctl" view -a echo-app
check "view -a: no reuse by default" 0 'Reuse: +no' -- "$flmctl" view -a bare-app
check "view unknown application" 1 'application nope not found' -- "$flmctl" view -a nope

printf 'metadata:\n  name: x\nspec:\n  working_directory: relative\n' >"$tmp/bad.yaml"
check "bad app yaml names the key" 1 'spec.working_directory' -- "$flmctl" register -f "$tmp/bad.yaml"
printf 'metadata:\n  name: x\nspec:\n  sandbox: jail\n' >"$tmp/bad.yaml"
check "bad sandbox level names the key" 1 'spec.sandbox: expected none, process or microvm' -- "$flmctl" register -f "$tmp/bad.yaml"
printf 'metadata:\n  name: x\nspec:\n  network: bridge\n' >"$tmp/bad.yaml"
check "bad network names the key" 1 'spec.network: expected none or host' -- "$flmctl" register -f "$tmp/bad.yaml"
printf 'metadata:\n  name: x\nspec:\n  comand: /bin/cat\n' >"$tmp/bad.yaml"
check "an unknown key in the application YAML names it" 1 'bad.yaml:4: spec.comand: unknown key' -- "$flmctl" register -f "$tmp/bad.yaml"
printf 'metadata:\n  name: x\n  labels: [a]\n' >"$tmp/bad.yaml"
check "an unknown metadata key" 1 'metadata.labels: unknown key' -- "$flmctl" register -f "$tmp/bad.yaml"
printf 'metadata:\n  name: x\nkind: App\n' >"$tmp/bad.yaml"
check "an unknown top-level key" 1 ':3: kind: unknown key' -- "$flmctl" register -f "$tmp/bad.yaml"
printf 'metadata:\n  name: x\nspec:\n  schema:\n    inputs: {}\n' >"$tmp/bad.yaml"
check "an unknown schema key" 1 'spec.schema.inputs: unknown key' -- "$flmctl" register -f "$tmp/bad.yaml"
printf 'metadata:\n  name: x\nspec:\n  sandbox_reuse: sometimes\n' >"$tmp/bad.yaml"
check "bad sandbox_reuse names the key" 1 'spec.sandbox_reuse: expected true or false' -- "$flmctl" register -f "$tmp/bad.yaml"
printf 'metadata: [\n' >"$tmp/broken.yaml"
check "broken yaml" 1 'invalid YAML' -- "$flmctl" register -f "$tmp/broken.yaml"

check "create session" 0 'Session <echo-app-[a-z0-9]{6}> was created' -- "$flmctl" create -a echo-app -p 2 -r cpu=2,mem=512m
sid=$("$flmctl" list -s | awk 'NR==2 {print $1}')
check "list -s columns" 0 '^ ID +State +App +Resources +Priority +Pending +Running +Succeed +Failed +Created +$' -- "$flmctl" list -s
check "list -s row" 0 "^ $sid +Open +echo-app +cpu=2,mem=512Mi,gpu=0 +2 +0 +0 +0 +0 " -- "$flmctl" list -s
check "view -s" 0 'Priority: +2' -- "$flmctl" view -s "$sid"
check "view -s -o json" 0 '"state":[[:space:]]*"Open"' -- "$flmctl" view -s "$sid" -o json
check "create for unknown app" 1 'application nope not found' -- "$flmctl" create -a nope
check "create with bad resreq" 1 'resreq' -- "$flmctl" create -a echo-app -r cpu=lots
check "update refused while open" 1 'open session' -- "$flmctl" update -f "$tmp/app.yaml"
check "unregister refused while open" 1 'open session' -- "$flmctl" unregister -a echo-app
check "close" 0 "Session <$sid> was closed" -- "$flmctl" close -s "$sid"
check "close again succeeds" 0 "was closed" -- "$flmctl" close -s "$sid"
check "closed state" 0 "^ $sid +Closed" -- "$flmctl" list -s
check "view unknown task" 1 "task 1 not found in session $sid" -- "$flmctl" view -s "$sid" -t 1
check "update -a FILE is a usage error" 2 'update takes the file with -f' -- "$flmctl" update -a "$tmp/app.yaml"
"$flmctl" create -a bare-app >/dev/null && "$flmctl" create -a bare-app >/dev/null
check "list -s --state open" 0 '' -- test "$("$flmctl" list -s --state open | grep -c ' Open ')" = 2
check "list -s --state closed" 0 "^ $sid +Closed" -- "$flmctl" list -s --state closed
check "list -s --state closed shows no open one" 1 '' -- sh -c "'$flmctl' list -s --state closed | grep ' Open '"
check "list -s --app" 0 '' -- test "$("$flmctl" list -s --app bare-app | grep -c bare-app)" = 2
check "list -s --limit" 0 '' -- test "$("$flmctl" list -s --limit 2 | wc -l)" = 3
check "list -s: open sessions first" 0 '' -- test "$("$flmctl" list -s | awk 'NR>1 {print $2}' | tr '\n' ' ')" = "Open Open Closed "
check "list -s -o wide: ours after Flame's columns" 0 '^ ID +State +App +Resources +Priority +Pending +Running +Succeed +Failed +Created +Cancelled +Completed +$' -- "$flmctl" list -s -o wide
check "list -a -o wide" 0 '^ echo-app .* process +host +$' -- "$flmctl" list -a -o wide
check "list -o json is not a list format" 2 'list -o takes only "wide"' -- "$flmctl" list -a -o json
check "list -s --state bad" 2 '--state takes open or closed' -- "$flmctl" list -s --state maybe
check "--limit without -s" 2 'go with list -s' -- "$flmctl" list -a --limit 1
check "list -s --limit bad" 2 '--limit takes' -- "$flmctl" list -s --limit -1
open1=$("$flmctl" list -s --state open --limit 1 | awk 'NR==2 {print $1}')
check "delete -s of an open session closes and deletes it (as Flame does)" 0 "Session <$open1> was deleted" -- "$flmctl" delete -s "$open1"
check "delete -s" 0 "Session <$sid> was deleted" -- "$flmctl" delete -s "$sid"
check "a deleted session is gone" 1 "session $sid not found" -- "$flmctl" view -s "$sid"
check "delete unknown" 1 "not found" -- "$flmctl" delete -s "$sid"
check "delete needs -s" 2 'delete needs -s ID' -- "$flmctl" delete
for s2 in $("$flmctl" list -s --state open | awk 'NR>1 {print $1}'); do "$flmctl" close -s "$s2" >/dev/null; done
check "update after close" 0 'Application echo-app was updated' -- "$flmctl" update -f "$tmp/app.yaml"
check "unregister" 0 'Application echo-app was unregistered' -- "$flmctl" unregister -a echo-app
check "no echo-app session is left" 1 '' -- sh -c "'$flmctl' list -s | grep echo-app"
check "list -e" 0 '^ ID +State +Session +Node +$' -- "$flmctl" list -e
check "list -n" 0 '^ NAME +HOSTNAME +STATUS +CPU +MEMORY +ARCH +OS +$' -- "$flmctl" list -n
check "usage error" 2 'list needs one of' -- "$flmctl" list
check "unknown command" 2 'unknown command' -- "$flmctl" frobnicate
check "--help" 0 'Usage: flmctl' -- "$flmctl" --help
check "a command's --help" 0 '^Usage: flmctl .*create -a APP' -- "$flmctl" create --help
check "a command's -h lists its options" 0 '^  -n, --node' -- "$flmctl" list -h
for c in list view create close delete watch register unregister update; do
    check "$c --help" 0 "^Usage: flmctl \\[--endpoint URL\\] $c " -- "$flmctl" "$c" --help
done
check "view with two things to show" 2 'view needs one of' -- "$flmctl" view -a x -s y
check "an option a command does not take" 2 'close: unknown option' -- "$flmctl" close -a x
check "a stray argument" 2 'unexpected argument "extra"' -- "$flmctl" list -s extra
check "watch needs -s" 2 'watch needs -s ID' -- "$flmctl" watch
check "watch of an unknown session" 1 'not found' -- "$flmctl" watch -s nope
# one "flmctl:" and one "error" at most: no doubled prefixes
for args in "view -s nope" "view -a nope" "create -a nope" "register -f $tmp/none.yaml" "watch -s nope"; do
    out=$("$flmctl" $args 2>&1)
    if [ "$(grep -o 'flmctl:' <<<"$out" | wc -l)" = 1 ] && ! grep -qiE 'error:? *error|: *([a-z]+): *\1:' <<<"$out"; then
        ok "no doubled prefix: $args"
    else
        bad "doubled prefix: $args" "$out"
    fi
done
check "--version" 0 '^flmctl [0-9]+\.[0-9]+\.[0-9]+' -- "$flmctl" --version
check "unreachable endpoint" 1 'flmctl: ' -- "$flmctl" --endpoint http://127.0.0.1:1 list -s

# the daemon itself: bad config -> exit 2 naming the key; the running one is unharmed
printf 'cluster:\n  schedule_interval: often\n' >"$tmp/bad-cluster.yaml"
check "bad cluster config exits 2" 2 'cluster.schedule_interval' -- "$sm" --config "$tmp/bad-cluster.yaml"
check "missing config file" 1 'cannot open' -- "$sm" --config "$tmp/none.yaml"
check "port in use" 1 'cannot listen' -- "$sm" --config "$tmp/cluster.yaml" --storage none
check "daemon still up" 0 'bare-app' -- "$flmctl" list -a

# restart: state comes back from sqlite
kill "$pid"; wait "$pid"; rc=$?
if [ "$rc" -eq 0 ]; then ok "SIGTERM stops the daemon cleanly"; else bad "SIGTERM exit $rc" "$(tail -20 "$tmp/sm.log")"; fi
"$sm" --config "$tmp/cluster.yaml" >>"$tmp/sm.log" 2>&1 &
pid=$!
wait_ready || exit 1
check "applications survive a restart" 0 'bare-app' -- "$flmctl" list -a
kill "$pid"; wait "$pid"; rc=$?; pid=
if [ "$rc" -eq 0 ]; then ok "clean stop after restart"; else bad "SIGTERM exit $rc" "$(tail -20 "$tmp/sm.log")"; fi

echo "$pass passed, $failn failed"
[ "$failn" -eq 0 ]
