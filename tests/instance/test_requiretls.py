"""test_requiretls.py: whole-instance tests of REQUIRETLS (RFC 8689) and the
TLS-Required header field: smtpd offers and takes REQUIRETLS only in TLS
sessions and keeps it with the message (tern show); the smtp client
delivers such a message only over verified TLS to a server that offers
REQUIRETLS, naming it in MAIL FROM, and otherwise returns it with the
RFC's codes (5.7.10, 5.7.30) without a byte of it reaching the server; the
notice returns the header only and carries REQUIRETLS itself; a message
with "TLS-Required: No" is delivered under opportunistic TLS whatever the
policy, unless it also has REQUIRETLS.

The remote servers are test_tls_client's threaded SMTP servers on
127.0.0.1 with certificates of a test CA made with openssl in a temporary
directory, told here to list REQUIRETLS in their EHLO reply after STARTTLS
or not. Mail reaches them through smtpd (over STARTTLS, with its own
certificate of the same CA) and qmgr with relayhost = [mx.tls.test]:PORT,
a name test_smtp_delivery's DNS server resolves to 127.0.0.1.

Requirements of RFC 8689 and the tests that cover them:
  3 (EHLO keyword only over TLS; MAIL parameter only in a TLS session):
      test_smtpd_offers_requiretls_only_over_tls, unit test_smtpd_parse
  4.1 (the message is tagged and keeps the tag): test_smtpd_offers_...
      (tern show), test_notice_... (the notice is tagged),
      test_aliased_copy_keeps_requiretls
  4.2.1 (verified TLS, REQUIRETLS after STARTTLS, else no delivery and a
      non-delivery notice: 5.7.30 / 5.7.10):
      test_delivered_over_verified_tls_with_requiretls,
      test_server_without_requiretls_bounces_5_7_30,
      test_untrusted_certificate_bounces_5_7_10,
      test_stripped_starttls_bounces_5_7_10,
      test_policy_without_verification_bounces_without_connecting,
      RequireTlsDaneTest (DANE: a host with matching TLSA records gets it,
      a secure host without TLSA records does not)
  4.2.2 (TLS-Required: No; REQUIRETLS wins):
      test_tls_required_no_is_delivered_opportunistically,
      test_tls_required_no_without_starttls_goes_in_clear,
      test_requiretls_wins_over_tls_required_no
  4.4 (final delivery: LMTP into a mailbox store is not held to it):
      test_lmtp_final_delivery_is_not_held
  5 (the notice: header only, itself with REQUIRETLS, not held back when
      the return path does not offer it):
      test_server_without_requiretls_bounces_5_7_30,
      test_notice_of_requiretls_message_carries_requiretls
"""
import os
import re
import shutil
import smtplib
import ssl
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnssec  # noqa: E402
import harness  # noqa: E402
import servers  # noqa: E402
import test_dane  # noqa: E402
import test_lmtp  # noqa: E402
import test_smtp_delivery as tsd  # noqa: E402
import test_tls_client as ttc  # noqa: E402

SENDER = "sender@example.org"
SECRET = "the secret body line"


class _Listen(servers.Server):
    """Puts the address chosen for a RequireTlsServer (host, port) into
    servers.Server, under test_tls_client's server, which names none."""

    def __init__(self, **kwargs):
        super().__init__(host=self.listen_host, port=self.listen_port, **kwargs)


class RequireTlsServer(ttc.RemoteServer, _Listen):
    """test_tls_client's server, which lists REQUIRETLS in its EHLO reply
    once TLS is up when requiretls is true."""

    def __init__(self, requiretls=True, host="127.0.0.1", port=0, **kwargs):
        self.requiretls = requiretls
        self.listen_host, self.listen_port = host, port
        super().__init__(**kwargs)

    def _send(self, state, text):
        if (self.requiretls and isinstance(state["sock"], ssl.SSLSocket)
                and text.startswith("250-remote.tls.test\r\n")):
            text = text.replace("250-remote.tls.test\r\n", "250-remote.tls.test\r\n250-REQUIRETLS\r\n", 1)
        ttc.RemoteServer._send(state, text)

    def mail_commands(self):
        with self.lock:
            return [c for conn in self.connections for c in conn["commands"] if c.upper().startswith("MAIL")]


class RequireTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="tern-rtls-pki-")
        os.chmod(cls.pki, 0o755)
        try:
            ttc.make_pki(cls.pki)
        except Exception:
            shutil.rmtree(cls.pki, ignore_errors=True)
            raise
        cls.dns = tsd.DnsServer()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        shutil.rmtree(cls.pki, ignore_errors=True)

    # ---- helpers ----
    def path(self, name):
        return os.path.join(self.pki, name)

    def server_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.path("mx.pem"), self.path("mx.key"))
        return ctx

    def server(self, starttls=True, requiretls=True):
        srv = RequireTlsServer(requiretls=requiretls, tls_context=self.server_context(), starttls=starttls)
        self.addCleanup(srv.stop)
        return srv

    def instance(self, port, **settings):
        main_cf = dict(ttc.SHORT_TIMEOUTS, relayhost="[mx.tls.test]:%d" % port, smtp_tls_loglevel="1",
                       smtp_dns_servers="127.0.0.1:%d" % self.dns.port, smtp_dns_timeout="2s",
                       smtp_tls_security_level="verify", smtp_tls_CAfile=self.path("ca.pem"),
                       smtpd_tls_security_level="may", smtpd_tls_chain_files="",
                       smtpd_tls_cert_file=self.path("mx.pem"), smtpd_tls_key_file=self.path("mx.key"),
                       mynetworks="127.0.0.1/32")
        main_cf.update(settings)
        inst = harness.Instance("rtls", main_cf=main_cf)
        self.addCleanup(inst.cleanup)
        inst.start()
        self.inst = inst
        return inst

    def client_context(self):
        ctx = ssl.create_default_context(cafile=self.path("ca.pem"))
        ctx.check_hostname = False
        return ctx

    def submit(self, rcpt="b@remote.example", requiretls=True, headers=""):
        """A message through smtpd over STARTTLS, with REQUIRETLS in MAIL
        FROM when asked; its queue ID."""
        body = ("From: %s\r\nTo: %s\r\nSubject: confidential\r\n%s\r\n%s\r\n"
                % (SENDER, rcpt, headers, SECRET)).encode()
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.starttls(context=self.client_context())
            s.ehlo("client.example")
            self.assertEqual(s.has_extn("requiretls"), True)
            code, _ = s.mail(SENDER, ["REQUIRETLS"] if requiretls else [])
            self.assertEqual(code, 250)
            self.assertEqual(s.rcpt(rcpt)[0], 250)
            code, reply = s.data(body)
            self.assertEqual(code, 250, reply)
        return harness.queue_id_of(reply.decode() if isinstance(reply, bytes) else reply)

    def wait_result(self, qid, status, dsn, reason=r"[^)]*", timeout=20):
        return self.inst.wait_log(
            r"%s: to=<b@remote\.example>, relay=\S+, (conn_use=\d+, )?delay=\S+, delays=\S+, "
            r"dsn=%s, status=%s \(%s\)" % (qid, dsn, status, reason), timeout=timeout)

    def notice_id(self, qid, timeout=20):
        return self.inst.wait_log(r"%s: sender non-delivery notification: (\w+)" % qid,
                                  timeout=timeout).group(1)

    def assert_nothing_delivered(self, srv):
        for _, text in srv.messages():
            self.assertNotIn(SECRET, text)

    # ---- smtpd ----
    def test_smtpd_offers_requiretls_only_over_tls(self):
        srv = self.server()
        srv.stop()                      # nothing listens: the message stays queued
        self.instance(srv.port)
        with self.inst.raw_session() as s:
            s.send(b"EHLO client.example\r\n")
            code, lines = s.read_reply()
            self.assertEqual(code, 250)
            self.assertFalse(any("REQUIRETLS" in l for l in lines), lines)
            self.assertIn("250-STARTTLS", lines)
            s.send(b"MAIL FROM:<%s> REQUIRETLS\r\n" % SENDER.encode())
            code, lines = s.read_reply()
            self.assertEqual(code, 530, lines)
            self.assertTrue(lines[0].startswith("530 5.7.10 "), lines)
            # the session goes on: the same MAIL without it is taken
            s.send(b"MAIL FROM:<%s>\r\n" % SENDER.encode())
            self.assertEqual(s.read_reply()[0], 250)
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.starttls(context=self.client_context())
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("requiretls"))
            self.assertEqual(s.docmd("MAIL FROM:<%s> REQUIRETLS=YES" % SENDER)[0], 501)
            self.assertEqual(s.docmd("MAIL FROM:<%s> REQUIRETLS REQUIRETLS" % SENDER)[0], 501)
        qid = self.submit()
        shown = self.inst.tern("show", qid).stdout
        self.assertIn("attribute: requiretls=yes", shown)
        plain = self.submit(requiretls=False)
        self.assertNotIn("requiretls", self.inst.tern("show", plain).stdout)

    def test_requiretls_enable_no_is_not_offered(self):
        srv = self.server()
        self.instance(srv.port, requiretls_enable="no")
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.starttls(context=self.client_context())
            s.ehlo("client.example")
            self.assertFalse(s.has_extn("requiretls"))
            code, text = s.docmd("MAIL FROM:<%s> REQUIRETLS" % SENDER)
            self.assertEqual(code, 555, text)

    def test_smtpd_without_tls_does_not_know_requiretls(self):
        srv = self.server()
        self.instance(srv.port, smtpd_tls_security_level="none")
        with self.inst.raw_session() as s:
            s.send(b"EHLO client.example\r\n")
            code, lines = s.read_reply()
            self.assertFalse(any("REQUIRETLS" in l or "STARTTLS" in l for l in lines), lines)
            s.send(b"MAIL FROM:<%s> REQUIRETLS\r\n" % SENDER.encode())
            code, lines = s.read_reply()
            self.assertEqual(code, 555, lines)

    # ---- the smtp client ----
    def test_delivered_over_verified_tls_with_requiretls(self):
        srv = self.server()
        self.instance(srv.port)
        qid = self.submit()
        [(conn, text)] = srv.wait_messages(1)
        self.assertTrue(conn["tls"])
        self.assertIn(SECRET, text)
        self.wait_result(qid, "sent", r"2\.0\.0")
        [mail] = srv.mail_commands()
        self.assertRegex(mail, r"^MAIL FROM:<%s>.* REQUIRETLS( |$)" % re.escape(SENDER))
        self.inst.wait_log(r"Verified TLS connection established to mx\.tls\.test\[127\.0\.0\.1\]:%d"
                           % srv.port)

    def test_plain_message_is_sent_without_requiretls(self):
        srv = self.server()
        self.instance(srv.port)
        self.submit(requiretls=False)
        srv.wait_messages(1)
        [mail] = srv.mail_commands()
        self.assertNotIn("REQUIRETLS", mail)

    def test_server_without_requiretls_bounces_5_7_30(self):
        """Verified TLS, but no REQUIRETLS after STARTTLS: returned with
        5.7.30 and never sent; the notice (from <>, header only) still goes
        to the sender's server, which does not offer REQUIRETLS either."""
        srv = self.server(requiretls=False)
        self.instance(srv.port)
        qid = self.submit()
        self.wait_result(qid, "bounced", r"5\.7\.30",
                         r"REQUIRETLS support required, but host mx\.tls\.test\[127\.0\.0\.1\] does not "
                         r"offer REQUIRETLS")
        [(_, notice)] = srv.wait_messages(1)
        mails = srv.mail_commands()
        self.assertEqual(len(mails), 1, mails)           # the notice's only
        self.assertTrue(mails[0].startswith("MAIL FROM:<>"), mails)
        self.assertNotIn("REQUIRETLS", mails[0])
        self.assertIn("Subject: confidential", notice)   # the header is returned
        self.assertNotIn(SECRET, notice)                 # the body never is
        self.assertIn("5.7.30", notice)

    def test_notice_of_requiretls_message_carries_requiretls(self):
        """Mail to a local user that does not exist bounces: the notice of
        a REQUIRETLS message is tagged, returns the header only although
        RET=FULL was asked, and goes to the sender's server, which offers
        REQUIRETLS, with REQUIRETLS in MAIL FROM."""
        srv = self.server()
        self.instance(srv.port)
        body = ("From: %s\r\nSubject: confidential\r\n\r\n%s\r\n" % (SENDER, SECRET)).encode()
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.starttls(context=self.client_context())
            s.ehlo("client.example")
            self.assertEqual(s.mail(SENDER, ["REQUIRETLS", "RET=FULL"])[0], 250)
            self.assertEqual(s.rcpt("nosuchuser@tern.test")[0], 250)
            code, reply = s.data(body)
            self.assertEqual(code, 250, reply)
        qid = harness.queue_id_of(reply.decode())
        self.notice_id(qid)
        [(conn, notice)] = srv.wait_messages(1)
        self.assertTrue(conn["tls"])
        self.assertNotIn(SECRET, notice)
        self.assertIn("Subject: confidential", notice)
        [mail] = srv.mail_commands()
        self.assertTrue(mail.startswith("MAIL FROM:<>"), mail)
        self.assertRegex(mail, r" REQUIRETLS( |$)")

    def test_untrusted_certificate_bounces_5_7_10(self):
        srv = self.server()
        self.instance(srv.port, smtp_tls_CAfile="")
        qid = self.submit()
        self.wait_result(qid, "bounced", r"5\.7\.10", r"REQUIRETLS: Server certificate not trusted[^)]*")
        self.assert_nothing_delivered(srv)
        self.assertFalse(any(m.startswith("MAIL FROM:<%s>" % SENDER) for m in srv.mail_commands()))

    def test_stripped_starttls_bounces_5_7_10(self):
        """An attacker removed STARTTLS: nothing goes in clear."""
        srv = self.server(starttls=False)
        self.instance(srv.port)
        qid = self.submit()
        self.wait_result(qid, "bounced", r"5\.7\.10",
                         r"REQUIRETLS: TLS is required, but was not offered by host [^)]*")
        self.assert_nothing_delivered(srv)
        self.assertFalse(any(m.startswith("MAIL FROM:<%s>" % SENDER) for m in srv.mail_commands()))

    def test_policy_without_verification_bounces_without_connecting(self):
        """Level may: no server can be authenticated, so the message is
        returned before any connection; the notice (from <>) is sent."""
        srv = self.server()
        self.instance(srv.port, smtp_tls_security_level="may")
        qid = self.submit()
        self.wait_result(qid, "bounced", r"5\.7\.10",
                         r"REQUIRETLS: TLS security level may for \S+ does not authenticate the server")
        [(_, notice)] = srv.wait_messages(1)
        self.assertNotIn(SECRET, notice)
        mails = srv.mail_commands()
        self.assertEqual(len(mails), 1, mails)
        self.assertTrue(mails[0].startswith("MAIL FROM:<>"), mails)

    # ---- final delivery ----
    def test_lmtp_final_delivery_is_not_held(self):
        """LMTP into a mailbox store is final delivery (section 4.4): the
        message goes, over a session without TLS."""
        lmtp = test_lmtp.FakeLmtp()
        self.addCleanup(lmtp.stop)
        srv = self.server()
        self.instance(srv.port, local_transport="lmtp:inet:127.0.0.1:%d" % lmtp.port)
        qid = self.submit(rcpt="user@tern.test")
        self.inst.wait_log(r"%s: to=<user@tern\.test>, relay=\S+, .*dsn=2\.0\.0, status=sent" % qid,
                           timeout=20)
        self.assertEqual(len(lmtp.messages), 1)
        self.assertNotIn("REQUIRETLS", lmtp.messages[0][0])

    def test_aliased_copy_keeps_requiretls(self):
        """An alias to a remote address: local submits a new message for it,
        tagged as the original was (section 4.1), so it too goes out with
        REQUIRETLS."""
        srv = self.server()
        self.instance(srv.port, alias_maps="inline:{ fwd=b@remote.example }")
        qid = self.submit(rcpt="fwd@tern.test")
        m = self.inst.wait_log(r"%s: to=<b@remote\.example>, orig_to=<fwd@tern\.test>, relay=local, "
                               r".*status=sent \(forwarded as (\w+)\)" % qid, timeout=20)
        [(conn, text)] = srv.wait_messages(1)
        self.assertIn(SECRET, text)
        [mail] = srv.mail_commands()
        self.assertRegex(mail, r"^MAIL FROM:<%s>.* REQUIRETLS( |$)" % re.escape(SENDER))
        self.inst.wait_log(r"%s: to=<b@remote\.example>, relay=\S+, .*status=sent" % m.group(1))

    # ---- TLS-Required: No ----
    def test_tls_required_no_is_delivered_opportunistically(self):
        """Level verify with a certificate we cannot verify: a message with
        TLS-Required: No goes anyway, over (unverified) TLS."""
        srv = self.server()
        self.instance(srv.port, smtp_tls_CAfile="")
        qid = self.submit(requiretls=False, headers="TLS-Required: No\r\n")
        [(conn, text)] = srv.wait_messages(1)
        self.assertTrue(conn["tls"])
        self.assertIn(SECRET, text)
        self.wait_result(qid, "sent", r"2\.0\.0")
        self.inst.wait_log(r"%s: TLS-Required: No: TLS policy verify for \S+ lowered to may" % qid)

    def test_tls_required_no_without_starttls_goes_in_clear(self):
        srv = self.server(starttls=False)
        self.instance(srv.port)
        qid = self.submit(requiretls=False, headers="TLS-Required: No\r\n")
        [(conn, text)] = srv.wait_messages(1)
        self.assertIsNone(conn["tls"])
        self.wait_result(qid, "sent", r"2\.0\.0")

    def test_without_tls_required_no_the_policy_holds(self):
        srv = self.server(starttls=False)
        self.instance(srv.port)
        qid = self.submit(requiretls=False)
        self.wait_result(qid, "deferred", r"4\.7\.4")
        self.assertEqual(srv.messages(), [])

    def test_requiretls_wins_over_tls_required_no(self):
        srv = self.server(requiretls=False)
        self.instance(srv.port, smtp_tls_CAfile="")
        qid = self.submit(headers="TLS-Required: No\r\n")
        self.wait_result(qid, "bounced", r"5\.7\.10")
        self.assert_nothing_delivered(srv)
        self.assertNotIn("lowered to may", self.inst.log_text())


