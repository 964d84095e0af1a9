"""test_milter.py: whole-instance tests of smtpd_milters: a pymilter filter
of the test (tests/milter/pymilter_test.py) driven by the message it sees
exercises every reply and modification request, checked in the SMTP
replies, the log lines and the queue file; filters written here in raw
protocol that hang, close the connection mid-message or answer garbage
end in their default_action with one clear warning and no lost message;
OpenDKIM signs mail that Tern relays to a sink of the test, and the
signature verifies with python3-dkim.

Queued mail goes to a transport that never answers, so that each queue
file stays in active/ to be read; the DKIM test relays to a sink."""
import json
import os
import re
import shutil
import signal
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
import sink as sinkmod  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PYMILTER = os.path.join(HERE, "..", "milter", "pymilter_test.py")
PYTHON = "/usr/bin/python3"
SENDER = "sender@example.org"


def have_module(name):
    return subprocess.run([PYTHON, "-c", "import " + name], capture_output=True).returncode == 0


def message(subject, actions=(), body="hello\r\nworld\r\n", extra=()):
    lines = ["From: <%s>" % SENDER, "To: <someone@example.com>", "Subject: " + subject]
    lines += ["X-Test-Action: " + a for a in actions]
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class Process:
    """A program the test starts and ends by PID."""

    def __init__(self, argv, **kw):
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_instance(test, name, settings):
    inst = harness.Instance(name)
    test.addClassCleanup(inst.cleanup)
    base = {"mynetworks": "127.0.0.1/32", "local_transport": "stall",
            "default_transport": "stall", "relay_transport": "stall",
            "relay_domains": "example.com"}
    base.update(settings)
    inst.set_main_cf(base)
    inst.stall_transport("stall")
    inst.start()
    return inst


def header_lines(content):
    head = content.split(b"\n\n", 1)[0].decode()
    return [l for l in head.split("\n") if not l.startswith("Received:") and not l.startswith(" ")
            and not l.startswith("\t")]


# ---- the pymilter filter ----

def start_pymilter(cls, prefix):
    """The pymilter test filter on a free port (cls.mport), recording its
    events in cls.events inside a new directory cls.tmp."""
    cls.tmp = tempfile.mkdtemp(prefix=prefix)
    cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
    cls.events = os.path.join(cls.tmp, "events.jsonl")
    cls.mport = harness.free_port()
    cls.milter = Process([PYTHON, PYMILTER, "inet:%d@127.0.0.1" % cls.mport, cls.events])
    cls.addClassCleanup(cls.milter.stop)
    harness.wait_port(cls.mport)


