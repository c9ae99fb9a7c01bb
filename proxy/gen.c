/* gen: see gen.h. */
#include "gen.h"

#include <stdarg.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imap.h"
#include "log.h"
#include "pop3.h"
#include "probe.h"
#include "route.h"
#include "tkey.h"

/* Problems found while building, as cfg reports them. */
struct report {
	const char *path;
	FILE *f;
	char *text;
	size_t size;
	int n;
};

__attribute__((format(printf, 3, 4)))
static void report(struct report *r, int line, const char *fmt, ...)
{
	va_list ap;

	if (line > 0)
		fprintf(r->f, "%s:%d: ", r->path, line);
	else
		fprintf(r->f, "%s: ", r->path);
	va_start(ap, fmt);
	vfprintf(r->f, fmt, ap);
	va_end(ap);
	fputc('\n', r->f);
	r->n++;
}

void gen_apply_logging(const struct gen *g)
{
	const struct log_settings ls = {
		(enum log_level)g->cfg->log_level, g->cfg->log_format == CFG_LOG_JSON,
		g->cfg->log_target == CFG_LOG_SYSLOG, (int)g->cfg->syslog_facility,
	};

	log_apply(&ls);
}

struct gen *gen_ref(struct gen *g)
{
	atomic_fetch_add(&g->refs, 1);
	return g;
}

/* Frees everything a generation holds; runs when the last reference goes. */
static void gen_free(struct gen *g)
{
	if (g->rt) {
		for (size_t i = 0; i < g->cfg->nlisteners; i++) {
			tls_server_free(g->rt[i].tls);
			tls_tickets_unref(g->rt[i].tickets);
		}
	}
	if (g->certs)
		for (size_t i = 0; i < g->cfg->ncerts; i++)
			tls_cert_free(g->certs[i]);   /* wipes the keys */
	free(g->certs);
	free(g->rt);
	for (size_t i = 0; g->backends && i < g->cfg->nbackends; i++)
		tls_server_free(g->backends[i].tls);
	free(g->backends);
	route_map_free(g->routes);
	tls_tickets_unref(g->file_tickets);
	free(g->slot);
	cfg_free(g->cfg);
	free(g);
}

void gen_unref(struct gen *g)
{
	if (g && atomic_fetch_sub(&g->refs, 1) == 1)
		gen_free(g);
}

/* The limits of the config, as limit.c takes them. */
static void set_limits(struct gen *g)
{
	const struct cfg *c = g->cfg;

	g->limits.max_connections = c->max_connections;
	g->limits.max_per_ip = c->max_connections_per_ip;
	g->limits.rate_per_ip = c->connection_rate_per_ip.count;
	g->limits.rate_window_ms = c->connection_rate_per_ip.window_ms;
	g->limits.auth_fail_limit = c->auth_fail_limit.count;
	g->limits.auth_fail_window_ms = c->auth_fail_limit.window_ms;
	g->limits.auth_block_ms = c->auth_block_ms;
	g->limits.ipv6_prefix = c->ipv6_prefix;
}

/* Whether a key file others may read is refused (or only warned of):
 * key_permissions, with auto meaning strict when started as root. */
static int strict_perms(const struct cfg *c)
{
	return c->key_permissions == CFG_KEYPERM_STRICT ||
	       (c->key_permissions == CFG_KEYPERM_AUTO && geteuid() == 0);
}

/* Logs what a certificate is and warns when it expires soon or its key
 * file is open to others; the latter is an error where the policy says. */
static void check_cert(struct report *r, const struct cfg *c, const struct cfg_cert *cc,
                       const tls_cert *ct)
{
	char names[512], qnames[600], subj[300], file[300];
	size_t n = 0;
	time_t now = time(NULL), end = tls_cert_not_after(ct);
	long days = (long)((end - now) / 86400);
	unsigned mode = tls_cert_key_mode(ct);
	struct tm tm;
	char when[32];

	names[0] = '\0';
	for (size_t i = 0; tls_cert_name(ct, i) && n < sizeof names; i++)
		n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? "," : "",
		                      tls_cert_name(ct, i));
	gmtime_r(&end, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	log_msg(LOG_LVL_INFO, "event=certificate name=%s file=%s subject=%s names=%s key=\"%s\" "
	        "not_after=%s days_left=%ld", cc->name, log_quote(file, sizeof file, cc->certificate),
	        log_quote(subj, sizeof subj, tls_cert_subject(ct)),
	        log_quote(qnames, sizeof qnames, names), tls_cert_key_type(ct), when, days);
	if (end <= now)
		log_msg(LOG_LVL_ERROR, "event=certificate_expired name=%s file=%s not_after=%s "
		        "message=\"clients will refuse it: renew it, then reload\"", cc->name,
		        file, when);
	else if (days < (long)c->expiry_warning_days)
		log_msg(LOG_LVL_WARN, "event=certificate_expiring name=%s file=%s not_after=%s "
		        "days_left=%ld", cc->name, file, when, days);
	if ((mode & 077) == 0)
		return;
	if (strict_perms(c))
		report(r, cc->key_line, "key %s may be read or changed by group or others "
		       "(mode %04o): chmod 600 it, or set key_permissions = warn in [tls]",
		       cc->key, mode);
	else
		log_msg(LOG_LVL_WARN, "event=key_permissions name=%s key=%s mode=%04o "
		        "message=\"group or others may read the private key; chmod 600 it\"",
		        cc->name, cc->key, mode);
}

