/*
 * Unit tests for protocols/pop3_parse.c.
 *
 * Each row is an input (bytes with an explicit length, NUL allowed), the
 * line limit, and the results pop3_feed() must return in order. Every
 * row runs three ways: the whole input in one buffer (re-fed from
 * buf + used after each result), byte by byte, and split in two at every
 * offset. All runs must give the same results at the same input offsets.
 * Results are compared as soon as they are returned, since the line dies
 * at the next pop3_feed(). Then pop3_reset(), pop3_wipe(), pop3_free().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pop3_parse.h"

#define D_MAX   1024                  /* default line limit for a row */
#define MAX_RES 8                     /* results per row */

/* Bytes and their length; s may contain NUL. */
#define B(s) s, sizeof(s) - 1

/* One expected result. rc POP3_NEED_MORE may only be last: the input
 * ends inside a line. */
struct xres {
	int set;
	enum pop3_rc rc;
	const char *name;             /* LINE */
	const char *arg;              /* LINE */
	size_t arg_len;
	const char *line;             /* LINE */
	size_t line_len;
	const char *err;              /* BAD: exactly p->error */
	int then_line;                /* call pop3_expect_line() after it */
};

struct row {
	const char *name;
	const char *in;
	size_t len;
	uint32_t max_line;
	struct xres res[MAX_RES];
	int line_first;               /* pop3_expect_line() before any input */
};

/* ROW(name, input, max_line, results...): input is a string literal, its
 * length taken by sizeof, so embedded NULs count. LROW starts in line
 * mode. */
#define ROW(nm, input, m, ...) { .name = nm, .in = input, .len = sizeof(input) - 1, \
                                 .max_line = m, .res = { __VA_ARGS__ } }
#define LROW(nm, input, m, ...) { .name = nm, .in = input, .len = sizeof(input) - 1, \
                                  .max_line = m, .res = { __VA_ARGS__ }, .line_first = 1 }

/* LINE(name, arg, whole line) */
#define LINE(n, a, l) { .set = 1, .rc = POP3_LINE, .name = n, .arg = a, \
                        .arg_len = sizeof(a) - 1, .line = l, .line_len = sizeof(l) - 1 }
#define LINEL(n, a, l) { .set = 1, .rc = POP3_LINE, .name = n, .arg = a, \
                         .arg_len = sizeof(a) - 1, .line = l, .line_len = sizeof(l) - 1, \
                         .then_line = 1 }
#define RESP(l) LINE("", l, l)
#define BAD(e) { .set = 1, .rc = POP3_BAD, .err = e }
#define MORE { .set = 1, .rc = POP3_NEED_MORE }

#define E_EMPTY "Empty command line"
#define E_CMD   "Invalid command"
#define E_NUL   "NUL byte in command"
#define E_CR    "Bare CR in command"
#define E_LONG  "Command line too long"
#define E_RLONG "Response line too long"

#define X10  "xxxxxxxxxx"
#define X50  X10 X10 X10 X10 X10
#define X250 X50 X50 X50 X50 X50

