/* tkey: see tkey.h. */
#include "tkey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_PROBLEMS 20               /* problems reported; the rest are counted */
#define NAME_DIGITS (2 * TKEY_NAME_LEN)
#define KEY_DIGITS (2 * TKEY_KEY_LEN)
/* Good key lines a file of TKEY_FILE_MAX bytes can hold (74 bytes each). */
#define MAX_GOOD (TKEY_FILE_MAX / (NAME_DIGITS + 1 + KEY_DIGITS + 1) + 1)

/* A key name seen on a good line, for finding it again. */
struct seen {
	uint8_t name[TKEY_NAME_LEN];
	size_t line;
};

/* A parse under way: the keys being filled and what is wrong with them. */
struct parser {
	const char *file;
	struct tkeys *out;
	size_t lines;                     /* lines not blank or a comment so far */
	size_t keys;                      /* of them, NAME KEY lines, good or not */
	struct seen seen[MAX_GOOD];       /* distinct names, in file order */
	size_t nseen;
	FILE *err;                        /* the messages, opened at the first */
	char *errbuf;
	size_t errsize;
	size_t nproblems;                 /* all of them, reported or not */
	int oom;
};

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The value of hex digit c, or -1. */
static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes the hex digits s[0..2 * n) into out[0..n); they are checked. */
static void hex_decode(const char *s, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(hex_value(s[2 * i]) << 4 | hex_value(s[2 * i + 1]));
}

/* Records a problem on a line (0: the whole file): written when it is
 * among the first MAX_PROBLEMS, counted in any case. Lines come in order,
 * so the first ones are the first by line. */
