/*
 * Unit tests for proxy/cfg.c: table rows through cfg_parse_string(), one
 * cmocka test per row, then rows for the duration, size and address
 * parsers, then cfg_load() on real files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"

/* Lines 1-3. */
#define TLS_OK "[tls]\ncertificate = /etc/moat/cert.pem\nkey = /etc/moat/key.pem\n"
/* Lines 4-8 after TLS_OK: header 4, address 5, protocol 6, tls 7, backend 8. */
#define IMAPS "[listener imaps]\naddress = *:993\nprotocol = imap\ntls = implicit\n" \
              "backend = 127.0.0.1:143\n"
#define MIN TLS_OK IMAPS
/* [listener x] at line 4: address 5, protocol 6, backend 7; more from line 8. */
#define L(a, p, b) TLS_OK "[listener x]\naddress = " a "\nprotocol = " p "\nbackend = " b "\n"
#define LX(more) L("*:993", "imap", "127.0.0.1:143") more
/* [moat] at line 9, the key at line 10. */
#define MOAT(kv) MIN "[moat]\n" kv "\n"

struct row {
	const char *name;
	const char *text;
	int ok;
	const char *err;      /* must appear in the error text */
	int nerr;             /* exact number of error lines */
	void (*check)(const struct cfg *c);
};

/* ---- helpers ---- */

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void assert_addr(const struct cfg_addr *a, int family, const char *ip, unsigned port)
{
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(a->sa.ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)&a->sa;
		assert_int_equal(a->len, sizeof *sin);
		assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf));
		assert_int_equal(ntohs(sin->sin_port), port);
	} else {
		const struct sockaddr_in6 *sin6 = (const void *)&a->sa;
		assert_int_equal(a->len, sizeof *sin6);
		assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf));
		assert_int_equal(ntohs(sin6->sin6_port), port);
	}
	assert_string_equal(buf, ip);
}

static long online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 256 ? 256 : n;
}

/* ---- checks for rows that parse ---- */

static void check_minimal(const struct cfg *c)
{
	const struct cfg_listener *l = &c->listeners[0];

	assert_string_equal(c->path, "t");
	assert_int_equal(c->workers, online_cpus());
	assert_true(c->workers >= 1);
	assert_int_equal(c->log_level, CFG_LOG_INFO);
	assert_int_equal(c->buffer_size, 65536);
	assert_int_equal(c->max_pending, 262144);
	assert_string_equal(c->certificate, "/etc/moat/cert.pem");
	assert_string_equal(c->key, "/etc/moat/key.pem");
	assert_int_equal(c->nlisteners, 1);
	assert_string_equal(l->name, "imaps");
	assert_int_equal(l->line, 4);
	assert_addr(&l->address, AF_INET6, "::", 993);
	assert_string_equal(l->address.text, "*:993");
	assert_int_equal(l->protocol, CFG_PROTO_IMAP);
	assert_int_equal(l->tls, CFG_TLS_IMPLICIT);
	assert_addr(&l->backend, AF_INET, "127.0.0.1", 143);
	assert_string_equal(l->backend.text, "127.0.0.1:143");
	assert_int_equal(l->handshake_timeout_ms, 10000);
	assert_int_equal(l->connect_timeout_ms, 10000);
	assert_int_equal(l->idle_timeout_ms, 31 * 60 * 1000);
}

static void check_pop3(const struct cfg *c)
{
	const struct cfg_listener *l = &c->listeners[0];

	assert_int_equal(c->nlisteners, 1);
	assert_int_equal(l->protocol, CFG_PROTO_POP3);
	assert_int_equal(l->tls, CFG_TLS_IMPLICIT);
	assert_int_equal(l->idle_timeout_ms, 10 * 60 * 1000);
	assert_int_equal(l->handshake_timeout_ms, 10000);
	assert_int_equal(l->connect_timeout_ms, 10000);
	assert_addr(&l->address, AF_INET, "0.0.0.0", 995);
}

static void check_all_keys(const struct cfg *c)
{
	const struct cfg_listener *l = &c->listeners[0];

	assert_int_equal(c->workers, 4);
	assert_int_equal(c->log_level, CFG_LOG_DEBUG);
	assert_int_equal(c->buffer_size, 16384);
	assert_int_equal(c->max_pending, 1048576);
	assert_int_equal(l->tls, CFG_TLS_STARTTLS);
	assert_int_equal(l->protocol, CFG_PROTO_POP3);
	assert_int_equal(l->handshake_timeout_ms, 250);
	assert_int_equal(l->connect_timeout_ms, 2000);
	assert_int_equal(l->idle_timeout_ms, 3600000);
}

static void check_ipv6(const struct cfg *c)
{
	assert_addr(&c->listeners[0].address, AF_INET6, "::1", 10993);
	assert_addr(&c->listeners[0].backend, AF_INET6, "2001:db8::5", 993);
	assert_string_equal(c->listeners[0].backend.text, "[2001:db8::5]:993");
}

static void check_localhost(const struct cfg *c)
{
	assert_addr(&c->listeners[0].address, AF_INET, "127.0.0.1", 1143);
	assert_addr(&c->listeners[0].backend, AF_INET, "127.0.0.1", 143);
}

static void check_comments(const struct cfg *c)
{
	assert_string_equal(c->certificate, "/etc/a;b.pem");
	assert_string_equal(c->key, "/etc/key #1.pem");
	assert_int_equal(c->listeners[0].protocol, CFG_PROTO_POP3);
	assert_int_equal(c->workers, 3);
}

static void check_two(const struct cfg *c)
{
	assert_int_equal(c->nlisteners, 2);
	assert_string_equal(c->listeners[0].name, "imaps");
	assert_string_equal(c->listeners[1].name, "pop3s.v-2_x");
	assert_int_equal(c->listeners[1].line, 9);
	assert_int_equal(c->listeners[1].idle_timeout_ms, 600000);
	assert_int_equal(c->listeners[1].idle_timeout_ms, 600000);
	assert_addr(&c->listeners[1].address, AF_INET6, "::", 995);
}

