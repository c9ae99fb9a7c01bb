/*
 * Unit tests for proxy/log.c: log_kv_to_json() rows (exact output or, for
 * cut rows, its beginning; every output a JSON object that a strict
 * validator takes; nothing written at or past size), the same rows at
 * every size, tiny sizes, long values, random lines; log_quote() rows;
 * and round trips of random strings through log_quote() and
 * log_kv_to_json(), the JSON string decoded back by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define GUARD 128             /* canary bytes after size */
#define BIG   16384           /* size for rows that set none */
#define CANARY 0xA5

/* ---- a strict JSON validator (RFC 8259, UTF-8 per RFC 3629) ---- */

struct jp {
	const unsigned char *s;
	size_t i, n;
	const char *err;
	int depth;
};

/* Length of the valid UTF-8 sequence at s[0..n): no overlong forms,
 * surrogates or code points above U+10FFFF; 0 when there is none. */
static size_t utf8_valid(const unsigned char *s, size_t n)
{
	unsigned lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] < 0xc2)
		return 0;
	if (s[0] < 0xe0) {
		len = 2;
	} else if (s[0] < 0xf0) {
		len = 3;
		lo = s[0] == 0xe0 ? 0xa0 : lo;
		hi = s[0] == 0xed ? 0x9f : hi;
	} else if (s[0] < 0xf5) {
		len = 4;
		lo = s[0] == 0xf0 ? 0x90 : lo;
		hi = s[0] == 0xf4 ? 0x8f : hi;
	} else {
		return 0;
	}
	if (len > n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

static int jp_fail(struct jp *p, const char *why)
{
	if (!p->err)
		p->err = why;
	return -1;
}

static void jp_ws(struct jp *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' ||
	                       p->s[p->i] == '\r'))
		p->i++;
}

