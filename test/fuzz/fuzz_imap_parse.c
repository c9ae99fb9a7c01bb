/*
 * fuzz_imap_parse: libFuzzer target for protocols/imap_parse.c.
 *
 * The input is what a client sends before login. It is parsed under two
 * sets of limits (the usual ones and very tight ones, so every cap is
 * reached), each three ways: whole (re-fed from buf + used after each
 * result), byte by byte, and in pseudo-random chunks. The parser is used
 * as the dialogue uses it: line mode for the responses after
 * "AUTHENTICATE mech" (one line, two for LOGIN), wipes after credentials
 * and rejected lines, nothing fed after IMAP_FATAL.
 *
 * Checked: *used within the buffer and progress on every call; every
 * result against the header's promises (tag and name syntax, argument
 * count, types and bounds, NUL-terminated data inside the parser's
 * buffer, literal and command caps); wipes leave the buffer all zero; and
 * the three runs give the same results at the same offsets.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "imap_parse.h"

struct limits {
	uint32_t max_cmd, max_literal;
};

static const struct limits limits[] = {
	{ 1024, 256 },
	{ 40, 16 },
};

enum split { SPLIT_WHOLE, SPLIT_BYTES, SPLIT_RANDOM };

/* What one run produced, for comparing runs. */
struct transcript {
	uint64_t hash;
	size_t results;
	size_t end;                   /* input offset where the run stopped */
};

/* ATOM-CHAR as RFC 9051 defines it, written out independently. */
static int atom_char(uint8_t c)
{
	static const char specials[] = "(){%*\"\\]";

	if (c <= 0x20 || c >= 0x7f)
		return 0;
	for (const char *s = specials; *s; s++)
		if ((uint8_t)*s == c)
			return 0;
	return 1;
}

/* Tag characters: ASTRING-CHAR without '+'. */
static int tag_char(uint8_t c)
{
	return (atom_char(c) || c == ']') && c != '+';
}

/* The size of the parser's argument buffer (imap_init allocates it). */
static size_t data_size(const struct imap_parser *p)
{
	return (size_t)p->max_cmd + IMAP_ARGS_MAX + 1;
}

static void check_tag(const char *tag, int may_be_empty)
{
	size_t n = strnlen(tag, IMAP_TAG_MAX + 1);

	CHECK(n <= IMAP_TAG_MAX);
	CHECK(n > 0 || may_be_empty);
	for (size_t i = 0; i < n; i++)
		CHECK(tag_char((uint8_t)tag[i]));
}

/* One argument of a command: inside the buffer, NUL-terminated, and what
 * its type allows. */
static void check_arg(const struct imap_parser *p, const struct imap_arg *a, int line_mode)
{
	const uint8_t *lo = p->data, *hi = p->data + data_size(p);
	const uint8_t *d = (const uint8_t *)a->data;

	CHECK(d != NULL && d >= lo && d < hi);
	CHECK(a->len < (size_t)(hi - d));
	CHECK(d[a->len] == '\0');
	CHECK(memchr(d, 0, a->len) == NULL);
	CHECK(a->len <= p->max_cmd);
	if (line_mode) {
		CHECK(a->type == IMAP_ARG_LINE);
		CHECK(memchr(d, '\n', a->len) == NULL);
		return;
	}
	switch (a->type) {
	case IMAP_ARG_ATOM:
		CHECK(a->len > 0);
		for (size_t i = 0; i < a->len; i++)
			CHECK(atom_char(d[i]) || d[i] == ']' || d[i] >= 0x80);
		break;
	case IMAP_ARG_QUOTED:
		CHECK(memchr(d, '\r', a->len) == NULL && memchr(d, '\n', a->len) == NULL);
		break;
	case IMAP_ARG_LITERAL:
		CHECK(a->len <= p->max_literal);
		break;
	case IMAP_ARG_LIST:
		CHECK(a->len == 0);       /* content is checked, not kept */
		break;
	default:
		CHECK(!"argument type");
	}
}

/* A result just returned; bytes is how much input the command took. */
static void check_result(const struct imap_parser *p, enum imap_rc rc, size_t bytes,
                         int line_mode)
{
	switch (rc) {
	case IMAP_COMMAND:
		CHECK(p->error == NULL);
		CHECK(p->nargs <= IMAP_ARGS_MAX);
		if (line_mode) {
			CHECK(p->tag[0] == '\0' && p->name[0] == '\0' && p->nargs == 1);
			CHECK(bytes <= (size_t)p->max_cmd + 1);
		} else {
			size_t n = strnlen(p->name, IMAP_NAME_MAX + 1);
			check_tag(p->tag, 0);
			CHECK(n > 0 && n <= IMAP_NAME_MAX);
			for (size_t i = 0; i < n; i++)
				CHECK(atom_char((uint8_t)p->name[i]) &&
				      !(p->name[i] >= 'a' && p->name[i] <= 'z'));
			CHECK(bytes <= p->max_cmd);
		}
		for (unsigned i = 0; i < p->nargs; i++)
			check_arg(p, &p->args[i], line_mode);
		break;
	case IMAP_SEND_CONTINUATION:
		CHECK(!line_mode);
		CHECK(p->lit_len <= p->max_literal);
		CHECK(p->line_len + p->lit_len <= p->max_cmd);
		check_tag(p->tag, 0);
		break;
	case IMAP_BAD:
		CHECK(p->error != NULL && p->nargs == 0);
		check_tag(p->tag, 1);
		break;
	case IMAP_FATAL:
		CHECK(p->error != NULL && p->nargs == 0);
		break;
	default:
		CHECK(!"result code");
	}
}

