/*
 * stats: the counters behind the metrics endpoint.
 *
 * Each worker has one struct lstats per listener socket (by slot, which
 * keeps its listener across reloads), written only by that worker with
 * relaxed atomic adds (no other thread writes them, so they cost about a
 * plain increment) and read by the main thread, which sums the workers
 * when the metrics endpoint is asked.
 */
#ifndef MOAT_STATS_H
#define MOAT_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "tls_names.h"

/* Why handshakes failed, as the metrics label them. */
enum stat_hsfail {
	HSF_TIMEOUT = 0,              /* the client did not finish in time */
	HSF_CLOSED,                   /* the client hung up */
	HSF_VERSION,                  /* no TLS version in common (1.0/1.1, SSLv3) */
	HSF_CIPHER,                   /* no suite or group in common */
	HSF_ALPN,                     /* another application protocol asked for */
	HSF_CLIENT_CERT,              /* client certificate missing or not valid */
	HSF_PROTOCOL,                 /* not TLS, or broken TLS */
	HSF_N
};

enum stat_login { STL_OK = 0, STL_FAILED, STL_UNAVAILABLE, STL_REFUSED, STL_N };

enum stat_limit { STLIM_TOTAL = 0, STLIM_PER_IP, STLIM_RATE, STLIM_AUTH, STLIM_N };

#define STAT_SUITES (TLS_NSUITES + 1)   /* the last one: anything else */

struct lstats {
	atomic_uint_fast64_t accepted, closed;
	atomic_uint_fast64_t handshakes, resumed;
	atomic_uint_fast64_t hsfail[HSF_N];
	atomic_uint_fast64_t tls[2][STAT_SUITES]; /* [0] TLS 1.2, [1] TLS 1.3, by suite */
	atomic_uint_fast64_t logins[STL_N];
	atomic_uint_fast64_t backend_errors;
	atomic_uint_fast64_t bytes_in, bytes_out; /* plaintext from / to clients */
	atomic_uint_fast64_t refused[STLIM_N];
};

/* Adds n to a counter of the calling worker's own. */
static inline void stat_add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t stat_get(const atomic_uint_fast64_t *c)
{
	return atomic_load_explicit((atomic_uint_fast64_t *)c, memory_order_relaxed);
}

#endif /* MOAT_STATS_H */
