/*
 * preauth: the session before login. The client talks to moat's own IMAP
 * dialogue (protocols/imap.c); when it has given credentials over TLS,
 * moat connects to the backend, logs in with them (protocols/
 * imap_backend.c), answers the client's tag and switches to the relay.
 *
 * Memory: struct preauth (parser, credentials, client bytes not yet
 * used) exists only until the relay starts; credentials are wiped as
 * soon as the backend has seen them.
 */
#include "sess_int.h"

#include <stdlib.h>
#include <string.h>

#include "imap.h"
#include "imap_backend.h"
#include "log.h"

/* Client plaintext moat holds before login: one command in progress plus
 * what was pipelined behind a LOGIN. */
#define PENDING_MAX (128 * 1024)

struct preauth {
	struct imap_dlg dlg;
	struct imap_blogin *bl;       /* during SESS_LOGIN */
	uint8_t *pending;             /* client plaintext not fed yet */
	size_t pending_len;
	enum dlg_login result;
	char text[IMAP_BL_TEXT_MAX + 1]; /* backend's OK text or failure reason */
};

static void on_login_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

int preauth_begin(struct sess *s)
{
	struct preauth *pa = calloc(1, sizeof *pa);

	if (!pa)
		return -1;
	if (imap_dlg_init(&pa->dlg, &s->wl->rt->imap, s->tls_on) != 0) {
		free(pa);
		return -1;
	}
	s->pa = pa;
	return 0;
}

void preauth_end(struct sess *s)
{
	struct preauth *pa = s->pa;

	if (!pa)
		return;
	if (pa->bl) {
		imap_bl_free(pa->bl);
		free(pa->bl);
	}
	imap_dlg_free(&pa->dlg);
	if (pa->pending) {
		memset(pa->pending, 0, pa->pending_len);
		free(pa->pending);
	}
	free(pa);
	s->pa = NULL;
}

/* Sends what the dialogue put in its out buffer. */
static void flush_dlg(struct sess *s)
{
	struct imap_dlg *d = &s->pa->dlg;

	if (d->out_len)
		sess_send(s, d->out, d->out_len);
	d->out_len = 0;
}

void preauth_greet(struct sess *s)
{
	imap_dlg_greeting(&s->pa->dlg);
	flush_dlg(s);
	sess_enter(s, SESS_PREAUTH);
}

void preauth_tls_started(struct sess *s)
{
	struct preauth *pa = s->pa;

	imap_dlg_tls_started(&pa->dlg);
	if (pa->pending) {
		memset(pa->pending, 0, pa->pending_len);
		free(pa->pending);
		pa->pending = NULL;
		pa->pending_len = 0;
	}
	sess_enter(s, SESS_PREAUTH);
}

/* Logs one login attempt; never the password. */
static void log_login(struct sess *s, const char *result, const char *why)
{
	const struct dlg_cred *c = &s->pa->dlg.cred;
	char p[64], u[160], r[200];

	log_msg(LOG_LVL_INFO, "event=login listener=%s client=%s user=%s mech=%s result=%s%s%s",
	        s->l->name, sess_peer(s, p, sizeof p), log_quote(u, sizeof u, c->user),
	        c->mech ? c->mech : "-", result, why ? " reason=" : "",
	        why ? log_quote(r, sizeof r, why) : "");
}

/* Starts the backend login with the credentials the dialogue collected. */
static void start_login(struct sess *s)
{
	struct preauth *pa = s->pa;
	const struct dlg_cred *c = &pa->dlg.cred;

	pa->bl = malloc(sizeof *pa->bl);
	if (!pa->bl || imap_bl_init(pa->bl, c->authzid, c->authzid_len, c->user, c->user_len,
	                            c->pass, c->pass_len) != 0) {
		preauth_backend_failed(s, UV_ENOMEM, "out of memory");
		return;
	}
	uv_read_stop((uv_stream_t *)&s->client);
	s->client_paused = 1;
	sess_enter(s, SESS_LOGIN);
	backend_connect(s);
}

/* Feeds pending bytes to the dialogue and carries out what it asks,
 * until input runs out or an action stops the dialogue. */
