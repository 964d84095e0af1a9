"""test_lmtp.py: whole-instance tests of the lmtp transport (the smtp
binary run as lmtp, smtp/): a scripted LMTP server on 127.0.0.1 for the
protocol cases (LHLO, one reply per recipient after the content with
250/452/550 mixed, PIPELINING, DSN ORCPT passed on, a server that closes
the connection after the content, one that never answers, LHLO refused,
the connection reused for a second message, lmtp_destination_recipient_limit,
lmtp_destination_concurrency_limit and master.cf's process limit against a
slow server with 20 messages waiting, a transport_maps entry changed from a
down server to a working one followed by `tern reload`, SIGKILL of Tern
while the server holds the content), and a real Dovecot
LMTP server (Debian's dovecot-lmtpd) that the test starts in a temporary
directory, reached over a UNIX-domain socket inside the queue directory
(local_transport, or mailbox_transport after local(8)'s aliases, =
lmtp:unix:private/dovecot-lmtp) and over TCP (transport_maps,
lmtp:inet:127.0.0.1:PORT), with a per-user quota that fails one recipient
only, and as virtual_transport of a virtual mailbox domain. Mail enters
through smtpd; messages that would bounce have the null sender, so that
no notice goes anywhere.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402

FAST = {"minimal_backoff_time": "1s", "maximal_backoff_time": "2s", "queue_run_delay": "1s"}


# ---- a scripted LMTP server ----

class FakeLmtp(servers.Server):
    """An LMTP server: LHLO with PIPELINING, ENHANCEDSTATUSCODES and DSN;
    every RCPT TO accepted; after the content one reply per recipient,
    decided by the local part: temp* 452, bad* 550, anything else 250.
    .mode: "normal"; "close_after_data" (the first close_times sessions
    end right after the final dot, without a reply); "silent" (never a
    word); "lhlo_refused" (LHLO answered lhlo_reply). .messages: (mail
    from line, [rcpt lines], data) of every message it gave a reply for;
    .commands: every command line, in order; .chunks: the reads that held
    a MAIL FROM, to see pipelining. .delay: seconds it waits after the
    content before the replies; .peak_conns and .peak_txns: the most
    connections open at once (from accept to QUIT or close) and the most
    transactions under way at once (from MAIL FROM to the replies after
    the content, which the client must read before it can report the
    delivery, so a client that keeps its limit never seems to exceed it)."""

    def __init__(self, **kw):
        self.mode = "normal"
        self.close_times = 1
        self.lhlo_reply = b"550 5.5.1 LHLO not welcome here\r\n"
        self.messages = []
        self.commands = []
        self.mail_chunks = []
        self.hold = False                   # after the content: no reply until release
        self.got_data = threading.Event()
        self.release = threading.Event()
        self.delay = 0
        self.open_conns = self.peak_conns = 0
        self.open_txns = self.peak_txns = 0
        super().__init__(**kw)

    def count(self, what, step):
        """Add step to the number of open conns or txns, keeping the peak."""
        with self.lock:
            n = getattr(self, "open_" + what) + step
            setattr(self, "open_" + what, n)
            setattr(self, "peak_" + what, max(n, getattr(self, "peak_" + what)))

    def handle(self, conn):
        state = {"conn": True, "txn": False}
        self.count("conns", 1)
        try:
            self.session(conn, state)
        finally:
            if state["txn"]:
                self.count("txns", -1)
            if state["conn"]:
                self.count("conns", -1)

    def end_txn(self, state):
        if state["txn"]:
            state["txn"] = False
            self.count("txns", -1)

    def session(self, conn, state):
        if self.mode == "silent":
            self.stopping.wait(60)
            return
        conn.sendall(b"220 fake.lmtp LMTP ready\r\n")
        buf = b""
        mail, rcpts = None, []
        while True:
            while b"\r\n" not in buf:
                data = self.recv(conn)
                if not data:
                    return
                if b"MAIL FROM" in data:
                    with self.lock:
                        self.mail_chunks.append(data)
                buf += data
            line, buf = buf.split(b"\r\n", 1)
            cmd = line.decode("latin-1")
            with self.lock:
                self.commands.append(cmd)
            verb = cmd.split(" ", 1)[0].upper()
            if verb == "LHLO":
                if self.mode == "lhlo_refused":
                    conn.sendall(self.lhlo_reply)
                    continue
                conn.sendall(b"250-fake.lmtp\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
                             b"250-8BITMIME\r\n250-DSN\r\n250 SIZE 10000000\r\n")
            elif verb == "MAIL":
                mail, rcpts = cmd, []
                if not state["txn"]:
                    state["txn"] = True
                    self.count("txns", 1)
                conn.sendall(b"250 2.1.0 OK\r\n")
            elif verb == "RCPT":
                rcpts.append(cmd)
                conn.sendall(b"250 2.1.5 OK\r\n")
            elif verb == "DATA":
                conn.sendall(b"354 OK\r\n")
                while b"\r\n.\r\n" not in buf:
                    data = self.recv(conn)
                    if not data:
                        return
                    buf += data
                data, buf = buf.split(b"\r\n.\r\n", 1)
                if self.mode == "close_after_data" and self.close_times > 0:
                    self.close_times -= 1
                    conn.close()
                    return
                with self.lock:
                    self.messages.append((mail, list(rcpts), data))
                if self.hold:
                    self.got_data.set()
                    self.release.wait(30)
                if self.delay:
                    time.sleep(self.delay)
                self.end_txn(state)
                for r in rcpts:
                    local = re.search(r"<([^@>]*)", r).group(1)
                    if local.startswith("temp"):
                        conn.sendall(b"452 4.2.2 <%s> mailbox full, try later\r\n" % local.encode())
                    elif local.startswith("bad"):
                        conn.sendall(b"550 5.1.1 <%s> no such user\r\n" % local.encode())
                    else:
                        conn.sendall(b"250 2.0.0 <%s> fake123 Saved\r\n" % local.encode())
            elif verb == "RSET":
                mail, rcpts = None, []
                self.end_txn(state)
                conn.sendall(b"250 2.0.0 OK\r\n")
            elif verb == "QUIT":
                state["conn"] = False
                self.count("conns", -1)
                conn.sendall(b"221 2.0.0 Bye\r\n")
                conn.close()
                return
            else:
                conn.sendall(b"500 5.5.2 what\r\n")


class LmtpTest(unittest.TestCase):
    """An instance whose mail to lmtp.test goes to a FakeLmtp over TCP
    (transport_maps: lmtp:inet:127.0.0.1:PORT), `maxproc` lmtp processes
    at most (master.cf)."""

    extra_main = {}
    maxproc = 1

    def setUp(self):
        self.server = FakeLmtp()
        self.addCleanup(self.server.stop)
        self.tmp = tempfile.mkdtemp(prefix="tern-lmtp-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        transport = os.path.join(self.tmp, "transport")
        with open(transport, "w") as f:
            f.write("lmtp.test lmtp:inet:127.0.0.1:%d\n" % self.server.port)
        main = dict(FAST, transport_maps="texthash:" + transport)
        main.update(self.extra_main)
        self.inst = harness.Instance("lmtp", main_cf=main,
                                     master_cf_extra=["lmtp unix - - n - %d lmtp" % self.maxproc])
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def send(self, rcpts, body=b"Subject: lmtp\r\n\r\nhello\r\n", sender="", rcpt_options=()):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail(sender, rcpts, body, rcpt_options=list(rcpt_options))

    def status(self, rcpt, status, timeout=20):
        return self.inst.wait_log(r"(\w+): to=<%s>, (?:orig_to=<[^>]*>, )?relay=([^,]*), .*status=%s \((.*)\)"
                                  % (re.escape(rcpt), status), timeout=timeout)


class TestLmtpProtocol(LmtpTest):
    def test_one_reply_per_recipient(self):
        """250, 452 and 550 after the content: sent, deferred and bounced
        for exactly those recipients; the commands were pipelined and
        the relay is host[addr]:port."""
        self.send(["ok1@lmtp.test", "temp1@lmtp.test", "bad1@lmtp.test", "ok2@lmtp.test"])
        m = self.status("ok1@lmtp.test", "sent")
        self.assertEqual(m.group(2), "127.0.0.1[127.0.0.1]:%d" % self.server.port)
        self.assertEqual(m.group(3), "250 2.0.0 <ok1> fake123 Saved")
        self.status("ok2@lmtp.test", "sent")
        m = self.status("temp1@lmtp.test", "deferred")
        self.assertIn("said: 452 4.2.2 <temp1> mailbox full", m.group(3))
        self.assertIn("(in reply to end of DATA command)", m.group(3))
        m = self.status("bad1@lmtp.test", "bounced")
        self.assertIn("550 5.1.1 <bad1> no such user", m.group(3))
        self.assertIn("dsn=5.1.1", self.inst.log_text())
        self.assertEqual(len(self.server.messages), 1)
        self.assertTrue(self.server.commands[0].startswith("LHLO "), self.server.commands)
        self.assertNotIn("EHLO", " ".join(self.server.commands))
        # MAIL FROM, the RCPT TOs and DATA in one write
        chunk = self.server.mail_chunks[0]
        self.assertIn(b"RCPT TO:<bad1@lmtp.test>", chunk)
        self.assertIn(b"DATA\r\n", chunk)
        # the deferred recipient alone is tried again, and again only it
        self.inst.wait_log(r"to=<temp1@lmtp.test>.*status=deferred[\s\S]*"
                           r"to=<temp1@lmtp.test>.*status=deferred", timeout=20)
        for m in self.server.messages[1:]:
            self.assertEqual(len(m[1]), 1, m[1])
            self.assertIn("temp1@lmtp.test", m[1][0])
        log = self.inst.log_text()
        self.assertEqual(len(re.findall(r"to=<ok1@lmtp.test>.*status=sent", log)), 1)

    def test_dsn_orcpt_passed_on(self):
        self.send(["ok3@lmtp.test"], sender="sender@example.org",
                  rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;first@example.org"])
        self.status("ok3@lmtp.test", "sent")
        rcpt = [c for c in self.server.commands if c.startswith("RCPT")][0]
        self.assertIn("NOTIFY=SUCCESS,FAILURE", rcpt)
        self.assertIn("ORCPT=rfc822;first@example.org", rcpt)

    def test_connection_reused(self):
        """A second message to the same next hop goes over the same
        connection, after RSET."""
        self.send(["ok4@lmtp.test"])
        self.status("ok4@lmtp.test", "sent")
        self.send(["ok5@lmtp.test"])
        m = self.inst.wait_log(r"to=<ok5@lmtp.test>, relay=[^,]*, conn_use=2, .*status=sent")
        self.assertTrue(m)
        self.assertEqual(len(self.server.conns), 1)
        self.assertIn("RSET", self.server.commands)
        self.assertEqual(self.server.commands.count("LHLO tern.test"), 1)


class TestLmtpReuseTime(LmtpTest):
    extra_main = {"lmtp_connection_cache_time_limit": "20s"}

    def test_three_messages_one_connection(self):
        for i in range(3):
            self.send(["ok%d@lmtp.test" % (10 + i)])
            self.status("ok%d@lmtp.test" % (10 + i), "sent")
        self.assertEqual(len(self.server.conns), 1)
        self.assertEqual(len(self.server.messages), 3)


class TestLmtpRecipientLimit(LmtpTest):
    extra_main = {"lmtp_destination_recipient_limit": "2",
                  "lmtp_connection_cache_time_limit": "20s"}

    def test_two_recipients_per_transaction(self):
        rcpts = ["ok%d@lmtp.test" % (50 + i) for i in range(5)]
        self.send(rcpts)
        for r in rcpts:
            self.status(r, "sent")
        self.assertEqual(sorted(len(m[1]) for m in self.server.messages), [1, 2, 2])
        self.assertEqual(len(self.server.conns), 1)


class TestLmtpConcurrencyLimit(LmtpTest):
    """lmtp_destination_concurrency_limit = 2 with room for 10 lmtp
    processes: while 20 messages wait for a server that takes 0.5 s per
    transaction, it never has more than 2 transactions at once, and
    does have 2. (Open connections, which idle lmtp processes may keep
    cached, are bounded by the process limit: TestLmtpProcessLimit.)"""
    maxproc = 10
    extra_main = {"lmtp_destination_concurrency_limit": "2"}

    def test_two_at_a_time(self):
        # the first transactions wait until all 20 messages are queued,
        # so that the limit is reached however slowly they come in
        self.server.hold = True
        self.server.delay = 0.5
        rcpts = ["ok%d@lmtp.test" % (100 + i) for i in range(20)]
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            for r in rcpts:
                s.sendmail("", [r], b"Subject: one of twenty\r\n\r\nhello\r\n")
        self.assertTrue(self.server.got_data.wait(20), "nothing arrived")
        self.server.release.set()
        for r in rcpts:
            self.status(r, "sent", timeout=60)
        self.inst.wait_empty()
        self.assertEqual(self.server.peak_txns, 2)
        self.assertEqual(len(self.server.messages), 20)


class TestLmtpProcessLimit(LmtpTest):
    """master.cf's process limit of the lmtp service (3) bounds the
    connections to the server, cached ones included, while 20 messages
    wait (the destination's own limit, 20, does not bind here)."""
    maxproc = 3
    extra_main = {"lmtp_connection_cache_time_limit": "20s"}

    def test_three_connections_at_most(self):
        # the first transactions wait until all 20 messages are queued,
        # so that the limit is reached however slowly they come in
        self.server.hold = True
        self.server.delay = 0.5
        rcpts = ["ok%d@lmtp.test" % (200 + i) for i in range(20)]
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            for r in rcpts:
                s.sendmail("", [r], b"Subject: one of twenty\r\n\r\nhello\r\n")
        self.assertTrue(self.server.got_data.wait(20), "nothing arrived")
        self.server.release.set()
        for r in rcpts:
            self.status(r, "sent", timeout=60)
        self.inst.wait_empty()
        self.assertEqual(self.server.peak_conns, 3)
        self.assertEqual(self.server.peak_txns, 3)
        self.assertEqual(len(self.server.messages), 20)


class TestLmtpTransportChange(unittest.TestCase):
    """Mail deferred because its transport_maps entry names an LMTP
    server that is down; the table is changed to name a working one
    (a texthash file edited, or a hash table rebuilt with `tern map
    build`) and `tern reload` run: every queued recipient is delivered
    exactly once, nothing is lost, bounced or delivered twice."""

    def move(self, kind):
        inst = harness.Instance("lmtpmove", main_cf=FAST)
        self.addCleanup(inst.cleanup)
        source = os.path.join(inst.dir, "transport")
        spec = "%s:%s" % (kind, source)

        def write_table(port):
            with open(source + ".new", "w") as f:
                f.write("moved.test lmtp:inet:127.0.0.1:%d\n" % port)
            os.rename(source + ".new", source)
            if kind != "texthash":
                inst.tern("map", "build", spec)

        down = harness.free_port()          # nothing listens there
        write_table(down)
        inst.set_main_cf({"transport_maps": spec})
        inst.start()
        rcpts = []
        with inst.smtp() as s:
            s.ehlo("client.example")
            for i in range(6):
                these = ["ok%d@moved.test" % (300 + 2 * i)]
                if i % 2:
                    these.append("ok%d@moved.test" % (301 + 2 * i))
                s.sendmail("", these, b"Subject: moved %d\r\n\r\nhello\r\n" % i)
                rcpts += these
        for r in rcpts:
            m = inst.wait_log(r"to=<%s>, relay=none, .*status=deferred \((.*)\)" % re.escape(r),
                              timeout=20)
            self.assertIn("127.0.0.1[127.0.0.1]:%d" % down, m.group(1))
        server = FakeLmtp()
        self.addCleanup(server.stop)
        write_table(server.port)
        inst.reload()
        for r in rcpts:
            inst.wait_log(r"to=<%s>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent"
                          % (re.escape(r), server.port), timeout=40)
        inst.wait_empty(timeout=30)
        got = sorted(re.search(r"<([^>]*)>", c).group(1) for m in server.messages for c in m[1])
        self.assertEqual(got, sorted(rcpts))
        log = inst.log_text()
        for r in rcpts:
            self.assertEqual(len(re.findall(r"to=<%s>.*status=sent" % re.escape(r), log)), 1, r)
        self.assertNotIn("status=bounced", log)

    def test_texthash_edited_then_reload(self):
        self.move("texthash")

    def test_hash_rebuilt_then_reload(self):
        self.move("hash")


class TestLmtpKilled(LmtpTest):
    def test_sigkill_after_the_content(self):
        """Tern is killed (SIGKILL, every process) while the LMTP server
        holds the content without a reply: after the restart every
        recipient is delivered, each logged sent once; the server got each
        at most twice (the copy it took before the kill is the one
        possible duplicate, as with SMTP's lost end-of-data reply)."""
        self.server.hold = True
        rcpts = ["ok60@lmtp.test", "ok61@lmtp.test"]
        self.send(rcpts)
        self.assertTrue(self.server.got_data.wait(20), "the content never arrived")
        self.inst.kill_all()
        self.server.hold = False
        self.server.release.set()
        self.inst.start()
        for r in rcpts:
            self.status(r, "sent", timeout=40)
        self.inst.wait_empty(timeout=30)
        for r in rcpts:
            copies = sum(1 for m in self.server.messages if any("<%s>" % r in c for c in m[1]))
            self.assertIn(copies, (1, 2), r)
            self.assertEqual(len(re.findall(r"to=<%s>.*status=sent" % re.escape(r),
                                            self.inst.log_text())), 1)


class TestLmtpFailures(LmtpTest):
    extra_main = {"lmtp_lhlo_timeout": "2s", "lmtp_data_done_timeout": "2s"}

    def test_close_after_data_then_delivered_once(self):
        """The server closes the connection after the content without a
        reply: every recipient deferred, then delivered exactly once."""
        self.server.mode = "close_after_data"
        self.send(["ok20@lmtp.test", "ok21@lmtp.test"])
        m = self.status("ok20@lmtp.test", "deferred")
        self.assertIn("lost connection with 127.0.0.1[127.0.0.1] while sending end of data", m.group(3))
        self.status("ok21@lmtp.test", "deferred")
        self.status("ok20@lmtp.test", "sent")
        self.status("ok21@lmtp.test", "sent")
        self.inst.wait_empty()
        self.assertEqual(len(self.server.messages), 1)
        log = self.inst.log_text()
        self.assertEqual(len(re.findall(r"to=<ok20@lmtp.test>.*status=sent", log)), 1)

    def test_server_never_answers(self):
        self.server.mode = "silent"
        self.send(["ok30@lmtp.test"])
        m = self.status("ok30@lmtp.test", "deferred")
        self.assertIn("timed out while receiving the initial server greeting", m.group(3))

    def test_lhlo_refused(self):
        self.server.mode = "lhlo_refused"
        self.send(["ok40@lmtp.test"])
        m = self.status("ok40@lmtp.test", "bounced")
        self.assertIn("550 5.5.1 LHLO not welcome here (in reply to LHLO command)", m.group(3))
        self.server.lhlo_reply = b"421 4.3.2 busy\r\n"
        self.send(["ok41@lmtp.test"])
        m = self.status("ok41@lmtp.test", "deferred")
        self.assertIn("(in reply to LHLO command)", m.group(3))


class TestLmtpUnixSocket(unittest.TestCase):
    """lmtp:unix:private/NAME, relative to the queue directory; the relay
    is myhostname[path], as Postfix logs it."""

    def test_unix_next_hop(self):
        inst = harness.Instance("lmtpunix", main_cf=dict(
            FAST, local_transport="lmtp:unix:private/fake-lmtp"))
        self.addCleanup(inst.cleanup)
        os.makedirs(os.path.join(inst.queue_dir, "private"), exist_ok=True)
        server = FakeLmtp(path=os.path.join(inst.queue_dir, "private", "fake-lmtp"))
        self.addCleanup(server.stop)
        inst.start()
        with inst.smtp() as s:
            s.sendmail("", ["someone@tern.test", "bad9@tern.test"], b"Subject: u\r\n\r\nhi\r\n")
        m = inst.wait_log(r"to=<someone@tern.test>, relay=([^,]*), .*status=sent \((.*)\)")
        self.assertEqual(m.group(1), "tern.test[private/fake-lmtp]")
        inst.wait_log(r"to=<bad9@tern.test>, relay=tern.test\[private/fake-lmtp\], .*status=bounced")
        # (the null sender's notice goes to postmaster, through the same transport)
        self.assertEqual(len([m for m in server.messages if "someone@" in m[1][0]]), 1)

    def test_missing_socket_defers(self):
        inst = harness.Instance("lmtpnone", main_cf=dict(
            FAST, local_transport="lmtp:unix:private/nowhere"))
        self.addCleanup(inst.cleanup)
        inst.start()
        with inst.smtp() as s:
            s.sendmail("", ["someone@tern.test"], b"Subject: u\r\n\r\nhi\r\n")
        m = inst.wait_log(r"to=<someone@tern.test>, relay=none, .*status=deferred \((.*)\)")
        self.assertIn("connect to tern.test[private/nowhere]: No such file or directory", m.group(1))


# ---- a real Dovecot LMTP server ----

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
DOVECOT_LMTP = "/usr/lib/dovecot/lmtp"
MAIL_UID = 65534          # nobody: the owner of the test mailboxes

DOVECOT_CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = lmtp
ssl = no
auth_username_format = %Ln
mail_location = maildir:~/Maildir
mail_plugins = $mail_plugins quota
lmtp_rcpt_check_quota = no
quota_full_tempfail = {tempfail}
passdb {{
  driver = passwd-file
  args = {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
  default_fields = uid={uid} gid={uid} home={d}/home/%n
}}
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage=100M
}}
service lmtp {{
  unix_listener {socket} {{
    mode = 0666
  }}
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
"""

USERS_FILE = ("alice:{PLAIN}unused::::::\n"
              "bob:{PLAIN}unused::::::\n"
              "carol:{PLAIN}unused::::::userdb_quota_rule=*:storage=1K\n")


@unittest.skipUnless(os.access(DOVECOT, os.X_OK) and os.access(DOVECOT_LMTP, os.X_OK),
                     "dovecot with its LMTP server (dovecot-core, dovecot-lmtpd) is not installed")
class DovecotTest(unittest.TestCase):
    """An instance whose local mail (tern.test) goes to Dovecot over
    private/dovecot-lmtp in its queue directory, and whose mail to
    inet.test goes to the same Dovecot over TCP."""

    tempfail = "yes"

    def routing(self):
        """How mail for tern.test reaches Dovecot."""
        return {"local_transport": "lmtp:unix:private/dovecot-lmtp"}

    def dovecot_ssl(self):
        """Dovecot's ssl settings (a subclass may turn TLS on)."""
        return "ssl = no\n"

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tern-dovecot-")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.dv = os.path.join(self.tmp, "dovecot")
        for sub in ("run", "state", "home"):
            os.makedirs(os.path.join(self.dv, sub))
        os.chmod(os.path.join(self.dv, "home"), 0o777)
        with open(os.path.join(self.dv, "users"), "w") as f:
            f.write(USERS_FILE)
        self.lmtp_port = harness.free_port()
        transport = os.path.join(self.tmp, "transport")
        with open(transport, "w") as f:
            f.write("inet.test lmtp:inet:127.0.0.1:%d\n" % self.lmtp_port)
        self.inst = harness.Instance("dovecot", main_cf=dict(
            FAST, transport_maps="texthash:" + transport, **self.routing()))
        self.addCleanup(self.inst.cleanup)
        private = os.path.join(self.inst.queue_dir, "private")
        os.makedirs(private, exist_ok=True)
        self.socket = os.path.join(private, "dovecot-lmtp")
        self.conf = os.path.join(self.dv, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF.format(d=self.dv, uid=MAIL_UID, tempfail=self.tempfail,
                                        socket=self.socket, port=self.lmtp_port)
                    .replace("ssl = no\n", self.dovecot_ssl()))
        self.start_dovecot()
        self.inst.start()

    def start_dovecot(self):
        self.dovecot = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self.stop_dovecot)
        deadline = time.time() + 15
        while time.time() < deadline:
            if os.path.exists(self.socket):
                try:
                    harness.wait_port(self.lmtp_port, timeout=5)
                    return
                except Exception:
                    break
            if self.dovecot.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("dovecot did not start: %s" % self.dovecot_log())

    def stop_dovecot(self):
        harness.stop_process_tree(self.dovecot)

    def dovecot_log(self):
        try:
            with open(os.path.join(self.dv, "dovecot.log")) as f:
                return f.read()
        except OSError:
            return ""

    def maildir(self, user):
        """The messages in user's Maildir (new/ and cur/), as bytes."""
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.dv, "home", user, "Maildir", sub)
            if os.path.isdir(d):
                for name in sorted(os.listdir(d)):
                    with open(os.path.join(d, name), "rb") as f:
                        out.append(f.read())
        return out

    def fetch(self, user):
        """doveadm fetch of user's messages (their text)."""
        r = subprocess.run([DOVEADM, "-c", self.conf, "fetch", "-u", user, "text", "ALL"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def send(self, rcpts, body, sender=""):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail(sender, rcpts, body)

    def status(self, rcpt, status, timeout=20):
        return self.inst.wait_log(r"(\w+): to=<%s>, relay=([^,]*), .*dsn=([0-9.]+), status=%s \((.*)\)"
                                  % (re.escape(rcpt), status), timeout=timeout)


BIG_BODY = b"Subject: to three\r\nFrom: someone@example.org\r\n\r\n" + b"x" * 70 + b"\r\n" * 0 \
    + b"".join(b"line %04d of a message larger than carol's quota\r\n" % i for i in range(120))


class TestDovecotTempfail(DovecotTest):
    tempfail = "yes"

    def test_unix_socket_three_recipients(self):
        """alice delivered (doveadm sees it), carol over quota deferred
        (452 4.2.2), an unknown user bounced (550 5.1.1), from one message
        in one transaction; then the same message again only for carol."""
        self.send(["alice@tern.test", "carol@tern.test", "nobody@tern.test"], BIG_BODY)
        m = self.status("alice@tern.test", "sent")
        self.assertEqual(m.group(2), "tern.test[private/dovecot-lmtp]")
        self.assertRegex(m.group(4), r"^250 2\.0\.0 <alice@tern\.test> \S+ Saved$")
        m = self.status("carol@tern.test", "deferred")
        self.assertEqual(m.group(3), "4.2.2")
        self.assertIn("Quota exceeded", m.group(4))
        m = self.status("nobody@tern.test", "bounced")
        self.assertEqual(m.group(3), "5.1.1")
        self.assertIn("(in reply to RCPT TO command)", m.group(4))
        self.assertEqual(len(self.maildir("alice")), 1)
        self.assertIn("of a message larger than carol's quota", self.fetch("alice"))
        # carol is tried again, and alice is not delivered twice
        self.inst.wait_log(r"to=<carol@tern.test>.*status=deferred[\s\S]*"
                           r"to=<carol@tern.test>.*status=deferred", timeout=20)
        self.assertEqual(len(self.maildir("alice")), 1)
        self.assertEqual(self.maildir("carol"), [])
        log = self.inst.log_text()
        self.assertEqual(len(re.findall(r"to=<alice@tern\.test>.*status=sent", log)), 1)

    def test_inet(self):
        """lmtp:inet:127.0.0.1:PORT from transport_maps."""
        self.send(["bob@inet.test"], b"Subject: over tcp\r\n\r\nby LMTP over TCP\r\n",
                  sender="sender@example.org")
        m = self.status("bob@inet.test", "sent")
        self.assertEqual(m.group(2), "127.0.0.1[127.0.0.1]:%d" % self.lmtp_port)
        self.assertIn("by LMTP over TCP", self.fetch("bob"))
        self.assertEqual(len(self.maildir("bob")), 1)


class TestDovecotStartTls(DovecotTest):
    """lmtp_tls_security_level = encrypt: the LMTP session over TCP is
    encrypted with STARTTLS (Dovecot with a certificate of its own) or not
    held at all."""

    def routing(self):
        return {"local_transport": "lmtp:unix:private/dovecot-lmtp",
                "lmtp_tls_security_level": "encrypt", "lmtp_tls_loglevel": "1"}

    def dovecot_ssl(self):
        cert, key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=lmtp.test", "-keyout", key, "-out", cert],
                       check=True, capture_output=True, timeout=120)
        os.chmod(key, 0o644)
        return "ssl = yes\nssl_cert = <%s\nssl_key = <%s\n" % (cert, key)

    def test_inet_session_encrypted(self):
        self.send(["bob@inet.test"], b"Subject: over tls\r\n\r\nby LMTP over TLS\r\n",
                  sender="sender@example.org")
        m = self.status("bob@inet.test", "sent")
        self.assertEqual(m.group(2), "127.0.0.1[127.0.0.1]:%d" % self.lmtp_port)
        self.inst.wait_log(r"lmtp\[\d+\]: \w+ TLS connection established to "
                           r"127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLSv1\.[23]" % self.lmtp_port)
        self.assertIn("by LMTP over TLS", self.fetch("bob"))


class TestDovecotTlsRequired(DovecotTest):
    """lmtp_tls_security_level = encrypt towards a Dovecot without TLS:
    the mail waits; nothing goes over the wire in clear."""

    def routing(self):
        return {"local_transport": "lmtp:unix:private/dovecot-lmtp",
                "lmtp_tls_security_level": "encrypt"}

    def test_no_starttls_defers(self):
        self.send(["bob@inet.test"], b"Subject: must not go in clear\r\n\r\nsecret\r\n",
                  sender="sender@example.org")
        m = self.status("bob@inet.test", "deferred")
        self.assertIn("TLS", m.group(4))
        self.assertEqual(self.maildir("bob"), [])


class TestDovecotQuotaBounce(DovecotTest):
    tempfail = "no"

    def test_quota_bounces_only_that_recipient(self):
        self.send(["alice@tern.test", "carol@tern.test"], BIG_BODY)
        self.status("alice@tern.test", "sent")
        m = self.status("carol@tern.test", "bounced")
        self.assertEqual(m.group(3), "5.2.2")
        self.assertIn("(in reply to end of DATA command)", m.group(4))
        self.assertEqual(len(self.maildir("alice")), 1)
        self.assertEqual(self.maildir("carol"), [])


class TestDovecotVirtualTransport(DovecotTest):
    """virtual_transport = lmtp:unix:private/dovecot-lmtp: the mail of a
    virtual mailbox domain goes to Dovecot, without Unix accounts; smtpd
    still refuses at RCPT an address virtual_mailbox_maps does not list."""

    def routing(self):
        mailboxes = os.path.join(self.tmp, "vmailbox")
        with open(mailboxes, "w") as f:
            f.write("alice@virt.test alice/\nbob@virt.test bob/\n")
        return {"virtual_mailbox_domains": "virt.test",
                "virtual_mailbox_maps": "texthash:" + mailboxes,
                "virtual_transport": "lmtp:unix:private/dovecot-lmtp"}

    def test_virtual_domain_over_lmtp(self):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            self.assertEqual(s.mail("sender@example.org")[0], 250)
            code, text = s.rcpt("stranger@virt.test")
            self.assertEqual(code, 550, text)
            self.assertIn(b"5.1.1", text)
            self.assertEqual(s.rcpt("alice@virt.test")[0], 250)
            self.assertEqual(s.rcpt("bob@virt.test")[0], 250)
            code, _ = s.data(b"Subject: virtual\r\n\r\nto a virtual domain by LMTP\r\n")
            self.assertEqual(code, 250)
        m = self.status("alice@virt.test", "sent")
        self.assertEqual(m.group(2), "tern.test[private/dovecot-lmtp]")
        self.assertRegex(m.group(4), r"^250 2\.0\.0 <alice@virt\.test> \S+ Saved$")
        self.status("bob@virt.test", "sent")
        self.inst.wait_empty()
        self.assertIn("to a virtual domain by LMTP", self.fetch("alice"))
        self.assertIn("to a virtual domain by LMTP", self.fetch("bob"))
        self.assertEqual(len(self.maildir("alice")), 1)
        self.assertEqual(len(self.maildir("bob")), 1)
        log = self.inst.log_text()
        self.assertNotIn("relay=virtual", log)
        self.assertNotIn("stranger@virt.test>, relay", log)


class TestDovecotMailboxTransport(DovecotTest):
    """mailbox_transport: local(8) resolves aliases, then hands each
    mailbox delivery to lmtp; users need no Unix account."""

    def routing(self):
        aliases = os.path.join(self.tmp, "aliases")
        with open(aliases, "w") as f:
            f.write("team alice, bob\ninfo alice\n")   # texthash: key, white space, value
        return {"mailbox_transport": "lmtp:unix:private/dovecot-lmtp",
                "alias_maps": "texthash:" + aliases}

    def test_aliases_then_lmtp(self):
        self.send(["team@tern.test", "info@tern.test", "carol@tern.test", "nobody@tern.test"],
                  b"Subject: via local\r\n\r\nthrough aliases and LMTP\r\n")
        m = self.inst.wait_log(r"lmtp\[\d+\]: \w+: to=<alice@tern\.test>, orig_to=<team@tern\.test>, "
                               r"relay=tern\.test\[private/dovecot-lmtp\], .*status=sent")
        self.inst.wait_log(r"lmtp\[\d+\]: \w+: to=<bob@tern\.test>, orig_to=<team@tern\.test>, .*status=sent")
        self.inst.wait_log(r"lmtp\[\d+\]: \w+: to=<carol@tern\.test>, .*status=sent")
        self.inst.wait_log(r"lmtp\[\d+\]: \w+: to=<nobody@tern\.test>, .*status=bounced")
        self.inst.wait_empty()
        # alice is in two aliases of one message: one copy
        self.assertEqual(len(self.maildir("alice")), 1)
        self.assertEqual(len(self.maildir("bob")), 1)
        self.assertEqual(len(self.maildir("carol")), 1)
        self.assertIn("through aliases and LMTP", self.fetch("bob"))
        log = self.inst.log_text()
        self.assertNotIn("relay=local", log)
        self.assertEqual(len(re.findall(r"to=<alice@tern\.test>.*status=sent", log)), 1)


if __name__ == "__main__":
    unittest.main()
