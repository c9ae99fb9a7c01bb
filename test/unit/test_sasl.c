/*
 * Unit tests for protocols/sasl.c.
 *
 * Three tables, one cmocka test per row: base64 decode rows (input,
 * output capacity, expected length or -1, expected bytes), base64 encode
 * rows (input, capacity, expected length, expected text), PLAIN rows
 * (message, expected fields or the exact refusal). Output buffers are
 * pre-filled with FILL so writes past the result show; decode input is
 * followed by 'A's so reads past its length show. Then round trips
 * over every length up to 300, all 256 byte values, and sasl_wipe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sasl.h"

#define FILL 0xAA
#define BUFCAP 600

/* Bytes and their length; s may contain NUL. */
#define B(s) s, sizeof(s) - 1

#define X16 "xxxxxxxxxxxxxxxx"
#define X255 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 "xxxxxxxxxxxxxxx"
#define X1024 X255 X255 X255 X255 "xxxx"
#define X1025 X1024 "x"

/* ---- base64 decode ---- */

struct dec_row {
	const char *name;
	const char *in;
	size_t inlen;
	size_t outcap;
	ssize_t rc;                   /* decoded length, or -1 */
	const char *out;              /* rc bytes expected */
};

#define DEC(nm, input, cap, r, output) { nm, B(input), cap, r, output }
#define DEC_BAD(nm, input, cap) { nm, B(input), cap, -1, "" }

static const struct dec_row dec_rows[] = {
	/* RFC 4648 section 10 */
	DEC("b64 decode empty", "", 0, 0, ""),
	DEC("b64 decode f", "Zg==", 1, 1, "f"),
	DEC("b64 decode fo", "Zm8=", 2, 2, "fo"),
	DEC("b64 decode foo", "Zm9v", 3, 3, "foo"),
	DEC("b64 decode foob", "Zm9vYg==", 4, 4, "foob"),
	DEC("b64 decode fooba", "Zm9vYmE=", 5, 5, "fooba"),
	DEC("b64 decode foobar", "Zm9vYmFy", 6, 6, "foobar"),
	/* alphabet ends and NUL bytes */
	DEC("b64 decode + and /", "+/+/", 3, 3, "\xfb\xff\xbf"),
	DEC("b64 decode PLAIN message", "AGFsaWNlAHMzY3JldA==", 13, 13, "\0alice\0s3cret"),
	DEC("b64 decode spare capacity untouched", "Zm9v", 10, 3, "foo"),
	/* length */
	DEC_BAD("b64 decode bare = (empty SASL response)", "=", 10),
	DEC_BAD("b64 decode length 1", "Z", 10),
	DEC_BAD("b64 decode length 3", "Zm9", 10),
	DEC_BAD("b64 decode length 5", "Zm9vY", 10),
	DEC_BAD("b64 decode unpadded f", "Zg", 10),
	DEC_BAD("b64 decode short padding", "Zg=", 10),
	/* characters */
	DEC_BAD("b64 decode !", "Zm9v!A==", 10),
	DEC_BAD("b64 decode space", "Zm 9v", 10),
	DEC_BAD("b64 decode inner space, length 8", "Zm9v Zm9", 10),
	DEC_BAD("b64 decode trailing CRLF", "Zm9v\r\n", 10),
	DEC_BAD("b64 decode trailing LF, length 8", "Zm9vYmE\n", 10),
	DEC_BAD("b64 decode base64url -", "Zm9-", 10),
	DEC_BAD("b64 decode base64url _", "Zm9_", 10),
	DEC_BAD("b64 decode NUL", "Zm\0v", 10),
	DEC_BAD("b64 decode 8-bit", "Zm9\xc3", 10),
	DEC_BAD("b64 decode 8-bit 0xff", "\xff\xff\xff\xff", 10),
	/* padding */
	DEC_BAD("b64 decode padding in the middle", "Zg==Zg==", 10),
	DEC_BAD("b64 decode one = in the middle", "Zm8=Zm9v", 10),
	DEC_BAD("b64 decode three =", "Z===", 10),
	DEC_BAD("b64 decode four =", "====", 10),
	DEC_BAD("b64 decode = before data", "Zm=v", 10),
	DEC_BAD("b64 decode leading =", "=Zm9", 10),
	DEC_BAD("b64 decode = after ==", "Zg===Zg=", 10),
	/* unused bits must be zero */
	DEC_BAD("b64 decode pad bits set, == low bit", "ZB==", 10),
	DEC_BAD("b64 decode pad bits set, == high bit", "ZI==", 10),
	DEC_BAD("b64 decode pad bits set, = low bit", "Zm9=", 10),
	DEC_BAD("b64 decode pad bits set, = high bit", "Zm+=", 10),
	DEC("b64 decode pad bits clear, ==", "Zw==", 1, 1, "g"),
	DEC("b64 decode pad bits clear, =", "Zm8=", 2, 2, "fo"),
	/* capacity */
	DEC_BAD("b64 decode outcap one short", "Zm9v", 2),
	DEC_BAD("b64 decode outcap one short, padded", "Zm9vYmE=", 4),
	DEC_BAD("b64 decode outcap 0", "Zg==", 0),
	DEC("b64 decode outcap exact, padded", "Zm9vYmE=", 5, 5, "fooba"),
	/* a bad character after good groups leaves no decoded bytes behind */
	DEC_BAD("b64 decode bad last group", "Zm9vYmFy!!!!", 16),
	DEC_BAD("b64 decode bad pad bits after good groups", "Zm9vYmFyZh==", 16),
};

