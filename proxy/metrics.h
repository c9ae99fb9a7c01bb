/*
 * metrics: an optional HTTP endpoint on the main thread's loop, bound to
 * a loopback address ([metrics] address), answering
 *
 *   GET /metrics   the counters of every worker, summed, in Prometheus's
 *                  text format (see metrics.c for the list)
 *   GET /healthz   200 "ok" while moat takes new sessions and a backend
 *                  is up; 503 "draining" once SIGTERM came, or "every
 *                  backend is down"
 *
 * The same code serves [health] address (any address, /healthz only) for
 * load balancers and Kubernetes probes that cannot reach loopback.
 *
 * and 404 to anything else. One request per connection (HTTP/1.0 style),
 * each closed METRICS_TIMEOUT_MS after it was accepted, answered or not.
 * At most METRICS_CONNS are open at once and METRICS_PER_ADDR from one
 * address (IPv4, or an IPv6 /64). A new connection is never refused for
 * idle ones: at the address's cap the oldest connection from there that
 * is still waiting for its request head is closed, when every place is
 * taken the oldest waiting one of all; one already answering is not, and
 * only when none is waiting is the new one closed. So idle connections
 * cannot keep a probe out: it has only to send its request before
 * METRICS_PER_ADDR newer ones from its address, or METRICS_CONNS from
 * anywhere, arrive.
 *
 * It reads what the daemon owns through struct metrics_src: the workers'
 * counters (relaxed atomic loads), the current generation (for listener
 * names and certificates), the shared limit table.
 */
#ifndef MOAT_METRICS_H
#define MOAT_METRICS_H

#include <stdint.h>
#include <uv.h>

#include "gen.h"
#include "limit.h"
#include "worker.h"

#define METRICS_CONNS 64
#define METRICS_PER_ADDR 8
#define METRICS_TIMEOUT_MS 2000

/* What the endpoint reports on; the daemon keeps it current. */
struct metrics_src {
	struct worker *workers;
	unsigned nworkers;
	struct gen *const *gen;       /* the current generation, as main holds it */
	struct limit_table *limits;
	uint64_t reloads_ok, reloads_failed;
	int draining;                 /* SIGTERM came: /healthz says 503 */
	int64_t started;              /* time_t of startup */
};

struct metrics;

/* Binds addr and serves on loop; health_only: only GET /healthz. 0, or
 * -1 with a message in err. */
int metrics_start(struct metrics **out, uv_loop_t *loop, const struct cfg_addr *addr,
                  const struct metrics_src *src, int health_only, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Closes the listener and every open connection (the loop frees them). */
void metrics_stop(struct metrics *m);

/* What GET /healthz answers: 1 (200) while moat is not draining and at
 * least one backend of a listener is not marked down, else 0 (503); why
 * is the one-line body. */
int metrics_healthy(const struct metrics_src *src, const char **why);

/* The body GET /metrics returns (malloc'd, NUL-terminated; NULL when out
 * of memory); for tests too. */
char *metrics_render(const struct metrics_src *src, size_t *len);

#endif /* MOAT_METRICS_H */