static void process(struct sess *s)
{
	struct preauth *pa = s->pa;

	while (!s->closing && s->pa == pa && s->state == SESS_PREAUTH && pa->pending_len > 0) {
		size_t used = 0;
		enum dlg_act act = imap_dlg_feed(&pa->dlg, pa->pending, pa->pending_len, &used);

		memmove(pa->pending, pa->pending + used, pa->pending_len - used);
		memset(pa->pending + pa->pending_len - used, 0, used);
		pa->pending_len -= used;
		switch (act) {
		case DLG_NONE:
			if (used == 0)
				return;
			break;
		case DLG_REPLY:
			flush_dlg(s);
			if (outq_pending(&s->to_client) > s->w->cfg->max_pending) {
				/* a client pipelining faster than it reads */
				uv_read_stop((uv_stream_t *)&s->client);
				s->client_paused = 1;
				return;
			}
			break;
		case DLG_STARTTLS:
			flush_dlg(s);
			/* nothing received in clear is acted on after TLS starts */
			memset(pa->pending, 0, pa->pending_len);
			pa->pending_len = 0;
			sess_start_tls(s);
			return;
		case DLG_LOGIN:
			start_login(s);
			return;
		case DLG_CLOSE:
			flush_dlg(s);
			if (s->tls_on)
				tls_close_notify(s->tls);
			sess_finish(s, "client logged out or misbehaved");
			return;
		}
	}
}

void preauth_input(struct sess *s, const uint8_t *p, size_t n)
{
	struct preauth *pa = s->pa;
	uint8_t *m;

	if (pa->pending_len + n > PENDING_MAX) {
		sess_send(s, "* BYE Too much input before login\r\n", 35);
		sess_finish(s, "too much input before login");
		return;
	}
	m = realloc(pa->pending, pa->pending_len + n);
	if (!m) {
		sess_close(s, "out of memory");
		return;
	}
	memcpy(m + pa->pending_len, p, n);
	pa->pending = m;
	pa->pending_len += n;
	if (s->state == SESS_PREAUTH)
		process(s);
}

void preauth_client_input(struct sess *s)
{
	struct worker *w = s->w;
	char e[128];

	while (!s->closing && s->state == SESS_PREAUTH && !s->client_paused) {
		ssize_t n = tls_read(s->tls, w->pbuf, w->cfg->buffer_size);
		if (n == TLS_AGAIN)
			break;
		if (n == TLS_EOF) {
			sess_close(s, "client closed before login");
			return;
		}
		if (n < 0) {
			log_msg(LOG_LVL_INFO, "event=tls_error listener=%s error=%s", s->l->name,
			        log_quote(e, sizeof e, tls_strerror((int)n, e, sizeof e)));
			sess_close(s, "TLS error from client");
			return;
		}
		s->bytes_in += (uint64_t)n;
		preauth_input(s, w->pbuf, (size_t)n);
	}
	sess_tls_flush(s);
}

/* Hands the answer for the login to the client and moves on: to the
 * relay, back to the dialogue, or to the end. */
static void answer(struct sess *s)
{
	struct preauth *pa = s->pa;
	enum dlg_act act = imap_dlg_login_done(&pa->dlg, pa->result, pa->text);

	flush_dlg(s);
	if (act == DLG_CLOSE) {
		tls_close_notify(s->tls);
		sess_finish(s, "too many authentication failures");
		return;
	}
	sess_enter(s, SESS_PREAUTH);
	preauth_resume(s);
}

/* The backend accepted the credentials: answer, forward what the client
 * pipelined, and relay from now on. */
static void login_ok(struct sess *s, const uint8_t *rest, size_t rest_len)
{
	struct preauth *pa = s->pa;

	log_login(s, "ok", NULL);
	free(s->user);
	s->user = strdup(pa->dlg.cred.user);
	pa->result = DLG_LOGIN_OK;
	(void)imap_dlg_login_done(&pa->dlg, DLG_LOGIN_OK, pa->text);
	flush_dlg(s);
	if (rest_len) {
		s->bytes_out += rest_len;
		if (tls_write(s->tls, rest, rest_len) != 0) {
			sess_close(s, "TLS write failed");
			return;
		}
		sess_tls_flush(s);
	}
	if (pa->pending_len && outq_write(&s->to_backend, pa->pending, pa->pending_len) < 0) {
		sess_close(s, "backend write failed");
		return;
	}
	preauth_end(s);
	sess_enter(s, SESS_RELAY);
	relay_start(s);
	sess_client_resume(s);
}

