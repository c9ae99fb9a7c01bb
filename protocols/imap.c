/* imap: the pre-auth IMAP dialogue, see imap.h. */
#include "imap.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sasl.h"

enum dlg_state {
	D_COMMAND = 0,                /* reading commands */
	D_AUTH_PLAIN,                 /* waiting for the PLAIN response line */
	D_AUTH_USER,                  /* AUTHENTICATE LOGIN: user name line */
	D_AUTH_PASS,                  /* AUTHENTICATE LOGIN: password line */
	D_LOGIN,                      /* the session is logging in */
	D_CLOSED,
};

/* base64 of "Username:" and "Password:", the customary LOGIN prompts. */
#define PROMPT_USER "VXNlcm5hbWU6"
#define PROMPT_PASS "UGFzc3dvcmQ6"


typedef enum dlg_act (*cmd_fn)(struct imap_dlg *d);

struct command {
	const char *name;
	unsigned min_args, max_args;
	cmd_fn run;
	int secret;                   /* arguments may be credentials: wipe after */
};

/* Appends formatted text to out. */
__attribute__((format(printf, 2, 3)))
static void put(struct imap_dlg *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dlg_putv(d->out, sizeof d->out, &d->out_len, fmt, ap);
	va_end(ap);
}

/* A tagged reply to the command just parsed. */
#define reply(d, fmt, ...) put(d, "%s " fmt "\r\n", (d)->p.tag, ##__VA_ARGS__)

/* Whether TLS protects the client connection (or the listener is TLS-only). */
static int secure(const struct imap_dlg *d)
{
	return d->tls || !d->cfg->starttls;
}

/* The capability list for the current state. */
static void put_caps(struct imap_dlg *d)
{
	if (!secure(d)) {
		put(d, "IMAP4rev1 STARTTLS LOGINDISABLED");
		return;
	}
	put(d, "IMAP4rev1 SASL-IR LITERAL+ ID AUTH=PLAIN AUTH=LOGIN");
	if (d->cfg->caps_extra && d->cfg->caps_extra[0])
		put(d, " %s", d->cfg->caps_extra);
}

int imap_dlg_init(struct imap_dlg *d, const struct dlg_cfg *cfg, int tls_active)
{
	memset(d, 0, sizeof *d);
	d->cfg = cfg;
	d->tls = tls_active ? 1 : 0;
	return imap_init(&d->p, cfg->max_command, cfg->max_command);
}

void imap_dlg_wipe_cred(struct imap_dlg *d)
{
	sasl_wipe(&d->cred, sizeof d->cred);
}

void imap_dlg_free(struct imap_dlg *d)
{
	imap_dlg_wipe_cred(d);
	imap_free(&d->p);
}

void imap_dlg_greeting(struct imap_dlg *d)
{
	d->out_len = 0;
	put(d, "* OK [CAPABILITY ");
	put_caps(d);
	put(d, "] %s\r\n", d->cfg->greeting);
}

void imap_dlg_tls_started(struct imap_dlg *d)
{
	d->tls = 1;
	d->state = D_COMMAND;
	imap_reset(&d->p);
}

/* Copies a parsed argument into a credential field; -1 if too long. */
static int take(char *dst, size_t *dlen, const struct imap_arg *a)
{
	if (a->len > DLG_CRED_MAX)
		return -1;
	memcpy(dst, a->data, a->len);
	dst[a->len] = '\0';
	*dlen = a->len;
	return 0;
}

/* An argument that may be a string (atom, quoted or literal), not a list. */
static int is_string(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_ATOM || a->type == IMAP_ARG_QUOTED ||
	       a->type == IMAP_ARG_LITERAL;
}

/* LOGIN and AUTHENTICATE on a connection still in clear. */
static enum dlg_act privacy_required(struct imap_dlg *d)
{
	reply(d, "NO [PRIVACYREQUIRED] Use STARTTLS before logging in");
	return DLG_REPLY;
}