/* One decode row: result, bytes, and nothing written past them. */
static void test_dec_row(void **state)
{
	const struct dec_row *r = *state;
	uint8_t out[BUFCAP];
	char in[BUFCAP];
	ssize_t rc;

	/* valid base64 after the input: reading past inlen shows */
	assert_true(r->inlen + 8 <= sizeof in);
	memset(in, 'A', sizeof in);
	memcpy(in, r->in, r->inlen);
	memset(out, FILL, sizeof out);
	rc = sasl_b64_decode(in, r->inlen, out, r->outcap);
	if (rc != r->rc)
		fail_msg("%s: rc %zd, expected %zd", r->name, rc, r->rc);
	if (rc >= 0) {
		assert_memory_equal(out, r->out, (size_t)rc);
		for (size_t i = (size_t)rc; i < sizeof out; i++)
			if (out[i] != FILL)
				fail_msg("%s: byte %zu written past the result", r->name, i);
		return;
	}
	/* refused: every byte is untouched or wiped, none decoded */
	for (size_t i = 0; i < sizeof out; i++)
		if (out[i] != FILL && out[i] != 0)
			fail_msg("%s: byte %zu holds 0x%02x after a refusal", r->name, i, out[i]);
}

/* ---- base64 encode ---- */

struct enc_row {
	const char *name;
	const char *in;
	size_t len;
	size_t outcap;
	size_t rc;
	const char *out;              /* expected text ("" when it does not fit) */
};

#define ENC(nm, input, cap, output) { nm, B(input), cap, sizeof(output) - 1, output }
#define ENC_SHORT(nm, input, cap) { nm, B(input), cap, 0, "" }

static const struct enc_row enc_rows[] = {
	ENC("b64 encode empty", "", 1, ""),
	ENC("b64 encode f", "f", 5, "Zg=="),
	ENC("b64 encode fo", "fo", 5, "Zm8="),
	ENC("b64 encode foo", "foo", 5, "Zm9v"),
	ENC("b64 encode foob", "foob", 9, "Zm9vYg=="),
	ENC("b64 encode fooba", "fooba", 9, "Zm9vYmE="),
	ENC("b64 encode foobar", "foobar", 9, "Zm9vYmFy"),
	ENC("b64 encode + and /", "\xfb\xff\xbf", 5, "+/+/"),
	ENC("b64 encode PLAIN message", "\0alice\0s3cret", 21, "AGFsaWNlAHMzY3JldA=="),
	ENC("b64 encode authzid message", "admin\0alice\0s3cret", 25, "YWRtaW4AYWxpY2UAczNjcmV0"),
	ENC("b64 encode spare capacity", "foo", 100, "Zm9v"),
	ENC_SHORT("b64 encode no room for the NUL", "foo", 4),
	ENC_SHORT("b64 encode no room for padding", "f", 3),
	ENC_SHORT("b64 encode outcap 1", "f", 1),
	ENC_SHORT("b64 encode foobar one short", "foobar", 8),
};

