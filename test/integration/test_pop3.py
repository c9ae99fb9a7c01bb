"""moat's POP3 pre-auth dialogue against a real Dovecot, with real clients.

moat greets POP3 clients itself ("+OK <greeting>", no APOP timestamp),
answers CAPA, STLS, USER, PASS, AUTH (PLAIN) and QUIT before login,
refuses the transaction commands (and APOP) with -ERR, logs in to the
backend with the client's credentials, forwards the backend's "+OK" and
only then relays bytes.

One Dovecot (its own failed-login delay and per-IP penalty turned off, so
that the delays measured here are moat's) holds these accounts:

  demo      three messages (1 short; 2 with lines that look like POP3
            responses and commands, and dot-stuffing cases; 3 about 300 KiB)
  deleter   four messages, for the DELE test (the only one deleting them)
  fetch,    three messages each, fetched (and deleted) by fetchmail over
  fetchtls  POP3S and over STLS
  big       the harness's 64 MiB message
  priv      only used for the USER-before-STLS test (Dovecot's log must
            never mention it before TLS)
  odd       a password with spaces, a quote and a backslash
  secret    for the "password never logged" tests

A fake backend (FakePop3 below) records every line it receives, so a test
can prove that nothing reached the backend, and advertises what moat must
filter out of its CAPA (STLS, SASL CRAM-MD5, IMPLEMENTATION).

The shared moat has these listeners (see setUpModule):

  pop3s              implicit TLS -> Dovecot, greeting "moat pop3 test
                     ready", auth_failure_delay 100ms, max_auth_failures 3
  pop3               starttls (STLS) -> Dovecot, default greeting, same
                     delays
  pop3s-slow         implicit -> Dovecot, auth_failure_delay 600ms
  pop3s-small        implicit -> Dovecot, max_command 1k
  pop3s-timeout      implicit -> Dovecot, preauth_timeout 1s
  pop3s-caps         implicit -> Dovecot, capabilities
                     "TOP, EXPIRE NEVER, X-MOAT-OVERRIDE"
  pop3s-down         implicit -> a port nothing listens on
  pop3-down          starttls -> another such port
  pop3s-transparent  implicit, transparent = yes -> Dovecot
  pop3s-fake         implicit -> the fake backend
  pop3-fake          starttls -> the fake backend

Real clients: Python's poplib, curl, openssl s_client, fetchmail.
"""

import base64
import hashlib
import os
import poplib
import re
import shutil
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import b64, plain_b64, login_events

LOOPBACK = harness.LOOPBACK

DOVECOT = None
MOAT = None
FAKE = None

PASSWORDS = {
    "demo": "demo-pop-pass-3e9a",
    "deleter": "deleter-pass-7b21",
    "fetch": "fetch-pass-c0d4",
    "fetchtls": "fetchtls-pass-2f86",
    "big": "big-pass-55e0",
    "priv": "priv-pop-pass-a41f",
    "odd": 'two  sp aces"quote\\back',
    "secret": "Qx7-secret-Pop-90b3",
}
WRONG = "wrong-pop-pass-1c8e"

GREETING = "moat pop3 test ready"
DEFAULT_GREETING = "POP3 server ready"
SMALL_DELAY = 0.1           # pop3s, pop3: auth_failure_delay
SLOW_DELAY = 0.6            # pop3s-slow
MAX_FAILURES = 3            # pop3s, pop3

AUTH_FAILED = b"-ERR [AUTH] Authentication failed\r\n"
TLS_REQUIRED = b"-ERR [AUTH] TLS required, use STLS first\r\n"
CAPA_OK = b"+OK Capability list follows\r\n"
DOVECOT_LOGGED_IN = b"+OK Logged in.\r\n"

