/*
 * tkey: the ticket key file. Tables of good files with the keys they give
 * (decoded bytes, in order) and of bad files with their exact error text,
 * each parsed from memory and loaded from a temporary file (mkstemp);
 * unreadable files, the 8 KiB cap, rotation order, and the keys that
 * scripts/ticket-keys.sh writes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tkey.h"

#define FILE_NAME "keys.txt"          /* the name tkey_parse gets */

/* Keys, 64 hex digits each. */
#define K_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define K_B "f0e1d2c3b4a5968778695a4b3c2d1e0f0123456789abcdeffedcba9876543210"
#define K_B_UPPER "F0E1D2C3B4A5968778695A4B3C2D1E0F0123456789ABCDEFFEDCBA9876543210"
#define K_C "deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
#define K_D "0000000000000000000000000000000000000000000000000000000000000001"
#define K_E "8000000000000000000000000000000000000000000000000000000000000000"
#define K_ZERO "0000000000000000000000000000000000000000000000000000000000000000"
#define K_62 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e"
#define K_66 K_A "ab"
#define K_BAD "000102030405060708090a0b0c0d0e0f1011121314151617181g1a1b1c1d1e1f"

_Static_assert(sizeof K_A == 65 && sizeof K_B == 65 && sizeof K_B_UPPER == 65 &&
               sizeof K_C == 65 && sizeof K_D == 65 && sizeof K_E == 65 &&
               sizeof K_ZERO == 65 && sizeof K_62 == 63 && sizeof K_66 == 67 &&
               sizeof K_BAD == 65, "test keys have the wrong length");

#define SYNTAX "expected an 8-hex-digit key name and a 64-hex-digit key\n"

