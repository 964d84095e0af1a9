"""test_smtpd_protocol.py: whole-instance tests of smtpd's SMTP protocol.

Each TestCase class starts its own instance (master, smtpd, cleanup, qmgr)
with the main.cf settings its area needs, then talks to smtpd with raw
sockets, Python's smtplib and swaks, and checks the replies, the log lines
and the queue files (content byte for byte).
"""
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

QUEUE_SUBDIRS = ("incoming", "active", "deferred", "hold", "corrupt")
HOSTNAME = "tern.test"     # what the harness gives `tern init --hostname`


def start_instance(params):
    # Local mail goes to a transport that never answers, so every message
    # these tests queue stays in the queue to be inspected.
    settings = {"local_transport": "stall"}
    settings.update(params)
    inst = harness.Instance(name="smtpd", main_cf=settings)
    inst.stall_transport("stall")
    inst.start()
    return inst


class Client(harness.RawSession):
    """A raw SMTP client: exact bytes out, replies parsed as they come, each
    reply line kept as its text after the code ("PIPELINING")."""

    def __init__(self, port, greet=True, timeout=10):
        super().__init__(port, greet=False, timeout=timeout)
        self.greeting = self.reply() if greet else None

    def reply(self):
        """One whole reply: (code, [text lines])."""
        code, lines = self.read_reply()
        return code, [line[4:] for line in lines]

    def replies(self, n):
        return [self.reply() for _ in range(n)]

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()


def code_of(reply):
    return reply[0]


def text_of(reply):
    return reply[1][-1]


HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
ADDED_HEADERS = re.compile(rb"^(Received|Message-ID|Date|From|Return-Path|Resent-[A-Za-z-]+):", re.I)


def split_message(content):
    """Header lines (a list) and the body (bytes) of LF-terminated content."""
    head, sep, body = content.partition(b"\n\n")
    if not sep:
        if content.endswith(b"\n"):
            head = content[:-1]
        body = b""
    return (head.split(b"\n") if head else []), body


def without_added_headers(lines):
    """Header lines less the fields (with their continuation lines) that
    cleanup adds on its own."""
    kept, skipping = [], False
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                kept.append(line)
            continue
        skipping = bool(ADDED_HEADERS.match(line))
        if not skipping:
            kept.append(line)
    return kept


class SmtpdTestCase(unittest.TestCase):
    """Starts one instance per class with the class's main.cf settings."""

    params = {}

    @classmethod
    def setUpClass(cls):
        cls.inst = start_instance(cls.params)

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def client(self, **kw):
        c = Client(self.inst.port, **kw)
        self.addCleanup(c.close)
        return c

    def ehlo_client(self):
        c = self.client()
        self.assertEqual(code_of(c.cmd("EHLO client.example")), 250)
        return c

    def queue_ids(self):
        ids = set()
        for sub in QUEUE_SUBDIRS:
            for path in self.inst.queue_files(sub):
                ids.add(os.path.basename(path))
        return ids

    def queued(self, qid, timeout=10):
        """The parsed queue file of qid, wherever qmgr has put it."""
        return self.inst.queued(qid, QUEUE_SUBDIRS, timeout)

    def queue_id_of(self, reply):
        self.assertEqual(code_of(reply), 250, reply)
        return harness.queue_id_of(text_of(reply))

    def transaction(self, c, sender="<sender@example.org>", rcpts=("<postmaster@%s>" % HOSTNAME,)):
        self.assertEqual(c.cmd("MAIL FROM:" + sender), (250, ["2.1.0 Ok"]))
        for r in rcpts:
            self.assertEqual(c.cmd("RCPT TO:" + r), (250, ["2.1.5 Ok"]))

    def send_data(self, c, raw_content):
        """DATA with exact bytes (raw_content must include the end marker)."""
        self.assertEqual(code_of(c.cmd("DATA")), 354)
        c.send(raw_content)
        return c.reply()

    def assert_content(self, qid, expected):
        """The queued content is exactly what we sent, except for header
        fields cleanup adds (Received:, Message-ID:, Date: ...) and the empty
        line it puts between them and a message that had no header."""
        content = self.queued(qid)["content"]
        got_head, got_body = split_message(content)
        if HEADER_LINE.match(expected):
            want_head, want_body = split_message(expected)
        else:
            want_head, want_body = [], expected
        self.assertEqual(got_body, want_body, content)
        self.assertEqual(without_added_headers(got_head), want_head, content)

    def wait_log(self, regex, timeout=10):
        return self.inst.wait_log(regex, timeout=timeout)

    def assert_no_new_message(self, before, wait=0.5):
        time.sleep(wait)
        self.assertEqual(self.queue_ids() - before, set())


