"""test_sasl.py: whole-instance tests of SMTP AUTH in smtpd: PLAIN and
LOGIN with smtplib and swaks against a texthash password table of crypt(3)
hashes, the protocol's error paths, failures logged and counted toward the
hard error limit, the AUTH rate limit through anvil, smtpd_tls_auth_only,
relaying only after AUTH, smtpd_sender_login_maps, sasl_username in the
log, the queue file and `tern show`, and a real Dovecot (Debian's
dovecot-core) as the back-end, stopped too.

Untrusted clients bind their sockets to 127.0.0.2; every instance has
mynetworks = 127.0.0.1/32. Mail stays in active/ (its transports never
answer) to be inspected.

The tests that also need TLS (STARTTLS + AUTH, wrappermode, swaks --tls,
curl) skip when smtpd does not offer STARTTLS.
"""
import base64
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402

HOSTNAME = "tern.test"
UNTRUSTED = "127.0.0.2"
USERS = {"alice": "secret-alice", "bob": "Bob's pass word"}
LOGINS = ("alice@example.org alice\n"
          "bob@example.org bob\n"
          "@shared.example alice, bob\n")


def make_hash(password, method):
    """A crypt(3) hash: with Python's crypt module, else openssl passwd -6."""
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        salt = crypt.mksalt(method == "sha512" and crypt.METHOD_SHA512 or crypt.METHOD_SHA256)
        return crypt.crypt(password, salt)
    except ImportError:
        return subprocess.run(["openssl", "passwd", "-6", password], capture_output=True,
                              text=True, check=True).stdout.strip()


def yescrypt_hash(password):
    """A $y$ hash from mkpasswd (whois package) when it is there."""
    if not shutil.which("mkpasswd"):
        return None
    r = subprocess.run(["mkpasswd", "-m", "yescrypt", "--stdin"], input=password,
                       capture_output=True, text=True)
    out = r.stdout.strip()
    return out if r.returncode == 0 and out.startswith("$y$") else None


def b64(text):
    return base64.b64encode(text.encode()).decode()


def plain(user, password, authz=""):
    return b64("%s\0%s\0%s" % (authz, user, password))


class Client(harness.RawSession):
    """A raw SMTP session from a chosen source address."""

    def __init__(self, port, source=UNTRUSTED, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0))
        self.buf = b""
        self.greeting = self.read_reply()

    def cmd(self, line):
        """(code, last line's text after the code) of the reply to line."""
        self.send(line + "\r\n")
        code, lines = self.read_reply()
        return code, lines[-1][4:]

    def ehlo(self, name="client.example"):
        self.send("EHLO %s\r\n" % name)
        code, lines = self.read_reply()
        assert code == 250, lines
        return [l[4:] for l in lines[1:]]