static void check_workers_256(const struct cfg *c)
{
	assert_int_equal(c->workers, 256);
}

static void check_workers_1(const struct cfg *c)
{
	assert_int_equal(c->workers, 1);
}

static void check_small_buffers(const struct cfg *c)
{
	assert_int_equal(c->buffer_size, 4096);
	assert_int_equal(c->max_pending, 16384);
}

static void check_big_buffers(const struct cfg *c)
{
	assert_int_equal(c->buffer_size, 1048576);
	assert_int_equal(c->max_pending, 64 * 1048576);
}

static void check_colon(const struct cfg *c)
{
	assert_int_equal(c->log_level, CFG_LOG_WARN);
}

static void check_log_error(const struct cfg *c)
{
	assert_int_equal(c->log_level, CFG_LOG_ERROR);
}

static void check_indent_first(const struct cfg *c)
{
	assert_string_equal(c->certificate, "/c");
	assert_string_equal(c->key, "/k");
}

/* ---- cfg_parse_string rows ---- */

static const struct row rows[] = {
	/* what parses */
	{ "minimal config and its defaults", MIN, 1, NULL, 0, check_minimal },
	{ "pop3 listener defaults", TLS_OK "[listener pop3s]\naddress = 0.0.0.0:995\n"
	  "protocol = pop3\nbackend = 127.0.0.1:110\n", 1, NULL, 0, check_pop3 },
	{ "every key set", "[moat]\nworkers = 4\nlog_level = debug\nbuffer_size = 16k\n"
	  "max_pending = 1m\n" TLS_OK "[listener p]\naddress = *:110\nprotocol = pop3\n"
	  "tls = starttls\nbackend = 10.0.0.2:110\nhandshake_timeout = 250ms\n"
	  "connect_timeout = 2\nidle_timeout = 1h\n", 1, NULL, 0, check_all_keys },
	{ "ipv6 addresses", L("[::1]:10993", "imap", "[2001:db8::5]:993"), 1, NULL, 0, check_ipv6 },
	{ "localhost", L("localhost:1143", "imap", "localhost:143"), 1, NULL, 0, check_localhost },
	{ "inline ; comments stripped, # kept", "; leading comment\n# another\n\n[moat]\n"
	  "workers = 3 ; three\n[tls]\ncertificate = /etc/a;b.pem\nkey = /etc/key #1.pem\n"
	  "[listener x] ; the only one\naddress = *:995\nprotocol = pop3 ;POP\n"
	  "backend = 127.0.0.1:110\n", 1, NULL, 0, check_comments },
	{ "two listeners", MIN "[listener pop3s.v-2_x]\naddress = *:995\nprotocol = pop3\n"
	  "backend = 127.0.0.1:110\n", 1, NULL, 0, check_two },
	{ "same host other port", MIN "[listener b]\naddress = 127.0.0.1:994\nprotocol = imap\n"
	  "backend = 127.0.0.1:143\n", 1, NULL, 0, NULL },
	{ "workers 256", MOAT("workers = 256"), 1, NULL, 0, check_workers_256 },
	{ "workers 1", MOAT("workers = 1"), 1, NULL, 0, check_workers_1 },
	{ "workers 0 means cpus", MOAT("workers = 0"), 1, NULL, 0, check_minimal },
	{ "sizes at the low bounds", MOAT("buffer_size = 4k\nmax_pending = 16384"), 1, NULL, 0,
	  check_small_buffers },
	{ "sizes at the high bounds", MOAT("buffer_size = 1M\nmax_pending = 64m"), 1, NULL, 0,
	  check_big_buffers },
	{ "name: value is accepted", MOAT("log_level: warn"), 1, NULL, 0, check_colon },
	{ "log_level error", MOAT("log_level = error"), 1, NULL, 0, check_log_error },
	{ "crlf line endings", "[tls]\r\ncertificate = /c\r\nkey = /k\r\n[listener x]\r\n"
	  "address = *:993\r\nprotocol = imap\r\nbackend = 127.0.0.1:143\r\n", 1, NULL, 0,
	  check_indent_first },
	{ "utf-8 bom", "\xEF\xBB\xBF" MIN, 1, NULL, 0, check_minimal },
	{ "no final newline", TLS_OK "[listener x]\naddress = *:993\nprotocol = imap\n"
	  "backend = 127.0.0.1:143", 1, NULL, 0, NULL },
	{ "first key indented", "[tls]\n  certificate = /c\nkey = /k\n[listener x]\n"
	  "address = *:993\nprotocol = imap\nbackend = 127.0.0.1:143\n", 1, NULL, 0,
	  check_indent_first },
	{ "empty [moat] section", MIN "[moat]\n", 1, NULL, 0, check_minimal },
	{ "backend on a listener's port, other host", MIN "[listener b]\naddress = *:995\n"
	  "protocol = pop3\nbackend = 10.1.1.1:993\n", 1, NULL, 0, NULL },

	/* [moat] values, key on line 10 */
	{ "workers negative", MOAT("workers = -1"), 0,
	  "t:10: workers: '-1' is not a whole number\n", 1, NULL },
	{ "workers plus sign", MOAT("workers = +4"), 0,
	  "t:10: workers: '+4' is not a whole number\n", 1, NULL },
	{ "workers junk", MOAT("workers = 4x"), 0, "t:10: workers: '4x' is not a whole number\n",
	  1, NULL },
	{ "workers too many", MOAT("workers = 257"), 0,
	  "t:10: workers: '257' is out of range 0..256\n", 1, NULL },
	{ "workers overflow", MOAT("workers = 99999999999999999999"), 0,
	  "t:10: workers: '99999999999999999999' is out of range 0..256\n", 1, NULL },
	{ "workers empty", MOAT("workers ="), 0, "t:10: workers: empty value\n", 1, NULL },
	{ "log_level unknown", MOAT("log_level = verbose"), 0,
	  "t:10: log_level: 'verbose' is not one of error, warn, info, debug\n", 1, NULL },
	{ "log_level uppercase", MOAT("log_level = INFO"), 0,
	  "t:10: log_level: 'INFO' is not one of error, warn, info, debug\n", 1, NULL },
	{ "buffer_size too small", MOAT("buffer_size = 2k"), 0,
	  "t:10: buffer_size: '2k' is out of range 4k..1m\n", 1, NULL },
	{ "buffer_size too big", MOAT("buffer_size = 1025k"), 0,
	  "t:10: buffer_size: '1025k' is out of range 4k..1m\n", 1, NULL },
	{ "buffer_size overflow", MOAT("buffer_size = 4294967296"), 0,
	  "t:10: buffer_size: '4294967296' is out of range 4k..1m\n", 1, NULL },
	{ "buffer_size unit", MOAT("buffer_size = 64kb"), 0,
	  "t:10: buffer_size: '64kb' is not a size (bytes, or a number followed by k or m)\n",
	  1, NULL },
	{ "max_pending too small", MOAT("max_pending = 8k"), 0,
	  "t:10: max_pending: '8k' is out of range 16k..64m\n", 1, NULL },
	{ "max_pending too big", MOAT("max_pending = 65m"), 0,
	  "t:10: max_pending: '65m' is out of range 16k..64m\n", 1, NULL },
	{ "max_pending negative", MOAT("max_pending = -1"), 0,
	  "t:10: max_pending: '-1' is not a size", 1, NULL },
	{ "unknown key in [moat]", MOAT("worker = 2"), 0,
	  "t:10: unknown key 'worker' in [moat]\n", 1, NULL },
	{ "keys are case-sensitive", MOAT("Workers = 2"), 0,
	  "t:10: unknown key 'Workers' in [moat]\n", 1, NULL },
	{ "duplicate key in [moat]", MOAT("workers = 2\nworkers = 3"), 0,
	  "t:11: duplicate key 'workers' in [moat] (first at line 10)\n", 1, NULL },
	{ "missing key name", MOAT("= 2"), 0, "t:10: missing key name before '='\n", 1, NULL },

	/* [tls] */
	{ "tls missing", IMAPS, 0, "t: missing [tls] section\n", 1, NULL },
	{ "tls key missing", "[tls]\ncertificate = /c\n" IMAPS, 0, "t:1: [tls] key is required\n",
	  1, NULL },
	{ "tls both missing", "[tls]\n" IMAPS, 0,
	  "t:1: [tls] certificate is required\nt:1: [tls] key is required\n", 2, NULL },
	{ "tls empty certificate", "[tls]\ncertificate =\nkey = /k\n" IMAPS, 0,
	  "t:2: certificate: empty value\n", 1, NULL },
	{ "tls duplicate key", "[tls]\ncertificate = /a\ncertificate = /b\nkey = /k\n" IMAPS, 0,
	  "t:3: duplicate key 'certificate' in [tls] (first at line 2)\n", 1, NULL },
	{ "tls unknown key", "[tls]\ncertificate = /a\nkey = /k\nciphers = x\n" IMAPS, 0,
	  "t:4: unknown key 'ciphers' in [tls]\n", 1, NULL },

	/* listener values: address 5, protocol 6, backend 7, more at 8 */
	{ "protocol unknown", L("*:993", "smtp", "127.0.0.1:143"), 0,
	  "t:6: protocol: 'smtp' is not one of imap, pop3\n", 1, NULL },
	{ "tls mode unknown", LX("tls = ssl\n"), 0,
	  "t:8: tls: 'ssl' is not one of implicit, starttls\n", 1, NULL },
	{ "address without port", L("993", "imap", "127.0.0.1:143"), 0,
	  "t:5: address: '993' is not a valid address: missing port (expected host:port)\n", 1,
	  NULL },
	{ "address host name", L("mail.example.com:993", "imap", "127.0.0.1:143"), 0,
	  "t:5: address: 'mail.example.com:993' is not a valid address: not a numeric address; "
	  "use a numeric address or localhost\n", 1, NULL },
	{ "address port 0", L("*:0", "imap", "127.0.0.1:143"), 0,
	  "t:5: address: '*:0' is not a valid address: port must be a number from 1 to 65535\n",
	  1, NULL },
	{ "address port 65536", L("*:65536", "imap", "127.0.0.1:143"), 0,
	  "t:5: address: '*:65536' is not a valid address: port must be", 1, NULL },
	{ "address empty port", L("*:", "imap", "127.0.0.1:143"), 0,
	  "t:5: address: '*:' is not a valid address: missing port\n", 1, NULL },
	{ "address unbalanced", L("[::1:993", "imap", "127.0.0.1:143"), 0,
	  "t:5: address: '[::1:993' is not a valid address: unbalanced brackets\n", 1, NULL },
	{ "address ipv6 without brackets", L("::1:993", "imap", "127.0.0.1:143"), 0,
	  "t:5: address: '::1:993' is not a valid address: an IPv6 address needs brackets, "
	  "e.g. [::1]:993\n", 1, NULL },
	{ "address empty", TLS_OK "[listener x]\naddress =\nprotocol = imap\n"
	  "backend = 127.0.0.1:143\n", 0, "t:5: address: empty value\n", 1, NULL },
	{ "backend wildcard", L("*:993", "imap", "*:143"), 0,
	  "t:7: backend: '*:143' is a wildcard; a backend needs a specific address\n", 1, NULL },
	{ "backend unspecified v6", L("*:993", "imap", "[::]:143"), 0,
	  "t:7: backend: '[::]:143' is a wildcard; a backend needs a specific address\n", 1, NULL },
	{ "backend unspecified v4", L("*:993", "imap", "0.0.0.0:143"), 0,
	  "t:7: backend: '0.0.0.0:143' is a wildcard", 1, NULL },
	{ "backend host name", L("*:993", "imap", "imap.example.com:143"), 0,
	  "t:7: backend: 'imap.example.com:143' is not a valid address: not a numeric address; "
	  "use a numeric address or localhost\n", 1, NULL },
	{ "backend without port", L("*:993", "imap", "[::1]"), 0,
	  "t:7: backend: '[::1]' is not a valid address: missing port (expected [address]:port)\n",
	  1, NULL },
	{ "handshake_timeout inner space", LX("handshake_timeout = 10 s\n"), 0,
	  "t:8: handshake_timeout: '10 s' is not a duration (e.g. 250ms, 10s, 31m, 2h, 1d)\n", 1,
	  NULL },
	{ "handshake_timeout zero", LX("handshake_timeout = 0\n"), 0,
	  "t:8: handshake_timeout: '0' is too short (min 1ms)\n", 1, NULL },
	{ "handshake_timeout negative", LX("handshake_timeout = -5s\n"), 0,
	  "t:8: handshake_timeout: '-5s' is not a duration", 1, NULL },
	{ "connect_timeout fraction", LX("connect_timeout = 1.5s\n"), 0,
	  "t:8: connect_timeout: '1.5s' is not a duration", 1, NULL },
	{ "connect_timeout overflow", LX("connect_timeout = 99999999999999999999s\n"), 0,
	  "t:8: connect_timeout: '99999999999999999999s' is too long (max 4294967295ms, "
	  "about 49 days)\n", 1, NULL },
	{ "idle_timeout 50 days", LX("idle_timeout = 50d\n"), 0,
	  "t:8: idle_timeout: '50d' is too long", 1, NULL },
	{ "idle_timeout unit", LX("idle_timeout = 10x\n"), 0,
	  "t:8: idle_timeout: '10x' is not a duration", 1, NULL },
	{ "unknown key in listener", LX("adress = *:993\n"), 0,
	  "t:8: unknown key 'adress' in [listener x]\n", 1, NULL },
	{ "duplicate key in listener", LX("protocol = pop3\n"), 0,
	  "t:8: duplicate key 'protocol' in [listener x] (first at line 6)\n", 1, NULL },

	/* sections */
	{ "unknown section, its keys ignored", MIN "[server]\nfoo = 1\nbar = 2\n", 0,
	  "t:9: unknown section [server]\n", 1, NULL },
	{ "section names are case-sensitive", MIN "[Moat]\n", 0, "t:9: unknown section [Moat]\n",
	  1, NULL },
	{ "[moat] with a name", MIN "[moat x]\nworkers = 2\n", 0,
	  "t:9: section [moat] takes no name\n", 1, NULL },
	{ "duplicate [tls]", MIN "[tls]\ncertificate = /x\n", 0,
	  "t:9: duplicate section [tls] (first at line 1)\n", 1, NULL },
	{ "duplicate [moat]", "[moat]\nworkers = 1\n" MIN "[moat]\nworkers = 2\n", 0,
	  "t:11: duplicate section [moat] (first at line 1)\n", 1, NULL },
	{ "duplicate listener name", MIN "[listener imaps]\naddress = *:995\nprotocol = pop3\n"
	  "backend = 127.0.0.1:110\n", 0,
	  "t:9: duplicate section [listener imaps] (first at line 4)\n", 1, NULL },
	{ "listener without a name", MIN "[listener]\naddress = *:995\nprotocol = pop3\n"
	  "backend = 127.0.0.1:110\n", 0,
	  "t:9: [listener] needs a name, e.g. [listener imaps]\n", 1, NULL },
	{ "listener name with a space", MIN "[listener im aps]\naddress = *:995\n"
	  "protocol = pop3\nbackend = 127.0.0.1:110\n", 0,
	  "t:9: listener name 'im aps' may only use A-Z a-z 0-9 _ . -\n", 1, NULL },
	{ "listener name too long", MIN "[listener "
	  "a123456789b123456789c123456789d123456789e123456789f123456789g1234]\n"
	  "address = *:995\nprotocol = pop3\nbackend = 127.0.0.1:110\n", 0,
	  "t:9: listener name is longer than 64 characters\n", 1, NULL },
	{ "key before any section", "workers = 2\n" MIN, 0,
	  "t:1: key 'workers' is outside any section\n", 1, NULL },

	/* whole-file checks */
	{ "listener missing keys", TLS_OK "[listener x]\nprotocol = imap\n", 0,
	  "t:4: [listener x] address is required\nt:4: [listener x] backend is required\n", 2,
	  NULL },
	{ "listener missing protocol", TLS_OK "[listener x]\naddress = *:993\n"
	  "backend = 127.0.0.1:143\n", 0, "t:4: [listener x] protocol is required\n", 1, NULL },
	{ "no listener", TLS_OK "[moat]\n", 0,
	  "t: no [listener NAME] section; at least one is required\n", 1, NULL },
	{ "empty file", "", 0, "t: missing [tls] section\n"
	  "t: no [listener NAME] section; at least one is required\n", 2, NULL },
	{ "duplicate address", MIN "[listener b]\naddress = *:993\nprotocol = imap\n"
	  "backend = 127.0.0.1:144\n", 0,
	  "t:10: address '*:993' is already used by [listener imaps] (line 5)\n", 1, NULL },
	{ "duplicate address spelled [::]", MIN "[listener b]\naddress = [::]:993\n"
	  "protocol = imap\nbackend = 127.0.0.1:144\n", 0,
	  "t:10: address '[::]:993' is already used by [listener imaps] (line 5)\n", 1, NULL },
	{ "duplicate address localhost", L("127.0.0.1:1143", "imap", "127.0.0.1:143")
	  "[listener y]\naddress = localhost:1143\nprotocol = pop3\nbackend = 127.0.0.1:110\n", 0,
	  "t:9: address 'localhost:1143' is already used by [listener x] (line 5)\n", 1, NULL },
	{ "address under a wildcard", MIN "[listener b]\naddress = 127.0.0.1:993\n"
	  "protocol = imap\nbackend = 127.0.0.1:144\n", 0,
	  "t:10: address '127.0.0.1:993' overlaps '*:993' of [listener imaps] (line 5)\n", 1,
	  NULL },
	{ "backend is own listener", L("127.0.0.1:993", "imap", "127.0.0.1:993"), 0,
	  "t:7: backend '127.0.0.1:993' is the address of [listener x]; moat would connect to "
	  "itself\n", 1, NULL },

	/* syntax */
	{ "line without =", MOAT("workers"), 0,
	  "t:10: syntax error: expected [section] or name = value\n", 1, NULL },
	{ "header without ]", MIN "[moat\n", 0,
	  "t:9: syntax error: expected [section] or name = value\n", 1, NULL },
	{ "header cut by a comment", MIN "[moat ;x]\n", 0,
	  "t:9: syntax error: expected [section] or name = value\n", 1, NULL },
	{ "two syntax errors", MIN "oops\n[moat]\nworkers 2\n", 0,
	  "t:9: syntax error: expected [section] or name = value\n"
	  "t:11: syntax error: expected [section] or name = value\n", 2, NULL },
	{ "indented key continues the previous one", "[tls]\ncertificate = /c\n  key = /k\n"
	  "[listener x]\naddress = *:993\nprotocol = imap\nbackend = 127.0.0.1:143\n", 0,
	  "t:1: [tls] key is required\nt:3: indented line continues the value of 'certificate'; "
	  "multi-line values are not supported, remove the indentation\n", 2, NULL },
	{ "indented header is a continuation to inih", TLS_OK "  [listener x]\n"
	  "address = *:993\nprotocol = imap\nbackend = 127.0.0.1:143\n", 0,
	  "t:4: indented line continues the value of 'key'", 5, NULL },
};

