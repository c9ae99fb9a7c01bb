/* tls_ossl: see tls_ossl.h. */
#define OPENSSL_API_COMPAT 30000      /* no deprecated OpenSSL API */
#define OPENSSL_NO_DEPRECATED

#include "tls_ossl.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

/* ---- what the driver takes ---- */

enum aead_kind { AEAD_AES128_GCM, AEAD_AES256_GCM, AEAD_CHACHA20_POLY1305, AEAD_N };
enum curve { CURVE_X25519, CURVE_P256, CURVE_P384, CURVE_N, CURVE_NONE = -1 };

#define TAG_LEN 16
#define NONCE_LEN 12
#define KEY_CACHE 4                   /* signing keys kept per thread */

struct curve_info {
	const char *group;                /* OpenSSL's name */
	int nid;
	size_t bytes;                     /* private key and coordinate size */
};

static const struct curve_info curves[CURVE_N] = {
	[CURVE_X25519] = { "X25519", NID_X25519, 32 },
	[CURVE_P256] = { "P-256", NID_X9_62_prime256v1, 32 },
	[CURVE_P384] = { "P-384", NID_secp384r1, 48 },
};

/* Fetched once: explicit fetches spare libcrypto a look-up per use. */
static struct {
	pthread_once_t once;
	int ok;
	EVP_CIPHER *aead[AEAD_N];
	EVP_MD *sha256, *sha384, *sha512;
	EC_GROUP *group[CURVE_N];         /* the Weierstrass ones */
	pthread_key_t thread;
} g = { .once = PTHREAD_ONCE_INIT };

/* A signing key as libcrypto holds it, made from the PSA key's bytes. */
struct cached_key {
	uint8_t *bytes;                   /* a copy, to recognise it (wiped) */
	size_t len;
	psa_key_type_t type;
	EVP_PKEY *pkey;
	EVP_PKEY_CTX *sign;               /* set up for signing once: no fetch per signature */
	unsigned long last;               /* use count when last used (LRU) */
};

/* One thread's contexts: nothing here is shared between threads. */
struct thread_state {
	EVP_CIPHER_CTX *aead[AEAD_N][2];  /* [kind][encrypt] */
	struct cached_key keys[KEY_CACHE];
	unsigned long uses;
	BN_CTX *bn;
	/* the last key pair generated, with its public key, for the export
	 * and the key agreement that follow (then gone) */
	uint8_t gen_priv[48];
	size_t gen_len;
	enum curve gen_curve;
	EVP_PKEY *gen_pkey;
};

static void drop_generated(struct thread_state *t)
{
	EVP_PKEY_free(t->gen_pkey);
	t->gen_pkey = NULL;
	OPENSSL_cleanse(t->gen_priv, sizeof t->gen_priv);
	t->gen_len = 0;
}

static void drop_key(struct cached_key *k)
{
	EVP_PKEY_CTX_free(k->sign);
	EVP_PKEY_free(k->pkey);
	if (k->bytes) {
		OPENSSL_cleanse(k->bytes, k->len);
		free(k->bytes);
	}
	memset(k, 0, sizeof *k);
}

/* A thread ends: its contexts and keys go with it. */
static void thread_end(void *p)
{
	struct thread_state *t = p;

	for (int i = 0; i < AEAD_N; i++)
		for (int e = 0; e < 2; e++)
			EVP_CIPHER_CTX_free(t->aead[i][e]);
	for (int i = 0; i < KEY_CACHE; i++)
		drop_key(&t->keys[i]);
	drop_generated(t);
	BN_CTX_free(t->bn);
	free(t);
}

