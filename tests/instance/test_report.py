"""test_report.py: `tern report` compared with the truth of a known
workload. One instance (smtpd with STARTTLS, local delivery, the smtp
client to a real SMTP sink and to a closed port) takes a scripted
workload: messages from known senders and of known sizes accepted and
delivered locally and to the sink, some sessions over TLS, one local
submission through sendmail, recipients refused as unknown users, as
relay attempts and from a client on a DNS blocklist (a real DNS server),
one message held and one discarded by header_checks, one forwarded by an
alias, one message deferred to a dead destination and one
bounced by the sink. Every section of the report (text, and the same
numbers in the --html page) is checked against what the test did; the
sizes are the ones qmgr logged (as pflogsumm adds them up), and the
delay percentiles are computed from the delay= values of the log.

Also: --mail delivers a multipart/alternative message (text and HTML)
through Tern to a local mailbox; rotated and gzip-compressed copies of
the log give the same figures; garbage and hostile lines are counted as
not understood, or stay data (escaped in the HTML); and the progress
bar of tern report, tern map build and bulk queue changes appears on a
terminal (a pty) and nowhere else."""
import email
import email.policy
import gzip
import html.parser
import mailbox
import math
import os
import pty
import re
import select
import shlex
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sink as sinkmod  # noqa: E402
from dnsserver import DnsServer  # noqa: E402

HOST = "tern.test"
SENDMAIL = os.path.join(harness.BUILD, "sendmail", "sendmail")

# sender -> [(body size, [recipients])]; every recipient is delivered
# (root@ locally, okN@remote.test by the sink)
WORKLOAD = {
    "alice@example.org": [(1000, ["root@" + HOST, "ok1@remote.test"]),
                          (2000, ["ok1@remote.test"]),
                          (3000, ["ok2@remote.test", "ok3@remote.test"])],
    "bob@example.net": [(150, ["root@" + HOST]),
                        (250, ["ok1@remote.test"])],
    "carol@example.org": [(4000, ["ok2@remote.test"])],
}
TLS_SENDERS = {"bob@example.net"}            # their session uses STARTTLS
UNKNOWN_USERS = ["nosuch%d@%s" % (i, HOST) for i in range(3)]       # M = 3
RELAY_DENIED = ["someone%d@elsewhere.test" % i for i in range(2)]   # K = 2
RBL_CLIENT = "127.0.0.5"                     # listed in rbl.test: refused
RBL_REFUSED = ["root@" + HOST, "ok1@remote.test"]                  # R = 2
DEFERRED = ("dave@example.org", "later@dead.test")
BOUNCED = ("bouncer@" + HOST, "nobody@remote.test")
LOCAL_SUBMISSION = ("erin@example.com", "root@" + HOST, 500)       # through sendmail
FORWARDED = ("grace@example.org", "fwd@" + HOST, 300, "ok4@remote.test")   # an alias: forwarded
HELD = ("frank@example.net", "root@" + HOST, 600)       # header_checks HOLD: stays in hold/
DISCARDED = ("frank@example.net", "root@" + HOST, 650)  # header_checks DISCARD: never queued
HEADER_CHECKS = "/^Subject: hold me/ HOLD quarantined\n/^Subject: drop me/ DISCARD dropped\n"


def sections(text):
    """{title: [lines]} of a text report: a title, a line of dashes, the
    lines up to the next blank line."""
    out, lines = {}, text.splitlines()
    for i in range(1, len(lines)):
        if lines[i] and set(lines[i]) == {"-"} and len(lines[i]) == len(lines[i - 1]):
            body = []
            for rest in lines[i + 1:]:
                if not rest.strip():
                    break
                body.append(rest)
            out[lines[i - 1]] = body
    return out


