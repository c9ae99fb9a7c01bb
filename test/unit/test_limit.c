/*
 * limit: per-address accounting, with the time passed in. Scenarios as
 * tables of steps: at time T, address A does X, and the answer must be Y.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "limit.h"

enum op { CONNECT, DISCONNECT, FAIL, BLOCKED };

struct step {
	uint64_t t;
	const char *addr;             /* "1.2.3.4" or "2001:db8::1" */
	enum op op;
	int want;                     /* verdict, 1/0 for FAIL (block started), BLOCKED */
};

static void to_sa(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof *ss);
	if (inet_pton(AF_INET, s, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		return;
	}
	assert_int_equal(inet_pton(AF_INET6, s, &v6->sin6_addr), 1);
	v6->sin6_family = AF_INET6;
}

/* Runs the steps; DISCONNECT ends the oldest counted connection of its
 * address. */
static void run_steps(const struct limit_cfg *c, const struct step *st, size_t n,
                      size_t entries)
{
	struct limit_table *l = limit_new(entries);
	struct { const char *addr; int tracked; } open[256];
	size_t nopen = 0;

	assert_non_null(l);
	for (size_t i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		int got = 0, tracked = 0;

		to_sa(st[i].addr, &ss);
		switch (st[i].op) {
		case CONNECT:
			got = (int)limit_connect(l, c, (struct sockaddr *)&ss, st[i].t, 0, &tracked);
			if (got == LIMIT_OK) {
				assert_true(nopen < 256);
				open[nopen].addr = st[i].addr;
				open[nopen++].tracked = tracked;
			}
			break;
		case DISCONNECT: {
			size_t j = 0;
			while (j < nopen && strcmp(open[j].addr, st[i].addr) != 0)
				j++;
			assert_true(j < nopen);
			limit_disconnect(l, c, (struct sockaddr *)&ss, open[j].tracked);
			memmove(&open[j], &open[j + 1], (nopen - j - 1) * sizeof *open);
			nopen--;
			got = st[i].want;
			break;
		}
		case FAIL:
			got = limit_login_failed(l, c, (struct sockaddr *)&ss, st[i].t);
			break;
		case BLOCKED:
			got = limit_login_blocked(l, c, (struct sockaddr *)&ss, st[i].t);
			break;
		}
		if (got != st[i].want)
			fail_msg("step %zu (t=%llu %s op %d): got %d, want %d", i,
			         (unsigned long long)st[i].t, st[i].addr, (int)st[i].op, got, st[i].want);
	}
	assert_int_equal(limit_total(l), nopen);
	limit_free(l);
}

#define RUN(c, steps, entries) run_steps(&(c), steps, sizeof steps / sizeof *steps, entries)

static void test_total(void **state)
{
	static const struct limit_cfg c = { .max_connections = 3, .ipv6_prefix = 64 };
	static const struct step st[] = {
		{ 0, "10.0.0.1", CONNECT, LIMIT_OK },
		{ 0, "10.0.0.2", CONNECT, LIMIT_OK },
		{ 0, "10.0.0.3", CONNECT, LIMIT_OK },
		{ 0, "10.0.0.4", CONNECT, LIMIT_TOTAL },
		{ 0, "10.0.0.1", CONNECT, LIMIT_TOTAL },
		{ 1, "10.0.0.2", DISCONNECT, 0 },
		{ 1, "10.0.0.4", CONNECT, LIMIT_OK },
		{ 1, "10.0.0.5", CONNECT, LIMIT_TOTAL },
	};

	(void)state;
	RUN(c, st, 64);
}

