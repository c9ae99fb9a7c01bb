/*
 * route: the per-user map, loaded from temporary files (mkstemp). Tables
 * of lookups for a good file, of files with their exact error text, of
 * rewrites; and a generated map of 100,000 users.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route.h"

/* The backends every test map may use: indexes 0, 1, 2. */
static const char *const names[] = { "store-a", "store-b", "archive" };
#define NNAMES (sizeof names / sizeof names[0])

/* Writes text[0..len) to a new temporary file; its name goes to path
 * (at least 32 bytes). */
static void write_temp(const char *text, size_t len, char *path)
{
	int fd;

	strcpy(path, "/tmp/test_route_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Loads text[0..len) as a map file: route_map_load's return, with the map
 * or the errors, and the file's name in path. */
static int load_text(const char *text, size_t len, char *path, struct route_map **m,
                     char **errors)
{
	int rc;

	write_temp(text, len, path);
	rc = route_map_load(path, names, NNAMES, m, errors);
	unlink(path);
	if (rc == 0) {
		assert_non_null(*m);
		assert_null(*errors);
	} else {
		assert_int_equal(rc, -1);
		assert_null(*m);
		assert_non_null(*errors);
	}
	return rc;
}

/* The error text for spec, a list of "LINE: message\n" lines: each
 * prefixed with "path:" (but "... more errors"). Caller frees. */
static char *expected_errors(const char *path, const char *spec)
{
	size_t cap = strlen(spec) * 2 + 1024, used = 0;
	char *out = malloc(cap);

	assert_non_null(out);
	while (*spec) {
		const char *nl = strchr(spec, '\n');
		size_t n = nl ? (size_t)(nl + 1 - spec) : strlen(spec);
		int w = strncmp(spec, "...", 3) == 0 ?
		            snprintf(out + used, cap - used, "%.*s", (int)n, spec) :
		            snprintf(out + used, cap - used, "%s:%.*s", path, (int)n, spec);
		assert_true(w > 0 && (size_t)w < cap - used);
		used += (size_t)w;
		spec += n;
	}
	out[used] = '\0';
	return out;
}

/* Loads text, which must fail with exactly the errors of spec. */
static void expect_errors(const char *text, size_t len, const char *spec)
{
	char path[32], *errors;
	struct route_map *m;
	char *want;

	assert_int_equal(load_text(text, len, path, &m, &errors), -1);
	want = expected_errors(path, spec);
	assert_string_equal(errors, want);
	free(want);
	free(errors);
}

static const char good_file[] =
	"# routing for the tests\n"
	"\n"
	"alice@example.com   store-a\n"
	"   # an indented comment\n"
	"bob\tstore-b\n"
	"@example.org        store-b      # every user of a domain\n"
	"dave@example.org\tstore-a\t# dave stays on the old store\n"
	"weird@x@example.net archive\r\n"
	"Erin@Example.NET  archive   \r\n"
	"\t \r\n"
	"#\n"
	"@EXAMPLE.net store-a\t#\n"
	"@example.net#x store-b\n"
	"last@example.com archive";       /* no line end */

struct lookup_case {
	const char *user;
	size_t len;                       /* 0: strlen(user) */
	long want;
};

static const struct lookup_case good_lookups[] = {
	{ "alice@example.com", 0, 0 },
	{ "ALICE@EXAMPLE.COM", 0, 0 },
	{ "aLiCe@eXaMpLe.CoM", 0, 0 },
	{ "bob", 0, 1 },
	{ "BOB", 0, 1 },
	{ "bob@example.com", 0, -1 },     /* "bob" is only bob; no @example.com line */
	{ "carol@example.org", 0, 1 },    /* the domain's line */
	{ "Carol@EXAMPLE.ORG", 0, 1 },
	{ "dave@example.org", 0, 0 },     /* his own line beats the domain's */
	{ "DAVE@Example.Org", 0, 0 },
	{ "weird@x@example.net", 0, 2 },  /* exact, two '@' */
	{ "other@x@example.net", 0, 0 },  /* "@example.net", after the last '@' */
	{ "a@example.org@example.net", 0, 0 },
	{ "x@example.org@nowhere", 0, -1 },
	{ "erin@example.net", 0, 2 },     /* own line beats @example.net */
	{ "frank@example.net", 0, 0 },
	{ "frank@example.net#x", 0, 1 },  /* '#' inside a word is no comment */
	{ "example.org", 0, -1 },         /* no '@': domains do not apply */
	{ "example.net", 0, -1 },
	{ "@example.org", 0, 1 },
	{ "", 0, -1 },
	{ "@", 0, -1 },
	{ "alice", 0, -1 },
	{ "alice@example.co", 0, -1 },
	{ "alice@example.comm", 0, -1 },
	{ "bo", 0, -1 },
	{ "last@example.com", 0, 2 },
	{ "alice@example.comXYZ", 17, 0 },  /* only len bytes count */
	{ "bob@example.org", 3, 1 },
	{ "carol@example.orgX", 17, 1 },
	{ "bob\tstore-b", 0, -1 },
};

static void test_good_file(void **state)
{
	char path[32], *errors;
	struct route_map *m;

	(void)state;
	assert_int_equal(load_text(good_file, sizeof good_file - 1, path, &m, &errors), 0);
	assert_int_equal(route_map_entries(m), 9);
	for (size_t i = 0; i < sizeof good_lookups / sizeof good_lookups[0]; i++) {
		const struct lookup_case *c = &good_lookups[i];
		size_t len = c->len ? c->len : strlen(c->user);
		long got = route_lookup(m, c->user, len);
		if (got != c->want)
			fail_msg("%s (%zu bytes): got %ld, want %ld", c->user, len, got, c->want);
	}
	route_map_free(m);
}

/* Empty and comment-only files make empty maps; NULL is no map. */
static void test_empty(void **state)
{
	static const char *const texts[] = { "", "\n\n", "# nothing yet\r\n  \t\n# x" };
	char path[32], *errors;
	struct route_map *m;

	(void)state;
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		assert_int_equal(load_text(texts[i], strlen(texts[i]), path, &m, &errors), 0);
		assert_int_equal(route_map_entries(m), 0);
		assert_int_equal(route_lookup(m, "alice", 5), -1);
		route_map_free(m);
	}
	assert_int_equal(route_map_entries(NULL), 0);
	assert_int_equal(route_lookup(NULL, "alice", 5), -1);
	route_map_free(NULL);
}

struct error_case {
	const char *text;
	size_t len;                       /* 0: strlen(text) */
	const char *errors;               /* "LINE: message\n" lines */
};

#define SYNTAX "expected \"USER BACKEND\" or \"@DOMAIN BACKEND\"\n"

static const struct error_case error_cases[] = {
	{ "alice store-a\nbob store-c\n", 0,
	  "2: unknown backend \"store-c\" (no [backend store-c] section)\n" },
	{ "alice Store-A\n", 0,           /* backend names are exact */
	  "1: unknown backend \"Store-A\" (no [backend Store-A] section)\n" },
	{ "alice store-a#x\n", 0,
	  "1: unknown backend \"store-a#x\" (no [backend store-a#x] section)\n" },
	{ "alice store\x01" "b\n", 0,
	  "1: unknown backend \"store?b\" (no [backend store?b] section)\n" },
	{ "alice@example.com store-a\n# c\nbob store-b\n\nALICE@example.COM store-b\n", 0,
	  "5: \"ALICE@example.COM\" is already routed on line 1\n" },
	{ "x store-a\nX store-a\nx store-b\n", 0,
	  "2: \"X\" is already routed on line 1\n"
	  "3: \"x\" is already routed on line 1\n" },
	{ "@Example.org store-a\r\n@example.ORG\tstore-a\r\n", 0,
	  "2: \"@example.ORG\" is already routed on line 1\n" },
	{ "alice\n", 0, "1: " SYNTAX },
	{ "  alice   \r\n", 0, "1: " SYNTAX },
	{ "alice # store-a\n", 0, "1: " SYNTAX },
	{ "alice store-a extra\n", 0, "1: " SYNTAX },
	{ "ok store-a\nalice\tstore-a\tstore-b # two\n", 0, "2: " SYNTAX },
	{ "@ store-a\n", 0, "1: " SYNTAX },
	{ "bob@ store-a\n", 0, "1: " SYNTAX },
	{ "alice store-a\nb\0b store-a\n", 26, "2: " SYNTAX },
	/* every kind, reported in line order */
	{ "a store-x\nbad\nA store-a\nb store-a extra\nc store-b\n", 0,
	  "1: unknown backend \"store-x\" (no [backend store-x] section)\n"
	  "2: " SYNTAX
	  "3: \"A\" is already routed on line 1\n"
	  "4: " SYNTAX },
	/* two problems on one line */
	{ "a store-a\nA nope\n", 0,
	  "2: unknown backend \"nope\" (no [backend nope] section)\n"
	  "2: \"A\" is already routed on line 1\n" },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
		const struct error_case *c = &error_cases[i];
		expect_errors(c->text, c->len ? c->len : strlen(c->text), c->errors);
	}
}

