#!/bin/sh
# Test certificates for moat, made with the openssl command line.
#
#   scripts/certs.sh OUTDIR
#
# Writes into OUTDIR (created if missing):
#   ca.pem, ca.key         a self-signed test CA, ECDSA P-256, CN "moat test CA"
#   fullchain.pem          the server certificate (ECDSA P-256, DNS:localhost,
#                          IP:127.0.0.1, IP:::1) signed by that CA, followed
#                          by the CA certificate (leaf first)
#   privkey.pem            the server's private key, PKCS#8 PEM, mode 0600
#
# For tests and demos only. Idempotent: when all four files exist nothing is
# done; otherwise everything is made afresh. Prints OUTDIR's path.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1

if [ -s "$out/ca.pem" ] && [ -s "$out/ca.key" ] &&
   [ -s "$out/fullchain.pem" ] && [ -s "$out/privkey.pem" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$out"
tmp=$(mktemp -d "$out/.certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP
umask 077

# Certificate extensions, one section per certificate.
cat > "$tmp/ext.cnf" <<'CNF'
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
CNF

# CA: key and self-signed certificate (valid ten years).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$tmp/ca.key" 2>/dev/null
openssl req -new -x509 -sha256 -days 3650 -key "$tmp/ca.key" \
	-subj "/O=moat tests/CN=moat test CA" \
	-config "$tmp/ext.cnf" -extensions ca_ext \
	-out "$tmp/ca.pem" 2>/dev/null

# Leaf: key, request, certificate signed by the CA (valid two years).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
	-out "$tmp/privkey.pem" 2>/dev/null
openssl req -new -sha256 -key "$tmp/privkey.pem" \
	-subj "/O=moat tests/CN=localhost" -out "$tmp/leaf.csr" 2>/dev/null
openssl x509 -req -sha256 -days 825 -in "$tmp/leaf.csr" \
	-CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
	-extfile "$tmp/ext.cnf" -extensions leaf_ext \
	-out "$tmp/leaf.pem" 2>/dev/null

# Self-check before anything is published.
openssl verify -CAfile "$tmp/ca.pem" -purpose sslserver \
	-verify_hostname localhost "$tmp/leaf.pem" >/dev/null

cat "$tmp/leaf.pem" "$tmp/ca.pem" > "$tmp/fullchain.pem"
chmod 600 "$tmp/privkey.pem" "$tmp/ca.key"
chmod 644 "$tmp/ca.pem" "$tmp/fullchain.pem"

# Keys first, certificates last: the existence check above looks at all four.
for f in ca.key privkey.pem ca.pem fullchain.pem; do
	mv -f "$tmp/$f" "$out/$f"
done
echo "$out"