static int hexval(unsigned char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Four hex digits after "\u" at s[i..]; -1 if they are not there. */
static long hex4(const unsigned char *s, size_t i, size_t n)
{
	long v = 0;

	if (i + 4 > n)
		return -1;
	for (size_t k = 0; k < 4; k++) {
		int h = hexval(s[i + k]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* A JSON string at p->i; its decoded UTF-8 bytes go to out (if not NULL,
 * up to cap) and their count to *outlen. */
static int jp_string(struct jp *p, unsigned char *out, size_t cap, size_t *outlen)
{
	size_t o = 0;

	if (p->i >= p->n || p->s[p->i] != '"')
		return jp_fail(p, "expected a string");
	p->i++;
	for (;;) {
		unsigned char c;
		unsigned long cp;
		unsigned char enc[4];
		size_t elen;

		if (p->i >= p->n)
			return jp_fail(p, "unterminated string");
		c = p->s[p->i];
		if (c == '"') {
			p->i++;
			break;
		}
		if (c < 0x20)
			return jp_fail(p, "raw control byte in a string");
		if (c >= 0x80) {
			size_t u = utf8_valid(p->s + p->i, p->n - p->i);
			if (!u)
				return jp_fail(p, "invalid UTF-8 in a string");
			if (out && o + u <= cap)
				memcpy(out + o, p->s + p->i, u);
			o += u;
			p->i += u;
			continue;
		}
		if (c != '\\') {
			if (out && o < cap)
				out[o] = c;
			o++;
			p->i++;
			continue;
		}
		if (p->i + 1 >= p->n)
			return jp_fail(p, "unterminated escape");
		c = p->s[p->i + 1];
		p->i += 2;
		switch (c) {
		case '"': case '\\': case '/':
			cp = c;
			break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u': {
			long v = hex4(p->s, p->i, p->n);
			if (v < 0)
				return jp_fail(p, "bad \\u escape");
			p->i += 4;
			if (v >= 0xdc00 && v <= 0xdfff)
				return jp_fail(p, "lone low surrogate");
			if (v >= 0xd800 && v <= 0xdbff) {
				long lo;
				if (p->i + 2 > p->n || p->s[p->i] != '\\' ||
				    p->s[p->i + 1] != 'u' ||
				    (lo = hex4(p->s, p->i + 2, p->n)) < 0xdc00 || lo > 0xdfff)
					return jp_fail(p, "lone high surrogate");
				p->i += 6;
				v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
			}
			cp = (unsigned long)v;
			break;
		}
		default:
			return jp_fail(p, "unknown escape");
		}
		if (cp < 0x80) {
			enc[0] = (unsigned char)cp;
			elen = 1;
		} else if (cp < 0x800) {
			enc[0] = (unsigned char)(0xc0 | cp >> 6);
			enc[1] = (unsigned char)(0x80 | (cp & 0x3f));
			elen = 2;
		} else if (cp < 0x10000) {
			enc[0] = (unsigned char)(0xe0 | cp >> 12);
			enc[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			enc[2] = (unsigned char)(0x80 | (cp & 0x3f));
			elen = 3;
		} else {
			enc[0] = (unsigned char)(0xf0 | cp >> 18);
			enc[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
			enc[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			enc[3] = (unsigned char)(0x80 | (cp & 0x3f));
			elen = 4;
		}
		if (out && o + elen <= cap)
			memcpy(out + o, enc, elen);
		o += elen;
	}
	if (outlen)
		*outlen = o;
	return 0;
}

static int is_digit(const struct jp *p)
{
	return p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9';
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int jp_number(struct jp *p)
{
	if (p->i < p->n && p->s[p->i] == '-')
		p->i++;
	if (!is_digit(p))
		return jp_fail(p, "bad number");
	if (p->s[p->i] == '0')
		p->i++;
	else
		while (is_digit(p))
			p->i++;
	if (is_digit(p))
		return jp_fail(p, "number with a leading zero");
	if (p->i < p->n && p->s[p->i] == '.') {
		p->i++;
		if (!is_digit(p))
			return jp_fail(p, "bad fraction");
		while (is_digit(p))
			p->i++;
	}
	if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
		p->i++;
		if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
			p->i++;
		if (!is_digit(p))
			return jp_fail(p, "bad exponent");
		while (is_digit(p))
			p->i++;
	}
	return 0;
}

static int jp_value(struct jp *p);

/* '{' (string ':' value (',' string ':' value)*)? '}' */
static int jp_object(struct jp *p)
{
	p->i++;
	jp_ws(p);
	if (p->i < p->n && p->s[p->i] == '}') {
		p->i++;
		return 0;
	}
	for (;;) {
		jp_ws(p);
		if (jp_string(p, NULL, 0, NULL) < 0)
			return -1;
		jp_ws(p);
		if (p->i >= p->n || p->s[p->i] != ':')
			return jp_fail(p, "expected ':' after a key");
		p->i++;
		if (jp_value(p) < 0)
			return -1;
		jp_ws(p);
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			continue;
		}
		if (p->i < p->n && p->s[p->i] == '}') {
			p->i++;
			return 0;
		}
		return jp_fail(p, "expected ',' or '}' in an object");
	}
}

static int jp_array(struct jp *p)
{
	p->i++;
	jp_ws(p);
	if (p->i < p->n && p->s[p->i] == ']') {
		p->i++;
		return 0;
	}
	for (;;) {
		if (jp_value(p) < 0)
			return -1;
		jp_ws(p);
		if (p->i < p->n && p->s[p->i] == ',') {
			p->i++;
			continue;
		}
		if (p->i < p->n && p->s[p->i] == ']') {
			p->i++;
			return 0;
		}
		return jp_fail(p, "expected ',' or ']' in an array");
	}
}

static int jp_word(struct jp *p, const char *w)
{
	size_t len = strlen(w);

	if (p->i + len > p->n || memcmp(p->s + p->i, w, len) != 0)
		return jp_fail(p, "unexpected character");
	p->i += len;
	return 0;
}

static int jp_value(struct jp *p)
{
	int rc;

	jp_ws(p);
	if (p->i >= p->n)
		return jp_fail(p, "expected a value");
	if (++p->depth > 64)
		return jp_fail(p, "nested too deep");
	switch (p->s[p->i]) {
	case '{': rc = jp_object(p); break;
	case '[': rc = jp_array(p); break;
	case '"': rc = jp_string(p, NULL, 0, NULL); break;
	case 't': rc = jp_word(p, "true"); break;
	case 'f': rc = jp_word(p, "false"); break;
	case 'n': rc = jp_word(p, "null"); break;
	default: rc = jp_number(p); break;
	}
	p->depth--;
	return rc;
}

/* NULL when s[0..n) is exactly one JSON object (whitespace around it
 * allowed), else why not; *at gets the offset of the problem. */
static const char *json_object_check(const char *s, size_t n, size_t *at)
{
	struct jp p = { (const unsigned char *)s, 0, n, NULL, 0 };

	jp_ws(&p);
	if (p.i >= n || s[p.i] != '{')
		jp_fail(&p, "not an object");
	else if (jp_value(&p) == 0) {
		jp_ws(&p);
		if (p.i != n)
			jp_fail(&p, "bytes after the object");
	}
	if (at)
		*at = p.i;
	return p.err;
}

/* ---- helpers ---- */

/* Used in failure messages: s[0..n) with bytes outside printable ASCII
 * as \xNN, cut at 400 bytes; four calls may share one message. */
static const char *show(const char *s, size_t n)
{
	static char bufs[4][1700];
	static unsigned next;
	char *buf = bufs[next++ % 4];
	size_t o = 0;

	for (size_t i = 0; i < n && i < 400; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f)
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, sizeof bufs[0] - o, "\\x%02x", c);
	}
	if (n > 400)
		o += (size_t)snprintf(buf + o, sizeof bufs[0] - o, "...(%zu bytes)", n);
	buf[o] = '\0';
	return buf;
}

/* A buffer of size + GUARD bytes, all CANARY. */
static char *guarded(size_t size)
{
	char *b = malloc(size + GUARD);

	assert_non_null(b);
	memset(b, CANARY, size + GUARD);
	return b;
}

/* Nothing was written at or past size. */
static void assert_guard(const char *b, size_t size, const char *in)
{
	for (size_t i = size; i < size + GUARD; i++) {
		if ((unsigned char)b[i] != CANARY) {
			print_error("size %zu: byte %zu past the end was written (input %s)\n",
			            size, i - size, show(in, strlen(in)));
			fail();
		}
	}
}

/* Runs log_kv_to_json(in) into a guarded buffer of size bytes and checks
 * what any output must be: nothing written past size, NUL-terminated
 * within it, the returned length its length, and (size >= 3) one JSON
 * object. Returns the buffer. */
static char *convert(const char *in, size_t size, size_t *n)
{
	char *out = guarded(size);
	const char *why;
	size_t at = 0;

	*n = log_kv_to_json(in, out, size);
	assert_guard(out, size, in);
	if (size == 0)
		return out;
	if (!memchr(out, '\0', size)) {
		print_error("size %zu: output not NUL-terminated (input %s)\n", size,
		            show(in, strlen(in)));
		fail();
	}
	if (*n != strlen(out))
		print_error("size %zu: returned %zu, output is %zu bytes: %s\n", size, *n,
		            strlen(out), show(out, strlen(out)));
	assert_int_equal(*n, strlen(out));
	assert_true(*n < size);
	if (size < 3)
		return out;
	why = json_object_check(out, *n, &at);
	if (why) {
		size_t from = at > 100 ? at - 100 : 0;
		print_error("size %zu: not a JSON object (%s at byte %zu): %s%s\ninput: %s\n", size,
		            why, at, from ? "..." : "", show(out + from, *n - from),
		            show(in, strlen(in)));
	}
	assert_null(why);
	return out;
}

/* Small deterministic generator (xorshift32), so runs repeat. */
static uint32_t rnd_state = 2463534242u;

static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

/* Builds one cmocka test per table row and runs them as one group. */
static int run_rows(const char *group, const void *table, size_t n, size_t size,
                    CMUnitTestFunction fn, const char *(*label)(const void *))
{
	struct CMUnitTest *tests = calloc(n, sizeof *tests);
	int failed;

	if (!tests)
		return 1;
	for (size_t i = 0; i < n; i++) {
		const void *row = (const char *)table + i * size;
		tests[i].name = label(row);
		tests[i].test_func = fn;
		tests[i].initial_state = (void *)row;
	}
	failed = _cmocka_run_group_tests(group, tests, n, NULL, NULL);
	free(tests);
	return failed;
}

#define ROWS(t) t, sizeof t / sizeof *t, sizeof *t

/* ---- log_kv_to_json rows ---- */

struct json_row {
	const char *name;
	const char *in;
	const char *want;     /* the output; for cut rows, how it begins */
	size_t size;          /* 0: BIG */
	int cut;              /* the output is cut short: want is a prefix */
};

/* 40, 26, 25 and 24 byte keys for the rows cut at 32 bytes. */
#define K40 "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
#define K26 "kkkkkkkkkkkkkkkkkkkkkkkkkk"
#define K25 "kkkkkkkkkkkkkkkkkkkkkkkkk"
#define K24 "kkkkkkkkkkkkkkkkkkkkkkkk"
#define X60 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
#define E20 "\\x01\\x01\\x01\\x01\\x01\\x01\\x01\\x01\\x01\\x01" \
            "\\x01\\x01\\x01\\x01\\x01\\x01\\x01\\x01\\x01\\x01"
#define U30 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
            "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9" \
            "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
#define FFFD3 "\\ufffd\\ufffd\\ufffd"
#define FFFD4 "\\ufffd\\ufffd\\ufffd\\ufffd"

static const struct json_row json_rows[] = {
	/* shape */
	{ "empty input", "", "{}", 0, 0 },
	{ "only spaces", "   ", "{}", 0, 0 },
	{ "one pair", "a=b", "{\"a\":\"b\"}", 0, 0 },
	{ "pairs in order", "event=login listener=imaps result=ok",
	  "{\"event\":\"login\",\"listener\":\"imaps\",\"result\":\"ok\"}", 0, 0 },
	{ "runs of spaces", "  a=x   b=y  ", "{\"a\":\"x\",\"b\":\"y\"}", 0, 0 },
	{ "value holding =", "a=b=c", "{\"a\":\"b=c\"}", 0, 0 },
	{ "empty bare value", "a= b=1", "{\"a\":\"\",\"b\":1}", 0, 0 },
	{ "empty bare value at the end", "a=", "{\"a\":\"\"}", 0, 0 },

	/* numbers and null */
	{ "digits are a number", "bytes=1234", "{\"bytes\":1234}", 0, 0 },
	{ "zero is a number", "n=0", "{\"n\":0}", 0, 0 },
	{ "leading zero is text", "n=007", "{\"n\":\"007\"}", 0, 0 },
	{ "double zero is text", "n=00", "{\"n\":\"00\"}", 0, 0 },
	{ "18 digits are a number", "n=123456789012345678", "{\"n\":123456789012345678}", 0, 0 },
	{ "19 digits are text", "n=1234567890123456789", "{\"n\":\"1234567890123456789\"}", 0,
	  0 },
	{ "negative is text", "n=-1", "{\"n\":\"-1\"}", 0, 0 },
	{ "fraction is text", "n=1.5", "{\"n\":\"1.5\"}", 0, 0 },
	{ "digits then letters are text", "n=12ab", "{\"n\":\"12ab\"}", 0, 0 },
	{ "hex is text", "n=0x10", "{\"n\":\"0x10\"}", 0, 0 },
	{ "dash is null", "user=- n=1", "{\"user\":null,\"n\":1}", 0, 0 },
	{ "two dashes are text", "user=--", "{\"user\":\"--\"}", 0, 0 },

	/* bare values are JSON-escaped */
	{ "bare value with quote and backslash", "a=x\"y\\z", "{\"a\":\"x\\\"y\\\\z\"}", 0, 0 },
	{ "bare value with a tab", "a=x\ty", "{\"a\":\"x\\u0009y\"}", 0, 0 },
	{ "bare value with DEL", "a=x\x7fy", "{\"a\":\"x\\u007fy\"}", 0, 0 },

	/* quoted values: log_quote()'s escapes undone, then JSON's applied */
	{ "quoted with spaces", "user=\"bob smith\" n=1", "{\"user\":\"bob smith\",\"n\":1}", 0,
	  0 },
	{ "quoted digits stay text", "n=\"42\"", "{\"n\":\"42\"}", 0, 0 },
	{ "quoted dash stays text", "n=\"-\"", "{\"n\":\"-\"}", 0, 0 },
	{ "quoted empty", "a=\"\" b=2", "{\"a\":\"\",\"b\":2}", 0, 0 },
	{ "escaped quotes", "m=\"say \\\"hi\\\"\"", "{\"m\":\"say \\\"hi\\\"\"}", 0, 0 },
	{ "escaped backslashes", "p=\"c:\\\\dir\\\\\"", "{\"p\":\"c:\\\\dir\\\\\"}", 0, 0 },
	{ "hex escapes of control bytes", "m=\"a\\x09b\\x0ac\\x1f\\x7f\"",
	  "{\"m\":\"a\\u0009b\\u000ac\\u001f\\u007f\"}", 0, 0 },
	{ "hex escape of NUL", "m=\"a\\x00b\"", "{\"m\":\"a\\u0000b\"}", 0, 0 },
	{ "uppercase hex escape", "m=\"\\x1F\"", "{\"m\":\"\\u001f\"}", 0, 0 },
	{ "hex escapes of UTF-8 bytes", "m=\"\\xc3\\xa9\"", "{\"m\":\"\xc3\xa9\"}", 0, 0 },
	{ "hex escape of a bad byte", "m=\"\\xff\"", "{\"m\":\"\\ufffd\"}", 0, 0 },
	{ "unknown escape keeps its character", "m=\"\\q\"", "{\"m\":\"q\"}", 0, 0 },
	{ "\\x with one hex digit loses nothing", "m=\"\\x4g\"", "{\"m\":\"x4g\"}", 0, 0 },
	{ "quoted value holding pairs", "m=\"k=v x=y\" z=1", "{\"m\":\"k=v x=y\",\"z\":1}", 0, 0 },
	{ "pair right after the closing quote", "a=\"x\"b=2", "{\"a\":\"x\",\"b\":2}", 0, 0 },
	{ "unterminated quote", "a=\"abc def", "{\"a\":\"abc def\"}", 0, 0 },
	{ "lone quote", "a=\"", "{\"a\":\"\"}", 0, 0 },
	{ "lone backslash at the end", "a=\"abc\\", "{\"a\":\"abc\\\\\"}", 0, 0 },
	{ "backslash escapes the last quote", "a=\"abc\\\"", "{\"a\":\"abc\\\"\"}", 0, 0 },
	{ "escaped backslash then the end quote", "a=\"abc\\\\\" b=1",
	  "{\"a\":\"abc\\\\\",\"b\":1}", 0, 0 },

	/* what is not key=value goes under "text" */
	{ "text only", "hello world", "{\"text\":\"hello world\"}", 0, 0 },
	{ "text after pairs", "a=1 listening on port 993",
	  "{\"a\":1,\"text\":\"listening on port 993\"}", 0, 0 },
	{ "pairs after text stay text", "a=1 oops b=2", "{\"a\":1,\"text\":\"oops b=2\"}", 0, 0 },
	{ "space before =", "a =1", "{\"text\":\"a =1\"}", 0, 0 },
	{ "text escaped", "a=1 say \"x\" \\ y", "{\"a\":1,\"text\":\"say \\\"x\\\" \\\\ y\"}", 0,
	  0 },
	{ "text with a control byte", "a=1 bad\x01" "byte",
	  "{\"a\":1,\"text\":\"bad\\u0001byte\"}", 0, 0 },

	/* UTF-8 */
	{ "2-byte utf-8 passes", "user=Jos\xc3\xa9 city=Z\xc3\xbcrich",
	  "{\"user\":\"Jos\xc3\xa9\",\"city\":\"Z\xc3\xbcrich\"}", 0, 0 },
	{ "3- and 4-byte utf-8 pass", "m=\xe2\x82\xac\xf0\x9f\x98\x80",
	  "{\"m\":\"\xe2\x82\xac\xf0\x9f\x98\x80\"}", 0, 0 },
	{ "utf-8 boundaries pass", "m=\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"
	  "\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
	  "{\"m\":\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"
	  "\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"}", 0, 0 },
	{ "utf-8 in a quoted value and text", "m=\"\xc3\xa9 \xe2\x82\xac\" caf\xc3\xa9",
	  "{\"m\":\"\xc3\xa9 \xe2\x82\xac\",\"text\":\"caf\xc3\xa9\"}", 0, 0 },
	{ "utf-8 key passes", "cl\xc3\xa9=1", "{\"cl\xc3\xa9\":1}", 0, 0 },
	{ "lone continuation byte", "m=a\x80" "b", "{\"m\":\"a\\ufffdb\"}", 0, 0 },
	{ "byte ff", "m=\xff", "{\"m\":\"\\ufffd\"}", 0, 0 },
	{ "2-byte lead at the end", "m=\xc3", "{\"m\":\"\\ufffd\"}", 0, 0 },
	{ "2-byte lead before ascii", "m=\xc3" "A", "{\"m\":\"\\ufffdA\"}", 0, 0 },
	{ "3-byte sequence cut", "m=\xe2\x82", "{\"m\":\"\\ufffd\\ufffd\"}", 0, 0 },
	{ "4-byte sequence cut by a space", "m=\xf0\x9f\x98 n=1",
	  "{\"m\":\"" FFFD3 "\",\"n\":1}", 0, 0 },
	{ "overlong 2-byte (c0)", "m=\xc0\xaf", "{\"m\":\"\\ufffd\\ufffd\"}", 0, 0 },
	{ "lead byte f5", "m=\xf5\x80\x80\x80", "{\"m\":\"" FFFD4 "\"}", 0, 0 },
	{ "overlong 3-byte (e0 80)", "m=\xe0\x80\xaf", "{\"m\":\"" FFFD3 "\"}", 0, 0 },
	{ "utf-16 surrogate (ed a0)", "m=\xed\xa0\x80", "{\"m\":\"" FFFD3 "\"}", 0, 0 },
	{ "overlong 4-byte (f0 80)", "m=\xf0\x80\x80\xaf", "{\"m\":\"" FFFD4 "\"}", 0, 0 },
	{ "above U+10FFFF (f4 90)", "m=\xf4\x90\x80\x80", "{\"m\":\"" FFFD4 "\"}", 0, 0 },
	{ "bad byte in a quoted value", "m=\"a\xff" "b\"", "{\"m\":\"a\\ufffdb\"}", 0, 0 },
	{ "bad byte in text", "oops \xfe", "{\"text\":\"oops \\ufffd\"}", 0, 0 },

	/* keys are JSON strings too */
	{ "key with a quote", "a\"b=1", "{\"a\\\"b\":1}", 0, 0 },
	{ "key with a backslash", "a\\b=1", "{\"a\\\\b\":1}", 0, 0 },
	{ "key with a control byte", "a\x01" "b=1", "{\"a\\u0001b\":1}", 0, 0 },
	{ "key with a bad byte", "\xff=1", "{\"\\ufffd\":1}", 0, 0 },

	/* a line as log_msg() builds it */
	{ "session_end line", "time=2026-11-25T13:50:51.123Z level=info event=session_end "
	  "listener=imaps client=[2001:db8::1]:50000 user=\"bob\" sni=- bytes_in=1234 "
	  "bytes_out=0 reason=\"client closed\"",
	  "{\"time\":\"2026-11-25T13:50:51.123Z\",\"level\":\"info\",\"event\":\"session_end\","
	  "\"listener\":\"imaps\",\"client\":\"[2001:db8::1]:50000\",\"user\":\"bob\","
	  "\"sni\":null,\"bytes_in\":1234,\"bytes_out\":0,\"reason\":\"client closed\"}", 0, 0 },

	{ "login line", "event=login listener=imaps client=192.0.2.1:50000 user=\"bob\" "
	  "mech=PLAIN result=fail reason=\"bad password\" client_cert=\"CN=bob\" duration_ms=12",
	  "{\"event\":\"login\",\"listener\":\"imaps\",\"client\":\"192.0.2.1:50000\","
	  "\"user\":\"bob\",\"mech\":\"PLAIN\",\"result\":\"fail\",\"reason\":\"bad password\","
	  "\"client_cert\":\"CN=bob\",\"duration_ms\":12}", 0, 0 },

	/* cut to fit size */
	{ "size 3 holds {}", "a=1", "{}", 3, 0 },
	{ "long quoted value cut", "a=\"" X60 "\" b=1", "{\"a\":\"xxxx", 32, 1 },
	{ "cut between pairs", "a=1 b=2 c=3 d=4 e=5 f=6 g=7", "{\"a\":1", 24, 1 },
	{ "cut among escapes", "m=\"" E20 "\"", "{\"m\":\"\\u0001", 40, 1 },
	{ "cut among utf-8", "m=" U30, "{\"m\":\"\xc3\xa9", 40, 1 },
	{ "cut in text", "a=1 " X60, "{\"a\":1,\"text\":\"xx", 40, 1 },
	{ "cut in a long key", K40 "=\"v\"", "{", 32, 1 },
	{ "cut right after a key", K26 "=\"v\"", "{", 32, 1 },
	{ "cut after a key's opening quote", K25 "=\"v\"", "{", 32, 1 },
	{ "cut in null", K24 "=-", "{", 32, 1 },
	{ "long key then a number", K40 "=1", "{", 32, 1 },
	{ "long key then null", K40 "=-", "{", 32, 1 },
};

/* One row: the output is exactly want (or begins with it). */
static void run_json(void **state)
{
	const struct json_row *r = *state;
	size_t size = r->size ? r->size : BIG, n;
	char *out = convert(r->in, size, &n);

	if (r->cut) {
		if (strncmp(out, r->want, strlen(r->want)) != 0)
			print_error("got %s\n", show(out, n));
		assert_true(strncmp(out, r->want, strlen(r->want)) == 0);
	} else {
		assert_string_equal(out, r->want);
	}
	free(out);
}

/* The same row at every size from 3 up: always one JSON object that fits,
 * and the whole output once size leaves 32 bytes to spare. */
static void run_json_sizes(void **state)
{
	const struct json_row *r = *state;
	size_t n, full_n;
	char *full = convert(r->in, BIG, &full_n);

	for (size_t size = 3; size <= full_n + 32; size++) {
		char *out = convert(r->in, size, &n);
		if (size == full_n + 32)
			assert_string_equal(out, full);
		free(out);
	}
	free(full);
}

static const char *json_label(const void *r)
{
	return ((const struct json_row *)r)->name;
}

/* ---- single tests for log_kv_to_json ---- */

/* Sizes 0-2 leave no room for "{}": nothing, or an empty string. */
static void test_tiny_sizes(void **state)
{
	char out[8];

	(void)state;
	memset(out, CANARY, sizeof out);
	assert_int_equal(log_kv_to_json("a=1", out, 0), 0);
	for (size_t i = 0; i < sizeof out; i++)
		assert_int_equal((unsigned char)out[i], CANARY);
	for (size_t size = 1; size < 3; size++) {
		memset(out, CANARY, sizeof out);
		assert_int_equal(log_kv_to_json("a=1", out, size), 0);
		if (out[0] != '\0')
			print_error("size %zu: out[0] is 0x%02x, not a NUL\n", size,
			            (unsigned char)out[0]);
		assert_int_equal(out[0], '\0');
		for (size_t i = size; i < sizeof out; i++)
			assert_int_equal((unsigned char)out[i], CANARY);
	}
	memset(out, CANARY, sizeof out);
	assert_int_equal(log_kv_to_json("a=1", out, 3), 2);
	assert_string_equal(out, "{}");
}

/* "k=" then n bytes of c, optionally quoted, then " z=1". */
static char *long_line(size_t n, char c, int quoted)
{
	char *s = malloc(n + 16);
	size_t o = 0;

	assert_non_null(s);
	memcpy(s, "k=", 2);
	o = 2;
	if (quoted)
		s[o++] = '"';
	memset(s + o, c, n);
	o += n;
	if (quoted)
		s[o++] = '"';
	memcpy(s + o, " z=1", 5);
	return s;
}

/* What {"k":"<n bytes of c>","z":1} must look like. */
static void assert_long(const char *out, size_t n, char c)
{
	size_t len = strlen(out);

	if (len != n + 14)
		print_error("output is %zu bytes, want %zu: %s\n", len, n + 14, show(out, len));
	assert_int_equal(len, n + 14);
	assert_memory_equal(out, "{\"k\":\"", 6);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(out[6 + i], c);
	assert_string_equal(out + 6 + n, "\",\"z\":1}");
}

static void test_long_bare_value(void **state)
{
	char *in = long_line(5000, 'x', 0), *out;
	size_t n;

	(void)state;
	out = convert(in, BIG, &n);
	assert_long(out, 5000, 'x');
	free(out);
	free(in);
}

static void test_long_quoted_value(void **state)
{
	char *in = long_line(2000, 'y', 1), *out;
	size_t n;

	(void)state;
	out = convert(in, BIG, &n);
	assert_long(out, 2000, 'y');
	free(out);
	free(in);
}

/* A quoted value is not cut while out has room for it. */
static void test_quoted_value_over_2k(void **state)
{
	char *in = long_line(3000, 'y', 1), *out;
	size_t n;

	(void)state;
	out = convert(in, BIG, &n);
	assert_long(out, 3000, 'y');
	free(out);
	free(in);
}

/* 500 pairs, all kept in order. */
static void test_many_pairs(void **state)
{
	char in[8192], want[16384], *out;
	size_t o = 0, w = 0, n;

	(void)state;
	want[w++] = '{';
	for (int i = 0; i < 500; i++) {
		o += (size_t)snprintf(in + o, sizeof in - o, "%sk%d=%d", i ? " " : "", i, i);
		w += (size_t)snprintf(want + w, sizeof want - w, "%s\"k%d\":%d", i ? "," : "", i,
		                      i);
	}
	snprintf(want + w, sizeof want - w, "}");
	out = convert(in, BIG, &n);
	assert_string_equal(out, want);
	free(out);
}

/* Random lines from pieces of keys, values, quotes, escapes and bad
 * bytes, at random sizes: every output is one JSON object that fits. */
static void test_random_lines_are_json(void **state)
{
	static const char *const pieces[] = {
		"a", "key", "=", "=", " ", " ", "\"", "\\", "\\\"", "\\x", "\\x0", "\\x1f", "1",
		"0", "-", "123", "\t", "\x01", "\x7f", "\xc3\xa9", "\xc3", "\xe2\x82\xac", "\xff",
		"\x80", "\xf0\x9f\x98\x80", "\xe0\x80\x80", "text", "long_key_name_here",
	};
	char in[256];
	size_t n;

	(void)state;
	rnd_state = 12345;
	for (int iter = 0; iter < 20000; iter++) {
		size_t o = 0, npieces = rnd() % 24, size = 3 + rnd() % 160;
		char *out;

		for (size_t k = 0; k < npieces; k++) {
			const char *p = pieces[rnd() % (sizeof pieces / sizeof *pieces)];
			size_t len = strlen(p);
			if (o + len >= sizeof in)
				break;
			memcpy(in + o, p, len);
			o += len;
		}
		in[o] = '\0';
		out = convert(in, size, &n);
		free(out);
	}
}

/* ---- log_quote rows ---- */

struct quote_row {
	const char *name;
	const char *in;       /* NULL allowed */
	const char *want;
};

static const struct quote_row quote_rows[] = {
	{ "empty", "", "\"\"" },
	{ "NULL", NULL, "\"\"" },
	{ "plain", "a b=c", "\"a b=c\"" },
	{ "quote", "say \"hi\"", "\"say \\\"hi\\\"\"" },
	{ "backslash", "c:\\dir\\", "\"c:\\\\dir\\\\\"" },
	{ "control bytes", "\t\n\x01\x1f\x7f", "\"\\x09\\x0a\\x01\\x1f\\x7f\"" },
	{ "high bytes unchanged", "\xc3\xa9\xff", "\"\xc3\xa9\xff\"" },
};

static void run_quote(void **state)
{
	const struct quote_row *r = *state;
	char *buf = guarded(256);

	assert_ptr_equal(log_quote(buf, 256, r->in), buf);
	assert_guard(buf, 256, r->in ? r->in : "(null)");
	assert_string_equal(buf, r->want);
	free(buf);
}

static const char *quote_label(const void *r)
{
	return ((const struct quote_row *)r)->name;
}

/* Where escapes of a quoted value q (quotes included) end: cut[i] is set
 * when q[1..i) is a whole number of escapes. */
static void escape_ends(const char *q, size_t len, char *cut)
{
	memset(cut, 0, len);
	for (size_t i = 1; i < len;) {
		cut[i] = 1;
		i += q[i] != '\\' ? 1 : q[i + 1] == 'x' ? 4 : 2;
	}
}

/* Each row's input at every size: a quoted prefix of the whole output,
 * cut between escapes, that fits; sizes 1-2 give "", 0 writes nothing. */
static void test_quote_sizes(void **state)
{
	(void)state;
	for (size_t r = 0; r < sizeof quote_rows / sizeof *quote_rows; r++) {
		const char *in = quote_rows[r].in, *full = quote_rows[r].want;
		size_t flen = strlen(full);
		char cut[64];

		assert_true(flen < sizeof cut);
		escape_ends(full, flen, cut);
		for (size_t size = 0; size <= flen + 8; size++) {
			char *buf = guarded(size);
			size_t len;

			log_quote(buf, size, in);
			assert_guard(buf, size, in ? in : "(null)");
			if (size == 0) {
				free(buf);
				continue;
			}
			assert_non_null(memchr(buf, '\0', size));
			len = strlen(buf);
			if (size < 3) {
				assert_int_equal(len, 0);
				free(buf);
				continue;
			}
			if (len < 2 || len >= size || buf[0] != '"' || buf[len - 1] != '"' ||
			    memcmp(buf, full, len - 1) != 0 || !cut[len - 1])
				fail_msg("%s at size %zu: %s", quote_rows[r].name, size,
				         show(buf, len));
			if (size >= flen + 8)
				assert_string_equal(buf, full);
			free(buf);
		}
	}
}

/* ---- round trips ---- */

/* A random valid UTF-8 string of up to max code points, leaning on the
 * bytes log_quote() escapes and on code points at the edges of each
 * length; returns its length. */
static size_t random_utf8(unsigned char *s, size_t max)
{
	static const uint32_t edges[] = { 0x80, 0x7ff, 0x800, 0xfff, 0xd7ff, 0xe000, 0xfffd,
	                                  0xffff, 0x10000, 0x10ffff, 0xe9, 0x20ac, 0x1f600 };
	size_t n = rnd() % (max + 1), o = 0;

	for (size_t k = 0; k < n; k++) {
		uint32_t cp, pick = rnd() % 10;
		if (pick < 3)
			cp = 0x20 + rnd() % 0x5f;
		else if (pick == 3)
			cp = "\"\\= x"[rnd() % 5];
		else if (pick == 4)
			cp = 1 + rnd() % 0x1f;
		else if (pick == 5)
			cp = 0x7f;
		else if (pick == 6)
			cp = edges[rnd() % (sizeof edges / sizeof *edges)];
		else
			do
				cp = 0x80 + rnd() % 0x10ff80;
			while (cp >= 0xd800 && cp <= 0xdfff);
		if (cp < 0x80) {
			s[o++] = (unsigned char)cp;
		} else if (cp < 0x800) {
			s[o++] = (unsigned char)(0xc0 | cp >> 6);
			s[o++] = (unsigned char)(0x80 | (cp & 0x3f));
		} else if (cp < 0x10000) {
			s[o++] = (unsigned char)(0xe0 | cp >> 12);
			s[o++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			s[o++] = (unsigned char)(0x80 | (cp & 0x3f));
		} else {
			s[o++] = (unsigned char)(0xf0 | cp >> 18);
			s[o++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
			s[o++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
			s[o++] = (unsigned char)(0x80 | (cp & 0x3f));
		}
	}
	s[o] = '\0';
	return o;
}

/* A random string of non-NUL bytes, half of them 0x80 and above. */
static size_t random_bytes(unsigned char *s, size_t max)
{
	size_t n = rnd() % (max + 1);

	for (size_t k = 0; k < n; k++)
		s[k] = (unsigned char)(rnd() % 2 ? 0x80 + rnd() % 0x80 : 1 + rnd() % 0x7f);
	s[n] = '\0';
	return n;
}

/* What a JSON string of s[0..n) decodes to: valid UTF-8 kept, every
 * other byte U+FFFD. */
static size_t replace_bad(const unsigned char *s, size_t n, unsigned char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n;) {
		size_t u = utf8_valid(s + i, n - i);
		if (u) {
			memcpy(out + o, s + i, u);
			o += u;
			i += u;
		} else {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		}
	}
	return o;
}

/* s goes through log_quote() into "a=1 k=<quoted> b=-", then through
 * log_kv_to_json(); the "k" string, decoded by hand, must be want. */
static void round_trip(const unsigned char *s, size_t n, const unsigned char *want,
                       size_t wlen)
{
	size_t qsize = 4 * n + 3, n_out, dlen = 0;
	char *q = malloc(qsize), *kv = malloc(qsize + 16), *out;
	unsigned char *dec = malloc(3 * n + 1);
	struct jp p;

	assert_non_null(q);
	assert_non_null(kv);
	assert_non_null(dec);
	log_quote(q, qsize, (const char *)s);
	assert_true(strlen(q) >= 2);
	snprintf(kv, qsize + 16, "a=1 k=%s b=-", q);
	out = convert(kv, BIG, &n_out);
	if (strncmp(out, "{\"a\":1,\"k\":\"", 12) != 0)
		print_error("input %s\nkv %s\ngot %s\n", show((const char *)s, n),
		            show(kv, strlen(kv)), show(out, n_out));
	assert_memory_equal(out, "{\"a\":1,\"k\":", 11);
	p = (struct jp){ (const unsigned char *)out, 11, n_out, NULL, 0 };
	assert_int_equal(jp_string(&p, dec, 3 * n + 1, &dlen), 0);
	assert_string_equal(out + p.i, ",\"b\":null}");
	if (dlen != wlen || memcmp(dec, want, wlen) != 0)
		print_error("input %s\n", show((const char *)s, n));
	if (dlen != wlen || memcmp(dec, want, wlen) != 0)
		print_error("decoded %s\nwant    %s\n", show((const char *)dec, dlen),
		            show((const char *)want, wlen));
	assert_int_equal(dlen, wlen);
	assert_memory_equal(dec, want, wlen);
	free(out);
	free(dec);
	free(kv);
	free(q);
}

/* Valid UTF-8 comes back byte for byte. */
static void test_round_trip_utf8(void **state)
{
	unsigned char s[4 * 300 + 1];

	(void)state;
	rnd_state = 777;
	for (int iter = 0; iter < 5000; iter++) {
		size_t n = random_utf8(s, 300);
		round_trip(s, n, s, n);
	}
}

/* Any bytes come back with each byte that is not part of valid UTF-8
 * as U+FFFD. */
static void test_round_trip_bytes(void **state)
{
	unsigned char s[501], want[3 * 500 + 1];

	(void)state;
	rnd_state = 4242;
	for (int iter = 0; iter < 5000; iter++) {
		size_t n = random_bytes(s, 500);
		round_trip(s, n, want, replace_bad(s, n, want));
	}
}

/* The validator itself refuses what it must, so a pass means something. */
static void test_validator(void **state)
{
	static const char *const good[] = {
		"{}", " { } ", "{\"a\":1}", "{\"a\":-0.5e+3,\"b\":[true,false,null],\"c\":{}}",
		"{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}",
		"{\"\xc3\xa9\":\"\"}",
	};
	static const char *const bad[] = {
		"", "[]", "1", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":01}",
		"{\"a\":1}x", "{\"a\":\"b}", "{\"a\"b\":1}", "{\"a\":\"\t\"}", "{\"a\":\"\\x41\"}",
		"{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800\"}", "{\"a\":\"\\udc00\"}", "{\"a\":nul}",
		"{\"a\":\"\xff\"}", "{\"a\":\"\xe0\x80\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}",
		"{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xc3\"}", "{a:1}", "{\"a\":1 \"b\":2}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		if (json_object_check(good[i], strlen(good[i]), NULL))
			fail_msg("refused good %s", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (!json_object_check(bad[i], strlen(bad[i]), NULL))
			fail_msg("took bad %s", show(bad[i], strlen(bad[i])));
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validator),
		cmocka_unit_test(test_tiny_sizes),
		cmocka_unit_test(test_long_bare_value),
		cmocka_unit_test(test_long_quoted_value),
		cmocka_unit_test(test_quoted_value_over_2k),
		cmocka_unit_test(test_many_pairs),
		cmocka_unit_test(test_random_lines_are_json),
		cmocka_unit_test(test_quote_sizes),
		cmocka_unit_test(test_round_trip_utf8),
		cmocka_unit_test(test_round_trip_bytes),
	};
	int failed = 0;

	failed += run_rows("log_kv_to_json", ROWS(json_rows), run_json, json_label);
	failed += run_rows("log_kv_to_json at every size", ROWS(json_rows), run_json_sizes,
	                   json_label);
	failed += run_rows("log_quote", ROWS(quote_rows), run_quote, quote_label);
	failed += cmocka_run_group_tests_name("log", tests, NULL, NULL);
	return failed ? 1 : 0;
}
