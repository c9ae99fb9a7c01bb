/*
 * limit: what moat counts per client address, shared by every worker:
 * connections open now, new connections per time window, failed logins
 * per time window and the block that follows too many. Plus the count of
 * all connections against max_connections.
 *
 * Memory is fixed at creation: a table of buckets, each holding a few
 * addresses. A new address takes a free place in its bucket, or the place
 * of the address there seen longest ago that has no connection open and
 * no block running; when every place is taken by such live entries the
 * address is not tracked: its connections are let in (the call says so)
 * but its logins are refused (fail closed), so a flood of addresses can
 * neither grow memory, nor evict an address under a block, nor slip past
 * the failed-login limit. Buckets are chosen by a keyed hash (tls_hash.h,
 * a key drawn when the table is made), so nobody can compute addresses
 * that crowd one bucket.
 * Each bucket has its own lock, so workers rarely wait for each other.
 *
 * Addresses: IPv4 as is; IPv6 by their first ipv6_prefix bits (a /64 is
 * one customer's network); IPv4-mapped IPv6 as the IPv4 address.
 *
 * Pure functions of their arguments and the table: the time is passed in
 * (milliseconds of a monotonic clock), which makes it testable.
 */
#ifndef MOAT_LIMIT_H
#define MOAT_LIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct limit_table;

/* The limits in force (from the generation a session was accepted
 * under). A count of 0 means no limit. */
struct limit_cfg {
	unsigned max_connections;         /* all addresses together */
	unsigned max_per_ip;              /* open at once from one address */
	unsigned rate_per_ip;             /* new connections per rate_window_ms */
	uint32_t rate_window_ms;
	unsigned auth_fail_limit;         /* failed logins per auth_fail_window_ms */
	uint32_t auth_fail_window_ms;
	uint32_t auth_block_ms;           /* then logins refused this long */
	unsigned ipv6_prefix;             /* 1..128 */
};

enum limit_verdict {
	LIMIT_OK = 0,
	LIMIT_TOTAL,                     /* max_connections reached */
	LIMIT_PER_IP,                    /* max_per_ip reached */
	LIMIT_RATE,                      /* rate_per_ip exceeded */
};

/* A table for about `entries` addresses (rounded up), with a hash key of
 * its own; NULL when out of memory or without random bytes. */
struct limit_table *limit_new(size_t entries);
void limit_free(struct limit_table *l);

/* A connection from sa arrives at time now. LIMIT_OK counts it: call
 * limit_disconnect() when it ends, with the same c and *tracked (0 when
 * the address was not tracked: exempt, or see above). Any other verdict
 * counts nothing. An exempt address counts against max_connections only. */
enum limit_verdict limit_connect(struct limit_table *l, const struct limit_cfg *c,
                                 const struct sockaddr *sa, uint64_t now, int exempt,
                                 int *tracked) __attribute__((warn_unused_result));
void limit_disconnect(struct limit_table *l, const struct limit_cfg *c, const struct sockaddr *sa,
                       int tracked);

/* Whether logins from sa are refused at time now: a block is running, or
 * the address cannot be tracked (its bucket is full of live entries).
 * Always 0 when c->auth_fail_limit is 0 (no failed-login limit). */
int limit_login_blocked(struct limit_table *l, const struct limit_cfg *c,
                         const struct sockaddr *sa, uint64_t now);

/* A login from sa failed at time now; returns 1 when this failure
 * started a block. */
int limit_login_failed(struct limit_table *l, const struct limit_cfg *c,
                        const struct sockaddr *sa, uint64_t now);

/* Connections counted now, all addresses. */
unsigned limit_total(const struct limit_table *l);

/* Addresses that could not be tracked because their bucket was full of
 * live entries (since creation). */
uint64_t limit_untracked(const struct limit_table *l);

/* The 16-byte key an address is counted under: IPv4 as ::ffff:a.b.c.d,
 * IPv6 masked to its first prefix bits (1..128; 0 means 128). */
void limit_key(const struct sockaddr *sa, unsigned prefix, uint8_t key[16]);

/* "1.2.3.4" or "2001:db8:1:2::/64": the key an address is counted under. */
const char *limit_key_text(const struct sockaddr *sa, unsigned ipv6_prefix, char *buf,
                            size_t size);

#endif /* MOAT_LIMIT_H */
