/*
 * tls_ossl: a PSA transparent driver over OpenSSL 3's libcrypto, beneath
 * mbedTLS (make's default, CRYPTO=openssl). mbedTLS keeps the protocol
 * (handshake, record layer, X.509, tickets); the arithmetic that costs
 * most runs in libcrypto's assembly:
 *
 *   aead_encrypt, aead_decrypt  AES-128-GCM, AES-256-GCM (16-byte tag)
 *                               and ChaCha20-Poly1305, 12-byte nonce:
 *                               every record of both TLS versions, and
 *                               session tickets
 *   generate_key                X25519, secp256r1, secp384r1 key pairs
 *   export_public_key           their public keys
 *   key_agreement               ECDH over them (TLS 1.2 and 1.3 ECDHE)
 *   sign_hash                   ECDSA (randomized) over P-256 and P-384;
 *                               RSA PKCS#1 v1.5 and PSS (salt = hash
 *                               length, keys that fit it) with SHA-256,
 *                               -384, -512
 *
 * Anything else (other sizes, tags, algorithms, key types) answers
 * PSA_ERROR_NOT_SUPPORTED, and mbedTLS's built-in code runs instead, as
 * for any transparent driver declared with fallback. The dispatch is
 * tls/patches/0005-psa-driver-openssl.patch; this file is compiled into
 * mbedTLS's libmbedcrypto.a by scripts/mbedtls.sh.
 *
 * Memory: no allocation per record. Each thread keeps one EVP cipher
 * context per AEAD and direction, keyed afresh for each record and keyed
 * with zeros after it (no record key outlives its record there), and a
 * few EVP keys made from the private keys it signed with (certificate
 * keys, wiped when evicted or when the thread ends). The key pair a
 * thread generated last is kept, with its public key, until the key
 * agreement that uses it or the thread's next key generation (an aborted
 * handshake's), so that exporting and agreeing need no recomputation.
 * Everything
 * libcrypto does here is its constant-time code (AES-NI/VAES GCM,
 * nistz256, X25519, BN_FLG_CONSTTIME scalars).
 */
#ifndef MOAT_TLS_OSSL_H
#define MOAT_TLS_OSSL_H

#include <psa/crypto.h>

/* The version of the libcrypto under the driver, e.g. "3.0.19". */
const char *tls_ossl_version(void);

psa_status_t tls_ossl_aead_encrypt(const psa_key_attributes_t *attributes,
                                   const uint8_t *key_buffer, size_t key_buffer_size,
                                   psa_algorithm_t alg, const uint8_t *nonce, size_t nonce_length,
                                   const uint8_t *additional_data, size_t additional_data_length,
                                   const uint8_t *plaintext, size_t plaintext_length,
                                   uint8_t *ciphertext, size_t ciphertext_size,
                                   size_t *ciphertext_length);

psa_status_t tls_ossl_aead_decrypt(const psa_key_attributes_t *attributes,
                                   const uint8_t *key_buffer, size_t key_buffer_size,
                                   psa_algorithm_t alg, const uint8_t *nonce, size_t nonce_length,
                                   const uint8_t *additional_data, size_t additional_data_length,
                                   const uint8_t *ciphertext, size_t ciphertext_length,
                                   uint8_t *plaintext, size_t plaintext_size,
                                   size_t *plaintext_length);

psa_status_t tls_ossl_generate_key(const psa_key_attributes_t *attributes, uint8_t *key_buffer,
                                   size_t key_buffer_size, size_t *key_buffer_length);

psa_status_t tls_ossl_export_public_key(const psa_key_attributes_t *attributes,
                                        const uint8_t *key_buffer, size_t key_buffer_size,
                                        uint8_t *data, size_t data_size, size_t *data_length);

psa_status_t tls_ossl_key_agreement(const psa_key_attributes_t *attributes,
                                    const uint8_t *key_buffer, size_t key_buffer_size,
                                    psa_algorithm_t alg, const uint8_t *peer_key,
                                    size_t peer_key_length, uint8_t *shared_secret,
                                    size_t shared_secret_size, size_t *shared_secret_length);

psa_status_t tls_ossl_sign_hash(const psa_key_attributes_t *attributes,
                                const uint8_t *key_buffer, size_t key_buffer_size,
                                psa_algorithm_t alg, const uint8_t *hash, size_t hash_length,
                                uint8_t *signature, size_t signature_size,
                                size_t *signature_length);

#endif /* MOAT_TLS_OSSL_H */
