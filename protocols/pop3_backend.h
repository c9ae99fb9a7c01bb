/*
 * pop3_backend: moat's side of the POP3 login to a backend, as a pure
 * state machine (dlg.h: feed backend bytes, send what it asks).
 *
 *   greeting "+OK ..." (anything else: FAIL), then CAPA (a multi-line
 *   answer ending in "."; "-ERR" means no capabilities), then
 *     - "AUTH PLAIN <base64>" (RFC 5034 initial response) when CAPA lists
 *       "SASL" with PLAIN, or when an authzid is given (no PLAIN: NO);
 *       a line that would exceed 255 octets is sent as "AUTH PLAIN" and
 *       the response after "+ " (RFC 5034 section 4); "+" after an
 *       initial response is cancelled with "*", then FAIL;
 *     - else "USER <name>", then "PASS <password>". A name or password
 *       with CR, LF or NUL, or a name with a space, cannot be sent this
 *       way: NO.
 *   until "+OK" (OK, text = what follows "+OK "), "-ERR" to the
 *   credentials (NO, text = the backend's text; but "-ERR [SYS/...]" or
 *   "-ERR [IN-USE]" mean the backend cannot serve now: FAIL).
 *
 * With pop3_bl_set_starttls the login first upgrades the connection
 * (RFC 2595 section 4): after CAPA, "STLS" when CAPA listed it (else,
 * or when CAPA said "-ERR": FAIL); "+OK" returns BL_STARTTLS, "-ERR"
 * FAIL. After the handshake pop3_bl_tls_started forgets what CAPA said
 * in clear and sends CAPA again; the login above then runs on what TLS
 * says (XCLIENT included). No credential goes out before BL_STARTTLS.
 *
 * Tags: none (POP3 answers in order). Lines are bounded
 * (POP3_BL_LINE_MAX). Credentials are copied and wiped by
 * pop3_bl_free(), the password as soon as it went out for the last time
 * (then it is only in out, wiped by the next feed) or the login ended.
 */
#ifndef MOAT_POP3_BACKEND_H
#define MOAT_POP3_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "dlg.h"

#define POP3_BL_LINE_MAX 8192
#define POP3_BL_TEXT_MAX 1024
#define POP3_BL_XCLIENT_MAX 200

struct pop3_blogin {
	unsigned state;
	unsigned sasl_plain : 1;      /* CAPA offered SASL PLAIN */
	char user[DLG_CRED_MAX + 1], pass[DLG_CRED_MAX + 1], authzid[DLG_CRED_MAX + 1];
	size_t user_len, pass_len, authzid_len;
	char line[POP3_BL_LINE_MAX + 1];
	size_t line_len;
	uint8_t out[4 * (3 * DLG_CRED_MAX + 2) / 3 + 64];
	size_t out_len;
	char text[POP3_BL_TEXT_MAX + 1];
	char xclient[POP3_BL_XCLIENT_MAX + 1]; /* XCLIENT arguments; "" none */
	unsigned cap_xclient : 1;     /* CAPA offered XCLIENT */
	unsigned greet_xclient : 1;   /* so did the greeting's "[XCLIENT]" (Dovecot 2.3) */
	unsigned gone : 1;            /* FAIL came from "-ERR" to the connection or
	                               * "-ERR [SYS/TEMP]": another backend may take it */
	unsigned xclient_done : 1;
	unsigned cap_stls : 1;        /* CAPA offered STLS */
	unsigned starttls : 1;        /* upgrade to TLS before the login */
	unsigned tls : 1;             /* pop3_bl_tls_started ran */
};

int pop3_bl_init(struct pop3_blogin *b, const char *authzid, size_t authzid_len,
                 const char *user, size_t user_len, const char *pass, size_t pass_len)
	__attribute__((warn_unused_result));

/* Consumes backend bytes; *used is always set and stops right after the
 * line that produced a result (after OK the rest belongs to the client;
 * after STARTTLS none may follow in clear: a feed before
 * pop3_bl_tls_started fails). */
enum bl_rc pop3_bl_feed(struct pop3_blogin *b, const uint8_t *buf, size_t len, size_t *used)
	__attribute__((warn_unused_result));

/* Sends "XCLIENT <args>" (e.g. "ADDR=192.0.2.7 PORT=4321") after CAPA
 * when the backend offers XCLIENT (Dovecot does to its
 * login_trusted_networks), before the login; the answer is not needed.
 * Returns 0, or -1 when too long. Call after pop3_bl_init. */
int pop3_bl_set_xclient(struct pop3_blogin *b, const char *args)
	__attribute__((warn_unused_result));

/* Upgrades the backend connection with STLS before logging in (see
 * above). Call after pop3_bl_init, before the first feed. */
void pop3_bl_set_starttls(struct pop3_blogin *b);

/* The TLS handshake after BL_STARTTLS is done: forgets the capabilities
 * learned in clear and returns BL_SEND with "CAPA" in out; feed the
 * backend's (decrypted) answer as before. Called at any other time:
 * BL_FAIL, and the login has ended. */
enum bl_rc pop3_bl_tls_started(struct pop3_blogin *b) __attribute__((warn_unused_result));

void pop3_bl_free(struct pop3_blogin *b);

#endif /* MOAT_POP3_BACKEND_H */
