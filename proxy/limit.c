/* limit: see limit.h. */
#include "limit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_hash.h"

#define SLOTS 8                       /* addresses per bucket */

struct entry {
	uint8_t key[16];                  /* IPv6, or IPv4-mapped */
	uint8_t used;
	uint32_t conns;                   /* open now */
	uint32_t fails;                   /* failed logins in the window */
	uint64_t tat;                     /* rate: theoretical arrival time (GCRA) */
	uint64_t fail_start;              /* start of the failure window */
	uint64_t blocked_until;
	uint64_t last_seen;
};

struct bucket {
	pthread_mutex_t lock;
	struct entry e[SLOTS];
};

struct limit_table {
	struct bucket *b;
	tls_hash *hash;                   /* keyed: buckets cannot be aimed at */
	size_t nbuckets;                  /* a power of two */
	atomic_uint total;
	atomic_uint_fast64_t untracked;
};

struct limit_table *limit_new(size_t entries)
{
	struct limit_table *l = calloc(1, sizeof *l);
	size_t n = 1;

	if (!l)
		return NULL;
	while (n * SLOTS < entries)
		n <<= 1;
	l->b = calloc(n, sizeof *l->b);
	l->hash = tls_hash_new();
	if (!l->b || !l->hash) {
		free(l->b);
		tls_hash_free(l->hash);
		free(l);
		return NULL;
	}
	l->nbuckets = n;
	for (size_t i = 0; i < n; i++)
		pthread_mutex_init(&l->b[i].lock, NULL);
	atomic_init(&l->total, 0);
	atomic_init(&l->untracked, 0);
	return l;
}

void limit_free(struct limit_table *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->nbuckets; i++)
		pthread_mutex_destroy(&l->b[i].lock);
	free(l->b);
	tls_hash_free(l->hash);
	free(l);
}

void limit_key(const struct sockaddr *sa, unsigned prefix, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return;
	}
	memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)key))
		return;
	if (prefix == 0 || prefix > 128)
		prefix = 128;
	for (unsigned bit = prefix; bit < 128; bit++)
		key[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
}

/* Which bucket an address lives in: by a keyed hash, so that nobody can
 * pick addresses that crowd one bucket (an unkeyed one let eight /64s
 * computed offline leave a ninth untracked). */
static size_t bucket_of(const struct limit_table *l, const uint8_t key[16])
{
	return (size_t)tls_hash16(l->hash, key) & (l->nbuckets - 1);
}

/* An entry that can give up its place: nothing open, no block running. */
static int reclaimable(const struct entry *e, uint64_t now)
{
	return !e->used || (e->conns == 0 && e->blocked_until <= now);
}

/* The entry for key in a locked bucket: found, or made in a free or
 * reclaimable place (the one seen longest ago); NULL when create is 0 and
 * it is not there, or when every place is live. */
static struct entry *find(struct bucket *b, const uint8_t key[16], uint64_t now, int create)
{
	struct entry *victim = NULL;

	for (int i = 0; i < SLOTS; i++) {
		struct entry *e = &b->e[i];
		if (e->used && memcmp(e->key, key, 16) == 0) {
			e->last_seen = now;
			return e;
		}
		if (reclaimable(e, now) &&
		    (!victim || (victim->used && (!e->used || e->last_seen < victim->last_seen))))
			victim = e;
	}
	if (!create || !victim)
		return NULL;
	memset(victim, 0, sizeof *victim);
	memcpy(victim->key, key, 16);
	victim->used = 1;
	victim->last_seen = now;
	return victim;
}

/* Locks the bucket of sa and returns it, with the key in key. */
static struct bucket *lock_bucket(struct limit_table *l, const struct limit_cfg *c,
                                  const struct sockaddr *sa, uint8_t key[16])
{
	struct bucket *b;

	limit_key(sa, c->ipv6_prefix, key);
	b = &l->b[bucket_of(l, key)];
	pthread_mutex_lock(&b->lock);
	return b;
}

/* Rate check (generic cell rate algorithm): rate new connections per
 * window, in a burst or spread out. Returns 0 and takes one, or -1. */
static int take_rate(struct entry *e, const struct limit_cfg *c, uint64_t now)
{
	uint64_t t, tau, tat;

	if (c->rate_per_ip == 0 || c->rate_window_ms == 0)
		return 0;
	t = c->rate_window_ms / c->rate_per_ip;   /* one connection's share */
	if (t == 0)
		t = 1;
	tau = c->rate_window_ms - t;                /* the burst allowance */
	tat = e->tat > now ? e->tat : now;
	if (tat - now > tau)
		return -1;
	e->tat = tat + t;
	return 0;
}

