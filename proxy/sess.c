/* sess: session life cycle, timer, TLS handshake and the close path. */
#include "sess_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_capf.h"
#include "log.h"
#include "proxyp.h"

/* After sess_finish, the last bytes get this long to reach the client. */
#define LINGER_MS 5000

/* What a client over a limit is told, in its protocol's words. */
static const char *const refusals[][STLIM_N] = {
	[CFG_PROTO_IMAP] = {
		[STLIM_TOTAL] = "* BYE [UNAVAILABLE] Server busy, try again later\r\n",
		[STLIM_PER_IP] = "* BYE [UNAVAILABLE] Too many connections from your address\r\n",
		[STLIM_RATE] = "* BYE [UNAVAILABLE] Too many new connections from your address, "
		               "try again later\r\n",
	},
	[CFG_PROTO_POP3] = {
		[STLIM_TOTAL] = "-ERR [SYS/TEMP] Server busy, try again later\r\n",
		[STLIM_PER_IP] = "-ERR [SYS/TEMP] Too many connections from your address\r\n",
		[STLIM_RATE] = "-ERR [SYS/TEMP] Too many new connections from your address, "
		               "try again later\r\n",
	},
};

static const char *const limit_names[STLIM_N] = {
	[STLIM_TOTAL] = "max_connections", [STLIM_PER_IP] = "max_connections_per_ip",
	[STLIM_RATE] = "connection_rate_per_ip", [STLIM_AUTH] = "auth_fail_limit",
};

static const char *const state_names[] = {
	"accepted", "handshake", "preauth", "login", "auth_delay", "connect", "relay", "closing",
};

static void on_client_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void proxy_input(struct sess *s, const uint8_t *p, size_t n);
static void on_client_drained(struct outq *q, int status);
static int tls_send(void *ctx, const uint8_t *buf, size_t len);

