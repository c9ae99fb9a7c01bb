/*
 * cfg.c: reads moat's INI file into a struct cfg (see cfg.h).
 *
 * The whole file is read into memory first. inih then pulls it one line
 * per call through line_reader(), which counts lines, refuses overlong
 * lines and NUL bytes, and notices [section] headers itself: the packaged
 * libinih neither passes line numbers to the handler nor calls it for a
 * header. on_pair() only files each name = value under the current
 * section through a key table. The check_*() pass then looks at the whole
 * draft. Every problem is kept with its line; they are returned sorted by
 * line, problems about the whole file (no line) last.
 *
 * Syntax, as the packaged inih (r55) reads it, and our choices:
 *   - "name = value" or "name: value"; values arrive trimmed. ";" after
 *     whitespace starts a comment anywhere, "#" only at the start of a line.
 *   - An indented line right after a key is, to inih, a continuation of
 *     that key's value; moat has no multi-line values and refuses it.
 *   - Each line is handed to inih with its "\n", so the longest line is
 *     the reader's num - 2 bytes (198 with the packaged inih), not counting
 *     "\n" or "\r\n".
 *   - Durations: digits then ms, s, m, h or d (lowercase), bare digits are
 *     seconds. No sign, fraction or inner space ("10 s" is refused).
 *   - Sizes: digits then nothing (bytes), k/K (1024) or m/M (1048576).
 *   - Section names, keys and word values are case-sensitive lowercase.
 */
#include "cfg.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define CFG_MAX_FILE     (1024 * 1024)   /* bytes */
#define CFG_MAX_KEYS     24              /* keys in the largest section */
#define CFG_MAX_NAME     64              /* listener name length */
#define CFG_MAX_WORKERS  256
#define CFG_SHOW         80              /* bytes of a value quoted in a message */

_Static_assert(sizeof(enum cfg_proto) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_tls_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_client_cert) == sizeof(int), "enum size");
_Static_assert(TLS_MAX_GROUPS <= TLS_MAX_SUITES, "set_ids() sizes its list for suites");
_Static_assert(sizeof(enum cfg_key_perms) == sizeof(int), "enum size");

/* Results of the number readers below. */
enum { NUM_OK = 0, NUM_BAD = -1, NUM_BIG = -2 };

/* One problem found in the file; line 0 means the whole file. */
struct problem {
	int line;
	size_t seq;
	char *text;
};

struct problems {
	struct problem *v;
	size_t n, cap;
	int oom;
};

/* What line_reader() made of the line it served last. */
enum line_kind { LINE_NONE, LINE_BLANK, LINE_HEADER, LINE_PAIR, LINE_CONT };

/* One occurrence of a section: where it starts and where each key was set. */
struct sect {
	int line;
	int seen[CFG_MAX_KEYS];           /* line of the key, 0 = not set */
	unsigned char bad[CFG_MAX_KEYS];  /* set, but its value was refused */
};

struct keydef;

/* Stores value v in field, or returns -1 with the rest of a sentence
 * "KEY: 'VALUE' ..." in why. */
typedef int (*key_setter)(const struct keydef *k, const char *v, void *field,
                          char *why, size_t whylen);

struct keydef {
	const char *name;
	key_setter set;
	size_t off;                   /* of the field in struct cfg, cfg_listener, cfg_cert */
	int required;
	uint32_t min, max;            /* for numbers */
	const char *const *words;     /* for word values; index = enum value */
};

struct sectdef {
	const char *word;
	int named;                    /* [listener NAME], [certificate NAME] */
	const struct keydef *keys;
	size_t nkeys;
};

/* A [listener NAME] while the file is read. */
struct ldraft {
	struct cfg_listener l;
	struct sect s;
};

/* A [backend NAME] while the file is read. */
struct bdraft {
	struct cfg_backend b;
	struct sect s;
};

/* A [certificate NAME] while the file is read. */
struct cdraft {
	struct cfg_cert c;
	struct sect s;
};

enum cur_state { CUR_NONE, CUR_IGNORE, CUR_SECTION };

struct parser {
	const char *file;
	const char *buf;
	size_t len, pos;
	int line;                     /* of the line inih is working on */
	enum line_kind kind;
	int got_pair;                 /* inih called on_pair() for this line */
	int prev_name;                /* inih remembers a key for continuations */
	int first_syntax;             /* first syntax error line, 0 = none */
	enum cur_state cur;
	const struct sectdef *cur_def;
	size_t cur_named;             /* the draft the keys go to, in ls or cs */
	struct cfg *c;
	struct sect single[4];        /* [moat], [tls], [metrics], [health] */
	struct ldraft *ls;
	size_t nls, capls;
	struct cdraft *cs;
	size_t ncs, capcs;
	struct bdraft *bs;            /* [backend NAME]s, then inline addresses */
	size_t nbs, capbs;
	size_t nnamed_bs;             /* how many of bs are sections */
	struct problems probs;
};

static const char *const log_words[] = { "error", "warn", "info", "debug", NULL };
static const char *const proto_words[] = { "imap", "pop3", NULL };
static const char *const tls_words[] = { "implicit", "starttls", NULL };
static const char *const bool_words[] = { "no", "yes", NULL };
static const char *const version_words[] = { "1.2", "1.3", NULL };
static const char *const client_cert_words[] = { "none", "optional", "required", NULL };
static const char *const keyperm_words[] = { "auto", "strict", "warn", NULL };
static const char *const log_format_words[] = { "kv", "json", NULL };
static const char *const log_target_words[] = { "stderr", "syslog", NULL };
static const char *const forward_words[] = { "none", "proxy-v1", "proxy-v2", "native", NULL };
static const char *const btls_words[] = { "none", "implicit", "starttls", NULL };
static const char *const balance_words[] = { "order", "least-conn", NULL };
static const char *const facility_words[] = { "mail", "daemon", "user", "local0", "local1",
	"local2", "local3", "local4", "local5", "local6", "local7", NULL };

_Static_assert(CFG_LOG_DEBUG == 3 && CFG_PROTO_POP3 == 1 && CFG_TLS_STARTTLS == 1 &&
               CFG_CLIENT_REQUIRED == 2 && CFG_KEYPERM_WARN == 2 && CFG_LOG_JSON == 1 &&
               CFG_LOG_SYSLOG == 1 && CFG_FAC_LOCAL7 == 10,
               "word tables follow the enums");

/* greeting when a listener does not set it, by protocol. */
static const char *const greeting_default[] = {
	[CFG_PROTO_IMAP] = "IMAP server ready",
	[CFG_PROTO_POP3] = "POP3 server ready",
};

/* idle_timeout when a listener does not set it, by protocol. */
static const uint32_t idle_default_ms[] = {
	[CFG_PROTO_IMAP] = 31 * 60 * 1000,   /* RFC 9051: autologout >= 30 min */
	[CFG_PROTO_POP3] = 10 * 60 * 1000,   /* RFC 1939: >= 10 min */
};

struct unit {
	const char *suffix;
	uint32_t factor;
};

static const struct unit duration_units[] = {
	{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
	{ "d", 86400000 }, { "", 1000 },
};

static const struct unit size_units[] = {
	{ "k", 1024 }, { "K", 1024 }, { "m", 1048576 }, { "M", 1048576 }, { "", 1 },
};

/* ---- problems ---- */

/* Runs for every problem found: keeps "message" with its line (0: none). */
__attribute__((format(printf, 3, 4)))
static void problem(struct parser *p, int line, const char *fmt, ...)
{
	struct problems *ps = &p->probs;
	va_list ap;
	char *text;

	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 16;
		struct problem *v = realloc(ps->v, cap * sizeof *v);
		if (!v) {
			ps->oom = 1;
			return;
		}
		ps->v = v;
		ps->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0) {
		ps->oom = 1;
		text = NULL;
	}
	va_end(ap);
	if (!text)
		return;
	ps->v[ps->n].line = line;
	ps->v[ps->n].seq = ps->n;
	ps->v[ps->n].text = text;
	ps->n++;
}

/* Runs when inih rejects a line: one wording for every syntax error. */
static void syntax_error(struct parser *p, int line)
{
	if (!p->first_syntax)
		p->first_syntax = line;
	problem(p, line, "syntax error: expected [section] or name = value");
}

