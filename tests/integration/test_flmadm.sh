#!/usr/bin/env bash
# Integration: what flmadm makes, checked with the real openssl CLI: chains,
# the contract's Subject CN/OU, SANs, key usages, the CRL, file modes, a CA
# never overwritten, usage errors. Usage: test_flmadm.sh BUILD_DIR
set -uo pipefail
build="$1"
adm="$build/cli/flmadm"
tmp=$(mktemp -d)
. "$(dirname "$0")/tap.sh"
trap 'rm -rf "$tmp"' EXIT
export FLAME_HOME="$tmp/home"
ca="$FLAME_HOME/ca"
out="$tmp/out"

mode() { stat -c %a "$1"; }
check_mode() { # check_mode PATH MODE
    local m; m=$(mode "$1" 2>&1)
    [ "$m" = "$2" ] && ok "$(basename "$1") is $2" || bad "$(basename "$1") is $m, wanted $2"
}
text() { openssl x509 -in "$1" -noout -text; }
verify() { openssl verify -CAfile "$ca/ca.crt" "$@"; }
verify_crl() { openssl verify -crl_check -CAfile "$ca/ca.crt" -CRLfile "$ca/crl.pem" "$@"; }

# ---- usage ----
check "--help" 0 'Usage: flmadm COMMAND' -- "$adm" --help
check "issue --help" 0 'issue user NAME' -- "$adm" issue --help
check "--version" 0 '^flmadm [0-9]' -- "$adm" --version
check "no command: usage error" 2 'a command is needed' -- "$adm"
check "unknown command: usage error" 2 'unknown command' -- "$adm" frobnicate
check "unknown option: usage error" 2 'unknown option' -- "$adm" list --bogus
check "option of another command: usage error" 2 'list does not take --days' -- "$adm" list --days 3
check "ca without init: usage error" 2 'ca init' -- "$adm" ca
check "issue of an unknown kind: usage error" 2 'server\|node\|user' -- "$adm" issue robot r1
check "issue without a name: usage error" 2 'a kind' -- "$adm" issue user
check "--role admin for a node: usage error" 2 'role is for issue user' -- "$adm" issue node n1 --role admin
check "--role root: usage error" 2 'user or admin' -- "$adm" issue user u --role root
check "--san for a user: usage error" 2 'san is for issue server' -- "$adm" issue user u --san DNS:x
check "a SAN of another type: usage error" 2 'DNS:NAME or IP:ADDRESS' -- "$adm" issue server s --san URI:http://x
check "a bad IP SAN: usage error" 2 'DNS:NAME or IP:ADDRESS' -- "$adm" issue server s --san IP:300.1.1.1
check "a name with a tab: usage error" 2 'a name is' -- "$adm" issue user "$(printf 'a\tb')"
check "--days 0: usage error" 2 'days takes' -- "$adm" issue user u --days 0
check "--days without a value: usage error" 2 'missing its value' -- "$adm" issue user u --days
check "--key-type dsa: usage error" 2 'ec or rsa' -- "$adm" ca init --key-type dsa
check "revoke without a target: usage error" 2 'one serial or name' -- "$adm" revoke
check "issue before ca init: fails" 1 'no CA in .*flmadm ca init' -- "$adm" issue user u --out "$out"
[ ! -e "$ca" ] && ok "usage errors create nothing" || bad "usage errors created $ca"

# ---- the CA ----
check "ca init (FLAME_HOME/ca by default)" 0 'Created the CA "Test CA"' -- "$adm" ca init --name "Test CA"
check_mode "$ca" 700
check_mode "$ca/ca.key" 600
check "the CA certificate is its own issuer" 0 'OK' -- verify "$ca/ca.crt"
check "CA:TRUE, critical" 0 'Basic Constraints: critical' -- text "$ca/ca.crt"
check "CA:TRUE" 0 'CA:TRUE' -- text "$ca/ca.crt"
check "keyCertSign + cRLSign" 0 'Certificate Sign, CRL Sign' -- text "$ca/ca.crt"
check "the CA's subject" 0 'CN ?= ?Test CA' -- openssl x509 -in "$ca/ca.crt" -noout -subject
check "ca.key is the key of ca.crt" 0 '' -- cmp <(openssl x509 -in "$ca/ca.crt" -noout -pubkey) \
    <(openssl pkey -in "$ca/ca.key" -pubout)
check "an empty CRL from the start" 0 'No Revoked Certificates' -- openssl crl -in "$ca/crl.pem" -noout -text
sum=$(sha256sum "$ca/ca.key" "$ca/ca.crt")
check "ca init again: refused" 1 'already exists.*refusing' -- "$adm" ca init
check "ca init --dir on the same dir: refused" 1 'refusing' -- "$adm" ca init --dir "$ca"
[ "$sum" = "$(sha256sum "$ca/ca.key" "$ca/ca.crt")" ] && ok "the CA is untouched" || bad "the CA changed"

