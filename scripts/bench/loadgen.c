/*
 * loadgen: the benchmark's load generator. It opens IMAP or POP3 sessions
 * over implicit TLS against a server on loopback (moat, nginx's mail proxy,
 * stunnel, HAProxy, Dovecot) and reports what it measured as one JSON line
 * on stdout.
 *
 *   loadgen --port N --ca FILE [--host 127.0.0.1] [--sni localhost]
 *           [--tls 1.2|1.3] [--group x25519|secp256r1|secp384r1]
 *           [--suite NAME] [--mode login|idle|fetch|retr] [--user demo --pass demo]
 *           [--count N] [--concurrency C] [--rate R] [--resume [--resume-port N]]
 *           [--message N] [--repeat N] [--pop3]
 *
 * It must never be the bottleneck, so it is one thread and one libuv loop:
 * nonblocking uv_tcp_t sockets, mbedTLS over BIO callbacks that lend it the
 * bytes just read (like tls/tls.c), one shared mbedtls_ssl_config, one
 * struct per session, plaintext handled as it arrives (literals and
 * message bodies are counted, never stored).
 *
 * --suite offers that one cipher suite alone, by its IANA name
 * (TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_GCM_SHA256,
 * TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256) or mbedTLS's (TLS1-3-...),
 * and the suite's TLS version alone (--tls, when given, must be the
 * same). Without it, mbedTLS's default list is offered (this build's:
 * AES-128-GCM first) and the server chooses. The login and bulk lines
 * say what was agreed: "version" and "suite" (IANA name) of the first
 * handshake, "mixed" when later handshakes agreed something else.
 *
 * Modes:
 *   login  --count sessions, at most --concurrency at once, or --rate new
 *          sessions a second (open loop, no concurrency bound): greeting,
 *          LOGIN (POP3 with --pop3: USER, PASS), LOGOUT (QUIT). With
 *          --resume the first session runs alone until it has a session to
 *          resume (TLS 1.2: after its handshake; TLS 1.3: its first ticket),
 *          then every later session offers the newest one saved (to
 *          --resume-port when given: another instance sharing ticket keys).
 *   idle   opens --count sessions, --concurrency handshakes at a time, each
 *          LOGIN, SELECT INBOX, IDLE; prints a line once all are idling (or
 *          failed), then holds them until EOF on stdin (a pipe or a tty; a
 *          file or /dev/null is not watched) or SIGINT/SIGTERM.
 *   fetch  one IMAP session: FETCH n BODY.PEEK[], timed from sending the
 *          command to its tagged OK.
 *   retr   one POP3 session: RETR n, timed from sending it to the final ".".
 *          Both send it --repeat times (default 1), one after the other in
 *          the same session; bytes and time are the sums over them.
 *
 * Times come from uv_hrtime(); cpu_s is this process's user + system time
 * (getrusage) spent from the first connection to the end. Exit status 0
 * when no session failed, 1 when some did, 2 on a usage or setup error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/time.h>

#include <uv.h>

#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/psa_util.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#define SESSION_TIMEOUT_MS 30000      /* no progress for this long fails a session */
#define LINE_CAP 1024                 /* a response line: its head and its tail */
#define LINE_HEAD 512
#define MAX_LITERAL ((uint64_t)1 << 40)
#define MAX_ERRORS 5
#define ERR_LEN 200
#define RBUF_SIZE 65536               /* ciphertext, shared: read_cb consumes it all */
#define PBUF_SIZE 16384               /* plaintext, shared, one record at a time */
#define FD_MARGIN 32                  /* descriptors idle mode keeps for itself */
/* A TLS 1.3 client holds a PSA key slot, its ECDHE key, from ClientHello
 * to ServerHello. The bundled mbedTLS grows its key store
 * (MBEDTLS_PSA_KEY_STORE_DYNAMIC); a static store of 32 slots (another
 * build) would fail more handshakes at once with "Memory allocation
 * failed", so the cap follows the build. */
#if defined(MBEDTLS_PSA_KEY_STORE_DYNAMIC)
#define TLS13_HANDSHAKES_MAX 4096
#else
#define TLS13_HANDSHAKES_MAX 28
#endif

/* What a step waits for. */
enum expect {
	EX_END,                       /* nothing: the session is over */
	EX_GREETING,                  /* "* OK" */
	EX_TAGGED,                    /* the step's tag and OK */
	EX_CONT,                      /* "+ " */
	EX_POP3_OK,                   /* "+OK" */
	EX_POP3_MULTI,                /* "+OK", lines, "." */
	EX_HOLD,                      /* nothing: keep the session open */
	EX_N
};

/* The commands, formatted once at start. */
enum cmd {
	CMD_NONE, CMD_LOGIN, CMD_SELECT, CMD_EXAMINE, CMD_IDLE, CMD_FETCH, CMD_LOGOUT,
	CMD_USER, CMD_PASS, CMD_RETR, CMD_QUIT, CMD_N
};

#define F_GREET  1u                   /* its end is the greeting time */
#define F_LOGIN  2u                   /* its end is the login time */
#define F_BULK   4u                   /* timed and its bytes counted */
#define F_EOF_OK 8u                   /* EOF completes it */

/* One step of a session's dialogue: send cmd, wait for expect. */
struct step {
	const char *name;
	enum cmd cmd;
	enum expect expect;
	char tag;
	unsigned flags;
};

#define IMAP_GREETING { "greeting", CMD_NONE, EX_GREETING, 0, F_GREET }
#define IMAP_LOGIN { "LOGIN", CMD_LOGIN, EX_TAGGED, 'a', F_LOGIN }
#define IMAP_LOGOUT { "LOGOUT", CMD_LOGOUT, EX_TAGGED, 'b', F_EOF_OK }
#define POP3_GREETING { "greeting", CMD_NONE, EX_POP3_OK, 0, F_GREET }
#define POP3_USER { "USER", CMD_USER, EX_POP3_OK, 0, 0 }
#define POP3_PASS { "PASS", CMD_PASS, EX_POP3_OK, 0, F_LOGIN }
#define POP3_QUIT { "QUIT", CMD_QUIT, EX_POP3_OK, 0, F_EOF_OK }
#define STEP_END { "end", CMD_NONE, EX_END, 0, 0 }

static const struct step imap_login_steps[] = {
	IMAP_GREETING, IMAP_LOGIN, IMAP_LOGOUT, STEP_END,
};
static const struct step imap_idle_steps[] = {
	IMAP_GREETING, IMAP_LOGIN,
	{ "SELECT", CMD_SELECT, EX_TAGGED, 's', 0 },
	{ "IDLE", CMD_IDLE, EX_CONT, 'i', 0 },
	{ "idling", CMD_NONE, EX_HOLD, 'i', 0 },
	STEP_END,
};
static const struct step imap_fetch_steps[] = {
	IMAP_GREETING, IMAP_LOGIN,
	{ "EXAMINE", CMD_EXAMINE, EX_TAGGED, 's', 0 },
	{ "FETCH", CMD_FETCH, EX_TAGGED, 'f', F_BULK },
	IMAP_LOGOUT, STEP_END,
};
static const struct step pop3_login_steps[] = {
	POP3_GREETING, POP3_USER, POP3_PASS, POP3_QUIT, STEP_END,
};
static const struct step pop3_retr_steps[] = {
	POP3_GREETING, POP3_USER, POP3_PASS,
	{ "RETR", CMD_RETR, EX_POP3_MULTI, 0, F_BULK },
	POP3_QUIT, STEP_END,
};

enum kind { K_LOGIN, K_IDLE, K_BULK };

/* A mode: its dialogue over IMAP and over POP3 (NULL: not offered). */
struct mode {
	const char *name;
	const struct step *imap, *pop3;
	enum kind kind;
	long count, concurrency;      /* defaults */
};

static const struct mode modes[] = {
	{ "login", imap_login_steps, pop3_login_steps, K_LOGIN, 100, 1 },
	{ "idle", imap_idle_steps, NULL, K_IDLE, 1000, 50 },
	{ "fetch", imap_fetch_steps, NULL, K_BULK, 1, 1 },
	{ "retr", NULL, pop3_retr_steps, K_BULK, 1, 1 },
};

/* A --group name and its IANA number. */
struct group {
	const char *name;
	uint16_t id;
};

