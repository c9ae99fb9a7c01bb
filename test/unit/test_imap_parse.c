/*
 * Unit tests for protocols/imap_parse.c.
 *
 * Each row is an input (bytes with an explicit length, NUL allowed), the
 * parser limits, and the results imap_feed() must return in order. Every
 * row runs three ways: the whole input in one buffer (re-fed from
 * buf + used after each result), byte by byte, and split in two at every
 * offset. All runs must give the same results at the same input offsets.
 * Results are compared as soon as they are returned, since argument
 * pointers die at the next imap_feed(). Then imap_reset() and imap_wipe().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "imap_parse.h"

#define D_CMD 1024                    /* default limits for a row */
#define D_LIT 256
#define MAX_RES 8                     /* results per row */

/* Bytes and their length; s may contain NUL. */
#define B(s) s, sizeof(s) - 1

struct xarg {
	enum imap_arg_type type;
	const char *data;
	size_t len;
};

/* One expected result. rc IMAP_NEED_MORE may only be last: the input
 * ends inside a command. */
struct xres {
	int set;
	enum imap_rc rc;
	const char *tag;              /* COMMAND, BAD */
	const char *name;             /* COMMAND */
	unsigned nargs;               /* COMMAND */
	struct xarg args[IMAP_ARGS_MAX];
	const char *err;              /* BAD, FATAL: substring of p->error */
	int then_line;                /* call imap_expect_line() after it */
};

struct row {
	const char *name;
	const char *in;
	size_t len;
	uint32_t max_cmd, max_literal;
	struct xres res[MAX_RES];
	int line_first;               /* imap_expect_line() before any input */
};

/* ROW(name, input, max_cmd, max_literal, results...): input is a string
 * literal, its length taken by sizeof, so embedded NULs count. LROW starts
 * in line mode. */
#define ROW(nm, input, c, l, ...) { .name = nm, .in = input, .len = sizeof(input) - 1, \
                                    .max_cmd = c, .max_literal = l, .res = { __VA_ARGS__ } }
#define LROW(nm, input, c, l, ...) { .name = nm, .in = input, .len = sizeof(input) - 1, \
                                     .max_cmd = c, .max_literal = l, .res = { __VA_ARGS__ }, \
                                     .line_first = 1 }

#define ATOM(s)   { IMAP_ARG_ATOM, B(s) }
#define QUOTED(s) { IMAP_ARG_QUOTED, B(s) }
#define LIT(s)    { IMAP_ARG_LITERAL, B(s) }
#define LIST      { IMAP_ARG_LIST, B("") }
#define LINE(s)   { IMAP_ARG_LINE, B(s) }

#define CMD0(t, n) { .set = 1, .rc = IMAP_COMMAND, .tag = t, .name = n }
#define CMD(t, n, k, ...) { .set = 1, .rc = IMAP_COMMAND, .tag = t, .name = n, \
                            .nargs = k, .args = { __VA_ARGS__ } }
#define CMDL(t, n, k, ...) { .set = 1, .rc = IMAP_COMMAND, .tag = t, .name = n, \
                             .nargs = k, .args = { __VA_ARGS__ }, .then_line = 1 }
#define RESP(s) CMD("", "", 1, LINE(s))
#define CONT { .set = 1, .rc = IMAP_SEND_CONTINUATION }
#define BAD(t, e) { .set = 1, .rc = IMAP_BAD, .tag = t, .err = e }
#define FATAL(e) { .set = 1, .rc = IMAP_FATAL, .err = e }
#define MORE { .set = 1, .rc = IMAP_NEED_MORE }

#define X10 "xxxxxxxxxx"
#define X80 X10 X10 X10 X10 X10 X10 X10 X10
#define TAG32 "abcdefghijklmnopqrstuvwxyz0123.-"
#define NAME20 "ABCDEFGHIJKLMNOPQRST"

#define NONSYNC "Non-synchronizing literal on a rejected command"

