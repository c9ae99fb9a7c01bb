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
	snprintf(err, errlen, "%s: moat runs as root; set user = moat in [moat] (a dedicated "
	         "account that owns no other files and runs no other processes, e.g. "
	         "useradd --system --no-create-home --shell /usr/sbin/nologin moat) to drop "
	         "root after binding the ports, or allow_root = yes to stay root", c->path);
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

/* Before the pid file is written as root: its directory must not let
 * anyone else swap names in it (writable by group or others without the
 * sticky bit, or owned by someone other than root, moat or user). */
static int check_pid_dir(const char *path, const char *user, char *err, size_t errlen)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	struct stat st;
	uid_t uid = 0;
	gid_t gid;

	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else
		snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	if (user && find_user(user, &uid, &gid, err, errlen) < 0)
		return -1;
	if (stat(dir, &st) != 0) {
		snprintf(err, errlen, "pid_file %s: directory %s: %s", path, dir, strerror(errno));
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		snprintf(err, errlen, "pid_file %s: directory %s is writable by group or others "
		         "(mode %04o) without the sticky bit; chmod go-w it", path, dir,
		         (unsigned)(st.st_mode & 07777));
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid() && (!user || st.st_uid != uid)) {
		snprintf(err, errlen, "pid_file %s: directory %s is owned by uid %ld, which is "
		         "neither root, moat's uid (%ld) nor %s%s; chown it", path, dir,
		         (long)st.st_uid, (long)geteuid(), user ? "user = " : "its user (none set)",
		         user ? user : "");
		return -1;
	}
	return 0;
}

int proc_write_pid(const char *path, const char *user, char *err, size_t errlen)
{
	char tmp[4096], text[32];
	int fd, n;

	if (check_pid_dir(path, user, err, errlen) < 0)
		return -1;
	/* A fresh name (O_EXCL: never through a link), then rename, which
	 * replaces whatever is at path, a link included, without following it. */
	if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp) {
		snprintf(err, errlen, "pid_file %s: name too long", path);
		return -1;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "pid_file %s: %s", path, strerror(errno));
		return -1;
	}
	n = snprintf(text, sizeof text, "%ld\n", (long)getpid());
	if (fchmod(fd, 0644) != 0 || write(fd, text, (size_t)n) != n) {
		snprintf(err, errlen, "pid_file %s: %s", path, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		snprintf(err, errlen, "pid_file %s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
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