static const struct group groups[] = {
	{ "x25519", MBEDTLS_SSL_IANA_TLS_GROUP_X25519 },
	{ "secp256r1", MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1 },
	{ "secp384r1", MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1 },
};

/* The command line. */
struct opts {
	const char *host, *ca, *sni, *user, *pass;
	int port, tls, pop3, resume, resume_port;
	uint16_t group;
	int suite;                    /* --suite: its IANA id, 0 for the default list */
	const struct mode *mode;
	long count, concurrency, message, repeat;
	double rate;
};

struct sess;

/* Everything the run shares; one per process, owned by main. */
struct lg {
	struct opts o;
	const struct step *steps;
	uv_loop_t *loop;
	struct sockaddr_in addr;
	struct sockaddr_in resume_addr; /* --resume-port, else addr */
	mbedtls_ssl_config conf;      /* mbedTLS verifies: sessions that offer a resumption */
	mbedtls_ssl_config conf_own;  /* we verify, with a cache: full handshakes */
	mbedtls_x509_crt ca;
	unsigned char *known;         /* the leaf certificate verified last (DER) */
	size_t known_len;
	mbedtls_x509_time known_to;
	uint16_t groups[4];
	int suites[2];                /* --suite and the 0 that ends the list */
	char agreed_version[16], agreed_suite[64];
	int agreed_mixed;
	mbedtls_ssl_session saved;    /* the newest session to resume */
	int have_saved;
	char *cmd[CMD_N];
	size_t cmd_len[CMD_N];

	long started, inflight, finished, resolved;
	long handshaking, handshakes_max, held_back;
	long ok, failed, established, resumed, offered;
	int first_done;               /* the first session is gone (--resume) */
	uv_timer_t rate_timer;
	int rate_on;
	uint64_t rate_t0;
	long rate_base;
	uint64_t t_start, t_end;
	double cpu0, cpu_end;

	double *greet_ms, *login_ms;
	long ngreet, nlogin;
	uint64_t bytes, bulk_ns;
	char errors[MAX_ERRORS][ERR_LEN];
	int nerrors;

	struct sess *live;            /* every session not yet freed */
	int printed, stopping;
	uv_signal_t sigint, sigterm;
	int signals_on;
	union {
		uv_pipe_t pipe;
		uv_tty_t tty;
	} in;
	int in_on;
	char inbuf[256];

	unsigned char *out;           /* ciphertext for out_owner, sent by flush */
	size_t out_len, out_cap;
	struct sess *out_owner;
	unsigned char rbuf[RBUF_SIZE];
	unsigned char pbuf[PBUF_SIZE];
};

/* One session: its socket, timer, TLS context and dialogue position. */
struct sess {
	struct lg *lg;
	struct sess *prev, *next;
	long id;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_connect_t conn;
	mbedtls_ssl_context ssl;
	const unsigned char *in;      /* the loan bio_recv serves */
	size_t in_len;
	int step, refs;
	long bulk_runs;               /* timed steps done (--repeat) */
	unsigned in_handshake : 1, handshaken : 1, saw_cert : 1, offered : 1, own_verify : 1, closing : 1,
	         released : 1, peer_eof : 1, held : 1, multi_body : 1, line_cut : 1;
	int outcome;                  /* 0 open, 1 ok, -1 failed */
	uint64_t t0, t_bulk, bytes, lit_left, line_total;
	size_t line_len;
	char line[LINE_CAP];
};

/* A queued write and its bytes. */
struct wreq {
	uv_write_t req;
	unsigned char data[];
};

