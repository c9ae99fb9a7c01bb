/*
 * Unit tests for protocols/pop3.c: the pre-auth POP3 dialogue and
 * pop3_caps_filter().
 *
 * Dialogue rows are scripts a session would play: IN appends client
 * bytes to what waits unfed, X feeds it and expects an action, the exact
 * output and the bytes used (and the credentials for DLG_LOGIN), DONE
 * tells how the backend login ended, TLS ends an STLS handshake
 * (dropping what waited, which must be exactly the given bytes), REST
 * says what is still unfed. Every script runs twice: "whole" (all bytes
 * of an IN at once, as the session feeds them) and "bytes" (the same
 * bytes arriving one at a time, fed after each); both must give the same
 * actions at the same stream offsets. After DLG_LOGIN and every DONE the
 * parser's buffer must be all zeroes, and after DONE the credentials too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pop3.h"

#define MAX_STEPS 48                  /* per script */
#define STREAM_MAX 8192               /* client bytes a script may send */

/* Bytes and their length; s may contain NUL. */
#define B(s) s, sizeof(s) - 1

/* ---- listeners ---- */

/* In clear, STLS offered. */
static const struct dlg_cfg cfg_stls = {
	.greeting = "POP3 server ready", .caps_extra = "TOP\r\nUIDL\r\n",
	.max_command = 8192, .max_auth_failures = 3, .starttls = 1,
};
/* Implicit TLS (also used with tls 0 for a listener without STLS). */
static const struct dlg_cfg cfg_tls = {
	.greeting = "moat ready", .caps_extra = "TOP\r\nUIDL\r\nEXPIRE NEVER\r\n",
	.max_command = 8192, .max_auth_failures = 3, .starttls = 0,
};
static const struct dlg_cfg cfg_nocaps = {
	.greeting = "x", .caps_extra = "", .max_command = 8192, .max_auth_failures = 3,
};
static const struct dlg_cfg cfg_nullcaps = {
	.greeting = "x", .caps_extra = NULL, .max_command = 8192, .max_auth_failures = 3,
};
/* Smallest max_command, one login attempt. */
static const struct dlg_cfg cfg_one = {
	.greeting = "x", .caps_extra = "", .max_command = 1024, .max_auth_failures = 1,
};

/* ---- scripts ---- */

enum op { O_STOP = 0, O_IN, O_X, O_DONE, O_TLS, O_REST, O_GREET };

struct step {
	enum op op;
	const char *data;             /* IN: bytes; X, DONE, GREET: output; TLS: dropped; REST */
	size_t len;
	enum dlg_act act;             /* X, DONE */
	size_t used;                  /* X: bytes used of what waited (whole run) */
	enum dlg_login r;             /* DONE */
	const char *text;             /* DONE: backend text */
	const char *mech, *authzid, *user, *pass; /* X DLG_LOGIN */
};

struct row {
	const char *name;
	const struct dlg_cfg *cfg;
	int tls;
	struct step steps[MAX_STEPS];
};

#define ROW(nm, c, t, ...) { .name = nm, .cfg = c, .tls = t, .steps = { __VA_ARGS__ } }

#define IN(s) { .op = O_IN, .data = s, .len = sizeof(s) - 1 }
#define X(a, out, u) { .op = O_X, .act = a, .data = out, .len = sizeof(out) - 1, .used = u }
#define NONE(u) X(DLG_NONE, "", u)
#define LOGIN(u, m, z, us, pw) { .op = O_X, .act = DLG_LOGIN, .data = "", .len = 0, .used = u, \
                                 .mech = m, .authzid = z, .user = us, .pass = pw }
#define DONE(res, t, a, out) { .op = O_DONE, .r = res, .text = t, .act = a, .data = out, \
                               .len = sizeof(out) - 1 }
#define TLS(dropped) { .op = O_TLS, .data = dropped, .len = sizeof(dropped) - 1 }
#define REST(s) { .op = O_REST, .data = s, .len = sizeof(s) - 1 }
#define GREET(out) { .op = O_GREET, .data = out, .len = sizeof(out) - 1 }

/* A line sent alone and the reply it gets (CMDA: another action). */
#define CMD(line, out) IN(line), X(DLG_REPLY, out, sizeof(line) - 1)
#define CMDA(line, a, out) IN(line), X(a, out, sizeof(line) - 1)
/* A line sent alone that starts the login. */
#define LOGINL(line, m, z, us, pw) IN(line), LOGIN(sizeof(line) - 1, m, z, us, pw)

/* ---- expected texts ---- */

#define CAPA_HEAD "+OK Capability list follows\r\n"
#define CAPA_CLEAR CAPA_HEAD "STLS\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n.\r\n"
#define CAPA_SECURE(extra) CAPA_HEAD "USER\r\nSASL PLAIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n" \
                           "PIPELINING\r\n" extra ".\r\n"
#define CAPA_STLS CAPA_SECURE("TOP\r\nUIDL\r\n")
#define CAPA_TLS CAPA_SECURE("TOP\r\nUIDL\r\nEXPIRE NEVER\r\n")
#define STLS_OK "+OK Begin TLS negotiation\r\n"
#define STLS_ACTIVE "-ERR STLS not available: TLS is already active\r\n"
#define TLSREQ "-ERR [AUTH] TLS required, use STLS first\r\n"
#define SENDPW "+OK Send your password\r\n"
#define NOUSER "-ERR No user name given, send USER first\r\n"
#define AFAIL "-ERR [AUTH] Authentication failed\r\n"
#define UNAVAIL "-ERR [SYS/TEMP] Mail server unavailable, try again later\r\n"
#define REFUSED "-ERR [SYS/TEMP] Too many failed logins, try again later\r\n"
#define MECHS "+OK\r\nPLAIN\r\n.\r\n"
#define GO_ON "+ \r\n"
#define INVPLAIN "-ERR [AUTH] Invalid PLAIN response\r\n"
#define CANCELLED "-ERR Authentication cancelled\r\n"
#define UNSUPP "-ERR Unsupported authentication mechanism\r\n"
#define UNKNOWN "-ERR Unknown command\r\n"
#define TOOMANY "-ERR Too many invalid commands\r\n"
#define TOOLONG "-ERR Command line too long\r\n"
#define EARLY(c) "-ERR " c " is not allowed before login\r\n"
#define BYE "+OK Logging out\r\n"