@unittest.skipUnless(have_module("Milter"), "python3-milter is not installed (tools/install-deps)")
class TestPyMilter(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start_pymilter(cls, "tern-milter-")
        cls.inst = start_instance(cls, "milter", {
            "smtpd_milters": "inet:127.0.0.1:%d" % cls.mport,
            "milter_macro_daemon_name": "tern-in"})

    def setUp(self):
        open(self.events, "w").close()

    def read_events(self):
        with open(self.events) as f:
            return [json.loads(l) for l in f if l.strip()]

    def send(self, data, rcpts=("someone@example.com",), sender=SENDER):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail(sender, list(rcpts), data)
        return self.inst.wait_log(r"(\w+): client=localhost\[127.0.0.1\]").group(1)

    def send_qid(self, subject, **kw):
        """Send, and return the queue ID of this very message."""
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            rcpts = kw.pop("rcpts", ("someone@example.com",))
            s.mail(kw.pop("sender", SENDER))
            for r in rcpts:
                s.rcpt(r)
            code, text = s.data(message(subject, **kw))
        self.assertEqual(code, 250, text)
        return text.decode().split()[-1]

    def test_events_and_macros(self):
        qid = self.send_qid("plain")
        q = self.inst.queued(qid)
        self.assertIn(b"Subject: plain", q["content"])
        ev = self.read_events()
        names = [e["event"] for e in ev]
        self.assertEqual(names[:6], ["connect", "helo", "mail", "rcpt", "data", "eoh"])
        self.assertEqual(names[6], "eom")
        conn = ev[0]
        self.assertEqual(conn["macros"].get("j"), "tern.test")
        self.assertEqual(conn["macros"].get("{daemon_name}"), "tern-in")
        self.assertEqual(conn["macros"].get("_"), "localhost [127.0.0.1]")
        self.assertEqual(ev[1]["helo"], "client.example")
        self.assertEqual(ev[2]["sender"], "<%s>" % SENDER)
        self.assertEqual(ev[2]["macros"].get("{mail_addr}"), SENDER)
        self.assertEqual(ev[3]["rcpt"], "<someone@example.com>")
        self.assertEqual(ev[3]["macros"].get("{rcpt_addr}"), "someone@example.com")
        self.assertIn(["Subject", "plain"], ev[5]["headers"])
        self.assertEqual(ev[6]["body"], "hello\r\nworld\r\n")
        # the queue ID is named at DATA: the i macro is the ID the message is queued under
        self.assertNotIn("i", ev[3]["macros"])
        self.assertEqual(ev[4]["macros"].get("i"), qid)
        self.assertEqual(ev[6]["macros"].get("i"), qid)

    def test_tls_and_auth_macros(self):
        # a second smtpd with STARTTLS and AUTH, sharing the filter
        d = tempfile.mkdtemp(prefix="tern-milter-tls-", dir="/tmp")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=tern.test", "-keyout", os.path.join(d, "key.pem"),
                        "-out", os.path.join(d, "cert.pem")], check=True, capture_output=True,
                       timeout=60)
        os.chmod(os.path.join(d, "key.pem"), 0o644)
        pw = subprocess.run(["openssl", "passwd", "-6", "secret"], capture_output=True, text=True,
                            check=True, timeout=30).stdout.strip()
        with open(os.path.join(d, "passwd"), "w") as f:
            f.write("alice %s\n" % pw)
        inst = harness.Instance("milter-tls")
        self.addCleanup(inst.cleanup)
        inst.set_main_cf({"smtpd_milters": "inet:127.0.0.1:%d" % self.mport,
                          "mynetworks": "127.0.0.1/32", "local_transport": "stall",
                          "default_transport": "stall", "relay_transport": "stall",
                          "relay_domains": "example.com",
                          "smtpd_tls_security_level": "may",
                          "smtpd_tls_cert_file": os.path.join(d, "cert.pem"),
                          "smtpd_tls_key_file": os.path.join(d, "key.pem"),
                          "smtpd_sasl_auth_enable": "yes", "smtpd_sasl_type": "tern",
                          "smtpd_sasl_password_maps": "texthash:" + os.path.join(d, "passwd")})
        inst.stall_transport("stall")
        inst.start()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with inst.smtp() as s:
            s.ehlo("client.example")
            s.starttls(context=ctx)
            s.ehlo("client.example")
            s.login("alice", "secret")
            s.sendmail(SENDER, ["someone@example.com"], message("over tls"))
        ev = self.read_events()
        helos = [e for e in ev if e["event"] == "helo"]
        self.assertEqual(len(helos), 2, ev)            # before and after STARTTLS
        self.assertNotIn("{tls_version}", helos[0]["macros"])
        self.assertRegex(helos[1]["macros"].get("{tls_version}", ""), r"^TLSv1\.[23]$")
        self.assertTrue(helos[1]["macros"].get("{cipher}"))
        self.assertRegex(helos[1]["macros"].get("{cipher_bits}", ""), r"^\d+$")
        mail = [e for e in ev if e["event"] == "mail"][-1]
        self.assertEqual(mail["macros"].get("{auth_authen}"), "alice")
        self.assertIn(mail["macros"].get("{auth_type}"), ("PLAIN", "LOGIN"))

    def test_connection_reused_for_messages(self):
        with self.inst.smtp() as s:
            port = s.sock.getsockname()[1]
            s.ehlo("client.example")
            for i in range(3):
                s.sendmail(SENDER, ["someone@example.com"], message("seq %d" % i))
        ev = self.read_events()
        mine = [e for e in ev if e["event"] == "connect" and e["hostaddr"].endswith(" %d)" % port)]
        self.assertEqual(len(mine), 1)
        # one milter connection: the client port macro of every event is the same
        self.assertEqual([e["event"] for e in ev].count("eom"), 3)
        self.assertEqual([e["event"] for e in ev].count("helo"), 1)

    def test_rcpt_reject_is_per_recipient(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail(SENDER)
            code, text = s.rcpt("reject-rcpt@example.com")
            self.assertEqual((code, text.decode()), (550, "5.7.1 recipient refused by filter"))
            code, _ = s.rcpt("someone@example.com")
            self.assertEqual(code, 250)
            code, text = s.data(message("after a refused rcpt"))
            self.assertEqual(code, 250)
        qid = text.decode().split()[-1]
        self.assertEqual([r[0] for r in self.inst.queued(qid)["recipients"]], ["someone@example.com"])
        self.inst.wait_log(r"NOQUEUE: milter-reject: RCPT from localhost\[127.0.0.1\]: 550 5.7.1 "
                           r"recipient refused by filter; from=<sender@example.org> "
                           r"to=<reject-rcpt@example.com> proto=ESMTP helo=<client.example>")

    def test_mail_tempfail_and_reject(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            code, text = s.mail("tempfail-mail@example.org")
            self.assertEqual((code, text.decode()), (451, "4.7.1 Service unavailable - try again later"))
            code, text = s.mail("reject-mail@example.org")
            self.assertEqual((code, text.decode()), (550, "5.7.1 Command rejected"))
            code, _ = s.mail(SENDER)
            self.assertEqual(code, 250)
        self.inst.wait_log(r"NOQUEUE: milter-reject: MAIL from localhost\[127.0.0.1\]: 451 4.7.1 "
                           r"Service unavailable - try again later; from=<tempfail-mail@example.org>")

    def test_eom_reject_multiline(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail(SENDER)
            s.rcpt("someone@example.com")
            code, text = s.data(message("refuse me", ["reject"]))
        self.assertEqual(code, 550)
        self.assertEqual(text.decode(), "5.7.1 first line of the refusal\n5.7.1 second line 100%")
        self.inst.wait_log(r"[0-9B-Z]{16}: milter-reject: END-OF-MESSAGE from localhost\[127.0.0.1\]: 550 5.7.1 "
                           r"first line of the refusal 5.7.1 second line 100%; from=<sender@example.org> "
                           r"to=<someone@example.com> proto=ESMTP helo=<client.example>")
        self.assertEqual([e["event"] for e in self.read_events()].count("abort"), 0)

    def test_eom_tempfail_and_discard(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail(SENDER)
            s.rcpt("someone@example.com")
            code, text = s.data(message("later", ["tempfail"]))
            self.assertEqual(code, 451)
            s.mail(SENDER)
            s.rcpt("someone@example.com")
            code, text = s.data(message("drop it", ["discard"]))
            self.assertEqual((code, text.decode()), (250, "2.0.0 Ok: discarded"))
        self.inst.wait_log(r"milter-discard: END-OF-MESSAGE from localhost\[127.0.0.1\]: "
                           r"milter triggers DISCARD action")

    def test_header_edits(self):
        qid = self.send_qid("headers", actions=[
            "addheader X-Added appended value",
            "insheader 0 X-Top first of all",
            "chgheader 2 X-Multi second changed",
            "delheader 1 X-Gone",
            "chgheader 1 X-Absent now present"],
            extra=["X-Multi: one", "X-Multi: two", "X-Gone: bye"])
        q = self.inst.queued(qid)
        lines = header_lines(q["content"])
        self.assertEqual(lines[0], "X-Top: first of all")
        self.assertIn("X-Multi: one", lines)
        self.assertIn("X-Multi: second changed", lines)
        self.assertNotIn("X-Multi: two", lines)
        self.assertFalse([l for l in lines if l.startswith("X-Gone")])
        self.assertEqual(lines[-2:], ["X-Added: appended value", "X-Absent: now present"])
        self.assertLess(lines.index("X-Multi: one"), lines.index("X-Multi: second changed"))

    def test_envelope_edits(self):
        qid = self.send_qid("envelope", rcpts=("someone@example.com", "other@example.com"), actions=[
            "addrcpt <added@example.com>",
            "addrcpt <notified@example.com> NOTIFY=NEVER",
            "delrcpt <other@example.com>",
            "chgfrom <new-sender@example.org> RET=HDRS"])
        q = self.inst.queued(qid)
        rcpts = {r[0]: r for r in q["recipients"]}
        self.assertEqual(sorted(rcpts), ["added@example.com", "notified@example.com",
                                         "someone@example.com"])
        self.assertEqual(rcpts["notified@example.com"][2], "NEVER")
        self.assertEqual(q["sender"], "new-sender@example.org")

    def test_replace_body(self):
        qid = self.send_qid("new body", actions=["replbody replaced text"])
        q = self.inst.queued(qid)
        self.assertTrue(q["content"].endswith(b"\n\nreplaced text\nsecond body line\n"), q["content"])
        self.assertNotIn(b"world", q["content"])

    def test_quarantine_holds(self):
        qid = self.send_qid("hold me", actions=["quarantine suspicious content"])
        q = self.inst.queued(qid)
        self.assertEqual(q["dir"], "hold")
        self.inst.wait_log(r"%s: milter-hold: END-OF-MESSAGE from localhost\[127.0.0.1\]: "
                           r"suspicious content; from=<sender@example.org>" % qid)
        self.assertEqual(q["attrs"].get("hold_reason"), "milter: suspicious content")
        shown = self.inst.tern("show", qid).stdout
        self.assertIn("hold_reason=milter: suspicious content", shown)

    def test_unknown_command(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            code, text = s.docmd("XYZZY plugh")
            self.assertEqual((code, text.decode()), (500, "5.5.2 Error: command not recognized"))
            code, text = s.docmd("REFUSE-ME now")
            self.assertEqual((code, text.decode()), (554, "5.7.0 the filter refuses this command"))
        ev = [e for e in self.read_events() if e["event"] == "unknown"]
        self.assertEqual([e["command"] for e in ev], ["XYZZY plugh", "REFUSE-ME now"])

    def test_protocol_version_2(self):
        # per-milter protocol=2: no DATA event, no "no reply" steps; edits still work
        inst = start_instance(self, "mv2", {
            "smtpd_milters": "{ inet:127.0.0.1:%d, protocol=2 }" % self.mport})
        with inst.smtp() as s:
            s.ehlo("client.example")
            s.mail(SENDER)
            s.rcpt("someone@example.com")
            code, text = s.data(message("version 2", ["addheader X-V2 yes"]))
        self.assertEqual(code, 250, text)
        q = inst.queued(text.decode().split()[-1])
        self.assertIn("X-V2: yes", header_lines(q["content"]))
        names = [e["event"] for e in self.read_events()]
        self.assertNotIn("data", names)
        self.assertIn("eom", names)

    def test_bdat_and_pipelining(self):
        data = message("chunked", ["addheader X-Chunked yes"])
        half = len(data) // 2
        with self.inst.raw_session() as r:
            r.send("EHLO client.example\r\n")
            r.read_reply()
            # pipelined: the replies come in order although the milter answers later
            r.send("MAIL FROM:<%s>\r\nRCPT TO:<reject-rcpt@example.com>\r\n"
                   "RCPT TO:<someone@example.com>\r\n" % SENDER)
            replies = r.read_all_replies(3)
            self.assertEqual([c for c, _ in replies], [250, 550, 250])
            r.send(b"BDAT %d\r\n" % half + data[:half])
            self.assertEqual(r.read_reply()[0], 250)
            r.send(b"BDAT %d LAST\r\n" % (len(data) - half) + data[half:])
            code, lines = r.read_reply()
            self.assertEqual(code, 250, lines)
            r.send("QUIT\r\n")
        qid = lines[-1].split()[-1]
        q = self.inst.queued(qid)
        self.assertIn("X-Chunked: yes", header_lines(q["content"]))
        self.assertIn(b"Subject: chunked", q["content"])

    def test_data_refused_for_data_and_bdat(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail("reject-data@example.org")
            s.rcpt("someone@example.com")
            code, text = s.docmd("DATA")
            self.assertEqual((code, text.decode()), (554, "5.7.2 no data from this sender"))
        with self.inst.raw_session() as r:
            r.send("EHLO client.example\r\nMAIL FROM:<reject-data@example.org>\r\n"
                   "RCPT TO:<someone@example.com>\r\n")
            r.read_all_replies(3)
            r.send(b"BDAT 10 LAST\r\n0123456789QUIT\r\n")
            self.assertEqual(r.read_reply(), (554, ["554 5.7.2 no data from this sender"]))
            self.assertEqual(r.read_reply()[0], 221)
        self.assertEqual([e["event"] for e in self.read_events()].count("data"), 2)

    def test_rset_aborts(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail(SENDER)
            s.rcpt("someone@example.com")
            s.rset()
            s.noop()
        deadline = time.time() + 5
        while time.time() < deadline and "abort" not in [e["event"] for e in self.read_events()]:
            time.sleep(0.05)
        self.assertIn("abort", [e["event"] for e in self.read_events()])


# ---- the libmilter filter (tests/milter/test-milter.c) ----

C_MILTER = os.path.join(harness.BUILD, "tests", "milter", "test-milter")


@unittest.skipUnless(os.path.exists(C_MILTER), "tests/milter/test-milter is not built (make check builds it)")
class TestLibMilter(unittest.TestCase):
    """Two filters in a chain: the libmilter filter first, then the
    pymilter one when it is installed; the second sees the first's edits."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-cmilter-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.cport = harness.free_port()
        cls.cmilter = Process([C_MILTER, "inet:%d@127.0.0.1" % cls.cport])
        cls.addClassCleanup(cls.cmilter.stop)
        harness.wait_port(cls.cport)
        cls.inst = start_instance(cls, "cmilter", {
            "smtpd_milters": "{ inet:127.0.0.1:%d, command_timeout=10s }" % cls.cport,
            "milter_macro_daemon_name": "tern-c"})

    def send(self, subject, actions=(), rcpts=("someone@example.com",), extra=(), body=None):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail(SENDER)
            for r in rcpts:
                s.rcpt(r)
            kw = {"body": body} if body is not None else {}
            return s.data(message(subject, actions, extra=extra, **kw))

    def queued_after(self, reply):
        code, text = reply
        self.assertEqual(code, 250, text)
        return self.inst.queued(text.decode().split()[-1])

    def test_every_edit(self):
        q = self.queued_after(self.send(
            "c edits", ["addheader", "insheader", "chgheader", "delheader", "addrcpt", "addrcpt_par",
                        "delrcpt", "chgfrom", "replbody"],
            rcpts=("someone@example.com", "c-gone@example.com"), extra=["X-Delete-Me: yes"]))
        lines = header_lines(q["content"])
        self.assertEqual(lines[1], "X-C-Second: inserted at index 1")
        self.assertIn("Subject: changed by the C filter", lines)
        self.assertFalse([l for l in lines if l.startswith("X-Delete-Me")])
        self.assertEqual(lines[-2], "X-C-Added: by the C filter")
        seen = lines[-1]
        self.assertTrue(seen.startswith("X-C-Milter: j=tern.test daemon_name=tern-c "
                                        "client_addr=127.0.0.1 host=localhost body=14 "
                                        "from=<sender@example.org>"), seen)
        self.assertTrue(q["content"].endswith(b"\n\nbody replaced by the C filter\n"), q["content"])
        rcpts = {r[0]: r for r in q["recipients"]}
        self.assertEqual(sorted(rcpts), ["c-added@example.com", "c-param@example.com",
                                         "someone@example.com"])
        self.assertEqual(rcpts["c-param@example.com"][2], "NEVER")
        self.assertEqual(q["sender"], "c-sender@example.org")

    def test_unix_socket_relative_to_queue_directory(self):
        inst = harness.Instance("cunix")
        self.addCleanup(inst.cleanup)
        sockdir = os.path.join(inst.queue_dir, "milter")
        os.makedirs(sockdir, exist_ok=True)
        os.chmod(sockdir, 0o755)
        path = os.path.join(sockdir, "c.sock")
        proc = Process([C_MILTER, "unix:" + path])
        self.addCleanup(proc.stop)
        deadline = time.time() + 10
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.05)
        os.chmod(path, 0o666)
        inst.set_main_cf({"mynetworks": "127.0.0.1/32", "local_transport": "stall",
                          "default_transport": "stall", "relay_transport": "stall",
                          "relay_domains": "example.com", "smtpd_milters": "unix:milter/c.sock"})
        inst.stall_transport("stall")
        inst.start()
        with inst.smtp() as s:
            s.ehlo("client.example")
            s.mail(SENDER)
            s.rcpt("someone@example.com")
            code, text = s.data(message("over unix", ["addheader"]))
        self.assertEqual(code, 250, text)
        q = inst.queued(text.decode().split()[-1])
        self.assertIn("X-C-Added: by the C filter", header_lines(q["content"]))

    def test_skip_and_large_body(self):
        body = ("x" * 998 + "\r\n") * 200           # 200 kB: several body packets
        q = self.queued_after(self.send("c skip", ["skip"], body=body))
        seen = [l for l in header_lines(q["content"]) if l.startswith("X-C-Milter:")][0]
        self.assertIn(" body=65535 ", seen)          # one chunk, then SKIP
        self.assertIn(("x" * 998 + "\n").encode() * 3, q["content"])

    def test_replies(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail(SENDER)
            code, text = s.rcpt("c-reject@example.com")
            self.assertEqual((code, text.decode()), (550, "5.7.1 refused by the C filter\n5.7.1 second line"))
        code, text = self.send("c reject", ["reject"])
        self.assertEqual((code, text.decode()), (550, "5.7.0 C filter says no\n5.7.0 really no"))
        code, text = self.send("c tempfail", ["tempfail"])
        self.assertEqual(code, 451)
        code, text = self.send("c discard", ["discard"])
        self.assertEqual((code, text.decode()), (250, "2.0.0 Ok: discarded"))
        q = self.queued_after(self.send("c accept", ["accept", "addheader"]))
        self.assertFalse([l for l in header_lines(q["content"]) if l.startswith("X-C-")])
        q = self.queued_after(self.send("c progress", ["progress", "quarantine"]))
        self.assertEqual(q["dir"], "hold")
        self.inst.wait_log(r"milter-hold: END-OF-MESSAGE from localhost\[127.0.0.1\]: C filter quarantine")


# ---- non_smtpd_milters ----

SENDMAIL = os.path.join(harness.BUILD, "sendmail", "sendmail")


@unittest.skipUnless(have_module("Milter"), "python3-milter is not installed (tools/install-deps)")
@unittest.skipUnless(os.geteuid() == 0, "local submission as root")
class TestNonSmtpdMilters(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        start_pymilter(cls, "tern-milter-ns-")
        cls.inst = start_instance(cls, "msend", {
            "non_smtpd_milters": "inet:127.0.0.1:%d" % cls.mport})

    def submit(self, subject, actions=()):
        data = message(subject, actions).replace(b"\r\n", b"\n")
        r = subprocess.run([SENDMAIL, "-C", self.inst.dir, "-f", SENDER, "someone@example.com"],
                           input=data, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_edits_applied_to_local_submission(self):
        self.submit("local edits", ["addheader X-Local-Filter seen", "chgfrom <changed@example.org>",
                                    "addrcpt <extra@example.com>"])
        qid = self.inst.wait_log(r"(\w+): uid=0 from=<changed@example.org>").group(1)
        q = self.inst.queued(qid)
        self.assertIn("X-Local-Filter: seen", header_lines(q["content"]))
        self.assertEqual(sorted(r[0] for r in q["recipients"]),
                         ["extra@example.com", "someone@example.com"])
        with open(self.events) as f:
            ev = [json.loads(l) for l in f if l.strip()]
        conn = [e for e in ev if e["event"] == "connect"][-1]
        self.assertEqual(conn["hostname"], "localhost")
        self.assertIn("127.0.0.1", conn["hostaddr"])

    def test_discard_and_quarantine(self):
        self.submit("local discard", ["discard"])
        self.inst.wait_log(r"milter-discard: END-OF-MESSAGE: 250 2.0.0 Ok: discarded; "
                           r"from=<sender@example.org>")
        self.submit("local hold", ["quarantine held locally"])
        qid = self.inst.wait_log(r"(\w+): milter-hold: END-OF-MESSAGE from localhost\[127.0.0.1\]: "
                                 r"held locally").group(1)
        q = self.inst.queued(qid)
        self.assertEqual(q["dir"], "hold")
        self.assertEqual(q["attrs"].get("hold_reason"), "milter: held locally")

    def test_unreachable_milter_keeps_the_file(self):
        inst = start_instance(self, "msdead", {
            "non_smtpd_milters": "inet:127.0.0.1:%d" % harness.free_port()})
        data = message("kept").replace(b"\r\n", b"\n")
        r = subprocess.run([SENDMAIL, "-C", inst.dir, "-f", SENDER, "someone@example.com"],
                           input=data, capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        inst.wait_log(r"maildrop file \w+: milter: CONNECT: 451 4.7.1 Service unavailable - try again "
                      r"later; trying again later")
        inst.wait_log(r"milter inet:127.0.0.1:\d+: connect: .*; default_action=tempfail")
        self.assertEqual(len(os.listdir(os.path.join(inst.queue_dir, "maildrop"))), 1)
        self.assertEqual(inst.queue_ids("active") + inst.queue_ids("incoming"), [])


# ---- filters that fail ----

class FakeMilter(servers.Server):
    """A milter in raw protocol: negotiates (version 6, no actions, no
    protocol flags), answers CONTINUE, and at the command `at` does `how`:
    "hang" (never answers), "close" (closes the connection), "garbage"
    (an unknown reply code), "edit" (a header edit at the wrong time),
    "reject", "shutdown" or "accept"."""

    def __init__(self, at, how, match=None):
        self.at, self.how, self.match = at.encode(), how, match
        super().__init__(backlog=16)

    def read_packet(self, conn):
        head = self.recv_exactly(conn, 4)
        if head is None:
            return None
        (n,) = struct.unpack(">I", head)
        return self.recv_exactly(conn, n)

    @staticmethod
    def packet(cmd, data=b""):
        return struct.pack(">I", len(data) + 1) + cmd + data

    def handle(self, conn):
        conn.settimeout(60)
        try:
            while True:
                pkt = self.read_packet(conn)
                if pkt is None:
                    return
                cmd = pkt[:1]
                if cmd == b"O":
                    conn.sendall(self.packet(b"O", struct.pack(">III", 6, 0, 0)))
                    continue
                if cmd in (b"D", b"A", b"Q", b"K"):
                    if cmd == b"Q":
                        return
                    continue
                if cmd == self.at and (self.match is None or self.match in pkt):
                    if self.how == "hang":
                        self.stopping.wait(30)
                        return
                    if self.how == "close":
                        return
                    if self.how == "garbage":
                        conn.sendall(self.packet(b"Z", b"nonsense"))
                        continue
                    if self.how == "edit":
                        conn.sendall(self.packet(b"h", b"X-Early\0no\0"))
                        continue
                    if self.how == "reject":
                        conn.sendall(self.packet(b"r"))
                        continue
                    if self.how == "shutdown":
                        conn.sendall(self.packet(b"4"))
                        continue
                    if self.how == "accept":
                        conn.sendall(self.packet(b"a"))
                        continue
                conn.sendall(self.packet(b"c"))
        except OSError:
            return
        finally:
            conn.close()


class TestFailingMilters(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.hang = FakeMilter("E", "hang")
        cls.close = FakeMilter("B", "close")
        cls.garbage = FakeMilter("R", "garbage")
        cls.early = FakeMilter("M", "edit")
        cls.refuse_conn = FakeMilter("C", "reject")
        cls.shutdown = FakeMilter("M", "shutdown")
        cls.slow_rcpt = FakeMilter("R", "hang", match=b"slow@")
        cls.accept_eom = FakeMilter("E", "accept")
        cls.accept_header = FakeMilter("L", "accept")
        cls.reject_eom = FakeMilter("E", "reject")
        for m in (cls.hang, cls.close, cls.garbage, cls.early, cls.refuse_conn, cls.shutdown,
                  cls.slow_rcpt, cls.accept_eom, cls.accept_header, cls.reject_eom):
            cls.addClassCleanup(m.stop)
        cls.dead_port = harness.free_port()

    def run_with(self, name, milters, subject, default="tempfail"):
        inst = harness.Instance(name)
        self.addCleanup(inst.cleanup)
        inst.set_main_cf({"mynetworks": "127.0.0.1/32", "local_transport": "stall",
                          "default_transport": "stall", "relay_transport": "stall",
                          "relay_domains": "example.com",
                          "smtpd_milters": milters, "milter_default_action": default})
        inst.stall_transport("stall")
        inst.start()
        with inst.smtp() as s:
            s.ehlo("client.example")
            code, text = s.mail(SENDER)
            if code != 250:
                return inst, ("MAIL", code, text.decode())
            code, text = s.rcpt("someone@example.com")
            if code != 250:
                return inst, ("RCPT", code, text.decode())
            code, text = s.data(message(subject))
            return inst, ("DATA", code, text.decode())

    def test_hang_times_out_to_tempfail(self):
        t0 = time.time()
        inst, (stage, code, text) = self.run_with(
            "mhang", "{ inet:127.0.0.1:%d, content_timeout=2s }" % self.hang.port, "hang")
        self.assertEqual((stage, code, text), ("DATA", 451, "4.7.1 Service unavailable - try again later"))
        self.assertLess(time.time() - t0, 15)
        inst.wait_log(r"warning: milter inet:127.0.0.1:%d: read reply: "
                      r"timeout; default_action=tempfail \(localhost\[127.0.0.1\]\)" % self.hang.port)
        self.assertEqual(inst.queue_ids("active") + inst.queue_ids("incoming"), [])

    def test_waiting_session_does_not_block_others(self):
        inst = harness.Instance("mblock")
        self.addCleanup(inst.cleanup)
        inst.set_main_cf({"mynetworks": "127.0.0.1/32", "local_transport": "stall",
                          "default_transport": "stall", "relay_transport": "stall",
                          "relay_domains": "example.com",
                          "smtpd_milters": "{ inet:127.0.0.1:%d, command_timeout=4s }" % self.slow_rcpt.port})
        inst.stall_transport("stall")
        inst.start()
        with inst.raw_session() as slow:
            slow.send("EHLO client.example\r\nMAIL FROM:<%s>\r\nRCPT TO:<slow@example.com>\r\n" % SENDER)
            slow.read_all_replies(2)
            t0 = time.time()
            with inst.smtp() as s:          # meanwhile, a whole message in another session
                s.ehlo("client.example")
                s.sendmail(SENDER, ["fast@example.com"], message("fast"))
            self.assertLess(time.time() - t0, 3)
            code, _ = slow.read_reply(timeout=10)
            self.assertEqual(code, 451)
        pids = set(re.findall(r"smtpd\[(\d+)\]: connect from", inst.log_text()))
        self.assertEqual(len(pids), 1, "both sessions were not served by one smtpd")

    def test_client_gone_while_milter_busy(self):
        inst = harness.Instance("mgone")
        self.addCleanup(inst.cleanup)
        inst.set_main_cf({"mynetworks": "127.0.0.1/32", "relay_domains": "example.com",
                          "smtpd_milters": "{ inet:127.0.0.1:%d, content_timeout=1s }" % self.hang.port})
        inst.start()
        for _ in range(3):
            with inst.raw_session() as r:
                r.send("EHLO client.example\r\nMAIL FROM:<%s>\r\nRCPT TO:<someone@example.com>\r\n"
                       "DATA\r\n" % SENDER)
                r.read_all_replies(4)
                r.send(message("gone") + b".\r\n")
        inst.wait_log(r"(?s)(default_action=tempfail.*){3}")
        inst.wait_log(r"(?s)(disconnect from localhost.*){3}")
        self.assertEqual(inst.queue_ids("incoming") + inst.queue_ids("active"), [])

    def test_accept_does_not_hide_message_from_next_filter(self):
        """A filter that accepts the message, at its end or at a header,
        is done with it; the next one still sees all of it and refuses."""
        for first, name in ((self.accept_eom, "macceptend"), (self.accept_header, "macccepthdr")):
            inst, (stage, code, text) = self.run_with(
                name, "inet:127.0.0.1:%d, inet:127.0.0.1:%d" % (first.port, self.reject_eom.port),
                "accepted then refused")
            self.assertEqual((stage, code, text), ("DATA", 550, "5.7.1 Command rejected"))

    def test_close_mid_message_accepts(self):
        inst, (stage, code, text) = self.run_with(
            "mclose", "{ inet:127.0.0.1:%d, default_action=accept }" % self.close.port, "closed")
        self.assertEqual((stage, code), ("DATA", 250), text)
        qid = text.split()[-1]
        self.assertIn(b"Subject: closed", inst.queued(qid)["content"])
        inst.wait_log(r"milter inet:127.0.0.1:%d: read reply: connection closed by the filter; "
                      r"default_action=accept" % self.close.port)

    def test_garbage_rejects(self):
        inst, (stage, code, text) = self.run_with(
            "mgarbage", "inet:127.0.0.1:%d" % self.garbage.port, "garbage", default="reject")
        self.assertEqual((stage, code, text), ("RCPT", 550, "5.5.0 Service unavailable"))
        inst.wait_log(r"milter inet:127.0.0.1:%d: bad reply packet \(code 0x5a\): unknown reply code; "
                      r"default_action=reject" % self.garbage.port)

    def test_unreachable_quarantines(self):
        inst, (stage, code, text) = self.run_with(
            "mdead", "inet:127.0.0.1:%d" % self.dead_port, "dead", default="quarantine")
        self.assertEqual((stage, code), ("DATA", 250), text)
        qid = text.split()[-1]
        self.assertEqual(inst.queued(qid)["dir"], "hold")
        inst.wait_log(r"milter inet:127.0.0.1:%d: connect: .*; default_action=quarantine" % self.dead_port)

    def test_garbage_with_shutdown(self):
        inst, (stage, code, text) = self.run_with(
            "mgshut", "{ inet:127.0.0.1:%d, default_action=shutdown }" % self.garbage.port, "x")
        self.assertEqual((stage, code, text), ("RCPT", 421, "4.7.1 Service unavailable - try again later"))
        inst.wait_log(r"default_action=shutdown")

    def test_edit_outside_eom_and_chain(self):
        # the first filter breaks at MAIL (tempfail), the second is never asked
        inst, (stage, code, text) = self.run_with(
            "mearly", "inet:127.0.0.1:%d, inet:127.0.0.1:%d" % (self.early.port, self.close.port),
            "early")
        self.assertEqual((stage, code), ("MAIL", 451), text)
        inst.wait_log(r"modification request 'h' outside end of message; default_action=tempfail")

    def test_connect_reject_and_shutdown(self):
        inst = harness.Instance("mconn")
        self.addCleanup(inst.cleanup)
        inst.set_main_cf({"mynetworks": "127.0.0.1/32",
                          "smtpd_milters": "inet:127.0.0.1:%d" % self.refuse_conn.port})
        inst.start()
        with inst.raw_session() as r:       # the greeting comes first, then every command is refused
            r.send("EHLO client.example\r\n")
            self.assertEqual(r.read_reply(), (554, ["554 5.7.1 Command rejected"]))
            r.send("MAIL FROM:<a@example.org>\r\nNOOP\r\nQUIT\r\n")
            self.assertEqual([c for c, _ in r.read_all_replies(3)], [554, 250, 221])
        inst.wait_log(r"NOQUEUE: milter-reject: CONNECT from localhost\[127.0.0.1\]: 554 5.7.1 "
                      r"Command rejected; from=<> to=<> proto=SMTP")
        inst2 = harness.Instance("mshut")
        self.addCleanup(inst2.cleanup)
        inst2.set_main_cf({"mynetworks": "127.0.0.1/32",
                           "smtpd_milters": "inet:127.0.0.1:%d" % self.shutdown.port})
        inst2.start()
        with inst2.raw_session() as r:
            r.send("EHLO client.example\r\n")
            r.read_reply()
            r.send("MAIL FROM:<a@example.org>\r\n")
            self.assertEqual(r.read_reply()[0], 421)
            with self.assertRaises(EOFError):
                r.read_reply()

    def test_bad_configuration(self):
        inst = harness.Instance("mbadcf")
        self.addCleanup(inst.cleanup)
        for value, why in [("{ inet:127.0.0.1:1, bogus=1 }", "bad setting bogus=1"),
                           ("tcp:127.0.0.1:1", "expected unix:path or inet:host:port"),
                           ("{ inet:127.0.0.1:1, default_action=maybe }", "bad setting default_action"),
                           ("{ inet:127.0.0.1:1", "missing '}'")]:
            inst.set_main_cf({"smtpd_milters": value})
            r = inst.tern("check", check=False)
            self.assertNotEqual(r.returncode, 0, value)
            self.assertIn("smtpd_milters: milter", r.stdout + r.stderr)
            self.assertIn(why, r.stdout + r.stderr)
        inst.set_main_cf({"smtpd_milters": "", "milter_protocol": "7"})
        r = inst.tern("check", check=False)
        self.assertIn("milter_protocol: 7 is not between 2 and 6", r.stdout + r.stderr)
        inst.set_main_cf({"milter_protocol": "6", "non_smtpd_milters": "inet:nowhere"})
        r = inst.tern("check", check=False)
        self.assertIn("non_smtpd_milters: milter inet:nowhere", r.stdout + r.stderr)
        inst.set_main_cf({"non_smtpd_milters": "{ unix:private/m, protocol=4, command_timeout=5m }"})
        self.assertEqual(inst.tern("check", check=False).returncode, 0)


# ---- OpenDKIM ----

OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"
GENKEY = shutil.which("opendkim-genkey") or "/usr/sbin/opendkim-genkey"


@unittest.skipUnless(os.path.exists(OPENDKIM) and os.path.exists(GENKEY) and have_module("dkim"),
                     "opendkim, opendkim-tools or python3-dkim is not installed (tools/install-deps)")
class TestOpenDkim(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-dkim-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        subprocess.run([GENKEY, "-D", cls.tmp, "-d", "example.org", "-s", "sel"], check=True)
        key = os.path.join(cls.tmp, "sel.private")
        os.chmod(cls.tmp, 0o755)
        os.chmod(key, 0o600)
        cls.mport = harness.free_port()
        conf = os.path.join(cls.tmp, "opendkim.conf")
        with open(conf, "w") as f:
            f.write("Domain example.org\nSelector sel\nKeyFile %s\nSocket inet:%d@127.0.0.1\n"
                    "Mode sv\nCanonicalization relaxed/simple\nBackground no\nSyslog no\n"
                    "RequireSafeKeys false\nUMask 007\nPidFile %s/opendkim.pid\nUserID %s\n"
                    % (key, cls.mport, cls.tmp, "root"))
        cls.dkimd = Process([OPENDKIM, "-f", "-x", conf])
        cls.addClassCleanup(cls.dkimd.stop)
        harness.wait_port(cls.mport)
        with open(os.path.join(cls.tmp, "sel.txt")) as f:
            txt = f.read()
        cls.dns_txt = "".join(part for part in txt.split('"')[1::2]).encode()
        cls.sink = sinkmod.Sink()
        cls.addClassCleanup(cls.sink.stop)
        cls.inst = harness.Instance("dkim", master_cf_extra=["smtp unix - - n - - smtp",
                                                             "relay unix - - n - - smtp"])
        cls.addClassCleanup(cls.inst.cleanup)
        cls.inst.set_main_cf({"mynetworks": "127.0.0.1/32",
                              "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
                              "smtpd_milters": "inet:127.0.0.1:%d" % cls.mport,
                              "milter_default_action": "tempfail"})
        cls.inst.start()

    def test_signed_and_verified(self):
        import dkim
        body = "A signed message.\r\n\r\nWith two paragraphs.\r\n"
        data = ("From: Sender <sender@example.org>\r\nTo: <someone@remote.example>\r\n"
                "Subject: dkim test\r\nDate: Fri, 04 Dec 2026 12:00:00 +0000\r\n"
                "Message-ID: <dkim-1@example.org>\r\n\r\n" + body).encode()
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail("sender@example.org", ["someone@remote.example"], data)
        msgs = self.sink.wait(1)
        raw = msgs[0][2]
        self.assertIn(b"DKIM-Signature:", raw)

        def dnsfunc(name, timeout=5):
            self.assertEqual(name, b"sel._domainkey.example.org.")
            return self.dns_txt
        self.assertTrue(dkim.verify(raw, dnsfunc=dnsfunc))
        # a changed body no longer verifies: the check can fail
        self.assertFalse(dkim.verify(raw.replace(b"two paragraphs", b"three paragraphs"),
                                     dnsfunc=dnsfunc))


if __name__ == "__main__":
    unittest.main()
