"""test_dane.py: whole-instance tests of DNSSEC-aware lookups and DANE
(RFC 7672) in the smtp client: smtp_dns_support_level = dnssec,
smtp_tls_security_level = dane, and dane-only from smtp_tls_policy_maps.

The DNS is real: zones made by the test, two of them signed with keys made
by the test (ldns-keygen, ldns-signzone), served by nsd and resolved by a
validating unbound whose trust anchors are those keys (dnssec.py); the
TLSA records are computed from certificates the test makes with openssl.
The remote MX hosts are aiosmtpd servers on 127.0.0.21-23 (one port,
smtp_tcp_port): one with a self-signed certificate (DANE-EE), one with a
chain from the test's CA (DANE-TA), one without STARTTLS. Mail goes in
through smtpd; the tests check what each server received, whether over
TLS, the delivery log lines and, for mail that must wait, `tern why`.

RFC 7672 requirements and the tests that cover them:
  2.2   secure MX and addresses -> TLSA lookup; DANE-EE SPKI SHA2-256 and
        cert SHA2-512 match       test_dane_ee_spki_sha256, test_dane_ee_cert_sha512
  3.1.2 DANE-TA with name checks  test_dane_ta_spki, test_dane_ta_name_mismatch_defers
  3.1.3 PKIX-* usages unusable -> TLS without authentication  test_pkix_usage_means_encrypt
  2.2   TLSA not matching -> not delivered  test_tlsa_mismatch_defers
  2.2.2 CNAME'd MX host: TLSA at the chain's end first, then at the alias
                                  test_cname_mx_host_tlsa_at_target_first, test_cname_mx_host_tlsa_at_alias
  2.2.1 a failed address lookup does not make a host insecure
                                  test_failed_aaaa_lookup_keeps_dane
  2.2   TLSA present, STARTTLS stripped -> never in clear  test_starttls_stripped_defers
  2.2.1 bogus TLSA (validation failure) -> defer  test_bogus_tlsa_defers
  2.2   insecure zone (its TLSA ignored) -> opportunistic  test_insecure_zone_opportunistic
  2.2   secure, no TLSA -> opportunistic; dane-only -> defer
                                  test_secure_without_tlsa_opportunistic, test_dane_only_without_tlsa_defers
  (Postfix) dane without smtp_dns_support_level = dnssec is may
                                  test_without_dnssec_dane_is_may
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnssec  # noqa: E402
import harness  # noqa: E402
import tlsmail  # noqa: E402
from tlsmail import cert_sha512, openssl, spki_sha256  # noqa: E402


PORT = harness.free_port()      # smtp_tcp_port: every remote server listens here
EE_ADDR, TA_ADDR, PLAIN_ADDR = "127.0.0.21", "127.0.0.22", "127.0.0.23"


def make_pki(d):
    """ee.pem: self-signed (DANE-EE); ca.pem and ta.pem (signed by it, with
    ta-chain.pem = ta.pem + ca.pem, as a DANE-TA server must send); other.pem:
    a key no server uses."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ee.key", "-out", "ee.pem", "-days", "2",
            "-subj", "/CN=not-the-mx-name.example", cwd=d)
    openssl("req", "-x509", *ec, "-keyout", "other.key", "-out", "other.pem", "-days", "2",
            "-subj", "/CN=other", cwd=d)
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Tern DANE Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", *ec, "-keyout", "ta.key", "-out", "ta.csr", "-subj", "/CN=mx-ta.sec.test", cwd=d)
    with open(os.path.join(d, "ta.cnf"), "w") as f:
        f.write("subjectAltName=DNS:mx-ta.sec.test\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "ta.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "ta.pem", "-days", "2", "-extfile", "ta.cnf", cwd=d)
    chain = b""
    for name in ("ta.pem", "ca.pem"):
        chain += harness.read_bytes(os.path.join(d, name))
    with open(os.path.join(d, "ta-chain.pem"), "wb") as f:
        f.write(chain)