/* Credentials complete: hand them to the session. */
static enum dlg_act start_login(struct imap_dlg *d, const char *mech)
{
	d->cred.mech = mech;
	d->state = D_LOGIN;
	imap_wipe(&d->p);
	return DLG_LOGIN;
}

static enum dlg_act cmd_capability(struct imap_dlg *d)
{
	put(d, "* CAPABILITY ");
	put_caps(d);
	put(d, "\r\n");
	reply(d, "OK CAPABILITY completed");
	return DLG_REPLY;
}

static enum dlg_act cmd_noop(struct imap_dlg *d)
{
	reply(d, "OK NOOP completed");
	return DLG_REPLY;
}

static enum dlg_act cmd_logout(struct imap_dlg *d)
{
	put(d, "* BYE Logging out\r\n");
	reply(d, "OK LOGOUT completed");
	d->state = D_CLOSED;
	return DLG_CLOSE;
}

/* RFC 2971: moat tells nothing about itself; the client's list is
 * accepted and ignored. */
static enum dlg_act cmd_id(struct imap_dlg *d)
{
	const struct imap_arg *a = &d->p.args[0];

	if (a->type != IMAP_ARG_LIST &&
	    !(a->type == IMAP_ARG_ATOM && strcasecmp(a->data, "NIL") == 0)) {
		reply(d, "BAD ID takes a parenthesized list or NIL");
		return DLG_REPLY;
	}
	put(d, "* ID NIL\r\n");
	reply(d, "OK ID completed");
	return DLG_REPLY;
}

static enum dlg_act cmd_starttls(struct imap_dlg *d)
{
	if (d->tls || !d->cfg->starttls) {
		reply(d, "BAD STARTTLS not available: TLS is already active");
		return DLG_REPLY;
	}
	reply(d, "OK Begin TLS negotiation now");
	return DLG_STARTTLS;
}

static enum dlg_act cmd_login(struct imap_dlg *d)
{
	const struct imap_arg *u = &d->p.args[0], *pw = &d->p.args[1];

	if (!secure(d))
		return privacy_required(d);
	if (!is_string(u) || !is_string(pw) || u->len == 0) {
		reply(d, "BAD LOGIN takes a user name and a password");
		return DLG_REPLY;
	}
	imap_dlg_wipe_cred(d);
	if (take(d->cred.user, &d->cred.user_len, u) < 0 ||
	    take(d->cred.pass, &d->cred.pass_len, pw) < 0) {
		imap_dlg_wipe_cred(d);
		imap_wipe(&d->p);
		reply(d, "BAD User name or password too long");
		return DLG_REPLY;
	}
	snprintf(d->tag, sizeof d->tag, "%s", d->p.tag);
	return start_login(d, "LOGIN");
}

/* Decodes and checks a PLAIN response; on success starts the login. */
static enum dlg_act plain_response(struct imap_dlg *d, const char *b64, size_t len)
{
	uint8_t msg[SASL_PLAIN_MAX + 1];
	struct sasl_plain pl;
	const char *why;
	ssize_t n = sasl_b64_decode(b64, len, msg, sizeof msg - 1);
	enum dlg_act act;

	imap_dlg_wipe_cred(d);
	if (n < 0 || sasl_plain_parse(msg, (size_t)n, &pl, &why) < 0) {
		sasl_wipe(msg, sizeof msg);
		imap_wipe(&d->p);
		d->state = D_COMMAND;
		put(d, "%s BAD Invalid PLAIN response\r\n", d->tag);
		return DLG_REPLY;
	}
	memcpy(d->cred.authzid, pl.authzid, pl.authzid_len);
	d->cred.authzid_len = pl.authzid_len;
	memcpy(d->cred.user, pl.authcid, pl.authcid_len);
	d->cred.user_len = pl.authcid_len;
	memcpy(d->cred.pass, pl.passwd, pl.passwd_len);
	d->cred.pass_len = pl.passwd_len;
	sasl_wipe(msg, sizeof msg);
	act = start_login(d, "PLAIN");
	return act;
}

