/*
 * tlsraw: the ceiling moat's TLS work cannot beat on this machine, from
 * mbedTLS's own code paths with no sockets and no moat around them.
 *
 *   tlsraw CERT KEY CA [SECONDS]
 *
 * An mbedTLS server configured as moat configures its listeners (the
 * same suites, groups, certificate; tickets on) and an mbedTLS client,
 * joined in memory. Only the server's side is timed, with the thread's
 * CPU clock around each server call:
 *   - a full handshake, TLS 1.2 and TLS 1.3 (X25519, ECDSA P-256, AES-128-GCM);
 *   - a resumed one (TLS 1.2 session ticket, TLS 1.3 PSK with ECDHE);
 *   - encrypting 16 KiB records (mbedtls_ssl_write, TLS 1.3 AES-128-GCM),
 *     and the bare AEAD through PSA, per GiB.
 * Prints one JSON line: microseconds per handshake, seconds per GiB.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/pk.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#define PIPE_MAX (256 * 1024)

struct pipe {
	unsigned char buf[PIPE_MAX];
	size_t len;
};

struct pair {
	mbedtls_ssl_context srv, cli;
	struct pipe to_srv, to_cli;
	double srv_cpu;               /* seconds spent in server calls */
	int sink;                     /* to_cli just counts, keeps nothing */
	uint64_t sunk;
};

static mbedtls_ssl_config sconf, cconf;
static mbedtls_x509_crt chain, ca;
static mbedtls_pk_context key;
static mbedtls_ssl_ticket_context tickets;
static long tickets_taken;            /* tickets the server accepted */

