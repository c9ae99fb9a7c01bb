/* tls: mbedTLS 3.6 glue, see tls.h. */
#include "tls.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_time.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>

#if defined(MOAT_PSA_OSSL)
#include "tls_ossl.h"
#endif
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#if MBEDTLS_VERSION_NUMBER < 0x03060000
#error "moat needs mbedTLS 3.6 or newer (make MBEDTLS=system found an older one)"
#endif
#if defined(MOAT_MBEDTLS_BUNDLED) && !defined(MOAT_MBEDTLS_CONFIG_H)
#error "the bundled mbedTLS headers did not read tls/moat_mbedtls_config.h"
#endif
#if !defined(MBEDTLS_THREADING_C)
#error "moat's worker threads share TLS contexts: mbedTLS needs MBEDTLS_THREADING_C"
#endif

#define KEY_FILE_MAX  (1024 * 1024)   /* bytes; a PEM key is a few KiB */
#define NAME_MAX_LEN  253             /* a DNS name */

struct tls_cert {
	mbedtls_x509_crt chain;
	mbedtls_pk_context key;
	char **names;                 /* lowercase DNS names of the leaf */
	size_t nnames;
	char subject[256];
	char key_type[24];
	time_t not_after;
	unsigned key_mode;
	int ecdsa;
};

struct tls_tickets {
	mbedtls_ssl_ticket_context ctx[TLS_TICKET_KEYS_MAX]; /* [0] writes, all read */
	size_t n;
	atomic_int refs;
	uint32_t lifetime;
	/* Keys from a file (tls_tickets_from_keys), NULL for random ones: n
	 * of TLS_TICKET_KEY_BYTES, kept to install them again; wiped. */
	uint8_t *keys;
	pthread_mutex_t lock;         /* with keys: held around all use of ctx */
	mbedtls_time_t installed;     /* with keys: when they last went in */
};

struct tls_server {
	mbedtls_ssl_config conf;
	mbedtls_x509_crt ca;          /* client CAs */
	tls_cert **certs;             /* ECDSA first, else in the given order */
	size_t ncerts;
	tls_tickets *tickets;
	enum tls_client_auth client_auth;
	int suites[2 * TLS_MAX_SUITES + 1]; /* TLS 1.3 then 1.2, 0-terminated */
	uint16_t groups[TLS_MAX_GROUPS + 1];
	char alpn_name[8];
	const char *alpn[2];
	int is_client;                /* tls_client_new(): moat is the client */
};

struct tls_conn {
	mbedtls_ssl_context ssl;
	const tls_server *srv;
	tls_send_fn send;
	void *send_ctx;
	const uint8_t *in;            /* lent ciphertext, not owned */
	size_t in_len;
	char *sni;                    /* malloc'd, only when the client sent one */
	char *peer_subject;           /* malloc'd, only for a verified client cert */
	unsigned resumed : 1;
};

/* The connection whose handshake this thread is running: the ticket
 * callback has no other way to tell it that a ticket was accepted. */
static _Thread_local tls_conn *current_conn;

const char *tls_strerror(int err, char *buf, size_t size)
{
	if (err == TLS_AGAIN)
		snprintf(buf, size, "need more data");
	else if (err == TLS_EOF)
		snprintf(buf, size, "peer sent close_notify");
	else if (err == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED)
		snprintf(buf, size, "client certificate did not verify");
	else
		mbedtls_strerror(err, buf, size);
	return buf;
}

enum tls_fail tls_failure_kind(int err)
{
	switch (err) {
	case MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION:
		return TLS_FAIL_VERSION;
	case MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE:
		return TLS_FAIL_CIPHER;
	case MBEDTLS_ERR_SSL_NO_APPLICATION_PROTOCOL:
		return TLS_FAIL_ALPN;
	case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
	case MBEDTLS_ERR_SSL_BAD_CERTIFICATE:
	case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
		return TLS_FAIL_CLIENT_CERT;
	case TLS_EOF:
	case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE:
	case MBEDTLS_ERR_SSL_CONN_EOF:
		return TLS_FAIL_CLOSED;
	default:
		return TLS_FAIL_PROTOCOL;
	}
}