static void init_once(void)
{
	static const char *const names[AEAD_N] = {
		[AEAD_AES128_GCM] = "AES-128-GCM", [AEAD_AES256_GCM] = "AES-256-GCM",
		[AEAD_CHACHA20_POLY1305] = "ChaCha20-Poly1305",
	};
	int ok = pthread_key_create(&g.thread, thread_end) == 0;

	for (int i = 0; ok && i < AEAD_N; i++)
		ok = (g.aead[i] = EVP_CIPHER_fetch(NULL, names[i], NULL)) != NULL;
	if (ok) {
		g.sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
		g.sha384 = EVP_MD_fetch(NULL, "SHA2-384", NULL);
		g.sha512 = EVP_MD_fetch(NULL, "SHA2-512", NULL);
		g.group[CURVE_P256] = EC_GROUP_new_by_curve_name(curves[CURVE_P256].nid);
		g.group[CURVE_P384] = EC_GROUP_new_by_curve_name(curves[CURVE_P384].nid);
		ok = g.sha256 && g.sha384 && g.sha512 && g.group[CURVE_P256] && g.group[CURVE_P384];
	}
	g.ok = ok;
}

/* This thread's state, made on first use; NULL when libcrypto could not
 * give what the driver needs (then mbedTLS's own code runs). */
static struct thread_state *state(void)
{
	struct thread_state *t;

	pthread_once(&g.once, init_once);
	if (!g.ok)
		return NULL;
	t = pthread_getspecific(g.thread);
	if (t)
		return t;
	t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->bn = BN_CTX_secure_new();
	if (!t->bn || pthread_setspecific(g.thread, t) != 0) {
		BN_CTX_free(t->bn);
		free(t);
		return NULL;
	}
	t->gen_curve = CURVE_NONE;
	return t;
}

const char *tls_ossl_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION_STRING);
}

/* ---- AEAD ---- */

/* Which AEAD a key and algorithm are, or -1 for one the driver leaves to
 * mbedTLS (a shortened tag, AES-192, CCM, ...). */
static int aead_kind_of(const psa_key_attributes_t *a, size_t key_len, psa_algorithm_t alg)
{
	psa_key_type_t type = psa_get_key_type(a);
	psa_algorithm_t base = PSA_ALG_AEAD_WITH_DEFAULT_LENGTH_TAG(alg);

	if (PSA_ALG_AEAD_GET_TAG_LENGTH(alg) != TAG_LEN)
		return -1;
	if (type == PSA_KEY_TYPE_AES && base == PSA_ALG_GCM)
		return key_len == 16 ? AEAD_AES128_GCM : key_len == 32 ? AEAD_AES256_GCM : -1;
	if (type == PSA_KEY_TYPE_CHACHA20 && base == PSA_ALG_CHACHA20_POLY1305 && key_len == 32)
		return AEAD_CHACHA20_POLY1305;
	return -1;
}

/* The thread's context for kind and direction, set to the cipher once. */
static EVP_CIPHER_CTX *aead_ctx(struct thread_state *t, int kind, int enc)
{
	EVP_CIPHER_CTX *c = t->aead[kind][enc];

	if (c)
		return c;
	c = EVP_CIPHER_CTX_new();
	if (!c)
		return NULL;
	if (EVP_CipherInit_ex2(c, g.aead[kind], NULL, NULL, enc, NULL) != 1) {
		EVP_CIPHER_CTX_free(c);
		return NULL;
	}
	t->aead[kind][enc] = c;
	return c;
}

/* Leaves no record key in the context between records. */
static void aead_forget(EVP_CIPHER_CTX *c, int enc)
{
	static const uint8_t zero[32];

	(void)EVP_CipherInit_ex2(c, NULL, zero, NULL, enc, NULL);
}

/* One AEAD operation: in (len bytes) to out, the tag after the output
 * when encrypting, checked from after the input when decrypting. */
