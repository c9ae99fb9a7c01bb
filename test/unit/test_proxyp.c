/*
 * proxyp: PROXY protocol v1/v2 headers. Built headers parsed back; byte
 * strings written by hand from proxy-protocol.txt; every prefix of a good
 * header must ask for more; a table of bad inputs with their reasons.
 * Each parse runs on a heap copy of exactly the bytes given, so reading
 * past len shows up under ASan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "proxyp.h"

#define SIG 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
#define FF8 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
#define TXT(s) (const uint8_t *)(s), sizeof(s) - 1
#define BIN(a) a, sizeof a

/* Fails with the row's name and the condition that did not hold. */
#define EXPECT(cond, row) do { \
	if (!(cond)) \
		fail_msg("%s: %s", (row), #cond); \
} while (0)

/* Parses a heap copy of exactly n bytes. */
static enum proxyp_rc parse_exact(const uint8_t *p, size_t n, struct proxyp_result *r)
{
	uint8_t *copy = malloc(n ? n : 1);
	enum proxyp_rc rc;

	assert_non_null(copy);
	if (n)
		memcpy(copy, p, n);
	memset(r, 0x5a, sizeof *r);       /* proxyp_parse must clear it */
	rc = proxyp_parse(copy, n, r);
	free(copy);
	return rc;
}

/* A sockaddr from text ("192.0.2.1" or "2001:db8::1") and a port. */
static void sa_from(const char *addr, uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, addr, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
}

/* Checks a parsed end against text in inet_ntop's own form; an address
 * with a colon must come back as AF_INET6. */
static void check_end(const char *row, const char *which, const struct sockaddr_storage *ss,
                      const char *addr, uint16_t port)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
	int family = strchr(addr, ':') ? AF_INET6 : AF_INET;
	char got[INET6_ADDRSTRLEN] = "?";
	uint16_t got_port;

	if (ss->ss_family != family)
		fail_msg("%s: %s family %d, want %d", row, which, ss->ss_family, family);
	if (family == AF_INET) {
		inet_ntop(AF_INET, &in->sin_addr, got, sizeof got);
		got_port = ntohs(in->sin_port);
	} else {
		inet_ntop(AF_INET6, &in6->sin6_addr, got, sizeof got);
		got_port = ntohs(in6->sin6_port);
	}
	if (strcmp(got, addr) != 0 || got_port != port)
		fail_msg("%s: %s is %s port %u, want %s port %u", row, which, got, got_port,
		         addr, port);
}

/* Every proper prefix of a whole header asks for more and says nothing
 * else; the whole of it is OK. */
static void check_prefixes(const char *row, const uint8_t *p, size_t hdr)
{
	struct proxyp_result r;

	for (size_t k = 0; k < hdr; k++) {
		enum proxyp_rc rc = parse_exact(p, k, &r);
		if (rc != PROXYP_NEED_MORE)
			fail_msg("%s: prefix of %zu/%zu bytes gave %d (%s)", row, k, hdr, (int)rc,
			         rc == PROXYP_BAD ? r.why : "ok");
		EXPECT(r.len == 0 && r.why == NULL && r.has_addr == 0, row);
	}
	EXPECT(parse_exact(p, hdr, &r) == PROXYP_OK, row);
	EXPECT(r.len == hdr, row);
}

/* ---- build, then parse back ---- */

struct trip {
	const char *name;
	int version;
	const char *src;
	uint16_t sport;
	const char *dst;
	uint16_t dport;
	const char *v1;               /* the line version 1 must write */
	int v2_len;                   /* the length version 2 must write */
	const char *want_src, *want_dst; /* as parsed back (mapped when mixed) */
};

