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
    harness.remove_unix_users([USER])


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
        self.assertNotIn("maillog_file", self.inst.tern("check", check=False).stdout)
        # with the instance stopped: a daemon still starting would open the
        # log as root and give it its mode back before `tern check` looks
        self.inst.stop()
        os.chmod(self.inst.log_path, 0o644)
        self.assertRegex(self.inst.tern("check", check=False).stdout,
                         r"maillog_file .* is readable by every user")

    def rename_and_create(self):
        """What logrotate does with "create 0640 tern adm"."""
        os.rename(self.inst.log_path, self.inst.log_path + ".1")
        fd = os.open(self.inst.log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        os.fchown(fd, pwd.getpwnam("tern").pw_uid, grp.getgrnam("adm").gr_gid)
        os.close(fd)

    def run_logrotate(self):
        """Debian's logrotate with the file `make install` ships, pointed at
        this instance's log."""
        if not shutil.which("logrotate"):
            self.skipTest("logrotate is not installed (tools/install-deps)")
        with open(os.path.join(harness.BUILD, "conf", "tern.logrotate")) as f:
            conf = f.read().replace("/var/log/tern.log", self.inst.log_path)
        path = os.path.join(self.inst.dir, "logrotate.conf")
        with open(path, "w") as f:
            f.write(conf)
        r = subprocess.run(["logrotate", "-f", "-s", os.path.join(self.inst.dir, "logrotate.state"),
                            path], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(self.inst.log_path + ".1"), os.listdir(
            os.path.dirname(self.inst.log_path)))

    def check_rotation(self, rotate):
        send(self.inst, "before rotation")
        self.inst.wait_log(r"tern/local\[\d+\]: \w+: to=<root@tern\.test>, .*status=sent", timeout=20)
        before = {pid for pid, _, name in self.inst.processes() if name in ("qmgr", "local")}
        rotated = self.inst.log_path + ".1"
        rotate()
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
        st = os.stat(self.inst.log_path)
        self.assertEqual((stat.S_IMODE(st.st_mode), grp.getgrgid(st.st_gid).gr_name), (0o640, "adm"))
        after = {pid for pid, _, name in self.inst.processes() if name in ("qmgr", "local")}
        self.assertTrue(before & after, "no long-running daemon was tested")

    def test_rotation_reaches_every_daemon(self):
        self.check_rotation(self.rename_and_create)

    def test_logrotate_with_the_shipped_file(self):
        self.check_rotation(self.run_logrotate)


# ---- local submission ----

SENDMAIL = os.path.join(harness.BUILD, "sendmail", "sendmail")
TERN_DROP = os.path.join(harness.BUILD, "tern-drop", "tern-drop")


def submission_instance(name, main_cf=None):
    """An instance whose daemon directory has a set-group-ID terndrop copy
    of tern-drop, as `make install` and `tern setup` make it."""
    inst = harness.Instance(name)
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
    settings = {"daemon_directory": daemons, "command_directory": os.path.dirname(harness.TERN)}
    settings.update(main_cf or {})
    inst.set_main_cf(settings)
    return inst


def children_named(ppid, name):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%s/comm" % entry) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(fields[1]) == ppid and comm == name:
            out.append(int(entry))
    return out


class Submission:
    """sendmail as the test user, its stdin kept open: tern-drop is started
    and waits for the rest of the message."""

    def __init__(self, inst, first=b"Subject: slow\n\n"):
        self.proc = subprocess.Popen(["runuser", "-u", USER, "--", SENDMAIL, "-C", inst.dir,
                                      "root@tern.test"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.proc.stdin.write(first)
        self.proc.stdin.flush()
        self.drop = None
        deadline = time.time() + 10
        while time.time() < deadline and not self.drop:
            for sm in children_named(self.proc.pid, "sendmail"):
                found = children_named(sm, "tern-drop")
                if found:
                    self.drop = found[0]
            time.sleep(0.05)
        if not self.drop:
            self.end()
            raise AssertionError("tern-drop did not start")

    def end(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.stderr.read().decode(errors="replace")


class TestLocalSubmission(unittest.TestCase):
    LIMIT = 2

    def setUp(self):
        self.inst = submission_instance("hdrop", {"maildrop_partial_file_limit": str(self.LIMIT)})
        self.addCleanup(self.inst.cleanup)
        self.inst.start()
        self.maildrop = os.path.join(self.inst.queue_dir, "maildrop")
        self.uid = pwd.getpwnam(USER).pw_uid

    def poke_pickup(self):
        fd = os.open(os.path.join(self.inst.queue_dir, "public", "pickup"),
                     os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, b"W")
        os.close(fd)

    def partials(self):
        return sorted(n for n in os.listdir(self.maildrop) if n.startswith("."))

    def data_partials(self):
        """The unfinished files themselves (tern-drop's .uUID.K slot names
        are second links to them)."""
        return [n for n in self.partials() if not n.startswith(".u")]

    def wait_partials(self, n, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.partials()) != n:
            time.sleep(0.1)
        return self.partials()

    def test_killed_submission_is_logged_and_removed(self):
        sub = Submission(self.inst)
        try:
            chunk = b"x" * 1000 + b"\n"
            for _ in range(300):
                sub.proc.stdin.write(chunk)
            sub.proc.stdin.flush()
            time.sleep(0.5)
            os.kill(sub.drop, 9)
        finally:
            sub.end()
        self.assertTrue(self.partials(), "nothing left behind to find")
        time.sleep(2.5)
        self.poke_pickup()
        self.inst.wait_log(r"warning: maildrop: partial file maildrop/\.\w+ from uid %d "
                           r"\(\d+ bytes\) removed" % self.uid, timeout=10)
        self.assertEqual(self.wait_partials(0), [])

    def test_partial_files_are_bounded(self):
        held = [Submission(self.inst) for _ in range(self.LIMIT)]
        try:
            deadline = time.time() + 10
            while time.time() < deadline and len(self.data_partials()) < self.LIMIT:
                time.sleep(0.1)
            self.assertEqual(len(self.data_partials()), self.LIMIT)
            r = subprocess.run(["runuser", "-u", USER, "--", SENDMAIL, "-C", self.inst.dir,
                                "root@tern.test"], input=b"Subject: one more\n\nx\n",
                               capture_output=True, timeout=30)
            self.assertNotEqual(r.returncode, 0, "a submission beyond the bound was accepted")
            self.assertIn(b"too many unfinished submissions", r.stderr)
        finally:
            for sub in held:
                os.kill(sub.drop, 15)
            errors = [sub.end() for sub in held]
        # tern-drop removes its own file on SIGTERM
        self.assertEqual(self.wait_partials(0), [], errors)
        self.assertRegex(errors[0], r"partial file maildrop/\.\w+ from uid %d" % self.uid)
        r = subprocess.run(["runuser", "-u", USER, "--", SENDMAIL, "-C", self.inst.dir,
                            "root@tern.test"], input=b"Subject: after\n\nx\n",
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
