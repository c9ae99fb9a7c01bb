"""moat as an operator runs it: privileges, pid file, descriptor limit,
drain on SIGTERM, log formats and targets. Real clients against a real
Dovecot (demo/demo: the three demo messages, UIDs 1-3, and a big message,
UID 4, for the FETCH cut at the end of the grace period: big_size()).

Each test starts moats of its own (the harness's Moat, or OpsMoat below
when the test needs to control how moat is started):

  TestPrivileges   user = nobody (Uid/Gid/Groups/CapEff in /proc), group =,
                   user = root and unknown users refused, root without
                   user refused (also by moat -t; the message suggests a
                   dedicated moat account, never nobody), allow_root =
                   yes stays root, started as nobody without root at all (key
                   readable by its group: a warning, not a refusal),
                   chroot
  TestPidFile      written at startup with moat's pid; removed at exit
                   when moat may still remove it; symlinks planted by
                   moat's user at the pid file and "<pid_file>.tmp" not
                   followed (the victim, a root 0600 file, intact); a
                   directory others may write (not sticky) or owned by
                   someone else refused
  TestFdLimit      max_connections beyond the hard RLIMIT_NOFILE: warning
                   event=fd_limit, and the soft limit raised to the hard one
  TestDrain        SIGTERM with shutdown_grace: pre-login sessions end at
                   once, listeners close at once, logged-in sessions work
                   on until the grace ends (IMAP: BYE between responses,
                   never inside a FETCH literal; POP3: just the close); a
                   second SIGTERM ends everything at once
  TestLogs         log_format = json (every line, session_end fields, no
                   password), log_target = syslog (a /dev/log of the
                   test's own), a reload switching kv to json
"""

import grp
import json
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest

import harness

LOOPBACK = harness.LOOPBACK
NOBODY = 65534                          # the uid moat runs as with user = nobody
try:
    NOBODY_GID = pwd.getpwnam("nobody").pw_gid      # its own group (nogroup)
except KeyError:
    NOBODY_GID = 65534

DOVECOT = None
BIG_NAME = "1000000100.M100P1.ops"      # after the demo messages: UID 4
BIG_UID = 4
BIG_SIZE = None
BIG = None                              # its bytes

IMAP_BYE_SHUTDOWN = b"* BYE [UNAVAILABLE] Server shutting down, try again later\r\n"
IMAP_BYE_PREAUTH = b"* BYE Server shutting down\r\n"


def after_untagged(data):
    """What follows the whole untagged responses (other than BYE) at the
    start of data: the backend may send some before moat's BYE (Dovecot's
    IDLE keepalive "* OK Still here" comes at a time shared by all of a
    user's connections, so at any moment of a test). moat must put its BYE
    between two responses, never inside one."""
    while data.startswith(b"* ") and not data.startswith(b"* BYE"):
        end = data.find(b"\r\n")
        if end < 0:
            break
        data = data[end + 2:]
    return data

# A wrong password no log line may ever contain (nor its SASL blob).
SECRET = "Qx7-ops-secret-wrong-5e1d"


def big_size():
    """Size of the message the FETCH-cut test does not read until the grace
    period is over: moat must still be inside its literal then, so it must
    be larger than what the kernel buffers between the backend and the
    client. moat's send buffer alone grows to tcp_wmem's maximum (4 MiB by
    default: a 2 MiB literal went out whole into it), the client's stays
    small (SmallWindowImap), moat's own queue is max_pending (256k)."""
    wmem_max = 4 << 20
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        pass
    return min(max(2 << 20, 2 * wmem_max + (2 << 20)), 64 << 20)


def setUpModule():
    global DOVECOT, BIG, BIG_SIZE
    harness.certs()
    BIG_SIZE = big_size()
    BIG = harness.make_big_message(seed=4711, size=BIG_SIZE)
    # The FETCH-cut test looks for "BYE" inside the literal.
    assert b"* BYE" not in BIG
    DOVECOT = harness.Dovecot(messages={"demo": [(BIG_NAME, BIG)]},
                              extra_conf=harness.DOVECOT_NO_AUTH_DELAY,
                              name="dovecot-ops").start()


def tearDownModule():
    if DOVECOT is not None:
        DOVECOT.stop()


# ---------------------------------------------------------------- helpers

def strip_allow_root(text):
    """A config text without the harness's "allow_root = yes" line."""
    return "\n".join(l for l in text.split("\n") if l.strip() != "allow_root = yes")


def imaps(name="imaps", **options):
    return harness.Listener(name, "imap", DOVECOT.imap_port, options=options)


def pop3s(name="pop3s", **options):
    return harness.Listener(name, "pop3", DOVECOT.pop3_port, options=options)


class OpsMoat(harness.Moat):
    """A harness Moat that may run without the harness's allow_root line
    (root=False), with extra subprocess.Popen arguments (popen_kw: user=,
    group=, preexec_fn=) and with another way to tell it is ready (ready:
    a callable(moat, timeout); default event=ready in its stderr)."""

    def __init__(self, listeners, name="moat-ops", options=None, root=True,
                 popen_kw=None, cert=None, key=None, extra_tls=""):
        super().__init__(listeners, name=name, options=options, cert=cert, key=key,
                         extra_tls=extra_tls)
        self.text = harness.moat_config(listeners, options=options, cert=cert, key=key,
                                        extra_tls=extra_tls)
        if not root:
            self.text = strip_allow_root(self.text)
        self.write_config(self.text)
        os.chmod(self.config_path, 0o644)
        self.popen_kw = dict(popen_kw or {})

    def start(self, timeout=20, ready=None):
        binary = harness.moat_binary()
        log = open(self.log_path, "wb")
        try:
            self.proc = harness.spawn(self.wrapper + [binary, "-c", self.config_path],
                                      stdout=log, stderr=subprocess.STDOUT,
                                      **self.popen_kw)
        finally:
            log.close()
        try:
            if ready is None:
                self.wait_log(r"event=ready", timeout)
            else:
                ready(self, timeout)
        except Exception:
            self.kill()
            raise
        return self

    @property
    def pid(self):
        return self.proc.pid


