"""test_content_checks.py: header_checks, mime_header_checks,
nested_header_checks and body_checks (header_checks(5)) in cleanup, with
pcre tables written here and real MIME messages (multipart/mixed with a
text part, a base64 attachment and an attached message/rfc822, folded
headers) sent through smtpd and delivered to a real SMTP server: REJECT
(5xx, nothing queued), WARN (logged, delivered), HOLD (queue/hold, not
delivered), DISCARD (250, never delivered), IGNORE, REPLACE and PREPEND (as
the destination sees the message), FILTER (another transport and next
hop), REDIRECT (one delivery, to the new address), BCC, which class of header
each table sees, body_checks_size_limit per body segment, and a broken
table that defers (451) instead of letting mail through unchecked."""
import os
import smtplib
import time
import unittest
from email.mime.application import MIMEApplication
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
import email.policy

import harness
import sink as sinkmod

SENDER = "sender@example.org"
RCPT = "someone@remote.example"

HEADER_CHECKS = r"""
# primary headers (header_checks)
/^Subject: .*reject-me/          REJECT spam detected
/^Subject: .*coded-reject/       REJECT 5.7.9 we do not want it
/^Subject: .*warn-me/            WARN looks odd
/^Subject: .*hold-me/            HOLD held for review
/^Subject: .*discard-me/         DISCARD dropped here
/^X-Remove-Me:/                  IGNORE
/^Subject: (.*)replace-me(.*)$/  REPLACE Subject: [replaced]$1$2
/^Subject: .*prepend-me/         PREPEND X-Tagged: yes
/^Subject: .*filter-me/          FILTER filter:[127.0.0.1]:%(filter_port)d
/^Subject: .*redirect-me/        REDIRECT boss@redirect.example
/^Subject: .*bcc-me/             BCC audit@remote.example
/^Subject: folded start\n[ \t]+folded-reject/ REJECT folded header
"""

MIME_HEADER_CHECKS = r"""
/^Content-Type: application\/x-evil/  REJECT evil attachment
/^Subject: .*mime-only/               REJECT mime_header_checks saw a Subject
"""

NESTED_HEADER_CHECKS = r"""
/^Subject: .*nested-bad/   REJECT nested subject
"""

BODY_CHECKS = r"""
/^body-reject-line$/   REJECT body rule
/^body-ignore-line$/   IGNORE
"""

AGENTS = ["smtp unix - - n - - smtp", "relay unix - - n - - smtp",
          "filter unix - - n - - smtp"]


def smtp_agent_built():
    return os.path.exists(os.path.join(harness.LIBEXEC, "smtp"))


