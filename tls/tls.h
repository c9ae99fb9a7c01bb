/*
 * tls: the only moat code that includes mbedTLS.
 *
 * Three shared objects, built by the main thread (at startup and on each
 * reload) and then only read by workers (mbedTLS is built with
 * MBEDTLS_THREADING_C):
 *  - a tls_cert is one certificate chain with its private key, plus what
 *    moat reads from the leaf (names for SNI, key type, expiry);
 *  - a tls_tickets holds the session ticket keys of one listener: made
 *    once, rotated by mbedTLS every ticket lifetime (random keys) or
 *    kept as given (a shared file's), shared by every worker and kept
 *    across reloads; reference-counted;
 *  - a tls_server is one listener's TLS configuration: the policy (versions,
 *    suites, groups, preference), its certificates (it borrows them: they
 *    must outlive it), ALPN, client certificates, its tickets (it holds a
 *    reference).
 *
 * A tls_conn is one session's TLS state. It does no I/O of its own:
 *  - ciphertext from the socket is lent with tls_conn_input(); the next
 *    tls_handshake()/tls_read() calls consume it; what they did not need
 *    is reported by tls_conn_unread() and must be lent again later;
 *  - ciphertext to the socket is handed to the send callback given at
 *    creation, which must take all of it (queueing what the socket does
 *    not take) or fail.
 * The tls_server it was made from must outlive it.
 *
 * Results: 0 or a byte count on success, TLS_AGAIN when more input is
 * needed, TLS_EOF when the peer sent close_notify, another negative value
 * on a fatal error (tls_strerror() explains it).
 */
#ifndef MOAT_TLS_H
#define MOAT_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "tls_names.h"

#define TLS_AGAIN (-1)
#define TLS_EOF   (-2)
/* any other negative value is an mbedTLS error code */

typedef struct tls_cert tls_cert;
typedef struct tls_tickets tls_tickets;
typedef struct tls_server tls_server;
typedef struct tls_conn tls_conn;

/* Called with ciphertext to send; returns 0 when taken, < 0 to fail. */
typedef int (*tls_send_fn)(void *ctx, const uint8_t *buf, size_t len);

/* Process-wide set-up (PSA crypto); call once before any thread starts. */
int tls_global_init(char *err, size_t errlen) __attribute__((warn_unused_result));
void tls_global_free(void);

/* ---- certificates ---- */

/* Loads a PEM chain (leaf first) and its key and checks that they match.
 * On failure returns TLS_BAD_CERT or TLS_BAD_KEY (which file is at fault;
 * a key that does not match is TLS_BAD_KEY) with a message in err. The
 * key file is read through one descriptor whose mode is kept for
 * tls_cert_key_mode(); its bytes are wiped after parsing. */
#define TLS_BAD_CERT (-1)
#define TLS_BAD_KEY  (-2)
int tls_cert_load(tls_cert **out, const char *cert_path, const char *key_path,
                  char *err, size_t errlen) __attribute__((warn_unused_result));
/* Frees the chain and wipes the key. */
void tls_cert_free(tls_cert *c);

/* The key file's permission bits (st_mode & 07777) when it was read. */
unsigned tls_cert_key_mode(const tls_cert *c);
/* "ECDSA P-256", "RSA 2048". */
const char *tls_cert_key_type(const tls_cert *c);
/* The leaf's subject, as mbedTLS prints it ("O=x, CN=y"). */
const char *tls_cert_subject(const tls_cert *c);
/* The leaf's DNS names (subjectAltName dNSName entries, or the CN when
 * there are none), lowercase; n-th or NULL past the end. */
const char *tls_cert_name(const tls_cert *c, size_t n);
/* The leaf's notAfter as a UTC time_t. */
time_t tls_cert_not_after(const tls_cert *c);
/* 2: host equals one of the names, 1: a "*.rest" name covers host (one
 * label, not the bare domain), 0: neither. Case-insensitive. */
int tls_cert_covers(const tls_cert *c, const char *host);
/* Same for one name; pure, for tests. */
int tls_name_matches(const char *name, const char *host);

/* ---- session tickets ---- */

/* New random ticket keys (AES-256-GCM), rotated every lifetime_s seconds;
 * a ticket is accepted for lifetime_s after it was issued. NULL with a
 * message in err on failure. One reference, the caller's. */
tls_tickets *tls_tickets_new(uint32_t lifetime_s, char *err, size_t errlen);
/* Keys several moat instances share ([tls] ticket_key_file): n keys of
 * TLS_TICKET_KEY_BYTES each (4-byte name, 32-byte AES-256-GCM key),
 * newest first. The newest encrypts new tickets; every one decrypts. They
 * stay for as long as the tls_tickets lives (never replaced by random
 * ones); a ticket is still accepted for lifetime_s after it was issued.
 * The caller wipes its copy; the tls_tickets keeps one, wiped when freed. */
#define TLS_TICKET_KEYS_MAX 4
#define TLS_TICKET_KEY_BYTES 36
tls_tickets *tls_tickets_from_keys(const uint8_t *keys, size_t n, uint32_t lifetime_s,
                                   char *err, size_t errlen);
tls_tickets *tls_tickets_ref(tls_tickets *t);
void tls_tickets_unref(tls_tickets *t);
uint32_t tls_tickets_lifetime(const tls_tickets *t);

/* ---- servers ---- */

