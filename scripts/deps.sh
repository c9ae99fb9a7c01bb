#!/bin/sh
# Installs the Debian packages moat needs to build (and, with "test",
# "run" or "fuzz", to test, demo or fuzz), only those missing. Idempotent
# and quiet when nothing is missing. Needs root only when something must
# be installed.
#
#   scripts/deps.sh build|test|run|fuzz|bench
set -eu

what=${1:-build}

pkgs_build="gcc make libc6-dev pkg-config libuv1-dev libinih-dev libssl-dev dpkg-dev patch bzip2 xz-utils python3 apt"
pkgs_test="libcmocka-dev dovecot-imapd dovecot-pop3d curl openssl valgrind procps isync fetchmail sslscan haproxy faketime"
# clang with its sanitizer runtimes; on Debian 12 libFuzzer comes with
# libclang-rt-14-dev (make fuzz; make test runs the fuzzers briefly)
pkgs_fuzz="clang libclang-rt-14-dev"
# the peers make bench compares moat with
pkgs_bench="nginx libnginx-mod-mail stunnel4 haproxy"

case $what in
build) want=$pkgs_build ;;
test) want="$pkgs_build $pkgs_test $pkgs_fuzz" ;;
run) want="$pkgs_build $pkgs_test" ;;
fuzz) want="$pkgs_build $pkgs_fuzz" ;;
bench) want="$pkgs_build $pkgs_test $pkgs_bench" ;;
*) echo "deps.sh: unknown set '$what' (build|test|run|fuzz|bench)" >&2; exit 2 ;;
esac

missing=
for p in $want; do
	st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
	[ "$st" = installed ] || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "moat needs these Debian packages:$missing" >&2
	echo "install them as root:  apt-get install$missing" >&2
	exit 1
fi

echo "deps.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# Package scripts must not start system-wide services (Dovecot would grab
# 143/993 on the host): tell invoke-rc.d "not now" while we install, unless
# the administrator already has a policy in place.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e $policy ]; then
	printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy && made_policy=1
fi
cleanup() { [ -n "$made_policy" ] && rm -f $policy; return 0; }
trap cleanup EXIT INT TERM
# An apt list older than a day (or none) is refreshed first.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
	apt-get update -q
fi
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
