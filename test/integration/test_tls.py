"""moat's TLS layer, seen from real clients: openssl s_client, curl,
sslscan and Python's ssl/imaplib/poplib.

One Dovecot (demo/demo, three messages) is the backend of every moat here.

Certificates (all from the test CA):

  default   [tls]'s: ECDSA P-256, CN localhost, DNS:localhost (harness)
  rsa       RSA 2048, CN localhost, DNS:localhost: default's "RSA twin"
  mail      ECDSA P-256, CN mail.example.test, DNS:mail.example.test
  wild      ECDSA P-256, CN wildcard.example.test, DNS:*.example.test

The shared moat (MOAT, default policy) has these listeners:

  imaps      implicit imap, every certificate
  imaps2     the same again (its own ticket keys)
  pop3s      implicit pop3
  imap       starttls imap
  pop3       starttls pop3
  mailfirst  implicit imap, certificates = mail wild
  rsafirst   implicit imap, certificates = rsa default
  ccreq      implicit imap, client_certificate = required (test CA)
  ccopt      implicit imap, client_certificate = optional (test CA)

Policy classes start moats of their own ([tls] is global):

  TestTls13Only        min_version 1.3, groups secp384r1, tls13_ciphers
                       TLS_AES_256_GCM_SHA384, ticket_lifetime 5m
  TestClientCipherOrder  prefer_server_ciphers no, session_tickets no,
                       tls12_ciphers in IANA names, groups by alias names

TestConfigCheck runs `moat -t -c FILE` on broken configurations.
"""

import datetime
import imaplib
import os
import poplib
import re
import shutil
import socket
import ssl
import subprocess
import time
import unittest
import xml.etree.ElementTree as ET

import harness

LOOPBACK = harness.LOOPBACK

DOVECOT = None
MOAT = None
CERTS = {}          # name -> (chain path, key path), besides "default"

MAIL_NAME = "mail.example.test"
WILD_CN = "wildcard.example.test"

# What moat may ever negotiate.
TLS13_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256"}
TLS12_SUITES = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"}


def ca():
    return harness.certs().ca


def cert_sections(names):
    """[certificate NAME] sections for the given names of CERTS."""
    out = []
    for n in names:
        pem, key = CERTS[n]
        out += ["[certificate %s]" % n, "certificate = %s" % pem, "key = %s" % key, ""]
    return "\n".join(out)


def setUpModule():
    global DOVECOT, MOAT
    harness.certs()
    CERTS["rsa"] = harness.mkcert("tls-rsa", "rsa", 365, "localhost", "DNS:localhost",
                                  "IP:127.0.0.1")
    CERTS["mail"] = harness.mkcert("tls-mail", "ec", 365, MAIL_NAME, "DNS:" + MAIL_NAME)
    CERTS["wild"] = harness.mkcert("tls-wild", "ec", 365, WILD_CN, "DNS:*.example.test")
    CERTS["alice"] = harness.mkcert("tls-alice", "client", 365, "alice")
    DOVECOT = harness.Dovecot(name="dovecot-tls").start()
    imap, pop3 = DOVECOT.imap_port, DOVECOT.pop3_port
    client_ca = {"client_ca": ca()}
    MOAT = harness.Moat([
        harness.Listener("imaps", "imap", imap),
        harness.Listener("imaps2", "imap", imap),
        harness.Listener("pop3s", "pop3", pop3),
        harness.Listener("imap", "imap", imap, tls="starttls"),
        harness.Listener("pop3", "pop3", pop3, tls="starttls"),
        harness.Listener("mailfirst", "imap", imap, options={"certificates": "mail wild"}),
        harness.Listener("rsafirst", "imap", imap, options={"certificates": "rsa default"}),
        harness.Listener("ccreq", "imap", imap,
                         options=dict(client_certificate="required", **client_ca)),
        harness.Listener("ccopt", "imap", imap,
                         options=dict(client_certificate="optional", **client_ca)),
    ], name="moat-tls", extra=cert_sections(["rsa", "mail", "wild"])).start()


def tearDownModule():
    rc = 0
    if MOAT is not None:
        rc = MOAT.stop(timeout=60)
    if DOVECOT is not None:
        DOVECOT.stop()
    if MOAT is not None and rc != 0:
        raise AssertionError("shared moat exited with status %s; log tail:\n%s"
                             % (rc, "\n".join(MOAT.log().splitlines()[-40:])))


# ------------------------------------------------------------------ clients

def s_client(port, *extra, send=b"a LOGOUT\r\n", servername="localhost", starttls=None,
             timeout=20):
    """openssl s_client to 127.0.0.1:port trusting the test CA, with `send`
    on stdin and -ign_eof (it reads until moat closes: after an IMAP LOGOUT,
    a POP3 QUIT, or a failed handshake). servername None: no SNI.
    Returns (exit status, stdout + stderr as text)."""
    argv = ["openssl", "s_client", "-connect", "%s:%d" % (LOOPBACK, port),
            "-CAfile", ca(), "-ign_eof"]
    argv += ["-noservername"] if servername is None else ["-servername", servername]
    if starttls:
        argv += ["-starttls", starttls]
    r = harness.run_cmd(argv + list(extra), timeout=timeout, input=send)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def leaf_cn(out):
    """The served leaf's CN from s_client's "subject=... CN = X" line."""
    m = re.search(r"(?m)^subject=.*?CN ?= ?([^,\n]+?)\s*$", out)
    return m.group(1) if m else None


def key_bits(out):
    m = re.search(r"Server public key is (\d+) bit", out)
    return int(m.group(1)) if m else None


def negotiated(out):
    """(version, cipher) from s_client's "New|Reused, TLSv1.x, Cipher is X"
    line; None when no handshake completed."""
    m = re.search(r"(?m)^(?:New|Reused), (TLSv1\.\d), Cipher is (\S+)", out)
    return (m.group(1), m.group(2)) if m else None


def reuse_state(out):
    """"New" or "Reused" (s_client's session line), or None."""
    m = re.search(r"(?m)^(New|Reused), (TLSv1\.\d|\(NONE\))", out)
    return m.group(1) if m else None


def is_ecdsa_localhost(out):
    return (leaf_cn(out) == "localhost" and key_bits(out) == 256
            and "Peer signature type: ECDSA" in out)


def is_rsa_localhost(out):
    return leaf_cn(out) == "localhost" and key_bits(out) == 2048


def greeted(out, protocol="imap"):
    pat = r"(?m)^\* OK \[CAPABILITY " if protocol == "imap" else r"(?m)^\+OK "
    return re.search(pat, out) is not None


def served(out, starttls=None):
    """Whether the session got past the handshake to the protocol: the
    IMAP greeting (implicit TLS), or moat's answer to what was sent after
    STARTTLS/STLS (s_client itself reads the greeting before those)."""
    if starttls is None:
        return greeted(out)
    if starttls == "imap":
        return re.search(r"(?m)^\* BYE", out) is not None
    return re.search(r"(?m)^\+OK", out.split("Verify return code", 1)[-1]) is not None


def resume_pair(testcase, port, *extra, first_port=None, starttls=None, send=b"a LOGOUT\r\n",
                need_session=True, servername="localhost"):
    """Two s_client runs: the first (to first_port, default port) saves its
    session, the second (to port) offers it. Returns both outputs. (With
    TLS 1.3, s_client saves a session only when a ticket came: without
    need_session, no saved session gives (out1, None).)"""
    sess = os.path.join(harness.new_dir("sess"), "session.pem")
    rc1, out1 = s_client(first_port or port, "-sess_out", sess, *extra, starttls=starttls,
                         send=send, servername=servername)
    testcase.assertEqual(rc1, 0, out1)
    testcase.assertTrue(served(out1, starttls), out1)
    if not os.path.exists(sess):
        testcase.assertFalse(need_session, "s_client saved no session:\n" + out1)
        return out1, None
    rc2, out2 = s_client(port, "-sess_in", sess, *extra, starttls=starttls, send=send,
                         servername=servername)
    testcase.assertEqual(rc2, 0, out2)
    return out1, out2


def log_fields(line):
    fields = {}
    for k, v in re.findall(r'([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|\S+)', line):
        fields[k] = v[1:-1] if v.startswith('"') else v
    fields["_line"] = line
    return fields