def start_moat(test, listeners, **kw):
    """An OpsMoat started, killed at the end of the test whatever happens."""
    ready = kw.pop("ready", None)
    m = OpsMoat(listeners, **kw)
    test.addCleanup(m.kill)
    return m.start(ready=ready)


def proc_status(pid):
    """/proc/PID/status as {field: [words]}."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def proc_nofile(pid):
    """(soft, hard) "Max open files" from /proc/PID/limits."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                w = line.split()
                return w[3], w[4]
    raise AssertionError("no Max open files in /proc/%d/limits" % pid)


class StrictContext(ssl.SSLContext):
    """A client context whose sockets report a TCP close without TLS
    close_notify as SSLEOFError (suppress_ragged_eofs=False), so that
    harness.recv_until_eof() says "eof" only after a proper TLS close."""

    def wrap_socket(self, sock, **kw):
        kw["suppress_ragged_eofs"] = False
        return super().wrap_socket(sock, **kw)


def strict_context():
    """Like harness.client_context(): trusts the test CA only."""
    ctx = StrictContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=harness.certs().ca)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def imap_login(port, tls=True, starttls=False, user="demo", password="demo", ctx=None):
    """An ImapClient logged in (LOGIN through moat's own dialogue) with
    INBOX examined (read-only); STARTTLS first with starttls=True."""
    c = harness.ImapClient(port, tls=tls, ctx=ctx)
    try:
        g = c.greeting()
        assert g.startswith(b"* OK"), g
        if starttls:
            c.starttls()
        _, r = c.cmd("a", "LOGIN %s %s" % (user, password))
        assert r.startswith(b"a OK"), (r, c.dump())
        _, r = c.cmd("x", "EXAMINE INBOX")
        assert r.startswith(b"x OK"), (r, c.dump())
    except BaseException:
        c.close()
        raise
    return c


def imap_fetch(c, tag, n):
    """FETCH n (BODY.PEEK[]) on a logged-in client: the literal's bytes."""
    untagged, r = c.cmd(tag, "FETCH %d (BODY.PEEK[])" % n)
    assert r.startswith(tag.encode() + b" OK"), (r, c.dump())
    for u in untagged:
        m = re.match(rb"\* %d FETCH \(.*?BODY\[\] \{(\d+)\}\r\n" % n, u, re.S)
        if m:
            start = m.end()
            return u[start:start + int(m.group(1))]
    raise AssertionError("no BODY[] in %r" % untagged)


def imap_cycle(test, port, tls=True, starttls=False, uid=1):
    """Logs in, fetches a message and logs out; checks the message."""
    c = imap_login(port, tls=tls, starttls=starttls)
    try:
        test.assertEqual(imap_fetch(c, "f", uid), DOVECOT.message(uid))
        untagged, r = c.cmd("z", "LOGOUT")
        test.assertTrue(r.startswith(b"z OK"), c.dump())
    finally:
        c.close()


def pop3_login(port, ctx=None):
    """A POP3S socket logged in as demo (USER/PASS through moat)."""
    s = harness.tls_connect(port, ctx=ctx)
    try:
        for send, want in ((None, b"+OK"), (b"USER demo\r\n", b"+OK"),
                           (b"PASS demo\r\n", b"+OK")):
            if send:
                s.sendall(send)
            line = harness.recv_line(s)
            assert line.startswith(want), (send, line)
    except BaseException:
        s.close()
        raise
    return s


def log_tail(moat, n=50):
    return "\n".join(moat.log().splitlines()[-n:])


def session_end_line(moat, port, timeout=10):
    """moat's event=session_end line for the client port (kv format)."""
    rx = r"event=session_end [^\n]*client=127\.0\.0\.1:%d [^\n]*" % port
    return moat.wait_log(rx, timeout).group(0)


def wait_refused(port, timeout):
    """True once nothing accepts on the port any more (within timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not harness.port_accepts(port):
            return True
        time.sleep(0.02)
    return False


def wait_exit(proc, timeout):
    """The exit status, or None if it is still running after timeout."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


# ---------------------------------------------------------------- privileges

