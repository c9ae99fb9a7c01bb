/*
 * tls module: moat's server contexts against an mbedTLS client, joined in
 * memory (no sockets). Certificates come from scripts/certs.sh and
 * scripts/mkcert.sh in a temporary folder:
 *   default  ECDSA P-256, DNS:localhost (certs.sh)
 *   rsa      RSA 2048, DNS:localhost
 *   wild     ECDSA, DNS:*.example.test
 *   org      ECDSA, no subjectAltName, CN=mail.example.org
 *   alice    client certificate from the same CA
 *   mallory  client certificate from another CA
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <mbedtls/platform_time.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "tls.h"

static char dir[] = "/tmp/moat-test-tls-XXXXXX";
static char ca[256], other_key[256];

enum { C_DEFAULT, C_RSA, C_WILD, C_ORG, NCERTS };
static const char *const cert_names[NCERTS] = { "fullchain", "rsa", "wild", "org" };
static tls_cert *certs[NCERTS];

/* A byte pipe in one direction. */
struct pipe {
	uint8_t buf[1 << 20];
	size_t len;
};

/* What the in-memory client does. */
struct cli_opts {
	int ver;                      /* 12 or 13; 0 = both */
	const char *sni;              /* NULL: none */
	const char *alpn;             /* NULL: none */
	const uint16_t *sig_algs;     /* NULL: mbedTLS's defaults */
	const int *suites;            /* NULL: mbedTLS's defaults */
	const uint16_t *groups;       /* NULL: mbedTLS's defaults */
	const char *cert;             /* client certificate "alice" / "mallory" */
	const mbedtls_ssl_session *resume;
};

/* What the server is: policy and listener options. */
struct srv_opts {
	struct tls_policy pol;
	struct tls_listener_opts lo;
	tls_cert *list[NCERTS];
};

struct pair {
	tls_server *srv;
	tls_conn *sc;
	mbedtls_ssl_context cli;
	mbedtls_ssl_config cconf;
	mbedtls_x509_crt cacert, clicert;
	mbedtls_pk_context clikey;
	const char *alpn[3];
	struct pipe to_srv, to_cli;
	size_t srv_chunk;             /* bytes lent to the server per call */
};

static int srv_send(void *ctx, const uint8_t *buf, size_t len)
{
	struct pair *p = ctx;

	assert_true(p->to_cli.len + len <= sizeof p->to_cli.buf);
	memcpy(p->to_cli.buf + p->to_cli.len, buf, len);
	p->to_cli.len += len;
	return 0;
}

static int cli_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct pair *p = ctx;

	assert_true(p->to_srv.len + len <= sizeof p->to_srv.buf);
	memcpy(p->to_srv.buf + p->to_srv.len, buf, len);
	p->to_srv.len += len;
	return (int)len;
}

static int cli_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct pair *p = ctx;
	size_t n = len < p->to_cli.len ? len : p->to_cli.len;

	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	memcpy(buf, p->to_cli.buf, n);
	memmove(p->to_cli.buf, p->to_cli.buf + n, p->to_cli.len - n);
	p->to_cli.len -= n;
	return (int)n;
}

/* Lends what the client sent to the server, srv_chunk bytes at a time,
 * running op after each loan; keeps what the server did not consume. */
static int feed_server(struct pair *p, int (*op)(struct pair *, uint8_t *, size_t),
                       uint8_t *out, size_t cap)
{
	int rc = TLS_AGAIN;

	while (p->to_srv.len > 0) {
		size_t n = p->srv_chunk && p->srv_chunk < p->to_srv.len ? p->srv_chunk : p->to_srv.len;
		const uint8_t *rest;
		size_t left;

		tls_conn_input(p->sc, p->to_srv.buf, n);
		rc = op(p, out, cap);
		left = tls_conn_unread(p->sc, &rest);
		/* drop what was consumed, keep the rest in order */
		memmove(p->to_srv.buf, p->to_srv.buf + (n - left), p->to_srv.len - (n - left));
		p->to_srv.len -= n - left;
		if (rc != TLS_AGAIN)
			break;
	}
	return rc;
}

static int op_handshake(struct pair *p, uint8_t *out, size_t cap)
{
	(void)out;
	(void)cap;
	return tls_handshake(p->sc);
}

static int op_read(struct pair *p, uint8_t *out, size_t cap)
{
	return (int)tls_read(p->sc, out, cap);
}

static void path_of(char *buf, size_t size, const char *name, const char *ext)
{
	snprintf(buf, size, "%s/%s.%s", dir, name, ext);
}

/* The default server: every certificate, default policy, IMAP, tickets. */
static void srv_defaults(struct srv_opts *o, tls_tickets *t)
{
	memset(o, 0, sizeof *o);
	memcpy(o->pol.tls12_suites, tls_default_tls12_suites, 7 * sizeof(uint16_t));
	memcpy(o->pol.tls13_suites, tls_default_tls13_suites, 4 * sizeof(uint16_t));
	memcpy(o->pol.groups, tls_default_groups, 4 * sizeof(uint16_t));
	o->pol.prefer_server = 1;
	for (int i = 0; i < NCERTS; i++)
		o->list[i] = certs[i];
	o->lo.certs = o->list;
	o->lo.ncerts = NCERTS;
	o->lo.alpn = "imap";
	o->lo.tickets = t;
}