static void schedule(struct lg *lg);
static void step_enter(struct sess *s);
static void on_close(uv_handle_t *h);
static void sess_fail(struct sess *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void print_idle(struct lg *lg);

/* ---- command line ---- */

/* Prints how to call loadgen. */
static void usage(FILE *f)
{
	fprintf(f,
	        "usage: loadgen --port N --ca FILE [--host 127.0.0.1] [--sni localhost]\n"
	        "               [--tls 1.2|1.3] [--group x25519|secp256r1|secp384r1]\n"
	        "               [--suite NAME, e.g. TLS_CHACHA20_POLY1305_SHA256]\n"
	        "               [--mode login|idle|fetch|retr] [--user demo] [--pass demo]\n"
	        "               [--count N] [--concurrency C] [--rate R] [--resume]\n"
	        "               [--resume-port N] [--message N] [--repeat N] [--pop3]\n");
}

/* Parses a whole decimal number in [lo, hi]; 0 or -1. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* Finds a mode by name. */
static const struct mode *find_mode(const char *name)
{
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
		if (strcmp(modes[i].name, name) == 0)
			return &modes[i];
	return NULL;
}

/* Finds a group by name; 0 when unknown. */
static uint16_t find_group(const char *name)
{
	for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
		if (strcmp(groups[i].name, name) == 0)
			return groups[i].id;
	return 0;
}

/* A cipher suite's mbedTLS name from its IANA one: TLS_AES_128_GCM_SHA256
 * is TLS1-3-AES-128-GCM-SHA256 there, TLS_ECDHE_..._WITH_... is
 * TLS-ECDHE-...-WITH-...; anything else is taken as it is. */
static void mbedtls_suite_name(const char *iana, char *out, size_t cap)
{
	const char *rest = iana + 4;
	size_t n;

	if (strncmp(iana, "TLS_", 4) != 0) {
		snprintf(out, cap, "%s", iana);
		return;
	}
	n = (size_t)snprintf(out, cap, "%s", strstr(rest, "_WITH_") ? "TLS-" : "TLS1-3-");
	snprintf(out + n, cap - n, "%s", rest);
	for (char *p = out + n; *p; p++)
		if (*p == '_')
			*p = '-';
}

/* The IANA name of an agreed suite from mbedTLS's (the reverse). */
static void iana_suite_name(const char *name, char *out, size_t cap)
{
	const char *rest = strncmp(name, "TLS1-3-", 7) == 0 ? name + 7
	                   : strncmp(name, "TLS-", 4) == 0 ? name + 4 : NULL;

	if (!rest) {
		snprintf(out, cap, "%s", name);
		return;
	}
	snprintf(out, cap, "TLS_%s", rest);
	for (char *p = out + 4; *p; p++)
		if (*p == '-')
			*p = '_';
}

/* Finds a cipher suite of this mbedTLS build by name (IANA's or
 * mbedTLS's); 0 when unknown. */
static int find_suite(const char *name)
{
	char mb[96];
	int id = mbedtls_ssl_get_ciphersuite_id(name);

	if (id)
		return id;
	if (strlen(name) >= sizeof mb)
		return 0;
	mbedtls_suite_name(name, mb, sizeof mb);
	return mbedtls_ssl_get_ciphersuite_id(mb);
}

/* TLS 1.3's suites are 0x1301..0x13ff (RFC 8446, B.4); TLS 1.2 has none
 * there. */
static int suite_is_tls13(int id)
{
	return (id & 0xff00) == 0x1300;
}

/* Takes one option's value; -1 with a message when it is bad. */
static int take_opt(struct opts *o, int c, const char *v, int *count_set, int *conc_set)
{
	long n;
	char *end;

	switch (c) {
	case 'H': o->host = v; return 0;
	case 'c': o->ca = v; return 0;
	case 'S': o->sni = v; return 0;
	case 'u': o->user = v; return 0;
	case 'w': o->pass = v; return 0;
	case 'R': o->resume = 1; return 0;
	case '3': o->pop3 = 1; return 0;
	case 'p':
	case 'P':
		if (parse_long(v, 1, 65535, &n) != 0)
			break;
		*(c == 'p' ? &o->port : &o->resume_port) = (int)n;
		return 0;
	case 't':
		o->tls = strcmp(v, "1.2") == 0 ? 12 : strcmp(v, "1.3") == 0 ? 13 : 0;
		if (!o->tls)
			break;
		return 0;
	case 'g':
		o->group = find_group(v);
		if (!o->group)
			break;
		return 0;
	case 's':
		o->suite = find_suite(v);
		if (!o->suite) {
			fprintf(stderr, "loadgen: unknown cipher suite '%s' (not in this mbedTLS "
			        "build?)\n", v);
			return -1;
		}
		return 0;
	case 'm':
		o->mode = find_mode(v);
		if (!o->mode)
			break;
		return 0;
	case 'n':
		*count_set = 1;
		if (parse_long(v, 1, 100000000, &o->count) != 0)
			break;
		return 0;
	case 'C':
		*conc_set = 1;
		if (parse_long(v, 1, 10000000, &o->concurrency) != 0)
			break;
		return 0;
	case 'r':
		o->rate = strtod(v, &end);
		if (end == v || *end || !(o->rate >= 0) || o->rate > 1e7)
			break;
		return 0;
	case 'M':
		if (parse_long(v, 1, 1000000000, &o->message) != 0)
			break;
		return 0;
	case 'x':
		if (parse_long(v, 1, 100000, &o->repeat) != 0)
			break;
		return 0;
	default:
		return -1;
	}
	fprintf(stderr, "loadgen: bad value '%s'\n", v);
	return -1;
}

/* Checks the options together and fills in the mode's defaults. */
static int check_opts(struct opts *o, int count_set, int conc_set)
{
	if (!o->port || !o->ca) {
		fprintf(stderr, "loadgen: --port and --ca are required\n");
		return -1;
	}
	if (o->mode->kind == K_BULK && o->mode->imap == NULL)
		o->pop3 = 1;                  /* retr is POP3 */
	if ((o->pop3 ? o->mode->pop3 : o->mode->imap) == NULL) {
		fprintf(stderr, "loadgen: --mode %s has no %s variant\n", o->mode->name,
		        o->pop3 ? "POP3" : "IMAP");
		return -1;
	}
	if (!count_set || o->mode->kind == K_BULK)
		o->count = o->mode->count;
	if (!conc_set || o->mode->kind == K_BULK)
		o->concurrency = o->mode->concurrency;
	if (o->mode->kind != K_LOGIN)
		o->rate = 0;
	if (o->mode->kind != K_BULK)
		o->repeat = 1;
	if (o->suite && o->tls && suite_is_tls13(o->suite) != (o->tls == 13)) {
		char name[96];

		iana_suite_name(mbedtls_ssl_get_ciphersuite_name(o->suite), name, sizeof name);
		fprintf(stderr, "loadgen: --suite %s is a TLS %s suite, not one for --tls 1.%d\n",
		        name, suite_is_tls13(o->suite) ? "1.3" : "1.2", o->tls - 10);
		return -1;
	}
	if (o->suite)                 /* a server picks the version first */
		o->tls = suite_is_tls13(o->suite) ? 13 : 12;
	if (strpbrk(o->user, "\r\n") || strpbrk(o->pass, "\r\n")) {
		fprintf(stderr, "loadgen: user and password must be one line\n");
		return -1;
	}
	return 0;
}

/* Reads the command line into o: 0, 1 for --help (printed), or -1 after
 * printing why not. */
static int parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option longs[] = {
		{ "host", required_argument, NULL, 'H' },
		{ "port", required_argument, NULL, 'p' },
		{ "ca", required_argument, NULL, 'c' },
		{ "sni", required_argument, NULL, 'S' },
		{ "tls", required_argument, NULL, 't' },
		{ "group", required_argument, NULL, 'g' },
		{ "suite", required_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ "user", required_argument, NULL, 'u' },
		{ "pass", required_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'C' },
		{ "rate", required_argument, NULL, 'r' },
		{ "resume", no_argument, NULL, 'R' },
		{ "resume-port", required_argument, NULL, 'P' },
		{ "message", required_argument, NULL, 'M' },
		{ "repeat", required_argument, NULL, 'x' },
		{ "pop3", no_argument, NULL, '3' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, count_set = 0, conc_set = 0;

	*o = (struct opts){
		.host = "127.0.0.1", .sni = "localhost", .user = "demo", .pass = "demo",
		.group = MBEDTLS_SSL_IANA_TLS_GROUP_X25519, .mode = &modes[0], .message = 1,
		.repeat = 1,
	};
	while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 1;
		}
		if (c == '?' || take_opt(o, c, optarg, &count_set, &conc_set) != 0) {
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "loadgen: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	return check_opts(o, count_set, conc_set);
}

/* ---- setup ---- */

/* Writes s as an IMAP quoted string at the end of buf. */
static void imap_quote(char *buf, const char *s)
{
	char *p = buf + strlen(buf);

	*p++ = '"';
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p++ = '"';
	*p = '\0';
}

/* Formats every command of the run once. */
static int build_cmds(struct lg *lg)
{
	const struct opts *o = &lg->o;
	size_t n = 2 * strlen(o->user) + 2 * strlen(o->pass) + 32;
	char *login = malloc(n);
	int rc = 0;

	if (!login)
		return -1;
	strcpy(login, "a LOGIN ");
	imap_quote(login, o->user);
	strcat(login, " ");
	imap_quote(login, o->pass);
	strcat(login, "\r\n");
	lg->cmd[CMD_LOGIN] = login;
	rc |= asprintf(&lg->cmd[CMD_SELECT], "s SELECT INBOX\r\n") < 0;
	rc |= asprintf(&lg->cmd[CMD_EXAMINE], "s EXAMINE INBOX\r\n") < 0;
	rc |= asprintf(&lg->cmd[CMD_IDLE], "i IDLE\r\n") < 0;
	rc |= asprintf(&lg->cmd[CMD_FETCH], "f FETCH %ld BODY.PEEK[]\r\n", o->message) < 0;
	rc |= asprintf(&lg->cmd[CMD_LOGOUT], "b LOGOUT\r\n") < 0;
	rc |= asprintf(&lg->cmd[CMD_USER], "USER %s\r\n", o->user) < 0;
	rc |= asprintf(&lg->cmd[CMD_PASS], "PASS %s\r\n", o->pass) < 0;
	rc |= asprintf(&lg->cmd[CMD_RETR], "RETR %ld\r\n", o->message) < 0;
	rc |= asprintf(&lg->cmd[CMD_QUIT], "QUIT\r\n") < 0;
	for (int i = 1; i < CMD_N; i++)
		lg->cmd_len[i] = lg->cmd[i] ? strlen(lg->cmd[i]) : 0;
	return rc ? -1 : 0;
}

/* Prints an mbedTLS error for a setup step; returns -1. */
static int setup_error(const char *what, int rc)
{
	char msg[160];

	mbedtls_strerror(rc, msg, sizeof msg);
	fprintf(stderr, "loadgen: %s: %s (-0x%04x)\n", what, msg, (unsigned)-rc);
	return -1;
}

/* The groups offered: --group alone, except where TLS 1.2 may be
 * negotiated. A TLS 1.2 server only uses an ECDSA certificate whose curve
 * the client lists (RFC 8422 section 5.1; mbedTLS and OpenSSL enforce it),
 * so the NIST curves follow --group there; the key exchange still uses
 * --group when the server prefers it or follows the client's order. */
static void set_groups(struct lg *lg)
{
	static const uint16_t cert_curves[] = {
		MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1, MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
	};
	size_t n = 0;

	lg->groups[n++] = lg->o.group;
	for (size_t i = 0; lg->o.tls != 13 && i < sizeof cert_curves / sizeof cert_curves[0]; i++)
		if (cert_curves[i] != lg->o.group)
			lg->groups[n++] = cert_curves[i];
	lg->groups[n] = MBEDTLS_SSL_IANA_TLS_GROUP_NONE;
}

/* Sets up one client configuration: the pinned version, the groups,
 * tickets, and authmode (the CA is always given). */
static int conf_setup(struct lg *lg, mbedtls_ssl_config *c, int authmode)
{
	mbedtls_ssl_protocol_version lo = MBEDTLS_SSL_VERSION_TLS1_2;
	mbedtls_ssl_protocol_version hi = MBEDTLS_SSL_VERSION_TLS1_3;
	int rc;

	rc = mbedtls_ssl_config_defaults(c, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
	                                 MBEDTLS_SSL_PRESET_DEFAULT);
	if (rc != 0)
		return setup_error("mbedtls_ssl_config_defaults", rc);
	if (lg->o.tls == 12)
		hi = MBEDTLS_SSL_VERSION_TLS1_2;
	if (lg->o.tls == 13)
		lo = MBEDTLS_SSL_VERSION_TLS1_3;
	mbedtls_ssl_conf_rng(c, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
	mbedtls_ssl_conf_authmode(c, authmode);
	mbedtls_ssl_conf_ca_chain(c, &lg->ca, NULL);
	mbedtls_ssl_conf_min_tls_version(c, lo);
	mbedtls_ssl_conf_max_tls_version(c, hi);
	mbedtls_ssl_conf_groups(c, lg->groups);
	if (lg->suites[0])
		mbedtls_ssl_conf_ciphersuites(c, lg->suites);
	mbedtls_ssl_conf_session_tickets(c, MBEDTLS_SSL_SESSION_TICKETS_ENABLED);
	/* without the signal, mbedTLS drops TLS 1.3 tickets unread */
	mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
	        c, MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED);
	return 0;
}

/* The two configurations every session shares. The server certificate
 * is always verified against --ca and --sni, but the chain's signature
 * costs the client as much as the server's handshake signature (an ECDSA
 * verification, about 1 ms), so a session that resumes nothing uses
 * conf_own: mbedTLS still checks the server's handshake signature with
 * the certificate's key, and peer_check then compares the certificate
 * with the last one fully verified. A session that offers a resumption
 * uses conf, where mbedTLS verifies, so that on_verify tells a resumed
 * handshake (no Certificate message) from a full one. */
static int tls_setup(struct lg *lg)
{
	int rc;

	if (psa_crypto_init() != PSA_SUCCESS) {
		fprintf(stderr, "loadgen: psa_crypto_init failed\n");
		return -1;
	}
	rc = mbedtls_x509_crt_parse_file(&lg->ca, lg->o.ca);
	if (rc < 0)
		return setup_error(lg->o.ca, rc);
	set_groups(lg);
	lg->suites[0] = lg->o.suite;
	lg->suites[1] = 0;
	if (conf_setup(lg, &lg->conf, MBEDTLS_SSL_VERIFY_REQUIRED) != 0)
		return -1;
	return conf_setup(lg, &lg->conf_own, MBEDTLS_SSL_VERIFY_NONE);
}

/* Raises the descriptor limit to its hard maximum; idle mode checks it
 * can hold every session. */
static int raise_nofile(const struct opts *o)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (o->mode->kind == K_IDLE && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)o->count + FD_MARGIN > rl.rlim_cur) {
		fprintf(stderr, "loadgen: idle --count %ld needs %ld descriptors, the limit "
		        "(RLIMIT_NOFILE) is %llu\n", o->count, o->count + FD_MARGIN,
		        (unsigned long long)rl.rlim_cur);
		return -1;
	}
	return 0;
}

