"""Integration test harness for moat (Python 3 standard library only).

What it provides:

- run_dir(): one temporary directory per test run (removed at exit unless
  MOAT_KEEP=1), holding certificates, Dovecot sandboxes and moat configs.
- certs(): the test CA and server certificate, made once per run by
  scripts/certs.sh.
- free_port(): an unused TCP port on 127.0.0.1.
- Dovecot: a real Dovecot on loopback started through scripts/dovecot.sh
  (the same script `make run` uses), optionally with extra accounts and
  extra messages placed in a Maildir before it starts, and extra settings
  (DIR/extra.conf); deliver() adds a message while it runs; restart()
  starts a stopped one again on the same ports.
- Moat: writes a moat configuration (a Listener's options dict adds keys
  to its section; its backend may be a port or [backend] names), runs
  `build/moat -c` (binary from $MOAT, default build/moat; optional
  wrapper command from $MOAT_WRAPPER, e.g. "valgrind -q"), captures
  stderr to a log file, waits for event=ready, stops it with SIGTERM and
  returns its exit status; write_config() and reload() (SIGHUP) change it
  while it runs.
- mkcert(): more certificates from the test CA (scripts/mkcert.sh).
- client_context(): an ssl.SSLContext trusting only the test CA.
- big_message(): a deterministic 64 MiB RFC 5322 message (CRLF lines, some
  starting with "." to exercise POP3 dot-stuffing), made once per run;
  make_message(): small test messages.
- Helpers the protocol tests share: b64()/plain_b64() (SASL PLAIN),
  login_events()/wait_login_events() (moat's event=login lines),
  Dovecot.user_log_lines() (what Dovecot logged about a user),
  DOVECOT_NO_AUTH_DELAY (extra_conf turning Dovecot's own failed-login
  delays off), curl() and s_client_starttls() (client command lines).
- ImapClient: a raw IMAP client (plaintext or TLS, STARTTLS, whole
  responses with their literals, a transcript for failure messages).
- FakeServer, FakeImap, FakePop3: threaded stand-ins for a backend on
  loopback that misbehave on demand (never answer, hang up during the
  login, answer late, cut a big FETCH short, stream 64 MiB).
- proc_rss_kib(), proc_fd_count(): a process's resident memory and open
  file descriptors, from /proc.

Every process started here runs in its own session (process group); they
are all stopped at interpreter exit, on SIGTERM, and by stop() calls, so a
failing test leaves no Dovecot or moat behind.
"""

import atexit
import base64
import hashlib
import os
import random
import re
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPTS = os.path.join(ROOT, "scripts")
LOOPBACK = "127.0.0.1"

# Slow environments (valgrind as MOAT_WRAPPER, sanitizers) can stretch every
# timeout with MOAT_TIMEOUT_SCALE=N.
TIMEOUT_SCALE = float(os.environ.get("MOAT_TIMEOUT_SCALE", "1") or "1")


def scaled(seconds):
    return seconds * TIMEOUT_SCALE


def moat_binary():
    path = os.environ.get("MOAT") or os.path.join(ROOT, "build", "moat")
    return os.path.abspath(path)


def moat_wrapper():
    return shlex.split(os.environ.get("MOAT_WRAPPER", ""))


