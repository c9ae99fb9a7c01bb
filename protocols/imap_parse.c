/* imap_parse: see imap_parse.h. */
#include "imap_parse.h"

#include <stdlib.h>
#include <string.h>

#define LIST_DEPTH_MAX 8

enum state {
	S_TAG = 0,
	S_NAME,
	S_ARG_START,
	S_ATOM,
	S_QUOTED,
	S_QUOTED_ESC,
	S_AFTER_ARG,
	S_LIT_NUM,
	S_LIT_CLOSE,
	S_LIT_CR,
	S_LIT_LF,
	S_LIT_DATA,
	S_LIST,
	S_LIST_QUOTED,
	S_LIST_QUOTED_ESC,
	S_CR,
	S_SKIP,
	S_LINE,
	S_DONE,                       /* last call returned a result */
};

/* What a step did with the byte it was given. */
enum step { STEP_GO = 0, STEP_END, STEP_CONT, STEP_BAD, STEP_FATAL };

/* ATOM-CHAR: CHAR (7-bit, not CTL) except atom-specials. */
static int is_atom_char(uint8_t c)
{
	if (c <= 0x20 || c >= 0x7f)
		return 0;
	return !strchr("(){%*\"\\]", c);
}

/* ASTRING-CHAR, as allowed in tags (without '+'). */
static int is_tag_char(uint8_t c)
{
	return (is_atom_char(c) || c == ']') && c != '+';
}

/* Argument atoms: ASTRING-CHAR, and 8-bit bytes for old clients that send
 * UTF-8 user names unquoted. */
static int is_arg_atom_char(uint8_t c)
{
	return is_atom_char(c) || c == ']' || c >= 0x80;
}

int imap_init(struct imap_parser *p, uint32_t max_cmd, uint32_t max_literal)
{
	memset(p, 0, sizeof *p);
	p->max_cmd = max_cmd;
	p->max_literal = max_literal < max_cmd ? max_literal : max_cmd;
	p->data = malloc((size_t)max_cmd + IMAP_ARGS_MAX + 1);
	return p->data ? 0 : -1;
}

void imap_wipe(struct imap_parser *p)
{
	if (!p->data)
		return;
	explicit_bzero(p->data, (size_t)p->max_cmd + IMAP_ARGS_MAX + 1);
	p->used = 0;
	p->nargs = 0;
}

void imap_free(struct imap_parser *p)
{
	imap_wipe(p);
	free(p->data);
	p->data = NULL;
}

/* Starts a new command: forget the last one's outputs. */
static void begin(struct imap_parser *p)
{
	p->tag[0] = p->name[0] = '\0';
	p->taglen = p->namelen = 0;
	p->nargs = 0;
	p->used = 0;
	p->error = NULL;
	p->depth = 0;
	p->skip_lit = 0;
	p->lit_len = 0;
	p->line_len = 0;
	p->state = p->line_mode ? S_LINE : S_TAG;
	if (p->line_mode)
		p->arg_start = 0;
}

void imap_reset(struct imap_parser *p)
{
	imap_wipe(p);
	p->line_mode = 0;
	begin(p);
}

void imap_expect_line(struct imap_parser *p)
{
	p->line_mode = 1;
	begin(p);
}

/* Marks the command malformed; the rest of its line is skipped. */
static enum step bad(struct imap_parser *p, const char *why)
{
	if (p->state == S_TAG)        /* the tag did not end: it is not one */
		p->tag[0] = '\0';
	p->error = why;
	p->state = S_SKIP;
	return STEP_GO;
}

/* Stores one argument byte; the caller checked the byte is allowed. */
static enum step store(struct imap_parser *p, uint8_t c)
{
	if (p->used >= p->max_cmd)
		return bad(p, "Command too long");
	p->data[p->used++] = c;
	return STEP_GO;
}

/* Opens an argument of the given type at the current position. */
static enum step arg_open(struct imap_parser *p, enum imap_arg_type t)
{
	if (p->nargs >= IMAP_ARGS_MAX)
		return bad(p, "Too many arguments");
	p->args[p->nargs].type = t;
	p->arg_start = p->used;
	return STEP_GO;
}

