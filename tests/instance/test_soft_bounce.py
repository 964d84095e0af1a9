"""test_soft_bounce.py: soft_bounce = yes, Postfix's safety net, through a
whole instance: a remote server's 550, an unknown local user and an
error: transport each leave the message deferred in the queue with a 4.X.Y
status (nothing is returned to the sender), smtpd answers 4XX where it
would answer 5XX, and a message that outlives maximal_queue_lifetime is
still returned. With soft_bounce = no the same 550 bounces (the control)."""
import os
import time
import unittest

import harness
import sink as sinkmod

AGENTS = ["smtp unix - - n - - smtp", "relay unix - - n - - smtp"]


class SoftBounceTest(unittest.TestCase):
    soft = "yes"
    lifetime = None

    @classmethod
    def setUpClass(cls):
        cls.sink = sinkmod.Sink()
        cls.sink.handler.reject_rcpts.add("nobody@remote.example")
        cls.inst = harness.Instance("softb", master_cf_extra=AGENTS, main_cf={
            "soft_bounce": cls.soft,
            "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
            "minimal_backoff_time": "600s", "maximal_backoff_time": "600s",
            "queue_run_delay": "600s",
            # a relay attempt gets a 5XX (Postfix's default defers it with 454)
            "mynetworks": "127.0.0.1/32",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        })
        if cls.lifetime:
            cls.inst.set_main_cf({"maximal_queue_lifetime": cls.lifetime,
                                  "minimal_backoff_time": "1s", "maximal_backoff_time": "1s",
                                  "queue_run_delay": "1s"})
        table = os.path.join(cls.inst.dir, "transport")
        with open(table, "w") as f:
            f.write("dead.example error:5.7.1 this domain is closed\n")
        cls.inst.set_main_cf({"transport_maps": "texthash:" + table})
        cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()
        cls.sink.stop()

    def send(self, rcpt, subject):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail("sender@example.org", [rcpt], "Subject: %s\r\n\r\nhello\r\n" % subject)

    def relay_attempt(self):
        """RCPT for another domain from 127.0.0.2, outside mynetworks; the reply."""
        c = harness.RawSession(self.inst.port, source="127.0.0.2")
        self.addCleanup(c.close)
        c.send("EHLO client.example\r\n")
        c.read_reply()
        c.send("MAIL FROM:<sender@example.org>\r\n")
        self.assertEqual(c.read_reply()[0], 250)
        c.send("RCPT TO:<someone@elsewhere.example>\r\n")
        return c, c.read_reply()

    def bounces(self):
        return [m for m in self.sink.handler.messages if m[0] in ("", "<>")]


class TestSoftBounceOn(SoftBounceTest):
    def assert_deferred(self, rcpt, dsn, text):
        m = self.inst.wait_log(r"(\w+): to=<%s>, .*dsn=%s, status=deferred \(.*%s"
                               % (rcpt.replace(".", r"\."), dsn.replace(".", r"\."), text),
                               timeout=20)
        qid = m.group(1)
        # still queued, the recipient not done, and nobody told the sender
        path = os.path.join(self.inst.queue_dir, "deferred", qid)
        deadline = time.time() + 10
        while time.time() < deadline and not os.path.exists(path):
            time.sleep(0.05)
        q = harness.read_queue_file(path)
        self.assertIn(rcpt, [r[0] for r in q["recipients"] if not r[3]])
        time.sleep(0.5)
        self.assertEqual(self.bounces(), [])
        self.assertNotRegex(self.inst.log_text(), r"%s: .*status=bounced" % qid)
        out = self.inst.tern("queue").stdout
        self.assertIn(qid, out)
        self.assertIn(rcpt, out)
        return qid

    def test_remote_550_is_deferred(self):
        self.send("nobody@remote.example", "remote")
        self.assert_deferred("nobody@remote.example", "4.1.1", "no such user here")

    def test_unknown_local_user_is_deferred(self):
        self.send("nosuchuser@tern.test", "local")
        self.assert_deferred("nosuchuser@tern.test", "4.1.1", "unknown user")

    def test_error_transport_is_deferred(self):
        self.send("x@dead.example", "error")
        self.assert_deferred("x@dead.example", "4.7.1", "this domain is closed")

    def test_smtpd_answers_4xx(self):
        c, (code, lines) = self.relay_attempt()
        self.assertEqual(code, 454, lines)
        self.assertTrue(lines[-1].startswith("454 4.7.1 "), lines)
        self.assertIn("Relay access denied", lines[-1])
        # the log shows what the client was sent
        self.inst.wait_log(r"NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.2\]: 454 4\.7\.1 "
                           r"<someone@elsewhere\.example>: Relay access denied")
        # a syntax error is a 5XX too
        c.send("RCPT TO:<bad address\r\n")
        code, lines = c.read_reply()
        self.assertEqual(code // 100, 4, lines)
        self.assertTrue(lines[-1][4:].startswith("4."), lines)


class TestSoftBounceExpiry(SoftBounceTest):
    """soft_bounce keeps mail queued, not for ever: at maximal_queue_lifetime
    the message is returned as usual."""
    lifetime = "3s"

    def test_expired_message_is_returned(self):
        self.send("nobody@remote.example", "expiry")
        self.inst.wait_log(r"to=<nobody@remote\.example>, .*dsn=4\.1\.1, status=deferred", timeout=20)
        self.assertEqual(self.bounces(), [])
        self.inst.wait_log(r"to=<nobody@remote\.example>, relay=none, dsn=4\.1\.1, "
                           r"status=expired, returned to sender", timeout=30)
        deadline = time.time() + 20
        while time.time() < deadline and not self.bounces():
            time.sleep(0.1)
        self.assertEqual(len(self.bounces()), 1)


class TestSoftBounceOff(SoftBounceTest):
    """The control: the same remote 550 bounces when soft_bounce is off."""
    soft = "no"

    def test_remote_550_bounces(self):
        self.send("nobody@remote.example", "remote")
        self.inst.wait_log(r"to=<nobody@remote\.example>, .*dsn=5\.1\.1, status=bounced", timeout=20)
        deadline = time.time() + 20
        while time.time() < deadline and not self.bounces():
            time.sleep(0.1)
        self.assertEqual(len(self.bounces()), 1)

    def test_smtpd_answers_5xx(self):
        c, (code, lines) = self.relay_attempt()
        self.assertEqual(code, 554, lines)
        self.assertTrue(lines[-1].startswith("554 5.7.1 "), lines)


if __name__ == "__main__":
    unittest.main()