static void client_init(struct pair *p, const struct cli_opts *c)
{
	mbedtls_ssl_protocol_version lo = MBEDTLS_SSL_VERSION_TLS1_2, hi = MBEDTLS_SSL_VERSION_TLS1_3;
	char cp[300], kp[300];

	if (c->ver == 12)
		hi = MBEDTLS_SSL_VERSION_TLS1_2;
	if (c->ver == 13)
		lo = MBEDTLS_SSL_VERSION_TLS1_3;
	mbedtls_x509_crt_init(&p->cacert);
	mbedtls_x509_crt_init(&p->clicert);
	mbedtls_pk_init(&p->clikey);
	assert_int_equal(mbedtls_x509_crt_parse_file(&p->cacert, ca), 0);
	mbedtls_ssl_config_init(&p->cconf);
	assert_int_equal(mbedtls_ssl_config_defaults(&p->cconf, MBEDTLS_SSL_IS_CLIENT,
	                 MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT), 0);
	mbedtls_ssl_conf_rng(&p->cconf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	/* the test checks which certificate came, not that it verifies for a name */
	mbedtls_ssl_conf_authmode(&p->cconf, MBEDTLS_SSL_VERIFY_OPTIONAL);
	mbedtls_ssl_conf_ca_chain(&p->cconf, &p->cacert, NULL);
	mbedtls_ssl_conf_min_tls_version(&p->cconf, lo);
	mbedtls_ssl_conf_max_tls_version(&p->cconf, hi);
	mbedtls_ssl_conf_session_tickets(&p->cconf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
	mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
	        &p->cconf, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
	if (c->sig_algs)
		mbedtls_ssl_conf_sig_algs(&p->cconf, c->sig_algs);
	if (c->suites)
		mbedtls_ssl_conf_ciphersuites(&p->cconf, c->suites);
	if (c->groups)
		mbedtls_ssl_conf_groups(&p->cconf, c->groups);
	if (c->alpn) {
		p->alpn[0] = c->alpn;
		p->alpn[1] = NULL;
		assert_int_equal(mbedtls_ssl_conf_alpn_protocols(&p->cconf, p->alpn), 0);
	}
	if (c->cert) {
		path_of(cp, sizeof cp, c->cert, "pem");
		path_of(kp, sizeof kp, c->cert, "key");
		assert_int_equal(mbedtls_x509_crt_parse_file(&p->clicert, cp), 0);
		assert_int_equal(mbedtls_pk_parse_keyfile(&p->clikey, kp, NULL, mbedtls_psa_get_random,
		                                          MBEDTLS_PSA_RANDOM_STATE), 0);
		assert_int_equal(mbedtls_ssl_conf_own_cert(&p->cconf, &p->clicert, &p->clikey), 0);
	}
	mbedtls_ssl_init(&p->cli);
	assert_int_equal(mbedtls_ssl_setup(&p->cli, &p->cconf), 0);
	assert_int_equal(mbedtls_ssl_set_hostname(&p->cli, c->sni), 0);
	if (c->resume)
		assert_int_equal(mbedtls_ssl_set_session(&p->cli, c->resume), 0);
	mbedtls_ssl_set_bio(&p->cli, p, cli_send, cli_recv, NULL);
}

static void pair_init_with(struct pair *p, const struct srv_opts *so, const struct cli_opts *c)
{
	char err[256];

	memset(p, 0, sizeof *p);
	if (tls_server_new(&p->srv, &so->pol, &so->lo, err, sizeof err) != 0)
		fail_msg("tls_server_new: %s", err);
	p->sc = tls_conn_new(p->srv, srv_send, p);
	assert_non_null(p->sc);
	client_init(p, c);
}

static void pair_init(struct pair *p, int ver)
{
	struct srv_opts so;
	struct cli_opts c = { .ver = ver, .sni = "localhost" };

	srv_defaults(&so, NULL);
	pair_init_with(p, &so, &c);
}

static void pair_free(struct pair *p)
{
	tls_conn_free(p->sc);
	tls_server_free(p->srv);
	mbedtls_ssl_free(&p->cli);
	mbedtls_ssl_config_free(&p->cconf);
	mbedtls_x509_crt_free(&p->cacert);
	mbedtls_x509_crt_free(&p->clicert);
	mbedtls_pk_free(&p->clikey);
}

/* Runs both handshakes to completion; returns the server's last result
 * (or the client's error when the client gives up first). */
static int pair_handshake(struct pair *p)
{
	int crc = 1, src = TLS_AGAIN;

	for (int round = 0; round < 50; round++) {
		if (crc != 0) {
			crc = mbedtls_ssl_handshake(&p->cli);
			if (crc != 0 && crc != MBEDTLS_ERR_SSL_WANT_READ)
				return src < 0 && src != TLS_AGAIN ? src : crc;
		}
		if (src == TLS_AGAIN)
			src = feed_server(p, op_handshake, NULL, 0);
		if (src < 0 && src != TLS_AGAIN)
			return src;
		if (crc == 0 && src == 0)
			return 0;
	}
	return -1;
}

/* The client sends msg; the server decrypts exactly msg. */
static void client_to_server(struct pair *p, const uint8_t *msg, size_t len)
{
	static uint8_t got[1 << 20];
	size_t have = 0;

	for (size_t off = 0; off < len;) {
		int w = mbedtls_ssl_write(&p->cli, msg + off, len - off);
		assert_true(w > 0);
		off += (size_t)w;
	}
	while (have < len) {
		int r = feed_server(p, op_read, got + have, sizeof got - have);
		if (r == TLS_AGAIN)
			break;
		assert_true(r > 0);
		have += (size_t)r;           /* more records may remain in to_srv */
	}
	assert_int_equal(have, len);
	assert_memory_equal(got, msg, len);
}

/* The server sends msg; the client decrypts exactly msg (and takes any
 * session ticket that came first). */
static void server_to_client(struct pair *p, const uint8_t *msg, size_t len)
{
	static uint8_t got[1 << 20];
	size_t have = 0;

	assert_int_equal(tls_write(p->sc, msg, len), 0);
	while (have < len) {
		int r = mbedtls_ssl_read(&p->cli, got + have, sizeof got - have);
		/* a TLS 1.3 ticket: WANT_READ first, then RECEIVED_NEW_SESSION_TICKET */
		if (r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET ||
		    (r == MBEDTLS_ERR_SSL_WANT_READ && p->to_cli.len > 0))
			continue;
		if (r <= 0)
			fail_msg("client read: -0x%04x", (unsigned)-r);
		have += (size_t)r;
	}
	assert_int_equal(have, len);
	assert_memory_equal(got, msg, len);
}

/* The CN of the certificate the server presented. */
static const char *served_cn(struct pair *p)
{
	static char dn[256];
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&p->cli);
	const char *cn;

	assert_non_null(peer);
	assert_true(mbedtls_x509_dn_gets(dn, sizeof dn, &peer->subject) > 0);
	cn = strstr(dn, "CN=");
	assert_non_null(cn);
	return cn + 3;
}

static void handshake_and_relay(int ver, size_t chunk, const char *want_version)
{
	static struct pair p;
	static uint8_t big[200000];

	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7 + (i >> 9));
	pair_init(&p, ver);
	p.srv_chunk = chunk;
	assert_int_equal(pair_handshake(&p), 0);
	assert_string_equal(tls_version(p.sc), want_version);
	/* AEAD only: AES-GCM or ChaCha20-Poly1305 */
	assert_true(strstr(tls_cipher(p.sc), "GCM") || strstr(tls_cipher(p.sc), "CHACHA20_POLY1305"));
	assert_int_equal(tls_resumed(p.sc), 0);
	assert_string_equal(tls_sni(p.sc), "localhost");
	assert_string_equal(tls_alpn(p.sc), "");
	assert_string_equal(tls_peer_subject(p.sc), "");
	client_to_server(&p, (const uint8_t *)"a1 CAPABILITY\r\n", 15);
	client_to_server(&p, big, 40000);
	server_to_client(&p, (const uint8_t *)"* OK hi\r\n", 9);
	server_to_client(&p, big, sizeof big);
	/* close_notify from the client reads as TLS_EOF */
	assert_int_equal(mbedtls_ssl_close_notify(&p.cli), 0);
	assert_int_equal(feed_server(&p, op_read, big, sizeof big), TLS_EOF);
	pair_free(&p);
}

