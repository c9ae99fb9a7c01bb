"""moat's named backends against real Dovecots: the client's address
passed on (PROXY v1/v2, IMAP ID, POP3 XCLIENT), failover and health
checks, least-conn, the per-user route map, PROXY headers from a load
balancer in front of moat, and the config checks.

Dovecot's own log is the witness for the client's address and for which
Dovecot served a login. Every Dovecot here logs its logins with the
remote and local ports (LOG_FORMAT below):

  imap-login: Info: Login: user=<demo>, method=PLAIN, rip=127.0.0.2,
      rport=40312, lip=127.0.0.1, lport=993, mpid=123, session=<...>

(pop3-login the same; a trusted client adds ", secured"). Clients play
other hosts by binding other loopback source addresses (127.0.0.2 is
loopback on Linux too); moat itself connects to Dovecot from 127.0.0.1.

What Dovecot 2.3 does, as these tests rely on it (tried by hand):

  - inet_listener { haproxy = yes } and haproxy_trusted_networks: the
    source of a PROXY v1 or v2 header becomes rip/rport, its destination
    lip/lport. Without a header Dovecot says nothing and drops the
    connection after 3 s ("haproxy: Client timed out"); after a v2 LOCAL
    header or "PROXY UNKNOWN" it greets as usual (so a health check or a
    capability probe of such a backend must send one). From outside
    haproxy_trusted_networks: "haproxy: Client not trusted", closed.
  - IMAP ID ("x-originating-ip" A "x-originating-port" P "x-connected-ip"
    B "x-connected-port" Q) before LOGIN from login_trusted_networks:
    rip=A rport=P lip=B lport=Q. From elsewhere "OK ID completed", and
    ignored.
  - POP3 XCLIENT ADDR=A PORT=P: to clients in login_trusted_networks
    pop3-login greets "+OK [XCLIENT] ..." (CAPA does not list XCLIENT)
    and answers "+OK Updated"; rip=A rport=P. To others it answers
    "+OK You are not from trusted IP - ignoring".

Classes:

  TestForwarding            forward = proxy-v2, proxy-v1, native, none
                            (IMAP and POP3), native to a Dovecot that
                            does not trust moat; probes and health checks
                            of a haproxy backend
  TestProxyProtocolListener proxy_protocol = yes: v2, v1 and IPv6 headers,
                            untrusted sources, broken headers, limits by
                            the header's address
  TestFailover              backend = a, b: a stopped under a login loop,
                            connect failures without health checks, a back
                            again; least-conn
  TestAllDown               NO [UNAVAILABLE] / -ERR [SYS/TEMP], and the
                            same sessions log in once a backend is back
  TestRouteMap              exact names, @domain, defaults, strip_domain,
                            add_domain; the map re-read on SIGHUP, a bad
                            one refused
  TestConfigCheck           moat -t: FILE:LINE for each kind of mistake;
                            the insecure warning at startup
"""

import os
import re
import socket
import ssl
import struct
import threading
import time
import unittest

import harness

LOOPBACK = harness.LOOPBACK

# Dovecot logs logins with both ports (see the module's docstring).
LOG_FORMAT = ("login_log_format_elements = user=<%u> method=%m rip=%r rport=%{rport} "
              "lip=%l lport=%{lport} mpid=%e %c session=<%{session}>\n")
BASE_CONF = LOG_FORMAT + harness.DOVECOT_NO_AUTH_DELAY
# Expects a PROXY header from moat (127.0.0.1) on both listeners.
HAPROXY_CONF = BASE_CONF + """\
haproxy_trusted_networks = 127.0.0.1/32
service imap-login {
  inet_listener imap {
    haproxy = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    haproxy = yes
  }
}
"""
# Takes IMAP ID x-originating-* and POP3 XCLIENT from moat (127.0.0.1).
TRUSTED_CONF = BASE_CONF + "login_trusted_networks = 127.0.0.1/32\n"

PASSWORDS = {"demo": "demo"}

# What moat answers a login when no backend can be reached
# (protocols/imap.c, protocols/pop3.c).
IMAP_UNAVAILABLE = b"NO [UNAVAILABLE] Mail server unavailable, try again later\r\n"
POP3_UNAVAILABLE = b"-ERR [SYS/TEMP] Mail server unavailable, try again later\r\n"
IMAP_PER_IP = b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"

# The Dovecots every class may use: one expecting PROXY headers, one
# trusting moat's ID/XCLIENT, one trusting nobody.
DC_HAPROXY = None
DC_TRUSTED = None
DC_PLAIN = None


def setUpModule():
    global DC_HAPROXY, DC_TRUSTED, DC_PLAIN
    harness.certs()
    DC_HAPROXY = harness.Dovecot(users=dict(PASSWORDS), extra_conf=HAPROXY_CONF,
                                 name="dovecot-haproxy").start()
    DC_TRUSTED = harness.Dovecot(users=dict(PASSWORDS), extra_conf=TRUSTED_CONF,
                                 name="dovecot-trusted").start()
    DC_PLAIN = harness.Dovecot(users=dict(PASSWORDS), extra_conf=BASE_CONF,
                               name="dovecot-plain").start()


def tearDownModule():
    for dc in (DC_HAPROXY, DC_TRUSTED, DC_PLAIN):
        if dc is not None:
            dc.stop()


# ------------------------------------------------------------------ config

def backend(name, dc=None, imap=None, pop3=None, **keys):
    """A [backend NAME] section: dc's IMAP and POP3 ports on 127.0.0.1 (or
    the addresses given; None leaves one out), then keys in order."""
    if dc is not None:
        imap = imap or "%s:%d" % (LOOPBACK, dc.imap_port)
        pop3 = pop3 or "%s:%d" % (LOOPBACK, dc.pop3_port)
    lines = ["[backend %s]" % name]
    if imap:
        lines.append("imap = %s" % imap)
    if pop3:
        lines.append("pop3 = %s" % pop3)
    lines += ["%s = %s" % kv for kv in keys.items()]
    return "\n".join(lines) + "\n"


def listener(name, protocol, backends, **options):
    """A Listener whose backend = is the names given ("a, b")."""
    return harness.Listener(name, protocol, backends, options=options)


def new_moat(listeners, backends, name, options=None):
    """A started moat with these listeners and [backend] sections."""
    return harness.Moat(listeners, name=name, extra="\n".join(backends),
                        options=options).start()


def log_tail(moat, n=60):
    return "\n".join(moat.log().splitlines()[-n:])


def stop_checked(moat):
    """Stops a moat; it must exit 0."""
    if moat.proc is None:
        return
    rc = moat.stop(timeout=30)
    if rc != 0:
        raise AssertionError("%s exited with status %s; log tail:\n%s"
                             % (moat.dir, rc, log_tail(moat)))


def write_atomic(path, text):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def line_of(text, prefix, after=None):
    """1-based number of the first line of text starting with prefix (and
    after the first line equal to `after`, when given)."""
    started = after is None
    for i, l in enumerate(text.splitlines(), 1):
        if not started:
            started = l == after
            continue
        if l.startswith(prefix):
            return i
    raise AssertionError("no line %r (after %r) in:\n%s" % (prefix, after, text))