class TestGreetingAndCommands(SmtpdTestCase):
    """Greeting, EHLO/HELO and the simple commands."""

    def test_greeting_is_banner(self):
        c = self.client()
        self.assertEqual(c.greeting, (220, ["%s ESMTP Tern" % HOSTNAME]))

    def test_ehlo_keywords(self):
        c = self.client()
        code, lines = c.cmd("EHLO client.example")
        self.assertEqual(code, 250)
        self.assertEqual(lines[0], HOSTNAME)
        self.assertEqual(lines[1:], ["PIPELINING", "SIZE 10240000", "VRFY", "ETRN", "ENHANCEDSTATUSCODES",
                                     "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"])

    def test_helo(self):
        c = self.client()
        self.assertEqual(c.cmd("HELO client.example"), (250, [HOSTNAME]))
        self.assertEqual(code_of(c.cmd("HELO")), 501)
        self.assertEqual(code_of(c.cmd("EHLO")), 501)
        self.assertEqual(c.cmd("EHLO two words"), (501, ["5.5.4 Syntax: EHLO hostname"]))

    def test_helo_during_transaction(self):
        c = self.ehlo_client()
        self.transaction(c)
        self.assertEqual(c.cmd("EHLO again.example"), (503, ["5.5.1 Error: MAIL transaction in progress"]))
        self.assertEqual(c.cmd("RSET"), (250, ["2.0.0 Ok"]))
        self.assertEqual(code_of(c.cmd("EHLO again.example")), 250)

    def test_simple_commands(self):
        c = self.ehlo_client()
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
        self.assertEqual(c.cmd("NOOP anything"), (250, ["2.0.0 Ok"]))
        self.assertEqual(c.cmd("RSET"), (250, ["2.0.0 Ok"]))
        self.assertEqual(c.cmd("RSET now"), (501, ["5.5.4 Syntax: RSET"]))
        self.assertEqual(c.cmd("VRFY postmaster"), (252, ["2.0.0 postmaster"]))
        self.assertEqual(c.cmd("VRFY"), (501, ["5.5.4 Syntax: VRFY address"]))
        code, lines = c.cmd("HELP")
        self.assertEqual(code, 214)
        self.assertTrue(lines[0].startswith("2.0.0"))
        self.assertEqual(c.cmd("TURN"), (502, ["5.5.1 Error: command not implemented"]))
        # fast_flush_domains is $relay_domains, empty here (test_etrn.py has the rest)
        self.assertEqual(c.cmd("ETRN example.com"), (459, ["4.3.0 <example.com>: service unavailable"]))
        self.assertEqual(c.cmd("XYZZY"), (500, ["5.5.2 Error: command not recognized"]))
        self.assertEqual(c.cmd("MAILFROM:<a@b.example>"), (500, ["5.5.2 Error: command not recognized"]))
        self.assertEqual(c.cmd(""), (500, ["5.5.2 Error: bad syntax"]))
        self.assertEqual(c.cmd("QUIT"), (221, ["2.0.0 Bye"]))
        self.assertTrue(c.closed())

    def test_nul_and_bad_utf8_in_command(self):
        c = self.ehlo_client()
        c.send(b"NO\0OP\r\n")
        self.assertEqual(code_of(c.reply()), 500)
        c.send(b"VRFY \xff\xfe\r\n")
        self.assertEqual(c.reply(), (500, ["5.5.2 Error: bad UTF-8 syntax"]))
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))

    def test_line_too_long(self):
        c = self.ehlo_client()
        c.send("NOOP " + "x" * 5000 + "\r\n")
        self.assertEqual(c.reply(), (500, ["5.5.2 Error: line too long"]))
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
        # an over-long line in pieces: the rest up to its end is discarded
        c.send("MAIL FROM:<" + "y" * 3000)
        time.sleep(0.2)
        c.send("z" * 3000 + ">\r\nNOOP\r\n")
        self.assertEqual(c.reply(), (500, ["5.5.2 Error: line too long"]))
        self.assertEqual(c.reply(), (250, ["2.0.0 Ok"]))

    def test_disconnect_statistics_logged(self):
        c = self.client()
        c.cmd("EHLO stats.example")
        c.cmd("NOOP")
        c.cmd("BOGUS")
        c.cmd("QUIT")
        self.wait_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=1 noop=1 quit=1 unknown=0/1 commands=3/4")

    def test_many_sessions_in_one_process(self):
        clients = [self.client() for _ in range(20)]
        for i, c in enumerate(clients):
            self.assertEqual(code_of(c.cmd("EHLO c%d.example" % i)), 250)
        smtpds = [p for p in self.inst.processes() if p[2] == "smtpd"]
        self.assertEqual(len(smtpds), 1, smtpds)
        for c in clients:
            self.assertEqual(c.cmd("QUIT"), (221, ["2.0.0 Bye"]))

    def test_smtplib_and_swaks(self):
        s = smtplib.SMTP("127.0.0.1", self.inst.port, timeout=10)
        try:
            code, msg = s.ehlo("client.example")
            self.assertEqual(code, 250)
            for ext in ("pipelining", "size", "8bitmime", "dsn", "smtputf8", "chunking", "enhancedstatuscodes"):
                self.assertTrue(s.has_extn(ext), ext)
            refused = s.sendmail("a@example.org", ["postmaster@" + HOSTNAME], b"Subject: t\r\n\r\nhello\r\n")
            self.assertEqual(refused, {})
        finally:
            s.quit()
        if shutil.which("swaks"):
            out = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.inst.port, "--from", "a@example.org",
                                  "--to", "postmaster@" + HOSTNAME, "--helo", "swaks.example"],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertRegex(out.stdout, r"<-  250 2\.0\.0 Ok: queued as [0-9A-Z]+")


