/* proxyp: see proxyp.h. */
#include "proxyp.h"

#include <arpa/inet.h>
#include <string.h>

#define V2_FIXED 16                   /* signature, ver/cmd, family, length */
#define V1_PREFIX "PROXY "
#define V1_PREFIX_LEN 6

static const uint8_t v2_sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

/* One end of a connection as the headers carry it: address and port in
 * network byte order. */
struct endp {
	int family;                   /* AF_INET or AF_INET6 */
	uint8_t addr[16];             /* 4 bytes used for AF_INET */
	uint8_t port[2];
};

/* ---- building ---- */

/* Reads a caller's sockaddr; -1 for a family the headers cannot carry. */
static int endp_load(struct endp *e, const struct sockaddr *sa)
{
	memset(e, 0, sizeof *e);
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		e->family = AF_INET;
		memcpy(e->addr, &in->sin_addr, 4);
		memcpy(e->port, &in->sin_port, 2);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		e->family = AF_INET6;
		memcpy(e->addr, &in6->sin6_addr, 16);
		memcpy(e->port, &in6->sin6_port, 2);
		return 0;
	}
	return -1;
}

/* Turns an IPv4 end into its IPv4-mapped IPv6 form (::ffff:a.b.c.d), for
 * a header whose two ends must share one family. */
static void endp_map6(struct endp *e)
{
	if (e->family != AF_INET)
		return;
	memmove(e->addr + 12, e->addr, 4);
	memset(e->addr, 0, 10);
	e->addr[10] = 0xff;
	e->addr[11] = 0xff;
	e->family = AF_INET6;
}

/* Appends a C string at p; returns the new end. */
static char *put_str(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return p + n;
}

/* Appends a port (network order) in decimal; returns the new end. */
static char *put_port(char *p, const uint8_t port[2])
{
	unsigned v = (unsigned)port[0] << 8 | port[1];
	char digits[5];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0)
		*p++ = digits[--n];
	return p;
}

/* Writes "PROXY TCP4|TCP6 src dst sport dport\r\n"; both ends share one
 * family. */
static int build_v1(const struct endp *s, const struct endp *d, uint8_t *out, size_t cap)
{
	char line[PROXYP_V1_MAX + INET6_ADDRSTRLEN], sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
	char *p = line;
	size_t n;

	if (!inet_ntop(s->family, s->addr, sa, sizeof sa) ||
	    !inet_ntop(d->family, d->addr, da, sizeof da))
		return -1;
	p = put_str(p, s->family == AF_INET ? "PROXY TCP4 " : "PROXY TCP6 ");
	p = put_str(p, sa);
	*p++ = ' ';
	p = put_str(p, da);
	*p++ = ' ';
	p = put_port(p, s->port);
	*p++ = ' ';
	p = put_port(p, d->port);
	p = put_str(p, "\r\n");
	n = (size_t)(p - line);
	if (n > PROXYP_V1_MAX || n > cap)
		return -1;
	memcpy(out, line, n);
	return (int)n;
}

/* Writes the binary header: signature, PROXY command, TCP over the ends'
 * family, then both addresses and both ports. */
static int build_v2(const struct endp *s, const struct endp *d, uint8_t *out, size_t cap)
{
	size_t alen = s->family == AF_INET ? 4 : 16;
	size_t block = 2 * alen + 4;
	uint8_t *p = out;

	if (V2_FIXED + block > cap)
		return -1;
	memcpy(p, v2_sig, sizeof v2_sig);
	p += sizeof v2_sig;
	*p++ = 0x21;
	*p++ = s->family == AF_INET ? 0x11 : 0x21;
	*p++ = (uint8_t)(block >> 8);
	*p++ = (uint8_t)(block & 0xff);
	memcpy(p, s->addr, alen);
	p += alen;
	memcpy(p, d->addr, alen);
	p += alen;
	memcpy(p, s->port, 2);
	memcpy(p + 2, d->port, 2);
	return (int)(V2_FIXED + block);
}

int proxyp_build(int version, const struct sockaddr *src, const struct sockaddr *dst,
                 uint8_t *out, size_t cap)
{
	struct endp s, d;

	if ((version != 1 && version != 2) || endp_load(&s, src) < 0 || endp_load(&d, dst) < 0)
		return -1;
	if (s.family != d.family) {
		endp_map6(&s);
		endp_map6(&d);
	}
	return version == 1 ? build_v1(&s, &d, out, cap) : build_v2(&s, &d, out, cap);
}

int proxyp_build_local(int version, uint8_t *out, size_t cap)
{
	static const char v1[] = "PROXY UNKNOWN\r\n";

	if (version == 1) {
		if (cap < sizeof v1 - 1)
			return -1;
		memcpy(out, v1, sizeof v1 - 1);
		return (int)(sizeof v1 - 1);
	}
	if (version != 2 || cap < V2_FIXED)
		return -1;
	memcpy(out, v2_sig, sizeof v2_sig);
	out[12] = 0x20;                 /* version 2, LOCAL */
	out[13] = 0x00;                 /* UNSPEC */
	out[14] = out[15] = 0;          /* no address block */
	return V2_FIXED;
}