const char *tls_library_version(void)
{
	static char v[96];
	char s[18];

	mbedtls_version_get_string(s);
#if defined(MOAT_PSA_OSSL)
	snprintf(v, sizeof v, "mbedTLS %s, crypto: OpenSSL %s", s, tls_ossl_version());
#else
	snprintf(v, sizeof v, "mbedTLS %s, crypto: mbedTLS", s);
#endif
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

int tls_tls13_server_order(void)
{
#ifdef MOAT_MBEDTLS_BUNDLED
	return 1;   /* tls/patches/0001-tls13-server-cipher-order.patch */
#else
	return 0;
#endif
}

/* Formats "what: mbedTLS text" into err; returns -1. */
static int fail(char *err, size_t errlen, const char *what, int rc)
{
	char m[160];

	mbedtls_strerror(rc, m, sizeof m);
	snprintf(err, errlen, "%s: %s", what, m);
	return -1;
}

/* ---- certificates ---- */

int tls_name_matches(const char *name, const char *host)
{
	const char *dot;

	if (strcasecmp(name, host) == 0)
		return 2;
	if (name[0] != '*' || name[1] != '.' || name[2] == '\0')
		return 0;
	dot = strchr(host, '.');
	/* one non-empty label in place of the '*' */
	if (!dot || dot == host)
		return 0;
	return strcasecmp(dot + 1, name + 2) == 0 ? 1 : 0;
}

int tls_cert_covers(const tls_cert *c, const char *host)
{
	int best = 0;

	for (size_t i = 0; i < c->nnames && best < 2; i++) {
		int m = tls_name_matches(c->names[i], host);
		if (m > best)
			best = m;
	}
	return best;
}

/* Runs while loading: keeps one DNS name, lowercase. */
static int add_name(tls_cert *c, const unsigned char *p, size_t len)
{
	char **v, *n;

	if (len == 0 || len > NAME_MAX_LEN)
		return 0;
	v = realloc(c->names, (c->nnames + 1) * sizeof *v);
	if (!v)
		return -1;
	c->names = v;
	n = malloc(len + 1);
	if (!n)
		return -1;
	for (size_t i = 0; i < len; i++)
		n[i] = (char)tolower(p[i]);
	n[len] = '\0';
	c->names[c->nnames++] = n;
	return 0;
}

/* Runs while loading: the leaf's dNSName entries, or its CNs without any. */
static int read_names(tls_cert *c)
{
	const mbedtls_x509_crt *leaf = &c->chain;
	const mbedtls_x509_sequence *san;
	const mbedtls_x509_name *dn;

	for (san = &leaf->subject_alt_names; san && san->buf.p; san = san->next) {
		mbedtls_x509_subject_alternative_name alt;
		if (mbedtls_x509_parse_subject_alt_name(&san->buf, &alt) != 0)
			continue;
		if (alt.type == MBEDTLS_X509_SAN_DNS_NAME &&
		    add_name(c, alt.san.unstructured_name.p, alt.san.unstructured_name.len) < 0) {
			mbedtls_x509_free_subject_alt_name(&alt);
			return -1;
		}
		mbedtls_x509_free_subject_alt_name(&alt);
	}
	if (c->nnames)
		return 0;
	for (dn = &leaf->subject; dn; dn = dn->next) {
		if (dn->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &dn->oid) == 0 &&
		    add_name(c, dn->val.p, dn->val.len) < 0)
			return -1;
	}
	return 0;
}

/* Runs while loading: the leaf's notAfter as a time_t (UTC). */
static time_t x509_time(const mbedtls_x509_time *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof tm);
	tm.tm_year = t->year - 1900;
	tm.tm_mon = t->mon - 1;
	tm.tm_mday = t->day;
	tm.tm_hour = t->hour;
	tm.tm_min = t->min;
	tm.tm_sec = t->sec;
	return timegm(&tm);
}

/* Reads the key file through one descriptor (its mode is what we check)
 * into a NUL-terminated buffer, as mbedtls_pk_parse_key() wants PEM. */
static int read_key_file(const char *path, unsigned char **buf, size_t *len, unsigned *mode,
                         char *err, size_t errlen)
{
	struct stat st;
	unsigned char *b;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "key %s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > KEY_FILE_MAX) {
		snprintf(err, errlen, "key %s: not a regular file of at most %d bytes", path,
		         KEY_FILE_MAX);
		close(fd);
		return -1;
	}
	b = malloc((size_t)st.st_size + 1);
	if (!b) {
		snprintf(err, errlen, "key %s: out of memory", path);
		close(fd);
		return -1;
	}
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	b[n] = '\0';
	*buf = b;
	*len = n + 1;
	*mode = (unsigned)(st.st_mode & 07777);
	return 0;
}