def log_time(stamp):
    """A log line's time stamp ("2026-12-08T00:05:37.420Z") in seconds."""
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def session_end(moat, client_port, since, timeout=10):
    """The fields of moat's event=session_end line for the session from
    127.0.0.1:client_port that connected at time.time() `since` (waits for
    it). Lines stamped before then belong to an older session that had the
    same client port: the kernel reuses ephemeral ports."""
    rx = re.compile(r"^(\S+) [^\n]*event=session_end listener=\S+ "
                    r"client=127\.0\.0\.1:%d [^\n]*" % client_port, re.M)
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        for m in rx.finditer(moat.log()):
            if log_time(m.group(1)) >= since - 0.5:
                return log_fields(m.group(0))
        if time.monotonic() > deadline:
            raise AssertionError("no session_end line for client port %d since %.3f; log:\n%s"
                                 % (client_port, since, moat.log()[-3000:]))
        time.sleep(0.05)


def session_ends_since(moat, start, listener, sni, count=1, timeout=10):
    """event=session_end lines of a listener in moat's log from `start`
    whose client asked for SNI name `sni` (tests give their s_client
    sessions names of their own, so that other sessions ending late do not
    count): waits for `count` of them; returns their fields."""
    rx = re.compile(r"[^\n]*event=session_end listener=%s [^\n]* sni=\"%s\" [^\n]*"
                    % (re.escape(listener), re.escape(sni)))
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        found = [log_fields(m.group(0)) for m in rx.finditer(moat.log()[start:])]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("%d session_end lines for %s, wanted %d; log:\n%s"
                                 % (len(found), listener, count, moat.log()[start:]))
        time.sleep(0.05)


class Attempt:
    """One Python TLS connection attempt to 127.0.0.1:port: handshake,
    then the first line (the greeting). ok is True when a greeting came;
    error holds the exception otherwise."""

    def __init__(self, port, ctx, server_hostname="localhost", session=None, keep=False):
        self.port = port
        self.t0 = time.time()             # for session_end()
        self.sock = None
        self.error = None
        self.greeting = b""
        self.version = self.cipher = None
        self.reused = False
        self.session = None
        self.alpn = None
        self.der = None
        raw = socket.create_connection((LOOPBACK, port), timeout=harness.scaled(10))
        self.client_port = raw.getsockname()[1]
        try:
            s = ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)
        except (ssl.SSLError, OSError) as e:
            self.error = e
            raw.close()
            return
        try:
            self.version = s.version()
            self.cipher = s.cipher()[0]
            self.alpn = s.selected_alpn_protocol()
            self.der = s.getpeercert(binary_form=True)
            self.greeting = harness.recv_line(s)
            # TLS 1.3 tickets arrive after the handshake, before or with
            # the greeting: take the session only now.
            self.session = s.session
            self.reused = s.session_reused
        except (ssl.SSLError, OSError) as e:
            self.error = e
        if keep and self.error is None:
            self.sock = s
        else:
            s.close()

    @property
    def ok(self):
        return self.error is None and (self.greeting.startswith(b"* OK ")
                                       or self.greeting.startswith(b"+OK"))

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def der_text(der):
    """`openssl x509 -text` of a DER certificate."""
    r = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-text"],
                       input=der, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return r.stdout.decode(errors="replace")


def no_verify_context(**kw):
    """A client context that does not check the chain (for tests about what
    is served, not whether it verifies)."""
    ctx = harness.client_context(**kw)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ------------------------------------------------------------------ certificates