/* Decodes one AUTHENTICATE LOGIN field (user name or password). */
static int login_field(const char *b64, size_t len, char *dst, size_t *dlen)
{
	uint8_t v[DLG_CRED_MAX + 1];
	ssize_t n = sasl_b64_decode(b64, len, v, sizeof v - 1);

	if (n <= 0 || memchr(v, 0, (size_t)n)) {
		sasl_wipe(v, sizeof v);
		return -1;
	}
	memcpy(dst, v, (size_t)n);
	dst[n] = '\0';
	*dlen = (size_t)n;
	sasl_wipe(v, sizeof v);
	return 0;
}

static enum dlg_act cmd_authenticate(struct imap_dlg *d)
{
	const struct imap_arg *mech = &d->p.args[0];
	const struct imap_arg *ir = d->p.nargs > 1 ? &d->p.args[1] : NULL;

	if (!secure(d))
		return privacy_required(d);
	if (mech->type != IMAP_ARG_ATOM || (ir && ir->type != IMAP_ARG_ATOM)) {
		reply(d, "BAD AUTHENTICATE takes a mechanism and an optional initial response");
		return DLG_REPLY;
	}
	snprintf(d->tag, sizeof d->tag, "%s", d->p.tag);
	if (strcasecmp(mech->data, "PLAIN") == 0) {
		if (ir)
			return plain_response(d, ir->data, ir->len);
		d->state = D_AUTH_PLAIN;
		imap_expect_line(&d->p);
		put(d, "+ \r\n");
		return DLG_REPLY;
	}
	if (strcasecmp(mech->data, "LOGIN") == 0) {
		imap_dlg_wipe_cred(d);
		if (ir && login_field(ir->data, ir->len, d->cred.user, &d->cred.user_len) == 0) {
			d->state = D_AUTH_PASS;
			put(d, "+ " PROMPT_PASS "\r\n");
		} else if (ir) {
			reply(d, "BAD Invalid initial response");
			return DLG_REPLY;
		} else {
			d->state = D_AUTH_USER;
			put(d, "+ " PROMPT_USER "\r\n");
		}
		imap_expect_line(&d->p);
		return DLG_REPLY;
	}
	reply(d, "NO Unsupported authentication mechanism");
	return DLG_REPLY;
}

/* A SASL response line during AUTHENTICATE. */
static enum dlg_act sasl_line(struct imap_dlg *d)
{
	const struct imap_arg *a = &d->p.args[0];
	enum dlg_state st = d->state;

	d->state = D_COMMAND;
	if (a->len == 1 && a->data[0] == '*') {
		imap_dlg_wipe_cred(d);
		put(d, "%s BAD Authentication cancelled\r\n", d->tag);
		return DLG_REPLY;
	}
	if (st == D_AUTH_PLAIN)
		return plain_response(d, a->data, a->len);
	if (st == D_AUTH_USER &&
	    login_field(a->data, a->len, d->cred.user, &d->cred.user_len) == 0) {
		imap_wipe(&d->p);
		d->state = D_AUTH_PASS;
		imap_expect_line(&d->p);
		put(d, "+ " PROMPT_PASS "\r\n");
		return DLG_REPLY;
	}
	if (st == D_AUTH_PASS &&
	    login_field(a->data, a->len, d->cred.pass, &d->cred.pass_len) == 0)
		return start_login(d, "AUTH=LOGIN");
	imap_dlg_wipe_cred(d);
	imap_wipe(&d->p);
	put(d, "%s BAD Invalid response\r\n", d->tag);
	return DLG_REPLY;
}

static const struct command commands[] = {
	{ "CAPABILITY",   0, 0, cmd_capability, 0 },
	{ "NOOP",         0, 0, cmd_noop, 0 },
	{ "LOGOUT",       0, 0, cmd_logout, 0 },
	{ "ID",           1, 1, cmd_id, 0 },
	{ "STARTTLS",     0, 0, cmd_starttls, 0 },
	{ "LOGIN",        2, 2, cmd_login, 1 },
	{ "AUTHENTICATE", 1, 2, cmd_authenticate, 1 },
};

