/* outq: see outq.h. */
#include "outq.h"

#include <stdlib.h>
#include <string.h>

struct outq_chunk {
	struct outq_chunk *next;
	size_t len;
	uint8_t data[];
};

void outq_init(struct outq *q, uv_stream_t *stream, outq_drained_fn drained)
{
	memset(q, 0, sizeof *q);
	q->stream = stream;
	q->drained = drained;
}

static int start_write(struct outq *q);

/* Runs when the head chunk has been written (or the write failed). */
static void on_written(uv_write_t *req, int status)
{
	struct outq *q = req->data;
	struct outq_chunk *c = q->head;

	q->busy = 0;
	q->head = c->next;
	if (!q->head)
		q->tail = NULL;
	q->bytes -= c->len;
	free(c);
	if (status < 0) {
		q->failed = 1;
		q->drained(q, status);
		return;
	}
	if (q->head)
		status = start_write(q);
	if (status < 0) {
		q->failed = 1;
		q->drained(q, status);
	} else if (!q->head) {
		q->drained(q, 0);
	}
}

/* Starts writing the head chunk: 0 or a libuv error. */
static int start_write(struct outq *q)
{
	uv_buf_t b = uv_buf_init((char *)q->head->data, (unsigned)q->head->len);
	int rc;

	q->req.data = q;
	rc = uv_write(&q->req, q->stream, &b, 1, on_written);
	if (rc == 0)
		q->busy = 1;
	return rc;
}

int outq_write(struct outq *q, const uint8_t *p, size_t len)
{
	struct outq_chunk *c;

	if (q->failed)
		return UV_EPIPE;
	if (len == 0)
		return 0;
	if (!q->head) {
		uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
		int n = uv_try_write(q->stream, &b, 1);
		if (n < 0 && n != UV_EAGAIN)
			return n;
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		}
		if (len == 0)
			return 0;
	}
	c = malloc(sizeof *c + len);
	if (!c)
		return UV_ENOMEM;
	c->next = NULL;
	c->len = len;
	memcpy(c->data, p, len);
	if (q->tail)
		q->tail->next = c;
	else
		q->head = c;
	q->tail = c;
	q->bytes += len;
	if (!q->busy && q->head == c) {
		int rc = start_write(q);
		if (rc < 0) {
			q->failed = 1;
			return rc;
		}
	}
	return 0;
}

void outq_free(struct outq *q)
{
	struct outq_chunk *c = q->head, *next;

	for (; c; c = next) {
		next = c->next;
		free(c);
	}
	q->head = q->tail = NULL;
	q->bytes = 0;
}
