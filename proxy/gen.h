/*
 * gen: one generation of moat's settings, everything one reading of the
 * configuration file builds: the parsed config, each listener's dialogue
 * settings and backend capabilities, the certificates and each
 * listener's TLS server context.
 *
 * main builds the first generation at startup and a new one on SIGHUP;
 * `moat -t` builds one and throws it away, so it checks exactly what a
 * reload checks. A generation is immutable once built and
 * reference-counted: main holds the current one, each worker holds the
 * one it accepts with, and each session holds the one it was accepted
 * under, for its whole life. So a reload never changes a session under
 * its feet, and the old certificates and contexts are freed (keys wiped)
 * by whichever thread drops the last reference.
 *
 * What a reload cannot change, because it belongs to the sockets and
 * threads made at startup, is checked by gen_compatible(): the workers,
 * buffer_size, and the set of listeners with their addresses.
 */
#ifndef MOAT_GEN_H
#define MOAT_GEN_H

#include <stdatomic.h>
#include <stddef.h>

#include "cfg.h"
#include "dlg.h"
#include "limit.h"
#include "tls.h"

/* One listener's run-time settings, built from its config. */
struct listener_rt {
	int preauth;                  /* moat holds the pre-auth dialogue */
	struct dlg_cfg dlg;
	char caps[DLG_CAPS_MAX];      /* backend capabilities passed through */
	int caps_probed;              /* caps came from the backend's answer */
	tls_server *tls;
	tls_tickets *tickets;         /* NULL: no resumption */
};

/* A backend's state, shared by the workers (atomics). Health checks on
 * main's loop and failed connects in the workers mark it down; checks
 * mark it up again. A new generation takes over the state of backends
 * that kept their name and address. */
struct backend_rt {
	atomic_int down[2];           /* by enum cfg_proto: failed its last check or connect */
	atomic_uint conns;            /* sessions connected to it now (least-conn) */
	tls_server *tls;              /* client context when tls != none */
};

struct route_map;

struct gen {
	atomic_int refs;
	unsigned id;                  /* 1 at startup, +1 per reload */
	struct cfg *cfg;
	struct listener_rt *rt;       /* per listener, as in cfg->listeners */
	size_t *slot;                 /* slot[i]: listener using socket i */
	tls_cert **certs;             /* as in cfg->certs */
	struct limit_cfg limits;      /* cfg's limits, as limit.c takes them */
	struct backend_rt *backends;  /* as in cfg->backends */
	struct route_map *routes;     /* route_map's file; NULL: none */
	tls_tickets *file_tickets;    /* from ticket_key_file, shared by every listener */
};

/* What gen_build() does besides reading and loading. */
#define GEN_PROBE 1               /* ask backends for their capabilities */
#define GEN_LOG_LEVEL 2           /* apply its logging settings while building
                                   * (kept on success, undone on failure) */

/* Reads path and builds a generation: config, certificates and keys,
 * client CAs, TLS contexts, capabilities. prev (NULL at startup) lends
 * ticket keys to listeners whose ticket settings did not change, its
 * capabilities where a backend does not answer, and its socket order.
 * Logs one line per certificate (and warns of expiry and loose key
 * files). Returns 0 with *out holding one reference, or -1 with every
 * problem as "FILE:LINE: message\n" lines in *errors (malloc'd). */
int gen_build(const char *path, const struct gen *prev, int flags, struct gen **out,
              char **errors) __attribute__((warn_unused_result));

/* Applies its log_level, log_format, log_target, syslog_facility. */
void gen_apply_logging(const struct gen *g);

struct gen *gen_ref(struct gen *g);
void gen_unref(struct gen *g);

/* Whether g can replace old without new sockets or threads: 0, or -1
 * with a sentence in why saying what needs a restart. */
int gen_compatible(const struct gen *old, const struct gen *g, char *why, size_t len);

#endif /* MOAT_GEN_H */
