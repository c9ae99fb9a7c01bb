/* log: see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
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

/* Runs for a JSON value byte: escapes what JSON needs escaped. */
static size_t json_byte(char *out, size_t o, size_t size, unsigned char c)
{
	if (o + 7 >= size)
		return o;
	if (c == '"' || c == '\\') {
		out[o++] = '\\';
		out[o++] = (char)c;
	} else if (c < 0x20 || c == 0x7f) {
		o += (size_t)snprintf(out + o, size - o, "\\u%04x", c);
	} else {
		out[o++] = (char)c;
	}
	return o;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;

	if (p[0] >= 0xf5 || len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* Appends the value v[0..n) as a JSON string; bytes that are not UTF-8
 * become U+FFFD. */
static size_t json_string(char *out, size_t o, size_t size, const unsigned char *v, size_t n)
{
	if (o + 2 >= size)
		return o;
	out[o++] = '"';
	for (size_t i = 0; i < n && o + 8 < size;) {
		size_t u = v[i] >= 0x80 ? utf8_len(v + i, n - i) : 1;
		if (u == 0) {
			o += (size_t)snprintf(out + o, size - o, "\\ufffd");
			i++;
		} else if (u == 1) {
			o = json_byte(out, o, size, v[i++]);
		} else {
			memcpy(out + o, v + i, u);
			o += u;
			i += u;
		}
	}
	out[o++] = '"';
	return o;
}

/* Undoes log_quote()'s escapes of a quoted value q[0..n) (without its
 * quotes) into buf; returns the length. */
static size_t unquote(const char *q, size_t n, unsigned char *buf, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o < size; i++) {
		unsigned v;
		if (q[i] == '\\' && i + 1 < n && q[i + 1] == 'x' && i + 3 < n &&
		    sscanf(q + i + 2, "%2x", &v) == 1) {
			buf[o++] = (unsigned char)v;
			i += 3;
		} else if (q[i] == '\\' && i + 1 < n) {
			buf[o++] = (unsigned char)q[++i];
		} else {
			buf[o++] = (unsigned char)q[i];
		}
	}
	return o;
}

size_t log_kv_to_json(const char *kv, char *out, size_t size)
{
	const char *p = kv;
	size_t o = 0;
	int first = 1;

	if (size < 3)
		return 0;
	out[o++] = '{';
	while (*p && o + 16 < size) {
		const char *key, *eq, *val, *end;
		size_t klen;
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		key = p;
		eq = p;
		while (*eq && *eq != '=' && *eq != ' ')
			eq++;
		if (*eq != '=') {              /* not key=value: the rest is "text" */
			o += (size_t)snprintf(out + o, size - o, "%s\"text\":", first ? "" : ",");
			o = json_string(out, o, size, (const unsigned char *)p, strlen(p));
			break;
		}
		klen = (size_t)(eq - key);
		val = eq + 1;
		if (*val == '"') {
			unsigned char raw[2048];
			size_t n;
			end = val + 1;
			while (*end && *end != '"')
				end += end[0] == '\\' && end[1] ? 2 : 1;
			n = unquote(val + 1, (size_t)(end - val - 1), raw, sizeof raw);
			o += (size_t)snprintf(out + o, size - o, "%s\"%.*s\":", first ? "" : ",",
			                      (int)klen, key);
			o = json_string(out, o, size, raw, n);
			p = *end ? end + 1 : end;
		} else {
			size_t vlen;
			int number = 1;
			end = val;
			while (*end && *end != ' ')
				end++;
			vlen = (size_t)(end - val);
			for (size_t i = 0; i < vlen; i++)
				number &= val[i] >= '0' && val[i] <= '9';
			number &= vlen > 0 && vlen < 19 && (val[0] != '0' || vlen == 1);
			o += (size_t)snprintf(out + o, size - o, "%s\"%.*s\":", first ? "" : ",",
			                      (int)klen, key);
			if (vlen == 1 && val[0] == '-')
				o += (size_t)snprintf(out + o, size - o, "null");
			else if (number)
				o += (size_t)snprintf(out + o, size - o, "%.*s", (int)vlen, val);
			else
				o = json_string(out, o, size, (const unsigned char *)val, vlen);
			p = end;
		}
		if (o >= size - 2)
			o = size - 2;
		first = 0;
	}
	out[o++] = '}';
	out[o] = '\0';
	return o;
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
