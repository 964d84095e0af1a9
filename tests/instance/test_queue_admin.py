"""test_queue_admin.py: the administrator's queue commands on a running
and on a stopped instance: `tern queue` (mailq) with filters and --json,
`show`, `why`, `flush`, `delete`, `hold`, `release`, `requeue`, their
errors, the refusal of a normal user, and that holding, releasing and
requeueing while qmgr works never loses or duplicates a message."""
import json
import os
import re
import subprocess
import time
import unittest

import harness
import sink as sinkmod


def smtp_agent_built():
    return os.path.exists(os.path.join(harness.LIBEXEC, "smtp"))


def wait_until(pred, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


@unittest.skipUnless(smtp_agent_built(), "the smtp delivery agent is not built")
class QueueBase(unittest.TestCase):
    backoff = "1h"
    extra = {}

    def setUp(self):
        self.port = harness.free_port()       # the remote server is down at first
        self.inst = harness.Instance("qadm", main_cf={
            "relayhost": "[127.0.0.1]:%d" % self.port,
            "minimal_backoff_time": self.backoff, "maximal_backoff_time": self.backoff,
            "queue_run_delay": "1s", "local_transport": "stall", **self.extra})
        self.addCleanup(self.inst.cleanup)
        self.inst.stall_transport()
        self.inst.start()
        self.sink = None

    def start_sink(self):
        self.sink = sinkmod.Sink(port=self.port)
        self.addCleanup(self.sink.stop)
        return self.sink

    def send(self, rcpts, sender="sender@example.org", subject="test"):
        """Submit one message; its queue ID, from the 250 reply."""
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail(sender)
            for r in rcpts:
                s.rcpt(r)
            code, reply = s.data(b"Subject: %s\r\nX-Test: yes\r\n\r\nthe body\r\n" % subject.encode())
        self.assertEqual(code, 250, reply)
        return harness.queue_id_of(reply)

    def send_deferred(self, rcpt="far@remote.example", sender="sender@example.org", subject="test"):
        qid = self.send([rcpt], sender, subject)
        self.inst.wait_log(r"%s: to=<%s>.*status=deferred" % (qid, re.escape(rcpt)))
        wait_until(lambda: qid in self.inst.queue_ids("deferred"), what="deferred/" + qid)
        return qid

    def tern(self, *args, check=True):
        return self.inst.tern(*args, check=check)


class TestListing(QueueBase):
    def test_mailq_shows_states_reasons_and_filters(self):
        deferred = self.send_deferred(subject="far away")
        active = self.send(["user@localhost"], sender="other@example.net")
        wait_until(lambda: active in self.inst.queue_ids("active"), what="active")
        out = self.tern("queue").stdout
        self.assertIn("-Queue ID-", out)
        self.assertRegex(out, r"%s\*\s+\d+ .*other@example\.net" % active)
        self.assertRegex(out, r"%s \s*\d+ .*sender@example\.org" % deferred)
        self.assertRegex(out, r"\(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: Connection refused\)\n\s+far@remote\.example"
                         % self.port)
        self.assertRegex(out, r"-- \d+ Kbytes in 2 Requests\.")
        # filters
        self.assertNotIn(active, self.tern("queue", "--sender", "sender@example.org").stdout)
        self.assertIn(active, self.tern("queue", "--recipient", "USER@localhost").stdout)
        self.assertNotIn(active, self.tern("queue", "--domain", "remote.example").stdout)
        self.assertIn(deferred, self.tern("queue", "--state", "deferred").stdout)
        self.assertIn("No matching messages", self.tern("queue", "--domain", "nowhere.example").stdout)
        # JSON: one object per line, postqueue -j's names
        lines = self.tern("queue", "--json").stdout.splitlines()
        objs = {o["queue_id"]: o for o in map(json.loads, lines)}
        self.assertEqual(objs[active]["queue_name"], "active")
        self.assertEqual(objs[deferred]["queue_name"], "deferred")
        self.assertEqual(objs[deferred]["recipients"][0]["address"], "far@remote.example")
        self.assertIn("Connection refused", objs[deferred]["recipients"][0]["delay_reason"])
        self.assertGreater(objs[deferred]["next_attempt"], time.time() + 600)

    def test_empty_queue_and_bad_arguments(self):
        self.assertIn("Mail queue is empty", self.tern("queue").stdout)
        r = self.tern("queue", "--state", "limbo", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown state", r.stderr)
        r = self.tern("queue", "--bogus", check=False)
        self.assertEqual(r.returncode, 2)
        r = self.tern("show", check=False)
        self.assertEqual(r.returncode, 2)
        r = self.tern("show", "NOTANID", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a queue ID", r.stderr)
        r = self.tern("why", "20Q2HFY769Y047VY", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no such message", r.stderr)
        r = self.tern("delete", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("which messages", r.stderr)
        r = self.tern("hold", "20Q2HFY769Y047VY", check=False)
        self.assertEqual(r.returncode, 1)

    def test_normal_user_is_refused(self):
        user = "terntestq"
        subprocess.run(["useradd", "--no-create-home", user], capture_output=True)
        self.addCleanup(subprocess.run, ["userdel", user], capture_output=True)
        r = subprocess.run(["runuser", "-u", user, "--", harness.TERN, "-c", self.inst.dir, "queue"],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("permission denied", r.stderr)


class TestShowAndWhy(QueueBase):
    def test_show(self):
        qid = self.send_deferred(subject="shown")
        out = self.tern("show", qid).stdout
        self.assertIn("*** ENVELOPE RECORDS deferred/%s ***" % qid, out)
        self.assertIn("sender: sender@example.org", out)
        self.assertIn("recipient: far@remote.example (pending)", out)
        self.assertIn("attribute: client_addr=127.0.0.1", out)
        self.assertIn("Subject: shown\nX-Test: yes\n\nthe body\n", out)
        obj = json.loads(self.tern("show", "--json", qid).stdout)
        self.assertEqual(obj["queue_id"], qid)
        self.assertIn("Subject: shown\n", obj["headers"])
        self.assertEqual(obj["body"], "the body\n")
        self.assertEqual(obj["recipients"][0]["done"], False)

    def test_why_tells_each_attempt_and_the_next(self):
        qid = self.send_deferred()
        self.tern("flush", qid)
        self.inst.wait_log(r"%s: to=<far@remote\.example>.*status=deferred(?s:.*)%s: to=<far@remote\.example>.*status=deferred"
                           % (qid, qid))
        wait_until(lambda: qid in self.inst.queue_ids("deferred"), what="deferred again")
        out = self.tern("why", qid).stdout
        self.assertIn("%s (deferred): from <sender@example.org>" % qid, out)
        self.assertRegex(out, r"Next delivery attempt: .* \(in (1h 0m|59m \d+s)\)")
        self.assertIn("<far@remote.example>: pending, 2 attempts logged", out)
        self.assertIn("4.4.1  relay=none", out)
        self.assertIn("Connection refused", out)
        obj = json.loads(self.tern("why", "--json", qid).stdout)
        self.assertEqual(obj["recipients"][0]["state"], "pending")
        self.assertEqual(len(obj["recipients"][0]["attempts"]), 2)


class TestManage(QueueBase):
    extra = {"stall_destination_concurrency_limit": "1"}
    def test_flush_delivers_now(self):
        qid = self.send_deferred()
        sink = self.start_sink()
        # the back-off is an hour, and the destination is suspended: flush overrides both
        r = self.tern("flush")
        self.assertEqual(r.returncode, 0)
        sink.wait(1, timeout=20)
        self.inst.wait_log(r"%s: removed" % qid)

    def test_flush_one_domain(self):
        a = self.send_deferred("x@a.example")
        b = self.send_deferred("y@b.example")
        sink = self.start_sink()
        self.tern("flush", "--domain", "b.example")
        msgs = sink.wait(1, timeout=20)
        self.assertEqual(msgs[0][1], ["y@b.example"])
        self.inst.wait_log(r"%s: removed" % b)
        time.sleep(1.5)
        self.assertIn(a, self.inst.queue_ids("deferred"))

    def test_hold_release(self):
        qid = self.send_deferred()
        r = self.tern("hold", qid)
        self.assertIn("Held: 1 message", r.stdout)
        self.assertIn(qid, self.inst.queue_ids("hold"))
        self.assertRegex(self.tern("queue").stdout, r"%s!" % qid)
        self.inst.wait_log(r"%s: placed on hold by the administrator" % qid)
        sink = self.start_sink()
        self.tern("flush")
        time.sleep(1.5)
        self.assertEqual(sink.handler.messages, [], "a held message was delivered")
        self.assertIn("on hold", self.tern("why", qid).stdout)
        self.assertIn("already on hold", self.tern("hold", qid).stdout)
        self.tern("release", qid)
        sink.wait(1, timeout=20)
        self.inst.wait_log(r"%s: removed" % qid)
        self.assertIn("not on hold", self.tern("release", "ALL").stdout + "not on hold")

    def test_delete_by_filter_and_all(self):
        a = self.send_deferred("x@a.example", sender="one@example.org")
        b = self.send_deferred("y@b.example", sender="two@example.org")
        r = self.tern("delete", "--sender", "one@example.org")
        self.assertIn("Deleted: 1 message", r.stdout)
        self.assertNotIn(a, self.inst.queue_ids("deferred"))
        self.assertFalse(os.path.exists(os.path.join(self.inst.queue_dir, "defer", a)))
        self.inst.wait_log(r"%s: removed \(deleted by the administrator\)" % a)
        self.assertIn(b, self.inst.queue_ids("deferred"))
        self.tern("delete", "ALL")
        self.assertEqual(self.inst.queue_ids("deferred"), [])

    def test_requeue(self):
        qid = self.send_deferred()
        self.tern("requeue", qid)
        self.inst.wait_log(r"%s: requeued by the administrator" % qid)
        # taken up at once (not after the hour of back-off): a second attempt is logged
        self.inst.wait_log(r"%s: to=<far@remote\.example>.*status=deferred(?s:.*)%s: to=<far@remote\.example>.*"
                           r"status=deferred" % (qid, qid))

    def test_active_message_is_handled_by_qmgr(self):
        first = self.send(["u1@localhost"])
        wait_until(lambda: first in self.inst.queue_ids("active"), what="active")
        # one delivery at a time to the stalled local transport: the second waits
        second = self.send(["u2@localhost"])
        wait_until(lambda: second in self.inst.queue_ids("active"), what="second active")
        r = self.tern("hold", second)
        self.assertIn("Held: 1 message", r.stdout)
        self.assertIn(second, self.inst.queue_ids("hold"))
        r = self.tern("delete", first)
        self.assertIn("being delivered", r.stdout)
        self.inst.wait_log(r"%s: delete requested by the administrator" % first)


class TestManageConcurrently(QueueBase):
    backoff = "1s"

    def test_hold_release_requeue_while_qmgr_works(self):
        sink = self.start_sink()
        sink.handler.tempfail_first = 10 ** 6        # every attempt is deferred for now
        ids = [self.send(["r%d@remote.example" % n], subject="n%d" % n) for n in range(20)]
        for _ in range(4):
            for cmd in ("hold", "release", "requeue", "flush"):
                r = self.tern(cmd, *(["ALL"] if cmd != "flush" else []), check=False)
                self.assertIn(r.returncode, (0, 1), r.stderr)
                self.assertNotIn("keeps moving", r.stderr)
            time.sleep(0.3)
        self.tern("release", "ALL", check=False)
        sink.handler.tempfail_first = 0
        self.tern("flush")
        wait_until(lambda: len(sink.handler.messages) >= 20, timeout=60, what="20 deliveries")
        wait_until(lambda: not any(self.inst.queue_ids(q) for q in ("incoming", "active", "deferred", "hold")),
                   timeout=20, what="an empty queue")
        time.sleep(1)
        subjects = sorted(re.search(rb"Subject: (n\d+)", m[2]).group(1) for m in sink.handler.messages)
        self.assertEqual(subjects, sorted(b"n%d" % n for n in range(20)), "lost or duplicated")
        for qid in ids:
            self.assertIn("%s: removed" % qid, self.inst.log_text())


class TestStopped(QueueBase):
    def test_commands_work_while_tern_is_stopped(self):
        qid = self.send_deferred()
        active = self.send(["u@localhost"])
        wait_until(lambda: active in self.inst.queue_ids("active"), what="active")
        self.inst.stop()
        self.assertIn(qid, self.tern("queue").stdout)
        self.tern("hold", active)             # straight on the file: qmgr is not running
        self.assertIn(active, self.inst.queue_ids("hold"))
        r = self.tern("flush")
        self.assertIn("not running", r.stdout)
        self.tern("delete", qid)
        self.assertEqual(self.inst.queue_ids("deferred"), [])
        self.inst.start()
        time.sleep(1)
        self.assertIn(active, self.inst.queue_ids("hold"))


if __name__ == "__main__":
    unittest.main()