static const struct row rows[] = {
	/* ---- plain commands ---- */
	ROW("capability", "a1 CAPABILITY\r\n", D_CMD, D_LIT,
	    CMD0("a1", "CAPABILITY")),
	ROW("noop", "a2 NOOP\r\n", D_CMD, D_LIT,
	    CMD0("a2", "NOOP")),
	ROW("logout", "A003 LOGOUT\r\n", D_CMD, D_LIT,
	    CMD0("A003", "LOGOUT")),
	ROW("starttls", "t STARTTLS\r\n", D_CMD, D_LIT,
	    CMD0("t", "STARTTLS")),
	ROW("lowercase names are upper-cased", "a1 capability\r\na2 sTaRtTlS\r\na3 login u p\r\n",
	    D_CMD, D_LIT, CMD0("a1", "CAPABILITY"), CMD0("a2", "STARTTLS"),
	    CMD("a3", "LOGIN", 2, ATOM("u"), ATOM("p"))),
	ROW("tag keeps its case and may hold ]", "Ab]9 noop\r\n", D_CMD, D_LIT,
	    CMD0("Ab]9", "NOOP")),

	/* ---- LOGIN ---- */
	ROW("login atoms", "a1 LOGIN alice s3cr3t!\r\n", D_CMD, D_LIT,
	    CMD("a1", "LOGIN", 2, ATOM("alice"), ATOM("s3cr3t!"))),
	ROW("login quoted with escapes", "a1 LOGIN \"al ice\" \"p\\\"w\\\\d\"\r\n",
	    D_CMD, D_LIT, CMD("a1", "LOGIN", 2, QUOTED("al ice"), QUOTED("p\"w\\d"))),
	ROW("login empty quoted strings", "a1 LOGIN \"\" \"\"\r\n", D_CMD, D_LIT,
	    CMD("a1", "LOGIN", 2, QUOTED(""), QUOTED(""))),
	ROW("login quoted keeps specials", "a1 LOGIN \"(){%*]\" \"{5+}\"\r\n", D_CMD, D_LIT,
	    CMD("a1", "LOGIN", 2, QUOTED("(){%*]"), QUOTED("{5+}"))),
	ROW("login 8-bit atom and quoted", "a1 LOGIN j\xc3\xbc" "rgen \"p\xc3\xa4" "ss\xff\"\r\n",
	    D_CMD, D_LIT,
	    CMD("a1", "LOGIN", 2, ATOM("j\xc3\xbc" "rgen"), QUOTED("p\xc3\xa4" "ss\xff"))),
	ROW("login synchronizing literals", "a1 LOGIN {5}\r\nalice {6}\r\ns3cret\r\n",
	    D_CMD, D_LIT, CONT, CONT, CMD("a1", "LOGIN", 2, LIT("alice"), LIT("s3cret"))),
	ROW("login non-synchronizing literals", "a1 LOGIN {5+}\r\nalice {6+}\r\ns3cret\r\n",
	    D_CMD, D_LIT, CMD("a1", "LOGIN", 2, LIT("alice"), LIT("s3cret"))),
	ROW("literal keeps CRLF, 8-bit and specials",
	    "a1 LOGIN bob {12}\r\n" "a\r\n\xc3\xa9\"\\{1}\r\n" "\r\n", D_CMD, D_LIT,
	    CONT, CMD("a1", "LOGIN", 2, ATOM("bob"), LIT("a\r\n\xc3\xa9\"\\{1}\r\n"))),
	ROW("literal that looks like a command", "a1 LOGIN {9+}\r\nb1 NOOP\r\n p\r\n",
	    D_CMD, D_LIT, CMD("a1", "LOGIN", 2, LIT("b1 NOOP\r\n"), ATOM("p"))),
	ROW("empty synchronizing literals", "a1 LOGIN {0}\r\n {0}\r\n\r\n", D_CMD, D_LIT,
	    CONT, CONT, CMD("a1", "LOGIN", 2, LIT(""), LIT(""))),
	ROW("empty non-synchronizing literal", "a1 LOGIN {0+}\r\n x\r\n", D_CMD, D_LIT,
	    CMD("a1", "LOGIN", 2, LIT(""), ATOM("x"))),
	ROW("literal header with bare LF", "a1 LOGIN {1}\nu {1+}\np\n", D_CMD, D_LIT,
	    CONT, CMD("a1", "LOGIN", 2, LIT("u"), LIT("p"))),
	ROW("three arguments of each kind", "a1 X \"q\" {2+}\r\nab c\r\n", D_CMD, D_LIT,
	    CMD("a1", "X", 3, QUOTED("q"), LIT("ab"), ATOM("c"))),
	ROW("literal exactly at max_literal", "a1 LOGIN {4}\r\nabcd p\r\n", D_CMD, 4,
	    CONT, CMD("a1", "LOGIN", 2, LIT("abcd"), ATOM("p"))),

	/* ---- AUTHENTICATE and line mode ---- */
	ROW("authenticate plain with sasl-ir", "a1 AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==\r\n",
	    D_CMD, D_LIT,
	    CMD("a1", "AUTHENTICATE", 2, ATOM("PLAIN"), ATOM("AGFsaWNlAHMzY3JldA=="))),
	ROW("authenticate plain with empty sasl-ir", "a1 authenticate plain =\r\n",
	    D_CMD, D_LIT, CMD("a1", "AUTHENTICATE", 2, ATOM("plain"), ATOM("="))),
	ROW("authenticate then a response line", "a1 AUTHENTICATE PLAIN\r\ndGVzdA==\r\na2 NOOP\r\n",
	    D_CMD, D_LIT, CMDL("a1", "AUTHENTICATE", 1, ATOM("PLAIN")), RESP("dGVzdA=="),
	    CMD0("a2", "NOOP")),
	ROW("authenticate login, two response lines, bare LF",
	    "a1 AUTHENTICATE LOGIN\ndXNlcg==\ncGFzcw==\na2 LOGOUT\n",
	    D_CMD, D_LIT, CMDL("a1", "AUTHENTICATE", 1, ATOM("LOGIN")),
	    { .set = 1, .rc = IMAP_COMMAND, .tag = "", .name = "", .nargs = 1,
	      .args = { LINE("dXNlcg==") }, .then_line = 1 },
	    RESP("cGFzcw=="), CMD0("a2", "LOGOUT")),
	LROW("line mode: cancel", "*\r\n", D_CMD, D_LIT,
	    RESP("*")),
	LROW("line mode: empty response", "\r\n", D_CMD, D_LIT,
	    RESP("")),
	LROW("line mode: a command line is data", "a1 LOGOUT\r\na2 NOOP\r\n", D_CMD, D_LIT,
	    RESP("a1 LOGOUT"), CMD0("a2", "NOOP")),
	LROW("line mode: bytes kept as sent", "a \"b\t\xff{1+}\r\n", D_CMD, D_LIT,
	    RESP("a \"b\t\xff{1+}")),
	LROW("line mode: too long, then commands again", X80 "\r\na2 NOOP\r\n", 16, 16,
	    BAD("", "Response too long"), CMD0("a2", "NOOP")),
	LROW("line mode: NUL", "ab\0cd\r\na2 NOOP\r\n", D_CMD, D_LIT,
	    BAD("", "NUL byte in response"), CMD0("a2", "NOOP")),
	LROW("line mode: partial", "dGVz", D_CMD, D_LIT,
	    MORE),

	/* ---- lists ---- */
	ROW("id with a list", "a1 ID (\"name\" \"x\" \"version\" \"1\")\r\n", D_CMD, D_LIT,
	    CMD("a1", "ID", 1, LIST)),
	ROW("id nil", "a1 id NIL\r\n", D_CMD, D_LIT,
	    CMD("a1", "ID", 1, ATOM("NIL"))),
	ROW("empty list", "a1 X ()\r\n", D_CMD, D_LIT,
	    CMD("a1", "X", 1, LIST)),
	ROW("nested lists", "a1 X (a (b (\"c\" (d))) e) f\r\n", D_CMD, D_LIT,
	    CMD("a1", "X", 2, LIST, ATOM("f"))),
	ROW("list: quoted parens and escapes", "a1 ID (\"n\\\"a)m(e\" \"v\\\\\") x\r\n",
	    D_CMD, D_LIT, CMD("a1", "ID", 2, LIST, ATOM("x"))),
	ROW("list: synchronizing literal inside", "a1 ID (\"k\" {3}\r\n)(( z)\r\n",
	    D_CMD, D_LIT, CONT, CMD("a1", "ID", 1, LIST)),
	ROW("list: non-synchronizing literal inside", "a1 ID (\"k\" {1+}\r\nv) y\r\n",
	    D_CMD, D_LIT, CMD("a1", "ID", 2, LIST, ATOM("y"))),
	ROW("list: empty literal inside", "a1 ID ({0}\r\n)\r\n", D_CMD, D_LIT,
	    CONT, CMD("a1", "ID", 1, LIST)),
	ROW("list nested 8 deep", "a1 X ((((((((a))))))))\r\n", D_CMD, D_LIT,
	    CMD("a1", "X", 1, LIST)),
	ROW("list nested 9 deep", "a1 X (((((((((a)))))))))\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Lists nested too deeply"), CMD0("b1", "NOOP")),
	ROW("list unterminated", "a1 ID (\"a\"\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Unterminated list"), CMD0("b1", "NOOP")),
	ROW("list unterminated, bare LF", "a1 ID (a\nb1 NOOP\n", D_CMD, D_LIT,
	    BAD("a1", "Unterminated list"), CMD0("b1", "NOOP")),
	ROW("list quoted unterminated, bare LF", "a1 ID (\"a\nb1 NOOP\n", D_CMD, D_LIT,
	    BAD("a1", "Unterminated quoted string"), CMD0("b1", "NOOP")),
	ROW("list invalid character", "a1 ID (a\\b)\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid character in list"), CMD0("b1", "NOOP")),
	ROW("list invalid escape", "a1 ID (\"a\\n\")\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid escape in quoted string")),
	ROW("list NUL", "a1 ID (a\0)\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "NUL byte in command"), CMD0("b1", "NOOP")),

	/* ---- pipelining and line ends ---- */
	ROW("pipelined commands", "a1 NOOP\r\na2 LOGIN u \"p\"\r\na3 LOGOUT\r\n", D_CMD, D_LIT,
	    CMD0("a1", "NOOP"), CMD("a2", "LOGIN", 2, ATOM("u"), QUOTED("p")),
	    CMD0("a3", "LOGOUT")),
	ROW("pipelined with literals", "a1 LOGIN {1+}\r\nu {1+}\r\np\r\na2 NOOP\r\n",
	    D_CMD, D_LIT, CMD("a1", "LOGIN", 2, LIT("u"), LIT("p")), CMD0("a2", "NOOP")),
	ROW("bare LF line ends", "a1 NOOP\na2 LOGIN u \"p\"\na3 LOGOUT\n", D_CMD, D_LIT,
	    CMD0("a1", "NOOP"), CMD("a2", "LOGIN", 2, ATOM("u"), QUOTED("p")),
	    CMD0("a3", "LOGOUT")),
	ROW("partial command", "a1 NOO", D_CMD, D_LIT,
	    MORE),
	ROW("command then a partial one", "a1 NOOP\r\na2 LOGIN u", D_CMD, D_LIT,
	    CMD0("a1", "NOOP"), MORE),
	ROW("partial literal", "a1 LOGIN {5}\r\nab", D_CMD, D_LIT,
	    CONT, MORE),
	ROW("partial line end", "a1 NOOP\r", D_CMD, D_LIT,
	    MORE),

	/* ---- missing parts ---- */
	ROW("empty line", "\r\na1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("", "Empty command line"), CMD0("a1", "NOOP")),
	ROW("empty line, bare LF", "\na1 NOOP\n", D_CMD, D_LIT,
	    BAD("", "Empty command line"), CMD0("a1", "NOOP")),
	ROW("missing command", "a1\r\na2 \r\na3\na4 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Missing command"), BAD("a2", "Missing command"),
	    BAD("a3", "Missing command"), CMD0("a4", "NOOP")),
	ROW("missing tag", " NOOP\r\na1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("", "Missing tag"), CMD0("a1", "NOOP")),

	/* ---- tags ---- */
	ROW("tag 32 characters", TAG32 " NOOP\r\n", D_CMD, D_LIT,
	    CMD0(TAG32, "NOOP")),
	ROW("tag 33 characters", TAG32 "z NOOP\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("", "Tag too long"), CMD0("b1", "NOOP")),
	ROW("tag with +", "a+1 NOOP\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("", "Invalid tag"), CMD0("b1", "NOOP")),
	ROW("tag with *", "a*1 NOOP\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("", "Invalid tag"), CMD0("b1", "NOOP")),
	ROW("tag with a quote", "a\"1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("", "Invalid tag")),
	ROW("tag with 8-bit byte", "a\xc3\xa9 NOOP\r\n", D_CMD, D_LIT,
	    BAD("", "Invalid tag")),
	ROW("tag with control byte", "a\x01 NOOP\r\n", D_CMD, D_LIT,
	    BAD("", "Invalid tag")),
	ROW("tag with NUL", "a\0 NOOP\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("", "NUL byte in command"), CMD0("b1", "NOOP")),

	/* ---- command names ---- */
	ROW("name 20 characters", "a1 " NAME20 "\r\n", D_CMD, D_LIT,
	    CMD0("a1", NAME20)),
	ROW("name 21 characters", "a1 " NAME20 "U\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid command"), CMD0("b1", "NOOP")),
	ROW("name with *", "a1 NO*OP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid command")),
	ROW("name with 8-bit byte", "a1 N\xc3\xb6OP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid command")),
	ROW("double space after tag", "a1  NOOP\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid command"), CMD0("b1", "NOOP")),

	/* ---- arguments ---- */
	ROW("three arguments", "a1 X a b c\r\n", D_CMD, D_LIT,
	    CMD("a1", "X", 3, ATOM("a"), ATOM("b"), ATOM("c"))),
	ROW("four arguments", "a1 X a b c d\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Too many arguments"), CMD0("b1", "NOOP")),
	ROW("four arguments, quoted", "a1 X a b c \"d\"\r\n", D_CMD, D_LIT,
	    BAD("a1", "Too many arguments")),
	ROW("four arguments, list", "a1 X a b c (d)\r\n", D_CMD, D_LIT,
	    BAD("a1", "Too many arguments")),
	ROW("four arguments, synchronizing literal", "a1 X a b c {1}\r\nb1 NOOP\r\n",
	    D_CMD, D_LIT, BAD("a1", "Too many arguments"), CMD0("b1", "NOOP")),
	ROW("extra space between arguments", "a1 LOGIN  u p\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Extra space"), CMD0("b1", "NOOP")),
	ROW("trailing space", "a1 NOOP \r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Missing argument"), CMD0("b1", "NOOP")),
	ROW("trailing space, bare LF", "a1 NOOP \nb1 NOOP\n", D_CMD, D_LIT,
	    BAD("a1", "Missing argument"), CMD0("b1", "NOOP")),
	ROW("missing space after quoted", "a1 LOGIN \"u\"p\r\n", D_CMD, D_LIT,
	    BAD("a1", "Missing space after argument")),
	ROW("invalid character in atom", "a1 LOGIN u(p x\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid character in atom")),
	ROW("invalid argument start", "a1 LOGIN )\r\nb1 LOGIN \x7f\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid argument"), BAD("b1", "Invalid argument")),
	ROW("unterminated quote", "a1 LOGIN \"abc\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Unterminated quoted string"), CMD0("b1", "NOOP")),
	ROW("unterminated quote, bare LF", "a1 LOGIN \"abc\nb1 NOOP\n", D_CMD, D_LIT,
	    BAD("a1", "Unterminated quoted string"), CMD0("b1", "NOOP")),
	ROW("invalid escape \\n", "a1 LOGIN \"a\\nb\" p\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid escape in quoted string"), CMD0("b1", "NOOP")),
	ROW("escape before bare LF", "a1 LOGIN \"a\\\nb1 NOOP\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid escape in quoted string"), CMD0("b1", "NOOP")),

	/* ---- CR and NUL ---- */
	ROW("bare CR", "a1 NOOP\rb1 NOOP\r\nc1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Bare CR in command"), CMD0("c1", "NOOP")),
	ROW("bare CR after an atom", "a1 LOGIN u\rp\r\n", D_CMD, D_LIT,
	    BAD("a1", "Bare CR in command")),
	ROW("bare CR after a literal header", "a1 LOGIN {1}\rx\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Bare CR in command"), CMD0("b1", "NOOP")),
	ROW("NUL in line", "a1 NO\0OP\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "NUL byte in command"), CMD0("b1", "NOOP")),
	ROW("NUL in quoted", "a1 LOGIN \"u\0\" p\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "NUL byte in command"), CMD0("b1", "NOOP")),
	ROW("NUL in atom argument", "a1 LOGIN u\0 p\r\n", D_CMD, D_LIT,
	    BAD("a1", "NUL byte in command")),
	/* The literal is consumed whole: its bytes never parse as "b1 NOOP". */
	ROW("NUL in synchronizing literal", "a1 LOGIN u {10}\r\n\0b1 NOOP\r\n x\r\nc1 NOOP\r\n",
	    D_CMD, D_LIT, CONT, BAD("a1", "NUL byte in literal"), CMD0("c1", "NOOP")),
	ROW("NUL at the end of a literal", "a1 LOGIN u {10+}\r\nb1 NOOP\r\n\0\r\nc1 NOOP\r\n",
	    D_CMD, D_LIT, BAD("a1", "NUL byte in literal"), CMD0("c1", "NOOP")),
	ROW("NUL in literal inside a list", "a1 ID ({13+}\r\n\0)\r\nb1 NOOP\r\n)\r\nc1 NOOP\r\n",
	    D_CMD, D_LIT, BAD("a1", "NUL byte in literal"), CMD0("c1", "NOOP")),

	/* ---- sizes ---- */
	ROW("line longer than max_cmd", "a1 LOGIN " X80 "\r\nb1 NOOP\r\n", 64, 64,
	    BAD("a1", "Command too long"), CMD0("b1", "NOOP")),
	ROW("quoted longer than max_cmd, bare LF", "a1 LOGIN \"" X80 "\"\nb1 NOOP\n", 64, 64,
	    BAD("a1", "Command too long"), CMD0("b1", "NOOP")),
	ROW("literal {4294967296}", "a1 LOGIN {4294967296}\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Literal too large"), CMD0("b1", "NOOP")),
	ROW("literal without digits {}", "a1 LOGIN {}\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid literal"), CMD0("b1", "NOOP")),
	/* no length, so no literal data can follow: an ordinary bad line */
	ROW("literal without digits {+}", "a1 LOGIN {+}\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid literal"), CMD0("b1", "NOOP")),
	ROW("literal {4294967295}", "a1 LOGIN {4294967295}\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Literal too large"), CMD0("b1", "NOOP")),
	ROW("literal with 20 digits", "a1 LOGIN {18446744073709551617}\r\nb1 NOOP\r\n",
	    D_CMD, D_LIT, BAD("a1", "Literal too large"), CMD0("b1", "NOOP")),
	ROW("literal with 20 nines", "a1 LOGIN {99999999999999999999}\r\nb1 NOOP\r\n",
	    D_CMD, D_LIT, BAD("a1", "Literal too large"), CMD0("b1", "NOOP")),
	/* No "+ " for a refused {n}: the client sends no literal data. */
	ROW("{5} over max_literal", "a1 LOGIN {5}\r\nb1 NOOP\r\n", D_CMD, 4,
	    BAD("a1", "Literal too large"), CMD0("b1", "NOOP")),
	ROW("{30} over what is left of max_cmd", "a1 LOGIN {30}\r\nb1 NOOP\r\n", 32, 32,
	    BAD("a1", "Literal too large"), CMD0("b1", "NOOP")),
	ROW("{5} in a list over max_literal", "a1 ID (x {5}\r\nb1 NOOP\r\n", D_CMD, 4,
	    BAD("a1", "Literal too large"), CMD0("b1", "NOOP")),
	/* FATAL closes the session: the runner feeds nothing after it. */
	ROW("{5+} over max_literal", "a1 LOGIN {5+}\r\nb1 NOOP\r\n", D_CMD, 4,
	    FATAL("Literal too large")),
	ROW("{5+} in a list over max_literal", "a1 ID (x {5+}\r\nb1 NOOP\r\n", D_CMD, 4,
	    FATAL("Literal too large")),
	ROW("{4294967296+}", "a1 LOGIN {4294967296+}\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    FATAL(NONSYNC)),
	ROW("20-digit non-synchronizing literal", "a1 LOGIN {18446744073709551617+}\r\nb1 NOOP\r\n",
	    D_CMD, D_LIT, FATAL(NONSYNC)),

	/* ---- literal headers on rejected lines ---- */
	/* A rejected line announcing {n+} is FATAL wherever it went bad, even
	 * at the "{" itself or past max_cmd; {n} there, or {n+} not last, is BAD. */
	ROW("{5+} at the end of a bad line", "a1 LOGIN \"a\\x\" {5+}\r\nb1 NOOP\r\n",
	    D_CMD, D_LIT, FATAL(NONSYNC)),
	ROW("{5+} with bare LF at the end of a bad line", "a1 LO%GIN {5+}\nb1 NOOP\n",
	    D_CMD, D_LIT, FATAL(NONSYNC)),
	ROW("{5} at the end of a bad line", "a1 LOGIN \"a\\x\" {5}\r\nb1 NOOP\r\n",
	    D_CMD, D_LIT, BAD("a1", "Invalid escape in quoted string"), CMD0("b1", "NOOP")),
	ROW("{5+} not at the end of a bad line", "a1 LOGIN \"a\\x\" {5+} x\r\nb1 NOOP\r\n",
	    D_CMD, D_LIT, BAD("a1", "Invalid escape in quoted string"), CMD0("b1", "NOOP")),
	ROW("{5+} as a fourth argument", "a1 X a b c {5+}\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    FATAL(NONSYNC)),
	ROW("{5+} right after a quoted string", "a1 LOGIN \"u\"{5+}\r\nb1 NOOP\r\n",
	    D_CMD, D_LIT, FATAL(NONSYNC)),
	ROW("{5+} as the command name", "a1 {5+}\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    FATAL(NONSYNC)),
	ROW("{5+} line too long at its LF", "a1 LOGIN {5+}\r\nb1 NOOP\r\n", 14, 14,
	    FATAL(NONSYNC)),
	ROW("{5+} line too long at its digit", "a1 LOGIN {5+}\r\nb1 NOOP\r\n", 10, 10,
	    FATAL(NONSYNC)),
	ROW("{5+} after a NUL in a literal", "a1 LOGIN {1+}\r\n\0 {5+}\r\nb1 NOOP\r\n",
	    D_CMD, D_LIT, FATAL(NONSYNC)),
	ROW("literal header not at the line end", "a1 LOGIN {5} x\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Literal must end the line"), CMD0("b1", "NOOP")),
	ROW("invalid literal", "a1 LOGIN {5x}\r\na2 LOGIN {5+x}\r\nb1 NOOP\r\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid literal"), BAD("a2", "Invalid literal"), CMD0("b1", "NOOP")),
	ROW("unterminated literal header, bare LF", "a1 LOGIN {5\nb1 NOOP\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid literal"), CMD0("b1", "NOOP")),
	ROW("unterminated literal+ header, bare LF", "a1 LOGIN {5+\nb1 NOOP\n", D_CMD, D_LIT,
	    BAD("a1", "Invalid literal"), CMD0("b1", "NOOP")),
};

