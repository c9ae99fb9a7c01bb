/*
 * worker: one thread with its own libuv loop, its own SO_REUSEPORT
 * listening socket for every listener, and the sessions it accepted.
 *
 * The main thread creates workers (binding every socket first, so a bad
 * address fails before anything runs), starts them, and on SIGTERM/SIGINT
 * asks each to stop: the worker closes its listeners, ends the sessions
 * that have not logged in, lets the others run for shutdown_grace, then
 * ends them cleanly and returns from its loop.
 *
 * Per-worker read buffers are lent to whichever session is reading, so an
 * idle session holds no relay buffer of its own.
 *
 * On reload main hands each worker the new generation (worker_set_gen);
 * the worker switches to it for new sessions, while sessions keep the one
 * they were accepted under.
 */
#ifndef MOAT_WORKER_H
#define MOAT_WORKER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "gen.h"
#include "limit.h"
#include "stats.h"

struct sess;
struct worker;

struct worker_listener {
	uv_tcp_t handle;
	struct worker *w;
	size_t slot;                  /* socket index: gen->slot[slot] is its listener */
	int fd;
};

struct worker {
	unsigned id;
	uv_loop_t loop;
	uv_async_t wake;
	uv_thread_t thread;
	struct gen *gen;              /* new sessions take this one (a reference) */
	uv_mutex_t lock;              /* guards next_gen */
	struct gen *next_gen;         /* handed over by main, taken on wake */
	size_t buffer_size;           /* fixed at startup */
	struct limit_table *limits;   /* shared by all workers */
	struct lstats *stats;         /* one per listener socket, this worker's */
	uint64_t log_next[STLIM_N];   /* refusal log lines: next allowed (loop ms) */
	unsigned log_suppressed[STLIM_N];
	uv_timer_t grace;             /* stopping: sessions' time to end */
	struct worker_listener *listeners;
	size_t nlisteners;
	struct sess *sessions;        /* live sessions, for shutdown */
	size_t nsessions;
	size_t peak_sessions;         /* since the last memory trim */
	size_t rested;                /* TLS buffer releases since the last trim */
	uv_timer_t housekeeping;
	int stopping;                 /* set by the worker after a stop request */
	int finished;                 /* its own handles are closing */
	atomic_int stop_requested;    /* written by main (1 drain, 2 now), read after uv_async */
	atomic_int done;              /* its loop has returned */
	/* buffers lent to sessions, each buffer_size bytes */
	uint8_t *rbuf;                /* bytes read from a socket */
	uint8_t *pbuf;                /* plaintext decrypted from the client */
	uint8_t *sbuf;                /* TLS records staged for one write */
	size_t sbuf_len;
	struct sess *sbuf_owner;
};

/* Opens the listening sockets (SO_REUSEPORT) and the loop for worker id.
 * Returns 0, or -1 with a message in err. */
int worker_init(struct worker *w, unsigned id, struct gen *gen, struct limit_table *limits,
                char *err, size_t errlen) __attribute__((warn_unused_result));

/* Starts the worker's thread. */
int worker_start(struct worker *w) __attribute__((warn_unused_result));

/* Hands the worker a new generation for the sessions it accepts from now
 * on (takes a reference of its own); safe from another thread. */
void worker_set_gen(struct worker *w, struct gen *g);

/* Asks the worker to stop: drain (now = 0: close the listeners, end
 * sessions before login, give the others shutdown_grace) or end every
 * session at once; safe from another thread, and again to hurry it. */
void worker_stop(struct worker *w, int now);

/* Whether the worker's loop has returned (every session ended). */
int worker_done(struct worker *w);

/* A session of the worker closed (sess.c). */
void worker_session_gone(struct worker *w);

/* Waits for the thread and frees everything; 0 if the loop closed clean. */
int worker_join(struct worker *w);

/* For a worker whose thread was never started: stops it in the calling
 * thread and frees everything; 0 if the loop closed clean. */
int worker_discard(struct worker *w);

#endif /* MOAT_WORKER_H */