static const struct trip trips[] = {
	{ "v1 ipv4", 1, "192.0.2.1", 56324, "198.51.100.2", 993,
	  "PROXY TCP4 192.0.2.1 198.51.100.2 56324 993\r\n", 0, "192.0.2.1", "198.51.100.2" },
	{ "v1 ipv6", 1, "2001:db8::1", 40000, "2001:db8:0:1::25", 995,
	  "PROXY TCP6 2001:db8::1 2001:db8:0:1::25 40000 995\r\n", 0,
	  "2001:db8::1", "2001:db8:0:1::25" },
	{ "v1 ipv4 to ipv6", 1, "192.0.2.1", 0, "2001:db8::2", 65535,
	  "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 0 65535\r\n", 0,
	  "::ffff:192.0.2.1", "2001:db8::2" },
	{ "v1 ipv6 to ipv4", 1, "2001:db8::3", 1, "203.0.113.9", 143,
	  "PROXY TCP6 2001:db8::3 ::ffff:203.0.113.9 1 143\r\n", 0,
	  "2001:db8::3", "::ffff:203.0.113.9" },
	{ "v1 longest", 1, FF8, 65535, FF8, 65535,
	  "PROXY TCP6 " FF8 " " FF8 " 65535 65535\r\n", 0, FF8, FF8 },
	{ "v2 ipv4", 2, "192.0.2.1", 56324, "198.51.100.2", 993, NULL, 28,
	  "192.0.2.1", "198.51.100.2" },
	{ "v2 ipv6", 2, "2001:db8::1", 40000, "2001:db8:0:1::25", 995, NULL, 52,
	  "2001:db8::1", "2001:db8:0:1::25" },
	{ "v2 ipv4 to ipv6", 2, "192.0.2.1", 0, "2001:db8::2", 65535, NULL, 52,
	  "::ffff:192.0.2.1", "2001:db8::2" },
	{ "v2 ipv6 to ipv4", 2, "2001:db8::3", 1, "203.0.113.9", 143, NULL, 52,
	  "2001:db8::3", "::ffff:203.0.113.9" },
};

static void test_roundtrip(void **state)
{
	static const char after[] = "a1 CAPABILITY\r\n";

	(void)state;
	for (size_t i = 0; i < sizeof trips / sizeof *trips; i++) {
		const struct trip *t = &trips[i];
		struct sockaddr_storage s, d;
		struct proxyp_result r;
		uint8_t buf[PROXYP_V2_MAX + sizeof after];
		int n, want = t->v1 ? (int)strlen(t->v1) : t->v2_len;

		sa_from(t->src, t->sport, &s);
		sa_from(t->dst, t->dport, &d);
		n = proxyp_build(t->version, (struct sockaddr *)&s, (struct sockaddr *)&d, buf,
		                 PROXYP_V2_MAX);
		if (n != want)
			fail_msg("%s: built %d bytes, want %d", t->name, n, want);
		if (t->v1 && memcmp(buf, t->v1, (size_t)n) != 0)
			fail_msg("%s: built \"%.*s\"", t->name, n, (const char *)buf);
		EXPECT(n <= (t->version == 1 ? PROXYP_V1_MAX : PROXYP_V2_MAX), t->name);
		memcpy(buf + n, after, sizeof after - 1);
		EXPECT(parse_exact(buf, (size_t)n + sizeof after - 1, &r) == PROXYP_OK, t->name);
		EXPECT(r.len == (size_t)n, t->name);
		EXPECT(r.version == t->version, t->name);
		EXPECT(r.has_addr == 1, t->name);
		EXPECT(r.why == NULL, t->name);
		check_end(t->name, "src", &r.src, t->want_src, t->sport);
		check_end(t->name, "dst", &r.dst, t->want_dst, t->dport);
		check_prefixes(t->name, buf, (size_t)n);
	}
}

/* Version 2 headers byte for byte, as the spec lays them out. */
static void test_build_v2_bytes(void **state)
{
	static const uint8_t want4[] = {
		SIG, 0x21, 0x11, 0x00, 0x0C,
		192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x03, 0xE1,
	};
	static const uint8_t want6[] = {
		SIG, 0x21, 0x21, 0x00, 0x24,
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
		0x01, 0xBB, 0x03, 0xE1,
	};
	struct sockaddr_storage s, d;
	uint8_t buf[64];

	(void)state;
	sa_from("192.0.2.1", 56324, &s);
	sa_from("198.51.100.2", 993, &d);
	assert_int_equal(proxyp_build(2, (struct sockaddr *)&s, (struct sockaddr *)&d, buf,
	                              sizeof buf), sizeof want4);
	assert_memory_equal(buf, want4, sizeof want4);
	sa_from("2001:db8::1", 443, &s);
	sa_from("2001:db8::2", 993, &d);
	assert_int_equal(proxyp_build(2, (struct sockaddr *)&s, (struct sockaddr *)&d, buf,
	                              sizeof buf), sizeof want6);
	assert_memory_equal(buf, want6, sizeof want6);
}

