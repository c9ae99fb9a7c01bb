/* route: see route.h. */
#include "route.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 1024                 /* bytes a line may hold, without its end */
#define MAX_PROBLEMS 20               /* problems reported; the rest are counted */
#define SHOW_MAX 100                  /* bytes of a key or name quoted in a message */

struct entry {
	const char *key;                  /* NUL-terminated, inside the map's text */
	size_t len;
	size_t line;
	long backend;                     /* -1: unknown (the load then fails) */
};

struct route_map {
	char *text;                       /* the file, keys cut out of it in place */
	struct entry *v;                  /* sorted by key, then line */
	size_t n;
};

struct problem {
	size_t line;                      /* 0: about the whole file */
	char text[320];
};

/* A load under way: the map being filled and what is wrong with it. */
struct loader {
	const char *path;
	const char *const *names;
	size_t nnames;
	struct route_map *m;
	size_t size;                      /* bytes of m->text */
	struct problem kept[MAX_PROBLEMS];  /* the first ones by line */
	size_t nkept;
	size_t nproblems;                 /* all of them */
};

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static unsigned char ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* Orders a[0..alen) and b[0..blen) as ASCII case-insensitive strings. */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;

	for (size_t i = 0; i < n; i++) {
		unsigned char x = ascii_lower((unsigned char)a[i]);
		unsigned char y = ascii_lower((unsigned char)b[i]);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return alen < blen ? -1 : alen > blen;
}

/* The last '@' of s[0..len), or NULL. */
static const char *last_at(const char *s, size_t len)
{
	while (len > 0)
		if (s[--len] == '@')
			return s + len;
	return NULL;
}

/* Writes s[0..len) into buf (SHOW_MAX + 4 bytes) for a message: control
 * bytes as '?', cut at SHOW_MAX bytes with "...". Returns buf. */
static const char *show(char *buf, const char *s, size_t len)
{
	size_t n = len > SHOW_MAX ? SHOW_MAX : len;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	strcpy(buf + n, len > n ? "..." : "");
	return buf;
}

/* Records a problem on a line (0: the whole file): kept when it is among
 * the first MAX_PROBLEMS by line, counted in any case. */