/* Closes the open argument: NUL-terminate it in the buffer. */
static enum step arg_close(struct imap_parser *p)
{
	struct imap_arg *a = &p->args[p->nargs];

	if (p->used > p->max_cmd + IMAP_ARGS_MAX)
		return bad(p, "Command too long");
	a->data = (const char *)p->data + p->arg_start;
	a->len = p->used - p->arg_start;
	p->data[p->used++] = '\0';
	p->nargs++;
	return STEP_GO;
}

/* A line ended (LF): the command is complete unless it is missing parts. */
static enum step line_end(struct imap_parser *p)
{
	if (p->taglen == 0) {
		p->error = "Empty command line";
		return STEP_BAD;
	}
	if (p->namelen == 0) {
		p->error = "Missing command";
		return STEP_BAD;
	}
	return STEP_END;
}

/* The literal header "{n}" or "{n+}" is complete. */
static enum step literal_start(struct imap_parser *p)
{
	if (p->lit_len > p->max_literal || p->line_len + p->lit_len > p->max_cmd) {
		p->error = "Literal too large";
		return p->lit_plus ? STEP_FATAL : STEP_BAD;
	}
	if (p->lit_in_list) {
		/* content of lists is not kept: read the literal past */
		p->state = S_LIT_DATA;
	} else {
		(void)arg_open(p, IMAP_ARG_LITERAL); /* arg_start checked the count */
		p->state = S_LIT_DATA;
	}
	if (p->lit_len == 0) {
		if (!p->lit_in_list && arg_close(p) != STEP_GO)
			return STEP_GO;
		p->state = p->lit_in_list ? S_LIST : S_AFTER_ARG;
	}
	return p->lit_plus ? STEP_GO : STEP_CONT;
}

/* Watches every byte of a command line (not literal data) for "{n+}"
 * right before the line end, also the bytes that made the line bad. */
static void watch(struct imap_parser *p, uint8_t c)
{
	switch (p->skip_lit) {
	case 1: case 2: p->skip_lit = (c >= '0' && c <= '9') ? 2 : (p->skip_lit == 2 && c == '+') ? 3 : 0; break;
	case 3: p->skip_lit = c == '}' ? 4 : 0; break;
	case 4: p->skip_lit = c == '\r' ? 5 : 0; break;
	default: p->skip_lit = 0; break;
	}
	if (c == '{')
		p->skip_lit = 1;
}

/* Skips a rejected line. If it ended in "{n+}", the literal's bytes
 * would follow unannounced, so the stream is lost. */
static enum step skip(struct imap_parser *p, uint8_t c)
{
	if (c != '\n')
		return STEP_GO;
	if (p->skip_lit >= 4) {
		p->error = "Non-synchronizing literal on a rejected command";
		return STEP_FATAL;
	}
	return STEP_BAD;
}

/* Literal digits, checked for overflow before multiplying. */
static enum step literal_digit(struct imap_parser *p, uint8_t c)
{
	if (c >= '0' && c <= '9') {
		if (p->lit_len > (UINT32_MAX - (uint64_t)(c - '0')) / 10)
			return bad(p, "Literal too large");
		p->lit_len = p->lit_len * 10 + (uint64_t)(c - '0');
		p->lit_digits = 1;
		return STEP_GO;
	}
	if (!p->lit_digits)
		return bad(p, "Invalid literal");
	if (c == '+') {
		p->lit_plus = 1;
		p->state = S_LIT_CLOSE;
		return STEP_GO;
	}
	if (c == '}') {
		p->state = S_LIT_CR;
		return STEP_GO;
	}
	return bad(p, "Invalid literal");
}

/* A byte inside a parenthesized list (content checked, not kept). */
static enum step list_byte(struct imap_parser *p, uint8_t c)
{
	switch (c) {
	case '(':
		if (++p->depth > LIST_DEPTH_MAX)
			return bad(p, "Lists nested too deeply");
		return STEP_GO;
	case ')':
		if (--p->depth > 0)
			return STEP_GO;
		p->state = S_AFTER_ARG;
		return arg_close(p);
	case '"':
		p->state = S_LIST_QUOTED;
		return STEP_GO;
	case '{':
		p->lit_len = 0;
		p->lit_digits = 0;
		p->lit_plus = 0;
		p->lit_in_list = 1;
		p->state = S_LIT_NUM;
		return STEP_GO;
	case '\r': case '\n':
		return bad(p, "Unterminated list");
	default:
		if (c != ' ' && !is_arg_atom_char(c))
			return bad(p, "Invalid character in list");
		return STEP_GO;
	}
}

