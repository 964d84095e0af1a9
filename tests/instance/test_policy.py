"""test_policy.py: whole-instance tests of smtpd's restrictions: relay
control against every routing trick, each restriction and access(5) action
with its exact reply and NOQUEUE log line, DNS blocklists and client names
against a DNS server of the test (dnslib), and check_policy_service against
a policy server of the test (UNIX and TCP), Debian's postgrey and
postfix-policyd-spf-python.

Untrusted clients bind their sockets to 127.0.0.2 and up; every instance
has mynetworks = 127.0.0.1/32. Local mail goes to a transport that never
answers, so queued messages stay in active/ to be inspected; mail to other
domains goes to a relayhost sink (aiosmtpd) of the test.
"""
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
import sink  # noqa: E402

from dnsserver import DnsServer  # noqa: E402

HOSTNAME = "tern.test"
POLICYD_SPF = "/usr/bin/policyd-spf"


def ptr_name(addr):
    return ".".join(reversed(addr.split("."))) + ".in-addr.arpa"


# ---- an SMTP client from a chosen address ----

class Client(harness.RawSession):
    """A raw SMTP client from a chosen source address; a reply is (code,
    the texts of its lines joined by spaces)."""

    def __init__(self, port, source="127.0.0.2", greet=True, timeout=15, host="127.0.0.1"):
        super().__init__(port, greet=False, timeout=timeout, source=source, host=host)
        self.greeting = self.reply() if greet else None

    def reply(self):
        code, lines = self.read_reply()
        return code, " ".join(line[4:] for line in lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()


class PolicyTest(unittest.TestCase):
    """One instance per class: params (main.cf), tables {name: text}
    written to a directory whose path replaces TABLES in params."""

    params = {}
    tables = {}
    zone = {}
    servfail = ()
    silent = ()

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-policy-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        for name, text in cls.tables.items():
            with open(os.path.join(cls.tmp, name), "w") as f:
                f.write(text)
        cls.dns = DnsServer(cls.zone, cls.servfail, cls.silent)
        cls.sink = sink.Sink()
        cls.start_servers()
        settings = {"mynetworks": "127.0.0.1/32", "local_transport": "stall",
                    "smtpd_dns_servers": "127.0.0.1:%d" % cls.dns.port, "smtpd_dns_timeout": "2s",
                    "relayhost": "[127.0.0.1]:%d" % cls.sink.port}
        for k, v in cls.params.items():
            settings[k] = cls.expand(v)
        cls.inst = harness.Instance(name="policy", main_cf=settings,
                                    master_cf_extra=cls.extra_services())
        cls.inst.stall_transport("stall")
        cls.inst.start()

    @classmethod
    def expand(cls, v):
        return v.replace("TABLES", cls.tmp)

    @classmethod
    def start_servers(cls):
        pass

    @classmethod
    def extra_services(cls):
        return None

    @classmethod
    def stop_servers(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.stop_servers()
            cls.sink.stop()
            cls.dns.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def client(self, source="127.0.0.2", helo="client.example", ehlo=True, **kw):
        c = Client(self.inst.port, source=source, **kw)
        self.addCleanup(c.close)
        if helo:
            code, text = c.cmd("%s %s" % ("EHLO" if ehlo else "HELO", helo))
            self.assertEqual(code, 250, text)
        return c

    def rcpt(self, rcpt, sender="sender@example.org", source="127.0.0.2", helo="client.example"):
        c = self.client(source=source, helo=helo)
        code, text = c.cmd("MAIL FROM:<%s>" % sender)
        self.assertEqual(code, 250, text)
        return c.cmd("RCPT TO:<%s>" % rcpt)

    def assert_reply(self, got, code, text):
        self.assertEqual(got, (code, text))

    def wait_log(self, regex, timeout=10):
        return self.inst.wait_log(regex, timeout=timeout)

    def noqueue(self, what, where, client, reply, sender=None, rcpt=None, proto="ESMTP",
                helo="client.example"):
        """The regex of a NOQUEUE log line, fields as Postfix shows them."""
        line = "NOQUEUE: %s: %s from %s: %s;" % (what, where, client, reply)
        if sender is not None:
            line += " from=<%s>" % sender
        if rcpt is not None:
            line += " to=<%s>" % rcpt
        line += " proto=%s" % proto
        if helo:
            line += " helo=<%s>" % helo
        return "(?m)" + re.escape(line) + "$"

    def send_message(self, c, body="Subject: t\r\n\r\nhello\r\n"):
        code, text = c.cmd("DATA")
        self.assertEqual(code, 354, text)
        c.send(body + ".\r\n")
        return c.reply()


# ---- relay control ----

class TestRelayControl(PolicyTest):
    """The default smtpd_relay_restrictions (permit_mynetworks,
    permit_sasl_authenticated, defer_unauth_destination) against an open
    relay battery from an untrusted client; a relayhost sink must get
    nothing. From mynetworks relaying works."""

    params = {"relay_domains": "relay.test"}

    TRICKS = [
        "victim@foreign.test", "VICTIM@FOREIGN.TEST", "victim@foreign.test.",
        "user%foreign.test@tern.test", "user%foreign.test@TERN.TEST.",
        "user%foreign.test%tern.test@tern.test", "foreign.test!user@tern.test",
        "foreign.test!user%tern.test@tern.test", "@tern.test:user@foreign.test",
        "@tern.test,@relay.test:user@foreign.test", '"user@foreign.test"@tern.test',
        '"user%foreign.test"@tern.test', '"foreign.test!user"@tern.test',
        "user@foreign.test.@tern.test", "user@[192.0.2.1]", "user@[127.0.0.9]",
        "user@[IPv6:2001:db8::1]", "user%foreign.test@relay.test", "foreign.test!user@relay.test",
        "user@foreign.test@tern.test", "user@tern.test.foreign.test", "user@tern.test..",
    ]

    def test_open_relay_battery(self):
        for addr in self.TRICKS:
            with self.subTest(rcpt=addr):
                c = self.client()
                self.assertEqual(c.cmd("MAIL FROM:<sender@example.org>")[0], 250)
                code, text = c.cmd("RCPT TO:<%s>" % addr)
                self.assertIn(code, (454, 501, 553), text)
                if code == 454:
                    self.assertTrue(text.startswith("4.7.1 <") and text.endswith(">: Relay access denied"),
                                    text)
                self.assertEqual(c.cmd("DATA")[0], 503)
        self.wait_log(self.noqueue("reject", "RCPT", "unknown[127.0.0.2]",
                                   "454 4.7.1 <victim@foreign.test>: Relay access denied",
                                   "sender@example.org", "victim@foreign.test"))
        time.sleep(2)
        self.assertEqual(self.sink.handler.messages, [])
        for sub in ("incoming", "active", "deferred"):
            self.assertEqual(self.inst.queue_files(sub), [], sub)

    def test_local_and_relay_domains_accepted(self):
        for addr in ("user@tern.test", "USER@Tern.Test.", "postmaster", "u@relay.test",
                     "user%tern.test@tern.test"):
            with self.subTest(rcpt=addr):
                self.assertEqual(self.rcpt(addr), (250, "2.1.5 Ok"))

    def test_relay_from_mynetworks(self):
        c = self.client(source="127.0.0.1")
        c.cmd("MAIL FROM:<sender@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<friend@foreign.test>"), (250, "2.1.5 Ok"))
        self.assertEqual(self.send_message(c)[0], 250)
        msgs = self.sink.wait(1, timeout=30)
        self.assertEqual(msgs[0][1], ["friend@foreign.test"])


class TestRejectUnauthDestination(PolicyTest):
    """reject_unauth_destination (554) and permit_auth_destination; the
    old style with everything in smtpd_recipient_restrictions."""

    params = {"smtpd_relay_restrictions": "",
              "smtpd_recipient_restrictions": "permit_mynetworks, permit_sasl_authenticated, "
                                              "reject_unauth_destination"}

    def test_reject(self):
        self.assert_reply(self.rcpt("u%foreign.test@tern.test"),
                          554, "5.7.1 <u%foreign.test@tern.test>: Relay access denied")
        self.wait_log(self.noqueue("reject", "RCPT", "unknown[127.0.0.2]",
                                   "554 5.7.1 <u%foreign.test@tern.test>: Relay access denied",
                                   "sender@example.org", "u%foreign.test@tern.test"))
        self.assertEqual(self.rcpt("u@tern.test"), (250, "2.1.5 Ok"))


class TestLocalRecipientMaps(PolicyTest):
    """The default local_recipient_maps (unix:passwd.byname, $alias_maps):
    a local address is valid when it is a Unix user or an alias; others
    are refused at RCPT, not accepted and bounced later. A rebuilt alias
    table is seen without a reload."""

    params = {"local_recipient_maps": "unix:passwd.byname, $alias_maps"}

    def test_users_and_aliases_accepted_others_refused(self):
        self.assertEqual(self.rcpt("root@tern.test"), (250, "2.1.5 Ok"))
        self.assertEqual(self.rcpt("Postmaster@TERN.test"), (250, "2.1.5 Ok"))
        self.assert_reply(self.rcpt("no-such-user-x9@tern.test"), 550,
                          "5.1.1 <no-such-user-x9@tern.test>: Recipient address rejected: "
                          "User unknown in local recipient table")
        self.wait_log(self.noqueue("reject", "RCPT", "unknown[127.0.0.2]",
                                   "550 5.1.1 <no-such-user-x9@tern.test>: Recipient address "
                                   "rejected: User unknown in local recipient table",
                                   "sender@example.org", "no-such-user-x9@tern.test"))
        # a foreign domain is not looked up in the local tables
        self.assertEqual(self.rcpt("no-such-user-x9@foreign.test", source="127.0.0.1")[0], 250)

    def test_rebuilt_alias_table_is_used_without_reload(self):
        self.assertEqual(self.rcpt("new-team-x9@tern.test")[0], 550)
        aliases = os.path.join(self.inst.dir, "aliases")
        with open(aliases, "a") as f:
            f.write("new-team-x9: root\n")
        self.inst.tern("aliases")
        deadline = time.time() + 15
        got = None
        while time.time() < deadline:
            got = self.rcpt("new-team-x9@tern.test")
            if got[0] == 250:
                break
            time.sleep(0.5)
        self.assertEqual(got, (250, "2.1.5 Ok"))
        self.wait_log(r"table hash:\S+aliases has changed")


class TestIPv6Client(PolicyTest):
    """A client on ::1: mynetworks and access tables by IPv6 address, and
    the relay decision for an IPv6 client outside mynetworks."""

    v6_port = harness.free_port()
    params = {"inet_protocols": "all", "mynetworks": "127.0.0.1/32",
              "smtpd_client_restrictions": "check_client_access texthash:TABLES/client6"}
    tables = {"client6": "::2 REJECT not this one\n",
              "client6b": "::1 550 5.7.1 IPv6 loopback refused here\n"}

    @classmethod
    def extra_services(cls):
        return ["[::1]:%d inet n - n - - smtpd" % cls.v6_port,
                "[::1]:%d inet n - n - - smtpd -o mynetworks=[::1]/128" % (cls.v6_port + 1),
                "[::1]:%d inet n - n - - smtpd "
                "-o smtpd_client_restrictions=check_client_access,texthash:%s/client6b"
                % (cls.v6_port + 2, cls.tmp)]

    def v6(self, port):
        c = Client(port, source=None, host="::1")
        self.addCleanup(c.close)
        self.assertEqual(c.cmd("EHLO client.example")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.org>")[0], 250)
        return c

    def test_outside_mynetworks_cannot_relay(self):
        c = self.v6(self.v6_port)
        self.assertEqual(c.cmd("RCPT TO:<user@foreign.test>"),
                         (454, "4.7.1 <user@foreign.test>: Relay access denied"))
        self.wait_log(r"NOQUEUE: reject: RCPT from \S+\[::1\]: 454 4\.7\.1 "
                      r"<user@foreign\.test>: Relay access denied")
        self.assertEqual(c.cmd("RCPT TO:<user@tern.test>"), (250, "2.1.5 Ok"))

    def test_mynetworks_by_ipv6_prefix(self):
        c = self.v6(self.v6_port + 1)
        self.assertEqual(c.cmd("RCPT TO:<user@foreign.test>"), (250, "2.1.5 Ok"))

    def test_access_table_by_ipv6_address(self):
        c = self.v6(self.v6_port + 2)
        self.assertEqual(c.cmd("RCPT TO:<user@tern.test>"),
                         (550, "5.7.1 <unknown[::1]>: Client host rejected: "
                               "IPv6 loopback refused here"))
        self.wait_log(r"NOQUEUE: reject: RCPT from unknown\[::1\]: 550 5\.7\.1 <unknown\[::1\]>: "
                      r"Client host rejected: IPv6 loopback refused here; from=<sender@example\.org> "
                      r"to=<user@tern\.test> proto=ESMTP helo=<client\.example>")


# ---- access tables and predicates ----

ACCESS_TABLES = {
    "client": "127.0.0.3 REJECT\nclient.test 550 5.7.1 your domain is blocked\n",
    "helo": "bad.helo.test REJECT\nhelo-parent.test 550 parent domain refused\n",
    "sender": ("spammer@example.org REJECT\nspam.test REJECT\nbaduser@ 553 5.7.1 not you\n"
               "<> 550 5.7.1 no bounces here\n"),
    "rcpt": """ok@tern.test OK
permit@tern.test PERMIT
dunno@tern.test DUNNO
numeric@tern.test 1234
reject@tern.test REJECT
rejecttext@tern.test REJECT 5.7.9 go away
defer@tern.test DEFER
defertext@tern.test DEFER 4.3.9 try later
code4@tern.test 452 4.2.2 mailbox full
code5@tern.test 550 no such user
dip@tern.test DEFER_IF_PERMIT maybe later
discard@tern.test DISCARD
hold@tern.test HOLD
filter@tern.test FILTER smtp:[127.0.0.1]:10025
prepend@tern.test PREPEND X-Policy: tagged by the access table
warn@tern.test WARN looks odd
list@tern.test permit_mynetworks, reject
class@tern.test strict
bad@tern.test FILTER nocolon
fqdnhelo@tern.test reject_non_fqdn_helo_hostname
invalidhelo@tern.test reject_invalid_helo_hostname
fqdnsender@tern.test reject_non_fqdn_sender
fqdnrcpt reject_non_fqdn_recipient
warnonly@tern.test warn_if_reject, reject
defer2@tern.test reject_unauth_destination, defer
dip2@tern.test defer_if_permit, permit
sasl@tern.test permit_sasl_authenticated, reject
pipe@tern.test reject_unauth_pipelining
unlisted-sender@tern.test reject_unlisted_sender
needname@tern.test reject_unknown_client_hostname
needrev@tern.test reject_unknown_reverse_client_hostname
""",
    "users": "user1 ok\nalias1@tern.test ok\n",
}


class TestAccessTables(PolicyTest):
    """check_client_, _helo_, _sender_ and _recipient_access with access(5)
    lookups and every action; the predicates, scoped to one recipient each
    by a recipient table whose result is a restriction list."""

    tables = ACCESS_TABLES
    params = {
        "smtpd_client_restrictions": "check_client_access texthash:TABLES/client",
        "smtpd_helo_restrictions": "check_helo_access texthash:TABLES/helo",
        "smtpd_sender_restrictions": "check_sender_access texthash:TABLES/sender",
        "smtpd_recipient_restrictions": "check_recipient_access texthash:TABLES/rcpt, "
                                        "reject_unlisted_recipient",
        "smtpd_restriction_classes": "strict",
        "strict": "reject_unknown_client_hostname, permit",
        "local_recipient_maps": "texthash:TABLES/users, texthash:TABLES/rcpt",
    }
    zone = {
        ptr_name("127.0.0.5"): {"PTR": ["host5.client.test"]},
        "host5.client.test": {"A": ["127.0.0.5"]},
        ptr_name("127.0.0.6"): {"PTR": ["liar.example.test"]},
        "liar.example.test": {"A": ["192.0.2.6"]},
    }
    servfail = {ptr_name("127.0.0.7")}

    def test_recipient_actions(self):
        cases = [
            ("ok@tern.test", 250, "2.1.5 Ok"),
            ("permit@tern.test", 250, "2.1.5 Ok"),
            ("dunno@tern.test", 250, "2.1.5 Ok"),
            ("numeric@tern.test", 250, "2.1.5 Ok"),
            ("reject@tern.test", 554, "5.7.1 <reject@tern.test>: Recipient address rejected: Access denied"),
            ("rejecttext@tern.test", 554, "5.7.9 <rejecttext@tern.test>: Recipient address rejected: go away"),
            ("defer@tern.test", 450, "4.7.1 <defer@tern.test>: Recipient address rejected: Access denied"),
            ("defertext@tern.test", 450, "4.3.9 <defertext@tern.test>: Recipient address rejected: try later"),
            ("code4@tern.test", 452, "4.2.2 <code4@tern.test>: Recipient address rejected: mailbox full"),
            ("code5@tern.test", 550, "5.7.1 <code5@tern.test>: Recipient address rejected: no such user"),
            ("dip@tern.test", 450, "4.7.1 <dip@tern.test>: Recipient address rejected: maybe later"),
            ("list@tern.test", 554, "5.7.1 <list@tern.test>: Recipient address rejected: Access denied"),
            ("bad@tern.test", 451, "4.3.5 Server configuration error"),
            ("defer2@tern.test", 450, "4.3.2 <defer2@tern.test>: Recipient address rejected: Try again later"),
            ("dip2@tern.test", 450, "4.7.1 <dip2@tern.test>: Recipient address rejected: defer_if_permit requested"),
            ("sasl@tern.test", 554, "5.7.1 <sasl@tern.test>: Recipient address rejected: Access denied"),
            ("warnonly@tern.test", 250, "2.1.5 Ok"),
        ]
        for rcpt, code, text in cases:
            with self.subTest(rcpt=rcpt):
                self.assert_reply(self.rcpt(rcpt), code, text)
        self.wait_log(self.noqueue("reject", "RCPT", "unknown[127.0.0.2]",
                                   "554 5.7.9 <rejecttext@tern.test>: Recipient address rejected: go away",
                                   "sender@example.org", "rejecttext@tern.test"))
        self.wait_log(self.noqueue("reject_warning", "RCPT", "unknown[127.0.0.2]",
                                   "554 5.7.1 <warnonly@tern.test>: Recipient address rejected: Access denied",
                                   "sender@example.org", "warnonly@tern.test"))

    def test_unlisted_recipient(self):
        self.assertEqual(self.rcpt("user1@tern.test"), (250, "2.1.5 Ok"))
        self.assertEqual(self.rcpt("alias1@tern.test"), (250, "2.1.5 Ok"))
        self.assert_reply(self.rcpt("nobody@tern.test"), 550,
                          "5.1.1 <nobody@tern.test>: Recipient address rejected: User unknown in local recipient table")
        self.wait_log(self.noqueue("reject", "RCPT", "unknown[127.0.0.2]",
                                   "550 5.1.1 <nobody@tern.test>: Recipient address rejected: "
                                   "User unknown in local recipient table",
                                   "sender@example.org", "nobody@tern.test"))

    def test_unlisted_sender(self):
        self.assertEqual(self.rcpt("unlisted-sender@tern.test", sender="user1@tern.test"), (250, "2.1.5 Ok"))
        self.assert_reply(self.rcpt("unlisted-sender@tern.test", sender="ghost@tern.test"), 550,
                          "5.1.0 <ghost@tern.test>: Sender address rejected: User unknown in local recipient table")

    def test_client_access(self):
        self.assert_reply(self.rcpt("ok@tern.test", source="127.0.0.3"), 554,
                          "5.7.1 <unknown[127.0.0.3]>: Client host rejected: Access denied")
        # smtpd_delay_reject: the client is refused at RCPT, so the line names both addresses
        self.wait_log(self.noqueue("reject", "RCPT", "unknown[127.0.0.3]",
                                   "554 5.7.1 <unknown[127.0.0.3]>: Client host rejected: Access denied",
                                   "sender@example.org", "ok@tern.test"))
        # a verified name: its parent domain is listed
        self.assert_reply(self.rcpt("ok@tern.test", source="127.0.0.5"), 550,
                          "5.7.1 <host5.client.test[127.0.0.5]>: Client host rejected: your domain is blocked")
        self.wait_log(r"connect from host5\.client\.test\[127\.0\.0\.5\]")

    def test_helo_access(self):
        self.assert_reply(self.rcpt("ok@tern.test", helo="bad.helo.test"), 554,
                          "5.7.1 <bad.helo.test>: Helo command rejected: Access denied")
        self.assert_reply(self.rcpt("ok@tern.test", helo="x.helo-parent.test"), 550,
                          "5.7.1 <x.helo-parent.test>: Helo command rejected: parent domain refused")
        self.wait_log(self.noqueue("reject", "RCPT", "unknown[127.0.0.2]",
                                   "554 5.7.1 <bad.helo.test>: Helo command rejected: Access denied",
                                   "sender@example.org", "ok@tern.test", helo="bad.helo.test"))

    def test_sender_access(self):
        for sender, code, text in (
                ("spammer@example.org", 554, "5.7.1 <spammer@example.org>: Sender address rejected: Access denied"),
                ("someone@deep.spam.test", 554, "5.7.1 <someone@deep.spam.test>: Sender address rejected: Access denied"),
                ("baduser@anywhere.test", 553, "5.7.1 <baduser@anywhere.test>: Sender address rejected: not you"),
                ("", 550, "5.7.1 <<>>: Sender address rejected: no bounces here")):
            with self.subTest(sender=sender):
                self.assert_reply(self.rcpt("ok@tern.test", sender=sender), code, text)

    def test_discard(self):
        before = self.inst.queue_files("active") + self.inst.queue_files("incoming")
        c = self.client()
        c.cmd("MAIL FROM:<sender@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<discard@tern.test>"), (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<ok@tern.test>"), (250, "2.1.5 Ok"))
        self.assertEqual(self.send_message(c), (250, "2.0.0 Ok: discarded"))
        self.wait_log(self.noqueue("discard", "RCPT", "unknown[127.0.0.2]",
                                   "<discard@tern.test>: Recipient address triggers DISCARD action",
                                   "sender@example.org", "discard@tern.test"))
        time.sleep(0.5)
        self.assertEqual(self.inst.queue_files("active") + self.inst.queue_files("incoming"), before)

    def queued_after(self, rcpt):
        c = self.client()
        c.cmd("MAIL FROM:<sender@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<%s>" % rcpt), (250, "2.1.5 Ok"))
        code, text = self.send_message(c)
        self.assertEqual(code, 250, text)
        qid = text.split()[-1]
        deadline = time.time() + 10
        while time.time() < deadline:
            # The filter destination has no listener, so a message may already
            # have been tried and moved to deferred/ by the time we look.
            for sub in ("hold", "active", "incoming", "deferred"):
                path = os.path.join(self.inst.queue_dir, sub, qid)
                if os.path.exists(path):
                    try:
                        q = harness.read_queue_file(path)
                    except (OSError, ValueError):
                        continue
                    if q["complete"]:
                        return sub, q
            time.sleep(0.05)
        self.fail("message %s not found" % qid)

    def test_filter(self):
        sub, q = self.queued_after("filter@tern.test")
        self.assertEqual(q["attrs"].get("content_filter"), "smtp:[127.0.0.1]:10025")
        self.wait_log(self.noqueue("filter", "RCPT", "unknown[127.0.0.2]",
                                   "<filter@tern.test>: Recipient address triggers FILTER smtp:[127.0.0.1]:10025",
                                   "sender@example.org", "filter@tern.test"))

    def test_prepend(self):
        sub, q = self.queued_after("prepend@tern.test")
        self.assertIn(b"X-Policy: tagged by the access table\n", q["content"])
        self.assertIn(b"Subject: t\n", q["content"])

    def test_hold(self):
        sub, q = self.queued_after("hold@tern.test")
        self.wait_log(self.noqueue("hold", "RCPT", "unknown[127.0.0.2]",
                                   "<hold@tern.test>: Recipient address triggers HOLD action",
                                   "sender@example.org", "hold@tern.test"))
        self.assertEqual(sub, "hold")

    def test_warn(self):
        self.assertEqual(self.rcpt("warn@tern.test"), (250, "2.1.5 Ok"))
        self.wait_log(self.noqueue("warn", "RCPT", "unknown[127.0.0.2]",
                                   "<warn@tern.test>: Recipient address looks odd",
                                   "sender@example.org", "warn@tern.test"))

    def test_helo_and_address_syntax(self):
        self.assert_reply(self.rcpt("fqdnhelo@tern.test", helo="nodot"), 504,
                          "5.5.2 <nodot>: Helo command rejected: need fully-qualified hostname")
        self.assertEqual(self.rcpt("fqdnhelo@tern.test", helo="[127.0.0.2]"), (250, "2.1.5 Ok"))
        self.assert_reply(self.rcpt("invalidhelo@tern.test", helo="bad_name!"), 501,
                          "5.5.2 <bad_name!>: Helo command rejected: Invalid name")
        self.assertEqual(self.rcpt("invalidhelo@tern.test", helo="good.example"), (250, "2.1.5 Ok"))
        self.assert_reply(self.rcpt("fqdnsender@tern.test", sender="user@nodot"), 504,
                          "5.5.2 <user@nodot>: Sender address rejected: need fully-qualified address")
        self.assertEqual(self.rcpt("fqdnsender@tern.test", sender="user@example.org"), (250, "2.1.5 Ok"))
        self.assert_reply(self.rcpt("fqdnrcpt"), 504,
                          "5.5.2 <fqdnrcpt>: Recipient address rejected: need fully-qualified address")

    def test_unknown_client_hostname(self):
        for source, code in (("127.0.0.2", 450), ("127.0.0.6", 450), ("127.0.0.7", 450)):
            with self.subTest(source=source):
                self.assert_reply(self.rcpt("needname@tern.test", source=source), code,
                                  "4.7.25 Client host rejected: cannot find your hostname, [%s]" % source)
        # a restriction class, named in the table
        self.assert_reply(self.rcpt("class@tern.test", source="127.0.0.6"), 450,
                          "4.7.25 Client host rejected: cannot find your hostname, [127.0.0.6]")
        # the reverse name alone is enough for the reverse variant
        self.assertEqual(self.rcpt("needrev@tern.test", source="127.0.0.6"), (250, "2.1.5 Ok"))
        self.wait_log(r"hostname liar\.example\.test does not resolve to address 127\.0\.0\.6")
        self.wait_log(r"connect from unknown\[127\.0\.0\.6\]")

    def test_unauth_pipelining(self):
        c = self.client(ehlo=False)
        c.send("MAIL FROM:<sender@example.org>\r\nRCPT TO:<pipe@tern.test>\r\nNOOP\r\n")
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply(), (503, "5.5.0 <pipe@tern.test>: Recipient address rejected: "
                                          "Improper use of SMTP command pipelining"))
        self.assertEqual(c.reply()[0], 250)
        c2 = self.client()
        c2.send("MAIL FROM:<sender@example.org>\r\nRCPT TO:<pipe@tern.test>\r\nNOOP\r\n")
        self.assertEqual([c2.reply()[0] for _ in range(3)], [250, 250, 250])


class TestNoDelayReject(PolicyTest):
    """smtpd_delay_reject = no: client restrictions at connect (the refusal
    replaces the greeting, then 503 to all but QUIT), HELO restrictions at
    HELO, sender restrictions at MAIL; smtpd_data_restrictions and
    smtpd_end_of_data_restrictions."""

    tables = {"client": "127.0.0.3 REJECT\n", "datasenders": "nodata@example.org REJECT\n",
              "eodsenders": "noeod@example.org 550 5.7.1 content refused\n"}
    params = {"smtpd_delay_reject": "no",
              "smtpd_client_restrictions": "check_client_access texthash:TABLES/client",
              "smtpd_helo_restrictions": "reject_non_fqdn_helo_hostname",
              "smtpd_sender_restrictions": "reject_non_fqdn_sender",
              "smtpd_data_restrictions": "check_sender_access texthash:TABLES/datasenders",
              "smtpd_end_of_data_restrictions": "check_sender_access texthash:TABLES/eodsenders"}

    def test_client_refused_at_connect(self):
        c = Client(self.inst.port, source="127.0.0.3")
        self.addCleanup(c.close)
        self.assertEqual(c.greeting, (554, "5.7.1 <unknown[127.0.0.3]>: Client host rejected: Access denied"))
        self.assertEqual(c.cmd("EHLO client.example"), (503, "5.7.0 Error: access denied for unknown[127.0.0.3]"))
        self.assertEqual(c.cmd("QUIT")[0], 221)
        self.wait_log(self.noqueue("reject", "CONNECT", "unknown[127.0.0.3]",
                                   "554 5.7.1 <unknown[127.0.0.3]>: Client host rejected: Access denied",
                                   proto="SMTP", helo=None))

    def test_helo_and_mail(self):
        c = self.client(helo=None)
        self.assertEqual(c.cmd("EHLO nodot"),
                         (504, "5.5.2 <nodot>: Helo command rejected: need fully-qualified hostname"))
        self.assertEqual(c.cmd("EHLO client.example")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<user@nodot>"),
                         (504, "5.5.2 <user@nodot>: Sender address rejected: need fully-qualified address"))
        self.wait_log(self.noqueue("reject", "MAIL", "unknown[127.0.0.2]",
                                   "504 5.5.2 <user@nodot>: Sender address rejected: need fully-qualified address",
                                   "user@nodot"))
        self.assertEqual(c.cmd("MAIL FROM:<user@example.org>")[0], 250)

    def test_data_restrictions(self):
        c = self.client()
        c.cmd("MAIL FROM:<nodata@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<u@tern.test>")[0], 250)
        self.assertEqual(c.cmd("DATA"),
                         (554, "5.7.1 <nodata@example.org>: Sender address rejected: Access denied"))
        self.wait_log(self.noqueue("reject", "DATA", "unknown[127.0.0.2]",
                                   "554 5.7.1 <nodata@example.org>: Sender address rejected: Access denied",
                                   "nodata@example.org", "u@tern.test"))

    def test_end_of_data_restrictions(self):
        c = self.client()
        c.cmd("MAIL FROM:<noeod@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<u@tern.test>")[0], 250)
        self.assertEqual(self.send_message(c),
                         (550, "5.7.1 <noeod@example.org>: Sender address rejected: content refused"))
        self.wait_log(r"NOQUEUE: reject: END-OF-MESSAGE from unknown\[127\.0\.0\.2\]: 550 5\.7\.1 "
                      r"<noeod@example\.org>: Sender address rejected: content refused; "
                      r"from=<noeod@example\.org> to=<u@tern\.test> proto=ESMTP helo=<client\.example>")