/* Refusals: a version or family it cannot write, and every cap one byte
 * short or more, which must leave out untouched. */
static void test_build_errors(void **state)
{
	static const struct { int version; const char *src, *dst; int len; } caps[] = {
		{ 1, "192.0.2.1", "198.51.100.2", 44 },
		{ 1, FF8, "::1", 65 },
		{ 2, "192.0.2.1", "198.51.100.2", 28 },
		{ 2, "192.0.2.1", "::1", 52 },
	};
	struct sockaddr_storage s, d, u;
	struct sockaddr_un *un = (struct sockaddr_un *)&u;
	uint8_t buf[128];

	(void)state;
	sa_from("192.0.2.1", 1000, &s);
	sa_from("198.51.100.2", 993, &d);
	memset(&u, 0, sizeof u);
	un->sun_family = AF_UNIX;
	strcpy(un->sun_path, "/run/x");
	assert_int_equal(proxyp_build(0, (struct sockaddr *)&s, (struct sockaddr *)&d, buf,
	                              sizeof buf), -1);
	assert_int_equal(proxyp_build(3, (struct sockaddr *)&s, (struct sockaddr *)&d, buf,
	                              sizeof buf), -1);
	assert_int_equal(proxyp_build(1, (struct sockaddr *)&u, (struct sockaddr *)&d, buf,
	                              sizeof buf), -1);
	assert_int_equal(proxyp_build(2, (struct sockaddr *)&s, (struct sockaddr *)&u, buf,
	                              sizeof buf), -1);
	u.ss_family = AF_UNSPEC;
	assert_int_equal(proxyp_build(2, (struct sockaddr *)&u, (struct sockaddr *)&d, buf,
	                              sizeof buf), -1);
	for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
		sa_from(caps[i].src, 1000, &s);
		sa_from(caps[i].dst, 993, &d);
		for (int cap = 0; cap < caps[i].len; cap++) {
			memset(buf, 0xee, sizeof buf);
			assert_int_equal(proxyp_build(caps[i].version, (struct sockaddr *)&s,
			                              (struct sockaddr *)&d, buf, (size_t)cap), -1);
			for (size_t k = 0; k < sizeof buf; k++)
				assert_int_equal(buf[k], 0xee);
		}
		assert_int_equal(proxyp_build(caps[i].version, (struct sockaddr *)&s,
		                              (struct sockaddr *)&d, buf, (size_t)caps[i].len),
		                 caps[i].len);
	}
}

/* ---- good headers written by hand ---- */

static const uint8_t v2_tcp4_tlv[] = {
	SIG, 0x21, 0x11, 0x00, 0x19,
	192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x03, 0xE1,
	0x01, 0x00, 0x04, 'i', 'm', 'a', 'p',        /* PP2_TYPE_ALPN */
	0x04, 0x00, 0x03, 0, 0, 0,                   /* PP2_TYPE_NOOP */
	'a', '1', ' ', 'N', 'O', 'O', 'P', '\r', '\n',
};
static const uint8_t v2_tcp6[] = {
	SIG, 0x21, 0x21, 0x00, 0x24,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
	0x01, 0xBB, 0x03, 0xE1, '.',
};
static const uint8_t v2_local[] = { SIG, 0x20, 0x00, 0x00, 0x00, 'a', '1' };
static const uint8_t v2_local_junk[] = { SIG, 0x20, 0xFF, 0x00, 0x04, 1, 2, 3, 4, 'x' };
static const uint8_t v2_unspec[] = { SIG, 0x21, 0x00, 0x00, 0x00 };
static const uint8_t v2_udp4[] = {
	SIG, 0x21, 0x12, 0x00, 0x0C, 192, 0, 2, 1, 198, 51, 100, 2, 0, 53, 0, 53,
};
static const uint8_t v2_unix[16 + 216 + 2] = { SIG, 0x21, 0x31, 0x00, 0xD8, '/', 'r', 'u', 'n' };
static const uint8_t v2_longest[PROXYP_V2_MAX + 1] = {
	SIG, 0x21, 0x11, 0x02, 0x08, 10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x00, 0x8F,
};

