/*
 * tls module: moat's server context against an mbedTLS client, joined in
 * memory (no sockets). Certificates come from scripts/certs.sh in a
 * temporary folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <mbedtls/psa_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "tls.h"

static char dir[] = "/tmp/moat-test-tls-XXXXXX";
static char cert[256], key[256], ca[256], other_key[256];

/* A byte pipe in one direction. */
struct pipe {
	uint8_t buf[1 << 20];
	size_t len;
};

struct pair {
	tls_server *srv;
	tls_conn *sc;
	mbedtls_ssl_context cli;
	mbedtls_ssl_config cconf;
	mbedtls_x509_crt cacert;
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

static void pair_init(struct pair *p, mbedtls_ssl_protocol_version ver)
{
	char err[256];

	memset(p, 0, sizeof *p);
	assert_int_equal(tls_server_new(&p->srv, cert, key, err, sizeof err), 0);
	p->sc = tls_conn_new(p->srv, srv_send, p);
	assert_non_null(p->sc);

	mbedtls_x509_crt_init(&p->cacert);
	assert_int_equal(mbedtls_x509_crt_parse_file(&p->cacert, ca), 0);
	mbedtls_ssl_config_init(&p->cconf);
	assert_int_equal(mbedtls_ssl_config_defaults(&p->cconf, MBEDTLS_SSL_IS_CLIENT,
	                 MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT), 0);
	mbedtls_ssl_conf_rng(&p->cconf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	mbedtls_ssl_conf_authmode(&p->cconf, MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_ca_chain(&p->cconf, &p->cacert, NULL);
	mbedtls_ssl_conf_min_tls_version(&p->cconf, ver);
	mbedtls_ssl_conf_max_tls_version(&p->cconf, ver);
	mbedtls_ssl_init(&p->cli);
	assert_int_equal(mbedtls_ssl_setup(&p->cli, &p->cconf), 0);
	assert_int_equal(mbedtls_ssl_set_hostname(&p->cli, "localhost"), 0);
	mbedtls_ssl_set_bio(&p->cli, p, cli_send, cli_recv, NULL);
}

static void pair_free(struct pair *p)
{
	tls_conn_free(p->sc);
	tls_server_free(p->srv);
	mbedtls_ssl_free(&p->cli);
	mbedtls_ssl_config_free(&p->cconf);
	mbedtls_x509_crt_free(&p->cacert);
}

/* Runs both handshakes to completion; returns the server's last result. */
static int pair_handshake(struct pair *p)
{
	int crc = 1, src = TLS_AGAIN;

	for (int round = 0; round < 50; round++) {
		if (crc != 0) {
			crc = mbedtls_ssl_handshake(&p->cli);
			if (crc != 0 && crc != MBEDTLS_ERR_SSL_WANT_READ)
				return crc;
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

/* The server sends msg; the client decrypts exactly msg. */
static void server_to_client(struct pair *p, const uint8_t *msg, size_t len)
{
	static uint8_t got[1 << 20];
	size_t have = 0;

	assert_int_equal(tls_write(p->sc, msg, len), 0);
	while (have < len) {
		int r = mbedtls_ssl_read(&p->cli, got + have, sizeof got - have);
		if (r == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue;
		assert_true(r > 0);
		have += (size_t)r;
	}
	assert_int_equal(have, len);
	assert_memory_equal(got, msg, len);
}

static void handshake_and_relay(mbedtls_ssl_protocol_version ver, size_t chunk,
                                const char *want_version)
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
	assert_true(strstr(tls_cipher(p.sc), "GCM") || strstr(tls_cipher(p.sc), "CHACHA20-POLY1305"));
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
	handshake_and_relay(MBEDTLS_SSL_VERSION_TLS1_3, 0, "TLSv1.3");
}

static void test_tls12(void **state)
{
	(void)state;
	handshake_and_relay(MBEDTLS_SSL_VERSION_TLS1_2, 0, "TLSv1.2");
}

/* Every read split into single bytes: the loan must resume anywhere. */
static void test_tls13_bytewise(void **state)
{
	(void)state;
	handshake_and_relay(MBEDTLS_SSL_VERSION_TLS1_3, 1, "TLSv1.3");
}

static void test_tls12_odd_chunks(void **state)
{
	(void)state;
	handshake_and_relay(MBEDTLS_SSL_VERSION_TLS1_2, 7, "TLSv1.2");
}

/* Garbage instead of a ClientHello is a fatal error, not TLS_AGAIN. */
static void test_garbage_hello(void **state)
{
	static const uint8_t junk[] = "a1 LOGIN user pass\r\nGET / HTTP/1.1\r\n\r\n";
	tls_server *srv;
	tls_conn *c;
	char err[256];
	int rc;

	(void)state;
	assert_int_equal(tls_server_new(&srv, cert, key, err, sizeof err), 0);
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

static void test_key_mismatch(void **state)
{
	tls_server *srv = (tls_server *)1;
	char err[512];

	(void)state;
	assert_int_equal(tls_server_new(&srv, cert, other_key, err, sizeof err), TLS_BAD_KEY);
	assert_null(srv);
	assert_non_null(strstr(err, "does not match"));
}

static void test_missing_files(void **state)
{
	tls_server *srv;
	char err[512];

	(void)state;
	assert_int_equal(tls_server_new(&srv, "/nonexistent/cert.pem", key, err, sizeof err), TLS_BAD_CERT);
	assert_non_null(strstr(err, "/nonexistent/cert.pem"));
	assert_int_equal(tls_server_new(&srv, cert, "/nonexistent/key.pem", err, sizeof err), TLS_BAD_KEY);
	assert_non_null(strstr(err, "/nonexistent/key.pem"));
	/* a key file where the certificate should be */
	assert_int_equal(tls_server_new(&srv, key, key, err, sizeof err), TLS_BAD_CERT);
	assert_non_null(strstr(err, "certificate"));
}

static int setup(void **state)
{
	char cmd[512], err[128];

	(void)state;
	if (!mkdtemp(dir))
		return -1;
	snprintf(cert, sizeof cert, "%s/fullchain.pem", dir);
	snprintf(key, sizeof key, "%s/privkey.pem", dir);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	snprintf(other_key, sizeof other_key, "%s/other.pem", dir);
	snprintf(cmd, sizeof cmd,
	         "scripts/certs.sh %s >/dev/null && openssl genpkey -algorithm EC "
	         "-pkeyopt ec_paramgen_curve:P-256 -out %s 2>/dev/null", dir, other_key);
	if (system(cmd) != 0)
		return -1;
	return tls_global_init(err, sizeof err);
}

static int teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	tls_global_free();
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tls13),
		cmocka_unit_test(test_tls12),
		cmocka_unit_test(test_tls13_bytewise),
		cmocka_unit_test(test_tls12_odd_chunks),
		cmocka_unit_test(test_garbage_hello),
		cmocka_unit_test(test_key_mismatch),
		cmocka_unit_test(test_missing_files),
	};
	return cmocka_run_group_tests_name("tls", tests, setup, teardown);
}
