#!/bin/sh
# Makes or rotates the session-ticket key file that moat instances share
# ([tls] ticket_key_file = FILE), so that a client resumes its TLS session
# on any of them.
#
#   scripts/ticket-keys.sh [-v] FILE [KEEP]
#
# When FILE does not exist it is created with one new key. Otherwise a new
# key is written first and the newest KEEP-1 keys of FILE follow it (KEEP
# 1..4, default 3); older ones are dropped, and so are FILE's comments.
# Each key is "NAME KEY": 8 hex digits (the key name, public) and 64 hex
# digits (the AES-256 key), from `openssl rand -hex 36`, or from
# /dev/urandom through od when there is no openssl. A new name never
# repeats a kept one. The format is in proxy/tkey.h and moat.ini(5).
#
# The new file is written to a temporary file in FILE's directory with
# umask 077 (mode 0600), given the owner and group of the old FILE when
# run as root, and renamed over FILE, so a reader sees the old file or the
# new one, never part of one. A kept line that is not NAME KEY stops the
# script and FILE is left alone. Prints nothing on success, unless -v:
# then the names of the new and kept keys (never key material).
#
# Afterwards copy FILE to every host and send SIGHUP to every moat that
# reads it. A ticket still decrypts while its key is in the file: KEEP-1
# rotations after the key stopped being the newest. So rotate at most
# every [tls] ticket_lifetime / (KEEP-1) (KEEP 3, the default 2h: at most
# hourly); a ticket that no longer decrypts costs a full handshake, no
# more.
set -eu

usage() {
	cat >&2 <<EOF
usage: $0 [-v] FILE [KEEP]
  Creates the ticket key file FILE with one new key or, when FILE exists,
  writes a new key first and keeps the newest KEEP-1 old ones (KEEP 1..4,
  default 3). -v: print the key names.
  Then copy FILE to every host and send SIGHUP to every moat (kill -HUP).
EOF
	exit 2
}

verbose=
while getopts v opt; do
	case $opt in
	v) verbose=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || [ $# -eq 2 ] || usage
file=$1
keep=${2:-3}
case $keep in
1|2|3|4) ;;
*) echo "$0: KEEP must be 1 to 4, not '$keep'" >&2; usage ;;
esac

# 72 random hex digits, lower case, on one line.
random_hex() {
	if command -v openssl >/dev/null 2>&1; then
		openssl rand -hex 36
	else
		od -An -tx1 -N36 /dev/urandom
	fi | tr -d ' \t\n'
}

if [ -d "$file" ]; then
	echo "$0: $file is a directory" >&2
	exit 1
fi

# The key lines to keep from FILE (the first KEEP-1, without blanks around
# them or CRs); a bad one among them fails with its line number.
old=
if [ -e "$file" ]; then
	old=$(awk -v max=$((keep - 1)) -v file="$file" '
		{ sub(/\r$/, ""); sub(/^[ \t]+/, ""); sub(/[ \t]+$/, "") }
		$0 == "" || /^#/ { next }
		++n > max { exit }
		{
			if (split($0, w, /[ \t]+/) != 2 || length(w[1]) != 8 || length(w[2]) != 64 ||
			    w[1] ~ /[^0-9a-fA-F]/ || w[2] ~ /[^0-9a-fA-F]/) {
				printf "%s:%d: not an 8-hex-digit key name and a 64-hex-digit key\n",
				    file, NR > "/dev/stderr"
				bad = 1
				exit 1
			}
			print w[1] " " w[2]
		}
		END { exit bad }' "$file")
fi
# Names only (public): lower case, space-separated, for the name check.
names=" $(printf '%s\n' "$old" | awk 'NF { printf "%s ", tolower($1) }')"

# A new key: its name must differ from every kept one and it must not be
# all zeros (a failure of the random source).
tries=0
while :; do
	tries=$((tries + 1))
	if [ $tries -gt 10 ]; then
		echo "$0: no usable random bytes (openssl rand or /dev/urandom)" >&2
		exit 1
	fi
	hex=$(random_hex)
	[ ${#hex} -eq 72 ] || continue
	case $hex in *[!0-9a-f]*) continue ;; esac
	name=${hex%"${hex#????????}"}
	key=${hex#????????}
	case $key in *[!0]*) ;; *) continue ;; esac
	case $names in *" $name "*) continue ;; esac
	break
done

dir=$(dirname "$file")
umask 077
tmp=$(mktemp "$dir/.ticket-keys.XXXXXX")
trap 'rm -f "$tmp"' EXIT
trap 'exit 1' INT TERM HUP
{
	echo "# moat session-ticket keys, written by ticket-keys.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# newest key first: it encrypts new tickets; the others (older) still decrypt"
	printf '%s %s\n' "$name" "$key"
	[ -z "$old" ] || printf '%s\n' "$old"
} > "$tmp"
if [ -e "$file" ] && [ "$(id -u)" = 0 ]; then
	chown --reference="$file" "$tmp"
fi
mv -f "$tmp" "$file"
trap - EXIT

if [ -n "$verbose" ]; then
	kept=$(printf '%s\n' "$old" | awk 'NF { printf " %s", tolower($1) }')
	echo "$file: new key $name; kept:${kept:- none}"
fi
