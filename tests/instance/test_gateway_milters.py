"""test_gateway_milters.py: whole-instance tests of smtpd_milters with the
milters a mail gateway runs, each Debian's package started by the test with
its own configuration in a temporary directory, listening on loopback, in
front of a whole Tern instance whose mail goes to a relayhost sink:
spamass-milter in front of SpamAssassin's spamd (local rules only): GTUBE
refused, ham passes with SpamAssassin's headers; clamav-milter in front of
clamd on a one-signature database built with sigtool: the EICAR test file
refused with 5xx, ham passes, a 5 MB message is scanned from the spooled
copy, and a milter that dies in the middle of a transaction costs no mail
(milter_default_action); rspamd's proxy worker in milter mode: GTUBE
refused, a scored header tagged, ham passes, per-list RBL weights with the
test's DNS server; OpenDMARC with its own SPF check (SPFSelfValidate) and
the test's DNS server (given to it through resolv.conf in a mount namespace
of its own): a forged From: of a p=reject domain refused, an aligned one
passes with its Authentication-Results."""
import os
import pwd
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sink  # noqa: E402
from scanners import (CLAMAV_MILTER, RSPAMD, EICAR, GTUBE, RSPAMD_OFFLINE, Daemon, clamd_unavailable,  # noqa: E402
                      port_open, start_clamav_milter, start_clamd, start_rspamd, tail, wait_for)

SENDER = "sender@client.test"
RCPT = "someone@example.com"
START_LIMIT = 60          # seconds a milter or its scanner may take to start

SPAMD = "/usr/sbin/spamd"
SPAMASS_MILTER = "/usr/sbin/spamass-milter"


def message(subject, body="Hello,\r\nthe minutes of Monday's meeting are below.\r\n", extra=""):
    return ("From: Sender <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
            "Date: Sun, 6 Dec 2026 12:00:00 +0000\r\nMessage-ID: <%s@client.test>\r\n%s\r\n%s"
            % (SENDER, RCPT, subject, re.sub(r"\W", "", subject), extra, body)).encode()


def missing(*paths_pkgs):
    for path, pkg in paths_pkgs:
        if not os.access(path, os.X_OK):
            return "%s is missing: install %s (tools/install-deps)" % (path, pkg)
    if os.geteuid() != 0:
        return "the scanners are started as root to drop to their accounts"
    return None


