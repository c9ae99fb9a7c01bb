/* imap_capf: see imap_capf.h. */
#include "imap_capf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap.h"
#include "imap_track.h"

/* Where the capability list starts in a response line, or 0: "*
 * CAPABILITY list", or "TAG|* STATUS [CAPABILITY list] text". */
static size_t caps_start(const uint8_t *line, size_t n, size_t *caps_end)
{
	static const char *const status[] = { "OK ", "NO ", "BAD ", "BYE ", "PREAUTH " };
	const char *s = (const char *)line;
	const char *sp = memchr(s, ' ', n);
	size_t at;

	if (!sp)
		return 0;
	at = (size_t)(sp - s) + 1;
	if (n - at > 11 && s[0] == '*' && at == 2 && strncasecmp(s + at, "CAPABILITY ", 11) == 0) {
		*caps_end = n;
		return at + 11;
	}
	for (size_t i = 0; i < sizeof status / sizeof *status; i++) {
		size_t l = strlen(status[i]);
		if (n - at > l + 12 && strncasecmp(s + at, status[i], l) == 0 &&
		    strncasecmp(s + at + l, "[CAPABILITY ", 12) == 0) {
			const char *close = memchr(s + at + l + 12, ']', n - at - l - 12);
			if (!close)
				return 0;
			*caps_end = (size_t)(close - s);
			return at + l + 12;
		}
	}
	return 0;
}

/* Emits one whole line, rewritten when it carries capabilities. */
static int emit_line(struct imap_capf *f, const uint8_t *line, size_t n, imap_capf_emit emit,
                     void *ctx)
{
	size_t cend = 0, cstart = caps_start(line, n, &cend);
	char caps[IMAP_CAPF_LINE_MAX];
	int rc, announced;

	f->literal_left = imap_trailing_literal(line, n, &announced);
	if (!cstart)
		return emit(ctx, line, n);
	if (cend == n) {
		/* "* CAPABILITY list\r\n": keep the line end */
		while (cend > cstart && (line[cend - 1] == '\r' || line[cend - 1] == '\n'))
			cend--;
	}
	if ((rc = emit(ctx, line, cstart)) != 0)
		return rc;
	imap_caps_filter((const char *)line + cstart, cend - cstart, 0, caps, sizeof caps);
	if ((rc = emit(ctx, (const uint8_t *)caps, strlen(caps))) != 0)
		return rc;
	return emit(ctx, line + cend, n - cend);
}

/* Keeps the last bytes of an over-long line passing through, so that a
 * literal announced at its end is still seen. */
static void track_tail(struct imap_capf *f, const uint8_t *p, size_t n)
{
	size_t keep = sizeof f->tail;

	if (n == 0)
		return;                   /* p may be NULL (no line held) */
	if (n >= keep) {
		memcpy(f->tail, p + n - keep, keep);
		f->tail_len = keep;
		return;
	}
	if (f->tail_len + n > keep) {
		size_t drop = f->tail_len + n - keep;
		memmove(f->tail, f->tail + drop, f->tail_len - drop);
		f->tail_len -= drop;
	}
	memcpy(f->tail + f->tail_len, p, n);
	f->tail_len += n;
}

/* An over-long line ended (nl) or goes on: note a trailing literal. */
static void passing_end(struct imap_capf *f, int nl)
{
	int announced;

	f->passing = !nl;
	if (nl) {
		f->literal_left = imap_trailing_literal(f->tail, f->tail_len, &announced);
		f->tail_len = 0;
	}
}

/* Adds bytes to the held partial line. */
static int hold(struct imap_capf *f, const uint8_t *p, size_t n)
{
	if (!f->hold) {
		f->hold = malloc(IMAP_CAPF_LINE_MAX);
		if (!f->hold)
			return -1;
	}
	memcpy(f->hold + f->hold_len, p, n);
	f->hold_len += n;
	return 0;
}

int imap_capf_feed(struct imap_capf *f, const uint8_t *p, size_t len, imap_capf_emit emit,
                   void *ctx)
{
	int rc;

	while (len > 0) {
		const uint8_t *nl;
		size_t n;

		if (f->literal_left > 0) {
			n = len < f->literal_left ? len : (size_t)f->literal_left;
			if ((rc = emit(ctx, p, n)) != 0)
				return rc;
			f->literal_left -= n;
			p += n;
			len -= n;
			continue;
		}
		nl = memchr(p, '\n', len);
		n = nl ? (size_t)(nl - p) + 1 : len;
		if (f->passing) {
			/* the rest of an over-long line */
			if ((rc = emit(ctx, p, n)) != 0)
				return rc;
			track_tail(f, p, n);
			passing_end(f, nl != NULL);
		} else if (!nl || f->hold_len || n > IMAP_CAPF_LINE_MAX) {
			if (f->hold_len + n > IMAP_CAPF_LINE_MAX) {
				/* too long to be a capability line: let it through */
				if (f->hold_len && (rc = emit(ctx, f->hold, f->hold_len)) != 0)
					return rc;
				f->tail_len = 0;
				track_tail(f, f->hold, f->hold_len);
				f->hold_len = 0;
				if ((rc = emit(ctx, p, n)) != 0)
					return rc;
				track_tail(f, p, n);
				passing_end(f, nl != NULL);
			} else {
				if (hold(f, p, n) != 0)
					return -1;
				if (nl) {
					rc = emit_line(f, f->hold, f->hold_len, emit, ctx);
					f->hold_len = 0;
					free(f->hold);
					f->hold = NULL;
					if (rc != 0)
						return rc;
				}
			}
		} else if ((rc = emit_line(f, p, n, emit, ctx)) != 0) {
			return rc;
		}
		p += n;
		len -= n;
	}
	return 0;
}

void imap_capf_free(struct imap_capf *f)
{
	free(f->hold);
	f->hold = NULL;
	f->hold_len = 0;
}
