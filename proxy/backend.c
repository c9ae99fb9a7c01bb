/* backend: connecting a session to its backend, and telling the client in
 * its own protocol when that fails. */
#include "sess_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* What the client reads when its backend cannot be reached: untagged BYE
 * (RFC 9051 7.1.5, RFC 5530 UNAVAILABLE) or -ERR (RFC 3206 SYS/TEMP). */
static const char *const unavailable[] = {
	[CFG_PROTO_IMAP] = "* BYE [UNAVAILABLE] Mail server unavailable, try again later\r\n",
	[CFG_PROTO_POP3] = "-ERR [SYS/TEMP] Mail server unavailable, try again later\r\n",
};

void backend_fail(struct sess *s, int err)
{
	const char *msg = unavailable[s->l->protocol];
	char r[160];

	log_msg(LOG_LVL_WARN, "event=backend_error listener=%s backend=%s error=%s",
	        s->l->name, s->l->backend.text, log_quote(r, sizeof r, uv_strerror(err)));
	stat_add(&sess_stats(s)->backend_errors, 1);
	if (tls_write(s->tls, (const uint8_t *)msg, strlen(msg)) == 0)
		tls_close_notify(s->tls);
	sess_finish(s, "backend unavailable");
}

/* A connect request and the attempt it belongs to: a request cancelled by
 * closing an earlier backend connection must not touch a newer one. */
struct connect_req {
	uv_connect_t req;
	struct sess *s;
	uint8_t gen;
};

/* Reports a failed connection in the state's own way. */
static void connect_failed(struct sess *s, int err)
{
	if (s->state == SESS_LOGIN)
		preauth_backend_failed(s, err, NULL);
	else
		backend_fail(s, err);
}

/* The backend connection is up (or failed). */
static void on_connected(uv_connect_t *req, int status)
{
	struct connect_req *cr = (struct connect_req *)req;
	struct sess *s = cr->s;
	uint8_t gen = cr->gen;

	free(cr);
	if (s->closing || gen != s->connect_gen ||
	    (s->state != SESS_CONNECT && s->state != SESS_LOGIN))
		return;
	if (status < 0) {
		connect_failed(s, status);
		return;
	}
	uv_tcp_nodelay(&s->backend, 1);
	if (s->state == SESS_LOGIN) {
		preauth_connected(s);
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
	if (!s->backend_open || s->backend_closing)
		return;
	uv_read_stop((uv_stream_t *)&s->backend);
	s->backend_closing = 1;
	s->backend_open = 0;
	s->connect_gen++;
	uv_close((uv_handle_t *)&s->backend, on_backend_closed);
}

void backend_connect(struct sess *s)
{
	struct connect_req *cr;
	int rc;

	if (s->backend_closing) {
		s->connect_waiting = 1;     /* on_backend_closed comes back here */
		return;
	}
	cr = malloc(sizeof *cr);
	if (!cr) {
		connect_failed(s, UV_ENOMEM);
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
	rc = uv_tcp_connect(&cr->req, &s->backend, (const struct sockaddr *)&s->l->backend.sa,
	                    on_connected);
	if (rc < 0) {
		free(cr);
		connect_failed(s, rc);
	}
}