# ------------------------------------------------------------------ logs

def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def dlog(dc):
    return read_text(dc.log_path)


def dlen(dc):
    """Where Dovecot's log ends now (an offset for dovecot_logins())."""
    return len(dlog(dc))


DOVECOT_LOGIN_RX = re.compile(
    r"(?P<proto>imap|pop3)-login: Info: Login: user=<(?P<user>[^>]*)>, "
    r"method=(?P<method>[^,]+), rip=(?P<rip>[^,]+), rport=(?P<rport>\d+), "
    r"lip=(?P<lip>[^,]+), lport=(?P<lport>\d+),")


def dovecot_logins(dc, start=0, **match):
    """Dovecot's "Login:" lines from offset start as dicts (proto, user,
    method, rip, rport, lip, lport, line), those whose fields equal the
    keyword arguments given (values compared as strings)."""
    out = []
    for l in dlog(dc)[start:].splitlines():
        m = DOVECOT_LOGIN_RX.search(l)
        if not m:
            continue
        d = m.groupdict()
        d["line"] = l
        if all(d.get(k) == str(v) for k, v in match.items()):
            out.append(d)
    return out


def wait_dovecot_logins(dc, start, count, timeout=10, **match):
    """Waits until Dovecot's log from start has at least count matching
    Login lines (Dovecot's log process writes them a moment later);
    returns them."""
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        found = dovecot_logins(dc, start, **match)
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("expected %d Login lines %r in %s, got %d; log from there:\n%s"
                                 % (count, match, dc.log_path, len(found), dlog(dc)[start:]))
        time.sleep(0.05)


def moat_logins(moat, start=0, **match):
    """moat's event=login lines from offset start (dicts, harness.
    login_events()) whose fields equal the keyword arguments given."""
    return [e for e in harness.login_events(moat.log()[start:])
            if all(e.get(k) == str(v) for k, v in match.items())]


def wait_moat_login(moat, start, client, timeout=10):
    """moat's event=login line for the client at "ip:port" (the last one,
    once there is one)."""
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        found = moat_logins(moat, start, client=client)
        if found:
            return found[-1]
        if time.monotonic() > deadline:
            raise AssertionError("no event=login for client=%s; log tail:\n%s"
                                 % (client, log_tail(moat)))
        time.sleep(0.05)


def wait_session_end(moat, client, start=0, timeout=10):
    return moat.wait_log(r"event=session_end [^\n]*client=%s " % re.escape(client),
                         timeout, start)


def health_events(text, event, name):
    """The address= values of event=backend_down / backend_up lines for
    the backend NAME."""
    return re.findall(r"event=%s backend=%s address=(\S+)" % (event, re.escape(name)), text)


def wait_backend_down(tc, moat, name, dc, start):
    """Waits for event=backend_down for the backend NAME (one of dc's
    addresses, with a quoted reason); returns the line."""
    m = moat.wait_log(r"event=backend_down backend=%s address=127\.0\.0\.1:(%d|%d) "
                      r"reason=\"[^\"\n]+\"[^\n]*" % (re.escape(name), dc.imap_port, dc.pop3_port),
                      10, start)
    return m.group(0)


def wait_backend_up(tc, moat, name, dc, start, timeout=10):
    """Waits until every address of the backend NAME that moat reported
    down (from offset start) is reported up again: whether moat checks a
    backend as a whole or each address, it then takes logins for both
    protocols."""
    moat.wait_log(r"event=backend_up backend=%s address=127\.0\.0\.1:(%d|%d)\b"
                  % (re.escape(name), dc.imap_port, dc.pop3_port), timeout, start)
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        text = moat.log()[start:]
        down = set(health_events(text, "backend_down", name))
        up = set(health_events(text, "backend_up", name))
        if down <= up:
            return
        if time.monotonic() > deadline:
            tc.fail("backend %s: down %s, up again only %s; log tail:\n%s"
                    % (name, sorted(down), sorted(up), log_tail(moat)))
        time.sleep(0.05)


# ------------------------------------------------------------------ PROXY headers

proxy_v1, proxy_v2 = harness.proxy_v1, harness.proxy_v2


# ------------------------------------------------------------------ clients

class Client(harness.ImapClient):
    """harness.ImapClient from a chosen loopback source address, with
    `preamble` (a PROXY header) sent before the TLS handshake. Also used
    for POP3: send() and line() are all a POP3 dialogue needs."""

    def __init__(self, port, src=LOOPBACK, preamble=b"", tls=True, timeout=20):
        self.ctx = harness.client_context()
        self.buf = b""
        self.transcript = []
        self.sock = socket.create_connection((LOOPBACK, port), timeout=harness.scaled(timeout),
                                             source_address=(src, 0))
        try:
            host, self.local_port = self.sock.getsockname()[:2]
            self.local = "%s:%d" % (host, self.local_port)
            if preamble:
                self.transcript.append(b"C: " + preamble)
                self.sock.sendall(preamble)
            if tls:
                self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost")
        except BaseException:
            self.sock.close()
            raise


def open_client(tc, port, src=LOOPBACK, preamble=b""):
    """A Client with its greeting read and checked, closed at the end of
    the test."""
    c = Client(port, src, preamble)
    tc.addCleanup(c.close)
    g = c.greeting()
    tc.assertTrue(g.startswith(b"* OK ") or g.startswith(b"+OK"), c.dump())
    return c