/* qsort order of problems: by line, whole-file problems last, else as found. */
static int problem_cmp(const void *a, const void *b)
{
	const struct problem *x = a, *y = b;
	unsigned lx = x->line > 0 ? (unsigned)x->line : UINT_MAX;
	unsigned ly = y->line > 0 ? (unsigned)y->line : UINT_MAX;

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Runs once at the end of a failed parse: one "FILE:LINE: message\n" per
 * problem in a single malloc'd string (NULL only if memory ran out). */
static char *problems_join(struct parser *p)
{
	struct problems *ps = &p->probs;
	char *out = NULL;
	size_t size = 0;
	FILE *f;

	qsort(ps->v, ps->n, sizeof *ps->v, problem_cmp);
	f = open_memstream(&out, &size);
	if (!f)
		return NULL;
	for (size_t i = 0; i < ps->n; i++) {
		if (ps->v[i].line > 0)
			fprintf(f, "%s:%d: %s\n", p->file, ps->v[i].line, ps->v[i].text);
		else
			fprintf(f, "%s: %s\n", p->file, ps->v[i].text);
	}
	if (ps->oom)
		fprintf(f, "%s: out of memory while reading the configuration\n", p->file);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Runs when a parse ends: frees what problem() kept. */
static void problems_free(struct problems *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		free(ps->v[i].text);
	free(ps->v);
	ps->v = NULL;
	ps->n = ps->cap = 0;
}

/* Used for failures before any parsing (cfg_load): a one-line error text. */
__attribute__((format(printf, 1, 2)))
static char *single_error(const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	return text;
}

/* ---- numbers ---- */

/* Runs for every number: reads the leading digits of s into *v, noting in
 * *over when they pass limit. Returns the first non-digit, or NULL when s
 * does not start with a digit. */
static const char *read_digits(const char *s, uint64_t limit, uint64_t *v, int *over)
{
	const char *d = s;

	*v = 0;
	*over = 0;
	for (; *d >= '0' && *d <= '9'; d++) {
		if (*over)
			continue;
		*v = *v * 10 + (uint64_t)(*d - '0');
		if (*v > limit)
			*over = 1;
	}
	return d == s ? NULL : d;
}

/* Reads "digits[unit]" with a unit from table u; the product must fit in
 * 32 bits. Returns NUM_OK, NUM_BAD (syntax) or NUM_BIG (overflow). */
static int read_scaled(const char *s, const struct unit *u, size_t nu, uint32_t *out)
{
	uint64_t v;
	int over;
	const char *end = read_digits(s, UINT32_MAX, &v, &over);

	if (!end)
		return NUM_BAD;
	for (size_t i = 0; i < nu; i++) {
		if (strcmp(end, u[i].suffix) != 0)
			continue;
		if (over || v * u[i].factor > UINT32_MAX)
			return NUM_BIG;
		*out = (uint32_t)(v * u[i].factor);
		return NUM_OK;
	}
	return NUM_BAD;
}

int cfg_parse_duration(const char *s, uint32_t *ms)
{
	uint32_t v;

	if (!s || !ms || read_scaled(s, duration_units,
	                             sizeof duration_units / sizeof *duration_units, &v) != NUM_OK)
		return -1;
	*ms = v;
	return 0;
}

int cfg_parse_size(const char *s, uint32_t *bytes)
{
	uint32_t v;

	if (!s || !bytes || read_scaled(s, size_units,
	                                sizeof size_units / sizeof *size_units, &v) != NUM_OK)
		return -1;
	*bytes = v;
	return 0;
}

/* Used in messages about sizes: 65536 as "64k", 1048576 as "1m". */
static const char *size_text(uint32_t n, char *buf, size_t len)
{
	if (n && n % 1048576 == 0)
		snprintf(buf, len, "%um", (unsigned)(n / 1048576));
	else if (n && n % 1024 == 0)
		snprintf(buf, len, "%uk", (unsigned)(n / 1024));
	else
		snprintf(buf, len, "%u", (unsigned)n);
	return buf;
}

/* ---- addresses ---- */

/* Reads a port for cfg_parse_addr(): 1..65535, digits only. */
static int read_port(const char *s, in_port_t *port)
{
	uint64_t v;
	int over;
	const char *end = read_digits(s, 65535, &v, &over);

	if (!end || *end || over || v == 0)
		return -1;
	*port = htons((in_port_t)v);
	return 0;
}

/* Fills a with an IPv4 address for cfg_parse_addr(). */
static void set_v4(struct cfg_addr *a, const struct in_addr *ip, in_port_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&a->sa;

	sin->sin_family = AF_INET;
	sin->sin_addr = *ip;
	sin->sin_port = port;
	a->len = sizeof *sin;
}

/* Fills a with an IPv6 address for cfg_parse_addr(). */
static void set_v6(struct cfg_addr *a, const struct in6_addr *ip, in_port_t port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->sa;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr = *ip;
	sin6->sin6_port = port;
	a->len = sizeof *sin6;
}

/* Splits "[v6]:port" for cfg_parse_addr(): host without brackets, port text. */
static const char *split_bracketed(const char *s, const char **host, size_t *hlen,
                                   const char **port)
{
	const char *close = strchr(s, ']');

	if (!close || memchr(s + 1, '[', (size_t)(close - s - 1)) || strchr(close + 1, '[') ||
	    strchr(close + 1, ']'))
		return "unbalanced brackets";
	if (close[1] == '\0')
		return "missing port (expected [address]:port)";
	if (close[1] != ':')
		return "expected ':' and a port after ']'";
	*host = s + 1;
	*hlen = (size_t)(close - s - 1);
	*port = close + 2;
	return NULL;
}

/* Splits "host:port" for cfg_parse_addr(). */
static const char *split_plain(const char *s, const char **host, size_t *hlen,
                               const char **port)
{
	const char *colon = strrchr(s, ':');

	if (strchr(s, '[') || strchr(s, ']'))
		return "unbalanced brackets";
	if (!colon)
		return "missing port (expected host:port)";
	if (memchr(s, ':', (size_t)(colon - s)))
		return "an IPv6 address needs brackets, e.g. [::1]:993";
	*host = s;
	*hlen = (size_t)(colon - s);
	*port = colon + 1;
	return NULL;
}

int cfg_parse_addr(const char *s, struct cfg_addr *a, const char **why)
{
	const char *dummy, *host = NULL, *port = NULL, *err;
	char h[INET6_ADDRSTRLEN + 1];
	size_t hlen = 0;
	in_port_t nport;
	struct in_addr ip4;
	struct in6_addr ip6;

	if (!why)
		why = &dummy;
	memset(a, 0, sizeof *a);
	if (!s || !*s) {
		*why = "empty address";
		return -1;
	}
	snprintf(a->text, sizeof a->text, "%s", s);
	err = s[0] == '[' ? split_bracketed(s, &host, &hlen, &port)
	                  : split_plain(s, &host, &hlen, &port);
	if (err) {
		*why = err;
		return -1;
	}
	if (hlen == 0) {
		*why = "missing host (use * for all addresses)";
		return -1;
	}
	if (*port == '\0') {
		*why = "missing port";
		return -1;
	}
	if (read_port(port, &nport) < 0) {
		*why = "port must be a number from 1 to 65535";
		return -1;
	}
	if (hlen >= sizeof h) {
		*why = s[0] == '[' ? "not a numeric IPv6 address"
		                   : "not a numeric address; use a numeric address or localhost";
		return -1;
	}
	memcpy(h, host, hlen);
	h[hlen] = '\0';
	if (s[0] == '[') {
		if (inet_pton(AF_INET6, h, &ip6) != 1) {
			*why = "not a numeric IPv6 address";
			return -1;
		}
		set_v6(a, &ip6, nport);
	} else if (strcmp(h, "*") == 0) {
		set_v6(a, &in6addr_any, nport);
	} else if (strcasecmp(h, "localhost") == 0) {
		ip4.s_addr = htonl(INADDR_LOOPBACK);
		set_v4(a, &ip4, nport);
	} else if (inet_pton(AF_INET, h, &ip4) == 1) {
		set_v4(a, &ip4, nport);
	} else {
		*why = "not a numeric address; use a numeric address or localhost";
		return -1;
	}
	return 0;
}

/* Used by the checks: same family, address and port. */
static int addr_same(const struct cfg_addr *a, const struct cfg_addr *b)
{
	const struct sockaddr_in *a4 = (const void *)&a->sa, *b4 = (const void *)&b->sa;
	const struct sockaddr_in6 *a6 = (const void *)&a->sa, *b6 = (const void *)&b->sa;

	if (a->sa.ss_family != b->sa.ss_family)
		return 0;
	if (a->sa.ss_family == AF_INET)
		return a4->sin_port == b4->sin_port && a4->sin_addr.s_addr == b4->sin_addr.s_addr;
	return a6->sin6_port == b6->sin6_port &&
	       memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof a6->sin6_addr) == 0;
}

/* Used by the checks: the port of an address, host order. */
static unsigned addr_port(const struct cfg_addr *a)
{
	if (a->sa.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)&a->sa)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)(const void *)&a->sa)->sin6_port);
}

/* Used by the checks: 0.0.0.0 or [::]. */
static int addr_is_any(const struct cfg_addr *a)
{
	if (a->sa.ss_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)&a->sa)->sin_addr.s_addr ==
		       htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)(const void *)&a->sa)->sin6_addr);
}

/* Used by the listener checks: binding a would fail or share traffic with
 * binding b, i.e. the same port and address, or a wildcard that covers the
 * other ([::] is dual-stack, so it covers IPv4 too). */
static int addr_overlaps(const struct cfg_addr *a, const struct cfg_addr *b)
{
	if (addr_port(a) != addr_port(b))
		return 0;
	if (addr_same(a, b))
		return 1;
	if (addr_is_any(a) && (a->sa.ss_family == AF_INET6 || b->sa.ss_family == AF_INET))
		return 1;
	return addr_is_any(b) && (b->sa.ss_family == AF_INET6 || a->sa.ss_family == AF_INET);
}

/* ---- key setters: run from on_pair() for one value each ---- */

/* workers: a plain number in [min, max]. */
static int set_count(const struct keydef *k, const char *v, void *field, char *why, size_t whylen)
{
	uint64_t n;
	int over;
	const char *end = read_digits(v, k->max, &n, &over);

	if (!end || *end) {
		snprintf(why, whylen, "is not a whole number");
		return -1;
	}
	if (over || n < k->min) {
		snprintf(why, whylen, "is out of range %u..%u", (unsigned)k->min, (unsigned)k->max);
		return -1;
	}
	*(unsigned *)field = (unsigned)n;
	return 0;
}

/* buffer_size, max_pending: a size in [min, max]. */
static int set_size(const struct keydef *k, const char *v, void *field, char *why, size_t whylen)
{
	char lo[16], hi[16];
	uint32_t n = 0;
	int rc = read_scaled(v, size_units, sizeof size_units / sizeof *size_units, &n);

	if (rc == NUM_BAD) {
		snprintf(why, whylen, "is not a size (bytes, or a number followed by k or m)");
		return -1;
	}
	if (rc == NUM_BIG || n < k->min || n > k->max) {
		snprintf(why, whylen, "is out of range %s..%s", size_text(k->min, lo, sizeof lo),
		         size_text(k->max, hi, sizeof hi));
		return -1;
	}
	*(uint32_t *)field = n;
	return 0;
}

/* The timeouts: a duration of at least min milliseconds. */
static int set_duration(const struct keydef *k, const char *v, void *field, char *why,
                        size_t whylen)
{
	uint32_t n = 0;
	int rc = read_scaled(v, duration_units, sizeof duration_units / sizeof *duration_units, &n);

	if (rc == NUM_BAD) {
		snprintf(why, whylen, "is not a duration (e.g. 250ms, 10s, 31m, 2h, 1d)");
		return -1;
	}
	if (rc == NUM_BIG && !k->max) {
		snprintf(why, whylen, "is too long (max %ums, about 49 days)", (unsigned)UINT32_MAX);
		return -1;
	}
	if (rc == NUM_OK && n < k->min) {
		snprintf(why, whylen, "is too short (min %ums)", (unsigned)k->min);
		return -1;
	}
	if (k->max && (rc == NUM_BIG || n > k->max)) {
		snprintf(why, whylen, "is too long (max %ums)", (unsigned)k->max);
		return -1;
	}
	*(uint32_t *)field = n;
	return 0;
}

