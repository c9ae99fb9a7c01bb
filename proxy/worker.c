/* worker: see worker.h. */
#include "worker.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "sess.h"

#define LISTEN_BACKLOG 511
#define HOUSEKEEPING_MS 2000
/* Sessions gone since the peak before freed memory goes back to the OS. */
#define TRIM_AFTER 64

/* Opens one listening socket with SO_REUSEPORT so every worker can bind
 * the same address and the kernel spreads connections among them
 * (libuv 1.44 has no flag for it). Returns the fd or -errno. */
static int open_listener(const struct cfg_listener *l)
{
	int fd, one = 1;

	fd = socket(l->address.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
	    bind(fd, (const struct sockaddr *)&l->address.sa, l->address.len) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* A listener has a connection waiting. */
static void on_connection(uv_stream_t *server, int status)
{
	struct worker_listener *wl = server->data;

	if (status < 0) {
		log_msg(LOG_LVL_WARN, "event=accept_failed listener=%s error=\"%s\"",
		        wl->w->gen->cfg->listeners[wl->w->gen->slot[wl->slot]].name,
		        uv_strerror(status));
		return;
	}
	if (wl->w->stopping)
		return;
	sess_accept(wl);
}

/* Returns freed heap memory to the system. Not under AddressSanitizer,
 * whose allocator is not glibc's: glibc's malloc_trim then walks arenas
 * nobody set up and crashes (a burst of logins under make test-asan). */
static void trim(void)
{
#if defined(__SANITIZE_ADDRESS__)
#define MOAT_NO_TRIM
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MOAT_NO_TRIM
#endif
#endif
#if !defined(MOAT_NO_TRIM)
	malloc_trim(0);
#endif
}

/* Every few seconds: after a burst of sessions has ended (a flood of
 * handshakes, a mass reconnect), or many idle sessions gave their TLS
 * record buffers back, return the freed memory to the system, so moat's
 * memory follows what the live sessions need. */
static void on_housekeeping(uv_timer_t *t)
{
	struct worker *w = t->data;

	if (w->peak_sessions >= w->nsessions + TRIM_AFTER || w->rested >= TRIM_AFTER)
		trim();
	w->peak_sessions = w->nsessions;
	w->rested = 0;
}

/* Runs in the worker when main handed over a new generation: sessions
 * accepted from now on use it; the old one lives on in the sessions
 * accepted under it. */
static void take_new_gen(struct worker *w)
{
	struct gen *g;

	uv_mutex_lock(&w->lock);
	g = w->next_gen;
	w->next_gen = NULL;
	uv_mutex_unlock(&w->lock);
	if (!g)
		return;
	gen_unref(w->gen);
	w->gen = g;
}

/* The last session is gone while stopping: close the worker's own
 * handles, and its loop returns. */
static void finish(struct worker *w)
{
	if (w->finished)
		return;
	w->finished = 1;
	uv_close((uv_handle_t *)&w->wake, NULL);
	uv_close((uv_handle_t *)&w->housekeeping, NULL);
	uv_close((uv_handle_t *)&w->grace, NULL);
}

void worker_session_gone(struct worker *w)
{
	if (w->stopping && w->nsessions == 0)
		finish(w);
}

/* Ends every session now (IMAP sessions between responses get a BYE). */
static void end_all(struct worker *w)
{
	struct sess *s, *next;

	for (s = w->sessions; s; s = next) {
		next = sess_next(s);
		sess_shutdown(s);
	}
	worker_session_gone(w);
}

/* The grace period after a stop request is over. */
static void on_grace(uv_timer_t *t)
{
	end_all(t->data);
}

/* Runs in the worker when main asked it to stop: no new connections;
 * sessions before login end now, logged-in ones get shutdown_grace to
 * end by themselves; then (or at once, on a second request) the rest. */
static void stop(struct worker *w, int now)
{
	struct sess *s, *next;
	uint32_t grace = w->gen->cfg->shutdown_grace_ms;

	if (!w->stopping) {
		w->stopping = 1;
		for (size_t i = 0; i < w->nlisteners; i++)
			uv_close((uv_handle_t *)&w->listeners[i].handle, NULL);
		for (s = w->sessions; s; s = next) {
			next = sess_next(s);
			sess_drain(s);
		}
		if (grace && !now)
			uv_timer_start(&w->grace, on_grace, grace, 0);
	}
	if (now || !grace)
		end_all(w);
	worker_session_gone(w);
}

/* Runs in the worker when main woke it: a new generation, or a request to
 * stop (1: drain, 2: now). */
static void on_wake(uv_async_t *a)
{
	struct worker *w = a->data;
	int req = atomic_load(&w->stop_requested);

	take_new_gen(w);
	if (req && !w->finished && (!w->stopping || req == 2))
		stop(w, req == 2);
}

int worker_init(struct worker *w, unsigned id, struct gen *gen, struct limit_table *limits,
                char *err, size_t errlen)
{
	const struct cfg *cfg = gen->cfg;
	size_t i;
	int rc;

	memset(w, 0, sizeof *w);
	w->id = id;
	w->buffer_size = cfg->buffer_size;
	w->limits = limits;
	w->rbuf = malloc(cfg->buffer_size);
	w->pbuf = malloc(cfg->buffer_size);
	w->sbuf = malloc(cfg->buffer_size);
	w->listeners = calloc(cfg->nlisteners, sizeof *w->listeners);
	w->stats = calloc(cfg->nlisteners, sizeof *w->stats);
	if (!w->rbuf || !w->pbuf || !w->sbuf || !w->listeners || !w->stats) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc = uv_loop_init(&w->loop);
	if (rc < 0) {
		snprintf(err, errlen, "event loop: %s", uv_strerror(rc));
		goto fail;
	}
	uv_async_init(&w->loop, &w->wake, on_wake);
	w->wake.data = w;
	uv_timer_init(&w->loop, &w->housekeeping);
	w->housekeeping.data = w;
	uv_timer_start(&w->housekeeping, on_housekeeping, HOUSEKEEPING_MS, HOUSEKEEPING_MS);
	uv_timer_init(&w->loop, &w->grace);
	w->grace.data = w;
	for (i = 0; i < cfg->nlisteners; i++) {
		struct worker_listener *wl = &w->listeners[i];
		const struct cfg_listener *l = &cfg->listeners[gen->slot[i]];
		int fd = open_listener(l);
		if (fd < 0) {
			snprintf(err, errlen, "listener %s: cannot listen on %s: %s",
			         l->name, l->address.text, strerror(-fd));
			goto fail_loop;
		}
		wl->slot = i;
		wl->w = w;
		wl->fd = fd;
		uv_tcp_init(&w->loop, &wl->handle);
		wl->handle.data = wl;
		w->nlisteners = i + 1;
		rc = uv_tcp_open(&wl->handle, fd);
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&wl->handle, LISTEN_BACKLOG, on_connection);
		if (rc < 0) {
			snprintf(err, errlen, "listener %s: %s", l->name, uv_strerror(rc));
			goto fail_loop;
		}
	}
	uv_mutex_init(&w->lock);
	w->gen = gen_ref(gen);
	return 0;
fail_loop:
	for (i = 0; i < w->nlisteners; i++)
		uv_close((uv_handle_t *)&w->listeners[i].handle, NULL);
	uv_close((uv_handle_t *)&w->wake, NULL);
	uv_close((uv_handle_t *)&w->housekeeping, NULL);
	uv_close((uv_handle_t *)&w->grace, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_loop_close(&w->loop);
fail:
	free(w->rbuf);
	free(w->pbuf);
	free(w->sbuf);
	free(w->listeners);
	free(w->stats);
	return -1;
}

static void worker_main(void *arg)
{
	struct worker *w = arg;

	uv_run(&w->loop, UV_RUN_DEFAULT);
	atomic_store(&w->done, 1);
}

int worker_start(struct worker *w)
{
	return uv_thread_create(&w->thread, worker_main, w);
}

void worker_set_gen(struct worker *w, struct gen *g)
{
	struct gen *old;

	uv_mutex_lock(&w->lock);
	old = w->next_gen;
	w->next_gen = gen_ref(g);
	uv_mutex_unlock(&w->lock);
	gen_unref(old);                     /* one the worker never took */
	uv_async_send(&w->wake);
}

void worker_stop(struct worker *w, int now)
{
	atomic_store(&w->stop_requested, now ? 2 : 1);
	uv_async_send(&w->wake);
}

int worker_done(struct worker *w)
{
	return atomic_load(&w->done);
}

/* Frees a stopped worker whose loop has returned. */
static int worker_free(struct worker *w)
{
	int rc = uv_loop_close(&w->loop);

	gen_unref(w->next_gen);
	gen_unref(w->gen);
	uv_mutex_destroy(&w->lock);
	free(w->rbuf);
	free(w->pbuf);
	free(w->sbuf);
	free(w->listeners);
	free(w->stats);
	return rc;
}

int worker_join(struct worker *w)
{
	uv_thread_join(&w->thread);
	return worker_free(w);
}

int worker_discard(struct worker *w)
{
	worker_stop(w, 1);
	uv_run(&w->loop, UV_RUN_DEFAULT);   /* its thread never ran: run it here */
	return worker_free(w);
}
