/*
 * moat: TLS-terminating proxy for IMAP and POP3.
 *
 * main: command line, configuration, the TLS server context, the worker
 * threads, and signals. The main thread only waits for signals once the
 * workers run.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "gen.h"
#include "log.h"
#include "tls.h"
#include "version.h"
#include "worker.h"

struct daemon {
	const char *path;
	struct gen *gen;              /* the current generation (main's reference) */
	struct worker *workers;
	unsigned nworkers;            /* initialised workers */
	uv_loop_t loop;
	uv_signal_t sig[3];
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
	        "moat runs in the foreground and logs to stderr. SIGTERM or SIGINT\n"
	        "stop it: no new connections, sessions closed cleanly. SIGHUP reloads\n"
	        "the configuration, certificates and keys without closing sessions.\n");
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
		return;
	}
	if (gen_compatible(d->gen, g, why, sizeof why) != 0) {
		log_set_level((enum log_level)d->gen->cfg->log_level);
		log_msg(LOG_LVL_ERROR, "event=reload_failed error=\"%s: needs a restart\" "
		        "message=\"configuration refused; the previous one stays in use\"", why);
		gen_unref(g);
		return;
	}
	for (unsigned i = 0; i < d->nworkers; i++)
		worker_set_gen(&d->workers[i], g);
	gen_unref(d->gen);
	d->gen = g;
	log_msg(LOG_LVL_INFO, "event=reloaded generation=%u", g->id);
}

/* SIGTERM/SIGINT: ask workers to stop and let the main loop end. SIGHUP:
 * reload. */
static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;

	if (signum == SIGHUP) {
		reload(d);
		return;
	}
	log_msg(LOG_LVL_INFO, "event=stopping signal=%s", signum == SIGINT ? "SIGINT" : "SIGTERM");
	for (unsigned i = 0; i < d->nworkers; i++)
		worker_stop(&d->workers[i]);
	for (int i = 0; i < 3; i++)
		uv_close((uv_handle_t *)&d->sig[i], NULL);
}

/* Binds every listener for every worker; -1 on the first failure. */
static int start_workers(struct daemon *d)
{
	char err[512];
	unsigned i;

	d->workers = calloc(d->gen->cfg->workers, sizeof *d->workers);
	if (!d->workers)
		return -1;
	for (i = 0; i < d->gen->cfg->workers; i++) {
		if (worker_init(&d->workers[i], i, d->gen, err, sizeof err) != 0) {
			log_msg(LOG_LVL_ERROR, "event=startup_failed error=\"%s\"", err);
			return -1;
		}
		d->nworkers = i + 1;
	}
	for (i = 0; i < d->nworkers; i++) {
		if (worker_start(&d->workers[i]) != 0) {
			log_msg(LOG_LVL_ERROR, "event=startup_failed error=\"cannot start thread\"");
			return -1;
		}
	}
	return 0;
}

/* Runs the daemon until a stop signal; returns the exit status. */
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
	if (start_workers(d) != 0) {
		for (unsigned i = 0; i < d->nworkers; i++)
			worker_stop(&d->workers[i]);
		for (int i = 0; i < 3; i++)
			uv_close((uv_handle_t *)&d->sig[i], NULL);
		status = 1;
	} else {
		log_msg(LOG_LVL_INFO, "event=ready version=%s tls_library=\"%s\" workers=%u listeners=%zu",
		        MOAT_VERSION, tls_library_version(), d->gen->cfg->workers,
		        d->gen->cfg->nlisteners);
		for (size_t i = 0; i < d->gen->cfg->nlisteners; i++) {
			const struct cfg_listener *l = &d->gen->cfg->listeners[i];
			log_msg(LOG_LVL_INFO, "event=listening listener=%s address=%s protocol=%s "
			        "tls=%s backend=%s", l->name, l->address.text,
			        cfg_proto_name(l->protocol),
			        l->tls == CFG_TLS_IMPLICIT ? "implicit" : "starttls", l->backend.text);
		}
	}
	uv_run(&d->loop, UV_RUN_DEFAULT);
	for (unsigned i = 0; i < d->nworkers; i++) {
		if (worker_join(&d->workers[i]) != 0) {
			log_msg(LOG_LVL_ERROR, "event=shutdown worker=%u error=\"handles left open\"", i);
			status = 1;
		}
	}
	uv_loop_close(&d->loop);
	if (status == 0)
		log_msg(LOG_LVL_INFO, "event=stopped");
	return status;
}

int main(int argc, char **argv)
{
	struct daemon d;
	const char *path = NULL;
	int check = 0, opt, status;
	char err[256], *errors = NULL;

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
	if (status != 0)
		fputs(errors ? errors : "moat: out of memory\n", stderr);
	else if (check)
		printf("%s: configuration OK\n", path);
	else
		status = run(&d);
	free(errors);
	free(d.workers);
	gen_unref(d.gen);
	tls_global_free();
	return status;
}