/* log_level, protocol, tls: one of k->words, stored as its index. */
static int set_word(const struct keydef *k, const char *v, void *field, char *why, size_t whylen)
{
	size_t used;

	for (int i = 0; k->words[i]; i++) {
		if (strcmp(v, k->words[i]) == 0) {
			memcpy(field, &i, sizeof i);
			return 0;
		}
	}
	used = (size_t)snprintf(why, whylen, "is not one of");
	for (int i = 0; k->words[i] && used < whylen; i++)
		used += (size_t)snprintf(why + used, whylen - used, "%s %s", i ? "," : "",
		                         k->words[i]);
	return -1;
}

/* certificate, key: a copy of the text. */
static int set_string(const struct keydef *k, const char *v, void *field, char *why,
                      size_t whylen)
{
	char **dst = field;
	char *copy = strdup(v);

	(void)k;

	if (!copy) {
		snprintf(why, whylen, "could not be stored: out of memory");
		return -1;
	}
	free(*dst);
	*dst = copy;
	return 0;
}

/* greeting, capabilities: one line of printable ASCII sent to clients,
 * k->min..k->max characters. */
static int set_text(const struct keydef *k, const char *v, void *field, char *why,
                    size_t whylen)
{
	size_t n = strlen(v);

	for (const char *c = v; *c; c++) {
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
			snprintf(why, whylen, "may only hold printable ASCII characters");
			return -1;
		}
	}
	if (n < k->min || n > k->max) {
		snprintf(why, whylen, "must be %u..%u characters long", (unsigned)k->min,
		         (unsigned)k->max);
		return -1;
	}
	return set_string(k, v, field, why, whylen);
}

/* address: where a listener binds, "*" allowed. */
static int set_listen(const struct keydef *k, const char *v, void *field, char *why,
                      size_t whylen)
{
	const char *reason = NULL;

	(void)k;
	if (cfg_parse_addr(v, field, &reason) < 0) {
		snprintf(why, whylen, "is not a valid address: %s", reason);
		return -1;
	}
	return 0;
}

/* backend: where moat connects, so it must name one host. */
static int set_backend(const struct keydef *k, const char *v, void *field, char *why,
                       size_t whylen)
{
	if (set_listen(k, v, field, why, whylen) < 0)
		return -1;
	if (addr_is_any(field)) {
		snprintf(why, whylen, "is a wildcard; a backend needs a specific address");
		return -1;
	}
	return 0;
}

/* connection_rate_per_ip, auth_fail_limit: "N/duration" (N up to k->max,
 * the duration 1s..1d), or 0 / off for no limit. */
static int set_rate(const struct keydef *k, const char *v, void *field, char *why,
                    size_t whylen)
{
	struct cfg_rate *r = field;
	const char *slash = strchr(v, '/');
	char count[16];
	uint64_t n;
	uint32_t ms = 0;
	int over;
	const char *end;

	if (strcmp(v, "0") == 0 || strcmp(v, "off") == 0) {
		r->count = 0;
		r->window_ms = 0;
		return 0;
	}
	if (!slash) {
		snprintf(why, whylen, "is not a rate (e.g. 20/10m: 20 per 10 minutes; 0 for none)");
		return -1;
	}
	if ((size_t)(slash - v) >= sizeof count) {
		snprintf(why, whylen, "needs a count from 1 to %u before the '/'", (unsigned)k->max);
		return -1;
	}
	memcpy(count, v, (size_t)(slash - v));
	count[slash - v] = '\0';
	end = read_digits(count, k->max, &n, &over);
	if (!end || *end || over || n == 0) {
		snprintf(why, whylen, "needs a count from 1 to %u before the '/'", (unsigned)k->max);
		return -1;
	}
	if (read_scaled(slash + 1, duration_units, sizeof duration_units / sizeof *duration_units,
	                &ms) != NUM_OK || ms < 1000 || ms > 86400000) {
		snprintf(why, whylen, "needs a duration from 1s to 1d after the '/'");
		return -1;
	}
	r->count = (unsigned)n;
	r->window_ms = ms;
	return 0;
}

int cfg_addr_is_loopback(const struct cfg_addr *a)
{
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)(const void *)&a->sa;

	if (a->sa.ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)&a->sa)->sin_addr.s_addr)
		        >> 24) == 127;
	if (a->sa.ss_family != AF_INET6)
		return 0;
	if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr))
		return v6->sin6_addr.s6_addr[12] == 127;
	return IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
}

/* [metrics] address: a loopback address, since the endpoint has no
 * authentication of its own. */
static int set_metrics(const struct keydef *k, const char *v, void *field, char *why,
                       size_t whylen)
{
	const struct cfg_addr *a = field;

	if (set_listen(k, v, field, why, whylen) < 0)
		return -1;
	/* not v4-mapped: an AF_INET6 socket bound there takes no connections */
	if (!cfg_addr_is_loopback(a) || (a->sa.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(
	    &((const struct sockaddr_in6 *)(const void *)&a->sa)->sin6_addr))) {
		snprintf(why, whylen, "is not a loopback address: metrics are served on 127.0.0.1 "
		         "or [::1] only");
		return -1;
	}
	return 0;
}

/* Used by the list setters: whether c separates items (',' and
 * whitespace, and ':' where colons cannot be in an item). */
static int is_sep(char c, int colon)
{
	return c == ',' || (colon && c == ':') || isspace((unsigned char)c);
}

/* Used by the list setters: the next item of a list separated by ',',
 * whitespace, and with colon set ':'; NULL at the end. */
static const char *next_item(const char **v, size_t *len, int colon)
{
	const char *s = *v, *e;

	while (*s && is_sep(*s, colon))
		s++;
	if (!*s)
		return NULL;
	for (e = s; *e && !is_sep(*e, colon); e++)
		;
	*len = (size_t)(e - s);
	*v = e;
	return s;
}

/* Used by set_nets(): "addr" or "addr/prefix" into a net. */
static int parse_net(const char *item, size_t len, struct cfg_net *n)
{
	char text[INET6_ADDRSTRLEN + 5], *slash;
	unsigned max;
	uint64_t prefix;
	int over;

	if (len >= sizeof text)
		return -1;
	memcpy(text, item, len);
	text[len] = '\0';
	slash = strchr(text, '/');
	if (slash)
		*slash++ = '\0';
	memset(n, 0, sizeof *n);
	if (inet_pton(AF_INET, text, n->addr) == 1) {
		n->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, text, n->addr) == 1) {
		n->family = AF_INET6;
		max = 128;
	} else {
		return -1;
	}
	n->prefix = max;
	if (slash) {
		const char *end = read_digits(slash, max, &prefix, &over);
		if (!end || *end || over)
			return -1;
		n->prefix = (unsigned)prefix;
	}
	return 0;
}

/* Whether addr (4 or 16 bytes) lies in net n of the same family. */
static int net_has(const struct cfg_net *n, const uint8_t *addr)
{
	unsigned full = n->prefix / 8, rest = n->prefix % 8;

	if (memcmp(n->addr, addr, full) != 0)
		return 0;
	return rest == 0 || ((n->addr[full] ^ addr[full]) & (uint8_t)(0xff00u >> rest)) == 0;
}

int cfg_net_contains(const struct cfg_nets *nets, const struct sockaddr *sa)
{
	const uint8_t *v4 = NULL, *v6 = NULL;

	if (sa->sa_family == AF_INET) {
		v4 = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		v6 = a->s6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			v4 = a->s6_addr + 12;
	}
	for (size_t i = 0; i < nets->n; i++) {
		const struct cfg_net *n = &nets->v[i];
		if ((n->family == AF_INET && v4 && net_has(n, v4)) ||
		    (n->family == AF_INET6 && v6 && net_has(n, v6)))
			return 1;
	}
	return 0;
}

/* limits_exempt: address blocks ("127.0.0.0/8 ::1", at most k->max), or
 * none. */
static int set_nets(const struct keydef *k, const char *v, void *field, char *why,
                    size_t whylen)
{
	struct cfg_nets nets;
	size_t n = 0, len;
	const char *item;

	memset(&nets, 0, sizeof nets);
	if (strcmp(v, "none") != 0) {
		while ((item = next_item(&v, &len, 0)) != NULL) {
			if (n == k->max) {
				snprintf(why, whylen, "includes more than %u address blocks",
				         (unsigned)k->max);
				return -1;
			}
			if (parse_net(item, len, &nets.v[n]) < 0) {
				snprintf(why, whylen, "includes '%.*s', not an address or address/prefix",
				         (int)(len > 64 ? 64 : len), item);
				return -1;
			}
			n++;
		}
		if (n == 0) {
			snprintf(why, whylen, "includes no address block (write none for none)");
			return -1;
		}
	}
	nets.n = n;
	memcpy(field, &nets, sizeof nets);
	return 0;
}

/* Used by the list setters: id already in list[0..n). */
static int listed(const uint16_t *list, size_t n, uint16_t id)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] == id)
			return 1;
	return 0;
}

/* tls12_ciphers (k->min 0), tls13_ciphers (k->min 1): cipher suite names
 * of that version; groups (k->min 2): key exchange groups. Either in
 * preference order. */