class TestCertificateSelection(unittest.TestCase):
    """SNI picks among [tls]'s certificate and the [certificate NAME] ones."""

    def test_no_sni_gets_default_ecdsa(self):
        rc, out = s_client(MOAT.port("imaps"), servername=None)
        self.assertEqual(rc, 0, out)
        self.assertTrue(is_ecdsa_localhost(out), out)
        self.assertTrue(greeted(out), out)

    def test_sni_localhost_verifies(self):
        rc, out = s_client(MOAT.port("imaps"), "-verify_return_error",
                           "-verify_hostname", "localhost")
        self.assertEqual(rc, 0, out)
        self.assertTrue(is_ecdsa_localhost(out), out)
        self.assertIn("Verify return code: 0 (ok)", out)

    def test_sni_exact_name(self):
        # Both "mail" (exact) and "wild" (*.example.test) cover the name:
        # the exact one wins.
        rc, out = s_client(MOAT.port("imaps"), "-verify_return_error",
                           "-verify_hostname", MAIL_NAME, servername=MAIL_NAME)
        self.assertEqual(rc, 0, out)
        self.assertEqual(leaf_cn(out), MAIL_NAME, out)
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertTrue(greeted(out), out)

    def test_sni_is_case_insensitive(self):
        rc, out = s_client(MOAT.port("imaps"), servername="MAIL.Example.TEST")
        self.assertEqual(rc, 0, out)
        self.assertEqual(leaf_cn(out), MAIL_NAME, out)

    def test_sni_wildcard_covers_one_label(self):
        for host in ("a.example.test", "imap-7.example.test"):
            with self.subTest(host=host):
                rc, out = s_client(MOAT.port("imaps"), "-verify_return_error",
                                   "-verify_hostname", host, servername=host)
                self.assertEqual(rc, 0, out)
                self.assertEqual(leaf_cn(out), WILD_CN, out)
                self.assertIn("Verify return code: 0 (ok)", out)

    def test_wildcard_does_not_cover_two_labels_or_bare_domain(self):
        for host in ("a.b.example.test", "example.test"):
            with self.subTest(host=host):
                rc, out = s_client(MOAT.port("imaps"), servername=host)
                self.assertEqual(rc, 0, out)
                self.assertTrue(is_ecdsa_localhost(out), out)

    def test_unknown_sni_gets_default(self):
        rc, out = s_client(MOAT.port("imaps"), servername="nothing.invalid")
        self.assertEqual(rc, 0, out)
        self.assertTrue(is_ecdsa_localhost(out), out)
        self.assertTrue(greeted(out), out)

    def test_rsa_only_tls13_client_gets_rsa_twin(self):
        rc, out = s_client(MOAT.port("imaps"), "-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256",
                           "-verify_return_error", "-verify_hostname", "localhost")
        self.assertEqual(rc, 0, out)
        self.assertTrue(is_rsa_localhost(out), out)
        self.assertIn("Peer signature type: RSA-PSS", out)
        self.assertEqual(negotiated(out)[0], "TLSv1.3", out)
        self.assertIn("Verify return code: 0 (ok)", out)

    def test_rsa_only_tls12_client_gets_rsa_twin(self):
        rc, out = s_client(MOAT.port("imaps"), "-tls1_2", "-cipher",
                           "ECDHE-RSA-AES128-GCM-SHA256", "-verify_return_error")
        self.assertEqual(rc, 0, out)
        self.assertTrue(is_rsa_localhost(out), out)
        self.assertEqual(negotiated(out), ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"), out)
        self.assertTrue(greeted(out), out)

    def test_rsa_twin_without_sni(self):
        # No SNI: the listener's first certificate plus its RSA twin.
        rc, out = s_client(MOAT.port("imaps"), "-tls1_2", "-cipher",
                           "ECDHE-RSA-AES256-GCM-SHA384", servername=None)
        self.assertEqual(rc, 0, out)
        self.assertTrue(is_rsa_localhost(out), out)

    def test_ecdsa_capable_client_gets_ecdsa(self):
        rc, out = s_client(MOAT.port("imaps"), "-tls1_2")
        self.assertEqual(rc, 0, out)
        self.assertTrue(is_ecdsa_localhost(out), out)
        self.assertTrue(negotiated(out)[1].startswith("ECDHE-ECDSA-"), out)

    def test_python_rsa_only_tls12(self):
        ctx = harness.client_context(maximum=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers("ECDHE-RSA-AES256-GCM-SHA384")
        a = Attempt(MOAT.port("imaps"), ctx)
        self.assertTrue(a.ok, a.error)
        self.assertEqual(a.cipher, "ECDHE-RSA-AES256-GCM-SHA384")
        text = der_text(a.der)
        self.assertIn("rsaEncryption", text)
        self.assertRegex(text, r"CN ?= ?localhost")

    def test_python_verifies_sni_certificates(self):
        # Verification on: the chain and the host name must both check out.
        for host, cn in (("localhost", "localhost"), (MAIL_NAME, MAIL_NAME),
                         ("x.example.test", WILD_CN)):
            with self.subTest(host=host):
                a = Attempt(MOAT.port("imaps"), harness.client_context(),
                            server_hostname=host)
                self.assertTrue(a.ok, a.error)
                text = der_text(a.der)
                self.assertRegex(text, r"subject=.*CN ?= ?%s" % re.escape(cn))
                self.assertIn("id-ecPublicKey", text)

    def test_listener_certificates_first_is_fallback(self):
        port = MOAT.port("mailfirst")
        for host, cn in ((None, MAIL_NAME), ("localhost", MAIL_NAME),
                         ("nothing.invalid", MAIL_NAME), (MAIL_NAME, MAIL_NAME),
                         ("b.example.test", WILD_CN)):
            with self.subTest(sni=host):
                rc, out = s_client(port, servername=host)
                self.assertEqual(rc, 0, out)
                self.assertEqual(leaf_cn(out), cn, out)

    def test_listener_certificates_exclude_others(self):
        # "mailfirst" does not serve the localhost certificate, so a client
        # verifying "localhost" must fail there.
        a = Attempt(MOAT.port("mailfirst"), harness.client_context(),
                    server_hostname="localhost")
        self.assertFalse(a.ok)
        self.assertIsInstance(a.error, ssl.SSLCertVerificationError)

    def test_ecdsa_preferred_even_when_rsa_listed_first(self):
        port = MOAT.port("rsafirst")
        rc, out = s_client(port, servername=None)
        self.assertEqual(rc, 0, out)
        self.assertTrue(is_ecdsa_localhost(out), out)
        rc, out = s_client(port, "-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256",
                           servername=None)
        self.assertEqual(rc, 0, out)
        self.assertTrue(is_rsa_localhost(out), out)

    def test_starttls_imap_sni(self):
        rc, out = s_client(MOAT.port("imap"), "-verify_return_error", "-verify_hostname",
                           MAIL_NAME, servername=MAIL_NAME, starttls="imap")
        self.assertEqual(rc, 0, out)
        self.assertEqual(leaf_cn(out), MAIL_NAME, out)
        self.assertIn("Verify return code: 0 (ok)", out)

    def test_starttls_pop3_rsa(self):
        rc, out = s_client(MOAT.port("pop3"), "-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256",
                           starttls="pop3", send=b"QUIT\r\n")
        self.assertEqual(rc, 0, out)
        self.assertTrue(is_rsa_localhost(out), out)

    def test_session_end_logs_sni(self):
        a = Attempt(MOAT.port("imaps"), harness.client_context(), server_hostname=MAIL_NAME)
        self.assertTrue(a.ok, a.error)
        ev = session_end(MOAT, a.client_port, a.t0)
        self.assertEqual(ev["sni"], MAIL_NAME, ev["_line"])
        self.assertEqual(ev["tls"], a.version, ev["_line"])
        self.assertEqual(ev["client_cert"], "-", ev["_line"])
        # And without SNI (an IP address as server_hostname sends none).
        a = Attempt(MOAT.port("imaps"), harness.client_context(), server_hostname="127.0.0.1")
        self.assertTrue(a.ok, a.error)
        ev = session_end(MOAT, a.client_port, a.t0)
        self.assertEqual(ev["sni"], "-", ev["_line"])

    def test_startup_logs_each_certificate(self):
        log = MOAT.log()
        for name, cn, key in (("default", "localhost", "ECDSA P-256"),
                              ("rsa", "localhost", "RSA 2048"),
                              ("mail", MAIL_NAME, "ECDSA P-256"),
                              ("wild", WILD_CN, "ECDSA P-256")):
            with self.subTest(name=name):
                self.assertRegex(log, r"event=certificate name=%s [^\n]*subject=\"[^\"]*CN=%s\""
                                 r"[^\n]*key=\"%s\"" % (name, re.escape(cn), key))
        self.assertRegex(log, r'event=certificate name=wild [^\n]*names="\*\.example\.test"')


class TestCurl(unittest.TestCase):
    """curl sends SNI with the URL's host name and verifies it."""

    def curl(self, url, host, port, *extra):
        return harness.curl(url, "demo", "demo", "--resolve",
                            "%s:%d:%s" % (host, port, LOOPBACK), *extra)

    def test_imaps_localhost(self):
        port = MOAT.port("imaps")
        r = self.curl("imaps://localhost:%d/INBOX" % port, "localhost", port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rb'\* LIST \([^)]*\) "[./]" INBOX\r\n')
        r = self.curl("imaps://localhost:%d/INBOX?ALL" % port, "localhost", port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"* SEARCH 1 2 3\r\n")

    def test_imaps_sni_name(self):
        port = MOAT.port("imaps")
        r = self.curl("imaps://%s:%d/INBOX;UID=1" % (MAIL_NAME, port), MAIL_NAME, port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, DOVECOT.message(1))

    def test_imaps_wildcard_name(self):
        port = MOAT.port("imaps")
        r = self.curl("imaps://box.example.test:%d/INBOX?ALL" % port, "box.example.test", port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"* SEARCH 1 2 3\r\n")

    def test_name_nothing_covers_fails_verification(self):
        port = MOAT.port("imaps")
        r = self.curl("imaps://other.invalid:%d/INBOX?ALL" % port, "other.invalid", port)
        self.assertEqual(r.returncode, 60, r.stderr)    # CURLE_PEER_FAILED_VERIFICATION

    def test_pop3s(self):
        port = MOAT.port("pop3s")
        r = self.curl("pop3s://localhost:%d/" % port, "localhost", port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.splitlines()), 3, r.stdout)

    def test_imap_starttls_sni_name(self):
        port = MOAT.port("imap")
        r = self.curl("imap://%s:%d/INBOX?ALL" % (MAIL_NAME, port), MAIL_NAME, port,
                      "--ssl-reqd")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"* SEARCH 1 2 3\r\n")


# ------------------------------------------------------------------ ALPN