/* This process's user plus system time, in seconds. */
static double cpu_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ---- errors ---- */

/* Keeps the first few session errors, printable ASCII only; once the idle
 * line is out, errors go to stderr instead. */
static void record_error(struct lg *lg, const char *msg)
{
	char *e;

	if (lg->printed) {
		fprintf(stderr, "loadgen: %s\n", msg);
		return;
	}
	if (lg->nerrors >= MAX_ERRORS)
		return;
	e = lg->errors[lg->nerrors++];
	snprintf(e, ERR_LEN, "%s", msg);
	for (; *e; e++)
		if ((unsigned char)*e < 0x20 || (unsigned char)*e >= 0x7f)
			*e = '?';
}

/* Where a session is, for its error messages. */
static const char *sess_where(const struct sess *s)
{
	return s->handshaken ? s->lg->steps[s->step].name : "handshake";
}

/* ---- session output ---- */

/* A queued write is done: free it; a failure fails an open session. */
static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct sess *s = req->handle->data;

	free(w);
	if (status < 0 && status != UV_ECANCELED && !s->closing && s->outcome == 0)
		sess_fail(s, "%s: write: %s", sess_where(s), uv_strerror(status));
}

/* Queues what the socket did not take at once. */
static void queue_write(struct sess *s, const unsigned char *p, size_t len)
{
	struct wreq *w = malloc(sizeof *w + len);
	uv_buf_t b;
	int rc;

	if (!w) {
		sess_fail(s, "%s: out of memory", sess_where(s));
		return;
	}
	memcpy(w->data, p, len);
	b = uv_buf_init((char *)w->data, (unsigned)len);
	rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_write);
	if (rc < 0) {
		free(w);
		if (s->outcome == 0)
			sess_fail(s, "%s: write: %s", sess_where(s), uv_strerror(rc));
	}
}

/* Sends the ciphertext mbedTLS produced for s: one try_write, the rest
 * (rare on loopback) queued in order behind it. */
static void flush(struct sess *s)
{
	struct lg *lg = s->lg;
	size_t len = lg->out_len;
	uv_buf_t b;
	int rc;

	if (len == 0 || lg->out_owner != s)
		return;
	lg->out_len = 0;
	lg->out_owner = NULL;
	if (uv_is_closing((uv_handle_t *)&s->tcp))
		return;
	b = uv_buf_init((char *)lg->out, (unsigned)len);
	rc = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
	if (rc == UV_EAGAIN || rc == UV_ENOSYS)
		rc = 0;
	if (rc < 0) {
		if (s->outcome == 0)
			sess_fail(s, "%s: write: %s", sess_where(s), uv_strerror(rc));
		return;
	}
	if ((size_t)rc < len)
		queue_write(s, lg->out + rc, len - (size_t)rc);
}

/* mbedTLS pushes ciphertext: it collects in the shared output buffer
 * until the current callback flushes it. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct sess *s = ctx;
	struct lg *lg = s->lg;

	if (lg->out_len > 0 && lg->out_owner != s)
		flush(lg->out_owner);
	if (lg->out_len + len > lg->out_cap) {
		size_t cap = lg->out_cap ? lg->out_cap : 16384;
		unsigned char *p;

		while (cap < lg->out_len + len)
			cap *= 2;
		p = realloc(lg->out, cap);
		if (!p)
			return MBEDTLS_ERR_SSL_ALLOC_FAILED;
		lg->out = p;
		lg->out_cap = cap;
	}
	memcpy(lg->out + lg->out_len, buf, len);
	lg->out_len += len;
	lg->out_owner = s;
	return (int)len;
}

/* mbedTLS pulls ciphertext from what the current read lent it. */
static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct sess *s = ctx;
	size_t n = len < s->in_len ? len : s->in_len;

	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	memcpy(buf, s->in, n);
	s->in += n;
	s->in_len -= n;
	return (int)n;
}

/* Runs for each certificate of a chain the server sent: a handshake that
 * never calls it resumed a session. */
static int on_verify(void *ctx, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
	struct sess *s = ctx;

	s->saw_cert = 1;
	return 0;
}

/* Encrypts a command; mbedTLS's writes never wait (bio_send takes all). */
static void sess_send(struct sess *s, const char *p, size_t len)
{
	char msg[120];

	while (len > 0) {
		int rc = mbedtls_ssl_write(&s->ssl, (const unsigned char *)p, len);

		if (rc <= 0) {
			mbedtls_strerror(rc, msg, sizeof msg);
			sess_fail(s, "%s: %s", sess_where(s), msg);
			return;
		}
		p += rc;
		len -= (size_t)rc;
	}
}

/* ---- session life ---- */

/* The session's handshake is over (done or abandoned): another may start. */
static void handshake_slot_free(struct sess *s)
{
	if (!s->in_handshake)
		return;
	s->in_handshake = 0;
	s->lg->handshaking--;
}

/* A session no longer counts against --concurrency (idle: it idles;
 * otherwise: it is gone); more may start. */
static void release(struct sess *s)
{
	struct lg *lg = s->lg;

	if (s->released)
		return;
	s->released = 1;
	lg->inflight--;
	lg->resolved++;
	if (lg->o.mode->kind == K_IDLE && !lg->printed && lg->resolved == lg->o.count) {
		print_idle(lg);
	}
}

/* The one close path, idempotent: send what is pending, close both
 * handles; the session is freed when both close callbacks ran. */
static void sess_close(struct sess *s)
{
	if (s->closing)
		return;
	s->closing = 1;               /* first: a failing flush must not recurse */
	flush(s);
	uv_close((uv_handle_t *)&s->tcp, on_close);
	uv_close((uv_handle_t *)&s->timer, on_close);
}

