"""test_hostile_root.py: attacks from the mail_owner account (`tern`) on
root. Every daemon but master and local runs as mail_owner, so a bug in
any of them gives an attacker that uid; it must not lead on to root. The
rule tested here (doc/SECURITY.md, "Root and paths"): root never operates
by name inside a directory that an unprivileged uid can write.

- TestListenerRace: a racer running as tern renames a symbolic link to a
  root-only canary over each socket and fifo master makes in private/ and
  public/, the moment it appears, while the instance is started, reloaded
  and stopped again and again. Root must never chmod or chown through it.
- TestPidFile: a link, a hard link or a fifo planted as
  data_directory/master.pid: the start is refused clearly, nothing hangs,
  and the file linked to is untouched.
- TestQueueCommands: links to root's files planted in deferred/ and hold/
  under queue-file names; tern flush, release and show neither change the
  files' times nor show their content.
- TestLocalQueueFile: the file named in a delivery request is a link to a
  root-only file in queue format when local reads it: refused with a log
  line, and nothing of that file reaches a mailbox; a link at
  private/cleanup or at the mailbox_transport's socket does not lead local
  (root) to a root-only socket when it forwards a message or hands it to
  that transport, nor one at private/proxymap `tern map query` run by root.
- TestSendmailPoke: tern swaps a link to a root-only socket in and out at
  public/pickup while root runs sendmail: tern-drop (root) never reaches
  that socket when it pokes pickup.
- TestMailqAsRoot: a link at public/showq does not lead mailq run by
  root to a root-only socket.
- TestTicketSecret: a hard link planted as smtpd's TLS ticket secret in
  data_directory is not read by smtpd (still root at that point).
- TestInitDirectory: `tern init` as root refuses a directory that another
  uid can write, where a link could make it overwrite a file of root's.

Runs as root (the attacks need the tern account and root's master); the
racer is a small C program built here with cc.
"""
import os
import pwd
import select
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402

HOST = "tern.test"
OLD_TIME = 1000000000          # 2001: a canary's times, so any change shows

RACER_C = r"""
/* racer CANARY SECONDS MAXSWAPS DIR...: as the tern uid, the moment a new
 * name appears in one of the DIRs (inotify IN_CREATE), rename a symbolic
 * link to CANARY over it; every other time for each name, so that a master
 * that gives up at a swapped name also gets past it, to the later names
 * and to reloads. Prints "ready" once watching, and the number of swaps at
 * the end. Bounded by SECONDS and MAXSWAPS; SIGTERM ends it. */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define MAXDIRS 8

#define MAXNAMES 64

static volatile sig_atomic_t stop;
static char names[MAXNAMES][256];
static long seen[MAXNAMES];
static int nnames;

/* Is this the 1st, 3rd, 5th... appearance of dir/name? */
static int odd_time(int dir, const char *name)
{
    char key[256];
    snprintf(key, sizeof(key), "%d/%s", dir, name);
    int i = 0;
    while (i < nnames && strcmp(names[i], key) != 0)
        i++;
    if (i == nnames) {
        if (nnames == MAXNAMES)
            return 1;
        snprintf(names[nnames++], sizeof(names[0]), "%s", key);
    }
    return seen[i]++ % 2 == 0;
}

static void on_term(int sig)
{
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc - 4 > MAXDIRS)
        return 2;
    const char *canary = argv[1];
    time_t end = time(NULL) + atoi(argv[2]);
    long max = atol(argv[3]), swaps = 0;
    int ndirs = argc - 4, wd[MAXDIRS];
    char tmp[MAXDIRS][1024], dst[2048];
    static char buf[65536] __attribute__((aligned(8)));
    int in = inotify_init1(0);
    if (in < 0)
        return 3;
    for (int i = 0; i < ndirs; i++) {
        wd[i] = inotify_add_watch(in, argv[4 + i], IN_CREATE);
        snprintf(tmp[i], sizeof(tmp[i]), "%s/.racer", argv[4 + i]);
        unlink(tmp[i]);
        if (wd[i] < 0 || symlink(canary, tmp[i]) < 0)
            return 4;
    }
    struct sigaction sa = { .sa_handler = on_term };
    sigaction(SIGTERM, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    while (!stop && swaps < max && time(NULL) < end) {
        struct pollfd p = { in, POLLIN, 0 };
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t n = read(in, buf, sizeof(buf));
        for (char *q = buf; n > 0 && q < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)q;
            q += sizeof(*e) + e->len;
            if (!e->len || e->name[0] == '.')
                continue;
            for (int i = 0; i < ndirs; i++) {
                if (wd[i] != e->wd || !odd_time(i, e->name))
                    continue;
                snprintf(dst, sizeof(dst), "%s/%s", argv[4 + i], e->name);
                if (rename(tmp[i], dst) == 0)
                    swaps++;
                (void)symlink(canary, tmp[i]);
            }
        }
    }
    for (int i = 0; i < ndirs; i++)
        unlink(tmp[i]);
    printf("%ld\n", swaps);
    return 0;
}
"""