class TestAlpn(unittest.TestCase):

    def test_imap_accepts_imap(self):
        rc, out = s_client(MOAT.port("imaps"), "-alpn", "imap")
        self.assertEqual(rc, 0, out)
        self.assertIn("ALPN protocol: imap", out)
        self.assertTrue(greeted(out), out)

    def test_pop3_accepts_pop3(self):
        rc, out = s_client(MOAT.port("pop3s"), "-alpn", "pop3", send=b"QUIT\r\n")
        self.assertEqual(rc, 0, out)
        self.assertIn("ALPN protocol: pop3", out)
        self.assertTrue(greeted(out, "pop3"), out)

    def test_imap_refuses_other_protocols(self):
        for alpn in ("pop3", "h2", "http/1.1,smtp"):
            with self.subTest(alpn=alpn):
                rc, out = s_client(MOAT.port("imaps"), "-alpn", alpn)
                self.assertNotEqual(rc, 0, out)
                self.assertIn("no application protocol", out)
                self.assertIsNone(negotiated(out), out)
                self.assertFalse(greeted(out), out)

    def test_pop3_refuses_imap(self):
        rc, out = s_client(MOAT.port("pop3s"), "-alpn", "imap", send=b"QUIT\r\n")
        self.assertNotEqual(rc, 0, out)
        self.assertIn("no application protocol", out)
        self.assertFalse(greeted(out, "pop3"), out)

    def test_starttls_listeners_check_alpn(self):
        rc, out = s_client(MOAT.port("imap"), "-alpn", "pop3", starttls="imap")
        self.assertIn("no application protocol", out)
        self.assertIsNone(negotiated(out), out)
        rc, out = s_client(MOAT.port("pop3"), "-alpn", "imap", starttls="pop3",
                           send=b"QUIT\r\n")
        self.assertIn("no application protocol", out)
        self.assertIsNone(negotiated(out), out)
        rc, out = s_client(MOAT.port("pop3"), "-alpn", "pop3", starttls="pop3",
                           send=b"QUIT\r\n")
        self.assertEqual(rc, 0, out)
        self.assertIn("ALPN protocol: pop3", out)

    def test_other_then_imap_agrees_on_imap(self):
        rc, out = s_client(MOAT.port("imaps"), "-alpn", "h2,imap")
        self.assertEqual(rc, 0, out)
        self.assertIn("ALPN protocol: imap", out)
        self.assertTrue(greeted(out), out)

    def test_no_alpn_is_fine(self):
        rc, out = s_client(MOAT.port("imaps"))
        self.assertEqual(rc, 0, out)
        self.assertIn("No ALPN negotiated", out)
        self.assertTrue(greeted(out), out)

    def test_python_alpn(self):
        ctx = harness.client_context()
        ctx.set_alpn_protocols(["imap"])
        a = Attempt(MOAT.port("imaps"), ctx)
        self.assertTrue(a.ok, a.error)
        self.assertEqual(a.alpn, "imap")
        ctx = harness.client_context()
        ctx.set_alpn_protocols(["pop3"])
        a = Attempt(MOAT.port("pop3s"), ctx)
        self.assertTrue(a.ok, a.error)
        self.assertEqual(a.alpn, "pop3")
        ctx = harness.client_context()
        ctx.set_alpn_protocols(["h2"])
        start = len(MOAT.log())
        a = Attempt(MOAT.port("imaps"), ctx)
        self.assertFalse(a.ok)
        self.assertIsInstance(a.error, ssl.SSLError)
        self.assertRegex(str(a.error).upper(), r"NO.APPLICATION.PROTOCOL")
        ev = session_end(MOAT, a.client_port, a.t0)
        self.assertEqual(ev["tls"], "-", ev["_line"])
        self.assertIn("handshake", ev["reason"].lower(), ev["_line"])
        self.assertIsNotNone(MOAT.wait_log(
            r"event=handshake_failed listener=imaps client=127\.0\.0\.1:%d [^\n]*ALPN"
            % a.client_port, 5, start))

    def test_imaplib_with_alpn_logs_in(self):
        ctx = harness.client_context()
        ctx.set_alpn_protocols(["imap"])
        m = imaplib.IMAP4_SSL(LOOPBACK, MOAT.port("imaps"), ssl_context=ctx,
                              timeout=harness.scaled(30))
        try:
            self.assertEqual(m.sock.selected_alpn_protocol(), "imap")
            typ, _ = m.login("demo", "demo")
            self.assertEqual(typ, "OK")
            typ, data = m.select("INBOX", readonly=True)
            self.assertEqual((typ, int(data[0])), ("OK", 3))
            m.logout()
        finally:
            try:
                m.shutdown()
            except OSError:
                pass

    def test_poplib_with_alpn_logs_in(self):
        ctx = harness.client_context()
        ctx.set_alpn_protocols(["pop3"])
        p = poplib.POP3_SSL(LOOPBACK, MOAT.port("pop3s"), context=ctx,
                            timeout=harness.scaled(30))
        try:
            self.assertEqual(p.sock.selected_alpn_protocol(), "pop3")
            p.user("demo")
            p.pass_("demo")
            self.assertEqual(p.stat()[0], 3)
            p.quit()
        finally:
            p.close()


# ------------------------------------------------------------------ resumption

class TestResumption(unittest.TestCase):

    def test_s_client_tls13_ticket(self):
        start = len(MOAT.log())
        sni = "tls13-ticket.moat.invalid"
        out1, out2 = resume_pair(self, MOAT.port("imaps"), "-tls1_3", servername=sni)
        self.assertEqual(reuse_state(out1), "New", out1)
        self.assertIn("TLS session ticket lifetime hint: 7200", out1)
        self.assertEqual(reuse_state(out2), "Reused", out2)
        self.assertEqual(negotiated(out2)[0], "TLSv1.3", out2)
        self.assertTrue(greeted(out2), out2)
        ev = session_ends_since(MOAT, start, "imaps", sni, 2)
        self.assertEqual([e["resumed"] for e in ev], ["no", "yes"], [e["_line"] for e in ev])
        self.assertEqual([e["tls"] for e in ev], ["TLSv1.3"] * 2)
        self.assertEqual([e["cipher"] for e in ev], ["TLS_AES_128_GCM_SHA256"] * 2)

    def test_s_client_tls12_ticket(self):
        start = len(MOAT.log())
        sni = "tls12-ticket.moat.invalid"
        out1, out2 = resume_pair(self, MOAT.port("imaps"), "-tls1_2", servername=sni)
        self.assertEqual(reuse_state(out1), "New", out1)
        self.assertIn("TLS session ticket:", out1)
        self.assertEqual(reuse_state(out2), "Reused", out2)
        self.assertEqual(negotiated(out2)[0], "TLSv1.2", out2)
        self.assertTrue(greeted(out2), out2)
        ev = session_ends_since(MOAT, start, "imaps", sni, 2)
        self.assertEqual([e["resumed"] for e in ev], ["no", "yes"], [e["_line"] for e in ev])
        self.assertEqual([e["tls"] for e in ev], ["TLSv1.2"] * 2)

    def test_s_client_tls13_slow_stdin(self):
        # The brief's recipe: stay connected, write a command after 0.5 s.
        sess = os.path.join(harness.new_dir("sess"), "session.pem")
        outs = []
        for opt in ("-sess_out", "-sess_in"):
            argv = ["openssl", "s_client", "-connect", "%s:%d" % (LOOPBACK, MOAT.port("imaps")),
                    "-servername", "localhost", "-CAfile", ca(), "-tls1_3", "-ign_eof",
                    opt, sess]
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT)
            try:
                time.sleep(0.5)
                p.stdin.write(b"a LOGOUT\r\n")
                p.stdin.flush()
                out, _ = p.communicate(timeout=harness.scaled(20))
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            outs.append(out.decode(errors="replace"))
        self.assertEqual(reuse_state(outs[0]), "New", outs[0])
        self.assertEqual(reuse_state(outs[1]), "Reused", outs[1])
        self.assertRegex(outs[1], r"(?m)^\* BYE")

    def test_s_client_pop3_starttls_tls12(self):
        out1, out2 = resume_pair(self, MOAT.port("pop3"), "-tls1_2", starttls="pop3",
                                 send=b"QUIT\r\n")
        self.assertEqual(reuse_state(out1), "New", out1)
        self.assertEqual(reuse_state(out2), "Reused", out2)

    def python_pair(self, listener, maximum=None, other=None):
        ctx = harness.client_context(maximum=maximum)
        a = Attempt(MOAT.port(listener), ctx)
        self.assertTrue(a.ok, a.error)
        self.assertFalse(a.reused)
        self.assertIsNotNone(a.session)
        b = Attempt(MOAT.port(other or listener), ctx, session=a.session)
        self.assertTrue(b.ok, b.error)
        return a, b, ctx

    def test_python_tls13(self):
        a, b, _ = self.python_pair("imaps")
        self.assertEqual(b.version, "TLSv1.3")
        self.assertTrue(b.reused)
        self.assertEqual(session_end(MOAT, a.client_port, a.t0)["resumed"], "no")
        ev = session_end(MOAT, b.client_port, b.t0)
        self.assertEqual(ev["resumed"], "yes", ev["_line"])
        self.assertEqual(ev["tls"], "TLSv1.3", ev["_line"])

    def test_python_tls12(self):
        a, b, _ = self.python_pair("imaps", maximum=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(b.version, "TLSv1.2")
        self.assertTrue(b.reused)
        ev = session_end(MOAT, b.client_port, b.t0)
        self.assertEqual(ev["resumed"], "yes", ev["_line"])
        self.assertEqual(ev["tls"], "TLSv1.2", ev["_line"])

    def test_python_pop3s(self):
        for maximum in (None, ssl.TLSVersion.TLSv1_2):
            with self.subTest(maximum=maximum):
                a, b, _ = self.python_pair("pop3s", maximum=maximum)
                self.assertTrue(b.reused)
                self.assertEqual(session_end(MOAT, b.client_port, b.t0)["resumed"], "yes")

    def test_ticket_does_not_resume_on_another_listener(self):
        for maximum in (None, ssl.TLSVersion.TLSv1_2):
            with self.subTest(maximum=maximum):
                a, b, ctx = self.python_pair("imaps", maximum=maximum, other="imaps2")
                self.assertFalse(b.reused)
                ev = session_end(MOAT, b.client_port, b.t0)
                self.assertEqual(ev["resumed"], "no", ev["_line"])
                # The session still works on its own listener.
                c = Attempt(MOAT.port("imaps"), ctx, session=a.session)
                self.assertTrue(c.ok, c.error)
                self.assertTrue(c.reused)

    def test_s_client_ticket_does_not_resume_on_another_listener(self):
        for ver in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=ver):
                out1, out2 = resume_pair(self, MOAT.port("imaps2"), ver,
                                         first_port=MOAT.port("imaps"))
                self.assertEqual(reuse_state(out2), "New", out2)
                self.assertTrue(greeted(out2), out2)

    def test_client_certificate_listener_issues_no_tickets(self):
        # Documented: listeners that ask for client certificates issue none.
        for ver in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=ver):
                out1, out2 = resume_pair(self, MOAT.port("ccopt"), ver, need_session=False)
                self.assertNotIn("TLS session ticket", out1)
                if out2 is not None:
                    self.assertEqual(reuse_state(out2), "New", out2)
                    self.assertTrue(greeted(out2), out2)