# ---- DNS ----

class TestDnsLists(PolicyTest):
    """reject_rbl_client (with rbl_reply_maps and a reply filter),
    reject_rhsbl_sender, reject_rhsbl_helo, reject_unknown_sender_domain,
    reject_unknown_recipient_domain; DNS failures and timeouts give 4xx."""

    # filtered.test's template gives the default reply by way of $(name),
    # nested braces and a conditional on a name smtpd does not know
    tables = {"replies": "bl.test $rbl_code 5.7.1 Listed by $rbl_domain: $rbl_reason (client $client_address)\n"
                         "filtered.test $rbl_code Service unavailable; $(rbl_class) [$rbl_what] blocked using "
                         "${rbl_domain}${rbl_reason?; {${rbl_reason}}}${no_such_name?x}\n"}
    params = {
        "smtpd_client_restrictions": "reject_rbl_client bl.test, reject_rbl_client filtered.test=127.0.0.[10..20]",
        "smtpd_helo_restrictions": "reject_rhsbl_helo rhs.test",
        "smtpd_sender_restrictions": "reject_rhsbl_sender rhs.test, reject_unknown_sender_domain",
        "smtpd_recipient_restrictions": "reject_unknown_recipient_domain",
        "smtpd_relay_restrictions": "permit_mynetworks, permit_auth_destination, reject",
        "relay_domains": "",
        "rbl_reply_maps": "texthash:TABLES/replies",
    }
    zone = {
        "2.0.0.127.bl.test": {"A": ["127.0.0.2"], "TXT": ["spam source"]},
        "3.0.0.127.filtered.test": {"A": ["127.0.0.5"]},
        "4.0.0.127.filtered.test": {"A": ["127.0.0.12"]},
        "spammer.test.rhs.test": {"A": ["127.0.0.2"], "TXT": ["bad domain"]},
        "badhelo.test.rhs.test": {"A": ["127.0.0.2"]},
        "example.org": {"MX": [(10, "mx.example.org")]},
        "spammer.test": {"MX": [(10, "mx.example.org")]},
        "aonly.test": {"A": ["192.0.2.1"]},
        "nullmx.test": {"MX": [(0, ".")]},
        "remote.test": {"MX": [(10, "mx.example.org")]},
    }
    servfail = {"8.0.0.127.bl.test", "fail.test"}
    silent = {"9.0.0.127.bl.test"}

    def test_rbl_client(self):
        self.assert_reply(self.rcpt("u@tern.test"), 554,
                          "5.7.1 Listed by bl.test: spam source (client 127.0.0.2)")
        self.wait_log(self.noqueue("reject", "RCPT", "unknown[127.0.0.2]",
                                   "554 5.7.1 Listed by bl.test: spam source (client 127.0.0.2)",
                                   "sender@example.org", "u@tern.test"))
        # filtered.test answers 127.0.0.5 for .3: outside the filter
        self.assertEqual(self.rcpt("u@tern.test", source="127.0.0.3"), (250, "2.1.5 Ok"))
        self.assert_reply(self.rcpt("u@tern.test", source="127.0.0.4"), 554,
                          "5.7.1 Service unavailable; Client host [127.0.0.4] blocked using filtered.test")

    def test_rbl_dns_failure_defers(self):
        for source in ("127.0.0.8", "127.0.0.9"):
            with self.subTest(source=source):
                t0 = time.time()
                code, text = self.rcpt("u@tern.test", source=source)
                self.assertLess(time.time() - t0, 12)
                self.assertEqual(code, 451, text)
                self.assertIn("4.3.0 <%s>: Client host rejected: Temporary lookup failure" % source, text)

    def test_rhsbl(self):
        self.assert_reply(self.rcpt("u@tern.test", sender="x@spammer.test", source="127.0.0.3"), 554,
                          "5.7.1 Service unavailable; Sender address [spammer.test] blocked using rhs.test; bad domain")
        self.assert_reply(self.rcpt("u@tern.test", helo="badhelo.test", source="127.0.0.3"), 554,
                          "5.7.1 Service unavailable; Helo command [badhelo.test] blocked using rhs.test")

    def test_unknown_sender_domain(self):
        for sender, code, text in (
                ("x@nx.test", 450, "4.1.8 <x@nx.test>: Sender address rejected: Domain not found"),
                ("x@fail.test", 450, "4.1.8 <x@fail.test>: Sender address rejected: Domain not found"),
                ("x@nullmx.test", 550, "5.7.27 <x@nullmx.test>: Sender address rejected: Domain nullmx.test does not accept mail (nullMX)"),
                ("x@aonly.test", 250, "2.1.5 Ok"), ("", 250, "2.1.5 Ok")):
            with self.subTest(sender=sender):
                self.assert_reply(self.rcpt("u@tern.test", sender=sender, source="127.0.0.3"), code, text)

    def test_unknown_recipient_domain(self):
        c = self.client(source="127.0.0.1")
        c.cmd("MAIL FROM:<sender@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<u@nx.test>"),
                         (450, "4.1.2 <u@nx.test>: Recipient address rejected: Domain not found"))
        self.assertEqual(c.cmd("RCPT TO:<u@remote.test>"), (250, "2.1.5 Ok"))


