"""moat's implicit-TLS relay against a real Dovecot, with real clients.

One Dovecot (account demo/demo: three small messages, UIDs 1-3, and a
64 MiB message, UID 4) and one moat with four listeners serve most tests:

  imaps       -> Dovecot's plaintext IMAP
  pop3s       -> Dovecot's plaintext POP3
  imaps-down  -> a loopback port nothing listens on
  pop3s-down  -> another such port

The SIGTERM and valgrind tests start moats of their own.
"""

import hashlib
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
import unittest

import harness

# These tests cover the byte relay: listeners run with transparent = yes
# so the backend's own greeting reaches the client (test_imap.py and
# test_pop3.py cover moat's pre-auth dialogues, the default).
TRANSPARENT = {"transparent": "yes"}

DOVECOT = None
MOAT = None
BIG_NAME = "1000000100.M100P1.moat"    # after the demo messages: UID 4
BIG_UID = 4


def setUpModule():
    global DOVECOT, MOAT
    harness.certs()
    big_path, _ = harness.big_message()
    DOVECOT = harness.Dovecot(messages={"demo": [(BIG_NAME, big_path)]}).start()
    dead_imap, dead_pop3 = harness.free_port(), harness.free_port()
    MOAT = harness.Moat([
        harness.Listener("imaps", "imap", DOVECOT.imap_port, options=TRANSPARENT),
        harness.Listener("pop3s", "pop3", DOVECOT.pop3_port, options=TRANSPARENT),
        harness.Listener("imaps-down", "imap", dead_imap, options=TRANSPARENT),
        harness.Listener("pop3s-down", "pop3", dead_pop3, options=TRANSPARENT),
    ]).start()


def tearDownModule():
    rc = 0
    if MOAT is not None:
        rc = MOAT.stop(timeout=60)
    if DOVECOT is not None:
        DOVECOT.stop()
    # After everything above, the shared moat must still stop cleanly (and,
    # under MOAT_WRAPPER=valgrind --error-exitcode, without errors).
    if MOAT is not None and rc != 0:
        raise AssertionError("shared moat exited with status %s; log tail:\n%s"
                             % (rc, "\n".join(MOAT.log().splitlines()[-40:])))


def ca():
    return harness.certs().ca


def curl(url, *extra, user="demo:demo", timeout=120):
    argv = ["curl", "-sS", "-4", "--max-time", str(int(harness.scaled(timeout))),
            "--cacert", ca(), "-u", user] + list(extra) + [url]
    return harness.run_cmd(argv, timeout=timeout + 10)


def s_client(port, *extra, timeout=30, send=b"a LOGOUT\r\n"):
    """Runs openssl s_client; after the handshake it sends `send` (an IMAP
    LOGOUT by default: the server then says BYE and closes, which ends
    s_client deterministically)."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
            "-servername", "localhost", "-ign_eof"] + list(extra)
    r = harness.run_cmd(argv, timeout=timeout, input=send)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def negotiated_cipher(output):
    """The cipher from s_client's "New, TLSv1.x, Cipher is X" line, or None
    when no handshake completed ("Cipher is (NONE)")."""
    m = re.search(r"Cipher is (\S+)", output)
    if not m or m.group(1) == "(NONE)":
        return None
    return m.group(1)


def imap_session(port, uid, ctx=None):
    """Logs in over IMAPS, selects INBOX, fetches one message, logs out;
    returns the message's bytes."""
    ctx = ctx or harness.client_context()
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=60)
    try:
        typ, _ = m.login("demo", "demo")
        assert typ == "OK", typ
        typ, data = m.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) == 4, (typ, data)
        typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK", (typ, data)
        body = data[0][1]
        typ, _ = m.logout()
        assert typ == "BYE", typ
        return body
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


# ------------------------------------------------------------------ TLS

