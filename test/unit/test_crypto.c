/*
 * crypto: the PSA operations moat's TLS runs on, by known answers through
 * the public PSA API. In the default build (CRYPTO=openssl) they reach
 * tls/tls_ossl.c, the PSA driver over OpenSSL's libcrypto; in
 * CRYPTO=builtin the same vectors test mbedTLS's own code.
 *
 *   AEAD      AES-128/256-GCM (McGrew & Viega, "The Galois/Counter Mode of
 *             Operation", test cases 1-4, 13-16), ChaCha20-Poly1305
 *             (RFC 8439 sections 2.8.2 and A.5); tampering, in-place,
 *             empty plaintext; rows the driver leaves to mbedTLS (AES-192,
 *             IVs other than 96 bits, shortened tags: test cases 5-10)
 *   ECDH      X25519 (RFC 7748 section 6.1, small-order peers), P-256 and
 *             P-384 (RFC 5903 sections 8.1, 8.2, hostile peers), keys made
 *             by psa_generate_key agreeing both ways
 *   ECDSA     P-256, P-384 with the keys of RFC 6979 A.2.5, A.2.6: sign,
 *             then mbedTLS's own verify
 *   RSA       PKCS#1 v1.5 against OpenSSL's signatures, PSS sign and verify
 *   threads   four at once, each with its own keys
 *
 * Driver build only (MOAT_PSA_OSSL, from moat_mbedtls_config.h): the
 * driver's entry points called directly, so a vector that passes through
 * PSA is known to have run in libcrypto and not in mbedTLS's fallback;
 * the rows it must leave alone answer PSA_ERROR_NOT_SUPPORTED; and its
 * answers against mbedTLS's own functions (the fallback the driver sits
 * above) on random inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <psa/crypto.h>

#if defined(MOAT_PSA_OSSL)
#include "tls_ossl.h"
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Hex digits to bytes, spaces allowed (as the RFCs print them); the
 * number of bytes. NULL is no bytes. */
static size_t unhex(const char *s, uint8_t *out, size_t size)
{
	size_t n = 0;
	int hi = -1;

	for (; s && *s; s++) {
		int v = hexval(*s);

		if (*s == ' ')
			continue;
		assert_true(v >= 0);
		if (hi < 0) {
			hi = v;
			continue;
		}
		assert_true(n < size);
		out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	assert_true(hi < 0);
	return n;
}

static void print_hex(const char *label, const uint8_t *p, size_t len)
{
	char line[2 * 64 + 1];

	print_error("  %s (%zu bytes):\n", label, len);
	for (size_t i = 0; i < len; i += 64) {
		size_t n = len - i < 64 ? len - i : 64;
		for (size_t j = 0; j < n; j++)
			snprintf(line + 2 * j, 3, "%02x", p[i + j]);
		print_error("    %s\n", line);
	}
}

/* 1 (after printing both) when got and want differ in their len bytes. */
static int bytes_differ(const uint8_t *got, const uint8_t *want, size_t len, const char *what)
{
	if (len == 0 || memcmp(got, want, len) == 0)
		return 0;
	print_error("%s: bytes differ\n", what);
	print_hex("got", got, len);
	print_hex("want", want, len);
	return 1;
}

#define assert_bytes(got, want, len, what)                                            \
	do {                                                                              \
		if (bytes_differ((got), (want), (len), (what)))                               \
			fail();                                                                   \
	} while (0)

/* A PSA status, naming the row when it is not the one wanted. */
#define assert_status(got, want, what)                                                \
	do {                                                                              \
		psa_status_t got_ = (got), want_ = (want);                                    \
		if (got_ != want_)                                                            \
			fail_msg("%s: status %d, want %d", (what), (int)got_, (int)want_);        \
	} while (0)

/* Same, with a length to match. */
#define assert_len(got, want, what)                                                   \
	do {                                                                              \
		size_t got_ = (got), want_ = (want);                                          \
		if (got_ != want_)                                                            \
			fail_msg("%s: length %zu, want %zu", (what), got_, want_);                \
	} while (0)

static int all_bytes(const uint8_t *p, size_t len, uint8_t v)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

static psa_status_t try_import(psa_key_type_t type, psa_key_usage_t usage, psa_algorithm_t alg,
                               const uint8_t *data, size_t len, psa_key_id_t *id)
{
	psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;

	psa_set_key_type(&a, type);
	psa_set_key_usage_flags(&a, usage);
	psa_set_key_algorithm(&a, alg);
	return psa_import_key(&a, data, len, id);
}

static psa_key_id_t import_key(psa_key_type_t type, psa_key_usage_t usage, psa_algorithm_t alg,
                               const uint8_t *data, size_t len)
{
	psa_key_id_t id = 0;

	assert_status(try_import(type, usage, alg, data, len, &id), PSA_SUCCESS, "psa_import_key");
	return id;
}

static psa_key_id_t generate_key(psa_key_type_t type, size_t bits, psa_key_usage_t usage,
                                 psa_algorithm_t alg)
{
	psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;
	psa_key_id_t id = 0;

	psa_set_key_type(&a, type);
	psa_set_key_bits(&a, bits);
	psa_set_key_usage_flags(&a, usage);
	psa_set_key_algorithm(&a, alg);
	assert_status(psa_generate_key(&a, &id), PSA_SUCCESS, "psa_generate_key");
	return id;
}

static size_t hash(psa_algorithm_t alg, const char *msg, uint8_t *out, size_t size)
{
	size_t n = 0;

	assert_status(psa_hash_compute(alg, (const uint8_t *)msg, strlen(msg), out, size, &n),
	              PSA_SUCCESS, "psa_hash_compute");
	assert_len(n, PSA_HASH_LENGTH(alg), "hash");
	return n;
}

/* ---- AEAD vectors ---- */

/* McGrew & Viega's shared values: the key (doubled for AES-256, and
 * 24 bytes of it for AES-192), IV, 64-byte plaintext and 20-byte AAD;
 * test cases 4, 10, 16 take 60 bytes of the plaintext. */
#define MV_KEY "feffe9928665731c6d6a8f9467308308"
#define MV_IV "cafebabefacedbaddecaf888"
#define MV_P60                                                                     \
	"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"             \
	"1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
#define MV_P64 MV_P60 "1aafd255"
#define MV_AAD "feedfacedeadbeeffeedfacedeadbeefabaddad2"
#define Z16 "00000000000000000000000000000000"
#define Z12 "000000000000000000000000"

/* RFC 8439 section 2.8.2 */
#define CP_KEY "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
#define CP_NONCE "070000004041424344454647"
#define CP_AAD "50515253c0c1c2c3c4c5c6c7"
#define CP_PT                                                                      \
	"4c616469657320616e642047656e746c656d656e206f662074686520636c6173"             \
	"73206f66202739393a204966204920636f756c64206f6666657220796f75206f"             \
	"6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"             \
	"637265656e20776f756c642062652069742e"
#define CP_CT                                                                      \
	"d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"             \
	"3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"             \
	"92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"             \
	"3ff4def08e4b7a9de576d26586cec64b6116"

#define GCM_SHORT(n) PSA_ALG_AEAD_WITH_SHORTENED_TAG(PSA_ALG_GCM, n)

struct aead_vec {
	const char *name;
	psa_key_type_t type;
	psa_algorithm_t alg;
	int driver;                   /* the driver takes it; 0: mbedTLS's own code */
	const char *key, *nonce, *aad, *pt, *ct, *tag;
};

static const struct aead_vec aead_vecs[] = {
	{ "GCM test case 1 (AES-128, empty)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 1,
	  Z16, Z12, NULL, NULL, NULL, "58e2fccefa7e3061367f1d57a4e7455a" },
	{ "GCM test case 2 (AES-128)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 1,
	  Z16, Z12, NULL, Z16, "0388dace60b6a392f328c2b971b2fe78",
	  "ab6e47d42cec13bdf53a67b21257bddf" },
	{ "GCM test case 3 (AES-128)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 1,
	  MV_KEY, MV_IV, NULL, MV_P64,
	  "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
	  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
	  "4d5c2af327cd64a62cf35abd2ba6fab4" },
	{ "GCM test case 4 (AES-128, AAD)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 1,
	  MV_KEY, MV_IV, MV_AAD, MV_P60,
	  "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
	  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
	  "5bc94fbc3221a5db94fae95ae7121a47" },
	{ "GCM test case 13 (AES-256, empty)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 1,
	  Z16 Z16, Z12, NULL, NULL, NULL, "530f8afbc74536b9a963b4f1c4cb738b" },
	{ "GCM test case 14 (AES-256)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 1,
	  Z16 Z16, Z12, NULL, Z16, "cea7403d4d606b6e074ec5d3baf39d18",
	  "d0d1c8a799996bf0265b98b5d48ab919" },
	{ "GCM test case 15 (AES-256)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 1,
	  MV_KEY MV_KEY, MV_IV, NULL, MV_P64,
	  "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
	  "b094dac5d93471bdec1a502270e3cc6c" },
	{ "GCM test case 16 (AES-256, AAD)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 1,
	  MV_KEY MV_KEY, MV_IV, MV_AAD, MV_P60,
	  "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	  "76fc6ece0f4e1768cddf8853bb2d551b" },
	{ "RFC 8439 2.8.2 (ChaCha20-Poly1305)", PSA_KEY_TYPE_CHACHA20, PSA_ALG_CHACHA20_POLY1305, 1,
	  CP_KEY, CP_NONCE, CP_AAD, CP_PT, CP_CT, "1ae10b594f09e26a7e902ecbd0600691" },
	{ "RFC 8439 A.5 (ChaCha20-Poly1305)", PSA_KEY_TYPE_CHACHA20, PSA_ALG_CHACHA20_POLY1305, 1,
	  "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0",
	  "000000000102030405060708", "f33388860000000000004e91",
	  "496e7465726e65742d4472616674732061726520647261667420646f63756d65"
	  "6e74732076616c696420666f722061206d6178696d756d206f6620736978206d"
	  "6f6e74687320616e64206d617920626520757064617465642c207265706c6163"
	  "65642c206f72206f62736f6c65746564206279206f7468657220646f63756d65"
	  "6e747320617420616e792074696d652e20497420697320696e617070726f7072"
	  "6961746520746f2075736520496e7465726e65742d4472616674732061732072"
	  "65666572656e6365206d6174657269616c206f7220746f206369746520746865"
	  "6d206f74686572207468616e206173202fe2809c776f726b20696e2070726f67"
	  "726573732e2fe2809d",
	  "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2"
	  "4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf"
	  "332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855"
	  "9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4"
	  "b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e"
	  "af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a"
	  "0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10"
	  "49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29"
	  "a6ad5cb4022b02709b",
	  "eead9d67890cbb22392336fea1851f38" },

	/* the driver's NOT_SUPPORTED: mbedTLS's code answers */
	{ "GCM test case 5 (64-bit IV)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 0,
	  MV_KEY, "cafebabefacedbad", MV_AAD, MV_P60,
	  "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423"
	  "73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598",
	  "3612d2e79e3b0785561be14aaca2fccb" },
	{ "GCM test case 6 (480-bit IV)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 0,
	  MV_KEY,
	  "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728"
	  "c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b",
	  MV_AAD, MV_P60,
	  "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7"
	  "01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
	  "619cc5aefffe0bfa462af43c1699d050" },
	{ "GCM test case 7 (AES-192, empty)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 0,
	  Z16 "0000000000000000", Z12, NULL, NULL, NULL, "cd33b28ac773f74ba00ed1f312572435" },
	{ "GCM test case 8 (AES-192)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 0,
	  Z16 "0000000000000000", Z12, NULL, Z16, "98e7247c07f0fe411c267e4384b0f600",
	  "2ff58d80033927ab8ef4d4587514f0fb" },
	{ "GCM test case 9 (AES-192)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 0,
	  MV_KEY "feffe9928665731c", MV_IV, NULL, MV_P64,
	  "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c"
	  "7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256",
	  "9924a7c8587336bfb118024db8674a14" },
	{ "GCM test case 10 (AES-192, AAD)", PSA_KEY_TYPE_AES, PSA_ALG_GCM, 0,
	  MV_KEY "feffe9928665731c", MV_IV, MV_AAD, MV_P60,
	  "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c"
	  "7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
	  "2519498e80f1478f37ba55bd6d27618c" },
	{ "GCM test case 3, 12-byte tag", PSA_KEY_TYPE_AES, GCM_SHORT(12), 0,
	  MV_KEY, MV_IV, NULL, MV_P64,
	  "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
	  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
	  "4d5c2af327cd64a62cf35abd" },
	{ "GCM test case 4, 12-byte tag", PSA_KEY_TYPE_AES, GCM_SHORT(12), 0,
	  MV_KEY, MV_IV, MV_AAD, MV_P60,
	  "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
	  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
	  "5bc94fbc3221a5db94fae95a" },
	{ "GCM test case 16, 8-byte tag", PSA_KEY_TYPE_AES, GCM_SHORT(8), 0,
	  MV_KEY MV_KEY, MV_IV, MV_AAD, MV_P60,
	  "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
	  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
	  "76fc6ece0f4e1768" },
};

/* A row as bytes. */
struct aead_data {
	const struct aead_vec *v;
	uint8_t key[32], nonce[64], aad[32], pt[272], ct[272], tag[16];
	size_t key_len, nonce_len, aad_len, len, tag_len;
};

static void decode_aead(const struct aead_vec *v, struct aead_data *d)
{
	memset(d, 0, sizeof *d);
	d->v = v;
	d->key_len = unhex(v->key, d->key, sizeof d->key);
	d->nonce_len = unhex(v->nonce, d->nonce, sizeof d->nonce);
	d->aad_len = unhex(v->aad, d->aad, sizeof d->aad);
	d->len = unhex(v->pt, d->pt, sizeof d->pt);
	assert_len(unhex(v->ct, d->ct, sizeof d->ct), d->len, v->name);
	d->tag_len = unhex(v->tag, d->tag, sizeof d->tag);
	assert_len(d->tag_len, PSA_ALG_AEAD_GET_TAG_LENGTH(v->alg), v->name);
}

static psa_key_id_t import_aead(const struct aead_data *d)
{
	return import_key(d->v->type, PSA_KEY_USAGE_ENCRYPT | PSA_KEY_USAGE_DECRYPT, d->v->alg,
	                  d->key, d->key_len);
}

/* ---- AEAD through PSA ---- */

/* Each row: exact ciphertext and tag, and back; one byte less room than
 * needed is refused either way. */
static void test_aead_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(aead_vecs); i++) {
		struct aead_data d;
		uint8_t out[300], back[300];
		size_t n = 0;
		psa_key_id_t k;

		decode_aead(&aead_vecs[i], &d);
		k = import_aead(&d);
		assert_status(psa_aead_encrypt(k, d.v->alg, d.nonce, d.nonce_len, d.aad, d.aad_len,
		                               d.pt, d.len, out, d.len + d.tag_len, &n),
		              PSA_SUCCESS, d.v->name);
		assert_len(n, d.len + d.tag_len, d.v->name);
		assert_bytes(out, d.ct, d.len, d.v->name);
		assert_bytes(out + d.len, d.tag, d.tag_len, d.v->name);

		memset(back, 0xa5, sizeof back);
		assert_status(psa_aead_decrypt(k, d.v->alg, d.nonce, d.nonce_len, d.aad, d.aad_len,
		                               out, n, back, d.len, &n),
		              PSA_SUCCESS, d.v->name);
		assert_len(n, d.len, d.v->name);
		assert_bytes(back, d.pt, d.len, d.v->name);

		assert_status(psa_aead_encrypt(k, d.v->alg, d.nonce, d.nonce_len, d.aad, d.aad_len,
		                               d.pt, d.len, out, d.len + d.tag_len - 1, &n),
		              PSA_ERROR_BUFFER_TOO_SMALL, d.v->name);
		if (d.len > 0) {
			memcpy(out, d.ct, d.len);
			memcpy(out + d.len, d.tag, d.tag_len);
			assert_status(psa_aead_decrypt(k, d.v->alg, d.nonce, d.nonce_len, d.aad, d.aad_len,
			                               out, d.len + d.tag_len, back, d.len - 1, &n),
			              PSA_ERROR_BUFFER_TOO_SMALL, d.v->name);
		}
		psa_destroy_key(k);
	}
}

enum tamper { T_TAG, T_CT, T_AAD, T_NONCE, T_TRUNCATE, T_N };
static const char *const tamper_names[T_N] = {
	"tag", "ciphertext", "AAD", "nonce", "one byte short",
};

/* Each row with one bit changed in the tag, the ciphertext, the AAD (or a
 * byte of AAD where there was none), the nonce, or the last byte cut:
 * PSA_ERROR_INVALID_SIGNATURE, and the whole output buffer zeros. A
 * ciphertext shorter than the tag is refused too. */
