"""Several moat instances behind a load balancer: HAProxy (Debian's) in
TCP mode with send-proxy-v2 in front of moat A and moat B, one Dovecot
behind both.

  client --> HAProxy fe_all (round robin, health checks on /healthz)
             HAProxy fe_a  --> A only      (to get a ticket from A ...
             HAProxy fe_b  --> B only       ... and offer it to B)
  A, B: listener imaps with proxy_protocol = yes, [tls] ticket_key_file
        (one file made by scripts/ticket-keys.sh), [health] address,
        backend forward = native (IMAP ID), so Dovecot (its
        login_trusted_networks holding 127.0.0.1) logs the client's own
        address.

Clients connect from 127.0.0.2, so "the client's address" differs from
HAProxy's and moat's (127.0.0.1) everywhere.
"""

import calendar
import glob
import os
import re
import selectors
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

import harness

LOOPBACK = harness.LOOPBACK
CLIENT_IP = "127.0.0.2"
SCRIPT = os.path.join(harness.SCRIPTS, "ticket-keys.sh")

DOVECOT = None


def setUpModule():
    global DOVECOT
    DOVECOT = harness.Dovecot(name="dovecot-fleet", extra_conf="""
login_trusted_networks = 127.0.0.1/32
auth_failure_delay = 0
""").start()


def tearDownModule():
    if DOVECOT:
        DOVECOT.stop()


