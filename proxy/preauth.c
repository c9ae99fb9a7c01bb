/*
 * preauth: the session before login. The client talks to moat's own IMAP
 * or POP3 dialogue (protocols/imap.c, pop3.c); when it has given
 * credentials over TLS, moat connects to the backend, logs in with them
 * (protocols/imap_backend.c, pop3_backend.c), answers the client and
 * switches to the relay. The two protocols are driven the same way
 * (protocols/dlg.h); the small wrappers below pick the right one.
 *
 * Memory: struct preauth (parser, credentials, client bytes not yet
 * used) exists only until the relay starts; credentials are wiped as
 * soon as the backend has seen them.
 */
#include "sess_int.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "imap.h"
#include "imap_backend.h"
#include "log.h"
#include "pop3.h"
#include "pop3_backend.h"
#include "route.h"

/* Client plaintext moat holds before login: one command in progress plus
 * what was pipelined behind a LOGIN. */
#define PENDING_MAX (128 * 1024)

/* A backend login, either protocol's (only during SESS_LOGIN). */
union blogin {
	struct imap_blogin imap;
	struct pop3_blogin pop3;
};

struct preauth {
	int pop3;                     /* which member of the unions is live */
	union {
		struct imap_dlg imap;
		struct pop3_dlg pop3;
	} d;
	union blogin *bl;
	uint8_t *pending;             /* client plaintext not fed yet */
	size_t pending_len;
	enum dlg_login result;
	int heard;                    /* the backend sent something in this login */
	char text[IMAP_BL_TEXT_MAX + 1]; /* backend's OK text or failure reason */
};

/* What moat says in the protocol's own words when it ends a session
 * before login. */
struct farewell {
	const char *timeout, *shutdown, *flood;
};

static const struct farewell farewells[] = {
	[CFG_PROTO_IMAP] = {
		"* BYE Autologout; idle for too long\r\n",
		"* BYE Server shutting down\r\n",
		"* BYE Too much input before login\r\n",
	},
	[CFG_PROTO_POP3] = {
		POP3_TIMEOUT_MSG,
		"-ERR [SYS/TEMP] Server shutting down\r\n",
		"-ERR Too much input before login\r\n",
	},
};

/* ---- the dialogue, whichever protocol ---- */

static struct dlg_cred *dlg_cred(struct preauth *pa)
{
	return pa->pop3 ? &pa->d.pop3.cred : &pa->d.imap.cred;
}

/* The dialogue's output and its length (the caller resets it). */
static char *dlg_out(struct preauth *pa, size_t **len)
{
	if (pa->pop3) {
		*len = &pa->d.pop3.out_len;
		return pa->d.pop3.out;
	}
	*len = &pa->d.imap.out_len;
	return pa->d.imap.out;
}

static unsigned dlg_failures(const struct preauth *pa)
{
	return pa->pop3 ? pa->d.pop3.failures : pa->d.imap.failures;
}

static enum dlg_act dlg_feed(struct preauth *pa, size_t *used)
{
	if (pa->pop3)
		return pop3_dlg_feed(&pa->d.pop3, pa->pending, pa->pending_len, used);
	return imap_dlg_feed(&pa->d.imap, pa->pending, pa->pending_len, used);
}

static enum dlg_act dlg_login_done(struct preauth *pa, enum dlg_login r)
{
	if (pa->pop3)
		return pop3_dlg_login_done(&pa->d.pop3, r, pa->text);
	return imap_dlg_login_done(&pa->d.imap, r, pa->text);
}

/* ---- the backend login, whichever protocol ---- */

/* The port, either family (same offset in both). */
static unsigned port_of(const struct sockaddr_in6 *sa)
{
	return ntohs(sa->sin6_port);
}

/* forward = native: the client's address goes in IMAP ID (Dovecot's
 * x-originating-ip convention) or POP3 XCLIENT. */