static void test_aead_tampered(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(aead_vecs); i++) {
		struct aead_data d;
		psa_key_id_t k;
		uint8_t out[300];
		size_t n;

		decode_aead(&aead_vecs[i], &d);
		k = import_aead(&d);
		for (int t = 0; t < T_N; t++) {
			uint8_t sealed[300], nonce[64], aad[32];
			size_t sealed_len = d.len + d.tag_len, aad_len = d.aad_len;
			char what[128];

			if ((t == T_CT || t == T_TRUNCATE) && d.len == 0)
				continue;
			snprintf(what, sizeof what, "%s, %s", d.v->name, tamper_names[t]);
			memcpy(sealed, d.ct, d.len);
			memcpy(sealed + d.len, d.tag, d.tag_len);
			memcpy(nonce, d.nonce, d.nonce_len);
			memcpy(aad, d.aad, d.aad_len);
			switch (t) {
			case T_TAG: sealed[sealed_len - 1] ^= 0x80; break;
			case T_CT: sealed[0] ^= 0x01; break;
			case T_AAD:
				if (aad_len)
					aad[aad_len - 1] ^= 0x01;
				else
					aad[aad_len++] = 0;
				break;
			case T_NONCE: nonce[0] ^= 0x01; break;
			case T_TRUNCATE: sealed_len--; break;
			}
			memset(out, 0xa5, sizeof out);
			n = 12345;
			assert_status(psa_aead_decrypt(k, d.v->alg, nonce, d.nonce_len, aad, aad_len,
			                               sealed, sealed_len, out, d.len + 1, &n),
			              PSA_ERROR_INVALID_SIGNATURE, what);
			assert_len(n, 0, what);
			if (!all_bytes(out, d.len + 1, 0))
				fail_msg("%s: plaintext left after refusal", what);
		}
		memcpy(out, d.tag, d.tag_len);
		assert_int_not_equal(psa_aead_decrypt(k, d.v->alg, d.nonce, d.nonce_len, d.aad,
		                                      d.aad_len, out, d.tag_len - 1, out + 20,
		                                      sizeof out - 20, &n),
		                     PSA_SUCCESS);
		psa_destroy_key(k);
	}
}

/* One buffer for input and output, as TLS records are sealed and opened
 * (moat's mbedTLS assumes exclusive buffers: PSA hands them on as they
 * are). A refused record leaves zeros, not its ciphertext decrypted. */
static void test_aead_in_place(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(aead_vecs); i++) {
		struct aead_data d;
		psa_key_id_t k;
		uint8_t buf[300];
		size_t n = 0, size;

		decode_aead(&aead_vecs[i], &d);
		size = d.len + d.tag_len;
		k = import_aead(&d);
		memcpy(buf, d.pt, d.len);
		assert_status(psa_aead_encrypt(k, d.v->alg, d.nonce, d.nonce_len, d.aad, d.aad_len,
		                               buf, d.len, buf, size, &n),
		              PSA_SUCCESS, d.v->name);
		assert_len(n, size, d.v->name);
		assert_bytes(buf, d.ct, d.len, d.v->name);
		assert_bytes(buf + d.len, d.tag, d.tag_len, d.v->name);
		assert_status(psa_aead_decrypt(k, d.v->alg, d.nonce, d.nonce_len, d.aad, d.aad_len,
		                               buf, size, buf, size, &n),
		              PSA_SUCCESS, d.v->name);
		assert_len(n, d.len, d.v->name);
		assert_bytes(buf, d.pt, d.len, d.v->name);

		memcpy(buf, d.ct, d.len);
		memcpy(buf + d.len, d.tag, d.tag_len);
		buf[size - 1] ^= 0x01;
		assert_status(psa_aead_decrypt(k, d.v->alg, d.nonce, d.nonce_len, d.aad, d.aad_len,
		                               buf, size, buf, size, &n),
		              PSA_ERROR_INVALID_SIGNATURE, d.v->name);
		if (!all_bytes(buf, size, 0))
			fail_msg("%s: in-place refusal left bytes", d.v->name);
		psa_destroy_key(k);
	}
}

/* Empty plaintext: the output is the tag alone, with or without AAD, and
 * it opens to nothing (NULL buffers allowed for the empty ones); the tag
 * depends on the AAD. */
static void test_aead_empty(void **state)
{
	static const struct {
		const char *name;
		psa_key_type_t type;
		size_t key_len;
		psa_algorithm_t alg;
	} kinds[] = {
		{ "AES-128-GCM", PSA_KEY_TYPE_AES, 16, PSA_ALG_GCM },
		{ "AES-256-GCM", PSA_KEY_TYPE_AES, 32, PSA_ALG_GCM },
		{ "ChaCha20-Poly1305", PSA_KEY_TYPE_CHACHA20, 32, PSA_ALG_CHACHA20_POLY1305 },
		{ "AES-192-GCM", PSA_KEY_TYPE_AES, 24, PSA_ALG_GCM },
	};
	static const uint8_t nonce[12] = { 1, 2, 3 };
	static const uint8_t aad[] = { 0x17, 0x03, 0x03, 0x00, 0x10 };  /* a TLS 1.3 header */

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(kinds); i++) {
		uint8_t key[32], tag_plain[16], tag_aad[16], none[1];
		psa_key_id_t k;
		size_t n = 0;

		memset(key, 0x42, sizeof key);
		k = import_key(kinds[i].type, PSA_KEY_USAGE_ENCRYPT | PSA_KEY_USAGE_DECRYPT,
		               kinds[i].alg, key, kinds[i].key_len);
		assert_status(psa_aead_encrypt(k, kinds[i].alg, nonce, 12, NULL, 0, NULL, 0, tag_plain,
		                               16, &n),
		              PSA_SUCCESS, kinds[i].name);
		assert_len(n, 16, kinds[i].name);
		assert_status(psa_aead_encrypt(k, kinds[i].alg, nonce, 12, aad, sizeof aad, NULL, 0,
		                               tag_aad, 16, &n),
		              PSA_SUCCESS, kinds[i].name);
		assert_len(n, 16, kinds[i].name);
		assert_true(memcmp(tag_plain, tag_aad, 16) != 0);

		n = 99;
		assert_status(psa_aead_decrypt(k, kinds[i].alg, nonce, 12, NULL, 0, tag_plain, 16, NULL,
		                               0, &n),
		              PSA_SUCCESS, kinds[i].name);
		assert_len(n, 0, kinds[i].name);
		assert_status(psa_aead_decrypt(k, kinds[i].alg, nonce, 12, aad, sizeof aad, tag_aad, 16,
		                               none, sizeof none, &n),
		              PSA_SUCCESS, kinds[i].name);
		assert_len(n, 0, kinds[i].name);
		assert_status(psa_aead_decrypt(k, kinds[i].alg, nonce, 12, aad, sizeof aad, tag_plain,
		                               16, none, sizeof none, &n),
		              PSA_ERROR_INVALID_SIGNATURE, kinds[i].name);
		psa_destroy_key(k);
	}
}

/* ---- X25519 ---- */

#define X_ALICE_PRIV "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
#define X_ALICE_PUB "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
#define X_BOB_PRIV "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
#define X_BOB_PUB "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
#define X_SHARED "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"

#define X25519_PAIR PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_MONTGOMERY)
#define SECP_PAIR PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_R1)
#define SECP_PUBLIC PSA_KEY_TYPE_ECC_PUBLIC_KEY(PSA_ECC_FAMILY_SECP_R1)

/* Peers for Alice's key and the secret each gives; NULL: refused with
 * PSA_ERROR_INVALID_ARGUMENT. The refused values are the u-coordinates of
 * low order (and their unreduced forms) that implementations block
 * (mbedTLS's ecp_check_bad_points_mx, libsodium's blocklist): with them
 * the secret would be all zeros whatever the private key. */
static const struct {
	const char *name, *peer, *secret;
} x25519_peers[] = {
	{ "Bob", X_BOB_PUB, X_SHARED },
	{ "Bob, top bit set (masked, RFC 7748 section 5)",
	  "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882bcf", X_SHARED },
	{ "base point 9: Alice's public key",
	  "0900000000000000000000000000000000000000000000000000000000000000", X_ALICE_PUB },
	{ "2^255 - 10 = p + 9, unreduced: as 9",
	  "f6ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", X_ALICE_PUB },
	{ "0", "0000000000000000000000000000000000000000000000000000000000000000", NULL },
	{ "1", "0100000000000000000000000000000000000000000000000000000000000000", NULL },
	{ "order 8", "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", NULL },
	{ "order 8, the other",
	  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157", NULL },
	{ "p - 1",
	  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", NULL },
	{ "p = 0", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", NULL },
	{ "p + 1 = 1", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", NULL },
	{ "31 bytes", "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b", NULL },
	{ "33 bytes", X_BOB_PUB "00", NULL },
	{ "empty", "", NULL },
};

/* RFC 7748 section 6.1: both public keys from the private ones, the
 * shared secret both ways; then Alice against each peer row. */
static void test_x25519(void **state)
{
	uint8_t alice[32], bob[32], bpub[32], want[32], out[64];
	psa_key_id_t ka, kb;
	size_t n = 0;

	(void)state;
	unhex(X_ALICE_PRIV, alice, sizeof alice);
	unhex(X_BOB_PRIV, bob, sizeof bob);
	unhex(X_BOB_PUB, bpub, sizeof bpub);
	ka = import_key(X25519_PAIR, PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH, alice, 32);
	kb = import_key(X25519_PAIR, PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH, bob, 32);

	assert_status(psa_export_public_key(ka, out, sizeof out, &n), PSA_SUCCESS, "Alice");
	assert_len(n, 32, "Alice");
	unhex(X_ALICE_PUB, want, sizeof want);
	assert_bytes(out, want, 32, "Alice's public key");
	assert_status(psa_export_public_key(kb, out, sizeof out, &n), PSA_SUCCESS, "Bob");
	assert_len(n, 32, "Bob");
	assert_bytes(out, bpub, 32, "Bob's public key");

	unhex(X_ALICE_PUB, want, sizeof want);
	assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, kb, want, 32, out, sizeof out, &n),
	              PSA_SUCCESS, "Bob with Alice");
	assert_len(n, 32, "Bob with Alice");
	unhex(X_SHARED, want, sizeof want);
	assert_bytes(out, want, 32, "Bob with Alice");

	for (size_t i = 0; i < ARRAY_LEN(x25519_peers); i++) {
		uint8_t peer[40];
		size_t peer_len = unhex(x25519_peers[i].peer, peer, sizeof peer);
		psa_status_t st = psa_raw_key_agreement(PSA_ALG_ECDH, ka, peer, peer_len, out, 32, &n);

		if (x25519_peers[i].secret) {
			assert_status(st, PSA_SUCCESS, x25519_peers[i].name);
			assert_len(n, 32, x25519_peers[i].name);
			unhex(x25519_peers[i].secret, want, sizeof want);
			assert_bytes(out, want, 32, x25519_peers[i].name);
		} else {
			assert_status(st, PSA_ERROR_INVALID_ARGUMENT, x25519_peers[i].name);
			assert_false(all_bytes(out, 32, 0));  /* PSA leaves random bytes, not zeros */
		}
	}
	assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, ka, bpub, 32, out, 31, &n),
	              PSA_ERROR_BUFFER_TOO_SMALL, "31-byte output");
	psa_destroy_key(ka);
	psa_destroy_key(kb);
}

/* ---- ECDH over P-256 and P-384 ---- */

/* RFC 5903's names: private i and r, public g^i and g^r (here 0x04 || x
 * || y), shared secret x of g^ir. Then the curve's generator G, -G and
 * n - 1, whose public key is -G. */
struct ecdh_vec {
	const char *name;
	size_t bits;
	const char *i, *gi, *r, *gr, *z;
	const char *g, *neg_g, *n_minus_1;
};

static const struct ecdh_vec ecdh_vecs[] = {
	{ "RFC 5903 8.1 (P-256)", 256,
	  "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
	  "04"
	  "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180"
	  "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
	  "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
	  "04"
	  "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63"
	  "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
	  "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE",
	  "04"
	  "6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"
	  "4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5",
	  "04"
	  "6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296"
	  "B01CBD1C01E58065711814B583F061E9D431CCA994CEA1313449BF97C840AE0A",
	  "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632550" },
	{ "RFC 5903 8.2 (P-384)", 384,
	  "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655"
	  "E35B538041E649EE3FAEF896783AB194",
	  "04"
	  "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6"
	  "DE3AC808ACB4BDB4C88732AEE95F41AA"
	  "9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38E"
	  "EB9FCFF3C2C947DAE69B4C634573A81C",
	  "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942"
	  "E0308312916B8ED2960E4BD55A7448FC",
	  "04"
	  "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D"
	  "0D1AC43A0336DEF96FDA41D0774A3571"
	  "DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FF"
	  "F83FA40142209DFF5EAAD96DB9E6386C",
	  "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4"
	  "D603135569B9E9D09CF5D4A270F59746",
	  "04"
	  "AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A38"
	  "5502F25DBF55296C3A545E3872760AB7"
	  "3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C0"
	  "0A60B1CE1D7E819D7A431D7C90EA0E5F",
	  "04"
	  "AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A38"
	  "5502F25DBF55296C3A545E3872760AB7"
	  "C9E821B569D9D390A26167406D6D23D6070BE242D765EB831625CEEC4A0F473E"
	  "F59F4E30E2817E6285BCE2846F15F1A0",
	  "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
	  "581A0DB248B0A77AECEC196ACCC52972" },
};

/* Ways to spoil a peer's public key. */
enum bad_peer {
	B_Y, B_X, B_COMPRESSED, B_COMPRESSED_ODD, B_HYBRID, B_PREFIX_05, B_NO_PREFIX, B_SHORT,
	B_LONG, B_INFINITY, B_EMPTY, B_ZERO, B_OTHER_CURVE, B_N
};
static const char *const bad_peer_names[B_N] = {
	"y changed (not on the curve)", "x changed (not on the curve)", "compressed (0x02/0x03 || x)",
	"compressed, other parity", "hybrid (0x06/0x07)", "prefix 0x05", "no prefix",
	"one byte short", "one byte long", "point at infinity (0x00)", "empty", "(0, 0)",
	"the other curve's point",
};

/* The spoilt key in out; its length. */
static size_t bad_peer(enum bad_peer b, const uint8_t *pub, size_t len, const uint8_t *other,
                       size_t other_len, uint8_t *out)
{
	size_t c = (len - 1) / 2;     /* coordinate size */
	int odd = pub[len - 1] & 1;

	memcpy(out, pub, len);
	switch (b) {
	case B_Y: out[len - 1] ^= 0x01; return len;
	case B_X: out[1] ^= 0x01; return len;
	case B_COMPRESSED: out[0] = 0x02 | odd; return 1 + c;
	case B_COMPRESSED_ODD: out[0] = 0x02 | !odd; return 1 + c;
	case B_HYBRID: out[0] = 0x06 | odd; return len;
	case B_PREFIX_05: out[0] = 0x05; return len;
	case B_NO_PREFIX: memmove(out, pub + 1, len - 1); return len - 1;
	case B_SHORT: return len - 1;
	case B_LONG: out[len] = 0; return len + 1;
	case B_INFINITY: out[0] = 0; return 1;
	case B_EMPTY: return 0;
	case B_ZERO: memset(out + 1, 0, len - 1); return len;
	case B_OTHER_CURVE: memcpy(out, other, other_len); return other_len;
	default: return 0;
	}
}

/* RFC 5903: public keys from i and r, g^ir both ways; the generator's
 * multiples; then r against each spoilt g^i: PSA_ERROR_INVALID_ARGUMENT. */
