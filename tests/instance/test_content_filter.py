"""test_content_filter.py: whole-instance tests of the after-queue content
filter (Postfix's content_filter, FILTER_README): a filter written here (an
SMTP or LMTP server on loopback that adds "X-Filtered: NAME" and re-injects
the message with smtplib into a second smtpd listener with Postfix's -o
overrides), the mail's route through it and back, per-service -o
content_filter for smtpd and pickup, the precedence of FILTER actions, a
filter that is down (the mail waits and keeps its filter) or that rejects
(a bounce with its reply), and each receive_override_options flag of the
re-injection listener; then a real amavisd-new (Debian's, with SpamAssassin
on local rules and ClamAV's clamd on a signature database the test builds
with sigtool) as the filter: ham arrives scanned, GTUBE tagged, EICAR
refused. Remote mail goes to a relayhost sink (aiosmtpd)."""
import asyncio
import base64
import json
import os
import pwd
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sink  # noqa: E402
from scanners import (CLAMD, EICAR, GTUBE, SIGTOOL, Daemon, start_clamd,  # noqa: E402
                      tail, wait_for)

SENDER = "sender@client.test"

# What the re-injection listener looks like in master.cf (FILTER_README's
# "advanced content filter" example, with Tern's listener on REINJECT).
REINJECT_SERVICE = """127.0.0.1:{port} inet n - n - - smtpd
  -o content_filter=
  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters,no_address_mappings
  -o smtpd_client_restrictions=
  -o smtpd_helo_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o mynetworks=127.0.0.0/8"""


class FilterHandler:
    """An after-queue content filter: each message gets "X-Filtered: NAME"
    on top and goes back into Tern through the re-injection port with
    smtplib; a recipient whose local part starts with "reject" makes the
    filter refuse the message, as a virus scanner does; a subject with
    "quarantine" sends it to quarantine@remote.test instead, as amavis's
    quarantine to an address does."""

    def __init__(self, name, reinject_port):
        self.name = name
        self.reinject_port = reinject_port
        self.received = []          # (mail_from, [rcpt], data)
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content))
        if any(r.lower().startswith("reject") for r in envelope.rcpt_tos):
            return "550 5.7.1 Rejected by the %s filter: message looks like malware" % self.name
        data = b"X-Filtered: " + self.name.encode() + b"\r\n" + envelope.original_content
        rcpts = list(envelope.rcpt_tos)
        if re.search(rb"(?im)^Subject: .*quarantine", envelope.original_content):
            rcpts = ["quarantine@remote.test"]
        return await asyncio.get_running_loop().run_in_executor(
            None, self.reinject, envelope.mail_from, rcpts, data)

    def reinject(self, mail_from, rcpts, data):
        try:
            with smtplib.SMTP("127.0.0.1", self.reinject_port, timeout=20) as c:
                c.sendmail(mail_from, rcpts, data)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = list(e.recipients.values())[0]
            return "%d %s" % (code, text.decode(errors="replace"))
        except smtplib.SMTPResponseException as e:
            return "%d %s" % (e.smtp_code, e.smtp_error.decode(errors="replace"))
        except OSError as e:
            return "451 4.3.0 re-injection failed: %s" % e
        return "250 2.0.0 Ok: filtered and re-injected"


class LmtpController(Controller):
    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)


class Filter:
    """The filter on a loopback port, speaking SMTP or (lmtp) LMTP."""

    def __init__(self, name, reinject_port, port=None, lmtp=False):
        self.handler = FilterHandler(name, reinject_port)
        self.port = port or harness.free_port()
        self.controller = (LmtpController if lmtp else Controller)(
            self.handler, hostname="127.0.0.1", port=self.port, decode_data=False)
        self.controller.start()

    def wait(self, count, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.handler.received) >= count:
                return self.handler.received
            time.sleep(0.05)
        raise AssertionError("filter %s got %d messages, expected %d"
                             % (self.handler.name, len(self.handler.received), count))

    def stop(self):
        self.controller.stop()


def header_count(data, name):
    head = data.split(b"\r\n\r\n", 1)[0]
    return len(re.findall(rb"(?im)^" + re.escape(name.encode()) + rb":", head))


def message(subject, extra=""):
    return ("From: %s\r\nSubject: %s\r\n%s\r\nbody of %s\r\n" % (SENDER, subject, extra, subject))


