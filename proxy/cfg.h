/*
 * cfg: moat's configuration, read from an INI file with inih.
 *
 * cfg_load()/cfg_parse_string() build an immutable struct cfg. Parsing
 * happens in two passes: the inih handler only copies values and records
 * "FILE:LINE: message" for what it cannot take; a second pass checks what
 * needs the whole file (required keys, duplicates, cross references). All
 * errors are reported, then the config is refused.
 *
 * Ownership: the caller owns the returned struct cfg and frees it with
 * cfg_free(); workers only read it. The error text is malloc'd and owned
 * by the caller.
 */
#ifndef MOAT_CFG_H
#define MOAT_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tls_names.h"

enum cfg_proto { CFG_PROTO_IMAP = 0, CFG_PROTO_POP3 = 1 };
enum cfg_tls_mode { CFG_TLS_IMPLICIT = 0, CFG_TLS_STARTTLS = 1 };
enum cfg_log_level { CFG_LOG_ERROR = 0, CFG_LOG_WARN, CFG_LOG_INFO, CFG_LOG_DEBUG };
enum cfg_client_cert { CFG_CLIENT_NONE = 0, CFG_CLIENT_OPTIONAL, CFG_CLIENT_REQUIRED };
/* What to do about a private key file that group or others may read:
 * auto = strict when moat starts as root, warn otherwise. */
enum cfg_key_perms { CFG_KEYPERM_AUTO = 0, CFG_KEYPERM_STRICT, CFG_KEYPERM_WARN };
enum cfg_log_format { CFG_LOG_KV = 0, CFG_LOG_JSON };
enum cfg_log_target { CFG_LOG_STDERR = 0, CFG_LOG_SYSLOG };
enum cfg_btls { CFG_BTLS_NONE = 0, CFG_BTLS_IMPLICIT, CFG_BTLS_STARTTLS };
enum cfg_forward { CFG_FWD_NONE = 0, CFG_FWD_PROXY_V1, CFG_FWD_PROXY_V2, CFG_FWD_NATIVE };
enum cfg_balance { CFG_BAL_ORDER = 0, CFG_BAL_LEAST_CONN };
enum cfg_facility { CFG_FAC_MAIL = 0, CFG_FAC_DAEMON, CFG_FAC_USER, CFG_FAC_LOCAL0,
                    CFG_FAC_LOCAL1, CFG_FAC_LOCAL2, CFG_FAC_LOCAL3, CFG_FAC_LOCAL4,
                    CFG_FAC_LOCAL5, CFG_FAC_LOCAL6, CFG_FAC_LOCAL7 };

/* An address block, "10.0.0.0/8" or "2001:db8::/32". */
struct cfg_net {
	int family;                   /* AF_INET or AF_INET6 */
	uint8_t addr[16];             /* 4 bytes for AF_INET */
	unsigned prefix;
};

#define CFG_MAX_NETS 32
#define CFG_MAX_LISTENER_BACKENDS 32  /* a listener's backend = list */

struct cfg_nets {
	struct cfg_net v[CFG_MAX_NETS];
	size_t n;
};

/* Whether sa lies in one of the blocks. */
int cfg_net_contains(const struct cfg_nets *nets, const struct sockaddr *sa);

/* "N/duration": N events per window; count 0 means no limit. */
struct cfg_rate {
	unsigned count;
	uint32_t window_ms;
};

/* A resolved socket address with the text it came from. */
struct cfg_addr {
	struct sockaddr_storage sa;
	socklen_t len;
	char text[128];               /* as written in the file */
};

/* A certificate chain and its key: [tls] certificate/key (always the
 * first, named "default") or a [certificate NAME] section. */
struct cfg_cert {
	char *name;
	char *certificate;
	char *key;
	int line;                     /* of the section header */
	int certificate_line, key_line;
};

/* A mail store: a [backend NAME] section, or an address written as a
 * listener's backend (named by that address, no health checks). A
 * listener connects to the address of its own protocol. */
struct cfg_backend {
	char *name;
	int line;                     /* of the section header, or the listener's backend = */
	int is_inline;                /* from a listener's backend = ADDRESS */
	struct cfg_addr addr[2];      /* by enum cfg_proto; sa.ss_family 0: none */
	int addr_line[2];
	enum cfg_forward forward;     /* how the client's address reaches it */
	uint32_t check_interval_ms;   /* health checks; 0: none */
	uint32_t check_timeout_ms;
	int strip_domain;             /* login name sent without "@domain" */
	char *add_domain;             /* "@add_domain" appended when it has none */
	int insecure;                 /* plaintext to another host allowed */
	enum cfg_btls tls;            /* TLS to it: none, from the first byte, STARTTLS/STLS */
	char *ca;                     /* PEM CAs its certificate must chain to */
	char *tls_name;               /* the name its certificate must carry (and SNI) */
	int tls_line;
};

