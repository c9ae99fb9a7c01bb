/*
 * dlg: what the IMAP and POP3 pre-auth dialogues (imap.h, pop3.h) and
 * backend logins (imap_backend.h, pop3_backend.h) have in common, so the
 * session (proxy/preauth.c) drives either the same way.
 *
 * A dialogue is fed client plaintext and returns an action:
 *   DLG_NONE      all input used; wait for more
 *   DLG_REPLY     send out[0..out_len), then feed on from buf + used
 *   DLG_STARTTLS  send out (in clear), discard every byte after the
 *                 command (nothing received in clear survives), run the
 *                 TLS handshake, then tell the dialogue TLS started
 *   DLG_LOGIN     cred holds the client's credentials: log in to the
 *                 backend; bytes after the command wait in the session
 *   DLG_CLOSE     send out, then close the connection
 *
 * A login moat refuses itself (REFUSED, FORBIDDEN) counts against
 * max_auth_failures like one the backend refused (FAILED); UNAVAILABLE,
 * the backend's fault, does not.
 *
 * A backend login is fed backend bytes and returns:
 *   BL_NEED_MORE  all input consumed, nothing to do
 *   BL_SEND       write out[0..out_len), then feed on
 *   BL_OK         logged in; text = the backend's success text
 *   BL_NO         credentials refused; text = reason
 *   BL_FAIL       protocol failure; text = reason
 *   BL_STARTTLS   the backend agreed to STARTTLS/STLS: run the TLS
 *                 handshake on the backend connection (bytes after the
 *                 used ones must not exist: the caller fails the login
 *                 if any came), then call *_bl_tls_started()
 */
#ifndef MOAT_DLG_H
#define MOAT_DLG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define DLG_CRED_MAX  1024          /* user name, password, authzid */
#define DLG_CAPS_MAX  1024

enum dlg_act {
	DLG_NONE = 0,
	DLG_REPLY,
	DLG_STARTTLS,
	DLG_LOGIN,
	DLG_CLOSE,
};

/* Outcome of the backend login, told back to the dialogue. */
enum dlg_login {
	DLG_LOGIN_OK = 0,
	DLG_LOGIN_FAILED,             /* backend said no */
	DLG_LOGIN_UNAVAILABLE,        /* backend down, slow or confused */
	DLG_LOGIN_REFUSED,            /* moat refuses: the address is blocked */
	DLG_LOGIN_FORBIDDEN,          /* moat refuses: no client address (PROXY LOCAL) */
};

enum bl_rc {
	BL_NEED_MORE = 0,
	BL_SEND,
	BL_OK,
	BL_NO,
	BL_FAIL,
	BL_STARTTLS,                  /* last: the values above keep their numbers */
};

/* Per listener, read-only, shared by all its sessions. */
struct dlg_cfg {
	const char *greeting;
	const char *caps_extra;       /* filtered backend capabilities, or "" */
	uint32_t max_command;
	unsigned max_auth_failures;
	int starttls;                 /* the listener starts in clear */
};

struct dlg_cred {
	char authzid[DLG_CRED_MAX + 1];
	char user[DLG_CRED_MAX + 1];
	char pass[DLG_CRED_MAX + 1];
	size_t authzid_len, user_len, pass_len;
	const char *mech;             /* "LOGIN", "PLAIN", "USER", ... for logs */
};

/* Appends formatted text to a reply buffer of size bytes holding *len;
 * what does not fit is cut (replies are short: every one fits). */
void dlg_putv(char *out, size_t size, size_t *len, const char *fmt, va_list ap);

#endif /* MOAT_DLG_H */
