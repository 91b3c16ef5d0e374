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
check "list -a header" 0 '^Name +State +Shim +Created' -- "$flmctl" list -a

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
check "view -a" 0 'Environment: GREETING=hello' -- "$flmctl" view -a echo-app
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
printf 'metadata:\n  name: x\nspec:\n  sandbox_reuse: sometimes\n' >"$tmp/bad.yaml"
check "bad sandbox_reuse names the key" 1 'spec.sandbox_reuse: expected true or false' -- "$flmctl" register -f "$tmp/bad.yaml"
printf 'metadata: [\n' >"$tmp/broken.yaml"
check "broken yaml" 1 'invalid YAML' -- "$flmctl" register -f "$tmp/broken.yaml"

check "create session" 0 'Session <echo-app-[a-z0-9]{6}> was created' -- "$flmctl" create -a echo-app -p 2 -r cpu=2,mem=512m
sid=$("$flmctl" list -s | awk 'NR==2 {print $1}')
check "list -s columns" 0 '^ID +State +App +Resources +Priority +Pending +Running +Succeed +Failed +Created' -- "$flmctl" list -s
check "list -s row" 0 "^$sid +Open +echo-app +cpu=2,mem=512m,gpu=0 +2 +0 +0 +0 +0 " -- "$flmctl" list -s
check "view -s" 0 'Priority: +2' -- "$flmctl" view -s "$sid"
check "view -s -o json" 0 '"state":[[:space:]]*"Open"' -- "$flmctl" view -s "$sid" -o json
check "create for unknown app" 1 'application nope not found' -- "$flmctl" create -a nope
check "create with bad resreq" 1 'resreq' -- "$flmctl" create -a echo-app -r cpu=lots
check "update refused while open" 1 'open session' -- "$flmctl" update -a "$tmp/app.yaml"
check "unregister refused while open" 1 'open session' -- "$flmctl" unregister -a echo-app
check "close" 0 "Session <$sid> was closed" -- "$flmctl" close -s "$sid"
check "close again succeeds" 0 "was closed" -- "$flmctl" close -s "$sid"
check "closed state" 0 "^$sid +Closed" -- "$flmctl" list -s
check "view unknown task" 1 "task 1 not found in session $sid" -- "$flmctl" view -s "$sid" -t 1
check "update after close" 0 'Application echo-app was updated' -- "$flmctl" update -a "$tmp/app.yaml"
check "unregister" 0 'Application echo-app was unregistered' -- "$flmctl" unregister -a echo-app
check "its closed sessions are gone" 1 "session $sid not found" -- "$flmctl" view -s "$sid"
check "list -e" 0 '^ID +State +Node +Session' -- "$flmctl" list -e
check "list -n" 0 '^Name +State +Capacity' -- "$flmctl" list -n
check "usage error" 2 'list needs one of' -- "$flmctl" list
check "unknown command" 2 'unknown command' -- "$flmctl" frobnicate
check "--help" 0 'Usage: flmctl' -- "$flmctl" --help
check "a command's --help" 0 '^Usage: flmctl .*create -a APP' -- "$flmctl" create --help
check "a command's -h lists its options" 0 '^  -n, --node' -- "$flmctl" list -h
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
