"""test_chroot.py: an instance whose master.cf runs every service that
Postfix allows chrooted (smtpd, cleanup, qmgr, smtp and relay, pickup,
showq, anvil; local stays as it is) with chroot = y, and the real flows
through it: SMTP with restriction tables of three types (hash, texthash,
pcre), a DNS blocklist and MX lookups through the test's DNS server, the
local_recipient_maps default (unix:passwd.byname and the aliases), a
milter on a unix: socket relative to queue_directory, STARTTLS, anvil's
connection limit, local delivery, relay through smtp to a sink found by
MX, a sendmail submission by an ordinary user picked up by pickup, mailq
through showq, and log time stamps in the time zone of $TZ. Then a table
is rebuilt: smtpd notices it (on the descriptor it kept open, not by a
path that the chroot hides) and uses the new content, without a storm of
restarts; and no process of the instance died or was throttled.

Before the fix, every smtpd restarted at each connection ("table ... has
changed": the path could not be looked at inside the chroot) and clients
timed out."""
import os
import re
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_milter  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from dnsserver import DnsServer  # noqa: E402
from sink import Handler  # noqa: E402
from test_sendmail import make_instance, sendmail  # noqa: E402

HOST = "tern.test"
SINK_ADDR = "127.0.0.3"
TZ = "Asia/Kolkata"              # +05:30: unlike UTC, the test machine's zone
ZONE = {
    "relay.test": {"MX": [(10, "mx.relay.test")]},
    "mx.relay.test": {"A": [SINK_ADDR]},
    "remote.test": {"MX": [(10, "mx.remote.test")]},
    "mx.remote.test": {"A": [SINK_ADDR]},
    "5.0.0.127.rbl.test": {"A": ["127.0.0.2"], "TXT": ["listed by rbl.test"]},
}
TABLES = {
    "recipients": "blocked@tern.test REJECT hash table says no\n",
    "senders": "spammer@bad.test REJECT texthash table says no\n",
    "clients.pcre": "/^127\\.0\\.0\\.6$/ REJECT pcre table says no\n",
}
SUBMITTER = "nobody"             # an ordinary account: pickup looks its uid up


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def make_certificate(directory):
    """A self-signed certificate for HOST: DIR/server.pem (key and cert)."""
    key, crt = os.path.join(directory, "server.key"), os.path.join(directory, "server.crt")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", crt, "-subj", "/CN=" + HOST, "-days", "2",
            "-addext", "subjectAltName=DNS:" + HOST)
    pem = os.path.join(directory, "server.pem")
    with open(pem, "w") as out:
        for part in (key, crt):
            with open(part) as f:
                out.write(f.read())
    os.chmod(pem, 0o600)
    return pem, crt