/* ---- parsing ---- */

/* Ends a parse with a reason for the log. */
static enum proxyp_rc bad(struct proxyp_result *r, const char *why)
{
	r->why = why;
	return PROXYP_BAD;
}

/* 1 when the len bytes at p agree with the start of want (as far as
 * either goes). */
static int agrees(const uint8_t *p, size_t len, const void *want, size_t wlen)
{
	return memcmp(p, want, len < wlen ? len : wlen) == 0;
}

/* Stores one parsed end into a sockaddr (address and port in network
 * order, as they come). */
static void store(struct sockaddr_storage *ss, int family, const uint8_t *addr,
                  const uint8_t *port)
{
	memset(ss, 0, sizeof *ss);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)(void *)ss;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, addr, 4);
		memcpy(&in->sin_port, port, 2);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)ss;
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, addr, 16);
		memcpy(&in6->sin6_port, port, 2);
	}
}

/* v1: one address token, which must parse as the announced family. */
static int v1_addr(const uint8_t *p, size_t n, int family, uint8_t addr[16])
{
	char text[INET6_ADDRSTRLEN];

	if (n == 0 || n >= sizeof text || memchr(p, '\0', n))
		return -1;                    /* inet_pton would stop at a NUL */
	memcpy(text, p, n);
	text[n] = '\0';
	return inet_pton(family, text, addr) == 1 ? 0 : -1;
}

/* v1: one port token: 0..65535 in plain decimal, no sign, no leading
 * zero (the spec's own rule). */
static int v1_port(const uint8_t *p, size_t n, uint8_t port[2])
{
	unsigned v = 0;

	if (n == 0 || n > 5 || (p[0] == '0' && n > 1))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v > 65535)
		return -1;
	port[0] = (uint8_t)(v >> 8);
	port[1] = (uint8_t)(v & 0xff);
	return 0;
}

/* v1: cuts "src dst sport dport" at single spaces into exactly four
 * non-empty tokens; -1 on a missing, extra or empty one. */
static int v1_split(const uint8_t *p, size_t n, const uint8_t *tok[4], size_t tlen[4])
{
	size_t k = 0, start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != ' ')
			continue;
		if (k == 4 || i == start)
			return -1;
		tok[k] = p + start;
		tlen[k++] = i - start;
		start = i + 1;
	}
	return k == 4 ? 0 : -1;
}

/* v1: what follows "PROXY " on a whole line (CRLF excluded). */
static enum proxyp_rc v1_fields(const uint8_t *p, size_t n, struct proxyp_result *r)
{
	const uint8_t *tok[4];
	size_t tlen[4];
	uint8_t sa[16], da[16], sp[2], dp[2];
	int family;

	if (n >= 7 && memcmp(p, "UNKNOWN", 7) == 0)
		return PROXYP_OK;             /* the rest of the line is ignored */
	if (n >= 5 && memcmp(p, "TCP4 ", 5) == 0)
		family = AF_INET;
	else if (n >= 5 && memcmp(p, "TCP6 ", 5) == 0)
		family = AF_INET6;
	else
		return bad(r, "bad v1 protocol");
	if (v1_split(p + 5, n - 5, tok, tlen) < 0)
		return bad(r, "bad v1 syntax");
	if (v1_addr(tok[0], tlen[0], family, sa) < 0 || v1_addr(tok[1], tlen[1], family, da) < 0)
		return bad(r, "bad v1 address");
	if (v1_port(tok[2], tlen[2], sp) < 0 || v1_port(tok[3], tlen[3], dp) < 0)
		return bad(r, "bad v1 port");
	store(&r->src, family, sa, sp);
	store(&r->dst, family, da, dp);
	r->has_addr = 1;
	return PROXYP_OK;
}

/* v1: a byte that may appear in a TCP4/TCP6 line before its CRLF. */
static int v1_tcp_char(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
	       c == '.' || c == ':' || c == ' ';
}

/* v1: a line whose end has not come yet (m bytes, "PROXY " at most):
 * NEED_MORE while it can still become a header, else BAD. */
static enum proxyp_rc v1_partial(const uint8_t *buf, size_t m, struct proxyp_result *r)
{
	const uint8_t *p = buf + V1_PREFIX_LEN;
	size_t n = m > V1_PREFIX_LEN ? m - V1_PREFIX_LEN : 0;