static psa_status_t aead(int enc, const psa_key_attributes_t *a, const uint8_t *key,
                         size_t key_len, psa_algorithm_t alg, const uint8_t *nonce,
                         size_t nonce_len, const uint8_t *ad, size_t ad_len, const uint8_t *in,
                         size_t len, uint8_t *out)
{
	int kind = aead_kind_of(a, key_len, alg), n;
	struct thread_state *t;
	EVP_CIPHER_CTX *c;
	psa_status_t st = PSA_ERROR_CORRUPTION_DETECTED;

	if (kind < 0 || nonce_len != NONCE_LEN || len > INT_MAX || ad_len > INT_MAX)
		return PSA_ERROR_NOT_SUPPORTED;
	if (!(t = state()) || !(c = aead_ctx(t, kind, enc)))
		return PSA_ERROR_NOT_SUPPORTED;
	if (EVP_CipherInit_ex2(c, NULL, key, nonce, enc, NULL) != 1)
		return PSA_ERROR_NOT_SUPPORTED;
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, (void *)(in + len)) != 1)
		goto out;
	if ((ad_len && EVP_CipherUpdate(c, NULL, &n, ad, (int)ad_len) != 1) ||
	    (len && EVP_CipherUpdate(c, out, &n, in, (int)len) != 1))
		goto out;
	if (EVP_CipherFinal_ex(c, out + len, &n) != 1) {
		st = enc ? PSA_ERROR_CORRUPTION_DETECTED : PSA_ERROR_INVALID_SIGNATURE;
		goto out;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, out + len) != 1)
		goto out;
	st = PSA_SUCCESS;
out:
	if (st != PSA_SUCCESS && len)
		OPENSSL_cleanse(out, len);    /* no unauthenticated plaintext */
	aead_forget(c, enc);
	return st;
}

psa_status_t tls_ossl_aead_encrypt(const psa_key_attributes_t *attributes,
                                   const uint8_t *key_buffer, size_t key_buffer_size,
                                   psa_algorithm_t alg, const uint8_t *nonce, size_t nonce_length,
                                   const uint8_t *additional_data, size_t additional_data_length,
                                   const uint8_t *plaintext, size_t plaintext_length,
                                   uint8_t *ciphertext, size_t ciphertext_size,
                                   size_t *ciphertext_length)
{
	psa_status_t st;

	if (aead_kind_of(attributes, key_buffer_size, alg) < 0)
		return PSA_ERROR_NOT_SUPPORTED;
	if (plaintext_length > SIZE_MAX - TAG_LEN || ciphertext_size < plaintext_length + TAG_LEN)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	st = aead(1, attributes, key_buffer, key_buffer_size, alg, nonce, nonce_length,
	          additional_data, additional_data_length, plaintext, plaintext_length, ciphertext);
	if (st == PSA_SUCCESS)
		*ciphertext_length = plaintext_length + TAG_LEN;
	return st;
}

psa_status_t tls_ossl_aead_decrypt(const psa_key_attributes_t *attributes,
                                   const uint8_t *key_buffer, size_t key_buffer_size,
                                   psa_algorithm_t alg, const uint8_t *nonce, size_t nonce_length,
                                   const uint8_t *additional_data, size_t additional_data_length,
                                   const uint8_t *ciphertext, size_t ciphertext_length,
                                   uint8_t *plaintext, size_t plaintext_size,
                                   size_t *plaintext_length)
{
	psa_status_t st;

	if (aead_kind_of(attributes, key_buffer_size, alg) < 0)
		return PSA_ERROR_NOT_SUPPORTED;
	if (ciphertext_length < TAG_LEN)
		return PSA_ERROR_INVALID_ARGUMENT;   /* as mbedTLS answers it */
	if (plaintext_size < ciphertext_length - TAG_LEN)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	st = aead(0, attributes, key_buffer, key_buffer_size, alg, nonce, nonce_length,
	          additional_data, additional_data_length, ciphertext, ciphertext_length - TAG_LEN,
	          plaintext);
	if (st == PSA_SUCCESS)
		*plaintext_length = ciphertext_length - TAG_LEN;
	return st;
}

/* ---- elliptic-curve keys ---- */