/* The start of an argument, after a space. */
static enum step arg_start(struct imap_parser *p, uint8_t c)
{
	enum step r;

	switch (c) {
	case '"':
		r = arg_open(p, IMAP_ARG_QUOTED);
		if (p->state != S_SKIP)
			p->state = S_QUOTED;
		return r;
	case '{':
		if (p->nargs >= IMAP_ARGS_MAX)
			return bad(p, "Too many arguments");
		p->lit_len = 0;
		p->lit_digits = 0;
		p->lit_plus = 0;
		p->lit_in_list = 0;
		p->state = S_LIT_NUM;
		return STEP_GO;
	case '(':
		r = arg_open(p, IMAP_ARG_LIST);
		if (p->state != S_SKIP) {
			p->depth = 1;
			p->state = S_LIST;
		}
		return r;
	default:
		if (!is_arg_atom_char(c))
			return bad(p, c == ' ' ? "Extra space" : "Invalid argument");
		r = arg_open(p, IMAP_ARG_ATOM);
		if (p->state == S_SKIP)
			return r;
		p->state = S_ATOM;
		return store(p, c);
	}
}

/* One byte of a command line (not literal data). */
static enum step step(struct imap_parser *p, uint8_t c)
{
	if (c == 0 && p->state != S_SKIP)
		return bad(p, "NUL byte in command");
	switch (p->state) {
	case S_TAG:
		if (c == ' ') {
			if (p->taglen == 0)
				return bad(p, "Missing tag");
			p->state = S_NAME;
			return STEP_GO;
		}
		if (c == '\r') { p->state = S_CR; return STEP_GO; }
		if (c == '\n') return line_end(p);
		if (!is_tag_char(c) || p->taglen >= IMAP_TAG_MAX) {
			const char *why = p->taglen >= IMAP_TAG_MAX ? "Tag too long" : "Invalid tag";
			p->tag[0] = '\0';
			p->taglen = 0;
			return bad(p, why);
		}
		p->tag[p->taglen++] = (char)c;
		p->tag[p->taglen] = '\0';
		return STEP_GO;
	case S_NAME:
		if (c == ' ' && p->namelen > 0) { p->state = S_ARG_START; return STEP_GO; }
		if (c == '\r') { p->state = S_CR; return STEP_GO; }
		if (c == '\n') return line_end(p);
		if (!is_atom_char(c) || p->namelen >= IMAP_NAME_MAX)
			return bad(p, "Invalid command");
		p->name[p->namelen++] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
		p->name[p->namelen] = '\0';
		return STEP_GO;
	case S_ARG_START:
		if (c == '\r' || c == '\n')
			return bad(p, "Missing argument");
		return arg_start(p, c);
	case S_ATOM:
		if (is_arg_atom_char(c))
			return store(p, c);
		if (c != ' ' && c != '\r' && c != '\n')
			return bad(p, "Invalid character in atom");
		if (arg_close(p) != STEP_GO || p->state == S_SKIP)
			return STEP_GO;
		p->state = S_AFTER_ARG;
		return step(p, c);
	case S_QUOTED:
		if (c == '"') { p->state = S_AFTER_ARG; return arg_close(p); }
		if (c == '\\') { p->state = S_QUOTED_ESC; return STEP_GO; }
		if (c == '\r' || c == '\n')
			return bad(p, "Unterminated quoted string");
		return store(p, c);
	case S_QUOTED_ESC:
		if (c != '"' && c != '\\')
			return bad(p, "Invalid escape in quoted string");
		p->state = S_QUOTED;
		return store(p, c);
	case S_AFTER_ARG:
		if (c == ' ') { p->state = S_ARG_START; return STEP_GO; }
		if (c == '\r') { p->state = S_CR; return STEP_GO; }
		if (c == '\n') return line_end(p);
		return bad(p, "Missing space after argument");
	case S_LIT_NUM:
		return literal_digit(p, c);
	case S_LIT_CLOSE:
		if (c != '}')
			return bad(p, "Invalid literal");
		p->state = S_LIT_CR;
		return STEP_GO;
	case S_LIT_CR:
		if (c == '\r') {
			p->state = S_LIT_LF;
			return STEP_GO;
		}
		if (c != '\n')
			return bad(p, "Literal must end the line");
		return literal_start(p);
	case S_LIT_LF:
		if (c != '\n')
			return bad(p, "Bare CR in command");
		return literal_start(p);
	case S_LIST:
		return list_byte(p, c);
	case S_LIST_QUOTED:
		if (c == '"') p->state = S_LIST;
		else if (c == '\\') p->state = S_LIST_QUOTED_ESC;
		else if (c == '\r' || c == '\n') return bad(p, "Unterminated quoted string");
		return STEP_GO;
	case S_LIST_QUOTED_ESC:
		if (c != '"' && c != '\\')
			return bad(p, "Invalid escape in quoted string");
		p->state = S_LIST_QUOTED;
		return STEP_GO;
	case S_CR:
		if (c != '\n')
			return bad(p, "Bare CR in command");
		return line_end(p);
	case S_SKIP:
		return skip(p, c);
	default:
		return bad(p, "Parser state error");
	}
}