static void test_tls13(void **state)
{
	(void)state;
	handshake_and_relay(13, 0, "TLSv1.3");
}

static void test_tls12(void **state)
{
	(void)state;
	handshake_and_relay(12, 0, "TLSv1.2");
}

/* Every read split into single bytes: the loan must resume anywhere. */
static void test_tls13_bytewise(void **state)
{
	(void)state;
	handshake_and_relay(13, 1, "TLSv1.3");
}

static void test_tls12_odd_chunks(void **state)
{
	(void)state;
	handshake_and_relay(12, 7, "TLSv1.2");
}

/* Idle connections give their record buffers back between records and
 * get them back on the next call, in both directions, with the record
 * counters intact (a lost counter fails the next record's MAC). A record
 * half read keeps them. */
static void rest_between_records(int ver)
{
	static struct pair p;
	static uint8_t msg[20000], got[32];
	const uint8_t *rest;

	for (size_t i = 0; i < sizeof msg; i++)
		msg[i] = (uint8_t)(i * 13 + 7);
	pair_init(&p, ver);
	assert_int_equal(pair_handshake(&p), 0);
	server_to_client(&p, (const uint8_t *)"* OK\r\n", 6);   /* takes a 1.3 ticket */
	for (int round = 0; round < 20; round++) {
		size_t n = (size_t)(round * 997) % sizeof msg + 1;
		if (tls_conn_rest(p.sc) != 1)
			fail_msg("round %d: buffers not released", round);
		assert_int_equal(tls_conn_resting(p.sc), 1);
		assert_int_equal(tls_conn_rest(p.sc), 0);       /* released already */
		client_to_server(&p, msg, n);
		assert_int_equal(tls_conn_resting(p.sc), 0);
		assert_int_equal(tls_conn_rest(p.sc), 1);
		server_to_client(&p, msg, n);
	}
	/* half a record: busy, buffers kept */
	assert_int_equal(mbedtls_ssl_write(&p.cli, (const uint8_t *)"a NOOP\r\n", 8), 8);
	tls_conn_input(p.sc, p.to_srv.buf, 10);
	assert_int_equal(tls_read(p.sc, got, sizeof got), TLS_AGAIN);
	assert_int_equal(tls_conn_unread(p.sc, &rest), 0);
	assert_int_equal(tls_conn_rest(p.sc), 0);
	assert_int_equal(tls_conn_resting(p.sc), 0);
	tls_conn_input(p.sc, p.to_srv.buf + 10, p.to_srv.len - 10);
	assert_int_equal(tls_read(p.sc, got, sizeof got), 8);
	assert_memory_equal(got, "a NOOP\r\n", 8);
	p.to_srv.len = 0;
	assert_int_equal(tls_conn_rest(p.sc), 1);
	/* close_notify from a resting server still goes out */
	tls_close_notify(p.sc);
	assert_int_equal(mbedtls_ssl_read(&p.cli, got, sizeof got), MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY);
	pair_free(&p);
}

static void test_rest_tls13(void **state)
{
	(void)state;
	if (!tls_conn_rest_supported())
		skip();
	rest_between_records(13);
}

static void test_rest_tls12(void **state)
{
	(void)state;
	if (!tls_conn_rest_supported())
		skip();
	rest_between_records(12);
}

/* Garbage instead of a ClientHello is a fatal error, not TLS_AGAIN. */
static void test_garbage_hello(void **state)
{
	static const uint8_t junk[] = "a1 LOGIN user pass\r\nGET / HTTP/1.1\r\n\r\n";
	struct srv_opts so;
	tls_server *srv;
	tls_conn *c;
	char err[256];
	int rc;

	(void)state;
	srv_defaults(&so, NULL);
	assert_int_equal(tls_server_new(&srv, &so.pol, &so.lo, err, sizeof err), 0);
	c = tls_conn_new(srv, srv_send, NULL);
	assert_non_null(c);
	tls_conn_input(c, junk, sizeof junk - 1);
	rc = tls_handshake(c);
	assert_true(rc < 0 && rc != TLS_AGAIN);
	assert_non_null(tls_strerror(rc, err, sizeof err));
	assert_true(strlen(err) > 0);
	tls_conn_free(c);
	tls_server_free(srv);
}

