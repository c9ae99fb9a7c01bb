/* proc: see proc.h. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int proc_check_root(const struct cfg *c, char *err, size_t errlen)
{
	if (geteuid() != 0 || c->user || c->allow_root)
		return 0;
	snprintf(err, errlen, "%s: moat runs as root; set user = (an unprivileged account such "
	         "as moat or nobody) in [moat] to drop root after binding the ports, or "
	         "allow_root = yes to stay root", c->path);
	return -1;
}

int proc_fd_limit(unsigned long need, unsigned long *have, char *err, size_t errlen)
{
	struct rlimit r;

	if (getrlimit(RLIMIT_NOFILE, &r) != 0) {
		*have = 0;
		snprintf(err, errlen, "getrlimit: %s", strerror(errno));
		return -1;
	}
	if (r.rlim_cur < r.rlim_max) {
		r.rlim_cur = r.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &r);
		(void)getrlimit(RLIMIT_NOFILE, &r);
	}
	*have = (unsigned long)r.rlim_cur;
	if (need && *have < need) {
		snprintf(err, errlen, "the file descriptor limit is %lu but max_connections needs "
		         "about %lu; raise it (LimitNOFILE= in the systemd unit, ulimit -n) or lower "
		         "max_connections", *have, need);
		return -1;
	}
	return 0;
}

int proc_write_pid(const char *path, char *err, size_t errlen)
{
	char tmp[4096], text[32];
	int fd, n;

	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(err, errlen, "pid_file %s: %s", path, strerror(errno));
		return -1;
	}
	n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
	if (write(fd, text, (size_t)n) != n || close(fd) != 0 || rename(tmp, path) != 0) {
		snprintf(err, errlen, "pid_file %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* A user name or number to its uid and primary group. */
static int find_user(const char *name, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096], *end;
	unsigned long n = strtoul(name, &end, 10);

	if (*name && !*end) {
		*uid = (uid_t)n;
		if (getpwuid_r(*uid, &pw, buf, sizeof buf, &res) == 0 && res)
			*gid = pw.pw_gid;
		else
			*gid = (gid_t)n;   /* a bare number: the group of the same number */
		return 0;
	}
	if (getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || !res) {
		snprintf(err, errlen, "user %s: no such user", name);
		return -1;
	}
	*uid = pw.pw_uid;
	*gid = pw.pw_gid;
	return 0;
}

/* A group name or number to its gid. */
static int find_group(const char *name, gid_t *gid, char *err, size_t errlen)
{
	struct group gr, *res = NULL;
	char buf[4096], *end;
	unsigned long n = strtoul(name, &end, 10);

	if (*name && !*end) {
		*gid = (gid_t)n;
		return 0;
	}
	if (getgrnam_r(name, &gr, buf, sizeof buf, &res) != 0 || !res) {
		snprintf(err, errlen, "group %s: no such group", name);
		return -1;
	}
	*gid = gr.gr_gid;
	return 0;
}

int proc_drop(const struct cfg *c, char *err, size_t errlen)
{
	uid_t uid;
	gid_t gid;

	if (!c->user) {
		if (c->chroot_dir) {
			snprintf(err, errlen, "chroot needs user: set user = as well");
			return -1;
		}
		return 0;
	}
	if (find_user(c->user, &uid, &gid, err, errlen) < 0 ||
	    (c->group && find_group(c->group, &gid, err, errlen) < 0))
		return -1;
	if (geteuid() != 0) {
		if (geteuid() == uid)
			return 0;
		snprintf(err, errlen, "user = %s: moat runs as uid %ld and cannot switch to %s "
		         "without root", c->user, (long)geteuid(), c->user);
		return -1;
	}
	if (uid == 0) {
		snprintf(err, errlen, "user = %s is root; name an unprivileged account", c->user);
		return -1;
	}
	if (c->chroot_dir && (chroot(c->chroot_dir) != 0 || chdir("/") != 0)) {
		snprintf(err, errlen, "chroot %s: %s", c->chroot_dir, strerror(errno));
		return -1;
	}
	if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
		snprintf(err, errlen, "switching to user %s: %s", c->user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 || geteuid() == 0 || getegid() == 0) {
		snprintf(err, errlen, "root privileges could be regained after switching to %s",
		         c->user);
		return -1;
	}
	return 0;
}
