/*
 * health: checks every [backend NAME] with check_interval > 0, on the
 * main thread's loop: connect, read the greeting ("* OK" for IMAP, "+OK"
 * for POP3) within check_timeout, say LOGOUT/QUIT, close (with tls =
 * implicit the greeting is inside TLS: there the connect is the check). A failed check
 * marks the backend's address down in the generation's shared state
 * (struct backend_rt, which the workers read when they pick a backend);
 * a passing one marks it up again. Each change is logged once:
 *
 *   event=backend_down backend=NAME address=HOST:PORT reason="..."
 *   event=backend_up backend=NAME address=HOST:PORT
 *
 * A backend that wants the PROXY protocol gets a LOCAL header first (v2;
 * "PROXY UNKNOWN" for v1), as HAProxy's own checks do.
 *
 * On reload the checks of the old generation stop and the new one's
 * start (gen_build carried the state of unchanged backends over).
 */
#ifndef MOAT_HEALTH_H
#define MOAT_HEALTH_H

#include <uv.h>

#include "gen.h"

struct health;

/* Starts checking g's backends on loop (takes a reference to g).
 * Returns NULL when memory ran out (then nothing is checked). */
struct health *health_start(uv_loop_t *loop, struct gen *g);

/* Stops the checks; what they hold is freed once their handles closed.
 * NULL is fine. */
void health_stop(struct health *h);

#endif /* MOAT_HEALTH_H */