/* A session failed: count it once, keep its reason, close it. */
static void sess_fail(struct sess *s, const char *fmt, ...)
{
	struct lg *lg = s->lg;
	char msg[ERR_LEN];
	va_list ap;

	if (s->closing)
		return;
	if (s->outcome == 0 && !lg->stopping) {
		s->outcome = -1;
		lg->failed++;
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		record_error(lg, msg);
	}
	sess_close(s);
}

/* A session did all its steps: count it, say close_notify, close. */
static void sess_succeed(struct sess *s)
{
	if (s->closing)
		return;
	s->outcome = 1;
	s->lg->ok++;
	if (!s->peer_eof)
		mbedtls_ssl_close_notify(&s->ssl);
	sess_close(s);
}

/* Fails a session with mbedTLS's words for rc. */
static void tls_fail(struct sess *s, int rc)
{
	char msg[120], info[120];
	size_t n;

	mbedtls_strerror(rc, msg, sizeof msg);
	if (rc != MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
		sess_fail(s, "%s: %s", sess_where(s), msg);
		return;
	}
	mbedtls_x509_crt_verify_info(info, sizeof info, "", mbedtls_ssl_get_verify_result(&s->ssl));
	n = strlen(info);
	while (n > 0 && info[n - 1] == '\n')
		info[--n] = '\0';
	sess_fail(s, "%s: %s (%s)", sess_where(s), msg, info);
}

/* Unlinks and frees a closed session; the run goes on or ends. */
static void sess_free(struct sess *s)
{
	struct lg *lg = s->lg;

	if (s->prev)
		s->prev->next = s->next;
	else
		lg->live = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (lg->out_owner == s) {
		lg->out_len = 0;
		lg->out_owner = NULL;
	}
	release(s);
	handshake_slot_free(s);
	if (s->id == 0)
		lg->first_done = 1;
	mbedtls_ssl_free(&s->ssl);
	free(s);
	lg->finished++;
	if (lg->finished == lg->o.count) {
		lg->t_end = uv_hrtime();
		lg->cpu_end = cpu_now();
	}
	schedule(lg);
}

/* Each of a session's two handles closed; the second frees it. */
static void on_close(uv_handle_t *h)
{
	struct sess *s = h->data;

	if (--s->refs == 0)
		sess_free(s);
}

/* No progress for SESSION_TIMEOUT_MS. */
static void on_timeout(uv_timer_t *t)
{
	struct sess *s = t->data;

	sess_fail(s, "%s: timeout", sess_where(s));
}

/* ---- session input ---- */

/* Saves the session's TLS session as the newest one to offer. */
static void save_session(struct sess *s)
{
	struct lg *lg = s->lg;
	mbedtls_ssl_session tmp;
	int had = lg->have_saved;

	mbedtls_ssl_session_init(&tmp);
	if (mbedtls_ssl_get_session(&s->ssl, &tmp) != 0) {
		mbedtls_ssl_session_free(&tmp);
		return;
	}
	mbedtls_ssl_session_free(&lg->saved);
	lg->saved = tmp;                  /* the struct owns its pointers: a move */
	lg->have_saved = 1;
	if (!had)
		schedule(lg);             /* --resume: the others may start now */
}

/* A full verification of the server's certificate chain against --ca,
 * for --sni, as a TLS server certificate; 0 or -1 after failing s. */
static int peer_verify(struct sess *s, const mbedtls_x509_crt *peer)
{
	struct lg *lg = s->lg;
	char info[160];
	uint32_t flags = 0;
	size_t n;
	unsigned char *der;

	/* mbedtls_x509_crt_verify takes a non-const chain it only reads */
	if (mbedtls_x509_crt_verify((mbedtls_x509_crt *)peer, &lg->ca, NULL, lg->o.sni, &flags,
	                            NULL, NULL) != 0 ||
	    mbedtls_x509_crt_check_key_usage(peer, MBEDTLS_X509_KU_DIGITAL_SIGNATURE) != 0 ||
	    mbedtls_x509_crt_check_extended_key_usage(peer, MBEDTLS_OID_SERVER_AUTH,
	                                              MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)) != 0) {
		mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
		n = strlen(info);
		while (n > 0 && info[n - 1] == '\n')
			info[--n] = '\0';
		mbedtls_ssl_send_alert_message(&s->ssl, MBEDTLS_SSL_ALERT_LEVEL_FATAL,
		                               MBEDTLS_SSL_ALERT_MSG_BAD_CERT);
		sess_fail(s, "handshake: certificate not trusted (%s)", n ? info : "key usage");
		return -1;
	}
	der = malloc(peer->raw.len);
	if (der) {
		memcpy(der, peer->raw.p, peer->raw.len);
		free(lg->known);
		lg->known = der;
		lg->known_len = peer->raw.len;
		lg->known_to = peer->valid_to;
	}
	return 0;
}

/* conf_own sessions: the server's certificate is the one verified last
 * (same bytes, not expired since), or it is verified now. */
static int peer_check(struct sess *s)
{
	struct lg *lg = s->lg;
	const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&s->ssl);

	if (!peer) {
		sess_fail(s, "handshake: no server certificate");
		return -1;
	}
	if (lg->known && peer->raw.len == lg->known_len &&
	    memcmp(peer->raw.p, lg->known, lg->known_len) == 0 &&
	    !mbedtls_x509_time_is_past(&lg->known_to))
		return 0;
	return peer_verify(s, peer);
}

/* Keeps what the first handshake agreed (version, suite); a later one
 * that agreed otherwise marks the run mixed. */
static void note_agreed(struct sess *s)
{
	struct lg *lg = s->lg;
	const char *v = mbedtls_ssl_get_version(&s->ssl);
	char suite[sizeof lg->agreed_suite];

	iana_suite_name(mbedtls_ssl_get_ciphersuite(&s->ssl), suite, sizeof suite);
	if (!lg->agreed_version[0]) {
		snprintf(lg->agreed_version, sizeof lg->agreed_version, "%s", v);
		snprintf(lg->agreed_suite, sizeof lg->agreed_suite, "%s", suite);
	} else if (strcmp(lg->agreed_version, v) != 0 || strcmp(lg->agreed_suite, suite) != 0) {
		lg->agreed_mixed = 1;
	}
}

/* The handshake finished: check the server (conf_own), count a
 * resumption; TLS 1.2 has its ticket now. */
static void handshake_done(struct sess *s)
{
	struct lg *lg = s->lg;

	s->handshaken = 1;
	handshake_slot_free(s);
	schedule(lg);
	note_agreed(s);
	if (s->own_verify && peer_check(s) != 0)
		return;
	if (s->offered && !s->saw_cert)
		lg->resumed++;
	if (lg->o.resume && mbedtls_ssl_get_version_number(&s->ssl) == MBEDTLS_SSL_VERSION_TLS1_2)
		save_session(s);
}

/* The session is idling: its --concurrency slot frees, its timer stops. */
static void established(struct sess *s)
{
	struct lg *lg = s->lg;

	s->held = 1;
	uv_timer_stop(&s->timer);
	lg->established++;
	release(s);
	schedule(lg);
}

/* The current step got its answer: record its times, go to the next. */
static void step_done(struct sess *s)
{
	struct lg *lg = s->lg;
	const struct step *st = &lg->steps[s->step];
	uint64_t now = uv_hrtime();

	if (st->flags & F_GREET)
		lg->greet_ms[lg->ngreet++] = (double)(now - s->t0) / 1e6;
	if (st->flags & F_LOGIN)
		lg->login_ms[lg->nlogin++] = (double)(now - s->t0) / 1e6;
	if (st->flags & F_BULK) {
		lg->bytes += s->bytes;
		lg->bulk_ns += now - s->t_bulk;
		if (++s->bulk_runs < lg->o.repeat) {
			step_enter(s);        /* the same step again (--repeat) */
			return;
		}
	}
	s->step++;
	step_enter(s);
}

/* Starts the current step: its command, its clock. */
static void step_enter(struct sess *s)
{
	struct lg *lg = s->lg;
	const struct step *st = &lg->steps[s->step];

	if (st->expect == EX_END) {
		sess_succeed(s);
		return;
	}
	if (st->flags & F_BULK) {
		s->t_bulk = uv_hrtime();
		s->bytes = 0;
	}
	if (st->cmd != CMD_NONE)
		sess_send(s, lg->cmd[st->cmd], lg->cmd_len[st->cmd]);
	if (st->expect == EX_HOLD && !s->closing)
		established(s);
}