static void test_ecdh_nist(void **state)
{
	(void)state;
	for (size_t v = 0; v < ARRAY_LEN(ecdh_vecs); v++) {
		const struct ecdh_vec *e = &ecdh_vecs[v];
		const struct ecdh_vec *o = &ecdh_vecs[(v + 1) % ARRAY_LEN(ecdh_vecs)];
		uint8_t i[48], r[48], gi[97], gr[97], z[48], g[97], neg_g[97], nm1[48], one[48];
		uint8_t other[97], out[100];
		size_t c = e->bits / 8, pub_len = 1 + 2 * c, n = 0, other_len;
		psa_key_id_t ki, kr, k1, kn;

		unhex(e->i, i, sizeof i);
		unhex(e->r, r, sizeof r);
		unhex(e->gi, gi, sizeof gi);
		unhex(e->gr, gr, sizeof gr);
		unhex(e->z, z, sizeof z);
		unhex(e->g, g, sizeof g);
		unhex(e->neg_g, neg_g, sizeof neg_g);
		unhex(e->n_minus_1, nm1, sizeof nm1);
		other_len = unhex(o->gr, other, sizeof other);
		memset(one, 0, c);
		one[c - 1] = 1;

		ki = import_key(SECP_PAIR, PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH, i, c);
		kr = import_key(SECP_PAIR, PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH, r, c);
		k1 = import_key(SECP_PAIR, PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH, one, c);
		kn = import_key(SECP_PAIR, PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH, nm1, c);

		assert_status(psa_export_public_key(ki, out, sizeof out, &n), PSA_SUCCESS, e->name);
		assert_len(n, pub_len, e->name);
		assert_bytes(out, gi, pub_len, "g^i");
		assert_status(psa_export_public_key(kr, out, sizeof out, &n), PSA_SUCCESS, e->name);
		assert_len(n, pub_len, e->name);
		assert_bytes(out, gr, pub_len, "g^r");
		assert_status(psa_export_public_key(k1, out, sizeof out, &n), PSA_SUCCESS, e->name);
		assert_bytes(out, g, pub_len, "1: G");
		assert_status(psa_export_public_key(kn, out, sizeof out, &n), PSA_SUCCESS, e->name);
		assert_bytes(out, neg_g, pub_len, "n - 1: -G");

		assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, ki, gr, pub_len, out, sizeof out, &n),
		              PSA_SUCCESS, e->name);
		assert_len(n, c, e->name);
		assert_bytes(out, z, c, "i with g^r");
		assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, kr, gi, pub_len, out, sizeof out, &n),
		              PSA_SUCCESS, e->name);
		assert_len(n, c, e->name);
		assert_bytes(out, z, c, "r with g^i");
		assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, ki, g, pub_len, out, sizeof out, &n),
		              PSA_SUCCESS, e->name);
		assert_bytes(out, gi + 1, c, "i with G: x of g^i");
		assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, k1, gr, pub_len, out, sizeof out, &n),
		              PSA_SUCCESS, e->name);
		assert_bytes(out, gr + 1, c, "1 with g^r: x of g^r");
		assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, kn, gr, pub_len, out, sizeof out, &n),
		              PSA_SUCCESS, e->name);
		assert_bytes(out, gr + 1, c, "n - 1 with g^r: x of -g^r");
		assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, ki, gr, pub_len, out, c - 1, &n),
		              PSA_ERROR_BUFFER_TOO_SMALL, e->name);

		for (int b = 0; b < B_N; b++) {
			uint8_t peer[100];
			size_t peer_len = bad_peer((enum bad_peer)b, gi, pub_len, other, other_len, peer);
			char what[128];

			snprintf(what, sizeof what, "%s, %s", e->name, bad_peer_names[b]);
			assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, kr, peer, peer_len, out, c, &n),
			              PSA_ERROR_INVALID_ARGUMENT, what);
		}
		psa_destroy_key(ki);
		psa_destroy_key(kr);
		psa_destroy_key(k1);
		psa_destroy_key(kn);
	}
}

/* ---- generated key pairs ---- */

static const struct curve {
	const char *name;
	psa_key_type_t type;
	size_t bits, bytes, pub_len;
} curves[] = {
	{ "X25519", X25519_PAIR, 255, 32, 32 },
	{ "P-256", SECP_PAIR, 256, 32, 65 },
	{ "P-384", SECP_PAIR, 384, 48, 97 },
};

#define GENERATED_ROUNDS 50

/* psa_generate_key twice per round, as a TLS client and server each make
 * one: the two public keys differ, agree to the same secret both ways,
 * and the first pair exported and imported again gives the same public
 * key and secret (the driver answers the key it made last from what it
 * kept, the other from the private key alone: both paths, in both
 * orders). */
static void test_generated_keys(void **state)
{
	(void)state;
	for (size_t c = 0; c < ARRAY_LEN(curves); c++) {
		const struct curve *cv = &curves[c];

		for (int round = 0; round < GENERATED_ROUNDS; round++) {
			psa_key_usage_t use = PSA_KEY_USAGE_DERIVE | PSA_KEY_USAGE_EXPORT;
			psa_key_id_t a = generate_key(cv->type, cv->bits, use, PSA_ALG_ECDH);
			psa_key_id_t b = generate_key(cv->type, cv->bits, use, PSA_ALG_ECDH);
			psa_key_id_t a2;
			uint8_t pa[97], pb[97], pa2[97], sa[48], sb[48], sa2[48], priv[48];
			size_t n = 0;

			if (round & 1) {      /* b, made last, first */
				assert_status(psa_export_public_key(b, pb, sizeof pb, &n), PSA_SUCCESS, cv->name);
				assert_len(n, cv->pub_len, cv->name);
				assert_status(psa_export_public_key(a, pa, sizeof pa, &n), PSA_SUCCESS, cv->name);
				assert_len(n, cv->pub_len, cv->name);
				assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, b, pa, cv->pub_len, sb,
				                                    sizeof sb, &n),
				              PSA_SUCCESS, cv->name);
				assert_len(n, cv->bytes, cv->name);
				assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, a, pb, cv->pub_len, sa,
				                                    sizeof sa, &n),
				              PSA_SUCCESS, cv->name);
				assert_len(n, cv->bytes, cv->name);
			} else {
				assert_status(psa_export_public_key(a, pa, sizeof pa, &n), PSA_SUCCESS, cv->name);
				assert_len(n, cv->pub_len, cv->name);
				assert_status(psa_export_public_key(b, pb, sizeof pb, &n), PSA_SUCCESS, cv->name);
				assert_len(n, cv->pub_len, cv->name);
				assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, a, pb, cv->pub_len, sa,
				                                    sizeof sa, &n),
				              PSA_SUCCESS, cv->name);
				assert_len(n, cv->bytes, cv->name);
				assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, b, pa, cv->pub_len, sb,
				                                    sizeof sb, &n),
				              PSA_SUCCESS, cv->name);
				assert_len(n, cv->bytes, cv->name);
			}
			if (cv->pub_len != 32) {
				assert_int_equal(pa[0], 0x04);
				assert_int_equal(pb[0], 0x04);
			}
			assert_true(memcmp(pa, pb, cv->pub_len) != 0);
			assert_bytes(sa, sb, cv->bytes, cv->name);
			assert_false(all_bytes(sa, cv->bytes, 0));

			assert_status(psa_export_key(a, priv, sizeof priv, &n), PSA_SUCCESS, cv->name);
			assert_len(n, cv->bytes, cv->name);
			a2 = import_key(cv->type, PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH, priv, n);
			assert_status(psa_export_public_key(a2, pa2, sizeof pa2, &n), PSA_SUCCESS, cv->name);
			assert_bytes(pa2, pa, cv->pub_len, cv->name);
			assert_status(psa_raw_key_agreement(PSA_ALG_ECDH, a2, pb, cv->pub_len, sa2,
			                                    sizeof sa2, &n),
			              PSA_SUCCESS, cv->name);
			assert_bytes(sa2, sa, cv->bytes, cv->name);
			psa_destroy_key(a);
			psa_destroy_key(b);
			psa_destroy_key(a2);
		}
	}
}

/* ---- ECDSA ---- */

#define P256_N "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"
#define P384_N                                                                     \
	"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"             \
	"581A0DB248B0A77AECEC196ACCC52973"
#define A25_X "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"
#define A25_PUB                                                                    \
	"04"                                                                           \
	"60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"             \
	"7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"
#define A26_X                                                                      \
	"6B9D3DAD2E1B8C1C05B19875B6659F4DE23C3B667BF297BA9AA47740787137D8"             \
	"96D5724E4C70A825F872C9EA60D2EDF5"
#define A26_PUB                                                                    \
	"04"                                                                           \
	"EC3A4E415B4E19A4568618029F427FA5DA9A8BC4AE92E02E06AAE5286B300C64"             \
	"DEF8F0EA9055866064A254515480BC13"                                             \
	"8015D9B72D7D57244EA8EF9AC0C621896708A59367F9DFB9F54CA84B3F1C9DB1"             \
	"288B231C3AE0D4FE7344FD2533264720"

/* RFC 6979 A.2.5 and A.2.6 keys, each with hashes of its size and
 * others (longer ones are cut to the order's size, shorter ones taken as
 * they are). rfc_sig: RFC 6979's deterministic signature of "sample",
 * which mbedTLS's verify must take, to show it checks what it should. */
struct ecdsa_vec {
	const char *name;
	size_t bits;
	const char *d, *pub, *n;
	psa_algorithm_t hash;
	const char *rfc_sig;
};

static const struct ecdsa_vec ecdsa_vecs[] = {
	{ "P-256, SHA-256", 256, A25_X, A25_PUB, P256_N, PSA_ALG_SHA_256,
	  "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"
	  "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8" },
	{ "P-256, SHA-384", 256, A25_X, A25_PUB, P256_N, PSA_ALG_SHA_384, NULL },
	{ "P-256, SHA-512", 256, A25_X, A25_PUB, P256_N, PSA_ALG_SHA_512, NULL },
	{ "P-384, SHA-384", 384, A26_X, A26_PUB, P384_N, PSA_ALG_SHA_384,
	  "94EDBB92A5ECB8AAD4736E56C691916B3F88140666CE9FA73D64C4EA95AD133C"
	  "81A648152E44ACF96E36DD1E80FABE46"
	  "99EF4AEB15F178CEA1FE40DB2603138F130E740A19624526203B6351D0A3A94F"
	  "A329C145786E679E7B82C71A38628AC8" },
	{ "P-384, SHA-256", 384, A26_X, A26_PUB, P384_N, PSA_ALG_SHA_256, NULL },
	{ "P-384, SHA-512", 384, A26_X, A26_PUB, P384_N, PSA_ALG_SHA_512, NULL },
};

/* 0 < x < n, both big-endian of len bytes. */
static int in_range(const uint8_t *x, const uint8_t *n, size_t len)
{
	return !all_bytes(x, len, 0) && memcmp(x, n, len) < 0;
}

/* Signs "sample" twice with the key pair; the public key from PSA matches
 * RFC 6979's; each signature is r || s of the curve's size, 0 < r, s < n,
 * the two differ (randomized ECDSA) and both verify with a key made from
 * RFC 6979's public key alone (mbedTLS's verify), which refuses them for
 * "test", with s changed, or cut. */
static void test_ecdsa(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(ecdsa_vecs); i++) {
		const struct ecdsa_vec *e = &ecdsa_vecs[i];
		psa_algorithm_t alg = PSA_ALG_ECDSA(e->hash);
		size_t c = e->bits / 8, n = 0, hlen, hlen2;
		uint8_t d[48], pub[97], order[48], h[64], h2[64], s1[96], s2[96], out[100];
		psa_key_id_t kp, kv;

		unhex(e->d, d, sizeof d);
		unhex(e->pub, pub, sizeof pub);
		unhex(e->n, order, sizeof order);
		kp = import_key(SECP_PAIR, PSA_KEY_USAGE_SIGN_HASH | PSA_KEY_USAGE_VERIFY_HASH,
		                PSA_ALG_ECDSA(PSA_ALG_ANY_HASH), d, c);
		kv = import_key(SECP_PUBLIC, PSA_KEY_USAGE_VERIFY_HASH, PSA_ALG_ECDSA(PSA_ALG_ANY_HASH),
		                pub, 1 + 2 * c);
		assert_status(psa_export_public_key(kp, out, sizeof out, &n), PSA_SUCCESS, e->name);
		assert_len(n, 1 + 2 * c, e->name);
		assert_bytes(out, pub, n, e->name);

		hlen = hash(e->hash, "sample", h, sizeof h);
		hlen2 = hash(e->hash, "test", h2, sizeof h2);
		assert_status(psa_sign_hash(kp, alg, h, hlen, s1, sizeof s1, &n), PSA_SUCCESS, e->name);
		assert_len(n, 2 * c, e->name);
		assert_status(psa_sign_hash(kp, alg, h, hlen, s2, sizeof s2, &n), PSA_SUCCESS, e->name);
		assert_len(n, 2 * c, e->name);
		assert_true(in_range(s1, order, c) && in_range(s1 + c, order, c));
		assert_true(in_range(s2, order, c) && in_range(s2 + c, order, c));
		assert_true(memcmp(s1, s2, 2 * c) != 0);

		assert_status(psa_verify_hash(kv, alg, h, hlen, s1, 2 * c), PSA_SUCCESS, e->name);
		assert_status(psa_verify_hash(kv, alg, h, hlen, s2, 2 * c), PSA_SUCCESS, e->name);
		assert_status(psa_verify_hash(kp, alg, h, hlen, s1, 2 * c), PSA_SUCCESS, e->name);
		assert_status(psa_verify_hash(kv, alg, h2, hlen2, s1, 2 * c), PSA_ERROR_INVALID_SIGNATURE,
		              e->name);
		s1[2 * c - 1] ^= 0x01;
		assert_status(psa_verify_hash(kv, alg, h, hlen, s1, 2 * c), PSA_ERROR_INVALID_SIGNATURE,
		              e->name);
		assert_int_not_equal(psa_verify_hash(kv, alg, h, hlen, s2, 2 * c - 1), PSA_SUCCESS);
		assert_status(psa_sign_hash(kp, alg, h, hlen, s1, 2 * c - 1, &n),
		              PSA_ERROR_BUFFER_TOO_SMALL, e->name);
		if (e->rfc_sig) {
			unhex(e->rfc_sig, s1, sizeof s1);
			assert_status(psa_verify_hash(kv, alg, h, hlen, s1, 2 * c), PSA_SUCCESS, e->name);
		}
		psa_destroy_key(kp);
		psa_destroy_key(kv);
	}
}

#define ROTATION_KEYS 6               /* more than the driver keeps per thread (4) */

/* Signing keys in turn, more of them than the driver keeps made up in
 * libcrypto: each signature verifies with its own key and with no other
 * (a key kept for one PSA key must never sign for another). */
static void test_ecdsa_many_keys(void **state)
{
	psa_key_id_t k[ROTATION_KEYS];
	psa_algorithm_t alg = PSA_ALG_ECDSA(PSA_ALG_SHA_256);
	uint8_t h[32];
	size_t hlen;

	(void)state;
	hlen = hash(PSA_ALG_SHA_256, "rotation", h, sizeof h);
	for (int i = 0; i < ROTATION_KEYS; i++)
		k[i] = generate_key(SECP_PAIR, i % 2 ? 384 : 256,
		                    PSA_KEY_USAGE_SIGN_HASH | PSA_KEY_USAGE_VERIFY_HASH, alg);
	for (int round = 0; round < 5 * ROTATION_KEYS; round++) {
		int i = (round * 5) % ROTATION_KEYS, j = (i + 2) % ROTATION_KEYS;
		size_t c = i % 2 ? 48 : 32, n = 0;
		uint8_t sig[96];

		assert_status(psa_sign_hash(k[i], alg, h, hlen, sig, sizeof sig, &n), PSA_SUCCESS,
		              "rotation");
		assert_len(n, 2 * c, "rotation");
		assert_status(psa_verify_hash(k[i], alg, h, hlen, sig, n), PSA_SUCCESS, "own key");
		assert_status(psa_verify_hash(k[j], alg, h, hlen, sig, n), PSA_ERROR_INVALID_SIGNATURE,
		              "another key");
	}
	for (int i = 0; i < ROTATION_KEYS; i++)
		psa_destroy_key(k[i]);
}

/* ---- RSA ---- */

/* Test data, not a secret: a 2048-bit key made for this test with
 *   openssl genrsa -traditional -out rsa2048.pem 2048
 *   openssl rsa -in rsa2048.pem -traditional -outform DER -out rsa2048.der
 * (PKCS#1 RSAPrivateKey, as psa_import_key takes it), and a 1024-bit one
 * the same way. pkcs1_<hash> are OpenSSL 3.0's signatures of rsa_msg
 * with the 2048-bit key (no trailing newline):
 *   printf '%s' "$msg" | openssl dgst -<hash> -sign rsa2048.pem */