/* A loader's "FILE:LINE: message" lines, each reported at the config
 * line of the key that named the file; NULL errs means memory ran out. */
static void report_lines(struct report *r, int line, const char *key, char *errs)
{
	for (char *l = errs, *nl; l && *l; l = nl) {
		nl = strchr(l, '\n');
		if (nl)
			*nl++ = '\0';
		report(r, line, "%s: %s", key, l);
	}
	if (!errs)
		report(r, line, "%s: out of memory", key);
}

/* ticket_key_file: the keys every instance shares, read again on each
 * reload; held only by tls.c (its ticket contexts and one copy to put
 * them in again before mbedTLS would rotate them; copies here wiped). A
 * file others may read is treated like a private key file. */
static void load_ticket_keys(struct report *r, struct gen *g)
{
	const struct cfg *c = g->cfg;
	struct tkeys k;
	uint8_t raw[TKEY_MAX * TLS_TICKET_KEY_BYTES];
	char *errs = NULL, err[300];
	struct stat st;

	if (!c->ticket_key_file || !c->session_tickets)
		return;
	if (tkey_load(c->ticket_key_file, &k, &errs) != 0) {
		report_lines(r, c->ticket_key_file_line, "ticket_key_file", errs);
		free(errs);
		return;
	}
	if (stat(c->ticket_key_file, &st) == 0 && (st.st_mode & 077)) {
		if (strict_perms(c))
			report(r, c->ticket_key_file_line, "ticket key file %s may be read by group or "
			       "others (mode %04o): chmod 600 it, or set key_permissions = warn",
			       c->ticket_key_file, (unsigned)(st.st_mode & 07777));
		else
			log_msg(LOG_LVL_WARN, "event=key_permissions ticket_key_file=%s mode=%04o "
			        "message=\"group or others may read the ticket keys; chmod 600 it\"",
			        c->ticket_key_file, (unsigned)(st.st_mode & 07777));
	}
	for (size_t i = 0; i < k.n; i++) {
		memcpy(raw + i * TLS_TICKET_KEY_BYTES, k.v[i].name, TKEY_NAME_LEN);
		memcpy(raw + i * TLS_TICKET_KEY_BYTES + TKEY_NAME_LEN, k.v[i].key, TKEY_KEY_LEN);
	}
	g->file_tickets = tls_tickets_from_keys(raw, k.n, c->ticket_lifetime_ms / 1000, err,
	                                        sizeof err);
	if (!g->file_tickets)
		report(r, c->ticket_key_file_line, "ticket_key_file: %s", err);
	else
		log_msg(LOG_LVL_INFO, "event=ticket_keys file=%s keys=%zu", c->ticket_key_file, k.n);
	explicit_bzero(raw, sizeof raw);
	tkey_wipe(&k);
}

/* Loads every certificate and key of the config. */
static void load_certs(struct report *r, struct gen *g)
{
	const struct cfg *c = g->cfg;
	char err[600];

	for (size_t i = 0; i < c->ncerts; i++) {
		const struct cfg_cert *cc = &c->certs[i];
		int rc = tls_cert_load(&g->certs[i], cc->certificate, cc->key, err, sizeof err);
		if (rc != 0) {
			report(r, rc == TLS_BAD_KEY ? cc->key_line : cc->certificate_line, "%s", err);
			continue;
		}
		check_cert(r, c, cc, g->certs[i]);
	}
}

/* The previous generation's listener by name, or NULL. */
static const struct cfg_listener *prev_listener(const struct gen *prev, const char *name,
                                                size_t *idx)
{
	for (size_t j = 0; prev && j < prev->cfg->nlisteners; j++) {
		if (strcmp(prev->cfg->listeners[j].name, name) == 0) {
			*idx = j;
			return &prev->cfg->listeners[j];
		}
	}
	return NULL;
}

