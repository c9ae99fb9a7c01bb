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
/* [tls] with one more key at line 4; [listener imaps] at line 5. */
#define TLSKV(kv) TLS_OK kv "\n" IMAPS
/* A [certificate NAME] section: header, certificate, key (3 lines). */
#define CERT(n, c, k) "[certificate " n "]\ncertificate = " c "\nkey = " k "\n"
/* After MIN: [certificate a] at lines 9-11, [certificate b] at 12-14. */
#define CERTS_AB CERT("a", "/a.pem", "/a.key") CERT("b", "/b.pem", "/b.key")
/* After MIN: [metrics] at line 9, its key at line 10. */
#define METRICS(kv) MIN "[metrics]\n" kv "\n"
/* 32 address blocks, ::1 to ::20, for limits_exempt. */
#define NETS32 "::1 ::2 ::3 ::4 ::5 ::6 ::7 ::8 ::9 ::a ::b ::c ::d ::e ::f ::10 ::11 ::12 " \
               "::13 ::14 ::15 ::16 ::17 ::18 ::19 ::1a ::1b ::1c ::1d ::1e ::1f ::20"
/* The whole message for a refused [metrics] address at line 10. */
#define NOT_LOOPBACK(a) "t:10: address: '" a "' is not a loopback address: metrics are " \
                        "served on 127.0.0.1 or [::1] only\n"
/* The whole messages for refused rates and address blocks at line 10. */
#define NOT_RATE(k, v) "t:10: " k ": '" v "' is not a rate (e.g. 20/10m: 20 per 10 " \
                       "minutes; 0 for none)\n"
#define BAD_COUNT(k, v, max) "t:10: " k ": '" v "' needs a count from 1 to " max \
                             " before the '/'\n"
#define BAD_WINDOW(k, v) "t:10: " k ": '" v "' needs a duration from 1s to 1d after the '/'\n"
#define BAD_NET(v, item) "t:10: limits_exempt: '" v "' includes '" item "', not an address " \
                         "or address/prefix\n"
#define FACILITIES "mail, daemon, user, local0, local1, local2, local3, local4, local5, " \
                   "local6, local7"

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

/* Used in failure messages: the name of a suite or group id. */
static const char *id_name(uint16_t id)
{
	const char *name = tls_suite_name(id);

	if (!name)
		name = tls_group_name(id);
	return name ? name : id ? "?" : "end";
}

/* A 0-terminated id list equals want, its 0 included. */
static void assert_ids(const uint16_t *got, const uint16_t *want)
{
	size_t i = 0;

	do {
		if (got[i] != want[i])
			print_error("id %zu: got 0x%04x (%s), want 0x%04x (%s)\n", i, got[i],
			            id_name(got[i]), want[i], id_name(want[i]));
		assert_int_equal(got[i], want[i]);
	} while (want[i++]);
}

/* A listener serves exactly the certificates idx[0..n), in that order. */
static void assert_cert_idx(const struct cfg_listener *l, const size_t *idx, size_t n)
{
	assert_int_equal(l->ncerts, n);
	assert_non_null(l->cert_idx);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(l->cert_idx[i], idx[i]);
}