class TestVerify(SmtpdTestCase):
    """VRFY and EXPN answer what RCPT would: the recipient tables judge the
    address after rewriting (local users, a virtual alias domain, relay
    recipients); the restriction lists are not asked."""

    params = {"mydestination": "tern.test, localhost",
              "local_recipient_maps": "inline:{ alice=x, bob=x }",
              "virtual_alias_domains": "virt.example",
              "virtual_alias_maps": "inline:{ info@virt.example=alice@tern.test }",
              "relay_domains": "relay.example",
              "relay_recipient_maps": "inline:{ known@relay.example=x }"}

    def test_known_addresses(self):
        c = self.ehlo_client()
        for arg, shown in (("alice@tern.test", "alice@tern.test"), ("<bob@tern.test>", "bob@tern.test"),
                           ("alice", "alice"), ("info@virt.example", "info@virt.example"),
                           ("known@relay.example", "known@relay.example"),
                           ("someone@elsewhere.example", "someone@elsewhere.example")):
            for verb in ("VRFY", "EXPN"):
                with self.subTest(verb=verb, arg=arg):
                    self.assertEqual(c.cmd("%s %s" % (verb, arg)), (252, ["2.0.0 " + shown]))

    def test_unknown_addresses(self):
        c = self.ehlo_client()
        for arg, table in (("nobody@tern.test", "local recipient"),
                           ("other@virt.example", "virtual alias"),
                           ("unknown@relay.example", "relay recipient")):
            for verb in ("VRFY", "EXPN"):
                with self.subTest(verb=verb, arg=arg):
                    self.assertEqual(c.cmd("%s <%s>" % (verb, arg)),
                                     (550, ["5.1.1 <%s>: Recipient address rejected: User unknown "
                                            "in %s table" % (arg, table)]))
        self.inst.wait_log(r"NOQUEUE: reject: VRFY from \S+: 550 5\.1\.1 <nobody@tern\.test>: "
                           r"Recipient address rejected: User unknown in local recipient table; "
                           r"to=<nobody@tern\.test> proto=ESMTP helo=<client\.example>")
        # the session goes on
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))

    def test_bad_arguments(self):
        c = self.ehlo_client()
        for arg in ("", "<>", "<a@b", "a<b@c", "x" * 1100 + "@tern.test"):
            with self.subTest(arg=arg[:20]):
                self.assertEqual(c.cmd(("VRFY " + arg).rstrip()), (501, ["5.5.4 Syntax: VRFY address"]))


class TestVerifyUnlistedOff(SmtpdTestCase):
    """With smtpd_reject_unlisted_recipient = no, RCPT takes unknown local
    users, and VRFY says so too."""

    params = {"mydestination": "tern.test", "local_recipient_maps": "inline:{ alice=x }",
              "smtpd_reject_unlisted_recipient": "no"}

    def test_unknown_is_not_refused(self):
        c = self.ehlo_client()
        self.assertEqual(c.cmd("VRFY nobody@tern.test"), (252, ["2.0.0 nobody@tern.test"]))


class TestOptionalPolicies(SmtpdTestCase):
    """disable_vrfy_command, smtpd_helo_required, smtputf8_enable=no."""

    params = {"disable_vrfy_command": "yes", "smtpd_helo_required": "yes", "smtputf8_enable": "no"}

    def test_vrfy_disabled(self):
        c = self.client()
        code, lines = c.cmd("EHLO client.example")
        self.assertNotIn("VRFY", lines)
        self.assertNotIn("SMTPUTF8", lines)
        self.assertEqual(c.cmd("VRFY postmaster"), (502, ["5.5.1 VRFY command is disabled"]))
        self.assertEqual(c.cmd("EXPN postmaster"), (502, ["5.5.1 EXPN command is disabled"]))

    def test_helo_required(self):
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>"), (503, ["5.5.1 Error: send HELO/EHLO first"]))
        c.cmd("HELO client.example")
        self.assertEqual(code_of(c.cmd("MAIL FROM:<a@example.org>")), 250)

    def test_smtputf8_disabled(self):
        c = self.ehlo_client()
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org> SMTPUTF8"), (555, ["5.5.4 Unsupported option: SMTPUTF8"]))
        self.assertEqual(code_of(c.cmd("MAIL FROM:<j\u00f6rg@example.org>")), 553)