def quote(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def imap_login(tc, c, user="demo", password=None, tag="l", ok=True):
    """LOGIN; asserts OK (or, ok=False, NO); returns the tagged line."""
    pw = PASSWORDS.get(user, "") if password is None else password
    _, tagged = c.cmd(tag, "LOGIN %s %s" % (quote(user), quote(pw)))
    want = b" OK" if ok else b" NO"
    tc.assertTrue(tagged.startswith(tag.encode() + want), c.dump())
    return tagged


def imap_logout(tc, c, tag="o"):
    untagged, tagged = c.cmd(tag, "LOGOUT")
    tc.assertTrue(tagged.startswith(tag.encode() + b" OK"), c.dump())
    tc.assertTrue(any(u.startswith(b"* BYE") for u in untagged), c.dump())


def pop3(c, text):
    """One POP3 command; its first answer line."""
    c.send(text + "\r\n")
    return c.line()


def pop3_login(tc, c, user="demo", password=None, ok=True):
    """USER and PASS; asserts +OK (or, ok=False, -ERR) for PASS; returns
    PASS's answer."""
    pw = PASSWORDS.get(user, "") if password is None else password
    tc.assertTrue(pop3(c, "USER %s" % user).startswith(b"+OK"), c.dump())
    r = pop3(c, "PASS %s" % pw)
    tc.assertTrue(r.startswith(b"+OK" if ok else b"-ERR"), c.dump())
    return r


def pop3_quit(tc, c):
    tc.assertTrue(pop3(c, "QUIT").startswith(b"+OK"), c.dump())


def imap_session(tc, port, user="demo", password=None, src=LOOPBACK, preamble=b""):
    """Connect, LOGIN, LOGOUT; returns the client's "ip:port"."""
    c = open_client(tc, port, src, preamble)
    imap_login(tc, c, user, password)
    imap_logout(tc, c)
    c.close()
    return c.local


def pop3_session(tc, port, user="demo", password=None, src=LOOPBACK, preamble=b""):
    """Connect, USER/PASS, STAT, QUIT; returns the client's "ip:port"."""
    c = open_client(tc, port, src, preamble)
    pop3_login(tc, c, user, password)
    tc.assertTrue(pop3(c, "STAT").startswith(b"+OK"), c.dump())
    pop3_quit(tc, c)
    c.close()
    return c.local


def closed_without_answer(sock, timeout=5):
    """How a raw connection ends that moat should close: "eof", "reset",
    "open" (nothing within the timeout) or "data ..."."""
    sock.settimeout(harness.scaled(timeout))
    try:
        data = sock.recv(4096)
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "open"
    return "eof" if not data else "data %r" % data


# ------------------------------------------------------------------ forwarding

class TestForwarding(unittest.TestCase):
    """forward = proxy-v2 / proxy-v1 to the haproxy Dovecot, native and
    none to the trusting one, native to the untrusting one. Clients come
    from 127.0.0.2; moat reaches Dovecot from 127.0.0.1."""

    SRC = "127.0.0.2"

    @classmethod
    def setUpClass(cls):
        chk = {"check_interval": "1s", "check_timeout": "2s"}
        backends = [
            backend("hp2", DC_HAPROXY, forward="proxy-v2", **chk),
            backend("hp1", DC_HAPROXY, forward="proxy-v1", **chk),
            backend("native", DC_TRUSTED, forward="native"),
            backend("none", DC_TRUSTED, forward="none"),
            backend("native-u", DC_PLAIN, forward="native"),
        ]
        ls = []
        for be in ("hp2", "hp1", "native", "none", "native-u"):
            ls.append(listener("imaps-" + be, "imap", be))
            ls.append(listener("pop3s-" + be, "pop3", be))
        cls.moat = new_moat(ls, backends, "moat-forward")
        cls.started, cls.d0 = time.monotonic(), dlen(DC_HAPROXY)

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.moat)

    def session(self, protocol, be):
        """A session from SRC through listener PROTOs-BE, which moat logs
        as that client's, served by BE; returns (the client's port, the
        listener's port)."""
        m = self.moat
        start = len(m.log())
        port = m.port("%ss-%s" % (protocol, be))
        run = imap_session if protocol == "imap" else pop3_session
        local = run(self, port, src=self.SRC)
        ev = wait_moat_login(m, start, local)
        self.assertEqual(ev["result"], "ok", ev["_line"])
        self.assertEqual(ev["backend"], be, ev["_line"])
        return int(local.rsplit(":", 1)[1]), port

    def check_forwarded(self, dc, protocol, be, connected=True):
        """A session through the listener for backend BE: Dovecot's Login
        line has the client's address and port; with connected, also
        moat's listening address as the local one."""
        d0 = dlen(dc)
        cport, lport = self.session(protocol, be)
        found = wait_dovecot_logins(dc, d0, 1, proto=protocol, user="demo")
        self.assertEqual(len(found), 1, dlog(dc)[d0:])
        got = found[0]
        self.assertEqual((got["rip"], got["rport"]), (self.SRC, str(cport)), got["line"])
        if connected:
            self.assertEqual((got["lip"], got["lport"]), (LOOPBACK, str(lport)), got["line"])

    def check_not_forwarded(self, dc, protocol, be):
        """A session through the listener for backend BE: Dovecot sees
        moat (127.0.0.1), nothing of the client."""
        d0 = dlen(dc)
        cport, _ = self.session(protocol, be)
        found = wait_dovecot_logins(dc, d0, 1, proto=protocol, user="demo")
        self.assertEqual(len(found), 1, dlog(dc)[d0:])
        got = found[0]
        self.assertEqual(got["rip"], LOOPBACK, got["line"])
        self.assertNotEqual(got["rport"], str(cport), got["line"])
        self.assertNotIn("rip=%s" % self.SRC, dlog(dc)[d0:])

    def test_proxy_v2(self):
        for protocol in ("imap", "pop3"):
            with self.subTest(protocol):
                self.check_forwarded(DC_HAPROXY, protocol, "hp2")

    def test_proxy_v1(self):
        for protocol in ("imap", "pop3"):
            with self.subTest(protocol):
                self.check_forwarded(DC_HAPROXY, protocol, "hp1")

    def test_native(self):
        # IMAP ID carries x-connected-ip/-port too; POP3 XCLIENT only the
        # client's address and port.
        with self.subTest("imap"):
            self.check_forwarded(DC_TRUSTED, "imap", "native")
        with self.subTest("pop3"):
            self.check_forwarded(DC_TRUSTED, "pop3", "native", connected=False)

    def test_none_is_the_control(self):
        # The same Dovecot that honours ID/XCLIENT from moat: forward =
        # none sends neither.
        for protocol in ("imap", "pop3"):
            with self.subTest(protocol):
                self.check_not_forwarded(DC_TRUSTED, protocol, "none")

    def test_native_to_an_untrusting_backend(self):
        # Dovecot ignores ID's x-originating-* and answers XCLIENT with
        # "+OK ... ignoring" for clients it does not trust: the logins
        # work all the same, and Dovecot sees moat.
        for protocol in ("imap", "pop3"):
            with self.subTest(protocol):
                self.check_not_forwarded(DC_PLAIN, protocol, "native-u")

    def test_probe_sends_a_header(self):
        # Dovecot's haproxy listener greets only after a header: moat's
        # capability probe at startup must send one, or it gets no
        # greeting (probe_failed, nothing passed through).
        log = self.moat.log()
        self.assertNotRegex(log, r"event=probe_failed listener=(imaps|pop3s)-hp")
        for be in ("hp2", "hp1"):
            self.assertRegex(log, r'event=capabilities listener=imaps-%s passthrough="[^"\n]*IDLE'
                             % be)
            self.assertRegex(log, r'event=capabilities listener=pop3s-%s passthrough="[^"\n]*TOP'
                             % be)

    def test_health_checks_send_a_header(self):
        # The same for the health checks: without a header, each would
        # wait check_timeout = 2s for a greeting and mark hp1/hp2 down.
        left = self.started + harness.scaled(4) - time.monotonic()
        if left > 0:
            time.sleep(left)
        self.assertNotIn("event=backend_down", self.moat.log())
        # The checks did run: each is a connection Dovecot greeted and saw
        # closed without a login (two backends, every second, for 4s).
        checks = re.findall(r"-login: Info: Disconnected: [^\n]*rip=127\.0\.0\.1,",
                            dlog(DC_HAPROXY)[self.d0:])
        self.assertGreaterEqual(len(checks), 4, dlog(DC_HAPROXY)[self.d0:])


# ------------------------------------------------------------------ proxy_protocol listeners