# ---- policy servers ----

class PolicyServer(servers.Server):
    """A policy server of the test on a UNIX socket or TCP port: answers
    by recipient; 'slow' recipients get no answer; keeps every request."""

    def __init__(self, family, path=None):
        self.requests = []
        super().__init__(path=path if family == socket.AF_UNIX else None, backlog=16)
        self.address = path if family == socket.AF_UNIX else "127.0.0.1:%d" % self.port

    @property
    def connections(self):
        """How many connections it has accepted."""
        return len(self.conns)

    def handle(self, conn):
        conn.settimeout(30)
        buf = b""
        try:
            while not self.stopping.is_set():
                while b"\n\n" not in buf:
                    chunk = self.recv(conn, 4096)
                    if not chunk:
                        return
                    buf += chunk
                raw, buf = buf.split(b"\n\n", 1)
                req = dict(line.split("=", 1) for line in raw.decode().split("\n"))
                self.requests.append(req)
                rcpt = req.get("recipient", "")
                if rcpt.startswith("slow"):
                    self.stopping.wait(5)
                    return
                if rcpt.startswith("reject"):
                    action = "REJECT policy says no"
                elif rcpt.startswith("defer"):
                    action = "DEFER_IF_PERMIT come back later"
                elif rcpt.startswith("junk"):
                    conn.sendall(b"this is not a policy reply\n\n")
                    continue
                else:
                    action = "DUNNO"
                conn.sendall(("action=%s\n\n" % action).encode())
        except OSError:
            pass
        finally:
            conn.close()


