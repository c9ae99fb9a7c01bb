/*
 * probe: asks an IMAP or POP3 backend for its capabilities at startup,
 * so that moat can advertise before login what the backend will offer
 * after it (IDLE, CONDSTORE, TOP, UIDL, ...). Blocking, with a timeout;
 * runs in the main thread before the workers start.
 */
#ifndef MOAT_PROBE_H
#define MOAT_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

/* proxy_version 1 or 2: the backend expects a PROXY protocol header
 * first; the probe sends one that carries no client (LOCAL). 0: none. */

/* Connects, reads the greeting, sends CAPABILITY and LOGOUT. On success
 * returns 0 with the space-separated list (unfiltered) in caps; else -1
 * with a reason in err. */
int probe_imap_caps(const struct cfg_addr *backend, int proxy_version, uint32_t timeout_ms,
                    char *caps, size_t capslen, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Connects, reads the "+OK" greeting, sends CAPA and QUIT. On success
 * returns 0 with the answer's lines (unfiltered, without the final "."
 * and with byte-stuffing undone) in caps, each ended by CRLF; a line
 * that does not fit whole in capslen (with caps' NUL) is left out. Else
 * -1 with a reason in err and caps empty. */
int probe_pop3_caps(const struct cfg_addr *backend, int proxy_version, uint32_t timeout_ms,
                    char *caps, size_t capslen, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif /* MOAT_PROBE_H */
