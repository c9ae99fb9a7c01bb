/* health: see health.h. */
#include "health.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxyp.h"

#define GREETING_MAX 512

/* One backend address being checked. */
struct probe {
	struct health *h;
	size_t bk;                    /* in cfg->backends */
	int proto;                    /* enum cfg_proto */
	uv_timer_t timer;             /* next check, then the check's deadline */
	uv_tcp_t tcp;
	uv_connect_t req;
	int tcp_open;                 /* tcp initialised and not closed yet */
	int checking;
	char buf[GREETING_MAX];
	size_t len;
	char why[128];                /* why the check failed, "" when it passed */
};

struct health {
	uv_loop_t *loop;
	struct gen *g;
	struct probe *v;
	size_t n;
	size_t handles;               /* open handles: freed at 0 once stopping */
	int stopping;
};

static void next_check(struct probe *p);

static void maybe_free(struct health *h)
{
	if (!h->stopping || h->handles > 0)
		return;
	gen_unref(h->g);
	free(h->v);
	free(h);
}

static void on_closed(uv_handle_t *hd)
{
	struct probe *p = hd->data;
	struct health *h = p->h;

	h->handles--;
	if (hd == (uv_handle_t *)&p->tcp) {
		p->tcp_open = 0;
		if (!h->stopping)
			next_check(p);
	}
	maybe_free(h);
}

/* The check is over: record the outcome, close the connection. */
static void done(struct probe *p, const char *why)
{
	const struct cfg_backend *b = &p->h->g->cfg->backends[p->bk];
	atomic_int *down = &p->h->g->backends[p->bk].down[p->proto];
	char r[160];

	if (!p->checking)
		return;
	p->checking = 0;
	uv_timer_stop(&p->timer);
	if (why && atomic_exchange(down, 1) == 0)
		log_msg(LOG_LVL_WARN, "event=backend_down backend=%s address=%s reason=%s", b->name,
		        b->addr[p->proto].text, log_quote(r, sizeof r, why));
	else if (!why && atomic_exchange(down, 0) == 1)
		log_msg(LOG_LVL_INFO, "event=backend_up backend=%s address=%s", b->name,
		        b->addr[p->proto].text);
	if (p->tcp_open && !uv_is_closing((uv_handle_t *)&p->tcp))
		uv_close((uv_handle_t *)&p->tcp, on_closed);
	else if (!p->h->stopping)
		next_check(p);
}

static void on_write(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

/* Sends a few bytes; a failure shows up as a read error. */
static void say(struct probe *p, const void *data, size_t n)
{
	uv_write_t *req = malloc(sizeof *req + n);
	uv_buf_t b;

	if (!req)
		return;
	memcpy(req + 1, data, n);
	b = uv_buf_init((char *)(req + 1), (unsigned)n);
	if (uv_write(req, (uv_stream_t *)&p->tcp, &b, 1, on_write) < 0)
		free(req);
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	struct probe *p = hd->data;

	(void)suggested;
	buf->base = p->buf + p->len;
	buf->len = sizeof p->buf - p->len - 1;
}

/* Judges the first line; says goodbye politely. */
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct probe *p = st->data;
	static const char *const ok[] = { [CFG_PROTO_IMAP] = "* OK", [CFG_PROTO_POP3] = "+OK" };
	static const char *const bye[] = { [CFG_PROTO_IMAP] = "x LOGOUT\r\n",
	                                   [CFG_PROTO_POP3] = "QUIT\r\n" };
	char *nl;

	(void)buf;
	if (nread == 0 || !p->checking)
		return;
	if (nread < 0) {
		done(p, nread == UV_EOF ? "closed before its greeting" : uv_strerror((int)nread));
		return;
	}
	p->len += (size_t)nread;
	p->buf[p->len] = '\0';
	nl = memchr(p->buf, '\n', p->len);
	if (!nl) {
		if (p->len >= sizeof p->buf - 1)
			done(p, "greeting line too long");
		return;
	}
	uv_read_stop(st);
	if (strncmp(p->buf, ok[p->proto], strlen(ok[p->proto])) != 0) {
		done(p, "unexpected greeting");
		return;
	}
	say(p, bye[p->proto], strlen(bye[p->proto]));
	done(p, NULL);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct probe *p = req->data;
	const struct cfg_backend *b;

	if (!p->checking)
		return;
	if (status < 0) {
		done(p, uv_strerror(status));
		return;
	}
	b = &p->h->g->cfg->backends[p->bk];
	if (b->forward == CFG_FWD_PROXY_V1 || b->forward == CFG_FWD_PROXY_V2) {
		uint8_t hdr[32];
		int n = proxyp_build_local(b->forward == CFG_FWD_PROXY_V1 ? 1 : 2, hdr, sizeof hdr);
		if (n > 0)
			say(p, hdr, (size_t)n);
	}
	if (b->tls == CFG_BTLS_IMPLICIT) {
		done(p, NULL);              /* its greeting comes inside TLS: a connect will do */
		return;
	}
	uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
}

static void on_timer(uv_timer_t *t)
{
	struct probe *p = t->data;
	const struct cfg_backend *b = &p->h->g->cfg->backends[p->bk];

	if (p->checking) {
		done(p, "no greeting within check_timeout");
		return;
	}
	if (p->tcp_open)
		return;                     /* the last one is still closing */
	p->checking = 1;
	p->len = 0;
	uv_tcp_init(p->h->loop, &p->tcp);
	p->tcp.data = p;
	p->tcp_open = 1;
	p->h->handles++;
	p->req.data = p;
	uv_timer_start(&p->timer, on_timer, b->check_timeout_ms, 0);
	if (uv_tcp_connect(&p->req, &p->tcp, (const struct sockaddr *)&b->addr[p->proto].sa,
	                   on_connect) < 0)
		done(p, "cannot connect");
}

static void next_check(struct probe *p)
{
	uv_timer_start(&p->timer, on_timer, p->h->g->cfg->backends[p->bk].check_interval_ms, 0);
}

struct health *health_start(uv_loop_t *loop, struct gen *g)
{
	const struct cfg *c = g->cfg;
	struct health *h = calloc(1, sizeof *h);

	if (!h)
		return NULL;
	h->v = calloc(2 * c->nbackends + 1, sizeof *h->v);
	if (!h->v) {
		free(h);
		return NULL;
	}
	h->loop = loop;
	h->g = gen_ref(g);
	for (size_t i = 0; i < c->nbackends; i++) {
		for (int pr = 0; pr < 2; pr++) {
			struct probe *p;
			if (!c->backends[i].check_interval_ms || !c->backends[i].addr[pr].sa.ss_family)
				continue;
			p = &h->v[h->n++];
			p->h = h;
			p->bk = i;
			p->proto = pr;
			uv_timer_init(loop, &p->timer);
			p->timer.data = p;
			h->handles++;
			uv_timer_start(&p->timer, on_timer, 0, 0);   /* the first check at once */
		}
	}
	return h;
}

void health_stop(struct health *h)
{
	if (!h)
		return;
	h->stopping = 1;
	for (size_t i = 0; i < h->n; i++) {
		struct probe *p = &h->v[i];
		p->checking = 0;
		uv_close((uv_handle_t *)&p->timer, on_closed);
		if (p->tcp_open && !uv_is_closing((uv_handle_t *)&p->tcp))
			uv_close((uv_handle_t *)&p->tcp, on_closed);
	}
	maybe_free(h);
}
