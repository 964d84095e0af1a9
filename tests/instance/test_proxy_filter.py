"""test_proxy_filter.py: whole-instance tests of the before-queue proxy
filter (smtpd_proxy_filter, smtpd_proxy_timeout, smtpd_proxy_options,
smtpd_proxy_ehlo).

One instance has four smtpd listeners: the instance's own port takes the
filter's re-injected mail (no filter there, as in Postfix's
SMTPD_PROXY_README); the others have -o smtpd_proxy_filter= pointing at a
filter written here (an SMTP server on loopback), one of them with
speed_adjust, one at a port where nothing listens. The filter accepts mail
by re-injecting it into the instance and relaying the answer, refuses
content with the word SPAMWORD (550 5.7.1 and its own text), and, when a
word in the Subject: tells it to, answers 451, never answers, sends an
oversized or malformed reply or closes mid-DATA. Mail the instance queues
goes through relayhost to an aiosmtpd sink: the mailbox the tests read.

Clients connect from 127.0.0.2 (outside mynetworks = 127.0.0.1/32):
smtpd's own restrictions still apply before anything reaches the filter.
"""
import base64
import os
import re
import smtplib
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
import sink as sinkmod  # noqa: E402
from test_milter import FakeMilter  # noqa: E402
from test_sasl import make_hash  # noqa: E402

DOMAIN = "remote.example"
CLIENT = "127.0.0.2"


class Filter(servers.Server):
    """A before-queue content filter: SMTP with XFORWARD; every session is
    recorded in .sessions (a dict per connection: the time it was accepted,
    its command lines, XFORWARD lines and the content of DATA)."""

    def __init__(self, reinject_port, path=None):
        super().__init__(path=path)
        self.reinject_port = reinject_port
        self.sessions = []

    def handle(self, conn):
        sess = {"accepted": time.time(), "commands": [], "xforward": [], "data": None,
                "ehlo": None, "quit": False}
        with self.lock:
            self.sessions.append(sess)
        f = conn.makefile("rb")
        conn.settimeout(30)

        def say(text):
            conn.sendall(text.encode() if isinstance(text, str) else text)

        say("220 filter.test ESMTP test filter\r\n")
        sender, rcpts = None, []
        while not self.stopping.is_set():
            line = f.readline(4096)
            if not line:
                return
            cmd = line.decode("utf-8", "replace").rstrip("\r\n")
            sess["commands"].append(cmd)
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "EHLO":
                sess["ehlo"] = cmd[5:]
                say("250-filter.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n"
                    "250-DSN\r\n250 XFORWARD NAME ADDR PROTO HELO SOURCE PORT LOGIN\r\n")
            elif verb == "XFORWARD":
                sess["xforward"].append(cmd)
                say("250 2.0.0 Ok\r\n")
            elif verb == "MAIL":
                sender = re.search(r"<([^>]*)>", cmd).group(1)
                rcpts = []
                say("250 2.1.0 Ok\r\n")
            elif verb == "RCPT":
                addr = re.search(r"<([^>]*)>", cmd).group(1)
                if addr.startswith("blocked"):
                    say("550 5.1.1 <%s>: the filter does not take this one\r\n" % addr)
                else:
                    rcpts.append(addr)
                    say("250 2.1.5 Ok\r\n")
            elif verb == "DATA":
                say("354 go ahead\r\n")
                if not self.read_data(conn, f, sess, sender, rcpts, say):
                    return
            elif verb == "RSET":
                say("250 2.0.0 Ok\r\n")
            elif verb == "QUIT":
                sess["quit"] = True
                say("221 2.0.0 Bye\r\n")
                return
            else:
                say("502 5.5.2 what\r\n")

    def read_data(self, conn, f, sess, sender, rcpts, say):
        """The content up to the dot; then the answer its Subject: asks
        for. False when the session is to end here."""
        data = bytearray()
        closemid = early = False
        while True:
            line = f.readline(1 << 20)
            if not line:
                return False
            if line == b".\r\n":
                break
            closemid = closemid or b"CLOSEMID" in line
            if b"EARLYREFUSAL" in line and not early:
                early = True                 # refused before the end; the rest is read
                say("554 5.7.1 refused early by the test filter\r\n")
            if closemid and len(data) > 100000:
                conn.close()                 # mid-DATA: the rest is never read
                return False
            data += line[1:] if line.startswith(b"..") else line
        sess["data"] = bytes(data)
        if early:
            return True
        text = data.decode("utf-8", "replace")
        if "SILENT" in text:
            self.stopping.wait(60)           # never answers
            return False
        if "TEMPFAIL" in text:
            say("451 4.7.1 the test filter is busy, try again later\r\n")
        elif "HUGEREPLY" in text:
            say("550 5.7.1 " + "x" * 5000 + "\r\n")
        elif "ENDLESS" in text:
            say("550 5.7.1 " + "x" * 400000)     # no line end, ever
            self.stopping.wait(10)
            return False
        elif "BADREPLY" in text:
            say("hello, this is not SMTP\r\n")
        elif "MANYLINES" in text:
            say("".join("550-5.7.1 line %d of the filter's answer\r\n" % i for i in range(60))
                + "550 5.7.1 last line\r\n")
        elif "SPAMWORD" in text:
            say("550 5.7.1 Message content rejected by the test filter: SPAMWORD found\r\n")
        else:
            say(self.reinject(sender, rcpts, bytes(data)) + "\r\n")
        return True

    def reinject(self, sender, rcpts, data):
        """Hand the message to the after-filter smtpd; its answer is ours."""
        try:
            with smtplib.SMTP("127.0.0.1", self.reinject_port, timeout=20) as c:
                c.ehlo("filter.test")
                c.mail(sender)
                for r in rcpts:
                    c.rcpt(r)
                code, text = c.data(data)
                return "%d %s" % (code, text.decode())
        except (smtplib.SMTPException, OSError) as e:
            return "451 4.3.0 re-injection failed: %s" % e