static void test_per_ip(void **state)
{
	static const struct limit_cfg c = { .max_per_ip = 2, .ipv6_prefix = 64 };
	static const struct step st[] = {
		{ 0, "192.0.2.1", CONNECT, LIMIT_OK },
		{ 0, "192.0.2.1", CONNECT, LIMIT_OK },
		{ 0, "192.0.2.1", CONNECT, LIMIT_PER_IP },
		{ 0, "192.0.2.2", CONNECT, LIMIT_OK },       /* another address */
		{ 0, "::ffff:192.0.2.1", CONNECT, LIMIT_PER_IP }, /* the same, mapped */
		{ 5, "192.0.2.1", DISCONNECT, 0 },
		{ 5, "192.0.2.1", CONNECT, LIMIT_OK },
		{ 5, "192.0.2.1", CONNECT, LIMIT_PER_IP },
		/* IPv6: one /64 is one client */
		{ 6, "2001:db8:1:2::1", CONNECT, LIMIT_OK },
		{ 6, "2001:db8:1:2:ffff::9", CONNECT, LIMIT_OK },
		{ 6, "2001:db8:1:2::77", CONNECT, LIMIT_PER_IP },
		{ 6, "2001:db8:1:3::1", CONNECT, LIMIT_OK },  /* the next /64 */
	};

	(void)state;
	RUN(c, st, 64);
}

static void test_ipv6_prefix_128(void **state)
{
	static const struct limit_cfg c = { .max_per_ip = 1, .ipv6_prefix = 128 };
	static const struct step st[] = {
		{ 0, "2001:db8::1", CONNECT, LIMIT_OK },
		{ 0, "2001:db8::2", CONNECT, LIMIT_OK },
		{ 0, "2001:db8::1", CONNECT, LIMIT_PER_IP },
	};

	(void)state;
	RUN(c, st, 64);
}

/* 4 per 1000 ms: a burst of 4, then one every 250 ms. */
static void test_rate(void **state)
{
	static const struct limit_cfg c = { .rate_per_ip = 4, .rate_window_ms = 1000,
	                                     .ipv6_prefix = 64 };
	static const struct step st[] = {
		{ 0, "198.51.100.7", CONNECT, LIMIT_OK },
		{ 0, "198.51.100.7", CONNECT, LIMIT_OK },
		{ 0, "198.51.100.7", CONNECT, LIMIT_OK },
		{ 0, "198.51.100.7", CONNECT, LIMIT_OK },
		{ 0, "198.51.100.7", CONNECT, LIMIT_RATE },
		{ 0, "198.51.100.8", CONNECT, LIMIT_OK },    /* its own budget */
		{ 100, "198.51.100.7", CONNECT, LIMIT_RATE },
		{ 250, "198.51.100.7", CONNECT, LIMIT_OK },
		{ 251, "198.51.100.7", CONNECT, LIMIT_RATE },
		{ 500, "198.51.100.7", CONNECT, LIMIT_OK },
		/* a refused attempt costs nothing: after a quiet second, a full burst */
		{ 2500, "198.51.100.7", CONNECT, LIMIT_OK },
		{ 2500, "198.51.100.7", CONNECT, LIMIT_OK },
		{ 2500, "198.51.100.7", CONNECT, LIMIT_OK },
		{ 2500, "198.51.100.7", CONNECT, LIMIT_OK },
		{ 2500, "198.51.100.7", CONNECT, LIMIT_RATE },
	};

	(void)state;
	RUN(c, st, 64);
}

/* 3 failures in 10 s start a 60 s block of logins (not of connections). */
static void test_auth_failures(void **state)
{
	static const struct limit_cfg c = { .auth_fail_limit = 3, .auth_fail_window_ms = 10000,
	                                     .auth_block_ms = 60000, .max_per_ip = 5,
	                                     .ipv6_prefix = 64 };
	static const struct step st[] = {
		{ 0, "203.0.113.5", BLOCKED, 0 },
		{ 0, "203.0.113.5", FAIL, 0 },
		{ 1000, "203.0.113.5", FAIL, 0 },
		{ 2000, "203.0.113.5", BLOCKED, 0 },
		{ 2000, "203.0.113.5", FAIL, 1 },             /* the third: blocked */
		{ 2001, "203.0.113.5", BLOCKED, 1 },
		{ 2001, "203.0.113.6", BLOCKED, 0 },          /* others log in */
		{ 2001, "203.0.113.5", CONNECT, LIMIT_OK },  /* connecting is still fine */
		{ 61999, "203.0.113.5", BLOCKED, 1 },
		{ 62000, "203.0.113.5", BLOCKED, 0 },
		/* failures spread wider than the window never add up */
		{ 70000, "203.0.113.9", FAIL, 0 },
		{ 75000, "203.0.113.9", FAIL, 0 },
		{ 80000, "203.0.113.9", FAIL, 0 },            /* a new window began at 80000 */
		{ 85000, "203.0.113.9", FAIL, 0 },
		{ 85000, "203.0.113.9", BLOCKED, 0 },
		{ 89999, "203.0.113.9", FAIL, 1 },
		{ 90000, "203.0.113.9", BLOCKED, 1 },
	};

	(void)state;
	RUN(c, st, 64);
}