/* "\0alice\0s3cret" and friends, base64. */
#define P_ALICE "AGFsaWNlAHMzY3JldA=="
#define P_AUTHZ "YWRtaW4AYWxpY2UAczNjcmV0"          /* admin\0alice\0s3cret */
#define P_8BIT "AGrDvHJnZW4AcMOkc3Mgd/9yZCAgeA=="   /* \0jürgen\0päss w\xffrd  x */
#define P_ONE_NUL "YWxpY2UAczNjcmV0"                /* alice\0s3cret */
#define P_NO_PASS "AGFsaWNlAA=="                    /* \0alice\0 */

#define R2(s) s s
#define R4(s) R2(s) R2(s)
#define R16(s) R4(R4(s))
#define R64(s) R16(R4(s))
/* "\0" + 200 'u' + "\0" + 254 'p': 608 characters of base64 */
#define P_LONG "AHV1" R64("dXV1") R2("dXV1") "AHBw" R64("cHBw") R16("cHBw") R4("cHBw")
#define U200 "uu" R64("uuu") R2("uuu")
#define P254 "pp" R64("ppp") R16("ppp") R4("ppp")

#define X10 "xxxxxxxxxx"
#define X100 X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
#define X248 X100 X100 X10 X10 X10 X10 "xxxxxxxx"
#define X512 X100 X100 X100 X100 X100 X10 "xx"
#define X1100 X100 X100 X100 X100 X100 X100 X100 X100 X100 X100 X100

