"""test_sendmail.py: whole-instance tests of local submission: the sendmail
command (also as mailq), tern-drop writing into maildrop/, and pickup
handing the files to cleanup.

Instances are made by `tern init` as root, so the daemons run as the
`tern` account and maildrop/ is 0730 tern:terndrop. Each instance gets a
daemon directory of its own in which tern-drop is a set-group-ID terndrop
copy, as `make install` and `tern setup` make it; sendmail runs as root or,
through runuser, as real Unix users (terntestsm*, created with useradd and
removed with userdel). Checked: the mailboxes under DIR/mail, the maildrop
files and their modes, the queue files, the log lines, the exit status.
"""
import grp
import json
import mailbox
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HOST = "tern.test"
USERS = ("terntestsma", "terntestsmb")
SENDMAIL = os.path.join(harness.BUILD, "sendmail", "sendmail")
TERN_DROP = os.path.join(harness.BUILD, "tern-drop", "tern-drop")
TERN_MAILQ = os.path.join(harness.BUILD, "tern-mailq", "tern-mailq")

_homes = None


def setUpModule():
    global _homes
    if os.geteuid() != 0:
        raise unittest.SkipTest("local submission tests create Unix users: run as root")
    _homes = harness.make_unix_users(USERS, "tern-sendmail-homes-")


def tearDownModule():
    harness.remove_unix_users(USERS, _homes)


def make_instance(name, main_cf=None):
    """An instance whose daemon directory holds links to the built daemons
    and a set-group-ID copy of tern-drop; command_directory finds tern."""
    inst = harness.Instance(name)
    daemons = os.path.join(inst.dir, "libexec")
    os.mkdir(daemons)
    setgid = {"tern-drop": TERN_DROP, "tern-mailq": TERN_MAILQ}
    for prog in os.listdir(harness.LIBEXEC):
        if prog not in setgid:
            os.symlink(os.path.realpath(os.path.join(harness.LIBEXEC, prog)),
                       os.path.join(daemons, prog))
    for prog, built in setgid.items():
        path = os.path.join(daemons, prog)
        shutil.copy(built, path)
        os.chown(path, 0, grp.getgrnam("terndrop").gr_gid)
        os.chmod(path, 0o2755)
    settings = {"daemon_directory": daemons,
                "command_directory": os.path.dirname(harness.TERN)}
    settings.update(main_cf or {})
    inst.set_main_cf(settings)
    return inst


def sendmail(inst, args, message=b"", user=None, name=None, timeout=30, env=None):
    """Run sendmail -C DIR ARGS (as user through runuser, and under another
    program name when name is given) with message on stdin. With env (a
    dict of variables added to the environment) -C is left out: env names
    the configuration."""
    prog = SENDMAIL
    if name:
        prog = os.path.join(inst.dir, name)
        if not os.path.lexists(prog):
            os.symlink(SENDMAIL, prog)
    cmd = [prog] + (["-C", inst.dir] if env is None else []) + list(args)
    if user:
        cmd = ["runuser", "-u", user, "--"] + cmd
    if isinstance(message, str):
        message = message.encode()
    run_env = None
    if env is not None:
        run_env = {k: v for k, v in os.environ.items()
                   if k not in ("MAIL_CONFIG", "TERN_CONFIG_DIRECTORY")}
        run_env.update(env)
    return subprocess.run(cmd, input=message, capture_output=True, timeout=timeout, env=run_env)


def as_user(user, *cmd):
    return subprocess.run(["runuser", "-u", user, "--"] + list(cmd), capture_output=True,
                          timeout=30)


def mailbox_messages(inst, user):
    path = os.path.join(inst.dir, "mail", user)
    if not os.path.exists(path):
        return []
    box = mailbox.mbox(path, create=False)
    try:
        return [m for m in box]
    finally:
        box.close()


def wait_mail(inst, user, count, timeout=15):
    """The messages of user's mailbox once it holds count of them."""
    deadline = time.time() + timeout
    while True:
        msgs = mailbox_messages(inst, user)
        if len(msgs) >= count:
            return msgs
        if time.time() > deadline:
            raise AssertionError("%s has %d messages, expected %d; log:\n%s"
                                 % (user, len(msgs), count, inst.log_tail()))
        time.sleep(0.05)


def maildrop_files(inst):
    d = os.path.join(inst.queue_dir, "maildrop")
    return sorted(n for n in os.listdir(d) if not n.startswith("."))