/* The table never grows: with one bucket of 8 places, a ninth address is
 * let in untracked while eight have connections open, its logins refused
 * (fail closed); once one closes,
 * the oldest idle entry makes room. A blocked address keeps its place. */
static void test_bounded_memory(void **state)
{
	static const struct limit_cfg c = { .max_per_ip = 1, .auth_fail_limit = 1,
	                                     .auth_fail_window_ms = 1000, .auth_block_ms = 100000,
	                                     .ipv6_prefix = 64 };
	static const struct step st[] = {
		{ 0, "10.1.0.1", CONNECT, LIMIT_OK },
		{ 0, "10.1.0.2", CONNECT, LIMIT_OK },
		{ 0, "10.1.0.3", CONNECT, LIMIT_OK },
		{ 0, "10.1.0.4", CONNECT, LIMIT_OK },
		{ 0, "10.1.0.5", CONNECT, LIMIT_OK },
		{ 0, "10.1.0.6", CONNECT, LIMIT_OK },
		{ 0, "10.1.0.7", FAIL, 1 },                   /* blocked, no connection */
		{ 0, "10.1.0.8", CONNECT, LIMIT_OK },
		/* full of live entries: untracked, so not limited */
		{ 1, "10.1.0.9", CONNECT, LIMIT_OK },
		{ 1, "10.1.0.9", CONNECT, LIMIT_OK },
		/* ... but its logins are refused: nowhere to count failures */
		{ 1, "10.1.0.9", BLOCKED, 1 },
		{ 2, "10.1.0.1", DISCONNECT, 0 },
		/* 10.1.0.1's place is taken, and 10.1.0.7's block survives */
		{ 3, "10.1.0.10", CONNECT, LIMIT_OK },
		{ 3, "10.1.0.10", CONNECT, LIMIT_PER_IP },
		{ 3, "10.1.0.7", BLOCKED, 1 },
		/* the untracked ones leave without disturbing anyone */
		{ 4, "10.1.0.9", DISCONNECT, 0 },
		{ 4, "10.1.0.9", DISCONNECT, 0 },
		{ 4, "10.1.0.2", CONNECT, LIMIT_PER_IP },
	};

	(void)state;
	RUN(c, st, 1);
}

static void test_no_limits(void **state)
{
	static const struct limit_cfg c = { .ipv6_prefix = 64 };
	struct limit_table *l = limit_new(16);
	struct sockaddr_storage ss;
	int tracked;

	(void)state;
	assert_non_null(l);
	to_sa("10.9.9.9", &ss);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss, 0, 0, &tracked), LIMIT_OK);
	assert_int_equal(limit_total(l), 1000);
	for (int i = 0; i < 100; i++)
		assert_int_equal(limit_login_failed(l, &c, (struct sockaddr *)&ss, 0), 0);
	assert_int_equal(limit_login_blocked(l, &c, (struct sockaddr *)&ss, 0), 0);
	limit_free(l);
}