class TestMailRcpt(SmtpdTestCase):
    """MAIL FROM and RCPT TO with their parameters, order and limits."""

    params = {"smtpd_recipient_limit": "3"}

    def test_order(self):
        c = self.ehlo_client()
        self.assertEqual(c.cmd("RCPT TO:<postmaster>"), (503, ["5.5.1 Error: need MAIL command"]))
        self.assertEqual(c.cmd("DATA"), (503, ["5.5.1 Error: need MAIL command"]))
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>"), (250, ["2.1.0 Ok"]))
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>"), (503, ["5.5.1 Error: nested MAIL command"]))
        self.assertEqual(c.cmd("DATA"), (503, ["5.5.1 Error: need RCPT command"]))
        self.assertEqual(c.cmd("RSET"), (250, ["2.0.0 Ok"]))
        self.assertEqual(c.cmd("RCPT TO:<postmaster>"), (503, ["5.5.1 Error: need MAIL command"]))

    def test_null_sender_and_postmaster(self):
        c = self.ehlo_client()
        self.assertEqual(c.cmd("MAIL FROM:<>"), (250, ["2.1.0 Ok"]))
        self.assertEqual(c.cmd("RCPT TO:<postmaster>"), (250, ["2.1.5 Ok"]))
        self.assertEqual(c.cmd("RCPT TO:<Postmaster@%s.>" % HOSTNAME.upper()), (250, ["2.1.5 Ok"]))

    def test_mail_syntax_errors(self):
        c = self.ehlo_client()
        cases = [
            ("MAIL", 501, "5.5.4 Syntax: MAIL FROM:<address>"),
            ("MAIL TO:<a@example.org>", 501, "5.5.4 Syntax: MAIL FROM:<address>"),
            ("MAIL FROM:<a@example.org", 501, "5.1.7 Bad sender address syntax"),
            ("MAIL FROM:<<a@example.org>", 501, "5.1.7 Bad sender address syntax"),
            ("MAIL FROM:<a b@example.org>", 501, "5.1.7 Bad sender address syntax"),
            ("MAIL FROM:<a@example..org>", 501, "5.1.7 Bad sender address syntax"),
            ("MAIL FROM:<a@example.org> SIZE=x", 501, "5.5.4 Bad message size syntax"),
            ("MAIL FROM:<a@example.org> SIZE=1 SIZE=1", 501, "5.5.4 Error: duplicate SIZE parameter"),
            ("MAIL FROM:<a@example.org> BODY=9BIT", 501, "5.5.4 Bad BODY keyword syntax"),
            ("MAIL FROM:<a@example.org> RET=NONE", 501, "5.5.4 Bad RET parameter syntax"),
            ("MAIL FROM:<a@example.org> ENVID=bad+xtext", 501, "5.5.4 Bad ENVID parameter syntax"),
            ("MAIL FROM:<a@example.org> FOO=BAR", 555, "5.5.4 Unsupported option: FOO"),
            ("MAIL FROM:<a@example.org> SIZE=10240001", 552, "5.3.4 Message size exceeds fixed limit"),
            ("MAIL FROM:<j\u00f6rg@example.org>", 553, "5.6.7 Must declare SMTPUTF8 to send unicode address"),
        ]
        for line, code, text in cases:
            with self.subTest(line=line):
                self.assertEqual(c.cmd(line), (code, [text]))
        self.assertEqual(code_of(c.cmd("MAIL FROM:<a@example.org> SIZE=10240000")), 250)

    def test_rcpt_syntax_errors(self):
        c = self.ehlo_client()
        c.cmd("MAIL FROM:<a@example.org>")
        cases = [
            ("RCPT", 501, "5.5.4 Syntax: RCPT TO:<address>"),
            ("RCPT TO:<>", 501, "5.1.3 Bad recipient address syntax"),
            ("RCPT TO:<postmaster@%s" % HOSTNAME, 501, "5.1.3 Bad recipient address syntax"),
            ("RCPT TO:<postmaster@%s> NOTIFY=NEVER,DELAY" % HOSTNAME, 501,
             "5.5.4 Error: Bad NOTIFY parameter syntax"),
            ("RCPT TO:<postmaster@%s> ORCPT=rfc822" % HOSTNAME, 501, "5.5.4 Error: Bad ORCPT parameter syntax"),
            ("RCPT TO:<postmaster@%s> SIZE=1" % HOSTNAME, 555, "5.5.4 Unsupported option: SIZE"),
            ("RCPT TO:<j\u00f6rg@%s>" % HOSTNAME, 553, "5.6.7 Must declare SMTPUTF8 to send unicode address"),
        ]
        for line, code, text in cases:
            with self.subTest(line=line):
                self.assertEqual(c.cmd(line), (code, [text]))

    def test_recipient_limit(self):
        c = self.ehlo_client()
        c.cmd("MAIL FROM:<a@example.org>")
        for i in range(3):
            self.assertEqual(code_of(c.cmd("RCPT TO:<postmaster@%s>" % HOSTNAME)), 250)
        self.assertEqual(c.cmd("RCPT TO:<postmaster@%s>" % HOSTNAME), (452, ["4.5.3 Error: too many recipients"]))

    def test_esmtp_parameters_reach_the_queue_file(self):
        c = self.ehlo_client()
        self.assertEqual(c.cmd("MAIL FROM:<s\u00e9nder@example.org> SIZE=100 BODY=8BITMIME RET=HDRS "
                               "ENVID=env+2Bid SMTPUTF8 AUTH=<>"), (250, ["2.1.0 Ok"]))
        self.assertEqual(c.cmd("RCPT TO:<postmaster@%s> NOTIFY=SUCCESS,FAILURE "
                               "ORCPT=rfc822;orig+2Bx@example.org" % HOSTNAME), (250, ["2.1.5 Ok"]))
        self.assertEqual(c.cmd("RCPT TO:<postmaster> NOTIFY=NEVER"), (250, ["2.1.5 Ok"]))
        qid = self.queue_id_of(self.send_data(c, b"Subject: p\r\n\r\n\xc3\xa9\r\n.\r\n"))
        msg = self.queued(qid)
        self.assertEqual(msg["sender"], "s\u00e9nder@example.org")
        attrs = msg["attrs"]
        self.assertEqual(attrs.get("envid"), "env+id")
        self.assertEqual(attrs.get("ret"), "HDRS")
        self.assertEqual(attrs.get("body"), "8BITMIME")
        self.assertEqual(attrs.get("smtputf8"), "yes")
        self.assertEqual(attrs.get("size"), "100")
        self.assertEqual(attrs.get("protocol"), "ESMTP")
        self.assertEqual(attrs.get("helo_name"), "client.example")
        self.assertEqual(attrs.get("client_addr"), "127.0.0.1")
        rcpts = [r[:3] for r in msg["recipients"]]
        self.assertIn(("postmaster@%s" % HOSTNAME, "rfc822;orig+x@example.org", "SUCCESS,FAILURE"), rcpts)
        # cleanup may complete the unqualified address
        self.assertTrue(any(r[0].startswith("postmaster") and r[1:] == ("", "NEVER") for r in rcpts), rcpts)

    def test_helo_protocol_attribute(self):
        c = self.client()
        c.cmd("HELO old.example")
        self.transaction(c)
        qid = self.queue_id_of(self.send_data(c, b"\r\n.\r\n"))
        self.assertEqual(self.queued(qid)["attrs"].get("protocol"), "SMTP")