/* The curve of an ECC key pair the driver takes, or CURVE_NONE. */
static enum curve curve_of(const psa_key_attributes_t *a)
{
	psa_key_type_t type = psa_get_key_type(a);
	size_t bits = psa_get_key_bits(a);

	if (!PSA_KEY_TYPE_IS_ECC_KEY_PAIR(type))
		return CURVE_NONE;
	switch (PSA_KEY_TYPE_ECC_GET_FAMILY(type)) {
	case PSA_ECC_FAMILY_MONTGOMERY:
		return bits == 255 ? CURVE_X25519 : CURVE_NONE;
	case PSA_ECC_FAMILY_SECP_R1:
		return bits == 256 ? CURVE_P256 : bits == 384 ? CURVE_P384 : CURVE_NONE;
	default:
		return CURVE_NONE;
	}
}

/* An EVP key for a Weierstrass private key (big-endian scalar) and, if
 * pub is given, its public point; NULL on failure. */
static EVP_PKEY *ec_pkey(enum curve cv, const uint8_t *priv, size_t priv_len,
                         const uint8_t *pub, size_t pub_len)
{
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	BIGNUM *d = priv ? BN_secure_new() : NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *c = NULL;
	EVP_PKEY *pk = NULL;
	int sel = priv ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY;

	if (!b || (priv && (!d || !BN_bin2bn(priv, (int)priv_len, d))))
		goto out;
	if (!OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, curves[cv].group, 0) ||
	    (d && !OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, d)) ||
	    (pub && !OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len)))
		goto out;
	if (!(params = OSSL_PARAM_BLD_to_param(b)) ||
	    !(c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) || EVP_PKEY_fromdata_init(c) != 1 ||
	    EVP_PKEY_fromdata(c, &pk, sel, params) != 1)
		pk = NULL;
out:
	EVP_PKEY_CTX_free(c);
	OSSL_PARAM_free(params);     /* its secure part is wiped */
	OSSL_PARAM_BLD_free(b);
	BN_clear_free(d);
	return pk;
}

/* An EVP key for a private key of curve cv (X25519: 32 raw bytes). */
static EVP_PKEY *priv_pkey(enum curve cv, const uint8_t *key, size_t len)
{
	if (len != curves[cv].bytes)
		return NULL;
	if (cv == CURVE_X25519)
		return EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, key, len);
	return ec_pkey(cv, key, len, NULL, 0);
}

psa_status_t tls_ossl_generate_key(const psa_key_attributes_t *attributes, uint8_t *key_buffer,
                                   size_t key_buffer_size, size_t *key_buffer_length)
{
	enum curve cv = curve_of(attributes);
	struct thread_state *t;
	EVP_PKEY *pk;
	BIGNUM *d = NULL;
	size_t n;

	if (cv == CURVE_NONE || !(t = state()))
		return PSA_ERROR_NOT_SUPPORTED;
	n = curves[cv].bytes;
	if (key_buffer_size < n)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	pk = EVP_PKEY_Q_keygen(NULL, NULL, cv == CURVE_X25519 ? "X25519" : "EC", curves[cv].group);
	if (!pk)
		return PSA_ERROR_INSUFFICIENT_ENTROPY;
	if (cv == CURVE_X25519) {
		size_t len = n;
		if (EVP_PKEY_get_raw_private_key(pk, key_buffer, &len) != 1 || len != n)
			goto fail;
	} else if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1 ||
	           BN_bn2binpad(d, key_buffer, (int)n) != (int)n) {
		goto fail;
	}
	BN_clear_free(d);
	drop_generated(t);
	memcpy(t->gen_priv, key_buffer, n);
	t->gen_len = n;
	t->gen_curve = cv;
	t->gen_pkey = pk;
	*key_buffer_length = n;
	return PSA_SUCCESS;
fail:
	BN_clear_free(d);
	EVP_PKEY_free(pk);
	OPENSSL_cleanse(key_buffer, n);
	return PSA_ERROR_CORRUPTION_DETECTED;
}