class TestCertificate(unittest.TestCase):

    def test_python_verifies_chain_and_hostname(self):
        s = harness.tls_connect(MOAT.port("imaps"), server_hostname="localhost")
        try:
            cert = s.getpeercert()
            self.assertIn(("DNS", "localhost"), cert["subjectAltName"])
            issuer = dict(x[0] for x in cert["issuer"])
            self.assertEqual(issuer.get("commonName"), "moat test CA")
            self.assertTrue(harness.recv_line(s).startswith(b"* OK "))
        finally:
            s.close()

    def test_python_verifies_ip_address(self):
        s = harness.tls_connect(MOAT.port("pop3s"), server_hostname="127.0.0.1")
        try:
            self.assertTrue(harness.recv_line(s).startswith(b"+OK"))
        finally:
            s.close()

    def test_python_rejects_untrusted(self):
        # Control: trusting the system's CAs instead of the test CA fails.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_default_certs()
        with self.assertRaises(ssl.SSLCertVerificationError):
            harness.tls_connect(MOAT.port("imaps"), ctx=ctx).close()

    def test_python_rejects_wrong_name(self):
        # Control: the test CA, but a name the certificate does not carry.
        with self.assertRaises(ssl.SSLCertVerificationError):
            harness.tls_connect(MOAT.port("imaps"), server_hostname="127.0.0.2").close()

    def test_openssl_s_client_verifies(self):
        rc, out = s_client(MOAT.port("imaps"), "-verify_return_error",
                           "-CAfile", ca(), "-verify_hostname", "localhost")
        self.assertEqual(rc, 0, out)
        self.assertIn("Verify return code: 0 (ok)", out)
        # Dovecot's greeting and LOGOUT answer, through the tunnel.
        self.assertIn("* OK ", out)
        self.assertIn("a OK Logout", out)

    def test_openssl_s_client_wrong_ip_fails(self):
        # Control: a name the certificate does not carry must not verify.
        rc, out = s_client(MOAT.port("imaps"), "-CAfile", ca(),
                           "-verify_ip", "127.0.0.2")
        m = re.search(r"Verify return code: (\d+)", out)
        self.assertIsNotNone(m, out)
        self.assertNotEqual(m.group(1), "0", out)


