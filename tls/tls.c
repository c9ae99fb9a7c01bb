/* tls: mbedTLS 3.6 glue, see tls.h. */
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#if MBEDTLS_VERSION_NUMBER < 0x03060000
#error "moat needs mbedTLS 3.6 or newer (make MBEDTLS=system found an older one)"
#endif

struct tls_server {
	mbedtls_ssl_config conf;
	mbedtls_x509_crt chain;
	mbedtls_pk_context key;
};

struct tls_conn {
	mbedtls_ssl_context ssl;
	tls_send_fn send;
	void *send_ctx;
	const uint8_t *in;        /* lent ciphertext, not owned */
	size_t in_len;
};

/* Key exchange groups, fastest first. */
static const uint16_t tls_groups[] = {
	MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
	MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
	MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
	MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};

/* AEAD suites only, in server preference order: TLS 1.3, then ECDHE with
 * ECDSA (cheaper), then ECDHE with RSA. */
static const int tls_suites[] = {
	MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
	MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
	MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	0,
};

const char *tls_strerror(int err, char *buf, size_t size)
{
	if (err == TLS_AGAIN)
		snprintf(buf, size, "need more data");
	else if (err == TLS_EOF)
		snprintf(buf, size, "peer sent close_notify");
	else
		mbedtls_strerror(err, buf, size);
	return buf;
}

const char *tls_library_version(void)
{
	static char v[32];
	char s[18];

	mbedtls_version_get_string(s);
	snprintf(v, sizeof v, "mbedTLS %s", s);
	return v;
}

int tls_global_init(char *err, size_t errlen)
{
	psa_status_t st = psa_crypto_init();

	if (st != PSA_SUCCESS) {
		snprintf(err, errlen, "psa_crypto_init failed (%d)", (int)st);
		return -1;
	}
	return 0;
}

void tls_global_free(void)
{
	mbedtls_psa_crypto_free();
}

/* Formats "what: mbedTLS text" into err; returns -1. */
static int fail(char *err, size_t errlen, const char *what, int rc)
{
	char m[160];

	mbedtls_strerror(rc, m, sizeof m);
	snprintf(err, errlen, "%s: %s", what, m);
	return -1;
}