@unittest.skipUnless(os.geteuid() == 0, "needs root (as in CI)")
class TestPrivileges(unittest.TestCase):

    def check_ids(self, pid, uid, gid, groups=None):
        """Real, effective, saved and filesystem ids; supplementary groups
        (default: just gid, what moat sets when it drops root)."""
        st = proc_status(pid)
        self.assertEqual(st["Uid"], [str(uid)] * 4, st["Uid"])
        self.assertEqual(st["Gid"], [str(gid)] * 4, st["Gid"])
        self.assertEqual(st.get("Groups", []), [str(g) for g in (groups or [gid])],
                         st.get("Groups"))
        return st

    def test_user_nobody(self):
        # No allow_root: user = is enough to start as root.
        m = start_moat(self, [imaps()], name="moat-nobody", root=False,
                       options={"user": "nobody"})
        self.assertNotIn("allow_root", m.text)
        st = self.check_ids(m.pid, NOBODY, NOBODY_GID)
        self.assertEqual(st["CapEff"], ["0000000000000000"], st["CapEff"])
        self.assertEqual(st["CapPrm"], ["0000000000000000"], st["CapPrm"])
        self.assertRegex(m.log(), r"level=info event=privileges user=nobody uid=%d gid=%d\b"
                                  % (NOBODY, NOBODY_GID))
        imap_cycle(self, m.port("imaps"))
        self.assertEqual(m.stop(), 0, m.log())

    def test_user_and_group(self):
        gid = 1                                 # "daemon" on Debian and most others
        try:
            name = grp.getgrgid(gid).gr_name
        except KeyError:
            self.skipTest("no group with gid 1")
        m = start_moat(self, [imaps()], name="moat-group", root=False,
                       options={"user": "nobody", "group": name})
        self.check_ids(m.pid, NOBODY, gid)
        self.assertRegex(m.log(), r"event=privileges user=nobody uid=%d gid=%d\b"
                         % (NOBODY, gid))
        imap_cycle(self, m.port("imaps"))
        self.assertEqual(m.stop(), 0, m.log())

    def refused(self, options, root=False):
        m = OpsMoat([imaps()], name="moat-refused", root=root, options=options)
        r = harness.run_moat_cli(["-c", m.config_path])
        return r, m

    def test_user_root_refused(self):
        r, m = self.refused({"user": "root"})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("name an unprivileged account", r.stderr)
        self.assertNotIn("event=ready", r.stderr)
        self.assertFalse(harness.port_accepts(m.port("imaps")))

    def test_unknown_user_refused(self):
        r, m = self.refused({"user": "no-such-user-xyz"})
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("no-such-user-xyz: no such user", r.stderr)
        self.assertNotIn("event=ready", r.stderr)

    def test_root_without_user_refused(self):
        r, m = self.refused({})
        self.assertNotIn("allow_root", m.text)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("allow_root", r.stderr)
        self.assertIn("user =", r.stderr)
        self.assertIn(m.config_path, r.stderr)
        # It suggests a dedicated account, never nobody (whose other
        # processes could bind the same port with SO_REUSEPORT, or read
        # the keys).
        self.assertIn("user = moat", r.stderr)
        self.assertIn("dedicated", r.stderr)
        self.assertNotIn("nobody", r.stderr)
        self.assertNotIn("event=ready", r.stderr)
        self.assertFalse(harness.port_accepts(m.port("imaps")))
        # moat -t says the same.
        t = harness.run_moat_cli(["-t", "-c", m.config_path])
        self.assertEqual(t.returncode, 1, t.stdout + t.stderr)
        self.assertIn("allow_root", t.stderr)
        self.assertIn("user = moat", t.stderr)
        self.assertNotIn("nobody", t.stderr)
        self.assertNotIn("configuration OK", t.stdout)

    def test_allow_root_stays_root(self):
        m = start_moat(self, [imaps()], name="moat-root", root=True)
        self.assertIn("allow_root = yes", m.text)
        st = proc_status(m.pid)
        self.assertEqual(st["Uid"], ["0"] * 4, st["Uid"])
        self.assertNotIn("event=privileges", m.log())
        imap_cycle(self, m.port("imaps"))
        self.assertEqual(m.stop(), 0, m.log())

    def test_started_unprivileged(self):
        # No root at all: moat started as nobody, with a config that says
        # nothing about users. Its key must be readable by nobody: a copy
        # owned by it, mode 0640 (its group may read it): key_permissions
        # auto is only strict as root, so a warning and no refusal.
        d = harness.new_dir("nobody-certs")
        os.chown(d, NOBODY, NOBODY)
        c = harness.certs()
        cert = os.path.join(d, "fullchain.pem")
        key = os.path.join(d, "privkey.pem")
        shutil.copyfile(c.fullchain, cert)
        shutil.copyfile(c.key, key)
        os.chmod(cert, 0o644)
        os.chmod(key, 0o640)
        for p in (cert, key):
            os.chown(p, NOBODY, NOBODY)
        m = start_moat(self, [imaps(), pop3s()], name="moat-unpriv", root=False,
                       cert=cert, key=key,
                       popen_kw={"user": NOBODY, "group": NOBODY,
                                 "extra_groups": [NOBODY]})
        self.assertNotIn("allow_root", m.text)
        self.assertNotRegex(m.text, r"(?m)^(user|group|chroot) *=")
        # Started without root, moat keeps the ids it was given.
        st = self.check_ids(m.pid, NOBODY, NOBODY)
        self.assertEqual(st["CapEff"], ["0000000000000000"])
        log = m.log()
        self.assertRegex(log, r"level=warn event=key_permissions name=default key=%s "
                              r"mode=0640" % re.escape(key))
        self.assertNotIn("event=privileges", log)
        imap_cycle(self, m.port("imaps"))
        p = pop3_login(m.port("pop3s"))
        p.sendall(b"QUIT\r\n")
        self.assertTrue(harness.recv_line(p).startswith(b"+OK"))
        p.close()
        self.assertEqual(m.stop(), 0, m.log())

    def test_chroot(self):
        if harness.moat_sanitized():
            self.skipTest("LeakSanitizer needs /proc, which a chroot hides")
        jail = harness.new_dir("chroot")
        m = start_moat(self, [imaps(), pop3s()], name="moat-chroot", root=False,
                       options={"user": "nobody", "chroot": jail})
        self.assertEqual(os.readlink("/proc/%d/root" % m.pid), os.path.realpath(jail))
        self.assertEqual(os.readlink("/proc/%d/cwd" % m.pid), os.path.realpath(jail))
        self.check_ids(m.pid, NOBODY, NOBODY_GID)
        self.assertIn("event=privileges user=nobody uid=%d gid=%d chroot=%s"
                      % (NOBODY, NOBODY_GID, jail), m.log())
        imap_cycle(self, m.port("imaps"))
        p = pop3_login(m.port("pop3s"))
        p.sendall(b"QUIT\r\n")
        self.assertTrue(harness.recv_line(p).startswith(b"+OK"))
        p.close()
        self.assertEqual(m.stop(), 0, m.log())