static const uint8_t rsa2048_der[] = {
	0x30, 0x82, 0x04, 0xa3, 0x02, 0x01, 0x00, 0x02, 0x82, 0x01, 0x01, 0x00,
	0x9d, 0x58, 0xdf, 0x84, 0xd0, 0x5b, 0x8a, 0xd1, 0x42, 0xda, 0x8f, 0xb9,
	0x67, 0x24, 0xac, 0x15, 0x74, 0x99, 0xe1, 0xc0, 0xc4, 0x49, 0xac, 0xfd,
	0xc5, 0x85, 0xee, 0xbf, 0x4e, 0xb1, 0x5f, 0x54, 0x2a, 0x2d, 0x5b, 0xae,
	0xdd, 0xa4, 0x8a, 0xd1, 0x91, 0xa3, 0x22, 0xe8, 0x8b, 0xa3, 0xb2, 0xf3,
	0xec, 0x0e, 0xe9, 0xfd, 0x7c, 0x87, 0xa7, 0xcf, 0xf8, 0xec, 0x2f, 0xc1,
	0x2b, 0x0e, 0x41, 0x47, 0xda, 0xd5, 0xb8, 0xa7, 0x6e, 0x76, 0xcd, 0xdc,
	0x23, 0x06, 0x86, 0xcf, 0xc4, 0xc1, 0x16, 0x3a, 0x5a, 0x33, 0x39, 0xb1,
	0x77, 0x12, 0x6a, 0x56, 0x79, 0xd6, 0xf5, 0x2c, 0x89, 0x7e, 0x86, 0x7c,
	0x99, 0x7d, 0x00, 0x3f, 0xaf, 0x86, 0x82, 0x81, 0x0a, 0x0e, 0xbe, 0x91,
	0x96, 0x8c, 0x60, 0x82, 0x76, 0xc0, 0x99, 0x41, 0xb5, 0xa8, 0xb1, 0xea,
	0xc1, 0x3e, 0x35, 0xa2, 0xef, 0xab, 0x27, 0x2f, 0x04, 0x7c, 0x9e, 0xd4,
	0x1e, 0xc9, 0x04, 0xda, 0xb9, 0x6c, 0xb8, 0x09, 0x69, 0x2c, 0x39, 0x11,
	0xc0, 0x73, 0x75, 0x3d, 0x0c, 0x0f, 0x61, 0xbc, 0x4b, 0xc0, 0xad, 0x05,
	0x85, 0xf2, 0xf2, 0xa3, 0x61, 0xcf, 0x83, 0x8e, 0xdd, 0x30, 0x4e, 0xc2,
	0x42, 0x67, 0x88, 0x1a, 0x30, 0x9a, 0x97, 0xf3, 0x33, 0x76, 0x9a, 0x8b,
	0x42, 0xe8, 0xe6, 0x63, 0xae, 0xdf, 0x7d, 0x76, 0x60, 0x88, 0x5c, 0x72,
	0x57, 0x0a, 0x53, 0x5a, 0xbb, 0x49, 0x87, 0x65, 0x31, 0xb8, 0xed, 0xd0,
	0xcf, 0xaa, 0xa2, 0x59, 0xce, 0x40, 0xd7, 0x63, 0xb8, 0x67, 0x09, 0x59,
	0x10, 0xc7, 0xdf, 0x60, 0x70, 0xa4, 0x12, 0x54, 0xe6, 0x7e, 0xf6, 0xd1,
	0xa2, 0x76, 0xae, 0xb1, 0xbb, 0xa8, 0xb1, 0x82, 0x63, 0x06, 0xbf, 0x2e,
	0x8a, 0x7c, 0x04, 0x41, 0x93, 0x1a, 0x2e, 0x98, 0xb2, 0x3e, 0x28, 0x7b,
	0xde, 0xb1, 0x72, 0x85, 0x02, 0x03, 0x01, 0x00, 0x01, 0x02, 0x82, 0x01,
	0x00, 0x24, 0xb2, 0x96, 0xa7, 0x0e, 0x45, 0x5b, 0x72, 0x04, 0xea, 0x9e,
	0xbc, 0xba, 0x1e, 0xa6, 0x77, 0xf6, 0x92, 0xf1, 0x41, 0x19, 0x46, 0xa9,
	0xaf, 0x22, 0x43, 0x63, 0x74, 0x80, 0xf1, 0x03, 0x6f, 0xc8, 0xca, 0x7d,
	0x68, 0xa2, 0x4e, 0xff, 0x05, 0x73, 0xb7, 0x1d, 0xac, 0x28, 0xed, 0x4c,
	0x0e, 0x71, 0xce, 0xe4, 0xa9, 0xf7, 0x42, 0x58, 0x54, 0x3c, 0x15, 0x31,
	0xea, 0x16, 0x95, 0xa3, 0x8a, 0x13, 0xb2, 0xe6, 0xf7, 0x3d, 0xdf, 0x3d,
	0x92, 0x0b, 0x25, 0x39, 0x89, 0xf9, 0xb4, 0xa2, 0xef, 0x87, 0x1c, 0x0d,
	0x67, 0xa3, 0x82, 0xcb, 0x04, 0x52, 0x34, 0x5d, 0x48, 0x3e, 0xe5, 0x20,
	0x8e, 0xac, 0xe9, 0xa7, 0x86, 0x32, 0xf4, 0xe7, 0x39, 0x1b, 0x54, 0x67,
	0x03, 0xe3, 0x9d, 0xe7, 0xe0, 0x65, 0xbb, 0xf3, 0xc2, 0x8c, 0x90, 0xc4,
	0xb6, 0x20, 0xcd, 0xd6, 0x8a, 0xa2, 0xe5, 0x43, 0x24, 0xe9, 0x05, 0x11,
	0x69, 0x26, 0xf3, 0xff, 0xce, 0x25, 0x89, 0x21, 0xb0, 0xa7, 0xb0, 0x3e,
	0x0e, 0xd5, 0x07, 0x04, 0xeb, 0x17, 0x56, 0xe4, 0x96, 0x04, 0x5e, 0x44,
	0x16, 0xc4, 0x47, 0xc5, 0xa2, 0x47, 0x9f, 0x00, 0xce, 0xdd, 0xd9, 0x6e,
	0x39, 0xca, 0xe8, 0x18, 0x38, 0xb9, 0xe6, 0x32, 0x2a, 0xd0, 0x79, 0x4e,
	0xde, 0x95, 0x79, 0x63, 0x17, 0xf7, 0x6d, 0xa5, 0x1a, 0x90, 0xa4, 0x0c,
	0xc9, 0xdb, 0x4b, 0x88, 0xf4, 0x95, 0xe4, 0xde, 0x69, 0x07, 0xae, 0x65,
	0xd7, 0xeb, 0xb0, 0xb7, 0x86, 0xb1, 0x9f, 0x03, 0xb8, 0x17, 0xc3, 0x59,
	0x08, 0x21, 0x4d, 0xca, 0x7c, 0xf7, 0xcd, 0x9d, 0xc5, 0xe0, 0x85, 0x8f,
	0x56, 0xbb, 0x64, 0x92, 0x01, 0xee, 0xfe, 0x24, 0x50, 0x7c, 0x3e, 0x67,
	0x81, 0xe4, 0xd8, 0xb7, 0x5a, 0x09, 0xc7, 0xad, 0x6e, 0x4c, 0xb7, 0xcd,
	0xcf, 0xd8, 0x17, 0x0d, 0xe1, 0x02, 0x81, 0x81, 0x00, 0xde, 0x66, 0x34,
	0xcf, 0x07, 0xa9, 0x47, 0xcb, 0x8c, 0x83, 0x6b, 0x22, 0x32, 0x1c, 0x76,
	0x6b, 0x97, 0x19, 0x96, 0xf6, 0xce, 0xde, 0xae, 0xb4, 0x24, 0x32, 0xfc,
	0x4a, 0x85, 0x6b, 0xe7, 0x25, 0xb8, 0xed, 0xe7, 0x5d, 0x83, 0x72, 0xb9,
	0x9c, 0xf8, 0xb9, 0x12, 0xb7, 0xbb, 0x9d, 0xcd, 0x4e, 0x6e, 0x04, 0x6d,
	0x86, 0x3d, 0x7b, 0x4d, 0x35, 0x58, 0x19, 0x55, 0xc1, 0x84, 0xc5, 0x3b,
	0xfa, 0x35, 0x8d, 0x1d, 0x19, 0x0a, 0xf8, 0x2e, 0x3d, 0xea, 0xee, 0x3a,
	0x85, 0x05, 0x2a, 0x33, 0xf2, 0x7d, 0x38, 0x1f, 0x35, 0x37, 0xea, 0x25,
	0x0c, 0xa5, 0x10, 0x31, 0x5d, 0xfc, 0x92, 0x1c, 0x62, 0x8b, 0x81, 0xcf,
	0x0b, 0x14, 0xbf, 0xa4, 0xc7, 0x87, 0x4b, 0x18, 0xb6, 0x60, 0xc2, 0x23,
	0x90, 0x73, 0x5b, 0xb1, 0x47, 0x59, 0x62, 0xcf, 0xeb, 0x5a, 0x75, 0x51,
	0x30, 0x50, 0xf5, 0x29, 0xe9, 0x02, 0x81, 0x81, 0x00, 0xb5, 0x1e, 0xa1,
	0x62, 0xf5, 0x93, 0x05, 0xa9, 0x4e, 0x40, 0xb9, 0x38, 0x0d, 0xb1, 0xd2,
	0x93, 0x5a, 0x01, 0xfd, 0x75, 0x47, 0xf5, 0xb2, 0x21, 0x02, 0x8d, 0x29,
	0xda, 0xcd, 0x19, 0xcb, 0xd4, 0x42, 0xfa, 0xa0, 0x07, 0xc5, 0x17, 0xd6,
	0xb6, 0x4b, 0x2c, 0x89, 0xe7, 0x89, 0xc1, 0xc0, 0x8f, 0x97, 0x2b, 0x01,
	0x86, 0x94, 0xd8, 0x75, 0xef, 0xb5, 0x31, 0x08, 0xe7, 0x0e, 0xcd, 0x1a,
	0x0a, 0x17, 0x95, 0x8f, 0x5b, 0x37, 0x44, 0xe6, 0x29, 0x08, 0x98, 0xff,
	0xbb, 0x0a, 0xc1, 0x3a, 0x35, 0x63, 0x0f, 0x6e, 0x0d, 0x1d, 0x3a, 0xab,
	0xff, 0xbd, 0xa2, 0xae, 0x3f, 0x83, 0x6b, 0x2f, 0xd2, 0x31, 0x87, 0x77,
	0x64, 0x90, 0x1a, 0xde, 0x98, 0x4d, 0xfd, 0x4e, 0x0e, 0x09, 0xe3, 0xf0,
	0xa4, 0xf7, 0xd0, 0x2d, 0xf3, 0x63, 0xcf, 0x55, 0x54, 0xf5, 0x78, 0x2b,
	0xee, 0x51, 0x13, 0x06, 0x3d, 0x02, 0x81, 0x81, 0x00, 0xd8, 0xb9, 0xae,
	0xf2, 0xa5, 0x5b, 0xa0, 0x7c, 0x4a, 0x64, 0xf2, 0xec, 0xf2, 0xfa, 0x6b,
	0xa8, 0x33, 0x2a, 0x1b, 0xc4, 0x4e, 0x1a, 0x11, 0x13, 0xb9, 0x46, 0xfa,
	0x36, 0xc0, 0xc8, 0x43, 0x0b, 0xae, 0xa8, 0x1f, 0xd4, 0x30, 0x39, 0x87,
	0x89, 0xe1, 0x93, 0xb1, 0x1a, 0xdd, 0x39, 0x4d, 0x0e, 0x06, 0x06, 0x48,
	0x99, 0x0d, 0xa6, 0xef, 0xb9, 0x71, 0x2d, 0xd7, 0x34, 0xeb, 0x66, 0xad,
	0x29, 0x0a, 0x30, 0x86, 0xcf, 0x95, 0xb1, 0xfe, 0x96, 0x16, 0x2f, 0xab,
	0x55, 0x5f, 0x90, 0x1d, 0xe9, 0x4b, 0x7f, 0x7a, 0x62, 0x09, 0x28, 0x22,
	0x8c, 0xac, 0xfa, 0x17, 0xb1, 0xa8, 0x64, 0xd6, 0x46, 0x6d, 0xfe, 0xc4,
	0xbd, 0xde, 0xad, 0x57, 0x2d, 0x9d, 0xb9, 0x5f, 0xce, 0xb2, 0x81, 0xdd,
	0xd8, 0x71, 0xa2, 0x44, 0x22, 0xec, 0x87, 0x6f, 0x68, 0xc1, 0xd1, 0x1b,
	0x9a, 0x42, 0xfa, 0x76, 0xa9, 0x02, 0x81, 0x80, 0x55, 0x46, 0xf3, 0xc3,
	0xcd, 0x4e, 0x89, 0x06, 0xdb, 0x42, 0x5c, 0x33, 0x09, 0x37, 0xa5, 0xa7,
	0x1d, 0x64, 0xfc, 0x7a, 0xa1, 0x04, 0x0c, 0xf7, 0xbf, 0xe4, 0xc9, 0x45,
	0x2c, 0xf6, 0xad, 0x62, 0xe6, 0x9a, 0x6c, 0x88, 0xdc, 0x02, 0xca, 0x64,
	0x90, 0x66, 0x8b, 0x13, 0xca, 0x67, 0xc0, 0x8b, 0x9b, 0x28, 0x73, 0x92,
	0x73, 0x38, 0xab, 0xe6, 0xce, 0x50, 0x25, 0x19, 0xed, 0x7d, 0x22, 0x7a,
	0x87, 0xfa, 0x32, 0x42, 0x47, 0x76, 0x98, 0x4b, 0xcf, 0xb1, 0x82, 0x0f,
	0x06, 0x14, 0x4e, 0x9c, 0xde, 0x64, 0x60, 0x73, 0xaa, 0x44, 0x7a, 0xc1,
	0x71, 0xff, 0x4b, 0xbd, 0xb9, 0xd9, 0xd8, 0xed, 0x45, 0xc6, 0xbb, 0xaf,
	0x4c, 0xae, 0x6a, 0x0a, 0x1a, 0x06, 0x5f, 0x1e, 0xfb, 0x07, 0x28, 0xc1,
	0xf3, 0xb0, 0x40, 0x42, 0x6d, 0xc7, 0x2c, 0x2d, 0x51, 0x5a, 0x60, 0x8c,
	0xd7, 0xfd, 0x76, 0x1d, 0x02, 0x81, 0x80, 0x5d, 0x26, 0x10, 0xb7, 0x97,
	0x8b, 0xd6, 0x9f, 0x93, 0x1e, 0x07, 0x4d, 0x48, 0x8e, 0xae, 0x19, 0xe5,
	0xd6, 0xad, 0x19, 0xc3, 0x5f, 0x11, 0xc9, 0x86, 0x5d, 0xd4, 0x4b, 0xd6,
	0xd3, 0xe6, 0x8e, 0x56, 0xe7, 0xfd, 0xdb, 0x46, 0x70, 0x8d, 0xa2, 0xe7,
	0x49, 0xa9, 0x11, 0xd3, 0xe6, 0x1c, 0x25, 0xd6, 0x46, 0xed, 0xc0, 0xed,
	0x61, 0x36, 0xb7, 0xa4, 0xa2, 0x0b, 0x7b, 0x30, 0x3d, 0x2d, 0x25, 0xdc,
	0x84, 0x29, 0xc7, 0x3a, 0x01, 0x36, 0x45, 0x03, 0x8d, 0xff, 0x0a, 0x26,
	0x65, 0x03, 0x40, 0x6f, 0xd5, 0x0c, 0xa1, 0xa7, 0xcc, 0xf3, 0x5f, 0x62,
	0x63, 0x48, 0xbe, 0xb4, 0x2c, 0x47, 0xb4, 0x5b, 0x4f, 0x97, 0xb5, 0x31,
	0x62, 0x31, 0x7d, 0xcf, 0xb6, 0xdb, 0xec, 0x6c, 0x8b, 0x2f, 0x03, 0x7a,
	0x98, 0x21, 0xf4, 0x64, 0x42, 0xa0, 0xbe, 0x19, 0xe6, 0x18, 0x5d, 0x9d,
	0xd7, 0xf3, 0xac,
};

