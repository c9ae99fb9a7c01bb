/* metrics: see metrics.h. */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "version.h"

#define REQUEST_MAX 4096

struct mconn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	struct metrics *m;
	uint8_t peer[16];             /* the client's address, see peer_key() */
	uint64_t seq;                 /* accept order: lower is older */
	char req[REQUEST_MAX];
	size_t len;
	char *resp;                   /* set once answering: never evicted */
	int handles;                  /* open libuv handles */
	int closing;
};

struct metrics {
	uv_tcp_t listener;
	const struct metrics_src *src;
	struct mconn *conns[METRICS_CONNS];
	uint64_t seq;                 /* connections accepted */
	int stopping;
	int health_only;              /* [health]: GET /healthz and nothing else */
};

/* ---- the text ---- */

static const char *const hsfail_names[HSF_N] = {
	[HSF_TIMEOUT] = "timeout", [HSF_CLOSED] = "closed", [HSF_VERSION] = "version",
	[HSF_CIPHER] = "no_shared_cipher", [HSF_ALPN] = "alpn", [HSF_CLIENT_CERT] = "client_cert",
	[HSF_PROTOCOL] = "protocol",
};
static const char *const login_names[STL_N] = {
	[STL_OK] = "ok", [STL_FAILED] = "failed", [STL_UNAVAILABLE] = "unavailable",
	[STL_REFUSED] = "refused",
};
static const char *const limit_names[STLIM_N] = {
	[STLIM_TOTAL] = "max_connections", [STLIM_PER_IP] = "max_connections_per_ip",
	[STLIM_RATE] = "connection_rate_per_ip", [STLIM_AUTH] = "auth_fail_limit",
};

/* One counter of listener slot l, summed over the workers; the field is
 * found at the same offset in each worker's struct lstats. */
static uint64_t sum(const struct metrics_src *src, size_t l, size_t off)
{
	uint64_t t = 0;

	for (unsigned w = 0; w < src->nworkers; w++)
		t += stat_get((const atomic_uint_fast64_t *)
		              ((const char *)&src->workers[w].stats[l] + off));
	return t;
}

#define SUM(src, l, field) sum(src, l, offsetof(struct lstats, field))

/* Writes a metric's HELP and TYPE lines. */
static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newlines escaped. */
static void label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

/* Per-listener counters, one metric per call: field at off, or an
 * array of n at off with its label name and values. */
static void per_listener(FILE *f, const struct metrics_src *src, const char *name,
                         size_t off, const char *lname, const char *const *lvals, size_t n)
{
	const struct gen *g = *src->gen;

	for (size_t i = 0; i < g->cfg->nlisteners; i++) {
		const char *ln = g->cfg->listeners[g->slot[i]].name;
		if (!lname) {
			fprintf(f, "%s{listener=\"%s\"} %llu\n", name, ln,
			        (unsigned long long)sum(src, i, off));
			continue;
		}
		for (size_t k = 0; k < n; k++)
			fprintf(f, "%s{listener=\"%s\",%s=\"%s\"} %llu\n", name, ln, lname, lvals[k],
			        (unsigned long long)sum(src, i, off + k * sizeof(atomic_uint_fast64_t)));
	}
}

/* TLS sessions by version and suite: only the combinations seen. */
static void tls_sessions(FILE *f, const struct metrics_src *src)
{
	const struct gen *g = *src->gen;

	for (size_t i = 0; i < g->cfg->nlisteners; i++) {
		const char *ln = g->cfg->listeners[g->slot[i]].name;
		for (int v = 0; v < 2; v++) {
			for (unsigned k = 0; k < STAT_SUITES; k++) {
				uint64_t n = SUM(src, i, tls[v][k]);
				const char *suite = tls_suite_name(tls_suite_at(k));
				if (n == 0)
					continue;
				fprintf(f, "moat_tls_sessions_total{listener=\"%s\",version=\"TLSv1.%d\","
				        "cipher=\"%s\"} %llu\n", ln, v ? 3 : 2, suite ? suite : "other",
				        (unsigned long long)n);
			}
		}
	}
}

/* Each certificate's days to expiry (negative once expired). */
static void certificates(FILE *f, const struct metrics_src *src)
{
	const struct gen *g = *src->gen;
	time_t now = time(NULL);

	head(f, "moat_certificate_expiry_days", "gauge",
	     "Days until the certificate's notAfter (negative: expired).");
	for (size_t i = 0; i < g->cfg->ncerts; i++) {
		double days = (double)(tls_cert_not_after(g->certs[i]) - now) / 86400.0;
		fprintf(f, "moat_certificate_expiry_days{certificate=\"%s\",file=\"",
		        g->cfg->certs[i].name);
		label(f, g->cfg->certs[i].certificate);
		fprintf(f, "\"} %.3f\n", days);
	}
}