def make_keys(d, rotate=0):
    path = os.path.join(d, "ticket.keys")
    for _ in range(1 + rotate):
        r = subprocess.run(["sh", SCRIPT, path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == 0, r.stderr
    return path


def start_moat(name, keyfile, drain_delay="0", wrapper=None, tls=""):
    health = harness.free_port()
    opts = {"drain_delay": drain_delay, "shutdown_grace": "5s"}
    extra = ("[health]\naddress = 127.0.0.1:%d\n\n[backend d]\nimap = 127.0.0.1:%d\n"
             "forward = native\ncheck_interval = 1s\n" % (health, DOVECOT.imap_port))
    m = harness.Moat([harness.Listener("imaps", "imap", "d",
                                       options={"proxy_protocol": "yes"})],
                     name=name, options=opts, wrapper=wrapper,
                     extra_tls=("ticket_key_file = %s\n" % keyfile if keyfile else "") + tls,
                     extra=extra)
    m.health_port = health
    return m.start()


class HAProxy:
    def __init__(self, a, b):
        self.dir = harness.new_dir("haproxy")
        self.ports = {k: harness.free_port() for k in ("all", "a", "b")}
        cfg = ["global", "  maxconn 1000", "",
               "defaults", "  mode tcp", "  timeout connect 2s", "  timeout client 60s",
               "  timeout server 60s", "  retries 3", "  option redispatch", ""]
        servers = [("a", a), ("b", b)]
        cfg += ["frontend fe_all", "  bind %s:%d" % (LOOPBACK, self.ports["all"]),
                "  default_backend be_all", "", "backend be_all", "  balance roundrobin",
                "  option httpchk", "  http-check send meth GET uri /healthz"]
        for n, m in servers:
            cfg.append("  server %s %s:%d send-proxy-v2 check port %d inter 200ms fall 1 "
                       "rise 2" % (n, LOOPBACK, m.port("imaps"), m.health_port))
        for n, m in servers:
            cfg += ["", "frontend fe_%s" % n, "  bind %s:%d" % (LOOPBACK, self.ports[n]),
                    "  default_backend be_%s" % n, "", "backend be_%s" % n,
                    "  server %s %s:%d send-proxy-v2" % (n, LOOPBACK, m.port("imaps"))]
        self.cfg = os.path.join(self.dir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write("\n".join(cfg) + "\n")
        self.out = open(os.path.join(self.dir, "haproxy.out"), "wb")
        self.proc = harness.spawn(["haproxy", "-db", "-f", self.cfg], stdout=self.out,
                                  stderr=subprocess.STDOUT)
        for p in self.ports.values():
            harness.wait_port(p, harness.scaled(10), self.proc, "haproxy")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        harness.kill_group(self.proc)
        self.out.close()


def s_client(port, *extra, send=b"a LOGOUT\r\n"):
    argv = ["openssl", "s_client", "-connect", "%s:%d" % (LOOPBACK, port), "-bind",
            "%s:0" % CLIENT_IP, "-CAfile", harness.certs().ca, "-servername", "localhost",
            "-ign_eof"] + list(extra)
    r = harness.run_cmd(argv, timeout=30, input=send)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def reuse_state(out):
    m = re.search(r"(?m)^(New|Reused), (TLSv1\.\d)", out)
    return m.group(1) if m else None


def resumes(testcase, first, second, version):
    sess = os.path.join(harness.new_dir("sess"), "s.pem")
    rc, out1 = s_client(first, "-" + version, "-sess_out", sess)
    testcase.assertEqual(rc, 0, out1)
    testcase.assertEqual(reuse_state(out1), "New", out1)
    testcase.assertTrue(os.path.exists(sess), "no session saved:\n" + out1)
    rc, out2 = s_client(second, "-" + version, "-sess_in", sess)
    testcase.assertEqual(rc, 0, out2)
    testcase.assertIn("* OK", out2)
    return reuse_state(out2)


def imap_login(port, timeout=10):
    """A login through port from CLIENT_IP; returns None or what failed."""
    ctx = harness.client_context()
    try:
        raw = socket.create_connection((LOOPBACK, port), timeout=timeout,
                                       source_address=(CLIENT_IP, 0))
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        f = s.makefile("rb")
        g = f.readline()
        if not g.startswith(b"* OK"):
            return "greeting %r" % g
        s.sendall(b"a LOGIN demo demo\r\n")
        while True:
            line = f.readline()
            if not line:
                return "closed after LOGIN"
            if line.startswith(b"a "):
                break
        if not line.startswith(b"a OK"):
            return "LOGIN: %r" % line
        s.sendall(b"b LOGOUT\r\n")
        while True:
            line = f.readline()
            if not line or line.startswith(b"b "):
                break
        s.close()
        return None
    except (OSError, ssl.SSLError) as e:
        return "%s: %s" % (type(e).__name__, e)


def healthz(m):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % m.health_port,
                                    timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def http_get(port, path, timeout=10):
    """GET path on 127.0.0.1:port over a raw socket: (status, body), or
    (None, what went wrong) when no answer came."""
    try:
        with socket.create_connection(("127.0.0.1", port),
                                      timeout=harness.scaled(timeout)) as s:
            s.sendall(b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        return None, "%s: %s" % (type(e).__name__, e)
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/"):
        return None, "no response: %r" % data[:200]
    return int(head.split()[1]), body.decode(errors="replace")


def open_idle(port, n):
    """n connections to 127.0.0.1:port that never finish a request head:
    half send nothing, half a request line without the blank line."""
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=harness.scaled(10))
        socks.append(s)
        if i % 2:
            try:
                s.sendall(b"GET /healthz HTTP/1.0\r\n")
            except OSError:
                pass                         # already closed: counted later
    return socks


def wait_all_closed(socks, timeout):
    """Waits until the peer has closed every socket (EOF or reset); returns
    how many are still open at the deadline."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    open_ = len(socks)
    deadline = time.monotonic() + harness.scaled(timeout)
    while open_ and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.2):
            try:
                if key.fileobj.recv(4096):
                    continue                 # bytes, not a close: keep waiting
            except BlockingIOError:
                continue
            except OSError:
                pass
            sel.unregister(key.fileobj)
            open_ -= 1
    sel.close()
    return open_


class TestFleet(unittest.TestCase):

    def setUp(self):
        self.dir = harness.new_dir("fleet")
        self.keys = make_keys(self.dir)
        self.a = start_moat("moat-a", self.keys, drain_delay="2s")
        self.addCleanup(self.a.stop)
        self.b = start_moat("moat-b", self.keys)
        self.addCleanup(self.b.stop)
        self.lb = HAProxy(self.a, self.b)
        self.addCleanup(self.lb.stop)

    def test_ticket_from_a_resumes_on_b(self):
        for version in ("tls1_3", "tls1_2"):
            with self.subTest(version=version):
                self.assertEqual(resumes(self, self.lb.ports["a"], self.lb.ports["b"],
                                         version), "Reused")
        self.assertRegex(self.b.log(), r"event=session_end listener=imaps client=127\.0\.0\.2:"
                                       r"\d+ [^\n]*resumed=yes")

    def test_rotated_keys_reloaded(self):
        sess_dir = harness.new_dir("sess-rot")
        old = os.path.join(sess_dir, "old.pem")
        rc, out = s_client(self.lb.ports["a"], "-tls1_2", "-sess_out", old)
        self.assertEqual(reuse_state(out), "New", out)
        make_keys(self.dir, rotate=0)          # a new key first, the old one kept
        for m in (self.a, self.b):
            start = len(m.log())
            m.proc.send_signal(signal.SIGHUP)
            m.wait_log(r"event=reloaded", start=start)
        # a ticket under the previous key still resumes on both
        for port in (self.lb.ports["a"], self.lb.ports["b"]):
            rc, out = s_client(port, "-tls1_2", "-sess_in", old)
            self.assertEqual(reuse_state(out), "Reused", out)
        # and new tickets still cross instances
        self.assertEqual(resumes(self, self.lb.ports["b"], self.lb.ports["a"], "tls1_3"),
                         "Reused")

    def test_backend_sees_the_client(self):
        start = len(harness._read(DOVECOT.log_path))
        self.assertIsNone(imap_login(self.lb.ports["all"]))
        deadline = time.monotonic() + harness.scaled(10)
        while True:
            lines = [l for l in harness._read(DOVECOT.log_path)[start:].splitlines()
                     if "imap-login: Info: Login: user=<demo>" in l]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertTrue(lines, harness._read(DOVECOT.log_path)[start:])
        self.assertIn("rip=%s," % CLIENT_IP, lines[0])
        self.assertRegex(self.a.log() + self.b.log(),
                         r"event=login listener=imaps client=127\.0\.0\.2:\d+ "
                         r"user=\"demo\" [^\n]*result=ok")

    def test_sigterm_under_load(self):
        self.assertEqual(healthz(self.a), (200, "ok\n"))
        results, stop = [], threading.Event()

        def loop():
            while not stop.is_set():
                results.append((time.monotonic(), imap_login(self.lb.ports["all"])))

        threads = [threading.Thread(target=loop) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            time.sleep(1)
            t0 = time.monotonic()
            self.a.proc.send_signal(signal.SIGTERM)
            # /healthz turns 503 first, while A still serves
            deadline = t0 + harness.scaled(2)
            while healthz(self.a)[0] != 503:
                self.assertLess(time.monotonic(), deadline, "A's /healthz stayed 200")
                time.sleep(0.05)
            self.assertEqual(healthz(self.a), (503, "draining\n"))
            self.assertIsNone(self.a.proc.poll(), "A exited before its drain_delay")
            rc = self.a.proc.wait(timeout=harness.scaled(15))
            self.assertEqual(rc, 0, self.a.log()[-3000:])
            t_exit = time.monotonic()
            time.sleep(1)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        failed = [(round(t - t0, 2), r) for t, r in results if r]
        self.assertFalse(failed, "logins failed while A drained (A exited at +%.2fs): %s"
                         % (t_exit - t0, failed[:5]))
        after = [t for t, r in results if t > t_exit]
        self.assertGreater(len(after), 3, "the loop stalled after A left")
        self.assertRegex(self.a.log(), r"event=stopping signal=SIGTERM drain_delay_ms=2000")
        self.assertRegex(self.b.log(), r"event=login [^\n]*result=ok")


def faketime_lib():
    """libfaketime for threaded programs (Debian: faketime), or None."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    return found[0] if found else None


@unittest.skipUnless(faketime_lib(), "libfaketime (Debian: faketime) is not installed")
@unittest.skipIf(harness.moat_sanitized(), "libfaketime hangs an ASan moat at start (its "
                 "dlsym() calls malloc() inside ASan's allocator)")
class TestKeysOutliveLifetime(unittest.TestCase):
    """ticket_key_file's keys stay in force past ticket_lifetime (1m, the
    least): A and B run on a wall clock that libfaketime moves on while
    they run (their monotonic clocks stay real: libuv's timers, mbedTLS's
    ticket ages), and a ticket from one still resumes on the other.
    mbedTLS alone replaces a key it has held for a lifetime by a random
    one, and the two would stop resuming each other's tickets."""

    def setUp(self):
        d = harness.new_dir("fleet-clock")
        self.clock = os.path.join(d, "faketime.rc")
        self.set_clock(0)
        wrapper = ["env", "LD_PRELOAD=" + faketime_lib(),
                   "FAKETIME_TIMESTAMP_FILE=" + self.clock, "FAKETIME_NO_CACHE=1",
                   "FAKETIME_DONT_FAKE_MONOTONIC=1"] + harness.moat_wrapper()
        keys = make_keys(d)
        self.a = start_moat("moat-clock-a", keys, wrapper=wrapper, tls="ticket_lifetime = 1m")
        self.addCleanup(self.a.stop)
        self.b = start_moat("moat-clock-b", keys, wrapper=wrapper, tls="ticket_lifetime = 1m")
        self.addCleanup(self.b.stop)
        self.lb = HAProxy(self.a, self.b)
        self.addCleanup(self.lb.stop)

    def set_clock(self, ahead):
        """Sets moat's wall clock `ahead` seconds past the real one (read
        at every call: FAKETIME_NO_CACHE)."""
        tmp = self.clock + ".new"
        with open(tmp, "w") as f:
            f.write("+%d\n" % ahead)
        os.rename(tmp, self.clock)

    def test_ticket_past_lifetime(self):
        for ahead in (90, 150):                # past one lifetime, then two
            self.set_clock(ahead)
            for version in ("tls1_3", "tls1_2"):
                with self.subTest(ahead=ahead, version=version):
                    self.assertEqual(resumes(self, self.lb.ports["a"], self.lb.ports["b"],
                                             version), "Reused")
                    self.assertEqual(resumes(self, self.lb.ports["b"], self.lb.ports["a"],
                                             version), "Reused")
        # moat's clock did move on: its last lines are stamped that far ahead
        stamp = re.findall(r"(?m)^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d+Z ", self.b.log())[-1]
        self.assertGreater(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")),
                           time.time() + 120, self.b.log()[-2000:])


class TestWithoutSharedKeys(unittest.TestCase):
    """The control: without ticket_key_file each instance has keys of its
    own, so a ticket from A does not resume on B."""

    def test_no_resumption_across(self):
        a = start_moat("moat-a1", None)
        self.addCleanup(a.stop)
        b = start_moat("moat-b1", None)
        self.addCleanup(b.stop)
        lb = HAProxy(a, b)
        self.addCleanup(lb.stop)
        self.assertEqual(resumes(self, lb.ports["a"], lb.ports["b"], "tls1_2"), "New")
        self.assertEqual(resumes(self, lb.ports["a"], lb.ports["a"], "tls1_2"), "Reused")


class TestHealthz(unittest.TestCase):

    def metrics(self, port):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            return r.read().decode()

    def test_backend_state(self):
        gone = harness.free_port()           # nothing listens there
        health, mport = harness.free_port(), harness.free_port()
        m = harness.Moat([harness.Listener("imaps", "imap", "gone, d"),
                          harness.Listener("lonely", "imap", "gone")], name="moat-hz",
                         extra="[health]\naddress = 127.0.0.1:%d\n\n[metrics]\naddress = "
                               "127.0.0.1:%d\n\n[backend gone]\nimap = 127.0.0.1:%d\n"
                               "check_interval = 1s\n\n[backend d]\nimap = 127.0.0.1:%d\n"
                               % (health, mport, gone, DOVECOT.imap_port))
        m.health_port = health
        m.start()
        self.addCleanup(m.stop)
        m.wait_log(r"event=backend_down backend=gone")
        # one listener still has a backend: healthy
        self.assertEqual(healthz(m), (200, "ok\n"))
        held = harness.ImapClient(m.port("imaps"))
        self.addCleanup(held.close)
        held.greeting()
        _, r = held.cmd("a", "LOGIN demo demo")
        self.assertTrue(r.startswith(b"a OK"), held.dump())
        text = self.metrics(mport)
        self.assertIn('moat_backend_up{backend="gone",protocol="imap"} 0\n', text)
        self.assertIn('moat_backend_up{backend="d",protocol="imap"} 1\n', text)
        self.assertIn('moat_backend_sessions{backend="d"} 1\n', text)
        held.cmd("b", "LOGOUT")
        held.close()
        deadline = time.monotonic() + harness.scaled(5)
        while 'moat_backend_sessions{backend="d"} 0\n' not in self.metrics(mport):
            self.assertLess(time.monotonic(), deadline, "the session was not counted out")
            time.sleep(0.05)
        # the metrics endpoint answers /healthz too; [health] nothing else
        with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % mport, timeout=5) as r:
            self.assertEqual((r.status, r.read()), (200, b"ok\n"))
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/metrics" % health, timeout=5)
            self.fail("[health] answered /metrics")
        except urllib.error.HTTPError as e:
            self.assertEqual(e.code, 404)

    def test_all_backends_down_is_503(self):
        port = harness.free_port()           # nothing listens there
        health = harness.free_port()
        m = harness.Moat([harness.Listener("imaps", "imap", "gone")], name="moat-hz2",
                         extra="[health]\naddress = 127.0.0.1:%d\n\n[backend gone]\n"
                               "imap = 127.0.0.1:%d\ncheck_interval = 1s\n" % (health, port))
        m.health_port = health
        m.start()
        self.addCleanup(m.stop)
        m.wait_log(r"event=backend_down backend=gone")
        self.assertEqual(healthz(m), (503, "every backend is down\n"))


    def flood_then_probe(self, port):
        """100 idle connections from 127.0.0.1, then a probe from there too:
        it must be answered, and the idle ones closed before long (evicted
        or timed out), not held."""
        idle = open_idle(port, 100)
        self.addCleanup(lambda: [s.close() for s in idle])
        self.assertEqual(http_get(port, "/healthz"), (200, "ok\n"))
        self.assertEqual(wait_all_closed(idle, 8), 0, "idle connections still open")
        self.assertEqual(http_get(port, "/healthz"), (200, "ok\n"))

    def start_flooded(self, name):
        health, mport = harness.free_port(), harness.free_port()
        m = harness.Moat([harness.Listener("imaps", "imap", "d")], name=name,
                         extra="[health]\naddress = 127.0.0.1:%d\n\n[metrics]\naddress = "
                               "127.0.0.1:%d\n\n[backend d]\nimap = 127.0.0.1:%d\n"
                               % (health, mport, DOVECOT.imap_port))
        m.health_port = health
        m.start()
        self.addCleanup(m.stop)
        return m, health, mport

    def test_idle_flood_health(self):
        m, health, _ = self.start_flooded("moat-hz-flood")
        self.flood_then_probe(health)
        self.assertIsNone(m.proc.poll(), "moat exited")

    def test_idle_flood_metrics(self):
        m, _, mport = self.start_flooded("moat-mx-flood")
        self.flood_then_probe(mport)
        status, body = http_get(mport, "/metrics")
        self.assertEqual(status, 200, body)
        self.assertIn("moat_info{", body)
        self.assertIsNone(m.proc.poll(), "moat exited")


if __name__ == "__main__":
    unittest.main()