static const struct row rows[] = {
	/* ---- greeting and CAPA ---- */
	ROW("greeting, STLS listener", &cfg_stls, 0, GREET("+OK POP3 server ready\r\n")),
	ROW("greeting, TLS listener", &cfg_tls, 1, GREET("+OK moat ready\r\n")),
	ROW("CAPA in clear lists STLS, not USER or SASL", &cfg_stls, 0,
	    CMD("CAPA\r\n", CAPA_CLEAR)),
	ROW("CAPA over TLS adds the backend's", &cfg_tls, 1, CMD("CAPA\r\n", CAPA_TLS),
	    CMD("capa\n", CAPA_TLS)),
	ROW("CAPA, no backend capabilities", &cfg_nocaps, 1, CMD("CAPA\r\n", CAPA_SECURE(""))),
	ROW("CAPA, capabilities NULL", &cfg_nullcaps, 1, CMD("CAPA\r\n", CAPA_SECURE(""))),
	ROW("CAPA, listener without TLS or STLS", &cfg_tls, 0, CMD("CAPA\r\n", CAPA_TLS)),
	ROW("CAPA with an argument", &cfg_tls, 1,
	    CMD("CAPA x\r\n", "-ERR CAPA takes no argument\r\n")),

	/* ---- STLS ---- */
	ROW("STLS, then the secure dialogue", &cfg_stls, 0,
	    GREET("+OK POP3 server ready\r\n"),
	    CMDA("STLS\r\n", DLG_STARTTLS, STLS_OK), TLS(""),
	    CMD("CAPA\r\n", CAPA_STLS), CMD("STLS\r\n", STLS_ACTIVE),
	    CMD("USER alice\r\n", SENDPW), LOGINL("PASS s3cret\r\n", "USER", "", "alice", "s3cret")),
	ROW("STLS with CAPA pipelined: dropped, not answered", &cfg_stls, 0,
	    IN("STLS\r\nCAPA\r\n"), X(DLG_STARTTLS, STLS_OK, 6), NONE(0), TLS("CAPA\r\n"),
	    CMD("CAPA\r\n", CAPA_STLS)),
	ROW("STLS with a partial line pipelined", &cfg_stls, 0,
	    IN("stls\nUSER al"), X(DLG_STARTTLS, STLS_OK, 5), NONE(0), TLS("USER al"),
	    CMD("USER bob\r\n", SENDPW)),
	ROW("STLS with USER PASS pipelined: no login", &cfg_stls, 0,
	    IN("STLS\r\nUSER alice\r\nPASS s3cret\r\n"), X(DLG_STARTTLS, STLS_OK, 6), NONE(0),
	    TLS("USER alice\r\nPASS s3cret\r\n"), CMD("PASS s3cret\r\n", NOUSER)),
	ROW("STLS on a TLS listener", &cfg_tls, 1, CMD("STLS\r\n", STLS_ACTIVE)),
	ROW("STLS on a listener without TLS", &cfg_tls, 0,
	    CMD("STLS\r\n", "-ERR STLS not available\r\n")),
	ROW("STLS with an argument", &cfg_stls, 0,
	    CMD("STLS now\r\n", "-ERR STLS takes no argument\r\n"), CMD("CAPA\r\n", CAPA_CLEAR)),

	/* ---- in clear on an STLS listener ---- */
	ROW("USER PASS AUTH need TLS", &cfg_stls, 0,
	    CMD("USER alice\r\n", TLSREQ), CMD("PASS s3cret\r\n", TLSREQ),
	    CMD("USER\r\n", TLSREQ), CMD("PASS\r\n", TLSREQ), CMD("AUTH\r\n", TLSREQ),
	    CMD("AUTH PLAIN " P_ALICE "\r\n", TLSREQ), CMD("AUTH PLAIN\r\n", TLSREQ),
	    CMD("auth login\r\n", TLSREQ), CMD("CAPA\r\n", CAPA_CLEAR)),
	ROW("USER PASS in one write in clear", &cfg_stls, 0,
	    IN("USER alice\r\nPASS s3cret\r\nQUIT\r\n"), X(DLG_REPLY, TLSREQ, 12),
	    X(DLG_REPLY, TLSREQ, 13), X(DLG_CLOSE, BYE, 6)),

	/* ---- USER / PASS ---- */
	ROW("USER PASS", &cfg_tls, 1,
	    CMD("USER alice\r\n", SENDPW), LOGINL("PASS s3cret\r\n", "USER", "", "alice", "s3cret"),
	    NONE(0), DONE(DLG_LOGIN_OK, "Logged in.", DLG_REPLY, "+OK Logged in.\r\n")),
	ROW("USER PASS STAT in one write", &cfg_tls, 1,
	    IN("USER alice\r\nPASS s3cret\r\nSTAT\r\n"), X(DLG_REPLY, SENDPW, 12),
	    LOGIN(13, "USER", "", "alice", "s3cret"), NONE(0), REST("STAT\r\n"),
	    DONE(DLG_LOGIN_OK, "Mailbox ready", DLG_REPLY, "+OK Mailbox ready\r\n"),
	    NONE(0), REST("STAT\r\n")),
	ROW("CAPA USER PASS STAT LIST in one write", &cfg_tls, 1,
	    IN("CAPA\r\nUSER alice\nPASS s3cret\r\nSTAT\r\nLI"), X(DLG_REPLY, CAPA_TLS, 6),
	    X(DLG_REPLY, SENDPW, 11), LOGIN(13, "USER", "", "alice", "s3cret"),
	    REST("STAT\r\nLI")),
	ROW("lower-case commands, bare LF", &cfg_tls, 1,
	    CMD("user alice\n", SENDPW), LOGINL("pass s3cret\n", "USER", "", "alice", "s3cret")),
	ROW("password with spaces and 8-bit", &cfg_tls, 1,
	    CMD("USER j\xc3\xbcrgen\r\n", SENDPW),
	    LOGINL("PASS  p\xc3\xa4ss w\xff" "rd \r\n", "USER", "",
	           "j\xc3\xbcrgen", " p\xc3\xa4ss w\xff" "rd ")),
	ROW("user name with a space", &cfg_tls, 1,
	    CMD("USER al ice\r\n", SENDPW), LOGINL("PASS x\r\n", "USER", "", "al ice", "x")),
	ROW("the second USER counts", &cfg_tls, 1,
	    CMD("USER alice\r\n", SENDPW), CMD("USER bob\r\n", SENDPW), CMD("CAPA\r\n", CAPA_TLS),
	    LOGINL("PASS pw\r\n", "USER", "", "bob", "pw")),
	ROW("USER without a name", &cfg_tls, 1,
	    CMD("USER\r\n", "-ERR USER needs an argument\r\n"),
	    CMD("USER \r\n", "-ERR USER needs an argument\r\n"), CMD("PASS x\r\n", NOUSER)),
	ROW("PASS without USER", &cfg_tls, 1, CMD("PASS s3cret\r\n", NOUSER),
	    CMD("PASS s3cret\r\n", NOUSER)),
	ROW("PASS without a password", &cfg_tls, 1, CMD("USER alice\r\n", SENDPW),
	    CMD("PASS\r\n", "-ERR PASS needs an argument\r\n"),
	    CMD("PASS \r\n", "-ERR PASS needs an argument\r\n"),
	    LOGINL("PASS x\r\n", "USER", "", "alice", "x")),
	ROW("longest command line: 253 octets", &cfg_tls, 1,
	    CMD("USER " X248 "\r\n", SENDPW), LOGINL("PASS " X248 "\n", "USER", "", X248, X248)),
	ROW("254 octets is too long", &cfg_tls, 1,
	    CMD("USER " X248 "x\r\n", TOOLONG), CMD("USER a\r\n", SENDPW),
	    CMD("PASS " X248 "x\r\n", TOOLONG), LOGINL("PASS x\r\n", "USER", "", "a", "x")),
	ROW("over max_command", &cfg_one, 1, CMD("USER " X1100 "\r\n", TOOLONG),
	    CMD("CAPA\r\n", CAPA_SECURE(""))),

	/* ---- login results ---- */
	ROW("OK without a text", &cfg_tls, 1, CMD("USER a\r\n", SENDPW),
	    LOGINL("PASS b\r\n", "USER", "", "a", "b"),
	    DONE(DLG_LOGIN_OK, "", DLG_REPLY, "+OK Logged in\r\n")),
	ROW("OK with a NULL text", &cfg_tls, 1, CMD("USER a\r\n", SENDPW),
	    LOGINL("PASS b\r\n", "USER", "", "a", "b"),
	    DONE(DLG_LOGIN_OK, NULL, DLG_REPLY, "+OK Logged in\r\n")),
	ROW("OK text cut at CR LF", &cfg_tls, 1, CMD("USER a\r\n", SENDPW),
	    LOGINL("PASS b\r\n", "USER", "", "a", "b"),
	    DONE(DLG_LOGIN_OK, "[X] ok\r\n-ERR y", DLG_REPLY, "+OK [X] ok\r\n")),
	ROW("OK text cut at 512", &cfg_tls, 1, CMD("USER a\r\n", SENDPW),
	    LOGINL("PASS b\r\n", "USER", "", "a", "b"),
	    DONE(DLG_LOGIN_OK, X1100, DLG_REPLY, "+OK " X512 "\r\n")),
	ROW("failures: USER again, close at the third", &cfg_tls, 1,
	    CMD("USER alice\r\n", SENDPW), LOGINL("PASS bad1\r\n", "USER", "", "alice", "bad1"),
	    DONE(DLG_LOGIN_FAILED, "no", DLG_REPLY, AFAIL),
	    CMD("PASS bad2\r\n", NOUSER),
	    CMD("USER alice\r\n", SENDPW), LOGINL("PASS bad2\r\n", "USER", "", "alice", "bad2"),
	    DONE(DLG_LOGIN_FAILED, "no", DLG_REPLY, AFAIL),
	    LOGINL("AUTH PLAIN " P_ALICE "\r\n", "PLAIN", "", "alice", "s3cret"),
	    DONE(DLG_LOGIN_FAILED, "no", DLG_CLOSE, AFAIL),
	    IN("CAPA\r\n"), NONE(0), REST("CAPA\r\n")),
	ROW("failure with commands pipelined", &cfg_tls, 1,
	    IN("USER alice\r\nPASS bad\r\nPASS good\r\nUSER alice\r\nPASS good\r\nSTAT\r\n"),
	    X(DLG_REPLY, SENDPW, 12), LOGIN(10, "USER", "", "alice", "bad"),
	    DONE(DLG_LOGIN_FAILED, "no", DLG_REPLY, AFAIL), X(DLG_REPLY, NOUSER, 11),
	    X(DLG_REPLY, SENDPW, 12), LOGIN(11, "USER", "", "alice", "good"),
	    DONE(DLG_LOGIN_OK, "in", DLG_REPLY, "+OK in\r\n"), REST("STAT\r\n")),
	ROW("max_auth_failures 1: close at the first", &cfg_one, 1,
	    CMD("USER a\r\n", SENDPW), LOGINL("PASS b\r\n", "USER", "", "a", "b"),
	    DONE(DLG_LOGIN_FAILED, "", DLG_CLOSE, AFAIL)),
	ROW("unavailable is not a failure", &cfg_one, 1,
	    CMD("USER a\r\n", SENDPW), LOGINL("PASS b\r\n", "USER", "", "a", "b"),
	    DONE(DLG_LOGIN_UNAVAILABLE, "", DLG_REPLY, UNAVAIL),
	    CMD("PASS b\r\n", NOUSER),
	    CMD("USER a\r\n", SENDPW), LOGINL("PASS b\r\n", "USER", "", "a", "b"),
	    DONE(DLG_LOGIN_UNAVAILABLE, "down", DLG_REPLY, UNAVAIL),
	    CMD("USER a\r\n", SENDPW), LOGINL("PASS b\r\n", "USER", "", "a", "b"),
	    DONE(DLG_LOGIN_FAILED, "", DLG_CLOSE, AFAIL)),
	ROW("refused counts as a failure", &cfg_one, 1,
	    LOGINL("AUTH PLAIN " P_ALICE "\r\n", "PLAIN", "", "alice", "s3cret"),
	    DONE(DLG_LOGIN_REFUSED, "", DLG_CLOSE, REFUSED)),
	ROW("forbidden counts as a failure", &cfg_one, 1,
	    LOGINL("AUTH PLAIN " P_ALICE "\r\n", "PLAIN", "", "alice", "s3cret"),
	    DONE(DLG_LOGIN_FORBIDDEN, "", DLG_CLOSE, "-ERR [AUTH] No logins on this connection\r\n")),

	/* ---- AUTH ---- */
	ROW("AUTH lists the mechanisms", &cfg_tls, 1, CMD("AUTH\r\n", MECHS), CMD("auth\n", MECHS)),
	ROW("AUTH PLAIN with an initial response", &cfg_tls, 1,
	    LOGINL("AUTH PLAIN " P_ALICE "\r\n", "PLAIN", "", "alice", "s3cret"),
	    DONE(DLG_LOGIN_OK, "hi", DLG_REPLY, "+OK hi\r\n")),
	ROW("auth plain, lower case, authzid", &cfg_tls, 1,
	    LOGINL("auth plain " P_AUTHZ "\r\n", "PLAIN", "admin", "alice", "s3cret")),
	ROW("AUTH PLAIN 8-bit password with spaces", &cfg_tls, 1,
	    LOGINL("AUTH PLAIN " P_8BIT "\r\n", "PLAIN", "", "j\xc3\xbcrgen",
	           "p\xc3\xa4ss w\xff" "rd  x")),
	ROW("AUTH PLAIN, then the response", &cfg_tls, 1,
	    IN("AUTH PLAIN\r\n" P_ALICE "\r\nSTAT\r\n"), X(DLG_REPLY, GO_ON, 12),
	    LOGIN(22, "PLAIN", "", "alice", "s3cret"), REST("STAT\r\n")),
	ROW("AUTH PLAIN with a trailing space asks", &cfg_tls, 1,
	    CMD("AUTH PLAIN \r\n", GO_ON), LOGINL(P_AUTHZ "\n", "PLAIN", "admin", "alice", "s3cret")),
	ROW("AUTH PLAIN response of 608 characters", &cfg_tls, 1,
	    CMD("AUTH PLAIN\r\n", GO_ON), LOGINL(P_LONG "\r\n", "PLAIN", "", U200, P254)),
	ROW("AUTH PLAIN initial response over 253 octets", &cfg_tls, 1,
	    CMD("AUTH PLAIN " P_LONG "\r\n", TOOLONG), CMD("CAPA\r\n", CAPA_TLS)),
	ROW("AUTH PLAIN response over max_command", &cfg_one, 1,
	    CMD("AUTH PLAIN\r\n", GO_ON), CMD(X1100 "\r\n", "-ERR Response line too long\r\n"),
	    CMD("CAPA\r\n", CAPA_SECURE(""))),
	ROW("AUTH PLAIN cancelled", &cfg_tls, 1,
	    CMD("AUTH PLAIN\r\n", GO_ON), CMD("*\r\n", CANCELLED), CMD("CAPA\r\n", CAPA_TLS)),
	ROW("AUTH after USER forgets the user", &cfg_tls, 1,
	    CMD("USER alice\r\n", SENDPW), CMD("AUTH PLAIN\r\n", GO_ON), CMD("*\r\n", CANCELLED),
	    CMD("PASS x\r\n", NOUSER), CMD("USER alice\r\n", SENDPW), CMD("AUTH\r\n", MECHS),
	    CMD("PASS x\r\n", NOUSER)),
	ROW("invalid initial responses", &cfg_tls, 1,
	    CMD("AUTH PLAIN =\r\n", INVPLAIN), CMD("AUTH PLAIN " P_ONE_NUL "\r\n", INVPLAIN),
	    CMD("AUTH PLAIN " P_NO_PASS "\r\n", INVPLAIN),
	    CMD("AUTH PLAIN AGFsaWNlAHMzY3JldA=\r\n", INVPLAIN),
	    CMD("AUTH PLAIN " P_ALICE " x\r\n", INVPLAIN),
	    CMD("AUTH PLAIN !!!!\r\n", INVPLAIN), CMD("CAPA\r\n", CAPA_TLS)),
	ROW("invalid responses after +", &cfg_tls, 1,
	    CMD("AUTH PLAIN\r\n", GO_ON), CMD("=\r\n", INVPLAIN),
	    CMD("AUTH PLAIN\r\n", GO_ON), CMD("\r\n", INVPLAIN),
	    CMD("AUTH PLAIN\r\n", GO_ON), CMD(P_ONE_NUL "\r\n", INVPLAIN),
	    CMD("AUTH PLAIN\r\n", GO_ON), CMDA("QUIT\r\n", DLG_REPLY, INVPLAIN),
	    CMDA("QUIT\r\n", DLG_CLOSE, BYE)),
	ROW("response with a NUL ends the exchange", &cfg_tls, 1,
	    CMD("AUTH PLAIN\r\n", GO_ON), IN("AG\0Fs\r\nCAPA\r\n"),
	    X(DLG_REPLY, "-ERR NUL byte in command\r\n", 7), X(DLG_REPLY, CAPA_TLS, 6)),
	ROW("response with a bare CR ends the exchange", &cfg_tls, 1,
	    CMD("AUTH PLAIN\r\n", GO_ON), CMD("AGFs\raWNl\r\n", "-ERR Bare CR in command\r\n"),
	    CMD("PASS x\r\n", NOUSER)),
	ROW("other mechanisms", &cfg_tls, 1,
	    CMD("AUTH LOGIN\r\n", UNSUPP), CMD("AUTH CRAM-MD5\r\n", UNSUPP),
	    CMD("AUTH PLAINX\r\n", UNSUPP), CMD("AUTH LOGIN dXNlcg==\r\n", UNSUPP),
	    CMD("AUTH PLAI\r\n", UNSUPP), CMD("CAPA\r\n", CAPA_TLS)),

	/* ---- everything else ---- */
	ROW("QUIT", &cfg_tls, 1, CMDA("QUIT\r\n", DLG_CLOSE, BYE), IN("CAPA\r\n"), NONE(0),
	    REST("CAPA\r\n")),
	ROW("QUIT in clear, pipelined", &cfg_stls, 0, IN("CAPA\r\nquit\r\nCAPA\r\n"),
	    X(DLG_REPLY, CAPA_CLEAR, 6), X(DLG_CLOSE, BYE, 6), NONE(0), REST("CAPA\r\n")),
	ROW("QUIT with an argument", &cfg_tls, 1,
	    CMD("QUIT now\r\n", "-ERR QUIT takes no argument\r\n")),
	ROW("transaction commands before login", &cfg_tls, 1,
	    CMD("STAT\r\n", EARLY("STAT")), CMD("LIST\r\n", EARLY("LIST")),
	    CMD("LIST 1\r\n", EARLY("LIST")), CMD("RETR 1\r\n", EARLY("RETR")),
	    CMD("DELE 1\r\n", EARLY("DELE")), CMD("noop\r\n", EARLY("NOOP")),
	    CMD("RSET\r\n", EARLY("RSET")), CMD("TOP 1 0\r\n", EARLY("TOP")),
	    CMD("UIDL\r\n", EARLY("UIDL")), CMD("LAST\r\n", EARLY("LAST"))),
	ROW("transaction commands in clear", &cfg_stls, 0,
	    CMD("STAT\r\n", EARLY("STAT")), CMD("RETR 1\r\n", EARLY("RETR"))),
	ROW("APOP", &cfg_tls, 1,
	    CMD("APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n", "-ERR APOP is not supported\r\n")),
	ROW("unknown commands", &cfg_tls, 1, CMD("XYZZ\r\n", UNKNOWN), CMD("FOO bar\r\n", UNKNOWN),
	    CMD("PAS x\r\n", UNKNOWN)),
	ROW("lines the parser refuses", &cfg_tls, 1,
	    CMD("\r\n", "-ERR Empty command line\r\n"), CMD("AB\r\n", "-ERR Invalid command\r\n"),
	    CMD("UTF8\r\n", "-ERR Invalid command\r\n"),
	    CMD("CA\0PA\r\n", "-ERR NUL byte in command\r\n"),
	    CMD("CAPA\rx\r\n", "-ERR Bare CR in command\r\n"), CMD("CAPA\r\n", CAPA_TLS)),
	ROW("ten invalid commands close", &cfg_tls, 1,
	    CMD("XYZZ\r\n", UNKNOWN), CMD("\r\n", "-ERR Empty command line\r\n"),
	    CMD("A\0B\r\n", "-ERR NUL byte in command\r\n"),
	    CMD("CAPA\rx\r\n", "-ERR Bare CR in command\r\n"),
	    CMD("USER " X248 "x\r\n", TOOLONG), CMD("CAPA x\r\n", "-ERR CAPA takes no argument\r\n"),
	    CMD("USER\r\n", "-ERR USER needs an argument\r\n"),
	    CMD("AUTH PLAIN =\r\n", INVPLAIN), CMD("AUTH PLAIN\r\n", GO_ON), CMD("=\r\n", INVPLAIN),
	    CMDA("XYZZ\r\n", DLG_CLOSE, TOOMANY), IN("CAPA\r\n"), NONE(0), REST("CAPA\r\n")),
	ROW("ten invalid commands pipelined", &cfg_tls, 1,
	    IN("A\nA\nA\nA\nA\nA\nA\nA\nA\nA\nA\n"),
	    X(DLG_REPLY, "-ERR Invalid command\r\n", 2), X(DLG_REPLY, "-ERR Invalid command\r\n", 2),
	    X(DLG_REPLY, "-ERR Invalid command\r\n", 2), X(DLG_REPLY, "-ERR Invalid command\r\n", 2),
	    X(DLG_REPLY, "-ERR Invalid command\r\n", 2), X(DLG_REPLY, "-ERR Invalid command\r\n", 2),
	    X(DLG_REPLY, "-ERR Invalid command\r\n", 2), X(DLG_REPLY, "-ERR Invalid command\r\n", 2),
	    X(DLG_REPLY, "-ERR Invalid command\r\n", 2), X(DLG_CLOSE, TOOMANY, 2), NONE(0),
	    REST("A\n")),
	/* none of these count: nine unknown commands later, still open */
	ROW("what is not counted as invalid", &cfg_tls, 1,
	    CMD("STAT\r\n", EARLY("STAT")), CMD("NOOP\r\n", EARLY("NOOP")),
	    CMD("APOP a b\r\n", "-ERR APOP is not supported\r\n"), CMD("PASS a\r\n", NOUSER),
	    CMD("AUTH LOGIN\r\n", UNSUPP), CMD("AUTH PLAIN\r\n", GO_ON), CMD("*\r\n", CANCELLED),
	    CMD("USER a\r\n", SENDPW), LOGINL("PASS b\r\n", "USER", "", "a", "b"),
	    DONE(DLG_LOGIN_FAILED, "", DLG_REPLY, AFAIL), CMD("STLS\r\n", STLS_ACTIVE),
	    CMD("X\r\n", "-ERR Invalid command\r\n"), CMD("X\r\n", "-ERR Invalid command\r\n"),
	    CMD("X\r\n", "-ERR Invalid command\r\n"), CMD("X\r\n", "-ERR Invalid command\r\n"),
	    CMD("X\r\n", "-ERR Invalid command\r\n"), CMD("X\r\n", "-ERR Invalid command\r\n"),
	    CMD("X\r\n", "-ERR Invalid command\r\n"), CMD("X\r\n", "-ERR Invalid command\r\n"),
	    CMD("X\r\n", "-ERR Invalid command\r\n"), CMDA("X\r\n", DLG_CLOSE, TOOMANY)),
	ROW("TLS required is not counted as invalid", &cfg_stls, 0,
	    CMD("USER a\r\n", TLSREQ), CMD("PASS a\r\n", TLSREQ), CMD("AUTH\r\n", TLSREQ),
	    CMD("USER a\r\n", TLSREQ), CMD("PASS a\r\n", TLSREQ), CMD("AUTH\r\n", TLSREQ),
	    CMD("USER a\r\n", TLSREQ), CMD("PASS a\r\n", TLSREQ), CMD("AUTH\r\n", TLSREQ),
	    CMD("USER a\r\n", TLSREQ), CMD("XYZZ\r\n", UNKNOWN), CMD("XYZZ\r\n", UNKNOWN),
	    CMD("XYZZ\r\n", UNKNOWN), CMD("XYZZ\r\n", UNKNOWN), CMD("XYZZ\r\n", UNKNOWN),
	    CMD("XYZZ\r\n", UNKNOWN), CMD("XYZZ\r\n", UNKNOWN), CMD("XYZZ\r\n", UNKNOWN),
	    CMD("XYZZ\r\n", UNKNOWN), CMDA("XYZZ\r\n", DLG_CLOSE, TOOMANY)),
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
	static char out[4][400];
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

enum how { WHOLE, BYTES };

struct run {
	const struct row *r;
	enum how how;
	size_t si;                    /* step index */
	struct pop3_dlg d;
	uint8_t pend[STREAM_MAX];     /* bytes arrived, not used yet */
	size_t plen;
	uint8_t fut[STREAM_MAX];      /* BYTES: bytes not arrived yet */
	size_t flen;
	size_t consumed;              /* stream offset: bytes used so far */
	size_t *offs;                 /* per step, the stream offset after it */
};

#define FAIL(u, fmt, ...) fail_msg("%s [%s] step %zu: " fmt, (u)->r->name, \
                                   (u)->how == WHOLE ? "whole" : "bytes", (u)->si, ##__VA_ARGS__)

/* Whether len bytes at p are all zero. */
static int all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return 0;
	return 1;
}

