/*
 * pop3_parse: splits a POP3 client's byte stream into command lines
 * (RFC 1939, RFC 2449 section 4), incrementally and bounded. Pure.
 *
 *   pop3_feed(p, buf, len, &used) ->
 *     POP3_NEED_MORE  all of buf consumed, no complete line yet
 *     POP3_LINE       a line: p->name is its keyword upper-cased (3 or 4
 *                     letters), p->arg the rest after one space (may be
 *                     "" and may contain spaces: PASS takes it whole),
 *                     p->line the whole line; buf + used starts the next
 *     POP3_BAD        a line that cannot be a command (empty, too long,
 *                     a NUL, a bare CR, a keyword that is not 3-4
 *                     letters), consumed up to and including its LF;
 *                     p->error says why
 *
 * In line mode (pop3_expect_line: a SASL response after "+ "), the next
 * line is returned whole as POP3_LINE with name "" and arg = line.
 *
 * Limits: a line (without CRLF) of at most max_line bytes; longer input
 * is skipped to its LF without being stored. A bare LF ends a line. Text
 * stays valid until the next pop3_feed/pop3_reset; pop3_wipe zeroes it.
 */
#ifndef MOAT_POP3_PARSE_H
#define MOAT_POP3_PARSE_H

#include <stddef.h>
#include <stdint.h>

enum pop3_rc { POP3_NEED_MORE = 0, POP3_LINE, POP3_BAD };

struct pop3_parser {
	uint32_t max_line;
	char name[5];
	const char *arg;              /* NUL-terminated, inside buf */
	size_t arg_len;
	const char *line;             /* the whole line, NUL-terminated */
	size_t line_len;
	const char *error;            /* static text for POP3_BAD */
	uint8_t *buf;                 /* max_line + 1 bytes */
	uint32_t len;
	unsigned skipping : 1;        /* a bad line: drop bytes until LF */
	unsigned line_mode : 1;
	unsigned done : 1;            /* last call returned a result */
	unsigned saw_cr : 1;
};

int pop3_init(struct pop3_parser *p, uint32_t max_line) __attribute__((warn_unused_result));
void pop3_free(struct pop3_parser *p);
enum pop3_rc pop3_feed(struct pop3_parser *p, const uint8_t *buf, size_t len, size_t *used)
	__attribute__((warn_unused_result));
void pop3_expect_line(struct pop3_parser *p);
/* Forgets a partial line (after STLS) and wipes stored bytes. */
void pop3_reset(struct pop3_parser *p);
/* Zeroes the stored line (it held a password). */
void pop3_wipe(struct pop3_parser *p);

#endif /* MOAT_POP3_PARSE_H */
