/*
 * Unit tests for protocols/pop3_backend.c.
 *
 * A row is a backend transcript (bytes with an explicit length, NUL
 * allowed), the credentials, and what pop3_bl_feed() must return in
 * order: each SEND with the exact bytes of out, then OK, NO or FAIL with
 * the exact text, or NEED_MORE last when the transcript stops mid-login.
 * tail counts the bytes after the final result: the client's, never
 * consumed.
 *
 * Each row runs whole (fed again from buf + used after each result),
 * byte by byte, and cut in two at every offset; every run must see the
 * same results end at the same offsets. Throughout, out holds only the
 * current SEND; at OK, NO and FAIL the password is gone; after
 * pop3_bl_free the whole struct is zero.
 *
 * A STLS row (starttls set) lists BL_STARTTLS among its results; the
 * runner then calls pop3_bl_tls_started, whose SEND is the next result
 * at the same offset, and the bytes after stand for what came over TLS.
 * Before BL_STARTTLS only CAPA and STLS may go out, and no SEND may hold
 * the user name or the password.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pop3_backend.h"
#include "sasl.h"

#define MAX_RES 10

/* A string literal and its length without the final NUL. */
#define B(s) s, sizeof(s) - 1

struct xres {
	int set;
	enum bl_rc rc;
	const char *bytes;            /* SEND: out; OK, NO, FAIL: text */
	size_t len;
};

struct row {
	const char *name;
	const char *authzid, *user, *pass;
	size_t authzid_len, user_len, pass_len;
	const char *in;
	size_t len;
	size_t tail;
	struct xres res[MAX_RES];
	int starttls;                 /* pop3_bl_set_starttls */
	const char *xclient;          /* pop3_bl_set_xclient, or NULL */
};

#define SEND(s) { 1, BL_SEND, B(s) }
#define OK(s)   { 1, BL_OK, B(s) }
#define NO(s)   { 1, BL_NO, B(s) }
#define FAIL(s) { 1, BL_FAIL, B(s) }
#define MORE    { 1, BL_NEED_MORE, B("") }
#define TLS_UP  { 1, BL_STARTTLS, B("") }

/* CROW(name, authzid, user, pass, transcript, tail, results...) takes
 * string literals; ROW logs in as alice/s3cret without an authzid. */
#define CROW(nm, z, u, p, input, tl, ...) \
	{ .name = nm, .authzid = z, .authzid_len = sizeof(z) - 1, \
	  .user = u, .user_len = sizeof(u) - 1, .pass = p, .pass_len = sizeof(p) - 1, \
	  .in = input, .len = sizeof(input) - 1, .tail = tl, .res = { __VA_ARGS__ } }
#define ROW(nm, input, tl, ...) CROW(nm, "", "alice", "s3cret", input, tl, __VA_ARGS__)

/* What Dovecot 2.3 sends (scripts/dovecot.sh). */
#define G         "+OK Dovecot (Debian) ready.\r\n"
#define C_PLAIN   "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n" \
                  "USER\r\nSASL PLAIN LOGIN\r\n.\r\n"
#define C_NOSASL  "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n" \
                  "USER\r\n.\r\n"
#define C_LOGIN   "+OK\r\nCAPA\r\nUSER\r\nSASL LOGIN CRAM-MD5\r\n.\r\n"
#define GP        G C_PLAIN
#define GN        G C_NOSASL
#define AUTHFAIL  "[AUTH] Authentication failed."

/* What moat sends as alice/s3cret. */
#define CAPA      "CAPA\r\n"
#define AUTH_IR   "AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n"
#define USER      "USER alice\r\n"
#define PASS      "PASS s3cret\r\n"

#define CANCELLED  "backend does not accept AUTH PLAIN initial response"
#define UNEXPECTED "unexpected backend line"
#define BADGREET   "unexpected backend greeting"

/* A password with spaces and 8-bit bytes (14 bytes), and its PLAIN. */
#define HPASS  "p a s s \xc3\xa4\xff  x"
#define HPLAIN "AGFsaWNlAHAgYSBzIHMgw6T/ICB4"

/* Passwords that put "\0alice\0" + password at 180 bytes (the longest
 * AUTH PLAIN line within 255 octets: 11 + 240 + 2) and one more. */
#define X10   "xxxxxxxxxx"
#define X170  X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
#define X173  X170 "xxx"
#define X174  X170 "xxxx"
#define H40   "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4"
#define P173  "AGFsaWNlAHh4" H40 H40 H40 H40 H40 "eHh4eHh4eHh4eHh4eHh4eHh4eHh4"
#define P174  "AGFsaWNlAHh4" H40 H40 H40 H40 H40 "eHh4eHh4eHh4eHh4eHh4eHh4eHh4eA=="

