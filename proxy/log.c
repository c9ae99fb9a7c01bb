/* log: see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static atomic_int max_level = LOG_LVL_INFO;     /* set at startup and on reload */
static atomic_int log_json;                      /* log_format = json */
static atomic_int log_syslog;                    /* log_target = syslog */
static int syslog_open, syslog_facility;         /* main thread only */

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&max_level, (int)level, memory_order_relaxed);
}

enum log_level log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&max_level, memory_order_relaxed);
}

int log_enabled(enum log_level level)
{
	return (int)level <= atomic_load_explicit(&max_level, memory_order_relaxed);
}

/* Writes the whole line, retrying on short writes and EINTR. */
static void write_all(const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(STDERR_FILENO, p, n);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Output that cannot run past its end: appends fail (and set full) when
 * they would, so the caller can drop the pair it was writing. */
struct jbuf {
	char *out;
	size_t len, cap;              /* cap leaves room for "}" and the NUL */
	int full;
};

static void jput(struct jbuf *b, const char *p, size_t n)
{
	if (b->full || n > b->cap - b->len) {
		b->full = 1;
		return;
	}
	memcpy(b->out + b->len, p, n);
	b->len += n;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes): no overlong
 * forms, no surrogates, nothing above U+10FFFF; 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;                /* overlong */
	else if (p[0] == 0xed)
		hi = 0x9f;                /* surrogates */
	else if (p[0] == 0xf0)
		lo = 0x90;                /* overlong */
	else if (p[0] == 0xf4)
		hi = 0x8f;                /* above U+10FFFF */
	if (len > n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* Appends v[0..n) as a JSON string: quotes, escapes, and U+FFFD for each
 * byte that is not part of valid UTF-8. With cut, a string that does not
 * fit is shortened (at a character) and closed instead of failing. */
static void json_string(struct jbuf *b, const unsigned char *v, size_t n, int cut)
{
	size_t cap = b->cap;
	char e[8];

	jput(b, "\"", 1);
	if (cut && !b->full && b->cap > b->len)
		b->cap--;                     /* the closing quote always fits */
	for (size_t i = 0; i < n && !b->full;) {
		size_t u = v[i] >= 0x80 ? utf8_len(v + i, n - i) : 1;
		if (u == 0) {
			jput(b, "\\ufffd", 6);
			i++;
		} else if (u > 1) {
			jput(b, (const char *)v + i, u);
			i += u;
		} else if (v[i] == '"' || v[i] == '\\') {
			e[0] = '\\';
			e[1] = (char)v[i++];
			jput(b, e, 2);
		} else if (v[i] < 0x20 || v[i] == 0x7f) {
			snprintf(e, sizeof e, "\\u%04x", v[i++]);
			jput(b, e, 6);
		} else {
			jput(b, (const char *)v + i++, 1);
		}
	}
	if (cut && b->cap < cap) {
		b->full = 0;                  /* what fitted stays; the rest is cut */
		b->cap = cap;
	}
	jput(b, "\"", 1);
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	     : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Undoes log_quote()'s escapes of a quoted value q[0..n) (without its
 * quotes) into buf (n bytes at least); returns the length. \xNN is a
 * byte; a backslash before anything else keeps that character. */
static size_t unquote(const char *q, size_t n, unsigned char *buf)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (q[i] == '\\' && i + 3 < n && q[i + 1] == 'x' && hexval(q[i + 2]) >= 0 &&
		    hexval(q[i + 3]) >= 0) {
			buf[o++] = (unsigned char)(hexval(q[i + 2]) * 16 + hexval(q[i + 3]));
			i += 3;
		} else if (q[i] == '\\' && i + 1 < n) {
			buf[o++] = (unsigned char)q[++i];
		} else {
			buf[o++] = (unsigned char)q[i];
		}
	}
	return o;
}

/* Appends one value: a quoted one unescaped, "-" as null, plain digits
 * as a number, anything else as a string. */
static void json_value(struct jbuf *b, const char *val, size_t vlen, int quoted)
{
	unsigned char small[256], *raw;
	int number = vlen > 0 && vlen < 19 && (val[0] != '0' || vlen == 1);

	if (quoted) {
		raw = vlen <= sizeof small ? small : malloc(vlen);
		if (!raw) {
			b->full = 1;
			return;
		}
		json_string(b, raw, unquote(val, vlen, raw), 1);
		if (raw != small)
			free(raw);
		return;
	}
	for (size_t i = 0; i < vlen; i++)
		number &= val[i] >= '0' && val[i] <= '9';
	if (vlen == 1 && val[0] == '-')
		jput(b, "null", 4);
	else if (number)
		jput(b, val, vlen);
	else
		json_string(b, (const unsigned char *)val, vlen, 1);
}

