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

#include "outq.h"
#include "sess.h"
#include "tls.h"

enum sess_state {
	SESS_ACCEPTED = 0,            /* TCP connection accepted */
	SESS_HANDSHAKE,               /* TLS handshake with the client */
	SESS_CONNECT,                 /* connecting to the backend */
	SESS_RELAY,                   /* piping bytes both ways */
	SESS_CLOSING,                 /* flushing the last bytes, then close */
};

struct sess {
	struct sess *prev, *next;     /* worker's session list */
	struct worker *w;
	const struct cfg_listener *l;
	uv_tcp_t client;
	uv_tcp_t backend;
	uv_timer_t timer;
	struct outq to_client;        /* TLS records */
	struct outq to_backend;       /* plaintext */
	tls_conn *tls;
	uint8_t *stash;               /* client ciphertext not consumed yet */
	size_t stash_len;
	uint64_t start_ms, active_ms; /* loop time at accept, at last byte */
	uint64_t bytes_in, bytes_out; /* plaintext from / to the client */
	const char *reason;           /* why the session ends */
	struct sockaddr_in6 peer;     /* or sockaddr_in, by family */
	enum sess_state state;
	uint8_t handles;              /* open libuv handles */
	unsigned closing : 1;         /* sess_close ran */
	unsigned backend_open : 1;    /* s->backend initialised */
	unsigned client_paused : 1;   /* reads stopped: backend queue full */
	unsigned backend_paused : 1;  /* reads stopped: client queue full */
	unsigned client_eof : 1;      /* client finished sending */
	unsigned backend_shut : 1;    /* shutdown(backend) requested */
	unsigned backend_eof : 1;
};

/* sess.c */
void sess_enter(struct sess *s, enum sess_state st);
void sess_close(struct sess *s, const char *reason);
void sess_finish(struct sess *s, const char *reason);
void sess_tls_flush(struct sess *s);
void sess_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void sess_client_resume(struct sess *s);

/* backend.c */
void backend_connect(struct sess *s);
void backend_fail(struct sess *s, int err);

/* relay.c */
void relay_start(struct sess *s);
void relay_client_input(struct sess *s);
void relay_backend_drained(struct outq *q, int status);
void relay_client_eof(struct sess *s);

#endif /* MOAT_SESS_INT_H */