static int bl_forward(struct sess *s, struct preauth *pa)
{
	char ip[INET6_ADDRSTRLEN], lip[INET6_ADDRSTRLEN], t[400];

	sess_ip(&s->peer, ip, sizeof ip);
	if (pa->pop3) {
		snprintf(t, sizeof t, "ADDR=%s PORT=%u", ip, port_of(&s->peer));
		return pop3_bl_set_xclient(&pa->bl->pop3, t);
	}
	snprintf(t, sizeof t, "(\"x-originating-ip\" \"%s\" \"x-originating-port\" \"%u\" "
	         "\"x-connected-ip\" \"%s\" \"x-connected-port\" \"%u\")", ip,
	         port_of(&s->peer), sess_ip(&s->local, lip, sizeof lip), port_of(&s->local));
	return imap_bl_set_id(&pa->bl->imap, t);
}

/* Starts the backend login once connected: the credentials, the login
 * name rewritten for this backend, the client's address if it wants it. */
static int bl_start(struct sess *s)
{
	struct preauth *pa = s->pa;
	const struct dlg_cred *c = dlg_cred(pa);
	const struct cfg_backend *b = &s->gen->cfg->backends[s->bk];
	char user[DLG_CRED_MAX + 1];
	size_t ulen = c->user_len;
	int rc;

	if (b->strip_domain || b->add_domain) {
		if (route_rewrite_user(c->user, c->user_len, b->strip_domain, b->add_domain, user,
		                       sizeof user, &ulen) != 0)
			return -1;
	} else {
		memcpy(user, c->user, c->user_len);
	}
	pa->bl = malloc(sizeof *pa->bl);
	if (!pa->bl)
		return -1;
	if (pa->pop3)
		rc = pop3_bl_init(&pa->bl->pop3, c->authzid, c->authzid_len, user, ulen, c->pass,
		                  c->pass_len);
	else
		rc = imap_bl_init(&pa->bl->imap, c->authzid, c->authzid_len, user, ulen, c->pass,
		                  c->pass_len);
	explicit_bzero(user, sizeof user);
	if (rc == 0 && b->forward == CFG_FWD_NATIVE)
		rc = bl_forward(s, pa);
	if (rc == 0 && b->tls == CFG_BTLS_STARTTLS) {
		if (pa->pop3)
			pop3_bl_set_starttls(&pa->bl->pop3);
		else
			imap_bl_set_starttls(&pa->bl->imap);
	}
	return rc;
}

/* Ends the backend login, keeping its text (OK text or reason). */
static void bl_end(struct preauth *pa)
{
	if (!pa->bl)
		return;
	snprintf(pa->text, sizeof pa->text, "%s", pa->pop3 ? pa->bl->pop3.text : pa->bl->imap.text);
	if (pa->pop3)
		pop3_bl_free(&pa->bl->pop3);
	else
		imap_bl_free(&pa->bl->imap);
	free(pa->bl);
	pa->bl = NULL;
}

static enum bl_rc bl_feed(struct preauth *pa, const uint8_t *p, size_t len, size_t *used)
{
	if (pa->pop3)
		return pop3_bl_feed(&pa->bl->pop3, p, len, used);
	return imap_bl_feed(&pa->bl->imap, p, len, used);
}

/* What the backend login wants sent, and its length. */
static uint8_t *bl_out(struct preauth *pa, size_t **len)
{
	if (pa->pop3) {
		*len = &pa->bl->pop3.out_len;
		return pa->bl->pop3.out;
	}
	*len = &pa->bl->imap.out_len;
	return pa->bl->imap.out;
}


