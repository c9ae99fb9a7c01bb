/*
 * fuzz_cfg: libFuzzer target for proxy/cfg.c.
 *
 * The input is an INI file. It is read twice: by cfg_load() from a
 * memfd (all its bytes; a NUL is a problem of its line) and by
 * cfg_parse_string() (as a C string, cut at the first NUL). Each must
 * either return a config that keeps every promise cfg.h and etc/moat.ini
 * make (ranges, required keys, defaults filled in, addresses resolved),
 * or refuse with one "FILE:LINE: message" line per problem, sorted, and
 * no config. Without a NUL in the input both must give the same answer,
 * to the byte. cfg_free() and free() must then release everything:
 * LeakSanitizer reports what they miss.
 *
 * The value parsers are fed each line of the input too: a refused
 * duration or size leaves its output alone, an accepted address is a
 * complete IPv4 or IPv6 socket address.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cfg.h"
#include "fuzz.h"

static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

static void check_addr(const struct cfg_addr *a)
{
	CHECK(memchr(a->text, '\0', sizeof a->text) != NULL);
	if (a->sa.ss_family == AF_INET) {
		CHECK(a->len == sizeof(struct sockaddr_in));
		CHECK(((const struct sockaddr_in *)&a->sa)->sin_port != 0);
	} else {
		CHECK(a->sa.ss_family == AF_INET6);
		CHECK(a->len == sizeof(struct sockaddr_in6));
		CHECK(((const struct sockaddr_in6 *)&a->sa)->sin6_port != 0);
	}
}

static void check_listener(const struct cfg *cfg, const struct cfg_listener *l)
{
	const struct cfg_addr *first;
	size_t n;

	CHECK(l->name != NULL);
	n = strlen(l->name);
	CHECK(n >= 1 && n <= 64);
	for (const char *c = l->name; *c; c++)
		CHECK((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-');
	CHECK(l->line > 0);
	check_addr(&l->address);
	check_addr(&l->backend);
	CHECK(l->protocol == CFG_PROTO_IMAP || l->protocol == CFG_PROTO_POP3);
	CHECK(l->tls == CFG_TLS_IMPLICIT || l->tls == CFG_TLS_STARTTLS);
	CHECK(l->handshake_timeout_ms >= 1 && l->connect_timeout_ms >= 1);
	CHECK(l->idle_timeout_ms >= 1 && l->preauth_timeout_ms >= 1);
	CHECK(l->greeting != NULL && printable(l->greeting));
	n = strlen(l->greeting);
	CHECK(n >= 1 && n <= 200);
	if (l->capabilities) {
		n = strlen(l->capabilities);
		CHECK(printable(l->capabilities) && n >= 1 && n <= 1000);
	}
	CHECK(l->transparent == 0 || l->transparent == 1);
	CHECK(l->max_command >= 1024 && l->max_command <= 65536);
	CHECK(l->max_auth_failures >= 1 && l->max_auth_failures <= 100);
	/* its backends: at least one, each once, each with an address of its
	 * protocol, the first one's in backend */
	CHECK(l->nbk >= 1 && l->bk != NULL);
	for (size_t k = 0; k < l->nbk; k++) {
		const struct cfg_backend *b;
		CHECK(l->bk[k] < cfg->nbackends);
		for (size_t j = 0; j < k; j++)
			CHECK(l->bk[j] != l->bk[k]);
		b = &cfg->backends[l->bk[k]];
		CHECK(b->addr[l->protocol].sa.ss_family != 0);
		CHECK(!l->transparent || b->tls != CFG_BTLS_STARTTLS);
	}
	first = &cfg->backends[l->bk[0]].addr[l->protocol];
	CHECK(l->backend.len == first->len && memcmp(&l->backend.sa, &first->sa, first->len) == 0 &&
	      strcmp(l->backend.text, first->text) == 0);
	CHECK(l->balance == CFG_BAL_ORDER || l->balance == CFG_BAL_LEAST_CONN);
	CHECK(l->insecure == 0 || l->insecure == 1);
	CHECK(l->proxy_protocol == 0 || l->proxy_protocol == 1);
	CHECK(l->proxy_trusted.n <= CFG_MAX_NETS);
	for (size_t i = 0; i < l->proxy_trusted.n; i++) {
		const struct cfg_net *net = &l->proxy_trusted.v[i];
		CHECK((net->family == AF_INET && net->prefix <= 32) ||
		      (net->family == AF_INET6 && net->prefix <= 128));
	}
}

/* A backend: an address (checked), its options in range, TLS with a name
 * and CAs or none of them; an inline one without health checks. */
