"""moat's SIGHUP reload against a real Dovecot, with real clients.

One Dovecot (account demo/demo, three small messages) serves the whole
module; a second one (other messages, another account) is started for
the backend-change test. Each test runs moats of its own, since every
test rewrites and reloads their configuration:

  TestCertificateRotation   new certificate by config, by certbot's
                            symlink switch, by files rewritten in place;
                            a session logged in before carries on
  TestReloadUnderLoad       IMAPS and POP3S client threads (TLS 1.3 and
                            1.2) in a loop, and one session logged in
                            throughout, while the certificate alternates
                            and SIGHUP comes every half second: no client
                            notices, fds return to their baseline
  TestRefusedReloads        broken files and changes that need a restart
                            are refused; the old settings stay in force
  TestChangedSettings       greeting, dialogue limits and backends change
                            for new sessions only
  TestTicketsAcrossReload   TLS 1.2 and 1.3 tickets resume after a reload
                            with the same ticket settings, not after one
                            with a new ticket_lifetime
  TestLogLevel              log_level follows a reload (and only a
                            successful one)
  TestSighupStorm           20 SIGHUPs in a burst under load; a SIGHUP
                            while a reload waits for a slow backend's
                            capabilities; 150 reloads in a row leave moat's
                            memory as it was
"""

import collections
import imaplib
import os
import poplib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import traceback
import unittest

import harness

DOVECOT = None


def setUpModule():
    global DOVECOT
    harness.certs()
    DOVECOT = harness.Dovecot().start()


def tearDownModule():
    if DOVECOT is not None:
        DOVECOT.stop()


# ------------------------------------------------------------------ helpers

class Cert:
    """A server certificate from the test CA (ECDSA P-256, localhost and
    127.0.0.1): its chain and key paths, the leaf's DER, serial, and a
    file with its public key (for curl --pinnedpubkey)."""

    _n = 0
    _lock = threading.Lock()

    def __init__(self, tag):
        with Cert._lock:
            Cert._n += 1
            self.name = "reload-%s-%d" % (tag, Cert._n)
        self.chain, self.key = harness.mkcert(self.name, "ec", 90, "localhost",
                                              "DNS:localhost", "IP:127.0.0.1")
        with open(self.chain) as f:
            pem = f.read()
        leaf = pem[:pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
        self.der = ssl.PEM_cert_to_DER_cert(leaf + "\n")
        r = subprocess.run(["openssl", "x509", "-in", self.chain, "-noout", "-serial"],
                           stdout=subprocess.PIPE, check=True, timeout=30)
        self.serial = r.stdout.decode().strip().split("=", 1)[1]
        self.pubkey = os.path.join(harness.certs().dir, self.name + ".pub")
        r = subprocess.run(["openssl", "x509", "-in", self.chain, "-noout", "-pubkey"],
                           stdout=subprocess.PIPE, check=True, timeout=30)
        with open(self.pubkey, "wb") as f:
            f.write(r.stdout)

    def __repr__(self):
        return "<cert %s serial %s>" % (self.name, self.serial)


def which(der, *certs):
    """The name of the certificate with this DER, for messages."""
    for c in certs:
        if c.der == der:
            return "%s (serial %s)" % (c.name, c.serial)
    return "an unknown certificate (%d bytes DER)" % len(der or b"")


def served_der(port, ctx=None):
    """The DER of the leaf certificate a new TLS connection to port gets
    (after reading the greeting: the session works)."""
    s = harness.tls_connect(port, ctx=ctx, timeout=harness.scaled(20))
    try:
        der = s.getpeercert(binary_form=True)
        greeting = harness.recv_line(s)
        if not (greeting.startswith(b"* OK") or greeting.startswith(b"+OK")):
            raise AssertionError("greeting %r" % greeting)
        return der
    finally:
        s.close()


def s_client_der(port):
    """The DER of the certificate openssl s_client is shown (the PEM block
    it prints after "Server certificate"), with its verify result."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
            "-servername", "localhost", "-CAfile", harness.certs().ca,
            "-verify_return_error", "-verify_hostname", "localhost", "-ign_eof"]
    r = harness.run_cmd(argv, timeout=30, input=b"a LOGOUT\r\n")
    out = (r.stdout + r.stderr).decode(errors="replace")
    m = re.search(r"Server certificate\n(-----BEGIN CERTIFICATE-----\n.*?"
                  r"-----END CERTIFICATE-----\n)", out, re.S)
    if r.returncode != 0 or not m or "Verify return code: 0 (ok)" not in out:
        raise AssertionError("s_client failed (%d):\n%s" % (r.returncode, out))
    return ssl.PEM_cert_to_DER_cert(m.group(1))


def curl_pinned(url, cert, timeout=30):
    """curl fetching url as demo, accepting only `cert`'s public key."""
    return harness.curl(url, "demo", "demo", "--pinnedpubkey", cert.pubkey,
                        timeout=timeout)


def fetched(data):
    """The literal of imaplib's FETCH answer (other sessions' flag changes
    may come with it as untagged FETCH lines without one); None if there
    is none."""
    bodies = [d[1] for d in data if isinstance(d, tuple)]
    return bodies[0] if len(bodies) == 1 else None


def imap_cycle(port, ctx, uid=1, dovecot=None, user="demo", password="demo"):
    """One IMAPS session with imaplib: LOGIN, EXAMINE INBOX, FETCH uid,
    LOGOUT. Checks the message against Dovecot's; returns the DER of the
    certificate the session got."""
    dovecot = dovecot or DOVECOT
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=harness.scaled(30))
    try:
        der = m.sock.getpeercert(binary_form=True)
        typ, data = m.login(user, password)
        if typ != "OK":
            raise AssertionError("LOGIN: %r %r" % (typ, data))
        typ, data = m.select("INBOX", readonly=True)
        if typ != "OK" or int(data[0]) != len(dovecot.inbox[user]):
            raise AssertionError("EXAMINE: %r %r" % (typ, data))
        typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
        body = fetched(data)
        if typ != "OK" or body is None:
            raise AssertionError("FETCH: %r %r" % (typ, data))
        if body != dovecot.message(uid, user):
            raise AssertionError("FETCH %d: %d bytes differ from Dovecot's %d"
                                 % (uid, len(body), len(dovecot.message(uid, user))))
        typ, data = m.logout()
        if typ != "BYE":
            raise AssertionError("LOGOUT: %r %r" % (typ, data))
        return der
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


def pop3_body(lines):
    return b"".join(l + b"\r\n" for l in lines)


