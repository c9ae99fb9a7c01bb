"""TLS from moat to its backend: [backend NAME] tls = starttls | implicit,
ca, tls_name, against a real Dovecot with ssl = yes.

One Dovecot serves TLS with a certificate for "backend.test" issued by the
test CA: STARTTLS on its plaintext IMAP and POP3 ports, implicit TLS on
IMAPS and POP3S ports of its own. A second Dovecot has no TLS at all. A
CA of its own (made here with openssl) plays the wrong CA.

What Dovecot logs proves the wire: a login over TLS ends in ", TLS" (or
", TLS, session=..."), a handshake moat refused shows up as an SSL alert
with "no auth attempts", so the password never reached it.
"""

import imaplib
import os
import poplib
import re
import subprocess
import time
import unittest

import harness

TLS_DOVECOT = None
PLAIN_DOVECOT = None
IMAPS_PORT = None
POP3S_PORT = None
WRONG_CA = None
MOAT = None


def backend_section(name, tls, imap_port, pop3_port, ca, tls_name="backend.test"):
    lines = ["[backend %s]" % name, "imap = 127.0.0.1:%d" % imap_port]
    if pop3_port:
        lines.append("pop3 = 127.0.0.1:%d" % pop3_port)
    lines += ["tls = %s" % tls, "ca = %s" % ca, "tls_name = %s" % tls_name,
              "check_interval = 0", ""]
    return "\n".join(lines)


