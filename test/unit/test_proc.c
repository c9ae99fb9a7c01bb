/*
 * Unit tests for proxy/proc.c: proc_write_pid() in a fresh directory
 * (the pid file holds the pid, mode 0644, nothing else left behind);
 * links planted at "<pid_file>.tmp" and at the pid file itself to a
 * victim file are not followed and the victim is unchanged; directory
 * rows (modes and, as root, owners) accepted or refused with the
 * directory and the reason in the message; proc_check_root() names a
 * dedicated account, never nobody.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"

struct fixture {
	char dir[256];            /* a fresh directory, 0700, ours */
	char pid[300];            /* dir/moat.pid */
};

/* Each test gets an empty directory of its own. */
static int setup(void **state)
{
	static struct fixture f;
	const char *tmp = getenv("TMPDIR");

	snprintf(f.dir, sizeof f.dir, "%s/moat-test-proc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f.dir))
		return -1;
	snprintf(f.pid, sizeof f.pid, "%s/moat.pid", f.dir);
	*state = &f;
	return 0;
}

/* Removes whatever the test left in its directory, then the directory. */
static int teardown(void **state)
{
	struct fixture *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *e;

	if (d) {
		while ((e = readdir(d)) != NULL)
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	chmod(f->dir, 0700);
	return rmdir(f->dir);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

static void read_file(const char *path, char *buf, size_t size)
{
	FILE *fp = fopen(path, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(buf, 1, size - 1, fp);
	buf[n] = '\0';
	fclose(fp);
}

/* The entries of dir, other than . and .., counted. */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void assert_holds_pid(const char *path)
{
	char want[32], got[64];
	struct stat st;

	snprintf(want, sizeof want, "%ld\n", (long)getpid());
	read_file(path, got, sizeof got);
	assert_string_equal(got, want);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(st.st_uid, geteuid());
}

static void test_writes_pid(void **state)
{
	struct fixture *f = *state;
	char err[600] = "";

	assert_int_equal(proc_write_pid(f->pid, NULL, err, sizeof err), 0);
	assert_holds_pid(f->pid);
	assert_int_equal(entries(f->dir), 1);      /* no temporary file left */
	/* Again over the old one (a restart). */
	assert_int_equal(proc_write_pid(f->pid, NULL, err, sizeof err), 0);
	assert_holds_pid(f->pid);
	assert_int_equal(entries(f->dir), 1);
}

/* What the directory's owner could plant: a link at the old temporary
 * name, and one at the pid file itself, to a file it may not write. */
static void test_links_not_followed(void **state)
{
	struct fixture *f = *state;
	char victim[300], tmp[310], got[64], err[600] = "";
	struct stat before, after;

	snprintf(victim, sizeof victim, "%s/victim", f->dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", f->pid);
	write_file(victim, "secret\n", 0600);
	assert_int_equal(stat(victim, &before), 0);
	assert_int_equal(symlink(victim, tmp), 0);
	assert_int_equal(symlink(victim, f->pid), 0);

	assert_int_equal(proc_write_pid(f->pid, NULL, err, sizeof err), 0);
	read_file(victim, got, sizeof got);
	assert_string_equal(got, "secret\n");
	assert_int_equal(stat(victim, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(after.st_size, before.st_size);
	assert_int_equal(after.st_mode & 07777, 0600);
	assert_true(after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
	            after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
	assert_holds_pid(f->pid);                  /* the link replaced, not followed */
	assert_int_equal(lstat(tmp, &after), 0);    /* the planted link untouched */
	assert_true(S_ISLNK(after.st_mode));
	assert_int_equal(entries(f->dir), 3);      /* victim, .tmp link, pid file */
}

/* Directory rows: its mode, its owner (-1: ours; others need root), the
 * user = moat would become, and what proc_write_pid says. */
static const struct dir_row {
	mode_t mode;
	long owner;
	const char *user;
	int rc;
	const char *msg;              /* in err when refused */
} dir_rows[] = {
	{ 0700, -1, NULL, 0, NULL },
	{ 0755, -1, NULL, 0, NULL },
	{ 01777, -1, NULL, 0, NULL },                 /* like /tmp */
	{ 01770, -1, NULL, 0, NULL },
	{ 0775, -1, NULL, -1, "is writable by group or others (mode 0775) without the sticky bit" },
	{ 0757, -1, NULL, -1, "is writable by group or others (mode 0757) without the sticky bit" },
	{ 0777, -1, NULL, -1, "is writable by group or others (mode 0777) without the sticky bit" },
	{ 0720, -1, "12345", -1, "is writable by group or others" },
	{ 0755, 12345, "12345", 0, NULL },            /* moat's user's own */
	{ 0700, 12345, "12346", -1, "is owned by uid 12345, which is neither root" },
	{ 0700, 12345, NULL, -1, "is owned by uid 12345, which is neither root" },
	{ 01777, 12345, NULL, -1, "is owned by uid 12345" }, /* sticky, but the owner may rename */
};

static void test_directory_rows(void **state)
{
	struct fixture *f = *state;
	int ran = 0;

	for (size_t i = 0; i < sizeof dir_rows / sizeof dir_rows[0]; i++) {
		const struct dir_row *r = &dir_rows[i];
		char err[600] = "";
		int rc;

		if (r->owner >= 0 && geteuid() != 0)
			continue;
		ran++;
		unlink(f->pid);
		assert_int_equal(chown(f->dir, r->owner >= 0 ? (uid_t)r->owner : geteuid(),
		                       (gid_t)-1), 0);
		assert_int_equal(chmod(f->dir, r->mode), 0);
		rc = proc_write_pid(f->pid, r->user, err, sizeof err);
		if (rc != r->rc)
			fail_msg("row %zu: rc %d, want %d (%s)", i, rc, r->rc, err);
		if (r->rc == 0) {
			assert_holds_pid(f->pid);
			assert_int_equal(entries(f->dir), 1);
			continue;
		}
		if (!strstr(err, r->msg) || !strstr(err, f->dir) || !strstr(err, f->pid))
			fail_msg("row %zu: \"%s\" lacks \"%s\" or the directory", i, err, r->msg);
		assert_int_equal(entries(f->dir), 0);  /* nothing written */
	}
	assert_int_equal(chown(f->dir, geteuid(), (gid_t)-1), 0);
	assert_true(ran > 0);                         /* not root: the owner rows are left out */
}

static void test_missing_directory(void **state)
{
	struct fixture *f = *state;
	char path[300], err[600] = "";

	snprintf(path, sizeof path, "%s/no/moat.pid", f->dir);
	assert_int_equal(proc_write_pid(path, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "No such file or directory"));
}

/* A pid file named without a directory goes into the current one. */
static void test_relative_name(void **state)
{
	struct fixture *f = *state;
	char cwd[4096], err[600] = "";

	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(f->dir), 0);
	assert_int_equal(proc_write_pid("moat.pid", NULL, err, sizeof err), 0);
	assert_int_equal(chdir(cwd), 0);
	assert_holds_pid(f->pid);
}

static void test_root_refusal_names_dedicated_user(void **state)
{
	struct cfg c;
	char err[600] = "";

	if (geteuid() != 0)
		skip();
	memset(&c, 0, sizeof c);
	c.path = "moat.ini";
	assert_int_equal(proc_check_root(&c, err, sizeof err), -1);
	assert_non_null(strstr(err, "moat.ini"));
	assert_non_null(strstr(err, "user = moat"));
	assert_null(strstr(err, "nobody"));
	assert_non_null(strstr(err, "allow_root = yes"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_writes_pid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_links_not_followed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relative_name, setup, teardown),
		cmocka_unit_test(test_root_refusal_names_dedicated_user),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