/* Ticket keys for listener i: the previous generation's when tickets were
 * on with the same lifetime for the same protocol (so clients keep
 * resuming across reloads), else new ones; none when tickets are off. */
static int listener_tickets(struct report *r, struct gen *g, const struct gen *prev, size_t i)
{
	const struct cfg *c = g->cfg;
	const struct cfg_listener *l = &c->listeners[i], *old;
	size_t j;
	char err[200];

	if (!c->session_tickets)
		return 0;
	if (g->file_tickets) {
		g->rt[i].tickets = tls_tickets_ref(g->file_tickets);
		return 0;
	}
	old = prev_listener(prev, l->name, &j);
	if (old && old->protocol == l->protocol && prev->rt[j].tickets &&
	    prev->rt[j].tickets != prev->file_tickets &&
	    tls_tickets_lifetime(prev->rt[j].tickets) == c->ticket_lifetime_ms / 1000) {
		g->rt[i].tickets = tls_tickets_ref(prev->rt[j].tickets);
		return 0;
	}
	g->rt[i].tickets = tls_tickets_new(c->ticket_lifetime_ms / 1000, err, sizeof err);
	if (!g->rt[i].tickets) {
		report(r, l->line, "[listener %s] %s", l->name, err);
		return -1;
	}
	return 0;
}

/* [tls]'s policy, for servers and backend clients alike. */
static void make_policy(const struct cfg *c, struct tls_policy *pol)
{
	memset(pol, 0, sizeof *pol);
	pol->min_tls13 = c->min_tls13;
	memcpy(pol->tls12_suites, c->tls12_ciphers, sizeof pol->tls12_suites);
	memcpy(pol->tls13_suites, c->tls13_ciphers, sizeof pol->tls13_suites);
	memcpy(pol->groups, c->groups, sizeof pol->groups);
	pol->prefer_server = c->prefer_server_ciphers;
}

/* Builds listener i's TLS server context from the loaded certificates. */
static void listener_tls(struct report *r, struct gen *g, const struct gen *prev, size_t i)
{
	const struct cfg *c = g->cfg;
	const struct cfg_listener *l = &c->listeners[i];
	struct tls_policy pol;
	struct tls_listener_opts o;
	tls_cert **certs;
	char err[600];

	make_policy(c, &pol);
	if (listener_tickets(r, g, prev, i) < 0)
		return;
	certs = calloc(l->ncerts, sizeof *certs);
	if (!certs) {
		report(r, l->line, "out of memory");
		return;
	}
	for (size_t k = 0; k < l->ncerts; k++)
		certs[k] = g->certs[l->cert_idx[k]];
	memset(&o, 0, sizeof o);
	o.alpn = cfg_proto_name(l->protocol);
	o.certs = certs;
	o.ncerts = l->ncerts;
	o.client_auth = (enum tls_client_auth)l->client_certificate;
	o.client_ca = l->client_ca;
	o.tickets = g->rt[i].tickets;
	if (tls_server_new(&g->rt[i].tls, &pol, &o, err, sizeof err) != 0)
		report(r, l->client_certificate != CFG_CLIENT_NONE && strstr(err, "client CA")
		       ? l->client_ca_line : l->line, "[listener %s] %s", l->name, err);
	free(certs);
}

/* Fills rt->caps with what moat passes through of the backend's
 * capabilities: the listener's own list, the backend's answer, or, when
 * the backend does not answer, what the previous generation had. */
static void listener_caps(const struct cfg *cf, const struct cfg_listener *l,
                          struct listener_rt *rt, const struct gen *prev)
{
	char caps[DLG_CAPS_MAX], err[160], shown[DLG_CAPS_MAX], q[DLG_CAPS_MAX + 200], *c;
	int pop3 = l->protocol == CFG_PROTO_POP3, rc = 0;
	enum cfg_forward fwd = l->nbk ? cf->backends[l->bk[0]].forward : CFG_FWD_NONE;
	int pv = fwd == CFG_FWD_PROXY_V1 ? 1 : fwd == CFG_FWD_PROXY_V2 ? 2 : 0;
	const struct cfg_listener *old;
	size_t j;

