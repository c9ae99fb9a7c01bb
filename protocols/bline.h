/*
 * bline: the framing both backend logins use for the lines a backend
 * sends (imap_backend.c, pop3_backend.c): CRLF or a bare LF ends a line,
 * NUL and a CR not followed by LF are refused, and so is a line longer
 * than the caller's buffer. Pure; the caller owns the buffer (max + 1
 * bytes, for the NUL).
 */
#ifndef MOAT_BLINE_H
#define MOAT_BLINE_H

#include <stddef.h>
#include <stdint.h>

/* Stores one byte of a line (not its LF): NULL, or why the line is
 * refused ("backend sent a NUL byte", ...). A final CR may take the
 * spare byte past max; bline_end removes it. */
const char *bline_byte(char *line, size_t *len, size_t max, uint8_t c);

/* The line's LF arrived: drops a trailing CR and NUL-terminates. */
void bline_end(char *line, size_t *len);

#endif /* MOAT_BLINE_H */