class Client(harness.RawSession):
    """A raw SMTP client from 127.0.0.2; a reply is (code, lines' texts joined by spaces)."""

    def __init__(self, port, timeout=30):
        super().__init__(port, greet=False, timeout=timeout, source=CLIENT)
        self.greeting = self.reply()

    def reply(self):
        code, lines = self.read_reply()
        return code, " ".join(line[4:] for line in lines)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()


def message(subject, body="hello\r\n", extra=""):
    return ("From: a@client.test\r\nTo: b@%s\r\nSubject: %s\r\n%s\r\n%s" % (DOMAIN, subject, extra, body))


class ProxyFilterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = sinkmod.Sink()
        cls.inst = harness.Instance("proxy")
        cls.filter = Filter(cls.inst.port)
        os.makedirs(os.path.join(cls.inst.queue_dir, "private"), exist_ok=True)
        cls.unix_filter = Filter(cls.inst.port, path=os.path.join(cls.inst.queue_dir, "private", "pfilter"))
        cls.front, cls.speed, cls.dead = harness.free_port(), harness.free_port(), harness.free_port()
        cls.glob, cls.unix, cls.milt = harness.free_port(), harness.free_port(), harness.free_port()
        cls.auth = harness.free_port()
        cls.passwd = os.path.join(cls.inst.dir, "sasl-passwd")
        with open(cls.passwd, "w") as f:
            f.write("proxyuser %s\n" % make_hash("proxy secret", "sha512"))
        os.chmod(cls.passwd, 0o600)
        # milters on a listener with a filter: one refuses a recipient, one would refuse a body
        cls.rcpt_milter = FakeMilter("R", "reject", match=b"milterno")
        cls.body_milter = FakeMilter("B", "reject", match=b"MILTERBODY")
        cls.dead_filter = harness.free_port()        # nothing listens there
        filt = "127.0.0.1:%d" % cls.filter.port
        cls.inst.set_main_cf({
            "mynetworks": "127.0.0.1/32", "relay_domains": DOMAIN,
            "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
            "smtpd_proxy_ehlo": "front.tern.test",
            # every smtpd has the filter unless its master.cf line says otherwise
            "smtpd_proxy_filter": filt, "smtpd_proxy_timeout": "3s",
        })
        cls.inst.set_master_cf([
            # the after-filter smtpd, where the filter re-injects: no filter there
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_proxy_filter=" % cls.inst.port,
            "127.0.0.1:%d inet n - n - - smtpd" % cls.glob,
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_proxy_filter=unix:private/pfilter" % cls.unix,
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes"
            " -o smtpd_sasl_password_maps=texthash:%s" % (cls.auth, cls.passwd),
            # a port alone: the filter is on localhost
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_milters=inet:127.0.0.1:%d,inet:127.0.0.1:%d"
            " -o smtpd_proxy_filter=%d" % (cls.milt, cls.rcpt_milter.port, cls.body_milter.port, cls.filter.port),
            "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp",
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_proxy_filter=%s -o smtpd_proxy_timeout=3s"
            % (cls.front, filt),
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_proxy_filter=inet:%s -o smtpd_proxy_timeout=3s"
            " -o smtpd_proxy_options=speed_adjust" % (cls.speed, filt),
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_proxy_filter=[127.0.0.1]:%d" % (cls.dead, cls.dead_filter),
        ])
        cls.inst.start()
        for port in (cls.front, cls.speed, cls.dead, cls.glob, cls.unix, cls.milt, cls.auth):
            cls.inst.wait_port(port)

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()
        cls.filter.stop()
        cls.unix_filter.stop()
        cls.rcpt_milter.stop()
        cls.body_milter.stop()
        cls.sink.stop()

    # ---- helpers ----
    def client(self, port=None):
        c = Client(port or self.front)
        self.addCleanup(c.close)
        self.assertEqual(c.cmd("EHLO client.test")[0], 250)
        return c

    def send(self, c, subject, rcpts=("b@" + DOMAIN,), body="hello\r\n", sender="a@client.test"):
        """MAIL, RCPT..., DATA and the message; the final reply."""
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % sender), (250, "2.1.0 Ok"))
        for r in rcpts:
            self.assertEqual(c.cmd("RCPT TO:<%s>" % r), (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(message(subject, body).replace("\r\n.", "\r\n..") + ".\r\n")
        return c.reply()

    def delivered(self, subject, timeout=15):
        """The sink's messages with this Subject:, once one arrived (or [] after timeout)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = [m for m in self.sink.handler.messages if ("Subject: %s\r\n" % subject).encode() in m[2]]
            if got:
                time.sleep(0.5)              # a double would come right after
                return [m for m in self.sink.handler.messages
                        if ("Subject: %s\r\n" % subject).encode() in m[2]]
            time.sleep(0.1)
        return []

    def not_delivered(self, subject, wait=2):
        time.sleep(wait)
        self.assertEqual([m for m in self.sink.handler.messages
                          if ("Subject: %s\r\n" % subject).encode() in m[2]], [])

    def filter_session(self, subject):
        for s in list(self.filter.sessions):
            if s["data"] and ("Subject: %s\r\n" % subject).encode() in s["data"]:
                return s
        raise AssertionError("the filter never saw %r" % subject)

    def queue_empty(self):
        self.inst.wait_empty(timeout=20)

    # ---- accepted mail ----
    def test_accepted_once_with_received_header(self):
        reply = self.send(self.client(), "accept-1", body="line\r\n.dot line\r\nend\r\n")
        self.assertEqual(reply[0], 250, reply)
        self.assertRegex(reply[1], r"^2\.0\.0 Ok: queued as \w+$")    # the after-filter smtpd's words
        got = self.delivered("accept-1")
        self.assertEqual(len(got), 1, got)
        data = got[0][2]
        # the front smtpd's Received: header (no queue ID: it made no queue file)
        self.assertRegex(data.decode(), r"Received: from client\.test \(unknown \[127\.0\.0\.2\]\)\r\n"
                                        r"\tby tern\.test \(Tern\) with ESMTP\r\n\tfor <b@remote\.example>; ")
        self.assertIn(b"\r\n.dot line\r\nend\r\n", data)
        sess = self.filter_session("accept-1")
        self.assertTrue(sess["data"].startswith(b"Received: from client.test"), sess["data"][:100])
        self.assertEqual(sess["ehlo"], "front.tern.test")
        self.inst.wait_log(r"NOQUEUE: proxy-accept: END-OF-MESSAGE from unknown\[127\.0\.0\.2\]: 250 2\.0\.0 Ok: "
                           r"queued as \w+; from=<a@client\.test> to=<b@remote\.example> proto=ESMTP "
                           r"helo=<client\.test>")
        self.queue_empty()

    def test_global_setting_and_unix_socket(self):
        self.assertEqual(self.send(self.client(self.glob), "global-1")[0], 250)
        self.filter_session("global-1")
        self.assertEqual(self.send(self.client(self.unix), "unix-1")[0], 250)
        self.assertTrue(any(s["data"] and b"Subject: unix-1\r\n" in s["data"] for s in self.unix_filter.sessions))
        self.assertEqual(len(self.delivered("global-1")), 1)
        self.assertEqual(len(self.delivered("unix-1")), 1)

    def test_milters_see_the_envelope_not_the_content(self):
        c = self.client(self.milt)
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<milterno@%s>" % DOMAIN)[0], 550)
        c.cmd("RSET")
        # the content goes to the filter only: the body milter never sees it
        self.assertEqual(self.send(c, "milter-1", body="MILTERBODY\r\n")[0], 250)
        self.assertEqual(len(self.delivered("milter-1")), 1)
        for sess in self.filter.sessions:
            self.assertFalse(any("milterno" in x for x in sess["commands"]), sess["commands"])

    def test_xforward_reaches_the_filter(self):
        c = self.client()
        self.assertEqual(self.send(c, "xforward-1")[0], 250)
        xf = " ".join(self.filter_session("xforward-1")["xforward"])
        for attr in ("NAME=unknown", "ADDR=127.0.0.2", "PROTO=ESMTP", "HELO=client.test", "SOURCE=REMOTE"):
            self.assertIn(attr, xf)
        self.assertRegex(xf, r"PORT=\d+")
        self.assertNotIn("LOGIN=", xf)          # not authenticated: left out
        self.assertTrue(all(len(line) < 512 for line in self.filter_session("xforward-1")["xforward"]))

    def test_authenticated_client(self):
        c = self.client(self.auth)
        token = base64.b64encode(b"\0proxyuser\0proxy secret").decode()
        self.assertEqual(c.cmd("AUTH PLAIN " + token)[0], 235)
        self.assertEqual(self.send(c, "auth-1")[0], 250)
        sess = self.filter_session("auth-1")
        self.assertIn("LOGIN=proxyuser", " ".join(sess["xforward"]))
        self.assertIn(b"\tby tern.test (Tern) with ESMTPA\r\n", sess["data"])
        self.assertEqual(len(self.delivered("auth-1")), 1)

    def test_mail_parameters_passed(self):
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=abc+2Bd"),
                         (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<b@%s> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@%s" % (DOMAIN, DOMAIN)),
                         (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(message("params-1") + ".\r\n")
        self.assertEqual(c.reply()[0], 250)
        cmds = self.filter_session("params-1")["commands"]
        mail = [x for x in cmds if x.startswith("MAIL")][0]
        rcpt = [x for x in cmds if x.startswith("RCPT")][0]
        self.assertEqual(mail, "MAIL FROM:<a@client.test> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=abc+2Bd")
        self.assertEqual(rcpt, "RCPT TO:<b@%s> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@%s" % (DOMAIN, DOMAIN))

    def test_two_messages_one_session_and_rset_quit(self):
        c = self.client()
        self.assertEqual(self.send(c, "two-1")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RSET"), (250, "2.0.0 Ok"))
        self.assertEqual(self.send(c, "two-2")[0], 250)
        self.assertEqual(c.cmd("QUIT")[0], 221)
        self.assertEqual(len(self.delivered("two-1")), 1)
        self.assertEqual(len(self.delivered("two-2")), 1)
        # each transaction had its own filter session, ended with QUIT
        deadline = time.time() + 5
        while time.time() < deadline and not all(s["quit"] for s in self.filter.sessions[-3:]):
            time.sleep(0.1)
        self.assertTrue(all(s["quit"] for s in self.filter.sessions[-3:]),
                        [s["commands"] for s in self.filter.sessions[-3:]])

    def test_pipelining_client(self):
        c = Client(self.front)
        self.addCleanup(c.close)
        c.send("EHLO client.test\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<b@%s>\r\n"
               "RCPT TO:<blocked@%s>\r\nRCPT TO:<c@%s>\r\nDATA\r\n" % (DOMAIN, DOMAIN, DOMAIN))
        replies = [c.reply() for _ in range(6)]
        self.assertEqual([r[0] for r in replies], [250, 250, 250, 550, 250, 354], replies)
        c.send(message("pipe-1") + ".\r\nQUIT\r\n")
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply()[0], 221)
        got = self.delivered("pipe-1")
        self.assertEqual(len(got), 1)
        self.assertEqual(sorted(got[0][1]), ["b@" + DOMAIN, "c@" + DOMAIN])

    def test_bdat(self):
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<b@%s>" % DOMAIN), (250, "2.1.5 Ok"))
        msg = message("bdat-1", body=".starts with a dot\r\nlast line without end").encode()
        half = len(msg) // 2
        c.send(b"BDAT %d\r\n" % half + msg[:half])
        self.assertEqual(c.reply(), (250, "2.0.0 Ok: %d bytes" % half))
        c.send(b"BDAT %d LAST\r\n" % (len(msg) - half) + msg[half:])
        self.assertEqual(c.reply()[0], 250)
        got = self.delivered("bdat-1")
        self.assertEqual(len(got), 1)
        self.assertIn(b"\r\n.starts with a dot\r\nlast line without end\r\n", got[0][2])

    # ---- refused by the filter ----
    def test_content_rejected_with_the_filters_text(self):
        reply = self.send(self.client(), "spam-1", body="buy SPAMWORD now\r\n")
        self.assertEqual(reply, (550, "5.7.1 Message content rejected by the test filter: SPAMWORD found"))
        self.inst.wait_log(r"NOQUEUE: proxy-reject: END-OF-MESSAGE from unknown\[127\.0\.0\.2\]: 550 5\.7\.1 "
                           r"Message content rejected by the test filter: SPAMWORD found; from=<a@client\.test> "
                           r"to=<b@remote\.example> proto=ESMTP helo=<client\.test>")
        self.not_delivered("spam-1")
        self.queue_empty()

    def test_tempfail_passed_on(self):
        reply = self.send(self.client(), "TEMPFAIL-1")
        self.assertEqual(reply, (451, "4.7.1 the test filter is busy, try again later"))
        self.not_delivered("TEMPFAIL-1")

    def test_rcpt_rejection_passed_on(self):
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<blocked@%s>" % DOMAIN),
                         (550, "5.1.1 <blocked@%s>: the filter does not take this one" % DOMAIN))
        self.assertEqual(c.cmd("DATA")[0], 503)      # no recipient left
        self.assertEqual(c.cmd("RCPT TO:<b@%s>" % DOMAIN), (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(message("rcptrej-1") + ".\r\n")
        self.assertEqual(c.reply()[0], 250)
        got = self.delivered("rcptrej-1")
        self.assertEqual([m[1] for m in got], [["b@" + DOMAIN]])

    def test_multiline_reply_bounded(self):
        c = self.client()
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<b@%s>" % DOMAIN), (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(message("MANYLINES-1") + ".\r\n")
        code, lines = c.read_reply()
        self.assertEqual(code, 550)
        self.assertLessEqual(len(lines), 20)
        self.assertEqual(lines[0], "550-5.7.1 line 0 of the filter's answer")
        self.assertEqual(c.cmd("NOOP"), (250, "2.0.0 Ok"))    # the session goes on

    # ---- smtpd's own checks come first ----
    def test_restrictions_run_before_the_filter(self):
        c = self.client()
        before = len(self.filter.sessions)
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>"), (250, "2.1.0 Ok"))
        code, text = c.cmd("RCPT TO:<x@elsewhere.example>")
        self.assertIn(code, (454, 554))          # defer_unauth_destination or reject_
        self.assertIn("Relay access denied", text)
        c.cmd("QUIT")
        time.sleep(0.5)
        for s in self.filter.sessions[before:]:
            self.assertFalse(any("elsewhere.example" in x for x in s["commands"]), s["commands"])

    # ---- a filter that fails ----
    def test_dead_filter_gives_451(self):
        c = self.client(self.dead)
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>"), (451, "4.3.0 Error: queue file write error"))
        self.inst.wait_log(r"warning: unknown\[127\.0\.0\.2\]: proxy filter \[127\.0\.0\.1\]:%d: "
                           r"connect: Connection refused" % self.dead_filter)
        self.inst.wait_log(r"NOQUEUE: proxy-reject: MAIL from unknown\[127\.0\.0\.2\]: 451 4\.3\.0 Error: "
                           r"queue file write error; from=<a@client\.test>")
        self.assertEqual(c.cmd("RCPT TO:<b@%s>" % DOMAIN)[0], 503)
        self.assertEqual(c.cmd("QUIT")[0], 221)
        self.queue_empty()

    def test_silent_filter_times_out(self):
        c = self.client()
        start = time.time()
        reply = self.send(c, "SILENT-1")
        self.assertEqual(reply, (451, "4.3.0 Error: queue file write error"))
        self.assertLess(time.time() - start, 15)
        self.inst.wait_log(r"proxy filter 127\.0\.0\.1:%d: timeout after end of data" % self.filter.port)
        self.assertEqual(c.cmd("NOOP"), (250, "2.0.0 Ok"))
        self.not_delivered("SILENT-1")
        self.queue_empty()

    def test_oversized_reply_line_is_cut(self):
        code, text = self.send(self.client(), "HUGEREPLY-1")
        self.assertEqual(code, 550)
        self.assertTrue(text.startswith("5.7.1 xxxx"), text[:50])
        self.assertLess(len(text), 2100)

    def test_endless_reply_line(self):
        # cut at the line bound, as the smtp client does; the rest is never read as replies
        c = self.client()
        code, text = self.send(c, "ENDLESS-1")
        self.assertEqual(code, 550)
        self.assertLess(len(text), 2100)
        self.assertEqual(c.cmd("NOOP"), (250, "2.0.0 Ok"))
        self.not_delivered("ENDLESS-1")

    def test_malformed_reply(self):
        self.assertEqual(self.send(self.client(), "BADREPLY-1"), (451, "4.3.0 Error: queue file write error"))
        self.inst.wait_log(r"proxy filter 127\.0\.0\.1:%d: malformed reply" % self.filter.port)

    def test_filter_closes_mid_data(self):
        body = "CLOSEMID\r\n" + ("x" * 70 + "\r\n") * 20000          # 1.4 MB: more than the socket buffers
        reply = self.send(self.client(), "closemid-1", body=body)
        self.assertEqual(reply, (451, "4.3.0 Error: queue file write error"))
        self.inst.wait_log(r"proxy filter 127\.0\.0\.1:%d: (lost connection while receiving the message "
                           r"content|Connection reset by peer|Broken pipe)" % self.filter.port)
        self.not_delivered("closemid-1")
        self.queue_empty()

    def test_refusal_before_the_end_of_data(self):
        body = "EARLYREFUSAL\r\n" + ("z" * 70 + "\r\n") * 20000
        # The client holds back the final dot until the filter's early
        # answer is in the log: smtpd may forward all of 1.4 MB before the
        # filter reads its first line, so only this makes the answer come
        # while the data is still streaming.
        c = self.client(self.front)
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<b@%s>" % DOMAIN), (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(message("early-%d" % self.front, body))
        self.inst.wait_log(r"proxy filter 127\.0\.0\.1:%d answered before the end of data: 554 5\.7\.1 "
                           r"refused early" % self.filter.port, timeout=30)
        c.send(".\r\n")
        self.assertEqual(c.reply(), (554, "5.7.1 refused early by the test filter"))
        self.assertEqual(c.cmd("NOOP"), (250, "2.0.0 Ok"))
        c = self.client(self.speed)
        self.assertEqual(self.send(c, "early-%d" % self.speed, body=body),
                         (554, "5.7.1 refused early by the test filter"))
        self.assertEqual(c.cmd("NOOP"), (250, "2.0.0 Ok"))
        for port in (self.front, self.speed):
            self.not_delivered("early-%d" % port, wait=0)
        self.queue_empty()

    def test_large_message_streams(self):
        body = ("y" * 70 + "\r\n") * 40000                          # 2.9 MB through the backlog pause
        reply = self.send(self.client(), "large-1", body=body)
        self.assertEqual(reply[0], 250, reply)
        got = self.delivered("large-1", timeout=30)
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0][2].endswith(body.encode()))

    # ---- speed_adjust ----
    def test_speed_adjust_connects_after_the_content(self):
        c = self.client(self.speed)
        before = len(self.filter.sessions)
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<b@%s>" % DOMAIN), (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(message("speed-1"))
        time.sleep(1.5)
        self.assertEqual(len(self.filter.sessions), before)       # not yet connected
        sent_dot = time.time()
        c.send(".\r\n")
        reply = c.reply()
        self.assertEqual(reply[0], 250, reply)
        sess = self.filter_session("speed-1")
        self.assertGreaterEqual(sess["accepted"], sent_dot - 0.05)
        self.assertTrue(any(x.startswith("XFORWARD") for x in sess["commands"]))
        self.assertEqual(len(self.delivered("speed-1")), 1)

    def test_speed_adjust_refusals(self):
        c = self.client(self.speed)
        self.assertEqual(self.send(c, "speed-spam", body="SPAMWORD\r\n")[0], 550)
        # a recipient the filter refuses: with speed_adjust its refusal answers the message
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<blocked@%s>" % DOMAIN), (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("DATA")[0], 354)
        c.send(message("speed-rcpt") + ".\r\n")
        self.assertEqual(c.reply(), (550, "5.1.1 <blocked@%s>: the filter does not take this one" % DOMAIN))
        self.assertEqual(self.send(c, "SILENT-speed"), (451, "4.3.0 Error: queue file write error"))
        self.not_delivered("speed-spam", wait=0)
        self.not_delivered("speed-rcpt", wait=0)
        self.not_delivered("SILENT-speed")
        self.queue_empty()

    def test_speed_adjust_bdat(self):
        c = self.client(self.speed)
        self.assertEqual(c.cmd("MAIL FROM:<a@client.test>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<b@%s>" % DOMAIN), (250, "2.1.5 Ok"))
        msg = message("speed-bdat").encode()
        c.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(len(self.delivered("speed-bdat")), 1)


if __name__ == "__main__":
    unittest.main()
