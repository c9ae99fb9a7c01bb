/*
 * moat: TLS-terminating proxy for IMAP and POP3.
 *
 * main: command line, configuration, the worker threads, privileges,
 * signals and the metrics endpoint. Once the workers run, the main thread
 * only answers signals (reload, stop) and metrics requests.
 *
 * Startup, in this order: read and check everything (the first
 * generation: config, certificates, keys); refuse to run as root without
 * a user to become; raise the descriptor limit; bind every listener for
 * every worker and the metrics endpoint; write the pid file; drop root;
 * start the worker threads.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "gen.h"
#include "health.h"
#include "limit.h"
#include "log.h"
#include "metrics.h"
#include "proc.h"
#include "tls.h"
#include "version.h"
#include "worker.h"

/* While draining: how often main looks whether the workers are done. */
#define DRAIN_POLL_MS 100

struct daemon {
	const char *path;
	struct gen *gen;              /* the current generation (main's reference) */
	struct limit_table *limits;   /* per-address counts, shared by workers */
	struct worker *workers;
	unsigned nworkers;            /* initialised workers */
	unsigned nstarted;            /* ... whose threads run */
	uv_loop_t loop;
	uv_signal_t sig[3];
	uv_timer_t drain;             /* stopping: waits for the workers */
	struct metrics *metrics;
	struct metrics *healthz;      /* [health] address: /healthz only */
	uv_timer_t delay;             /* SIGTERM: drain_delay before the drain */
	int delaying;
	struct health *health;        /* backend checks of the current generation */
	struct metrics_src msrc;
	int stopping;
	char *pid_file;               /* written at startup, removed at exit */
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: moat [-t] -c FILE\n"
	        "       moat -V | -h\n"
	        "\n"
	        "  -c FILE  configuration file (INI; see moat.ini)\n"
	        "  -t       check the configuration, certificates and keys as a reload\n"
	        "           would, then exit\n"
	        "  -V       print the version and the mbedTLS version, then exit\n"
	        "  -h       print this help, then exit\n"
	        "\n"
	        "moat runs in the foreground and logs to stderr (or syslog). SIGTERM or\n"
	        "SIGINT drain it: no new connections, sessions before login end, the\n"
	        "others get shutdown_grace to finish; a second one ends them at once.\n"
	        "SIGHUP reloads the configuration, certificates and keys without\n"
	        "closing sessions.\n");
}

/* Logs each "FILE:LINE: message" line of errors as its own log line. */
static void log_errors(const char *event, const char *errors)
{
	char q[600];

	while (errors && *errors) {
		const char *nl = strchr(errors, '\n');
		size_t n = nl ? (size_t)(nl - errors) : strlen(errors);
		char line[512];

		snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1),
		         errors);
		log_msg(LOG_LVL_ERROR, "event=%s error=%s", event, log_quote(q, sizeof q, line));
		errors += n + (nl ? 1 : 0);
	}
}

/* SIGHUP: build a new generation from the file; if it is good and needs
 * no new sockets, workers accept with it from now on. Sessions keep the
 * generation they started with; a broken file changes nothing. */
static void reload(struct daemon *d)
{
	struct gen *g = NULL;
	char *errors = NULL, why[256];

	log_msg(LOG_LVL_INFO, "event=reloading file=%s", d->path);
	if (gen_build(d->path, d->gen, GEN_PROBE | GEN_LOG_LEVEL, &g, &errors) != 0) {
		log_errors("reload_failed", errors ? errors : "out of memory\n");
		log_msg(LOG_LVL_ERROR, "event=reload_failed message=\"configuration refused; "
		        "the previous one stays in use\"");
		free(errors);
		d->msrc.reloads_failed++;
		return;
	}
	if (gen_compatible(d->gen, g, why, sizeof why) != 0) {
		gen_apply_logging(d->gen);
		log_msg(LOG_LVL_ERROR, "event=reload_failed error=\"%s: needs a restart\" "
		        "message=\"configuration refused; the previous one stays in use\"", why);
		gen_unref(g);
		d->msrc.reloads_failed++;
		return;
	}
	for (unsigned i = 0; i < d->nworkers; i++)
		worker_set_gen(&d->workers[i], g);
	health_stop(d->health);
	d->health = health_start(&d->loop, g);
	gen_unref(d->gen);
	d->gen = g;
	d->msrc.reloads_ok++;
	log_msg(LOG_LVL_INFO, "event=reloaded generation=%u", g->id);
}

/* Closes what keeps the main loop running; it returns once they are. */
static void close_main(struct daemon *d)
{
	uv_timer_stop(&d->drain);
	if (!uv_is_closing((uv_handle_t *)&d->drain))
		uv_close((uv_handle_t *)&d->drain, NULL);
	for (int i = 0; i < 3; i++)
		if (!uv_is_closing((uv_handle_t *)&d->sig[i]))
			uv_close((uv_handle_t *)&d->sig[i], NULL);
	metrics_stop(d->metrics);
	d->metrics = NULL;
	metrics_stop(d->healthz);
	d->healthz = NULL;
	uv_timer_stop(&d->delay);
	if (!uv_is_closing((uv_handle_t *)&d->delay))
		uv_close((uv_handle_t *)&d->delay, NULL);
	health_stop(d->health);
	d->health = NULL;
}