/* The server's ticket check, counting the tickets it accepts. */
static int ticket_parse(void *p, mbedtls_ssl_session *s, unsigned char *buf, size_t len)
{
	int rc = mbedtls_ssl_ticket_parse(p, s, buf, len);

	tickets_taken += rc == 0;
	return rc;
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int put(struct pipe *p, const unsigned char *b, size_t n)
{
	if (n > PIPE_MAX - p->len)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	memcpy(p->buf + p->len, b, n);
	p->len += n;
	return (int)n;
}

static int take(struct pipe *p, unsigned char *b, size_t n)
{
	if (p->len == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	if (n > p->len)
		n = p->len;
	memcpy(b, p->buf, n);
	memmove(p->buf, p->buf + n, p->len - n);
	p->len -= n;
	return (int)n;
}

static int srv_send(void *c, const unsigned char *b, size_t n)
{
	struct pair *p = c;

	if (p->sink) {
		p->sunk += n;
		return (int)n;
	}
	return put(&p->to_cli, b, n);
}

static int srv_recv(void *c, unsigned char *b, size_t n)
{
	return take(&((struct pair *)c)->to_srv, b, n);
}

static int cli_send(void *c, const unsigned char *b, size_t n)
{
	return put(&((struct pair *)c)->to_srv, b, n);
}

static int cli_recv(void *c, unsigned char *b, size_t n)
{
	return take(&((struct pair *)c)->to_cli, b, n);
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "tlsraw: %s: -0x%04x\n", what, (unsigned)-rc);
	exit(1);
}

/* The server as moat's tls.c builds a listener's. */
static void setup_server(const char *cert, const char *keyfile)
{
	static const int suites[] = {
		MBEDTLS_TLS1_3_AES_128_GCM_SHA256, MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
		MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
		MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, 0,
	};
	static const uint16_t groups[] = { MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
	                                   MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
	                                   MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, 0 };
	int rc;

	mbedtls_ssl_config_init(&sconf);
	mbedtls_x509_crt_init(&chain);
	mbedtls_pk_init(&key);
	mbedtls_ssl_ticket_init(&tickets);
	if ((rc = mbedtls_x509_crt_parse_file(&chain, cert)) != 0)
		die("certificate", rc);
	if ((rc = mbedtls_pk_parse_keyfile(&key, keyfile, NULL, mbedtls_psa_get_random,
	                                   MBEDTLS_PSA_RANDOM_STATE)) != 0)
		die("key", rc);
	if ((rc = mbedtls_ssl_config_defaults(&sconf, MBEDTLS_SSL_IS_SERVER,
	                                      MBEDTLS_SSL_TRANSPORT_STREAM,
	                                      MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
		die("server config", rc);
	mbedtls_ssl_conf_rng(&sconf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	mbedtls_ssl_conf_min_tls_version(&sconf, MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(&sconf, MBEDTLS_SSL_VERSION_TLS1_3);
	mbedtls_ssl_conf_ciphersuites(&sconf, suites);
	mbedtls_ssl_conf_groups(&sconf, groups);
	if ((rc = mbedtls_ssl_conf_own_cert(&sconf, &chain, &key)) != 0)
		die("own cert", rc);
	if ((rc = mbedtls_ssl_ticket_setup(&tickets, mbedtls_psa_get_random,
	                                   MBEDTLS_PSA_RANDOM_STATE, MBEDTLS_CIPHER_AES_256_GCM,
	                                   7200)) != 0)
		die("tickets", rc);
	mbedtls_ssl_conf_session_tickets_cb(&sconf, mbedtls_ssl_ticket_write, ticket_parse,
	                                    &tickets);
}

static void setup_client(const char *cafile)
{
	/* X25519 for the key exchange; P-256 too, or a TLS 1.2 server may not
	 * use its ECDSA P-256 certificate */
	static const uint16_t groups[] = { MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
	                                   MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1, 0 };
	int rc;

	mbedtls_ssl_config_init(&cconf);
	mbedtls_x509_crt_init(&ca);
	if ((rc = mbedtls_x509_crt_parse_file(&ca, cafile)) != 0)
		die("CA", rc);
	if ((rc = mbedtls_ssl_config_defaults(&cconf, MBEDTLS_SSL_IS_CLIENT,
	                                      MBEDTLS_SSL_TRANSPORT_STREAM,
	                                      MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
		die("client config", rc);
	mbedtls_ssl_conf_rng(&cconf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	mbedtls_ssl_conf_authmode(&cconf, MBEDTLS_SSL_VERIFY_REQUIRED);
	mbedtls_ssl_conf_ca_chain(&cconf, &ca, NULL);
	mbedtls_ssl_conf_groups(&cconf, groups);
	mbedtls_ssl_conf_session_tickets(&cconf, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
	mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
	        &cconf, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
}

/* A handshake between fresh contexts; the server's CPU goes to p->srv_cpu.
 * With sess, the client offers it; afterwards the client's newest session
 * (with a ticket) is saved in out. */
static void handshake(struct pair *p, int tls13, const mbedtls_ssl_session *sess,
                      mbedtls_ssl_session *out)
{
	mbedtls_ssl_protocol_version v = tls13 ? MBEDTLS_SSL_VERSION_TLS1_3
	                                       : MBEDTLS_SSL_VERSION_TLS1_2;
	int crc = 1, src = 1, rc;
	unsigned char buf[64];
	double t;

	memset(p, 0, sizeof *p);
	mbedtls_ssl_conf_min_tls_version(&cconf, v);
	mbedtls_ssl_conf_max_tls_version(&cconf, v);
	mbedtls_ssl_init(&p->srv);
	mbedtls_ssl_init(&p->cli);
	if (mbedtls_ssl_setup(&p->srv, &sconf) != 0 || mbedtls_ssl_setup(&p->cli, &cconf) != 0)
		die("setup", -1);
	mbedtls_ssl_set_hostname(&p->cli, "localhost");
	if (sess && (rc = mbedtls_ssl_set_session(&p->cli, sess)) != 0)
		die("set session", rc);
	mbedtls_ssl_set_bio(&p->srv, p, srv_send, srv_recv, NULL);
	mbedtls_ssl_set_bio(&p->cli, p, cli_send, cli_recv, NULL);
	for (int round = 0; (crc || src) && round < 100; round++) {
		if (crc) {
			crc = mbedtls_ssl_handshake(&p->cli);
			if (crc && crc != MBEDTLS_ERR_SSL_WANT_READ)
				die("client handshake", crc);
		}
		if (src) {
			t = cpu_now();
			src = mbedtls_ssl_handshake(&p->srv);
			p->srv_cpu += cpu_now() - t;
			if (src && src != MBEDTLS_ERR_SSL_WANT_READ)
				die("server handshake", src);
		}
	}
	if (crc || src)
		die("handshake did not finish", -1);
	/* the TLS 1.3 ticket comes after the handshake */
	for (int i = 0; i < 4 && out; i++) {
		rc = mbedtls_ssl_read(&p->cli, buf, sizeof buf);
		if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET || (!tls13 && i == 0))
			break;
	}
	if (out) {
		mbedtls_ssl_session_free(out);
		mbedtls_ssl_session_init(out);
		if ((rc = mbedtls_ssl_get_session(&p->cli, out)) != 0)
			die("get session", rc);
	}
}

static void pair_free(struct pair *p)
{
	mbedtls_ssl_free(&p->srv);
	mbedtls_ssl_free(&p->cli);
}

/* Microseconds of server CPU per handshake, over `seconds` of handshakes. */
static double per_handshake(int tls13, int resume, double seconds)
{
	static struct pair p;
	mbedtls_ssl_session sess;
	double cpu = 0, start = cpu_now();
	long n = 0;

	mbedtls_ssl_session_init(&sess);
	if (resume) {
		handshake(&p, tls13, NULL, &sess);
		pair_free(&p);
	}
	while (cpu_now() - start < seconds || n < 20) {
		long before = tickets_taken;
		handshake(&p, tls13, resume ? &sess : NULL, resume ? &sess : NULL);
		if (resume && tickets_taken != before + 1)
			die("the handshake did not resume", -1);
		cpu += p.srv_cpu;
		n++;
		pair_free(&p);
	}
	mbedtls_ssl_session_free(&sess);
	return cpu / (double)n * 1e6;
}

/* Seconds of CPU per GiB the server spends writing 16 KiB TLS 1.3 records. */
static double record_cost(double seconds)
{
	static struct pair p;
	static unsigned char data[16384];
	double t0, cpu;
	uint64_t bytes = 0;

	handshake(&p, 1, NULL, NULL);
	p.sink = 1;
	t0 = cpu_now();
	while ((cpu = cpu_now() - t0) < seconds) {
		int rc = mbedtls_ssl_write(&p.srv, data, sizeof data);
		if (rc <= 0)
			die("write", rc);
		bytes += (uint64_t)rc;
	}
	pair_free(&p);
	return cpu / ((double)bytes / (1 << 30));
}

/* Seconds of CPU per GiB for bare AES-128-GCM through PSA, 16 KiB at a time. */
static double aead_cost(double seconds)
{
	static unsigned char in[16384], out[16384 + 16];
	psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;
	unsigned char nonce[12] = { 0 }, k[16] = { 1 };
	psa_key_id_t id;
	size_t olen;
	uint64_t bytes = 0;
	double t0 = cpu_now(), cpu;

	psa_set_key_usage_flags(&a, PSA_KEY_USAGE_ENCRYPT);
	psa_set_key_algorithm(&a, PSA_ALG_GCM);
	psa_set_key_type(&a, PSA_KEY_TYPE_AES);
	psa_set_key_bits(&a, 128);
	if (psa_import_key(&a, k, sizeof k, &id) != PSA_SUCCESS)
		die("import key", -1);
	while ((cpu = cpu_now() - t0) < seconds) {
		nonce[0]++;
		if (psa_aead_encrypt(id, PSA_ALG_GCM, nonce, sizeof nonce, NULL, 0, in, sizeof in,
		                     out, sizeof out, &olen) != PSA_SUCCESS)
			die("aead", -1);
		bytes += sizeof in;
	}
	psa_destroy_key(id);
	return cpu / ((double)bytes / (1 << 30));
}

int main(int argc, char **argv)
{
	double s = argc > 4 ? atof(argv[4]) : 2.0;
	double full12, full13, res12, res13, records, aead;

	if (argc < 4) {
		fprintf(stderr, "usage: tlsraw CERT KEY CA [SECONDS]\n");
		return 2;
	}
	if (psa_crypto_init() != PSA_SUCCESS)
		die("psa_crypto_init", -1);
	setup_server(argv[1], argv[2]);
	setup_client(argv[3]);
	full12 = per_handshake(0, 0, s);
	full13 = per_handshake(1, 0, s);
	res12 = per_handshake(0, 1, s);
	res13 = per_handshake(1, 1, s);
	records = record_cost(s);
	aead = aead_cost(s);
	printf("{\"full_tls12_us\":%.1f,\"full_tls13_us\":%.1f,\"resumed_tls12_us\":%.1f,"
	       "\"resumed_tls13_us\":%.1f,\"records_s_per_gib\":%.3f,\"aead_s_per_gib\":%.3f}\n",
	       full12, full13, res12, res13, records, aead);
	mbedtls_ssl_config_free(&sconf);
	mbedtls_ssl_config_free(&cconf);
	mbedtls_ssl_ticket_free(&tickets);
	mbedtls_x509_crt_free(&chain);
	mbedtls_x509_crt_free(&ca);
	mbedtls_pk_free(&key);
	mbedtls_psa_crypto_free();
	return 0;
}
