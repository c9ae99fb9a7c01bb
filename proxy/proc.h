/*
 * proc: what the moat process does to itself at startup, around binding
 * its sockets: the file descriptor limit, the pid file, and dropping root
 * (chroot, group, user) before the workers accept anything.
 *
 * Each returns 0, or -1 with a sentence in err; none of them exits.
 */
#ifndef MOAT_PROC_H
#define MOAT_PROC_H

#include <stddef.h>

#include "cfg.h"

/* Started as root with no user to switch to and allow_root = no: -1 and
 * why (moat refuses to serve the internet as root unless told to). */
int proc_check_root(const struct cfg *c, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Raises the soft descriptor limit to the hard one. *have is what it is
 * afterwards; need is what the configuration asks for (two per
 * connection, plus listeners and some spare). Returns 0, or -1 with a
 * warning in err when have < need. */
int proc_fd_limit(unsigned long need, unsigned long *have, char *err, size_t errlen);

/* Writes the process id to path (created 0644 under a fresh name, then
 * renamed over path: a link there is replaced, never followed). Refuses
 * a directory writable by group or others without the sticky bit, or
 * owned by someone other than root, moat's euid or user (may be NULL). */
int proc_write_pid(const char *path, const char *user, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* As root: chroot if asked, then the group (the user's own unless group
 * is set) and the user, with no supplementary groups; then checks that
 * root cannot come back. Not root: only checks that user (if set) is who
 * moat already runs as. Call before any thread starts. */
int proc_drop(const struct cfg *c, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif /* MOAT_PROC_H */