/* Exempt addresses count toward max_connections only. */
static void test_exempt(void **state)
{
	static const struct limit_cfg c = { .max_connections = 3, .max_per_ip = 1,
	                                    .rate_per_ip = 1, .rate_window_ms = 1000,
	                                    .ipv6_prefix = 64 };
	struct limit_table *l = limit_new(16);
	struct sockaddr_storage ss;
	int tracked = 1;

	(void)state;
	to_sa("127.0.0.1", &ss);
	assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss, 0, 1, &tracked), LIMIT_OK);
	assert_int_equal(tracked, 0);
	assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss, 0, 1, &tracked), LIMIT_OK);
	assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss, 0, 1, &tracked), LIMIT_OK);
	assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss, 0, 1, &tracked),
	                 LIMIT_TOTAL);
	limit_disconnect(l, &c, (struct sockaddr *)&ss, 0);
	assert_int_equal(limit_total(l), 2);
	/* not exempt, the same address would have stopped at one */
	limit_disconnect(l, &c, (struct sockaddr *)&ss, 0);
	limit_disconnect(l, &c, (struct sockaddr *)&ss, 0);
	assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss, 0, 0, &tracked), LIMIT_OK);
	assert_int_equal(tracked, 1);
	assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss, 0, 0, &tracked),
	                 LIMIT_PER_IP);
	limit_free(l);
}

static void test_key_text(void **state)
{
	struct sockaddr_storage ss;
	char buf[64];

	(void)state;
	to_sa("192.0.2.33", &ss);
	assert_string_equal(limit_key_text((struct sockaddr *)&ss, 64, buf, sizeof buf),
	                    "192.0.2.33");
	to_sa("::ffff:192.0.2.33", &ss);
	assert_string_equal(limit_key_text((struct sockaddr *)&ss, 64, buf, sizeof buf),
	                    "192.0.2.33");
	to_sa("2001:db8:1:2:3:4:5:6", &ss);
	assert_string_equal(limit_key_text((struct sockaddr *)&ss, 64, buf, sizeof buf),
	                    "2001:db8:1:2::/64");
	assert_string_equal(limit_key_text((struct sockaddr *)&ss, 48, buf, sizeof buf),
	                    "2001:db8:1::/48");
	assert_string_equal(limit_key_text((struct sockaddr *)&ss, 128, buf, sizeof buf),
	                    "2001:db8:1:2:3:4:5:6");
}

/* Four threads connect and disconnect the same few addresses: counts
 * must come back to zero (the bucket locks hold). */
static void *hammer(void *arg)
{
	struct limit_table *l = arg;
	static const struct limit_cfg c = { .max_per_ip = 1000000, .ipv6_prefix = 64 };
	struct sockaddr_storage ss;
	char a[32];

	for (int i = 0; i < 20000; i++) {
		int tracked;
		snprintf(a, sizeof a, "10.2.0.%d", i % 7);
		to_sa(a, &ss);
		if (limit_connect(l, &c, (struct sockaddr *)&ss, (uint64_t)i, 0, &tracked) == LIMIT_OK)
			limit_disconnect(l, &c, (struct sockaddr *)&ss, tracked);
	}
	return NULL;
}

static void test_threads(void **state)
{
	static const struct limit_cfg c = { .max_per_ip = 1, .ipv6_prefix = 64 };
	struct limit_table *l = limit_new(64);
	pthread_t t[4];
	struct sockaddr_storage ss;
	int tracked;

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, l), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(limit_total(l), 0);
	/* every address is back to no connection open */
	to_sa("10.2.0.3", &ss);
	assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss, 1, 0, &tracked), LIMIT_OK);
	assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss, 1, 0, &tracked), LIMIT_PER_IP);
	limit_free(l);
}

/* FNV-1a over the 16-byte key, 8 buckets: the unkeyed hash moat used to
 * pick buckets with. */
static unsigned fnv_bucket(const struct sockaddr_in6 *sa)
{
	uint64_t h = 1469598103934665603ull;
	uint8_t key[16];

	memcpy(key, &sa->sin6_addr, 16);
	memset(key + 8, 0, 8);                      /* the /64 */
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ull;
	return (unsigned)((h ^ (h >> 32)) & 7);
}