/* Each backend address: up or down by its checks, and the sessions on it. */
static void backends(FILE *f, const struct metrics_src *src)
{
	const struct gen *g = *src->gen;

	head(f, "moat_backend_up", "gauge",
	     "1 while the backend address passes its health checks (or has none), else 0.");
	for (size_t i = 0; i < g->cfg->nbackends; i++)
		for (int pr = 0; pr < 2; pr++) {
			if (!g->cfg->backends[i].addr[pr].sa.ss_family)
				continue;
			fprintf(f, "moat_backend_up{backend=\"");
			label(f, g->cfg->backends[i].name);
			fprintf(f, "\",protocol=\"%s\"} %d\n", cfg_proto_name((enum cfg_proto)pr),
			        !atomic_load(&g->backends[i].down[pr]));
		}
	head(f, "moat_backend_sessions", "gauge",
	     "Sessions connected to the backend now (this configuration's).");
	for (size_t i = 0; i < g->cfg->nbackends; i++) {
		fprintf(f, "moat_backend_sessions{backend=\"");
		label(f, g->cfg->backends[i].name);
		fprintf(f, "\"} %u\n", atomic_load(&g->backends[i].conns));
	}
}

char *metrics_render(const struct metrics_src *src, size_t *len)
{
	char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);
	const struct gen *g = *src->gen;

	if (!f)
		return NULL;
	head(f, "moat_info", "gauge", "moat's version and TLS library.");
	fprintf(f, "moat_info{version=\"%s\",tls_library=\"%s\"} 1\n", MOAT_VERSION,
	        tls_library_version());
	head(f, "moat_start_time_seconds", "gauge", "When moat started (Unix time).");
	fprintf(f, "moat_start_time_seconds %lld\n", (long long)src->started);
	head(f, "moat_config_generation", "gauge", "The configuration in use (1, then +1 per reload).");
	fprintf(f, "moat_config_generation %u\n", g->id);
	head(f, "moat_reloads_total", "counter", "SIGHUP reloads by result.");
	fprintf(f, "moat_reloads_total{result=\"ok\"} %llu\nmoat_reloads_total{result=\"failed\"} %llu\n",
	        (unsigned long long)src->reloads_ok, (unsigned long long)src->reloads_failed);
	head(f, "moat_connections_open", "gauge", "Connections open now, all listeners.");
	fprintf(f, "moat_connections_open %u\n", limit_total(src->limits));

	head(f, "moat_connections_accepted_total", "counter", "Connections accepted.");
	per_listener(f, src, "moat_connections_accepted_total", offsetof(struct lstats, accepted),
	             NULL, NULL, 0);
	head(f, "moat_connections_current", "gauge", "Connections open now.");
	for (size_t i = 0; i < g->cfg->nlisteners; i++)
		fprintf(f, "moat_connections_current{listener=\"%s\"} %llu\n",
		        g->cfg->listeners[g->slot[i]].name,
		        (unsigned long long)(SUM(src, i, accepted) - SUM(src, i, closed)));
	head(f, "moat_connections_refused_total", "counter",
	     "Connections or logins refused by a limit.");
	per_listener(f, src, "moat_connections_refused_total", offsetof(struct lstats, refused),
	             "limit", limit_names, STLIM_N);
	head(f, "moat_tls_handshakes_total", "counter", "TLS handshakes completed.");
	per_listener(f, src, "moat_tls_handshakes_total", offsetof(struct lstats, handshakes),
	             NULL, NULL, 0);
	head(f, "moat_tls_handshake_failures_total", "counter", "TLS handshakes failed, by reason.");
	per_listener(f, src, "moat_tls_handshake_failures_total", offsetof(struct lstats, hsfail),
	             "reason", hsfail_names, HSF_N);
	head(f, "moat_tls_resumed_total", "counter", "TLS handshakes that resumed a session.");
	per_listener(f, src, "moat_tls_resumed_total", offsetof(struct lstats, resumed), NULL,
	             NULL, 0);
	head(f, "moat_tls_sessions_total", "counter", "TLS handshakes completed, by version and suite.");
	tls_sessions(f, src);
	head(f, "moat_logins_total", "counter", "Login attempts, by result.");
	per_listener(f, src, "moat_logins_total", offsetof(struct lstats, logins), "result",
	             login_names, STL_N);
	head(f, "moat_backend_errors_total", "counter", "Backends unreachable, slow or broken.");
	per_listener(f, src, "moat_backend_errors_total", offsetof(struct lstats, backend_errors),
	             NULL, NULL, 0);
	head(f, "moat_bytes_total", "counter", "Plaintext bytes relayed, by direction.");
	per_listener(f, src, "moat_bytes_total", offsetof(struct lstats, bytes_in), "direction",
	             (const char *const[]){ "from_client", "to_client" }, 2);
	backends(f, src);
	certificates(f, src);
	head(f, "moat_limit_untracked_total", "counter",
	     "Addresses not tracked because the limit table was full of live ones.");
	fprintf(f, "moat_limit_untracked_total %llu\n",
	        (unsigned long long)limit_untracked(src->limits));
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	*len = size;
	return out;
}