/* One encode row: the text, its NUL, and nothing past it. With outcap 0
 * nothing at all may be written. */
static void test_enc_row(void **state)
{
	const struct enc_row *r = *state;
	char out[BUFCAP];
	size_t rc;

	memset(out, FILL, sizeof out);
	rc = sasl_b64_encode((const uint8_t *)r->in, r->len, out, r->outcap);
	if (rc != r->rc)
		fail_msg("%s: rc %zu, expected %zu", r->name, rc, r->rc);
	assert_string_equal(out, r->out);
	for (size_t i = rc + 1; i < sizeof out; i++)
		if ((uint8_t)out[i] != FILL)
			fail_msg("%s: byte %zu written past the NUL", r->name, i);
}

/* outcap 0: not even the NUL is written. */
static void test_enc_outcap_zero(void **state)
{
	char out[8];

	(void)state;

	memset(out, FILL, sizeof out);
	assert_int_equal(sasl_b64_encode((const uint8_t *)"foo", 3, out, 0), 0);
	assert_int_equal(sasl_b64_encode((const uint8_t *)"", 0, out, 0), 0);
	for (size_t i = 0; i < sizeof out; i++)
		assert_int_equal((uint8_t)out[i], FILL);
}

/* RFC 4648 alphabet in both directions: every byte value 0..255. */
static void test_all_bytes(void **state)
{
	static const char want[] =
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4v"
		"MDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWltcXV5f"
		"YGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6P"
		"kJGSk5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/"
		"wMHCw8TFxsfIycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v"
		"8PHy8/T19vf4+fr7/P3+/w==";
	uint8_t bytes[256], back[256];
	char text[sizeof want];

	(void)state;

	for (size_t i = 0; i < sizeof bytes; i++)
		bytes[i] = (uint8_t)i;
	assert_int_equal(sasl_b64_encode(bytes, sizeof bytes, text, sizeof text), sizeof want - 1);
	assert_string_equal(text, want);
	assert_int_equal(sasl_b64_decode(want, sizeof want - 1, back, sizeof back), 256);
	assert_memory_equal(back, bytes, sizeof bytes);
}

/* Every length 0..300 of pseudo-random bytes: encode with the exact
 * capacity, decode with the exact capacity, same bytes; one byte less
 * capacity refuses either way. */
static void test_round_trip(void **state)
{
	uint8_t in[300], back[300];
	char text[4 * 100 + 1];
	uint32_t x = 12345;

	(void)state;

	for (size_t i = 0; i < sizeof in; i++) {
		x = x * 1103515245u + 12345u;
		in[i] = (uint8_t)(x >> 16);
	}
	for (size_t n = 0; n <= sizeof in; n++) {
		size_t want = (n + 2) / 3 * 4;

		assert_int_equal(sasl_b64_encode(in, n, text, want + 1), want);
		assert_int_equal(strlen(text), want);
		assert_int_equal(sasl_b64_encode(in, n, text, want), 0);
		assert_int_equal(sasl_b64_encode(in, n, text, want + 1), want);
		assert_int_equal(sasl_b64_decode(text, want, back, n), (ssize_t)n);
		assert_memory_equal(back, in, n);
		if (n > 0)
			assert_int_equal(sasl_b64_decode(text, want, back, n - 1), -1);
	}
}

