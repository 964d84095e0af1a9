"""test_pipe.py: whole-instance tests of the pipe(8) and discard(8) delivery
agents. One instance runs several pipe services, each reached through a
transport_maps entry for a domain of its own, with a test script (Python)
as the command, run as a Unix user the module creates (terntestpipe) and
removes. The script records its argv, identity, environment and standard
input in a directory of its own and exits as the test tells it to. Mail
goes the whole way: SMTP to smtpd, cleanup, qmgr, the agent; checked are
the log lines, what the command got, bounces (caught by another pipe
service for the sender's domain), and the queue. A last class delivers
with Dovecot's dovecot-lda into a Maildir, with a Dovecot configuration
(auth service and passwd-file userdb) the test writes and starts."""
import email
import email.policy
import glob
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import unittest

import harness

USER = "terntestpipe"
LDA = "/usr/lib/dovecot/dovecot-lda"

SCRIPT = r'''#!/usr/bin/python3
import json, os, sys, time
out = sys.argv[1]
data = sys.stdin.buffer.read()
try:
    with open(os.path.join(out, "mode.json")) as f:
        mode = json.load(f)
except OSError:
    mode = {}
rec = {"argv": sys.argv[2:], "uid": os.getuid(), "gid": os.getgid(),
       "groups": sorted(os.getgroups()), "env": dict(os.environ), "cwd": os.getcwd(),
       "stdin": data.decode("latin-1"), "exit": mode.get("exit", 0)}
name = os.path.join(out, "run-%.6f-%d.json" % (time.time(), os.getpid()))
with open(name + ".tmp", "w") as f:
    json.dump(rec, f)
os.rename(name + ".tmp", name)
sys.stdout.write(mode.get("output", ""))
sys.stdout.flush()
time.sleep(mode.get("sleep", 0))
sys.exit(mode.get("exit", 0))
'''

_homes = None
_top = None


def setUpModule():
    global _homes, _top
    if os.geteuid() != 0:
        raise unittest.SkipTest("pipe tests create a Unix user: run as root")
    if not os.path.exists(os.path.join(harness.LIBEXEC, "pipe")):
        raise unittest.SkipTest("the pipe delivery agent is not built")
    _homes = harness.make_unix_users([USER], "tern-pipe-homes-")
    _top = tempfile.mkdtemp(prefix="tern-pipe-", dir="/tmp")
    os.chmod(_top, 0o755)
    with open(os.path.join(_top, "script.py"), "w") as f:
        f.write(SCRIPT)
    os.chmod(os.path.join(_top, "script.py"), 0o755)


def tearDownModule():
    if _top:
        shutil.rmtree(_top, ignore_errors=True)
    harness.remove_unix_users([USER], _homes)


def out_dir(name):
    """The script's directory for one service: owned by the test user."""
    d = os.path.join(_top, name)
    os.makedirs(d, exist_ok=True)
    pw = pwd.getpwnam(USER)
    os.chown(d, pw.pw_uid, pw.pw_gid)
    os.chmod(d, 0o755)
    return d


def set_mode(name, **mode):
    with open(os.path.join(out_dir(name), "mode.json"), "w") as f:
        json.dump(mode, f)


def runs(name):
    """The script's records for service name, oldest first."""
    found = []
    for path in sorted(glob.glob(os.path.join(_top, name, "run-*.json"))):
        with open(path) as f:
            found.append(json.load(f))
    return found


