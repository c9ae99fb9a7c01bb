/* sasl: see sasl.h. */
#include "sasl.h"

#include <limits.h>
#include <string.h>

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of one base64 character, or -1 for anything else
 * ('=' included); runs for every input character of a decode. */
static int b64_value(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* How many '=' end the input (0, 1 or 2); runs once per decode, before
 * any character is looked at. A third '=' is left to b64_value. */
static size_t b64_padding(const char *in, size_t inlen)
{
	if (in[inlen - 1] != '=')
		return 0;
	return in[inlen - 2] == '=' ? 2 : 1;
}

/* Decodes one group of n significant characters (2, 3 or 4) into n - 1
 * bytes; runs for every four input characters. Returns 0, or -1 for a
 * character outside the alphabet or non-zero bits under the padding. */
static int b64_group(const char *in, size_t n, uint8_t *out)
{
	uint32_t w = 0;

	for (size_t k = 0; k < 4; k++) {
		int v = k < n ? b64_value((uint8_t)in[k]) : 0;

		if (v < 0)
			return -1;
		w = w << 6 | (uint32_t)v;
	}
	/* the bits below the last whole byte must be zero */
	if ((n == 2 && (w & 0xffff) != 0) || (n == 3 && (w & 0xff) != 0))
		return -1;
	for (size_t k = 0; k + 1 < n; k++)
		out[k] = (uint8_t)(w >> (16 - 8 * k));
	return 0;
}

ssize_t sasl_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap)
{
	size_t pad, need, o = 0;

	if (inlen % 4 != 0)
		return -1;
	if (inlen == 0)
		return 0;
	pad = b64_padding(in, inlen);
	need = inlen / 4 * 3 - pad;
	if (need > outcap || need > (size_t)SSIZE_MAX)
		return -1;
	for (size_t i = 0; i < inlen; i += 4) {
		size_t n = i + 4 == inlen ? 4 - pad : 4;

		if (b64_group(in + i, n, out + o) != 0) {
			sasl_wipe(out, o);    /* no half-decoded secret stays behind */
			return -1;
		}
		o += n - 1;
	}
	return (ssize_t)o;
}

/* Encodes the last 1 or 2 bytes (or a full group of 3) as four
 * characters, padded with '='; runs for every three input bytes. */
static void b64_put_group(const uint8_t *in, size_t n, char *out)
{
	uint32_t w = (uint32_t)in[0] << 16;

	if (n > 1)
		w |= (uint32_t)in[1] << 8;
	if (n > 2)
		w |= in[2];
	out[0] = b64_alphabet[w >> 18 & 63];
	out[1] = b64_alphabet[w >> 12 & 63];
	out[2] = n > 1 ? b64_alphabet[w >> 6 & 63] : '=';
	out[3] = n > 2 ? b64_alphabet[w & 63] : '=';
}

size_t sasl_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap)
{
	size_t groups = len / 3 + (len % 3 != 0), o = 0;

	if (outcap == 0)
		return 0;
	out[0] = '\0';
	if (groups > (SIZE_MAX - 1) / 4 || groups * 4 + 1 > outcap)
		return 0;
	for (size_t i = 0; i < len; i += 3, o += 4)
		b64_put_group(in + i, len - i < 3 ? len - i : 3, out + o);
	out[o] = '\0';
	return o;
}

/* Sets the refusal reason, when the caller asked for one; runs on every
 * refusal of sasl_plain_parse. */
static int plain_refuse(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -1;
}

int sasl_plain_parse(uint8_t *msg, size_t len, struct sasl_plain *out, const char **why)
{
	size_t nul[2], n = 0;

	memset(out, 0, sizeof *out);
	if (len == 0)
		return plain_refuse(why, "PLAIN message is empty");
	for (size_t i = 0; i < len; i++) {
		if (msg[i] != '\0')
			continue;
		if (n == 2)
			return plain_refuse(why, "PLAIN message has more than two NULs");
		nul[n++] = i;
	}
	if (n != 2)
		return plain_refuse(why, "PLAIN message has fewer than two NULs");

	const struct {
		size_t len;
		int may_be_empty;
		const char *empty, *too_long;
	} fields[] = {
		{ nul[0], 1, NULL, "PLAIN authzid is longer than 1024 octets" },
		{ nul[1] - nul[0] - 1, 0, "PLAIN authcid is empty",
		  "PLAIN authcid is longer than 1024 octets" },
		{ len - nul[1] - 1, 0, "PLAIN passwd is empty",
		  "PLAIN passwd is longer than 1024 octets" },
	};
	for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
		if (fields[f].len == 0 && !fields[f].may_be_empty)
			return plain_refuse(why, fields[f].empty);
		if (fields[f].len > SASL_FIELD_MAX)
			return plain_refuse(why, fields[f].too_long);
	}

	msg[len] = '\0';
	out->authzid = (const char *)msg;
	out->authzid_len = fields[0].len;
	out->authcid = (const char *)msg + nul[0] + 1;
	out->authcid_len = fields[1].len;
	out->passwd = (const char *)msg + nul[1] + 1;
	out->passwd_len = fields[2].len;
	return 0;
}

void sasl_wipe(void *p, size_t len)
{
	explicit_bzero(p, len);         /* memset's speed; never optimised away */
}
