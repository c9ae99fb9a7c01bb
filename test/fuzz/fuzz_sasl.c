/*
 * fuzz_sasl: libFuzzer target for protocols/sasl.c.
 *
 * The input is used three ways:
 *   - as base64 text: sasl_b64_decode() must accept exactly what a
 *     reference check written here accepts (strict RFC 4648), give the
 *     expected length, re-encode to the same text, refuse a buffer one
 *     byte short without touching it, and leave no decoded byte behind
 *     when it refuses;
 *   - as bytes: sasl_b64_encode() gives canonical base64 of the expected
 *     length that decodes back to the input, and "" when it does not fit;
 *   - as a PLAIN message (and its base64 decoding, if any, as the
 *     dialogues use it): sasl_plain_parse() must agree with a reference
 *     split on accept or refuse and point its fields at the right bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "sasl.h"

#define GUARD 0xA5

/* The 6-bit value of a base64 character, or -1. */
static int b64_val(uint8_t c)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *at = c ? strchr(alphabet, c) : NULL;

	return at ? (int)(at - alphabet) : -1;
}

/* Reference: is s strict base64, and how long is its decoding? */
static int ref_b64(const uint8_t *s, size_t n, size_t *out_len)
{
	size_t pad = 0;

	if (n % 4 != 0)
		return 0;
	if (n == 0) {
		*out_len = 0;
		return 1;
	}
	while (pad < 2 && s[n - 1 - pad] == '=')
		pad++;
	for (size_t i = 0; i < n - pad; i++)
		if (b64_val(s[i]) < 0)
			return 0;
	/* the bits under the padding must be zero */
	if (pad == 1 && (b64_val(s[n - 2]) & 0x3) != 0)
		return 0;
	if (pad == 2 && (b64_val(s[n - 3]) & 0xf) != 0)
		return 0;
	*out_len = n / 4 * 3 - pad;
	return 1;
}

/* Base64 text in: decode, compare with the reference, re-encode. */
static void check_decode(const uint8_t *in, size_t len)
{
	size_t cap = len / 4 * 3 + 3, ref_len = 0;
	uint8_t *out = malloc(cap + 1);
	int valid = ref_b64(in, len, &ref_len);
	ssize_t n;

	CHECK(out != NULL);
	memset(out, GUARD, cap + 1);
	n = sasl_b64_decode((const char *)in, len, out, cap);
	CHECK(n >= -1);
	CHECK((n >= 0) == valid);
	if (n < 0) {
		/* a refused input leaves zeros (wiped groups) then the guard */
		size_t k = 0;
		while (k < cap && out[k] == 0)
			k++;
		while (k < cap + 1 && out[k] == GUARD)
			k++;
		CHECK(k == cap + 1);
		free(out);
		return;
	}
	CHECK((size_t)n == ref_len && out[n] == GUARD);

	/* canonical: encoding the result gives the input back */
	size_t ecap = len + 1;
	char *enc = malloc(ecap);
	CHECK(enc != NULL);
	CHECK(sasl_b64_encode(out, (size_t)n, enc, ecap) == len);
	CHECK(memcmp(enc, in, len) == 0 && enc[len] == '\0');
	free(enc);

	/* one byte short: refused before anything is written */
	if (n > 0) {
		memset(out, GUARD, cap + 1);
		CHECK(sasl_b64_decode((const char *)in, len, out, (size_t)n - 1) == -1);
		for (size_t i = 0; i < cap + 1; i++)
			CHECK(out[i] == GUARD);
	}
	free(out);
}

/* Bytes in: encode, check the text, decode it back. */
static void check_encode(const uint8_t *in, size_t len)
{
	size_t want = (len + 2) / 3 * 4;
	char *enc = malloc(want + 1);
	uint8_t *back = malloc(len + 1);
	size_t ref_len = 0;

	CHECK(enc != NULL && back != NULL);
	CHECK(sasl_b64_encode(in, len, enc, want + 1) == want);
	CHECK(enc[want] == '\0');
	CHECK(ref_b64((const uint8_t *)enc, want, &ref_len) && ref_len == len);
	CHECK(sasl_b64_decode(enc, want, back, len) == (ssize_t)len);
	CHECK(memcmp(back, in, len) == 0);
	/* too small: nothing but an empty string */
	memset(enc, GUARD, want + 1);
	CHECK(sasl_b64_encode(in, len, enc, want) == 0);
	CHECK(want == 0 || enc[0] == '\0');
	CHECK(sasl_b64_encode(in, len, enc, 0) == 0);
	free(enc);
	free(back);
}

/* Reference PLAIN split: exactly two NULs, authcid and passwd not
 * empty, every field within SASL_FIELD_MAX. */
static int ref_plain(const uint8_t *m, size_t len, size_t *nul0, size_t *nul1)
{
	size_t count = 0;

	for (size_t i = 0; i < len; i++) {
		if (m[i] != 0)
			continue;
		if (count == 0)
			*nul0 = i;
		else if (count == 1)
			*nul1 = i;
		count++;
	}
	if (len == 0 || count != 2)
		return 0;
	return *nul0 <= SASL_FIELD_MAX && *nul1 - *nul0 - 1 > 0 &&
	       *nul1 - *nul0 - 1 <= SASL_FIELD_MAX && len - *nul1 - 1 > 0 &&
	       len - *nul1 - 1 <= SASL_FIELD_MAX;
}

/* A PLAIN message in (len bytes, and a spare one as the API asks). */
static void check_plain(const uint8_t *in, size_t len)
{
	uint8_t *msg = malloc(len + 1);
	struct sasl_plain pl;
	const char *why = NULL;
	size_t nul0 = 0, nul1 = 0;
	int ok = ref_plain(in, len, &nul0, &nul1), rc;

	CHECK(msg != NULL);
	memcpy(msg, in, len);
	msg[len] = GUARD;
	rc = sasl_plain_parse(msg, len, &pl, &why);
	CHECK(rc == 0 || rc == -1);
	CHECK((rc == 0) == ok);
	if (rc < 0) {
		/* the reason is static text, never the data */
		CHECK(why != NULL && (why < (const char *)msg || why > (const char *)msg + len));
		CHECK(memcmp(msg, in, len) == 0);
		CHECK(sasl_plain_parse(msg, len, &pl, NULL) == -1);
		free(msg);
		return;
	}
	CHECK(pl.authzid == (const char *)msg && pl.authzid_len == nul0);
	CHECK(pl.authcid == (const char *)msg + nul0 + 1 && pl.authcid_len == nul1 - nul0 - 1);
	CHECK(pl.passwd == (const char *)msg + nul1 + 1 && pl.passwd_len == len - nul1 - 1);
	CHECK(pl.authzid[pl.authzid_len] == '\0' && pl.authcid[pl.authcid_len] == '\0' &&
	      pl.passwd[pl.passwd_len] == '\0');
	CHECK(memcmp(msg, in, len) == 0);
	sasl_wipe(msg, len + 1);
	CHECK(fz_all_zero(msg, len + 1));
	free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t ref_len = 0;

	check_decode(data, size);
	check_encode(data, size);
	check_plain(data, size);
	/* the way the dialogues use it: a base64 response holding PLAIN */
	if (ref_b64(data, size, &ref_len)) {
		uint8_t *msg = malloc(ref_len + 1);
		CHECK(msg != NULL);
		CHECK(sasl_b64_decode((const char *)data, size, msg, ref_len) == (ssize_t)ref_len);
		check_plain(msg, ref_len);
		free(msg);
	}
	return 0;
}