# ------------------------------------------------------------------ client certificates

class TestClientCertificates(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        # A second CA, unknown to moat, and a client certificate from it.
        d = harness.new_dir("other-ca")
        for argv in (["sh", os.path.join(harness.SCRIPTS, "certs.sh"), d],
                     ["sh", os.path.join(harness.SCRIPTS, "mkcert.sh"), d, "intruder",
                      "client", "30", "intruder"]):
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            if r.returncode != 0:
                raise RuntimeError("%s failed: %s" % (argv, r.stderr.decode(errors="replace")))
        cls.intruder = (os.path.join(d, "intruder.pem"), os.path.join(d, "intruder.key"))
        cls.alice = CERTS["alice"]

    def ctx(self, cert=None, maximum=None):
        c = harness.client_context(maximum=maximum)
        if cert is not None:
            c.load_cert_chain(*cert)
        return c

    VERSIONS = ((None, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2"))

    def assert_refused(self, listener, cert, maximum):
        start = len(MOAT.log())
        a = Attempt(MOAT.port(listener), self.ctx(cert, maximum))
        self.assertFalse(a.ok, "greeting %r" % a.greeting)
        self.assertNotIn(b"* OK", a.greeting)
        ev = session_end(MOAT, a.client_port, a.t0)
        self.assertEqual(ev["tls"], "-", ev["_line"])
        self.assertEqual(ev["user"], "-", ev["_line"])
        self.assertIsNotNone(MOAT.wait_log(
            r"event=handshake_failed listener=%s client=127\.0\.0\.1:%d "
            % (listener, a.client_port), 5, start))

    def login_with(self, listener, cert, maximum):
        """imaplib login as demo; returns (client port, login event,
        session_end event)."""
        ctx = self.ctx(cert, maximum)
        t0 = time.time()
        m = imaplib.IMAP4_SSL(LOOPBACK, MOAT.port(listener), ssl_context=ctx,
                              timeout=harness.scaled(30))
        try:
            port = m.sock.getsockname()[1]
            typ, _ = m.login("demo", "demo")
            self.assertEqual(typ, "OK")
            typ, data = m.select("INBOX", readonly=True)
            self.assertEqual((typ, int(data[0])), ("OK", 3))
            m.logout()
        finally:
            try:
                m.shutdown()
            except OSError:
                pass
        ev = session_end(MOAT, port, t0)
        logins = [l for l in harness.login_events(MOAT.log(), "demo")
                  if "client=127.0.0.1:%d " % port in l["_line"]]
        self.assertEqual(len(logins), 1, MOAT.log())
        return port, logins[0], ev

    def test_required_without_certificate_refused(self):
        for maximum, _ in self.VERSIONS:
            with self.subTest(maximum=maximum):
                self.assert_refused("ccreq", None, maximum)

    def test_required_with_test_ca_certificate(self):
        for maximum, version in self.VERSIONS:
            with self.subTest(maximum=maximum):
                _, login, ev = self.login_with("ccreq", self.alice, maximum)
                self.assertEqual(login["result"], "ok", login["_line"])
                self.assertEqual(login.get("client_cert"), "O=moat tests, CN=alice",
                                 login["_line"])
                self.assertEqual(ev["client_cert"], "O=moat tests, CN=alice", ev["_line"])
                self.assertEqual(ev["tls"], version, ev["_line"])
                self.assertEqual(ev["user"], "demo", ev["_line"])

    def test_required_with_other_ca_certificate_refused(self):
        for maximum, _ in self.VERSIONS:
            with self.subTest(maximum=maximum):
                self.assert_refused("ccreq", self.intruder, maximum)

    def test_required_s_client(self):
        start = len(MOAT.log())
        sni = "alice-s-client.moat.invalid"
        rc, out = s_client(MOAT.port("ccreq"), "-cert", self.alice[0], "-key", self.alice[1],
                           send=b"a LOGIN demo demo\r\nb LOGOUT\r\n", servername=sni)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"(?m)^a OK ")
        self.assertRegex(out, r"(?m)^b OK ")
        ev = session_ends_since(MOAT, start, "ccreq", sni)[0]
        self.assertEqual(ev["client_cert"], "O=moat tests, CN=alice", ev["_line"])
        self.assertEqual(ev["user"], "demo", ev["_line"])
        # Without a certificate, and with the other CA's: no greeting.
        for extra in ((), ("-cert", self.intruder[0], "-key", self.intruder[1])):
            with self.subTest(extra=extra):
                rc, out = s_client(MOAT.port("ccreq"), *extra)
                self.assertFalse(greeted(out), out)
                self.assertNotEqual(rc, 0, out)

    def test_refusals_are_alerts_the_client_can_read(self):
        # moat refuses after the handshake with an alert under the keys the
        # client expects: the client names the reason instead of seeing a
        # bad record MAC (TLS 1.3) or a bare close (TLS 1.2).
        cases = [
            ("ccreq", (), "-tls1_3", "alert certificate required"),
            ("ccreq", (), "-tls1_2", "alert handshake failure"),
            ("ccreq", ("-cert", self.intruder[0], "-key", self.intruder[1]), "-tls1_3",
             "alert unknown ca"),
            ("ccreq", ("-cert", self.intruder[0], "-key", self.intruder[1]), "-tls1_2",
             "alert unknown ca"),
            ("ccopt", ("-cert", self.intruder[0], "-key", self.intruder[1]), "-tls1_3",
             "alert unknown ca"),
            ("ccopt", ("-cert", self.intruder[0], "-key", self.intruder[1]), "-tls1_2",
             "alert unknown ca"),
        ]
        for listener, cert, version, alert in cases:
            with self.subTest(listener=listener, cert=bool(cert), version=version):
                rc, out = s_client(MOAT.port(listener), version, *cert)
                self.assertFalse(greeted(out), out)
                self.assertIn(alert, out)
                self.assertNotIn("bad record mac", out)

    def test_required_certificate_request_names_ca(self):
        rc, out = s_client(MOAT.port("ccreq"), "-tls1_2", send=b"")
        self.assertRegex(out, r"Acceptable client certificate CA names\s*\n\s*"
                              r"O ?= ?moat tests, CN ?= ?moat test CA")

    def test_optional_without_certificate(self):
        for maximum, version in self.VERSIONS:
            with self.subTest(maximum=maximum):
                _, login, ev = self.login_with("ccopt", None, maximum)
                self.assertEqual(login["result"], "ok", login["_line"])
                self.assertNotIn("client_cert", login)
                self.assertEqual(ev["client_cert"], "-", ev["_line"])
                self.assertEqual(ev["tls"], version, ev["_line"])

    def test_optional_with_test_ca_certificate(self):
        for maximum, _ in self.VERSIONS:
            with self.subTest(maximum=maximum):
                _, login, ev = self.login_with("ccopt", self.alice, maximum)
                self.assertEqual(login.get("client_cert"), "O=moat tests, CN=alice",
                                 login["_line"])
                self.assertEqual(ev["client_cert"], "O=moat tests, CN=alice", ev["_line"])

    def test_optional_with_other_ca_certificate_refused(self):
        for maximum, _ in self.VERSIONS:
            with self.subTest(maximum=maximum):
                self.assert_refused("ccopt", self.intruder, maximum)

    def test_no_certificate_requested_elsewhere(self):
        # A listener with client_certificate = none never asks; a client
        # that has one does not send it and nothing is logged.
        rc, out = s_client(MOAT.port("imaps"), "-tls1_2", "-cert", self.alice[0],
                           "-key", self.alice[1])
        self.assertEqual(rc, 0, out)
        self.assertIn("No client certificate CA names sent", out)
        _, login, ev = self.login_with("imaps", self.alice, None)
        self.assertEqual(ev["client_cert"], "-", ev["_line"])
        self.assertNotIn("client_cert", login)


# ------------------------------------------------------------------ scans

def sslscan(port, *extra):
    """sslscan's XML report on 127.0.0.1:port as an Element (<ssltest>)."""
    r = harness.run_cmd(["sslscan", "--no-colour", "--xml=-"] + list(extra)
                        + ["%s:%d" % (LOOPBACK, port)], timeout=120)
    text = r.stdout.decode(errors="replace")
    start = text.find("<?xml")
    if r.returncode != 0 or start < 0:
        raise AssertionError("sslscan failed (%d): %s %s" % (r.returncode, text,
                                                              r.stderr.decode(errors="replace")))
    root = ET.fromstring(text[start:])
    test = root.find("ssltest")
    if test is None:
        raise AssertionError("no <ssltest> in sslscan's report:\n" + text)
    return test


@unittest.skipUnless(shutil.which("sslscan"), "sslscan is not installed")
class TestScan(unittest.TestCase):

    def check_scan(self, test, both_key_types=True):
        where = ET.tostring(test).decode()
        protocols = {(p.get("type"), p.get("version")): p.get("enabled")
                     for p in test.findall("protocol")}
        for off in (("ssl", "2"), ("ssl", "3"), ("tls", "1.0"), ("tls", "1.1")):
            self.assertEqual(protocols.get(off), "0", "%s %s\n%s" % (off + (where,)))
        for on in (("tls", "1.2"), ("tls", "1.3")):
            self.assertEqual(protocols.get(on), "1", "%s %s\n%s" % (on + (where,)))

        ciphers = [(c.get("sslversion"), c.get("cipher"), c) for c in test.findall("cipher")]
        self.assertTrue(ciphers, where)
        versions = {v for v, _, _ in ciphers}
        self.assertEqual(versions, {"TLSv1.2", "TLSv1.3"}, where)
        bad = re.compile(r"CBC|RC4|DES|NULL|anon|ADH|AECDH|EXP|MD5|CAMELLIA|ARIA|PSK|SRP|"
                         r"-SHA$|^DHE-|^AES|^ECDH-", re.I)
        for version, name, c in ciphers:
            with self.subTest(cipher=name, version=version):
                if version == "TLSv1.3":
                    self.assertIn(name, TLS13_SUITES)
                else:
                    self.assertEqual(version, "TLSv1.2")
                    self.assertIn(name, TLS12_SUITES)
                    self.assertTrue(name.startswith("ECDHE-"), name)
                    self.assertRegex(name, r"-GCM-SHA(256|384)$|-CHACHA20-POLY1305$")
                self.assertIsNone(bad.search(name), name)
                # Forward secrecy: an ephemeral elliptic-curve exchange.
                self.assertTrue(c.get("curve") or c.get("ecdhebits"), ET.tostring(c))
                self.assertIsNone(c.get("dhebits"), ET.tostring(c))
                self.assertNotIn(c.get("strength"), ("weak", "medium", "null", "anonymous"))
        names12 = {n for v, n, _ in ciphers if v == "TLSv1.2"}
        if both_key_types:
            # Both the ECDSA and the RSA certificate are served.
            self.assertTrue(any(n.startswith("ECDHE-ECDSA-") for n in names12), names12)
            self.assertTrue(any(n.startswith("ECDHE-RSA-") for n in names12), names12)

        reneg = test.find("renegotiation")
        self.assertIsNotNone(reneg, where)
        self.assertTrue(reneg.get("supported") == "0" or reneg.get("secure") == "1",
                        ET.tostring(reneg))
        comp = test.find("compression")
        if comp is not None:
            self.assertEqual(comp.get("supported"), "0", ET.tostring(comp))
        for hb in test.findall("heartbleed"):
            self.assertEqual(hb.get("vulnerable"), "0", ET.tostring(hb))
        for g in test.findall("group"):
            self.assertRegex(g.get("name"), r"^(x25519|secp256r1|secp384r1)\b", ET.tostring(g))
        return ciphers

    def test_implicit_imaps(self):
        test = sslscan(MOAT.port("imaps"))
        self.check_scan(test)
        # TLS 1.3's three suites and all six TLS 1.2 suites are offered.
        ciphers = {(c.get("sslversion"), c.get("cipher")) for c in test.findall("cipher")}
        self.assertEqual({n for v, n in ciphers if v == "TLSv1.3"}, TLS13_SUITES)
        self.assertEqual({n for v, n in ciphers if v == "TLSv1.2"}, TLS12_SUITES)

    def test_implicit_pop3s(self):
        self.check_scan(sslscan(MOAT.port("pop3s")))

    def test_starttls_imap(self):
        self.check_scan(sslscan(MOAT.port("imap"), "--starttls-imap"))

    def test_starttls_pop3(self):
        self.check_scan(sslscan(MOAT.port("pop3"), "--starttls-pop3"))

    def test_old_versions_refused_by_s_client(self):
        for opts in (("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"),
                     ("-tls1", "-cipher", "DEFAULT@SECLEVEL=0")):
            with self.subTest(opts=opts):
                rc, out = s_client(MOAT.port("imaps"), *opts)
                self.assertNotEqual(rc, 0, out)
                self.assertIsNone(negotiated(out), out)
                self.assertIn("Cipher is (NONE)", out)
                self.assertFalse(greeted(out), out)
                rc, out = s_client(MOAT.port("imap"), *opts, starttls="imap")
                self.assertIsNone(negotiated(out), out)
                self.assertIn("Cipher is (NONE)", out)

    def test_python_old_versions_refused(self):
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            with self.subTest(version=version):
                ctx = no_verify_context()
                try:
                    ctx.minimum_version = version
                    ctx.maximum_version = version
                    ctx.set_ciphers("DEFAULT@SECLEVEL=0")
                except (ValueError, ssl.SSLError) as e:
                    self.skipTest("this Python cannot offer %s: %s" % (version, e))
                a = Attempt(MOAT.port("imaps"), ctx)
                self.assertFalse(a.ok)
                self.assertIsInstance(a.error, ssl.SSLError)

    def test_python_no_compression(self):
        a = Attempt(MOAT.port("imaps"), harness.client_context(), keep=True)
        try:
            self.assertTrue(a.ok, a.error)
            self.assertIsNone(a.sock.compression())
        finally:
            a.close()


# ------------------------------------------------------------------ policy: prefer server

class TestServerCipherOrder(unittest.TestCase):
    """The shared moat has the defaults: prefer_server_ciphers = yes."""

    def test_tls13_server_order(self):
        rc, out = s_client(MOAT.port("imaps"), "-tls1_3", "-ciphersuites",
                           "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256")
        self.assertEqual(rc, 0, out)
        self.assertEqual(negotiated(out), ("TLSv1.3", "TLS_AES_128_GCM_SHA256"), out)

    def test_tls12_server_order(self):
        rc, out = s_client(MOAT.port("imaps"), "-tls1_2", "-cipher",
                           "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:"
                           "ECDHE-ECDSA-AES128-GCM-SHA256")
        self.assertEqual(rc, 0, out)
        self.assertEqual(negotiated(out), ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"), out)

    def test_single_suite_client(self):
        rc, out = s_client(MOAT.port("imaps"), "-tls1_3", "-ciphersuites",
                           "TLS_CHACHA20_POLY1305_SHA256")
        self.assertEqual(rc, 0, out)
        self.assertEqual(negotiated(out), ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"), out)

    def test_default_groups(self):
        for group, shown in (("X25519", "X25519"), ("P-256", "prime256v1"),
                             ("P-384", "secp384r1")):
            with self.subTest(group=group):
                rc, out = s_client(MOAT.port("imaps"), "-groups", group)
                self.assertEqual(rc, 0, out)
                self.assertRegex(out, r"Server Temp Key: [^\n]*%s" % shown)


# ------------------------------------------------------------------ policy: TLS 1.3 only

class OwnMoat(unittest.TestCase):
    """A class whose tests share a moat of its own (cls.moat, started by
    setUpClass), stopped at the end; it must exit 0."""

    moat = None

    @classmethod
    def tearDownClass(cls):
        rc = cls.moat.stop()
        if rc != 0:
            raise AssertionError("moat exited with %s; log:\n%s" % (rc, cls.moat.log()))

    def port(self, name="imaps"):
        return self.moat.port(name)


class TestTls13Only(OwnMoat):
    """min_version = 1.3, groups = secp384r1, tls13_ciphers =
    TLS_AES_256_GCM_SHA384, ticket_lifetime = 5m."""

    @classmethod
    def setUpClass(cls):
        cls.moat = harness.Moat([
            harness.Listener("imaps", "imap", DOVECOT.imap_port),
            harness.Listener("pop3", "pop3", DOVECOT.pop3_port, tls="starttls"),
        ], name="moat-tls13", extra_tls="\n".join([
            "min_version = 1.3",
            "groups = secp384r1",
            "tls13_ciphers = TLS_AES_256_GCM_SHA384",
            "ticket_lifetime = 5m"])).start()

    def test_python_tls12_refused(self):
        a = Attempt(self.port(), harness.client_context(maximum=ssl.TLSVersion.TLSv1_2))
        self.assertFalse(a.ok)
        self.assertIsInstance(a.error, ssl.SSLError)
        ev = session_end(self.moat, a.client_port, a.t0)
        self.assertEqual(ev["tls"], "-", ev["_line"])

    def test_s_client_tls12_refused(self):
        for starttls, send in ((None, b"a LOGOUT\r\n"), ("pop3", b"QUIT\r\n")):
            with self.subTest(starttls=starttls):
                port = self.port("pop3" if starttls else "imaps")
                rc, out = s_client(port, "-tls1_2", starttls=starttls, send=send)
                self.assertNotEqual(rc, 0, out)
                self.assertIsNone(negotiated(out), out)
                self.assertIn("protocol version", out)

    def test_tls13_works_with_configured_suite(self):
        a = Attempt(self.port(), harness.client_context())
        self.assertTrue(a.ok, a.error)
        self.assertEqual(a.version, "TLSv1.3")
        self.assertEqual(a.cipher, "TLS_AES_256_GCM_SHA384")
        rc, out = s_client(self.port())
        self.assertEqual(rc, 0, out)
        self.assertEqual(negotiated(out), ("TLSv1.3", "TLS_AES_256_GCM_SHA384"), out)
        ev = session_end(self.moat, a.client_port, a.t0)
        self.assertEqual(ev["cipher"], "TLS_AES_256_GCM_SHA384", ev["_line"])

    def test_other_tls13_suites_refused(self):
        for suite in ("TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"):
            with self.subTest(suite=suite):
                rc, out = s_client(self.port(), "-ciphersuites", suite)
                self.assertNotEqual(rc, 0, out)
                self.assertIsNone(negotiated(out), out)
                self.assertFalse(greeted(out), out)

    def test_group_x25519_refused(self):
        for group in ("X25519", "P-256"):
            with self.subTest(group=group):
                rc, out = s_client(self.port(), "-groups", group)
                self.assertNotEqual(rc, 0, out)
                self.assertIsNone(negotiated(out), out)
                self.assertFalse(greeted(out), out)

    def test_group_p384_works(self):
        rc, out = s_client(self.port(), "-groups", "P-384")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"Server Temp Key: ECDH, secp384r1")
        self.assertTrue(greeted(out), out)
        # A client offering X25519 first gets a HelloRetryRequest for P-384.
        rc, out = s_client(self.port(), "-groups", "X25519:P-384")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"Server Temp Key: ECDH, secp384r1")

    def test_ticket_lifetime_and_resumption(self):
        out1, out2 = resume_pair(self, self.port())
        self.assertIn("TLS session ticket lifetime hint: 300 (seconds)", out1)
        self.assertEqual(reuse_state(out2), "Reused", out2)

    @unittest.skipUnless(shutil.which("sslscan"), "sslscan is not installed")
    def test_scan(self):
        test = sslscan(self.port())
        protocols = {(p.get("type"), p.get("version")): p.get("enabled")
                     for p in test.findall("protocol")}
        self.assertEqual(protocols, {("ssl", "2"): "0", ("ssl", "3"): "0", ("tls", "1.0"): "0",
                                     ("tls", "1.1"): "0", ("tls", "1.2"): "0",
                                     ("tls", "1.3"): "1"})
        ciphers = {(c.get("sslversion"), c.get("cipher")) for c in test.findall("cipher")}
        self.assertEqual(ciphers, {("TLSv1.3", "TLS_AES_256_GCM_SHA384")})
        groups = {g.get("name").split()[0] for g in test.findall("group")}
        self.assertEqual(groups, {"secp384r1"})


# ------------------------------------------------------------------ policy: client order

class TestClientCipherOrder(OwnMoat):
    """prefer_server_ciphers = no, session_tickets = no, tls12_ciphers in
    IANA names separated by a space (two ECDSA suites), groups = "P-256,
    x25519" (an alias name, ", " as separator)."""

    @classmethod
    def setUpClass(cls):
        cls.moat = harness.Moat([
            harness.Listener("imaps", "imap", DOVECOT.imap_port),
            harness.Listener("imap", "imap", DOVECOT.imap_port, tls="starttls"),
        ], name="moat-client-order", extra_tls="\n".join([
            "prefer_server_ciphers = no",
            "session_tickets = no",
            "tls12_ciphers = TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 "
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            "groups = P-256, x25519"])).start()

    def test_tls13_client_order(self):
        rc, out = s_client(self.port(), "-tls1_3", "-ciphersuites",
                           "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256")
        self.assertEqual(rc, 0, out)
        self.assertEqual(negotiated(out), ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"), out)
        rc, out = s_client(self.port(), "-tls1_3", "-ciphersuites",
                           "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256")
        self.assertEqual(rc, 0, out)
        self.assertEqual(negotiated(out), ("TLSv1.3", "TLS_AES_256_GCM_SHA384"), out)

    def test_tls12_client_order(self):
        for client, want in (("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256",
                              "ECDHE-ECDSA-CHACHA20-POLY1305"),
                             ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305",
                              "ECDHE-ECDSA-AES128-GCM-SHA256")):
            with self.subTest(client=client):
                rc, out = s_client(self.port(), "-tls1_2", "-cipher", client)
                self.assertEqual(rc, 0, out)
                self.assertEqual(negotiated(out), ("TLSv1.2", want), out)

    def test_tls12_suites_narrowed(self):
        rc, out = s_client(self.port(), "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384")
        self.assertNotEqual(rc, 0, out)
        self.assertIsNone(negotiated(out), out)
        self.assertFalse(greeted(out), out)

    def test_groups_by_alias(self):
        rc, out = s_client(self.port(), "-groups", "P-256")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"Server Temp Key: [^\n]*prime256v1")
        rc, out = s_client(self.port(), "-groups", "P-384")
        self.assertNotEqual(rc, 0, out)
        self.assertIsNone(negotiated(out), out)

    def test_no_tickets_never_reused(self):
        for ver in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=ver):
                start = len(self.moat.log())
                sni = "no-tickets%s.moat.invalid" % ver
                out1, out2 = resume_pair(self, self.port(), ver, need_session=False,
                                         servername=sni)
                self.assertNotIn("TLS session ticket:", out1)
                self.assertNotIn("TLS session ticket lifetime hint", out1)
                self.assertEqual(reuse_state(out1), "New", out1)
                if out2 is not None:
                    self.assertEqual(reuse_state(out2), "New", out2)
                    self.assertTrue(greeted(out2), out2)
                ev = session_ends_since(self.moat, start, "imaps", sni,
                                        1 if out2 is None else 2)
                self.assertEqual({e["resumed"] for e in ev}, {"no"})
        out1, out2 = resume_pair(self, self.port("imap"), "-tls1_2", starttls="imap",
                                 need_session=False)
        self.assertNotIn("TLS session ticket:", out1)
        if out2 is not None:
            self.assertEqual(reuse_state(out2), "New", out2)

    def test_python_never_reused(self):
        for maximum in (None, ssl.TLSVersion.TLSv1_2):
            with self.subTest(maximum=maximum):
                ctx = harness.client_context(maximum=maximum)
                a = Attempt(self.port(), ctx)
                self.assertTrue(a.ok, a.error)
                b = Attempt(self.port(), ctx, session=a.session)
                self.assertTrue(b.ok, b.error)
                self.assertFalse(b.reused)
                self.assertEqual(session_end(self.moat, b.client_port, b.t0)["resumed"], "no")