static const struct row rows[] = {
	/* ---- commands ---- */
	ROW("capa", "CAPA\r\n", D_MAX, LINE("CAPA", "", "CAPA")),
	ROW("three-letter keyword", "TOP 1 10\r\n", D_MAX, LINE("TOP", "1 10", "TOP 1 10")),
	ROW("keyword upper-cased, line kept", "uSeR Alice\r\n", D_MAX,
	    LINE("USER", "Alice", "uSeR Alice")),
	ROW("pass takes the rest whole", "PASS  two  spaces \r\n", D_MAX,
	    LINE("PASS", " two  spaces ", "PASS  two  spaces ")),
	ROW("8-bit argument", "PASS p\xc3\xa4ss w\xff" "rd\r\n", D_MAX,
	    LINE("PASS", "p\xc3\xa4ss w\xff" "rd", "PASS p\xc3\xa4ss w\xff" "rd")),
	ROW("trailing space gives an empty argument", "USER \r\n", D_MAX,
	    LINE("USER", "", "USER ")),
	ROW("tab and specials in the argument", "PASS a\tb\x7f" "c\\\"\r\n", D_MAX,
	    LINE("PASS", "a\tb\x7f" "c\\\"", "PASS a\tb\x7f" "c\\\"")),
	ROW("bare LF ends lines", "CAPA\nQUIT\n", D_MAX,
	    LINE("CAPA", "", "CAPA"), LINE("QUIT", "", "QUIT")),
	ROW("pipelined USER PASS STAT", "USER a\r\nPASS b c\r\nSTAT\r\n", D_MAX,
	    LINE("USER", "a", "USER a"), LINE("PASS", "b c", "PASS b c"),
	    LINE("STAT", "", "STAT")),
	ROW("STLS stops before what follows", "STLS\r\nCAPA\r\n", D_MAX,
	    LINE("STLS", "", "STLS"), LINE("CAPA", "", "CAPA")),
	ROW("input ends inside a line", "CAPA\r\nUSER al", D_MAX,
	    LINE("CAPA", "", "CAPA"), MORE),
	ROW("input ends after CR", "CAPA\r", D_MAX, MORE),
	ROW("input ends inside a bad line", "\0CAPA", D_MAX, MORE),

	/* ---- bad lines ---- */
	ROW("empty line", "\r\nCAPA\r\n", D_MAX, BAD(E_EMPTY), LINE("CAPA", "", "CAPA")),
	ROW("empty line, bare LF", "\n\nCAPA\n", D_MAX, BAD(E_EMPTY), BAD(E_EMPTY),
	    LINE("CAPA", "", "CAPA")),
	ROW("keyword of two letters", "AB x\r\nCAPA\r\n", D_MAX, BAD(E_CMD),
	    LINE("CAPA", "", "CAPA")),
	ROW("keyword of five letters", "CAPAS\r\nCAPA\r\n", D_MAX, BAD(E_CMD),
	    LINE("CAPA", "", "CAPA")),
	ROW("keyword with a digit", "US3R x\r\n", D_MAX, BAD(E_CMD)),
	ROW("keyword with 8-bit", "US\xc3\x89 x\r\n", D_MAX, BAD(E_CMD)),
	ROW("keyword then tab", "USER\tx\r\n", D_MAX, BAD(E_CMD)),
	ROW("leading space", " USER x\r\n", D_MAX, BAD(E_CMD)),
	ROW("only spaces", "   \r\n", D_MAX, BAD(E_CMD)),
	ROW("NUL in the keyword", "US\0ER x\r\nCAPA\r\n", D_MAX, BAD(E_NUL),
	    LINE("CAPA", "", "CAPA")),
	ROW("NUL in the argument", "PASS a\0b\r\nCAPA\r\n", D_MAX, BAD(E_NUL),
	    LINE("CAPA", "", "CAPA")),
	ROW("NUL alone", "\0\r\n", D_MAX, BAD(E_NUL)),
	ROW("bare CR mid-line", "CAPA\rQUIT\r\nNOOP\r\n", D_MAX, BAD(E_CR),
	    LINE("NOOP", "", "NOOP")),
	ROW("bare CR first", "\rCAPA\r\nNOOP\r\n", D_MAX, BAD(E_CR), LINE("NOOP", "", "NOOP")),
	ROW("CR CR LF", "CAPA\r\r\nNOOP\r\n", D_MAX, BAD(E_CR), LINE("NOOP", "", "NOOP")),
	ROW("first reason is kept", "PASS \rx\0y\r\n", D_MAX, BAD(E_CR)),
	ROW("NUL before bare CR", "PASS \0x\ry\r\n", D_MAX, BAD(E_NUL)),

	/* ---- length ---- */
	ROW("line of exactly max_line", "USER abc\r\n", 8, LINE("USER", "abc", "USER abc")),
	ROW("one byte over max_line", "USER abcd\r\nCAPA\r\n", 8, BAD(E_LONG),
	    LINE("CAPA", "", "CAPA")),
	ROW("far over max_line", "PASS " X250 X250 "\r\nCAPA\r\n", 16, BAD(E_LONG),
	    LINE("CAPA", "", "CAPA")),
	ROW("over max_line with bare LF", "PASS " X50 "\nQUIT\n", 16, BAD(E_LONG),
	    LINE("QUIT", "", "QUIT")),
	ROW("over max_line, then a NUL", "PASS " X50 "\0\r\n", 16, BAD(E_LONG)),
	ROW("255 octets", "USER " X250 "\r\n", 255, LINE("USER", X250, "USER " X250)),
	ROW("256 octets", "USER " X250 "x\r\n", 255, BAD(E_LONG)),

	/* ---- line mode (a SASL response) ---- */
	LROW("response line", "AGFsaWNlAHMzY3JldA==\r\nCAPA\r\n", D_MAX,
	     RESP("AGFsaWNlAHMzY3JldA=="), LINE("CAPA", "", "CAPA")),
	LROW("cancel", "*\r\n", D_MAX, RESP("*")),
	LROW("empty response", "\r\n", D_MAX, RESP("")),
	LROW("response kept whole, spaces and case", "ab Cd  e\r\n", D_MAX, RESP("ab Cd  e")),
	LROW("response with bare LF", "=\nquit\n", D_MAX, RESP("="), LINE("QUIT", "", "quit")),
	LROW("response with NUL, then a command", "ab\0c\r\nCAPA\r\n", D_MAX, BAD(E_NUL),
	     LINE("CAPA", "", "CAPA")),
	LROW("response with bare CR", "ab\rc\r\nCAPA\r\n", D_MAX, BAD(E_CR),
	     LINE("CAPA", "", "CAPA")),
	LROW("response over max_line", X50 "\r\nCAPA\r\n", 16, BAD(E_RLONG),
	     LINE("CAPA", "", "CAPA")),
	LROW("response of max_line", X50 "\r\n", 50, RESP(X50)),
	ROW("AUTH, then its response", "AUTH PLAIN\r\nAGFsaWNlAHMzY3JldA==\r\nQUIT\r\n", D_MAX,
	    LINEL("AUTH", "PLAIN", "AUTH PLAIN"), RESP("AGFsaWNlAHMzY3JldA=="),
	    LINE("QUIT", "", "QUIT")),
	ROW("AUTH, then a line that looks like a command", "AUTH PLAIN\r\nQUIT\r\nQUIT\r\n",
	    D_MAX, LINEL("AUTH", "PLAIN", "AUTH PLAIN"), RESP("QUIT"), LINE("QUIT", "", "QUIT")),
};