@unittest.skipUnless(os.geteuid() == 0, "chroot needs root")
@unittest.skipUnless(test_milter.have_module("Milter"), "python3-milter is not installed")
class TestChroot(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-chroot-tables-", dir="/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        os.chmod(cls.tmp, 0o755)
        for name, text in TABLES.items():
            with open(os.path.join(cls.tmp, name), "w") as f:
                f.write(text)
        harness.tern("map", "build", "hash:" + cls.table("recipients"))
        cls.pem, cls.crt = make_certificate(cls.tmp)
        cls.dns = DnsServer(ZONE)
        cls.addClassCleanup(cls.dns.stop)
        cls.sink = Handler()
        cls.sink_port = harness.free_port()
        cls.controller = Controller(cls.sink, hostname=SINK_ADDR, port=cls.sink_port,
                                    decode_data=False)
        cls.controller.start()
        cls.addClassCleanup(cls.controller.stop)
        restrictions = ", ".join([
            "check_client_access pcre:" + cls.table("clients.pcre"),
            "reject_rbl_client rbl.test",
            "check_sender_access texthash:" + cls.table("senders"),
            "check_recipient_access hash:" + cls.table("recipients"),
            "permit_mynetworks", "reject_unauth_destination"])
        inst = cls.inst = make_instance("chroot", {
            "mynetworks": "127.0.0.1/32",
            "local_recipient_maps": "unix:passwd.byname, $alias_maps",
            "relay_domains": "relay.test",
            "smtpd_recipient_restrictions": restrictions,
            "smtpd_dns_servers": "127.0.0.1:%d" % cls.dns.port, "smtpd_dns_timeout": "2s",
            "smtp_dns_servers": "127.0.0.1:%d" % cls.dns.port, "smtp_dns_timeout": "2s",
            "smtp_tcp_port": str(cls.sink_port),
            "smtpd_tls_security_level": "may", "smtpd_tls_cert_file": cls.pem,
            "smtpd_client_connection_count_limit": "2",
            "smtpd_milters": "unix:milter/py.sock",
        })
        cls.addClassCleanup(inst.cleanup)
        harness.chroot_master_cf(os.path.join(inst.dir, "master.cf"))
        cls.start_milter()
        old_tz = os.environ.get("TZ")
        os.environ["TZ"] = TZ
        try:
            inst.start()
        finally:
            if old_tz is None:
                del os.environ["TZ"]
            else:
                os.environ["TZ"] = old_tz
        cls.pids = cls.long_lived()

    @classmethod
    def table(cls, name):
        return os.path.join(cls.tmp, name)

    @classmethod
    def start_milter(cls):
        """The pymilter test filter on queue/milter/py.sock."""
        sockdir = os.path.join(cls.inst.queue_dir, "milter")
        os.makedirs(sockdir, exist_ok=True)
        os.chmod(sockdir, 0o755)
        path = os.path.join(sockdir, "py.sock")
        cls.events = os.path.join(cls.tmp, "events.jsonl")
        cls.milter = test_milter.Process([test_milter.PYTHON, test_milter.PYMILTER,
                                          "unix:" + path, cls.events])
        cls.addClassCleanup(cls.milter.stop)
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.05)
        os.chmod(path, 0o666)

    @classmethod
    def long_lived(cls):
        """{name: pid} of the services that keep one process running."""
        out = {}
        for name in ("qmgr", "pickup"):
            out[name] = cls.inst.wait_process(name)[0]
        return out

    def setUp(self):
        self.sink.messages.clear()

    def chrooted(self, name):
        """Every process called name runs with its root in queue_directory."""
        pids = self.inst.wait_process(name)
        for pid in pids:
            root = os.readlink("/proc/%d/root" % pid)
            self.assertEqual(os.path.realpath(root), os.path.realpath(self.inst.queue_dir),
                             "%s pid %d is not chrooted" % (name, pid))

    def rcpt(self, rcpt, sender="someone@example.org", source=None):
        """(code, text) of RCPT TO:<rcpt> in a fresh session."""
        s = smtplib.SMTP(timeout=10, source_address=(source, 0) if source else None)
        try:
            s.connect("127.0.0.1", self.inst.port)
            s.ehlo("client.example")
            code, text = s.mail(sender)
            if code != 250:
                return code, text.decode()
            code, text = s.rcpt(rcpt)
            return code, text.decode()
        finally:
            s.close()

    def send(self, rcpts, subject, sender="someone@example.org", actions=()):
        body = test_milter.message(subject, actions)
        with smtplib.SMTP("127.0.0.1", self.inst.port, timeout=20) as s:
            s.ehlo("client.example")
            refused = s.sendmail(sender, rcpts, body)
        self.assertEqual(refused, {})

    # ---- the flows ----

    def test_01_services_run_chrooted(self):
        self.send(["root@" + HOST], "wake every service")
        for name in ("smtpd", "cleanup", "qmgr", "pickup"):
            self.chrooted(name)
        with open(os.path.join(self.inst.queue_dir, "etc", "services")) as f:
            self.assertIn("smtp", f.read())
        st = os.stat(os.path.join(self.inst.queue_dir, "etc"))
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (0, 0o755))

    def test_02_restriction_tables_and_dnsbl(self):
        code, text = self.rcpt("blocked@" + HOST)
        self.assertEqual(code, 554, text)
        self.assertIn("hash table says no", text)
        code, text = self.rcpt("root@" + HOST, sender="spammer@bad.test")
        self.assertEqual(code, 554, text)
        self.assertIn("texthash table says no", text)
        code, text = self.rcpt("root@" + HOST, source="127.0.0.6")
        self.assertEqual(code, 554, text)
        self.assertIn("pcre table says no", text)
        code, text = self.rcpt("root@" + HOST, source="127.0.0.5")
        self.assertEqual(code, 554, text)
        self.assertIn("rbl.test", text)
        self.assertIn(("5.0.0.127.rbl.test", "A"), self.dns.queries)

    def test_03_local_recipients_from_passwd_and_aliases(self):
        self.assertEqual(self.rcpt("root@" + HOST)[0], 250)
        self.assertEqual(self.rcpt("postmaster@" + HOST)[0], 250)
        self.assertEqual(self.rcpt(SUBMITTER + "@" + HOST)[0], 250)
        code, text = self.rcpt("no-such-user-here@" + HOST)
        self.assertEqual(code, 550, text)

    def test_04_local_delivery_through_milter(self):
        self.send(["root@" + HOST], "to root through the milter",
                  actions=["addheader X-Chroot-Milter seen"])
        deadline, box = time.time() + 20, ""
        while "Subject: to root through the milter" not in box and time.time() < deadline:
            time.sleep(0.1)
            with open(os.path.join(self.inst.dir, "mail", "root"), errors="replace") as f:
                box = f.read()
        message = box[box.rindex("\nFrom "):] if "\nFrom " in box else box
        self.assertIn("Subject: to root through the milter", message, self.inst.log_tail())
        self.assertIn("X-Chroot-Milter: seen", message)

    def test_05_relay_and_smtp_by_mx(self):
        self.send(["someone@relay.test", "else@remote.test"], "out by MX")
        deadline = time.time() + 30
        while len(self.sink.messages) < 2 and time.time() < deadline:
            time.sleep(0.05)
        rcpts = sorted(r for _, rs, _ in self.sink.messages for r in rs)
        self.assertEqual(rcpts, ["else@remote.test", "someone@relay.test"], self.inst.log_tail())
        self.inst.wait_log(r"smtp\[\d+\]: \w+: to=<someone@relay\.test>, "
                           r"relay=mx\.relay\.test\[127\.0\.0\.3\]:\d+.*status=sent")
        self.inst.wait_log(r"smtp\[\d+\]: \w+: to=<else@remote\.test>, "
                           r"relay=mx\.remote\.test\[127\.0\.0\.3\]:\d+.*status=sent")
        self.chrooted("smtp")

    def test_06_sendmail_pickup_and_mailq(self):
        r = sendmail(self.inst, ["-t"], "To: root@%s\nSubject: from %s\n\nhello\n" % (HOST, SUBMITTER),
                     user=SUBMITTER)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.inst.wait_log(r"qmgr\[\d+\]: \w+: from=<%s@tern\.test>" % SUBMITTER, 20)
        self.inst.wait_log(r"to=<root@tern\.test>.*status=sent", 20)
        # mailq through showq, chrooted: a message held in the queue
        self.send(["held@remote.test"], "held", actions=["quarantine for mailq"])
        deadline = time.time() + 10
        out = ""
        while "held@remote.test" not in out and time.time() < deadline:
            r = sendmail(self.inst, ["-bp"], user=SUBMITTER)
            out = r.stdout.decode()
            time.sleep(0.2)
        self.assertIn("held@remote.test", out, r.stderr)
        self.chrooted("showq")

    def test_07_starttls(self):
        ctx = ssl.create_default_context(cafile=self.crt)
        ctx.check_hostname = False          # connected by address; the chain is verified
        with smtplib.SMTP("127.0.0.1", self.inst.port, timeout=20) as s:
            s.ehlo("client.example")
            code, _ = s.starttls(context=ctx)
            self.assertEqual(code, 220)
            s.ehlo("client.example")
            self.assertTrue(s.sock.version().startswith("TLSv1."))
            s.sendmail("someone@example.org", ["root@" + HOST], b"Subject: over TLS\r\n\r\nx\r\n")
        self.inst.wait_log(r"smtpd\[\d+\]: .*TLS connection established")

    def test_08_anvil_connection_limit(self):
        held = [harness.RawSession(self.inst.port, source="127.0.0.8") for _ in range(2)]
        try:
            for c in held:
                self.assertEqual(c.greeting[0], 220)
            c = harness.RawSession(self.inst.port, source="127.0.0.8", greet=False)
            code, lines = c.read_reply()
            c.close()
            self.assertEqual(code, 421, lines)
        finally:
            for c in held:
                c.close()
        self.inst.wait_log(r"Connection concurrency limit exceeded: 3 from unknown\[127\.0\.0\.8\]")
        self.chrooted("anvil")

    def test_09_log_time_stamps_in_the_time_zone(self):
        """Lines of chrooted daemons carry the local time of $TZ (+05:30),
        read before the chroot hid /usr/share/zoneinfo."""
        self.send(["root@" + HOST], "time stamp")
        self.inst.wait_log(r"smtpd\[\d+\]: disconnect from")
        now = time.time() + 5.5 * 3600          # Asia/Kolkata, no summer time
        expected = time.strftime("%b %e %H:%M", time.gmtime(now))
        earlier = time.strftime("%b %e %H:%M", time.gmtime(now - 60))
        stamps = {}
        for line in self.inst.log_text().splitlines()[-200:]:
            m = re.match(r"(\w{3} [ \d]\d \d\d:\d\d):\d\d \S+ tern/(smtpd|cleanup|qmgr)\[", line)
            if m:
                stamps[m.group(2)] = m.group(1)
        self.assertEqual(sorted(stamps), ["cleanup", "qmgr", "smtpd"])
        for name, stamp in stamps.items():
            self.assertIn(stamp, (expected, earlier), "%s logs %s, not the time of %s"
                          % (name, stamp, TZ))

    def test_10_rebuilt_table_is_used_without_a_restart_storm(self):
        # no change: the same smtpd serves connection after connection
        # (other programs may change /etc/passwd meanwhile: a restart each)
        before = self.smtpd_log_pids()
        passwd = self.passwd_changes()
        for _ in range(8):
            self.assertEqual(self.rcpt("root@" + HOST)[0], 250)
            time.sleep(0.3)
        fresh = len(self.smtpd_log_pids() - before) - (self.passwd_changes() - passwd)
        self.assertLessEqual(fresh, 1, "smtpd restarted %d times without a change" % fresh)
        self.assertNotRegex(self.inst.log_text(), r"table (hash|texthash|pcre):\S+ has changed")
        # the table is rebuilt: within seconds, a fresh smtpd reads it
        with open(self.table("recipients"), "a") as f:
            f.write("blocked2@tern.test REJECT rebuilt table says no\n")
        harness.tern("map", "build", "hash:" + self.table("recipients"))
        deadline, code, text = time.time() + 15, None, ""
        while time.time() < deadline:
            code, text = self.rcpt("blocked2@" + HOST)
            if code == 554:
                break
            time.sleep(0.3)
        self.assertEqual(code, 554, text)
        self.assertIn("rebuilt table says no", text)
        # and then it settles: one restart for the change, not one per client
        before = self.smtpd_log_pids()
        passwd = self.passwd_changes()
        for _ in range(8):
            self.assertEqual(self.rcpt("root@" + HOST)[0], 250)
            time.sleep(0.3)
        fresh = len(self.smtpd_log_pids() - before) - (self.passwd_changes() - passwd)
        self.assertLessEqual(fresh, 1, "smtpd restarted %d times after one change" % fresh)
        changed = re.findall(r"table hash:\S+ has changed", self.inst.log_text())
        self.assertLessEqual(len(changed), 2, changed)

    def test_11_processes_stayed_up(self):
        """Runs last: nothing died, exited in error or was throttled."""
        self.assertEqual(self.long_lived(), self.pids)
        text = self.inst.log_text()
        # one restart per rebuild of a table, never one per client
        changed = re.findall(r"table (?:hash|texthash|pcre):\S+ has changed", text)
        self.assertLessEqual(len(changed), 2, "%d restarts for table changes" % len(changed))
        for bad in ("fatal:", "panic:", "exit status", "killed by signal", "throttling",
                    "cannot open", "cannot read"):
            self.assertNotIn(bad, text, "log has %r:\n%s" % (bad, "\n".join(
                l for l in text.splitlines() if bad in l)[:3000]))

    def passwd_changes(self):
        return len(re.findall(r"table unix:passwd\.byname has changed", self.inst.log_text()))

    def smtpd_log_pids(self):
        return set(re.findall(r"tern/smtpd\[(\d+)\]", self.inst.log_text()))


