/*
 * sess_int: the session struct, shared by sess.c (life cycle), backend.c
 * (connecting to the backend) and relay.c (moving bytes). Nothing outside
 * those three files includes it.
 */
#ifndef MOAT_SESS_INT_H
#define MOAT_SESS_INT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "imap_track.h"
#include "outq.h"
#include "sess.h"
#include "tls.h"

enum sess_state {
	SESS_ACCEPTED = 0,            /* TCP connection accepted */
	SESS_HANDSHAKE,               /* TLS handshake (implicit or STARTTLS) */
	SESS_PREAUTH,                 /* moat's own dialogue before login */
	SESS_LOGIN,                   /* connecting and logging in to the backend */
	SESS_AUTH_DELAY,              /* a login's answer waits for the timer (a failure's is held back) */
	SESS_CONNECT,                 /* transparent: connecting to the backend */
	SESS_RELAY,                   /* piping bytes both ways */
	SESS_CLOSING,                 /* flushing the last bytes, then close */
};

struct preauth;                   /* preauth.c: exists only before login */

struct sess {
	struct sess *prev, *next;     /* worker's session list */
	struct worker *w;
	struct worker_listener *wl;
	struct gen *gen;              /* the settings it was accepted under (a reference) */
	const struct cfg_listener *l; /* in gen */
	const struct listener_rt *rt; /* in gen */
	uv_tcp_t client;
	uv_tcp_t backend;
	uv_timer_t timer;
	struct outq to_client;        /* TLS records */
	struct outq to_backend;       /* plaintext */
	tls_conn *tls;                /* NULL while a STARTTLS listener is in clear */
	tls_conn *btls;               /* TLS to the backend, when it speaks it */
	struct preauth *pa;
	struct imap_capf *capf;       /* transparent IMAP: capability filter */
	struct imap_track track;      /* IMAP: where the stream to the client stands */
	char *user;                   /* after login, for the session_end line */
	uint8_t *stash;               /* client ciphertext not consumed yet */
	size_t stash_len;
	uint64_t start_ms, active_ms; /* loop time at accept, at last byte */
	uint64_t preauth_due;         /* loop time the pre-auth deadline ends (0: not greeted yet) */
	uint64_t bytes_in, bytes_out; /* plaintext from / to the client */
	const char *reason;           /* why the session ends */
	struct sockaddr_in6 peer;     /* or sockaddr_in, by family: the client */
	struct sockaddr_in6 local;    /* the address the client connected to */
	int16_t bk;                   /* backend in use (cfg->backends), -1: none yet */
	int16_t route;                /* the user's backend from the route map, -1: none */
	uint32_t tried;               /* bits: candidates tried by this login */
	enum sess_state state;
	uint8_t handles;              /* open libuv handles */
	unsigned closing : 1;         /* sess_close ran */
	unsigned backend_open : 1;    /* s->backend initialised */
	unsigned backend_closing : 1; /* uv_close(backend) not completed yet */
	unsigned connect_waiting : 1; /* connect once the old backend is closed */
	uint8_t connect_gen;          /* tells a stale connect callback apart */
	unsigned tls_on : 1;          /* client bytes pass through tls */
	unsigned tls_up : 1;          /* the handshake completed */
	unsigned client_paused : 1;   /* reads stopped: backend queue full */
	unsigned backend_paused : 1;  /* reads stopped: client queue full */
	unsigned client_eof : 1;      /* client finished sending */
	unsigned backend_shut : 1;    /* shutdown(backend) requested */
	unsigned backend_eof : 1;
	unsigned counted : 1;         /* limit_connect() counted it */
	unsigned tracked : 1;         /* ... under its address */
	unsigned exempt : 1;          /* its address is in limits_exempt */
	unsigned addrless : 1;        /* a PROXY header without a client address: may not log in */
	unsigned bk_up : 1;           /* the backend connection is established */
	unsigned bk_counted : 1;      /* counted in its backend's conns */
	unsigned btls_up : 1;         /* the backend's TLS handshake is done */
	uint8_t refuse;               /* enum stat_limit + 1: refuse after greeting/handshake */
};