def moat_sanitized(path=None):
    """True when the moat binary was built with ASan (make SANITIZE=1): it
    does its own leak checking, cannot run under valgrind, and its RSS
    includes ASan's quarantine of freed memory."""
    try:
        with open(path or moat_binary(), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


# ---------------------------------------------------------------- processes

_procs = []
_procs_lock = threading.Lock()


def _register(proc):
    with _procs_lock:
        _procs.append(proc)


def _unregister(proc):
    with _procs_lock:
        if proc in _procs:
            _procs.remove(proc)


def kill_group(proc):
    """SIGKILL to a process's whole group (it leads its own session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def cleanup_all():
    with _procs_lock:
        procs = list(_procs)
        _procs.clear()
    for p in procs:
        if p.poll() is None:
            try:
                p.terminate()
                p.wait(timeout=5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                pass
        kill_group(p)


atexit.register(cleanup_all)


def _on_sigterm(signum, frame):
    # SIGTERM acts like Ctrl-C: unittest lets KeyboardInterrupt end the run
    # (any other exception would only fail the current test), and the
    # atexit handlers then stop every process.
    raise KeyboardInterrupt("SIGTERM")


if threading.current_thread() is threading.main_thread():
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


def spawn(argv, stdout, stderr, **kw):
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=stderr, start_new_session=True, **kw)
    _register(proc)
    return proc


# ---------------------------------------------------------------- run dir

_run_dir = None
_run_dir_lock = threading.Lock()


def run_dir():
    """This run's temporary directory (searchable by Dovecot's users)."""
    global _run_dir
    with _run_dir_lock:
        if _run_dir is None:
            d = tempfile.mkdtemp(prefix="moat-it-")
            os.chmod(d, 0o755)
            _run_dir = d
            if os.environ.get("MOAT_KEEP") != "1":
                atexit.register(_remove_run_dir)
            else:
                atexit.register(lambda: sys.stderr.write(
                    "harness: kept %s\n" % d))
        return _run_dir


def _remove_run_dir():
    cleanup_all()
    if _run_dir:
        shutil.rmtree(_run_dir, ignore_errors=True)


def new_dir(name):
    """A fresh, uniquely named directory inside the run directory."""
    d = tempfile.mkdtemp(prefix=name + "-", dir=run_dir())
    os.chmod(d, 0o755)
    return d


# ---------------------------------------------------------------- PROXY headers

PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
# A header without a client address: a balancer's own health check.
PROXY_V2_LOCAL = PROXY_V2_SIG + b"\x20\x00\x00\x00"
PROXY_V1_UNKNOWN = b"PROXY UNKNOWN\r\n"


def proxy_v2(src, sport, dst, dport):
    """A PROXY protocol v2 header, command PROXY, TCP over IPv4 or IPv6
    (by the addresses' form)."""
    if ":" in src:
        addrs = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst))
        fam = 0x21
    else:
        addrs = socket.inet_aton(src) + socket.inet_aton(dst)
        fam = 0x11
    body = addrs + struct.pack("!HH", sport, dport)
    return PROXY_V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def proxy_v1(src, sport, dst, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


# ---------------------------------------------------------------- ports

_given_ports = set()
_ports_lock = threading.Lock()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now and that
    this harness has not handed out before."""
    with _ports_lock:
        for _ in range(100):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((LOOPBACK, 0))
                port = s.getsockname()[1]
            finally:
                s.close()
            if port not in _given_ports:
                _given_ports.add(port)
                return port
    raise RuntimeError("no free port found")


def port_accepts(port, host=LOOPBACK):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_port(port, timeout, proc=None, what="server"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_accepts(port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with status %s before port %d accepted"
                               % (what, proc.returncode, port))
        time.sleep(0.05)
    raise TimeoutError("%s: port %d not accepting after %.0fs" % (what, port, timeout))


# ---------------------------------------------------------------- certs

class Certs:
    def __init__(self, d):
        self.dir = d
        self.ca = os.path.join(d, "ca.pem")
        self.ca_key = os.path.join(d, "ca.key")
        self.fullchain = os.path.join(d, "fullchain.pem")
        self.key = os.path.join(d, "privkey.pem")


_certs = None
_certs_lock = threading.Lock()


def certs():
    """The test CA and server certificate (made once per run)."""
    global _certs
    with _certs_lock:
        if _certs is None:
            d = os.path.join(run_dir(), "certs")
            r = subprocess.run(["sh", os.path.join(SCRIPTS, "certs.sh"), d],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=60)
            if r.returncode != 0:
                raise RuntimeError("scripts/certs.sh failed (%d): %s"
                                   % (r.returncode, r.stderr.decode(errors="replace")))
            _certs = Certs(d)
        return _certs


def mkcert(name, kind="ec", days=30, cn="localhost", *sans):
    """Issues a certificate from the test CA with scripts/mkcert.sh (kind:
    ec, ec384, rsa or client); returns (chain path, key path). sans: e.g.
    "DNS:localhost"; none: no subjectAltName."""
    d = certs().dir
    r = subprocess.run(["sh", os.path.join(SCRIPTS, "mkcert.sh"), d, name, kind,
                        str(days), cn] + list(sans),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("scripts/mkcert.sh failed (%d): %s"
                           % (r.returncode, r.stderr.decode(errors="replace")))
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def client_context(minimum=None, maximum=None, ca=None):
    """A TLS client context that trusts only the test CA and checks host
    names; optionally pinned to TLS versions."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=ca or certs().ca)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def tls_connect(port, ctx=None, server_hostname="localhost", timeout=10):
    """A TLS connection to 127.0.0.1:port (handshake done)."""
    ctx = ctx or client_context()
    raw = socket.create_connection((LOOPBACK, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname)
    except BaseException:
        raw.close()
        raise


def recv_line(sock, limit=65536):
    """Reads one CRLF-terminated line (bytes, with CRLF) byte by byte."""
    buf = bytearray()
    while not buf.endswith(b"\r\n"):
        b = sock.recv(1)
        if not b:
            break
        buf += b
        if len(buf) > limit:
            break
    return bytes(buf)


def recv_until_eof(sock, timeout):
    """Reads until the peer closes; returns (data, how) where how is 'eof'
    (clean end, TLS close_notify or FIN), or the exception's name."""
    sock.settimeout(timeout)
    data = bytearray()
    while True:
        try:
            chunk = sock.recv(65536)
        except (ssl.SSLError, ConnectionError) as e:
            return bytes(data), type(e).__name__
        if not chunk:
            return bytes(data), "eof"
        data += chunk


# How recv_until_eof() may report a connection the server closed: a clean
# end, or the TLS layer noticing the close first.
CLOSED = ("eof", "SSLEOFError", "SSLZeroReturnError", "ConnectionResetError")


# ---------------------------------------------------------------- messages

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


_PRINTABLE = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
              b"0123456789 .-_=+/:,;!?()<>@#$%&*'[]{}~")
_TABLE = bytes(_PRINTABLE[i % len(_PRINTABLE)] for i in range(256))

BIG_SIZE = 64 * 1024 * 1024
BIG_SUBJECT = "moat big message"


def make_big_message(seed=993, size=BIG_SIZE):
    """A deterministic RFC 5322 message of exactly `size` bytes: headers,
    then pseudo-random printable lines of 20..78 characters (the last one
    up to 160), CRLF line ends. About one line in 66 starts with ".", and there is a line that
    is just ".", so POP3 must dot-stuff it."""
    rng = random.Random(seed)
    head = ("From: moat tests <tests@localhost>\r\n"
            "To: demo <demo@localhost>\r\n"
            "Subject: %s\r\n"
            "Date: Mon, 01 Jan 2024 00:01:00 +0000\r\n"
            "Message-ID: <big-%d@localhost>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n" % (BIG_SUBJECT, seed)).encode()
    fixed = b".\r\n..\r\n.leading dot\r\n"
    body_len = size - len(head) - len(fixed)
    noise = rng.randbytes(body_len).translate(_TABLE)
    lines = []
    pos = 0
    # Lines of 20..78 characters plus CRLF, until the body is nearly full.
    while body_len - pos > 160:
        n = 20 + noise[pos] % 59
        lines.append(noise[pos:pos + n])
        pos += n + 2
    # The last line takes whatever is left (at least 1 char + CRLF).
    lines.append(noise[pos:body_len - 2])
    body = b"\r\n".join(lines) + b"\r\n"
    msg = head + fixed + body
    assert len(msg) == size, (len(msg), size)
    return msg


_big = None
_big_lock = threading.Lock()


def big_message():
    """(path, sha256 hex) of the 64 MiB message, made once per run."""
    global _big
    with _big_lock:
        if _big is None:
            path = os.path.join(run_dir(), "big.eml")
            data = make_big_message()
            with open(path, "wb") as f:
                f.write(data)
            _big = (path, hashlib.sha256(data).hexdigest())
        return _big


def make_message(n, subject, body_lines, msgid_prefix="imap",
                 to="demo <demo@localhost>"):
    """A small RFC 5322 message (CRLF line ends): fixed headers with
    Subject `subject`, a Date and Message-ID <PREFIX-n@localhost> made from
    n, then the body lines (bytes, without line ends)."""
    head = ("From: moat tests <tests@localhost>\r\n"
            "To: %s\r\n"
            "Subject: %s\r\n"
            "Date: Tue, 02 Jan 2024 00:00:%02d +0000\r\n"
            "Message-ID: <%s-%d@localhost>\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n" % (to, subject, n, msgid_prefix, n))
    return head.encode() + b"".join(l + b"\r\n" for l in body_lines)


def pop3_stuff(data):
    """What a POP3 server sends for a message in RETR after "+OK ...\\r\\n":
    lines starting with "." get another ".", then ".\\r\\n"."""
    assert data.endswith(b"\r\n")
    out = re.sub(rb"(?m)^\.", b"..", data)
    return out + b".\r\n"


# ---------------------------------------------------------------- Dovecot

# Dovecot settings (for Dovecot's extra_conf) that turn off its own delay
# after a failed login and its per-IP penalty, so that the delays a test
# measures are moat's.
DOVECOT_NO_AUTH_DELAY = """\
# moat's tests: moat's own delay is what the tests measure.
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
"""


class Dovecot:
    """A Dovecot started by scripts/dovecot.sh in its own directory.

    users: None (the script makes demo/demo with three messages) or a dict
    name -> password written to DIR/users first (then the script delivers
    nothing). messages: {user: [(maildir file name, bytes)]} placed in
    DIR/mail/USER/Maildir/new before start; Maildir names starting with a
    larger timestamp get larger UIDs (the demo messages use 1000000001..3).
    extra_conf: Dovecot settings written to DIR/extra.conf, which
    scripts/dovecot.sh includes after its own (so they override them).
    """

    def __init__(self, users=None, messages=None, name="dovecot", extra_conf=None):
        self.dir = new_dir(name)
        self.imap_port = free_port()
        self.pop3_port = free_port()
        self.users = users
        self.messages = messages or {}
        self.extra_conf = extra_conf
        self.proc = None
        self.out_path = os.path.join(self.dir, "dovecot.out")
        self.log_path = os.path.join(self.dir, "dovecot.log")
        self.inbox = {}

    def start(self, timeout=30):
        if self.extra_conf:
            with open(os.path.join(self.dir, "extra.conf"), "w") as f:
                f.write(self.extra_conf.rstrip("\n") + "\n")
        if self.users is not None:
            with open(os.path.join(self.dir, "users"), "w") as f:
                for u, pw in self.users.items():
                    f.write("%s:{PLAIN}%s::::::\n" % (u, pw))
        for user, msgs in self.messages.items():
            md = os.path.join(self.dir, "mail", user, "Maildir")
            for sub in ("tmp", "new", "cur"):
                os.makedirs(os.path.join(md, sub), exist_ok=True)
            for fname, data in msgs:
                tmp = os.path.join(md, "tmp", fname)
                if isinstance(data, str):
                    shutil.copyfile(data, tmp)
                else:
                    with open(tmp, "wb") as f:
                        f.write(data)
                os.rename(tmp, os.path.join(md, "new", fname))
        self._run("wb", timeout)
        # What each user's INBOX holds, read before any client touches it
        # (Dovecot then moves the files from new/ to cur/).
        for user in os.listdir(os.path.join(self.dir, "mail")):
            self.inbox[user] = []
            for fname, path in self.mailbox_files(user):
                size = os.path.getsize(path)
                with open(path, "rb") as f:
                    data = f.read() if size <= (1 << 20) else None
                self.inbox[user].append((fname, data, size))
        return self

    def restart(self, timeout=30):
        """Starts a stopped Dovecot again in the same directory on the same
        ports, with its users and mail as they are now (nothing placed
        again); its log goes on in the same file."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("dovecot is still running")
        self._run("ab", timeout)
        return self

    def _run(self, out_mode, timeout):
        out = open(self.out_path, out_mode)
        try:
            self.proc = spawn(["sh", os.path.join(SCRIPTS, "dovecot.sh"), self.dir,
                               str(self.imap_port), str(self.pop3_port)],
                              stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        try:
            wait_port(self.imap_port, scaled(timeout), self.proc, "dovecot")
            wait_port(self.pop3_port, scaled(timeout), self.proc, "dovecot")
        except Exception as e:
            self.stop()
            raise RuntimeError("%s\n--- dovecot output:\n%s\n--- dovecot.log:\n%s"
                               % (e, _read(self.out_path), _read(self.log_path)))

    def message(self, uid, user="demo"):
        """The bytes of the user's message with this UID (1-based, as
        delivered; only messages up to 1 MiB are kept)."""
        fname, data, size = self.inbox[user][uid - 1]
        if data is None:
            raise ValueError("message %s is too large to be kept" % fname)
        return data

    def mailbox_files(self, user="demo"):
        """The user's INBOX messages as [(file name, path)] in UID order."""
        md = os.path.join(self.dir, "mail", user, "Maildir")
        found = []
        for sub in ("new", "cur"):
            p = os.path.join(md, sub)
            if os.path.isdir(p):
                for n in os.listdir(p):
                    found.append((n.split(":", 1)[0], os.path.join(p, n)))

        def key(item):
            stamp = item[0].split(".", 1)[0]
            return (int(stamp) if stamp.isdigit() else 0, item[0])
        return sorted(found, key=key)

    def user_log_lines(self, user):
        """Lines of Dovecot's log about this user: its login processes'
        "user=<NAME>" and its auth process's "passwd-file(NAME,..." (any
        login attempt, successful or not, shows up as one of these)."""
        pat = re.compile(r"user=<%s>|\(%s," % (re.escape(user), re.escape(user)))
        return [l for l in _read(self.log_path).splitlines() if pat.search(l)]

    def deliver(self, user, fname, data):
        """Delivers a message to a running Dovecot the Maildir way: written
        to tmp/, given the Maildir's owner, renamed into new/. Returns the
        path in new/."""
        md = os.path.join(self.dir, "mail", user, "Maildir")
        st = os.stat(md)
        tmp = os.path.join(md, "tmp", fname)
        with open(tmp, "wb") as f:
            f.write(data)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        dest = os.path.join(md, "new", fname)
        os.rename(tmp, dest)
        return dest

    def stop(self, timeout=15):
        if self.proc is None:
            return None
        p = self.proc
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        kill_group(p)
        _unregister(p)
        return p.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError as e:
        return "(%s)" % e


