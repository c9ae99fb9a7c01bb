#!/usr/bin/env python3
"""make bench: moat against the TLS terminators admins compare it with.

    python3 scripts/bench/bench.py [--quick] [--rounds N] [--logins N]
                                   [--idle N] [--bulk-mib N] [--bulk-repeat N]
                                   [--stime-seconds T] [--rate R]
                                   [--servers moat,moat-builtin,nginx,stunnel,haproxy]
                                   [--scale N] [--csv FILE]

On loopback only, one Dovecot backend (the integration tests' harness
starts it, with a 64 MiB message) and, in front of it, each on its own
ports, with the same ECDSA P-256 certificate and one worker each:

  moat          build/moat, workers = 1 (the default build: OpenSSL's
                libcrypto beneath mbedTLS as a PSA driver)
  moat-builtin  build/builtin/moat, the same configuration, its mbedTLS
                using only its own crypto (make CRYPTO=builtin
                BUILD=build/builtin build/builtin/moat): moat before the
                driver. In the default --servers only when that binary
                exists; skipped with a note when asked for and missing.
  nginx         the mail proxy (libnginx-mod-mail), worker_processes 1, with
                an auth_http answered by an nginx location returning the
                backend
  stunnel       stunnel4 (a thread per connection: its model)
  haproxy       TLS termination in TCP mode, nbthread 1

plus Dovecot's own TLS port (dovecot-tls) as the latency baseline. The
load comes from build/bench/loadgen (C, libuv + mbedTLS, one thread),
which reports its own CPU, and from openssl s_time. Every measurement
runs once per server per round, servers in a rotated order each round so
that drift hits all alike; the table shows medians. Server CPU is always
utime+stime of the server's processes (/proc/PID/stat, all threads, in
clock ticks: 10 ms) before and after, divided by the work done; the
work is sized so that a figure rests on many ticks, and a line under the
table names any that rested on fewer than 25 in some round:

  login      server CPU per full handshake + IMAP LOGIN + LOGOUT, TLS 1.3
             and TLS 1.2 (loadgen: X25519, ECDSA P-256, the suite each
             server prefers among mbedTLS's default offer)
  s_time     server CPU per full handshake from OpenSSL's client, as most
             real clients are OpenSSL-, BoringSSL- or SChannel-based:
             `openssl s_time -connect 127.0.0.1:IMAPS -new -time T -CAfile
             CA`, with -tls1_3 (OpenSSL's default offer: X25519 and its
             suites, the server choosing), and with -tls1_2 -cipher
             ECDHE-ECDSA-AES128-GCM-SHA256; divided by the connections s_time
             says it completed. s_time reads nothing: it closes as soon as
             its side of the handshake is done, without waiting for the
             server's TLS 1.3 tickets or greeting, so this is the
             handshake, TCP accept and close and whatever the server does
             meanwhile, no IMAP. moat and nginx greet the client themselves
             and reach Dovecot only at LOGIN; stunnel and HAProxy connect
             to Dovecot for every connection, which they pay here too.
  resumed    the same as login with a TLS 1.2 session ticket / a TLS 1.3 PSK
  fleet      (moat only) the same when the ticket came from a second moat
             sharing the ticket_key_file: CPU of both instances per login
  bulk       the 64 MiB message, --bulk-repeat times in one TLS 1.3 session
             (so that the 10 ms clock ticks of /proc are a small part of
             the CPU measured): server CPU per GiB of message and wall
             MB/s (the fetch commands' time, from sending each to its
             end). "FETCH 64 MiB AES-128-GCM" and "FETCH 64 MiB CHACHA20"
             pin the suite (loadgen --suite TLS_AES_128_GCM_SHA256,
             TLS_CHACHA20_POLY1305_SHA256; the agreed suite is checked);
             "FETCH 64 MiB" alone offers mbedTLS's default list and lets
             the server choose (HAProxy picks AES-256-GCM: the suites
             agreed are printed); "RETR 64 MiB AES-128-GCM" is POP3 RETR.
  idle       N logged-in IMAP sessions in IDLE: resident memory of the
             server's processes per session (PSS, /proc/PID/smaps_rollup)
  latency    p50/p99 time to the greeting and to the tagged OK of LOGIN,
             at a fixed login rate

then the raw mbedTLS ceiling (build/bench/tlsraw: handshakes and record
encryption in the default build's mbedTLS, no sockets), moat's ratio to
each peer and to moat-builtin, and a "targets" block, each goal met or
not met by the ratio of the medians (the range of the per-round ratios
beside it): bulk server CPU per GiB <= 1.0x HAProxy's with AES-128-GCM
and with ChaCha20-Poly1305, FETCH wall MB/s >= HAProxy's (both suites),
full TLS 1.3 and TLS 1.2 server CPU <= 0.9x nginx's (the login rows and
the s_time rows), resumed logins' server CPU <= moat-builtin's (TLS 1.3,
TLS 1.2), idle memory <= 6 KiB per session. The machine's load average is
printed before and after:
CPU per operation is measured per process and holds up on a busy machine
better than wall throughput and latency do. Writes the table as CSV
(default build/bench/results.csv).
"""

