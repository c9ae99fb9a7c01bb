/* backend: choosing a session's backend, connecting to it (and on to the
 * next one when it cannot be reached), and telling the client in its own
 * protocol when none can. */
#include "sess_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxyp.h"

/* What the client reads when its backend cannot be reached: untagged BYE
 * (RFC 9051 7.1.5, RFC 5530 UNAVAILABLE) or -ERR (RFC 3206 SYS/TEMP). */
static const char *const unavailable[] = {
	[CFG_PROTO_IMAP] = "* BYE [UNAVAILABLE] Mail server unavailable, try again later\r\n",
	[CFG_PROTO_POP3] = "-ERR [SYS/TEMP] Mail server unavailable, try again later\r\n",
};

static const struct cfg_backend *current(const struct sess *s)
{
	return s->bk >= 0 ? &s->gen->cfg->backends[s->bk] : NULL;
}

const char *backend_name(const struct sess *s)
{
	return s->bk >= 0 ? current(s)->name : "-";
}

/* The address of the backend in use, for log lines. */
static const char *current_address(const struct sess *s)
{
	return s->bk >= 0 ? current(s)->addr[s->l->protocol].text : "-";
}

void backend_fail(struct sess *s, int err)
{
	const char *msg = unavailable[s->l->protocol];
	char r[160];

	log_msg(LOG_LVL_WARN, "event=backend_error listener=%s backend=%s address=%s error=%s",
	        s->l->name, backend_name(s), current_address(s),
	        log_quote(r, sizeof r, uv_strerror(err)));
	stat_add(&sess_stats(s)->backend_errors, 1);
	if (tls_write(s->tls, (const uint8_t *)msg, strlen(msg)) == 0)
		tls_close_notify(s->tls);
	sess_finish(s, "backend unavailable");
}

/* Reports that no backend could be reached, in the state's own way. */
static void connect_failed(struct sess *s, int err, const char *why)
{
	if (s->state == SESS_LOGIN)
		preauth_backend_failed(s, err, why);
	else
		backend_fail(s, err);
}

/* The backends this session may use: the one the route map gives its
 * user, or the listener's list. */
static size_t candidates(const struct sess *s, const size_t **v, size_t *one)
{
	if (s->route >= 0) {
		*one = (size_t)s->route;
		*v = one;
		return 1;
	}
	*v = s->l->bk;
	return s->l->nbk;
}

/* Whether candidate i (of v) may be tried now: not yet by this login, an
 * address for the protocol, not marked down. tried has a bit for each
 * candidate: cfg allows no more than 32. */
_Static_assert(CFG_MAX_LISTENER_BACKENDS <= 32, "sess.tried has 32 bits");

static int usable(const struct sess *s, const size_t *v, size_t i)
{
	int pr = s->l->protocol;

	return !(s->tried & (1u << i)) &&
	       s->gen->cfg->backends[v[i]].addr[pr].sa.ss_family &&
	       !atomic_load(&s->gen->backends[v[i]].down[pr]);
}

/* The next backend to try (an index into cfg->backends), or -1: the first
 * untried one that is not down in the listener's order, or with
 * least-conn the one of them with the fewest sessions. */
static long pick(struct sess *s)
{
	const size_t *v;
	size_t one, n = candidates(s, &v, &one);
	long best = -1;
	unsigned fewest = UINT_MAX;

	for (size_t i = 0; i < n; i++) {
		unsigned c;
		if (!usable(s, v, i))
			continue;
		if (s->l->balance == CFG_BAL_ORDER) {
			s->tried |= 1u << i;
			return (long)v[i];
		}
		c = atomic_load(&s->gen->backends[v[i]].conns);
		if (c < fewest) {
			fewest = c;
			best = (long)i;
		}
	}
	if (best < 0)
		return -1;
	s->tried |= 1u << best;
	return (long)v[best];
}

/* Marks the backend in use down, if health checks watch it (they bring
 * it back); an unwatched one stays in use. */
static void mark_down(struct sess *s, const char *why)
{
	const struct cfg_backend *b = current(s);
	char r[160];

	if (!b || !b->check_interval_ms)
		return;
	if (atomic_exchange(&s->gen->backends[s->bk].down[s->l->protocol], 1) == 0)
		log_msg(LOG_LVL_WARN, "event=backend_down backend=%s address=%s reason=%s",
		        b->name, b->addr[s->l->protocol].text, log_quote(r, sizeof r, why));
}

void backend_release(struct sess *s)
{
	if (!s->bk_counted)
		return;
	atomic_fetch_sub(&s->gen->backends[s->bk].conns, 1);
	s->bk_counted = 0;
}