def write_table(inst, name, text):
    path = os.path.join(inst.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return "pcre:" + path


def crlf(msg):
    return msg.as_bytes(policy=email.policy.SMTP)


def mime_message(subject, seq, attachment_subtype="octet-stream",
                 inner_subject="inner message", text="hello\n", text2=None):
    """multipart/mixed: a text part (and another one after it when text2 is
    given), a base64 application/SUBTYPE attachment, and an attached message
    with its own headers."""
    outer = MIMEMultipart()
    outer["Subject"] = subject
    outer["From"] = SENDER
    outer["To"] = RCPT
    outer["X-Seq"] = seq
    outer.attach(MIMEText(text))
    if text2 is not None:
        outer.attach(MIMEText(text2))
    outer.attach(MIMEApplication(b"\x00\x01binary payload\xff" * 40, _subtype=attachment_subtype))
    inner = MIMEText("inner body\n")
    inner["Subject"] = inner_subject
    inner["From"] = "inner@example.net"
    outer.attach(MIMEMessage(inner))
    return crlf(outer)


@unittest.skipUnless(smtp_agent_built(), "the smtp delivery agent is not built")
class TestContentChecks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = sinkmod.Sink()
        cls.addClassCleanup(cls.sink.stop)
        cls.filter_sink = sinkmod.Sink()
        cls.addClassCleanup(cls.filter_sink.stop)
        inst = harness.Instance("chk", master_cf_extra=AGENTS)
        cls.addClassCleanup(inst.cleanup)
        inst.set_main_cf({
            "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
            "header_checks": write_table(inst, "header_checks",
                                         HEADER_CHECKS % {"filter_port": cls.filter_sink.port}),
            "mime_header_checks": write_table(inst, "mime_header_checks", MIME_HEADER_CHECKS),
            "nested_header_checks": write_table(inst, "nested_header_checks", NESTED_HEADER_CHECKS),
            "body_checks": write_table(inst, "body_checks", BODY_CHECKS),
            "body_checks_size_limit": "2000",
            "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
        })
        inst.start()
        cls.inst = inst

    # ---- helpers ----
    def send(self, data, rcpts=(RCPT,)):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            return s.sendmail(SENDER, list(rcpts), data)

    def refused(self, data):
        """The (code, text) smtpd answered at the end of DATA."""
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail(SENDER, [RCPT], data)
        return cm.exception.smtp_code, cm.exception.smtp_error.decode()

    def delivered(self, seq, sink=None, timeout=20):
        """The (mail_from, rcpts, data) a sink received with X-Seq: seq."""
        sink = sink or self.sink
        marker = ("X-Seq: %s\r\n" % seq).encode()
        deadline = time.time() + timeout
        while time.time() < deadline:
            for m in list(sink.handler.messages):
                if marker in m[2]:
                    return m
            time.sleep(0.05)
        raise AssertionError("no message %s at the sink; log:\n%s" % (seq, self.inst.log_tail()))

    def not_delivered(self, seq, wait=2.0):
        time.sleep(wait)
        marker = ("X-Seq: %s\r\n" % seq).encode()
        for sink in (self.sink, self.filter_sink):
            self.assertFalse([m for m in sink.handler.messages if marker in m[2]],
                             "message %s was delivered" % seq)

    def simple(self, subject, seq, extra=b"", body=b"body text\r\n"):
        return (b"Subject: " + subject.encode() + b"\r\nX-Seq: " + seq.encode() + b"\r\n"
                + extra + b"\r\n" + body)

    def assert_nothing_queued(self):
        self.assertEqual(self.inst.queue_ids("incoming"), [])
        self.assertEqual(self.inst.temp_files(), [])

    # ---- header_checks actions ----
    def test_reject_answers_5xx_and_queues_nothing(self):
        code, text = self.refused(mime_message("please reject-me", "rej-1"))
        self.assertEqual(code, 550)
        self.assertEqual(text, "5.7.1 spam detected")
        self.inst.wait_log(r"\w+: reject: header Subject: please reject-me "
                           r"from [^;]*\[127\.0\.0\.1\]; from=<sender@example\.org> "
                           r"to=<someone@remote\.example> proto=ESMTP helo=<client\.example>: "
                           r"5\.7\.1 spam detected")
        self.assert_nothing_queued()
        self.not_delivered("rej-1", wait=0.5)

    def test_reject_with_own_code_and_folded_header(self):
        code, text = self.refused(self.simple("coded-reject", "rej-2"))
        self.assertEqual((code, text), (550, "5.7.9 we do not want it"))
        folded = (b"Subject: folded start\r\n\tfolded-reject\r\nX-Seq: rej-3\r\n\r\nbody\r\n")
        code, text = self.refused(folded)
        self.assertEqual((code, text), (550, "5.7.1 folded header"))
        self.assert_nothing_queued()

    def test_warn_logs_and_delivers(self):
        self.send(self.simple("warn-me please", "warn-1"))
        self.delivered("warn-1")
        self.inst.wait_log(r"\w+: warning: header Subject: warn-me please from [^;]*; "
                           r"from=<sender@example\.org> to=<someone@remote\.example>.*: looks odd")

    def test_hold_keeps_message_in_hold_queue(self):
        self.send(mime_message("hold-me now", "hold-1"))
        qid = self.inst.wait_log(r"(\w+): hold: header Subject: hold-me now from .*: held for review").group(1)
        self.assertIn(qid, self.inst.queue_ids("hold"))
        msg = harness.read_queue_file(os.path.join(self.inst.queue_dir, "hold", qid))
        self.assertTrue(msg["complete"])
        self.assertIn(b"X-Seq: hold-1", msg["content"])
        self.assertEqual([r[0] for r in msg["recipients"]], [RCPT])    # after the content
        self.not_delivered("hold-1")
        self.assertIn(qid, self.inst.queue_ids("hold"))
        self.assertIn(RCPT, self.inst.tern("show", qid).stdout)
        self.inst.tern("release", qid)                  # and then it goes its way
        self.delivered("hold-1")

    def test_discard_answers_250_and_delivers_nothing(self):
        errors = self.send(self.simple("discard-me", "disc-1"))
        self.assertEqual(errors, {})
        qid = self.inst.wait_log(r"(\w+): discard: header Subject: discard-me from .*: dropped here").group(1)
        self.not_delivered("disc-1")
        for sub in ("incoming", "active", "deferred", "hold"):
            self.assertNotIn(qid, self.inst.queue_ids(sub))
        self.assertEqual(self.inst.temp_files(), [])

    def test_ignore_replace_prepend_change_delivered_headers(self):
        self.send(self.simple("please replace-me now", "edit-1",
                              extra=b"X-Remove-Me: secret\r\n X-folded: continuation\r\nX-Keep: 1\r\n"))
        data = self.delivered("edit-1")[2]
        self.assertNotIn(b"X-Remove-Me", data)
        self.assertNotIn(b"continuation", data)
        self.assertIn(b"X-Keep: 1\r\n", data)
        self.assertIn(b"\r\nSubject: [replaced]please  now\r\n", data)
        self.assertNotIn(b"replace-me", data)
        self.send(self.simple("prepend-me", "edit-2"))
        data = self.delivered("edit-2")[2]
        self.assertIn(b"\r\nX-Tagged: yes\r\nSubject: prepend-me\r\n", data)
        self.inst.wait_log(r"\w+: replace: header Subject: please replace-me now from .*: "
                           r"Subject: \[replaced\]please  now")
        self.inst.wait_log(r"\w+: prepend: header Subject: prepend-me from .*: X-Tagged: yes")

    def test_filter_routes_to_other_transport_and_next_hop(self):
        self.send(self.simple("filter-me", "filt-1"))
        mail_from, rcpts, _ = self.delivered("filt-1", sink=self.filter_sink)
        self.assertEqual(rcpts, [RCPT])
        self.assertFalse([m for m in self.sink.handler.messages if b"X-Seq: filt-1" in m[2]])
        qid = self.inst.wait_log(r"(\w+): filter: header Subject: filter-me from .*: "
                                 r"filter:\[127\.0\.0\.1\]:%d" % self.filter_sink.port).group(1)
        self.inst.wait_log(r"%s: to=<someone@remote\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d"
                           % (qid, self.filter_sink.port))

    def test_redirect_delivers_to_the_new_address_only(self):
        self.send(self.simple("redirect-me", "redir-1"),
                  rcpts=("a@remote.example", "b@remote.example", "c@elsewhere.example"))
        _, rcpts, _ = self.delivered("redir-1")
        self.assertEqual(rcpts, ["boss@redirect.example"])
        qid = self.inst.wait_log(r"(\w+): redirect: header Subject: redirect-me from .*"
                                 r"to=<a@remote\.example>.*: boss@redirect\.example").group(1)
        self.inst.wait_log(r"%s: removed" % qid)
        time.sleep(0.5)
        self.assertEqual(len([m for m in self.sink.handler.messages if b"X-Seq: redir-1" in m[2]]), 1)

    def test_bcc_adds_a_recipient(self):
        self.send(self.simple("bcc-me", "bcc-1"))
        _, rcpts, _ = self.delivered("bcc-1")
        self.assertEqual(sorted(rcpts), ["audit@remote.example", RCPT])
        self.inst.wait_log(r"\w+: bcc: header Subject: bcc-me from .*: audit@remote\.example")

    # ---- which table sees what ----
    def test_mime_header_checks_see_attachment_content_type_not_primary_subject(self):
        # the primary Subject "mime-only" goes to header_checks only
        self.send(mime_message("mime-only subject", "mime-1"))
        self.delivered("mime-1")
        code, text = self.refused(mime_message("innocent", "mime-2", attachment_subtype="x-evil"))
        self.assertEqual((code, text), (550, "5.7.1 evil attachment"))
        self.inst.wait_log(r"reject: header Content-Type: application/x-evil from .*: 5\.7\.1 evil attachment")

    def test_nested_header_checks_see_the_attached_message_subject(self):
        self.send(self.simple("nested-bad but primary", "nest-1"))
        self.delivered("nest-1")
        code, text = self.refused(mime_message("innocent", "nest-2", inner_subject="nested-bad inside"))
        self.assertEqual((code, text), (550, "5.7.1 nested subject"))
        self.assert_nothing_queued()

    def test_body_checks_in_a_part_and_within_the_size_limit(self):
        # a body line of the text part is inspected
        code, text = self.refused(mime_message("body test", "body-1", text="one\nbody-reject-line\ntwo\n"))
        self.assertEqual((code, text), (550, "5.7.1 body rule"))
        self.inst.wait_log(r"reject: body body-reject-line from .*: 5\.7\.1 body rule")
        # beyond body_checks_size_limit (2000) of its segment, a line is not inspected
        filler = b"".join(b"filler line %04d .........................................\r\n" % i
                          for i in range(60))
        self.send(self.simple("late body", "body-2", body=filler + b"body-reject-line\r\n"))
        self.assertIn(b"body-reject-line", self.delivered("body-2")[2])
        # the limit counts per body segment: each part starts again at 0
        long_text = ("x" * 60 + "\n") * 50
        code, text = self.refused(mime_message("second part", "body-3", text=long_text,
                                               text2="body-reject-line\n"))
        self.assertEqual((code, text), (550, "5.7.1 body rule"))
        self.send(mime_message("late in part", "body-5", text=long_text + "body-ignore-line\n"))
        self.assertIn(b"body-ignore-line", self.delivered("body-5")[2])
        # IGNORE removes the line
        self.send(mime_message("ignore early", "body-4", text="a\nbody-ignore-line\nb\n"))
        data = self.delivered("body-4")[2]
        self.assertNotIn(b"body-ignore-line", data)
        self.assertIn(b"a\r\nb\r\n", data)


@unittest.skipUnless(smtp_agent_built(), "the smtp delivery agent is not built")
class TestBrokenTable(unittest.TestCase):
    def test_broken_table_defers(self):
        sink = sinkmod.Sink()
        self.addCleanup(sink.stop)
        inst = harness.Instance("chkbad", master_cf_extra=AGENTS)
        self.addCleanup(inst.cleanup)
        inst.set_main_cf({
            "relayhost": "[127.0.0.1]:%d" % sink.port,
            "header_checks": write_table(inst, "bad_checks", "/unterminated REJECT x\n"),
        })
        inst.start()
        with inst.smtp() as s:
            s.ehlo("client.example")
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail(SENDER, [RCPT], b"Subject: anything\r\n\r\nbody\r\n")
        self.assertEqual(cm.exception.smtp_code, 451)
        self.assertTrue(cm.exception.smtp_error.decode().startswith("4.3.0"))
        inst.wait_log(r"header_checks: .*bad_checks.*mail that it would inspect is deferred")
        inst.wait_log(r"\w+: header_checks map lookup problem -- message not accepted, try again later")
        self.assertEqual(inst.queue_ids("incoming"), [])
        time.sleep(1)
        self.assertEqual(sink.handler.messages, [])


if __name__ == "__main__":
    unittest.main()