import argparse
import csv
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
sys.dont_write_bytecode = True

import harness  # noqa: E402  (the tests' Dovecot, certificates, processes)

LOOPBACK = harness.LOOPBACK
BENCH = os.path.join(ROOT, "build", "bench")
LOADGEN = os.path.join(BENCH, "loadgen")
MOAT_BUILTIN = os.path.join(ROOT, "build", "builtin", "moat")
TLSRAW = os.path.join(BENCH, "tlsraw")
HZ = os.sysconf("SC_CLK_TCK")
AES = "TLS_AES_128_GCM_SHA256"
CHACHA = "TLS_CHACHA20_POLY1305_SHA256"
# openssl s_time's version and suite options for each row
MIN_TICKS = 25                    # fewer behind a CPU figure: said so under the table
STIME = {"1.3": ["-tls1_3"], "1.2": ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]}


# ------------------------------------------------------------------ /proc

def tree(pid):
    """pid and all its descendants."""
    out, todo = [], [pid]
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(d))
            except OSError:
                pass
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pids):
    """utime + stime of these processes (threads included), seconds."""
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            t += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return t / HZ


def ticks(c0, c1):
    """Clock ticks (1/HZ s, /proc's resolution) between two cpu_seconds()."""
    return round((c1 - c0) * HZ)


def memory_kib(pids):
    """Proportional set size of these processes, KiB (RSS where the kernel
    has no smaps_rollup)."""
    t = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        t += int(line.split()[1])
        except OSError:
            t += harness.proc_rss_kib(p) or 0
    return t


# ------------------------------------------------------------------ servers

class Server:
    """A TLS terminator in front of the Dovecot: start(), stop(), pids(),
    imaps and pop3s ports."""

    name = "?"

    def __init__(self, dovecot, certs, workdir):
        self.dovecot = dovecot
        self.certs = certs
        self.dir = os.path.join(workdir, self.name)
        os.makedirs(self.dir, exist_ok=True)
        self.imaps = harness.free_port()
        self.pop3s = harness.free_port()
        self.proc = None

    def command(self):
        raise NotImplementedError

    def start(self):
        log = open(os.path.join(self.dir, "out.log"), "wb")
        self.proc = harness.spawn(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                  cwd=self.dir)
        log.close()
        try:
            harness.wait_port(self.imaps, 30, self.proc, self.name)
            harness.wait_port(self.pop3s, 30, self.proc, self.name)
        except Exception as e:
            with open(os.path.join(self.dir, "out.log"), errors="replace") as f:
                raise RuntimeError("%s\n%s's output:\n%s" % (e, self.name, f.read()[-2000:]))
        time.sleep(0.3)

    def pids(self):
        return tree(self.proc.pid)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        if self.proc:
            harness.kill_group(self.proc)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path


class Moat(Server):
    name = "moat"
    binary = os.path.join(ROOT, "build", "moat")
    ticket_keys = None            # a ticket_key_file shared with another instance

    def command(self):
        conf = self.write("moat.ini", """\
[moat]
workers = 1
log_level = warn
allow_root = yes
max_connections = 100000
[tls]
certificate = {c.fullchain}
key = {c.key}
{keys}
[listener imaps]
address = 127.0.0.1:{imaps}
protocol = imap
backend = 127.0.0.1:{d.imap_port}
[listener pop3s]
address = 127.0.0.1:{pop3s}
protocol = pop3
backend = 127.0.0.1:{d.pop3_port}
""".format(c=self.certs, d=self.dovecot, imaps=self.imaps, pop3s=self.pop3s,
           keys="ticket_key_file = %s" % self.ticket_keys if self.ticket_keys else ""))
        return [self.binary, "-c", conf]


class MoatBuiltin(Moat):
    """moat whose mbedTLS uses its own crypto only (CRYPTO=builtin)."""
    name = "moat-builtin"
    binary = MOAT_BUILTIN


class Nginx(Server):
    name = "nginx"

    def command(self):
        self.auth = harness.free_port()
        conf = self.write("nginx.conf", """\
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 19000; }}
http {{
    access_log off;
    map $http_auth_protocol $backend_port {{ imap {d.imap_port}; pop3 {d.pop3_port}; }}
    server {{
        listen 127.0.0.1:{auth};
        location = /auth {{
            add_header Auth-Status OK;
            add_header Auth-Server 127.0.0.1;
            add_header Auth-Port $backend_port;
            return 204;
        }}
    }}
}}
mail {{
    server_name localhost;
    auth_http 127.0.0.1:{auth}/auth;
    imap_capabilities IMAP4rev1 IDLE LITERAL+ SASL-IR;
    pop3_auth plain;
    ssl_certificate {c.fullchain};
    ssl_certificate_key {c.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_session_tickets on;
    server {{ listen 127.0.0.1:{imaps} ssl; protocol imap; }}
    server {{ listen 127.0.0.1:{pop3s} ssl; protocol pop3; }}
}}
""".format(dir=self.dir, c=self.certs, d=self.dovecot, auth=self.auth, imaps=self.imaps,
           pop3s=self.pop3s))
        return ["nginx", "-c", conf, "-p", self.dir]