def pop3_cycle(port, ctx, n=1, dovecot=None, user="demo", password="demo"):
    """One POP3S session with poplib: USER/PASS, STAT, RETR n, QUIT (no
    message deleted). Returns the DER of the certificate it got."""
    dovecot = dovecot or DOVECOT
    p = poplib.POP3_SSL("127.0.0.1", port, context=ctx, timeout=harness.scaled(30))
    try:
        der = p.sock.getpeercert(binary_form=True)
        p.user(user)
        p.pass_(password)
        count, _ = p.stat()
        if count != len(dovecot.inbox[user]):
            raise AssertionError("STAT: %d messages, Dovecot has %d"
                                 % (count, len(dovecot.inbox[user])))
        resp, lines, _ = p.retr(n)
        if pop3_body(lines) != dovecot.message(n, user):
            raise AssertionError("RETR %d: %r differs from Dovecot's message" % (n, resp))
        resp = p.quit()
        if not resp.startswith(b"+OK"):
            raise AssertionError("QUIT: %r" % resp)
        return der
    finally:
        if p.sock is not None:      # quit() closes it
            p.sock.close()


class OpenImap:
    """An imaplib IMAPS session logged in and with INBOX examined, kept
    open across reloads."""

    def __init__(self, port, dovecot=None, user="demo", password="demo"):
        self.dovecot = dovecot or DOVECOT
        self.user = user
        self.m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=harness.client_context(),
                                   timeout=harness.scaled(30))
        self.der = self.m.sock.getpeercert(binary_form=True)
        typ, data = self.m.login(user, password)
        assert typ == "OK", (typ, data)
        typ, data = self.m.select("INBOX", readonly=True)
        assert typ == "OK", (typ, data)
        self.exists = int(data[0])

    def check(self, test, uid=1):
        """NOOP and FETCH uid answer as before, from the same backend."""
        typ, data = self.m.noop()
        test.assertEqual(typ, "OK", data)
        typ, data = self.m.uid("FETCH", str(uid), "(BODY.PEEK[])")
        test.assertEqual(typ, "OK", data)
        test.assertEqual(fetched(data), self.dovecot.message(uid, self.user), data)
        test.assertEqual(self.m.sock.getpeercert(binary_form=True), self.der)

    def logout(self, test):
        typ, data = self.m.logout()
        test.assertEqual(typ, "BYE", data)

    def close(self):
        try:
            self.m.shutdown()
        except (OSError, imaplib.IMAP4.error):
            pass


def line_of(text, prefix, after=None):
    """1-based number of the first line of text starting with prefix (and
    after the line `after` starts with, when given)."""
    started = after is None
    for i, l in enumerate(text.splitlines(), 1):
        if not started:
            started = l.startswith(after)
            continue
        if l.startswith(prefix):
            return i
    raise AssertionError("no line %r in:\n%s" % (prefix, text))


def log_tail(moat, n=60):
    return "\n".join(moat.log().splitlines()[-n:])


def outcomes(text):
    """The generation numbers of event=reloaded lines, and how many
    reloads were refused (final event=reload_failed message= lines)."""
    gens = [int(g) for g in re.findall(r"event=reloaded generation=(\d+)", text)]
    refused = len(re.findall(r"event=reload_failed\b[^\n]*message=", text))
    return gens, refused


def session_log(moat, port, start=0, timeout=10):
    """moat's log lines (from offset start) about the client whose local
    port was `port`, once its event=session_end is there."""
    moat.wait_log(r"event=session_end [^\n]*client=127\.0\.0\.1:%d\b" % port, timeout, start)
    rx = re.compile(r"client=127\.0\.0\.1:%d\b" % port)
    return [l for l in moat.log()[start:].splitlines() if rx.search(l)]


def wait_fds(pid, limit, timeout):
    """Waits until the process has at most `limit` open fds; returns the
    last count."""
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        n = harness.proc_fd_count(pid)
        if n is None or n <= limit or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


class ClientLoad:
    """Client threads that loop full sessions (IMAPS with imaplib, POP3S
    with poplib) until stopped, each with a fresh TLS handshake (every
    second thread of a kind pinned to TLS 1.2), plus one IMAP session
    that stays logged in throughout, with NOOP and FETCH every 0.1 s.
    Every exception is kept with its traceback; every certificate seen by
    a new session is counted."""

    MAX_ERRORS = 50

    def __init__(self, moat, imap_threads, pop3_threads):
        self.moat = moat
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.errors = []
        self.done = collections.Counter()
        self.seen = collections.Counter()
        self.long_der = None
        self.long_ready = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=("imap", i), daemon=True)
                        for i in range(imap_threads)]
        self.threads += [threading.Thread(target=self._loop, args=("pop3", i), daemon=True)
                         for i in range(pop3_threads)]
        self.threads.append(threading.Thread(target=self._long, daemon=True))

    def start(self):
        """Starts the threads; returns once the long-lived session is
        logged in (or failed), so it predates whatever follows."""
        for t in self.threads:
            t.start()
        self.long_ready.wait(harness.scaled(30))
        return self

    def _error(self, what, t0):
        with self.lock:
            self.errors.append("%s, %.3fs in, at %s:\n%s"
                               % (what, time.monotonic() - t0, time.strftime("%H:%M:%S"),
                                  traceback.format_exc()))
            return len(self.errors) >= self.MAX_ERRORS

    def _long(self):
        """The session that lives through every reload."""
        t0 = time.monotonic()
        try:
            m = imaplib.IMAP4_SSL("127.0.0.1", self.moat.port("imaps"),
                                  ssl_context=harness.client_context(),
                                  timeout=harness.scaled(30))
        except Exception:
            self._error("long-lived IMAP session: connect", t0)
            self.long_ready.set()
            return
        try:
            self.long_der = m.sock.getpeercert(binary_form=True)
            typ, data = m.login("demo", "demo")
            assert typ == "OK", (typ, data)
            typ, data = m.select("INBOX", readonly=True)
            assert typ == "OK" and int(data[0]) == 3, (typ, data)
            self.long_ready.set()
            uid = 0
            while not self.stop_event.wait(0.1):
                typ, data = m.noop()
                assert typ == "OK", (typ, data)
                uid = uid % 3 + 1
                typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
                assert typ == "OK" and fetched(data) == DOVECOT.message(uid), (typ, data)
                assert m.sock.getpeercert(binary_form=True) == self.long_der
                with self.lock:
                    self.done["long"] += 1
            typ, data = m.logout()
            assert typ == "BYE", (typ, data)
        except Exception:
            self._error("long-lived IMAP session (%d rounds done)" % self.done["long"], t0)
        finally:
            self.long_ready.set()
            try:
                m.shutdown()
            except OSError:
                pass

    def _loop(self, kind, idx):
        if idx % 2:
            ctx = harness.client_context(maximum=ssl.TLSVersion.TLSv1_2)
        else:
            ctx = harness.client_context()
        cycle = imap_cycle if kind == "imap" else pop3_cycle
        port = self.moat.port("imaps" if kind == "imap" else "pop3s")
        while not self.stop_event.is_set():
            t0 = time.monotonic()
            try:
                der = cycle(port, ctx)
            except Exception:
                if self._error("%s thread %d (%s)" % (kind, idx, ctx.maximum_version.name), t0):
                    return
                time.sleep(0.05)
                continue
            with self.lock:
                self.done[kind] += 1
                self.seen[der] += 1

    def finish(self, timeout=60):
        self.stop_event.set()
        for t in self.threads:
            t.join(harness.scaled(timeout))
        alive = [t for t in self.threads if t.is_alive()]
        if alive:
            self.errors.append("%d client threads still running after %ds"
                               % (len(alive), timeout))

    def report(self):
        log = self.moat.log()
        notable = [l for l in log.splitlines()
                   if re.search(r"level=(warn|error)|_failed|reason=\"[^\"]*(handshake|timeout)",
                                l)]
        gens, refused = outcomes(log)
        return ("%d client failures (sessions done: %s); first ones:\n%s\n"
                "--- moat's warn, error, *_failed and handshake/timeout session_end lines "
                "(%d reloads so far, %d refused):\n%s"
                % (len(self.errors), dict(self.done), "\n".join(self.errors[:5]),
                   len(gens), refused, "\n".join(notable[:40])))


