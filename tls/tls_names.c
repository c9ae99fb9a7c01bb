/* tls_names: see tls_names.h. */
#include "tls_names.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

struct suite {
	uint16_t id;
	uint8_t tls13;
	const char *iana;
	const char *openssl;          /* NULL: same as iana (TLS 1.3) */
};

/* Every suite moat's mbedTLS build offers, in default preference order:
 * TLS 1.3 first, then ECDSA before RSA, AES-128-GCM before AES-256-GCM
 * before ChaCha20-Poly1305 (AES-NI makes AES cheaper on servers). */
static const struct suite suites[] = {
	{ 0x1301, 1, "TLS_AES_128_GCM_SHA256", NULL },
	{ 0x1302, 1, "TLS_AES_256_GCM_SHA384", NULL },
	{ 0x1303, 1, "TLS_CHACHA20_POLY1305_SHA256", NULL },
	{ 0xC02B, 0, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256" },
	{ 0xC02C, 0, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384" },
	{ 0xCCA9, 0, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	  "ECDHE-ECDSA-CHACHA20-POLY1305" },
	{ 0xC02F, 0, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256" },
	{ 0xC030, 0, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384" },
	{ 0xCCA8, 0, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	  "ECDHE-RSA-CHACHA20-POLY1305" },
};

struct group {
	uint16_t id;
	const char *names[4];         /* the first is the one moat prints */
};

static const struct group groups[] = {
	{ 0x001D, { "x25519", NULL } },
	{ 0x0017, { "secp256r1", "P-256", "prime256v1", NULL } },
	{ 0x0018, { "secp384r1", "P-384", NULL } },
};

#define COUNT(a) (sizeof a / sizeof *a)

_Static_assert(COUNT(suites) == TLS_NSUITES, "TLS_NSUITES counts the table");

const uint16_t tls_default_tls13_suites[] = { 0x1301, 0x1302, 0x1303, 0 };
const uint16_t tls_default_tls12_suites[] = { 0xC02B, 0xC02C, 0xCCA9, 0xC02F, 0xC030, 0xCCA8, 0 };
const uint16_t tls_default_groups[] = { 0x001D, 0x0017, 0x0018, 0 };

/* name[0..len) equals s, ignoring ASCII case. */
static int same(const char *name, size_t len, const char *s)
{
	return s && strlen(s) == len && strncasecmp(name, s, len) == 0;
}

int tls_suite_lookup(const char *name, size_t len, uint16_t *id, int *tls13)
{
	for (size_t i = 0; i < COUNT(suites); i++) {
		if (same(name, len, suites[i].iana) || same(name, len, suites[i].openssl)) {
			*id = suites[i].id;
			*tls13 = suites[i].tls13;
			return 0;
		}
	}
	return -1;
}

const char *tls_suite_name(uint16_t id)
{
	for (size_t i = 0; i < COUNT(suites); i++)
		if (suites[i].id == id)
			return suites[i].iana;
	return NULL;
}

unsigned tls_suite_index(uint16_t id)
{
	for (size_t i = 0; i < COUNT(suites); i++)
		if (suites[i].id == id)
			return (unsigned)i;
	return TLS_NSUITES;
}

uint16_t tls_suite_at(unsigned index)
{
	return index < COUNT(suites) ? suites[index].id : 0;
}

int tls_group_lookup(const char *name, size_t len, uint16_t *id)
{
	for (size_t i = 0; i < COUNT(groups); i++) {
		for (size_t j = 0; groups[i].names[j]; j++) {
			if (same(name, len, groups[i].names[j])) {
				*id = groups[i].id;
				return 0;
			}
		}
	}
	return -1;
}

const char *tls_group_name(uint16_t id)
{
	for (size_t i = 0; i < COUNT(groups); i++)
		if (groups[i].id == id)
			return groups[i].names[0];
	return NULL;
}

const char *tls_suite_names(int tls13, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < COUNT(suites) && n < size; i++) {
		const char *name = suites[i].openssl ? suites[i].openssl : suites[i].iana;
		if (suites[i].tls13 == tls13)
			n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? " " : "", name);
	}
	return buf;
}

const char *tls_group_names(char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < COUNT(groups) && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? " " : "", groups[i].names[0]);
	return buf;
}