class TestProxyProtocolListener(unittest.TestCase):
    """Listeners with proxy_protocol = yes (a load balancer in front of
    moat), their backend forwarding with proxy-v2 (IMAP) and proxy-v1
    (POP3) to the haproxy Dovecot, so the header's client reaches it.
    pp-strict trusts only 10.0.0.0/8, so no loopback source."""

    @classmethod
    def setUpClass(cls):
        backends = [backend("hp2", DC_HAPROXY, forward="proxy-v2"),
                    backend("hp1", DC_HAPROXY, forward="proxy-v1")]
        ls = [listener("pp-imaps", "imap", "hp2", proxy_protocol="yes"),
              listener("pp-pop3s", "pop3", "hp1", proxy_protocol="yes"),
              listener("pp-strict", "imap", "hp2", proxy_protocol="yes",
                       proxy_trusted="10.0.0.0/8")]
        cls.moat = new_moat(ls, backends, "moat-pp")

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.moat)

    def through_header(self, name, header, claimed, protocol):
        """A session on listener NAME sending header first: moat's login
        and session_end lines show the claimed client ("ip:port"); returns
        (Dovecot's Login line, moat's login line)."""
        m = self.moat
        start, d0 = len(m.log()), dlen(DC_HAPROXY)
        run = imap_session if protocol == "imap" else pop3_session
        local = run(self, m.port(name), preamble=header)
        ev = wait_moat_login(m, start, claimed)
        self.assertEqual(ev["result"], "ok", ev["_line"])
        wait_session_end(m, claimed, start)
        self.assertNotIn("client=%s " % local, m.log()[start:])
        found = wait_dovecot_logins(DC_HAPROXY, d0, 1, proto=protocol, user="demo")
        self.assertEqual(len(found), 1, dlog(DC_HAPROXY)[d0:])
        return found[0], ev

    def test_v2_header(self):
        port = self.moat.port("pp-imaps")
        got, ev = self.through_header("pp-imaps", proxy_v2("192.0.2.7", 4321, LOOPBACK, port),
                                      "192.0.2.7:4321", "imap")
        self.assertEqual(ev["backend"], "hp2", ev["_line"])
        self.assertEqual((got["rip"], got["rport"]), ("192.0.2.7", "4321"), got["line"])
        self.assertEqual((got["lip"], got["lport"]), (LOOPBACK, str(port)), got["line"])

    def test_v1_header(self):
        port = self.moat.port("pp-pop3s")
        got, ev = self.through_header("pp-pop3s", proxy_v1("192.0.2.8", 4322, LOOPBACK, port),
                                      "192.0.2.8:4322", "pop3")
        self.assertEqual(ev["backend"], "hp1", ev["_line"])
        self.assertEqual((got["rip"], got["rport"]), ("192.0.2.8", "4322"), got["line"])
        self.assertEqual((got["lip"], got["lport"]), (LOOPBACK, str(port)), got["line"])

    def test_v1_header_on_imap(self):
        port = self.moat.port("pp-imaps")
        got, _ = self.through_header("pp-imaps", proxy_v1("192.0.2.9", 4324, LOOPBACK, port),
                                     "192.0.2.9:4324", "imap")
        self.assertEqual((got["rip"], got["rport"]), ("192.0.2.9", "4324"), got["line"])

    def test_v2_header_ipv6_client(self):
        port = self.moat.port("pp-imaps")
        hdr = proxy_v2("2001:db8::7", 4323, "2001:db8::1", 993)
        got, _ = self.through_header("pp-imaps", hdr, "[2001:db8::7]:4323", "imap")
        self.assertEqual((got["rip"], got["rport"]), ("2001:db8::7", "4323"), got["line"])

    def expect_proxy_error(self, name, send, start, why):
        """Connects to listener NAME from 127.0.0.1, sends `send`: the
        connection is closed without a word, moat logs event=proxy_error
        with the real peer, and no login reaches Dovecot."""
        m = self.moat
        d0 = dlen(DC_HAPROXY)
        s = socket.create_connection((LOOPBACK, m.port(name)), timeout=harness.scaled(10))
        try:
            local = "%s:%d" % s.getsockname()[:2]
            s.sendall(send)
            how = closed_without_answer(s)
        finally:
            s.close()
        self.assertIn(how, ("eof", "reset"), "%s: %s" % (why, how))
        m.wait_log(r'event=proxy_error listener=%s client=%s reason="[^"\n]+"'
                   % (re.escape(name), re.escape(local)), 10, start)
        self.assertEqual(dovecot_logins(DC_HAPROXY, d0), [], why)

    def test_untrusted_source(self):
        m = self.moat
        port = m.port("pp-strict")
        start = len(m.log())
        self.expect_proxy_error("pp-strict", proxy_v2("192.0.2.10", 4325, LOOPBACK, port),
                                start, "v2 header from 127.0.0.1")
        self.expect_proxy_error("pp-strict", proxy_v1("192.0.2.10", 4326, LOOPBACK, port),
                                start, "v1 header from 127.0.0.1")
        self.assertNotIn("client=192.0.2.10", m.log()[start:])
        # A TLS client without a header: the handshake fails.
        with self.assertRaises((ssl.SSLError, ConnectionError, socket.timeout, OSError)):
            c = Client(port)
            self.addCleanup(c.close)
            c.greeting()

    def test_bad_headers(self):
        m = self.moat
        port = m.port("pp-imaps")
        good_v2 = proxy_v2("192.0.2.11", 4327, LOOPBACK, port)
        cases = [
            ("v1 with a bad address", b"PROXY TCP4 192.0.2.300 127.0.0.1 4328 993\r\n"),
            ("v1 with a bad port", b"PROXY TCP4 192.0.2.11 127.0.0.1 99999 993\r\n"),
            ("v1 without CRLF in 107 bytes", b"PROXY TCP4 " + b"1" * 200),
            ("v1 unknown protocol", b"PROXY SCTP4 192.0.2.11 127.0.0.1 4328 993\r\n"),
            ("v2 version 3", good_v2[:12] + b"\x31" + good_v2[13:]),
            ("v2 address block too short", good_v2[:14] + struct.pack("!H", 4) + good_v2[16:20]),
            ("neither v1 nor v2", b"GET / HTTP/1.0\r\n\r\n"),
        ]
        for why, data in cases:
            with self.subTest(why):
                self.expect_proxy_error("pp-imaps", data, len(m.log()), why)
        with self.subTest("TLS without a header"):
            start = len(m.log())
            with self.assertRaises((ssl.SSLError, ConnectionError, socket.timeout, OSError)):
                c = Client(port)
                self.addCleanup(c.close)
                c.greeting()
            m.wait_log(r'event=proxy_error listener=pp-imaps client=127\.0\.0\.1:\d+ reason=',
                       10, start)
        # The listener still works.
        self.through_header("pp-imaps", good_v2, "192.0.2.11:4327", "imap")

    def test_limits_count_the_header_address(self):
        # 127.0.0.1, the real peer, is exempt from limits by default; the
        # header's addresses are not.
        moat = new_moat([listener("pp", "imap", "hp2", proxy_protocol="yes")],
                        [backend("hp2", DC_HAPROXY, forward="proxy-v2")], "moat-pp-limits",
                        options={"max_connections_per_ip": "1"})
        self.addCleanup(stop_checked, moat)
        port = moat.port("pp")
        first = open_client(self, port, preamble=proxy_v2("192.0.2.20", 5001, LOOPBACK, port))
        imap_login(self, first)
        # Another connection claiming the same address is refused.
        c = Client(port, preamble=proxy_v2("192.0.2.20", 5002, LOOPBACK, port))
        self.addCleanup(c.close)
        self.assertEqual(c.line(), IMAP_PER_IP, c.dump())
        self.assertRegex(moat.log(), r"event=limit_refused [^\n]*address=192\.0\.2\.20\b")
        # One claiming another address is not.
        other = open_client(self, port, preamble=proxy_v2("192.0.2.21", 5003, LOOPBACK, port))
        imap_login(self, other)
        imap_logout(self, other)
        imap_logout(self, first)