/* 1024 bytes before the line end are fine, 1025 are not. */
static void test_line_length(void **state)
{
	char text[8192], path[32], *errors, key[1100];
	struct route_map *m;
	size_t n = 0;

	(void)state;
	memset(key, 'a', 1016);           /* + " store-a" = 1024 */
	key[1016] = '\0';
	n += (size_t)sprintf(text + n, "%s store-a\r\n", key);
	assert_int_equal(load_text(text, n, path, &m, &errors), 0);
	assert_int_equal(route_lookup(m, key, 1016), 0);
	route_map_free(m);

	memset(key, 'b', 1017);           /* 1025 */
	key[1017] = '\0';
	n += (size_t)sprintf(text + n, "%s store-a\n", key);
	memset(text + n, 'c', 5000);      /* 5000 bytes, at the end with no line end */
	n += 5000;
	expect_errors(text, n,
	              "2: line is longer than 1024 bytes\n"
	              "3: line is longer than 1024 bytes\n");
}

/* A long backend name is quoted cut to 100 bytes. */
static void test_long_name(void **state)
{
	char text[256], spec[512], name[101];

	(void)state;
	memset(name, 'n', 100);
	name[100] = '\0';
	snprintf(text, sizeof text, "alice %s%s\n", name, "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn");
	snprintf(spec, sizeof spec, "1: unknown backend \"%s...\" (no [backend %s...] section)\n",
	         name, name);
	expect_errors(text, strlen(text), spec);
}

