"""test_virtual.py: whole-instance tests of the virtual delivery agent.

One instance with two virtual mailbox domains (a.example, b.example) and
no Unix accounts: a.example's mailboxes are written as uid/gid 5000
(static:5000), b.example's as 5001 from a per-recipient table. Mail goes
the whole way: SMTP (or sendmail) to smtpd, cleanup, qmgr and the virtual
agent. Checked: Maildir and mbox mailboxes with their owners and modes,
the log lines, the refusal at RCPT of an address virtual_mailbox_maps
does not list, a uid below virtual_minimum_uid (deferred, nothing
written), virtual_mailbox_limit (bounced, 5.2.2), a symbolic link planted
at an mbox and at a Maildir (not followed, deferred with a clear reason),
virtual aliases into a virtual mailbox domain, a mail loop (a
Delivered-To: header of the recipient: bounced, 5.4.6), and tern check's warning
about a domain in both mydestination and virtual_mailbox_domains.
"""
import os
import re
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import maildir_files, read_bytes  # noqa: E402

VUID, VUID_B = 5000, 5001
BIG_LIMIT = 200000
BODY = "first line\nFrom the body, quoted in mbox only\nlast line\n"

LOG = (r"%s: to=<%s>, %srelay=virtual, delay=\d+(\.\d+)?, delays=\d+(\.\d+)?/\d+(\.\d+)?/0/"
       r"\d+(\.\d+)?, dsn=%s, status=%s \(%s")


def setUpModule():
    if os.geteuid() != 0:
        raise unittest.SkipTest("virtual delivery changes to the tables' uids: run as root")
    if not os.path.exists(os.path.join(harness.LIBEXEC, "virtual")):
        raise unittest.SkipTest("the virtual agent is not built")