# ---------------------------------------------------------------- moat

class Listener:
    """One [listener NAME] section. backend_port: the backend's port on
    127.0.0.1, or a string written as it is after "backend = " (e.g. "a, b",
    names of [backend] sections). options: further keys for the section,
    written in the order given (e.g. {"greeting": "hi", "max_command":
    "1k"})."""

    def __init__(self, name, protocol, backend_port, port=None, tls="implicit",
                 options=None):
        self.name = name
        self.protocol = protocol
        self.backend_port = backend_port
        self.port = port or free_port()
        self.tls = tls
        self.options = dict(options or {})


def backend_text(backend):
    """A listener's backend = value: a port number is 127.0.0.1:PORT, a
    string is written as it is ("a, b": [backend] section names)."""
    return backend if isinstance(backend, str) else "%s:%d" % (LOOPBACK, backend)


# moat refuses to keep running as root without user = ...; the tests run
# as root in CI and say they mean it (the privilege tests set user =).
AS_ROOT = ["allow_root = yes"] if os.geteuid() == 0 else []


def root_section():
    """Config text to append to a file that has no [moat] section, so that
    moat may run as root here ("" when not root)."""
    return "\n[moat]\n%s\n" % AS_ROOT[0] if AS_ROOT else ""


def moat_config(listeners, workers=2, log_level="info", cert=None, key=None,
                extra_tls="", extra="", options=None):
    """The text of a moat config: [moat] (options: more keys for it, a
    dict), [tls] (cert/key default to the test certificate; extra_tls: more
    [tls] lines), the listeners, then `extra` verbatim (e.g. [certificate
    NAME] sections)."""
    c = certs()
    lines = ["; written by test/integration/harness.py",
             "[moat]",
             "workers = %d" % workers,
             "log_level = %s" % log_level] + AS_ROOT + [
             "%s = %s" % kv for kv in (options or {}).items()] + [
             "",
             "[tls]",
             "certificate = %s" % (cert or c.fullchain),
             "key = %s" % (key or c.key)]
    if extra_tls:
        lines.append(extra_tls)
    for l in listeners:
        lines += ["",
                  "[listener %s]" % l.name,
                  "address = %s:%d" % (LOOPBACK, l.port),
                  "protocol = %s" % l.protocol,
                  "tls = %s" % l.tls,
                  "backend = %s" % backend_text(l.backend_port)]
        lines += ["%s = %s" % (k, v) for k, v in l.options.items()]
    if extra:
        lines += ["", extra.rstrip("\n")]
    return "\n".join(lines) + "\n"