static const uint8_t rsa1024_der[] = {
	0x30, 0x82, 0x02, 0x5d, 0x02, 0x01, 0x00, 0x02, 0x81, 0x81, 0x00, 0xe9,
	0x83, 0x23, 0x49, 0x00, 0xe6, 0xcc, 0x5b, 0x8c, 0x08, 0x08, 0x7e, 0x37,
	0xab, 0xf3, 0xeb, 0x8a, 0xae, 0xc0, 0x9b, 0x4d, 0x8e, 0xfe, 0x2d, 0x49,
	0xd2, 0x9b, 0x26, 0x24, 0x4f, 0x20, 0x24, 0xa3, 0xfc, 0xca, 0xf3, 0x98,
	0x0d, 0xc8, 0x6c, 0xfc, 0xcf, 0x94, 0xc6, 0x3b, 0x30, 0xd4, 0x0a, 0xef,
	0x68, 0xe5, 0xb0, 0xd0, 0xc0, 0xe7, 0xab, 0x5f, 0x14, 0x85, 0xb6, 0xf3,
	0x31, 0x1f, 0x99, 0x71, 0x11, 0x73, 0xb6, 0x77, 0xca, 0x86, 0xaf, 0xbf,
	0x60, 0xa0, 0x24, 0xb2, 0xb8, 0xe3, 0x5e, 0x5c, 0x71, 0x8a, 0x5c, 0x17,
	0xf3, 0x38, 0x74, 0x2d, 0x86, 0x3a, 0x85, 0x06, 0x1d, 0x19, 0x4f, 0xef,
	0x4f, 0xdc, 0xa0, 0x59, 0x55, 0xaf, 0x49, 0xf1, 0xfd, 0x2a, 0x95, 0xe0,
	0xdd, 0x44, 0xc7, 0xc3, 0xfd, 0xfc, 0x33, 0x36, 0x53, 0xb8, 0x45, 0x80,
	0x58, 0x8a, 0xff, 0xe4, 0xd3, 0xa1, 0x3b, 0x02, 0x03, 0x01, 0x00, 0x01,
	0x02, 0x81, 0x81, 0x00, 0x91, 0xe2, 0xcb, 0xf8, 0xa0, 0x07, 0x91, 0x44,
	0xe0, 0x87, 0x64, 0x46, 0xf6, 0xa1, 0x07, 0x12, 0xf0, 0xe1, 0x9c, 0x93,
	0x6a, 0x31, 0x1b, 0xbb, 0x4f, 0x93, 0xb4, 0x3a, 0x70, 0x14, 0xbf, 0x10,
	0x25, 0x23, 0x99, 0xe7, 0xf5, 0xe7, 0x26, 0x80, 0x70, 0xb1, 0x7f, 0x51,
	0x19, 0x49, 0xb8, 0x2f, 0xdc, 0xc2, 0xbc, 0x3d, 0x6b, 0x2e, 0x19, 0x8e,
	0x87, 0x28, 0x5b, 0x21, 0xa1, 0x6d, 0xdf, 0x3e, 0xdc, 0x4a, 0x8c, 0xeb,
	0xd6, 0x8c, 0x69, 0x2e, 0x8a, 0xf1, 0x23, 0x1c, 0x1f, 0xc8, 0xc0, 0x7d,
	0xe4, 0x17, 0xde, 0x78, 0x0c, 0x58, 0x3f, 0x04, 0x16, 0xf3, 0x37, 0x4b,
	0x47, 0x89, 0x05, 0xce, 0xd5, 0x71, 0x68, 0xd9, 0x5a, 0x6f, 0x66, 0x82,
	0x16, 0xc8, 0xcf, 0x09, 0xc7, 0x04, 0x0a, 0x30, 0xe9, 0xc8, 0x45, 0xb0,
	0x75, 0x35, 0x94, 0x3a, 0x74, 0xfc, 0xd3, 0xba, 0xf9, 0x57, 0xa1, 0x01,
	0x02, 0x41, 0x00, 0xf8, 0x62, 0x07, 0xa5, 0x1c, 0xcb, 0x7c, 0x9a, 0xfc,
	0xdc, 0x93, 0xfc, 0xd7, 0x8a, 0xf2, 0x65, 0x47, 0x29, 0x4c, 0x68, 0x71,
	0x8b, 0xb7, 0xa7, 0x99, 0x5d, 0x62, 0xeb, 0xc3, 0x53, 0x92, 0xa1, 0xe5,
	0x47, 0xd6, 0xf5, 0xc0, 0x73, 0xed, 0xac, 0xed, 0xb7, 0x3c, 0x63, 0xfa,
	0xe6, 0x50, 0xea, 0x0d, 0xea, 0x6f, 0xb1, 0x20, 0xef, 0x1f, 0x52, 0x3b,
	0x92, 0x1d, 0xd6, 0x37, 0x27, 0xe2, 0x13, 0x02, 0x41, 0x00, 0xf0, 0xac,
	0x5d, 0x05, 0xa1, 0x12, 0x72, 0xda, 0x82, 0xe4, 0x98, 0xed, 0x83, 0xea,
	0x36, 0x8f, 0x03, 0x56, 0xd4, 0xe9, 0x47, 0x43, 0xeb, 0x10, 0x44, 0x95,
	0x32, 0x0b, 0x1c, 0xd8, 0x72, 0xd2, 0xae, 0xe4, 0xeb, 0x49, 0xf0, 0x5c,
	0x7f, 0x94, 0x07, 0xb4, 0xd6, 0x5e, 0x93, 0xf2, 0x3e, 0x43, 0xa0, 0x4f,
	0x79, 0xbf, 0x0a, 0x0d, 0x01, 0x17, 0x39, 0xa0, 0x0e, 0x93, 0xbc, 0xf5,
	0xe9, 0x39, 0x02, 0x40, 0x78, 0x3d, 0x8c, 0x91, 0xe3, 0xc4, 0xa6, 0x47,
	0xa9, 0x4d, 0x66, 0xde, 0xa9, 0xc1, 0x7b, 0xe2, 0x87, 0x76, 0x78, 0xa4,
	0xbf, 0x02, 0xf2, 0x1f, 0x52, 0x61, 0x20, 0xf8, 0x1d, 0x10, 0xa2, 0x15,
	0x79, 0x97, 0x33, 0x7a, 0xb8, 0x75, 0xe6, 0x83, 0x26, 0x78, 0xe3, 0xe5,
	0x4a, 0x9a, 0xa0, 0x65, 0x0d, 0xe3, 0x85, 0xba, 0x6b, 0xc5, 0x16, 0x96,
	0x8a, 0x7c, 0x0b, 0xb1, 0x9d, 0xf5, 0xd2, 0xbd, 0x02, 0x41, 0x00, 0xdc,
	0xbb, 0x88, 0xf9, 0x5f, 0xb8, 0x36, 0xe4, 0x98, 0x06, 0x27, 0x08, 0x37,
	0xe3, 0x78, 0xb4, 0x83, 0xc0, 0x80, 0xb7, 0x8f, 0x68, 0x08, 0x50, 0x3c,
	0x46, 0x85, 0xc6, 0x51, 0x67, 0x67, 0x30, 0x39, 0xbd, 0xb4, 0xda, 0x74,
	0x7b, 0xb1, 0x7a, 0xc7, 0xf2, 0xa0, 0x65, 0xcf, 0xd4, 0xee, 0x2c, 0x41,
	0xfc, 0x82, 0x51, 0xa7, 0x5b, 0x33, 0xf3, 0xe4, 0x23, 0x1b, 0x1b, 0x7e,
	0xc4, 0x1f, 0x69, 0x02, 0x40, 0x26, 0x2a, 0xaa, 0x2d, 0x6d, 0x30, 0x8b,
	0xa7, 0x91, 0x0f, 0x01, 0x0c, 0x47, 0x91, 0xca, 0xed, 0x26, 0xbb, 0xf9,
	0x6b, 0x1e, 0xad, 0x8f, 0x77, 0xef, 0x3c, 0x18, 0xc2, 0xdb, 0x33, 0x2f,
	0xef, 0x03, 0x14, 0x62, 0x3f, 0xf7, 0x24, 0xd5, 0x04, 0xe7, 0x40, 0x4d,
	0xa3, 0x99, 0xe7, 0x7b, 0x4c, 0x12, 0x85, 0x61, 0xb1, 0xd8, 0xf3, 0x6a,
	0xc0, 0x5c, 0x09, 0x39, 0xdd, 0xc3, 0x7a, 0x3a, 0x04,
};

static const uint8_t pkcs1_sha256[] = {
	0x43, 0x15, 0x16, 0x67, 0x16, 0x5f, 0x37, 0x68, 0x57, 0x08, 0x3a, 0xda,
	0xc3, 0xdc, 0x88, 0x8a, 0xdb, 0x43, 0xcf, 0x6e, 0x36, 0xf5, 0x5e, 0x39,
	0x58, 0x6f, 0x78, 0x25, 0x1c, 0x92, 0x78, 0xbb, 0x6d, 0x95, 0xdb, 0xec,
	0x06, 0xfd, 0x3d, 0xc6, 0x2b, 0xd9, 0x67, 0xc9, 0x1c, 0x1b, 0x85, 0x68,
	0x85, 0x6d, 0x55, 0xa0, 0x31, 0x53, 0x5b, 0x8f, 0xe6, 0x2b, 0xd8, 0x42,
	0xbf, 0x7c, 0x93, 0xd2, 0xc2, 0xad, 0xce, 0xd1, 0x0c, 0xb5, 0x16, 0x7e,
	0xdd, 0x95, 0x2f, 0x48, 0xd9, 0x35, 0x2b, 0x5e, 0x7f, 0x2d, 0x3e, 0x8b,
	0x42, 0xdc, 0xde, 0xf0, 0x26, 0xea, 0x75, 0x94, 0x3e, 0x33, 0xe3, 0xb6,
	0x5d, 0xa8, 0x06, 0x3b, 0xde, 0x6d, 0x65, 0xcd, 0x0b, 0x11, 0x85, 0x06,
	0xd0, 0x30, 0xe2, 0x1c, 0x50, 0x0d, 0x0b, 0x6d, 0xf7, 0xe8, 0x52, 0xad,
	0xe2, 0x2b, 0xe9, 0x4e, 0xf1, 0x95, 0x96, 0x28, 0x1b, 0x24, 0x8d, 0xf9,
	0xc1, 0xd0, 0x0c, 0x90, 0x4b, 0xf4, 0xbd, 0xba, 0xdb, 0x43, 0x13, 0x23,
	0xd9, 0x3b, 0x9a, 0x23, 0x28, 0x25, 0x23, 0x5d, 0x21, 0xdb, 0xdd, 0x7e,
	0xcf, 0x16, 0x66, 0x61, 0x6e, 0xda, 0x70, 0x93, 0x62, 0x4c, 0x40, 0xd1,
	0x4d, 0xd3, 0xa3, 0x0d, 0xbd, 0x9c, 0x5c, 0x1b, 0x49, 0x07, 0x8c, 0x5c,
	0xc5, 0xa9, 0x02, 0x25, 0x93, 0xdd, 0x6c, 0x6b, 0x0a, 0xab, 0x7d, 0x86,
	0x20, 0xb7, 0xe9, 0x21, 0xf6, 0xb7, 0xe3, 0x46, 0x8d, 0xbc, 0x4c, 0xd4,
	0xa8, 0x72, 0x2d, 0x13, 0x73, 0xdb, 0x55, 0x14, 0x38, 0xdd, 0x83, 0xfb,
	0x83, 0x0c, 0x61, 0x15, 0x84, 0x3e, 0xb9, 0x4f, 0x6b, 0xa2, 0x1c, 0xda,
	0x21, 0x74, 0x14, 0xaa, 0x21, 0xb3, 0x96, 0x9a, 0x42, 0xdd, 0x3b, 0xe0,
	0xb6, 0xc9, 0xbd, 0xf8, 0x73, 0x70, 0x29, 0x71, 0x18, 0x45, 0x44, 0x57,
	0x64, 0xbe, 0x6f, 0xf4,
};

static const uint8_t pkcs1_sha384[] = {
	0x28, 0x39, 0x97, 0x8c, 0x46, 0x09, 0xd4, 0x31, 0xc7, 0x8b, 0x29, 0x49,
	0x7d, 0x5b, 0x46, 0x84, 0x58, 0x3c, 0x75, 0xb8, 0x52, 0x92, 0x0a, 0xf7,
	0xdf, 0x78, 0x16, 0x27, 0x55, 0x73, 0xdc, 0x3a, 0x7e, 0x15, 0xc0, 0xfd,
	0x9f, 0x2e, 0xd4, 0xe2, 0xd9, 0xc7, 0x70, 0x6e, 0xc6, 0xee, 0x99, 0x90,
	0x96, 0xe7, 0x55, 0xae, 0x7d, 0xac, 0x21, 0xec, 0xcc, 0x50, 0xdc, 0x3c,
	0xb2, 0x17, 0xe4, 0xbd, 0xa5, 0x0b, 0x7d, 0x4e, 0x00, 0xc4, 0xa8, 0x26,
	0x40, 0xc5, 0x2c, 0xf1, 0x07, 0x41, 0xf0, 0xf6, 0x82, 0x57, 0x4f, 0x95,
	0x08, 0x39, 0x79, 0x08, 0xd0, 0xa2, 0x6e, 0x60, 0x3a, 0xe0, 0x77, 0x13,
	0x92, 0x66, 0xc6, 0x81, 0x77, 0xa7, 0xc3, 0x4b, 0xf9, 0x6e, 0x4e, 0xc2,
	0xbb, 0x3f, 0xb7, 0x1b, 0x83, 0x50, 0x26, 0xd8, 0x87, 0x3c, 0x1c, 0xf1,
	0x5f, 0x88, 0x90, 0xfe, 0x99, 0xfd, 0x79, 0xce, 0xc4, 0x83, 0x5d, 0xdc,
	0x8d, 0x2a, 0x58, 0x1e, 0xa2, 0x52, 0x1f, 0x17, 0xff, 0xb3, 0x03, 0x56,
	0xd1, 0xb2, 0x5a, 0x7a, 0x68, 0x33, 0x2f, 0x44, 0x69, 0x11, 0x28, 0x24,
	0x88, 0x01, 0xe4, 0x86, 0x50, 0xee, 0x61, 0x4b, 0xcc, 0xa3, 0x6c, 0x06,
	0xfc, 0x5b, 0x9b, 0xd8, 0xe5, 0x16, 0x01, 0x5c, 0xe2, 0x00, 0xa0, 0xce,
	0x6e, 0xbb, 0x94, 0x5c, 0x12, 0x2f, 0xe0, 0x89, 0x77, 0x25, 0x57, 0x0f,
	0xc1, 0x78, 0x10, 0xbb, 0xdc, 0x79, 0x30, 0x65, 0x68, 0x47, 0x02, 0xd3,
	0xf1, 0x43, 0x0a, 0x4b, 0x10, 0x35, 0xfd, 0x55, 0xb9, 0xc6, 0xd1, 0xf8,
	0xc0, 0x23, 0x21, 0x25, 0x26, 0x4b, 0xa7, 0xa7, 0x8f, 0xaf, 0xe8, 0xf6,
	0xc6, 0x7c, 0xe7, 0xb8, 0x1c, 0xd4, 0x26, 0xa4, 0x58, 0x54, 0x82, 0x9a,
	0xd0, 0xec, 0xe4, 0x9f, 0x46, 0x63, 0xfe, 0x34, 0x4f, 0x83, 0xa7, 0x24,
	0x9f, 0x1c, 0xa0, 0x1f,
};

static const uint8_t pkcs1_sha512[] = {
	0x29, 0x5a, 0x7c, 0x8d, 0x60, 0x90, 0xc4, 0x7c, 0x0e, 0x66, 0x86, 0x2a,
	0x99, 0x47, 0x67, 0xc7, 0x0e, 0xf9, 0x48, 0x18, 0x4a, 0x56, 0x5b, 0x5a,
	0xfc, 0x60, 0x1b, 0xa7, 0x9f, 0x7c, 0xaf, 0xaf, 0xe7, 0x5a, 0x9b, 0x93,
	0xf0, 0x5d, 0xee, 0x31, 0x8f, 0xe2, 0x3a, 0x3e, 0x1c, 0x6b, 0xe0, 0xd4,
	0x1f, 0xe3, 0x98, 0xf0, 0x2f, 0xee, 0xe0, 0x46, 0xe5, 0x79, 0x31, 0x29,
	0xb6, 0x4b, 0x99, 0x5d, 0x07, 0xf8, 0x87, 0xfd, 0xd5, 0x2c, 0x80, 0x5b,
	0x2d, 0xf2, 0xf2, 0x2a, 0xc5, 0x3b, 0x79, 0x68, 0xd3, 0x06, 0xab, 0x4b,
	0x2a, 0x9d, 0x27, 0x68, 0x88, 0x81, 0xb6, 0xc4, 0x9c, 0xa2, 0x58, 0xe5,
	0xc3, 0x41, 0xff, 0x64, 0x96, 0xe8, 0x82, 0xb9, 0xaa, 0x0d, 0xc7, 0x06,
	0xf2, 0x17, 0x0e, 0x39, 0x1b, 0x0b, 0x98, 0xf5, 0x5a, 0xe5, 0xef, 0x65,
	0xed, 0x6b, 0xb5, 0x74, 0xd6, 0x71, 0x33, 0x5b, 0xff, 0x95, 0xf0, 0x43,
	0x70, 0x20, 0x26, 0xf4, 0x7c, 0x15, 0x26, 0x14, 0x23, 0x3b, 0x26, 0x45,
	0xe8, 0x60, 0x0e, 0xf1, 0xd2, 0xa4, 0x95, 0xee, 0x4c, 0xf6, 0x6d, 0x6a,
	0x13, 0xf5, 0xf4, 0x88, 0x06, 0x02, 0x32, 0x69, 0xe3, 0xca, 0x0b, 0x73,
	0xc4, 0x02, 0x92, 0x0e, 0x3e, 0x2b, 0xb3, 0xb0, 0x6d, 0xa7, 0xb9, 0x00,
	0x14, 0x23, 0xb7, 0x05, 0xa4, 0xa3, 0xc8, 0x5f, 0x73, 0x3f, 0x3f, 0xb5,
	0xda, 0x20, 0x9a, 0x6f, 0x08, 0x1e, 0xcd, 0xce, 0x3c, 0xaa, 0x96, 0x68,
	0xde, 0x52, 0x12, 0x9e, 0x75, 0x3c, 0x22, 0xdd, 0xe0, 0xb0, 0x4b, 0x6f,
	0xd1, 0x5c, 0x43, 0x3f, 0x0f, 0x93, 0xd4, 0xff, 0x23, 0xb0, 0xdd, 0xd8,
	0x20, 0x26, 0x45, 0x42, 0xaa, 0xfa, 0xb8, 0x12, 0x3e, 0x21, 0x56, 0x35,
	0xbe, 0x1c, 0x06, 0x4d, 0x8b, 0xff, 0xfa, 0x0f, 0xdb, 0xd0, 0x11, 0xe0,
	0xa6, 0x54, 0x0f, 0x3c,
};

