"""The interop matrix: every combination a real client can negotiate with
moat, end to end, both TLS versions, resumption, real data through the
relay, and a tampered record.

moat's default build runs its crypto (AEAD records, ECDHE key pairs and
agreement, ECDSA and RSA signatures) through OpenSSL's libcrypto beneath
mbedTLS (a PSA driver); `make CRYPTO=builtin` is the pure-mbedTLS path.
This module must pass against both (MOAT=build/builtin/moat
MOAT_CRYPTO=builtin for the second).

One Dovecot holds one account, "interop", whose INBOX has one message
(UID 1): about 200 KiB of CRLF lines with 8-bit bytes (0x80-0xff), lines
starting with "." and a line that is just "." (POP3 dot-stuffing); far
more than one 16 KiB TLS record. A second mailbox, "up", takes uploads: an
IMAP client APPENDs another 200 KiB message (different bytes), FETCHes it
back and expunges it, so many records go both ways.

One moat serves an ECDSA P-256 certificate (the harness's) and an RSA 2048
twin (same names; moat picks by what the client offers) on two listeners:

  imaps    implicit TLS, IMAP -> Dovecot
  pop3s    implicit TLS, POP3 -> Dovecot

The rows, one subTest each (named):

  s_client TLS 1.3   3 suites x 3 groups (X25519, P-256, P-384) x 2
                     certificates (-sigalgs chooses ECDSA or RSA-PSS): the
                     negotiated version, suite, group (Server Temp Key),
                     leaf key and signature type from s_client's output;
                     LOGIN, APPEND + FETCH of the upload, FETCH of the
                     message, byte for byte; then -sess_in: "Reused", LOGIN
                     and FETCH again; moat's session_end lines agree.
  s_client TLS 1.2   each of moat's 6 suites x 3 groups, the same checks.
                     A TLS 1.2 client lists its ECDHE groups and the curves
                     it accepts in server certificates in one extension
                     (RFC 8422), so an ECDSA row for X25519 offers
                     "X25519:P-256" (moat prefers X25519); ECDSA with
                     P-384 cannot be negotiated against a P-256 certificate
                     and moat's group order (x25519, secp256r1, secp384r1):
                     a client offering only X25519 or only P-384 with ECDSA
                     suites only must be refused (handshake_failure), and
                     one offering every suite must get the RSA certificate.
  imaplib/poplib     TLS 1.3 (moat's first suite: Python cannot choose 1.3
                     suites) and each TLS 1.2 suite pinned with
                     set_ciphers(): LOGIN, APPEND/FETCH or RETR byte for
                     byte; a second connection with session= must resume.
  curl               imaps:// UID 1 with --tlsv1.2 --tls-max 1.2 and with
                     --tlsv1.3, --curves for each group; pop3s:// with
                     each version.
  mbsync, fetchmail  over IMAPS, TLS 1.2 and TLS 1.3 each.
  tampering          Python's ssl over MemoryBIO: a valid handshake (each
                     TLS 1.2 suite; each TLS 1.3 suite, chosen in a child
                     Python through OPENSSL_CONF), one good command, then
                     one application data record with a flipped byte,
                     before and after LOGIN: moat answers with exactly one
                     bad_record_mac alert, closes, logs event=tls_error,
                     and goes on serving.
"""

import hashlib
import imaplib
import json
import os
import poplib
import random
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
import unittest

import harness

LOOPBACK = harness.LOOPBACK
HERE = os.path.dirname(os.path.abspath(__file__))

USER = "interop"
PASSWORD = "interop-secret-8"
UPLOAD_BOX = "up"

DOVECOT = None
MOAT = None
MESSAGE = None      # what Dovecot holds as INBOX UID 1
UPLOAD = None       # what IMAP clients APPEND to UPLOAD_BOX
LEAF_DER = {}       # "ecdsa" / "rsa" -> the leaf certificate, DER
RSA_CERT = None     # (chain, key)

MESSAGE_SIZE = 200 * 1024

TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                "TLS_CHACHA20_POLY1305_SHA256")
# moat's TLS 1.2 suites: OpenSSL's names -> the IANA names moat logs.
TLS12_SUITES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}
# A group's s_client name -> its "Server Temp Key:" line (OpenSSL 3).
GROUPS = {"X25519": "X25519, 253 bits",
          "P-256": "ECDH, prime256v1, 256 bits",
          "P-384": "ECDH, secp384r1, 384 bits"}
# The leaf certificates: s_client's "a:PKEY:" of depth 0 and key bits.
CERT_KEYS = {"ecdsa": ("id-ecPublicKey", 256), "rsa": ("rsaEncryption", 2048)}
# TLS 1.3: the signature algorithm a client offers to get that certificate.
SIGALGS13 = {"ecdsa": "ecdsa_secp256r1_sha256", "rsa": "rsa_pss_rsae_sha256"}
# s_client's "Peer signature type:" for (version, certificate).
SIG_TYPE = {("TLSv1.3", "ecdsa"): "ECDSA", ("TLSv1.3", "rsa"): "RSA-PSS",
            ("TLSv1.2", "ecdsa"): "ECDSA", ("TLSv1.2", "rsa"): "RSA"}

# moat's first choices (prefer_server_ciphers = yes, the default).
FIRST13 = "TLS_AES_128_GCM_SHA256"
FIRST12 = {"ecdsa": "ECDHE-ECDSA-AES128-GCM-SHA256", "rsa": "ECDHE-RSA-AES128-GCM-SHA256"}


def iana(suite):
    return TLS12_SUITES.get(suite, suite)


def cert_of(suite):
    """The certificate a TLS 1.2 suite needs."""
    return "rsa" if "-RSA-" in suite else "ecdsa"


def ca():
    return harness.certs().ca


