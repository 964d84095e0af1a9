"""test_tlsrpt.py: whole-instance tests of SMTP TLS Reporting (RFC 8460):
the smtp client's records of TLS sessions under MTA-STS and DANE policies
(smtp_tls_report_enable = yes) and the daily reports of `tern tlsrpt send`.

Everything is real and local: a signed zone (sec.test: DANE TLSA records)
and unsigned ones (sts.test: MTA-STS policies; rua.test: where mailed
reports go) served by nsd and resolved by a validating unbound
(dnssec.py); an HTTPS server started by the test serves the MTA-STS
policies and takes the reports POSTed to an https: rua; the remote MX
hosts are aiosmtpd servers: one with a certificate from the test's CA, one
self-signed, one without STARTTLS, and the report sink of rua.test. Mail
goes in through smtpd; the tests check the record lines, `tern tlsrpt
show`, and the reports that arrive (mail and HTTPS), whose gzip'ed JSON is
checked against the RFC 8460 section 4.4 schema written out below and
against the counts of the scripted workload.

A day's report follows the day: the test makes "today" yesterday by moving
today's records to yesterday's file (owner kept), as midnight UTC would.

RFC 8460 requirements and the tests that cover them:
  3     _smtp._tls TXT "v=TLSRPTv1; rua=..." looked up per policy domain;
        mailto: and https: rua          ReportTest.test_reports (enf.sts.test: both)
  3     records without v=TLSRPTv1 ignored, more than one or a malformed one
        (bad rua, too long) -> no report, logged; no record -> no report
                                        ReportTest.test_reports (nov, badrua, long, two, norpt),
                                        unit tests (tests/unit/test_tlsrpt.c)
  4.1   one report per UTC day, date-range 00:00:00Z..23:59:59Z
                                        ReportTest.test_reports
  4.3.1 starttls-not-supported, certificate-not-trusted, validation-failure
        (MX host not in the policy)     test_records (enfstrip, enfbad, odd)
  4.3.2.1 tlsa-invalid (certificate not matching the TLSA records; only
        unusable records), dnssec-invalid (TLSA records failing validation),
        dane-required (dane-only, no TLSA records), starttls-not-supported
        under DANE                      test_records (danebad, pkix, bogus, only, danestrip)
  4.3.2.2 sts-policy-fetch-error (HTTP 404, a policy over 64 kB), sts-policy-invalid (a policy
        that does not parse), sts-webpki-invalid (the policy server's
        certificate does not verify)   test_records (fetchfail, big, polbad, webbad)
  4.4   the JSON fields, types and date-time formats; policies with
        policy-type sts/tlsa, policy-string, policy-domain, mx-host;
        summary counts that add up to the workload; failure-details with
        sending-mta-ip, receiving-mx-hostname, receiving-ip, counts
                                        check_report(), ReportTest.test_reports
  5.1   file name submitter!policy-domain!begin!end!unique-id.json.gz
  5.3   the mail: TLS-Report-Domain, TLS-Report-Submitter, Subject "Report
        Domain: ... Submitter: ... Report-ID: <...>", multipart/report;
        report-type="tlsrpt", application/tlsrpt+gzip part
                                        ReportTest.test_reports
  5.4   HTTPS POST, Content-Type application/tlsrpt+gzip; a status other
        than 2xx is a failure, tried again later
                                        ReportTest.test_reports,
                                        test_reports_hostile_records_and_failed_lookup
  (issue) a day is reported once; its records are removed afterwards
                                        ReportTest.test_reports
  (issue) hostile input: an MX host name of 200 bytes, MX names with odd
        bytes, hostile TXT records: bounded, no crash   test_records, test_reports
"""
import base64
import datetime
import email
import gzip
import http.server
import ipaddress
import json
import os
import re
import ssl
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dnssec  # noqa: E402
import harness  # noqa: E402
import tlsmail  # noqa: E402
from tlsmail import openssl, spki_sha256  # noqa: E402


PORT = harness.free_port()          # smtp_tcp_port of every remote server
GOOD_ADDR, BAD_ADDR, PLAIN_ADDR, RUA_ADDR = "127.0.0.61", "127.0.0.62", "127.0.0.63", "127.0.0.64"
LONG_MX = "%s.%s.%s.sts.test" % ("a" * 63, "b" * 63, "c" * 60)
STS_DOMAINS = ("enf", "enfbad", "enfstrip", "nov", "badrua", "long", "norpt", "two", "odd",
               "fetchfail", "polbad", "webbad", "big")