static void check_backend(const struct cfg_backend *b)
{
	int addrs = 0;

	CHECK(b->name != NULL && *b->name != '\0' && b->line > 0);
	CHECK(b->is_inline == 0 || b->is_inline == 1);
	for (int pr = 0; pr < 2; pr++) {
		if (!b->addr[pr].sa.ss_family)
			continue;
		check_addr(&b->addr[pr]);
		CHECK(b->addr_line[pr] > 0);
		addrs++;
	}
	CHECK(addrs >= 1);
	CHECK(b->forward >= CFG_FWD_NONE && b->forward <= CFG_FWD_NATIVE);
	CHECK(b->tls >= CFG_BTLS_NONE && b->tls <= CFG_BTLS_STARTTLS);
	CHECK(b->check_timeout_ms >= 100 && b->check_timeout_ms <= 60000);
	CHECK(b->check_interval_ms <= 86400000);
	CHECK(b->strip_domain == 0 || b->strip_domain == 1);
	CHECK(b->insecure == 0 || b->insecure == 1);
	if (b->add_domain)
		CHECK(*b->add_domain != '\0' && strlen(b->add_domain) <= 253 &&
		      !strpbrk(b->add_domain, "@ \t\"()<>,;:"));
	if (b->tls != CFG_BTLS_NONE)
		CHECK(b->tls_name != NULL && b->ca != NULL);
	else
		CHECK(b->tls_name == NULL && b->ca == NULL);
	if (b->is_inline)
		CHECK(b->check_interval_ms == 0 && b->tls == CFG_BTLS_NONE);
}

/* An accepted config: what the daemon may rely on without checking. */
static void check_cfg(const struct cfg *c, const char *name)
{
	CHECK(c->path != NULL && strcmp(c->path, name) == 0);
	CHECK(c->workers >= 1 && c->workers <= 256);
	CHECK(c->log_level >= CFG_LOG_ERROR && c->log_level <= CFG_LOG_DEBUG);
	CHECK(c->buffer_size >= 4096 && c->buffer_size <= 1048576);
	CHECK(c->max_pending >= 16384 && c->max_pending <= 64u * 1048576);
	CHECK(c->certificate != NULL && c->key != NULL);
	CHECK(c->certificate_line > 0 && c->key_line > 0);
	CHECK(c->nlisteners >= 1 && c->listeners != NULL);
	CHECK(c->nbackends >= 1 && c->backends != NULL);
	for (size_t i = 0; i < c->nbackends; i++) {
		check_backend(&c->backends[i]);
		/* [backend NAME]s first, each name once; then the inline ones */
		if (i > 0)
			CHECK(c->backends[i].is_inline || !c->backends[i - 1].is_inline);
		for (size_t j = 0; j < i && !c->backends[i].is_inline; j++)
			CHECK(strcmp(c->backends[i].name, c->backends[j].name) != 0);
	}
	for (size_t i = 0; i < c->nlisteners; i++) {
		check_listener(c, &c->listeners[i]);
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(c->listeners[i].name, c->listeners[j].name) != 0);
	}
}

/* A refusal: non-empty, every line "NAME:LINE: text" or "NAME: text",
 * LINE numbers never decreasing, whole-file ones last. */
static void check_errors(const char *e, const char *name)
{
	size_t n = strlen(name);
	long last = 0;
	int whole_file = 0;

	CHECK(*e != '\0');
	while (*e) {
		const char *nl = strchr(e, '\n');
		char *end;
		long line;

		CHECK(nl != NULL && nl > e);
		CHECK(strncmp(e, name, n) == 0 && e[n] == ':');
		e += n + 1;
		if (*e == ' ') {
			whole_file = 1;
		} else {
			CHECK(!whole_file);
			line = strtol(e, &end, 10);
			CHECK(end > e && *end == ':' && line >= 1 && line >= last);
			last = line;
		}
		e = nl + 1;
	}
}

/* Checks one entry point's answer; returns rc. */
static int check_answer(int rc, const struct cfg *c, const char *errors, const char *name)
{
	if (rc == 0) {
		CHECK(c != NULL && errors == NULL);
		check_cfg(c, name);
	} else {
		CHECK(rc == -1 && c == NULL && errors != NULL);
		check_errors(errors, name);
	}
	return rc;
}

