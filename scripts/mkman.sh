#!/bin/sh
# Builds the moat.ini(5) manual page from etc/moat.ini, so the page and
# the documented example can never disagree.
#
#   scripts/mkman.sh etc/moat.ini VERSION > moat.ini.5
#
# Reading rules, the ones etc/moat.ini is written by:
#   - the comment block at the top (up to the first section) is the
#     DESCRIPTION; "; ---- title ----" lines start a subsection;
#   - "[section]" (or a commented ";[section NAME]" example) starts a
#     subsection of OPTIONS;
#   - a comment block followed by "key = value" (or ";key = value", an
#     option shown unset) documents that key; the value shown is its
#     default or an example, as the text says;
#   - a key with no comment of its own (the example listeners at the end)
#     is listed as part of the example.
set -eu

ini=${1:?usage: mkman.sh MOAT_INI VERSION}
version=${2:-}

awk -v version="$version" '
function esc(s) {
	gsub(/\\/, "\\e", s)
	if (s ~ /^[.'\'']/)
		s = "\\&" s
	return s
}
function flush_text(   i) {
	for (i = 1; i <= n; i++)
		print esc(text[i])
	n = 0
}
BEGIN {
	print ".\\\" Generated from etc/moat.ini by scripts/mkman.sh; edit that file."
	print ".TH MOAT.INI 5 \"\" \"moat " version "\" \"File Formats\""
	print ".SH NAME"
	print "moat.ini \\- configuration file of moat, the TLS proxy for IMAP and POP3"
	print ".SH DESCRIPTION"
	top = 1; n = 0
}
/^;[ ]?---- .* ----$/ {
	flush_text()
	t = $0; sub(/^;[ ]?---- /, "", t); sub(/ ----$/, "", t)
	print ".SS \"" esc(t) "\""
	next
}
/^;?\[[a-z]+( [A-Za-z0-9_.-]+)?\]$/ {
	if (top) { flush_text(); print ".SH OPTIONS"; top = 0 }
	s = $0; sub(/^;/, "", s)
	if (n) { print ".PP"; flush_text() }
	print ".SS " esc(s)
	next
}
/^;[a-z_0-9]+ = / || /^[a-z_0-9]+ = / {
	k = $0; sub(/^;/, "", k)
	k = esc(k)
	gsub(/:/, ":\\:", k)    # long lists may break after a colon
	print ".TP"
	print ".B " k
	flush_text()
	next
}
/^;/ {
	line = $0; sub(/^; ?/, "", line)
	if (line == "") {
		if (n) { if (top) { flush_text(); print ".PP" } else text[++n] = "" }
		next
	}
	text[++n] = line
	next
}
/^$/ { if (n && !top) { print ".PP"; flush_text() } next }
END {
	flush_text()
	print ".SH SEE ALSO"
	print ".BR moat (8)"
}
' "$ini"
