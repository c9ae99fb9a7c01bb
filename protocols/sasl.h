/*
 * sasl: base64 (RFC 4648) and the PLAIN mechanism's message (RFC 4616),
 * as clients send them in IMAP AUTHENTICATE and POP3 AUTH.
 *
 * Pure functions over bytes; no allocation. Callers own every buffer and
 * wipe the ones that held credentials (sasl_wipe).
 */
#ifndef MOAT_SASL_H
#define MOAT_SASL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* RFC 4616 has servers accept authzid, authcid and passwd of at least 255
 * octets; moat takes up to 1024, as it does for IMAP LOGIN (DLG_CRED_MAX),
 * so a long password works whichever way the client sends it. */
#define SASL_FIELD_MAX 1024
/* A whole decoded PLAIN message. */
#define SASL_PLAIN_MAX (3 * SASL_FIELD_MAX + 2)

/* Decodes strict base64: alphabet A-Z a-z 0-9 + /, length a multiple of
 * 4, '=' padding only at the end, no whitespace, unused bits zero.
 * Returns the decoded length, or -1 when the input is not valid base64 or
 * the result does not fit in outcap. "=" alone (an empty response in
 * SASL) is not base64: callers check for it before. */
ssize_t sasl_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap);

/* Encodes len bytes; writes a NUL-terminated string. Returns its length,
 * or 0 when it does not fit in outcap (an empty input gives "" and 0). */
size_t sasl_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap);

/* A decoded PLAIN message: "authzid NUL authcid NUL passwd". */
struct sasl_plain {
	const char *authzid;          /* "" when absent */
	const char *authcid;
	const char *passwd;
	size_t authzid_len, authcid_len, passwd_len;
};

/* Splits msg in place (its two NULs become the strings' ends; msg must
 * have one spare byte at msg[len] for the last NUL). Refuses: not exactly
 * two NULs, an empty authcid or passwd, a field over SASL_FIELD_MAX.
 * Returns 0, or -1 with a reason in *why (static text, never the data). */
int sasl_plain_parse(uint8_t *msg, size_t len, struct sasl_plain *out, const char **why);

/* Zeroes len bytes in a way the compiler keeps. */
void sasl_wipe(void *p, size_t len);

#endif /* MOAT_SASL_H */