/* The key pair this thread generated last, if key is it. */
static EVP_PKEY *generated(struct thread_state *t, enum curve cv, const uint8_t *key, size_t len)
{
	if (t->gen_pkey && t->gen_curve == cv && t->gen_len == len &&
	    CRYPTO_memcmp(t->gen_priv, key, len) == 0)
		return t->gen_pkey;
	return NULL;
}

/* A Weierstrass public key, uncompressed, computed from the private one
 * (libcrypto derives none on import): Q = d * G, d in constant time. */
static psa_status_t ec_public(struct thread_state *t, enum curve cv, const uint8_t *key,
                              size_t len, uint8_t *out, size_t size, size_t *out_len)
{
	const EC_GROUP *grp = g.group[cv];
	BIGNUM *d = BN_secure_new();
	EC_POINT *q = EC_POINT_new(grp);
	psa_status_t st = PSA_ERROR_CORRUPTION_DETECTED;
	size_t n;

	if (d && q && BN_bin2bn(key, (int)len, d)) {
		BN_set_flags(d, BN_FLG_CONSTTIME);
		if (EC_POINT_mul(grp, q, d, NULL, NULL, t->bn) == 1 &&
		    (n = EC_POINT_point2oct(grp, q, POINT_CONVERSION_UNCOMPRESSED, out, size,
		                            t->bn)) == 1 + 2 * len) {
			*out_len = n;
			st = PSA_SUCCESS;
		}
	}
	EC_POINT_free(q);
	BN_clear_free(d);
	return st;
}

psa_status_t tls_ossl_export_public_key(const psa_key_attributes_t *attributes,
                                        const uint8_t *key_buffer, size_t key_buffer_size,
                                        uint8_t *data, size_t data_size, size_t *data_length)
{
	enum curve cv = curve_of(attributes);
	size_t need, n;
	struct thread_state *t;
	EVP_PKEY *pk, *own = NULL;
	psa_status_t st = PSA_ERROR_CORRUPTION_DETECTED;

	if (cv == CURVE_NONE || key_buffer_size != curves[cv].bytes || !(t = state()))
		return PSA_ERROR_NOT_SUPPORTED;
	need = cv == CURVE_X25519 ? 32 : 1 + 2 * curves[cv].bytes;
	if (data_size < need)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	pk = generated(t, cv, key_buffer, key_buffer_size);
	if (!pk && cv != CURVE_X25519)
		return ec_public(t, cv, key_buffer, key_buffer_size, data, data_size, data_length);
	if (!pk && !(pk = own = priv_pkey(cv, key_buffer, key_buffer_size)))
		return PSA_ERROR_INVALID_ARGUMENT;
	n = data_size;
	if (cv == CURVE_X25519 ? EVP_PKEY_get_raw_public_key(pk, data, &n) == 1
	                       : EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, data,
	                                                         data_size, &n) == 1) {
		if (n == need) {
			*data_length = n;
			st = PSA_SUCCESS;
		}
	}
	EVP_PKEY_free(own);
	return st;
}

/* The peer's public key as an EVP key: 32 raw bytes for X25519, an
 * uncompressed point (checked to lie on the curve) otherwise. */
static EVP_PKEY *peer_pkey(enum curve cv, const uint8_t *peer, size_t len)
{
	if (cv == CURVE_X25519)
		return len == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, len) : NULL;
	if (len != 1 + 2 * curves[cv].bytes || peer[0] != 0x04)
		return NULL;
	return ec_pkey(cv, NULL, 0, peer, len);
}

