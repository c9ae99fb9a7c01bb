/*
 * imap_capf: for transparent IMAP relays, removes STARTTLS and
 * LOGINDISABLED from what the backend advertises (its greeting's
 * [CAPABILITY] code, "* CAPABILITY" lines and tagged responses with a
 * [CAPABILITY] code): the client already has TLS from moat, and a
 * backend's "STARTTLS" would only invite a downgrade or a failure.
 *
 * Pure: feed backend bytes, get the filtered bytes through the emit
 * callback, in order. Response lines are examined whole (a line cut
 * across reads is held, up to IMAP_CAPF_LINE_MAX; a longer line passes
 * unexamined); literal data ({n} at a line end) passes untouched without
 * copying, so message bodies are never altered.
 */
#ifndef MOAT_IMAP_CAPF_H
#define MOAT_IMAP_CAPF_H

#include <stddef.h>
#include <stdint.h>

#define IMAP_CAPF_LINE_MAX 8192

typedef int (*imap_capf_emit)(void *ctx, const uint8_t *p, size_t n);

struct imap_capf {
	uint64_t literal_left;        /* literal bytes still to pass through */
	uint8_t *hold;                /* a line cut across reads, or NULL */
	size_t hold_len;
	unsigned passing : 1;         /* an over-long line: pass until LF */
	uint8_t tail[32];             /* its last bytes, for a "{n}" at its end */
	size_t tail_len;
};

/* Filters len bytes; 0, or the first non-zero emit result, or -1 when
 * out of memory. */
int imap_capf_feed(struct imap_capf *f, const uint8_t *p, size_t len, imap_capf_emit emit,
                   void *ctx) __attribute__((warn_unused_result));

void imap_capf_free(struct imap_capf *f);

#endif /* MOAT_IMAP_CAPF_H */