# ------------------------------------------------------------------ moat -t

class TestConfigCheck(unittest.TestCase):
    """moat -t -c FILE: FILE:LINE: message on stderr and exit 1 for what is
    wrong; warnings (exit 0) for what is merely worrying."""

    @classmethod
    def setUpClass(cls):
        cls.dir = harness.new_dir("config-check")
        c = harness.certs()
        cls.cert, cls.key = c.fullchain, c.key
        # The test key, readable by everyone.
        cls.open_key = os.path.join(cls.dir, "open.key")
        shutil.copyfile(c.key, cls.open_key)
        os.chmod(cls.open_key, 0o644)
        cls.soon = harness.mkcert("tls-soon", "ec", 2, "localhost", "DNS:localhost")
        cls.forty = harness.mkcert("tls-forty", "ec", 40, "localhost", "DNS:localhost")
        cls.n = 0

    def write(self, tls_lines=(), listener_lines=(), extra=""):
        """A config with [tls] (the test certificate, plus tls_lines) and
        one listener (plus listener_lines); returns (path, text)."""
        lines = ["[moat]", "workers = 1"] + harness.AS_ROOT + ["", "[tls]",
                                                             "certificate = %s" % self.cert]
        if not any(l.startswith("key ") for l in tls_lines):
            lines.append("key = %s" % self.key)
        lines += list(tls_lines)
        lines += ["", "[listener imaps]", "address = 127.0.0.1:%d" % harness.free_port(),
                  "protocol = imap", "backend = 127.0.0.1:%d" % harness.free_port()]
        lines += list(listener_lines)
        if extra:
            lines += ["", extra]
        text = "\n".join(lines) + "\n"
        type(self).n += 1
        path = os.path.join(self.dir, "c%d.ini" % self.n)
        with open(path, "w") as f:
            f.write(text)
        return path, text

    @staticmethod
    def line_of(text, prefix):
        for i, l in enumerate(text.splitlines(), 1):
            if l.startswith(prefix):
                return i
        raise AssertionError("no line %r" % prefix)

    def check(self, path):
        return harness.run_moat_cli(["-t", "-c", path])

    def assert_error(self, path, text, line_prefix, *needles):
        r = self.check(path)
        self.assertEqual(r.returncode, 1, r.stderr)
        lineno = self.line_of(text, line_prefix)
        m = re.search(r"(?m)^%s:%d: (.*)$" % (re.escape(path), lineno), r.stderr)
        self.assertIsNotNone(m, "no %s:%d: line in:\n%s" % (path, lineno, r.stderr))
        for n in needles:
            self.assertIn(n, m.group(1), r.stderr)
        return r

    def test_valid_config(self):
        path, _ = self.write(["min_version = 1.2", "prefer_server_ciphers = no",
                              "session_tickets = no", "ticket_lifetime = 1h",
                              "key_permissions = strict", "expiry_warning_days = 10",
                              "tls13_ciphers = TLS_CHACHA20_POLY1305_SHA256 "
                              "TLS_AES_128_GCM_SHA256",
                              "groups = secp384r1, x25519"],
                             ["client_certificate = optional",
                              "client_ca = %s" % harness.certs().ca])
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK", r.stdout + r.stderr)

    def test_unknown_tls12_cipher(self):
        path, text = self.write(["tls12_ciphers = ECDHE-ECDSA-AES128-GCM-SHA256:"
                                 "ECDHE-RSA-DES-CBC3-SHA"])
        self.assert_error(path, text, "tls12_ciphers", "ECDHE-RSA-DES-CBC3-SHA")

    def test_tls12_cbc_suite_refused(self):
        # A real suite, but CBC: moat does not offer it.
        path, text = self.write(["tls12_ciphers = ECDHE-ECDSA-AES128-SHA256"])
        self.assert_error(path, text, "tls12_ciphers", "ECDHE-ECDSA-AES128-SHA256")

    def test_unknown_tls13_cipher(self):
        path, text = self.write(["tls13_ciphers = TLS_AES_128_GCM_SHA256 TLS_AES_128_CCM_SHA256"])
        self.assert_error(path, text, "tls13_ciphers", "TLS_AES_128_CCM_SHA256")

    def test_unknown_group(self):
        path, text = self.write(["groups = x25519:secp999r1"])
        self.assert_error(path, text, "groups", "secp999r1")

    def test_bad_min_version(self):
        path, text = self.write(["min_version = 1.1"])
        self.assert_error(path, text, "min_version", "1.1")

    def test_key_readable_by_others_refused_as_root(self):
        if os.geteuid() != 0:
            self.skipTest("key_permissions = auto is strict only as root")
        path, text = self.write(["key = %s" % self.open_key])
        self.assert_error(path, text, "key = ", self.open_key, "chmod 600")

    def test_key_readable_by_others_strict(self):
        path, text = self.write(["key = %s" % self.open_key, "key_permissions = strict"])
        self.assert_error(path, text, "key = ", self.open_key, "chmod 600")

    def test_key_readable_by_others_warn(self):
        path, _ = self.write(["key = %s" % self.open_key, "key_permissions = warn"])
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"(?m)^.*event=key_permissions .*$", r.stderr)
        self.assertIsNotNone(m, r.stderr)
        self.assertIn(self.open_key, m.group(0))
        self.assertIn("mode=0644", m.group(0))
        self.assertIn("level=warn", m.group(0))

    def test_key_of_another_certificate(self):
        path, text = self.write(["key = %s" % CERTS["mail"][1]])
        self.assert_error(path, text, "key = ", CERTS["mail"][1])

    def test_certificate_expiring_soon(self):
        path, _ = self.write(extra="[certificate soon]\ncertificate = %s\nkey = %s"
                             % self.soon)
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"(?m)^.*event=certificate_expiring .*$", r.stderr)
        self.assertIsNotNone(m, r.stderr)
        line = m.group(0)
        self.assertIn("name=soon", line)
        self.assertIn(self.soon[0], line)
        self.assertIn("level=warn", line)
        # mkcert's notAfter is exactly 2 days after issue: 1 full day left
        # once a second has passed, 2 within the same second.
        days = int(re.search(r"days_left=(\d+)", line).group(1))
        self.assertIn(days, (1, 2), line)
        # Only that certificate: the default one has two years.
        self.assertEqual(len(re.findall(r"event=certificate_expiring", r.stderr)), 1, r.stderr)

    def test_expiry_warning_days(self):
        extra = "[certificate forty]\ncertificate = %s\nkey = %s" % self.forty
        path, _ = self.write(extra=extra)
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("event=certificate_expiring", r.stderr)
        path, _ = self.write(["expiry_warning_days = 50"], extra=extra)
        r = self.check(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r"(?m)^.*event=certificate_expiring .*$", r.stderr)
        self.assertIsNotNone(m, r.stderr)
        self.assertIn("name=forty", m.group(0))
        self.assertRegex(m.group(0), r"days_left=(39|40)\b")

    def test_required_without_client_ca(self):
        path, text = self.write(listener_lines=["client_certificate = required"])
        self.assert_error(path, text, "client_certificate", "client_ca")

    def test_client_ca_missing_file(self):
        missing = os.path.join(self.dir, "no-such-ca.pem")
        path, text = self.write(listener_lines=["client_certificate = optional",
                                                "client_ca = %s" % missing])
        self.assert_error(path, text, "client_ca", missing)

    def test_unknown_certificate_name(self):
        path, text = self.write(listener_lines=["certificates = default nosuch"])
        self.assert_error(path, text, "certificates", "nosuch")

    def test_errors_do_not_start_moat(self):
        # The same checks at startup: moat refuses to run.
        path, _ = self.write(["groups = x25519:secp999r1"])
        r = harness.run_moat_cli(["-c", path], timeout=30)
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn("secp999r1", r.stderr)


if __name__ == "__main__":
    unittest.main()