/* ---- certificates ---- */

static void test_key_mismatch(void **state)
{
	tls_cert *c = (tls_cert *)1;
	char err[512], cp[300];

	(void)state;
	path_of(cp, sizeof cp, "fullchain", "pem");
	assert_int_equal(tls_cert_load(&c, cp, other_key, err, sizeof err), TLS_BAD_KEY);
	assert_null(c);
	assert_non_null(strstr(err, "does not match"));
}

static void test_missing_files(void **state)
{
	tls_cert *c;
	char err[512], cp[300], kp[300];

	(void)state;
	path_of(cp, sizeof cp, "fullchain", "pem");
	path_of(kp, sizeof kp, "privkey", "pem");
	assert_int_equal(tls_cert_load(&c, "/nonexistent/cert.pem", kp, err, sizeof err),
	                 TLS_BAD_CERT);
	assert_non_null(strstr(err, "/nonexistent/cert.pem"));
	assert_int_equal(tls_cert_load(&c, cp, "/nonexistent/key.pem", err, sizeof err),
	                 TLS_BAD_KEY);
	assert_non_null(strstr(err, "/nonexistent/key.pem"));
	/* a key file where the certificate should be */
	assert_int_equal(tls_cert_load(&c, kp, kp, err, sizeof err), TLS_BAD_CERT);
	assert_non_null(strstr(err, "certificate"));
	/* a certificate where the key should be */
	assert_int_equal(tls_cert_load(&c, cp, cp, err, sizeof err), TLS_BAD_KEY);
	/* a directory is not a key file */
	assert_int_equal(tls_cert_load(&c, cp, dir, err, sizeof err), TLS_BAD_KEY);
	assert_non_null(strstr(err, "regular file"));
}

/* What moat reads from each test certificate. */
static void test_cert_info(void **state)
{
	time_t now = time(NULL);
	char cp[300], kp[300], err[300];
	tls_cert *c;

	(void)state;
	assert_string_equal(tls_cert_name(certs[C_DEFAULT], 0), "localhost");
	assert_null(tls_cert_name(certs[C_DEFAULT], 1));
	assert_string_equal(tls_cert_key_type(certs[C_DEFAULT]), "ECDSA P-256");
	assert_string_equal(tls_cert_key_type(certs[C_RSA]), "RSA 2048");
	assert_string_equal(tls_cert_name(certs[C_WILD], 0), "*.example.test");
	/* no subjectAltName: the CN stands in */
	assert_string_equal(tls_cert_name(certs[C_ORG], 0), "mail.example.org");
	assert_non_null(strstr(tls_cert_subject(certs[C_ORG]), "CN=mail.example.org"));
	/* certs.sh: 825 days; mkcert.sh here: 30 days (rsa), 2 days (wild) */
	assert_true(tls_cert_not_after(certs[C_DEFAULT]) > now + 824L * 86400);
	assert_true(tls_cert_not_after(certs[C_DEFAULT]) <= now + 825L * 86400);
	assert_true(tls_cert_not_after(certs[C_WILD]) > now + 86400);
	assert_true(tls_cert_not_after(certs[C_WILD]) <= now + 2 * 86400);
	assert_int_equal(tls_cert_key_mode(certs[C_DEFAULT]), 0600);
	/* the mode is read from the file as loaded */
	path_of(cp, sizeof cp, "rsa", "pem");
	path_of(kp, sizeof kp, "rsa", "key");
	assert_int_equal(chmod(kp, 0644), 0);
	assert_int_equal(tls_cert_load(&c, cp, kp, err, sizeof err), 0);
	assert_int_equal(tls_cert_key_mode(c), 0644);
	assert_true(tls_cert_covers(c, "LocalHost") == 2);
	tls_cert_free(c);
	assert_int_equal(chmod(kp, 0600), 0);
}

struct name_row {
	const char *name, *host;
	int want;
};

static void test_name_matching(void **state)
{
	static const struct name_row rows[] = {
		{ "mail.example.org", "mail.example.org", 2 },
		{ "mail.example.org", "MAIL.Example.ORG", 2 },
		{ "mail.example.org", "example.org", 0 },
		{ "mail.example.org", "imap.mail.example.org", 0 },
		{ "*.example.test", "a.example.test", 1 },
		{ "*.example.test", "A.EXAMPLE.TEST", 1 },
		{ "*.example.test", "example.test", 0 },      /* not the bare domain */
		{ "*.example.test", "b.a.example.test", 0 },  /* one label only */
		{ "*.example.test", ".example.test", 0 },     /* an empty label */
		{ "*.example.test", "a.example.testx", 0 },
		{ "*.example.test", "*.example.test", 2 },    /* literally the same */
		{ "*.", "a.", 0 },
		{ "*", "anything", 0 },
		{ "a*.example.test", "ab.example.test", 0 },  /* no partial wildcards */
		{ "mail.*.org", "mail.example.org", 0 },
		{ "", "a", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
		int got = tls_name_matches(rows[i].name, rows[i].host);
		if (got != rows[i].want)
			fail_msg("'%s' vs '%s': got %d, want %d", rows[i].name, rows[i].host, got,
			         rows[i].want);
	}
}

/* ---- certificate selection ---- */

struct sni_row {
	const char *sni;              /* NULL: no SNI extension */
	const char *want_cn;
	const char *want_sni;         /* what tls_sni() reports */
};

/* SNI picks the certificate: exact names, then wildcards, then the
 * default (the first certificate of the listener). */
static void test_sni_selection(void **state)
{
	static const struct sni_row rows[] = {
		{ NULL, "localhost", "" },
		{ "localhost", "localhost", "localhost" },
		{ "LOCALHOST", "localhost", "localhost" },
		{ "a.example.test", "*.example.test", "a.example.test" },
		{ "mail.example.org", "mail.example.org", "mail.example.org" },
		{ "unknown.example", "localhost", "unknown.example" },
		{ "b.a.example.test", "localhost", "b.a.example.test" },
		{ "example.test", "localhost", "example.test" },
	};
	struct srv_opts so;
	static struct pair p;

	(void)state;
	srv_defaults(&so, NULL);
	for (int ver = 12; ver <= 13; ver++) {
		for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
			struct cli_opts c = { .ver = ver, .sni = rows[i].sni };
			pair_init_with(&p, &so, &c);
			assert_int_equal(pair_handshake(&p), 0);
			if (strcmp(served_cn(&p), rows[i].want_cn) != 0)
				fail_msg("TLS 1.%d SNI %s: got %s, want %s", ver - 10,
				         rows[i].sni ? rows[i].sni : "(none)", served_cn(&p),
				         rows[i].want_cn);
			assert_string_equal(tls_sni(p.sc), rows[i].want_sni);
			pair_free(&p);
		}
	}
}