/* Line mode: one raw line (a SASL response), CRLF or LF stripped. */
static enum step line_byte(struct imap_parser *p, uint8_t c)
{
	if (c == '\n') {
		if (p->used > 0 && p->data[p->used - 1] == '\r')
			p->used--;
		p->line_mode = 0;
		p->args[0].type = IMAP_ARG_LINE;
		p->arg_start = 0;
		arg_close(p);
		return STEP_END;
	}
	if (c == 0) {
		p->line_mode = 0;
		return bad(p, "NUL byte in response");
	}
	if (p->used >= p->max_cmd) {
		p->line_mode = 0;
		return bad(p, "Response too long");
	}
	p->data[p->used++] = c;
	return STEP_GO;
}

enum imap_rc imap_feed(struct imap_parser *p, const uint8_t *buf, size_t len, size_t *used)
{
	size_t i = 0;

	if (p->state == S_DONE)
		begin(p);
	while (i < len) {
		enum step r;
		unsigned prev;

		if (p->state == S_LIT_DATA) {
			/* literal bytes: copy as many as are here, refuse NUL */
			size_t n = len - i < p->lit_len ? len - i : (size_t)p->lit_len;
			if (memchr(buf + i, 0, n))
				p->error = "NUL byte in literal";
			p->line_len += (uint32_t)n;
			if (!p->lit_in_list && !p->error) {
				memcpy(p->data + p->used, buf + i, n);
				p->used += (uint32_t)n;
			}
			i += n;
			p->lit_len -= n;
			if (p->lit_len > 0)
				break;
			if (p->error) {
				p->state = S_SKIP;
				continue;
			}
			if (p->lit_in_list) {
				p->state = S_LIST;
				continue;
			}
			p->state = S_AFTER_ARG;
			if (arg_close(p) != STEP_GO)
				p->state = S_SKIP;
			continue;
		}
		if (p->state != S_SKIP && p->state != S_LINE && ++p->line_len > p->max_cmd)
			(void)bad(p, "Command too long"); /* this byte is then skipped */
		prev = p->state;
		r = prev == S_LINE ? line_byte(p, buf[i]) : step(p, buf[i]);
		/* a line end that made the line bad still ends it */
		if (r == STEP_GO && prev != S_SKIP && p->state == S_SKIP && buf[i] == '\n')
			r = skip(p, buf[i]);
		if (prev != S_LINE)
			watch(p, buf[i]);
		i++;
		switch (r) {
		case STEP_GO:
			continue;
		case STEP_CONT:
			*used = i;
			return IMAP_SEND_CONTINUATION;
		case STEP_END:
			p->state = S_DONE;
			*used = i;
			return IMAP_COMMAND;
		case STEP_BAD:
			p->state = S_DONE;
			p->nargs = 0;
			*used = i;
			return IMAP_BAD;
		case STEP_FATAL:
			p->state = S_DONE;
			p->nargs = 0;
			*used = i;
			return IMAP_FATAL;
		}
	}
	*used = i;
	return IMAP_NEED_MORE;
}
