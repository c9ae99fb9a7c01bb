/*
 * fuzz_proxyp: libFuzzer target for protocols/proxyp.c.
 *
 * The input is what a trusted load balancer sent first on a connection.
 * proxyp_parse() reads it from a heap copy of exactly its length (ASan
 * reports any read past it) and its answer must keep proxyp.h's promises:
 *   - OK: 0 < len <= the input and PROXYP_V2_MAX (v1: PROXYP_V1_MAX, and
 *     the line ends in CRLF), version 1 or 2, no reason; with has_addr
 *     both ends of one family, AF_INET or AF_INET6, and the very
 *     addresses and ports the header carries; without, no address;
 *   - NEED_MORE: nothing filled in, and fewer than PROXYP_V2_MAX bytes
 *     (the caller's buffer need never hold more);
 *   - BAD: a non-empty reason, nothing to skip, no address.
 * Its prefixes (each length up to 24, those around the header's end and
 * the limits, a few picked by the input's hash) must agree with it:
 * shorter than a header, NEED_MORE; a header alone, or with anything
 * after it, the same OK; a prefix of a NEED_MORE, NEED_MORE; once BAD,
 * BAD for every longer prefix; and past PROXYP_V2_MAX bytes nothing
 * changes.
 *
 * proxyp_build() must write, for the addresses of a parsed header and
 * for addresses taken from the input's bytes, a header of the expected
 * length (exactly that much room is enough, one byte less is refused
 * without a write) that parses back to the same ends (a mixed pair as
 * IPv4-mapped IPv6). proxyp_build_local() likewise, for every version and
 * room up to 40 bytes, once.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "proxyp.h"

#define GUARD 0xA5
#define PREFIX_MAX (PROXYP_V2_MAX + 1)     /* prefixes compared with the whole input */

static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
	                             0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

/* A heap copy of exactly n bytes (ASan then sees a read past them). */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	CHECK(b != NULL);
	if (n)
		memcpy(b, p, n);
	return b;
}

/* One end as the checks compare it. */
struct end {
	int family;
	uint8_t addr[16];
	uint16_t port;                /* host order */
};

static struct end end_of(const struct sockaddr_storage *ss)
{
	struct end e;

	memset(&e, 0, sizeof e);
	e.family = ss->ss_family;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ss;
		memcpy(e.addr, &in->sin_addr, 4);
		e.port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ss;
		memcpy(e.addr, &in6->sin6_addr, 16);
		e.port = ntohs(in6->sin6_port);
	}
	return e;
}

static int same_end(const struct end *a, const struct end *b)
{
	return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

/* An IPv4 end as the IPv6 end a mixed header carries (::ffff:a.b.c.d). */
static struct end mapped(struct end e)
{
	if (e.family != AF_INET)
		return e;
	memmove(e.addr + 12, e.addr, 4);
	memset(e.addr, 0, 12);
	e.addr[10] = e.addr[11] = 0xff;
	e.family = AF_INET6;
	return e;
}

/* A sockaddr for an end. */
static void put_end(struct sockaddr_storage *ss, const struct end *e)
{
	memset(ss, 0, sizeof *ss);
	if (e->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)(void *)ss;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, e->addr, 4);
		in->sin_port = htons(e->port);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)ss;
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, e->addr, 16);
		in6->sin6_port = htons(e->port);
	}
}

/* Two answers are the same (why compared as a pointer: static text). */
static int same_result(enum proxyp_rc ra, const struct proxyp_result *a, enum proxyp_rc rb,
                       const struct proxyp_result *b)
{
	return ra == rb && a->len == b->len && a->version == b->version &&
	       a->has_addr == b->has_addr && a->why == b->why &&
	       memcmp(&a->src, &b->src, sizeof a->src) == 0 &&
	       memcmp(&a->dst, &b->dst, sizeof a->dst) == 0;
}

/* v1 with addresses: the line itself says "PROXY TCPn SRC DST SPORT
 * DPORT" with single spaces, and the answer holds those values. */