/* ---- PLAIN ---- */

struct plain_row {
	const char *name;
	const char *msg;
	size_t len;
	int rc;
	const char *authzid, *authcid, *passwd;   /* rc 0 */
	size_t authzid_len, authcid_len, passwd_len;
	const char *why;                          /* rc -1, exact */
};

#define PLAIN_OK(nm, m, z, c, p) { .name = nm, .msg = m, .len = sizeof(m) - 1, .rc = 0, \
                                   .authzid = z, .authzid_len = sizeof(z) - 1, \
                                   .authcid = c, .authcid_len = sizeof(c) - 1, \
                                   .passwd = p, .passwd_len = sizeof(p) - 1 }
#define PLAIN_NO(nm, m, w) { .name = nm, .msg = m, .len = sizeof(m) - 1, .rc = -1, .why = w }

#define W_EMPTY   "PLAIN message is empty"
#define W_FEWER   "PLAIN message has fewer than two NULs"
#define W_MORE    "PLAIN message has more than two NULs"
#define W_NOCID   "PLAIN authcid is empty"
#define W_NOPW    "PLAIN passwd is empty"
#define W_LONGZID "PLAIN authzid is longer than 1024 octets"
#define W_LONGCID "PLAIN authcid is longer than 1024 octets"
#define W_LONGPW  "PLAIN passwd is longer than 1024 octets"

static const struct plain_row plain_rows[] = {
	PLAIN_OK("plain without authzid", "\0alice\0s3cret", "", "alice", "s3cret"),
	PLAIN_OK("plain with authzid", "admin\0alice\0s3cret", "admin", "alice", "s3cret"),
	PLAIN_OK("plain one-byte fields", "\0u\0p", "", "u", "p"),
	PLAIN_OK("plain passwd bytes kept", "\0alice\0p\"a\\ s {5}\xc3\xa4\xff\r\n x", "", "alice",
	         "p\"a\\ s {5}\xc3\xa4\xff\r\n x"),
	PLAIN_OK("plain 255-byte fields", X255 "\0" X255 "\0" X255, X255, X255, X255),
	PLAIN_OK("plain 1024-byte fields", X1024 "\0" X1024 "\0" X1024, X1024, X1024, X1024),
	PLAIN_NO("plain empty message", "", W_EMPTY),
	PLAIN_NO("plain no NUL", "alice", W_FEWER),
	PLAIN_NO("plain one NUL", "\0alice", W_FEWER),
	PLAIN_NO("plain one NUL, trailing", "alice\0", W_FEWER),
	PLAIN_NO("plain three NULs", "a\0b\0c\0d", W_MORE),
	PLAIN_NO("plain three NULs only", "\0\0\0", W_MORE),
	PLAIN_NO("plain NUL in passwd", "\0alice\0s3\0cret", W_MORE),
	PLAIN_NO("plain empty authcid", "\0\0s3cret", W_NOCID),
	PLAIN_NO("plain empty authcid with authzid", "admin\0\0s3cret", W_NOCID),
	PLAIN_NO("plain two NULs only", "\0\0", W_NOCID),
	PLAIN_NO("plain empty passwd", "\0alice\0", W_NOPW),
	PLAIN_NO("plain 1025-byte authzid", X1025 "\0alice\0s3cret", W_LONGZID),
	PLAIN_NO("plain 1025-byte authcid", "\0" X1025 "\0s3cret", W_LONGCID),
	PLAIN_NO("plain 1025-byte passwd", "\0alice\0" X1025, W_LONGPW),
};

/* A field points at its place in msg, has its bytes and ends in NUL. */
static void check_field(const char *name, const char *what, const uint8_t *msg, const char *got,
                        size_t got_len, size_t off, const char *want, size_t want_len)
{
	if (got != (const char *)msg + off)
		fail_msg("%s: %s not at offset %zu of the message", name, what, off);
	if (got_len != want_len)
		fail_msg("%s: %s length %zu, expected %zu", name, what, got_len, want_len);
	assert_memory_equal(got, want, want_len);
	if (got[got_len] != '\0')
		fail_msg("%s: %s not NUL-terminated", name, what);
}