#define NROWS (sizeof rows / sizeof rows[0])

/* ---- the runner ---- */

static const char *rc_name(enum pop3_rc rc)
{
	switch (rc) {
	case POP3_NEED_MORE: return "NEED_MORE";
	case POP3_LINE: return "LINE";
	case POP3_BAD: return "BAD";
	}
	return "?";
}

/* n bytes of s, escaped, for failure messages (four buffers in turn). */
static const char *show(const char *s, size_t n)
{
	static char out[4][200];
	static unsigned k;
	char *o = out[k++ % 4];
	size_t j = 0;

	for (size_t i = 0; i < n && j + 5 < sizeof out[0]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			o[j++] = (char)c;
		else
			j += (size_t)snprintf(o + j, sizeof out[0] - j, "\\x%02x", c);
	}
	o[j] = '\0';
	return o;
}

struct run {
	const struct row *r;
	char how[32];                 /* "whole", "bytes", "split 7" */
	struct pop3_parser p;
	size_t *offs;                 /* end offset of each result, shared by runs */
	size_t k;                     /* results so far */
	enum pop3_rc last;            /* rc of the last pop3_feed() */
};

/* Results expected from the row, a final MORE included. */
static size_t row_results(const struct row *r)
{
	size_t n = 0;

	while (n < MAX_RES && r->res[n].set)
		n++;
	return n;
}

/* A text the parser returned: the bytes, then a NUL. */
static void check_text(const struct run *u, const char *what, const char *got, size_t got_len,
                       const char *want, size_t want_len)
{
	if (got == NULL || got_len != want_len || memcmp(got, want, want_len) != 0)
		fail_msg("%s [%s] result %zu: %s \"%s\" (%zu), expected \"%s\" (%zu)",
		         u->r->name, u->how, u->k, what, got ? show(got, got_len) : "(null)",
		         got_len, show(want, want_len), want_len);
	if (got[got_len] != '\0')
		fail_msg("%s [%s] result %zu: %s not NUL-terminated", u->r->name, u->how, u->k, what);
}