# ---- issue ----
check "issue server" 0 'Issued the server certificate of flame-sm' -- \
    "$adm" issue server flame-sm --san DNS:sm.example.com,IP:10.1.2.3 --san IP:fd00::7 --out "$out"
check "issue node" 0 'node certificate of n1' -- "$adm" issue node n1 --out "$out"
check "issue user --role admin" 0 'admin certificate of alice' -- "$adm" issue user alice --role admin --out "$out"
check "issue user" 0 'user certificate of bob' -- "$adm" issue user bob --out "$out"
check "issue user carol@example.com (RSA, 30 days)" 0 'user certificate of carol@example.com' -- \
    "$adm" issue user carol@example.com --key-type rsa --days 30 --out "$out"
for n in flame-sm n1 alice bob carol@example.com; do
    check_mode "$out/$n.key" 600
    check "$n.crt verifies against the CA" 0 ': OK' -- verify "$out/$n.crt"
    check "$n.key is the key of $n.crt" 0 '' -- cmp <(openssl x509 -in "$out/$n.crt" -noout -pubkey) \
        <(openssl pkey -in "$out/$n.key" -pubout)
    check "$n.crt is not a CA" 0 'CA:FALSE' -- text "$out/$n.crt"
done
check "ca.crt beside the certificates" 0 '' -- cmp "$ca/ca.crt" "$out/ca.crt"
check "server: CN and OU" 0 'OU ?= ?server, CN ?= ?flame-sm' -- openssl x509 -in "$out/flame-sm.crt" -noout -subject
check "node: CN and OU" 0 'OU ?= ?node, CN ?= ?n1' -- openssl x509 -in "$out/n1.crt" -noout -subject
check "admin: CN and OU" 0 'OU ?= ?admin, CN ?= ?alice' -- openssl x509 -in "$out/alice.crt" -noout -subject
check "user: CN and OU" 0 'OU ?= ?user, CN ?= ?bob' -- openssl x509 -in "$out/bob.crt" -noout -subject
sans=$(openssl x509 -in "$out/flame-sm.crt" -noout -ext subjectAltName 2>&1)
for want in "DNS:localhost" "IP Address:127.0.0.1" "DNS:$(hostname)" "DNS:flame-sm" "DNS:sm.example.com" \
    "IP Address:10.1.2.3" "IP Address:FD00:0:0:0:0:0:0:7"; do
    grep -qiF "$want" <<<"$sans" && ok "server SAN $want" || bad "server SAN $want missing" "$sans"
done
text "$out/bob.crt" | grep -q 'Alternative Name' && bad "a user certificate has SANs" || ok "no SANs on a user certificate"
check "server: serverAuth" 0 'TLS Web Server Authentication' -- text "$out/flame-sm.crt"
check "server: for TLS servers" 0 ': OK' -- verify -purpose sslserver "$out/flame-sm.crt"
check "server: not a TLS client" 2 'unsuitable certificate purpose' -- verify -purpose sslclient "$out/flame-sm.crt"
for n in n1 alice bob carol@example.com; do
    check "$n: clientAuth" 0 'TLS Web Client Authentication' -- text "$out/$n.crt"
    check "$n: for TLS clients" 0 ': OK' -- verify -purpose sslclient "$out/$n.crt"
    check "$n: not a TLS server" 2 'unsuitable certificate purpose' -- verify -purpose sslserver "$out/$n.crt"