# ---------------------------------------------------------------- pid file

class TestPidFile(unittest.TestCase):

    def read_pid(self, path):
        with open(path) as f:
            text = f.read()
        self.assertRegex(text, r"^\d+\n$")
        return int(text)

    def test_written_and_removed(self):
        d = harness.new_dir("pid")
        path = os.path.join(d, "moat.pid")
        m = start_moat(self, [imaps()], name="moat-pid", options={"pid_file": path})
        self.assertEqual(self.read_pid(path), m.pid)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o644)
        self.assertFalse(os.path.exists(path + ".tmp"))
        self.assertEqual(m.stop(), 0, m.log())
        self.assertFalse(os.path.exists(path), "pid file left behind")
        self.assertEqual(os.listdir(d), [])

    @unittest.skipUnless(os.geteuid() == 0, "needs root (as in CI)")
    def test_written_before_dropping_root(self):
        # Written as root into a root-owned directory nobody may not
        # write: moat (nobody by then) cannot remove it at exit, and says
        # so only at debug level. The file staying is documented, not a
        # failure: moat.ini says "removed at exit when moat still may".
        d = harness.new_dir("pid-root")
        path = os.path.join(d, "moat.pid")
        m = start_moat(self, [imaps()], name="moat-pid-nobody", root=False,
                       options={"user": "nobody", "pid_file": path})
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (0, 0o644))
        self.assertEqual(self.read_pid(path), m.pid)
        pid = m.pid
        self.assertEqual(proc_status(pid)["Uid"], [str(NOBODY)] * 4)
        self.assertEqual(m.stop(), 0, m.log())
        # Either way is acceptable (today it stays: unlink needs write
        # access to the root-owned directory); if it stays, it is intact.
        if os.path.exists(path):
            self.assertEqual(self.read_pid(path), pid)

    @unittest.skipUnless(os.geteuid() == 0, "needs root (as in CI)")
    def test_symlink_planted_by_user_not_followed(self):
        # The attack: the directory belongs to moat's user (so that it may
        # remove the pid file at exit), which plants symlinks at
        # "<pid_file>.tmp" (the name moat, still root, used to open with
        # O_CREAT|O_TRUNC) and at the pid file itself, both to a root-owned
        # 0600 file. Root must write neither through them.
        vd = harness.new_dir("pid-victim")
        victim = os.path.join(vd, "victim")
        with open(victim, "w") as f:
            f.write("root's secret\n")
        os.chmod(victim, 0o600)
        before = os.stat(victim)
        d = harness.new_dir("pid-user")
        os.chown(d, NOBODY, NOBODY_GID)
        path = os.path.join(d, "moat.pid")
        for link in (path + ".tmp", path):
            os.symlink(victim, link)
            os.lchown(link, NOBODY, NOBODY_GID)
        m = start_moat(self, [imaps()], name="moat-pid-link", root=False,
                       options={"user": "nobody", "pid_file": path})

        def victim_intact():
            with open(victim) as f:
                self.assertEqual(f.read(), "root's secret\n", "root wrote through the link")
            st = os.stat(victim)
            self.assertEqual((st.st_ino, st.st_uid, st.st_mode & 0o7777, st.st_mtime_ns),
                             (before.st_ino, 0, 0o600, before.st_mtime_ns))
        victim_intact()
        self.assertFalse(os.path.islink(path), "the pid file is still the planted link")
        st = os.lstat(path)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (0, 0o644))
        self.assertEqual(self.read_pid(path), m.pid)
        self.assertEqual(m.stop(), 0, m.log())
        victim_intact()
        # The directory is moat's user's: it removed the pid file at exit.
        self.assertFalse(os.path.lexists(path), "pid file left behind")

    @unittest.skipUnless(os.geteuid() == 0, "needs root (as in CI)")
    def test_unsafe_directory_refused(self):
        # A directory others may write (no sticky bit), or owned by a user
        # other than root, moat or its user: refused before anything is
        # written, with the directory and what is wrong in the message.
        for mode, owner, want in ((0o777, 0, "writable by group or others"),
                                  (0o775, 0, "writable by group or others"),
                                  (0o755, 1, "owned by uid 1")):
            with self.subTest(mode=oct(mode), owner=owner):
                d = harness.new_dir("pid-unsafe")
                os.chmod(d, mode)
                os.chown(d, owner, owner)
                path = os.path.join(d, "moat.pid")
                m = OpsMoat([imaps()], name="moat-pid-unsafe", root=False,
                            options={"user": "nobody", "pid_file": path})
                r = harness.run_moat_cli(["-c", m.config_path])
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("event=startup_failed", r.stderr)
                self.assertIn(d, r.stderr)
                self.assertIn(want, r.stderr)
                self.assertNotIn("event=ready", r.stderr)
                self.assertEqual(os.listdir(d), [])
        # Sticky, like /tmp: accepted.
        d = harness.new_dir("pid-sticky")
        os.chmod(d, 0o1777)
        path = os.path.join(d, "moat.pid")
        m = start_moat(self, [imaps()], name="moat-pid-sticky", root=False,
                       options={"user": "nobody", "pid_file": path})
        self.assertEqual(self.read_pid(path), m.pid)
        self.assertEqual(m.stop(), 0, m.log())