/* While draining: once every worker is done, main is done too. */
static void on_drain(uv_timer_t *t)
{
	struct daemon *d = t->data;

	for (unsigned i = 0; i < d->nstarted; i++)
		if (!worker_done(&d->workers[i]))
			return;
	close_main(d);
}

/* Stops accepting and lets the workers drain (or, stopping already,
 * ends every session). */
static void stop_workers(struct daemon *d, const char *name)
{
	d->delaying = 0;
	uv_timer_stop(&d->delay);
	if (d->stopping) {
		log_msg(LOG_LVL_INFO, "event=stopping signal=%s message=\"ending every session now\"",
		        name);
	} else {
		log_msg(LOG_LVL_INFO, "event=stopping signal=%s grace_ms=%u message=\"no new "
		        "connections; sessions get the grace period to end\"", name,
		        (unsigned)d->gen->cfg->shutdown_grace_ms);
		uv_timer_start(&d->drain, on_drain, DRAIN_POLL_MS, DRAIN_POLL_MS);
	}
	for (unsigned i = 0; i < d->nstarted; i++)
		worker_stop(&d->workers[i], d->stopping);
	d->stopping = 1;
}

/* drain_delay is over: the load balancer has seen /healthz fail. */
static void on_delay(uv_timer_t *t)
{
	stop_workers(t->data, "SIGTERM");
}

/* SIGTERM/SIGINT: /healthz turns 503; after drain_delay (new sessions
 * still served meanwhile) the workers drain; another signal hurries each
 * step. SIGHUP: reload. */
static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;
	const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";

	if (signum == SIGHUP && (d->stopping || d->delaying)) {
		log_msg(LOG_LVL_WARN, "event=reload_failed message=\"stopping: SIGHUP ignored\"");
		return;
	}
	if (signum == SIGHUP) {
		reload(d);
		return;
	}
	d->msrc.draining = 1;
	if (!d->stopping && !d->delaying && d->gen->cfg->drain_delay_ms) {
		d->delaying = 1;
		log_msg(LOG_LVL_INFO, "event=stopping signal=%s drain_delay_ms=%u message=\"/healthz "
		        "says 503; new sessions still served until the delay ends\"", name,
		        (unsigned)d->gen->cfg->drain_delay_ms);
		uv_timer_start(&d->delay, on_delay, d->gen->cfg->drain_delay_ms, 0);
		return;
	}
	stop_workers(d, name);
}

/* Sockets for every worker, the limit table and the metrics endpoint:
 * everything that may need root. */
static int bind_all(struct daemon *d, char *err, size_t errlen)
{
	const struct cfg *c = d->gen->cfg;

	d->workers = calloc(c->workers, sizeof *d->workers);
	/* room for every connection's address, twice, and some blocked ones */
	d->limits = limit_new(2 * (size_t)c->max_connections + 4096);
	if (!d->workers || !d->limits) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < c->workers; i++) {
		if (worker_init(&d->workers[i], i, d->gen, d->limits, err, errlen) != 0)
			return -1;
		d->nworkers = i + 1;
	}
	d->msrc.workers = d->workers;
	d->msrc.nworkers = d->nworkers;
	d->msrc.gen = &d->gen;
	d->msrc.limits = d->limits;
	d->msrc.started = (int64_t)time(NULL);
	if (c->metrics_address.sa.ss_family &&
	    metrics_start(&d->metrics, &d->loop, &c->metrics_address, &d->msrc, 0, err, errlen) != 0)
		return -1;
	if (c->health_address.sa.ss_family &&
	    metrics_start(&d->healthz, &d->loop, &c->health_address, &d->msrc, 1, err, errlen) != 0)
		return -1;
	return 0;
}

/* Descriptors for max_connections (two each), listeners and some spare. */
static void check_fd_limit(const struct cfg *c)
{
	unsigned long have = 0, need = 0;
	char err[300];

	if (c->max_connections)
		need = 2UL * c->max_connections + (unsigned long)c->workers * c->nlisteners + 64;
	if (proc_fd_limit(need, &have, err, sizeof err) != 0)
		log_msg(LOG_LVL_WARN, "event=fd_limit limit=%lu needed=%lu message=\"%s\"", have,
		        need, err);
	else
		log_msg(LOG_LVL_DEBUG, "event=fd_limit limit=%lu needed=%lu", have, need);
}

