/* relay: after login, bytes flow both ways unchanged. Client records are
 * decrypted into the worker's buffer and written to the backend; backend
 * bytes are encrypted into records for the client. When the queue toward
 * one side passes max_pending, the other side's reads stop until it
 * drains, so a slow reader costs at most max_pending plus one read. */
#include "sess_int.h"

#include <stdlib.h>

#include "imap_capf.h"
#include "log.h"

void relay_start(struct sess *s)
{
	backend_read_start(s);
}

/* The backend finished or failed: the client gets close_notify after what
 * is queued, then the session ends. */
static void backend_end(struct sess *s, ssize_t err)
{
	s->backend_eof = 1;
	tls_close_notify(s->tls);
	sess_finish(s, err == UV_EOF ? "backend closed" : uv_strerror((int)err));
}

/* Backend bytes for the client (after any filtering): encrypt them,
 * and for IMAP note where the response stream stands. */
int relay_to_client(struct sess *s, const uint8_t *p, size_t n)
{
	if (s->l->protocol == CFG_PROTO_IMAP)
		imap_track_feed(&s->track, p, n);
	return tls_write(s->tls, p, n);
}

/* The capability filter hands over filtered bytes. */
static int capf_emit(void *ctx, const uint8_t *p, size_t n)
{
	return relay_to_client(ctx, p, n);
}

/* Plaintext from the backend (or its end, nread < 0): encrypt it toward
 * the client. */
void relay_backend_read(struct sess *s, ssize_t nread, const uint8_t *p)
{
	int rc;

	if (nread == 0 || s->closing)
		return;
	if (nread < 0) {
		backend_end(s, nread);
		return;
	}
	s->active_ms = uv_now(&s->w->loop);
	sess_count_out(s, (uint64_t)nread);
	if (s->capf)
		rc = imap_capf_feed(s->capf, p, (size_t)nread, capf_emit, s);
	else
		rc = relay_to_client(s, p, (size_t)nread);
	sess_tls_flush(s);
	if (s->closing)
		return;
	if (rc < 0) {
		sess_tls_failed(s, rc, "tls_error", "TLS write failed");
		return;
	}
	if (outq_pending(&s->to_client) > s->gen->cfg->max_pending) {
		uv_read_stop((uv_stream_t *)&s->backend);
		s->backend_paused = 1;
	}
	sess_rest(s);
}

/* The FIN went out (or the session closed first). */
static void on_shutdown(uv_shutdown_t *req, int status)
{
	(void)status;
	free(req);
}

/* Sends the backend our FIN once everything queued for it is written. */
static void shutdown_backend(struct sess *s)
{
	uv_shutdown_t *req;

	if (s->backend_shut || outq_pending(&s->to_backend) > 0)
		return;
	s->backend_shut = 1;
	req = malloc(sizeof *req);
	if (!req || uv_shutdown(req, (uv_stream_t *)&s->backend,
	                        on_shutdown) < 0) {
		free(req);
		sess_close(s, "backend shutdown failed");
	}
}

void relay_client_eof(struct sess *s)
{
	s->client_eof = 1;
	uv_read_stop((uv_stream_t *)&s->client);
	if (s->backend_eof) {
		sess_finish(s, "client closed");
		return;
	}
	if (s->btls)
		tls_close_notify(s->btls);  /* queued before the FIN */
	shutdown_backend(s);
}

/* Decrypts what the client sent and passes it on, until the input is used
 * up, the client closed, or the backend's queue is full. */
void relay_client_input(struct sess *s)
{
	struct worker *w = s->w;

	while (!s->closing) {
		ssize_t n = tls_read(s->tls, w->pbuf, w->buffer_size);
		if (n == TLS_AGAIN)
			break;
		if (n == TLS_EOF) {
			relay_client_eof(s);
			break;
		}
		if (n < 0) {
			sess_tls_failed(s, (int)n, "tls_error", "TLS error from client");
			break;
		}
		sess_count_in(s, (uint64_t)n);
		if (backend_send(s, w->pbuf, (size_t)n) < 0) {
			sess_close(s, "backend write failed");
			break;
		}
		if (outq_pending(&s->to_backend) > s->gen->cfg->max_pending) {
			uv_read_stop((uv_stream_t *)&s->client);
			s->client_paused = 1;
			break;
		}
	}
	sess_tls_flush(s);
}

void relay_backend_drained(struct outq *q, int status)
{
	struct sess *s = (struct sess *)((char *)q - offsetof(struct sess, to_backend));

	if (s->closing)
		return;
	if (status < 0 && s->state == SESS_LOGIN) {
		preauth_backend_failed(s, status, "backend write failed");
		return;
	}
	if (status < 0) {
		sess_close(s, "backend write failed");
		return;
	}
	if (s->client_eof)
		shutdown_backend(s);
	else if (s->client_paused && s->state == SESS_RELAY)
		sess_client_resume(s);
}