class GatewayTest(unittest.TestCase):
    """One Tern instance per class in front of the class's milters
    (start_milters returns the smtpd_milters value), relaying to a sink."""

    main_cf = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-gwmilter-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.daemons = []
        cls.logs = []
        cls.sink = sink.Sink()
        cls.inst = None
        try:
            milters = cls.start_milters()
            settings = {"relayhost": "[127.0.0.1]:%d" % cls.sink.port, "mynetworks": "127.0.0.1/32",
                        "smtpd_milters": milters, "milter_default_action": "tempfail",
                        "message_size_limit": "20000000"}
            settings.update(cls.main_cf)
            cls.inst = harness.Instance(name="gwmilter", main_cf=settings)
            # Under AddressSanitizer freed memory waits in a quarantine
            # (256 MiB by default) before it is used again, which would
            # count as smtpd's growth; a small one keeps the figure Tern's.
            asan = os.environ.get("ASAN_OPTIONS")
            if asan is not None:
                os.environ["ASAN_OPTIONS"] = asan + ":quarantine_size_mb=0"
            try:
                cls.inst.start()
            finally:
                if asan is not None:
                    os.environ["ASAN_OPTIONS"] = asan
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.inst:
                cls.inst.cleanup()
        finally:
            for d in reversed(cls.daemons):
                d.stop()
            cls.sink.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def context(self):
        return "\nTern log:\n%s\n%s" % (self.inst.log_tail(30),
                                        "".join("%s:\n%s" % (p, tail(p, 30)) for p in self.logs))

    def send(self, subject, **kw):
        """Send one message; (code, reply) of the refusal, or None when accepted."""
        try:
            with smtplib.SMTP("127.0.0.1", self.inst.port, timeout=60) as c:
                c.sendmail(SENDER, [RCPT], message(subject, **kw))
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode(errors="replace")
        except smtplib.SMTPRecipientsRefused as e:
            code, text = list(e.recipients.values())[0]
            return code, text.decode(errors="replace")
        return None

    def delivered(self, subject, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = [m for m in self.sink.handler.messages
                   if ("Subject: %s\r\n" % subject).encode() in m[2]]
            if got:
                return got[0][2]
            time.sleep(0.05)
        self.fail("%r not delivered%s" % (subject, self.context()))

    def not_delivered(self, subject):
        self.assertFalse([m for m in self.sink.handler.messages
                          if ("Subject: %s\r\n" % subject).encode() in m[2]])


# ---- SpamAssassin through spamass-milter ----

@unittest.skipIf(missing((SPAMD, "spamd"), (SPAMASS_MILTER, "spamass-milter"), ("/usr/bin/spamc", "spamc")),
                 missing((SPAMD, "spamd"), (SPAMASS_MILTER, "spamass-milter"), ("/usr/bin/spamc", "spamc")))
class TestSpamassMilter(GatewayTest):
    """spamass-milter -r 15 (refuse at 15 points; GTUBE scores 1000) with
    spamc talking to the test's spamd (local tests only, no user config)."""

    @classmethod
    def start_milters(cls):
        spamd_port = harness.free_port()
        mport = harness.free_port()
        home = os.path.join(cls.tmp, "spamd-home")
        os.mkdir(home)
        acct = pwd.getpwnam("debian-spamd")
        os.chown(home, acct.pw_uid, acct.pw_gid)
        spamd_log = os.path.join(cls.tmp, "spamd.log")
        cls.logs.append(spamd_log)
        spamd = Daemon([SPAMD, "--listen=127.0.0.1:%d" % spamd_port, "-L", "-x", "-u", "debian-spamd",
                        "-H", home, "--syslog=" + spamd_log, "--max-children=2",
                        "-r", os.path.join(cls.tmp, "spamd.pid")], os.path.join(cls.tmp, "spamd.out"))
        cls.logs.append(spamd.log)
        cls.daemons.append(spamd)
        wait_for("spamd", lambda: port_open(spamd_port), spamd, START_LIMIT, cls.logs)
        milter = Daemon([SPAMASS_MILTER, "-p", "inet:%d@127.0.0.1" % mport, "-r", "15",
                         "-P", os.path.join(cls.tmp, "spamass-milter.pid"),
                         "--", "-d", "127.0.0.1", "-p", str(spamd_port)],
                        os.path.join(cls.tmp, "spamass-milter.out"))
        cls.logs.append(milter.log)
        cls.daemons.append(milter)
        wait_for("spamass-milter", lambda: port_open(mport), milter, START_LIMIT, cls.logs)
        return "inet:127.0.0.1:%d" % mport

    def test_gtube_refused(self):
        r = self.send("sa gtube", body="Buy now\r\n%s\r\n" % GTUBE)
        self.assertIsNotNone(r, "GTUBE accepted" + self.context())
        self.assertEqual(r[0] // 100, 5, r)
        self.inst.wait_log(r"milter-reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: 5\d\d ")
        self.not_delivered("sa gtube")

    def test_ham_passes_with_spam_headers(self):
        self.assertIsNone(self.send("sa ham"), self.context())
        got = self.delivered("sa ham")
        self.assertRegex(got, rb"\r\nX-Spam-Checker-Version: SpamAssassin ")
        self.assertRegex(got, rb"\r\nX-Spam-Status: No, score=")
        self.assertIn(b"the minutes of Monday's meeting", got)


# ---- ClamAV through clamav-milter ----



@unittest.skipIf(clamd_unavailable() or missing((CLAMAV_MILTER, "clamav-milter")),
                 clamd_unavailable() or missing((CLAMAV_MILTER, "clamav-milter")))
class TestClamavMilter(GatewayTest):
    """clamav-milter (OnInfected Reject) in front of the test's clamd."""

    @classmethod
    def start_milters(cls):
        clam_dir = os.path.join(cls.tmp, "clamav")
        sock, _ = start_clamd(clam_dir, "clamav", cls.daemons, cls.tmp)
        cls.logs += [os.path.join(cls.tmp, "clamd.out"), os.path.join(clam_dir, "clamd.log")]
        cls.mport, cls.milter = start_clamav_milter(cls.tmp, sock, cls.daemons, cls.logs)
        return "inet:127.0.0.1:%d" % cls.mport

    def attachment(self, data):
        import base64
        b64 = base64.encodebytes(data).decode().replace("\n", "\r\n")
        return ("--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                "--b1\r\nContent-Type: application/octet-stream; name=\"t.com\"\r\n"
                "Content-Transfer-Encoding: base64\r\n\r\n%s--b1--\r\n" % b64)

    MIME = 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n'

    def test_1_eicar_refused(self):
        r = self.send("clam eicar", body=self.attachment(EICAR), extra=self.MIME)
        self.assertIsNotNone(r, "EICAR accepted" + self.context())
        self.assertEqual(r[0] // 100, 5, r)
        self.assertIn("Tern.Test.EICAR", r[1])
        self.inst.wait_log(r"milter-reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: 5\d\d ")
        self.not_delivered("clam eicar")

    def test_1_ham_passes(self):
        self.assertIsNone(self.send("clam ham"), self.context())
        got = self.delivered("clam ham")
        self.assertRegex(got, rb"\r\nX-Virus-Scanned: ClamAV using ClamSMTP|\r\nX-Virus-Scanned: clamav-milter ")
        self.assertIn(b"X-Virus-Status: Clean", got)

    def test_2_large_message_scanned_from_spool(self):
        """5 MB with EICAR at its very end: the milter sees all of it
        (smtpd sends the body from the queue file, not from memory), and
        smtpd's memory stays far below the message's size."""
        filler = ("%s\r\n" % ("x" * 998)) * 5000
        body = self.attachment(b"y" * 4 + b"\n").replace("see attached", filler)
        self.assertIsNone(self.send("clam big warm-up"), self.context())
        before = self.smtpd_peak_kb()
        r = self.send("clam big ham", body=body, extra=self.MIME)
        self.assertIsNone(r, self.context())
        after = self.smtpd_peak_kb()
        got = self.delivered("clam big ham", timeout=60)
        self.assertGreater(len(got), 5000000)
        self.assertIn(b"X-Virus-Status: Clean", got)
        # the 5 MB never sat whole in smtpd's memory
        # (0.7 MB here; 3 MB with AddressSanitizer's allocator)
        self.assertLess(after - before, 4096, "smtpd peak RSS %d kB -> %d kB" % (before, after))
        r = self.send("clam big virus", body=filler + self.attachment(EICAR), extra=self.MIME)
        self.assertIsNotNone(r, "large EICAR accepted" + self.context())
        self.assertEqual(r[0] // 100, 5, r)
        self.not_delivered("clam big virus")

    def smtpd_peak_kb(self):
        """The largest peak resident size (VmHWM, kB) of the smtpd processes."""
        peak = 0
        for pid, _, name in self.inst.processes():
            if name != "smtpd":
                continue
            try:
                with open("/proc/%d/status" % pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
        self.assertGreater(peak, 0, "no smtpd process")
        return peak

    def test_3_milter_dies_mid_message(self):
        """clamav-milter killed between RCPT and the end of DATA: with
        milter_default_action = tempfail the client is told 4xx (it keeps
        the mail), with accept the mail is delivered; nothing accepted is
        lost."""
        with harness.RawSession(self.inst.port) as s:
            s.send(b"EHLO client.test\r\n")
            self.assertEqual(s.read_reply()[0], 250)
            s.send(b"MAIL FROM:<%s>\r\n" % SENDER.encode())
            self.assertEqual(s.read_reply()[0], 250)
            s.send(b"RCPT TO:<%s>\r\n" % RCPT.encode())
            self.assertEqual(s.read_reply()[0], 250)
            s.send(b"DATA\r\n")
            self.assertEqual(s.read_reply()[0], 354)
            s.send(message("clam died 1")[:40])
            self.milter.stop()
            s.send(message("clam died 1")[40:] + b"\r\n.\r\n")
            code = s.read_reply(timeout=30)[0]
        self.assertEqual(code // 100, 4, self.context())
        self.not_delivered("clam died 1")
        self.inst.set_main_cf({"milter_default_action": "accept"})
        self.inst.reload()
        time.sleep(1)
        self.assertIsNone(self.send("clam died 2"), self.context())
        self.delivered("clam died 2")
        self.assertEqual(self.inst.queue_ids("deferred") if os.path.isdir(
            os.path.join(self.inst.queue_dir, "deferred")) else [], [])


# ---- rspamd's proxy worker in milter mode ----

RSPAMD_LOCAL = dict(RSPAMD_OFFLINE, **{
    # the headers a gateway's users see: X-Spamd-Result (symbols and
    # scores), X-Spam-Status, X-Rspamd-Queue-Id
    "milter_headers.conf": 'use = ["x-spamd-result", "x-spam-status", "x-rspamd-queue-id"];\n'
                           'skip_local = false;\nskip_authenticated = false;\n',
    # a header rule of the site: X-Tern-Offer: spammy scores 8 (above add header)
    "multimap.conf": 'TERN_SPAMMY_HEADER {{ type = "header"; header = "X-Tern-Offer"; regexp = true;\n'
                     '  map = "{dir}/local.d/spammy.map"; score = 8.0; }}\n',
    # two DNS block lists of the test's DNS server, each with its own weight
    "rbl.conf": 'rbls {{\n'
                '  tern_one {{ symbol = "TERN_BL_ONE"; rbl = "bl-one.test"; checks = ["from"];\n'
                '    exclude_local = false; exclude_private_ips = false;\n    ipv4 = true; disable_monitoring = true; }}\n'
                '  tern_two {{ symbol = "TERN_BL_TWO"; rbl = "bl-two.test"; checks = ["from"];\n'
                '    exclude_local = false; exclude_private_ips = false;\n    ipv4 = true; disable_monitoring = true; }}\n'
                '  tern_three {{ symbol = "TERN_BL_THREE"; rbl = "bl-three.test"; checks = ["from"];\n'
                '    exclude_local = false; exclude_private_ips = false;\n    ipv4 = true; disable_monitoring = true; }}\n'
                '}}\n',
    "rbl_group.conf": 'symbols {{\n  TERN_BL_ONE {{ weight = 3.5; }}\n  TERN_BL_TWO {{ weight = 1.25; }}\n'
                      '  TERN_BL_THREE {{ weight = 2.0; }}\n}}\n',
})


@unittest.skipIf(missing((RSPAMD, "rspamd")), missing((RSPAMD, "rspamd")))
class TestRspamd(GatewayTest):
    """rspamd's proxy worker (milter = yes) with a minimal local
    configuration and the test's DNS server: 127.0.0.1 is listed on
    bl-one.test and bl-two.test, not on bl-three.test."""

    @classmethod
    def start_milters(cls):
        import dnsserver
        listed = {"A": ["127.0.0.2"]}
        cls.dns = dnsserver.DnsServer({"1.0.0.127.bl-one.test": listed,
                                       "1.0.0.127.bl-two.test": listed})
        cls.addClassCleanup(cls.dns.stop)
        rdir = os.path.join(cls.tmp, "rspamd")
        cls.mport = start_rspamd(rdir, cls.dns.port, RSPAMD_LOCAL, cls.daemons, cls.logs, cls.tmp,
                                 files={"local.d/spammy.map": "/spammy/i\n"})
        cls.rspamd_log = os.path.join(rdir, "rspamd.log")
        return "{ inet:127.0.0.1:%d, command_timeout=60s }" % cls.mport

    def test_gtube_refused(self):
        r = self.send("rs gtube", body="Buy now\r\n%s\r\n" % GTUBE)
        self.assertIsNotNone(r, "GTUBE accepted" + self.context())
        self.assertEqual(r[0] // 100, 5, r)
        self.assertIn("Gtube pattern", r[1])
        self.not_delivered("rs gtube")

    def test_scored_header_tagged(self):
        self.assertIsNone(self.send("rs offer", extra="X-Tern-Offer: a SPAMMY deal\r\n"), self.context())
        got = self.delivered("rs offer")
        self.assertRegex(got, rb"\r\nX-Spamd-Result: default: [^\r]*\r\n(?:[ \t][^\r]*\r\n)*")
        self.assertRegex(got, rb"TERN_SPAMMY_HEADER\(8\.00\)")
        self.assertIn(b"\r\nX-Spam: Yes\r\n", got)

    def test_ham_passes(self):
        self.assertIsNone(self.send("rs ham"), self.context())
        got = self.delivered("rs ham")
        self.assertRegex(got, rb"\r\nX-Spam-Status: No, score=")
        self.assertNotIn(b"\r\nX-Spam: Yes", got)
        self.assertNotIn(b"TERN_SPAMMY_HEADER", got)

    def test_rbl_per_list_scores(self):
        """Each list that lists the client adds its own score; a list that
        does not (bl-three) adds nothing."""
        self.assertIsNone(self.send("rs rbl"), self.context())
        got = self.delivered("rs rbl")
        result = re.search(rb"\r\nX-Spamd-Result: ((?:[^\r]*\r\n[ \t])*[^\r]*)\r\n", got)
        self.assertIsNotNone(result, got[:2000])
        result = result.group(1)
        self.assertRegex(result, rb"TERN_BL_ONE\(3\.50\)", "%r%s" % (self.dns.queries, self.context()))
        self.assertRegex(result, rb"TERN_BL_TWO\(1\.25\)")
        self.assertNotIn(b"TERN_BL_THREE", result)
        names = {q[0].rstrip(".") for q in self.dns.queries}
        self.assertIn("1.0.0.127.bl-three.test", names)


# ---- OpenDMARC ----

OPENDMARC = "/usr/sbin/opendmarc"
# OpenDMARC and the libspf2 in it ask the resolver of /etc/resolv.conf; the
# test runs opendmarc in a mount namespace of its own where resolv.conf
# names the test's DNS server, listening on port 53 of this address.
DMARC_DNS = "127.0.0.153"

OPENDMARC_CONF = """Socket inet:{port}@127.0.0.1
PidFile {dir}/opendmarc.pid
UserID opendmarc
AuthservID gw.tern.test
TrustedAuthservIDs gw.tern.test
IgnoreHosts {dir}/ignore-hosts
RejectFailures true
RequiredHeaders false
SPFSelfValidate true
SPFIgnoreResults true
FailureReports false
Syslog false
"""


def opendmarc_unavailable():
    why = missing((OPENDMARC, "opendmarc"), ("/usr/bin/unshare", "util-linux"))
    if why:
        return why
    r = subprocess.run(["/usr/bin/unshare", "-m", "true"], capture_output=True)
    if r.returncode != 0:
        return "no mount namespace here (unshare -m): opendmarc cannot be given the test's resolver"
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((DMARC_DNS, 53))
    except OSError as e:
        return "cannot serve DNS on %s port 53: %s" % (DMARC_DNS, e)
    finally:
        s.close()
    return None


@unittest.skipIf(opendmarc_unavailable(), opendmarc_unavailable())
class TestOpendmarc(GatewayTest):
    """OpenDMARC with its own SPF check (SPFSelfValidate) and RejectFailures:
    bank.test publishes p=reject; good.test publishes p=reject and an SPF
    record that allows the client; evil.test an SPF record that allows it."""

    @classmethod
    def start_milters(cls):
        import dnsserver
        spf = {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}
        cls.dns = dnsserver.DnsServer({
            "_dmarc.bank.test": {"TXT": ["v=DMARC1; p=reject"]},
            "bank.test": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
            "_dmarc.good.test": {"TXT": ["v=DMARC1; p=reject"]},
            "good.test": spf,
            "evil.test": spf}, host=DMARC_DNS, port=53)
        cls.addClassCleanup(cls.dns.stop)
        ddir = os.path.join(cls.tmp, "opendmarc")
        os.mkdir(ddir)
        acct = pwd.getpwnam("opendmarc")
        os.chown(ddir, acct.pw_uid, acct.pw_gid)
        with open(os.path.join(ddir, "ignore-hosts"), "w") as f:
            f.write("192.0.2.99\n")         # not localhost, which opendmarc skips by default
        resolv = os.path.join(ddir, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver %s\noptions timeout:2 attempts:1\n" % DMARC_DNS)
        cls.mport = harness.free_port()
        conf = os.path.join(ddir, "opendmarc.conf")
        with open(conf, "w") as f:
            f.write(OPENDMARC_CONF.format(port=cls.mport, dir=ddir))
        milter = Daemon(["/usr/bin/unshare", "-m", "sh", "-c",
                         'mount --bind "$0" /etc/resolv.conf && exec "$1" -f -c "$2"',
                         resolv, OPENDMARC, conf], os.path.join(cls.tmp, "opendmarc.out"))
        cls.logs.append(milter.log)
        cls.daemons.append(milter)
        wait_for("opendmarc", lambda: port_open(cls.mport), milter, START_LIMIT, cls.logs)
        return "inet:127.0.0.1:%d" % cls.mport

    def send_from(self, subject, envelope, header_from):
        msg = message(subject).replace(("From: Sender <%s>" % SENDER).encode(),
                                       ("From: Someone <%s>" % header_from).encode())
        try:
            with smtplib.SMTP("127.0.0.1", self.inst.port, timeout=60) as c:
                c.sendmail(envelope, [RCPT], msg)
        except smtplib.SMTPDataError as e:
            return e.smtp_code, e.smtp_error.decode(errors="replace")
        return None

    def test_forged_from_refused(self):
        r = self.send_from("dmarc forged", "forger@evil.test", "ceo@bank.test")
        self.assertIsNotNone(r, "forged From: accepted" + self.context())
        self.assertEqual(r[0] // 100, 5, r)
        self.inst.wait_log(r"milter-reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: 5\d\d ")
        self.not_delivered("dmarc forged")
        self.assertIn(("_dmarc.bank.test", "TXT"), [(n.rstrip("."), t) for n, t in self.dns.queries])

    def test_aligned_passes(self):
        self.assertIsNone(self.send_from("dmarc aligned", "news@good.test", "news@good.test"),
                          self.context())
        got = self.delivered("dmarc aligned")
        self.assertRegex(got, rb"\r\nAuthentication-Results: gw.tern.test; dmarc=pass \(p=reject")
        # the SPF result came from opendmarc's own check (SPFSelfValidate)
        self.assertRegex(got, rb"\r\nAuthentication-Results: gw.tern.test; spf=pass smtp.mailfrom=good.test")
