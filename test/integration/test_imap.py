"""moat's IMAP pre-auth dialogue against a real Dovecot, with real clients.

moat greets IMAP clients itself, answers CAPABILITY, NOOP, LOGOUT, ID,
STARTTLS, LOGIN and AUTHENTICATE (PLAIN, LOGIN) before login, logs in to
the backend with the client's credentials and only then relays bytes.

One Dovecot (its own failed-login delay and per-IP penalty turned off, so
that the delays measured here are moat's) holds these accounts:

  demo     three messages (UIDs 1-3; 2 has IMAP-looking lines in its body,
           3 is about 300 KiB)
  idle1,   one message each, for the IDLE tests (which deliver more)
  idle2
  priv     only used for the LOGIN-before-STARTTLS test (Dovecot's log must
           never mention it before TLS)
  odd      a password with a space, a quote and a backslash
  secret   for the "password never logged" test

A fake backend (FakeBackend below) advertises STARTTLS, LOGINDISABLED,
AUTH=CRAM-MD5 and X-MOAT-PROBE, for what moat must filter.

The shared moat has these listeners (see setUpModule):

  imaps                implicit TLS -> Dovecot, greeting "moat test ready",
                       auth_failure_delay 100ms, max_auth_failures 3
  imap                 starttls -> Dovecot, default greeting
  imaps-slow           implicit -> Dovecot, auth_failure_delay 600ms
  imaps-small          implicit -> Dovecot, max_command 1k
  imaps-timeout        implicit -> Dovecot, preauth_timeout 1s
  imaps-caps           implicit -> Dovecot, capabilities "IDLE X-OVERRIDE"
  imaps-down           implicit -> a port nothing listens on
  imap-down            starttls -> another such port
  imaps-transparent    implicit, transparent = yes -> Dovecot
  imaps-fake           implicit -> the fake backend
  imaps-fake-transp    implicit, transparent = yes -> the fake backend

Real clients: Python's imaplib, curl, openssl s_client, mbsync (isync).
"""

import base64
import imaplib
import os
import re
import select
import shutil
import socket
import ssl
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
    "demo": "demo-pass-8c1e",
    "idle1": "idle1-pass-5d2a",
    "idle2": "idle2-pass-93fb",
    "priv": "priv-pass-0be7",
    "odd": 'sp ace"quote\\back',
    "secret": "Zq9-secret-Pw-71d4",
}
WRONG = "wrong-pass-4f6b"

GREETING = "moat test ready"
DEFAULT_GREETING = "IMAP server ready"
SMALL_DELAY = 0.1           # imaps, imap: auth_failure_delay
SLOW_DELAY = 0.6            # imaps-slow
MAX_FAILURES = 3

# What moat itself advertises after TLS, and what it must never advertise
# after TLS.
MOAT_CAPS = ["IMAP4REV1", "AUTH=PLAIN", "AUTH=LOGIN", "SASL-IR", "LITERAL+", "ID"]
NEVER_AFTER_TLS = ["STARTTLS", "LOGINDISABLED"]

DOVECOT_EXTRA = harness.DOVECOT_NO_AUTH_DELAY

FAKE_CAPS = "IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN AUTH=CRAM-MD5 SASL-IR IDLE X-MOAT-PROBE"
FAKE_GREETING_TEXT = "fake backend ready"


# ------------------------------------------------------------------ messages

make_message = harness.make_message


def demo_messages():
    m1 = make_message(1, "imap test 1", [b"First message, a short one."])
    # Lines that look like server responses, capabilities and commands: a
    # relay that filters or parses must leave message content alone.
    m2 = make_message(2, "imap test 2", [
        b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN",
        b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hello",
        b"a1 OK [CAPABILITY IMAP4rev1 STARTTLS] Logged in",
        b"a2 STARTTLS",
        b"{5}",
        b"* BYE not really",
        b"end of message 2"])
    lines = []
    for i in range(4000):
        lines.append(("line %05d " % i).encode() + bytes(
            (0x21 + (i * 7 + j) % 94) for j in range(60)))
    m3 = make_message(3, "imap test 3", lines)
    return [("1000000001.M1P1.it", m1), ("1000000002.M2P1.it", m2),
            ("1000000003.M3P1.it", m3)]


def one_message(user):
    return [("1000000001.M1P1.%s" % user,
             make_message(1, "%s first" % user, [b"The only message so far."]))]


def subject_of(msg):
    m = re.search(rb"^Subject: (.*)\r?$", msg, re.M)
    return m.group(1).rstrip(b"\r") if m else None


# ------------------------------------------------------------------ fake backend

