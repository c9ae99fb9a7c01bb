/* pop3: the pre-auth POP3 dialogue, see pop3.h. */
#include "pop3.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sasl.h"

enum dlg_state {
	D_COMMAND = 0,                /* reading commands */
	D_AUTH_PLAIN,                 /* waiting for the PLAIN response line */
	D_STLS,                       /* STLS accepted: waiting for the handshake */
	D_LOGIN,                      /* the session is logging in */
	D_CLOSED,
};


/* USER and PASS arguments fit a credential field: dispatch() refuses
 * longer command lines. */
_Static_assert(POP3_LINE_MAX - 2 <= DLG_CRED_MAX, "a command line fits in a credential");

/* Longest backend text repeated after "+OK " (the rest is cut). */
#define OK_TEXT_MAX 512

/* Command flags. */
#define C_SECURE  0x1                 /* refused in clear on an STLS listener */
#define C_NOARG   0x2                 /* takes no argument */
#define C_ARG     0x4                 /* needs an argument */
#define C_SECRET  0x8                 /* the line may hold a secret: wipe it */

typedef enum dlg_act (*cmd_fn)(struct pop3_dlg *d);

struct command {
	const char *name;
	unsigned flags;
	cmd_fn run;
};

/* Appends formatted text to out. */
__attribute__((format(printf, 2, 3)))
static void put(struct pop3_dlg *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dlg_putv(d->out, sizeof d->out, &d->out_len, fmt, ap);
	va_end(ap);
}

/* Whether TLS protects the client connection (or the listener is TLS-only). */
static int secure(const struct pop3_dlg *d)
{
	return d->tls || !d->cfg->starttls;
}

int pop3_dlg_init(struct pop3_dlg *d, const struct dlg_cfg *cfg, int tls_active)
{
	memset(d, 0, sizeof *d);
	d->cfg = cfg;
	d->tls = tls_active ? 1 : 0;
	return pop3_init(&d->p, cfg->max_command);
}

void pop3_dlg_wipe_cred(struct pop3_dlg *d)
{
	sasl_wipe(&d->cred, sizeof d->cred);
}

void pop3_dlg_free(struct pop3_dlg *d)
{
	pop3_dlg_wipe_cred(d);
	pop3_free(&d->p);
}

void pop3_dlg_greeting(struct pop3_dlg *d)
{
	d->out_len = 0;
	put(d, "+OK %s\r\n", d->cfg->greeting);
}

void pop3_dlg_tls_started(struct pop3_dlg *d)
{
	d->tls = 1;
	d->state = D_COMMAND;
	d->have_user = 0;
	pop3_dlg_wipe_cred(d);
	pop3_reset(&d->p);
}

/* Counts an invalid command; at the limit its reply is replaced by the
 * farewell and the session ends. */
static enum dlg_act count_bad(struct pop3_dlg *d)
{
	if (++d->bad < POP3_MAX_BAD)
		return DLG_REPLY;
	d->out_len = 0;
	put(d, "-ERR Too many invalid commands\r\n");
	d->state = D_CLOSED;
	return DLG_CLOSE;
}

/* USER, PASS and AUTH on a connection still in clear. */
static enum dlg_act tls_required(struct pop3_dlg *d)
{
	put(d, "-ERR [AUTH] TLS required, use STLS first\r\n");
	return DLG_REPLY;
}

/* Credentials complete: hand them to the session. */
static enum dlg_act start_login(struct pop3_dlg *d, const char *mech)
{
	d->cred.mech = mech;
	d->state = D_LOGIN;
	pop3_wipe(&d->p);
	return DLG_LOGIN;
}

