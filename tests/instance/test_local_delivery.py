"""test_local_delivery.py: whole-instance tests of the local delivery agent.

Each class starts an instance with `local unix - n n - - local` in
master.cf and real Unix users (terntestloc*, created with useradd and
removed with userdel). Messages are queue files the test writes into
queue/hold/, out of qmgr's way, and the test speaks the delivery protocol
(doc/PROTOCOLS.md) to queue/private/local itself, as qmgr would; one test
goes the whole way through smtpd, cleanup and qmgr. Checked: the results,
the mailboxes and files byte for byte with their owners, the recipient
records marked done exactly for final outcomes, and the log lines.
"""
import email
import email.policy
import mailbox
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import read_bytes  # noqa: E402

HOST = "tern.test"
USERS = ("terntestloca", "terntestlocb", "terntestlocc")
AUX = os.path.join(harness.BUILD, "tests", "unit", "test_local_aliasdb")
MESSAGE = (b"Subject: hello\nFrom: Sender <sender@example.org>\n\n"
           b"From the body, quoted in mbox\nsecond line\n>From stays as it is\n")

# ---- users ----

_homes = None


def setUpModule():
    global _homes
    if os.geteuid() != 0:
        raise unittest.SkipTest("local delivery tests create Unix users: run as root")
    _homes = harness.make_unix_users(USERS, "tern-local-homes-", lambda name: name != "terntestlocc")


def tearDownModule():
    harness.remove_unix_users(USERS, _homes)


def home(name):
    return os.path.join(_homes, name)


def uid(name):
    return pwd.getpwnam(name).pw_uid


def clean_home(name):
    """Empty a test user's home between tests (keeps its owner and mode)."""
    h = home(name)
    for entry in os.listdir(h):
        p = os.path.join(h, entry)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        else:
            os.unlink(p)


def put_file(path, text, owner=None, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    if owner:
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, mode)







# ---- queue files (lib/global/QUEUE.md) ----