	if (agrees(p, n, "UNKNOWN", 7))
		return PROXYP_NEED_MORE;
	if (!agrees(p, n, "TCP4 ", 5) && !agrees(p, n, "TCP6 ", 5))
		return bad(r, "bad v1 protocol");
	for (size_t i = 5; i < n; i++)
		if (!v1_tcp_char(p[i]))
			return bad(r, "bad v1 character");
	return PROXYP_NEED_MORE;
}

/* v1: finds the CRLF within PROXYP_V1_MAX bytes and parses the line. A
 * bare LF, or CR followed by anything but LF, is refused. */
static enum proxyp_rc parse_v1(const uint8_t *buf, size_t len, struct proxyp_result *r)
{
	size_t lim = len < PROXYP_V1_MAX ? len : PROXYP_V1_MAX;
	enum proxyp_rc rc;

	for (size_t i = 0; i < lim; i++) {
		if (buf[i] == '\n')
			return bad(r, "v1 line not ended by CRLF");
		if (buf[i] != '\r')
			continue;
		if (i + 2 > PROXYP_V1_MAX)
			return bad(r, "v1 line too long");
		rc = v1_fields(buf + V1_PREFIX_LEN, i - V1_PREFIX_LEN, r);
		if (rc == PROXYP_BAD)
			return rc;
		if (i + 1 == len) {               /* the LF is still to come */
			memset(r, 0, sizeof *r);
			return PROXYP_NEED_MORE;
		}
		if (buf[i + 1] != '\n') {
			memset(r, 0, sizeof *r);
			return bad(r, "v1 line not ended by CRLF");
		}
		r->version = 1;
		r->len = i + 2;
		return PROXYP_OK;
	}
	if (len >= PROXYP_V1_MAX)
		return bad(r, "v1 line too long");
	return v1_partial(buf, len, r);
}

/* v2: 1 for a family/transport byte the spec defines: family UNSPEC,
 * INET, INET6 or UNIX, transport UNSPEC, STREAM or DGRAM. */
static int v2_family_known(uint8_t fam)
{
	return (fam >> 4) <= 3 && (fam & 0x0f) <= 2;
}

/* v2: the address block a PROXY header of this family must hold at
 * least; 0 for one whose addresses moat does not use. */
static size_t v2_needs(uint8_t fam)
{
	return fam == 0x11 ? 12 : fam == 0x21 ? 36 : 0;
}

/* v2: copies the addresses of a whole TCP4/TCP6 PROXY header. */
static void v2_addresses(const uint8_t *block, uint8_t fam, struct proxyp_result *r)
{
	int family = fam == 0x11 ? AF_INET : AF_INET6;
	size_t alen = fam == 0x11 ? 4 : 16;

	store(&r->src, family, block, block + 2 * alen);
	store(&r->dst, family, block + alen, block + 2 * alen + 2);
	r->has_addr = 1;
}

/* v2: checks each field as soon as it has arrived, so a bad header is
 * refused without waiting for the bytes it announces. */
static enum proxyp_rc parse_v2(const uint8_t *buf, size_t len, struct proxyp_result *r)
{
	size_t total;
	int proxy;

	if (!agrees(buf, len, v2_sig, sizeof v2_sig))
		return bad(r, "not a PROXY protocol header");
	if (len <= sizeof v2_sig)
		return PROXYP_NEED_MORE;
	if ((buf[12] >> 4) != 2 || (buf[12] & 0x0f) > 1)
		return bad(r, "bad v2 version/command");
	proxy = (buf[12] & 0x0f) == 1;    /* LOCAL ignores the family byte */
	if (len < 14)
		return PROXYP_NEED_MORE;
	if (proxy && !v2_family_known(buf[13]))
		return bad(r, "bad v2 family");
	if (len < V2_FIXED)
		return PROXYP_NEED_MORE;
	total = V2_FIXED + ((size_t)buf[14] << 8 | buf[15]);
	if (total > PROXYP_V2_MAX)
		return bad(r, "v2 length too large");
	if (proxy && total - V2_FIXED < v2_needs(buf[13]))
		return bad(r, "v2 length too short for its addresses");
	if (len < total)
		return PROXYP_NEED_MORE;
	if (proxy && v2_needs(buf[13]))
		v2_addresses(buf + V2_FIXED, buf[13], r);
	r->version = 2;
	r->len = total;
	return PROXYP_OK;
}

enum proxyp_rc proxyp_parse(const uint8_t *buf, size_t len, struct proxyp_result *r)
{
	memset(r, 0, sizeof *r);
	if (len == 0)
		return PROXYP_NEED_MORE;
	if (buf[0] == v2_sig[0])
		return parse_v2(buf, len, r);
	if (!agrees(buf, len, V1_PREFIX, V1_PREFIX_LEN))
		return bad(r, "not a PROXY protocol header");
	if (len <= V1_PREFIX_LEN)
		return PROXYP_NEED_MORE;
	return parse_v1(buf, len, r);
}
