"""test_hostile_local.py: a local user attacks another user's mail.

Real Unix users (terntesthl*, created with useradd, removed with userdel):
the attacker runs as its own uid through runuser and tries what any user
of the host can do against the mail spool of an instance made by `tern
init`: plant VICTIM.lock, a VICTIM mailbox of its own, or a symlink named
VICTIM. None of it may keep the victim's mail from being delivered. In a
spool an administrator made world-writable (1777) the planted file cannot
be kept out: then the delivery is deferred at once, with a reason and a
warning log line that name the file and its owner, and `tern check` says
the spool is unsafe.
"""
import grp
import os
import pwd
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

VICTIM, ATTACKER = "terntesthlv", "terntesthla"
HOST = "tern.test"
_homes = None


def setUpModule():
    global _homes
    if os.geteuid() != 0:
        raise unittest.SkipTest("hostile local tests create Unix users: run as root")
    _homes = harness.make_unix_users((VICTIM, ATTACKER), 'tern-hostile-homes-')


def tearDownModule():
    harness.remove_unix_users((VICTIM, ATTACKER), _homes)


def as_attacker(*cmd):
    """Run cmd as the attacking user; its result (failure is expected)."""
    return subprocess.run(["runuser", "-u", ATTACKER, "--"] + list(cmd), capture_output=True,
                          timeout=20)


def send(inst, rcpt, subject):
    with inst.smtp() as s:
        s.sendmail("sender@example.org", [rcpt], "Subject: %s\r\n\r\nbody\r\n" % subject)


def wait_content(path, needle, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path, "rb") as f:
                if needle in f.read():
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


class HostileTestCase(unittest.TestCase):
    spool_mode = None           # None: as `tern init` made it

    def setUp(self):
        self.inst = harness.Instance("hostile")
        self.spool = os.path.join(self.inst.dir, "mail")
        if self.spool_mode is not None:
            os.chmod(self.spool, self.spool_mode)
        self.inst.start()
        self.box = os.path.join(self.spool, VICTIM)
        self.addCleanup(self.inst.cleanup)


class TestSpoolAttacks(HostileTestCase):
    """The spool of `tern init`: the attacker cannot plant anything, and the
    victim's mail arrives at once."""

    def assertDelivered(self, subject):
        send(self.inst, "%s@%s" % (VICTIM, HOST), subject)
        self.assertTrue(wait_content(self.box, subject.encode(), 15),
                        "mail to %s not delivered: %s" % (VICTIM, self.inst.log_tail()))
        st = os.lstat(self.box)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(st.st_uid, pwd.getpwnam(VICTIM).pw_uid)
        self.assertEqual(stat.S_IMODE(st.st_mode) & 0o077 & ~0o060, 0)
        # the content is visible before local takes its lock away
        deadline = time.time() + 10
        while os.path.exists(self.box + ".lock") and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists(self.box + ".lock"), "dot-lock left behind")

    def test_spool_mode(self):
        st = os.stat(self.spool)
        self.assertEqual(stat.S_IMODE(st.st_mode) & stat.S_IWOTH, 0, oct(st.st_mode))
        self.assertEqual((st.st_uid, grp.getgrgid(st.st_gid).gr_name), (0, "mail"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o2775)

    def test_planted_lock(self):
        as_attacker("touch", self.box + ".lock")
        self.assertDelivered("after a planted lock")

    def test_planted_mailbox(self):
        as_attacker("sh", "-c", "umask 0; : > %s" % self.box)
        self.assertDelivered("after a planted mailbox")

    def test_planted_symlink(self):
        target = os.path.join(_homes, ATTACKER, "stolen")
        as_attacker("touch", target)
        as_attacker("ln", "-s", target, self.box)
        self.assertDelivered("after a planted symlink")
        self.assertEqual(os.path.getsize(target), 0)

    def test_second_message_appends(self):
        self.assertDelivered("first")
        self.assertDelivered("second")
        with open(self.box, "rb") as f:
            self.assertIn(b"first", f.read())


class TestWorldWritableSpool(HostileTestCase):
    """A spool the administrator made 1777: planted files are found and
    reported at once, never waited for."""
    spool_mode = 0o1777

    def attacker_uid(self):
        return pwd.getpwnam(ATTACKER).pw_uid

    def assertReported(self, file_re, what_re):
        t0 = time.time()
        send(self.inst, "%s@%s" % (VICTIM, HOST), "blocked")
        owner = r"uid %d \(%s\)" % (self.attacker_uid(), ATTACKER)
        self.inst.wait_log(r"warning: cannot update mailbox %s for user %s: %s %s, owned by %s"
                           % (self.box, VICTIM, file_re, what_re, owner), timeout=10)
        self.inst.wait_log(r"to=<%s@tern\.test>, relay=local, .*dsn=4\.2\.0, status=deferred "
                           r"\(cannot update mailbox .*%s" % (VICTIM, owner), timeout=5)
        self.assertLess(time.time() - t0, 10, "local waited for a planted file")

    def test_check_warns(self):
        out = self.inst.tern("check", check=False)
        self.assertRegex(out.stdout + out.stderr, r"mail_spool_directory .* is world-writable")

    def test_planted_lock_reported(self):
        self.assertEqual(as_attacker("touch", self.box + ".lock").returncode, 0)
        self.assertReported(r"lock file %s\.lock" % self.box, "exists")

    def test_planted_mailbox_reported(self):
        self.assertEqual(as_attacker("touch", self.box).returncode, 0)
        self.assertReported(self.box, "is not owned by the recipient")

    def test_planted_symlink_reported(self):
        target = os.path.join(_homes, ATTACKER, "stolen")
        as_attacker("touch", target)
        self.assertEqual(as_attacker("ln", "-s", target, self.box).returncode, 0)
        self.assertReported(self.box, "is a symbolic link")
        self.assertEqual(os.path.getsize(target), 0)

    def test_stale_lock_removed(self):
        """A lock of the victim's own that is older than stale_lock_time was
        left by a crashed reader: removed, and the mail delivered."""
        lock = self.box + ".lock"
        open(lock, "w").close()
        pw = pwd.getpwnam(VICTIM)
        os.chown(lock, pw.pw_uid, pw.pw_gid)
        os.utime(lock, (time.time() - 3600, time.time() - 3600))
        send(self.inst, "%s@%s" % (VICTIM, HOST), "past a stale lock")
        self.assertTrue(wait_content(self.box, b"past a stale lock", 15), self.inst.log_tail())
        self.assertFalse(os.path.exists(lock))
        self.inst.wait_log(r"warning: mailbox %s for user %s: removed the lock file %s\.lock of "
                           r"uid %d \(%s\): older than stale_lock_time"
                           % (self.box, VICTIM, self.box, pw.pw_uid, VICTIM))


if __name__ == "__main__":
    unittest.main()
