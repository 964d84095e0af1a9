"""test_tls_certs.py: whole-instance tests of TLS client certificates with
Postfix's parameters and meaning: smtpd asking for them
(smtpd_tls_ask_ccert, smtpd_tls_CAfile) and requiring them
(smtpd_tls_req_ccert, only where TLS is enforced); the log lines
("Trusted"/"Untrusted"/"Anonymous TLS connection established",
"subject_CN=..., issuer=..., fingerprint=..., pkey_fingerprint=...") and the
Received: header; the relay restrictions permit_tls_clientcerts
(relay_clientcerts), permit_tls_all_clientcerts and check_ccert_access; the
smtp client presenting its certificate (smtp_tls_cert_file,
smtp_tls_chain_files) to a server that requires one; smtpd serving a
replaced certificate, and trusting a replaced CA file, without a reload;
and `tern check` about certificates that expire soon or have expired.

Every certificate is made by the test with the openssl command in a
temporary directory: a test CA with a server certificate for tern.test
and two client certificates, a second CA with a client certificate of its
own, two self-signed certificates, an expired certificate of the test CA
(through `openssl ca`, which can back-date) and one that expires in ten
days. Clients are Python's smtplib with an ssl context that presents the
certificate under test.
"""
import hashlib
import os
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
import test_policy  # noqa: E402
import test_tls_client as ttc  # noqa: E402

HOSTNAME = "tern.test"
PKI = None
RELAY_RCPT = "user@remote.example"
DENIED = "Relay access denied"


def openssl(*args, stdin=None):
    r = subprocess.run(["openssl"] + list(args), cwd=PKI, capture_output=True, input=stdin,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def pki(name):
    return os.path.join(PKI, name)


def make_ca(name, cn):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + cn,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_cert(name, cn, ca="ca", server=False, days="2"):
    """NAME.key and NAME.crt signed by CA (key readable by root only)."""
    with open(pki(name + ".ext"), "w") as f:
        if server:
            f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % cn)
        else:
            f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", days, "-out", name + ".crt", "-extfile", name + ".ext")
    os.chmod(pki(name + ".key"), 0o600)


def make_self_signed(name, cn):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + cn)