# ------------------------------------------------------------------ failover

class LoginLoop:
    """A thread logging in and out as demo, again and again, until
    stopped (IMAPS or POP3S). Each session is recorded as (start, end,
    login ok, logout ok, transcript or error)."""

    MAX = 5000

    def __init__(self, port, protocol):
        self.port = port
        self.protocol = protocol
        self.results = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=harness.scaled(30))

    def run(self):
        while not self.stopping.is_set() and len(self.results) < self.MAX:
            t0 = time.monotonic()
            login, logout, what = self.one()
            with self.lock:
                self.results.append((t0, time.monotonic(), login, logout, what))
            time.sleep(0.01)

    def one(self):
        c = None
        login = False
        try:
            c = Client(self.port, timeout=10)
            g = c.greeting()
            if self.protocol == "imap":
                login = (g.startswith(b"* OK ") and
                         c.cmd("l", "LOGIN demo demo")[1].startswith(b"l OK"))
                logout = login and c.cmd("o", "LOGOUT")[1].startswith(b"o OK")
            else:
                login = (g.startswith(b"+OK") and pop3(c, "USER demo").startswith(b"+OK") and
                         pop3(c, "PASS demo").startswith(b"+OK"))
                logout = login and pop3(c, "QUIT").startswith(b"+OK")
            return login, logout, c.dump()
        except Exception as e:
            return login, False, "%s: %s\n%s" % (type(e).__name__, e, c.dump() if c else "")
        finally:
            if c is not None:
                c.close()

    def count(self, after=0.0):
        """Sessions that started after the monotonic time `after`."""
        with self.lock:
            return sum(1 for r in self.results if r[0] > after)

    def wait_count(self, n, after=0.0, timeout=20):
        deadline = time.monotonic() + harness.scaled(timeout)
        while self.count(after) < n:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("%s loop: only %d sessions after %.2f"
                                     % (self.protocol, self.count(after), after))
            time.sleep(0.02)


class TestFailover(unittest.TestCase):
    """Two Dovecots, A and B, with the same account; backends a and b
    (their IMAP and POP3 addresses), listener backend = a, b. Every test
    starts with both running."""

    @classmethod
    def setUpClass(cls):
        cls.a = harness.Dovecot(users=dict(PASSWORDS), extra_conf=BASE_CONF,
                                name="dovecot-a").start()
        cls.b = harness.Dovecot(users=dict(PASSWORDS), extra_conf=BASE_CONF,
                                name="dovecot-b").start()

    @classmethod
    def tearDownClass(cls):
        cls.a.stop()
        cls.b.stop()

    def setUp(self):
        for dc in (self.a, self.b):
            if dc.proc is None or dc.proc.poll() is not None:
                dc.restart()

    def start_moat(self, name, check="1s", balance=None):
        opts = {"balance": balance} if balance else {}
        chk = {"check_interval": check, "check_timeout": "1s"}
        m = new_moat([listener("imaps", "imap", "a, b", **opts),
                      listener("pop3s", "pop3", "a, b", **opts)],
                     [backend("a", self.a, **chk), backend("b", self.b, **chk)], name)
        self.addCleanup(stop_checked, m)
        return m

    def served(self, m, start, want, a0, b0, n):
        """The n logins since moat's log offset start all went to backend
        `want`, and only that Dovecot logged them (offsets a0, b0)."""
        ev = moat_logins(m, start)
        self.assertEqual([(e["result"], e["backend"]) for e in ev], [("ok", want)] * n,
                         log_tail(m))
        dc, other, d0, o0 = ((self.a, self.b, a0, b0) if want == "a"
                             else (self.b, self.a, b0, a0))
        wait_dovecot_logins(dc, d0, n, user="demo")
        time.sleep(0.1)
        self.assertEqual(len(dovecot_logins(dc, d0, user="demo")), n, dlog(dc)[d0:])
        self.assertEqual(dovecot_logins(other, o0), [], dlog(other)[o0:])

    def test_failover_under_load_and_back(self):
        a, b = self.a, self.b
        m = self.start_moat("moat-failover")
        imaps, pop3s = m.port("imaps"), m.port("pop3s")

        # Both up: the first in order serves.
        start, a0, b0 = len(m.log()), dlen(a), dlen(b)
        imap_session(self, imaps)
        pop3_session(self, pop3s)
        self.served(m, start, "a", a0, b0, 2)

        # Logins in a loop while A stops.
        loops = [LoginLoop(imaps, "imap").start(), LoginLoop(pop3s, "pop3").start()]
        for loop in loops:
            self.addCleanup(loop.stop)
        for loop in loops:
            loop.wait_count(3)
        down_from, b1 = len(m.log()), dlen(b)
        t0 = time.monotonic()
        a.stop()
        t1 = time.monotonic()
        after = len(m.log())
        wait_backend_down(self, m, "a", a, down_from)
        for loop in loops:
            loop.wait_count(10, after=t1)
        for loop in loops:
            loop.stop()
        for loop in loops:
            with loop.lock:
                results = list(loop.results)
            # No login fails: one that A can no longer answer goes to B.
            # Only a session already logged in on A when A went down may
            # lose its connection (before its LOGOUT/QUIT was answered).
            failed = [r for r in results if not r[2]]
            if failed:
                self.fail("%s loop: %d of %d logins failed (A stopped %.2f..%.2f):\n%s"
                          % (loop.protocol, len(failed), len(results), t0, t1,
                             "\n\n".join("%.2f..%.2f\n%s" % (r[0], r[1], r[4])
                                          for r in failed[:3])))
            cut = [r for r in results if r[2] and not r[3] and not (r[0] <= t1 and r[1] >= t0)]
            if cut:
                self.fail("%s loop: sessions cut outside A's stop (%.2f..%.2f):\n%s"
                          % (loop.protocol, t0, t1, "\n\n".join(
                              "%.2f..%.2f\n%s" % (r[0], r[1], r[4]) for r in cut[:3])))
            self.assertGreaterEqual(sum(1 for r in results if r[3] and r[0] > t1), 10)
        # B served everything that started after A was gone.
        ev = moat_logins(m, after)
        late = [e for e in ev if e["result"] == "ok"]
        self.assertGreaterEqual(len(late), 20, log_tail(m))
        self.assertEqual({e["backend"] for e in late}, {"b"}, log_tail(m))
        # (B's log from before A stopped: it may also hold logins moat
        # logged before `after`.)
        wait_dovecot_logins(b, b1, len(late), user="demo")
        self.assertNotIn("event=backend_up backend=a", m.log()[down_from:])

        # A again, on the same ports: moat finds it by its checks and
        # sends new logins there again.
        up_from = len(m.log())
        a.restart()
        wait_backend_up(self, m, "a", a, down_from)
        self.assertTrue(health_events(m.log()[up_from:], "backend_up", "a"))
        start, a0, b0 = len(m.log()), dlen(a), dlen(b)
        imap_session(self, imaps)
        pop3_session(self, pop3s)
        self.served(m, start, "a", a0, b0, 2)

    def test_connect_failure_moves_on_without_health_checks(self):
        a, b = self.a, self.b
        m = self.start_moat("moat-nocheck", check="0")
        imaps, pop3s = m.port("imaps"), m.port("pop3s")
        start, a0, b0 = len(m.log()), dlen(a), dlen(b)
        imap_session(self, imaps)
        self.served(m, start, "a", a0, b0, 1)
        a.stop()
        # No check watches a: the logins themselves find it refusing and
        # move on to b without the client noticing.
        start, a0, b0 = len(m.log()), dlen(a), dlen(b)
        imap_session(self, imaps)
        pop3_session(self, pop3s)
        self.served(m, start, "b", a0, b0, 2)
        # Nothing but a login can find a back either: as soon as it
        # listens again, the next logins are a's.
        a.restart()
        start, a0, b0 = len(m.log()), dlen(a), dlen(b)
        imap_session(self, imaps)
        pop3_session(self, pop3s)
        self.served(m, start, "a", a0, b0, 2)
        self.assertNotRegex(m.log(), r"event=backend_down backend=b\b")

    def test_least_conn(self):
        a, b = self.a, self.b
        m = self.start_moat("moat-leastconn", balance="least-conn")
        port = m.port("imaps")
        start, a0, b0 = len(m.log()), dlen(a), dlen(b)
        counts = {"a": 0, "b": 0}
        held = []
        for i in range(4):
            c = open_client(self, port)
            imap_login(self, c)
            be = wait_moat_login(m, start, c.local)["backend"]
            self.assertIn(be, counts)
            if counts["a"] != counts["b"]:
                fewer = min(counts, key=counts.get)
                self.assertEqual(be, fewer, "login %d with %r held went to %s; log tail:\n%s"
                                 % (i + 1, counts, be, log_tail(m)))
            counts[be] += 1
            held.append((c, be))
        self.assertEqual(counts, {"a": 2, "b": 2})
        wait_dovecot_logins(a, a0, 2, user="demo")
        wait_dovecot_logins(b, b0, 2, user="demo")
        # The two sessions on one backend end: the next two logins both
        # go there (order would say a, a turn about would alternate).
        gone = held[0][1]
        for c, be in held:
            if be == gone:
                imap_logout(self, c)
                c.close()
                wait_session_end(m, c.local, start)
        time.sleep(0.2)
        start2, a1, b1 = len(m.log()), dlen(a), dlen(b)
        for i in range(2):
            c = open_client(self, port)
            imap_login(self, c)
            be = wait_moat_login(m, start2, c.local)["backend"]
            self.assertEqual(be, gone, "login %d after %s's sessions ended went to %s; "
                             "log tail:\n%s" % (i + 1, gone, be, log_tail(m)))
            held.append((c, be))
        d, d0 = (a, a1) if gone == "a" else (b, b1)
        o, o0 = (b, b1) if gone == "a" else (a, a1)
        wait_dovecot_logins(d, d0, 2, user="demo")
        self.assertEqual(dovecot_logins(o, o0), [])