@unittest.skipIf(dnssec.available(), dnssec.available())
class DaneTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        d = cls.tmp = tlsmail.temp_dir(cls, "tern-dane-")
        make_pki(d)
        ee, ca, other = spki_sha256(d, "ee.pem"), spki_sha256(d, "ca.pem"), spki_sha256(d, "other.pem")
        ee512 = cert_sha512(d, "ee.pem")
        tlsa = lambda host, rdata: "_%d._tcp.%s TLSA %s" % (PORT, host, rdata)  # noqa: E731
        zones = {
            "sec.test": (True, [
                "ee MX 10 mx-ee", "mx-ee A " + EE_ADDR, tlsa("mx-ee", "3 1 1 " + ee),
                "ee512 MX 10 mx-ee512", "mx-ee512 A " + EE_ADDR, tlsa("mx-ee512", "3 0 2 " + ee512),
                "ta MX 10 mx-ta", "mx-ta A " + TA_ADDR, tlsa("mx-ta", "2 1 1 " + ca),
                "tawrong MX 10 mx-tawrong", "mx-tawrong A " + TA_ADDR,
                tlsa("mx-tawrong", "2 1 1 " + ca),
                "bad MX 10 mx-bad", "mx-bad A " + EE_ADDR, tlsa("mx-bad", "3 1 1 " + other),
                "strip MX 10 mx-strip", "mx-strip A " + PLAIN_ADDR, tlsa("mx-strip", "3 1 1 " + ee),
                "pkix MX 10 mx-pkix", "mx-pkix A " + EE_ADDR, tlsa("mx-pkix", "1 1 1 " + ee),
                "notlsa MX 10 mx-notlsa", "mx-notlsa A " + EE_ADDR,
                "only MX 10 mx-notlsa",
                # MX hosts that are aliases: TLSA records at the end of the
                # chain first (those at the alias do not match), then at the alias
                "alias MX 10 mx-alias", "mx-alias CNAME mx-real", "mx-real A " + EE_ADDR,
                tlsa("mx-real", "3 1 1 " + ee), tlsa("mx-alias", "3 1 1 " + other),
                "alias2 MX 10 mx-alias2", "mx-alias2 CNAME mx-notlsa",
                tlsa("mx-alias2", "3 1 1 " + ee),
                # AAAA answers for this host fail validation; its A records are secure
                "halfbogus MX 10 mx-halfbogus", "mx-halfbogus A " + EE_ADDR,
                "mx-halfbogus AAAA 2001:db8::25", tlsa("mx-halfbogus", "3 1 1 " + other),
            ]),
            "bog.test": (True, ["@ MX 10 mx", "mx A " + EE_ADDR, tlsa("mx", "3 1 1 " + ee)]),
            "insec.test": (False, ["@ MX 10 mx", "mx A " + EE_ADDR, tlsa("mx", "3 1 1 " + other)]),
        }
        cls.dns = dnssec.Setup(d, zones, corrupt=[("bog.test", "_%d._tcp.mx.bog.test" % PORT, "TLSA"),
                                                  ("sec.test", "mx-halfbogus.sec.test", "AAAA")])
        cls.addClassCleanup(cls.dns.stop)
        cls.ee_sink, cls.ta_sink, cls.plain_sink = (tlsmail.RecordingHandler() for _ in range(3))
        for handler, addr, chain, key in ((cls.ee_sink, EE_ADDR, "ee.pem", "ee.key"),
                                          (cls.ta_sink, TA_ADDR, "ta-chain.pem", "ta.key"),
                                          (cls.plain_sink, PLAIN_ADDR, None, None)):
            tlsmail.start_sink(cls, handler, addr, PORT, d, chain, key)
        policy = os.path.join(d, "tls_policy")
        with open(policy, "w") as f:
            f.write("only.sec.test dane-only\n")
        settings = dict(
            tlsmail.SMTP_TIMEOUTS, smtp_dns_servers="127.0.0.1:%d" % cls.dns.port, smtp_dns_timeout="5s",
            smtp_tcp_port=str(PORT), smtp_tls_security_level="dane",
            smtp_tls_policy_maps="texthash:" + policy, smtp_tls_loglevel="1",
            smtp_connection_cache_on_demand="no")
        cls.inst = harness.Instance(name="dane", main_cf=dict(settings, smtp_dns_support_level="dnssec"))
        cls.addClassCleanup(cls.inst.cleanup)
        cls.inst.start()
        # The same without smtp_dns_support_level = dnssec, as Postfix: dane is may.
        cls.nodnssec = harness.Instance(name="nodnssec", main_cf=settings)
        cls.addClassCleanup(cls.nodnssec.cleanup)
        cls.nodnssec.start()

    # ---- helpers ----
    def send(self, rcpt, subject, inst=None):
        return tlsmail.send(self, inst or self.inst, rcpt, subject)

    def outcome(self, qid, rcpt, status, inst=None):
        return tlsmail.outcome(inst or self.inst, qid, rcpt, status)

    def why(self, qid):
        return self.inst.tern("why", qid).stdout

    def assert_nothing_received(self, subject):
        for sink in (self.ee_sink, self.ta_sink, self.plain_sink):
            self.assertEqual(sink.with_subject(subject), [])

    # ---- the resolver itself ----
    def test_resolver_validates(self):
        self.assertEqual(dnssec.query(self.dns.port, "mx-ee.sec.test", "A")[:2], (0, True))
        self.assertEqual(dnssec.query(self.dns.port, "mx.insec.test", "A")[:2], (0, False))
        self.assertEqual(dnssec.query(self.dns.port, "_%d._tcp.mx.bog.test" % PORT, "TLSA")[0], 2)

    # ---- delivered with DANE authentication ----
    def test_dane_ee_spki_sha256(self):
        qid = self.send("user@ee.sec.test", "dane-ee")
        self.outcome(qid, "user@ee.sec.test", "sent")
        [msg] = self.ee_sink.with_subject("dane-ee")
        self.assertTrue(msg["tls"])
        self.inst.wait_log(r"Verified TLS connection established to mx-ee\.sec\.test\[%s\]:%d: "
                           r"TLSv1\.3 with cipher \S+" % (re.escape(EE_ADDR), PORT))

    def test_dane_ee_cert_sha512(self):
        qid = self.send("user@ee512.sec.test", "dane-ee512")
        self.outcome(qid, "user@ee512.sec.test", "sent")
        [msg] = self.ee_sink.with_subject("dane-ee512")
        self.assertTrue(msg["tls"])
        self.inst.wait_log(r"Verified TLS connection established to mx-ee512\.sec\.test\[%s\]:%d: TLSv1\.3"
                           % (re.escape(EE_ADDR), PORT))

    def test_dane_ta_spki(self):
        qid = self.send("user@ta.sec.test", "dane-ta")
        self.outcome(qid, "user@ta.sec.test", "sent")
        [msg] = self.ta_sink.with_subject("dane-ta")
        self.assertTrue(msg["tls"])
        self.inst.wait_log(r"Verified TLS connection established to mx-ta\.sec\.test\[%s\]:%d: TLSv1\.3"
                           % (re.escape(TA_ADDR), PORT))

    def test_cname_mx_host_tlsa_at_target_first(self):
        qid = self.send("user@alias.sec.test", "alias")
        self.outcome(qid, "user@alias.sec.test", "sent")
        [msg] = self.ee_sink.with_subject("alias")
        self.assertTrue(msg["tls"])
        self.inst.wait_log(r"Verified TLS connection established to mx-alias\.sec\.test\[%s\]:%d"
                           % (re.escape(EE_ADDR), PORT))

    def test_cname_mx_host_tlsa_at_alias(self):
        # The chain's end has no TLSA records: those of the alias count.
        qid = self.send("user@alias2.sec.test", "alias2")
        self.outcome(qid, "user@alias2.sec.test", "sent")
        [msg] = self.ee_sink.with_subject("alias2")
        self.assertTrue(msg["tls"])
        self.inst.wait_log(r"Verified TLS connection established to mx-alias2\.sec\.test\[%s\]:%d"
                           % (re.escape(EE_ADDR), PORT))

    def test_pkix_usage_means_encrypt(self):
        # PKIX-EE is unusable for SMTP: TLS is still required, unauthenticated.
        qid = self.send("user@pkix.sec.test", "pkix")
        self.outcome(qid, "user@pkix.sec.test", "sent")
        [msg] = self.ee_sink.with_subject("pkix")
        self.assertTrue(msg["tls"])
        self.inst.wait_log(r"%s: mx-pkix\.sec\.test:%d: no usable DANE TLSA records" % (qid, PORT))
        self.inst.wait_log(r"Untrusted TLS connection established to mx-pkix\.sec\.test")

    # ---- never delivered ----
    def test_tlsa_mismatch_defers(self):
        qid = self.send("user@bad.sec.test", "mismatch")
        reason = self.outcome(qid, "user@bad.sec.test", "deferred").group(2)
        self.assertEqual(reason, "Server certificate not verified by the DANE TLSA records of "
                         "mx-bad.sec.test: no matching DANE TLSA records")
        self.inst.wait_log(r"server certificate verification failed for mx-bad\.sec\.test\[%s\]:%d: "
                           r"num=65:no matching DANE TLSA records" % (re.escape(EE_ADDR), PORT))
        self.inst.wait_log(r"warning: mx-bad\.sec\.test\[%s\]:%d: the DANE TLSA records of "
                           r"mx-bad\.sec\.test do not authenticate the server" % (re.escape(EE_ADDR), PORT))
        self.assert_nothing_received("mismatch")
        self.assertIn("not verified by the DANE TLSA records of mx-bad.sec.test", self.why(qid))
        self.assertIn(qid, self.inst.queue_ids("deferred"))

    def test_dane_ta_name_mismatch_defers(self):
        # The chain ends at the TLSA record's trust anchor, but the certificate
        # names neither the MX host nor the next hop (RFC 7672 section 3.2.2).
        qid = self.send("user@tawrong.sec.test", "ta-wrong-name")
        reason = self.outcome(qid, "user@tawrong.sec.test", "deferred").group(2)
        self.assertEqual(reason, "Server certificate not verified by the DANE TLSA records of "
                         "mx-tawrong.sec.test: hostname mismatch")
        self.assert_nothing_received("ta-wrong-name")

    def test_without_dnssec_dane_is_may(self):
        # Without validation nothing is known about TLSA records: the
        # mismatching one of bad.sec.test is not looked at, TLS is opportunistic.
        qid = self.send("user@bad.sec.test", "no-dnssec", inst=self.nodnssec)
        self.outcome(qid, "user@bad.sec.test", "sent", inst=self.nodnssec)
        [msg] = self.ee_sink.with_subject("no-dnssec")
        self.assertTrue(msg["tls"])
        self.nodnssec.wait_log(r"warning: smtp_tls_security_level = dane: DNSSEC-validated TLSA "
                               r"records are not available without smtp_dns_support_level = "
                               r"dnssec; using level may")

    def test_failed_aaaa_lookup_keeps_dane(self):
        # Whoever makes the AAAA lookup fail must not make the host insecure
        # (and DANE off): its secure A records still bring its TLSA records,
        # which do not match, so the mail waits.
        self.assertEqual(dnssec.query(self.dns.port, "mx-halfbogus.sec.test", "AAAA")[0], 2)
        qid = self.send("user@halfbogus.sec.test", "half-bogus")
        reason = self.outcome(qid, "user@halfbogus.sec.test", "deferred").group(2)
        self.assertEqual(reason, "Server certificate not verified by the DANE TLSA records of "
                         "mx-halfbogus.sec.test: no matching DANE TLSA records")
        self.assert_nothing_received("half-bogus")

    def test_starttls_stripped_defers(self):
        qid = self.send("user@strip.sec.test", "stripped")
        reason = self.outcome(qid, "user@strip.sec.test", "deferred").group(2)
        self.assertIn("TLS is required, but was not offered by host mx-strip.sec.test", reason)
        self.assertIn("DANE TLSA records", reason)
        self.assert_nothing_received("stripped")
        self.assertIn("was not offered by host mx-strip.sec.test", self.why(qid))

    def test_bogus_tlsa_defers(self):
        qid = self.send("user@bog.test", "bogus")
        reason = self.outcome(qid, "user@bog.test", "deferred").group(2)
        self.assertIn("TLS is required by DANE, but the TLSA lookup for mx.bog.test:%d failed" % PORT,
                      reason)
        self.inst.wait_log(r"warning: %s: TLSA lookup error for mx\.bog\.test:%d" % (qid, PORT))
        self.assert_nothing_received("bogus")
        self.assertIn("TLSA lookup for mx.bog.test", self.why(qid))

    def test_dane_only_without_tlsa_defers(self):
        qid = self.send("user@only.sec.test", "dane-only")
        reason = self.outcome(qid, "user@only.sec.test", "deferred").group(2)
        self.assertIn("TLS is required by DANE (dane-only), but mx-notlsa.sec.test:%d has no "
                      "DNSSEC-validated TLSA records" % PORT, reason)
        self.assert_nothing_received("dane-only")
        self.assertIn("dane-only", self.why(qid))

    # ---- opportunistic ----
    def test_insecure_zone_opportunistic(self):
        # Its TLSA record does not match, but an unsigned zone's records prove nothing.
        qid = self.send("user@insec.test", "insecure")
        self.outcome(qid, "user@insec.test", "sent")
        [msg] = self.ee_sink.with_subject("insecure")
        self.assertTrue(msg["tls"])
        self.inst.wait_log(r"Untrusted TLS connection established to mx\.insec\.test\[%s\]:%d"
                           % (re.escape(EE_ADDR), PORT))

    def test_secure_without_tlsa_opportunistic(self):
        qid = self.send("user@notlsa.sec.test", "no-tlsa")
        self.outcome(qid, "user@notlsa.sec.test", "sent")
        [msg] = self.ee_sink.with_subject("no-tlsa")
        self.assertTrue(msg["tls"])


if __name__ == "__main__":
    unittest.main()