class Stunnel(Server):
    name = "stunnel"

    def command(self):
        conf = self.write("stunnel.conf", """\
foreground = yes
pid =
output = {dir}/stunnel.log
debug = warning
[imaps]
accept = 127.0.0.1:{imaps}
connect = 127.0.0.1:{d.imap_port}
cert = {c.fullchain}
key = {c.key}
sslVersionMin = TLSv1.2
curves = X25519:P-256:P-384
[pop3s]
accept = 127.0.0.1:{pop3s}
connect = 127.0.0.1:{d.pop3_port}
cert = {c.fullchain}
key = {c.key}
sslVersionMin = TLSv1.2
curves = X25519:P-256:P-384
""".format(dir=self.dir, c=self.certs, d=self.dovecot, imaps=self.imaps, pop3s=self.pop3s))
        return ["stunnel4", conf]


class Haproxy(Server):
    name = "haproxy"

    def command(self):
        with open(self.certs.fullchain) as f:
            chain = f.read()
        with open(self.certs.key) as f:
            key = f.read()
        pem = self.write("combined.pem", chain + key)
        os.chmod(pem, 0o600)
        conf = self.write("haproxy.cfg", """\
global
    nbthread 1
    maxconn 9000
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode tcp
    timeout connect 5s
    timeout client 2h
    timeout server 2h
frontend imaps
    bind 127.0.0.1:{imaps} ssl crt {pem} curves X25519:P-256:P-384
    default_backend imap
frontend pop3s
    bind 127.0.0.1:{pop3s} ssl crt {pem} curves X25519:P-256:P-384
    default_backend pop3
backend imap
    server dovecot 127.0.0.1:{d.imap_port}
backend pop3
    server dovecot 127.0.0.1:{d.pop3_port}
""".format(pem=pem, d=self.dovecot, imaps=self.imaps, pop3s=self.pop3s))
        return ["haproxy", "-db", "-f", conf]


class DovecotTls(Server):
    """Dovecot's own TLS ports: the latency baseline (it logs in itself,
    so its CPU is not comparable)."""
    name = "dovecot-tls"

    def __init__(self, dovecot, certs, workdir):
        super().__init__(dovecot, certs, workdir)
        self.imaps = dovecot.imaps_port
        self.pop3s = dovecot.pop3s_port

    def start(self):
        pass

    def stop(self):
        pass

    def pids(self):
        return tree(self.dovecot.proc.pid)


SERVERS = {"moat": Moat, "moat-builtin": MoatBuiltin, "nginx": Nginx, "stunnel": Stunnel,
           "haproxy": Haproxy}


# ------------------------------------------------------------------ load

def loadgen(server, *args, timeout=600):
    """Runs the load generator against server's IMAPS port (or the given
    --port); returns its JSON result."""
    argv = [LOADGEN, "--host", LOOPBACK, "--ca", harness.certs().ca, "--user", "demo",
            "--pass", "demo"] + [str(a) for a in args]
    if "--port" not in args:
        argv += ["--port", str(server.imaps)]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    out = r.stdout.decode(errors="replace").strip().splitlines()
    if not out:
        raise RuntimeError("%s: loadgen %s printed nothing: %s"
                           % (server.name, " ".join(argv[1:]), r.stderr.decode()))
    res = json.loads(out[-1])
    if r.returncode != 0:
        res.setdefault("errors", []).append(r.stderr.decode(errors="replace")[-300:])
    return res


def measure_logins(server, tls, n, resume):
    """Server CPU per login (µs), and the loadgen's."""
    args = ["--mode", "login", "--tls", tls, "--count", n, "--concurrency", 4]
    if resume:
        args.append("--resume")
    pids = server.pids()
    c0 = cpu_seconds(pids)
    res = loadgen(server, *args)
    c1 = cpu_seconds(pids)
    if res["failed"] or res["ok"] != n:
        raise RuntimeError("%s login %s: %s" % (server.name, tls, res))
    if resume and res.get("resumed", 0) < n - 1:
        res["note"] = "resumed %d of %d" % (res.get("resumed", 0), n)
    return {"server_us": (c1 - c0) / n * 1e6, "loadgen_us": res["cpu_s"] / n * 1e6,
            "resumed": res.get("resumed", 0), "n": n, "ticks": ticks(c0, c1)}


def measure_fleet(a, b, tls, n):
    """Resumed logins whose ticket came from moat a, offered to moat b
    (shared ticket_key_file): CPU of both per login (µs)."""
    pids = a.pids() + b.pids()
    c0 = cpu_seconds(pids)
    res = loadgen(a, "--mode", "login", "--tls", tls, "--count", n, "--concurrency", 4,
                  "--resume", "--resume-port", b.imaps)
    c1 = cpu_seconds(pids)
    if res["failed"] or res["ok"] != n or res.get("resumed", 0) < n - 1:
        raise RuntimeError("moat fleet resumed %s: %s" % (tls, res))
    return {"server_us": (c1 - c0) / n * 1e6, "resumed": res.get("resumed", 0),
            "ticks": ticks(c0, c1)}