# ------------------------------------------------------------------ all down

class TestAllDown(unittest.TestCase):
    """backend = gone1, gone2: gone1 is a Dovecot not started yet (its
    ports reserved), gone2 ports nothing listens on."""

    def test_all_down_then_one_back(self):
        late = harness.Dovecot(users=dict(PASSWORDS), extra_conf=BASE_CONF, name="dovecot-late")
        self.addCleanup(late.stop)
        chk = {"check_interval": "1s", "check_timeout": "1s"}
        gone2 = (harness.free_port(), harness.free_port())
        m = new_moat([listener("imaps", "imap", "gone1, gone2", auth_failure_delay="0"),
                      listener("pop3s", "pop3", "gone1, gone2", auth_failure_delay="0")],
                     [backend("gone1", late, **chk),
                      backend("gone2", imap="%s:%d" % (LOOPBACK, gone2[0]),
                              pop3="%s:%d" % (LOOPBACK, gone2[1]), **chk)],
                     "moat-alldown")
        self.addCleanup(stop_checked, m)
        imaps, pop3s = m.port("imaps"), m.port("pop3s")

        # Right away (the logins find both refusing), and once the checks
        # have marked both down.
        c = open_client(self, imaps)
        self.assertEqual(imap_login(self, c, ok=False), b"l " + IMAP_UNAVAILABLE, c.dump())
        p = open_client(self, pop3s)
        self.assertEqual(pop3_login(self, p, ok=False), POP3_UNAVAILABLE, p.dump())
        m.wait_log(r"event=backend_down backend=gone1 address=127\.0\.0\.1:(%d|%d) reason="
                   % (late.imap_port, late.pop3_port))
        m.wait_log(r"event=backend_down backend=gone2 address=127\.0\.0\.1:(%d|%d) reason="
                   % gone2)
        start = len(m.log())
        c2 = open_client(self, imaps)
        self.assertEqual(imap_login(self, c2, tag="m", ok=False), b"m " + IMAP_UNAVAILABLE,
                         c2.dump())
        ev = wait_moat_login(m, start, c2.local)
        self.assertEqual(ev["result"], "unavailable", ev["_line"])
        # The session goes on: LOGOUT as usual.
        imap_logout(self, c2)
        self.assertIn(c2.rest_until_eof(5)[1], harness.CLOSED, c2.dump())
        p2 = open_client(self, pop3s)
        self.assertEqual(pop3_login(self, p2, ok=False), POP3_UNAVAILABLE, p2.dump())
        ev = wait_moat_login(m, start, p2.local)
        self.assertEqual(ev["result"], "unavailable", ev["_line"])
        pop3_quit(self, p2)

        # gone1 comes up: the first two sessions, told to try again later,
        # log in now.
        late.start()
        d0 = 0          # its log began with this start
        wait_backend_up(self, m, "gone1", late, 0)
        start = len(m.log())
        imap_login(self, c, tag="l2")
        _, tagged = c.cmd("n", "NOOP")
        self.assertTrue(tagged.startswith(b"n OK"), c.dump())
        imap_logout(self, c)
        pop3_login(self, p)
        self.assertTrue(pop3(p, "STAT").startswith(b"+OK 0 0"), p.dump())
        pop3_quit(self, p)
        for cl in (c, p):
            ev = wait_moat_login(m, start, cl.local)
            self.assertEqual((ev["result"], ev["backend"]), ("ok", "gone1"), ev["_line"])
        wait_dovecot_logins(late, d0, 1, proto="imap", user="demo")
        wait_dovecot_logins(late, d0, 1, proto="pop3", user="demo")
        self.assertNotRegex(m.log(), r"event=backend_up backend=gone2\b")