/* 20 problems are shown, the first by line even when found last. */
static void test_many_errors(void **state)
{
	char text[4096], spec[4096];
	size_t n = 0, s = 0;

	(void)state;
	n += (size_t)sprintf(text + n, "a store-a\nA store-a\n");   /* duplicate: found last */
	for (int line = 3; line <= 30; line++)
		n += (size_t)sprintf(text + n, "bad%d\n", line);
	s += (size_t)sprintf(spec + s, "2: \"A\" is already routed on line 1\n");
	for (int line = 3; line <= 21; line++)
		s += (size_t)sprintf(spec + s, "%d: %s", line, SYNTAX);
	sprintf(spec + s, "... more errors\n");
	expect_errors(text, n, spec);

	/* a duplicate found last but after the 20 shown stays out */
	n = s = 0;
	for (int line = 1; line <= 20; line++) {
		n += (size_t)sprintf(text + n, "bad\n");
		s += (size_t)sprintf(spec + s, "%d: %s", line, SYNTAX);
	}
	n += (size_t)sprintf(text + n, "a store-a\nA store-a\n");
	sprintf(spec + s, "... more errors\n");
	expect_errors(text, n, spec);

	/* exactly 20: no "more" line */
	n = s = 0;
	for (int line = 1; line <= 20; line++) {
		n += (size_t)sprintf(text + n, "bad\n");
		s += (size_t)sprintf(spec + s, "%d: %s", line, SYNTAX);
	}
	expect_errors(text, n, spec);
}

