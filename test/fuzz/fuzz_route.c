/*
 * fuzz_route: libFuzzer target for proxy/route.c.
 *
 * The input is a route map file. route_map_load() reads it from a memfd,
 * with the backends "store-a", "store-b" and "c", and a reference reading
 * written here from route.h's description says what it must answer:
 *   - a map, when no line is too long, malformed or of an unknown
 *     backend and no key comes twice (ASCII case aside), with one entry
 *     per KEY BACKEND line, each found by route_lookup() as written and
 *     in the other case;
 *   - otherwise no map and one "FILE:LINE: message" line for each of the
 *     first 20 problems by line, then "... more errors" if there were
 *     more.
 * route_lookup() must give, for every whitespace-separated token of the
 * input and for "x@" + token, what the reference gives (the exact name,
 * else "@" + its last domain, else -1); never an index past the names.
 * route_map_free() and free() must release everything (LeakSanitizer).
 *
 * route_rewrite_user() is run on every token, with and without
 * strip_domain, with add_domain NULL, "" and "example.org", into a room
 * one byte short and one just big enough (the first tokens also into
 * every room 1..64 and in place): it must give the reference's name,
 * NUL-terminated with its length, or refuse without writing a byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "route.h"

#define GUARD 0xA5
#define NNAMES 3
#define MAX_LINE 1024         /* route.h: bytes a line may hold */
#define MAX_SHOWN 20          /* route.h: problems reported by line */
#define SWEEP_TOKENS 4        /* tokens tried with every room 1..64 */

static const char *const names[NNAMES] = { "store-a", "store-b", "c" };
static const char *const domains[3] = { NULL, "", "example.org" };

struct ref_entry {
	const uint8_t *key;
	size_t len;
	size_t line;
	long backend;
};

/* The reference reading of a map. */
struct ref {
	struct ref_entry *e;
	size_t n;
	size_t *bad;                  /* lines with a problem, one per problem */
	size_t nbad;
	size_t lines;
};