WEBBAD_ADDR = "127.0.0.65"          # the policy server of webbad.sts.test: self-signed
RESULT_TYPES = {"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
                "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
                "dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"}
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def make_pki(d):
    """ca.pem; good.pem (the MX and web names, from the CA); bad.pem
    (self-signed); other.pem (a key no server uses)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Tern TLSRPT Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    sans = ["mx-good.sts.test", "reports.sts.test"] + ["mta-sts.%s.sts.test" % n for n in STS_DOMAINS]
    openssl("req", *ec, "-keyout", "good.key", "-out", "good.csr", "-subj", "/CN=mx-good.sts.test", cwd=d)
    with open(os.path.join(d, "good.cnf"), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                % ",".join("DNS:" + s for s in sans))
    openssl("x509", "-req", "-in", "good.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "good.pem", "-days", "2", "-extfile", "good.cnf", cwd=d)
    for name, cn in (("bad", "mx-bad.sts.test"), ("other", "other")):
        openssl("req", "-x509", *ec, "-keyout", name + ".key", "-out", name + ".pem", "-days", "2",
                "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:" + cn, cwd=d)


def policy(mode, *mx):
    return ("version: STSv1\r\nmode: %s\r\n%smax_age: 86400\r\n"
            % (mode, "".join("mx: %s\r\n" % m for m in mx))).encode()


class WebServer:
    """HTTPS on addr:port (port 0: a free one) with cert: GET of an MTA-STS
    policy by the Host header from .policies; POST to /tlsrpt stores
    (headers, body) in .posts and answers 201."""

    def __init__(self, d, addr="127.0.0.1", port=0, cert="good"):
        self.policies, self.posts, self.lock = {}, [], threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0].lower()
                with server.lock:
                    status, body = server.policies.get(host, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 1 << 24))
                with server.lock:
                    server.posts.append((self.path, dict(self.headers), body))
                self.send_response(500 if self.path == "/fail" else 201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer((addr, port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, cert + ".pem"), os.path.join(d, cert + ".key"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def check_report(test, report):
    """The RFC 8460 section 4.4 schema, written out: required members and
    their types, the date-time format, the enumerations, no unknown
    members, and failure-details that add up to the failure count."""
    test.assertIsInstance(report, dict)
    test.assertEqual(set(report), {"organization-name", "date-range", "contact-info", "report-id",
                                   "policies"})
    for key in ("organization-name", "contact-info", "report-id"):
        test.assertIsInstance(report[key], str)
        test.assertTrue(report[key])
    dr = report["date-range"]
    test.assertEqual(set(dr), {"start-datetime", "end-datetime"})
    for key in ("start-datetime", "end-datetime"):
        test.assertRegex(dr[key], DATETIME)
    test.assertIsInstance(report["policies"], list)
    test.assertTrue(report["policies"])
    for p in report["policies"]:
        test.assertTrue({"policy", "summary"} <= set(p) <= {"policy", "summary", "failure-details"})
        pol = p["policy"]
        test.assertTrue({"policy-type", "policy-domain"} <= set(pol)
                        <= {"policy-type", "policy-string", "policy-domain", "mx-host"})
        test.assertIn(pol["policy-type"], ("tlsa", "sts", "no-policy-found"))
        test.assertIsInstance(pol["policy-domain"], str)
        for key in ("policy-string", "mx-host"):
            if key in pol:
                test.assertIsInstance(pol[key], list)
                for item in pol[key]:
                    test.assertIsInstance(item, str)
        s = p["summary"]
        test.assertEqual(set(s), {"total-successful-session-count", "total-failure-session-count"})
        for v in s.values():
            test.assertIsInstance(v, int)
            test.assertGreaterEqual(v, 0)
        failed = 0
        for f in p.get("failure-details", []):
            test.assertTrue({"result-type", "failed-session-count"} <= set(f)
                            <= {"result-type", "sending-mta-ip", "receiving-mx-hostname",
                                "receiving-mx-helo", "receiving-ip", "failed-session-count",
                                "additional-information", "failure-reason-code"})
            test.assertIn(f["result-type"], RESULT_TYPES)
            for key in ("sending-mta-ip", "receiving-ip"):
                if key in f:
                    ipaddress.ip_address(f[key])
            test.assertIsInstance(f["failed-session-count"], int)
            test.assertGreater(f["failed-session-count"], 0)
            failed += f["failed-session-count"]
        test.assertEqual(failed, s["total-failure-session-count"])


def summary_of(report):
    """{(policy-type, result-type or "success"): count} over the report."""
    out = {}
    for p in report["policies"]:
        t = p["policy"]["policy-type"]
        ok = p["summary"]["total-successful-session-count"]
        if ok:
            out[(t, "success")] = out.get((t, "success"), 0) + ok
        for f in p.get("failure-details", []):
            key = (t, f["result-type"])
            out[key] = out.get(key, 0) + f["failed-session-count"]
    return out


# the workload: domain -> number of messages, and what the report must count
WORKLOAD = {
    "enf.sts.test": (2, {("sts", "success"): 2}),
    "enfbad.sts.test": (1, {("sts", "certificate-not-trusted"): 1}),
    "enfstrip.sts.test": (1, {("sts", "starttls-not-supported"): 1}),
    "odd.sts.test": (1, {("sts", "validation-failure"): 1}),
    "dane.sec.test": (1, {("tlsa", "success"): 1}),
    "danebad.sec.test": (1, {("tlsa", "tlsa-invalid"): 1}),
    "danestrip.sec.test": (1, {("tlsa", "starttls-not-supported"): 1}),
    "bogus.sec.test": (1, {("tlsa", "dnssec-invalid"): 1}),
    "only.sec.test": (1, {("tlsa", "dane-required"): 1}),
    "pkix.sec.test": (1, {("tlsa", "tlsa-invalid"): 1}),
    "nov.sts.test": (1, {("sts", "success"): 1}),
    "badrua.sts.test": (1, {("sts", "success"): 1}),
    "long.sts.test": (1, {("sts", "success"): 1}),
    "norpt.sts.test": (1, {("sts", "success"): 1}),
    "two.sts.test": (1, {("sts", "success"): 1}),
    # policies that could not be had (no cached one): a failure each, the
    # sessions then go without a policy and are not recorded
    "fetchfail.sts.test": (1, {("sts", "sts-policy-fetch-error"): 1}),
    "polbad.sts.test": (1, {("sts", "sts-policy-invalid"): 1}),
    "webbad.sts.test": (1, {("sts", "sts-webpki-invalid"): 1}),
    "big.sts.test": (1, {("sts", "sts-policy-fetch-error"): 1}),
}
REPORTED = ("enf.sts.test", "enfbad.sts.test", "enfstrip.sts.test", "odd.sts.test", "dane.sec.test",
            "danebad.sec.test", "danestrip.sec.test")
OUTCOME = {"enf.sts.test": "sent", "enfbad.sts.test": "deferred", "enfstrip.sts.test": "deferred",
           "odd.sts.test": "sent", "dane.sec.test": "sent", "danebad.sec.test": "deferred",
           "danestrip.sec.test": "deferred", "bogus.sec.test": "deferred", "only.sec.test": "deferred"}


@unittest.skipIf(dnssec.available(), dnssec.available())
class ReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        d = cls.tmp = tlsmail.temp_dir(cls, "tern-tlsrpt-")
        make_pki(d)
        cls.web = WebServer(d)
        cls.addClassCleanup(cls.web.stop)
        rua = "mailto:tlsrpt@rua.test"
        sts = []
        for name in STS_DOMAINS:
            sts += ['_mta-sts.%s TXT "v=STSv1; id=%s1;"' % (name, name),
                    "mta-sts.%s A %s" % (name, WEBBAD_ADDR if name == "webbad" else "127.0.0.1")]
            if name not in ("odd",):
                sts.append("%s MX 10 mx-%s" % (name, {"enfbad": "bad", "enfstrip": "plain"}.get(name, "good")))
            mode, mx = "enforce", {"enfbad": "mx-bad.sts.test",
                                   "enfstrip": "mx-plain.sts.test"}.get(name, "mx-good.sts.test")
            if name == "odd":
                mode = "testing"
            cls.web.policies["mta-sts.%s.sts.test" % name] = (200, policy(mode, mx))
        del cls.web.policies["mta-sts.fetchfail.sts.test"]                 # 404
        cls.web.policies["mta-sts.polbad.sts.test"] = (200, b"version: STSv1\r\nmode: sometimes\r\n")
        # larger than the 64 kB of RFC 8461 section 3.3: not a policy, whatever it begins with
        cls.web.policies["mta-sts.big.sts.test"] = (200, policy("enforce", "mx-good.sts.test")
                                                    + b"x" * 70000 + b"\r\n")
        cls.webbad = WebServer(d, WEBBAD_ADDR, cls.web.port, "bad")
        cls.webbad.policies = dict(cls.web.policies)
        cls.addClassCleanup(cls.webbad.stop)
        long_value = " ".join('"%s"' % ("y" * 240) for _ in range(5))
        sts += [
            "mx-good A " + GOOD_ADDR, "mx-bad A " + BAD_ADDR, "mx-plain A " + PLAIN_ADDR,
            "reports A 127.0.0.1",
            # mail and HTTPS for enf; mail for the rest that have a record
            '_smtp._tls.enf TXT "v=TLSRPTv1; rua=%s,https://reports.sts.test:%d/tlsrpt"'
            % (rua, cls.web.port),
            '_smtp._tls.enfbad TXT "v=TLSRPTv1;rua=%s"' % rua,
            '_smtp._tls.enfstrip TXT "v=TLSRPTv1; rua=%s;"' % rua,
            '_smtp._tls.odd TXT "v=TLSRPTv1; rua=%s"' % rua,
            # hostile or missing records
            '_smtp._tls.nov TXT "rua=%s"' % rua,
            '_smtp._tls.badrua TXT "v=TLSRPTv1; rua=ftp://rua.test/x"',
            '_smtp._tls.long TXT "v=TLSRPTv1; rua=%s; x=" %s' % (rua, long_value),
            '_smtp._tls.two TXT "v=TLSRPTv1; rua=%s"' % rua,
            '_smtp._tls.two TXT "v=TLSRPTv1; rua=mailto:other@rua.test"',
            '_smtp._tls.httpsfail TXT "v=TLSRPTv1; rua=https://reports.sts.test:%d/fail"' % cls.web.port,
            # odd: an MX host of odd bytes (the resolver drops it) and one
            # of 200 bytes that the testing policy does not name
            "odd MX 5 mx\\200\\013odd", "odd MX 10 " + LONG_MX[:-len(".sts.test")],
            LONG_MX[:-len(".sts.test")] + " A " + GOOD_ADDR,
        ]
        tlsa = lambda host, key: "_%d._tcp.%s TLSA 3 1 1 %s" % (PORT, host, spki_sha256(d, key))  # noqa: E731
        sec = []
        for name, addr, key in (("dane", GOOD_ADDR, "good.pem"), ("danebad", GOOD_ADDR, "other.pem"),
                                ("danestrip", PLAIN_ADDR, "good.pem")):
            sec += ["%s MX 10 mx-%s" % (name, name), "mx-%s A %s" % (name, addr), tlsa("mx-" + name, key),
                    '_smtp._tls.%s TXT "v=TLSRPTv1; rua=%s"' % (name, rua)]
        # a TXT record whose signature fails validation: the lookup fails (SERVFAIL)
        sec.append('_smtp._tls.txtfail TXT "v=TLSRPTv1; rua=%s"' % rua)
        # TLSA records that fail validation; none where dane-only wants them;
        # only unusable ones (PKIX-EE)
        sec += ["bogus MX 10 mx-bogus", "mx-bogus A " + GOOD_ADDR, tlsa("mx-bogus", "good.pem"),
                "only MX 10 mx-only", "mx-only A " + GOOD_ADDR,
                "pkix MX 10 mx-pkix", "mx-pkix A " + GOOD_ADDR,
                tlsa("mx-pkix", "good.pem").replace(" 3 1 1 ", " 1 1 1 ")]
        cls.dns = dnssec.Setup(d, {"sec.test": (True, sec), "sts.test": (False, sts),
                                   "rua.test": (False, ["@ MX 10 mx", "mx A " + RUA_ADDR])},
                               corrupt=[("sec.test", "_smtp._tls.txtfail.sec.test", "TXT"),
                                        ("sec.test", "_%d._tcp.mx-bogus.sec.test" % PORT, "TLSA")])
        tls_policy = os.path.join(d, "tls_policy")
        with open(tls_policy, "w") as f:
            f.write("only.sec.test dane-only\n")
        cls.addClassCleanup(cls.dns.stop)
        cls.good, cls.bad, cls.plain, cls.rua = (tlsmail.RecordingHandler() for _ in range(4))
        for handler, addr, chain, key in ((cls.good, GOOD_ADDR, "good.pem", "good.key"),
                                          (cls.bad, BAD_ADDR, "bad.pem", "bad.key"),
                                          (cls.plain, PLAIN_ADDR, None, None),
                                          (cls.rua, RUA_ADDR, None, None)):
            tlsmail.start_sink(cls, handler, addr, PORT, d, chain, key)
        cls.inst = harness.Instance(name="tlsrpt", main_cf=dict(
            tlsmail.SMTP_TIMEOUTS, smtp_dns_servers="127.0.0.1:%d" % cls.dns.port,
            smtp_dns_timeout="5s", smtp_dns_support_level="dnssec", smtp_tcp_port=str(PORT),
            smtp_tls_security_level="dane", smtp_tls_loglevel="1",
            smtp_tls_policy_maps="texthash:" + tls_policy,
            smtp_tls_CAfile=os.path.join(d, "ca.pem"), smtp_mta_sts="yes",
            smtp_mta_sts_https_port=str(cls.web.port), smtp_mta_sts_fetch_timeout="5s",
            smtp_connection_cache_on_demand="no", smtp_tls_report_enable="yes",
            smtp_tls_report_organization="Tern Test Org", smtp_tls_report_contact="tls@tern.test",
            smtp_tls_report_sender="tlsrpt@tern.test",
            # one attempt per message: the counts stay those of the workload
            minimal_backoff_time="3600s", maximal_backoff_time="3600s", queue_run_delay="3600s"))
        cls.addClassCleanup(cls.inst.cleanup)
        cls.inst.start()
        cls.run_workload()

    @classmethod
    def run_workload(cls):
        for domain, (count, _) in WORKLOAD.items():
            for i in range(count):
                subject = "%s-%d" % (domain, i)
                with cls.inst.smtp() as s:
                    s.ehlo("client.example")
                    s.mail("sender@client.test")
                    s.rcpt("user@" + domain)
                    code, reply = s.data(("Subject: %s\r\n\r\nbody\r\n" % subject).encode())
                assert code == 250, reply
                qid = harness.queue_id_of(reply)
                status = OUTCOME.get(domain, "sent")
                tlsmail.outcome(cls.inst, qid, "user@" + domain, status)

    def records_dir(self):
        return os.path.join(self.inst.dir, "data", "tlsrpt")

    def record_lines(self):
        lines = []
        for name in sorted(os.listdir(self.records_dir())):
            if re.match(r"^\d{4}-\d{2}-\d{2}$", name):
                with open(os.path.join(self.records_dir(), name), "rb") as f:
                    lines += f.read().splitlines()
        return lines

    def show(self, domain):
        today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
        out = self.inst.tern("tlsrpt", "show", "--date", today, domain).stdout
        [line] = out.splitlines()
        return json.loads(line)

    def test_records(self):
        """Each session under a policy is one line with the right result
        type; `tern tlsrpt show` sums them up as the report will."""
        lines = self.record_lines()
        self.assertEqual(len(lines), sum(n for n, _ in WORKLOAD.values()), lines)
        for line in lines:
            self.assertLess(len(line) + 1, 4096)
            self.assertTrue(line.startswith(b"TLSRPT1 "), line)
        for domain, (_, expected) in WORKLOAD.items():
            report = self.show(domain)
            check_report(self, report)
            self.assertEqual(summary_of(report), expected, domain)
            [p] = report["policies"]
            self.assertEqual(p["policy"]["policy-domain"], domain)
            for f in p.get("failure-details", []):
                # where a session was tried, its local address; failures before
                # any connection (policy fetch, TLSA lookup) have none
                if domain in ("enfbad.sts.test", "enfstrip.sts.test", "odd.sts.test",
                              "danebad.sec.test", "danestrip.sec.test"):
                    self.assertEqual(f["sending-mta-ip"], "127.0.0.1")
                else:
                    self.assertNotIn("sending-mta-ip", f)
        # what the details say
        [f] = self.show("enfbad.sts.test")["policies"][0]["failure-details"]
        self.assertEqual((f["receiving-mx-hostname"], f["receiving-ip"]), ("mx-bad.sts.test", BAD_ADDR))
        self.assertRegex(f["failure-reason-code"], "self[- ]signed certificate")
        pol = self.show("enf.sts.test")["policies"][0]["policy"]
        self.assertEqual(pol["policy-string"], ["version: STSv1", "mode: enforce", "mx: mx-good.sts.test",
                                                "max_age: 86400"])
        self.assertEqual(pol["mx-host"], ["mx-good.sts.test"])
        pol = self.show("dane.sec.test")["policies"][0]["policy"]
        self.assertEqual(pol["policy-type"], "tlsa")
        self.assertEqual(pol["policy-string"], ["_%d._tcp.mx-dane.sec.test. IN TLSA 3 1 1 %s"
                                                % (PORT, spki_sha256(self.tmp, "good.pem").upper())])
        [f] = self.show("danestrip.sec.test")["policies"][0]["failure-details"]
        self.assertEqual((f["receiving-mx-hostname"], f["receiving-ip"]),
                         ("mx-danestrip.sec.test", PLAIN_ADDR))
        # the 200-byte MX host name (the odd one was dropped by the resolver)
        [f] = self.show("odd.sts.test")["policies"][0]["failure-details"]
        self.assertEqual(f["receiving-mx-hostname"], LONG_MX)

    def test_reports(self):
        """`tern tlsrpt send` after the day: mail and HTTPS reports, checked
        against the schema and the workload; hostile and missing TXT
        records give no report; a day is reported once."""
        today = datetime.datetime.now(datetime.timezone.utc).date()
        yesterday = (today - datetime.timedelta(days=1)).strftime("%Y-%m-%d")
        # midnight UTC, as the test sees it: every record so far is yesterday's
        d = self.records_dir()
        st = os.stat(d)
        data = b"".join(line + b"\n" for line in self.record_lines())
        for name in os.listdir(d):
            if re.match(r"^\d{4}-\d{2}-\d{2}$", name):
                os.unlink(os.path.join(d, name))
        path = os.path.join(d, yesterday)
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, st.st_uid, st.st_gid)
        os.chmod(path, 0o600)
        r = self.inst.tern("tlsrpt", "send")
        out = r.stdout
        for domain in REPORTED:
            self.assertRegex(out, r"tern: %s %s: report \S+ mailed to <tlsrpt@rua\.test> \(queued as \w+\)"
                             % (yesterday, re.escape(domain)))
        self.assertRegex(out, r"tern: %s enf\.sts\.test: report \S+ posted to "
                              r"https://reports\.sts\.test:%d/tlsrpt" % (yesterday, self.web.port))
        for domain, why in (("nov", "no TLSRPT record"), ("norpt", "no TLSRPT record"),
                            ("badrua", "invalid TLSRPT record: no usable mailto: or https: destination"),
                            ("long", "invalid TLSRPT record: TLSRPT record too long"),
                            ("two", "invalid TLSRPT record: more than one TLSRPT record")):
            self.assertIn("tern: %s %s.sts.test: %s" % (yesterday, domain, why), out)
            self.inst.wait_log(r"TLS reporting: %s %s\.sts\.test: %s[^\n]*; no report"
                               % (yesterday, domain, re.escape(why)))
        # the records are gone, the day is noted as reported
        self.assertFalse(os.path.exists(path))
        self.assertTrue(os.path.exists(path + ".sent"))
        start = datetime.datetime.strptime(yesterday, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc)
        begin = int(start.timestamp())
        # the mailed reports arrive at rua.test's MX (through Tern's own queue)
        deadline = 60
        for _ in range(deadline * 10):
            if len(self.rua.messages) >= len(REPORTED):
                break
            threading.Event().wait(0.1)
        self.assertEqual(len(self.rua.messages), len(REPORTED))
        seen = set()
        for m in self.rua.messages:
            msg = email.message_from_bytes(m["data"])
            domain = msg["TLS-Report-Domain"]
            seen.add(domain)
            self.assertEqual(m["to"], ["tlsrpt@rua.test"])
            self.assertEqual(msg["TLS-Report-Submitter"], "tern.test")
            self.assertEqual(msg["From"], "tlsrpt@tern.test")
            self.assertEqual(msg.get_content_type(), "multipart/report")
            self.assertEqual(msg.get_param("report-type"), "tlsrpt")
            subject = " ".join(msg["Subject"].split())
            m2 = re.match(r"^Report Domain: (\S+) Submitter: (\S+) Report-ID: <(\S+)>$", subject)
            self.assertTrue(m2, subject)
            self.assertEqual(m2.group(1, 2), (domain, "tern.test"))
            [part] = [p for p in msg.walk() if p.get_content_type() == "application/tlsrpt+gzip"]
            filename = part.get_filename()
            self.assertRegex(filename, r"^tern\.test!%s!%d!%d![0-9a-f]+\.json\.gz$"
                             % (re.escape(domain), begin, begin + 86399))
            report = json.loads(gzip.decompress(part.get_payload(decode=True)))
            check_report(self, report)
            self.assertEqual(report["report-id"], m2.group(3))
            self.assertEqual(report["organization-name"], "Tern Test Org")
            self.assertEqual(report["contact-info"], "tls@tern.test")
            self.assertEqual(report["date-range"], {"start-datetime": yesterday + "T00:00:00Z",
                                                    "end-datetime": yesterday + "T23:59:59Z"})
            self.assertEqual({p["policy"]["policy-domain"] for p in report["policies"]}, {domain})
            self.assertEqual(summary_of(report), WORKLOAD[domain][1], domain)
        self.assertEqual(seen, set(REPORTED))
        # the HTTPS report of enf.sts.test
        [(path_, headers, body)] = self.web.posts
        self.assertEqual(path_, "/tlsrpt")
        self.assertEqual(headers.get("Content-Type"), "application/tlsrpt+gzip")
        report = json.loads(gzip.decompress(body))
        check_report(self, report)
        self.assertEqual(summary_of(report), WORKLOAD["enf.sts.test"][1])
        # never twice
        again = self.inst.tern("tlsrpt", "send")
        self.assertIn("no TLS session records of past days to report", again.stdout)
        again = self.inst.tern("tlsrpt", "send", "--date", yesterday)
        self.assertIn("tern: %s: already reported" % yesterday, again.stdout)
        self.assertEqual(len(self.web.posts), 1)
        # a report mail is not a TLS session under a policy: nothing new recorded
        # for rua.test, and today's report cannot be sent before the day ends
        r = self.inst.tern("tlsrpt", "send", "--date", today.strftime("%Y-%m-%d"), check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("is not over yet", r.stderr)

    def test_reports_hostile_records_and_failed_lookup(self):
        """A day's file with malformed lines (garbage, a line far longer
        than any record, a record of a name that is no domain) and a
        domain whose TXT lookup fails: the malformed lines are skipped and
        logged, the domain is skipped with a log line and tried again by
        the next run; after the retry days its records are removed."""
        day = (datetime.datetime.now(datetime.timezone.utc).date()
               - datetime.timedelta(days=3)).strftime("%Y-%m-%d")
        d = self.records_dir()
        st = os.stat(d)
        path = os.path.join(d, day)
        with open(path, "wb") as f:
            f.write(b"garbage\n" + b"x" * 5000 + b"\n"
                    b"TLSRPT1 1 bad%0Aname sts success - - - - - -\n"
                    b"TLSRPT1 1 txtfail.sec.test tlsa success 127.0.0.1 mx 127.0.0.2 - - -\n"
                    b"TLSRPT1 1 httpsfail.sts.test sts success - - - - - -\n")
        os.chown(path, st.st_uid, st.st_gid)
        r = self.inst.tern("tlsrpt", "send", "--date", day, check=False)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"tern: %s txtfail\.sec\.test: TXT lookup failed: .*; trying again later" % day)
        self.inst.wait_log(r"TLS reporting: %s: 3 malformed records skipped" % day)
        self.inst.wait_log(r"TLS reporting: %s txtfail\.sec\.test: TXT lookup of "
                           r"_smtp\._tls\.txtfail\.sec\.test failed" % day)
        # a destination that answers 500: not reported, tried again (here: too late)
        self.assertIn("tern: %s httpsfail.sts.test: report to https://reports.sts.test:%d/fail failed: "
                      "HTTP status 500" % (day, self.web.port), r.stdout)
        self.inst.wait_log(r"TLS reporting: %s: 2 domains could not be reported within 2 days; "
                           r"their records are removed" % day)
        self.assertFalse(os.path.exists(path))
        self.assertFalse(os.path.exists(path + ".sent"))


if __name__ == "__main__":
    unittest.main()