/* Runs while loading: "ECDSA P-256" / "RSA 2048". */
static void describe_key(tls_cert *c)
{
	size_t bits = mbedtls_pk_get_bitlen(&c->chain.pk);
	mbedtls_pk_type_t t = mbedtls_pk_get_type(&c->chain.pk);

	c->ecdsa = t == MBEDTLS_PK_ECKEY || t == MBEDTLS_PK_ECDSA;
	if (c->ecdsa)
		snprintf(c->key_type, sizeof c->key_type, "ECDSA P-%zu", bits);
	else if (t == MBEDTLS_PK_RSA)
		snprintf(c->key_type, sizeof c->key_type, "RSA %zu", bits);
	else
		snprintf(c->key_type, sizeof c->key_type, "%s", mbedtls_pk_get_name(&c->chain.pk));
}

int tls_cert_load(tls_cert **out, const char *cert_path, const char *key_path,
                  char *err, size_t errlen)
{
	tls_cert *c = calloc(1, sizeof *c);
	unsigned char *kbuf = NULL;
	size_t klen = 0;
	char what[512];
	int rc;

	*out = NULL;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return TLS_BAD_CERT;
	}
	mbedtls_x509_crt_init(&c->chain);
	mbedtls_pk_init(&c->key);
	rc = mbedtls_x509_crt_parse_file(&c->chain, cert_path);
	if (rc != 0) {
		snprintf(what, sizeof what, "certificate %s", cert_path);
		if (rc > 0)
			snprintf(err, errlen, "%s: %d certificate(s) could not be parsed", what, rc);
		else
			fail(err, errlen, what, rc);
		rc = TLS_BAD_CERT;
		goto fail;
	}
	if (read_key_file(key_path, &kbuf, &klen, &c->key_mode, err, errlen) < 0) {
		rc = TLS_BAD_KEY;
		goto fail;
	}
	rc = mbedtls_pk_parse_key(&c->key, kbuf, klen, NULL, 0, mbedtls_psa_get_random,
	                          MBEDTLS_PSA_RANDOM_STATE);
	mbedtls_platform_zeroize(kbuf, klen);
	free(kbuf);
	if (rc != 0) {
		snprintf(what, sizeof what, "key %s", key_path);
		fail(err, errlen, what, rc);
		rc = TLS_BAD_KEY;
		goto fail;
	}
	if (mbedtls_pk_check_pair(&c->chain.pk, &c->key, mbedtls_psa_get_random,
	                          MBEDTLS_PSA_RANDOM_STATE) != 0) {
		snprintf(err, errlen, "key %s does not match the first certificate in %s",
		         key_path, cert_path);
		rc = TLS_BAD_KEY;
		goto fail;
	}
	if (read_names(c) < 0) {
		snprintf(err, errlen, "out of memory");
		rc = TLS_BAD_CERT;
		goto fail;
	}
	if (mbedtls_x509_dn_gets(c->subject, sizeof c->subject, &c->chain.subject) < 0)
		snprintf(c->subject, sizeof c->subject, "?");
	c->not_after = x509_time(&c->chain.valid_to);
	describe_key(c);
	*out = c;
	return 0;
fail:
	tls_cert_free(c);
	return rc;
}

void tls_cert_free(tls_cert *c)
{
	if (!c)
		return;
	mbedtls_x509_crt_free(&c->chain);
	mbedtls_pk_free(&c->key);           /* zeroizes the key material */
	for (size_t i = 0; i < c->nnames; i++)
		free(c->names[i]);
	free(c->names);
	free(c);
}

unsigned tls_cert_key_mode(const tls_cert *c)
{
	return c->key_mode;
}

const char *tls_cert_key_type(const tls_cert *c)
{
	return c->key_type;
}

const char *tls_cert_subject(const tls_cert *c)
{
	return c->subject;
}

const char *tls_cert_name(const tls_cert *c, size_t n)
{
	return n < c->nnames ? c->names[n] : NULL;
}

time_t tls_cert_not_after(const tls_cert *c)
{
	return c->not_after;
}

/* ---- session tickets ---- */

/* n ticket contexts with keys of their own (rotated by mbedTLS every
 * lifetime); NULL with a message in err. */
static tls_tickets *tickets_alloc(size_t n, uint32_t lifetime_s, char *err, size_t errlen)
{
	tls_tickets *t = calloc(1, sizeof *t);
	int rc = 0;

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&t->refs, 1);
	t->lifetime = lifetime_s;
	for (; t->n < n && rc == 0; t->n++) {
		mbedtls_ssl_ticket_init(&t->ctx[t->n]);
		rc = mbedtls_ssl_ticket_setup(&t->ctx[t->n], mbedtls_psa_get_random,
		                              MBEDTLS_PSA_RANDOM_STATE, MBEDTLS_CIPHER_AES_256_GCM,
		                              lifetime_s);
	}
	if (rc != 0) {
		fail(err, errlen, "session ticket keys", rc);
		tls_tickets_unref(t);
		return NULL;
	}
	return t;
}