/* ---- HTTP ---- */

_Static_assert(offsetof(struct lstats, bytes_out) ==
               offsetof(struct lstats, bytes_in) + sizeof(atomic_uint_fast64_t),
               "moat_bytes_total reads bytes_in and bytes_out as a pair");

/* The listener's close callback: the endpoint goes with it. */
static void listener_closed(uv_handle_t *h)
{
	free(h->data);
}

static void conn_closed(uv_handle_t *h)
{
	struct mconn *c = h->data;

	if (--c->handles > 0)
		return;
	free(c->resp);
	free(c);
}

/* The one way a connection ends. */
static void conn_close(struct mconn *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	for (int i = 0; i < METRICS_CONNS; i++)
		if (c->m->conns[i] == c)
			c->m->conns[i] = NULL;
	uv_close((uv_handle_t *)&c->timer, conn_closed);
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	conn_close(w->data);
}

/* Sends status, type and body, then closes. */
static void respond(struct mconn *c, const char *status, const char *type, const char *body,
                    size_t blen)
{
	uv_buf_t b;
	int n;

	uv_read_stop((uv_stream_t *)&c->tcp);
	c->resp = malloc(blen + 256);
	if (!c->resp) {
		conn_close(c);
		return;
	}
	n = snprintf(c->resp, 256, "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	             "Connection: close\r\n\r\n", status, type, blen);
	memcpy(c->resp + n, body, blen);
	b = uv_buf_init(c->resp, (unsigned)((size_t)n + blen));
	c->wr.data = c;
	if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
		conn_close(c);
}

int metrics_healthy(const struct metrics_src *src, const char **why)
{
	const struct gen *g = *src->gen;
	const struct cfg *c = g->cfg;

	if (src->draining) {
		*why = "draining";
		return 0;
	}
	for (size_t i = 0; i < c->nlisteners; i++) {
		const struct cfg_listener *l = &c->listeners[i];
		for (size_t k = 0; k < l->nbk; k++)
			if (!atomic_load(&g->backends[l->bk[k]].down[l->protocol])) {
				*why = "ok";
				return 1;
			}
	}
	*why = "every backend is down";
	return 0;
}

/* Does the request line ask for path (exactly, or with a query)? */
static int asks(const char *req, const char *path)
{
	size_t n = strlen(path);

	return strncmp(req, "GET ", 4) == 0 && strncmp(req + 4, path, n) == 0 &&
	       (req[4 + n] == ' ' || req[4 + n] == '?');
}

/* A whole request head arrived: answer it. */
static void handle(struct mconn *c)
{
	static const char notfound[] = "not found; try /metrics or /healthz\n";
	char *body, text[64];
	size_t len = 0;
	const char *why;

	if (asks(c->req, "/healthz")) {
		int ok = metrics_healthy(c->m->src, &why);
		len = (size_t)snprintf(text, sizeof text, "%s\n", why);
		respond(c, ok ? "200 OK" : "503 Service Unavailable", "text/plain", text, len);
		return;
	}
	if (c->m->health_only || !asks(c->req, "/metrics")) {
		respond(c, "404 Not Found", "text/plain", notfound, sizeof notfound - 1);
		return;
	}
	body = metrics_render(c->m->src, &len);
	if (!body) {
		respond(c, "500 Internal Server Error", "text/plain", "out of memory\n", 14);
		return;
	}
	respond(c, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, len);
	free(body);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct mconn *c = h->data;

	(void)suggested;
	buf->base = c->req + c->len;
	buf->len = sizeof c->req - 1 - c->len;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct mconn *c = st->data;

	(void)buf;
	if (n < 0) {
		conn_close(c);
		return;
	}
	c->len += (size_t)n;
	c->req[c->len] = '\0';
	if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n"))
		handle(c);
	else if (c->len >= sizeof c->req - 1)
		respond(c, "431 Request Header Fields Too Large", "text/plain", "too large\n", 10);
}

static void on_timeout(uv_timer_t *t)
{
	conn_close(t->data);
}

/* The 16-byte key a connection is counted under: IPv4, or an IPv6 /64
 * (one customer's network, as for the session limits). 0, or -1 when the
 * peer is already gone. */
static int peer_key(const uv_tcp_t *tcp, uint8_t key[16])
{
	struct sockaddr_storage ss;
	int len = sizeof ss;

	memset(key, 0, 16);
	if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	limit_key((const struct sockaddr *)&ss, 64, key);
	return 0;
}

/* How many open connections came from key. */
static int from_addr(const struct metrics *m, const uint8_t key[16])
{
	int n = 0;

	for (int i = 0; i < METRICS_CONNS; i++)
		if (m->conns[i] && memcmp(m->conns[i]->peer, key, 16) == 0)
			n++;
	return n;
}

/* The connection open longest that still waits for its request head,
 * from key (or from anywhere, key NULL); NULL when every one is
 * answering. */
static struct mconn *oldest_waiting(const struct metrics *m, const uint8_t *key)
{
	struct mconn *old = NULL;

	for (int i = 0; i < METRICS_CONNS; i++) {
		struct mconn *c = m->conns[i];
		if (!c || c->resp || (key && memcmp(c->peer, key, 16) != 0))
			continue;
		if (!old || c->seq < old->seq)
			old = c;
	}
	return old;
}

/* A free slot, or -1. */
static int free_slot(const struct metrics *m)
{
	for (int i = 0; i < METRICS_CONNS; i++)
		if (!m->conns[i])
			return i;
	return -1;
}

/* Before a connection from key takes a slot: at the address's cap the
 * oldest one from there still waiting for its head is evicted, with
 * every slot taken the oldest waiting one of all. The slot, or -1 when
 * those to evict are all answering. */
static int make_room(struct metrics *m, const uint8_t key[16])
{
	struct mconn *old;

	if (from_addr(m, key) >= METRICS_PER_ADDR) {
		old = oldest_waiting(m, key);
		if (!old)
			return -1;
		conn_close(old);
	}
	if (free_slot(m) < 0 && (old = oldest_waiting(m, NULL)))
		conn_close(old);
	return free_slot(m);
}

/* A client connected: it gets a slot, evicting an idle one if need be,
 * and METRICS_TIMEOUT_MS to send its request and take the answer. */
static void on_connection(uv_stream_t *server, int status)
{
	struct metrics *m = server->data;
	struct mconn *c;
	int slot;

	if (status < 0 || m->stopping)
		return;
	c = calloc(1, sizeof *c);
	if (!c)
		return;
	c->m = m;
	uv_tcp_init(server->loop, &c->tcp);
	uv_timer_init(server->loop, &c->timer);
	c->tcp.data = c->timer.data = c;
	c->handles = 2;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || peer_key(&c->tcp, c->peer) != 0 ||
	    (slot = make_room(m, c->peer)) < 0) {
		conn_close(c);                /* gone, or every place is answering */
		return;
	}
	c->seq = ++m->seq;
	m->conns[slot] = c;
	uv_timer_start(&c->timer, on_timeout, METRICS_TIMEOUT_MS, 0);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int metrics_start(struct metrics **out, uv_loop_t *loop, const struct cfg_addr *addr,
                  const struct metrics_src *src, int health_only, char *err, size_t errlen)
{
	struct metrics *m = calloc(1, sizeof *m);
	int rc;

	*out = NULL;
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->src = src;
	m->health_only = health_only;
	uv_tcp_init(loop, &m->listener);
	m->listener.data = m;
	rc = uv_tcp_bind(&m->listener, (const struct sockaddr *)&addr->sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&m->listener, 64, on_connection);
	if (rc != 0) {
		snprintf(err, errlen, "%s address %s: %s", health_only ? "health" : "metrics",
		         addr->text, uv_strerror(rc));
		m->stopping = 1;
		uv_close((uv_handle_t *)&m->listener, listener_closed);
		return -1;
	}
	*out = m;
	return 0;
}

void metrics_stop(struct metrics *m)
{
	if (!m || m->stopping)
		return;
	m->stopping = 1;
	for (int i = 0; i < METRICS_CONNS; i++)
		if (m->conns[i])
			conn_close(m->conns[i]);
	uv_close((uv_handle_t *)&m->listener, listener_closed);
}