static void check_v1_fields(const uint8_t *buf, const struct proxyp_result *r)
{
	char line[PROXYP_V1_MAX + 1], *tok[7], *save = NULL, *t;
	struct end s = end_of(&r->src), d = end_of(&r->dst);
	uint8_t a[16];
	size_t n = r->len - 2, k = 0;

	memcpy(line, buf, n);
	line[n] = '\0';
	CHECK(strlen(line) == n);
	for (t = strtok_r(line, " ", &save); t && k < 7; t = strtok_r(NULL, " ", &save))
		tok[k++] = t;
	CHECK(k == 6);
	/* single spaces: the six tokens and five spaces fill the line */
	CHECK(strlen(tok[0]) + strlen(tok[1]) + strlen(tok[2]) + strlen(tok[3]) +
	      strlen(tok[4]) + strlen(tok[5]) + 5 == n);
	CHECK(strcmp(tok[0], "PROXY") == 0);
	CHECK(strcmp(tok[1], s.family == AF_INET ? "TCP4" : "TCP6") == 0);
	memset(a, 0, sizeof a);
	CHECK(inet_pton(s.family, tok[2], a) == 1 && memcmp(a, s.addr, 16) == 0);
	memset(a, 0, sizeof a);
	CHECK(inet_pton(d.family, tok[3], a) == 1 && memcmp(a, d.addr, 16) == 0);
	for (int i = 0; i < 2; i++) {
		char want[8];
		snprintf(want, sizeof want, "%u", (unsigned)(i == 0 ? s.port : d.port));
		CHECK(strcmp(tok[4 + i], want) == 0);   /* decimal, no sign, no leading zero */
	}
}

/* v2: the header's own fields agree with the answer. */
static void check_v2_fields(const uint8_t *buf, const struct proxyp_result *r)
{
	size_t alen;
	struct end s, d;

	CHECK(r->len >= 16 && memcmp(buf, sig, sizeof sig) == 0);
	CHECK(r->len == 16 + ((size_t)buf[14] << 8 | buf[15]));
	CHECK(buf[12] == 0x20 || buf[12] == 0x21);
	if (!r->has_addr) {
		CHECK(buf[12] == 0x20 || (buf[13] != 0x11 && buf[13] != 0x21));
		return;
	}
	CHECK(buf[12] == 0x21 && (buf[13] == 0x11 || buf[13] == 0x21));
	s = end_of(&r->src);
	d = end_of(&r->dst);
	CHECK(s.family == (buf[13] == 0x11 ? AF_INET : AF_INET6));
	alen = s.family == AF_INET ? 4 : 16;
	CHECK(r->len >= 16 + 2 * alen + 4);
	CHECK(memcmp(s.addr, buf + 16, alen) == 0 && memcmp(d.addr, buf + 16 + alen, alen) == 0);
	CHECK(s.port == (buf[16 + 2 * alen] << 8 | buf[16 + 2 * alen + 1]));
	CHECK(d.port == (buf[16 + 2 * alen + 2] << 8 | buf[16 + 2 * alen + 3]));
}

