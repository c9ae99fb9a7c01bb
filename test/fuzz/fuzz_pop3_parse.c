/*
 * fuzz_pop3_parse: libFuzzer target for protocols/pop3_parse.c.
 *
 * The input is what a POP3 client sends before login. It is parsed with
 * the RFC 2449 line limit and with a tiny one, each whole (re-fed from
 * buf + used), byte by byte and in pseudo-random chunks, the way the
 * dialogue uses the parser: line mode after "AUTH PLAIN" without an
 * initial response, wipes after PASS, AUTH, response lines and rejected
 * lines.
 *
 * Checked: *used and progress on every call; each line against the
 * header (keyword of 3-4 letters upper-cased, argument after one space
 * and inside the line, no CR, LF or NUL stored, length within max_line);
 * rejected lines leave no result behind; wipes zero the buffer; the three
 * runs agree result for result.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "pop3_parse.h"

static const uint32_t max_lines[] = { 255, 6 };

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM };

struct transcript {
	uint64_t hash;
	size_t results;
	size_t end;
};

static int letter(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* A line just returned; bytes is how much input it took. */
static void check_line(const struct pop3_parser *p, size_t bytes, int line_mode)
{
	const uint8_t *l = (const uint8_t *)p->line;

	CHECK(p->error == NULL);
	CHECK(l == p->buf);
	CHECK(p->line_len <= p->max_line && l[p->line_len] == '\0');
	CHECK(bytes <= (size_t)p->max_line + 2);      /* the line and its CRLF */
	CHECK(memchr(l, '\0', p->line_len) == NULL);
	CHECK(memchr(l, '\r', p->line_len) == NULL);
	CHECK(memchr(l, '\n', p->line_len) == NULL);
	CHECK(p->arg != NULL && p->arg >= p->line && p->arg + p->arg_len == p->line + p->line_len);
	if (line_mode) {
		CHECK(p->name[0] == '\0' && p->arg == p->line);
		return;
	}
	size_t k = strnlen(p->name, sizeof p->name);
	CHECK(k == 3 || k == 4);
	for (size_t i = 0; i < k; i++)
		CHECK(p->name[i] >= 'A' && p->name[i] <= 'Z');
	CHECK(strncasecmp(p->line, p->name, k) == 0);
	CHECK(p->line_len == k || (l[k] == ' ' && p->arg == p->line + k + 1));
	for (size_t i = 0; i < k; i++)
		CHECK(letter(l[i]));
}

static void check_bad(const struct pop3_parser *p)
{
	CHECK(p->error != NULL);
	CHECK(p->name[0] == '\0' && p->line == NULL && p->arg == NULL);
	CHECK(p->line_len == 0 && p->arg_len == 0);
}

static void record(struct transcript *t, const struct pop3_parser *p, enum pop3_rc rc,
                   size_t off)
{
	uint64_t h = fz_hash_u64(t->hash, (uint64_t)rc);

	h = fz_hash_u64(h, off);
	if (rc == POP3_LINE) {
		h = fz_hash(h, p->name, strlen(p->name) + 1);
		h = fz_hash(h, p->line, p->line_len + 1);
		h = fz_hash_u64(h, (uint64_t)(p->arg - p->line));
	} else {
		h = fz_hash(h, p->error, strlen(p->error) + 1);
	}
	t->hash = h;
	t->results++;
}

/* The line may have held a secret: wipe it and check it is gone. */
static void wipe(struct pop3_parser *p)
{
	pop3_wipe(p);
	CHECK(fz_all_zero(p->buf, (size_t)p->max_line + 1));
	CHECK(p->line_len == 0 && p->arg_len == 0 && p->line[0] == '\0' && p->arg[0] == '\0');
}

static size_t next_chunk(enum split how, size_t off, size_t len, uint64_t *seed)
{
	size_t n;

	switch (how) {
	case SPLIT_WHOLE:
		return len;
	case SPLIT_BYTES:
		return off + 1;
	default:
		n = 1 + (size_t)(fz_rand(seed) % 19);
		return off + n < len ? off + n : len;
	}
}

static void run(const uint8_t *in, size_t len, uint32_t max_line, enum split how,
                struct transcript *t)
{
	struct pop3_parser p;
	size_t off = 0, chunk_end = 0, line_bytes = 0, calls = 0;
	uint64_t seed = len * 0x9e3779b97f4a7c15ULL + max_line;
	int line_mode = 0;

	CHECK(pop3_init(&p, max_line) == 0);
	t->hash = FZ_HASH_INIT;
	t->results = 0;
	while (off < len) {
		size_t n, used = (size_t)-1;
		enum pop3_rc rc;

		if (off == chunk_end)
			chunk_end = next_chunk(how, off, len, &seed);
		n = chunk_end - off;
		rc = pop3_feed(&p, in + off, n, &used);
		CHECK(++calls <= 2 * len + 2);
		CHECK(used <= n);
		CHECK(rc == POP3_NEED_MORE ? used == n : used > 0);
		off += used;
		line_bytes += used;
		if (rc == POP3_NEED_MORE)
			continue;
		if (rc == POP3_LINE)
			check_line(&p, line_bytes, line_mode);
		else
			check_bad(&p);
		record(t, &p, rc, off);
		line_bytes = 0;
		if (rc == POP3_BAD || line_mode) {
			line_mode = 0;
			wipe(&p);
			continue;
		}
		if (strcmp(p.name, "AUTH") == 0 && strcasecmp(p.arg, "PLAIN") == 0) {
			wipe(&p);
			pop3_expect_line(&p);
			line_mode = 1;
		} else if (strcmp(p.name, "PASS") == 0 || strcmp(p.name, "AUTH") == 0) {
			wipe(&p);
		}
	}
	t->end = off;
	pop3_reset(&p);
	CHECK(fz_all_zero(p.buf, (size_t)max_line + 1));
	pop3_free(&p);
	CHECK(p.buf == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t m = 0; m < sizeof max_lines / sizeof *max_lines; m++) {
		struct transcript whole, bytes, chunks;

		run(data, size, max_lines[m], SPLIT_WHOLE, &whole);
		run(data, size, max_lines[m], SPLIT_BYTES, &bytes);
		run(data, size, max_lines[m], SPLIT_RANDOM, &chunks);
		CHECK(whole.results == bytes.results && whole.results == chunks.results);
		CHECK(whole.end == bytes.end && whole.end == chunks.end);
		CHECK(whole.hash == bytes.hash && whole.hash == chunks.hash);
	}
	return 0;
}