/* Loads certificate chain and key and checks that they belong together. */
static int load_identity(tls_server *s, const char *cert_path, const char *key_path,
                         char *err, size_t errlen)
{
	char what[512];
	int rc;

	rc = mbedtls_x509_crt_parse_file(&s->chain, cert_path);
	if (rc != 0) {
		snprintf(what, sizeof what, "certificate %s", cert_path);
		if (rc > 0) {
			snprintf(err, errlen, "%s: %d certificate(s) could not be parsed", what, rc);
			return TLS_BAD_CERT;
		}
		fail(err, errlen, what, rc);
		return TLS_BAD_CERT;
	}
	rc = mbedtls_pk_parse_keyfile(&s->key, key_path, NULL,
	                              mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	if (rc != 0) {
		snprintf(what, sizeof what, "key %s", key_path);
		fail(err, errlen, what, rc);
		return TLS_BAD_KEY;
	}
	rc = mbedtls_pk_check_pair(&s->chain.pk, &s->key,
	                           mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	if (rc != 0) {
		snprintf(err, errlen, "key %s does not match the first certificate in %s",
		         key_path, cert_path);
		return TLS_BAD_KEY;
	}
	return 0;
}

int tls_server_new(tls_server **out, const char *cert_path, const char *key_path,
                   char *err, size_t errlen)
{
	tls_server *s = calloc(1, sizeof *s);
	int rc;

	*out = NULL;
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return TLS_BAD_CERT;
	}
	mbedtls_ssl_config_init(&s->conf);
	mbedtls_x509_crt_init(&s->chain);
	mbedtls_pk_init(&s->key);

	rc = load_identity(s, cert_path, key_path, err, errlen);
	if (rc != 0)
		goto fail;
	rc = mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER,
	                                 MBEDTLS_SSL_TRANSPORT_STREAM,
	                                 MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc != 0) {
		fail(err, errlen, "TLS config", rc);
		rc = TLS_BAD_CERT;
		goto fail;
	}
	mbedtls_ssl_conf_rng(&s->conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	mbedtls_ssl_conf_min_tls_version(&s->conf, MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(&s->conf, MBEDTLS_SSL_VERSION_TLS1_3);
	mbedtls_ssl_conf_ciphersuites(&s->conf, tls_suites);
	mbedtls_ssl_conf_groups(&s->conf, tls_groups);
	mbedtls_ssl_conf_session_tickets(&s->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
	rc = mbedtls_ssl_conf_own_cert(&s->conf, &s->chain, &s->key);
	if (rc != 0) {
		fail(err, errlen, "certificate", rc);
		rc = TLS_BAD_CERT;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	tls_server_free(s);
	return rc;
}

void tls_server_free(tls_server *s)
{
	if (!s)
		return;
	mbedtls_ssl_config_free(&s->conf);
	mbedtls_x509_crt_free(&s->chain);
	mbedtls_pk_free(&s->key);           /* zeroizes the key material */
	free(s);
}

/* mbedTLS pulls ciphertext: serve it from the current loan. */
static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	tls_conn *c = ctx;
	size_t n = len < c->in_len ? len : c->in_len;

	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	memcpy(buf, c->in, n);
	c->in += n;
	c->in_len -= n;
	return (int)n;
}

/* mbedTLS pushes ciphertext: the session queues all of it. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	tls_conn *c = ctx;

	if (c->send(c->send_ctx, buf, len) != 0)
		return MBEDTLS_ERR_SSL_INTERNAL_ERROR; /* the session is closing */
	return (int)len;
}

tls_conn *tls_conn_new(const tls_server *srv, tls_send_fn send, void *send_ctx)
{
	tls_conn *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	mbedtls_ssl_init(&c->ssl);
	if (mbedtls_ssl_setup(&c->ssl, &srv->conf) != 0) {
		mbedtls_ssl_free(&c->ssl);
		free(c);
		return NULL;
	}
	c->send = send;
	c->send_ctx = send_ctx;
	mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
	return c;
}

void tls_conn_free(tls_conn *c)
{
	if (!c)
		return;
	mbedtls_ssl_free(&c->ssl);          /* zeroizes keys and buffers */
	free(c);
}

void tls_conn_input(tls_conn *c, const uint8_t *buf, size_t len)
{
	c->in = buf;
	c->in_len = len;
}

size_t tls_conn_unread(const tls_conn *c, const uint8_t **p)
{
	*p = c->in;
	return c->in_len;
}

/* Maps mbedTLS's "try again" codes onto TLS_AGAIN. */
static int map_rc(int rc)
{
	if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE ||
	    rc == MBEDTLS_ERR_SSL_ASYNC_IN_PROGRESS ||
	    rc == MBEDTLS_ERR_SSL_CRYPTO_IN_PROGRESS)
		return TLS_AGAIN;
	if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
		return TLS_EOF;
	return rc;
}

int tls_handshake(tls_conn *c)
{
	int rc = mbedtls_ssl_handshake(&c->ssl);

	return rc == 0 ? 0 : map_rc(rc);
}

ssize_t tls_read(tls_conn *c, uint8_t *buf, size_t cap)
{
	for (;;) {
		int rc = mbedtls_ssl_read(&c->ssl, buf, cap);
		if (rc > 0)
			return rc;
		if (rc == 0)
			return TLS_EOF;
		/* TLS 1.3 post-handshake messages: keep reading */
		if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
			continue;
		return map_rc(rc);
	}
}

int tls_write(tls_conn *c, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		int rc = mbedtls_ssl_write(&c->ssl, buf, len);
		if (rc < 0)
			return map_rc(rc) == TLS_AGAIN ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : rc;
		buf += rc;
		len -= (size_t)rc;
	}
	return 0;
}

void tls_close_notify(tls_conn *c)
{
	(void)mbedtls_ssl_close_notify(&c->ssl);
}

const char *tls_version(const tls_conn *c)
{
	return mbedtls_ssl_get_version(&c->ssl);
}

const char *tls_cipher(const tls_conn *c)
{
	return mbedtls_ssl_get_ciphersuite(&c->ssl);
}