/* One answer for the len bytes at buf, on its own. */
static void check_result(const uint8_t *buf, size_t len, enum proxyp_rc rc,
                         const struct proxyp_result *r)
{
	CHECK(rc == PROXYP_NEED_MORE || rc == PROXYP_OK || rc == PROXYP_BAD);
	if (rc != PROXYP_OK) {
		CHECK(r->len == 0 && r->version == 0 && r->has_addr == 0);
		CHECK(fz_all_zero(&r->src, sizeof r->src) && fz_all_zero(&r->dst, sizeof r->dst));
		if (rc == PROXYP_NEED_MORE)
			CHECK(r->why == NULL && len < PROXYP_V2_MAX);
		else
			CHECK(r->why != NULL && r->why[0] != '\0');
		return;
	}
	CHECK(r->why == NULL);
	CHECK(r->len > 0 && r->len <= len && r->len <= PROXYP_V2_MAX);
	CHECK(r->version == 1 || r->version == 2);
	CHECK(r->has_addr == 0 || r->has_addr == 1);
	if (r->has_addr) {
		CHECK(r->src.ss_family == AF_INET || r->src.ss_family == AF_INET6);
		CHECK(r->dst.ss_family == r->src.ss_family);
	} else {
		CHECK(fz_all_zero(&r->src, sizeof r->src) && fz_all_zero(&r->dst, sizeof r->dst));
	}
	if (r->version == 1) {
		CHECK(r->len <= PROXYP_V1_MAX && r->len >= 8);
		CHECK(memcmp(buf, "PROXY ", 6) == 0);
		CHECK(buf[r->len - 2] == '\r' && buf[r->len - 1] == '\n');
		if (r->has_addr)
			check_v1_fields(buf, r);
		else
			CHECK(r->len >= 15 && memcmp(buf + 6, "UNKNOWN", 7) == 0);
	} else {
		check_v2_fields(buf, r);
	}
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* The prefix lengths compared with the whole input, in order: every one
 * up to 24 (signature, v2 fixed part, "PROXY " and its protocol), those
 * around the header's end, the v1 and v2 limits and the input's end, and
 * a few picked by the input's hash. */
static size_t prefix_lengths(const uint8_t *data, size_t size, const struct proxyp_result *r,
                             size_t top, size_t *v)
{
	size_t n = 0, k = 0;
	uint64_t seed = fz_hash(FZ_HASH_INIT, data, size);
	size_t pick[] = { r->len / 2, r->len - 1, r->len, r->len + 1, PROXYP_V1_MAX - 2,
		              PROXYP_V1_MAX - 1, PROXYP_V1_MAX, PROXYP_V1_MAX + 1, PROXYP_V2_MAX - 1,
		              PROXYP_V2_MAX, top - 1, top };

	for (size_t m = 0; m <= 24; m++)
		v[n++] = m;
	for (size_t i = 0; i < sizeof pick / sizeof *pick; i++)
		v[n++] = pick[i];
	for (int i = 0; i < 8; i++)
		v[n++] = top ? (size_t)(fz_rand(&seed) % (top + 1)) : 0;
	qsort(v, n, sizeof *v, cmp_size);
	for (size_t i = 0; i < n; i++)
		if (v[i] <= top && (k == 0 || v[i] != v[k - 1]))
			v[k++] = v[i];
	return k;
}

/* Prefixes of the input, each alone in a buffer that ends where it does,
 * against the whole input's answer. */
static void check_prefixes(const uint8_t *data, size_t size, enum proxyp_rc rc,
                           const struct proxyp_result *r)
{
	size_t top = size < PREFIX_MAX ? size : PREFIX_MAX, lens[64], nlens;
	uint8_t *tail = malloc(top ? top : 1);
	int was_bad = 0;

	CHECK(tail != NULL);
	nlens = prefix_lengths(data, size, r, top, lens);
	for (size_t i = 0; i < nlens; i++) {
		size_t m = lens[i];
		struct proxyp_result pr;
		uint8_t *at = tail + (top - m);
		enum proxyp_rc prc;

		if (m)
			memcpy(at, data, m);
		prc = proxyp_parse(at, m, &pr);
		check_result(at, m, prc, &pr);
		if (rc == PROXYP_OK) {
			if (m < r->len)
				CHECK(prc == PROXYP_NEED_MORE);
			else
				CHECK(same_result(prc, &pr, rc, r));
		} else if (rc == PROXYP_NEED_MORE) {
			CHECK(prc == PROXYP_NEED_MORE);
		} else {
			CHECK(prc != PROXYP_OK);
		}
		/* BAD stays BAD: more bytes cannot mend a header */
		if (was_bad)
			CHECK(prc == PROXYP_BAD);
		was_bad = prc == PROXYP_BAD;
		/* past PROXYP_V2_MAX bytes the answer is settled */
		if (m == PROXYP_V2_MAX)
			CHECK(same_result(prc, &pr, rc, r));
	}
	free(tail);
}

/* proxyp_build(version, src, dst): expected length, exact room enough,
 * one byte less refused untouched, parses back to the same ends. */
static void check_build(int version, const struct sockaddr_storage *src,
                        const struct sockaddr_storage *dst)
{
	uint8_t big[PROXYP_V2_MAX + 64], *out, *small;
	struct end s = end_of(src), d = end_of(dst), ws, wd;
	struct proxyp_result r;
	int n;

	n = proxyp_build(version, (const struct sockaddr *)src, (const struct sockaddr *)dst, big,
	                 sizeof big);
	if (version != 1 && version != 2) {
		CHECK(n == -1);
		return;
	}
	CHECK(n > 0);
	ws = s;
	wd = d;
	if (s.family != d.family) {
		ws = mapped(s);
		wd = mapped(d);
	}
	if (version == 1)
		CHECK(n >= 8 && n <= PROXYP_V1_MAX);
	else
		CHECK(n == 16 + (ws.family == AF_INET ? 12 : 36));

	/* exactly n bytes of room: the same header */
	out = malloc((size_t)n);
	CHECK(out != NULL);
	CHECK(proxyp_build(version, (const struct sockaddr *)src, (const struct sockaddr *)dst, out,
	                   (size_t)n) == n);
	CHECK(memcmp(out, big, (size_t)n) == 0);

	/* one byte less: refused, nothing written */
	small = malloc((size_t)n);
	CHECK(small != NULL);
	memset(small, GUARD, (size_t)n);
	CHECK(proxyp_build(version, (const struct sockaddr *)src, (const struct sockaddr *)dst,
	                   small, (size_t)n - 1) == -1);
	for (int i = 0; i < n; i++)
		CHECK(small[i] == GUARD);
	free(small);

	/* back through the parser */
	CHECK(proxyp_parse(out, (size_t)n, &r) == PROXYP_OK);
	check_result(out, (size_t)n, PROXYP_OK, &r);
	CHECK(r.len == (size_t)n && r.version == version && r.has_addr == 1);
	s = end_of(&r.src);
	d = end_of(&r.dst);
	CHECK(same_end(&s, &ws) && same_end(&d, &wd));
	free(out);
}

/* Two ends (and a version) from the input's bytes, zero-padded: byte 0
 * picks the families and the version, then 16 + 16 address bytes and two
 * ports. An AF_UNIX end must be refused. */
static void check_build_from_bytes(const uint8_t *data, size_t size)
{
	uint8_t b[1 + 16 + 16 + 4];
	struct end s, d;
	struct sockaddr_storage ss, ds, us;
	int version;

	memset(b, 0, sizeof b);
	memcpy(b, data, size < sizeof b ? size : sizeof b);
	memset(&s, 0, sizeof s);
	memset(&d, 0, sizeof d);
	s.family = b[0] & 1 ? AF_INET6 : AF_INET;
	d.family = b[0] & 2 ? AF_INET6 : AF_INET;
	memcpy(s.addr, b + 1, s.family == AF_INET ? 4 : 16);
	memcpy(d.addr, b + 17, d.family == AF_INET ? 4 : 16);
	s.port = (uint16_t)(b[33] << 8 | b[34]);
	d.port = (uint16_t)(b[35] << 8 | b[36]);
	put_end(&ss, &s);
	put_end(&ds, &d);
	version = (b[0] >> 2) & 3;
	check_build(version, &ss, &ds);
	/* the other version too, always a valid one */
	check_build(version == 1 ? 2 : 1, &ss, &ds);

	/* a family a header cannot carry */
	memset(&us, 0, sizeof us);
	us.ss_family = AF_UNIX;
	{
		uint8_t out[PROXYP_V2_MAX];
		memset(out, GUARD, sizeof out);
		CHECK(proxyp_build(1 + (b[0] >> 7), (const struct sockaddr *)&us,
		                   (const struct sockaddr *)&ds, out, sizeof out) == -1);
		CHECK(proxyp_build(1 + (b[0] >> 7), (const struct sockaddr *)&ss,
		                   (const struct sockaddr *)&us, out, sizeof out) == -1);
		for (size_t i = 0; i < sizeof out; i++)
			CHECK(out[i] == GUARD);
	}
}

/* A parsed header's ends, built again; and mixed with an end of the
 * other family. */
static void check_rebuild(const struct proxyp_result *r)
{
	struct end s = end_of(&r->src), d = end_of(&r->dst), o;
	struct sockaddr_storage os;

	check_build(1, &r->src, &r->dst);
	check_build(2, &r->src, &r->dst);
	memset(&o, 0, sizeof o);
	o.port = (uint16_t)(s.port ^ d.port);
	if (s.family == AF_INET) {
		o.family = AF_INET6;
		memcpy(o.addr, d.addr, 4);
		memcpy(o.addr + 12, s.addr, 4);
	} else {
		o.family = AF_INET;
		memcpy(o.addr, s.addr + 12, 4);
	}
	put_end(&os, &o);
	check_build(r->version, &r->src, &os);
	check_build(3 - r->version, &os, &r->dst);
}

/* proxyp_build_local() for versions 0..3 and room 0..40. */
static void check_local(void)
{
	for (int version = 0; version <= 3; version++) {
		for (size_t cap = 0; cap <= 40; cap++) {
			uint8_t *out = malloc(cap ? cap : 1);
			size_t want = version == 1 ? 15 : 16;
			struct proxyp_result r;
			int n;

			CHECK(out != NULL);
			memset(out, GUARD, cap ? cap : 1);
			n = proxyp_build_local(version, out, cap);
			if ((version != 1 && version != 2) || cap < want) {
				CHECK(n == -1);
				for (size_t i = 0; i < cap; i++)
					CHECK(out[i] == GUARD);
				free(out);
				continue;
			}
			CHECK(n == (int)want);
			CHECK(proxyp_parse(out, (size_t)n, &r) == PROXYP_OK);
			check_result(out, (size_t)n, PROXYP_OK, &r);
			CHECK(r.len == want && r.version == version && r.has_addr == 0);
			if (version == 1)
				CHECK(memcmp(out, "PROXY UNKNOWN\r\n", 15) == 0);
			else
				CHECK(out[12] == 0x20 && out[14] == 0 && out[15] == 0);
			free(out);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int local_done;
	uint8_t *buf = exact_copy(data, size);
	struct proxyp_result r;
	enum proxyp_rc rc;

	if (!local_done) {
		check_local();
		local_done = 1;
	}

	/* r is cleared first: poison it */
	memset(&r, 0x5a, sizeof r);
	rc = proxyp_parse(buf, size, &r);
	check_result(buf, size, rc, &r);
	CHECK(memcmp(buf, data, size) == 0);
	check_prefixes(data, size, rc, &r);
	if (rc == PROXYP_OK && r.has_addr)
		check_rebuild(&r);
	check_build_from_bytes(data, size);
	free(buf);
	return 0;
}