/* One PLAIN row, in a buffer with the spare byte set to FILL: fields in
 * place, or the exact reason and the message left as it was. */
static void test_plain_row(void **state)
{
	const struct plain_row *r = *state;
	uint8_t msg[SASL_PLAIN_MAX + 2];
	struct sasl_plain p;
	const char *why = "(unset)";
	int rc;

	assert_true(r->len < sizeof msg);
	memset(msg, FILL, sizeof msg);
	memcpy(msg, r->msg, r->len);
	memset(&p, FILL, sizeof p);
	rc = sasl_plain_parse(msg, r->len, &p, &why);
	if (rc != r->rc)
		fail_msg("%s: rc %d, expected %d (why \"%s\")", r->name, rc, r->rc, why);
	if (rc != 0) {
		assert_string_equal(why, r->why);
		assert_memory_equal(msg, r->msg, r->len);
		assert_int_equal(msg[r->len], FILL);
		assert_null(p.authcid);
		assert_null(p.passwd);
		assert_null(p.authzid);
		return;
	}
	assert_string_equal(why, "(unset)");
	check_field(r->name, "authzid", msg, p.authzid, p.authzid_len, 0, r->authzid,
	            r->authzid_len);
	check_field(r->name, "authcid", msg, p.authcid, p.authcid_len, r->authzid_len + 1,
	            r->authcid, r->authcid_len);
	check_field(r->name, "passwd", msg, p.passwd, p.passwd_len,
	            r->authzid_len + r->authcid_len + 2, r->passwd, r->passwd_len);
	assert_int_equal(msg[r->len + 1], FILL);
}

/* why may be NULL. */
static void test_plain_why_null(void **state)
{
	uint8_t msg[] = "\0\0x";
	struct sasl_plain p;

	(void)state;

	assert_int_equal(sasl_plain_parse(msg, 3, &p, NULL), -1);
}

/* sasl_wipe zeroes exactly the range it is given. */
static void test_wipe(void **state)
{
	uint8_t buf[64];

	(void)state;

	memset(buf, FILL, sizeof buf);
	sasl_wipe(buf + 8, 40);
	for (size_t i = 0; i < sizeof buf; i++)
		assert_int_equal(buf[i], i >= 8 && i < 48 ? 0 : FILL);
	sasl_wipe(buf, 0);
	assert_int_equal(buf[0], FILL);
}

static const struct CMUnitTest extra[] = {
	cmocka_unit_test(test_enc_outcap_zero),
	cmocka_unit_test(test_all_bytes),
	cmocka_unit_test(test_round_trip),
	cmocka_unit_test(test_plain_why_null),
	cmocka_unit_test(test_wipe),
};

#define N(a) (sizeof (a) / sizeof (a)[0])
#define NTESTS (N(dec_rows) + N(enc_rows) + N(plain_rows) + N(extra))

int main(void)
{
	static struct CMUnitTest tests[NTESTS];
	size_t k = 0;

	for (size_t i = 0; i < N(dec_rows); i++)
		tests[k++] = (struct CMUnitTest){ dec_rows[i].name, test_dec_row, NULL, NULL,
		                                  (void *)&dec_rows[i] };
	for (size_t i = 0; i < N(enc_rows); i++)
		tests[k++] = (struct CMUnitTest){ enc_rows[i].name, test_enc_row, NULL, NULL,
		                                  (void *)&enc_rows[i] };
	for (size_t i = 0; i < N(plain_rows); i++)
		tests[k++] = (struct CMUnitTest){ plain_rows[i].name, test_plain_row, NULL, NULL,
		                                  (void *)&plain_rows[i] };
	for (size_t i = 0; i < N(extra); i++)
		tests[k++] = extra[i];
	return cmocka_run_group_tests_name("sasl", tests, NULL, NULL);
}