class SaslTest(unittest.TestCase):
    """One instance per class with settings params; the password table
    holds USERS (SHA-512, and yescrypt for carol when mkpasswd can)."""

    params = {}
    users = USERS

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-sasl-")
        os.chmod(cls.tmp, 0o755)
        cls.passwd = os.path.join(cls.tmp, "passwd")
        lines = ["%s %s" % (u, make_hash(p, "sha512")) for u, p in cls.users.items()]
        cls.have_yescrypt = False
        y = yescrypt_hash("carol's secret")
        if y:
            lines.append("carol %s" % y)
            cls.have_yescrypt = True
        lines.append("dave *disabled*")
        with open(cls.passwd, "w") as f:
            f.write("\n".join(lines) + "\n")
        # root-only: smtpd opens the table before it drops privileges
        os.chmod(cls.passwd, 0o600)
        with open(os.path.join(cls.tmp, "logins"), "w") as f:
            f.write(LOGINS)
        settings = {
            "mynetworks": "127.0.0.1/32",
            "smtpd_peername_lookup": "no",
            "local_transport": "stall",
            "default_transport": "stall",
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "tern",
            "smtpd_sasl_password_maps": "texthash:" + cls.passwd,
            "smtpd_sender_login_maps": "texthash:" + os.path.join(cls.tmp, "logins"),
        }
        settings.update({k: v.replace("TMP", cls.tmp) for k, v in cls.params.items()})
        cls.start_backend()
        cls.inst = harness.Instance(name="sasl", main_cf=settings)
        cls.inst.stall_transport("stall")
        cls.prepare_instance()
        cls.inst.start()

    @classmethod
    def start_backend(cls):
        pass

    @classmethod
    def prepare_instance(cls):
        pass

    @classmethod
    def stop_backend(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.stop_backend()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def client(self, source=UNTRUSTED, ehlo=True):
        c = Client(self.inst.port, source=source)
        self.addCleanup(c.close)
        if ehlo:
            c.ehlo()
        return c

    def smtp(self, source=UNTRUSTED):
        s = smtplib.SMTP("127.0.0.1", self.inst.port, timeout=10, source_address=(source, 0))
        self.addCleanup(s.close)
        return s

    def log_count(self, regex):
        return len(re.findall(regex, self.inst.log_text()))


# ---- the password-table back-end ----

class TestSaslTern(SaslTest):
    params = {"smtpd_sender_restrictions": "reject_sender_login_mismatch"}

    def test_ehlo_advertises_auth(self):
        self.assertIn("AUTH PLAIN LOGIN", self.client().ehlo())
        s = self.smtp()
        s.ehlo("client.example")
        self.assertEqual(s.esmtp_features.get("auth", "").split(), ["PLAIN", "LOGIN"])

    def test_plain_and_login_with_smtplib(self):
        for mech, initial in (("PLAIN", True), ("PLAIN", False), ("LOGIN", True),
                              ("LOGIN", False)):
            with self.subTest(mech=mech, initial_response=initial):
                s = self.smtp()
                s.ehlo("client.example")
                s.user, s.password = "bob", USERS["bob"]
                auth = s.auth_plain if mech == "PLAIN" else s.auth_login
                code, text = s.auth(mech, auth, initial_response_ok=initial)
                self.assertEqual((code, text), (235, b"2.7.0 Authentication successful"))
        s = self.smtp()
        s.ehlo("client.example")
        self.assertEqual(s.login("alice", USERS["alice"])[0], 235)

    def test_yescrypt_hash(self):
        if not self.have_yescrypt:
            self.skipTest("mkpasswd (whois) cannot make yescrypt hashes here")
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("carol", "carol's secret")),
                         (235, "2.7.0 Authentication successful"))

    def test_hashing_does_not_hold_other_sessions(self):
        """Eight yescrypt checks at once (some tens of ms of CPU each) run
        in helper threads: a NOOP of another session is answered at once."""
        if not self.have_yescrypt:
            self.skipTest("mkpasswd (whois) cannot make yescrypt hashes here")
        clients = [self.client() for _ in range(8)]
        other = self.client()
        t0 = time.time()
        for c in clients:
            c.send("AUTH PLAIN " + plain("carol", "carol's secret") + "\r\n")
        other.send("NOOP\r\n")
        self.assertEqual(other.read_reply()[0], 250)
        noop_time = time.time() - t0
        for c in clients:
            self.assertEqual(c.read_reply()[0], 235)
        all_time = time.time() - t0
        self.assertLess(noop_time, all_time / 2, (noop_time, all_time))

    def test_wrong_password_rejected_and_logged(self):
        s = self.smtp()
        s.ehlo("client.example")
        with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice", "wrong")
        self.assertEqual(e.exception.smtp_code, 535)
        self.assertTrue(e.exception.smtp_error.startswith(b"5.7.8 Error: authentication failed:"),
                        e.exception.smtp_error)
        self.inst.wait_log(r"warning: unknown\[127\.0\.0\.2\]: SASL (PLAIN|LOGIN) authentication "
                           r"failed: authentication failure, sasl_username=alice")
        for user, password in (("nobody", "x"), ("dave", "*disabled*"), ("ALICE", "wrong"),
                               ("alice", USERS["alice"] + " "), ("alice", "")):
            with self.subTest(user=user):
                c = self.client()
                code, text = c.cmd("AUTH PLAIN " + plain(user, password))
                self.assertEqual(code, 535, text)
                self.assertTrue(text.startswith("5.7.8 Error: authentication failed: "), text)

    def test_protocol_errors(self):
        c = self.client(ehlo=False)
        self.assertEqual(c.cmd("AUTH PLAIN"), (503, "5.5.1 Error: send EHLO first"))
        c.ehlo()
        self.assertEqual(c.cmd("AUTH"), (501, "5.5.4 Syntax: AUTH mechanism"))
        self.assertEqual(c.cmd("AUTH PLAIN a b"), (501, "5.5.4 Syntax: AUTH mechanism"))
        self.assertEqual(c.cmd("AUTH PL\x01AIN"), (501, "5.5.4 Syntax: AUTH mechanism"))
        self.assertEqual(c.cmd("AUTH " + "X" * 21), (501, "5.5.4 Syntax: AUTH mechanism"))
        self.assertEqual(c.cmd("AUTH CRAM-MD5"),
                         (535, "5.7.8 Error: authentication failed: Invalid authentication mechanism"))
        self.assertEqual(c.cmd("AUTH PLAIN not*base64"), (501, "5.5.2 Cannot decode response"))
        self.assertEqual(c.cmd("AUTH PLAIN QQ="), (501, "5.5.2 Cannot decode response"))
        # cancel after a challenge, and base64 errors in a continuation
        self.assertEqual(c.cmd("AUTH LOGIN"), (334, "VXNlcm5hbWU6"))
        self.assertEqual(c.cmd("*"), (501, "5.7.0 Authentication aborted"))
        self.assertEqual(c.cmd("AUTH PLAIN"), (334, ""))
        self.assertEqual(c.cmd("@@@@"), (501, "5.5.2 Cannot decode response"))
        # the session goes on: the next line is a command again
        self.assertEqual(c.cmd("NOOP"), (250, "2.0.0 Ok"))
        self.inst.wait_log(r"warning: unknown\[127\.0\.0\.2\]: SASL LOGIN authentication aborted")

    def test_malformed_credentials(self):
        for resp in (b64("alice\0secret-alice"), b64("a\0b\0c\0d"), "=",
                     plain("alice", USERS["alice"], authz="bob"),
                     plain("al ice", "x"), plain("alice\x01", "x")):
            with self.subTest(resp=resp):
                c = self.client()
                code, text = c.cmd("AUTH PLAIN " + resp)
                self.assertEqual(code, 535, text)
        # the identity given as authorization identity too is fine
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"], authz="alice"))[0],
                         235)

    def test_response_line_too_long(self):
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN"), (334, ""))
        self.assertEqual(c.cmd("A" * 4000), (500, "5.5.6 Authentication exchange line is too long"))
        self.assertEqual(c.cmd("NOOP"), (250, "2.0.0 Ok"))

    def test_auth_in_transaction_and_twice(self):
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"])),
                         (503, "5.5.1 Error: MAIL transaction in progress"))
        self.assertEqual(c.cmd("RSET"), (250, "2.0.0 Ok"))
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"]))[0], 235)
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"])),
                         (503, "5.5.1 Error: already authenticated"))
        self.assertEqual(c.cmd("MAIL FROM:<alice@example.org> AUTH=<>"), (250, "2.1.0 Ok"))

    def test_relay_only_after_auth(self):
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<alice@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<postmaster@%s>" % HOSTNAME),
                         (553, "5.7.1 <alice@example.org>: Sender address rejected: not logged in"))
        c.cmd("RSET")
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<friend@foreign.test>"),
                         (454, "4.7.1 <friend@foreign.test>: Relay access denied"))
        c.cmd("RSET")
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"]))[0], 235)
        self.assertEqual(c.cmd("MAIL FROM:<alice@example.org> AUTH=alice@example.org"),
                         (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<friend@foreign.test>"), (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("DATA")[0], 354)
        code, text = c.cmd("Subject: relayed\r\n\r\nhello\r\n.")
        self.assertEqual(code, 250, text)
        qid = text.rsplit(" ", 1)[1]
        self.inst.wait_log(r"%s: client=unknown\[127\.0\.0\.2\], sasl_method=PLAIN, "
                           r"sasl_username=alice\n" % qid)
        path = os.path.join(self.inst.queue_dir, "active", qid)
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.05)
        msg = harness.read_queue_file(path)
        self.assertEqual(msg["attrs"]["sasl_username"], "alice")
        self.assertEqual(msg["attrs"]["sasl_method"], "PLAIN")
        self.assertEqual(msg["attrs"]["protocol"], "ESMTPA")
        self.assertIn(b"with ESMTPA id " + qid.encode(), msg["content"])
        show = self.inst.tern("show", qid).stdout
        self.assertIn("sasl_username=alice", show)

    def test_mynetworks_relays_without_auth(self):
        c = self.client(source="127.0.0.1")
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<friend@foreign.test>"), (250, "2.1.5 Ok"))

    def test_sender_login_mismatch(self):
        cases = [
            ("alice", "alice@example.org", 250, None),
            ("alice", "ALICE@Example.ORG", 250, None),
            ("alice", "x@shared.example", 250, None),
            ("bob", "y@shared.example", 250, None),
            ("alice", "bob@example.org", 553,
             "5.7.1 <bob@example.org>: Sender address rejected: not owned by user alice"),
            ("bob", "free@example.net", 553,
             "5.7.1 <free@example.net>: Sender address rejected: not owned by user bob"),
            (None, "bob@example.org", 553,
             "5.7.1 <bob@example.org>: Sender address rejected: not logged in"),
            (None, "free@example.net", 250, None),
            ("alice", "", 250, None),
        ]
        for user, sender, code, text in cases:
            with self.subTest(user=user, sender=sender):
                c = self.client()
                if user:
                    self.assertEqual(c.cmd("AUTH PLAIN " + plain(user, USERS[user]))[0], 235)
                self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender)[0], 250)
                got = c.cmd("RCPT TO:<postmaster@%s>" % HOSTNAME)
                if code == 250:
                    self.assertEqual(got, (250, "2.1.5 Ok"))
                else:
                    self.assertEqual(got, (code, text))
        self.inst.wait_log(re.escape("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 553 5.7.1 "
                                     "<bob@example.org>: Sender address rejected: not owned by "
                                     "user alice; from=<bob@example.org> to=<postmaster@tern.test>"))

    def test_swaks_auth(self):
        if not shutil.which("swaks"):
            self.skipTest("swaks is not installed")
        for mech in ("PLAIN", "LOGIN"):
            with self.subTest(mech=mech):
                r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.inst.port,
                                    "--local-interface", UNTRUSTED, "--auth", mech,
                                    "--auth-user", "bob", "--auth-password", USERS["bob"],
                                    "--from", "bob@example.org", "--to", "friend@foreign.test",
                                    "--helo", "swaks.example"],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn("235 2.7.0 Authentication successful", r.stdout)
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.inst.port,
                            "--local-interface", UNTRUSTED, "--auth", "PLAIN",
                            "--auth-user", "bob", "--auth-password", "wrong",
                            "--from", "bob@example.org", "--to", "friend@foreign.test"],
                           capture_output=True, text=True, timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("535 5.7.8", r.stdout)

    def test_disconnect_statistics(self):
        c = self.client()
        c.cmd("AUTH PLAIN " + plain("alice", "wrong"))
        c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"]))
        c.cmd("QUIT")
        self.inst.wait_log(r"disconnect from unknown\[127\.0\.0\.2\] ehlo=1 auth=1/2 quit=1 "
                           r"commands=3/4")