def write_queue_file(inst, sender, rcpts, content, sub="hold"):
    """A complete queue file in queue/SUB; returns (queue_id, offsets of the R records)."""
    qid = harness.new_queue_id()
    records, offsets, pos = [], [], 0

    def rec(t, data):
        nonlocal pos
        records.append(harness.queue_record(t, data))
        start = pos
        pos += 5 + len(data)
        return start

    rec("V", b"1")
    rec("T", b"%d.000000" % (int(time.time()) - 2))
    rec("S", sender.encode())
    rec("A", b"protocol=ESMTP")
    for r in rcpts:
        offsets.append(rec("R", r.encode() + b"\0\0"))
    for i in range(0, len(content), 65536):
        rec("C", content[i:i + 65536])
    rec("X", b"")
    rec("Z", str(len(content)).encode())
    rec("E", b"")
    path = os.path.join(inst.queue_dir, sub, qid)
    with open(path, "wb") as f:
        f.write(b"".join(records))
    owner = pwd.getpwnam("tern") if _has_user("tern") else None
    if owner:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    os.chmod(path, 0o600)
    return qid, offsets


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def deliver(inst, qid, rcpts, offsets, sender="sender@example.org", sub="hold", timeout=60):
    """Speak the delivery protocol as qmgr does; returns one dict per recipient."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(os.path.join(inst.queue_dir, "private", "local"))
    try:
        assert harness.read_attr_frame(sock) == [("protocol", "delivery")]
        pairs = [("queue_id", qid), ("queue_path", "%s/%s" % (sub, qid)), ("transport", "local"),
                 ("nexthop", HOST), ("sender", sender), ("flags", 0), ("nrcpt", len(rcpts))]
        for r, off in zip(rcpts, offsets):
            pairs += [("rcpt", r), ("orcpt", ""), ("notify", ""), ("offset", off)]
        sock.sendall(harness.encode_attr_frame(pairs))
        results = []
        while True:
            frame = harness.read_attr_frame(sock)
            if frame[0][0] == "done":
                assert frame == [("done", str(len(rcpts)))], frame
                return results
            names = [n for n, _ in frame]
            assert names == ["index", "status", "dsn", "relay", "reason", "delay_connect",
                             "delay_transfer"], names
            d = dict(frame)
            assert int(d["index"]) == len(results)
            d["status"] = int(d["status"])
            results.append(d)
    finally:
        sock.close()


def done_flags(inst, qid, sub="hold"):
    msg = harness.read_queue_file(os.path.join(inst.queue_dir, sub, qid))
    return [r[3] for r in msg["recipients"]]


# ---- instances ----

def local_instance(name, main_cf, spool_mode=0o755):
    """An instance with the local service; mail_spool_directory DIR/spool
    (root-owned with spool_mode) and DIR/files (1777) for file and command
    destinations, which may run as default_privs."""
    inst = harness.Instance(name)
    for d, mode in (("spool", spool_mode), ("files", 0o1777)):
        os.mkdir(os.path.join(inst.dir, d))
        os.chmod(os.path.join(inst.dir, d), mode)
    settings = {"mail_spool_directory": os.path.join(inst.dir, "spool")}
    settings.update({k: v.replace("DIR", inst.dir) for k, v in main_cf.items()})
    inst.set_main_cf(settings)
    master_cf = os.path.join(inst.dir, "master.cf")
    with open(master_cf) as f:
        has_local = any(re.match(r"local\s+unix\s", line) for line in f)
    if not has_local:
        with open(master_cf, "a") as f:
            f.write("local     unix  -       n       n       -       -       local\n")
    return inst


LOG_SENT = (r"%s: to=<%s>, %srelay=local, delay=\d+(\.\d+)?, delays=\d+(\.\d+)?/0/0/\d+(\.\d+)?, "
            r"dsn=2\.0\.0, status=sent \(%s\)")


class LocalTestCase(unittest.TestCase):
    inst = None

    @classmethod
    def setUpClass(cls):
        try:
            cls.setup_instance()
        except BaseException:
            if cls.inst:
                cls.inst.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.inst:
            cls.inst.cleanup()

    def one(self, rcpt, content=MESSAGE, sender="sender@example.org"):
        """Deliver content to one recipient; (queue id, result dict)."""
        qid, offs = write_queue_file(self.inst, sender, [rcpt], content)
        res = deliver(self.inst, qid, [rcpt], offs, sender=sender)
        self.assertEqual(len(res), 1)
        return qid, res[0]

    def assertResult(self, res, status, dsn, reason_re):
        self.assertEqual((res["status"], res["dsn"]), (status, dsn), res)
        self.assertRegex(res["reason"], reason_re)
        self.assertEqual(res["relay"], "local")


# ---- mbox in mail_spool_directory, aliases, .forward, commands, files ----

ALIASES = """\
team terntestloca, terntestlocb
nested team
terntestlocb terntestlocb, DIR/files/b-copy
loopa loopb
loopb loopa
incl :include:DIR/include.txt
inclfile :include:DIR/include-file.txt
cmd "|id -u > DIR/files/cmd-uid; cat > DIR/files/cmd-msg"
cmdfail "|echo 'mailbox is on fire'; echo second line; exit 1"
cmdtemp "|echo try later; exit 75"
remote someone@example.net, terntestloca
devnull /dev/null
"""


def chain_aliases(n):
    return "".join("chain%d chain%d\n" % (i, i + 1) for i in range(n))


class TestSpoolMbox(LocalTestCase):
    @classmethod
    def setup_instance(cls):
        cls.inst = local_instance("local", {
            "alias_maps": "texthash:DIR/aliases",
            "mailbox_size_limit": "200000",
            "deliver_lock_attempts": "2",
            "deliver_lock_delay": "1s",
        })
        d = cls.inst.dir
        put_file(os.path.join(d, "aliases"), (ALIASES + chain_aliases(30)).replace("DIR", d))
        put_file(os.path.join(d, "include.txt"), "# list members\nterntestloca\n\nterntestlocb\n")
        put_file(os.path.join(d, "include-file.txt"), "%s/files/from-include\n" % d)
        cls.inst.start()

    def setUp(self):
        for name in USERS:
            clean_home(name)
        for d in ("spool", "files"):
            path = os.path.join(self.inst.dir, d)
            for entry in os.listdir(path):
                os.unlink(os.path.join(path, entry))

    def mailbox(self, name):
        return os.path.join(self.inst.dir, "spool", name)

    def test_mbox_delivery(self):
        qid, res = self.one("terntestloca@%s" % HOST)
        self.assertResult(res, 2, "2.0.0", r"^delivered to mailbox$")
        box = self.mailbox("terntestloca")
        data = read_bytes(box)
        first, rest = data.split(b"\n", 1)
        self.assertRegex(first.decode(), r"^From sender@example\.org  \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$")
        self.assertEqual(rest, b"Return-Path: <sender@example.org>\nX-Original-To: terntestloca@tern.test\n"
                         b"Delivered-To: terntestloca@tern.test\n"
                         b"Subject: hello\nFrom: Sender <sender@example.org>\n\n"
                         b">From the body, quoted in mbox\nsecond line\n>From stays as it is\n\n")
        st = os.stat(box)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (uid("terntestloca"), 0o600))
        self.assertFalse(os.path.exists(box + ".lock"), "dot-lock left behind")
        self.assertEqual(done_flags(self.inst, qid), [True])
        self.inst.wait_log(LOG_SENT % (qid, "terntestloca@tern.test", "", "delivered to mailbox"))
        # a second message is appended after the first, whole
        self.one("terntestloca@%s" % HOST, content=b"Subject: two\n\nsecond message\n")
        data2 = read_bytes(box)
        self.assertTrue(data2.startswith(data))
        self.assertRegex(data2[len(data):].decode(), r"^From sender@example\.org  .*\nReturn-Path: "
                         r"<sender@example\.org>\nX-Original-To: terntestloca@tern\.test\n"
                         r"Delivered-To: terntestloca@tern\.test\n"
                         r"Subject: two\n\nsecond message\n\n$")

    def test_null_sender_and_case_folding(self):
        qid, res = self.one("TernTestLocA@%s" % HOST, sender="")
        self.assertEqual(res["status"], 2, res)
        data = read_bytes(self.mailbox("terntestloca"))
        self.assertTrue(data.startswith(b"From MAILER-DAEMON  "))
        # X-Original-To: as received, Delivered-To: in lower case (as Postfix)
        self.assertIn(b"\nReturn-Path: <>\nX-Original-To: TernTestLocA@tern.test\n"
                      b"Delivered-To: terntestloca@tern.test\n", data)

    def test_unknown_user(self):
        qid, res = self.one("nosuchuser@%s" % HOST)
        self.assertResult(res, 5, "5.1.1", r'^unknown user: "nosuchuser"$')
        self.assertEqual(done_flags(self.inst, qid), [True])
        self.inst.wait_log(r"%s: to=<nosuchuser@tern\.test>, relay=local, .*dsn=5\.1\.1, "
                           r'status=bounced \(unknown user: "nosuchuser"\)' % qid)

    def test_loop_detection(self):
        content = b"Delivered-To: TernTestLocA@tern.test\n" + MESSAGE
        qid, res = self.one("terntestloca@%s" % HOST, content=content)
        self.assertResult(res, 5, "5.4.6", r"^mail forwarding loop for terntestloca@tern\.test$")
        self.assertFalse(os.path.exists(self.mailbox("terntestloca")))
        self.assertEqual(done_flags(self.inst, qid), [True])
        # the same header in the body is not a loop
        content = MESSAGE + b"Delivered-To: terntestloca@tern.test\n"
        qid, res = self.one("terntestloca@%s" % HOST, content=content)
        self.assertEqual(res["status"], 2, res)

    def test_size_limit(self):
        self.one("terntestloca@%s" % HOST)
        before = read_bytes(self.mailbox("terntestloca"))
        big = b"Subject: big\n\n" + b"x" * 99 + b"\n" * 1 + (b"y" * 99 + b"\n") * 2500
        qid, res = self.one("terntestloca@%s" % HOST, content=big)
        self.assertResult(res, 5, "5.2.2", r"mailbox_size_limit")
        self.assertEqual(read_bytes(self.mailbox("terntestloca")), before, "partial message left")
        self.assertEqual(done_flags(self.inst, qid), [True])

    def test_lock_timeout_defers(self):
        box = self.mailbox("terntestloca")
        self.one("terntestloca@%s" % HOST)
        before = read_bytes(box)
        put_file(box + ".lock", "")
        try:
            t0 = time.time()
            qid, offs = write_queue_file(self.inst, "s@example.org", ["terntestloca@%s" % HOST], MESSAGE)
            res = deliver(self.inst, qid, ["terntestloca@%s" % HOST], offs)[0]
            self.assertResult(res, 4, "4.2.0", r"unable to lock for exclusive access")
            self.assertLess(time.time() - t0, 20)
            self.assertEqual(read_bytes(box), before)
            self.assertEqual(done_flags(self.inst, qid), [False])
            self.inst.wait_log(r"%s: to=<terntestloca@tern\.test>, .*dsn=4\.2\.0, status=deferred" % qid)
        finally:
            os.unlink(box + ".lock")
        res = deliver(self.inst, qid, ["terntestloca@%s" % HOST], offs)[0]
        self.assertEqual(res["status"], 2, res)
        self.assertEqual(done_flags(self.inst, qid), [True])

    def test_mailbox_of_another_owner_defers(self):
        box = self.mailbox("terntestloca")
        put_file(box, "", owner="terntestlocb", mode=0o600)
        qid, res = self.one("terntestloca@%s" % HOST)
        self.assertResult(res, 4, "4.2.0", r"not owned by the recipient")
        self.assertEqual(os.path.getsize(box), 0)
        self.assertEqual(done_flags(self.inst, qid), [False])

    def test_symlink_mailbox_defers(self):
        target = os.path.join(self.inst.dir, "files", "target")
        put_file(target, "")
        os.symlink(target, self.mailbox("terntestloca"))
        qid, res = self.one("terntestloca@%s" % HOST)
        self.assertEqual((res["status"], res["dsn"]), (4, "4.2.0"), res)
        self.assertEqual(os.path.getsize(target), 0)

    def test_nested_alias(self):
        qid, res = self.one("nested@%s" % HOST)
        self.assertResult(res, 2, "2.0.0", r"^delivered to mailbox$")
        for name in ("terntestloca", "terntestlocb"):
            data = read_bytes(self.mailbox(name))
            self.assertEqual(data.count(b"\nReturn-Path: "), 1, name)
            self.assertIn(b"Delivered-To: nested@tern.test\n", data)
            self.inst.wait_log(LOG_SENT % (qid, "%s@tern.test" % name, r"orig_to=<nested@tern\.test>, ",
                                           "delivered to mailbox"))
        self.assertEqual(done_flags(self.inst, qid), [True])

    def test_alias_naming_itself_and_a_file(self):
        qid, res = self.one("terntestlocb@%s" % HOST)
        self.assertEqual(res["status"], 2, res)
        self.assertIn(b"Subject: hello", read_bytes(self.mailbox("terntestlocb")))
        copy = os.path.join(self.inst.dir, "files", "b-copy")
        data = read_bytes(copy)
        self.assertTrue(data.startswith(b"From sender@example.org  "))
        self.assertTrue(data.endswith(b"\n>From stays as it is\n\n"))
        # a root-owned alias table: files are written as default_privs
        self.assertEqual(os.stat(copy).st_uid, uid("nobody"))
        self.inst.wait_log(LOG_SENT % (qid, "terntestlocb@tern.test", "",
                                       "delivered to file: %s" % re.escape(copy)))

    def test_alias_loop_ends_at_the_user(self):
        # loopa -> loopb -> loopa: inside its own expansion loopa is a user name
        qid, res = self.one("loopa@%s" % HOST)
        self.assertResult(res, 5, "5.1.1", r'^unknown user: "loopa"$')
        self.assertEqual(done_flags(self.inst, qid), [True])

    def test_alias_depth_limit(self):
        qid, res = self.one("chain0@%s" % HOST)
        self.assertResult(res, 5, "5.4.6", r"too many levels")

    def test_include(self):
        qid, res = self.one("incl@%s" % HOST)
        self.assertEqual(res["status"], 2, res)
        for name in ("terntestloca", "terntestlocb"):
            self.assertIn(b"Delivered-To: incl@tern.test\n", read_bytes(self.mailbox(name)))

    def test_file_in_include_is_restricted(self):
        qid, res = self.one("inclfile@%s" % HOST)
        self.assertResult(res, 5, "5.7.1", r"^mail to file is restricted$")
        self.assertFalse(os.path.exists(os.path.join(self.inst.dir, "files", "from-include")))

    def test_alias_command(self):
        qid, res = self.one("cmd@%s" % HOST)
        self.assertResult(res, 2, "2.0.0", r"^delivered to command: id -u")
        files = os.path.join(self.inst.dir, "files")
        self.assertEqual(read_bytes(os.path.join(files, "cmd-uid")).strip(), str(uid("nobody")).encode())
        msg = read_bytes(os.path.join(files, "cmd-msg"))
        self.assertTrue(msg.startswith(b"From sender@example.org  "))
        self.assertTrue(msg.endswith(b"Return-Path: <sender@example.org>\nX-Original-To: cmd@tern.test\n"
                                     b"Delivered-To: cmd@tern.test\n"
                                     + MESSAGE), msg)
        self.assertEqual(os.stat(os.path.join(files, "cmd-msg")).st_uid, uid("nobody"))
        self.assertEqual(done_flags(self.inst, qid), [True])
        self.inst.wait_log(r"%s: to=<cmd@tern\.test>, relay=local, .*status=sent \(delivered to command: id -u" % qid)

    def test_command_failures(self):
        qid, res = self.one("cmdfail@%s" % HOST)
        self.assertResult(res, 5, "5.3.0", r"^Command died with status 1: .*Command output: mailbox is on fire$")
        self.assertEqual(done_flags(self.inst, qid), [True])
        qid, res = self.one("cmdtemp@%s" % HOST)
        self.assertResult(res, 4, "4.3.0", r"try later")
        self.assertEqual(done_flags(self.inst, qid), [False])

    def test_dev_null(self):
        qid, res = self.one("devnull@%s" % HOST)
        self.assertResult(res, 2, "2.0.0", r"^delivered to file: /dev/null$")

    def test_forward_file(self):
        h = home("terntestloca")
        put_file(os.path.join(h, ".forward"),
                 '# keep a copy\n\\terntestloca\n"|cat > %s/fwd-out"\n%s/fwd-file\n' % (h, h),
                 owner="terntestloca")
        qid, res = self.one("terntestloca@%s" % HOST)
        self.assertEqual(res["status"], 2, res)
        self.assertIn(b"Subject: hello", read_bytes(self.mailbox("terntestloca")))
        out = os.path.join(h, "fwd-out")
        self.assertEqual(os.stat(out).st_uid, uid("terntestloca"))
        self.assertTrue(read_bytes(out).endswith(MESSAGE))
        f = os.path.join(h, "fwd-file")
        self.assertEqual(os.stat(f).st_uid, uid("terntestloca"))
        self.assertIn(b"\n>From the body", read_bytes(f))
        self.assertEqual(done_flags(self.inst, qid), [True])

    def test_unsafe_forward_is_ignored(self):
        h = home("terntestloca")
        put_file(os.path.join(h, ".forward"), '"|cat > %s/fwd-out"\n' % h, owner="terntestloca",
                 mode=0o666)
        qid, res = self.one("terntestloca@%s" % HOST)
        self.assertResult(res, 2, "2.0.0", r"^delivered to mailbox$")
        self.assertFalse(os.path.exists(os.path.join(h, "fwd-out")))
        self.inst.wait_log(r"ignoring forward file .*/\.forward: writable by group or others")

    def test_forward_to_remote_address(self):
        qid, res = self.one("remote@%s" % HOST)
        self.assertResult(res, 2, "2.0.0", r"^(delivered to mailbox|forwarded as \w+)$")
        m = self.inst.wait_log(r"%s: to=<someone@example\.net>, orig_to=<remote@tern\.test>, relay=local, "
                               r".*status=sent \(forwarded as (\w+)\)" % qid)
        new_id = m.group(1)
        path = None
        for _ in range(100):
            for sub in ("incoming", "active", "deferred"):
                p = os.path.join(self.inst.queue_dir, sub, new_id)
                if os.path.exists(p):
                    path = p
            if path:
                break
            time.sleep(0.05)
        self.assertIsNotNone(path, "forwarded message %s not in the queue" % new_id)
        fwd = harness.read_queue_file(path)
        self.assertEqual(fwd["sender"], "sender@example.org")
        self.assertEqual([r[0] for r in fwd["recipients"]], ["someone@example.net"])
        self.assertIn(b"Delivered-To: remote@tern.test\n", fwd["content"])
        self.assertIn(b"Subject: hello", read_bytes(self.mailbox("terntestloca")))

    def test_request_outcomes_and_marking(self):
        rcpts = ["terntestloca@%s" % HOST, "nosuch@%s" % HOST, "terntestlocb@%s" % HOST,
                 "team@%s" % HOST]
        put_file(self.mailbox("terntestlocb") + ".lock", "")
        try:
            qid, offs = write_queue_file(self.inst, "s@example.org", rcpts, MESSAGE)
            res = deliver(self.inst, qid, rcpts, offs)
        finally:
            os.unlink(self.mailbox("terntestlocb") + ".lock")
        self.assertEqual([r["status"] for r in res], [2, 5, 4, 4])
        self.assertEqual(done_flags(self.inst, qid), [True, True, False, False])
        # terntestloca got it once, though team names it again
        self.assertEqual(read_bytes(self.mailbox("terntestloca")).count(b"Subject: hello"), 1)

    def test_recipient_not_in_queue_file(self):
        qid, offs = write_queue_file(self.inst, "s@example.org", ["terntestloca@%s" % HOST], MESSAGE)
        res = deliver(self.inst, qid, ["terntestlocb@%s" % HOST], offs)
        self.assertResult(res[0], 4, "4.3.0", r"not found in queue file")
        self.assertEqual(done_flags(self.inst, qid), [False])
        self.assertFalse(os.path.exists(self.mailbox("terntestlocb")))

    def test_bad_queue_path_is_refused(self):
        qid, offs = write_queue_file(self.inst, "s@example.org", ["terntestloca@%s" % HOST], MESSAGE)
        with self.assertRaises((EOFError, ConnectionError)):
            deliver(self.inst, qid, ["terntestloca@%s" % HOST], offs, sub="../hold")
        self.assertEqual(done_flags(self.inst, qid), [False])

    def test_through_smtpd_and_qmgr(self):
        with self.inst.smtp() as s:
            s.sendmail("e2e@example.org", ["terntestlocb@%s" % HOST],
                       "Subject: end to end\r\n\r\nFrom smtpd to the mailbox\r\n")
        box = self.mailbox("terntestlocb")
        deadline = time.time() + 20
        while time.time() < deadline and b"end to end" not in (read_bytes(box) if os.path.exists(box) else b""):
            time.sleep(0.1)
        data = read_bytes(box)
        self.assertIn(b"Subject: end to end\n", data)
        self.assertIn(b"\n>From smtpd to the mailbox\n", data)
        self.inst.wait_log(r"to=<terntestlocb@tern\.test>, relay=local, .*status=sent \(delivered to mailbox\)")

    def test_bounce_arrives_in_the_senders_mailbox(self):
        with self.inst.smtp() as s:
            s.sendmail("terntestloca@%s" % HOST, ["nosuchuser@%s" % HOST],
                       "Subject: to nobody\r\n\r\nwill come back\r\n")
        box = self.mailbox("terntestloca")
        deadline = time.time() + 20
        while time.time() < deadline and b"Undelivered Mail Returned" not in (
                read_bytes(box) if os.path.exists(box) else b""):
            time.sleep(0.1)
        notices = [m for m in mailbox.mbox(box) if "Undelivered" in (m["Subject"] or "")]
        self.assertEqual(len(notices), 1)
        report = email.message_from_bytes(notices[0].as_bytes(), policy=email.policy.compat32)
        self.assertEqual(report.get_content_type(), "multipart/report")
        status = [p for p in report.get_payload() if p.get_content_type() == "message/delivery-status"][0]
        fields = dict((k.lower(), v) for block in status.get_payload() for k, v in block.items())
        self.assertEqual(fields["action"], "failed")
        self.assertEqual(fields["status"], "5.1.1")
        self.assertIn("nosuchuser@%s" % HOST, fields["final-recipient"])
        self.assertEqual(notices[0].get_from().split()[0], "MAILER-DAEMON")


class TestStickySpool(LocalTestCase):
    """A 1777 spool directory: the mailbox is created by the user itself;
    alias_maps is a hash: table compiled from aliases(5) syntax."""

    @classmethod
    def setup_instance(cls):
        cls.inst = local_instance("localsticky", {"alias_maps": "hash:DIR/aliases"}, spool_mode=0o1777)
        put_file(os.path.join(cls.inst.dir, "aliases"),
                 "# aliases(5)\npostmaster: root\nroot: terntestloca,\n  terntestlocb\n")
        cls.built = os.path.exists(AUX) and subprocess.run(
            [AUX, "build", "hash:%s/aliases" % cls.inst.dir], capture_output=True).returncode == 0
        cls.inst.start()

    def test_user_creates_own_mailbox(self):
        qid, res = self.one("terntestlocb@%s" % HOST)
        self.assertEqual(res["status"], 2, res)
        box = os.path.join(self.inst.dir, "spool", "terntestlocb")
        st = os.stat(box)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (uid("terntestlocb"), 0o600))
        self.assertFalse(os.path.exists(box + ".lock"))

    def test_hash_aliases(self):
        if not self.built:
            self.skipTest("alias compiler %s not built (make check builds it)" % AUX)
        qid, res = self.one("Postmaster@%s" % HOST)
        self.assertEqual(res["status"], 2, res)
        for name in ("terntestloca", "terntestlocb"):
            self.assertIn(b"Delivered-To: postmaster@tern.test\n",
                          read_bytes(os.path.join(self.inst.dir, "spool", name)))


class TestMaildir(LocalTestCase):
    @classmethod
    def setup_instance(cls):
        cls.inst = local_instance("localmaildir", {"home_mailbox": "Maildir/", "recipient_delimiter": "+",
                                                   "alias_maps": "inline:{ news=terntestlocb }"})
        cls.inst.start()

    def setUp(self):
        for name in USERS:
            clean_home(name)

    def maildir_files(self, name, sub="new"):
        return harness.maildir_files(os.path.join(home(name), "Maildir"), sub)

    def test_maildir_delivery(self):
        qid, res = self.one("terntestloca@%s" % HOST)
        self.assertResult(res, 2, "2.0.0", r"^delivered to maildir$")
        files = self.maildir_files("terntestloca")
        self.assertEqual(len(files), 1)
        self.assertRegex(os.path.basename(files[0]), r"^\d+\.M\d{6}P\d+_\d+\.tern\.test$")
        self.assertEqual(read_bytes(files[0]), b"Return-Path: <sender@example.org>\n"
                         b"X-Original-To: terntestloca@tern.test\n"
                         b"Delivered-To: terntestloca@tern.test\n" + MESSAGE)
        self.assertEqual(os.stat(files[0]).st_uid, uid("terntestloca"))
        self.assertEqual(self.maildir_files("terntestloca", "tmp"), [])
        self.assertEqual(self.maildir_files("terntestloca", "cur"), [])
        self.inst.wait_log(LOG_SENT % (qid, "terntestloca@tern.test", "", "delivered to maildir"))
        self.one("terntestloca@%s" % HOST)
        self.assertEqual(len(self.maildir_files("terntestloca")), 2)

    def test_extension(self):
        qid, res = self.one("terntestloca+lists@%s" % HOST)
        self.assertEqual(res["status"], 2, res)
        files = self.maildir_files("terntestloca")
        self.assertEqual(len(files), 1)
        self.assertIn(b"Delivered-To: terntestloca+lists@tern.test\n", read_bytes(files[0]))
        # an alias matches with or without the extension
        qid, res = self.one("news+daily@%s" % HOST)
        self.assertEqual(res["status"], 2, res)
        self.assertEqual(len(self.maildir_files("terntestlocb")), 1)

    def test_permission_denied_defers(self):
        qid, res = self.one("terntestlocc@%s" % HOST)
        self.assertResult(res, 4, "4.2.0", r"Permission denied")
        self.assertEqual(done_flags(self.inst, qid), [False])
        self.inst.wait_log(r"%s: to=<terntestlocc@tern\.test>, .*dsn=4\.2\.0, status=deferred" % qid)


class TestMailboxCommand(LocalTestCase):
    # the slow command's sleep is this run's own (its length holds our PID),
    # so that a sleeper of another run on the machine is never taken for it
    SLEEP = "3%05d" % (os.getpid() % 100000)

    @classmethod
    def setup_instance(cls):
        cls.inst = local_instance("localcmd", {
            "recipient_delimiter": "+", "command_time_limit": "2s",
            "alias_maps": "inline:{ { slow = |sleep %s; echo never }, "
                          "{ fast = |exec cat >/dev/null } }" % cls.SLEEP,
            "mailbox_command": 'cat > "$HOME/mc-$EXTENSION"; echo "$USER $LOCAL $DOMAIN" > "$HOME/mc-env"'})
        cls.inst.start()

    def test_mailbox_command_runs_as_the_user(self):
        qid, res = self.one("terntestloca+x@%s" % HOST)
        self.assertResult(res, 2, "2.0.0", r"^delivered to command: cat > ")
        out = os.path.join(home("terntestloca"), "mc-x")
        self.assertEqual(os.stat(out).st_uid, uid("terntestloca"))
        data = read_bytes(out)
        self.assertTrue(data.startswith(b"From sender@example.org  "))
        self.assertTrue(data.endswith(b"Delivered-To: terntestloca+x@tern.test\n" + MESSAGE))
        self.assertEqual(read_bytes(os.path.join(home("terntestloca"), "mc-env")),
                         b"terntestloca terntestloca+x tern.test\n")


    def test_command_time_limit(self):
        t0 = time.time()
        qid, res = self.one("slow@%s" % HOST)
        self.assertResult(res, 5, "5.3.0", r"^command time limit exceeded")
        self.assertLess(time.time() - t0, 15)
        # the whole process group is gone, the shell's child included (a
        # process killed with SIGKILL may take a moment to go on a busy host)
        deadline = time.time() + 5
        while True:
            sleepers = []
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        if f.read() == b"sleep\x00%s\x00" % self.SLEEP.encode():
                            sleepers.append(pid)
                except OSError:
                    pass
            if not sleepers or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(sleepers, [])
        qid, res = self.one("fast@%s" % HOST)
        self.assertEqual(res["status"], 2, res)


if __name__ == "__main__":
    unittest.main()
