"""test_seccomp.py: the system call filters of smtpd, smtp and cleanup
(lib/global/syscall_filter.c, parameter syscall_filter) in a running instance.

With the defaults, the kernel reports each of those daemons in filter mode
(/proc/PID/status: "Seccomp: 2", "NoNewPrivs: 1") while mail flows the
whole way: smtpd -> cleanup -> qmgr -> smtp -> a sink server, and to a
local mailbox through local(8); daemons without a filter (qmgr, local)
show "Seccomp: 0". With syscall_filter = no the three run without one.
A daemon that makes a call outside its set dies with SIGSYS: master logs
"killed by signal 31", which harness.cleanup() counts as a crash, so every
instance test catches a missing call, in this module and in all others:
they all run with the filters on (AUTH with smtpd's helper threads, TLS,
DNS, milters, policy servers, chroot).
"""
import os
import smtplib
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sink as sinkmod  # noqa: E402

USER = "terntestsecc"
HOST = "tern.test"
FILTERED = ("smtpd", "cleanup", "smtp")


def setUpModule():
    if os.geteuid() != 0:
        raise unittest.SkipTest("the filters apply after the privilege drop: run as root")
    subprocess.run(["userdel", USER], capture_output=True)
    subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", USER],
                   check=True, capture_output=True)


def tearDownModule():
    if os.geteuid() == 0:
        subprocess.run(["userdel", USER], capture_output=True)


def proc_status(pid):
    """{field: value} of /proc/PID/status ({} when the process is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def filter_instance(name, sink, extra_main_cf=None):
    """An instance with smtp and local services, relayhost = the sink,
    mail_spool_directory DIR/spool."""
    inst = harness.Instance(name, master_cf_extra=[
        "smtp      unix  -       -       n       -       -       smtp",
        "local     unix  -       n       n       -       -       local",
    ])
    spool = os.path.join(inst.dir, "spool")
    os.mkdir(spool)
    os.chmod(spool, 0o755)
    settings = {"relayhost": "[127.0.0.1]:%d" % sink.port, "mail_spool_directory": spool}
    settings.update(extra_main_cf or {})
    inst.set_main_cf(settings)
    return inst


class FilterCase(unittest.TestCase):
    main_cf = None

    def setUp(self):
        self.sink = sinkmod.Sink()
        self.addCleanup(self.sink.stop)
        self.inst = filter_instance("secc", self.sink, self.main_cf)
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def mailbox(self):
        return os.path.join(self.inst.dir, "spool", USER)

    def send_both(self, tag):
        """One message to a remote and a local recipient through smtpd;
        waits until the sink and the mailbox have it."""
        seen = len(self.sink.handler.messages)
        with self.inst.smtp() as s:
            s.sendmail("sender@example.org", ["far@remote.example", "%s@%s" % (USER, HOST)],
                       "Subject: %s\r\n\r\nthrough every daemon\r\n" % tag)
        msgs = self.sink.wait(seen + 1)
        self.assertIn(b"Subject: " + tag.encode(), msgs[-1][2])
        self.assertEqual(msgs[-1][1], ["far@remote.example"])
        box = self.mailbox()
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(box) and tag.encode() in open(box, "rb").read():
                break
            time.sleep(0.1)
        with open(box, "rb") as f:
            self.assertIn(b"Subject: " + tag.encode(), f.read())
        self.inst.wait_log(r"to=<%s@%s>, relay=local, .*status=sent" % (USER, HOST))
        self.inst.wait_log(r"to=<far@remote\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                           r".*status=sent" % self.sink.port)
        self.inst.wait_empty()

    def statuses(self, smtpd_session):
        """{daemon name: [status dicts]} of this instance's processes; the
        smtpd session is open so that an smtpd process is there."""
        smtpd_session.ehlo()
        out = {}
        for pid, uid, name in self.inst.processes():
            out.setdefault(name, []).append(proc_status(pid))
        return out


class TestFilterOnByDefault(FilterCase):
    def test_conf_and_check(self):
        r = self.inst.tern("conf", "-d", "syscall_filter")
        self.assertEqual(r.stdout.strip().splitlines()[-1], "syscall_filter = yes")
        self.inst.set_main_cf({"syscall_filter": "sometimes"})
        r = self.inst.tern("check", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("syscall_filter", r.stdout + r.stderr)

    def test_network_daemons_filtered_and_mail_flows(self):
        self.send_both("first pass")
        with self.inst.smtp() as s:
            procs = self.statuses(s)
        for name in FILTERED:
            self.assertIn(name, procs, "no %s process; log:\n%s" % (name, self.inst.log_tail()))
            for st in procs[name]:
                self.assertEqual(st.get("Seccomp"), "2", "%s: %s" % (name, st))
                self.assertEqual(st.get("NoNewPrivs"), "1", "%s: %s" % (name, st))
        for name in ("master", "qmgr"):
            for st in procs.get(name, []):
                self.assertEqual(st.get("Seccomp"), "0", "%s: %s" % (name, st))
        # the same processes keep working under their filters
        self.send_both("second pass")
        self.assertNotRegex(self.inst.log_text(), r"killed by signal|bad system call")

    def test_many_sessions_and_pipelining(self):
        """A burst of concurrent sessions: one smtpd process serves them all
        (epoll, accept bursts, anvil) and cleanup takes each message."""
        sessions = []
        for i in range(20):
            s = smtplib.SMTP("127.0.0.1", self.inst.port, timeout=20)
            s.ehlo("client%d.example" % i)
            sessions.append(s)
        for i, s in enumerate(sessions):
            s.sendmail("s%d@example.org" % i, ["r%d@remote.example" % i],
                       "Subject: burst %d\r\n\r\nbody\r\n" % i)
            s.quit()
        self.sink.wait(20, timeout=60)
        self.assertNotRegex(self.inst.log_text(), r"killed by signal|bad system call")


class TestFilterOff(FilterCase):
    main_cf = {"syscall_filter": "no"}

    def test_no_filter_when_switched_off(self):
        self.send_both("unfiltered")
        with self.inst.smtp() as s:
            procs = self.statuses(s)
        for name in FILTERED:
            self.assertIn(name, procs)
            for st in procs[name]:
                self.assertEqual(st.get("Seccomp"), "0", "%s: %s" % (name, st))


if __name__ == "__main__":
    unittest.main()