#define NROWS (sizeof rows / sizeof rows[0])

/* ---- the runner ---- */

static const char *rc_name(enum imap_rc rc)
{
	switch (rc) {
	case IMAP_NEED_MORE: return "NEED_MORE";
	case IMAP_COMMAND: return "COMMAND";
	case IMAP_SEND_CONTINUATION: return "SEND_CONTINUATION";
	case IMAP_BAD: return "BAD";
	case IMAP_FATAL: return "FATAL";
	}
	return "?";
}

/* n bytes of s, escaped, for failure messages (four buffers in turn). */
static const char *show(const char *s, size_t n)
{
	static char out[4][200];
	static unsigned k;
	char *o = out[k++ % 4];
	size_t j = 0;

	for (size_t i = 0; i < n && j + 5 < sizeof out[0]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			o[j++] = (char)c;
		else
			j += (size_t)snprintf(o + j, sizeof out[0] - j, "\\x%02x", c);
	}
	o[j] = '\0';
	return o;
}

struct run {
	const struct row *r;
	char how[32];                 /* "whole", "bytes", "split 7" */
	struct imap_parser p;
	size_t *offs;                 /* end offset of each result, shared by runs */
	size_t k;                     /* results so far */
	enum imap_rc last;            /* rc of the last imap_feed() */
	int closed;                   /* FATAL seen: no more input */
};