FZ_NOCOV static uint8_t lower(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

FZ_NOCOV static int same_key(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	if (alen != blen)
		return 0;
	for (size_t i = 0; i < alen; i++)
		if (lower(a[i]) != lower(b[i]))
			return 0;
	return 1;
}

static int blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* One line, [p, end) without its line end. */
FZ_NOCOV static void ref_line(struct ref *rf, size_t line, const uint8_t *p, const uint8_t *end)
{
	const uint8_t *key, *key_end, *name, *name_end, *rest;
	long backend = -1;

	if (end - p > MAX_LINE) {
		rf->bad[rf->nbad++] = line;
		return;
	}
	for (key = p; key < end && blank(*key); key++)
		;
	if (key == end || *key == '#')
		return;
	for (key_end = key; key_end < end && !blank(*key_end); key_end++)
		;
	for (name = key_end; name < end && blank(*name); name++)
		;
	for (name_end = name; name_end < end && !blank(*name_end); name_end++)
		;
	for (rest = name_end; rest < end && blank(*rest); rest++)
		;
	if (name == end || *name == '#' || (rest < end && *rest != '#') || key_end[-1] == '@' ||
	    memchr(p, '\0', (size_t)(end - p))) {
		rf->bad[rf->nbad++] = line;
		return;
	}
	for (size_t i = 0; i < NNAMES; i++)
		if (strlen(names[i]) == (size_t)(name_end - name) &&
		    memcmp(names[i], name, (size_t)(name_end - name)) == 0)
			backend = (long)i;
	if (backend < 0)
		rf->bad[rf->nbad++] = line;
	rf->e[rf->n++] = (struct ref_entry){ key, (size_t)(key_end - key), line, backend };
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

/* Reads the map as route.h describes it. */
FZ_NOCOV static void ref_load(struct ref *rf, const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	size_t cap = 1;

	for (size_t i = 0; i < size; i++)
		cap += data[i] == '\n';
	rf->e = calloc(cap, sizeof *rf->e);
	rf->bad = calloc(2 * cap, sizeof *rf->bad);  /* a line: its own problem and a duplicate */
	CHECK(rf->e != NULL && rf->bad != NULL);
	rf->n = rf->nbad = rf->lines = 0;
	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		const uint8_t *stop = nl ? nl : end;

		if (stop > p && stop[-1] == '\r')
			stop--;
		ref_line(rf, ++rf->lines, p, stop);
		p = nl ? nl + 1 : end;
	}
	/* a key already given on an earlier line */
	for (size_t j = 0; j < rf->n; j++)
		for (size_t i = 0; i < j; i++)
			if (same_key(rf->e[i].key, rf->e[i].len, rf->e[j].key, rf->e[j].len)) {
				rf->bad[rf->nbad++] = rf->e[j].line;
				break;
			}
	qsort(rf->bad, rf->nbad, sizeof *rf->bad, cmp_size);
}

/* The reference lookup: the exact name, else "@" + its last domain. */
FZ_NOCOV static long ref_lookup(const struct ref *rf, const uint8_t *user, size_t len)
{
	size_t at = len;

	for (size_t i = 0; i < rf->n; i++)
		if (same_key(rf->e[i].key, rf->e[i].len, user, len))
			return rf->e[i].backend;
	while (at > 0 && user[at - 1] != '@')
		at--;
	if (at == 0)
		return -1;
	for (size_t i = 0; i < rf->n; i++)
		if (same_key(rf->e[i].key, rf->e[i].len, user + at - 1, len - at + 1))
			return rf->e[i].backend;
	return -1;
}

/* A refusal: exactly the expected lines, in order. */
FZ_NOCOV static void check_errors(const char *e, const char *path, const struct ref *rf)
{
	size_t plen = strlen(path), shown = rf->nbad < MAX_SHOWN ? rf->nbad : MAX_SHOWN;

	CHECK(*e != '\0');
	for (size_t i = 0; i < shown; i++) {
		const char *nl = strchr(e, '\n');
		char *num_end;
		unsigned long line;

		CHECK(nl != NULL);
		CHECK(strncmp(e, path, plen) == 0 && e[plen] == ':');
		line = strtoul(e + plen + 1, &num_end, 10);
		CHECK(num_end > e + plen + 1 && num_end[0] == ':' && num_end[1] == ' ');
		CHECK(line == rf->bad[i]);
		CHECK(num_end + 2 < nl);                 /* a message */
		for (const char *c = num_end + 2; c < nl; c++)
			CHECK((unsigned char)*c >= 0x20 && *c != 0x7f);
		e = nl + 1;
	}
	if (rf->nbad > MAX_SHOWN) {
		CHECK(strcmp(e, "... more errors\n") == 0);
		e += strlen(e);
	}
	CHECK(*e == '\0');
}

/* route_lookup() on user[0..len), from an exact-size copy. */
static void check_lookup(const struct route_map *m, const struct ref *rf, const uint8_t *user,
                         size_t len)
{
	char *u = malloc(len ? len : 1);
	long want = m ? ref_lookup(rf, user, len) : -1, got;

	CHECK(u != NULL);
	if (len)
		memcpy(u, user, len);
	got = route_lookup(m, u, len);
	CHECK(got >= -1 && got < NNAMES);
	CHECK(got == want);
	free(u);
}

/* What route_rewrite_user() should make of user[0..len), in want; its
 * length, or -1 for "empty name". */
FZ_NOCOV static long ref_rewrite(const char *user, size_t len, int strip, const char *dom,
                                 char *want)
{
	size_t n = len, total;
	int has_at = 0;

	if (strip) {
		size_t at = len;
		while (at > 0 && user[at - 1] != '@')
			at--;
		if (at > 0)
			n = at - 1;
	}
	if (n == 0)
		return -1;
	memcpy(want, user, n);
	for (size_t i = 0; i < n; i++)
		has_at |= user[i] == '@';
	total = n;
	if (dom && *dom && !has_at) {
		want[total++] = '@';
		memcpy(want + total, dom, strlen(dom));
		total += strlen(dom);
	}
	want[total] = '\0';
	return (long)total;
}

/* One call into room cap at the end of buf (bufsize bytes, so ASan sees
 * a write past cap), against want (wlen, or -1). */
FZ_NOCOV static void check_rewrite_cap(const char *user, size_t len, int strip, const char *dom,
                                       const char *want, long wlen, char *buf, size_t bufsize,
                                       size_t cap)
{
	char *out = buf + (bufsize - cap);
	size_t out_len = (size_t)-7;
	int rc;

	memset(out, GUARD, cap);
	rc = route_rewrite_user(user, len, strip, dom, out, cap, cap & 1 ? &out_len : NULL);
	CHECK(rc == 0 || rc == -1);
	if (wlen < 0 || (size_t)wlen >= cap) {
		CHECK(rc == -1);
		for (size_t i = 0; i < cap; i++)
			CHECK((uint8_t)out[i] == GUARD);
		CHECK(out_len == (size_t)-7);
		return;
	}
	CHECK(rc == 0);
	CHECK(memcmp(out, want, (size_t)wlen + 1) == 0);
	/* a name with a NUL inside (never from the dialogues, which refuse
	 * NUL) is copied as it is: only the length can tell its end */
	if (!memchr(want, '\0', (size_t)wlen))
		CHECK(strlen(out) == (size_t)wlen);
	if (cap & 1)
		CHECK(out_len == (size_t)wlen);
}

/* route_rewrite_user() on one token (an exact-size copy), every way. */
static void check_rewrite(const uint8_t *tok, size_t len, int sweep)
{
	char *user = malloc(len ? len : 1);
	size_t wcap = len + 2 + strlen("example.org") + 1;
	size_t bufsize = wcap + 66;
	char *want = malloc(wcap), *buf = malloc(bufsize), *inplace;

	CHECK(user != NULL && want != NULL && buf != NULL);
	if (len)
		memcpy(user, tok, len);
	for (int strip = 0; strip <= 1; strip++) {
		for (int d = 0; d < 3; d++) {
			const char *dom = domains[d];
			long wlen = ref_rewrite(user, len, strip, dom, want);
			size_t caps[2] = { 0, 64 };

			/* one byte short and just enough (or none and plenty) */
			if (wlen >= 0) {
				caps[0] = (size_t)wlen;
				caps[1] = (size_t)wlen + 1;
			}
			for (size_t i = 0; i < 2; i++)
				check_rewrite_cap(user, len, strip, dom, want, wlen, buf, bufsize, caps[i]);
			if (!sweep)
				continue;
			for (size_t cap = 1; cap <= 64; cap++)
				check_rewrite_cap(user, len, strip, dom, want, wlen, buf, bufsize, cap);

			/* in place, with just enough room and one byte less */
			for (int less = 0; less <= 1 && wlen >= 0; less++) {
				size_t cap = (size_t)wlen + 1 - (size_t)less;
				size_t isize = cap > len ? cap : len;
				size_t got = 0;
				int rc;

				inplace = malloc(isize ? isize : 1);
				CHECK(inplace != NULL);
				if (len)
					memcpy(inplace, user, len);
				rc = route_rewrite_user(inplace, len, strip, dom, inplace, cap, &got);
				if (less) {
					CHECK(rc == -1 && memcmp(inplace, user, len) == 0);
				} else {
					CHECK(rc == 0 && got == (size_t)wlen);
					CHECK(memcmp(inplace, want, (size_t)wlen + 1) == 0);
				}
				free(inplace);
			}
		}
	}
	free(user);
	free(want);
	free(buf);
}

/* Bytes that end a token. */
static int sep(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct route_map *m = (struct route_map *)&m;   /* must be set */
	char *errors = (char *)&errors, path[64];
	int fd = memfd_create("routes", MFD_CLOEXEC), rc;
	struct ref rf;
	size_t ntok = 0;

	CHECK(fd >= 0);
	CHECK(write(fd, data, size) == (ssize_t)size);
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ref_load(&rf, data, size);

	rc = route_map_load(path, names, NNAMES, &m, &errors);
	close(fd);
	CHECK(rc == 0 || rc == -1);
	if (rc == 0) {
		CHECK(rf.nbad == 0);
		CHECK(m != NULL && errors == NULL);
		CHECK(route_map_entries(m) == rf.n && rf.n <= rf.lines);
		for (size_t i = 0; i < rf.n; i++) {
			uint8_t *flip = malloc(rf.e[i].len);
			CHECK(rf.e[i].backend >= 0 && rf.e[i].backend < NNAMES);
			CHECK(flip != NULL);
			check_lookup(m, &rf, rf.e[i].key, rf.e[i].len);
			CHECK(route_lookup(m, (const char *)rf.e[i].key, rf.e[i].len) ==
			      rf.e[i].backend);
			/* the other ASCII case finds the same entry */
			for (size_t k = 0; k < rf.e[i].len; k++) {
				uint8_t c = rf.e[i].key[k];
				flip[k] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? c ^ 0x20 : c;
			}
			CHECK(route_lookup(m, (const char *)flip, rf.e[i].len) == rf.e[i].backend);
			free(flip);
		}
	} else {
		CHECK(rf.nbad > 0);
		CHECK(m == NULL && errors != NULL);
		check_errors(errors, path, &rf);
		CHECK(route_map_entries(m) == 0);
	}
	CHECK(route_lookup(NULL, "alice", 5) == -1 && route_map_entries(NULL) == 0);

	/* every token, and "x@" + token */
	for (size_t i = 0; i < size;) {
		size_t j = i;
		uint8_t *xat;

		while (j < size && !sep(data[j]))
			j++;
		if (j == i) {
			i++;
			continue;
		}
		check_lookup(m, &rf, data + i, j - i);
		xat = malloc(j - i + 2);
		CHECK(xat != NULL);
		xat[0] = 'x';
		xat[1] = '@';
		memcpy(xat + 2, data + i, j - i);
		check_lookup(m, &rf, xat, j - i + 2);
		free(xat);
		check_rewrite(data + i, j - i, ntok++ < SWEEP_TOKENS);
		i = j;
	}
	check_lookup(m, &rf, (const uint8_t *)"", 0);

	route_map_free(m);
	route_map_free(NULL);
	free(errors);
	free(rf.e);
	free(rf.bad);
	return 0;
}