def measure_bulk(server, mode, size, suite, repeat):
    """The message, repeat times in one TLS 1.3 session, offering only
    suite (None: mbedTLS's default list). Server CPU per GiB of message,
    wall MB/s, and the suite agreed."""
    port = server.imaps if mode == "fetch" else server.pop3s
    args = ["--mode", mode, "--tls", "1.3", "--port", port, "--message", 1, "--repeat", repeat]
    if suite:
        args += ["--suite", suite]
    pids = server.pids()
    c0 = cpu_seconds(pids)
    res = loadgen(server, *args)
    c1 = cpu_seconds(pids)
    if res.get("errors") or res.get("bytes", 0) < size * repeat:
        raise RuntimeError("%s %s %s: %s" % (server.name, mode, suite or "", res))
    if suite and res.get("suite") != suite:
        raise RuntimeError("%s %s: offered only %s, agreed %s" % (server.name, mode, suite, res))
    return {"s_per_gib": (c1 - c0) / (size * repeat / 2 ** 30), "mb_s": res["mb_s"],
            "suite": res.get("suite", "?"), "ticks": ticks(c0, c1)}


STIME_LINES = (
    # OpenSSL 1.1.1 and 3.x, apps/s_time.c: the -new run's two result lines
    re.compile(r"^(\d+) connections in ([0-9.]+)s; ([0-9.]+) connections/user sec, "
               r"bytes read (\d+)\s*$", re.M),
    re.compile(r"^(\d+) connections in (\d+) real seconds, (\d+) bytes read per "
               r"connection\s*$", re.M),
)


def parse_stime(text):
    """The number of connections an `openssl s_time -new` run completed,
    and its real seconds; raises ValueError unless both of its result lines
    are there, once each, and agree."""
    found = [rx.findall(text) for rx in STIME_LINES]
    if any(len(f) != 1 for f in found):
        raise ValueError("s_time output not understood: %r" % text[-600:])
    (n1, _, _, _), (n2, real, _) = found[0][0], found[1][0]
    if int(n1) != int(n2) or int(n1) <= 0:
        raise ValueError("s_time counted %s and %s connections: %r" % (n1, n2, text[-600:]))
    return int(n1), int(real)


def measure_stime(server, tls, seconds):
    """Server CPU per full handshake (µs) from `openssl s_time -new`,
    divided by the connections s_time reports."""
    argv = ["openssl", "s_time", "-connect", "%s:%d" % (LOOPBACK, server.imaps), "-new",
            "-time", str(seconds), "-CAfile", harness.certs().ca] + STIME[tls]
    pids = server.pids()
    c0 = cpu_seconds(pids)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=seconds * 3 + 60)
    # s_time closes as soon as its side of the handshake is done: let the
    # server finish the last one before reading its CPU
    time.sleep(0.2)
    c1 = cpu_seconds(pids)
    out = r.stdout.decode(errors="replace")
    if r.returncode != 0:
        raise RuntimeError("%s: %s exited %d:\n%s%s" % (server.name, " ".join(argv),
                                                         r.returncode, out[-600:],
                                                         r.stderr.decode(errors="replace")[-600:]))
    try:
        n, real = parse_stime(out)
    except ValueError as e:
        raise RuntimeError("%s: %s: %s" % (server.name, " ".join(argv), e))
    return {"server_us": (c1 - c0) / n * 1e6, "n": n, "rate": n / max(real, 1),
            "ticks": ticks(c0, c1)}