class TestSaslLimits(SaslTest):
    """Failed AUTH counts toward smtpd_hard_error_limit; the AUTH rate
    limit is counted by anvil across sessions."""

    params = {"smtpd_hard_error_limit": "3", "smtpd_error_sleep_time": "0",
              "smtpd_client_auth_rate_limit": "4"}

    def test_errors_and_rate_limit(self):
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", "bad1"))[0], 535)
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", "bad2"))[0], 535)
        c.send("AUTH PLAIN " + plain("alice", "bad3") + "\r\n")
        self.assertEqual(c.read_reply()[0], 535)
        code, lines = c.read_reply()
        self.assertEqual(code, 421, lines)
        self.assertIn("too many errors", lines[-1])
        self.inst.wait_log(r"too many errors after AUTH from unknown\[127\.0\.0\.2\]")
        # the fourth AUTH is still allowed, the fifth is over the limit
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"]))[0], 235)
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"])),
                         (450, "4.7.1 Error: too many AUTH commands from 127.0.0.2"))
        self.inst.wait_log(r"warning: AUTH command rate limit exceeded: 5 from "
                           r"unknown\[127\.0\.0\.2\] for service ")
        # mynetworks is exempt (smtpd_client_event_limit_exceptions)
        c = self.client(source="127.0.0.1")
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"]))[0], 235)