class TestData(SmtpdTestCase):
    """DATA content: stuffing, line ends, 8-bit, size limit, the final reply."""

    params = {"message_size_limit": "2000"}

    def test_content_byte_for_byte(self):
        c = self.ehlo_client()
        self.transaction(c)
        raw = (b"Subject: dots\r\n\r\n..leading dot\r\n...two\r\n.\tdot tab\r\n"
               b"8bit \xc3\xa9\xe2\x82\xac \xff\r\nlast\r\n\r\n.\r\n")
        reply = self.send_data(c, raw)
        qid = self.queue_id_of(reply)
        self.assert_content(qid, b"Subject: dots\n\n.leading dot\n..two\n\tdot tab\n"
                         b"8bit \xc3\xa9\xe2\x82\xac \xff\nlast\n\n")
        self.wait_log(r"%s: client=localhost\[127\.0\.0\.1\]" % qid)

    def test_bare_cr_refused(self):
        """smtpd_forbid_bare_cr = normal (default): the message is refused."""
        c = self.ehlo_client()
        self.transaction(c)
        reply = self.send_data(c, b"bare CR\rinside\r\n.\r\n")
        self.assertEqual(reply, (550, ["5.5.2 Error: bare <CR> received"]))
        self.assertEqual(c.cmd("DATA"), (503, ["5.5.1 Error: need MAIL command"]))

    def test_empty_message(self):
        c = self.ehlo_client()
        self.transaction(c)
        qid = self.queue_id_of(self.send_data(c, b".\r\n"))
        self.assert_content(qid, b"")

    def test_data_with_argument(self):
        c = self.ehlo_client()
        self.transaction(c)
        self.assertEqual(c.cmd("DATA now"), (501, ["5.5.4 Syntax: DATA"]))

    def test_size_limit_at_end_of_data(self):
        c = self.ehlo_client()
        self.transaction(c)
        before = self.queue_ids()
        self.assertEqual(code_of(c.cmd("DATA")), 354)
        c.send(b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 100)
        c.send(b".\r\n")
        self.assertEqual(c.reply(), (552, ["5.3.4 Error: message file too big"]))
        self.assertEqual(c.cmd("DATA"), (503, ["5.5.1 Error: need MAIL command"]))
        self.assert_no_new_message(before)
        # the session goes on normally
        self.transaction(c)
        self.queue_id_of(self.send_data(c, b"small\r\n.\r\n"))

    def test_message_in_many_small_writes(self):
        c = self.ehlo_client()
        self.transaction(c)
        self.assertEqual(code_of(c.cmd("DATA")), 354)
        raw = b"Subject: slow\r\n\r\nline one\r\n..two\r\n.\r\n"
        for i in range(len(raw)):
            c.send(raw[i:i + 1])
            time.sleep(0.005)
        qid = self.queue_id_of(c.reply())
        self.assert_content(qid, b"Subject: slow\n\nline one\n.two\n")