class FakeBackend:
    """A small IMAP server on loopback for what Dovecot cannot show: it
    advertises STARTTLS, LOGINDISABLED and AUTH=CRAM-MD5, which moat must
    not pass on. It accepts the user "fake" with password "fake-pass"
    (LOGIN with quoted strings or literals, AUTHENTICATE PLAIN with or
    without an initial response). "x XSPLIT" answers a CAPABILITY response
    written in three pieces with pauses between them."""

    USER, PASS = b"fake", b"fake-pass"

    def __init__(self):
        self.port = harness.free_port()
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((LOOPBACK, self.port))
        self.srv.listen(64)
        self.closed = False
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.closed = True
        try:
            self.srv.close()
        except OSError:
            pass

    def accept_loop(self):
        while not self.closed:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        conn.settimeout(60)
        f = conn.makefile("rb")
        try:
            conn.sendall(b"* OK [CAPABILITY %s] %s\r\n"
                         % (FAKE_CAPS.encode(), FAKE_GREETING_TEXT.encode()))
            while True:
                line = f.readline(65536)
                if not line:
                    return
                line = line.rstrip(b"\r\n")
                parts = line.split(b" ", 2)
                if len(parts) < 2:
                    conn.sendall(b"* BAD no command\r\n")
                    continue
                tag, cmd = parts[0], parts[1].upper()
                rest = parts[2] if len(parts) > 2 else b""
                if cmd == b"CAPABILITY":
                    conn.sendall(b"* CAPABILITY %s\r\n%s OK done\r\n"
                                 % (FAKE_CAPS.encode(), tag))
                elif cmd == b"XSPLIT":
                    for piece in (b"* CAPAB", b"ILITY IMAP4rev1 STAR",
                                  b"TTLS LOGINDISABLED IDLE\r\n" + tag + b" OK split\r\n"):
                        conn.sendall(piece)
                        time.sleep(0.1)
                elif cmd == b"NOOP":
                    conn.sendall(tag + b" OK done\r\n")
                elif cmd == b"LOGOUT":
                    conn.sendall(b"* BYE fake logging out\r\n" + tag + b" OK done\r\n")
                    return
                elif cmd == b"LOGIN":
                    args = self.astrings(conn, f, rest, 2)
                    self.login_reply(conn, tag, args)
                elif cmd == b"AUTHENTICATE":
                    mech, _, ir = rest.partition(b" ")
                    if mech.upper() != b"PLAIN":
                        conn.sendall(tag + b" NO unsupported\r\n")
                        continue
                    if not ir:
                        conn.sendall(b"+ \r\n")
                        ir = f.readline(65536).rstrip(b"\r\n")
                    try:
                        _, user, pw = base64.b64decode(ir, validate=True).split(b"\0")
                    except ValueError:
                        conn.sendall(tag + b" BAD bad base64\r\n")
                        continue
                    self.login_reply(conn, tag, [user, pw])
                else:
                    conn.sendall(tag + b" OK fake ignores " + cmd + b"\r\n")
        except (OSError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def login_reply(self, conn, tag, args):
        if args == [self.USER, self.PASS]:
            conn.sendall(tag + b" OK [CAPABILITY IMAP4rev1 STARTTLS IDLE] fake logged in\r\n")
        else:
            conn.sendall(tag + b" NO [AUTHENTICATIONFAILED] fake says no\r\n")

    @staticmethod
    def astrings(conn, f, rest, n):
        """Parses n astrings (atom, quoted string, {n} or {n+} literal)."""
        out = []
        buf = rest
        while len(out) < n:
            buf = buf.lstrip(b" ")
            if buf.startswith(b'"'):
                i, s = 1, bytearray()
                while i < len(buf) and buf[i:i + 1] != b'"':
                    if buf[i:i + 1] == b"\\":
                        i += 1
                    s += buf[i:i + 1]
                    i += 1
                out.append(bytes(s))
                buf = buf[i + 1:]
            elif re.match(rb"^\{\d+\+?\}$", buf):
                size = int(buf.strip(b"{}+"))
                if not buf.endswith(b"+}"):
                    conn.sendall(b"+ go on\r\n")
                out.append(f.read(size))
                buf = f.readline(65536).rstrip(b"\r\n")
            else:
                atom, _, buf = buf.partition(b" ")
                out.append(atom)
        return out


# ------------------------------------------------------------------ module

def setUpModule():
    global DOVECOT, MOAT, FAKE
    harness.certs()
    msgs = {"demo": demo_messages(), "idle1": one_message("idle1"),
            "idle2": one_message("idle2")}
    DOVECOT = harness.Dovecot(users=dict(PASSWORDS), messages=msgs,
                              extra_conf=DOVECOT_EXTRA, name="dovecot-imap").start()
    FAKE = FakeBackend()
    fast = {"auth_failure_delay": "100ms", "max_auth_failures": str(MAX_FAILURES)}
    imap_port = DOVECOT.imap_port
    listeners = [
        harness.Listener("imaps", "imap", imap_port,
                         options=dict(fast, greeting=GREETING)),
        harness.Listener("imap", "imap", imap_port, tls="starttls", options=fast),
        harness.Listener("imaps-slow", "imap", imap_port,
                         options={"auth_failure_delay": "600ms"}),
        harness.Listener("imaps-small", "imap", imap_port,
                         options=dict(fast, max_command="1k")),
        harness.Listener("imaps-timeout", "imap", imap_port,
                         options=dict(fast, preauth_timeout="1s")),
        harness.Listener("imaps-caps", "imap", imap_port,
                         options=dict(fast, capabilities="IDLE X-OVERRIDE")),
        # Fixed capabilities: nothing to probe at startup.
        harness.Listener("imaps-down", "imap", harness.free_port(),
                         options=dict(fast, capabilities="IDLE")),
        harness.Listener("imap-down", "imap", harness.free_port(), tls="starttls",
                         options=dict(fast, capabilities="IDLE")),
        harness.Listener("imaps-transparent", "imap", imap_port,
                         options={"transparent": "yes"}),
        harness.Listener("imaps-fake", "imap", FAKE.port, options=fast),
        harness.Listener("imaps-fake-transp", "imap", FAKE.port,
                         options={"transparent": "yes"}),
    ]
    MOAT = harness.Moat(listeners, name="moat-imap").start()


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
    """(name, text) of every password used here and its SASL PLAIN and
    AUTHENTICATE LOGIN encodings."""
    out = []
    for user, pw in list(PASSWORDS.items()) + [("demo", WRONG)]:
        out.append(("password of %s" % user, pw))
        out.append(("PLAIN blob of %s" % user, plain_b64(user, pw).decode()))
        out.append(("base64 password of %s" % user, b64(pw).decode()))
    return out


def ca():
    return harness.certs().ca


def quote(s):
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"')


def caps_of(text):
    if isinstance(text, bytes):
        text = text.decode()
    return [c.upper() for c in text.split()]


GREETING_RX = re.compile(rb"^\* OK \[CAPABILITY ([^\]]*)\] (.*)\r\n$")


# ------------------------------------------------------------------ raw client

# A raw IMAP client (harness.ImapClient, moved there for test_faults.py).
Client = harness.ImapClient


def connect(testcase, listener, tls=None, greet=True):
    """A Client to a listener of the shared moat (TLS unless the listener
    is a starttls one), registered for cleanup, greeting read."""
    if tls is None:
        tls = MOAT.listeners[listener].tls == "implicit"
    c = Client(MOAT.port(listener), tls=tls)
    testcase.addCleanup(c.close)
    if greet:
        g = c.greeting()
        testcase.assertTrue(g.startswith(b"* OK "), g)
        c.greeting_line = g
    return c


def login_line(user, pw=None):
    return "LOGIN %s %s" % (quote(user), quote(PASSWORDS[user] if pw is None else pw))


def log_mark():
    return len(MOAT.log())


def wait_login_events(user, count, start, timeout=10):
    return harness.wait_login_events(MOAT, user, count, start, timeout)


def imaplib_ssl(listener):
    return imaplib.IMAP4_SSL(LOOPBACK, MOAT.port(listener),
                             ssl_context=harness.client_context(),
                             timeout=harness.scaled(60))


def imaplib_starttls(listener):
    m = imaplib.IMAP4(LOOPBACK, MOAT.port(listener), timeout=harness.scaled(60))
    try:
        typ, _ = m.starttls(ssl_context=harness.client_context())
        assert typ == "OK", typ
    except BaseException:
        m.shutdown()
        raise
    return m


def close_imaplib(m):
    try:
        m.shutdown()
    except OSError:
        pass


# ------------------------------------------------------------------ greeting

class TestGreetingAndCapabilities(unittest.TestCase):

    def check_after_tls(self, caps):
        for c in MOAT_CAPS:
            self.assertIn(c, caps)
        for c in NEVER_AFTER_TLS:
            self.assertNotIn(c, caps)
        self.assertFalse([c for c in caps if c.startswith("AUTH=")
                          and c not in ("AUTH=PLAIN", "AUTH=LOGIN")], caps)

    def test_implicit_greeting(self):
        c = connect(self, "imaps")
        m = GREETING_RX.match(c.greeting_line)
        self.assertIsNotNone(m, c.greeting_line)
        self.assertEqual(m.group(2), GREETING.encode())
        self.check_after_tls(caps_of(m.group(1)))

    def test_default_greeting_text(self):
        for listener in ("imap", "imaps-slow"):
            with self.subTest(listener=listener):
                c = connect(self, listener)
                m = GREETING_RX.match(c.greeting_line)
                self.assertIsNotNone(m, c.greeting_line)
                self.assertEqual(m.group(2), DEFAULT_GREETING.encode())

    def test_implicit_capability(self):
        c = connect(self, "imaps")
        untagged, tagged = c.cmd("a", "CAPABILITY")
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        lines = [u for u in untagged if u.startswith(b"* CAPABILITY ")]
        self.assertEqual(len(lines), 1, untagged)
        caps = caps_of(lines[0][len(b"* CAPABILITY "):])
        self.check_after_tls(caps)
        # Probed from Dovecot, passed through.
        self.assertIn("IDLE", caps)
        self.assertIn("ENABLE", caps)
        # The greeting's code says the same.
        greet_caps = caps_of(GREETING_RX.match(c.greeting_line).group(1))
        self.assertEqual(sorted(greet_caps), sorted(caps))

    def test_starttls_listener_before_tls(self):
        c = connect(self, "imap")
        m = GREETING_RX.match(c.greeting_line)
        self.assertIsNotNone(m, c.greeting_line)
        self.assertEqual(sorted(caps_of(m.group(1))),
                         ["IMAP4REV1", "LOGINDISABLED", "STARTTLS"])
        untagged, tagged = c.cmd("a", "CAPABILITY")
        self.assertEqual(untagged, [b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\n"])
        self.assertTrue(tagged.startswith(b"a OK"), tagged)

    def test_starttls_listener_after_tls(self):
        c = connect(self, "imap")
        c.starttls()
        untagged, tagged = c.cmd("a", "CAPABILITY")
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        lines = [u for u in untagged if u.startswith(b"* CAPABILITY ")]
        self.assertEqual(len(lines), 1, untagged)
        caps = caps_of(lines[0][len(b"* CAPABILITY "):])
        self.check_after_tls(caps)
        self.assertIn("IDLE", caps)

    def test_starttls_inside_tls_is_bad(self):
        c = connect(self, "imaps")
        _, tagged = c.cmd("a", "STARTTLS")
        self.assertTrue(tagged.startswith(b"a BAD"), tagged)
        _, tagged = c.cmd("b", "NOOP")
        self.assertTrue(tagged.startswith(b"b OK"), tagged)
        c = connect(self, "imap")
        c.starttls()
        _, tagged = c.cmd("c", "STARTTLS")
        self.assertTrue(tagged.startswith(b"c BAD"), tagged)
        _, tagged = c.cmd("d", login_line("demo"))
        self.assertTrue(tagged.startswith(b"d OK"), tagged)

    def test_capabilities_override(self):
        c = connect(self, "imaps-caps")
        untagged, tagged = c.cmd("a", "CAPABILITY")
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        caps = caps_of(untagged[0][len(b"* CAPABILITY "):])
        self.check_after_tls(caps)
        self.assertIn("X-OVERRIDE", caps)
        self.assertIn("IDLE", caps)
        # Dovecot has ENABLE; the override replaces what was probed.
        self.assertNotIn("ENABLE", caps)

    def test_probed_capabilities_filtered(self):
        # The fake backend advertises STARTTLS, LOGINDISABLED and
        # AUTH=CRAM-MD5 (which moat cannot do) besides X-MOAT-PROBE.
        c = connect(self, "imaps-fake")
        untagged, tagged = c.cmd("a", "CAPABILITY")
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        caps = caps_of(untagged[0][len(b"* CAPABILITY "):])
        self.check_after_tls(caps)
        self.assertIn("X-MOAT-PROBE", caps)
        self.assertIn("IDLE", caps)
        self.assertNotIn("AUTH=CRAM-MD5", caps)
        self.assertEqual(len(caps), len(set(caps)), "duplicates: %s" % caps)

    def test_login_ok_has_capability_code(self):
        for listener in ("imaps", "imap"):
            with self.subTest(listener=listener):
                c = connect(self, listener)
                if listener == "imap":
                    c.starttls()
                _, tagged = c.cmd("a", login_line("demo"))
                m = re.match(rb"^a OK \[CAPABILITY ([^\]]*)\]", tagged)
                self.assertIsNotNone(m, tagged)
                caps = caps_of(m.group(1))
                self.assertIn("IMAP4REV1", caps)
                for bad in NEVER_AFTER_TLS:
                    self.assertNotIn(bad, caps)
                _, tagged = c.cmd("b", "SELECT INBOX")
                self.assertTrue(tagged.startswith(b"b OK"), tagged)


# ------------------------------------------------------------------ pre-auth

class TestPreauthCommands(unittest.TestCase):

    def test_noop(self):
        for listener in ("imaps", "imap"):
            with self.subTest(listener=listener):
                c = connect(self, listener)
                untagged, tagged = c.cmd("n1", "NOOP")
                self.assertEqual(untagged, [])
                self.assertTrue(tagged.startswith(b"n1 OK"), tagged)
                # Command names are case-insensitive.
                _, tagged = c.cmd("n2", "noop")
                self.assertTrue(tagged.startswith(b"n2 OK"), tagged)

    def test_id(self):
        for listener in ("imaps", "imap"):
            with self.subTest(listener=listener):
                c = connect(self, listener)
                untagged, tagged = c.cmd("i1", 'ID ("name" "moat-tests" "version" "1")')
                self.assertEqual(untagged, [b"* ID NIL\r\n"])
                self.assertTrue(tagged.startswith(b"i1 OK"), tagged)
                untagged, tagged = c.cmd("i2", "ID NIL")
                self.assertEqual(untagged, [b"* ID NIL\r\n"])
                self.assertTrue(tagged.startswith(b"i2 OK"), tagged)

    def test_logout(self):
        for listener in ("imaps", "imap"):
            with self.subTest(listener=listener):
                c = connect(self, listener)
                c.send("z LOGOUT\r\n")
                bye = c.line()
                self.assertTrue(bye.startswith(b"* BYE"), bye)
                tagged = c.line()
                self.assertTrue(tagged.startswith(b"z OK"), tagged)
                data, how = c.rest_until_eof()
                self.assertEqual(data, b"")
                self.assertIn(how, ("eof", "SSLEOFError", "SSLZeroReturnError",
                                    "ConnectionResetError"))

    def test_unknown_commands_bad_then_login(self):
        c = connect(self, "imaps")
        for tag, text in (("u1", "FOO"), ("u2", "SELECT INBOX"),
                          ("u3", "FETCH 1 (BODY[])"), ("u4", "ENABLE IMAP4rev2"),
                          ("u5", "LIST \"\" *")):
            untagged, tagged = c.cmd(tag, text)
            self.assertTrue(tagged.startswith(tag.encode() + b" BAD"), (text, tagged))
        _, tagged = c.cmd("a", login_line("demo"))
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        untagged, tagged = c.cmd("b", "SELECT INBOX")
        self.assertTrue(tagged.startswith(b"b OK"), tagged)
        self.assertIn(b"* 3 EXISTS\r\n", untagged)

    def test_unknown_command_before_tls_bad(self):
        c = connect(self, "imap")
        _, tagged = c.cmd("u1", "SELECT INBOX")
        self.assertTrue(tagged.startswith(b"u1 BAD"), tagged)
        _, tagged = c.cmd("u2", "NOOP")
        self.assertTrue(tagged.startswith(b"u2 OK"), tagged)
        c.starttls()
        _, tagged = c.cmd("a", login_line("demo"))
        self.assertTrue(tagged.startswith(b"a OK"), tagged)

    def test_authenticate_cancel(self):
        c = connect(self, "imaps")
        c.send("a AUTHENTICATE PLAIN\r\n")
        cont = c.line()
        self.assertTrue(cont.startswith(b"+"), cont)
        c.send("*\r\n")
        _, tagged = c.until("a")
        self.assertTrue(tagged.startswith(b"a BAD"), tagged)
        # AUTHENTICATE LOGIN cancelled at the password prompt.
        c.send("b AUTHENTICATE LOGIN\r\n")
        self.assertTrue(c.line().startswith(b"+"))
        c.send(b64("demo") + b"\r\n")
        self.assertTrue(c.line().startswith(b"+"))
        c.send("*\r\n")
        _, tagged = c.until("b")
        self.assertTrue(tagged.startswith(b"b BAD"), tagged)
        _, tagged = c.cmd("c", "NOOP")
        self.assertTrue(tagged.startswith(b"c OK"), tagged)
        _, tagged = c.cmd("d", login_line("demo"))
        self.assertTrue(tagged.startswith(b"d OK"), tagged)

    def test_authenticate_bad_base64(self):
        c = connect(self, "imaps")
        _, tagged = c.cmd("a", "AUTHENTICATE PLAIN !!notbase64!!")
        self.assertRegex(tagged, rb"^a (BAD|NO)\b")
        c.send("b AUTHENTICATE PLAIN\r\n")
        self.assertTrue(c.line().startswith(b"+"))
        c.send("%%%\r\n")
        _, tagged = c.until("b")
        self.assertRegex(tagged, rb"^b (BAD|NO)\b")
        # A PLAIN message without its NULs is not credentials either.
        _, tagged = c.cmd("c", "AUTHENTICATE PLAIN %s" % b64("demo").decode())
        self.assertRegex(tagged, rb"^c (BAD|NO)\b")
        _, tagged = c.cmd("d", login_line("demo"))
        self.assertTrue(tagged.startswith(b"d OK"), c.dump())

    def test_authzid_of_another_user_refused(self):
        # demo's credentials asking to act as idle1: the backend decides
        # (Dovecot refuses); moat must neither drop the authzid nor say OK.
        c = connect(self, "imaps")
        _, tagged = c.cmd("a", "AUTHENTICATE PLAIN %s"
                          % plain_b64("demo", PASSWORDS["demo"], authzid="idle1").decode())
        self.assertTrue(tagged.startswith(b"a NO"), c.dump())

    def test_empty_password_refused(self):
        c = connect(self, "imaps")
        _, tagged = c.cmd("a", 'LOGIN "demo" ""')
        self.assertRegex(tagged, rb"^a (NO|BAD)\b")
        _, tagged = c.cmd("b", login_line("demo"))
        self.assertTrue(tagged.startswith(b"b OK"), c.dump())

    def test_empty_line_and_tagless_junk(self):
        c = connect(self, "imaps")
        c.send("\r\n")
        resp = c.line()
        self.assertRegex(resp, rb"^\* BAD", resp)
        _, tagged = c.cmd("a", "NOOP")
        self.assertTrue(tagged.startswith(b"a OK"), c.dump())

    def test_relayed_after_login(self):
        # After login moat no longer answers itself: Dovecot's post-login
        # CAPABILITY (with SORT, THREAD=...) and its LOGOUT come through.
        c = connect(self, "imaps")
        _, tagged = c.cmd("a", login_line("demo"))
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        untagged, tagged = c.cmd("b", "CAPABILITY")
        self.assertTrue(tagged.startswith(b"b OK"), tagged)
        caps = caps_of(untagged[0][len(b"* CAPABILITY "):])
        self.assertIn("SORT", caps)
        self.assertFalse([x for x in caps if x.startswith("AUTH=")], caps)
        untagged, tagged = c.cmd("c", "SELECT INBOX")
        self.assertTrue(tagged.startswith(b"c OK"), tagged)

    def test_authenticate_unknown_mechanism(self):
        c = connect(self, "imaps")
        _, tagged = c.cmd("a", "AUTHENTICATE CRAM-MD5")
        self.assertRegex(tagged, rb"^a (NO|BAD)\b")
        _, tagged = c.cmd("b", "NOOP")
        self.assertTrue(tagged.startswith(b"b OK"), tagged)

    def test_pipelined_after_login(self):
        c = connect(self, "imaps")
        c.send("a %s\r\nb SELECT INBOX\r\nc UID FETCH 1:3 (BODY.PEEK[])\r\n"
               "d LOGOUT\r\n" % login_line("demo"))
        data, how = c.rest_until_eof(timeout=30)
        tags = re.findall(rb"(?m)^([abcd]) (OK|NO|BAD)\b", data)
        self.assertEqual(tags, [(b"a", b"OK"), (b"b", b"OK"), (b"c", b"OK"), (b"d", b"OK")],
                         c.dump())
        for uid in (1, 2, 3):
            self.assertIn(DOVECOT.message(uid, "demo"), data)
        self.assertIn(b"* 3 EXISTS\r\n", data)
        self.assertIn(b"* BYE", data)

    def test_pipelined_moat_and_backend_commands(self):
        # Commands moat answers, then LOGIN, then the backend's, in one write.
        c = connect(self, "imap")
        c.starttls()
        c.send("a NOOP\r\nb ID NIL\r\nc CAPABILITY\r\nd %s\r\ne EXAMINE INBOX\r\n"
               "f LOGOUT\r\n" % login_line("demo"))
        data, how = c.rest_until_eof(timeout=30)
        tags = re.findall(rb"(?m)^([a-f]) (OK|NO|BAD)\b", data)
        self.assertEqual([t for t, _ in tags], [b"a", b"b", b"c", b"d", b"e", b"f"], data)
        self.assertEqual({r for _, r in tags}, {b"OK"}, data)
        self.assertIn(b"* 3 EXISTS\r\n", data)

    def test_many_pipelined_commands(self):
        # 20000 commands (about 250 KiB) written as fast as moat takes them
        # while its answers are read (one thread, non-blocking): all
        # answered, in order, whatever moat's buffers.
        n = 20000
        c = connect(self, "imaps")
        out = b"".join(b"n%d NOOP\r\n" % i if i % 2 else b"n%d ID NIL\r\n" % i
                       for i in range(n))
        want = b"n%d OK" % (n - 1)
        got = bytearray()
        sock = c.sock
        sock.setblocking(False)
        deadline = time.monotonic() + harness.scaled(60)
        while want not in got:
            self.assertLess(time.monotonic(), deadline,
                            "%d bytes left to send, %d received" % (len(out), len(got)))
            r, w, _ = select.select([sock], [sock] if out else [], [], 0.5)
            if r or sock.pending():
                try:
                    chunk = sock.recv(65536)
                    self.assertTrue(chunk, "moat closed the connection")
                    got += chunk
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
            if w and out:
                try:
                    out = out[sock.send(out[:65536]):]
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass
        sock.setblocking(True)
        c.settimeout(30)
        c.buf = bytes(got[got.index(want):])
        c.line()
        tags = re.findall(rb"(?m)^(n\d+) OK\b", bytes(got))
        self.assertEqual(tags, [b"n%d" % i for i in range(n)])
        self.assertEqual(bytes(got).count(b"* ID NIL\r\n"), n // 2)
        _, tagged = c.cmd("a", login_line("demo"))
        self.assertTrue(tagged.startswith(b"a OK"), tagged)

    def test_pipelined_after_authenticate_sasl_ir(self):
        c = connect(self, "imap")
        c.starttls()
        c.send(b"a AUTHENTICATE PLAIN " + plain_b64("demo", PASSWORDS["demo"]) +
               b"\r\nb EXAMINE INBOX\r\nc UID FETCH 2 (BODY.PEEK[])\r\n")
        _, tagged = c.until("a")
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        untagged, tagged = c.until("b")
        self.assertTrue(tagged.startswith(b"b OK"), tagged)
        untagged, tagged = c.until("c")
        self.assertTrue(tagged.startswith(b"c OK"), tagged)
        self.assertIn(DOVECOT.message(2, "demo"), b"".join(untagged))

    def test_commands_split_into_single_bytes(self):
        # Every byte in its own write (and its own TLS record).
        for listener in ("imaps", "imap"):
            with self.subTest(listener=listener):
                c = connect(self, listener)
                c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

                def trickle(text):
                    for ch in text.encode():
                        c.send(bytes([ch]))
                        time.sleep(0.002)
                if listener == "imap":
                    trickle("s STARTTLS\r\n")
                    self.assertEqual(c.line(), b"s OK Begin TLS negotiation now\r\n")
                    c.sock = c.ctx.wrap_socket(c.sock, server_hostname="localhost")
                trickle("n NOOP\r\n")
                _, tagged = c.until("n")
                self.assertTrue(tagged.startswith(b"n OK"), tagged)
                trickle("a %s\r\nb EXAMINE INBOX\r\n" % login_line("demo"))
                _, tagged = c.until("a")
                self.assertTrue(tagged.startswith(b"a OK"), c.dump())
                untagged, tagged = c.until("b")
                self.assertTrue(tagged.startswith(b"b OK"), c.dump())
                self.assertIn(b"* 3 EXISTS\r\n", untagged)

    def test_client_gone_during_login(self):
        # The client closes right after LOGIN, while moat talks to the
        # backend; moat carries on serving others.
        for listener in ("imaps", "imap"):
            with self.subTest(listener=listener):
                for i in range(5):
                    c = connect(self, listener)
                    if listener == "imap":
                        c.starttls()
                    c.send("a %s\r\nb SELECT INBOX\r\n" % login_line("demo"))
                    c.close()
                c = connect(self, listener)
                if listener == "imap":
                    c.starttls()
                _, tagged = c.cmd("a", login_line("demo"))
                self.assertTrue(tagged.startswith(b"a OK"), c.dump())
        self.assertIsNone(MOAT.proc.poll(), "moat exited")

    def test_login_with_literals(self):
        # Synchronizing literals ("+" before each), non-synchronizing
        # (LITERAL+) and quoted strings with escapes, for a password with a
        # space, a quote and a backslash.
        pw = PASSWORDS["odd"].encode()
        c = connect(self, "imaps")
        c.send(b"a LOGIN {3}\r\n")
        self.assertTrue(c.line().startswith(b"+"))
        c.send(b"odd {%d}\r\n" % len(pw))
        self.assertTrue(c.line().startswith(b"+"))
        c.send(pw + b"\r\n")
        _, tagged = c.until("a")
        self.assertTrue(tagged.startswith(b"a OK"), c.dump())

        c = connect(self, "imaps")
        c.send(b"b LOGIN {3+}\r\nodd {%d+}\r\n%s\r\n" % (len(pw), pw))
        _, tagged = c.until("b")
        self.assertTrue(tagged.startswith(b"b OK"), c.dump())

        c = connect(self, "imaps")
        _, tagged = c.cmd("c", login_line("odd"))
        self.assertTrue(tagged.startswith(b"c OK"), c.dump())

        c = connect(self, "imaps")
        _, tagged = c.cmd("d", "AUTHENTICATE PLAIN %s"
                          % plain_b64("odd", PASSWORDS["odd"]).decode())
        self.assertTrue(tagged.startswith(b"d OK"), c.dump())


# ------------------------------------------------------------------ clients

class TestImaplib(unittest.TestCase):

    def session(self, m, user="demo"):
        typ, data = m.select("INBOX")
        self.assertEqual(typ, "OK")
        self.assertEqual(int(data[0]), 3)
        for uid in (1, 2, 3):
            typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
            self.assertEqual(typ, "OK", data)
            self.assertEqual(data[0][1], DOVECOT.message(uid, user), "UID %d" % uid)
        typ, data = m.search(None, "ALL")
        self.assertEqual(data, [b"1 2 3"])
        typ, _ = m.logout()
        self.assertEqual(typ, "BYE")

    def test_implicit_login(self):
        m = imaplib_ssl("imaps")
        try:
            self.assertEqual(m.login("demo", PASSWORDS["demo"])[0], "OK")
            self.session(m)
        finally:
            close_imaplib(m)

    def test_starttls_login(self):
        m = imaplib_starttls("imap")
        try:
            self.assertNotIn("STARTTLS", m.capabilities)
            self.assertNotIn("LOGINDISABLED", m.capabilities)
            self.assertIn("AUTH=PLAIN", m.capabilities)
            self.assertEqual(m.login("demo", PASSWORDS["demo"])[0], "OK")
            self.session(m)
        finally:
            close_imaplib(m)

    def test_implicit_authenticate_plain(self):
        m = imaplib_ssl("imaps")
        try:
            typ, _ = m.authenticate("PLAIN",
                                    lambda _: b"\0demo\0" + PASSWORDS["demo"].encode())
            self.assertEqual(typ, "OK")
            self.session(m)
        finally:
            close_imaplib(m)

    def test_starttls_authenticate_plain(self):
        m = imaplib_starttls("imap")
        try:
            typ, _ = m.authenticate("PLAIN",
                                    lambda _: b"\0demo\0" + PASSWORDS["demo"].encode())
            self.assertEqual(typ, "OK")
            self.session(m)
        finally:
            close_imaplib(m)

    def test_authenticate_plain_sasl_ir_raw(self):
        for listener in ("imaps", "imap"):
            with self.subTest(listener=listener):
                c = connect(self, listener)
                if listener == "imap":
                    c.starttls()
                _, tagged = c.cmd("a", "AUTHENTICATE PLAIN %s"
                                  % plain_b64("demo", PASSWORDS["demo"]).decode())
                self.assertTrue(tagged.startswith(b"a OK"), c.dump())
                untagged, tagged = c.cmd("b", "EXAMINE INBOX")
                self.assertTrue(tagged.startswith(b"b OK"), tagged)
                untagged, tagged = c.cmd("c", "UID FETCH 1 (BODY.PEEK[])")
                self.assertTrue(tagged.startswith(b"c OK"), tagged)
                self.assertIn(DOVECOT.message(1, "demo"), b"".join(untagged))

    def test_authenticate_plain_with_authzid_equal_to_user(self):
        c = connect(self, "imaps")
        _, tagged = c.cmd("a", "AUTHENTICATE PLAIN %s"
                          % plain_b64("demo", PASSWORDS["demo"], authzid="demo").decode())
        self.assertTrue(tagged.startswith(b"a OK"), c.dump())

    def test_authenticate_login_raw(self):
        for listener in ("imaps", "imap"):
            with self.subTest(listener=listener):
                c = connect(self, listener)
                if listener == "imap":
                    c.starttls()
                c.send("a AUTHENTICATE LOGIN\r\n")
                self.assertTrue(c.line().startswith(b"+"), c.dump())
                c.send(b64("demo") + b"\r\n")
                self.assertTrue(c.line().startswith(b"+"), c.dump())
                c.send(b64(PASSWORDS["demo"]) + b"\r\n")
                _, tagged = c.until("a")
                self.assertTrue(tagged.startswith(b"a OK"), c.dump())
                untagged, tagged = c.cmd("b", "EXAMINE INBOX")
                self.assertIn(b"* 3 EXISTS\r\n", untagged)

    def idle(self, m, user, uid_next):
        typ, data = m.select("INBOX")
        self.assertEqual(typ, "OK")
        self.assertEqual(int(data[0]), uid_next - 1)
        m.send(b"t IDLE\r\n")
        cont = m.readline()
        self.assertTrue(cont.startswith(b"+"), cont)
        new = make_message(uid_next, "%s idle %d" % (user, uid_next),
                           [b"Delivered while the client idles."])
        DOVECOT.deliver(user, "%d.M%dP1.idle" % (2000000000 + uid_next, uid_next), new)
        m.sock.settimeout(harness.scaled(10))
        seen = []
        while True:
            try:
                line = m.readline()
            except (socket.timeout, TimeoutError):
                self.fail("no EXISTS within 10s of the delivery; got %r" % seen)
            self.assertTrue(line, "connection closed during IDLE; got %r" % seen)
            seen.append(line)
            if line == b"* %d EXISTS\r\n" % uid_next:
                break
        m.send(b"DONE\r\n")
        while True:
            line = m.readline()
            self.assertTrue(line, "connection closed after DONE")
            if line.startswith(b"t "):
                break
        self.assertTrue(line.startswith(b"t OK"), line)
        m.sock.settimeout(harness.scaled(60))
        typ, data = m.uid("FETCH", str(uid_next), "(BODY.PEEK[])")
        self.assertEqual(typ, "OK", data)
        self.assertEqual(data[0][1], new)
        self.assertEqual(m.logout()[0], "BYE")

    def test_idle_implicit(self):
        m = imaplib_ssl("imaps")
        try:
            self.assertEqual(m.login("idle1", PASSWORDS["idle1"])[0], "OK")
            self.idle(m, "idle1", 2)
        finally:
            close_imaplib(m)

    def test_idle_starttls(self):
        m = imaplib_starttls("imap")
        try:
            self.assertEqual(m.login("idle2", PASSWORDS["idle2"])[0], "OK")
            self.idle(m, "idle2", 2)
        finally:
            close_imaplib(m)


class TestConcurrentLogins(unittest.TestCase):
    SESSIONS = 60

    def test_concurrent_logins(self):
        # Implicit and STARTTLS sessions, logging in at the same time, each
        # fetching a message afterwards.
        n = self.SESSIONS
        barrier = threading.Barrier(n, timeout=harness.scaled(120))
        results = [None] * n

        def session(i):
            m = None
            try:
                m = imaplib_ssl("imaps") if i % 2 else imaplib_starttls("imap")
                barrier.wait()
                if i % 3:
                    typ, _ = m.login("demo", PASSWORDS["demo"])
                else:
                    typ, _ = m.authenticate(
                        "PLAIN", lambda _: b"\0demo\0" + PASSWORDS["demo"].encode())
                assert typ == "OK", typ
                typ, data = m.select("INBOX", readonly=True)
                assert typ == "OK" and data == [b"3"], (typ, data)
                uid = 1 + i % 3
                typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
                assert typ == "OK", (typ, data)
                assert data[0][1] == DOVECOT.message(uid, "demo"), "UID %d differs" % uid
                typ, _ = m.logout()
                assert typ == "BYE", typ
                results[i] = "ok"
            except BaseException as e:
                results[i] = "%s: %s" % (type(e).__name__, e)
                barrier.abort()
            finally:
                if m is not None:
                    close_imaplib(m)

        threads = [threading.Thread(target=session, args=(i,), daemon=True)
                   for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(harness.scaled(240))
        failed = [r for r in results if r != "ok"]
        if failed:
            first = next((r for r in failed if r and
                          not r.startswith("BrokenBarrierError")), failed[0])
            self.fail("%d of %d sessions failed; first: %s" % (len(failed), n, first))


def curl(url, *extra, user="demo", pw=None, timeout=60):
    return harness.curl(url, user, PASSWORDS[user] if pw is None else pw, *extra,
                        timeout=timeout)


@unittest.skipUnless(shutil.which("curl"), "curl is not installed")
class TestCurl(unittest.TestCase):

    def check(self, scheme, listener, *extra):
        base = "%s://localhost:%d" % (scheme, MOAT.port(listener))
        r = curl(base + "/", *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rb'\* LIST \([^)]*\) "[./]" INBOX\r\n')
        r = curl(base + "/INBOX?ALL", *extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"* SEARCH 1 2 3\r\n")
        for uid in (1, 2, 3):
            r = curl(base + "/INBOX;UID=%d" % uid, *extra)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, DOVECOT.message(uid, "demo"), "UID %d" % uid)

    def test_imaps(self):
        self.check("imaps", "imaps")

    def test_imap_starttls(self):
        self.check("imap", "imap", "--ssl-reqd")

    def test_imap_without_tls_refused(self):
        # Control: without STARTTLS curl sees LOGINDISABLED and cannot log in.
        r = curl("imap://localhost:%d/INBOX;UID=1" % MOAT.port("imap"))
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertNotIn(DOVECOT.message(1, "demo"), r.stdout)

    def test_wrong_password(self):
        r = curl("imaps://localhost:%d/INBOX;UID=1" % MOAT.port("imaps"), pw=WRONG)
        self.assertEqual(r.returncode, 67, r.stderr)    # CURLE_LOGIN_DENIED


def s_client_starttls(port, send, *extra, timeout=30):
    return harness.s_client_starttls(port, "imap", send, *extra, timeout=timeout)


class TestOpenSSL(unittest.TestCase):

    def test_s_client_starttls(self):
        send = ("a %s\r\nb SELECT INBOX\r\nc LOGOUT\r\n" % login_line("demo")).encode()
        rc, out = s_client_starttls(MOAT.port("imap"), send)
        self.assertEqual(rc, 0, out)
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertRegex(out, r"(?m)^a OK \[CAPABILITY [^\]]*\]")
        self.assertIn("* 3 EXISTS", out)
        self.assertRegex(out, r"(?m)^b OK")
        self.assertRegex(out, r"(?m)^\* BYE")
        self.assertRegex(out, r"(?m)^c OK")

    def test_s_client_starttls_demo_login(self):
        # The brief's own transcript: LOGIN and LOGOUT through stdin.
        send = ("a LOGIN demo %s\r\nb LOGOUT\r\n" % PASSWORDS["demo"]).encode()
        rc, out = s_client_starttls(MOAT.port("imap"), send)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"(?m)^a OK")
        self.assertRegex(out, r"(?m)^\* BYE")
        self.assertRegex(out, r"(?m)^b OK")


MBSYNCRC = """\
IMAPAccount far
Host localhost
Port {port}
User demo
Pass {password}
SSLType {ssltype}
CertificateFile {ca}
Timeout 60

IMAPStore far-store
Account far

MaildirStore near-store
Path {near}/
Inbox {near}/INBOX
SubFolders Verbatim

Channel pull
Far :far-store:
Near :near-store:
Patterns INBOX
Sync Pull
Create Near
SyncState *
"""


@unittest.skipUnless(shutil.which("mbsync"), "mbsync (Debian: isync) is not installed")
class TestMbsync(unittest.TestCase):

    def sync(self, listener, ssltype):
        d = harness.new_dir("mbsync")
        near = os.path.join(d, "mail")
        os.makedirs(near)
        rc = os.path.join(d, "mbsyncrc")
        with open(rc, "w") as f:
            f.write(MBSYNCRC.format(port=MOAT.port(listener), password=PASSWORDS["demo"],
                                    ssltype=ssltype, ca=ca(), near=near))
        env = dict(os.environ, HOME=d)
        r = subprocess.run(["mbsync", "-V", "-c", rc, "pull"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                           timeout=harness.scaled(120))
        out = (r.stdout + r.stderr).decode(errors="replace")
        self.assertEqual(r.returncode, 0, out)
        found = {}
        for sub in ("new", "cur"):
            p = os.path.join(near, "INBOX", sub)
            for name in os.listdir(p) if os.path.isdir(p) else []:
                m = re.search(r",U=(\d+)", name)
                self.assertIsNotNone(m, name)
                with open(os.path.join(p, name), "rb") as f:
                    found[int(m.group(1))] = f.read()
        self.assertEqual(sorted(found), [1, 2, 3], out)
        for uid, data in found.items():
            # mbsync stores LF line ends and adds an X-TUID header.
            expected = DOVECOT.message(uid, "demo").replace(b"\r\n", b"\n")
            got = re.sub(rb"(?m)^X-TUID: [^\n]*\n", b"", data)
            self.assertEqual(subject_of(data), subject_of(expected))
            self.assertEqual(got, expected, "UID %d differs" % uid)

    def test_imaps(self):
        self.sync("imaps", "IMAPS")

    def test_starttls(self):
        self.sync("imap", "STARTTLS")


# ------------------------------------------------------------------ security

class TestStarttlsSecurity(unittest.TestCase):

    def dovecot_lines(self, user):
        return DOVECOT.user_log_lines(user)

    def test_login_before_starttls_refused(self):
        pw = PASSWORDS["priv"]
        c = connect(self, "imap")
        _, tagged = c.cmd("a", login_line("priv"))
        self.assertTrue(tagged.startswith(b"a NO [PRIVACYREQUIRED]"), tagged)
        # AUTHENTICATE: refused at once, not after a "+" that would ask the
        # client for its credentials in clear.
        c.send("b AUTHENTICATE PLAIN\r\n")
        first = c.line()
        self.assertTrue(first.startswith(b"b NO [PRIVACYREQUIRED]"), first)
        _, tagged = c.cmd("c", "AUTHENTICATE PLAIN %s" % plain_b64("priv", pw).decode())
        self.assertTrue(tagged.startswith(b"c NO [PRIVACYREQUIRED]"), tagged)
        c.send("d AUTHENTICATE LOGIN\r\n")
        first = c.line()
        self.assertTrue(first.startswith(b"d NO [PRIVACYREQUIRED]"), first)
        # Still usable; after STARTTLS the same account logs in.
        _, tagged = c.cmd("e", "NOOP")
        self.assertTrue(tagged.startswith(b"e OK"), tagged)
        c.starttls()
        _, tagged = c.cmd("f", login_line("priv"))
        self.assertTrue(tagged.startswith(b"f OK"), c.dump())
        # Dovecot saw exactly that one login for priv and nothing before it.
        deadline = time.monotonic() + harness.scaled(10)
        while not any("Login: user=<priv>" in l for l in self.dovecot_lines("priv")):
            self.assertLess(time.monotonic(), deadline, harness._read(DOVECOT.log_path))
            time.sleep(0.05)
        lines = self.dovecot_lines("priv")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("Login: user=<priv>, method=", lines[0])

    def test_backend_untouched_before_tls(self):
        # The down backend cannot explain a refusal: before TLS moat
        # answers itself, whatever state the backend is in.
        c = connect(self, "imap-down")
        _, tagged = c.cmd("a", login_line("demo"))
        self.assertTrue(tagged.startswith(b"a NO [PRIVACYREQUIRED]"), tagged)

    def test_starttls_command_injection(self):
        c = connect(self, "imap")
        c.send("a STARTTLS\r\nb CAPABILITY\r\n")
        first = c.line()
        self.assertEqual(first, b"a OK Begin TLS negotiation now\r\n", c.dump())
        self.assertEqual(c.buf, b"", "bytes in clear after the STARTTLS answer")
        c.sock = c.ctx.wrap_socket(c.sock, server_hostname="localhost")
        untagged, tagged = c.cmd("c", "NOOP")
        self.assertEqual(untagged, [], c.dump())
        self.assertTrue(tagged.startswith(b"c OK"), c.dump())
        _, tagged = c.cmd("d", "CAPABILITY")
        self.assertTrue(tagged.startswith(b"d OK"), c.dump())
        self.assertFalse([t for t in c.transcript if t.startswith(b"S: b ")], c.dump())

    def test_starttls_login_injection(self):
        # A LOGIN injected before the handshake must never run.
        c = connect(self, "imap")
        c.send("a STARTTLS\r\nb %s\r\n" % login_line("idle2"))
        self.assertEqual(c.line(), b"a OK Begin TLS negotiation now\r\n")
        self.assertEqual(c.buf, b"")
        c.sock = c.ctx.wrap_socket(c.sock, server_hostname="localhost")
        untagged, tagged = c.cmd("c", "NOOP")
        self.assertEqual(untagged, [], c.dump())
        self.assertTrue(tagged.startswith(b"c OK"), c.dump())
        # Not logged in: a mailbox command is refused by moat.
        _, tagged = c.cmd("d", "SELECT INBOX")
        self.assertTrue(tagged.startswith(b"d BAD"), c.dump())

    def test_abandoned_starttls(self):
        # STARTTLS and then nothing, a close, or bytes that are not TLS:
        # moat drops those and serves the next client.
        for i, junk in enumerate((None, b"", b"a LOGIN demo demo\r\n",
                                  b"\x16\x03\x01\x00\x05hello")):
            c = connect(self, "imap")
            c.send("s%d STARTTLS\r\n" % i)
            self.assertTrue(c.line().startswith(b"s%d OK" % i))
            if junk:
                c.send(junk)
                c.sock.shutdown(socket.SHUT_WR)
                data, how = c.rest_until_eof(timeout=20)
                self.assertNotIn(b"OK", data)
            c.close()
        c = connect(self, "imap")
        c.starttls()
        _, tagged = c.cmd("a", login_line("demo"))
        self.assertTrue(tagged.startswith(b"a OK"), c.dump())
        self.assertIsNone(MOAT.proc.poll(), "moat exited")

    def test_starttls_on_starttls_listener_down_backend(self):
        # STARTTLS is moat's own: it works when the backend is down, and
        # the login then fails as unavailable.
        c = connect(self, "imap-down")
        c.starttls()
        _, tagged = c.cmd("a", login_line("demo"))
        self.assertTrue(tagged.startswith(b"a NO [UNAVAILABLE]"), tagged)


# ------------------------------------------------------------------ failures

class TestFailures(unittest.TestCase):

    def test_wrong_then_right_password(self):
        for listener in ("imaps", "imap"):
            with self.subTest(listener=listener):
                start = log_mark()
                c = connect(self, listener)
                if listener == "imap":
                    c.starttls()
                t0 = time.monotonic()
                _, tagged = c.cmd("a", login_line("demo", WRONG))
                elapsed = time.monotonic() - t0
                self.assertTrue(tagged.startswith(b"a NO [AUTHENTICATIONFAILED]"), tagged)
                self.assertGreaterEqual(elapsed, SMALL_DELAY * 0.95)
                _, tagged = c.cmd("b", login_line("demo"))
                self.assertTrue(tagged.startswith(b"b OK"), c.dump())
                untagged, tagged = c.cmd("c", "EXAMINE INBOX")
                self.assertTrue(tagged.startswith(b"c OK"), tagged)
                self.assertIn(b"* 3 EXISTS\r\n", untagged)
                ev = wait_login_events("demo", 2, start)
                self.assertEqual([e.get("result") for e in ev[:2]], ["failed", "ok"], ev)

    def test_wrong_authenticate_then_right(self):
        c = connect(self, "imaps")
        _, tagged = c.cmd("a", "AUTHENTICATE PLAIN %s" % plain_b64("demo", WRONG).decode())
        self.assertTrue(tagged.startswith(b"a NO [AUTHENTICATIONFAILED]"), tagged)
        c.send("b AUTHENTICATE PLAIN\r\n")
        self.assertTrue(c.line().startswith(b"+"))
        c.send(plain_b64("demo", PASSWORDS["demo"]) + b"\r\n")
        _, tagged = c.until("b")
        self.assertTrue(tagged.startswith(b"b OK"), c.dump())

    def test_unknown_user(self):
        c = connect(self, "imaps")
        _, tagged = c.cmd("a", 'LOGIN "nosuchuser" "whatever"')
        self.assertTrue(tagged.startswith(b"a NO [AUTHENTICATIONFAILED]"), tagged)

    def test_too_many_failures_bye(self):
        start = log_mark()
        c = connect(self, "imaps")
        for i in range(MAX_FAILURES - 1):
            tag = "f%d" % i
            _, tagged = c.cmd(tag, login_line("demo", WRONG))
            self.assertTrue(tagged.startswith(tag.encode() + b" NO [AUTHENTICATIONFAILED]"),
                            tagged)
        c.send("last %s\r\n" % login_line("demo", WRONG))
        data, how = c.rest_until_eof(timeout=20)
        self.assertIn(how, ("eof", "SSLEOFError", "SSLZeroReturnError",
                            "ConnectionResetError"), (how, data))
        self.assertRegex(data, rb"(?m)^\* BYE ")
        self.assertTrue(data.endswith(b"\r\n"), data)
        self.assertNotRegex(data, rb"(?m)^last OK")
        # The last attempt may get its NO before the BYE; nothing else.
        for l in data.splitlines():
            self.assertRegex(l, rb"^(\* BYE |last NO )", data)
        ev = wait_login_events("demo", MAX_FAILURES, start)
        self.assertEqual([e.get("result") for e in ev], ["failed"] * MAX_FAILURES, ev)

    def test_failure_delay_grows(self):
        # auth_failure_delay 600ms: the first NO comes after >= 600ms, the
        # second after >= 1200ms (Dovecot's own delay is off, it answers
        # within ~0.5s).
        c = connect(self, "imaps-slow")
        times = []
        for i in range(2):
            t0 = time.monotonic()
            _, tagged = c.cmd("f%d" % i, login_line("demo", WRONG))
            times.append(time.monotonic() - t0)
            self.assertTrue(tagged.startswith(b"f%d NO [AUTHENTICATIONFAILED]" % i), tagged)
        self.assertGreaterEqual(times[0], SLOW_DELAY * 0.95, times)
        self.assertGreaterEqual(times[1], 2 * SLOW_DELAY * 0.95, times)
        _, tagged = c.cmd("ok", login_line("demo"))
        self.assertTrue(tagged.startswith(b"ok OK"), c.dump())
        # A new connection starts again at 1x.
        c2 = connect(self, "imaps-slow")
        t0 = time.monotonic()
        _, tagged = c2.cmd("g", login_line("demo", WRONG))
        t = time.monotonic() - t0
        self.assertTrue(tagged.startswith(b"g NO [AUTHENTICATIONFAILED]"), tagged)
        self.assertGreaterEqual(t, SLOW_DELAY * 0.95)
        self.assertLess(t, harness.scaled(2 * SLOW_DELAY), "second connection waited %.2fs" % t)

    def test_backend_down_unavailable(self):
        for listener in ("imaps-down", "imap-down"):
            with self.subTest(listener=listener):
                before = MOAT.log().count("event=backend_error")
                start = log_mark()
                c = connect(self, listener)
                self.assertIsNotNone(GREETING_RX.match(c.greeting_line), c.greeting_line)
                if listener == "imap-down":
                    c.starttls()
                # moat's own commands work without the backend.
                untagged, tagged = c.cmd("n", "CAPABILITY")
                self.assertTrue(tagged.startswith(b"n OK"), tagged)
                self.assertIn("IDLE", caps_of(untagged[0][len(b"* CAPABILITY "):]))
                _, tagged = c.cmd("a", login_line("demo"))
                self.assertTrue(tagged.startswith(b"a NO [UNAVAILABLE]"), tagged)
                _, tagged = c.cmd("p", "NOOP")
                self.assertTrue(tagged.startswith(b"p OK"), tagged)
                MOAT.wait_log(r"event=backend_error[^\n]*listener=%s\b" % re.escape(listener),
                              start=start)
                self.assertGreater(MOAT.log().count("event=backend_error"), before)
                ev = wait_login_events("demo", 1, start)
                self.assertEqual(ev[0].get("result"), "unavailable", ev)

    def test_overlong_line(self):
        c = connect(self, "imaps")
        c.send("a LOGIN %s %s\r\n" % ("u" * 20000, "p" * 10))
        resp = c.response()
        self.assertRegex(resp, rb"^(a|\*) BAD", resp[:200])
        _, tagged = c.cmd("b", "NOOP")
        self.assertTrue(tagged.startswith(b"b OK"), tagged)
        _, tagged = c.cmd("c", login_line("demo"))
        self.assertTrue(tagged.startswith(b"c OK"), c.dump()[:2000])

    def test_overlong_synchronizing_literal(self):
        c = connect(self, "imaps")
        c.send("a LOGIN {20000}\r\n")
        resp = c.line()
        self.assertFalse(resp.startswith(b"+"), "moat asked for a 20000-byte literal")
        self.assertRegex(resp, rb"^(a|\*) BAD", resp)
        _, tagged = c.cmd("b", "NOOP")
        self.assertTrue(tagged.startswith(b"b OK"), tagged)
        _, tagged = c.cmd("c", login_line("demo"))
        self.assertTrue(tagged.startswith(b"c OK"), tagged)

    def test_max_command_setting(self):
        # 1900 bytes: over imaps-small's 1k, within imaps's default 8k
        # (there Dovecot refuses the unknown user).
        line = "x LOGIN %s %s\r\n" % ("v" * 900, "w" * 900)
        c = connect(self, "imaps-small")
        c.send(line)
        resp = c.response()
        self.assertRegex(resp, rb"^(x|\*) BAD", resp[:200])
        _, tagged = c.cmd("y", login_line("demo"))
        self.assertTrue(tagged.startswith(b"y OK"), tagged)
        c = connect(self, "imaps")
        c.send(line)
        _, tagged = c.until("x")
        self.assertTrue(tagged.startswith(b"x NO [AUTHENTICATIONFAILED]"), tagged)

    def test_preauth_timeout(self):
        c = connect(self, "imaps-timeout")
        t0 = time.monotonic()
        data, how = c.rest_until_eof(timeout=15)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, harness.scaled(10), (data, how))
        self.assertIn(how, ("eof", "SSLEOFError", "SSLZeroReturnError",
                            "ConnectionResetError"), (how, data))
        if data:
            self.assertTrue(data.startswith(b"* BYE"), data)

    def test_preauth_timeout_not_after_login(self):
        c = connect(self, "imaps-timeout")
        _, tagged = c.cmd("a", login_line("demo"))
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        time.sleep(2.0)
        untagged, tagged = c.cmd("b", "EXAMINE INBOX")
        self.assertTrue(tagged.startswith(b"b OK"), c.dump())
        self.assertIn(b"* 3 EXISTS\r\n", untagged)


# ------------------------------------------------------------------ logging

class TestLoginLog(unittest.TestCase):
    """A moat of its own at log_level = debug: the most it ever logs."""

    moat = None

    @classmethod
    def setUpClass(cls):
        fast = {"auth_failure_delay": "100ms"}
        cls.moat = harness.Moat([
            harness.Listener("imaps", "imap", DOVECOT.imap_port, options=fast),
            harness.Listener("imap", "imap", DOVECOT.imap_port, tls="starttls",
                             options=fast),
        ], log_level="debug", name="moat-imap-debug").start()

    @classmethod
    def tearDownClass(cls):
        if cls.moat is not None:
            cls.moat.stop()

    def client(self, listener):
        c = Client(self.moat.port(listener), tls=(listener == "imaps"))
        self.addCleanup(c.close)
        self.assertTrue(c.greeting().startswith(b"* OK"))
        if listener == "imap":
            c.starttls()
        return c

    def test_password_never_logged(self):
        pw = PASSWORDS["secret"]
        start = len(self.moat.log())
        for listener in ("imaps", "imap"):
            c = self.client(listener)
            _, t = c.cmd("a", login_line("secret"))
            self.assertTrue(t.startswith(b"a OK"), t)
            c = self.client(listener)
            _, t = c.cmd("a", login_line("secret", WRONG))
            self.assertTrue(t.startswith(b"a NO"), t)
            c.send(b"b LOGIN secret {%d}\r\n" % len(pw))
            self.assertTrue(c.line().startswith(b"+"))
            c.send(pw.encode() + b"\r\n")
            _, t = c.until("b")
            self.assertTrue(t.startswith(b"b OK"), t)
            c = self.client(listener)
            _, t = c.cmd("a", "AUTHENTICATE PLAIN %s" % plain_b64("secret", pw).decode())
            self.assertTrue(t.startswith(b"a OK"), t)
            c = self.client(listener)
            c.send("a AUTHENTICATE PLAIN\r\n")
            self.assertTrue(c.line().startswith(b"+"))
            c.send(plain_b64("secret", pw) + b"\r\n")
            _, t = c.until("a")
            self.assertTrue(t.startswith(b"a OK"), t)
            c = self.client(listener)
            c.send("a AUTHENTICATE LOGIN\r\n")
            self.assertTrue(c.line().startswith(b"+"))
            c.send(b64("secret") + b"\r\n")
            self.assertTrue(c.line().startswith(b"+"))
            c.send(b64(pw) + b"\r\n")
            _, t = c.until("a")
            self.assertTrue(t.startswith(b"a OK"), t)
            c.close()
        # 6 attempts per listener, all logged.
        deadline = time.monotonic() + harness.scaled(10)
        while len(login_events(self.moat.log()[start:], "secret")) < 12:
            self.assertLess(time.monotonic(), deadline, self.moat.log())
            time.sleep(0.05)
        ev = login_events(self.moat.log()[start:], "secret")
        self.assertEqual(sorted(e.get("result") for e in ev), ["failed"] * 2 + ["ok"] * 10)
        log = self.moat.log()
        for what, secret in (("password", pw), ("wrong password", WRONG),
                             ("PLAIN blob", plain_b64("secret", pw).decode()),
                             ("base64 password", b64(pw).decode()),
                             ("wrong PLAIN blob", plain_b64("secret", WRONG).decode())):
            self.assertNotIn(secret, log, "%s in moat's log" % what)

    def test_user_name_cannot_forge_log_lines(self):
        # A user name (as a literal) with a quote, a space, CR LF and text
        # that looks like a log line: still one line in moat's log.
        start = len(self.moat.log())
        evil = (b'x"y z\r\n2030-01-01T00:00:00.000Z level=info event=login '
                b'listener=forged user="admin" result=ok')
        c = self.client("imaps")
        c.send(b"a LOGIN {%d}\r\n" % len(evil))
        self.assertTrue(c.line().startswith(b"+"), c.dump())
        c.send(evil + b" {2}\r\n")
        self.assertTrue(c.line().startswith(b"+"), c.dump())
        c.send(b"pw\r\n")
        _, tagged = c.until("a")
        self.assertRegex(tagged, rb"^a (NO|BAD)\b")
        _, tagged = c.cmd("b", login_line("secret"))
        self.assertTrue(tagged.startswith(b"b OK"), tagged)
        deadline = time.monotonic() + harness.scaled(10)
        while not login_events(self.moat.log()[start:], "secret"):
            self.assertLess(time.monotonic(), deadline, self.moat.log()[start:])
            time.sleep(0.05)
        lines = self.moat.log()[start:].splitlines()
        forged = [l for l in lines if "forged" in l]
        self.assertLessEqual(len(forged), 1, forged)
        for l in lines:
            if l.strip():
                self.assertRegex(l, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", "log line %r" % l)
        self.assertFalse([l for l in lines if l.startswith("2030-")], lines)

    def test_login_event_fields(self):
        start = len(self.moat.log())
        c = self.client("imaps")
        _, t = c.cmd("a", login_line("secret"))
        self.assertTrue(t.startswith(b"a OK"), t)
        deadline = time.monotonic() + harness.scaled(10)
        while not login_events(self.moat.log()[start:], "secret"):
            self.assertLess(time.monotonic(), deadline, self.moat.log()[start:])
            time.sleep(0.05)
        ev = login_events(self.moat.log()[start:], "secret")
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual(ev[0].get("result"), "ok", ev)
        self.assertEqual(ev[0].get("listener"), "imaps", ev)


# ------------------------------------------------------------------ transparent

class TestTransparent(unittest.TestCase):

    def test_dovecot_greeting_and_relay(self):
        c = connect(self, "imaps-transparent")
        self.assertIn(b"Dovecot", c.greeting_line)
        m = GREETING_RX.match(c.greeting_line)
        self.assertIsNotNone(m, c.greeting_line)
        caps = caps_of(m.group(1))
        for bad in NEVER_AFTER_TLS:
            self.assertNotIn(bad, caps)
        _, tagged = c.cmd("a", login_line("demo"))
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        # Lines in a message that look like capabilities must pass as they are.
        untagged, tagged = c.cmd("b", "EXAMINE INBOX")
        self.assertIn(b"* 3 EXISTS\r\n", untagged)
        untagged, tagged = c.cmd("c", "UID FETCH 2 (BODY.PEEK[])")
        self.assertTrue(tagged.startswith(b"c OK"), tagged)
        self.assertIn(DOVECOT.message(2, "demo"), b"".join(untagged))

    def test_imaplib(self):
        m = imaplib_ssl("imaps-transparent")
        try:
            self.assertIn("Dovecot", m.welcome.decode())
            self.assertEqual(m.login("demo", PASSWORDS["demo"])[0], "OK")
            typ, data = m.select("INBOX", readonly=True)
            self.assertEqual(int(data[0]), 3)
            for uid in (1, 2, 3):
                typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
                self.assertEqual(data[0][1], DOVECOT.message(uid, "demo"))
            self.assertEqual(m.logout()[0], "BYE")
        finally:
            close_imaplib(m)

    def test_fake_backend_filtered(self):
        c = connect(self, "imaps-fake-transp")
        m = GREETING_RX.match(c.greeting_line)
        self.assertIsNotNone(m, c.greeting_line)
        self.assertEqual(m.group(2), FAKE_GREETING_TEXT.encode())
        caps = caps_of(m.group(1))
        self.assertNotIn("STARTTLS", caps)
        self.assertNotIn("LOGINDISABLED", caps)
        for keep in ("IMAP4REV1", "AUTH=PLAIN", "IDLE", "X-MOAT-PROBE"):
            self.assertIn(keep, caps)
        untagged, tagged = c.cmd("a", "CAPABILITY")
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        self.assertEqual(len(untagged), 1, untagged)
        caps = caps_of(untagged[0][len(b"* CAPABILITY "):])
        self.assertNotIn("STARTTLS", caps)
        self.assertNotIn("LOGINDISABLED", caps)
        for keep in ("IMAP4REV1", "AUTH=PLAIN", "IDLE", "X-MOAT-PROBE"):
            self.assertIn(keep, caps)
        _, tagged = c.cmd("b", 'LOGIN "fake" "fake-pass"')
        self.assertTrue(tagged.startswith(b"b OK"), tagged)

    def test_fake_backend_split_capability(self):
        # The backend writes its CAPABILITY response in three pieces.
        c = connect(self, "imaps-fake-transp")
        untagged, tagged = c.cmd("x", "XSPLIT")
        self.assertTrue(tagged.startswith(b"x OK"), tagged)
        self.assertEqual(len(untagged), 1, untagged)
        caps = caps_of(untagged[0][len(b"* CAPABILITY "):])
        self.assertEqual(caps, ["IMAP4REV1", "IDLE"], untagged)

    def test_non_transparent_fake_login(self):
        # moat logs in to the fake backend itself (AUTHENTICATE PLAIN).
        c = connect(self, "imaps-fake")
        _, tagged = c.cmd("a", 'LOGIN "fake" "fake-pass"')
        self.assertTrue(tagged.startswith(b"a OK"), tagged)
        m = re.match(rb"^a OK \[CAPABILITY ([^\]]*)\]", tagged)
        self.assertIsNotNone(m, tagged)
        self.assertNotIn("STARTTLS", caps_of(m.group(1)))
        _, tagged = c.cmd("b", 'NOOP')
        self.assertTrue(tagged.startswith(b"b OK"), tagged)


if __name__ == "__main__":
    unittest.main(verbosity=2)