/* A listener whose default is another certificate: its first. */
static void test_listener_certificate_set(void **state)
{
	struct srv_opts so;
	static struct pair p;
	struct cli_opts none = { .ver = 13 }, local = { .ver = 13, .sni = "localhost" };

	(void)state;
	srv_defaults(&so, NULL);
	so.list[0] = certs[C_ORG];
	so.list[1] = certs[C_WILD];
	so.lo.ncerts = 2;
	pair_init_with(&p, &so, &none);
	assert_int_equal(pair_handshake(&p), 0);
	assert_string_equal(served_cn(&p), "mail.example.org");
	pair_free(&p);
	/* localhost is not in this set: the default again */
	pair_init_with(&p, &so, &local);
	assert_int_equal(pair_handshake(&p), 0);
	assert_string_equal(served_cn(&p), "mail.example.org");
	pair_free(&p);
}

/* ECDSA and RSA for the same name: ECDSA unless the client cannot use
 * it. */
static void test_ecdsa_and_rsa(void **state)
{
	static const uint16_t rsa_only13[] = { MBEDTLS_TLS1_3_SIG_RSA_PSS_RSAE_SHA256,
	                                       MBEDTLS_TLS1_3_SIG_NONE };
	static const uint16_t rsa_only12[] = { MBEDTLS_TLS1_3_SIG_RSA_PKCS1_SHA256,
	                                       MBEDTLS_TLS1_3_SIG_RSA_PSS_RSAE_SHA256,
	                                       MBEDTLS_TLS1_3_SIG_NONE };
	static const int rsa_suite[] = { MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, 0 };
	struct cli_opts rows[] = {
		{ .ver = 13, .sni = "localhost" },
		{ .ver = 12, .sni = "localhost" },
		{ .ver = 13, .sni = "localhost", .sig_algs = rsa_only13 },
		{ .ver = 12, .sni = "localhost", .suites = rsa_suite, .sig_algs = rsa_only12 },
		{ .ver = 13, .sig_algs = rsa_only13 },  /* no SNI: the default pair */
	};
	static const char *const want[] = { "ECDSA", "ECDSA", "RSA", "RSA", "RSA" };
	struct srv_opts so;
	static struct pair p;

	(void)state;
	srv_defaults(&so, NULL);
	/* RSA listed first: ECDSA still wins when the client can take it */
	so.list[0] = certs[C_RSA];
	so.list[1] = certs[C_DEFAULT];
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
		const mbedtls_x509_crt *peer;
		pair_init_with(&p, &so, &rows[i]);
		assert_int_equal(pair_handshake(&p), 0);
		peer = mbedtls_ssl_get_peer_cert(&p.cli);
		assert_non_null(peer);
		if (strcmp(mbedtls_pk_get_name(&peer->pk), strcmp(want[i], "RSA") == 0 ? "RSA" : "EC") != 0)
			fail_msg("row %zu: got a %s key, want %s", i, mbedtls_pk_get_name(&peer->pk),
			         want[i]);
		pair_free(&p);
	}
}

/* ---- ALPN ---- */

static void test_alpn(void **state)
{
	struct srv_opts so;
	static struct pair p;
	struct cli_opts imap = { .ver = 13, .alpn = "imap" }, pop3 = { .ver = 13, .alpn = "pop3" },
	                pop3_12 = { .ver = 12, .alpn = "pop3" };

	(void)state;
	srv_defaults(&so, NULL);
	pair_init_with(&p, &so, &imap);
	assert_int_equal(pair_handshake(&p), 0);
	assert_string_equal(tls_alpn(p.sc), "imap");
	assert_string_equal(mbedtls_ssl_get_alpn_protocol(&p.cli), "imap");
	pair_free(&p);
	/* a client that wants another protocol is refused (ALPACA) */
	pair_init_with(&p, &so, &pop3);
	assert_int_equal(pair_handshake(&p), MBEDTLS_ERR_SSL_NO_APPLICATION_PROTOCOL);
	pair_free(&p);
	pair_init_with(&p, &so, &pop3_12);
	assert_int_equal(pair_handshake(&p), MBEDTLS_ERR_SSL_NO_APPLICATION_PROTOCOL);
	pair_free(&p);
	/* a POP3 listener takes pop3 */
	so.lo.alpn = "pop3";
	pair_init_with(&p, &so, &pop3);
	assert_int_equal(pair_handshake(&p), 0);
	assert_string_equal(tls_alpn(p.sc), "pop3");
	pair_free(&p);
}

/* ---- resumption ---- */

/* A full handshake with server that leaves the client's session (with its
 * ticket) in *sess, initialised here. */
static void get_ticket(const struct srv_opts *server, int ver, mbedtls_ssl_session *sess)
{
	static struct pair p;
	struct cli_opts c = { .ver = ver, .sni = "localhost" };

	mbedtls_ssl_session_init(sess);
	pair_init_with(&p, server, &c);
	assert_int_equal(pair_handshake(&p), 0);
	assert_int_equal(tls_resumed(p.sc), 0);
	/* TLS 1.3 tickets come after the handshake, before this data */
	server_to_client(&p, (const uint8_t *)"* OK\r\n", 6);
	assert_int_equal(mbedtls_ssl_get_session(&p.cli, sess), 0);
	pair_free(&p);
}