/* One non-NEED_MORE result, ending at offset end of the input. */
static void check(struct run *u, enum pop3_rc rc, size_t end)
{
	const struct row *r = u->r;
	const struct pop3_parser *p = &u->p;
	const struct xres *x;

	if (u->k >= row_results(r) || r->res[u->k].rc == POP3_NEED_MORE)
		fail_msg("%s [%s]: unexpected result %zu %s at offset %zu (error %s)",
		         r->name, u->how, u->k, rc_name(rc), end, p->error ? p->error : "none");
	x = &r->res[u->k];
	if (rc != x->rc)
		fail_msg("%s [%s] result %zu: %s at offset %zu, expected %s (error %s)",
		         r->name, u->how, u->k, rc_name(rc), end, rc_name(x->rc),
		         p->error ? p->error : "none");
	if (u->offs[u->k] == SIZE_MAX)
		u->offs[u->k] = end;
	else if (u->offs[u->k] != end)
		fail_msg("%s [%s] result %zu: ends at offset %zu, the whole run said %zu",
		         r->name, u->how, u->k, end, u->offs[u->k]);
	if (rc == POP3_LINE) {
		if (strcmp(p->name, x->name) != 0)
			fail_msg("%s [%s] result %zu: name \"%s\", expected \"%s\"",
			         r->name, u->how, u->k, p->name, x->name);
		if (p->error != NULL)
			fail_msg("%s [%s] result %zu: LINE with error \"%s\"",
			         r->name, u->how, u->k, p->error);
		check_text(u, "arg", p->arg, p->arg_len, x->arg, x->arg_len);
		check_text(u, "line", p->line, p->line_len, x->line, x->line_len);
	} else if (p->error == NULL || strcmp(p->error, x->err) != 0) {
		fail_msg("%s [%s] result %zu: error \"%s\", expected \"%s\"",
		         r->name, u->how, u->k, p->error ? p->error : "(null)", x->err);
	}
	if (x->then_line)
		pop3_expect_line(&u->p);
	u->k++;
}

/* Feeds input bytes [start, start + len) like a session would: after
 * each result, again from buf + used. */
static void feed(struct run *u, size_t start, size_t len)
{
	while (len > 0) {
		const uint8_t *buf = (const uint8_t *)u->r->in + start;
		size_t used = SIZE_MAX;
		enum pop3_rc rc = pop3_feed(&u->p, buf, len, &used);

		u->last = rc;
		if (used > len || (rc == POP3_NEED_MORE && used != len) ||
		    (rc != POP3_NEED_MORE && used == 0))
			fail_msg("%s [%s]: %s used %zu of %zu bytes at offset %zu",
			         u->r->name, u->how, rc_name(rc), used, len, start);
		if (rc == POP3_NEED_MORE)
			return;
		start += used;
		len -= used;
		check(u, rc, start);
	}
}

/* The input is used up: all results seen, and NEED_MORE last exactly
 * when the row expects the input to end inside a line. */
static void finish(struct run *u)
{
	size_t n = row_results(u->r);
	int more = n > 0 && u->r->res[n - 1].rc == POP3_NEED_MORE;

	if (u->k != n - (size_t)more)
		fail_msg("%s [%s]: %zu results, expected %zu", u->r->name, u->how,
		         u->k, n - (size_t)more);
	if (more != (u->last == POP3_NEED_MORE))
		fail_msg("%s [%s]: input ended with %s, expected %s", u->r->name, u->how,
		         rc_name(u->last), more ? "NEED_MORE" : "a result");
}

enum how { WHOLE, BYTES, SPLIT };

