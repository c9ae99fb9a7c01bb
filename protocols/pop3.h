/*
 * pop3: the POP3 dialogue moat holds with a client before login (RFC
 * 1939, RFC 2449 CAPA and response codes, RFC 2595 STLS, RFC 5034 AUTH).
 * Pure, driven like the IMAP one (dlg.h: feed bytes, carry out actions).
 *
 * Answered here: CAPA, STLS, USER, PASS, AUTH (no argument lists the
 * mechanisms; PLAIN with an initial response or after "+ "; "*" cancels),
 * QUIT. NOOP and the transaction commands (STAT, LIST, RETR, ...) are not
 * valid before login and get -ERR; APOP is not offered. Before TLS on an
 * STLS listener, CAPA lists STLS (not USER or SASL) and USER, PASS and
 * AUTH get "-ERR [AUTH] TLS required". Command lines are at most 255
 * octets (RFC 2449), AUTH responses up to max_command.
 */
#ifndef MOAT_POP3_H
#define MOAT_POP3_H

#include <stddef.h>
#include <stdint.h>

#include "dlg.h"
#include "pop3_parse.h"

#define POP3_MAX_BAD   10           /* invalid commands before closing */
#define POP3_LINE_MAX  255          /* RFC 2449 section 4, with CRLF */

struct pop3_dlg {
	const struct dlg_cfg *cfg;    /* caps_extra: CRLF-terminated lines */
	struct pop3_parser p;
	unsigned state;
	unsigned tls : 1;
	unsigned have_user : 1;       /* USER given, PASS expected */
	unsigned bad;
	unsigned failures;
	struct dlg_cred cred;
	char out[DLG_CAPS_MAX + 512];
	size_t out_len;
};

int pop3_dlg_init(struct pop3_dlg *d, const struct dlg_cfg *cfg, int tls_active)
	__attribute__((warn_unused_result));
void pop3_dlg_free(struct pop3_dlg *d);

/* "+OK <greeting>" in out. */
void pop3_dlg_greeting(struct pop3_dlg *d);

enum dlg_act pop3_dlg_feed(struct pop3_dlg *d, const uint8_t *buf, size_t len, size_t *used)
	__attribute__((warn_unused_result));

/* STLS handshake done: forget everything from before it. */
void pop3_dlg_tls_started(struct pop3_dlg *d);

/* The backend login ended: the answer in out. OK: "+OK <backend text>";
 * FAILED: "-ERR [AUTH] Authentication failed" (DLG_CLOSE once
 * max_auth_failures is reached); UNAVAILABLE: "-ERR [SYS/TEMP] ...";
 * REFUSED: "-ERR [SYS/TEMP] Too many failed logins ...". */
enum dlg_act pop3_dlg_login_done(struct pop3_dlg *d, enum dlg_login r, const char *backend_text);

void pop3_dlg_wipe_cred(struct pop3_dlg *d);

/* What the server says when the pre-auth timeout expires or moat stops. */
#define POP3_TIMEOUT_MSG  "-ERR [SYS/TEMP] Autologout; idle for too long\r\n"

/* Filters the backend's CAPA lines (in: "\r\n"- or "\n"-separated, or
 * a config value separated by ","): drops what moat decides itself (STLS,
 * USER, SASL, RESP-CODES, AUTH-RESP-CODE, PIPELINING, CAPA, APOP,
 * IMPLEMENTATION, STLS) and keeps the rest (TOP, UIDL, EXPIRE, LOGIN-DELAY,
 * ...), each written as "NAME [ARGS]\r\n". Returns the length written.
 * Details: "," separates only when in has no LF (backend lines may hold
 * commas); blanks are trimmed and runs of them become one space; UTF8 and
 * LANG are dropped too (moat does not answer them before login), as are
 * lines that are not printable ASCII or start with "."; a line that does
 * not fit in outcap is left out whole; out is NUL-terminated (outcap 0:
 * nothing written). */
size_t pop3_caps_filter(const char *in, size_t inlen, char *out, size_t outcap);

#endif /* MOAT_POP3_H */
