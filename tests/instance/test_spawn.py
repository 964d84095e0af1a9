"""test_spawn.py: whole-instance tests of the spawn daemon (Postfix's
spawn(8)): master accepts on a service's UNIX or TCP socket and spawn runs
the service's command with the connection as its standard input, output
and error, as the user= of the service (never root, never mail_owner),
with a clean environment, nothing else of Tern's open, and a time limit
(SERVICE_time_limit); connections to a service whose attributes are wrong
are closed with a warning that says why. policyd-spf through spawn is
tested in test_policy.py (TestPolicydSpf)."""
import grp
import os
import pwd
import re
import shutil
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# Reads one line, then tells who and where it is and what it has open.
PROBE = r"""import os, sys
line = sys.stdin.readline().strip()
out = ["line=" + line, "ids=%d %d %s" % (os.getuid(), os.getgid(),
                                         " ".join(str(g) for g in os.getgroups())),
       "cwd=" + os.getcwd()]
for fd in sorted(os.listdir("/proc/self/fd"), key=int):
    try:
        out.append("fd %s %s" % (fd, os.readlink("/proc/self/fd/" + fd)))
    except OSError:
        pass                       # the directory being listed
out += ["env %s=%s" % kv for kv in sorted(os.environ.items())]
out.append("end")
sys.stdout.write("\n".join(out) + "\n")
"""

# set by the interpreter itself (PEP 538 locale coercion)
INTERPRETER_VARIABLES = {"LC_CTYPE"}