# What moat itself puts in CAPA after TLS; before TLS on an STLS listener;
# what Dovecot's pre-login CAPA adds that moat passes on.
MOAT_CAPA = ["USER", "SASL PLAIN", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
MOAT_CAPA_CLEAR = ["STLS", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
DOVECOT_CAPA = ["TOP", "UIDL"]
NEVER_AFTER_TLS = ["STLS", "IMPLEMENTATION", "CAPA"]

FAKE_USER, FAKE_PASS = "fake", "fake-pass-61aa"
# Credentials only ever sent in clear to the STLS listener of the fake.
CLEAR_USER, CLEAR_PASS = "fakeclear", "clear-pass-d5e3"
FAKE_CAPA = ["TOP", "UIDL", "STLS", "USER", "SASL PLAIN CRAM-MD5", "RESP-CODES",
             "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION fake-pop3 0.1",
             "EXPIRE 30", "LOGIN-DELAY 0", "X-MOAT-PROBE some args"]
FAKE_PASSED = ["TOP", "UIDL", "EXPIRE 30", "LOGIN-DELAY 0", "X-MOAT-PROBE some args"]
FAKE_LOGGED_IN = b"+OK fake maildrop locked and ready\r\n"
FAKE_STAT = b"+OK 1 42\r\n"


# ------------------------------------------------------------------ messages

def make_message(n, subject, body_lines, user="demo"):
    return harness.make_message(n, subject, body_lines, msgid_prefix="pop3-%s" % user,
                                to="%s <%s@localhost>" % (user, user))


def numbered(user, messages):
    """Maildir entries for messages: message i gets UID i (and POP3 number
    i while none is deleted)."""
    return [("%d.M%dP1.%s" % (1000000000 + i, i, user), m)
            for i, m in enumerate(messages, 1)]


def demo_messages():
    m1 = make_message(1, "pop3 test 1", [b"First message, a short one."])
    # Lines a POP3 relay must leave alone, and all the dot-stuffing cases.
    m2 = make_message(2, "pop3 test 2", [
        b"+OK Capability list follows",
        b"STLS",
        b"-ERR [AUTH] Authentication failed",
        b"USER demo",
        b"PASS not-a-password",
        b".",
        b"..",
        b". ",
        b".leading dot",
        b"",
        b"end of message 2"])
    lines = []
    for i in range(4000):
        lines.append(("line %05d " % i).encode() + bytes(
            (0x21 + (i * 11 + j) % 94) for j in range(60)))
        if i % 97 == 0:
            lines.append(b".dot line %d" % i)
    m3 = make_message(3, "pop3 test 3", lines)
    return [m1, m2, m3]


def user_messages(user, count):
    out = []
    for i in range(1, count + 1):
        body = [b"Message %d of %d for %s." % (i, count, user.encode()),
                b".a line starting with a dot", b".", b"last line"]
        if i == 2:
            body += [b"filler %06d %s" % (k, b"x" * 70) for k in range(1500)]
        out.append(make_message(i, "%s %d" % (user, i), body, user=user))
    return out


MESSAGES = {
    "demo": demo_messages(),
    "deleter": user_messages("deleter", 4),
    "fetch": user_messages("fetch", 3),
    "fetchtls": user_messages("fetchtls", 3),
}


def msg(user, n):
    return MESSAGES[user][n - 1]


def unstuffed(lines):
    """What poplib's retr() lines (CRLF stripped, dot-unstuffed) stand for."""
    return b"".join(l + b"\r\n" for l in lines)


# ------------------------------------------------------------------ fake backend

class FakePop3:
    """A small POP3 server on loopback. It records every line it receives
    (self.received) and advertises FAKE_CAPA. It accepts FAKE_USER with
    FAKE_PASS through USER/PASS or AUTH PLAIN (initial response or "+ ")
    and answers STAT with FAKE_STAT once logged in."""

    def __init__(self):
        self.port = harness.free_port()
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((LOOPBACK, self.port))
        self.srv.listen(64)
        self.lock = threading.Lock()
        self.received = []
        self.closed = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def stop(self):
        self.closed = True
        try:
            self.srv.close()
        except OSError:
            pass

    def mark(self):
        with self.lock:
            return len(self.received)

    def seen(self, since=0):
        """Everything received (from the mark `since` on)."""
        with self.lock:
            return b"".join(self.received[since:])

    def accept_loop(self):
        while not self.closed:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def readline(self, f):
        line = f.readline(65536)
        with self.lock:
            self.received.append(line)
        return line

    def serve(self, conn):
        conn.settimeout(60)
        f = conn.makefile("rb")
        user = None
        authed = False
        try:
            # An APOP timestamp moat must not pass on (it greets itself).
            conn.sendall(b"+OK fake pop3 ready <1896.697170952@fake.invalid>\r\n")
            while True:
                line = self.readline(f)
                if not line:
                    return
                cmd, _, arg = line.rstrip(b"\r\n").partition(b" ")
                cmd = cmd.upper()
                if cmd == b"CAPA":
                    conn.sendall(b"+OK\r\n" + b"".join(
                        c.encode() + b"\r\n" for c in FAKE_CAPA) + b".\r\n")
                elif cmd == b"QUIT":
                    conn.sendall(b"+OK fake bye\r\n")
                    return
                elif cmd == b"NOOP":
                    conn.sendall(b"+OK\r\n")
                elif authed and cmd == b"STAT":
                    conn.sendall(FAKE_STAT)
                elif authed:
                    conn.sendall(b"-ERR fake does not do that\r\n")
                elif cmd == b"USER":
                    user = arg
                    conn.sendall(b"+OK fake wants a password\r\n")
                elif cmd == b"PASS":
                    authed = self.check(conn, user, arg)
                elif cmd == b"AUTH" and not arg:
                    conn.sendall(b"+OK\r\nPLAIN\r\nCRAM-MD5\r\n.\r\n")
                elif cmd == b"AUTH":
                    mech, _, ir = arg.partition(b" ")
                    if mech.upper() != b"PLAIN":
                        conn.sendall(b"-ERR fake: unsupported mechanism\r\n")
                        continue
                    if not ir:
                        conn.sendall(b"+ \r\n")
                        ir = self.readline(f).rstrip(b"\r\n")
                    try:
                        _, u, p = base64.b64decode(ir, validate=True).split(b"\0")
                    except ValueError:
                        conn.sendall(b"-ERR fake: bad base64\r\n")
                        continue
                    authed = self.check(conn, u, p)
                else:
                    conn.sendall(b"-ERR fake: unknown command\r\n")
        except (OSError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def check(self, conn, user, pw):
        if user == FAKE_USER.encode() and pw == FAKE_PASS.encode():
            conn.sendall(FAKE_LOGGED_IN)
            return True
        conn.sendall(b"-ERR [AUTH] fake says no\r\n")
        return False


# ------------------------------------------------------------------ module

def setUpModule():
    global DOVECOT, MOAT, FAKE
    harness.certs()
    big_path, _ = harness.big_message()
    msgs = {user: numbered(user, m) for user, m in MESSAGES.items()}
    msgs["big"] = numbered("big", [big_path])
    DOVECOT = harness.Dovecot(users=dict(PASSWORDS), messages=msgs,
                              extra_conf=harness.DOVECOT_NO_AUTH_DELAY,
                              name="dovecot-pop3").start()
    FAKE = FakePop3()
    fast = {"auth_failure_delay": "100ms", "max_auth_failures": str(MAX_FAILURES)}
    pop3_port = DOVECOT.pop3_port
    listeners = [
        harness.Listener("pop3s", "pop3", pop3_port,
                         options=dict(fast, greeting=GREETING)),
        harness.Listener("pop3", "pop3", pop3_port, tls="starttls", options=fast),
        harness.Listener("pop3s-slow", "pop3", pop3_port,
                         options={"auth_failure_delay": "600ms"}),
        harness.Listener("pop3s-small", "pop3", pop3_port,
                         options=dict(fast, max_command="1k")),
        harness.Listener("pop3s-timeout", "pop3", pop3_port,
                         options=dict(fast, preauth_timeout="1s")),
        harness.Listener("pop3s-caps", "pop3", pop3_port,
                         options=dict(fast, capabilities="TOP, EXPIRE NEVER, X-MOAT-OVERRIDE")),
        # Fixed capabilities: nothing to probe at startup.
        harness.Listener("pop3s-down", "pop3", harness.free_port(),
                         options=dict(fast, capabilities="TOP, UIDL")),
        harness.Listener("pop3-down", "pop3", harness.free_port(), tls="starttls",
                         options=dict(fast, capabilities="TOP, UIDL")),
        harness.Listener("pop3s-transparent", "pop3", pop3_port,
                         options={"transparent": "yes"}),
        harness.Listener("pop3s-fake", "pop3", FAKE.port, options=fast),
        harness.Listener("pop3-fake", "pop3", FAKE.port, tls="starttls", options=fast),
    ]
    MOAT = harness.Moat(listeners, name="moat-pop3").start()


def tearDownModule():
    rc = 0
    if MOAT is not None:
        rc = MOAT.stop(timeout=60)
    if FAKE is not None:
        FAKE.stop()
    if DOVECOT is not None:
        DOVECOT.stop()
    if MOAT is not None:
        log = MOAT.log()
        leaked = [name for name, secret in secrets_of_all() if secret in log]
        if leaked:
            raise AssertionError("moat's log holds credentials: %s" % leaked)
        if rc != 0:
            raise AssertionError("shared moat exited with status %s; log tail:\n%s"
                                 % (rc, "\n".join(log.splitlines()[-40:])))


def secrets_of_all():
    """(name, text) of every password used here and its SASL PLAIN
    encoding."""
    out = []
    for user, pw in list(PASSWORDS.items()) + [("demo", WRONG), (FAKE_USER, FAKE_PASS),
                                                (CLEAR_USER, CLEAR_PASS)]:
        out.append(("password of %s" % user, pw))
        out.append(("PLAIN blob of %s" % user, plain_b64(user, pw).decode()))
    return out


def ca():
    return harness.certs().ca


# ------------------------------------------------------------------ raw client

class Client:
    """A raw POP3 client: plaintext or implicit TLS, STLS on demand, every
    byte sent and received kept for failure messages."""

    def __init__(self, port, tls=True, timeout=30, ctx=None):
        self.ctx = ctx or harness.client_context()
        self.sock = socket.create_connection((LOOPBACK, port), timeout=harness.scaled(timeout))
        if tls:
            try:
                self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost")
            except BaseException:
                self.sock.close()
                raise
        self.buf = b""
        self.transcript = []
        self.greeting_line = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.transcript.append(b"C: " + data[:300] + (b"..." if len(data) > 300 else b""))
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; transcript:\n" + self.dump())
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        self.transcript.append(b"S: " + out)
        return out

    def multi(self):
        """A response that is multi-line when positive: (first line,
        [following lines with CRLF, without the final ".\\r\\n"])."""
        first = self.line()
        lines = []
        if first.startswith(b"+OK"):
            while True:
                l = self.line()
                if l == b".\r\n":
                    break
                lines.append(l)
        return first, lines

    def cmd(self, text):
        self.send("%s\r\n" % text if isinstance(text, str) else text + b"\r\n")
        return self.line()

    def cmd_multi(self, text):
        self.send("%s\r\n" % text)
        return self.multi()

    def capa(self):
        """CAPA: (first line, [capability lines as text, without CRLF])."""
        first, lines = self.cmd_multi("CAPA")
        return first, [l[:-2].decode() for l in lines]

    def login(self, user, pw=None):
        """USER and PASS; returns the PASS response."""
        r = self.cmd("USER %s" % user)
        if not r.startswith(b"+OK"):
            raise AssertionError("USER answered %r; transcript:\n%s" % (r, self.dump()))
        return self.cmd("PASS %s" % (PASSWORDS[user] if pw is None else pw))

    def stls(self):
        r = self.cmd("STLS")
        if not r.startswith(b"+OK"):
            raise AssertionError("STLS answered %r; transcript:\n%s" % (r, self.dump()))
        if self.buf:
            raise AssertionError("bytes in clear after the STLS answer: %r" % self.buf)
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.transcript.append(b"-- TLS --")

    def rest_until_eof(self, timeout=10):
        data, how = harness.recv_until_eof(self.sock, harness.scaled(timeout))
        data = self.buf + data
        self.buf = b""
        self.transcript.append(b"S: " + data + b" <" + how.encode() + b">")
        return data, how

    def dump(self):
        return "\n".join(repr(t) for t in self.transcript)


def connect(testcase, listener, tls=None, greet=True, stls=False):
    """A Client to a listener of the shared moat (TLS unless the listener
    is a starttls one; stls=True then upgrades it), registered for cleanup,
    greeting read."""
    if tls is None:
        tls = MOAT.listeners[listener].tls == "implicit"
    c = Client(MOAT.port(listener), tls=tls)
    testcase.addCleanup(c.close)
    if greet:
        g = c.line()
        testcase.assertTrue(g.startswith(b"+OK "), g)
        c.greeting_line = g
    if stls:
        c.stls()
    return c


def session(testcase, listener):
    """A client past TLS on either kind of listener."""
    return connect(testcase, listener, stls=MOAT.listeners[listener].tls == "starttls")


def capa_names(lines):
    return [l.split()[0].upper() for l in lines]


def stat_line(user, deleted=()):
    ms = [m for i, m in enumerate(MESSAGES[user], 1) if i not in deleted]
    return b"+OK %d %d\r\n" % (len(ms), sum(len(m) for m in ms))


def log_mark():
    return len(MOAT.log())


def wait_login_events(user, count, start, timeout=10):
    return harness.wait_login_events(MOAT, user, count, start, timeout)


def poplib_ssl(listener, timeout=60):
    return poplib.POP3_SSL(LOOPBACK, MOAT.port(listener), context=harness.client_context(),
                           timeout=harness.scaled(timeout))


def poplib_stls(listener, timeout=60):
    p = poplib.POP3(LOOPBACK, MOAT.port(listener), timeout=harness.scaled(timeout))
    try:
        resp = p.stls(context=harness.client_context())
        assert resp.startswith(b"+OK"), resp
    except BaseException:
        close_poplib(p)
        raise
    return p


def poplib_for(listener):
    if MOAT.listeners[listener].tls == "starttls":
        return poplib_stls(listener)
    return poplib_ssl(listener)


def close_poplib(p):
    try:
        p.close()
    except OSError:
        pass


# ------------------------------------------------------------------ greeting

class TestGreetingAndCapa(unittest.TestCase):

    def check_after_tls(self, first, lines):
        self.assertEqual(first, CAPA_OK)
        for c in MOAT_CAPA + DOVECOT_CAPA:
            self.assertIn(c, lines)
        names = capa_names(lines)
        for c in NEVER_AFTER_TLS:
            self.assertNotIn(c, names)
        self.assertEqual([l for l in lines if l.upper().startswith("SASL")], ["SASL PLAIN"])
        self.assertEqual(len(names), len(set(names)), "duplicates: %s" % lines)

    def test_implicit_greeting(self):
        c = connect(self, "pop3s")
        # No APOP timestamp: exactly the configured text.
        self.assertEqual(c.greeting_line, b"+OK %s\r\n" % GREETING.encode())

    def test_default_greeting_text(self):
        for listener in ("pop3", "pop3s-slow", "pop3s-fake"):
            with self.subTest(listener=listener):
                c = connect(self, listener)
                self.assertEqual(c.greeting_line, b"+OK %s\r\n" % DEFAULT_GREETING.encode())

    def test_implicit_capa(self):
        c = connect(self, "pop3s")
        first, lines = c.capa()
        self.check_after_tls(first, lines)
        self.assertEqual(sorted(lines), sorted(MOAT_CAPA + DOVECOT_CAPA), c.dump())
        # Command names are case-insensitive.
        first2, lines2 = c.cmd_multi("capa")
        self.assertEqual((first2, lines2), (first, [l.encode() + b"\r\n" for l in lines]))

    def test_starttls_listener_before_tls(self):
        c = connect(self, "pop3")
        self.assertEqual(c.greeting_line, b"+OK %s\r\n" % DEFAULT_GREETING.encode())
        first, lines = c.capa()
        self.assertEqual(first, CAPA_OK)
        self.assertEqual(sorted(lines), sorted(MOAT_CAPA_CLEAR), c.dump())

    def test_starttls_listener_after_tls(self):
        c = connect(self, "pop3")
        c.stls()
        first, lines = c.capa()
        self.check_after_tls(first, lines)
        self.assertEqual(sorted(lines), sorted(MOAT_CAPA + DOVECOT_CAPA), c.dump())

    def test_stls_inside_tls_refused(self):
        c = connect(self, "pop3s")
        r = c.cmd("STLS")
        self.assertTrue(r.startswith(b"-ERR"), r)
        first, _ = c.capa()
        self.assertEqual(first, CAPA_OK, c.dump())
        c = connect(self, "pop3")
        c.stls()
        r = c.cmd("STLS")
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())
        self.assertEqual(c.cmd("STAT"), stat_line("demo"))

    def test_capabilities_override(self):
        c = connect(self, "pop3s-caps")
        first, lines = c.capa()
        self.assertEqual(first, CAPA_OK)
        for cap in MOAT_CAPA + ["TOP", "EXPIRE NEVER", "X-MOAT-OVERRIDE"]:
            self.assertIn(cap, lines)
        # Dovecot has UIDL; the setting replaces what was probed.
        self.assertNotIn("UIDL", capa_names(lines))
        self.assertNotIn("STLS", capa_names(lines))

    def test_probed_capa_filtered(self):
        # The fake backend advertises STLS, SASL CRAM-MD5 and
        # IMPLEMENTATION besides what moat passes on.
        for listener in ("pop3s-fake", "pop3-fake"):
            with self.subTest(listener=listener):
                c = session(self, listener)
                first, lines = c.capa()
                self.assertEqual(first, CAPA_OK)
                self.assertEqual(sorted(lines), sorted(MOAT_CAPA + FAKE_PASSED), c.dump())

    def test_capa_after_login_is_dovecots(self):
        # After login moat no longer answers: Dovecot's post-login CAPA has
        # no USER and no SASL.
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                c = session(self, listener)
                self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())
                first, lines = c.capa()
                self.assertTrue(first.startswith(b"+OK"), first)
                names = capa_names(lines)
                self.assertIn("TOP", names)
                self.assertNotIn("USER", names)
                self.assertNotIn("SASL", names)
                self.assertNotIn("STLS", names)
                self.assertEqual(c.cmd("NOOP"), b"+OK\r\n")


# ------------------------------------------------------------------ pre-auth

class TestPreauthCommands(unittest.TestCase):

    def test_transaction_commands_refused(self):
        # Fewer than moat's limit of invalid commands per connection.
        for batch in (["STAT", "LIST", "RETR 1", "DELE 1", "NOOP"],
                      ["UIDL", "TOP 1 0", "RSET", "LAST", "XYZZY"]):
            with self.subTest(batch=batch[0]):
                c = connect(self, "pop3s")
                for text in batch:
                    r = c.cmd(text)
                    self.assertTrue(r.startswith(b"-ERR"), (text, r))
                    self.assertTrue(r.endswith(b"\r\n") and r.count(b"\r\n") == 1, r)
                self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())
                self.assertEqual(c.cmd("STAT"), stat_line("demo"), c.dump())
                first, lines = c.cmd_multi("LIST")
                self.assertTrue(first.startswith(b"+OK"), first)
                self.assertEqual(len(lines), 3, lines)

    def test_transaction_commands_refused_before_tls(self):
        c = connect(self, "pop3")
        for text in ("STAT", "RETR 1", "NOOP"):
            r = c.cmd(text)
            self.assertTrue(r.startswith(b"-ERR"), (text, r))
        c.stls()
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())

    def test_apop_refused(self):
        c = connect(self, "pop3s")
        r = c.cmd("APOP demo c4c9334bac560ecc979e58001b3e22fb")
        self.assertTrue(r.startswith(b"-ERR"), r)
        first, _ = c.capa()
        self.assertEqual(first, CAPA_OK, c.dump())
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())

    def test_quit_before_login(self):
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                c = connect(self, listener)
                r = c.cmd("QUIT")
                self.assertTrue(r.startswith(b"+OK"), r)
                data, how = c.rest_until_eof()
                self.assertEqual(data, b"")
                self.assertIn(how, harness.CLOSED)

    def test_user_pass_case_insensitive(self):
        c = connect(self, "pop3s")
        r = c.cmd("user demo")
        self.assertTrue(r.startswith(b"+OK"), r)
        r = c.cmd("pAsS %s" % PASSWORDS["demo"])
        self.assertEqual(r, DOVECOT_LOGGED_IN, c.dump())

    def test_pass_without_user(self):
        c = connect(self, "pop3s")
        r = c.cmd("PASS %s" % PASSWORDS["demo"])
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())

    def test_password_with_spaces(self):
        # PASS takes the rest of the line (RFC 1939), spaces included.
        c = connect(self, "pop3s")
        self.assertEqual(c.login("odd"), DOVECOT_LOGGED_IN, c.dump())
        self.assertEqual(c.cmd("STAT"), b"+OK 0 0\r\n")
        c = connect(self, "pop3s")
        r = c.cmd(b"AUTH PLAIN " + plain_b64("odd", PASSWORDS["odd"]))
        self.assertEqual(r, DOVECOT_LOGGED_IN, c.dump())

    def test_overlong_line(self):
        c = connect(self, "pop3s")
        # 255 octets with CRLF: allowed (moat answers USER itself).
        line = b"USER " + b"u" * 248 + b"\r\n"
        self.assertEqual(len(line), 255)
        c.send(line)
        r = c.line()
        self.assertTrue(r.startswith(b"+OK"), r)
        # 256 octets: refused, and only that line.
        c.send(b"USER " + b"u" * 249 + b"\r\n")
        r = c.line()
        self.assertTrue(r.startswith(b"-ERR"), r)
        first, _ = c.capa()
        self.assertEqual(first, CAPA_OK, c.dump())
        # Far longer: one -ERR, then the next command's answer.
        c.send(b"USER " + b"v" * 20000 + b"\r\n")
        r = c.line()
        self.assertTrue(r.startswith(b"-ERR"), r)
        first, _ = c.capa()
        self.assertEqual(first, CAPA_OK, c.dump())
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())

    def test_nul_refused(self):
        c = connect(self, "pop3s")
        r = c.cmd(b"USER de\0mo")
        self.assertTrue(r.startswith(b"-ERR"), r)
        first, _ = c.capa()
        self.assertEqual(first, CAPA_OK, c.dump())
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())

    def test_auth_lists_plain(self):
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                c = session(self, listener)
                first, lines = c.cmd_multi("AUTH")
                self.assertTrue(first.startswith(b"+OK"), first)
                self.assertEqual(lines, [b"PLAIN\r\n"], c.dump())

    def test_auth_plain_initial_response(self):
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                c = session(self, listener)
                r = c.cmd(b"AUTH PLAIN " + plain_b64("demo", PASSWORDS["demo"]))
                self.assertEqual(r, DOVECOT_LOGGED_IN, c.dump())
                self.assertEqual(c.cmd("STAT"), stat_line("demo"))

    def test_auth_plain_continuation(self):
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                c = session(self, listener)
                self.assertEqual(c.cmd("AUTH PLAIN"), b"+ \r\n", c.dump())
                r = c.cmd(plain_b64("demo", PASSWORDS["demo"]))
                self.assertEqual(r, DOVECOT_LOGGED_IN, c.dump())
                first, lines = c.cmd_multi("RETR 1")
                self.assertTrue(first.startswith(b"+OK"), first)
                self.assertEqual(b"".join(lines), msg("demo", 1))

    def test_auth_plain_mechanism_case(self):
        c = connect(self, "pop3s")
        r = c.cmd(b"auth plain " + plain_b64("demo", PASSWORDS["demo"]))
        self.assertEqual(r, DOVECOT_LOGGED_IN, c.dump())

    def test_auth_authzid_equal_to_user(self):
        c = connect(self, "pop3s")
        r = c.cmd(b"AUTH PLAIN " + plain_b64("demo", PASSWORDS["demo"], authzid="demo"))
        self.assertEqual(r, DOVECOT_LOGGED_IN, c.dump())

    def test_auth_cancel(self):
        c = connect(self, "pop3s")
        self.assertEqual(c.cmd("AUTH PLAIN"), b"+ \r\n")
        r = c.cmd("*")
        self.assertTrue(r.startswith(b"-ERR"), r)
        first, _ = c.capa()
        self.assertEqual(first, CAPA_OK, c.dump())
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())

    def test_auth_unknown_mechanism(self):
        c = connect(self, "pop3s")
        for text in ("AUTH CRAM-MD5", "AUTH X-UNKNOWN"):
            r = c.cmd(text)
            self.assertTrue(r.startswith(b"-ERR"), (text, r))
        first, _ = c.capa()
        self.assertEqual(first, CAPA_OK, c.dump())
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())

    def test_auth_bad_base64(self):
        c = connect(self, "pop3s")
        r = c.cmd("AUTH PLAIN !!notbase64!!")
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertEqual(c.cmd("AUTH PLAIN"), b"+ \r\n")
        r = c.cmd("%%%")
        self.assertTrue(r.startswith(b"-ERR"), r)
        # A PLAIN message without its NULs is not credentials either.
        r = c.cmd(b"AUTH PLAIN " + b64("demo"))
        self.assertTrue(r.startswith(b"-ERR"), r)
        r = c.cmd(b"AUTH PLAIN " + plain_b64("demo", PASSWORDS["demo"]))
        self.assertEqual(r, DOVECOT_LOGGED_IN, c.dump())

    def test_auth_response_longer_than_a_command_line(self):
        # AUTH responses are bounded by max_command, not by the 255-octet
        # command line limit: a 344-octet one reaches the backend.
        start = log_mark()
        c = connect(self, "pop3s")
        blob = plain_b64("demo", "w" * 250)
        self.assertGreater(len(blob), 255)
        self.assertEqual(c.cmd("AUTH PLAIN"), b"+ \r\n")
        self.assertEqual(c.cmd(blob), AUTH_FAILED, c.dump())
        ev = wait_login_events("demo", 1, start)
        self.assertEqual(ev[0].get("result"), "failed", ev)

    def auth_response(self, listener, response):
        """AUTH PLAIN, then `response` after the "+ ": moat's answer; the
        session must stay usable (CAPA, then a login)."""
        c = connect(self, listener)
        self.assertEqual(c.cmd("AUTH PLAIN"), b"+ \r\n")
        r = c.cmd(response)
        first, _ = c.capa()
        self.assertEqual(first, CAPA_OK, c.dump())
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())
        return r

    def test_max_command_setting(self):
        # pop3s-small: max_command 1k. A 348-octet AUTH response reaches
        # the backend there (a failed login); a 1348-octet one, valid
        # PLAIN (each field within moat's 1024), is refused by moat for its
        # length and reaches nothing. On pop3s (default 8k) the same one
        # goes to the backend.
        start = log_mark()
        r = self.auth_response("pop3s-small", plain_b64("toolong1", "w" * 250))
        self.assertEqual(r, AUTH_FAILED)
        ev = wait_login_events("toolong1", 1, start)
        self.assertEqual(ev[0].get("result"), "failed", ev)
        blob = plain_b64("toolong2", "w" * 1000)
        self.assertEqual(len(blob), 1348)
        r = self.auth_response("pop3s-small", blob)
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertNotEqual(r, AUTH_FAILED, "the 1348-octet response went to the backend")
        time.sleep(0.3)
        self.assertEqual(login_events(MOAT.log()[start:], "toolong2"), [])
        r = self.auth_response("pop3s", blob)
        self.assertTrue(r.startswith(b"-ERR"), r)
        ev = wait_login_events("toolong2", 1, start)
        self.assertEqual(ev[0].get("result"), "failed", ev)
        # Far over the default max_command (8k).
        r = self.auth_response("pop3s", b"QUFB" * 5000)
        self.assertTrue(r.startswith(b"-ERR"), r)

    def test_pipelined_user_pass_stat(self):
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                c = session(self, listener)
                c.send("USER demo\r\nPASS %s\r\nSTAT\r\n" % PASSWORDS["demo"])
                self.assertTrue(c.line().startswith(b"+OK"), c.dump())
                self.assertEqual(c.line(), DOVECOT_LOGGED_IN, c.dump())
                self.assertEqual(c.line(), stat_line("demo"), c.dump())

    def test_pipelined_whole_session(self):
        # From CAPA to QUIT in one write: every answer, in order.
        c = connect(self, "pop3s")
        c.send("CAPA\r\nUSER demo\r\nPASS %s\r\nLIST\r\nRETR 2\r\nUIDL\r\nQUIT\r\n"
               % PASSWORDS["demo"])
        first, _ = c.multi()
        self.assertEqual(first, CAPA_OK, c.dump())
        self.assertTrue(c.line().startswith(b"+OK"), c.dump())
        self.assertEqual(c.line(), DOVECOT_LOGGED_IN, c.dump())
        first, lines = c.multi()
        self.assertEqual(lines, [b"%d %d\r\n" % (i, len(m))
                                 for i, m in enumerate(MESSAGES["demo"], 1)], c.dump())
        first, lines = c.multi()
        self.assertTrue(first.startswith(b"+OK"), first)
        self.assertEqual(b"".join(lines) + b".\r\n", harness.pop3_stuff(msg("demo", 2)))
        first, lines = c.multi()
        self.assertEqual(len(lines), 3, c.dump())
        self.assertTrue(c.line().startswith(b"+OK"), c.dump())
        data, how = c.rest_until_eof()
        self.assertEqual(data, b"")
        self.assertIn(how, harness.CLOSED)

    def test_pipelined_after_auth_plain(self):
        c = connect(self, "pop3")
        c.stls()
        c.send(b"AUTH PLAIN " + plain_b64("demo", PASSWORDS["demo"]) + b"\r\nSTAT\r\nRETR 1\r\n")
        self.assertEqual(c.line(), DOVECOT_LOGGED_IN, c.dump())
        self.assertEqual(c.line(), stat_line("demo"), c.dump())
        first, lines = c.multi()
        self.assertTrue(first.startswith(b"+OK"), first)
        self.assertEqual(b"".join(lines), msg("demo", 1))

    def test_pipelined_after_failed_login(self):
        # The failed PASS is answered after moat's delay; the commands
        # behind it are still answered in order, before login.
        c = connect(self, "pop3s")
        c.send("USER demo\r\nPASS %s\r\nSTAT\r\nUSER demo\r\nPASS %s\r\nSTAT\r\n"
               % (WRONG, PASSWORDS["demo"]))
        self.assertTrue(c.line().startswith(b"+OK"), c.dump())
        self.assertEqual(c.line(), AUTH_FAILED, c.dump())
        self.assertTrue(c.line().startswith(b"-ERR"), c.dump())
        self.assertTrue(c.line().startswith(b"+OK"), c.dump())
        self.assertEqual(c.line(), DOVECOT_LOGGED_IN, c.dump())
        self.assertEqual(c.line(), stat_line("demo"), c.dump())

    def test_pipelined_flood(self):
        # Far more answers than fit in one write, all queued before moat
        # has sent any: every one comes, in order.
        c = connect(self, "pop3s")
        n = 2000
        c.send("CAPA\r\n" * n + "AUTH\r\n" + "QUIT\r\n")
        data, how = c.rest_until_eof(timeout=30)
        self.assertIn(how, harness.CLOSED)
        # n CAPA answers, the AUTH list, QUIT's line: n + 2 pieces when
        # split at the multi-line terminators.
        answers = data.split(b"\r\n.\r\n")
        self.assertEqual(len(answers), n + 2, data[-300:])
        first_capa = answers[0]
        self.assertTrue(first_capa.startswith(CAPA_OK), first_capa)
        self.assertEqual(answers[:n], [first_capa] * n)
        self.assertRegex(answers[n], rb"\A\+OK[^\r\n]*\r\nPLAIN\Z")
        self.assertRegex(answers[n + 1], rb"\A\+OK[^\r\n]*\r\n\Z")

    def test_commands_split_into_single_bytes(self):
        # Every byte in its own write (and its own TLS record).
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                c = connect(self, listener)
                c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

                def trickle(text):
                    for ch in text.encode():
                        c.send(bytes([ch]))
                        time.sleep(0.002)
                if listener == "pop3":
                    trickle("STLS\r\n")
                    self.assertTrue(c.line().startswith(b"+OK"), c.dump())
                    self.assertEqual(c.buf, b"")
                    c.sock = c.ctx.wrap_socket(c.sock, server_hostname="localhost")
                trickle("CAPA\r\n")
                first, _ = c.multi()
                self.assertEqual(first, CAPA_OK, c.dump())
                trickle("USER demo\r\nPASS %s\r\nSTAT\r\n" % PASSWORDS["demo"])
                self.assertTrue(c.line().startswith(b"+OK"), c.dump())
                self.assertEqual(c.line(), DOVECOT_LOGGED_IN, c.dump())
                self.assertEqual(c.line(), stat_line("demo"), c.dump())

    def test_client_gone_during_login(self):
        # The client closes right after PASS, while moat talks to the
        # backend; moat carries on serving others.
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                for i in range(5):
                    c = session(self, listener)
                    c.send("USER demo\r\nPASS %s\r\nSTAT\r\n" % PASSWORDS["demo"])
                    c.close()
                c = session(self, listener)
                self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())
        self.assertIsNone(MOAT.proc.poll(), "moat exited")