def setUpModule():
    global TLS_DOVECOT, PLAIN_DOVECOT, IMAPS_PORT, POP3S_PORT, WRONG_CA, MOAT
    chain, key = harness.mkcert("backend-tls", "ec", 30, "backend.test", "DNS:backend.test")
    IMAPS_PORT, POP3S_PORT = harness.free_port(), harness.free_port()
    TLS_DOVECOT = harness.Dovecot(name="dovecot-tls", extra_conf="""
ssl = yes
ssl_cert = <%s
ssl_key = <%s
service imap-login {
  inet_listener imaps {
    address = 127.0.0.1
    port = %d
  }
}
service pop3-login {
  inet_listener pop3s {
    address = 127.0.0.1
    port = %d
  }
}
""" % (chain, key, IMAPS_PORT, POP3S_PORT)).start()
    harness.wait_port(IMAPS_PORT, harness.scaled(10))
    harness.wait_port(POP3S_PORT, harness.scaled(10))
    PLAIN_DOVECOT = harness.Dovecot(name="dovecot-plain").start()
    d = harness.new_dir("wrong-ca")
    WRONG_CA = os.path.join(d, "ca.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                        os.path.join(d, "ca.key"), "-out", WRONG_CA, "-days", "30",
                        "-subj", "/CN=not the test CA"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr
    ca = harness.certs().ca
    t = TLS_DOVECOT
    extra = "\n".join([
        backend_section("starttls", "starttls", t.imap_port, t.pop3_port, ca),
        backend_section("implicit", "implicit", IMAPS_PORT, POP3S_PORT, ca),
        backend_section("wrongca", "starttls", t.imap_port, t.pop3_port, WRONG_CA),
        backend_section("wrongname", "implicit", IMAPS_PORT, POP3S_PORT, ca,
                        tls_name="other.test"),
        backend_section("notls", "starttls", PLAIN_DOVECOT.imap_port,
                        PLAIN_DOVECOT.pop3_port, ca),
    ])
    L = harness.Listener
    ls = []
    for name in ("starttls", "implicit", "wrongca", "wrongname", "notls"):
        ls.append(L(name, "imap", name))
        ls.append(L(name + "-pop", "pop3", name))
    MOAT = harness.Moat(ls, extra=extra, options={"auth_fail_limit": "0"}).start()


def tearDownModule():
    for x in (MOAT, TLS_DOVECOT, PLAIN_DOVECOT):
        if x is not None:
            x.stop()


def dovecot_lines(dv, start):
    return harness._read(dv.log_path)[start:].splitlines()


def log_size(dv):
    return len(harness._read(dv.log_path))


def wait_dovecot(dv, start, pattern, timeout=10):
    deadline = time.monotonic() + harness.scaled(timeout)
    rx = re.compile(pattern)
    while True:
        found = [l for l in dovecot_lines(dv, start) if rx.search(l)]
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("no /%s/ in Dovecot's log:\n%s"
                                 % (pattern, "\n".join(dovecot_lines(dv, start))))
        time.sleep(0.05)


def imap_login(listener):
    c = imaplib.IMAP4_SSL(harness.LOOPBACK, MOAT.port(listener),
                          ssl_context=harness.client_context())
    try:
        typ, data = c.login("demo", "demo")
    except imaplib.IMAP4.error as e:
        c.shutdown()
        return None, str(e)
    return c, data


class TestTlsBackends(unittest.TestCase):

    def check_imap(self, listener, proto_login):
        start = log_size(TLS_DOVECOT)
        c, data = imap_login(listener)
        self.assertIsNotNone(c, data)
        try:
            typ, data = c.select("INBOX")
            self.assertEqual(typ, "OK")
            typ, data = c.fetch("1", "(BODY.PEEK[])")
            self.assertEqual(typ, "OK")
            self.assertEqual(data[0][1], TLS_DOVECOT.message(1))
        finally:
            c.logout()
        # Dovecot saw the login inside TLS
        lines = wait_dovecot(TLS_DOVECOT, start, r"%s: Info: Login: user=<demo>" % proto_login)
        self.assertRegex(lines[0], r", TLS(,|$)", lines[0])

    def check_pop3(self, listener):
        start = log_size(TLS_DOVECOT)
        p = poplib.POP3_SSL(harness.LOOPBACK, MOAT.port(listener),
                            context=harness.client_context())
        try:
            p.user("demo")
            self.assertTrue(p.pass_("demo").startswith(b"+OK"))
            count, _ = p.stat()
            self.assertEqual(count, 3)
            _, lines, _ = p.retr(1)
            self.assertEqual(b"\r\n".join(lines) + b"\r\n", TLS_DOVECOT.message(1))
        finally:
            p.quit()
        lines = wait_dovecot(TLS_DOVECOT, start, r"pop3-login: Info: Login: user=<demo>")
        self.assertRegex(lines[0], r", TLS(,|$)", lines[0])

    def test_imap_starttls(self):
        self.check_imap("starttls", "imap-login")
        self.assertRegex(MOAT.log(), r'event=login listener=starttls [^\n]*result=ok '
                                     r'backend=starttls')

    def test_imap_implicit(self):
        self.check_imap("implicit", "imap-login")

    def test_pop3_stls(self):
        self.check_pop3("starttls-pop")

    def test_pop3_implicit(self):
        self.check_pop3("implicit-pop")

    def refused(self, listener, pattern, dv):
        start, mstart = log_size(dv), len(MOAT.log())
        c, data = imap_login(listener)
        self.assertIsNone(c, "login through %s should have failed" % listener)
        self.assertIn("UNAVAILABLE", data)
        line = MOAT.wait_log(r"event=login listener=%s [^\n]*result=unavailable[^\n]*\n"
                             % listener, start=mstart).group(0)
        self.assertRegex(line, pattern)
        # the password never reached the backend
        time.sleep(0.3)
        self.assertFalse([l for l in dovecot_lines(dv, start) if "user=<demo>" in l],
                         "\n".join(dovecot_lines(dv, start)))
        return line

    def test_wrong_ca_refused(self):
        self.refused("wrongca", r"certificate did not verify: The certificate is not "
                                r"correctly signed by the trusted CA", TLS_DOVECOT)
        wait_dovecot(TLS_DOVECOT, 0, r"alert unknown ca")

    def test_wrong_name_refused(self):
        self.refused("wrongname", r"certificate did not verify: The certificate Common Name "
                                  r"\(CN\) does not match", TLS_DOVECOT)

    def test_backend_without_starttls(self):
        self.refused("notls", r'reason="backend does not offer STARTTLS"', PLAIN_DOVECOT)

    def test_pop3_backend_without_stls(self):
        start, mstart = log_size(PLAIN_DOVECOT), len(MOAT.log())
        p = poplib.POP3_SSL(harness.LOOPBACK, MOAT.port("notls-pop"),
                            context=harness.client_context())
        try:
            p.user("demo")
            with self.assertRaises(poplib.error_proto) as cm:
                p.pass_("demo")
            self.assertIn(b"[SYS/TEMP]", cm.exception.args[0])
        finally:
            p.close()
        MOAT.wait_log(r'event=login listener=notls-pop [^\n]*result=unavailable[^\n]*'
                      r'reason="backend does not offer STLS"', start=mstart)
        self.assertFalse([l for l in dovecot_lines(PLAIN_DOVECOT, start) if "user=<demo>" in l])


class TestConfig(unittest.TestCase):

    def check(self, text, want):
        d = harness.new_dir("cfg-tls")
        path = os.path.join(d, "moat.ini")
        c = harness.certs()
        with open(path, "w") as f:
            f.write("[tls]\ncertificate = %s\nkey = %s\n%s" % (c.fullchain, c.key, text))
        r = harness.run_moat_cli(["-t", "-c", path])
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn(want % {"path": path}, r.stderr)

    def test_tls_needs_name(self):
        self.check("[backend a]\nimap = 192.0.2.1:143\ntls = starttls\n[listener x]\n"
                   "address = 127.0.0.1:1\nprotocol = imap\nbackend = a\n",
                   "%(path)s:6: [backend a] tls = starttls needs tls_name")

    def test_unreadable_ca(self):
        self.check("[backend a]\nimap = 192.0.2.1:993\ntls = implicit\nca = /nonexistent.pem\n"
                   "tls_name = mail.example.org\n[listener x]\naddress = 127.0.0.1:1\n"
                   "protocol = imap\nbackend = a\n",
                   "%(path)s:6: [backend a] CA file /nonexistent.pem")

    def test_remote_plaintext_needs_insecure(self):
        self.check("[backend a]\nimap = 192.0.2.1:143\n[listener x]\naddress = 127.0.0.1:1\n"
                   "protocol = imap\nbackend = a\n",
                   "%(path)s:5: [backend a] imap = 192.0.2.1:143 is not on this host")


if __name__ == "__main__":
    unittest.main()