	if (l->capabilities)
		snprintf(caps, sizeof caps, "%s", l->capabilities);
	else if (l->nbk && cf->backends[l->bk[0]].tls == CFG_BTLS_IMPLICIT)
		rc = -1, snprintf(err, sizeof err, "the backend speaks TLS from the first byte: "
		                  "not probed (set capabilities to advertise more)");
	else if (pop3)
		rc = probe_pop3_caps(&l->backend, pv, l->connect_timeout_ms, caps, sizeof caps, err,
		                     sizeof err);
	else
		rc = probe_imap_caps(&l->backend, pv, l->connect_timeout_ms, caps, sizeof caps, err,
		                     sizeof err);
	rt->caps_probed = !l->capabilities && rc == 0;
	if (rc != 0) {
		old = prev_listener(prev, l->name, &j);
		if (old && prev->rt[j].caps_probed && old->protocol == l->protocol &&
		    strcmp(old->backend.text, l->backend.text) == 0) {
			log_msg(LOG_LVL_WARN, "event=probe_failed listener=%s backend=%s error=%s "
			        "message=\"keeping the capabilities the backend gave before\"",
			        l->name, l->backend.text, log_quote(q, sizeof q, err));
			memcpy(rt->caps, prev->rt[j].caps, sizeof rt->caps);
			rt->caps_probed = 1;
			return;
		}
		log_msg(LOG_LVL_WARN, "event=probe_failed listener=%s backend=%s error=%s "
		        "message=\"advertising moat's own capabilities only\"",
		        l->name, l->backend.text, log_quote(q, sizeof q, err));
		caps[0] = '\0';
	}
	if (pop3)
		pop3_caps_filter(caps, strlen(caps), rt->caps, sizeof rt->caps);
	else
		imap_caps_filter(caps, strlen(caps), 1, rt->caps, sizeof rt->caps);
	/* POP3's list is CRLF-terminated lines: show them on one line */
	c = shown;
	for (const char *from = rt->caps; *from && c < shown + sizeof shown - 1; from++)
		if (*from != '\r')
			*c++ = *from == '\n' ? ',' : *from;
	if (c > shown && c[-1] == ',')
		c--;
	*c = '\0';
	log_msg(LOG_LVL_INFO, "event=capabilities listener=%s passthrough=%s", l->name,
	        log_quote(q, sizeof q, shown));
}

/* Each listener's dialogue settings, and its capabilities when probing. */
static void listener_dialogue(struct gen *g, const struct gen *prev, int flags, size_t i)
{
	const struct cfg_listener *l = &g->cfg->listeners[i];
	struct listener_rt *rt = &g->rt[i];

	rt->preauth = !l->transparent;
	rt->dlg.greeting = l->greeting;
	rt->dlg.caps_extra = rt->caps;
	rt->dlg.max_command = l->max_command;
	rt->dlg.max_auth_failures = l->max_auth_failures;
	rt->dlg.starttls = l->tls == CFG_TLS_STARTTLS;
	if (rt->preauth && (flags & GEN_PROBE))
		listener_caps(g->cfg, l, rt, prev);
}

/* Backends that kept their name and addresses keep their health; the
 * route map is read (its backends are the [backend NAME] sections, which
 * come first in cfg->backends). */
static void backends_state(struct report *r, struct gen *g, const struct gen *prev)
{
	const struct cfg *c = g->cfg;
	const char **names;
	size_t nnamed = 0;
	char *errs = NULL;

	for (size_t i = 0; i < c->nbackends; i++) {
		const struct cfg_backend *b = &c->backends[i];
		for (size_t j = 0; prev && j < prev->cfg->nbackends; j++) {
			const struct cfg_backend *o = &prev->cfg->backends[j];
			if (strcmp(o->name, b->name) != 0)
				continue;
			for (int pr = 0; pr < 2; pr++)
				if (strcmp(o->addr[pr].text, b->addr[pr].text) == 0)
					atomic_store(&g->backends[i].down[pr],
					             atomic_load(&prev->backends[j].down[pr]));
			break;
		}
		if (!b->is_inline)
			nnamed = i + 1;
		if (b->tls != CFG_BTLS_NONE) {
			struct tls_policy pol;
			char err[600];
			make_policy(c, &pol);
			if (tls_client_new(&g->backends[i].tls, &pol, b->ca, err, sizeof err) != 0)
				report(r, b->tls_line, "[backend %s] %s", b->name, err);
		}
		for (int pr = 0; pr < 2; pr++)
			if (b->insecure && b->addr[pr].sa.ss_family && !cfg_addr_is_loopback(&b->addr[pr]))
				log_msg(LOG_LVL_WARN, "event=insecure_backend backend=%s address=%s "
				        "message=\"plaintext to another host: passwords cross the network "
				        "in clear\"", b->name, b->addr[pr].text);
	}
	if (!c->route_map)
		return;
	names = calloc(nnamed + 1, sizeof *names);
	if (!names) {
		report(r, 0, "out of memory");
		return;
	}
	for (size_t i = 0; i < nnamed; i++)
		names[i] = c->backends[i].name;
	if (route_map_load(c->route_map, names, nnamed, &g->routes, &errs) != 0) {
		report_lines(r, c->route_map_line, "route_map", errs);
	} else {
		log_msg(LOG_LVL_INFO, "event=route_map file=%s entries=%zu", c->route_map,
		        route_map_entries(g->routes));
	}
	free(errs);
	free(names);
}