/* One cmocka test per row: parse, then compare with the row. */
static void run_row(void **state)
{
	const struct row *r = *state;
	struct cfg *c = (struct cfg *)1;
	char *err = (char *)1;
	int rc = cfg_parse_string(r->text, "t", &c, &err);

	if (r->ok) {
		if (rc != 0)
			print_error("unexpected errors:\n%s", err ? err : "(null)\n");
		assert_int_equal(rc, 0);
		assert_null(err);
		assert_non_null(c);
		if (r->check)
			r->check(c);
		cfg_free(c);
		return;
	}
	assert_int_equal(rc, -1);
	assert_null(c);
	assert_non_null(err);
	if (!strstr(err, r->err) || count_lines(err) != r->nerr)
		print_error("got:\n%swant %d line(s) containing:\n%s\n", err, r->nerr, r->err);
	assert_non_null(strstr(err, r->err));
	assert_int_equal(count_lines(err), r->nerr);
	assert_int_equal(err[strlen(err) - 1], '\n');
	free(err);
}

/* ---- cfg_parse_duration / cfg_parse_size rows ---- */

struct num_row {
	const char *in;
	int rc;
	uint32_t out;
};

static const struct num_row duration_rows[] = {
	{ "250ms", 0, 250 }, { "10s", 0, 10000 }, { "31m", 0, 1860000 }, { "2h", 0, 7200000 },
	{ "1d", 0, 86400000 }, { "10", 0, 10000 }, { "0", 0, 0 }, { "0ms", 0, 0 },
	{ "007s", 0, 7000 }, { "49d", 0, 4233600000u }, { "4294967", 0, 4294967000u },
	{ "4294967295ms", 0, UINT32_MAX }, { "1193h", 0, 4294800000u },
	{ "4294967296ms", -1, 0 }, { "4294967296", -1, 0 }, { "4294968", -1, 0 },
	{ "50d", -1, 0 }, { "1194h", -1, 0 }, { "99999999999999999999s", -1, 0 },
	{ "99999999999999999999ms", -1, 0 }, { "", -1, 0 }, { "-1s", -1, 0 }, { "+1s", -1, 0 },
	{ "10 s", -1, 0 }, { " 10s", -1, 0 }, { "10s ", -1, 0 }, { "1.5s", -1, 0 },
	{ "s", -1, 0 }, { "ms", -1, 0 }, { "10S", -1, 0 }, { "10sec", -1, 0 }, { "1ms1", -1, 0 },
	{ "10ss", -1, 0 }, { "1w", -1, 0 }, { "0x10", -1, 0 },
};