EXCHANGER_C = r"""
/* exchanger A B SECONDS: as the tern uid, swap the names A and B
 * (renameat2 RENAME_EXCHANGE) over and over, so that whoever looks A up
 * twice may find two different files. Prints "ready" once both exist;
 * bounded by SECONDS; SIGTERM ends it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    time_t end = time(NULL) + atoi(argv[3]);
    struct sigaction sa = { .sa_handler = on_term };
    sigaction(SIGTERM, &sa, NULL);
    printf("ready\n");
    fflush(stdout);
    for (long n = 0; !stop && (n & 0xfff || time(NULL) < end); n++)
        if (renameat2(AT_FDCWD, argv[1], AT_FDCWD, argv[2], RENAME_EXCHANGE) < 0)
            return 3;
    return 0;
}
"""

_tools = None


def setUpModule():
    global _tools
    if os.geteuid() != 0:
        raise unittest.SkipTest("attacks from the tern uid on root: run as root")
    if not shutil.which("cc"):
        raise unittest.SkipTest("the racer needs a C compiler (cc)")
    _tools = tempfile.mkdtemp(prefix="tern-hostile-root-", dir="/tmp")
    os.chmod(_tools, 0o755)
    src = os.path.join(_tools, "racer.c")
    with open(src, "w") as f:
        f.write(RACER_C)
    subprocess.run(["cc", "-O2", "-o", os.path.join(_tools, "racer"), src], check=True,
                   capture_output=True, timeout=120)
    src = os.path.join(_tools, "exchanger.c")
    with open(src, "w") as f:
        f.write(EXCHANGER_C)
    subprocess.run(["cc", "-O2", "-o", os.path.join(_tools, "exchanger"), src], check=True,
                   capture_output=True, timeout=120)


def tearDownModule():
    if _tools:
        shutil.rmtree(_tools, ignore_errors=True)


def tern_ids():
    pw = pwd.getpwnam("tern")
    return pw.pw_uid, pw.pw_gid


def make_canary(directory, name, content=b"root's file\n", mode=0o600):
    """A file of root's outside the queue, with old times."""
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(content)
    os.chown(path, 0, 0)
    os.chmod(path, mode)
    os.utime(path, (OLD_TIME, OLD_TIME))
    return path


def canary_state(path):
    """What an attack through a link would change: owner, group, mode,
    mtime and content (read as root without touching mtime)."""
    st = os.lstat(path)
    with open(path, "rb") as f:
        content = f.read()
    return {"uid": st.st_uid, "gid": st.st_gid, "mode": oct(stat.S_IMODE(st.st_mode)),
            "mtime": st.st_mtime_ns, "content": content}


def root_only_dir(inst):
    """A directory of root's inside the instance (same file system as the
    queue, so that hard links to its files can be made)."""
    d = os.path.join(inst.dir, "root-only")
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o700)
    return d