/* Socket i serves the listener with the name it had at startup. */
static int map_slots(struct gen *g, const struct gen *prev)
{
	size_t n = g->cfg->nlisteners;

	g->slot = calloc(n, sizeof *g->slot);
	if (!g->slot)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *name = prev && i < prev->cfg->nlisteners
		                   ? prev->cfg->listeners[prev->slot[i]].name : NULL;
		g->slot[i] = i;
		for (size_t j = 0; name && j < n; j++)
			if (strcmp(g->cfg->listeners[j].name, name) == 0)
				g->slot[i] = j;
	}
	return 0;
}

int gen_build(const char *path, const struct gen *prev, int flags, struct gen **out,
              char **errors)
{
	struct report r = { path, NULL, NULL, 0, 0 };
	struct gen *g = calloc(1, sizeof *g);
	struct log_settings before;

	*out = NULL;
	*errors = NULL;
	if (!g) {
		*errors = strdup("out of memory\n");
		return -1;
	}
	atomic_init(&g->refs, 1);
	g->id = prev ? prev->id + 1 : 1;
	if (cfg_load(path, &g->cfg, errors) != 0) {
		free(g);
		return -1;
	}
	log_current(&before);
	if (flags & GEN_LOG_LEVEL)
		gen_apply_logging(g);
	set_limits(g);
	r.f = open_memstream(&r.text, &r.size);
	g->certs = calloc(g->cfg->ncerts, sizeof *g->certs);
	g->rt = calloc(g->cfg->nlisteners, sizeof *g->rt);
	g->backends = calloc(g->cfg->nbackends + 1, sizeof *g->backends);
	if (!r.f || !g->certs || !g->rt || !g->backends) {
		if (r.f)
			fclose(r.f);
		free(r.text);
		gen_free(g);
		*errors = strdup("out of memory\n");
		return -1;
	}
	load_certs(&r, g);
	load_ticket_keys(&r, g);
	backends_state(&r, g, prev);
	for (size_t i = 0; r.n == 0 && i < g->cfg->nlisteners; i++)
		listener_tls(&r, g, prev, i);
	for (size_t i = 0; r.n == 0 && i < g->cfg->nlisteners; i++)
		listener_dialogue(g, prev, flags, i);
	if (r.n == 0 && map_slots(g, prev) < 0)
		report(&r, 0, "out of memory");
	fclose(r.f);
	if (r.n) {
		*errors = r.text;
		gen_free(g);
		log_apply(&before);             /* a refused file changes nothing */
		return -1;
	}
	free(r.text);
	*out = g;
	return 0;
}

/* Used by gen_compatible(): old's listener using socket i. */
static const struct cfg_listener *socket_listener(const struct gen *g, size_t i)
{
	return &g->cfg->listeners[g->slot[i]];
}

int gen_compatible(const struct gen *old, const struct gen *g, char *why, size_t len)
{
	const struct cfg *a = old->cfg, *b = g->cfg;

	if (a->workers != b->workers) {
		snprintf(why, len, "workers changed (%u to %u)", a->workers, b->workers);
		return -1;
	}
	if (a->buffer_size != b->buffer_size) {
		snprintf(why, len, "buffer_size changed");
		return -1;
	}
	if (a->nlisteners != b->nlisteners) {
		snprintf(why, len, "listeners were added or removed");
		return -1;
	}
	for (size_t i = 0; i < a->nlisteners; i++) {
		const struct cfg_listener *x = socket_listener(old, i), *y = socket_listener(g, i);
		if (strcmp(x->name, y->name) != 0) {
			snprintf(why, len, "[listener %s] is gone or renamed", x->name);
			return -1;
		}
		if (strcmp(x->address.text, y->address.text) != 0) {
			snprintf(why, len, "[listener %s] address changed (%s to %s)", x->name,
			         x->address.text, y->address.text);
			return -1;
		}
	}
	return 0;
}