# ------------------------------------------------------------------ poplib

class TestPoplib(unittest.TestCase):

    def check_demo(self, p):
        self.assertEqual(p.stat(), (3, sum(len(m) for m in MESSAGES["demo"])))
        resp, listing, _ = p.list()
        self.assertTrue(resp.startswith(b"+OK"), resp)
        self.assertEqual(listing, [b"%d %d" % (i, len(m))
                                   for i, m in enumerate(MESSAGES["demo"], 1)])
        for n in (1, 2, 3):
            resp, lines, _ = p.retr(n)
            self.assertTrue(resp.startswith(b"+OK"), resp)
            self.assertEqual(unstuffed(lines), msg("demo", n), "message %d" % n)
        # TOP (passed through from Dovecot's CAPA): the header and 3 lines.
        resp, lines, _ = p.top(2, 3)
        head, _, body = msg("demo", 2).partition(b"\r\n\r\n")
        self.assertEqual(lines, head.split(b"\r\n") + [b""] + body.split(b"\r\n")[:3])
        resp, uids, _ = p.uidl()
        self.assertEqual(len(uids), 3)
        self.assertEqual(len({u.split()[1] for u in uids}), 3, uids)
        self.assertTrue(p.noop().startswith(b"+OK"))
        self.assertTrue(p.quit().startswith(b"+OK"))

    def test_implicit_user_pass(self):
        p = poplib_ssl("pop3s")
        try:
            self.assertEqual(p.getwelcome(), b"+OK " + GREETING.encode())
            caps = p.capa()
            self.assertIn("USER", caps)
            self.assertEqual(caps.get("SASL"), ["PLAIN"])
            self.assertNotIn("STLS", caps)
            self.assertTrue(p.user("demo").startswith(b"+OK"))
            self.assertEqual(p.pass_(PASSWORDS["demo"]), DOVECOT_LOGGED_IN[:-2])
            self.check_demo(p)
        finally:
            close_poplib(p)

    def test_stls_user_pass(self):
        p = poplib_stls("pop3")
        try:
            caps = p.capa()
            self.assertNotIn("STLS", caps)
            self.assertIn("USER", caps)
            self.assertIn("TOP", caps)
            self.assertEqual(caps.get("SASL"), ["PLAIN"])
            self.assertTrue(p.user("demo").startswith(b"+OK"))
            self.assertEqual(p.pass_(PASSWORDS["demo"]), DOVECOT_LOGGED_IN[:-2])
            self.check_demo(p)
        finally:
            close_poplib(p)

    def test_wrong_password(self):
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                p = poplib_for(listener)
                try:
                    p.user("demo")
                    with self.assertRaises(poplib.error_proto) as cm:
                        p.pass_(WRONG)
                    self.assertEqual(cm.exception.args[0], AUTH_FAILED[:-2])
                finally:
                    close_poplib(p)

    def test_dele_quit_deletes(self):
        # deleter: 4 messages; DELE 2 and QUIT over implicit TLS, then a
        # fresh STLS session sees 3 (and DELE + RSET deletes nothing).
        p = poplib_ssl("pop3s")
        try:
            p.user("deleter")
            p.pass_(PASSWORDS["deleter"])
            self.assertEqual(p.stat(), (4, sum(len(m) for m in MESSAGES["deleter"])))
            self.assertTrue(p.dele(2).startswith(b"+OK"))
            _, listing, _ = p.list()
            self.assertEqual([l.split()[0] for l in listing], [b"1", b"3", b"4"])
            self.assertTrue(p.quit().startswith(b"+OK"))
        finally:
            close_poplib(p)
        left = [msg("deleter", n) for n in (1, 3, 4)]
        p = poplib_stls("pop3")
        try:
            p.user("deleter")
            p.pass_(PASSWORDS["deleter"])
            self.assertEqual(p.stat(), (3, sum(len(m) for m in left)))
            for n, m in enumerate(left, 1):
                self.assertEqual(unstuffed(p.retr(n)[1]), m, "message %d" % n)
            p.dele(1)
            p.rset()
            self.assertTrue(p.quit().startswith(b"+OK"))
        finally:
            close_poplib(p)
        p = poplib_ssl("pop3s")
        try:
            p.user("deleter")
            p.pass_(PASSWORDS["deleter"])
            self.assertEqual(p.stat(), (3, sum(len(m) for m in left)))
            p.quit()
        finally:
            close_poplib(p)
        self.assertEqual(len(DOVECOT.mailbox_files("deleter")), 3)


