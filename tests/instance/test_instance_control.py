"""test_instance_control.py: the instance as an administrator drives it:
tern init/start/status/stop/reload/check, master refusing a second start,
privilege separation of the daemons, restart of a crashed daemon, and
daemons ending by themselves when master is killed."""
import os
import signal
import time
import unittest

import harness


def send_one(inst, rcpt="postmaster@tern.test", body="Subject: t\r\n\r\nhello\r\n"):
    with inst.smtp() as s:
        s.ehlo("client.example")
        code, text = s.docmd("MAIL FROM:<a@example.org>")
        assert code == 250, text
        s.rcpt(rcpt)
        code, text = s.data(body)
        assert code == 250, text
        return text.decode().split()[-1]


class TestControl(unittest.TestCase):
    def setUp(self):
        self.inst = harness.Instance("ctl")
        self.addCleanup(self.inst.cleanup)

    def test_start_status_stop(self):
        self.assertEqual(self.inst.tern("status", check=False).returncode, 1)
        self.inst.start()
        st = self.inst.tern("status")
        self.assertIn("running: PID: %d" % self.inst.master_pid(), st.stdout)
        self.inst.wait_log(r"tern/master\[\d+\]: daemon started -- version")
        qid = send_one(self.inst)
        self.inst.wait_log(r"%s: from=<a@example.org>, size=\d+, nrcpt=1 \(queue active\)" % qid)
        procs = self.inst.processes()
        self.inst.stop()
        self.assertEqual(self.inst.tern("status", check=False).returncode, 1)
        self.inst.wait_log(r"terminating on signal 15")
        for pid, _, _ in procs:
            self.assertFalse(harness._alive(pid), "process %d survived stop" % pid)

    def test_abort(self):
        self.inst.start()
        send_one(self.inst)
        procs = self.inst.processes()
        r = self.inst.tern("abort")
        self.assertIn("aborted", r.stdout)
        self.assertEqual(self.inst.tern("status", check=False).returncode, 1)
        deadline = time.time() + 15
        while time.time() < deadline and any(harness._alive(p) for p, _, _ in procs):
            time.sleep(0.1)
        self.assertEqual([n for p, _, n in procs if harness._alive(p)], [])
        r = self.inst.tern("stop", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not running", r.stderr)

    def test_second_start_refused(self):
        self.inst.start()
        r = self.inst.tern("start", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("already running", r.stderr)
        # master itself refuses too, through its lock file
        master = os.path.join(harness.LIBEXEC, "master")
        import subprocess
        p = subprocess.run([master, "-c", self.inst.dir], capture_output=True, text=True, timeout=20)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("already running", p.stderr)

    def test_reload_adds_listener(self):
        self.inst.start()
        port2 = harness.free_port()
        with open(os.path.join(self.inst.dir, "master.cf"), "a") as f:
            f.write("127.0.0.1:%d inet n - n - - smtpd -o smtpd_banner=second-listener\n" % port2)
        self.inst.reload()
        self.inst.wait_log(r"reload -- version")
        self.inst.wait_port(port2)
        rs = harness.RawSession(port2)
        self.assertEqual(rs.greeting[0], 220)
        self.assertIn("second-listener", rs.greeting[1][0])
        rs.close()
        # the first listener still works after the reload
        send_one(self.inst)
        self.assertTrue(self.inst.master_pid())

    def test_bad_override_stops_the_daemon_at_start(self):
        # a master.cf -o value that does not parse for its type stops the
        # daemon when it starts, naming the parameter; the other listener
        # goes on serving
        self.inst.start()
        port2 = harness.free_port()
        with open(os.path.join(self.inst.dir, "master.cf"), "a") as f:
            f.write("127.0.0.1:%d inet n - n - - smtpd -o reject_code=250\n" % port2)
        self.inst.reload()
        self.inst.wait_port(port2)
        try:
            rs = harness.RawSession(port2)
            rs.close()
        except (OSError, EOFError, AssertionError):
            pass
        self.inst.wait_log(r'fatal: master.cf -o: parameter reject_code: bad reply code \(400 to 599\) value "250"')
        send_one(self.inst)

    def test_check(self):
        r = self.inst.tern("check")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.inst.set_main_cf(["smtpd_bogus_parameter = 1"])
        r = self.inst.tern("check", check=False)
        self.assertIn("unknown parameter smtpd_bogus_parameter", r.stdout)
        self.assertRegex(r.stdout, r"main\.cf:\d+: unknown parameter")
        # per-transport settings are known, and their values are checked
        self.inst.set_main_cf(["smtp_destination_concurrency_limit = 4",
                               "relay_destination_recipient_limit = lots"])
        r = self.inst.tern("check", check=False)
        self.assertNotIn("unknown parameter smtp_destination_concurrency_limit", r.stdout)
        self.assertIn("relay_destination_recipient_limit = lots is not a number", r.stdout)
        self.assertEqual(r.returncode, 1)
        self.inst.set_main_cf(["relay_destination_recipient_limit = 10"])
        self.inst.set_main_cf(["smtpd_timeout = soon"])
        r = self.inst.tern("check", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("parameter smtpd_timeout: bad time value", r.stdout)
        with open(os.path.join(self.inst.dir, "main.cf"), "a") as f:
            f.write("this line has no equals sign\n")
        r = self.inst.tern("check", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("missing '='", r.stdout + r.stderr)
        # a broken configuration also keeps start from starting
        r = self.inst.tern("start", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(self.inst.master_pid(), 0)

    def test_start_runs_the_check(self):
        self.inst.set_main_cf(["smtpd_timeout = soon", "smtpd_bogus_parameter = 1"])
        r = self.inst.tern("start", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad time value", r.stderr)
        self.assertIn("unknown parameter smtpd_bogus_parameter", r.stderr)
        self.assertIn("not started", r.stderr)
        self.assertEqual(self.inst.master_pid(), 0)
        # an unknown parameter alone is a warning: it is shown, and mail flows
        self.inst.set_main_cf(["smtpd_timeout = 300s"])
        r = self.inst.tern("start")
        self.assertIn("unknown parameter smtpd_bogus_parameter", r.stderr)
        self.assertIn("the mail system is started", r.stdout)
        self.inst.started = True
        self.inst.wait_port()
        send_one(self.inst)

    def test_init_refuses_a_used_directory(self):
        r = harness.tern("init", self.inst.dir, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not empty", r.stderr)
        r = harness.tern("init", self.inst.dir, "--port", "0", check=False)
        self.assertEqual(r.returncode, 2)
        with open(os.path.join(self.inst.dir, "main.cf")) as f:
            main_cf = f.read()
        for line in ("queue_directory = %s/queue" % self.inst.dir,
                     "maillog_file = %s/log/tern.log" % self.inst.dir,
                     "mydestination = $myhostname, localhost",
                     "mynetworks = 127.0.0.0/8 [::1]/128"):
            self.assertIn(line + "\n", main_cf)
        with open(os.path.join(self.inst.dir, "master.cf")) as f:
            services = [l.split() for l in f if l.strip() and not l.startswith("#")]
        port = self.inst.port
        metrics_port = port + 20000 if port + 20000 <= 65535 else port - 20000
        r = harness.tern("init", os.path.join(self.inst.dir, "derived"), "--port", str(port))
        with open(os.path.join(self.inst.dir, "derived", "master.cf")) as f:
            derived = f.read()
        self.assertIn("127.0.0.1:%-5d inet  n       -       n       -       2       metrics\n"
                      % metrics_port, derived)
        self.assertIn("127.0.0.1:%-5d inet  n       -       n       -       1       console\n"
                      % (metrics_port + 1), derived)
        self.assertEqual([s[0] for s in services], ["127.0.0.1:%d" % port, "pickup",
                                                      "cleanup", "qmgr", "local", "virtual", "smtp", "relay", "lmtp",
                                                      "discard", "anvil", "showq", "flush", "verify", "proxymap", "metrics",
                                                      services[-2][0], services[-1][0]])
        self.assertEqual(services[-2][1:], ["inet", "n", "-", "n", "-", "2", "metrics"])
        self.assertEqual(services[-1][1:], ["inet", "n", "-", "n", "-", "1", "console"])
        for sub in ("queue", "data", "log", "mail"):
            self.assertTrue(os.path.isdir(os.path.join(self.inst.dir, sub)), sub)

    @unittest.skipUnless(os.geteuid() == 0, "the check of set-group-ID programs runs as root")
    def test_check_warns_about_plain_setgid_programs(self):
        # the instance's daemon directory is the build's, where tern-drop and
        # tern-mailq are not set-group-ID
        r = self.inst.tern("check")
        self.assertRegex(r.stdout, r"warning: \S+/tern-drop is not set-group-ID terndrop .*"
                                   r"fix: tern setup")
        self.assertRegex(r.stdout, r"warning: \S+/tern-mailq is not set-group-ID terndrop")

    def test_check_master_cf(self):
        with open(os.path.join(self.inst.dir, "master.cf"), "a") as f:
            f.write("bogus unix - - n - 1 nosuchdaemon\n")
        r = self.inst.tern("check", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("nosuchdaemon is missing", r.stdout)

    def test_help_and_bad_usage(self):
        for cmd in ("start", "stop", "status", "check", "init", "reload", "abort", "setup"):
            r = harness.tern(cmd, "--help")
            self.assertIn("usage: tern", r.stdout)
        for args in (["--help"], ["-h"], ["help"], ["-c", self.inst.dir, "--help"]):
            r = harness.tern(*args)
            self.assertIn("usage: tern", r.stdout)
            self.assertIn("commands:", r.stdout)
        r = harness.tern("frobnicate", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command", r.stderr)
        r = self.inst.tern("status", "extra", check=False)
        self.assertEqual(r.returncode, 2)


@unittest.skipUnless(os.geteuid() == 0, "privilege separation needs root")
class TestPrivileges(unittest.TestCase):
    def setUp(self):
        self.inst = harness.Instance("priv")
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def test_daemon_uids(self):
        send_one(self.inst)
        import pwd
        tern_uid = pwd.getpwnam("tern").pw_uid
        for name in ("smtpd", "cleanup", "qmgr"):
            self.inst.wait_process(name)
        # a daemon starts as root and drops its privileges once it has
        # opened what needs root; on a busy machine one just started may
        # not be there yet, so the look is repeated for a while (bounded)
        deadline = time.time() + 10
        procs = self.inst.processes()
        while time.time() < deadline and any(
                uid == 0 and name not in ("master", "local") for _, uid, name in procs):
            time.sleep(0.1)
            procs = self.inst.processes()
        for pid, uid, name in procs:
            if name == "master":
                self.assertEqual(uid, 0)
            elif name == "local":
                continue    # by design it changes to each recipient's uid
            else:
                self.assertEqual(uid, tern_uid, "%s (pid %d) runs as uid %d" % (name, pid, uid))
                with open("/proc/%d/status" % pid) as f:
                    status = f.read()
                for field in ("Uid:", "Gid:"):
                    line = [l for l in status.splitlines() if l.startswith(field)][0]
                    ids = [int(x) for x in line.split()[1:]]
                    self.assertNotIn(0, ids, "%s of %s: %s" % (field, name, line))
                uid_line = [l for l in status.splitlines() if l.startswith("Uid:")][0]
                self.assertEqual({int(x) for x in uid_line.split()[1:]}, {tern_uid})
                groups = [l for l in status.splitlines() if l.startswith("Groups:")][0].split()[1:]
                self.assertNotIn("0", groups)

    def test_setup_and_queue_permissions(self):
        # setup is idempotent and leaves what check wants
        for _ in range(2):
            r = self.inst.tern("setup")
            self.assertIn("setup complete", r.stdout)
        self.assertEqual(self.inst.tern("check").returncode, 0)
        active = os.path.join(self.inst.queue_dir, "active")
        st = os.stat(active)
        self.assertEqual(st.st_mode & 0o7777, 0o700)
        os.chmod(active, 0o755)
        r = self.inst.tern("check", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("fix: chmod 0700 %s" % active, r.stdout)
        self.inst.tern("setup")
        self.assertEqual(os.stat(active).st_mode & 0o7777, 0o700)


class TestSupervision(unittest.TestCase):
    """master restarts what crashes, and its daemons never outlive it."""

    def setUp(self):
        self.inst = harness.Instance("sup")
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def test_crashed_daemon_is_restarted(self):
        send_one(self.inst)
        smtpd = [p for p, _, n in self.inst.processes() if n == "smtpd"]
        self.assertTrue(smtpd)
        for pid in smtpd:
            os.kill(pid, signal.SIGKILL)
        self.inst.wait_log(r"warning: process .*smtpd pid %d killed by signal 9" % smtpd[0])
        send_one(self.inst)     # master spawns a new smtpd for the next client
        new = [p for p, _, n in self.inst.processes() if n == "smtpd"]
        self.assertTrue(new and not set(new) & set(smtpd))

    def test_children_exit_when_master_dies(self):
        send_one(self.inst)
        procs = self.inst.processes()
        os.kill(self.inst.master_pid(), signal.SIGKILL)
        deadline = time.time() + 15
        while time.time() < deadline and any(harness._alive(p) for p, _, _ in procs):
            time.sleep(0.1)
        left = [(p, n) for p, _, n in procs if harness._alive(p)]
        self.assertEqual(left, [])
        # and the instance starts again on the same queue
        self.inst.start()
        send_one(self.inst)


if __name__ == "__main__":
    unittest.main()