psa_status_t tls_ossl_key_agreement(const psa_key_attributes_t *attributes,
                                    const uint8_t *key_buffer, size_t key_buffer_size,
                                    psa_algorithm_t alg, const uint8_t *peer_key,
                                    size_t peer_key_length, uint8_t *shared_secret,
                                    size_t shared_secret_size, size_t *shared_secret_length)
{
	enum curve cv = curve_of(attributes);
	struct thread_state *t;
	EVP_PKEY *mine, *own = NULL, *peer = NULL;
	EVP_PKEY_CTX *c = NULL;
	psa_status_t st = PSA_ERROR_INVALID_ARGUMENT;
	size_t n = shared_secret_size;

	if (alg != PSA_ALG_ECDH || cv == CURVE_NONE || key_buffer_size != curves[cv].bytes ||
	    !(t = state()))
		return PSA_ERROR_NOT_SUPPORTED;
	if (shared_secret_size < curves[cv].bytes)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	mine = generated(t, cv, key_buffer, key_buffer_size);
	if (!mine && !(mine = own = priv_pkey(cv, key_buffer, key_buffer_size)))
		return PSA_ERROR_INVALID_ARGUMENT;
	if (!(peer = peer_pkey(cv, peer_key, peer_key_length)))
		goto out;
	/* set_peer_ex validates the peer key; X25519's derive refuses an
	 * all-zero result (a small-order point) */
	if (!(c = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL)) || EVP_PKEY_derive_init(c) != 1 ||
	    EVP_PKEY_derive_set_peer_ex(c, peer, 1) != 1 ||
	    EVP_PKEY_derive(c, shared_secret, &n) != 1 || n != curves[cv].bytes)
		goto out;
	*shared_secret_length = n;
	st = PSA_SUCCESS;
out:
	if (st != PSA_SUCCESS)
		OPENSSL_cleanse(shared_secret, shared_secret_size);
	EVP_PKEY_CTX_free(c);
	EVP_PKEY_free(peer);
	EVP_PKEY_free(own);
	if (mine == t->gen_pkey)
		drop_generated(t);            /* an ephemeral key is used once */
	return st;
}

/* ---- signatures ---- */

/* A signing context for a signing key's bytes: kept per thread, since a
 * server signs with the same few certificate keys again and again. */
static EVP_PKEY_CTX *signing_ctx(struct thread_state *t, psa_key_type_t type, enum curve cv,
                                 const uint8_t *key, size_t len)
{
	struct cached_key *k, *victim = &t->keys[0];
	const uint8_t *p = key;

	t->uses++;
	for (int i = 0; i < KEY_CACHE; i++) {
		k = &t->keys[i];
		if (k->pkey && k->type == type && k->len == len && CRYPTO_memcmp(k->bytes, key, len) == 0) {
			k->last = t->uses;
			return k->sign;
		}
		if (!k->pkey || k->last < victim->last)
			victim = k;
	}
	drop_key(victim);
	victim->pkey = cv != CURVE_NONE ? priv_pkey(cv, key, len)
	                                : d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, (long)len);
	if (!victim->pkey || !(victim->bytes = malloc(len)) ||
	    !(victim->sign = EVP_PKEY_CTX_new_from_pkey(NULL, victim->pkey, NULL)) ||
	    EVP_PKEY_sign_init(victim->sign) != 1) {
		drop_key(victim);
		return NULL;
	}
	memcpy(victim->bytes, key, len);
	victim->len = len;
	victim->type = type;
	victim->last = t->uses;
	return victim->sign;
}

/* The digest a signature algorithm names, if the driver takes it. */
static const EVP_MD *sign_md(psa_algorithm_t alg)
{
	switch (PSA_ALG_SIGN_GET_HASH(alg)) {
	case PSA_ALG_SHA_256: return g.sha256;
	case PSA_ALG_SHA_384: return g.sha384;
	case PSA_ALG_SHA_512: return g.sha512;
	default: return NULL;
	}
}