def message(subject, to, size=0, headers=""):
    text = "%sFrom: Sender <sender@example.org>\nTo: %s\nSubject: %s\n\n%s" % (
        headers, to, subject, BODY)
    if size:
        line = "x" * 75 + "\n"
        text += line * (size // len(line) + 1)
    return text


def wait_for(check, what, inst, timeout=20):
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("%s did not happen; log:\n%s" % (what, inst.log_tail(40)))
        time.sleep(0.05)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class TestVirtual(unittest.TestCase):
    inst = None

    @classmethod
    def setUpClass(cls):
        cls.inst = inst = harness.Instance("virtual")
        d = inst.dir
        cls.base = base = os.path.join(d, "vmail")
        os.mkdir(base)
        os.chmod(base, 0o755)
        # each domain's directory belongs to the uid its mailboxes are
        # written as (an mbox file's directory is not created, as in
        # Postfix; a Maildir and its missing parents are)
        for domain, uid in (("a.example", VUID), ("b.example", VUID_B)):
            os.mkdir(os.path.join(base, domain))
            os.chown(os.path.join(base, domain), uid, uid)
            os.chmod(os.path.join(base, domain), 0o700)
        write(os.path.join(d, "vmailbox"),
              "alice@a.example   a.example/users/alice/\n"
              "bob@a.example     a.example/bob\n"
              "low@a.example     a.example/low/\n"
              "big@a.example     a.example/big\n"
              "bigdir@a.example  a.example/bigdir/\n"
              "link@a.example    a.example/link\n"
              "linkdir@a.example a.example/linkdir/\n"
              "carol@b.example   b.example/carol/\n"
              "dave@b.example    b.example/dave\n"
              "x@both.example    a.example/x/\n"
              "eve@a.example     a.example/ro/eve\n")
        write(os.path.join(d, "vuid"), "carol@b.example 5001\ndave@b.example 5001\n"
                                       "low@a.example 50\n")
        # keys are tried one at a time through every table (Postfix's
        # order), so static: answers before an @domain entry would
        write(os.path.join(d, "vgid"), "carol@b.example 5001\ndave@b.example 5001\n")
        write(os.path.join(d, "valias"), "info@a.example alice@a.example\n"
                                         "sales@alias.example carol@b.example\n")
        inst.set_main_cf({
            "virtual_mailbox_domains": "a.example, B.Example, both.example",
            "virtual_mailbox_base": base,
            "virtual_mailbox_maps": "texthash:%s/vmailbox" % d,
            "virtual_uid_maps": "texthash:%s/vuid, static:%d" % (d, VUID),
            "virtual_gid_maps": "texthash:%s/vgid, static:%d" % (d, VUID),
            "virtual_alias_domains": "alias.example, both.example",
            "virtual_alias_maps": "texthash:%s/valias" % d,
            "virtual_mailbox_limit": str(BIG_LIMIT),
            "deliver_lock_attempts": "2",
        })
        try:
            inst.start()
        except BaseException:
            inst.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.inst:
            cls.inst.cleanup()

    def send(self, rcpts, subject, size=0, headers=""):
        with self.inst.smtp() as s:
            s.sendmail("sender@example.org", rcpts, message(subject, rcpts[0], size, headers))

    def assert_owned(self, path, uid, mode):
        st = os.lstat(path)
        self.assertEqual((st.st_uid, st.st_gid), (uid, uid), path)
        self.assertEqual(stat.S_IMODE(st.st_mode), mode, path)

    def test_maildir_as_static_uid(self):
        self.send(["alice@a.example"], "maildir")
        box = os.path.join(self.base, "a.example", "users", "alice")
        files = wait_for(lambda: maildir_files(box), "delivery to alice's Maildir", self.inst)
        self.assertEqual(len(files), 1)
        data = read_bytes(files[0])
        # X-Original-To: the address as the mail arrived, as Postfix's virtual writes it
        self.assertTrue(data.startswith(b"Return-Path: <sender@example.org>\n"
                                        b"X-Original-To: alice@a.example\n"
                                        b"Delivered-To: alice@a.example\n"), data[:200])
        self.assertIn(b"Subject: maildir\n", data)
        self.assertIn(b"\n\n" + BODY.encode(), data)      # no >From quoting in a Maildir
        # missing directories were made by the tables' uid, never by root
        self.assert_owned(os.path.join(self.base, "a.example", "users"), VUID, 0o700)
        for sub in ("", "tmp", "new", "cur"):
            self.assert_owned(os.path.join(box, sub), VUID, 0o700)
        self.assert_owned(files[0], VUID, 0o600)
        self.assertRegex(os.path.basename(files[0]), r"^\d+\.M\d{6}P\d+_\d+\.tern\.test$")
        self.inst.wait_log(LOG % (r"\w+", "alice@a.example", "", r"2\.0\.0", "sent",
                                  r"delivered to maildir\)"))

    def test_mbox_as_table_uid_and_static_uid(self):
        self.send(["dave@b.example", "bob@a.example"], "mbox")
        for rcpt in ("dave@b.example", "bob@a.example"):
            self.inst.wait_log(LOG % (r"\w+", rcpt, "", r"2\.0\.0", "sent",
                                      r"delivered to mailbox\)"), timeout=20)
        for path, uid in ((os.path.join(self.base, "b.example", "dave"), VUID_B),
                          (os.path.join(self.base, "a.example", "bob"), VUID)):
            wait_for(lambda: os.path.exists(path) and read_bytes(path).endswith(b"\n\n"),
                     "delivery to %s" % path, self.inst)
            data = read_bytes(path)
            self.assertTrue(data.startswith(b"From sender@example.org  "), data[:100])
            self.assertIn(b"\nReturn-Path: <sender@example.org>\nX-Original-To: ", data)
            self.assertIn(b"\n>From the body, quoted in mbox only\n", data)
            self.assert_owned(path, uid, 0o600)
            self.assertFalse(os.path.exists(path + ".lock"))

    def test_mbox_in_a_directory_the_uid_may_not_write(self):
        # the administrator made the mailbox; the dot-lock cannot be made
        # there and is skipped (Postfix's "dot-lock may fail"), fcntl stays
        ro = os.path.join(self.base, "a.example", "ro")
        os.mkdir(ro, 0o755)
        path = os.path.join(ro, "eve")
        write(path, "")
        os.chown(path, VUID, VUID)
        os.chmod(path, 0o600)
        self.send(["eve@a.example"], "no dot-lock")
        self.inst.wait_log(LOG % (r"\w+", "eve@a.example", "", r"2\.0\.0", "sent",
                                  r"delivered to mailbox\)"), timeout=20)
        self.assertIn(b"Subject: no dot-lock\n", read_bytes(path))
        self.assertEqual(os.listdir(ro), ["eve"])

    def test_unlisted_recipient_refused_at_rcpt(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail("sender@example.org")
            code, text = s.rcpt("nobody@a.example")
            self.assertEqual(code, 550)
            self.assertEqual(text.decode(), "5.1.1 <nobody@a.example>: Recipient address "
                                            "rejected: User unknown in virtual mailbox table")
            code, text = s.rcpt("nobody@b.example")
            self.assertEqual(code, 550)
            # a listed one is taken in the same transaction
            self.assertEqual(s.rcpt("carol@b.example")[0], 250)
            s.rset()
        self.inst.wait_log(r"NOQUEUE: reject: RCPT from [^:]*: 550 5\.1\.1 <nobody@a\.example>: "
                           r"Recipient address rejected: User unknown in virtual mailbox table")

    def test_virtual_alias_domain_wins_over_virtual_mailbox_domain(self):
        # Postfix's order: a domain in both lists is an alias domain, so an
        # address virtual_alias_maps does not list is unknown there
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail("sender@example.org")
            code, text = s.rcpt("x@both.example")
            self.assertEqual((code, text.decode()), (550, "5.1.1 <x@both.example>: Recipient "
                             "address rejected: User unknown in virtual alias table"))
            s.rset()
        r = self.inst.tern("check", check=False)
        self.assertIn("do not list domain both.example in BOTH virtual_alias_domains and "
                      "virtual_mailbox_domains", r.stdout + r.stderr)

    def test_uid_below_minimum_deferred(self):
        self.send(["low@a.example"], "low uid")
        m = self.inst.wait_log(LOG % (r"(\w+)", "low@a.example", "", r"4\.3\.5", "deferred",
                                      r"mail system configuration error: virtual_uid_maps gives "
                                      r"low@a\.example uid 50, below virtual_minimum_uid \(100\)"),
                               timeout=20)
        self.assertFalse(os.path.exists(os.path.join(self.base, "a.example", "low")))
        qid = m.group(1)
        wait_for(lambda: os.path.exists(os.path.join(self.inst.queue_dir, "deferred", qid)),
                 "the message waiting in deferred/", self.inst)

    def test_limit_exceeded_bounced(self):
        self.send(["big@a.example", "bigdir@a.example"], "too big", size=BIG_LIMIT + 1000)
        self.inst.wait_log(LOG % (r"\w+", "big@a.example", "", r"5\.2\.2", "bounced",
                                  r"cannot update mailbox \S+/a\.example/big for big@a\.example: "
                                  r"the message would exceed virtual_mailbox_limit \(%d bytes\)\)"
                                  % BIG_LIMIT), timeout=20)
        self.inst.wait_log(LOG % (r"\w+", "bigdir@a.example", "", r"5\.2\.2", "bounced",
                                  r"maildir delivery failed: the message would exceed "
                                  r"virtual_mailbox_limit"), timeout=20)
        big = os.path.join(self.base, "a.example", "big")
        self.assertFalse(os.path.exists(big) and os.path.getsize(big) > 0)
        bigdir = os.path.join(self.base, "a.example", "bigdir")
        self.assertEqual(maildir_files(bigdir), [])
        self.assertEqual(maildir_files(bigdir, "tmp"), [])

    def test_symlink_at_mbox_not_followed(self):
        adir = os.path.join(self.base, "a.example")
        victim = os.path.join(self.inst.dir, "victim")
        write(victim, "precious\n")
        os.chown(victim, VUID, VUID)      # even a file the uid could write is not reached
        link = os.path.join(adir, "link")
        os.symlink(victim, link)
        os.lchown(link, VUID, VUID)
        self.send(["link@a.example"], "symlink")
        self.inst.wait_log(LOG % (r"\w+", "link@a.example", "", r"4\.2\.0", "deferred",
                                  r"cannot update mailbox \S+/a\.example/link for link@a\.example: "
                                  r"it is a symbolic link, which is not followed; remove it\)"),
                           timeout=20)
        self.assertEqual(read_bytes(victim), b"precious\n")
        self.assertTrue(os.path.islink(link))

    def test_symlink_at_maildir_not_followed(self):
        adir = os.path.join(self.base, "a.example")
        elsewhere = os.path.join(self.inst.dir, "elsewhere")
        os.mkdir(elsewhere)
        os.chown(elsewhere, VUID, VUID)
        link = os.path.join(adir, "linkdir")
        os.symlink(elsewhere, link)
        self.send(["linkdir@a.example"], "symlinked maildir")
        self.inst.wait_log(LOG % (r"\w+", "linkdir@a.example", "", r"4\.2\.0", "deferred",
                                  r"maildir delivery failed: create maildir directory "
                                  r"\S+/a\.example/linkdir/: is a symbolic link, which is not "
                                  r"followed; remove it\)"), timeout=20)
        self.assertEqual(os.listdir(elsewhere), [])

    def test_virtual_alias_into_virtual_mailbox_domain(self):
        self.send(["info@a.example"], "alias in the same domain")
        self.send(["sales@alias.example"], "alias from an alias domain")
        alice = os.path.join(self.base, "a.example", "users", "alice")
        carol = os.path.join(self.base, "b.example", "carol")
        got = wait_for(lambda: [f for f in maildir_files(alice)
                                if b"Subject: alias in the same domain" in read_bytes(f)],
                       "aliased mail for alice", self.inst)
        self.assertIn(b"X-Original-To: info@a.example\nDelivered-To: alice@a.example\n",
                      read_bytes(got[0]))
        got = wait_for(lambda: [f for f in maildir_files(carol)
                                if b"Subject: alias from an alias domain" in read_bytes(f)],
                       "aliased mail for carol", self.inst)
        self.assert_owned(got[0], VUID_B, 0o600)
        self.inst.wait_log(LOG % (r"\w+", "carol@b.example", r"orig_to=<sales@alias\.example>, ",
                                  r"2\.0\.0", "sent", r"delivered to maildir\)"))

    def test_mail_loop_bounced(self):
        self.send(["dave@b.example"], "loop", headers="Delivered-To: Dave@B.example\n")
        self.inst.wait_log(LOG % (r"\w+", "dave@b.example", "", r"5\.4\.6", "bounced",
                                  r"mail forwarding loop for dave@b\.example\)"), timeout=20)
        path = os.path.join(self.base, "b.example", "dave")
        self.assertNotIn(b"Subject: loop\n", read_bytes(path) if os.path.exists(path) else b"")

    def test_sendmail_submission(self):
        import test_sendmail
        r = test_sendmail.sendmail(self.inst, ["-f", "local@tern.test", "carol@b.example"],
                                   message("via sendmail", "carol@b.example"))
        self.assertEqual(r.returncode, 0, r.stderr)
        carol = os.path.join(self.base, "b.example", "carol")
        got = wait_for(lambda: [f for f in maildir_files(carol)
                                if b"Subject: via sendmail" in read_bytes(f)],
                       "mail from sendmail for carol", self.inst)
        data = read_bytes(got[0])
        self.assertTrue(data.startswith(b"Return-Path: <local@tern.test>\n"
                                        b"X-Original-To: carol@b.example\n"
                                        b"Delivered-To: carol@b.example\n"), data[:200])
        self.assert_owned(got[0], VUID_B, 0o600)


class TestCheck(unittest.TestCase):
    def test_domain_in_mydestination_and_virtual_mailbox_domains(self):
        inst = harness.Instance("virtual-check")
        self.addCleanup(inst.cleanup)
        inst.set_main_cf({"mydestination": "$myhostname, localhost, v.example",
                          "virtual_mailbox_domains": "V.example, w.example",
                          "virtual_mailbox_maps": "inline:{ a@v.example=v/a/ }"})
        r = inst.tern("check", check=False)
        out = r.stdout + r.stderr
        self.assertIn("do not list domain v.example in BOTH mydestination and "
                      "virtual_mailbox_domains: its mail is delivered locally", out)
        self.assertNotIn("w.example in BOTH", out)
        # a list without overlaps gets no such warning
        inst.set_main_cf({"mydestination": "$myhostname, localhost"})
        r = inst.tern("check", check=False)
        self.assertNotIn("in BOTH", r.stdout + r.stderr)
        self.assertNotIn("virtual_", r.stdout + r.stderr)
        # what the virtual agent would not start with is an error
        inst.set_main_cf({"virtual_mailbox_lock": "fcntl, flock", "virtual_minimum_uid": "0"})
        r = inst.tern("check", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('virtual_mailbox_lock: unknown lock style "flock"', r.stdout + r.stderr)
        self.assertIn("virtual_minimum_uid must be 1 or more", r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