/* What all listeners share, from [tls]. Lists are 0-terminated. */
struct tls_policy {
	int min_tls13;                /* TLS 1.3 only; else 1.2 and 1.3 */
	uint16_t tls12_suites[TLS_MAX_SUITES + 1];
	uint16_t tls13_suites[TLS_MAX_SUITES + 1];
	uint16_t groups[TLS_MAX_GROUPS + 1];
	int prefer_server;            /* our suite order, not the client's */
};

enum tls_client_auth { TLS_CLIENT_NONE = 0, TLS_CLIENT_OPTIONAL, TLS_CLIENT_REQUIRED };

/* One listener's own part. */
struct tls_listener_opts {
	const char *alpn;             /* "imap" or "pop3": the only ALPN accepted */
	tls_cert *const *certs;       /* borrowed; the first and those with its */
	size_t ncerts;                /* names serve clients without a matching SNI */
	enum tls_client_auth client_auth;
	const char *client_ca;        /* PEM file, when client_auth is set */
	tls_tickets *tickets;         /* NULL: no resumption */
};

/* Builds a listener's server context. 0, or -1 with a message in err
 * (a client CA file that does not load, a policy mbedTLS refuses). */
int tls_server_new(tls_server **out, const struct tls_policy *pol,
                   const struct tls_listener_opts *o, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void tls_server_free(tls_server *srv);

/* Whether TLS 1.3 follows prefer_server too (moat's patched mbedTLS). */
int tls_tls13_server_order(void);

/* ---- clients: moat to a backend ---- */

/* A client context (a tls_server made for the other side): the policy's
 * versions, suites and groups; the server's certificate must chain to a
 * CA in ca_file (PEM) and carry the name given per connection. 0, or -1
 * with a message in err. Freed with tls_server_free(). */
int tls_client_new(tls_server **out, const struct tls_policy *pol, const char *ca_file,
                   char *err, size_t errlen) __attribute__((warn_unused_result));

/* A new client-side connection to a server that must prove hostname
 * (also sent as SNI); NULL when out of memory. tls_handshake() fails
 * with MBEDTLS_ERR_X509_CERT_VERIFY_FAILED when it does not. */
tls_conn *tls_conn_new_client(const tls_server *cli, const char *hostname, tls_send_fn send,
                              void *send_ctx);

/* Why the peer's certificate did not verify ("" when it did), one line. */
const char *tls_verify_info(const tls_conn *c, char *buf, size_t size);

/* ---- connections ---- */

/* A new server-side connection; NULL when out of memory. */
tls_conn *tls_conn_new(const tls_server *srv, tls_send_fn send, void *send_ctx);
void tls_conn_free(tls_conn *c);

/* Lends ciphertext received from the peer (replaces any earlier loan). */
void tls_conn_input(tls_conn *c, const uint8_t *buf, size_t len);
/* Ciphertext of the current loan not consumed yet. */
size_t tls_conn_unread(const tls_conn *c, const uint8_t **p);

/* Advances the handshake: 0 done, TLS_AGAIN, or an error. A client
 * certificate that was offered on an "optional" listener and does not
 * verify fails the handshake here. */
int tls_handshake(tls_conn *c) __attribute__((warn_unused_result));

/* Decrypts into buf: bytes (> 0), TLS_AGAIN, TLS_EOF or an error. */
ssize_t tls_read(tls_conn *c, uint8_t *buf, size_t cap) __attribute__((warn_unused_result));

/* Encrypts all of buf into records handed to the send callback; 0 or an
 * error. */
int tls_write(tls_conn *c, const uint8_t *buf, size_t len) __attribute__((warn_unused_result));

/* Sends close_notify (best effort). */
void tls_close_notify(tls_conn *c);

/* Between two events of an established connection: with nothing lent,
 * read, half-read or waiting to go out, its record buffers (about 33 KiB)
 * go back to the allocator until the next tls_* call that needs them
 * (automatic). Returns 1 when it released them now, else 0 (busy,
 * released already, or an mbedTLS without the patch). */
int tls_conn_rest(tls_conn *c);
/* Whether its buffers are released. */
int tls_conn_resting(const tls_conn *c);
/* Whether this build can release them (the bundled, patched mbedTLS). */
int tls_conn_rest_supported(void);

/* Once the handshake is done: "TLSv1.3", the suite's IANA name, whether a
 * ticket resumed the session, the ALPN protocol agreed ("" if none), the
 * SNI name the client sent ("" if none), and the verified client
 * certificate's subject ("" if none). */
const char *tls_version(const tls_conn *c);
const char *tls_cipher(const tls_conn *c);
int tls_resumed(const tls_conn *c);
const char *tls_alpn(const tls_conn *c);
const char *tls_sni(const tls_conn *c);
const char *tls_peer_subject(const tls_conn *c);

/* The agreed suite's IANA id, and 12 or 13 for the version. */
uint16_t tls_suite_id(const tls_conn *c);
int tls_version_number(const tls_conn *c);

/* Text for an error returned above. */
const char *tls_strerror(int err, char *buf, size_t size);

/* What kind of failure a handshake error is, for counting. */
enum tls_fail {
	TLS_FAIL_PROTOCOL = 0,        /* not TLS, or broken TLS */
	TLS_FAIL_VERSION,             /* no version in common */
	TLS_FAIL_CIPHER,              /* no suite, group or signature in common */
	TLS_FAIL_ALPN,                /* another application protocol */
	TLS_FAIL_CLIENT_CERT,         /* client certificate missing or invalid */
	TLS_FAIL_CLOSED,              /* the peer closed or sent an alert */
};
enum tls_fail tls_failure_kind(int err);

/* "mbedTLS 3.6.6" */
const char *tls_library_version(void);

#endif /* MOAT_TLS_H */