# ------------------------------------------------------------------ messages

_ALPHABET = bytes(range(0x20, 0x7f)) + bytes(range(0x80, 0x100))


def eight_bit_message(seed, subject, size=MESSAGE_SIZE):
    """A deterministic RFC 5322 message of exactly `size` bytes: ASCII
    headers, then CRLF lines of 20..78 bytes drawn from printable ASCII
    and 0x80-0xff (never CR, LF or NUL); about one line in 40 starts with
    ".", and one line is just "."."""
    rng = random.Random(seed)
    head = ("From: interop tests <tests@localhost>\r\n"
            "To: %s <%s@localhost>\r\n"
            "Subject: %s\r\n"
            "Date: Mon, 01 Jan 2024 00:02:00 +0000\r\n"
            "Message-ID: <interop-%d@localhost>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=iso-8859-1\r\n"
            "Content-Transfer-Encoding: 8bit\r\n"
            "\r\n" % (USER, USER, subject, seed)).encode()
    body = bytearray(b".\r\n..\r\n.leading dot \xe9\xe8\r\n")
    room = size - len(head)
    while room - len(body) > 90:
        n = rng.randint(20, 78)
        line = bytes(rng.choice(_ALPHABET) for _ in range(n))
        if rng.randrange(40) == 0:
            line = b"." + line[1:]
        body += line + b"\r\n"
    last = room - len(body) - 2
    body += bytes(rng.choice(_ALPHABET) for _ in range(last)) + b"\r\n"
    msg = head + bytes(body)
    assert len(msg) == size, (len(msg), size)
    return msg


def first_pem_der(path):
    with open(path) as f:
        text = f.read()
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", text, re.S)
    return ssl.PEM_cert_to_DER_cert(m.group(0))


# ------------------------------------------------------------------ module fixture

def setUpModule():
    global DOVECOT, MOAT, MESSAGE, UPLOAD, RSA_CERT
    c = harness.certs()
    RSA_CERT = harness.mkcert("interop-rsa", "rsa", 365, "localhost", "DNS:localhost",
                              "IP:127.0.0.1")
    LEAF_DER["ecdsa"] = first_pem_der(c.fullchain)
    LEAF_DER["rsa"] = first_pem_der(RSA_CERT[0])
    MESSAGE = eight_bit_message(8, "moat interop 8-bit")
    UPLOAD = eight_bit_message(88, "moat interop upload")
    assert MESSAGE != UPLOAD and len(MESSAGE) > 12 * 16384
    assert re.search(rb"[\x80-\xff]", MESSAGE) and b"\r\n.\r\n" in MESSAGE
    DOVECOT = harness.Dovecot(users={USER: PASSWORD},
                              messages={USER: [("1700000001.M1P1.interop", MESSAGE)]},
                              name="dovecot-interop").start()
    if DOVECOT.message(1, USER) != MESSAGE:
        raise AssertionError("Dovecot's copy of the message differs from what was placed")
    # The upload mailbox, made on Dovecot directly (plaintext, loopback).
    m = imaplib.IMAP4(LOOPBACK, DOVECOT.imap_port, timeout=harness.scaled(30))
    try:
        m.login(USER, PASSWORD)
        typ, data = m.create(UPLOAD_BOX)
        if typ != "OK":
            raise AssertionError("CREATE %s: %s %r" % (UPLOAD_BOX, typ, data))
        m.logout()
    finally:
        close_quietly(m)
    MOAT = harness.Moat([
        harness.Listener("imaps", "imap", DOVECOT.imap_port),
        harness.Listener("pop3s", "pop3", DOVECOT.pop3_port),
    ], name="moat-interop",
        extra="[certificate rsa]\ncertificate = %s\nkey = %s\n" % RSA_CERT).start()


def tearDownModule():
    rc = 0
    if MOAT is not None:
        rc = MOAT.stop(timeout=60)
    if DOVECOT is not None:
        DOVECOT.stop()
    if MOAT is not None and rc != 0:
        raise AssertionError("moat exited with status %s; log tail:\n%s"
                             % (rc, "\n".join(MOAT.log().splitlines()[-40:])))


# ------------------------------------------------------------------ moat's log

def log_fields(line):
    fields = {}
    for k, v in re.findall(r'([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|\S+)', line):
        fields[k] = v[1:-1] if v.startswith('"') else v
    fields["_line"] = line
    return fields


def log_mark():
    return len(MOAT.log())


def session_ends(testcase, start, count, listener="imaps", timeout=20):
    """Waits for `count` event=session_end lines of the listener in moat's
    log after offset `start` (rows run one after the other, so these are
    the row's own sessions) and returns their fields; fails if there are
    more."""
    rx = re.compile(r"(?m)^[^\n]*event=session_end listener=%s [^\n]*$" % re.escape(listener))
    deadline = time.monotonic() + harness.scaled(timeout)
    while True:
        text = MOAT.log()[start:]
        text = text[:text.rfind("\n") + 1]
        found = [log_fields(m.group(0)) for m in rx.finditer(text)]
        if len(found) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    testcase.assertEqual(len(found), count, "session_end lines since the row began:\n%s"
                         % "\n".join(f["_line"] for f in found))
    return found


def assert_session(testcase, ev, version, suite, resumed, user=USER):
    line = ev["_line"]
    testcase.assertEqual(ev["tls"], version, line)
    testcase.assertEqual(ev["cipher"], iana(suite), line)
    testcase.assertEqual(ev["resumed"], resumed, line)
    testcase.assertEqual(ev["user"], user, line)
    testcase.assertEqual(ev["sni"], "localhost", line)


def assert_moat_alive(testcase):
    testcase.assertIsNone(MOAT.proc.poll(), "moat exited; log tail:\n%s"
                          % "\n".join(MOAT.log().splitlines()[-40:]))