DANE_ADDR = "127.0.0.31"
DANE_PORT = harness.free_port()


@unittest.skipIf(dnssec.available(), dnssec.available())
class RequireTlsDaneTest(unittest.TestCase):
    """Level dane: a secure MX host with TLSA records matching its key
    authenticates the server for REQUIRETLS; a secure MX host without TLSA
    records (opportunistic TLS for other mail) does not. The DNS is
    test_dane's: a zone signed by the test, nsd and a validating unbound."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-rtls-dane-")
        os.chmod(cls.tmp, 0o755)
        cls.dns, cls.srv = None, None
        try:
            d = cls.tmp
            test_dane.make_pki(d)
            ee = test_dane.spki_sha256(d, "ee.pem")
            cls.dns = dnssec.Setup(d, {"rtls.test": (True, [
                "tlsa MX 10 mx-tlsa", "mx-tlsa A " + DANE_ADDR,
                "_%d._tcp.mx-tlsa TLSA 3 1 1 %s" % (DANE_PORT, ee),
                "notlsa MX 10 mx-notlsa", "mx-notlsa A " + DANE_ADDR])})
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(d, "ee.pem"), os.path.join(d, "ee.key"))
            cls.srv = RequireTlsServer(tls_context=ctx, host=DANE_ADDR, port=DANE_PORT)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.srv:
            cls.srv.stop()
        if cls.dns:
            cls.dns.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        d = self.tmp
        self.inst = harness.Instance("rtlsdane", main_cf=dict(
            ttc.SHORT_TIMEOUTS, smtp_dns_servers="127.0.0.1:%d" % self.dns.port, smtp_dns_timeout="5s",
            smtp_dns_support_level="dnssec", smtp_tcp_port=str(DANE_PORT),
            smtp_tls_security_level="dane", smtp_tls_loglevel="1",
            smtpd_tls_security_level="may", smtpd_tls_chain_files="",
            smtpd_tls_cert_file=os.path.join(d, "ee.pem"), smtpd_tls_key_file=os.path.join(d, "ee.key"),
            mynetworks="127.0.0.1/32"))
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def submit(self, rcpt, subject):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.starttls(context=ctx)
            s.ehlo("client.example")
            self.assertEqual(s.mail(SENDER, ["REQUIRETLS"])[0], 250)
            self.assertEqual(s.rcpt(rcpt)[0], 250)
            code, reply = s.data(("Subject: %s\r\n\r\n%s\r\n" % (subject, SECRET)).encode())
            self.assertEqual(code, 250, reply)
        return harness.queue_id_of(reply)

    def with_subject(self, subject):
        return [(c, m) for c, m in self.srv.messages() if "Subject: %s" % subject in m]

    def test_tlsa_authenticated_server_gets_it(self):
        qid = self.submit("user@tlsa.rtls.test", "dane-rtls")
        self.inst.wait_log(r"%s: to=<user@tlsa\.rtls\.test>, .*dsn=2\.0\.0, status=sent" % qid, timeout=30)
        [(conn, _)] = self.with_subject("dane-rtls")
        self.assertTrue(conn["tls"])
        self.assertTrue(any(re.match(r"MAIL FROM:<%s>.* REQUIRETLS" % re.escape(SENDER), c)
                            for c in conn["commands"]), conn["commands"])
        self.inst.wait_log(r"Verified TLS connection established to mx-tlsa\.rtls\.test")

    def test_host_without_tlsa_bounces_5_7_10(self):
        qid = self.submit("user@notlsa.rtls.test", "dane-notlsa")
        self.inst.wait_log(r"%s: to=<user@notlsa\.rtls\.test>, .*dsn=5\.7\.10, status=bounced "
                           r"\(REQUIRETLS: host mx-notlsa\.rtls\.test has no DANE TLSA records" % qid,
                           timeout=30)
        self.assertEqual(self.with_subject("dane-notlsa"), [])


if __name__ == "__main__":
    unittest.main()