static const struct num_row size_rows[] = {
	{ "0", 0, 0 }, { "1", 0, 1 }, { "16k", 0, 16384 }, { "16K", 0, 16384 },
	{ "1m", 0, 1048576 }, { "1M", 0, 1048576 }, { "4294967295", 0, UINT32_MAX },
	{ "4194303k", 0, 4294966272u }, { "4095m", 0, 4293918720u }, { "0064k", 0, 65536 },
	{ "4294967296", -1, 0 }, { "4194304k", -1, 0 }, { "4096m", -1, 0 },
	{ "99999999999999999999", -1, 0 }, { "99999999999999999999k", -1, 0 }, { "", -1, 0 },
	{ "-1", -1, 0 }, { "+1", -1, 0 }, { "1g", -1, 0 }, { "1kb", -1, 0 }, { "1 k", -1, 0 },
	{ "k", -1, 0 }, { "0x10", -1, 0 }, { " 1", -1, 0 }, { "1.5k", -1, 0 },
};

/* Checks one duration row; the output is untouched on failure. */
static void run_duration(void **state)
{
	const struct num_row *r = *state;
	uint32_t v = 12345;

	assert_int_equal(cfg_parse_duration(r->in, &v), r->rc);
	assert_int_equal(v, r->rc == 0 ? r->out : 12345);
}