# ------------------------------------------------------------------ IMAP streams

class ImapResponse:
    def __init__(self, text, literals):
        self.text = text            # the lines, each literal cut out (its {n} stays)
        self.literals = literals


def parse_imap(data, last_tag):
    """Splits an IMAP server's byte stream, from its greeting on, into
    responses (literals read by their announced sizes) up to and
    including the tagged response for last_tag; raises AssertionError when
    the stream ends or is not IMAP first."""
    tag = last_tag.encode() + b" "
    out = []
    pos = 0
    while True:
        parts, lits = [], []
        while True:
            end = data.find(b"\r\n", pos)
            if end < 0:
                raise AssertionError("stream ends inside a response after %d responses; "
                                     "last ones: %r; rest: %r"
                                     % (len(out), [r.text[:80] for r in out[-3:]],
                                        data[pos:pos + 300]))
            line = data[pos:end + 2]
            pos = end + 2
            parts.append(line)
            m = re.search(rb"\{(\d+)\}\r\n\Z", line)
            if not m:
                break
            n = int(m.group(1))
            if pos + n > len(data):
                raise AssertionError("literal of %d bytes cut short at %d" % (n, len(data) - pos))
            lits.append(data[pos:pos + n])
            pos += n
        r = ImapResponse(b"".join(parts), lits)
        if not (r.text.startswith(b"* ") or r.text.startswith(b"+ ")
                or re.match(rb"[a-z] ", r.text)):
            raise AssertionError("not an IMAP response: %r (after %r)"
                                 % (r.text[:200], [x.text[:80] for x in out[-3:]]))
        out.append(r)
        if r.text.startswith(tag):
            return out


def tagged(responses):
    return {r.text.split(b" ", 1)[0].decode(): r.text for r in responses
            if re.match(rb"[a-z] ", r.text)}


def fetched(responses):
    """The BODY[] literals of "* 1 FETCH (BODY[] {n})" responses, in order;
    asserts each response has exactly that form."""
    bodies = []
    for r in responses:
        if r.text.startswith(b"* 1 FETCH "):
            n = len(r.literals[0]) if r.literals else -1
            if r.text != b"* 1 FETCH (BODY[] {%d}\r\n)\r\n" % n:
                raise AssertionError("unexpected FETCH response %r" % r.text[:200])
            bodies.append(r.literals[0])
    return bodies


def login_cmd(tag):
    return ('%s LOGIN %s "%s"\r\n' % (tag, USER, PASSWORD)).encode()


# The first session of a row: LOGIN, APPEND (LITERAL+) the upload, read it
# back, expunge it, read the message. All at once on s_client's stdin.
def first_script():
    return (login_cmd("a")
            + b"b APPEND %s {%d+}\r\n" % (UPLOAD_BOX.encode(), len(UPLOAD)) + UPLOAD + b"\r\n"
            + b"c SELECT %s\r\n" % UPLOAD_BOX.encode()
            + b"d FETCH 1 BODY.PEEK[]\r\n"
            + b"e STORE 1 +FLAGS.SILENT (\\Deleted)\r\n"
            + b"f EXPUNGE\r\n"
            + b"g EXAMINE INBOX\r\n"
            + b"h FETCH 1 BODY.PEEK[]\r\n"
            + b"i LOGOUT\r\n")


FIRST_SCRIPT_OK = {
    "a": rb"a OK \[CAPABILITY [^\]\r\n]*\] Logged in\r\n",
    "b": rb"b OK \[APPENDUID \d+ \d+\] Append completed",
    "c": rb"c OK \[READ-WRITE\] Select completed",
    "d": rb"d OK Fetch completed",
    "e": rb"e OK Store completed",
    "f": rb"f OK Expunge completed",
    "g": rb"g OK \[READ-ONLY\] Examine completed",
    "h": rb"h OK Fetch completed",
    "i": rb"i OK Logout completed",
}

# The resumed session: LOGIN and the message again.
SECOND_SCRIPT_OK = {
    "a": FIRST_SCRIPT_OK["a"],
    "b": rb"b OK \[READ-ONLY\] Examine completed",
    "c": rb"c OK Fetch completed",
    "d": rb"d OK Logout completed",
}


def second_script():
    return login_cmd("a") + b"b EXAMINE INBOX\r\nc FETCH 1 BODY.PEEK[]\r\nd LOGOUT\r\n"


# ------------------------------------------------------------------ openssl s_client

class SClient:
    """One openssl s_client run: exit status, the handshake report (text
    before the server's first byte), the server's byte stream and
    stderr."""

    def __init__(self, port, extra, send, timeout=90):
        self.argv = ["openssl", "s_client", "-connect", "%s:%d" % (LOOPBACK, port),
                     "-servername", "localhost", "-CAfile", ca(), "-verify_return_error",
                     "-verify_hostname", "localhost", "-ign_eof", "-nocommands"] + list(extra)
        r = harness.run_cmd(self.argv, timeout=timeout, input=send)
        self.rc = r.returncode
        self.stdout = r.stdout
        self.stderr = r.stderr.decode(errors="replace")
        i = self.stdout.find(b"\n* OK ")
        self.report = self.stdout[:i + 1 if i >= 0 else len(self.stdout)].decode(errors="replace")
        self.stream = self.stdout[i + 1:] if i >= 0 else b""

    def command(self):
        return " ".join(self.argv)

    def where(self):
        """For failure messages: the command, the report, stderr, the
        stream's start."""
        return "%s\n--- report:\n%s\n--- stderr:\n%s\n--- stream (%d bytes): %r" % (
            self.command(), self.report, self.stderr, len(self.stream), self.stream[:400])

    def negotiated(self):
        m = re.search(r"(?m)^(New|Reused), (TLSv1\.\d), Cipher is (\S+)$", self.report)
        return m.groups() if m else None

    def group(self):
        """The key exchange group: OpenSSL 3.2+ names TLS 1.3's
        ("Negotiated TLS1.3 group: X25519"), older ones print "Server Temp
        Key: X25519, 253 bits"; returned as a GROUPS key, or the line."""
        m = re.search(r"(?m)^Negotiated TLS1\.3 group: (\S+)$", self.report)
        if m:
            names = {"X25519": "X25519", "secp256r1": "P-256", "secp384r1": "P-384"}
            return names.get(m.group(1), m.group(0))
        m = re.search(r"(?m)^Server Temp Key: (.*)$", self.report)
        if not m:
            return None
        return {v: k for k, v in GROUPS.items()}.get(m.group(1), m.group(0))

    def leaf_key(self):
        m = re.search(r"(?m)^ 0 s:.*\n\s+i:.*\n\s+a:PKEY: ([^,]+), (\d+) \(bit\)", self.report)
        return (m.group(1), int(m.group(2))) if m else None

    def line(self, prefix):
        m = re.search(r"(?m)^[ \t]*%s(.*)$" % re.escape(prefix), self.report)
        return m.group(1) if m else None


