/*
 * tls_names: the cipher suites, key exchange groups and protocol versions
 * moat can offer, by the names admins write in moat.ini. Pure data and
 * lookups, no mbedTLS, so the config parser (and its fuzzer) can use it.
 *
 * Cipher suites are known by their IANA name (TLS_AES_128_GCM_SHA256,
 * TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) and, for TLS 1.2, by
 * OpenSSL's name (ECDHE-ECDSA-AES128-GCM-SHA256), case-insensitively.
 * Only what moat's TLS library build offers is here: ECDHE key exchange
 * with AES-GCM or ChaCha20-Poly1305; every TLS 1.3 suite moat has.
 * Groups: x25519, secp256r1 (P-256, prime256v1), secp384r1 (P-384).
 *
 * IDs are the IANA code points, which are also mbedTLS's values.
 */
#ifndef MOAT_TLS_NAMES_H
#define MOAT_TLS_NAMES_H

#include <stddef.h>
#include <stdint.h>

#define TLS_MAX_SUITES 16             /* per list, without the 0 end */
#define TLS_NSUITES 9                 /* suites moat offers */
#define TLS_MAX_GROUPS 8

/* Looks name up. Returns 0 with *id and *tls13 (1 for a TLS 1.3 suite)
 * set, or -1 when moat does not offer a suite by that name. */
int tls_suite_lookup(const char *name, size_t len, uint16_t *id, int *tls13);

/* The IANA name of a suite moat offers, or NULL. */
const char *tls_suite_name(uint16_t id);
/* Its place among the suites moat offers (0..TLS_NSUITES-1), or
 * TLS_NSUITES for any other. */
unsigned tls_suite_index(uint16_t id);
/* The id of the suite at that place, 0 past the end. */
uint16_t tls_suite_at(unsigned index);

/* Same for groups: 0 and *id, or -1. */
int tls_group_lookup(const char *name, size_t len, uint16_t *id);
const char *tls_group_name(uint16_t id);

/* The defaults: 0-terminated lists in preference order. */
extern const uint16_t tls_default_tls12_suites[];
extern const uint16_t tls_default_tls13_suites[];
extern const uint16_t tls_default_groups[];

/* Every suite of one version ("TLS_AES_128_GCM_SHA256 ...", OpenSSL's
 * names for TLS 1.2) or every group ("x25519 secp256r1 secp384r1") into
 * buf, space-separated, for messages. Returns buf. */
const char *tls_suite_names(int tls13, char *buf, size_t size);
const char *tls_group_names(char *buf, size_t size);

#endif /* MOAT_TLS_NAMES_H */