/* The output of the last call is exactly what the step expects. */
static void check_out(const struct run *u, const struct step *s)
{
	if (u->d.out_len != s->len || memcmp(u->d.out, s->data, s->len) != 0)
		FAIL(u, "out \"%s\" (%zu), expected \"%s\" (%zu)", show(u->d.out, u->d.out_len),
		     u->d.out_len, show(s->data, s->len), s->len);
}

/* A credential field holds exactly want. */
static void check_field(const struct run *u, const char *what, const char *got, size_t got_len,
                        const char *want)
{
	size_t n = strlen(want);

	if (got_len != n || memcmp(got, want, n) != 0 || got[n] != '\0')
		FAIL(u, "%s \"%s\" (%zu), expected \"%s\" (%zu)", what, show(got, got_len), got_len,
		     show(want, n), n);
}

/* No line the parser keeps may hold a password now. */
static void check_parser_wiped(const struct run *u)
{
	if (!all_zero(u->d.p.buf, (size_t)u->d.p.max_line + 1))
		FAIL(u, "parser buffer not wiped: \"%s\"",
		     show((const char *)u->d.p.buf, u->d.p.max_line < 60 ? u->d.p.max_line : 60));
}

/* One pop3_dlg_feed() on what waits, as the session does it. */
static enum dlg_act feed_once(struct run *u, size_t *used)
{
	enum dlg_act act;