class TestPolicyService(PolicyTest):
    """check_policy_service over UNIX and TCP: the request attributes, the
    actions, connection reuse, and a server that does not answer (or
    answers nonsense) giving 451 4.3.5."""

    params = {
        "smtpd_recipient_restrictions": "check_policy_service unix:TABLES/policy.sock, "
                                        "check_policy_service inet:TCPADDR",
        "smtpd_policy_service_timeout": "2s",
        "smtpd_policy_service_retry_delay": "1s",
    }

    @classmethod
    def start_servers(cls):
        cls.unix = PolicyServer(socket.AF_UNIX, os.path.join(cls.tmp, "policy.sock"))
        cls.tcp = PolicyServer(socket.AF_INET)

    @classmethod
    def expand(cls, v):
        return v.replace("TABLES", cls.tmp).replace("TCPADDR", cls.tcp.address)

    @classmethod
    def stop_servers(cls):
        cls.unix.stop()
        cls.tcp.stop()

    def test_request_and_dunno(self):
        n = len(self.unix.requests)
        c = self.client(helo="client.example")
        c.cmd("MAIL FROM:<sender@example.org> SIZE=1234")
        self.assertEqual(c.cmd("RCPT TO:<u1@tern.test>"), (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<u2@tern.test>"), (250, "2.1.5 Ok"))
        req = self.unix.requests[n]
        for k, v in (("request", "smtpd_access_policy"), ("protocol_state", "RCPT"),
                     ("protocol_name", "ESMTP"), ("helo_name", "client.example"),
                     ("sender", "sender@example.org"), ("recipient", "u1@tern.test"),
                     ("recipient_count", "0"), ("client_address", "127.0.0.2"),
                     ("client_name", "unknown"), ("reverse_client_name", "unknown"),
                     ("size", "1234"), ("server_address", "127.0.0.1"),
                     ("server_port", str(self.inst.port))):
            self.assertEqual(req.get(k), v, k)
        self.assertEqual(self.unix.requests[n + 1]["recipient_count"], "1")
        self.assertEqual(self.unix.requests[n + 1]["instance"], req["instance"])
        self.assertTrue(any(r.get("recipient") == "u2@tern.test" for r in self.tcp.requests))

    def test_reject_and_defer(self):
        self.assert_reply(self.rcpt("reject@tern.test"), 554,
                          "5.7.1 <reject@tern.test>: Recipient address rejected: policy says no")
        self.assert_reply(self.rcpt("defer@tern.test"), 450,
                          "4.7.1 <defer@tern.test>: Recipient address rejected: come back later")
        self.wait_log(self.noqueue("reject", "RCPT", "unknown[127.0.0.2]",
                                   "554 5.7.1 <reject@tern.test>: Recipient address rejected: policy says no",
                                   "sender@example.org", "reject@tern.test"))

    def test_connection_reuse(self):
        before = self.unix.connections
        for i in range(3):
            self.assertEqual(self.rcpt("again%d@tern.test" % i), (250, "2.1.5 Ok"))
        self.assertLessEqual(self.unix.connections - before, 1)

    def test_failures_give_451(self):
        for rcpt in ("slow@tern.test", "junk@tern.test"):
            with self.subTest(rcpt=rcpt):
                t0 = time.time()
                self.assert_reply(self.rcpt(rcpt), 451,
                                  "4.3.5 <%s>: Recipient address rejected: Server configuration problem" % rcpt)
                self.assertLess(time.time() - t0, 15)
        self.wait_log(r"problem talking to server .*policy\.sock: (timeout|malformed reply)")


@unittest.skipUnless(shutil.which("postgrey") or os.path.exists("/usr/sbin/postgrey"),
                     "postgrey is not installed (tools/install-deps installs it)")
class TestPostgrey(PolicyTest):
    """Debian's postgrey as check_policy_service: the first try is
    greylisted with 450, a retry after --delay passes and gets its
    X-Greylist header."""

    @classmethod
    def start_servers(cls):
        cls.pg_port = harness.free_port()
        db = os.path.join(cls.tmp, "postgrey-db")
        os.makedirs(db)
        pw = pwd.getpwnam("postgrey")
        os.chown(db, pw.pw_uid, pw.pw_gid)
        cls.pg_log = open(os.path.join(cls.tmp, "postgrey.log"), "w")
        cls.pg = subprocess.Popen(
            ["/usr/sbin/postgrey", "--inet=127.0.0.1:%d" % cls.pg_port, "--dbdir=" + db,
             "--delay=1", "--user=postgrey", "--group=postgrey",
             "--pidfile=" + os.path.join(cls.tmp, "postgrey.pid")],
            stdout=cls.pg_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            harness.wait_port(cls.pg_port, timeout=20)
        except AssertionError:
            cls.pg.kill()
            cls.pg.wait(5)
            raise unittest.SkipTest("postgrey did not start")

    @classmethod
    def expand(cls, v):
        return v.replace("PGPORT", str(cls.pg_port))

    params = {"smtpd_recipient_restrictions": "check_policy_service inet:127.0.0.1:PGPORT"}

    @classmethod
    def stop_servers(cls):
        cls.pg.terminate()
        try:
            cls.pg.wait(10)
        except subprocess.TimeoutExpired:
            cls.pg.kill()
            cls.pg.wait(5)
        cls.pg_log.close()

    def test_greylisting(self):
        code, text = self.rcpt("grey@tern.test", sender="friend@example.org")
        self.assertEqual(code, 450, text)
        self.assertIn("<grey@tern.test>: Recipient address rejected: Greylisted", text)
        time.sleep(2.5)
        c = self.client()
        c.cmd("MAIL FROM:<friend@example.org>")
        self.assertEqual(c.cmd("RCPT TO:<grey@tern.test>"), (250, "2.1.5 Ok"))
        code, text = self.send_message(c)
        self.assertEqual(code, 250, text)
        qid = text.split()[-1]
        path = os.path.join(self.inst.queue_dir, "active", qid)
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.05)
        self.assertIn(b"X-Greylist: delayed", harness.read_queue_file(path)["content"])


SPF_WRAPPER = """
import sys
import dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = ["127.0.0.1"]
r.port = int(sys.argv[1])
dns.resolver.default_resolver = r
sys.argv = [sys.argv[2], sys.argv[3]]
sys.path.insert(0, sys.argv[0])
with open(sys.argv[0]) as f:
    code = f.read()
exec(compile(code, sys.argv[0], "exec"), {"__name__": "__main__"})
"""

SPF_CONF = """debugLevel = 1
TestOnly = 1
HELO_reject = Fail
Mail_From_reject = Fail
PermError_reject = False
TempError_Defer = False
skip_addresses = 192.0.2.0/24
"""


@unittest.skipUnless(os.path.exists(POLICYD_SPF),
                     "postfix-policyd-spf-python is not installed (tools/install-deps)")
class TestPolicydSpf(PolicyTest):
    """Debian's postfix-policyd-spf-python as check_policy_service
    unix:private/policyd-spf, run per connection by the spawn daemon from
    master.cf as Postfix's spawn(8) runs it (user=nobody), with its own
    configuration file as its argument and its DNS answered by the test
    (through a wrapper that points dnspython at the test's server)."""

    zone = {"spf-fail.test": {"TXT": ["v=spf1 -all"]},
            "spf-pass.test": {"TXT": ["v=spf1 ip4:127.0.0.0/8 -all"]},
            "spf-soft.test": {"TXT": ["v=spf1 ~all"]}}
    params = {"smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination, "
                                              "check_policy_service unix:private/policyd-spf",
              "smtpd_policy_service_timeout": "20s"}

    @classmethod
    def start_servers(cls):
        cls.wrapper = os.path.join(cls.tmp, "spf-wrapper.py")
        with open(cls.wrapper, "w") as f:
            f.write(SPF_WRAPPER)
        cls.conf = os.path.join(cls.tmp, "policyd-spf.conf")
        with open(cls.conf, "w") as f:
            f.write(SPF_CONF)

    @classmethod
    def extra_services(cls):
        return ["policyd-spf unix - n n - 0 spawn",
                "  -o policyd-spf_time_limit=3600",
                "  user=nobody argv=/usr/bin/python3 %s %d %s %s"
                % (cls.wrapper, cls.dns.port, POLICYD_SPF, cls.conf)]

    def queued_content(self, text):
        qid = text.split()[-1]
        path = os.path.join(self.inst.queue_dir, "active", qid)
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.05)
        return harness.read_queue_file(path)["content"]

    def test_spf_fail_rejected(self):
        code, text = self.rcpt("u@tern.test", sender="forger@spf-fail.test")
        self.assertEqual(code, 550, text)
        self.assertIn("5.7.23 <u@tern.test>: Recipient address rejected: Message rejected due to: "
                      "SPF fail - not authorized", text)
        self.wait_log(r"NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.2\]: 550 5\.7\.23 "
                      r"<u@tern\.test>: Recipient address rejected: Message rejected due to: "
                      r"SPF fail - not authorized")

    def test_spf_pass_accepted_with_header(self):
        c = self.client()
        c.cmd("MAIL FROM:<friend@spf-pass.test>")
        self.assertEqual(c.cmd("RCPT TO:<u@tern.test>"), (250, "2.1.5 Ok"))
        code, text = self.send_message(c)
        self.assertEqual(code, 250, text)
        content = self.queued_content(text)
        self.assertRegex(content, rb"(?m)^Received-SPF: Pass \(mailfrom\) identity=mailfrom; "
                                  rb"client-ip=127\.0\.0\.2;.* envelope-from=<?friend@spf-pass\.test>?")

    def test_spf_softfail_accepted_with_header(self):
        c = self.client()
        c.cmd("MAIL FROM:<someone@spf-soft.test>")
        self.assertEqual(c.cmd("RCPT TO:<u@tern.test>"), (250, "2.1.5 Ok"))
        code, text = self.send_message(c)
        self.assertEqual(code, 250, text)
        content = self.queued_content(text)
        self.assertRegex(content, rb"(?m)^Received-SPF: Softfail \(mailfrom\) identity=mailfrom; "
                                  rb"client-ip=127\.0\.0\.2;")

    def test_runs_as_nobody_through_spawn(self):
        self.rcpt("u@tern.test", sender="friend@spf-pass.test")
        nobody = pwd.getpwnam("nobody").pw_uid
        spawns = [p for p in self.inst.processes() if p[2] == "spawn"]
        self.assertTrue(spawns, self.inst.processes())
        self.assertTrue(all(p[1] == 0 for p in spawns))     # unpriv n: root, to switch users
        # the policy server runs as nobody, a child of a spawn process
        found = False
        for pid, _ in harness.descendants(self.inst.master_pid()):
            cmd = harness.proc_cmdline(pid)
            if cmd[:1] == ["/usr/bin/python3"] and POLICYD_SPF in cmd:
                self.assertEqual(harness.proc_uid(pid), nobody)
                found = True
        self.assertTrue(found)


if __name__ == "__main__":
    unittest.main()