class TestPipelining(SmtpdTestCase):
    """RFC 2920: batches of commands, and content sent too early."""

    def test_whole_batch_in_one_write(self):
        c = self.client()
        c.send("EHLO batch.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster>\r\n"
               "RCPT TO:<nobody@elsewhere.example>\r\nRCPT TO:<>\r\nNOOP\r\nDATA\r\n")
        replies = c.replies(7)
        self.assertEqual([r[0] for r in replies], [250, 250, 250, 250, 501, 250, 354])
        c.send(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nRSET\r\nMAIL FROM:<b@example.org>\r\nQUIT\r\n")
        final = c.replies(4)
        qid = self.queue_id_of(final[0])
        self.assertEqual([r[0] for r in final[1:]], [250, 250, 221])
        self.assert_content(qid, b"Subject: pipelined\n\nbody\n")

    def test_replies_arrive_together(self):
        c = self.client()
        c.send("EHLO batch.example\r\n" + "NOOP\r\n" * 50)
        time.sleep(0.5)
        data = c.sock.recv(1 << 20)
        self.assertEqual(data.count(b"250 2.0.0 Ok\r\n"), 50)

    def test_content_before_354_is_refused(self):
        c = self.client()
        before = self.queue_ids()
        c.send("EHLO early.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster>\r\n"
               "DATA\r\nSubject: too early\r\n\r\nbody\r\n.\r\n")
        replies = c.replies(4)
        self.assertEqual([r[0] for r in replies[:3]], [250, 250, 250])
        self.assertEqual(replies[3], (554, ["5.5.0 Error: SMTP protocol synchronization"]))
        self.assertTrue(c.closed())
        self.wait_log(r"improper command pipelining after DATA from localhost\[127\.0\.0\.1\]")
        self.assert_no_new_message(before)

    def test_commands_after_data_wait_for_the_verdict(self):
        c = self.ehlo_client()
        self.transaction(c)
        self.assertEqual(code_of(c.cmd("DATA")), 354)
        c.send(b"one\r\n.\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster>\r\nDATA\r\n")
        replies = c.replies(4)
        self.queue_id_of(replies[0])
        self.assertEqual([r[0] for r in replies[1:]], [250, 250, 354])
        c.send(b"two\r\n.\r\n")
        qid = self.queue_id_of(c.reply())
        self.assert_content(qid, b"two\n")


class TestBdat(SmtpdTestCase):
    """RFC 3030 CHUNKING."""

    params = {"message_size_limit": "1000"}

    def test_chunks(self):
        c = self.ehlo_client()
        self.transaction(c)
        c.send(b"BDAT 12\r\nSubject: b\r\n")
        self.assertEqual(c.reply(), (250, ["2.0.0 Ok: 12 bytes"]))
        c.send(b"BDAT 0\r\n")
        self.assertEqual(c.reply(), (250, ["2.0.0 Ok: 0 bytes"]))
        body = b"\r\n.leading dot is not stuffing\r\nbin\0ary\r\nbare LF\n\r\n.\r\n"
        c.send(b"BDAT %d LAST\r\n" % len(body) + body)
        qid = self.queue_id_of(c.reply())
        self.assert_content(qid, b"Subject: b\n\n.leading dot is not stuffing\nbin\0ary\nbare LF\n\n.\n")

    def test_bare_cr_refused(self):
        """smtpd_forbid_bare_cr = normal (default): refused at the last chunk."""
        c = self.ehlo_client()
        self.transaction(c)
        before = self.queue_ids()
        c.send(b"BDAT 4\r\na\rb\r")
        self.assertEqual(c.reply(), (250, ["2.0.0 Ok: 4 bytes"]))
        c.send(b"BDAT 3 LAST\r\nc\r\n")
        self.assertEqual(c.reply(), (550, ["5.5.2 Error: bare <CR> received"]))
        self.assert_no_new_message(before)

    def test_pipelined_chunks(self):
        c = self.client()
        c.send(b"EHLO chunk.example\r\nMAIL FROM:<a@example.org> BODY=BINARYMIME\r\nRCPT TO:<postmaster>\r\n"
               b"BDAT 3\r\nabcBDAT 4 LAST\r\nd\r\neQUIT\r\n")
        replies = c.replies(6)
        self.assertEqual([r[0] for r in replies], [250, 250, 250, 250, 250, 221])
        qid = self.queue_id_of(replies[4])
        self.assert_content(qid, b"abcd\ne")
        self.assertEqual(self.queued(qid)["attrs"].get("body"), "BINARYMIME")

    def test_bdat_0_last(self):
        c = self.ehlo_client()
        self.transaction(c)
        c.send(b"BDAT 5\r\nhello")
        self.assertEqual(code_of(c.reply()), 250)
        c.send(b"BDAT 0 LAST\r\n")
        qid = self.queue_id_of(c.reply())
        self.assert_content(qid, b"hello")

    def test_errors_skip_the_chunk(self):
        c = self.ehlo_client()
        c.send(b"BDAT 10\r\nMAIL FROM:")
        self.assertEqual(c.reply(), (503, ["5.5.1 Error: need MAIL command"]))
        c.cmd("MAIL FROM:<a@example.org>")
        c.send(b"BDAT 4 LAST\r\nRSET")
        self.assertEqual(c.reply(), (503, ["5.5.1 Error: need RCPT command"]))
        self.transaction(c)
        c.send(b"BDAT 6 LASTLY\r\nQUIT\r\n")
        self.assertEqual(c.reply(), (501, ["5.5.4 Syntax: BDAT count [LAST]"]))
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
        # the failed BDAT ended the transaction
        self.assertEqual(c.cmd("RCPT TO:<postmaster>"), (503, ["5.5.1 Error: need MAIL command"]))

    def test_bdat_then_data_and_rcpt(self):
        c = self.ehlo_client()
        self.transaction(c)
        c.send(b"BDAT 2\r\nab")
        self.assertEqual(code_of(c.reply()), 250)
        self.assertEqual(c.cmd("RCPT TO:<postmaster>"), (503, ["5.5.1 Error: RCPT after BDAT"]))
        self.assertEqual(c.cmd("DATA"), (503, ["5.5.1 Error: DATA after BDAT"]))
        c.send(b"BDAT 1 LAST\r\nc")
        qid = self.queue_id_of(c.reply())
        self.assert_content(qid, b"abc")

    def test_binarymime_needs_bdat(self):
        c = self.ehlo_client()
        self.transaction(c, sender="<a@example.org> BODY=BINARYMIME")
        self.assertEqual(c.cmd("DATA"), (503, ["5.5.1 Error: BODY=BINARYMIME requires BDAT"]))

    def test_size_limit(self):
        c = self.ehlo_client()
        self.transaction(c)
        before = self.queue_ids()
        c.send(b"BDAT 600\r\n" + b"x" * 600)
        self.assertEqual(code_of(c.reply()), 250)
        c.send(b"BDAT 600 LAST\r\n" + b"y" * 600)
        self.assertEqual(c.reply(), (552, ["5.3.4 Error: message file too big"]))
        c.send(b"BDAT 3 LAST\r\nzzz")
        self.assertEqual(c.reply(), (503, ["5.5.1 Error: need MAIL command"]))
        self.assert_no_new_message(before)

    def test_missing_count_disconnects(self):
        c = self.ehlo_client()
        self.transaction(c)
        c.send(b"BDAT LAST\r\nMAIL FROM:<x@example.org>\r\n")
        self.assertEqual(c.reply(), (521, ["5.5.4 Syntax: BDAT count [LAST]"]))
        self.assertTrue(c.closed())


class SmugglingBase(SmtpdTestCase):
    """Messages that carry every known end-of-data imitation."""

    SEQUENCES = {
        "LF.LF": b"\n.\n",
        "LF.CRLF": b"\n.\r\n",
        "CR.CR": b"\r.\r",
        "CR.CRLF": b"\r.\r\n",
        "CRLF.LF": b"\r\n.\n",
        "CRLF.CR": b"\r\n.\r",
        "LF.CR": b"\n.\r",
        "CR.LF": b"\r.\n",
    }

    def smuggle(self, seq):
        """Send a message whose middle imitates an end of data followed by a
        second transaction; return the final reply and the new queue IDs."""
        c = self.ehlo_client()
        self.transaction(c)
        before = self.queue_ids()
        self.assertEqual(code_of(c.cmd("DATA")), 354)
        c.send(b"Subject: outer\r\n\r\nbefore" + seq +
               b"MAIL FROM:<smuggler@evil.example>\r\nRCPT TO:<victim@" + HOSTNAME.encode() +
               b">\r\nDATA\r\nSubject: smuggled\r\n\r\ninner\r\n.\r\n")
        reply = c.reply()
        # nothing else may be answered: the server saw exactly one message
        self.assertFalse(c.closed(timeout=0.5))
        self.assertEqual(c.buf, b"")
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
        time.sleep(0.3)
        return reply, self.queue_ids() - before


class TestSmugglingNormal(SmugglingBase):
    """smtpd_forbid_bare_newline and smtpd_forbid_bare_cr = normal (default)."""

    def test_sequences(self):
        for name, seq in self.SEQUENCES.items():
            with self.subTest(sequence=name):
                reply, new = self.smuggle(seq)
                if b"\n" in seq.replace(b"\r\n", b""):
                    self.assertEqual(reply, (550, ["5.5.2 Error: bare <LF> received"]))
                    self.assertEqual(new, set())
                elif b"\r" in seq.replace(b"\r\n", b""):
                    self.assertEqual(reply, (550, ["5.5.2 Error: bare <CR> received"]))
                    self.assertEqual(new, set())
                else:
                    qid = self.queue_id_of(reply)
                    self.assertEqual(new, {qid})
                    content = self.queued(qid)["content"]
                    self.assertIn(b"MAIL FROM:<smuggler@evil.example>\n", content)
                    self.assertIn(b"Subject: smuggled\n", content)

    def test_bare_lf_resets_transaction(self):
        c = self.ehlo_client()
        self.transaction(c)
        reply = self.send_data(c, b"line\nwith bare LF\r\n.\r\n")
        self.assertEqual(reply, (550, ["5.5.2 Error: bare <LF> received"]))
        self.assertEqual(c.cmd("DATA"), (503, ["5.5.1 Error: need MAIL command"]))

    def test_bare_lf_command_accepted(self):
        c = self.client()
        c.send(b"EHLO lf.example\n")
        self.assertEqual(code_of(c.reply()), 250)


class TestSmugglingBareLfAllowed(SmugglingBase):
    """smtpd_forbid_bare_newline = no and smtpd_forbid_bare_cr = no: bare LF
    and bare CR are content line ends, but never end the data."""

    params = {"smtpd_forbid_bare_newline": "no", "smtpd_forbid_bare_cr": "no"}

    def test_sequences(self):
        for name, seq in self.SEQUENCES.items():
            with self.subTest(sequence=name):
                reply, new = self.smuggle(seq)
                qid = self.queue_id_of(reply)
                self.assertEqual(new, {qid})
                content = self.queued(qid)["content"]
                self.assertIn(b"\n\nbefore", content)
                self.assertIn(b"MAIL FROM:<smuggler@evil.example>\n", content)
                self.assertTrue(content.endswith(b"Subject: smuggled\n\ninner\n"))
                self.assertNotIn(b"\r", content)    # cleanup made each bare CR a line end

    def test_bare_lf_content_kept(self):
        c = self.ehlo_client()
        self.transaction(c)
        qid = self.queue_id_of(self.send_data(c, b"a\nb\r\n.\r\n"))
        self.assert_content(qid, b"a\nb\n")


class TestBareLfReject(SmtpdTestCase):
    """smtpd_forbid_bare_newline = reject: also command lines."""

    params = {"smtpd_forbid_bare_newline": "reject"}

    def test_command_with_bare_lf(self):
        c = self.client()
        c.send(b"EHLO lf.example\n")
        self.assertEqual(c.reply(), (500, ["5.5.2 Error: bare <LF> received"]))
        self.assertEqual(code_of(c.cmd("EHLO crlf.example")), 250)
        self.transaction(c)
        self.assertEqual(self.send_data(c, b"x\ny\r\n.\r\n"), (550, ["5.5.2 Error: bare <LF> received"]))


class TestBareCrReject(SmtpdTestCase):
    """smtpd_forbid_bare_cr = reject: also command lines."""

    params = {"smtpd_forbid_bare_cr": "reject"}

    def test_command_with_bare_cr(self):
        c = self.client()
        c.send(b"EHLO cr.example\rMAIL FROM:<a@example.org>\r\n")
        self.assertEqual(c.reply(), (500, ["5.5.2 Error: bare <CR> received"]))
        self.assertEqual(code_of(c.cmd("EHLO crlf.example")), 250)
        self.transaction(c)
        self.assertEqual(self.send_data(c, b"x\ry\r\n.\r\n"), (550, ["5.5.2 Error: bare <CR> received"]))


class TestRelay(SmtpdTestCase):
    """Relay decisions for a client outside mynetworks."""

    # reject_unauth_destination: 554 (the default, defer_unauth_destination,
    # answers 454; test_policy.py covers it)
    params = {"mynetworks": "192.0.2.0/24", "relay_domains": "relay.example, .sub-only.example",
              "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination"}

    def rcpt(self, address):
        c = self.ehlo_client()
        c.cmd("MAIL FROM:<sender@example.org>")
        return c.cmd("RCPT TO:" + address)

    def test_local_destinations(self):
        for addr in ("<postmaster@%s>" % HOSTNAME, "<User@%s.>" % HOSTNAME.upper(), "<postmaster>",
                     "<PostMaster>", "<u@localhost>", "<@hop.example,@hop2.example:u@%s>" % HOSTNAME,
                     "<\"quoted user\"@%s>" % HOSTNAME, "<u@[127.0.0.1]>", "<u%%localhost@%s>" % HOSTNAME):
            with self.subTest(address=addr):
                self.assertEqual(self.rcpt(addr), (250, ["2.1.5 Ok"]))

    def test_relay_domains(self):
        for addr in ("<u@relay.example>", "<u@deep.sub.relay.example>", "<u@x.sub-only.example>"):
            with self.subTest(address=addr):
                self.assertEqual(self.rcpt(addr), (250, ["2.1.5 Ok"]))

    def test_relay_denied(self):
        for addr, shown in (("<victim@elsewhere.example>", "victim@elsewhere.example"),
                            ("<u@sub-only.example>", "u@sub-only.example"),
                            ("<u@notrelay.example>", "u@notrelay.example"),
                            ("<u%elsewhere.example@localhost>", "u%elsewhere.example@localhost"),
                            ("<elsewhere.example!u@localhost>", "elsewhere.example!u@localhost"),
                            ("<\"u@elsewhere.example\"@localhost>", "\"u@elsewhere.example\"@localhost"),
                            ("<elsewhere.example!u%%localhost@%s>" % HOSTNAME,
                             "elsewhere.example!u%%localhost@%s" % HOSTNAME),
                            ("<@%s:u@elsewhere.example>" % HOSTNAME, "u@elsewhere.example"),
                            ("<u@[192.0.2.1]>", "u@[192.0.2.1]")):
            with self.subTest(address=addr):
                self.assertEqual(self.rcpt(addr), (554, ["5.7.1 <%s>: Relay access denied" % shown]))
        self.wait_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 554 5\.7\.1 "
                      r"<victim@elsewhere\.example>: Relay access denied; from=<sender@example\.org> "
                      r"to=<victim@elsewhere\.example> proto=ESMTP helo=<client\.example>")

    def test_denied_rcpts_leave_no_recipient(self):
        c = self.ehlo_client()
        c.cmd("MAIL FROM:<sender@example.org>")
        self.assertEqual(code_of(c.cmd("RCPT TO:<victim@elsewhere.example>")), 554)
        self.assertEqual(c.cmd("DATA"), (503, ["5.5.1 Error: need RCPT command"]))


