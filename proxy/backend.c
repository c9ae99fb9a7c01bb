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
	if (tls_write(s->tls, (const uint8_t *)msg, strlen(msg)) == 0)
		tls_close_notify(s->tls);
	sess_finish(s, "backend unavailable");
}

/* The backend connection is up (or failed). */
static void on_connected(uv_connect_t *req, int status)
{
	struct sess *s = req->data;

	free(req);
	if (s->closing || s->state != SESS_CONNECT)
		return;
	if (status < 0) {
		backend_fail(s, status);
		return;
	}
	uv_tcp_nodelay(&s->backend, 1);
	sess_enter(s, SESS_RELAY);
	relay_start(s);
	sess_client_resume(s);
}

void backend_connect(struct sess *s)
{
	uv_connect_t *req = malloc(sizeof *req);
	int rc;

	if (!req) {
		backend_fail(s, UV_ENOMEM);
		return;
	}
	uv_tcp_init(&s->w->loop, &s->backend);
	s->backend.data = s;
	s->backend_open = 1;
	s->handles++;
	outq_init(&s->to_backend, (uv_stream_t *)&s->backend, relay_backend_drained);
	req->data = s;
	rc = uv_tcp_connect(req, &s->backend, (const struct sockaddr *)&s->l->backend.sa,
	                    on_connected);
	if (rc < 0) {
		free(req);
		backend_fail(s, rc);
	}
}