static void problem(struct parser *p, size_t line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(struct parser *p, size_t line, const char *fmt, ...)
{
	va_list ap;

	if (++p->nproblems > MAX_PROBLEMS || p->oom)
		return;
	if (!p->err && !(p->err = open_memstream(&p->errbuf, &p->errsize))) {
		p->oom = 1;
		return;
	}
	if (line > 0)
		fprintf(p->err, "%s:%zu: ", p->file, line);
	else
		fprintf(p->err, "%s: ", p->file);
	va_start(ap, fmt);
	vfprintf(p->err, fmt, ap);
	va_end(ap);
	fputc('\n', p->err);
}

/* Runs when a parse fails: the messages, malloc'd; NULL when out of
 * memory. */
static char *problems_text(struct parser *p)
{
	if (!p->err)
		return NULL;
	if (p->nproblems > MAX_PROBLEMS)
		fputs("... more errors\n", p->err);
	if (fclose(p->err) != 0 || p->oom) {
		free(p->errbuf);
		return NULL;
	}
	return p->errbuf;
}

/* Checks that s[0..len), the part of a line called part, is n hex digits;
 * records the problem if not. Returns 1 when it is. */
static int check_hex(struct parser *p, size_t line, const char *part, const char *s,
                     size_t len, size_t n)
{
	for (size_t i = 0; i < len; i++) {
		if (hex_value(s[i]) < 0) {
			problem(p, line, "%s has a character that is not a hex digit", part);
			return 0;
		}
	}
	if (len != n) {
		problem(p, line, "%s has %zu hex digit%s, needs %zu", part, len, len == 1 ? "" : "s",
		        n);
		return 0;
	}
	return 1;
}

/* The line of the good line before that used name, or 0. */
static size_t name_used(const struct parser *p, const uint8_t *name)
{
	for (size_t i = 0; i < p->nseen; i++)
		if (memcmp(p->seen[i].name, name, TKEY_NAME_LEN) == 0)
			return p->seen[i].line;
	return 0;
}

/* Runs for a key line whose name is 8 hex digits: a name used before is a
 * problem, a new one is remembered. Returns 1 when it is new. */
static int check_name(struct parser *p, size_t line, const char *s, uint8_t *name)
{
	size_t first;

	hex_decode(s, name, TKEY_NAME_LEN);
	first = name_used(p, name);
	if (first > 0) {
		problem(p, line, "key name %02x%02x%02x%02x is already used on line %zu", name[0],
		        name[1], name[2], name[3], first);
		return 0;
	}
	if (p->nseen < MAX_GOOD) {
		memcpy(p->seen[p->nseen].name, name, TKEY_NAME_LEN);
		p->seen[p->nseen++].line = line;
	}
	return 1;
}

/* 1 when the n bytes at b are all zero, without an early exit. */
static int all_zero(const uint8_t *b, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

/* Runs for each line that is not blank or a comment, s..end without its
 * line end nor leading blanks: checks it and stores its key when it is
 * among the first TKEY_MAX. Every line of two words counts as a key, good
 * or not, for "more than TKEY_MAX"; one that is not two words does not.
 * The key is decoded into a copy that is wiped. */
static void parse_key_line(struct parser *p, size_t line, const char *s, const char *end)
{
	const char *name = s, *name_end, *key, *key_end, *rest;
	struct tkey t;
	int good;

	name_end = name;
	while (name_end < end && !is_blank(*name_end))
		name_end++;
	key = name_end;
	while (key < end && is_blank(*key))
		key++;
	key_end = key;
	while (key_end < end && !is_blank(*key_end))
		key_end++;
	rest = key_end;
	while (rest < end && is_blank(*rest))
		rest++;
	if (key == end || rest != end) {
		problem(p, line, "expected an %d-hex-digit key name and a %d-hex-digit key",
		        NAME_DIGITS, KEY_DIGITS);
		return;
	}
	p->keys++;
	good = check_hex(p, line, "key name", name, (size_t)(name_end - name), NAME_DIGITS);
	good = good && check_name(p, line, name, t.name);
	if (check_hex(p, line, "key", key, (size_t)(key_end - key), KEY_DIGITS)) {
		hex_decode(key, t.key, TKEY_KEY_LEN);
		if (all_zero(t.key, TKEY_KEY_LEN))
			problem(p, line, "key is all zeros");
		else if (good && p->keys <= TKEY_MAX)
			p->out->v[p->keys - 1] = t;
	}
	explicit_bzero(&t, sizeof t);
	if (p->keys == TKEY_MAX + 1)
		problem(p, line, "more than %d keys: keep the newest %d", TKEY_MAX, TKEY_MAX);
}

/* Cuts the text into lines (LF or CRLF) and parses each key line. */
static void parse_text(struct parser *p, const char *text, size_t len)
{
	const char *s = text, *end = text + len;
	size_t line = 0;

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *stop = nl ? nl : end;

		line++;
		if (stop > s && stop[-1] == '\r')
			stop--;
		while (s < stop && is_blank(*s))
			s++;
		if (s < stop && *s != '#') {
			p->lines++;
			parse_key_line(p, line, s, stop);
		}
		s = nl ? nl + 1 : end;
	}
}

/* Ends a parse: 0 with the keys, or -1 with the messages and out wiped. */
static int finish(struct parser *p, char **errors)
{
	if (p->nproblems == 0) {
		p->out->n = p->keys;
		return 0;
	}
	tkey_wipe(p->out);
	*errors = problems_text(p);
	return -1;
}

int tkey_parse(const char *text, size_t len, const char *file, struct tkeys *out,
               char **errors)
{
	struct parser p = { .file = file, .out = out };

	*errors = NULL;
	tkey_wipe(out);
	if (len > TKEY_FILE_MAX) {
		problem(&p, 0, "file too large");
		return finish(&p, errors);
	}
	parse_text(&p, text, len);
	if (p.lines == 0)
		problem(&p, 0, "no key in the file");
	return finish(&p, errors);
}

/* Runs when the file cannot be opened or read (errno e): fails with that
 * as the one problem. */
static int cannot_read(const char *path, int e, struct tkeys *out, char **errors)
{
	struct parser p = { .file = path, .out = out };

	*errors = NULL;
	problem(&p, 0, "cannot read: %s", strerror(e));
	return finish(&p, errors);
}

int tkey_load(const char *path, struct tkeys *out, char **errors)
{
	char buf[TKEY_FILE_MAX + 1];      /* one more: a longer file is too large */
	size_t n = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cannot_read(path, errno, out, errors);
	while (n < sizeof buf) {
		ssize_t got = read(fd, buf + n, sizeof buf - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			int e = errno;
			close(fd);
			explicit_bzero(buf, n);
			return cannot_read(path, e, out, errors);
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	close(fd);
	rc = tkey_parse(buf, n, path, out, errors);
	explicit_bzero(buf, n);
	return rc;
}

void tkey_wipe(struct tkeys *k)
{
	explicit_bzero(k, sizeof *k);
}
