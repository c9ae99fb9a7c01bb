/*
 * log: one line per event on stderr, "key=value" pairs after a timestamp
 * and level, written with a single write(2) so lines from worker threads
 * never interleave; or the same as one JSON object per line; or either
 * to syslog (without the timestamp, which syslog adds).
 *
 *   2026-11-25T13:50:51.123Z level=info event=session_end listener=imaps ...
 *   {"time":"2026-11-25T13:50:51.123Z","level":"info","event":"session_end",...}
 *
 * Values that may contain spaces are quoted by the caller with log_quote().
 * Nothing here ever receives a password or SASL data: callers log user
 * names at most.
 */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <stddef.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Sets the most verbose level that is written; safe from any thread. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
int log_enabled(enum log_level level);

/* Formats and writes one line; fmt holds the key=value pairs after the
 * level, without a trailing newline. */
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* What and where: the level, the format (key=value lines, or one JSON
 * object per line) and the target (stderr, or syslog with a facility, an
 * enum cfg_facility value: mail, daemon, user, local0..7). */
struct log_settings {
	enum log_level level;
	int json;
	int to_syslog;
	int facility;
};

/* Applies settings; from the main thread (startup, reload). */
void log_apply(const struct log_settings *s);
void log_current(struct log_settings *s);

/* One "key=value key2=\"quoted\"" line as a JSON object into out:
 * quoted values unescaped and re-escaped, bare digits as numbers, "-" as
 * null, anything that is not key=value under "text"; bytes that are not
 * UTF-8 become U+FFFD. Returns the length (truncated to fit size). */
size_t log_kv_to_json(const char *kv, char *out, size_t size);

/* Copies s into buf as a double-quoted value with '"', '\\' and control
 * bytes escaped; truncates to fit. Returns buf. */
const char *log_quote(char *buf, size_t size, const char *s);

#endif /* MOAT_LOG_H */
