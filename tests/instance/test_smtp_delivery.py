"""test_smtp_delivery.py: whole-instance tests of the smtp delivery agent.

An instance runs the agent as the master.cf service `smtp unix`. The tests
play qmgr: they put a message into active/ (through smtpd, or by writing
the queue file when they need exact content or attributes), connect to
queue/private/smtp and speak the delivery protocol of doc/PROTOCOLS.md.
The agent's DNS server is a dnslib server of the test (smtp_dns_servers);
its MX hosts resolve to loopback addresses 127.0.0.x that share one port
(smtp_tcp_port), where an aiosmtpd server or a scripted SMTP server of the
test listens. Checked: the bytes the remote server receives, the replies
per recipient, which recipients are marked done in the queue file, and
the log lines.
"""
import os
import re
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402
import dnsserver  # noqa: E402

PORT = harness.free_port()          # smtp_tcp_port: every test server listens here
SINK_ADDR = "127.0.0.3"             # aiosmtpd
SCRIPT_ADDR = "127.0.0.4"           # scripted servers
CLOSED_ADDR = "127.0.0.2"           # nothing listens here

ZONE = {
    # MX priority: the lower preference is listed second on purpose.
    "mx.test": {"MX": [(20, "mx2.mx.test"), (10, "mx1.mx.test")]},
    "mx1.mx.test": {"A": [CLOSED_ADDR]},
    "mx2.mx.test": {"A": [SINK_ADDR]},
    "prio.test": {"MX": [(50, "low.prio.test"), (5, "high.prio.test")]},
    "high.prio.test": {"A": [SCRIPT_ADDR]},
    "low.prio.test": {"A": [SINK_ADDR]},
    "equal.test": {"MX": [(10, "e1.equal.test"), (10, "e2.equal.test")]},
    "e1.equal.test": {"A": ["127.0.0.5"]},
    "e2.equal.test": {"A": ["127.0.0.6"]},
    "amx.test": {"A": [SINK_ADDR]},                 # no MX: its own address
    "null.test": {"MX": [(0, ".")]},                # RFC 7505
    "noaddr.test": {},                              # exists, no MX, no address
}
SERVFAIL = {"fail.test"}
NO_ANSWER = {"slow.test"}









RESULT_FIELDS = ["index", "status", "dsn", "relay", "reason", "delay_connect", "delay_transfer"]