static const struct row rows[] = {
	/* ---- AUTH PLAIN with an initial response ---- */
	ROW("Dovecot: SASL PLAIN, logged in", GP "+OK Logged in.\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), OK("Logged in.")),
	ROW("AUTH PLAIN refused", GP "-ERR " AUTHFAIL "\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), NO(AUTHFAIL)),
	ROW("AUTH PLAIN: -ERR [SYS/TEMP]", GP "-ERR [SYS/TEMP] Temporary failure.\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), FAIL("[SYS/TEMP] Temporary failure.")),
	ROW("AUTH PLAIN: -ERR [SYS/PERM]", GP "-ERR [SYS/PERM] Broken\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), FAIL("[SYS/PERM] Broken")),
	ROW("AUTH PLAIN: -ERR [IN-USE]", GP "-ERR [IN-USE] Mailbox is locked\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), FAIL("[IN-USE] Mailbox is locked")),
	ROW("AUTH PLAIN: -err [in-use] lower case", GP "-err [in-use] x\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), FAIL("[in-use] x")),
	ROW("AUTH PLAIN: -ERR [SYS] alone is unavailable too", GP "-ERR [SYS] x\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), FAIL("[SYS] x")),
	ROW("AUTH PLAIN: [SYSTEM] is another code", GP "-ERR [SYSTEM] x\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), NO("[SYSTEM] x")),
	ROW("AUTH PLAIN: [IN-USE without ] is no code", GP "-ERR [IN-USE x\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), NO("[IN-USE x")),
	ROW("AUTH PLAIN: code not at the start", GP "-ERR no [SYS/TEMP]\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), NO("no [SYS/TEMP]")),
	ROW("AUTH PLAIN: -ERR without text", GP "-ERR\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), NO("backend refused the login")),
	ROW("AUTH PLAIN: + is cancelled", GP "+ \r\n-ERR Authentication aborted by client.\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), SEND("*\r\n"), FAIL(CANCELLED)),
	ROW("AUTH PLAIN: bare + is cancelled", GP "+\r\n-ERR x\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), SEND("*\r\n"), FAIL(CANCELLED)),
	ROW("AUTH PLAIN: + with a challenge is cancelled", GP "+ AAAA\r\n+OK\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), SEND("*\r\n"), FAIL(CANCELLED)),
	ROW("AUTH PLAIN: + then nothing yet", GP "+ \r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), SEND("*\r\n"), MORE),
	ROW("AUTH PLAIN: garbage answer", GP "* OK\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), FAIL(UNEXPECTED)),
	ROW("AUTH PLAIN: +OKAY", GP "+OKAY\r\n", 0, SEND(CAPA), SEND(AUTH_IR), FAIL(UNEXPECTED)),
	ROW("AUTH PLAIN: +x", GP "+x\r\n", 0, SEND(CAPA), SEND(AUTH_IR), FAIL(UNEXPECTED)),
	ROW("AUTH PLAIN: empty line", GP "\r\n", 0, SEND(CAPA), SEND(AUTH_IR), FAIL(UNEXPECTED)),
	ROW("AUTH PLAIN: no answer yet", GP, 0, SEND(CAPA), SEND(AUTH_IR), MORE),
	CROW("authzid with SASL PLAIN", "admin", "alice", "s3cret", GP "+OK in\r\n", 0,
	     SEND(CAPA), SEND("AUTH PLAIN YWRtaW4AYWxpY2UAczNjcmV0\r\n"), OK("in")),
	CROW("authzid without SASL PLAIN", "admin", "alice", "s3cret", GN "+OK\r\n", 5,
	     SEND(CAPA), NO("backend cannot log in as another user")),
	CROW("authzid, SASL without PLAIN", "admin", "alice", "s3cret", G C_LOGIN, 0,
	     SEND(CAPA), NO("backend cannot log in as another user")),
	CROW("authzid, CAPA refused", "admin", "alice", "s3cret", G "-ERR no\r\n", 0,
	     SEND(CAPA), NO("backend cannot log in as another user")),

	/* ---- AUTH PLAIN whose initial response would pass 255 octets ---- */
	CROW("AUTH line of 253 octets: initial response", "", "alice", X173, GP "+OK\r\n", 0,
	     SEND(CAPA), SEND("AUTH PLAIN " P173 "\r\n"), OK("")),
	CROW("AUTH line of 257 octets: response after +", "", "alice", X174,
	     GP "+ \r\n+OK Logged in.\r\n", 0,
	     SEND(CAPA), SEND("AUTH PLAIN\r\n"), SEND(P174 "\r\n"), OK("Logged in.")),
	CROW("long response refused", "", "alice", X174, GP "+ \r\n-ERR " AUTHFAIL "\r\n", 0,
	     SEND(CAPA), SEND("AUTH PLAIN\r\n"), SEND(P174 "\r\n"), NO(AUTHFAIL)),
	CROW("AUTH alone refused", "", "alice", X174, GP "-ERR [SYS/TEMP] later\r\n", 0,
	     SEND(CAPA), SEND("AUTH PLAIN\r\n"), FAIL("[SYS/TEMP] later")),
	CROW("AUTH alone answered +OK", "", "alice", X174, GP "+OK\r\n", 0,
	     SEND(CAPA), SEND("AUTH PLAIN\r\n"), FAIL(UNEXPECTED)),
	CROW("second + after the response", "", "alice", X174, GP "+ \r\n+ \r\n", 0,
	     SEND(CAPA), SEND("AUTH PLAIN\r\n"), SEND(P174 "\r\n"), FAIL(UNEXPECTED)),

	/* ---- USER and PASS ---- */
	ROW("no SASL: USER/PASS, logged in", GN "+OK\r\n+OK Logged in.\r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), OK("Logged in.")),
	ROW("USER refused", GN "-ERR No such user\r\n", 0,
	    SEND(CAPA), SEND(USER), NO("No such user")),
	ROW("USER refused without text", GN "-ERR\r\n", 0,
	    SEND(CAPA), SEND(USER), NO("backend refused the login")),
	ROW("USER: -ERR [SYS/TEMP]", GN "-ERR [SYS/TEMP] x\r\n", 0,
	    SEND(CAPA), SEND(USER), FAIL("[SYS/TEMP] x")),
	ROW("PASS refused", GN "+OK\r\n-ERR " AUTHFAIL "\r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), NO(AUTHFAIL)),
	ROW("PASS: -ERR [SYS/TEMP]", GN "+OK\r\n-ERR [SYS/TEMP] Try later\r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), FAIL("[SYS/TEMP] Try later")),
	ROW("PASS: -ERR [IN-USE]", GN "+OK\r\n-ERR [IN-USE] Locked\r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), FAIL("[IN-USE] Locked")),
	ROW("PASS: -ERR [AUTH] is a refusal", GN "+OK\r\n-ERR [AUTH] no\r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), NO("[AUTH] no")),
	ROW("USER answered +", GN "+ \r\n", 0, SEND(CAPA), SEND(USER), FAIL(UNEXPECTED)),
	ROW("PASS answered +", GN "+OK\r\n+\r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), FAIL(UNEXPECTED)),
	ROW("USER answered with garbage", GN "OK\r\n", 0, SEND(CAPA), SEND(USER), FAIL(UNEXPECTED)),
	ROW("PASS answered with garbage", GN "+OK\r\n* BYE\r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), FAIL(UNEXPECTED)),
	ROW("waiting for PASS's answer", GN "+OK\r\n", 0, SEND(CAPA), SEND(USER), SEND(PASS), MORE),
	ROW("SASL without PLAIN: USER", G C_LOGIN "+OK\r\n+OK\r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), OK("")),
	ROW("CAPA refused: USER", G "-ERR Unknown command\r\n+OK\r\n+OK hi\r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), OK("hi")),
	ROW("CAPA refused without text", G "-ERR\r\n", 0, SEND(CAPA), SEND(USER), MORE),
	ROW("empty CAPA list", G "+OK\r\n.\r\n", 0, SEND(CAPA), SEND(USER), MORE),
	CROW("password with spaces and 8-bit bytes, PASS", "", "alice", HPASS,
	     GN "+OK\r\n+OK\r\n", 0,
	     SEND(CAPA), SEND(USER), SEND("PASS " HPASS "\r\n"), OK("")),
	CROW("password with spaces and 8-bit bytes, PLAIN", "", "alice", HPASS, GP "+OK\r\n", 0,
	     SEND(CAPA), SEND("AUTH PLAIN " HPLAIN "\r\n"), OK("")),
	CROW("8-bit user name, USER", "", "j\xc3\xbcrgen", "pw", GN "+OK\r\n", 0,
	     SEND(CAPA), SEND("USER j\xc3\xbcrgen\r\n"), SEND("PASS pw\r\n"), MORE),
	CROW("password that looks like an answer", "", "alice", "+OK x", GN "+OK\r\n-ERR no\r\n", 0,
	     SEND(CAPA), SEND(USER), SEND("PASS +OK x\r\n"), NO("no")),
	CROW("empty password, PASS", "", "alice", "", GN "+OK\r\n", 0,
	     SEND(CAPA), SEND(USER), SEND("PASS \r\n"), MORE),
	CROW("empty password, PLAIN", "", "alice", "", GP, 0,
	     SEND(CAPA), SEND("AUTH PLAIN AGFsaWNlAA==\r\n"), MORE),

	/* ---- credentials USER/PASS cannot carry ---- */
	CROW("user name with a space", "", "al ice", "s3cret", GN, 0,
	     SEND(CAPA), NO("user name cannot be sent with USER")),
	CROW("user name with CR", "", "al\rice", "s3cret", GN, 0,
	     SEND(CAPA), NO("user name cannot be sent with USER")),
	CROW("user name with LF", "", "alice\n", "s3cret", GN, 0,
	     SEND(CAPA), NO("user name cannot be sent with USER")),
	CROW("user name with NUL", "", "al\0ice", "s3cret", GN "+OK\r\n", 5,
	     SEND(CAPA), NO("user name cannot be sent with USER")),
	CROW("password with CR", "", "alice", "s3\rcret", GN, 0,
	     SEND(CAPA), NO("password cannot be sent with PASS")),
	CROW("password with LF", "", "alice", "s3cret\n", GN, 0,
	     SEND(CAPA), NO("password cannot be sent with PASS")),
	CROW("password with NUL", "", "alice", "\0", G "-ERR\r\n", 0,
	     SEND(CAPA), NO("password cannot be sent with PASS")),
	CROW("user name with a space, PLAIN", "", "al ice", "s3cret", GP "+OK\r\n", 0,
	     SEND(CAPA), SEND("AUTH PLAIN AGFsIGljZQBzM2NyZXQ=\r\n"), OK("")),
	CROW("CR and LF in the password, PLAIN", "", "alice", "s3\rcret\n", GP "+OK\r\n", 0,
	     SEND(CAPA), SEND("AUTH PLAIN AGFsaWNlAHMzDWNyZXQK\r\n"), OK("")),
	CROW("NUL in the user name, PLAIN", "", "al\0ice", "s3cret", GP, 0,
	     SEND(CAPA), NO("credentials contain a NUL byte")),
	CROW("NUL in the password, PLAIN", "", "alice", "s3\0", GP, 0,
	     SEND(CAPA), NO("credentials contain a NUL byte")),
	CROW("NUL in the authzid, PLAIN", "a\0", "alice", "s3cret", GP, 0,
	     SEND(CAPA), NO("credentials contain a NUL byte")),

	/* ---- CAPA's list ---- */
	ROW("capabilities case-insensitive", "+ok hi\r\n+ok\r\nsasl login plain\r\n.\r\n+ok\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), OK("")),
	ROW("Sasl Plain mixed case", G "+OK\r\nSasl Plain\r\n.\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), MORE),
	ROW("blanks around mechanisms", G "+OK\r\nSASL   LOGIN  PLAIN \r\n.\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), MORE),
	ROW("PLAIN over two SASL lines", G "+OK\r\nSASL LOGIN\r\nSASL PLAIN\r\n.\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), MORE),
	ROW("names that only look like PLAIN",
	    G "+OK\r\nSASL PLAINX XPLAIN PLAI\r\nSASLPLAIN\r\nXSASL PLAIN\r\nPLAIN\r\n"
	    "SASL\r\nSASL-IR PLAIN\r\nAUTH PLAIN\r\n.\r\n", 0,
	    SEND(CAPA), SEND(USER), MORE),
	ROW("byte-stuffed lines do not end the list",
	    G "+OK\r\n..\r\n...\r\n.. \r\nSASL PLAIN\r\n.\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), MORE),
	ROW("a byte-stuffed capability loses one dot", G "+OK\r\n.SASL PLAIN\r\n.\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), MORE),
	ROW("..SASL is not SASL", G "+OK\r\n..SASL PLAIN\r\n.\r\n", 0,
	    SEND(CAPA), SEND(USER), MORE),
	ROW("\" .\" and \". \" do not end the list", G "+OK\r\n .\r\n. \r\n.\r\n", 0,
	    SEND(CAPA), SEND(USER), MORE),
	ROW("list not ended yet", G "+OK\r\nSASL PLAIN\r\n", 0, SEND(CAPA), MORE),
	ROW("a SASL line after the list is an answer", GN "SASL PLAIN\r\n", 0,
	    SEND(CAPA), SEND(USER), FAIL(UNEXPECTED)),
	ROW("CAPA answered +", G "+ \r\n", 0, SEND(CAPA), FAIL(UNEXPECTED)),
	ROW("CAPA answered with garbage", G "CAPA\r\n", 0, SEND(CAPA), FAIL(UNEXPECTED)),
	ROW("CAPA answered with an empty line", G "\r\n+OK\r\n", 5, SEND(CAPA), FAIL(UNEXPECTED)),

	/* ---- greetings ---- */
	ROW("greeting -ERR", "-ERR [SYS/TEMP] Too many connections\r\n", 0,
	    FAIL("[SYS/TEMP] Too many connections")),
	ROW("greeting -ERR with an ordinary text", "-ERR go away\r\n+OK\r\n", 5, FAIL("go away")),
	ROW("greeting -ERR without text", "-ERR\r\n", 0, FAIL("backend refused the connection")),
	ROW("greeting +ok lower case", "+ok\r\n", 0, SEND(CAPA), MORE),
	ROW("greeting with an APOP timestamp", "+OK POP3 ready <1896.697170952@dbc.mtview.ca.us>\r\n",
	    0, SEND(CAPA), MORE),
	ROW("IMAP greeting", "* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n", 0, FAIL(BADGREET)),
	ROW("SMTP greeting", "220 mail.example.com ESMTP\r\n", 0, FAIL(BADGREET)),
	ROW("HTTP", "HTTP/1.1 400 Bad Request\r\n\r\n", 2, FAIL(BADGREET)),
	ROW("+OKAY", "+OKAY\r\n", 0, FAIL(BADGREET)),
	ROW("-ERROR", "-ERROR x\r\n", 0, FAIL(BADGREET)),
	ROW("+ greeting", "+ OK\r\n", 0, FAIL(BADGREET)),
	ROW("empty line", "\r\n" G, sizeof(G) - 1, FAIL(BADGREET)),
	ROW("tab after +OK", "+OK\tready\r\n", 0, FAIL(BADGREET)),
	ROW("greeting, no line end yet", "+OK Dovecot", 0, MORE),

	/* ---- the end and what follows it ---- */
	ROW("+OK alone", GN "+OK\r\n+OK\r\n", 0, SEND(CAPA), SEND(USER), SEND(PASS), OK("")),
	ROW("+OK and one space", GN "+OK\r\n+OK \r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), OK("")),
	ROW("OK text keeps blanks and 8-bit bytes", GP "+OK  Willkommen,\xc3\xa4 \r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), OK(" Willkommen,\xc3\xa4 ")),
	ROW("client bytes after OK stay", GP "+OK Logged in.\r\n+OK 2 messages\r\n", 16,
	    SEND(CAPA), SEND(AUTH_IR), OK("Logged in.")),
	ROW("partial line after OK stays", GP "+OK in\r\n+O", 2,
	    SEND(CAPA), SEND(AUTH_IR), OK("in")),
	ROW("NUL after OK is the client's", GP "+OK in\r\n\0\r", 2,
	    SEND(CAPA), SEND(AUTH_IR), OK("in")),
	ROW("bytes after NO stay", GN "+OK\r\n-ERR no\r\n+OK\r\n", 5,
	    SEND(CAPA), SEND(USER), SEND(PASS), NO("no")),
	ROW("pipelined: bytes after each answer wait", G "+OK\r\n.\r\n+OK\r\n+OK\r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), OK("")),

	/* ---- line framing ---- */
	ROW("bare LF", "+OK hi\n+OK\nSASL PLAIN\n.\n+OK done\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), OK("done")),
	ROW("bare LF and CRLF mixed", "+OK hi\n+OK\r\nUSER\n.\r\n+OK\n+OK a b\r\n", 0,
	    SEND(CAPA), SEND(USER), SEND(PASS), OK("a b")),
	ROW("NUL in the greeting", "+OK he\0llo\r\n", 5, FAIL("backend sent a NUL byte")),
	ROW("NUL first", "\0+OK\r\n", 5, FAIL("backend sent a NUL byte")),
	ROW("NUL after CR", "+OK hi\r\0\n", 1, FAIL("backend sent a NUL byte")),
	ROW("NUL in CAPA's list", G "+OK\r\nSA\0SL PLAIN\r\n.\r\n", 13,
	    SEND(CAPA), FAIL("backend sent a NUL byte")),
	ROW("NUL in the answer", GP "+OK \0\r\n", 2,
	    SEND(CAPA), SEND(AUTH_IR), FAIL("backend sent a NUL byte")),
	ROW("bare CR", "+OK hi\rthere\r\n", 6, FAIL("backend sent a CR without LF")),
	ROW("CR CR LF", "+OK hi\r\r\n", 1, FAIL("backend sent a CR without LF")),
	ROW("bare CR in CAPA's list", G "+OK\r\nSASL\rPLAIN\r\n.\r\n", 9,
	    SEND(CAPA), FAIL("backend sent a CR without LF")),
	ROW("bare CR in the answer", GN "+OK\r\n-ERR a\rb\r\n", 2,
	    SEND(CAPA), SEND(USER), SEND(PASS), FAIL("backend sent a CR without LF")),
};

#define NROWS (sizeof rows / sizeof rows[0])

/* ---- the runner ---- */

static const char *rc_name(enum bl_rc rc)
{
	static const char *const names[] = {
		[BL_NEED_MORE] = "NEED_MORE", [BL_SEND] = "SEND", [BL_OK] = "OK",
		[BL_NO] = "NO", [BL_FAIL] = "FAIL", [BL_STARTTLS] = "STARTTLS",
	};

	return (unsigned)rc < sizeof names / sizeof names[0] ? names[rc] : "?";
}

/* n bytes at p, printable, for failure messages; four buffers in turn. */
static const char *show(const void *p, size_t n)
{
	static char bufs[4][600];
	static unsigned next;
	const unsigned char *s = p;
	char *o = bufs[next++ % 4];
	size_t j = 0;

	for (size_t i = 0; i < n && j + 5 < sizeof bufs[0]; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
			o[j++] = (char)s[i];
		else
			j += (size_t)snprintf(o + j, sizeof bufs[0] - j, "\\x%02x", s[i]);
	}
	o[j] = '\0';
	return o;
}

/* Are the n bytes at p all zero? */
static int zeroed(const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		if (s[i] != 0)
			return 0;
	return 1;
}

/* Everything pop3_bl_free must have wiped. */
static void assert_freed(const struct pop3_blogin *b)
{
	assert_true(zeroed(b->user, sizeof b->user));
	assert_true(zeroed(b->pass, sizeof b->pass));
	assert_true(zeroed(b->authzid, sizeof b->authzid));
	assert_true(zeroed(b->line, sizeof b->line));
	assert_true(zeroed(b->out, sizeof b->out));
	assert_true(zeroed(b->text, sizeof b->text));
	assert_int_equal(b->user_len + b->pass_len + b->authzid_len + b->line_len + b->out_len, 0);
	assert_int_equal(b->sasl_plain, 0);
}

struct run {
	const struct row *r;
	char how[32];                 /* "whole", "bytes", "split 7" */
	struct pop3_blogin b;
	size_t *offs;                 /* where each result ended, shared by all runs */
	size_t k;                     /* results seen */
	enum bl_rc last;
	int done;                     /* OK, NO or FAIL seen */
	size_t end;                   /* its offset */
	int tls;                      /* STARTTLS seen */
};

/* How many results the row lists, a final MORE included. */
static size_t row_results(const struct row *r)
{
	size_t n = 0;

	while (n < MAX_RES && r->res[n].set)
		n++;
	return n;
}

/* Are the n bytes at p exactly the string s? */
static int same(const void *p, size_t n, const char *s)
{
	return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* A SEND of a STLS row before BL_STARTTLS: only CAPA or STLS, never a
 * credential. */
static void check_clear(const struct run *u)
{
	const struct row *r = u->r;
	const uint8_t *out = u->b.out;
	size_t n = u->b.out_len;

	if ((r->user_len > 0 && memmem(out, n, r->user, r->user_len) != NULL) ||
	    (r->pass_len > 0 && memmem(out, n, r->pass, r->pass_len) != NULL))
		fail_msg("%s [%s]: a credential sent before TLS: \"%s\"", r->name, u->how,
		         show(out, n));
	if (!same(out, n, "CAPA\r\n") && !same(out, n, "STLS\r\n"))
		fail_msg("%s [%s]: \"%s\" sent before TLS", r->name, u->how, show(out, n));
}

/* Checks result u->k, rc, which ended at input offset end. */
static void check(struct run *u, enum bl_rc rc, size_t end)
{
	const struct row *r = u->r;
	const struct xres *x;

	if (u->k >= row_results(r) || r->res[u->k].rc == BL_NEED_MORE)
		fail_msg("%s [%s]: extra result %zu %s at offset %zu (text \"%s\", out \"%s\")",
		         r->name, u->how, u->k, rc_name(rc), end, show(u->b.text, strlen(u->b.text)),
		         show(u->b.out, u->b.out_len));
	x = &r->res[u->k];
	if (rc != x->rc)
		fail_msg("%s [%s] result %zu: %s at offset %zu, expected %s (text \"%s\")",
		         r->name, u->how, u->k, rc_name(rc), end, rc_name(x->rc),
		         show(u->b.text, strlen(u->b.text)));
	if (u->offs[u->k] == SIZE_MAX)
		u->offs[u->k] = end;
	else if (u->offs[u->k] != end)
		fail_msg("%s [%s] result %zu: ended at offset %zu, the whole run at %zu",
		         r->name, u->how, u->k, end, u->offs[u->k]);
	if (rc == BL_SEND) {
		if (u->b.out_len != x->len || memcmp(u->b.out, x->bytes, x->len) != 0)
			fail_msg("%s [%s] result %zu: sent \"%s\" (%zu), expected \"%s\" (%zu)",
			         r->name, u->how, u->k, show(u->b.out, u->b.out_len), u->b.out_len,
			         show(x->bytes, x->len), x->len);
		if (r->starttls && !u->tls)
			check_clear(u);
	} else if (rc == BL_STARTTLS) {
		if (u->b.out_len != 0 || u->tls)
			fail_msg("%s [%s] result %zu: STARTTLS with %zu bytes to send, or twice",
			         r->name, u->how, u->k, u->b.out_len);
		u->tls = 1;
	} else {
		if (strlen(u->b.text) != x->len || memcmp(u->b.text, x->bytes, x->len) != 0)
			fail_msg("%s [%s] result %zu: text \"%s\", expected \"%s\"", r->name, u->how,
			         u->k, show(u->b.text, strlen(u->b.text)), show(x->bytes, x->len));
		if (u->b.out_len != 0)
			fail_msg("%s [%s] result %zu: %s with %zu bytes to send", r->name, u->how,
			         u->k, rc_name(rc), u->b.out_len);
		if (u->b.pass_len != 0 || !zeroed(u->b.pass, sizeof u->b.pass))
			fail_msg("%s [%s] result %zu: password kept after %s", r->name, u->how, u->k,
			         rc_name(rc));
		u->done = 1;
		u->end = end;
	}
	u->k++;
}

/* BL_STARTTLS ended at offset end: the session runs the handshake and
 * tells the machine, whose answer is the next result at the same offset. */
static void tls_started(struct run *u, size_t end)
{
	enum bl_rc rc = pop3_bl_tls_started(&u->b);

	u->last = rc;
	check(u, rc, end);
}

/* Feeds input bytes [start, start + len) as a session would: after each
 * result again from buf + used, until the login ends. */
static void feed(struct run *u, size_t start, size_t len)
{
	while (len > 0 && !u->done) {
		const uint8_t *buf = (const uint8_t *)u->r->in + start;
		size_t prev = u->b.out_len, used = SIZE_MAX;
		enum bl_rc rc = pop3_bl_feed(&u->b, buf, len, &used);

		u->last = rc;
		if (used > len || (rc == BL_NEED_MORE && used != len) ||
		    (rc != BL_NEED_MORE && used == 0))
			fail_msg("%s [%s]: %s used %zu of %zu bytes at offset %zu",
			         u->r->name, u->how, rc_name(rc), used, len, start);
		/* the previous request went out: nothing of it may stay */
		if (rc != BL_SEND && (u->b.out_len != 0 || !zeroed(u->b.out, prev)))
			fail_msg("%s [%s]: out not wiped after %s at offset %zu", u->r->name, u->how,
			         rc_name(rc), start);
		if (rc == BL_SEND && prev > u->b.out_len &&
		    !zeroed(u->b.out + u->b.out_len, prev - u->b.out_len))
			fail_msg("%s [%s]: an older request left bytes behind the new one",
			         u->r->name, u->how);
		if (rc == BL_NEED_MORE)
			return;
		start += used;
		len -= used;
		check(u, rc, start);
		if (rc == BL_STARTTLS)
			tls_started(u, start);
	}
}

/* All input was fed: every result seen, the login ended tail bytes
 * before the end, or (a final MORE) an empty feed still waits. */
static void finish(struct run *u)
{
	const struct row *r = u->r;
	size_t n = row_results(r);
	int more = n > 0 && r->res[n - 1].rc == BL_NEED_MORE;

	if (u->k != n - (size_t)more)
		fail_msg("%s [%s]: %zu results, expected %zu", r->name, u->how, u->k,
		         n - (size_t)more);
	if (more) {
		size_t prev = u->b.out_len, used = SIZE_MAX;
		enum bl_rc rc = pop3_bl_feed(&u->b, (const uint8_t *)"", 0, &used);

		if (u->done || rc != BL_NEED_MORE || used != 0)
			fail_msg("%s [%s]: input ended after %s, then %s used %zu, expected NEED_MORE",
			         r->name, u->how, rc_name(u->last), rc_name(rc), used);
		if (u->b.out_len != 0 || !zeroed(u->b.out, prev))
			fail_msg("%s [%s]: out not wiped by an empty feed", r->name, u->how);
		if (r->tail != 0)
			fail_msg("%s: a row ending in NEED_MORE has no tail", r->name);
	} else if (!u->done) {
		fail_msg("%s [%s]: the login did not end", r->name, u->how);
	}
	if (u->done && u->end != r->len - r->tail)
		fail_msg("%s [%s]: ended at offset %zu, expected %zu (tail %zu)", r->name, u->how,
		         u->end, r->len - r->tail, r->tail);
}

enum how { WHOLE, BYTES, SPLIT };

static void run(const struct row *r, enum how how, size_t split, size_t *offs)
{
	struct run *u = calloc(1, sizeof *u);

	assert_non_null(u);
	u->r = r;
	u->offs = offs;
	u->last = BL_NEED_MORE;
	if (how == WHOLE)
		snprintf(u->how, sizeof u->how, "whole");
	else if (how == BYTES)
		snprintf(u->how, sizeof u->how, "bytes");
	else
		snprintf(u->how, sizeof u->how, "split %zu", split);
	assert_int_equal(pop3_bl_init(&u->b, r->authzid, r->authzid_len, r->user, r->user_len,
	                              r->pass, r->pass_len), 0);
	if (r->starttls)
		pop3_bl_set_starttls(&u->b);
	if (r->xclient != NULL)
		assert_int_equal(pop3_bl_set_xclient(&u->b, r->xclient), 0);
	if (how == WHOLE) {
		feed(u, 0, r->len);
	} else if (how == BYTES) {
		for (size_t i = 0; i < r->len; i++)
			feed(u, i, 1);
	} else {
		feed(u, 0, split);
		feed(u, split, r->len - split);
	}
	finish(u);
	pop3_bl_free(&u->b);
	assert_freed(&u->b);
	free(u);
}

/* One row: whole, byte by byte, and at every split. */
static void run_row(const struct row *r)
{
	size_t offs[MAX_RES];

	for (size_t i = 0; i < MAX_RES; i++)
		offs[i] = SIZE_MAX;
	run(r, WHOLE, 0, offs);
	run(r, BYTES, 0, offs);
	for (size_t s = 1; s < r->len; s++)
		run(r, SPLIT, s, offs);
}

static void test_row(void **state)
{
	run_row(*state);
}

/* ---- rows built at run time ---- */

/* Sets a row's transcript to prefix, n copies of c, then suffix. */
static char *long_input(struct row *r, const char *prefix, size_t n, char c, const char *suffix)
{
	size_t a = strlen(prefix), z = strlen(suffix);
	char *in = malloc(a + n + z + 1);

	assert_non_null(in);
	memcpy(in, prefix, a);
	memset(in + a, c, n);
	memcpy(in + a + n, suffix, z + 1);
	r->in = in;
	r->len = a + n + z;
	return in;
}

/* A row for alice/s3cret with no results yet. */
static struct row plain_row(const char *name)
{
	struct row r = {
		.name = name, .authzid = "", .user = "alice", .user_len = 5,
		.pass = "s3cret", .pass_len = 6,
	};

	return r;
}

#define R(rc_, s) (struct xres){ 1, rc_, s, sizeof(s) - 1 }

/* Lines of POP3_BL_LINE_MAX bytes pass (with CRLF or LF); one byte more
 * fails at that byte, in the greeting, in CAPA's list and in an answer. */
static void test_line_max(void **state)
{
	const size_t pre = strlen("+OK ");
	struct row r;
	char *in;

	(void)state;

	r = plain_row("greeting of POP3_BL_LINE_MAX bytes, CRLF");
	in = long_input(&r, "+OK ", POP3_BL_LINE_MAX - pre, 'x', "\r\n");
	r.res[0] = R(BL_SEND, CAPA);
	r.res[1] = R(BL_NEED_MORE, "");
	run_row(&r);
	free(in);

	r = plain_row("greeting of POP3_BL_LINE_MAX bytes, LF");
	in = long_input(&r, "+OK ", POP3_BL_LINE_MAX - pre, 'x', "\n");
	r.res[0] = R(BL_SEND, CAPA);
	r.res[1] = R(BL_NEED_MORE, "");
	run_row(&r);
	free(in);

	r = plain_row("greeting of POP3_BL_LINE_MAX + 1 bytes");
	in = long_input(&r, "+OK ", POP3_BL_LINE_MAX - pre + 1, 'x', "\r\n");
	r.tail = 2;
	r.res[0] = R(BL_FAIL, "backend line too long");
	run_row(&r);
	free(in);

	r = plain_row("POP3_BL_LINE_MAX bytes, then CR CR LF");
	in = long_input(&r, "+OK ", POP3_BL_LINE_MAX - pre, 'x', "\r\r\n");
	r.tail = 1;
	r.res[0] = R(BL_FAIL, "backend sent a CR without LF");
	run_row(&r);
	free(in);

	r = plain_row("CAPA line of POP3_BL_LINE_MAX bytes");
	in = long_input(&r, G "+OK\r\nSASL PLAIN ", POP3_BL_LINE_MAX - strlen("SASL PLAIN "), 'y',
	                "\r\n.\r\n");
	r.res[0] = R(BL_SEND, CAPA);
	r.res[1] = R(BL_SEND, AUTH_IR);
	r.res[2] = R(BL_NEED_MORE, "");
	run_row(&r);
	free(in);

	r = plain_row("CAPA line of POP3_BL_LINE_MAX + 1 bytes");
	in = long_input(&r, G "+OK\r\nSASL PLAIN ", POP3_BL_LINE_MAX - strlen("SASL PLAIN ") + 1,
	                'y', "\r\n.\r\n");
	r.tail = 5;
	r.res[0] = R(BL_SEND, CAPA);
	r.res[1] = R(BL_FAIL, "backend line too long");
	run_row(&r);
	free(in);

	r = plain_row("answer of POP3_BL_LINE_MAX + 1 bytes");
	in = long_input(&r, GP "-ERR ", POP3_BL_LINE_MAX - strlen("-ERR ") + 1, 'z', "\r\n");
	r.tail = 2;
	r.res[0] = R(BL_SEND, CAPA);
	r.res[1] = R(BL_SEND, AUTH_IR);
	r.res[2] = R(BL_FAIL, "backend line too long");
	run_row(&r);
	free(in);
}

/* OK, NO and FAIL texts are cut at POP3_BL_TEXT_MAX bytes. */
static void test_text_max(void **state)
{
	static const struct {
		const char *prefix;
		enum bl_rc rc;
		size_t code;              /* bytes of text before the t's */
	} cases[] = {
		{ GP "+OK ", BL_OK, 0 },
		{ GP "-ERR ", BL_NO, 0 },
		{ GP "-ERR [SYS/TEMP] ", BL_FAIL, 11 },
		{ "-ERR ", BL_FAIL, 0 },
	};
	static const size_t lens[] = {
		POP3_BL_TEXT_MAX - 1, POP3_BL_TEXT_MAX, POP3_BL_TEXT_MAX + 1, 3 * POP3_BL_TEXT_MAX,
	};
	char *want = malloc(POP3_BL_TEXT_MAX + 1);

	(void)state;

	assert_non_null(want);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
			size_t tlen = cases[i].code + lens[j], wlen;
			struct row r = plain_row("text cut");
			size_t k = 0;
			char *in;

			in = long_input(&r, cases[i].prefix, lens[j], 't', "\r\n");
			wlen = tlen < POP3_BL_TEXT_MAX ? tlen : POP3_BL_TEXT_MAX;
			memcpy(want, "[SYS/TEMP] ", cases[i].code);
			memset(want + cases[i].code, 't', wlen - cases[i].code);
			if (cases[i].prefix[0] == '+') {
				r.res[k++] = R(BL_SEND, CAPA);
				r.res[k++] = R(BL_SEND, AUTH_IR);
			}
			r.res[k] = (struct xres){ 1, cases[i].rc, want, wlen };
			run_row(&r);
			free(in);
		}
	}
	free(want);
}

/* ---- credentials at their limits ---- */

/* Initialises with fields of the given lengths, filled with z, u and p. */
static int init_sized(struct pop3_blogin *b, size_t zl, size_t ul, size_t pl)
{
	static char z[DLG_CRED_MAX + 2], u[DLG_CRED_MAX + 2], p[DLG_CRED_MAX + 2];

	memset(z, 'z', sizeof z);
	memset(u, 'u', sizeof u);
	memset(p, 'p', sizeof p);
	return pop3_bl_init(b, z, zl, u, ul, p, pl);
}

/* pop3_bl_init takes DLG_CRED_MAX bytes in each field, refuses one more
 * (and then never logs in), and treats a NULL authzid as none. */
static void test_init_limits(void **state)
{
	static const struct {
		size_t z, u, p;
		int rc;
	} cases[] = {
		{ 0, 0, 0, 0 },
		{ DLG_CRED_MAX, DLG_CRED_MAX, DLG_CRED_MAX, 0 },
		{ DLG_CRED_MAX + 1, 1, 1, -1 },
		{ 0, DLG_CRED_MAX + 1, 1, -1 },
		{ 0, 1, DLG_CRED_MAX + 1, -1 },
	};
	struct pop3_blogin *b = malloc(sizeof *b);
	size_t used = 99;

	(void)state;

	assert_non_null(b);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (init_sized(b, cases[i].z, cases[i].u, cases[i].p) != cases[i].rc)
			fail_msg("case %zu: rc not %d", i, cases[i].rc);
		if (cases[i].rc == 0) {
			assert_int_equal(b->authzid_len, cases[i].z);
			assert_int_equal(b->user_len, cases[i].u);
			assert_int_equal(b->pass_len, cases[i].p);
			assert_int_equal(b->user[b->user_len], '\0');
			assert_int_equal(b->pass[b->pass_len], '\0');
			assert_int_equal(b->authzid[b->authzid_len], '\0');
		} else {
			assert_true(zeroed(b->user, sizeof b->user));
			assert_true(zeroed(b->pass, sizeof b->pass));
			assert_true(zeroed(b->authzid, sizeof b->authzid));
			assert_int_equal(pop3_bl_feed(b, (const uint8_t *)G, strlen(G), &used), BL_FAIL);
			assert_int_equal(used, 0);
			assert_int_equal(b->out_len, 0);
		}
		pop3_bl_free(b);
	}
	assert_int_equal(pop3_bl_init(b, NULL, 5, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(b->authzid_len, 0);
	assert_int_equal(pop3_bl_feed(b, (const uint8_t *)GN, strlen(GN), &used), BL_SEND);
	assert_int_equal(used, strlen(G));
	assert_int_equal(pop3_bl_feed(b, (const uint8_t *)C_NOSASL, strlen(C_NOSASL), &used),
	                 BL_SEND);
	assert_int_equal(used, strlen(C_NOSASL));
	assert_int_equal(b->out_len, strlen(USER));
	assert_memory_equal(b->out, USER, strlen(USER));
	pop3_bl_free(b);
	free(b);
}

/* Feeds a transcript that must end with one SEND; returns out's length. */
static size_t feed_to_send(struct pop3_blogin *b, const char *in)
{
	size_t off = 0, used;
	enum bl_rc rc;

	do {
		rc = pop3_bl_feed(b, (const uint8_t *)in + off, strlen(in) - off, &used);
		off += used;
	} while (rc == BL_SEND && off < strlen(in));
	assert_int_equal(rc, BL_SEND);
	assert_int_equal(off, strlen(in));
	return b->out_len;
}

/* The largest requests fit: the PLAIN response with three fields of
 * DLG_CRED_MAX bytes (after "AUTH PLAIN" and "+ ", decoded to check),
 * USER and PASS of DLG_CRED_MAX bytes. */
static void test_max_creds(void **state)
{
	struct pop3_blogin *b = malloc(sizeof *b);
	uint8_t *want = malloc(sizeof b->out), *dec = malloc(sizeof b->out);
	const size_t plain = 3 * DLG_CRED_MAX + 2, b64 = (plain + 2) / 3 * 4;

	(void)state;

	assert_non_null(b);
	assert_non_null(want);
	assert_non_null(dec);

	assert_int_equal(init_sized(b, DLG_CRED_MAX, DLG_CRED_MAX, DLG_CRED_MAX), 0);
	assert_int_equal(feed_to_send(b, GP), strlen("AUTH PLAIN\r\n"));
	assert_memory_equal(b->out, "AUTH PLAIN\r\n", strlen("AUTH PLAIN\r\n"));
	assert_int_equal(feed_to_send(b, "+ \r\n"), b64 + 2);
	assert_memory_equal(b->out + b64, "\r\n", 2);
	assert_int_equal(sasl_b64_decode((const char *)b->out, b64, dec, sizeof b->out), plain);
	memset(want, 'z', DLG_CRED_MAX);
	want[DLG_CRED_MAX] = '\0';
	memset(want + DLG_CRED_MAX + 1, 'u', DLG_CRED_MAX);
	want[2 * DLG_CRED_MAX + 1] = '\0';
	memset(want + 2 * DLG_CRED_MAX + 2, 'p', DLG_CRED_MAX);
	assert_memory_equal(dec, want, plain);
	pop3_bl_free(b);

	assert_int_equal(init_sized(b, 0, DLG_CRED_MAX, DLG_CRED_MAX), 0);
	assert_int_equal(feed_to_send(b, GN), 5 + DLG_CRED_MAX + 2);
	memcpy(want, "USER ", 5);
	memset(want + 5, 'u', DLG_CRED_MAX);
	memcpy(want + 5 + DLG_CRED_MAX, "\r\n", 2);
	assert_memory_equal(b->out, want, 5 + DLG_CRED_MAX + 2);
	assert_int_equal(feed_to_send(b, "+OK\r\n"), 5 + DLG_CRED_MAX + 2);
	memcpy(want, "PASS ", 5);
	memset(want + 5, 'p', DLG_CRED_MAX);
	assert_memory_equal(b->out, want, 5 + DLG_CRED_MAX + 2);
	pop3_bl_free(b);

	free(dec);
	free(want);
	free(b);
}

/* ---- lifetime ---- */

/* The password is gone from b->pass once it went out for the last time:
 * with PASS, with the initial response, with the response after "+",
 * and when "+" to the initial response is cancelled. */
static void test_pass_forgotten_once_sent(void **state)
{
	static const struct {
		const char *pass, *in, *last;
	} cases[] = {
		{ "s3cret", GN "+OK\r\n", PASS },
		{ "s3cret", GP, AUTH_IR },
		{ X174, GP "+ \r\n", P174 "\r\n" },
		{ "s3cret", GP "+ \r\n", "*\r\n" },
	};
	struct pop3_blogin *b = malloc(sizeof *b);

	(void)state;

	assert_non_null(b);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t used;

		assert_int_equal(pop3_bl_init(b, "", 0, "alice", 5, cases[i].pass,
		                              strlen(cases[i].pass)), 0);
		assert_int_equal(feed_to_send(b, cases[i].in), strlen(cases[i].last));
		assert_memory_equal(b->out, cases[i].last, strlen(cases[i].last));
		if (b->pass_len != 0 || !zeroed(b->pass, sizeof b->pass))
			fail_msg("case %zu: password kept after its last request", i);
		assert_int_equal(pop3_bl_feed(b, (const uint8_t *)"", 0, &used), BL_NEED_MORE);
		assert_true(zeroed(b->out, sizeof b->out));
		assert_memory_equal(b->user, "alice", 6);
		pop3_bl_free(b);
	}
	free(b);
}

/* A zero-length feed wipes the request the last SEND asked for. */
static void test_empty_feed_wipes_out(void **state)
{
	struct pop3_blogin *b = malloc(sizeof *b);
	size_t used = 99;

	(void)state;

	assert_non_null(b);
	assert_int_equal(pop3_bl_init(b, "", 0, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(feed_to_send(b, GP), strlen(AUTH_IR));
	assert_int_equal(pop3_bl_feed(b, (const uint8_t *)"", 0, &used), BL_NEED_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(b->out_len, 0);
	assert_true(zeroed(b->out, sizeof b->out));
	pop3_bl_free(b);
	free(b);
}

/* After OK, NO or FAIL a feed consumes nothing and fails. */
static void test_feed_after_end(void **state)
{
	static const char *const ins[] = {
		GP "+OK\r\n", GN "+OK\r\n-ERR\r\n", "-ERR\r\n", GP "+\r\n-ERR\r\n",
	};
	struct pop3_blogin *b = malloc(sizeof *b);

	(void)state;

	assert_non_null(b);
	for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) {
		size_t used, off = 0;
		enum bl_rc rc;

		assert_int_equal(pop3_bl_init(b, "", 0, "alice", 5, "s3cret", 6), 0);
		do {
			rc = pop3_bl_feed(b, (const uint8_t *)ins[i] + off, strlen(ins[i]) - off, &used);
			off += used;
		} while (rc == BL_SEND);
		assert_true(rc == BL_OK || rc == BL_NO || rc == BL_FAIL);
		assert_int_equal(off, strlen(ins[i]));
		used = 99;
		assert_int_equal(pop3_bl_feed(b, (const uint8_t *)"+OK\r\n", 5, &used), BL_FAIL);
		assert_int_equal(used, 0);
		assert_string_equal(b->text, "the backend login has ended");
		assert_int_equal(b->out_len, 0);
		pop3_bl_free(b);
	}
	free(b);
}

/* pop3_bl_free mid-login wipes everything, a partial line included; the
 * machine then refuses to go on. */
static void test_free_mid_login(void **state)
{
	struct pop3_blogin *b = malloc(sizeof *b);
	size_t used = 99;

	(void)state;

	assert_non_null(b);
	assert_int_equal(pop3_bl_init(b, "admin", 5, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(pop3_bl_feed(b, (const uint8_t *)G "+OK\r\nSASL PL", strlen(G) + 12, &used),
	                 BL_SEND);
	assert_int_equal(used, strlen(G));
	assert_int_equal(pop3_bl_feed(b, (const uint8_t *)"+OK\r\nSASL PL", 12, &used),
	                 BL_NEED_MORE);
	assert_int_equal(b->line_len, 7);
	pop3_bl_free(b);
	assert_freed(b);
	used = 99;
	assert_int_equal(pop3_bl_feed(b, (const uint8_t *)"AIN\r\n.\r\n", 8, &used), BL_FAIL);
	assert_int_equal(used, 0);
	assert_int_equal(b->out_len, 0);

	assert_int_equal(pop3_bl_init(b, "admin", 5, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(feed_to_send(b, GP), strlen("AUTH PLAIN YWRtaW4AYWxpY2UAczNjcmV0\r\n"));
	pop3_bl_free(b);
	assert_freed(b);
	free(b);
}

/* sasl_plain records SASL PLAIN in CAPA's list, and only that. */
static void test_sasl_plain_bit(void **state)
{
	static const struct {
		const char *list;
		unsigned plain;
	} cases[] = {
		{ C_PLAIN, 1 },
		{ C_NOSASL, 0 },
		{ C_LOGIN, 0 },
		{ "+OK\r\nsasl plain\r\n.\r\n", 1 },
		{ "+OK\r\nSASL LOGIN\r\nSASL PLAINX\r\n.\r\n", 0 },
	};
	struct pop3_blogin *b = malloc(sizeof *b);

	(void)state;

	assert_non_null(b);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t used;

		assert_int_equal(pop3_bl_init(b, "", 0, "alice", 5, "s3cret", 6), 0);
		assert_int_equal(feed_to_send(b, G), strlen(CAPA));
		assert_int_equal(pop3_bl_feed(b, (const uint8_t *)cases[i].list,
		                              strlen(cases[i].list), &used), BL_SEND);
		assert_int_equal(used, strlen(cases[i].list));
		if (b->sasl_plain != cases[i].plain)
			fail_msg("case %zu: sasl_plain %u, expected %u", i, b->sasl_plain,
			         cases[i].plain);
		pop3_bl_free(b);
	}
	free(b);
}


/* Feeds text whole; checks the result and, for SEND, the bytes. */
static void feed_expect(struct pop3_blogin *b, const char *in, enum bl_rc want, const char *bytes)
{
	size_t used = 0;
	enum bl_rc rc = pop3_bl_feed(b, (const uint8_t *)in, strlen(in), &used);

	assert_int_equal(rc, want);
	assert_int_equal(used, strlen(in));
	if (want == BL_SEND) {
		assert_int_equal(b->out_len, strlen(bytes));
		assert_memory_equal(b->out, bytes, b->out_len);
	} else if (bytes) {
		assert_string_equal(b->text, bytes);
	}
}

/* XCLIENT goes out after CAPA when offered, its answer does not matter,
 * and it is not sent to a backend that does not offer it. */
static void test_xclient(void **state)
{
	struct pop3_blogin b;

	(void)state;
	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(pop3_bl_set_xclient(&b, "ADDR=192.0.2.7 PORT=4321"), 0);
	feed_expect(&b, "+OK Dovecot ready.\r\n", BL_SEND, CAPA);
	feed_expect(&b, "+OK\r\nCAPA\r\nXCLIENT\r\nSASL PLAIN\r\n.\r\n", BL_SEND,
	            "XCLIENT ADDR=192.0.2.7 PORT=4321\r\n");
	feed_expect(&b, "+OK Updated\r\n", BL_SEND, AUTH_IR);
	feed_expect(&b, "+OK Logged in.\r\n", BL_OK, "Logged in.");
	pop3_bl_free(&b);

	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(pop3_bl_set_xclient(&b, "ADDR=192.0.2.7 PORT=4321"), 0);
	feed_expect(&b, "+OK Dovecot ready.\r\n", BL_SEND, CAPA);
	feed_expect(&b, "+OK\r\nXCLIENT\r\n.\r\n", BL_SEND,
	            "XCLIENT ADDR=192.0.2.7 PORT=4321\r\n");
	feed_expect(&b, "-ERR not trusted\r\n", BL_SEND, "USER alice\r\n");
	pop3_bl_free(&b);

	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(pop3_bl_set_xclient(&b, "ADDR=192.0.2.7 PORT=4321"), 0);
	feed_expect(&b, "+OK Dovecot ready.\r\n", BL_SEND, CAPA);
	feed_expect(&b, "+OK\r\nSASL PLAIN\r\n.\r\n", BL_SEND, AUTH_IR);
	pop3_bl_free(&b);

	/* Dovecot 2.3: in the greeting's code, not in CAPA */
	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(pop3_bl_set_xclient(&b, "ADDR=192.0.2.7 PORT=4321"), 0);
	feed_expect(&b, "+OK [XCLIENT] Dovecot (Debian) ready.\r\n", BL_SEND, CAPA);
	feed_expect(&b, "+OK\r\nSASL PLAIN\r\n.\r\n", BL_SEND,
	            "XCLIENT ADDR=192.0.2.7 PORT=4321\r\n");
	feed_expect(&b, "+OK Updated\r\n", BL_SEND, AUTH_IR);
	pop3_bl_free(&b);

	/* a look-alike code is not it */
	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(pop3_bl_set_xclient(&b, "ADDR=192.0.2.7 PORT=4321"), 0);
	feed_expect(&b, "+OK [XCLIENTS] ready.\r\n", BL_SEND, CAPA);
	feed_expect(&b, "+OK\r\nSASL PLAIN\r\n.\r\n", BL_SEND, AUTH_IR);
	pop3_bl_free(&b);
}


/* ---- STLS to the backend ---- */

/* Dovecot on port 110 with disable_plaintext_auth: STLS and no USER or
 * SASL PLAIN in clear; over TLS C_PLAIN. */
#define C_CLEAR   "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n" \
                  "STLS\r\nSASL\r\n.\r\n"
#define STLS_OK   "+OK Begin TLS negotiation now.\r\n"
#define STLS      "STLS\r\n"
#define XCLIENT   "XCLIENT ADDR=192.0.2.7 PORT=4321\r\n"
#define NO_STLS   "backend does not offer STLS"

/* XROW(name, xclient, authzid, user, pass, transcript, tail, results...):
 * a STLS row; TROW logs in as alice/s3cret without XCLIENT. */
#define XROW(nm, x, z, u, p, input, tl, ...) \
	{ .name = nm, .authzid = z, .authzid_len = sizeof(z) - 1, \
	  .user = u, .user_len = sizeof(u) - 1, .pass = p, .pass_len = sizeof(p) - 1, \
	  .in = input, .len = sizeof(input) - 1, .tail = tl, .res = { __VA_ARGS__ }, \
	  .starttls = 1, .xclient = x }
#define TROW(nm, input, tl, ...) XROW(nm, NULL, "", "alice", "s3cret", input, tl, __VA_ARGS__)
#define XC "ADDR=192.0.2.7 PORT=4321"

static const struct row tls_rows[] = {
	/* ---- the upgrade, then the login on what TLS says ---- */
	TROW("Dovecot: STLS, SASL PLAIN only over TLS",
	     G C_CLEAR STLS_OK C_PLAIN "+OK Logged in.\r\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), SEND(AUTH_IR), OK("Logged in.")),
	TROW("SASL PLAIN only in clear: USER and PASS over TLS",
	     G "+OK\r\nSTLS\r\nSASL PLAIN LOGIN\r\nUSER\r\n.\r\n" STLS_OK C_NOSASL
	     "+OK\r\n+OK Logged in.\r\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), SEND(USER), SEND(PASS), OK("Logged in.")),
	TROW("CAPA refused over TLS: USER and PASS",
	     G "+OK\r\nSTLS\r\nSASL PLAIN\r\n.\r\n" STLS_OK "-ERR no\r\n+OK\r\n+OK\r\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), SEND(USER), SEND(PASS), OK("")),
	TROW("STLS over TLS is not asked for again",
	     G C_CLEAR STLS_OK "+OK\r\nSTLS\r\nSASL PLAIN\r\n.\r\n+OK in\r\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), SEND(AUTH_IR), OK("in")),
	TROW("lower-case stls and +ok", "+ok hi\r\n+ok\r\nstls\r\n.\r\n+ok go\r\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), MORE),
	TROW("a byte-stuffed STLS counts", G "+OK\r\n.STLS\r\n.\r\n" STLS_OK, 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), MORE),
	TROW("transcript ends after STLS's +OK", G C_CLEAR STLS_OK, 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), MORE),
	TROW("client bytes after OK stay", G C_CLEAR STLS_OK C_PLAIN "+OK in\r\n+OK 2 messages\r\n",
	     16, SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), SEND(AUTH_IR), OK("in")),
	TROW("PASS refused over TLS", G C_CLEAR STLS_OK C_NOSASL "+OK\r\n-ERR " AUTHFAIL "\r\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), SEND(USER), SEND(PASS), NO(AUTHFAIL)),
	XROW("XCLIENT over TLS, not in clear", XC, "", "alice", "s3cret",
	     G "+OK\r\nXCLIENT\r\nSTLS\r\n.\r\n" STLS_OK "+OK\r\nXCLIENT\r\nSASL PLAIN\r\n.\r\n"
	     "+OK Updated\r\n+OK Logged in.\r\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), SEND(XCLIENT), SEND(AUTH_IR),
	     OK("Logged in.")),
	XROW("XCLIENT offered only in clear: not sent", XC, "", "alice", "s3cret",
	     G "+OK\r\nXCLIENT\r\nSTLS\r\nSASL PLAIN\r\n.\r\n" STLS_OK C_NOSASL "+OK\r\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), SEND(USER), SEND(PASS), MORE),
	XROW("XCLIENT refused over TLS: USER", XC, "", "alice", "s3cret",
	     G C_CLEAR STLS_OK "+OK\r\nXCLIENT\r\n.\r\n-ERR not trusted\r\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), SEND(XCLIENT), SEND(USER), MORE),
	XROW("authzid over TLS", NULL, "admin", "alice", "s3cret",
	     G C_CLEAR STLS_OK C_PLAIN "+OK in\r\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA),
	     SEND("AUTH PLAIN YWRtaW4AYWxpY2UAczNjcmV0\r\n"), OK("in")),
	XROW("authzid: SASL PLAIN only in clear", NULL, "admin", "alice", "s3cret",
	     G "+OK\r\nSTLS\r\nSASL PLAIN\r\n.\r\n" STLS_OK C_NOSASL, 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA),
	     NO("backend cannot log in as another user")),
	XROW("user name with a space: STLS first, NO after", NULL, "", "al ice", "s3cret",
	     G C_CLEAR STLS_OK C_NOSASL, 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), NO("user name cannot be sent with USER")),
	XROW("password with spaces and 8-bit bytes over TLS", NULL, "", "alice", HPASS,
	     G C_CLEAR STLS_OK C_NOSASL "+OK\r\n+OK\r\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), SEND(USER), SEND("PASS " HPASS "\r\n"),
	     OK("")),

	/* ---- no STLS offered: nothing goes out ---- */
	TROW("CAPA without STLS", GP "+OK\r\n", 5, SEND(CAPA), FAIL(NO_STLS)),
	TROW("CAPA without STLS, no SASL", GN, 0, SEND(CAPA), FAIL(NO_STLS)),
	TROW("CAPA answered -ERR", G "-ERR Unknown command\r\n", 0, SEND(CAPA), FAIL(NO_STLS)),
	TROW("CAPA answered -ERR without text", G "-ERR\r\n+OK\r\n", 5,
	     SEND(CAPA), FAIL(NO_STLS)),
	TROW("empty CAPA list", G "+OK\r\n.\r\n", 0, SEND(CAPA), FAIL(NO_STLS)),
	TROW("names that only look like STLS",
	     G "+OK\r\nSTLSX\r\nXSTLS\r\nSTL\r\nSTARTTLS\r\n..STLS\r\nSASL STLS\r\n.\r\n", 0,
	     SEND(CAPA), FAIL(NO_STLS)),
	TROW("greeting -ERR", "-ERR [SYS/TEMP] Too many connections\r\n", 0,
	     FAIL("[SYS/TEMP] Too many connections")),

	/* ---- STLS's answer ---- */
	TROW("STLS answered -ERR", G C_CLEAR "-ERR TLS support isn't enabled.\r\n", 0,
	     SEND(CAPA), SEND(STLS), FAIL("TLS support isn't enabled.")),
	TROW("STLS answered -ERR without text", G C_CLEAR "-ERR\r\n+OK\r\n", 5,
	     SEND(CAPA), SEND(STLS), FAIL("backend refused STLS")),
	TROW("STLS answered -ERR [SYS/TEMP]", G C_CLEAR "-ERR [SYS/TEMP] later\r\n", 0,
	     SEND(CAPA), SEND(STLS), FAIL("[SYS/TEMP] later")),
	TROW("STLS answered +", G C_CLEAR "+ \r\n", 0, SEND(CAPA), SEND(STLS), FAIL(UNEXPECTED)),
	TROW("STLS answered +OKAY", G C_CLEAR "+OKAY\r\n", 0,
	     SEND(CAPA), SEND(STLS), FAIL(UNEXPECTED)),
	TROW("STLS answered with an IMAP line", G C_CLEAR "* BYE\r\n", 0,
	     SEND(CAPA), SEND(STLS), FAIL(UNEXPECTED)),
	TROW("STLS answered with an empty line", G C_CLEAR "\r\n" STLS_OK, sizeof(STLS_OK) - 1,
	     SEND(CAPA), SEND(STLS), FAIL(UNEXPECTED)),
	TROW("NUL in STLS's answer", G C_CLEAR "+OK \0\r\n", 2,
	     SEND(CAPA), SEND(STLS), FAIL("backend sent a NUL byte")),
	TROW("bare LF", "+OK hi\n+OK\nSTLS\n.\n+OK\n+OK\nSASL PLAIN\n.\n+OK done\n", 0,
	     SEND(CAPA), SEND(STLS), TLS_UP, SEND(CAPA), SEND(AUTH_IR), OK("done")),
};

#define NTLS_ROWS (sizeof tls_rows / sizeof tls_rows[0])

/* Every STLS transcript, whole, byte by byte and at every split; the
 * runner checks that nothing but CAPA and STLS, and never a credential,
 * goes out before BL_STARTTLS. */
static void test_starttls(void **state)
{
	(void)state;
	for (size_t i = 0; i < NTLS_ROWS; i++)
		run_row(&tls_rows[i]);
}

/* Feeds up to BL_STARTTLS after greeting and CAPA list c. */
static void to_tls(struct pop3_blogin *b, const char *c)
{
	assert_int_equal(pop3_bl_init(b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	pop3_bl_set_starttls(b);
	feed_expect(b, G, BL_SEND, CAPA);
	feed_expect(b, c, BL_SEND, STLS);
	feed_expect(b, STLS_OK, BL_STARTTLS, NULL);
	assert_int_equal(b->out_len, 0);
}

/* Everything sent in clear is CAPA and STLS; the credentials go out
 * only after pop3_bl_tls_started. */
static void test_starttls_creds_after_tls(void **state)
{
	static const char *const in[] = {
		G, "+OK\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\n.\r\n", STLS_OK, C_NOSASL, "+OK\r\n",
		"+OK Logged in.\r\n",
	};
	static const enum bl_rc want[] = {
		BL_SEND, BL_SEND, BL_STARTTLS, BL_SEND, BL_SEND, BL_OK,
	};
	struct pop3_blogin b;
	char clear[64] = "", tls[128] = "";
	int up = 0;
	enum bl_rc rc;

	(void)state;
	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	pop3_bl_set_starttls(&b);
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		size_t used;

		rc = pop3_bl_feed(&b, (const uint8_t *)in[i], strlen(in[i]), &used);
		assert_int_equal(rc, want[i]);
		assert_int_equal(used, strlen(in[i]));
		if (rc == BL_STARTTLS) {
			up = 1;
			rc = pop3_bl_tls_started(&b);
			assert_int_equal(rc, BL_SEND);
		}
		if (rc == BL_SEND)
			strncat(up ? tls : clear, (const char *)b.out, b.out_len);
	}
	assert_string_equal(clear, CAPA STLS);
	assert_string_equal(tls, CAPA USER PASS);
	pop3_bl_free(&b);
}

/* pop3_bl_tls_started forgets what CAPA said in clear. */
static void test_starttls_caps_forgotten(void **state)
{
	struct pop3_blogin b;

	(void)state;
	to_tls(&b, "+OK\r\nSTLS\r\nXCLIENT\r\nSASL PLAIN\r\n.\r\n");
	assert_int_equal(b.sasl_plain, 1);
	assert_int_equal(b.cap_xclient, 1);
	assert_int_equal(b.cap_stls, 1);
	assert_int_equal(pop3_bl_tls_started(&b), BL_SEND);
	assert_int_equal(b.out_len, strlen(CAPA));
	assert_memory_equal(b.out, CAPA, b.out_len);
	assert_int_equal(b.sasl_plain, 0);
	assert_int_equal(b.cap_xclient, 0);
	assert_int_equal(b.cap_stls, 0);
	feed_expect(&b, "+OK\r\nSTLS\r\nUSER\r\n.\r\n", BL_SEND, USER);
	assert_int_equal(b.cap_stls, 1);
	pop3_bl_free(&b);
}

/* Bytes after STLS's +OK in the same read are returned unused; a feed
 * before pop3_bl_tls_started with any byte fails (they came in clear),
 * an empty one waits. */
static void test_starttls_bytes_in_clear(void **state)
{
	static const char in[] = STLS_OK "+OK\r\nSASL PLAIN\r\n.\r\n";
	struct pop3_blogin b;
	size_t used = 99;

	(void)state;
	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	pop3_bl_set_starttls(&b);
	feed_expect(&b, G, BL_SEND, CAPA);
	feed_expect(&b, C_CLEAR, BL_SEND, STLS);
	assert_int_equal(pop3_bl_feed(&b, (const uint8_t *)in, sizeof in - 1, &used), BL_STARTTLS);
	assert_int_equal(used, strlen(STLS_OK));
	assert_int_equal(pop3_bl_feed(&b, (const uint8_t *)"", 0, &used), BL_NEED_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(pop3_bl_feed(&b, (const uint8_t *)in + strlen(STLS_OK), 1, &used),
	                 BL_FAIL);
	assert_int_equal(used, 0);
	assert_string_equal(b.text, "backend sent bytes in clear after STLS");
	assert_int_equal(b.pass_len, 0);
	assert_true(zeroed(b.pass, sizeof b.pass));
	assert_int_equal(pop3_bl_tls_started(&b), BL_FAIL);
	assert_int_equal(b.out_len, 0);
	pop3_bl_free(&b);
}

/* A feed after the login ended: FAIL, nothing used. */
static void feed_ended(struct pop3_blogin *b, const char *in)
{
	size_t used = 99;

	assert_int_equal(pop3_bl_feed(b, (const uint8_t *)in, strlen(in), &used), BL_FAIL);
	assert_int_equal(used, 0);
	assert_string_equal(b->text, "the backend login has ended");
}

/* pop3_bl_tls_started anywhere but right after BL_STARTTLS fails, ends
 * the login and forgets the password. */
static void test_starttls_wrong_state(void **state)
{
	struct pop3_blogin b;

	(void)state;
	/* before the greeting */
	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	pop3_bl_set_starttls(&b);
	assert_int_equal(pop3_bl_tls_started(&b), BL_FAIL);
	assert_string_equal(b.text, "TLS started without STLS");
	assert_int_equal(b.pass_len, 0);
	assert_int_equal(b.out_len, 0);
	feed_ended(&b, G);
	pop3_bl_free(&b);

	/* while CAPA's list comes */
	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	pop3_bl_set_starttls(&b);
	feed_expect(&b, G, BL_SEND, CAPA);
	feed_expect(&b, "+OK\r\nSTLS\r\n", BL_NEED_MORE, NULL);
	assert_int_equal(pop3_bl_tls_started(&b), BL_FAIL);
	feed_ended(&b, ".\r\n");
	pop3_bl_free(&b);

	/* while STLS waits for its answer: the request is wiped */
	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	pop3_bl_set_starttls(&b);
	feed_expect(&b, G, BL_SEND, CAPA);
	feed_expect(&b, C_CLEAR, BL_SEND, STLS);
	assert_int_equal(pop3_bl_tls_started(&b), BL_FAIL);
	assert_string_equal(b.text, "TLS started without STLS");
	assert_int_equal(b.out_len, 0);
	assert_true(zeroed(b.out, sizeof b.out));
	feed_ended(&b, STLS_OK);
	pop3_bl_free(&b);

	/* twice */
	to_tls(&b, C_CLEAR);
	assert_int_equal(pop3_bl_tls_started(&b), BL_SEND);
	assert_int_equal(pop3_bl_tls_started(&b), BL_FAIL);
	assert_string_equal(b.text, "TLS started without STLS");
	assert_int_equal(b.pass_len, 0);
	pop3_bl_free(&b);

	/* without pop3_bl_set_starttls, mid-login: USER wiped */
	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	feed_expect(&b, G, BL_SEND, CAPA);
	feed_expect(&b, "+OK\r\nSTLS\r\nUSER\r\n.\r\n", BL_SEND, USER);
	assert_int_equal(pop3_bl_tls_started(&b), BL_FAIL);
	assert_int_equal(b.out_len, 0);
	assert_true(zeroed(b.out, sizeof b.out));
	assert_int_equal(b.pass_len, 0);
	pop3_bl_free(&b);

	/* after the login */
	assert_int_equal(pop3_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	feed_expect(&b, G, BL_SEND, CAPA);
	feed_expect(&b, C_PLAIN, BL_SEND, AUTH_IR);
	feed_expect(&b, "+OK hi\r\n", BL_OK, "hi");
	assert_int_equal(pop3_bl_tls_started(&b), BL_FAIL);
	assert_string_equal(b.text, "TLS started without STLS");
	pop3_bl_free(&b);

	/* after pop3_bl_free */
	to_tls(&b, C_CLEAR);
	pop3_bl_free(&b);
	assert_int_equal(pop3_bl_tls_started(&b), BL_FAIL);
	assert_int_equal(b.out_len, 0);
}

static const struct CMUnitTest extra[] = {
	cmocka_unit_test(test_xclient),
	cmocka_unit_test(test_starttls),
	cmocka_unit_test(test_starttls_creds_after_tls),
	cmocka_unit_test(test_starttls_caps_forgotten),
	cmocka_unit_test(test_starttls_bytes_in_clear),
	cmocka_unit_test(test_starttls_wrong_state),
	cmocka_unit_test(test_line_max),
	cmocka_unit_test(test_text_max),
	cmocka_unit_test(test_init_limits),
	cmocka_unit_test(test_max_creds),
	cmocka_unit_test(test_pass_forgotten_once_sent),
	cmocka_unit_test(test_empty_feed_wipes_out),
	cmocka_unit_test(test_feed_after_end),
	cmocka_unit_test(test_free_mid_login),
	cmocka_unit_test(test_sasl_plain_bit),
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
	return cmocka_run_group_tests_name("pop3_backend", tests, NULL, NULL);
}
