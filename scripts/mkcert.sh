#!/bin/sh
# Issues one more test certificate from the CA that scripts/certs.sh made.
#
#   scripts/mkcert.sh CADIR NAME KIND DAYS CN [SAN...]
#
#   CADIR  a directory holding ca.pem and ca.key (scripts/certs.sh OUTDIR)
#   NAME   writes CADIR/NAME.pem (the certificate, then the CA: a full
#          chain) and CADIR/NAME.key (its key, PKCS#8, mode 0600)
#   KIND   ec      server certificate, ECDSA P-256
#          ec384   server certificate, ECDSA P-384
#          rsa     server certificate, RSA 2048
#          client  client certificate (clientAuth), ECDSA P-256
#   DAYS   validity from now, in days (1 or more)
#   CN     the subject's common name
#   SAN    subjectAltName entries, e.g. DNS:mail.example.test IP:127.0.0.1;
#          none: the certificate has no subjectAltName
#
# For tests and demos only. Prints the certificate's path.
set -eu

if [ $# -lt 5 ]; then
	echo "usage: $0 CADIR NAME ec|ec384|rsa|client DAYS CN [SAN...]" >&2
	exit 2
fi
dir=$1 name=$2 kind=$3 days=$4 cn=$5
shift 5

for f in ca.pem ca.key; do
	[ -s "$dir/$f" ] || { echo "$0: $dir/$f missing (run scripts/certs.sh $dir)" >&2; exit 1; }
done
tmp=$(mktemp -d "$dir/.mkcert.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP
umask 077

case $kind in
ec|client) keyopts="-algorithm EC -pkeyopt ec_paramgen_curve:P-256" ;;
ec384) keyopts="-algorithm EC -pkeyopt ec_paramgen_curve:P-384" ;;
rsa) keyopts="-algorithm RSA -pkeyopt rsa_keygen_bits:2048" ;;
*) echo "$0: unknown kind '$kind'" >&2; exit 2 ;;
esac
if [ "$kind" = client ]; then
	usage="digitalSignature" eku=clientAuth
elif [ "$kind" = rsa ]; then
	usage="digitalSignature, keyEncipherment" eku=serverAuth
else
	usage="digitalSignature" eku=serverAuth
fi

{
	echo "[ext]"
	echo "basicConstraints = critical, CA:FALSE"
	echo "keyUsage = critical, $usage"
	echo "extendedKeyUsage = $eku"
	echo "subjectKeyIdentifier = hash"
	echo "authorityKeyIdentifier = keyid, issuer"
	if [ $# -gt 0 ]; then
		printf 'subjectAltName = %s' "$1"
		shift
		for san in "$@"; do printf ', %s' "$san"; done
		echo
	fi
} > "$tmp/ext.cnf"

# shellcheck disable=SC2086
openssl genpkey $keyopts -out "$tmp/key.pem" 2>/dev/null
openssl req -new -sha256 -key "$tmp/key.pem" -subj "/O=moat tests/CN=$cn" \
	-out "$tmp/req.csr" 2>/dev/null
openssl x509 -req -sha256 -days "$days" -in "$tmp/req.csr" \
	-CA "$dir/ca.pem" -CAkey "$dir/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
	-extfile "$tmp/ext.cnf" -extensions ext -out "$tmp/cert.pem" 2>/dev/null

cat "$tmp/cert.pem" "$dir/ca.pem" > "$tmp/full.pem"
chmod 600 "$tmp/key.pem"
chmod 644 "$tmp/full.pem"
mv -f "$tmp/key.pem" "$dir/$name.key"
mv -f "$tmp/full.pem" "$dir/$name.pem"
echo "$dir/$name.pem"