static int set_ids(const struct keydef *k, const char *v, void *field, char *why,
                   size_t whylen)
{
	int groups = k->min == 2, want13 = k->min == 1;
	const char *what = groups ? "group" : "cipher suite";
	size_t cap = groups ? TLS_MAX_GROUPS : TLS_MAX_SUITES, n = 0, len;
	uint16_t list[TLS_MAX_SUITES + 1], id;
	char names[400];
	const char *item;

	while ((item = next_item(&v, &len, 1)) != NULL) {
		int tls13 = 0;
		int rc = groups ? tls_group_lookup(item, len, &id)
		                : tls_suite_lookup(item, len, &id, &tls13);
		if (rc < 0) {
			snprintf(why, whylen, "includes '%.*s', not a %s moat offers (it offers: %s)",
			         (int)(len > 64 ? 64 : len), item, what,
			         groups ? tls_group_names(names, sizeof names)
			                : tls_suite_names(want13, names, sizeof names));
			return -1;
		}
		if (!groups && tls13 != want13) {
			snprintf(why, whylen, "includes '%.*s', a TLS %s suite; list it in %s", (int)len,
			         item, tls13 ? "1.3" : "1.2", tls13 ? "tls13_ciphers" : "tls12_ciphers");
			return -1;
		}
		if (listed(list, n, id)) {
			snprintf(why, whylen, "includes '%.*s' twice", (int)len, item);
			return -1;
		}
		if (n == cap) {
			snprintf(why, whylen, "includes more than %zu %ss", cap, what);
			return -1;
		}
		list[n++] = id;
	}
	if (n == 0) {
		snprintf(why, whylen, "includes no %s", what);
		return -1;
	}
	list[n] = 0;
	memcpy(field, list, (n + 1) * sizeof *list);
	return 0;
}

/* ---- sections and their keys ---- */

#define CFG_OFF(f)  offsetof(struct cfg, f)
#define LST_OFF(f)  offsetof(struct cfg_listener, f)
#define CRT_OFF(f)  offsetof(struct cfg_cert, f)
#define NKEYS(t)    (sizeof t / sizeof *t)

static const struct keydef moat_keys[] = {
	{ "workers", set_count, CFG_OFF(workers), 0, 0, CFG_MAX_WORKERS, NULL },
	{ "log_level", set_word, CFG_OFF(log_level), 0, 0, 0, log_words },
	{ "buffer_size", set_size, CFG_OFF(buffer_size), 0, 4096, 1048576, NULL },
	{ "max_pending", set_size, CFG_OFF(max_pending), 0, 16384, 64 * 1048576, NULL },
	{ "log_format", set_word, CFG_OFF(log_format), 0, 0, 0, log_format_words },
	{ "log_target", set_word, CFG_OFF(log_target), 0, 0, 0, log_target_words },
	{ "syslog_facility", set_word, CFG_OFF(syslog_facility), 0, 0, 0, facility_words },
	{ "max_connections", set_count, CFG_OFF(max_connections), 0, 0, 10000000, NULL },
	{ "max_connections_per_ip", set_count, CFG_OFF(max_connections_per_ip), 0, 0, 10000000,
	  NULL },
	{ "connection_rate_per_ip", set_rate, CFG_OFF(connection_rate_per_ip), 0, 0, 1000000,
	  NULL },
	{ "auth_fail_limit", set_rate, CFG_OFF(auth_fail_limit), 0, 0, 100000, NULL },
	{ "auth_block_time", set_duration, CFG_OFF(auth_block_ms), 0, 1000, 86400000, NULL },
	{ "ipv6_prefix", set_count, CFG_OFF(ipv6_prefix), 0, 32, 128, NULL },
	{ "limits_exempt", set_nets, CFG_OFF(limits_exempt), 0, 0, CFG_MAX_NETS, NULL },
	{ "shutdown_grace", set_duration, CFG_OFF(shutdown_grace_ms), 0, 0, 86400000, NULL },
	{ "user", set_string, CFG_OFF(user), 0, 0, 0, NULL },
	{ "group", set_string, CFG_OFF(group), 0, 0, 0, NULL },
	{ "chroot", set_string, CFG_OFF(chroot_dir), 0, 0, 0, NULL },
	{ "pid_file", set_string, CFG_OFF(pid_file), 0, 0, 0, NULL },
	{ "allow_root", set_word, CFG_OFF(allow_root), 0, 0, 0, bool_words },
	{ "route_map", set_string, CFG_OFF(route_map), 0, 0, 0, NULL },
	{ "drain_delay", set_duration, CFG_OFF(drain_delay_ms), 0, 0, 600000, NULL },
};
enum { MK_ROUTE_MAP = 20, MK_DRAIN_DELAY };
_Static_assert(NKEYS(moat_keys) == MK_DRAIN_DELAY + 1, "route_map's index");

static const struct keydef health_keys[] = {
	{ "address", set_listen, CFG_OFF(health_address), 1, 0, 0, NULL },
};

static const struct keydef metrics_keys[] = {
	{ "address", set_metrics, CFG_OFF(metrics_address), 1, 0, 0, NULL },
};

enum { TK_CERT, TK_KEY, TK_TICKET_FILE = 11 };

static const struct keydef tls_keys[] = {
	[TK_CERT] = { "certificate", set_string, CFG_OFF(certificate), 1, 0, 0, NULL },
	[TK_KEY] = { "key", set_string, CFG_OFF(key), 1, 0, 0, NULL },
	{ "min_version", set_word, CFG_OFF(min_tls13), 0, 0, 0, version_words },
	{ "tls12_ciphers", set_ids, CFG_OFF(tls12_ciphers), 0, 0, 0, NULL },
	{ "tls13_ciphers", set_ids, CFG_OFF(tls13_ciphers), 0, 1, 0, NULL },
	{ "groups", set_ids, CFG_OFF(groups), 0, 2, 0, NULL },
	{ "prefer_server_ciphers", set_word, CFG_OFF(prefer_server_ciphers), 0, 0, 0, bool_words },
	{ "session_tickets", set_word, CFG_OFF(session_tickets), 0, 0, 0, bool_words },
	/* RFC 8446 4.6.1: at most 7 days */
	{ "ticket_lifetime", set_duration, CFG_OFF(ticket_lifetime_ms), 0, 60000, 604800000, NULL },
	{ "key_permissions", set_word, CFG_OFF(key_permissions), 0, 0, 0, keyperm_words },
	{ "expiry_warning_days", set_count, CFG_OFF(expiry_warning_days), 0, 0, 3650, NULL },
	[TK_TICKET_FILE] = { "ticket_key_file", set_string, CFG_OFF(ticket_key_file), 0, 0, 0,
	                     NULL },
};

_Static_assert(NKEYS(tls_keys) == TK_TICKET_FILE + 1, "ticket_key_file's index");

static const struct keydef cert_keys[] = {
	[TK_CERT] = { "certificate", set_string, CRT_OFF(certificate), 1, 0, 0, NULL },
	[TK_KEY] = { "key", set_string, CRT_OFF(key), 1, 0, 0, NULL },
};

#define BK_OFF(f)   offsetof(struct cfg_backend, f)

enum { BK_IMAP, BK_POP3, BK_FORWARD, BK_INTERVAL, BK_TIMEOUT, BK_STRIP, BK_ADD, BK_INSECURE,
       BK_TLS, BK_CA, BK_TLS_NAME };

static const struct keydef backend_keys[] = {
	[BK_IMAP] = { "imap", set_backend, BK_OFF(addr[CFG_PROTO_IMAP]), 0, 0, 0, NULL },
	[BK_POP3] = { "pop3", set_backend, BK_OFF(addr[CFG_PROTO_POP3]), 0, 0, 0, NULL },
	[BK_FORWARD] = { "forward", set_word, BK_OFF(forward), 0, 0, 0, forward_words },
	[BK_INTERVAL] = { "check_interval", set_duration, BK_OFF(check_interval_ms), 0, 0,
	                  86400000, NULL },
	[BK_TIMEOUT] = { "check_timeout", set_duration, BK_OFF(check_timeout_ms), 0, 100, 60000,
	                 NULL },
	[BK_STRIP] = { "strip_domain", set_word, BK_OFF(strip_domain), 0, 0, 0, bool_words },
	[BK_ADD] = { "add_domain", set_text, BK_OFF(add_domain), 0, 1, 253, NULL },
	[BK_INSECURE] = { "insecure", set_word, BK_OFF(insecure), 0, 0, 0, bool_words },
	[BK_TLS] = { "tls", set_word, BK_OFF(tls), 0, 0, 0, btls_words },
	[BK_CA] = { "ca", set_string, BK_OFF(ca), 0, 0, 0, NULL },
	[BK_TLS_NAME] = { "tls_name", set_text, BK_OFF(tls_name), 0, 1, 253, NULL },
};

enum { LK_ADDRESS, LK_PROTOCOL, LK_TLS, LK_BACKEND, LK_HANDSHAKE, LK_CONNECT, LK_IDLE,
       LK_GREETING, LK_CAPS, LK_TRANSPARENT, LK_MAXCMD, LK_PREAUTH, LK_FAILDELAY, LK_MAXFAIL,
       LK_CERTS, LK_CLIENTCERT, LK_CLIENTCA, LK_BALANCE, LK_INSECURE, LK_PROXY,
       LK_PROXY_TRUSTED };

static const struct keydef listener_keys[] = {
	[LK_ADDRESS] = { "address", set_listen, LST_OFF(address), 1, 0, 0, NULL },
	[LK_PROTOCOL] = { "protocol", set_word, LST_OFF(protocol), 1, 0, 0, proto_words },
	[LK_TLS] = { "tls", set_word, LST_OFF(tls), 0, 0, 0, tls_words },
	[LK_BACKEND] = { "backend", set_string, LST_OFF(backend_text), 1, 0, 0, NULL },
	[LK_HANDSHAKE] = { "handshake_timeout", set_duration, LST_OFF(handshake_timeout_ms), 0,
	                   1, 0, NULL },
	[LK_CONNECT] = { "connect_timeout", set_duration, LST_OFF(connect_timeout_ms), 0, 1, 0,
	                 NULL },
	[LK_IDLE] = { "idle_timeout", set_duration, LST_OFF(idle_timeout_ms), 0, 1, 0, NULL },
	[LK_GREETING] = { "greeting", set_text, LST_OFF(greeting), 0, 1, 200, NULL },
	[LK_CAPS] = { "capabilities", set_text, LST_OFF(capabilities), 0, 1, 1000, NULL },
	[LK_TRANSPARENT] = { "transparent", set_word, LST_OFF(transparent), 0, 0, 0, bool_words },
	[LK_MAXCMD] = { "max_command", set_size, LST_OFF(max_command), 0, 1024, 65536, NULL },
	[LK_PREAUTH] = { "preauth_timeout", set_duration, LST_OFF(preauth_timeout_ms), 0, 1, 0,
	                 NULL },
	[LK_FAILDELAY] = { "auth_failure_delay", set_duration, LST_OFF(auth_failure_delay_ms), 0,
	                   0, 0, NULL },
	[LK_MAXFAIL] = { "max_auth_failures", set_count, LST_OFF(max_auth_failures), 0, 1, 100,
	                 NULL },
	[LK_CERTS] = { "certificates", set_string, LST_OFF(certificates), 0, 0, 0, NULL },
	[LK_CLIENTCERT] = { "client_certificate", set_word, LST_OFF(client_certificate), 0, 0, 0,
	                    client_cert_words },
	[LK_CLIENTCA] = { "client_ca", set_string, LST_OFF(client_ca), 0, 0, 0, NULL },
	[LK_BALANCE] = { "balance", set_word, LST_OFF(balance), 0, 0, 0, balance_words },
	[LK_INSECURE] = { "insecure", set_word, LST_OFF(insecure), 0, 0, 0, bool_words },
	[LK_PROXY] = { "proxy_protocol", set_word, LST_OFF(proxy_protocol), 0, 0, 0, bool_words },
	[LK_PROXY_TRUSTED] = { "proxy_trusted", set_nets, LST_OFF(proxy_trusted), 0, 0,
	                       CFG_MAX_NETS, NULL },
};