# ---------------------------------------------------------------- fd limit

class TestFdLimit(unittest.TestCase):

    def test_warns_and_raises_soft_limit(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > 4000000:
            self.skipTest("hard RLIMIT_NOFILE is %s: max_connections cannot exceed it" % hard)
        # max_connections whose two descriptors each exceed the hard limit
        # (the limit table is sized from it: a few MB here).
        maxconn = hard // 2 + 100
        low = min(256, hard)

        def lower_soft_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

        m = start_moat(self, [imaps()], name="moat-fd",
                       options={"max_connections": str(maxconn)},
                       popen_kw={"preexec_fn": lower_soft_limit})
        line = m.wait_log(r"level=warn event=fd_limit [^\n]*").group(0)
        self.assertIn("limit=%d " % hard, line)
        self.assertRegex(line, r"needed=(\d+)")
        needed = int(re.search(r"needed=(\d+)", line).group(1))
        self.assertGreater(needed, hard)
        self.assertGreaterEqual(needed, 2 * maxconn)
        self.assertIn("max_connections", line)
        # The warning comes before event=ready, and the soft limit was
        # raised from `low` to the hard one.
        self.assertLess(m.log().index("event=fd_limit"), m.log().index("event=ready"))
        self.assertEqual(proc_nofile(m.pid), (str(hard), str(hard)))
        imap_cycle(self, m.port("imaps"))
        self.assertEqual(m.stop(), 0, m.log())

    def test_no_warning_when_enough(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard < 600:
            self.skipTest("hard RLIMIT_NOFILE is %s" % hard)
        m = start_moat(self, [imaps()], name="moat-fd-ok",
                       options={"max_connections": "100"},
                       popen_kw={"preexec_fn": lambda: resource.setrlimit(
                           resource.RLIMIT_NOFILE, (128, hard))})
        self.assertNotIn("event=fd_limit", m.log())
        self.assertEqual(proc_nofile(m.pid), (str(hard), str(hard)))
        self.assertEqual(m.stop(), 0, m.log())


# ---------------------------------------------------------------- drain

class SmallWindowImap(harness.ImapClient):
    """An IMAPS client with a small receive buffer (set before connecting,
    so the window stays small): a big FETCH literal stays mostly in moat
    and the backend while it does not read."""

    def __init__(self, port, rcvbuf=32 * 1024, timeout=30):
        self.ctx = strict_context()
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(harness.scaled(timeout))
        raw.connect((LOOPBACK, port))
        self.sock = self.ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        self.transcript = []


class TestDrain(unittest.TestCase):

    # Slow environments (MOAT_TIMEOUT_SCALE) get a longer grace period, so
    # that the checks made during it still fit in it.
    GRACE = max(3, int(harness.scaled(3)))

    def test_sigterm_drain(self):
        grace = self.GRACE
        ctx = strict_context()
        m = start_moat(self, [imaps(), pop3s(), harness.Listener(
                           "imap", "imap", DOVECOT.imap_port, tls="starttls")],
                       name="moat-drain", options={"shutdown_grace": "%ds" % grace})
        clients = []

        def keep(c):
            clients.append(c)
            return c
        try:
            # Before login: greeted, nothing sent.
            pre = keep(harness.ImapClient(m.port("imaps"), ctx=ctx))
            self.assertTrue(pre.greeting().startswith(b"* OK"))
            # Logged in, in IDLE.
            idle = keep(imap_login(m.port("imaps"), ctx=ctx))
            idle.send("i IDLE\r\n")
            self.assertTrue(idle.line().startswith(b"+ "), idle.dump())
            # Logged in over POP3S.
            pop = keep(pop3_login(m.port("pop3s"), ctx=ctx))
            # Logged in after STARTTLS; works on during the grace period.
            stls = keep(imap_login(m.port("imap"), tls=False, starttls=True, ctx=ctx))
            # Logged in; logs out during the grace period.
            bye = keep(imap_login(m.port("imaps"), ctx=ctx))
            bye_port = bye.sock.getsockname()[1]
            pre_port = pre.sock.getsockname()[1]

            t0 = time.monotonic()
            m.proc.send_signal(signal.SIGTERM)

            # The session before login ends at once, with moat's BYE.
            data, how = pre.rest_until_eof(timeout=5)
            t_pre = time.monotonic() - t0
            self.assertEqual(data, IMAP_BYE_PREAUTH, pre.dump())
            self.assertEqual(how, "eof", "no TLS close_notify after the BYE")
            self.assertLess(t_pre, harness.scaled(1.5), "pre-login session ended after "
                            "%.2fs" % t_pre)
            # New connections are refused at once, on every listener.
            for name in ("imaps", "pop3s", "imap"):
                self.assertTrue(wait_refused(m.port(name), harness.scaled(1)),
                                "%s still accepts after SIGTERM" % name)
            self.assertLess(time.monotonic() - t0, grace - 1)

            # Logged-in sessions carry on during the grace period.
            _, r = stls.cmd("n1", "NOOP")
            self.assertTrue(r.startswith(b"n1 OK"), stls.dump())
            self.assertEqual(imap_fetch(stls, "f1", 1), DOVECOT.message(1))
            # One that logs out ends as usual.
            untagged, r = bye.cmd("o", "LOGOUT")
            self.assertTrue(r.startswith(b"o OK"), bye.dump())
            self.assertTrue(any(u.startswith(b"* BYE") for u in untagged), bye.dump())
            self.assertNotIn(b"UNAVAILABLE", b"".join(untagged))
            data, how = bye.rest_until_eof(timeout=5)
            self.assertEqual(data, b"")
            self.assertIn(how, harness.CLOSED)
            self.assertLess(time.monotonic() - t0, grace - 0.5,
                            "the grace period's commands took too long to check it")
            line = session_end_line(m, bye_port)
            self.assertNotIn("moat shutting down", line)
            self.assertIn('user="demo"', line)
            self.assertIsNone(m.proc.poll(), "moat exited before the grace period ended")

            # When the grace period is over: IMAP sessions between two
            # responses get a BYE and the TLS close; POP3 just the close.
            data, how = idle.rest_until_eof(timeout=grace + 5)
            t_end = time.monotonic() - t0
            self.assertEqual(after_untagged(data), IMAP_BYE_SHUTDOWN, idle.dump())
            self.assertEqual(how, "eof", "no TLS close_notify after the BYE")
            self.assertGreater(t_end, grace - 0.3)
            self.assertLess(t_end, grace + harness.scaled(2))
            data, how = stls.rest_until_eof(timeout=5)
            self.assertEqual(after_untagged(data), IMAP_BYE_SHUTDOWN, stls.dump())
            self.assertEqual(how, "eof")
            data, how = harness.recv_until_eof(pop, harness.scaled(5))
            self.assertEqual(data, b"")
            self.assertIn(how, harness.CLOSED)
            # (moat sends close_notify there too; not required.)

            rc = wait_exit(m.proc, harness.scaled(grace + 3) - (time.monotonic() - t0))
            t_exit = time.monotonic() - t0
            self.assertEqual(rc, 0, "moat exit status %s after %.1fs; log:\n%s"
                             % (rc, t_exit, log_tail(m)))
            log = m.log()
            self.assertRegex(log, r"event=stopping signal=SIGTERM grace_ms=%d" % (grace * 1000))
            self.assertIn("event=stopped", log)
            pre_end = session_end_line(m, pre_port)
            self.assertIn("user=- ", pre_end)
            self.assertIn('reason="moat shutting down"', pre_end)
            self.assertEqual(log.count('reason="moat shutting down"'), 4, log)
        finally:
            for c in clients:
                c.close()

    def test_second_sigterm_ends_at_once(self):
        m = start_moat(self, [imaps(), pop3s()], name="moat-drain2",
                       options={"shutdown_grace": "30s"})
        idle = imap_login(m.port("imaps"), ctx=strict_context())
        pop = pop3_login(m.port("pop3s"))
        try:
            t0 = time.monotonic()
            m.proc.send_signal(signal.SIGTERM)
            time.sleep(1)
            # Still in its grace period.
            self.assertIsNone(m.proc.poll())
            # A reload while draining is refused, and harms nothing.
            m.proc.send_signal(signal.SIGHUP)
            m.wait_log(r"event=reload_failed message=\"stopping: SIGHUP ignored\"")
            _, r = idle.cmd("n", "NOOP")
            self.assertTrue(r.startswith(b"n OK"), idle.dump())
            t1 = time.monotonic()
            m.proc.send_signal(signal.SIGTERM)
            rc = wait_exit(m.proc, harness.scaled(3))
            t_exit = time.monotonic()
            self.assertEqual(rc, 0, "moat exit status %s; log:\n%s" % (rc, log_tail(m)))
            self.assertLess(t_exit - t1, harness.scaled(2))
            self.assertLess(t_exit - t0, harness.scaled(3.5))
            data, how = idle.rest_until_eof(timeout=5)
            self.assertEqual(after_untagged(data), IMAP_BYE_SHUTDOWN, idle.dump())
            self.assertEqual(how, "eof", "no TLS close_notify after the BYE")
            data, how = harness.recv_until_eof(pop, harness.scaled(5))
            self.assertEqual(data, b"")
            self.assertIn(how, harness.CLOSED)
            self.assertIn('message="ending every session now"', m.log())
        finally:
            idle.close()
            pop.close()

    def test_no_bye_inside_fetch_literal(self):
        # A 2 MiB FETCH that the client does not read until the grace
        # period is over: moat is inside the literal then, so it must only
        # close (a BYE there would be taken as message data).
        grace = 2
        m = start_moat(self, [imaps()], name="moat-drain-fetch",
                       options={"shutdown_grace": "%ds" % grace})
        c = SmallWindowImap(m.port("imaps"))
        try:
            self.assertTrue(c.greeting().startswith(b"* OK"))
            _, r = c.cmd("a", "LOGIN demo demo")
            self.assertTrue(r.startswith(b"a OK"), c.dump())
            _, r = c.cmd("x", "EXAMINE INBOX")
            self.assertTrue(r.startswith(b"x OK"), c.dump())
            c.send("f FETCH %d (BODY.PEEK[])\r\n" % BIG_UID)
            head = c.line()
            hm = re.match(rb"\* %d FETCH \(BODY\[\] \{(\d+)\}\r\n$" % BIG_UID, head)
            self.assertTrue(hm, head)
            self.assertEqual(int(hm.group(1)), BIG_SIZE)
            time.sleep(0.3)
            t0 = time.monotonic()
            m.proc.send_signal(signal.SIGTERM)
            # Nothing read until the grace period is over (moat keeps
            # LINGER 5 s for its last bytes: read well within that).
            time.sleep(grace + 0.7)
            data, how = c.rest_until_eof(timeout=10)
            self.assertIn(how, harness.CLOSED)
            # (Messages without the data: it is megabytes.)
            i = data.find(b"* BYE")
            self.assertEqual(i, -1, "BYE at offset %d of %d literal bytes: %r"
                             % (i, len(data), data[max(0, i - 40):i + 80]))
            self.assertLess(len(data), BIG_SIZE,
                            "the whole literal arrived before the grace ended: the "
                            "test did not catch moat inside it")
            self.assertGreater(len(data), 0)
            # What arrived is exactly the start of the message.
            if not BIG.startswith(data):
                self.fail("literal bytes differ from the message at offset %d"
                          % next(i for i in range(len(data)) if data[i] != BIG[i]))
            rc = wait_exit(m.proc, harness.scaled(5))
            self.assertEqual(rc, 0, "moat exit status %s; log:\n%s" % (rc, log_tail(m)))
            self.assertLess(time.monotonic() - t0, grace + harness.scaled(6))
            line = session_end_line(m, c.sock.getsockname()[1])
            self.assertIn('reason="moat shutting down"', line)
        finally:
            c.close()


# ---------------------------------------------------------------- logs

def json_lines(text):
    """Each line of text parsed as JSON (an AssertionError names the
    first one that is not a JSON object)."""
    out = []
    for l in text.splitlines():
        try:
            obj = json.loads(l)
        except ValueError as e:
            raise AssertionError("not JSON (%s): %r" % (e, l))
        if not isinstance(obj, dict):
            raise AssertionError("not a JSON object: %r" % l)
        out.append(obj)
    return out


class SyslogSink:
    """A Unix datagram socket at path (syslog's /dev/log) collecting what
    arrives, in a thread of its own."""

    def __init__(self, path="/dev/log"):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.2)
        self.lock = threading.Lock()
        self.msgs = []
        self.closed = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.msgs.append(data.decode(errors="replace"))

    def messages(self, pid=None):
        with self.lock:
            msgs = list(self.msgs)
        if pid is None:
            return msgs
        tag = " moat[%d]: " % pid
        return [x for x in msgs if tag in x]

    def wait(self, pid, pattern, timeout=10):
        rx = re.compile(pattern)
        deadline = time.monotonic() + harness.scaled(timeout)
        while time.monotonic() < deadline:
            for x in self.messages(pid):
                if rx.search(x):
                    return x
            time.sleep(0.05)
        raise AssertionError("no /%s/ from moat[%d] on %s after %ss; got:\n%s"
                             % (pattern, pid, self.path, timeout,
                                "\n".join(self.messages())))

    def close(self):
        self.closed = True
        self.thread.join(timeout=2)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


# glibc's syslog(3): "<PRI>Mmm dd hh:mm:ss moat[PID]: MESSAGE"
SYSLOG_RX = re.compile(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d moat\[(\d+)\]: (.*)$",
                       re.S)
LOCAL3 = 19


class TestLogs(unittest.TestCase):

    def test_json(self):
        m = start_moat(self, [imaps(auth_failure_delay="0"), pop3s()], name="moat-json",
                       options={"log_format": "json"},
                       ready=lambda m, t: m.wait_log(r'"event":"ready"', t))
        # A logged-in session, and a pre-login one that fails a login with
        # a password that must never be logged (as a LOGIN argument, and
        # base64-encoded in AUTHENTICATE PLAIN).
        imap_cycle(self, m.port("imaps"))
        c = harness.ImapClient(m.port("imaps"))
        try:
            c.greeting()
            _, r = c.cmd("a", 'LOGIN demo "%s"' % SECRET)
            self.assertTrue(r.startswith(b"a NO"), c.dump())
            _, r = c.cmd("b", "AUTHENTICATE PLAIN %s"
                         % harness.plain_b64("demo", SECRET).decode())
            self.assertTrue(r.startswith(b"b NO"), c.dump())
            _, r = c.cmd("z", "LOGOUT")
        finally:
            c.close()
        p = pop3_login(m.port("pop3s"))
        p.sendall(b"QUIT\r\n")
        harness.recv_line(p)
        p.close()
        m.wait_log(r'"event":"session_end"[^\n]*"listener":"pop3s"')
        self.assertEqual(m.stop(), 0, m.log())

        log = m.log()
        objs = json_lines(log)
        for o in objs:
            self.assertIsInstance(o.get("time"), str, o)
            self.assertRegex(o["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(o.get("level"), ("error", "warn", "info", "debug"), o)
            self.assertIsInstance(o.get("event"), str, o)
        events = [o["event"] for o in objs]
        for e in ("ready", "listening", "login", "stopping", "stopped"):
            self.assertIn(e, events)
        ends = [o for o in objs if o["event"] == "session_end"]
        self.assertEqual(len(ends), 3, ends)
        for o in ends:
            self.assertIsInstance(o["bytes_in"], int, o)
            self.assertIsInstance(o["bytes_out"], int, o)
            self.assertIsInstance(o["duration_ms"], int, o)
            self.assertGreater(o["bytes_in"], 0, o)
            self.assertGreater(o["bytes_out"], 0, o)
        by_listener = {}
        for o in ends:
            by_listener.setdefault(o["listener"], []).append(o)
        users = sorted((o["user"] is None, o["user"]) for o in by_listener["imaps"])
        self.assertEqual(users, [(False, "demo"), (True, None)], by_listener)
        self.assertEqual(by_listener["pop3s"][0]["user"], "demo")
        self.assertIsNone(next(o for o in by_listener["imaps"] if o["user"] is None)
                          .get("password"))
        # No password, in any form.
        for bad in (SECRET, harness.plain_b64("demo", SECRET).decode(),
                    harness.plain_b64("demo", "demo").decode()):
            self.assertNotIn(bad, log)
        for o in objs:
            for k in o:
                self.assertNotIn(k.lower(), ("pass", "password", "passwd", "secret"), o)

    def syslog_sink(self):
        path = "/dev/log"
        if os.path.lexists(path):
            self.skipTest("%s exists and is not this test's (a system logger?): the "
                          "syslog test needs a /dev/log of its own" % path)
        if os.geteuid() != 0:
            self.skipTest("creating /dev/log needs root")
        try:
            sink = SyslogSink(path)
        except OSError as e:
            self.skipTest("cannot create %s: %s" % (path, e))
        self.addCleanup(sink.close)
        return sink

    def parse_syslog(self, pid, msgs):
        out = []
        for x in msgs:
            mm = SYSLOG_RX.match(x)
            self.assertTrue(mm, "not a syslog(3) datagram: %r" % x)
            self.assertEqual(int(mm.group(2)), pid, x)
            out.append((int(mm.group(1)), mm.group(3)))
        return out

    def test_syslog(self):
        sink = self.syslog_sink()
        for fmt in ("kv", "json"):
            with self.subTest(log_format=fmt):
                m = start_moat(self, [imaps()], name="moat-syslog-" + fmt,
                               options={"log_target": "syslog", "syslog_facility": "local3",
                                        "log_format": fmt},
                               ready=lambda m, t: sink.wait(
                                   m.pid, r'event=ready|"event":"ready"', t))
                pid = m.pid
                imap_cycle(self, m.port("imaps"))
                sink.wait(pid, r'event=session_end|"event":"session_end"')
                self.assertEqual(m.stop(), 0, m.log())
                sink.wait(pid, r'event=stopped|"event":"stopped"')
                # Nothing on stderr: it all went to syslog.
                self.assertEqual(m.log(), "")
                msgs = self.parse_syslog(pid, sink.messages(pid))
                severities = {"error": 3, "warn": 4, "info": 6, "debug": 7}
                seen = set()
                for pri, text in msgs:
                    self.assertEqual(pri >> 3, LOCAL3, (pri, text))
                    if fmt == "json":
                        o = json.loads(text)
                        self.assertNotIn("time", o)         # syslog stamps it
                        level, event = o["level"], o["event"]
                    else:
                        self.assertFalse(text.startswith("{"), text)
                        mm = re.match(r"^level=(\w+) event=(\w+)", text)
                        self.assertTrue(mm, text)
                        level, event = mm.groups()
                    self.assertEqual(pri & 7, severities[level], (pri, text))
                    seen.add((pri, event))
                    if event == "session_end":
                        if fmt == "json":
                            self.assertEqual(o["user"], "demo")
                            self.assertIsInstance(o["bytes_out"], int)
                        else:
                            self.assertIn('user="demo"', text)
                            self.assertRegex(text, r"bytes_in=\d+ bytes_out=\d+")
                for e in ("ready", "listening", "login", "session_end", "stopped"):
                    self.assertIn((158, e), seen)      # local3 (19) * 8 + info (6)

    def test_reload_kv_to_json(self):
        m = start_moat(self, [imaps()], name="moat-log-reload")
        imap_cycle(self, m.port("imaps"))
        m.wait_log(r"event=session_end")
        before = m.log()
        m.write_config(m.text.replace("[moat]\n", "[moat]\nlog_format = json\n", 1))
        m.proc.send_signal(signal.SIGHUP)
        m.wait_log(r'"event":"reloaded"', start=len(before))
        imap_cycle(self, m.port("imaps"))
        m.wait_log(r'"event":"session_end"', start=len(before))
        self.assertEqual(m.stop(), 0, m.log())
        log = m.log()
        # Before the reload: key=value lines only.
        for l in before.splitlines():
            self.assertRegex(l, r"^\d{4}-\d\d-\d\dT\S+ level=\w+ event=\w+", l)
        after = log[len(before):].splitlines()
        self.assertRegex(after[0], r"^\S+ level=info event=reloading ")
        # From the first JSON line on (the new file's own lines), all JSON.
        first = next(i for i, l in enumerate(after) if l.startswith("{"))
        objs = json_lines("\n".join(after[first:]))
        events = [o["event"] for o in objs]
        for e in ("reloaded", "login", "session_end", "stopping", "stopped"):
            self.assertIn(e, events)
        end = next(o for o in objs if o["event"] == "session_end")
        self.assertEqual(end["user"], "demo")
        self.assertIsInstance(end["bytes_in"], int)


if __name__ == "__main__":
    unittest.main(verbosity=2)
