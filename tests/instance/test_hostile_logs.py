"""test_hostile_logs.py: what local users can learn from, or do to, Tern's
files outside the spool.

The mail log (maillog_file) holds senders, recipients, client addresses and
SASL user names: it must not be readable by every user, and it must keep
working when logrotate moves it away (every long-running daemon writes to
the new file). Local submission: a user who starts tern-drop and kills it
mid-stream leaves a partial maildrop file; it is logged with the user's uid
and removed, and a user cannot hold more than maildrop_partial_file_limit
of them at once.
"""
import grp
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

USER = "terntesthlg"


def setUpModule():
    if os.geteuid() != 0:
        raise unittest.SkipTest("these tests create a Unix user and check owners: run as root")
    subprocess.run(["userdel", USER], capture_output=True)
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/bin/sh", USER], check=True,
                   capture_output=True)


def tearDownModule():
    subprocess.run(["userdel", USER], capture_output=True)
    try:
        grp.getgrnam(USER)
        subprocess.run(["groupdel", USER], capture_output=True)
    except KeyError:
        pass


def as_user(*cmd, **kw):
    return subprocess.run(["runuser", "-u", USER, "--"] + list(cmd), capture_output=True,
                          timeout=20, **kw)


def send(inst, subject, rcpt="root@tern.test"):
    with inst.smtp() as s:
        s.sendmail("sender@example.org", [rcpt], "Subject: %s\r\n\r\nbody\r\n" % subject)


class TestMailLog(unittest.TestCase):
    def setUp(self):
        self.inst = harness.Instance("hlog")
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def test_mode_owner_group(self):
        st = os.stat(self.inst.log_path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, "tern")
        self.assertEqual(grp.getgrgid(st.st_gid).gr_name, "adm")
        r = as_user("cat", self.inst.log_path)
        self.assertNotEqual(r.returncode, 0, "a user read the mail log")

    def test_rotation_reaches_every_daemon(self):
        send(self.inst, "before rotation")
        self.inst.wait_log(r"tern/local\[\d+\]: \w+: to=<root@tern\.test>, .*status=sent", timeout=20)
        before = {pid for pid, _, name in self.inst.processes() if name in ("qmgr", "local")}
        # what logrotate does with "create 0640 tern adm"
        rotated = self.inst.log_path + ".1"
        os.rename(self.inst.log_path, rotated)
        fd = os.open(self.inst.log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        os.fchown(fd, pwd.getpwnam("tern").pw_uid, grp.getgrnam("adm").gr_gid)
        os.close(fd)
        time.sleep(1.2)             # writers check the path at most once a second
        send(self.inst, "after rotation")
        m = None
        deadline = time.time() + 20
        while time.time() < deadline:
            text = self.inst.log_text()
            m = re.search(r"tern/local\[\d+\]: (\w+): to=<root@tern\.test>, .*status=sent", text)
            if m:
                break
            time.sleep(0.2)
        self.assertTrue(m, "no delivery logged in the new file; old file:\n%s"
                        % open(rotated).read()[-2000:])
        qid = m.group(1)
        text = self.inst.log_text()
        for daemon in ("smtpd", "cleanup", "qmgr", "local"):
            self.assertRegex(text, r"tern/%s\[\d+\]: %s: " % (daemon, qid),
                             "%s still writes to the rotated file" % daemon)
        with open(rotated) as f:
            self.assertNotIn(qid, f.read())
        after = {pid for pid, _, name in self.inst.processes() if name in ("qmgr", "local")}
        self.assertTrue(before & after, "no long-running daemon was tested")


if __name__ == "__main__":
    unittest.main()