class TestSClient(unittest.TestCase):
    """openssl s_client: what was negotiated, and real data through it."""

    def check_handshake(self, s, version, suite, group, cert):
        w = s.where()
        self.assertEqual(s.negotiated(), ("New", version, suite), w)
        self.assertEqual(s.group(), group, w)
        self.assertEqual(s.leaf_key(), CERT_KEYS[cert], w)
        self.assertEqual(s.line("Server public key is "), "%d bit" % CERT_KEYS[cert][1], w)
        self.assertEqual(s.line("Peer signature type: "), SIG_TYPE[(version, cert)], w)
        self.assertEqual(s.line("Peer signing digest: "), "SHA256", w)
        self.assertEqual(s.line("Verify return code: "), "0 (ok)", w)
        self.assertRegex(s.report, r"(?m)^subject=O ?= ?moat tests, CN ?= ?localhost$", w)

    def check_stream(self, s, last_tag, oks, bodies):
        w = s.where()
        self.assertTrue(s.stream.startswith(b"* OK [CAPABILITY "), w)
        try:
            responses = parse_imap(s.stream, last_tag)
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, w))
        got = tagged(responses)
        self.assertEqual(sorted(got), sorted(oks), w)
        for tag, rx in oks.items():
            self.assertRegex(got[tag], rx, w)
        got_bodies = fetched(responses)
        self.assertEqual(len(got_bodies), len(bodies), w)
        for i, (g, want) in enumerate(zip(got_bodies, bodies)):
            if g != want:
                self.fail("FETCH %d: %d bytes (sha256 %s), want %d (sha256 %s)\n%s"
                          % (i + 1, len(g), hashlib.sha256(g).hexdigest()[:16], len(want),
                             hashlib.sha256(want).hexdigest()[:16], s.command()))
        return responses

    def run_row(self, version, suite, group, cert, extra):
        """One row: a full session saving its session, then a resumed one."""
        port = MOAT.port("imaps")
        sess = os.path.join(harness.new_dir("interop-sess"), "session.pem")
        start = log_mark()
        s = SClient(port, list(extra) + ["-sess_out", sess], first_script())
        self.assertEqual(s.rc, 0, s.where())
        self.check_handshake(s, version, suite, group, cert)
        responses = self.check_stream(s, "i", FIRST_SCRIPT_OK, [UPLOAD, MESSAGE])
        # The upload box held exactly the row's upload.
        self.assertIn(b"* 1 EXISTS\r\n", [r.text for r in responses], s.where())
        self.assertTrue(os.path.exists(sess), "s_client saved no session\n" + s.where())

        r = SClient(port, list(extra) + ["-sess_in", sess], second_script())
        self.assertEqual(r.rc, 0, r.where())
        self.assertEqual(r.negotiated(), ("Reused", version, suite), r.where())
        self.check_stream(r, "d", SECOND_SCRIPT_OK, [MESSAGE])

        first, second = session_ends(self, start, 2)
        assert_session(self, first, version, suite, "no")
        assert_session(self, second, version, suite, "yes")
        self.assertEqual(int(first["bytes_in"]), len(first_script()), first["_line"])

    def test_tls13(self):
        for suite in TLS13_SUITES:
            for group in GROUPS:
                for cert in ("ecdsa", "rsa"):
                    with self.subTest(row="s_client TLSv1.3 %s %s %s" % (suite, group, cert)):
                        self.run_row("TLSv1.3", suite, group, cert,
                                     ["-tls1_3", "-ciphersuites", suite, "-groups", group,
                                      "-sigalgs", SIGALGS13[cert]])

    def test_tls12(self):
        for suite in TLS12_SUITES:
            cert = cert_of(suite)
            for group in GROUPS:
                if cert == "ecdsa" and group == "P-384":
                    continue        # not negotiable: see the module's docstring
                # An ECDSA client must also list the certificate's curve.
                offer = group if cert == "rsa" or group == "P-256" else group + ":P-256"
                with self.subTest(row="s_client TLSv1.2 %s %s (offers %s)" % (suite, group, offer)):
                    self.run_row("TLSv1.2", suite, group, cert,
                                 ["-tls1_2", "-cipher", suite, "-groups", offer])

    def test_tls12_certificate_follows_client_curves(self):
        # RFC 8422 5.1/5.3: a TLS 1.2 server's ECDSA certificate must be on a
        # curve the client listed. A client offering every suite but no
        # P-256 gets the RSA certificate, with moat's first RSA suite.
        # (mbedTLS 3.6's ssl_pick_cert() makes that check only without
        # MBEDTLS_USE_PSA_CRYPTO: under it, it compares a psa_algorithm_t
        # with MBEDTLS_PK_ECDSA and never matches. CRYPTO=openssl turns
        # USE_PSA_CRYPTO on, so there OpenSSL clients get the P-256 leaf
        # and abort with "wrong curve"; this and the next test catch it.)
        for offer, group in (("X25519", "X25519"), ("P-384", "P-384"),
                             ("X25519:P-384", "X25519")):
            with self.subTest(row="s_client TLSv1.2 all suites, groups %s only" % offer):
                self.run_row("TLSv1.2", FIRST12["rsa"], group, "rsa",
                             ["-tls1_2", "-groups", offer])

    def test_tls12_ecdsa_suites_without_certificate_curve_refused(self):
        # The same client with ECDSA suites only: nothing moat may use, a
        # handshake_failure alert (40), no greeting.
        port = MOAT.port("imaps")
        for suite in (s for s in TLS12_SUITES if cert_of(s) == "ecdsa"):
            for offer in ("X25519", "P-384"):
                with self.subTest(row="s_client TLSv1.2 %s, groups %s only: refused"
                                      % (suite, offer)):
                    start = log_mark()
                    s = SClient(port, ["-tls1_2", "-cipher", suite, "-groups", offer],
                                b"a LOGOUT\r\n")
                    w = s.where()
                    self.assertNotEqual(s.rc, 0, w)
                    self.assertIn("SSL alert number 40", s.stderr, w)
                    self.assertEqual(s.negotiated(), None, w)
                    self.assertEqual(s.stream, b"", w)
                    ev = session_ends(self, start, 1)[0]
                    self.assertEqual((ev["tls"], ev["reason"]), ("-", "TLS handshake failed"),
                                     ev["_line"])
                    self.assertRegex(MOAT.log()[start:], r"event=handshake_failed listener=imaps ")