static void run(const struct row *r, enum how how, size_t split, size_t *offs)
{
	struct run u;

	memset(&u, 0, sizeof u);
	u.r = r;
	u.offs = offs;
	u.last = POP3_NEED_MORE;
	if (how == WHOLE)
		snprintf(u.how, sizeof u.how, "whole");
	else if (how == BYTES)
		snprintf(u.how, sizeof u.how, "bytes");
	else
		snprintf(u.how, sizeof u.how, "split %zu", split);
	assert_int_equal(pop3_init(&u.p, r->max_line), 0);
	if (r->line_first)
		pop3_expect_line(&u.p);
	if (how == WHOLE) {
		feed(&u, 0, r->len);
	} else if (how == BYTES) {
		for (size_t i = 0; i < r->len; i++)
			feed(&u, i, 1);
	} else {
		feed(&u, 0, split);
		feed(&u, split, r->len - split);
	}
	finish(&u);
	pop3_free(&u.p);
	assert_null(u.p.buf);
}

/* One row, three ways. */
static void test_row(void **state)
{
	const struct row *r = *state;
	size_t offs[MAX_RES];

	for (size_t i = 0; i < MAX_RES; i++)
		offs[i] = SIZE_MAX;
	run(r, WHOLE, 0, offs);
	run(r, BYTES, 0, offs);
	for (size_t s = 1; s < r->len; s++)
		run(r, SPLIT, s, offs);
}

/* ---- reset and wipe ---- */

static enum pop3_rc feed_str(struct pop3_parser *p, const char *s, size_t len, size_t *used)
{
	return pop3_feed(p, (const uint8_t *)s, len, used);
}

/* All max_line + 1 bytes of storage are zero. */
static void assert_zeroed(const struct pop3_parser *p)
{
	for (uint32_t i = 0; i <= p->max_line; i++)
		if (p->buf[i] != 0)
			fail_msg("buf[%u] is 0x%02x after wipe", i, p->buf[i]);
}

/* The next line "NOOP\r\n" parses as a command. */
static void assert_noop(struct pop3_parser *p)
{
	size_t used = 0;

	assert_int_equal(feed_str(p, B("NOOP\r\n"), &used), POP3_LINE);
	assert_int_equal(used, 6);
	assert_string_equal(p->name, "NOOP");
	assert_string_equal(p->line, "NOOP");
	assert_int_equal(p->arg_len, 0);
}

/* "USER al", reset: the next line starts fresh and the bytes are gone. */
static void test_reset_partial(void **state)
{
	struct pop3_parser p;
	size_t used = 0;

	assert_int_equal(pop3_init(&p, D_MAX), 0);
	assert_int_equal(feed_str(&p, B("PASS Zq7Zq7"), &used), POP3_NEED_MORE);
	assert_int_equal(used, 11);
	assert_non_null(memmem(p.buf, p.max_line, "Zq7Zq7", 6));
	pop3_reset(&p);
	assert_zeroed(&p);
	assert_noop(&p);
	pop3_free(&p);
}

/* Reset after a CR: the next LF is not the end of the old line. */
static void test_reset_after_cr(void **state)
{
	struct pop3_parser p;
	size_t used = 0;

	assert_int_equal(pop3_init(&p, D_MAX), 0);
	assert_int_equal(feed_str(&p, B("CAPA\r"), &used), POP3_NEED_MORE);
	pop3_reset(&p);
	assert_int_equal(feed_str(&p, B("\n"), &used), POP3_BAD);
	assert_string_equal(p.error, E_EMPTY);
	assert_noop(&p);
	pop3_free(&p);
}

/* Reset while a bad line is being skipped. */
static void test_reset_in_bad_line(void **state)
{
	struct pop3_parser p;
	size_t used = 0;

	assert_int_equal(pop3_init(&p, D_MAX), 0);
	assert_int_equal(feed_str(&p, B("PA\0SS x"), &used), POP3_NEED_MORE);
	pop3_reset(&p);
	assert_noop(&p);
	pop3_free(&p);
}

/* Reset ends line mode, before or inside its line. */
static void test_reset_line_mode(void **state)
{
	struct pop3_parser p;
	size_t used = 0;

	assert_int_equal(pop3_init(&p, D_MAX), 0);
	pop3_expect_line(&p);
	pop3_reset(&p);
	assert_noop(&p);
	pop3_expect_line(&p);
	assert_int_equal(feed_str(&p, B("dGVz"), &used), POP3_NEED_MORE);
	pop3_reset(&p);
	assert_noop(&p);
	pop3_free(&p);
}

/* STLS: the parser stops right after its line; the session drops what
 * follows and resets, and the next line parses clean. */
