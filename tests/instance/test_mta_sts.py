"""test_mta_sts.py: whole-instance tests of MTA-STS (RFC 8461) in the smtp
client (smtp_mta_sts = yes).

Everything is real and local: the test's DNS server (dnsserver.py) serves
the MX, A and _mta-sts TXT records; an HTTPS server started by the test
(http.server + ssl, with a certificate for every mta-sts.DOMAIN made by
the test's CA with openssl) serves the policies on a free port
(smtp_mta_sts_https_port); the remote MX hosts are aiosmtpd servers with
STARTTLS on 127.0.0.31 (a certificate for mx-good.test from the test CA)
and 127.0.0.32 (a self-signed certificate for mx-bad.test), both on one
port (smtp_tcp_port). Tern trusts the test CA through smtp_tls_CAfile.
Mail goes in through smtpd; the tests check what each server received,
the delivery log lines, the policy cache and `tern why`.

RFC 8461 requirements and the tests that cover them:
  3.1   TXT record "v=STSv1; id=..." found -> policy fetched over HTTPS
                                  test_enforce_valid_delivered
  3.3   the fetch requires a certificate valid for mta-sts.DOMAIN
                                  test_policy_server_wrong_certificate_ignored
  3.3   no redirects              test_redirect_not_followed
  4.1   mx patterns, leading wildcard  test_enforce_wildcard_mx_delivered,
                                  unit tests (tests/unit/test_smtp_sts.c)
  4.1   MX host not in the policy -> not used (enforce)  test_enforce_mx_not_in_policy_deferred
  4.2   enforce: certificate not valid for the MX name -> deferred, nothing
        in clear                  test_enforce_wrong_certificate_deferred
  4.2   enforce: STARTTLS stripped -> deferred  test_enforce_starttls_stripped_deferred
  5     testing: failures logged, mail delivered  test_testing_wrong_certificate_delivered
  5.1   policy cached with max_age; a failed refresh keeps the cached
        policy                    test_fetch_failure_uses_cache
  5.1   changed id -> refetched; same id -> cached  test_changed_id_refetched
  (issue) the per-domain policy in `tern why` (text and --json)
                                  test_enforce_wrong_certificate_deferred
  2     DANE wins where both exist    DaneWinsTest.test_dane_authenticated_server_ignores_policy,
        and where DANE does not authenticate the server the policy applies
                                  DaneWinsTest.test_server_without_tlsa_under_policy
"""
import http.server
import json
import os
import re
import ssl
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnssec  # noqa: E402
import dnsserver  # noqa: E402
import harness  # noqa: E402
import tlsmail  # noqa: E402
from tlsmail import openssl, spki_sha256  # noqa: E402


PORT = harness.free_port()           # smtp_tcp_port of every remote server
GOOD_ADDR, BAD_ADDR, PLAIN_ADDR = "127.0.0.31", "127.0.0.32", "127.0.0.33"
DOMAINS = ("enforce", "wild", "badcert", "mxnot", "strip", "testing", "cached", "changed",
           "wrongweb", "redirect")