	*used = SIZE_MAX;
	act = pop3_dlg_feed(&u->d, u->pend, u->plen, used);
	if (*used > u->plen)
		FAIL(u, "used %zu of %zu bytes", *used, u->plen);
	if (act == DLG_NONE && *used != 0 && *used != u->plen)
		FAIL(u, "NONE after using %zu of %zu bytes", *used, u->plen);
	if (act == DLG_NONE && u->d.out_len != 0)
		FAIL(u, "NONE with output \"%s\"", show(u->d.out, u->d.out_len));
	if (act != DLG_NONE && act != DLG_LOGIN && u->d.out_len < 2)
		FAIL(u, "%s without output", act_name(act));
	if (u->d.out_len > 0 && memcmp(u->d.out + u->d.out_len - 2, "\r\n", 2) != 0)
		FAIL(u, "output does not end in CRLF: \"%s\"", show(u->d.out, u->d.out_len));
	memmove(u->pend, u->pend + *used, u->plen - *used);
	u->plen -= *used;
	u->consumed += *used;
	return act;
}

/* X: feed and compare. BYTES moves arrived bytes one at a time until an
 * action other than NONE, or the bytes run out. */
static void step_x(struct run *u, const struct step *s)
{
	size_t used;
	enum dlg_act act = feed_once(u, &used);

	if (u->how == WHOLE && used != s->used)
		FAIL(u, "%s used %zu bytes, expected %zu", act_name(act), used, s->used);
	while (u->how == BYTES && act == DLG_NONE && u->flen > 0) {
		u->pend[u->plen++] = u->fut[0];
		memmove(u->fut, u->fut + 1, --u->flen);
		act = feed_once(u, &used);
	}
	if (act != s->act)
		FAIL(u, "%s, expected %s (out \"%s\")", act_name(act), act_name(s->act),
		     show(u->d.out, u->d.out_len));
	check_out(u, s);
	if (u->offs[u->si] == SIZE_MAX)
		u->offs[u->si] = u->consumed;
	else if (u->offs[u->si] != u->consumed)
		FAIL(u, "at stream offset %zu, the whole run said %zu", u->consumed, u->offs[u->si]);
	if (act != DLG_LOGIN)
		return;
	if (u->d.cred.mech == NULL || strcmp(u->d.cred.mech, s->mech) != 0)
		FAIL(u, "mech %s, expected %s", u->d.cred.mech ? u->d.cred.mech : "(null)", s->mech);
	check_field(u, "authzid", u->d.cred.authzid, u->d.cred.authzid_len, s->authzid);
	check_field(u, "user", u->d.cred.user, u->d.cred.user_len, s->user);
	check_field(u, "pass", u->d.cred.pass, u->d.cred.pass_len, s->pass);
	check_parser_wiped(u);
}