def deliver(inst, qid, nexthop, sender, rcpts, queue_path=None, timeout=60, done=None):
    """Speak the delivery protocol as qmgr does; rcpts are (address, orcpt,
    notify, offset). Returns the result frames as dicts, in order; a dict
    given as done receives the closing frame (done, site_failed)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(os.path.join(inst.queue_dir, "private", "smtp"))
        assert harness.read_attr_frame(s, text=False) == [("protocol", b"delivery")]
        pairs = [("queue_id", qid), ("queue_path", queue_path or "active/" + qid),
                 ("transport", "smtp"), ("nexthop", nexthop), ("sender", sender),
                 ("flags", 0), ("nrcpt", len(rcpts))]
        for addr, orcpt, notify, offset in rcpts:
            pairs += [("rcpt", addr), ("orcpt", orcpt), ("notify", notify), ("offset", offset)]
        s.sendall(harness.encode_attr_frame(pairs))
        results = []
        for _ in range(len(rcpts) + 1):
            frame = harness.read_attr_frame(s, text=False)
            if frame[0][0] == "done":
                assert int(frame[0][1]) == len(results) == len(rcpts), frame
                if done is not None:
                    done.update((n, v.decode()) for n, v in frame)
                return results
            names = [n for n, _ in frame]
            # "action" comes with status 2 only: who reports a success notice
            assert names == RESULT_FIELDS + (["action"] if frame[1][1] == b"2" else []), frame
            results.append({n: v.decode("utf-8", "replace") for n, v in frame})
        raise AssertionError("no done frame after %d results" % len(results))


# ---- queue files ----

def write_queue_file(inst, sender, rcpts, content, attrs=()):
    """A complete queue file in active/ (lib/global/QUEUE.md) that qmgr never sees.
    Returns (queue_id, [(address, orcpt, notify, offset)])."""
    out, entries = bytearray(), []

    def record(rtype, data):
        offset = len(out)
        out.extend(harness.queue_record(rtype, data))
        return offset

    now = time.time()
    record("V", "1")
    record("T", "%d.%06d" % (int(now), int((now % 1) * 1e6)))
    record("S", sender)
    for name, value in attrs:
        record("A", "%s=%s" % (name, value))
    for r in rcpts:
        addr, orcpt, notify = (r, "", "") if isinstance(r, str) else r
        offset = record("R", addr.encode() + b"\0" + orcpt.encode() + b"\0" + notify.encode())
        entries.append((addr, orcpt, notify, offset))
    for i in range(0, len(content), 65536):
        record("C", content[i:i + 65536])
    record("X", b"")
    record("Z", str(len(content)))
    record("E", b"")
    qid = harness.new_queue_id()
    active = os.path.join(inst.queue_dir, "active")
    tmp = os.path.join(active, "." + qid)
    with open(tmp, "wb") as f:
        f.write(out)
    os.chmod(tmp, 0o600)
    if os.geteuid() == 0:
        st = os.stat(active)            # owned by mail_owner, who runs the agent
        os.chown(tmp, st.st_uid, st.st_gid)
    os.rename(tmp, os.path.join(active, qid))
    return qid, entries


def queue_records(inst, qid):
    """[(type, offset, data)] of the queue file active/QID."""
    with open(os.path.join(inst.queue_dir, "active", qid), "rb") as f:
        data = f.read()
    records, pos = [], 0
    while pos + 5 <= len(data):
        (length,) = struct.unpack(">I", data[pos + 1:pos + 5])
        records.append((chr(data[pos]), pos, data[pos + 5:pos + 5 + length]))
        pos += 5 + length
    return records


def recipient_states(inst, qid):
    """{address: 'R' or 'D'} from the queue file's recipient records."""
    return {data.split(b"\0")[0].decode(): rtype
            for rtype, _, data in queue_records(inst, qid) if rtype in "RD"}


# ---- the test's DNS server ----

def DnsServer():
    """The test's DNS server answering from ZONE (dnsserver.py)."""
    return dnsserver.DnsServer(ZONE, SERVFAIL, NO_ANSWER)


# ---- the remote SMTP servers ----

class SinkHandler:
    """aiosmtpd handler: keeps every message; RCPT replies by address."""

    def __init__(self):
        self.messages = []
        self.rcpt_replies = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "data": envelope.original_content,
                              "mail_options": list(envelope.mail_options)})
        return "250 2.0.0 Ok: queued as SINK%d" % len(self.messages)


