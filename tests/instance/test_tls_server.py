"""test_tls_server.py: whole-instance tests of smtpd's TLS: STARTTLS with
real clients (Python's smtplib verifying the certificate against a test CA,
swaks, openssl s_client, curl), RSA and ECDSA certificates at once and the
choice by SNI, TLS 1.1 refused, session resumption across smtpd processes,
the encrypt level, the STARTTLS command-injection defence, implicit TLS
(wrappermode) next to plain and submission services with their own -o
overrides and log names, the Received: header and the log lines, a
missing key file, and the new TLS session rate limit.

The CA and the server certificates are made with the openssl command in a
temporary directory; key files are readable by root only, so they must be
read before smtpd drops its privileges.
"""
import os
import re
import shutil
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

HOSTNAME = "tern.test"
PKI = None      # directory with the test CA and server certificates


def openssl(*args, stdin=None, timeout=20):
    return subprocess.run(["openssl"] + list(args), capture_output=True, text=True,
                          input=stdin, timeout=timeout)


def make_cert(name, cn, keyargs):
    """PKI/NAME.key, NAME.crt signed by the test CA, and NAME.pem (key then chain)."""
    key, csr, crt = (os.path.join(PKI, name + ext) for ext in (".key", ".csr", ".crt"))
    ext = os.path.join(PKI, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % cn)
    r = openssl("req", "-new", "-newkey", *keyargs, "-nodes", "-keyout", key, "-out", csr,
                "-subj", "/CN=%s" % cn)
    assert r.returncode == 0, r.stderr
    r = openssl("x509", "-req", "-in", csr, "-CA", os.path.join(PKI, "ca.crt"),
                "-CAkey", os.path.join(PKI, "ca.key"), "-CAcreateserial", "-days", "2",
                "-out", crt, "-extfile", ext)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(PKI, name + ".pem"), "w") as out:
        for part in (key, crt):
            with open(part) as f:
                out.write(f.read())
    for p in (key, os.path.join(PKI, name + ".pem")):
        os.chmod(p, 0o600)