static const uint8_t pkcs1_sha1[] = {
	0x29, 0x8c, 0x24, 0x24, 0x44, 0xa5, 0x8b, 0x76, 0xe8, 0x8f, 0x74, 0x97,
	0xeb, 0x01, 0x77, 0xf2, 0x2d, 0x51, 0x1a, 0xb2, 0x8e, 0x38, 0x40, 0xd8,
	0xae, 0x0f, 0xa4, 0xc8, 0xa0, 0xfd, 0x43, 0x4b, 0x3d, 0x4f, 0x16, 0x40,
	0x16, 0xd0, 0xac, 0x87, 0xb2, 0x3e, 0x5e, 0x73, 0xec, 0xbe, 0xcb, 0xd6,
	0xe5, 0x2d, 0x47, 0x41, 0xf2, 0x0b, 0x6c, 0x5f, 0x90, 0x88, 0x23, 0x97,
	0xc8, 0x61, 0x85, 0x17, 0xb6, 0xcc, 0x13, 0x15, 0x0d, 0xf1, 0xf6, 0x9a,
	0x36, 0x95, 0x0d, 0x66, 0x3f, 0x99, 0xa5, 0x2a, 0x36, 0x1c, 0x0f, 0xfc,
	0xbf, 0x43, 0x58, 0x6f, 0x3c, 0x52, 0xd7, 0x63, 0xb3, 0x14, 0xc6, 0x81,
	0xbd, 0xfe, 0x22, 0x96, 0x3c, 0xd4, 0x60, 0x0b, 0x66, 0x7b, 0x51, 0xc1,
	0xf3, 0x14, 0xcf, 0xf0, 0x2c, 0x9b, 0x80, 0x61, 0x1f, 0xc4, 0x40, 0xb8,
	0x39, 0x74, 0xc6, 0x16, 0x2f, 0xfa, 0x36, 0x09, 0x98, 0x7f, 0x4f, 0x1e,
	0x27, 0xb3, 0xac, 0x69, 0x43, 0x1c, 0xc1, 0x43, 0x93, 0xfb, 0x0a, 0x2c,
	0xe3, 0x1d, 0x86, 0xae, 0x80, 0x9c, 0x59, 0x84, 0xaf, 0xbd, 0xc0, 0xce,
	0x55, 0xa4, 0x72, 0x92, 0x31, 0xa1, 0x4a, 0x18, 0x2b, 0x44, 0xae, 0xec,
	0x32, 0x44, 0x18, 0x2c, 0xfd, 0x92, 0x9c, 0x94, 0xad, 0x10, 0x08, 0x6f,
	0x3d, 0x8e, 0x90, 0x35, 0x2e, 0xf8, 0x0f, 0xc9, 0xa8, 0x89, 0xd3, 0xc8,
	0x15, 0xdf, 0x91, 0x8e, 0x4d, 0x19, 0x29, 0x60, 0x0d, 0x18, 0x35, 0x19,
	0x32, 0x7c, 0x8f, 0x95, 0xfa, 0xbf, 0x3a, 0xed, 0x83, 0xf4, 0x71, 0x48,
	0xaf, 0xcb, 0x83, 0x3b, 0x82, 0x3c, 0x8f, 0x94, 0xf1, 0xdd, 0x8b, 0xf7,
	0x84, 0x79, 0xee, 0xf2, 0xf3, 0x03, 0x39, 0xe6, 0x77, 0xc4, 0x85, 0x4a,
	0x59, 0xda, 0xdf, 0xdb, 0x07, 0x57, 0x4c, 0x17, 0xe1, 0xb2, 0x6b, 0x62,
	0xd8, 0x51, 0x8e, 0x38,
};

static const char rsa_msg[] = "moat test_crypto: PKCS#1 v1.5 known answer";

#define RSA_PAIR PSA_KEY_TYPE_RSA_KEY_PAIR
#define RSA_SIGN (PSA_KEY_USAGE_SIGN_HASH | PSA_KEY_USAGE_VERIFY_HASH)

/* PKCS#1 v1.5 signatures are deterministic: OpenSSL's, exactly. */
static const struct {
	const char *name;
	psa_algorithm_t hash;
	const uint8_t *sig;
	int driver;                   /* the driver takes it; 0: mbedTLS's own code */
} pkcs1_vecs[] = {
	{ "PKCS#1 v1.5, SHA-256", PSA_ALG_SHA_256, pkcs1_sha256, 1 },
	{ "PKCS#1 v1.5, SHA-384", PSA_ALG_SHA_384, pkcs1_sha384, 1 },
	{ "PKCS#1 v1.5, SHA-512", PSA_ALG_SHA_512, pkcs1_sha512, 1 },
	{ "PKCS#1 v1.5, SHA-1", PSA_ALG_SHA_1, pkcs1_sha1, 0 },
};

/* Each hash: the signature OpenSSL made, byte for byte; it verifies, and
 * not for another message; a hash of the wrong length and a signature
 * buffer one byte short are refused. */
static void test_rsa_pkcs1(void **state)
{
	psa_key_id_t k;

	(void)state;
	k = import_key(RSA_PAIR, RSA_SIGN, PSA_ALG_RSA_PKCS1V15_SIGN(PSA_ALG_ANY_HASH), rsa2048_der,
	               sizeof rsa2048_der);
	for (size_t i = 0; i < ARRAY_LEN(pkcs1_vecs); i++) {
		psa_algorithm_t alg = PSA_ALG_RSA_PKCS1V15_SIGN(pkcs1_vecs[i].hash);
		const char *name = pkcs1_vecs[i].name;
		uint8_t h[64], h2[64], sig[300];
		size_t hlen = hash(pkcs1_vecs[i].hash, rsa_msg, h, sizeof h), n = 0;

		hash(pkcs1_vecs[i].hash, "another message", h2, sizeof h2);
		assert_status(psa_sign_hash(k, alg, h, hlen, sig, sizeof sig, &n), PSA_SUCCESS, name);
		assert_len(n, 256, name);
		assert_bytes(sig, pkcs1_vecs[i].sig, 256, name);
		assert_status(psa_verify_hash(k, alg, h, hlen, sig, n), PSA_SUCCESS, name);
		assert_status(psa_verify_hash(k, alg, h2, hlen, sig, n), PSA_ERROR_INVALID_SIGNATURE,
		              name);
		assert_status(psa_sign_hash(k, alg, h, hlen - 1, sig, sizeof sig, &n),
		              PSA_ERROR_INVALID_ARGUMENT, name);
		assert_status(psa_sign_hash(k, alg, h, hlen + 1, sig, sizeof sig, &n),
		              PSA_ERROR_INVALID_ARGUMENT, name);
		assert_status(psa_sign_hash(k, alg, h, hlen, sig, 255, &n), PSA_ERROR_BUFFER_TOO_SMALL,
		              name);
	}
	psa_destroy_key(k);
}

static const psa_algorithm_t pss_hashes[] = { PSA_ALG_SHA_256, PSA_ALG_SHA_384, PSA_ALG_SHA_512 };

/* PSS, salt as long as the hash (what PSA_ALG_RSA_PSS means for a 2048-bit
 * key): two signatures differ (random salt), both verify with mbedTLS's
 * check of that salt length, not for another message; a hash of the wrong
 * length is refused. PSS with any salt (which the driver leaves to
 * mbedTLS) verifies too. */
static void test_rsa_pss(void **state)
{
	psa_key_id_t k, kany;

	(void)state;
	k = import_key(RSA_PAIR, RSA_SIGN, PSA_ALG_RSA_PSS(PSA_ALG_ANY_HASH), rsa2048_der,
	               sizeof rsa2048_der);
	kany = import_key(RSA_PAIR, RSA_SIGN, PSA_ALG_RSA_PSS_ANY_SALT(PSA_ALG_ANY_HASH), rsa2048_der,
	                  sizeof rsa2048_der);
	for (size_t i = 0; i < ARRAY_LEN(pss_hashes); i++) {
		psa_algorithm_t alg = PSA_ALG_RSA_PSS(pss_hashes[i]);
		psa_algorithm_t any = PSA_ALG_RSA_PSS_ANY_SALT(pss_hashes[i]);
		uint8_t h[64], h2[64], s1[256], s2[256];
		size_t hlen = hash(pss_hashes[i], rsa_msg, h, sizeof h), n = 0;

		hash(pss_hashes[i], "another message", h2, sizeof h2);
		assert_status(psa_sign_hash(k, alg, h, hlen, s1, sizeof s1, &n), PSA_SUCCESS, "PSS");
		assert_len(n, 256, "PSS");
		assert_status(psa_sign_hash(k, alg, h, hlen, s2, sizeof s2, &n), PSA_SUCCESS, "PSS");
		assert_len(n, 256, "PSS");
		assert_true(memcmp(s1, s2, 256) != 0);
		assert_status(psa_verify_hash(k, alg, h, hlen, s1, 256), PSA_SUCCESS, "PSS");
		assert_status(psa_verify_hash(k, alg, h, hlen, s2, 256), PSA_SUCCESS, "PSS");
		assert_status(psa_verify_hash(k, alg, h2, hlen, s1, 256), PSA_ERROR_INVALID_SIGNATURE,
		              "PSS");
		s1[100] ^= 0x01;
		assert_status(psa_verify_hash(k, alg, h, hlen, s1, 256), PSA_ERROR_INVALID_SIGNATURE,
		              "PSS");
		assert_status(psa_sign_hash(k, alg, h, hlen - 1, s1, sizeof s1, &n),
		              PSA_ERROR_INVALID_ARGUMENT, "PSS");
		assert_status(psa_sign_hash(k, alg, h, hlen + 1, s1, sizeof s1, &n),
		              PSA_ERROR_INVALID_ARGUMENT, "PSS");

		assert_status(psa_sign_hash(kany, any, h, hlen, s1, sizeof s1, &n), PSA_SUCCESS,
		              "PSS, any salt");
		assert_status(psa_verify_hash(kany, any, h, hlen, s1, n), PSA_SUCCESS, "PSS, any salt");
		assert_status(psa_verify_hash(kany, any, h2, hlen, s1, n), PSA_ERROR_INVALID_SIGNATURE,
		              "PSS, any salt");
	}
	psa_destroy_key(k);
	psa_destroy_key(kany);
}

/* PSA_ALG_RSA_PSS on a key too small for a salt as long as the hash
 * (1024 bits, SHA-512: 128 < 64 + 64 + 2 bytes): mbedTLS takes the longest
 * salt that fits (psa_crypto_rsa.c, rsa_pss_expected_salt_len), and its
 * verify expects that one. The driver leaves such keys to mbedTLS (it
 * used to ask libcrypto for a salt of the hash's length and fail). */
static void test_rsa_pss_short_salt(void **state)
{
	uint8_t h[64], sig[128];
	size_t hlen, n = 0;
	psa_key_id_t k;

	(void)state;
	k = import_key(RSA_PAIR, RSA_SIGN, PSA_ALG_RSA_PSS(PSA_ALG_SHA_512), rsa1024_der,
	               sizeof rsa1024_der);
	hlen = hash(PSA_ALG_SHA_512, rsa_msg, h, sizeof h);
	assert_status(psa_sign_hash(k, PSA_ALG_RSA_PSS(PSA_ALG_SHA_512), h, hlen, sig, sizeof sig, &n),
	              PSA_SUCCESS, "RSA-1024, PSS, SHA-512");
	assert_len(n, 128, "RSA-1024, PSS, SHA-512");
	assert_status(psa_verify_hash(k, PSA_ALG_RSA_PSS(PSA_ALG_SHA_512), h, hlen, sig, n),
	              PSA_SUCCESS, "RSA-1024, PSS, SHA-512");
	psa_destroy_key(k);
}

/* ---- threads ---- */

#define WORKERS 4
#define WORKER_AEAD 2000              /* encrypt/decrypt pairs each */
#define WORKER_X25519 100             /* RFC 7748 agreements, and generated pairs */

struct worker {
	int id;
	const struct aead_data *rows;
	size_t nrows;
	const uint8_t *alice, *bob, *alice_pub, *bob_pub, *shared;
	int failures;
	char why[160];
};

static void worker_fail(struct worker *w, const char *what, const char *name, psa_status_t st)
{
	if (w->failures++ == 0)
		snprintf(w->why, sizeof w->why, "thread %d: %s (%s): status %d", w->id, what, name,
		         (int)st);
}

/* One X25519 round: the RFC 7748 secret (in one direction or the other),
 * then two generated pairs agreeing both ways. */
static void worker_x25519(struct worker *w, psa_key_id_t ka, psa_key_id_t kb, int round)
{
	psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;
	psa_key_id_t g1 = 0, g2 = 0;
	uint8_t out[32], p1[32], p2[32], s1[32], s2[32];
	size_t n = 0;
	psa_status_t st;

	st = round & 1 ? psa_raw_key_agreement(PSA_ALG_ECDH, ka, w->bob_pub, 32, out, 32, &n)
	               : psa_raw_key_agreement(PSA_ALG_ECDH, kb, w->alice_pub, 32, out, 32, &n);
	if (st != PSA_SUCCESS || n != 32 || memcmp(out, w->shared, 32) != 0)
		worker_fail(w, "RFC 7748 agreement", "X25519", st);

	psa_set_key_type(&a, X25519_PAIR);
	psa_set_key_bits(&a, 255);
	psa_set_key_usage_flags(&a, PSA_KEY_USAGE_DERIVE);
	psa_set_key_algorithm(&a, PSA_ALG_ECDH);
	if ((st = psa_generate_key(&a, &g1)) != PSA_SUCCESS ||
	    (st = psa_generate_key(&a, &g2)) != PSA_SUCCESS ||
	    (st = psa_export_public_key(g1, p1, 32, &n)) != PSA_SUCCESS ||
	    (st = psa_export_public_key(g2, p2, 32, &n)) != PSA_SUCCESS ||
	    (st = psa_raw_key_agreement(PSA_ALG_ECDH, g1, p2, 32, s1, 32, &n)) != PSA_SUCCESS ||
	    (st = psa_raw_key_agreement(PSA_ALG_ECDH, g2, p1, 32, s2, 32, &n)) != PSA_SUCCESS ||
	    memcmp(s1, s2, 32) != 0 || memcmp(p1, p2, 32) == 0)
		worker_fail(w, "generated agreement", "X25519", st);
	psa_destroy_key(g1);
	psa_destroy_key(g2);
}

/* A thread: its own PSA keys for every AEAD row and for Alice and Bob;
 * each record the row's exact ciphertext and tag and back, the threads
 * starting at different rows (different keys at any moment); an X25519
 * round every 20 records. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	psa_key_id_t keys[ARRAY_LEN(aead_vecs)], ka = 0, kb = 0;
	psa_status_t st;

	for (size_t r = 0; r < w->nrows; r++) {
		const struct aead_data *d = &w->rows[r];
		keys[r] = 0;
		st = try_import(d->v->type, PSA_KEY_USAGE_ENCRYPT | PSA_KEY_USAGE_DECRYPT, d->v->alg,
		                d->key, d->key_len, &keys[r]);
		if (st != PSA_SUCCESS)
			worker_fail(w, "import", d->v->name, st);
	}
	if ((st = try_import(X25519_PAIR, PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH, w->alice, 32, &ka)) ||
	    (st = try_import(X25519_PAIR, PSA_KEY_USAGE_DERIVE, PSA_ALG_ECDH, w->bob, 32, &kb)))
		worker_fail(w, "import", "X25519", st);

	for (int j = 0; j < WORKER_AEAD && w->failures == 0; j++) {
		size_t r = ((size_t)w->id * 3 + (size_t)j) % w->nrows;
		const struct aead_data *d = &w->rows[r];
		uint8_t out[300], back[300];
		size_t n = 0, m = 0;

		st = psa_aead_encrypt(keys[r], d->v->alg, d->nonce, d->nonce_len, d->aad, d->aad_len,
		                      d->pt, d->len, out, sizeof out, &n);
		if (st != PSA_SUCCESS || n != d->len + d->tag_len || memcmp(out, d->ct, d->len) != 0 ||
		    memcmp(out + d->len, d->tag, d->tag_len) != 0)
			worker_fail(w, "encrypt", d->v->name, st);
		st = psa_aead_decrypt(keys[r], d->v->alg, d->nonce, d->nonce_len, d->aad, d->aad_len,
		                      out, n, back, sizeof back, &m);
		if (st != PSA_SUCCESS || m != d->len || memcmp(back, d->pt, d->len) != 0)
			worker_fail(w, "decrypt", d->v->name, st);
		if (j % (WORKER_AEAD / WORKER_X25519) == 0)
			worker_x25519(w, ka, kb, j / (WORKER_AEAD / WORKER_X25519));
	}
	for (size_t r = 0; r < w->nrows; r++)
		psa_destroy_key(keys[r]);
	psa_destroy_key(ka);
	psa_destroy_key(kb);
	return NULL;
}

/* Four threads at once, every answer exact (the driver keeps its cipher
 * contexts and key pairs per thread). */
