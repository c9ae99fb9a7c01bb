/*
 * moat's mbedTLS 3.6 build configuration.
 *
 * Used instead of mbedTLS's default include/mbedtls/mbedtls_config.h when
 * scripts/mbedtls.sh builds the bundled static library, and by every moat
 * file that includes an mbedTLS header (-DMBEDTLS_CONFIG_FILE), so the
 * library and moat agree on struct layouts. Its name must differ from
 * mbedtls_config.h: build_info.h includes MBEDTLS_CONFIG_FILE with
 * quotes, which finds the library's own default next to it first.
 *
 * What it gives: a TLS 1.2 and TLS 1.3 server (and a client, for the tests
 * and the benchmark load generator), ECDHE over X25519, P-256 and P-384,
 * ECDSA and RSA certificates, AES-GCM and ChaCha20-Poly1305 only (AEAD),
 * AES-NI. What it leaves out on purpose: SSL 3.0, TLS 1.0/1.1 (mbedTLS 3
 * has none), CBC and other non-AEAD suites, static RSA key exchange,
 * renegotiation, DTLS, compression, the file-system entropy of last resort.
 *
 * Changing this file changes the cache key in scripts/mbedtls.sh, so the
 * library is rebuilt on the next make.
 */
#ifndef MOAT_MBEDTLS_CONFIG_H
#define MOAT_MBEDTLS_CONFIG_H

/* Platform */
#define MBEDTLS_HAVE_ASM
#define MBEDTLS_HAVE_TIME
#define MBEDTLS_HAVE_TIME_DATE
#define MBEDTLS_PLATFORM_C
#define MBEDTLS_FS_IO                /* certificate and CA files */
#define MBEDTLS_THREADING_C          /* one loop per worker thread */
#define MBEDTLS_THREADING_PTHREAD
#define MBEDTLS_AESNI_C              /* AES-NI when the CPU has it */
#define MBEDTLS_ERROR_C              /* mbedtls_strerror for log lines */
#define MBEDTLS_VERSION_C

/* Randomness: the OS's getrandom(), through PSA's RNG */
#define MBEDTLS_ENTROPY_C
#define MBEDTLS_CTR_DRBG_C
#define MBEDTLS_PSA_CRYPTO_C

/* Symmetric crypto: AEAD only */
#define MBEDTLS_AES_C
#define MBEDTLS_GCM_C
#define MBEDTLS_CHACHA20_C
#define MBEDTLS_POLY1305_C
#define MBEDTLS_CHACHAPOLY_C
#define MBEDTLS_CIPHER_C

/* Hashes: SHA-256/384 for TLS, SHA-512 for Ed/ECDSA certificates with it,
 * SHA-1 only to read old certificate chains' signatures (never in TLS). */
#define MBEDTLS_MD_C
#define MBEDTLS_SHA1_C
#define MBEDTLS_SHA224_C
#define MBEDTLS_SHA256_C
#define MBEDTLS_SHA384_C
#define MBEDTLS_SHA512_C
#define MBEDTLS_HKDF_C

/* Public key: ECDSA and RSA certificates, ECDHE key exchange */
#define MBEDTLS_BIGNUM_C
#define MBEDTLS_ECP_C
#define MBEDTLS_ECDH_C
#define MBEDTLS_ECDSA_C
#define MBEDTLS_ECP_DP_SECP256R1_ENABLED
#define MBEDTLS_ECP_DP_SECP384R1_ENABLED
#define MBEDTLS_ECP_DP_CURVE25519_ENABLED
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_ECDH_VARIANT_EVEREST_ENABLED /* fast X25519 for TLS 1.2 */
#define MBEDTLS_RSA_C
#define MBEDTLS_PKCS1_V15
#define MBEDTLS_PKCS1_V21
#define MBEDTLS_GENPRIME             /* needed by PSA's RSA key support */
#define MBEDTLS_PK_C
#define MBEDTLS_PK_PARSE_C
#define MBEDTLS_PK_WRITE_C
#define MBEDTLS_PK_PARSE_EC_EXTENDED
#define MBEDTLS_PK_PARSE_EC_COMPRESSED
#define MBEDTLS_ASN1_PARSE_C
#define MBEDTLS_ASN1_WRITE_C
#define MBEDTLS_OID_C
#define MBEDTLS_BASE64_C
#define MBEDTLS_PEM_PARSE_C
#define MBEDTLS_PEM_WRITE_C
#define MBEDTLS_PKCS5_C              /* encrypted PKCS#8 keys */
#define MBEDTLS_PKCS12_C