/* Results expected from the row, a final MORE included. */
static size_t row_results(const struct row *r)
{
	size_t n = 0;

	while (n < MAX_RES && r->res[n].set)
		n++;
	return n;
}

/* A COMMAND: tag, name and every argument byte for byte. */
static void check_command(const struct run *u, const struct xres *x)
{
	const struct imap_parser *p = &u->p;

	if (strcmp(p->tag, x->tag) != 0)
		fail_msg("%s [%s] result %zu: tag \"%s\", expected \"%s\"",
		         u->r->name, u->how, u->k, p->tag, x->tag);
	if (strcmp(p->name, x->name) != 0)
		fail_msg("%s [%s] result %zu: name \"%s\", expected \"%s\"",
		         u->r->name, u->how, u->k, p->name, x->name);
	if (p->error != NULL)
		fail_msg("%s [%s] result %zu: COMMAND with error \"%s\"",
		         u->r->name, u->how, u->k, p->error);
	if (p->nargs != x->nargs)
		fail_msg("%s [%s] result %zu: %u arguments, expected %u",
		         u->r->name, u->how, u->k, p->nargs, x->nargs);
	for (unsigned i = 0; i < x->nargs; i++) {
		const struct imap_arg *a = &p->args[i];
		const struct xarg *e = &x->args[i];

		if (a->type != e->type)
			fail_msg("%s [%s] result %zu arg %u: type %d, expected %d",
			         u->r->name, u->how, u->k, i, (int)a->type, (int)e->type);
		if (a->data == NULL || a->len != e->len || memcmp(a->data, e->data, e->len) != 0)
			fail_msg("%s [%s] result %zu arg %u: \"%s\" (%zu), expected \"%s\" (%zu)",
			         u->r->name, u->how, u->k, i,
			         a->data ? show(a->data, a->len) : "(null)", a->len,
			         show(e->data, e->len), e->len);
		if (a->data[a->len] != '\0')
			fail_msg("%s [%s] result %zu arg %u: not NUL-terminated",
			         u->r->name, u->how, u->k, i);
	}
}

