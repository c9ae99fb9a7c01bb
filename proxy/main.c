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

#include "cfg.h"
#include "imap.h"
#include "log.h"
#include "pop3.h"
#include "probe.h"
#include "tls.h"
#include "version.h"
#include "worker.h"

struct daemon {
	struct cfg *cfg;
	tls_server *tls;
	struct listener_rt *rt;       /* one per listener */
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
	        "  -t       check the configuration, certificates and keys, then exit\n"
	        "  -V       print the version and the mbedTLS version, then exit\n"
	        "  -h       print this help, then exit\n"
	        "\n"
	        "moat runs in the foreground and logs to stderr. SIGTERM or SIGINT\n"
	        "stop it: no new connections, sessions closed cleanly.\n");
}

/* Loads the config and the TLS material; prints every problem. */
static int load(struct daemon *d, const char *path)
{
	char *errors = NULL, err[512];
	int rc, bad = 0;

	if (cfg_load(path, &d->cfg, &errors) != 0) {
		fputs(errors ? errors : "moat: configuration failed\n", stderr);
		free(errors);
		return -1;
	}
	rc = tls_server_new(&d->tls, d->cfg->certificate, d->cfg->key, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "%s:%d: %s\n", path,
		        rc == TLS_BAD_KEY ? d->cfg->key_line : d->cfg->certificate_line, err);
		return -1;
	}
	for (size_t i = 0; i < d->cfg->nlisteners; i++) {
		const struct cfg_listener *l = &d->cfg->listeners[i];
		if (l->tls == CFG_TLS_STARTTLS && l->transparent) {
			fprintf(stderr, "%s:%d: [listener %s] transparent = yes needs tls = implicit: "
			        "moat must answer STARTTLS itself\n", path, l->line, l->name);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

/* SIGTERM/SIGINT: ask workers to stop and let the main loop end. SIGHUP:
 * nothing to reload yet, say so. */
static void on_signal(uv_signal_t *h, int signum)
{
	struct daemon *d = h->data;

	if (signum == SIGHUP) {
		log_msg(LOG_LVL_WARN, "event=reload_unsupported "
		        "message=\"SIGHUP ignored: restart moat to apply a new configuration\"");
		return;
	}
	log_msg(LOG_LVL_INFO, "event=stopping signal=%s", signum == SIGINT ? "SIGINT" : "SIGTERM");
	for (unsigned i = 0; i < d->nworkers; i++)
		worker_stop(&d->workers[i]);
	for (int i = 0; i < 3; i++)
		uv_close((uv_handle_t *)&d->sig[i], NULL);
}

/* Fills rt->caps with what moat passes through of the backend's
 * capabilities: the listener's own list, or the backend's answer. */
static void listener_caps(const struct cfg_listener *l, struct listener_rt *rt)
{
	char caps[DLG_CAPS_MAX], err[160];
	int pop3 = l->protocol == CFG_PROTO_POP3, rc = 0;

	if (l->capabilities)
		snprintf(caps, sizeof caps, "%s", l->capabilities);
	else if (pop3)
		rc = probe_pop3_caps(&l->backend, l->connect_timeout_ms, caps, sizeof caps, err,
		                     sizeof err);
	else
		rc = probe_imap_caps(&l->backend, l->connect_timeout_ms, caps, sizeof caps, err,
		                     sizeof err);
	if (rc != 0) {
		log_msg(LOG_LVL_WARN, "event=probe_failed listener=%s backend=%s error=\"%s\" "
		        "message=\"advertising moat's own capabilities only\"",
		        l->name, l->backend.text, err);
		caps[0] = '\0';
	}
	if (pop3)
		pop3_caps_filter(caps, strlen(caps), rt->caps, sizeof rt->caps);
	else
		imap_caps_filter(caps, strlen(caps), 1, rt->caps, sizeof rt->caps);
}

/* Prepares each listener's dialogue settings and the capabilities it
 * passes through. */
static int prepare_listeners(struct daemon *d)
{
	d->rt = calloc(d->cfg->nlisteners, sizeof *d->rt);
	if (!d->rt)
		return -1;
	for (size_t i = 0; i < d->cfg->nlisteners; i++) {
		const struct cfg_listener *l = &d->cfg->listeners[i];
		struct listener_rt *rt = &d->rt[i];
		char shown[DLG_CAPS_MAX], *c;

		rt->preauth = !l->transparent;
		rt->dlg.greeting = l->greeting;
		rt->dlg.caps_extra = rt->caps;
		rt->dlg.max_command = l->max_command;
		rt->dlg.max_auth_failures = l->max_auth_failures;
		rt->dlg.starttls = l->tls == CFG_TLS_STARTTLS;
		if (!rt->preauth)
			continue;
		listener_caps(l, rt);
		/* POP3's list is CRLF-terminated lines: show them on one line */
		c = shown;
		for (const char *from = rt->caps; *from && c < shown + sizeof shown - 1; from++)
			if (*from != '\r')
				*c++ = *from == '\n' ? ',' : *from;
		if (c > shown && c[-1] == ',')
			c--;
		*c = '\0';
		log_msg(LOG_LVL_INFO, "event=capabilities listener=%s passthrough=\"%s\"",
		        l->name, shown);
	}
	return 0;
}

/* Binds every listener for every worker; -1 on the first failure. */
static int start_workers(struct daemon *d)
{
	char err[512];
	unsigned i;

	if (prepare_listeners(d) != 0)
		return -1;
	d->workers = calloc(d->cfg->workers, sizeof *d->workers);
	if (!d->workers)
		return -1;
	for (i = 0; i < d->cfg->workers; i++) {
		if (worker_init(&d->workers[i], i, d->cfg, d->tls, d->rt, err, sizeof err) != 0) {
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
		        MOAT_VERSION, tls_library_version(), d->cfg->workers, d->cfg->nlisteners);
		for (size_t i = 0; i < d->cfg->nlisteners; i++) {
			const struct cfg_listener *l = &d->cfg->listeners[i];
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
	char err[256];

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
	status = load(&d, path) == 0 ? 0 : 1;
	if (status == 0 && check)
		printf("%s: configuration OK\n", path);
	else if (status == 0) {
		log_set_level((enum log_level)d.cfg->log_level);
		status = run(&d);
	}
	free(d.workers);
	free(d.rt);
	tls_server_free(d.tls);
	cfg_free(d.cfg);
	tls_global_free();
	return status;
}
