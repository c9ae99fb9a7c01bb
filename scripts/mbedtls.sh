#!/bin/sh
# Builds mbedTLS 3.6 LTS as static libraries for moat, from Debian's own
# source package, with moat's configuration header.
#
#   scripts/mbedtls.sh OUTDIR CONFIG_HEADER
#
# Debian 12 ships mbedTLS 2.28; the 3.6 LTS source package comes from the
# next Debian release (trixie, and trixie-security when the machine's apt
# sources name a security mirror). The mirror is read from the machine's
# apt sources; nothing is written to the system's apt configuration: apt
# runs against a private sources list and state under OUTDIR. The package
# is verified by apt against Debian's archive keyring, and Debian's patches
# are applied by dpkg-source.
#
# moat's own patches, tls/patches/*.patch next to the config header (each
# says what it changes and why), are applied after Debian's.
#
# The result is cached: OUTDIR/stamp records a hash of this script, the
# config header, the patches and the compiler settings; a matching stamp
# skips the build. A downloaded source is kept in OUTDIR/src for later rebuilds.
#
# Environment: MBEDTLS_SUITE (default trixie), CC, MBEDTLS_CFLAGS (extra
# flags such as -march=native), MBEDTLS_SOURCE (a .dsc or an unpacked tree
# to use instead of downloading), MBEDTLS_DRIVER (a PSA driver's source,
# tls/tls_ossl.c for make CRYPTO=openssl: compiled with the library and
# put into libmbedcrypto.a, whose dispatch patch calls it), MBEDTLS_KEEP_TREE
# (non-empty: keep the patched, built source tree in OUTDIR/tree, where
# scripts/mbedtls-tests.sh builds mbedTLS's own test suites; the libraries
# and headers are the same either way).
set -eu

out=${1:?usage: mbedtls.sh OUTDIR CONFIG_HEADER}
conf=${2:?usage: mbedtls.sh OUTDIR CONFIG_HEADER}
suite=${MBEDTLS_SUITE:-trixie}
cc=${CC:-cc}
extra=${MBEDTLS_CFLAGS:-}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