class TestCheck(unittest.TestCase):
    """`tern check` (also run by `tern start`) names what a chrooted
    service would look for in vain, and a chrooted local."""

    def test_paths_outside_the_chroot_and_local(self):
        inst = harness.Instance("chrootcheck", chroot=True, main_cf={
            "smtpd_milters": "unix:/nowhere/m.sock, unix:private/fine",
            "smtpd_recipient_restrictions": "check_policy_service unix:/nowhere/policy, "
                                            "permit_mynetworks, reject_unauth_destination",
            "smtpd_sasl_type": "dovecot", "smtpd_sasl_path": "private/auth",
            "smtp_tls_CApath": "/nowhere/certs"})
        self.addCleanup(inst.cleanup)
        inst.set_master_cf(["local unix - n y - - local"])
        out = inst.tern("check").stdout
        inside = os.path.join(inst.queue_dir, "nowhere")
        for param, path in (("smtpd_milters", "/nowhere/m.sock"),
                            ("smtpd_recipient_restrictions", "/nowhere/policy"),
                            ("smtp_tls_CApath", "/nowhere/certs")):
            self.assertRegex(out, r"warning: .*service \S+ runs chrooted, but %s names %s, "
                             r"which it looks for as %s" % (param, re.escape(path),
                                                            re.escape(inside)))
        self.assertNotIn("private/fine", out)
        self.assertNotIn("private/auth", out)
        self.assertIn("service local: local delivers as each recipient, outside the queue "
                      "directory, and cannot run chrooted", out)


