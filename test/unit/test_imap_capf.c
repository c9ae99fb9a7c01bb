/*
 * Unit tests for protocols/imap_capf.c, the capability filter of
 * transparent IMAP relays.
 *
 * Each case is a backend transcript and the exact bytes the client must
 * get. Every case is fed whole, byte by byte, and split in two at every
 * offset; the emitted bytes must be the expected ones every way. Cases
 * are either rows of the table below or built by functions (literal
 * lengths are counted, lines longer than IMAP_CAPF_LINE_MAX are made
 * up). Then, for the shorter cases, emit fails at each of its calls in
 * turn: imap_capf_feed must return that value and call emit no more.
 * Every run ends with imap_capf_free (valgrind checks nothing leaks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_capf.h"

#define EMIT_FAIL 42                  /* what a failing emit returns */
#define FAIL_MAX_LEN 2048             /* cases up to this size get fail runs */

/* ---- byte strings ---- */

struct sb {
	uint8_t *p;
	size_t len, cap;
};

static void sb_add(struct sb *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		assert_non_null(b->p);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_str(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void sb_rep(struct sb *b, char c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sb_add(b, &c, 1);
}

/* ---- cases ---- */

struct tcase {
	const char *name;
	struct sb in, want;
	int no_fail_runs;
};

/* A transcript and its filtered form side by side. */
static void both(struct tcase *c, const char *s)
{
	sb_str(&c->in, s);
	sb_str(&c->want, s);
}

static void in_want(struct tcase *c, const char *in, const char *want)
{
	sb_str(&c->in, in);
	sb_str(&c->want, want);
}

/* "{n}\r\n" or "{n+}\r\n" and n bytes of body, passed through untouched. */
static void literal(struct tcase *c, const char *body, size_t n, int plus, const char *eol)
{
	char hdr[40];

	snprintf(hdr, sizeof hdr, "{%zu%s}%s", n, plus ? "+" : "", eol);
	both(c, hdr);
	sb_add(&c->in, body, n);
	sb_add(&c->want, body, n);
}

/* ---- table rows: input and expected output ---- */

struct row {
	const char *name;
	const char *in;
	size_t len;
	const char *want;
	size_t want_len;
};

#define ROW(nm, i, w) { nm, i, sizeof(i) - 1, w, sizeof(w) - 1 }
#define SAME(nm, i) ROW(nm, i, i)

#define GREET_IN "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN] Dovecot ready.\r\n"
#define GREET_OUT "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Dovecot ready.\r\n"
#define CAPS_IN "* CAPABILITY IMAP4rev1 STARTTLS IDLE\r\n"
#define CAPS_OUT "* CAPABILITY IMAP4rev1 IDLE\r\n"

static const struct row rows[] = {
	ROW("greeting", GREET_IN, GREET_OUT),
	ROW("greeting, bare LF", "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN] "
	    "Dovecot ready.\n", "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Dovecot ready.\n"),
	ROW("Dovecot session",
	    GREET_IN
	    "a OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
	    "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ STARTTLS "
	    "AUTH=PLAIN\r\n"
	    "b OK CAPABILITY completed\r\n"
	    "c OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT STARTTLS "
	    "LOGINDISABLED] Logged in\r\n"
	    "* 3 EXISTS\r\n",
	    GREET_OUT
	    "a OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
	    "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN\r\n"
	    "b OK CAPABILITY completed\r\n"
	    "c OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT] Logged in\r\n"
	    "* 3 EXISTS\r\n"),
	ROW("* CAPABILITY line", CAPS_IN, CAPS_OUT),
	ROW("* CAPABILITY, bare LF", "* CAPABILITY IMAP4rev1 STARTTLS IDLE\n",
	    "* CAPABILITY IMAP4rev1 IDLE\n"),
	ROW("* CAPABILITY in lower case, extra spaces",
	    "* capability imap4rev1  starttls   LoginDisabled idle\r\n",
	    "* capability imap4rev1 idle\r\n"),
	ROW("* CAPABILITY without STARTTLS", "* CAPABILITY IMAP4rev1 IDLE\r\n",
	    "* CAPABILITY IMAP4rev1 IDLE\r\n"),
	ROW("AUTH= and LITERAL+ are kept after login",
	    "* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR LITERAL+ ID STARTTLS\r\n",
	    "* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR LITERAL+ ID\r\n"),
	ROW("tagged OK with a capability code",
	    "a OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED IDLE] Logged in\r\n",
	    "a OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n"),
	ROW("tagged ok in lower case", "A001 ok [capability imap4rev1 starttls] done\r\n",
	    "A001 ok [capability imap4rev1] done\r\n"),
	ROW("PREAUTH, NO, BAD and BYE with a capability code",
	    "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"
	    "a NO [CAPABILITY IMAP4rev1 LOGINDISABLED] no\r\n"
	    "b BAD [CAPABILITY STARTTLS IMAP4rev1] bad\r\n"
	    "* BYE [CAPABILITY IMAP4rev1 STARTTLS] bye\r\n",
	    "* PREAUTH [CAPABILITY IMAP4rev1] ready\r\n"
	    "a NO [CAPABILITY IMAP4rev1] no\r\n"
	    "b BAD [CAPABILITY IMAP4rev1] bad\r\n"
	    "* BYE [CAPABILITY IMAP4rev1] bye\r\n"),
	ROW("capability code with nothing after it",
	    "a OK [CAPABILITY IMAP4rev1 STARTTLS]\r\n", "a OK [CAPABILITY IMAP4rev1]\r\n"),
	SAME("lines that mention CAPABILITY elsewhere",
	     "* OK CAPABILITY STARTTLS mentioned\r\n"
	     "a OK CAPABILITY completed\r\n"
	     "* BYE [ALERT] [CAPABILITY STARTTLS]\r\n"
	     "* LIST () \"/\" \"* CAPABILITY STARTTLS\"\r\n"
	     "* LIST () \"/\" CAPABILITY\r\n"
	     "a OK Logged in [CAPABILITY IMAP4rev1 STARTTLS]\r\n"
	     "a OK [CAPABILITYSTARTTLS]\r\n"
	     "a [CAPABILITY IMAP4rev1 STARTTLS]\r\n"
	     "** CAPABILITY IMAP4rev1 STARTTLS\r\n"
	     " * CAPABILITY IMAP4rev1 STARTTLS\r\n"
	     "*  CAPABILITY IMAP4rev1 STARTTLS\r\n"
	     "* 1 CAPABILITY IMAP4rev1 STARTTLS\r\n"
	     "* CAPABILITY\r\n"
	     "* CAPABILITY \r\n"
	     "CAPABILITY STARTTLS\r\n"
	     "\r\n"
	     "\n"
	     "* OK STARTTLS\r\n"),
	SAME("capability code without its ]",
	     "a OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n"),
	SAME("binary and 8-bit lines", "* OK \xff\xfe\x01\r\n* NO x\0y STARTTLS\r\n"),
	ROW("a line not seen whole is held",
	    "* 1 EXISTS\r\n* CAPABILITY IMAP4rev1 STARTTLS", "* 1 EXISTS\r\n"),
	ROW("bare CR does not end a line",
	    "* OK x\r* CAPABILITY IMAP4rev1 STARTTLS\r\n" CAPS_IN,
	    "* OK x\r* CAPABILITY IMAP4rev1 STARTTLS\r\n" CAPS_OUT),
	ROW("{} and {+} are not literals",
	    "* OK text {}\r\n" CAPS_IN "* OK text {+}\r\n" CAPS_IN "* OK {x}\r\n" CAPS_IN,
	    "* OK text {}\r\n" CAPS_OUT "* OK text {+}\r\n" CAPS_OUT "* OK {x}\r\n" CAPS_OUT),
	ROW("{5} not at the line end is not a literal",
	    "* OK {5} x\r\n" CAPS_IN "* OK {5}x\r\n" CAPS_IN "* OK {5++}\r\n" CAPS_IN,
	    "* OK {5} x\r\n" CAPS_OUT "* OK {5}x\r\n" CAPS_OUT "* OK {5++}\r\n" CAPS_OUT),
	/* 13 digits make a literal; 14 are taken for something else */
	SAME("literal of 13 digits",
	     "* OK {1234567890123}\r\n" CAPS_IN),
	ROW("literal of 14 digits",
	    "* OK {12345678901234}\r\n" CAPS_IN,
	    "* OK {12345678901234}\r\n" CAPS_OUT),
	/* what follows a literal continues its line: it is not a new line */
	SAME("a literal's last byte never starts a line",
	     "* 1 FETCH (BODY[] {1}\r\n* CAPABILITY STARTTLS IMAP4rev1)\r\n"
	     "* 2 FETCH (BODY[] {2+}\r\nx* CAPABILITY STARTTLS IMAP4rev1)\r\n"
	     "* 3 FETCH (BODY[] {3}\r\nxx* CAPABILITY STARTTLS IMAP4rev1)\r\n"),
	ROW("literal {0}",
	    "* 1 FETCH (BODY[] {0}\r\n)\r\n" CAPS_IN "* 2 FETCH (BODY[] {0+}\r\n)\r\n" CAPS_IN,
	    "* 1 FETCH (BODY[] {0}\r\n)\r\n" CAPS_OUT "* 2 FETCH (BODY[] {0+}\r\n)\r\n" CAPS_OUT),
	ROW("literal with a bare LF header",
	    "* 1 FETCH (BODY[] {32}\n* CAPABILITY IMAP4rev1 STARTTLS\n)\n" CAPS_IN,
	    "* 1 FETCH (BODY[] {32}\n* CAPABILITY IMAP4rev1 STARTTLS\n)\n" CAPS_OUT),
};

#define NROWS (sizeof rows / sizeof rows[0])

/* ---- built cases ---- */

#define BODY_CAPS "Subject: caps\r\n\r\n* CAPABILITY IMAP4rev1 STARTTLS\r\n" \
                  "a OK [CAPABILITY IMAP4rev1 STARTTLS] x\r\n"

/* A FETCH whose body holds capability lines, then a real one. */
static void fetch_body(struct tcase *c, int plus)
{
	both(c, "* 1 FETCH (UID 7 BODY[] ");
	literal(c, BODY_CAPS, strlen(BODY_CAPS), plus, "\r\n");
	both(c, ")\r\n");
	in_want(c, CAPS_IN, CAPS_OUT);
	both(c, "a OK Fetch completed.\r\n");
}

static void build_fetch(struct tcase *c)
{
	c->name = "FETCH body with a capability line, {n}";
	fetch_body(c, 0);
}

static void build_fetch_plus(struct tcase *c)
{
	c->name = "FETCH body with a capability line, {n+}";
	fetch_body(c, 1);
}

/* The body ends with what looks like a literal announcement. */
static void build_fetch_fake_lit(struct tcase *c)
{
	static const char body[] = "x {5}\r\n";

	c->name = "literal body ending in {5}";
	both(c, "* 1 FETCH (BODY[] ");
	literal(c, body, sizeof body - 1, 0, "\r\n");
	both(c, ")\r\n");
	in_want(c, CAPS_IN, CAPS_OUT);
}

/* A body that is only a capability line, and two literals in a row. */
static void build_two_lits(struct tcase *c)
{
	static const char b1[] = "* CAPABILITY IMAP4rev1 STARTTLS\r\n";
	static const char b2[] = "\r\n* OK [CAPABILITY STARTTLS] {3}\r\n";

	c->name = "two literals in one response";
	both(c, "* 1 FETCH (BODY[1] ");
	literal(c, b1, sizeof b1 - 1, 0, "\r\n");
	both(c, " BODY[2] ");
	literal(c, b2, sizeof b2 - 1, 1, "\r\n");
	both(c, ")\r\n");
	both(c, "* 2 FETCH (BODY[] ");
	literal(c, "STARTTLS", 8, 0, "\r\n");
	both(c, ")\r\n");
	in_want(c, CAPS_IN, CAPS_OUT);
}

/* A literal body of binary bytes, NUL, CR and LF included. */
static void build_binary_lit(struct tcase *c)
{
	uint8_t body[256];

	for (size_t i = 0; i < sizeof body; i++)
		body[i] = (uint8_t)(255 - i);
	c->name = "binary literal body";
	both(c, "* 1 FETCH (BINARY[1] ~");
	literal(c, (const char *)body, sizeof body, 0, "\r\n");
	both(c, ")\r\n");
	in_want(c, CAPS_IN, CAPS_OUT);
}

/* A FETCH line longer than IMAP_CAPF_LINE_MAX announcing a literal. */
static void long_fetch(struct tcase *c, int plus)
{
	both(c, "* 1 FETCH (X-GM-LABELS (");
	for (int i = 0; c->in.len < IMAP_CAPF_LINE_MAX + 100; i++) {
		char lbl[32];
		snprintf(lbl, sizeof lbl, "%s\"label%d\"", i ? " " : "", i);
		both(c, lbl);
	}
	both(c, ") BODY[] ");
	literal(c, BODY_CAPS, strlen(BODY_CAPS), plus, "\r\n");
	both(c, ")\r\n");
	in_want(c, CAPS_IN, CAPS_OUT);
	c->no_fail_runs = 1;
}

static void build_long_fetch(struct tcase *c)
{
	c->name = "FETCH line over IMAP_CAPF_LINE_MAX, {n}";
	long_fetch(c, 0);
}

static void build_long_fetch_plus(struct tcase *c)
{
	c->name = "FETCH line over IMAP_CAPF_LINE_MAX, {n+}";
	long_fetch(c, 1);
}

/* A capability line of n bytes, its line end included: "* CAPABILITY
 * IMAP4rev1 STARTTLS X-AAA..." padded with one long name. */
static void caps_line(struct tcase *c, size_t n, int filtered)
{
	static const char head[] = "* CAPABILITY IMAP4rev1 STARTTLS X-";
	static const char head_out[] = "* CAPABILITY IMAP4rev1 X-";
	size_t pad = n - (sizeof head - 1) - 2;

	sb_str(&c->in, head);
	sb_rep(&c->in, 'A', pad);
	sb_str(&c->in, "\r\n");
	sb_str(&c->want, filtered ? head_out : head);
	sb_rep(&c->want, 'A', pad);
	sb_str(&c->want, "\r\n");
}

static void build_caps_max(struct tcase *c)
{
	c->name = "capability line of exactly IMAP_CAPF_LINE_MAX bytes is filtered";
	both(c, "* 1 EXISTS\r\n");
	caps_line(c, IMAP_CAPF_LINE_MAX, 1);
	in_want(c, CAPS_IN, CAPS_OUT);
	c->no_fail_runs = 1;
}

static void build_caps_over(struct tcase *c)
{
	c->name = "capability line of IMAP_CAPF_LINE_MAX + 1 bytes passes unchanged";
	both(c, "* 1 EXISTS\r\n");
	caps_line(c, IMAP_CAPF_LINE_MAX + 1, 0);
	in_want(c, CAPS_IN, CAPS_OUT);
	c->no_fail_runs = 1;
}

static void build_caps_long(struct tcase *c)
{
	c->name = "long capability line passes unchanged";
	caps_line(c, IMAP_CAPF_LINE_MAX + 700, 0);
	in_want(c, CAPS_IN, CAPS_OUT);
	c->no_fail_runs = 1;
}

/* Over-long lines one after another, a tagged one with a code too. */
static void build_long_lines(struct tcase *c)
{
	c->name = "over-long lines in a row";
	both(c, "* OK ");
	sb_rep(&c->in, 'x', IMAP_CAPF_LINE_MAX);
	sb_rep(&c->want, 'x', IMAP_CAPF_LINE_MAX);
	both(c, "\r\na OK [CAPABILITY IMAP4rev1 STARTTLS] ");
	sb_rep(&c->in, 'y', IMAP_CAPF_LINE_MAX);
	sb_rep(&c->want, 'y', IMAP_CAPF_LINE_MAX);
	both(c, "\r\n");
	in_want(c, CAPS_IN, CAPS_OUT);
	c->no_fail_runs = 1;
}

/* An over-long line with a bare LF, its literal header at its very end. */
static void build_long_lit_tail(struct tcase *c)
{
	c->name = "over-long line, literal header at its very end";
	both(c, "* 1 FETCH (X ");
	sb_rep(&c->in, 'z', IMAP_CAPF_LINE_MAX);
	sb_rep(&c->want, 'z', IMAP_CAPF_LINE_MAX);
	both(c, " BODY[] ");
	literal(c, "* CAPABILITY STARTTLS\r\n", 23, 0, "\n");
	both(c, ")\n");
	in_want(c, CAPS_IN, CAPS_OUT);
	c->no_fail_runs = 1;
}

static void (*const builders[])(struct tcase *) = {
	build_fetch, build_fetch_plus, build_fetch_fake_lit, build_two_lits, build_binary_lit,
	build_long_fetch, build_long_fetch_plus, build_caps_max, build_caps_over, build_caps_long,
	build_long_lines, build_long_lit_tail,
};

#define NBUILT (sizeof builders / sizeof builders[0])

static struct tcase cases[NROWS + NBUILT];

/* ---- the runner ---- */

struct sink {
	struct sb out;
	size_t calls;
	size_t fail_at;               /* emit call that fails (1-based), or 0 */
	int after_fail;               /* emit was called after failing */
};

static int emit(void *ctx, const uint8_t *p, size_t n)
{
	struct sink *s = ctx;

	if (s->fail_at && s->calls >= s->fail_at)
		s->after_fail = 1;
	s->calls++;
	if (s->calls == s->fail_at)
		return EMIT_FAIL;
	sb_add(&s->out, p, n);
	return 0;
}

/* Where two byte strings first differ, for failure messages. */
static size_t first_diff(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	size_t i = 0;

	while (i < an && i < bn && a[i] == b[i])
		i++;
	return i;
}

static const char *show(const uint8_t *s, size_t n)
{
	static char out[4][200];
	static unsigned k;
	char *o = out[k++ % 4];
	size_t j = 0;

	for (size_t i = 0; i < n && j + 5 < sizeof out[0]; i++) {
		unsigned char c = s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			o[j++] = (char)c;
		else
			j += (size_t)snprintf(o + j, sizeof out[0] - j, "\\x%02x", c);
	}
	o[j] = '\0';
	return o;
}

/* Feeds the case byte by byte (bytes), in two pieces split at offset
 * split (split > 0), or whole. Returns the first non-zero rc, or 0. */
static int feed_case(const struct tcase *c, int bytes, size_t split, struct sink *s)
{
	struct imap_capf f;
	int rc = 0;

	memset(&f, 0, sizeof f);
	if (bytes) {
		for (size_t i = 0; i < c->in.len && rc == 0; i++)
			rc = imap_capf_feed(&f, c->in.p + i, 1, emit, s);
	} else if (split) {
		rc = imap_capf_feed(&f, c->in.p, split, emit, s);
		if (rc == 0)
			rc = imap_capf_feed(&f, c->in.p + split, c->in.len - split, emit, s);
	} else {
		rc = imap_capf_feed(&f, c->in.p, c->in.len, emit, s);
	}
	imap_capf_free(&f);
	if (f.hold != NULL || f.hold_len != 0)
		fail_msg("%s: imap_capf_free left a held line", c->name);
	return rc;
}

static void check_run(const struct tcase *c, const char *how, size_t split, struct sink *s,
                      int rc)
{
	if (rc != 0)
		fail_msg("%s [%s %zu]: rc %d", c->name, how, split, rc);
	if (s->out.len != c->want.len || memcmp(s->out.p, c->want.p, c->want.len) != 0) {
		size_t d = first_diff(s->out.p, s->out.len, c->want.p, c->want.len);
		size_t from = d > 20 ? d - 20 : 0;
		size_t on = s->out.len > from ? s->out.len - from : 0;
		size_t wn = c->want.len > from ? c->want.len - from : 0;
		fail_msg("%s [%s %zu]: %zu bytes, expected %zu; first difference at %zu: "
		         "\"%s\" vs expected \"%s\"", c->name, how, split, s->out.len, c->want.len,
		         d, show(s->out.p + from, on < 60 ? on : 60),
		         show(c->want.p + from, wn < 60 ? wn : 60));
	}
}

static void test_case(void **state)
{
	const struct tcase *c = *state;
	struct sink s;

	memset(&s, 0, sizeof s);
	check_run(c, "whole", 0, &s, feed_case(c, 0, 0, &s));
	s.out.len = 0;
	check_run(c, "bytes", 0, &s, feed_case(c, 1, 0, &s));
	for (size_t k = 1; k < c->in.len; k++) {
		s.out.len = 0;
		check_run(c, "split", k, &s, feed_case(c, 0, k, &s));
	}
	free(s.out.p);
}

/* emit fails at its n-th call, for every n: the failure is returned,
 * emit is not called again, and what was emitted is a prefix of the
 * expected output. */
static void fail_runs(const struct tcase *c, int bytes)
{
	struct sink s;
	size_t calls;

	memset(&s, 0, sizeof s);
	assert_int_equal(feed_case(c, bytes, 0, &s), 0);
	calls = s.calls;
	for (size_t n = 1; n <= calls; n++) {
		int rc;

		s.out.len = 0;
		s.calls = 0;
		s.fail_at = n;
		s.after_fail = 0;
		rc = feed_case(c, bytes, 0, &s);
		if (rc != EMIT_FAIL || s.after_fail || s.calls != n)
			fail_msg("%s [%s, emit fails at call %zu]: rc %d, %zu calls, called after "
			         "failing: %d", c->name, bytes ? "bytes" : "whole", n, rc, s.calls,
			         s.after_fail);
		if (s.out.len > c->want.len || memcmp(s.out.p, c->want.p, s.out.len) != 0)
			fail_msg("%s [%s, emit fails at call %zu]: output is not a prefix", c->name,
			         bytes ? "bytes" : "whole", n);
	}
	free(s.out.p);
}

static void test_emit_fails(void **state)
{
	(void)state;
	for (size_t i = 0; i < NROWS + NBUILT; i++) {
		if (cases[i].no_fail_runs || cases[i].in.len > FAIL_MAX_LEN)
			continue;
		fail_runs(&cases[i], 0);
		fail_runs(&cases[i], 1);
	}
}

/* imap_capf_free on a filter holding a partial line, and twice. */
static void test_free_held(void **state)
{
	static const char in[] = "* CAPABILITY IMAP4rev1 STARTTLS";
	struct imap_capf f;
	struct sink s;

	(void)state;
	memset(&f, 0, sizeof f);
	memset(&s, 0, sizeof s);
	assert_int_equal(imap_capf_feed(&f, (const uint8_t *)in, sizeof in - 1, emit, &s), 0);
	assert_int_equal(s.out.len, 0);
	assert_non_null(f.hold);
	imap_capf_free(&f);
	assert_null(f.hold);
	assert_int_equal(f.hold_len, 0);
	imap_capf_free(&f);
	free(s.out.p);
}

/* Nothing in, nothing out. */
static void test_empty(void **state)
{
	struct imap_capf f;
	struct sink s;

	(void)state;
	memset(&f, 0, sizeof f);
	memset(&s, 0, sizeof s);
	assert_int_equal(imap_capf_feed(&f, (const uint8_t *)"", 0, emit, &s), 0);
	assert_int_equal(s.calls, 0);
	imap_capf_free(&f);
}

int main(void)
{
	struct CMUnitTest t[NROWS + NBUILT + 3];
	size_t n = 0;
	int fails;

	for (size_t i = 0; i < NROWS; i++) {
		cases[i].name = rows[i].name;
		sb_add(&cases[i].in, rows[i].in, rows[i].len);
		sb_add(&cases[i].want, rows[i].want, rows[i].want_len);
	}
	for (size_t i = 0; i < NBUILT; i++)
		builders[i](&cases[NROWS + i]);
	for (size_t i = 0; i < NROWS + NBUILT; i++)
		t[n++] = (struct CMUnitTest){ .name = cases[i].name, .test_func = test_case,
		                              .initial_state = &cases[i] };
	t[n++] = (struct CMUnitTest){ .name = "emit failure stops the filter",
	                              .test_func = test_emit_fails };
	t[n++] = (struct CMUnitTest){ .name = "free with a held line",
	                              .test_func = test_free_held };
	t[n++] = (struct CMUnitTest){ .name = "empty input", .test_func = test_empty };
	fails = _cmocka_run_group_tests("imap_capf", t, n, NULL, NULL);
	for (size_t i = 0; i < NROWS + NBUILT; i++) {
		free(cases[i].in.p);
		free(cases[i].want.p);
	}
	return fails ? 1 : 0;
}