const char *sess_ip(const struct sockaddr_in6 *sa, char *buf, size_t size)
{
	const void *a = sa->sin6_family == AF_INET
	                ? (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr
	                : (const void *)&sa->sin6_addr;

	if (!inet_ntop(sa->sin6_family, a, buf, (socklen_t)size))
		snprintf(buf, size, "?");
	return buf;
}

/* Formats the client's address as "ip:port" or "[ip]:port". */
const char *sess_peer(const struct sess *s, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	sess_ip(&s->peer, ip, sizeof ip);
	snprintf(buf, size, s->peer.sin6_family == AF_INET ? "%s:%u" : "[%s]:%u", ip,
	         ntohs(s->peer.sin6_port));   /* the port is at one offset in both */
	return buf;
}

/* What is left of the pre-auth deadline: preauth_timeout from the
 * greeting to a successful login, across STARTTLS and failed logins. */
static uint64_t preauth_left(struct sess *s)
{
	uint64_t now = uv_now(&s->w->loop);

	if (!s->preauth_due)
		s->preauth_due = now + s->l->preauth_timeout_ms;
	return s->preauth_due > now ? s->preauth_due - now : 0;
}

/* The timeout that applies in a state. */
static uint64_t state_timeout(struct sess *s, enum sess_state st)
{
	switch (st) {
	case SESS_ACCEPTED:
	case SESS_HANDSHAKE: return s->l->handshake_timeout_ms;
	case SESS_PREAUTH:   return preauth_left(s);
	case SESS_LOGIN:
	case SESS_CONNECT:   return s->l->connect_timeout_ms;
	case SESS_AUTH_DELAY: return s->l->auth_failure_delay_ms;
	case SESS_RELAY:     return s->l->idle_timeout_ms;
	case SESS_CLOSING:   return LINGER_MS;
	}
	return LINGER_MS;
}

/* The session timer fired: in RELAY it is an idle timer that activity
 * pushes back, so re-arm for what is left; elsewhere it is a deadline. */
static void on_timer(uv_timer_t *t)
{
	struct sess *s = t->data;
	uint64_t now = uv_now(&s->w->loop);

	if (s->closing)
		return;
	switch (s->state) {
	case SESS_ACCEPTED:
	case SESS_HANDSHAKE:
		stat_add(&sess_stats(s)->hsfail[HSF_TIMEOUT], 1);
		sess_close(s, "handshake timeout");
		break;
	case SESS_CONNECT:
		if (!s->bk_up)
			backend_connect_failed(s, UV_ETIMEDOUT, "connect timed out");
		else
			backend_fail(s, UV_ETIMEDOUT);
		break;
	case SESS_PREAUTH:
	case SESS_LOGIN:
	case SESS_AUTH_DELAY:
		preauth_timer(s);
		break;
	case SESS_RELAY: {
		uint64_t due = s->active_ms + s->l->idle_timeout_ms;
		if (due > now) {
			uv_timer_start(&s->timer, on_timer, due - now, 0);
			return;
		}
		sess_close(s, "idle timeout");
		break;
	}
	case SESS_CLOSING:
		sess_close(s, s->reason ? s->reason : "closing timeout");
		break;
	}
}

void sess_enter(struct sess *s, enum sess_state st)
{
	if (log_enabled(LOG_LVL_DEBUG)) {
		char p[64];
		log_msg(LOG_LVL_DEBUG, "event=state listener=%s client=%s from=%s to=%s",
		        s->l->name, sess_peer(s, p, sizeof p),
		        state_names[s->state], state_names[st]);
	}
	s->state = st;
	s->active_ms = uv_now(&s->w->loop);
	uv_timer_start(&s->timer, on_timer, state_timeout(s, st), 0);
}

void sess_arm(struct sess *s, uint64_t ms)
{
	uv_timer_start(&s->timer, on_timer, ms, 0);
}

void sess_handle_closed(uv_handle_t *h)
{
	struct sess *s = h->data;

	if (--s->handles > 0)
		return;
	preauth_end(s);
	free(s->user);
	if (s->capf) {
		imap_capf_free(s->capf);
		free(s->capf);
	}
	tls_conn_free(s->tls);
	tls_conn_free(s->btls);
	outq_free(&s->to_client);
	outq_free(&s->to_backend);
	free(s->stash);
	gen_unref(s->gen);                  /* after tls: its context lives there */
	free(s);
}

/* Formats what the handshake agreed, for log lines: version, suite,
 * resumption, the SNI name asked for and the client certificate. */
const char *sess_tls_fields(const struct sess *s, char *buf, size_t size)
{
	char sni[280], subj[300];

	if (!s->tls_up) {
		snprintf(buf, size, "tls=- cipher=-");
		return buf;
	}
	snprintf(buf, size, "tls=%s cipher=%s resumed=%s sni=%s client_cert=%s",
	         tls_version(s->tls), tls_cipher(s->tls), tls_resumed(s->tls) ? "yes" : "no",
	         *tls_sni(s->tls) ? log_quote(sni, sizeof sni, tls_sni(s->tls)) : "-",
	         *tls_peer_subject(s->tls) ? log_quote(subj, sizeof subj, tls_peer_subject(s->tls))
	                                   : "-");
	return buf;
}

/* Logs the session's end: who, how it was protected, how much, how long. */
static void log_end(struct sess *s, const char *reason)
{
	char p[64], r[160], u[160], t[800];

	log_msg(LOG_LVL_INFO,
	        "event=session_end listener=%s client=%s user=%s %s "
	        "bytes_in=%llu bytes_out=%llu duration_ms=%llu reason=%s",
	        s->l->name, sess_peer(s, p, sizeof p),
	        s->user ? log_quote(u, sizeof u, s->user) : "-", sess_tls_fields(s, t, sizeof t),
	        (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
	        (unsigned long long)(uv_now(&s->w->loop) - s->start_ms),
	        log_quote(r, sizeof r, reason));
}

struct lstats *sess_stats(const struct sess *s)
{
	return &s->w->stats[s->wl->slot];
}

void sess_rest(struct sess *s)
{
	if (!s->closing && s->tls_up && tls_conn_rest(s->tls))
		s->w->rested++;
	if (!s->closing && s->btls_up && tls_conn_rest(s->btls))
		s->w->rested++;
}

void sess_count_in(struct sess *s, uint64_t n)
{
	s->bytes_in += n;
	stat_add(&sess_stats(s)->bytes_in, n);
}

void sess_count_out(struct sess *s, uint64_t n)
{
	s->bytes_out += n;
	stat_add(&sess_stats(s)->bytes_out, n);
}

int sess_log_gate(struct sess *s, enum stat_limit why, unsigned *suppressed)
{
	struct worker *w = s->w;
	uint64_t now = uv_now(&w->loop);

	if (now < w->log_next[why]) {
		w->log_suppressed[why]++;
		return 0;
	}
	*suppressed = w->log_suppressed[why];
	w->log_suppressed[why] = 0;
	w->log_next[why] = now + 1000;
	return 1;
}

/* Logs a refusal, at most one line a second for each limit and worker,
 * with how many were not logged since. */
static void log_refusal(struct sess *s, enum stat_limit why)
{
	char p[64], key[64];
	unsigned suppressed;

	if (!sess_log_gate(s, why, &suppressed))
		return;
	log_msg(LOG_LVL_WARN, "event=limit_refused listener=%s client=%s address=%s limit=%s "
	        "suppressed=%u", s->l->name, sess_peer(s, p, sizeof p),
	        limit_key_text((const struct sockaddr *)&s->peer, s->gen->limits.ipv6_prefix, key,
	                       sizeof key), limit_names[why], suppressed);
}

void sess_refused(struct sess *s, enum stat_limit why)
{
	stat_add(&sess_stats(s)->refused[why], 1);
	log_refusal(s, why);
}

/* A session over a limit is told so, in clear before STARTTLS or inside
 * TLS after the handshake, and closed. */
static void refuse(struct sess *s)
{
	const char *msg = refusals[s->l->protocol][s->refuse - 1];

	sess_send(s, msg, strlen(msg));
	if (s->tls_on)
		tls_close_notify(s->tls);
	sess_finish(s, limit_names[s->refuse - 1]);
}

void sess_close(struct sess *s, const char *reason)
{
	struct worker *w = s->w;

	if (s->closing)
		return;
	s->closing = 1;
	log_end(s, reason);
	stat_add(&sess_stats(s)->closed, 1);
	if (s->counted)
		limit_disconnect(w->limits, &s->gen->limits, (const struct sockaddr *)&s->peer,
		                 s->tracked);
	backend_release(s);
	if (w->sbuf_owner == s) {
		w->sbuf_owner = NULL;
		w->sbuf_len = 0;
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	w->nsessions--;
	worker_session_gone(w);

	uv_timer_stop(&s->timer);
	uv_close((uv_handle_t *)&s->timer, sess_handle_closed);
	uv_close((uv_handle_t *)&s->client, sess_handle_closed);
	if (s->backend_open && !s->backend_closing)
		uv_close((uv_handle_t *)&s->backend, sess_handle_closed);
}

void sess_finish(struct sess *s, const char *reason)
{
	if (s->closing)
		return;
	s->reason = reason;
	uv_read_stop((uv_stream_t *)&s->client);
	if (s->backend_open)
		uv_read_stop((uv_stream_t *)&s->backend);
	if (s->state != SESS_CLOSING)
		sess_enter(s, SESS_CLOSING);
	sess_tls_flush(s);
	if (!s->closing && outq_pending(&s->to_client) == 0)
		sess_close(s, reason);
}

struct sess *sess_next(const struct sess *s)
{
	return s->next;
}

void sess_drain(struct sess *s)
{
	switch (s->state) {
	case SESS_LOGIN:
	case SESS_CONNECT:
	case SESS_RELAY:
	case SESS_CLOSING:
		return;                     /* finishes a login, or has the grace period */
	default:
		sess_shutdown(s);
	}
}

/* What an IMAP client reads when moat ends its logged-in session. */
static const char imap_bye[] = "* BYE [UNAVAILABLE] Server shutting down, try again later\r\n";

void sess_shutdown(struct sess *s)
{
	switch (s->state) {
	case SESS_PREAUTH:
	case SESS_AUTH_DELAY:
		preauth_bye(s);
		break;
	case SESS_RELAY:
		/* between two responses: say why; in the middle of one (a FETCH
		 * body), a BYE would corrupt it, so only close */
		if (s->l->protocol == CFG_PROTO_IMAP && imap_track_at_boundary(&s->track)) {
			sess_count_out(s, sizeof imap_bye - 1);
			if (tls_write(s->tls, (const uint8_t *)imap_bye, sizeof imap_bye - 1) != 0) {
				sess_close(s, "moat shutting down");
				return;
			}
		}
		break;
	case SESS_CLOSING:
		break;
	default:
		sess_close(s, "moat shutting down");
		return;
	}
	if (s->tls_on)
		tls_close_notify(s->tls);
	sess_finish(s, "moat shutting down");
}

void sess_send(struct sess *s, const void *p, size_t n)
{
	int rc;

	if (s->closing)
		return;
	sess_count_out(s, n);
	if (!s->tls_on) {
		rc = outq_write(&s->to_client, p, n);
		if (rc < 0)
			sess_close(s, uv_strerror(rc));
		return;
	}
	if (tls_write(s->tls, p, n) != 0) {
		sess_close(s, "TLS write failed");
		return;
	}
	sess_tls_flush(s);
}

void sess_start_tls(struct sess *s)
{
	s->tls = tls_conn_new(s->rt->tls, tls_send, s);
	if (!s->tls) {
		sess_close(s, "out of memory");
		return;
	}
	s->tls_on = 1;
	sess_enter(s, SESS_HANDSHAKE);
}

/* mbedTLS hands over a TLS record: stage it in the worker's buffer so a
 * whole flight leaves in one write; a record that does not fit flushes. */
static int tls_send(void *ctx, const uint8_t *buf, size_t len)
{
	struct sess *s = ctx;
	struct worker *w = s->w;
	size_t cap = w->buffer_size;

	if (s->closing)
		return -1;
	if (w->sbuf_owner && w->sbuf_owner != s)
		sess_tls_flush(w->sbuf_owner);
	if (w->sbuf_len + len > cap) {
		sess_tls_flush(s);
		if (s->closing)
			return -1;
		if (len > cap)
			return outq_write(&s->to_client, buf, len) == 0 ? 0 : -1;
	}
	memcpy(w->sbuf + w->sbuf_len, buf, len);
	w->sbuf_len += len;
	w->sbuf_owner = s;
	return 0;
}

void sess_tls_failed(struct sess *s, int err, const char *event, const char *reason)
{
	char p[64], e[128], q[160];

	log_msg(LOG_LVL_INFO, "event=%s listener=%s client=%s error=%s", event, s->l->name,
	        sess_peer(s, p, sizeof p), log_quote(q, sizeof q, tls_strerror(err, e, sizeof e)));
	/* the alert mbedTLS staged goes out before the connection closes */
	sess_tls_flush(s);
	sess_finish(s, reason);
}

void sess_tls_flush(struct sess *s)
{
	struct worker *w = s->w;
	int rc;

	if (w->sbuf_owner != s || w->sbuf_len == 0)
		return;
	w->sbuf_owner = NULL;
	rc = outq_write(&s->to_client, w->sbuf, w->sbuf_len);
	s->active_ms = uv_now(&w->loop);
	w->sbuf_len = 0;
	if (rc < 0)
		sess_close(s, uv_strerror(rc));
}

void sess_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct sess *s = h->data;

	(void)suggested;
	buf->base = (char *)s->w->rbuf;
	buf->len = s->w->buffer_size;
}

/* Keeps the ciphertext the TLS layer did not consume (reads were paused
 * mid-buffer): the worker's buffer is reused by the next read. */
static int stash_unread(struct sess *s)
{
	const uint8_t *p;
	size_t n = tls_conn_unread(s->tls, &p);

	if (n == 0) {
		free(s->stash);
		s->stash = NULL;
		s->stash_len = 0;
		return 0;
	}
	if (s->stash && p >= s->stash && p < s->stash + s->stash_len) {
		memmove(s->stash, p, n);
	} else {
		uint8_t *m = malloc(n);
		if (!m)
			return -1;
		memcpy(m, p, n);
		free(s->stash);
		s->stash = m;
	}
	s->stash_len = n;
	tls_conn_input(s->tls, NULL, 0);
	return 0;
}

/* Counts a completed handshake: version, suite, resumption. */
static void count_handshake(struct sess *s)
{
	struct lstats *st = sess_stats(s);

	stat_add(&st->handshakes, 1);
	stat_add(&st->tls[tls_version_number(s->tls) == 13][tls_suite_index(tls_suite_id(s->tls))], 1);
	if (tls_resumed(s->tls))
		stat_add(&st->resumed, 1);
}

/* Advances the handshake with the bytes lent to the TLS layer. */
static void handshake_step(struct sess *s)
{
	char p[64], t[800];
	int rc = tls_handshake(s->tls);

	sess_tls_flush(s);
	if (s->closing || rc == TLS_AGAIN)
		return;
	if (rc < 0) {
		static const enum stat_hsfail kinds[] = {
			[TLS_FAIL_PROTOCOL] = HSF_PROTOCOL, [TLS_FAIL_VERSION] = HSF_VERSION,
			[TLS_FAIL_CIPHER] = HSF_CIPHER, [TLS_FAIL_ALPN] = HSF_ALPN,
			[TLS_FAIL_CLIENT_CERT] = HSF_CLIENT_CERT, [TLS_FAIL_CLOSED] = HSF_CLOSED,
		};
		stat_add(&sess_stats(s)->hsfail[kinds[tls_failure_kind(rc)]], 1);
		sess_tls_failed(s, rc, "handshake_failed", "TLS handshake failed");
		return;
	}
	s->tls_up = 1;
	count_handshake(s);
	if (s->refuse) {
		refuse(s);
		return;
	}
	if (log_enabled(LOG_LVL_DEBUG))
		log_msg(LOG_LVL_DEBUG, "event=handshake_ok listener=%s client=%s %s", s->l->name,
		        sess_peer(s, p, sizeof p), sess_tls_fields(s, t, sizeof t));
	if (s->pa) {
		/* STARTTLS done: the dialogue starts afresh inside TLS */
		preauth_tls_started(s);
		preauth_client_input(s);
	} else if (s->rt->preauth) {
		if (preauth_begin(s) != 0) {
			sess_close(s, "out of memory");
			return;
		}
		preauth_greet(s);
		preauth_client_input(s);
	} else {
		/* transparent: the backend greets; the client waits for it */
		if (s->l->protocol == CFG_PROTO_IMAP) {
			s->capf = calloc(1, sizeof *s->capf);
			if (!s->capf) {
				sess_close(s, "out of memory");
				return;
			}
		}
		uv_read_stop((uv_stream_t *)&s->client);
		s->client_paused = 1;
		sess_enter(s, SESS_CONNECT);
		backend_connect(s);
	}
}

/* Feeds ciphertext to whatever the state needs, then keeps the rest. */
static void client_input(struct sess *s)
{
	switch (s->state) {
	case SESS_HANDSHAKE:
		handshake_step(s);
		break;
	case SESS_PREAUTH:
		preauth_client_input(s);
		break;
	case SESS_RELAY:
		relay_client_input(s);
		break;
	default:
		break;
	}
	if (!s->closing && stash_unread(s) < 0)
		sess_close(s, "out of memory");
}

/* Resumes reading from the client: first what was stashed, then the
 * socket (unless processing the stash paused it again). */
void sess_client_resume(struct sess *s)
{
	if (s->closing || s->client_eof)
		return;
	s->client_paused = 0;
	if (s->tls_on) {
		tls_conn_input(s->tls, s->stash, s->stash_len);
		client_input(s);
	}
	if (s->closing || s->client_paused || s->client_eof)
		return;
	uv_read_start((uv_stream_t *)&s->client, sess_alloc, on_client_read);
}

/* Bytes (or the end) arrived from the client. */
static void on_client_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct sess *s = st->data;

	if (nread == 0 || s->closing)
		return;
	if (nread < 0) {
		if (nread == UV_EOF && s->state == SESS_RELAY) {
			uv_read_stop(st);
			relay_client_eof(s);
		} else if (nread == UV_EOF) {
			if (s->state == SESS_HANDSHAKE)
				stat_add(&sess_stats(s)->hsfail[HSF_CLOSED], 1);
			sess_close(s, s->state == SESS_HANDSHAKE ? "client closed during handshake"
			                                         : "client closed");
		} else {
			sess_close(s, uv_strerror((int)nread));
		}
		return;
	}
	s->active_ms = uv_now(&s->w->loop);
	if (s->state == SESS_ACCEPTED) {
		proxy_input(s, (const uint8_t *)buf->base, (size_t)nread);
		return;
	}
	if (!s->tls_on) {
		/* a STARTTLS listener before TLS: moat's dialogue, in clear */
		sess_count_in(s, (uint64_t)nread);
		preauth_input(s, (const uint8_t *)buf->base, (size_t)nread);
		return;
	}
	tls_conn_input(s->tls, (const uint8_t *)buf->base, (size_t)nread);
	client_input(s);
	sess_rest(s);
}

/* The client's queue emptied, or a write to it failed. */
static void on_client_drained(struct outq *q, int status)
{
	struct sess *s = (struct sess *)((char *)q - offsetof(struct sess, to_client));

	if (s->closing)
		return;
	if (status < 0) {
		sess_close(s, "client write failed");
		return;
	}
	if (s->state == SESS_CLOSING) {
		sess_close(s, s->reason);
		return;
	}
	if (s->state == SESS_PREAUTH && s->client_paused) {
		preauth_resume(s);
		return;
	}
	if (s->backend_paused && !s->backend_eof) {
		s->backend_paused = 0;
		relay_start(s);
	}
	sess_rest(s);
}

/* Counts the new session against the limits. Over one, it is refused:
 * before STARTTLS in clear at once; with implicit TLS, a client with too
 * many connections open is told after the handshake (a real client with
 * one connection too many deserves a readable answer), while a flood
 * (rate, or the server full) is closed before any TLS work. Returns 0
 * when the session goes on (maybe to be refused later). */
static int check_limits(struct sess *s)
{
	enum limit_verdict v;
	enum stat_limit why;
	int tracked = 0;

	s->exempt = !s->addrless && cfg_net_contains(&s->gen->cfg->limits_exempt,
	                                             (const struct sockaddr *)&s->peer) != 0;
	v = limit_connect(s->w->limits, &s->gen->limits, (const struct sockaddr *)&s->peer,
	                  s->start_ms, s->exempt, &tracked);
	if (v == LIMIT_OK) {
		s->counted = 1;
		s->tracked = tracked != 0;
		return 0;
	}
	why = v == LIMIT_TOTAL ? STLIM_TOTAL : v == LIMIT_PER_IP ? STLIM_PER_IP : STLIM_RATE;
	sess_refused(s, why);
	s->refuse = (uint8_t)(why + 1);
	if (s->l->tls == CFG_TLS_STARTTLS) {
		refuse(s);
		return -1;
	}
	if (why != STLIM_PER_IP) {
		sess_close(s, limit_names[why]);
		return -1;
	}
	return 0;
}

/* The session starts for real: moat greets a STARTTLS client, or the
 * TLS handshake begins (with what arrived behind a PROXY header). */
static void begin(struct sess *s)
{
	if (s->l->tls == CFG_TLS_STARTTLS) {
		/* in clear until STARTTLS: moat greets and holds the dialogue */
		uint8_t *early = s->stash;
		size_t n = s->stash_len;

		s->stash = NULL;
		s->stash_len = 0;
		if (preauth_begin(s) != 0) {
			free(early);
			sess_close(s, "out of memory");
			return;
		}
		preauth_greet(s);
		if (n && !s->closing) {
			sess_count_in(s, n);
			preauth_input(s, early, n);
		}
		free(early);
		return;
	}
	sess_start_tls(s);
	if (!s->closing && s->stash_len) {
		tls_conn_input(s->tls, s->stash, s->stash_len);
		client_input(s);
	}
}

/* Logs why a PROXY protocol connection is refused, and closes it. */
static void proxy_refused(struct sess *s, const char *why)
{
	char p[64], r[160];

	log_msg(LOG_LVL_WARN, "event=proxy_error listener=%s client=%s reason=%s", s->l->name,
	        sess_peer(s, p, sizeof p), log_quote(r, sizeof r, why));
	sess_close(s, "PROXY protocol error");
}

/* Copies a sockaddr_storage of either family into a session address. */
static void take_addr(struct sockaddr_in6 *dst, const struct sockaddr_storage *src)
{
	memset(dst, 0, sizeof *dst);
	memcpy(dst, src, src->ss_family == AF_INET ? sizeof(struct sockaddr_in)
	                                           : sizeof(struct sockaddr_in6));
}

/* Bytes from a load balancer before its PROXY header is complete: the
 * header gives the client's own address (for limits, logs, forwarding),
 * what follows it is the client's. */
static void proxy_input(struct sess *s, const uint8_t *p, size_t n)
{
	struct proxyp_result r;
	enum proxyp_rc rc;
	uint8_t *m = realloc(s->stash, s->stash_len + n);

	if (!m) {
		sess_close(s, "out of memory");
		return;
	}
	memcpy(m + s->stash_len, p, n);
	s->stash = m;
	s->stash_len += n;
	rc = proxyp_parse(s->stash, s->stash_len, &r);
	if (rc == PROXYP_NEED_MORE)
		return;
	if (rc == PROXYP_BAD) {
		proxy_refused(s, r.why);
		return;
	}
	if (r.has_addr) {
		take_addr(&s->peer, &r.src);
		take_addr(&s->local, &r.dst);
	} else {
		s->addrless = 1;          /* the balancer's own check: not exempt */
	}
	s->stash_len -= r.len;
	memmove(s->stash, s->stash + r.len, s->stash_len);
	if (log_enabled(LOG_LVL_DEBUG)) {
		char c[64];
		log_msg(LOG_LVL_DEBUG, "event=proxy_header listener=%s client=%s version=%d",
		        s->l->name, sess_peer(s, c, sizeof c), r.version);
	}
	if (check_limits(s) != 0)
		return;
	begin(s);
}

void sess_accept(struct worker_listener *wl)
{
	struct worker *w = wl->w;
	struct sess *s = calloc(1, sizeof *s);
	size_t li = w->gen->slot[wl->slot];
	int len = sizeof s->peer, rc;

	if (!s) {
		log_msg(LOG_LVL_ERROR, "event=accept_failed listener=%s error=\"out of memory\"",
		        w->gen->cfg->listeners[li].name);
		return;
	}
	s->w = w;
	s->wl = wl;
	s->gen = gen_ref(w->gen);
	s->l = &s->gen->cfg->listeners[li];
	s->rt = &s->gen->rt[li];
	s->bk = s->route = -1;
	uv_tcp_init(&w->loop, &s->client);
	s->client.data = s;
	s->handles = 1;
	rc = uv_accept((uv_stream_t *)&wl->handle, (uv_stream_t *)&s->client);
	if (rc < 0) {
		log_msg(LOG_LVL_WARN, "event=accept_failed listener=%s error=\"%s\"",
		        s->l->name, uv_strerror(rc));
		uv_close((uv_handle_t *)&s->client, sess_handle_closed);
		return;
	}
	uv_timer_init(&w->loop, &s->timer);
	s->timer.data = s;
	s->handles = 2;
	uv_tcp_getpeername(&s->client, (struct sockaddr *)&s->peer, &len);
	len = sizeof s->local;
	uv_tcp_getsockname(&s->client, (struct sockaddr *)&s->local, &len);
	uv_tcp_nodelay(&s->client, 1);
	uv_tcp_keepalive(&s->client, 1, 120);
	outq_init(&s->to_client, (uv_stream_t *)&s->client, on_client_drained);
	uv_update_time(&w->loop);   /* timeouts count from now, not the loop's start */
	s->start_ms = uv_now(&w->loop);
	s->next = w->sessions;
	if (w->sessions)
		w->sessions->prev = s;
	w->sessions = s;
	if (++w->nsessions > w->peak_sessions)
		w->peak_sessions = w->nsessions;
	stat_add(&sess_stats(s)->accepted, 1);
	if (s->l->proxy_protocol) {
		/* a load balancer's header first; limits apply to the client in it */
		if (!cfg_net_contains(&s->l->proxy_trusted, (const struct sockaddr *)&s->peer)) {
			proxy_refused(s, "source not in proxy_trusted");
			return;
		}
		sess_enter(s, SESS_ACCEPTED);
	} else if (check_limits(s) != 0) {
		return;
	} else {
		begin(s);
	}
	if (!s->closing)
		uv_read_start((uv_stream_t *)&s->client, sess_alloc, on_client_read);
}