class TestAuthPlainRaw(unittest.TestCase):
    """poplib has no AUTH: whole sessions over a raw socket."""

    def test_auth_plain_sessions(self):
        for listener in ("pop3s", "pop3"):
            for ir in (True, False):
                with self.subTest(listener=listener, initial_response=ir):
                    c = session(self, listener)
                    blob = plain_b64("demo", PASSWORDS["demo"])
                    if ir:
                        r = c.cmd(b"AUTH PLAIN " + blob)
                    else:
                        self.assertEqual(c.cmd("AUTH PLAIN"), b"+ \r\n")
                        r = c.cmd(blob)
                    self.assertEqual(r, DOVECOT_LOGGED_IN, c.dump())
                    self.assertEqual(c.cmd("STAT"), stat_line("demo"))
                    for n in (1, 2, 3):
                        first, lines = c.cmd_multi("RETR %d" % n)
                        self.assertTrue(first.startswith(b"+OK"), first)
                        self.assertEqual(b"".join(lines) + b".\r\n",
                                         harness.pop3_stuff(msg("demo", n)), "message %d" % n)
                    self.assertTrue(c.cmd("QUIT").startswith(b"+OK"))
                    data, how = c.rest_until_eof()
                    self.assertEqual(data, b"")


class TestConcurrentLogins(unittest.TestCase):
    SESSIONS = 40

    def test_concurrent_logins(self):
        # Implicit and STLS sessions, USER/PASS and AUTH PLAIN, logging in
        # at the same time, each retrieving a message afterwards.
        n = self.SESSIONS
        barrier = threading.Barrier(n, timeout=harness.scaled(120))
        results = [None] * n

        def one(i):
            c = None
            try:
                listener = "pop3s" if i % 2 else "pop3"
                c = Client(MOAT.port(listener), tls=(listener == "pop3s"))
                assert c.line().startswith(b"+OK")
                if listener == "pop3":
                    c.stls()
                barrier.wait()
                if i % 3:
                    r = c.login("demo")
                else:
                    r = c.cmd(b"AUTH PLAIN " + plain_b64("demo", PASSWORDS["demo"]))
                assert r == DOVECOT_LOGGED_IN, r
                n_msg = 1 + i % 3
                first, lines = c.cmd_multi("RETR %d" % n_msg)
                assert first.startswith(b"+OK"), first
                assert b"".join(lines) + b".\r\n" == harness.pop3_stuff(msg("demo", n_msg)), \
                    "message %d differs" % n_msg
                assert c.cmd("QUIT").startswith(b"+OK")
                results[i] = "ok"
            except BaseException as e:
                results[i] = "%s: %s" % (type(e).__name__, e)
                barrier.abort()
            finally:
                if c is not None:
                    c.close()

        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(harness.scaled(240))
        failed = [r for r in results if r != "ok"]
        if failed:
            first = next((r for r in failed if r and
                          not r.startswith("BrokenBarrierError")), failed[0])
            self.fail("%d of %d sessions failed; first: %s" % (len(failed), n, first))


