/*
 * proxyp: the PROXY protocol (HAProxy's proxy-protocol.txt), versions 1
 * (one text line) and 2 (binary), by which a load balancer tells the
 * server behind it who the client really is, before any byte of the
 * client's own.
 *
 * Pure: no I/O, no allocation, no state between calls. proxyp_build
 * writes a header into a caller's buffer (moat talking to a backend that
 * expects one); proxyp_parse looks at the bytes received so far on a
 * connection from a trusted load balancer and says whether they hold a
 * whole header, the start of one, or something else. The caller keeps
 * the bytes and calls again with more; on PROXYP_OK it skips r->len bytes
 * and what follows is the client's.
 *
 * Strict on purpose: a v1 line must match the grammar exactly (single
 * spaces, addresses of the announced family, ports without sign or
 * leading zero, CRLF within 107 bytes); a v2 header must carry version
 * 2, a known command and family, addresses that fit its length, and at
 * most PROXYP_V2_MAX bytes. Only trusted peers may send one: whoever
 * sends it chooses the address moat logs and limits.
 */
#ifndef MOAT_PROXYP_H
#define MOAT_PROXYP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXYP_V1_MAX 107          /* longest v1 line, CRLF included (spec) */
#define PROXYP_V2_MAX 536          /* longest v2 header moat accepts: 16 + 520 (addresses and TLVs) */

/* Writes a PROXY header announcing a TCP connection from src to dst.
 * version: 1 or 2. src/dst: AF_INET or AF_INET6 sockaddrs; when the
 * families differ, the IPv4 one is written as an IPv4-mapped IPv6
 * address (v1 TCP6, v2 AF_INET6). Returns the header length, or -1 when
 * cap is too small or a family is unsupported (out is then untouched).
 * v2: signature, version 2 command PROXY (0x21), family TCP over IPv4
 * (0x11) or IPv6 (0x21), no TLVs. v1: "PROXY TCP4 1.2.3.4 5.6.7.8 1234
 * 993\r\n" (addresses as inet_ntop prints them). */
int proxyp_build(int version, const struct sockaddr *src, const struct sockaddr *dst,
                 uint8_t *out, size_t cap);

/* Writes the header of a connection that carries no client (a health
 * check): v1 "PROXY UNKNOWN\r\n", v2 the LOCAL command. Returns its length,
 * or -1 when cap is too small or version is not 1 or 2. */
int proxyp_build_local(int version, uint8_t *out, size_t cap);

enum proxyp_rc { PROXYP_NEED_MORE = 0, PROXYP_OK, PROXYP_BAD };

struct proxyp_result {
	size_t len;                    /* header bytes (to skip) on PROXYP_OK */
	int version;                   /* 1 or 2 */
	int has_addr;                  /* 0: LOCAL command, v1 UNKNOWN, or an unsupported family (UNIX, UDP): keep the connection's own addresses */
	struct sockaddr_storage src, dst; /* when has_addr: the original client (src) and the address it connected to (dst), ports set, AF_INET or AF_INET6 */
	const char *why;               /* on PROXYP_BAD: a short static reason for a log line */
};

/* Parses the start of buf (bytes received on a connection from a trusted
 * load balancer before anything else). NEED_MORE while what is there is
 * a valid prefix of a header (including a partial signature or a partial
 * "PROXY " and a v1 line with no CRLF yet shorter than PROXYP_V1_MAX); OK
 * with r filled; BAD with r->why. r is cleared first on every call. Never
 * reads past len. */
enum proxyp_rc proxyp_parse(const uint8_t *buf, size_t len, struct proxyp_result *r);

#endif /* MOAT_PROXYP_H */