/* The backend refused the credentials: hold the answer back for a delay
 * that grows with each failure on this connection. */
static void login_no(struct sess *s)
{
	struct preauth *pa = s->pa;
	uint64_t delay = (uint64_t)s->l->auth_failure_delay_ms * (pa->dlg.failures + 1);

	log_login(s, "failed", pa->text);
	pa->result = DLG_LOGIN_FAILED;
	backend_close(s);
	imap_bl_free(pa->bl);
	free(pa->bl);
	pa->bl = NULL;
	sess_enter(s, SESS_AUTH_DELAY);
	if (delay == 0) {
		answer(s);
		return;
	}
	sess_arm(s, delay > 60000 ? 60000 : delay);
}

void preauth_backend_failed(struct sess *s, int err, const char *why)
{
	struct preauth *pa = s->pa;
	char r[160];

	log_msg(LOG_LVL_WARN, "event=backend_error listener=%s backend=%s error=%s",
	        s->l->name, s->l->backend.text,
	        log_quote(r, sizeof r, why ? why : uv_strerror(err)));
	log_login(s, "unavailable", why ? why : uv_strerror(err));
	pa->result = DLG_LOGIN_UNAVAILABLE;
	pa->text[0] = '\0';
	if (s->backend_open)
		backend_close(s);
	if (pa->bl) {
		imap_bl_free(pa->bl);
		free(pa->bl);
		pa->bl = NULL;
	}
	answer(s);
}

void preauth_connected(struct sess *s)
{
	uv_read_start((uv_stream_t *)&s->backend, sess_alloc, on_login_read);
}

/* Backend bytes during the login. */
static void on_login_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct sess *s = st->data;
	struct preauth *pa = s->pa;
	const uint8_t *p = (const uint8_t *)buf->base;
	size_t len = nread > 0 ? (size_t)nread : 0;

	if (nread == 0 || s->closing || s->state != SESS_LOGIN)
		return;
	if (nread < 0) {
		preauth_backend_failed(s, (int)nread, nread == UV_EOF ? "backend closed during login"
		                                                      : NULL);
		return;
	}
	while (len > 0 || nread > 0) {
		size_t used = 0;
		enum bl_rc rc = imap_bl_feed(pa->bl, p, len, &used);

		nread = 0;
		p += used;
		len -= used;
		switch (rc) {
		case BL_NEED_MORE:
			return;
		case BL_SEND:
			if (outq_write(&s->to_backend, pa->bl->out, pa->bl->out_len) < 0) {
				preauth_backend_failed(s, UV_EPIPE, "backend write failed");
				return;
			}
			memset(pa->bl->out, 0, pa->bl->out_len);
			break;
		case BL_OK:
			snprintf(pa->text, sizeof pa->text, "%s", pa->bl->text);
			imap_bl_free(pa->bl);
			free(pa->bl);
			pa->bl = NULL;
			uv_read_stop(st);
			login_ok(s, p, len);
			return;
		case BL_NO:
			snprintf(pa->text, sizeof pa->text, "%s", pa->bl->text);
			login_no(s);
			return;
		case BL_FAIL:
			snprintf(pa->text, sizeof pa->text, "%s", pa->bl->text);
			preauth_backend_failed(s, UV_EPROTO, pa->text);
			return;
		}
	}
}

/* The dialogue may go on: read the client again and use what waits. */
void preauth_resume(struct sess *s)
{
	if (s->closing || s->state != SESS_PREAUTH)
		return;
	s->client_paused = 0;
	process(s);
	if (!s->closing && s->state == SESS_PREAUTH && !s->client_paused)
		sess_client_resume(s);
}

/* The session timer fired in a pre-auth state. */
void preauth_timer(struct sess *s)
{
	switch (s->state) {
	case SESS_PREAUTH:
		sess_send(s, "* BYE Autologout; idle for too long\r\n", 37);
		if (s->tls_on)
			tls_close_notify(s->tls);
		sess_finish(s, "pre-auth timeout");
		break;
	case SESS_LOGIN:
		preauth_backend_failed(s, UV_ETIMEDOUT, "backend login timed out");
		break;
	case SESS_AUTH_DELAY:
		answer(s);
		break;
	default:
		break;
	}
}