/* Checks one size row; the output is untouched on failure. */
static void run_size(void **state)
{
	const struct num_row *r = *state;
	uint32_t v = 12345;

	assert_int_equal(cfg_parse_size(r->in, &v), r->rc);
	assert_int_equal(v, r->rc == 0 ? r->out : 12345);
}

/* ---- cfg_parse_addr rows ---- */

struct addr_row {
	const char *in;
	int rc;
	int family;
	const char *ip;       /* or the reason, for failures */
	unsigned port;
};

static const struct addr_row addr_rows[] = {
	{ "127.0.0.1:993", 0, AF_INET, "127.0.0.1", 993 },
	{ "0.0.0.0:143", 0, AF_INET, "0.0.0.0", 143 },
	{ "192.0.2.7:1", 0, AF_INET, "192.0.2.7", 1 },
	{ "192.0.2.7:65535", 0, AF_INET, "192.0.2.7", 65535 },
	{ "192.0.2.7:00993", 0, AF_INET, "192.0.2.7", 993 },
	{ "localhost:110", 0, AF_INET, "127.0.0.1", 110 },
	{ "LocalHost:110", 0, AF_INET, "127.0.0.1", 110 },
	{ "*:993", 0, AF_INET6, "::", 993 },
	{ "[::]:993", 0, AF_INET6, "::", 993 },
	{ "[::1]:995", 0, AF_INET6, "::1", 995 },
	{ "[2001:db8::1]:65535", 0, AF_INET6, "2001:db8::1", 65535 },
	{ "[::ffff:10.0.0.1]:993", 0, AF_INET6, "::ffff:10.0.0.1", 993 },
	{ "", -1, 0, "empty address", 0 },
	{ "127.0.0.1", -1, 0, "missing port (expected host:port)", 0 },
	{ "127.0.0.1:", -1, 0, "missing port", 0 },
	{ ":993", -1, 0, "missing host (use * for all addresses)", 0 },
	{ "127.0.0.1:0", -1, 0, "port must be a number from 1 to 65535", 0 },
	{ "127.0.0.1:65536", -1, 0, "port must be a number from 1 to 65535", 0 },
	{ "127.0.0.1:4294967296", -1, 0, "port must be a number from 1 to 65535", 0 },
	{ "127.0.0.1:99999999999999999999", -1, 0, "port must be a number from 1 to 65535", 0 },
	{ "127.0.0.1:-1", -1, 0, "port must be a number from 1 to 65535", 0 },
	{ "127.0.0.1:+993", -1, 0, "port must be a number from 1 to 65535", 0 },
	{ "127.0.0.1:99x", -1, 0, "port must be a number from 1 to 65535", 0 },
	{ "127.0.0.1: 993", -1, 0, "port must be a number from 1 to 65535", 0 },
	{ "127.0.0.1:imap", -1, 0, "port must be a number from 1 to 65535", 0 },
	{ "example.com:993", -1, 0, "not a numeric address; use a numeric address or localhost", 0 },
	{ "1.2.3:993", -1, 0, "not a numeric address; use a numeric address or localhost", 0 },
	{ "256.1.1.1:993", -1, 0, "not a numeric address; use a numeric address or localhost", 0 },
	{ "localhost.:993", -1, 0, "not a numeric address; use a numeric address or localhost", 0 },
	{ "**:993", -1, 0, "not a numeric address; use a numeric address or localhost", 0 },
	{ "::1:993", -1, 0, "an IPv6 address needs brackets, e.g. [::1]:993", 0 },
	{ "[::1]", -1, 0, "missing port (expected [address]:port)", 0 },
	{ "[::1]:", -1, 0, "missing port", 0 },
	{ "[::1", -1, 0, "unbalanced brackets", 0 },
	{ "::1]:993", -1, 0, "unbalanced brackets", 0 },
	{ "[[::1]]:993", -1, 0, "unbalanced brackets", 0 },
	{ "[::1]]:993", -1, 0, "unbalanced brackets", 0 },
	{ "[::1]993", -1, 0, "expected ':' and a port after ']'", 0 },
	{ "[1.2.3.4]:993", -1, 0, "not a numeric IPv6 address", 0 },
	{ "[fe80::1%eth0]:993", -1, 0, "not a numeric IPv6 address", 0 },
	{ "[]:993", -1, 0, "missing host (use * for all addresses)", 0 },
	{ "*", -1, 0, "missing port (expected host:port)", 0 },
};