/* DONE: the login ended; nothing of the credentials is left. */
static void step_done(struct run *u, const struct step *s)
{
	enum dlg_act act = pop3_dlg_login_done(&u->d, s->r, s->text);

	if (act != s->act)
		FAIL(u, "login_done gave %s, expected %s", act_name(act), act_name(s->act));
	check_out(u, s);
	if (!all_zero(&u->d.cred, sizeof u->d.cred))
		FAIL(u, "credentials not wiped after login_done");
	if (u->d.have_user)
		FAIL(u, "have_user still set after login_done");
	check_parser_wiped(u);
}

/* What waits unfed (arrived or not) is exactly s->data. */
static void check_rest(const struct run *u, const char *want, size_t n)
{
	uint8_t all[2 * STREAM_MAX];

	memcpy(all, u->pend, u->plen);
	memcpy(all + u->plen, u->fut, u->flen);
	if (u->plen + u->flen != n || memcmp(all, want, n) != 0)
		FAIL(u, "unfed \"%s\" (%zu), expected \"%s\" (%zu)",
		     show((const char *)all, u->plen + u->flen), u->plen + u->flen, show(want, n), n);
}

static void step_one(struct run *u, const struct step *s)
{
	switch (s->op) {
	case O_IN:
		if (u->how == WHOLE) {
			memcpy(u->pend + u->plen, s->data, s->len);
			u->plen += s->len;
		} else {
			memcpy(u->fut + u->flen, s->data, s->len);
			u->flen += s->len;
		}
		break;
	case O_X:
		step_x(u, s);
		break;
	case O_DONE:
		step_done(u, s);
		break;
	case O_TLS:
		check_rest(u, s->data, s->len);
		u->consumed += u->plen + u->flen; /* dropped */
		u->plen = u->flen = 0;
		pop3_dlg_tls_started(&u->d);
		assert_true(u->d.tls);
		break;
	case O_REST:
		check_rest(u, s->data, s->len);
		break;
	case O_GREET:
		pop3_dlg_greeting(&u->d);
		check_out(u, s);
		break;
	case O_STOP:
		break;
	}
}