def measure_idle(server, n):
    """KiB of the server's memory per session with n sessions in IDLE, in
    a freshly started server (so memory an earlier test left in its heap
    does not hide the cost), after one login to warm it up."""
    server.stop()
    server.start()
    loadgen(server, "--mode", "login", "--tls", "1.3", "--count", 2)
    time.sleep(0.5)
    pids = server.pids()
    m0 = memory_kib(pids)
    argv = [LOADGEN, "--host", LOOPBACK, "--port", str(server.imaps), "--ca",
            harness.certs().ca, "--user", "demo", "--pass", "demo", "--mode", "idle",
            "--tls", "1.3", "--count", str(n), "--concurrency", "50"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        line = p.stdout.readline().decode()
        res = json.loads(line) if line.strip() else {}
        if res.get("established") != n:
            raise RuntimeError("%s idle: %s %s" % (server.name, res,
                                                    p.stderr.read(300).decode()))
        time.sleep(1.5)
        m1 = memory_kib(server.pids())
    finally:
        p.stdin.close()
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
    time.sleep(1)
    return {"kib_per_session": (m1 - m0) / n}


def measure_latency(server, rate, n):
    res = loadgen(server, "--mode", "login", "--tls", "1.3", "--count", n, "--rate", rate)
    if res["failed"]:
        raise RuntimeError("%s latency: %s" % (server.name, res))
    return {"greet_p50": res["greet_ms"]["p50"], "greet_p99": res["greet_ms"]["p99"],
            "login_p50": res["login_ms"]["p50"], "login_p99": res["login_ms"]["p99"]}


# ------------------------------------------------------------------ scale

def measure_scale(certs, n, rate, seconds):
    """moat in front of featherweight backends (fakeimap.py): n sessions
    logged in and in IDLE, then logins at `rate` per second for `seconds`;
    their latency, and moat's memory per idle session. Each moat process
    holds two descriptors a session and the hard limit may be low (20,000
    here), so past PER_PROCESS sessions several moat processes share the
    port with SO_REUSEPORT, as a fleet on one machine would, each with a
    backend of its own; memory is summed over them."""
    per_process = 9000
    nproc = max(1, -(-n // per_process))
    work = harness.new_dir("scale")
    fakes, moats, holders = [], [], []
    try:
        for i in range(nproc):
            port = harness.free_port()
            fake = harness.spawn([sys.executable, os.path.join(HERE, "fakeimap.py"), str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            fakes.append(fake)
            harness.wait_port(port, 30, fake, "fakeimap")
            dummy = type("D", (), {"imap_port": port, "pop3_port": port})()
            moat = type("MoatS", (Moat,), {"name": "moat-scale%d" % i})(dummy, certs, work)
            if moats:
                moat.imaps = moats[0].imaps      # one port, SO_REUSEPORT
            moat.pop3s = moat.imaps              # one listener is enough here
            conf = moat.command()
            with open(conf[-1]) as f:
                text = f.read().split("[listener pop3s]")[0]
            with open(conf[-1], "w") as f:
                f.write(text)
            log = open(os.path.join(moat.dir, "out.log"), "wb")
            moat.proc = harness.spawn(conf, stdout=log, stderr=subprocess.STDOUT)
            log.close()
            moats.append(moat)
            harness.wait_port(moat.imaps, 30, moat.proc, "moat")
            time.sleep(0.3)
        pids = [p for m in moats for p in m.pids()]
        m0 = memory_kib(pids)
        left = n
        while left > 0:
            k = min(per_process, left)
            p = subprocess.Popen([LOADGEN, "--host", LOOPBACK, "--port", str(moats[0].imaps),
                                  "--ca", certs.ca, "--mode", "idle", "--tls", "1.3",
                                  "--count", str(k), "--concurrency", "25"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            holders.append(p)
            res = json.loads(p.stdout.readline().decode() or "{}")
            if res.get("established") != k:
                raise RuntimeError("scale: %s" % res)
            left -= k
        time.sleep(2)
        m1 = memory_kib(pids)
        lat = loadgen(moats[0], "--mode", "login", "--tls", "1.3", "--count", rate * seconds,
                      "--rate", rate)
        return {"sessions": n, "processes": nproc, "kib_per_session": (m1 - m0) / n,
                "failed": lat["failed"], "login_p50": lat["login_ms"]["p50"],
                "login_p99": lat["login_ms"]["p99"], "greet_p99": lat["greet_ms"]["p99"],
                "rate": lat["rate"]}
    finally:
        for p in holders:
            p.stdin.close()
        for p in holders:
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
        for m in moats:
            m.stop()
        for f in fakes:
            harness.kill_group(f)


# ------------------------------------------------------------------ report

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=1):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return "%.0f" % v
    return "%.*f" % (digits, v)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts, one round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--logins", type=int, default=1000)
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--bulk-mib", type=int, default=64)
    ap.add_argument("--bulk-repeat", type=int, default=16,
                    help="times the message is fetched in each bulk measurement")
    ap.add_argument("--stime-seconds", type=int, default=5,
                    help="-time of each openssl s_time run")
    ap.add_argument("--rate", type=int, default=50, help="logins/s for the latency rows")
    ap.add_argument("--servers", default=None,
                    help="default moat,moat-builtin,nginx,stunnel,haproxy (moat-builtin "
                         "when build/builtin/moat exists)")
    ap.add_argument("--scale", type=int, default=0,
                    help="also hold N idle sessions through moat and measure logins at 200/s")
    ap.add_argument("--csv", default=os.path.join(BENCH, "results.csv"))
    a = ap.parse_args(argv)
    if a.quick:
        # enough logins that each CPU figure spans several 10 ms clock ticks
        a.rounds, a.logins, a.idle, a.bulk_mib = 1, 150, 50, 4
        a.bulk_repeat, a.stime_seconds = 1, 1
    if a.servers is None:
        a.servers = "moat,moat-builtin,nginx,stunnel,haproxy"
    names = [s for s in a.servers.split(",") if s]
    for n in names:
        if n not in SERVERS:
            sys.exit("bench: unknown server %r (%s)" % (n, ", ".join(SERVERS)))
    if "moat-builtin" in names and not os.access(MOAT_BUILTIN, os.X_OK):
        print("bench: moat-builtin skipped: %s missing (make CRYPTO=builtin BUILD=build/builtin "
              "build/builtin/moat)" % os.path.relpath(MOAT_BUILTIN, ROOT), flush=True)
        names.remove("moat-builtin")
    for tool in (LOADGEN, TLSRAW):
        if not os.access(tool, os.X_OK):
            sys.exit("bench: %s missing (make bench-build)" % tool)
    if not shutil.which("openssl"):
        sys.exit("bench: openssl (the s_time rows) missing: scripts/deps.sh test")
    print("bench: %d CPUs, load average %.2f %.2f %.2f before the run"
          % ((os.cpu_count() or 0,) + os.getloadavg()), flush=True)

    certs = harness.certs()
    size = a.bulk_mib * 2 ** 20
    big = harness.make_big_message(size=size)
    dovecot = harness.Dovecot(users={"demo": "demo"}, name="bench-dovecot",
                              messages={"demo": [("1000000001.M1P1.bench", big)]},
                              extra_conf=dovecot_conf(certs, a))
    dovecot.imaps_port = harness.free_port()
    dovecot.pop3s_port = harness.free_port()
    dovecot.extra_conf += tls_ports(certs, dovecot)
    print("bench: starting Dovecot and %s" % ", ".join(names), flush=True)
    dovecot.start()
    work = harness.new_dir("bench")
    servers = [SERVERS[n](dovecot, certs, work) for n in names]
    fleet_b = None
    if "moat" in names:
        # a second moat sharing the first one's ticket keys: the fleet rows
        keys = os.path.join(work, "ticket.keys")
        subprocess.run(["sh", os.path.join(ROOT, "scripts", "ticket-keys.sh"), keys],
                       check=True)
        fleet_b = type("MoatB", (Moat,), {"name": "moat-b"})(dovecot, certs, work)
        for s in servers + [fleet_b]:
            if isinstance(s, Moat):
                s.ticket_keys = keys
        fleet_b.start()
    for s in servers:
        s.start()
    baseline = DovecotTls(dovecot, certs, work)
    results = {s.name: {} for s in servers}
    results[baseline.name] = {}
    try:
        for r in range(a.rounds):
            order = servers[r % len(servers):] + servers[:r % len(servers)]
            print("bench: round %d of %d (%s)" % (r + 1, a.rounds,
                                                  " ".join(s.name for s in order)), flush=True)
            for s in order:
                one_round(s, results[s.name], a, size)
                if s.name == "moat" and fleet_b:
                    for tls in ("1.3", "1.2"):
                        d = measure_fleet(s, fleet_b, tls, a.logins)
                        for k in ("server_us", "ticks"):
                            results["moat"].setdefault("fleet%s_%s" % (tls, k),
                                                       []).append(d[k])
            lat = measure_latency(baseline, a.rate, a.rate * (2 if a.quick else 5))
            for k, v in lat.items():
                results[baseline.name].setdefault(k, []).append(v)
        scale = measure_scale(certs, a.scale, 200, 10) if a.scale else None
        raw = json.loads(subprocess.run([TLSRAW, certs.fullchain, certs.key, certs.ca,
                                         "0.5" if a.quick else "3"],
                                        stdout=subprocess.PIPE, check=True).stdout)
    finally:
        for s in servers + ([fleet_b] if fleet_b else []):
            s.stop()
        dovecot.stop()
    rows = report(results, names, raw)
    print("bench: load average %.2f %.2f %.2f after the run" % os.getloadavg())
    if scale:
        print("scale: %d sessions in IDLE through %d moat process%s on one port, %.1f KiB "
              "each; logins at %.0f/s: p50 %.1f ms, p99 %.1f ms (greeting p99 %.1f ms), "
              "%d failed" % (scale["sessions"], scale["processes"],
                             "" if scale["processes"] == 1 else "es", scale["kib_per_session"],
                             scale["rate"], scale["login_p50"], scale["login_p99"],
                             scale["greet_p99"], scale["failed"]))
        rows.append(["scale: idle sessions", "count", scale["sessions"]])
        rows.append(["scale: memory per idle session", "KiB", scale["kib_per_session"]])
        rows.append(["scale: LOGIN OK p99 at 200/s", "ms", scale["login_p99"]])
    os.makedirs(os.path.dirname(a.csv), exist_ok=True)
    with open(a.csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "unit"] + names + ["dovecot-tls", "mbedtls-raw"] +
                   ["moat/%s" % n for n in ratio_peers(names)])
        for row in rows:
            w.writerow(row)
    print("bench: wrote %s" % a.csv)
    return 0


def dovecot_conf(certs, a):
    """Dovecot settings for thousands of sessions of one user from one
    address, with no delays of its own."""
    return harness.DOVECOT_NO_AUTH_DELAY + """
mail_max_userip_connections = 100000
default_client_limit = 100000
service imap-login {
  service_count = 0
  process_min_avail = 1
  client_limit = 60000
}
service pop3-login {
  service_count = 0
  client_limit = 60000
}
service imap {
  process_limit = %d
}
service pop3 {
  process_limit = 200
}
""" % (a.idle + 200)


def tls_ports(certs, dovecot):
    return """
ssl = yes
ssl_cert = <%s
ssl_key = <%s
ssl_min_protocol = TLSv1.2
service imap-login {
  inet_listener imaps {
    address = 127.0.0.1
    port = %d
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3s {
    address = 127.0.0.1
    port = %d
    ssl = yes
  }
}
""" % (certs.fullchain, certs.key, dovecot.imaps_port, dovecot.pop3s_port)


def one_round(s, res, a, size):
    """Every measurement once against server s; results appended."""
    def add(prefix, d):
        for k, v in d.items():
            if k == "suite":          # not a number: the suites agreed, kept apart
                res.setdefault("suites", {}).setdefault(prefix, set()).add(v)
            else:
                res.setdefault(prefix + k, []).append(v)
    for tls in ("1.3", "1.2"):
        add("full%s_" % tls, measure_logins(s, tls, a.logins, False))
        add("resumed%s_" % tls, measure_logins(s, tls, a.logins, True))
        add("stime%s_" % tls, measure_stime(s, tls, a.stime_seconds))
    add("fetch_", measure_bulk(s, "fetch", size, None, a.bulk_repeat))
    add("fetchaes_", measure_bulk(s, "fetch", size, AES, a.bulk_repeat))
    add("fetchchacha_", measure_bulk(s, "fetch", size, CHACHA, a.bulk_repeat))
    add("retr_", measure_bulk(s, "retr", size, AES, a.bulk_repeat))
    add("idle_", measure_idle(s, a.idle))
    add("", measure_latency(s, a.rate, a.rate * (2 if a.quick else 5)))


def ratio_peers(names):
    """The servers moat's ratio columns are for: each peer, then
    moat-builtin."""
    return ([n for n in names if n not in ("moat", "moat-builtin")] +
            [n for n in names if n == "moat-builtin"])


SPECS = [
    # label, unit, results key, tlsraw key
    ("login TLS 1.3, server CPU", "us/login", "full1.3_server_us", "full_tls13_us"),
    ("login TLS 1.2, server CPU", "us/login", "full1.2_server_us", "full_tls12_us"),
    ("s_time -new TLS 1.3, server CPU", "us/handshake", "stime1.3_server_us", "full_tls13_us"),
    ("s_time -new TLS 1.2 ECDHE-ECDSA-AES128-GCM, server CPU", "us/handshake",
     "stime1.2_server_us", "full_tls12_us"),
    ("resumed TLS 1.3, server CPU", "us/login", "resumed1.3_server_us", "resumed_tls13_us"),
    ("resumed TLS 1.2, server CPU", "us/login", "resumed1.2_server_us", "resumed_tls12_us"),
    ("resumed 1.3 on another moat", "us/login", "fleet1.3_server_us", None),
    ("resumed 1.2 on another moat", "us/login", "fleet1.2_server_us", None),
    ("FETCH 64 MiB AES-128-GCM, server CPU", "s/GiB", "fetchaes_s_per_gib", "records_s_per_gib"),
    ("FETCH 64 MiB AES-128-GCM, wall", "MB/s", "fetchaes_mb_s", None),
    ("FETCH 64 MiB CHACHA20, server CPU", "s/GiB", "fetchchacha_s_per_gib", None),
    ("FETCH 64 MiB CHACHA20, wall", "MB/s", "fetchchacha_mb_s", None),
    ("FETCH 64 MiB, server CPU", "s/GiB", "fetch_s_per_gib", None),
    ("FETCH 64 MiB, wall", "MB/s", "fetch_mb_s", None),
    ("RETR 64 MiB AES-128-GCM, server CPU", "s/GiB", "retr_s_per_gib", "records_s_per_gib"),
    ("RETR 64 MiB AES-128-GCM, wall", "MB/s", "retr_mb_s", None),
    ("idle in IDLE, memory", "KiB/session", "idle_kib_per_session", None),
    ("greeting p50", "ms", "greet_p50", None),
    ("greeting p99", "ms", "greet_p99", None),
    ("LOGIN OK p50", "ms", "login_p50", None),
    ("LOGIN OK p99", "ms", "login_p99", None),
    ("loadgen CPU, TLS 1.3 login", "us/login", "full1.3_loadgen_us", None),
]

# The goals set for moat: label, results key, the server compared with
# (None: moat's own value against an absolute limit), the limit, and
# whether moat's value must be at most (<=) or at least (>=) it.
TARGETS = [
    ("bulk AES-128-GCM, server CPU/GiB", "fetchaes_s_per_gib", "haproxy", 1.0, "<="),
    ("bulk ChaCha20-Poly1305, server CPU/GiB", "fetchchacha_s_per_gib", "haproxy", 1.0, "<="),
    ("bulk AES-128-GCM, wall MB/s", "fetchaes_mb_s", "haproxy", 1.0, ">="),
    ("bulk ChaCha20-Poly1305, wall MB/s", "fetchchacha_mb_s", "haproxy", 1.0, ">="),
    ("full TLS 1.3 login, server CPU", "full1.3_server_us", "nginx", 0.9, "<="),
    ("full TLS 1.2 login, server CPU", "full1.2_server_us", "nginx", 0.9, "<="),
    ("full TLS 1.3 handshake (s_time), server CPU", "stime1.3_server_us", "nginx", 0.9, "<="),
    ("full TLS 1.2 handshake (s_time), server CPU", "stime1.2_server_us", "nginx", 0.9, "<="),
    ("resumed TLS 1.3 login, server CPU", "resumed1.3_server_us", "moat-builtin", 1.0, "<="),
    ("resumed TLS 1.2 login, server CPU", "resumed1.2_server_us", "moat-builtin", 1.0, "<="),
    ("idle session memory, KiB", "idle_kib_per_session", None, 6.0, "<="),
]


def targets(results):
    """Prints the targets block: each goal, moat's ratio (or value), the
    range over the rounds, met or not met."""
    def vals(server, key):
        return results.get(server, {}).get(key, [])
    lines = []
    for label, key, other, limit, op in TARGETS:
        mine = vals("moat", key)
        if other:
            theirs = vals(other, key)
            goal = "%s %.2fx %s's" % (op, limit, other)
            if not mine or not theirs:
                lines.append((label, goal, "-", "", "n/a (no %s measurement)" % other))
                continue
            if not med(mine) or not med(theirs):
                lines.append((label, goal, "-", "", "n/a (0 measured: below the clock's "
                              "resolution)"))
                continue
            value = med(mine) / med(theirs)
            # the rounds measured both alike: ratio per round, same order
            per = [x / y for x, y in zip(mine, theirs) if y]
            shown = "%.2fx" % value
            spread = "rounds %.2f-%.2f" % (min(per), max(per)) if len(per) > 1 else ""
        else:
            goal = "%s %.1f" % (op, limit)
            if not mine:
                lines.append((label, goal, "-", "", "n/a (no moat measurement)"))
                continue
            value = med(mine)
            shown = "%.1f" % value
            spread = "rounds %.1f-%.1f" % (min(mine), max(mine)) if len(mine) > 1 else ""
        met = value <= limit if op == "<=" else value >= limit
        lines.append((label, goal, shown, spread, "met" if met else "NOT MET"))
    print("targets (moat; ratios of the medians):")
    widths = [max(len(l[i]) for l in lines) for i in range(5)]
    for l in lines:
        print("  " + "  ".join(c.rjust(widths[i]) if i == 2 else c.ljust(widths[i])
                               for i, c in enumerate(l)).rstrip())


def report(results, names, raw):
    """Prints the table, the targets and notes; returns the table's rows
    for the CSV."""
    def m(server, key):
        return med(results.get(server, {}).get(key, []))
    peers = ratio_peers(names)
    head = ["", "unit"] + names + ["dovecot-tls", "mbedtls"] + ["moat/" + p for p in peers]
    rows, table = [], [head]
    for label, unit, key, rawkey in SPECS:
        vals = [m(n, key) for n in names]
        base = m("dovecot-tls", key) if key.startswith(("greet", "login")) else None
        rv = raw.get(rawkey) if rawkey else None
        ratios = []
        mv = m("moat", key)
        for p in peers:
            pv = m(p, key)
            ratios.append(mv / pv if mv is not None and pv else None)
        rows.append([label, unit] + vals + [base, rv] + ratios)
        table.append([label, unit] + [fmt(v) for v in vals] + [fmt(base), fmt(rv)] +
                     [fmt(r, 2) for r in ratios])
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    print()
    for r in table:
        print("  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])
                        for i, c in enumerate(r)))
    print()
    targets(results)
    print()
    print("mbedTLS ceiling (the default build's mbedTLS, in memory): %s" % json.dumps(raw))
    agreed = []
    for n in names:
        suites = results.get(n, {}).get("suites", {}).get("fetch_", set())
        agreed.append("%s %s" % (n, "/".join(sorted(suites)) or "?"))
    print("FETCH 64 MiB without --suite (mbedTLS's default offer), suites agreed: %s"
          % ", ".join(agreed))
    counts = ["%s %s/%s" % (n, fmt(m(n, "stime1.3_n")), fmt(m(n, "stime1.2_n")))
              for n in names]
    print("s_time connections completed per run (median), TLS 1.3/TLS 1.2: %s"
          % ", ".join(counts))
    coarse = []
    for label, unit, key, rawkey in SPECS:
        if not key.endswith(("_server_us", "_s_per_gib")):
            continue
        tkey = key.split("_")[0] + "_ticks"
        for n in names:
            t = results.get(n, {}).get(tkey)
            if t and min(t) < MIN_TICKS:
                coarse.append("%s: %s %d" % (label, n, min(t)))
    if coarse:
        print("coarse: fewer than %d clock ticks (%g ms each) of server CPU behind a "
              "measurement (fewest): %s" % (MIN_TICKS, 1000 / HZ, "; ".join(coarse)))
    else:
        print("every server CPU figure rests on at least %d clock ticks (%g ms each) per "
              "measurement" % (MIN_TICKS, 1000 / HZ))
    for tls in ("1.3", "1.2"):
        one, fleet = m("moat", "resumed%s_server_us" % tls), m("moat", "fleet%s_server_us" % tls)
        if one and fleet:
            print("resumed TLS %s through a second moat sharing the ticket keys: %.2fx the "
                  "cost through one instance" % (tls, fleet / one))
    mv = m("moat", "full1.3_server_us")
    if mv and raw.get("full_tls13_us"):
        print("moat over raw mbedTLS, full TLS 1.3 login: %.2fx; TLS 1.2: %.2fx"
              % (mv / raw["full_tls13_us"],
                 (m("moat", "full1.2_server_us") or 0) / raw["full_tls12_us"]))
    return rows


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