tls_tickets *tls_tickets_new(uint32_t lifetime_s, char *err, size_t errlen)
{
	return tickets_alloc(1, lifetime_s, err, errlen);
}

/* Makes each of the file's keys the active key of its context, its
 * lifetime counted from now (mbedtls_ssl_ticket_rotate: the copy it
 * replaces, the same key installed one round earlier, goes). */
static int tickets_install(tls_tickets *t)
{
	for (size_t i = 0; i < t->n; i++) {
		const uint8_t *k = t->keys + i * TLS_TICKET_KEY_BYTES;
		int rc = mbedtls_ssl_ticket_rotate(&t->ctx[i], k, 4, k + 4,
		                                   TLS_TICKET_KEY_BYTES - 4, t->lifetime);
		if (rc != 0)
			return rc;
	}
	t->installed = mbedtls_time(NULL);
	return 0;
}

/* Before each ticket written or read with the file's keys (t->lock
 * held): mbedTLS replaces a key it has held for a lifetime by a random one
 * (ssl_ticket_update_keys, also on a clock that went back), which would
 * end resumption across the instances sharing the file; so they go in
 * again once half of that has passed. A ticket's own age is still checked
 * against the lifetime. */
static int tickets_refresh(tls_tickets *t)
{
	mbedtls_time_t now = mbedtls_time(NULL);

	if (now >= t->installed && (uint64_t)(now - t->installed) < t->lifetime / 2)
		return 0;
	return tickets_install(t);
}

tls_tickets *tls_tickets_from_keys(const uint8_t *keys, size_t n, uint32_t lifetime_s,
                                   char *err, size_t errlen)
{
	tls_tickets *t;
	int rc;

	if (n == 0 || n > TLS_TICKET_KEYS_MAX) {
		snprintf(err, errlen, "1 to %d ticket keys", TLS_TICKET_KEYS_MAX);
		return NULL;
	}
	t = tickets_alloc(n, lifetime_s, err, errlen);
	if (!t)
		return NULL;
	if (!(t->keys = malloc(n * TLS_TICKET_KEY_BYTES))) {
		snprintf(err, errlen, "out of memory");
		tls_tickets_unref(t);
		return NULL;
	}
	memcpy(t->keys, keys, n * TLS_TICKET_KEY_BYTES);
	pthread_mutex_init(&t->lock, NULL);
	if ((rc = tickets_install(t)) != 0) {
		fail(err, errlen, "session ticket key", rc);
		tls_tickets_unref(t);
		return NULL;
	}
	return t;
}

tls_tickets *tls_tickets_ref(tls_tickets *t)
{
	if (t)
		atomic_fetch_add(&t->refs, 1);
	return t;
}

void tls_tickets_unref(tls_tickets *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	for (size_t i = 0; i < t->n; i++)
		mbedtls_ssl_ticket_free(&t->ctx[i]); /* destroys and wipes the keys */
	if (t->keys) {
		mbedtls_platform_zeroize(t->keys, t->n * TLS_TICKET_KEY_BYTES);
		free(t->keys);
		pthread_mutex_destroy(&t->lock);
	}
	free(t);
}

uint32_t tls_tickets_lifetime(const tls_tickets *t)
{
	return t->lifetime;
}

/* Decrypts a ticket with any of the keys, the newest first; parse
 * decrypts in place, so a try that is not the last works on a copy
 * (tickets are small). */
static int tickets_parse(tls_tickets *t, mbedtls_ssl_session *session, unsigned char *buf,
                         size_t len)
{
	int rc = MBEDTLS_ERR_SSL_INVALID_MAC;

	for (size_t i = 0; i + 1 < t->n && rc != 0; i++) {
		unsigned char copy[1024];
		if (len > sizeof copy)
			return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
		memcpy(copy, buf, len);
		rc = mbedtls_ssl_ticket_parse(&t->ctx[i], session, copy, len);
		mbedtls_platform_zeroize(copy, len);
	}
	if (rc != 0)
		rc = mbedtls_ssl_ticket_parse(&t->ctx[t->n - 1], session, buf, len);
	return rc;
}

