#!/bin/sh
# Makes the test PKI of the auth tests with the openssl CLI, fresh on every
# run (no key material in the repo): a cluster CA and certificates whose
# Subject says who and what (CN = name, OU = role), as flmadm issues them.
# Usage: certs.sh OUTDIR
#   ca.crt/key                 the cluster CA
#   server.crt/key             OU=server, SAN localhost + 127.0.0.1
#   admin, alice, bob (user), n1, n2 (node) .crt/.key
#   revoked.crt/key            a user certificate listed in crl.pem
#   noou (no OU), badrole (OU=root), local (a reserved name), twoou (two OUs)
#   crl.pem                    CRL signed by the CA revoking revoked.crt
#                              (its serial, as openssl prints it, in revoked.serial)
#   crl-empty.pem              the same CA's CRL revoking nothing
#   other-ca.crt, crl-other.pem  another CA and a CRL it signed
set -eu
out=${1:?usage: certs.sh OUTDIR}
mkdir -p "$out"
cd "$out"
days=3650
ossl() { openssl "$@" 2>/dev/null; }

cat > ca.cnf <<'EOF'
[ ca ]
default_ca = CA
[ CA ]
dir = .
database = index.txt
new_certs_dir = .
certificate = ca.crt
private_key = ca.key
default_md = sha256
default_crl_days = 3650
policy = any
[ any ]
commonName = supplied
[ client ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
[ server ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
EOF
: > index.txt

ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days $days \
    -subj "/O=flame-test/CN=flame-test-ca"
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout other-ca.key -out other-ca.crt -days $days \
    -subj "/O=flame-test/CN=other-ca"

serial=4096
issue() { # name subject extensions [startdate enddate]
    serial=$((serial + 1))
    ossl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
    ossl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "$serial" -days $days \
        -extfile ca.cnf -extensions "$3" -out "$1.crt"
    rm -f "$1.csr"
}
issue server "/O=flame-test/OU=server/CN=localhost" server
issue admin "/O=flame-test/OU=admin/CN=admin" client
issue alice "/O=flame-test/OU=user/CN=alice" client
issue bob "/O=flame-test/OU=user/CN=bob" client
issue n1 "/O=flame-test/OU=node/CN=n1" client
issue n2 "/O=flame-test/OU=node/CN=n2" client
issue revoked "/O=flame-test/OU=user/CN=mallory" client
issue noou "/O=flame-test/CN=nobody" client
issue badrole "/O=flame-test/OU=root/CN=eve" client
issue local "/O=flame-test/OU=admin/CN=local" client
issue twoou "/O=flame-test/OU=user/OU=admin/CN=trudy" client

# The CRL: an index with revoked.crt revoked, signed by the CA.
ossl ca -config ca.cnf -gencrl -out crl-empty.pem
rev_serial=$(openssl x509 -in revoked.crt -noout -serial | sed 's/serial=//')
printf 'R\t491231235959Z\t240101000000Z\t%s\tunknown\t/CN=mallory\n' "$rev_serial" > index.txt
ossl ca -config ca.cnf -gencrl -out crl.pem
# A CRL signed by another CA (must be refused).
sed -e 's/ca.crt/other-ca.crt/; s/ca.key/other-ca.key/' ca.cnf > other.cnf
ossl ca -config other.cnf -gencrl -out crl-other.pem
echo "$rev_serial" > revoked.serial