static void run(const struct row *r, enum how how, size_t *offs)
{
	static struct run u;          /* large: keep it off the stack */
	size_t n = 0;

	memset(&u, 0, sizeof u);
	u.r = r;
	u.how = how;
	u.offs = offs;
	assert_int_equal(pop3_dlg_init(&u.d, r->cfg, r->tls), 0);
	for (u.si = 0; u.si < MAX_STEPS && r->steps[u.si].op != O_STOP; u.si++) {
		const struct step *s = &r->steps[u.si];

		if (s->op == O_IN && n + s->len > STREAM_MAX)
			FAIL(&u, "script sends over %d bytes", STREAM_MAX);
		n += s->op == O_IN ? s->len : 0;
		step_one(&u, s);
	}
	/* a script ends with everything fed, unless it said what remains */
	if (u.si > 0 && r->steps[u.si - 1].op != O_REST)
		check_rest(&u, "", 0);
	pop3_dlg_free(&u.d);
	assert_true(all_zero(&u.d.cred, sizeof u.d.cred));
	assert_null(u.d.p.buf);
}

static void test_row(void **state)
{
	const struct row *r = *state;
	size_t offs[MAX_STEPS];

	for (size_t i = 0; i < MAX_STEPS; i++)
		offs[i] = SIZE_MAX;
	run(r, WHOLE, offs);
	run(r, BYTES, offs);
}

/* ---- secrets ---- */

/* After each of these lines, the password is nowhere in the parser. */
static void test_parser_wiped(void **state)
{
	static const struct {
		const struct dlg_cfg *cfg;
		int tls;
		const char *pre;              /* sent first, answered */
		const char *in;
		size_t len;
		const char *secret;
	} cases[] = {
		{ &cfg_tls, 1, "", B("PASS Zq7secret\r\n"), "Zq7secret" },
		{ &cfg_stls, 0, "", B("PASS Zq7secret\r\n"), "Zq7secret" },
		{ &cfg_stls, 0, "", B("AUTH PLAIN " P_ALICE "\r\n"), P_ALICE },
		{ &cfg_tls, 1, "USER a\r\n", B("PASS Zq7secret\r\n"), "Zq7secret" },
		{ &cfg_tls, 1, "USER a\r\n", B("PASS " X248 "Zq7\r\n"), "xxxxZq7" },
		{ &cfg_tls, 1, "USER a\r\n", B("PASS Zq7\0secret\r\n"), "Zq7" },
		{ &cfg_tls, 1, "USER a\r\n", B("PAS Zq7secret\r\n"), "Zq7secret" },
		{ &cfg_tls, 1, "", B("APOP a Zq7secret\r\n"), "Zq7secret" },
		{ &cfg_tls, 1, "", B("AUTH PLAIN " P_ONE_NUL "\r\n"), P_ONE_NUL },
		{ &cfg_tls, 1, "", B("AUTH PLAIN " P_ALICE "\r\n"), P_ALICE },
		{ &cfg_tls, 1, "", B("AUTH XPLAIN " P_ALICE "\r\n"), P_ALICE },
		{ &cfg_tls, 1, "AUTH PLAIN\r\n", B(P_ONE_NUL "\r\n"), P_ONE_NUL },
		{ &cfg_tls, 1, "AUTH PLAIN\r\n", B(P_ALICE "\r\n"), P_ALICE },
		{ &cfg_tls, 1, "AUTH PLAIN\r\n", B(P_ALICE "\rx\r\n"), P_ALICE },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct pop3_dlg d;
		size_t used;

		assert_int_equal(pop3_dlg_init(&d, cases[i].cfg, cases[i].tls), 0);
		if (cases[i].pre[0]) {
			assert_int_equal(pop3_dlg_feed(&d, (const uint8_t *)cases[i].pre,
			                               strlen(cases[i].pre), &used), DLG_REPLY);
			assert_int_equal(used, strlen(cases[i].pre));
		}
		assert_int_not_equal(pop3_dlg_feed(&d, (const uint8_t *)cases[i].in, cases[i].len,
		                                   &used), DLG_NONE);
		assert_int_equal(used, cases[i].len);
		if (memmem(d.p.buf, (size_t)d.p.max_line + 1, cases[i].secret, strlen(cases[i].secret)))
			fail_msg("case %zu: \"%s\" left in the parser", i, cases[i].secret);
		if (memmem(d.out, d.out_len, cases[i].secret, strlen(cases[i].secret)))
			fail_msg("case %zu: \"%s\" in the reply", i, cases[i].secret);
		pop3_dlg_free(&d);
	}
}

/* STLS done: no user, no credentials, no parser state from before. */
static void test_tls_started_forgets(void **state)
{
	struct pop3_dlg d;
	size_t used;

	assert_int_equal(pop3_dlg_init(&d, &cfg_stls, 0), 0);
	assert_int_equal(pop3_dlg_feed(&d, (const uint8_t *)"STLS\r\n", 6, &used), DLG_STARTTLS);
	assert_int_equal(used, 6);
	/* whatever a dialogue could hold, as if it had come in clear */
	d.have_user = 1;
	memcpy(d.cred.user, "alice", 6);
	d.cred.user_len = 5;
	memcpy(d.cred.pass, "s3cret", 7);
	d.cred.pass_len = 6;
	memcpy(d.p.buf, "PASS s3cret", 11);
	pop3_dlg_tls_started(&d);
	assert_true(d.tls);
	assert_false(d.have_user);
	assert_true(all_zero(&d.cred, sizeof d.cred));
	assert_true(all_zero(d.p.buf, (size_t)d.p.max_line + 1));
	assert_int_equal(pop3_dlg_feed(&d, (const uint8_t *)"PASS x\r\n", 8, &used), DLG_REPLY);
	assert_int_equal(d.out_len, strlen(NOUSER));
	assert_memory_equal(d.out, NOUSER, d.out_len);
	pop3_dlg_free(&d);
}