class TestTlsAuthOnly(SaslTest):
    params = {"smtpd_tls_auth_only": "yes"}

    def test_no_auth_before_tls(self):
        c = self.client()
        keywords = c.ehlo()
        self.assertFalse([k for k in keywords if k.startswith("AUTH")], keywords)
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"])),
                         (538, "5.7.11 Encryption required for requested authentication mechanism"))
        s = self.smtp()
        s.ehlo("client.example")
        with self.assertRaises(smtplib.SMTPNotSupportedError):
            s.login("alice", USERS["alice"])


class TestSaslDisabled(SaslTest):
    params = {"smtpd_sasl_auth_enable": "no"}

    def test_not_offered(self):
        c = self.client()
        self.assertFalse([k for k in c.ehlo() if k.startswith("AUTH")])
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"])),
                         (503, "5.5.1 Error: authentication not enabled"))

    def test_check_reports_missing_password_maps(self):
        inst = harness.Instance(name="sasl-check", main_cf={"smtpd_sasl_auth_enable": "yes"})
        self.addCleanup(inst.cleanup)
        out = inst.tern("check", check=False)
        self.assertIn("needs smtpd_sasl_password_maps", out.stdout + out.stderr)
        inst.set_main_cf({"smtpd_sasl_type": "dovecot"})
        out = inst.tern("check", check=False)
        self.assertNotIn("smtpd_sasl", out.stdout + out.stderr)