@unittest.skipUnless(os.geteuid() == 0, "the instance runs as root")
class TestQuickExitThrottle(unittest.TestCase):
    """A service whose processes exit cleanly right after they start (as
    smtpd did, restarting for a table it took for changed) is held back by
    master like one that crashes, not restarted thousands of times a
    minute."""

    def test_quick_exits_are_throttled(self):
        inst = make_instance("quick")
        self.addCleanup(inst.cleanup)
        runs = os.path.join(inst.dir, "runs")
        script = os.path.join(inst.dir, "libexec", "quick")
        with open(script, "w") as f:
            f.write("#!/bin/sh\necho x >> %s\nexit 0\n" % runs)
        os.chmod(script, 0o755)
        open(runs, "w").close()
        os.chmod(runs, 0o666)
        # wakeup: master keeps one process of the service running at all times
        inst.set_master_cf(["quick unix - n n 60 1 quick"])
        inst.start()
        inst.wait_log(r"service quick: throttling for 1 seconds after its processes kept "
                      r"exiting right after they started", 20)
        time.sleep(4)
        with open(runs) as f:
            count = len(f.read().splitlines())
        # 20 at once, then one after 1 s, 2 s, 4 s...: far from a fork loop
        self.assertLess(count, 40, "master started the service %d times" % count)
        inst.wait_port()                     # the rest of the instance works on
        with inst.smtp() as s:
            self.assertEqual(s.noop()[0], 250)


if __name__ == "__main__":
    unittest.main()