class FilterTest(unittest.TestCase):
    """One instance per class with a relayhost sink, the re-injection
    listener and filters "main" and "second"; main_cf may use FILTER,
    SECOND, SINK and TABLES (the temporary directory), master_cf the same
    and REINJECT."""

    main_cf = {}
    master_cf = ""
    tables = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-cfilter-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.sink = sink.Sink()
        cls.reinject_port = harness.free_port()
        cls.filter = Filter("main", cls.reinject_port)
        cls.second = Filter("second", cls.reinject_port)
        cls.inst = None
        try:
            cls.start_servers()
            for name, text in cls.tables.items():
                with open(os.path.join(cls.tmp, name), "w") as f:
                    f.write(cls.expand(text))
            settings = {"relayhost": "[127.0.0.1]:%d" % cls.sink.port, "mynetworks": "127.0.0.1/32"}
            settings.update({k: cls.expand(v) for k, v in cls.main_cf.items()})
            master = REINJECT_SERVICE.format(port=cls.reinject_port) + "\n" + cls.expand(cls.master_cf)
            cls.inst = cls.make_instance(settings, master)
            cls.inst.start()
            cls.inst.wait_port(cls.reinject_port)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_servers(cls):
        pass

    @classmethod
    def stop_servers(cls):
        pass

    @classmethod
    def make_instance(cls, settings, master):
        return harness.Instance(name="cfilter", main_cf=settings, master_cf_extra=master)

    @classmethod
    def expand(cls, v):
        return (v.replace("FILTER_PORT", str(cls.filter.port))
                .replace("SECOND_PORT", str(cls.second.port))
                .replace("REINJECT", str(cls.reinject_port))
                .replace("TABLES", cls.tmp))

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.inst:
                cls.inst.cleanup()
        finally:
            cls.stop_servers()
            cls.filter.stop()
            cls.second.stop()
            cls.sink.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def sink_messages_for(self, subject, count, timeout=20):
        """The sink's messages with this subject, once there are count."""
        deadline = time.time() + timeout
        while True:
            got = [m for m in self.sink.handler.messages
                   if ("Subject: %s\r\n" % subject).encode() in m[2]]
            if len(got) >= count or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(len(got), count, "sink: %s\nlog:\n%s" % (
            [m[:2] for m in self.sink.handler.messages], self.inst.log_tail(40)))
        return got

    def filtered(self, flt, subject):
        return [m for m in flt.handler.received if ("Subject: %s\r\n" % subject).encode() in m[2]]

    def send(self, rcpts, subject, extra="", port=None):
        with smtplib.SMTP("127.0.0.1", port or self.inst.port, timeout=20) as c:
            c.sendmail(SENDER, rcpts, message(subject, extra))