def imap_pop3(dovecot=None, imap_options=None, pop3_options=None, like=None):
    """Listeners imaps and pop3s on dovecot; with like (a moat), on the
    ports that moat listens on (a reload must not move them)."""
    dovecot = dovecot or DOVECOT
    ports = (like.port("imaps"), like.port("pop3s")) if like else (None, None)
    return [harness.Listener("imaps", "imap", dovecot.imap_port, port=ports[0],
                             options=imap_options),
            harness.Listener("pop3s", "pop3", dovecot.pop3_port, port=ports[1],
                             options=pop3_options)]


def start_moat(test, listeners, cert, name="moat", paths=None, **kw):
    """A moat serving cert (or the (chain, key) files in paths), stopped
    (and checked to exit 0) at cleanup."""
    chain, key = paths or (cert.chain, cert.key)
    moat = harness.Moat(listeners, name=name, cert=chain, key=key, **kw).start()

    def stop():
        rc = moat.stop(timeout=30)
        if rc != 0:
            raise AssertionError("moat exited with status %s; log tail:\n%s"
                                 % (rc, "\n".join(_read_tail(moat.log_path))))
    test.addCleanup(stop)
    return moat


def _read_tail(path, n=60):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace").splitlines()[-n:]
    except OSError as e:
        return ["(%s)" % e]


def config(listeners, cert, **kw):
    return harness.moat_config(listeners, cert=cert.chain, key=cert.key, **kw)