/* Writes the PROXY protocol header the backend asked for, first of all. */
static int send_proxy_header(struct sess *s)
{
	uint8_t h[PROXYP_V2_MAX];
	int n, v = current(s)->forward == CFG_FWD_PROXY_V1 ? 1 : 2;

	n = proxyp_build(v, (const struct sockaddr *)&s->peer, (const struct sockaddr *)&s->local,
	                 h, sizeof h);
	if (n < 0)
		return -1;
	return outq_write(&s->to_backend, h, (size_t)n) < 0 ? -1 : 0;
}

/* mbedTLS hands over a record for the backend. */
static int backend_tls_send(void *ctx, const uint8_t *buf, size_t len)
{
	struct sess *s = ctx;

	return outq_write(&s->to_backend, buf, len) < 0 ? -1 : 0;
}

int backend_send(struct sess *s, const void *p, size_t n)
{
	if (s->btls)
		return tls_write(s->btls, p, n) != 0 ? -1 : 0;
	return outq_write(&s->to_backend, p, n) < 0 ? -1 : 0;
}

/* Plaintext (or the end) for whoever reads the backend in this state. */
static void deliver(struct sess *s, ssize_t nread, const uint8_t *p)
{
	if (s->state == SESS_LOGIN)
		preauth_backend_read(s, nread, p);
	else
		relay_backend_read(s, nread, p);
}

/* The backend's TLS handshake failed: say why (a certificate that does
 * not verify is the likely case). */
static void tls_failed(struct sess *s, int rc)
{
	char why[300], e[128], v[200];

	if (*tls_verify_info(s->btls, v, sizeof v))
		snprintf(why, sizeof why, "TLS to the backend: its certificate did not verify: %s", v);
	else
		snprintf(why, sizeof why, "TLS to the backend: %s", tls_strerror(rc, e, sizeof e));
	connect_failed(s, UV_EPROTO, why);
}

/* The backend's TLS is up: the login goes on (after STARTTLS it asks for
 * the capabilities again), a transparent session starts relaying. */
static void tls_ready(struct sess *s)
{
	s->btls_up = 1;
	if (s->state == SESS_LOGIN) {
		if (current(s)->tls == CFG_BTLS_STARTTLS)
			preauth_backend_tls_up(s);
		return;
	}
	sess_enter(s, SESS_RELAY);
	sess_client_resume(s);
}

/* Ciphertext from a TLS backend: the handshake, then plaintext out. */
static void tls_input(struct sess *s, const uint8_t *p, size_t n)
{
	tls_conn_input(s->btls, p, n);
	if (!s->btls_up) {
		int rc = tls_handshake(s->btls);
		if (rc == TLS_AGAIN)
			return;
		if (rc < 0) {
			tls_failed(s, rc);
			return;
		}
		tls_ready(s);
	}
	while (!s->closing && s->btls && s->backend_open) {
		ssize_t r = tls_read(s->btls, s->w->pbuf, s->w->buffer_size);
		if (r == TLS_AGAIN)
			break;
		if (r < 0) {
			deliver(s, r == TLS_EOF ? UV_EOF : UV_EPROTO, NULL);
			break;
		}
		deliver(s, r, s->w->pbuf);
	}
}

static void on_backend_data(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct sess *s = st->data;

	if (nread == 0 || s->closing)
		return;
	if (!s->btls || nread < 0) {
		deliver(s, nread, (const uint8_t *)buf->base);
		return;
	}
	s->active_ms = uv_now(&s->w->loop);
	tls_input(s, (const uint8_t *)buf->base, (size_t)nread);
}

void backend_read_start(struct sess *s)
{
	uv_read_start((uv_stream_t *)&s->backend, sess_alloc, on_backend_data);
}

void backend_starttls(struct sess *s)
{
	const struct cfg_backend *b = current(s);
	int rc;

	s->btls = tls_conn_new_client(s->gen->backends[s->bk].tls, b->tls_name, backend_tls_send,
	                              s);
	if (!s->btls) {
		connect_failed(s, UV_ENOMEM, "out of memory");
		return;
	}
	rc = tls_handshake(s->btls);      /* the ClientHello */
	if (rc != TLS_AGAIN && rc < 0)
		tls_failed(s, rc);
}

/* A connect request and the attempt it belongs to: a request cancelled by
 * closing an earlier backend connection must not touch a newer one. */
struct connect_req {
	uv_connect_t req;
	struct sess *s;
	uint8_t gen;
};