/* One non-NEED_MORE result, ending at offset end of the input. */
static void check(struct run *u, enum imap_rc rc, size_t end)
{
	const struct row *r = u->r;
	const struct imap_parser *p = &u->p;
	const struct xres *x;

	if (u->k >= row_results(r) || r->res[u->k].rc == IMAP_NEED_MORE)
		fail_msg("%s [%s]: unexpected result %zu %s at offset %zu (tag \"%s\", error %s)",
		         r->name, u->how, u->k, rc_name(rc), end, p->tag,
		         p->error ? p->error : "none");
	x = &r->res[u->k];
	if (rc != x->rc)
		fail_msg("%s [%s] result %zu: %s at offset %zu, expected %s (tag \"%s\", error %s)",
		         r->name, u->how, u->k, rc_name(rc), end, rc_name(x->rc), p->tag,
		         p->error ? p->error : "none");
	if (u->offs[u->k] == SIZE_MAX)
		u->offs[u->k] = end;
	else if (u->offs[u->k] != end)
		fail_msg("%s [%s] result %zu: ends at offset %zu, the whole run said %zu",
		         r->name, u->how, u->k, end, u->offs[u->k]);
	switch (rc) {
	case IMAP_COMMAND:
		check_command(u, x);
		break;
	case IMAP_BAD:
		if (strcmp(p->tag, x->tag) != 0)
			fail_msg("%s [%s] result %zu: BAD tag \"%s\", expected \"%s\"",
			         r->name, u->how, u->k, p->tag, x->tag);
		if (p->nargs != 0)
			fail_msg("%s [%s] result %zu: BAD with %u arguments",
			         r->name, u->how, u->k, p->nargs);
		/* fall through */
	case IMAP_FATAL:
		if (p->error == NULL || strstr(p->error, x->err) == NULL)
			fail_msg("%s [%s] result %zu: error \"%s\", expected \"%s\"",
			         r->name, u->how, u->k, p->error ? p->error : "(null)", x->err);
		if (rc == IMAP_FATAL)
			u->closed = 1;
		break;
	default:
		break;
	}
	if (x->then_line)
		imap_expect_line(&u->p);
	u->k++;
}

