/*
 * sess: one client connection, from accept to close.
 *
 * States (only sess_enter changes them, and each arms its own timeout on
 * the session's one timer):
 *   HANDSHAKE -> CONNECT (backend) -> RELAY -> closed
 * The worker owns sessions; a session owns its two TCP handles, its timer,
 * its TLS context and any queued bytes. sess_close() is the one close
 * path: idempotent, it closes every handle and frees the session when the
 * last close callback has run.
 */
#ifndef MOAT_SESS_H
#define MOAT_SESS_H

#include "worker.h"

/* A listener has a connection waiting: accept it into a new session. */
void sess_accept(struct worker_listener *l);

/* The next session in the worker's list (iteration that may close s). */
struct sess *sess_next(const struct sess *s);

/* Worker draining: a session before login ends now ("* BYE" / "-ERR"),
 * one in the handshake closes; logged-in ones (and logins under way)
 * carry on. */
void sess_drain(struct sess *s);

/* Worker shutdown: end the session cleanly now (an IMAP session between
 * two responses gets "* BYE"; close_notify; close). */
void sess_shutdown(struct sess *s);

#endif /* MOAT_SESS_H */