/* A connection to server offering *sess; whether it resumed, by the
 * server's account. */
static int offer_ticket(const struct srv_opts *server, int ver, const mbedtls_ssl_session *sess)
{
	static struct pair p;
	struct cli_opts c = { .ver = ver, .sni = "localhost", .resume = sess };
	int resumed;

	pair_init_with(&p, server, &c);
	assert_int_equal(pair_handshake(&p), 0);
	resumed = tls_resumed(p.sc);
	/* the resumed session carries data like any other */
	client_to_server(&p, (const uint8_t *)"a NOOP\r\n", 8);
	server_to_client(&p, (const uint8_t *)"a OK\r\n", 6);
	pair_free(&p);
	return resumed;
}

/* A ticket from first offered to second: whether it resumed. */
static int resume_once(const struct srv_opts *first, const struct srv_opts *second, int ver)
{
	mbedtls_ssl_session sess;
	int resumed;

	get_ticket(first, ver, &sess);
	resumed = offer_ticket(second, ver, &sess);
	mbedtls_ssl_session_free(&sess);
	return resumed;
}

static void test_resumption(void **state)
{
	char err[100];
	tls_tickets *t = tls_tickets_new(3600, err, sizeof err), *other;
	struct srv_opts so, so_other, none;

	(void)state;
	assert_non_null(t);
	assert_int_equal(tls_tickets_lifetime(t), 3600);
	other = tls_tickets_new(3600, err, sizeof err);
	assert_non_null(other);
	srv_defaults(&so, t);
	srv_defaults(&so_other, other);
	srv_defaults(&none, NULL);
	for (int ver = 12; ver <= 13; ver++) {
		assert_int_equal(resume_once(&so, &so, ver), 1);
		/* another context with the same keys (a reload): still resumes */
		assert_int_equal(resume_once(&so, &so, ver), 1);
		/* another listener's keys: a full handshake */
		assert_int_equal(resume_once(&so, &so_other, ver), 0);
		/* tickets off: nothing to resume with */
		assert_int_equal(resume_once(&none, &none, ver), 0);
	}
	/* the servers hold their own references; ours go */
	tls_tickets_unref(t);
	tls_tickets_unref(other);
}

/* Keys from a shared file (several instances): contexts made from the
 * same keys resume each other's tickets; an older key still decrypts
 * after a rotation put a new one first; other keys do not. */
static void test_shared_ticket_keys(void **state)
{
	uint8_t k[3 * TLS_TICKET_KEY_BYTES];
	char err[100];
	tls_tickets *a, *b, *rotated, *stranger;
	struct srv_opts sa, sb, sr, ss;

	(void)state;
	for (size_t i = 0; i < sizeof k; i++)
		k[i] = (uint8_t)(i * 7 + 1);
	a = tls_tickets_from_keys(k, 1, 3600, err, sizeof err);
	b = tls_tickets_from_keys(k, 1, 3600, err, sizeof err);
	/* a new key first, the old one second */
	memcpy(k + 2 * TLS_TICKET_KEY_BYTES, k, TLS_TICKET_KEY_BYTES);
	for (size_t i = 0; i < TLS_TICKET_KEY_BYTES; i++)
		k[TLS_TICKET_KEY_BYTES + i] = (uint8_t)(0xA5 ^ i);
	rotated = tls_tickets_from_keys(k + TLS_TICKET_KEY_BYTES, 2, 3600, err, sizeof err);
	stranger = tls_tickets_from_keys(k + TLS_TICKET_KEY_BYTES, 1, 3600, err, sizeof err);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(rotated);
	assert_non_null(stranger);
	assert_null(tls_tickets_from_keys(k, 0, 3600, err, sizeof err));
	assert_null(tls_tickets_from_keys(k, TLS_TICKET_KEYS_MAX + 1, 3600, err, sizeof err));
	srv_defaults(&sa, a);
	srv_defaults(&sb, b);
	srv_defaults(&sr, rotated);
	srv_defaults(&ss, stranger);
	for (int ver = 12; ver <= 13; ver++) {
		assert_int_equal(resume_once(&sa, &sb, ver), 1);
		assert_int_equal(resume_once(&sb, &sa, ver), 1);
		assert_int_equal(resume_once(&sa, &sr, ver), 1);   /* old key, second line */
		assert_int_equal(resume_once(&sr, &ss, ver), 1);   /* new key, first line */
		assert_int_equal(resume_once(&sr, &sa, ver), 0);   /* new key unknown to a */
		assert_int_equal(resume_once(&sa, &ss, ver), 0);
	}
	tls_tickets_unref(a);
	tls_tickets_unref(b);
	tls_tickets_unref(rotated);
	tls_tickets_unref(stranger);
}

/* Past ticket_lifetime, on the real clock (mbedTLS reads time() itself:
 * moat's config has no MBEDTLS_PLATFORM_TIME_ALT), with a lifetime of one
 * second (tls.c takes any; the config's minimum is a minute). */
static void wait_past_lifetime(void)
{
	struct timespec ts = { 1, 100 * 1000 * 1000 };

	while (nanosleep(&ts, &ts) != 0)
		;
}

/* Keys from a shared file stay in force past ticket_lifetime: mbedTLS
 * replaces a key it has held for a lifetime by a random one of its own,
 * and a fleet would stop resuming each other's tickets. One and then two
 * lifetimes after the contexts were made from the file's keys, a new
 * ticket from one still resumes on another made independently, also
 * where its key is the file's second; a ticket older than the lifetime
 * still does not. */