/* Feeds input bytes [start, start + len) like a session would: after
 * each result, again from buf + used. */
static void feed(struct run *u, size_t start, size_t len)
{
	while (len > 0 && !u->closed) {
		const uint8_t *buf = (const uint8_t *)u->r->in + start;
		size_t used = SIZE_MAX;
		enum imap_rc rc = imap_feed(&u->p, buf, len, &used);

		u->last = rc;
		if (used > len || (rc == IMAP_NEED_MORE && used != len) ||
		    (rc != IMAP_NEED_MORE && used == 0))
			fail_msg("%s [%s]: %s used %zu of %zu bytes at offset %zu",
			         u->r->name, u->how, rc_name(rc), used, len, start);
		if (rc == IMAP_NEED_MORE)
			return;
		start += used;
		len -= used;
		check(u, rc, start);
	}
}

/* The input is used up: all results seen, and NEED_MORE last exactly
 * when the row expects the input to end inside a command. */
static void finish(struct run *u)
{
	size_t n = row_results(u->r);
	int more = n > 0 && u->r->res[n - 1].rc == IMAP_NEED_MORE;

	if (u->k != n - (size_t)more)
		fail_msg("%s [%s]: %zu results, expected %zu", u->r->name, u->how,
		         u->k, n - (size_t)more);
	if (more != (u->last == IMAP_NEED_MORE))
		fail_msg("%s [%s]: input ended with %s, expected %s", u->r->name, u->how,
		         rc_name(u->last), more ? "NEED_MORE" : "a result");
}