def root_only_listener(test):
    """A UNIX socket of root's in a directory only root may enter, that
    closes what it accepts (so a daemon is not kept waiting) and records
    every connection in .conns; removed when test ends. It keeps the mode
    the umask gives it: not writable by others."""
    hidden = tempfile.mkdtemp(prefix="tern-root-socket-", dir="/tmp")
    test.addCleanup(shutil.rmtree, hidden, True)
    os.chmod(hidden, 0o700)
    listener = servers.Server(path=os.path.join(hidden, "root-only"), backlog=64, mode=None)
    test.addCleanup(listener.stop)
    return listener


def assert_not_reached(test, listener, who, where):
    """After the attack: nothing ever connected to the root-only socket."""
    time.sleep(0.2)
    listener.stop()
    test.assertFalse(listener.conns, "%s (root) connected to a root-only socket through a link "
                     "at %s" % (who, where))


def queue_file_bytes(rcpt, content, sender="sender@example.org"):
    """A complete queue file (lib/global/QUEUE.md); returns (bytes, offset of the
    recipient record)."""
    records, pos, offset = [], 0, None
    for t, data in (("V", b"1"), ("T", b"%d.000000" % (int(time.time()) - 2)),
                    ("S", sender.encode()), ("A", b"protocol=ESMTP"),
                    ("R", rcpt.encode() + b"\0\0"), ("C", content), ("X", b""),
                    ("Z", str(len(content)).encode()), ("E", b"")):
        if t == "R":
            offset = pos
        records.append(harness.queue_record(t, data))
        pos += 5 + len(data)
    return b"".join(records), offset


def plant_link(kind, target, path):
    """A symbolic link (owned by tern, as the attacker would make it) or a
    hard link to target at path."""
    if kind == "symlink":
        os.symlink(target, path)
        os.lchown(path, *tern_ids())
    else:
        os.link(target, path)


