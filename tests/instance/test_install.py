"""test_install.py: `make install` with DESTDIR places the command, the
daemons under libexec/tern, the default configuration and the manual pages,
and an instance made by `tern init` runs from the installed daemons and
serves, on loopback as its master.cf says, SMTP, /metrics for Prometheus
and the web console's login page."""
import grp
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request

import harness


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


class TestInstall(unittest.TestCase):
    def test_destdir_install(self):
        dest = tempfile.mkdtemp(prefix="tern-destdir-")
        self.addCleanup(shutil.rmtree, dest, True)
        r = subprocess.run(["make", "-s", "install", "DESTDIR=" + dest], cwd=harness.BUILD,
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        found = {os.path.relpath(os.path.join(d, f), dest)
                 for d, _, files in os.walk(dest) for f in files}
        for path in ("usr/local/bin/tern", "usr/local/etc/tern/main.cf", "usr/local/etc/tern/master.cf",
                     "usr/local/libexec/tern/master", "usr/local/libexec/tern/smtpd",
                     "usr/local/libexec/tern/cleanup", "usr/local/libexec/tern/qmgr",
                     "usr/local/share/man/man1/tern.1", "usr/local/share/man/man5/main.cf.5",
                     "usr/local/share/man/man8/smtpd.8",
                     "usr/local/bin/sendmail", "usr/local/bin/mailq", "usr/local/bin/newaliases",
                     "usr/local/libexec/tern/pickup", "usr/local/libexec/tern/tern-drop",
                     "usr/local/libexec/tern/showq", "usr/local/libexec/tern/tern-mailq",
                     "usr/local/share/man/man8/showq.8", "usr/local/libexec/tern/flush",
                     "usr/local/share/man/man8/flush.8", "usr/local/libexec/tern/pipe",
                     "usr/local/libexec/tern/discard", "usr/local/share/man/man8/pipe.8",
                     "usr/local/share/man/man8/discard.8", "usr/local/libexec/tern/virtual",
                     "usr/local/share/man/man8/virtual.8"):
            self.assertIn(path, found)
        self.assertEqual(os.readlink(os.path.join(dest, "usr/local/bin/mailq")), "sendmail")
        # the daily report: its service (with this build's paths) and timer
        # next to tern.service
        units = os.path.join(dest, "usr/local/lib/systemd/system")
        with open(os.path.join(units, "tern-report.service")) as f:
            self.assertIn("/usr/local/bin/tern report --since 24h --mail", f.read())
        with open(os.path.join(units, "tern-report.timer")) as f:
            self.assertRegex(f.read(), r"OnCalendar=daily")
        self.assertTrue(os.path.exists(os.path.join(units, "tern.service")))
        # and the users' quarantine digest
        with open(os.path.join(units, "tern-quarantine-digest.service")) as f:
            text = f.read()
            self.assertIn("ExecStart=/usr/local/bin/tern quarantine digest --mail", text)
            self.assertIn("ExecStartPost=/usr/local/bin/tern quarantine expire", text)
        with open(os.path.join(units, "tern-quarantine-digest.timer")) as f:
            self.assertRegex(f.read(), r"OnCalendar=daily")
        # the logrotate file goes where logrotate reads it (prefix /usr/local)
        with open(os.path.join(dest, "etc/logrotate.d/tern")) as f:
            self.assertRegex(f.read(), r"create 0640 tern adm")
        # tern-drop writes into maildrop/ and tern-mailq reaches public/showq
        # for everyone: both set-group-ID terndrop
        for prog in ("tern-drop", "tern-mailq"):
            st = os.stat(os.path.join(dest, "usr/local/libexec/tern", prog))
            if os.geteuid() == 0 and _group_exists("terndrop"):
                self.assertEqual(st.st_mode & 0o7777, 0o2755, prog)
                self.assertEqual(st.st_gid, grp.getgrnam("terndrop").gr_gid, prog)
        # the installed default master.cf names only programs that are installed
        with open(os.path.join(dest, "usr/local/etc/tern/master.cf")) as f:
            for line in f:
                if line.strip() and not line.startswith("#") and not line[0].isspace():
                    prog = line.split()[7]
                    self.assertIn("usr/local/libexec/tern/" + prog, found)
        # a second install keeps an administrator's edited main.cf
        with open(os.path.join(dest, "usr/local/etc/tern/main.cf"), "a") as f:
            f.write("myhostname = edited.example\n")
        subprocess.run(["make", "-s", "install", "DESTDIR=" + dest], cwd=harness.BUILD,
                       capture_output=True, timeout=300, check=True)
        with open(os.path.join(dest, "usr/local/etc/tern/main.cf")) as f:
            self.assertIn("edited.example", f.read())
        # an instance runs from the installed daemons
        inst = harness.Instance("installed")
        self.addCleanup(inst.cleanup)
        inst.set_main_cf(["daemon_directory = " + os.path.join(dest, "usr/local/libexec/tern")])
        inst.start()
        with inst.smtp() as s:
            self.assertEqual(s.noop()[0], 250)
        self.assertIn(os.path.join(dest, "usr/local/libexec/tern/master"),
                      os.readlink("/proc/%d/exe" % inst.master_pid()))
        # the two web services tern init writes, each on 127.0.0.1
        listeners = {}
        with open(os.path.join(inst.dir, "master.cf")) as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 8 and fields[1] == "inet" and fields[7] in ("metrics", "console"):
                    listeners[fields[7]] = fields[0]
        self.assertEqual(sorted(listeners), ["console", "metrics"])
        for name, where in listeners.items():
            self.assertTrue(where.startswith("127.0.0.1:"), (name, where))
        metrics = self._get("http://%s/metrics" % listeners["metrics"])
        self.assertIn("# TYPE ", metrics)
        self.assertIn("tern_", metrics)
        login = self._get("http://%s/login" % listeners["console"])
        self.assertIn('type="password"', login)

    def _get(self, url):
        """The page at url once the service answers (master starts the
        listeners at once; a few tries, bounded)."""
        last = None
        for _ in range(50):
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    self.assertEqual(r.status, 200, url)
                    return r.read().decode("utf-8", "replace")
            except OSError as e:
                last = e
                time.sleep(0.1)
        self.fail("%s: %s" % (url, last))


if __name__ == "__main__":
    unittest.main()