/* sess.c */
void sess_enter(struct sess *s, enum sess_state st);
void sess_close(struct sess *s, const char *reason);
void sess_finish(struct sess *s, const char *reason);
void sess_tls_flush(struct sess *s);
void sess_tls_failed(struct sess *s, int err, const char *event, const char *reason);
void sess_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void sess_client_resume(struct sess *s);
void sess_send(struct sess *s, const void *p, size_t n);
void sess_start_tls(struct sess *s);
void sess_arm(struct sess *s, uint64_t ms);
void sess_handle_closed(uv_handle_t *h);
const char *sess_peer(const struct sess *s, char *buf, size_t size);
/* An address of either family as text, without brackets or port. */
const char *sess_ip(const struct sockaddr_in6 *sa, char *buf, size_t size);
const char *sess_tls_fields(const struct sess *s, char *buf, size_t size);
struct lstats *sess_stats(const struct sess *s);
void sess_count_in(struct sess *s, uint64_t n);   /* plaintext from the client */
void sess_count_out(struct sess *s, uint64_t n);  /* plaintext to the client */
/* An event is handled: an established TLS session with nothing in flight
 * gives its record buffers back until the next one needs them. */
void sess_rest(struct sess *s);
void sess_refused(struct sess *s, enum stat_limit why);
/* Whether a rate-limited log line about why may be written now (one a
 * second per worker); if so, *suppressed is how many were not since. */
int sess_log_gate(struct sess *s, enum stat_limit why, unsigned *suppressed);

/* preauth.c */
int preauth_begin(struct sess *s);
void preauth_end(struct sess *s);
void preauth_greet(struct sess *s);
void preauth_tls_started(struct sess *s);
void preauth_input(struct sess *s, const uint8_t *p, size_t n);
void preauth_client_input(struct sess *s);
void preauth_connected(struct sess *s);
void preauth_backend_read(struct sess *s, ssize_t nread, const uint8_t *p);
void preauth_backend_tls_up(struct sess *s);
void preauth_backend_failed(struct sess *s, int err, const char *why);
void preauth_timer(struct sess *s);
void preauth_resume(struct sess *s);
void preauth_bye(struct sess *s);

/* backend.c */
/* Connects to the next backend to try: the user's routed one, or the
 * listener's in its balance order, skipping those marked down. */
void backend_connect(struct sess *s);
/* The connection to the current backend failed before the login was
 * sent: mark it down (if it is health-checked) and try the next one. */
void backend_connect_failed(struct sess *s, int err, const char *why);
/* Plaintext for the backend: queued as is, or in TLS records. 0 or < 0. */
int backend_send(struct sess *s, const void *p, size_t n);
/* Reads from the backend: its plaintext goes to the login or the relay,
 * by state (after TLS, when the backend speaks it). */
void backend_read_start(struct sess *s);
/* The backend agreed to STARTTLS/STLS: TLS starts on the connection. */
void backend_starttls(struct sess *s);
/* Stops counting the session in its backend's connections (sess_close). */
void backend_release(struct sess *s);
/* The backend in use failed the login in a way another backend may not
 * (it went away, said BYE, "-ERR [SYS/TEMP]"): the next one, if any. */
void backend_retry(struct sess *s, int err, const char *why);
/* The name of the backend in use, for log lines ("-" before one). */
const char *backend_name(const struct sess *s);
void backend_fail(struct sess *s, int err);
void backend_close(struct sess *s);

/* relay.c */
int relay_to_client(struct sess *s, const uint8_t *p, size_t n);
void relay_start(struct sess *s);
void relay_backend_read(struct sess *s, ssize_t nread, const uint8_t *p);
void relay_client_input(struct sess *s);
void relay_backend_drained(struct outq *q, int status);
void relay_client_eof(struct sess *s);

#endif /* MOAT_SESS_INT_H */