/* pop3_dlg_wipe_cred() and pop3_dlg_free() zero the credentials. */
static void test_wipe_cred(void **state)
{
	struct pop3_dlg d;
	size_t used;
	static const char in[] = "AUTH PLAIN " P_AUTHZ "\r\n";

	assert_int_equal(pop3_dlg_init(&d, &cfg_tls, 1), 0);
	assert_int_equal(pop3_dlg_feed(&d, (const uint8_t *)in, sizeof in - 1, &used), DLG_LOGIN);
	assert_string_equal(d.cred.pass, "s3cret");
	pop3_dlg_wipe_cred(&d);
	assert_true(all_zero(&d.cred, sizeof d.cred));
	pop3_dlg_free(&d);

	assert_int_equal(pop3_dlg_init(&d, &cfg_tls, 1), 0);
	assert_int_equal(pop3_dlg_feed(&d, (const uint8_t *)in, sizeof in - 1, &used), DLG_LOGIN);
	pop3_dlg_free(&d);
	assert_true(all_zero(&d.cred, sizeof d.cred));
	assert_null(d.p.buf);
}

/* ---- pop3_caps_filter ---- */

struct caps_row {
	const char *name;
	const char *in;
	size_t inlen;
	size_t outcap;
	const char *out;
};

#define CAPS(nm, input, cap, output) { nm, input, sizeof(input) - 1, cap, output }
#define CAPBUF 256
#define FILL 0xAA

static const struct caps_row caps_rows[] = {
	CAPS("dovecot's CAPA", "CAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n"
	     "STLS\r\nUSER\r\nSASL PLAIN LOGIN\r\n", CAPBUF, "TOP\r\nUIDL\r\n"),
	CAPS("LF lines", "TOP\nUIDL\nEXPIRE NEVER\nLOGIN-DELAY 900\n", CAPBUF,
	     "TOP\r\nUIDL\r\nEXPIRE NEVER\r\nLOGIN-DELAY 900\r\n"),
	CAPS("no final line end", "TOP\r\nUIDL", CAPBUF, "TOP\r\nUIDL\r\n"),
	CAPS("config value with commas", "TOP, UIDL, EXPIRE NEVER", CAPBUF,
	     "TOP\r\nUIDL\r\nEXPIRE NEVER\r\n"),
	CAPS("empty items and blanks", " top ,, uidl , ,", CAPBUF, "top\r\nuidl\r\n"),
	CAPS("drops are case-insensitive", "stls,user,sasl PLAIN,Pipelining,resp-codes,"
	     "auth-resp-code,capa,apop,implementation Dovecot,utf8 USER,lang,TOP", CAPBUF,
	     "TOP\r\n"),
	CAPS("commas inside backend lines", "IMPLEMENTATION a, b\r\nX-FOO a,b\r\n", CAPBUF,
	     "X-FOO a,b\r\n"),
	CAPS("blank runs become one space", "EXPIRE \t 30   USER\t\r\n\tTOP \r\n", CAPBUF,
	     "EXPIRE 30 USER\r\nTOP\r\n"),
	CAPS("look-alike names are kept", "STLSX, USERS, TOPS, SASLX", CAPBUF,
	     "STLSX\r\nUSERS\r\nTOPS\r\nSASLX\r\n"),
	CAPS("lines starting with a dot", ".\r\n.X\r\nTOP\r\n", CAPBUF, "TOP\r\n"),
	CAPS("control characters and 8-bit", "TO\x01P\r\nX\xc3\xa9\r\nA\x7f\r\nUIDL\r\n", CAPBUF,
	     "UIDL\r\n"),
	CAPS("bare CR separates", "TOP\rUIDL\r", CAPBUF, "TOP\r\nUIDL\r\n"),
	CAPS("empty", "", CAPBUF, ""),
	CAPS("blank only", " \r\n\t\r\n", CAPBUF, ""),
	CAPS("exact fit", "TOP\r\nUIDL\r\n", 6, "TOP\r\n"),
	CAPS("one byte short: nothing", "TOP\r\nUIDL\r\n", 5, ""),
	CAPS("a line that does not fit is left out whole", "EXPIRE NEVER\r\nTOP\r\n", 8,
	     "TOP\r\n"),
	CAPS("outcap 1", "TOP", 1, ""),
};

#define NCAPS (sizeof caps_rows / sizeof caps_rows[0])

static void test_caps_row(void **state)
{
	const struct caps_row *r = *state;
	char out[CAPBUF + 16];
	size_t n, want = strlen(r->out);

	memset(out, FILL, sizeof out);
	n = pop3_caps_filter(r->in, r->inlen, out, r->outcap);
	if (n != want || memcmp(out, r->out, want) != 0 || out[n] != '\0')
		fail_msg("%s: \"%s\" (%zu), expected \"%s\" (%zu)", r->name,
		         show(out, n < sizeof out ? n : 0), n, show(r->out, want), want);
	for (size_t i = r->outcap; i < sizeof out; i++)
		if ((uint8_t)out[i] != FILL)
			fail_msg("%s: wrote out[%zu] past outcap %zu", r->name, i, r->outcap);
}

/* outcap 0 writes nothing; NULL input is empty. */
static void test_caps_edges(void **state)
{
	char out[8];

	memset(out, FILL, sizeof out);
	assert_int_equal(pop3_caps_filter("TOP", 3, out, 0), 0);
	assert_int_equal((uint8_t)out[0], FILL);
	assert_int_equal(pop3_caps_filter(NULL, 0, out, sizeof out), 0);
	assert_int_equal(out[0], '\0');
}

static const struct CMUnitTest extra[] = {
	cmocka_unit_test(test_parser_wiped),
	cmocka_unit_test(test_tls_started_forgets),
	cmocka_unit_test(test_wipe_cred),
	cmocka_unit_test(test_caps_edges),
};

#define NEXTRA (sizeof extra / sizeof extra[0])

int main(void)
{
	static struct CMUnitTest tests[NROWS + NCAPS + NEXTRA];
	size_t k = 0;

	for (size_t i = 0; i < NROWS; i++, k++) {
		tests[k].name = rows[i].name;
		tests[k].test_func = test_row;
		tests[k].initial_state = (void *)&rows[i];
	}
	for (size_t i = 0; i < NCAPS; i++, k++) {
		tests[k].name = caps_rows[i].name;
		tests[k].test_func = test_caps_row;
		tests[k].initial_state = (void *)&caps_rows[i];
	}
	for (size_t i = 0; i < NEXTRA; i++, k++)
		tests[k] = extra[i];
	return cmocka_run_group_tests_name("pop3_dlg", tests, NULL, NULL);
}