struct good {
	const char *name;
	const uint8_t *bytes;
	size_t len;                   /* the header and what follows it */
	size_t hdr;                   /* r.len wanted */
	int version, has_addr;
	const char *src;
	uint16_t sport;
	const char *dst;
	uint16_t dport;
};

static const struct good goods[] = {
	{ "v2 tcp4 with TLVs", BIN(v2_tcp4_tlv), 41, 2, 1, "192.0.2.1", 56324, "198.51.100.2", 993 },
	{ "v2 tcp6", BIN(v2_tcp6), 52, 2, 1, "2001:db8::1", 443, "2001:db8::2", 993 },
	{ "v2 LOCAL", BIN(v2_local), 16, 2, 0, NULL, 0, NULL, 0 },
	{ "v2 LOCAL ignores family", BIN(v2_local_junk), 20, 2, 0, NULL, 0, NULL, 0 },
	{ "v2 PROXY UNSPEC", BIN(v2_unspec), 16, 2, 0, NULL, 0, NULL, 0 },
	{ "v2 PROXY UDP4", BIN(v2_udp4), 28, 2, 0, NULL, 0, NULL, 0 },
	{ "v2 PROXY UNIX", BIN(v2_unix), 232, 2, 0, NULL, 0, NULL, 0 },
	{ "v2 at PROXYP_V2_MAX", BIN(v2_longest), PROXYP_V2_MAX, 2, 1, "10.0.0.1", 12345,
	  "10.0.0.2", 143 },
	{ "v1 tcp4", TXT("PROXY TCP4 192.0.2.1 198.51.100.2 56324 993\r\na1 LOGIN\r\n"), 45, 1, 1,
	  "192.0.2.1", 56324, "198.51.100.2", 993 },
	{ "v1 tcp4 zeros", TXT("PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n"), 40, 1, 1,
	  "0.0.0.0", 0, "255.255.255.255", 0 },
	{ "v1 tcp6", TXT("PROXY TCP6 2001:db8::1 ::1 0 65535\r\n+OK"), 36, 1, 1,
	  "2001:db8::1", 0, "::1", 65535 },
	{ "v1 tcp6 mapped", TXT("PROXY TCP6 ::ffff:192.0.2.7 2001:DB8::9 9 10\r\n"), 46, 1, 1,
	  "::ffff:192.0.2.7", 9, "2001:db8::9", 10 },
	{ "v1 tcp6 address of 45 chars",
	  TXT("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 ::2 7 8\r\n"), 66, 1, 1,
	  FF8, 7, "::2", 8 },
	{ "v1 tcp6 longest", TXT("PROXY TCP6 " FF8 " " FF8 " 65535 65535\r\n"), 104, 1, 1,
	  FF8, 65535, FF8, 65535 },
	{ "v1 UNKNOWN", TXT("PROXY UNKNOWN\r\nUSER x\r\n"), 15, 1, 0, NULL, 0, NULL, 0 },
	{ "v1 UNKNOWN then another", TXT("PROXY UNKNOWN\r\nPROXY UNKNOWN\r\n"), 15, 1, 0,
	  NULL, 0, NULL, 0 },
	{ "v1 UNKNOWN ignores the rest", TXT("PROXY UNKNOWN what  ever\t!\r\n"), 28, 1, 0,
	  NULL, 0, NULL, 0 },
	{ "v1 UNKNOWN at PROXYP_V1_MAX",
	  TXT("PROXY UNKNOWN " FF8 " " FF8 " 65535 65535\r\n"), PROXYP_V1_MAX, 1, 0,
	  NULL, 0, NULL, 0 },
};

static void test_known_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof goods / sizeof *goods; i++) {
		const struct good *g = &goods[i];
		struct proxyp_result r;
		enum proxyp_rc rc = parse_exact(g->bytes, g->len, &r);

		if (rc != PROXYP_OK)
			fail_msg("%s: got %d (%s)", g->name, (int)rc, rc == PROXYP_BAD ? r.why : "more");
		if (r.len != g->hdr)
			fail_msg("%s: len %zu, want %zu", g->name, r.len, g->hdr);
		EXPECT(r.version == g->version, g->name);
		EXPECT(r.has_addr == g->has_addr, g->name);
		EXPECT(r.why == NULL, g->name);
		if (g->has_addr) {
			check_end(g->name, "src", &r.src, g->src, g->sport);
			check_end(g->name, "dst", &r.dst, g->dst, g->dport);
		} else {
			EXPECT(r.src.ss_family == 0 && r.dst.ss_family == 0, g->name);
		}
	}
}

