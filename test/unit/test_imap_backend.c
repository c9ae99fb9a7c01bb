/*
 * Unit tests for protocols/imap_backend.c.
 *
 * Each row is a backend transcript (everything the backend sends, bytes
 * with an explicit length), the credentials, and the results
 * imap_bl_feed() must return in order: every SEND with the exact bytes of
 * out, then OK/NO/FAIL with the exact text (or NEED_MORE when the
 * transcript stops mid-login). tail is how many bytes follow the final
 * result: they belong to the client and must not be consumed.
 *
 * Every row runs three ways: whole (re-fed from buf + used after each
 * result), byte by byte, and split in two at every offset. All runs must
 * give the same results at the same input offsets. After each call out
 * must hold the current SEND and nothing else (wiped otherwise); after
 * OK/NO/FAIL the password copy must be gone; after imap_bl_free
 * everything must be zero.
 *
 * A STARTTLS row (starttls set) lists BL_STARTTLS among its results; the
 * runner then calls imap_bl_tls_started, whose SEND is the next result
 * at the same offset, and the bytes after stand for what came over TLS.
 * Before BL_STARTTLS only CAPABILITY and STARTTLS may go out, and no
 * SEND may hold the user name or the password.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_backend.h"
#include "sasl.h"

#define MAX_RES 10

/* Bytes and their length; s may contain NUL. */
#define B(s) s, sizeof(s) - 1

struct xres {
	int set;
	enum bl_rc rc;
	const char *bytes;            /* SEND: out; OK, NO, FAIL: text */
	size_t len;
};

struct row {
	const char *name;
	const char *authzid;          /* NULL: none */
	size_t authzid_len;
	const char *user, *pass;
	size_t user_len, pass_len;
	const char *in;
	size_t len;
	size_t tail;                  /* bytes after the final result */
	struct xres res[MAX_RES];
	int starttls;                 /* imap_bl_set_starttls */
	const char *id;               /* imap_bl_set_id, or NULL */
};

#define SEND(s) { 1, BL_SEND, B(s) }
#define OK(s)   { 1, BL_OK, B(s) }
#define NO(s)   { 1, BL_NO, B(s) }
#define FAIL(s) { 1, BL_FAIL, B(s) }
#define MORE    { 1, BL_NEED_MORE, B("") }
#define TLS_UP  { 1, BL_STARTTLS, B("") }

/* CROW(name, authzid, user, pass, transcript, tail, results...) with
 * string literals (NUL allowed); ROW logs in as alice/s3cret. */
#define CROW(nm, z, u, p, input, tl, ...) \
	{ .name = nm, .authzid = z, .authzid_len = sizeof(z) - 1, \
	  .user = u, .user_len = sizeof(u) - 1, .pass = p, .pass_len = sizeof(p) - 1, \
	  .in = input, .len = sizeof(input) - 1, .tail = tl, .res = { __VA_ARGS__ } }
#define ROW(nm, input, tl, ...) CROW(nm, "", "alice", "s3cret", input, tl, __VA_ARGS__)

/* Greetings. */
#define G_DOVECOT "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ " \
                  "AUTH=PLAIN] Dovecot (Debian) ready.\r\n"
#define G_PLAIN   "* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] ready\r\n"
#define G_LITPLUS "* OK [CAPABILITY IMAP4rev1 ID IDLE LITERAL+] ready\r\n"
#define G_SYNC    "* OK [CAPABILITY IMAP4rev1 ID IDLE] ready\r\n"
#define G_NOCAPS  "* OK Dovecot ready.\r\n"
#define G_LOGINDIS "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n"

/* What moat sends as alice/s3cret. */
#define CAPA      "M0 CAPABILITY\r\n"
#define AUTH_IR   "M1 AUTHENTICATE PLAIN AGFsaWNlAHMzY3JldA==\r\n"
#define AUTH_CMD  "M1 AUTHENTICATE PLAIN\r\n"
#define AUTH_RESP "AGFsaWNlAHMzY3JldA==\r\n"
#define LOGIN_LP  "M1 LOGIN {5+}\r\nalice {6+}\r\ns3cret\r\n"
#define LOGIN_1   "M1 LOGIN {5}\r\n"
#define LOGIN_2   "alice {6}\r\n"
#define LOGIN_3   "s3cret\r\n"

/* Dovecot's answers. */
#define OK_CAPS   "[CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT " \
                  "SORT=DISPLAY THREAD=REFERENCES MULTIAPPEND] Logged in"
#define M1_OK     "M1 OK " OK_CAPS "\r\n"
#define AUTHFAIL  "[AUTHENTICATIONFAILED] Authentication failed."

/* A user name and password with every awkward byte. */
#define HUSER "j\xc3\xbc" "rgen m"                               /* 9 bytes */
#define HPASS "p\"a\\ s {5}\xc3\xa4\xff\r\n x"                   /* 17 bytes */
#define HPLAIN "AGrDvHJnZW4gbQBwImFcIHMgezV9w6T/DQogeA=="

#define UNEXPECTED "unexpected backend line"
#define BADGREET   "unexpected backend greeting"