def wait_runs(name, count, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = runs(name)
        if len(r) >= count:
            return r
        time.sleep(0.05)
    raise AssertionError("service %s ran %d times, expected %d" % (name, len(runs(name)), count))


def wait_run_for(name, argv, timeout=20):
    """The latest run of service name whose arguments were argv."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [r for r in runs(name) if r["argv"] == argv]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError("service %s never ran with %r" % (name, argv))


def service(name, attrs, args):
    """A master.cf pipe service running the test script with args."""
    return ("%s unix - n n - - pipe %s argv=/usr/bin/python3 %s %s %s"
            % (name, attrs, os.path.join(_top, "script.py"), out_dir(name), args))


ALL_MACROS = ("${sender} ${recipient} ${user} ${extension} ${domain} ${nexthop} ${mailbox} "
              "${original_recipient} ${size} ${client_address} ${client_hostname} ${client_helo} "
              "${queue_id} $sender")


class TestPipe(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        services = {
            "pipet": ("flags=DORF user=%s" % USER, ALL_MACROS),
            "pipecrlf": ("flags=.>B eol=\\r\\n user=%s" % USER, "${recipient}"),
            "pipemulti": ("flags=R user=%s" % USER, "--to ${recipient} --user=${user}"),
            "pipeone": ("flags=R user=%s:daemon" % USER, "${recipient}"),
            "pipeexit": ("flags=R user=%s" % USER, "${recipient}"),
            "pipebounce": ("user=%s" % USER, "${recipient}"),
            "pipeslow": ("user=%s" % USER, "${recipient}"),
            "pipesize": ("size=300 user=%s" % USER, "${recipient}"),
            "capture": ("flags=R user=%s" % USER, "${recipient}"),
        }
        extra = [service(n, a, args) for n, (a, args) in services.items()]
        extra += [
            "piperoot unix - n n - - pipe user=root argv=/bin/cat",
            "pipenouser unix - n n - - pipe user=nosuchuser%d argv=/bin/cat" % os.getpid(),
            "discard unix - - n - - discard",
        ]
        domains = list(services) + ["piperoot", "pipenouser"]
        table = os.path.join(_top, "transport")
        with open(table, "w") as f:
            for d in domains:
                f.write("%s.test %s:\n" % (d, d))
            f.write("pipeother.test pipet:hop.Example\n")
            f.write("discard.test discard:\n")
            f.write("quiet.test discard:2.0.1 dropped quietly\n")
        cls.inst = harness.Instance("pipe", master_cf_extra=extra, main_cf={
            "transport_maps": "texthash:" + table,
            "recipient_delimiter": "+",
            "pipet_destination_recipient_limit": "1",
            "pipeone_destination_recipient_limit": "1",
            "pipeslow_time_limit": "2s",
            "virtual_alias_maps": "inline:{ alias@pipet.test=real@pipet.test }",
            "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
        })
        cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def send(self, rcpts, body, sender="sender@capture.test"):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail(sender, rcpts, body)

    def test_argv_environment_and_envelope_headers(self):
        self.send(["Joe+Ext@PipeT.test"], b"Subject: argv\r\n\r\nhello\r\n", sender="Snd@Example.ORG")
        m = self.inst.wait_log(r"(\w+): to=<Joe\+Ext@PipeT\.test>, relay=pipet, delay=[\d.]+, "
                               r"delays=[\d./]+, dsn=2\.0\.0, status=sent \(delivered via pipet service\)")
        qid = m.group(1)
        run = [r for r in wait_runs("pipet", 1) if r["argv"][1] == "Joe+Ext@PipeT.test"][-1]
        pw = pwd.getpwnam(USER)
        self.assertEqual((run["uid"], run["gid"], run["groups"]), (pw.pw_uid, pw.pw_gid, [pw.pw_gid]))
        a = run["argv"]
        # ${nexthop} is the resolver's: the domain in lower case
        self.assertEqual(a[:8], ["Snd@Example.ORG", "Joe+Ext@PipeT.test", "Joe", "Ext", "PipeT.test",
                                 "pipet.test", "Joe+Ext", "Joe+Ext@PipeT.test"])
        size = int(a[8])
        self.assertGreater(size, 20)
        self.assertEqual(a[9], "127.0.0.1")
        self.assertTrue(a[10])                     # the client's name as smtpd saw it
        self.assertEqual(a[11], "client.example")
        self.assertEqual(a[12], qid)
        self.assertEqual(a[13], "Snd@Example.ORG")
        self.assertEqual(run["env"].get("PATH"), "/usr/bin:/bin")
        # (Python itself adds LC_CTYPE when LANG is C: PEP 538)
        self.assertFalse(set(run["env"]) - {"PATH", "TZ", "MAIL_CONFIG", "LANG", "LC_CTYPE"}, run["env"])
        self.assertEqual(run["cwd"], self.inst.queue_dir)
        lines = run["stdin"].split("\n")
        self.assertTrue(lines[0].startswith("From Snd@Example.ORG  "), lines[0])
        self.assertEqual(lines[1], "Return-Path: <Snd@Example.ORG>")
        self.assertEqual(lines[2], "Delivered-To: joe+ext@pipet.test")
        self.assertEqual(lines[3], "X-Original-To: Joe+Ext@PipeT.test")
        self.assertIn("Subject: argv", lines)
        self.assertEqual(lines[-2:], ["hello", ""])
        self.assertEqual(len(run["stdin"]) - len("\n".join(lines[:4])) - 1, size)
        self.inst.wait_log(r"%s: removed" % qid)

    def test_original_recipient_after_rewriting(self):
        self.send(["alias@pipet.test"], b"Subject: alias\r\n\r\nalias\r\n")
        self.inst.wait_log(r"to=<real@pipet\.test>, orig_to=<alias@pipet\.test>, relay=pipet, .*status=sent")
        run = [r for r in wait_runs("pipet", 1) if r["argv"][1] == "real@pipet.test"][-1]
        self.assertEqual(run["argv"][7], "alias@pipet.test")       # ${original_recipient}
        self.assertIn("\nDelivered-To: real@pipet.test\nX-Original-To: alias@pipet.test\n", run["stdin"])

    def test_delivered_to_loop_is_bounced(self):
        before = len(runs("pipet"))
        self.send(["loop@pipet.test"], b"Delivered-To: Loop@PipeT.test\r\nSubject: loop\r\n\r\nloop\r\n")
        self.inst.wait_log(r"to=<loop@pipet\.test>, relay=pipet, .*dsn=5\.4\.6, status=bounced "
                           r"\(mail forwarding loop for loop@pipet\.test\)")
        self.assertFalse([r for r in runs("pipet")[before:] if r["argv"][1] == "loop@pipet.test"])

    def test_nexthop_from_transport_entry(self):
        self.send(["x@pipeother.test"], b"Subject: hop\r\n\r\nhop\r\n")
        self.inst.wait_log(r"to=<x@pipeother\.test>, relay=pipet, .*status=sent")
        run = [r for r in wait_runs("pipet", 1) if r["argv"][1] == "x@pipeother.test"][-1]
        self.assertEqual(run["argv"][5], "hop.Example")        # ${nexthop}
        self.assertEqual(run["argv"][4], "pipeother.test")     # ${domain}

    def test_dot_stuffing_from_quoting_and_crlf(self):
        body = b"Subject: dots\r\n\r\n.starts with a dot\r\nFrom the start\r\nmiddle From x\r\nend\r\n"
        self.send(["crlf@pipecrlf.test"], body)
        self.inst.wait_log(r"to=<crlf@pipecrlf\.test>, relay=pipecrlf, .*status=sent")
        data = wait_runs("pipecrlf", 1)[-1]["stdin"]
        self.assertNotIn("\n", data.replace("\r\n", ""))
        self.assertIn("\r\n\r\n..starts with a dot\r\n>From the start\r\nmiddle From x\r\nend\r\n\r\n", data)
        self.assertTrue(data.endswith("end\r\n\r\n"), data[-40:])

    def test_several_recipients_one_run_or_one_each(self):
        rcpts = ["a@pipemulti.test", "b+x@pipemulti.test", "c@pipemulti.test"]
        self.send(rcpts, b"Subject: many\r\n\r\nmany\r\n")
        for r in rcpts:
            self.inst.wait_log(r"to=<%s>, relay=pipemulti, .*status=sent" % re.escape(r))
        run = wait_runs("pipemulti", 1)
        self.assertEqual(len(run), 1)
        self.assertEqual(run[0]["argv"], ["--to", "a@pipemulti.test", "b+x@pipemulti.test",
                                          "c@pipemulti.test", "--user=a", "--user=b", "--user=c"])
        # with pipeone_destination_recipient_limit = 1: one run per recipient
        rcpts = ["a@pipeone.test", "b@pipeone.test", "c@pipeone.test"]
        self.send(rcpts, b"Subject: one\r\n\r\none\r\n")
        for r in rcpts:
            self.inst.wait_log(r"to=<%s>, relay=pipeone, .*status=sent" % re.escape(r))
        got = wait_runs("pipeone", 3)
        self.assertEqual(sorted(r["argv"][0] for r in got), rcpts)
        daemon_gid = __import__("grp").getgrnam("daemon").gr_gid
        self.assertEqual({(r["gid"], tuple(r["groups"])) for r in got}, {(daemon_gid, (daemon_gid,))})

    def test_tempfail_is_deferred_then_sent(self):
        set_mode("pipeexit", exit=75, output="mailbox busy, try later\nsecond line")
        self.send(["t@pipeexit.test"], b"Subject: later\r\n\r\nlater\r\n")
        qid = self.inst.wait_log(
            r"(\w+): to=<t@pipeexit\.test>, relay=pipeexit, .*dsn=4\.3\.0, status=deferred "
            r"\(temporary failure\. Command output: mailbox busy, try later\)").group(1)
        set_mode("pipeexit", exit=0)
        self.inst.wait_log(r"%s: to=<t@pipeexit\.test>, relay=pipeexit, .*status=sent" % qid, timeout=20)
        self.inst.wait_log(r"%s: removed" % qid)

    def test_nouser_is_bounced_with_the_output(self):
        set_mode("pipebounce", exit=67, output="no mailbox for b\x01ob here\n")
        self.send(["bob@pipebounce.test"], b"Subject: bounce me\r\n\r\nbody\r\n",
                  sender="owner@capture.test")
        self.inst.wait_log(r"to=<bob@pipebounce\.test>, relay=pipebounce, .*dsn=5\.1\.1, "
                           r"status=bounced \(user unknown\. Command output: no mailbox for b\?ob here\)")
        run = wait_run_for("capture", ["owner@capture.test"])
        notice = email.message_from_string(run["stdin"], policy=email.policy.compat32)
        self.assertEqual(notice["Return-Path"], "<MAILER-DAEMON>")
        text = run["stdin"]
        self.assertIn("user unknown. Command output: no mailbox for b?ob here", text)
        self.assertIn("bob@pipebounce.test", text)

    def test_time_limit_kills_and_defers(self):
        set_mode("pipeslow", sleep=60)
        self.send(["slow@pipeslow.test"], b"Subject: slow\r\n\r\nslow\r\n")
        t0 = time.time()
        self.inst.wait_log(r"to=<slow@pipeslow\.test>, relay=pipeslow, .*dsn=4\.3\.0, status=deferred "
                           r"\(command time limit exceeded: \"/usr/bin/python3\"\)", timeout=15)
        self.assertLess(time.time() - t0, 12)
        uid = pwd.getpwnam(USER).pw_uid
        deadline = time.time() + 5
        while time.time() < deadline:
            left = [p for p in os.listdir("/proc")
                    if p.isdigit() and harness.proc_uid(int(p)) == uid
                    and "pipeslow" in " ".join(harness.proc_cmdline(int(p)))]
            if not left:
                break
            time.sleep(0.1)
        self.assertFalse(left, "the command outlived its time limit")
        set_mode("pipeslow", sleep=0)
        self.inst.wait_log(r"to=<slow@pipeslow\.test>, relay=pipeslow, .*status=sent", timeout=20)

    def test_size_limit_bounces(self):
        self.send(["big@pipesize.test"], b"Subject: big\r\n\r\n" + b"x" * 400 + b"\r\n")
        self.inst.wait_log(r"to=<big@pipesize\.test>, relay=pipesize, .*dsn=5\.2\.3, "
                           r"status=bounced \(message too large\)")
        self.send(["small@pipesize.test"], b"Subject: small\r\n\r\nsmall\r\n")
        self.inst.wait_log(r"to=<small@pipesize\.test>, relay=pipesize, .*status=sent")
        self.assertEqual([r["argv"] for r in runs("pipesize")], [["small@pipesize.test"]])

    def test_root_and_unknown_user_refused(self):
        self.send(["r@piperoot.test"], b"Subject: root\r\n\r\nroot\r\n")
        self.inst.wait_log(r"pipe service piperoot refused: user=root: refusing to run commands as root")
        self.inst.wait_log(r"to=<r@piperoot\.test>, relay=piperoot, .*dsn=4\.3\.5, status=deferred "
                           r"\(mail system configuration error\)")
        self.send(["n@pipenouser.test"], b"Subject: nouser\r\n\r\nnouser\r\n")
        self.inst.wait_log(r"pipe service pipenouser refused: user=nosuchuser\d+: no such user")
        self.inst.wait_log(r"to=<n@pipenouser\.test>, relay=pipenouser, .*dsn=4\.3\.5, status=deferred")

    def test_discard(self):
        self.send(["gone@discard.test", "also@quiet.test"], b"Subject: discard\r\n\r\ndiscard\r\n")
        qid = self.inst.wait_log(r"(\w+): to=<gone@discard\.test>, relay=none, .*dsn=2\.0\.0, "
                                 r"status=sent \(discard\.test\)").group(1)
        self.inst.wait_log(r"%s: to=<also@quiet\.test>, relay=none, .*dsn=2\.0\.1, "
                           r"status=sent \(dropped quietly\)" % qid)
        self.inst.wait_log(r"%s: removed" % qid)
        self.assertIn("tern/discard[", self.inst.log_text())


@unittest.skipUnless(os.path.exists(LDA) and shutil.which("dovecot"), "Dovecot (dovecot-core) is not installed")
class TestDovecotLda(unittest.TestCase):
    """flags=DRhu user=USER argv=dovecot-lda -c CONF -f ${sender} -d ${user}@${nexthop},
    with a Dovecot whose auth service answers the LDA's userdb lookups from a
    passwd-file; the message lands in the user's Maildir."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tern-pipe-dovecot-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.addCleanup(shutil.rmtree, self.dir, True)
        pw = pwd.getpwnam(USER)
        mail = os.path.join(self.dir, "mail")
        os.mkdir(mail)
        os.chown(mail, pw.pw_uid, pw.pw_gid)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            f.write("alice@dove.test::%d:%d::%s/alice::\n" % (pw.pw_uid, pw.pw_gid, mail))
        with open(self.conf, "w") as f:
            f.write("""protocols =
ssl = no
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
mail_location = maildir:~/Maildir
first_valid_uid = 1
postmaster_address = postmaster@dove.test
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = {d}/passwd
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0666
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""".format(d=self.dir))
        os.chmod(self.conf, 0o644)
        # the LDA, run as the test user, logs there too
        log = os.path.join(self.dir, "dovecot.log")
        open(log, "w").close()
        os.chmod(log, 0o666)
        self.dovecot = subprocess.Popen(["dovecot", "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self.stop_dovecot)
        deadline = time.time() + 15
        while not os.path.exists(os.path.join(self.dir, "run", "auth-userdb")):
            if time.time() > deadline or self.dovecot.poll() is not None:
                self.fail("dovecot did not start; its log:\n%s" % self.dovecot_log())
            time.sleep(0.05)
        self.inst = harness.Instance("pipedove", master_cf_extra=[
            "dovecot unix - n n - - pipe flags=DRhu user=%s argv=%s -c %s -f ${sender} "
            "-d ${user}@${nexthop}" % (USER, LDA, self.conf),
        ], main_cf={
            "transport_maps": "inline:{ dove.test=dovecot: }",
            "dovecot_destination_recipient_limit": "1",
            "recipient_delimiter": "+",
        })
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def dovecot_log(self):
        try:
            with open(os.path.join(self.dir, "dovecot.log")) as f:
                return f.read()[-3000:]
        except OSError:
            return ""

    def stop_dovecot(self):
        """End the Dovecot this test started (by its PID; its children follow)."""
        if self.dovecot.poll() is None:
            self.dovecot.terminate()
            try:
                self.dovecot.wait(10)
            except subprocess.TimeoutExpired:
                self.dovecot.kill()
                self.dovecot.wait(10)

    def test_delivers_into_the_maildir(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail("sender@example.org", ["Alice+Box@Dove.Test"],
                       b"Subject: via lda\r\nMessage-ID: <lda1@example.org>\r\n\r\n"
                       b"Hello Dovecot.\r\n.dot line\r\n")
        self.inst.wait_log(r"to=<Alice\+Box@Dove\.Test>, relay=dovecot, .*dsn=2\.0\.0, "
                           r"status=sent \(delivered via dovecot service\)", timeout=20)
        files = glob.glob(os.path.join(self.dir, "mail", "alice", "Maildir", "new", "*"))
        self.assertEqual(len(files), 1, files)
        with open(files[0], "rb") as f:
            data = f.read()
        msg = email.message_from_bytes(data, policy=email.policy.compat32)
        self.assertEqual(msg["Return-Path"], "<sender@example.org>")
        self.assertEqual(msg["Delivered-To"], "alice+box@dove.test")
        self.assertEqual(msg["Subject"], "via lda")
        self.assertIn(b"Hello Dovecot.\n.dot line\n", data)
        self.assertEqual(os.stat(files[0]).st_uid, pwd.getpwnam(USER).pw_uid)

    def test_unknown_user_bounces(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail("sender@example.org", ["nobody@dove.test"], b"Subject: x\r\n\r\nx\r\n")
        self.inst.wait_log(r"to=<nobody@dove\.test>, relay=dovecot, .*dsn=5\.1\.1, status=bounced "
                           r"\(user unknown", timeout=20)


if __name__ == "__main__":
    unittest.main()
