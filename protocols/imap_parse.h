/*
 * imap_parse: an incremental, bounded parser for IMAP commands before
 * authentication (RFC 9051 section 9 grammar, the subset moat answers).
 *
 * Pure function over bytes: no I/O, no libuv. Feed whatever arrived; the
 * parser keeps its state between calls, so a command split at any byte
 * resumes exactly.
 *
 *   imap_feed(p, buf, len, &used) ->
 *     IMAP_NEED_MORE          all of buf consumed, no complete command yet
 *     IMAP_COMMAND            p->tag, p->name, p->args describe a command;
 *                             the next command starts at buf + used
 *     IMAP_SEND_CONTINUATION  a synchronizing literal {n} fits: answer
 *                             "+ Ready" and keep feeding buf + used
 *     IMAP_BAD                a malformed or oversized command, consumed
 *                             up to and including its line end; p->error
 *                             says why, p->tag holds its tag if it had a
 *                             valid one ("" otherwise)
 *     IMAP_FATAL              the stream cannot be resynchronised (a
 *                             non-synchronizing literal over the cap, or
 *                             one announced on a rejected line): close
 *
 * Limits: tag 32 characters of ASTRING-CHAR except '+', command name 20,
 * at most 3 arguments (a parenthesized list counts as one and its content
 * is checked but not kept), the whole command (tag, name, spaces, literal
 * headers and data, line end) within max_cmd, each literal within
 * max_literal, literal digits checked for overflow before multiplying
 * ("{}" and "{+}" are malformed). NUL is refused, a bare
 * CR is refused, a bare LF is accepted as a line end.
 *
 * Quoted strings are unescaped (only \" and \\ are valid escapes);
 * literals are kept byte for byte. Argument data is NUL-terminated in the
 * parser's buffer, which stays valid until the next imap_feed or
 * imap_reset. Callers wipe it with imap_wipe() after credentials.
 */
#ifndef MOAT_IMAP_PARSE_H
#define MOAT_IMAP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define IMAP_TAG_MAX  32
#define IMAP_NAME_MAX 20
#define IMAP_ARGS_MAX 3

enum imap_rc {
	IMAP_NEED_MORE = 0,
	IMAP_COMMAND,
	IMAP_SEND_CONTINUATION,
	IMAP_BAD,
	IMAP_FATAL,
};

enum imap_arg_type {
	IMAP_ARG_ATOM = 0,            /* includes NIL: compare the text */
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL,
	IMAP_ARG_LIST,                /* "( ... )": content not kept */
	IMAP_ARG_LINE,                /* a whole line, in line mode */
};

struct imap_arg {
	enum imap_arg_type type;
	const char *data;             /* NUL-terminated, inside the parser */
	size_t len;                   /* without the NUL */
};

struct imap_parser {
	/* limits, set by imap_init */
	uint32_t max_cmd;
	uint32_t max_literal;
	/* the last result */
	char tag[IMAP_TAG_MAX + 1];
	char name[IMAP_NAME_MAX + 1]; /* upper-cased */
	struct imap_arg args[IMAP_ARGS_MAX];
	unsigned nargs;
	const char *error;            /* static text for IMAP_BAD / IMAP_FATAL */
	/* state */
	uint8_t *data;                /* max_cmd bytes of argument storage */
	uint32_t used;                /* bytes of data in use */
	uint32_t line_len;            /* bytes of this command so far */
	uint32_t arg_start;           /* where the current argument begins */
	uint64_t lit_len;             /* literal length being read / left */
	unsigned state;
	unsigned depth;               /* parenthesis depth inside a list */
	unsigned skip_lit;            /* "{n+}" detector while skipping */
	unsigned taglen, namelen;
	unsigned lit_plus : 1;
	unsigned lit_digits : 1;      /* the literal header has a digit */
	unsigned lit_in_list : 1;
	unsigned line_mode : 1;       /* next input is one raw line */
};

/* Allocates the argument buffer; 0 or -1 when out of memory. */
int imap_init(struct imap_parser *p, uint32_t max_cmd, uint32_t max_literal)
	__attribute__((warn_unused_result));
/* Wipes and frees the buffer. */
void imap_free(struct imap_parser *p);

/* Parses from buf; see above. *used is always set. */
enum imap_rc imap_feed(struct imap_parser *p, const uint8_t *buf, size_t len,
                       size_t *used) __attribute__((warn_unused_result));

/* The next input is one line (a SASL response after "+ "), returned as
 * IMAP_COMMAND with an empty name and one IMAP_ARG_LINE argument. */
void imap_expect_line(struct imap_parser *p);

/* Forgets any partial command (after STARTTLS: nothing from before the
 * handshake survives) and wipes stored bytes. */
void imap_reset(struct imap_parser *p);

/* Zeroes the stored arguments (credentials) of the last command. */
void imap_wipe(struct imap_parser *p);

#endif /* MOAT_IMAP_PARSE_H */