static void test_prefixes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof goods / sizeof *goods; i++)
		check_prefixes(goods[i].name, goods[i].bytes, goods[i].hdr);
}

/* ---- incomplete and bad input ---- */

struct more {
	const char *name;
	const uint8_t *bytes;
	size_t len;
};

static const uint8_t v2_sig_only[] = { SIG };
static const uint8_t v2_to_len[] = { SIG, 0x21, 0x11, 0x00 };
static const uint8_t v2_announces_max[] = { SIG, 0x21, 0x11, 0x02, 0x08, 1, 2, 3 };

static const struct more mores[] = {
	{ "nothing", TXT("") },
	{ "P", TXT("P") },
	{ "PROXY", TXT("PROXY") },
	{ "PROXY space", TXT("PROXY ") },
	{ "half a protocol", TXT("PROXY TC") },
	{ "half of UNKNOWN", TXT("PROXY UNKN") },
	{ "half an address", TXT("PROXY TCP6 2001:db8::1 ") },
	{ "CR without LF", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r") },
	{ "UNKNOWN 106 bytes", TXT("PROXY UNKNOWN " FF8 " " FF8 " 65535 65535x") },
	{ "CR", TXT("\r") },
	{ "half a signature", TXT("\r\n\r\n\0\r") },
	{ "signature", BIN(v2_sig_only) },
	{ "up to the length", BIN(v2_to_len) },
	{ "520 announced", BIN(v2_announces_max) },
};

static void test_need_more(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof mores / sizeof *mores; i++) {
		struct proxyp_result r;
		enum proxyp_rc rc = parse_exact(mores[i].bytes, mores[i].len, &r);

		if (rc != PROXYP_NEED_MORE)
			fail_msg("%s: got %d (%s)", mores[i].name, (int)rc,
			         rc == PROXYP_BAD ? r.why : "ok");
		EXPECT(r.len == 0 && r.why == NULL, mores[i].name);
	}
}

struct bad {
	const char *name;
	const uint8_t *bytes;
	size_t len;
	const char *why;
};

#define NOT_PROXY "not a PROXY protocol header"
#define NO_CRLF "v1 line not ended by CRLF"
#define TOO_LONG "v1 line too long"
#define V1_PROTO "bad v1 protocol"
#define V1_SYNTAX "bad v1 syntax"
#define V1_ADDR "bad v1 address"
#define V1_PORT "bad v1 port"
#define V1_CHAR "bad v1 character"
#define V2_VERCMD "bad v2 version/command"
#define V2_FAMILY "bad v2 family"
#define V2_LARGE "v2 length too large"
#define V2_SHORT "v2 length too short for its addresses"

static const uint8_t v2_ver1[] = { SIG, 0x11, 0x11, 0x00, 0x0C, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2 };
static const uint8_t v2_ver1_early[] = { SIG, 0x11 };
static const uint8_t v2_ver3[] = { SIG, 0x31, 0x11, 0x00, 0x0C, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2 };
static const uint8_t v2_cmd2[] = { SIG, 0x22, 0x11, 0x00, 0x0C, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2 };
static const uint8_t v2_cmd15[] = { SIG, 0x2F };
static const uint8_t v2_tcp4_len8[] = { SIG, 0x21, 0x11, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8 };
static const uint8_t v2_tcp6_len12[] = {
	SIG, 0x21, 0x21, 0x00, 0x0C, 1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2,
};
static const uint8_t v2_tcp4_len11[] = { SIG, 0x21, 0x11, 0x00, 0x0B };
static const uint8_t v2_tcp6_len35[] = { SIG, 0x21, 0x21, 0x00, 0x23 };
static const uint8_t v2_len600[] = { SIG, 0x21, 0x11, 0x02, 0x58 };
static const uint8_t v2_len521[] = { SIG, 0x21, 0x00, 0x02, 0x09 };
static const uint8_t v2_local600[] = { SIG, 0x20, 0x00, 0x02, 0x58 };
static const uint8_t v2_fam41[] = { SIG, 0x21, 0x41, 0x00, 0x00 };
static const uint8_t v2_fam13[] = { SIG, 0x21, 0x13 };
static const uint8_t v2_badsig[] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49,
                                     0x58 };