/* One entry of cfg->certs, with the lines of its header and keys. */
static void assert_cert(const struct cfg_cert *e, const char *name, const char *cert,
                        const char *key, int line, int cert_line, int key_line)
{
	assert_string_equal(e->name, name);
	assert_string_equal(e->certificate, cert);
	assert_string_equal(e->key, key);
	assert_int_equal(e->line, line);
	assert_int_equal(e->certificate_line, cert_line);
	assert_int_equal(e->key_line, key_line);
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

/* Every [tls] option a minimal config does not set has its default. */
static void check_tls_defaults(const struct cfg *c)
{
	assert_int_equal(c->min_tls13, 0);
	assert_ids(c->tls12_ciphers, tls_default_tls12_suites);
	assert_ids(c->tls13_ciphers, tls_default_tls13_suites);
	assert_ids(c->groups, tls_default_groups);
	assert_int_equal(c->prefer_server_ciphers, 1);
	assert_int_equal(c->session_tickets, 1);
	assert_int_equal(c->ticket_lifetime_ms, 2 * 3600 * 1000);
	assert_int_equal(c->key_permissions, CFG_KEYPERM_AUTO);
	assert_int_equal(c->expiry_warning_days, 30);
	assert_int_equal(c->tls_line, 1);
	assert_int_equal(c->certificate_line, 2);
	assert_int_equal(c->key_line, 3);
}

/* A minimal config has one certificate, [tls]'s, and its listener serves
 * it without asking for client certificates. */
static void check_certs_default(const struct cfg *c)
{
	static const size_t idx[] = { 0 };
	const struct cfg_listener *l = &c->listeners[0];

	check_tls_defaults(c);
	assert_int_equal(c->ncerts, 1);
	assert_non_null(c->certs);
	assert_cert(&c->certs[0], "default", "/etc/moat/cert.pem", "/etc/moat/key.pem", 1, 2, 3);
	assert_int_equal(c->nlisteners, 1);
	assert_null(l->certificates);
	assert_int_equal(l->certificates_line, 0);
	assert_cert_idx(l, idx, 1);
	assert_int_equal(l->client_certificate, CFG_CLIENT_NONE);
	assert_null(l->client_ca);
	assert_int_equal(l->client_ca_line, 0);
	assert_int_equal(l->transparent, 0);
}

static void check_min_tls13(const struct cfg *c)
{
	assert_int_equal(c->min_tls13, 1);
}

static void check_min_tls12(const struct cfg *c)
{
	check_tls_defaults(c);
}

/* OpenSSL names separated by ':'; the other lists keep their defaults. */
static void check_tls12_openssl(const struct cfg *c)
{
	static const uint16_t want[] = { 0xC030, 0xCCA9, 0 };

	assert_ids(c->tls12_ciphers, want);
	assert_ids(c->tls13_ciphers, tls_default_tls13_suites);
	assert_ids(c->groups, tls_default_groups);
}

/* IANA names separated by ", ". */
static void check_tls12_iana(const struct cfg *c)
{
	static const uint16_t want[] = { 0xCCA8, 0xC02B, 0 };

	assert_ids(c->tls12_ciphers, want);
}

/* Mixed case, mixed spellings and runs of separators. */
static void check_tls12_mixed(const struct cfg *c)
{
	static const uint16_t want[] = { 0xC02F, 0xC02C, 0xC02B, 0 };

	assert_ids(c->tls12_ciphers, want);
}

/* All six in reverse order: the order written is the order kept. */
static void check_tls12_reversed(const struct cfg *c)
{
	static const uint16_t want[] = { 0xCCA8, 0xC030, 0xC02F, 0xCCA9, 0xC02C, 0xC02B, 0 };

	assert_ids(c->tls12_ciphers, want);
	assert_ids(c->tls13_ciphers, tls_default_tls13_suites);
}

static void check_tls13_two(const struct cfg *c)
{
	static const uint16_t want[] = { 0x1303, 0x1301, 0 };

	assert_ids(c->tls13_ciphers, want);
	assert_ids(c->tls12_ciphers, tls_default_tls12_suites);
	assert_ids(c->groups, tls_default_groups);
}

static void check_tls13_one(const struct cfg *c)
{
	static const uint16_t want[] = { 0x1302, 0 };

	assert_ids(c->tls13_ciphers, want);
}

/* P-384 and prime256v1 are aliases of secp384r1 and secp256r1. */
static void check_groups_aliases(const struct cfg *c)
{
	static const uint16_t want[] = { 0x0018, 0x0017, 0 };

	assert_ids(c->groups, want);
	assert_ids(c->tls12_ciphers, tls_default_tls12_suites);
	assert_ids(c->tls13_ciphers, tls_default_tls13_suites);
}

static void check_groups_case(const struct cfg *c)
{
	static const uint16_t want[] = { 0x0017, 0x001D, 0x0018, 0 };

	assert_ids(c->groups, want);
}

static void check_groups_one(const struct cfg *c)
{
	static const uint16_t want[] = { 0x001D, 0 };

	assert_ids(c->groups, want);
}

static void check_no_prefer(const struct cfg *c)
{
	assert_int_equal(c->prefer_server_ciphers, 0);
	assert_int_equal(c->session_tickets, 1);
}

static void check_no_tickets(const struct cfg *c)
{
	assert_int_equal(c->session_tickets, 0);
	assert_int_equal(c->prefer_server_ciphers, 1);
}

static void check_lifetime_1m(const struct cfg *c)
{
	assert_int_equal(c->ticket_lifetime_ms, 60000);
}

static void check_lifetime_7d(const struct cfg *c)
{
	assert_int_equal(c->ticket_lifetime_ms, 604800000);
}

static void check_lifetime_bare(const struct cfg *c)
{
	assert_int_equal(c->ticket_lifetime_ms, 90000);
}

static void check_keyperm_strict(const struct cfg *c)
{
	assert_int_equal(c->key_permissions, CFG_KEYPERM_STRICT);
}

static void check_keyperm_warn(const struct cfg *c)
{
	assert_int_equal(c->key_permissions, CFG_KEYPERM_WARN);
}

static void check_expiry_0(const struct cfg *c)
{
	assert_int_equal(c->expiry_warning_days, 0);
}

static void check_expiry_3650(const struct cfg *c)
{
	assert_int_equal(c->expiry_warning_days, 3650);
}

/* Every [tls] key set away from its default; lines 4-12. */
static void check_tls_all_keys(const struct cfg *c)
{
	static const uint16_t s12[] = { 0xC02F, 0xC030, 0 }, s13[] = { 0x1303, 0 };
	static const uint16_t g[] = { 0x0018, 0x001D, 0 };

	assert_int_equal(c->min_tls13, 1);
	assert_ids(c->tls12_ciphers, s12);
	assert_ids(c->tls13_ciphers, s13);
	assert_ids(c->groups, g);
	assert_int_equal(c->prefer_server_ciphers, 0);
	assert_int_equal(c->session_tickets, 0);
	assert_int_equal(c->ticket_lifetime_ms, 12 * 3600 * 1000);
	assert_int_equal(c->key_permissions, CFG_KEYPERM_WARN);
	assert_int_equal(c->expiry_warning_days, 14);
	assert_int_equal(c->certificate_line, 2);
	assert_int_equal(c->key_line, 3);
	assert_cert(&c->certs[0], "default", "/etc/moat/cert.pem", "/etc/moat/key.pem", 1, 2, 3);
}

/* MIN then CERTS_AB: [tls]'s first, then a and b in file order, and the
 * listener serves all three in that order. */
static void check_certs_ab(const struct cfg *c)
{
	static const size_t idx[] = { 0, 1, 2 };

	assert_int_equal(c->ncerts, 3);
	assert_cert(&c->certs[0], "default", "/etc/moat/cert.pem", "/etc/moat/key.pem", 1, 2, 3);
	assert_cert(&c->certs[1], "a", "/a.pem", "/a.key", 9, 10, 11);
	assert_cert(&c->certs[2], "b", "/b.pem", "/b.key", 12, 13, 14);
	assert_null(c->listeners[0].certificates);
	assert_cert_idx(&c->listeners[0], idx, 3);
	check_tls_defaults(c);
}

/* [certificate z] at lines 1-3 before [tls] at 4-6: [tls]'s stays first. */
static void check_cert_before_tls(const struct cfg *c)
{
	static const size_t idx[] = { 0, 1 };

	assert_int_equal(c->ncerts, 2);
	assert_cert(&c->certs[0], "default", "/etc/moat/cert.pem", "/etc/moat/key.pem", 4, 5, 6);
	assert_cert(&c->certs[1], "z", "/z.pem", "/z.key", 1, 2, 3);
	assert_int_equal(c->tls_line, 4);
	assert_cert_idx(&c->listeners[0], idx, 2);
}

/* key before certificate, a ; comment and a name with every allowed kind
 * of character. */
static void check_cert_keys_swapped(const struct cfg *c)
{
	assert_int_equal(c->ncerts, 2);
	assert_cert(&c->certs[1], "RSA-2048_v1.x", "/r.pem", "/r.key", 9, 11, 10);
}

/* certificates = b a, with the sections after the listener (lines 9-14). */
static void check_listener_b_a(const struct cfg *c)
{
	static const size_t idx[] = { 2, 1 };
	const struct cfg_listener *l = &c->listeners[0];

	assert_int_equal(c->ncerts, 3);
	assert_cert(&c->certs[1], "a", "/a.pem", "/a.key", 9, 10, 11);
	assert_cert(&c->certs[2], "b", "/b.pem", "/b.key", 12, 13, 14);
	assert_string_equal(l->certificates, "b a");
	assert_int_equal(l->certificates_line, 8);
	assert_cert_idx(l, idx, 2);
}

/* certificates = b, default:a. */
static void check_listener_b_default_a(const struct cfg *c)
{
	static const size_t idx[] = { 2, 0, 1 };

	assert_cert_idx(&c->listeners[0], idx, 3);
}

/* certificates = default, with other certificates around. */
static void check_listener_default_only(const struct cfg *c)
{
	static const size_t idx[] = { 0 };

	assert_int_equal(c->ncerts, 3);
	assert_cert_idx(&c->listeners[0], idx, 1);
}

/* Two listeners: imaps serves every certificate, pop3s only b. */
static void check_two_listener_certs(const struct cfg *c)
{
	static const size_t all[] = { 0, 1, 2 }, b[] = { 2 };

	assert_int_equal(c->nlisteners, 2);
	assert_cert_idx(&c->listeners[0], all, 3);
	assert_cert_idx(&c->listeners[1], b, 1);
	assert_int_equal(c->listeners[1].certificates_line, 19);
}

/* client_certificate = optional with its CA at line 9. */
static void check_client_optional(const struct cfg *c)
{
	const struct cfg_listener *l = &c->listeners[0];

	assert_int_equal(l->client_certificate, CFG_CLIENT_OPTIONAL);
	assert_string_equal(l->client_ca, "/etc/moat/ca.pem");
	assert_int_equal(l->client_ca_line, 9);
}

/* client_certificate = required with its CA first, at line 8. */
static void check_client_required(const struct cfg *c)
{
	const struct cfg_listener *l = &c->listeners[0];

	assert_int_equal(l->client_certificate, CFG_CLIENT_REQUIRED);
	assert_string_equal(l->client_ca, "/ca.pem");
	assert_int_equal(l->client_ca_line, 8);
}

/* client_ca without a client certificate is kept, and unused. */
static void check_client_none_with_ca(const struct cfg *c)
{
	const struct cfg_listener *l = &c->listeners[0];

	assert_int_equal(l->client_certificate, CFG_CLIENT_NONE);
	assert_string_equal(l->client_ca, "/ca.pem");
	assert_int_equal(l->client_ca_line, 9);
}

static void check_client_none(const struct cfg *c)
{
	assert_int_equal(c->listeners[0].client_certificate, CFG_CLIENT_NONE);
	assert_null(c->listeners[0].client_ca);
}

static void check_starttls_opaque(const struct cfg *c)
{
	assert_int_equal(c->listeners[0].tls, CFG_TLS_STARTTLS);
	assert_int_equal(c->listeners[0].transparent, 0);
}

static void check_implicit_transparent(const struct cfg *c)
{
	assert_int_equal(c->listeners[0].tls, CFG_TLS_IMPLICIT);
	assert_int_equal(c->listeners[0].transparent, 1);
}

/* ---- checks for the [moat] limits, logging and process keys and [metrics] ---- */

/* A check that one int-like field of struct cfg holds want. */
#define CHECK_FIELD(fn, field, want) \
	static void fn(const struct cfg *c) \
	{ \
		assert_int_equal(c->field, want); \
	}

/* A check that a rate of struct cfg is count per window_ms. */
#define CHECK_RATE(fn, field, count_, window_) \
	static void fn(const struct cfg *c) \
	{ \
		assert_int_equal(c->field.count, count_); \
		assert_int_equal(c->field.window_ms, window_); \
	}

/* The blocks of a list, each written "addr/prefix". */
static void assert_nets(const struct cfg_nets *n, const char *const *want, size_t count)
{
	char ip[INET6_ADDRSTRLEN], got[INET6_ADDRSTRLEN + 8];

	assert_int_equal(n->n, count);
	for (size_t i = 0; i < count; i++) {
		assert_non_null(inet_ntop(n->v[i].family, n->v[i].addr, ip, sizeof ip));
		snprintf(got, sizeof got, "%s/%u", ip, n->v[i].prefix);
		assert_string_equal(got, want[i]);
	}
}

/* Every key new in [moat], and [metrics], at its default. */
static void check_moat_defaults(const struct cfg *c)
{
	static const char *const exempt[] = { "127.0.0.0/8", "::1/128" };

	assert_int_equal(c->log_format, CFG_LOG_KV);
	assert_int_equal(c->log_target, CFG_LOG_STDERR);
	assert_int_equal(c->syslog_facility, CFG_FAC_MAIL);
	assert_int_equal(c->max_connections, 10000);
	assert_int_equal(c->max_connections_per_ip, 100);
	assert_int_equal(c->connection_rate_per_ip.count, 100);
	assert_int_equal(c->connection_rate_per_ip.window_ms, 10000);
	assert_int_equal(c->auth_fail_limit.count, 20);
	assert_int_equal(c->auth_fail_limit.window_ms, 600000);
	assert_int_equal(c->auth_block_ms, 600000);
	assert_int_equal(c->ipv6_prefix, 64);
	assert_nets(&c->limits_exempt, exempt, 2);
	assert_int_equal(c->shutdown_grace_ms, 30000);
	assert_null(c->user);
	assert_null(c->group);
	assert_null(c->chroot_dir);
	assert_null(c->pid_file);
	assert_int_equal(c->allow_root, 0);
	assert_int_equal(c->metrics_address.sa.ss_family, 0);
}

CHECK_FIELD(check_format_kv, log_format, CFG_LOG_KV)
CHECK_FIELD(check_format_json, log_format, CFG_LOG_JSON)
CHECK_FIELD(check_target_stderr, log_target, CFG_LOG_STDERR)
CHECK_FIELD(check_target_syslog, log_target, CFG_LOG_SYSLOG)
CHECK_FIELD(check_fac_mail, syslog_facility, CFG_FAC_MAIL)
CHECK_FIELD(check_fac_daemon, syslog_facility, CFG_FAC_DAEMON)
CHECK_FIELD(check_fac_user, syslog_facility, CFG_FAC_USER)
CHECK_FIELD(check_fac_local0, syslog_facility, CFG_FAC_LOCAL0)
CHECK_FIELD(check_fac_local1, syslog_facility, CFG_FAC_LOCAL1)
CHECK_FIELD(check_fac_local2, syslog_facility, CFG_FAC_LOCAL2)
CHECK_FIELD(check_fac_local3, syslog_facility, CFG_FAC_LOCAL3)
CHECK_FIELD(check_fac_local4, syslog_facility, CFG_FAC_LOCAL4)
CHECK_FIELD(check_fac_local5, syslog_facility, CFG_FAC_LOCAL5)
CHECK_FIELD(check_fac_local6, syslog_facility, CFG_FAC_LOCAL6)
CHECK_FIELD(check_fac_local7, syslog_facility, CFG_FAC_LOCAL7)
CHECK_FIELD(check_maxconn_0, max_connections, 0)
CHECK_FIELD(check_maxconn_1, max_connections, 1)
CHECK_FIELD(check_maxconn_top, max_connections, 10000000)
CHECK_FIELD(check_perip_0, max_connections_per_ip, 0)
CHECK_FIELD(check_perip_1, max_connections_per_ip, 1)
CHECK_FIELD(check_perip_top, max_connections_per_ip, 10000000)
CHECK_RATE(check_connrate_1_1s, connection_rate_per_ip, 1, 1000)
CHECK_RATE(check_connrate_top_1d, connection_rate_per_ip, 1000000, 86400000)
CHECK_RATE(check_connrate_none, connection_rate_per_ip, 0, 0)
CHECK_RATE(check_connrate_5_1s, connection_rate_per_ip, 5, 1000)
CHECK_RATE(check_connrate_5_24h, connection_rate_per_ip, 5, 86400000)
CHECK_RATE(check_connrate_5_90s, connection_rate_per_ip, 5, 90000)
CHECK_RATE(check_connrate_7_1m, connection_rate_per_ip, 7, 60000)
CHECK_RATE(check_authfail_1_1s, auth_fail_limit, 1, 1000)
CHECK_RATE(check_authfail_top_1d, auth_fail_limit, 100000, 86400000)
CHECK_RATE(check_authfail_none, auth_fail_limit, 0, 0)
CHECK_FIELD(check_block_1s, auth_block_ms, 1000)
CHECK_FIELD(check_block_1d, auth_block_ms, 86400000)
CHECK_FIELD(check_v6prefix_32, ipv6_prefix, 32)
CHECK_FIELD(check_v6prefix_128, ipv6_prefix, 128)
CHECK_FIELD(check_grace_0, shutdown_grace_ms, 0)
CHECK_FIELD(check_grace_1d, shutdown_grace_ms, 86400000)
CHECK_FIELD(check_grace_250ms, shutdown_grace_ms, 250)
CHECK_FIELD(check_root_yes, allow_root, 1)
CHECK_FIELD(check_root_no, allow_root, 0)

static void check_exempt_none(const struct cfg *c)
{
	assert_int_equal(c->limits_exempt.n, 0);
}

/* ',' and whitespace both separate; no prefix means the single address. */
static void check_exempt_three(const struct cfg *c)
{
	static const char *const want[] = { "10.0.0.0/8", "192.0.2.1/32", "2001:db8::/32" };

	assert_nets(&c->limits_exempt, want, 3);
	assert_int_equal(c->limits_exempt.v[0].family, AF_INET);
	assert_int_equal(c->limits_exempt.v[2].family, AF_INET6);
}

static void check_exempt_all(const struct cfg *c)
{
	static const char *const want[] = { "0.0.0.0/0", "::/0" };

	assert_nets(&c->limits_exempt, want, 2);
}

/* An IPv4-mapped block stays an IPv6 block. */
static void check_exempt_mapped(const struct cfg *c)
{
	static const char *const want[] = { "::ffff:10.0.0.0/104" };

	assert_nets(&c->limits_exempt, want, 1);
	assert_int_equal(c->limits_exempt.v[0].family, AF_INET6);
}

/* ::1 to ::20, in order. */
static void check_exempt_32(const struct cfg *c)
{
	char want[16], ip[INET6_ADDRSTRLEN];

	assert_int_equal(c->limits_exempt.n, 32);
	for (size_t i = 0; i < 32; i++) {
		snprintf(want, sizeof want, "::%zx", i + 1);
		assert_int_equal(c->limits_exempt.v[i].family, AF_INET6);
		assert_int_equal(c->limits_exempt.v[i].prefix, 128);
		assert_non_null(inet_ntop(AF_INET6, c->limits_exempt.v[i].addr, ip, sizeof ip));
		assert_string_equal(ip, want);
	}
}

/* user, group, chroot, pid_file at lines 10-13, allow_root at 14. */
static void check_process(const struct cfg *c)
{
	assert_string_equal(c->user, "moat");
	assert_string_equal(c->group, "mail");
	assert_string_equal(c->chroot_dir, "/var/empty");
	assert_string_equal(c->pid_file, "/run/moat.pid");
	assert_int_equal(c->allow_root, 1);
}

/* Every new [moat] key set away from its default. */
static void check_moat_all_new(const struct cfg *c)
{
	static const char *const exempt[] = { "192.0.2.0/24", "2001:db8::/48" };

	assert_int_equal(c->log_format, CFG_LOG_JSON);
	assert_int_equal(c->log_target, CFG_LOG_SYSLOG);
	assert_int_equal(c->syslog_facility, CFG_FAC_LOCAL3);
	assert_int_equal(c->max_connections, 500);
	assert_int_equal(c->max_connections_per_ip, 7);
	assert_int_equal(c->connection_rate_per_ip.count, 30);
	assert_int_equal(c->connection_rate_per_ip.window_ms, 60000);
	assert_int_equal(c->auth_fail_limit.count, 5);
	assert_int_equal(c->auth_fail_limit.window_ms, 3600000);
	assert_int_equal(c->auth_block_ms, 7200000);
	assert_int_equal(c->ipv6_prefix, 56);
	assert_nets(&c->limits_exempt, exempt, 2);
	assert_int_equal(c->shutdown_grace_ms, 5000);
	assert_string_equal(c->user, "moat");
	assert_string_equal(c->group, "moat");
	assert_string_equal(c->chroot_dir, "/var/lib/moat");
	assert_string_equal(c->pid_file, "/run/moat/moat.pid");
	assert_int_equal(c->allow_root, 0);
	/* untouched */
	assert_int_equal(c->workers, online_cpus());
	assert_int_equal(c->metrics_address.sa.ss_family, 0);
}

static void check_metrics_127_0_0_1(const struct cfg *c)
{
	assert_addr(&c->metrics_address, AF_INET, "127.0.0.1", 9187);
	assert_string_equal(c->metrics_address.text, "127.0.0.1:9187");
	check_tls_defaults(c);
}

static void check_metrics_127_0_0_2(const struct cfg *c)
{
	assert_addr(&c->metrics_address, AF_INET, "127.0.0.2", 9187);
}

static void check_metrics_127_top(const struct cfg *c)
{
	assert_addr(&c->metrics_address, AF_INET, "127.255.255.255", 65535);
}

static void check_metrics_v6(const struct cfg *c)
{
	assert_addr(&c->metrics_address, AF_INET6, "::1", 9187);
	assert_string_equal(c->metrics_address.text, "[::1]:9187");
}

static void check_metrics_localhost(const struct cfg *c)
{
	assert_addr(&c->metrics_address, AF_INET, "127.0.0.1", 9187);
	assert_string_equal(c->metrics_address.text, "localhost:9187");
}

/* Backends: [backend a] at line 4 (imap 5, pop3 6), [backend b] at 7
 * (imap 8), [listener x] at 9 (address 10, protocol 11, backend 12),
 * more listener keys from line 13. */
#define BKS(bk, more) TLS_OK "[backend a]\nimap = 127.0.0.1:1143\npop3 = 127.0.0.1:1110\n" \
	"[backend b]\nimap = [::1]:2143\n[listener x]\naddress = *:993\nprotocol = imap\n" \
	"backend = " bk "\n" more

static void check_backends_ab(const struct cfg *c)
{
	const struct cfg_listener *l = &c->listeners[0];
	const struct cfg_backend *a = &c->backends[0], *b = &c->backends[1];

	assert_int_equal(c->nbackends, 2);
	assert_string_equal(a->name, "a");
	assert_false(a->is_inline);
	assert_addr(&a->addr[CFG_PROTO_IMAP], AF_INET, "127.0.0.1", 1143);
	assert_addr(&a->addr[CFG_PROTO_POP3], AF_INET, "127.0.0.1", 1110);
	assert_int_equal(a->addr_line[CFG_PROTO_IMAP], 5);
	assert_int_equal(a->forward, CFG_FWD_NONE);
	assert_int_equal(a->check_interval_ms, 10000);
	assert_int_equal(a->check_timeout_ms, 5000);
	assert_false(a->strip_domain);
	assert_null(a->add_domain);
	assert_int_equal(b->addr[CFG_PROTO_POP3].sa.ss_family, 0);
	assert_int_equal(l->nbk, 2);
	assert_int_equal(l->bk[0], 1);
	assert_int_equal(l->bk[1], 0);
	assert_string_equal(l->backend.text, "[::1]:2143");
	assert_int_equal(l->balance, CFG_BAL_LEAST_CONN);
	assert_false(l->proxy_protocol);
	assert_int_equal(l->proxy_trusted.n, 2);
}

static void check_backend_keys(const struct cfg *c)
{
	const struct cfg_backend *b = &c->backends[2];

	assert_string_equal(b->name, "c");
	assert_int_equal(b->forward, CFG_FWD_PROXY_V2);
	assert_int_equal(b->check_interval_ms, 0);
	assert_int_equal(b->check_timeout_ms, 1500);
	assert_true(b->strip_domain);
	assert_string_equal(b->add_domain, "example.org");
	assert_string_equal(c->route_map, "/etc/moat/routes");
	assert_int_equal(c->route_map_line, 23);
	assert_true(c->listeners[0].proxy_protocol);
	assert_int_equal(c->listeners[0].proxy_trusted.n, 1);
}

static void check_backend_tls(const struct cfg *c)
{
	const struct cfg_backend *b = &c->backends[0];

	assert_int_equal(b->tls, CFG_BTLS_STARTTLS);
	assert_string_equal(b->tls_name, "mail.example.org");
	assert_string_equal(b->ca, "/etc/ssl/certs/ca-certificates.crt");
	assert_int_equal(b->tls_line, 6);
}

static void check_inline_backend(const struct cfg *c)
{
	const struct cfg_listener *l = &c->listeners[0];
	const struct cfg_backend *b = &c->backends[l->bk[0]];

	assert_int_equal(l->nbk, 1);
	assert_true(b->is_inline);
	assert_string_equal(b->name, "127.0.0.1:143");
	assert_int_equal(b->check_interval_ms, 0);
	assert_addr(&b->addr[CFG_PROTO_IMAP], AF_INET, "127.0.0.1", 143);
	assert_int_equal(b->addr[CFG_PROTO_POP3].sa.ss_family, 0);
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
	  "connect_timeout = 2\nidle_timeout = 1h\ninsecure = yes\n", 1, NULL, 0, check_all_keys },
	{ "ipv6 addresses", L("[::1]:10993", "imap", "[2001:db8::5]:993") "insecure = yes\n", 1, NULL, 0, check_ipv6 },
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
	  "protocol = pop3\nbackend = 10.1.1.1:993\ninsecure = yes\n", 1, NULL, 0, NULL },

	/* backends */
	{ "backend sections in a listener's order", BKS("b, a", "balance = least-conn\n"), 1,
	  NULL, 0, check_backends_ab },
	{ "backend keys", BKS("b a", "proxy_protocol = yes\nproxy_trusted = 10.0.0.0/8\n"
	  "[backend c]\npop3 = 127.0.0.1:3110\nforward = proxy-v2\ncheck_interval = 0\n"
	  "check_timeout = 1500ms\nstrip_domain = yes\nadd_domain = example.org\n"
	  "[moat]\nroute_map = /etc/moat/routes\n"), 1, NULL, 0, check_backend_keys },
	{ "an inline backend is a backend", MIN, 1, NULL, 0, check_inline_backend },
	{ "backend names an unknown section", BKS("a, c", ""), 0,
	  "t:12: backend: no [backend c] section (an address needs its port, HOST:PORT)\n", 1,
	  NULL },
	{ "backend listed twice", BKS("a a", ""), 0, "t:12: backend: 'a' is listed twice\n", 1,
	  NULL },
	{ "backend without the listener's protocol", TLS_OK "[backend a]\npop3 = 127.0.0.1:110\n"
	  "[listener x]\naddress = *:993\nprotocol = imap\nbackend = a\n", 0,
	  "t:9: backend: [backend a] (line 4) has no imap address for [listener x]\n", 2, NULL },
	{ "backend section without an address", TLS_OK "[backend a]\nforward = native\n"
	  "[listener x]\naddress = *:993\nprotocol = imap\nbackend = 127.0.0.1:143\n", 0,
	  "t:4: [backend a] needs an address: imap = HOST:PORT and/or pop3 = HOST:PORT\n", 1,
	  NULL },
	{ "backend on another host needs insecure", TLS_OK "[backend a]\nimap = 192.0.2.1:143\n"
	  "[listener x]\naddress = *:993\nprotocol = imap\nbackend = a\n", 0,
	  "t:5: [backend a] imap = 192.0.2.1:143 is not on this host: moat would send "
	  "passwords to it in clear; use tls = implicit or starttls, or set insecure = yes if "
	  "that network is trusted\n", 1, NULL },
	{ "backend over TLS on another host", TLS_OK "[backend a]\nimap = 192.0.2.1:143\n"
	  "tls = starttls\ntls_name = mail.example.org\n[listener x]\naddress = *:993\n"
	  "protocol = imap\nbackend = a\n", 1, NULL, 0, check_backend_tls },
	{ "backend tls needs tls_name", TLS_OK "[backend a]\nimap = 192.0.2.1:993\n"
	  "tls = implicit\n[listener x]\naddress = *:993\nprotocol = imap\nbackend = a\n", 0,
	  "t:6: [backend a] tls = implicit needs tls_name, the name the backend's certificate "
	  "must carry\n", 1, NULL },
	{ "backend ca without tls", TLS_OK "[backend a]\nimap = 127.0.0.1:143\nca = /x.pem\n"
	  "[listener x]\naddress = *:993\nprotocol = imap\nbackend = a\n", 0,
	  "t:6: [backend a] ca is only used with tls = implicit or starttls\n", 1, NULL },
	{ "backend on another host, insecure", TLS_OK "[backend a]\nimap = 192.0.2.1:143\n"
	  "insecure = yes\n[listener x]\naddress = *:993\nprotocol = imap\nbackend = a\n", 1,
	  NULL, 0, NULL },
	{ "inline backend on another host needs insecure", L("*:993", "imap", "192.0.2.1:143"), 0,
	  "t:7: backend: 192.0.2.1:143 is not on this host: moat would send passwords to it in "
	  "clear; set insecure = yes in [listener x] if that network is trusted\n", 1, NULL },
	{ "v4-mapped loopback backend is local", L("*:993", "imap", "[::ffff:127.0.0.2]:143"), 1,
	  NULL, 0, NULL },
	{ "bad forward word", BKS("a", "[backend c]\nimap = 127.0.0.1:3143\nforward = v2\n"), 0,
	  "t:15: forward: 'v2' is not one of none, proxy-v1, proxy-v2, native\n", 1, NULL },
	{ "bad add_domain", BKS("a", "[backend c]\nimap = 127.0.0.1:3143\n"
	  "add_domain = a@b\n"), 0, "t:15: add_domain: 'a@b' is not a domain name\n", 1, NULL },
	{ "backend section name", BKS("a", "[backend]\n"), 0,
	  "t:13: [backend] needs a name, e.g. [backend store1]\n", 1, NULL },
	{ "duplicate backend section", BKS("a", "[backend a]\nimap = 127.0.0.1:9\n"), 0,
	  "t:13: duplicate section [backend a] (first at line 4)\n", 1, NULL },
	{ "backend of a named section loops", TLS_OK "[backend a]\nimap = 127.0.0.1:993\n"
	  "[listener x]\naddress = 127.0.0.1:993\nprotocol = imap\nbackend = a\n", 0,
	  "t:5: backend '127.0.0.1:993' is the address of [listener x]; moat would connect to "
	  "itself\n", 1, NULL },
	{ "more than 32 backends", TLS_OK "[backend b0]\nimap = 127.0.0.1:2000\n[backend b1]\nimap = 127.0.0.1:2001\n[backend b2]\nimap = 127.0.0.1:2002\n[backend b3]\nimap = 127.0.0.1:2003\n[backend b4]\nimap = 127.0.0.1:2004\n[backend b5]\nimap = 127.0.0.1:2005\n[backend b6]\nimap = 127.0.0.1:2006\n[backend b7]\nimap = 127.0.0.1:2007\n[backend b8]\nimap = 127.0.0.1:2008\n[backend b9]\nimap = 127.0.0.1:2009\n[backend b10]\nimap = 127.0.0.1:2010\n[backend b11]\nimap = 127.0.0.1:2011\n[backend b12]\nimap = 127.0.0.1:2012\n[backend b13]\nimap = 127.0.0.1:2013\n[backend b14]\nimap = 127.0.0.1:2014\n[backend b15]\nimap = 127.0.0.1:2015\n[backend b16]\nimap = 127.0.0.1:2016\n[backend b17]\nimap = 127.0.0.1:2017\n[backend b18]\nimap = 127.0.0.1:2018\n[backend b19]\nimap = 127.0.0.1:2019\n[backend b20]\nimap = 127.0.0.1:2020\n[backend b21]\nimap = 127.0.0.1:2021\n[backend b22]\nimap = 127.0.0.1:2022\n[backend b23]\nimap = 127.0.0.1:2023\n[backend b24]\nimap = 127.0.0.1:2024\n[backend b25]\nimap = 127.0.0.1:2025\n[backend b26]\nimap = 127.0.0.1:2026\n[backend b27]\nimap = 127.0.0.1:2027\n[backend b28]\nimap = 127.0.0.1:2028\n[backend b29]\nimap = 127.0.0.1:2029\n[backend b30]\nimap = 127.0.0.1:2030\n[backend b31]\nimap = 127.0.0.1:2031\n[backend b32]\nimap = 127.0.0.1:2032\n[listener x]\naddress = *:993\nprotocol = imap\n"
	  "backend = b0 b1 b2 b3 b4 b5 b6 b7 b8 b9 b10 b11 b12 b13 b14 b15 b16 b17 b18 b19 b20 b21 b22 b23 b24 b25 b26 b27 b28 b29 b30 b31 b32\n", 0, "backend: more than 32 backends\n", 1, NULL },
	{ "bad balance word", BKS("a", "balance = random\n"), 0,
	  "t:13: balance: 'random' is not one of order, least-conn\n", 1, NULL },

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

	/* [moat] logging, limits and process keys, the key at line 10: what parses */
	{ "new [moat] keys: defaults", MIN, 1, NULL, 0, check_moat_defaults },
	{ "new [moat] keys: defaults under an empty [moat]", MIN "[moat]\n", 1, NULL, 0,
	  check_moat_defaults },
	{ "log_format kv", MOAT("log_format = kv"), 1, NULL, 0, check_format_kv },
	{ "log_format json", MOAT("log_format = json"), 1, NULL, 0, check_format_json },
	{ "log_target stderr", MOAT("log_target = stderr"), 1, NULL, 0, check_target_stderr },
	{ "log_target syslog", MOAT("log_target = syslog"), 1, NULL, 0, check_target_syslog },
	{ "syslog_facility mail", MOAT("syslog_facility = mail"), 1, NULL, 0, check_fac_mail },
	{ "syslog_facility daemon", MOAT("syslog_facility = daemon"), 1, NULL, 0,
	  check_fac_daemon },
	{ "syslog_facility user", MOAT("syslog_facility = user"), 1, NULL, 0, check_fac_user },
	{ "syslog_facility local0", MOAT("syslog_facility = local0"), 1, NULL, 0,
	  check_fac_local0 },
	{ "syslog_facility local1", MOAT("syslog_facility = local1"), 1, NULL, 0,
	  check_fac_local1 },
	{ "syslog_facility local2", MOAT("syslog_facility = local2"), 1, NULL, 0,
	  check_fac_local2 },
	{ "syslog_facility local3", MOAT("syslog_facility = local3"), 1, NULL, 0,
	  check_fac_local3 },
	{ "syslog_facility local4", MOAT("syslog_facility = local4"), 1, NULL, 0,
	  check_fac_local4 },
	{ "syslog_facility local5", MOAT("syslog_facility = local5"), 1, NULL, 0,
	  check_fac_local5 },
	{ "syslog_facility local6", MOAT("syslog_facility = local6"), 1, NULL, 0,
	  check_fac_local6 },
	{ "syslog_facility local7", MOAT("syslog_facility = local7"), 1, NULL, 0,
	  check_fac_local7 },
	{ "max_connections 0 is no limit", MOAT("max_connections = 0"), 1, NULL, 0,
	  check_maxconn_0 },
	{ "max_connections 1", MOAT("max_connections = 1"), 1, NULL, 0, check_maxconn_1 },
	{ "max_connections at the max", MOAT("max_connections = 10000000"), 1, NULL, 0,
	  check_maxconn_top },
	{ "max_connections_per_ip 0 is no limit", MOAT("max_connections_per_ip = 0"), 1, NULL, 0,
	  check_perip_0 },
	{ "max_connections_per_ip 1", MOAT("max_connections_per_ip = 1"), 1, NULL, 0,
	  check_perip_1 },
	{ "max_connections_per_ip at the max", MOAT("max_connections_per_ip = 10000000"), 1, NULL,
	  0, check_perip_top },
	{ "connection_rate_per_ip 1/1s", MOAT("connection_rate_per_ip = 1/1s"), 1, NULL, 0,
	  check_connrate_1_1s },
	{ "connection_rate_per_ip max/1d", MOAT("connection_rate_per_ip = 1000000/1d"), 1, NULL, 0,
	  check_connrate_top_1d },
	{ "connection_rate_per_ip off", MOAT("connection_rate_per_ip = off"), 1, NULL, 0,
	  check_connrate_none },
	{ "connection_rate_per_ip 0", MOAT("connection_rate_per_ip = 0"), 1, NULL, 0,
	  check_connrate_none },
	{ "connection_rate_per_ip 1000ms window", MOAT("connection_rate_per_ip = 5/1000ms"), 1,
	  NULL, 0, check_connrate_5_1s },
	{ "connection_rate_per_ip 24h window", MOAT("connection_rate_per_ip = 5/24h"), 1, NULL, 0,
	  check_connrate_5_24h },
	{ "connection_rate_per_ip bare seconds", MOAT("connection_rate_per_ip = 5/90"), 1, NULL, 0,
	  check_connrate_5_90s },
	{ "connection_rate_per_ip leading zeros", MOAT("connection_rate_per_ip = 007/1m"), 1, NULL,
	  0, check_connrate_7_1m },
	{ "auth_fail_limit 1/1s", MOAT("auth_fail_limit = 1/1s"), 1, NULL, 0,
	  check_authfail_1_1s },
	{ "auth_fail_limit max/1d", MOAT("auth_fail_limit = 100000/1d"), 1, NULL, 0,
	  check_authfail_top_1d },
	{ "auth_fail_limit off", MOAT("auth_fail_limit = off"), 1, NULL, 0, check_authfail_none },
	{ "auth_fail_limit 0", MOAT("auth_fail_limit = 0"), 1, NULL, 0, check_authfail_none },
	{ "auth_block_time 1s", MOAT("auth_block_time = 1s"), 1, NULL, 0, check_block_1s },
	{ "auth_block_time 1000ms", MOAT("auth_block_time = 1000ms"), 1, NULL, 0, check_block_1s },
	{ "auth_block_time 1d", MOAT("auth_block_time = 1d"), 1, NULL, 0, check_block_1d },
	{ "ipv6_prefix 32", MOAT("ipv6_prefix = 32"), 1, NULL, 0, check_v6prefix_32 },
	{ "ipv6_prefix 128", MOAT("ipv6_prefix = 128"), 1, NULL, 0, check_v6prefix_128 },
	{ "limits_exempt none", MOAT("limits_exempt = none"), 1, NULL, 0, check_exempt_none },
	{ "limits_exempt v4 and v6, both separators",
	  MOAT("limits_exempt = 10.0.0.0/8, 192.0.2.1  2001:db8::/32"), 1, NULL, 0,
	  check_exempt_three },
	{ "limits_exempt /0 blocks", MOAT("limits_exempt = 0.0.0.0/0,::/0"), 1, NULL, 0,
	  check_exempt_all },
	{ "limits_exempt ipv4-mapped block", MOAT("limits_exempt = ::ffff:10.0.0.0/104"), 1, NULL,
	  0, check_exempt_mapped },
	{ "limits_exempt 32 blocks", MOAT("limits_exempt = " NETS32), 1, NULL, 0,
	  check_exempt_32 },
	{ "shutdown_grace 0", MOAT("shutdown_grace = 0"), 1, NULL, 0, check_grace_0 },
	{ "shutdown_grace 250ms", MOAT("shutdown_grace = 250ms"), 1, NULL, 0, check_grace_250ms },
	{ "shutdown_grace 1d", MOAT("shutdown_grace = 1d"), 1, NULL, 0, check_grace_1d },
	{ "user, group, chroot, pid_file, allow_root", MOAT("user = moat\ngroup = mail\n"
	  "chroot = /var/empty\npid_file = /run/moat.pid\nallow_root = yes"), 1, NULL, 0,
	  check_process },
	{ "allow_root yes", MOAT("allow_root = yes"), 1, NULL, 0, check_root_yes },
	{ "allow_root no", MOAT("allow_root = no"), 1, NULL, 0, check_root_no },
	{ "every new [moat] key set", MOAT("log_format = json\nlog_target = syslog\n"
	  "syslog_facility = local3\nmax_connections = 500\nmax_connections_per_ip = 7\n"
	  "connection_rate_per_ip = 30/1m\nauth_fail_limit = 5/1h\nauth_block_time = 2h\n"
	  "ipv6_prefix = 56\nlimits_exempt = 192.0.2.0/24 2001:db8::/48\nshutdown_grace = 5s\n"
	  "user = moat\ngroup = moat\nchroot = /var/lib/moat\npid_file = /run/moat/moat.pid\n"
	  "allow_root = no"), 1, NULL, 0, check_moat_all_new },

	/* [moat] logging, limits and process keys, the key at line 10: what is refused */
	{ "log_format text", MOAT("log_format = text"), 0,
	  "t:10: log_format: 'text' is not one of kv, json\n", 1, NULL },
	{ "log_format uppercase", MOAT("log_format = JSON"), 0,
	  "t:10: log_format: 'JSON' is not one of kv, json\n", 1, NULL },
	{ "log_target file", MOAT("log_target = /var/log/moat.log"), 0,
	  "t:10: log_target: '/var/log/moat.log' is not one of stderr, syslog\n", 1, NULL },
	{ "syslog_facility local8", MOAT("syslog_facility = local8"), 0,
	  "t:10: syslog_facility: 'local8' is not one of " FACILITIES "\n", 1, NULL },
	{ "syslog_facility auth", MOAT("syslog_facility = auth"), 0,
	  "t:10: syslog_facility: 'auth' is not one of " FACILITIES "\n", 1, NULL },
	{ "syslog_facility LOG_MAIL", MOAT("syslog_facility = LOG_MAIL"), 0,
	  "t:10: syslog_facility: 'LOG_MAIL' is not one of " FACILITIES "\n", 1, NULL },
	{ "max_connections above the max", MOAT("max_connections = 10000001"), 0,
	  "t:10: max_connections: '10000001' is out of range 0..10000000\n", 1, NULL },
	{ "max_connections negative", MOAT("max_connections = -1"), 0,
	  "t:10: max_connections: '-1' is not a whole number\n", 1, NULL },
	{ "max_connections exponent", MOAT("max_connections = 1e6"), 0,
	  "t:10: max_connections: '1e6' is not a whole number\n", 1, NULL },
	{ "max_connections off", MOAT("max_connections = off"), 0,
	  "t:10: max_connections: 'off' is not a whole number\n", 1, NULL },
	{ "max_connections_per_ip above the max", MOAT("max_connections_per_ip = 10000001"), 0,
	  "t:10: max_connections_per_ip: '10000001' is out of range 0..10000000\n", 1, NULL },
	{ "max_connections_per_ip empty", MOAT("max_connections_per_ip ="), 0,
	  "t:10: max_connections_per_ip: empty value\n", 1, NULL },
	{ "rate without '/'", MOAT("connection_rate_per_ip = 100"), 0,
	  NOT_RATE("connection_rate_per_ip", "100"), 1, NULL },
	{ "rate Off", MOAT("connection_rate_per_ip = Off"), 0,
	  NOT_RATE("connection_rate_per_ip", "Off"), 1, NULL },
	{ "rate count 0", MOAT("connection_rate_per_ip = 0/10s"), 0,
	  BAD_COUNT("connection_rate_per_ip", "0/10s", "1000000"), 1, NULL },
	{ "rate count 00", MOAT("connection_rate_per_ip = 00/10s"), 0,
	  BAD_COUNT("connection_rate_per_ip", "00/10s", "1000000"), 1, NULL },
	{ "rate count not a number", MOAT("connection_rate_per_ip = abc/1m"), 0,
	  BAD_COUNT("connection_rate_per_ip", "abc/1m", "1000000"), 1, NULL },
	{ "rate count above the max", MOAT("connection_rate_per_ip = 1000001/1s"), 0,
	  BAD_COUNT("connection_rate_per_ip", "1000001/1s", "1000000"), 1, NULL },
	{ "rate count missing", MOAT("connection_rate_per_ip = /10s"), 0,
	  BAD_COUNT("connection_rate_per_ip", "/10s", "1000000"), 1, NULL },
	{ "rate count negative", MOAT("connection_rate_per_ip = -5/10s"), 0,
	  BAD_COUNT("connection_rate_per_ip", "-5/10s", "1000000"), 1, NULL },
	{ "rate with spaces", MOAT("connection_rate_per_ip = 5 / 10s"), 0,
	  BAD_COUNT("connection_rate_per_ip", "5 / 10s", "1000000"), 1, NULL },
	{ "rate count of 20 digits", MOAT("connection_rate_per_ip = 99999999999999999999/1s"), 0,
	  "t:10: connection_rate_per_ip: '99999999999999999999/1s' ", 1, NULL },
	{ "rate window 500ms", MOAT("connection_rate_per_ip = 5/500ms"), 0,
	  BAD_WINDOW("connection_rate_per_ip", "5/500ms"), 1, NULL },
	{ "rate window 999ms", MOAT("connection_rate_per_ip = 5/999ms"), 0,
	  BAD_WINDOW("connection_rate_per_ip", "5/999ms"), 1, NULL },
	{ "rate window 0", MOAT("connection_rate_per_ip = 5/0"), 0,
	  BAD_WINDOW("connection_rate_per_ip", "5/0"), 1, NULL },
	{ "rate window 2d", MOAT("connection_rate_per_ip = 5/2d"), 0,
	  BAD_WINDOW("connection_rate_per_ip", "5/2d"), 1, NULL },
	{ "rate window 1d and 1ms", MOAT("connection_rate_per_ip = 5/86400001ms"), 0,
	  BAD_WINDOW("connection_rate_per_ip", "5/86400001ms"), 1, NULL },
	{ "rate window beyond 32 bits", MOAT("connection_rate_per_ip = 5/50d"), 0,
	  BAD_WINDOW("connection_rate_per_ip", "5/50d"), 1, NULL },
	{ "rate window missing", MOAT("connection_rate_per_ip = 5/"), 0,
	  BAD_WINDOW("connection_rate_per_ip", "5/"), 1, NULL },
	{ "rate window unit", MOAT("connection_rate_per_ip = 5/1w"), 0,
	  BAD_WINDOW("connection_rate_per_ip", "5/1w"), 1, NULL },
	{ "rate with two slashes", MOAT("connection_rate_per_ip = 5/10s/2"), 0,
	  BAD_WINDOW("connection_rate_per_ip", "5/10s/2"), 1, NULL },
	{ "auth_fail_limit count above the max", MOAT("auth_fail_limit = 100001/1m"), 0,
	  BAD_COUNT("auth_fail_limit", "100001/1m", "100000"), 1, NULL },
	{ "auth_fail_limit count 0", MOAT("auth_fail_limit = 0/10m"), 0,
	  BAD_COUNT("auth_fail_limit", "0/10m", "100000"), 1, NULL },
	{ "auth_fail_limit without '/'", MOAT("auth_fail_limit = 20"), 0,
	  NOT_RATE("auth_fail_limit", "20"), 1, NULL },
	{ "auth_fail_limit window 500ms", MOAT("auth_fail_limit = 5/500ms"), 0,
	  BAD_WINDOW("auth_fail_limit", "5/500ms"), 1, NULL },
	{ "auth_fail_limit window 2d", MOAT("auth_fail_limit = 5/2d"), 0,
	  BAD_WINDOW("auth_fail_limit", "5/2d"), 1, NULL },
	{ "auth_block_time 999ms", MOAT("auth_block_time = 999ms"), 0,
	  "t:10: auth_block_time: '999ms' is too short (min 1000ms)\n", 1, NULL },
	{ "auth_block_time 0", MOAT("auth_block_time = 0"), 0,
	  "t:10: auth_block_time: '0' is too short (min 1000ms)\n", 1, NULL },
	{ "auth_block_time 1d and 1s", MOAT("auth_block_time = 86401s"), 0,
	  "t:10: auth_block_time: '86401s' is too long (max 86400000ms)\n", 1, NULL },
	{ "auth_block_time beyond 32 bits", MOAT("auth_block_time = 50d"), 0,
	  "t:10: auth_block_time: '50d' is too long (max 86400000ms)\n", 1, NULL },
	{ "auth_block_time inner space", MOAT("auth_block_time = 10 m"), 0,
	  "t:10: auth_block_time: '10 m' is not a duration (e.g. 250ms, 10s, 31m, 2h, 1d)\n", 1,
	  NULL },
	{ "ipv6_prefix 31", MOAT("ipv6_prefix = 31"), 0,
	  "t:10: ipv6_prefix: '31' is out of range 32..128\n", 1, NULL },
	{ "ipv6_prefix 129", MOAT("ipv6_prefix = 129"), 0,
	  "t:10: ipv6_prefix: '129' is out of range 32..128\n", 1, NULL },
	{ "ipv6_prefix with a slash", MOAT("ipv6_prefix = /64"), 0,
	  "t:10: ipv6_prefix: '/64' is not a whole number\n", 1, NULL },
	{ "limits_exempt v4 prefix 33", MOAT("limits_exempt = 10.0.0.0/33"), 0,
	  BAD_NET("10.0.0.0/33", "10.0.0.0/33"), 1, NULL },
	{ "limits_exempt v6 prefix 129", MOAT("limits_exempt = ::1/129"), 0,
	  BAD_NET("::1/129", "::1/129"), 1, NULL },
	{ "limits_exempt bad address after a good one",
	  MOAT("limits_exempt = 127.0.0.1 10.0.0.300"), 0, BAD_NET("127.0.0.1 10.0.0.300", "10.0.0.300"), 1, NULL },
	{ "limits_exempt host name", MOAT("limits_exempt = localhost"), 0,
	  BAD_NET("localhost", "localhost"), 1, NULL },
	{ "limits_exempt empty prefix", MOAT("limits_exempt = 10.0.0.0/"), 0,
	  BAD_NET("10.0.0.0/", "10.0.0.0/"), 1, NULL },
	{ "limits_exempt negative prefix", MOAT("limits_exempt = 10.0.0.0/-8"), 0,
	  BAD_NET("10.0.0.0/-8", "10.0.0.0/-8"), 1, NULL },
	{ "limits_exempt prefix junk", MOAT("limits_exempt = 10.0.0.0/8x"), 0,
	  BAD_NET("10.0.0.0/8x", "10.0.0.0/8x"), 1, NULL },
	{ "limits_exempt v6 zone", MOAT("limits_exempt = fe80::1%eth0"), 0,
	  BAD_NET("fe80::1%eth0", "fe80::1%eth0"), 1, NULL },
	{ "limits_exempt bracketed v6", MOAT("limits_exempt = [::1]"), 0,
	  BAD_NET("[::1]", "[::1]"), 1, NULL },
	{ "limits_exempt none among blocks", MOAT("limits_exempt = none, 10.0.0.1"), 0,
	  BAD_NET("none, 10.0.0.1", "none"), 1, NULL },
	{ "limits_exempt 33 blocks", MOAT("limits_exempt = " NETS32 " ::21"), 0,
	  "t:10: limits_exempt: '::1 ::2 ::3 ::4 ::5 ::6 ::7 ::8 ::9 ::a ::b ::c ::d ::e ::f ::10 "
	  "::11 ::12 ::13 ' includes more than 32 address blocks\n", 1, NULL },
	{ "shutdown_grace 1d and 1s", MOAT("shutdown_grace = 86401s"), 0,
	  "t:10: shutdown_grace: '86401s' is too long (max 86400000ms)\n", 1, NULL },
	{ "shutdown_grace negative", MOAT("shutdown_grace = -1s"), 0,
	  "t:10: shutdown_grace: '-1s' is not a duration", 1, NULL },
	{ "allow_root true", MOAT("allow_root = true"), 0,
	  "t:10: allow_root: 'true' is not one of no, yes\n", 1, NULL },
	{ "user empty", MOAT("user ="), 0, "t:10: user: empty value\n", 1, NULL },
	{ "group empty", MOAT("group ="), 0, "t:10: group: empty value\n", 1, NULL },
	{ "chroot empty", MOAT("chroot ="), 0, "t:10: chroot: empty value\n", 1, NULL },
	{ "pid_file empty", MOAT("pid_file ="), 0, "t:10: pid_file: empty value\n", 1, NULL },
	{ "duplicate new [moat] key", MOAT("max_connections = 1\nmax_connections = 2"), 0,
	  "t:11: duplicate key 'max_connections' in [moat] (first at line 10)\n", 1, NULL },
	{ "two bad new [moat] keys, both reported", MOAT("log_format = xml\nipv6_prefix = 0"), 0,
	  "t:10: log_format: 'xml' is not one of kv, json\n"
	  "t:11: ipv6_prefix: '0' is out of range 32..128\n", 2, NULL },
	{ "metrics is not a [moat] key", MOAT("metrics = 127.0.0.1:9187"), 0,
	  "t:10: unknown key 'metrics' in [moat]\n", 1, NULL },

	/* [metrics] at line 9, address at line 10 */
	{ "metrics 127.0.0.1", METRICS("address = 127.0.0.1:9187"), 1, NULL, 0,
	  check_metrics_127_0_0_1 },
	{ "metrics 127.0.0.2", METRICS("address = 127.0.0.2:9187"), 1, NULL, 0,
	  check_metrics_127_0_0_2 },
	{ "metrics top of 127/8", METRICS("address = 127.255.255.255:65535"), 1, NULL, 0,
	  check_metrics_127_top },
	{ "metrics [::1]", METRICS("address = [::1]:9187"), 1, NULL, 0, check_metrics_v6 },
	{ "metrics localhost", METRICS("address = localhost:9187"), 1, NULL, 0,
	  check_metrics_localhost },
	{ "metrics before [tls]", "[metrics]\naddress = [::1]:9187\n" MIN, 1, NULL, 0,
	  check_metrics_v6 },
	{ "metrics 0.0.0.0", METRICS("address = 0.0.0.0:9187"), 0, NOT_LOOPBACK("0.0.0.0:9187"), 1,
	  NULL },
	{ "metrics [::]", METRICS("address = [::]:9187"), 0, NOT_LOOPBACK("[::]:9187"), 1, NULL },
	{ "metrics *", METRICS("address = *:9187"), 0, NOT_LOOPBACK("*:9187"), 1, NULL },
	{ "metrics 192.0.2.1", METRICS("address = 192.0.2.1:9187"), 0,
	  NOT_LOOPBACK("192.0.2.1:9187"), 1, NULL },
	{ "metrics 128.0.0.1", METRICS("address = 128.0.0.1:9187"), 0,
	  NOT_LOOPBACK("128.0.0.1:9187"), 1, NULL },
	{ "metrics 126.255.255.255", METRICS("address = 126.255.255.255:9187"), 0,
	  NOT_LOOPBACK("126.255.255.255:9187"), 1, NULL },
	{ "metrics [::2]", METRICS("address = [::2]:9187"), 0, NOT_LOOPBACK("[::2]:9187"), 1,
	  NULL },
	{ "metrics [2001:db8::1]", METRICS("address = [2001:db8::1]:9187"), 0,
	  NOT_LOOPBACK("[2001:db8::1]:9187"), 1, NULL },
	{ "metrics ipv4-mapped loopback", METRICS("address = [::ffff:127.0.0.1]:9187"), 0,
	  NOT_LOOPBACK("[::ffff:127.0.0.1]:9187"), 1, NULL },
	{ "metrics without port", METRICS("address = 127.0.0.1"), 0,
	  "t:10: address: '127.0.0.1' is not a valid address: missing port (expected host:port)\n",
	  1, NULL },
	{ "metrics port 0", METRICS("address = 127.0.0.1:0"), 0,
	  "t:10: address: '127.0.0.1:0' is not a valid address: port must be a number from 1 to "
	  "65535\n", 1, NULL },
	{ "metrics host name", METRICS("address = metrics.example:9187"), 0,
	  "t:10: address: 'metrics.example:9187' is not a valid address: not a numeric address; "
	  "use a numeric address or localhost\n", 1, NULL },
	{ "metrics empty address", METRICS("address ="), 0, "t:10: address: empty value\n", 1,
	  NULL },
	{ "metrics without address", MIN "[metrics]\n", 0, "t:9: [metrics] address is required\n",
	  1, NULL },
	{ "metrics with only an unknown key", METRICS("port = 9187"), 0,
	  "t:9: [metrics] address is required\nt:10: unknown key 'port' in [metrics]\n", 2, NULL },
	{ "metrics duplicate key", METRICS("address = 127.0.0.1:9187\naddress = 127.0.0.1:9188"),
	  0, "t:11: duplicate key 'address' in [metrics] (first at line 10)\n", 1, NULL },
	{ "duplicate [metrics]", METRICS("address = 127.0.0.1:9187")
	  "[metrics]\naddress = 127.0.0.1:9188\n", 0,
	  "t:11: duplicate section [metrics] (first at line 9)\n", 1, NULL },
	{ "duplicate [metrics], the second empty", METRICS("address = 127.0.0.1:9187")
	  "[metrics]\n", 0, "t:11: duplicate section [metrics] (first at line 9)\n", 1, NULL },
	{ "[metrics] with a name", MIN "[metrics x]\naddress = 127.0.0.1:9187\n", 0,
	  "t:9: section [metrics] takes no name\n", 1, NULL },

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

	/* [tls] options, the key at line 4: what parses */
	{ "tls defaults and certs of a minimal config", MIN, 1, NULL, 0, check_certs_default },
	{ "min_version 1.3", TLSKV("min_version = 1.3"), 1, NULL, 0, check_min_tls13 },
	{ "min_version 1.2", TLSKV("min_version = 1.2"), 1, NULL, 0, check_min_tls12 },
	{ "tls12_ciphers openssl names, ':'", TLSKV("tls12_ciphers = "
	  "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"), 1, NULL, 0,
	  check_tls12_openssl },
	{ "tls12_ciphers iana names, ', '", TLSKV("tls12_ciphers = "
	  "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
	  1, NULL, 0, check_tls12_iana },
	{ "tls12_ciphers mixed case and separators", TLSKV("tls12_ciphers = "
	  ":ecdhe-rsa-aes128-gcm-sha256 :, Tls_Ecdhe_Ecdsa_With_Aes_256_Gcm_Sha384\t"
	  "ECDHE-ECDSA-aes128-GCM-sha256,"), 1, NULL, 0, check_tls12_mixed },
	{ "tls12_ciphers order kept", TLSKV("tls12_ciphers = ECDHE-RSA-CHACHA20-POLY1305 "
	  "ECDHE-RSA-AES256-GCM-SHA384 ECDHE-RSA-AES128-GCM-SHA256 "
	  "ECDHE-ECDSA-CHACHA20-POLY1305 ECDHE-ECDSA-AES256-GCM-SHA384 "
	  "ECDHE-ECDSA-AES128-GCM-SHA256"), 1, NULL, 0, check_tls12_reversed },
	{ "tls13_ciphers two, lowercase", TLSKV("tls13_ciphers = "
	  "tls_chacha20_poly1305_sha256, TLS_AES_128_GCM_SHA256"), 1, NULL, 0, check_tls13_two },
	{ "tls13_ciphers one", TLSKV("tls13_ciphers = TLS_AES_256_GCM_SHA384"), 1, NULL, 0,
	  check_tls13_one },
	{ "groups aliases", TLSKV("groups = P-384 prime256v1"), 1, NULL, 0, check_groups_aliases },
	{ "groups any case", TLSKV("groups = p-256,X25519:SECP384R1"), 1, NULL, 0,
	  check_groups_case },
	{ "groups one", TLSKV("groups = x25519"), 1, NULL, 0, check_groups_one },
	{ "prefer_server_ciphers no", TLSKV("prefer_server_ciphers = no"), 1, NULL, 0,
	  check_no_prefer },
	{ "session_tickets no", TLSKV("session_tickets = no"), 1, NULL, 0, check_no_tickets },
	{ "ticket_lifetime 1m", TLSKV("ticket_lifetime = 1m"), 1, NULL, 0, check_lifetime_1m },
	{ "ticket_lifetime 7d", TLSKV("ticket_lifetime = 7d"), 1, NULL, 0, check_lifetime_7d },
	{ "ticket_lifetime bare seconds", TLSKV("ticket_lifetime = 90"), 1, NULL, 0,
	  check_lifetime_bare },
	{ "key_permissions strict", TLSKV("key_permissions = strict"), 1, NULL, 0,
	  check_keyperm_strict },
	{ "key_permissions warn", TLSKV("key_permissions = warn"), 1, NULL, 0,
	  check_keyperm_warn },
	{ "expiry_warning_days 0", TLSKV("expiry_warning_days = 0"), 1, NULL, 0, check_expiry_0 },
	{ "expiry_warning_days 3650", TLSKV("expiry_warning_days = 3650"), 1, NULL, 0,
	  check_expiry_3650 },
	{ "every tls key set", TLSKV("min_version = 1.3\n"
	  "tls12_ciphers = ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384\n"
	  "tls13_ciphers = TLS_CHACHA20_POLY1305_SHA256\ngroups = secp384r1 x25519\n"
	  "prefer_server_ciphers = no\nsession_tickets = no\nticket_lifetime = 12h\n"
	  "key_permissions = warn\nexpiry_warning_days = 14"), 1, NULL, 0, check_tls_all_keys },

	/* [tls] options, the key at line 4: what is refused */
	{ "tls12_ciphers unknown name", TLSKV("tls12_ciphers = FOO"), 0,
	  "t:4: tls12_ciphers: 'FOO' includes 'FOO', not a cipher suite moat offers "
	  "(it offers: ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 "
	  "ECDHE-ECDSA-CHACHA20-POLY1305 ECDHE-RSA-AES128-GCM-SHA256 ECDHE-RSA-AES256-GCM-SHA384 "
	  "ECDHE-RSA-CHACHA20-POLY1305)\n", 1, NULL },
	{ "tls12_ciphers non-ECDHE suite", TLSKV("tls12_ciphers = "
	  "ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256"), 0,
	  "t:4: tls12_ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256' includes "
	  "'AES128-GCM-SHA256', not a cipher suite moat offers", 1, NULL },
	{ "tls12_ciphers CBC suite", TLSKV("tls12_ciphers = "
	  "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"), 0,
	  "t:4: tls12_ciphers: 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256' includes "
	  "'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256', not a cipher suite moat offers", 1, NULL },
	{ "tls13_ciphers unknown name", TLSKV("tls13_ciphers = TLS_AES_128_CCM_SHA256"), 0,
	  "t:4: tls13_ciphers: 'TLS_AES_128_CCM_SHA256' includes 'TLS_AES_128_CCM_SHA256', not a "
	  "cipher suite moat offers (it offers: TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 "
	  "TLS_CHACHA20_POLY1305_SHA256)\n", 1, NULL },
	{ "tls12_ciphers with a TLS 1.3 suite", TLSKV("tls12_ciphers = "
	  "ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256"), 0,
	  "t:4: tls12_ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256' includes "
	  "'TLS_AES_128_GCM_SHA256', a TLS 1.3 suite; list it in tls13_ciphers\n", 1, NULL },
	{ "tls13_ciphers with a TLS 1.2 suite", TLSKV("tls13_ciphers = "
	  "ECDHE-ECDSA-AES128-GCM-SHA256"), 0,
	  "t:4: tls13_ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' includes "
	  "'ECDHE-ECDSA-AES128-GCM-SHA256', a TLS 1.2 suite; list it in tls12_ciphers\n", 1,
	  NULL },
	{ "tls13_ciphers with a TLS 1.2 iana name", TLSKV("tls13_ciphers = "
	  "TLS_AES_256_GCM_SHA384 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"), 0,
	  "includes 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384', a TLS 1.2 suite; list it in "
	  "tls12_ciphers\n", 1, NULL },
	{ "tls12_ciphers duplicate", TLSKV("tls12_ciphers = "
	  "ECDHE-RSA-AES128-GCM-SHA256,ecdhe-rsa-aes128-gcm-sha256"), 0,
	  "t:4: tls12_ciphers: 'ECDHE-RSA-AES128-GCM-SHA256,ecdhe-rsa-aes128-gcm-sha256' includes "
	  "'ecdhe-rsa-aes128-gcm-sha256' twice\n", 1, NULL },
	{ "tls12_ciphers same suite, two spellings", TLSKV("tls12_ciphers = "
	  "ECDHE-ECDSA-CHACHA20-POLY1305 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"), 0,
	  "includes 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256' twice\n", 1, NULL },
	{ "tls13_ciphers duplicate", TLSKV("tls13_ciphers = "
	  "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256"), 0,
	  "includes 'TLS_AES_128_GCM_SHA256' twice\n", 1, NULL },
	{ "tls12_ciphers only separators", TLSKV("tls12_ciphers = :"), 0,
	  "t:4: tls12_ciphers: ':' includes no cipher suite\n", 1, NULL },
	{ "tls13_ciphers only separators", TLSKV("tls13_ciphers = , :,"), 0,
	  "t:4: tls13_ciphers: ', :,' includes no cipher suite\n", 1, NULL },
	{ "tls12_ciphers empty", TLSKV("tls12_ciphers ="), 0,
	  "t:4: tls12_ciphers: empty value\n", 1, NULL },
	{ "groups unknown", TLSKV("groups = x25519 x448"), 0,
	  "t:4: groups: 'x25519 x448' includes 'x448', not a group moat offers "
	  "(it offers: x25519 secp256r1 secp384r1)\n", 1, NULL },
	{ "groups P-521", TLSKV("groups = P-521"), 0,
	  "t:4: groups: 'P-521' includes 'P-521', not a group moat offers", 1, NULL },
	{ "groups alias twice", TLSKV("groups = P-256:secp256r1"), 0,
	  "t:4: groups: 'P-256:secp256r1' includes 'secp256r1' twice\n", 1, NULL },
	{ "groups only separators", TLSKV("groups = ,"), 0, "t:4: groups: ',' includes no group\n",
	  1, NULL },
	{ "min_version 1.1", TLSKV("min_version = 1.1"), 0,
	  "t:4: min_version: '1.1' is not one of 1.2, 1.3\n", 1, NULL },
	{ "min_version TLSv1.3", TLSKV("min_version = TLSv1.3"), 0,
	  "t:4: min_version: 'TLSv1.3' is not one of 1.2, 1.3\n", 1, NULL },
	{ "prefer_server_ciphers true", TLSKV("prefer_server_ciphers = true"), 0,
	  "t:4: prefer_server_ciphers: 'true' is not one of no, yes\n", 1, NULL },
	{ "session_tickets on", TLSKV("session_tickets = on"), 0,
	  "t:4: session_tickets: 'on' is not one of no, yes\n", 1, NULL },
	{ "ticket_lifetime 30s", TLSKV("ticket_lifetime = 30s"), 0,
	  "t:4: ticket_lifetime: '30s' is too short (min 60000ms)\n", 1, NULL },
	{ "ticket_lifetime 59999ms", TLSKV("ticket_lifetime = 59999ms"), 0,
	  "t:4: ticket_lifetime: '59999ms' is too short (min 60000ms)\n", 1, NULL },
	{ "ticket_lifetime 8d", TLSKV("ticket_lifetime = 8d"), 0,
	  "t:4: ticket_lifetime: '8d' is too long (max 604800000ms)\n", 1, NULL },
	{ "ticket_lifetime beyond 32 bits names its own max", TLSKV("ticket_lifetime = 50d"), 0,
	  "t:4: ticket_lifetime: '50d' is too long (max 604800000ms)\n", 1, NULL },
	{ "ticket_lifetime 7d and 1ms", TLSKV("ticket_lifetime = 604800001ms"), 0,
	  "t:4: ticket_lifetime: '604800001ms' is too long (max 604800000ms)\n", 1, NULL },
	{ "ticket_lifetime not a duration", TLSKV("ticket_lifetime = 2 h"), 0,
	  "t:4: ticket_lifetime: '2 h' is not a duration", 1, NULL },
	{ "key_permissions maybe", TLSKV("key_permissions = maybe"), 0,
	  "t:4: key_permissions: 'maybe' is not one of auto, strict, warn\n", 1, NULL },
	{ "key_permissions uppercase", TLSKV("key_permissions = Strict"), 0,
	  "t:4: key_permissions: 'Strict' is not one of auto, strict, warn\n", 1, NULL },
	{ "expiry_warning_days 4000", TLSKV("expiry_warning_days = 4000"), 0,
	  "t:4: expiry_warning_days: '4000' is out of range 0..3650\n", 1, NULL },
	{ "expiry_warning_days 3651", TLSKV("expiry_warning_days = 3651"), 0,
	  "t:4: expiry_warning_days: '3651' is out of range 0..3650\n", 1, NULL },
	{ "expiry_warning_days negative", TLSKV("expiry_warning_days = -1"), 0,
	  "t:4: expiry_warning_days: '-1' is not a whole number\n", 1, NULL },
	{ "duplicate tls option", TLSKV("groups = x25519\ngroups = secp256r1"), 0,
	  "t:5: duplicate key 'groups' in [tls] (first at line 4)\n", 1, NULL },
	{ "two bad tls options, both reported", TLSKV("min_version = 1.0\nsession_tickets = 1"),
	  0, "t:4: min_version: '1.0' is not one of 1.2, 1.3\n"
	  "t:5: session_tickets: '1' is not one of no, yes\n", 2, NULL },

	/* [certificate NAME], after MIN from line 9 */
	{ "two certificate sections", MIN CERTS_AB, 1, NULL, 0, check_certs_ab },
	{ "certificate section before [tls]", CERT("z", "/z.pem", "/z.key") MIN, 1, NULL, 0,
	  check_cert_before_tls },
	{ "certificate keys in any order", MIN "[certificate RSA-2048_v1.x] ; rsa\n"
	  "key = /r.key\ncertificate = /r.pem\n", 1, NULL, 0, check_cert_keys_swapped },
	{ "certificate without key", MIN "[certificate x]\ncertificate = /x.pem\n", 0,
	  "t:9: [certificate x] key is required\n", 1, NULL },
	{ "certificate without certificate", MIN "[certificate x]\nkey = /x.key\n", 0,
	  "t:9: [certificate x] certificate is required\n", 1, NULL },
	{ "certificate section empty", MIN CERT("a", "/a", "/a") "[certificate x]\n", 0,
	  "t:12: [certificate x] certificate is required\n"
	  "t:12: [certificate x] key is required\n", 2, NULL },
	{ "certificate empty value", MIN "[certificate x]\ncertificate =\nkey = /x.key\n", 0,
	  "t:10: certificate: empty value\n", 1, NULL },
	{ "certificate duplicate name", MIN CERTS_AB CERT("a", "/c", "/c"), 0,
	  "t:15: duplicate section [certificate a] (first at line 9)\n", 1, NULL },
	{ "certificate default is reserved", MIN CERT("default", "/d", "/d"), 0,
	  "t:9: [certificate default]: the name is taken by [tls]'s certificate and key; "
	  "choose another\n", 1, NULL },
	{ "certificate Default is reserved too", MIN CERT("Default", "/d", "/d"), 0,
	  "t:9: [certificate Default]: the name is taken by [tls]'s certificate and key; "
	  "choose another\n", 1, NULL },
	{ "certificate without a name or keys: one error", MIN "[certificate]\n", 0,
	  "t:9: [certificate] needs a name, e.g. [certificate rsa]\n", 1, NULL },
	{ "listener without a name or keys: one error", MIN "[listener]\n", 0,
	  "t:9: [listener] needs a name, e.g. [listener imaps]\n", 1, NULL },
	{ "certificate without a name", MIN CERT("", "/d", "/d"), 0,
	  "t:9: [certificate] needs a name, e.g. [certificate rsa]\n", 1, NULL },
	{ "certificate name with a slash", MIN CERT("rsa/2", "/d", "/d"), 0,
	  "t:9: certificate name 'rsa/2' may only use A-Z a-z 0-9 _ . -\n", 1, NULL },
	{ "certificate name with a colon", MIN CERT("a:b", "/d", "/d"), 0,
	  "t:9: certificate name 'a:b' may only use A-Z a-z 0-9 _ . -\n", 1, NULL },
	{ "certificate name too long", MIN CERT(
	  "a123456789b123456789c123456789d123456789e123456789f123456789g1234", "/d", "/d"), 0,
	  "t:9: certificate name is longer than 64 characters\n", 1, NULL },
	{ "certificate unknown key", MIN CERT("a", "/a", "/a") "chain = /c\n", 0,
	  "t:12: unknown key 'chain' in [certificate a]\n", 1, NULL },
	{ "certificate takes no tls options", MIN CERT("a", "/a", "/a") "min_version = 1.3\n", 0,
	  "t:12: unknown key 'min_version' in [certificate a]\n", 1, NULL },
	{ "certificate duplicate key", MIN CERT("a", "/a", "/a") "key = /b\n", 0,
	  "t:12: duplicate key 'key' in [certificate a] (first at line 11)\n", 1, NULL },

	/* listener certificates and client certificates: LX's key at line 8 */
	{ "certificates in the given order", LX("certificates = b a\n") CERTS_AB, 1, NULL, 0,
	  check_listener_b_a },
	{ "certificates with default in the middle", LX("certificates = b, default:a\n")
	  CERTS_AB, 1, NULL, 0, check_listener_b_default_a },
	{ "certificates = default", LX("certificates = default\n") CERTS_AB, 1, NULL, 0,
	  check_listener_default_only },
	{ "certificates per listener", MIN CERTS_AB "[listener pop3s]\naddress = *:995\n"
	  "protocol = pop3\nbackend = 127.0.0.1:110\ncertificates = b\n", 1, NULL, 0,
	  check_two_listener_certs },
	{ "certificates unknown name", LX("certificates = a nosuch\n") CERTS_AB, 0,
	  "t:8: certificates: no [certificate nosuch] section (and 'default' is [tls]'s)\n", 1,
	  NULL },
	{ "certificates name of a refused section", LX("certificates = default, a\n")
	  CERT("default", "/d", "/d"), 0,
	  "t:8: certificates: no [certificate a] section (and 'default' is [tls]'s)\n"
	  "t:9: [certificate default]: the name is taken by [tls]'s certificate and key; "
	  "choose another\n", 2, NULL },
	{ "certificates only an unknown name: one error", LX("certificates = nosuch\n"), 0,
	  "t:8: certificates: no [certificate nosuch] section (and 'default' is [tls]'s)\n", 1,
	  NULL },
	{ "certificates name listed twice", LX("certificates = a default a\n") CERTS_AB, 0,
	  "t:8: certificates: 'a' is listed twice\n", 1, NULL },
	{ "certificates default listed twice", LX("certificates = default:default\n"), 0,
	  "t:8: certificates: 'default' is listed twice\n", 1, NULL },
	{ "certificates only separators", LX("certificates = ,\n"), 0,
	  "t:8: certificates: includes no certificate\n", 1, NULL },
	{ "certificates empty", LX("certificates =\n"), 0, "t:8: certificates: empty value\n", 1,
	  NULL },
	{ "client_certificate optional", LX("client_certificate = optional\n"
	  "client_ca = /etc/moat/ca.pem\n"), 1, NULL, 0, check_client_optional },
	{ "client_certificate required, ca first", LX("client_ca = /ca.pem\n"
	  "client_certificate = required\n"), 1, NULL, 0, check_client_required },
	{ "client_ca with none is accepted", LX("client_certificate = none\nclient_ca = /ca.pem\n"),
	  1, NULL, 0, check_client_none_with_ca },
	{ "client_certificate none", LX("client_certificate = none\n"), 1, NULL, 0,
	  check_client_none },
	{ "client_certificate required without client_ca",
	  LX("client_certificate = required\n"), 0,
	  "t:8: [listener x] client_certificate = required needs client_ca, the CA certificates "
	  "that client certificates must chain to\n", 1, NULL },
	{ "client_certificate optional without client_ca",
	  LX("client_certificate = optional\n"), 0,
	  "t:8: [listener x] client_certificate = optional needs client_ca", 1, NULL },
	{ "client_certificate unknown", LX("client_certificate = yes\n"), 0,
	  "t:8: client_certificate: 'yes' is not one of none, optional, required\n", 1, NULL },

	/* tls = starttls and transparent */
	{ "starttls with transparent", LX("tls = starttls\ntransparent = yes\n"), 0,
	  "t:9: [listener x] transparent = yes needs tls = implicit: moat must answer STARTTLS "
	  "itself\n", 1, NULL },
	{ "transparent before starttls", LX("transparent = yes\ntls = starttls\n"), 0,
	  "t:8: [listener x] transparent = yes needs tls = implicit", 1, NULL },
	{ "starttls with transparent = no", LX("tls = starttls\ntransparent = no\n"), 1, NULL, 0,
	  check_starttls_opaque },
	{ "implicit with transparent", LX("transparent = yes\n"), 1, NULL, 0,
	  check_implicit_transparent },

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

/* Problems with the TLS options, certificates and listeners' TLS keys
 * come out sorted by line like the rest, whichever pass found them. */
static void test_tls_errors_in_line_order(void **state)
{
	static const char text[] =
		"[listener a]\n"                    /* 1 */
		"address = *:993\n"                 /* 2 */
		"protocol = imap\n"                 /* 3 */
		"backend = 127.0.0.1:143\n"         /* 4 */
		"certificates = rsa, lost\n"        /* 5 */
		"client_certificate = required\n"   /* 6 */
		"tls = starttls\n"                  /* 7 */
		"transparent = yes\n"               /* 8 */
		"[tls]\n"                           /* 9 */
		"certificate = /c\n"                /* 10 */
		"key = /k\n"                        /* 11 */
		"tls13_ciphers = TLS_AES_128_CCM_SHA256\n"  /* 12 */
		"ticket_lifetime = 8d\n"            /* 13 */
		"[certificate rsa]\n"               /* 14 */
		"certificate = /r\n"                /* 15 */
		"[certificate gone]\n"              /* 16 */
		"[certificate gone]\n"              /* 17 */
		"key = /g\n";                       /* 18 */
	static const char want[] =
		"t:5: certificates: no [certificate lost] section (and 'default' is [tls]'s)\n"
		"t:6: [listener a] client_certificate = required needs client_ca, the CA "
		"certificates that client certificates must chain to\n"
		"t:8: [listener a] transparent = yes needs tls = implicit: moat must answer "
		"STARTTLS itself\n"
		"t:12: tls13_ciphers: 'TLS_AES_128_CCM_SHA256' includes 'TLS_AES_128_CCM_SHA256', "
		"not a cipher suite moat offers (it offers: TLS_AES_128_GCM_SHA256 "
		"TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256)\n"
		"t:13: ticket_lifetime: '8d' is too long (max 604800000ms)\n"
		"t:14: [certificate rsa] key is required\n"
		"t:16: [certificate gone] certificate is required\n"
		"t:16: [certificate gone] key is required\n"
		"t:17: duplicate section [certificate gone] (first at line 16)\n";
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

/* ---- cfg_net_contains ---- */

struct net_row {
	const char *blocks;   /* limits_exempt value; NULL: the default */
	const char *addr;     /* a client address, IPv4 or IPv6 */
	int want;
};

static const struct net_row net_rows[] = {
	/* /0 takes its whole family, and IPv4-mapped addresses for IPv4 */
	{ "0.0.0.0/0", "0.0.0.0", 1 },
	{ "0.0.0.0/0", "255.255.255.255", 1 },
	{ "0.0.0.0/0", "::ffff:8.8.8.8", 1 },
	{ "0.0.0.0/0", "::1", 0 },
	{ "0.0.0.0/0", "::", 0 },
	{ "1.2.3.4/0", "9.9.9.9", 1 },
	{ "::/0", "2001:db8::1", 1 },
	{ "::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1 },
	{ "::/0", "::ffff:10.0.0.1", 1 },
	{ "::/0", "10.0.0.1", 0 },
	/* /32 and no prefix: one IPv4 address */
	{ "192.0.2.7/32", "192.0.2.7", 1 },
	{ "192.0.2.7/32", "192.0.2.6", 0 },
	{ "192.0.2.7/32", "192.0.2.8", 0 },
	{ "192.0.2.7/32", "::ffff:192.0.2.7", 1 },
	{ "192.0.2.7/32", "::ffff:192.0.2.6", 0 },
	{ "192.0.2.7", "192.0.2.7", 1 },
	{ "192.0.2.7", "192.0.3.7", 0 },
	/* IPv4 prefixes on and off byte boundaries */
	{ "10.0.0.0/8", "10.255.255.255", 1 },
	{ "10.0.0.0/8", "11.0.0.0", 0 },
	{ "10.0.0.0/8", "9.255.255.255", 0 },
	{ "10.0.0.1/8", "10.9.9.9", 1 },
	{ "192.168.0.0/23", "192.168.1.255", 1 },
	{ "192.168.0.0/23", "192.168.2.0", 0 },
	{ "10.0.0.0/31", "10.0.0.1", 1 },
	{ "10.0.0.0/31", "10.0.0.2", 0 },
	{ "128.0.0.0/1", "255.0.0.1", 1 },
	{ "128.0.0.0/1", "127.255.255.255", 0 },
	/* /128 and no prefix: one IPv6 address */
	{ "2001:db8::1/128", "2001:db8::1", 1 },
	{ "2001:db8::1/128", "2001:db8::", 0 },
	{ "2001:db8::1/128", "2001:db8::2", 0 },
	{ "2001:db8::1", "2001:db8::1", 1 },
	{ "2001:db8::1", "2001:db8:0:0:0:0:0:1", 1 },
	{ "2001:db8::1", "2001:db8::1:1", 0 },
	/* /127, /125, /33, /32, /10 */
	{ "2001:db8::/127", "2001:db8::", 1 },
	{ "2001:db8::/127", "2001:db8::1", 1 },
	{ "2001:db8::/127", "2001:db8::2", 0 },
	{ "2001:db8::/125", "2001:db8::7", 1 },
	{ "2001:db8::/125", "2001:db8::8", 0 },
	{ "2001:db8::/33", "2001:db8:7fff:ffff::1", 1 },
	{ "2001:db8::/33", "2001:db8:8000::", 0 },
	{ "2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1 },
	{ "2001:db8::/32", "2001:db9::", 0 },
	{ "2001:db8::/32", "2001:db7:ffff::", 0 },
	{ "fe80::/10", "febf::1", 1 },
	{ "fe80::/10", "fec0::1", 0 },
	/* IPv4-mapped addresses match IPv4 blocks; other families never */
	{ "127.0.0.0/8", "::ffff:127.0.0.1", 1 },
	{ "127.0.0.0/8", "::ffff:127.255.255.255", 1 },
	{ "127.0.0.0/8", "::ffff:128.0.0.1", 0 },
	{ "127.0.0.0/8", "::127.0.0.1", 0 },
	{ "127.0.0.0/8", "64:ff9b::127.0.0.1", 0 },
	{ "127.0.0.0/8", "::1", 0 },
	{ "::1", "127.0.0.1", 0 },
	{ "::1", "::1", 1 },
	{ "::1", "::ffff:0.0.0.1", 0 },
	{ "::ffff:0:0/96", "::ffff:1.2.3.4", 1 },
	{ "::ffff:10.0.0.0/104", "::ffff:10.1.2.3", 1 },
	{ "::ffff:10.0.0.0/104", "::ffff:11.1.2.3", 0 },
	/* lists: any block will do */
	{ "10.0.0.0/8, 2001:db8::/32 192.0.2.1", "192.0.2.1", 1 },
	{ "10.0.0.0/8, 2001:db8::/32 192.0.2.1", "2001:db8::5", 1 },
	{ "10.0.0.0/8, 2001:db8::/32 192.0.2.1", "::ffff:10.1.1.1", 1 },
	{ "10.0.0.0/8, 2001:db8::/32 192.0.2.1", "192.0.2.2", 0 },
	{ "10.0.0.0/8, 2001:db8::/32 192.0.2.1", "2001:db9::5", 0 },
	{ "none", "127.0.0.1", 0 },
	{ "none", "::1", 0 },
	/* the default: 127.0.0.0/8 and ::1 */
	{ NULL, "127.0.0.1", 1 },
	{ NULL, "127.1.2.3", 1 },
	{ NULL, "::1", 1 },
	{ NULL, "::ffff:127.0.0.1", 1 },
	{ NULL, "128.0.0.1", 0 },
	{ NULL, "126.255.255.255", 0 },
	{ NULL, "::2", 0 },
	{ NULL, "::", 0 },
	{ NULL, "192.0.2.1", 0 },
};

/* A sockaddr_in or sockaddr_in6 for a numeric address. */
static void to_sockaddr(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, s, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons(50000);
		return;
	}
	if (inet_pton(AF_INET6, s, &v6->sin6_addr) != 1)
		fail_msg("test row: '%s' is not an address", s);
	v6->sin6_family = AF_INET6;
	v6->sin6_port = htons(50000);
}

/* Each row: the blocks through limits_exempt, the address through
 * cfg_net_contains(); every mismatch is reported, then the test fails. */
static void test_net_contains(void **state)
{
	size_t bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof net_rows / sizeof *net_rows; i++) {
		const struct net_row *r = &net_rows[i];
		struct sockaddr_storage ss;
		char text[512], *err = NULL;
		struct cfg *c = NULL;
		int got;

		if (r->blocks)
			snprintf(text, sizeof text, MIN "[moat]\nlimits_exempt = %s\n", r->blocks);
		else
			snprintf(text, sizeof text, MIN);
		if (cfg_parse_string(text, "t", &c, &err) != 0)
			fail_msg("limits_exempt = %s: %s", r->blocks, err ? err : "?");
		to_sockaddr(r->addr, &ss);
		got = cfg_net_contains(&c->limits_exempt, (const struct sockaddr *)&ss);
		if (got != r->want) {
			print_error("row %zu: %s in [%s]: got %d, want %d\n", i, r->addr,
			            r->blocks ? r->blocks : "default", got, r->want);
			bad++;
		}
		cfg_free(c);
	}
	assert_int_equal(bad, 0);
}

/* Only AF_INET and AF_INET6 addresses can be in a block. */
static void test_net_contains_other_family(void **state)
{
	struct sockaddr_storage ss;
	struct cfg *c = NULL;
	char *err = NULL;

	(void)state;
	assert_int_equal(cfg_parse_string(MIN "[moat]\nlimits_exempt = 0.0.0.0/0 ::/0\n", "t", &c,
	                                  &err), 0);
	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX;
	assert_int_equal(cfg_net_contains(&c->limits_exempt, (const struct sockaddr *)&ss), 0);
	ss.ss_family = AF_UNSPEC;
	assert_int_equal(cfg_net_contains(&c->limits_exempt, (const struct sockaddr *)&ss), 0);
	to_sockaddr("10.0.0.1", &ss);
	assert_int_equal(cfg_net_contains(&c->limits_exempt, (const struct sockaddr *)&ss), 1);
	cfg_free(c);
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
 * its [tls] values must be exactly the defaults a minimal [tls] gets, and
 * its [listener imaps] / [listener pop3s] values those a minimal listener
 * gets. */
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
	assert_int_equal(ex->log_format, min->log_format);
	assert_int_equal(ex->log_target, min->log_target);
	assert_int_equal(ex->syslog_facility, min->syslog_facility);
	assert_int_equal(ex->max_connections, min->max_connections);
	assert_int_equal(ex->max_connections_per_ip, min->max_connections_per_ip);
	assert_int_equal(ex->connection_rate_per_ip.count, min->connection_rate_per_ip.count);
	assert_int_equal(ex->connection_rate_per_ip.window_ms, min->connection_rate_per_ip.window_ms);
	assert_int_equal(ex->auth_fail_limit.count, min->auth_fail_limit.count);
	assert_int_equal(ex->auth_fail_limit.window_ms, min->auth_fail_limit.window_ms);
	assert_int_equal(ex->auth_block_ms, min->auth_block_ms);
	assert_int_equal(ex->ipv6_prefix, min->ipv6_prefix);
	assert_memory_equal(&ex->limits_exempt, &min->limits_exempt, sizeof ex->limits_exempt);
	assert_int_equal(ex->shutdown_grace_ms, min->shutdown_grace_ms);
	assert_int_equal(ex->allow_root, min->allow_root);
	assert_null(ex->user);
	assert_null(ex->pid_file);
	assert_int_equal(ex->metrics_address.sa.ss_family, 0);
	assert_int_equal(ex->health_address.sa.ss_family, 0);
	assert_int_equal(ex->drain_delay_ms, min->drain_delay_ms);
	assert_null(ex->route_map);
	assert_null(ex->ticket_key_file);
	/* its [backend store1] is commented out: every backend is inline */
	for (size_t i = 0; i < ex->nbackends; i++)
		assert_true(ex->backends[i].is_inline);
	assert_int_equal(ex->min_tls13, min->min_tls13);
	assert_ids(ex->tls12_ciphers, min->tls12_ciphers);
	assert_ids(ex->tls13_ciphers, min->tls13_ciphers);
	assert_ids(ex->groups, min->groups);
	assert_int_equal(ex->prefer_server_ciphers, min->prefer_server_ciphers);
	assert_int_equal(ex->session_tickets, min->session_tickets);
	assert_int_equal(ex->ticket_lifetime_ms, min->ticket_lifetime_ms);
	assert_int_equal(ex->key_permissions, min->key_permissions);
	assert_int_equal(ex->expiry_warning_days, min->expiry_warning_days);
	/* its [certificate rsa] is commented out */
	assert_int_equal(ex->ncerts, 1);
	assert_string_equal(ex->certs[0].name, "default");
	for (size_t i = 0; i < ex->nlisteners; i++) {
		assert_int_equal(ex->listeners[i].client_certificate,
		                 min->listeners[0].client_certificate);
		assert_null(ex->listeners[i].client_ca);
		assert_int_equal(ex->listeners[i].ncerts, min->listeners[0].ncerts);
		assert_int_equal(ex->listeners[i].cert_idx[0], 0);
	}
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
		assert_int_equal(a->balance, b->balance);
		assert_int_equal(a->insecure, b->insecure);
		assert_int_equal(a->proxy_protocol, b->proxy_protocol);
		assert_memory_equal(&a->proxy_trusted, &b->proxy_trusted, sizeof a->proxy_trusted);
	}
	cfg_free(ex);
	cfg_free(min);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors_in_line_order),
		cmocka_unit_test(test_tls_errors_in_line_order),
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
		cmocka_unit_test(test_net_contains),
		cmocka_unit_test(test_net_contains_other_family),
	};
	int failed = 0;

	failed += run_rows("cfg_parse_string", ROWS(rows), run_row, row_label);
	failed += run_rows("cfg_parse_duration", ROWS(duration_rows), run_duration, num_label);
	failed += run_rows("cfg_parse_size", ROWS(size_rows), run_size, num_label);
	failed += run_rows("cfg_parse_addr", ROWS(addr_rows), run_addr, addr_label);
	failed += cmocka_run_group_tests_name("cfg", tests, NULL, NULL);
	return failed ? 1 : 0;
}