/* Decodes the hex digits of s into out (strlen(s) / 2 bytes). */
static void unhex(const char *s, uint8_t *out)
{
	size_t n = strlen(s) / 2;

	for (size_t i = 0; i < n; i++) {
		unsigned v;
		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

/* Writes text[0..len) to a new temporary file; its name goes to path
 * (at least 32 bytes). */
static void write_temp(const char *text, size_t len, char *path)
{
	int fd;

	strcpy(path, "/tmp/test_tkey_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Loads text[0..len) from a temporary file: tkey_load's return, with the
 * keys or the errors, and the file's name in path. */
static int load_text(const char *text, size_t len, char *path, struct tkeys *k, char **errors)
{
	int rc;

	write_temp(text, len, path);
	rc = tkey_load(path, k, errors);
	assert_int_equal(unlink(path), 0);
	return rc;
}

/* True when the n bytes at p are all zero. */
static int zeroed(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return 0;
	return 1;
}

/* Checks what a failed parse leaves: -1, no keys, the errors. */
static void assert_failed(int rc, const struct tkeys *k, char *const *errors)
{
	assert_int_equal(rc, -1);
	assert_true(zeroed(k, sizeof *k));
	assert_non_null(*errors);
}

struct good_case {
	const char *what;
	const char *text;
	size_t len;                       /* 0: strlen(text) */
	size_t n;
	const char *want[TKEY_MAX][2];    /* name, key: lower-case hex, newest first */
};

static const struct good_case good_cases[] = {
	{ "one key", "1f2e3d4c " K_A "\n", 0, 1, { { "1f2e3d4c", K_A } } },
	{ "no line end", "1f2e3d4c " K_A, 0, 1, { { "1f2e3d4c", K_A } } },
	{ "four keys",
	  "00000004 " K_A "\n00000003 " K_B "\n00000002 " K_C "\n00000001 " K_D "\n", 0, 4,
	  { { "00000004", K_A }, { "00000003", K_B }, { "00000002", K_C }, { "00000001", K_D } } },
	{ "the example in the header",
	  "# comments and blank lines are ignored\n"
	  "# newest key first: it encrypts new tickets; the others (older) still decrypt\n"
	  "1f2e3d4c " K_B "\n", 0, 1, { { "1f2e3d4c", K_B } } },
	{ "comments and blank lines",
	  "# ticket keys\n"
	  "\n"
	  "   # an indented comment\n"
	  "aaaaaaaa " K_C "\n"
	  "\t\n"
	  "#\n"
	  "#bbbbbbbb " K_A "\n"           /* a commented-out key */
	  "   \n"
	  "cccccccc " K_E "\n"
	  "# the end", 0, 2, { { "aaaaaaaa", K_C }, { "cccccccc", K_E } } },
	{ "CRLF",
	  "# keys\r\n\r\n12345678 " K_A "\r\n9abcdef0 " K_B "\r\n", 0, 2,
	  { { "12345678", K_A }, { "9abcdef0", K_B } } },
	{ "CR at the very end", "12345678 " K_A "\r", 0, 1, { { "12345678", K_A } } },
	{ "upper case", "ABCDEF01 " K_B_UPPER "\nAbCdEf02 " K_A "\n", 0, 2,
	  { { "abcdef01", K_B }, { "abcdef02", K_A } } },
	{ "tabs", "\tdeadbeef\t" K_C "\t\n0badf00d\t \t" K_D "\n", 0, 2,
	  { { "deadbeef", K_C }, { "0badf00d", K_D } } },
	{ "blanks around", "   11111111    " K_A "   \r\n  22222222 " K_B " \t \n", 0, 2,
	  { { "11111111", K_A }, { "22222222", K_B } } },
	{ "name of zeros", "00000000 " K_E "\n", 0, 1, { { "00000000", K_E } } },
	{ "a NUL in a comment", "# a\0b\n33333333 " K_C "\n", 6 + 9 + 64 + 1, 1,
	  { { "33333333", K_C } } },
};

/* Checks that k holds exactly the keys of c. */
static void assert_keys(const struct good_case *c, const struct tkeys *k)
{
	uint8_t name[TKEY_NAME_LEN], key[TKEY_KEY_LEN];

	if (k->n != c->n)
		fail_msg("%s: %zu keys, want %zu", c->what, k->n, c->n);
	for (size_t i = 0; i < c->n; i++) {
		unhex(c->want[i][0], name);
		unhex(c->want[i][1], key);
		if (memcmp(k->v[i].name, name, sizeof name) != 0 ||
		    memcmp(k->v[i].key, key, sizeof key) != 0)
			fail_msg("%s: key %zu is not %s", c->what, i, c->want[i][0]);
	}
	assert_true(zeroed(&k->v[c->n], (TKEY_MAX - c->n) * sizeof k->v[0]));
}

static void test_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof good_cases / sizeof good_cases[0]; i++) {
		const struct good_case *c = &good_cases[i];
		size_t len = c->len ? c->len : strlen(c->text);
		char path[32], *errors = (char *)1;
		struct tkeys k;
		int rc;

		memset(&k, 0xaa, sizeof k);   /* leftovers must go */
		rc = tkey_parse(c->text, len, FILE_NAME, &k, &errors);
		if (rc != 0)
			fail_msg("%s: %s", c->what, errors ? errors : "(no errors)");
		assert_null(errors);
		assert_keys(c, &k);

		memset(&k, 0xaa, sizeof k);
		errors = (char *)1;
		rc = load_text(c->text, len, path, &k, &errors);
		if (rc != 0)
			fail_msg("%s (loaded): %s", c->what, errors ? errors : "(no errors)");
		assert_null(errors);
		assert_keys(c, &k);
		tkey_wipe(&k);
		assert_true(zeroed(&k, sizeof k));
	}
}

/* The decoded bytes spelled out, without the test's own hex decoder. */
static void test_bytes(void **state)
{
	static const char text[] = "1F2E3D4C " K_A "\n9a8b7c6d " K_B_UPPER "\n";
	static const uint8_t b_head[] = { 0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87 };
	static const uint8_t b_tail[] = { 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10 };
	char *errors;
	struct tkeys k;

	(void)state;
	assert_int_equal(tkey_parse(text, sizeof text - 1, FILE_NAME, &k, &errors), 0);
	assert_int_equal(k.n, 2);
	assert_int_equal(k.v[0].name[0], 0x1f);
	assert_int_equal(k.v[0].name[1], 0x2e);
	assert_int_equal(k.v[0].name[2], 0x3d);
	assert_int_equal(k.v[0].name[3], 0x4c);
	for (unsigned i = 0; i < TKEY_KEY_LEN; i++)
		assert_int_equal(k.v[0].key[i], i);
	assert_int_equal(k.v[1].name[0], 0x9a);
	assert_int_equal(k.v[1].name[1], 0x8b);
	assert_int_equal(k.v[1].name[2], 0x7c);
	assert_int_equal(k.v[1].name[3], 0x6d);
	assert_memory_equal(k.v[1].key, b_head, sizeof b_head);
	assert_memory_equal(k.v[1].key + 24, b_tail, sizeof b_tail);
	tkey_wipe(&k);
}

/* The error text for spec, a list of "LINE: message\n" lines (" message"
 * for the whole file): each prefixed with "path:" (but "... more
 * errors"). Caller frees. */
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

/* Parses text[0..len) from memory and from a file: both must fail with
 * exactly the errors of spec, leaving no keys. */
static void expect_errors(const char *what, const char *text, size_t len, const char *spec)
{
	char path[32], *errors, *want;
	struct tkeys k;

	memset(&k, 0xaa, sizeof k);
	assert_failed(tkey_parse(text, len, FILE_NAME, &k, &errors), &k, &errors);
	want = expected_errors(FILE_NAME, spec);
	if (strcmp(errors, want) != 0)
		fail_msg("%s: got\n%swant\n%s", what, errors, want);
	free(want);
	free(errors);

	memset(&k, 0xaa, sizeof k);
	assert_failed(load_text(text, len, path, &k, &errors), &k, &errors);
	want = expected_errors(path, spec);
	if (strcmp(errors, want) != 0)
		fail_msg("%s (loaded): got\n%swant\n%s", what, errors, want);
	free(want);
	free(errors);
}

struct error_case {
	const char *what;
	const char *text;
	size_t len;                       /* 0: strlen(text) */
	const char *errors;               /* "LINE: message\n" lines */
};

static const struct error_case error_cases[] = {
	/* not NAME KEY */
	{ "name only", "1f2e3d4c\n", 0, "1: " SYNTAX },
	{ "key only", K_A "\n", 0, "1: " SYNTAX },
	{ "name and key run together", "1f2e3d4c" K_A "\n", 0, "1: " SYNTAX },
	{ "three words", "1f2e3d4c " K_A " " K_B "\n", 0, "1: " SYNTAX },
	{ "a trailing comment", "1f2e3d4c " K_A " # newest\n", 0, "1: " SYNTAX },
	{ "key split", "1f2e3d4c 00010203 0405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
	  0, "1: " SYNTAX },
	{ "bare CR inside", "1f2e3d4c\r" K_A "\n", 0, "1: " SYNTAX },
	{ "a word", "hello\n", 0, "1: " SYNTAX },
	/* lengths */
	{ "name of 7", "1f2e3d4 " K_A "\n", 0, "1: key name has 7 hex digits, needs 8\n" },
	{ "name of 9", "1f2e3d4c5 " K_A "\n", 0, "1: key name has 9 hex digits, needs 8\n" },
	{ "name of 1", "1 " K_A "\n", 0, "1: key name has 1 hex digit, needs 8\n" },
	{ "key of 62", "1f2e3d4c " K_62 "\n", 0, "1: key has 62 hex digits, needs 64\n" },
	{ "key of 66", "1f2e3d4c " K_66 "\n", 0, "1: key has 66 hex digits, needs 64\n" },
	{ "key of 2", "1f2e3d4c ab\n", 0, "1: key has 2 hex digits, needs 64\n" },
	{ "both short", "1f2e3d4 " K_62 "\r\n", 0,
	  "1: key name has 7 hex digits, needs 8\n1: key has 62 hex digits, needs 64\n" },
	/* not hex */
	{ "name with g", "1f2e3d4g " K_A "\n", 0,
	  "1: key name has a character that is not a hex digit\n" },
	{ "name with 0x", "0x1f2e3d " K_A "\n", 0,
	  "1: key name has a character that is not a hex digit\n" },
	{ "key with g", "1f2e3d4c " K_BAD "\n", 0,
	  "1: key has a character that is not a hex digit\n" },
	{ "short key with g", "1f2e3d4c 0g\n", 0,
	  "1: key has a character that is not a hex digit\n" },
	{ "key with UTF-8", "1f2e3d4c " K_62 "\xc3\xa9\n", 0,
	  "1: key has a character that is not a hex digit\n" },
	{ "key with NUL", "1f2e3d4c " K_62 "\0" "0\n", 9 + 64 + 1,
	  "1: key has a character that is not a hex digit\n" },
	{ "CR then blank", "1f2e3d4c " K_A "\r \n", 0,
	  "1: key has a character that is not a hex digit\n" },
	{ "both not hex", "zzzzzzzz " K_BAD "\n", 0,
	  "1: key name has a character that is not a hex digit\n"
	  "1: key has a character that is not a hex digit\n" },
	/* names used twice */
	{ "name twice", "1f2e3d4c " K_A "\n1f2e3d4c " K_B "\n", 0,
	  "2: key name 1f2e3d4c is already used on line 1\n" },
	{ "name twice, other case", "# keys\nabcdef01 " K_A "\nABCDEF01 " K_B "\n", 0,
	  "3: key name abcdef01 is already used on line 2\n" },
	{ "name three times", "\n1f2e3d4c " K_A "\n11111111 " K_C "\n1f2e3d4c " K_B "\n"
	  "1F2E3D4C " K_D "\n", 0,
	  "4: key name 1f2e3d4c is already used on line 2\n"
	  "5: key name 1f2e3d4c is already used on line 2\n" },
	{ "same key, other names", "11111111 " K_A "\n22222222 " K_A "\n", 0, NULL },
	/* counts */
	{ "five keys", "00000005 " K_A "\n00000004 " K_B "\n00000003 " K_C "\n00000002 " K_D "\n"
	  "00000001 " K_E "\n", 0, "5: more than 4 keys: keep the newest 4\n" },
	{ "six keys, comments", "# keys\n00000006 " K_A "\n00000005 " K_B "\n\n00000004 " K_C
	  "\n00000003 " K_D "\n# old\n00000002 " K_E "\n00000001 " K_A "\n", 0,
	  "8: more than 4 keys: keep the newest 4\n" },
	{ "empty", "", 0, " no key in the file\n" },
	{ "blank lines", "\n\r\n \t\n", 0, " no key in the file\n" },
	{ "comments only", "# keys\n   # none yet\r\n#1f2e3d4c " K_A "\n", 0,
	  " no key in the file\n" },
	/* zeros */
	{ "all-zero key", "1f2e3d4c " K_ZERO "\n", 0, "1: key is all zeros\n" },
	{ "all-zero key second", "1f2e3d4c " K_A "\n2f2e3d4c " K_ZERO "\n", 0,
	  "2: key is all zeros\n" },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
		const struct error_case *c = &error_cases[i];
		size_t len = c->len ? c->len : strlen(c->text);

		if (c->errors) {
			expect_errors(c->what, c->text, len, c->errors);
		} else {              /* a row that looks wrong but is fine */
			char *errors;
			struct tkeys k;

			assert_int_equal(tkey_parse(c->text, len, FILE_NAME, &k, &errors), 0);
			assert_int_equal(k.n, 2);
			assert_memory_equal(k.v[0].key, k.v[1].key, TKEY_KEY_LEN);
			assert_int_not_equal(k.v[0].name[0], k.v[1].name[0]);
			tkey_wipe(&k);
		}
	}
}

/* Several problems in one file are all reported, in line order, and none
 * shows key material. */
static void test_many_errors(void **state)
{
	static const char text[] =
		"# header\n"                              /* 1 */
		"1f2e3d4c " K_A "\n"                      /* 2: key 1, good */
		"garbage\n"                               /* 3: not a key */
		"1f2e3d4c " K_B "\n"                      /* 4: key 2, name again */
		"aabbccdd " K_ZERO "\n"                   /* 5: key 3 */
		"11223344 " K_62 "\n"                     /* 6: key 4 */
		"55667788 " K_C "\n"                      /* 7: key 5, too many */
		"1f2e3d4 " K_BAD "\r\n"                   /* 8: key 6 */
		"99999999 " K_D " extra\n";               /* 9: not a key */
	char *errors;
	struct tkeys k;

	(void)state;
	expect_errors("many", text, sizeof text - 1,
	              "3: " SYNTAX
	              "4: key name 1f2e3d4c is already used on line 2\n"
	              "5: key is all zeros\n"
	              "6: key has 62 hex digits, needs 64\n"
	              "7: more than 4 keys: keep the newest 4\n"
	              "8: key name has 7 hex digits, needs 8\n"
	              "8: key has a character that is not a hex digit\n"
	              "9: " SYNTAX);
	assert_int_equal(tkey_parse(text, sizeof text - 1, FILE_NAME, &k, &errors), -1);
	assert_null(strstr(errors, "0001020304"));
	assert_null(strstr(errors, "f0e1d2c3"));
	assert_null(strstr(errors, "deadbeef"));
	assert_null(strstr(errors, "garbage"));
	free(errors);
}

/* The first 20 problems, then "... more errors"; exactly 20: no such
 * line. */
static void test_error_cap(void **state)
{
	char text[4096], spec[4096];
	size_t n = 0, s = 0;

	(void)state;
	for (int line = 1; line <= 25; line++) {
		n += (size_t)sprintf(text + n, "bad\n");
		if (line <= 20)
			s += (size_t)sprintf(spec + s, "%d: %s", line, SYNTAX);
	}
	sprintf(spec + s, "... more errors\n");
	expect_errors("25 bad lines", text, n, spec);

	n = s = 0;
	for (int line = 1; line <= 20; line++) {
		n += (size_t)sprintf(text + n, "bad\n");
		s += (size_t)sprintf(spec + s, "%d: %s", line, SYNTAX);
	}
	expect_errors("20 bad lines", text, n, spec);

	/* 19 bad lines (not keys) and 5 keys: the 20th problem is the count */
	n = s = 0;
	for (int line = 1; line <= 19; line++) {
		n += (size_t)sprintf(text + n, "bad\n");
		s += (size_t)sprintf(spec + s, "%d: %s", line, SYNTAX);
	}
	for (unsigned i = 1; i <= 5; i++)
		n += (size_t)sprintf(text + n, "0000000%u %s\n", i, i % 2 ? K_A : K_B);
	s += (size_t)sprintf(spec + s, "24: more than 4 keys: keep the newest 4\n");
	n += (size_t)sprintf(text + n, "00000009 " K_ZERO "\n");
	s += (size_t)sprintf(spec + s, "... more errors\n");
	expect_errors("19 bad lines, then keys", text, n, spec);
}

static void test_unreadable(void **state)
{
	char path[32], dir[32], want[128], *errors = (char *)1;
	struct tkeys k;

	(void)state;
	write_temp("", 0, path);
	assert_int_equal(unlink(path), 0);
	memset(&k, 0xaa, sizeof k);
	assert_failed(tkey_load(path, &k, &errors), &k, &errors);
	snprintf(want, sizeof want, "%s: cannot read: No such file or directory\n", path);
	assert_string_equal(errors, want);
	free(errors);

	strcpy(dir, "/tmp/test_tkey_XXXXXX");
	assert_non_null(mkdtemp(dir));
	memset(&k, 0xaa, sizeof k);
	assert_failed(tkey_load(dir, &k, &errors), &k, &errors);
	snprintf(want, sizeof want, "%s: cannot read: Is a directory\n", dir);
	assert_string_equal(errors, want);
	free(errors);
	assert_int_equal(rmdir(dir), 0);
}

/* A file of exactly TKEY_FILE_MAX bytes (a key and a long comment) loads;
 * one more byte, or much more, is too large. */
static void test_size_cap(void **state)
{
	size_t big = 100000;
	char *text = malloc(big), path[32], *errors;
	struct tkeys k;
	size_t head;

	(void)state;
	assert_int_equal(TKEY_FILE_MAX, 8192);
	assert_non_null(text);
	head = (size_t)sprintf(text, "1f2e3d4c " K_A "\n#");
	memset(text + head, 'x', big - head);
	text[TKEY_FILE_MAX - 1] = '\n';

	assert_int_equal(tkey_parse(text, TKEY_FILE_MAX, FILE_NAME, &k, &errors), 0);
	assert_int_equal(k.n, 1);
	assert_int_equal(k.v[0].key[31], 0x1f);
	assert_int_equal(load_text(text, TKEY_FILE_MAX, path, &k, &errors), 0);
	assert_int_equal(k.n, 1);
	assert_int_equal(k.v[0].name[0], 0x1f);

	expect_errors("8193 bytes", text, TKEY_FILE_MAX + 1, " file too large\n");
	expect_errors("100000 bytes", text, big, " file too large\n");
	tkey_wipe(&k);
	free(text);
}

static void test_wipe(void **state)
{
	static const char text[] = "11111111 " K_A "\n22222222 " K_B "\n";
	char *errors;
	struct tkeys k;

	(void)state;
	assert_int_equal(tkey_parse(text, sizeof text - 1, FILE_NAME, &k, &errors), 0);
	assert_int_equal(k.n, 2);
	assert_false(zeroed(&k.v[1].key, TKEY_KEY_LEN));
	tkey_wipe(&k);
	assert_int_equal(k.n, 0);
	assert_true(zeroed(&k, sizeof k));
}

/* Key line number i of the rotation test: a name and a key of its own. */
static int key_line(char *out, unsigned i)
{
	int n = sprintf(out, "%08x ", 0xa0000000u + i);

	for (unsigned b = 0; b < TKEY_KEY_LEN; b++)
		n += sprintf(out + n, "%02x", (i * 37 + b * 11 + 1) & 0xff);
	return n + sprintf(out + n, "\n");
}

/* What the rotate script does, by hand: a new key line first, the oldest
 * of four dropped. Each parse puts the new key first and the ones before
 * it one place later. */
static void test_rotation_order(void **state)
{
	char text[1024], line[128], *errors;
	struct tkeys k, prev;
	size_t n = 0;

	(void)state;
	n += (size_t)sprintf(text + n, "# keys\n");
	for (unsigned i = 4; i >= 1; i--)         /* newest (4) first */
		n += (size_t)key_line(text + n, i);
	assert_int_equal(tkey_parse(text, n, FILE_NAME, &prev, &errors), 0);
	assert_int_equal(prev.n, 4);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(prev.v[i].name[3], 4 - i);

	for (unsigned next = 5; next <= 10; next++) {
		char *body = strchr(text, '\n') + 1;  /* after the comment */
		char *last = text + n - 1;
		size_t head;

		while (last[-1] != '\n')              /* drop the oldest line */
			last--;
		n = (size_t)(last - text);
		head = (size_t)key_line(line, next);  /* and put the new one first */
		memmove(body + head, body, n - (size_t)(body - text));
		memcpy(body, line, head);
		n += head;

		assert_int_equal(tkey_parse(text, n, FILE_NAME, &k, &errors), 0);
		assert_int_equal(k.n, 4);
		assert_int_equal(k.v[0].name[0], 0xa0);
		assert_int_equal(k.v[0].name[3], next);
		assert_int_equal(k.v[0].key[0], (next * 37 + 1) & 0xff);
		for (unsigned i = 1; i < 4; i++) {
			assert_memory_equal(&k.v[i], &prev.v[i - 1], sizeof k.v[i]);
			assert_int_equal(k.v[i].name[3], next - i);
		}
		prev = k;
	}
	tkey_wipe(&k);
	tkey_wipe(&prev);
}

#define SCRIPT "scripts/ticket-keys.sh"

/* Runs the script with args: its exit status. */
static int run_script(const char *args)
{
	char cmd[256];
	int st;

	snprintf(cmd, sizeof cmd, "sh " SCRIPT " %s >/dev/null 2>&1", args);
	st = system(cmd);
	assert_true(st != -1 && WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* scripts/ticket-keys.sh (run from the top of the tree, with sh and od or
 * openssl): it makes a file of one key, each rotation puts a new one first
 * and keeps the newest KEEP-1, every file parses, mode 0600. */
static void test_script(void **state)
{
	char dir[32], file[64], args[128], *errors;
	struct tkeys k, prev;
	struct stat st;

	(void)state;
	if (access(SCRIPT, R_OK) != 0 || system("command -v od >/dev/null 2>&1") != 0)
		skip();
	strcpy(dir, "/tmp/test_tkey_XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof file, "%s/keys", dir);

	assert_int_equal(run_script(file), 0);
	assert_int_equal(tkey_load(file, &prev, &errors), 0);
	assert_int_equal(prev.n, 1);
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	snprintf(args, sizeof args, "%s 4", file);
	for (size_t round = 1; round <= 5; round++) {
		size_t want = round + 1 < TKEY_MAX ? round + 1 : TKEY_MAX;

		assert_int_equal(run_script(args), 0);
		assert_int_equal(tkey_load(file, &k, &errors), 0);
		assert_int_equal(k.n, want);
		assert_memory_not_equal(k.v[0].name, prev.v[0].name, TKEY_NAME_LEN);
		assert_memory_not_equal(k.v[0].key, prev.v[0].key, TKEY_KEY_LEN);
		for (size_t i = 1; i < k.n; i++)   /* the previous newest is now second */
			assert_memory_equal(&k.v[i], &prev.v[i - 1], sizeof k.v[i]);
		prev = k;
	}
	assert_int_equal(stat(file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	assert_int_equal(run_script(file), 0);          /* KEEP 3 */
	assert_int_equal(tkey_load(file, &k, &errors), 0);
	assert_int_equal(k.n, 3);
	assert_memory_equal(&k.v[1], &prev.v[0], sizeof k.v[1]);
	assert_memory_equal(&k.v[2], &prev.v[1], sizeof k.v[2]);
	prev = k;

	snprintf(args, sizeof args, "%s 1", file);
	assert_int_equal(run_script(args), 0);
	assert_int_equal(tkey_load(file, &k, &errors), 0);
	assert_int_equal(k.n, 1);
	assert_memory_not_equal(k.v[0].key, prev.v[0].key, TKEY_KEY_LEN);
	prev = k;

	/* refusals leave the file as it was */
	snprintf(args, sizeof args, "%s 5", file);
	assert_int_equal(run_script(args), 2);
	snprintf(args, sizeof args, "%s 0", file);
	assert_int_equal(run_script(args), 2);
	assert_int_equal(run_script(""), 2);
	assert_int_equal(run_script(dir), 1);
	assert_int_equal(tkey_load(file, &k, &errors), 0);
	assert_int_equal(k.n, 1);
	assert_memory_equal(&k, &prev, sizeof k);

	/* a kept line that is not NAME KEY stops it */
	{
		FILE *f = fopen(file, "w");
		assert_non_null(f);
		fputs("# old\nnot-a-key\n", f);
		assert_int_equal(fclose(f), 0);
		snprintf(args, sizeof args, "%s 2", file);
		assert_int_equal(run_script(args), 1);
		assert_int_equal(tkey_load(file, &k, &errors), -1);
		snprintf(args, sizeof args, "%s:2: " SYNTAX, file);
		assert_string_equal(errors, args);
		free(errors);
		/* KEEP 1 keeps nothing of it */
		snprintf(args, sizeof args, "%s 1", file);
		assert_int_equal(run_script(args), 0);
		assert_int_equal(tkey_load(file, &k, &errors), 0);
		assert_int_equal(k.n, 1);
	}

	tkey_wipe(&k);
	tkey_wipe(&prev);
	assert_int_equal(unlink(file), 0);
	assert_int_equal(rmdir(dir), 0);                /* no temporary file left */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_many_errors),
		cmocka_unit_test(test_error_cap),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_rotation_order),
		cmocka_unit_test(test_script),
	};
	return cmocka_run_group_tests_name("tkey", tests, NULL, NULL);
}