def make_pki(d):
    """ca.pem; good.pem (mx-good.test and *.wild-mx.test, from the CA);
    bad.pem (self-signed, mx-bad.test); web.pem (the mta-sts.DOMAIN.test
    names, from the CA); webself.pem (mta-sts.wrongweb.test, self-signed)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Tern MTA-STS Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)

    def issue(name, sans):
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + sans[0],
                cwd=d)
        with open(os.path.join(d, name + ".cnf"), "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                    % ",".join("DNS:" + s for s in sans))
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".cnf", cwd=d)

    issue("good", ["mx-good.test", "*.wild-mx.test"])
    issue("web", ["mta-sts.%s.test" % name for name in DOMAINS if name != "wrongweb"]
          + ["mta-sts.%s.sts-sec.test" % name for name in ("dane", "notlsa")])
    openssl("req", "-x509", *ec, "-keyout", "bad.key", "-out", "bad.pem", "-days", "2",
            "-subj", "/CN=mx-bad.test", "-addext", "subjectAltName=DNS:mx-bad.test", cwd=d)
    openssl("req", "-x509", *ec, "-keyout", "webself.key", "-out", "webself.pem", "-days", "2",
            "-subj", "/CN=mta-sts.wrongweb.test",
            "-addext", "subjectAltName=DNS:mta-sts.wrongweb.test", cwd=d)


def policy(mode, *mx, max_age=86400):
    return ("version: STSv1\r\nmode: %s\r\n%smax_age: %d\r\n"
            % (mode, "".join("mx: %s\r\n" % m for m in mx), max_age)).encode()


class PolicyServer:
    """HTTPS on addr:port (port 0: a free one): GET
    /.well-known/mta-sts.txt answers from .policies by the Host header:
    (status, body), text/plain; a 301/302 points elsewhere. Every request
    is counted in .requests[host]."""

    def __init__(self, d, cert, key, addr="127.0.0.1", port=0, policies=None):
        self.policies, self.requests, self.lock = dict(policies or {}), {}, threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                with server.lock:
                    server.requests[host] = server.requests.get(host, 0) + 1
                    status, body = server.policies.get(host, (404, b"not found"))
                if self.path != "/.well-known/mta-sts.txt":
                    status, body = 404, b"not found"
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", "https://mta-sts.enforce.test/.well-known/mta-sts.txt")
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((addr, port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, cert), os.path.join(d, key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       daemon=True)
        self.thread.start()

    def count(self, host):
        with self.lock:
            return self.requests.get(host, 0)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class MtaStsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        d = cls.tmp = tlsmail.temp_dir(cls, "tern-mtasts-")
        make_pki(d)
        cls.web = PolicyServer(d, "web.pem", "web.key")
        cls.addClassCleanup(cls.web.stop)
        zone = {
            "mx-good.test": {"A": [GOOD_ADDR]},
            "mx-bad.test": {"A": [BAD_ADDR]},
            "mx-plain.test": {"A": [PLAIN_ADDR]},
            "mx-other.test": {"A": [GOOD_ADDR]},
            "a.wild-mx.test": {"A": [GOOD_ADDR]},
        }
        mx = {"enforce": "mx-good.test", "wild": "a.wild-mx.test", "badcert": "mx-bad.test",
              "mxnot": "mx-other.test", "strip": "mx-plain.test", "testing": "mx-bad.test",
              "cached": "mx-good.test", "changed": "mx-good.test", "wrongweb": "mx-bad.test",
              "redirect": "mx-bad.test"}
        for name in DOMAINS:
            dom = name + ".test"
            zone[dom] = {"MX": [(10, mx[name])]}
            zone["_mta-sts." + dom] = {"TXT": ["v=STSv1; id=%s1;" % name]}
            zone["mta-sts." + dom] = {"A": ["127.0.0.1"]}
        pol = cls.web.policies
        pol["mta-sts.enforce.test"] = (200, policy("enforce", "mx-good.test"))
        pol["mta-sts.wild.test"] = (200, policy("enforce", "*.wild-mx.test"))
        pol["mta-sts.badcert.test"] = (200, policy("enforce", "mx-bad.test"))
        pol["mta-sts.mxnot.test"] = (200, policy("enforce", "mx-good.test"))
        pol["mta-sts.strip.test"] = (200, policy("enforce", "mx-plain.test"))
        pol["mta-sts.testing.test"] = (200, policy("testing", "mx-good.test"))
        pol["mta-sts.cached.test"] = (200, policy("enforce", "mx-good.test"))
        pol["mta-sts.changed.test"] = (200, policy("enforce", "mx-good.test"))
        pol["mta-sts.redirect.test"] = (302, b"")
        cls.zone = zone
        cls.dns = dnsserver.DnsServer(zone)
        cls.addClassCleanup(cls.dns.stop)
        cls.good_sink, cls.bad_sink, cls.plain_sink = (tlsmail.RecordingHandler() for _ in range(3))
        for handler, addr, chain, key in ((cls.good_sink, GOOD_ADDR, "good.pem", "good.key"),
                                          (cls.bad_sink, BAD_ADDR, "bad.pem", "bad.key"),
                                          (cls.plain_sink, PLAIN_ADDR, None, None)):
            tlsmail.start_sink(cls, handler, addr, PORT, d, chain, key)
        timeouts = tlsmail.SMTP_TIMEOUTS
        cls.inst = harness.Instance(name="mtasts", main_cf=dict(
            timeouts, smtp_dns_servers="127.0.0.1:%d" % cls.dns.port, smtp_dns_timeout="5s",
            smtp_tcp_port=str(PORT), smtp_tls_security_level="may", smtp_tls_loglevel="1",
            smtp_tls_CAfile=os.path.join(d, "ca.pem"), smtp_mta_sts="yes",
            smtp_mta_sts_https_port=str(cls.web.port), smtp_mta_sts_fetch_timeout="5s",
            smtp_connection_cache_on_demand="no"))
        cls.addClassCleanup(cls.inst.cleanup)
        cls.inst.start()

    # ---- helpers ----
    def send(self, rcpt, subject):
        return tlsmail.send(self, self.inst, rcpt, subject)

    def outcome(self, qid, rcpt, status):
        return tlsmail.outcome(self.inst, qid, rcpt, status)

    def assert_nothing_received(self, subject):
        for sink in (self.good_sink, self.bad_sink, self.plain_sink):
            self.assertEqual(sink.with_subject(subject), [])

    def cache_file(self, domain):
        return os.path.join(self.inst.dir, "data", "mta-sts", domain)

    # ---- enforce ----
    def test_enforce_valid_delivered(self):
        qid = self.send("user@enforce.test", "enforce-ok")
        self.outcome(qid, "user@enforce.test", "sent")
        [msg] = self.good_sink.with_subject("enforce-ok")
        self.assertTrue(msg["tls"])
        self.inst.wait_log(r"Verified TLS connection established to mx-good\.test\[%s\]:%d: TLSv1\.3"
                           % (re.escape(GOOD_ADDR), PORT))
        self.inst.wait_log(r"MTA-STS policy of enforce\.test fetched: id enforce1, mode enforce, "
                           r"max_age 86400, mx: mx-good\.test")
        self.assertGreaterEqual(self.web.count("mta-sts.enforce.test"), 1)
        with open(self.cache_file("enforce.test")) as f:
            text = f.read()
        self.assertTrue(text.startswith("id: enforce1\nfetched: "), text)
        self.assertIn("mode: enforce", text)

    def test_enforce_wildcard_mx_delivered(self):
        qid = self.send("user@wild.test", "wild-ok")
        self.outcome(qid, "user@wild.test", "sent")
        [msg] = self.good_sink.with_subject("wild-ok")
        self.assertTrue(msg["tls"])

    def test_enforce_wrong_certificate_deferred(self):
        qid = self.send("user@badcert.test", "badcert")
        reason = self.outcome(qid, "user@badcert.test", "deferred").group(2)
        self.assertRegex(reason, r"^Server certificate not valid for mx-bad\.test under the MTA-STS "
                                 r"policy \(self[- ]signed certificate\) \(MTA-STS policy of "
                                 r"badcert\.test: mode enforce, id badcert1, mx: mx-bad\.test\)$")
        self.assert_nothing_received("badcert")
        # tern why: the attempt's reason, then the domain's cached policy
        why = self.inst.tern("why", qid).stdout
        self.assertIn("Server certificate not valid for mx-bad.test under the MTA-STS policy", why)
        self.assertRegex(why, r"\nMTA-STS policy of badcert\.test: mode enforce, id badcert1, "
                              r"mx: mx-bad\.test\n  fetched .+, valid until .+\n")
        data = json.loads(self.inst.tern("why", "--json", qid).stdout)
        [p] = data["mta_sts"]
        self.assertEqual((p["domain"], p["mode"], p["id"], p["mx"], p["max_age"]),
                         ("badcert.test", "enforce", "badcert1", ["mx-bad.test"], 86400))
        self.assertEqual(p["expires"] - p["fetched"], 86400)

    def test_enforce_mx_not_in_policy_deferred(self):
        qid = self.send("user@mxnot.test", "mxnot")
        reason = self.outcome(qid, "user@mxnot.test", "deferred").group(2)
        self.assertEqual(reason, "MX host mx-other.test does not match the MTA-STS policy of "
                                 "mxnot.test: mode enforce, id mxnot1, mx: mx-good.test")
        self.assert_nothing_received("mxnot")
        self.assertIn("does not match the MTA-STS policy of mxnot.test",
                      self.inst.tern("why", qid).stdout)

    def test_enforce_starttls_stripped_deferred(self):
        qid = self.send("user@strip.test", "strip")
        reason = self.outcome(qid, "user@strip.test", "deferred").group(2)
        self.assertIn("TLS is required, but was not offered by host mx-plain.test", reason)
        self.assert_nothing_received("strip")

    # ---- testing ----
    def test_testing_wrong_certificate_delivered(self):
        qid = self.send("user@testing.test", "testing")
        self.outcome(qid, "user@testing.test", "sent")
        [msg] = self.bad_sink.with_subject("testing")
        self.assertTrue(msg["tls"])
        self.inst.wait_log(r"%s: MX host mx-bad\.test does not match the MTA-STS policy of "
                           r"testing\.test: mode testing, id testing1, mx: mx-good\.test; "
                           r"delivering anyway \(mode testing\)" % qid)
        self.inst.wait_log(r"%s: mx-bad\.test\[%s\]:%d: server certificate not valid for "
                           r"mx-bad\.test: self[- ]signed certificate; delivering anyway "
                           r"\(mode testing\)" % (qid, re.escape(BAD_ADDR), PORT))

    # ---- the fetch ----
    def test_redirect_not_followed(self):
        qid = self.send("user@redirect.test", "redirect")
        # no policy: delivered as before (opportunistic TLS to the self-signed server)
        self.outcome(qid, "user@redirect.test", "sent")
        self.inst.wait_log(r"MTA-STS policy fetch for redirect\.test failed: "
                           r"https://mta-sts\.redirect\.test:\d+/\.well-known/mta-sts\.txt: HTTP status 302")
        self.assertFalse(os.path.exists(self.cache_file("redirect.test")))

    def test_policy_server_wrong_certificate_ignored(self):
        # mta-sts.wrongweb.test leads to a server whose certificate is
        # self-signed: its policy (which would defer) is never read.
        self.zone["mta-sts.wrongweb.test"] = {"A": ["127.0.0.34"]}
        selfsrv = PolicyServer(self.tmp, "webself.pem", "webself.key", addr="127.0.0.34",
                               port=self.web.port,
                               policies={"mta-sts.wrongweb.test": (200, policy("enforce", "mx-good.test"))})
        try:
            qid = self.send("user@wrongweb.test", "wrongweb")
            self.outcome(qid, "user@wrongweb.test", "sent")     # as if it had no policy
            self.inst.wait_log(r"%s: MTA-STS policy fetch for wrongweb\.test failed: \S+: .*certificate"
                               % qid)
            self.assertEqual(selfsrv.count("mta-sts.wrongweb.test"), 0)
            self.assertFalse(os.path.exists(self.cache_file("wrongweb.test")))
        finally:
            selfsrv.stop()

    # ---- the cache ----
    def test_fetch_failure_uses_cache(self):
        qid = self.send("user@cached.test", "cached-1")
        self.outcome(qid, "user@cached.test", "sent")
        self.assertTrue(os.path.exists(self.cache_file("cached.test")))
        # The id changes but the policy server fails; the MX host changes to
        # one the cached policy does not name: the cached policy defers it.
        self.web.policies["mta-sts.cached.test"] = (500, b"server error")
        self.zone["_mta-sts.cached.test"] = {"TXT": ["v=STSv1; id=cached2;"]}
        self.zone["cached.test"] = {"MX": [(10, "mx-other.test")]}
        qid = self.send("user@cached.test", "cached-2")
        reason = self.outcome(qid, "user@cached.test", "deferred").group(2)
        self.assertEqual(reason, "MX host mx-other.test does not match the MTA-STS policy of "
                                 "cached.test: mode enforce, id cached1, mx: mx-good.test")
        self.inst.wait_log(r"%s: MTA-STS policy fetch for cached\.test failed: \S+: HTTP status 500; "
                           r"using the cached policy" % qid)
        self.assert_nothing_received("cached-2")

    def test_changed_id_refetched(self):
        qid = self.send("user@changed.test", "changed-1")
        self.outcome(qid, "user@changed.test", "sent")
        first = self.web.count("mta-sts.changed.test")
        self.assertEqual(first, 1)
        # the same id: the cached policy, no fetch
        qid = self.send("user@changed.test", "changed-2")
        self.outcome(qid, "user@changed.test", "sent")
        self.assertEqual(self.web.count("mta-sts.changed.test"), 1)
        # a new id: fetched again, and the new policy applies
        self.web.policies["mta-sts.changed.test"] = (200, policy("enforce", "mx-nothere.test"))
        self.zone["_mta-sts.changed.test"] = {"TXT": ["v=STSv1; id=changed2;"]}
        qid = self.send("user@changed.test", "changed-3")
        reason = self.outcome(qid, "user@changed.test", "deferred").group(2)
        self.assertEqual(self.web.count("mta-sts.changed.test"), 2)
        self.assertEqual(reason, "MX host mx-good.test does not match the MTA-STS policy of "
                                 "changed.test: mode enforce, id changed2, mx: mx-nothere.test")
        with open(self.cache_file("changed.test")) as f:
            self.assertTrue(f.read().startswith("id: changed2\n"))


@unittest.skipIf(dnssec.available(), dnssec.available())
class DaneWinsTest(unittest.TestCase):
    """RFC 8461 section 2: where DANE TLSA records authenticate a server,
    DANE decides and the MTA-STS policy is not applied to it. A signed zone
    (nsd + validating unbound, dnssec.py) holds both an MTA-STS policy that
    names no MX host of the domain and DANE-EE records for its MX host."""
    ADDR = "127.0.0.35"

    @classmethod
    def setUpClass(cls):
        d = cls.tmp = tlsmail.temp_dir(cls, "tern-mtasts-dane-")
        make_pki(d)
        cls.web = PolicyServer(d, "web.pem", "web.key", policies={
            "mta-sts.dane.sts-sec.test": (200, policy("enforce", "mx-good.test")),
            "mta-sts.notlsa.sts-sec.test": (200, policy("enforce", "mx-good.test"))})
        cls.addClassCleanup(cls.web.stop)
        tlsa = "_%d._tcp.mx-dane TLSA 3 1 1 %s" % (PORT, spki_sha256(d, "good.pem"))
        records = [tlsa, "mx-dane A " + cls.ADDR, "mx-notlsa A " + cls.ADDR]
        for name in ("dane", "notlsa"):
            records += ["%s MX 10 mx-%s" % (name, name), '_mta-sts.%s TXT "v=STSv1; id=%s1;"' % (name, name),
                        "mta-sts.%s A 127.0.0.1" % name]
        cls.dns = dnssec.Setup(d, {"sts-sec.test": (True, records)})
        cls.addClassCleanup(cls.dns.stop)
        cls.sink = tlsmail.RecordingHandler()
        tlsmail.start_sink(cls, cls.sink, cls.ADDR, PORT, d, "good.pem", "good.key")
        cls.inst = harness.Instance(name="mtastsdane", main_cf=dict(
            smtp_dns_servers="127.0.0.1:%d" % cls.dns.port, smtp_dns_timeout="5s",
            smtp_dns_support_level="dnssec", smtp_tcp_port=str(PORT),
            smtp_tls_security_level="dane", smtp_tls_CAfile=os.path.join(d, "ca.pem"),
            smtp_mta_sts="yes", smtp_mta_sts_https_port=str(cls.web.port),
            smtp_mta_sts_fetch_timeout="5s", smtp_connection_cache_on_demand="no",
            smtp_connect_timeout="5s", smtp_starttls_timeout="5s"))
        cls.addClassCleanup(cls.inst.cleanup)
        cls.inst.start()

    send = MtaStsTest.send
    outcome = MtaStsTest.outcome

    def test_dane_authenticated_server_ignores_policy(self):
        qid = self.send("user@dane.sts-sec.test", "dane-wins")
        self.outcome(qid, "user@dane.sts-sec.test", "sent")
        [msg] = self.sink.with_subject("dane-wins")
        self.assertTrue(msg["tls"])
        self.inst.wait_log(r"MTA-STS policy of dane\.sts-sec\.test fetched: id dane1, mode enforce")
        self.inst.wait_log(r"Verified TLS connection established to mx-dane\.sts-sec\.test")
        self.assertNotIn("does not match the MTA-STS policy", self.inst.log_text())

    def test_server_without_tlsa_under_policy(self):
        qid = self.send("user@notlsa.sts-sec.test", "notlsa")
        reason = self.outcome(qid, "user@notlsa.sts-sec.test", "deferred").group(2)
        self.assertEqual(reason, "MX host mx-notlsa.sts-sec.test does not match the MTA-STS policy "
                                 "of notlsa.sts-sec.test: mode enforce, id notlsa1, mx: mx-good.test")
        self.assertEqual(self.sink.with_subject("notlsa"), [])


if __name__ == "__main__":
    unittest.main()