/* Checks one address row: the sockaddr on success, the reason on failure. */
static void run_addr(void **state)
{
	const struct addr_row *r = *state;
	struct cfg_addr a;
	const char *why = NULL;

	memset(&a, 0xA5, sizeof a);
	assert_int_equal(cfg_parse_addr(r->in, &a, &why), r->rc);
	if (r->rc == 0) {
		assert_null(why);
		assert_addr(&a, r->family, r->ip, r->port);
		assert_string_equal(a.text, r->in);
	} else {
		assert_non_null(why);
		assert_string_equal(why, r->ip);
	}
}

/* ---- single tests ---- */

/* Errors from both passes come out sorted by line, each exactly once. */
static void test_errors_in_line_order(void **state)
{
	static const char text[] =
		"[moat]\n"                      /* 1 */
		"workers = lots\n"              /* 2 */
		"bogus = 1\n"                   /* 3 */
		"[tls]\n"                       /* 4 */
		"certificate = /c\n"            /* 5 */
		"[listener a]\n"                /* 6 */
		"address = *:993\n"             /* 7 */
		"protocol = smtp\n"             /* 8 */
		"backend = *:143\n"             /* 9 */
		"oops\n"                        /* 10 */
		"[listener b]\n"                /* 11 */
		"address = *:993\n"             /* 12 */
		"protocol = pop3\n"             /* 13 */
		"backend = 127.0.0.1:110\n"     /* 14 */
		"protocol = imap\n";            /* 15 */
	static const char want[] =
		"t:2: workers: 'lots' is not a whole number\n"
		"t:3: unknown key 'bogus' in [moat]\n"
		"t:4: [tls] key is required\n"
		"t:8: protocol: 'smtp' is not one of imap, pop3\n"
		"t:9: backend: '*:143' is a wildcard; a backend needs a specific address\n"
		"t:10: syntax error: expected [section] or name = value\n"
		"t:12: address '*:993' is already used by [listener a] (line 7)\n"
		"t:15: duplicate key 'protocol' in [listener b] (first at line 13)\n";
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(cfg_parse_string(text, "t", &c, &err), -1);
	assert_null(c);
	assert_non_null(err);
	assert_string_equal(err, want);
	free(err);
}

