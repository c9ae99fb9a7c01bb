/*
 * tls: the only moat code that includes mbedTLS.
 *
 * A tls_server holds what all sessions share: the mbedTLS server config,
 * certificate chain and key. It is built once by the main thread and then
 * only read by workers (mbedTLS is built with MBEDTLS_THREADING_C).
 *
 * A tls_conn is one session's TLS state. It does no I/O of its own:
 *  - ciphertext from the socket is lent with tls_conn_input(); the next
 *    tls_handshake()/tls_read() calls consume it; what they did not need
 *    is reported by tls_conn_unread() and must be lent again later;
 *  - ciphertext to the socket is handed to the send callback given at
 *    creation, which must take all of it (queueing what the socket does
 *    not take) or fail.
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

#define TLS_AGAIN (-1)
#define TLS_EOF   (-2)
/* any other negative value is an mbedTLS error code */

typedef struct tls_server tls_server;
typedef struct tls_conn tls_conn;

/* Called with ciphertext to send; returns 0 when taken, < 0 to fail. */
typedef int (*tls_send_fn)(void *ctx, const uint8_t *buf, size_t len);

/* Process-wide set-up (PSA crypto); call once before any thread starts. */
int tls_global_init(char *err, size_t errlen) __attribute__((warn_unused_result));
void tls_global_free(void);

/* Loads the PEM chain (leaf first) and key, checks they match and builds
 * the server config: TLS 1.2 minimum, TLS 1.3 preferred, AEAD suites,
 * X25519/P-256/P-384. On failure returns TLS_BAD_CERT or TLS_BAD_KEY
 * (which file is at fault; a key that does not match is TLS_BAD_KEY) with
 * a message in err. */
#define TLS_BAD_CERT (-1)
#define TLS_BAD_KEY  (-2)
int tls_server_new(tls_server **out, const char *cert_path, const char *key_path,
                   char *err, size_t errlen) __attribute__((warn_unused_result));
void tls_server_free(tls_server *srv);

/* A new server-side connection; NULL when out of memory. */
tls_conn *tls_conn_new(const tls_server *srv, tls_send_fn send, void *send_ctx);
void tls_conn_free(tls_conn *c);

/* Lends ciphertext received from the peer (replaces any earlier loan). */
void tls_conn_input(tls_conn *c, const uint8_t *buf, size_t len);
/* Ciphertext of the current loan not consumed yet. */
size_t tls_conn_unread(const tls_conn *c, const uint8_t **p);

/* Advances the handshake: 0 done, TLS_AGAIN, or an error. */
int tls_handshake(tls_conn *c) __attribute__((warn_unused_result));

/* Decrypts into buf: bytes (> 0), TLS_AGAIN, TLS_EOF or an error. */
ssize_t tls_read(tls_conn *c, uint8_t *buf, size_t cap) __attribute__((warn_unused_result));

/* Encrypts all of buf into records handed to the send callback; 0 or an
 * error. */
int tls_write(tls_conn *c, const uint8_t *buf, size_t len) __attribute__((warn_unused_result));

/* Sends close_notify (best effort). */
void tls_close_notify(tls_conn *c);

/* "TLSv1.3" and mbedTLS's suite name, once the handshake is done. */
const char *tls_version(const tls_conn *c);
const char *tls_cipher(const tls_conn *c);

/* Text for an error returned above. */
const char *tls_strerror(int err, char *buf, size_t size);

/* "mbedTLS 3.6.6" */
const char *tls_library_version(void);

#endif /* MOAT_TLS_H */