def figures(lines):
    """{label: int} of lines "  label      N"."""
    out = {}
    for line in lines:
        m = re.match(r"^\s+(\S.*?)\s+(\d+)(\s+\(\d+%\))?$", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def table(lines, with_bytes):
    """{key: count} or {key: (count, bytes)} of a top list."""
    out = {}
    for line in lines:
        m = re.match(r"^\s+(\d+)\s+(\d+)  (.+)$" if with_bytes else r"^\s+(\d+)  (.+)$", line)
        if not m:
            continue
        if with_bytes:
            out[m.group(3)] = (int(m.group(1)), int(m.group(2)))
        else:
            out[m.group(2)] = int(m.group(1))
    return out


class Tables(html.parser.HTMLParser):
    """The cells of every table with an id (and the text of elements with
    an id), and the tags met, of an HTML page."""

    def __init__(self):
        super().__init__()
        self.tables, self.texts, self.tags = {}, {}, set()
        self.table = self.row = self.cell = None
        self.ids = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "table" and attrs.get("id"):
            self.table = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr" and self.table is not None:
            self.row = []
            self.table.append(self.row)
        elif tag in ("td", "th") and self.row is not None:
            self.cell = ""
        if attrs.get("id") and tag != "table":
            self.ids.append((tag, attrs["id"]))
            self.texts[attrs["id"]] = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self.table = self.row = None
        elif tag in ("td", "th") and self.cell is not None:
            self.row.append(self.cell)
            self.cell = None
        if self.ids and self.ids[-1][0] == tag:
            self.ids.pop()

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data
        for _, ident in self.ids:
            self.texts[ident] += data


def nearest_rank(values, p):
    values = sorted(values)
    return values[max(1, math.ceil(p / 100 * len(values))) - 1]


def run_on_pty(argv, timeout=60):
    """Run argv with stderr on a new pseudo-terminal (stdout a pipe); returns
    (exit status, stdout bytes, what the terminal got)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    got = b""
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:          # EIO: the last writer has gone
                    break
                if not data:
                    break
                got += data
            elif proc.poll() is not None:
                break
        out = proc.stdout.read()
        proc.wait(timeout=max(1, deadline - time.time()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, got


def make_cert(directory):
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=" + HOST, "-days", "2"],
                   capture_output=True, timeout=60, check=True)
    os.chmod(key, 0o644)
    return cert, key


def instance_with_commands(name, main_cf):
    """An instance whose command_directory holds tern and sendmail, as an
    installed system's does (tern report --mail runs sendmail from there)."""
    inst = harness.Instance(name)
    bindir = os.path.join(inst.dir, "bin")
    os.mkdir(bindir)
    os.symlink(harness.TERN, os.path.join(bindir, "tern"))
    os.symlink(SENDMAIL, os.path.join(bindir, "sendmail"))
    settings = {"command_directory": bindir}
    settings.update(main_cf)
    inst.set_main_cf(settings)
    return inst


@unittest.skipUnless(os.path.exists(os.path.join(harness.LIBEXEC, "smtp"))
                     and os.path.exists(os.path.join(harness.LIBEXEC, "local")),
                     "the smtp and local delivery agents are not built")
class TestReport(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("local delivery to root's mailbox: run as root")
        cls.sink = sinkmod.Sink()
        cls.addClassCleanup(cls.sink.stop)
        cls.sink.handler.reject_rcpts.add(BOUNCED[1])
        cls.dns = DnsServer({"5.0.0.127.rbl.test": {"A": ["127.0.0.2"],
                                                    "TXT": ["listed, see https://rbl.test/127.0.0.5"]}})
        cls.addClassCleanup(cls.dns.stop)
        dead_port = harness.free_port()
        inst = cls.inst = instance_with_commands("report", {})
        cls.addClassCleanup(inst.cleanup)
        d = inst.dir
        os.mkdir(os.path.join(d, "spool"))
        cert, key = make_cert(d)
        with open(os.path.join(d, "transport"), "w") as f:
            f.write("remote.test smtp:[127.0.0.1]:%d\n" % cls.sink.port)
            f.write("dead.test smtp:[127.0.0.1]:%d\n" % dead_port)
        with open(os.path.join(d, "aliases.txt"), "w") as f:
            f.write("bouncer root\n")
            f.write("%s %s\n" % (FORWARDED[1].split("@")[0], FORWARDED[3]))
        with open(os.path.join(d, "users"), "w") as f:
            f.write("root x\n")
        with open(os.path.join(d, "header_checks"), "w") as f:
            f.write(HEADER_CHECKS)
        inst.set_main_cf({
            "mynetworks": "127.0.0.2/32",            # 127.0.0.1 may not relay
            "smtpd_peername_lookup": "no",
            "relay_domains": "remote.test, dead.test",
            "transport_maps": "texthash:%s/transport" % d,
            "alias_maps": "texthash:%s/aliases.txt" % d,
            "local_recipient_maps": "texthash:%s/users, $alias_maps" % d,
            "mail_spool_directory": os.path.join(d, "spool"),
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": cert, "smtpd_tls_key_file": key,
            "smtpd_client_restrictions": "reject_rbl_client rbl.test",
            "header_checks": "pcre:%s/header_checks" % d,
            "smtpd_dns_servers": "127.0.0.1:%d" % cls.dns.port, "smtpd_dns_timeout": "5s",
            "minimal_backoff_time": "1000s", "maximal_backoff_time": "2000s",
            "queue_run_delay": "1000s",
        })
        inst.start()
        cls.drive()
        cls.log = inst.log_text()
        cls.text = inst.tern("report").stdout
        cls.html = inst.tern("report", "--html").stdout
        cls.report = sections(cls.text)
        # before test_mail adds its own message to the log
        cls.top2 = inst.tern("report", "--top", "2").stdout
        cls.since1h = inst.tern("report", "--since", "1h").stdout

    @classmethod
    def send(cls, s, sender, rcpts, size, subject=None):
        s.mail(sender)
        for r in rcpts:
            code, reply = s.rcpt(r)
            assert code == 250, (r, code, reply)
        text = "x" * size
        lines = "\r\n".join(text[i:i + 70] for i in range(0, size, 70))
        body = "Subject: %s\r\n\r\n%s\r\n" % (subject or "from " + sender, lines)
        code, reply = s.data(body.encode())
        assert code == 250, (code, reply)
        return harness.queue_id_of(reply)

    @classmethod
    def drive(cls):
        inst = cls.inst
        cls.sent = {}            # queue ID -> (sender, [recipients delivered], [bounced], [deferred])
        for sender, messages in WORKLOAD.items():
            with inst.smtp() as s:
                s.ehlo("client.example")
                if sender in TLS_SENDERS:
                    s.starttls(context=ssl._create_unverified_context())
                    s.ehlo("client.example")
                for size, rcpts in messages:
                    cls.sent[cls.send(s, sender, rcpts, size)] = (sender, rcpts, [], [])
        with inst.smtp() as s:
            s.ehlo("client.example")
            qid = cls.send(s, DEFERRED[0], [DEFERRED[1]], 700)
            cls.sent[qid] = (DEFERRED[0], [], [], [DEFERRED[1]])
            qid = cls.send(s, BOUNCED[0], [BOUNCED[1]], 800)
            cls.sent[qid] = (BOUNCED[0], [], [BOUNCED[1]], [])
            cls.bounced_qid = qid
            qid = cls.send(s, FORWARDED[0], [FORWARDED[1]], FORWARDED[2])
            cls.sent[qid] = (FORWARDED[0], [], [], [])
            cls.forwarded_qid = qid
            cls.held_qid = cls.send(s, HELD[0], [HELD[1]], HELD[2], subject="hold me")
            cls.sent[cls.held_qid] = (HELD[0], [], [], [])
            cls.discarded_qid = cls.send(s, DISCARDED[0], [DISCARDED[1]], DISCARDED[2],
                                         subject="drop me")
            # refused recipients: unknown users and relay attempts
            s.mail("mallory@example.org")
            for r in UNKNOWN_USERS + RELAY_DENIED:
                code, _ = s.rcpt(r)
                assert code in (550, 454, 554), (r, code)
            s.rset()
        # a client on a DNS blocklist: refused at RCPT (smtpd_delay_reject)
        s = smtplib.SMTP("127.0.0.1", inst.port, timeout=10, source_address=(RBL_CLIENT, 0))
        try:
            s.ehlo("client.example")
            s.mail("spammer@spam.test")
            for r in RBL_REFUSED:
                code, reply = s.rcpt(r)
                assert code == 554 and b"blocked using rbl.test" in reply, (code, reply)
        finally:
            s.quit()
        sender, rcpt, size = LOCAL_SUBMISSION
        r = subprocess.run([SENDMAIL, "-C", inst.dir, "-f", sender, rcpt],
                           input=("Subject: local\n\n%s\n" % ("l\n" * (size // 2))).encode(),
                           capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        m = inst.wait_log(r"(\w+): uid=\d+ from=<%s>" % re.escape(sender), timeout=30)
        cls.sent[m.group(1)] = (sender, [rcpt], [], [])
        # everything delivered, bounced (with its notice) or deferred
        inst.wait_log(r"%s: hold: header Subject: hold me" % cls.held_qid, timeout=30)
        inst.wait_log(r"%s: discard: header Subject: drop me" % cls.discarded_qid, timeout=30)
        for qid, (_, ok, bounced, deferred) in cls.sent.items():
            if qid == cls.held_qid:
                continue
            if deferred:
                inst.wait_log(r"%s: to=<%s>.*status=deferred" % (qid, re.escape(deferred[0])),
                              timeout=60)
            else:
                inst.wait_log(r"%s: removed" % qid, timeout=60)
        m = inst.wait_log(r"%s: to=<%s>, orig_to=<%s>.*status=sent \(forwarded as (\w+)\)"
                          % (cls.forwarded_qid, re.escape(FORWARDED[3]), re.escape(FORWARDED[1])),
                          timeout=30)
        cls.forward_copy = m.group(1)
        inst.wait_log(r"%s: removed" % cls.forward_copy, timeout=60)
        m = inst.wait_log(r"%s: sender non-delivery notification: (\w+)" % cls.bounced_qid, timeout=30)
        cls.ndr = m.group(1)
        inst.wait_log(r"%s: removed" % cls.ndr, timeout=30)
        deadline = time.time() + 10
        while time.time() < deadline:
            text = inst.log_text()
            if text.count(": disconnect from ") >= text.count(": connect from "):
                break
            time.sleep(0.1)

    # ---- the truth, from the workload and the sizes qmgr logged ----

    def sizes(self):
        return {qid: int(size) for qid, size in
                re.findall(r"(\w+): from=<[^>]*>, size=(\d+)", self.log)}

    def expected_senders(self):
        """{sender: (messages, bytes)}: the held message has no size yet
        (qmgr logs it when the message is released)."""
        sizes, out = self.sizes(), {}
        for qid, (sender, _, _, _) in self.sent.items():
            n, b = out.get(sender, (0, 0))
            out[sender] = (n + 1, b + sizes.get(qid, 0))
        return out

    def expected_recipients(self):
        """{recipient: (deliveries, bytes)}: the notice of the bounce goes
        to bouncer@, an alias of root; the forwarded message is delivered
        as the copy local made (its forwarding is counted apart)."""
        sizes, out = self.sizes(), {}
        deliveries = [(r, sizes[qid]) for qid, (_, ok, _, _) in self.sent.items() for r in ok]
        deliveries.append(("root@" + HOST, sizes[self.ndr]))
        deliveries.append((FORWARDED[3], sizes[self.forward_copy]))
        for r, size in deliveries:
            n, b = out.get(r, (0, 0))
            out[r] = (n + 1, b + size)
        return out

    @staticmethod
    def by_domain(table_):
        out = {}
        for addr, (n, b) in table_.items():
            dom = addr.rsplit("@", 1)[1]
            on, ob = out.get(dom, (0, 0))
            out[dom] = (on + n, ob + b)
        return out

    # ---- the text report ----

    def test_summary(self):
        got = figures(self.report["Summary"])
        sizes = self.sizes()
        recipients = self.expected_recipients()
        local = recipients.get("root@" + HOST, (0, 0))[0]
        delivered = sum(n for n, _ in recipients.values())
        self.assertEqual(got, {
            "received": len(self.sent),
            "received bytes": sum(sizes.get(q, 0) for q in self.sent),
            "received by SMTP": len(self.sent) - 1,
            "received locally": 1,
            "delivered": delivered,
            "delivered here": local,
            "relayed": delivered - local,
            "forwarded": 1,
            "deferred messages": 1,
            "deferrals": 1,
            "bounced": 1,
            "expired": 0,
            "rejected": len(UNKNOWN_USERS) + len(RELAY_DENIED) + len(RBL_REFUSED),
            "discarded": 1,
            "held": 1,
            "bounce notices": 1,
            "senders": len(self.expected_senders()),
            "sending domains": len(self.by_domain(self.expected_senders())),
            "recipients": len(recipients),
            "recipient domains": len(self.by_domain(recipients)),
        }, self.text)
        self.assertRegex(self.text, r"Log: %s \(1 file, \d+ lines, 0 not understood\)"
                         % re.escape(self.inst.log_path))
        self.assertEqual(int(re.search(r"(\d+) lines", self.text).group(1)),
                         len(self.log.splitlines()))

    def test_rejections(self):
        self.assertEqual(table(self.report["Rejections by reason"], False),
                         {"unknown user": len(UNKNOWN_USERS), "relay denied": len(RELAY_DENIED),
                          "RBL": len(RBL_REFUSED)})
        self.assertEqual(table(self.report["Rejections by restriction"], False), {
            "RCPT: Recipient address rejected: User unknown in local recipient table":
                len(UNKNOWN_USERS),
            "RCPT: Relay access denied": len(RELAY_DENIED),
            "RCPT: Service unavailable; Client host [address] blocked using rbl.test":
                len(RBL_REFUSED)})

    def test_top_senders_and_domains(self):
        senders = self.expected_senders()
        self.assertEqual(table(self.report["Top senders"], True), senders)
        self.assertEqual(table(self.report["Top sender domains"], True), self.by_domain(senders))
        # ordered by count, then by name
        rows = [line.split()[-1] for line in self.report["Top senders"][1:]]
        self.assertEqual(rows, sorted(senders, key=lambda s: (-senders[s][0], s)))

    def test_top_recipients_and_domains(self):
        recipients = self.expected_recipients()
        self.assertEqual(table(self.report["Top recipients"], True), recipients)
        self.assertEqual(table(self.report["Top recipient domains"], True),
                         self.by_domain(recipients))

    def test_top_is_bounded(self):
        got = table(sections(self.top2)["Top recipients"], True)
        want = sorted(self.expected_recipients().items(), key=lambda kv: (-kv[1][0], kv[0]))[:2]
        self.assertEqual(got, dict(want))

    def test_delays(self):
        delays = [float(v) for v in re.findall(r"delay=([\d.]+), delays=[^,]*, dsn=[^,]*, "
                                               r"status=sent \((?!forwarded as )",
                                               self.log)]
        got = self.report["Delivery delays (seconds, delay= of the deliveries)"]
        values = dict(re.match(r"^\s+(\S+)\s+(\S+)$", line).groups() for line in got)
        self.assertEqual(int(values["deliveries"]), len(delays))
        for p in (50, 90, 99):
            self.assertAlmostEqual(float(values["p%d" % p]), nearest_rank(delays, p), places=2)
        self.assertAlmostEqual(float(values["max"]), max(delays), places=2)

    def test_hours(self):
        lines = self.report["Traffic per hour (local time)"]
        rows = {}
        for line in lines:
            m = re.match(r"^\s+(\d\d):00\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", line)
            if m:
                rows[int(m.group(1))] = tuple(int(g) for g in m.groups()[1:])
        self.assertEqual(sorted(rows), list(range(24)))
        want = {h: [0, 0, 0, 0] for h in range(24)}

        def hour(line):
            return int(line[7:9])

        received = {qid for qid in self.sent}
        for line in self.log.splitlines():
            m = re.search(r": (\w+): (client=|uid=)", line)
            if m and m.group(1) in received:
                want[hour(line)][0] += 1
            if "status=sent" in line and "status=sent (forwarded as " not in line:
                want[hour(line)][1] += 1
            if "NOQUEUE: reject:" in line:
                want[hour(line)][2] += 1
            if "status=deferred" in line:
                want[hour(line)][3] += 1
        self.assertEqual(rows, {h: tuple(v) for h, v in want.items()})
        busiest = max(range(24), key=lambda h: (want[h][0] + want[h][1], -h))
        self.assertIn("busiest: %02d:00 (%d)" % (busiest, want[busiest][0] + want[busiest][1]),
                      "\n".join(lines))

    def test_deferral_and_bounce_reasons(self):
        self.assertEqual(table(self.report["Deferral reasons"], False),
                         {"connect to 127.0.0.1[address]:%s: Connection refused"
                          % re.search(r"connect to 127\.0\.0\.1\[127\.0\.0\.1\]:(\d+)", self.log).group(1): 1})
        reasons = table(self.report["Bounce reasons"], False)
        self.assertEqual(list(reasons.values()), [1])
        self.assertIn("Recipient address rejected: no such user here", list(reasons)[0])
        self.assertNotIn(BOUNCED[1], list(reasons)[0])     # addresses are grouped

    def test_tls_share(self):
        got = figures(self.report["TLS"])
        connects = self.log.count(": connect from ")
        self.assertEqual(got["connections"], connects)
        self.assertEqual(got["with TLS"], len(TLS_SENDERS))
        share = (100 * len(TLS_SENDERS) + connects // 2) // connects
        self.assertIn("(%d%%)" % share, "\n".join(self.report["TLS"]))
        self.assertEqual(got["TLSv1.3"], len(TLS_SENDERS))
        self.assertEqual(got["outgoing TLS sessions"], 0)

    def test_queue_at_the_end(self):
        rows = {}
        for line in self.report["Queue now"][1:]:
            state, n, b = line.split()
            rows[state] = (int(n), int(b))
        deferred = [qid for qid, v in self.sent.items() if v[3]]
        self.assertEqual(self.inst.queue_ids("deferred"), deferred)
        self.assertEqual(self.inst.queue_ids("hold"), [self.held_qid])
        dsize = os.path.getsize(os.path.join(self.inst.queue_dir, "deferred", deferred[0]))
        self.assertEqual({s: n for s, (n, _) in rows.items()},
                         {"incoming": 0, "active": 0, "deferred": 1, "hold": 1, "total": 2})
        # the bytes are the message's content, as mailq shows them
        self.assertGreater(rows["deferred"][1], 700)
        self.assertLess(rows["deferred"][1], dsize)
        self.assertGreater(rows["hold"][1], HELD[2])
        self.assertEqual(rows["total"][1], rows["deferred"][1] + rows["hold"][1])
        mailq = self.inst.tern("queue").stdout
        self.assertIn("-- %d Kbytes in 2 Requests." % ((rows["total"][1] + 1023) // 1024), mailq)

    def test_period(self):
        """A period before the workload has none of it."""
        r = self.inst.tern("report", "--from", "2001-01-01", "--to", "2001-01-02 00:00")
        got = figures(sections(r.stdout)["Summary"])
        self.assertEqual(set(got.values()), {0})
        self.assertIn("Period: 2001-01-01 00:00 to 2001-01-02 00:00", r.stdout)
        self.assertEqual(figures(sections(self.since1h)["Summary"])["received"], len(self.sent))
        for bad in (["--since", "yesterday"], ["--from", "x"], ["--since", "1h", "--from", "2001-01-01"],
                    ["--top", "0"], ["--mail", "-oi"], ["extra"]):
            r = self.inst.tern("report", *bad, check=False)
            self.assertEqual(r.returncode, 2, bad)
            self.assertIn("tern report: ", r.stderr)

    # ---- HTML ----

    def test_html_is_well_formed_and_self_contained(self):
        ET.fromstring(self.html.split("\n", 1)[1])          # XML after the DOCTYPE line
        p = Tables()
        p.feed(self.html)
        p.close()
        self.assertIn("svg", p.tags)
        self.assertFalse({"script", "link", "img", "iframe"} & p.tags)
        self.assertNotRegex(self.html, r"(?i)(src|href)=|url\(|@import")

    def test_html_holds_the_same_numbers(self):
        p = Tables()
        p.feed(self.html)
        p.close()
        summary = {row[0]: int(row[1]) for row in p.tables["summary"]}
        self.assertEqual(summary, figures(self.report["Summary"]))
        for ident, title, with_bytes in (("senders", "Top senders", True),
                                         ("recipients", "Top recipients", True),
                                         ("sender-domains", "Top sender domains", True),
                                         ("recipient-domains", "Top recipient domains", True),
                                         ("reject-reasons", "Rejections by reason", False),
                                         ("reject-details", "Rejections by restriction", False),
                                         ("defer-reasons", "Deferral reasons", False),
                                         ("bounce-reasons", "Bounce reasons", False)):
            rows = p.tables[ident][1:]
            got = {row[-1]: (int(row[0]), int(row[1])) if with_bytes else int(row[0]) for row in rows}
            self.assertEqual(got, table(self.report[title], with_bytes), ident)
        delays = {row[0]: row[1] for row in p.tables["delays"]}
        text = dict(re.match(r"^\s+(\S+)\s+(\S+)$", line).groups()
                    for line in self.report["Delivery delays (seconds, delay= of the deliveries)"])
        self.assertEqual(delays, text)
        hours = [tuple(int(c) for c in row[1:]) for row in p.tables["hours"][1:]]
        self.assertEqual(sum(h[0] for h in hours), len(self.sent))
        queue = {row[0]: int(row[1]) for row in p.tables["queue"][1:]}
        self.assertEqual(queue, {"incoming": 0, "active": 0, "deferred": 1, "hold": 1, "total": 2})
        tls = {row[0]: int(row[1]) for row in p.tables["tls"]}
        self.assertEqual(tls["with TLS"], len(TLS_SENDERS))
        self.assertEqual(int(p.texts["not-understood"]), 0)

    # ---- --mail ----

    def test_mail_delivers_multipart_alternative(self):
        box_path = os.path.join(self.inst.dir, "spool", "root")

        def reports():
            if not os.path.exists(box_path):
                return []
            box = mailbox.mbox(box_path, create=False)
            try:
                return [m for m in box if (m["Subject"] or "").startswith("Mail report for")]
            finally:
                box.close()

        self.assertEqual(reports(), [])
        r = self.inst.tern("report", "--mail", "root@" + HOST)
        self.assertEqual(r.stdout, "")
        deadline = time.time() + 30
        while not reports() and time.time() < deadline:
            time.sleep(0.2)
        got = reports()
        self.assertEqual(len(got), 1, self.inst.log_tail())
        msg = email.message_from_bytes(got[0].as_bytes(), policy=email.policy.default)
        self.assertEqual(msg.get_content_type(), "multipart/alternative")
        self.assertEqual(msg["To"], "root@" + HOST)
        self.assertRegex(msg["Subject"], r"^Mail report for tern\.test: \d{4}-\d\d-\d\d \d\d:\d\d to ")
        parts = {p.get_content_type(): p.get_content() for p in msg.iter_parts()}
        self.assertEqual(set(parts), {"text/plain", "text/html"})
        text = parts["text/plain"]
        self.assertEqual(table(sections(text)["Top senders"], True),
                         table(self.report["Top senders"], True))
        self.assertEqual(figures(sections(text)["Summary"])["received"], len(self.sent))
        p = Tables()
        p.feed(parts["text/html"])
        self.assertEqual({row[0]: int(row[1]) for row in p.tables["summary"]}["received"],
                         len(self.sent))
        ET.fromstring(parts["text/html"].split("\n", 1)[1])
        # it went in through sendmail and pickup, as local mail does
        self.assertRegex(self.inst.log_text(), r"\w+: uid=0 from=<")

    def test_timer_service_mails_when_report_recipient_is_set(self):
        """The commands of tern-report.service as make install writes it,
        run by a shell as systemd would (with this instance's tern):
        nothing while report_recipient is empty, the report when it is set."""
        with open(os.path.join(harness.BUILD, "conf", "tern-report.service")) as f:
            unit = f.read()
        self.assertIn("[Service]", unit)
        commands = {}
        for line in unit.splitlines():
            m = re.match(r"^(ExecCondition|ExecStart)=(.*)$", line)
            if m:
                argv = shlex.split(m.group(2).replace("$$", "$"))
                argv = [a.replace("/usr/local/bin/", os.path.join(self.inst.dir, "bin") + "/")
                        for a in argv]
                commands[m.group(1)] = argv
        self.assertEqual(set(commands), {"ExecCondition", "ExecStart"})
        env = dict(os.environ, TERN_CONFIG_DIRECTORY=self.inst.dir)
        env.pop("MAIL_CONFIG", None)

        def run(which):
            return subprocess.run(commands[which], env=env, capture_output=True, text=True,
                                  timeout=120, stdin=subprocess.DEVNULL)

        r = run("ExecCondition")
        self.assertEqual(r.returncode, 1, r.stderr)        # skipped: no report_recipient
        box_path = os.path.join(self.inst.dir, "spool", "root")
        before = self.count_reports(box_path)
        self.inst.set_main_cf({"report_recipient": "root@$myhostname"})
        r = run("ExecCondition")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run("ExecStart")
        self.assertEqual((r.returncode, r.stdout), (0, ""), r.stderr)
        deadline = time.time() + 30
        while self.count_reports(box_path) == before and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(self.count_reports(box_path), before + 1, self.inst.log_tail())

    @staticmethod
    def count_reports(path):
        if not os.path.exists(path):
            return 0
        box = mailbox.mbox(path, create=False)
        try:
            return sum(1 for m in box if (m["Subject"] or "").startswith("Mail report for"))
        finally:
            box.close()

    # ---- other logs ----

    def summary_of(self, *args):
        r = self.inst.tern("report", *args)
        return r.stdout, figures(sections(r.stdout)["Summary"])

    def test_rotated_and_gzipped_logs(self):
        tmp = tempfile.mkdtemp(prefix="tern-report-logs-")
        self.addCleanup(shutil.rmtree, tmp, True)
        lines = self.log.splitlines(keepends=True)
        third = len(lines) // 3
        with gzip.open(os.path.join(tmp, "mail.log.2.gz"), "wt") as f:
            f.writelines(lines[:third])
        with open(os.path.join(tmp, "mail.log.1"), "w") as f:
            f.writelines(lines[third:2 * third])
        with open(os.path.join(tmp, "mail.log"), "w") as f:
            f.writelines(lines[2 * third:])
        # an older copy that is not the log's: never read
        with open(os.path.join(tmp, "mail.log.old"), "w") as f:
            f.write("garbage\n")
        text, got = self.summary_of("--log", os.path.join(tmp, "mail.log"))
        self.assertEqual(got, figures(self.report["Summary"]))
        self.assertIn("(3 files, %d lines, 0 not understood)" % len(lines), text)
        for title in ("Top senders", "Top recipients", "Rejections by restriction",
                      "Delivery delays (seconds, delay= of the deliveries)"):
            self.assertEqual(sections(text)[title], self.report[title], title)
        # dateext names and a gzip file under a plain name
        os.rename(os.path.join(tmp, "mail.log.2.gz"), os.path.join(tmp, "mail.log-20261201"))
        os.rename(os.path.join(tmp, "mail.log.1"), os.path.join(tmp, "mail.log-20261202.gz"))
        _, got = self.summary_of("--log", os.path.join(tmp, "mail.log"))
        self.assertEqual(got, figures(self.report["Summary"]))

    def test_garbage_lines_are_counted_not_understood(self):
        tmp = tempfile.mkdtemp(prefix="tern-report-garbage-")
        self.addCleanup(shutil.rmtree, tmp, True)
        stamp = time.strftime("%b %e %H:%M:%S")
        garbage = [b"garbage\n", b"\x00\x01\x02 binary \xff\xfe\n", b"A" * 100000 + b"\n",
                   b"Dec 99 99:99:99 host tern/smtpd[1]: connect from x\n",
                   stamp.encode() + b" host tern/qmgr[1]: 0123456789BCDFGH: from=<a@b>, size=x\n",
                   stamp.encode() + b" host tern/smtp[1]: 0123456789BCDFGH: to=<a@b>, relay=x\n",
                   b"\n"]
        other = [stamp.encode() + b" host cron[12]: (root) CMD (true)\n"]
        with open(os.path.join(tmp, "mail.log"), "wb") as f:
            f.write(self.log.encode())
            f.writelines(garbage + other)
        text, got = self.summary_of("--log", os.path.join(tmp, "mail.log"))
        self.assertEqual(got, figures(self.report["Summary"]))
        self.assertIn("%d not understood)" % len(garbage), text)
        r = self.inst.tern("report", "--html", "--log", os.path.join(tmp, "mail.log"))
        p = Tables()
        p.feed(r.stdout)
        self.assertEqual(int(p.texts["not-understood"]), len(garbage))

    def test_hostile_addresses_stay_data(self):
        tmp = tempfile.mkdtemp(prefix="tern-report-hostile-")
        self.addCleanup(shutil.rmtree, tmp, True)
        stamp = time.strftime("%b %e %H:%M:%S")
        evil = '"<script>alert(1)</script>%n%s&amp;"@evil.test'
        lines = ["%s host tern/smtpd[1]: 0123456789BCDFGH: client=x[192.0.2.1]" % stamp,
                 "%s host tern/qmgr[1]: 0123456789BCDFGH: from=<%s>, size=10, nrcpt=1 (queue active)"
                 % (stamp, evil + ">, size=99"),
                 "%s host tern/local[1]: 0123456789BCDFGH: to=<%s>, relay=local, delay=0.5, "
                 "delays=0/0/0/0.5, dsn=2.0.0, status=sent (<b>delivered</b>)" % (stamp, evil),
                 "%s host tern/smtpd[1]: NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 "
                 "<%s>: Relay access denied; from=<%s> to=<%s> proto=ESMTP helo=<x>"
                 % (stamp, evil, evil, evil)]
        for i in range(30000):       # more distinct senders than a table keeps
            lines.append("%s host tern/smtpd[1]: Q%015d: client=x[192.0.2.1]" % (stamp, i))
            lines.append("%s host tern/qmgr[1]: Q%015d: from=<s%d@d%d.test>, size=1, nrcpt=1 "
                         "(queue active)" % (stamp, i, i, i))
        with open(os.path.join(tmp, "mail.log"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(tmp, "mail.log"), "ab") as f:
            # 8-bit bytes that are not UTF-8, and a long UTF-8 address that a
            # table cuts in the middle of a character
            long = "\u00e9" * 300 + "@x.test"
            f.write(b"%s host tern/local[1]: 0123456789BCDFGH: to=<\xc3(\xff\xed\xa0\x80@x.test>, "
                    b"relay=local, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (ok)\n" % stamp.encode())
            f.write(b"%s host tern/local[1]: 0123456789BCDFGH: to=<%s>, relay=local, delay=1, "
                    b"delays=0/0/0/1, dsn=2.0.0, status=sent (ok)\n" % (stamp.encode(), long.encode()))
        r = subprocess.run([harness.TERN, "-c", self.inst.dir, "report", "--html", "--log",
                            os.path.join(tmp, "mail.log")], capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        r.stdout.decode("utf-8")                  # strict: valid UTF-8 throughout
        self.assertIn(b"<td>?(????@x.test</td>", r.stdout)   # one ? per bad byte
        r.stdout = r.stdout.decode()
        self.assertNotIn("<script", r.stdout)
        self.assertNotIn("<b>", r.stdout)
        ET.fromstring(r.stdout.split("\n", 1)[1])
        p = Tables()
        p.feed(r.stdout)
        senders = {row[-1]: row for row in p.tables["senders"][1:]}
        self.assertIn(evil + ">, size=99", senders)          # the address, as data
        self.assertIn("(others, not counted one by one)", senders)
        summary = {row[0]: int(row[1]) for row in p.tables["summary"]}
        self.assertEqual(summary["received"], 30001)
        self.assertEqual(summary["received bytes"], 30010)
        self.assertEqual(summary["rejected"], 1)
        text = self.inst.tern("report", "--log", os.path.join(tmp, "mail.log")).stdout
        self.assertIn(evil + ">, size=99", text)
        self.assertIn("0 not understood", text)


class TestProgress(unittest.TestCase):
    """The progress bar: on a terminal (stderr on a pty) for tern report,
    tern map build and bulk queue changes; nothing on stderr otherwise."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(harness.LIBEXEC, "smtp")):
            raise unittest.SkipTest("the smtp delivery agent is not built")
        cls.dead_port = harness.free_port()
        inst = cls.inst = harness.Instance("progress", main_cf={
            "relay_domains": "dead.test", "mynetworks": "127.0.0.0/8",
            "transport_maps": "inline:{dead.test=smtp:[127.0.0.1]:%d}" % cls.dead_port,
            "minimal_backoff_time": "1000s", "maximal_backoff_time": "2000s",
            "queue_run_delay": "1000s"}, master_cf_extra=[
            "smtp      unix  -       -       n       -       -       smtp"])
        cls.addClassCleanup(inst.cleanup)
        inst.start()
        cls.tmp = tempfile.mkdtemp(prefix="tern-progress-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)

    def bar_shown(self, got, label):
        text = got.decode("utf-8", "replace")
        self.assertRegex(text, r"\r%s \[[#.]+\]\s+\d+%%" % re.escape(label))
        self.assertTrue(text.endswith("\r"), repr(text[-80:]))      # wiped at the end
        self.assertTrue(text.rstrip("\r").split("\r")[-1].strip() == "", repr(text[-80:]))

    def test_map_build(self):
        source = os.path.join(self.tmp, "big")
        with open(source, "w") as f:
            for i in range(200000):
                f.write("key%d.example.com value%d\n" % (i, i))
        rc, out, got = run_on_pty([harness.TERN, "map", "build", "hash:" + source])
        self.assertEqual(rc, 0, got)
        self.bar_shown(got, "building big")
        self.assertEqual(out, b"")
        r = subprocess.run([harness.TERN, "map", "build", "hash:" + source], capture_output=True,
                           timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual((r.returncode, r.stdout, r.stderr), (0, b"", b""))
        r = subprocess.run([harness.TERN, "map", "query", "hash:" + source, "key199999.example.com"],
                           capture_output=True, timeout=60, text=True)
        self.assertEqual(r.stdout, "value199999\n")

    def test_report(self):
        log = os.path.join(self.tmp, "large.log")
        stamp = time.strftime("%b %e %H:%M:%S")
        with open(log, "w") as f:
            for i in range(100000):
                f.write("%s host tern/smtpd[1]: connect from x[192.0.2.%d]\n" % (stamp, i % 250))
        # a fixed period: the default one ends now, and the two runs below
        # may fall in different minutes on a slow machine
        now = time.time()
        period = ["--from", time.strftime("%Y-%m-%d %H:%M", time.localtime(now - 3600)),
                  "--to", time.strftime("%Y-%m-%d %H:%M", time.localtime(now + 3600))]
        report = [harness.TERN, "-c", self.inst.dir, "report", "--log", log] + period
        rc, out, got = run_on_pty(report)
        self.assertEqual(rc, 0, got)
        self.bar_shown(got, "reading the log")
        self.assertRegex(out, rb"\n  connections\s+100000\n")
        r = subprocess.run(report,
                           capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertEqual(r.stdout, out)

    def test_bulk_queue_changes(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            for i in range(40):
                s.sendmail("sender@example.org", ["later%d@dead.test" % i], b"Subject: x\r\n\r\nx\r\n")
        deadline = time.time() + 60
        while len(self.inst.queue_ids("deferred")) < 40 and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(len(self.inst.queue_ids("deferred")), 40, self.inst.log_tail())
        rc, out, got = run_on_pty([harness.TERN, "-c", self.inst.dir, "hold", "ALL"])
        self.assertEqual(rc, 0, got)
        self.bar_shown(got, "tern hold")
        self.assertIn(b"Held: 40 messages", out)
        self.assertEqual(len(self.inst.queue_ids("hold")), 40)
        r = harness.tern("-c", self.inst.dir, "release", "ALL")
        self.assertEqual(r.stderr, "")
        self.assertIn("Released: 40 messages", r.stdout)
        rc, out, got = run_on_pty([harness.TERN, "-c", self.inst.dir, "delete", "--domain", "dead.test"])
        self.assertEqual(rc, 0, got)
        self.bar_shown(got, "tern delete")
        self.assertIn(b"Deleted: 40 messages", out)


if __name__ == "__main__":
    unittest.main()
