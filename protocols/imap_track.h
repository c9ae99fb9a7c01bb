/*
 * imap_track: where a stream of IMAP server responses stands, so that
 * moat can add a line of its own (an untagged "* BYE" at shutdown)
 * between two responses and never inside one or inside a message body.
 *
 * Pure: feed the bytes sent to the client, in order; ask whether the
 * stream is at a boundary (the last byte ended a response line, and no
 * literal is due). Literal data ({n} or {n+} at a line end) is skipped by
 * count without being examined, so a 64 MiB FETCH costs one call.
 */
#ifndef MOAT_IMAP_TRACK_H
#define MOAT_IMAP_TRACK_H

#include <stddef.h>
#include <stdint.h>

#define IMAP_TRACK_TAIL 24            /* bytes of a cut line kept for "{n}" */

struct imap_track {
	uint64_t literal_left;        /* literal bytes still to come */
	uint8_t tail[IMAP_TRACK_TAIL]; /* the end of a line cut across feeds */
	uint8_t tail_len;
	uint8_t mid;                  /* inside a response (a line, or after a literal) */
};

void imap_track_feed(struct imap_track *t, const uint8_t *p, size_t n);

/* 1 between responses, 0 inside one. A fresh tracker is at a boundary. */
int imap_track_at_boundary(const struct imap_track *t);

/* If the line (with or without its CRLF) ends with a literal's "{n}" or
 * "{n+}", returns n (its bytes follow the line) and sets *announced;
 * else 0 and *announced = 0. n above 10^12 is not a literal here. */
uint64_t imap_trailing_literal(const uint8_t *line, size_t len, int *announced);

#endif /* MOAT_IMAP_TRACK_H */
