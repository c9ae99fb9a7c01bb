/*
 * Unit tests for protocols/imap.c: the IMAP pre-auth dialogue and
 * imap_caps_filter().
 *
 * A dialogue row is a listener configuration and a script. Each step
 * either feeds bytes (and expects an action, the exact out bytes and how
 * many bytes were used), feeds the unused rest of the previous buffer
 * (what a session does after DLG_REPLY, or after DLG_LOGIN once the login
 * ended), tells the dialogue TLS started, puts the greeting in out, or
 * reports the end of the backend login.
 *
 * Every script runs several ways: each feed whole; each feed byte by byte
 * (all bytes before the last used one must give DLG_NONE, the last one the
 * expected action); and each feed split in two at every offset. The
 * action, out and the end offset must be the same every way.
 *
 * Credentials: a DLG_LOGIN step states cred byte for byte (and the
 * parser's buffer must be zero); after imap_dlg_login_done and
 * imap_dlg_free cred must be all zero; FEEDW steps check that neither cred
 * nor the parser's buffer keeps anything, FEEDC steps check cred only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap.h"

#define MAX_STEPS 24
#define ALL SIZE_MAX                  /* used: the whole buffer */

/* Bytes and their length; s may contain NUL. */
#define B(s) s, sizeof(s) - 1
/* The length of a prefix, for "used". */
#define U(s) (sizeof(s) - 1)

enum kind { K_END = 0, K_GREET, K_FEED, K_MORE, K_TLS, K_DONE };
enum { WIPED_CRED = 1, WIPED_ALL };

struct xcred {
	const char *user;
	size_t user_len;
	const char *pass;
	size_t pass_len;
	const char *authzid;
	size_t authzid_len;
	const char *mech;
};

struct step {
	enum kind k;
	const char *in;               /* FEED */
	size_t len;
	enum dlg_act act;             /* FEED, MORE, DONE */
	const char *out;              /* exact out bytes (never NUL inside) */
	size_t used;                  /* FEED, MORE; ALL = len */
	const struct xcred *cred;     /* DLG_LOGIN: expected credentials */
	int wiped;                    /* WIPED_CRED: cred is zero; WIPED_ALL: and
	                               * the parser's buffer too */
	enum dlg_login r;             /* DONE */
	const char *text;             /* DONE: backend text, may be NULL */
};

struct lcfg {
	int starttls;                 /* the listener starts in clear */
	int tls;                      /* TLS active at init */
	const char *caps_extra;
	uint32_t max_command;
	unsigned max_auth_failures;
};

struct row {
	const char *name;
	struct lcfg c;
	struct step s[MAX_STEPS];
};

#define GREET(o) { .k = K_GREET, .out = o }
#define FEED(i, a, o, u) { .k = K_FEED, .in = i, .len = sizeof(i) - 1, .act = a, .out = o, \
                           .used = u }
#define FEEDW(i, a, o, u) { .k = K_FEED, .in = i, .len = sizeof(i) - 1, .act = a, .out = o, \
                            .used = u, .wiped = WIPED_ALL }
#define FEEDC(i, a, o, u) { .k = K_FEED, .in = i, .len = sizeof(i) - 1, .act = a, .out = o, \
                            .used = u, .wiped = WIPED_CRED }
#define LOGIN(i, u, c) { .k = K_FEED, .in = i, .len = sizeof(i) - 1, .act = DLG_LOGIN, \
                         .out = "", .used = u, .cred = c }
#define MORE(a, o, u) { .k = K_MORE, .act = a, .out = o, .used = u }
#define MORE_LOGIN(u, c) { .k = K_MORE, .act = DLG_LOGIN, .out = "", .used = u, .cred = c }
#define TLS { .k = K_TLS }
#define DONE(res, t, a, o) { .k = K_DONE, .r = res, .text = t, .act = a, .out = o }
/* A reply that uses the whole buffer. */
#define R(i, o) FEED(i, DLG_REPLY, o, ALL)

/* Listener configurations. */
#define CLEAR { .starttls = 1, .tls = 0, .caps_extra = "IDLE", .max_command = 1024, \
                .max_auth_failures = 3 }
#define IMPLICIT { .starttls = 0, .tls = 1, .caps_extra = "IDLE NAMESPACE", \
                   .max_command = 1024, .max_auth_failures = 3 }

#define GREETING "moat ready"
#define CAPS_CLEAR "IMAP4rev1 STARTTLS LOGINDISABLED"
#define CAPS_TLS "IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN AUTH=LOGIN"
#define G_CLEAR "* OK [CAPABILITY " CAPS_CLEAR "] " GREETING "\r\n"
#define CAPA_TLS_IDLE "* CAPABILITY " CAPS_TLS " IDLE\r\n"
#define CAPA_IMPL "* CAPABILITY " CAPS_TLS " IDLE NAMESPACE\r\n"
#define PRIV "NO [PRIVACYREQUIRED] Use STARTTLS before logging in\r\n"
#define AUTHFAIL "NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
#define BYE_FAIL "* BYE Too many authentication failures\r\n"
#define BYE_BAD "* BYE Too many invalid commands\r\n"
#define READY "+ Ready for literal data\r\n"
#define P_USER "+ VXNlcm5hbWU6\r\n"
#define P_PASS "+ UGFzc3dvcmQ6\r\n"

#define X16 "xxxxxxxxxxxxxxxx"
#define X256 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16 X16
#define X1024 X256 X256 X256 X256
#define TAG32 "abcdefghijklmnopqrstuvwxyz0123.-"

/* Expected credentials. */
#define CRED(u, p, z, m) { B(u), B(p), B(z), m }
static const struct xcred c_user_pass = CRED("user", "pass", "", "LOGIN");
static const struct xcred c_user_pass2 = CRED("user", "pass2", "", "LOGIN");
static const struct xcred c_quoted = CRED("us er", "p\"a\\ss w", "", "LOGIN");
static const struct xcred c_8bit = CRED("j\xc3\xb6rg", "s3cr\xc3\xa9t w/ space", "", "LOGIN");
static const struct xcred c_literal = CRED("j\xc3\xb6rg", "p \"a\" b\\c", "", "LOGIN");
static const struct xcred c_lit_crlf = CRED("u", "a\r\nb{3}\r\n", "", "LOGIN");
static const struct xcred c_empty_pass = CRED("user", "", "", "LOGIN");
static const struct xcred c_1024 = CRED(X1024, "p", "", "LOGIN");
static const struct xcred c_plain = CRED("user", "pass", "", "PLAIN");
static const struct xcred c_plain_z = CRED("user", "pass", "admin", "PLAIN");
static const struct xcred c_plain_8 = CRED("\xc3\xa9t\xc3\xa9", "p\xc3\xa4ss", "", "PLAIN");
static const struct xcred c_alogin = CRED("user", "pass", "", "AUTH=LOGIN");