static void test_shared_keys_outlive_lifetime(void **state)
{
	uint8_t k[2 * TLS_TICKET_KEY_BYTES];
	char err[100];
	tls_tickets *a, *b, *rotated;
	struct srv_opts sa, sb, sr;
	mbedtls_ssl_session old;

	(void)state;
	for (size_t i = 0; i < sizeof k; i++)
		k[i] = (uint8_t)(i * 11 + 3);
	a = tls_tickets_from_keys(k + TLS_TICKET_KEY_BYTES, 1, 1, err, sizeof err);
	b = tls_tickets_from_keys(k + TLS_TICKET_KEY_BYTES, 1, 1, err, sizeof err);
	rotated = tls_tickets_from_keys(k, 2, 1, err, sizeof err);   /* a's key second */
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(rotated);
	srv_defaults(&sa, a);
	srv_defaults(&sb, b);
	srv_defaults(&sr, rotated);
	get_ticket(&sa, 12, &old);
	for (int round = 0; round < 2; round++) {
		wait_past_lifetime();
		if (round == 0)   /* expired: a new key would not revive it */
			assert_int_equal(offer_ticket(&sb, 12, &old), 0);
		for (int ver = 12; ver <= 13; ver++) {
			assert_int_equal(resume_once(&sa, &sb, ver), 1);
			assert_int_equal(resume_once(&sb, &sa, ver), 1);
			assert_int_equal(resume_once(&sa, &sr, ver), 1);
		}
	}
	mbedtls_ssl_session_free(&old);
	tls_tickets_unref(a);
	tls_tickets_unref(b);
	tls_tickets_unref(rotated);
}

/* ---- client certificates ---- */

static void test_client_certificates(void **state)
{
	struct srv_opts so;
	static struct pair p;
	struct cli_opts anon = { .ver = 13 }, alice = { .ver = 13, .cert = "alice" },
	                mallory = { .ver = 13, .cert = "mallory" },
	                alice12 = { .ver = 12, .cert = "alice" },
	                mallory12 = { .ver = 12, .cert = "mallory" };

	(void)state;
	srv_defaults(&so, NULL);
	so.lo.client_ca = ca;
	for (int mode = TLS_CLIENT_OPTIONAL; mode <= TLS_CLIENT_REQUIRED; mode++) {
		so.lo.client_auth = (enum tls_client_auth)mode;
		pair_init_with(&p, &so, &anon);
		if (mode == TLS_CLIENT_REQUIRED) {
			assert_true(pair_handshake(&p) < 0);
		} else {
			assert_int_equal(pair_handshake(&p), 0);
			assert_string_equal(tls_peer_subject(p.sc), "");
		}
		pair_free(&p);
		pair_init_with(&p, &so, &alice);
		assert_int_equal(pair_handshake(&p), 0);
		assert_string_equal(tls_peer_subject(p.sc), "O=moat tests, CN=alice");
		pair_free(&p);
		pair_init_with(&p, &so, &alice12);
		assert_int_equal(pair_handshake(&p), 0);
		assert_string_equal(tls_peer_subject(p.sc), "O=moat tests, CN=alice");
		pair_free(&p);
		/* a certificate from another CA never gets through */
		pair_init_with(&p, &so, &mallory);
		assert_true(pair_handshake(&p) < 0);
		pair_free(&p);
		pair_init_with(&p, &so, &mallory12);
		assert_true(pair_handshake(&p) < 0);
		pair_free(&p);
	}
	/* none: a client certificate is not even asked for */
	so.lo.client_auth = TLS_CLIENT_NONE;
	pair_init_with(&p, &so, &mallory);
	assert_int_equal(pair_handshake(&p), 0);
	assert_string_equal(tls_peer_subject(p.sc), "");
	pair_free(&p);
}

/* Tickets are not offered where client certificates are asked for. */
static void test_no_tickets_with_client_certificates(void **state)
{
	char err[100];
	tls_tickets *t = tls_tickets_new(3600, err, sizeof err);
	struct srv_opts so;

	(void)state;
	assert_non_null(t);
	srv_defaults(&so, t);
	so.lo.client_auth = TLS_CLIENT_OPTIONAL;
	so.lo.client_ca = ca;
	for (int ver = 12; ver <= 13; ver++)
		assert_int_equal(resume_once(&so, &so, ver), 0);
	tls_tickets_unref(t);
}

static void test_bad_client_ca(void **state)
{
	struct srv_opts so;
	tls_server *srv = (tls_server *)1;
	char err[300], kp[300];

	(void)state;
	srv_defaults(&so, NULL);
	so.lo.client_auth = TLS_CLIENT_REQUIRED;
	so.lo.client_ca = "/nonexistent/ca.pem";
	assert_int_equal(tls_server_new(&srv, &so.pol, &so.lo, err, sizeof err), -1);
	assert_null(srv);
	assert_non_null(strstr(err, "client CA /nonexistent/ca.pem"));
	path_of(kp, sizeof kp, "privkey", "pem");
	so.lo.client_ca = kp;
	assert_int_equal(tls_server_new(&srv, &so.pol, &so.lo, err, sizeof err), -1);
	assert_non_null(strstr(err, "client CA"));
}

/* ---- policy ---- */

static void test_min_version(void **state)
{
	struct srv_opts so;
	static struct pair p;
	struct cli_opts c12 = { .ver = 12 }, c13 = { .ver = 13 };

	(void)state;
	srv_defaults(&so, NULL);
	so.pol.min_tls13 = 1;
	pair_init_with(&p, &so, &c12);
	assert_true(pair_handshake(&p) < 0);
	pair_free(&p);
	pair_init_with(&p, &so, &c13);
	assert_int_equal(pair_handshake(&p), 0);
	assert_string_equal(tls_version(p.sc), "TLSv1.3");
	pair_free(&p);
}