def setUpModule():
    global PKI
    PKI = tempfile.mkdtemp(prefix="tern-tls-pki-", dir="/tmp")
    r = openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", os.path.join(PKI, "ca.key"), "-out", os.path.join(PKI, "ca.crt"),
                "-subj", "/CN=Tern Test CA", "-days", "2")
    assert r.returncode == 0, r.stderr
    make_cert("rsa", HOSTNAME, ["rsa:2048"])
    make_cert("ecdsa", HOSTNAME, ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    make_cert("other", "other.test", ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"])


def tearDownModule():
    shutil.rmtree(PKI, ignore_errors=True)


def pki(name):
    return os.path.join(PKI, name)


def tls_params(**extra):
    settings = {
        "smtpd_tls_security_level": "may",
        "smtpd_tls_chain_files": "%s, %s" % (pki("rsa.pem"), pki("ecdsa.pem")),
        "local_transport": "stall",
        "mynetworks": "127.0.0.1/32",
        "smtpd_client_event_limit_exceptions": "127.0.0.1/32",
    }
    settings.update(extra)
    return settings


def start(name, master_cf_extra=None, **params):
    inst = harness.Instance(name=name, main_cf=tls_params(**params),
                            master_cf_extra=master_cf_extra)
    inst.stall_transport("stall")
    inst.start()
    return inst


def client_context():
    ctx = ssl.create_default_context(cafile=pki("ca.crt"))
    ctx.check_hostname = True
    return ctx


def s_client(port, *args, starttls=True):
    """openssl s_client against 127.0.0.1:port, sending QUIT once the
    handshake (and a TLS 1.3 session ticket) had time to arrive;
    CompletedProcess."""
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", pki("ca.crt"),
           "-crlf"]
    if starttls:
        cmd += ["-starttls", "smtp", "-name", "client.test"]
    p = subprocess.Popen(cmd + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    try:
        out, err = p.communicate("quit\n", timeout=20)   # "Q..." would be s_client's own quit
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


class StartTLS(unittest.TestCase):
    """Level may on the instance's port, RSA and ECDSA chains, an SNI table."""

    @classmethod
    def setUpClass(cls):
        sni = os.path.join(PKI, "sni")
        with open(sni, "w") as f:
            f.write("other.test %s\n.other.test %s\n" % (pki("other.pem"), pki("other.pem")))
        cls.inst = start("tls", tls_server_sni_maps="texthash:" + sni)

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def test_smtplib_verified_message_received_header_and_log(self):
        # tern.test may not resolve: connect by address, verify by name.
        s = smtplib.SMTP(timeout=10)
        s._host = HOSTNAME
        s.connect("127.0.0.1", self.inst.port)
        try:
            s.ehlo("client.test")
            self.assertIn("starttls", s.esmtp_features)
            s.starttls(context=client_context())
            self.assertEqual(s.sock.version(), "TLSv1.3")
            s.ehlo("client.test")
            self.assertNotIn("starttls", s.esmtp_features)
            s.sendmail("alice@client.test", ["bob@tern.test"],
                       "Subject: over TLS\r\n\r\nhello\r\n")
        finally:
            s.quit()
        deadline = time.time() + 10
        while True:
            mine = [q for q in map(harness.read_queue_file, self.inst.queue_files("active"))
                    if q["sender"] == "alice@client.test" and q["complete"]]
            if mine or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(len(mine), 1)
        content = mine[0]["content"].decode()
        header = content.split("\n\n", 1)[0]
        self.assertRegex(header, r"\(using TLSv1\.3 with cipher TLS_[A-Z0-9_]+ \(\d+/\d+ bits\)\)")
        self.assertRegex(header, r"by tern\.test \(Tern\) with ESMTPS id ")
        self.inst.wait_log(r"smtpd\[\d+\]: Anonymous TLS connection established from "
                           r"localhost\[127\.0\.0\.1\]: TLSv1\.3 with cipher TLS_\w+ \(\d+/\d+ bits\)")

    def test_starttls_inside_tls_refused(self):
        with self.inst.raw_session() as r:
            r.send("STARTTLS\r\n")
            self.assertEqual(r.read_reply()[0], 220)
            r.sock = client_context().wrap_socket(r.sock, server_hostname=HOSTNAME)
            r.send("HELO client.test\r\n")
            self.assertEqual(r.read_reply()[0], 250)
            r.send("STARTTLS\r\n")
            code, lines = r.read_reply()
            self.assertEqual((code, lines[-1]), (554, "554 5.5.1 Error: TLS already active"))
            r.send("QUIT\r\n")
            r.read_reply()

    def test_openssl_rsa_and_ecdsa_by_sigalgs(self):
        ec = s_client(self.inst.port, "-sigalgs", "ECDSA+SHA256")
        self.assertIn("Protocol  : TLSv1.3", ec.stdout + ec.stderr)
        self.assertRegex(ec.stdout, r"Peer signature type: ECDSA")
        self.assertIn("Server public key is 256 bit", ec.stdout)
        rsa = s_client(self.inst.port, "-sigalgs", "rsa_pss_rsae_sha256")
        self.assertRegex(rsa.stdout, r"Peer signature type: RSA-PSS")
        self.assertIn("Server public key is 2048 bit", rsa.stdout)
        self.assertIn("Verify return code: 0 (ok)", rsa.stdout)
        # TLS 1.2 with an RSA-only cipher suite gets the RSA certificate.
        r12 = s_client(self.inst.port, "-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384")
        self.assertIn("Server public key is 2048 bit", r12.stdout)
        self.assertRegex(r12.stdout, r"Protocol\s*: TLSv1\.2")

    def test_sni_picks_certificate(self):
        other = s_client(self.inst.port, "-servername", "other.test")
        self.assertRegex(other.stdout, r"subject=CN ?= ?other\.test")
        sub = s_client(self.inst.port, "-servername", "mx.other.test")
        self.assertRegex(sub.stdout, r"subject=CN ?= ?other\.test")
        default = s_client(self.inst.port, "-servername", "unknown.example")
        self.assertRegex(default.stdout, r"subject=CN ?= ?tern\.test")
        self.assertIn("Verify return code: 0 (ok)", default.stdout)

    def test_tls11_refused(self):
        r = s_client(self.inst.port, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
        self.assertIn("Cipher is (NONE)", r.stdout)
        self.assertIn("no peer certificate available", r.stdout)
        self.inst.wait_log(r"SSL_accept error from localhost\[127\.0\.0\.1\]: .*"
                           r"(unsupported protocol|no protocols available|version)")
        self.inst.wait_log(r"lost connection after STARTTLS from localhost\[127\.0\.0\.1\]")
        # The service is still there.
        with self.inst.raw_session() as r2:
            self.assertEqual(r2.greeting[0], 220)

    def test_resumption_across_processes(self):
        sess = os.path.join(PKI, "session.pem")
        first = s_client(self.inst.port, "-sess_out", sess)
        self.assertIn("New, TLSv1.3", first.stdout)
        self.assertTrue(os.path.exists(sess), first.stdout + first.stderr)
        # The first smtpd may still be idle; a fresh process must resume too.
        for pid in self.inst.wait_process("smtpd"):
            os.kill(pid, 15)
        time.sleep(0.5)
        second = s_client(self.inst.port, "-sess_in", sess)
        self.assertIn("Reused, TLSv1.3", second.stdout, second.stdout[-2000:])
        pids = re.findall(r"smtpd\[(\d+)\]: Anonymous TLS connection established",
                          self.inst.log_text())
        self.assertNotEqual(pids[-1], pids[-2])
        # The ticket secret all smtpd processes share: root's alone.
        st = os.stat(os.path.join(self.inst.dir, "data", "smtpd_tls_ticket.key"))
        self.assertEqual((st.st_mode & 0o777, st.st_uid, st.st_size), (0o600, 0, 32))
        # TLS 1.2 sessions resume through tickets too.
        sess12 = os.path.join(PKI, "session12.pem")
        first = s_client(self.inst.port, "-tls1_2", "-sess_out", sess12)
        self.assertIn("New, TLSv1.2", first.stdout)
        second = s_client(self.inst.port, "-tls1_2", "-sess_in", sess12)
        self.assertIn("Reused, TLSv1.2", second.stdout)
        # A secret older than a day is replaced by the next smtpd to start:
        # the old tickets then no longer resume.
        key = os.path.join(self.inst.dir, "data", "smtpd_tls_ticket.key")
        with open(key, "rb") as f:
            old_secret = f.read()
        os.utime(key, (time.time() - 2 * 86400, time.time() - 2 * 86400))
        for pid in self.inst.wait_process("smtpd"):
            os.kill(pid, 15)
        time.sleep(0.5)
        third = s_client(self.inst.port, "-sess_in", sess)
        self.assertIn("New, TLSv1.3", third.stdout)
        with open(key, "rb") as f:
            self.assertNotEqual(f.read(), old_secret)
        self.inst.wait_log(r"new TLS session ticket secret in ")

    def test_starttls_injection_discarded(self):
        with self.inst.raw_session() as r:
            r.send("EHLO client.test\r\n")
            self.assertEqual(r.read_reply()[0], 250)
            r.send("STARTTLS\r\nRSET\r\n")
            self.assertEqual(r.read_reply()[0], 220)
            self.assertEqual(r.buf, b"")
            r.sock = client_context().wrap_socket(r.sock, server_hostname=HOSTNAME)
            with self.assertRaises((socket.timeout, TimeoutError)):
                r.read_reply(timeout=1.5)     # the RSET is never answered
            r.sock.settimeout(10)
            r.send("EHLO client.test\r\n")
            code, lines = r.read_reply()
            self.assertEqual(code, 250)
            self.assertNotIn("250-STARTTLS", lines)
            r.send("QUIT\r\n")
            self.assertEqual(r.read_reply()[0], 221)
        self.inst.wait_log(r"improper command pipelining after STARTTLS from "
                           r"localhost\[127\.0\.0\.1\]: RSET\\r\\n")

    def test_state_reset_after_starttls(self):
        """The MAIL transaction and HELO name before STARTTLS are forgotten."""
        with self.inst.raw_session() as r:
            r.send("EHLO client.test\r\n")
            r.read_reply()
            r.send("MAIL FROM:<a@client.test>\r\n")
            self.assertEqual(r.read_reply()[0], 250)
            r.send("STARTTLS\r\n")
            self.assertEqual(r.read_reply()[0], 220)
            r.sock = client_context().wrap_socket(r.sock, server_hostname=HOSTNAME)
            r.send("RCPT TO:<bob@tern.test>\r\n")
            self.assertEqual(r.read_reply()[0], 503)
            r.send("QUIT\r\n")
            r.read_reply()

    def test_handshake_garbage(self):
        with self.inst.raw_session() as r:
            r.send("STARTTLS\r\n")
            self.assertEqual(r.read_reply()[0], 220)
            r.send(b"\x16\x03\x01\x00\x05hello, this is not TLS\r\n")
            r.sock.settimeout(5)
            self.assertEqual(r.sock.recv(100)[:1], b"\x15")     # a TLS alert, then EOF
        self.inst.wait_log(r"SSL_accept error from localhost\[127\.0\.0\.1\]: error:")

    def test_swaks(self):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.inst.port),
                            "--tls", "--from", "swaks@client.test", "--to", "bob@tern.test",
                            "--helo", "client.test", "--timeout", "10"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("TLS started", r.stdout)
        self.assertRegex(r.stdout, r"<~  250 2\.0\.0 Ok: queued as ")

    def test_curl_ssl_reqd(self):
        msg = os.path.join(PKI, "curl.eml")
        with open(msg, "w") as f:
            f.write("Subject: curl\r\n\r\nfrom curl\r\n")
        r = subprocess.run(["curl", "-sS", "--ssl-reqd", "--cacert", pki("ca.crt"),
                            "--resolve", "%s:%d:127.0.0.1" % (HOSTNAME, self.inst.port),
                            "smtp://%s:%d/client.test" % (HOSTNAME, self.inst.port),
                            "--mail-from", "curl@client.test", "--mail-rcpt", "bob@tern.test",
                            "-T", msg, "--max-time", "20"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.inst.wait_log(r"from=<curl@client\.test>")


class Services(unittest.TestCase):
    """Three smtpd services from one master.cf: port 25 style (may),
    submission (encrypt) and submissions (wrappermode), each with its own
    -o overrides and log name."""

    @classmethod
    def setUpClass(cls):
        cls.sub_port = harness.free_port()
        cls.subs_port = harness.free_port()
        cls.inst = start("tls-svc", master_cf_extra=[
            "127.0.0.1:%d inet n - n - - smtpd" % cls.sub_port,
            "  -o syslog_name=tern/submission",
            "  -o smtpd_tls_security_level=encrypt",
            "  -o smtpd_relay_restrictions=permit_mynetworks,reject",
            "127.0.0.1:%d inet n - n - - smtpd" % cls.subs_port,
            "  -o syslog_name=tern/submissions",
            "  -o smtpd_tls_wrappermode=yes",
        ])
        cls.inst.wait_port(cls.sub_port)
        cls.inst.wait_port(cls.subs_port)

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def test_encrypt_refuses_mail_before_starttls(self):
        with self.inst.raw_session(port=self.sub_port) as r:
            r.send("EHLO client.test\r\n")
            code, lines = r.read_reply()
            self.assertIn("250-STARTTLS", lines)
            for cmd in ("MAIL FROM:<a@client.test>", "RCPT TO:<b@tern.test>", "DATA",
                        "VRFY bob", "BDAT 1 LAST"):
                r.send(cmd + "\r\n")
                self.assertEqual(r.read_reply(),
                                 (530, ["530 5.7.0 Must issue a STARTTLS command first"]), cmd)
            for cmd in ("NOOP", "RSET"):
                r.send(cmd + "\r\n")
                self.assertEqual(r.read_reply()[0], 250, cmd)
            r.send("STARTTLS\r\n")
            self.assertEqual(r.read_reply()[0], 220)
            r.sock = client_context().wrap_socket(r.sock, server_hostname=HOSTNAME)
            r.send("EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n")
            self.assertEqual(r.read_reply()[0], 250)
            self.assertEqual(r.read_reply()[0], 250)
            r.send("QUIT\r\n")
            r.read_reply()
        self.inst.wait_log(r"tern/submission/smtpd\[\d+\]: Anonymous TLS connection established")
        # The port 25 service still takes mail in clear text.
        with self.inst.raw_session() as r:
            r.send("EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n")
            self.assertEqual(r.read_reply()[0], 250)
            self.assertEqual(r.read_reply()[0], 250)

    def test_wrappermode_smtp_ssl(self):
        s = smtplib.SMTP_SSL(timeout=10, context=client_context())
        s._host = HOSTNAME
        s.connect("127.0.0.1", self.subs_port)
        try:
            s.ehlo("client.test")
            self.assertNotIn("starttls", s.esmtp_features)
            s.sendmail("alice@client.test", ["bob@tern.test"], "Subject: 465\r\n\r\nimplicit\r\n")
        finally:
            s.quit()
        m = self.inst.wait_log(r"tern/submissions/smtpd\[\d+\]: connect from localhost")
        self.inst.wait_log(r"tern/submissions/smtpd\[\d+\]: Anonymous TLS connection established "
                           r"from localhost\[127\.0\.0\.1\]: TLSv1\.3")
        self.assertTrue(m)

    def test_wrappermode_plain_client_fails_cleanly(self):
        with socket.create_connection(("127.0.0.1", self.subs_port), timeout=5) as sock:
            sock.sendall(b"EHLO client.test\r\n")
            try:
                data = sock.recv(100)
            except ConnectionResetError:
                data = b""
            self.assertFalse(data.startswith(b"220"))
        self.inst.wait_log(r"tern/submissions/smtpd\[\d+\]: SSL_accept error from "
                           r"localhost\[127\.0\.0\.1\]")
        self.inst.wait_log(r"tern/submissions/smtpd\[\d+\]: lost connection after CONNECT")


class CertAndKeyFiles(unittest.TestCase):
    """Postfix's separate certificate and key parameters, RSA and ECDSA."""

    def test_cert_key_and_eccert_eckey(self):
        inst = start("tls-files", smtpd_tls_chain_files="", smtpd_tls_cert_file=pki("rsa.crt"),
                     smtpd_tls_key_file=pki("rsa.key"), smtpd_tls_eccert_file=pki("ecdsa.crt"),
                     smtpd_tls_eckey_file=pki("ecdsa.key"), smtpd_tls_loglevel="0")
        self.addCleanup(inst.cleanup)
        ec = s_client(inst.port, "-sigalgs", "ECDSA+SHA256")
        self.assertIn("Server public key is 256 bit", ec.stdout)
        rsa = s_client(inst.port, "-sigalgs", "rsa_pss_rsae_sha256")
        self.assertIn("Server public key is 2048 bit", rsa.stdout)
        self.assertIn("Verify return code: 0 (ok)", rsa.stdout)
        inst.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=1 starttls=1 quit=1")
        # smtpd_tls_loglevel = 0: failures only.
        self.assertNotIn("TLS connection established", inst.log_text())


class BrokenCertificate(unittest.TestCase):
    """A missing key file: never a crash loop; may keeps serving without
    STARTTLS, encrypt refuses STARTTLS and mail, wrappermode refuses with 421."""

    def test_missing_key(self):
        wrap_port = harness.free_port()
        inst = start("tls-nokey", master_cf_extra=[
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_wrappermode=yes" % wrap_port,
        ], smtpd_tls_chain_files="", smtpd_tls_cert_file=pki("rsa.crt"),
            smtpd_tls_key_file=pki("missing.key"))
        self.addCleanup(inst.cleanup)
        with inst.raw_session() as r:
            r.send("EHLO client.test\r\n")
            code, lines = r.read_reply()
            self.assertEqual(code, 250)
            self.assertNotIn("250-STARTTLS", lines)
            r.send("STARTTLS\r\n")
            self.assertEqual(r.read_reply(),
                             (454, ["454 4.7.0 TLS not available due to local problem"]))
            r.send("MAIL FROM:<a@client.test>\r\n")
            self.assertEqual(r.read_reply()[0], 250)
        inst.wait_log(r"warning: TLS is not available: cannot load the private key from "
                      r"smtpd_tls_key_file .*missing\.key")
        inst.wait_port(wrap_port)
        with socket.create_connection(("127.0.0.1", wrap_port), timeout=5) as sock:
            data = sock.recv(200)
            self.assertTrue(data.startswith(b"421 4.7.0 tern.test Error: TLS not available"), data)
        inst.wait_log(r"connection refused: smtpd_tls_wrappermode needs TLS")
        # Same smtpd processes, no respawning: nothing died.
        self.assertNotRegex(inst.log_text(), r"fatal|killed by signal|throttl")

    def test_missing_key_encrypt(self):
        inst = start("tls-nokey-enc", smtpd_tls_security_level="encrypt",
                     smtpd_tls_chain_files=pki("nonexistent.pem"))
        self.addCleanup(inst.cleanup)
        with inst.raw_session() as r:
            r.send("EHLO client.test\r\nSTARTTLS\r\nMAIL FROM:<a@client.test>\r\n")
            self.assertEqual(r.read_reply()[0], 250)
            self.assertEqual(r.read_reply()[0], 454)
            self.assertEqual(r.read_reply()[0], 530)
        inst.wait_log(r"warning: TLS is not available: cannot open .*nonexistent\.pem")
        inst.wait_log(r"STARTTLS refused: TLS is not available")


class RateLimit(unittest.TestCase):
    def test_new_tls_session_rate_limit(self):
        wrap_port = harness.free_port()
        inst = start("tls-rate", smtpd_client_new_tls_session_rate_limit="2", master_cf_extra=[
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_wrappermode=yes" % wrap_port,
            "  -o smtpd_client_new_tls_session_rate_limit=1"])
        self.addCleanup(inst.cleanup)

        def starttls(source):
            sock = socket.create_connection(("127.0.0.1", inst.port), timeout=10,
                                            source_address=(source, 0))
            r = harness.RawSession.__new__(harness.RawSession)
            r.sock, r.buf = sock, b""
            r.greeting = r.read_reply()
            r.send("EHLO client.test\r\nSTARTTLS\r\n")
            r.read_reply()
            code, lines = r.read_reply()
            if code == 220:
                r.sock = client_context().wrap_socket(r.sock, server_hostname=HOSTNAME)
                r.send("NOOP\r\n")
                r.read_reply()
            r.close()
            return code, lines

        self.assertEqual(starttls("127.0.0.2")[0], 220)
        self.assertEqual(starttls("127.0.0.2")[0], 220)
        time.sleep(0.3)     # anvil counts the second handshake
        self.assertEqual(starttls("127.0.0.2"),
                         (454, ["454 4.7.0 Error: too many new TLS sessions from 127.0.0.2"]))
        inst.wait_log(r"warning: New TLS session rate limit exceeded: 2 from "
                      r"unknown\[127\.0\.0\.2\] for service ")
        # Exempt networks (here 127.0.0.1) are never counted.
        for _ in range(3):
            self.assertEqual(starttls("127.0.0.1")[0], 220)

        # Implicit TLS: over the limit, 421 before any handshake.
        inst.wait_port(wrap_port)
        first = socket.create_connection(("127.0.0.1", wrap_port), timeout=10,
                                         source_address=("127.0.0.3", 0))
        tls = client_context().wrap_socket(first, server_hostname=HOSTNAME)
        self.assertTrue(tls.recv(100).startswith(b"220 "))
        tls.close()
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", wrap_port), timeout=10,
                                      source_address=("127.0.0.3", 0)) as sock:
            self.assertEqual(sock.recv(200), b"421 4.7.0 tern.test Error: too many new TLS "
                                             b"sessions from 127.0.0.3\r\n")


if __name__ == "__main__":
    unittest.main()
