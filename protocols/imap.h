/*
 * imap: the IMAP dialogue moat holds with a client before login.
 *
 * Pure: no I/O. The session feeds plaintext from the client and carries
 * out the action each call returns (dlg.h).
 *
 * Answered here: CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN and
 * AUTHENTICATE PLAIN / LOGIN (with SASL-IR and "+" continuations, "*"
 * cancels). Anything else gets a tagged BAD. On a STARTTLS listener
 * before TLS, capabilities are "IMAP4rev1 STARTTLS LOGINDISABLED" and
 * LOGIN/AUTHENTICATE get NO [PRIVACYREQUIRED].
 *
 * Credentials never appear in out; imap_dlg_wipe_cred() and
 * imap_dlg_free() zero them.
 */
#ifndef MOAT_IMAP_H
#define MOAT_IMAP_H

#include <stddef.h>
#include <stdint.h>

#include "dlg.h"
#include "imap_parse.h"

#define IMAP_MAX_BAD     10         /* malformed commands before BYE */

struct imap_dlg {
	const struct dlg_cfg *cfg;
	struct imap_parser p;
	unsigned state;
	unsigned tls : 1;             /* TLS is active on the client side */
	unsigned bad;                 /* malformed commands so far */
	unsigned failures;            /* failed logins so far */
	char tag[IMAP_TAG_MAX + 1];   /* of the AUTHENTICATE/LOGIN in progress */
	struct dlg_cred cred;
	char out[DLG_CAPS_MAX + 512];
	size_t out_len;
};

int imap_dlg_init(struct imap_dlg *d, const struct dlg_cfg *cfg, int tls_active)
	__attribute__((warn_unused_result));
void imap_dlg_free(struct imap_dlg *d);

/* Puts the greeting in out. */
void imap_dlg_greeting(struct imap_dlg *d);

enum dlg_act imap_dlg_feed(struct imap_dlg *d, const uint8_t *buf, size_t len,
                            size_t *used) __attribute__((warn_unused_result));

/* The STARTTLS handshake finished: forget everything from before it. */
void imap_dlg_tls_started(struct imap_dlg *d);

/* The backend login ended: puts the tagged answer in out. backend_text
 * is the backend's OK text (its [CAPABILITY] code is filtered) or NULL.
 * Returns DLG_REPLY (OK: start relaying after sending; otherwise
 * the dialogue goes on) or DLG_CLOSE (too many failures). */
enum dlg_act imap_dlg_login_done(struct imap_dlg *d, enum dlg_login r,
                                  const char *backend_text);

/* Zeroes the credentials (after the backend login used them). */
void imap_dlg_wipe_cred(struct imap_dlg *d);

/* Filters a space-separated capability list. For what moat advertises
 * before login (passthrough = 1): drops what moat decides itself
 * (IMAP4rev1, STARTTLS, LOGINDISABLED, AUTH=*, SASL-IR, LITERAL+/-, ID).
 * For the backend's post-login list (passthrough = 0): drops STARTTLS and
 * LOGINDISABLED only. Writes a NUL-terminated list; returns its length. */
size_t imap_caps_filter(const char *in, size_t inlen, int passthrough, char *out,
                        size_t outcap);

#endif /* MOAT_IMAP_H */