/* Problems about the whole file come after those with a line. */
static void test_whole_file_errors_last(void **state)
{
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(cfg_parse_string("[moat]\nworkers = x\n", "f.ini", &c, &err), -1);
	assert_string_equal(err, "f.ini:2: workers: 'x' is not a whole number\n"
	                         "f.ini: missing [tls] section\n"
	                         "f.ini: no [listener NAME] section; at least one is required\n");
	free(err);
}

/* Builds MIN plus a last line of n bytes: "; " then x's. */
static char *min_with_long_line(size_t n, const char *prefix)
{
	size_t base = strlen(MIN), plen = strlen(prefix);
	char *s = malloc(base + n + 2);

	assert_non_null(s);
	memcpy(s, MIN, base);
	memset(s + base, 'x', n);
	memcpy(s + base, prefix, plen);
	s[base + n] = '\n';
	s[base + n + 1] = '\0';
	return s;
}

/* 198 bytes is the longest line the packaged inih (num 200) can take. */
static void test_line_at_limit(void **state)
{
	char *s = min_with_long_line(198, "; ");
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(cfg_parse_string(s, "t", &c, &err), 0);
	assert_null(err);
	cfg_free(c);
	free(s);
}

/* One byte more is refused, and the line is read as empty. */
static void test_line_too_long(void **state)
{
	char *s = min_with_long_line(199, "; ");
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(cfg_parse_string(s, "t", &c, &err), -1);
	assert_null(c);
	assert_string_equal(err, "t:9: line too long (max 198)\n");
	free(err);
	free(s);
}

/* A long value line is refused too, and the rest of the file still read. */
static void test_long_value_line(void **state)
{
	char text[512];
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	snprintf(text, sizeof text, "[tls]\ncertificate = /%0250d\nkey = /k\n%s", 0,
	         IMAPS "[moat]\nworkers = x\n");
	assert_int_equal(cfg_parse_string(text, "t", &c, &err), -1);
	assert_string_equal(err, "t:1: [tls] certificate is required\n"
	                         "t:2: line too long (max 198)\n"
	                         "t:10: workers: 'x' is not a whole number\n");
	free(err);
}

/* A "\r\n" does not count toward the limit. */
static void test_line_at_limit_crlf(void **state)
{
	char *s = min_with_long_line(199, "; ");
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	s[strlen(s) - 2] = '\r';
	assert_int_equal(cfg_parse_string(s, "t", &c, &err), 0);
	assert_null(err);
	cfg_free(c);
	free(s);
}

static void test_free_null(void **state)
{
	(void)state;
	cfg_free(NULL);
}

static void test_proto_name(void **state)
{
	(void)state;
	assert_string_equal(cfg_proto_name(CFG_PROTO_IMAP), "imap");
	assert_string_equal(cfg_proto_name(CFG_PROTO_POP3), "pop3");
	assert_string_equal(cfg_proto_name((enum cfg_proto)7), "?");
}

/* The text copy is cut to fit, still NUL-terminated. */
static void test_addr_text_truncated(void **state)
{
	char in[300];
	struct cfg_addr a;
	const char *why = NULL;

	(void)state;
	memset(in, '1', sizeof in - 1);
	in[sizeof in - 1] = '\0';
	assert_int_equal(cfg_parse_addr(in, &a, &why), -1);
	assert_non_null(why);
	assert_int_equal(strlen(a.text), sizeof a.text - 1);
	assert_int_equal(cfg_parse_addr(in, &a, NULL), -1);
	assert_int_equal(cfg_parse_addr(NULL, &a, &why), -1);
	assert_string_equal(why, "empty address");
}

static void test_parse_string_null_text(void **state)
{
	struct cfg *c = (struct cfg *)1;
	char *err = NULL;

	(void)state;
	assert_int_equal(cfg_parse_string(NULL, "t", &c, &err), -1);
	assert_null(c);
	assert_string_equal(err, "t: no configuration text\n");
	free(err);
}

/* Writes len bytes to a new temporary file; returns its path (malloc'd). */
static char *temp_file(const void *data, size_t len)
{
	char *path = strdup("/tmp/moat-test-cfg-XXXXXX");
	int fd;

	assert_non_null(path);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	return path;
}

static void test_load_missing_file(void **state)
{
	const char *path = "/nonexistent-moat-dir/moat.ini";
	char want[256];
	struct cfg *c = (struct cfg *)1;
	char *err = NULL;

	(void)state;
	snprintf(want, sizeof want, "%s: cannot open: %s\n", path, strerror(ENOENT));
	assert_int_equal(cfg_load(path, &c, &err), -1);
	assert_null(c);
	assert_string_equal(err, want);
	free(err);
}

static void test_load_directory(void **state)
{
	char want[256];
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	snprintf(want, sizeof want, "/tmp: cannot read: %s\n", strerror(EISDIR));
	assert_int_equal(cfg_load("/tmp", &c, &err), -1);
	assert_string_equal(err, want);
	free(err);
}

static void test_load_file(void **state)
{
	static const char text[] = MIN "[moat]\nworkers = 2\n";
	char *path = temp_file(text, sizeof text - 1);
	struct cfg *c = NULL;
	char *err = (char *)1;

	(void)state;
	assert_int_equal(cfg_load(path, &c, &err), 0);
	assert_null(err);
	assert_non_null(c);
	assert_string_equal(c->path, path);
	assert_int_equal(c->workers, 2);
	assert_int_equal(c->nlisteners, 1);
	assert_string_equal(c->listeners[0].name, "imaps");
	assert_int_equal(c->listeners[0].idle_timeout_ms, 1860000);
	cfg_free(c);
	unlink(path);
	free(path);
}

/* Messages from a file carry its path. */
static void test_load_file_errors(void **state)
{
	static const char text[] = MIN "[moat]\nworkers = x\n";
	char *path = temp_file(text, sizeof text - 1);
	char want[256];
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	snprintf(want, sizeof want, "%s:10: workers: 'x' is not a whole number\n", path);
	assert_int_equal(cfg_load(path, &c, &err), -1);
	assert_null(c);
	assert_string_equal(err, want);
	free(err);
	unlink(path);
	free(path);
}