_Static_assert(NKEYS(moat_keys) <= CFG_MAX_KEYS && NKEYS(tls_keys) <= CFG_MAX_KEYS &&
               NKEYS(listener_keys) <= CFG_MAX_KEYS, "raise CFG_MAX_KEYS");

/* The first NSINGLE have one struct sect each in parser.single[]. */
enum { SECT_MOAT, SECT_TLS, SECT_METRICS, SECT_HEALTH, NSINGLE, SECT_LISTENER = NSINGLE,
       SECT_CERT,
       SECT_BACKEND };
_Static_assert(NSINGLE == sizeof ((struct parser *)0)->single /
               sizeof ((struct parser *)0)->single[0], "one struct sect per single section");

static const struct sectdef sectdefs[] = {
	[SECT_MOAT] = { "moat", 0, moat_keys, NKEYS(moat_keys) },
	[SECT_TLS] = { "tls", 0, tls_keys, NKEYS(tls_keys) },
	[SECT_METRICS] = { "metrics", 0, metrics_keys, NKEYS(metrics_keys) },
	[SECT_HEALTH] = { "health", 0, health_keys, NKEYS(health_keys) },
	[SECT_LISTENER] = { "listener", 1, listener_keys, NKEYS(listener_keys) },
	[SECT_CERT] = { "certificate", 1, cert_keys, NKEYS(cert_keys) },
	[SECT_BACKEND] = { "backend", 1, backend_keys, NKEYS(backend_keys) },
};

/* The name of the i-th section of a named kind, NULL when it has none. */
static const char *named_name(const struct parser *p, const struct sectdef *d, size_t i)
{
	if (d == &sectdefs[SECT_LISTENER])
		return i < p->nls ? p->ls[i].l.name : NULL;
	if (d == &sectdefs[SECT_BACKEND])
		return i < p->nnamed_bs ? p->bs[i].b.name : NULL;
	return i < p->ncs ? p->cs[i].c.name : NULL;
}

/* The header line of the i-th section of a named kind. */
static int named_line(const struct parser *p, const struct sectdef *d, size_t i)
{
	if (d == &sectdefs[SECT_LISTENER])
		return p->ls[i].l.line;
	if (d == &sectdefs[SECT_BACKEND])
		return p->bs[i].b.line;
	return p->cs[i].c.line;
}

/* Used in messages: "[tls]" or "[listener imaps]" for the section in use. */
static const char *section_label(const struct parser *p, const struct sectdef *d, size_t li,
                                 char *buf, size_t len)
{
	if (d->named)
		snprintf(buf, len, "[%s %s]", d->word, named_name(p, d, li));
	else
		snprintf(buf, len, "[%s]", d->word);
	return buf;
}

/* Runs for a [listener NAME] or [certificate NAME] header: checks NAME;
 * returns -1 when the section is to be ignored (a second one by NAME). */