/* Adds a result to the transcript (argument data included). */
static void record(struct transcript *t, const struct imap_parser *p, enum imap_rc rc,
                   size_t off)
{
	uint64_t h = fz_hash_u64(t->hash, (uint64_t)rc);

	h = fz_hash_u64(h, off);
	h = fz_hash(h, p->tag, strlen(p->tag) + 1);
	if (rc == IMAP_COMMAND) {
		h = fz_hash(h, p->name, strlen(p->name) + 1);
		h = fz_hash_u64(h, p->nargs);
		for (unsigned i = 0; i < p->nargs; i++) {
			h = fz_hash_u64(h, (uint64_t)p->args[i].type);
			h = fz_hash(h, p->args[i].data, p->args[i].len + 1);
		}
	}
	if (p->error)
		h = fz_hash(h, p->error, strlen(p->error) + 1);
	t->hash = h;
	t->results++;
}

/* Wipes what may hold credentials and checks that it is gone. */
static void wipe(struct imap_parser *p)
{
	imap_wipe(p);
	CHECK(fz_all_zero(p->data, data_size(p)));
}

/* The end of the next chunk the session would have read. */
static size_t next_chunk(enum split how, size_t off, size_t len, uint64_t *seed)
{
	size_t n;

	switch (how) {
	case SPLIT_WHOLE:
		return len;
	case SPLIT_BYTES:
		return off + 1;
	default:
		n = 1 + (size_t)(fz_rand(seed) % 23);
		return off + n < len ? off + n : len;
	}
}

/* Parses the whole input once, split as asked. */
static void run(const uint8_t *in, size_t len, const struct limits *lim, enum split how,
                struct transcript *t)
{
	struct imap_parser p;
	size_t off = 0, chunk_end = 0, cmd_bytes = 0, calls = 0;
	uint64_t seed = len * 0x9e3779b97f4a7c15ULL + lim->max_cmd;
	int line_mode = 0, lines_left = 0;

	CHECK(imap_init(&p, lim->max_cmd, lim->max_literal) == 0);
	t->hash = FZ_HASH_INIT;
	t->results = 0;
	while (off < len) {
		size_t n, used = (size_t)-1;
		enum imap_rc rc;

		if (off == chunk_end)
			chunk_end = next_chunk(how, off, len, &seed);
		n = chunk_end - off;
		rc = imap_feed(&p, in + off, n, &used);
		CHECK(++calls <= 2 * len + 2);
		CHECK(used <= n);
		CHECK(rc == IMAP_NEED_MORE ? used == n : used > 0);
		off += used;
		cmd_bytes += used;
		if (rc == IMAP_NEED_MORE)
			continue;
		check_result(&p, rc, cmd_bytes, line_mode);
		record(t, &p, rc, off);
		if (rc == IMAP_SEND_CONTINUATION)
			continue;
		cmd_bytes = 0;
		if (rc == IMAP_FATAL)
			break;                /* the session closes */
		if (rc == IMAP_BAD) {
			line_mode = 0;
			lines_left = 0;
			wipe(&p);
			continue;
		}
		/* AUTHENTICATE without an initial response: one line for
		 * PLAIN, two for LOGIN (user name, then password) */
		if (line_mode)
			lines_left--;
		else if (strcmp(p.name, "AUTHENTICATE") == 0 && p.nargs == 1)
			lines_left = strcasecmp(p.args[0].data, "LOGIN") == 0 ? 2 : 1;
		if (line_mode || strcmp(p.name, "LOGIN") == 0 ||
		    strcmp(p.name, "AUTHENTICATE") == 0)
			wipe(&p);
		line_mode = 0;
		if (lines_left > 0) {
			imap_expect_line(&p);
			line_mode = 1;
		}
	}
	t->end = off;
	imap_reset(&p);
	CHECK(fz_all_zero(p.data, data_size(&p)));
	imap_free(&p);
	CHECK(p.data == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (size_t l = 0; l < sizeof limits / sizeof *limits; l++) {
		struct transcript whole, bytes, chunks;

		run(data, size, &limits[l], SPLIT_WHOLE, &whole);
		run(data, size, &limits[l], SPLIT_BYTES, &bytes);
		run(data, size, &limits[l], SPLIT_RANDOM, &chunks);
		CHECK(whole.results == bytes.results && whole.results == chunks.results);
		CHECK(whole.end == bytes.end && whole.end == chunks.end);
		CHECK(whole.hash == bytes.hash && whole.hash == chunks.hash);
	}
	return 0;
}