enum limit_verdict limit_connect(struct limit_table *l, const struct limit_cfg *c,
                                 const struct sockaddr *sa, uint64_t now, int exempt,
                                 int *tracked)
{
	uint8_t key[16];
	struct bucket *b;
	struct entry *e;
	enum limit_verdict v = LIMIT_OK;
	unsigned total = atomic_fetch_add(&l->total, 1) + 1;

	*tracked = 0;
	if (c->max_connections && total > c->max_connections) {
		atomic_fetch_sub(&l->total, 1);
		return LIMIT_TOTAL;
	}
	if (exempt)
		return LIMIT_OK;
	b = lock_bucket(l, c, sa, key);
	e = find(b, key, now, 1);
	if (!e)
		atomic_fetch_add(&l->untracked, 1);
	else if (c->max_per_ip && e->conns >= c->max_per_ip)
		v = LIMIT_PER_IP;
	else if (take_rate(e, c, now) < 0)
		v = LIMIT_RATE;
	else {
		e->conns++;
		*tracked = 1;
	}
	pthread_mutex_unlock(&b->lock);
	if (v != LIMIT_OK)
		atomic_fetch_sub(&l->total, 1);
	return v;
}

void limit_disconnect(struct limit_table *l, const struct limit_cfg *c, const struct sockaddr *sa,
                       int tracked)
{
	uint8_t key[16];
	struct bucket *b;
	struct entry *e;

	atomic_fetch_sub(&l->total, 1);
	if (!tracked)
		return;
	b = lock_bucket(l, c, sa, key);
	e = find(b, key, 0, 0);
	if (e && e->conns > 0)
		e->conns--;
	pthread_mutex_unlock(&b->lock);
}

int limit_login_blocked(struct limit_table *l, const struct limit_cfg *c,
                         const struct sockaddr *sa, uint64_t now)
{
	uint8_t key[16];
	struct bucket *b = lock_bucket(l, c, sa, key);
	/* a login needs a place to count its failures in: without one it is
	 * refused (fail closed), or it could be retried without limit */
	struct entry *e = c->auth_fail_limit ? find(b, key, now, 1) : NULL;
	int blocked = c->auth_fail_limit && (!e || e->blocked_until > now);

	pthread_mutex_unlock(&b->lock);
	if (c->auth_fail_limit && !e)
		atomic_fetch_add(&l->untracked, 1);
	return blocked;
}

int limit_login_failed(struct limit_table *l, const struct limit_cfg *c,
                        const struct sockaddr *sa, uint64_t now)
{
	uint8_t key[16];
	struct bucket *b;
	struct entry *e;
	int started = 0;

	if (c->auth_fail_limit == 0)
		return 0;
	b = lock_bucket(l, c, sa, key);
	e = find(b, key, now, 1);
	if (e) {
		if (e->fails == 0 || now - e->fail_start >= c->auth_fail_window_ms) {
			e->fails = 0;
			e->fail_start = now;
		}
		if (++e->fails >= c->auth_fail_limit) {
			e->blocked_until = now + c->auth_block_ms;
			e->fails = 0;
			started = 1;
		}
	} else {
		atomic_fetch_add(&l->untracked, 1);
	}
	pthread_mutex_unlock(&b->lock);
	return started;
}

unsigned limit_total(const struct limit_table *l)
{
	return atomic_load(&((struct limit_table *)l)->total);
}

uint64_t limit_untracked(const struct limit_table *l)
{
	return atomic_load(&((struct limit_table *)l)->untracked);
}

const char *limit_key_text(const struct sockaddr *sa, unsigned ipv6_prefix, char *buf,
                            size_t size)
{
	uint8_t key[16];
	char ip[INET6_ADDRSTRLEN];

	limit_key(sa, ipv6_prefix, key);
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)key)) {
		inet_ntop(AF_INET, key + 12, ip, sizeof ip);
		snprintf(buf, size, "%s", ip);
	} else {
		inet_ntop(AF_INET6, key, ip, sizeof ip);
		if (ipv6_prefix && ipv6_prefix < 128)
			snprintf(buf, size, "%s/%u", ip, ipv6_prefix);
		else
			snprintf(buf, size, "%s", ip);
	}
	return buf;
}
