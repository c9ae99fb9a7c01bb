"""moat's limits, timeouts, failed-login blocks and metrics, with real
clients against a real Dovecot.

Per-address limits exempt loopback by default (limits_exempt = 127.0.0.0/8
::1), so the moats here set limits_exempt = none (or exempt 127.0.0.1
only) and the clients play different hosts by binding other loopback
source addresses (127.0.0.0/8 is all loopback on Linux): "another
address" is 127.0.0.2, 127.0.0.3, ... Each test uses addresses of its
own, so the per-address state of one test never leaks into another.

One Dovecot (its own failed-login delay and per-IP penalty turned off)
holds these accounts:

  demo      three small messages (UIDs 1-3)
  idler     one message; the IDLE test delivers a second one
  brute,    targets of the password-guessing tests (IMAP, POP3, short
  brutepop, block); their own names make Dovecot's log lines about them
  shortblk  countable

Each class starts the moats it needs (setUpClass), since the [moat]
limits are global to a moat:

  TestMaxConnections   max_connections = 5: imaps, imap (STARTTLS), pop3
                       (STLS)
  TestPerIp            max_connections_per_ip = 3: imaps, pop3s
  TestConnectionRate   connection_rate_per_ip = 5/10s, and another moat
                       with 5/2s
  TestRefusalLog       connection_rate_per_ip = 1/1m (refusal log lines
                       are rate-limited)
  TestTimeouts         handshake/preauth_timeout = 2s, idle_timeout = 3s
                       (a deadline from the greeting, NOOPs or not)
  TestFailedLogins     auth_fail_limit 20/10m (default), and another moat
                       with 3/1m and auth_block_time = 3s
  TestRefusedLogins    auth_fail_limit 1/1m: refusals delayed, counted
                       and rate-limited in the log; pipelined records kept
  TestProxyHeaderLimits proxy_protocol = yes, max_connections_per_ip = 1:
                       addresses crowding one bucket of an unkeyed hash,
                       headers without an address
  TestMetrics          [metrics] on 127.0.0.1, max_connections_per_ip = 2
                       (127.0.0.1 itself exempt)
"""

import re
import select
import socket
import ssl
import time
import unittest
import urllib.error
import urllib.request

import harness

LOOPBACK = harness.LOOPBACK
DOVECOT = None

PASSWORDS = {
    "demo": "demo",
    "idler": "idler-pass-61c0",
    "brute": "brute-pass-7e21",
    "brutepop": "brutepop-pass-2a9d",
    "shortblk": "shortblk-pass-c3f8",
}
WRONG = "wrong-pass-0d4e"

NO_EXEMPT = {"limits_exempt": "none"}
FAST_FAIL = {"auth_failure_delay": "0"}

# What the refused get, in each protocol's words (proxy/sess.c).
IMAP_BUSY = b"* BYE [UNAVAILABLE] Server busy, try again later\r\n"
POP3_BUSY = b"-ERR [SYS/TEMP] Server busy, try again later\r\n"
IMAP_PER_IP = b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"
POP3_PER_IP = b"-ERR [SYS/TEMP] Too many connections from your address\r\n"
IMAP_BLOCKED = b"NO [UNAVAILABLE] Too many failed logins, try again later\r\n"
POP3_BLOCKED = b"-ERR [SYS/TEMP] Too many failed logins, try again later\r\n"

# How a TLS handshake the server cut short may end on the client's side.
HANDSHAKE_CUT = (ssl.SSLError, ConnectionError, EOFError, socket.timeout, OSError)


# ------------------------------------------------------------------ module

def demo_messages():
    return [("100000000%d.M%dP1.lim" % (n, n),
             harness.make_message(n, "limits test %d" % n,
                                  [b"Message %d for the limits tests." % n,
                                   b"x" * (200 * n)], msgid_prefix="lim"))
            for n in (1, 2, 3)]


def setUpModule():
    global DOVECOT
    harness.certs()
    msgs = {"demo": demo_messages(),
            "idler": [("1000000001.M1P1.idler",
                       harness.make_message(1, "idler first", [b"The first one."]))]}
    DOVECOT = harness.Dovecot(users=dict(PASSWORDS), messages=msgs,
                              extra_conf=harness.DOVECOT_NO_AUTH_DELAY,
                              name="dovecot-limits").start()


def tearDownModule():
    if DOVECOT is not None:
        DOVECOT.stop()


def start_moat(testcls, listeners, name, **kw):
    """Starts a moat for a test class; stopped (and its exit status
    checked) by stop_moats()."""
    m = harness.Moat(listeners, name=name, **kw).start()
    testcls.moats.append(m)
    return m


def stop_moats(testcls):
    bad = []
    for m in testcls.moats:
        rc = m.stop(timeout=30)
        if rc != 0:
            bad.append("%s exited with status %s; log tail:\n%s"
                       % (m.dir, rc, "\n".join(m.log().splitlines()[-30:])))
    testcls.moats = []
    if bad:
        raise AssertionError("\n".join(bad))


# ------------------------------------------------------------------ clients

def bind_connect(port, src, timeout=10):
    """A TCP connection to 127.0.0.1:port from the loopback address src."""
    return socket.create_connection((LOOPBACK, port), timeout=harness.scaled(timeout),
                                    source_address=(src, 0))


class Client(harness.ImapClient):
    """harness.ImapClient from a chosen source address (also used for
    POP3: send() and line() are all a POP3 dialogue needs); session: a TLS
    session to resume."""

    def __init__(self, port, src=LOOPBACK, tls=True, timeout=30, ctx=None, session=None):
        self.ctx = ctx or harness.client_context()
        self.buf = b""
        self.transcript = []
        self.sock = bind_connect(port, src, timeout)
        if tls:
            try:
                self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost",
                                                 session=session)
            except BaseException:
                self.sock.close()
                raise

    def local(self):
        """"ip:port" of this end, as moat's log shows the client."""
        return "%s:%d" % self.sock.getsockname()[:2]