static void test_unreadable(void **state)
{
	char path[32], dir[32], *errors = (char *)1, *want;
	struct route_map *m = (struct route_map *)1;

	(void)state;
	write_temp("", 0, path);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(route_map_load(path, names, NNAMES, &m, &errors), -1);
	assert_null(m);
	want = malloc(strlen(path) + 64);
	assert_non_null(want);
	sprintf(want, "%s: cannot read: No such file or directory\n", path);
	assert_string_equal(errors, want);
	free(errors);

	strcpy(dir, "/tmp/test_route_XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(route_map_load(dir, names, NNAMES, &m, &errors), -1);
	assert_null(m);
	sprintf(want, "%s: cannot read: Is a directory\n", dir);
	assert_string_equal(errors, want);
	free(errors);
	free(want);
	assert_int_equal(rmdir(dir), 0);
}

#define BIG_USERS 100000
#define BIG_DOMAINS 100

/* 100,000 users in scrambled order, spread over 100 domains that have a
 * line each: every user, in either case, then users without a line. */
static void test_large(void **state)
{
	size_t cap = (size_t)BIG_USERS * 40 + 4096, n = 0;
	char *text = malloc(cap), path[32], *errors, user[64];
	struct route_map *m;

	(void)state;
	assert_non_null(text);
	for (unsigned i = 0; i < BIG_USERS; i++) {
		unsigned u = (unsigned)(((unsigned long)i * 7919) % BIG_USERS);
		n += (size_t)snprintf(text + n, cap - n, "user%06u@d%u.example\t%s\n", u,
		                      u % BIG_DOMAINS, names[u % 3]);
	}
	for (unsigned d = 0; d < BIG_DOMAINS; d++)
		n += (size_t)snprintf(text + n, cap - n, "@D%u.EXAMPLE %s\n", d, names[(d + 1) % 3]);
	assert_true(n < cap);
	assert_int_equal(load_text(text, n, path, &m, &errors), 0);
	free(text);
	assert_int_equal(route_map_entries(m), BIG_USERS + BIG_DOMAINS);
	for (unsigned u = 0; u < BIG_USERS; u++) {
		int len = snprintf(user, sizeof user, u % 2 ? "user%06u@d%u.example" :
		                   "USER%06u@D%u.Example", u, u % BIG_DOMAINS);
		assert_int_equal(route_lookup(m, user, (size_t)len), u % 3);
	}
	for (unsigned d = 0; d < BIG_DOMAINS; d++) {
		int len = snprintf(user, sizeof user, "nobody@d%u.example", d);
		assert_int_equal(route_lookup(m, user, (size_t)len), (d + 1) % 3);
	}
	assert_int_equal(route_lookup(m, "user100000@nowhere", 18), -1);
	assert_int_equal(route_lookup(m, "user000001", 10), -1);
	route_map_free(m);
}

struct rewrite_case {
	const char *user;
	size_t len;                       /* 0: strlen(user) */
	int strip;
	const char *add;
	size_t cap;                       /* 0: the whole buffer */
	int rc;
	const char *want;                 /* when rc == 0 */
};

static const struct rewrite_case rewrite_cases[] = {
	/* none */
	{ "alice@example.com", 0, 0, NULL, 0, 0, "alice@example.com" },
	{ "alice@example.com", 0, 0, "", 0, 0, "alice@example.com" },
	{ "alice", 0, 0, NULL, 0, 0, "alice" },
	/* strip */
	{ "alice@example.com", 0, 1, NULL, 0, 0, "alice" },
	{ "alice@example.com", 0, 1, "", 0, 0, "alice" },
	{ "alice", 0, 1, NULL, 0, 0, "alice" },
	{ "a@b@c", 0, 1, NULL, 0, 0, "a@b" },
	{ "alice@example.comXYZ", 17, 1, NULL, 0, 0, "alice" },
	/* add */
	{ "alice", 0, 0, "corp.example", 0, 0, "alice@corp.example" },
	{ "alice@example.com", 0, 0, "corp.example", 0, 0, "alice@example.com" },
	{ "alice@example.comXYZ", 5, 0, "corp.example", 0, 0, "alice@corp.example" },
	/* both */
	{ "alice@example.com", 0, 1, "corp.example", 0, 0, "alice@corp.example" },
	{ "alice", 0, 1, "corp.example", 0, 0, "alice@corp.example" },
	{ "a@b@c", 0, 1, "corp.example", 0, 0, "a@b" },
	/* empty */
	{ "@example.com", 0, 1, NULL, 0, -1, NULL },
	{ "@example.com", 0, 1, "corp.example", 0, -1, NULL },
	{ "", 0, 0, NULL, 0, -1, NULL },
	{ "", 0, 0, "corp.example", 0, -1, NULL },
	/* too long: cap counts the NUL */
	{ "alice", 0, 0, "d", 8, 0, "alice@d" },
	{ "alice", 0, 0, "d", 7, -1, NULL },
	{ "alice@example.com", 0, 1, NULL, 6, 0, "alice" },
	{ "alice@example.com", 0, 1, NULL, 5, -1, NULL },
	{ "bob", 0, 0, NULL, 4, 0, "bob" },
	{ "bob", 0, 0, NULL, 3, -1, NULL },
	{ "bob", 0, 0, NULL, 1, -1, NULL },
	{ "alice@example.com", 0, 0, NULL, 17, -1, NULL },
	{ "alice@example.com", 0, 0, NULL, 18, 0, "alice@example.com" },
};

static void test_rewrite(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof rewrite_cases / sizeof rewrite_cases[0]; i++) {
		const struct rewrite_case *c = &rewrite_cases[i];
		char out[64];
		size_t len = c->len ? c->len : strlen(c->user), out_len = 99;
		int rc;

		memset(out, 'X', sizeof out);
		rc = route_rewrite_user(c->user, len, c->strip, c->add, out, c->cap ? c->cap : sizeof out,
		                        &out_len);
		if (rc != c->rc)
			fail_msg("row %zu (%s): rc %d, want %d", i, c->user, rc, c->rc);
		if (rc == 0) {
			assert_string_equal(out, c->want);
			assert_int_equal(out_len, strlen(c->want));
		} else {
			assert_int_equal(out[0], 'X');   /* nothing written */
			assert_int_equal(out_len, 99);
		}
	}
}

/* In place, and without out_len. */
static void test_rewrite_in_place(void **state)
{
	char buf[32] = "alice@example.com";

	(void)state;
	assert_int_equal(route_rewrite_user(buf, strlen(buf), 1, "corp.example", buf, sizeof buf,
	                                    NULL), 0);
	assert_string_equal(buf, "alice@corp.example");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_long_name),
		cmocka_unit_test(test_many_errors),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_rewrite),
		cmocka_unit_test(test_rewrite_in_place),
	};
	return cmocka_run_group_tests_name("route", tests, NULL, NULL);
}