def write_private(path, data, mode=0o600):
    """Writes a file atomically (temporary file, rename) with this mode."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def read(path):
    with open(path, "rb") as f:
        return f.read()


class SlowImap(harness.FakeServer):
    """An IMAP backend that greets only after `delay` seconds, then
    answers CAPABILITY (with IDLE) and LOGOUT."""

    CAPS = b"IMAP4rev1 IDLE ENABLE AUTH=PLAIN"

    def __init__(self, delay):
        self.delay = delay
        super().__init__(conn_timeout=30)

    def serve(self, conn):
        time.sleep(self.delay)
        conn.sendall(b"* OK slow imap ready\r\n")
        f = conn.makefile("rb")
        for _ in range(100):
            line = f.readline(65536)
            if not line:
                return
            tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
            cmd = rest.split(b" ")[0].upper()
            if cmd == b"CAPABILITY":
                conn.sendall(b"* CAPABILITY %s\r\n%s OK done\r\n" % (self.CAPS, tag))
            elif cmd == b"LOGOUT":
                conn.sendall(b"* BYE slow imap\r\n%s OK done\r\n" % tag)
                self.hang_up(conn)
                return
            else:
                conn.sendall(tag + b" BAD slow imap knows no " + cmd + b"\r\n")


# ------------------------------------------------------------------ rotation

class TestCertificateRotation(unittest.TestCase):
    """A logged-in session survives a certificate change; new handshakes
    get the new certificate."""

    @classmethod
    def setUpClass(cls):
        cls.a = Cert("rot-a")
        cls.b = Cert("rot-b")
        assert cls.a.serial != cls.b.serial and cls.a.der != cls.b.der

    def rotate(self, moat, change):
        """Opens a session under cert A, runs change() (which must leave
        the config pointing at cert B's material), reloads, and checks
        both the new handshakes and the old session."""
        a, b = self.a, self.b
        port = moat.port("imaps")
        self.assertEqual(served_der(port), a.der)
        old = OpenImap(port)
        self.addCleanup(old.close)
        self.assertEqual(old.der, a.der)
        self.assertEqual(old.exists, 3)
        change()
        self.assertTrue(moat.reload(), log_tail(moat))
        # New handshakes: Python and openssl both get B.
        der = served_der(port)
        self.assertEqual(der, b.der, "after the reload a new handshake got %s, not %s"
                         % (which(der, a, b), b.name))
        der = s_client_der(port)
        self.assertEqual(der, b.der, "s_client got %s" % which(der, a, b))
        self.assertEqual(served_der(moat.port("pop3s")), b.der)
        # A full new session works under B.
        self.assertEqual(imap_cycle(port, harness.client_context()), b.der)
        # The old session carries on (under A) and ends cleanly.
        old.check(self, uid=1)
        old.check(self, uid=3)
        old.logout(self)

    def test_config_names_new_certificate(self):
        a, b = self.a, self.b
        listeners = imap_pop3()
        moat = start_moat(self, listeners, a, name="rot-config")

        def change():
            moat.write_config(config(listeners, b))
        self.rotate(moat, change)

    def test_certbot_symlinks_switched(self):
        # certbot's layout: live/NAME/*.pem are symlinks into
        # archive/NAME/*N.pem; a renewal writes archive/*2.pem and points
        # the symlinks at them. The config never changes.
        a, b = self.a, self.b
        base = harness.new_dir("certbot")
        archive = os.path.join(base, "archive", "mail")
        live = os.path.join(base, "live", "mail")
        os.makedirs(archive)
        os.makedirs(live)
        for n, c in ((1, a), (2, b)):
            write_private(os.path.join(archive, "fullchain%d.pem" % n), read(c.chain), 0o644)
            write_private(os.path.join(archive, "privkey%d.pem" % n), read(c.key), 0o600)

        def point(n):
            for what in ("fullchain", "privkey"):
                link = os.path.join(live, what + ".pem")
                tmp = link + ".new"
                os.symlink("../../archive/mail/%s%d.pem" % (what, n), tmp)
                os.rename(tmp, link)
        point(1)
        listeners = imap_pop3()
        moat = start_moat(self, listeners, None, name="rot-certbot",
                          paths=(os.path.join(live, "fullchain.pem"),
                                 os.path.join(live, "privkey.pem")))
        self.rotate(moat, lambda: point(2))

    def test_files_rewritten_in_place(self):
        # Tools that copy the renewed files over the old paths: same
        # names, same inodes, new content.
        a, b = self.a, self.b
        d = harness.new_dir("inplace")
        chain = os.path.join(d, "fullchain.pem")
        key = os.path.join(d, "privkey.pem")
        shutil.copyfile(a.chain, chain)
        shutil.copyfile(a.key, key)
        os.chmod(key, 0o600)
        listeners = imap_pop3()
        moat = start_moat(self, listeners, None, name="rot-inplace", paths=(chain, key))
        inodes = (os.stat(chain).st_ino, os.stat(key).st_ino)

        def change():
            shutil.copyfile(b.chain, chain)
            shutil.copyfile(b.key, key)
            self.assertEqual((os.stat(chain).st_ino, os.stat(key).st_ino), inodes)
        self.rotate(moat, change)


# ------------------------------------------------------------------ load

class TestReloadUnderLoad(unittest.TestCase):

    DURATION = 10.0     # seconds of reloading under load
    MIN_RELOADS = 10
    PERIOD = 0.5        # seconds between reloads
    FD_MARGIN = 3

    def test_alternating_certificates_under_load(self):
        a, b = Cert("load-a"), Cert("load-b")
        listeners = imap_pop3()
        moat = start_moat(self, listeners, a, name="load")
        pid = moat.proc.pid
        # Baseline once a session of each kind has come and gone.
        ctx = harness.client_context()
        self.assertEqual(imap_cycle(moat.port("imaps"), ctx), a.der)
        self.assertEqual(pop3_cycle(moat.port("pop3s"), ctx), a.der)
        time.sleep(0.3)
        fd0 = harness.proc_fd_count(pid)
        log0 = len(moat.log())

        load = ClientLoad(moat, imap_threads=4, pop3_threads=2).start()
        self.addCleanup(load.finish)
        results = []
        t0 = time.monotonic()
        try:
            while (time.monotonic() - t0 < harness.scaled(self.DURATION)
                   or len(results) < self.MIN_RELOADS):
                cert = b if len(results) % 2 == 0 else a
                moat.write_config(config(listeners, cert))
                results.append((cert.name, moat.reload()))
                if load.errors:
                    break
                time.sleep(self.PERIOD)
        finally:
            # A last stretch of sessions under the final certificate.
            time.sleep(1.0)
            load.finish()
        last = b if len(results) % 2 == 1 else a

        self.assertEqual(load.errors, [], load.report())
        refused = [r for r in results if not r[1]]
        self.assertEqual(refused, [], "refused reloads; log tail:\n" + log_tail(moat))
        self.assertGreaterEqual(len(results), self.MIN_RELOADS)
        gens, nrefused = outcomes(moat.log()[log0:])
        self.assertEqual(gens, list(range(2, 2 + len(results))), log_tail(moat))
        self.assertEqual(nrefused, 0)
        # Clients saw both certificates, and nothing else.
        self.assertGreater(load.seen[a.der], 0, load.report())
        self.assertGreater(load.seen[b.der], 0, load.report())
        self.assertEqual(set(load.seen), {a.der, b.der})
        self.assertGreaterEqual(load.done["imap"], 20, dict(load.done))
        self.assertGreaterEqual(load.done["pop3"], 10, dict(load.done))
        # The session logged in before the first reload lived through all
        # of them, under the certificate it started with.
        self.assertEqual(load.long_der, a.der)
        self.assertGreaterEqual(load.done["long"], 20, dict(load.done))
        # The final configuration is what new clients get.
        self.assertEqual(served_der(moat.port("imaps")), last.der)
        # Every session over, old generations freed: fds back to baseline.
        n = wait_fds(pid, fd0 + self.FD_MARGIN, 15)
        self.assertLessEqual(n, fd0 + self.FD_MARGIN,
                             "moat had %d fds before the load, %d after (%d reloads, "
                             "%d sessions); /proc/%d/fd:\n%s"
                             % (fd0, n, len(results), sum(load.done.values()), pid,
                                _fd_listing(pid)))
        self.assertIsNone(moat.proc.poll())


def _fd_listing(pid):
    d = "/proc/%d/fd" % pid
    out = []
    try:
        for n in sorted(os.listdir(d), key=int):
            try:
                out.append("%s -> %s" % (n, os.readlink(os.path.join(d, n))))
            except OSError:
                pass
    except OSError as e:
        return str(e)
    return "\n".join(out)


# ------------------------------------------------------------------ refused

class TestRefusedReloads(unittest.TestCase):
    """What a reload refuses leaves everything as it was: the old
    certificate, the old listeners, sessions open before."""

    @classmethod
    def setUpClass(cls):
        cls.a = Cert("ref-a")
        cls.b = Cert("ref-b")

    def check_still_old(self, moat, why):
        """New connections get cert A, full sessions work on both
        listeners (Python and curl pinned to A's key)."""
        a, b = self.a, self.b
        imaps, pop3s = moat.port("imaps"), moat.port("pop3s")
        der = served_der(imaps)
        self.assertEqual(der, a.der, "%s: new connections got %s" % (why, which(der, a, b)))
        ctx = harness.client_context()
        self.assertEqual(imap_cycle(imaps, ctx, uid=2), a.der)
        self.assertEqual(pop3_cycle(pop3s, ctx, n=2), a.der)
        r = curl_pinned("imaps://localhost:%d/INBOX;UID=1" % imaps, a)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, DOVECOT.message(1))
        r = curl_pinned("pop3s://localhost:%d/3" % pop3s, a)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, DOVECOT.message(3))
        # Control: pinned to B's key, curl refuses the server.
        r = curl_pinned("imaps://localhost:%d/INBOX;UID=1" % imaps, b)
        self.assertNotEqual(r.returncode, 0, "curl pinned to B's key was served")

    def refuse(self, moat, text, error_rx, why):
        """Writes text, reloads, expects refusal with a log line matching
        error_rx, and the old settings in force."""
        moat.write_config(text)
        start = len(moat.log())
        self.assertFalse(moat.reload(), "%s: reload accepted; log tail:\n%s"
                         % (why, log_tail(moat)))
        log = moat.log()[start:]
        self.assertRegex(log, error_rx, why)
        self.assertRegex(log, r'event=reload_failed [^\n]*message="configuration refused; '
                              r'the previous one stays in use"')
        self.assertNotIn("event=reloaded", log)
        self.check_still_old(moat, why)

    def test_broken_files(self):
        a, b = self.a, self.b
        listeners = imap_pop3()
        moat = start_moat(self, listeners, a, name="broken")
        path = re.escape(moat.config_path)
        old = OpenImap(moat.port("imaps"))
        self.addCleanup(old.close)
        good_b = config(listeners, b)
        d = harness.new_dir("broken-files")
        loose_key = os.path.join(d, "loose.key")
        shutil.copyfile(b.key, loose_key)
        os.chmod(loose_key, 0o644)
        garbage_pem = os.path.join(d, "garbage.pem")
        with open(garbage_pem, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n"
                    "-----END CERTIFICATE-----\n")

        cases = []
        text = good_b + "this line is not ini\n"
        cases.append(("syntax error", text,
                      r'event=reload_failed error="%s:%d: syntax error'
                      % (path, line_of(text, "this line"))))
        text = harness.moat_config(listeners, cert=b.chain, key=os.path.join(d, "missing.key"))
        cases.append(("missing key file", text,
                      r'event=reload_failed error="%s:%d: key [^"\n]*missing\.key: cannot open'
                      % (path, line_of(text, "key = "))))
        text = config(listeners, b, extra_tls="tls12_ciphers = ECDHE-ECDSA-AES128-GCM-SHA256:"
                                              "ECDHE-NO-SUCH-CIPHER")
        cases.append(("unknown cipher", text,
                      r"event=reload_failed error=\"%s:%d: tls12_ciphers: [^\n]*"
                      r"'ECDHE-NO-SUCH-CIPHER'" % (path, line_of(text, "tls12_ciphers"))))
        text = harness.moat_config(listeners, cert=b.chain, key=a.key)
        cases.append(("key does not match", text,
                      r'event=reload_failed error="%s:%d: key [^"\n]*does not match'
                      % (path, line_of(text, "key = "))))
        text = harness.moat_config(listeners, cert=b.chain, key=loose_key)
        if os.geteuid() == 0:   # key_permissions = auto is strict for root
            cases.append(("key readable by others", text,
                          r'event=reload_failed error="%s:%d: key [^"\n]*loose\.key may be '
                          r'read' % (path, line_of(text, "key = "))))
        text = harness.moat_config(listeners, cert=garbage_pem, key=b.key)
        cases.append(("certificate file not a certificate", text,
                      r'event=reload_failed error="%s:%d: certificate [^"\n]*garbage\.pem'
                      % (path, line_of(text, "certificate = "))))
        text = good_b.replace("protocol = pop3", "protocol = smtp")
        cases.append(("unknown protocol", text,
                      r'event=reload_failed error="%s:%d: '
                      % (path, line_of(text, "protocol = smtp"))))

        for why, text, rx in cases:
            with self.subTest(why):
                self.refuse(moat, text, rx, why)
        # The session from before all of that still works.
        old.check(self, uid=2)
        # And a good file is taken.
        moat.write_config(good_b)
        self.assertTrue(moat.reload(), log_tail(moat))
        self.assertEqual(served_der(moat.port("imaps")), b.der)
        r = curl_pinned("imaps://localhost:%d/INBOX;UID=1" % moat.port("imaps"), b)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, DOVECOT.message(1))
        old.check(self, uid=3)
        old.logout(self)

    def test_changes_needing_restart(self):
        a, b = self.a, self.b
        listeners = imap_pop3()
        moat = start_moat(self, listeners, a, name="restart")
        old = OpenImap(moat.port("imaps"))
        self.addCleanup(old.close)
        new_port = harness.free_port()

        cases = []
        moved = imap_pop3(like=moat)
        moved[0].port = new_port
        cases.append(("address changed", config(moved, b),
                      r"\[listener imaps\] address changed \(127\.0\.0\.1:%d to "
                      r"127\.0\.0\.1:%d\): needs a restart" % (moat.port("imaps"), new_port)))
        added = imap_pop3(like=moat) + [harness.Listener("imaps2", "imap", DOVECOT.imap_port,
                                                port=new_port)]
        cases.append(("listener added", config(added, b),
                      r"listeners were added or removed: needs a restart"))
        cases.append(("listener removed", config(imap_pop3(like=moat)[:1], b),
                      r"listeners were added or removed: needs a restart"))
        renamed = imap_pop3(like=moat)
        renamed[1].name = "pop3-renamed"
        cases.append(("listener renamed", config(renamed, b),
                      r"\[listener pop3s\] is gone or renamed: needs a restart"))
        cases.append(("workers changed", config(listeners, b, workers=3),
                      r"workers changed \(2 to 3\): needs a restart"))
        cases.append(("buffer_size changed",
                      config(listeners, b).replace("[moat]\n", "[moat]\nbuffer_size = 16k\n"),
                      r"buffer_size changed: needs a restart"))

        for why, text, rx in cases:
            with self.subTest(why):
                moat.write_config(text)
                start = len(moat.log())
                self.assertFalse(moat.reload(), "%s: reload accepted; log tail:\n%s"
                                 % (why, log_tail(moat)))
                log = moat.log()[start:]
                self.assertRegex(log, r'event=reload_failed error="[^"\n]*needs a restart"'
                                      r' message="configuration refused')
                self.assertRegex(log, rx)
                self.assertNotIn("event=reloaded", log)
                self.assertFalse(harness.port_accepts(new_port),
                                 "%s: something listens on %d" % (why, new_port))
                self.check_still_old(moat, why)
        old.check(self, uid=1)
        moat.write_config(config(listeners, b))
        self.assertTrue(moat.reload(), log_tail(moat))
        self.assertEqual(served_der(moat.port("imaps")), b.der)
        self.assertEqual(served_der(moat.port("pop3s")), b.der)
        old.check(self, uid=2)
        old.logout(self)


