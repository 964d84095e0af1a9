"""test_durability.py: crash safety of the queue. Every Tern process is
SIGKILLed at each state of the queue state machine (lib/global/QUEUE.md); after a
restart an acknowledged message is intact and readable, and nothing that
was not acknowledged ever shows up as a message, not even half of one.

Deliveries go to a transport that never answers (harness stall_transport),
so a message qmgr has taken up stays in active/ for as long as a test needs."""
import os
import shutil
import signal
import socket
import time
import unittest

import harness

BODY = ("Subject: durability\r\nX-Test: %d\r\n\r\n" +
        "".join("line %04d of a message that must survive a crash\r\n" % i for i in range(300)))


def send(inst, n=0):
    with inst.smtp() as s:
        s.ehlo("client.example")
        s.mail("sender@example.org")
        s.rcpt("postmaster@tern.test")
        code, text = s.data(BODY % n)
        assert code == 250, text
        return text.decode().split()[-1]


def stalled_instance(name):
    inst = harness.Instance(name, main_cf={"local_transport": "stall"})
    inst.stall_transport("stall")
    return inst


def all_ids(inst):
    ids = {}
    for sub in ("incoming", "active", "deferred", "hold", "corrupt"):
        for path in inst.queue_files(sub):
            ids[os.path.basename(path)] = sub
    return ids


class TestCrash(unittest.TestCase):
    def setUp(self):
        self.inst = stalled_instance("dur")
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def check_intact(self, qid, n):
        # qmgr, started again, moves active/ files back to incoming/: a
        # listing of incoming/ then active/ can miss one in flight
        deadline = time.time() + 5
        ids = all_ids(self.inst)
        while qid not in ids and time.time() < deadline:
            time.sleep(0.05)
            ids = all_ids(self.inst)
        self.assertIn(qid, ids, "a message acknowledged with 250 is not in the queue")
        path = os.path.join(self.inst.queue_dir, ids[qid], qid)
        msg = harness.read_queue_file(path)
        self.assertTrue(msg["complete"])
        self.assertEqual(msg["sender"], "sender@example.org")
        self.assertEqual([r[0] for r in msg["recipients"]], ["postmaster@tern.test"])
        expected = (BODY % n).replace("\r\n", "\n").encode()
        head, _, body = expected.partition(b"\n\n")
        self.assertIn(head, msg["content"])
        self.assertTrue(msg["content"].endswith(b"\n\n" + body), "body differs")

    def test_kill_after_250(self):
        sent = []
        for round_ in range(3):
            qid = send(self.inst, round_)
            sent.append((qid, round_))
            killed = self.inst.kill_all(signal.SIGKILL)
            self.assertTrue(killed)
            self.inst.start()
            for q, n in sent:
                self.check_intact(q, n)
        # qmgr finds all of them again and activates them
        for q, _ in sent:
            self.inst.wait_log(r"%s: from=<sender@example.org>" % q)
        self.inst.wait_queue("active", len(sent))

    def test_kill_during_data(self):
        before = all_ids(self.inst)
        s = socket.create_connection(("127.0.0.1", self.inst.port), timeout=10)
        s.recv(1000)
        s.sendall(b"EHLO c\r\n")
        s.recv(4000)
        s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<postmaster@tern.test>\r\nDATA\r\n")
        buf = b""
        deadline = time.time() + 10
        while b"354" not in buf and time.time() < deadline:
            buf += s.recv(4000)
        s.sendall(b"Subject: never acknowledged\r\n\r\n" + b"x" * 200000 + b"\r\n")
        time.sleep(0.3)
        self.inst.kill_all(signal.SIGKILL)
        s.close()
        self.assertEqual(all_ids(self.inst), before)
        self.inst.start()
        time.sleep(1)
        self.assertEqual(all_ids(self.inst), before, "an unacknowledged message appeared")
        # the temporary file (if the kill left one) is incomplete: without the
        # final dot cleanup was never told to commit; and it is never read
        # as a message
        for name in self.inst.temp_files():
            path = os.path.join(self.inst.queue_dir, "incoming", name)
            try:
                self.assertFalse(harness.read_queue_file(path)["complete"], name)
            except ValueError:
                pass
            self.assertNotIn("%s: from=" % name[1:], self.inst.log_text())

    def test_committed_in_incoming_survives(self):
        qmgr = self.inst.wait_process("qmgr")[0]
        os.kill(qmgr, signal.SIGSTOP)     # keep qmgr from moving it on
        try:
            qid = send(self.inst, 7)
            self.assertEqual(all_ids(self.inst).get(qid), "incoming")
        finally:
            self.inst.kill_all(signal.SIGKILL)
        self.inst.start()
        self.inst.wait_log(r"%s: from=<sender@example.org>" % qid)
        self.inst.wait_queue("active", 1)
        self.check_intact(qid, 7)

    def test_active_is_resumed(self):
        qid = send(self.inst, 3)
        self.inst.wait_queue("active", 1)
        self.inst.kill_all(signal.SIGKILL)
        self.assertEqual(all_ids(self.inst).get(qid), "active")
        self.inst.start()
        deadline = time.time() + 10
        while time.time() < deadline and self.inst.log_text().count("%s: from=" % qid) < 2:
            time.sleep(0.05)
        self.assertEqual(self.inst.log_text().count("%s: from=" % qid), 2)
        self.assertEqual(all_ids(self.inst).get(qid), "active")
        self.check_intact(qid, 3)