/* CAPA: the list depends on whether TLS protects the connection. */
static enum dlg_act cmd_capa(struct pop3_dlg *d)
{
	put(d, "+OK Capability list follows\r\n");
	if (!secure(d)) {
		put(d, "STLS\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
	} else {
		put(d, "USER\r\nSASL PLAIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
		if (d->cfg->caps_extra)
			put(d, "%s", d->cfg->caps_extra);
	}
	put(d, ".\r\n");
	return DLG_REPLY;
}

/* STLS: only in clear on an STLS listener; the session does the rest. */
static enum dlg_act cmd_stls(struct pop3_dlg *d)
{
	if (d->tls) {
		put(d, "-ERR STLS not available: TLS is already active\r\n");
		return DLG_REPLY;
	}
	if (!d->cfg->starttls) {
		put(d, "-ERR STLS not available\r\n");
		return DLG_REPLY;
	}
	put(d, "+OK Begin TLS negotiation\r\n");
	d->state = D_STLS;
	return DLG_STARTTLS;
}

/* QUIT before login: nothing to commit, just close. */
static enum dlg_act cmd_quit(struct pop3_dlg *d)
{
	put(d, "+OK Logging out\r\n");
	d->state = D_CLOSED;
	return DLG_CLOSE;
}

/* USER: remembers the name until PASS. */
static enum dlg_act cmd_user(struct pop3_dlg *d)
{
	pop3_dlg_wipe_cred(d);
	memcpy(d->cred.user, d->p.arg, d->p.arg_len);
	d->cred.user[d->p.arg_len] = '\0';
	d->cred.user_len = d->p.arg_len;
	d->have_user = 1;
	put(d, "+OK Send your password\r\n");
	return DLG_REPLY;
}

/* PASS: the whole argument is the password, spaces included. */
static enum dlg_act cmd_pass(struct pop3_dlg *d)
{
	if (!d->have_user) {
		put(d, "-ERR No user name given, send USER first\r\n");
		return DLG_REPLY;
	}
	memcpy(d->cred.pass, d->p.arg, d->p.arg_len);
	d->cred.pass[d->p.arg_len] = '\0';
	d->cred.pass_len = d->p.arg_len;
	return start_login(d, "USER");
}

/* Decodes and checks a PLAIN response; on success starts the login. */
static enum dlg_act plain_response(struct pop3_dlg *d, const char *b64, size_t len)
{
	uint8_t msg[SASL_PLAIN_MAX + 1];
	struct sasl_plain pl;
	const char *why;
	ssize_t n = -1;

	pop3_dlg_wipe_cred(d);
	if (!(len == 1 && b64[0] == '='))     /* "=": empty, never valid PLAIN */
		n = sasl_b64_decode(b64, len, msg, sizeof msg - 1);
	if (n < 0 || sasl_plain_parse(msg, (size_t)n, &pl, &why) < 0) {
		sasl_wipe(msg, sizeof msg);
		put(d, "-ERR [AUTH] Invalid PLAIN response\r\n");
		return count_bad(d);
	}
	memcpy(d->cred.authzid, pl.authzid, pl.authzid_len);
	d->cred.authzid_len = pl.authzid_len;
	memcpy(d->cred.user, pl.authcid, pl.authcid_len);
	d->cred.user_len = pl.authcid_len;
	memcpy(d->cred.pass, pl.passwd, pl.passwd_len);
	d->cred.pass_len = pl.passwd_len;
	sasl_wipe(msg, sizeof msg);
	return start_login(d, "PLAIN");
}

/* AUTH: without an argument lists the mechanisms (RFC 5034 section 4);
 * PLAIN with an initial response logs in, without one asks for it. */
static enum dlg_act cmd_auth(struct pop3_dlg *d)
{
	const char *mech = d->p.arg, *sp;
	size_t mlen;

	d->have_user = 0;
	pop3_dlg_wipe_cred(d);
	if (d->p.arg_len == 0) {
		put(d, "+OK\r\nPLAIN\r\n.\r\n");
		return DLG_REPLY;
	}
	sp = strchr(mech, ' ');
	mlen = sp ? (size_t)(sp - mech) : d->p.arg_len;
	if (mlen != 5 || strncasecmp(mech, "PLAIN", 5) != 0) {
		put(d, "-ERR Unsupported authentication mechanism\r\n");
		return DLG_REPLY;
	}
	if (sp && sp[1])
		return plain_response(d, sp + 1, d->p.arg_len - mlen - 1);
	d->state = D_AUTH_PLAIN;
	pop3_expect_line(&d->p);
	put(d, "+ \r\n");
	return DLG_REPLY;
}

/* APOP needs the plain password on moat's side: never offered. */
static enum dlg_act cmd_apop(struct pop3_dlg *d)
{
	put(d, "-ERR APOP is not supported\r\n");
	return DLG_REPLY;
}

/* The response line to "+ " after AUTH PLAIN. */
static enum dlg_act sasl_line(struct pop3_dlg *d)
{
	enum dlg_act act;

	d->state = D_COMMAND;
	if (d->p.arg_len == 1 && d->p.arg[0] == '*') {
		pop3_dlg_wipe_cred(d);
		put(d, "-ERR Authentication cancelled\r\n");
		return DLG_REPLY;
	}
	act = plain_response(d, d->p.arg, d->p.arg_len);
	pop3_wipe(&d->p);
	return act;
}

static const struct command commands[] = {
	{ "CAPA", C_NOARG, cmd_capa },
	{ "STLS", C_NOARG, cmd_stls },
	{ "QUIT", C_NOARG, cmd_quit },
	{ "USER", C_SECURE | C_ARG, cmd_user },
	{ "PASS", C_SECURE | C_ARG | C_SECRET, cmd_pass },
	{ "AUTH", C_SECURE | C_SECRET, cmd_auth },
	{ "APOP", C_SECRET, cmd_apop },
};

/* Commands of the TRANSACTION state: not "unknown", just early. */
static const char *const later[] = {
	"STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "LAST",
};

/* Runs a known command once its preconditions hold. */
static enum dlg_act run(struct pop3_dlg *d, const struct command *c)
{
	if ((c->flags & C_SECURE) && !secure(d))
		return tls_required(d);
	if ((c->flags & C_NOARG) && d->p.arg_len > 0) {
		put(d, "-ERR %s takes no argument\r\n", c->name);
		return count_bad(d);
	}
	if ((c->flags & C_ARG) && d->p.arg_len == 0) {
		put(d, "-ERR %s needs an argument\r\n", c->name);
		return count_bad(d);
	}
	return c->run(d);
}

/* A complete command line from the parser: find it and run it. */
static enum dlg_act dispatch(struct pop3_dlg *d)
{
	enum dlg_act act;

	if (d->p.line_len > POP3_LINE_MAX - 2) {
		pop3_wipe(&d->p);
		put(d, "-ERR Command line too long\r\n");
		return count_bad(d);
	}
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
		const struct command *c = &commands[i];
		if (strcmp(d->p.name, c->name) != 0)
			continue;
		act = run(d, c);
		if (c->flags & C_SECRET)
			pop3_wipe(&d->p);
		return act;
	}
	for (size_t i = 0; i < sizeof later / sizeof *later; i++) {
		if (strcmp(d->p.name, later[i]) == 0) {
			put(d, "-ERR %s is not allowed before login\r\n", later[i]);
			return DLG_REPLY;
		}
	}
	pop3_wipe(&d->p);
	put(d, "-ERR Unknown command\r\n");
	return count_bad(d);
}

enum dlg_act pop3_dlg_feed(struct pop3_dlg *d, const uint8_t *buf, size_t len, size_t *used)
{
	d->out_len = 0;
	*used = 0;
	if (d->state == D_STLS || d->state == D_LOGIN || d->state == D_CLOSED)
		return DLG_NONE;
	switch (pop3_feed(&d->p, buf, len, used)) {
	case POP3_NEED_MORE:
		return DLG_NONE;
	case POP3_LINE:
		if (d->state == D_AUTH_PLAIN)
			return sasl_line(d);
		return dispatch(d);
	case POP3_BAD:
	default:
		/* the partial line may have held a secret; a bad response line
		 * ends the AUTH exchange */
		pop3_wipe(&d->p);
		if (d->state == D_AUTH_PLAIN) {
			d->state = D_COMMAND;
			pop3_dlg_wipe_cred(d);
		}
		put(d, "-ERR %s\r\n", d->p.error ? d->p.error : "Invalid command");
		return count_bad(d);
	}
}

enum dlg_act pop3_dlg_login_done(struct pop3_dlg *d, enum dlg_login r, const char *backend_text)
{
	d->out_len = 0;
	d->have_user = 0;
	pop3_dlg_wipe_cred(d);        /* the parser was wiped at DLG_LOGIN */
	if (r == DLG_LOGIN_OK) {
		const char *t = backend_text && *backend_text ? backend_text : "Logged in";
		size_t n = strcspn(t, "\r\n");

		put(d, "+OK %.*s\r\n", (int)(n < OK_TEXT_MAX ? n : OK_TEXT_MAX), t);
		d->state = D_CLOSED;
		return DLG_REPLY;
	}
	d->state = D_COMMAND;
	switch (r) {
	case DLG_LOGIN_FAILED:
		put(d, "-ERR [AUTH] Authentication failed\r\n");
		break;
	case DLG_LOGIN_REFUSED:
		put(d, "-ERR [SYS/TEMP] Too many failed logins, try again later\r\n");
		break;
	case DLG_LOGIN_FORBIDDEN:
		put(d, "-ERR [AUTH] No logins on this connection\r\n");
		break;
	default:
		put(d, "-ERR [SYS/TEMP] Mail server unavailable, try again later\r\n");
		return DLG_REPLY;
	}
	if (++d->failures >= d->cfg->max_auth_failures) {
		d->state = D_CLOSED;
		return DLG_CLOSE;
	}
	return DLG_REPLY;
}

/* Whether a capability is one moat decides itself before login (or one
 * that makes no sense through moat). */
static int dropped(const char *name, size_t n)
{
	static const char *const ours[] = {
		"STLS", "USER", "SASL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
		"CAPA", "APOP", "IMPLEMENTATION", "UTF8", "LANG",
	};

	for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
		if (strlen(ours[i]) == n && strncasecmp(name, ours[i], n) == 0)
			return 1;
	return 0;
}

/* Space or tab, the separators inside a capability line. */
static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Normalises one capability line [s, e) into "NAME[ ARGS]" in tmp (blanks
 * trimmed, runs of them made one space). Returns its length, or 0 when
 * it is empty, dropped, or not printable ASCII. */
static size_t caps_line(const char *s, const char *e, char *tmp, size_t tmpcap)
{
	size_t n = 0, name_len = 0;

	for (; s < e; s++) {
		unsigned char c = (unsigned char)*s;

		if (is_blank(*s)) {
			if (n > 0 && tmp[n - 1] != ' ') {
				if (name_len == 0)
					name_len = n;
				if (n >= tmpcap)
					return 0;
				tmp[n++] = ' ';
			}
			continue;
		}
		if (c < 0x21 || c > 0x7e || n >= tmpcap)
			return 0;
		tmp[n++] = (char)c;
	}
	if (n > 0 && tmp[n - 1] == ' ')
		n--;
	if (name_len == 0)
		name_len = n;
	if (n == 0 || tmp[0] == '.' || dropped(tmp, name_len))
		return 0;
	return n;
}

size_t pop3_caps_filter(const char *in, size_t inlen, char *out, size_t outcap)
{
	/* backend lines may hold commas; a config value has no LF */
	int commas;
	size_t o = 0, i = 0;
	char tmp[DLG_CAPS_MAX];

	if (outcap == 0)
		return 0;
	if (!in)
		inlen = 0;
	commas = inlen == 0 || memchr(in, '\n', inlen) == NULL;
	while (i < inlen) {
		size_t start = i, n;

		while (i < inlen && in[i] != '\r' && in[i] != '\n' && !(commas && in[i] == ','))
			i++;
		n = caps_line(in + start, in + i, tmp, sizeof tmp);
		i++;                          /* the separator */
		if (n == 0 || o + n + 2 >= outcap)
			continue;
		memcpy(out + o, tmp, n);
		memcpy(out + o + n, "\r\n", 2);
		o += n + 2;
	}
	out[o] = '\0';
	return o;
}
