/* pop3_parse: see pop3_parse.h. */
#include "pop3_parse.h"

#include <stdlib.h>
#include <string.h>

/* What one byte did to the line in progress. */
enum step { STEP_GO = 0, STEP_LINE, STEP_BAD };

int pop3_init(struct pop3_parser *p, uint32_t max_line)
{
	memset(p, 0, sizeof *p);
	p->max_line = max_line;
	p->buf = malloc((size_t)max_line + 1);
	if (!p->buf)
		return -1;
	memset(p->buf, 0, (size_t)max_line + 1);
	return 0;
}

/* Zeroes the whole buffer in a way the compiler keeps; runs after a line
 * that may have held a password, and on reset and free. */
static void zero_buf(struct pop3_parser *p)
{
	if (p->buf)
		explicit_bzero(p->buf, (size_t)p->max_line + 1);
}

void pop3_wipe(struct pop3_parser *p)
{
	zero_buf(p);
	p->len = 0;
	p->arg_len = 0;
	p->line_len = 0;
	if (p->buf)
		p->arg = p->line = (const char *)p->buf; /* now "" */
}

void pop3_free(struct pop3_parser *p)
{
	pop3_wipe(p);
	free(p->buf);
	p->buf = NULL;
	p->arg = p->line = NULL;
}

/* Starts a new line: forgets the last result (not the line mode). */
static void begin(struct pop3_parser *p)
{
	p->name[0] = '\0';
	p->arg = p->line = NULL;
	p->arg_len = p->line_len = 0;
	p->error = NULL;
	p->len = 0;
	p->skipping = 0;
	p->saw_cr = 0;
	p->done = 0;
}

void pop3_reset(struct pop3_parser *p)
{
	zero_buf(p);
	begin(p);
	p->line_mode = 0;
}

void pop3_expect_line(struct pop3_parser *p)
{
	p->line_mode = 1;
}

/* Marks the line bad; its remaining bytes are dropped up to the LF. */
static enum step bad(struct pop3_parser *p, const char *why)
{
	if (!p->skipping)
		p->error = why;
	p->skipping = 1;
	return STEP_GO;
}

/* An ASCII letter, the only thing a keyword is made of. */
static int is_letter(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* The LF of a line that was not rejected: split it into keyword and
 * argument (in line mode it is returned whole). */
static enum step line_end(struct pop3_parser *p)
{
	size_t k = 0;

	p->buf[p->len] = '\0';
	p->line = (const char *)p->buf;
	p->line_len = p->len;
	if (p->line_mode) {
		p->arg = p->line;
		p->arg_len = p->line_len;
		return STEP_LINE;
	}
	if (p->len == 0) {
		p->error = "Empty command line";
		return STEP_BAD;
	}
	while (k < p->len && p->buf[k] != ' ')
		k++;
	if (k < 3 || k > 4) {
		p->error = "Invalid command";
		return STEP_BAD;
	}
	for (size_t i = 0; i < k; i++) {
		uint8_t c = p->buf[i];

		if (!is_letter(c)) {
			p->error = "Invalid command";
			return STEP_BAD;
		}
		p->name[i] = (char)(c >= 'a' ? c - 32 : c);
	}
	p->name[k] = '\0';
	p->arg = (const char *)p->buf + (k < p->len ? k + 1 : k);
	p->arg_len = p->len - (k < p->len ? k + 1 : k);
	return STEP_LINE;
}

/* One byte of input, whatever state the line is in. */
static enum step step(struct pop3_parser *p, uint8_t c)
{
	if (p->saw_cr) {
		p->saw_cr = 0;
		if (c != '\n')
			(void)bad(p, "Bare CR in command");
	}
	if (c == '\n')
		return p->skipping ? STEP_BAD : line_end(p);
	if (c == '\r') {
		p->saw_cr = 1;
		return STEP_GO;
	}
	if (p->skipping)
		return STEP_GO;
	if (c == 0)
		return bad(p, "NUL byte in command");
	if (p->len >= p->max_line)
		return bad(p, p->line_mode ? "Response line too long" : "Command line too long");
	p->buf[p->len++] = c;
	return STEP_GO;
}

enum pop3_rc pop3_feed(struct pop3_parser *p, const uint8_t *buf, size_t len, size_t *used)
{
	size_t i = 0;

	if (p->done)
		begin(p);
	while (i < len) {
		enum step r = step(p, buf[i++]);

		if (r == STEP_GO)
			continue;
		p->done = 1;
		p->line_mode = 0;         /* line mode lasts one line */
		*used = i;
		if (r == STEP_LINE)
			return POP3_LINE;
		p->name[0] = '\0';
		p->arg = p->line = NULL;
		p->arg_len = p->line_len = 0;
		return POP3_BAD;
	}
	*used = i;
	return POP3_NEED_MORE;
}
