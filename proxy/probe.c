/* probe: see probe.h. */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proxyp.h"

#define PROBE_LINE_MAX 8192

struct conn {
	int fd;
	int64_t deadline_ms;
	char buf[PROBE_LINE_MAX];
	size_t len;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on the socket until the deadline; 0 or -1. */
static int wait_for(struct conn *c, short events)
{
	struct pollfd p = { .fd = c->fd, .events = events };

	for (;;) {
		int64_t left = c->deadline_ms - now_ms();
		int rc;
		if (left <= 0)
			return -1;
		rc = poll(&p, 1, (int)left);
		/* a signal (another SIGHUP while a reload probes) is not an answer */
		if (rc < 0 && errno == EINTR)
			continue;
		return rc == 1 ? 0 : -1;
	}
}

/* Reads one CRLF line into line (without the CRLF); 0 or -1. */
static int read_line(struct conn *c, char *line, size_t size)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			size_t keep = n > 0 && c->buf[n - 1] == '\r' ? n - 1 : n;
			if (keep >= size)
				keep = size - 1;
			memcpy(line, c->buf, keep);
			line[keep] = '\0';
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return 0;
		}
		if (c->len == sizeof c->buf || wait_for(c, POLLIN) < 0)
			return -1;
		ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

/* Sends n bytes (a PROXY header may hold NULs). */
static int write_all(struct conn *c, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		if (wait_for(c, POLLOUT) < 0)
			return -1;
		ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int send_all(struct conn *c, const char *s)
{
	return write_all(c, s, strlen(s));
}

/* Copies the list after "CAPABILITY " up to "]" or the end. */
static void take_caps(const char *p, char *caps, size_t capslen)
{
	size_t n = strcspn(p, "]");

	if (n >= capslen)
		n = capslen - 1;
	memcpy(caps, p, n);
	caps[n] = '\0';
}

/* Connects with a deadline; returns 0 or -1 with errno set. */
static int connect_plain(struct conn *c, const struct cfg_addr *a)
{
	int err = 0;
	socklen_t len = sizeof err;

	c->fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	if (connect(c->fd, (const struct sockaddr *)&a->sa, a->len) == 0)
		return 0;
	if (errno != EINPROGRESS)
		return -1;
	if (wait_for(c, POLLOUT) < 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
		errno = err ? err : errno;
		return -1;
	}
	return 0;
}

/* Connects with a deadline, then sends a LOCAL PROXY header when the
 * backend wants one; returns 0 or -1 with errno set. */
static int connect_to(struct conn *c, const struct cfg_addr *a, int proxy_version)
{
	uint8_t hdr[32];
	int n;

	if (connect_plain(c, a) < 0)
		return -1;
	if (!proxy_version)
		return 0;
	n = proxyp_build_local(proxy_version, hdr, sizeof hdr);
	if (n < 0) {
		errno = EINVAL;
		return -1;
	}
	return write_all(c, hdr, (size_t)n);
}

int probe_imap_caps(const struct cfg_addr *backend, int proxy_version, uint32_t timeout_ms,
                    char *caps, size_t capslen, char *err, size_t errlen)
{
	struct conn c = { .fd = -1, .deadline_ms = now_ms() + timeout_ms };
	char line[PROBE_LINE_MAX];
	int rc = -1;

	caps[0] = '\0';
	if (connect_to(&c, backend, proxy_version) < 0) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		goto out;
	}
	if (read_line(&c, line, sizeof line) < 0 || strncasecmp(line, "* OK", 4) != 0) {
		snprintf(err, errlen, "no IMAP greeting");
		goto out;
	}
	if (send_all(&c, "P1 CAPABILITY\r\n") < 0) {
		snprintf(err, errlen, "write failed");
		goto out;
	}
	for (;;) {
		if (read_line(&c, line, sizeof line) < 0) {
			snprintf(err, errlen, "no answer to CAPABILITY");
			goto out;
		}
		if (strncasecmp(line, "* CAPABILITY ", 13) == 0)
			take_caps(line + 13, caps, capslen);
		else if (strncasecmp(line, "P1 OK", 5) == 0)
			break;
		else if (strncmp(line, "P1 ", 3) == 0) {
			snprintf(err, errlen, "CAPABILITY refused");
			goto out;
		}
	}
	(void)send_all(&c, "P2 LOGOUT\r\n");
	rc = 0;
out:
	if (c.fd >= 0)
		close(c.fd);
	return rc;
}

/* Appends line and CRLF to caps (NUL-terminated, capslen bytes) when
 * the whole line fits; a line that does not is left out. */
static void append_line(char *caps, size_t capslen, const char *line)
{
	size_t have = strlen(caps), n = strlen(line);

	if (have + n + 2 >= capslen)
		return;
	memcpy(caps + have, line, n);
	memcpy(caps + have + n, "\r\n", 3);
}

/* Is line a POP3 status line with this word ("+OK", "-ERR"), alone or
 * before a space? */
static int pop3_is(const char *line, const char *word)
{
	size_t n = strlen(word);

	return strncasecmp(line, word, n) == 0 && (line[n] == '\0' || line[n] == ' ');
}

int probe_pop3_caps(const struct cfg_addr *backend, int proxy_version, uint32_t timeout_ms,
                    char *caps, size_t capslen, char *err, size_t errlen)
{
	struct conn c = { .fd = -1, .deadline_ms = now_ms() + timeout_ms };
	char line[PROBE_LINE_MAX];
	int rc = -1;

	if (capslen > 0)
		caps[0] = '\0';
	if (connect_to(&c, backend, proxy_version) < 0) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		goto out;
	}
	if (read_line(&c, line, sizeof line) < 0 || !pop3_is(line, "+OK")) {
		snprintf(err, errlen, "no POP3 greeting");
		goto out;
	}
	if (send_all(&c, "CAPA\r\n") < 0) {
		snprintf(err, errlen, "write failed");
		goto out;
	}
	if (read_line(&c, line, sizeof line) < 0) {
		snprintf(err, errlen, "no answer to CAPA");
		goto out;
	}
	if (!pop3_is(line, "+OK")) {
		snprintf(err, errlen, "CAPA refused");
		goto out;
	}
	for (;;) {
		if (read_line(&c, line, sizeof line) < 0) {
			snprintf(err, errlen, "CAPA answer not ended by \".\"");
			if (capslen > 0)
				caps[0] = '\0';
			goto out;
		}
		if (strcmp(line, ".") == 0)
			break;
		/* RFC 1939: a line starting with "." had one added */
		if (capslen > 0)
			append_line(caps, capslen, line[0] == '.' ? line + 1 : line);
	}
	(void)send_all(&c, "QUIT\r\n");
	rc = 0;
out:
	if (c.fd >= 0)
		close(c.fd);
	return rc;
}
