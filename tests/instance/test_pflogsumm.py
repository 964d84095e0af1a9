"""test_pflogsumm.py: pflogsumm, the log summary Postfix administrators
run every day, run over Tern's mail log (`--syslog-name=tern`) after a
known workload, and every section of its report compared with what the
test sent: messages and bytes received per sender and per sending domain,
deliveries per recipient, the rejection and its reason, and nothing
deferred or bounced. pflogsumm ties a message's sender and size (qmgr's
`ID: from=` line) to a received message only when smtpd's `ID: client=`
line came first, as Postfix writes them; the order of those lines is also
checked for every message.

Runs Debian's pflogsumm (tools/install-deps installs it); skipped without it.
"""
import os
import re
import shutil
import smtplib
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HOST = "tern.test"
RCPT = "root@" + HOST
# sender -> bodies of its messages (different sizes, so that a size put
# on the wrong sender shows)
WORKLOAD = {
    "alice@example.org": ["a" * 1000, "a" * 2000, "a" * 3000],
    "bob@example.net": ["b" * 150, "b" * 250],
}
REFUSED = "someone@elsewhere.example"     # a relay attempt: rejected at RCPT


def section(report, title):
    """The rows of figures (split into words) of one titled section of
    pflogsumm's report, up to the next blank line after its underline;
    column headings and rules are left out."""
    lines = report.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == title and i + 1 < len(lines) and lines[i + 1].startswith("---"):
            body = []
            for rest in lines[i + 2:]:
                if not rest.strip():
                    break
                if rest.split()[0].isdigit():
                    body.append(rest.split())
            return body
    raise AssertionError("no section %r in the report:\n%s" % (title, report))


def grand_total(report, what):
    for line in report.splitlines():
        m = re.match(r"\s*(\d+)([kmg]?)\s+%s\b" % re.escape(what), line)
        if m:
            return int(m.group(1))
    raise AssertionError("no grand total %r in the report" % what)


class PflogsummTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which("pflogsumm"):
            raise unittest.SkipTest("pflogsumm is not installed (tools/install-deps)")
        # 127.0.0.1 is an untrusted client: it may send to the domain here
        # and not relay elsewhere
        cls.inst = harness.Instance("pflogsumm", main_cf={"mynetworks": "127.0.0.2/32"})
        cls.addClassCleanup(cls.inst.cleanup)
        cls.inst.start()
        cls.sent = cls.send_workload()
        cls.inst.wait_empty()
        for qid in cls.sent:
            cls.inst.wait_log(r"%s: removed" % qid)
        cls.log = open(cls.inst.log_path).read()
        r = subprocess.run(["pflogsumm", "--syslog-name=tern", cls.inst.log_path],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError("pflogsumm failed: %s" % r.stderr)
        cls.report = r.stdout

    @classmethod
    def send_workload(cls):
        """{queue ID: sender}, from the "queued as" replies."""
        sent = {}
        s = smtplib.SMTP("127.0.0.1", cls.inst.port, timeout=30)
        try:
            s.ehlo("client.example")
            for sender, bodies in WORKLOAD.items():
                for n, body in enumerate(bodies):
                    s.mail(sender)
                    code, _ = s.rcpt(RCPT)
                    assert code == 250, code
                    code, reply = s.data("Subject: %s %d\r\n\r\n%s\r\n" % (sender, n, body))
                    m = re.search(r"queued as (\S+)", reply.decode())
                    assert code == 250 and m, (code, reply)
                    sent[m.group(1)] = sender
            s.mail("alice@example.org")
            code, _ = s.rcpt(REFUSED)
            assert code in (454, 554), code
            s.rset()
        finally:
            s.quit()
        return sent

    def sizes(self):
        """{queue ID: size} as qmgr logged it (what pflogsumm adds up)."""
        return {qid: int(size) for qid, size in
                re.findall(r"(\w+): from=<[^>]*>, size=(\d+)", self.log) if qid in self.sent}

    def test_client_line_comes_first(self):
        lines = self.log.splitlines()
        for qid in self.sent:
            def first(pattern):
                for i, line in enumerate(lines):
                    if re.search(r"\b%s: %s" % (qid, pattern), line):
                        return i
                self.fail("no %s line for %s" % (pattern, qid))
            self.assertLess(first("client="), first("message-id="), qid)
            self.assertLess(first("client="), first("from=<"), qid)

    def test_grand_totals(self):
        sizes = self.sizes()
        self.assertEqual(grand_total(self.report, "received"), len(self.sent))
        self.assertEqual(grand_total(self.report, "delivered"), len(self.sent))
        self.assertEqual(grand_total(self.report, "deferred"), 0)
        self.assertEqual(grand_total(self.report, "bounced"), 0)
        self.assertEqual(grand_total(self.report, "rejected"), 1)
        self.assertEqual(grand_total(self.report, "bytes received"), sum(sizes.values()))
        self.assertEqual(grand_total(self.report, "senders"), len(WORKLOAD))
        self.assertEqual(grand_total(self.report, "sending hosts/domains"), len(WORKLOAD))
        self.assertEqual(grand_total(self.report, "recipients"), 1)

    def test_senders_by_count_and_size(self):
        sizes = self.sizes()
        by_count = {row[1]: int(row[0]) for row in section(self.report, "Senders by message count")}
        by_size = {row[1]: int(row[0]) for row in section(self.report, "Senders by message size")}
        for sender, bodies in WORKLOAD.items():
            self.assertEqual(by_count.get(sender), len(bodies), self.report)
            self.assertEqual(by_size.get(sender),
                             sum(size for qid, size in sizes.items() if self.sent[qid] == sender))
        self.assertEqual(set(by_count), set(WORKLOAD))

    def test_received_by_domain(self):
        sizes = self.sizes()
        rows = section(self.report, "Host/Domain Summary: Messages Received")
        got = {row[2]: (int(row[0]), int(row[1])) for row in rows}
        want = {}
        for qid, sender in self.sent.items():
            n, b = want.get(sender.split("@")[1], (0, 0))
            want[sender.split("@")[1]] = (n + 1, b + sizes[qid])
        self.assertEqual(got, want)

    def test_recipients_and_delivery(self):
        sizes = self.sizes()
        by_count = {row[1]: int(row[0]) for row in
                    section(self.report, "Recipients by message count")}
        by_size = {row[1]: int(row[0]) for row in
                   section(self.report, "Recipients by message size")}
        self.assertEqual(by_count, {RCPT: len(self.sent)})
        self.assertEqual(by_size, {RCPT: sum(sizes.values())})
        rows = section(self.report, "Host/Domain Summary: Message Delivery")
        delivery = {row[-1]: (int(row[0]), int(row[1]), int(row[2])) for row in rows}
        self.assertEqual(delivery, {HOST: (len(self.sent), sum(sizes.values()), 0)})

    def test_reject_detail(self):
        self.assertIn("message reject detail", self.report)
        detail = self.report[self.report.index("message reject detail"):]
        self.assertRegex(detail, r"RCPT\n\s+Relay access denied \(total: 1\)\n\s+1\s+localhost\n")
        self.assertIn("message deferral detail: none", self.report)
        self.assertIn("message bounce detail (by relay): none", self.report)


if __name__ == "__main__":
    unittest.main()