# ------------------------------------------------------------------ settings

class TestChangedSettings(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cert = Cert("set")

    def test_greeting_and_dialogue_limits(self):
        imap_old = {"greeting": "Old IMAP text here", "auth_failure_delay": "0"}
        pop3_old = {"greeting": "Old POP3 text here"}
        imap_new = {"greeting": "New IMAP text now", "auth_failure_delay": "0",
                    "max_command": "1k"}
        pop3_new = {"greeting": "New POP3 text now"}
        moat = start_moat(self, imap_pop3(imap_options=imap_old, pop3_options=pop3_old),
                          self.cert, name="greeting")
        imaps, pop3s = moat.port("imaps"), moat.port("pop3s")
        greet_rx = rb"^\* OK \[CAPABILITY [^\]\r\n]*\] %s\r\n$"

        # Pre-auth sessions opened under the old settings.
        old_imap = harness.ImapClient(imaps)
        self.addCleanup(old_imap.close)
        self.assertRegex(old_imap.greeting(), greet_rx % b"Old IMAP text here")
        old_pop = harness.tls_connect(pop3s)
        self.addCleanup(old_pop.close)
        self.assertEqual(harness.recv_line(old_pop), b"+OK Old POP3 text here\r\n")

        moat.write_config(config(imap_pop3(imap_options=imap_new, pop3_options=pop3_new,
                                           like=moat), self.cert))
        self.assertTrue(moat.reload(), log_tail(moat))

        # New sessions: the new greetings, the new 1k command limit.
        long_id = 'ID ("name" "%s")' % ("x" * 1500)
        new_imap = harness.ImapClient(imaps)
        self.addCleanup(new_imap.close)
        self.assertRegex(new_imap.greeting(), greet_rx % b"New IMAP text now")
        new_imap.send("n1 %s\r\n" % long_id)
        self.assertRegex(new_imap.response(), rb"^(n1|\*) BAD", new_imap.dump()[-300:])
        _, tagged = new_imap.cmd("n2", "LOGIN demo demo")
        self.assertTrue(tagged.startswith(b"n2 OK"), new_imap.dump())
        new_imap.cmd("n3", "LOGOUT")
        s = harness.tls_connect(pop3s)
        self.addCleanup(s.close)
        self.assertEqual(harness.recv_line(s), b"+OK New POP3 text now\r\n")
        s.close()
        self.assertEqual(pop3_cycle(pop3s, harness.client_context()), self.cert.der)

        # The old pre-auth sessions keep their dialogue: 8k commands pass.
        _, tagged = old_imap.cmd("o1", long_id)
        self.assertTrue(tagged.startswith(b"o1 OK"), old_imap.dump()[-500:])
        _, tagged = old_imap.cmd("o2", "LOGIN demo demo")
        self.assertTrue(tagged.startswith(b"o2 OK"), old_imap.dump()[-500:])
        untagged, tagged = old_imap.cmd("o3", "EXAMINE INBOX")
        self.assertTrue(tagged.startswith(b"o3 OK"), old_imap.dump()[-500:])
        self.assertIn(b"* 3 EXISTS\r\n", untagged)
        untagged, tagged = old_imap.cmd("o4", "LOGOUT")
        self.assertTrue(tagged.startswith(b"o4 OK"), old_imap.dump()[-500:])
        old_pop.sendall(b"USER demo\r\n")
        self.assertTrue(harness.recv_line(old_pop).startswith(b"+OK"))
        old_pop.sendall(b"PASS demo\r\n")
        self.assertTrue(harness.recv_line(old_pop).startswith(b"+OK"))
        old_pop.sendall(b"STAT\r\n")
        self.assertTrue(harness.recv_line(old_pop).startswith(b"+OK 3 "))
        old_pop.sendall(b"QUIT\r\n")
        self.assertTrue(harness.recv_line(old_pop).startswith(b"+OK"))

    def test_backend_change(self):
        msgs = [harness.make_message(n, "second backend %d" % n,
                                     [b"on the second Dovecot", b"line %d" % n],
                                     msgid_prefix="reload-b2")
                for n in (1, 2)]
        d2 = harness.Dovecot(users={"demo": "demo", "other": "other-pw"},
                             messages={"demo": [("100000000%d.M%dP1.b2" % (n, n), m)
                                                for n, m in enumerate(msgs, 1)],
                                       "other": [("1000000001.M1P1.o", msgs[0])]},
                             name="dovecot2").start()
        self.addCleanup(d2.stop)
        self.assertNotEqual(d2.message(1), DOVECOT.message(1))
        moat = start_moat(self, imap_pop3(), self.cert, name="backend")
        imaps, pop3s = moat.port("imaps"), moat.port("pop3s")
        ctx = harness.client_context()
        old = OpenImap(imaps)
        self.addCleanup(old.close)
        self.assertEqual(old.exists, 3)
        old_pop = poplib.POP3_SSL("127.0.0.1", pop3s, context=ctx, timeout=harness.scaled(30))
        self.addCleanup(old_pop.sock.close)
        old_pop.user("demo")
        old_pop.pass_("demo")
        self.assertEqual(old_pop.stat()[0], 3)

        start = len(moat.log())
        moat.write_config(config(imap_pop3(dovecot=d2, like=moat), self.cert))
        self.assertTrue(moat.reload(), log_tail(moat))
        log = moat.log()[start:]
        # The capabilities were asked of the new backends.
        self.assertRegex(log, r"event=capabilities listener=imaps ")
        self.assertRegex(log, r"event=capabilities listener=pop3s ")
        self.assertNotIn("probe_failed", log)

        # New logins land on the second Dovecot.
        imap_cycle(imaps, ctx, uid=2, dovecot=d2)
        pop3_cycle(pop3s, ctx, n=2, dovecot=d2)
        imap_cycle(imaps, ctx, uid=1, dovecot=d2, user="other", password="other-pw")
        # The old sessions still read from the first one (message 3
        # exists only there).
        old.check(self, uid=3)
        old.logout(self)
        resp, lines, _ = old_pop.retr(3)
        self.assertEqual(pop3_body(lines), DOVECOT.message(3))
        self.assertTrue(old_pop.quit().startswith(b"+OK"))


# ------------------------------------------------------------------ tickets

def ticket_session(port, ctx, session=None):
    """Connects (optionally resuming), reads the greeting (so a TLS 1.3
    ticket has arrived), logs in and out. Returns (session_reused, the new
    session, TLS version, local port)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=harness.scaled(20))
    s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
    try:
        local = s.getsockname()[1]
        greeting = harness.recv_line(s)
        assert greeting.startswith(b"* OK"), greeting
        s.sendall(b"a LOGIN demo demo\r\n")
        while True:
            l = harness.recv_line(s)
            if not l or l.startswith(b"a "):
                break
        assert l.startswith(b"a OK"), l
        s.sendall(b"b LOGOUT\r\n")
        harness.recv_until_eof(s, harness.scaled(10))
        return s.session_reused, s.session, s.version(), local
    finally:
        s.close()


class TestTicketsAcrossReload(unittest.TestCase):

    def s_client(self, port, *extra):
        argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                "-servername", "localhost", "-CAfile", harness.certs().ca,
                "-verify_return_error", "-ign_eof"] + list(extra)
        r = harness.run_cmd(argv, timeout=30, input=b"a LOGOUT\r\n")
        out = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("a OK", out)
        return out

    def test_tickets_survive_reload_unless_lifetime_changes(self):
        cert = Cert("tickets")
        listeners = [harness.Listener("imaps", "imap", DOVECOT.imap_port)]
        tls_2h = "session_tickets = yes\nticket_lifetime = 2h"
        moat = start_moat(self, listeners, cert, name="tickets", extra_tls=tls_2h)
        port = moat.port("imaps")
        versions = {"TLSv1.3": ssl.TLSVersion.TLSv1_3, "TLSv1.2": ssl.TLSVersion.TLSv1_2}
        ctxs = {v: harness.client_context(minimum=t, maximum=t) for v, t in versions.items()}
        sessions = {}
        for v, ctx in ctxs.items():
            reused, sess, got, _ = ticket_session(port, ctx)
            self.assertEqual(got, v)
            self.assertFalse(reused)
            self.assertTrue(sess is not None and sess.has_ticket, "%s: no ticket" % v)
            # Control: it resumes before any reload.
            reused, _, _, local = ticket_session(port, ctx, sess)
            self.assertTrue(reused, "%s: the ticket does not resume even without a reload" % v)
            sessions[v] = sess
        d = harness.new_dir("s_client")
        sess_file = os.path.join(d, "tls13.sess")
        out = self.s_client(port, "-tls1_3", "-sess_out", sess_file)
        self.assertIn("New, TLSv1.3", out)
        self.assertTrue(os.path.getsize(sess_file) > 0)

        # Reload with the same ticket settings (and a new greeting, so
        # something did change).
        moat.write_config(config([harness.Listener("imaps", "imap", DOVECOT.imap_port,
                                                   port=port,
                                                   options={"greeting": "after reload"})],
                                 cert, extra_tls=tls_2h))
        self.assertTrue(moat.reload(), log_tail(moat))
        for v, ctx in ctxs.items():
            with self.subTest(v, lifetime="same"):
                start = len(moat.log())
                reused, _, got, local = ticket_session(port, ctx, sessions[v])
                self.assertEqual(got, v)
                self.assertTrue(reused, "%s ticket from before the reload did not resume" % v)
                self.assertRegex("\n".join(session_log(moat, local, start)),
                                 r"event=session_end [^\n]*resumed=yes")
        with self.subTest("s_client", lifetime="same"):
            out = self.s_client(port, "-tls1_3", "-sess_in", sess_file)
            self.assertIn("Reused, TLSv1.3", out)
            self.assertIn("after reload", out)

        # A new ticket_lifetime means new ticket keys: old tickets are
        # refused (full handshake, the connection works), new ones resume.
        moat.write_config(config([harness.Listener("imaps", "imap", DOVECOT.imap_port,
                                                   port=port)],
                                 cert, extra_tls="session_tickets = yes\nticket_lifetime = 1h"))
        self.assertTrue(moat.reload(), log_tail(moat))
        for v, ctx in ctxs.items():
            with self.subTest(v, lifetime="changed"):
                start = len(moat.log())
                reused, sess, got, local = ticket_session(port, ctx, sessions[v])
                self.assertEqual(got, v)
                self.assertFalse(reused, "%s ticket resumed under new ticket keys" % v)
                self.assertRegex("\n".join(session_log(moat, local, start)),
                                 r"event=session_end [^\n]*resumed=no")
                self.assertTrue(sess.has_ticket)
                reused, _, _, _ = ticket_session(port, ctx, sess)
                self.assertTrue(reused, "%s: a ticket issued after the change does not resume"
                                % v)
        with self.subTest("s_client", lifetime="changed"):
            out = self.s_client(port, "-tls1_3", "-sess_in", sess_file)
            self.assertIn("New, TLSv1.3", out)
            self.assertNotIn("Reused,", out)


# ------------------------------------------------------------------ log level

class TestLogLevel(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.cert = Cert("loglevel")

    def session(self, moat, start):
        """One pre-auth session (greeting, LOGOUT); its log lines."""
        c = harness.ImapClient(moat.port("imaps"))
        try:
            local = c.sock.getsockname()[1]
            c.greeting()
            c.cmd("a", "LOGOUT")
        finally:
            c.close()
        return session_log(moat, local, start)

    def states(self, lines):
        return [l for l in lines if "event=state " in l]

    def test_log_level_follows_reload(self):
        listeners = [harness.Listener("imaps", "imap", DOVECOT.imap_port)]
        moat = start_moat(self, listeners, self.cert, name="loglevel")
        lines = self.session(moat, 0)
        self.assertEqual(self.states(lines), [], lines)

        moat.write_config(config(listeners, self.cert, log_level="debug"))
        self.assertTrue(moat.reload(), log_tail(moat))
        start = len(moat.log())
        lines = self.session(moat, start)
        states = self.states(lines)
        self.assertTrue(states, lines)
        self.assertTrue(any("from=accepted to=handshake" in l for l in states), states)
        self.assertTrue(any("to=preauth" in l for l in states), states)

        moat.write_config(config(listeners, self.cert, log_level="info"))
        self.assertTrue(moat.reload(), log_tail(moat))
        start = len(moat.log())
        lines = self.session(moat, start)
        self.assertEqual(self.states(lines), [], lines)

    def test_refused_reload_keeps_log_level(self):
        # "A file with errors is refused ... and the running configuration
        # stays": its log_level included.
        listeners = [harness.Listener("imaps", "imap", DOVECOT.imap_port)]
        moat = start_moat(self, listeners, self.cert, name="loglevel-refused")
        good = config(listeners, self.cert, log_level="info")
        d = harness.new_dir("loglevel")
        cases = [
            ("syntax error", config(listeners, self.cert, log_level="debug") + "not ini\n"),
            ("missing key file", harness.moat_config(listeners, log_level="debug",
                                                     cert=self.cert.chain,
                                                     key=os.path.join(d, "missing.key"))),
            ("workers changed (needs a restart)",
             config(listeners, self.cert, log_level="debug", workers=3)),
        ]
        for why, text in cases:
            with self.subTest(why):
                moat.write_config(text)
                self.assertFalse(moat.reload(), log_tail(moat))
                start = len(moat.log())
                lines = self.session(moat, start)
                self.assertEqual(self.states(lines), [],
                                 "after a refused reload (%s) whose file says log_level = "
                                 "debug, new sessions log event=state:\n%s"
                                 % (why, "\n".join(lines)))
            # Back to a known state for the next case.
            moat.write_config(good)
            self.assertTrue(moat.reload(), log_tail(moat))


# ------------------------------------------------------------------ storm

class TestSighupStorm(unittest.TestCase):

    SIGNALS = 20
    MEMORY_RELOADS = 150

    def test_burst_of_sighups_under_load(self):
        a, b = Cert("storm-a"), Cert("storm-b")
        listeners = imap_pop3()
        moat = harness.Moat(listeners, name="storm", cert=a.chain, key=a.key).start()
        self.addCleanup(moat.kill)
        pid = moat.proc.pid
        ctx = harness.client_context()
        imap_cycle(moat.port("imaps"), ctx)
        pop3_cycle(moat.port("pop3s"), ctx)
        time.sleep(0.3)
        fd0 = harness.proc_fd_count(pid)
        log0 = len(moat.log())

        load = ClientLoad(moat, imap_threads=2, pop3_threads=2).start()
        self.addCleanup(load.finish)
        time.sleep(0.5)
        last = a
        for i in range(self.SIGNALS):
            if i % 3 == 0:
                last = b if last is a else a
                moat.write_config(config(listeners, last))
            moat.proc.send_signal(signal.SIGHUP)
        # Wait for the reloads to settle: every event=reloading has its
        # outcome and nothing new for a while.
        deadline = time.monotonic() + harness.scaled(30)
        settled_since, prev = None, None
        while time.monotonic() < deadline:
            text = moat.log()[log0:]
            gens, refused = outcomes(text)
            state = (text.count("event=reloading"), len(gens), refused)
            if state[0] == state[1] + state[2] and state == prev:
                if settled_since and time.monotonic() - settled_since > 1.0:
                    break
                settled_since = settled_since or time.monotonic()
            else:
                settled_since = None
            prev = state
            self.assertIsNone(moat.proc.poll(), "moat died; log tail:\n" + log_tail(moat))
            time.sleep(0.1)
        time.sleep(1.0)
        load.finish()

        self.assertEqual(load.errors, [], load.report())
        self.assertIsNone(moat.proc.poll(), "moat died; log tail:\n" + log_tail(moat))
        text = moat.log()[log0:]
        gens, refused = outcomes(text)
        self.assertEqual(refused, 0, log_tail(moat))
        self.assertGreaterEqual(len(gens), 1, log_tail(moat))
        self.assertLessEqual(len(gens), self.SIGNALS)
        self.assertEqual(gens, list(range(2, 2 + len(gens))))
        self.assertGreater(sum(load.done.values()), 10, dict(load.done))
        self.assertEqual(load.long_der, a.der)
        self.assertGreater(load.done["long"], 5, dict(load.done))
        # The last reload read the last file.
        self.assertEqual(served_der(moat.port("imaps")), last.der)
        # Still reloads normally, then stops cleanly.
        moat.write_config(config(listeners, a))
        self.assertTrue(moat.reload(), log_tail(moat))
        self.assertEqual(served_der(moat.port("pop3s")), a.der)
        n = wait_fds(pid, fd0 + 3, 15)
        self.assertLessEqual(n, fd0 + 3, "fds: %d before, %d after:\n%s"
                             % (fd0, n, _fd_listing(pid)))
        rc = moat.stop(timeout=30)
        self.assertEqual(rc, 0, log_tail(moat))

    def test_sighup_during_backend_probe(self):
        # A reload asks each backend for its capabilities, synchronously;
        # a backend that takes its time (here 0.5 s to greet) keeps the
        # reload busy, and another SIGHUP may well arrive meanwhile. That
        # signal must only cause one more reload, not break the probe in
        # progress: the backend answered every time.
        backend = SlowImap(delay=0.5)
        self.addCleanup(backend.stop)
        listeners = [harness.Listener("imaps", "imap", backend.port)]
        moat = start_moat(self, listeners, Cert("probe"), name="probe")
        self.assertRegex(moat.log(), r'event=capabilities listener=imaps passthrough="[^"]*IDLE')
        log0 = len(moat.log())
        moat.proc.send_signal(signal.SIGHUP)
        moat.wait_log(r"event=reloading", 10, log0)
        time.sleep(0.2)                     # the first reload's probe waits
        moat.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + harness.scaled(20)
        while True:
            gens, refused = outcomes(moat.log()[log0:])
            if len(gens) + refused >= 2:
                break
            self.assertLess(time.monotonic(), deadline, log_tail(moat))
            time.sleep(0.05)
        log = moat.log()[log0:]
        self.assertEqual((gens, refused), ([2, 3], 0), log)
        self.assertEqual(backend.get("accepted"), 3, backend.counts)
        self.assertNotIn("event=probe_failed", log,
                         "a SIGHUP during a reload's capability probe broke the probe "
                         "(the backend greeted and answered every time)")
        caps = re.findall(r'event=capabilities listener=imaps passthrough="([^"]*)"', log)
        self.assertEqual(len(caps), 2, log)
        for c in caps:
            self.assertIn("IDLE", c.split(), log)
        # What clients are told before login comes from the backend.
        c = harness.ImapClient(moat.port("imaps"))
        self.addCleanup(c.close)
        self.assertRegex(c.greeting(), rb"^\* OK \[CAPABILITY [^\]]* IDLE[ \]]")

    def test_many_reloads_hold_no_memory(self):
        # Each generation holds certificates, keys and TLS contexts (RSA
        # here, the larger kind); replaced ones must be freed.
        if harness.moat_wrapper():
            self.skipTest("RSS is the wrapper's under MOAT_WRAPPER")
        if harness.moat_sanitized():
            self.skipTest("RSS holds ASan's quarantine of freed memory (leaks: ASan's own check)")
        a = Cert("mem-a")
        r = harness.mkcert("reload-mem-rsa", "rsa", 90, "localhost", "DNS:localhost",
                           "IP:127.0.0.1")
        listeners = imap_pop3()
        moat = start_moat(self, listeners, a, name="memory",
                          extra=("[certificate rsa]\ncertificate = %s\nkey = %s\n" % r))
        pid = moat.proc.pid
        gen = 1

        def reloads(n):
            nonlocal gen
            for _ in range(n):
                gen += 1
                start = len(moat.log())
                moat.proc.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + harness.scaled(10)
                while "event=reloaded generation=%d\n" % gen not in moat.log()[start:]:
                    self.assertNotIn("event=reload_failed", moat.log()[start:])
                    self.assertLess(time.monotonic(), deadline, log_tail(moat))
                    time.sleep(0.002)
        reloads(20)
        self.assertEqual(imap_cycle(moat.port("imaps"), harness.client_context()), a.der)
        rss0 = harness.proc_rss_kib(pid)
        reloads(self.MEMORY_RELOADS)
        rss = harness.proc_rss_kib(pid)
        self.assertLess(rss - rss0, 1024, "RSS %d KiB before %d reloads, %d KiB after"
                        % (rss0, self.MEMORY_RELOADS, rss))
        self.assertEqual(imap_cycle(moat.port("imaps"), harness.client_context()), a.der)


if __name__ == "__main__":
    unittest.main()