static const struct row rows[] = {
	/* ---- how to log in ---- */
	ROW("SASL-IR: AUTHENTICATE PLAIN with the response", G_DOVECOT M1_OK, 0,
	    SEND(AUTH_IR), OK(OK_CAPS)),
	ROW("AUTH=PLAIN without SASL-IR: response after +", G_PLAIN "+ \r\nM1 OK Logged in\r\n", 0,
	    SEND(AUTH_CMD), SEND(AUTH_RESP), OK("Logged in")),
	ROW("continuation without a space", G_PLAIN "+\r\nM1 OK Logged in\r\n", 0,
	    SEND(AUTH_CMD), SEND(AUTH_RESP), OK("Logged in")),
	ROW("continuation with text", G_PLAIN "+ go ahead\r\nM1 OK Logged in\r\n", 0,
	    SEND(AUTH_CMD), SEND(AUTH_RESP), OK("Logged in")),
	CROW("authzid with SASL-IR", "admin", "alice", "s3cret", G_DOVECOT "M1 OK done\r\n", 0,
	     SEND("M1 AUTHENTICATE PLAIN YWRtaW4AYWxpY2UAczNjcmV0\r\n"), OK("done")),
	CROW("authzid without SASL-IR", "admin", "alice", "s3cret",
	     G_PLAIN "+ \r\nM1 OK done\r\n", 0,
	     SEND(AUTH_CMD), SEND("YWRtaW4AYWxpY2UAczNjcmV0\r\n"), OK("done")),
	CROW("authzid without AUTH=PLAIN", "admin", "alice", "s3cret", G_LITPLUS "* 1 more\r\n", 10,
	     NO("backend cannot log in as another user")),
	CROW("authzid without AUTH=PLAIN, LOGINDISABLED", "admin", "alice", "s3cret", G_LOGINDIS, 0,
	     NO("backend cannot log in as another user")),
	ROW("LITERAL+: one LOGIN", G_LITPLUS "M1 OK Logged in\r\n", 0,
	    SEND(LOGIN_LP), OK("Logged in")),
	ROW("synchronizing literals", G_SYNC "+ OK\r\n+ OK\r\nM1 OK Logged in\r\n", 0,
	    SEND(LOGIN_1), SEND(LOGIN_2), SEND(LOGIN_3), OK("Logged in")),
	ROW("synchronizing literals, transcript ends waiting", G_SYNC "+ OK\r\n", 0,
	    SEND(LOGIN_1), SEND(LOGIN_2), MORE),
	ROW("LOGINDISABLED without AUTH=PLAIN", G_LOGINDIS "M1 OK x\r\n", 9,
	    FAIL("backend advertises LOGINDISABLED")),
	ROW("LOGINDISABLED wins over LITERAL+",
	    "* OK [CAPABILITY IMAP4rev1 LITERAL+ LOGINDISABLED] x\r\n", 0,
	    FAIL("backend advertises LOGINDISABLED")),
	ROW("LOGINDISABLED with AUTH=PLAIN: AUTHENTICATE",
	    "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN SASL-IR] x\r\nM1 OK y\r\n", 0,
	    SEND(AUTH_IR), OK("y")),
	ROW("AUTH=PLAIN wins over LITERAL+", G_PLAIN "+ \r\nM1 OK y\r\n", 0,
	    SEND(AUTH_CMD), SEND(AUTH_RESP), OK("y")),
	ROW("SASL-IR alone is not AUTH=PLAIN",
	    "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=SCRAM-SHA-256 AUTH=LOGIN] x\r\n", 0,
	    SEND(LOGIN_1), MORE),
	ROW("capabilities case-insensitive",
	    "* ok [capability imap4rev1 sasl-ir auth=plain] hi\r\nM1 ok fine\r\n", 0,
	    SEND(AUTH_IR), OK("fine")),
	ROW("literal+ lower case", "* OK [Capability literal+] x\r\nM1 Ok y\r\n", 0,
	    SEND(LOGIN_LP), OK("y")),
	ROW("names that only look like ours",
	    "* OK [CAPABILITY AUTH=PLAINX XSASL-IR LITERAL LITERAL- AUTH=PLAI XLOGINDISABLED] x\r\n", 0,
	    SEND(LOGIN_1), MORE),
	ROW("[CAPABILITY] with no names", "* OK [CAPABILITY] x\r\n", 0, SEND(LOGIN_1), MORE),
	ROW("caps in the last token before ]", "* OK [CAPABILITY IMAP4rev1 LITERAL+] x\r\nM1 OK\r\n",
	    0, SEND(LOGIN_LP), OK("")),

	/* ---- greeting without capabilities: M0 CAPABILITY ---- */
	ROW("no caps in greeting: CAPABILITY, then AUTHENTICATE",
	    G_NOCAPS "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "
	    "AUTH=PLAIN\r\nM0 OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
	    M1_OK, 0,
	    SEND(CAPA), SEND(AUTH_IR), OK(OK_CAPS)),
	ROW("greeting with no text", "* OK\r\n* CAPABILITY LITERAL+\r\nM0 OK\r\nM1 OK\r\n", 0,
	    SEND(CAPA), SEND(LOGIN_LP), OK("")),
	ROW("caps over two CAPABILITY lines",
	    G_NOCAPS "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n* CAPABILITY SASL-IR\r\nM0 OK\r\n", 0,
	    SEND(CAPA), SEND(AUTH_IR), MORE),
	ROW("noise around CAPABILITY",
	    G_NOCAPS "* OK [ALERT] hello\r\n* 0 RECENT\r\n* capability literal+\r\n* NO hm\r\n"
	    "M0 ok\r\n", 0,
	    SEND(CAPA), SEND(LOGIN_LP), MORE),
	ROW("M0 OK without capabilities: synchronizing LOGIN", G_NOCAPS "M0 OK\r\n+ OK\r\n", 0,
	    SEND(CAPA), SEND(LOGIN_1), SEND(LOGIN_2), MORE),
	ROW("LOGINDISABLED from CAPABILITY", G_NOCAPS "* CAPABILITY IMAP4rev1 LOGINDISABLED\r\n"
	    "M0 OK\r\n", 0,
	    SEND(CAPA), FAIL("backend advertises LOGINDISABLED")),
	ROW("other response code: CAPABILITY", "* OK [ALERT] hi\r\n", 0, SEND(CAPA), MORE),
	ROW("[CAPABILITYX] is not the code", "* OK [CAPABILITYX AUTH=PLAIN] hi\r\n", 0,
	    SEND(CAPA), MORE),
	ROW("unterminated [CAPABILITY: its names are not used",
	    "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n* CAPABILITY LITERAL+\r\nM0 OK\r\n", 0,
	    SEND(CAPA), SEND(LOGIN_LP), MORE),
	ROW("CAPABILITY answered NO", G_NOCAPS "M0 NO not now\r\nM1 OK\r\n", 7,
	    SEND(CAPA), FAIL("not now")),
	ROW("CAPABILITY answered BAD", G_NOCAPS "M0 BAD what\r\n", 0,
	    SEND(CAPA), FAIL("what")),
	ROW("CAPABILITY answered NO without text", G_NOCAPS "M0 NO\r\n", 0,
	    SEND(CAPA), FAIL("backend refused CAPABILITY")),
	ROW("BYE while waiting for M0", G_NOCAPS "* BYE Shutting down\r\n", 0,
	    SEND(CAPA), FAIL("Shutting down")),
	ROW("M1 while waiting for M0", G_NOCAPS "M1 OK x\r\n", 0,
	    SEND(CAPA), FAIL(UNEXPECTED)),
	ROW("+ while waiting for M0", G_NOCAPS "+ OK\r\n", 0,
	    SEND(CAPA), FAIL(UNEXPECTED)),
	ROW("M0 PREAUTH", G_NOCAPS "M0 PREAUTH\r\n", 0, SEND(CAPA), FAIL(UNEXPECTED)),

	/* ---- greetings that end it ---- */
	ROW("PREAUTH", "* PREAUTH [CAPABILITY IMAP4rev1] Logged in as alice\r\n", 0,
	    FAIL("backend greeted with PREAUTH")),
	ROW("preauth lower case", "* preauth hi\r\n", 0, FAIL("backend greeted with PREAUTH")),
	ROW("BYE", "* BYE Too many connections\r\n", 0, FAIL("Too many connections")),
	ROW("BYE without text", "* BYE\r\n", 0, FAIL("backend said BYE")),
	ROW("NO greeting", "* NO go away\r\n", 0, FAIL(BADGREET)),
	ROW("BAD greeting", "* BAD\r\n", 0, FAIL(BADGREET)),
	ROW("tagged greeting", "M1 OK hi\r\n", 0, FAIL(BADGREET)),
	ROW("continuation greeting", "+ hi\r\n", 0, FAIL(BADGREET)),
	ROW("empty line", "\r\n* OK hi\r\n", 9, FAIL(BADGREET)),
	ROW("HTTP", "HTTP/1.1 400 Bad Request\r\n\r\n", 2, FAIL(BADGREET)),
	ROW("SMTP", "220 mail.example.com ESMTP\r\n", 0, FAIL(BADGREET)),
	ROW("no space after *", "*OK hi\r\n", 0, FAIL(BADGREET)),
	ROW("two spaces after *", "*  OK hi\r\n", 0, FAIL(BADGREET)),
	ROW("OKAY", "* OKAY hi\r\n", 0, FAIL(BADGREET)),
	ROW("numeric untagged", "* 1 EXISTS\r\n", 0, FAIL(BADGREET)),
	ROW("star alone", "*\r\n", 0, FAIL(BADGREET)),

	/* ---- the login's answer ---- */
	ROW("NO from Dovecot", G_DOVECOT "M1 NO " AUTHFAIL "\r\n", 0,
	    SEND(AUTH_IR), NO(AUTHFAIL)),
	ROW("no in lower case", G_LITPLUS "M1 no bad password\r\n", 0,
	    SEND(LOGIN_LP), NO("bad password")),
	ROW("NO without text", G_LITPLUS "M1 NO\r\n", 0,
	    SEND(LOGIN_LP), NO("backend refused the login")),
	ROW("BAD", G_LITPLUS "M1 BAD [CLIENTBUG] Invalid arguments\r\n", 0,
	    SEND(LOGIN_LP), FAIL("[CLIENTBUG] Invalid arguments")),
	ROW("BAD without text", G_LITPLUS "M1 BAD\r\n", 0,
	    SEND(LOGIN_LP), FAIL("backend said BAD")),
	ROW("BYE before the answer", G_LITPLUS "* BYE Server shutting down.\r\nM1 OK\r\n", 7,
	    SEND(LOGIN_LP), FAIL("Server shutting down.")),
	ROW("bye in lower case", G_LITPLUS "* bye later\r\n", 0,
	    SEND(LOGIN_LP), FAIL("later")),
	ROW("OK without text", G_LITPLUS "M1 OK\r\n", 0, SEND(LOGIN_LP), OK("")),
	ROW("OK with an empty text", G_LITPLUS "M1 OK \r\n", 0, SEND(LOGIN_LP), OK("")),
	ROW("OK text keeps spaces and 8-bit bytes", G_LITPLUS "M1 OK  Willkommen,\xc3\xa4  \r\n", 0,
	    SEND(LOGIN_LP), OK(" Willkommen,\xc3\xa4  ")),
	ROW("untagged noise before OK",
	    G_LITPLUS "* OK still here\r\n* 1 EXISTS\r\n* CAPABILITY X\r\n* NO warning\r\n"
	    "* PREAUTH hm\r\n* FLAGS (\\Seen)\r\nM1 OK done\r\n", 0,
	    SEND(LOGIN_LP), OK("done")),
	ROW("client bytes after OK stay", G_LITPLUS "M1 OK hi\r\n* 3 EXISTS\r\n", 12,
	    SEND(LOGIN_LP), OK("hi")),
	ROW("partial line after OK stays", G_LITPLUS "M1 OK hi\r\nabc", 3,
	    SEND(LOGIN_LP), OK("hi")),
	ROW("bytes after NO stay", G_LITPLUS "M1 NO no\r\n* BYE\r\n", 7,
	    SEND(LOGIN_LP), NO("no")),
	ROW("another tag", G_LITPLUS "A1 OK\r\n", 0, SEND(LOGIN_LP), FAIL(UNEXPECTED)),
	ROW("M0 after the login", G_LITPLUS "M0 OK\r\n", 0, SEND(LOGIN_LP), FAIL(UNEXPECTED)),
	ROW("tag M10", G_LITPLUS "M10 OK\r\n", 0, SEND(LOGIN_LP), FAIL(UNEXPECTED)),
	ROW("tag M", G_LITPLUS "M OK\r\n", 0, SEND(LOGIN_LP), FAIL(UNEXPECTED)),
	ROW("tag M while waiting for M0", G_NOCAPS "M OK\r\n", 0, SEND(CAPA), FAIL(UNEXPECTED)),
	ROW("tag m1 in lower case", G_LITPLUS "m1 OK\r\n", 0, SEND(LOGIN_LP), FAIL(UNEXPECTED)),
	ROW("M1 without a space", G_LITPLUS "M1OK\r\n", 0, SEND(LOGIN_LP), FAIL(UNEXPECTED)),
	ROW("M1 alone", G_LITPLUS "M1\r\n", 0, SEND(LOGIN_LP), FAIL(UNEXPECTED)),
	ROW("M1 PREAUTH", G_LITPLUS "M1 PREAUTH x\r\n", 0, SEND(LOGIN_LP), FAIL(UNEXPECTED)),
	ROW("M1 OKAY", G_LITPLUS "M1 OKAY\r\n", 0, SEND(LOGIN_LP), FAIL(UNEXPECTED)),
	ROW("+ after everything was sent", G_LITPLUS "+ OK\r\n", 0,
	    SEND(LOGIN_LP), FAIL(UNEXPECTED)),
	ROW("second + after the PLAIN response", G_PLAIN "+ \r\n+ \r\n", 0,
	    SEND(AUTH_CMD), SEND(AUTH_RESP), FAIL(UNEXPECTED)),
	ROW("empty line after the login", G_LITPLUS "\r\n", 0, SEND(LOGIN_LP), FAIL(UNEXPECTED)),

	/* ---- answers instead of "+" ---- */
	ROW("first literal answered NO", G_SYNC "M1 NO [ALERT] no literals\r\n", 0,
	    SEND(LOGIN_1), NO("[ALERT] no literals")),
	ROW("second literal answered BAD", G_SYNC "+ OK\r\nM1 BAD too long\r\n", 0,
	    SEND(LOGIN_1), SEND(LOGIN_2), FAIL("too long")),
	ROW("literal answered OK", G_SYNC "M1 OK early\r\n", 0, SEND(LOGIN_1), FAIL(UNEXPECTED)),
	ROW("literal answered BYE", G_SYNC "+ OK\r\n* BYE gone\r\n", 0,
	    SEND(LOGIN_1), SEND(LOGIN_2), FAIL("gone")),
	ROW("literal answered with another tag", G_SYNC "A1 OK\r\n", 0,
	    SEND(LOGIN_1), FAIL(UNEXPECTED)),
	ROW("noise before +", G_SYNC "* OK hi\r\n+ OK\r\n* 2 EXISTS\r\n+ OK\r\nM1 OK in\r\n", 0,
	    SEND(LOGIN_1), SEND(LOGIN_2), SEND(LOGIN_3), OK("in")),
	ROW("+x is not a continuation", G_SYNC "+x\r\n", 0, SEND(LOGIN_1), FAIL(UNEXPECTED)),
	ROW("AUTHENTICATE answered NO",
	    G_PLAIN "M1 NO [ALERT] Plaintext authentication disallowed\r\n", 0,
	    SEND(AUTH_CMD), NO("[ALERT] Plaintext authentication disallowed")),
	ROW("AUTHENTICATE answered BAD", G_PLAIN "M1 BAD no\r\n", 0,
	    SEND(AUTH_CMD), FAIL("no")),
	ROW("AUTHENTICATE answered BYE", G_PLAIN "* BYE x\r\n", 0,
	    SEND(AUTH_CMD), FAIL("x")),

	/* ---- line framing ---- */
	ROW("bare LF", "* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\nM1 OK done\n", 0,
	    SEND(LOGIN_LP), OK("done")),
	ROW("bare LF and CRLF mixed", G_NOCAPS "* CAPABILITY X\nM0 OK\r\n+\n+ OK\r\nM1 OK a b\n", 0,
	    SEND(CAPA), SEND(LOGIN_1), SEND(LOGIN_2), SEND(LOGIN_3), OK("a b")),
	ROW("NUL in the greeting", "* OK he\0llo\r\n", 5, FAIL("backend sent a NUL byte")),
	ROW("NUL first", "\0* OK\r\n", 6, FAIL("backend sent a NUL byte")),
	ROW("NUL after CR", "* OK hi\r\0\n", 1, FAIL("backend sent a NUL byte")),
	ROW("NUL in the answer", G_LITPLUS "M1 OK \0\r\n", 2,
	    SEND(LOGIN_LP), FAIL("backend sent a NUL byte")),
	ROW("NUL in noise", G_LITPLUS "* 1 \0EXISTS\r\n", 8,
	    SEND(LOGIN_LP), FAIL("backend sent a NUL byte")),
	ROW("bare CR", "* OK hi\rthere\r\n", 6, FAIL("backend sent a CR without LF")),
	ROW("CR CR LF", "* OK hi\r\r\n", 1, FAIL("backend sent a CR without LF")),
	ROW("bare CR in the answer", G_LITPLUS "M1 OK a\rb\r\n", 2,
	    SEND(LOGIN_LP), FAIL("backend sent a CR without LF")),
	ROW("greeting only, no line end yet", "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN", 0, MORE),

	/* ---- credentials: every byte goes through ---- */
	CROW("LITERAL+ carries every byte", "", HUSER, HPASS, G_LITPLUS "M1 OK\r\n", 0,
	     SEND("M1 LOGIN {9+}\r\n" HUSER " {17+}\r\n" HPASS "\r\n"), OK("")),
	CROW("synchronizing literals carry every byte", "", HUSER, HPASS,
	     G_SYNC "+ OK\r\n+ OK\r\nM1 OK\r\n", 0,
	     SEND("M1 LOGIN {9}\r\n"), SEND(HUSER " {17}\r\n"), SEND(HPASS "\r\n"), OK("")),
	CROW("PLAIN carries every byte", "", HUSER, HPASS, G_DOVECOT "M1 OK\r\n", 0,
	     SEND("M1 AUTHENTICATE PLAIN " HPLAIN "\r\n"), OK("")),
	CROW("password that looks like a response", "", "alice", "M1 OK\r\n* BYE\r\n",
	     G_LITPLUS "M1 NO wrong\r\n", 0,
	     SEND("M1 LOGIN {5+}\r\nalice {14+}\r\nM1 OK\r\n* BYE\r\n\r\n"), NO("wrong")),
	CROW("empty password, LITERAL+", "", "alice", "", G_LITPLUS, 0,
	     SEND("M1 LOGIN {5+}\r\nalice {0+}\r\n\r\n"), MORE),
	CROW("empty password, synchronizing", "", "alice", "", G_SYNC "+ OK\r\n+ OK\r\n", 0,
	     SEND(LOGIN_1), SEND("alice {0}\r\n"), SEND("\r\n"), MORE),
	CROW("empty password, PLAIN", "", "alice", "", G_DOVECOT, 0,
	     SEND("M1 AUTHENTICATE PLAIN AGFsaWNlAA==\r\n"), MORE),
	CROW("NUL in the user name, LOGIN", "", "al\0ice", "s3cret", G_LITPLUS, 0,
	     NO("credentials contain a NUL byte")),
	CROW("NUL in the password, PLAIN", "", "alice", "s3\0cret", G_DOVECOT, 0,
	     NO("credentials contain a NUL byte")),
	CROW("NUL in the authzid", "ad\0min", "alice", "s3cret", G_DOVECOT, 0,
	     NO("credentials contain a NUL byte")),
	CROW("NUL checked after CAPABILITY", "", "alice", "\0", G_NOCAPS "M0 OK\r\n", 0,
	     SEND(CAPA), NO("credentials contain a NUL byte")),
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

/* n bytes of s, escaped, for failure messages (four buffers in turn). */
static const char *show(const void *p, size_t n)
{
	static char out[4][400];
	static unsigned k;
	const unsigned char *s = p;
	char *o = out[k++ % 4];
	size_t j = 0;

	for (size_t i = 0; i < n && j + 5 < sizeof out[0]; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
			o[j++] = (char)s[i];
		else
			j += (size_t)snprintf(o + j, sizeof out[0] - j, "\\x%02x", s[i]);
	}
	o[j] = '\0';
	return o;
}

/* Are n bytes at p all zero? */
static int zeroed(const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		if (s[i] != 0)
			return 0;
	return 1;
}

struct run {
	const struct row *r;
	char how[32];                 /* "whole", "bytes", "split 7" */
	struct imap_blogin b;
	size_t *offs;                 /* end offset of each result, shared by runs */
	size_t k;                     /* results so far */
	enum bl_rc last;
	int done;                     /* OK, NO or FAIL seen */
	size_t end;                   /* where it was seen */
	int tls;                      /* STARTTLS seen */
};

/* Results expected from the row, a final MORE included. */
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

/* A SEND of a STARTTLS row before BL_STARTTLS: only CAPABILITY or
 * STARTTLS, never a credential. */
static void check_clear(const struct run *u)
{
	const struct row *r = u->r;
	const uint8_t *out = u->b.out;
	size_t n = u->b.out_len;

	if ((r->user_len > 0 && memmem(out, n, r->user, r->user_len) != NULL) ||
	    (r->pass_len > 0 && memmem(out, n, r->pass, r->pass_len) != NULL))
		fail_msg("%s [%s]: a credential sent before TLS: \"%s\"", r->name, u->how,
		         show(out, n));
	if (!same(out, n, "M0 CAPABILITY\r\n") && !same(out, n, "M3 STARTTLS\r\n"))
		fail_msg("%s [%s]: \"%s\" sent before TLS", r->name, u->how, show(out, n));
}

/* One result other than NEED_MORE, ending at offset end of the input. */
static void check(struct run *u, enum bl_rc rc, size_t end)
{
	const struct row *r = u->r;
	const struct xres *x;

	if (u->k >= row_results(r) || r->res[u->k].rc == BL_NEED_MORE)
		fail_msg("%s [%s]: unexpected result %zu %s at offset %zu (text \"%s\", out \"%s\")",
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
		fail_msg("%s [%s] result %zu: ends at offset %zu, the whole run said %zu",
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
	enum bl_rc rc = imap_bl_tls_started(&u->b);

	u->last = rc;
	check(u, rc, end);
}

/* Feeds input bytes [start, start + len) like a session would: after
 * each result, again from buf + used, until the login ends. */
static void feed(struct run *u, size_t start, size_t len)
{
	while (len > 0 && !u->done) {
		const uint8_t *buf = (const uint8_t *)u->r->in + start;
		size_t prev = u->b.out_len, used = SIZE_MAX;
		enum bl_rc rc = imap_bl_feed(&u->b, buf, len, &used);

		u->last = rc;
		if (used > len || (rc == BL_NEED_MORE && used != len) ||
		    (rc != BL_NEED_MORE && used == 0))
			fail_msg("%s [%s]: %s used %zu of %zu bytes at offset %zu",
			         u->r->name, u->how, rc_name(rc), used, len, start);
		/* the last request was consumed: none of it may stay in out */
		if (rc != BL_SEND && (u->b.out_len != 0 || !zeroed(u->b.out, prev)))
			fail_msg("%s [%s]: out not wiped after %s at offset %zu", u->r->name, u->how,
			         rc_name(rc), start);
		if (rc == BL_SEND && !zeroed(u->b.out + u->b.out_len,
		                                  prev > u->b.out_len ? prev - u->b.out_len : 0))
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

/* The input is used up: all results seen; when the row expects the
 * transcript to stop mid-login, an empty feed says NEED_MORE, else the
 * final result left tail bytes. */
static void finish(struct run *u)
{
	const struct row *r = u->r;
	size_t n = row_results(r);
	int more = n > 0 && r->res[n - 1].rc == BL_NEED_MORE;

	if (u->k != n - (size_t)more)
		fail_msg("%s [%s]: %zu results, expected %zu", r->name, u->how, u->k,
		         n - (size_t)more);
	if (more) {
		/* mid-login: nothing more to do until the backend says more */
		size_t prev = u->b.out_len, used = SIZE_MAX;
		enum bl_rc rc = imap_bl_feed(&u->b, (const uint8_t *)"", 0, &used);

		if (u->done || rc != BL_NEED_MORE || used != 0)
			fail_msg("%s [%s]: input ended with %s, then %s used %zu, expected NEED_MORE",
			         r->name, u->how, rc_name(u->last), rc_name(rc), used);
		if (u->b.out_len != 0 || !zeroed(u->b.out, prev))
			fail_msg("%s [%s]: out not wiped by an empty feed", r->name, u->how);
	}
	if (!more && !u->done)
		fail_msg("%s [%s]: the login did not end", r->name, u->how);
	if (u->done && u->end != r->len - r->tail)
		fail_msg("%s [%s]: ended at offset %zu, expected %zu (tail %zu)", r->name, u->how,
		         u->end, r->len - r->tail, r->tail);
	if (more && r->tail != 0)
		fail_msg("%s: a row ending in NEED_MORE has no tail", r->name);
}

/* Everything imap_bl_free must have wiped. */
static void assert_freed(const struct imap_blogin *b)
{
	assert_true(zeroed(b->user, sizeof b->user));
	assert_true(zeroed(b->pass, sizeof b->pass));
	assert_true(zeroed(b->authzid, sizeof b->authzid));
	assert_true(zeroed(b->line, sizeof b->line));
	assert_true(zeroed(b->out, sizeof b->out));
	assert_true(zeroed(b->text, sizeof b->text));
	assert_int_equal(b->user_len + b->pass_len + b->authzid_len + b->line_len + b->out_len, 0);
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
	assert_int_equal(imap_bl_init(&u->b, r->authzid, r->authzid_len, r->user, r->user_len,
	                              r->pass, r->pass_len), 0);
	if (r->starttls)
		imap_bl_set_starttls(&u->b);
	if (r->id != NULL)
		assert_int_equal(imap_bl_set_id(&u->b, r->id), 0);
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
	imap_bl_free(&u->b);
	assert_freed(&u->b);
	free(u);
}

/* One row, three ways. */
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

/* ---- rows too long to write out ---- */

/* A row whose transcript is prefix, n copies of c, then suffix. */
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

/* A row with alice/s3cret and no results yet. */
static struct row plain_row(const char *name)
{
	struct row r = {
		.name = name, .authzid = "", .user = "alice", .user_len = 5,
		.pass = "s3cret", .pass_len = 6,
	};

	return r;
}

#define R(rc_, s) (struct xres){ 1, rc_, s, sizeof(s) - 1 }

/* Lines of exactly IMAP_BL_LINE_MAX bytes pass (with CRLF or LF), one
 * more byte fails at that byte, in the greeting and after the login. */
static void test_line_max(void **state)
{
	const size_t pre = strlen("* OK [CAPABILITY LITERAL+] ");
	struct row r;
	char *in;

	(void)state;

	r = plain_row("greeting of IMAP_BL_LINE_MAX bytes, CRLF");
	in = long_input(&r, "* OK [CAPABILITY LITERAL+] ", IMAP_BL_LINE_MAX - pre, 'x',
	                "\r\nM1 OK\r\n");
	r.res[0] = R(BL_SEND, LOGIN_LP);
	r.res[1] = R(BL_OK, "");
	run_row(&r);
	free(in);

	r = plain_row("greeting of IMAP_BL_LINE_MAX bytes, LF");
	in = long_input(&r, "* OK [CAPABILITY LITERAL+] ", IMAP_BL_LINE_MAX - pre, 'x', "\n");
	r.res[0] = R(BL_SEND, LOGIN_LP);
	r.res[1] = R(BL_NEED_MORE, "");
	run_row(&r);
	free(in);

	r = plain_row("greeting of IMAP_BL_LINE_MAX + 1 bytes");
	in = long_input(&r, "* OK [CAPABILITY LITERAL+] ", IMAP_BL_LINE_MAX - pre + 1, 'x',
	                "\r\n");
	r.tail = 2;
	r.res[0] = R(BL_FAIL, "backend line too long");
	run_row(&r);
	free(in);

	r = plain_row("IMAP_BL_LINE_MAX bytes, then CR CR");
	in = long_input(&r, "* OK [CAPABILITY LITERAL+] ", IMAP_BL_LINE_MAX - pre, 'x',
	                "\r\r\n");
	r.tail = 1;
	r.res[0] = R(BL_FAIL, "backend sent a CR without LF");
	run_row(&r);
	free(in);

	r = plain_row("noise of IMAP_BL_LINE_MAX + 1 bytes after the login");
	in = long_input(&r, G_LITPLUS "* ", IMAP_BL_LINE_MAX - 1, 'y', "\r\nM1 OK\r\n");
	r.tail = 9;
	r.res[0] = R(BL_SEND, LOGIN_LP);
	r.res[1] = R(BL_FAIL, "backend line too long");
	run_row(&r);
	free(in);
}

/* The OK and NO texts are cut at IMAP_BL_TEXT_MAX bytes. */
static void test_text_max(void **state)
{
	struct row r;
	char *in, *want = malloc(IMAP_BL_TEXT_MAX + 1);
	static const char *const words[] = { "M1 OK ", "M1 NO " };
	static const enum bl_rc rcs[] = { BL_OK, BL_NO };

	(void)state;

	assert_non_null(want);
	memset(want, 't', IMAP_BL_TEXT_MAX);
	want[IMAP_BL_TEXT_MAX] = '\0';
	for (size_t i = 0; i < 2; i++) {
		char prefix[128];

		snprintf(prefix, sizeof prefix, "%s%s", G_LITPLUS, words[i]);
		r = plain_row(rcs[i] == BL_OK ? "OK text cut" : "NO text cut");
		in = long_input(&r, prefix, 3 * IMAP_BL_TEXT_MAX, 't', "\r\n");
		r.res[0] = R(BL_SEND, LOGIN_LP);
		r.res[1] = (struct xres){ 1, rcs[i], want, IMAP_BL_TEXT_MAX };
		run_row(&r);
		free(in);

		r = plain_row(rcs[i] == BL_OK ? "OK text one over the maximum" :
		              "NO text one over the maximum");
		in = long_input(&r, prefix, IMAP_BL_TEXT_MAX + 1, 't', "\r\n");
		r.res[0] = R(BL_SEND, LOGIN_LP);
		r.res[1] = (struct xres){ 1, rcs[i], want, IMAP_BL_TEXT_MAX };
		run_row(&r);
		free(in);

		r = plain_row(rcs[i] == BL_OK ? "OK text of exactly the maximum" :
		              "NO text of exactly the maximum");
		in = long_input(&r, prefix, IMAP_BL_TEXT_MAX, 't', "\r\n");
		r.res[0] = R(BL_SEND, LOGIN_LP);
		r.res[1] = (struct xres){ 1, rcs[i], want, IMAP_BL_TEXT_MAX };
		run_row(&r);
		free(in);

		r = plain_row(rcs[i] == BL_OK ? "OK text one under the maximum" :
		              "NO text one under the maximum");
		in = long_input(&r, prefix, IMAP_BL_TEXT_MAX - 1, 't', "\r\n");
		r.res[0] = R(BL_SEND, LOGIN_LP);
		r.res[1] = (struct xres){ 1, rcs[i], want + 1, IMAP_BL_TEXT_MAX - 1 };
		run_row(&r);
		free(in);
	}
	free(want);
}

/* ---- credentials at their limits ---- */

/* Initialises with three fields of the given lengths, filled with z, u
 * and p. */
static int init_sized(struct imap_blogin *b, size_t zl, size_t ul, size_t pl)
{
	static char z[IMAP_BL_CRED_MAX + 2], u[IMAP_BL_CRED_MAX + 2], p[IMAP_BL_CRED_MAX + 2];

	memset(z, 'z', sizeof z);
	memset(u, 'u', sizeof u);
	memset(p, 'p', sizeof p);
	return imap_bl_init(b, z, zl, u, ul, p, pl);
}

/* imap_bl_init takes IMAP_BL_CRED_MAX bytes in each field, refuses one
 * more, and treats a NULL authzid as none. */
static void test_init_limits(void **state)
{
	static const struct {
		size_t z, u, p;
		int rc;
	} cases[] = {
		{ 0, 0, 0, 0 },
		{ IMAP_BL_CRED_MAX, IMAP_BL_CRED_MAX, IMAP_BL_CRED_MAX, 0 },
		{ IMAP_BL_CRED_MAX + 1, 1, 1, -1 },
		{ 0, IMAP_BL_CRED_MAX + 1, 1, -1 },
		{ 0, 1, IMAP_BL_CRED_MAX + 1, -1 },
	};
	struct imap_blogin *b = malloc(sizeof *b);
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
			if (cases[i].u > 0)
				assert_int_equal(b->user[b->user_len - 1], 'u');
		} else {
			/* nothing copied, and feeding does not log in */
			assert_true(zeroed(b->pass, sizeof b->pass));
			assert_true(zeroed(b->user, sizeof b->user));
			assert_int_equal(imap_bl_feed(b, (const uint8_t *)G_LITPLUS,
			                              strlen(G_LITPLUS), &used), BL_FAIL);
			assert_int_equal(used, 0);
			assert_int_equal(b->out_len, 0);
		}
		imap_bl_free(b);
	}
	assert_int_equal(imap_bl_init(b, NULL, 5, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(b->authzid_len, 0);
	assert_int_equal(imap_bl_feed(b, (const uint8_t *)G_LITPLUS, strlen(G_LITPLUS), &used),
	                 BL_SEND);
	assert_int_equal(b->out_len, strlen(LOGIN_LP));
	assert_memory_equal(b->out, LOGIN_LP, strlen(LOGIN_LP));
	imap_bl_free(b);
	free(b);
}

/* Feeds a greeting with a fresh machine of three 1024-byte fields. */
static enum bl_rc feed_max(struct imap_blogin *b, size_t zl, const char *greeting)
{
	size_t used;

	assert_int_equal(init_sized(b, zl, IMAP_BL_CRED_MAX, IMAP_BL_CRED_MAX), 0);
	return imap_bl_feed(b, (const uint8_t *)greeting, strlen(greeting), &used);
}

/* The largest requests fit in out: AUTHENTICATE PLAIN with three
 * 1024-byte fields (checked by decoding), LOGIN with two 1024-byte
 * literals, byte for byte. */
static void test_max_creds(void **state)
{
	static const char pre[] = "M1 AUTHENTICATE PLAIN ";
	struct imap_blogin *b = malloc(sizeof *b);
	uint8_t *want = malloc(sizeof b->out), *dec = malloc(sizeof b->out);
	size_t n = 0, b64;

	(void)state;

	assert_non_null(b);
	assert_non_null(want);
	assert_non_null(dec);

	assert_int_equal(feed_max(b, IMAP_BL_CRED_MAX, G_DOVECOT), BL_SEND);
	b64 = (3 * IMAP_BL_CRED_MAX + 2 + 2) / 3 * 4;
	assert_int_equal(b->out_len, strlen(pre) + b64 + 2);
	assert_memory_equal(b->out, pre, strlen(pre));
	assert_memory_equal(b->out + b->out_len - 2, "\r\n", 2);
	assert_int_equal(sasl_b64_decode((const char *)b->out + strlen(pre), b64, dec,
	                                 sizeof b->out), 3 * IMAP_BL_CRED_MAX + 2);
	memset(want, 'z', IMAP_BL_CRED_MAX);
	want[IMAP_BL_CRED_MAX] = '\0';
	memset(want + IMAP_BL_CRED_MAX + 1, 'u', IMAP_BL_CRED_MAX);
	want[2 * IMAP_BL_CRED_MAX + 1] = '\0';
	memset(want + 2 * IMAP_BL_CRED_MAX + 2, 'p', IMAP_BL_CRED_MAX);
	assert_memory_equal(dec, want, 3 * IMAP_BL_CRED_MAX + 2);
	imap_bl_free(b);

	assert_int_equal(feed_max(b, 0, G_LITPLUS), BL_SEND);
	n = (size_t)sprintf((char *)want, "M1 LOGIN {%d+}\r\n", IMAP_BL_CRED_MAX);
	memset(want + n, 'u', IMAP_BL_CRED_MAX);
	n += IMAP_BL_CRED_MAX;
	n += (size_t)sprintf((char *)want + n, " {%d+}\r\n", IMAP_BL_CRED_MAX);
	memset(want + n, 'p', IMAP_BL_CRED_MAX);
	n += IMAP_BL_CRED_MAX;
	memcpy(want + n, "\r\n", 2);
	n += 2;
	assert_int_equal(b->out_len, n);
	assert_memory_equal(b->out, want, n);
	imap_bl_free(b);

	free(dec);
	free(want);
	free(b);
}

/* ---- lifetime ---- */

/* A zero-length feed wipes the request the last SEND asked for. */
static void test_empty_feed_wipes_out(void **state)
{
	struct imap_blogin *b = malloc(sizeof *b);
	size_t used = 99;

	(void)state;

	assert_non_null(b);
	assert_int_equal(imap_bl_init(b, "", 0, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(imap_bl_feed(b, (const uint8_t *)G_LITPLUS, strlen(G_LITPLUS), &used),
	                 BL_SEND);
	assert_int_equal(used, strlen(G_LITPLUS));
	assert_memory_equal(b->out, LOGIN_LP, strlen(LOGIN_LP));
	assert_int_equal(imap_bl_feed(b, (const uint8_t *)"", 0, &used), BL_NEED_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(b->out_len, 0);
	assert_true(zeroed(b->out, sizeof b->out));
	imap_bl_free(b);
	free(b);
}

/* After OK, NO or FAIL a feed consumes nothing and fails. */
static void test_feed_after_end(void **state)
{
	static const char *const ins[] = {
		G_LITPLUS "M1 OK\r\n", G_LITPLUS "M1 NO\r\n", "* BYE\r\n",
	};
	struct imap_blogin *b = malloc(sizeof *b);
	size_t used, off;

	(void)state;

	assert_non_null(b);
	for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) {
		enum bl_rc rc;

		assert_int_equal(imap_bl_init(b, "", 0, "alice", 5, "s3cret", 6), 0);
		off = 0;
		do {
			rc = imap_bl_feed(b, (const uint8_t *)ins[i] + off, strlen(ins[i]) - off, &used);
			off += used;
		} while (rc == BL_SEND);
		assert_true(rc == BL_OK || rc == BL_NO || rc == BL_FAIL);
		assert_int_equal(off, strlen(ins[i]));
		used = 99;
		assert_int_equal(imap_bl_feed(b, (const uint8_t *)"M1 OK\r\n", 7, &used),
		                 BL_FAIL);
		assert_int_equal(used, 0);
		assert_string_equal(b->text, "the backend login has ended");
		assert_int_equal(b->out_len, 0);
		imap_bl_free(b);
	}
	free(b);
}

/* imap_bl_free in the middle of a login wipes the request in out and the
 * credentials; the machine then refuses to go on. */
static void test_free_mid_login(void **state)
{
	struct imap_blogin *b = malloc(sizeof *b);
	size_t used = 99;

	(void)state;

	assert_non_null(b);
	assert_int_equal(imap_bl_init(b, "admin", 5, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(imap_bl_feed(b, (const uint8_t *)G_DOVECOT "* partial", strlen(G_DOVECOT) + 9,
	                              &used), BL_SEND);
	assert_int_equal(used, strlen(G_DOVECOT));
	assert_int_equal(imap_bl_feed(b, (const uint8_t *)"* partial", 9, &used),
	                 BL_NEED_MORE);
	assert_int_equal(b->line_len, 9);
	assert_int_equal(imap_bl_init(b, "admin", 5, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(imap_bl_feed(b, (const uint8_t *)G_DOVECOT, strlen(G_DOVECOT), &used),
	                 BL_SEND);
	assert_true(b->out_len > 0);
	imap_bl_free(b);
	assert_freed(b);
	used = 99;
	assert_int_equal(imap_bl_feed(b, (const uint8_t *)"M1 OK\r\n", 7, &used), BL_FAIL);
	assert_int_equal(used, 0);
	free(b);
}

/* The caps the greeting announced are recorded as IMAP_BL_CAP_* bits. */
static void test_caps_bits(void **state)
{
	static const struct {
		const char *greeting;
		enum bl_rc rc;
		unsigned caps;
	} cases[] = {
		{ G_DOVECOT, BL_SEND,
		  IMAP_BL_CAP_AUTH_PLAIN | IMAP_BL_CAP_SASL_IR | IMAP_BL_CAP_LITERAL_PLUS },
		{ G_LOGINDIS, BL_FAIL, IMAP_BL_CAP_LOGINDISABLED | IMAP_BL_CAP_STARTTLS },
		{ G_SYNC, BL_SEND, 0 },
		{ "* OK [CAPABILITY auth=plain Literal+ sasl-ir LoginDisabled StartTLS] x\r\n",
		  BL_SEND, IMAP_BL_CAP_AUTH_PLAIN | IMAP_BL_CAP_SASL_IR | IMAP_BL_CAP_LITERAL_PLUS |
		  IMAP_BL_CAP_LOGINDISABLED | IMAP_BL_CAP_STARTTLS },
		{ "* OK [CAPABILITY STARTTLSX XSTARTTLS STARTTL] x\r\n", BL_SEND, 0 },
	};
	struct imap_blogin *b = malloc(sizeof *b);
	size_t used;

	(void)state;

	assert_non_null(b);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(imap_bl_init(b, "", 0, "alice", 5, "s3cret", 6), 0);
		assert_int_equal(imap_bl_feed(b, (const uint8_t *)cases[i].greeting,
		                              strlen(cases[i].greeting), &used), cases[i].rc);
		assert_int_equal(used, strlen(cases[i].greeting));
		if (b->caps != cases[i].caps)
			fail_msg("case %zu: caps 0x%x, expected 0x%x", i, b->caps, cases[i].caps);
		imap_bl_free(b);
	}
	free(b);
}


/* Feeds text whole; checks the result and, for SEND, the bytes. */
static void feed_expect(struct imap_blogin *b, const char *in, enum bl_rc want, const char *bytes)
{
	size_t used = 0;
	enum bl_rc rc = imap_bl_feed(b, (const uint8_t *)in, strlen(in), &used);

	assert_int_equal(rc, want);
	assert_int_equal(used, strlen(in));
	if (want == BL_SEND) {
		assert_int_equal(b->out_len, strlen(bytes));
		assert_memory_equal(b->out, bytes, b->out_len);
	} else if (bytes) {
		assert_string_equal(b->text, bytes);
	}
}

#define ID_LIST "(\"x-originating-ip\" \"192.0.2.7\" \"x-originating-port\" \"4321\")"

/* ID goes out in the same write as the login, and its answer (whatever
 * it is) does not end the login. */
static void test_id_before_login(void **state)
{
	struct imap_blogin b;
	char big[IMAP_BL_ID_MAX + 2];

	(void)state;
	assert_int_equal(imap_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(imap_bl_set_id(&b, ID_LIST), 0);
	feed_expect(&b, G_DOVECOT, BL_SEND, "M2 ID " ID_LIST "\r\n" AUTH_IR);
	feed_expect(&b, "* ID NIL\r\nM2 OK ID completed.\r\nM1 OK Logged in\r\n", BL_OK,
	            "Logged in");
	imap_bl_free(&b);

	/* synchronizing literals: ID's BAD comes before the "+" */
	assert_int_equal(imap_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(imap_bl_set_id(&b, ID_LIST), 0);
	feed_expect(&b, G_SYNC, BL_SEND, "M2 ID " ID_LIST "\r\nM1 LOGIN {5}\r\n");
	feed_expect(&b, "M2 BAD no ID here\r\n+ go\r\n", BL_SEND, "alice {6}\r\n");
	imap_bl_free(&b);

	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(imap_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	assert_int_equal(imap_bl_set_id(&b, big), -1);
	imap_bl_free(&b);
}


/* ---- STARTTLS to the backend ---- */

/* Dovecot on its plaintext port with disable_plaintext_auth: STARTTLS
 * and LOGINDISABLED in clear, AUTH=PLAIN only over TLS. */
#define G_TLS     "* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ " \
                  "STARTTLS LOGINDISABLED] Dovecot (Debian) ready.\r\n"
#define CAPS_CLEAR "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ " \
                  "STARTTLS LOGINDISABLED\r\n"
#define CAPS_TLS  "* CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ " \
                  "AUTH=PLAIN\r\n"
#define M0_OK     "M0 OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
#define M3_OK     "M3 OK Begin TLS negotiation now.\r\n"
#define STARTTLS  "M3 STARTTLS\r\n"
#define NO_STARTTLS "backend does not offer STARTTLS"

/* XROW(name, id, authzid, user, pass, transcript, tail, results...): a
 * STARTTLS row; TROW logs in as alice/s3cret without ID. */
#define XROW(nm, i, z, u, p, input, tl, ...) \
	{ .name = nm, .authzid = z, .authzid_len = sizeof(z) - 1, \
	  .user = u, .user_len = sizeof(u) - 1, .pass = p, .pass_len = sizeof(p) - 1, \
	  .in = input, .len = sizeof(input) - 1, .tail = tl, .res = { __VA_ARGS__ }, \
	  .starttls = 1, .id = i }
#define TROW(nm, input, tl, ...) XROW(nm, NULL, "", "alice", "s3cret", input, tl, __VA_ARGS__)

static const struct row tls_rows[] = {
	/* ---- the upgrade, then the login on what TLS says ---- */
	TROW("Dovecot: STARTTLS from the greeting, AUTH=PLAIN after TLS",
	     G_TLS M3_OK CAPS_TLS M0_OK M1_OK, 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), SEND(AUTH_IR), OK(OK_CAPS)),
	TROW("greeting without caps: CAPABILITY, STARTTLS, CAPABILITY again",
	     G_NOCAPS CAPS_CLEAR M0_OK M3_OK CAPS_TLS M0_OK M1_OK, 0,
	     SEND(CAPA), SEND(STARTTLS), TLS_UP, SEND(CAPA), SEND(AUTH_IR), OK(OK_CAPS)),
	TROW("LOGINDISABLED only in clear: LOGIN over TLS",
	     G_TLS M3_OK "* CAPABILITY IMAP4rev1 LITERAL+\r\nM0 OK\r\nM1 OK Logged in\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), SEND(LOGIN_LP), OK("Logged in")),
	TROW("AUTH=PLAIN, SASL-IR, LITERAL+ only in clear: synchronizing LOGIN",
	     "* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ AUTH=PLAIN STARTTLS] ready\r\n" M3_OK
	     "* CAPABILITY IMAP4rev1\r\nM0 OK\r\n+ OK\r\n+ OK\r\nM1 OK in\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), SEND(LOGIN_1), SEND(LOGIN_2), SEND(LOGIN_3),
	     OK("in")),
	TROW("AUTH=PLAIN without SASL-IR over TLS: response after +",
	     G_TLS M3_OK "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\nM0 OK\r\n+ \r\nM1 OK y\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), SEND(AUTH_CMD), SEND(AUTH_RESP), OK("y")),
	TROW("LOGINDISABLED over TLS too",
	     G_TLS M3_OK "* CAPABILITY IMAP4rev1 LOGINDISABLED\r\nM0 OK\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), FAIL("backend advertises LOGINDISABLED")),
	TROW("[CAPABILITY] on M3's OK came in clear: not used",
	     G_TLS "M3 OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] Begin TLS\r\n"
	     "* CAPABILITY IMAP4rev1 LITERAL+\r\nM0 OK\r\nM1 OK\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), SEND(LOGIN_LP), OK("")),
	TROW("untagged noise before M3's OK",
	     G_TLS "* OK still here\r\n* 1 EXISTS\r\n* CAPABILITY AUTH=PLAIN\r\n* NO hm\r\n" M3_OK
	     "* CAPABILITY LITERAL+\r\nM0 OK\r\nM1 OK\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), SEND(LOGIN_LP), OK("")),
	TROW("lower-case starttls and ok", "* ok [capability starttls] hi\r\nM3 ok go\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), MORE),
	TROW("transcript ends after M3's OK", G_TLS M3_OK, 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), MORE),
	TROW("client bytes after OK stay", G_TLS M3_OK CAPS_TLS M0_OK M1_OK "* 3 EXISTS\r\n", 12,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), SEND(AUTH_IR), OK(OK_CAPS)),
	XROW("ID goes out with the login, over TLS", ID_LIST, "", "alice", "s3cret",
	     G_TLS M3_OK CAPS_TLS M0_OK "* ID NIL\r\nM2 OK ID completed.\r\n" M1_OK, 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), SEND("M2 ID " ID_LIST "\r\n" AUTH_IR),
	     OK(OK_CAPS)),
	XROW("ID with synchronizing literals over TLS", ID_LIST, "", "alice", "s3cret",
	     G_TLS M3_OK "* CAPABILITY IMAP4rev1\r\nM0 OK\r\nM2 BAD no\r\n+ OK\r\n+ OK\r\n"
	     "M1 OK\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), SEND("M2 ID " ID_LIST "\r\n" LOGIN_1),
	     SEND(LOGIN_2), SEND(LOGIN_3), OK("")),
	XROW("M2 before STARTTLS's answer: ID was not sent", ID_LIST, "", "alice", "s3cret",
	     G_TLS "M2 OK\r\n", 0, SEND(STARTTLS), FAIL(UNEXPECTED)),
	XROW("authzid over TLS", NULL, "admin", "alice", "s3cret",
	     G_TLS M3_OK CAPS_TLS "M0 OK\r\nM1 OK done\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA),
	     SEND("M1 AUTHENTICATE PLAIN YWRtaW4AYWxpY2UAczNjcmV0\r\n"), OK("done")),
	XROW("authzid: AUTH=PLAIN only in clear", NULL, "admin", "alice", "s3cret",
	     "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN STARTTLS] x\r\n" M3_OK "M0 OK\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), NO("backend cannot log in as another user")),
	XROW("NUL in the password: STARTTLS first, NO after", NULL, "", "alice", "s3\0cret",
	     G_TLS M3_OK CAPS_TLS "M0 OK\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), NO("credentials contain a NUL byte")),
	XROW("every awkward byte over TLS", NULL, "", HUSER, HPASS,
	     G_TLS M3_OK "* CAPABILITY LITERAL+\r\nM0 OK\r\nM1 OK\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA),
	     SEND("M1 LOGIN {9+}\r\n" HUSER " {17+}\r\n" HPASS "\r\n"), OK("")),

	/* ---- no STARTTLS offered: nothing goes out ---- */
	TROW("greeting caps without STARTTLS", G_DOVECOT M1_OK, sizeof(M1_OK) - 1,
	     FAIL(NO_STARTTLS)),
	TROW("CAPABILITY without STARTTLS",
	     G_NOCAPS "* CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN LITERAL+\r\n" M0_OK, 0,
	     SEND(CAPA), FAIL(NO_STARTTLS)),
	TROW("M0 OK without any CAPABILITY", G_NOCAPS "M0 OK\r\n", 0,
	     SEND(CAPA), FAIL(NO_STARTTLS)),
	TROW("names that only look like STARTTLS",
	     "* OK [CAPABILITY STARTTLSX XSTARTTLS STARTTL STLS AUTH=PLAIN] x\r\n", 0,
	     FAIL(NO_STARTTLS)),
	TROW("STARTTLS only outside the [CAPABILITY] code",
	     "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] STARTTLS\r\n", 0, FAIL(NO_STARTTLS)),
	TROW("CAPABILITY answered NO", G_NOCAPS "M0 NO not now\r\n", 0,
	     SEND(CAPA), FAIL("not now")),

	/* ---- STARTTLS's answer ---- */
	TROW("STARTTLS answered NO", G_TLS "M3 NO [UNAVAILABLE] TLS support isn't enabled.\r\n", 0,
	     SEND(STARTTLS), FAIL("[UNAVAILABLE] TLS support isn't enabled.")),
	TROW("STARTTLS answered NO without text", G_TLS "M3 NO\r\nM1 OK\r\n", 7,
	     SEND(STARTTLS), FAIL("backend refused STARTTLS")),
	TROW("STARTTLS answered BAD", G_TLS "M3 BAD Unknown command\r\n", 0,
	     SEND(STARTTLS), FAIL("Unknown command")),
	TROW("STARTTLS answered BAD without text", G_TLS "M3 bad\r\n", 0,
	     SEND(STARTTLS), FAIL("backend refused STARTTLS")),
	TROW("BYE while waiting for M3", G_TLS "* BYE Server shutting down.\r\n" M3_OK,
	     sizeof(M3_OK) - 1, SEND(STARTTLS), FAIL("Server shutting down.")),
	TROW("BYE without text while waiting for M3", G_TLS "* BYE\r\n", 0,
	     SEND(STARTTLS), FAIL("backend said BYE")),
	TROW("BYE greeting", "* BYE Too many connections\r\n", 0, FAIL("Too many connections")),
	TROW("BYE after TLS", G_TLS M3_OK "* BYE Disconnected for inactivity.\r\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), FAIL("Disconnected for inactivity.")),
	TROW("PREAUTH greeting", "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] hi\r\n", 0,
	     FAIL("backend greeted with PREAUTH")),
	TROW("M1 while waiting for M3", G_TLS "M1 OK\r\n", 0, SEND(STARTTLS), FAIL(UNEXPECTED)),
	TROW("M0 while waiting for M3", G_TLS "M0 OK\r\n", 0, SEND(STARTTLS), FAIL(UNEXPECTED)),
	TROW("+ while waiting for M3", G_TLS "+ go\r\n", 0, SEND(STARTTLS), FAIL(UNEXPECTED)),
	TROW("M3 OKAY", G_TLS "M3 OKAY\r\n", 0, SEND(STARTTLS), FAIL(UNEXPECTED)),
	TROW("M3 PREAUTH", G_TLS "M3 PREAUTH\r\n", 0, SEND(STARTTLS), FAIL(UNEXPECTED)),
	TROW("tag m3 in lower case", G_TLS "m3 OK\r\n", 0, SEND(STARTTLS), FAIL(UNEXPECTED)),
	TROW("M3 again after TLS", G_TLS M3_OK M3_OK, 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), FAIL(UNEXPECTED)),
	TROW("NUL in M3's answer", G_TLS "M3 OK \0\r\n", 2,
	     SEND(STARTTLS), FAIL("backend sent a NUL byte")),
	TROW("bare LF", "* OK [CAPABILITY STARTTLS] hi\nM3 OK\n* CAPABILITY LITERAL+\nM0 OK\n"
	     "M1 OK in\n", 0,
	     SEND(STARTTLS), TLS_UP, SEND(CAPA), SEND(LOGIN_LP), OK("in")),
};

#define NTLS_ROWS (sizeof tls_rows / sizeof tls_rows[0])

/* Every STARTTLS transcript, whole, byte by byte and at every split; the
 * runner checks that nothing but CAPABILITY and STARTTLS, and never a
 * credential, goes out before BL_STARTTLS. */
static void test_starttls(void **state)
{
	(void)state;
	for (size_t i = 0; i < NTLS_ROWS; i++)
		run_row(&tls_rows[i]);
}

/* Feeds text whole up to BL_STARTTLS after the greeting g. */
static void to_tls(struct imap_blogin *b, const char *g)
{
	assert_int_equal(imap_bl_init(b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	imap_bl_set_starttls(b);
	feed_expect(b, g, BL_SEND, STARTTLS);
	feed_expect(b, M3_OK, BL_STARTTLS, NULL);
	assert_int_equal(b->out_len, 0);
}

/* Everything sent in clear is CAPABILITY and STARTTLS; the credentials
 * go out only after imap_bl_tls_started. */
static void test_starttls_creds_after_tls(void **state)
{
	static const char *const in[] = {
		G_NOCAPS, CAPS_CLEAR M0_OK, M3_OK,
		"* CAPABILITY IMAP4rev1\r\nM0 OK\r\n", "+ OK\r\n", "+ OK\r\n", "M1 OK\r\n",
	};
	static const enum bl_rc want[] = {
		BL_SEND, BL_SEND, BL_STARTTLS, BL_SEND, BL_SEND, BL_SEND, BL_OK,
	};
	struct imap_blogin b;
	char clear[64] = "", tls[128] = "";
	int up = 0;
	enum bl_rc rc;

	(void)state;
	assert_int_equal(imap_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	imap_bl_set_starttls(&b);
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		size_t used;

		rc = imap_bl_feed(&b, (const uint8_t *)in[i], strlen(in[i]), &used);
		assert_int_equal(rc, want[i]);
		assert_int_equal(used, strlen(in[i]));
		if (rc == BL_STARTTLS) {
			up = 1;
			rc = imap_bl_tls_started(&b);
			assert_int_equal(rc, BL_SEND);
		}
		if (rc == BL_SEND)
			strncat(up ? tls : clear, (const char *)b.out, b.out_len);
	}
	assert_string_equal(clear, CAPA STARTTLS);
	assert_string_equal(tls, CAPA LOGIN_1 LOGIN_2 LOGIN_3);
	imap_bl_free(&b);
}

/* imap_bl_tls_started forgets the capabilities learned in clear. */
static void test_starttls_caps_forgotten(void **state)
{
	struct imap_blogin b;

	(void)state;
	to_tls(&b, "* OK [CAPABILITY AUTH=PLAIN SASL-IR LITERAL+ LOGINDISABLED STARTTLS] x\r\n");
	assert_int_equal(b.caps, IMAP_BL_CAP_AUTH_PLAIN | IMAP_BL_CAP_SASL_IR |
	                 IMAP_BL_CAP_LITERAL_PLUS | IMAP_BL_CAP_LOGINDISABLED |
	                 IMAP_BL_CAP_STARTTLS);
	assert_int_equal(imap_bl_tls_started(&b), BL_SEND);
	assert_int_equal(b.out_len, strlen(CAPA));
	assert_memory_equal(b.out, CAPA, b.out_len);
	assert_int_equal(b.caps, 0);
	feed_expect(&b, "* CAPABILITY IMAP4rev1 STARTTLS\r\nM0 OK\r\n", BL_SEND, LOGIN_1);
	assert_int_equal(b.caps, IMAP_BL_CAP_STARTTLS);
	imap_bl_free(&b);
}

/* Bytes after M3's OK in the same read are returned unused; a feed
 * before imap_bl_tls_started with any byte fails (they came in clear),
 * an empty one waits. */
static void test_starttls_bytes_in_clear(void **state)
{
	static const char in[] = M3_OK "* CAPABILITY AUTH=PLAIN\r\n";
	struct imap_blogin b;
	size_t used = 99;

	(void)state;
	assert_int_equal(imap_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	imap_bl_set_starttls(&b);
	feed_expect(&b, G_TLS, BL_SEND, STARTTLS);
	assert_int_equal(imap_bl_feed(&b, (const uint8_t *)in, sizeof in - 1, &used), BL_STARTTLS);
	assert_int_equal(used, strlen(M3_OK));
	assert_int_equal(imap_bl_feed(&b, (const uint8_t *)"", 0, &used), BL_NEED_MORE);
	assert_int_equal(used, 0);
	assert_int_equal(imap_bl_feed(&b, (const uint8_t *)in + strlen(M3_OK), 1, &used), BL_FAIL);
	assert_int_equal(used, 0);
	assert_string_equal(b.text, "backend sent bytes in clear after STARTTLS");
	assert_int_equal(b.pass_len, 0);
	assert_true(zeroed(b.pass, sizeof b.pass));
	assert_int_equal(imap_bl_tls_started(&b), BL_FAIL);
	assert_int_equal(b.out_len, 0);
	imap_bl_free(&b);
}

/* A feed after the login ended: FAIL, nothing used. */
static void feed_ended(struct imap_blogin *b, const char *in)
{
	size_t used = 99;

	assert_int_equal(imap_bl_feed(b, (const uint8_t *)in, strlen(in), &used), BL_FAIL);
	assert_int_equal(used, 0);
	assert_string_equal(b->text, "the backend login has ended");
}

/* imap_bl_tls_started anywhere but right after BL_STARTTLS fails, ends
 * the login and forgets the password. */
static void test_starttls_wrong_state(void **state)
{
	struct imap_blogin b;

	(void)state;
	/* before the greeting */
	assert_int_equal(imap_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	imap_bl_set_starttls(&b);
	assert_int_equal(imap_bl_tls_started(&b), BL_FAIL);
	assert_string_equal(b.text, "TLS started without STARTTLS");
	assert_int_equal(b.pass_len, 0);
	assert_int_equal(b.out_len, 0);
	feed_ended(&b, G_TLS);
	imap_bl_free(&b);

	/* while M3 STARTTLS waits for its answer: the request is wiped */
	assert_int_equal(imap_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	imap_bl_set_starttls(&b);
	feed_expect(&b, G_TLS, BL_SEND, STARTTLS);
	assert_int_equal(imap_bl_tls_started(&b), BL_FAIL);
	assert_string_equal(b.text, "TLS started without STARTTLS");
	assert_int_equal(b.out_len, 0);
	assert_true(zeroed(b.out, sizeof b.out));
	feed_ended(&b, M3_OK);
	imap_bl_free(&b);

	/* twice */
	to_tls(&b, G_TLS);
	assert_int_equal(imap_bl_tls_started(&b), BL_SEND);
	assert_int_equal(imap_bl_tls_started(&b), BL_FAIL);
	assert_string_equal(b.text, "TLS started without STARTTLS");
	assert_int_equal(b.pass_len, 0);
	imap_bl_free(&b);

	/* without imap_bl_set_starttls, mid-login: LOGIN's first line wiped */
	assert_int_equal(imap_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	feed_expect(&b, G_SYNC, BL_SEND, LOGIN_1);
	assert_int_equal(imap_bl_tls_started(&b), BL_FAIL);
	assert_int_equal(b.out_len, 0);
	assert_true(zeroed(b.out, sizeof b.out));
	assert_int_equal(b.pass_len, 0);
	imap_bl_free(&b);

	/* after the login */
	assert_int_equal(imap_bl_init(&b, NULL, 0, "alice", 5, "s3cret", 6), 0);
	feed_expect(&b, G_LITPLUS, BL_SEND, LOGIN_LP);
	feed_expect(&b, "M1 OK hi\r\n", BL_OK, "hi");
	assert_int_equal(imap_bl_tls_started(&b), BL_FAIL);
	assert_string_equal(b.text, "TLS started without STARTTLS");
	imap_bl_free(&b);

	/* after imap_bl_free */
	to_tls(&b, G_TLS);
	imap_bl_free(&b);
	assert_int_equal(imap_bl_tls_started(&b), BL_FAIL);
	assert_int_equal(b.out_len, 0);
}

static const struct CMUnitTest extra[] = {
	cmocka_unit_test(test_id_before_login),
	cmocka_unit_test(test_starttls),
	cmocka_unit_test(test_starttls_creds_after_tls),
	cmocka_unit_test(test_starttls_caps_forgotten),
	cmocka_unit_test(test_starttls_bytes_in_clear),
	cmocka_unit_test(test_starttls_wrong_state),
	cmocka_unit_test(test_line_max),
	cmocka_unit_test(test_text_max),
	cmocka_unit_test(test_init_limits),
	cmocka_unit_test(test_max_creds),
	cmocka_unit_test(test_empty_feed_wipes_out),
	cmocka_unit_test(test_feed_after_end),
	cmocka_unit_test(test_free_mid_login),
	cmocka_unit_test(test_caps_bits),
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
	return cmocka_run_group_tests_name("imap_backend", tests, NULL, NULL);
}