static void problem(struct loader *ld, size_t line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(struct loader *ld, size_t line, const char *fmt, ...)
{
	size_t at;
	va_list ap;

	ld->nproblems++;
	if (ld->nkept == MAX_PROBLEMS) {
		if (line >= ld->kept[MAX_PROBLEMS - 1].line)
			return;
		ld->nkept--;                  /* the last one by line gives way */
	}
	at = ld->nkept;
	while (at > 0 && ld->kept[at - 1].line > line)
		at--;
	memmove(&ld->kept[at + 1], &ld->kept[at], (ld->nkept - at) * sizeof *ld->kept);
	ld->kept[at].line = line;
	va_start(ap, fmt);
	vsnprintf(ld->kept[at].text, sizeof ld->kept[at].text, fmt, ap);
	va_end(ap);
	ld->nkept++;
}

/* Runs when a load fails: the problems kept as "FILE:LINE: message\n"
 * lines, malloc'd; NULL when out of memory. */
static char *problems_text(const struct loader *ld)
{
	char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);

	if (!f)
		return NULL;
	for (size_t i = 0; i < ld->nkept; i++) {
		if (ld->kept[i].line > 0)
			fprintf(f, "%s:%zu: %s\n", ld->path, ld->kept[i].line, ld->kept[i].text);
		else
			fprintf(f, "%s: %s\n", ld->path, ld->kept[i].text);
	}
	if (ld->nproblems > ld->nkept)
		fputs("... more errors\n", f);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Reads the whole file into m->text, NUL-terminated, its length in
 * ld->size. Returns 0, or -1 with the problem recorded. */
static int read_all(struct loader *ld)
{
	FILE *f = fopen(ld->path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	if (!f) {
		problem(ld, 0, "cannot read: %s", strerror(errno));
		return -1;
	}
	do {
		if (cap - n < 2) {
			size_t bigger = cap ? cap * 2 : 65536;
			char *b = realloc(buf, bigger);
			if (!b) {
				problem(ld, 0, "out of memory");
				goto fail;
			}
			buf = b;
			cap = bigger;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0);
	if (ferror(f)) {
		problem(ld, 0, "cannot read: %s", strerror(errno));
		goto fail;
	}
	fclose(f);
	buf[n] = '\0';
	ld->m->text = buf;
	ld->size = n;
	return 0;
fail:
	free(buf);
	fclose(f);
	return -1;
}

/* Lines in the text: how many entries it can hold at most. */
static size_t count_lines(const char *s, size_t len)
{
	size_t lines = 1;
	const char *nl;

	while ((nl = memchr(s, '\n', len)) != NULL) {
		lines++;
		len -= (size_t)(nl + 1 - s);
		s = nl + 1;
	}
	return lines;
}

/* The first byte from p on that is not a space or tab (or end). */
static char *skip_blanks(char *p, char *end)
{
	while (p < end && is_blank(*p))
		p++;
	return p;
}

/* The end of the word at p: its first space or tab, or end. */
static char *word_end(char *p, char *end)
{
	while (p < end && !is_blank(*p))
		p++;
	return p;
}

/* Which of the names the backend word w[0..len) is: its index, or -1. */
static long backend_index(const struct loader *ld, const char *w, size_t len)
{
	for (size_t i = 0; i < ld->nnames; i++)
		if (strlen(ld->names[i]) == len && memcmp(ld->names[i], w, len) == 0)
			return (long)i;
	return -1;
}

/* Runs for each line of the file, p..end without its line end: adds its
 * entry, or records its problem. A key ending in '@' has no domain. */
static void parse_line(struct loader *ld, size_t line, char *p, char *end)
{
	char *key, *key_end, *name, *name_end, *rest;
	char shown[SHOW_MAX + 4];
	struct entry *e;

	if (end - p > MAX_LINE) {
		problem(ld, line, "line is longer than %d bytes", MAX_LINE);
		return;
	}
	key = skip_blanks(p, end);
	if (key == end || *key == '#')
		return;
	key_end = word_end(key, end);
	name = skip_blanks(key_end, end);
	name_end = word_end(name, end);
	rest = skip_blanks(name_end, end);
	if (name == end || *name == '#' || (rest < end && *rest != '#') || key_end[-1] == '@' ||
	    memchr(p, '\0', (size_t)(end - p))) {
		problem(ld, line, "expected \"USER BACKEND\" or \"@DOMAIN BACKEND\"");
		return;
	}
	*key_end = '\0';                  /* a blank: the name comes after it */
	e = &ld->m->v[ld->m->n++];
	e->key = key;
	e->len = (size_t)(key_end - key);
	e->line = line;
	e->backend = backend_index(ld, name, (size_t)(name_end - name));
	if (e->backend < 0) {
		show(shown, name, (size_t)(name_end - name));
		problem(ld, line, "unknown backend \"%s\" (no [backend %s] section)", shown, shown);
	}
}

/* Cuts the text into lines (LF or CRLF) and parses each. */
static void parse_text(struct loader *ld)
{
	char *p = ld->m->text, *end = p + ld->size;
	size_t line = 0;

	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *stop = nl ? nl : end;

		if (stop > p && stop[-1] == '\r')
			stop--;
		parse_line(ld, ++line, p, stop);
		p = nl ? nl + 1 : end;
	}
}

/* Orders entries by key, then by line. */
static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int c = key_cmp(x->key, x->len, y->key, y->len);

	if (c != 0)
		return c;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Runs once the entries are sorted: every key after the first of its run
 * is a problem naming the line of the first. */
static void find_duplicates(struct loader *ld)
{
	const struct entry *v = ld->m->v;
	char shown[SHOW_MAX + 4];
	size_t first = 0;

	for (size_t i = 1; i < ld->m->n; i++) {
		if (key_cmp(v[first].key, v[first].len, v[i].key, v[i].len) != 0) {
			first = i;
			continue;
		}
		problem(ld, v[i].line, "\"%s\" is already routed on line %zu",
		        show(shown, v[i].key, v[i].len), v[first].line);
	}
}

int route_map_load(const char *path, const char *const *names, size_t nnames,
                   struct route_map **out, char **errors)
{
	struct loader ld = { .path = path, .names = names, .nnames = nnames };

	*out = NULL;
	*errors = NULL;
	ld.m = calloc(1, sizeof *ld.m);
	if (!ld.m)
		goto oom;
	if (read_all(&ld) < 0)
		goto fail;
	ld.m->v = calloc(count_lines(ld.m->text, ld.size), sizeof *ld.m->v);
	if (!ld.m->v)
		goto oom;
	parse_text(&ld);
	qsort(ld.m->v, ld.m->n, sizeof *ld.m->v, entry_cmp);
	find_duplicates(&ld);
	if (ld.nproblems > 0)
		goto fail;
	*out = ld.m;
	return 0;
oom:
	problem(&ld, 0, "out of memory");
fail:
	*errors = problems_text(&ld);
	route_map_free(ld.m);
	return -1;
}

/* What bsearch looks for: a key that is not NUL-terminated. */
struct probe {
	const char *key;
	size_t len;
};

static int probe_cmp(const void *a, const void *b)
{
	const struct probe *p = a;
	const struct entry *e = b;

	return key_cmp(p->key, p->len, e->key, e->len);
}

/* The entry for key[0..len), or NULL. */
static const struct entry *find(const struct route_map *m, const char *key, size_t len)
{
	struct probe p = { key, len };

	return bsearch(&p, m->v, m->n, sizeof *m->v, probe_cmp);
}

long route_lookup(const struct route_map *m, const char *user, size_t len)
{
	const struct entry *e;
	const char *at;

	if (!m || m->n == 0)
		return -1;
	e = find(m, user, len);
	if (!e && (at = last_at(user, len)) != NULL)
		e = find(m, at, len - (size_t)(at - user));
	return e ? e->backend : -1;
}

size_t route_map_entries(const struct route_map *m)
{
	return m ? m->n : 0;
}

void route_map_free(struct route_map *m)
{
	if (!m)
		return;
	free(m->v);
	free(m->text);
	free(m);
}

int route_rewrite_user(const char *user, size_t len, int strip_domain, const char *add_domain,
                       char *out, size_t cap, size_t *out_len)
{
	const char *at = strip_domain ? last_at(user, len) : NULL;
	size_t add = 0, total;

	if (at)
		len = (size_t)(at - user);
	if (len == 0)
		return -1;
	if (add_domain && *add_domain && !memchr(user, '@', len))
		add = 1 + strlen(add_domain);
	total = len + add;
	if (total >= cap)
		return -1;
	memmove(out, user, len);
	if (add) {
		out[len] = '@';
		memcpy(out + len + 1, add_domain, add - 1);
	}
	out[total] = '\0';
	if (out_len)
		*out_len = total;
	return 0;
}