/* One [listener NAME] section. */
struct cfg_listener {
	char *name;
	int line;                     /* line of the section header */
	struct cfg_addr address;
	enum cfg_proto protocol;
	enum cfg_tls_mode tls;
	char *backend_text;           /* backend = as written */
	struct cfg_addr backend;      /* the first backend's address, for probes */
	size_t *bk;                   /* its backends, indexes into cfg->backends, in order */
	size_t nbk;
	enum cfg_balance balance;
	int insecure;                 /* an inline backend may be plaintext to another host */
	int proxy_protocol;           /* a PROXY v1/v2 header comes first ... */
	struct cfg_nets proxy_trusted; /* ... from these sources only */
	uint32_t handshake_timeout_ms;
	uint32_t connect_timeout_ms;
	uint32_t idle_timeout_ms;     /* after the relay starts */
	/* the pre-auth dialogue */
	char *greeting;               /* text after "* OK [...]" / "+OK " */
	char *capabilities;           /* passed-through caps; NULL: probe */
	int transparent;              /* relay from the first byte after TLS */
	uint32_t max_command;         /* pre-auth command/literal, bytes */
	uint32_t preauth_timeout_ms;
	uint32_t auth_failure_delay_ms; /* times the failure count */
	unsigned max_auth_failures;
	/* TLS */
	char *certificates;           /* as written; NULL: every certificate */
	size_t *cert_idx;             /* resolved: indexes into cfg->certs */
	size_t ncerts;
	int certificates_line;
	enum cfg_client_cert client_certificate;
	char *client_ca;
	int client_ca_line;
};

struct cfg {
	char *path;
	/* [moat] */
	unsigned workers;             /* resolved: never 0 */
	enum cfg_log_level log_level;
	uint32_t buffer_size;         /* per-worker read buffer, bytes */
	uint32_t max_pending;         /* queued bytes toward one peer before reads stop */
	enum cfg_log_format log_format;
	enum cfg_log_target log_target;
	enum cfg_facility syslog_facility;
	/* limits; a count of 0 means none */
	unsigned max_connections;
	unsigned max_connections_per_ip;
	struct cfg_rate connection_rate_per_ip;
	struct cfg_rate auth_fail_limit; /* failed logins per address, then ... */
	uint32_t auth_block_ms;          /* ... logins from it refused this long */
	unsigned ipv6_prefix;            /* how IPv6 clients are grouped */
	struct cfg_nets limits_exempt;   /* no per-address limits for these */
	uint32_t shutdown_grace_ms;      /* SIGTERM: sessions get this long to end */
	/* process */
	char *user, *group;              /* drop to these after binding; NULL: stay */
	char *chroot_dir;
	char *pid_file;
	int allow_root;                  /* may keep running as root */
	/* [metrics] */
	struct cfg_addr metrics_address; /* family 0: no metrics */
	struct cfg_addr health_address;  /* [health]: GET /healthz only; family 0: none */
	uint32_t drain_delay_ms;         /* SIGTERM: keep serving (health 503) this long first */
	char *route_map;                 /* per-user routing map file; NULL: none */
	int route_map_line;
	/* [tls] */
	char *certificate;
	char *key;
	int certificate_line, key_line; /* where they were set, for messages */
	int min_tls13;                /* min_version = 1.3 */
	uint16_t tls12_ciphers[TLS_MAX_SUITES + 1]; /* IANA ids, 0-terminated */
	uint16_t tls13_ciphers[TLS_MAX_SUITES + 1];
	uint16_t groups[TLS_MAX_GROUPS + 1];
	int prefer_server_ciphers;
	int session_tickets;
	uint32_t ticket_lifetime_ms;
	enum cfg_key_perms key_permissions;
	unsigned expiry_warning_days;
	int tls_line;                 /* of the [tls] header */
	char *ticket_key_file;        /* keys shared by instances; NULL: per process */
	int ticket_key_file_line;
	/* every certificate: [0] is [tls]'s, then [certificate NAME]s in order */
	struct cfg_cert *certs;
	size_t ncerts;
	/* [backend NAME]s, then the listeners' inline addresses */
	struct cfg_backend *backends;
	size_t nbackends;
	/* [listener NAME] ... */
	struct cfg_listener *listeners;
	size_t nlisteners;
};

/* Reads and checks FILE. On success returns 0 and sets *out. On failure
 * returns -1 and sets *errors to one "FILE:LINE: message\n" per problem,
 * sorted by line; problems about the whole file (a missing section) read
 * "FILE: message\n" and come last. *errors is NULL only if memory ran out. */
int cfg_load(const char *path, struct cfg **out, char **errors)
	__attribute__((warn_unused_result));

/* Same, from a string; NAME stands for the file name in messages. */
int cfg_parse_string(const char *text, const char *name, struct cfg **out,
                     char **errors) __attribute__((warn_unused_result));

void cfg_free(struct cfg *c);

/* "host:port", "[v6]:port" or "*:port" to an address (numeric hosts and
 * "localhost"). Returns 0, or -1 with a reason in why. */
int cfg_parse_addr(const char *s, struct cfg_addr *a, const char **why);

/* "250ms", "10s", "31m", "2h", "1d" or a bare number of seconds; units
 * lowercase, no sign, fraction or inner space ("10 s" is refused). Returns
 * 0, or -1 (and leaves *ms alone) on junk or above UINT32_MAX ms. */
int cfg_parse_duration(const char *s, uint32_t *ms);

/* "16k", "1m", or bytes (k/K = 1024, m/M = 1048576). Returns 0, or -1
 * (and leaves *bytes alone) on junk or above UINT32_MAX. */
int cfg_parse_size(const char *s, uint32_t *bytes);

const char *cfg_proto_name(enum cfg_proto p);

/* Whether the address is on this host (127.0.0.0/8, ::1, v4-mapped). */
int cfg_addr_is_loopback(const struct cfg_addr *a);

#endif /* MOAT_CFG_H */
