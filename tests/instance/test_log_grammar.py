"""test_log_grammar.py: golden tests of the log lines' grammar. Log lines
are an interface: pflogsumm, fail2ban and admins' greps parse them, so a
change of a field name, of the order of fields, of punctuation or of a
status word must be a deliberate one. One real instance is driven by real
clients (smtplib, raw sessions), a real SMTP sink (aiosmtpd), a closed port
and a small milter; each test picks one kind of line from the log, masks
what changes from run to run (mask() below) and compares the result with
the checked-in lines in tests/instance/golden/KIND.txt.

To rewrite the expected files after a deliberate change of a log format,
run this module with TERN_GOLDEN_UPDATE=1 in the environment and read the
diff of golden/ before committing it.

Only each line's shape is compared, never the order of lines written by
different processes; the order pflogsumm relies on (smtpd's `ID: client=`
before cleanup's `ID: message-id=` and qmgr's `ID: from=`, as Postfix
writes them) is tested with pflogsumm itself in test_pflogsumm.py."""
import base64
import os
import re
import struct
import subprocess
import sys
import tempfile
import shutil
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
import sink as sinkmod  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
UPDATE = os.environ.get("TERN_GOLDEN_UPDATE") == "1"
HOST = "tern.test"
SASL_USER, SASL_PASSWORD = "golduser", "gold password"


# ---- the one masking function ----