class TestNoPlaintext(SaslTest):
    params = {"smtpd_sasl_security_options": "noanonymous, noplaintext",
              "broken_sasl_auth_clients": "yes"}

    def test_no_mechanism_left(self):
        c = self.client()
        self.assertFalse([k for k in c.ehlo() if k.startswith("AUTH")])
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"])),
                         (535, "5.7.8 Error: authentication failed: Invalid authentication mechanism"))


# ---- TLS and AUTH together (skipped until smtpd offers STARTTLS) ----

class TestSaslWithTls(SaslTest):
    params = {"smtpd_tls_cert_file": "TMP/cert.pem", "smtpd_tls_key_file": "TMP/key.pem",
              "smtpd_tls_security_level": "may", "smtpd_tls_auth_only": "yes"}

    @classmethod
    def setUpClass(cls):
        cls.tls_dir = tempfile.mkdtemp(prefix="tern-sasl-tls-")
        cls.tls_port = harness.free_port()
        try:
            cls.make_cert(cls.tls_dir)
        except (OSError, subprocess.CalledProcessError) as e:
            raise unittest.SkipTest("cannot make a certificate: %s" % e)
        # the probe: does this build know the TLS parameters at all?
        with open(os.path.join(cls.tls_dir, "main.cf"), "w"):
            pass
        probe = harness.tern("-c", cls.tls_dir, "conf", "-d", "smtpd_tls_cert_file",
                             check=False)
        if probe.returncode != 0 or "smtpd_tls_cert_file" not in probe.stdout:
            shutil.rmtree(cls.tls_dir, ignore_errors=True)
            raise unittest.SkipTest("this smtpd has no TLS support")
        super().setUpClass()

    @staticmethod
    def make_cert(d):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=" + HOSTNAME, "-keyout", os.path.join(d, "key.pem"),
                        "-out", os.path.join(d, "cert.pem")], check=True, capture_output=True,
                       timeout=60)
        os.chmod(os.path.join(d, "key.pem"), 0o644)

    @classmethod
    def prepare_instance(cls):
        for name in ("cert.pem", "key.pem"):
            shutil.copy(os.path.join(cls.tls_dir, name), os.path.join(cls.tmp, name))
        cls.inst.set_master_cf([
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_wrappermode=yes "
            "-o smtpd_sasl_auth_enable=yes" % cls.tls_port])

    @classmethod
    def stop_backend(cls):
        shutil.rmtree(cls.tls_dir, ignore_errors=True)

    def setUp(self):
        s = self.smtp()
        s.ehlo("client.example")
        if not s.has_extn("starttls"):
            self.skipTest("smtpd does not offer STARTTLS")

    def context(self):
        ctx = ssl.create_default_context(cafile=os.path.join(self.tmp, "cert.pem"))
        ctx.check_hostname = False
        return ctx

    def test_starttls_then_login(self):
        s = self.smtp()
        s.ehlo("client.example")
        self.assertFalse(s.has_extn("auth"))
        s.starttls(context=self.context())
        s.ehlo("client.example")
        self.assertIn("PLAIN", s.esmtp_features.get("auth", ""))
        self.assertEqual(s.login("alice", USERS["alice"])[0], 235)
        s.sendmail("alice@example.org", ["friend@foreign.test"], "Subject: t\r\n\r\nhi\r\n")
        self.inst.wait_log(r"client=unknown\[127\.0\.0\.2\], sasl_method=PLAIN, "
                           r"sasl_username=alice")

    def test_wrappermode_login(self):
        self.inst.wait_port(self.tls_port)
        s = smtplib.SMTP_SSL("127.0.0.1", self.tls_port, timeout=10, context=self.context(),
                             source_address=(UNTRUSTED, 0))
        self.addCleanup(s.close)
        s.ehlo("client.example")
        self.assertEqual(s.login("bob", USERS["bob"])[0], 235)

    def test_swaks_tls_auth(self):
        if not shutil.which("swaks"):
            self.skipTest("swaks is not installed")
        r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.inst.port, "--tls",
                            "--local-interface", UNTRUSTED, "--auth", "LOGIN",
                            "--auth-user", "bob", "--auth-password", USERS["bob"],
                            "--from", "bob@example.org", "--to", "friend@foreign.test"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("235 2.7.0", r.stdout)

    def test_curl_ssl_reqd(self):
        if not shutil.which("curl"):
            self.skipTest("curl is not installed")
        mail = os.path.join(self.tmp, "curl-mail.txt")
        with open(mail, "w") as f:
            f.write("Subject: from curl\r\n\r\nhello\r\n")
        r = subprocess.run(["curl", "-sS", "--ssl-reqd", "--cacert",
                            os.path.join(self.tmp, "cert.pem"), "-k",
                            "--interface", UNTRUSTED,
                            "--url", "smtp://127.0.0.1:%d" % self.inst.port,
                            "--user", "alice:" + USERS["alice"],
                            "--mail-from", "alice@example.org",
                            "--mail-rcpt", "friend@foreign.test", "--upload-file", mail],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.inst.wait_log(r"sasl_method=(PLAIN|LOGIN), sasl_username=alice")


# ---- Dovecot ----

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = none
ssl = no
auth_mechanisms = plain login
disable_plaintext_auth = no
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=SHA512-CRYPT {d}/users
}}
userdb {{
  driver = static
  args = uid=65534 gid=65534 home=/nonexistent
}}
service auth {{
  unix_listener {socket} {{
    mode = 0666
  }}
}}
"""


class TestSaslDovecot(SaslTest):
    """Dovecot delays the answers to a client address that failed before
    (its auth penalty): requests that follow a failure come from an address
    of their own."""

    params = {"smtpd_sasl_type": "dovecot", "smtpd_sasl_path": "private/auth",
              "smtpd_sasl_password_maps": "", "smtpd_sasl_dovecot_timeout": "3s",
              "smtpd_sender_restrictions": "reject_authenticated_sender_login_mismatch"}

    @classmethod
    def setUpClass(cls):
        if not os.access(DOVECOT, os.X_OK):
            raise unittest.SkipTest("dovecot (dovecot-core) is not installed")
        super().setUpClass()

    @classmethod
    def prepare_instance(cls):
        cls.dv_dir = os.path.join(cls.tmp, "dovecot")
        for sub in ("run", "state"):
            os.makedirs(os.path.join(cls.dv_dir, sub), exist_ok=True)
        with open(os.path.join(cls.dv_dir, "users"), "w") as f:
            for user, password in USERS.items():
                f.write("%s:%s::::::\n" % (user, make_hash(password, "sha512")))
        cls.socket = os.path.join(cls.inst.queue_dir, "private", "auth")
        cls.conf = os.path.join(cls.dv_dir, "dovecot.conf")
        with open(cls.conf, "w") as f:
            f.write(DOVECOT_CONF.format(d=cls.dv_dir, socket=cls.socket))
        cls.dovecot = None
        cls.start_dovecot()

    @classmethod
    def start_dovecot(cls):
        cls.dovecot = subprocess.Popen([DOVECOT, "-F", "-c", cls.conf],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        deadline = time.time() + 15
        while time.time() < deadline:
            if os.path.exists(cls.socket):
                return
            if cls.dovecot.poll() is not None:
                break
            time.sleep(0.05)
        log = ""
        try:
            with open(os.path.join(cls.dv_dir, "dovecot.log")) as f:
                log = f.read()
        except OSError:
            pass
        raise AssertionError("dovecot did not start: %s" % log)

    @classmethod
    def stop_dovecot(cls):
        """SIGTERM to the dovecot master we started; its auth process goes
        on serving the connections it has, so it and the other children of
        that master (PIDs read before) are ended too."""
        if cls.dovecot:
            harness.stop_process_tree(cls.dovecot)
        cls.dovecot = None

    @classmethod
    def stop_backend(cls):
        cls.stop_dovecot()

    def test_1_right_and_wrong_password(self):
        s = self.smtp()
        s.ehlo("client.example")
        self.assertEqual(s.esmtp_features.get("auth", "").split(), ["PLAIN", "LOGIN"])
        self.assertEqual(s.login("alice", USERS["alice"])[0], 235)
        for mech, initial in (("PLAIN", False), ("LOGIN", False), ("LOGIN", True)):
            with self.subTest(mech=mech, initial=initial):
                s = self.smtp()
                s.ehlo("client.example")
                s.user, s.password = "bob", USERS["bob"]
                auth = s.auth_plain if mech == "PLAIN" else s.auth_login
                self.assertEqual(s.auth(mech, auth, initial_response_ok=initial)[0], 235)
        c = self.client(source="127.0.0.3")
        code, text = c.cmd("AUTH PLAIN " + plain("alice", "wrong"))
        self.assertEqual(code, 535, text)
        self.inst.wait_log(r"warning: unknown\[127\.0\.0\.3\]: SASL PLAIN authentication failed")
        c = self.client(source="127.0.0.4")
        self.assertEqual(c.cmd("AUTH LOGIN"), (334, "VXNlcm5hbWU6"))
        self.assertEqual(c.cmd("*"), (501, "5.7.0 Authentication aborted"))
        self.assertEqual(c.cmd("AUTH DIGEST-MD5")[0], 535)

    def test_2_relay_and_sender_after_dovecot_auth(self):
        c = self.client()
        self.assertEqual(c.cmd("AUTH PLAIN " + plain("bob", USERS["bob"]))[0], 235)
        self.assertEqual(c.cmd("MAIL FROM:<alice@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<friend@foreign.test>"),
                         (553, "5.7.1 <alice@example.org>: Sender address rejected: not owned "
                               "by user bob"))
        c.cmd("RSET")
        self.assertEqual(c.cmd("MAIL FROM:<bob@example.org>")[0], 250)
        self.assertEqual(c.cmd("RCPT TO:<friend@foreign.test>"), (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("DATA")[0], 354)
        code, text = c.cmd("Subject: t\r\n\r\nhi\r\n.")
        self.assertEqual(code, 250, text)
        self.inst.wait_log(r"client=unknown\[127\.0\.0\.2\], sasl_method=PLAIN, sasl_username=bob")

    def test_3_many_sessions_at_once(self):
        clients = [self.client(source="127.0.0.%d" % (20 + i)) for i in range(10)]
        for i, c in enumerate(clients):
            user = "alice" if i % 2 else "bob"
            password = USERS[user] if i % 3 else "wrong"
            c.send("AUTH PLAIN " + plain(user, password) + "\r\n")
        for i, c in enumerate(clients):
            code, _ = c.read_reply()
            self.assertEqual(code, 235 if i % 3 else 535, i)

    def test_9_dovecot_stopped(self):
        self.stop_dovecot()
        try:
            for attempt in range(2):
                c = self.client()
                code, text = c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"]))
                self.assertEqual(code, 454, text)
                self.assertTrue(text.startswith("4.7.0 Temporary authentication failure"), text)
                code, text = c.cmd("AUTH LOGIN " + b64("alice"))
                self.assertEqual(code, 454, text)
            # a listener that accepts and never answers: the time limit
            silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.addCleanup(silent.close)
            if os.path.exists(self.socket):
                os.unlink(self.socket)
            silent.bind(self.socket)
            os.chmod(self.socket, 0o666)
            silent.listen(16)
            c = self.client()
            t0 = time.time()
            code, text = c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"]))
            self.assertEqual(code, 454, text)
            self.assertLess(time.time() - t0, 9)
            silent.close()
            os.unlink(self.socket)
            # back again: authentication works again
            self.start_dovecot()
            deadline = time.time() + 10
            while True:
                c = self.client()
                code, text = c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"]))
                if code == 235 or time.time() > deadline:
                    break
                time.sleep(0.2)
            self.assertEqual(code, 235, text)
        finally:
            self.stop_dovecot()


class FakeAuthServer(servers.Server):
    """A Dovecot auth service that misbehaves on purpose: it answers each
    connection's handshake and requests with the lines behaviour() gives
    for ("hello" | request line); it runs in a thread of the test."""

    def __init__(self, path):
        self.behaviour = lambda what, line: []
        self.closed = 0             # conns before this index were closed by close_connections()
        super().__init__(path=path, backlog=16)

    def handle(self, conn):
        buf = b""
        conn.settimeout(0.2)
        greeted = False
        while not self.stopping.is_set():
            try:
                data = self.recv(conn, 4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                text = line.decode("utf-8", "replace")
                if text.startswith("CPID") and not greeted:
                    greeted = True
                    out = self.behaviour("hello", text)
                elif text.startswith("AUTH") or text.startswith("CONT"):
                    out = self.behaviour("request", text)
                else:
                    continue
                try:
                    conn.sendall(b"".join(l.encode() + b"\n" for l in out))
                except OSError:
                    return

    def close_connections(self):
        """Close the connections accepted so far (the daemons reconnect)."""
        with self.lock:
            conns, self.closed = self.conns[self.closed:], len(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass


HANDSHAKE = ["VERSION\t1\t2", "MECH\tPLAIN\tplaintext", "MECH\tLOGIN\tplaintext",
             "SPID\t1", "CUID\t1", "COOKIE\t00", "DONE"]


class TestSaslBrokenDovecot(SaslTest):
    """An auth service that says wrong things never lets anyone in: every
    such answer is a 454 (or, for an answer it may give, a 535)."""

    params = {"smtpd_sasl_type": "dovecot", "smtpd_sasl_path": "private/auth",
              "smtpd_sasl_password_maps": "", "smtpd_sasl_dovecot_timeout": "2s"}

    @classmethod
    def prepare_instance(cls):
        cls.fake = FakeAuthServer(os.path.join(cls.inst.queue_dir, "private", "auth"))

    @classmethod
    def stop_backend(cls):
        cls.fake.stop()

    def attempt(self, hello, answer, source=UNTRUSTED):
        """Fresh connections to the fake server, then one AUTH PLAIN."""
        def behaviour(what, line):
            if what == "hello":
                return hello
            rid = line.split("\t")[1]
            return [a.replace("ID", rid) for a in answer]
        self.fake.behaviour = behaviour
        self.fake.close_connections()
        time.sleep(0.2)
        c = self.client(source=source)
        t0 = time.time()
        code, text = c.cmd("AUTH PLAIN " + plain("alice", "whatever"))
        self.assertLess(time.time() - t0, 8)
        return code, text

    def test_misbehaving_server(self):
        cases = [
            ("version 2", ["VERSION\t2\t0"] + HANDSHAKE[1:], ["OK\tID\tuser=alice"], 454),
            ("no version", HANDSHAKE[1:], ["OK\tID\tuser=alice"], 454),
            ("OK without user", HANDSHAKE, ["OK\tID"], 454),
            ("OK for another id", HANDSHAKE, ["OK\t999\tuser=alice"], 454),
            ("garbage", HANDSHAKE, ["OK\tnot-a-number\tuser=alice", "OK\tID\tuser=alice"], 454),
            ("bad challenge", HANDSHAKE, ["CONT\tID\t***", "OK\tID\tuser=alice"], 454),
            ("user with a space", HANDSHAKE, ["OK\tID\tuser=ali ce"], 454),
            ("temporary failure", HANDSHAKE, ["FAIL\tID\ttemp\treason=db down"], 454),
            ("silence", HANDSHAKE, [], 454),
            ("no handshake", [], [], 454),
            ("plain refusal", HANDSHAKE, ["FAIL\tID\treason=Password\001tmismatch"], 535),
            ("fine", HANDSHAKE, ["OK\tID\tuser=alice"], 235),
        ]
        for name, hello, answer, code in cases:
            with self.subTest(case=name):
                got, text = self.attempt(hello, answer)
                self.assertEqual(got, code, text)
        self.inst.wait_log(r"SASL: connection to private/auth: malformed line")


if __name__ == "__main__":
    unittest.main()