static const struct row rows[] = {
	/* ---- greetings ---- */
	{ "greeting in clear on a STARTTLS listener", CLEAR, {
		GREET(G_CLEAR),
	} },
	{ "greeting on an implicit TLS listener", IMPLICIT, {
		GREET("* OK [CAPABILITY " CAPS_TLS " IDLE NAMESPACE] " GREETING "\r\n"),
	} },
	{ "greeting without extra capabilities", { 0, 1, "", 1024, 3 }, {
		GREET("* OK [CAPABILITY " CAPS_TLS "] " GREETING "\r\n"),
		R("a CAPABILITY\r\n", "* CAPABILITY " CAPS_TLS "\r\na OK CAPABILITY completed\r\n"),
	} },
	{ "greeting with caps_extra NULL", { 0, 1, NULL, 1024, 3 }, {
		GREET("* OK [CAPABILITY " CAPS_TLS "] " GREETING "\r\n"),
	} },
	{ "STARTTLS listener with TLS already active", { 1, 1, "IDLE", 1024, 3 }, {
		GREET("* OK [CAPABILITY " CAPS_TLS " IDLE] " GREETING "\r\n"),
		R("a STARTTLS\r\n", "a BAD STARTTLS not available: TLS is already active\r\n"),
		LOGIN("b LOGIN user pass\r\n", ALL, &c_user_pass),
	} },

	/* ---- simple commands ---- */
	{ "CAPABILITY in clear", CLEAR, {
		R("a CAPABILITY\r\n", "* CAPABILITY " CAPS_CLEAR "\r\na OK CAPABILITY completed\r\n"),
	} },
	{ "CAPABILITY lower case, odd tag, bare LF", CLEAR, {
		R("A.1] capability\n",
		  "* CAPABILITY " CAPS_CLEAR "\r\nA.1] OK CAPABILITY completed\r\n"),
	} },
	{ "CAPABILITY with TLS", IMPLICIT, {
		R("a CAPABILITY\r\n", CAPA_IMPL "a OK CAPABILITY completed\r\n"),
	} },
	{ "CAPABILITY with an argument", CLEAR, {
		R("a CAPABILITY x\r\n", "a BAD Wrong number of arguments for CAPABILITY\r\n"),
	} },
	{ "NOOP", CLEAR, {
		R("a NOOP\r\n", "a OK NOOP completed\r\n"),
		R("b noop\r\n", "b OK NOOP completed\r\n"),
		R("c NOOP x\r\n", "c BAD Wrong number of arguments for NOOP\r\n"),
	} },
	{ "pipelined NOOPs are answered one at a time", CLEAR, {
		FEED("a NOOP\r\nb NOOP\r\nc NO", DLG_REPLY, "a OK NOOP completed\r\n", U("a NOOP\r\n")),
		MORE(DLG_REPLY, "b OK NOOP completed\r\n", U("b NOOP\r\n")),
		MORE(DLG_NONE, "", ALL),
		R("OP\r\n", "c OK NOOP completed\r\n"),
	} },
	{ "LOGOUT closes, nothing is read after it", CLEAR, {
		FEED("a LOGOUT\r\nb NOOP\r\n", DLG_CLOSE,
		     "* BYE Logging out\r\na OK LOGOUT completed\r\n", U("a LOGOUT\r\n")),
		MORE(DLG_NONE, "", 0),
		FEED("c NOOP\r\n", DLG_NONE, "", 0),
	} },
	{ "LOGOUT with TLS", IMPLICIT, {
		FEED("a LOGOUT\r\n", DLG_CLOSE, "* BYE Logging out\r\na OK LOGOUT completed\r\n", ALL),
	} },
	{ "ID with a list", CLEAR, {
		R("a ID (\"name\" \"Thunderbird\" \"version\" \"115\")\r\n",
		  "* ID NIL\r\na OK ID completed\r\n"),
		R("b ID ()\r\n", "* ID NIL\r\nb OK ID completed\r\n"),
	} },
	{ "ID with a literal in its list", IMPLICIT, {
		FEED("a ID (\"name\" {3}\r\nx y)\r\n", DLG_REPLY, READY, U("a ID (\"name\" {3}\r\n")),
		MORE(DLG_REPLY, "* ID NIL\r\na OK ID completed\r\n", ALL),
	} },
	{ "ID NIL", CLEAR, {
		R("a ID NIL\r\n", "* ID NIL\r\na OK ID completed\r\n"),
		R("b id nil\r\n", "* ID NIL\r\nb OK ID completed\r\n"),
	} },
	{ "ID with a bad argument", CLEAR, {
		R("a ID foo\r\n", "a BAD ID takes a parenthesized list or NIL\r\n"),
		R("b ID \"NIL\"\r\n", "b BAD ID takes a parenthesized list or NIL\r\n"),
		FEED("c ID {3}\r\nNIL\r\n", DLG_REPLY, READY, U("c ID {3}\r\n")),
		MORE(DLG_REPLY, "c BAD ID takes a parenthesized list or NIL\r\n", ALL),
		R("d ID\r\n", "d BAD Wrong number of arguments for ID\r\n"),
		R("e ID NIL NIL\r\n", "e BAD Wrong number of arguments for ID\r\n"),
	} },

	/* ---- STARTTLS ---- */
	{ "STARTTLS in clear, then TLS capabilities", CLEAR, {
		GREET(G_CLEAR),
		FEED("a STARTTLS\r\n", DLG_STARTTLS, "a OK Begin TLS negotiation now\r\n", ALL),
		TLS,
		R("b CAPABILITY\r\n", CAPA_TLS_IDLE "b OK CAPABILITY completed\r\n"),
		GREET("* OK [CAPABILITY " CAPS_TLS " IDLE] " GREETING "\r\n"),
		R("c STARTTLS\r\n", "c BAD STARTTLS not available: TLS is already active\r\n"),
		LOGIN("d LOGIN user pass\r\n", ALL, &c_user_pass),
	} },
	{ "STARTTLS pipelined with CAPABILITY", CLEAR, {
		FEED("a STARTTLS\r\nb CAPABILITY\r\n", DLG_STARTTLS,
		     "a OK Begin TLS negotiation now\r\n", U("a STARTTLS\r\n")),
		TLS,
		R("c CAPABILITY\r\n", CAPA_TLS_IDLE "c OK CAPABILITY completed\r\n"),
	} },
	{ "STARTTLS pipelined with LOGIN in clear", CLEAR, {
		FEED("a starttls\nb LOGIN user pass\r\n", DLG_STARTTLS,
		     "a OK Begin TLS negotiation now\r\n", U("a starttls\n")),
		TLS,
		LOGIN("c LOGIN user pass\r\n", ALL, &c_user_pass),
	} },
	{ "a partial command before TLS is forgotten", CLEAR, {
		FEED("a STARTTLS\r\n", DLG_STARTTLS, "a OK Begin TLS negotiation now\r\n", ALL),
		FEED("b CAPA", DLG_NONE, "", ALL),
		TLS,
		R("BILITY\r\n", "BILITY BAD Missing command\r\n"),
		R("c CAPABILITY\r\n", CAPA_TLS_IDLE "c OK CAPABILITY completed\r\n"),
	} },
	{ "a literal announced before TLS is forgotten", CLEAR, {
		FEED("a STARTTLS\r\n", DLG_STARTTLS, "a OK Begin TLS negotiation now\r\n", ALL),
		FEED("b ID {5}\r\n", DLG_REPLY, READY, ALL),
		TLS,
		R("c NOOP\r\n", "c OK NOOP completed\r\n"),
	} },
	{ "STARTTLS on an implicit TLS listener", IMPLICIT, {
		R("a STARTTLS\r\n", "a BAD STARTTLS not available: TLS is already active\r\n"),
		R("b CAPABILITY\r\n", CAPA_IMPL "b OK CAPABILITY completed\r\n"),
	} },
	{ "STARTTLS with an argument", CLEAR, {
		R("a STARTTLS now\r\n", "a BAD Wrong number of arguments for STARTTLS\r\n"),
	} },

	/* ---- no credentials in clear ---- */
	{ "LOGIN in clear", CLEAR, {
		FEEDW("a LOGIN user secret\r\n", DLG_REPLY, "a " PRIV, ALL),
		FEED("b NOOP\r\n", DLG_REPLY, "b OK NOOP completed\r\n", ALL),
	} },
	/* no "+" that would invite the password in clear: refused at once */
	{ "LOGIN in clear with a literal", CLEAR, {
		FEED("a LOGIN {4}\r\n", DLG_REPLY, "a " PRIV, ALL),
		R("b NOOP\r\n", "b OK NOOP completed\r\n"),
	} },
	{ "AUTHENTICATE in clear with a literal", CLEAR, {
		FEED("a AUTHENTICATE {5}\r\n", DLG_REPLY, "a " PRIV, ALL),
		R("b NOOP\r\n", "b OK NOOP completed\r\n"),
	} },
	{ "LOGIN user literal after TLS gets a continuation", IMPLICIT, {
		FEED("a LOGIN {4}\r\n", DLG_REPLY, READY, ALL),
	} },
	{ "AUTHENTICATE in clear", CLEAR, {
		FEEDW("a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\n", DLG_REPLY, "a " PRIV, ALL),
		FEEDW("b AUTHENTICATE LOGIN\r\n", DLG_REPLY, "b " PRIV, ALL),
		FEEDW("c AUTHENTICATE PLAIN\r\nAHVzZXIAcGFzcw==\r\n", DLG_REPLY, "c " PRIV,
		      U("c AUTHENTICATE PLAIN\r\n")),
		/* the would-be response line is a command line, not a response */
		MORE(DLG_REPLY, "AHVzZXIAcGFzcw== BAD Missing command\r\n", ALL),
	} },

	/* ---- LOGIN ---- */
	{ "LOGIN with atoms, login OK without text", IMPLICIT, {
		LOGIN("a LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_OK, NULL, DLG_REPLY, "a OK Logged in\r\n"),
		FEED("b NOOP\r\n", DLG_NONE, "", 0),
	} },
	{ "LOGIN with quoted strings", IMPLICIT, {
		LOGIN("a1 login \"us er\" \"p\\\"a\\\\ss w\"\r\n", ALL, &c_quoted),
		DONE(DLG_LOGIN_OK, "", DLG_REPLY, "a1 OK Logged in\r\n"),
	} },
	{ "LOGIN with 8-bit atom and quoted", IMPLICIT, {
		LOGIN("a LOGIN j\xc3\xb6rg \"s3cr\xc3\xa9t w/ space\"\n", ALL, &c_8bit),
	} },
	{ "LOGIN with synchronizing literals", IMPLICIT, {
		FEED("a LOGIN {5}\r\nj\xc3\xb6rg {9}\r\np \"a\" b\\c\r\n", DLG_REPLY, READY,
		     U("a LOGIN {5}\r\n")),
		MORE(DLG_REPLY, READY, U("j\xc3\xb6rg {9}\r\n")),
		MORE_LOGIN(ALL, &c_literal),
		DONE(DLG_LOGIN_OK, "Welcome", DLG_REPLY, "a OK Welcome\r\n"),
	} },
	{ "LOGIN with non-synchronizing literals", IMPLICIT, {
		LOGIN("a LOGIN {5+}\r\nj\xc3\xb6rg {9+}\r\np \"a\" b\\c\r\n", ALL, &c_literal),
	} },
	{ "LOGIN with CRLF inside a literal", IMPLICIT, {
		LOGIN("a LOGIN u {9+}\r\na\r\nb{3}\r\n\r\n", ALL, &c_lit_crlf),
	} },
	{ "LOGIN pipelined: what follows is not used", IMPLICIT, {
		LOGIN("a LOGIN user pass\r\nb SELECT INBOX\r\n", U("a LOGIN user pass\r\n"),
		      &c_user_pass),
		MORE(DLG_NONE, "", 0),
		DONE(DLG_LOGIN_OK, "[CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED IDLE] Logged in",
		     DLG_REPLY, "a OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n"),
		MORE(DLG_NONE, "", 0),
	} },
	{ "LOGIN with an empty password", IMPLICIT, {
		LOGIN("a LOGIN user \"\"\r\n", ALL, &c_empty_pass),
	} },
	{ "LOGIN with bad arguments", IMPLICIT, {
		FEEDW("a LOGIN \"\" secret\r\n", DLG_REPLY,
		      "a BAD LOGIN takes a user name and a password\r\n", ALL),
		FEEDW("b LOGIN (user) secret\r\n", DLG_REPLY,
		      "b BAD LOGIN takes a user name and a password\r\n", ALL),
		FEEDW("c LOGIN user\r\n", DLG_REPLY,
		      "c BAD Wrong number of arguments for LOGIN\r\n", ALL),
		FEEDW("d LOGIN user secret x\r\n", DLG_REPLY,
		      "d BAD Wrong number of arguments for LOGIN\r\n", ALL),
		FEEDW("f LOGIN user secret\0\r\n", DLG_REPLY, "f BAD NUL byte in command\r\n", ALL),
		FEEDW("g LOGIN user secret x y\r\n", DLG_REPLY, "g BAD Too many arguments\r\n", ALL),
		FEEDW("h LOGIN user \"sec\\ret\"\r\n", DLG_REPLY,
		      "h BAD Invalid escape in quoted string\r\n", ALL),
		LOGIN("e LOGIN user pass\r\n", ALL, &c_user_pass),
	} },
	{ "LOGIN user name of 1024 bytes", { 0, 1, "", 4096, 3 }, {
		LOGIN("a LOGIN {1024+}\r\n" X1024 " p\r\n", ALL, &c_1024),
	} },
	{ "LOGIN user name of 1025 bytes", { 0, 1, "", 4096, 3 }, {
		FEEDW("a LOGIN {1025+}\r\n" X1024 "x p\r\n", DLG_REPLY,
		      "a BAD User name or password too long\r\n", ALL),
		LOGIN("b LOGIN user pass\r\n", ALL, &c_user_pass),
	} },
	{ "LOGIN password of 1025 bytes", { 0, 1, "", 4096, 3 }, {
		FEEDW("a LOGIN u " X1024 "x\r\n", DLG_REPLY,
		      "a BAD User name or password too long\r\n", ALL),
	} },

	/* ---- AUTHENTICATE PLAIN ---- */
	{ "AUTHENTICATE PLAIN with SASL-IR", IMPLICIT, {
		LOGIN("a AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\n", ALL, &c_plain),
		DONE(DLG_LOGIN_OK, NULL, DLG_REPLY, "a OK Logged in\r\n"),
	} },
	{ "AUTHENTICATE PLAIN with SASL-IR and authzid", IMPLICIT, {
		LOGIN("a authenticate plain YWRtaW4AdXNlcgBwYXNz\r\n", ALL, &c_plain_z),
	} },
	{ "AUTHENTICATE PLAIN with 8-bit names", IMPLICIT, {
		LOGIN("a AUTHENTICATE PLAIN AMOpdMOpAHDDpHNz\r\n", ALL, &c_plain_8),
	} },
	{ "AUTHENTICATE PLAIN, response after +", IMPLICIT, {
		FEED("a AUTHENTICATE PLAIN\r\n", DLG_REPLY, "+ \r\n", ALL),
		LOGIN("AHVzZXIAcGFzcw==\r\n", ALL, &c_plain),
		DONE(DLG_LOGIN_FAILED, NULL, DLG_REPLY, "a " AUTHFAIL),
		R("b NOOP\r\n", "b OK NOOP completed\r\n"),
	} },
	{ "AUTHENTICATE PLAIN, response pipelined", IMPLICIT, {
		FEED("a AUTHENTICATE PLAIN\nAHVzZXIAcGFzcw==\nb NOOP\n", DLG_REPLY, "+ \r\n",
		     U("a AUTHENTICATE PLAIN\n")),
		MORE_LOGIN(U("AHVzZXIAcGFzcw==\n"), &c_plain),
		MORE(DLG_NONE, "", 0),
	} },
	{ "AUTHENTICATE PLAIN cancelled", IMPLICIT, {
		FEED("a AUTHENTICATE PLAIN\r\n", DLG_REPLY, "+ \r\n", ALL),
		FEEDC("*\r\n", DLG_REPLY, "a BAD Authentication cancelled\r\n", ALL),
		R("b NOOP\r\n", "b OK NOOP completed\r\n"),
	} },
	{ "AUTHENTICATE PLAIN, a command line as the response", IMPLICIT, {
		FEED("a AUTHENTICATE PLAIN\r\n", DLG_REPLY, "+ \r\n", ALL),
		FEEDW("b NOOP\r\n", DLG_REPLY, "a BAD Invalid PLAIN response\r\n", ALL),
		R("c NOOP\r\n", "c OK NOOP completed\r\n"),
	} },
	{ "AUTHENTICATE PLAIN with invalid base64", IMPLICIT, {
		FEEDW("a AUTHENTICATE PLAIN AHVzZXIAcGFzcw=\r\n", DLG_REPLY,
		      "a BAD Invalid PLAIN response\r\n", ALL),
		FEEDW("b AUTHENTICATE PLAIN !!!!\r\n", DLG_REPLY,
		      "b BAD Invalid PLAIN response\r\n", ALL),
		FEED("c AUTHENTICATE PLAIN\r\n", DLG_REPLY, "+ \r\n", ALL),
		FEEDW("AHVzZXI AcGFzcw==\r\n", DLG_REPLY, "c BAD Invalid PLAIN response\r\n", ALL),
		FEED("d AUTHENTICATE PLAIN\r\n", DLG_REPLY, "+ \r\n", ALL),
		FEEDW("\r\n", DLG_REPLY, "d BAD Invalid PLAIN response\r\n", ALL),
		R("e NOOP\r\n", "e OK NOOP completed\r\n"),
	} },
	{ "AUTHENTICATE PLAIN with a malformed message", IMPLICIT, {
		/* "user\0pass": one NUL; "\0\0pass": empty authcid; a third NUL */
		FEEDW("a AUTHENTICATE PLAIN dXNlcgBwYXNz\r\n", DLG_REPLY,
		      "a BAD Invalid PLAIN response\r\n", ALL),
		FEEDW("b AUTHENTICATE PLAIN AABwYXNz\r\n", DLG_REPLY,
		      "b BAD Invalid PLAIN response\r\n", ALL),
		FEEDW("c AUTHENTICATE PLAIN AHVzZXIAcGFzcwB4\r\n", DLG_REPLY,
		      "c BAD Invalid PLAIN response\r\n", ALL),
		FEEDW("d AUTHENTICATE PLAIN =\r\n", DLG_REPLY,
		      "d BAD Invalid PLAIN response\r\n", ALL),
	} },
	{ "AUTHENTICATE PLAIN, NUL in the response line", IMPLICIT, {
		FEED("a AUTHENTICATE PLAIN\r\n", DLG_REPLY, "+ \r\n", ALL),
		FEEDW("AHVz\0ZXI\r\n", DLG_REPLY, "a BAD NUL byte in response\r\n", ALL),
		R("b NOOP\r\n", "b OK NOOP completed\r\n"),
	} },

	/* ---- AUTHENTICATE LOGIN ---- */
	{ "AUTHENTICATE LOGIN with prompts", IMPLICIT, {
		FEED("a AUTHENTICATE LOGIN\r\n", DLG_REPLY, P_USER, ALL),
		FEED("dXNlcg==\r\n", DLG_REPLY, P_PASS, ALL),
		LOGIN("cGFzcw==\r\n", ALL, &c_alogin),
		DONE(DLG_LOGIN_OK, "Logged in", DLG_REPLY, "a OK Logged in\r\n"),
	} },
	{ "AUTHENTICATE LOGIN, all pipelined", IMPLICIT, {
		FEED("a AUTHENTICATE login\r\ndXNlcg==\r\ncGFzcw==\r\nb NOOP\r\n", DLG_REPLY, P_USER,
		     U("a AUTHENTICATE login\r\n")),
		MORE(DLG_REPLY, P_PASS, U("dXNlcg==\r\n")),
		MORE_LOGIN(U("cGFzcw==\r\n"), &c_alogin),
	} },
	{ "AUTHENTICATE LOGIN with the user name as IR", IMPLICIT, {
		FEED("a AUTHENTICATE LOGIN dXNlcg==\r\n", DLG_REPLY, P_PASS, ALL),
		LOGIN("cGFzcw==\r\n", ALL, &c_alogin),
	} },
	{ "AUTHENTICATE LOGIN with bad responses", IMPLICIT, {
		R("a AUTHENTICATE LOGIN dXNlcg=\r\n", "a BAD Invalid initial response\r\n"),
		FEED("b AUTHENTICATE LOGIN\r\n", DLG_REPLY, P_USER, ALL),
		FEEDW("dXNl cg==\r\n", DLG_REPLY, "b BAD Invalid response\r\n", ALL),
		FEED("c AUTHENTICATE LOGIN\r\n", DLG_REPLY, P_USER, ALL),
		FEED("dXNlcg==\r\n", DLG_REPLY, P_PASS, ALL),
		/* an empty password, and one with a NUL, are refused */
		FEEDW("\r\n", DLG_REPLY, "c BAD Invalid response\r\n", ALL),
		FEED("d AUTHENTICATE LOGIN dXNlcg==\r\n", DLG_REPLY, P_PASS, ALL),
		FEEDW("cGEAcw==\r\n", DLG_REPLY, "d BAD Invalid response\r\n", ALL),
		R("e NOOP\r\n", "e OK NOOP completed\r\n"),
	} },
	{ "AUTHENTICATE LOGIN cancelled at the password", IMPLICIT, {
		FEED("a AUTHENTICATE LOGIN\r\n", DLG_REPLY, P_USER, ALL),
		FEED("dXNlcg==\r\n", DLG_REPLY, P_PASS, ALL),
		FEEDC("*\r\n", DLG_REPLY, "a BAD Authentication cancelled\r\n", ALL),
		LOGIN("b LOGIN user pass\r\n", ALL, &c_user_pass),
	} },
	{ "AUTHENTICATE with an unknown mechanism", IMPLICIT, {
		R("a AUTHENTICATE CRAM-MD5\r\n", "a NO Unsupported authentication mechanism\r\n"),
		FEEDW("b AUTHENTICATE XOAUTH2 dXNlcj11c2VyAWF1dGg9QmVhcmVyIHRva2VuAQE=\r\n",
		      DLG_REPLY, "b NO Unsupported authentication mechanism\r\n", ALL),
		R("c NOOP\r\n", "c OK NOOP completed\r\n"),
	} },
	{ "AUTHENTICATE with bad arguments", IMPLICIT, {
		R("a AUTHENTICATE \"PLAIN\"\r\n",
		  "a BAD AUTHENTICATE takes a mechanism and an optional initial response\r\n"),
		FEEDW("b AUTHENTICATE PLAIN \"AHVzZXIAcGFzcw==\"\r\n", DLG_REPLY,
		      "b BAD AUTHENTICATE takes a mechanism and an optional initial response\r\n",
		      ALL),
		R("c AUTHENTICATE\r\n", "c BAD Wrong number of arguments for AUTHENTICATE\r\n"),
	} },

	/* ---- the end of the backend login ---- */
	{ "login OK: STARTTLS and LOGINDISABLED leave the capabilities", IMPLICIT, {
		LOGIN("a LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_OK, "[CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED SASL-IR ID IDLE "
		     "AUTH=PLAIN] Logged in",
		     DLG_REPLY, "a OK [CAPABILITY IMAP4rev1 SASL-IR ID IDLE AUTH=PLAIN] Logged in\r\n"),
	} },
	{ "login OK: capability code in lower case", IMPLICIT, {
		LOGIN("a LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_OK, "[capability imap4rev1 starttls idle] ok",
		     DLG_REPLY, "a OK [CAPABILITY imap4rev1 idle] ok\r\n"),
	} },
	{ "login OK: other texts pass", IMPLICIT, {
		LOGIN("a LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_OK, "Logged in [CAPABILITY STARTTLS]",
		     DLG_REPLY, "a OK Logged in [CAPABILITY STARTTLS]\r\n"),
	} },
	{ "login OK: unterminated capability code passes", IMPLICIT, {
		LOGIN("a LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_OK, "[CAPABILITY IMAP4rev1 STARTTLS",
		     DLG_REPLY, "a OK [CAPABILITY IMAP4rev1 STARTTLS\r\n"),
	} },
	{ "login FAILED, then OK", IMPLICIT, {
		LOGIN("a LOGIN user pass\r\nb NOOP\r\n", U("a LOGIN user pass\r\n"), &c_user_pass),
		MORE(DLG_NONE, "", 0),
		DONE(DLG_LOGIN_FAILED, "Authentication failed.", DLG_REPLY, "a " AUTHFAIL),
		MORE(DLG_REPLY, "b OK NOOP completed\r\n", ALL),
		LOGIN("c LOGIN user pass2\r\n", ALL, &c_user_pass2),
		DONE(DLG_LOGIN_OK, NULL, DLG_REPLY, "c OK Logged in\r\n"),
	} },
	{ "login FAILED up to max_auth_failures", { 0, 1, "", 1024, 2 }, {
		LOGIN("a LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_FAILED, NULL, DLG_REPLY, "a " AUTHFAIL),
		LOGIN("b AUTHENTICATE PLAIN AHVzZXIAcGFzcw==\r\n", ALL, &c_plain),
		DONE(DLG_LOGIN_FAILED, NULL, DLG_CLOSE, "b " AUTHFAIL BYE_FAIL),
		FEED("c NOOP\r\n", DLG_NONE, "", 0),
	} },
	{ "login FAILED with max_auth_failures 1", { 0, 1, "", 1024, 1 }, {
		FEED("a AUTHENTICATE LOGIN\r\n", DLG_REPLY, P_USER, ALL),
		FEED("dXNlcg==\r\n", DLG_REPLY, P_PASS, ALL),
		LOGIN("cGFzcw==\r\n", ALL, &c_alogin),
		DONE(DLG_LOGIN_FAILED, NULL, DLG_CLOSE, "a " AUTHFAIL BYE_FAIL),
	} },
	{ "login UNAVAILABLE is not a failure, REFUSED and FORBIDDEN are", { 0, 1, "", 1024, 2 }, {
		LOGIN("a LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_UNAVAILABLE, NULL, DLG_REPLY,
		     "a NO [UNAVAILABLE] Mail server unavailable, try again later\r\n"),
		LOGIN("b LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_REFUSED, NULL, DLG_REPLY,
		     "b NO [UNAVAILABLE] Too many failed logins, try again later\r\n"),
		LOGIN("d LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_UNAVAILABLE, "backend text is not shown", DLG_REPLY,
		     "d NO [UNAVAILABLE] Mail server unavailable, try again later\r\n"),
		LOGIN("e LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_FORBIDDEN, NULL, DLG_CLOSE,
		     "e NO [AUTHORIZATIONFAILED] No logins on this connection\r\n" BYE_FAIL),
		FEED("f NOOP\r\n", DLG_NONE, "", 0),
	} },
	{ "login REFUSED up to max_auth_failures closes", { 0, 1, "", 1024, 2 }, {
		LOGIN("a LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_FAILED, NULL, DLG_REPLY, "a " AUTHFAIL),
		LOGIN("b LOGIN user pass\r\n", ALL, &c_user_pass),
		DONE(DLG_LOGIN_REFUSED, NULL, DLG_CLOSE,
		     "b NO [UNAVAILABLE] Too many failed logins, try again later\r\n" BYE_FAIL),
	} },

	/* ---- commands moat does not answer ---- */
	{ "SELECT before login", CLEAR, {
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("b uid fetch 1 flags\r\n", "b BAD UID is not allowed before login\r\n"),
		R("c Append\r\n", "c BAD APPEND is not allowed before login\r\n"),
	} },
	{ "unknown command", CLEAR, {
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("b XYZZY a b c\r\n", "b BAD Unknown command\r\n"),
	} },
	{ "early commands are not counted as invalid", CLEAR, {
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("a SELECT INBOX\r\n", "a BAD SELECT is not allowed before login\r\n"),
		R("b NOOP\r\n", "b OK NOOP completed\r\n"),
	} },
	{ "IMAP_MAX_BAD unknown commands", CLEAR, {
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		FEED("a FOO\r\nb NOOP\r\n", DLG_CLOSE, "a BAD Unknown command\r\n" BYE_BAD,
		     U("a FOO\r\n")),
		MORE(DLG_NONE, "", 0),
	} },
	{ "IMAP_MAX_BAD malformed commands", IMPLICIT, {
		R("\r\n", "* BAD Empty command line\r\n"),
		R("a\x01 NOOP\r\n", "* BAD Invalid tag\r\n"),
		R(TAG32 "z NOOP\r\n", "* BAD Tag too long\r\n"),
		R("a NOOP\0\r\n", "a BAD NUL byte in command\r\n"),
		R("a NOOP\rb\r\n", "a BAD Bare CR in command\r\n"),
		R("a LOGIN {4294967296}\r\n", "a BAD Literal too large\r\n"),
		R("a LOGIN {18446744073709551617}\r\n", "a BAD Literal too large\r\n"),
		R("a LOGIN {2000}\r\n", "a BAD Literal too large\r\n"),
		R("a NOOP x\r\n", "a BAD Wrong number of arguments for NOOP\r\n"),
		R(TAG32 " NOOP\r\n", TAG32 " OK NOOP completed\r\n"),
		FEED("a LOGIN  u p\r\n", DLG_CLOSE, "a BAD Extra space\r\n" BYE_BAD, ALL),
		FEED("b LOGIN user pass\r\n", DLG_NONE, "", 0),
	} },
	{ "one bad command short of the limit", CLEAR, {
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("\n", "* BAD Empty command line\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("\n", "* BAD Empty command line\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("\n", "* BAD Empty command line\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("\n", "* BAD Empty command line\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("b NOOP\r\n", "b OK NOOP completed\r\n"),
	} },
	{ "bad SASL responses count as invalid", { 0, 1, "", 1024, 3 }, {
		FEED("a AUTHENTICATE PLAIN\r\n", DLG_REPLY, "+ \r\n", ALL),
		FEEDW("AH\0Vz\r\n", DLG_REPLY, "a BAD NUL byte in response\r\n", ALL),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		R("a FOO\r\n", "a BAD Unknown command\r\n"),
		FEED("b AUTHENTICATE LOGIN\r\n", DLG_REPLY, P_USER, ALL),
		FEEDW(X1024 "xx\r\n", DLG_CLOSE, "b BAD Response too long\r\n" BYE_BAD, ALL),
	} },

	/* ---- the parser gives up ---- */
	{ "{5+} over max_command", { 0, 1, "", 16, 3 }, {
		FEED("a LOGIN {5+}\r\nuser pass\r\n", DLG_CLOSE, "* BYE Literal too large\r\n",
		     U("a LOGIN {5+}\r\n")),
		MORE(DLG_NONE, "", 0),
	} },
	{ "{2000+} over max_command in clear", CLEAR, {
		FEED("a LOGIN {2000+}\r\n", DLG_CLOSE, "* BYE Literal too large\r\n", ALL),
	} },
	{ "{5+} on a rejected line", CLEAR, {
		FEED("a\x01 {5+}\r\nb NOOP\r\n", DLG_CLOSE,
		     "* BYE Non-synchronizing literal on a rejected command\r\n", U("a\x01 {5+}\r\n")),
	} },
};

#define NROWS (sizeof rows / sizeof rows[0])

/* ---- the runner ---- */

static const char *act_name(enum dlg_act a)
{
	switch (a) {
	case DLG_NONE: return "NONE";
	case DLG_REPLY: return "REPLY";
	case DLG_STARTTLS: return "STARTTLS";
	case DLG_LOGIN: return "LOGIN";
	case DLG_CLOSE: return "CLOSE";
	}
	return "?";
}

/* n bytes of s, escaped, for failure messages (four buffers in turn). */
static const char *show(const char *s, size_t n)
{
	static char out[4][600];
	static unsigned k;
	char *o = out[k++ % 4];
	size_t j = 0;

	for (size_t i = 0; i < n && j + 8 < sizeof out[0]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			o[j++] = (char)c;
		else
			j += (size_t)snprintf(o + j, sizeof out[0] - j, "\\x%02x", c);
	}
	o[j] = '\0';
	return o;
}

enum how { WHOLE, BYTES, SPLIT };

struct run {
	const struct row *r;
	char how[32];                 /* "whole", "bytes", "split 7" */
	size_t k;                     /* step index */
	struct dlg_cfg cfg;
	struct imap_dlg d;
	const char *prev;             /* the buffer of the last feed */
	size_t prev_len, prev_used;
};

#define FAIL(u, ...) do { \
	char msg_[512]; \
	snprintf(msg_, sizeof msg_, __VA_ARGS__); \
	fail_msg("%s [%s] step %zu: %s", (u)->r->name, (u)->how, (u)->k, msg_); \
} while (0)

/* out holds exactly the expected bytes. */
static void check_out(struct run *u, const char *want)
{
	size_t n = strlen(want);

	if (u->d.out_len != n || memcmp(u->d.out, want, n) != 0)
		FAIL(u, "out \"%s\" (%zu), expected \"%s\" (%zu)",
		     show(u->d.out, u->d.out_len), u->d.out_len, show(want, n), n);
}

static void check_act(struct run *u, enum dlg_act got, enum dlg_act want)
{
	if (got != want)
		FAIL(u, "action %s, expected %s (out \"%s\")", act_name(got), act_name(want),
		     show(u->d.out, u->d.out_len));
}

/* No credential left in cred and, for WIPED_ALL, in the parser. */
static void check_wiped(struct run *u, int what)
{
	static const struct dlg_cred zero;
	const struct imap_parser *p = &u->d.p;

	if (memcmp(&u->d.cred, &zero, sizeof zero) != 0)
		FAIL(u, "cred not wiped (user \"%s\")", show(u->d.cred.user, u->d.cred.user_len));
	if (what != WIPED_ALL)
		return;
	for (size_t i = 0; i < (size_t)p->max_cmd + IMAP_ARGS_MAX + 1; i++)
		if (p->data[i] != 0)
			FAIL(u, "parser buffer not wiped at %zu: \"%s\"", i,
			     show((const char *)p->data + i, 16));
}

/* One credential field: its bytes, its length, a NUL after it, zeros
 * after that (nothing of an earlier, longer value survives). */
static void check_field(struct run *u, const char *what, const char *got, size_t got_len,
                        const char *want, size_t want_len)
{
	if (got_len != want_len || memcmp(got, want, want_len) != 0)
		FAIL(u, "cred %s \"%s\" (%zu), expected \"%s\" (%zu)", what,
		     show(got, got_len), got_len, show(want, want_len), want_len);
	for (size_t i = got_len; i < DLG_CRED_MAX + 1; i++)
		if (got[i] != '\0')
			FAIL(u, "cred %s has byte 0x%02x at %zu", what, (unsigned char)got[i], i);
}

static void check_cred(struct run *u, const struct xcred *x)
{
	const struct dlg_cred *c = &u->d.cred;

	check_field(u, "user", c->user, c->user_len, x->user, x->user_len);
	check_field(u, "pass", c->pass, c->pass_len, x->pass, x->pass_len);
	check_field(u, "authzid", c->authzid, c->authzid_len, x->authzid, x->authzid_len);
	if (c->mech == NULL || strcmp(c->mech, x->mech) != 0)
		FAIL(u, "cred mech \"%s\", expected \"%s\"", c->mech ? c->mech : "(null)", x->mech);
	/* the parser forgot them */
	for (size_t i = 0; i < (size_t)u->d.p.max_cmd + IMAP_ARGS_MAX + 1; i++)
		if (u->d.p.data[i] != 0)
			FAIL(u, "parser buffer not wiped at %zu", i);
}

/* One imap_dlg_feed call that must give DLG_NONE and use all n bytes. */
static void feed_none(struct run *u, const char *buf, size_t n)
{
	size_t used = SIZE_MAX;
	enum dlg_act a = imap_dlg_feed(&u->d, (const uint8_t *)buf, n, &used);

	if (a != DLG_NONE || used != n || u->d.out_len != 0)
		FAIL(u, "partial feed of %zu bytes: %s, used %zu, out \"%s\"", n, act_name(a), used,
		     show(u->d.out, u->d.out_len));
}

/* Feeds buf[0..len) the row's way and checks the step's outcome. */
static void feed_step(struct run *u, const struct step *s, enum how how, size_t split,
                      const char *buf, size_t len)
{
	size_t want = s->used == ALL ? len : s->used;
	size_t used = SIZE_MAX, base = 0, len0 = len;
	enum dlg_act a;

	if (want > len)
		FAIL(u, "bad row: used %zu of %zu bytes", want, len);
	if (want > 0 && how == BYTES) {
		for (; base + 1 < want; base++)
			feed_none(u, buf + base, 1);
		len = base + 1;
	} else if (want > 0 && how == SPLIT && split < want) {
		feed_none(u, buf, split);
		base = split;
	}
	a = imap_dlg_feed(&u->d, (const uint8_t *)buf + base, len - base, &used);
	check_act(u, a, s->act);
	if (used != want - base)
		FAIL(u, "used %zu of %zu bytes, expected %zu (%s)", used, len - base, want - base,
		     act_name(a));
	check_out(u, s->out);
	/* what a MORE step after this one feeds */
	u->prev = buf;
	u->prev_len = len0;
	u->prev_used = want;
}

static void run_step(struct run *u, const struct step *s, enum how how, size_t split)
{
	enum dlg_act a;

	switch (s->k) {
	case K_GREET:
		imap_dlg_greeting(&u->d);
		check_out(u, s->out);
		return;
	case K_TLS:
		imap_dlg_tls_started(&u->d);
		return;
	case K_DONE:
		a = imap_dlg_login_done(&u->d, s->r, s->text);
		check_act(u, a, s->act);
		check_out(u, s->out);
		check_wiped(u, WIPED_ALL);
		return;
	case K_FEED:
		feed_step(u, s, how, split, s->in, s->len);
		break;
	case K_MORE:
		if (!u->prev)
			FAIL(u, "bad row: MORE without a feed before");
		feed_step(u, s, how, split, u->prev + u->prev_used, u->prev_len - u->prev_used);
		break;
	default:
		FAIL(u, "bad row: step kind %d", (int)s->k);
	}
	if (s->cred)
		check_cred(u, s->cred);
	if (s->wiped && !s->cred)
		check_wiped(u, s->wiped);
}

/* Replays a whole script one way. */
static void run(const struct row *r, enum how how, size_t split)
{
	struct run *u = calloc(1, sizeof *u);

	assert_non_null(u);
	u->r = r;
	if (how == WHOLE)
		snprintf(u->how, sizeof u->how, "whole");
	else if (how == BYTES)
		snprintf(u->how, sizeof u->how, "bytes");
	else
		snprintf(u->how, sizeof u->how, "split %zu", split);
	u->cfg.greeting = GREETING;
	u->cfg.caps_extra = r->c.caps_extra;
	u->cfg.max_command = r->c.max_command;
	u->cfg.max_auth_failures = r->c.max_auth_failures;
	u->cfg.starttls = r->c.starttls;
	assert_int_equal(imap_dlg_init(&u->d, &u->cfg, r->c.tls), 0);
	for (u->k = 0; u->k < MAX_STEPS && r->s[u->k].k != K_END; u->k++)
		run_step(u, &r->s[u->k], how, split);
	imap_dlg_free(&u->d);
	if (u->d.p.data != NULL)
		FAIL(u, "imap_dlg_free left the parser buffer");
	{
		static const struct dlg_cred zero;
		if (memcmp(&u->d.cred, &zero, sizeof zero) != 0)
			FAIL(u, "imap_dlg_free left credentials");
	}
	free(u);
}

/* The longest input any step of a row feeds. */
static size_t longest_feed(const struct row *r)
{
	size_t m = 0;

	for (size_t i = 0; i < MAX_STEPS && r->s[i].k != K_END; i++)
		if (r->s[i].k == K_FEED && r->s[i].len > m)
			m = r->s[i].len;
	return m;
}

static void test_row(void **state)
{
	const struct row *r = *state;
	size_t m = longest_feed(r);

	run(r, WHOLE, 0);
	run(r, BYTES, 0);
	for (size_t k = 1; k < m; k++)
		run(r, SPLIT, k);
}

/* ---- imap_caps_filter ---- */

struct frow {
	const char *name;
	const char *in;
	size_t inlen;
	int passthrough;
	size_t outcap;
	const char *want;
};

#define F(nm, s, p, cap, w) { nm, s, sizeof(s) - 1, p, cap, w }
#define FN(nm, s, n, p, cap, w) { nm, s, n, p, cap, w }

static const struct frow frows[] = {
	F("post-login list: STARTTLS and LOGINDISABLED go",
	  "IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN IDLE", 0, 256,
	  "IMAP4rev1 AUTH=PLAIN IDLE"),
	F("pre-login list: what moat decides goes",
	  "IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN IDLE", 1, 256, "IDLE"),
	F("pre-login list: every dropped name",
	  "IMAP4rev1 IMAP4 SASL-IR LITERAL+ LITERAL- ID AUTH=PLAIN AUTH=SCRAM-SHA-256 AUTH= "
	  "STARTTLS LOGINDISABLED IDLE NAMESPACE", 1, 256, "IDLE NAMESPACE"),
	F("post-login list keeps what moat decides before login",
	  "IMAP4rev1 IMAP4 SASL-IR LITERAL+ LITERAL- ID AUTH=PLAIN STARTTLS LOGINDISABLED", 0, 256,
	  "IMAP4rev1 IMAP4 SASL-IR LITERAL+ LITERAL- ID AUTH=PLAIN"),
	F("pre-login, case-insensitive",
	  "starttls LoginDisabled auth=plain Idle imap4REV1 sasl-ir literal+ id", 1, 256, "Idle"),
	F("post-login, case-insensitive",
	  "starttls LoginDisabled auth=plain Idle imap4REV1 sasl-ir literal+ id", 0, 256,
	  "auth=plain Idle imap4REV1 sasl-ir literal+ id"),
	F("near misses are kept",
	  "STARTTLSX XSTARTTLS LOGINDISABLE AUTH IDX ID=1 IMAP4rev2 LITERAL", 1, 256,
	  "STARTTLSX XSTARTTLS LOGINDISABLE AUTH IDX ID=1 IMAP4rev2 LITERAL"),
	F("extra spaces", "  IMAP4rev1   STARTTLS  IDLE  ", 0, 256, "IMAP4rev1 IDLE"),
	F("only spaces", "    ", 0, 256, ""),
	F("empty", "", 1, 256, ""),
	F("everything dropped", "STARTTLS LOGINDISABLED", 0, 256, ""),
	F("stops at a line end", "IDLE\r\nSTARTTLS X", 0, 256, "IDLE"),
	F("stops at a bare LF", "IDLE STARTTLS\nX", 0, 256, "IDLE"),
	F("CR ends a name", "IDLE\rX", 0, 256, "IDLE"),
	FN("inlen, not the NUL, ends the input", "IDLE STARTTLS", 4, 0, 256, "IDLE"),
	FN("inlen inside a name", "IDLE NAMESPACE", 7, 0, 256, "IDLE NA"),
	FN("inlen inside STARTTLS", "IDLE STARTTLS", 10, 0, 256, "IDLE START"),
	F("outcap exactly fits", "AAA BBB CCC", 0, 12, "AAA BBB CCC"),
	F("outcap one short", "AAA BBB CCC", 0, 11, "AAA BBB"),
	F("outcap fits two", "AAA BBB CCC", 0, 8, "AAA BBB"),
	F("outcap one short of two", "AAA BBB CCC", 0, 7, "AAA"),
	F("outcap fits one", "AAA BBB CCC", 0, 4, "AAA"),
	F("outcap too small for one", "AAA BBB CCC", 0, 3, ""),
	F("outcap 1", "AAA BBB CCC", 0, 1, ""),
	F("outcap: dropped names take no room", "AAA STARTTLS BBB", 0, 8, "AAA BBB"),
	F("outcap: a long name ends the list", "AAA BBBBBBBB C", 0, 8, "AAA"),
};

#define NFROWS (sizeof frows / sizeof frows[0])

static void test_filter(void **state)
{
	const struct frow *r = *state;
	char out[300];
	size_t want = strlen(r->want), n;

	memset(out, 0x5a, sizeof out);
	n = imap_caps_filter(r->in, r->inlen, r->passthrough, out, r->outcap);
	if (n != want || memcmp(out, r->want, want) != 0 || out[want] != '\0')
		fail_msg("%s: \"%s\" (%zu), expected \"%s\" (%zu)", r->name, show(out, n), n,
		         show(r->want, want), want);
	for (size_t i = want + 1; i < sizeof out; i++)
		if (out[i] != 0x5a)
			fail_msg("%s: byte %zu written (outcap %zu)", r->name, i, r->outcap);
}

/* outcap 0: nothing is written, not even the NUL. */
static void test_filter_outcap0(void **state)
{
	char out[8];

	(void)state;
	memset(out, 0x5a, sizeof out);
	assert_int_equal(imap_caps_filter("IDLE", 4, 0, out, 0), 0);
	for (size_t i = 0; i < sizeof out; i++)
		assert_int_equal((unsigned char)out[i], 0x5a);
}

int main(void)
{
	struct CMUnitTest dt[NROWS], ft[NFROWS + 1];
	int fails = 0;

	for (size_t i = 0; i < NROWS; i++)
		dt[i] = (struct CMUnitTest){ .name = rows[i].name, .test_func = test_row,
		                             .initial_state = (void *)&rows[i] };
	for (size_t i = 0; i < NFROWS; i++)
		ft[i] = (struct CMUnitTest){ .name = frows[i].name, .test_func = test_filter,
		                             .initial_state = (void *)&frows[i] };
	ft[NFROWS] = (struct CMUnitTest){ .name = "outcap 0 writes nothing",
	                                  .test_func = test_filter_outcap0 };
	fails += _cmocka_run_group_tests("imap_dlg", dt, NROWS, NULL, NULL);
	fails += _cmocka_run_group_tests("imap_caps_filter", ft, NFROWS + 1, NULL, NULL);
	return fails ? 1 : 0;
}