static void same_addr(const struct cfg_addr *a, const struct cfg_addr *b)
{
	CHECK(a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0);
	CHECK(strcmp(a->text, b->text) == 0);
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Both entry points read the same text: the same config. */
static void same_cfg(const struct cfg *a, const struct cfg *b)
{
	CHECK(a->workers == b->workers && a->log_level == b->log_level);
	CHECK(a->buffer_size == b->buffer_size && a->max_pending == b->max_pending);
	CHECK(same_str(a->certificate, b->certificate) && same_str(a->key, b->key));
	CHECK(a->certificate_line == b->certificate_line && a->key_line == b->key_line);
	CHECK(a->nlisteners == b->nlisteners);
	for (size_t i = 0; i < a->nlisteners; i++) {
		const struct cfg_listener *x = &a->listeners[i], *y = &b->listeners[i];
		CHECK(same_str(x->name, y->name) && x->line == y->line);
		same_addr(&x->address, &y->address);
		same_addr(&x->backend, &y->backend);
		CHECK(x->protocol == y->protocol && x->tls == y->tls);
		CHECK(x->handshake_timeout_ms == y->handshake_timeout_ms &&
		      x->connect_timeout_ms == y->connect_timeout_ms &&
		      x->idle_timeout_ms == y->idle_timeout_ms &&
		      x->preauth_timeout_ms == y->preauth_timeout_ms &&
		      x->auth_failure_delay_ms == y->auth_failure_delay_ms);
		CHECK(same_str(x->greeting, y->greeting));
		CHECK(same_str(x->capabilities, y->capabilities));
		CHECK(x->transparent == y->transparent && x->max_command == y->max_command &&
		      x->max_auth_failures == y->max_auth_failures);
		CHECK(strcmp(cfg_proto_name(x->protocol), x->protocol ? "pop3" : "imap") == 0);
		CHECK(x->nbk == y->nbk && memcmp(x->bk, y->bk, x->nbk * sizeof *x->bk) == 0);
		CHECK(x->balance == y->balance && x->insecure == y->insecure &&
		      x->proxy_protocol == y->proxy_protocol &&
		      x->proxy_trusted.n == y->proxy_trusted.n &&
		      memcmp(x->proxy_trusted.v, y->proxy_trusted.v,
		             x->proxy_trusted.n * sizeof *x->proxy_trusted.v) == 0);
	}
	CHECK(same_str(a->route_map, b->route_map));
	CHECK(a->nbackends == b->nbackends);
	for (size_t i = 0; i < a->nbackends; i++) {
		const struct cfg_backend *x = &a->backends[i], *y = &b->backends[i];
		CHECK(same_str(x->name, y->name) && x->line == y->line && x->is_inline == y->is_inline);
		for (int pr = 0; pr < 2; pr++) {
			CHECK(x->addr[pr].sa.ss_family == y->addr[pr].sa.ss_family);
			if (x->addr[pr].sa.ss_family)
				same_addr(&x->addr[pr], &y->addr[pr]);
		}
		CHECK(x->forward == y->forward && x->tls == y->tls &&
		      x->check_interval_ms == y->check_interval_ms &&
		      x->check_timeout_ms == y->check_timeout_ms &&
		      x->strip_domain == y->strip_domain && x->insecure == y->insecure);
		CHECK(same_str(x->add_domain, y->add_domain) && same_str(x->ca, y->ca) &&
		      same_str(x->tls_name, y->tls_name));
	}
}

/* The value parsers on one line of the input. */
static void check_values(const char *s)
{
	uint32_t v = 0xdeadbeef;
	struct cfg_addr a;
	const char *why = NULL;

	if (cfg_parse_duration(s, &v) < 0)
		CHECK(v == 0xdeadbeef);
	v = 0xdeadbeef;
	if (cfg_parse_size(s, &v) < 0)
		CHECK(v == 0xdeadbeef);
	if (cfg_parse_addr(s, &a, &why) == 0)
		check_addr(&a);
	else
		CHECK(why != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), name[64];
	struct cfg *c1 = (struct cfg *)&c1, *c2 = (struct cfg *)&c2; /* must be set */
	char *e1 = (char *)&e1, *e2 = (char *)&e2;
	int fd = memfd_create("fuzz.ini", MFD_CLOEXEC), rc1, rc2;

	CHECK(text != NULL && fd >= 0);
	CHECK(write(fd, data, size) == (ssize_t)size);
	snprintf(name, sizeof name, "/proc/self/fd/%d", fd);
	memcpy(text, data, size);
	text[size] = '\0';

	rc1 = check_answer(cfg_parse_string(text, name, &c1, &e1), c1, e1, name);
	rc2 = check_answer(cfg_load(name, &c2, &e2), c2, e2, name);
	if (memchr(data, '\0', size) == NULL) {
		CHECK(rc1 == rc2);
		if (rc1 == 0)
			same_cfg(c1, c2);
		else
			CHECK(strcmp(e1, e2) == 0);
	}
	cfg_free(c1);
	cfg_free(c2);
	free(e1);
	free(e2);
	close(fd);
	CHECK(strcmp(cfg_proto_name((enum cfg_proto)7), "?") == 0);

	for (char *line = text, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		check_values(line);
	}
	free(text);
	return 0;
}