/* mbedTLS found a ticket in a ClientHello: decrypt it with the listener's
 * keys; when that works the handshake resumes, so note it. */
static int ticket_parse(void *p, mbedtls_ssl_session *session, unsigned char *buf, size_t len)
{
	tls_tickets *t = p;
	int rc;

	if (!t->keys) {
		rc = tickets_parse(t, session, buf, len);
	} else {
		pthread_mutex_lock(&t->lock);
		if ((rc = tickets_refresh(t)) == 0)
			rc = tickets_parse(t, session, buf, len);
		pthread_mutex_unlock(&t->lock);
	}
	if (rc == 0 && current_conn)
		current_conn->resumed = 1;
	return rc;
}

/* mbedTLS sends a new ticket: encrypt the session with the newest key. */
static int ticket_write(void *p, const mbedtls_ssl_session *session, unsigned char *start,
                        const unsigned char *end, size_t *tlen, uint32_t *lifetime)
{
	tls_tickets *t = p;
	int rc;

	if (!t->keys)
		return mbedtls_ssl_ticket_write(&t->ctx[0], session, start, end, tlen, lifetime);
	pthread_mutex_lock(&t->lock);
	if ((rc = tickets_refresh(t)) == 0)
		rc = mbedtls_ssl_ticket_write(&t->ctx[0], session, start, end, tlen, lifetime);
	/* the clock jumped between the two checks and mbedTLS made a key of
	 * its own after all (a ticket starts with its key's name): again */
	if (rc == 0 && memcmp(start, t->keys, 4) != 0 && (rc = tickets_install(t)) == 0)
		rc = mbedtls_ssl_ticket_write(&t->ctx[0], session, start, end, tlen, lifetime);
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* ---- servers ---- */

/* After the ClientHello (both versions): the certificates for the name
 * the client asked for. Exact names beat wildcards; with no SNI or no
 * match the listener's default certificates (the config's own list)
 * stay. Every certificate of the best match is offered, ECDSA first, and
 * mbedTLS picks one the client can verify. */
static int on_cert_select(mbedtls_ssl_context *ssl)
{
	tls_conn *c = mbedtls_ssl_get_user_data_p(ssl);
	const tls_server *s = c->srv;
	const unsigned char *name;
	size_t len = 0;
	int best = 0, rc;

	name = mbedtls_ssl_get_hs_sni(ssl, &len);
	if (!name || len == 0 || len > NAME_MAX_LEN || c->sni)
		return 0;
	c->sni = malloc(len + 1);
	if (!c->sni)
		return MBEDTLS_ERR_SSL_ALLOC_FAILED;
	for (size_t i = 0; i < len; i++)
		c->sni[i] = (char)tolower(name[i]);
	c->sni[len] = '\0';
	if (len > 1 && c->sni[len - 1] == '.')
		c->sni[len - 1] = '\0';       /* an absolute name */
	for (size_t i = 0; i < s->ncerts && best < 2; i++) {
		int m = tls_cert_covers(s->certs[i], c->sni);
		if (m > best)
			best = m;
	}
	for (size_t i = 0; best && i < s->ncerts; i++) {
		tls_cert *ct = s->certs[i];
		if (tls_cert_covers(ct, c->sni) != best)
			continue;
		rc = mbedtls_ssl_set_hs_own_cert(ssl, &ct->chain, &ct->key);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Used by tls_server_new(): the same DNS names, in any order. */
static int same_names(const tls_cert *a, const tls_cert *b)
{
	if (a->nnames != b->nnames)
		return 0;
	for (size_t i = 0; i < a->nnames; i++)
		if (tls_cert_covers(b, a->names[i]) != 2)
			return 0;
	return 1;
}

/* Used by tls_server_new(): the certificates in offer order (ECDSA first,
 * else as given), and the default ones (the first given and those with
 * its names) into the config. */
static int set_certs(tls_server *s, const struct tls_listener_opts *o, char *err,
                     size_t errlen)
{
	size_t n = 0;
	int rc;

	if (o->ncerts == 0) {
		snprintf(err, errlen, "no certificate");
		return -1;
	}
	s->certs = calloc(o->ncerts, sizeof *s->certs);
	if (!s->certs) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int pass = 1; pass >= 0; pass--)
		for (size_t i = 0; i < o->ncerts; i++)
			if (o->certs[i]->ecdsa == pass)
				s->certs[n++] = o->certs[i];
	s->ncerts = n;
	for (size_t i = 0; i < n; i++) {
		if (s->certs[i] != o->certs[0] && !same_names(s->certs[i], o->certs[0]))
			continue;
		rc = mbedtls_ssl_conf_own_cert(&s->conf, &s->certs[i]->chain, &s->certs[i]->key);
		if (rc != 0)
			return fail(err, errlen, "certificate", rc);
	}
	return 0;
}

/* Used by tls_server_new(): versions, suites (ours in order), groups. */
static void set_policy(tls_server *s, const struct tls_policy *pol)
{
	size_t n = 0;

	for (size_t i = 0; pol->tls13_suites[i] && i < TLS_MAX_SUITES; i++)
		s->suites[n++] = pol->tls13_suites[i];
	for (size_t i = 0; pol->tls12_suites[i] && i < TLS_MAX_SUITES && !pol->min_tls13; i++)
		s->suites[n++] = pol->tls12_suites[i];
	s->suites[n] = 0;
	for (n = 0; pol->groups[n] && n < TLS_MAX_GROUPS; n++)
		s->groups[n] = pol->groups[n];
	s->groups[n] = 0;
	mbedtls_ssl_conf_min_tls_version(&s->conf, pol->min_tls13 ? MBEDTLS_SSL_VERSION_TLS1_3
	                                                          : MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(&s->conf, MBEDTLS_SSL_VERSION_TLS1_3);
	mbedtls_ssl_conf_ciphersuites(&s->conf, s->suites);
	mbedtls_ssl_conf_groups(&s->conf, s->groups);
	mbedtls_ssl_conf_preference_order(&s->conf, pol->prefer_server
	                                  ? MBEDTLS_SSL_SRV_CIPHERSUITE_ORDER_SERVER
	                                  : MBEDTLS_SSL_SRV_CIPHERSUITE_ORDER_CLIENT);
	/* forward secrecy only: (EC)DHE, alone or with a resumption PSK */
	mbedtls_ssl_conf_tls13_key_exchange_modes(&s->conf,
	        MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL |
	        MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL);
}

/* Loads the CA certificates a peer's must chain to; what names the file
 * in messages. 0, or -1 with a message in err. */
static int load_cas(tls_server *s, const char *file, const char *what, char *err,
                    size_t errlen)
{
	int rc = mbedtls_x509_crt_parse_file(&s->ca, file);

	if (rc > 0) {
		snprintf(err, errlen, "%s: %d certificate(s) could not be parsed", what, rc);
		return -1;
	}
	return rc != 0 ? fail(err, errlen, what, rc) : 0;
}

/* A context for one side (MBEDTLS_SSL_IS_SERVER or _CLIENT) with the
 * policy; NULL with a message in err. */
static tls_server *context_new(int endpoint, const struct tls_policy *pol, char *err,
                               size_t errlen)
{
	tls_server *s = calloc(1, sizeof *s);
	int rc;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	mbedtls_ssl_config_init(&s->conf);
	mbedtls_x509_crt_init(&s->ca);
	rc = mbedtls_ssl_config_defaults(&s->conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
	                                 MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc != 0) {
		fail(err, errlen, "TLS config", rc);
		tls_server_free(s);
		return NULL;
	}
	mbedtls_ssl_conf_rng(&s->conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	set_policy(s, pol);
	return s;
}

/* Used by tls_server_new(): who may present a client certificate. */
static int set_client_auth(tls_server *s, const struct tls_listener_opts *o, char *err,
                           size_t errlen)
{
	char what[512];

	s->client_auth = o->client_auth;
	if (o->client_auth == TLS_CLIENT_NONE) {
		mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_NONE);
		return 0;
	}
	snprintf(what, sizeof what, "client CA %s", o->client_ca ? o->client_ca : "(none)");
	if (load_cas(s, o->client_ca ? o->client_ca : "", what, err, errlen) < 0)
		return -1;
	mbedtls_ssl_conf_ca_chain(&s->conf, &s->ca, NULL);
	/* "required" is enforced by check_peer() once the handshake is done:
	 * refused there, the client gets an alert it can read in both
	 * versions (mbedTLS's own refusal arrives under the TLS 1.3 handshake
	 * keys, which the client has dropped by then, and with no alert at
	 * all for a missing certificate in TLS 1.2). */
	mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
	return 0;
}

int tls_server_new(tls_server **out, const struct tls_policy *pol,
                   const struct tls_listener_opts *o, char *err, size_t errlen)
{
	tls_server *s = context_new(MBEDTLS_SSL_IS_SERVER, pol, err, errlen);
	int rc;

	*out = NULL;
	if (!s)
		return -1;
	if (set_certs(s, o, err, errlen) < 0 || set_client_auth(s, o, err, errlen) < 0)
		goto fail;
	mbedtls_ssl_conf_cert_cb(&s->conf, on_cert_select);
	snprintf(s->alpn_name, sizeof s->alpn_name, "%s", o->alpn ? o->alpn : "imap");
	s->alpn[0] = s->alpn_name;
	s->alpn[1] = NULL;
	rc = mbedtls_ssl_conf_alpn_protocols(&s->conf, s->alpn);
	if (rc != 0) {
		fail(err, errlen, "ALPN", rc);
		goto fail;
	}
	/* A TLS 1.3 ticket does not carry the client certificate: where one is
	 * asked for, every session proves it again. */
	if (o->tickets && o->client_auth == TLS_CLIENT_NONE) {
		s->tickets = tls_tickets_ref(o->tickets);
		mbedtls_ssl_conf_session_tickets_cb(&s->conf, ticket_write, ticket_parse, s->tickets);
		mbedtls_ssl_conf_new_session_tickets(&s->conf, 1);
	} else {
		mbedtls_ssl_conf_new_session_tickets(&s->conf, 0);
	}
	*out = s;
	return 0;
fail:
	tls_server_free(s);
	return -1;
}

void tls_server_free(tls_server *s)
{
	if (!s)
		return;
	mbedtls_ssl_config_free(&s->conf);
	mbedtls_x509_crt_free(&s->ca);
	tls_tickets_unref(s->tickets);
	free(s->certs);
	free(s);
}

/* ---- clients: moat to a backend ---- */

int tls_client_new(tls_server **out, const struct tls_policy *pol, const char *ca_file,
                   char *err, size_t errlen)
{
	tls_server *s = context_new(MBEDTLS_SSL_IS_CLIENT, pol, err, errlen);
	char what[512];

	*out = NULL;
	if (!s)
		return -1;
	snprintf(what, sizeof what, "CA file %s", ca_file);
	if (load_cas(s, ca_file, what, err, errlen) < 0)
		goto fail;
	mbedtls_ssl_conf_ca_chain(&s->conf, &s->ca, NULL);
	/* the backend's certificate must chain to the CA and name the host */
	mbedtls_ssl_conf_authmode(&s->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
#if defined(MBEDTLS_SSL_SESSION_TICKETS)
	mbedtls_ssl_conf_session_tickets(&s->conf, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
#endif
	s->is_client = 1;
	*out = s;
	return 0;
fail:
	tls_server_free(s);
	return -1;
}

tls_conn *tls_conn_new_client(const tls_server *cli, const char *hostname, tls_send_fn send,
                              void *send_ctx)
{
	tls_conn *c = tls_conn_new(cli, send, send_ctx);

	if (c && mbedtls_ssl_set_hostname(&c->ssl, hostname) != 0) {
		tls_conn_free(c);
		return NULL;
	}
	return c;
}

const char *tls_verify_info(const tls_conn *c, char *buf, size_t size)
{
	uint32_t flags = mbedtls_ssl_get_verify_result(&c->ssl);
	char *nl;

	buf[0] = '\0';
	if (flags == 0 || flags == (uint32_t)-1)
		return buf;
	if (mbedtls_x509_crt_verify_info(buf, size, "", flags) < 0)
		snprintf(buf, size, "verify flags 0x%x", (unsigned)flags);
	while ((nl = strchr(buf, '\n')) != NULL)      /* one line: "a; b" */
		*nl = nl[1] ? ';' : '\0';
	return buf;
}

/* ---- connections ---- */

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
	c->srv = srv;
	c->send = send;
	c->send_ctx = send_ctx;
	mbedtls_ssl_set_user_data_p(&c->ssl, c);
	mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
	return c;
}

void tls_conn_free(tls_conn *c)
{
	if (!c)
		return;
	mbedtls_ssl_free(&c->ssl);          /* zeroizes keys and buffers */
	free(c->sni);
	free(c->peer_subject);
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

/* Ends a handshake that check_peer() refuses: a fatal alert, then rc. */
static int refuse_peer(tls_conn *c, unsigned char alert, int rc)
{
	(void)mbedtls_ssl_send_alert_message(&c->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL, alert);
	return rc;
}

/* The handshake is done: keep the verified client certificate's subject.
 * No certificate on a "required" listener, or one that was offered but
 * does not verify (either kind of listener, as nginx's
 * "ssl_verify_client optional" does), ends the connection before a byte
 * of the session is read or written. */
static int check_peer(tls_conn *c)
{
	const mbedtls_x509_crt *peer;
	char subject[256];
	uint32_t flags;

	if (c->srv->client_auth == TLS_CLIENT_NONE)
		return 0;
	peer = mbedtls_ssl_get_peer_cert(&c->ssl);
	if (!peer && c->srv->client_auth == TLS_CLIENT_REQUIRED)
		return refuse_peer(c, mbedtls_ssl_get_version_number(&c->ssl) ==
		                      MBEDTLS_SSL_VERSION_TLS1_3 ? MBEDTLS_SSL_ALERT_MSG_CERT_REQUIRED
		                                                 : MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE,
		                   MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE);
	if (!peer)
		return 0;
	flags = mbedtls_ssl_get_verify_result(&c->ssl);
	if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED)
		return refuse_peer(c, MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA,
		                   MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
	if (flags & MBEDTLS_X509_BADCERT_EXPIRED)
		return refuse_peer(c, MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED,
		                   MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
	if (flags)
		return refuse_peer(c, MBEDTLS_SSL_ALERT_MSG_BAD_CERT,
		                   MBEDTLS_ERR_X509_CERT_VERIFY_FAILED);
	if (mbedtls_x509_dn_gets(subject, sizeof subject, &peer->subject) < 0)
		snprintf(subject, sizeof subject, "?");
	c->peer_subject = strdup(subject);
	return c->peer_subject ? 0 : MBEDTLS_ERR_SSL_ALLOC_FAILED;
}

/* Before mbedTLS touches the record buffers: back if they were released. */
static int awake(tls_conn *c)
{
#if defined(MBEDTLS_SSL_RELEASE_IDLE_BUFFERS)
	return mbedtls_ssl_restore_idle_buffers(&c->ssl);
#else
	(void)c;
	return 0;
#endif
}

int tls_conn_rest(tls_conn *c)
{
#if defined(MBEDTLS_SSL_RELEASE_IDLE_BUFFERS)
	if (c->in_len == 0 && !mbedtls_ssl_idle_buffers_released(&c->ssl))
		return mbedtls_ssl_release_idle_buffers(&c->ssl) == 0;
#else
	(void)c;
#endif
	return 0;
}

int tls_conn_rest_supported(void)
{
#if defined(MBEDTLS_SSL_RELEASE_IDLE_BUFFERS)
	return 1;
#else
	return 0;
#endif
}

int tls_conn_resting(const tls_conn *c)
{
#if defined(MBEDTLS_SSL_RELEASE_IDLE_BUFFERS)
	return mbedtls_ssl_idle_buffers_released(&c->ssl);
#else
	(void)c;
	return 0;
#endif
}

int tls_handshake(tls_conn *c)
{
	int rc = awake(c);

	if (rc != 0)
		return rc;
	current_conn = c;
	rc = mbedtls_ssl_handshake(&c->ssl);
	current_conn = NULL;
	if (rc == 0)
		return check_peer(c);
	return map_rc(rc);
}

ssize_t tls_read(tls_conn *c, uint8_t *buf, size_t cap)
{
	int woke = awake(c);

	if (woke != 0)
		return woke;
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
	int woke = awake(c);

	if (woke != 0)
		return woke;
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
	if (awake(c) == 0)
		(void)mbedtls_ssl_close_notify(&c->ssl);
}

const char *tls_version(const tls_conn *c)
{
	return mbedtls_ssl_get_version(&c->ssl);
}

const char *tls_cipher(const tls_conn *c)
{
	const char *iana = tls_suite_name(tls_suite_id(c));

	return iana ? iana : mbedtls_ssl_get_ciphersuite(&c->ssl);
}

uint16_t tls_suite_id(const tls_conn *c)
{
	return (uint16_t)mbedtls_ssl_get_ciphersuite_id_from_ssl(&c->ssl);
}

int tls_version_number(const tls_conn *c)
{
	return mbedtls_ssl_get_version_number(&c->ssl) == MBEDTLS_SSL_VERSION_TLS1_3 ? 13 : 12;
}

int tls_resumed(const tls_conn *c)
{
	return c->resumed;
}

const char *tls_alpn(const tls_conn *c)
{
	const char *p = mbedtls_ssl_get_alpn_protocol(&c->ssl);

	return p ? p : "";
}

const char *tls_sni(const tls_conn *c)
{
	return c->sni ? c->sni : "";
}

const char *tls_peer_subject(const tls_conn *c)
{
	return c->peer_subject ? c->peer_subject : "";
}