# ------------------------------------------------------------------ curl, openssl

def curl(url, *extra, user="demo", pw=None, timeout=60):
    return harness.curl(url, user, PASSWORDS[user] if pw is None else pw, *extra,
                        timeout=timeout)


@unittest.skipUnless(shutil.which("curl"), "curl is not installed")
class TestCurl(unittest.TestCase):

    def check(self, scheme, listener, *extra):
        base = "%s://localhost:%d" % (scheme, MOAT.port(listener))
        r = curl(base + "/", *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"".join(b"%d %d\r\n" % (i, len(m))
                                            for i, m in enumerate(MESSAGES["demo"], 1)))
        for n in (1, 2, 3):
            r = curl(base + "/%d" % n, *extra)
            self.assertEqual(r.returncode, 0, r.stderr)
            # curl undoes the dot-stuffing.
            self.assertEqual(r.stdout, msg("demo", n), "message %d" % n)

    def test_pop3s(self):
        self.check("pop3s", "pop3s")

    def test_pop3_stls(self):
        self.check("pop3", "pop3", "--ssl-reqd")

    def test_pop3s_sasl_ir(self):
        self.check("pop3s", "pop3s", "--sasl-ir")

    def test_pop3_without_tls_refused(self):
        # Control: without STLS curl finds neither USER nor SASL and
        # cannot log in.
        r = curl("pop3://localhost:%d/1" % MOAT.port("pop3"))
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertNotIn(msg("demo", 1), r.stdout)

    def test_wrong_password(self):
        for url in ("pop3s://localhost:%d/1" % MOAT.port("pop3s"),
                    "pop3://localhost:%d/1" % MOAT.port("pop3")):
            with self.subTest(url=url):
                r = curl(url, "--ssl-reqd", pw=WRONG)
                self.assertEqual(r.returncode, 67, r.stderr)    # CURLE_LOGIN_DENIED
                self.assertEqual(r.stdout, b"")


