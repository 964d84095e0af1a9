"""test_delivery.py: the whole path from smtpd through qmgr and the smtp
delivery agent to a real remote SMTP server: content arrives byte for byte
(apart from the added headers), a 5xx comes back to the sender as an RFC
3464 bounce with the remote server's own words, a 4xx is retried until it
succeeds, and the queue is empty at the end."""
import email
import email.policy
import os
import re
import subprocess
import threading
import time
import unittest

import harness
import sink as sinkmod

AGENTS = ["smtp unix - - n - - smtp", "relay unix - - n - - smtp"]


def smtp_agent_built():
    return os.path.exists(os.path.join(harness.LIBEXEC, "smtp"))


@unittest.skipUnless(smtp_agent_built(), "the smtp delivery agent is not built")
class TestRelayDelivery(unittest.TestCase):
    def setUp(self):
        self.sink = sinkmod.Sink()
        self.addCleanup(self.sink.stop)
        self.inst = harness.Instance("dlv", master_cf_extra=AGENTS, main_cf={
            "relayhost": "[127.0.0.1]:%d" % self.sink.port,
            "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
        })
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def send(self, rcpts, body, sender="sender@example.org"):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail(sender, rcpts, body)

    def test_content_arrives_intact(self):
        body = (b"Subject: relay test\r\nMessage-ID: <m1@example.org>\r\n\r\n"
                b"line one\r\n.starts with a dot\r\n..two dots\r\n\xc3\xa9 8-bit\r\nlast line\r\n")
        self.send(["someone@remote.example"], body)
        mail_from, rcpts, data = self.sink.wait(1)[0]
        self.assertEqual(mail_from, "sender@example.org")
        self.assertEqual(rcpts, ["someone@remote.example"])
        self.assertTrue(data.startswith(b"Received: from client.example"), data[:200])
        # everything after our Received: header is the original, byte for byte
        self.assertTrue(data.endswith(body), data)
        qid = self.inst.wait_log(r"(\w+): to=<someone@remote.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*"
                                 r"dsn=2\.0\.0, status=sent" % self.sink.port).group(1)
        self.inst.wait_log(r"%s: removed" % qid)
        self.inst.wait_empty()

    def test_bounce_carries_remote_reply(self):
        self.sink.handler.reject_rcpts.add("nobody@remote.example")
        self.send(["nobody@remote.example", "ok@remote.example"], b"Subject: partly\r\n\r\nhello\r\n")
        msgs = self.sink.wait(2)
        by_sender = {m[0]: m for m in msgs}
        self.assertIn("sender@example.org", by_sender)
        self.assertEqual(by_sender["sender@example.org"][1], ["ok@remote.example"])
        bounce = by_sender.get("") or by_sender.get("<>")
        self.assertIsNotNone(bounce, "no bounce with the null sender: %r" % [m[0] for m in msgs])
        self.assertEqual(bounce[1], ["sender@example.org"])
        dsn = email.message_from_bytes(bounce[2], policy=email.policy.compat32)
        self.assertEqual(dsn.get_content_type(), "multipart/report")
        self.assertEqual(dsn.get_param("report-type"), "delivery-status")
        parts = dsn.get_payload()
        status = [p for p in parts if p.get_content_type() == "message/delivery-status"][0]
        blocks = status.get_payload()
        fields = {}
        for block in blocks:
            for k, v in block.items():
                fields.setdefault(k.lower(), v)
        self.assertIn("dns;", fields["reporting-mta"])
        self.assertIn("nobody@remote.example", fields["final-recipient"])
        self.assertEqual(fields["action"], "failed")
        self.assertTrue(fields["status"].startswith("5."), fields)
        self.assertIn("Recipient address rejected: no such user here", fields["diagnostic-code"])
        self.assertIn("smtp;", fields["diagnostic-code"])
        original = parts[-1]
        self.assertIn(original.get_content_type(), ("message/rfc822", "text/rfc822-headers"))
        self.assertIn("Subject: partly", original.as_string())
        self.inst.wait_empty()

    def test_tempfail_is_retried(self):
        self.sink.handler.tempfail_first = 2
        self.send(["later@remote.example"], b"Subject: retry\r\n\r\nbody\r\n")
        self.inst.wait_log(r"to=<later@remote.example>.*status=deferred.*try again later", timeout=20)
        self.sink.wait(1, timeout=30)
        self.inst.wait_log(r"to=<later@remote.example>.*status=sent", timeout=10)
        self.inst.wait_empty(30)
        self.assertGreaterEqual(self.sink.handler.attempts, 3)


@unittest.skipUnless(smtp_agent_built(), "the smtp delivery agent is not built")
class TestLoadAndCrash(unittest.TestCase):
    def setUp(self):
        self.sink = sinkmod.Sink()
        self.addCleanup(self.sink.stop)
        self.inst = harness.Instance("load", main_cf={
            "relayhost": "[127.0.0.1]:%d" % self.sink.port,
            "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
        })
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def test_200_sessions_of_5_messages_exactly_once(self):
        errors = []

        def session(n):
            try:
                with self.inst.smtp() as s:
                    s.ehlo("client%d.example" % n)
                    for k in range(5):
                        s.sendmail("s%d@example.org" % n, ["r%d-%d@remote.example" % (n, k)],
                                   b"Subject: load %d %d\r\nX-Seq: %d-%d\r\n\r\nbody\r\n" % (n, k, n, k))
            except Exception as e:          # noqa: BLE001 - reported below
                errors.append("%d: %r" % (n, e))

        threads = [threading.Thread(target=session, args=(n,)) for n in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        msgs = self.sink.wait(1000, timeout=120)
        time.sleep(1)
        seqs = [re.search(rb"X-Seq: (\d+-\d+)", m[2]).group(1) for m in self.sink.handler.messages]
        self.assertEqual(len(seqs), 1000, "duplicates or losses")
        self.assertEqual(len(set(seqs)), 1000)
        self.assertEqual({m[1][0] for m in msgs}, {"r%d-%d@remote.example" % (n, k)
                                                  for n in range(200) for k in range(5)})

    def test_kill_during_delivery_delivers_no_recipient_twice(self):
        user = "terntestdlv"
        subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", user],
                       capture_output=True)
        self.addCleanup(subprocess.run, ["userdel", user], capture_output=True)
        spool = os.path.join(self.inst.dir, "mail")
        self.sink.handler.stall.set()        # the remote recipient hangs after DATA
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail("sender@example.org", ["%s@localhost" % user, "far@remote.example"],
                       b"Subject: half done\r\n\r\nbody\r\n")
        self.inst.wait_log(r"to=<%s@localhost>.*status=sent" % user)
        time.sleep(0.5)                       # the smtp agent is now waiting after the dot
        self.inst.kill_all()
        self.sink.handler.stall.clear()
        self.inst.start()
        self.sink.wait(1, timeout=30)
        self.inst.wait_log(r"to=<far@remote\.example>.*status=sent", timeout=30)
        with open(os.path.join(spool, user), "rb") as f:
            self.assertEqual(f.read().count(b"Subject: half done"), 1, "local recipient delivered twice")


if __name__ == "__main__":
    unittest.main()
