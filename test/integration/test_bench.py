"""make bench's machinery, kept from rotting: the load generator against
moat in front of a real Dovecot (every mode), the raw mbedTLS ceiling,
and the whole benchmark in its --quick form against moat alone (the
peers need packages that only make bench installs). Numbers are not
judged here, only that each measurement happens and is sane.
"""

import csv
import json
import os
import subprocess
import unittest

import harness

ROOT = harness.ROOT
LOADGEN = os.path.join(ROOT, "build", "bench", "loadgen")
TLSRAW = os.path.join(ROOT, "build", "bench", "tlsraw")
DOVECOT = None
MOAT = None


def setUpModule():
    global DOVECOT, MOAT
    r = subprocess.run(["make", "--no-print-directory", "-C", ROOT, "bench-build"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("make bench-build failed:\n" + r.stdout.decode(errors="replace"))
    DOVECOT = harness.Dovecot(name="dovecot-bench").start()
    MOAT = harness.Moat([harness.Listener("imaps", "imap", DOVECOT.imap_port),
                         harness.Listener("pop3s", "pop3", DOVECOT.pop3_port)],
                        name="moat-bench").start()


def tearDownModule():
    if MOAT:
        MOAT.stop()
    if DOVECOT:
        DOVECOT.stop()


def loadgen(*args, port=None):
    argv = [LOADGEN, "--port", str(port or MOAT.port("imaps")), "--ca", harness.certs().ca]
    r = subprocess.run(argv + [str(a) for a in args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=harness.scaled(120))
    lines = r.stdout.decode().strip().splitlines()
    return r.returncode, json.loads(lines[-1]) if lines else {}, r.stderr.decode()


class TestLoadgen(unittest.TestCase):

    def test_logins_both_versions(self):
        for tls in ("1.3", "1.2"):
            with self.subTest(tls=tls):
                start = len(MOAT.log())
                rc, res, err = loadgen("--mode", "login", "--tls", tls, "--count", 20,
                                       "--concurrency", 4)
                self.assertEqual(rc, 0, err)
                self.assertEqual((res["ok"], res["failed"]), (20, 0), res)
                self.assertGreater(res["login_ms"]["p50"], 0)
                self.assertGreaterEqual(res["login_ms"]["p99"], res["login_ms"]["p50"])
                ev = harness.wait_login_events(MOAT, "demo", 20, start)
                self.assertTrue(all(e["result"] == "ok" for e in ev))

    def test_resumption_is_counted(self):
        for tls in ("1.3", "1.2"):
            with self.subTest(tls=tls):
                rc, res, err = loadgen("--mode", "login", "--tls", tls, "--count", 10,
                                       "--resume")
                self.assertEqual(rc, 0, err)
                self.assertEqual(res["offered"], 9, res)
                self.assertEqual(res["resumed"], 9, res)

    def test_wrong_password_fails(self):
        rc, res, err = loadgen("--mode", "login", "--count", 1, "--pass", "nope")
        self.assertEqual(rc, 1)
        self.assertEqual(res["failed"], 1, res)
        self.assertIn("NO", " ".join(res.get("errors", [])))

    def test_fetch_and_retr(self):
        size = len(DOVECOT.message(1))
        rc, res, err = loadgen("--mode", "fetch", "--message", 1)
        self.assertEqual(rc, 0, err)
        self.assertEqual(res["bytes"], size, res)
        rc, res, err = loadgen("--mode", "retr", "--message", 1, port=MOAT.port("pop3s"))
        self.assertEqual(rc, 0, err)
        self.assertGreaterEqual(res["bytes"], size, res)

    def test_idle_sessions_are_held(self):
        p = subprocess.Popen([LOADGEN, "--port", str(MOAT.port("imaps")), "--ca",
                              harness.certs().ca, "--mode", "idle", "--count", "30"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            res = json.loads(p.stdout.readline().decode())
            self.assertEqual((res["established"], res["failed"]), (30, 0), res)
            self.assertGreaterEqual(harness.proc_fd_count(MOAT.proc.pid), 60)
        finally:
            p.stdin.close()
            self.assertEqual(p.wait(timeout=harness.scaled(60)), 0)


class TestRaw(unittest.TestCase):

    def test_tlsraw(self):
        c = harness.certs()
        r = subprocess.run([TLSRAW, c.fullchain, c.key, c.ca, "0.2"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads(r.stdout)
        for k in ("full_tls12_us", "full_tls13_us", "resumed_tls12_us", "resumed_tls13_us",
                  "records_s_per_gib", "aead_s_per_gib"):
            self.assertGreater(res[k], 0, k)
        # a resumed handshake skips the certificate work
        self.assertLess(res["resumed_tls12_us"], res["full_tls12_us"] / 2)
        self.assertLess(res["resumed_tls13_us"], res["full_tls13_us"])


class TestQuickBench(unittest.TestCase):

    def test_quick_run_writes_the_table(self):
        out = os.path.join(harness.new_dir("bench-csv"), "results.csv")
        r = subprocess.run(["python3", os.path.join(ROOT, "scripts", "bench", "bench.py"),
                            "--quick", "--servers", "moat", "--csv", out, "--scale", "200"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=900)
        text = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, text)
        self.assertIn("mbedTLS ceiling", text)
        self.assertRegex(text, r"scale: 200 sessions in IDLE through 1 moat process on one port")
        with open(out) as f:
            rows = {row[0]: row for row in csv.reader(f)}
        for label in ("login TLS 1.3, server CPU", "resumed TLS 1.2, server CPU",
                      "FETCH 64 MiB, wall", "idle in IDLE, memory", "LOGIN OK p99"):
            self.assertIn(label, rows)
            self.assertGreater(float(rows[label][2]), 0, rows[label])