static void test_load_nul_byte(void **state)
{
	static const char text[] = MIN "[moat]\nwork\0ers = 2\nlog_level = debug\n";
	char *path = temp_file(text, sizeof text - 1);
	char want[256];
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	snprintf(want, sizeof want, "%s:10: NUL byte in line\n", path);
	assert_int_equal(cfg_load(path, &c, &err), -1);
	assert_null(c);
	assert_string_equal(err, want);
	free(err);
	unlink(path);
	free(path);
}

/* Exactly 1 MiB loads; one byte more is refused. */
static void test_load_size_limit(void **state)
{
	size_t max = 1024 * 1024, base = strlen(MIN);
	char *text = malloc(max + 1), *path;
	char want[256];
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	assert_non_null(text);
	memcpy(text, MIN, base);
	for (size_t i = base; i < max; i++)
		text[i] = (i - base) % 100 == 99 ? '\n' : '#';
	text[max - 1] = '\n';
	path = temp_file(text, max);
	assert_int_equal(cfg_load(path, &c, &err), 0);
	assert_null(err);
	cfg_free(c);
	unlink(path);
	free(path);

	text[max] = '\n';
	path = temp_file(text, max + 1);
	snprintf(want, sizeof want, "%s: file too large (max 1048576 bytes)\n", path);
	assert_int_equal(cfg_load(path, &c, &err), -1);
	assert_null(c);
	assert_string_equal(err, want);
	free(err);
	unlink(path);
	free(path);
	free(text);
}

/* Builds one cmocka test per table row and runs them as one group. */
static int run_rows(const char *group, const void *table, size_t n, size_t size,
                    CMUnitTestFunction fn, const char *(*label)(const void *))
{
	struct CMUnitTest *tests = calloc(n, sizeof *tests);
	int failed;

	if (!tests)
		return 1;
	for (size_t i = 0; i < n; i++) {
		const void *row = (const char *)table + i * size;
		tests[i].name = label(row);
		tests[i].test_func = fn;
		tests[i].initial_state = (void *)row;
	}
	failed = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
	free(tests);
	return failed;
}

static const char *row_label(const void *r)
{
	return ((const struct row *)r)->name;
}

static const char *num_label(const void *r)
{
	return ((const struct num_row *)r)->in[0] ? ((const struct num_row *)r)->in : "(empty)";
}

static const char *addr_label(const void *r)
{
	return ((const struct addr_row *)r)->in[0] ? ((const struct addr_row *)r)->in : "(empty)";
}

#define ROWS(t) t, sizeof t / sizeof *t, sizeof *t

/* etc/moat.ini documents every option with its default: it must parse,
 * and its [listener imaps] / [listener pop3s] values must be exactly the
 * defaults a minimal listener gets. */
static void test_example_config_documents_defaults(void **state)
{
	static const char minimal[] =
		"[tls]\ncertificate = c\nkey = k\n"
		"[listener imaps]\naddress = [::]:993\nprotocol = imap\nbackend = 127.0.0.1:1143\n"
		"[listener pop3s]\naddress = [::]:995\nprotocol = pop3\nbackend = 127.0.0.1:1110\n";
	struct cfg *ex = NULL, *min = NULL;
	char *errors = NULL;

	(void)state;
	if (cfg_load("etc/moat.ini", &ex, &errors) != 0)
		fail_msg("etc/moat.ini: %s", errors ? errors : "?");
	assert_int_equal(cfg_parse_string(minimal, "min", &min, &errors), 0);
	assert_int_equal(ex->workers, min->workers);
	assert_int_equal(ex->log_level, min->log_level);
	assert_int_equal(ex->buffer_size, min->buffer_size);
	assert_int_equal(ex->max_pending, min->max_pending);
	for (size_t i = 0; i < 2; i++) {
		const struct cfg_listener *a = &ex->listeners[i], *b = &min->listeners[i];
		assert_string_equal(a->name, b->name);
		assert_int_equal(a->tls, b->tls);
		assert_int_equal(a->transparent, b->transparent);
		assert_string_equal(a->greeting, b->greeting);
		assert_null(a->capabilities);
		assert_int_equal(a->max_command, b->max_command);
		assert_int_equal(a->handshake_timeout_ms, b->handshake_timeout_ms);
		assert_int_equal(a->preauth_timeout_ms, b->preauth_timeout_ms);
		assert_int_equal(a->connect_timeout_ms, b->connect_timeout_ms);
		assert_int_equal(a->auth_failure_delay_ms, b->auth_failure_delay_ms);
		assert_int_equal(a->max_auth_failures, b->max_auth_failures);
		assert_int_equal(a->idle_timeout_ms, b->idle_timeout_ms);
	}
	cfg_free(ex);
	cfg_free(min);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors_in_line_order),
		cmocka_unit_test(test_whole_file_errors_last),
		cmocka_unit_test(test_line_at_limit),
		cmocka_unit_test(test_line_too_long),
		cmocka_unit_test(test_long_value_line),
		cmocka_unit_test(test_line_at_limit_crlf),
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_proto_name),
		cmocka_unit_test(test_addr_text_truncated),
		cmocka_unit_test(test_parse_string_null_text),
		cmocka_unit_test(test_load_missing_file),
		cmocka_unit_test(test_load_directory),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_load_file_errors),
		cmocka_unit_test(test_load_nul_byte),
		cmocka_unit_test(test_load_size_limit),
		cmocka_unit_test(test_example_config_documents_defaults),
	};
	int failed = 0;

	failed += run_rows("cfg_parse_string", ROWS(rows), run_row, row_label);
	failed += run_rows("cfg_parse_duration", ROWS(duration_rows), run_duration, num_label);
	failed += run_rows("cfg_parse_size", ROWS(size_rows), run_size, num_label);
	failed += run_rows("cfg_parse_addr", ROWS(addr_rows), run_addr, addr_label);
	failed += cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
	return failed ? 1 : 0;
}