static int check_section_name(struct parser *p, const struct sectdef *d, const char *name,
                              size_t n)
{
	const char *other;

	if (n == 0) {
		problem(p, p->line, "[%s] needs a name, e.g. [%s %s]", d->word, d->word,
		        d == &sectdefs[SECT_LISTENER] ? "imaps"
		        : d == &sectdefs[SECT_BACKEND] ? "store1" : "rsa");
		return -1;
	}
	if (n > CFG_MAX_NAME) {
		problem(p, p->line, "%s name is longer than %d characters", d->word, CFG_MAX_NAME);
		return -1;
	}
	if (d == &sectdefs[SECT_CERT] && n == 7 && strncasecmp(name, "default", 7) == 0) {
		problem(p, p->line, "[certificate %.*s]: the name is taken by [tls]'s certificate "
		        "and key; choose another", (int)n, name);
		return -1;
	}
	for (size_t i = 0; (other = named_name(p, d, i)) != NULL; i++) {
		if (strlen(other) == n && memcmp(other, name, n) == 0) {
			problem(p, p->line, "duplicate section [%s %.*s] (first at line %d)", d->word,
			        (int)n, name, named_line(p, d, i));
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (!isalnum(ch) && ch != '_' && ch != '.' && ch != '-') {
			problem(p, p->line, "%s name '%.*s' may only use A-Z a-z 0-9 _ . -", d->word,
			        (int)n, name);
			break;
		}
	}
	return 0;
}

/* Used by the section openers: room for one more draft in *v, which
 * holds n of *cap elements of size bytes; 0, or -1 when memory ran out. */
static int grow(struct parser *p, void **v, size_t n, size_t *cap, size_t size)
{
	size_t c = *cap ? *cap * 2 : 4;
	void *nv;

	if (n < *cap)
		return 0;
	nv = realloc(*v, c * size);
	if (!nv) {
		p->probs.oom = 1;
		return -1;
	}
	*v = nv;
	*cap = c;
	return 0;
}

/* Runs for a [certificate NAME] header: adds one, empty. */
static int open_certificate(struct parser *p, const char *name, size_t n)
{
	struct cdraft *d;

	if (check_section_name(p, &sectdefs[SECT_CERT], name, n) < 0 ||
	    grow(p, (void **)&p->cs, p->ncs, &p->capcs, sizeof *p->cs) < 0)
		return -1;
	d = &p->cs[p->ncs];
	memset(d, 0, sizeof *d);
	d->c.name = strndup(name, n);
	if (!d->c.name) {
		p->probs.oom = 1;
		return -1;
	}
	d->c.line = p->line;
	d->s.line = p->line;
	p->cur_named = p->ncs++;
	return 0;
}

/* A backend with its defaults (name copied), appended to the drafts. */
static struct bdraft *add_backend(struct parser *p, const char *name, size_t n, int line)
{
	struct bdraft *d;

	if (grow(p, (void **)&p->bs, p->nbs, &p->capbs, sizeof *p->bs) < 0)
		return NULL;
	d = &p->bs[p->nbs];
	memset(d, 0, sizeof *d);
	d->b.name = strndup(name, n);
	if (!d->b.name) {
		p->probs.oom = 1;
		return NULL;
	}
	d->b.line = line;
	d->b.check_interval_ms = 10 * 1000;
	d->b.check_timeout_ms = 5 * 1000;
	d->s.line = line;
	p->nbs++;
	return d;
}

/* Runs for a [backend NAME] header (they all come before any inline
 * backend, which the checks add). */
static int open_backend(struct parser *p, const char *name, size_t n)
{
	if (check_section_name(p, &sectdefs[SECT_BACKEND], name, n) < 0 ||
	    !add_backend(p, name, n, p->line))
		return -1;
	p->cur_named = p->nnamed_bs++;
	return 0;
}

/* Runs for a [listener NAME] header: adds a listener with its defaults. */
static int open_listener(struct parser *p, const char *name, size_t n)
{
	struct ldraft *d;

	if (check_section_name(p, &sectdefs[SECT_LISTENER], name, n) < 0 ||
	    grow(p, (void **)&p->ls, p->nls, &p->capls, sizeof *p->ls) < 0)
		return -1;
	d = &p->ls[p->nls];
	memset(d, 0, sizeof *d);
	d->l.name = strndup(name, n);
	if (!d->l.name) {
		p->probs.oom = 1;
		return -1;
	}
	d->l.line = p->line;
	d->l.protocol = CFG_PROTO_IMAP;
	d->l.tls = CFG_TLS_IMPLICIT;
	d->l.handshake_timeout_ms = 10 * 1000;
	d->l.connect_timeout_ms = 10 * 1000;
	d->l.max_command = 8192;
	d->l.preauth_timeout_ms = 60 * 1000;
	d->l.auth_failure_delay_ms = 2 * 1000;
	d->l.max_auth_failures = 3;
	/* a load balancer on this host */
	parse_net("127.0.0.0/8", 11, &d->l.proxy_trusted.v[0]);
	parse_net("::1", 3, &d->l.proxy_trusted.v[1]);
	d->l.proxy_trusted.n = 2;
	d->s.line = p->line;
	p->cur_named = p->nls++;
	return 0;
}

/* Runs for a [moat] or [tls] header: only the first one counts. */
static int open_single(struct parser *p, int which)
{
	struct sect *s = &p->single[which];

	if (s->line) {
		problem(p, p->line, "duplicate section [%s] (first at line %d)",
		        sectdefs[which].word, s->line);
		return -1;
	}
	s->line = p->line;
	return 0;
}

/* Runs from line_reader() for each "[...]" line inih will take as a
 * header; text is what lies between the brackets. Keys that follow go to
 * the section chosen here, or nowhere when it is refused. */
static void open_section(struct parser *p, const char *text, size_t n)
{
	size_t wlen = 0;
	const char *rest;
	size_t rlen;

	while (n && isspace((unsigned char)*text))
		text++, n--;
	while (n && isspace((unsigned char)text[n - 1]))
		n--;
	while (wlen < n && !isspace((unsigned char)text[wlen]))
		wlen++;
	rest = text + wlen;
	rlen = n - wlen;
	while (rlen && isspace((unsigned char)*rest))
		rest++, rlen--;

	p->cur = CUR_IGNORE;
	for (size_t i = 0; i < sizeof sectdefs / sizeof *sectdefs; i++) {
		const struct sectdef *d = &sectdefs[i];
		if (strlen(d->word) != wlen || memcmp(d->word, text, wlen) != 0)
			continue;
		if (!d->named && rlen) {
			problem(p, p->line, "section [%s] takes no name", d->word);
			return;
		}
		if (i == SECT_LISTENER ? open_listener(p, rest, rlen)
		    : i == SECT_CERT ? open_certificate(p, rest, rlen)
		    : i == SECT_BACKEND ? open_backend(p, rest, rlen) : open_single(p, (int)i))
			return;
		p->cur = CUR_SECTION;
		p->cur_def = d;
		return;
	}
	problem(p, p->line, "unknown section [%.*s]", (int)(n > 64 ? 64 : n), text);
}

/* ---- inih callbacks ---- */

/* Runs before each new line and at the end: a line inih should have
 * passed to on_pair() but did not was a syntax error to inih. */
static void finish_line(struct parser *p)
{
	if ((p->kind == LINE_PAIR || p->kind == LINE_CONT) && !p->got_pair)
		syntax_error(p, p->line);
	p->kind = LINE_NONE;
	p->got_pair = 0;
}

/* Used by classify_line(): mirrors inih's search for the "]" of a header,
 * which gives up at a ";" after whitespace (an inline comment). */
static const char *header_end(const char *s)
{
	int was_space = 0;

	for (; *s; s++) {
		if (*s == ']')
			return s;
		if (was_space && *s == ';')
			return NULL;
		was_space = isspace((unsigned char)*s);
	}
	return NULL;
}

/* Runs from line_reader() for each line it serves, with the same rules
 * inih (r55) applies next: blank or comment, continuation, header, pair. */
static void classify_line(struct parser *p, const char *line)
{
	const char *t = line, *end;

	if (p->line == 1 && strncmp(t, "\xEF\xBB\xBF", 3) == 0)
		t += 3;
	while (isspace((unsigned char)*t))
		t++;
	if (*t == '\0' || *t == ';' || *t == '#') {
		p->kind = LINE_BLANK;
	} else if (p->prev_name && t > line) {
		p->kind = LINE_CONT;
	} else if (*t == '[' && (end = header_end(t + 1)) != NULL) {
		p->kind = LINE_HEADER;
		p->prev_name = 0;
		open_section(p, t + 1, (size_t)(end - t - 1));
	} else {
		p->kind = LINE_PAIR;
	}
}

/* The ini_reader: runs each time inih wants a line. Serves the next line
 * of the buffer with its "\n", an empty line in place of one that is too
 * long or holds a NUL byte, or NULL at the end. */
static char *line_reader(char *str, int num, void *stream)
{
	struct parser *p = stream;
	size_t max = num > 2 ? (size_t)num - 2 : 0;
	const char *s, *nl;
	size_t rest, n;

	finish_line(p);
	if (p->pos >= p->len || num < 2)
		return NULL;
	s = p->buf + p->pos;
	rest = p->len - p->pos;
	nl = memchr(s, '\n', rest);
	n = nl ? (size_t)(nl - s) : rest;
	p->pos += nl ? n + 1 : n;
	if (n > 0 && s[n - 1] == '\r')
		n--;
	p->line++;
	if (memchr(s, '\0', n)) {
		problem(p, p->line, "NUL byte in line");
		n = 0;
	} else if (n > max) {
		problem(p, p->line, "line too long (max %zu)", max);
		n = 0;
	}
	memcpy(str, s, n);
	str[n] = '\n';
	str[n + 1] = '\0';
	classify_line(p, str);
	return str;
}

/* Runs from on_pair() for "name = value" in the section in use: finds the
 * key, refuses repeats, and lets its setter store the value. */
static void set_key(struct parser *p, const char *name, const char *value)
{
	const struct sectdef *d = p->cur_def;
	struct sect *s;
	void *base;
	char label[96], why[512];
	const struct keydef *k = NULL;
	size_t i;

	if (d == &sectdefs[SECT_LISTENER]) {
		s = &p->ls[p->cur_named].s;
		base = &p->ls[p->cur_named].l;
	} else if (d == &sectdefs[SECT_CERT]) {
		s = &p->cs[p->cur_named].s;
		base = &p->cs[p->cur_named].c;
	} else if (d == &sectdefs[SECT_BACKEND]) {
		s = &p->bs[p->cur_named].s;
		base = &p->bs[p->cur_named].b;
	} else {
		s = &p->single[d - sectdefs];
		base = p->c;
	}
	for (i = 0; i < d->nkeys && !k; i++)
		if (strcmp(d->keys[i].name, name) == 0)
			k = &d->keys[i];
	section_label(p, d, p->cur_named, label, sizeof label);
	if (!k) {
		problem(p, p->line, "unknown key '%.64s' in %s", name, label);
		return;
	}
	i = (size_t)(k - d->keys);
	if (s->seen[i]) {
		problem(p, p->line, "duplicate key '%s' in %s (first at line %d)", name, label,
		        s->seen[i]);
		return;
	}
	s->seen[i] = p->line;
	if (*value == '\0') {
		s->bad[i] = 1;
		problem(p, p->line, "%s: empty value", name);
		return;
	}
	if (k->set(k, value, (char *)base + k->off, why, sizeof why) < 0) {
		s->bad[i] = 1;
		problem(p, p->line, "%s: '%.*s' %s", name, CFG_SHOW, value, why);
	}
}

/* The ini_handler: runs for every name = value inih found. Only files the
 * value; always returns 1 so that inih's own errors stay syntax errors. */
static int on_pair(void *user, const char *section, const char *name, const char *value)
{
	struct parser *p = user;

	(void)section;   /* ours, from open_section(), is not truncated */
	p->got_pair = 1;
	if (p->kind == LINE_CONT) {
		problem(p, p->line, "indented line continues the value of '%.64s'; "
		        "multi-line values are not supported, remove the indentation", name);
		return 1;
	}
	p->prev_name = name[0] != '\0';
	if (name[0] == '\0')
		problem(p, p->line, "missing key name before '='");
	else if (p->cur == CUR_NONE)
		problem(p, p->line, "key '%.64s' is outside any section", name);
	else if (p->cur == CUR_SECTION)
		set_key(p, name, value);
	return 1;
}

/* ---- checks over the whole file ---- */

/* Used by the checks: one "[sect] key is required" per missing key. */
static void check_required(struct parser *p, const struct sectdef *d, const struct sect *s,
                           size_t li)
{
	char label[96];

	for (size_t i = 0; i < d->nkeys; i++) {
		if (d->keys[i].required && !s->seen[i])
			problem(p, s->line, "%s %s is required",
			        section_label(p, d, li, label, sizeof label), d->keys[i].name);
	}
}

/* Check: [tls] is there with its keys; each [certificate NAME] has its. */
static void check_tls(struct parser *p)
{
	if (!p->single[SECT_TLS].line)
		problem(p, 0, "missing [tls] section");
	else
		check_required(p, &sectdefs[SECT_TLS], &p->single[SECT_TLS], 0);
	for (size_t i = 0; i < p->ncs; i++)
		check_required(p, &sectdefs[SECT_CERT], &p->cs[i].s, i);
	if (p->single[SECT_METRICS].line)
		check_required(p, &sectdefs[SECT_METRICS], &p->single[SECT_METRICS], 0);
	if (p->single[SECT_HEALTH].line)
		check_required(p, &sectdefs[SECT_HEALTH], &p->single[SECT_HEALTH], 0);
}

/* Used by check_listener_tls(): index of certificate NAME in cfg->certs
 * (0 is [tls]'s, "default"), or -1. */
static long cert_index(const struct parser *p, const char *name, size_t len)
{
	if (len == 7 && memcmp(name, "default", 7) == 0)
		return 0;
	for (size_t i = 0; i < p->ncs; i++)
		if (strlen(p->cs[i].c.name) == len && memcmp(p->cs[i].c.name, name, len) == 0)
			return (long)i + 1;
	return -1;
}

/* Check: a listener's certificates name known sections (default: all of
 * them, [tls]'s first), and a client certificate needs a CA to check it. */
static void check_listener_tls(struct parser *p)
{
	for (size_t i = 0; i < p->nls; i++) {
		struct cfg_listener *l = &p->ls[i].l;
		const char *v = l->certificates, *item;
		size_t len, n = 0, cap = p->ncs + 1;
		int seen = 0;                 /* an item was given */

		l->certificates_line = p->ls[i].s.seen[LK_CERTS];
		l->client_ca_line = p->ls[i].s.seen[LK_CLIENTCA];
		if (l->client_certificate != CFG_CLIENT_NONE && !l->client_ca)
			problem(p, p->ls[i].s.seen[LK_CLIENTCERT],
			        "[listener %s] client_certificate = %s needs client_ca, the CA "
			        "certificates that client certificates must chain to", l->name,
			        client_cert_words[l->client_certificate]);
		l->cert_idx = calloc(cap, sizeof *l->cert_idx);
		if (!l->cert_idx) {
			p->probs.oom = 1;
			return;
		}
		if (!v) {
			for (n = 0; n < cap; n++)
				l->cert_idx[n] = n;
			l->ncerts = n;
			continue;
		}
		while ((item = next_item(&v, &len, 1)) != NULL) {
			long idx = cert_index(p, item, len);
			int dup = 0;
			seen = 1;
			if (idx < 0) {
				problem(p, l->certificates_line, "certificates: no [certificate %.*s] "
				        "section (and 'default' is [tls]'s)", (int)(len > 64 ? 64 : len),
				        item);
				continue;
			}
			for (size_t j = 0; j < n; j++)
				dup |= l->cert_idx[j] == (size_t)idx;
			if (dup)
				problem(p, l->certificates_line, "certificates: '%.*s' is listed twice",
				        (int)len, item);
			else if (n < cap)
				l->cert_idx[n++] = (size_t)idx;
		}
		l->ncerts = n;
		if (!seen && !p->ls[i].s.bad[LK_CERTS])
			problem(p, l->certificates_line, "certificates: includes no certificate");
	}
}

/* Check: at least one listener; each has its keys; idle_timeout gets the
 * default of its protocol. */
static void check_listeners(struct parser *p)
{
	if (p->nls == 0)
		problem(p, 0, "no [listener NAME] section; at least one is required");
	for (size_t i = 0; i < p->nls; i++) {
		struct ldraft *d = &p->ls[i];
		check_required(p, &sectdefs[SECT_LISTENER], &d->s, i);
		if (d->l.tls == CFG_TLS_STARTTLS && d->l.transparent)
			problem(p, d->s.seen[LK_TRANSPARENT], "[listener %s] transparent = yes needs "
			        "tls = implicit: moat must answer STARTTLS itself", d->l.name);
		if (!d->s.seen[LK_IDLE])
			d->l.idle_timeout_ms = idle_default_ms[d->l.protocol];
		if (!d->s.seen[LK_GREETING] && !d->l.greeting) {
			d->l.greeting = strdup(greeting_default[d->l.protocol]);
			if (!d->l.greeting)
				p->probs.oom = 1;
		}
	}
}

/* Used by the checks: the key was set to a value that was taken. */
static int key_ok(const struct ldraft *d, int k)
{
	return d->s.seen[k] && !d->s.bad[k];
}

/* Check: no two listeners bind overlapping addresses. */
static void check_addresses(struct parser *p)
{
	for (size_t j = 1; j < p->nls; j++) {
		const struct ldraft *b = &p->ls[j];
		for (size_t i = 0; i < j && key_ok(b, LK_ADDRESS); i++) {
			const struct ldraft *a = &p->ls[i];
			if (!key_ok(a, LK_ADDRESS) || !addr_overlaps(&a->l.address, &b->l.address))
				continue;
			if (addr_same(&a->l.address, &b->l.address))
				problem(p, b->s.seen[LK_ADDRESS],
				        "address '%s' is already used by [listener %s] (line %d)",
				        b->l.address.text, a->l.name, a->s.seen[LK_ADDRESS]);
			else
				problem(p, b->s.seen[LK_ADDRESS],
				        "address '%s' overlaps '%s' of [listener %s] (line %d)",
				        b->l.address.text, a->l.address.text, a->l.name,
				        a->s.seen[LK_ADDRESS]);
			break;
		}
	}
}

/* Check: each [backend NAME] has an address, a plausible add_domain,
 * and is on this host or marked insecure. */
static void check_backends(struct parser *p)
{
	for (size_t i = 0; i < p->nnamed_bs; i++) {
		struct bdraft *d = &p->bs[i];
		struct cfg_backend *b = &d->b;
		if (!d->s.seen[BK_IMAP] && !d->s.seen[BK_POP3])
			problem(p, d->s.line, "[backend %s] needs an address: imap = HOST:PORT "
			        "and/or pop3 = HOST:PORT", b->name);
		if (b->add_domain && strpbrk(b->add_domain, "@ \t\"()<>,;:"))
			problem(p, d->s.seen[BK_ADD], "add_domain: '%.*s' is not a domain name",
			        CFG_SHOW, b->add_domain);
		b->tls_line = d->s.seen[BK_TLS] ? d->s.seen[BK_TLS] : d->s.line;
		if (b->tls != CFG_BTLS_NONE && !b->tls_name)
			problem(p, b->tls_line, "[backend %s] tls = %s needs tls_name, the name the "
			        "backend's certificate must carry", b->name, btls_words[b->tls]);
		if (b->tls == CFG_BTLS_NONE && (b->tls_name || b->ca))
			problem(p, d->s.seen[b->ca ? BK_CA : BK_TLS_NAME], "[backend %s] %s is only "
			        "used with tls = implicit or starttls", b->name, b->ca ? "ca" : "tls_name");
		if (b->tls != CFG_BTLS_NONE && !b->ca) {
			b->ca = strdup("/etc/ssl/certs/ca-certificates.crt");
			if (!b->ca)
				p->probs.oom = 1;
		}
		for (int pr = 0; pr < 2; pr++) {
			int k = pr == CFG_PROTO_IMAP ? BK_IMAP : BK_POP3;
			b->addr_line[pr] = d->s.seen[k];
			if (d->s.seen[k] && !d->s.bad[k] && !b->insecure && b->tls == CFG_BTLS_NONE &&
			    !cfg_addr_is_loopback(&b->addr[pr]))
				problem(p, d->s.seen[k], "[backend %s] %s = %s is not on this host: "
				        "moat would send passwords to it in clear; use tls = implicit or "
				        "starttls, or set insecure = yes if that network is trusted", b->name, backend_keys[k].name,
				        b->addr[pr].text);
		}
	}
}

/* Index of [backend NAME] in p->bs, or -1. */
static long backend_index(const struct parser *p, const char *name, size_t len)
{
	for (size_t i = 0; i < p->nnamed_bs; i++)
		if (strlen(p->bs[i].b.name) == len && memcmp(p->bs[i].b.name, name, len) == 0)
			return (long)i;
	return -1;
}

/* Used by check_listener_backends(): backend = HOST:PORT becomes a
 * backend of its own, named by the address, without health checks. */
static void inline_backend(struct parser *p, struct ldraft *d, int line)
{
	struct cfg_listener *l = &d->l;
	struct bdraft *b;
	struct cfg_addr a;
	const char *why = NULL;

	if (cfg_parse_addr(l->backend_text, &a, &why) < 0 || addr_is_any(&a)) {
		if (why)
			problem(p, line, "backend: '%.*s' is not a valid address: %s", CFG_SHOW,
			        l->backend_text, why);
		else
			problem(p, line, "backend: '%.*s' is a wildcard; a backend needs a specific "
			        "address", CFG_SHOW, l->backend_text);
		return;
	}
	if (!l->insecure && !cfg_addr_is_loopback(&a))
		problem(p, line, "backend: %s is not on this host: moat would send passwords to it "
		        "in clear; set insecure = yes in [listener %s] if that network is trusted",
		        a.text, l->name);
	b = add_backend(p, a.text, strlen(a.text), line);
	if (!b)
		return;
	b->b.is_inline = 1;
	b->b.check_interval_ms = 0;
	b->b.insecure = l->insecure;
	b->b.addr[l->protocol] = a;
	b->b.addr_line[l->protocol] = line;
	l->bk[0] = p->nbs - 1;
	l->nbk = 1;
}

/* Check: each listener's backend = is an address or a list of [backend]
 * names that have an address for its protocol. */
static void check_listener_backends(struct parser *p)
{
	for (size_t i = 0; i < p->nls; i++) {
		struct ldraft *d = &p->ls[i];
		struct cfg_listener *l = &d->l;
		int line = d->s.seen[LK_BACKEND];
		const char *v = l->backend_text, *item;
		size_t len;

		if (!key_ok(d, LK_BACKEND))
			continue;
		l->bk = calloc(p->nnamed_bs + 1, sizeof *l->bk);
		if (!l->bk) {
			p->probs.oom = 1;
			return;
		}
		if (strchr(v, ':')) {
			inline_backend(p, d, line);
			continue;
		}
		while ((item = next_item(&v, &len, 0)) != NULL) {
			long bi = backend_index(p, item, len);
			int dup = 0;
			if (bi < 0) {
				problem(p, line, "backend: no [backend %.*s] section (an address needs "
				        "its port, HOST:PORT)", (int)(len > 64 ? 64 : len), item);
				continue;
			}
			for (size_t j = 0; j < l->nbk; j++)
				dup |= l->bk[j] == (size_t)bi;
			if (dup) {
				problem(p, line, "backend: '%.*s' is listed twice", (int)len, item);
				continue;
			}
			if (l->nbk == CFG_MAX_LISTENER_BACKENDS) {
				problem(p, line, "backend: more than %d backends",
				        CFG_MAX_LISTENER_BACKENDS);
				break;
			}
			if (!p->bs[bi].b.addr[l->protocol].sa.ss_family && !p->bs[bi].s.bad[
			    l->protocol == CFG_PROTO_IMAP ? BK_IMAP : BK_POP3]) {
				problem(p, line, "backend: [backend %s] (line %d) has no %s address for "
				        "[listener %s]", p->bs[bi].b.name, p->bs[bi].b.line,
				        cfg_proto_name(l->protocol), l->name);
				continue;
			}
			if (l->transparent && p->bs[bi].b.tls == CFG_BTLS_STARTTLS)
				problem(p, line, "backend: [backend %s] uses tls = starttls, which a "
				        "transparent listener cannot do (moat does not speak the "
				        "protocol there)", p->bs[bi].b.name);
			l->bk[l->nbk++] = (size_t)bi;
		}
		if (l->nbk == 0 && !strpbrk(l->backend_text, ":"))
			problem(p, line, "backend: names no usable backend");
	}
}

/* Check: no backend is one of moat's own listening addresses. */
static void check_loops(struct parser *p)
{
	for (size_t j = 0; j < p->nls; j++) {
		struct ldraft *b = &p->ls[j];
		for (size_t k = 0; k < b->l.nbk; k++) {
			const struct cfg_backend *be = &p->bs[b->l.bk[k]].b;
			const struct cfg_addr *ba = &be->addr[b->l.protocol];
			if (k == 0)
				b->l.backend = *ba;
			for (size_t i = 0; i < p->nls; i++) {
				const struct ldraft *a = &p->ls[i];
				if (!key_ok(a, LK_ADDRESS) || !addr_same(&a->l.address, ba))
					continue;
				problem(p, be->is_inline ? b->s.seen[LK_BACKEND]
				                         : be->addr_line[b->l.protocol],
				        "backend '%s' is the address of [listener %s]; moat would "
				        "connect to itself", ba->text, a->l.name);
				break;
			}
		}
	}
}

/* Check: workers = 0 becomes the number of online CPUs (1..256). */
static void resolve_workers(struct parser *p)
{
	long n;

	if (p->c->workers)
		return;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > CFG_MAX_WORKERS)
		n = CFG_MAX_WORKERS;
	p->c->workers = (unsigned)n;
}