/* The server closed (TCP EOF or close_notify). */
static void on_eof(struct sess *s)
{
	s->peer_eof = 1;
	if (s->handshaken && (s->lg->steps[s->step].flags & F_EOF_OK))
		step_done(s);
	else
		sess_fail(s, "%s: EOF", sess_where(s));
}

/* Whether a response line's text starts with word w, whole. */
static int word_is(const char *t, size_t len, const char *w)
{
	size_t k = strlen(w);

	return len >= k && strncasecmp(t, w, k) == 0 && (len == k || t[k] == ' ');
}

/* Fails a session with the server's line (its first bytes). */
static void line_fail(struct sess *s, const char *t, size_t len)
{
	int n = len > 150 ? 150 : (int)len;

	sess_fail(s, "%s: %.*s", sess_where(s), n, t);
}

/* IMAP greeting: "* OK". */
static void on_imap_greeting(struct sess *s, const struct step *st, const char *t, size_t len)
{
	if (len > 2 && t[0] == '*' && t[1] == ' ' && word_is(t + 2, len - 2, "OK"))
		step_done(s);
	else
		line_fail(s, t, len);
}

/* IMAP tagged reply: untagged lines are dropped, the tag's OK ends the
 * step, anything else fails it. */
static void on_imap_tagged(struct sess *s, const struct step *st, const char *t, size_t len)
{
	if (len > 0 && t[0] == '*')
		return;
	if (len > 2 && t[0] == st->tag && t[1] == ' ' && word_is(t + 2, len - 2, "OK"))
		step_done(s);
	else
		line_fail(s, t, len);
}

/* IMAP continuation: "+ " ends the step (IDLE). */
static void on_imap_cont(struct sess *s, const struct step *st, const char *t, size_t len)
{
	if (len > 0 && t[0] == '*')
		return;
	if (len > 0 && t[0] == '+')
		step_done(s);
	else
		line_fail(s, t, len);
}

/* POP3 single-line reply: "+OK". */
static void on_pop3_ok(struct sess *s, const struct step *st, const char *t, size_t len)
{
	if (word_is(t, len, "+OK"))
		step_done(s);
	else
		line_fail(s, t, len);
}

/* POP3 multi-line reply: "+OK", counted lines, ".". */
static void on_pop3_multi(struct sess *s, const struct step *st, const char *t, size_t len)
{
	if (!s->multi_body) {
		if (!word_is(t, len, "+OK")) {
			line_fail(s, t, len);
			return;
		}
		s->multi_body = 1;
	} else if (len == 1 && t[0] == '.') {
		s->multi_body = 0;
		step_done(s);
	} else {
		s->bytes += s->line_total;
	}
}

/* Lines that need no answer (idling). */
static void on_line_drop(struct sess *s, const struct step *st, const char *t, size_t len)
{
}

typedef void (*line_fn)(struct sess *, const struct step *, const char *, size_t);

static const line_fn line_handlers[EX_N] = {
	[EX_END] = on_line_drop,
	[EX_GREETING] = on_imap_greeting,
	[EX_TAGGED] = on_imap_tagged,
	[EX_CONT] = on_imap_cont,
	[EX_POP3_OK] = on_pop3_ok,
	[EX_POP3_MULTI] = on_pop3_multi,
	[EX_HOLD] = on_line_drop,
};

/* Appends to the current line, keeping its first LINE_HEAD bytes and its
 * last LINE_CAP - LINE_HEAD (where a literal's "{n}" is). */
static void line_append(struct sess *s, const unsigned char *p, size_t n)
{
	const size_t tail = LINE_CAP - LINE_HEAD;
	size_t have, drop, k;

	s->line_total += n;
	if (s->line_len < LINE_HEAD) {
		k = n < LINE_HEAD - s->line_len ? n : LINE_HEAD - s->line_len;
		memcpy(s->line + s->line_len, p, k);
		s->line_len += k;
		p += k;
		n -= k;
	}
	if (n == 0)
		return;
	have = s->line_len - LINE_HEAD;
	if (have + n <= tail) {
		memcpy(s->line + s->line_len, p, n);
		s->line_len += n;
		return;
	}
	s->line_cut = 1;
	if (n >= tail) {
		memcpy(s->line + LINE_HEAD, p + n - tail, tail);
	} else {
		drop = have + n - tail;
		memmove(s->line + LINE_HEAD, s->line + LINE_HEAD + drop, have - drop);
		memcpy(s->line + LINE_HEAD + have - drop, p, n);
	}
	s->line_len = LINE_CAP;
}

/* The current line's length without its CRLF. */
static size_t line_text_len(const struct sess *s)
{
	size_t n = s->line_len;

	if (n > 0 && s->line[n - 1] == '\n')
		n--;
	if (n > 0 && s->line[n - 1] == '\r')
		n--;
	return n;
}

/* An IMAP line that ends in "{n}" or "{n+}": n literal bytes follow
 * before the line goes on. Returns 1 and sets lit_left then. */
static int line_literal(struct sess *s)
{
	size_t e = line_text_len(s), i;
	uint64_t v = 0;

	if (e < 3 || s->line[e - 1] != '}')
		return 0;
	i = e - 1;
	if (s->line[i - 1] == '+')
		i--;
	while (i > 0 && s->line[i - 1] >= '0' && s->line[i - 1] <= '9')
		i--;
	if (i == 0 || s->line[i - 1] != '{' || s->line[i] < '0' || s->line[i] > '9')
		return 0;
	for (; s->line[i] >= '0' && s->line[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(s->line[i] - '0');
		if (v > MAX_LITERAL)
			return 0;
	}
	s->lit_left = v;              /* {0}: the line simply goes on */
	return 1;
}

/* A whole response line: the current step's handler takes it. */
static void line_end(struct sess *s)
{
	const struct step *st = &s->lg->steps[s->step];

	line_handlers[st->expect](s, st, s->line, line_text_len(s));
	s->line_len = 0;
	s->line_total = 0;
	s->line_cut = 0;
}

/* Plaintext from the server, as it comes: lines to the step's handler,
 * IMAP literals skipped (and counted in a timed step). */
static void feed(struct sess *s, const unsigned char *p, size_t n)
{
	int imap = !s->lg->o.pop3;

	while (n > 0 && !s->closing) {
		const unsigned char *nl;
		size_t k;

		if (s->lit_left > 0) {
			k = n < s->lit_left ? n : (size_t)s->lit_left;
			s->lit_left -= k;
			if (s->lg->steps[s->step].flags & F_BULK)
				s->bytes += k;
			p += k;
			n -= k;
			continue;
		}
		nl = memchr(p, '\n', n);
		k = nl ? (size_t)(nl - p) + 1 : n;
		line_append(s, p, k);
		p += k;
		n -= k;
		if (!nl)
			break;
		if (imap && line_literal(s))
			continue;
		line_end(s);
	}
}

/* Drives mbedTLS over the bytes just lent: the handshake, then records
 * to feed, tickets to save, until it wants more. mbedTLS 3.6 signals a
 * TLS 1.3 ticket with one WANT_READ before RECEIVED_NEW_SESSION_TICKET,
 * so a WANT_READ is retried once even with nothing left to lend. */
static void pump(struct sess *s)
{
	struct lg *lg = s->lg;
	int rc, stall = 0;

	while (!s->closing) {
		if (!s->handshaken) {
			rc = mbedtls_ssl_handshake(&s->ssl);
			if (rc == 0) {
				handshake_done(s);
				stall = 0;
				continue;
			}
		} else {
			rc = mbedtls_ssl_read(&s->ssl, lg->pbuf, sizeof lg->pbuf);
			if (rc > 0) {
				feed(s, lg->pbuf, (size_t)rc);
				stall = 0;
				continue;
			}
			if (rc == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
				if (lg->o.resume)
					save_session(s);
				stall = 0;
				continue;
			}
			if (rc == 0 || rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
				on_eof(s);
				return;
			}
		}
		if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE) {
			tls_fail(s, rc);
			return;
		}
		if (++stall >= 2 && s->in_len == 0)
			return;
		if (stall >= 4) {
			sess_fail(s, "%s: TLS stalled with bytes unread", sess_where(s));
			return;
		}
	}
}