class TestStaleFiles(unittest.TestCase):
    """States a crash can leave, planted while Tern is stopped."""

    def setUp(self):
        self.inst = stalled_instance("stale")
        self.addCleanup(self.inst.cleanup)
        self.inst.start()
        self.qid = send(self.inst, 1)
        self.inst.wait_queue("active", 1)
        self.inst.stop()
        self.good = os.path.join(self.inst.queue_dir, "active", self.qid)
        with open(self.good, "rb") as f:
            self.data = f.read()
        os.unlink(self.good)

    def plant(self, sub, name, data, age=0):
        path = os.path.join(self.inst.queue_dir, sub, name)
        with open(path, "wb") as f:
            f.write(data)
        if os.geteuid() == 0:
            shutil.chown(path, "tern", "tern")
        if age:
            t = time.time() - age
            os.utime(path, (t, t))
        return path

    def test_temp_files(self):
        fresh = self.plant("incoming", "." + self.qid, self.data)
        old_id = self.qid[:-1] + ("B" if self.qid[-1] != "B" else "C")
        old = self.plant("incoming", "." + old_id, self.data[:100], age=7200)
        self.inst.start()
        self.inst.wait_log(r"removed stale temporary file .*\.%s" % old_id)
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(fresh), "a young temp file may still be written")
        self.assertEqual(self.inst.queue_files("active"), [])

    def test_truncated_and_garbled_files_go_to_corrupt(self):
        # every proper prefix of a committed file is either never seen (it
        # has no END record) or moved to corrupt/, never activated
        cut = self.plant("incoming", self.qid, self.data[:len(self.data) // 2])
        bad_id = self.qid[:-1] + ("B" if self.qid[-1] != "B" else "C")
        self.plant("incoming", bad_id, b"garbage that is not a queue file")
        self.inst.start()
        self.inst.wait_queue("corrupt", 2)
        self.assertEqual(self.inst.queue_files("active"), [])
        self.inst.wait_log(r"warning: %s: .*moving it to corrupt/" % bad_id)
        self.assertFalse(os.path.exists(cut))

    def test_each_prefix_is_never_complete(self):
        step = max(1, len(self.data) // 200)
        for n in range(0, len(self.data), step):
            path = self.plant("incoming", self.qid, self.data[:n])
            try:
                msg = harness.read_queue_file(path)
            except ValueError:
                continue
            self.assertFalse(msg["complete"], "prefix of %d bytes reads as complete" % n)
        os.unlink(path)


if __name__ == "__main__":
    unittest.main()