class ScriptedServer(servers.Server):
    """A raw SMTP server on SCRIPT_ADDR:PORT that answers from a script, one
    session at a time, and records each session: the command lines, the
    DATA bytes as they came (dot-stuffed), and what was already waiting
    behind MAIL FROM (pipelining). hang: 'greeting' or 'final' stops
    answering there until the client gives up."""

    def __init__(self, greeting="220 scripted.test ESMTP", ehlo=("PIPELINING", "8BITMIME",
                 "SIZE 10000000"), ehlo_reply=None, helo_reply="250 scripted.test",
                 mail_reply="250 2.1.0 Ok", rcpt_replies=None, data_reply="354 End data with .",
                 final_reply="250 2.0.0 Ok: queued as SCRIPTED", hang=None):
        self.greeting, self.ehlo, self.ehlo_reply = greeting, ehlo, ehlo_reply
        self.helo_reply, self.mail_reply = helo_reply, mail_reply
        self.rcpt_replies = rcpt_replies or {}
        self.data_reply, self.final_reply, self.hang = data_reply, final_reply, hang
        self.sessions = []
        super().__init__(host=SCRIPT_ADDR, port=PORT, backlog=8, threaded=False)

    def handle(self, conn):
        rec = {"commands": [], "data": None, "behind_mail": b""}
        self.sessions.append(rec)
        with conn:
            conn.settimeout(20)
            try:
                self._session(conn, rec)
            except (OSError, EOFError):
                pass

    def _wait_for_close(self, conn):
        deadline = time.time() + 20
        while time.time() < deadline and not self.stopping.is_set():
            try:
                if not self.recv(conn, 4096):
                    return
            except socket.timeout:
                return

    def _session(self, conn, rec):
        if self.hang == "greeting":
            return self._wait_for_close(conn)
        buf = [b""]

        def line():
            while b"\r\n" not in buf[0]:
                chunk = self.recv(conn, 65536)
                if not chunk:
                    raise EOFError
                buf[0] += chunk
            text, buf[0] = buf[0].split(b"\r\n", 1)
            return text

        def send(text):
            conn.sendall(text.encode() + b"\r\n")

        send(self.greeting)
        if not self.greeting.startswith("2"):
            return self._wait_for_close(conn)
        for _ in range(1000):
            cmd = line().decode("utf-8", "replace")
            rec["commands"].append(cmd)
            verb = cmd[:4].upper()
            if verb == "EHLO":
                send(self.ehlo_reply or "\r\n".join(
                    ["250-scripted.test"] + ["250-" + k for k in self.ehlo[:-1]]
                    + ["250 " + self.ehlo[-1]] if self.ehlo else ["250 scripted.test"]))
            elif verb == "HELO":
                send(self.helo_reply)
            elif verb == "MAIL":
                time.sleep(0.3)      # a pipelining client has sent RCPT and DATA by now
                conn.setblocking(False)
                try:
                    buf[0] += self.recv(conn, 65536)
                except BlockingIOError:
                    pass
                conn.settimeout(20)
                rec["behind_mail"] = buf[0]
                send(self.mail_reply)
            elif verb == "RCPT":
                addr = cmd[cmd.find("<") + 1:cmd.find(">")]
                send(self.rcpt_replies.get(addr, "250 2.1.5 Ok"))
            elif verb == "DATA":
                send(self.data_reply)
                if self.data_reply.startswith("354"):
                    data = b""
                    while not (data == b".\r\n" or data.endswith(b"\r\n.\r\n")):
                        data += line() + b"\r\n"
                    rec["data"] = data
                    if self.hang == "final":
                        return self._wait_for_close(conn)
                    send(self.final_reply)
            elif verb == "QUIT":
                send("221 2.0.0 Bye")
                return
            else:
                send("250 2.0.0 Ok")



def unstuff(data):
    """DATA bytes as sent to the message (RFC 5321 4.5.2), final dot removed."""
    assert data.endswith(b".\r\n")
    lines = data[:-3].split(b"\r\n")[:-1]
    return b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n" for l in lines)


LOG_RESULT = (r"%s: to=<%s>, relay=%s, delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, "
              r"dsn=%s, status=%s \(%s\)")


class SmtpDeliveryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dns = DnsServer()
        cls.sink = SinkHandler()
        cls.controller = Controller(cls.sink, hostname=SINK_ADDR, port=PORT,
                                    server_hostname="sink.test", ready_timeout=10)
        cls.controller.start()
        timeouts = {name: "3s" for name in (
            "smtp_connect_timeout", "smtp_helo_timeout", "smtp_mail_timeout", "smtp_rcpt_timeout",
            "smtp_data_init_timeout", "smtp_data_xfer_timeout", "smtp_data_done_timeout",
            "smtp_quit_timeout")}
        cls.inst = harness.Instance(
            name="smtp", master_cf_extra=["smtp unix - - n - - smtp"],
            main_cf=dict(timeouts, smtp_dns_servers="127.0.0.1:%d" % cls.dns.port,
                         smtp_tcp_port=str(PORT), smtp_dns_timeout="2s"))
        cls.inst.start()
        cls.wait_qmgr_started()

    @classmethod
    def wait_qmgr_started(cls):
        """qmgr moves whatever is in active/ back to incoming/ when it starts,
        so the tests write their queue files only once it has taken in a
        message: a bounce of the null sender (no notice) to a name that
        does not exist."""
        with cls.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail("<>")
            s.rcpt("prime@nx.test")
            code, text = s.data("Subject: prime\r\n\r\nx\r\n")
        assert code == 250, text
        incoming = os.path.join(cls.inst.queue_dir, "incoming", text.decode().split()[-1])
        deadline = time.time() + 10
        while os.path.exists(incoming) and time.time() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(incoming), "qmgr never took in a message:\n" + cls.inst.log_tail()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()
        cls.controller.stop()
        cls.dns.stop()

    def setUp(self):
        self.sink.messages.clear()
        self.sink.rcpt_replies.clear()

    def scripted(self, **kwargs):
        server = ScriptedServer(**kwargs)
        self.addCleanup(server.stop)
        return server

    def assert_logged(self, qid, rcpt, relay, dsn, status, reason):
        self.inst.wait_log(LOG_RESULT % (qid, re.escape(rcpt), relay, re.escape(dsn), status, reason))

    # ---- delivery and content ----

    def test_delivery_to_aiosmtpd_keeps_bytes(self):
        content = (b"From: a@example.org\nTo: b@mx.test\nSubject: dots\n\n"
                   b".starts with a dot\n..two dots\n.\nmiddle . dot\n"
                   + b"x" * 900 + b"\nlast line\n")
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@mx.test"], content)
        [res] = deliver(self.inst, qid, "mx.test", "a@example.org", rcpts)
        relay = "mx2.mx.test[%s]:%d" % (SINK_ADDR, PORT)
        self.assertEqual((res["status"], res["dsn"], res["relay"]), ("2", "2.0.0", relay))
        self.assertEqual(res["reason"], "250 2.0.0 Ok: queued as SINK1")
        [msg] = self.sink.messages
        self.assertEqual(msg["data"], content.replace(b"\n", b"\r\n"))
        self.assertEqual((msg["from"], msg["to"]), ("a@example.org", ["b@mx.test"]))
        self.assertEqual(recipient_states(self.inst, qid), {"b@mx.test": "D"})
        # The first MX (lower preference) refuses connections: the second one got it.
        self.inst.wait_log(r"%s: connect to mx1\.mx\.test\[%s\]:%d: Connection refused"
                           % (qid, re.escape(CLOSED_ADDR), PORT))
        self.assert_logged(qid, "b@mx.test", re.escape(relay), "2.0.0", "sent",
                           re.escape("250 2.0.0 Ok: queued as SINK1"))

    def test_message_through_smtpd(self):
        """smtpd -> cleanup -> queue -> qmgr -> smtp -> aiosmtpd. Where qmgr
        does not schedule deliveries yet, the test plays its part."""
        body = ("From: sender@example.org\r\nTo: user@amx.test\r\n"
                "Date: Mon, 2 Nov 2026 10:00:00 +0000\r\nMessage-ID: <smtp-test@example.org>\r\n"
                "Subject: through smtpd\r\n\r\n.leading dot\r\nbody\r\n")
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail("sender@example.org")
            s.rcpt("user@amx.test")
            code, text = s.data(body)
        self.assertEqual(code, 250, text)
        qid = text.decode().split()[-1]
        deadline = time.time() + 5
        while not self.sink.messages and time.time() < deadline:
            time.sleep(0.05)
        if not self.sink.messages:
            [offset] = [off for rtype, off, _ in queue_records(self.inst, qid) if rtype == "R"]
            [res] = deliver(self.inst, qid, "amx.test", "sender@example.org",
                            [("user@amx.test", "", "", offset)])
            self.assertEqual(res["status"], "2", res)
            self.assertEqual(recipient_states(self.inst, qid), {"user@amx.test": "D"})
        # No MX for amx.test: its own address was used.
        relay = "amx.test[%s]:%d" % (SINK_ADDR, PORT)
        self.assert_logged(qid, "user@amx.test", re.escape(relay), "2.0.0", "sent",
                           r"250 2\.0\.0 Ok: queued as SINK1")
        [msg] = self.sink.messages
        # Identical to what the client sent, apart from the Received: header cleanup added.
        lines = msg["data"].split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"Received: "), lines[0])
        rest = 1
        while lines[rest][:1] in (b" ", b"\t"):
            rest += 1
        self.assertEqual(b"\r\n".join(lines[rest:]), body.encode())

    def test_mx_preference_order(self):
        server = self.scripted()
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@prio.test"], b"Subject: x\n\nhi\n")
        [res] = deliver(self.inst, qid, "prio.test", "a@example.org", rcpts)
        self.assertEqual(res["relay"], "high.prio.test[%s]:%d" % (SCRIPT_ADDR, PORT))
        self.assertEqual(res["status"], "2")
        self.assertEqual(len(server.sessions), 1)
        self.assertEqual(self.sink.messages, [])

    def test_equal_preference_random_order(self):
        firsts = set()
        for _ in range(16):
            qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@equal.test"], b"x\n")
            [res] = deliver(self.inst, qid, "equal.test", "a@example.org", rcpts)
            self.assertEqual((res["status"], res["dsn"]), ("4", "4.4.1"))
            self.assertIn("Connection refused", res["reason"])
            self.inst.wait_log(r"%s: to=" % qid)
            attempts = re.findall(r"%s: connect to (e[12])\.equal\.test" % qid, self.inst.log_text())
            self.assertEqual(sorted(attempts), ["e1", "e2"])
            firsts.add(attempts[0])
            if len(firsts) == 2:
                break
        self.assertEqual(firsts, {"e1", "e2"})

    def test_pipelining_and_mail_parameters(self):
        server = self.scripted(ehlo=("PIPELINING", "8BITMIME", "SIZE 10000000", "DSN"))
        content = "Subject: 8bit\n\ncaf\u00e9\n".encode()
        qid, rcpts = write_queue_file(
            self.inst, "a@example.org", [("b@x.test", "rfc822;B+1@x.test", "SUCCESS,FAILURE"),
                                         "c@x.test"],
            content, attrs=[("envid", "env id+1"), ("ret", "HDRS")])
        res = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        self.assertEqual([r["status"] for r in res], ["2", "2"])
        # the server took b's NOTIFY, so it reports b's success; c had none
        self.assertEqual([r["action"] for r in res], ["notified", "relayed"])
        [sess] = server.sessions
        size = len(content) + content.count(b"\n")
        self.assertEqual(sess["commands"][1],
                         "MAIL FROM:<a@example.org> SIZE=%d BODY=8BITMIME RET=HDRS ENVID=env+20id+2B1" % size)
        self.assertEqual(sess["commands"][2],
                         "RCPT TO:<b@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2B1@x.test")
        self.assertEqual(sess["commands"][3], "RCPT TO:<c@x.test>")
        self.assertEqual(sess["behind_mail"],
                         b"RCPT TO:<b@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2B1@x.test\r\n"
                         b"RCPT TO:<c@x.test>\r\nDATA\r\n")
        self.assertEqual(unstuff(sess["data"]), content.replace(b"\n", b"\r\n"))
        self.inst.wait_log(r"%s: to=<b@x.test>, orig_to=<B\+1@x.test>, relay=" % qid)

    def test_no_pipelining_lockstep_and_long_lines(self):
        server = self.scripted(ehlo=("8BITMIME",))
        content = b"Subject: long\n\n" + b"y" * 3000 + b"\n.\n"
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"], content)
        [res] = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        self.assertEqual(res["status"], "2")
        [sess] = server.sessions
        self.assertEqual(sess["behind_mail"], b"")          # waited for the MAIL reply
        self.assertEqual(sess["commands"][1], "MAIL FROM:<a@example.org>")   # no SIZE offered
        self.assertIn(b"\r\n" + b"y" * 3000 + b"\r\n..\r\n.\r\n", sess["data"])  # not split

    def test_helo_when_ehlo_is_rejected(self):
        server = self.scripted(ehlo_reply="502 5.5.2 Error: command not recognized")
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"], b"x\n")
        [res] = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        self.assertEqual(res["status"], "2")
        self.assertEqual([c.split()[0] for c in server.sessions[0]["commands"][:3]],
                         ["EHLO", "HELO", "MAIL"])
        self.assertEqual(server.sessions[0]["commands"][1], "HELO tern.test")

    # ---- per-recipient outcomes ----

    def test_recipient_replies_and_done_marks(self):
        server = self.scripted(rcpt_replies={
            "temp@x.test": "450 4.2.0 <temp@x.test>: mailbox busy",
            "gone@x.test": "550 5.1.1 <gone@x.test>: Recipient address rejected: User unknown",
        })
        qid, rcpts = write_queue_file(self.inst, "a@example.org",
                                      ["ok@x.test", "temp@x.test", "gone@x.test"], b"x\n")
        nexthop = "[%s]:%d" % (SCRIPT_ADDR, PORT)
        res = deliver(self.inst, qid, nexthop, "a@example.org", rcpts)
        relay = "%s[%s]:%d" % (SCRIPT_ADDR, SCRIPT_ADDR, PORT)
        self.assertEqual([(r["index"], r["status"], r["dsn"]) for r in res],
                         [("0", "2", "2.0.0"), ("1", "4", "4.2.0"), ("2", "5", "5.1.1")])
        self.assertEqual({r["relay"] for r in res}, {relay})
        self.assertEqual(res[0]["reason"], "250 2.0.0 Ok: queued as SCRIPTED")
        self.assertEqual(res[2]["reason"],
                         "host %s[%s] said: 550 5.1.1 <gone@x.test>: Recipient address rejected: "
                         "User unknown (in reply to RCPT TO command)" % (SCRIPT_ADDR, SCRIPT_ADDR))
        self.assertIn("said: 450 4.2.0 <temp@x.test>: mailbox busy (in reply to RCPT TO command)",
                      res[1]["reason"])
        self.assertEqual(recipient_states(self.inst, qid),
                         {"ok@x.test": "D", "temp@x.test": "R", "gone@x.test": "D"})
        self.assertEqual(self.rcpt_lines(server), ["ok@x.test", "temp@x.test", "gone@x.test"])
        rel = re.escape(relay)
        self.assert_logged(qid, "ok@x.test", rel, "2.0.0", "sent", re.escape(res[0]["reason"]))
        self.assert_logged(qid, "temp@x.test", rel, "4.2.0", "deferred", re.escape(res[1]["reason"]))
        self.assert_logged(qid, "gone@x.test", rel, "5.1.1", "bounced", re.escape(res[2]["reason"]))

        # Delivered again (over the session kept from the first delivery, or
        # a new one): only the recipient still pending is tried.
        res = deliver(self.inst, qid, nexthop, "a@example.org", [rcpts[1]])
        self.assertEqual(res[0]["status"], "4")
        self.assertEqual(self.last_transaction_rcpts(server), ["temp@x.test"])

    @staticmethod
    def rcpt_lines(server, session=0):
        return [c[9:c.index(">")] for c in server.sessions[session]["commands"] if c.startswith("RCPT")]

    @staticmethod
    def last_transaction_rcpts(server):
        """RCPT TO addresses after the last MAIL FROM the server saw."""
        commands = [c for sess in server.sessions for c in sess["commands"]]
        last_mail = max(i for i, c in enumerate(commands) if c.startswith("MAIL"))
        return [c[9:c.index(">")] for c in commands[last_mail:] if c.startswith("RCPT")]

    def test_final_reply_decides_for_accepted_recipients(self):
        self.scripted(final_reply="554 5.7.1 Message rejected as spam",
                      rcpt_replies={"no@x.test": "550 5.1.1 no"})
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["a1@x.test", "a2@x.test", "no@x.test"],
                                      b"x\n")
        res = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        self.assertEqual([r["status"] for r in res], ["5", "5", "5"])
        self.assertIn("554 5.7.1 Message rejected as spam (in reply to end of DATA command)", res[0]["reason"])
        self.assertEqual(res[0]["dsn"], "5.7.1")
        self.assertIn("(in reply to RCPT TO command)", res[2]["reason"])

    def test_data_answered_without_354_is_not_a_delivery(self):
        self.scripted(ehlo=("8BITMIME",), data_reply="250 2.0.0 Ok")
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"], b"x\n")
        [res] = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        self.assertEqual((res["status"], res["dsn"]), ("4", "4.5.0"))
        self.assertIn("unexpected reply to DATA command", res["reason"])
        self.assertEqual(recipient_states(self.inst, qid), {"b@x.test": "R"})

    def test_mail_from_rejected(self):
        self.scripted(mail_reply="553 5.7.1 <a@example.org>: Sender address rejected")
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test", "c@x.test"], b"x\n")
        res = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        self.assertEqual([(r["status"], r["dsn"]) for r in res], [("5", "5.7.1")] * 2)
        self.assertIn("(in reply to MAIL FROM command)", res[0]["reason"])
        self.assertEqual(recipient_states(self.inst, qid), {"b@x.test": "D", "c@x.test": "D"})

    # ---- DNS ----

    def test_null_mx_bounces(self):
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@null.test"], b"x\n")
        [res] = deliver(self.inst, qid, "null.test", "a@example.org", rcpts)
        self.assertEqual((res["status"], res["dsn"], res["relay"]), ("5", "5.1.10", "none"))
        self.assertIn("does not accept mail", res["reason"])
        self.assertEqual(recipient_states(self.inst, qid), {"b@null.test": "D"})
        self.assert_logged(qid, "b@null.test", "none", "5.1.10", "bounced",
                           r"Domain null\.test does not accept mail \(nullMX\)")

    def test_nxdomain_bounces(self):
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@nx.test"], b"x\n")
        [res] = deliver(self.inst, qid, "nx.test", "a@example.org", rcpts)
        self.assertEqual((res["status"], res["dsn"]), ("5", "5.1.2"))
        self.assertEqual(res["reason"], "Host or domain name not found. Name service error for "
                                        "name=nx.test type=MX: Host not found")
        self.assertEqual(recipient_states(self.inst, qid), {"b@nx.test": "D"})

    def test_no_mx_and_no_address_bounces(self):
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@noaddr.test"], b"x\n")
        [res] = deliver(self.inst, qid, "noaddr.test", "a@example.org", rcpts)
        self.assertEqual((res["status"], res["dsn"]), ("5", "5.4.4"))

    def test_servfail_defers(self):
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@fail.test"], b"x\n")
        [res] = deliver(self.inst, qid, "fail.test", "a@example.org", rcpts)
        self.assertEqual((res["status"], res["dsn"]), ("4", "4.4.3"))
        self.assertIn("try again", res["reason"])
        self.assertEqual(recipient_states(self.inst, qid), {"b@fail.test": "R"})
        self.assert_logged(qid, "b@fail.test", "none", "4.4.3", "deferred", r"Host or domain name not found.*")

    def test_dns_timeout_defers(self):
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@slow.test"], b"x\n")
        t0 = time.time()
        [res] = deliver(self.inst, qid, "slow.test", "a@example.org", rcpts)
        self.assertLess(time.time() - t0, 10)
        self.assertEqual((res["status"], res["dsn"]), ("4", "4.4.3"))
        self.assertIn("timeout", res["reason"])

    # ---- failures of the server ----

    def test_greeting_hangs(self):
        self.scripted(hang="greeting")
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"], b"x\n")
        t0 = time.time()
        [res] = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        self.assertLess(time.time() - t0, 15)
        self.assertEqual((res["status"], res["dsn"]), ("4", "4.4.2"))
        self.assertEqual(res["reason"], "conversation with %s[%s] timed out while receiving the "
                                        "initial server greeting" % (SCRIPT_ADDR, SCRIPT_ADDR))
        self.assertEqual(recipient_states(self.inst, qid), {"b@x.test": "R"})

    def test_final_reply_hangs(self):
        server = self.scripted(hang="final")
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"], b"x\n")
        [res] = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        self.assertEqual((res["status"], res["dsn"]), ("4", "4.4.2"))
        self.assertIn("timed out while sending end of data -- message may be sent more than once",
                      res["reason"])
        self.assertIsNotNone(server.sessions[0]["data"])
        self.assertEqual(recipient_states(self.inst, qid), {"b@x.test": "R"})

    def test_greeting_5xx_is_temporary_by_default(self):
        self.scripted(greeting="554 5.3.2 go away")
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"], b"x\n")
        [res] = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        # smtp_skip_5xx_greeting = yes (Postfix's default): temporary.
        self.assertEqual((res["status"], res["dsn"]), ("4", "4.3.2"))
        self.assertIn("refused to talk to me: 554 5.3.2 go away", res["reason"])

    def test_8bit_content_without_8bitmime_defers(self):
        server = self.scripted(ehlo=("PIPELINING", "SIZE 1000000"))
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"],
                                      "Subject: x\n\n8-bit \u00fc\n".encode())
        [res] = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        self.assertEqual((res["status"], res["dsn"]), ("4", "4.6.3"))
        self.assertIn("8-bit content not supported by the remote server", res["reason"])
        self.assertFalse(any(c.startswith("MAIL") for c in server.sessions[0]["commands"]))
        self.assertEqual(recipient_states(self.inst, qid), {"b@x.test": "R"})

    def test_smtputf8_required_but_not_offered_bounces(self):
        self.scripted(ehlo=("PIPELINING", "8BITMIME"))
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"], b"x\n",
                                      attrs=[("smtputf8", "yes")])
        [res] = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        self.assertEqual((res["status"], res["dsn"]), ("5", "5.6.7"))
        self.assertEqual(recipient_states(self.inst, qid), {"b@x.test": "D"})

    def test_size_over_server_limit_bounces(self):
        self.scripted(ehlo=("PIPELINING", "8BITMIME", "SIZE 100"))
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"], b"z" * 200 + b"\n")
        [res] = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org", rcpts)
        self.assertEqual((res["status"], res["dsn"]), ("5", "5.3.4"))

    def test_mail_loop_to_myself_defers(self):
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"], b"x\n")
        [res] = deliver(self.inst, qid, "[127.0.0.1]:%d" % self.inst.port, "a@example.org", rcpts)
        self.assertEqual((res["status"], res["dsn"]), ("4", "4.4.6"))
        self.assertIn("loops back to myself", res["reason"])

    # ---- the request itself ----

    def test_request_checked_against_queue_file(self):
        self.scripted()
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"], b"x\n")
        addr, orcpt, notify, offset = rcpts[0]
        res = deliver(self.inst, qid, "[%s]:%d" % (SCRIPT_ADDR, PORT), "a@example.org",
                      [("other@x.test", orcpt, notify, offset), (addr, orcpt, notify, offset + 1)])
        self.assertEqual([(r["status"], r["dsn"]) for r in res], [("4", "4.3.0")] * 2)
        self.assertEqual(recipient_states(self.inst, qid), {"b@x.test": "R"})

    def test_bad_queue_path_is_refused(self):
        qid, rcpts = write_queue_file(self.inst, "a@example.org", ["b@x.test"], b"x\n")
        for path in ("../active/" + qid, "active/" + harness.new_queue_id(), "/etc/passwd", "active/"):
            with self.assertRaises(EOFError):
                deliver(self.inst, qid, "mx.test", "a@example.org", rcpts, queue_path=path)
        self.inst.wait_log(r"bad delivery request from the queue manager: bad queue_id or queue_path")


if __name__ == "__main__":
    unittest.main()