mkdir -p "$out"
out=$(cd "$out" && pwd)
conf=$(cd "$(dirname "$conf")" && pwd)/$(basename "$conf")
patches=$(ls "$(dirname "$conf")"/patches/*.patch 2>/dev/null | sort || true)

# shellcheck disable=SC2086
driver=${MBEDTLS_DRIVER:-}
if [ -n "$driver" ]; then
	driver=$(cd "$(dirname "$driver")" && pwd)/$(basename "$driver")
fi
# shellcheck disable=SC2086
key=$( { cat "$0" "$conf" $patches ${driver:+"$driver" "${driver%.c}.h"};
	 echo "$cc $extra $suite ${MBEDTLS_SOURCE:-} $driver"; } | sha256sum | cut -c1-16)
keep=${MBEDTLS_KEEP_TREE:-}
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$key" ] &&
   [ -f "$out/lib/libmbedtls.a" ] && { [ -z "$keep" ] || [ -f "$out/tree/library/libmbedtls.a" ]; }; then
	exit 0
fi

# mirrors: the first Debian archive and security URIs in the apt sources
apt_uris() {
	{
		grep -hs '^[[:space:]]*deb' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
			awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }'
		grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{ for (i = 2; i <= NF; i++) print $i }'
	} | sed 's:/*$::'
}

fetch_source() {
	dir=$out/src
	if ls "$dir"/mbedtls_3.6*.dsc >/dev/null 2>&1; then
		return 0
	fi
	main=$(apt_uris | grep -m1 -E '/debian$' || true)
	sec=$(apt_uris | grep -m1 -E '/debian-security$' || true)
	if [ -z "$main" ]; then
		echo "mbedtls.sh: no Debian archive found in the apt sources;" >&2
		echo "  set MBEDTLS_SOURCE to an mbedTLS 3.6 .dsc or source tree" >&2
		exit 1
	fi
	apt=$out/apt
	rm -rf "$apt"
	mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$dir"
	{
		echo "deb-src [signed-by=$keyring] $main $suite main"
		[ -n "$sec" ] && echo "deb-src [signed-by=$keyring] $sec $suite-security main"
	} > "$apt/sources.list"
	set -- -o Dir::Etc::SourceList="$apt/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$apt/lists" \
		-o Dir::Cache="$apt/cache" \
		-o APT::Sandbox::User=root -q
	echo "mbedtls.sh: fetching the mbedtls source package from Debian $suite"
	apt-get "$@" update >/dev/null
	ver=$(apt-cache "$@" showsrc mbedtls | awk '/^Version:/ { print $2 }' | sort -V | tail -1)
	case $ver in
	3.6.*) ;;
	*) echo "mbedtls.sh: Debian $suite has mbedtls '$ver', not 3.6 LTS" >&2; exit 1 ;;
	esac
	(cd "$dir" && apt-get "$@" source --download-only "mbedtls=$ver")
	rm -rf "$apt"
}

src=$out/tree
rm -rf "$src" "$out"/*.orig.tar.*
if [ -n "${MBEDTLS_SOURCE:-}" ] && [ -d "${MBEDTLS_SOURCE}" ]; then
	cp -a "$MBEDTLS_SOURCE" "$src"
else
	if [ -n "${MBEDTLS_SOURCE:-}" ]; then
		mkdir -p "$out/src" && cp "$(dirname "$MBEDTLS_SOURCE")"/mbedtls_3.6* "$out/src/"
	else
		fetch_source
	fi
	dsc=$(ls "$out"/src/mbedtls_3.6*.dsc | sort -V | tail -1)
	dpkg-source --no-check -x "$dsc" "$src" >/dev/null
fi

for p in $patches; do
	patch -d "$src" -p1 --forward --quiet < "$p" || {
		echo "mbedtls.sh: patch $(basename "$p") does not apply" >&2
		exit 1
	}
done

echo "mbedtls.sh: building $(basename "$(ls "$out"/src/*.dsc 2>/dev/null | tail -1)" .dsc) with $(basename "$conf")"
jobs=$(nproc 2>/dev/null || echo 2)
cflags="-O2 -fPIC -I$(dirname "$conf") -DMBEDTLS_CONFIG_FILE=\\\"$(basename "$conf")\\\" $extra"
make -C "$src/library" -j"$jobs" CC="$cc" CFLAGS="$cflags" \
	libmbedcrypto.a libmbedx509.a libmbedtls.a >"$out/build.log" 2>&1 || {
	tail -40 "$out/build.log" >&2
	echo "mbedtls.sh: build failed, full log in $out/build.log" >&2
	exit 1
}

if [ -n "$driver" ]; then
	# shellcheck disable=SC2086
	"$cc" -O2 -fPIC -I"$(dirname "$conf")" -DMBEDTLS_CONFIG_FILE="\"$(basename "$conf")\"" \
		$extra -Wall -Wextra -Werror -I"$src/include" -I"$src/library" \
		-c "$driver" -o "$src/library/moat_driver.o" >>"$out/build.log" 2>&1 || {
		tail -20 "$out/build.log" >&2
		echo "mbedtls.sh: the driver $driver did not compile" >&2
		exit 1
	}
	ar rcs "$src/library/libmbedcrypto.a" "$src/library/moat_driver.o"
fi

# The library must have been built with our header, not its own default
# of the same name (build_info.h includes MBEDTLS_CONFIG_FILE in quotes).
printf '#include <mbedtls/build_info.h>\n#ifndef MOAT_MBEDTLS_CONFIG_H\n#error not moat config\n#endif\n' |
	$cc -E -I"$src/include" -I"$(dirname "$conf")" \
		-DMBEDTLS_CONFIG_FILE="\"$(basename "$conf")\"" -x c - >/dev/null 2>&1 || {
	echo "mbedtls.sh: $(basename "$conf") was not the configuration in effect" >&2
	echo "  (it must not be named mbedtls_config.h and must define MOAT_MBEDTLS_CONFIG_H)" >&2
	exit 1
}

rm -rf "$out/include" "$out/lib"
mkdir -p "$out/include" "$out/lib"
cp -a "$src/include/mbedtls" "$src/include/psa" "$out/include/"
cp -a "$src/3rdparty/everest/include/everest" "$out/include/"
cp "$src"/library/libmbedcrypto.a "$src"/library/libmbedx509.a "$src"/library/libmbedtls.a "$out/lib/"
rm -rf "$out"/*.orig.tar.*
[ -n "$keep" ] || rm -rf "$src"
echo "$key" > "$out/stamp"