class Moat:
    """moat run in the foreground with its stderr in a log file."""

    def __init__(self, listeners, workers=2, log_level="info", wrapper=None,
                 name="moat", cert=None, key=None, extra_tls="", extra="", options=None):
        self.dir = new_dir(name)
        self.listeners = {l.name: l for l in listeners}
        self.config_path = os.path.join(self.dir, "moat.ini")
        self.log_path = os.path.join(self.dir, "moat.log")
        self.write_config(moat_config(listeners, workers, log_level, cert, key,
                                      extra_tls, extra, options))
        self.wrapper = moat_wrapper() if wrapper is None else list(wrapper)
        self.proc = None
        self.returncode = None

    def port(self, name):
        return self.listeners[name].port

    def write_config(self, text):
        """Replaces the config file (atomically: a reload never sees half)."""
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.config_path)

    def reload(self, timeout=30):
        """Sends SIGHUP and waits for its outcome; returns True for
        event=reloaded, False for event=reload_failed (the log then has
        the reasons)."""
        start = len(self.log())
        self.proc.send_signal(signal.SIGHUP)
        m = self.wait_log(r"event=(reloaded|reload_failed)\b[^\n]*(?:generation|message)=",
                          timeout, start)
        return m.group(1) == "reloaded"

    def start(self, timeout=20):
        binary = moat_binary()
        if not os.access(binary, os.X_OK):
            raise RuntimeError("moat binary not found: %s (run make)" % binary)
        log = open(self.log_path, "wb")
        try:
            self.proc = spawn(self.wrapper + [binary, "-c", self.config_path],
                              stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        try:
            self.wait_log(r"event=ready", timeout)
        except Exception:
            self.kill()
            raise
        return self

    def log(self):
        return _read(self.log_path)

    def wait_log(self, pattern, timeout=10, start=0):
        """Waits until the log (from offset `start`) matches the regex;
        returns the match. Fails early if moat exits."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + scaled(timeout)
        while True:
            text = self.log()[start:]
            # whole lines only: a reader may see the first part of a line
            # that moat's single write() is still copying in
            text = text[:text.rfind("\n") + 1]
            m = rx.search(text)
            if m:
                return m
            if self.proc.poll() is not None:
                raise RuntimeError("moat exited (status %s) without logging /%s/; log:\n%s"
                                   % (self.proc.returncode, pattern, self.log()))
            if time.monotonic() > deadline:
                raise TimeoutError("no /%s/ in moat's log after %.0fs; log:\n%s"
                                   % (pattern, scaled(timeout), self.log()))
            time.sleep(0.05)

    def stop(self, timeout=20, sig=signal.SIGTERM):
        """Sends SIGTERM (or sig) and returns the exit status; None if moat
        did not exit within the timeout (then it is killed)."""
        if self.proc is None:
            return self.returncode
        p = self.proc
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=scaled(timeout))
            except subprocess.TimeoutExpired:
                self.kill()
                self.returncode = None
                return None
        self.returncode = p.returncode
        kill_group(p)
        _unregister(p)
        self.proc = None
        return self.returncode

    def kill(self):
        if self.proc is not None:
            kill_group(self.proc)
            _unregister(self.proc)
            self.returncode = self.proc.returncode
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def login_events(log, user=None):
    """moat's event=login lines in `log` (text) as dicts of their key=value
    fields (quoted values unquoted), plus "_line"; only user's when given."""
    out = []
    for l in log.splitlines():
        if not re.search(r"\bevent=login\b", l):
            continue
        fields = {}
        for k, v in re.findall(r'([A-Za-z_]+)=("(?:[^"\\]|\\.)*"|\S+)', l):
            fields[k] = v[1:-1] if v.startswith('"') else v
        fields["_line"] = l
        if user is None or fields.get("user") == user:
            out.append(fields)
    return out


def wait_login_events(moat, user, count, start, timeout=10):
    """Waits until moat's log from offset `start` has at least `count`
    event=login lines for user; returns them."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        ev = login_events(moat.log()[start:], user)
        if len(ev) >= count:
            return ev
        if time.monotonic() > deadline:
            raise AssertionError("expected %d event=login lines for user=%s, got %d; log:\n%s"
                                 % (count, user, len(ev), moat.log()[start:]))
        time.sleep(0.05)


def run_moat_cli(args, timeout=30):
    """Runs moat with arguments (no wrapper); returns CompletedProcess with
    text stdout/stderr."""
    return subprocess.run([moat_binary()] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=scaled(timeout), text=True)


def run_cmd(argv, timeout=60, input=None):
    """Runs a client command; returns CompletedProcess (bytes)."""
    return subprocess.run(argv, input=input if input is not None else b"",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=scaled(timeout))


# ---------------------------------------------------------------- clients

def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s)


def plain_b64(user, pw, authzid=""):
    """A SASL PLAIN message (RFC 4616), base64-encoded (bytes)."""
    return b64("%s\0%s\0%s" % (authzid, user, pw))


def curl(url, user, password, *extra, timeout=60):
    """Runs curl on url (IPv4, trusting only the test CA) with -u
    user:password; returns CompletedProcess (bytes)."""
    argv = ["curl", "-sS", "-4", "--max-time", str(int(scaled(timeout))),
            "--cacert", certs().ca, "-u", "%s:%s" % (user, password)]
    return run_cmd(argv + list(extra) + [url], timeout=scaled(timeout) + 10)


def s_client_starttls(port, protocol, send, *extra, timeout=30):
    """openssl s_client -starttls PROTOCOL (imap, pop3) to 127.0.0.1:port,
    verifying the chain (test CA) and the name localhost, with `send` on
    its stdin (-ign_eof: it reads until the server closes). Returns
    (exit status, stdout + stderr as text)."""
    argv = ["openssl", "s_client", "-connect", "%s:%d" % (LOOPBACK, port),
            "-starttls", protocol, "-servername", "localhost", "-CAfile", certs().ca,
            "-verify_return_error", "-verify_hostname", "localhost", "-ign_eof"]
    r = run_cmd(argv + list(extra), timeout=scaled(timeout), input=send)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


# ---------------------------------------------------------------- raw IMAP client

class ImapClient:
    """A raw IMAP client: plaintext or implicit TLS, STARTTLS on demand,
    responses read whole (literals included), everything sent and received
    kept in a transcript for failure messages. (Big literals are better
    read straight from .sock: read() keeps everything in memory.)"""

    MAX_LINE = 1 << 20          # a longer line without CRLF is an error
    MAX_RESPONSES = 100000      # until() gives up after this many

    def __init__(self, port, tls=True, timeout=30, ctx=None):
        self.ctx = ctx or client_context()
        self.sock = socket.create_connection((LOOPBACK, port), timeout=scaled(timeout))
        if tls:
            try:
                self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost")
            except BaseException:
                self.sock.close()
                raise
        self.buf = b""
        self.transcript = []

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t):
        self.sock.settimeout(scaled(t))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.transcript.append(b"C: " + data)
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; transcript:\n" + self.dump())
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > self.MAX_LINE:
                raise AssertionError("no CRLF in %d bytes; transcript:\n%s"
                                     % (len(self.buf), self.dump()))
            self._fill()
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        self.transcript.append(b"S: " + out)
        return out

    def read(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        self.transcript.append(b"S: <%d bytes>" % n)
        return out

    def response(self):
        """One response line; literals {n} are read and kept inline."""
        resp = self.line()
        for _ in range(self.MAX_RESPONSES):
            m = re.search(rb"\{(\d+)\}\r\n$", resp)
            if not m:
                return resp
            resp += self.read(int(m.group(1)))
            resp += self.line()
        raise AssertionError("too many literals in one response")

    def until(self, tag):
        """Untagged lines and the tagged line for tag."""
        if isinstance(tag, str):
            tag = tag.encode()
        untagged = []
        for _ in range(self.MAX_RESPONSES):
            r = self.response()
            if r.startswith(tag + b" "):
                return untagged, r
            untagged.append(r)
        raise AssertionError("no tagged %r after %d responses" % (tag, self.MAX_RESPONSES))

    def cmd(self, tag, text):
        self.send("%s %s\r\n" % (tag, text))
        return self.until(tag)

    def greeting(self):
        return self.line()

    def starttls(self, tag="s"):
        _, r = self.cmd(tag, "STARTTLS")
        if r != ("%s OK Begin TLS negotiation now\r\n" % tag).encode():
            raise AssertionError("STARTTLS answered %r; transcript:\n%s" % (r, self.dump()))
        if self.buf:
            raise AssertionError("bytes in clear after the STARTTLS answer: %r" % self.buf)
        self.sock = self.ctx.wrap_socket(self.sock, server_hostname="localhost")
        self.transcript.append(b"-- TLS --")

    def rest_until_eof(self, timeout=10):
        data, how = recv_until_eof(self.sock, scaled(timeout))
        data = self.buf + data
        self.buf = b""
        self.transcript.append(b"S: " + data + b" <" + how.encode() + b">")
        return data, how

    def dump(self):
        return "\n".join(repr(t) for t in self.transcript)


# ---------------------------------------------------------------- fake backends

_payload_block = None
_payload_lock = threading.Lock()


def payload_block():
    """1 MiB of deterministic printable bytes; fake payloads repeat it."""
    global _payload_block
    with _payload_lock:
        if _payload_block is None:
            _payload_block = random.Random(4242).randbytes(1 << 20).translate(_TABLE)
        return _payload_block


def payload_pieces(size):
    """The first `size` bytes of the endless repetition of payload_block(),
    as a list of memoryviews of at most 1 MiB."""
    block = memoryview(payload_block())
    pieces = []
    left = size
    while left > 0:
        n = min(left, len(block))
        pieces.append(block[:n])
        left -= n
    return pieces


def payload_sha256(size):
    h = hashlib.sha256()
    for piece in payload_pieces(size):
        h.update(piece)
    return h.hexdigest()


class FakeServer:
    """A TCP server on 127.0.0.1 standing in for a backend. Each accepted
    connection is served by self.serve(conn) (subclasses say how) in a
    thread of its own; conn has a timeout (conn_timeout seconds per
    operation), so a handler whose peer went quiet ends by itself.

    It keeps the connections being served, so a test can tell that moat
    closed its side (wait_idle()), and counts what happened (self.counts,
    e.g. "accepted", "login_ok", "hangup_login"). stop() ends everything."""

    POLL = 0.2          # the accept loop looks at self.closed this often
    LIFETIME = 3600     # and ends after this many seconds in any case

    def __init__(self, conn_timeout=60):
        self.conn_timeout = scaled(conn_timeout)
        self.port = free_port()
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((LOOPBACK, self.port))
        self.srv.listen(128)
        self.srv.settimeout(self.POLL)
        self.lock = threading.Lock()
        self.conns = set()
        self.counts = {}
        self.closed = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def get(self, what):
        with self.lock:
            return self.counts.get(what, 0)

    def _accept_loop(self):
        deadline = time.monotonic() + self.LIFETIME
        while not self.closed and time.monotonic() < deadline:
            try:
                conn, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(self.conn_timeout)
            with self.lock:
                if self.closed:
                    conn.close()
                    return
                self.conns.add(conn)
                self.counts["accepted"] = self.counts.get("accepted", 0) + 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.serve(conn)
        except (OSError, ValueError, EOFError):
            pass            # the peer left, or timed out: nothing to do
        finally:
            try:
                conn.close()
            except OSError:
                pass
            with self.lock:
                self.conns.discard(conn)

    def serve(self, conn):
        raise NotImplementedError

    @property
    def active(self):
        """Connections whose handler has not finished."""
        with self.lock:
            return len(self.conns)

    def wait_idle(self, timeout=10):
        """Waits until no connection is being served; True if so."""
        deadline = time.monotonic() + scaled(timeout)
        while self.active:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self):
        self.closed = True
        try:
            self.srv.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=5)

    # Helpers for serve().

    @staticmethod
    def wait_for_eof(conn, limit=1 << 20):
        """Reads and drops what the peer sends until it closes (or `limit`
        bytes, or the socket's timeout)."""
        got = 0
        while got <= limit:
            b = conn.recv(65536)
            if not b:
                return
            got += len(b)

    @staticmethod
    def hang_up(conn):
        """FIN after everything sent so far (a plain close() with unread
        input would send RST instead)."""
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        conn.close()

    @staticmethod
    def send_pieces(conn, pieces):
        for p in pieces:
            conn.sendall(p)

    @staticmethod
    def plain_credentials(blob):
        """(user, password) from a base64 SASL PLAIN message, or None."""
        try:
            parts = base64.b64decode(blob, validate=True).split(b"\0")
        except ValueError:
            return None
        if len(parts) != 3:
            return None
        return parts[1], parts[2]


class FakeImap(FakeServer):
    """An IMAP backend that speaks just enough for moat's login and a few
    commands, and misbehaves on demand.

      greeting=False   accepts and says nothing, ever (until the peer
                       closes or conn_timeout passes)
      login="close"    reads the LOGIN or AUTHENTICATE command, then hangs
                       up without answering; "ok" (default) checks it
                       against users ({name: password}: OK or NO)
      login_delay      seconds to wait before answering the login

    After login:
      FETCH            "* 1 FETCH (BODY[] {fetch_size}" CRLF, the payload
                       (payload_pieces()), ")" CRLF and OK; with fetch_cut
                       it hangs up after that many bytes of the literal
      SLOWBIG          the same with big_size bytes, as fast as the socket
                       takes them
      IDLE             "+ idling", then OK after DONE
      LOGOUT           BYE, OK, hang up; anything else: OK
    It hangs up when the peer does."""

    CAPS = "IMAP4rev1 AUTH=PLAIN SASL-IR"
    MAX_COMMANDS = 10000

    def __init__(self, users=None, caps=CAPS, greeting=True, login="ok", login_delay=0,
                 fetch_size=32 << 20, fetch_cut=None, big_size=64 << 20, conn_timeout=60):
        self.users = {k.encode(): v.encode()
                      for k, v in (users or {"fake": "fake-pass"}).items()}
        self.caps = caps.encode()
        self.greet = greeting
        self.login = login
        self.login_delay = login_delay
        self.fetch_size = fetch_size
        self.fetch_cut = fetch_cut
        self.big_size = big_size
        super().__init__(conn_timeout)

    def serve(self, conn):
        if not self.greet:
            self.wait_for_eof(conn)
            return
        f = conn.makefile("rb")
        conn.sendall(b"* OK [CAPABILITY %s] fake imap ready\r\n" % self.caps)
        authed = False
        for _ in range(self.MAX_COMMANDS):
            line = f.readline(65536)
            if not line:
                return
            tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
            cmd, _, args = rest.partition(b" ")
            cmd = cmd.upper()
            if cmd == b"CAPABILITY":
                conn.sendall(b"* CAPABILITY %s\r\n%s OK done\r\n" % (self.caps, tag))
            elif cmd in (b"LOGIN", b"AUTHENTICATE") and not authed:
                if self.login == "close":
                    self.count("hangup_login")
                    self.hang_up(conn)
                    return
                creds = self.credentials(conn, f, cmd, args)
                if self.login_delay:
                    time.sleep(self.login_delay)
                if creds is not None and self.users.get(creds[0]) == creds[1]:
                    authed = True
                    self.count("login_ok")
                    conn.sendall(tag + b" OK [CAPABILITY IMAP4rev1 IDLE] fake logged in\r\n")
                else:
                    conn.sendall(tag + b" NO [AUTHENTICATIONFAILED] fake says no\r\n")
            elif cmd == b"LOGOUT":
                conn.sendall(b"* BYE fake logging out\r\n" + tag + b" OK done\r\n")
                self.hang_up(conn)
                return
            elif cmd == b"NOOP" or not authed:
                conn.sendall(tag + (b" OK done\r\n" if cmd == b"NOOP" else b" BAD log in first\r\n"))
            elif cmd in (b"FETCH", b"SLOWBIG"):
                size = self.fetch_size if cmd == b"FETCH" else self.big_size
                cut = self.fetch_cut if cmd == b"FETCH" else None
                if not self.literal(conn, tag, size, cut):
                    return
            elif cmd == b"IDLE":
                conn.sendall(b"+ idling\r\n")
                if f.readline(65536).rstrip(b"\r\n").upper() != b"DONE":
                    return
                conn.sendall(tag + b" OK idle done\r\n")
            else:
                conn.sendall(tag + b" OK fake ignores " + cmd + b"\r\n")

    def credentials(self, conn, f, cmd, args):
        if cmd == b"LOGIN":
            words = [w.strip(b'"') for w in args.split(b" ")]
            return tuple(words[:2]) if len(words) == 2 else None
        mech, _, ir = args.partition(b" ")
        if mech.upper() != b"PLAIN":
            return None
        if not ir:
            conn.sendall(b"+ \r\n")
            ir = f.readline(65536).rstrip(b"\r\n")
        return self.plain_credentials(ir)

    def literal(self, conn, tag, size, cut):
        """Sends a FETCH response with a size-byte literal; with cut, hangs
        up after cut bytes of it. True if the whole response went out."""
        pieces = payload_pieces(size if cut is None else min(cut, size))
        conn.sendall(b"* 1 FETCH (BODY[] {%d}\r\n" % size)
        self.send_pieces(conn, pieces)
        if cut is not None:
            self.count("hangup_fetch")
            self.hang_up(conn)
            return False
        conn.sendall(b")\r\n" + tag + b" OK fetch done\r\n")
        self.count("fetch_done")
        return True


class FakePop3(FakeServer):
    """A POP3 backend with the same knobs as FakeImap (greeting, login,
    login_delay, users): CAPA lists USER and SASL PLAIN; USER/PASS and AUTH
    PLAIN (initial response or "+ ") log in; after login STAT and NOOP
    answer +OK; QUIT says +OK and hangs up."""

    MAX_COMMANDS = 10000

    def __init__(self, users=None, greeting=True, login="ok", login_delay=0, conn_timeout=60):
        self.users = {k.encode(): v.encode()
                      for k, v in (users or {"fake": "fake-pass"}).items()}
        self.greet = greeting
        self.login = login
        self.login_delay = login_delay
        super().__init__(conn_timeout)

    def serve(self, conn):
        if not self.greet:
            self.wait_for_eof(conn)
            return
        f = conn.makefile("rb")
        conn.sendall(b"+OK fake pop3 ready\r\n")
        user = None
        authed = False
        for _ in range(self.MAX_COMMANDS):
            line = f.readline(65536)
            if not line:
                return
            cmd, _, arg = line.rstrip(b"\r\n").partition(b" ")
            cmd = cmd.upper()
            if cmd == b"CAPA":
                conn.sendall(b"+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n")
            elif cmd == b"QUIT":
                conn.sendall(b"+OK fake bye\r\n")
                self.hang_up(conn)
                return
            elif authed and cmd in (b"STAT", b"NOOP"):
                conn.sendall(b"+OK 0 0\r\n" if cmd == b"STAT" else b"+OK\r\n")
            elif not authed and cmd == b"USER":
                user = arg
                conn.sendall(b"+OK send the password\r\n")
            elif not authed and cmd in (b"PASS", b"AUTH"):
                if self.login == "close":
                    self.count("hangup_login")
                    self.hang_up(conn)
                    return
                if cmd == b"PASS":
                    creds = (user, arg)
                else:
                    mech, _, ir = arg.partition(b" ")
                    if mech.upper() != b"PLAIN":
                        conn.sendall(b"-ERR fake: unsupported mechanism\r\n")
                        continue
                    if not ir:
                        conn.sendall(b"+ \r\n")
                        ir = f.readline(65536).rstrip(b"\r\n")
                    creds = self.plain_credentials(ir)
                if self.login_delay:
                    time.sleep(self.login_delay)
                if creds is not None and self.users.get(creds[0]) == creds[1]:
                    authed = True
                    self.count("login_ok")
                    conn.sendall(b"+OK fake maildrop ready\r\n")
                else:
                    conn.sendall(b"-ERR [AUTH] fake says no\r\n")
            else:
                conn.sendall(b"-ERR fake: not now\r\n")


# ---------------------------------------------------------------- /proc

def proc_rss_kib(pid):
    """VmRSS of a process in KiB (from /proc/PID/status), or None if it is
    gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_fd_count(pid):
    """How many file descriptors a process has open, or None if it is
    gone."""
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None