static void test_reset_stls(void **state)
{
	static const char in[] = "STLS\r\nUSER bob\r\nPASS x";
	struct pop3_parser p;
	size_t used = 0;

	assert_int_equal(pop3_init(&p, D_MAX), 0);
	assert_int_equal(feed_str(&p, in, sizeof in - 1, &used), POP3_LINE);
	assert_int_equal(used, 6);
	assert_string_equal(p.name, "STLS");
	pop3_reset(&p);
	assert_zeroed(&p);
	assert_noop(&p);
	pop3_free(&p);
}

/* pop3_wipe() after a password, in every form a line can take. */
static void test_wipe(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		int line_mode;
		enum pop3_rc rc;
		const char *secret;
	} cases[] = {
		{ B("PASS Pw0rd w\xc3\xa9th space\r\n"), 0, POP3_LINE, "Pw0rd w\xc3\xa9th space" },
		{ B("AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n"), 0, POP3_LINE, "AGFsaWNlAHMzY3JldA==" },
		{ B("AGFsaWNlAHMzY3JldA==\r\n"), 1, POP3_LINE, "AGFsaWNlAHMzY3JldA==" },
		{ B("PASS Pw0rdBefore\0NUL\r\n"), 0, POP3_BAD, "Pw0rdBefore" },
		{ B("PASS Pw0rdBefore\rCR\r\n"), 0, POP3_BAD, "Pw0rdBefore" },
		{ B("PASS Pw0rdLongLongLongLongLongLongLongLongLong\r\n"), 0, POP3_BAD, "Pw0rdLong" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct pop3_parser p;
		size_t used = 0, n = strlen(cases[i].secret);

		assert_int_equal(pop3_init(&p, 40), 0);
		if (cases[i].line_mode)
			pop3_expect_line(&p);
		assert_int_equal(feed_str(&p, cases[i].in, cases[i].len, &used), cases[i].rc);
		assert_int_equal(used, cases[i].len);
		assert_non_null(memmem(p.buf, p.max_line, cases[i].secret, n));
		pop3_wipe(&p);
		assert_null(memmem(p.buf, p.max_line, cases[i].secret, n));
		assert_zeroed(&p);
		assert_int_equal(p.arg_len, 0);
		assert_int_equal(p.line_len, 0);
		/* the parser still works after a wipe */
		assert_noop(&p);
		pop3_free(&p);
		assert_null(p.buf);
	}
}

/* Feeding nothing changes nothing; a result's text lasts until then. */
static void test_empty_feed(void **state)
{
	struct pop3_parser p;
	size_t used = SIZE_MAX;

	assert_int_equal(pop3_init(&p, D_MAX), 0);
	assert_int_equal(feed_str(&p, "", 0, &used), POP3_NEED_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(feed_str(&p, B("USE"), &used), POP3_NEED_MORE);
	assert_int_equal(feed_str(&p, "", 0, &used), POP3_NEED_MORE);
	assert_int_equal(feed_str(&p, B("R x\r\n"), &used), POP3_LINE);
	assert_int_equal(used, 5);
	assert_string_equal(p.name, "USER");
	assert_string_equal(p.arg, "x");
	pop3_free(&p);
}

static const struct CMUnitTest extra[] = {
	cmocka_unit_test(test_reset_partial),
	cmocka_unit_test(test_reset_after_cr),
	cmocka_unit_test(test_reset_in_bad_line),
	cmocka_unit_test(test_reset_line_mode),
	cmocka_unit_test(test_reset_stls),
	cmocka_unit_test(test_wipe),
	cmocka_unit_test(test_empty_feed),
};

#define NEXTRA (sizeof extra / sizeof extra[0])

int main(void)
{
	static struct CMUnitTest tests[NROWS + NEXTRA];

	for (size_t i = 0; i < NROWS; i++) {
		tests[i].name = rows[i].name;
		tests[i].test_func = test_row;
		tests[i].initial_state = (void *)&rows[i];
	}
	for (size_t i = 0; i < NEXTRA; i++)
		tests[NROWS + i] = extra[i];
	return cmocka_run_group_tests_name("pop3_parse", tests, NULL, NULL);
}