class TestLimitsAndTimeouts(SmtpdTestCase):
    """Error limits with the error delay, the timeout, the pre-greeting talker."""

    params = {"smtpd_soft_error_limit": "2", "smtpd_hard_error_limit": "4",
              "smtpd_error_sleep_time": "1s", "smtpd_timeout": "2s", "smtpd_greet_pause": "1s"}

    def test_pregreet_talker(self):
        c = self.client(greet=False)
        c.send("EHLO hasty.example\r\n")
        self.assertEqual(c.reply(), (554, ["5.5.0 Error: SMTP protocol synchronization"]))
        self.assertTrue(c.closed())
        self.wait_log(r"improper command pipelining after CONNECT from localhost\[127\.0\.0\.1\]")

    def test_patient_client_gets_greeting(self):
        start = time.time()
        c = self.client()
        self.assertGreaterEqual(time.time() - start, 0.9)
        self.assertEqual(code_of(c.greeting), 220)

    def test_error_delay_and_hard_limit(self):
        c = self.ehlo_client()
        times = []
        for i in range(4):
            start = time.time()
            self.assertEqual(code_of(c.cmd("BOGUS%d" % i)), 500)
            times.append(time.time() - start)
        self.assertLess(times[0], 0.8)
        self.assertLess(times[1], 0.8)
        self.assertGreaterEqual(times[2], 0.9)
        self.assertGreaterEqual(times[3], 0.9)
        self.assertEqual(c.reply(), (421, ["4.7.0 %s Error: too many errors" % HOSTNAME]))
        self.assertTrue(c.closed())

    def test_timeout(self):
        c = self.ehlo_client()
        start = time.time()
        self.assertEqual(c.reply(), (421, ["4.4.2 %s Error: timeout exceeded" % HOSTNAME]))
        self.assertGreaterEqual(time.time() - start, 1.5)
        self.assertTrue(c.closed())
        self.wait_log(r"timeout after EHLO from localhost\[127\.0\.0\.1\]")

    def test_timeout_in_data(self):
        c = self.ehlo_client()
        self.transaction(c)
        self.assertEqual(code_of(c.cmd("DATA")), 354)
        c.send(b"partial content\r\n")
        self.assertEqual(c.reply(), (421, ["4.4.2 %s Error: timeout exceeded" % HOSTNAME]))
        self.wait_log(r"timeout after DATA from localhost\[127\.0\.0\.1\]")

    def test_client_that_does_not_read(self):
        """Replies pile up for a client that never reads them: smtpd stops
        reading its commands and drops it after smtpd_timeout."""
        c = self.ehlo_client()
        c.sock.settimeout(0.2)
        batch = b"NOOP\r\n" * 10000
        deadline, stuck = time.time() + 20, 0
        while time.time() < deadline and stuck < 5:
            try:
                c.sock.sendall(batch)
                stuck = 0
            except (socket.timeout, TimeoutError):
                stuck += 1
            except OSError:
                break
        self.wait_log(r"timeout after NOOP from localhost\[127\.0\.0\.1\]", timeout=15)

    def test_lost_connection_logged(self):
        c = self.ehlo_client()
        c.cmd("MAIL FROM:<a@example.org>")
        c.close()
        self.wait_log(r"lost connection after MAIL from localhost\[127\.0\.0\.1\]")


class TestCleanupUnavailable(SmtpdTestCase):
    """When cleanup cannot be reached the client is told to try again later.
    With DATA, cleanup is asked for once the content is in (a process is
    held only while it writes), so the 451 answers the end of data."""

    params = {"cleanup_service_name": "no-such-cleanup"}

    def test_data_gets_451(self):
        c = self.ehlo_client()
        self.transaction(c)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        self.assertEqual(c.reply(), (451, ["4.3.0 Error: queue file write error"]))
        self.assertEqual(c.cmd("RCPT TO:<postmaster>"), (503, ["5.5.1 Error: need MAIL command"]))
        # a message larger than one piece asks cleanup mid-message: the rest
        # is read and the end refused the same way
        self.transaction(c)
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 200 + b".\r\n")
        self.assertEqual(c.reply(), (451, ["4.3.0 Error: queue file write error"]))
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
        self.transaction(c)
        c.send(b"BDAT 3 LAST\r\nabc")
        self.assertEqual(c.reply(), (451, ["4.3.0 Error: queue file write error"]))
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
        self.wait_log(r"warning: .*cleanup")


if __name__ == "__main__":
    unittest.main()