def poke_pickup(inst):
    fd = os.open(os.path.join(inst.queue_dir, "public", "pickup"), os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, b"W")
    finally:
        os.close(fd)


def records(*recs):
    return b"".join(harness.queue_record(t, d) for t, d in recs)


def maildrop_file(uid, rcpt, sender=b"root"):
    """A well-formed maildrop file (lib/global/QUEUE.md) claiming uid."""
    content = b"Subject: planted\n\nplanted\n"
    return records(("V", b"1"), ("T", b"%d.000000" % int(time.time())), ("S", sender),
                   ("A", b"uid=%d" % uid), ("R", rcpt.encode() + b"\0\0"), ("C", content),
                   ("X", b""), ("E", b""))


MESSAGE = b"Subject: local test\n\nfirst line\nsecond line\n"


class TestSubmission(unittest.TestCase):
    """One running instance for the submissions that need no restart."""

    @classmethod
    def setUpClass(cls):
        cls.inst = make_instance("sendmail")
        cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def setUp(self):
        for user in USERS:
            path = os.path.join(self.inst.dir, "mail", user)
            if os.path.exists(path):
                os.unlink(path)

    def test_bare_recipients_delivered_with_headers_added(self):
        r = sendmail(self.inst, [USERS[0], USERS[1] + "@" + HOST], MESSAGE)
        self.assertEqual(r.returncode, 0, r.stderr)
        for user in USERS:
            (msg,) = wait_mail(self.inst, user, 1)
            self.assertEqual(msg["Subject"], "local test")
            self.assertEqual(msg["From"], "<root@%s>" % HOST)
            self.assertRegex(msg["Message-ID"], r"^<[0-9B-Z]{16}@tern\.test>$")
            self.assertTrue(msg["Date"])
            self.assertIn("(Tern, from userid 0)", msg["Received"])
            self.assertEqual(msg["Return-Path"], "<root@%s>" % HOST)
            self.assertEqual(msg.get_payload(), "first line\nsecond line\n")
        self.inst.wait_log(r"tern/pickup\[\d+\]: [0-9B-Z]{16}: uid=0 from=<root@tern\.test>")
        self.assertEqual(maildrop_files(self.inst), [])

    def test_existing_headers_kept(self):
        msg = (b"From: Someone <someone@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
               b"Message-ID: <mine@example.org>\nSubject: own\n\nbody\n")
        r = sendmail(self.inst, ["-F", "Not Used", USERS[0]], msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        (got,) = wait_mail(self.inst, USERS[0], 1)
        self.assertEqual(got.get_all("From"), ["Someone <someone@example.org>"])
        self.assertEqual(got.get_all("Message-ID"), ["<mine@example.org>"])
        self.assertEqual(got.get_all("Date"), ["Mon, 1 Jan 2024 00:00:00 +0000"])

    def test_full_name_in_added_from(self):
        r = sendmail(self.inst, ["-F", "Jo \"The\" User", USERS[0]], b"Subject: x\n\nb\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        (got,) = wait_mail(self.inst, USERS[0], 1)
        self.assertEqual(got["From"], '"Jo \\"The\\" User" <root@%s>' % HOST)

    def test_t_takes_recipients_from_headers_and_drops_bcc(self):
        msg = "To: First <%s>\nCc: %s (the same, once)\n" % (USERS[0], USERS[0])
        msg += "Bcc: %s@%s\nSubject: extracted\n\nbody\n" % (USERS[1], HOST)
        r = sendmail(self.inst, ["-t"], msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        for user in USERS:
            (got,) = wait_mail(self.inst, user, 1)
            self.assertEqual(got["Subject"], "extracted")
            self.assertIsNone(got["Bcc"])
            self.assertEqual(got["To"], "First <%s>" % USERS[0])
        r = sendmail(self.inst, ["-t"], b"Subject: nobody\n\nbody\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"no recipients", r.stderr)

    def test_lone_dot_ends_the_message_unless_i(self):
        text = b"Subject: dots\n\nbefore\n.\nafter\n"
        r = sendmail(self.inst, [USERS[0]], text)
        self.assertEqual(r.returncode, 0, r.stderr)
        (got,) = wait_mail(self.inst, USERS[0], 1)
        self.assertEqual(got.get_payload(), "before\n")
        for opt in ("-i", "-oi"):
            r = sendmail(self.inst, [opt, USERS[1]], text)
            self.assertEqual(r.returncode, 0, r.stderr)
        for got in wait_mail(self.inst, USERS[1], 2):
            self.assertEqual(got.get_payload(), "before\n.\nafter\n")

    def test_f_by_root_is_honoured(self):
        r = sendmail(self.inst, ["-f", "list-bounces@example.org", "-odi", "-oem", USERS[0]],
                     MESSAGE)
        self.assertEqual(r.returncode, 0, r.stderr)
        (got,) = wait_mail(self.inst, USERS[0], 1)
        self.assertEqual(got["Return-Path"], "<list-bounces@example.org>")
        self.assertEqual(got["From"], "<list-bounces@example.org>")
        self.inst.wait_log(r": uid=0 from=<list-bounces@example\.org>")
        r = sendmail(self.inst, ["-f", "<>", USERS[0]], MESSAGE)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = wait_mail(self.inst, USERS[0], 2)[1]
        self.assertEqual(got["Return-Path"], "<>")
        self.assertEqual(got["From"], "MAILER-DAEMON")

    def test_f_by_user_is_replaced_by_login(self):
        user = USERS[0]
        uid = pwd.getpwnam(user).pw_uid
        r = sendmail(self.inst, ["-f", "president@example.org", USERS[1]], MESSAGE, user=user)
        self.assertEqual(r.returncode, 0, r.stderr)
        (got,) = wait_mail(self.inst, USERS[1], 1)
        self.assertEqual(got["Return-Path"], "<%s@%s>" % (user, HOST))
        self.assertEqual(got["From"], "<%s@%s>" % (user, HOST))
        self.assertIn("(Tern, from userid %d)" % uid, got["Received"])
        qid = got["Message-ID"][1:17]           # cleanup names the message after its queue ID
        self.inst.wait_log(r"%s: uid=%d from=<%s@tern\.test>" % (qid, uid, user))
        self.inst.wait_log(r"%s: sender <president@example\.org> replaced by <%s@tern\.test>"
                           % (qid, user))
        # without -f the login name, without any note
        r = sendmail(self.inst, [USERS[1]], MESSAGE, user=user)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_mail(self.inst, USERS[1], 2)

    def test_bs_speaks_smtp_and_goes_through_maildrop(self):
        user = USERS[0]
        dialog = ("EHLO client.example\r\nMAIL FROM:<boss@example.org>\r\nRCPT TO:<%s>\r\n"
                  "DATA\r\nSubject: via -bs\r\n\r\n..leading dot\r\n.\r\n"
                  "MAIL FROM:<>\r\nRCPT TO:<%s>\r\nRSET\r\nQUIT\r\n" % (USERS[1], USERS[1]))
        r = sendmail(self.inst, ["-bs"], dialog, user=user)
        self.assertEqual(r.returncode, 0, r.stderr)
        codes = [line[:4] for line in r.stdout.decode().split("\r\n") if line]
        self.assertEqual(codes[0], "220 ")
        self.assertIn("250 ", codes)
        self.assertEqual(codes[-1], "221 ")
        self.assertRegex(r.stdout.decode(), r"250 2\.0\.0 Ok: queued as [0-9B-Z]{16}\r\n")
        (got,) = wait_mail(self.inst, USERS[1], 1)
        self.assertEqual(got["Subject"], "via -bs")
        self.assertEqual(got.get_payload(), ".leading dot\n")
        # a user's MAIL FROM is no way around the sender rule
        self.assertEqual(got["Return-Path"], "<%s@%s>" % (user, HOST))

    def test_corrupt_maildrop_files_are_set_aside(self):
        inst = self.inst
        maildrop = os.path.join(inst.queue_dir, "maildrop")
        planted = {}
        uid = pwd.getpwnam(USERS[0]).pw_uid
        for what, data in (("garbage", b"\x00garbage, not records\n"),
                           ("truncated", maildrop_file(0, USERS[0])[:-7]),
                           ("uid not the owner's", maildrop_file(uid, USERS[0])),
                           ("no uid",
                            maildrop_file(0, USERS[0]).replace(b"A\0\0\0\x05uid=0", b""))):
            qid = harness.new_queue_id()
            with open(os.path.join(maildrop, qid), "wb") as f:
                f.write(data)
            planted[qid] = what
        qid = harness.new_queue_id()
        os.symlink("/etc/passwd", os.path.join(maildrop, qid))
        planted[qid] = "symlink"
        qid = harness.new_queue_id()
        os.mkfifo(os.path.join(maildrop, qid))
        planted[qid] = "fifo"
        poke_pickup(inst)
        for qid, what in planted.items():
            inst.wait_log(r"maildrop file %s: .*; moved to corrupt/" % qid)
            self.assertTrue(os.path.lexists(os.path.join(inst.queue_dir, "corrupt", qid)), what)
        self.assertEqual(maildrop_files(inst), [])
        # pickup goes on working
        r = sendmail(inst, [USERS[0]], MESSAGE)
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_mail(inst, USERS[0], 1)
        self.assertEqual(len([p for p, _, n in inst.processes() if n == "pickup"]), 1)

    def test_bad_usage_is_refused(self):
        for args, word in ((["-N", "sometimes", USERS[0]], b"-N"),
                           (["-R", "all", USERS[0]], b"-R"),
                           (["-bz"], b"-b"),
                           (["not@@an-address"], b"recipient")):
            r = sendmail(self.inst, args, MESSAGE)
            self.assertEqual(r.returncode, 64, (args, r.stderr))
            self.assertIn(word, r.stderr)

    def test_mail_config_names_the_configuration(self):
        """Without -C, sendmail reads $MAIL_CONFIG as Postfix's does, for root
        and for a user; $TERN_CONFIG_DIRECTORY wins when both are set."""
        for user, env in ((None, {"MAIL_CONFIG": self.inst.dir}),
                          (USERS[0], {"MAIL_CONFIG": self.inst.dir}),
                          (None, {"TERN_CONFIG_DIRECTORY": self.inst.dir,
                                  "MAIL_CONFIG": "/nonexistent/tern"})):
            with self.subTest(user=user, env=sorted(env)):
                mbox = os.path.join(self.inst.dir, "mail", USERS[1])
                if os.path.exists(mbox):
                    os.unlink(mbox)
                r = sendmail(self.inst, [USERS[1]], MESSAGE, user=user, env=env)
                self.assertEqual(r.returncode, 0, r.stderr)
                wait_mail(self.inst, USERS[1], 1)
        r = sendmail(self.inst, [USERS[1]], MESSAGE, env={"MAIL_CONFIG": "/nonexistent/tern"})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"/nonexistent/tern", r.stderr)
        # newaliases and mailq under their own names, too
        r = sendmail(self.inst, [], name="newaliases", env={"MAIL_CONFIG": self.inst.dir})
        self.assertEqual(r.returncode, self.inst.tern("aliases", check=False).returncode, r.stderr)
        r = sendmail(self.inst, [], name="mailq", env={"MAIL_CONFIG": self.inst.dir})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"Mail queue is empty", r.stdout)

    def test_q_and_bi_run_tern(self):
        r = sendmail(self.inst, ["-q"])
        direct = self.inst.tern("flush", check=False)
        self.assertEqual(r.returncode, direct.returncode, r.stderr)
        r = sendmail(self.inst, [], name="newaliases")
        direct = self.inst.tern("aliases", check=False)
        self.assertEqual(r.returncode, direct.returncode, r.stderr)
        self.assertEqual(sendmail(self.inst, ["-bi"]).returncode, direct.returncode)


class TestMaildrop(unittest.TestCase):
    """Tern stopped: the message waits in maildrop/, private to its owner."""

    def setUp(self):
        self.inst = make_instance("maildrop")
        self.addCleanup(self.inst.cleanup)

    def test_waits_while_stopped_and_is_private(self):
        inst = self.inst
        user, other = USERS
        inst.start()            # the first start makes the queue tree
        inst.stop()
        r = sendmail(inst, [other], MESSAGE, user=user)
        self.assertEqual(r.returncode, 0, r.stderr)
        (name,) = maildrop_files(inst)
        path = os.path.join(inst.queue_dir, "maildrop", name)
        st = os.lstat(path)
        self.assertEqual(st.st_uid, pwd.getpwnam(user).pw_uid)
        self.assertEqual(st.st_gid, grp.getgrnam("terndrop").gr_gid)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        msg = harness.read_queue_file(path)
        self.assertTrue(msg["complete"])
        self.assertEqual(msg["attrs"]["uid"], str(st.st_uid))
        self.assertEqual(msg["sender"], user)
        self.assertEqual(msg["recipients"], [(other, "", "", False)])
        # neither the other user nor the submitter can list, read or remove it
        for who in (other, user):
            for cmd in (["ls", os.path.dirname(path)], ["cat", path], ["rm", "-f", path],
                        ["cp", "/etc/hostname", path + ".new"]):
                self.assertNotEqual(as_user(who, *cmd).returncode, 0, (who, cmd))
        self.assertTrue(os.path.exists(path))
        inst.start()
        (got,) = wait_mail(inst, other, 1)
        self.assertEqual(got["Return-Path"], "<%s@%s>" % (user, HOST))
        deadline = time.time() + 10
        while maildrop_files(inst) and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(maildrop_files(inst), [])


class TestQueueListing(unittest.TestCase):
    """Mail for a relayhost that refuses connections stays in the queue."""

    def setUp(self):
        self.inst = make_instance("mailq", {
            "relayhost": "[127.0.0.1]:%d" % harness.free_port()})
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def test_bp_and_mailq_list_a_queued_message_with_its_dsn_options(self):
        inst = self.inst
        r = sendmail(inst, ["-N", "never", "-R", "hdrs", "-V", "env-42", "-f", "me@example.org",
                            "far@remote.example"], MESSAGE)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = inst.wait_log(r"([0-9B-Z]{16}): to=<far@remote\.example>.*status=deferred")
        qid = m.group(1)
        (path,) = inst.wait_queue("deferred", 1)
        msg = harness.read_queue_file(path)
        self.assertEqual(msg["attrs"].get("ret"), "HDRS")
        self.assertEqual(msg["attrs"].get("envid"), "env-42")
        self.assertEqual(msg["attrs"].get("uid"), "0")
        self.assertEqual(msg["recipients"], [("far@remote.example", "", "NEVER", False)])
        for args, name in ((["-bp"], None), ([], "mailq")):
            r = sendmail(inst, args, name=name)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout.decode()
            self.assertIn(qid, out)
            self.assertIn("me@example.org", out)
            self.assertIn("far@remote.example", out)

    def test_normal_user_lists_the_queue_but_cannot_read_or_change_it(self):
        inst = self.inst
        user, other = USERS
        r = sendmail(inst, ["-f", "me@example.org", "far@remote.example"], MESSAGE)
        self.assertEqual(r.returncode, 0, r.stderr)
        qid = inst.wait_log(r"([0-9B-Z]{16}): to=<far@remote\.example>.*status=deferred").group(1)
        (path,) = inst.wait_queue("deferred", 1)
        # mailq, sendmail -bp and tern queue (also --json, with filters) go
        # through showq for a user who is not root
        tern = [harness.TERN, "-c", inst.dir]
        for cmd in ([SENDMAIL, "-C", inst.dir, "-bp"], tern + ["queue"]):
            r = as_user(other, *cmd)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout.decode()
            self.assertIn(qid, out)
            self.assertIn("me@example.org", out)
            self.assertIn("far@remote.example", out)
            self.assertIn("-- 1 Kbytes in 1 Request.", out)
            self.assertNotIn("Subject", out)
        r = as_user(other, *(tern + ["queue", "--json", "--domain", "remote.example"]))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout.decode())["queue_id"], qid)
        r = as_user(other, *(tern + ["queue", "--sender", "nobody@example.org"]))
        self.assertEqual(r.stdout.decode(), "No matching messages in the queue\n")
        r = as_user(other, *(tern + ["queue", "--state", "nonsense"]))
        self.assertNotEqual(r.returncode, 0)
        # but cannot read the message or act on it
        for args in (["show", qid], ["delete", qid], ["hold", qid]):
            r = as_user(other, *(tern + args))
            self.assertNotEqual(r.returncode, 0, args)
        self.assertNotEqual(as_user(other, "cat", path).returncode, 0)
        self.assertTrue(os.path.exists(path))
        # tern check is content with the set-group-ID programs; with a plain
        # copy it warns and names the fix
        self.assertNotIn("set-group-ID", harness.tern("-c", inst.dir, "check").stdout)
        # the set-group-ID helper does not take a configuration of the user's
        fake = tempfile.mkdtemp(prefix="tern-fake-", dir="/tmp")
        self.addCleanup(shutil.rmtree, fake, ignore_errors=True)
        os.chmod(fake, 0o777)
        r = as_user(other, os.path.join(inst.dir, "libexec", "tern-mailq"), "-c", fake)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("only root may use one", r.stderr.decode())
        # with Tern stopped only root can list the queue
        inst.stop()
        r = as_user(other, *(tern + ["queue"]))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("only root can list the queue", r.stderr.decode())
        r = harness.tern("-c", inst.dir, "queue")
        self.assertIn(qid, r.stdout)


if __name__ == "__main__":
    unittest.main()