/* 2001:db8:N::/64 as an address. */
static void net64(unsigned n, struct sockaddr_storage *ss)
{
	char a[64];

	snprintf(a, sizeof a, "2001:db8:%x:%x::1", n >> 16, n & 0xffff);
	to_sa(a, ss);
}

/* Nine /64s that an unkeyed hash puts in one bucket (found offline, as
 * an attacker would): with a keyed one the ninth is still limited. It
 * fails only if the key happens to put all nine in one bucket of eight,
 * about once in 16 million runs. */
static void test_offline_collisions(void **state)
{
	static const struct limit_cfg c = { .max_per_ip = 1, .auth_fail_limit = 5,
	                                    .auth_fail_window_ms = 1000, .auth_block_ms = 1000,
	                                    .ipv6_prefix = 64 };
	struct limit_table *l = limit_new(64);      /* 8 buckets of 8 */
	struct sockaddr_storage ss[9];
	unsigned found = 0;
	int tracked;

	(void)state;
	assert_non_null(l);
	for (unsigned n = 1; found < 9; n++) {
		net64(n, &ss[found]);
		if (fnv_bucket((const struct sockaddr_in6 *)&ss[found]) == 3)
			found++;
	}
	for (int i = 0; i < 8; i++)
		assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss[i], 0, 0, &tracked),
		                 LIMIT_OK);
	assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss[8], 0, 0, &tracked), LIMIT_OK);
	assert_int_equal(tracked, 1);
	assert_int_equal(limit_connect(l, &c, (struct sockaddr *)&ss[8], 0, 0, &tracked),
	                 LIMIT_PER_IP);
	assert_int_equal(limit_login_blocked(l, &c, (struct sockaddr *)&ss[8], 0), 0);
	assert_int_equal(limit_untracked(l), 0);
	limit_free(l);
}

/* Fills every bucket with live entries: the addresses left over are let
 * in untracked, their logins refused; and two tables (two keys) fill
 * with different addresses. */
static void fill(struct limit_table *l, const struct limit_cfg *c, uint8_t *was_tracked,
                 unsigned n)
{
	unsigned ntracked = 0;

	for (unsigned i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		int tracked;

		net64(i + 1, &ss);
		assert_int_equal(limit_connect(l, c, (struct sockaddr *)&ss, 0, 0, &tracked),
		                 LIMIT_OK);
		was_tracked[i] = (uint8_t)tracked;
		ntracked += (unsigned)tracked;
	}
	assert_int_equal(ntracked, 64);             /* every place, no more */
	for (unsigned i = 0; i < n; i++) {
		struct sockaddr_storage ss;

		net64(i + 1, &ss);
		assert_int_equal(limit_login_blocked(l, c, (struct sockaddr *)&ss, 1), !was_tracked[i]);
	}
}

static void test_full_buckets_fail_closed(void **state)
{
	static const struct limit_cfg c = { .max_per_ip = 1, .auth_fail_limit = 5,
	                                    .auth_fail_window_ms = 1000, .auth_block_ms = 1000,
	                                    .ipv6_prefix = 64 };
	enum { N = 2000 };
	static uint8_t a[N], b[N];
	struct limit_table *l1 = limit_new(64), *l2 = limit_new(64);

	(void)state;
	assert_non_null(l1);
	assert_non_null(l2);
	fill(l1, &c, a, N);
	fill(l2, &c, b, N);
	assert_int_equal(limit_untracked(l1), 2 * (N - 64));  /* connect + login check */
	assert_true(memcmp(a, b, N) != 0);
	limit_free(l1);
	limit_free(l2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_total),
		cmocka_unit_test(test_per_ip),
		cmocka_unit_test(test_ipv6_prefix_128),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_auth_failures),
		cmocka_unit_test(test_bounded_memory),
		cmocka_unit_test(test_no_limits),
		cmocka_unit_test(test_exempt),
		cmocka_unit_test(test_key_text),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_offline_collisions),
		cmocka_unit_test(test_full_buckets_fail_closed),
	};
	return cmocka_run_group_tests_name("limit", tests, NULL, NULL);
}