static void test_threads(void **state)
{
	static struct aead_data rows[ARRAY_LEN(aead_vecs)];
	uint8_t alice[32], bob[32], alice_pub[32], bob_pub[32], shared[32];
	struct worker w[WORKERS];
	pthread_t t[WORKERS];

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(aead_vecs); i++)
		decode_aead(&aead_vecs[i], &rows[i]);
	unhex(X_ALICE_PRIV, alice, 32);
	unhex(X_BOB_PRIV, bob, 32);
	unhex(X_ALICE_PUB, alice_pub, 32);
	unhex(X_BOB_PUB, bob_pub, 32);
	unhex(X_SHARED, shared, 32);
	for (int i = 0; i < WORKERS; i++) {
		w[i] = (struct worker){ .id = i, .rows = rows, .nrows = ARRAY_LEN(rows),
		                        .alice = alice, .bob = bob, .alice_pub = alice_pub,
		                        .bob_pub = bob_pub, .shared = shared };
		assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
	}
	for (int i = 0; i < WORKERS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < WORKERS; i++)
		if (w[i].failures)
			fail_msg("%s (%d failures)", w[i].why, w[i].failures);
}

/* ---- the driver itself (CRYPTO=openssl) ---- */

#if defined(MOAT_PSA_OSSL)

/* mbedTLS's own code beneath the driver (library/psa_crypto_aead.h,
 * psa_crypto_ecp.h: not installed headers), to hold the driver's answers
 * against. */
psa_status_t mbedtls_psa_aead_encrypt(const psa_key_attributes_t *attributes,
                                      const uint8_t *key_buffer, size_t key_buffer_size,
                                      psa_algorithm_t alg, const uint8_t *nonce,
                                      size_t nonce_length, const uint8_t *additional_data,
                                      size_t additional_data_length, const uint8_t *plaintext,
                                      size_t plaintext_length, uint8_t *ciphertext,
                                      size_t ciphertext_size, size_t *ciphertext_length);
psa_status_t mbedtls_psa_aead_decrypt(const psa_key_attributes_t *attributes,
                                      const uint8_t *key_buffer, size_t key_buffer_size,
                                      psa_algorithm_t alg, const uint8_t *nonce,
                                      size_t nonce_length, const uint8_t *additional_data,
                                      size_t additional_data_length, const uint8_t *ciphertext,
                                      size_t ciphertext_length, uint8_t *plaintext,
                                      size_t plaintext_size, size_t *plaintext_length);
psa_status_t mbedtls_psa_ecp_export_public_key(const psa_key_attributes_t *attributes,
                                               const uint8_t *key_buffer, size_t key_buffer_size,
                                               uint8_t *data, size_t data_size,
                                               size_t *data_length);
psa_status_t mbedtls_psa_key_agreement_ecdh(const psa_key_attributes_t *attributes,
                                            const uint8_t *key_buffer, size_t key_buffer_size,
                                            psa_algorithm_t alg, const uint8_t *peer_key,
                                            size_t peer_key_length, uint8_t *shared_secret,
                                            size_t shared_secret_size,
                                            size_t *shared_secret_length);

static psa_key_attributes_t attrs(psa_key_type_t type, size_t bits)
{
	psa_key_attributes_t a = PSA_KEY_ATTRIBUTES_INIT;

	psa_set_key_type(&a, type);
	psa_set_key_bits(&a, bits);
	return a;
}

/* After a refused decryption the output holds no plaintext: zeros, or
 * what was there before (fill, or the ciphertext when in place). */
static void assert_no_plaintext(const uint8_t *out, size_t len, const uint8_t *before,
                                const char *what)
{
	if (!all_bytes(out, len, 0) && memcmp(out, before, len) != 0)
		fail_msg("%s: output neither wiped nor untouched", what);
}

/* Every row the driver takes, called directly: exact bytes both ways,
 * separate buffers and in place; a changed tag, ciphertext or AAD is
 * PSA_ERROR_INVALID_SIGNATURE with no plaintext left behind; short
 * buffers are refused. The rows it leaves to mbedTLS answer
 * PSA_ERROR_NOT_SUPPORTED both ways. */
static void test_driver_aead(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(aead_vecs); i++) {
		struct aead_data d;
		psa_key_attributes_t a;
		uint8_t sealed[300], out[300], buf[300], fill[300], aad[32];
		size_t n = 0, size;
		const char *name = aead_vecs[i].name;

		decode_aead(&aead_vecs[i], &d);
		a = attrs(d.v->type, 8 * d.key_len);
		size = d.len + d.tag_len;
		memcpy(sealed, d.ct, d.len);
		memcpy(sealed + d.len, d.tag, d.tag_len);
		if (!d.v->driver) {
			assert_status(tls_ossl_aead_encrypt(&a, d.key, d.key_len, d.v->alg, d.nonce,
			                                    d.nonce_len, d.aad, d.aad_len, d.pt, d.len, out,
			                                    sizeof out, &n),
			              PSA_ERROR_NOT_SUPPORTED, name);
			assert_status(tls_ossl_aead_decrypt(&a, d.key, d.key_len, d.v->alg, d.nonce,
			                                    d.nonce_len, d.aad, d.aad_len, sealed, size, out,
			                                    sizeof out, &n),
			              PSA_ERROR_NOT_SUPPORTED, name);
			continue;
		}

		assert_status(tls_ossl_aead_encrypt(&a, d.key, d.key_len, d.v->alg, d.nonce, d.nonce_len,
		                                    d.aad, d.aad_len, d.pt, d.len, out, size, &n),
		              PSA_SUCCESS, name);
		assert_len(n, size, name);
		assert_bytes(out, sealed, size, name);
		assert_status(tls_ossl_aead_decrypt(&a, d.key, d.key_len, d.v->alg, d.nonce, d.nonce_len,
		                                    d.aad, d.aad_len, sealed, size, out, d.len, &n),
		              PSA_SUCCESS, name);
		assert_len(n, d.len, name);
		assert_bytes(out, d.pt, d.len, name);

		memcpy(buf, d.pt, d.len);
		assert_status(tls_ossl_aead_encrypt(&a, d.key, d.key_len, d.v->alg, d.nonce, d.nonce_len,
		                                    d.aad, d.aad_len, buf, d.len, buf, size, &n),
		              PSA_SUCCESS, name);
		assert_bytes(buf, sealed, size, "in place");
		assert_status(tls_ossl_aead_decrypt(&a, d.key, d.key_len, d.v->alg, d.nonce, d.nonce_len,
		                                    d.aad, d.aad_len, buf, size, buf, size, &n),
		              PSA_SUCCESS, name);
		assert_len(n, d.len, name);
		assert_bytes(buf, d.pt, d.len, "in place");

		/* tag, then ciphertext, then AAD */
		for (int t = 0; t < 3; t++) {
			size_t aad_len = d.aad_len;

			memcpy(buf, sealed, size);
			memcpy(aad, d.aad, d.aad_len);
			if (t == 0)
				buf[size - 1] ^= 0x01;
			else if (t == 1 && d.len)
				buf[d.len / 2] ^= 0x40;
			else if (t == 1)
				continue;
			else if (aad_len)
				aad[0] ^= 0x01;
			else
				aad[aad_len++] = 0x17;
			memset(out, 0xa5, sizeof out);
			memset(fill, 0xa5, sizeof fill);
			assert_status(tls_ossl_aead_decrypt(&a, d.key, d.key_len, d.v->alg, d.nonce,
			                                    d.nonce_len, aad, aad_len, buf, size, out,
			                                    d.len, &n),
			              PSA_ERROR_INVALID_SIGNATURE, name);
			assert_no_plaintext(out, d.len, fill, name);
			memcpy(fill, buf, size);
			assert_status(tls_ossl_aead_decrypt(&a, d.key, d.key_len, d.v->alg, d.nonce,
			                                    d.nonce_len, aad, aad_len, buf, size, buf, size,
			                                    &n),
			              PSA_ERROR_INVALID_SIGNATURE, name);
			assert_no_plaintext(buf, d.len, fill, name);
		}

		assert_status(tls_ossl_aead_encrypt(&a, d.key, d.key_len, d.v->alg, d.nonce, d.nonce_len,
		                                    d.aad, d.aad_len, d.pt, d.len, out, size - 1, &n),
		              PSA_ERROR_BUFFER_TOO_SMALL, name);
		if (d.len)
			assert_status(tls_ossl_aead_decrypt(&a, d.key, d.key_len, d.v->alg, d.nonce,
			                                    d.nonce_len, d.aad, d.aad_len, sealed, size, out,
			                                    d.len - 1, &n),
			              PSA_ERROR_BUFFER_TOO_SMALL, name);
		n = 0;
		assert_int_not_equal(tls_ossl_aead_decrypt(&a, d.key, d.key_len, d.v->alg, d.nonce,
		                                           d.nonce_len, d.aad, d.aad_len, d.tag,
		                                           d.tag_len - 1, out, sizeof out, &n),
		                     PSA_SUCCESS);
	}
}

/* Other algorithms and sizes the driver leaves alone. */
static void test_driver_aead_declines(void **state)
{
	static const uint8_t key[32], nonce[16], pt[16];
	static const struct {
		const char *name;
		psa_key_type_t type;
		size_t key_len;
		psa_algorithm_t alg;
		size_t nonce_len;
	} rows[] = {
		{ "AES-128-GCM, 8-byte nonce", PSA_KEY_TYPE_AES, 16, PSA_ALG_GCM, 8 },
		{ "AES-256-GCM, 16-byte nonce", PSA_KEY_TYPE_AES, 32, PSA_ALG_GCM, 16 },
		{ "AES-128-GCM, 4-byte tag", PSA_KEY_TYPE_AES, 16, GCM_SHORT(4), 12 },
		{ "AES-128-GCM, 15-byte tag", PSA_KEY_TYPE_AES, 16, GCM_SHORT(15), 12 },
		{ "AES-192-GCM", PSA_KEY_TYPE_AES, 24, PSA_ALG_GCM, 12 },
		{ "AES-128-CCM", PSA_KEY_TYPE_AES, 16, PSA_ALG_CCM, 12 },
		{ "ChaCha20-Poly1305, 16-byte key", PSA_KEY_TYPE_CHACHA20, 16, PSA_ALG_CHACHA20_POLY1305,
		  12 },
		{ "ChaCha20 key, GCM", PSA_KEY_TYPE_CHACHA20, 32, PSA_ALG_GCM, 12 },
		{ "AES key, ChaCha20-Poly1305", PSA_KEY_TYPE_AES, 32, PSA_ALG_CHACHA20_POLY1305, 12 },
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		psa_key_attributes_t a = attrs(rows[i].type, 8 * rows[i].key_len);
		uint8_t out[64];
		size_t n = 0;

		assert_status(tls_ossl_aead_encrypt(&a, key, rows[i].key_len, rows[i].alg, nonce,
		                                    rows[i].nonce_len, NULL, 0, pt, sizeof pt, out,
		                                    sizeof out, &n),
		              PSA_ERROR_NOT_SUPPORTED, rows[i].name);
		assert_status(tls_ossl_aead_decrypt(&a, key, rows[i].key_len, rows[i].alg, nonce,
		                                    rows[i].nonce_len, NULL, 0, out, 32, out + 32, 32, &n),
		              PSA_ERROR_NOT_SUPPORTED, rows[i].name);
	}
}

#define DIFF_ROUNDS 300

/* Random records, driver against mbedTLS's AEAD code: the same bytes out,
 * each opens what the other sealed, a flipped bit refused by both.
 * Lengths around block edges and up to a full TLS record. */
static void test_driver_aead_vs_builtin(void **state)
{
	static const size_t lens[] = { 0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 257,
	                               1000, 4095, 4096, 16384, 16401 };
	static uint8_t pt[16401], c1[16401 + 16], c2[16401 + 16], back[16401];
	static const struct {
		psa_key_type_t type;
		size_t key_len;
		psa_algorithm_t alg;
	} kinds[] = {
		{ PSA_KEY_TYPE_AES, 16, PSA_ALG_GCM },
		{ PSA_KEY_TYPE_AES, 32, PSA_ALG_GCM },
		{ PSA_KEY_TYPE_CHACHA20, 32, PSA_ALG_CHACHA20_POLY1305 },
	};

	(void)state;
	for (size_t k = 0; k < ARRAY_LEN(kinds); k++) {
		psa_key_attributes_t a = attrs(kinds[k].type, 8 * kinds[k].key_len);
		psa_algorithm_t alg = kinds[k].alg;

		for (int round = 0; round < DIFF_ROUNDS; round++) {
			uint8_t key[32], nonce[12], aad[48], r[4];
			size_t len, aad_len, n1 = 0, n2 = 0, m = 0;

			assert_status(psa_generate_random(r, sizeof r), PSA_SUCCESS, "random");
			len = round < (int)ARRAY_LEN(lens) ? lens[round] : (size_t)(r[0] | r[1] << 8) % 2048;
			aad_len = r[2] % sizeof aad;
			assert_status(psa_generate_random(key, sizeof key), PSA_SUCCESS, "random");
			assert_status(psa_generate_random(nonce, sizeof nonce), PSA_SUCCESS, "random");
			assert_status(psa_generate_random(aad, sizeof aad), PSA_SUCCESS, "random");
			assert_status(psa_generate_random(pt, len ? len : 1), PSA_SUCCESS, "random");

			assert_status(tls_ossl_aead_encrypt(&a, key, kinds[k].key_len, alg, nonce, 12, aad,
			                                    aad_len, pt, len, c1, sizeof c1, &n1),
			              PSA_SUCCESS, "driver");
			assert_status(mbedtls_psa_aead_encrypt(&a, key, kinds[k].key_len, alg, nonce, 12,
			                                       aad, aad_len, pt, len, c2, sizeof c2, &n2),
			              PSA_SUCCESS, "mbedTLS");
			assert_len(n1, len + 16, "driver");
			assert_len(n2, n1, "mbedTLS");
			assert_bytes(c1, c2, n1, "driver against mbedTLS");

			assert_status(tls_ossl_aead_decrypt(&a, key, kinds[k].key_len, alg, nonce, 12, aad,
			                                    aad_len, c2, n2, back, sizeof back, &m),
			              PSA_SUCCESS, "driver opens mbedTLS's");
			assert_len(m, len, "driver opens mbedTLS's");
			assert_bytes(back, pt, len, "driver opens mbedTLS's");
			assert_status(mbedtls_psa_aead_decrypt(&a, key, kinds[k].key_len, alg, nonce, 12,
			                                       aad, aad_len, c1, n1, back, sizeof back, &m),
			              PSA_SUCCESS, "mbedTLS opens the driver's");
			assert_bytes(back, pt, len, "mbedTLS opens the driver's");

			c1[r[3] % n1] ^= (uint8_t)(1u << (r[3] % 8));
			assert_status(tls_ossl_aead_decrypt(&a, key, kinds[k].key_len, alg, nonce, 12, aad,
			                                    aad_len, c1, n1, back, sizeof back, &m),
			              PSA_ERROR_INVALID_SIGNATURE, "driver, flipped bit");
			assert_status(mbedtls_psa_aead_decrypt(&a, key, kinds[k].key_len, alg, nonce, 12,
			                                       aad, aad_len, c1, n1, back, sizeof back, &m),
			              PSA_ERROR_INVALID_SIGNATURE, "mbedTLS, flipped bit");
		}
	}
}

/* The RFC vectors straight to the driver: public keys from private ones
 * (none made by it), agreement both ways; hostile peers refused by the
 * driver itself (not passed on to mbedTLS); others' keys declined. */