static void (*const checks[])(struct parser *) = {
	check_tls, check_listeners, check_listener_tls, check_addresses, check_backends,
	check_listener_backends, check_loops, resolve_workers,
};

/* ---- parse, load, free ---- */

/* Runs on success: the listeners move from the drafts into the cfg. */
static int move_listeners(struct parser *p)
{
	struct cfg *c = p->c;

	c->listeners = calloc(p->nls, sizeof *c->listeners);
	if (!c->listeners)
		return -1;
	for (size_t i = 0; i < p->nls; i++) {
		c->listeners[i] = p->ls[i].l;
		memset(&p->ls[i].l, 0, sizeof p->ls[i].l);
	}
	c->nlisteners = p->nls;
	return 0;
}

/* Runs on success: [tls]'s certificate and the [certificate NAME]s move
 * into cfg->certs, [tls]'s first. */
static int move_certs(struct parser *p)
{
	struct cfg *c = p->c;
	struct cfg_cert *d;

	c->certs = calloc(p->ncs + 1, sizeof *c->certs);
	if (!c->certs)
		return -1;
	d = &c->certs[0];
	d->name = strdup("default");
	d->certificate = strdup(c->certificate);
	d->key = strdup(c->key);
	d->line = c->tls_line;
	d->certificate_line = c->certificate_line;
	d->key_line = c->key_line;
	c->ncerts = 1;
	if (!d->name || !d->certificate || !d->key)
		return -1;
	for (size_t i = 0; i < p->ncs; i++) {
		c->certs[c->ncerts] = p->cs[i].c;
		c->certs[c->ncerts].certificate_line = p->cs[i].s.seen[TK_CERT];
		c->certs[c->ncerts].key_line = p->cs[i].s.seen[TK_KEY];
		c->ncerts++;
		memset(&p->cs[i].c, 0, sizeof p->cs[i].c);
	}
	return 0;
}