class TestGlobalContentFilter(FilterTest):
    """content_filter in main.cf: everything smtpd receives goes through the
    filter once and comes back through the re-injection listener, whose -o
    overrides hold."""

    main_cf = {
        "content_filter": "smtp:[127.0.0.1]:FILTER_PORT",
        "smtpd_recipient_restrictions": "check_recipient_access texthash:TABLES/rcpt_access, "
                                        "permit_mynetworks, reject_unauth_destination",
        "header_checks": "pcre:TABLES/header_checks",
        "recipient_canonical_maps": "texthash:TABLES/canonical",
        "relay_domains": "relay.test",
        "relay_recipient_maps": "texthash:TABLES/relay_recipients",
        "smtpd_milters": "inet:127.0.0.1:MILTER_PORT",
        "milter_default_action": "tempfail",
        "default_filter_nexthop": "[127.0.0.1]:SECOND_PORT",
    }
    tables = {
        "rcpt_access": "second@remote.test FILTER smtp:[127.0.0.1]:SECOND_PORT\n"
                       "lmtp@remote.test FILTER lmtp:[127.0.0.1]:LMTP_PORT\n"
                       "nohop@remote.test FILTER smtp:\n",
        # the re-injected copy carries X-Filtered: only no_header_body_checks lets it in
        "header_checks": "/^X-Filtered:/ REJECT 5.7.1 header checks ran twice\n"
                         "/^Subject: header-filter/ FILTER smtp:[127.0.0.1]:SECOND_PORT\n",
        "canonical": "quarantine@remote.test admin@remote.test\n",
        "relay_recipients": "known@relay.test ok\n",
    }

    @classmethod
    def setUpClass(cls):
        import test_milter
        cls.milter_dir = tempfile.mkdtemp(prefix="tern-cfilter-milter-", dir="/tmp")
        cls.milter_events = os.path.join(cls.milter_dir, "events.jsonl")
        cls.milter_port = harness.free_port()
        cls.milter = test_milter.Process([test_milter.PYTHON, test_milter.PYMILTER,
                                          "inet:%d@127.0.0.1" % cls.milter_port, cls.milter_events])
        harness.wait_port(cls.milter_port)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.milter.stop()
            shutil.rmtree(cls.milter_dir, ignore_errors=True)

    @classmethod
    def start_servers(cls):
        cls.lmtp_filter = Filter("lmtp", cls.reinject_port, lmtp=True)

    @classmethod
    def stop_servers(cls):
        if getattr(cls, "lmtp_filter", None):
            cls.lmtp_filter.stop()

    @classmethod
    def expand(cls, v):
        return (super().expand(v).replace("MILTER_PORT", str(cls.milter_port))
                .replace("LMTP_PORT", str(cls.lmtp_filter.port)))

    def test_filtered_once_as_one_delivery(self):
        self.send(["a@one.test", "b@two.test"], "two domains")
        got = self.sink_messages_for("two domains", 1)
        self.assertEqual(sorted(got[0][1]), ["a@one.test", "b@two.test"])
        self.assertEqual(header_count(got[0][2], "X-Filtered"), 1, got[0][2])
        # one transaction to the filter for both domains, and never again
        seen = self.filtered(self.filter, "two domains")
        self.assertEqual(len(seen), 1)
        self.assertEqual(sorted(seen[0][1]), ["a@one.test", "b@two.test"])
        self.assertEqual(seen[0][0], SENDER)
        self.assertNotIn(b"X-Filtered", seen[0][2])
        m = self.inst.wait_log(r"(\w+): to=<a@one\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                               r".*status=sent" % self.filter.port)
        self.inst.wait_log(r"%s: to=<b@two\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                           r".*status=sent" % (m.group(1), self.filter.port))
        time.sleep(1)
        self.assertEqual(len(self.filtered(self.filter, "two domains")), 1)
        self.assertEqual(len(self.sink_messages_for("two domains", 1)), 1)

    def test_filter_action_takes_precedence(self):
        self.send(["second@remote.test"], "access filter")
        got = self.sink_messages_for("access filter", 1)
        self.assertIn(b"X-Filtered: second\r\n", got[0][2])
        self.assertEqual(header_count(got[0][2], "X-Filtered"), 1)
        self.assertEqual(self.filtered(self.filter, "access filter"), [])

    def test_lmtp_filter(self):
        self.send(["lmtp@remote.test"], "through lmtp")
        got = self.sink_messages_for("through lmtp", 1)
        self.assertIn(b"X-Filtered: lmtp\r\n", got[0][2])
        self.assertEqual(header_count(got[0][2], "X-Filtered"), 1)
        self.inst.wait_log(r"to=<lmtp@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                           r".*status=sent" % self.lmtp_filter.port)

    def test_default_filter_nexthop(self):
        # FILTER smtp: names no destination: default_filter_nexthop is used
        self.send(["nohop@remote.test"], "no next hop")
        got = self.sink_messages_for("no next hop", 1)
        self.assertIn(b"X-Filtered: second\r\n", got[0][2])

    def test_header_checks_filter_takes_precedence(self):
        self.send(["c@remote.test"], "header-filter")
        got = self.sink_messages_for("header-filter", 1)
        self.assertIn(b"X-Filtered: second\r\n", got[0][2])
        self.assertEqual(self.filtered(self.filter, "header-filter"), [])

    def test_filter_rejects_bounce_with_its_reply(self):
        self.send(["reject-me@remote.test"], "rejected by filter")
        self.filter.wait(1)
        m = self.inst.wait_log(r"(\w+): to=<reject-me@remote\.test>, relay=127\.0\.0\.1"
                               r"\[127\.0\.0\.1\]:%d, .*status=bounced \(host 127\.0\.0\.1"
                               r"\[127\.0\.0\.1\] said: 550 5\.7\.1 Rejected by the main filter"
                               % self.filter.port, timeout=20)
        # the notice goes to the sender, around the filter (Tern's own mail)
        deadline = time.time() + 20
        bounce = []
        while not bounce and time.time() < deadline:
            bounce = [x for x in self.sink.handler.messages
                      if x[0] in ("", "<>") and x[1] == [SENDER] and m.group(1).encode() in x[2]]
            time.sleep(0.1)
        self.assertTrue(bounce, self.inst.log_tail(40))
        self.assertIn(b"Rejected by the main filter: message looks like malware", bounce[0][2])
        self.assertNotIn(b"X-Filtered", bounce[0][2].split(b"\r\n\r\n", 1)[0])

    def test_reinjection_skips_address_mappings(self):
        # mapped when it arrives from the internet...
        self.send(["quarantine@remote.test"], "mapped on arrival")
        got = self.sink_messages_for("mapped on arrival", 1)
        self.assertEqual(got[0][1], ["admin@remote.test"])
        # ...but not where the filter sends it (its quarantine address)
        self.send(["a@remote.test"], "quarantine this")
        got = self.sink_messages_for("quarantine this", 1)
        self.assertEqual(got[0][1], ["quarantine@remote.test"])
        self.assertEqual(self.filtered(self.filter, "quarantine this")[0][1], ["a@remote.test"])

    def test_reinjection_skips_milters(self):
        sender = "milter-once@client.test"
        with smtplib.SMTP("127.0.0.1", self.inst.port, timeout=20) as c:
            c.sendmail(sender, ["a@remote.test"],
                       "From: %s\r\nSubject: milter once\r\n"
                       "X-Test-Action: addheader X-Milter-Seen yes\r\n\r\nbody\r\n" % sender)
        got = self.sink_messages_for("milter once", 1)
        self.assertIn(b"X-Filtered: main\r\n", got[0][2])
        self.assertEqual(header_count(got[0][2], "X-Milter-Seen"), 1, got[0][2])
        with open(self.milter_events) as f:
            events = [json.loads(line) for line in f]
        mails = [e for e in events if e["event"] == "mail" and sender in e["sender"]]
        self.assertEqual(len(mails), 1, mails)

    def test_reinjection_skips_unknown_recipient_checks(self):
        code, text = self.inst.rcpt_reply("nobody@relay.test")
        self.assertEqual(code, 550, text)
        self.assertIn("User unknown in relay recipient table", text)
        with harness.RawSession(self.reinject_port) as s:
            s.send(b"EHLO filter.test\r\nMAIL FROM:<" + SENDER.encode() + b">\r\n"
                   b"RCPT TO:<nobody@relay.test>\r\n")
            replies = s.read_all_replies(3)
            s.send(b"QUIT\r\n")
        self.assertEqual(replies[2][0], 250, replies)

    def test_reinjection_listener_overrides_hold(self):
        # main.cf: mynetworks = 127.0.0.1/32, so 127.0.0.2 may not relay;
        # the listener's -o mynetworks=127.0.0.0/8 lets it
        def rcpt(port):
            with smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0)) as c:
                c.ehlo("outside.test")
                c.mail(SENDER)
                return c.rcpt("a@remote.test")
        code, text = rcpt(self.inst.port)
        self.assertEqual(code, 454, text)
        self.assertIn(b"Relay access denied", text)
        self.assertEqual(rcpt(self.reinject_port)[0], 250)


class TestPerServiceContentFilter(FilterTest):
    """No content_filter in main.cf: -o content_filter on the smtpd that
    receives from the internet and on pickup; a second smtpd without it
    delivers directly."""

    master_cf = ("127.0.0.1:{port} inet n - n - - smtpd\n"
                 "  -o content_filter=smtp:[127.0.0.1]:FILTER_PORT\n"
                 "127.0.0.1:DIRECT inet n - n - - smtpd\n"
                 "pickup fifo n - n 60 1 pickup\n"
                 "  -o content_filter=smtp:[127.0.0.1]:SECOND_PORT\n")

    @classmethod
    def setUpClass(cls):
        cls.direct_port = harness.free_port()
        super().setUpClass()
        cls.inst.wait_port(cls.direct_port)

    @classmethod
    def expand(cls, v):
        return super().expand(v).replace("DIRECT", str(cls.direct_port))

    @classmethod
    def make_instance(cls, settings, master):
        # the sendmail tests' instance: a set-group-ID tern-drop for pickup
        import test_sendmail
        inst = test_sendmail.make_instance("cfilter-svc", settings)
        inst.set_master_cf(master.replace("{port}", str(inst.port)).splitlines())
        return inst

    def test_internet_listener_filtered(self):
        self.send(["a@remote.test"], "from the internet")
        got = self.sink_messages_for("from the internet", 1)
        self.assertIn(b"X-Filtered: main\r\n", got[0][2])
        self.assertEqual(header_count(got[0][2], "X-Filtered"), 1)

    def test_other_listener_not_filtered(self):
        self.send(["a@remote.test"], "direct listener", port=self.direct_port)
        got = self.sink_messages_for("direct listener", 1)
        self.assertNotIn(b"X-Filtered", got[0][2])
        self.assertEqual(self.filtered(self.filter, "direct listener"), [])

    def test_pickup_filtered(self):
        import test_sendmail
        r = test_sendmail.sendmail(self.inst, ["-f", SENDER, "a@remote.test"],
                                   message("from sendmail"))
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.sink_messages_for("from sendmail", 1)
        self.assertIn(b"X-Filtered: second\r\n", got[0][2])
        self.assertEqual(header_count(got[0][2], "X-Filtered"), 1)


class TestFilterDown(FilterTest):
    """A filter that does not answer: the mail waits in deferred/ with the
    reason `tern why` shows, keeps the filter it was queued with when
    content_filter changes, and is delivered through it once it is back."""

    @classmethod
    def setUpClass(cls):
        cls.down_port = harness.free_port()
        cls.main_cf = {"content_filter": "smtp:[127.0.0.1]:%d" % cls.down_port,
                       "minimal_backoff_time": "300s", "maximal_backoff_time": "600s"}
        super().setUpClass()

    def test_waits_then_delivered_through_its_filter(self):
        self.send(["a@remote.test"], "filter down")
        m = self.inst.wait_log(r"(\w+): to=<a@remote\.test>, relay=none, .*status=deferred "
                               r"\(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: Connection refused\)"
                               % self.down_port, timeout=20)
        qid = m.group(1)
        self.inst.wait_queue("deferred", 1)
        why = self.inst.tern("why", qid).stdout
        self.assertIn("connect to 127.0.0.1[127.0.0.1]:%d: Connection refused" % self.down_port, why)
        # the site turns the filter off; the queued message keeps its own
        self.inst.set_main_cf(["content_filter ="])
        self.inst.reload()
        back = Filter("restarted", self.reinject_port, port=self.down_port)
        self.addCleanup(back.stop)
        self.inst.tern("flush")
        got = self.sink_messages_for("filter down", 1, timeout=30)
        self.assertIn(b"X-Filtered: restarted\r\n", got[0][2])
        self.assertEqual(header_count(got[0][2], "X-Filtered"), 1)
        self.assertEqual(len(back.handler.received), 1)
        # new mail now goes straight out
        self.send(["a@remote.test"], "after reload")
        got = self.sink_messages_for("after reload", 1)
        self.assertNotIn(b"X-Filtered", got[0][2])


# ---- a real amavisd-new with SpamAssassin and ClamAV ----

AMAVISD = "/usr/sbin/amavisd"
AMAVIS_START_LIMIT = 180          # seconds amavisd (SpamAssassin's rules) may take to start

# amavisd.conf: everything in the test's directory, no network tests, no
# notices or quarantine; spam is tagged and passed, a virus refused.
AMAVISD_CONF = r"""use strict;
$MYHOME = '{home}';
$TEMPBASE = "$MYHOME/tmp";
$db_home = "$MYHOME/db";
$helpers_home = "$MYHOME/var";
$pid_file = "$MYHOME/amavisd.pid";
$lock_file = "$MYHOME/amavisd.lock";
$daemon_user = 'amavis';
$daemon_group = 'amavis';
$mydomain = 'tern.test';
$myhostname = 'amavis.tern.test';
$max_servers = 2;
$child_timeout = 300;
$inet_socket_bind = '127.0.0.1';
$inet_socket_port = {port};
@inet_acl = qw(127.0.0.1);
@mynetworks = qw(127.0.0.0/8);
$unix_socketname = undef;
$forward_method = 'smtp:[127.0.0.1]:{reinject}';
$notify_method = $forward_method;
$enable_db = 0;
$enable_zmq = 0;
$enable_global_cache = 0;
$enable_dkim_verification = 0;
$enable_dkim_signing = 0;
$DO_SYSLOG = 0;
$LOGFILE = "$MYHOME/amavis.log";
$log_level = 2;
$QUARANTINEDIR = undef;
$virus_quarantine_to = undef;
$spam_quarantine_to = undef;
$banned_quarantine_to = undef;
$bad_header_quarantine_to = undef;
$virus_admin = undef;
$spam_admin = undef;
$warnvirussender = 0;
$warnspamsender = 0;
$final_virus_destiny = D_REJECT;
$final_banned_destiny = D_PASS;
$final_spam_destiny = D_PASS;
$final_bad_header_destiny = D_PASS;
@local_domains_maps = (1);
$sa_local_tests_only = 1;
$sa_tag_level_deflt = -999;
$sa_tag2_level_deflt = 5;
$sa_kill_level_deflt = 1000000;
$sa_spam_subject_tag = '***SPAM*** ';
$X_HEADER_LINE = "Tern test amavisd at $mydomain";
@av_scanners = (
  ['ClamAV-clamd', \&ask_daemon, ["CONTSCAN {{}}\n", '{clamd_socket}'],
   qr/\bOK$/m, qr/\bFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],
);
@av_scanners_backup = ();
1;
"""


def amavis_unavailable():
    """Why amavisd-new with SpamAssassin and clamd cannot run here, or None."""
    for path, pkg in ((AMAVISD, "amavisd-new"), (CLAMD, "clamav-daemon"), (SIGTOOL, "clamav")):
        if not os.access(path, os.X_OK):
            return "%s is missing: install %s (tools/install-deps)" % (path, pkg)
    try:
        pwd.getpwnam("amavis")
    except KeyError:
        return "no amavis account (the amavisd-new package creates it)"
    if os.geteuid() != 0:
        return "amavisd and clamd are started as root to drop to the amavis account"
    r = subprocess.run(["perl", "-MMail::SpamAssassin", "-e", "1"], capture_output=True)
    if r.returncode != 0:
        return "SpamAssassin's Perl modules are missing: install spamassassin (tools/install-deps)"
    return None


@unittest.skipIf(amavis_unavailable(), amavis_unavailable())
class TestAmavisd(FilterTest):
    """amavisd-new as the content filter (content_filter =
    smtp-amavis:[127.0.0.1]:PORT, its $forward_method back to the
    re-injection listener), with SpamAssassin in it and ClamAV's clamd
    behind it."""

    main_cf = {"content_filter": "smtp-amavis:[127.0.0.1]:AMAVIS_PORT"}
    master_cf = ("smtp-amavis unix - - n - 2 smtp\n"
                 "  -o smtp_data_done_timeout=1200\n")

    @classmethod
    def start_servers(cls):
        cls.daemons = []
        cls.amavis_port = harness.free_port()
        # clamd with a database of one signature, the EICAR string, made by sigtool
        cls.clam_dir = os.path.join(cls.tmp, "clamav")
        sock, _ = start_clamd(cls.clam_dir, "amavis", cls.daemons, cls.tmp)
        amavis = pwd.getpwnam("amavis")
        # amavisd: its configuration where the amavis account cannot write
        # (amavisd refuses it otherwise), its home its own
        conf_dir = os.path.join(cls.tmp, "amavis-conf")
        os.mkdir(conf_dir)
        cls.amavis_home = os.path.join(cls.tmp, "amavis")
        for sub in ("", "tmp", "db", "var"):
            os.makedirs(os.path.join(cls.amavis_home, sub), exist_ok=True)
            os.chown(os.path.join(cls.amavis_home, sub), amavis.pw_uid, amavis.pw_gid)
        aconf = os.path.join(conf_dir, "amavisd.conf")
        with open(aconf, "w") as f:
            f.write(AMAVISD_CONF.format(home=cls.amavis_home, port=cls.amavis_port,
                                        reinject=cls.reinject_port, clamd_socket=sock))
        cls.amavis_log = os.path.join(cls.amavis_home, "amavis.log")
        amavisd = Daemon([AMAVISD, "-c", aconf, "foreground"], os.path.join(cls.tmp, "amavisd.out"))
        cls.daemons.append(amavisd)

        def ready():
            return "ready for work" in tail(cls.amavis_log, 50)
        wait_for("amavisd-new", ready, amavisd, AMAVIS_START_LIMIT, [amavisd.log, cls.amavis_log])

    @classmethod
    def stop_servers(cls):
        for d in reversed(getattr(cls, "daemons", [])):
            d.stop()

    @classmethod
    def expand(cls, v):
        return super().expand(v).replace("AMAVIS_PORT", str(cls.amavis_port))

    def amavis_context(self):
        return "\nTern log:\n%s\namavis log:\n%s" % (self.inst.log_tail(30), tail(self.amavis_log, 30))

    def sink_messages_for(self, subject, count, timeout=90):
        try:
            return super().sink_messages_for(subject, count, timeout)
        except AssertionError as e:
            raise AssertionError(str(e) + self.amavis_context()) from None

    def test_ham_scanned_and_delivered(self):
        self.send(["a@remote.test", "b@other.test"], "plain ham",
                  extra="Message-ID: <ham-1@client.test>\r\n")
        got = self.sink_messages_for("plain ham", 1)
        head = got[0][2].split(b"\r\n\r\n", 1)[0]
        self.assertEqual(sorted(got[0][1]), ["a@remote.test", "b@other.test"])
        self.assertEqual(header_count(got[0][2], "X-Virus-Scanned"), 1, head)
        self.assertIn(b"X-Virus-Scanned: Tern test amavisd at tern.test", head)
        self.assertRegex(head, rb"(?m)^X-Spam-Flag: NO")
        self.assertNotIn(b"***SPAM***", head)
        self.inst.wait_log(r"to=<a@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*"
                           r"status=sent \(250 2\.0\.0 from MTA\(smtp:\[127\.0\.0\.1\]:%d\)"
                           % (self.amavis_port, self.reinject_port))
        # filtered once: amavis saw it once
        time.sleep(1)
        self.assertEqual(tail(self.amavis_log, 10000).count("<ham-1@client.test>"), 1,
                         self.amavis_context())

    def test_gtube_tagged(self):
        with smtplib.SMTP("127.0.0.1", self.inst.port, timeout=20) as c:
            c.sendmail(SENDER, ["a@remote.test"],
                       "From: %s\r\nSubject: gtube test\r\n\r\n%s\r\n" % (SENDER, GTUBE))
        deadline = time.time() + 90
        got = []
        while not got and time.time() < deadline:
            got = [m for m in self.sink.handler.messages if b"gtube test" in m[2]]
            time.sleep(0.1)
        self.assertTrue(got, self.amavis_context())
        head = got[0][2].split(b"\r\n\r\n", 1)[0]
        self.assertRegex(head, rb"(?m)^X-Spam-Flag: YES")
        self.assertRegex(head, rb"(?m)^X-Spam-Status: Yes, score=\d+")
        self.assertIn(b"GTUBE", head)
        self.assertIn(b"Subject: ***SPAM*** gtube test", head)
        self.assertEqual(header_count(got[0][2], "X-Virus-Scanned"), 1)

    def test_eicar_refused(self):
        att = base64.encodebytes(EICAR).decode().replace("\n", "\r\n")
        msg = ("From: %s\r\nSubject: eicar test\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
               "--b1\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n"
               "--b1\r\nContent-Type: application/octet-stream; name=\"eicar.com\"\r\n"
               "Content-Transfer-Encoding: base64\r\n"
               "Content-Disposition: attachment; filename=\"eicar.com\"\r\n\r\n%s"
               "--b1--\r\n" % (SENDER, att))
        with smtplib.SMTP("127.0.0.1", self.inst.port, timeout=20) as c:
            c.sendmail(SENDER, ["victim@remote.test"], msg)
        m = self.inst.wait_log(r"(\w+): to=<victim@remote\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:"
                               r"%d, .*status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: "
                               r"554 5\.7\.0 Reject, id=\S+ - (INFECTED|VIRUS): Tern\.Test\.EICAR"
                               % self.amavis_port, timeout=90)
        # the sender is told, around the filter; the virus never arrives
        deadline = time.time() + 30
        bounce = []
        while not bounce and time.time() < deadline:
            bounce = [x for x in self.sink.handler.messages
                      if x[0] in ("", "<>") and m.group(1).encode() in x[2]]
            time.sleep(0.1)
        self.assertTrue(bounce, self.amavis_context())
        self.assertIn(b"Tern.Test.EICAR", bounce[0][2])
        self.assertEqual([x for x in self.sink.handler.messages if x[1] == ["victim@remote.test"]],
                         [])


if __name__ == "__main__":
    unittest.main()