class TestSpawn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-spawn-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.probe = os.path.join(cls.tmp, "probe.py")
        with open(cls.probe, "w") as f:
            f.write(PROBE)
        os.chmod(cls.probe, 0o644)
        cls.tcp_port = harness.free_port()
        cls.inst = harness.Instance(name="spawn")
        cls.owner = cls.inst.tern("conf", "-h", "mail_owner").stdout.strip()
        cls.inst.set_master_cf([
            "probe unix - n n - 0 spawn user=nobody argv=/usr/bin/python3 %s" % cls.probe,
            "127.0.0.1:%d inet n n n - 0 spawn user=nobody:nogroup argv=/usr/bin/python3 %s"
            % (cls.tcp_port, cls.probe),
            "slow unix - n n - 0 spawn -o slow_time_limit=2 user=nobody argv=/bin/sleep 60",
            "asroot unix - n n - 0 spawn user=root argv=/bin/cat",
            "asowner unix - n n - 0 spawn user=%s argv=/bin/cat" % cls.owner,
            "nouser unix - n n - 0 spawn user=no-such-user-here argv=/bin/cat",
            "noargv unix - n n - 0 spawn user=nobody",
            "relative unix - n n - 0 spawn user=nobody argv=cat",
        ])
        # something of the environment that must not reach the commands
        os.environ["TERN_TEST_SPAWN_SECRET"] = "must-not-leak"
        try:
            cls.inst.start()
        finally:
            del os.environ["TERN_TEST_SPAWN_SECRET"]
        cls.inst.wait_port(cls.tcp_port)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def connect(self, service):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(15)
        s.connect(os.path.join(self.inst.queue_dir, "private", service))
        self.addCleanup(s.close)
        return s

    def read_all(self, s, limit=65536):
        out = b""
        while len(out) < limit:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        return out.decode(errors="replace")

    def probe_report(self, s, line="hello"):
        s.sendall(line.encode() + b"\n")
        text = self.read_all(s)
        self.assertTrue(text.rstrip().endswith("end"), text)
        return text.splitlines()

    def check_report(self, lines, gid_name):
        nobody = pwd.getpwnam("nobody")
        self.assertIn("line=hello", lines)
        gid = grp.getgrnam(gid_name).gr_gid
        # uid, gid and a group list of that one group: no root, no mail group
        self.assertIn("ids=%d %d %d" % (nobody.pw_uid, gid, gid), lines)
        self.assertIn("cwd=/", lines)
        fds = {l.split()[1]: l.split(" ", 2)[2] for l in lines if l.startswith("fd ")}
        # 0, 1 and 2 are the connection; nothing of the daemons' is open
        self.assertTrue(fds["0"].startswith("socket:"), fds)
        self.assertEqual(fds["0"], fds["1"])
        self.assertEqual(fds["0"], fds["2"])
        others = {fd: t for fd, t in fds.items() if fd not in ("0", "1", "2")
                  and not t.startswith("/proc/")}
        self.assertEqual(others, {}, "descriptors of spawn's open in the command")
        env = {l[4:].split("=", 1)[0] for l in lines if l.startswith("env ")}
        self.assertIn("PATH", env)
        self.assertLessEqual(env - INTERPRETER_VARIABLES, {"PATH", "TZ", "MAIL_CONFIG", "LANG"}, env)
        self.assertIn("env PATH=/usr/bin:/bin", lines)

    def test_unix_service_runs_command_on_connection(self):
        nobody_group = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
        self.check_report(self.probe_report(self.connect("probe")), nobody_group)

    def test_inet_service_with_group(self):
        s = socket.create_connection(("127.0.0.1", self.tcp_port), timeout=15)
        self.addCleanup(s.close)
        self.check_report(self.probe_report(s), "nogroup")

    def test_connections_served_at_once(self):
        # one command per process: master starts more spawn processes
        first, second = self.connect("probe"), self.connect("probe")
        second.sendall(b"second\n")
        self.assertIn("line=second", self.read_all(second))
        first.sendall(b"first\n")
        self.assertIn("line=first", self.read_all(first))

    def test_waits_asleep(self):
        # while the command runs (a policy server, for up to an hour),
        # spawn sleeps: it is not woken a hundred times a second
        s = self.connect("probe")
        deadline = time.time() + 10
        waiting = None
        while waiting is None and time.time() < deadline:
            for pid, _ in harness.descendants(self.inst.master_pid()):
                cmd = harness.proc_cmdline(pid)
                if cmd[:2] == ["/usr/bin/python3", self.probe]:
                    with open("/proc/%d/stat" % pid) as f:
                        waiting = int(f.read().rsplit(")", 1)[1].split()[1])   # its spawn
            time.sleep(0.1)
        self.assertIsNotNone(waiting)

        def switches():
            with open("/proc/%d/status" % waiting) as f:
                return sum(int(l.split()[1]) for l in f if "ctxt_switches" in l)
        before = switches()
        time.sleep(2)
        self.assertLess(switches() - before, 20)
        s.sendall(b"done\n")
        self.assertIn("line=done", self.read_all(s))

    def test_time_limit_kills_the_command(self):
        s = self.connect("slow")
        t0 = time.time()
        self.assertEqual(s.recv(100), b"")          # closed when the command is killed
        elapsed = time.time() - t0
        self.assertGreaterEqual(elapsed, 1.5)
        self.assertLess(elapsed, 12)
        self.inst.wait_log(r"warning: command /bin/sleep: killed after the time limit of 2 "
                           r"seconds \(slow_time_limit\)")

    def test_refused_services_close_connections(self):
        cases = {
            "asroot": "user=root: refusing to run commands as root",
            "asowner": "user=%s: refusing to run commands as mail_owner" % self.owner,
            "nouser": "user=no-such-user-here: no such user",
            "noargv": "argv= is required",
            "relative": "argv=cat: the command must be an absolute path",
        }
        for service, why in cases.items():
            s = self.connect(service)
            s.settimeout(10)
            self.assertEqual(s.recv(100), b"", service)
            self.inst.wait_log(r"warning: spawn service %s refused: %s" % (service, re.escape(why)))
        # and nothing ran as root
        for pid, _ in harness.descendants(self.inst.master_pid()):
            cmd = harness.proc_cmdline(pid)
            self.assertNotEqual(cmd[:1], ["/bin/cat"], cmd)


if __name__ == "__main__":
    unittest.main()