static void test_driver_ecdh(void **state)
{
	uint8_t alice[32], bob[32], apub[32], bpub[32], shared[32], out[100], peer[100];
	psa_key_attributes_t x = attrs(X25519_PAIR, 255);
	size_t n = 0;

	(void)state;
	unhex(X_ALICE_PRIV, alice, 32);
	unhex(X_BOB_PRIV, bob, 32);
	unhex(X_ALICE_PUB, apub, 32);
	unhex(X_BOB_PUB, bpub, 32);
	unhex(X_SHARED, shared, 32);
	assert_status(tls_ossl_export_public_key(&x, alice, 32, out, sizeof out, &n), PSA_SUCCESS,
	              "X25519");
	assert_len(n, 32, "X25519");
	assert_bytes(out, apub, 32, "Alice's public key");
	assert_status(tls_ossl_export_public_key(&x, bob, 32, out, 32, &n), PSA_SUCCESS, "X25519");
	assert_bytes(out, bpub, 32, "Bob's public key");
	assert_status(tls_ossl_export_public_key(&x, bob, 32, out, 31, &n),
	              PSA_ERROR_BUFFER_TOO_SMALL, "X25519");
	assert_status(tls_ossl_key_agreement(&x, alice, 32, PSA_ALG_ECDH, bpub, 32, out, 32, &n),
	              PSA_SUCCESS, "X25519");
	assert_len(n, 32, "X25519");
	assert_bytes(out, shared, 32, "Alice with Bob");
	assert_status(tls_ossl_key_agreement(&x, bob, 32, PSA_ALG_ECDH, apub, 32, out, 32, &n),
	              PSA_SUCCESS, "X25519");
	assert_bytes(out, shared, 32, "Bob with Alice");
	for (size_t i = 0; i < ARRAY_LEN(x25519_peers); i++) {
		size_t peer_len = unhex(x25519_peers[i].peer, peer, sizeof peer);
		psa_status_t st = tls_ossl_key_agreement(&x, alice, 32, PSA_ALG_ECDH, peer, peer_len,
		                                         out, 32, &n);

		if (x25519_peers[i].secret) {
			uint8_t want[32];
			assert_status(st, PSA_SUCCESS, x25519_peers[i].name);
			unhex(x25519_peers[i].secret, want, 32);
			assert_bytes(out, want, 32, x25519_peers[i].name);
		} else {
			assert_int_not_equal(st, PSA_SUCCESS);
			assert_int_not_equal(st, PSA_ERROR_NOT_SUPPORTED);
		}
	}

	for (size_t v = 0; v < ARRAY_LEN(ecdh_vecs); v++) {
		const struct ecdh_vec *e = &ecdh_vecs[v];
		const struct ecdh_vec *o = &ecdh_vecs[(v + 1) % ARRAY_LEN(ecdh_vecs)];
		psa_key_attributes_t a = attrs(SECP_PAIR, e->bits);
		uint8_t i[48], r[48], gi[97], gr[97], z[48], other[97];
		size_t c = e->bits / 8, pub_len = 1 + 2 * c, other_len;

		unhex(e->i, i, sizeof i);
		unhex(e->r, r, sizeof r);
		unhex(e->gi, gi, sizeof gi);
		unhex(e->gr, gr, sizeof gr);
		unhex(e->z, z, sizeof z);
		other_len = unhex(o->gr, other, sizeof other);
		assert_status(tls_ossl_export_public_key(&a, i, c, out, sizeof out, &n), PSA_SUCCESS,
		              e->name);
		assert_len(n, pub_len, e->name);
		assert_bytes(out, gi, pub_len, "g^i");
		assert_status(tls_ossl_export_public_key(&a, r, c, out, pub_len, &n), PSA_SUCCESS,
		              e->name);
		assert_bytes(out, gr, pub_len, "g^r");
		assert_status(tls_ossl_export_public_key(&a, r, c, out, pub_len - 1, &n),
		              PSA_ERROR_BUFFER_TOO_SMALL, e->name);
		assert_status(tls_ossl_key_agreement(&a, i, c, PSA_ALG_ECDH, gr, pub_len, out, c, &n),
		              PSA_SUCCESS, e->name);
		assert_len(n, c, e->name);
		assert_bytes(out, z, c, "i with g^r");
		assert_status(tls_ossl_key_agreement(&a, r, c, PSA_ALG_ECDH, gi, pub_len, out, c, &n),
		              PSA_SUCCESS, e->name);
		assert_bytes(out, z, c, "r with g^i");
		assert_status(tls_ossl_key_agreement(&a, r, c, PSA_ALG_ECDH, gi, pub_len, out, c - 1, &n),
		              PSA_ERROR_BUFFER_TOO_SMALL, e->name);
		for (int b = 0; b < B_N; b++) {
			size_t peer_len = bad_peer((enum bad_peer)b, gi, pub_len, other, other_len, peer);
			psa_status_t st = tls_ossl_key_agreement(&a, r, c, PSA_ALG_ECDH, peer, peer_len, out,
			                                         c, &n);
			char what[128];

			snprintf(what, sizeof what, "%s, %s", e->name, bad_peer_names[b]);
			if (st == PSA_SUCCESS || st == PSA_ERROR_NOT_SUPPORTED)
				fail_msg("%s: status %d from the driver", what, (int)st);
		}
		/* the public key alone is mbedTLS's to export */
		{
			psa_key_attributes_t p = attrs(SECP_PUBLIC, e->bits);
			assert_status(tls_ossl_export_public_key(&p, gi, pub_len, out, sizeof out, &n),
			              PSA_ERROR_NOT_SUPPORTED, e->name);
		}
	}
	assert_status(tls_ossl_key_agreement(&x, alice, 32, PSA_ALG_FFDH, bpub, 32, out, 32, &n),
	              PSA_ERROR_NOT_SUPPORTED, "FFDH");
}

/* Key pairs from the driver: the right size and form, the same public key
 * whether the driver still has the pair or not and as mbedTLS computes
 * it, and secrets agreed both ways equal to mbedTLS's. Curves and types
 * it does not make are declined. */
static void test_driver_generate(void **state)
{
	(void)state;
	for (size_t c = 0; c < ARRAY_LEN(curves); c++) {
		const struct curve *cv = &curves[c];
		psa_key_attributes_t a = attrs(cv->type, cv->bits);

		for (int round = 0; round < 20; round++) {
			uint8_t k1[48], k2[48], p1[97], p1again[97], p1mb[97], p2[97], s1[48], s2[48], smb[48];
			size_t n = 0;

			assert_status(tls_ossl_generate_key(&a, k1, cv->bytes, &n), PSA_SUCCESS, cv->name);
			assert_len(n, cv->bytes, cv->name);
			assert_status(tls_ossl_export_public_key(&a, k1, cv->bytes, p1, sizeof p1, &n),
			              PSA_SUCCESS, cv->name);  /* from the pair it kept */
			assert_len(n, cv->pub_len, cv->name);
			assert_status(tls_ossl_generate_key(&a, k2, cv->bytes, &n), PSA_SUCCESS, cv->name);
			assert_true(memcmp(k1, k2, cv->bytes) != 0);
			assert_status(tls_ossl_export_public_key(&a, k1, cv->bytes, p1again, sizeof p1again,
			                                         &n),
			              PSA_SUCCESS, cv->name);  /* from the private key alone */
			assert_bytes(p1again, p1, cv->pub_len, cv->name);
			assert_status(mbedtls_psa_ecp_export_public_key(&a, k1, cv->bytes, p1mb, sizeof p1mb,
			                                                &n),
			              PSA_SUCCESS, cv->name);
			assert_bytes(p1mb, p1, cv->pub_len, "driver against mbedTLS");
			assert_status(tls_ossl_export_public_key(&a, k2, cv->bytes, p2, sizeof p2, &n),
			              PSA_SUCCESS, cv->name);

			assert_status(tls_ossl_key_agreement(&a, k2, cv->bytes, PSA_ALG_ECDH, p1, cv->pub_len,
			                                     s2, sizeof s2, &n),
			              PSA_SUCCESS, cv->name);
			assert_len(n, cv->bytes, cv->name);
			assert_status(tls_ossl_key_agreement(&a, k1, cv->bytes, PSA_ALG_ECDH, p2, cv->pub_len,
			                                     s1, sizeof s1, &n),
			              PSA_SUCCESS, cv->name);
			assert_bytes(s1, s2, cv->bytes, cv->name);
			assert_status(mbedtls_psa_key_agreement_ecdh(&a, k1, cv->bytes, PSA_ALG_ECDH, p2,
			                                             cv->pub_len, smb, sizeof smb, &n),
			              PSA_SUCCESS, cv->name);
			assert_bytes(smb, s1, cv->bytes, "driver against mbedTLS");
		}
		{
			uint8_t k[48];
			size_t n = 0;
			assert_status(tls_ossl_generate_key(&a, k, cv->bytes - 1, &n),
			              PSA_ERROR_BUFFER_TOO_SMALL, cv->name);
		}
	}
	{
		static const struct {
			const char *name;
			psa_key_type_t type;
			size_t bits;
		} other[] = {
			{ "X448", X25519_PAIR, 448 },
			{ "P-521", SECP_PAIR, 521 },
			{ "secp224r1", SECP_PAIR, 224 },
			{ "brainpoolP256r1", PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_BRAINPOOL_P_R1), 256 },
			{ "secp256k1", PSA_KEY_TYPE_ECC_KEY_PAIR(PSA_ECC_FAMILY_SECP_K1), 256 },
			{ "RSA-2048", RSA_PAIR, 2048 },
			{ "AES-128", PSA_KEY_TYPE_AES, 128 },
		};
		for (size_t i = 0; i < ARRAY_LEN(other); i++) {
			psa_key_attributes_t a = attrs(other[i].type, other[i].bits);
			uint8_t k[300];
			size_t n = 0;
			assert_status(tls_ossl_generate_key(&a, k, sizeof k, &n), PSA_ERROR_NOT_SUPPORTED,
			              other[i].name);
		}
	}
}

/* Signatures straight from the driver: ECDSA with the RFC 6979 keys
 * verified by mbedTLS against RFC 6979's public keys; PKCS#1 v1.5 equal
 * to OpenSSL's command line; PSS verified by mbedTLS. Algorithms it
 * leaves to mbedTLS are declined. */
static void test_driver_sign(void **state)
{
	psa_key_attributes_t rsa = attrs(RSA_PAIR, 2048);
	psa_key_id_t kv;
	uint8_t sig[300];
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(ecdsa_vecs); i++) {
		const struct ecdsa_vec *e = &ecdsa_vecs[i];
		psa_key_attributes_t a = attrs(SECP_PAIR, e->bits);
		uint8_t d[48], pub[97], order[48], h[64];
		size_t c = e->bits / 8, hlen = hash(e->hash, "sample", h, sizeof h);

		unhex(e->d, d, sizeof d);
		unhex(e->pub, pub, sizeof pub);
		unhex(e->n, order, sizeof order);
		kv = import_key(SECP_PUBLIC, PSA_KEY_USAGE_VERIFY_HASH, PSA_ALG_ECDSA(PSA_ALG_ANY_HASH),
		                pub, 1 + 2 * c);
		assert_status(tls_ossl_sign_hash(&a, d, c, PSA_ALG_ECDSA(e->hash), h, hlen, sig,
		                                 sizeof sig, &n),
		              PSA_SUCCESS, e->name);
		assert_len(n, 2 * c, e->name);
		assert_true(in_range(sig, order, c) && in_range(sig + c, order, c));
		assert_status(psa_verify_hash(kv, PSA_ALG_ECDSA(e->hash), h, hlen, sig, n), PSA_SUCCESS,
		              e->name);
		assert_status(tls_ossl_sign_hash(&a, d, c, PSA_ALG_ECDSA(e->hash), h, hlen, sig,
		                                 2 * c - 1, &n),
		              PSA_ERROR_BUFFER_TOO_SMALL, e->name);
		assert_status(tls_ossl_sign_hash(&a, d, c, PSA_ALG_DETERMINISTIC_ECDSA(e->hash), h, hlen,
		                                 sig, sizeof sig, &n),
		              PSA_ERROR_NOT_SUPPORTED, "deterministic ECDSA");
		psa_destroy_key(kv);
	}

	kv = import_key(RSA_PAIR, RSA_SIGN, PSA_ALG_RSA_PSS(PSA_ALG_ANY_HASH), rsa2048_der,
	                sizeof rsa2048_der);
	for (size_t i = 0; i < ARRAY_LEN(pkcs1_vecs); i++) {
		psa_algorithm_t alg = PSA_ALG_RSA_PKCS1V15_SIGN(pkcs1_vecs[i].hash);
		uint8_t h[64];
		size_t hlen = hash(pkcs1_vecs[i].hash, rsa_msg, h, sizeof h);
		psa_status_t st = tls_ossl_sign_hash(&rsa, rsa2048_der, sizeof rsa2048_der, alg, h, hlen,
		                                     sig, sizeof sig, &n);

		if (!pkcs1_vecs[i].driver) {
			assert_status(st, PSA_ERROR_NOT_SUPPORTED, pkcs1_vecs[i].name);
			continue;
		}
		assert_status(st, PSA_SUCCESS, pkcs1_vecs[i].name);
		assert_len(n, 256, pkcs1_vecs[i].name);
		assert_bytes(sig, pkcs1_vecs[i].sig, 256, pkcs1_vecs[i].name);
		assert_status(tls_ossl_sign_hash(&rsa, rsa2048_der, sizeof rsa2048_der, alg, h, hlen - 1,
		                                 sig, sizeof sig, &n),
		              PSA_ERROR_INVALID_ARGUMENT, pkcs1_vecs[i].name);
		assert_status(tls_ossl_sign_hash(&rsa, rsa2048_der, sizeof rsa2048_der, alg, h, hlen,
		                                 sig, 255, &n),
		              PSA_ERROR_BUFFER_TOO_SMALL, pkcs1_vecs[i].name);
	}
	for (size_t i = 0; i < ARRAY_LEN(pss_hashes); i++) {
		psa_algorithm_t alg = PSA_ALG_RSA_PSS(pss_hashes[i]);
		uint8_t h[64];
		size_t hlen = hash(pss_hashes[i], rsa_msg, h, sizeof h);

		assert_status(tls_ossl_sign_hash(&rsa, rsa2048_der, sizeof rsa2048_der, alg, h, hlen, sig,
		                                 sizeof sig, &n),
		              PSA_SUCCESS, "PSS");
		assert_len(n, 256, "PSS");
		assert_status(psa_verify_hash(kv, alg, h, hlen, sig, n), PSA_SUCCESS, "PSS");
		assert_status(tls_ossl_sign_hash(&rsa, rsa2048_der, sizeof rsa2048_der,
		                                 PSA_ALG_RSA_PSS_ANY_SALT(pss_hashes[i]), h, hlen, sig,
		                                 sizeof sig, &n),
		              PSA_ERROR_NOT_SUPPORTED, "PSS, any salt");
	}
	psa_destroy_key(kv);
	{
		static const uint8_t h[32];
		psa_key_attributes_t x = attrs(X25519_PAIR, 255);
		uint8_t x25519[32];

		unhex(X_ALICE_PRIV, x25519, 32);
		assert_status(tls_ossl_sign_hash(&rsa, rsa2048_der, sizeof rsa2048_der,
		                                 PSA_ALG_RSA_PKCS1V15_SIGN_RAW, h, 32, sig, sizeof sig, &n),
		              PSA_ERROR_NOT_SUPPORTED, "PKCS#1 v1.5, raw");
		assert_status(tls_ossl_sign_hash(&rsa, rsa2048_der, sizeof rsa2048_der,
		                                 PSA_ALG_RSA_PKCS1V15_SIGN(PSA_ALG_SHA_224), h, 28, sig,
		                                 sizeof sig, &n),
		              PSA_ERROR_NOT_SUPPORTED, "PKCS#1 v1.5, SHA-224");
		assert_status(tls_ossl_sign_hash(&x, x25519, 32, PSA_ALG_ECDSA(PSA_ALG_SHA_256), h, 32,
		                                 sig, sizeof sig, &n),
		              PSA_ERROR_NOT_SUPPORTED, "ECDSA with an X25519 key");
	}
}

#endif /* MOAT_PSA_OSSL */

static int setup(void **state)
{
	(void)state;
	return psa_crypto_init() == PSA_SUCCESS ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	mbedtls_psa_crypto_free();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aead_vectors),
		cmocka_unit_test(test_aead_tampered),
		cmocka_unit_test(test_aead_in_place),
		cmocka_unit_test(test_aead_empty),
		cmocka_unit_test(test_x25519),
		cmocka_unit_test(test_ecdh_nist),
		cmocka_unit_test(test_generated_keys),
		cmocka_unit_test(test_ecdsa),
		cmocka_unit_test(test_ecdsa_many_keys),
		cmocka_unit_test(test_rsa_pkcs1),
		cmocka_unit_test(test_rsa_pss),
		cmocka_unit_test(test_rsa_pss_short_salt),
		cmocka_unit_test(test_threads),
#if defined(MOAT_PSA_OSSL)
		cmocka_unit_test(test_driver_aead),
		cmocka_unit_test(test_driver_aead_declines),
		cmocka_unit_test(test_driver_aead_vs_builtin),
		cmocka_unit_test(test_driver_ecdh),
		cmocka_unit_test(test_driver_generate),
		cmocka_unit_test(test_driver_sign),
#endif
	};
	return cmocka_run_group_tests_name("crypto", tests, setup, teardown);
}