enum how { WHOLE, BYTES, SPLIT };

static void run(const struct row *r, enum how how, size_t split, size_t *offs)
{
	struct run u;

	memset(&u, 0, sizeof u);
	u.r = r;
	u.offs = offs;
	u.last = IMAP_NEED_MORE;
	if (how == WHOLE)
		snprintf(u.how, sizeof u.how, "whole");
	else if (how == BYTES)
		snprintf(u.how, sizeof u.how, "bytes");
	else
		snprintf(u.how, sizeof u.how, "split %zu", split);
	assert_int_equal(imap_init(&u.p, r->max_cmd, r->max_literal), 0);
	if (r->line_first)
		imap_expect_line(&u.p);
	if (how == WHOLE) {
		feed(&u, 0, r->len);
	} else if (how == BYTES) {
		for (size_t i = 0; i < r->len; i++)
			feed(&u, i, 1);
	} else {
		feed(&u, 0, split);
		feed(&u, split, r->len - split);
	}
	finish(&u);
	imap_free(&u.p);
}

/* One row, three ways. */
static void test_row(void **state)
{
	const struct row *r = *state;
	size_t offs[MAX_RES];

	for (size_t i = 0; i < MAX_RES; i++)
		offs[i] = SIZE_MAX;
	run(r, WHOLE, 0, offs);
	run(r, BYTES, 0, offs);
	for (size_t s = 1; s < r->len; s++)
		run(r, SPLIT, s, offs);
}

/* ---- reset and wipe ---- */

static enum imap_rc feed_str(struct imap_parser *p, const char *s, size_t len, size_t *used)
{
	return imap_feed(p, (const uint8_t *)s, len, used);
}

/* Nothing of max_cmd bytes of storage is left but zeroes. */
static void assert_zeroed(const struct imap_parser *p)
{
	for (uint32_t i = 0; i < p->max_cmd; i++)
		if (p->data[i] != 0)
			fail_msg("data[%u] is 0x%02x after wipe", i, p->data[i]);
}

static void assert_noop(struct imap_parser *p, const char *tag)
{
	size_t used = 0;

	assert_int_equal(feed_str(p, B("b1 NOOP\r\n"), &used), IMAP_COMMAND);
	assert_int_equal(used, 9);
	assert_string_equal(p->tag, tag);
	assert_string_equal(p->name, "NOOP");
	assert_int_equal(p->nargs, 0);
}

/* "a1 LOG", reset: the next command starts fresh. */
static void test_reset_partial(void **state)
{
	struct imap_parser p;
	size_t used = 0;

	assert_int_equal(imap_init(&p, D_CMD, D_LIT), 0);
	assert_int_equal(feed_str(&p, B("a1 LOG"), &used), IMAP_NEED_MORE);
	assert_int_equal(used, 6);
	imap_reset(&p);
	assert_noop(&p, "b1");
	imap_free(&p);
}

