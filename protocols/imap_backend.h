/*
 * imap_backend: moat's side of the IMAP login to a backend, as a pure
 * state machine (no I/O): feed what the backend sends, write what it
 * asks to send.
 *
 *   greeting "* OK ..." (its [CAPABILITY] code, or an explicit
 *   CAPABILITY command when it has none), then
 *     - AUTHENTICATE PLAIN (with SASL-IR when offered, else after "+")
 *       when the backend offers AUTH=PLAIN, or when an authzid is given;
 *     - else LOGIN with the user name and password as literals:
 *       synchronizing {n} (waiting for "+" each time), or {n+} when the
 *       backend offers LITERAL+; so every byte of a password works.
 *   until the tagged OK (login done), NO (refused) or anything else
 *   (failure: BYE, BAD, PREAUTH, garbage, an over-long line).
 *
 * With imap_bl_set_starttls the login first upgrades the connection
 * (RFC 3501 6.2.1, RFC 9051 6.2.1): once the capabilities are known,
 * "M3 STARTTLS" when they list STARTTLS (else FAIL); M3 OK returns
 * BL_STARTTLS, NO or BAD FAIL. After the handshake imap_bl_tls_started
 * forgets every capability learned in clear and asks for them again
 * ("M0 CAPABILITY"); the login above then runs on what TLS says. No
 * credential (nor ID) goes out before BL_STARTTLS.
 *
 * Lines from the backend are bounded (IMAP_BL_LINE_MAX); untagged lines
 * other than the greeting and CAPABILITY are ignored. The machine keeps
 * copies of the credentials and wipes them in imap_bl_free().
 */
#ifndef MOAT_IMAP_BACKEND_H
#define MOAT_IMAP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "dlg.h"

#define IMAP_BL_LINE_MAX  8192
#define IMAP_BL_CRED_MAX  DLG_CRED_MAX /* user name, password, authzid each */
#define IMAP_BL_TEXT_MAX  1024
#define IMAP_BL_ID_MAX    320         /* ID's parenthesized list */

/* Bits of struct imap_blogin.caps: the capabilities the login looks at. */
#define IMAP_BL_CAP_AUTH_PLAIN    0x1u
#define IMAP_BL_CAP_SASL_IR       0x2u
#define IMAP_BL_CAP_LITERAL_PLUS  0x4u
#define IMAP_BL_CAP_LOGINDISABLED 0x8u
#define IMAP_BL_CAP_STARTTLS      0x10u

struct imap_blogin {
	unsigned state;
	unsigned caps;                /* IMAP_BL_CAP_* seen */
	char user[IMAP_BL_CRED_MAX + 1], pass[IMAP_BL_CRED_MAX + 1];
	char authzid[IMAP_BL_CRED_MAX + 1];
	size_t user_len, pass_len, authzid_len;
	char line[IMAP_BL_LINE_MAX + 1];
	size_t line_len;
	uint8_t out[2 * IMAP_BL_CRED_MAX + 4 * (3 * IMAP_BL_CRED_MAX + 2) / 3 + 64];
	size_t out_len;
	char text[IMAP_BL_TEXT_MAX + 1];  /* OK text, or NO/FAIL reason */
	char id[IMAP_BL_ID_MAX + 1];      /* ID arguments to send first; "" none */
	unsigned gone : 1;            /* FAIL came from a BYE: the backend is going away,
	                               * another one may take the login */
	unsigned starttls : 1;        /* upgrade to TLS before the login */
	unsigned tls : 1;             /* imap_bl_tls_started ran */
};

/* Copies the credentials; authzid may be NULL or "". Returns 0, or -1
 * when a field is longer than IMAP_BL_CRED_MAX. */
int imap_bl_init(struct imap_blogin *b, const char *authzid, size_t authzid_len,
                 const char *user, size_t user_len, const char *pass, size_t pass_len)
	__attribute__((warn_unused_result));

/* Sends "ID <list>" (RFC 2971) just before the login request, in the
 * same write (its answer is ignored): how a proxy tells a backend that
 * trusts it the client's address (x-originating-ip and friends). list is
 * the parenthesized list, printable ASCII. Returns 0, or -1 when it is
 * too long. Call after imap_bl_init, before the first feed. */
int imap_bl_set_id(struct imap_blogin *b, const char *list)
	__attribute__((warn_unused_result));

/* Upgrades the backend connection with STARTTLS before logging in (see
 * above). Call after imap_bl_init, before the first feed. */
void imap_bl_set_starttls(struct imap_blogin *b);

/* The TLS handshake after BL_STARTTLS is done: forgets the capabilities
 * learned in clear and returns BL_SEND with "M0 CAPABILITY" in out; feed
 * the backend's (decrypted) answer as before. Called at any other time:
 * BL_FAIL, and the login has ended. */
enum bl_rc imap_bl_tls_started(struct imap_blogin *b) __attribute__((warn_unused_result));

/* Consumes backend bytes from buf; *used is always set. After OK the
 * bytes past *used belong to the client's session (the backend may have
 * sent more); after STARTTLS none may follow in clear (a feed before
 * imap_bl_tls_started fails). */
enum bl_rc imap_bl_feed(struct imap_blogin *b, const uint8_t *buf, size_t len,
                             size_t *used) __attribute__((warn_unused_result));

/* Wipes the credentials and everything derived from them. */
void imap_bl_free(struct imap_blogin *b);

#endif /* MOAT_IMAP_BACKEND_H */