class TestOpenSSL(unittest.TestCase):

    def test_s_client_starttls_pop3(self):
        send = ("USER demo\r\nPASS %s\r\nSTAT\r\nQUIT\r\n" % PASSWORDS["demo"]).encode()
        rc, out = harness.s_client_starttls(MOAT.port("pop3"), "pop3", send)
        self.assertEqual(rc, 0, out)
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("+OK Logged in.", out)
        self.assertIn(stat_line("demo").decode().rstrip("\r\n"), out)
        self.assertRegex(out, r"(?m)^\+OK Logging out")


# ------------------------------------------------------------------ fetchmail

FETCHMAILRC = """\
set no syslog
poll localhost via 127.0.0.1 port {port} protocol POP3 timeout 60
  user "{user}" there with password "{password}" is "root" here
  {tls} sslcertck sslcertfile "{ca}" sslcommonname "localhost"
  mda "sh -c 'cat > {out}/msg.$$'"
"""

# fetchmail prepends its own Received header (one line and two folded
# continuation lines here) and stores LF line ends.
RECEIVED_RX = re.compile(rb"\AReceived: [^\n]*\n(?:[ \t][^\n]*\n)*")


@unittest.skipUnless(shutil.which("fetchmail"), "fetchmail is not installed")
class TestFetchmail(unittest.TestCase):

    def fetch(self, listener, user, tls):
        d = harness.new_dir("fetchmail")
        out = os.path.join(d, "out")
        os.makedirs(out)
        rc = os.path.join(d, "fetchmailrc")
        fd = os.open(rc, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(FETCHMAILRC.format(port=MOAT.port(listener), user=user,
                                       password=PASSWORDS[user], tls=tls, ca=ca(), out=out))
        env = dict(os.environ, HOME=d, FETCHMAILHOME=d)
        argv = ["fetchmail", "-f", rc, "--nosyslog", "-d0", "-v",
                "--pidfile", os.path.join(d, "fetchmail.pid")]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, cwd=d,
                           timeout=harness.scaled(120))
        log = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 0, log)
        got = []
        for name in sorted(os.listdir(out)):
            with open(os.path.join(out, name), "rb") as f:
                data = f.read()
            m = RECEIVED_RX.match(data)
            self.assertIsNotNone(m, "no Received header first in %r" % data[:300])
            got.append(data[m.end():])
        expected = [m.replace(b"\r\n", b"\n") for m in MESSAGES[user]]
        self.assertEqual(sorted(got), sorted(expected), log)
        # Nothing was kept: fetchmail's DELE and QUIT went through moat too.
        p = poplib_ssl("pop3s")
        try:
            p.user(user)
            p.pass_(PASSWORDS[user])
            self.assertEqual(p.stat(), (0, 0))
            p.quit()
        finally:
            close_poplib(p)
        return log

    def test_pop3s(self):
        self.fetch("pop3s", "fetch", "ssl")

    def test_stls(self):
        # No "ssl" but sslproto: fetchmail insists on STLS.
        log = self.fetch("pop3", "fetchtls", 'sslproto "tls1.2+"')
        self.assertIn("POP3> STLS", log)


# ------------------------------------------------------------------ big message

class TestBigMessage(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.path, cls.sha = harness.big_message()
        with open(cls.path, "rb") as f:
            data = f.read()
        assert len(data) == harness.BIG_SIZE
        assert data.count(b"\r\n.") > 1000
        cls.stuffed_sha = hashlib.sha256(harness.pop3_stuff(data)).hexdigest()

    def test_retr_64mib_raw_stls(self):
        # The raw RETR stream through an STLS session: "+OK" line, then
        # the dot-stuffed message and ".\r\n", byte for byte.
        c = Client(MOAT.port("pop3"), tls=False, timeout=120)
        self.addCleanup(c.close)
        self.assertTrue(c.line().startswith(b"+OK"))
        c.stls()
        self.assertEqual(c.login("big"), DOVECOT_LOGGED_IN, c.dump())
        self.assertEqual(c.cmd("LIST 1"), b"+OK 1 %d\r\n" % harness.BIG_SIZE)
        c.send("RETR 1\r\n")
        status = c.line()
        self.assertTrue(status.startswith(b"+OK"), status)
        h = hashlib.sha256()
        total = 0
        tail = b""
        pending, c.buf = c.buf, b""
        while True:
            chunk = pending or c.sock.recv(1 << 20)
            pending = b""
            self.assertTrue(chunk, "connection closed after %d bytes" % total)
            h.update(chunk)
            total += len(chunk)
            tail = (tail + chunk)[-5:]
            if tail.endswith(b"\r\n.\r\n"):
                break
        self.assertEqual(h.hexdigest(), self.stuffed_sha,
                         "RETR stream differs (%d bytes)" % total)
        self.assertTrue(c.cmd("QUIT").startswith(b"+OK"))

    def test_retr_64mib_curl_pop3s(self):
        out = os.path.join(harness.new_dir("big-pop3"), "big.eml")
        r = curl("pop3s://localhost:%d/1" % MOAT.port("pop3s"), "-o", out,
                 user="big", timeout=180)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.path.getsize(out), harness.BIG_SIZE)
        self.assertEqual(harness.sha256_file(out), self.sha)


# ------------------------------------------------------------------ security