def make_expired(name, cn):
    """A client certificate of the test CA valid for one day in 2020."""
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
    with open(pki("index.txt"), "w"):
        pass
    with open(pki("serial"), "w") as f:
        f.write("1000\n")
    with open(pki("ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
                "serial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n"
                "[p]\ncommonName = supplied\n")
    openssl("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.crt", "-keyfile", "ca.key",
            "-in", name + ".csr", "-out", name + ".crt", "-notext",
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")


def colon_hex(digest):
    return ":".join("%02X" % b for b in digest)


def fingerprint(name):
    """sha256 fingerprint of NAME.crt's DER form, as Postfix writes it."""
    with open(pki(name + ".crt")) as f:
        return colon_hex(hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).digest())


def pkey_fingerprint(name):
    """sha256 fingerprint of NAME.crt's public key (DER SubjectPublicKeyInfo)."""
    pem = openssl("x509", "-in", name + ".crt", "-noout", "-pubkey")
    der = openssl("pkey", "-pubin", "-outform", "DER", stdin=pem)
    return colon_hex(hashlib.sha256(der).digest())


def setUpModule():
    global PKI
    PKI = tempfile.mkdtemp(prefix="tern-ccert-pki-", dir="/tmp")
    os.chmod(PKI, 0o755)
    try:
        make_ca("ca", "Tern Test CA")
        make_ca("otherca", "Other Test CA")
        make_cert("server", HOSTNAME, server=True)
        make_cert("server2", HOSTNAME, server=True)     # the replacement, for the reload
        make_cert("client", "client.test")
        make_cert("client2", "client2.test")
        make_cert("foreign", "foreign.test", ca="otherca")
        make_self_signed("self", "self.test")
        make_self_signed("self2", "self2.test")
        make_expired("expired", "expired.test")
        make_cert("soon", "soon.test", days="10")
        make_cert("fresh", "fresh.test", days="400")
    except Exception:
        shutil.rmtree(PKI, ignore_errors=True)
        raise


def tearDownModule():
    shutil.rmtree(PKI, ignore_errors=True)


def client_context(cert=None):
    ctx = ssl.create_default_context(cafile=pki("ca.crt"))
    if cert:
        ctx.load_cert_chain(pki(cert + ".crt"), pki(cert + ".key"))
    return ctx


def tls_session(port, cert=None):
    """smtplib.SMTP after STARTTLS (verifying tern.test) presenting NAME.crt,
    and EHLO again."""
    s = smtplib.SMTP(timeout=10)
    s._host = HOSTNAME
    s.connect("127.0.0.1", port)
    try:
        s.ehlo("client.test")
        s.starttls(context=client_context(cert))
        s.ehlo("client.test")
    except Exception:
        s.close()
        raise
    return s


def rcpt(port, cert, address=RELAY_RCPT):
    """(code, text) of RCPT TO:<address> in a TLS session presenting cert."""
    s = tls_session(port, cert)
    try:
        code, _ = s.mail("sender@client.test")
        assert code == 250, code
        code, text = s.rcpt(address)
        return code, text.decode()
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            s.close()


def served_certificate(port):
    """The DER certificate smtpd presents after STARTTLS."""
    s = tls_session(port)
    try:
        return s.sock.getpeercert(binary_form=True)
    finally:
        s.quit()


def der(name):
    with open(pki(name + ".crt")) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def base_settings(**extra):
    settings = {
        "smtpd_tls_security_level": "may",
        "smtpd_tls_cert_file": pki("server.crt"),
        "smtpd_tls_key_file": pki("server.key"),
        "smtpd_tls_ask_ccert": "yes",
        "smtpd_tls_CAfile": pki("ca.crt"),
        "local_transport": "stall",
        "default_transport": "stall",
        "mynetworks": "127.0.0.2/32",        # the test's own address is not trusted
        "smtpd_client_event_limit_exceptions": "127.0.0.1/32",
    }
    settings.update(extra)
    return settings


class ClientCertificates(unittest.TestCase):
    """One instance with smtpd_tls_ask_ccert; its main port relays for
    certificates listed in relay_clientcerts, other ports for any trusted
    certificate, for check_ccert_access, and with smtpd_tls_req_ccert."""

    @classmethod
    def setUpClass(cls):
        table = os.path.join(PKI, "relay_ccerts")
        with open(table, "w") as f:
            f.write("%s client.test\n" % fingerprint("client"))
            f.write("%s self.test by its public key\n" % pkey_fingerprint("self"))
        access = os.path.join(PKI, "ccert_access")
        with open(access, "w") as f:
            f.write("%s OK\n" % fingerprint("client"))
            f.write("%s REJECT go away\n" % fingerprint("foreign"))
        cls.policy = test_policy.PolicyServer(socket.AF_INET)
        cls.all_port, cls.check_port = harness.free_port(), harness.free_port()
        cls.req_port, cls.reqmay_port = harness.free_port(), harness.free_port()
        cls.inst = harness.Instance("ccert", main_cf=base_settings(
            relay_clientcerts="texthash:" + table,
            smtpd_relay_restrictions="permit_mynetworks, permit_tls_clientcerts, "
                                     "reject_unauth_destination",
            smtpd_recipient_restrictions="check_policy_service inet:" + cls.policy.address),
            master_cf_extra=[
                "127.0.0.1:%d inet n - n - - smtpd -o smtpd_relay_restrictions="
                "permit_tls_all_clientcerts,reject_unauth_destination" % cls.all_port,
                "127.0.0.1:%d inet n - n - - smtpd -o smtpd_relay_restrictions="
                "check_ccert_access,texthash:%s,reject_unauth_destination" % (cls.check_port, access),
                "127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_security_level=encrypt "
                "-o smtpd_tls_req_ccert=yes -o syslog_name=tern/req" % cls.req_port,
                "127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_req_ccert=yes "
                "-o syslog_name=tern/reqmay" % cls.reqmay_port,
            ])
        cls.inst.stall_transport("stall")
        cls.inst.start()
        for port in (cls.all_port, cls.check_port, cls.req_port, cls.reqmay_port):
            cls.inst.wait_port(port)

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()
        cls.policy.stop()

    def test_listed_certificate_relays_and_is_logged_as_trusted(self):
        code, text = rcpt(self.inst.port, "client")
        self.assertEqual(code, 250, text)
        self.inst.wait_log(r"smtpd\[\d+\]: localhost\[127\.0\.0\.1\]: Trusted: subject_CN=client\.test, "
                           r"issuer=Tern Test CA, fingerprint=%s, pkey_fingerprint=%s"
                           % (fingerprint("client"), pkey_fingerprint("client")))
        self.inst.wait_log(r"smtpd\[\d+\]: Trusted TLS connection established from "
                           r"localhost\[127\.0\.0\.1\]: TLSv1\.3 with cipher \S+ \(\d+/\d+ bits\)")

    def test_unlisted_trusted_certificate_is_refused(self):
        code, text = rcpt(self.inst.port, "client2")
        self.assertEqual(code, 554, text)
        self.assertIn(DENIED, text)
        self.inst.wait_log(r"Trusted: subject_CN=client2\.test, issuer=Tern Test CA, fingerprint=%s"
                           % fingerprint("client2"))

    def test_certificate_of_another_ca_is_untrusted_and_refused(self):
        code, text = rcpt(self.inst.port, "foreign")
        self.assertEqual(code, 554, text)
        self.assertIn(DENIED, text)
        self.inst.wait_log(r"localhost\[127\.0\.0\.1\]: Untrusted: subject_CN=foreign\.test, "
                           r"issuer=Other Test CA, fingerprint=%s" % fingerprint("foreign"))
        self.inst.wait_log(r"Untrusted TLS connection established from localhost\[127\.0\.0\.1\]")
        self.inst.wait_log(r"localhost\[127\.0\.0\.1\]: client certificate verification failed: "
                           r"num=\d+:unable to (get local issuer certificate|verify the first certificate)")

    def test_self_signed_certificate_unlisted_is_refused(self):
        code, text = rcpt(self.inst.port, "self2")
        self.assertEqual(code, 554, text)
        self.assertIn(DENIED, text)

    def test_self_signed_certificate_listed_by_public_key_relays(self):
        # Postfix's rule: a fingerprint in relay_clientcerts is trust enough,
        # the issuer need not be trusted (pinning).
        code, text = rcpt(self.inst.port, "self")
        self.assertEqual(code, 250, text)
        self.inst.wait_log(r"Untrusted: subject_CN=self\.test, issuer=self\.test, fingerprint=%s, "
                           r"pkey_fingerprint=%s" % (fingerprint("self"), pkey_fingerprint("self")))

    def test_expired_certificate_is_untrusted(self):
        code, text = rcpt(self.inst.port, "expired")
        self.assertEqual(code, 554, text)
        self.inst.wait_log(r"client certificate verification failed: num=\d+:certificate has expired")
        self.assertEqual(rcpt(self.all_port, "expired")[0], 554)

    def test_no_certificate_is_anonymous_and_refused(self):
        code, text = rcpt(self.inst.port, None)
        self.assertEqual(code, 554, text)
        self.assertIn(DENIED, text)
        self.inst.wait_log(r"Anonymous TLS connection established from localhost\[127\.0\.0\.1\]")

    def test_without_tls_no_relay(self):
        with self.inst.raw_session() as r:
            r.send(b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n")
            r.read_reply()
            r.read_reply()
            r.send(("RCPT TO:<%s>\r\n" % RELAY_RCPT).encode())
            code, lines = r.read_reply()
            self.assertEqual(code, 554, lines)

    def test_permit_tls_all_clientcerts_takes_every_trusted_certificate_only(self):
        for cert in ("client", "client2"):
            self.assertEqual(rcpt(self.all_port, cert)[0], 250, cert)
        for cert in ("foreign", "self", "expired", None):
            code, text = rcpt(self.all_port, cert)
            self.assertEqual(code, 554, (cert, text))
            self.assertIn(DENIED, text)

    def test_check_ccert_access(self):
        self.assertEqual(rcpt(self.check_port, "client")[0], 250)
        code, text = rcpt(self.check_port, "foreign")
        self.assertEqual(code, 554, text)
        self.assertIn("<localhost[127.0.0.1]>: Client certificate rejected: go away", text)
        code, text = rcpt(self.check_port, "client2")
        self.assertEqual(code, 554, text)
        self.assertIn(DENIED, text)

    def wait_message(self, sender):
        deadline = time.time() + 10
        while time.time() < deadline:
            for sub in ("active", "incoming"):
                for q in map(harness.read_queue_file, self.inst.queue_files(sub)):
                    if q["sender"] == sender and q["complete"]:
                        return q["content"].decode().split("\n\n", 1)[0]
            time.sleep(0.1)
        raise AssertionError("no message from %s; log:\n%s" % (sender, self.inst.log_tail()))

    def test_received_header_names_the_client_certificate(self):
        cases = [("client", '(Client CN "client.test", Issuer "Tern Test CA" (verified OK))'),
                 ("foreign", '(Client CN "foreign.test", Issuer "Other Test CA" (not verified))'),
                 (None, "(Client did not present a certificate)")]
        for cert, comment in cases:
            sender = "rcvd-%s@client.test" % (cert or "none")
            s = tls_session(self.inst.port, cert)
            try:
                s.sendmail(sender, ["bob@tern.test"], "Subject: ccert\r\n\r\nhello\r\n")
            finally:
                s.quit()
            header = self.wait_message(sender)
            self.assertIn("\n\t%s\n\tby tern.test (Tern) with ESMTPS id " % comment, header)

    def test_policy_service_gets_the_certificate(self):
        # as Postfix: the names of a trusted certificate, the fingerprints of any
        want = {
            "client": ("client.test", "Tern Test CA", fingerprint("client"), pkey_fingerprint("client")),
            "foreign": ("", "", fingerprint("foreign"), pkey_fingerprint("foreign")),
            None: ("", "", "", ""),
        }
        for cert, (subject, issuer, fp, pfp) in want.items():
            rcpt_addr = "policy-%s@tern.test" % (cert or "none")
            self.assertEqual(rcpt(self.inst.port, cert, rcpt_addr)[0], 250)
            [req] = [r for r in self.policy.requests if r.get("recipient") == rcpt_addr]
            self.assertEqual((req["ccert_subject"], req["ccert_issuer"], req["ccert_fingerprint"],
                              req["ccert_pubkey_fingerprint"]), (subject, issuer, fp, pfp), cert)

    def test_req_ccert_refuses_a_client_without_a_trusted_certificate(self):
        for cert in (None, "foreign", "self"):
            with self.assertRaises((ssl.SSLError, smtplib.SMTPServerDisconnected, OSError),
                                   msg=cert):
                rcpt(self.req_port, cert, "bob@tern.test")
        self.inst.wait_log(r"tern/req/smtpd\[\d+\]: SSL_accept error from localhost\[127\.0\.0\.1\]: "
                           r".*peer did not return a certificate")
        self.inst.wait_log(r"tern/req/smtpd\[\d+\]: SSL_accept error from localhost\[127\.0\.0\.1\]: "
                           r".*certificate verify failed")
        # encrypt level: nothing before STARTTLS either
        with self.inst.raw_session(port=self.req_port) as r:
            r.send(b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n")
            r.read_reply()
            self.assertEqual(r.read_reply()[0], 530)
        code, text = rcpt(self.req_port, "client", "bob@tern.test")
        self.assertEqual(code, 250, text)
        self.inst.wait_log(r"tern/req/smtpd\[\d+\]: Trusted TLS connection established")

    def test_req_ccert_needs_enforced_tls(self):
        # At level may the setting is ignored with Postfix's warning.
        code, text = rcpt(self.reqmay_port, None, "bob@tern.test")
        self.assertEqual(code, 250, text)
        self.inst.wait_log(r"tern/reqmay/smtpd\[\d+\]: warning: Can't require client certs unless "
                           r"TLS is required")


class CertificateReload(unittest.TestCase):
    """smtpd serves a replaced certificate, and trusts a replaced CA file,
    without `tern reload`: the process that notices the change finishes
    its sessions and master's next one reads the files as root."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tern-ccert-reload-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.dir, True)
        for src, dst in (("server.crt", "cert.pem"), ("server.key", "key.pem"), ("ca.crt", "ca.pem")):
            shutil.copy(pki(src), os.path.join(self.dir, dst))
        os.chmod(os.path.join(self.dir, "key.pem"), 0o600)
        self.inst = harness.Instance("ccert-reload", main_cf=base_settings(
            smtpd_tls_cert_file=os.path.join(self.dir, "cert.pem"),
            smtpd_tls_key_file=os.path.join(self.dir, "key.pem"),
            smtpd_tls_CAfile=os.path.join(self.dir, "ca.pem"),
            smtpd_relay_restrictions="permit_tls_all_clientcerts, reject_unauth_destination"))
        self.addCleanup(self.inst.cleanup)
        self.inst.stall_transport("stall")
        self.inst.start()

    def replace(self, name, *sources, mode=0o644):
        """Write the sources' concatenation to NAME under a temporary name
        and rename it over NAME, as certificate renewal tools do."""
        tmp = os.path.join(self.dir, "." + name)
        with open(tmp, "wb") as out:
            for src in sources:
                with open(pki(src), "rb") as f:
                    out.write(f.read())
        os.chmod(tmp, mode)
        os.replace(tmp, os.path.join(self.dir, name))

    def wait_served(self, want, timeout=15):
        deadline = time.time() + timeout
        while True:
            got = served_certificate(self.inst.port)
            if got == want or time.time() > deadline:
                return got
            time.sleep(0.3)

    def test_replaced_certificate_and_key_are_served_without_reload(self):
        master = self.inst.master_pid()
        self.assertEqual(served_certificate(self.inst.port), der("server"))
        self.replace("key.pem", "server2.key", mode=0o600)
        self.replace("cert.pem", "server2.crt")
        time.sleep(1.2)         # files are looked at once a second
        self.assertEqual(self.wait_served(der("server2")), der("server2"))
        self.inst.wait_log(r"smtpd\[\d+\]: smtpd_tls_(cert|key)_file %s/(cert|key)\.pem has changed: "
                           r"restarting to read it again" % self.dir)
        self.assertEqual(self.inst.master_pid(), master)
        # and the sessions go on as before with the new certificate
        self.assertEqual(self.wait_served(der("server2")), der("server2"))

    def test_symbolic_link_pointed_at_a_renewed_certificate(self):
        # as certbot renews: live/cert.pem is a link, re-pointed at a new
        # file, while the old file stays as it was; the directory is
        # root's only (mode 0700), as certbot's are
        for name, src in (("old.crt", "server.crt"), ("old.key", "server.key"),
                          ("new.crt", "server2.crt"), ("new.key", "server2.key")):
            shutil.copy(pki(src), os.path.join(self.dir, name))
        cert, key = os.path.join(self.dir, "link.crt"), os.path.join(self.dir, "link.key")
        os.symlink("old.crt", cert)
        os.symlink("old.key", key)
        self.inst.stop()
        self.inst.set_main_cf({"smtpd_tls_cert_file": cert, "smtpd_tls_key_file": key})
        self.inst.start()
        self.assertEqual(served_certificate(self.inst.port), der("server"))
        for link, target in ((key, "new.key"), (cert, "new.crt")):
            os.symlink(target, link + ".tmp")
            os.replace(link + ".tmp", link)
        time.sleep(1.2)
        self.assertEqual(self.wait_served(der("server2")), der("server2"))
        self.inst.wait_log(r"smtpd_tls_(cert|key)_file %s/link\.(crt|key) has changed" % self.dir)

    def test_replaced_ca_file_is_trusted_without_reload(self):
        code, text = rcpt(self.inst.port, "foreign")
        self.assertEqual(code, 554, text)
        self.replace("ca.pem", "ca.crt", "otherca.crt")
        time.sleep(1.2)
        deadline = time.time() + 15
        while True:
            code, text = rcpt(self.inst.port, "foreign")
            if code == 250 or time.time() > deadline:
                break
            time.sleep(0.3)
        self.assertEqual(code, 250, text)
        self.inst.wait_log(r"smtpd_tls_CAfile %s/ca\.pem has changed" % self.dir)
        self.inst.wait_log(r"Trusted: subject_CN=foreign\.test, issuer=Other Test CA")


class SmtpClientCertificate(unittest.TestCase):
    """The smtp client presents its certificate to a server that requires
    one (Python's ssl with CERT_REQUIRED and the test CA)."""

    def server(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki("server.crt"), pki("server.key"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki("ca.crt"))
        presented = []
        wrap = ctx.wrap_socket

        def recording_wrap(sock, **kwargs):
            tls = wrap(sock, **kwargs)
            presented.append(tls.getpeercert(binary_form=True))
            return tls
        ctx.wrap_socket = recording_wrap
        srv = ttc.RemoteServer(tls_context=ctx)
        self.addCleanup(srv.stop)
        return srv, presented

    def deliver(self, **settings):
        srv, presented = self.server()
        inst = harness.Instance("ccert-smtp", main_cf=dict(
            ttc.SHORT_TIMEOUTS, relayhost="[127.0.0.1]:%d" % srv.port, smtp_tls_loglevel="1",
            **settings))
        self.addCleanup(inst.cleanup)
        inst.start()
        with inst.smtp() as s:
            s.sendmail("sender@example.org", ["b@remote.example"], "Subject: cert\r\n\r\nbody\r\n")
        return inst, srv, presented

    def test_cert_file_and_key_file(self):
        inst, srv, presented = self.deliver(smtp_tls_cert_file=pki("client.crt"),
                                            smtp_tls_key_file=pki("client.key"))
        [(conn, _)] = srv.wait_messages(1)
        self.assertTrue(conn["tls"])
        self.assertEqual(conn["client_cn"], "client.test")
        self.assertEqual(presented, [der("client")])
        inst.wait_log(ttc.log_result("b@remote.example", "sent", port=srv.port))

    def test_chain_files(self):
        chain = os.path.join(PKI, "client-chain.pem")
        with open(chain, "wb") as out:
            for part in ("client2.key", "client2.crt"):
                with open(pki(part), "rb") as f:
                    out.write(f.read())
        os.chmod(chain, 0o600)
        inst, srv, presented = self.deliver(smtp_tls_chain_files=chain)
        [(conn, _)] = srv.wait_messages(1)
        self.assertEqual(conn["client_cn"], "client2.test")
        self.assertEqual(presented, [der("client2")])

    def test_without_a_certificate_the_server_refuses_and_mail_waits(self):
        inst, srv, presented = self.deliver(smtp_tls_security_level="encrypt")
        inst.wait_log(r"to=<b@remote\.example>, relay=\S+, .*status=deferred", timeout=20)
        self.assertEqual(srv.messages(), [])
        self.assertEqual(presented, [])


class TernCheckExpiry(unittest.TestCase):
    """`tern check`: a certificate that expires within 30 days is a
    warning, an expired one an error."""

    def check(self, master_cf_extra=None, **settings):
        inst = harness.Instance("ccert-check", main_cf=settings, master_cf_extra=master_cf_extra)
        self.addCleanup(inst.cleanup)
        self.inst = inst
        return inst.tern("check", check=False)

    def test_service_with_a_certificate_of_its_own(self):
        port = harness.free_port()
        r = self.check(master_cf_extra=[
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_cert_file=%s -o smtpd_tls_key_file=%s"
            % (port, pki("soon.crt"), pki("soon.key")),
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_cert_file=$smtp_tls_cert_file"
            % harness.free_port()])
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r"tern: warning: %s/master\.cf:\d+: service 127\.0\.0\.1:%d: "
                                   r"smtpd_tls_cert_file %s: certificate \"soon\.test\" expires on "
                                   % (self.inst.dir, port, pki("soon.crt")))
        self.assertEqual(r.stdout.count("certificate"), 1, r.stdout)

    def test_soon_and_expired(self):
        r = self.check(smtpd_tls_cert_file=pki("soon.crt"), smtpd_tls_key_file=pki("soon.key"),
                       smtp_tls_cert_file=pki("expired.crt"), smtp_tls_key_file=pki("expired.key"))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stdout, r"tern: warning: smtpd_tls_cert_file %s: certificate \"soon\.test\" "
                                   r"expires on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in (9|10) days\): "
                                   r"renew it" % pki("soon.crt"))
        self.assertIn("tern: error: smtp_tls_cert_file %s: certificate \"expired.test\" expired on "
                      "2020-01-02 00:00:00 UTC" % pki("expired.crt"), r.stdout)

    def test_chain_files_count_every_certificate_of_the_chain(self):
        # fresh.crt is good for 400 days, but the test CA after it in the
        # same file for two only: the file's certificate that expires first
        # is the one reported
        chain = os.path.join(PKI, "fresh-chain.pem")
        with open(chain, "wb") as out:
            for part in ("fresh.key", "fresh.crt", "ca.crt"):
                with open(pki(part), "rb") as f:
                    out.write(f.read())
        r = self.check(smtpd_tls_chain_files="%s, %s" % (pki("fresh.crt"), chain),
                       smtpd_tls_cert_file=pki("expired.crt"))      # replaced by the chain files
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r"tern: warning: smtpd_tls_chain_files %s: certificate "
                                   r"\"Tern Test CA\" expires on .* \(in [0-9] days?\)" % chain)
        self.assertNotIn(pki("fresh.crt"), r.stdout)
        self.assertNotIn("expired", r.stdout)

    def test_fresh_certificate_is_quiet(self):
        r = self.check(smtpd_tls_cert_file=pki("fresh.crt"), smtpd_tls_key_file=pki("fresh.key"))
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertNotIn("certificate", r.stdout)


if __name__ == "__main__":
    unittest.main()
