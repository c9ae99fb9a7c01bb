/*
 * fuzz.h: what the libFuzzer targets in test/fuzz/ share. Header-only, no
 * state: a check that reports and aborts (libFuzzer then saves the input),
 * a digest for comparing runs, a small PRNG for chunk boundaries, and a
 * substring search of our own.
 *
 * The search is hand-written on purpose: libFuzzer intercepts memmem()
 * and strstr() and feeds their arguments back into mutations, which would
 * steer inputs toward the very coincidences a leak check must ignore.
 */
#ifndef MOAT_FUZZ_H
#define MOAT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* For the targets' own loops over bytes: no coverage feedback (it says
 * nothing about the code under test) and no cost for collecting it. */
#define FZ_NOCOV __attribute__((no_sanitize("coverage")))

/* An invariant: on failure, say which and where, then abort. */
#define CHECK(c)                                                                  \
	do {                                                                          \
		if (!(c)) {                                                               \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
			abort();                                                              \
		}                                                                         \
	} while (0)

/* FNV-1a over bytes, chained through h; used to compare transcripts. */
FZ_NOCOV static inline uint64_t fz_hash(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FZ_HASH_INIT 0xcbf29ce484222325ULL

FZ_NOCOV static inline uint64_t fz_hash_u64(uint64_t h, uint64_t v)
{
	return fz_hash(h, &v, sizeof v);
}

/* xorshift64: deterministic chunk sizes for a given seed. */
FZ_NOCOV static inline uint64_t fz_rand(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* Whether needle occurs in haystack (a plain loop; see above). */
FZ_NOCOV static inline int fz_contains(const void *haystack, size_t hlen, const void *needle,
                                      size_t nlen)
{
	const uint8_t *h = haystack, *n = needle;

	if (nlen == 0)
		return 1;
	for (size_t i = 0; i + nlen <= hlen; i++) {
		size_t k = 0;
		while (k < nlen && h[i + k] == n[k])
			k++;
		if (k == nlen)
			return 1;
	}
	return 0;
}

/* Whether n bytes at p are all zero. */
FZ_NOCOV static inline int fz_all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

#endif /* MOAT_FUZZ_H */