class TestProtocolVersions(unittest.TestCase):

    def handshake(self, version, ciphers=None, port=None):
        ctx = harness.client_context(minimum=version, maximum=version)
        if ciphers:
            ctx.set_ciphers(ciphers)
        s = harness.tls_connect(port or MOAT.port("imaps"), ctx=ctx)
        try:
            greeting = harness.recv_line(s)
            return s.version(), s.cipher()[0], greeting
        finally:
            s.close()

    def test_tls12(self):
        version, cipher, greeting = self.handshake(ssl.TLSVersion.TLSv1_2)
        self.assertEqual(version, "TLSv1.2")
        self.assertTrue(greeting.startswith(b"* OK "), greeting)

    def test_tls13(self):
        version, cipher, greeting = self.handshake(ssl.TLSVersion.TLSv1_3)
        self.assertEqual(version, "TLSv1.3")
        self.assertTrue(greeting.startswith(b"* OK "), greeting)

    def test_tls13_pop3(self):
        version, cipher, greeting = self.handshake(ssl.TLSVersion.TLSv1_3,
                                                   port=MOAT.port("pop3s"))
        self.assertEqual(version, "TLSv1.3")
        self.assertTrue(greeting.startswith(b"+OK"), greeting)

    def test_tls12_cipher_is_aead(self):
        # Python's default list also offers CBC suites; moat must pick AEAD.
        version, cipher, _ = self.handshake(ssl.TLSVersion.TLSv1_2)
        self.assertEqual(version, "TLSv1.2")
        self.assertRegex(cipher, r"GCM|CHACHA20")
        self.assertTrue(cipher.startswith("ECDHE-"), cipher)

    def test_tls12_each_aead_suite(self):
        for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256",
                      "ECDHE-ECDSA-AES256-GCM-SHA384",
                      "ECDHE-ECDSA-CHACHA20-POLY1305"):
            with self.subTest(suite=suite):
                version, cipher, _ = self.handshake(ssl.TLSVersion.TLSv1_2, suite)
                self.assertEqual(cipher, suite)

    def test_tls12_cbc_only_refused(self):
        cbc = ("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:"
               "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
        with self.assertRaises((ssl.SSLError, ConnectionError)):
            self.handshake(ssl.TLSVersion.TLSv1_2, cbc)

    def old_version(self, flag, port):
        return s_client(port, flag, "-cipher", "DEFAULT@SECLEVEL=0",
                        "-CAfile", ca())

    def test_tls10_tls11_refused(self):
        for flag in ("-tls1", "-tls1_1"):
            with self.subTest(version=flag):
                rc, out = self.old_version(flag, MOAT.port("imaps"))
                self.assertNotEqual(rc, 0, out)
                self.assertIsNone(negotiated_cipher(out), out)
                self.assertNotIn("* OK", out)
        # Control: the same command with TLS 1.2 gets through.
        rc, out = self.old_version("-tls1_2", MOAT.port("imaps"))
        self.assertEqual(rc, 0, out)
        self.assertIsNotNone(negotiated_cipher(out), out)
        self.assertIn("* OK", out)
        self.assertIn("a OK Logout", out)

    def test_old_versions_offered_by_client(self):
        # Control for the refusal above: this openssl really speaks TLS 1.0
        # and 1.1 with these options (against its own s_server).
        c = harness.certs()
        port = harness.free_port()
        log = open(os.path.join(harness.run_dir(), "s_server.log"), "wb")
        srv = harness.spawn(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port,
                             "-cert", c.fullchain, "-key", c.key,
                             "-cipher", "DEFAULT@SECLEVEL=0", "-min_protocol", "TLSv1",
                             "-quiet"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            harness.wait_port(port, 10, srv, "openssl s_server")
            for flag, proto in (("-tls1", "TLSv1"), ("-tls1_1", "TLSv1.1")):
                with self.subTest(version=flag):
                    rc, out = self.old_version(flag, port)
                    self.assertIsNotNone(negotiated_cipher(out), out)
                    self.assertRegex(out, r"Protocol\s*:\s*%s\b" % re.escape(proto))
        finally:
            srv.terminate()
            harness.kill_group(srv)


# ------------------------------------------------------------------ clients

class TestCurl(unittest.TestCase):

    def test_imaps_search_all(self):
        r = curl("imaps://localhost:%d/INBOX?ALL" % MOAT.port("imaps"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"* SEARCH 1 2 3 4\r\n")

    def test_imaps_uid_search(self):
        r = curl("imaps://localhost:%d/INBOX" % MOAT.port("imaps"),
                 "-X", "UID SEARCH ALL")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"* SEARCH 1 2 3 4\r\n")

    def test_imaps_list_mailboxes(self):
        r = curl("imaps://localhost:%d/" % MOAT.port("imaps"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rb'\* LIST \([^)]*\) "[./]" INBOX\r\n')

    def test_imaps_fetch_by_uid(self):
        for uid in (1, 2, 3):
            with self.subTest(uid=uid):
                r = curl("imaps://localhost:%d/INBOX;UID=%d" % (MOAT.port("imaps"), uid))
                self.assertEqual(r.returncode, 0, r.stderr)
                expected = DOVECOT.message(uid)
                self.assertIn(b"Subject: moat demo %d\r\n" % uid, expected)
                self.assertEqual(r.stdout, expected)

    def test_imaps_wrong_password(self):
        r = curl("imaps://localhost:%d/INBOX?ALL" % MOAT.port("imaps"),
                 user="demo:wrong")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"")

    def test_pop3s_list(self):
        r = curl("pop3s://localhost:%d/" % MOAT.port("pop3s"))
        self.assertEqual(r.returncode, 0, r.stderr)
        sizes = [len(DOVECOT.message(i)) for i in (1, 2, 3)] + [harness.BIG_SIZE]
        expected = b"".join(b"%d %d\r\n" % (i + 1, n) for i, n in enumerate(sizes))
        self.assertEqual(r.stdout, expected)

    def test_pop3s_retr(self):
        for n in (1, 3):
            with self.subTest(msg=n):
                r = curl("pop3s://localhost:%d/%d" % (MOAT.port("pop3s"), n))
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, DOVECOT.message(n))


class TestPythonClients(unittest.TestCase):

    def test_imaplib(self):
        ctx = harness.client_context()
        m = imaplib.IMAP4_SSL("localhost", MOAT.port("imaps"), ssl_context=ctx,
                              timeout=30)
        try:
            self.assertIn(b"IMAP4rev1", m.welcome)
            typ, data = m.login("demo", "demo")
            self.assertEqual(typ, "OK")
            typ, data = m.select("INBOX", readonly=True)
            self.assertEqual((typ, data), ("OK", [b"4"]))
            typ, data = m.fetch("2", "(UID RFC822.SIZE BODY.PEEK[])")
            self.assertEqual(typ, "OK")
            meta, body = data[0]
            self.assertRegex(meta, rb"UID 2\b")
            self.assertRegex(meta, rb"RFC822.SIZE %d\b" % len(DOVECOT.message(2)))
            self.assertEqual(body, DOVECOT.message(2))
            typ, data = m.uid("SEARCH", None, "SUBJECT", '"moat demo 3"')
            self.assertEqual((typ, data), ("OK", [b"3"]))
            typ, _ = m.logout()
            self.assertEqual(typ, "BYE")
        finally:
            try:
                m.shutdown()
            except OSError:
                pass

    def test_imaplib_bad_login(self):
        m = imaplib.IMAP4_SSL("127.0.0.1", MOAT.port("imaps"),
                              ssl_context=harness.client_context(), timeout=30)
        try:
            with self.assertRaises(imaplib.IMAP4.error):
                m.login("demo", "not-the-password")
        finally:
            m.shutdown()

    def test_poplib(self):
        ctx = harness.client_context()
        p = poplib.POP3_SSL("localhost", MOAT.port("pop3s"), context=ctx, timeout=30)
        try:
            self.assertTrue(p.getwelcome().startswith(b"+OK"))
            self.assertTrue(p.user("demo").startswith(b"+OK"))
            self.assertTrue(p.pass_("demo").startswith(b"+OK"))
            sizes = [len(DOVECOT.message(i)) for i in (1, 2, 3)]
            self.assertEqual(p.stat(), (4, sum(sizes) + harness.BIG_SIZE))
            resp, lines, octets = p.retr(2)
            self.assertTrue(resp.startswith(b"+OK"))
            # poplib strips CRLF and undoes dot-stuffing; lines re-joined
            # with CRLF give back the message.
            self.assertEqual(b"\r\n".join(lines) + b"\r\n", DOVECOT.message(2))
            self.assertTrue(p.quit().startswith(b"+OK"))
        finally:
            try:
                p.close()
            except OSError:
                pass


# ------------------------------------------------------------------ volume

class TestBigMessage(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.path, cls.sha = harness.big_message()
        with open(cls.path, "rb") as f:
            data = f.read()
        # The comparisons below mean something only if the message has
        # lines POP3 must dot-stuff and is what we think it is.
        assert len(data) == harness.BIG_SIZE
        assert b"\r\n.\r\n" in data and data.count(b"\r\n.") > 1000
        assert b"\n" not in data.replace(b"\r\n", b"")
        cls.stuffed_sha = hashlib.sha256(harness.pop3_stuff(data)).hexdigest()
        assert cls.stuffed_sha != cls.sha

    def out_file(self, name):
        return os.path.join(harness.new_dir("big"), name)

    def test_imaps_fetch_64mib(self):
        out = self.out_file("imap.eml")
        r = curl("imaps://localhost:%d/INBOX;UID=%d" % (MOAT.port("imaps"), BIG_UID),
                 "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.path.getsize(out), harness.BIG_SIZE)
        self.assertEqual(harness.sha256_file(out), self.sha)

    def test_pop3s_retr_64mib_curl(self):
        # curl's POP3 removes the dot-stuffing and the final ".": the file
        # must be the delivered message exactly.
        out = self.out_file("pop3.eml")
        r = curl("pop3s://localhost:%d/%d" % (MOAT.port("pop3s"), BIG_UID), "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(os.path.getsize(out), harness.BIG_SIZE)
        self.assertEqual(harness.sha256_file(out), self.sha)

    def test_pop3s_retr_64mib_raw(self):
        # The raw RETR stream: "+OK" line, then the dot-stuffed message and
        # ".\r\n", byte for byte.
        s = harness.tls_connect(MOAT.port("pop3s"), timeout=120)
        try:
            self.assertTrue(harness.recv_line(s).startswith(b"+OK"))
            for cmd in (b"USER demo\r\n", b"PASS demo\r\n"):
                s.sendall(cmd)
                self.assertTrue(harness.recv_line(s).startswith(b"+OK"))
            s.sendall(b"RETR %d\r\n" % BIG_UID)
            status = harness.recv_line(s)
            self.assertTrue(status.startswith(b"+OK"), status)
            h = hashlib.sha256()
            total = 0
            tail = b""
            while not tail.endswith(b"\r\n.\r\n"):
                chunk = s.recv(1 << 20)
                self.assertTrue(chunk, "connection closed after %d bytes" % total)
                h.update(chunk)
                total += len(chunk)
                tail = (tail + chunk)[-5:]
            self.assertEqual(h.hexdigest(), self.stuffed_sha,
                             "RETR stream differs (%d bytes)" % total)
            s.sendall(b"QUIT\r\n")
            self.assertTrue(harness.recv_line(s).startswith(b"+OK"))
        finally:
            s.close()


class TestConcurrency(unittest.TestCase):
    SESSIONS = 200

    def test_200_concurrent_imaps_sessions(self):
        n = self.SESSIONS
        # All sessions are logged in at the same time before any fetches.
        barrier = threading.Barrier(n, timeout=harness.scaled(120))
        results = [None] * n
        port = MOAT.port("imaps")
        ctx = harness.client_context()

        def session(i):
            m = None
            try:
                m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=120)
                typ, _ = m.login("demo", "demo")
                assert typ == "OK", typ
                typ, data = m.select("INBOX", readonly=True)
                assert typ == "OK" and data == [b"4"], (typ, data)
                barrier.wait()
                uid = 1 + i % 3
                typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
                assert typ == "OK", (typ, data)
                assert data[0][1] == DOVECOT.message(uid), "message %d differs" % uid
                typ, _ = m.logout()
                assert typ == "BYE", typ
                results[i] = "ok"
            except BaseException as e:
                results[i] = "%s: %s" % (type(e).__name__, e)
                barrier.abort()
            finally:
                if m is not None:
                    try:
                        m.shutdown()
                    except OSError:
                        pass

        threads = [threading.Thread(target=session, args=(i,), daemon=True)
                   for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(harness.scaled(240))
        failed = [r for r in results if r != "ok"]
        if failed:
            # The first error other than the barrier's is the interesting one.
            first = next((r for r in failed if r and
                          not r.startswith("BrokenBarrierError")), failed[0])
            self.fail("%d of %d sessions failed; first: %s" % (len(failed), n, first))
        self.assertEqual(results.count("ok"), n)


# ------------------------------------------------------------------ failures

class TestBackendDown(unittest.TestCase):

    def read_refusal(self, listener):
        before = MOAT.log().count("event=backend_error")
        s = harness.tls_connect(MOAT.port(listener), timeout=30)
        try:
            data, how = harness.recv_until_eof(s, timeout=harness.scaled(30))
        finally:
            s.close()
        deadline = time.monotonic() + harness.scaled(10)
        while MOAT.log().count("event=backend_error") <= before:
            self.assertLess(time.monotonic(), deadline,
                            "no new event=backend_error in moat's log:\n" + MOAT.log())
            time.sleep(0.05)
        return data, how

    def test_imap_bye_unavailable(self):
        data, how = self.read_refusal("imaps-down")
        self.assertTrue(data.startswith(b"* BYE [UNAVAILABLE]"), (data, how))
        self.assertTrue(data.endswith(b"\r\n"), data)
        self.assertEqual(data.count(b"\r\n"), 1, data)
        self.assertIn(how, ("eof", "SSLEOFError", "SSLZeroReturnError",
                            "ConnectionResetError"), how)
        self.assertEqual(imap_session(MOAT.port("imaps"), 1), DOVECOT.message(1))

    def test_pop3_err_sys_temp(self):
        data, how = self.read_refusal("pop3s-down")
        self.assertTrue(data.startswith(b"-ERR [SYS/TEMP]"), (data, how))
        self.assertTrue(data.endswith(b"\r\n"), data)
        self.assertEqual(data.count(b"\r\n"), 1, data)
        r = curl("pop3s://localhost:%d/1" % MOAT.port("pop3s"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, DOVECOT.message(1))

    def test_backend_error_logged_with_listener(self):
        self.read_refusal("imaps-down")
        lines = [l for l in MOAT.log().splitlines() if "event=backend_error" in l]
        self.assertTrue(any("imaps-down" in l for l in lines), lines)


# ------------------------------------------------------------------ CLI

class TestCommandLine(unittest.TestCase):

    def write(self, text):
        path = os.path.join(harness.new_dir("cli"), "moat.ini")
        with open(path, "w") as f:
            f.write(text + harness.root_section())
        return path

    def config_lines(self, protocol="imap", key=None):
        c = harness.certs()
        return ["[tls]",                                   # 1
                "certificate = %s" % c.fullchain,          # 2
                "key = %s" % (key or c.key),               # 3
                "",                                        # 4
                "[listener imaps]",                        # 5
                "address = 127.0.0.1:%d" % harness.free_port(),  # 6
                "protocol = %s" % protocol,                # 7
                "tls = implicit",                          # 8
                "backend = 127.0.0.1:%d" % DOVECOT.imap_port]  # 9

    def test_version(self):
        r = harness.run_moat_cli(["-V"])
        self.assertEqual(r.returncode, 0, r.stderr)
        # the crypto beneath mbedTLS: OpenSSL's (make's default) or its own
        self.assertRegex(r.stdout, r"^moat \S+ \(mbedTLS 3\.6\.\d+, crypto: "
                                   r"(OpenSSL 3\.\d+\.\d+|mbedTLS)\)\n$")
        want = "mbedTLS" if os.environ.get("MOAT_CRYPTO") == "builtin" else "OpenSSL"
        self.assertIn("crypto: " + want, r.stdout)

    def test_help(self):
        r = harness.run_moat_cli(["-h"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("usage", r.stdout.lower())
        self.assertIn("-c", r.stdout)

    def test_bad_option(self):
        r = harness.run_moat_cli(["-Z"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("usage", r.stderr.lower())

    def test_check_good_config(self):
        path = self.write("\n".join(self.config_lines()) + "\n")
        r = harness.run_moat_cli(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("%s:" % path, r.stderr)

    def test_check_shared_config(self):
        # The config the other tests run with passes -t too.
        r = harness.run_moat_cli(["-t", "-c", MOAT.config_path])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_check_error_line(self):
        lines = self.config_lines(protocol="smtp")
        self.assertEqual(lines[6], "protocol = smtp")
        path = self.write("\n".join(lines) + "\n")
        r = harness.run_moat_cli(["-t", "-c", path])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("%s:7:" % path, r.stderr)
        self.assertNotIn("%s:6:" % path, r.stderr)

    def test_check_missing_key(self):
        missing = os.path.join(harness.run_dir(), "no-such-dir", "privkey.pem")
        path = self.write("\n".join(self.config_lines(key=missing)) + "\n")
        r = harness.run_moat_cli(["-t", "-c", path])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("%s:3:" % path, r.stderr)
        self.assertIn(missing, r.stderr)

    def test_run_refuses_bad_config(self):
        # Without -t, a bad config also exits 1 (and nothing listens).
        lines = self.config_lines(protocol="smtp")
        port = int(lines[5].rsplit(":", 1)[1])
        path = self.write("\n".join(lines) + "\n")
        r = harness.run_moat_cli(["-c", path])
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("%s:7:" % path, r.stderr)
        self.assertFalse(harness.port_accepts(port))


# ------------------------------------------------------------------ lifecycle

class TestSigterm(unittest.TestCase):

    def test_sigterm_with_open_sessions(self):
        # Logged-in sessions get shutdown_grace (1 s here) to end by
        # themselves; then IMAP ones get a BYE between two responses and
        # POP3 ones just the close.
        moat = harness.Moat([harness.Listener("imaps", "imap", DOVECOT.imap_port, options=TRANSPARENT),
                             harness.Listener("pop3s", "pop3", DOVECOT.pop3_port, options=TRANSPARENT)],
                            name="moat-sigterm", options={"shutdown_grace": "1s"}).start()
        socks = []
        try:
            # An idle, logged-in IMAP session and an idle POP3 session.
            s = harness.tls_connect(moat.port("imaps"))
            socks.append(s)
            self.assertTrue(harness.recv_line(s).startswith(b"* OK"))
            s.sendall(b"a1 LOGIN demo demo\r\n")
            line = harness.recv_line(s)
            while line.startswith(b"* "):
                line = harness.recv_line(s)
            self.assertTrue(line.startswith(b"a1 OK"), line)
            p = harness.tls_connect(moat.port("pop3s"))
            socks.append(p)
            self.assertTrue(harness.recv_line(p).startswith(b"+OK"))

            t0 = time.monotonic()
            rc = moat.stop(timeout=20)
            self.assertEqual(rc, 0, "moat exit status %s; log:\n%s" % (rc, moat.log()))
            self.assertGreater(time.monotonic() - t0, 0.9)
            ends = []
            for sock in socks:
                data, how = harness.recv_until_eof(sock, timeout=10)
                ends.append(data)
                self.assertIn(how, ("eof", "SSLEOFError", "SSLZeroReturnError",
                                    "ConnectionResetError"), (how, data))
            self.assertTrue(ends[0].endswith(b"* BYE [UNAVAILABLE] Server shutting down, "
                                             b"try again later\r\n"), ends[0])
            self.assertEqual(ends[1], b"")
            self.assertFalse(harness.port_accepts(moat.port("imaps")))
            self.assertIn("event=ready", moat.log())
        finally:
            for sock in socks:
                sock.close()
            moat.kill()

    def test_sigint(self):
        moat = harness.Moat([harness.Listener("imaps", "imap", DOVECOT.imap_port, options=TRANSPARENT)],
                            name="moat-sigint").start()
        try:
            self.assertEqual(imap_session(moat.port("imaps"), 3), DOVECOT.message(3))
            rc = moat.stop(timeout=20, sig=signal.SIGINT)
            self.assertEqual(rc, 0, moat.log())
        finally:
            moat.kill()

    def test_session_end_logged(self):
        before = MOAT.log().count("event=session_end")
        self.assertEqual(imap_session(MOAT.port("imaps"), 1), DOVECOT.message(1))
        deadline = time.monotonic() + harness.scaled(10)
        while MOAT.log().count("event=session_end") <= before:
            self.assertLess(time.monotonic(), deadline, MOAT.log())
            time.sleep(0.05)
        ends = [l for l in MOAT.log().splitlines() if "event=session_end" in l]
        last = ends[-1]
        m_in = re.search(r"\bbytes_in=(\d+)", last)
        m_out = re.search(r"\bbytes_out=(\d+)", last)
        self.assertTrue(m_in and m_out, last)
        # At least the login+select+fetch commands in and the message out.
        self.assertGreater(int(m_in.group(1)), 30, last)
        self.assertGreater(int(m_out.group(1)), len(DOVECOT.message(1)), last)


@unittest.skipUnless(shutil.which("valgrind"), "valgrind is not installed")
@unittest.skipIf(harness.moat_sanitized(), "moat is built with ASan (SANITIZE=1)")
class TestValgrind(unittest.TestCase):

    def test_no_leaks(self):
        wrapper = ["valgrind", "--leak-check=full",
                   "--errors-for-leak-kinds=definite,indirect",
                   "--error-exitcode=99", "--num-callers=30"]
        moat = harness.Moat([harness.Listener("imaps", "imap", DOVECOT.imap_port, options=TRANSPARENT),
                             harness.Listener("pop3s", "pop3", DOVECOT.pop3_port, options=TRANSPARENT),
                             harness.Listener("imaps-down", "imap", harness.free_port(), options=TRANSPARENT)],
                            wrapper=wrapper, name="moat-valgrind")
        moat.start(timeout=180)
        try:
            ctx = harness.client_context()
            for uid in (1, 2):
                self.assertEqual(imap_session(moat.port("imaps"), uid, ctx),
                                 DOVECOT.message(uid))
            for n in (1, 3):
                p = poplib.POP3_SSL("127.0.0.1", moat.port("pop3s"), context=ctx,
                                    timeout=60)
                p.user("demo")
                p.pass_("demo")
                resp, lines, _ = p.retr(n)
                self.assertEqual(b"\r\n".join(lines) + b"\r\n", DOVECOT.message(n))
                p.quit()
            # The backend-error path and an abandoned handshake, too.
            s = harness.tls_connect(moat.port("imaps-down"), timeout=60)
            data, _ = harness.recv_until_eof(s, timeout=60)
            s.close()
            self.assertTrue(data.startswith(b"* BYE [UNAVAILABLE]"), data)
            raw = socket.create_connection(("127.0.0.1", moat.port("imaps")))
            raw.sendall(b"\x16\x03\x01\x00")
            raw.close()
            # An open session at shutdown.
            idle = harness.tls_connect(moat.port("imaps"), timeout=60)
            self.assertTrue(harness.recv_line(idle).startswith(b"* OK"))

            rc = moat.stop(timeout=180)
            idle.close()
            log = moat.log()
            self.assertIn("ERROR SUMMARY:", log, "valgrind did not report:\n" + log)
            self.assertEqual(rc, 0, "exit status %s under valgrind; log:\n%s" % (rc, log))
            for kind in ("definitely", "indirectly"):
                for m in re.finditer(r"%s lost: ([\d,]+) bytes" % kind, log):
                    self.assertEqual(m.group(1), "0", "%s lost bytes; log:\n%s" % (kind, log))
            self.assertRegex(log, r"ERROR SUMMARY: 0 errors", log)
        finally:
            moat.kill()


if __name__ == "__main__":
    unittest.main(verbosity=2)