# ------------------------------------------------------------------ route map

ROUTE_USERS_A = {"alice@example.com": "alice-pw-5e1d", "erin@example.org": "erin-pw-09c2"}
ROUTE_USERS_B = {"bob": "bob-pw-77a0", "dave": "dave-pw-3b9e"}

ROUTE_MAP = """\
# moat's route map for test_backends
bob\tb

@example.org   b
# an exact name comes before its domain
erin@example.org  a
"""


class TestRouteMap(unittest.TestCase):
    """Dovecot A has alice@example.com and erin@example.org, B has bob and
    dave. Backend a adds "@example.com" to names without a domain, b
    strips domains. Listeners say backend = a; the map sends bob and
    @example.org to b, but erin@example.org to a."""

    @classmethod
    def setUpClass(cls):
        cls.a = harness.Dovecot(users=dict(ROUTE_USERS_A), extra_conf=BASE_CONF,
                                name="dovecot-route-a").start()
        cls.b = harness.Dovecot(users=dict(ROUTE_USERS_B), extra_conf=BASE_CONF,
                                name="dovecot-route-b").start()

    @classmethod
    def tearDownClass(cls):
        cls.a.stop()
        cls.b.stop()

    def start_moat(self, name, map_text=ROUTE_MAP):
        d = harness.new_dir(name + "-map")
        path = os.path.join(d, "routes")
        write_atomic(path, map_text)
        m = new_moat([listener("imaps", "imap", "a", auth_failure_delay="0"),
                      listener("pop3s", "pop3", "a", auth_failure_delay="0")],
                     [backend("a", self.a, add_domain="example.com"),
                      backend("b", self.b, strip_domain="yes")],
                     name, options={"route_map": path})
        self.addCleanup(stop_checked, m)
        return m, path

    def login(self, m, protocol, user, password, ok=True, sasl=False):
        """One session logging in as user; returns moat's login line."""
        start = len(m.log())
        c = open_client(self, m.port(protocol + "s"))
        if protocol == "pop3":
            pop3_login(self, c, user, password, ok=ok)
        elif sasl:
            _, tagged = c.cmd("s", "AUTHENTICATE PLAIN %s"
                              % harness.plain_b64(user, password).decode())
            self.assertTrue(tagged.startswith(b"s OK" if ok else b"s NO"), c.dump())
        else:
            imap_login(self, c, user, password, ok=ok)
        ev = wait_moat_login(m, start, c.local)
        self.assertEqual(ev["result"], "ok" if ok else "failed", ev["_line"])
        return ev

    def routed(self, m, protocol, user, password, want, dovecot_user, sasl=False):
        """user logs in through moat; backend `want` served it, and that
        Dovecot logged dovecot_user's login (the other nothing)."""
        dc, other = (self.a, self.b) if want == "a" else (self.b, self.a)
        d0, o0 = dlen(dc), dlen(other)
        ev = self.login(m, protocol, user, password, sasl=sasl)
        self.assertEqual(ev["backend"], want, ev["_line"])
        wait_dovecot_logins(dc, d0, 1, proto=protocol, user=dovecot_user)
        self.assertEqual(dovecot_logins(other, o0), [], dlog(other)[o0:])

    def test_routes_and_rewrites(self):
        m, _ = self.start_moat("moat-route")
        A, B = ROUTE_USERS_A, ROUTE_USERS_B
        cases = [
            # not in the map: the listener's backend, a, which adds the domain
            ("default, add_domain", "imap", "alice", A["alice@example.com"], "a",
             "alice@example.com", False),
            ("exact name", "imap", "bob", B["bob"], "b", "bob", False),
            ("exact name, SASL PLAIN", "imap", "bob", B["bob"], "b", "bob", True),
            ("exact name, POP3", "pop3", "bob", B["bob"], "b", "bob", False),
            ("@domain, strip_domain", "imap", "dave@example.org", B["dave"], "b", "dave", False),
            ("@domain, strip_domain, POP3", "pop3", "bob@example.org", B["bob"], "b", "bob",
             False),
            ("exact name before @domain, name kept", "imap", "erin@example.org",
             A["erin@example.org"], "a", "erin@example.org", False),
            ("POP3 default", "pop3", "alice", A["alice@example.com"], "a", "alice@example.com",
             False),
        ]
        for why, protocol, user, pw, want, duser, sasl in cases:
            with self.subTest(why):
                self.routed(m, protocol, user, pw, want, duser, sasl)
        with self.subTest("unknown user: a, failed"):
            a0 = dlen(self.a)
            ev = self.login(m, "imap", "zed@example.net", "zed-pw", ok=False)
            self.assertEqual(ev["backend"], "a", ev["_line"])
            self.assertRegex(dlog(self.a)[a0:], r"passwd-file\(zed@example\.net,")

    def test_map_reread_on_sighup(self):
        m, path = self.start_moat("moat-route-reload")
        pw = ROUTE_USERS_B["bob"]
        self.routed(m, "imap", "bob", pw, "b", "bob")

        # bob now goes to a, which does not know him (as bob@example.com).
        write_atomic(path, ROUTE_MAP.replace("bob\tb", "bob a"))
        self.assertTrue(m.reload(), log_tail(m))
        a0, b0 = dlen(self.a), dlen(self.b)
        ev = self.login(m, "imap", "bob", pw, ok=False)
        self.assertEqual(ev["backend"], "a", ev["_line"])
        self.assertRegex(dlog(self.a)[a0:], r"passwd-file\(bob@example\.com,[^\n]*unknown user")
        self.assertEqual(dovecot_logins(self.b, b0), [])
        # alice is unaffected.
        self.routed(m, "imap", "alice", ROUTE_USERS_A["alice@example.com"], "a",
                    "alice@example.com")

        # A map naming an unknown backend is refused; the one before stays.
        bad = ROUTE_MAP + "carol   nosuch\n"
        write_atomic(path, bad)
        start = len(m.log())
        self.assertFalse(m.reload(), log_tail(m))
        log = m.log()[start:]
        self.assertRegex(log, r'event=reload_failed error="[^\n]*%s:%d: unknown backend[^\n]*nosuch'
                         % (re.escape(path), line_of(bad, "carol")))
        self.assertNotIn("event=reloaded", log)
        a0, b0 = dlen(self.a), dlen(self.b)
        ev = self.login(m, "imap", "bob", pw, ok=False)
        self.assertEqual(ev["backend"], "a", ev["_line"])
        self.assertEqual(dovecot_logins(self.b, b0), [])

        # A good map again: bob back on b.
        write_atomic(path, ROUTE_MAP)
        self.assertTrue(m.reload(), log_tail(m))
        self.routed(m, "imap", "bob", pw, "b", "bob")
        self.routed(m, "pop3", "bob", pw, "b", "bob")