int preauth_begin(struct sess *s)
{
	struct preauth *pa = calloc(1, sizeof *pa);
	int rc;

	if (!pa)
		return -1;
	pa->pop3 = s->l->protocol == CFG_PROTO_POP3;
	if (pa->pop3)
		rc = pop3_dlg_init(&pa->d.pop3, &s->rt->dlg, s->tls_on);
	else
		rc = imap_dlg_init(&pa->d.imap, &s->rt->dlg, s->tls_on);
	if (rc != 0) {
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
	bl_end(pa);
	if (pa->pop3)
		pop3_dlg_free(&pa->d.pop3);
	else
		imap_dlg_free(&pa->d.imap);
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
	size_t *len;
	char *out = dlg_out(s->pa, &len);

	if (*len)
		sess_send(s, out, *len);
	*len = 0;
}

void preauth_greet(struct sess *s)
{
	if (s->pa->pop3)
		pop3_dlg_greeting(&s->pa->d.pop3);
	else
		imap_dlg_greeting(&s->pa->d.imap);
	flush_dlg(s);
	sess_enter(s, SESS_PREAUTH);
}

void preauth_tls_started(struct sess *s)
{
	struct preauth *pa = s->pa;

	if (pa->pop3)
		pop3_dlg_tls_started(&pa->d.pop3);
	else
		imap_dlg_tls_started(&pa->d.imap);
	if (pa->pending) {
		memset(pa->pending, 0, pa->pending_len);
		free(pa->pending);
		pa->pending = NULL;
		pa->pending_len = 0;
	}
	sess_enter(s, SESS_PREAUTH);
}

/* Logs one login attempt; never the password. suppressed: for a line
 * that is rate-limited, how many like it were not logged since (or -1). */
static void log_login(struct sess *s, const char *result, const char *why, long suppressed)
{
	const struct dlg_cred *c = dlg_cred(s->pa);
	char p[64], u[160], r[200], cc[300], sup[32] = "";
	const char *subject = s->tls_up ? tls_peer_subject(s->tls) : "";

	if (suppressed >= 0)
		snprintf(sup, sizeof sup, " suppressed=%ld", suppressed);
	log_msg(LOG_LVL_INFO, "event=login listener=%s client=%s user=%s mech=%s result=%s "
	        "backend=%s%s%s%s%s%s",
	        s->l->name, sess_peer(s, p, sizeof p), log_quote(u, sizeof u, c->user),
	        c->mech ? c->mech : "-", result, backend_name(s), why ? " reason=" : "",
	        why ? log_quote(r, sizeof r, why) : "", *subject ? " client_cert=" : "",
	        *subject ? log_quote(cc, sizeof cc, subject) : "", sup);
}

static void answer(struct sess *s);

/* The delay before a refused login is answered: auth_failure_delay, one
 * more of it for each failure already on this connection. */
static uint64_t failure_delay(const struct sess *s)
{
	uint64_t d = (uint64_t)s->l->auth_failure_delay_ms * (dlg_failures(s->pa) + 1);

	return d > 60000 ? 60000 : d;
}

/* The login's answer goes to the client after delay ms, from the timer:
 * never from beneath the read that brought the command, whose remaining
 * records the session has not taken in yet. Reading waits until then. */
static void answer_after(struct sess *s, uint64_t delay)
{
	uv_read_stop((uv_stream_t *)&s->client);
	s->client_paused = 1;
	sess_enter(s, SESS_AUTH_DELAY);
	sess_arm(s, delay);
}

/* moat refuses the login itself (result REFUSED or FORBIDDEN): delayed
 * and counted like a failed one, its log line rate-limited, since a
 * client can repeat it as fast as it likes. */
static void refuse_login(struct sess *s, enum dlg_login result, const char *why)
{
	unsigned suppressed;

	if (sess_log_gate(s, STLIM_AUTH, &suppressed))
		log_login(s, "refused", why, (long)suppressed);
	stat_add(&sess_stats(s)->logins[STL_REFUSED], 1);
	if (result == DLG_LOGIN_REFUSED)
		stat_add(&sess_stats(s)->refused[STLIM_AUTH], 1);
	s->pa->result = result;
	s->pa->text[0] = '\0';
	answer_after(s, failure_delay(s));
}

/* Starts the backend login with the credentials the dialogue collected,
 * unless moat refuses it: a session with no client address (a PROXY
 * header without one) may not log in, nor one from an address whose
 * logins are blocked or that the limit table cannot track. */
static void start_login(struct sess *s)
{
	if (s->addrless) {
		refuse_login(s, DLG_LOGIN_FORBIDDEN, "no client address (PROXY LOCAL or UNKNOWN)");
		return;
	}
	if (!s->exempt && limit_login_blocked(s->w->limits, &s->gen->limits,
	                                      (const struct sockaddr *)&s->peer,
	                                      uv_now(&s->w->loop))) {
		refuse_login(s, DLG_LOGIN_REFUSED, "too many failed logins from this address");
		return;
	}
	s->tried = 0;
	s->route = -1;
	if (s->gen->routes) {
		const struct dlg_cred *c = dlg_cred(s->pa);
		long r = route_lookup(s->gen->routes, c->user, c->user_len);
		s->route = (int16_t)r;
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
		enum dlg_act act = dlg_feed(pa, &used);

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
			if (outq_pending(&s->to_client) > s->gen->cfg->max_pending) {
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
		const char *msg = farewells[s->l->protocol].flood;
		sess_send(s, msg, strlen(msg));
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

	while (!s->closing && s->state == SESS_PREAUTH && !s->client_paused) {
		ssize_t n = tls_read(s->tls, w->pbuf, w->buffer_size);
		if (n == TLS_AGAIN)
			break;
		if (n == TLS_EOF) {
			sess_close(s, "client closed before login");
			return;
		}
		if (n < 0) {
			sess_tls_failed(s, (int)n, "tls_error", "TLS error from client");
			return;
		}
		sess_count_in(s, (uint64_t)n);
		preauth_input(s, w->pbuf, (size_t)n);
	}
	sess_tls_flush(s);
}

/* Hands the answer for the login to the client and moves on: to the
 * relay, back to the dialogue, or to the end. */
static void answer(struct sess *s)
{
	struct preauth *pa = s->pa;
	enum dlg_act act = dlg_login_done(pa, pa->result);

	flush_dlg(s);
	if (act == DLG_CLOSE) {
		tls_close_notify(s->tls);
		sess_finish(s, "too many authentication failures");
		return;
	}
	sess_enter(s, SESS_PREAUTH);
	if (s->w->stopping) {
		sess_shutdown(s);           /* draining: no more logins */
		return;
	}
	preauth_resume(s);
	sess_rest(s);
}

/* The backend accepted the credentials: answer, forward what the client
 * pipelined, and relay from now on. */
static void login_ok(struct sess *s, const uint8_t *rest, size_t rest_len)
{
	struct preauth *pa = s->pa;

	log_login(s, "ok", NULL, -1);
	stat_add(&sess_stats(s)->logins[STL_OK], 1);
	free(s->user);
	s->user = strdup(dlg_cred(pa)->user);
	pa->result = DLG_LOGIN_OK;
	(void)dlg_login_done(pa, DLG_LOGIN_OK);
	flush_dlg(s);
	if (rest_len) {
		sess_count_out(s, rest_len);
		if (relay_to_client(s, rest, rest_len) != 0) {
			sess_close(s, "TLS write failed");
			return;
		}
		sess_tls_flush(s);
	}
	if (pa->pending_len && backend_send(s, pa->pending, pa->pending_len) < 0) {
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

	log_login(s, "failed", pa->text, -1);
	stat_add(&sess_stats(s)->logins[STL_FAILED], 1);
	if (!s->exempt && limit_login_failed(s->w->limits, &s->gen->limits,
	                                     (const struct sockaddr *)&s->peer,
	                                     uv_now(&s->w->loop))) {
		char p[64], key[64];
		log_msg(LOG_LVL_WARN, "event=auth_block listener=%s client=%s address=%s "
		        "failures=%u window_ms=%u block_ms=%u", s->l->name, sess_peer(s, p, sizeof p),
		        limit_key_text((const struct sockaddr *)&s->peer, s->gen->limits.ipv6_prefix,
		                       key, sizeof key), s->gen->limits.auth_fail_limit,
		        (unsigned)s->gen->limits.auth_fail_window_ms,
		        (unsigned)s->gen->limits.auth_block_ms);
	}
	pa->result = DLG_LOGIN_FAILED;
	backend_close(s);
	answer_after(s, failure_delay(s));
}

void preauth_backend_failed(struct sess *s, int err, const char *why)
{
	struct preauth *pa = s->pa;
	char r[160];

	log_msg(LOG_LVL_WARN, "event=backend_error listener=%s backend=%s error=%s",
	        s->l->name, backend_name(s), log_quote(r, sizeof r, why ? why : uv_strerror(err)));
	log_login(s, "unavailable", why ? why : uv_strerror(err), -1);
	stat_add(&sess_stats(s)->logins[STL_UNAVAILABLE], 1);
	stat_add(&sess_stats(s)->backend_errors, 1);
	pa->result = DLG_LOGIN_UNAVAILABLE;
	pa->text[0] = '\0';
	if (s->backend_open)
		backend_close(s);
	bl_end(pa);
	pa->text[0] = '\0';
	answer_after(s, 0);
}

void preauth_connected(struct sess *s)
{
	s->pa->heard = 0;
	if (bl_start(s) != 0) {
		preauth_backend_failed(s, UV_ENOMEM, "the login does not fit for this backend");
		return;
	}
	backend_read_start(s);
}

/* The backend's TLS is up after STARTTLS: the login asks again what it
 * offers, now that nobody can have tampered with the answer. */
void preauth_backend_tls_up(struct sess *s)
{
	struct preauth *pa = s->pa;
	enum bl_rc rc = pa->pop3 ? pop3_bl_tls_started(&pa->bl->pop3)
	                         : imap_bl_tls_started(&pa->bl->imap);
	size_t *out_len;
	uint8_t *out;

	if (rc != BL_SEND) {
		bl_end(pa);
		preauth_backend_failed(s, UV_EPROTO, "backend login confused after STARTTLS");
		return;
	}
	out = bl_out(pa, &out_len);
	if (backend_send(s, out, *out_len) < 0) {
		preauth_backend_failed(s, UV_EPROTO, "backend write failed");
		return;
	}
	memset(out, 0, *out_len);
}

/* Backend plaintext during the login (or its end, nread < 0). */
void preauth_backend_read(struct sess *s, ssize_t nread, const uint8_t *p)
{
	struct preauth *pa = s->pa;
	size_t len = nread > 0 ? (size_t)nread : 0;

	if (nread == 0 || s->closing || s->state != SESS_LOGIN)
		return;
	if (nread < 0) {
		/* the connection is gone before the login's answer (a backend
		 * shutting down): the next backend may take the login; one that
		 * closed before a word is as good as a failed connect */
		bl_end(pa);
		if (!pa->heard)
			backend_connect_failed(s, (int)nread, nread == UV_EOF ? "backend closed before "
			                       "its greeting" : "backend connection lost before its "
			                       "greeting");
		else
			backend_retry(s, (int)nread, nread == UV_EOF ? "backend closed during login"
			              : "backend connection lost during login");
		return;
	}
	pa->heard = 1;
	while (len > 0 || nread > 0) {
		size_t used = 0, *out_len;
		enum bl_rc rc = bl_feed(pa, p, len, &used);
		uint8_t *out;
		char why[sizeof pa->text];

		nread = 0;
		p += used;
		len -= used;
		switch (rc) {
		case BL_NEED_MORE:
			return;
		case BL_SEND:
			out = bl_out(pa, &out_len);
			if (backend_send(s, out, *out_len) < 0) {
				preauth_backend_failed(s, UV_EPIPE, "backend write failed");
				return;
			}
			memset(out, 0, *out_len);
			break;
		case BL_STARTTLS:
			if (len > 0) {
				bl_end(pa);
				preauth_backend_failed(s, UV_EPROTO, "backend sent data after agreeing "
				                       "to STARTTLS");
				return;
			}
			backend_starttls(s);
			return;
		case BL_OK:
			bl_end(pa);
			uv_read_stop((uv_stream_t *)&s->backend);
			login_ok(s, p, len);
			sess_rest(s);
			return;
		case BL_NO:
			bl_end(pa);
			login_no(s);
			return;
		case BL_FAIL: {
			int gone = pa->pop3 ? pa->bl->pop3.gone : pa->bl->imap.gone;
			bl_end(pa);
			snprintf(why, sizeof why, "%s", pa->text);
			if (gone)
				backend_retry(s, UV_EPROTO, why);
			else
				preauth_backend_failed(s, UV_EPROTO, why);
			return;
		}
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

void preauth_bye(struct sess *s)
{
	const char *m = farewells[s->l->protocol].shutdown;

	sess_send(s, m, strlen(m));
}

/* The session timer fired in a pre-auth state. */
void preauth_timer(struct sess *s)
{
	switch (s->state) {
	case SESS_PREAUTH:
		sess_send(s, farewells[s->l->protocol].timeout,
		          strlen(farewells[s->l->protocol].timeout));
		if (s->tls_on)
			tls_close_notify(s->tls);
		sess_finish(s, "pre-auth timeout");
		break;
	case SESS_LOGIN:
		if (!s->bk_up)
			backend_connect_failed(s, UV_ETIMEDOUT, "connect timed out");
		else
			preauth_backend_failed(s, UV_ETIMEDOUT, "backend login timed out");
		break;
	case SESS_AUTH_DELAY:
		answer(s);
		break;
	default:
		break;
	}
}