done
check "EC keys: digitalSignature only" 0 'Key Usage: critical' -- text "$out/bob.crt"
check "RSA 3072 key" 0 'Public-Key: \(3072 bit\)' -- text "$out/carol@example.com.crt"
check "RSA: keyEncipherment" 0 'Digital Signature, Key Encipherment' -- text "$out/carol@example.com.crt"
end=$(date -d "$(openssl x509 -in "$out/carol@example.com.crt" -noout -enddate | cut -d= -f2)" +%s)
days=$(( (end - $(date +%s) + 43200) / 86400 ))
[ "$days" = 30 ] && ok "--days 30" || bad "--days 30 gave $days days"
end=$(date -d "$(openssl x509 -in "$out/bob.crt" -noout -enddate | cut -d= -f2)" +%s)
days=$(( (end - $(date +%s) + 43200) / 86400 ))
[ "$days" = 365 ] && ok "365 days by default" || bad "the default gave $days days"
s1=$(openssl x509 -in "$out/alice.crt" -noout -serial)
s2=$(openssl x509 -in "$out/bob.crt" -noout -serial)
[ "$s1" != "$s2" ] && [ ${#s1} -ge 30 ] && ok "fresh random serials" || bad "serials $s1 $s2"
check "issue into the CA dir: refused" 1 'the CA directory' -- "$adm" issue user ca2 --out "$ca"
check "the name ca: usage error" 2 'name ca is taken' -- "$adm" issue user ca --out "$out"
check "the name local: usage error" 2 'reserved' -- "$adm" issue user local --out "$out"
check "the name anonymous: usage error" 2 'reserved' -- "$adm" issue node anonymous --out "$out"
sum=$(sha256sum "$out/bob.key")
check "issue over existing files: refused" 1 'use --force' -- "$adm" issue user bob --out "$out"
[ "$sum" = "$(sha256sum "$out/bob.key")" ] && ok "bob.key untouched" || bad "bob.key changed"
check "issue --force replaces them, says the old one stays valid" 0 'earlier certificate .* stays valid' -- \
    "$adm" issue user bob --force --out "$out"
check_mode "$out/bob.key" 600
check "the index keeps a copy of every certificate" 0 '' -- test "$(ls "$ca/issued" | wc -l)" = 6

# ---- list ----
check "list: header" 0 '^Serial +Name +Role +Expires +Revoked +State' -- "$adm" list
check "list: the server" 0 'flame-sm +server .* Valid' -- "$adm" list
check "list: alice is admin" 0 'alice +admin .* Valid' -- "$adm" list
check "list: two certificates of bob" 0 '' -- test "$("$adm" list | grep -c ' bob ')" = 2
check "list --dir" 0 'n1 +node' -- env -u FLAME_HOME "$adm" list --dir "$ca"

# ---- revoke and the CRL ----
for n in flame-sm n1 alice bob; do
    check "$n passes the CRL check before any revocation" 0 ': OK' -- verify_crl "$out/$n.crt"
done
cp "$out/bob.crt" "$tmp/bob-new.crt"
check "revoke NAME revokes every valid certificate of bob" 0 'Revoked .*user bob' -- "$adm" revoke bob
check "two revoked" 0 '' -- test "$("$adm" list | grep -c ' bob .*Revoked$')" = 2
check "bob fails the CRL check" 2 'certificate revoked' -- verify_crl "$tmp/bob-new.crt"
for n in flame-sm n1 alice; do
    check "$n still passes the CRL check" 0 ': OK' -- verify_crl "$out/$n.crt"
done
serial=$(openssl x509 -in "$out/n1.crt" -noout -serial | cut -d= -f2)
check "revoke SERIAL (lower case)" 0 "Revoked $serial \(node n1\)" -- "$adm" revoke "${serial,,}"
check "n1 fails the CRL check" 2 'certificate revoked' -- verify_crl "$out/n1.crt"
check "alice passes the CRL check" 0 ': OK' -- verify_crl "$out/alice.crt"
check "revoke again: nothing valid left" 1 'no valid certificate' -- "$adm" revoke "$serial"
check "revoke an unknown name" 1 'no valid certificate' -- "$adm" revoke mallory
check "revoke alice --role user: not that role" 1 'and role user' -- "$adm" revoke alice --role user
check "list: n1 revoked" 0 'n1 +node .*Revoked$' -- "$adm" list
check "the CRL is signed by the CA" 0 'verify OK' -- openssl crl -in "$ca/crl.pem" -CAfile "$ca/ca.crt" -noout
check "the CRL has a next update" 0 'nextUpdate=' -- openssl crl -in "$ca/crl.pem" -noout -nextupdate
n1=$(openssl crl -in "$ca/crl.pem" -noout -crlnumber | cut -d= -f2)
check "crl rewrites it" 0 'Wrote the CRL .*: 3 revoked' -- "$adm" crl --crl-days 7
n2=$(openssl crl -in "$ca/crl.pem" -noout -crlnumber | cut -d= -f2)
[ $((16#$n2)) -gt $((16#$n1)) ] && ok "the CRL number grows" || bad "CRL number $n1 -> $n2"
end=$(date -d "$(openssl crl -in "$ca/crl.pem" -noout -nextupdate | cut -d= -f2)" +%s)
days=$(( (end - $(date +%s) + 43200) / 86400 ))
[ "$days" = 7 ] && ok "--crl-days 7" || bad "--crl-days 7 gave $days days"
check "still revoked after the rewrite" 2 'certificate revoked' -- verify_crl "$out/n1.crt"
check_mode "$ca/ca.key" 600
check_mode "$ca" 700

echo "$pass passed, $failn failed"
[ "$failn" -eq 0 ]
