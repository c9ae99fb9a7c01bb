"""What an administrator installs: make install, the manual pages, the
systemd unit, and the static binary the container recipe ships.

  TestInstall       make install into a temporary PREFIX: every file in
                    place, the unit passes systemd-analyze verify and its
                    security review, it runs as the dedicated user moat
                    that the sysusers entry creates (the example and the
                    manual pages suggest moat, never nobody), the manual
                    pages render without a warning, moat.ini(5) documents
                    every key of moat.ini
  TestStaticBinary  make static; the binary has no shared libraries and
                    serves an IMAPS login from an empty root directory as
                    uid 65532, the way etc/Containerfile runs it
"""

import os
import re
import shutil
import subprocess
import unittest

import harness

ROOT = harness.ROOT


def make(*targets, env=None):
    r = subprocess.run(["make", "--no-print-directory", "-C", ROOT] + list(targets),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600, env=env)
    return r.returncode, r.stdout.decode(errors="replace")


class TestInstall(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.prefix = harness.new_dir("prefix")
        rc, out = make("install", "PREFIX=%s" % cls.prefix)
        if rc != 0:
            raise AssertionError("make install failed:\n" + out)

    def path(self, *parts):
        return os.path.join(self.prefix, *parts)

    def test_files(self):
        for rel, mode in (("sbin/moat", 0o755), ("share/man/man8/moat.8", 0o644),
                          ("share/man/man5/moat.ini.5", 0o644),
                          ("etc/moat/moat.ini.example", 0o644), ("etc/moat/moat.ini", 0o644),
                          ("lib/systemd/system/moat.service", 0o644),
                          ("lib/sysusers.d/moat.conf", 0o644)):
            with self.subTest(rel):
                st = os.stat(self.path(rel))
                self.assertEqual(st.st_mode & 0o777, mode)
        r = subprocess.run([self.path("sbin/moat"), "-V"], stdout=subprocess.PIPE, timeout=10)
        self.assertRegex(r.stdout.decode(), r"^moat \S+ \(mbedTLS 3\.6")

    def test_install_keeps_an_existing_config(self):
        conf = self.path("etc/moat/moat.ini")
        with open(conf, "a") as f:
            f.write("; edited by the administrator\n")
        rc, out = make("install", "PREFIX=%s" % self.prefix)
        self.assertEqual(rc, 0, out)
        with open(conf) as f:
            self.assertIn("; edited by the administrator", f.read())

    def test_unit_paths_and_verify(self):
        with open(self.path("lib/systemd/system/moat.service")) as f:
            unit = f.read()
        self.assertNotIn("@SBINDIR@", unit)
        self.assertNotIn("@SYSCONFDIR@", unit)
        self.assertIn("ExecStart=%s -c %s" % (self.path("sbin/moat"),
                                              self.path("etc/moat/moat.ini")), unit)
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed")
        r = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            self.path("lib/systemd/system/moat.service")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))

    def test_dedicated_user(self):
        # The unit runs as moat, the account the sysusers entry creates,
        # never nobody (another process of the same uid could bind moat's
        # ports with SO_REUSEPORT and take connections, or read its keys);
        # the example and the manual pages suggest moat too, and mention
        # nobody only to say never.
        with open(self.path("lib/systemd/system/moat.service")) as f:
            unit = f.read()
        with open(self.path("lib/sysusers.d/moat.conf")) as f:
            sysusers = f.read()
        self.assertEqual(re.findall(r"(?m)^User=(.*)$", unit), ["moat"])
        self.assertEqual(re.findall(r"(?m)^Group=(.*)$", unit), ["moat"])
        self.assertRegex(sysusers, r"(?m)^u moat - ")
        self.assertNotIn("nobody", unit + sysusers)
        if shutil.which("systemd-sysusers"):
            root = harness.new_dir("sysusers-root")
            os.mkdir(os.path.join(root, "etc"))
            r = subprocess.run(["systemd-sysusers", "--root=" + root,
                                self.path("lib/sysusers.d/moat.conf")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
            with open(os.path.join(root, "etc", "passwd")) as f:
                self.assertRegex(f.read(), r"(?m)^moat:x:\d+:\d+:[^:]*:/nonexistent:"
                                           r"/usr/sbin/nologin$")
        with open(self.path("etc/moat/moat.ini.example")) as f:
            example = f.read()
        self.assertEqual(re.findall(r"(?m)^;?user = (.*)$", example), ["moat"])
        texts = {"moat.ini.example": example}
        for page in ("share/man/man8/moat.8", "share/man/man5/moat.ini.5"):
            if shutil.which("groff"):
                r = subprocess.run(["groff", "-man", "-Tutf8", "-P-cbou", self.path(page)],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   env=dict(os.environ, LC_ALL="C.UTF-8"), timeout=60)
                texts[page] = r.stdout.decode(errors="replace")
        for name, text in texts.items():
            with self.subTest(name):
                self.assertIn("user", text)
                self.assertRegex(text, r"\bmoat\b")
                before = re.findall(r"(\S+)\s+nobody\b", text)
                self.assertTrue(before, "%s does not warn against nobody" % name)
                self.assertEqual(set(before), {"never"}, name)

    def test_unit_hardening(self):
        if not shutil.which("systemd-analyze"):
            self.skipTest("systemd-analyze is not installed")
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes",
                            self.path("lib/systemd/system/moat.service")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode(errors="replace")
        m = re.search(r"Overall exposure level for moat\.service: ([0-9.]+)", out)
        self.assertIsNotNone(m, out)
        self.assertLessEqual(float(m.group(1)), 2.0, out)
        for want in ("NoNewPrivileges=", "ProtectSystem=", "CapabilityBoundingSet=~CAP_SYS_ADMIN"):
            line = [l for l in out.splitlines() if want in l]
            self.assertTrue(line and line[0].lstrip().startswith("✓"), (want, line))

    def test_manual_pages_render_cleanly(self):
        if not shutil.which("groff"):
            self.skipTest("groff is not installed")
        for page in ("share/man/man8/moat.8", "share/man/man5/moat.ini.5"):
            with self.subTest(page):
                r = subprocess.run(["groff", "-ww", "-z", "-man", "-Tutf8", self.path(page)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env=dict(os.environ, LC_ALL="C.UTF-8"), timeout=60)
                self.assertEqual(r.returncode, 0)
                self.assertEqual(r.stdout.decode(errors="replace"), "")

    def test_config_page_documents_every_key(self):
        with open(os.path.join(ROOT, "etc", "moat.ini")) as f:
            keys = set(re.findall(r"(?m)^;?([a-z_0-9]+) = ", f.read()))
        with open(self.path("share/man/man5/moat.ini.5")) as f:
            page = f.read()
        self.assertGreater(len(keys), 40)
        documented = set(re.findall(r"(?m)^\.B ([a-z_0-9]+) = ", page))
        self.assertEqual(keys - documented, set())
        for section in ("[moat]", "[tls]", "[metrics]", "[certificate rsa]",
                        "[listener imaps]"):
            self.assertIn(".SS " + section, page)

    def test_uninstall(self):
        prefix = harness.new_dir("prefix-un")
        self.assertEqual(make("install", "PREFIX=%s" % prefix)[0], 0)
        rc, out = make("uninstall", "PREFIX=%s" % prefix)
        self.assertEqual(rc, 0, out)
        self.assertFalse(os.path.exists(os.path.join(prefix, "sbin", "moat")))
        self.assertFalse(os.path.exists(os.path.join(prefix, "lib/systemd/system/moat.service")))
        # the administrator's configuration stays
        self.assertTrue(os.path.exists(os.path.join(prefix, "etc/moat/moat.ini")))


class TestExamples(unittest.TestCase):
    """The deployment examples in etc/ stay true: the Kubernetes example's
    moat.ini passes moat -t (with test certificates and a key file made
    by scripts/ticket-keys.sh in place of the Secret's), HAProxy accepts
    etc/haproxy-moat.cfg."""

    def test_kubernetes_config_checks(self):
        with open(os.path.join(ROOT, "etc", "kubernetes.yaml")) as f:
            y = f.read()
        m = re.search(r"  moat.ini: \|\n((?:    .*\n)+)", y)
        self.assertIsNotNone(m)
        ini = "\n".join(l[4:] for l in m.group(1).splitlines()) + "\n"
        d = harness.new_dir("k8s")
        keys = os.path.join(d, "ticket.keys")
        r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "ticket-keys.sh"), keys],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout)
        c = harness.certs()
        for old, new in (("/etc/moat/tls/fullchain.pem", c.fullchain),
                         ("/etc/moat/tls/privkey.pem", c.key),
                         ("/etc/moat/tls/ticket.keys", keys)):
            self.assertIn(old, ini)
            ini = ini.replace(old, new)
        if os.geteuid() == 0:
            ini = ini.replace("[moat]\n", "[moat]\nallow_root = yes\n", 1)
        path = os.path.join(d, "moat.ini")
        with open(path, "w") as f:
            f.write(ini)
        r = harness.run_moat_cli(["-t", "-c", path])
        self.assertEqual(r.returncode, 0, r.stderr)

    @unittest.skipUnless(shutil.which("haproxy"), "haproxy is not installed")
    def test_haproxy_example_parses(self):
        r = subprocess.run(["haproxy", "-c", "-f", os.path.join(ROOT, "etc", "haproxy-moat.cfg")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))