class TestStlsSecurity(unittest.TestCase):

    def refuse_all_in_clear(self, c, user, pw):
        """USER, PASS and AUTH in clear: each refused at once."""
        self.assertEqual(c.cmd("USER %s" % user), TLS_REQUIRED, c.dump())
        self.assertEqual(c.cmd("PASS %s" % pw), TLS_REQUIRED, c.dump())
        self.assertEqual(c.cmd(b"AUTH PLAIN " + plain_b64(user, pw)), TLS_REQUIRED, c.dump())
        # Refused before a "+ " that would ask for credentials in clear.
        self.assertEqual(c.cmd("AUTH PLAIN"), TLS_REQUIRED, c.dump())

    def test_user_before_stls_refused(self):
        pw = PASSWORDS["priv"]
        c = connect(self, "pop3")
        self.refuse_all_in_clear(c, "priv", pw)
        # Still usable; after STLS the same account logs in.
        first, _ = c.capa()
        self.assertEqual(first, CAPA_OK, c.dump())
        c.stls()
        self.assertEqual(c.login("priv"), DOVECOT_LOGGED_IN, c.dump())
        # Dovecot saw exactly that one login for priv and nothing before it.
        deadline = time.monotonic() + harness.scaled(10)
        while not any("Login: user=<priv>" in l for l in DOVECOT.user_log_lines("priv")):
            self.assertLess(time.monotonic(), deadline, harness._read(DOVECOT.log_path))
            time.sleep(0.05)
        lines = DOVECOT.user_log_lines("priv")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("Login: user=<priv>, method=", lines[0])

    def test_nothing_reaches_backend_before_stls(self):
        # The fake backend records every line it ever gets: none holds the
        # user name or the credentials given in clear (used nowhere else).
        c = connect(self, "pop3-fake")
        self.refuse_all_in_clear(c, CLEAR_USER, CLEAR_PASS)
        first, _ = c.capa()
        self.assertEqual(first, CAPA_OK, c.dump())
        time.sleep(0.3)
        seen = FAKE.seen()
        self.assertNotIn(CLEAR_USER.encode(), seen)
        self.assertNotIn(CLEAR_PASS.encode(), seen)
        self.assertNotIn(plain_b64(CLEAR_USER, CLEAR_PASS), seen)
        # Control: after STLS a login reaches the fake backend.
        mark = FAKE.mark()
        c.stls()
        self.assertEqual(c.login(FAKE_USER, FAKE_PASS), FAKE_LOGGED_IN, c.dump())
        seen = FAKE.seen(mark)
        self.assertTrue(FAKE_PASS.encode() in seen or plain_b64(FAKE_USER, FAKE_PASS) in seen,
                        seen)

    def test_backend_untouched_before_tls(self):
        # The down backend cannot explain a refusal: before TLS moat
        # answers itself, whatever state the backend is in.
        c = connect(self, "pop3-down")
        self.refuse_all_in_clear(c, "demo", PASSWORDS["demo"])

    def test_stls_capa_injection(self):
        # A CAPA sent with STLS before the handshake is never answered.
        c = connect(self, "pop3")
        c.send("STLS\r\nCAPA\r\n")
        r = c.line()
        self.assertTrue(r.startswith(b"+OK"), c.dump())
        self.assertEqual(c.buf, b"", "bytes in clear after the STLS answer")
        c.sock = c.ctx.wrap_socket(c.sock, server_hostname="localhost")
        c.transcript.append(b"-- TLS --")
        c.send("CAPA\r\nQUIT\r\n")
        first, lines = c.multi()
        self.assertEqual(first, CAPA_OK, c.dump())
        self.assertIn("USER", [l[:-2].decode() for l in lines], c.dump())
        # Then QUIT's answer, not a second CAPA answer.
        r = c.line()
        self.assertNotEqual(r, CAPA_OK, c.dump())
        self.assertTrue(r.startswith(b"+OK"), c.dump())
        data, how = c.rest_until_eof()
        self.assertEqual(data, b"", c.dump())
        self.assertIn(how, harness.CLOSED)

    def test_stls_login_injection(self):
        # USER and PASS sent with STLS before the handshake never run:
        # after it, a PASS finds no USER and nothing is logged in.
        start = log_mark()
        c = connect(self, "pop3")
        c.send("STLS\r\nUSER demo\r\nPASS %s\r\n" % PASSWORDS["demo"])
        self.assertTrue(c.line().startswith(b"+OK"), c.dump())
        self.assertEqual(c.buf, b"")
        c.sock = c.ctx.wrap_socket(c.sock, server_hostname="localhost")
        c.transcript.append(b"-- TLS --")
        r = c.cmd("PASS %s" % PASSWORDS["demo"])
        self.assertTrue(r.startswith(b"-ERR"), c.dump())
        r = c.cmd("STAT")
        self.assertTrue(r.startswith(b"-ERR"), c.dump())
        time.sleep(0.3)
        self.assertEqual(login_events(MOAT.log()[start:], "demo"), [])

    def test_stls_with_backend_down(self):
        # STLS is moat's own: it works when the backend is down; the login
        # then fails as unavailable.
        c = connect(self, "pop3-down")
        c.stls()
        self.assertTrue(c.cmd("USER demo").startswith(b"+OK"))
        r = c.cmd("PASS %s" % PASSWORDS["demo"])
        self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)


# ------------------------------------------------------------------ failures

class TestFailures(unittest.TestCase):

    def test_wrong_then_right_password(self):
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                start = log_mark()
                c = session(self, listener)
                t0 = time.monotonic()
                r = c.login("demo", WRONG)
                elapsed = time.monotonic() - t0
                self.assertEqual(r, AUTH_FAILED, c.dump())
                self.assertGreaterEqual(elapsed, SMALL_DELAY * 0.95)
                self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())
                self.assertEqual(c.cmd("STAT"), stat_line("demo"))
                ev = wait_login_events("demo", 2, start)
                self.assertEqual([e.get("result") for e in ev[:2]], ["failed", "ok"], ev)
                self.assertEqual(ev[0].get("listener"), listener, ev)

    def test_wrong_auth_plain_then_right(self):
        c = connect(self, "pop3s")
        r = c.cmd(b"AUTH PLAIN " + plain_b64("demo", WRONG))
        self.assertEqual(r, AUTH_FAILED, c.dump())
        self.assertEqual(c.cmd("AUTH PLAIN"), b"+ \r\n")
        r = c.cmd(plain_b64("demo", PASSWORDS["demo"]))
        self.assertEqual(r, DOVECOT_LOGGED_IN, c.dump())

    def test_unknown_user(self):
        c = connect(self, "pop3s")
        self.assertEqual(c.login("nosuchuser", "whatever"), AUTH_FAILED, c.dump())

    def test_authzid_of_another_user_refused(self):
        # demo's credentials asking to act as odd: Dovecot refuses; moat
        # must neither drop the authzid nor say +OK.
        c = connect(self, "pop3s")
        r = c.cmd(b"AUTH PLAIN " + plain_b64("demo", PASSWORDS["demo"], authzid="odd"))
        self.assertTrue(r.startswith(b"-ERR"), c.dump())

    def test_empty_password_refused(self):
        c = connect(self, "pop3s")
        self.assertTrue(c.cmd("USER demo").startswith(b"+OK"))
        r = c.cmd("PASS")
        self.assertTrue(r.startswith(b"-ERR"), r)
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())

    def test_too_many_failures_closes(self):
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                start = log_mark()
                c = session(self, listener)
                for i in range(MAX_FAILURES - 1):
                    self.assertEqual(c.login("demo", WRONG), AUTH_FAILED, c.dump())
                # The last one by AUTH PLAIN: the same counter.
                c.send(b"AUTH PLAIN " + plain_b64("demo", WRONG) + b"\r\n")
                data, how = c.rest_until_eof(timeout=20)
                self.assertEqual(data, AUTH_FAILED, c.dump())
                self.assertIn(how, harness.CLOSED, (how, data))
                ev = wait_login_events("demo", MAX_FAILURES, start)
                self.assertEqual([e.get("result") for e in ev],
                                 ["failed"] * MAX_FAILURES, ev)

    def test_too_many_failures_pipelined(self):
        # Commands pipelined behind the last allowed failure (a right
        # password among them) are never run.
        start = log_mark()
        c = connect(self, "pop3s")
        c.send(("USER demo\r\nPASS %s\r\n" % WRONG) * MAX_FAILURES +
               "USER demo\r\nPASS %s\r\nSTAT\r\n" % PASSWORDS["demo"])
        data, how = c.rest_until_eof(timeout=20)
        self.assertIn(how, harness.CLOSED, (how, data))
        lines = data.splitlines(keepends=True)
        self.assertEqual(len(lines), 2 * MAX_FAILURES, c.dump())
        self.assertEqual(lines[1::2], [AUTH_FAILED] * MAX_FAILURES, c.dump())
        time.sleep(0.3)
        ev = login_events(MOAT.log()[start:], "demo")
        self.assertEqual([e.get("result") for e in ev], ["failed"] * MAX_FAILURES, ev)

    def test_failure_delay_grows(self):
        # auth_failure_delay 600ms: the first -ERR comes after >= 600ms,
        # the second after >= 1200ms (Dovecot's own delay is off).
        c = connect(self, "pop3s-slow")
        times = []
        for i in range(2):
            self.assertTrue(c.cmd("USER demo").startswith(b"+OK"))
            t0 = time.monotonic()
            r = c.cmd("PASS %s" % WRONG)
            times.append(time.monotonic() - t0)
            self.assertEqual(r, AUTH_FAILED, c.dump())
        self.assertGreaterEqual(times[0], SLOW_DELAY * 0.95, times)
        self.assertGreaterEqual(times[1], 2 * SLOW_DELAY * 0.95, times)
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())
        # A new connection starts again at 1x.
        c2 = connect(self, "pop3s-slow")
        t0 = time.monotonic()
        r = c2.login("demo", WRONG)
        t = time.monotonic() - t0
        self.assertEqual(r, AUTH_FAILED)
        self.assertGreaterEqual(t, SLOW_DELAY * 0.95)
        self.assertLess(t, harness.scaled(2 * SLOW_DELAY), "second connection waited %.2fs" % t)

    def test_backend_down_unavailable(self):
        for listener in ("pop3s-down", "pop3-down"):
            with self.subTest(listener=listener):
                before = MOAT.log().count("event=backend_error")
                start = log_mark()
                c = connect(self, listener)
                self.assertEqual(c.greeting_line, b"+OK %s\r\n" % DEFAULT_GREETING.encode())
                if listener == "pop3-down":
                    c.stls()
                # moat's own commands work without the backend.
                first, lines = c.capa()
                self.assertEqual(first, CAPA_OK)
                for cap in MOAT_CAPA + ["TOP", "UIDL"]:
                    self.assertIn(cap, lines)
                r = c.login("demo")
                self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)
                MOAT.wait_log(r"event=backend_error[^\n]*listener=%s\b" % re.escape(listener),
                              start=start)
                self.assertGreater(MOAT.log().count("event=backend_error"), before)
                ev = wait_login_events("demo", 1, start)
                self.assertEqual(ev[0].get("result"), "unavailable", ev)
                # Whether moat keeps the session or not, QUIT ends it.
                try:
                    c.send("QUIT\r\n")
                    data, how = c.rest_until_eof()
                except OSError:
                    data = b""
                self.assertTrue(data == b"" or data.startswith(b"+OK"), data)

    def test_backend_down_auth_plain(self):
        c = connect(self, "pop3s-down")
        r = c.cmd(b"AUTH PLAIN " + plain_b64("demo", PASSWORDS["demo"]))
        self.assertTrue(r.startswith(b"-ERR [SYS/TEMP]"), r)

    def test_preauth_timeout(self):
        c = connect(self, "pop3s-timeout")
        t0 = time.monotonic()
        data, how = c.rest_until_eof(timeout=15)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, harness.scaled(10), (data, how))
        self.assertIn(how, harness.CLOSED, (how, data))
        if data:
            self.assertTrue(data.startswith(b"-ERR"), data)
            self.assertEqual(data.count(b"\r\n"), 1, data)

    def test_preauth_timeout_not_after_login(self):
        c = connect(self, "pop3s-timeout")
        self.assertEqual(c.login("demo"), DOVECOT_LOGGED_IN, c.dump())
        time.sleep(2.0)
        self.assertEqual(c.cmd("STAT"), stat_line("demo"), c.dump())