/* ECDSA: libcrypto's DER signature to PSA's r || s, each n bytes. */
static psa_status_t ecdsa_sign(EVP_PKEY_CTX *c, size_t n, const uint8_t *hash, size_t hash_len,
                               uint8_t *sig, size_t sig_size, size_t *sig_len)
{
	uint8_t der[160];
	const uint8_t *p = der;
	size_t der_len = sizeof der;
	ECDSA_SIG *s = NULL;
	psa_status_t st = PSA_ERROR_CORRUPTION_DETECTED;

	if (sig_size < 2 * n)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	if (EVP_PKEY_sign(c, der, &der_len, hash, hash_len) != 1 ||
	    !(s = d2i_ECDSA_SIG(NULL, &p, (long)der_len)))
		return st;
	if (BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, (int)n) == (int)n &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + n, (int)n) == (int)n) {
		*sig_len = 2 * n;
		st = PSA_SUCCESS;
	}
	ECDSA_SIG_free(s);
	return st;
}

/* RSA PKCS#1 v1.5 or PSS (salt as long as the hash, MGF1 with it). */
static psa_status_t rsa_sign(EVP_PKEY_CTX *c, psa_algorithm_t alg, const uint8_t *hash,
                             size_t hash_len, uint8_t *sig, size_t sig_size, size_t *sig_len)
{
	const EVP_MD *md = sign_md(alg);
	int pss = PSA_ALG_IS_RSA_PSS(alg);
	size_t n = sig_size, size = (size_t)EVP_PKEY_get_size(EVP_PKEY_CTX_get0_pkey(c));

	if ((size_t)EVP_MD_get_size(md) != hash_len)
		return PSA_ERROR_INVALID_ARGUMENT;
	/* PSA's PSS salt is the longest up to the hash's length that fits;
	 * when a whole hash length does not (a key under 2 hash lengths + 2
	 * bytes), mbedTLS works out the shorter one */
	if (pss && size < 2 * hash_len + 2)
		return PSA_ERROR_NOT_SUPPORTED;
	if (sig_size < size)
		return PSA_ERROR_BUFFER_TOO_SMALL;
	if (EVP_PKEY_CTX_set_rsa_padding(c, pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(c, md) != 1 ||
	    (pss && (EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) != 1 ||
	             EVP_PKEY_CTX_set_rsa_pss_saltlen(c, RSA_PSS_SALTLEN_DIGEST) != 1)) ||
	    EVP_PKEY_sign(c, sig, &n, hash, hash_len) != 1)
		return PSA_ERROR_CORRUPTION_DETECTED;
	*sig_len = n;
	return PSA_SUCCESS;
}

psa_status_t tls_ossl_sign_hash(const psa_key_attributes_t *attributes,
                                const uint8_t *key_buffer, size_t key_buffer_size,
                                psa_algorithm_t alg, const uint8_t *hash, size_t hash_length,
                                uint8_t *signature, size_t signature_size,
                                size_t *signature_length)
{
	psa_key_type_t type = psa_get_key_type(attributes);
	enum curve cv = curve_of(attributes);
	struct thread_state *t;
	EVP_PKEY_CTX *c;
	int ecdsa = cv == CURVE_P256 || cv == CURVE_P384;

	if (!(t = state()))
		return PSA_ERROR_NOT_SUPPORTED;
	if (ecdsa ? !PSA_ALG_IS_RANDOMIZED_ECDSA(alg)
	          : type != PSA_KEY_TYPE_RSA_KEY_PAIR || !sign_md(alg) ||
	                (!PSA_ALG_IS_RSA_PKCS1V15_SIGN(alg) &&
	                 (!PSA_ALG_IS_RSA_PSS(alg) || PSA_ALG_IS_RSA_PSS_ANY_SALT(alg))))
		return PSA_ERROR_NOT_SUPPORTED;
	if (!(c = signing_ctx(t, type, ecdsa ? cv : CURVE_NONE, key_buffer, key_buffer_size)))
		return PSA_ERROR_INVALID_ARGUMENT;
	if (ecdsa)
		return ecdsa_sign(c, curves[cv].bytes, hash, hash_length, signature, signature_size,
		                  signature_length);
	return rsa_sign(c, alg, hash, hash_length, signature, signature_size, signature_length);
}