/* The suite chosen: the server's order, or the client's. */
static void test_suite_order(void **state)
{
	static const int chacha_first13[] = { MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
	                                      MBEDTLS_TLS1_3_AES_128_GCM_SHA256, 0 };
	static const int chacha_first12[] = { MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	                                      MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, 0 };
	struct cli_opts c13 = { .ver = 13, .suites = chacha_first13 },
	                c12 = { .ver = 12, .suites = chacha_first12 };
	struct srv_opts so;
	static struct pair p;

	(void)state;
	srv_defaults(&so, NULL);
	for (int prefer = 0; prefer <= 1; prefer++) {
		so.pol.prefer_server = prefer;
		pair_init_with(&p, &so, &c12);
		assert_int_equal(pair_handshake(&p), 0);
		assert_string_equal(tls_cipher(p.sc), prefer
		                    ? "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
		                    : "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256");
		pair_free(&p);
		if (prefer && !tls_tls13_server_order())
			continue;   /* a system mbedTLS: TLS 1.3 follows the client */
		pair_init_with(&p, &so, &c13);
		assert_int_equal(pair_handshake(&p), 0);
		assert_string_equal(tls_cipher(p.sc), prefer ? "TLS_AES_128_GCM_SHA256"
		                                             : "TLS_CHACHA20_POLY1305_SHA256");
		pair_free(&p);
	}
	/* a server list without the client's suites: no handshake */
	so.pol.tls13_suites[0] = MBEDTLS_TLS1_3_AES_256_GCM_SHA384;
	so.pol.tls13_suites[1] = 0;
	pair_init_with(&p, &so, &c13);
	assert_true(pair_handshake(&p) < 0);
	pair_free(&p);
	so.pol.tls12_suites[0] = MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384;
	so.pol.tls12_suites[1] = 0;
	pair_init_with(&p, &so, &c12);
	assert_true(pair_handshake(&p) < 0);
	pair_free(&p);
}

static void test_groups(void **state)
{
	static const uint16_t x25519[] = { MBEDTLS_SSL_IANA_TLS_GROUP_X25519, 0 };
	static const uint16_t both[] = { MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
	                                 MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, 0 };
	struct srv_opts so;
	static struct pair p;

	(void)state;
	srv_defaults(&so, NULL);
	so.pol.groups[0] = MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1;
	so.pol.groups[1] = 0;
	for (int ver = 12; ver <= 13; ver++) {
		struct cli_opts only = { .ver = ver, .groups = x25519 },
		                ok = { .ver = ver, .groups = both };
		pair_init_with(&p, &so, &only);
		assert_true(pair_handshake(&p) < 0);
		pair_free(&p);
		/* TLS 1.3: the client's first key share is X25519, so the server
		 * asks again (HelloRetryRequest) for P-384 */
		pair_init_with(&p, &so, &ok);
		assert_int_equal(pair_handshake(&p), 0);
		pair_free(&p);
	}
}

static int setup(void **state)
{
	char cmd[2048], err[300], cp[300], kp[300];

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	snprintf(other_key, sizeof other_key, "%s/other.pem", dir);
	snprintf(cmd, sizeof cmd,
	         "set -e; scripts/certs.sh %s >/dev/null; "
	         "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s 2>/dev/null; "
	         "cp %s/privkey.pem %s/fullchain.key; "
	         "scripts/mkcert.sh %s rsa rsa 30 localhost DNS:localhost >/dev/null; "
	         "scripts/mkcert.sh %s wild ec 2 '*.example.test' 'DNS:*.example.test' >/dev/null; "
	         "scripts/mkcert.sh %s org ec 30 mail.example.org >/dev/null; "
	         "scripts/mkcert.sh %s alice client 30 alice >/dev/null; "
	         "scripts/certs.sh %s/other >/dev/null; "
	         "scripts/mkcert.sh %s/other mallory client 30 mallory >/dev/null; "
	         "mv %s/other/mallory.pem %s/other/mallory.key %s/",
	         dir, other_key, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir, dir);
	if (system(cmd) != 0)
		return -1;
	if (tls_global_init(err, sizeof err) != 0)
		return -1;
	for (int i = 0; i < NCERTS; i++) {
		path_of(cp, sizeof cp, cert_names[i], "pem");
		path_of(kp, sizeof kp, cert_names[i], "key");
		if (tls_cert_load(&certs[i], cp, kp, err, sizeof err) != 0) {
			fprintf(stderr, "%s\n", err);
			return -1;
		}
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[512];

	(void)state;
	for (int i = 0; i < NCERTS; i++)
		tls_cert_free(certs[i]);
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	tls_global_free();
	return system(cmd) == 0 ? 0 : -1;
}

/* Ticket ages are stamped and checked with mbedtls_ms_time(): moat's
 * mbedTLS makes it the wall clock (patch 0004), so that an instance on
 * another host, up for a different time, agrees on a ticket's age. */
static void test_ticket_clock_is_wall_clock(void **state)
{
	struct timespec ts;
	long long wall, ms;

	(void)state;
	clock_gettime(CLOCK_REALTIME, &ts);
	wall = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	ms = (long long)mbedtls_ms_time();
	assert_true(ms - wall > -2000 && ms - wall < 2000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls13),
		cmocka_unit_test(test_tls12),
		cmocka_unit_test(test_tls13_bytewise),
		cmocka_unit_test(test_tls12_odd_chunks),
		cmocka_unit_test(test_garbage_hello),
		cmocka_unit_test(test_rest_tls13),
		cmocka_unit_test(test_rest_tls12),
		cmocka_unit_test(test_key_mismatch),
		cmocka_unit_test(test_missing_files),
		cmocka_unit_test(test_cert_info),
		cmocka_unit_test(test_name_matching),
		cmocka_unit_test(test_sni_selection),
		cmocka_unit_test(test_listener_certificate_set),
		cmocka_unit_test(test_ecdsa_and_rsa),
		cmocka_unit_test(test_alpn),
		cmocka_unit_test(test_resumption),
		cmocka_unit_test(test_shared_ticket_keys),
		cmocka_unit_test(test_shared_keys_outlive_lifetime),
		cmocka_unit_test(test_ticket_clock_is_wall_clock),
		cmocka_unit_test(test_client_certificates),
		cmocka_unit_test(test_no_tickets_with_client_certificates),
		cmocka_unit_test(test_bad_client_ca),
		cmocka_unit_test(test_min_version),
		cmocka_unit_test(test_suite_order),
		cmocka_unit_test(test_groups),
	};
	return cmocka_run_group_tests_name("tls", tests, setup, teardown);
}