# ------------------------------------------------------------------ Python

class Imaps(imaplib.IMAP4_SSL):
    """imaplib over TLS to 127.0.0.1 with SNI "localhost", offering a
    session to resume."""

    def __init__(self, port, ctx, session=None):
        self._session = session
        super().__init__("localhost", port, ssl_context=ctx, timeout=harness.scaled(60))

    def _create_socket(self, timeout):
        sock = socket.create_connection((LOOPBACK, self.port), timeout)
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host,
                                            session=self._session)


class Pop3s(poplib.POP3_SSL):
    """poplib over TLS, the same way."""

    def __init__(self, port, ctx, session=None):
        self._session = session
        super().__init__("localhost", port, context=ctx, timeout=harness.scaled(60))

    def _create_socket(self, timeout):
        sock = socket.create_connection((LOOPBACK, self.port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self.host, session=self._session)


def close_quietly(client):
    for name in ("shutdown", "close"):
        f = getattr(client, name, None)
        if f is not None:
            try:
                f()
            except (OSError, imaplib.IMAP4.error, poplib.error_proto):
                pass
            return


# Python's rows: (name, maximum version, set_ciphers() or None, version,
# suite, certificate).
PYTHON_ROWS = ([("TLSv1.3", None, None, "TLSv1.3", FIRST13, "ecdsa")]
               + [("TLSv1.2 " + s, ssl.TLSVersion.TLSv1_2, s, "TLSv1.2", s, cert_of(s))
                  for s in TLS12_SUITES])


def python_context(maximum, ciphers):
    ctx = harness.client_context(maximum=maximum)
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


class TestPython(unittest.TestCase):
    """imaplib and poplib, with a resumed second connection."""

    def check_tls(self, sock, version, suite, cert, reused):
        self.assertEqual(sock.version(), version)
        self.assertEqual(sock.cipher()[0], suite)
        self.assertEqual(sock.session_reused, reused)
        self.assertEqual(sock.getpeercert(binary_form=True), LEAF_DER[cert])

    def imap_fetch(self, m):
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        self.assertEqual(typ, "OK", data)
        self.assertEqual(len(data), 2, [d[:80] if isinstance(d, bytes) else d[0] for d in data])
        head, body = data[0]
        self.assertEqual(data[1], b")")
        self.assertEqual(head, b"1 (BODY[] {%d}" % len(body))
        return body

    def test_imaplib(self):
        port = MOAT.port("imaps")
        for name, maximum, ciphers, version, suite, cert in PYTHON_ROWS:
            with self.subTest(row="imaplib " + name):
                ctx = python_context(maximum, ciphers)
                start = log_mark()
                m = Imaps(port, ctx)
                try:
                    self.check_tls(m.sock, version, suite, cert, False)
                    self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
                    typ, data = m.append(UPLOAD_BOX, None, None, UPLOAD)
                    self.assertEqual(typ, "OK", data)
                    self.assertRegex(data[0], rb"^\[APPENDUID \d+ \d+\] Append completed")
                    self.assertEqual(m.select(UPLOAD_BOX), ("OK", [b"1"]))
                    self.assertTrue(self.imap_fetch(m) == UPLOAD, "upload read back differs")
                    self.assertEqual(m.store("1", "+FLAGS.SILENT", "(\\Deleted)")[0], "OK")
                    self.assertEqual(m.expunge(), ("OK", [b"1"]))
                    self.assertEqual(m.select("INBOX", readonly=True), ("OK", [b"1"]))
                    self.assertTrue(self.imap_fetch(m) == MESSAGE, "message differs")
                    session = m.sock.session
                    self.assertEqual(m.logout()[0], "BYE")
                finally:
                    close_quietly(m)
                self.assertIsNotNone(session)
                m = Imaps(port, ctx, session)
                try:
                    self.check_tls(m.sock, version, suite, cert, True)
                    self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
                    self.assertEqual(m.select("INBOX", readonly=True), ("OK", [b"1"]))
                    self.assertTrue(self.imap_fetch(m) == MESSAGE, "message differs (resumed)")
                    self.assertEqual(m.logout()[0], "BYE")
                finally:
                    close_quietly(m)
                first, second = session_ends(self, start, 2)
                assert_session(self, first, version, suite, "no")
                assert_session(self, second, version, suite, "yes")

    def pop3_retr(self, p):
        self.assertEqual(p.stat(), (1, len(MESSAGE)))
        resp, lines, octets = p.retr(1)
        self.assertTrue(resp.startswith(b"+OK"), resp)
        self.assertEqual(octets, len(MESSAGE))
        return b"".join(l + b"\r\n" for l in lines)

    def test_poplib(self):
        port = MOAT.port("pop3s")
        for name, maximum, ciphers, version, suite, cert in PYTHON_ROWS:
            with self.subTest(row="poplib " + name):
                ctx = python_context(maximum, ciphers)
                start = log_mark()
                session = None
                for reused in (False, True):
                    p = Pop3s(port, ctx, session)
                    try:
                        self.check_tls(p.sock, version, suite, cert, reused)
                        self.assertTrue(p.welcome.startswith(b"+OK"), p.welcome)
                        p.user(USER)
                        self.assertTrue(p.pass_(PASSWORD).startswith(b"+OK"))
                        self.assertTrue(self.pop3_retr(p) == MESSAGE,
                                        "RETR differs (resumed: %s)" % reused)
                        session = p.sock.session
                        self.assertTrue(p.quit().startswith(b"+OK"))
                    finally:
                        close_quietly(p)
                first, second = session_ends(self, start, 2, "pop3s")
                assert_session(self, first, version, suite, "no")
                assert_session(self, second, version, suite, "yes")


# ------------------------------------------------------------------ curl

class TestCurl(unittest.TestCase):

    VERSIONS = (("TLSv1.2", ["--tlsv1.2", "--tls-max", "1.2"]), ("TLSv1.3", ["--tlsv1.3"]))

    def curl(self, url, port, extra):
        return harness.curl(url, USER, PASSWORD, "--resolve", "localhost:%d:%s" % (port, LOOPBACK),
                            *extra, timeout=90)

    def expected_suite(self, version, group):
        if version == "TLSv1.3":
            return FIRST13
        # A TLS 1.2 client without P-256 cannot take the ECDSA P-256 leaf.
        return FIRST12["ecdsa" if group == "P-256" else "rsa"]

    def test_imaps(self):
        port = MOAT.port("imaps")
        for version, vargs in self.VERSIONS:
            for group in GROUPS:
                extra = vargs + ["--curves", group]
                with self.subTest(row="curl imaps %s --curves %s" % (version, group)):
                    start = log_mark()
                    r = self.curl("imaps://localhost:%d/INBOX;UID=1" % port, port, extra)
                    self.assertEqual(r.returncode, 0, "curl %s: %s" % (" ".join(extra),
                                                                       r.stderr.decode()))
                    self.assertTrue(r.stdout == MESSAGE, "curl got %d bytes, want %d"
                                    % (len(r.stdout), len(MESSAGE)))
                    ev = session_ends(self, start, 1)[0]
                    assert_session(self, ev, version, self.expected_suite(version, group), "no")

    def test_pop3s(self):
        port = MOAT.port("pop3s")
        for version, vargs in self.VERSIONS:
            with self.subTest(row="curl pop3s %s" % version):
                start = log_mark()
                r = self.curl("pop3s://localhost:%d/1" % port, port, vargs)
                self.assertEqual(r.returncode, 0, r.stderr.decode())
                self.assertTrue(r.stdout == MESSAGE, "curl got %d bytes, want %d"
                                % (len(r.stdout), len(MESSAGE)))
                ev = session_ends(self, start, 1, "pop3s")[0]
                assert_session(self, ev, version, self.expected_suite(version, "P-256"), "no")


# ------------------------------------------------------------------ mbsync, fetchmail

MBSYNCRC = """\
IMAPAccount far
Host localhost
Port {port}
User {user}
Pass {password}
SSLType IMAPS
SSLVersions {version}
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

FETCHMAILRC = """\
set no syslog
poll localhost via 127.0.0.1 port {port} protocol IMAP timeout 60
  user "{user}" there with password "{password}" is "root" here
  ssl sslproto "{version}" sslcertck sslcertfile "{ca}" sslcommonname "localhost"
  keep fetchall no rewrite
  mda "sh -c 'cat > {out}/msg.$$'"
"""

# fetchmail prepends its own Received header (one line and folded
# continuation lines) and stores LF line ends.
RECEIVED_RX = re.compile(rb"\AReceived: [^\n]*\n(?:[ \t][^\n]*\n)*")


class TestMailClients(unittest.TestCase):

    VERSIONS = (("TLSv1.2", "TLSv1.2", "TLS1.2", FIRST12["ecdsa"]),
                ("TLSv1.3", "TLSv1.3", "TLS1.3", FIRST13))

    @unittest.skipUnless(shutil.which("mbsync"), "mbsync (Debian: isync) is not installed")
    def test_mbsync(self):
        for version, mbsync_version, _, suite in self.VERSIONS:
            with self.subTest(row="mbsync IMAPS %s" % version):
                d = harness.new_dir("interop-mbsync")
                near = os.path.join(d, "mail")
                os.makedirs(near)
                rc = os.path.join(d, "mbsyncrc")
                with open(rc, "w") as f:
                    f.write(MBSYNCRC.format(port=MOAT.port("imaps"), user=USER,
                                            password=PASSWORD, version=mbsync_version,
                                            ca=ca(), near=near))
                start = log_mark()
                r = subprocess.run(["mbsync", "-V", "-c", rc, "pull"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=dict(os.environ, HOME=d), timeout=harness.scaled(120))
                out = (r.stdout + r.stderr).decode(errors="replace")
                self.assertEqual(r.returncode, 0, out)
                found = []
                for sub in ("new", "cur"):
                    p = os.path.join(near, "INBOX", sub)
                    for name in sorted(os.listdir(p)) if os.path.isdir(p) else []:
                        with open(os.path.join(p, name), "rb") as f:
                            found.append((name, f.read()))
                self.assertEqual(len(found), 1, out)
                self.assertRegex(found[0][0], r",U=1\b")
                # mbsync stores LF line ends and adds an X-TUID header.
                got = re.sub(rb"(?m)^X-TUID: [^\n]*\n", b"", found[0][1], count=1)
                self.assertTrue(got == MESSAGE.replace(b"\r\n", b"\n"),
                                "mbsync's copy differs (%d bytes)\n%s" % (len(got), out))
                ev = session_ends(self, start, 1)[0]
                assert_session(self, ev, version, suite, "no")

    @unittest.skipUnless(shutil.which("fetchmail"), "fetchmail is not installed")
    def test_fetchmail(self):
        for version, _, fetchmail_version, suite in self.VERSIONS:
            with self.subTest(row="fetchmail IMAPS %s" % version):
                d = harness.new_dir("interop-fetchmail")
                out = os.path.join(d, "out")
                os.makedirs(out)
                rc = os.path.join(d, "fetchmailrc")
                fd = os.open(rc, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(FETCHMAILRC.format(port=MOAT.port("imaps"), user=USER,
                                               password=PASSWORD, version=fetchmail_version,
                                               ca=ca(), out=out))
                start = log_mark()
                r = subprocess.run(["fetchmail", "-f", rc, "--nosyslog", "-d0", "-v",
                                    "--pidfile", os.path.join(d, "fetchmail.pid")],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE,
                                   env=dict(os.environ, HOME=d, FETCHMAILHOME=d), cwd=d,
                                   timeout=harness.scaled(120))
                log = (r.stdout + r.stderr).decode(errors="replace")
                self.assertEqual(r.returncode, 0, log)
                names = sorted(os.listdir(out))
                self.assertEqual(len(names), 1, log)
                with open(os.path.join(out, names[0]), "rb") as f:
                    data = f.read()
                m = RECEIVED_RX.match(data)
                self.assertIsNotNone(m, "no Received header first in %r" % data[:300])
                self.assertTrue(data[m.end():] == MESSAGE.replace(b"\r\n", b"\n"),
                                "fetchmail's copy differs (%d bytes)\n%s"
                                % (len(data) - m.end(), log))
                ev = session_ends(self, start, 1)[0]
                assert_session(self, ev, version, suite, "no")


# ------------------------------------------------------------------ tampering

def _records(data):
    """[(content type, length)] of the TLS records in data, and the bytes
    after the last whole record."""
    out = []
    pos = 0
    while pos + 5 <= len(data):
        n = int.from_bytes(data[pos + 3:pos + 5], "big")
        if pos + 5 + n > len(data):
            break
        out.append((data[pos], n))
        pos += 5 + n
    return out, data[pos:]


def tamper(spec):
    """Runs in a child Python (OPENSSL_CONF may choose its TLS 1.3 suite):
    a TLS session over MemoryBIO to moat's IMAPS listener; optionally
    LOGIN; one good NOOP; then a NOOP whose only record has one flipped
    byte (the first byte of its ciphertext). Reports what came back."""
    timeout = spec["timeout"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=spec["ca"])
    if spec["version"] == "TLSv1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(spec["suite"])
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    inc, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    sock = socket.create_connection((LOOPBACK, spec["port"]), timeout=timeout)
    res = {"client_port": sock.getsockname()[1], "replies": []}
    obj = ctx.wrap_bio(inc, outgoing, server_hostname="localhost")

    def flush():
        data = outgoing.read()
        if data:
            sock.sendall(data)

    def pump():
        data = sock.recv(65536)
        if not data:
            raise EOFError("moat closed the connection")
        inc.write(data)

    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            flush()
            pump()
    flush()
    res["version"], res["cipher"] = obj.version(), obj.cipher()[0]
    buf = b""

    def line():
        nonlocal buf
        while b"\r\n" not in buf:
            try:
                buf += obj.read(65536)
            except ssl.SSLWantReadError:
                flush()
                pump()
        i = buf.index(b"\r\n") + 2
        out, buf = buf[:i], buf[i:]
        return out.decode("latin-1")

    def command(tag, text):
        obj.write(("%s %s\r\n" % (tag, text)).encode())
        flush()
        while True:
            l = line()
            if l.startswith(tag + " "):
                res["replies"].append(l)
                return

    res["greeting"] = line()
    tags = iter("abc")
    if spec["login"]:
        command(next(tags), 'LOGIN %s "%s"' % (USER, PASSWORD))
    command(next(tags), "NOOP")
    obj.write(("%s NOOP\r\n" % next(tags)).encode())
    rec = bytearray(outgoing.read())
    res["sent"], rest = _records(bytes(rec))
    # The first byte of ciphertext: after TLS 1.2 GCM's 8-byte explicit nonce.
    at = 5 + (8 if res["version"] == "TLSv1.2" and "GCM" in res["cipher"] else 0)
    rec[at] ^= 0x01
    sock.sendall(bytes(rec))
    raw = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                res["closed"] = "eof"
                break
            raw += data
    except OSError as e:
        res["closed"] = type(e).__name__
    res["after"], res["after_rest"] = _records(raw)
    res["after_rest"] = res["after_rest"].hex()
    inc.write(raw)
    inc.write_eof()
    res["plaintext"] = buf.decode("latin-1")
    res["alert"] = None
    try:
        while True:
            data = obj.read(65536)
            if not data:
                break
            res["plaintext"] += data.decode("latin-1")
    except ssl.SSLError as e:
        res["alert"] = e.reason or type(e).__name__
    sock.close()
    return res


def _tamper_child():
    print(json.dumps(tamper(json.loads(sys.argv[1]))))


def openssl_conf_ciphersuites(suite):
    """An OpenSSL config file whose system default TLS 1.3 suite list is
    just `suite` (Python's ssl module cannot choose TLS 1.3 suites)."""
    path = os.path.join(harness.new_dir("interop-openssl-conf"), "openssl.cnf")
    with open(path, "w") as f:
        f.write("openssl_conf = default_conf\n[default_conf]\nssl_conf = ssl_sect\n"
                "[ssl_sect]\nsystem_default = system_default_sect\n"
                "[system_default_sect]\nCiphersuites = %s\n" % suite)
    return path


class TestTamper(unittest.TestCase):
    """A flipped byte in one of the client's records: bad_record_mac."""

    # The alert record moat sends: TLS 1.2 (type 21) GCM has an 8-byte
    # explicit nonce + 2 + 16-byte tag, ChaCha20-Poly1305 2 + 16; TLS 1.3
    # (type 23, application_data outside) pads the 3-byte inner plaintext
    # to 16 (mbedTLS's padding granularity) + 16-byte tag.
    @staticmethod
    def alert_record(version, suite):
        if version == "TLSv1.3":
            return [23, 32]
        return [21, 18 if "CHACHA20" in suite else 26]

    def run_child(self, version, suite, login):
        spec = {"port": MOAT.port("imaps"), "ca": ca(), "version": version, "suite": suite,
                "login": login, "timeout": harness.scaled(20)}
        env = dict(os.environ)
        if version == "TLSv1.3":
            env["OPENSSL_CONF"] = openssl_conf_ciphersuites(suite)
        code = ("import sys; sys.path.insert(0, %r); import test_interop; "
                "test_interop._tamper_child()" % HERE)
        r = subprocess.run([sys.executable, "-B", "-c", code, json.dumps(spec)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=harness.scaled(60))
        self.assertEqual(r.returncode, 0, r.stderr.decode(errors="replace"))
        return json.loads(r.stdout)

    def test_flipped_byte(self):
        rows = ([("TLSv1.2", s) for s in TLS12_SUITES] + [("TLSv1.3", s) for s in TLS13_SUITES])
        for version, suite in rows:
            for login in (False, True):
                name = "tamper %s %s %s" % (version, suite, "after LOGIN" if login
                                            else "before login")
                with self.subTest(row=name):
                    start = log_mark()
                    res = self.run_child(version, suite, login)
                    where = json.dumps(res, indent=1)
                    self.assertEqual((res["version"], res["cipher"]), (version, suite), where)
                    self.assertTrue(res["greeting"].startswith("* OK [CAPABILITY "), where)
                    if login:
                        self.assertEqual(len(res["replies"]), 2, where)
                        self.assertRegex(res["replies"][0], r"^a OK \[CAPABILITY [^\]]*\] "
                                                            r"Logged in\r\n$")
                        self.assertRegex(res["replies"][1], r"^b OK NOOP completed")
                    else:
                        self.assertEqual(res["replies"], ["a OK NOOP completed\r\n"], where)
                    self.assertEqual([t for t, _ in res["sent"]], [23], where)
                    # Exactly one record back, the alert, then the close.
                    self.assertEqual(res["after"], [self.alert_record(version, suite)], where)
                    self.assertEqual(res["after_rest"], "", where)
                    self.assertEqual(res["closed"], "eof", where)
                    self.assertEqual(res["alert"], "SSLV3_ALERT_BAD_RECORD_MAC", where)
                    self.assertEqual(res["plaintext"], "", where)
                    MOAT.wait_log(r"event=tls_error listener=imaps client=127\.0\.0\.1:%d "
                                  r'error="SSL - Verification of the message MAC failed"'
                                  % res["client_port"], 10, start)
                    ev = session_ends(self, start, 1)[0]
                    self.assertEqual(ev["client"], "127.0.0.1:%d" % res["client_port"], where)
                    self.assertEqual(ev["reason"], "TLS error from client", ev["_line"])
                    self.assertEqual((ev["tls"], ev["cipher"]), (version, iana(suite)),
                                     ev["_line"])
                    self.assertEqual(ev["user"], USER if login else "-", ev["_line"])
                    assert_moat_alive(self)
        # moat goes on serving: a fresh login and the message.
        m = Imaps(MOAT.port("imaps"), harness.client_context())
        try:
            self.assertEqual(m.login(USER, PASSWORD)[0], "OK")
            self.assertEqual(m.select("INBOX", readonly=True), ("OK", [b"1"]))
            typ, data = m.fetch("1", "(BODY.PEEK[])")
            self.assertEqual(typ, "OK")
            self.assertTrue(data[0][1] == MESSAGE)
            m.logout()
        finally:
            close_quietly(m)


# ------------------------------------------------------------------ the build

class TestBuild(unittest.TestCase):

    def test_crypto_is_the_one_asked_for(self):
        # MOAT_CRYPTO=builtin says the binary is the pure-mbedTLS build.
        r = harness.run_moat_cli(["-V"])
        self.assertEqual(r.returncode, 0, r.stderr)
        want = "mbedTLS" if os.environ.get("MOAT_CRYPTO") == "builtin" else "OpenSSL"
        self.assertRegex(r.stdout, r"\(mbedTLS 3\.6\.\d+, crypto: %s[ )]" % want)


if __name__ == "__main__":
    unittest.main()
