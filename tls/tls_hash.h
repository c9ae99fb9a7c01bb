/*
 * tls_hash: a keyed hash of 16 bytes for tables whose keys an attacker
 * chooses (client addresses), so that nobody can compute offline which
 * keys share a bucket. It is AES-128 (mbedTLS, AES-NI where the CPU has
 * it) under a key drawn from the kernel's random source when the hash is
 * made: a pseudo-random permutation of the 16 bytes, of which the first 8
 * are the hash. The key never leaves the struct and is wiped with it.
 *
 * Thread-safe once made: hashing only reads the expanded key.
 */
#ifndef MOAT_TLS_HASH_H
#define MOAT_TLS_HASH_H

#include <stdint.h>

typedef struct tls_hash tls_hash;

/* A hash with a fresh random key; NULL when out of memory or when the
 * kernel gives no random bytes. */
tls_hash *tls_hash_new(void) __attribute__((warn_unused_result));
void tls_hash_free(tls_hash *h);

uint64_t tls_hash16(const tls_hash *h, const uint8_t in[16]);

#endif /* MOAT_TLS_HASH_H */