def run_tern(inst, *args, timeout=30):
    return subprocess.run([harness.TERN, "-c", inst.dir] + list(args), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class TestListenerRace(unittest.TestCase):
    CYCLES = 20          # starts and stops
    RELOADS = 2          # per start, each adding or removing a unix and a fifo service
    TIME_LIMIT = 300     # seconds for the whole attack
    EXTRA = ["relay2         unix  -       -       n       -       -       smtp",
             "pickup2        fifo  n       -       n       -       1       pickup"]

    def setUp(self):
        self.inst = harness.Instance("hostile-race")
        self.addCleanup(self.inst.cleanup)
        self.inst.start()
        self.inst.stop()          # the queue tree now exists, owned by tern
        self.canary_dir = tempfile.mkdtemp(prefix="tern-canary-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.canary_dir, True)
        os.chmod(self.canary_dir, 0o755)
        self.canary = make_canary(self.canary_dir, "canary")
        self.dirs = [os.path.join(self.inst.queue_dir, d) for d in ("private", "public")]
        with open(os.path.join(self.inst.dir, "master.cf")) as f:
            self.master_cf = f.read()
        # master and the racer share one CPU: when inotify wakes the racer,
        # it runs before master gets on to its next system call.
        self.cpu = min(os.sched_getaffinity(0))

    def start_racer(self, seconds):
        uid, gid = tern_ids()
        cpu = self.cpu

        def as_tern():
            os.sched_setaffinity(0, {cpu})
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        racer = subprocess.Popen([os.path.join(_tools, "racer"), self.canary, str(seconds),
                                  "100000"] + self.dirs, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, preexec_fn=as_tern)
        self.addCleanup(self.stop_racer, racer)
        ready, _, _ = select.select([racer.stdout], [], [], 10)
        if not ready or racer.stdout.readline().strip() != "ready":
            self.stop_racer(racer)
            self.fail("the racer did not start (exit %s): %s" % (racer.returncode,
                                                                racer.stderr.read()))
        return racer

    @staticmethod
    def stop_racer(racer):
        """SIGTERM (it prints its count and exits), SIGKILL if it does not."""
        if racer.poll() is None:
            racer.terminate()
            try:
                racer.wait(timeout=5)
            except subprocess.TimeoutExpired:
                racer.kill()
                racer.wait(timeout=10)

    def remove_links(self):
        """What the racer left from the previous round (tern could remove
        them itself: the directories are its own)."""
        for d in self.dirs:
            for name in os.listdir(d):
                p = os.path.join(d, name)
                if name != ".racer" and os.path.islink(p):
                    os.unlink(p)

    def set_extra_services(self, on):
        with open(os.path.join(self.inst.dir, "master.cf"), "w") as f:
            f.write(self.master_cf + ("\n".join(self.EXTRA) + "\n" if on else ""))

    def reload_and_wait(self):
        before = self.inst.log_text().count("reload -- version")
        run_tern(self.inst, "reload")
        deadline = time.time() + 15
        while time.time() < deadline and self.inst.log_text().count("reload -- version") <= before:
            time.sleep(0.05)

    def test_racer_cannot_make_root_chmod_or_chown(self):
        before = canary_state(self.canary)
        racer = self.start_racer(self.TIME_LIMIT + 30)
        cpu = self.cpu
        deadline = time.time() + self.TIME_LIMIT
        cycles = started = 0
        for cycle in range(self.CYCLES):
            if time.time() > deadline or canary_state(self.canary) != before:
                break
            cycles += 1
            self.remove_links()
            self.set_extra_services(False)
            r = subprocess.run([harness.TERN, "-c", self.inst.dir, "start"], capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL,
                               preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
            if os.environ.get("TERN_TEST_DEBUG"):
                print("cycle", cycle, r.returncode, r.stderr.strip()[-200:])
            if self.inst.master_pid():
                started += 1
                for i in range(self.RELOADS):
                    self.set_extra_services(i % 2 == 0)
                    self.reload_and_wait()
            run_tern(self.inst, "stop", timeout=60)
            if self.inst.master_pid():
                self.inst.kill_all()
        self.stop_racer(racer)
        out = racer.stdout.read().split()
        swaps = int(out[-1]) if out and out[-1].isdigit() else 0
        after = canary_state(self.canary)
        self.assertEqual(after, before, "root changed a root-only file through a link the "
                         "tern uid put in private/ or public/ (%d swaps in %d cycles)"
                         % (swaps, cycles))
        self.assertGreater(swaps, 0, "the racer never replaced a socket: the attack was not tried")
        self.assertGreater(started, 0, "no start got past the racer: reloads were not tried")


class TestPidFile(unittest.TestCase):
    def setUp(self):
        self.inst = harness.Instance("hostile-pid")
        self.addCleanup(self.inst.cleanup)
        self.inst.start()
        self.inst.stop()          # data_directory now belongs to tern
        self.pid_file = os.path.join(self.inst.dir, "data", "master.pid")
        self.assertEqual(os.stat(os.path.dirname(self.pid_file)).st_uid, tern_ids()[0])
        if os.path.lexists(self.pid_file):
            os.unlink(self.pid_file)
        self.canary = make_canary(root_only_dir(self.inst), "canary")
        # before the instance's cleanup, which reads master.pid
        self.addCleanup(lambda: os.path.lexists(self.pid_file) and not
                        os.path.isfile(self.pid_file) and os.unlink(self.pid_file))

    def assert_start_refused(self, kind):
        before = canary_state(self.canary)
        r = run_tern(self.inst, "start")
        self.assertNotEqual(r.returncode, 0, "master started with a %s as master.pid" % kind)
        said = r.stderr + self.inst.log_text()
        self.assertIn("refusing the lock file", said)
        self.assertIn("master.pid", said)
        self.assertEqual(canary_state(self.canary), before,
                         "the file master.pid was a %s to was changed" % kind)
        self.assertEqual(self.inst.master_pid(), 0)

    def test_symlink_refused(self):
        plant_link("symlink", self.canary, self.pid_file)
        self.assert_start_refused("symbolic link")
        self.assertTrue(os.path.islink(self.pid_file))

    def test_hard_link_refused(self):
        plant_link("hardlink", self.canary, self.pid_file)
        self.assert_start_refused("hard link")

    def test_file_of_another_owner_refused(self):
        with open(self.pid_file, "w") as f:
            f.write("1\n")
        os.chown(self.pid_file, *tern_ids())
        r = run_tern(self.inst, "start")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not by uid 0", r.stderr + self.inst.log_text())

    def test_fifo_neither_hangs_nor_is_used(self):
        os.mkfifo(self.pid_file, 0o600)
        os.chown(self.pid_file, *tern_ids())
        r = run_tern(self.inst, "status", timeout=15)     # a blocking open would hang here
        self.assertEqual(r.returncode, 1)
        self.assertIn("not running", r.stdout)
        r = run_tern(self.inst, "start", timeout=15)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not a regular file", r.stderr + self.inst.log_text())

    def test_normal_start_still_works(self):
        self.inst.start()
        st = os.lstat(self.pid_file)
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual((st.st_uid, st.st_nlink), (0, 1))
        self.assertEqual(run_tern(self.inst, "status").returncode, 0)
        self.inst.stop()
        self.assertFalse(os.path.lexists(self.pid_file))


class TestQueueCommands(unittest.TestCase):
    """Tern is stopped: the commands work on the files themselves."""

    def setUp(self):
        self.inst = harness.Instance("hostile-qcmd")
        self.addCleanup(self.inst.cleanup)
        self.inst.start()
        self.inst.stop()
        self.secret_dir = root_only_dir(self.inst)

    def plant(self, kind, sub, content, mode):
        """A root file in queue format outside the queue, and a link to it
        under a queue ID in queue/SUB; returns (canary, queue ID)."""
        data, _ = queue_file_bytes("someone@example.org", content)
        qid = harness.new_queue_id()
        canary = make_canary(self.secret_dir, "%s-%s-%s" % (kind, sub, qid), data, mode)
        plant_link(kind, canary, os.path.join(self.inst.queue_dir, sub, qid))
        return canary, qid

    def test_flush_and_release_leave_link_targets_alone(self):
        planted = []
        for kind in ("symlink", "hardlink"):
            for sub in ("deferred", "hold"):
                # world-readable: mail_owner could read it, so only the
                # checks on what is opened keep its times unchanged
                canary, qid = self.plant(kind, sub, b"Subject: root's\n\nroot's file\n", 0o644)
                planted.append((kind, sub, canary, qid, canary_state(canary)))
        for kind, sub, canary, qid, _ in planted:
            r = run_tern(self.inst, "flush" if sub == "deferred" else "release", qid)
            self.assertNotEqual(r.returncode, 0, "tern accepted a %s in %s/" % (kind, sub))
            self.assertIn(qid, r.stderr)
        run_tern(self.inst, "flush")
        run_tern(self.inst, "release", "ALL")
        run_tern(self.inst, "requeue", "ALL")
        for kind, sub, canary, qid, before in planted:
            self.assertEqual(canary_state(canary), before,
                             "tern changed the file a %s in %s/ points to" % (kind, sub))

    def test_show_does_not_read_link_targets(self):
        for kind in ("symlink", "hardlink"):
            secret = ("ROOT-ONLY-%s-CONTENT" % kind).encode()
            canary, qid = self.plant(kind, "deferred", b"Subject: x\n\n" + secret + b"\n", 0o600)
            r = run_tern(self.inst, "show", qid)
            self.assertNotIn(secret.decode(), r.stdout + r.stderr)
            self.assertNotEqual(r.returncode, 0)
            r = run_tern(self.inst, "queue")
            self.assertNotIn(qid, r.stdout)


class TestLocalQueueFile(unittest.TestCase):
    """The test plays qmgr: it names a queue file in a delivery request to
    private/local after putting a link in its place, which is what a tern
    process racing qmgr's hand-over achieves."""

    def setUp(self):
        self.inst = harness.Instance("hostile-local")
        self.addCleanup(self.inst.cleanup)
        self.inst.start()
        self.secret_dir = root_only_dir(self.inst)

    def deliver(self, qid, rcpt, offset, sub="hold"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)
        sock.connect(os.path.join(self.inst.queue_dir, "private", "local"))
        try:
            self.assertEqual(harness.read_attr_frame(sock), [("protocol", "delivery")])
            pairs = [("queue_id", qid), ("queue_path", "%s/%s" % (sub, qid)),
                     ("transport", "local"), ("nexthop", HOST), ("sender", "sender@example.org"),
                     ("flags", 0), ("nrcpt", 1), ("rcpt", rcpt), ("orcpt", ""), ("notify", ""),
                     ("offset", offset)]
            sock.sendall(harness.encode_attr_frame(pairs))
            result = dict(harness.read_attr_frame(sock))
            self.assertEqual(harness.read_attr_frame(sock), [("done", "1")])
            return result
        finally:
            sock.close()

    def test_linked_queue_file_is_refused(self):
        rcpt = "root@" + HOST
        mailbox = os.path.join(self.inst.dir, "mail", "root")
        for kind in ("hardlink", "symlink"):
            secret = ("ROOT-ONLY-%s-CONTENT" % kind).encode()
            data, offset = queue_file_bytes(rcpt, b"Subject: secret\n\n" + secret + b"\n")
            canary = make_canary(self.secret_dir, kind, data, 0o600)
            before = canary_state(canary)
            qid = harness.new_queue_id()
            plant_link(kind, canary, os.path.join(self.inst.queue_dir, "hold", qid))
            result = self.deliver(qid, rcpt, offset)
            try:
                with open(mailbox, "rb") as f:
                    delivered = f.read()
            except FileNotFoundError:
                delivered = b""
            self.assertNotIn(secret, delivered, "local copied a root-only file into a mailbox "
                             "through a %s" % kind)
            self.assertEqual(canary_state(canary), before)
            self.assertEqual(result["status"], "4", result)
            self.assertIn("refusing queue file", result["reason"])
            self.inst.wait_log(r"%s: to=<%s>.*status=deferred \(refusing queue file hold/%s: "
                               % (qid, rcpt, qid))

    def link_private_to_root_socket(self, name):
        """As an attacker running as tern would: replace private/NAME with a
        symbolic link to a socket of root's (root_only_listener)."""
        listener = root_only_listener(self)
        path = os.path.join(self.inst.queue_dir, "private", name)
        if os.path.lexists(path):
            os.unlink(path)
        plant_link("symlink", listener.path, path)
        return listener

    def deliver_planted(self, rcpt, content):
        """A queue file of tern's in hold/ for rcpt, delivered by local."""
        data, offset = queue_file_bytes(rcpt, content)
        qid = harness.new_queue_id()
        path = os.path.join(self.inst.queue_dir, "hold", qid)
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, *tern_ids())
        os.chmod(path, 0o600)
        return self.deliver(qid, rcpt, offset)

    def assert_root_socket_untouched(self, listener, result, name):
        assert_not_reached(self, listener, "local", "private/" + name)
        self.assertEqual(result["status"], "4", result)

    def test_forwarding_does_not_connect_through_a_link(self):
        """local (root) hands mail for a remote alias target back to
        private/cleanup; with a link there to a root-only socket, root must
        not reach that socket."""
        with open(os.path.join(self.inst.dir, "aliases"), "a") as f:
            f.write("fwdtest: someone@remote.example\n")
        self.inst.tern("aliases")
        listener = self.link_private_to_root_socket("cleanup")
        result = self.deliver_planted("fwdtest@" + HOST, b"Subject: forward me\n\nbody\n")
        self.assert_root_socket_untouched(listener, result, "cleanup")

    def test_mailbox_transport_does_not_connect_through_a_link(self):
        """With mailbox_transport set, local (root) hands each mailbox
        delivery to that transport's socket in private/; a link there must
        not lead root to a root-only socket."""
        self.inst.stop()
        self.inst.set_main_cf({"mailbox_transport": "mailstore"})
        self.inst.start()
        listener = self.link_private_to_root_socket("mailstore")
        result = self.deliver_planted("root@" + HOST, b"Subject: to the store\n\nbody\n")
        self.assert_root_socket_untouched(listener, result, "mailstore")
        self.assertIn("mail transport unavailable", result["reason"])

    def test_proxy_query_does_not_connect_through_a_link(self):
        """`tern map query proxy:...` run by root asks proxymap; a link at
        private/proxymap must not lead root to a root-only socket. (local
        itself never uses proxymap: it opens its tables directly.)"""
        listener = self.link_private_to_root_socket("proxymap")
        r = run_tern(self.inst, "map", "query", "proxy:hash:%s/aliases" % self.inst.dir, "root")
        assert_not_reached(self, listener, "tern map", "private/proxymap")
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn("lookup of \"root\" failed", r.stderr)

    def test_plain_queue_file_is_delivered(self):
        rcpt = "root@" + HOST
        data, offset = queue_file_bytes(rcpt, b"Subject: fine\n\nPLAIN-DELIVERY\n")
        qid = harness.new_queue_id()
        path = os.path.join(self.inst.queue_dir, "hold", qid)
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, *tern_ids())
        os.chmod(path, 0o600)
        result = self.deliver(qid, rcpt, offset)
        self.assertEqual(result["status"], "2", result)
        with open(os.path.join(self.inst.dir, "mail", "root"), "rb") as f:
            self.assertIn(b"PLAIN-DELIVERY", f.read())


class TestSendmailPoke(unittest.TestCase):
    """sendmail run by root runs tern-drop as root, which pokes pickup
    through public/pickup: it opens the name (a fifo) and, when that is a
    socket, connects to it. tern swaps a socket and a link to a root-only
    socket at that name as fast as it can, so that the open finds the
    socket and the connect the link: root must never reach that socket."""

    def test_poke_does_not_connect_through_a_swapped_link(self):
        inst = harness.Instance("hostile-poke")
        self.addCleanup(inst.cleanup)
        inst.start()
        inst.stop()               # the queue tree exists; pickup is not there to answer
        listener = root_only_listener(self)
        public = os.path.join(inst.queue_dir, "public")
        pickup, alt = os.path.join(public, "pickup"), os.path.join(public, "alt")
        os.unlink(pickup)
        decoy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(decoy.close)
        decoy.bind(pickup)
        os.chown(pickup, *tern_ids())
        plant_link("symlink", listener.path, alt)
        uid, gid = tern_ids()

        def as_tern():
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        swapper = subprocess.Popen([os.path.join(_tools, "exchanger"), pickup, alt, "60"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=as_tern)
        self.addCleanup(TestListenerRace.stop_racer, swapper)
        ready, _, _ = select.select([swapper.stdout], [], [], 10)
        self.assertTrue(ready and swapper.stdout.readline().strip() == "ready",
                        "the exchanger did not start")
        sendmail = os.path.join(harness.BUILD, "sendmail", "sendmail")
        for i in range(60):
            r = subprocess.run([sendmail, "-C", inst.dir, "-f", "root@" + HOST, "root@" + HOST],
                               input=b"Subject: poke %d\n\nbody\n" % i, capture_output=True,
                               timeout=30)
            self.assertEqual(r.returncode, 0, r)
            if listener.conns:
                break
        if swapper.poll() is not None:
            self.fail("the exchanger ended early: %s" % swapper.stderr.read())
        TestListenerRace.stop_racer(swapper)
        assert_not_reached(self, listener, "tern-drop", "public/pickup (swapped in)")
        self.assertEqual(len([n for n in os.listdir(os.path.join(inst.queue_dir, "maildrop"))
                              if not n.startswith(".")]), 60, "every submission waits in maildrop/")


class TestMailqAsRoot(unittest.TestCase):
    """mailq run by root (tern-mailq, set-group-ID, so still root) asks
    showq through public/showq; a link tern put there must not lead root
    to a root-only socket."""

    def test_mailq_does_not_connect_through_a_link(self):
        inst = harness.Instance("hostile-mailq")
        self.addCleanup(inst.cleanup)
        inst.start()
        listener = root_only_listener(self)
        showq = os.path.join(inst.queue_dir, "public", "showq")
        os.unlink(showq)
        plant_link("symlink", listener.path, showq)
        mailq = os.path.join(harness.BUILD, "tern-mailq", "tern-mailq")
        r = subprocess.run([mailq, "-c", inst.dir], capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        assert_not_reached(self, listener, "tern-mailq", "public/showq")
        self.assertNotEqual(r.returncode, 0, r)
        self.assertIn("cannot reach the showq service", r.stderr)


class TestTicketSecret(unittest.TestCase):
    """smtpd reads data_directory/smtpd_tls_ticket.key as root, before its
    privilege drop, and then runs as tern with the secret in memory: a hard
    link there to a file of root's must not be read."""

    def test_hard_link_as_ticket_secret_is_not_read(self):
        if not shutil.which("openssl"):
            self.skipTest("needs the openssl command")
        inst = harness.Instance("hostile-ticket")
        self.addCleanup(inst.cleanup)
        cert, key = os.path.join(inst.dir, "cert.pem"), os.path.join(inst.dir, "key.pem")
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                            "-subj", "/CN=" + HOST, "-days", "2"], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        inst.set_main_cf({"smtpd_tls_security_level": "may", "smtpd_tls_cert_file": cert,
                          "smtpd_tls_key_file": key})
        inst.start()
        inst.stop()               # data_directory now belongs to tern
        secret = os.path.join(inst.dir, "data", "smtpd_tls_ticket.key")
        if os.path.lexists(secret):
            os.unlink(secret)
        canary = make_canary(root_only_dir(inst), "root-key", b"R" * 64, 0o600)
        os.utime(canary, None)    # recent: not replaced as an expired secret
        plant_link("hardlink", canary, secret)
        inst.start()
        with inst.smtp() as s:    # an smtpd process starts and reads its secret
            s.ehlo("client.test")
        inst.wait_log(r"TLS session tickets are off .*smtpd_tls_ticket\.key: a file with more "
                      r"than one hard link")


class TestInitDirectory(unittest.TestCase):
    def test_init_as_root_refuses_a_directory_others_can_write(self):
        """`tern init` as root writes main.cf, master.cf, aliases and more
        by name: in a directory tern (or anyone) can write, a link planted
        first would make root overwrite another file."""
        base = tempfile.mkdtemp(prefix="tern-hostile-init-", dir="/tmp")
        self.addCleanup(shutil.rmtree, base, True)
        os.chmod(base, 0o755)
        canary = make_canary(base, "canary")
        before = canary_state(canary)
        for owner, mode in ((tern_ids(), 0o755), ((0, 0), 0o777)):
            d = os.path.join(base, "inst-%d-%o" % (owner[0], mode))
            os.mkdir(d)
            os.chown(d, *owner)
            os.chmod(d, mode)
            plant_link("symlink", canary, os.path.join(d, "main.cf"))
            r = subprocess.run([harness.TERN, "init", d, "--force", "--daemon-directory",
                                harness.LIBEXEC], capture_output=True, text=True, timeout=60)
            self.assertEqual(canary_state(canary), before,
                             "tern init wrote through a link in a directory of uid %d, mode %o"
                             % (owner[0], mode))
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("must belong to root", r.stderr)







if __name__ == "__main__":
    unittest.main()