def quote(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def login_cmd(user, pw=None):
    return "LOGIN %s %s" % (quote(user), quote(PASSWORDS[user] if pw is None else pw))


def open_client(tc, port, src=LOOPBACK, tls=True, **kw):
    """A Client with its greeting read and checked ("* OK" or "+OK"),
    closed at the end of the test."""
    c = Client(port, src, tls=tls, **kw)
    tc.addCleanup(c.close)
    g = c.greeting()
    tc.assertTrue(g.startswith(b"* OK ") or g.startswith(b"+OK"), c.dump())
    c.greeting_line = g
    return c


def imap_login(tc, c, user="demo", tag="l"):
    _, tagged = c.cmd(tag, login_cmd(user))
    tc.assertTrue(tagged.startswith(tag.encode() + b" OK"), c.dump())


def closed_before_tls(port, src, timeout=5):
    """Connects from src and sends nothing: a session moat refuses before
    TLS is closed at once ("eof" or "reset"); one it accepts waits for a
    ClientHello ("open" after the timeout)."""
    s = bind_connect(port, src)
    try:
        s.settimeout(harness.scaled(timeout))
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            return "reset"
        except socket.timeout:
            return "open"
        return "eof" if not data else "data %r" % data
    finally:
        s.close()


def tls_attempt(port, src):
    """Tries a TLS handshake from src; "ok" or the exception's name."""
    s = bind_connect(port, src)
    try:
        t = harness.client_context().wrap_socket(s, server_hostname="localhost")
        t.close()
        return "ok"
    except HANDSHAKE_CUT as e:
        return type(e).__name__
    finally:
        s.close()


def client_hello():
    """The bytes of a real TLS ClientHello (Python's, for localhost)."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = harness.client_context().wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def refusal_lines(log, limit=None):
    """moat's event=limit_refused lines (for one limit) as dicts."""
    out = []
    for l in log.splitlines():
        if "event=limit_refused" not in l:
            continue
        f = dict(re.findall(r"(\w+)=(\S+)", l))
        if limit is None or f.get("limit") == limit:
            out.append(f)
    return out


def wait_session_end(moat, client, start=0, timeout=10):
    """Waits for moat's event=session_end line of the client at "ip:port"
    (after that, its connection no longer counts against any limit)."""
    return moat.wait_log(r"event=session_end [^\n]*client=%s " % re.escape(client),
                         timeout, start)


def eof_after(c, timeout=10):
    """Whatever the server still sends, until it closes; asserts that it
    does close."""
    data, how = c.rest_until_eof(timeout)
    if how not in harness.CLOSED:
        raise AssertionError("connection not closed (%s); transcript:\n%s" % (how, c.dump()))
    return data


# ------------------------------------------------------------------ max_connections

class TestMaxConnections(unittest.TestCase):
    """max_connections = 5, all listeners and addresses together."""

    moats = []

    @classmethod
    def setUpClass(cls):
        port = DOVECOT.imap_port
        cls.moat = start_moat(cls, [
            harness.Listener("imaps", "imap", port),
            harness.Listener("imap", "imap", port, tls="starttls"),
            harness.Listener("pop3", "pop3", DOVECOT.pop3_port, tls="starttls"),
        ], "moat-maxconn", options=dict(NO_EXEMPT, max_connections="5"))

    @classmethod
    def tearDownClass(cls):
        stop_moats(cls)

    def idle_session(self, src, starttls=False):
        m = self.moat
        c = open_client(self, m.port("imap" if starttls else "imaps"), src, tls=not starttls)
        if starttls:
            c.starttls()
        imap_login(self, c)
        untagged, tagged = c.cmd("s", "SELECT INBOX")
        self.assertTrue(tagged.startswith(b"s OK"), c.dump())
        self.assertIn(b"* 3 EXISTS\r\n", untagged)
        c.send("i IDLE\r\n")
        self.assertTrue(c.line().startswith(b"+ "), c.dump())
        return c

    def still_working(self, c):
        c.send("DONE\r\n")
        _, tagged = c.until("i")
        self.assertTrue(tagged.startswith(b"i OK"), c.dump())
        _, tagged = c.cmd("n", "NOOP")
        self.assertTrue(tagged.startswith(b"n OK"), c.dump())
        untagged, tagged = c.cmd("f", "FETCH 1 (BODY.PEEK[])")
        self.assertTrue(tagged.startswith(b"f OK"), c.dump())
        self.assertIn(DOVECOT.message(1, "demo"), b"".join(untagged))

    def assert_refused_everywhere(self, src):
        m = self.moat
        # implicit TLS: closed before any TLS work
        self.assertIn(closed_before_tls(m.port("imaps"), src), ("eof", "reset"))
        self.assertNotEqual(tls_attempt(m.port("imaps"), src), "ok")
        # STARTTLS IMAP: told in clear, then closed
        c = Client(m.port("imap"), src, tls=False)
        self.addCleanup(c.close)
        self.assertEqual(c.line(), IMAP_BUSY, c.dump())
        self.assertEqual(eof_after(c), b"")
        # STLS POP3
        c = Client(m.port("pop3"), src, tls=False)
        self.addCleanup(c.close)
        self.assertEqual(c.line(), POP3_BUSY, c.dump())
        self.assertEqual(eof_after(c), b"")

    def test_sixth_refused_five_keep_working(self):
        m = self.moat
        start = len(m.log())
        five = [self.idle_session("127.0.0.%d" % (11 + i), starttls=(i == 4))
                for i in range(5)]
        self.assert_refused_everywhere("127.0.0.16")
        lines = refusal_lines(m.log()[start:], "max_connections")
        self.assertTrue(lines, m.log()[start:])
        self.assertEqual(lines[0]["address"], "127.0.0.16")
        # The five were IDLE all along and are still served.
        for c in five:
            self.still_working(c)
        self.assert_refused_everywhere("127.0.0.17")
        for c in five:
            _, tagged = c.cmd("n2", "NOOP")
            self.assertTrue(tagged.startswith(b"n2 OK"), c.dump())
        # One leaves: a new client gets in (on another listener).
        first = five.pop(0)
        who = first.local()
        untagged, tagged = first.cmd("o", "LOGOUT")
        self.assertTrue(tagged.startswith(b"o OK"), first.dump())
        first.close()
        wait_session_end(m, who, start)
        c = open_client(self, m.port("imap"), "127.0.0.18", tls=False)
        c.starttls()
        imap_login(self, c)
        _, tagged = c.cmd("n", "NOOP")
        self.assertTrue(tagged.startswith(b"n OK"), c.dump())
        # Five again: full again.
        self.assert_refused_everywhere("127.0.0.19")
        for c in five:
            _, tagged = c.cmd("n3", "NOOP")
            self.assertTrue(tagged.startswith(b"n3 OK"), c.dump())


# ------------------------------------------------------------------ max_connections_per_ip

class TestPerIp(unittest.TestCase):
    """max_connections_per_ip = 3."""

    moats = []

    @classmethod
    def setUpClass(cls):
        cls.moat = start_moat(cls, [
            harness.Listener("imaps", "imap", DOVECOT.imap_port),
            harness.Listener("pop3s", "pop3", DOVECOT.pop3_port),
        ], "moat-perip", options=dict(NO_EXEMPT, max_connections_per_ip="3"))

    @classmethod
    def tearDownClass(cls):
        stop_moats(cls)

    def test_fourth_from_one_address_refused_after_handshake(self):
        m = self.moat
        start = len(m.log())
        three = [open_client(self, m.port("imaps"), "127.0.0.2") for _ in range(3)]
        imap_login(self, three[0])
        # The fourth completes the handshake and is told why.
        c = Client(m.port("imaps"), "127.0.0.2")
        self.addCleanup(c.close)
        self.assertIn(c.sock.version(), ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(c.line(), IMAP_PER_IP, c.dump())
        self.assertEqual(eof_after(c), b"")
        # Across listeners: POP3S from the same address.
        p = Client(m.port("pop3s"), "127.0.0.2")
        self.addCleanup(p.close)
        self.assertEqual(p.line(), POP3_PER_IP, p.dump())
        self.assertEqual(eof_after(p), b"")
        # Another address is not affected.
        other = open_client(self, m.port("imaps"), "127.0.0.3")
        imap_login(self, other)
        other_pop = open_client(self, m.port("pop3s"), "127.0.0.3")
        other_pop.send("CAPA\r\n")
        self.assertTrue(other_pop.line().startswith(b"+OK"), other_pop.dump())
        # The three still work.
        _, tagged = three[0].cmd("n", "NOOP")
        self.assertTrue(tagged.startswith(b"n OK"), three[0].dump())
        for c3 in three[1:]:
            _, tagged = c3.cmd("n", "NOOP")
            self.assertTrue(tagged.startswith(b"n OK"), c3.dump())
        lines = refusal_lines(m.log()[start:], "max_connections_per_ip")
        self.assertTrue(lines, m.log()[start:])
        self.assertEqual(lines[0]["address"], "127.0.0.2")
        # One of the three leaves: the address may open another.
        who = three[1].local()
        _, tagged = three[1].cmd("o", "LOGOUT")
        self.assertTrue(tagged.startswith(b"o OK"), three[1].dump())
        three[1].close()
        wait_session_end(m, who, start)
        again = open_client(self, m.port("pop3s"), "127.0.0.2")
        again.send("USER demo\r\n")
        self.assertTrue(again.line().startswith(b"+OK"), again.dump())
        again.send("PASS demo\r\n")
        self.assertTrue(again.line().startswith(b"+OK"), again.dump())


# ------------------------------------------------------------------ connection_rate_per_ip

class TestConnectionRate(unittest.TestCase):
    """connection_rate_per_ip = 5/10s (and 5/2s on a second moat)."""

    moats = []

    @classmethod
    def setUpClass(cls):
        cls.moat = start_moat(cls, [harness.Listener("imaps", "imap", DOVECOT.imap_port)],
                              "moat-rate", options=dict(NO_EXEMPT,
                                                        connection_rate_per_ip="5/10s"))
        cls.short = start_moat(cls, [harness.Listener("imaps", "imap", DOVECOT.imap_port)],
                               "moat-rate-short",
                               options=dict(NO_EXEMPT, connection_rate_per_ip="5/2s"))

    @classmethod
    def tearDownClass(cls):
        stop_moats(cls)

    def burst(self, port, src, n=6, allowed=5):
        """n TCP connections at once (no TLS yet, so that they all arrive
        within a fraction of the window): n - allowed of them must be
        closed before any TLS (which ones depends on the order moat's
        workers take them in), the others then complete the handshake and
        read the greeting."""
        socks = [bind_connect(port, src) for _ in range(n)]
        for s in socks:
            self.addCleanup(s.close)
        closed = []
        deadline = time.monotonic() + harness.scaled(5)
        while len(closed) < n - allowed and time.monotonic() < deadline:
            readable, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.1)
            for s in readable:
                try:
                    data = s.recv(4096)
                except ConnectionResetError:
                    data = b""
                self.assertEqual(data, b"", "bytes before any TLS")
                closed.append(s)
        self.assertEqual(len(closed), n - allowed,
                         "%d of %d new connections closed before TLS" % (len(closed), n))
        for s in socks:
            if s in closed:
                continue
            t = harness.client_context().wrap_socket(s, server_hostname="localhost")
            self.addCleanup(t.close)
            g = harness.recv_line(t)
            self.assertTrue(g.startswith(b"* OK "), g)
            t.close()

    def test_sixth_new_connection_refused_before_tls(self):
        m = self.moat
        port = m.port("imaps")
        start = len(m.log())
        # Five new connections, each a full session (TLS, greeting, login).
        for _ in range(5):
            c = open_client(self, port, "127.0.0.4")
            imap_login(self, c)
            c.close()
        self.assertIn(closed_before_tls(port, "127.0.0.4"), ("eof", "reset"))
        self.assertNotEqual(tls_attempt(port, "127.0.0.4"), "ok")
        # Another address is not affected.
        c = open_client(self, port, "127.0.0.7")
        imap_login(self, c)
        lines = refusal_lines(m.log()[start:], "connection_rate_per_ip")
        self.assertTrue(lines, m.log()[start:])
        self.assertEqual(lines[0]["address"], "127.0.0.4")
        self.assertTrue(all(l["address"] == "127.0.0.4" for l in lines), lines)

    def test_rate_recovers(self):
        port = self.short.port("imaps")
        t_first = time.monotonic()
        self.burst(port, "127.0.0.4")
        # Then one every 400 ms: half a second after the burst began, one
        # more (as long as the burst took less than that).
        if time.monotonic() - t_first < 0.45:
            time.sleep(t_first + 0.5 - time.monotonic())
            self.burst(port, "127.0.0.4", n=2, allowed=1)
        t0 = time.monotonic()
        # 5/2s: one connection's share is 400 ms; after 2 s the full burst
        # is back.
        time.sleep(2.2)
        self.burst(port, "127.0.0.4")
        self.assertGreater(time.monotonic() - t0, 2.0)
        c = open_client(self, port, "127.0.0.7")
        imap_login(self, c)


# ------------------------------------------------------------------ refusal log

class TestRefusalLog(unittest.TestCase):
    """event=limit_refused: at most one line a second per limit and
    worker, the next one saying how many were not logged."""

    WORKERS = 2
    moats = []

    @classmethod
    def setUpClass(cls):
        cls.moat = start_moat(cls, [harness.Listener("imaps", "imap", DOVECOT.imap_port)],
                              "moat-refusal-log", workers=cls.WORKERS,
                              options=dict(NO_EXEMPT, connection_rate_per_ip="1/1m"))

    @classmethod
    def tearDownClass(cls):
        stop_moats(cls)

    def test_refusal_lines_rate_limited(self):
        m = self.moat
        port = m.port("imaps")
        src = "127.0.0.9"
        start = len(m.log())
        c = open_client(self, port, src)      # the one connection allowed
        c.close()
        t0 = time.monotonic()
        outcomes = [closed_before_tls(port, src) for _ in range(30)]
        burst_time = time.monotonic() - t0
        self.assertTrue(all(o in ("eof", "reset") for o in outcomes), outcomes)
        time.sleep(0.3)                       # lets moat's log catch up
        burst = refusal_lines(m.log()[start:], "connection_rate_per_ip")
        # In under a second: one window per worker, two if it straddles a
        # window's end.
        windows = 2 if burst_time < 1 else int(burst_time) + 2
        self.assertGreaterEqual(len(burst), 1, m.log()[start:])
        self.assertLessEqual(len(burst), windows * self.WORKERS,
                             "%d lines for 30 refusals in %.2fs:\n%s"
                             % (len(burst), burst_time, m.log()[start:]))
        self.assertEqual(burst[0]["suppressed"], "0", burst)
        # A second later, refusals are logged again, with the count of
        # those left out (each worker logs its first one).
        time.sleep(1.1)
        mark = len(m.log())
        later = []
        refused = 30
        deadline = time.monotonic() + harness.scaled(10)
        while not any(int(l["suppressed"]) > 0 for l in later):
            self.assertLess(time.monotonic(), deadline, m.log()[start:])
            self.assertIn(closed_before_tls(port, src), ("eof", "reset"))
            refused += 1
            time.sleep(0.05)
            later = refusal_lines(m.log()[mark:], "connection_rate_per_ip")
        allines = refusal_lines(m.log()[start:], "connection_rate_per_ip")
        # Each refusal is either a line or counted once in a suppressed=.
        self.assertLessEqual(sum(int(l["suppressed"]) for l in allines) + len(allines),
                             refused, allines)
        self.assertLessEqual(sum(int(l["suppressed"]) for l in later), 30, later)
        self.assertTrue(all(l["address"] == src for l in allines), allines)


# ------------------------------------------------------------------ timeouts

class TestTimeouts(unittest.TestCase):
    """handshake_timeout and preauth_timeout 2s ("short"), idle_timeout
    3s after login ("idle")."""

    moats = []

    @classmethod
    def setUpClass(cls):
        port = DOVECOT.imap_port
        cls.moat = start_moat(cls, [
            harness.Listener("short", "imap", port,
                             options={"preauth_timeout": "2s", "handshake_timeout": "2s"}),
            harness.Listener("idle", "imap", port, options={"idle_timeout": "3s"}),
            # nothing listens on the backend: every login is "unavailable"
            harness.Listener("down", "imap", harness.free_port(),
                             options={"preauth_timeout": "2s"}),
        ], "moat-timeouts")

    @classmethod
    def tearDownClass(cls):
        stop_moats(cls)

    def test_slowloris_cut_at_preauth_timeout(self):
        m = self.moat
        port = m.port("short")
        other = open_client(self, port)
        imap_login(self, other)
        _, tagged = other.cmd("s", "EXAMINE INBOX")
        self.assertTrue(tagged.startswith(b"s OK"), other.dump())
        slow = open_client(self, port)
        t0 = time.monotonic()
        slow.sock.settimeout(0.7)
        got = b""
        how = None
        fresh = None
        for i in range(int(harness.scaled(10) / 0.7) + 1):
            try:
                slow.sock.sendall(b"a")
            except (OSError, ssl.SSLError):
                pass                    # already closed: read what came
            _, tagged = other.cmd("n%d" % i, "NOOP")
            self.assertTrue(tagged.startswith(b"n%d OK" % i), other.dump())
            if i == 2:
                fresh = open_client(self, port)
            try:
                chunk = slow.sock.recv(4096)
            except socket.timeout:
                continue
            except (ssl.SSLError, ConnectionError) as e:
                how = type(e).__name__
                break
            if not chunk:
                how = "eof"
                break
            got += chunk
        elapsed = time.monotonic() - t0
        if how is None:
            # the BYE came first: the close follows
            data, how = harness.recv_until_eof(slow.sock, harness.scaled(5))
            got += data
            elapsed = time.monotonic() - t0
        self.assertIn(how, harness.CLOSED, (how, got))
        self.assertTrue(got.startswith(b"* BYE Autologout"), got)
        self.assertGreater(elapsed, 1.5, got)
        self.assertLess(elapsed, harness.scaled(4), got)
        # The others were not touched: the logged-in one, and one that
        # connected a second later and still has its own time left.
        self.assertIsNotNone(fresh)
        _, tagged = fresh.cmd("x", "NOOP")
        self.assertTrue(tagged.startswith(b"x OK"), fresh.dump())
        _, tagged = other.cmd("y", "FETCH 1 (BODY.PEEK[])")
        self.assertTrue(tagged.startswith(b"y OK"), other.dump())
        m.wait_log(r"event=session_end [^\n]*client=%s [^\n]*reason=\"?pre-auth timeout"
                   % re.escape(slow.local()))

    def test_preauth_timeout_is_a_deadline(self):
        # etc/moat.ini: preauth_timeout is a deadline from the greeting,
        # "whatever it sends meanwhile": a client sending a NOOP every
        # 0.6 s is still cut about 2 s after the greeting.
        c = open_client(self, self.moat.port("short"))
        t0 = time.monotonic()
        answered = 0
        for i in range(8):
            try:
                _, tagged = c.cmd("n%d" % i, "NOOP")
            except (EOFError, ssl.SSLError, ConnectionError):
                break
            if not tagged.startswith(b"n%d OK" % i):
                break
            answered += 1
            time.sleep(0.6)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(answered, 2, c.dump())
        self.assertLess(answered, 8, c.dump())
        self.assertIn("* BYE Autologout", c.dump())
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, harness.scaled(4))

    def test_preauth_deadline_holds_across_login_answers(self):
        # Logins that fail for a reason that is not the client's (the
        # backend is down) do not count against max_auth_failures; each
        # answer must not restart the deadline either.
        c = open_client(self, self.moat.port("down"))
        t0 = time.monotonic()
        answered = 0
        for i in range(16):
            try:
                _, tagged = c.cmd("l%d" % i, login_cmd("demo"))
            except (EOFError, ssl.SSLError, ConnectionError):
                break
            if not tagged.startswith(b"l%d NO [UNAVAILABLE]" % i):
                break
            answered += 1
            time.sleep(0.5)
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(answered, 1, c.dump())
        self.assertLess(answered, 16, c.dump())
        self.assertIn("* BYE Autologout", c.dump())
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, harness.scaled(6))

    def handshake_stall(self, first_bytes):
        m = self.moat
        s = socket.create_connection((LOOPBACK, m.port("short")), timeout=harness.scaled(10))
        self.addCleanup(s.close)
        who = "%s:%d" % s.getsockname()[:2]
        if first_bytes:
            s.sendall(first_bytes)
        t0 = time.monotonic()
        data, how = harness.recv_until_eof(s, harness.scaled(10))
        elapsed = time.monotonic() - t0
        self.assertIn(how, harness.CLOSED, (how, data))
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, harness.scaled(4))
        m.wait_log(r"event=session_end [^\n]*client=%s [^\n]*reason=\"?handshake timeout"
                   % re.escape(who))

    def test_handshake_stall_silent(self):
        self.handshake_stall(b"")

    def test_handshake_stall_partial_client_hello(self):
        hello = client_hello()
        self.assertGreater(len(hello), 100)
        self.handshake_stall(hello[:len(hello) // 2])

    def test_idle_outlives_preauth_timeout(self):
        port = self.moat.port("short")
        c = open_client(self, port)
        imap_login(self, c, "idler")
        untagged, tagged = c.cmd("s", "SELECT INBOX")
        self.assertTrue(tagged.startswith(b"s OK"), c.dump())
        self.assertIn(b"* 1 EXISTS\r\n", untagged)
        t0 = time.monotonic()
        c.send("i IDLE\r\n")
        self.assertTrue(c.line().startswith(b"+ "), c.dump())
        time.sleep(3)
        DOVECOT.deliver("idler", "1000000002.M2P1.idler",
                        harness.make_message(2, "idler second", [b"Delivered during IDLE."]))
        c.settimeout(10)
        seen = []
        while b"* 2 EXISTS\r\n" not in seen:
            seen.append(c.line())
        self.assertFalse([l for l in seen if l.startswith(b"* BYE")], c.dump())
        left = 6 - (time.monotonic() - t0)
        if left > 0:
            time.sleep(left)
        c.send("DONE\r\n")
        _, tagged = c.until("i")
        self.assertTrue(tagged.startswith(b"i OK"), c.dump())
        self.assertGreaterEqual(time.monotonic() - t0, 6)
        untagged, tagged = c.cmd("f", "FETCH 2 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertTrue(tagged.startswith(b"f OK"), c.dump())
        self.assertIn(b"idler second", b"".join(untagged))

    def test_idle_timeout_after_login(self):
        m = self.moat
        c = open_client(self, m.port("idle"))
        imap_login(self, c)
        who = c.local()
        t0 = time.monotonic()
        data = eof_after(c, timeout=10)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 2.5, data)
        self.assertLess(elapsed, harness.scaled(5), data)
        m.wait_log(r"event=session_end [^\n]*client=%s [^\n]*reason=\"?idle timeout"
                   % re.escape(who))

    def test_activity_keeps_session(self):
        c = open_client(self, self.moat.port("idle"))
        imap_login(self, c)
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < 5:
            _, tagged = c.cmd("n%d" % i, "NOOP")
            self.assertTrue(tagged.startswith(b"n%d OK" % i), c.dump())
            i += 1
            time.sleep(1)


# ------------------------------------------------------------------ failed logins

class TestFailedLogins(unittest.TestCase):
    """auth_fail_limit: the default 20/10m on one moat, 3/1m with
    auth_block_time = 3s on another."""

    moats = []

    @classmethod
    def setUpClass(cls):
        cls.moat = start_moat(cls, [
            harness.Listener("imaps", "imap", DOVECOT.imap_port, options=FAST_FAIL),
            harness.Listener("pop3s", "pop3", DOVECOT.pop3_port, options=FAST_FAIL),
        ], "moat-brute", options=NO_EXEMPT)
        cls.short = start_moat(cls, [
            harness.Listener("imaps", "imap", DOVECOT.imap_port, options=FAST_FAIL),
        ], "moat-brute-short", options=dict(NO_EXEMPT, auth_fail_limit="3/1m",
                                            auth_block_time="3s"))

    @classmethod
    def tearDownClass(cls):
        stop_moats(cls)

    def dovecot_mismatches(self, user, expect, timeout=10):
        """Dovecot's "Password mismatch" lines for user once there are
        `expect` (or the timeout passed), and a moment longer."""
        def lines():
            return [l for l in DOVECOT.user_log_lines(user) if "mismatch" in l]
        deadline = time.monotonic() + harness.scaled(timeout)
        while len(lines()) < expect and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        return lines()

    def imap_guess(self, port, src, user, n, password=WRONG):
        """n LOGINs from src, reconnecting when moat hangs up after
        max_auth_failures (3) answers that count: failed or refused
        alike; the tagged answers."""
        answers = []
        tag = 0
        while len(answers) < n:
            c = open_client(self, port, src)
            failures = 0
            while len(answers) < n and failures < 3:
                tag += 1
                _, tagged = c.cmd("g%d" % tag, login_cmd(user, password))
                answers.append(tagged[len("g%d " % tag):])
                self.assertTrue(tagged.startswith(b"g%d NO " % tag), c.dump())
                failures += 1
            if failures == 3:
                self.assertIn(b"* BYE", eof_after(c))
            c.close()
        return answers

    def pop3_guess(self, port, src, user, n):
        answers = []
        while len(answers) < n:
            c = open_client(self, port, src)
            failures = 0
            while len(answers) < n and failures < 3:
                c.send("USER %s\r\n" % user)
                self.assertTrue(c.line().startswith(b"+OK"), c.dump())
                c.send("PASS %s\r\n" % WRONG)
                r = c.line()
                answers.append(r)
                self.assertTrue(r.startswith(b"-ERR "), c.dump())
                failures += 1
            if failures == 3:
                eof_after(c)
            c.close()
        return answers

    def assert_refused_logged(self, ev, failed, refused):
        """The login lines: `failed` failures, then the refusals, whose
        lines are rate-limited (TestRefusedLogins counts them), so at
        least one and at most `refused`, each with suppressed=N."""
        results = [e["result"] for e in ev]
        self.assertEqual(results[:failed], ["failed"] * failed, ev)
        rest = results[failed:]
        self.assertTrue(rest and set(rest) == {"refused"}, ev)
        self.assertLessEqual(len(rest), refused, ev)
        self.assertTrue(all("suppressed" in e for e in ev[failed:]), ev)

    def test_imap_block(self):
        m = self.moat
        port = m.port("imaps")
        start = len(m.log())
        answers = self.imap_guess(port, "127.0.0.5", "brute", 30)
        for i, a in enumerate(answers[:20]):
            self.assertTrue(a.startswith(b"NO [AUTHENTICATIONFAILED]"), (i + 1, a))
        for i, a in enumerate(answers[20:]):
            self.assertEqual(a, IMAP_BLOCKED, (i + 21, answers))
        # Only the first 20 reached Dovecot.
        self.assertEqual(len(self.dovecot_mismatches("brute", 20)), 20,
                         DOVECOT.user_log_lines("brute"))
        log = m.log()[start:]
        blocks = [l for l in log.splitlines() if "event=auth_block" in l]
        self.assertEqual(len(blocks), 1, log)
        self.assertIn("address=127.0.0.5 ", blocks[0])
        self.assertIn("failures=20 ", blocks[0])
        ev = harness.login_events(log, "brute")
        self.assert_refused_logged(ev, 20, 10)
        # Even the right password is refused from that address now, and
        # never reaches Dovecot.
        c = open_client(self, port, "127.0.0.5")
        _, tagged = c.cmd("r", login_cmd("brute"))
        self.assertEqual(tagged, b"r " + IMAP_BLOCKED, c.dump())
        # Still usable for other commands, and on POP3 too (the block is
        # the address's).
        _, tagged = c.cmd("n", "NOOP")
        self.assertTrue(tagged.startswith(b"n OK"), c.dump())
        p = open_client(self, m.port("pop3s"), "127.0.0.5")
        p.send("USER brute\r\n")
        self.assertTrue(p.line().startswith(b"+OK"), p.dump())
        p.send("PASS %s\r\n" % PASSWORDS["brute"])
        self.assertEqual(p.line(), POP3_BLOCKED, p.dump())
        # Another address logs in.
        o = open_client(self, port, "127.0.0.6")
        imap_login(self, o, "brute")
        self.assertEqual(len(self.dovecot_mismatches("brute", 20, timeout=0)), 20)
        self.assertEqual(len([l for l in DOVECOT.user_log_lines("brute")
                              if "Login: user=<brute>" in l]), 1,
                         DOVECOT.user_log_lines("brute"))

    def test_pop3_block(self):
        m = self.moat
        port = m.port("pop3s")
        start = len(m.log())
        answers = self.pop3_guess(port, "127.0.0.7", "brutepop", 30)
        for i, a in enumerate(answers[:20]):
            self.assertTrue(a.startswith(b"-ERR [AUTH]"), (i + 1, a))
        for i, a in enumerate(answers[20:]):
            self.assertEqual(a, POP3_BLOCKED, (i + 21, answers))
        self.assertEqual(len(self.dovecot_mismatches("brutepop", 20)), 20,
                         DOVECOT.user_log_lines("brutepop"))
        log = m.log()[start:]
        blocks = [l for l in log.splitlines() if "event=auth_block" in l]
        self.assertEqual(len(blocks), 1, log)
        self.assertIn("address=127.0.0.7 ", blocks[0])
        ev = harness.login_events(log, "brutepop")
        self.assert_refused_logged(ev, 20, 10)
        c = open_client(self, port, "127.0.0.7")
        c.send("USER brutepop\r\nPASS %s\r\n" % PASSWORDS["brutepop"])
        self.assertTrue(c.line().startswith(b"+OK"), c.dump())
        self.assertEqual(c.line(), POP3_BLOCKED, c.dump())
        o = open_client(self, port, "127.0.0.8")
        o.send("USER brutepop\r\nPASS %s\r\n" % PASSWORDS["brutepop"])
        self.assertTrue(o.line().startswith(b"+OK"), o.dump())
        self.assertTrue(o.line().startswith(b"+OK"), o.dump())
        o.send("STAT\r\n")
        self.assertTrue(o.line().startswith(b"+OK 0 "), o.dump())
        self.assertEqual(len(self.dovecot_mismatches("brutepop", 20, timeout=0)), 20)

    def test_block_ends(self):
        m = self.short
        port = m.port("imaps")
        start = len(m.log())
        answers = self.imap_guess(port, "127.0.0.10", "shortblk", 3)
        t_block = time.monotonic()
        self.assertTrue(all(a.startswith(b"NO [AUTHENTICATIONFAILED]") for a in answers),
                        answers)
        m.wait_log(r"event=auth_block [^\n]*address=127\.0\.0\.10 [^\n]*block_ms=3000", 5,
                   start)
        c = open_client(self, port, "127.0.0.10")
        tag = refused = 0
        while True:
            tag += 1
            _, tagged = c.cmd("r%d" % tag, login_cmd("shortblk"))
            if tagged.startswith(b"r%d OK" % tag):
                break
            self.assertEqual(tagged, b"r%d " % tag + IMAP_BLOCKED, c.dump())
            self.assertLess(time.monotonic() - t_block, harness.scaled(6), c.dump())
            refused += 1
            if refused % 3 == 0:
                # refusals count against max_auth_failures like failures
                self.assertIn(b"* BYE Too many authentication failures", eof_after(c))
                c = open_client(self, port, "127.0.0.10")
            time.sleep(0.25)
        elapsed = time.monotonic() - t_block
        self.assertGreater(tag, 1)
        self.assertGreater(elapsed, 2.5)
        _, tagged = c.cmd("n", "NOOP")
        self.assertTrue(tagged.startswith(b"n OK"), c.dump())
        self.assertEqual(len(self.dovecot_mismatches("shortblk", 3, timeout=0)), 3)


class TestRefusedLogins(unittest.TestCase):
    """A login moat refuses itself (a blocked address) is answered like a
    failed one: after auth_failure_delay (300 ms here, growing), counted
    against max_auth_failures (3), its log line rate-limited; and the
    answer never costs the client what it pipelined behind the command.
    auth_fail_limit 1/1m: one failure blocks the address."""

    moats = []

    @classmethod
    def setUpClass(cls):
        cls.moat = start_moat(cls, [
            harness.Listener("slow", "imap", DOVECOT.imap_port,
                             options={"auth_failure_delay": "300ms"}),
            harness.Listener("fast", "imap", DOVECOT.imap_port, options=FAST_FAIL),
        ], "moat-refused", options=dict(NO_EXEMPT, auth_fail_limit="1/1m"))

    @classmethod
    def tearDownClass(cls):
        stop_moats(cls)

    def block(self, src):
        m = self.moat
        start = len(m.log())
        c = open_client(self, m.port("fast"), src)
        _, tagged = c.cmd("w", login_cmd("brute", WRONG))
        self.assertTrue(tagged.startswith(b"w NO [AUTHENTICATIONFAILED]"), c.dump())
        c.close()
        m.wait_log(r"event=auth_block [^\n]*address=%s " % re.escape(src), 10, start)
        # a refused login's line may wait a second after another test's
        time.sleep(1.1)

    def test_pipelined_refusals_delayed_counted_closed(self):
        m = self.moat
        self.block("127.0.0.31")
        start = len(m.log())
        c = open_client(self, m.port("slow"), "127.0.0.31")
        who = c.local()
        t0 = time.monotonic()
        c.sock.sendall(b"".join(b"a%d LOGIN x y\r\n" % i for i in range(2000)))
        data = eof_after(c, timeout=30)
        elapsed = time.monotonic() - t0
        lines = data.split(b"\r\n")
        self.assertEqual(lines[:4], [b"a0 " + IMAP_BLOCKED[:-2], b"a1 " + IMAP_BLOCKED[:-2],
                                     b"a2 " + IMAP_BLOCKED[:-2],
                                     b"* BYE Too many authentication failures"], data[:500])
        self.assertEqual(lines[4:], [b""], data[:500])
        # 300 ms, then 600, then 900 before the answers
        self.assertGreater(elapsed, 1.7, data[:500])
        wait_session_end(m, who, start)
        refused = [e for e in harness.login_events(m.log()[start:])
                   if e["client"] == who]
        self.assertTrue(1 <= len(refused) <= 3, refused)
        self.assertEqual({e["result"] for e in refused}, {"refused"}, refused)

    def test_refused_login_lines_rate_limited(self):
        m = self.moat
        self.block("127.0.0.32")
        start = len(m.log())
        t0 = time.monotonic()
        for _ in range(8):
            c = open_client(self, m.port("fast"), "127.0.0.32")
            for i in range(3):
                _, tagged = c.cmd("r%d" % i, login_cmd("brute"))
                self.assertEqual(tagged, b"r%d " % i + IMAP_BLOCKED, c.dump())
            self.assertIn(b"* BYE", eof_after(c))
            c.close()
        elapsed = time.monotonic() - t0
        ev = [e for e in harness.login_events(m.log()[start:])
              if e["client"].startswith("127.0.0.32:")]
        # 24 refusals: at most a line a second on each of the 2 workers
        self.assertGreaterEqual(len(ev), 1)
        self.assertLessEqual(len(ev), 2 * (int(elapsed) + 2), (elapsed, ev))
        self.assertLess(len(ev), 24, ev)
        self.assertEqual({e["result"] for e in ev}, {"refused"}, ev)
        self.assertTrue(all(e["suppressed"].isdigit() for e in ev), ev)

    def test_records_pipelined_behind_a_refusal_survive(self):
        # Two TLS records in one TCP segment: the refusal is answered at
        # once (no delay here), and the second record is not lost.
        m = self.moat
        self.block("127.0.0.33")
        for protocol_round in range(3):
            c = open_client(self, m.port("fast"), "127.0.0.33")
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            c.sock.sendall(("a %s\r\n" % login_cmd("brute")).encode())
            c.sock.sendall(b"b NOOP\r\n")
            c.sock.sendall(b"c CAPABILITY\r\n")
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            self.assertEqual(c.line(), b"a " + IMAP_BLOCKED, c.dump())
            _, tagged = c.until("b")
            self.assertTrue(tagged.startswith(b"b OK"), c.dump())
            untagged, tagged = c.until("c")
            self.assertTrue(tagged.startswith(b"c OK"), c.dump())
            self.assertTrue(any(u.startswith(b"* CAPABILITY") for u in untagged), c.dump())
            c.close()


class ProxiedClient(Client):
    """A Client that sends a PROXY header (preamble) before TLS."""

    def __init__(self, port, preamble, timeout=30):
        self.ctx = harness.client_context()
        self.buf = b""
        self.transcript = [b"C: " + preamble]
        self.sock = bind_connect(port, LOOPBACK, timeout)
        try:
            self.sock.sendall(preamble)
            self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost")
        except BaseException:
            self.sock.close()
            raise


def fnv_bucket(net64, nbuckets):
    """The bucket moat's unkeyed FNV-1a hash put a /64 in (IPv6 key
    masked to 64 bits, folded, masked to the table)."""
    key = socket.inet_pton(socket.AF_INET6, net64)[:8] + bytes(8)
    h = 1469598103934665603
    for b in key:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return (h ^ (h >> 32)) & (nbuckets - 1)


class TestProxyHeaderLimits(unittest.TestCase):
    """A listener behind a load balancer (proxy_protocol = yes, from
    127.0.0.1, which limits_exempt covers by default), with
    max_connections = 100 (a limit table of 1024 buckets of 8) and
    max_connections_per_ip = 1."""

    moats = []

    @classmethod
    def setUpClass(cls):
        cls.moat = start_moat(cls, [
            harness.Listener("pp", "imap", DOVECOT.imap_port,
                             options={"proxy_protocol": "yes"}),
        ], "moat-pp-limits", options={"max_connections": "100",
                                      "max_connections_per_ip": "1"})

    @classmethod
    def tearDownClass(cls):
        stop_moats(cls)

    def proxied(self, preamble):
        c = ProxiedClient(self.moat.port("pp"), preamble)
        self.addCleanup(c.close)
        return c

    def test_addresses_sharing_an_unkeyed_bucket_are_still_limited(self):
        # Nine /64s computed offline to share a bucket of the old unkeyed
        # hash: eight fill it, the ninth must still be limited.
        port = self.moat.port("pp")
        nets, n = [], 0
        while len(nets) < 9:
            n += 1
            net = "2001:db8:%x:%x::" % (n >> 16, n & 0xffff)
            if fnv_bucket(net, 1024) == 5:
                nets.append(net)
        for i, net in enumerate(nets[:8]):
            c = self.proxied(harness.proxy_v2(net + "1", 6000 + i, "2001:db8::1", port))
            self.assertTrue(c.greeting().startswith(b"* OK "), c.dump())
        first = self.proxied(harness.proxy_v2(nets[8] + "1", 6100, "2001:db8::1", port))
        self.assertTrue(first.greeting().startswith(b"* OK "), first.dump())
        second = self.proxied(harness.proxy_v2(nets[8] + "2", 6101, "2001:db8::1", port))
        self.assertEqual(second.line(), IMAP_PER_IP, second.dump())
        imap_login(self, first)

    def test_header_without_address_may_not_log_in_nor_skip_limits(self):
        m = self.moat
        start = len(m.log())
        for hdr in (harness.PROXY_V2_LOCAL, harness.PROXY_V1_UNKNOWN):
            with self.subTest(hdr):
                c = self.proxied(hdr)
                self.assertTrue(c.greeting().startswith(b"* OK "), c.dump())
                _, tagged = c.cmd("l", login_cmd("demo"))
                self.assertEqual(tagged, b"l NO [AUTHORIZATIONFAILED] No logins on this "
                                 b"connection\r\n", c.dump())
                _, tagged = c.cmd("n", "NOOP")
                self.assertTrue(tagged.startswith(b"n OK"), c.dump())
                # counted under the balancer's address, not exempt: a
                # second one at once is over max_connections_per_ip
                other = self.proxied(harness.PROXY_V2_LOCAL)
                self.assertEqual(other.line(), IMAP_PER_IP, other.dump())
                who = c.local()
                _, tagged = c.cmd("o", "LOGOUT")
                self.assertTrue(tagged.startswith(b"o OK"), c.dump())
                c.close()
                other.close()
                wait_session_end(m, who, start)
        ev = harness.login_events(m.log()[start:], "demo")
        self.assertTrue(ev, m.log()[start:])
        self.assertEqual({e["result"] for e in ev}, {"refused"}, ev)
        self.assertIn("no client address", ev[0]["reason"])


# ------------------------------------------------------------------ metrics

def parse_metrics(text):
    """Prometheus text -> {(name, ((label, value), ...)): float}; asserts
    every sample line parses."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if not m:
            raise AssertionError("bad metrics line: %r" % line)
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or "")))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


# OpenSSL's names of the TLS 1.2 suites a Python client may agree with
# moat on (ECDSA certificate), and IANA's, which moat's metrics use. TLS 1.3
# suites have IANA's names in both.
IANA = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
}


def metric(snap, name, **labels):
    """The sum of a metric's samples whose labels include these (0 when
    there are none)."""
    total = 0.0
    for (n, lab), v in snap.items():
        d = dict(lab)
        if n == name and all(d.get(k) == v2 for k, v2 in labels.items()):
            total += v
    return total


class TestMetrics(unittest.TestCase):
    """[metrics] on 127.0.0.1: what a known series of sessions adds to the
    counters. 127.0.0.1 is exempt from the per-address limits here; the
    max_connections_per_ip = 2 refusal comes from 127.0.0.20."""

    moats = []

    @classmethod
    def setUpClass(cls):
        cls.mport = harness.free_port()
        cls.down_port = harness.free_port()
        cls.moat = start_moat(cls, [
            harness.Listener("imaps", "imap", DOVECOT.imap_port, options=FAST_FAIL),
            harness.Listener("imaps-down", "imap", cls.down_port,
                             options={"capabilities": "IDLE"}),
        ], "moat-metrics", options={"limits_exempt": "127.0.0.1/32",
                                    "max_connections_per_ip": "2"},
            extra="[metrics]\naddress = 127.0.0.1:%d" % cls.mport)

    @classmethod
    def tearDownClass(cls):
        stop_moats(cls)

    def get(self, path):
        url = "http://127.0.0.1:%d%s" % (self.mport, path)
        with urllib.request.urlopen(url, timeout=harness.scaled(10)) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()

    def scrape(self):
        status, ctype, body = self.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        return parse_metrics(body)

    def wait_all_closed(self):
        """Waits until moat counts no open connection; the last scrape."""
        deadline = time.monotonic() + harness.scaled(10)
        while True:
            s = self.scrape()
            if (metric(s, "moat_connections_current") == 0
                    and metric(s, "moat_connections_open") == 0):
                return s
            self.assertLess(time.monotonic(), deadline, s)
            time.sleep(0.05)

    def test_counters(self):
        m = self.moat
        port = m.port("imaps")
        s0 = self.wait_all_closed()
        accepted = 0
        suites = {}                 # (version, IANA suite) -> handshakes

        def note(c):
            """Counts a client's completed handshake."""
            key = (c.sock.version(), IANA.get(c.sock.cipher()[0], c.sock.cipher()[0]))
            suites[key] = suites.get(key, 0) + 1

        fetched = 0
        logins_ok = 0
        # 3 logins over TLS 1.3, 2 over TLS 1.2, each fetching a message.
        ctx13 = harness.client_context(minimum=ssl.TLSVersion.TLSv1_3)
        ctx12 = harness.client_context(maximum=ssl.TLSVersion.TLSv1_2)
        for ctx, uid in ((ctx13, 1), (ctx13, 2), (ctx13, 3), (ctx12, 1), (ctx12, 3)):
            c = open_client(self, port, ctx=ctx)
            note(c)
            accepted += 1
            imap_login(self, c)
            _, tagged = c.cmd("s", "EXAMINE INBOX")
            self.assertTrue(tagged.startswith(b"s OK"), c.dump())
            untagged, tagged = c.cmd("f", "UID FETCH %d (BODY.PEEK[])" % uid)
            self.assertTrue(tagged.startswith(b"f OK"), c.dump())
            msg = DOVECOT.message(uid, "demo")
            self.assertIn(msg, b"".join(untagged))
            fetched += len(msg)
            logins_ok += 1
            c.cmd("o", "LOGOUT")
            c.close()
        per_version = {}
        for (version, _cipher), n in suites.items():
            per_version[version] = per_version.get(version, 0) + n
        self.assertEqual(per_version, {"TLSv1.2": 2, "TLSv1.3": 3}, suites)
        # 2 failed logins on one connection.
        c = open_client(self, port, ctx=ctx13)
        note(c)
        accepted += 1
        for t in ("w1", "w2"):
            _, tagged = c.cmd(t, login_cmd("demo", WRONG))
            self.assertTrue(tagged.startswith(t.encode() + b" NO [AUTHENTICATIONFAILED]"),
                            c.dump())
        c.cmd("o", "LOGOUT")
        c.close()
        s1 = self.wait_all_closed()
        # Two open from 127.0.0.20; a third is refused after its handshake.
        two = [open_client(self, port, "127.0.0.20", ctx=ctx13) for _ in range(2)]
        for c in two:
            note(c)
        accepted += 2
        mid = self.scrape()
        self.assertEqual(metric(mid, "moat_connections_current", listener="imaps"), 2)
        self.assertEqual(metric(mid, "moat_connections_open"), 2)
        r = Client(port, "127.0.0.20", ctx=ctx13)
        self.addCleanup(r.close)
        note(r)
        accepted += 1
        self.assertEqual(r.line(), IMAP_PER_IP, r.dump())
        eof_after(r)
        for c in two:
            c.close()
        # Resumed sessions: a TLS 1.2 session ticket, a TLS 1.3 PSK; the
        # resumed ones log in.
        for ctx in (ctx12, ctx13):
            first = open_client(self, port, ctx=ctx)
            note(first)
            sess = first.sock.session      # the ticket came with the greeting
            first.cmd("o", "LOGOUT")
            first.close()
            again = open_client(self, port, ctx=ctx, session=sess)
            note(again)
            accepted += 2
            self.assertTrue(again.sock.session_reused,
                            "%s session not resumed" % again.sock.version())
            imap_login(self, again)
            logins_ok += 1
            again.cmd("o", "LOGOUT")
            again.close()
        # A handshake failure: not TLS at all.
        s = socket.create_connection((LOOPBACK, port), timeout=harness.scaled(10))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        harness.recv_until_eof(s, harness.scaled(10))
        s.close()
        accepted += 1
        # A backend that is down.
        d = open_client(self, m.port("imaps-down"))
        _, tagged = d.cmd("l", login_cmd("demo"))
        self.assertTrue(tagged.startswith(b"l NO [UNAVAILABLE]"), d.dump())
        d.close()

        s2 = self.wait_all_closed()

        def diff(name, **labels):
            return metric(s2, name, **labels) - metric(s0, name, **labels)

        L = {"listener": "imaps"}
        self.assertEqual(diff("moat_connections_accepted_total", **L), accepted)
        self.assertEqual(diff("moat_tls_handshakes_total", **L), accepted - 1)
        self.assertEqual(sum(suites.values()), accepted - 1)
        for (version, cipher), n in suites.items():
            self.assertEqual(diff("moat_tls_sessions_total", version=version, cipher=cipher,
                                  **L), n, (version, cipher, s2))
        for version in ("TLSv1.2", "TLSv1.3"):
            self.assertEqual(diff("moat_tls_sessions_total", version=version, **L),
                             sum(n for (v, _), n in suites.items() if v == version), version)
        self.assertEqual(diff("moat_tls_resumed_total", **L), 2)
        self.assertEqual(diff("moat_logins_total", result="ok", **L), logins_ok)
        self.assertEqual(diff("moat_logins_total", result="failed", **L), 2)
        self.assertEqual(diff("moat_logins_total", result="refused", **L), 0)
        self.assertEqual(diff("moat_logins_total", result="unavailable", **L), 0)
        self.assertEqual(diff("moat_connections_refused_total",
                              limit="max_connections_per_ip", **L), 1)
        self.assertEqual(diff("moat_connections_refused_total", **L), 1)
        self.assertEqual(diff("moat_tls_handshake_failures_total", reason="protocol", **L), 1)
        self.assertEqual(diff("moat_tls_handshake_failures_total", **L), 1)
        self.assertEqual(diff("moat_backend_errors_total", **L), 0)
        self.assertGreaterEqual(diff("moat_bytes_total", direction="to_client", **L), fetched)
        self.assertGreater(diff("moat_bytes_total", direction="from_client", **L), 0)
        # The down backend.
        D = {"listener": "imaps-down"}
        self.assertEqual(diff("moat_connections_accepted_total", **D), 1)
        self.assertEqual(diff("moat_backend_errors_total", **D), 1)
        self.assertEqual(diff("moat_logins_total", result="unavailable", **D), 1)
        # Gauges after everything closed (s1 was taken between steps).
        self.assertEqual(metric(s2, "moat_connections_current", **L), 0)
        self.assertEqual(metric(s2, "moat_connections_open"), 0)
        self.assertEqual(metric(s1, "moat_connections_current", **L), 0)

    def test_certificate_expiry_days(self):
        s = self.scrape()
        days = [v for (n, lab), v in s.items() if n == "moat_certificate_expiry_days"
                and dict(lab).get("certificate") == "default"]
        self.assertEqual(len(days), 1, s)
        # scripts/certs.sh issues the server certificate for 825 days.
        self.assertGreater(days[0], 800)
        self.assertLess(days[0], 830)
        files = [dict(lab).get("file") for (n, lab) in s
                 if n == "moat_certificate_expiry_days"]
        self.assertEqual(files, [harness.certs().fullchain])

    def test_help_and_type_lines(self):
        _, _, body = self.get("/metrics")
        for name, kind in (("moat_connections_accepted_total", "counter"),
                           ("moat_connections_current", "gauge"),
                           ("moat_logins_total", "counter"),
                           ("moat_certificate_expiry_days", "gauge")):
            self.assertIn("# TYPE %s %s\n" % (name, kind), body)
            self.assertIn("# HELP %s " % name, body)

    def test_other_path_not_found(self):
        with self.assertRaises(urllib.error.HTTPError) as cm:
            self.get("/other")
        self.assertEqual(cm.exception.code, 404)

    def test_address_must_be_loopback(self):
        d = harness.new_dir("metrics-check")

        def check(address):
            path = "%s/moat-%s.ini" % (d, address.split(":")[0])
            with open(path, "w") as f:
                f.write(harness.moat_config(
                    [harness.Listener("imaps", "imap", DOVECOT.imap_port)],
                    extra="[metrics]\naddress = %s" % address))
            return harness.run_moat_cli(["-t", "-c", path])

        r = check("0.0.0.0:%d" % harness.free_port())
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("not a loopback address", r.stdout + r.stderr)
        # The same file with a loopback address passes.
        r = check("127.0.0.1:%d" % harness.free_port())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