/* The backend connection is up (or failed). */
static void on_connected(uv_connect_t *req, int status)
{
	struct connect_req *cr = (struct connect_req *)req;
	struct sess *s = cr->s;
	uint8_t gen = cr->gen;
	enum cfg_forward fwd;

	free(cr);
	if (s->closing || gen != s->connect_gen ||
	    (s->state != SESS_CONNECT && s->state != SESS_LOGIN))
		return;
	if (status < 0) {
		backend_connect_failed(s, status, NULL);
		return;
	}
	s->bk_up = 1;
	atomic_fetch_add(&s->gen->backends[s->bk].conns, 1);
	s->bk_counted = 1;
	uv_tcp_nodelay(&s->backend, 1);
	fwd = current(s)->forward;
	if ((fwd == CFG_FWD_PROXY_V1 || fwd == CFG_FWD_PROXY_V2) && send_proxy_header(s) < 0) {
		connect_failed(s, UV_ENOMEM, "PROXY header could not be sent");
		return;
	}
	if (s->state == SESS_LOGIN) {
		preauth_connected(s);
		if (!s->closing && s->state == SESS_LOGIN && current(s)->tls == CFG_BTLS_IMPLICIT)
			backend_starttls(s);
		return;
	}
	if (current(s)->tls == CFG_BTLS_IMPLICIT) {
		/* transparent: the relay starts once the backend's TLS is up */
		backend_read_start(s);
		backend_starttls(s);
		return;
	}
	sess_enter(s, SESS_RELAY);
	relay_start(s);
	sess_client_resume(s);
}

/* The backend handle is closed: what was queued for it is gone; a login
 * that waited for the handle starts now. */
static void on_backend_closed(uv_handle_t *h)
{
	struct sess *s = h->data;
	int again = s->connect_waiting && !s->closing;

	s->backend_closing = 0;
	s->connect_waiting = 0;
	outq_free(&s->to_backend);
	if (again)
		backend_connect(s);
	sess_handle_closed(h);
}

void backend_close(struct sess *s)
{
	backend_release(s);
	if (!s->backend_open || s->backend_closing)
		return;
	uv_read_stop((uv_stream_t *)&s->backend);
	s->backend_closing = 1;
	s->backend_open = 0;
	s->bk_up = 0;
	tls_conn_free(s->btls);
	s->btls = NULL;
	s->btls_up = 0;
	s->connect_gen++;
	uv_close((uv_handle_t *)&s->backend, on_backend_closed);
}

void backend_connect_failed(struct sess *s, int err, const char *why)
{
	mark_down(s, why ? why : uv_strerror(err));
	backend_retry(s, err, why);
}

void backend_retry(struct sess *s, int err, const char *why)
{
	const size_t *v;
	size_t one, n = candidates(s, &v, &one);
	int more = 0;

	for (size_t i = 0; i < n; i++)
		more |= usable(s, v, i);
	if (!more) {
		connect_failed(s, err, why);
		return;
	}
	{
		char r[160];
		log_msg(LOG_LVL_INFO, "event=backend_retry listener=%s backend=%s address=%s "
		        "error=%s", s->l->name, backend_name(s), current_address(s),
		        log_quote(r, sizeof r, why ? why : uv_strerror(err)));
	}
	backend_close(s);
	sess_arm(s, s->l->connect_timeout_ms);
	backend_connect(s);
}

void backend_connect(struct sess *s)
{
	struct connect_req *cr;
	long bk;
	int rc;

	if (s->backend_closing) {
		s->connect_waiting = 1;     /* on_backend_closed comes back here */
		return;
	}
	bk = pick(s);
	if (bk < 0) {
		connect_failed(s, UV_EHOSTUNREACH, s->route >= 0 &&
		               !s->gen->cfg->backends[s->route].addr[s->l->protocol].sa.ss_family
		               ? "the user's backend has no address for this protocol"
		               : "every backend is down");
		return;
	}
	s->bk = (int16_t)bk;
	cr = malloc(sizeof *cr);
	if (!cr) {
		connect_failed(s, UV_ENOMEM, NULL);
		return;
	}
	uv_tcp_init(&s->w->loop, &s->backend);
	s->backend.data = s;
	s->backend_open = 1;
	s->backend_shut = s->backend_eof = 0;
	s->handles++;
	outq_init(&s->to_backend, (uv_stream_t *)&s->backend, relay_backend_drained);
	cr->s = s;
	cr->gen = s->connect_gen;
	rc = uv_tcp_connect(&cr->req, &s->backend,
	                    (const struct sockaddr *)&current(s)->addr[s->l->protocol].sa,
	                    on_connected);
	if (rc < 0) {
		free(cr);
		backend_connect_failed(s, rc, NULL);
	}
}