# ------------------------------------------------------------------ fake backend

class TestFakeBackend(unittest.TestCase):

    def test_login_forwards_backend_answer(self):
        # USER/PASS and AUTH PLAIN: the client gets the backend's own +OK
        # line, then the relay (the fake's STAT answer).
        for listener in ("pop3s-fake", "pop3-fake"):
            for how in ("pass", "auth"):
                with self.subTest(listener=listener, how=how):
                    c = session(self, listener)
                    if how == "pass":
                        r = c.login(FAKE_USER, FAKE_PASS)
                    else:
                        r = c.cmd(b"AUTH PLAIN " + plain_b64(FAKE_USER, FAKE_PASS))
                    self.assertEqual(r, FAKE_LOGGED_IN, c.dump())
                    self.assertEqual(c.cmd("STAT"), FAKE_STAT, c.dump())
                    self.assertEqual(c.cmd("QUIT"), b"+OK fake bye\r\n", c.dump())

    def test_backend_refusal_is_moats_answer(self):
        c = connect(self, "pop3s-fake")
        self.assertEqual(c.login(FAKE_USER, WRONG), AUTH_FAILED, c.dump())
        self.assertEqual(c.login(FAKE_USER, FAKE_PASS), FAKE_LOGGED_IN, c.dump())


# ------------------------------------------------------------------ logging

class TestLoginLog(unittest.TestCase):
    """A moat of its own at log_level = debug: the most it ever logs."""

    moat = None

    @classmethod
    def setUpClass(cls):
        fast = {"auth_failure_delay": "100ms"}
        cls.moat = harness.Moat([
            harness.Listener("pop3s", "pop3", DOVECOT.pop3_port, options=fast),
            harness.Listener("pop3", "pop3", DOVECOT.pop3_port, tls="starttls",
                             options=fast),
        ], log_level="debug", name="moat-pop3-debug").start()

    @classmethod
    def tearDownClass(cls):
        if cls.moat is not None:
            cls.moat.stop()

    def client(self, listener, stls=True):
        c = Client(self.moat.port(listener), tls=(listener == "pop3s"))
        self.addCleanup(c.close)
        self.assertTrue(c.line().startswith(b"+OK"))
        if listener == "pop3" and stls:
            c.stls()
        return c

    def wait_events(self, user, count, start):
        return harness.wait_login_events(self.moat, user, count, start)

    def assert_no_secrets(self, pw):
        log = self.moat.log()
        for what, secret in (("password", pw), ("wrong password", WRONG),
                             ("PLAIN blob", plain_b64("secret", pw).decode()),
                             ("wrong PLAIN blob", plain_b64("secret", WRONG).decode())):
            self.assertNotIn(secret, log, "%s in moat's log" % what)

    def test_password_never_logged(self):
        pw = PASSWORDS["secret"]
        start = len(self.moat.log())
        for listener in ("pop3s", "pop3"):
            c = self.client(listener)
            self.assertEqual(c.login("secret"), DOVECOT_LOGGED_IN, c.dump())
            c = self.client(listener)
            self.assertEqual(c.login("secret", WRONG), AUTH_FAILED, c.dump())
            c = self.client(listener)
            self.assertEqual(c.cmd(b"AUTH PLAIN " + plain_b64("secret", pw)),
                             DOVECOT_LOGGED_IN, c.dump())
            c = self.client(listener)
            self.assertEqual(c.cmd("AUTH PLAIN"), b"+ \r\n")
            self.assertEqual(c.cmd(plain_b64("secret", pw)), DOVECOT_LOGGED_IN, c.dump())
            c = self.client(listener)
            self.assertEqual(c.cmd(b"AUTH PLAIN " + plain_b64("secret", WRONG)),
                             AUTH_FAILED, c.dump())
            c.close()
        ev = self.wait_events("secret", 10, start)
        self.assertEqual(sorted(e.get("result") for e in ev), ["failed"] * 4 + ["ok"] * 6)
        self.assert_no_secrets(pw)

    def test_password_in_clear_not_logged(self):
        # Credentials sent in clear on the STLS listener are refused and
        # not logged either.
        pw = PASSWORDS["secret"]
        start = len(self.moat.log())
        c = self.client("pop3", stls=False)
        self.assertEqual(c.cmd("USER secret"), TLS_REQUIRED)
        self.assertEqual(c.cmd("PASS %s" % pw), TLS_REQUIRED)
        self.assertEqual(c.cmd(b"AUTH PLAIN " + plain_b64("secret", pw)), TLS_REQUIRED)
        c.stls()
        self.assertEqual(c.login("secret"), DOVECOT_LOGGED_IN, c.dump())
        self.wait_events("secret", 1, start)
        self.assert_no_secrets(pw)

    def test_user_name_cannot_forge_log_lines(self):
        # A user name with a quote, spaces, a bare LF and text that looks
        # like a log line: no forged line in moat's log.
        start = len(self.moat.log())
        evil = (b'x"y z\n2030-01-01T00:00:00.000Z level=info event=login '
                b'listener=forged user="admin" result=ok')
        c = self.client("pop3s")
        c.send(b"USER " + evil + b"\r\nPASS pw\r\nQUIT\r\n")
        c.rest_until_eof(timeout=15)
        c = self.client("pop3s")
        self.assertEqual(c.login("secret"), DOVECOT_LOGGED_IN, c.dump())
        self.wait_events("secret", 1, start)
        lines = self.moat.log()[start:].splitlines()
        self.assertFalse([e for e in login_events("\n".join(lines))
                          if e.get("listener") == "forged"], lines)
        for l in lines:
            if l.strip():
                self.assertRegex(l, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", "log line %r" % l)
        self.assertFalse([l for l in lines if l.startswith("2030-")], lines)

    def test_login_event_fields(self):
        for listener in ("pop3s", "pop3"):
            with self.subTest(listener=listener):
                start = len(self.moat.log())
                c = self.client(listener)
                self.assertEqual(c.login("secret"), DOVECOT_LOGGED_IN, c.dump())
                ev = self.wait_events("secret", 1, start)
                self.assertEqual(len(ev), 1, ev)
                self.assertEqual(ev[0].get("result"), "ok", ev)
                self.assertEqual(ev[0].get("listener"), listener, ev)


# ------------------------------------------------------------------ transparent

class TestTransparent(unittest.TestCase):

    def test_dovecot_greeting_and_relay(self):
        p = poplib_ssl("pop3s-transparent")
        try:
            self.assertTrue(p.getwelcome().startswith(b"+OK Dovecot"), p.getwelcome())
            self.assertNotIn("STLS", p.capa())
            p.user("demo")
            self.assertEqual(p.pass_(PASSWORDS["demo"]), DOVECOT_LOGGED_IN[:-2])
            self.assertEqual(unstuffed(p.retr(2)[1]), msg("demo", 2))
            p.quit()
        finally:
            close_poplib(p)


if __name__ == "__main__":
    unittest.main(verbosity=2)
