"""test_quarantine.py: whole-instance tests of the quarantine
(lib/global/quarantine.c through `tern quarantine`): messages that header
checks (HOLD with a text) and a real libmilter filter (smfi_quarantine)
held, listed for one recipient or all with sender, decoded subject, size,
date and reason; a user sees and acts on only their own; a release for one
of several recipients delivers a copy to that recipient alone (to the
real SMTP sink of the test) and leaves the others held; the daily digest
arrives at each recipient with their list; hostile subjects, IDs and
addresses are refused or shown safely.
"""
import email
import email.policy
import grp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sink as sinkmod  # noqa: E402

SENDMAIL = os.path.join(harness.BUILD, "sendmail", "sendmail")
TERN_DROP = os.path.join(harness.BUILD, "tern-drop", "tern-drop")
C_MILTER = os.path.join(harness.BUILD, "tests", "milter", "test-milter")
HEADER_CHECKS = "/^Subject:.*XSPAMX/ HOLD spam-like subject\n"


class QuarantineTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("instances with a set-group-ID tern-drop: run as root")
        cls.tmp = tempfile.mkdtemp(prefix="tern-quarantine-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.sink = sinkmod.Sink()
        cls.addClassCleanup(cls.sink.stop)
        cls.milter = None
        settings = {}
        if os.path.exists(C_MILTER):
            cls.mport = harness.free_port()
            cls.milter = subprocess.Popen([C_MILTER, "inet:%d@127.0.0.1" % cls.mport],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cls.addClassCleanup(cls.stop_milter)
            harness.wait_port(cls.mport)
            settings["smtpd_milters"] = "{ inet:127.0.0.1:%d, command_timeout=10s }" % cls.mport
        inst = cls.inst = harness.Instance("quarantine")
        cls.addClassCleanup(inst.cleanup)
        # as installed: sendmail in command_directory, a set-group-ID
        # tern-drop in daemon_directory (the digest is mailed by mail_owner)
        bindir = os.path.join(inst.dir, "bin")
        os.mkdir(bindir)
        os.symlink(harness.TERN, os.path.join(bindir, "tern"))
        os.symlink(SENDMAIL, os.path.join(bindir, "sendmail"))
        daemons = os.path.join(inst.dir, "libexec")
        os.mkdir(daemons)
        for prog in os.listdir(harness.LIBEXEC):
            if prog != "tern-drop":
                os.symlink(os.path.realpath(os.path.join(harness.LIBEXEC, prog)),
                           os.path.join(daemons, prog))
        drop = os.path.join(daemons, "tern-drop")
        shutil.copy(TERN_DROP, drop)
        os.chown(drop, 0, grp.getgrnam("terndrop").gr_gid)
        os.chmod(drop, 0o2755)
        settings["daemon_directory"] = daemons
        with open(os.path.join(inst.dir, "header_checks"), "w") as f:
            f.write(HEADER_CHECKS)
        settings.update({
            "command_directory": bindir,
            "mynetworks": "127.0.0.1/32",
            "smtpd_peername_lookup": "no",
            "relay_domains": "corp.test",
            "transport_maps": "inline:{ corp.test=smtp:[127.0.0.1]:%d }" % cls.sink.port,
            "header_checks": "pcre:%s/header_checks" % inst.dir,
        })
        inst.set_main_cf(settings)
        inst.start()

    @classmethod
    def stop_milter(cls):
        cls.milter.terminate()
        try:
            cls.milter.wait(10)
        except subprocess.TimeoutExpired:
            cls.milter.kill()
            cls.milter.wait(10)

    # ---- helpers ----

    def send(self, rcpts, subject, sender="mallory@evil.test", extra=""):
        with self.inst.smtp() as s:
            s.sendmail(sender, rcpts, ("From: <%s>\r\nSubject: %s\r\n%s\r\nbody\r\n"
                                       % (sender, subject, extra)).encode("utf-8", "surrogateescape"))

    def held(self, before, n=1):
        """The IDs in hold/ that were not in before, waiting for n of them."""
        for _ in range(100):
            new = sorted(set(self.inst.queue_ids("hold")) - set(before))
            if len(new) >= n:
                return new
            time.sleep(0.1)
        self.fail("%d new held messages expected, have %s" % (n, self.inst.queue_ids("hold")))

    def quarantine(self, *args, check=True):
        return self.inst.tern("quarantine", *args, check=check)

    def listing(self, recipient=None):
        args = ["list", "--json"] + (["--recipient", recipient] if recipient else [])
        out = self.quarantine(*args).stdout
        return {e["queue_id"]: e for e in map(json.loads, out.splitlines())}

    def sink_to(self, rcpt, count=1, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = [m for m in self.sink.handler.messages if rcpt in m[1]]
            if len(got) >= count:
                return got
            time.sleep(0.1)
        self.fail("the sink has no message for %s" % rcpt)

    # ---- tests ----

    def test_each_user_sees_only_their_own(self):
        before = self.inst.queue_ids("hold")
        self.send(["alice@corp.test"], "XSPAMX =?utf-8?q?caf=C3=A9?= and =?ISO-8859-1?Q?na=EFve?= =?utf-8?q?_jo?=  =?utf-8?q?ined?=")
        a = self.held(before)[0]
        self.send(["bob@corp.test"], "XSPAMX for bob")
        b = self.held(before + [a])[0]
        alice, bob, admin = self.listing("alice@corp.test"), self.listing("BOB@corp.test"), self.listing()
        self.assertIn(a, alice)
        self.assertNotIn(b, alice)
        self.assertIn(b, bob)
        self.assertNotIn(a, bob)
        self.assertTrue({a, b} <= set(admin))
        e = alice[a]
        self.assertEqual(e["subject"], "XSPAMX café and naïve joined")
        self.assertEqual(e["reason"], "header_checks: spam-like subject")
        self.assertEqual(e["sender"], "mallory@evil.test")
        self.assertEqual(e["recipients"], ["alice@corp.test"])
        self.assertGreater(e["message_size"], 0)
        self.assertLess(abs(e["arrival_time"] - time.time()), 120)
        # alice can neither see nor change bob's message
        for action in ("show", "release", "delete"):
            r = self.quarantine(action, b, "--recipient", "alice@corp.test", check=False)
            self.assertEqual(r.returncode, 1, action)
            self.assertIn("no such message in the quarantine", r.stderr)
        self.assertIn(b, self.inst.queue_ids("hold"))
        shown = self.quarantine("show", a, "--recipient", "alice@corp.test").stdout
        self.assertIn("Subject: XSPAMX", shown)
        self.assertIn("header_checks: spam-like subject", shown)
        # her own release reaches the sink
        r = self.quarantine("release", a, "--recipient", "alice@corp.test")
        self.assertIn("released", r.stdout)
        self.sink_to("alice@corp.test")
        self.assertNotIn(a, self.inst.queue_ids("hold"))
        self.inst.wait_log(r"%s: released from quarantine by alice@corp\.test" % a)
        # bob deletes his: gone, never delivered
        self.quarantine("delete", b, "--recipient", "bob@corp.test")
        self.assertNotIn(b, self.inst.queue_ids("hold"))
        self.assertNotIn(b, self.listing())

    def test_release_for_one_of_several_recipients(self):
        before = self.inst.queue_ids("hold")
        self.send(["carl@corp.test", "dora@corp.test", "erik@corp.test"], "XSPAMX shared")
        q = self.held(before)[0]
        self.assertEqual(self.listing("carl@corp.test")[q]["other_recipients"], 2)
        r = self.quarantine("release", q, "--recipient", "carl@corp.test")
        self.assertIn("released as ", r.stdout)
        got = self.sink_to("carl@corp.test")
        self.assertEqual(got[0][1], ["carl@corp.test"])
        # still held for the others; carl sees nothing any more
        self.assertIn(q, self.inst.queue_ids("hold"))
        self.assertNotIn(q, self.listing("carl@corp.test"))
        self.assertEqual(self.listing()[q]["recipients"], ["dora@corp.test", "erik@corp.test"])
        self.quarantine("delete", q, "--recipient", "dora@corp.test")
        self.assertEqual(self.listing()[q]["recipients"], ["erik@corp.test"])
        self.quarantine("delete", q, "--recipient", "erik@corp.test")
        self.assertNotIn(q, self.inst.queue_ids("hold"))
        time.sleep(1)
        self.assertFalse([m for m in self.sink.handler.messages
                          if "dora@corp.test" in m[1] or "erik@corp.test" in m[1]])

    def test_recipients_acting_at_once_leave_nothing_held(self):
        """Two recipients deleting their copies at the same moment: the
        last one out removes the file, whichever it is."""
        import concurrent.futures
        for round_ in range(5):
            before = self.inst.queue_ids("hold")
            self.send(["gus@corp.test", "hal@corp.test"], "XSPAMX race %d" % round_)
            q = self.held(before)[0]
            with concurrent.futures.ThreadPoolExecutor(max_workers=2) as ex:
                jobs = [ex.submit(self.quarantine, "delete", q, "--recipient", r)
                        for r in ("gus@corp.test", "hal@corp.test")]
                for j in jobs:
                    j.result(timeout=60)
            self.assertNotIn(q, self.inst.queue_ids("hold"), "round %d" % round_)

    def test_admin_release_and_delete(self):
        before = self.inst.queue_ids("hold")
        self.send(["fay@corp.test", "gus@corp.test"], "XSPAMX admin")
        q = self.held(before)[0]
        self.quarantine("release", q)
        got = self.sink_to("fay@corp.test")
        self.assertEqual(sorted(got[0][1]), ["fay@corp.test", "gus@corp.test"])
        before = self.inst.queue_ids("hold")
        self.send(["fay@corp.test"], "XSPAMX admin delete")
        q = self.held(before)[0]
        self.quarantine("delete", q)
        self.assertNotIn(q, self.inst.queue_ids("hold"))

    def test_plain_hold_is_not_quarantine(self):
        """A message the administrator held (no reason) is not shown."""
        self.send(["hank@corp.test"], "ordinary")
        ids = []
        for _ in range(100):
            ids = [i for i in self.inst.queue_ids("deferred") + self.inst.queue_ids("active")
                   + self.inst.queue_ids("incoming")]
            if ids or self.sink.handler.messages:
                break
            time.sleep(0.05)
        self.assertNotIn("hank@corp.test", json.dumps(self.listing()))

    @unittest.skipUnless(os.path.exists(C_MILTER), "tests/milter/test-milter is not built (make check builds it)")
    def test_milter_quarantine(self):
        before = self.inst.queue_ids("hold")
        self.send(["ivy@corp.test"], "from the milter", extra="X-Test-Action: quarantine\r\n")
        q = self.held(before)[0]
        e = self.listing("ivy@corp.test")[q]
        self.assertEqual(e["reason"], "milter: C filter quarantine")
        self.assertEqual(e["subject"], "from the milter")

    def test_expire(self):
        r = self.quarantine("expire")
        self.assertIn("quarantine_lifetime is 0: nothing expires", r.stdout)
        before = self.inst.queue_ids("hold")
        self.send(["old@corp.test"], "XSPAMX old")
        old = self.held(before)[0]
        time.sleep(4.2)      # arrival times count in whole seconds
        self.send(["new@corp.test"], "XSPAMX new")
        new = self.held(before + [old])[0]
        self.inst.set_main_cf({"quarantine_lifetime": "3s"})
        self.addCleanup(self.inst.set_main_cf, {"quarantine_lifetime": "0d"})
        self.assertIn("deleted", self.quarantine("expire").stdout)
        held = self.inst.queue_ids("hold")
        self.assertNotIn(old, held)
        self.assertIn(new, held)
        self.inst.wait_log(r"%s: removed \(expired from the quarantine\)" % old)

    def test_hostile_subjects(self):
        before = self.inst.queue_ids("hold")
        long_word = "=?utf-8?b?" + "QUFB" * 400 + "?="
        subjects = {
            "jo@corp.test": "XSPAMX \x1b[31mred\x07 =?utf-8?q?=1B=5B2J?=",
            "kim@corp.test": "XSPAMX " + long_word,
            "lou@corp.test": "XSPAMX =?utf-8?b?/w==?= =?x-unknown?q?abc?= =?utf-8?q?broken",
        }
        for rcpt, subject in subjects.items():
            self.send([rcpt], subject)
        self.held(before, 3)
        for rcpt in subjects:
            [e] = self.listing(rcpt).values()
            s = e["subject"]
            self.assertLessEqual(len(s.encode()), 204, rcpt)
            self.assertFalse([c for c in s if ord(c) < 0x20 or ord(c) == 0x7f], (rcpt, s))
        self.assertEqual(self.listing("jo@corp.test").popitem()[1]["subject"], "XSPAMX ?[31mred? ?[2J")
        self.assertTrue(self.listing("kim@corp.test").popitem()[1]["subject"].endswith("AAA..."))
        lou = self.listing("lou@corp.test").popitem()[1]["subject"]
        self.assertIn("=?x-unknown?q?abc?=", lou)
        self.assertIn("?", lou)
        # bad IDs, bad addresses, unknown actions
        for args in (["show", "../../etc/passwd"], ["release", "X" * 5000], ["delete", "0123456789BCDFGH"]):
            r = self.quarantine(*args, check=False)
            self.assertEqual(r.returncode, 1, args)
        for args in (["list", "--recipient", "a b@corp.test"], ["list", "--recipient", "x\x01@corp.test"],
                     ["frobnicate"], ["release"], ["list", "extra"], ["show", "ID", "--mail"]):
            r = self.quarantine(*args, check=False)
            self.assertEqual(r.returncode, 2, args)
            self.assertTrue(r.stderr.startswith("tern quarantine"), (args, r.stderr))

    def test_digest(self):
        before = self.inst.queue_ids("hold")
        self.send(["mia@corp.test"], "XSPAMX first for mia", sender="one@spam.test")
        self.send(["mia@corp.test", "ned@corp.test"], "XSPAMX second", sender="two@spam.test")
        ids = self.held(before, 2)
        out = self.quarantine("digest").stdout
        self.assertIn("To: mia@corp.test", out)
        self.assertIn("To: ned@corp.test", out)
        r = self.quarantine("digest", "--mail")
        self.assertIn("digests mailed", r.stdout)
        mia = [m for m in self.sink_to("mia@corp.test", timeout=30)
               if b"Quarantine:" in m[2]]
        self.assertTrue(mia, "no digest for mia")
        msg = email.message_from_bytes(mia[-1][2], policy=email.policy.default)
        self.assertEqual(msg["Auto-Submitted"], "auto-generated")
        body = msg.get_content()
        for q in ids:
            self.assertIn(q, body)
        self.assertIn("first for mia", body)
        self.assertIn("one@spam.test", body)
        ned = [m for m in self.sink_to("ned@corp.test", timeout=30) if b"Quarantine:" in m[2]]
        nbody = email.message_from_bytes(ned[-1][2], policy=email.policy.default).get_content()
        self.assertIn(ids[1], nbody)
        self.assertNotIn(ids[0], nbody)
        self.assertNotIn("first for mia", nbody)


if __name__ == "__main__":
    unittest.main()