/* libuv wants a buffer: the shared one, as each read is consumed whole. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct sess *s = h->data;

	*buf = uv_buf_init((char *)s->lg->rbuf, RBUF_SIZE);
}

/* Ciphertext arrived: lend it to mbedTLS and run the dialogue. */
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct sess *s = st->data;

	if (s->closing || nread == 0)
		return;
	if (nread == UV_EOF) {
		on_eof(s);
		flush(s);
		return;
	}
	if (nread < 0) {
		sess_fail(s, "%s: %s", sess_where(s), uv_strerror((int)nread));
		return;
	}
	if (!s->held)
		uv_timer_start(&s->timer, on_timeout, SESSION_TIMEOUT_MS, 0);
	s->in = (const unsigned char *)buf->base;
	s->in_len = (size_t)nread;
	pump(s);
	s->in_len = 0;
	flush(s);
}

/* Connected: send the ClientHello, start reading. */
static void on_connect(uv_connect_t *req, int status)
{
	struct sess *s = req->data;
	int rc;

	if (s->closing)
		return;
	if (status < 0) {
		sess_fail(s, "connect: %s", uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(&s->tcp, 1);
	rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
	if (rc < 0) {
		sess_fail(s, "connect: %s", uv_strerror(rc));
		return;
	}
	pump(s);
	flush(s);
}

/* Sets up a session's TLS context: SNI, our BIO, the resumption offer. */
static int sess_tls(struct sess *s)
{
	struct lg *lg = s->lg;
	int rc;

	s->own_verify = !lg->have_saved;
	rc = mbedtls_ssl_setup(&s->ssl, s->own_verify ? &lg->conf_own : &lg->conf);
	if (rc == 0)
		rc = mbedtls_ssl_set_hostname(&s->ssl, lg->o.sni);
	if (rc != 0)
		return rc;
	mbedtls_ssl_set_bio(&s->ssl, s, bio_send, bio_recv, NULL);
	mbedtls_ssl_set_verify(&s->ssl, on_verify, s);
	if (lg->have_saved && mbedtls_ssl_set_session(&s->ssl, &lg->saved) == 0) {
		s->offered = 1;
		lg->offered++;
	}
	return 0;
}

/* Starts one more session: allocate, set up TLS, connect. */
static void sess_start(struct lg *lg)
{
	struct sess *s = calloc(1, sizeof *s);
	int rc;

	if (!s) {
		fprintf(stderr, "loadgen: out of memory\n");
		lg->started = lg->o.count;    /* start no more */
		return;
	}
	s->lg = lg;
	s->id = lg->started++;
	lg->inflight++;
	lg->handshaking++;
	s->in_handshake = 1;
	s->next = lg->live;
	if (lg->live)
		lg->live->prev = s;
	lg->live = s;
	mbedtls_ssl_init(&s->ssl);
	uv_tcp_init(lg->loop, &s->tcp);
	uv_timer_init(lg->loop, &s->timer);
	s->tcp.data = s->timer.data = s->conn.data = s;
	s->refs = 2;
	uv_timer_start(&s->timer, on_timeout, SESSION_TIMEOUT_MS, 0);
	rc = sess_tls(s);
	if (rc != 0) {
		tls_fail(s, rc);
		return;
	}
	s->t0 = uv_hrtime();
	rc = uv_tcp_connect(&s->conn, &s->tcp, (const struct sockaddr *)(lg->have_saved
	                    ? &lg->resume_addr : &lg->addr), on_connect);
	if (rc < 0)
		sess_fail(s, "connect: %s", uv_strerror(rc));
}

/* ---- scheduling ---- */

/* --resume: until the first session saved something to offer (or ended),
 * it runs alone. */
static int priming(const struct lg *lg)
{
	return lg->o.resume && lg->started > 0 && !lg->have_saved && !lg->first_done;
}

/* Whether one more handshake may start now (TLS13_HANDSHAKES_MAX);
 * counts the times one had to wait. */
static int may_handshake(struct lg *lg)
{
	if (lg->handshaking < lg->handshakes_max)
		return 1;
	lg->held_back++;
	return 0;
}

/* Stops the rate timer for good. */
static void rate_stop(struct lg *lg)
{
	if (!lg->rate_on)
		return;
	lg->rate_on = 0;
	uv_close((uv_handle_t *)&lg->rate_timer, NULL);
}

/* Open loop: start as many sessions as the rate owes by now. */
static void on_rate(uv_timer_t *t)
{
	struct lg *lg = t->data;
	uint64_t now = uv_hrtime();
	long due;

	if (lg->stopping || lg->started >= lg->o.count) {
		rate_stop(lg);
		return;
	}
	if (priming(lg)) {
		lg->rate_t0 = 0;          /* the clock starts after priming */
		return;
	}
	if (lg->rate_t0 == 0) {
		lg->rate_t0 = now;
		lg->rate_base = lg->started;
	}
	due = lg->rate_base + 1 + (long)((double)(now - lg->rate_t0) * lg->o.rate / 1e9);
	if (due > lg->o.count)
		due = lg->o.count;
	while (lg->started < due && may_handshake(lg))
		sess_start(lg);
	if (lg->started >= lg->o.count)
		rate_stop(lg);
}

/* Closed loop: keep --concurrency sessions in flight. */
static void schedule(struct lg *lg)
{
	if (lg->stopping || lg->o.rate > 0)
		return;
	while (lg->started < lg->o.count && lg->inflight < lg->o.concurrency && !priming(lg) &&
	       may_handshake(lg))
		sess_start(lg);
}

/* Starts the run: the rate timer, or the first sessions. */
static void run_start(struct lg *lg)
{
	uint64_t ms;

	lg->t_start = uv_hrtime();
	lg->cpu0 = cpu_now();
	lg->handshakes_max = lg->o.tls == 12 ? lg->o.count : TLS13_HANDSHAKES_MAX;
	if (lg->o.rate <= 0) {
		schedule(lg);
		return;
	}
	ms = lg->o.rate >= 1000 ? 1 : (uint64_t)(1000 / lg->o.rate);
	uv_timer_init(lg->loop, &lg->rate_timer);
	lg->rate_timer.data = lg;
	lg->rate_on = 1;
	uv_timer_start(&lg->rate_timer, on_rate, 0, ms ? ms : 1);
}

/* ---- idle mode: holding and letting go ---- */

/* Closes an idling (or still opening) session on the way out. */
static void sess_stop(struct sess *s)
{
	if (s->closing)
		return;
	if (s->handshaken && !s->peer_eof)
		mbedtls_ssl_close_notify(&s->ssl);
	sess_close(s);
}

/* EOF on stdin or a signal: print the line if it is not out yet, close
 * every session and our own handles; the loop then runs dry. */
static void idle_stop(struct lg *lg)
{
	if (lg->stopping)
		return;
	if (!lg->printed)
		print_idle(lg);
	lg->stopping = 1;
	if (lg->in_on) {
		lg->in_on = 0;
		uv_close((uv_handle_t *)&lg->in, NULL);
	}
	if (lg->signals_on) {
		lg->signals_on = 0;
		uv_close((uv_handle_t *)&lg->sigint, NULL);
		uv_close((uv_handle_t *)&lg->sigterm, NULL);
	}
	rate_stop(lg);
	for (struct sess *s = lg->live; s; s = s->next)
		sess_stop(s);
}

/* A buffer for stdin, whose bytes are ignored. */
static void on_stdin_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct lg *lg = h->data;

	*buf = uv_buf_init(lg->inbuf, sizeof lg->inbuf);
}

/* stdin: bytes are ignored, EOF (or an error) lets go. */
static void on_stdin(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	if (nread < 0)
		idle_stop(st->data);
}

/* SIGINT or SIGTERM lets go. */
static void on_signal(uv_signal_t *h, int signum)
{
	idle_stop(h->data);
}

/* Watches stdin when it is a pipe or a tty (not a file or /dev/null, which
 * would end at once), and SIGINT/SIGTERM. */
static void idle_watch(struct lg *lg)
{
	uv_handle_type t = uv_guess_handle(0);
	int rc = -1;

	uv_signal_init(lg->loop, &lg->sigint);
	uv_signal_init(lg->loop, &lg->sigterm);
	lg->sigint.data = lg->sigterm.data = lg;
	uv_signal_start(&lg->sigint, on_signal, SIGINT);
	uv_signal_start(&lg->sigterm, on_signal, SIGTERM);
	lg->signals_on = 1;
	if (t == UV_TTY) {
		rc = uv_tty_init(lg->loop, &lg->in.tty, 0, 1);
	} else if (t == UV_NAMED_PIPE) {
		rc = uv_pipe_init(lg->loop, &lg->in.pipe, 0);
		if (rc == 0 && (rc = uv_pipe_open(&lg->in.pipe, 0)) != 0)
			uv_close((uv_handle_t *)&lg->in, NULL);
	}
	if (rc != 0)
		return;
	lg->in.pipe.data = lg;
	lg->in_on = 1;
	if (uv_read_start((uv_stream_t *)&lg->in, on_stdin_alloc, on_stdin) != 0) {
		lg->in_on = 0;
		uv_close((uv_handle_t *)&lg->in, NULL);
	}
}

/* ---- results ---- */

/* qsort order for doubles. */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (nearest rank) of n sorted values; 0 when none. */
static double pct(const double *v, long n, long p)
{
	long k = (n * p + 99) / 100 - 1;

	if (n == 0)
		return 0;
	return v[k < 0 ? 0 : k];
}

/* "key":{"p50":..,"p90":..,"p99":..,"max":..} over v. */
static void print_dist(const char *key, double *v, long n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	printf("\"%s\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f}", key,
	       pct(v, n, 50), pct(v, n, 90), pct(v, n, 99), n ? v[n - 1] : 0.0);
}

/* "errors":[...]: the kept error strings (printable ASCII already). */
static void print_errors(const struct lg *lg)
{
	printf("\"errors\":[");
	for (int i = 0; i < lg->nerrors; i++) {
		if (i)
			putchar(',');
		putchar('"');
		for (const char *p = lg->errors[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				putchar('\\');
			putchar(*p);
		}
		putchar('"');
	}
	putchar(']');
}

/* Seconds between two uv_hrtime() readings. */
static double secs(uint64_t from, uint64_t to)
{
	return to > from ? (double)(to - from) / 1e9 : 0.0;
}

/* "version":..,"suite":.. : what the handshakes agreed ("mixed" when
 * not all the same, "" when none finished). Printable ASCII already. */
static void print_agreed(const struct lg *lg)
{
	printf("\"version\":\"%s\",\"suite\":\"%s\"",
	       lg->agreed_mixed ? "mixed" : lg->agreed_version,
	       lg->agreed_mixed ? "mixed" : lg->agreed_suite);
}

/* The login line. */
static void print_login(struct lg *lg)
{
	double wall = secs(lg->t_start, lg->t_end);

	printf("{\"mode\":\"login\",\"ok\":%ld,\"failed\":%ld,\"wall_s\":%.3f,\"rate\":%.1f,"
	       "\"cpu_s\":%.3f,\"resumed\":%ld,\"offered\":%ld,", lg->ok, lg->failed, wall,
	       wall > 0 ? lg->ok / wall : 0.0, lg->cpu_end - lg->cpu0, lg->resumed, lg->offered);
	print_agreed(lg);
	putchar(',');
	print_dist("greet_ms", lg->greet_ms, lg->ngreet);
	putchar(',');
	print_dist("login_ms", lg->login_ms, lg->nlogin);
	putchar(',');
	print_errors(lg);
	printf("}\n");
}

/* The fetch/retr line. */
static void print_bulk(struct lg *lg)
{
	double wall = (double)lg->bulk_ns / 1e9;

	printf("{\"mode\":\"%s\",\"ok\":%ld,\"repeat\":%ld,\"bytes\":%llu,\"wall_s\":%.6f,"
	       "\"mb_s\":%.2f,\"cpu_s\":%.3f", lg->o.mode->name, lg->ok, lg->o.repeat,
	       (unsigned long long)lg->bytes, wall,
	       wall > 0 ? (double)lg->bytes / 1e6 / wall : 0.0, lg->cpu_end - lg->cpu0);
	putchar(',');
	print_agreed(lg);
	if (lg->nerrors) {
		putchar(',');
		print_errors(lg);
	}
	printf("}\n");
}

/* The idle line, once every session idles or failed (or on an early
 * stop). */
static void print_idle(struct lg *lg)
{
	lg->t_end = uv_hrtime();
	printf("{\"mode\":\"idle\",\"established\":%ld,\"failed\":%ld,\"wall_s\":%.3f,"
	       "\"cpu_s\":%.3f", lg->established, lg->failed, secs(lg->t_start, lg->t_end),
	       cpu_now() - lg->cpu0);
	if (lg->nerrors) {
		putchar(',');
		print_errors(lg);
	}
	printf("}\n");
	fflush(stdout);
	lg->printed = 1;
}

/* ---- main ---- */

/* Frees what setup made. */
static void lg_free(struct lg *lg)
{
	for (int i = 0; i < CMD_N; i++)
		free(lg->cmd[i]);
	free(lg->greet_ms);
	free(lg->login_ms);
	free(lg->out);
	mbedtls_ssl_session_free(&lg->saved);
	mbedtls_ssl_config_free(&lg->conf);
	mbedtls_ssl_config_free(&lg->conf_own);
	free(lg->known);
	mbedtls_x509_crt_free(&lg->ca);
	mbedtls_psa_crypto_free();
	free(lg);
}

/* Everything before the first connection; -1 after saying why. */
static int lg_setup(struct lg *lg)
{
	const struct opts *o = &lg->o;

	lg->steps = o->pop3 ? o->mode->pop3 : o->mode->imap;
	if (uv_ip4_addr(o->host, o->port, &lg->addr) != 0 ||
	    uv_ip4_addr(o->host, o->resume_port ? o->resume_port : o->port, &lg->resume_addr) != 0) {
		fprintf(stderr, "loadgen: --host must be a numeric IPv4 address\n");
		return -1;
	}
	if (raise_nofile(o) != 0)
		return -1;
	lg->greet_ms = calloc((size_t)o->count, sizeof(double));
	lg->login_ms = calloc((size_t)o->count, sizeof(double));
	if (!lg->greet_ms || !lg->login_ms || build_cmds(lg) != 0) {
		fprintf(stderr, "loadgen: out of memory\n");
		return -1;
	}
	return tls_setup(lg);
}

int main(int argc, char **argv)
{
	struct lg *lg = calloc(1, sizeof *lg);
	int rc;

	if (!lg)
		return 2;
	mbedtls_x509_crt_init(&lg->ca);
	mbedtls_ssl_config_init(&lg->conf);
	mbedtls_ssl_config_init(&lg->conf_own);
	mbedtls_ssl_session_init(&lg->saved);
	rc = parse_opts(&lg->o, argc, argv);
	if (rc != 0 || lg_setup(lg) != 0) {
		lg_free(lg);
		return rc == 1 ? 0 : 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lg->loop = uv_default_loop();
	if (lg->o.mode->kind == K_IDLE)
		idle_watch(lg);
	run_start(lg);
	uv_run(lg->loop, UV_RUN_DEFAULT);
	if (lg->t_end == 0) {
		lg->t_end = uv_hrtime();
		lg->cpu_end = cpu_now();
	}
	if (lg->o.mode->kind == K_LOGIN)
		print_login(lg);
	else if (lg->o.mode->kind == K_BULK)
		print_bulk(lg);
	fflush(stdout);
	if (lg->held_back > 0)
		fprintf(stderr, "loadgen: new sessions waited %ld times for a free handshake slot "
		        "(at most %d TLS 1.3 handshakes at once: PSA key slots)\n",
		        lg->held_back, TLS13_HANDSHAKES_MAX);
	rc = lg->failed == 0 && (lg->o.mode->kind == K_IDLE || lg->ok == lg->o.count) ? 0 : 1;
	if (uv_loop_close(lg->loop) != 0)
		fprintf(stderr, "loadgen: handles left open at exit\n");
	lg_free(lg);
	return rc;
}