# ------------------------------------------------------------------ moat -t

class TestConfigCheck(unittest.TestCase):
    """moat -t -c FILE: each mistake exits non-zero with FILE:LINE (the
    line that says it, or for a missing address the section's)."""

    def setUp(self):
        self.dir = harness.new_dir("cfgcheck")
        self.p1, self.p2 = harness.free_port(), harness.free_port()

    def listeners(self, imap="a, b", pop3="a", imap_opts=None):
        return [harness.Listener("imaps", "imap", imap, options=imap_opts),
                harness.Listener("pop3s", "pop3", pop3)]

    def backends(self, **over):
        """Sections a, b and imaponly; over replaces one by name (text)."""
        secs = {
            "a": backend("a", imap="%s:%d" % (LOOPBACK, self.p1),
                         pop3="%s:%d" % (LOOPBACK, self.p2)),
            "b": backend("b", imap="localhost:%d" % self.p1, pop3="localhost:%d" % self.p2,
                         forward="proxy-v2", strip_domain="yes", check_interval="0"),
            "imaponly": backend("imaponly", imap="%s:%d" % (LOOPBACK, self.p1)),
        }
        secs.update(over)
        return "\n".join(s for s in secs.values() if s)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        write_atomic(path, text)
        return path

    def check(self, text, name="moat.ini"):
        path = self.write(name, text)
        return path, harness.run_moat_cli(["-t", "-c", path])

    def config(self, listeners=None, backends=None, options=None):
        return harness.moat_config(listeners or self.listeners(),
                                   extra=self.backends() if backends is None else backends,
                                   options=options)

    def refused(self, r, path, lines, *words):
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertRegex(r.stderr, r"%s:(%s):" % (re.escape(path),
                                                  "|".join(str(n) for n in lines)), out)
        for w in words:
            self.assertIn(w, r.stderr)
        self.assertNotIn("configuration OK", r.stdout)

    def test_good_config_passes(self):
        mp = self.write("routes", "# ok\nbob b\n@example.org b\nalice@example.com a\n")
        far = backend("far", imap="192.0.2.1:143", insecure="yes", check_interval="0")
        text = self.config(self.listeners(imap="a, far, b", imap_opts={"balance": "least-conn"}),
                           self.backends() + "\n" + far, options={"route_map": mp})
        path, r = self.check(text)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("%s:" % path, r.stderr)
        # A backend with only an IMAP address serves an IMAP listener.
        path, r = self.check(self.config(self.listeners(imap="imaponly")))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_unknown_backend_in_listener(self):
        text = self.config(self.listeners(imap="a, nosuch"))
        path, r = self.check(text)
        self.refused(r, path, [line_of(text, "backend = a, nosuch")], "nosuch")

    def test_backend_without_address_for_protocol(self):
        text = self.config(self.listeners(pop3="imaponly"))
        path, r = self.check(text)
        self.refused(r, path, [line_of(text, "backend = imaponly", "[listener pop3s]"),
                               line_of(text, "[backend imaponly]"),
                               line_of(text, "imap = ", "[backend imaponly]")], "imaponly")

    def test_backend_without_any_address(self):
        text = self.config(backends=self.backends(b="[backend b]\nforward = none\n"))
        path, r = self.check(text)
        self.refused(r, path, [line_of(text, "[backend b]"),
                               line_of(text, "forward = none", "[backend b]"),
                               line_of(text, "backend = a, b")])

    def test_plaintext_to_non_loopback(self):
        far = backend("far", imap="192.0.2.1:143", pop3="192.0.2.1:110")
        text = self.config(self.listeners(imap="a, far"), self.backends() + "\n" + far)
        path, r = self.check(text)
        self.refused(r, path, [line_of(text, "[backend far]"),
                               line_of(text, "imap = 192.0.2.1:143"),
                               line_of(text, "pop3 = 192.0.2.1:110"),
                               line_of(text, "backend = a, far")])
        # insecure = yes allows it.
        far = backend("far", imap="192.0.2.1:143", pop3="192.0.2.1:110", insecure="yes")
        text = self.config(self.listeners(imap="a, far"), self.backends() + "\n" + far)
        path, r = self.check(text)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_bad_values(self):
        cases = [
            ("forward", {"b": backend("b", imap="%s:%d" % (LOOPBACK, self.p1),
                                      forward="proxy-v3")}, None, "forward = proxy-v3"),
            ("check_interval", {"b": backend("b", imap="%s:%d" % (LOOPBACK, self.p1),
                                             check_interval="soon")}, None,
             "check_interval = soon"),
            ("strip_domain", {"b": backend("b", imap="%s:%d" % (LOOPBACK, self.p1),
                                           strip_domain="maybe")}, None,
             "strip_domain = maybe"),
            ("balance", {}, {"balance": "random"}, "balance = random"),
            ("proxy_protocol", {}, {"proxy_protocol": "maybe"}, "proxy_protocol = maybe"),
            ("proxy_trusted", {}, {"proxy_protocol": "yes", "proxy_trusted": "10.0.0.0/33"},
             "proxy_trusted = 10.0.0.0/33"),
        ]
        for why, over, opts, bad_line in cases:
            with self.subTest(why):
                text = self.config(self.listeners(imap_opts=opts), self.backends(**over))
                path, r = self.check(text)
                self.refused(r, path, [line_of(text, bad_line)])

    def test_route_map_errors(self):
        cases = [
            ("unknown backend", "# map\nbob b\ncarol nosuch\n", "carol", ["unknown backend",
                                                                      "nosuch"]),
            ("one word", "bob b\ncarol\n", "carol", []),
        ]
        for why, map_text, bad, words in cases:
            with self.subTest(why):
                mp = self.write("routes-%s" % why.replace(" ", "-"), map_text)
                path, r = self.check(self.config(options={"route_map": mp}))
                self.refused(r, mp, [line_of(map_text, bad)], *words)
        with self.subTest("missing file"):
            mp = os.path.join(self.dir, "no-such-routes")
            text = self.config(options={"route_map": mp})
            path, r = self.check(text)
            self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn(mp, r.stderr)

    def test_insecure_warning_at_startup(self):
        # capabilities = ... spares the startup probe of an address that
        # does not answer; check_interval = 0, the health checks.
        far = backend("far", imap="192.0.2.1:143", insecure="yes", check_interval="0")
        m = new_moat([listener("imaps", "imap", "far", capabilities="IDLE")], [far],
                     "moat-insecure")
        self.addCleanup(stop_checked, m)
        head = m.log()[:m.log().index("event=ready")]
        self.assertRegex(head, r"level=warn [^\n]*(backend=far\b|\[backend far\])", m.log())
        # A loopback plaintext backend is no reason to warn.
        ok = new_moat([listener("imaps", "imap", "near")],
                      [backend("near", DC_PLAIN)], "moat-near")
        self.addCleanup(stop_checked, ok)
        head = ok.log()[:ok.log().index("event=ready")]
        self.assertNotRegex(head, r"level=warn [^\n]*(backend=near\b|\[backend near\])")


if __name__ == "__main__":
    unittest.main()