/* X.509 */
#define MBEDTLS_X509_USE_C
#define MBEDTLS_X509_CRT_PARSE_C
#define MBEDTLS_X509_CRL_PARSE_C
#define MBEDTLS_X509_RSASSA_PSS_SUPPORT

/* TLS */
#define MBEDTLS_SSL_TLS_C
#define MBEDTLS_SSL_SRV_C
#define MBEDTLS_SSL_CLI_C            /* tests and benchmark client */
#define MBEDTLS_SSL_PROTO_TLS1_2
#define MBEDTLS_SSL_PROTO_TLS1_3
#define MBEDTLS_SSL_KEEP_PEER_CERTIFICATE
#define MBEDTLS_SSL_TLS1_3_COMPATIBILITY_MODE
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_EPHEMERAL_ENABLED
#define MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_PSK_EPHEMERAL_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_ECDSA_ENABLED
#define MBEDTLS_KEY_EXCHANGE_ECDHE_RSA_ENABLED
#define MBEDTLS_SSL_EXTENDED_MASTER_SECRET
#define MBEDTLS_SSL_ENCRYPT_THEN_MAC
#define MBEDTLS_SSL_SERVER_NAME_INDICATION
#define MBEDTLS_SSL_ALPN
#define MBEDTLS_SSL_SESSION_TICKETS
#define MBEDTLS_SSL_TICKET_C
#define MBEDTLS_SSL_MAX_FRAGMENT_LENGTH
#define MBEDTLS_SSL_ALL_ALERT_MESSAGES
/* Not defined, on purpose: MBEDTLS_SSL_RENEGOTIATION, MBEDTLS_SSL_PROTO_DTLS,
 * MBEDTLS_KEY_EXCHANGE_RSA_ENABLED (no forward secrecy), any PSK-only or
 * anonymous key exchange, MBEDTLS_SSL_DTLS_*. */

/* Record buffers. Incoming stays at the protocol maximum: a client may send
 * 16 KiB records and mbedTLS cannot shrink it without breaking them.
 * Outgoing 16 KiB keeps bulk relay in full-size records. Both are freed
 * while a connection is idle (tls/patches/0003-release-idle-buffers.patch)
 * unless the build says make TLS_IDLE_BUFFERS=keep. */
#define MBEDTLS_SSL_IN_CONTENT_LEN  16384
#define MBEDTLS_SSL_OUT_CONTENT_LEN 16384
#if !defined(MOAT_KEEP_IDLE_BUFFERS)
#define MBEDTLS_SSL_RELEASE_IDLE_BUFFERS
#endif

/* Only AEAD suites, ECDHE first; TLS 1.3 suites are all AEAD. */
#define MBEDTLS_SSL_CIPHERSUITES \
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256, \
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384, \
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256, \
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, \
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, \
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, \
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, \
    MBEDTLS_TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, \
    MBEDTLS_TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256

/* PSA keys in a store that grows, not 32 fixed slots (a TLS 1.3 client
 * holds one per handshake in flight: the load generator). */
#define MBEDTLS_PSA_KEY_STORE_DYNAMIC

/* moat's buffers are its own (no memory shared with another process):
 * PSA need not copy each record's input and output through the heap. */
#define MBEDTLS_PSA_ASSUME_EXCLUSIVE_BUFFERS

/* make CRYPTO=openssl (the default): OpenSSL's libcrypto beneath mbedTLS
 * as a PSA transparent driver (tls/tls_ossl.h), for AEAD, ECDHE key
 * pairs and agreement, ECDSA and RSA signatures; mbedTLS falls back to
 * its own code for whatever the driver does not take. USE_PSA_CRYPTO
 * sends TLS 1.2 (records, ECDHE, signatures) through PSA as TLS 1.3
 * already is, so both reach the driver. CRYPTO=builtin: neither. */
#if defined(MOAT_CRYPTO_OPENSSL)
#define MBEDTLS_USE_PSA_CRYPTO
#define PSA_CRYPTO_ACCELERATOR_DRIVER_PRESENT
#define MOAT_PSA_OSSL
#endif

/* Speed over a little RAM: full window and fixed-point tables for the
 * curves we sign and exchange on. */
#define MBEDTLS_ECP_WINDOW_SIZE       4
#define MBEDTLS_ECP_FIXED_POINT_OPTIM 1

#endif /* MOAT_MBEDTLS_CONFIG_H */