static const struct bad bads[] = {
	{ "HTTP", TXT("GET / HTTP/1.0\r\n"), NOT_PROXY },
	{ "IMAP", TXT("a1 LOGIN x y\r\n"), NOT_PROXY },
	{ "lower case", TXT("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), NOT_PROXY },
	{ "PROXX", TXT("PROXX"), NOT_PROXY },
	{ "PROXY then CR", TXT("PROXY\r\n"), NOT_PROXY },
	{ "CR then text", TXT("\r\nGET"), NOT_PROXY },
	{ "v2 signature wrong", BIN(v2_badsig), NOT_PROXY },
	{ "LF without CR", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), NO_CRLF },
	{ "CR then X", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX"), NO_CRLF },
	{ "LF inside UNKNOWN", TXT("PROXY UNKNOWN a\nb\r\n"), NO_CRLF },
	{ "double space", TXT("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n"), V1_SYNTAX },
	{ "space before CRLF", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), V1_SYNTAX },
	{ "empty source port", TXT("PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n"), V1_SYNTAX },
	{ "space before source", TXT("PROXY TCP4  1.2.3.4 5.6.7.8 1\r\n"), V1_SYNTAX },
	{ "missing port", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), V1_SYNTAX },
	{ "extra field", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"), V1_SYNTAX },
	{ "no fields", TXT("PROXY TCP4 \r\n"), V1_SYNTAX },
	{ "port 65536", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n"), V1_PORT },
	{ "port 99999", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n"), V1_PORT },
	{ "port 6 digits", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1 100000\r\n"), V1_PORT },
	{ "port 01", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), V1_PORT },
	{ "port 00", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1 00\r\n"), V1_PORT },
	{ "port +1", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n"), V1_PORT },
	{ "port -1", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1 -1\r\n"), V1_PORT },
	{ "port 1a", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n"), V1_PORT },
	{ "port hex", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n"), V1_PORT },
	{ "ipv6 in TCP4", TXT("PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n"), V1_ADDR },
	{ "ipv4 in TCP6", TXT("PROXY TCP6 2001:db8::1 5.6.7.8 1 2\r\n"), V1_ADDR },
	{ "three octets", TXT("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"), V1_ADDR },
	{ "five octets", TXT("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n"), V1_ADDR },
	{ "octet 256", TXT("PROXY TCP4 1.2.3.4 5.6.7.256 1 2\r\n"), V1_ADDR },
	{ "name for address", TXT("PROXY TCP4 localhost 5.6.7.8 1 2\r\n"), V1_ADDR },
	{ "address too long", TXT("PROXY TCP6 " FF8 ":ffff ::1 1 2\r\n"), V1_ADDR },
	{ "address of 46 chars", TXT("PROXY TCP6 ::1 " FF8 ":ffff:f 1 2\r\n"), V1_ADDR },
	{ "TCP5", TXT("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), V1_PROTO },
	{ "tcp4", TXT("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n"), V1_PROTO },
	{ "two spaces before TCP4", TXT("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), V1_PROTO },
	{ "TCP4 alone", TXT("PROXY TCP4\r\n"), V1_PROTO },
	{ "UNKNOW", TXT("PROXY UNKNOW\r\n"), V1_PROTO },
	{ "empty protocol", TXT("PROXY \r\n"), V1_PROTO },
	{ "TCP5 not yet ended", TXT("PROXY TCP5"), V1_PROTO },
	{ "NUL not yet ended", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0"), V1_CHAR },
	{ "letter not yet ended", TXT("PROXY TCP4 1.2.3.4 5.6.7.8 1 z"), V1_CHAR },
	{ "107 bytes, no CRLF", TXT("PROXY UNKNOWN " FF8 " " FF8 " 65535 65535xx"), TOO_LONG },
	{ "CR at byte 107", TXT("PROXY UNKNOWN " FF8 " " FF8 " 65535 65535x\r"), TOO_LONG },
	{ "108 bytes with CRLF", TXT("PROXY UNKNOWN " FF8 " " FF8 " 65535 655350\r\n"), TOO_LONG },
	{ "v2 version 1", BIN(v2_ver1), V2_VERCMD },
	{ "v2 version 1, 13 bytes", BIN(v2_ver1_early), V2_VERCMD },
	{ "v2 version 3", BIN(v2_ver3), V2_VERCMD },
	{ "v2 command 2", BIN(v2_cmd2), V2_VERCMD },
	{ "v2 command 15", BIN(v2_cmd15), V2_VERCMD },
	{ "v2 family 4", BIN(v2_fam41), V2_FAMILY },
	{ "v2 transport 3", BIN(v2_fam13), V2_FAMILY },
	{ "v2 length 600", BIN(v2_len600), V2_LARGE },
	{ "v2 length 521", BIN(v2_len521), V2_LARGE },
	{ "v2 LOCAL length 600", BIN(v2_local600), V2_LARGE },
	{ "v2 tcp4 length 8", BIN(v2_tcp4_len8), V2_SHORT },
	{ "v2 tcp6 length 12", BIN(v2_tcp6_len12), V2_SHORT },
	{ "v2 tcp4 length 11", BIN(v2_tcp4_len11), V2_SHORT },
	{ "v2 tcp6 length 35", BIN(v2_tcp6_len35), V2_SHORT },
};

/* Each row is refused with its reason; no prefix of it is accepted, and
 * nothing added after it makes it acceptable. */
static void test_bad(void **state)
{
	static uint8_t longer[1024];

	(void)state;
	for (size_t i = 0; i < sizeof bads / sizeof *bads; i++) {
		const struct bad *b = &bads[i];
		struct proxyp_result r;
		enum proxyp_rc rc = parse_exact(b->bytes, b->len, &r);

		if (rc != PROXYP_BAD)
			fail_msg("%s: got %d, want BAD", b->name, (int)rc);
		if (r.why == NULL || strcmp(r.why, b->why) != 0)
			fail_msg("%s: why \"%s\", want \"%s\"", b->name, r.why ? r.why : "(null)",
			         b->why);
		EXPECT(r.len == 0 && r.has_addr == 0, b->name);
		for (size_t k = 0; k < b->len; k++)
			EXPECT(parse_exact(b->bytes, k, &r) != PROXYP_OK, b->name);
		memset(longer, 'A', sizeof longer);
		memcpy(longer, b->bytes, b->len);
		memcpy(longer + b->len, "\r\n", 2);
		EXPECT(parse_exact(longer, sizeof longer, &r) == PROXYP_BAD, b->name);
	}
}

/* A health check's header: what it writes parses as a header without
 * an address, and too little room writes nothing. */
static void test_build_local(void **state)
{
	static const uint8_t v2[16] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55,
	                                0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00 };
	uint8_t out[32];
	struct proxyp_result r;

	(void)state;
	assert_int_equal(proxyp_build_local(2, out, sizeof out), 16);
	assert_memory_equal(out, v2, 16);
	assert_int_equal(proxyp_parse(out, 16, &r), PROXYP_OK);
	assert_int_equal(r.len, 16);
	assert_int_equal(r.version, 2);
	assert_int_equal(r.has_addr, 0);
	assert_int_equal(proxyp_build_local(1, out, sizeof out), 15);
	assert_memory_equal(out, "PROXY UNKNOWN\r\n", 15);
	assert_int_equal(proxyp_parse(out, 15, &r), PROXYP_OK);
	assert_int_equal(r.version, 1);
	assert_int_equal(r.has_addr, 0);
	assert_int_equal(proxyp_build_local(2, out, 15), -1);
	assert_int_equal(proxyp_build_local(1, out, 14), -1);
	assert_int_equal(proxyp_build_local(3, out, sizeof out), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_build_v2_bytes),
		cmocka_unit_test(test_build_errors),
		cmocka_unit_test(test_known_good),
		cmocka_unit_test(test_prefixes),
		cmocka_unit_test(test_need_more),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_build_local),
	};
	return cmocka_run_group_tests_name("proxyp", tests, NULL, NULL);
}
