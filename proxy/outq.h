/*
 * outq: the bytes waiting to be written to one stream.
 *
 * outq_write() first tries the socket directly (uv_try_write), so in the
 * common case nothing is copied or allocated; whatever the socket does not
 * take is copied into a heap chunk and written with one uv_write at a
 * time, in order. An idle session's queue is empty and holds no memory.
 *
 * The owner checks outq_pending() against its high-water mark and stops
 * reading the source; the drained callback (queue became empty, or a write
 * failed) tells it to resume or close.
 *
 * Chunks are freed by write callbacks; outq_free() frees what is left once
 * the stream's handle is closed (libuv has then called every write_cb).
 */
#ifndef MOAT_OUTQ_H
#define MOAT_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct outq_chunk;
struct outq;

/* status 0: everything written; < 0: a write failed (libuv error). */
typedef void (*outq_drained_fn)(struct outq *q, int status);

struct outq {
	uv_stream_t *stream;
	struct outq_chunk *head, *tail;
	size_t bytes;                 /* queued, not yet written */
	uv_write_t req;
	outq_drained_fn drained;
	unsigned busy : 1;            /* a uv_write is in flight */
	unsigned failed : 1;
};

void outq_init(struct outq *q, uv_stream_t *stream, outq_drained_fn drained);

/* Writes or queues len bytes; 0, or a libuv error (nothing queued then). */
int outq_write(struct outq *q, const uint8_t *p, size_t len)
	__attribute__((warn_unused_result));

static inline size_t outq_pending(const struct outq *q) { return q->bytes; }

/* Frees queued chunks; only after the stream's close callback. */
void outq_free(struct outq *q);

#endif /* MOAT_OUTQ_H */