/* Commands a client may send once logged in: not "unknown", just early. */
static const char *const later[] = {
	"SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE",
	"LIST", "LSUB", "NAMESPACE", "STATUS", "APPEND", "IDLE", "ENABLE", "CHECK",
	"CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE",
	"UID", "GETQUOTA", "GETQUOTAROOT", "GETACL", "MYRIGHTS", "COMPRESS", "NOTIFY",
	"GETMETADATA", "SETMETADATA", "XLIST",
};

/* Counts a malformed command; at the limit the session ends. */
static enum dlg_act count_bad(struct imap_dlg *d)
{
	if (++d->bad < IMAP_MAX_BAD)
		return DLG_REPLY;
	put(d, "* BYE Too many invalid commands\r\n");
	d->state = D_CLOSED;
	return DLG_CLOSE;
}

/* A complete command from the parser: find it and run it. */
static enum dlg_act dispatch(struct imap_dlg *d)
{
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
		const struct command *c = &commands[i];
		enum dlg_act act;
		if (strcmp(d->p.name, c->name) != 0)
			continue;
		if (d->p.nargs < c->min_args || d->p.nargs > c->max_args) {
			imap_wipe(&d->p);
			reply(d, "BAD Wrong number of arguments for %s", c->name);
			return count_bad(d);
		}
		act = c->run(d);
		if (c->secret)
			imap_wipe(&d->p);
		return act;
	}
	imap_wipe(&d->p);
	for (size_t i = 0; i < sizeof later / sizeof *later; i++) {
		if (strcmp(d->p.name, later[i]) == 0) {
			reply(d, "BAD %s is not allowed before login", later[i]);
			return DLG_REPLY;
		}
	}
	reply(d, "BAD Unknown command");
	return count_bad(d);
}

enum dlg_act imap_dlg_feed(struct imap_dlg *d, const uint8_t *buf, size_t len, size_t *used)
{
	d->out_len = 0;
	*used = 0;
	if (d->state == D_LOGIN || d->state == D_CLOSED)
		return DLG_NONE;
	switch (imap_feed(&d->p, buf, len, used)) {
	case IMAP_NEED_MORE:
		return DLG_NONE;
	case IMAP_SEND_CONTINUATION:
		if (!secure(d) && (strcmp(d->p.name, "LOGIN") == 0 ||
		                   strcmp(d->p.name, "AUTHENTICATE") == 0)) {
			/* never invite credentials in clear: refuse the command
			 * instead of "+", so the client does not send the literal */
			char tag[IMAP_TAG_MAX + 1];
			snprintf(tag, sizeof tag, "%s", d->p.tag);
			imap_reset(&d->p);
			put(d, "%s NO [PRIVACYREQUIRED] Use STARTTLS before logging in\r\n", tag);
			return DLG_REPLY;
		}
		put(d, "+ Ready for literal data\r\n");
		return DLG_REPLY;
	case IMAP_COMMAND:
		if (d->state != D_COMMAND)
			return sasl_line(d);
		return dispatch(d);
	case IMAP_BAD:
		imap_wipe(&d->p);             /* a rejected line may hold credentials */
		if (d->state != D_COMMAND) {
			/* an unusable SASL response line ends the exchange */
			d->state = D_COMMAND;
			imap_dlg_wipe_cred(d);
			put(d, "%s BAD %s\r\n", d->tag, d->p.error);
		} else {
			put(d, "%s BAD %s\r\n", d->p.tag[0] ? d->p.tag : "*", d->p.error);
		}
		return count_bad(d);
	case IMAP_FATAL:
	default:
		put(d, "* BYE %s\r\n", d->p.error ? d->p.error : "Protocol error");
		d->state = D_CLOSED;
		return DLG_CLOSE;
	}
}