@unittest.skipUnless(os.geteuid() == 0, "chroot needs root")
class TestStaticBinary(unittest.TestCase):

    def test_empty_root_as_65532(self):
        rc, out = make("static")
        self.assertEqual(rc, 0, out)
        binary = os.path.join(ROOT, "build", "moat-static")
        r = subprocess.run(["ldd", binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertIn(b"not a dynamic executable", r.stdout)
        dovecot = harness.Dovecot(name="dovecot-static").start()
        self.addCleanup(dovecot.stop)
        # An empty root: the binary, its config, a certificate and key
        # readable by 65532; nothing else (no libc, no /etc/passwd).
        root = harness.new_dir("scratch")
        os.makedirs(os.path.join(root, "etc", "moat"))
        shutil.copy(binary, os.path.join(root, "moat"))
        c = harness.certs()
        for src, name in ((c.fullchain, "fullchain.pem"), (c.key, "privkey.pem")):
            dst = os.path.join(root, "etc", "moat", name)
            shutil.copy(src, dst)
            os.chown(dst, 65532, 65532)
            os.chmod(dst, 0o600)
        port = harness.free_port()
        with open(os.path.join(root, "etc", "moat", "moat.ini"), "w") as f:
            f.write("[tls]\ncertificate = /etc/moat/fullchain.pem\nkey = /etc/moat/privkey.pem\n"
                    "[listener imaps]\naddress = 127.0.0.1:%d\nprotocol = imap\n"
                    "backend = 127.0.0.1:%d\n" % (port, dovecot.imap_port))
        log = open(os.path.join(root, "..", "scratch-moat.log"), "wb")
        proc = harness.spawn(["chroot", "--userspec=65532:65532", root, "/moat", "-c",
                              "/etc/moat/moat.ini"], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.addCleanup(harness.kill_group, proc)
        harness.wait_port(port, harness.scaled(20), proc, "static moat")
        import imaplib
        m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=harness.client_context(),
                              timeout=harness.scaled(20))
        self.assertEqual(m.login("demo", "demo")[0], "OK")
        typ, data = m.select("INBOX", readonly=True)
        self.assertEqual((typ, int(data[0])), ("OK", 3))
        typ, data = m.fetch("1", "(BODY.PEEK[])")
        self.assertEqual(data[0][1], dovecot.message(1))
        self.assertEqual(m.logout()[0], "BYE")
        with open("/proc/%d/status" % proc.pid) as f:
            status = f.read()
        # chroot execs moat in place of itself: the same pid
        self.assertRegex(status, r"(?m)^Uid:\s+65532\s+65532\s+65532\s+65532$")
        proc.terminate()
        self.assertEqual(proc.wait(timeout=harness.scaled(40)), 0)
