"""test_user_lists.py: whole-instance tests of the users' allow and deny
lists and of the correspondent allowlist (check_recipient_lists,
lib/global/user_lists.c, `tern lists`): a sender on a user's deny list is
refused at RCPT with 550; one on the allow list is accepted without asking
the greylisting policy server of the test (which defers everything it is
asked) and the delivered message carries X-Tern-Allowlisted:; a user who
authenticated (or a mynetworks client) sends out, and the correspondent's
reply skips the policy server and is marked too; the table is shown by
`tern map query`, keeps its size bound and forgets after its TTL; hostile
users and patterns are refused with clear errors.

Untrusted clients connect from 127.0.0.2; mynetworks is 127.0.0.1/32.
corp.test is a relay domain delivered to the SMTP sink of the test, and
mail to other domains goes to the same sink as relayhost.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
import sink as sinkmod  # noqa: E402

GREYLIST = "451 4.7.1 Greylisted by the test policy server"
PASSWORD = "carol's own secret"


class Greylister(servers.Server):
    """A policy server (Postfix's policy delegation protocol) that defers
    every request; it keeps the senders and recipients it was asked about."""

    def __init__(self):
        self.asked = []
        super().__init__()

    def handle(self, conn):
        buf = b""
        conn.settimeout(30)
        for _ in range(1000):                      # requests on one connection
            while b"\n\n" not in buf:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data or len(buf) > 65536:
                    return
                buf += data
            req, buf = buf.split(b"\n\n", 1)
            attrs = dict(l.split("=", 1) for l in req.decode("utf-8", "replace").split("\n") if "=" in l)
            with self.lock:
                self.asked.append((attrs.get("sender", ""), attrs.get("recipient", "")))
            conn.sendall(("action=%s\n\n" % GREYLIST).encode())

    def was_asked(self, sender):
        with self.lock:
            return [a for a in self.asked if a[0].lower() == sender.lower()]


def password_hash(password):
    return subprocess.run(["openssl", "passwd", "-6", password], capture_output=True, text=True,
                          check=True).stdout.strip()


class ListsTest(unittest.TestCase):
    params = {}

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("instances drop privileges to the tern account: run as root")
        cls.tmp = tempfile.mkdtemp(prefix="tern-lists-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        passwd = os.path.join(cls.tmp, "passwd")
        with open(passwd, "w") as f:
            f.write("carol %s\n" % password_hash(PASSWORD))
        os.chmod(passwd, 0o600)
        cls.sink = sinkmod.Sink()
        cls.addClassCleanup(cls.sink.stop)
        cls.policy = Greylister()
        cls.addClassCleanup(cls.policy.stop)
        settings = {
            "mynetworks": "127.0.0.1/32",
            "smtpd_peername_lookup": "no",
            "relay_domains": "corp.test",
            "transport_maps": "inline:{ corp.test=smtp:[127.0.0.1]:%d }" % cls.sink.port,
            "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "tern",
            "smtpd_sasl_password_maps": "texthash:" + passwd,
            "smtpd_recipient_restrictions": "permit_sasl_authenticated, permit_mynetworks, "
                                            "reject_unauth_destination, check_recipient_lists, "
                                            "check_policy_service inet:127.0.0.1:%d" % cls.policy.port,
            "user_lists_max_entries": "6",
        }
        settings.update(cls.params)
        cls.inst = harness.Instance("lists", main_cf=settings)
        cls.addClassCleanup(cls.inst.cleanup)
        cls.inst.start()
        cls.lists_dir = os.path.join(cls.inst.dir, "data", "lists")

    # ---- helpers ----

    def lists(self, *args, check=True):
        return self.inst.tern("lists", *args, check=check)

    def client(self, source="127.0.0.2"):
        return harness.RawSession(self.inst.port, source=source)

    def cmd(self, c, line):
        c.send(line + "\r\n")
        code, lines = c.read_reply()
        return code, " ".join(l[4:] for l in lines)

    def rcpt(self, sender, rcpt):
        """(code, text) of RCPT TO after MAIL FROM, from an untrusted client."""
        c = self.client()
        try:
            self.cmd(c, "EHLO client.test")
            self.assertEqual(self.cmd(c, "MAIL FROM:<%s>" % sender)[0], 250)
            return self.cmd(c, "RCPT TO:<%s>" % rcpt)
        finally:
            c.close()

    def deliver(self, sender, rcpt, subject, extra=""):
        """A whole message from an untrusted client (extra: header lines
        before its own); the sink's copy."""
        c = self.client()
        try:
            self.cmd(c, "EHLO client.test")
            self.assertEqual(self.cmd(c, "MAIL FROM:<%s>" % sender)[0], 250)
            code, text = self.cmd(c, "RCPT TO:<%s>" % rcpt)
            self.assertEqual(code, 250, text)
            self.assertEqual(self.cmd(c, "DATA")[0], 354)
            c.send("%sFrom: <%s>\r\nSubject: %s\r\n\r\nhello\r\n.\r\n" % (extra, sender, subject))
            self.assertEqual(c.read_reply()[0], 250)
            self.cmd(c, "QUIT")
        finally:
            c.close()
        return self.wait_sink(subject)

    def wait_sink(self, subject, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for m in list(self.sink.handler.messages):
                if ("Subject: %s\r\n" % subject).encode() in m[2] or \
                        ("Subject: %s\n" % subject).encode() in m[2]:
                    return m
            time.sleep(0.05)
        self.fail("the sink did not get %r" % subject)

    def send_out(self, sender, rcpts, subject, login=True, source="127.0.0.2", wait=True, extra=""):
        """Mail out from an authenticated user (or a mynetworks client);
        the sink's copy (with wait)."""
        import smtplib
        s = smtplib.SMTP(timeout=15, source_address=(source, 0))
        try:
            s.connect("127.0.0.1", self.inst.port)
            s.ehlo("laptop.corp.test")
            if login:
                s.login("carol", PASSWORD)
            s.sendmail(sender, rcpts, "%sFrom: <%s>\r\nSubject: %s\r\n\r\nhi\r\n" % (extra, sender, subject))
        finally:
            s.quit()
        return self.wait_sink(subject) if wait else None

    def map_query(self, *keys):
        return self.inst.tern("map", "query", "btree:%s/correspondents" % self.lists_dir, *keys,
                              check=False)

    def wait_recorded(self, key, timeout=10):
        """smtpd writes correspondents in batches, within a second or so:
        the table's answer for key once it is there."""
        deadline = time.time() + timeout
        while True:
            r = self.map_query(key)
            if r.returncode == 0 or time.time() > deadline:
                return r
            time.sleep(0.1)


class TestUserLists(ListsTest):

    def test_deny_list_rejects_at_rcpt(self):
        self.lists("add", "alice@corp.test", "deny", "spammer@evil.test")
        self.lists("add", "Alice@Corp.Test", "deny", "@bad.test")
        for sender in ("spammer@evil.test", "SPAMMER@Evil.Test", "anyone@bad.test"):
            code, text = self.rcpt(sender, "alice@corp.test")
            self.assertEqual(code, 550, (sender, text))
            self.assertIn("5.7.1", text)
            self.assertIn("the recipient <alice@corp.test> does not accept mail from this sender", text)
        self.inst.wait_log(r"NOQUEUE: reject: RCPT from \S+: 550 5\.7\.1 <spammer@evil\.test>: "
                           r"Sender address rejected")
        # another user, or a sender of a subdomain: the greylisting server decides
        self.assertEqual(self.rcpt("spammer@evil.test", "bob@corp.test")[0], 451)
        self.assertEqual(self.rcpt("x@sub.bad.test", "alice@corp.test")[0], 451)
        self.assertTrue(self.policy.was_asked("x@sub.bad.test"))

    def test_allow_list_skips_the_policy_server_and_marks(self):
        self.lists("add", "dan@corp.test", "allow", "@friend.test")
        m = self.deliver("pat@friend.test", "dan@corp.test", "from a friend")
        self.assertFalse(self.policy.was_asked("pat@friend.test"))
        lines = m[2].replace(b"\r\n", b"\n").split(b"\n")
        self.assertIn(b"X-Tern-Allowlisted: <dan@corp.test> allow list", lines)
        # Tern's mark comes before every field the sender wrote
        self.assertLess(lines.index(b"X-Tern-Allowlisted: <dan@corp.test> allow list"),
                        lines.index(b"From: <pat@friend.test>"))
        # for another recipient the same sender is greylisted
        self.assertEqual(self.rcpt("pat@friend.test", "bob@corp.test")[0], 451)
        # an address entry wins over a domain entry
        self.lists("add", "dan@corp.test", "deny", "@mixed.test")
        self.lists("add", "dan@corp.test", "allow", "good@mixed.test")
        self.assertEqual(self.rcpt("good@mixed.test", "dan@corp.test")[0], 250)
        self.assertEqual(self.rcpt("other@mixed.test", "dan@corp.test")[0], 550)
        out = self.lists("show", "dan@corp.test").stdout
        self.assertEqual(out, "allow @friend.test\ndeny @mixed.test\nallow good@mixed.test\n")
        self.lists("remove", "dan@corp.test", "deny", "@mixed.test")
        self.assertEqual(self.rcpt("other@mixed.test", "dan@corp.test")[0], 451)

    def test_auto_replies_not_recorded(self):
        """An out-of-office reply to a forged sender must not put the
        forger on the user's allowlist: auto-replies (RFC 3834) and bulk
        mail are not recorded; a message saying Auto-Submitted: no is."""
        cases = [("evil1@forger.test", "Auto-Submitted: auto-replied (vacation)\r\n"),
                 ("evil2@forger.test", "auto-submitted:\r\n\tauto-generated\r\n"),
                 ("evil3@forger.test", "X-Mailer: x\r\nPrecedence: bulk\r\n"),
                 ("evil4@forger.test", "List-Id: <news.corp.test>\r\n")]
        for i, (rcpt, extra) in enumerate(cases):
            self.send_out("carol@corp.test", [rcpt], "auto %d" % i, extra=extra)
        note = "an automatic reply or bulk mail: its recipients are not recorded as correspondents"
        deadline = time.time() + 10
        while self.inst.log_text().count(note) < len(cases) and time.time() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.inst.log_text().count(note), len(cases))
        # a plain message after them: once it is recorded, the batch with
        # the others (had they been recorded) is written as well
        self.send_out("carol@corp.test", ["fine@pal.test"], "not auto",
                      extra="Auto-Submitted: no\r\n")
        self.assertEqual(self.wait_recorded("carol@corp.test fine@pal.test").returncode, 0)
        for rcpt, _ in cases:
            self.assertNotEqual(self.map_query("carol@corp.test " + rcpt).returncode, 0, rcpt)
        # the forger's next message to carol is greylisted as any stranger's
        self.assertEqual(self.rcpt("evil1@forger.test", "carol@corp.test")[0], 451)

    def test_forged_marks_removed(self):
        """A sender's own X-Tern-Allowlisted: fields never reach the
        mailbox; Tern's open the header section."""
        self.lists("add", "erin@corp.test", "allow", "@partner.test")
        forged = ("X-Tern-Allowlisted: <boss@corp.test> allow list\r\n"
                  "x-tern-allowlisted: none\r\n")
        m = self.deliver("anna@partner.test", "erin@corp.test", "forged marks", extra=forged)
        lines = m[2].replace(b"\r\n", b"\n").split(b"\n")
        marks = [l for l in lines if l.lower().startswith(b"x-tern-allowlisted:")]
        self.assertEqual(marks, [b"X-Tern-Allowlisted: <erin@corp.test> allow list"])
        # right after Tern's Received: (and its continuation lines)
        first = next(i for i, l in enumerate(lines) if l and not l[:1].isspace() and i > 0)
        self.assertEqual(lines[first], marks[0])
        # mail the restriction never looked at (mynetworks) gets no mark,
        # and loses a forged one
        self.send_out("dave@corp.test", ["x@pal.test"], "out with forged", login=False,
                      source="127.0.0.1", extra=forged)
        out = self.wait_sink("out with forged")
        self.assertNotIn(b"X-Tern-Allowlisted", out[2])

    def test_correspondent_reply_skips_greylisting(self):
        self.send_out("carol@corp.test", ["pen@pal.test"], "carol writes")
        r = self.wait_recorded("carol@corp.test pen@pal.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(abs(int(r.stdout.split()[-1]) - time.time()), 120)
        # the reply: no policy request, and the mark
        m = self.deliver("Pen@Pal.Test", "carol@corp.test", "pen answers")
        self.assertFalse(self.policy.was_asked("pen@pal.test"))
        self.assertIn(b"X-Tern-Allowlisted: <carol@corp.test> correspondent", m[2])
        # a stranger of the same domain, and pen writing to someone else
        self.assertEqual(self.rcpt("stranger@pal.test", "carol@corp.test")[0], 451)
        self.assertEqual(self.rcpt("pen@pal.test", "bob@corp.test")[0], 451)
        # a mynetworks client's mail counts too
        self.send_out("dave@corp.test", ["quinn@pal.test"], "dave writes", login=False,
                      source="127.0.0.1")
        self.assertEqual(self.wait_recorded("dave@corp.test quinn@pal.test").returncode, 0)
        self.assertEqual(self.rcpt("quinn@pal.test", "dave@corp.test")[0], 250)
        # the files are mail_owner's alone
        for name in ("correspondents.db", "user_lists.db", "correspondents.lock"):
            st = os.stat(os.path.join(self.lists_dir, name))
            self.assertEqual(st.st_mode & 0o077, 0, name)
        self.assertEqual(os.stat(self.lists_dir).st_mode & 0o777, 0o700)

    def test_concurrent_writers(self):
        """Sessions in parallel record their correspondents while `tern
        lists` writes and smtpd reads: every pair is there afterwards."""
        import concurrent.futures
        pairs = [("w%d@corp.test" % t, "c%d-%d@pal.test" % (t, i)) for t in range(4) for i in range(5)]

        def one(t):
            for sender, rcpt in pairs[t * 5:(t + 1) * 5]:
                self.send_out(sender, [rcpt], "parallel %s" % rcpt, login=False, source="127.0.0.1")
            return True

        def lists(t):
            for i in range(10):
                self.lists("add", "busy@corp.test", "deny", "x%d-%d@spam.test" % (t, i % 3))
                self.rcpt("x%d-0@spam.test" % t, "busy@corp.test")
            return True

        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as ex:
            jobs = [ex.submit(one, t) for t in range(4)] + [ex.submit(lists, t) for t in range(2)]
            self.assertTrue(all(j.result(timeout=120) for j in jobs))
        for sender, rcpt in pairs:
            self.assertEqual(self.wait_recorded("%s %s" % (sender, rcpt)).returncode, 0, (sender, rcpt))
        self.assertEqual(sorted(self.lists("show", "busy@corp.test").stdout.split("\n")[:-1]),
                         sorted("deny x%d-%d@spam.test" % (t, i) for t in range(2) for i in range(3)))

    def test_hostile_input(self):
        bad = [
            (["add", "a b@corp.test", "allow", "x@y.test"], "the user must not contain blanks"),
            (["add", "ab@corp.test", "allow", "x y@y.test"], "the pattern must not contain blanks"),
            (["add", "ab@corp.test", "allow", "x\x01@y.test"], "control characters"),
            (["add", "ab@corp.test", "allow", "x@y.test,deny:@z"], "must not contain"),
            (["add", "ab@corp.test", "allow", "noatsign"], "an address (user@domain) or a domain"),
            (["add", "@corp.test", "allow", "x@y.test"], "the user must be an address"),
            (["add", "ab@corp.test", "allow", "x@" + "y" * 300 + ".test"], "too long"),
            (["add", "ab@corp.test", "allowx", "x@y.test"], "allow or deny"),
            (["add", "ab@corp.test", "allow"], "wrong number of arguments"),
            (["frob", "ab@corp.test"], "unknown action"),
        ]
        for args, text in bad:
            r = self.lists(*args, check=False)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(text, r.stderr, args)
        # the bound of user_lists_max_entries (6)
        for i in range(6):
            self.lists("add", "full@corp.test", "deny", "s%d@spam.test" % i)
        r = self.lists("add", "full@corp.test", "deny", "s6@spam.test", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("are full (6 entries, user_lists_max_entries)", r.stderr)
        self.assertIn("already listed", self.lists("add", "full@corp.test", "deny", "s0@spam.test").stdout)
        r = self.lists("remove", "full@corp.test", "allow", "s0@spam.test", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is not on the allow list", r.stderr)
        # hostile RCPT and MAIL addresses do not get past the SMTP parser
        # into the tables; quoted local parts are looked up as given
        self.assertEqual(self.rcpt('"a b"@evil.test', "full@corp.test")[0], 451)


class TestCorrespondentBound(ListsTest):
    """A small table with a short life: at most 10 pairs, 5 seconds."""

    params = {"correspondent_allowlist_size": "10", "correspondent_allowlist_ttl": "5s"}

    def test_size_bound_and_ttl(self):
        rcpts = ["r%02d@pal.test" % i for i in range(25)]
        self.send_out("carol@corp.test", rcpts, "to many")
        self.assertEqual(self.wait_recorded("#count").returncode, 0)
        found = [r for r in rcpts if self.map_query("carol@corp.test " + r).returncode == 0]
        self.assertLessEqual(len(found), 10)
        self.assertGreater(len(found), 0)
        count = self.map_query("#count")
        self.assertEqual(count.returncode, 0)
        self.assertLessEqual(int(count.stdout.split()[-1]), 10)
        # the newest pair is always kept, and is forgotten after the TTL
        self.send_out("carol@corp.test", ["ttl@pal.test"], "ttl test", wait=False)
        self.assertEqual(self.wait_recorded("carol@corp.test ttl@pal.test").returncode, 0)
        self.assertEqual(self.rcpt("ttl@pal.test", "carol@corp.test")[0], 250)
        time.sleep(6.5)
        self.assertEqual(self.rcpt("ttl@pal.test", "carol@corp.test")[0], 451)
        count = self.map_query("#count")
        self.assertLessEqual(int(count.stdout.split()[-1]), 10)


class TestCorrespondentsAtStop(ListsTest):
    """smtpd writes correspondents in batches; the pairs that wait when it
    is told to stop are written before it exits, not lost."""

    def test_stop_writes_waiting_pairs(self):
        rcpts = ["late%d@pal.test" % i for i in range(5)]
        self.send_out("carol@corp.test", rcpts, "just before stop", wait=False)
        self.inst.stop()                 # well within the batch's second
        for r in rcpts:
            self.assertEqual(self.map_query("carol@corp.test " + r).returncode, 0, r)
        self.assertNotRegex(self.inst.log_text(), r"correspondent allowlist: ")


class TestCorrespondentsDamaged(ListsTest):
    """The correspondents table is a cache: when it cannot be read, mail
    goes on to the checks after it instead of being deferred by it."""

    def test_unreadable_table_defers_nothing(self):
        self.send_out("carol@corp.test", ["pen@pal.test"], "before the damage")
        self.assertEqual(self.wait_recorded("carol@corp.test pen@pal.test").returncode, 0)
        path = os.path.join(self.lists_dir, "correspondents.db")
        st = os.stat(path)
        with open(path, "r+b") as f:
            f.write(b"\xff" * 4096)          # no longer a Berkeley DB file
        os.chown(path, st.st_uid, st.st_gid)
        code, text = self.rcpt("pen@pal.test", "carol@corp.test")
        self.assertNotIn("Temporary lookup failure", text)
        self.assertTrue(self.policy.was_asked("pen@pal.test"))
        # the users' own lists are still asked: a deny list is obeyed
        self.lists("add", "carol@corp.test", "deny", "spam@pal.test")
        self.assertEqual(self.rcpt("spam@pal.test", "carol@corp.test")[0], 550)
        self.inst.wait_log(r"warning: correspondents: ")


class TestCorrespondentOff(ListsTest):
    """correspondent_allowlist = no: nothing recorded, nothing skipped."""

    params = {"correspondent_allowlist": "no"}

    def test_links_refused(self):
        """A link in place of the folder or of a lock file (what only a
        process of mail_owner's could plant) is refused, not followed."""
        self.lists("show", "x@corp.test")          # makes the folder and the lock
        owner = os.stat(self.lists_dir)
        real = self.lists_dir + ".real"
        os.rename(self.lists_dir, real)
        os.symlink(real, self.lists_dir)
        os.lchown(self.lists_dir, owner.st_uid, owner.st_gid)
        try:
            r = self.lists("show", "x@corp.test", check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("cannot open %s" % self.lists_dir, r.stderr)
        finally:
            os.unlink(self.lists_dir)
            os.rename(real, self.lists_dir)
        lock = os.path.join(self.lists_dir, "user_lists.lock")
        victim = os.path.join(self.tmp, "victim")
        with open(victim, "w") as f:
            f.write("untouched\n")
        os.unlink(lock)
        os.symlink(victim, lock)
        os.lchown(lock, owner.st_uid, owner.st_gid)
        try:
            r = self.lists("add", "x@corp.test", "deny", "@spam.test", check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("cannot open the lock file", r.stderr)
            with open(victim) as f:
                self.assertEqual(f.read(), "untouched\n")
        finally:
            os.unlink(lock)

    def test_nothing_recorded(self):
        self.send_out("carol@corp.test", ["off@pal.test"], "off writes")
        self.assertNotEqual(self.map_query("carol@corp.test off@pal.test").returncode, 0)
        self.assertEqual(self.rcpt("off@pal.test", "carol@corp.test")[0], 451)


if __name__ == "__main__":
    unittest.main()