size_t log_kv_to_json(const char *kv, char *out, size_t size)
{
	struct jbuf b = { out, 1, size > 2 ? size - 2 : 0, 0 };
	const char *p = kv;

	if (size < 3) {
		if (size)
			out[0] = '\0';
		return 0;
	}
	out[0] = '{';
	while (*p) {
		const char *key, *eq, *val, *end;
		size_t mark = b.len;
		int quoted;

		while (*p == ' ')
			p++;
		if (!*p)
			break;
		if (b.len > 1)
			jput(&b, ",", 1);
		key = p;
		for (eq = p; *eq && *eq != '=' && *eq != ' '; eq++)
			;
		if (*eq != '=') {              /* not key=value: the rest is "text" */
			jput(&b, "\"text\":", 7);
			json_string(&b, (const unsigned char *)p, strlen(p), 1);
			if (b.full)
				b.len = mark;
			break;
		}
		json_string(&b, (const unsigned char *)key, (size_t)(eq - key), 0);
		jput(&b, ":", 1);
		val = eq + 1;
		quoted = *val == '"';
		if (quoted) {
			for (end = ++val; *end && *end != '"'; end += end[0] == '\\' && end[1] ? 2 : 1)
				;
			p = *end ? end + 1 : end;
		} else {
			for (end = val; *end && *end != ' '; end++)
				;
			p = end;
		}
		json_value(&b, val, (size_t)(end - val), quoted);
		if (b.full) {                  /* this pair does not fit: stop before it */
			b.len = mark;
			break;
		}
	}
	out[b.len++] = '}';
	out[b.len] = '\0';
	return b.len;
}

void log_apply(const struct log_settings *s)
{
	static const int facilities[] = { LOG_MAIL, LOG_DAEMON, LOG_USER, LOG_LOCAL0, LOG_LOCAL1,
	                                  LOG_LOCAL2, LOG_LOCAL3, LOG_LOCAL4, LOG_LOCAL5,
	                                  LOG_LOCAL6, LOG_LOCAL7 };
	int fac = s->facility >= 0 && (size_t)s->facility < sizeof facilities / sizeof *facilities
	          ? facilities[s->facility] : LOG_MAIL;

	log_set_level(s->level);
	atomic_store(&log_json, s->json);
	if (s->to_syslog && (!syslog_open || syslog_facility != s->facility)) {
		/* reopened only when the facility changes; LOG_NDELAY connects
		 * now, so it survives a chroot */
		openlog("moat", LOG_PID | LOG_NDELAY, fac);
		syslog_open = 1;
		syslog_facility = s->facility;
	}
	atomic_store(&log_syslog, s->to_syslog);
}

void log_current(struct log_settings *s)
{
	s->level = log_get_level();
	s->json = atomic_load(&log_json);
	s->to_syslog = atomic_load(&log_syslog);
	s->facility = syslog_facility;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const int priority[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char body[2048], line[4096];
	struct timespec ts;
	struct tm tm;
	char stamp[40];
	size_t n;
	va_list ap;
	int r, json = atomic_load(&log_json), sys = atomic_load(&log_syslog);

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	r = vsnprintf(body, sizeof body, fmt, ap);
	va_end(ap);
	if (r < 0)
		body[0] = '\0';
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);
	if (json) {
		char kv[2200];
		if (sys)   /* syslog stamps lines itself */
			snprintf(kv, sizeof kv, "level=%s %s", level_names[level], body);
		else
			snprintf(kv, sizeof kv, "time=%s level=%s %s", stamp, level_names[level], body);
		n = log_kv_to_json(kv, line, sizeof line - 1);
	} else {
		r = snprintf(line, sizeof line - 1, "%s%slevel=%s %s", sys ? "" : stamp,
		             sys ? "" : " ", level_names[level], body);
		n = r < 0 ? 0 : (size_t)r;
		if (n > sizeof line - 2)
			n = sizeof line - 2;   /* truncated: keep the newline */
	}
	if (sys) {
		line[n] = '\0';
		syslog(priority[level], "%s", line);
		return;
	}
	line[n++] = '\n';
	write_all(line, n);
}

const char *log_quote(char *buf, size_t size, const char *s)
{
	size_t o = 0;

	if (size < 3) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (; s && *s && o + 5 < size; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
		} else {
			buf[o++] = (char)c;
		}
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}