QUEUE_ID = re.compile(r"\b[0-9B-DF-HJ-NP-TV-Z]{16}\b")   # lib/global/queue_id.c's alphabet and length
MASKS = [
    # the prefix every line has: time, host name, program[PID]
    (re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d "), "TIME "),
    (re.compile(r"^TIME \S+ "), "TIME HOST "),
    (re.compile(r"^(TIME HOST [\w/-]+)\[\d+\]: "), r"\1[PID]: "),
    # TCP ports: after an address in brackets and in "port N"
    (re.compile(r"(\[[0-9a-fA-F.:]+\]):\d+"), r"\1:PORT"),
    # times and sizes that vary from run to run
    (re.compile(r"\bdelay=\d+(\.\d+)?"), "delay=D"),
    (re.compile(r"\bdelays=\d+(\.\d+)?/\d+(\.\d+)?/\d+(\.\d+)?/\d+(\.\d+)?"), "delays=D/D/D/D"),
    (re.compile(r"\bsize=\d+"), "size=N"),
    (re.compile(r"\bmessage-id=<[^>]*>"), "message-id=<MSGID>"),
]


def mask(lines):
    """The lines with what varies between runs replaced by a fixed word:
    the time stamp (TIME), the host name of the log prefix (HOST), process
    IDs ([PID]), queue IDs (QID1, QID2, ... numbered by first appearance in
    these lines, so that a line naming another message's ID still shows
    which), TCP ports (:PORT after a bracketed address), delay= and
    delays= values (D), size= (N) and generated Message-IDs (MSGID).
    Everything else, field names, their order, punctuation, addresses,
    SMTP replies and status words, is kept: that is the grammar under
    test."""
    ids = {}

    def qid(m):
        return ids.setdefault(m.group(0), "QID%d" % (len(ids) + 1))

    out = []
    for line in lines:
        for pattern, repl in MASKS:
            line = pattern.sub(repl, line)
        out.append(QUEUE_ID.sub(qid, line))
    return out


# ---- a milter that rejects one recipient ----

class RejectMilter(servers.Server):
    """A milter in raw protocol (version 6, no actions, no protocol
    flags) that answers CONTINUE to everything except RCPT TO a recipient
    starting with `milter-no@`, which it rejects ('r': 550 5.7.1)."""

    @staticmethod
    def packet(cmd, data=b""):
        return struct.pack(">I", len(data) + 1) + cmd + data

    def handle(self, conn):
        conn.settimeout(60)
        with conn:
            for _ in range(10000):
                head = self.recv_exactly(conn, 4)
                pkt = head and self.recv_exactly(conn, struct.unpack(">I", head)[0])
                if not pkt:
                    return
                cmd = pkt[:1]
                if cmd == b"O":
                    conn.sendall(self.packet(b"O", struct.pack(">III", 6, 0, 0)))
                elif cmd == b"Q":
                    return
                elif cmd in (b"D", b"A", b"K"):
                    continue
                elif cmd == b"R" and b"<milter-no@" in pkt:
                    conn.sendall(self.packet(b"r"))
                else:
                    conn.sendall(self.packet(b"c"))


def crypt_hash(password):
    """A SHA-512 crypt(3) hash, as the texthash password table wants."""
    return subprocess.run(["openssl", "passwd", "-6", password], capture_output=True,
                          text=True, check=True).stdout.strip()


@unittest.skipUnless(os.path.exists(os.path.join(harness.LIBEXEC, "smtp"))
                     and os.path.exists(os.path.join(harness.LIBEXEC, "local")),
                     "the smtp and local delivery agents are not built")
class TestLogGrammar(unittest.TestCase):
    """Every kind of line from one instance's traffic (made once, in
    setUpClass): each test compares its kind with golden/KIND.txt."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-golden-")
        os.chmod(cls.tmp, 0o755)
        cls.sink = sinkmod.Sink()
        cls.sink.handler.reject_rcpts.add("nobody@remote.test")
        cls.milter = RejectMilter()
        cls.dead_port = harness.free_port()          # nothing listens there
        cls.inst = None
        try:
            cls.start_instance()
            cls.drive()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_instance(cls):
        # One smtp process: it logs a delivery before it resets the session
        # and keeps it, so a message that came in between would otherwise
        # find it busy and go to a new process, over a new connection.
        inst = cls.inst = harness.Instance("golden", master_cf_extra=[
            "smtp      unix  -       -       n       -       1       smtp",
            "local     unix  -       n       n       -       -       local"])
        d = inst.dir
        os.mkdir(os.path.join(d, "spool"))
        with open(os.path.join(d, "transport"), "w") as f:
            f.write("remote.test smtp:[127.0.0.1]:%d\n" % cls.sink.port)
            f.write("dead.test smtp:[127.0.0.1]:%d\n" % cls.dead_port)
        with open(os.path.join(d, "aliases"), "w") as f:
            f.write("golden-alias root\n")
        with open(os.path.join(d, "users"), "w") as f:
            f.write("root x\n")
        with open(os.path.join(d, "sasl-passwd"), "w") as f:
            f.write("%s %s\n" % (SASL_USER, crypt_hash(SASL_PASSWORD)))
        os.chmod(os.path.join(d, "sasl-passwd"), 0o600)
        inst.set_main_cf({
            "mynetworks": "127.0.0.2/32",            # 127.0.0.1 is an untrusted client
            "smtpd_peername_lookup": "no",
            "relay_domains": "remote.test, dead.test",
            "transport_maps": "texthash:%s/transport" % d,
            "alias_maps": "texthash:%s/aliases" % d,
            "local_recipient_maps": "texthash:%s/users, $alias_maps" % d,
            "mail_spool_directory": os.path.join(d, "spool"),
            "smtpd_sasl_auth_enable": "yes",
            "smtpd_sasl_type": "tern",
            "smtpd_sasl_password_maps": "texthash:%s/sasl-passwd" % d,
            "smtpd_milters": "inet:127.0.0.1:%d" % cls.milter.port,
            "minimal_backoff_time": "300s", "maximal_backoff_time": "600s",
            "queue_run_delay": "300s",
            # the bounced message reuses the connection of the sent one
            # (conn_use=2) however slow the machine is
            "smtp_connection_cache_time_limit": "60s",
        })
        inst.start()

    @classmethod
    def send(cls, sender, rcpts, subject, login=None):
        """One message through smtpd (after AUTH PLAIN when login is
        given); returns its queue ID."""
        with cls.inst.smtp() as s:
            s.ehlo("client.example")
            if login:
                s.login(*login)
            s.mail(sender)
            for r in rcpts:
                code, _ = s.rcpt(r)
                if code != 250:
                    raise AssertionError("RCPT %s: %d" % (r, code))
            code, reply = s.data(("Subject: %s\r\n\r\ngolden\r\n" % subject).encode())
            if code != 250:
                raise AssertionError("DATA: %d %r" % (code, reply))
            return harness.queue_id_of(reply)

    @classmethod
    def drive(cls):
        inst = cls.inst
        cls.qid = {}
        # delivered: to the sink (smtp) and to a local mailbox through an alias
        cls.qid["sent"] = cls.send("root@%s" % HOST, ["ok@remote.test", "golden-alias@%s" % HOST],
                                   "sent")
        # AUTH PLAIN first: client= with sasl_method= and sasl_username=
        cls.qid["sasl"] = cls.send("root@%s" % HOST, ["root@%s" % HOST], "sasl",
                                   login=(SASL_USER, SASL_PASSWORD))
        inst.wait_log(r"%s: to=<ok@remote\.test>" % cls.qid["sent"], timeout=30)
        # a 5xx from the sink, over the cached connection: bounced, and a
        # non-delivery report to the sender
        cls.qid["bounced"] = cls.send("root@%s" % HOST, ["nobody@remote.test"], "bounced")
        # a closed port: deferred
        cls.qid["deferred"] = cls.send("root@%s" % HOST, ["later@dead.test"], "deferred")
        # rejects without a queue ID: relay denied, unknown user, milter
        with harness.RawSession(inst.port) as s:
            for cmd in ("EHLO client.example", "MAIL FROM:<someone@example.org>",
                        "RCPT TO:<anyone@elsewhere.test>", "RCPT TO:<no-such-user@%s>" % HOST,
                        "RCPT TO:<milter-no@remote.test>", "QUIT"):
                s.send(cmd + "\r\n")
                s.read_reply()
        # a wrong password: the SASL warning
        with harness.RawSession(inst.port) as s:
            plain = base64.b64encode(("\0%s\0wrong password" % SASL_USER).encode()).decode()
            for cmd in ("EHLO client.example", "AUTH PLAIN " + plain, "QUIT"):
                s.send(cmd + "\r\n")
                code, _ = s.read_reply()
            if not code == 221:
                raise AssertionError("QUIT after a failed AUTH: %d" % code)
        for key in ("sent", "sasl", "bounced"):
            inst.wait_log(r"%s: removed" % cls.qid[key], timeout=30)
        inst.wait_log(r"%s: to=<later@dead\.test>.*status=deferred" % cls.qid["deferred"], timeout=30)
        inst.wait_log(r"sender non-delivery notification: ", timeout=30)
        inst.wait_log(r"warning: .*SASL .*authentication failed", timeout=10)
        # the report to root is delivered and removed too
        m = re.search(r"%s: sender non-delivery notification: (\w+)" % cls.qid["bounced"],
                      inst.log_text())
        cls.qid["ndr"] = m.group(1)
        inst.wait_log(r"%s: removed" % cls.qid["ndr"], timeout=30)
        # every session has ended (disconnect lines are written)
        deadline = time.time() + 10
        while time.time() < deadline:
            text = inst.log_text()
            if text.count(": disconnect from ") >= text.count(": connect from "):
                break
            time.sleep(0.1)
        cls.log = inst.log_text().splitlines()

    @classmethod
    def tearDownClass(cls):
        if cls.inst:
            cls.inst.cleanup()
        cls.milter.stop()
        cls.sink.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- comparison ----

    def lines(self, regex):
        """The log lines (in log order) that regex matches (re.search)."""
        pattern = re.compile(regex)
        return [line for line in self.log if pattern.search(line)]

    def check(self, kind, regex, count=None, sort=False):
        """The lines matching regex, masked, must equal golden/KIND.txt
        (written instead with TERN_GOLDEN_UPDATE=1). count: how many lines
        the traffic must have given (a selection that finds nothing is a
        failure in any case). sort: compare the masked lines sorted, for
        lines that several smtpd processes write in any order."""
        got = mask(self.lines(regex))
        if sort:
            got.sort()
        self.assertTrue(got, "no %s line matches %r; log:\n%s" % (kind, regex, "\n".join(self.log[-40:])))
        if count is not None:
            self.assertEqual(len(got), count, got)
        path = os.path.join(GOLDEN, kind + ".txt")
        if UPDATE:
            os.makedirs(GOLDEN, exist_ok=True)
            with open(path, "w") as f:
                f.write("\n".join(got) + "\n")
            return
        with open(path) as f:
            want = f.read().splitlines()
        self.assertEqual(got, want, "the %s log line changed shape (golden/%s.txt)" % (kind, kind))

    # ---- one test per kind of line ----

    def test_connect(self):
        self.check("connect", r"smtpd\[\d+\]: connect from ", sort=True)

    def test_client(self):
        self.check("client", r"%s: client=" % self.qid["sent"], count=1)

    def test_client_sasl(self):
        self.check("client_sasl", r"%s: client=" % self.qid["sasl"], count=1)

    def test_reject_relay(self):
        self.check("reject_relay", r"NOQUEUE: reject: RCPT from .*<anyone@elsewhere\.test>", count=1)

    def test_reject_unknown_user(self):
        self.check("reject_unknown_user", r"NOQUEUE: reject: RCPT from .*<no-such-user@", count=1)

    def test_milter_reject(self):
        self.check("milter_reject", r"NOQUEUE: milter-reject: RCPT from .*<milter-no@", count=1)

    def test_from(self):
        self.check("from", r"%s: from=" % self.qid["sent"], count=1)

    def test_sent_smtp(self):
        self.check("sent_smtp", r"%s: to=<ok@remote\.test>" % self.qid["sent"], count=1)

    def test_sent_local_orig_to(self):
        self.check("sent_local_orig_to", r"%s: to=<root@%s>, orig_to=" % (self.qid["sent"], HOST),
                   count=1)

    def test_sent_local(self):
        self.check("sent_local", r"%s: to=<root@%s>" % (self.qid["sasl"], HOST), count=1)

    def test_deferred(self):
        self.check("deferred", r"%s: to=<later@dead\.test>" % self.qid["deferred"])

    def test_bounced(self):
        self.check("bounced", r"%s: (to=<nobody@remote\.test>|sender non-delivery)"
                   % self.qid["bounced"], count=2)

    def test_removed(self):
        self.check("removed", r"%s: removed" % self.qid["sent"], count=1)

    def test_disconnect(self):
        self.check("disconnect", r"smtpd\[\d+\]: disconnect from ", sort=True)

    def test_warning_sasl(self):
        self.check("warning_sasl", r"warning: .*SASL \w+ authentication failed", count=1)

    def test_mask_keeps_grammar(self):
        """The mask replaces only the varying values: a changed field
        name, order, punctuation or status word still shows."""
        line = ("Dec  6 00:32:34 tern.test tern/qmgr[4242]: 0123456789BCDFGH: to=<a@b.test>, "
                "relay=127.0.0.1[127.0.0.1]:2525, delay=0.12, delays=0.01/0/0.02/0.09, "
                "dsn=2.0.0, status=sent (250 ok)")
        want = ("TIME HOST tern/qmgr[PID]: QID1: to=<a@b.test>, relay=127.0.0.1[127.0.0.1]:PORT, "
                "delay=D, delays=D/D/D/D, dsn=2.0.0, status=sent (250 ok)")
        self.assertEqual(mask([line]), [want])
        for old, new in ((", relay=", ", relay_host="), ("status=sent", "status=delivered"),
                         (", delay=", " delay="), ("dsn=2.0.0, status", "status=sent, dsn")):
            self.assertNotEqual(mask([line.replace(old, new, 1)]), [want], new)


if __name__ == "__main__":
    unittest.main()
