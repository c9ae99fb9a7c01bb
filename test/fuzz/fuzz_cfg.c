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

static void check_listener(const struct cfg_listener *l)
{
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
	for (size_t i = 0; i < c->nlisteners; i++) {
		check_listener(&c->listeners[i]);
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
