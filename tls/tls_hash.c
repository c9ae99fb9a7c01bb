/* tls_hash: see tls_hash.h. */
#include "tls_hash.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/aes.h>
#include <mbedtls/platform_util.h>

struct tls_hash {
	mbedtls_aes_context aes;
};

tls_hash *tls_hash_new(void)
{
	tls_hash *h = calloc(1, sizeof *h);
	uint8_t key[16];
	int ok;

	if (!h)
		return NULL;
	ok = getrandom(key, sizeof key, 0) == (ssize_t)sizeof key;
	mbedtls_aes_init(&h->aes);
	if (ok)
		ok = mbedtls_aes_setkey_enc(&h->aes, key, 128) == 0;
	mbedtls_platform_zeroize(key, sizeof key);
	if (!ok) {
		tls_hash_free(h);
		return NULL;
	}
	return h;
}

void tls_hash_free(tls_hash *h)
{
	if (!h)
		return;
	mbedtls_aes_free(&h->aes);        /* wipes the round keys */
	free(h);
}

uint64_t tls_hash16(const tls_hash *h, const uint8_t in[16])
{
	uint8_t out[16];
	uint64_t v;

	/* encryption reads the context only; the cast is mbedTLS's prototype */
	(void)mbedtls_aes_crypt_ecb((mbedtls_aes_context *)&h->aes, MBEDTLS_AES_ENCRYPT, in, out);
	memcpy(&v, out, sizeof v);
	return v;
}