/* Reset inside literal data: the rest is a command, the bytes are gone. */
static void test_reset_in_literal(void **state)
{
	struct imap_parser p;
	size_t used = 0;

	assert_int_equal(imap_init(&p, D_CMD, D_LIT), 0);
	assert_int_equal(feed_str(&p, B("a1 LOGIN user {12}\r\n"), &used),
	                 IMAP_SEND_CONTINUATION);
	assert_int_equal(used, 20);
	assert_int_equal(feed_str(&p, B("Zq7Zq7"), &used), IMAP_NEED_MORE);
	assert_non_null(memmem(p.data, p.max_cmd, "Zq7Zq7", 6));
	imap_reset(&p);
	assert_zeroed(&p);
	assert_noop(&p, "b1");
	imap_free(&p);
}

/* Reset while a bad line is being skipped. */
static void test_reset_in_bad_line(void **state)
{
	struct imap_parser p;
	size_t used = 0;

	assert_int_equal(imap_init(&p, D_CMD, D_LIT), 0);
	assert_int_equal(feed_str(&p, B("a1 X ((((((((((x "), &used), IMAP_NEED_MORE);
	imap_reset(&p);
	assert_noop(&p, "b1");
	imap_free(&p);
}

/* Reset ends line mode, also in the middle of a line. */
static void test_reset_line_mode(void **state)
{
	struct imap_parser p;
	size_t used = 0;

	assert_int_equal(imap_init(&p, D_CMD, D_LIT), 0);
	imap_expect_line(&p);
	imap_reset(&p);
	assert_noop(&p, "b1");
	imap_expect_line(&p);
	assert_int_equal(feed_str(&p, B("dGVz"), &used), IMAP_NEED_MORE);
	imap_reset(&p);
	assert_noop(&p, "b1");
	imap_free(&p);
}

/* STARTTLS: the parser stops right after its line; the session drops
 * what follows and resets, and the next command parses clean. */
static void test_reset_starttls(void **state)
{
	static const char in[] = "a1 STARTTLS\r\nb1 LOGIN u p\r\nc1 LO";
	struct imap_parser p;
	size_t used = 0;

	assert_int_equal(imap_init(&p, D_CMD, D_LIT), 0);
	assert_int_equal(feed_str(&p, in, sizeof in - 1, &used), IMAP_COMMAND);
	assert_int_equal(used, 13);
	assert_string_equal(p.name, "STARTTLS");
	imap_reset(&p);
	assert_noop(&p, "b1");
	imap_free(&p);
}

/* imap_wipe() after credentials in each argument form. */
static void test_wipe(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		int line;
		const char *secret;
	} cases[] = {
		{ B("a1 LOGIN alice Pw0rdAtom\r\n"), 0, "Pw0rdAtom" },
		{ B("a1 LOGIN alice \"Pw0rd\\\"Quoted\"\r\n"), 0, "Pw0rd\"Quoted" },
		{ B("a1 LOGIN alice {12+}\r\nPw0rd\xc3\xa9Lit\r\n\r\n"), 0, "Pw0rd\xc3\xa9Lit\r\n" },
		{ B("AGFsaWNlAHMzY3JldA==\r\n"), 1, "AGFsaWNlAHMzY3JldA==" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct imap_parser p;
		size_t used = 0;
		size_t n = strlen(cases[i].secret);

		assert_int_equal(imap_init(&p, 64, 32), 0);
		if (cases[i].line)
			imap_expect_line(&p);
		assert_int_equal(feed_str(&p, cases[i].in, cases[i].len, &used), IMAP_COMMAND);
		assert_int_equal(used, cases[i].len);
		assert_int_equal(p.nargs, cases[i].line ? 1 : 2);
		assert_int_equal(p.args[p.nargs - 1].len, n);
		assert_memory_equal(p.args[p.nargs - 1].data, cases[i].secret, n);
		assert_non_null(memmem(p.data, p.max_cmd, cases[i].secret, n));
		imap_wipe(&p);
		assert_null(memmem(p.data, p.max_cmd, cases[i].secret, n));
		assert_zeroed(&p);
		assert_int_equal(p.nargs, 0);
		/* the parser still works after a wipe */
		assert_noop(&p, "b1");
		imap_free(&p);
		assert_null(p.data);
	}
}

static const struct CMUnitTest extra[] = {
	cmocka_unit_test(test_reset_partial),
	cmocka_unit_test(test_reset_in_literal),
	cmocka_unit_test(test_reset_in_bad_line),
	cmocka_unit_test(test_reset_line_mode),
	cmocka_unit_test(test_reset_starttls),
	cmocka_unit_test(test_wipe),
};

#define NEXTRA (sizeof extra / sizeof extra[0])

int main(void)
{
	static struct CMUnitTest tests[NROWS + NEXTRA];

	for (size_t i = 0; i < NROWS; i++) {
		tests[i].name = rows[i].name;
		tests[i].test_func = test_row;
		tests[i].initial_state = (void *)&rows[i];
	}
	for (size_t i = 0; i < NEXTRA; i++)
		tests[NROWS + i] = extra[i];
	return cmocka_run_group_tests_name("imap_parse", tests, NULL, NULL);
}