/* Copies the backend's OK text, with STARTTLS and LOGINDISABLED removed
 * from a leading [CAPABILITY ...] code. */
static void put_ok_text(struct imap_dlg *d, const char *text)
{
	static const char code[] = "[CAPABILITY ";
	const char *end;
	char caps[DLG_CAPS_MAX];

	if (strncasecmp(text, code, sizeof code - 1) != 0 || !(end = strchr(text, ']'))) {
		put(d, "%s", text);
		return;
	}
	text += sizeof code - 1;
	imap_caps_filter(text, (size_t)(end - text), 0, caps, sizeof caps);
	put(d, "[CAPABILITY %s]%s", caps, end + 1);
}

enum dlg_act imap_dlg_login_done(struct imap_dlg *d, enum dlg_login r,
                                  const char *backend_text)
{
	d->out_len = 0;
	imap_dlg_wipe_cred(d);
	if (r == DLG_LOGIN_OK) {
		put(d, "%s OK ", d->tag);
		put_ok_text(d, backend_text && *backend_text ? backend_text : "Logged in");
		put(d, "\r\n");
		d->state = D_CLOSED;
		return DLG_REPLY;
	}
	d->state = D_COMMAND;
	switch (r) {
	case DLG_LOGIN_FAILED:
		put(d, "%s NO [AUTHENTICATIONFAILED] Authentication failed\r\n", d->tag);
		break;
	case DLG_LOGIN_REFUSED:
		put(d, "%s NO [UNAVAILABLE] Too many failed logins, try again later\r\n", d->tag);
		break;
	case DLG_LOGIN_FORBIDDEN:
		put(d, "%s NO [AUTHORIZATIONFAILED] No logins on this connection\r\n", d->tag);
		break;
	default:
		put(d, "%s NO [UNAVAILABLE] Mail server unavailable, try again later\r\n", d->tag);
		return DLG_REPLY;
	}
	if (++d->failures >= d->cfg->max_auth_failures) {
		put(d, "* BYE Too many authentication failures\r\n");
		d->state = D_CLOSED;
		return DLG_CLOSE;
	}
	return DLG_REPLY;
}

/* Whether a capability is one moat decides itself (or one that makes no
 * sense through moat); passthrough selects the pre-login list. */
static int dropped(const char *tok, size_t n, int passthrough)
{
	static const char *const tls_only[] = { "STARTTLS", "LOGINDISABLED" };
	static const char *const ours[] = {
		"IMAP4rev1", "IMAP4", "SASL-IR", "LITERAL+", "LITERAL-", "ID",
	};

	for (size_t i = 0; i < sizeof tls_only / sizeof *tls_only; i++)
		if (strlen(tls_only[i]) == n && strncasecmp(tok, tls_only[i], n) == 0)
			return 1;
	if (!passthrough)
		return 0;
	if (n >= 5 && strncasecmp(tok, "AUTH=", 5) == 0)
		return 1;
	for (size_t i = 0; i < sizeof ours / sizeof *ours; i++)
		if (strlen(ours[i]) == n && strncasecmp(tok, ours[i], n) == 0)
			return 1;
	return 0;
}

size_t imap_caps_filter(const char *in, size_t inlen, int passthrough, char *out,
                        size_t outcap)
{
	size_t o = 0, i = 0;

	if (outcap == 0)
		return 0;
	while (i < inlen) {
		size_t start, n;
		while (i < inlen && in[i] == ' ')
			i++;
		start = i;
		while (i < inlen && in[i] != ' ' && in[i] != '\r' && in[i] != '\n')
			i++;
		n = i - start;
		if (n == 0)
			break;
		if (dropped(in + start, n, passthrough))
			continue;
		if (o + (o > 0) + n + 1 > outcap)
			break;
		if (o > 0)
			out[o++] = ' ';
		memcpy(out + o, in + start, n);
		o += n;
	}
	out[o] = '\0';
	return o;
}
