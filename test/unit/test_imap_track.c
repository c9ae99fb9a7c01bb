/*
 * imap_track: table rows of server output and whether the stream ends at
 * a response boundary; each row fed whole, byte by byte and split at
 * every point into two feeds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_track.h"

struct row {
	const char *name;
	const char *in;
	size_t len;                   /* 0: strlen(in) */
	int boundary;
};

static const struct row rows[] = {
	{ "nothing yet", "", 0, 1 },
	{ "greeting", "* OK ready\r\n", 0, 1 },
	{ "half a line", "* OK rea", 0, 0 },
	{ "line without CR", "* OK ready\n", 0, 1 },
	{ "tagged OK", "* 1 EXISTS\r\na OK done\r\n", 0, 1 },
	{ "literal announced", "* 1 FETCH (BODY[] {5}\r\n", 0, 0 },
	{ "inside the literal", "* 1 FETCH (BODY[] {5}\r\nab", 0, 0 },
	{ "literal done, line open", "* 1 FETCH (BODY[] {5}\r\nabcde", 0, 0 },
	{ "literal and its line done", "* 1 FETCH (BODY[] {5}\r\nabcde)\r\n", 0, 1 },
	{ "literal holding CRLF and {n}", "* 1 FETCH (BODY[] {12}\r\nx {3}\r\nyy\r\n)\r\n", 0, 1 },
	{ "literal holding CRLF, cut", "* 1 FETCH (BODY[] {12}\r\nx {3}\r\n", 0, 0 },
	{ "two literals on one response",
	  "* 1 FETCH (BODY[1] {2}\r\nab BODY[2] {3}\r\nxyz)\r\n", 0, 1 },
	{ "empty literal", "* 1 FETCH (BODY[] {0}\r\n)\r\n", 0, 1 },
	{ "empty literal, line open", "* 1 FETCH (BODY[] {0}\r\n", 0, 0 },
	{ "non-sync form", "* 1 FETCH (BODY[] {3+}\r\nabc)\r\n", 0, 1 },
	{ "braces that are no literal", "* OK {x}\r\n", 0, 1 },
	{ "brace text mid-line", "* OK {5} and more\r\n", 0, 1 },
	{ "empty braces", "* OK {}\r\n", 0, 1 },
	{ "huge count is no literal", "* OK {99999999999999999}\r\n", 0, 1 },
	{ "NUL in a literal", "* 1 FETCH (BODY[] {3}\r\na\0b)\r\n",
	  sizeof "* 1 FETCH (BODY[] {3}\r\na\0b)\r\n" - 1, 1 },
	{ "continuation", "+ go ahead\r\n", 0, 1 },
	{ "long line then literal",
	  "* 1 FETCH (ENVELOPE (\"a very long subject line that goes on and on and on "
	  "beyond the tail buffer\") BODY[] {4}\r\nbody)\r\n", 0, 1 },
};

/* Feeds in chunks of step bytes (0: whole). */
static int run(const struct row *r, size_t step)
{
	struct imap_track t;
	size_t len = r->len ? r->len : strlen(r->in);

	memset(&t, 0, sizeof t);
	if (step == 0)
		step = len ? len : 1;
	for (size_t off = 0; off < len; off += step)
		imap_track_feed(&t, (const uint8_t *)r->in + off, len - off < step ? len - off : step);
	return imap_track_at_boundary(&t);
}

static void test_rows(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
		const struct row *r = &rows[i];
		size_t len = r->len ? r->len : strlen(r->in);
		if (run(r, 0) != r->boundary)
			fail_msg("%s: whole: got %d", r->name, !r->boundary);
		if (run(r, 1) != r->boundary)
			fail_msg("%s: byte by byte: got %d", r->name, !r->boundary);
		for (size_t cut = 1; cut < len; cut++) {
			struct imap_track t;
			memset(&t, 0, sizeof t);
			imap_track_feed(&t, (const uint8_t *)r->in, cut);
			imap_track_feed(&t, (const uint8_t *)r->in + cut, len - cut);
			if (imap_track_at_boundary(&t) != r->boundary)
				fail_msg("%s: split at %zu: got %d", r->name, cut, !r->boundary);
		}
	}
}

/* A 64 MiB literal in 64 KiB feeds: the boundary comes only after its
 * closing line. */
static void test_big_literal(void **state)
{
	static uint8_t chunk[65536];
	struct imap_track t;
	const char *head = "* 1 FETCH (BODY[] {67108864}\r\n";
	uint64_t left = 67108864;

	(void)state;
	memset(&t, 0, sizeof t);
	memset(chunk, '\n', sizeof chunk);          /* line ends inside must not count */
	imap_track_feed(&t, (const uint8_t *)head, strlen(head));
	while (left) {
		size_t n = left < sizeof chunk ? (size_t)left : sizeof chunk;
		assert_int_equal(imap_track_at_boundary(&t), 0);
		imap_track_feed(&t, chunk, n);
		left -= n;
	}
	assert_int_equal(imap_track_at_boundary(&t), 0);
	imap_track_feed(&t, (const uint8_t *)")\r\n", 3);
	assert_int_equal(imap_track_at_boundary(&t), 1);
}

static void test_trailing_literal(void **state)
{
	int a;

	(void)state;
	assert_int_equal(imap_trailing_literal((const uint8_t *)"x {12}\r\n", 8, &a), 12);
	assert_int_equal(a, 1);
	assert_int_equal(imap_trailing_literal((const uint8_t *)"x {12+}", 7, &a), 12);
	assert_int_equal(a, 1);
	assert_int_equal(imap_trailing_literal((const uint8_t *)"x {0}\n", 6, &a), 0);
	assert_int_equal(a, 1);
	assert_int_equal(imap_trailing_literal((const uint8_t *)"x {}\r\n", 6, &a), 0);
	assert_int_equal(a, 0);
	assert_int_equal(imap_trailing_literal((const uint8_t *)"{1}", 3, &a), 1);
	assert_int_equal(a, 1);
	assert_int_equal(imap_trailing_literal((const uint8_t *)"12}", 3, &a), 0);
	assert_int_equal(a, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_big_literal),
		cmocka_unit_test(test_trailing_literal),
	};
	return cmocka_run_group_tests_name("imap_track", tests, NULL, NULL);
}
