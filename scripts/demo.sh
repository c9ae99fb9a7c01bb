#!/bin/bash
# make run: a throwaway Dovecot backend with a demo account, and moat in
# the foreground in front of it on unprivileged ports. Ctrl-C stops both.
#
# Everything lives under build/demo (certificates, Dovecot's config and
# mail, moat's config); delete it to start afresh. Ports can be changed
# with IMAPS_PORT, POP3S_PORT, BACKEND_IMAP_PORT, BACKEND_POP3_PORT.
set -eu
cd "$(dirname "$0")/.."

run=$(pwd)/build/demo
imaps=${IMAPS_PORT:-10993}
pop3s=${POP3S_PORT:-10995}
bimap=${BACKEND_IMAP_PORT:-10143}
bpop3=${BACKEND_POP3_PORT:-10110}

# As root, moat becomes the system account moat once its ports are bound
# and keys read, created here when missing (userdel moat removes it):
# never nobody, whose other processes could bind the same ports with
# SO_REUSEPORT and take connections, or read the key.
as_user=
if [ "$(id -u)" = 0 ]; then
	if ! id -u moat >/dev/null 2>&1; then
		echo "demo: creating the system user moat for moat to run as"
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --comment "moat TLS proxy" moat
	fi
	as_user="[moat]
user = moat
"
fi

mkdir -p "$run"
scripts/certs.sh "$run/certs" >/dev/null

# Dovecot in its own process group, so stopping it takes its children.
setsid scripts/dovecot.sh "$run/dovecot" "$bimap" "$bpop3" \
	>"$run/dovecot.out" 2>&1 &
dovecot_pid=$!
cleanup() {
	trap - EXIT INT TERM
	kill -TERM -- "-$dovecot_pid" 2>/dev/null || true
	wait "$dovecot_pid" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

i=0
until (exec 3<>"/dev/tcp/127.0.0.1/$bimap") 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$dovecot_pid" 2>/dev/null; then
		echo "demo: Dovecot did not start; its output:" >&2
		cat "$run/dovecot.out" >&2
		exit 1
	fi
	sleep 0.1
done 2>/dev/null

cat > "$run/moat.ini" <<INI
; written by scripts/demo.sh
${as_user}[tls]
certificate = $run/certs/fullchain.pem
key = $run/certs/privkey.pem

[listener imaps]
address = 127.0.0.1:$imaps
protocol = imap
tls = implicit
backend = 127.0.0.1:$bimap

[listener pop3s]
address = 127.0.0.1:$pop3s
protocol = pop3
tls = implicit
backend = 127.0.0.1:$bpop3
INI

ca=$run/certs/ca.pem
cat <<MSG

moat demo: Dovecot (plaintext) on 127.0.0.1:$bimap and :$bpop3,
moat (TLS) on 127.0.0.1:$imaps (IMAPS) and :$pop3s (POP3S).
Account: demo / demo. Try, in another terminal:

  curl --cacert $ca -u demo:demo 'imaps://localhost:$imaps/INBOX?ALL'
  curl --cacert $ca -u demo:demo 'imaps://localhost:$imaps/INBOX;UID=1'
  curl --cacert $ca -u demo:demo 'pop3s://localhost:$pop3s/'
  curl --cacert $ca -u demo:demo 'pop3s://localhost:$pop3s/1'
  openssl s_client -quiet -CAfile $ca -connect localhost:$imaps

Config: $run/moat.ini. Ctrl-C stops moat and Dovecot.

MSG
build/moat -c "$run/moat.ini" || true
