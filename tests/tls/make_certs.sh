#!/bin/sh
# Makes the test PKI of the TLS tests in DIR with the openssl CLI (the
# shapes of the security contract: CN = the identity, OU = the role):
#   ca.crt/.key           the cluster CA
#   server.crt/.key       CN=flame-sm OU=server, SAN localhost, 127.0.0.1
#   node.crt/.key         CN=test-node OU=node
#   admin.crt/.key        CN=alice OU=admin
#   user.crt/.key         CN=bob OU=user
#   user2.crt/.key        CN=carol OU=user
#   other-ca.crt/.key     a second, unrelated CA
#   rogue.crt/.key        CN=mallory OU=admin, issued by other-ca
#   other-server.crt/.key CN=flame-sm OU=server, issued by other-ca
#   expired.crt/.key      CN=old OU=user, issued by ca, valid 2020-01-01..02
# Usage: make_certs.sh DIR
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

ca() {
    key "$1"
    openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 3650 -subj "/CN=$1" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# leaf NAME CN OU ISSUER [SAN]
leaf() {
    key "$1"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2/OU=$3" 2>/dev/null
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=serverAuth,clientAuth"
        if [ -n "${5:-}" ]; then echo "subjectAltName=$5"; fi
    } >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$4.crt" -CAkey "$4.key" -CAcreateserial \
        -days 30 -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

ca ca
ca other-ca
leaf server flame-sm server ca "DNS:localhost,IP:127.0.0.1"
leaf node test-node node ca
leaf admin alice admin ca
leaf user bob user ca
leaf user2 carol user ca
leaf rogue mallory admin other-ca
leaf other-server flame-sm server other-ca "DNS:localhost,IP:127.0.0.1"

# An expired certificate: `openssl x509 -days` cannot go back in time,
# `openssl ca` takes explicit start and end dates.
key expired
openssl req -new -key expired.key -out expired.csr -subj "/CN=old/OU=user" 2>/dev/null
: >index.txt
echo 1000 >serial
cat >ca.cnf <<'EOF'
[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
organizationalUnitName = optional
[leaf]
basicConstraints = critical,CA:FALSE
extendedKeyUsage = serverAuth,clientAuth
EOF
openssl ca -config ca.cnf -batch -notext -cert ca.crt -keyfile ca.key -in expired.csr \
    -out expired.crt -extensions leaf -startdate 20200101000000Z -enddate 20200102000000Z \
    2>/dev/null
rm -f expired.csr index.txt* serial* ca.cnf ./*.pem ca.srl other-ca.srl
chmod 600 ./*.key