/* From the first generation to running workers; -1 with a log line. */
static int startup(struct daemon *d)
{
	const struct cfg *c = d->gen->cfg;
	char err[600], q[700];

	check_fd_limit(c);
	if (bind_all(d, err, sizeof err) != 0)
		goto fail;
	if (c->pid_file) {
		if (proc_write_pid(c->pid_file, c->user, err, sizeof err) != 0)
			goto fail;
		d->pid_file = strdup(c->pid_file);
	}
	if (proc_drop(c, err, sizeof err) != 0)
		goto fail;
	if (c->user)
		log_msg(LOG_LVL_INFO, "event=privileges user=%s uid=%ld gid=%ld%s%s", c->user,
		        (long)getuid(), (long)getgid(), c->chroot_dir ? " chroot=" : "",
		        c->chroot_dir ? c->chroot_dir : "");
	for (unsigned i = 0; i < d->nworkers; i++) {
		if (worker_start(&d->workers[i]) != 0) {
			snprintf(err, sizeof err, "cannot start a worker thread");
			goto fail;
		}
		d->nstarted = i + 1;
	}
	return 0;
fail:
	log_msg(LOG_LVL_ERROR, "event=startup_failed error=%s", log_quote(q, sizeof q, err));
	return -1;
}

/* Logs what listens where. */
static void log_ready(const struct daemon *d)
{
	const struct cfg *c = d->gen->cfg;

	log_msg(LOG_LVL_INFO, "event=ready version=%s tls_library=\"%s\" workers=%u listeners=%zu",
	        MOAT_VERSION, tls_library_version(), c->workers, c->nlisteners);
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct cfg_listener *l = &c->listeners[i];
		log_msg(LOG_LVL_INFO, "event=listening listener=%s address=%s protocol=%s "
		        "tls=%s backend=%s", l->name, l->address.text, cfg_proto_name(l->protocol),
		        l->tls == CFG_TLS_IMPLICIT ? "implicit" : "starttls", l->backend_text);
	}
	if (c->metrics_address.sa.ss_family)
		log_msg(LOG_LVL_INFO, "event=listening listener=metrics address=%s",
		        c->metrics_address.text);
}

/* Runs the daemon until the workers are done; returns the exit status. */
static int run(struct daemon *d)
{
	static const int signums[3] = { SIGTERM, SIGINT, SIGHUP };
	int status = 0;

	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&d->loop);
	for (int i = 0; i < 3; i++) {
		uv_signal_init(&d->loop, &d->sig[i]);
		d->sig[i].data = d;
		uv_signal_start(&d->sig[i], on_signal, signums[i]);
	}
	uv_timer_init(&d->loop, &d->drain);
	d->drain.data = d;
	uv_timer_init(&d->loop, &d->delay);
	d->delay.data = d;
	if (startup(d) != 0) {
		for (unsigned i = 0; i < d->nstarted; i++)
			worker_stop(&d->workers[i], 1);
		close_main(d);
		status = 1;
	} else {
		log_ready(d);
		d->health = health_start(&d->loop, d->gen);
	}
	uv_run(&d->loop, UV_RUN_DEFAULT);
	for (unsigned i = 0; i < d->nworkers; i++) {
		int rc = i < d->nstarted ? worker_join(&d->workers[i]) : worker_discard(&d->workers[i]);
		if (rc != 0) {
			log_msg(LOG_LVL_ERROR, "event=shutdown worker=%u error=\"handles left open\"", i);
			status = 1;
		}
	}
	uv_loop_close(&d->loop);
	if (d->pid_file && unlink(d->pid_file) != 0)
		log_msg(LOG_LVL_DEBUG, "event=pid_file file=%s message=\"could not remove it\"",
		        d->pid_file);
	if (status == 0)
		log_msg(LOG_LVL_INFO, "event=stopped");
	return status;
}

int main(int argc, char **argv)
{
	struct daemon d;
	const char *path = NULL;
	int check = 0, opt, status;
	char err[600], *errors = NULL;

	memset(&d, 0, sizeof d);
	while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': check = 1; break;
		case 'V':
			printf("moat %s (%s)\n", MOAT_VERSION, tls_library_version());
			return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (tls_global_init(err, sizeof err) != 0) {
		fprintf(stderr, "moat: %s\n", err);
		return 1;
	}
	d.path = path;
	if (check)
		log_set_level(LOG_LVL_WARN);  /* -t: problems and warnings only */
	status = gen_build(path, NULL, check ? 0 : GEN_PROBE | GEN_LOG_LEVEL, &d.gen,
	                   &errors) == 0 ? 0 : 1;
	if (status != 0) {
		fputs(errors ? errors : "moat: out of memory\n", stderr);
	} else if (proc_check_root(d.gen->cfg, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		status = 1;
	} else if (check) {
		printf("%s: configuration OK\n", path);
	} else {
		status = run(&d);
	}
	free(errors);
	free(d.workers);
	free(d.pid_file);
	limit_free(d.limits);
	gen_unref(d.gen);
	tls_global_free();
	return status;
}