/* Runs on success: the backends move from the drafts into the cfg. */
static int move_backends(struct parser *p)
{
	struct cfg *c = p->c;

	if (p->nbs == 0)
		return 0;
	c->backends = calloc(p->nbs, sizeof *c->backends);
	if (!c->backends)
		return -1;
	for (size_t i = 0; i < p->nbs; i++) {
		c->backends[i] = p->bs[i].b;
		memset(&p->bs[i].b, 0, sizeof p->bs[i].b);
	}
	c->nbackends = p->nbs;
	return 0;
}

/* Frees what a backend owns (its struct stays). */
static void backend_free(struct cfg_backend *b)
{
	free(b->name);
	free(b->add_domain);
	free(b->ca);
	free(b->tls_name);
}

/* Frees what a listener owns (its struct stays). */
static void listener_free(struct cfg_listener *l)
{
	free(l->name);
	free(l->backend_text);
	free(l->bk);
	free(l->greeting);
	free(l->capabilities);
	free(l->certificates);
	free(l->cert_idx);
	free(l->client_ca);
}

/* Frees what a certificate entry owns (its struct stays). */
static void cert_free(struct cfg_cert *c)
{
	free(c->name);
	free(c->certificate);
	free(c->key);
}

/* Runs at the end of every parse: frees what the parser still owns. */
static void parser_free(struct parser *p)
{
	for (size_t i = 0; i < p->nls; i++)
		listener_free(&p->ls[i].l);
	free(p->ls);
	for (size_t i = 0; i < p->ncs; i++)
		cert_free(&p->cs[i].c);
	free(p->cs);
	for (size_t i = 0; i < p->nbs; i++)
		backend_free(&p->bs[i].b);
	free(p->bs);
	problems_free(&p->probs);
	cfg_free(p->c);
}

/* Used by cfg_new(): copies a 0-terminated id list, its 0 included. */
static void copy_ids(uint16_t *dst, const uint16_t *src)
{
	size_t i = 0;

	do
		dst[i] = src[i];
	while (src[i++]);
}

/* Runs before parsing: a cfg holding every default. */
static struct cfg *cfg_new(const char *file)
{
	struct cfg *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->path = strdup(file);
	if (!c->path) {
		free(c);
		return NULL;
	}
	c->workers = 0;
	c->log_level = CFG_LOG_INFO;
	c->buffer_size = 64 * 1024;
	c->max_pending = 256 * 1024;
	copy_ids(c->tls12_ciphers, tls_default_tls12_suites);
	copy_ids(c->tls13_ciphers, tls_default_tls13_suites);
	copy_ids(c->groups, tls_default_groups);
	c->prefer_server_ciphers = 1;
	c->session_tickets = 1;
	c->ticket_lifetime_ms = 2 * 3600 * 1000;
	c->key_permissions = CFG_KEYPERM_AUTO;
	c->expiry_warning_days = 30;
	c->max_connections = 10000;
	c->max_connections_per_ip = 100;
	c->connection_rate_per_ip = (struct cfg_rate){ 100, 10 * 1000 };
	c->auth_fail_limit = (struct cfg_rate){ 20, 10 * 60 * 1000 };
	c->auth_block_ms = 10 * 60 * 1000;
	c->ipv6_prefix = 64;
	/* loopback: a webmail or a health check on this host */
	parse_net("127.0.0.0/8", 11, &c->limits_exempt.v[0]);
	parse_net("::1", 3, &c->limits_exempt.v[1]);
	c->limits_exempt.n = 2;
	c->shutdown_grace_ms = 30 * 1000;
	return c;
}

/* Both entry points end here with the whole text in buf[0..len). */
static int parse_buffer(const char *buf, size_t len, const char *file, struct cfg **out,
                        char **errors)
{
	struct parser p;
	int rc;

	memset(&p, 0, sizeof p);
	p.file = file;
	p.buf = buf;
	p.len = len;
	p.c = cfg_new(file);
	if (!p.c) {
		*errors = single_error("%s: out of memory\n", file);
		return -1;
	}
	rc = ini_parse_stream(line_reader, &p, on_pair, &p);
	finish_line(&p);
	if (rc > 0 && rc != p.first_syntax)
		syntax_error(&p, rc);
	else if (rc < 0)
		problem(&p, 0, "inih failed (%d)", rc);
	for (size_t i = 0; i < sizeof checks / sizeof *checks; i++)
		checks[i](&p);
	p.c->certificate_line = p.single[SECT_TLS].seen[TK_CERT];
	p.c->key_line = p.single[SECT_TLS].seen[TK_KEY];
	p.c->tls_line = p.single[SECT_TLS].line;
	p.c->ticket_key_file_line = p.single[SECT_TLS].seen[TK_TICKET_FILE];
	if (p.c->ticket_key_file && !p.c->session_tickets)
		problem(&p, p.c->ticket_key_file_line, "ticket_key_file needs session_tickets = yes");
	p.c->route_map_line = p.single[SECT_MOAT].seen[MK_ROUTE_MAP];
	if (p.probs.n == 0 && !p.probs.oom && (move_listeners(&p) < 0 || move_certs(&p) < 0 ||
	                                       move_backends(&p) < 0))
		p.probs.oom = 1;
	if (p.probs.n || p.probs.oom) {
		*errors = problems_join(&p);
		parser_free(&p);
		return -1;
	}
	*out = p.c;
	p.c = NULL;
	parser_free(&p);
	return 0;
}

int cfg_parse_string(const char *text, const char *name, struct cfg **out, char **errors)
{
	if (!out || !errors)
		return -1;
	*out = NULL;
	*errors = NULL;
	if (!name)
		name = "(string)";
	if (!text) {
		*errors = single_error("%s: no configuration text\n", name);
		return -1;
	}
	return parse_buffer(text, strlen(text), name, out, errors);
}

/* Runs from cfg_load(): the file's bytes, at most CFG_MAX_FILE. Returns 0,
 * or -1 with *errors set. */
static int read_file(const char *path, char **buf, size_t *len, char **errors)
{
	char ebuf[128];
	size_t cap = 4096, n = 0;
	char *b = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		*errors = single_error("%s: cannot open: %s\n", path,
		                       strerror_r(errno, ebuf, sizeof ebuf));
		return -1;
	}
	for (;;) {
		ssize_t r;
		if (!b || n == cap) {
			char *nb;
			cap = b ? cap * 2 : cap;
			nb = realloc(b, cap);
			if (!nb) {
				*errors = single_error("%s: out of memory\n", path);
				goto fail;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*errors = single_error("%s: cannot read: %s\n", path,
			                       strerror_r(errno, ebuf, sizeof ebuf));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > CFG_MAX_FILE) {
			*errors = single_error("%s: file too large (max %d bytes)\n", path,
			                       CFG_MAX_FILE);
			goto fail;
		}
	}
	close(fd);
	*buf = b;
	*len = n;
	return 0;
fail:
	close(fd);
	free(b);
	return -1;
}

int cfg_load(const char *path, struct cfg **out, char **errors)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	if (!out || !errors)
		return -1;
	*out = NULL;
	*errors = NULL;
	if (!path) {
		*errors = single_error("(null): no configuration file given\n");
		return -1;
	}
	if (read_file(path, &buf, &len, errors) < 0)
		return -1;
	rc = parse_buffer(buf, len, path, out, errors);
	free(buf);
	return rc;
}

void cfg_free(struct cfg *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nlisteners; i++)
		listener_free(&c->listeners[i]);
	free(c->listeners);
	for (size_t i = 0; i < c->ncerts; i++)
		cert_free(&c->certs[i]);
	free(c->certs);
	for (size_t i = 0; i < c->nbackends; i++)
		backend_free(&c->backends[i]);
	free(c->backends);
	free(c->route_map);
	free(c->ticket_key_file);
	free(c->certificate);
	free(c->key);
	free(c->user);
	free(c->group);
	free(c->chroot_dir);
	free(c->pid_file);
	free(c->path);
	free(c);
}

const char *cfg_proto_name(enum cfg_proto p)
{
	static const char *const names[] = { [CFG_PROTO_IMAP] = "imap", [CFG_PROTO_POP3] = "pop3" };

	if ((unsigned)p >= sizeof names / sizeof *names)
		return "?";
	return names[p];
}
