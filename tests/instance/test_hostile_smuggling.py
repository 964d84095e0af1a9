"""test_hostile_smuggling.py: SMTP smuggling through Tern. An internet
client sends a message whose content imitates an end of data followed by
a second transaction, with bare CR (<CR>.<CR><LF>, x<CR>.<CR>more) or bare
LF, by DATA and by BDAT; Tern relays it to a raw SMTP server of the test
that records every byte it receives. A receiver that takes a bare CR or a
bare LF for a line end would see the smuggled message, so the rule is: no
bare CR or bare LF ever leaves Tern, and exactly one message arrives.

The same holds for a local submission through sendmail (cleanup queues
it without any CR), for a queue file planted with bare CRs in its content
(an old or tampered file), and for the delivery status notice that quotes
such a file.
"""
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
import test_sendmail as local  # noqa: E402  (instances with a set-group-ID tern-drop)
import test_smtp_delivery as delivery  # noqa: E402  (queue file writer, delivery protocol)

HOSTNAME = "tern.test"
SMUGGLER = b"MAIL FROM:<smuggler@evil.example>"


def bare_line_ends(data):
    """Offsets of every CR not followed by LF and every LF not after a CR."""
    return [m.start() for m in re.finditer(rb"\r(?!\n)|(?<!\r)\n", data)]


def lenient_lines(data):
    """The lines a receiver sees that takes CR LF, a bare CR and a bare LF
    each for a line end (what some servers do)."""
    return re.split(rb"\r\n|\r|\n", data)


class RawSink(servers.Server):
    """A raw SMTP server on 127.0.0.1 that keeps the exact bytes of each
    session. It reads commands up to CR LF and, after its 354, the data up
    to CR LF . CR LF, as RFC 5321 says; whatever follows is read as the
    next command, so a smuggled transaction would show up as a second
    MAIL FROM."""

    def __init__(self):
        self.sessions = []          # dicts: raw (all bytes), datas [bytes], mails [bytes]
        self.reject_rcpts = set()   # RCPT TO:<these> gets 550
        # one thread per connection: a client may keep one open
        super().__init__(backlog=8, lifetime=900)   # the module runs well within this

    def handle(self, conn):
        with conn:
            self.converse(conn)

    def converse(self, conn):
        rec = {"raw": b"", "datas": [], "mails": []}
        with self.lock:
            self.sessions.append(rec)
        conn.settimeout(60)
        buf = b""

        def more():
            nonlocal buf
            chunk = conn.recv(65536)
            if not chunk:
                raise EOFError
            rec["raw"] += chunk
            buf += chunk

        def until(marker):
            nonlocal buf
            for _ in range(100000):
                i = buf.find(marker)
                if i >= 0:
                    out, buf = buf[:i], buf[i + len(marker):]
                    return out
                more()
            raise EOFError

        rcpts = 0
        try:
            conn.sendall(b"220 sink.example ESMTP\r\n")
            for _ in range(1000):
                line = until(b"\r\n")
                verb = line[:4].upper()
                if verb == b"EHLO":
                    conn.sendall(b"250-sink.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                                 b"250 SIZE 10000000\r\n")
                elif verb == b"MAIL":
                    rec["mails"].append(line)
                    rcpts = 0
                    conn.sendall(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    addr = line[8:].strip().strip(b"<>").decode("utf-8", "replace").lower()
                    if addr in self.reject_rcpts:
                        conn.sendall(b"550 5.1.1 <%s>: no such user here\r\n" % addr.encode())
                    else:
                        rcpts += 1
                        conn.sendall(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA" and rcpts == 0:
                    conn.sendall(b"554 5.5.1 Error: no valid recipients\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    # the CR LF that ended DATA may be the first of the end marker
                    buf = b"\r\n" + buf
                    data = until(b"\r\n.\r\n")[2:]
                    rec["datas"].append(data + b"\r\n.\r\n" if data else b".\r\n")
                    conn.sendall(b"250 2.0.0 Ok: queued as SINK%d\r\n" % len(rec["datas"]))
                elif verb == b"QUIT":
                    conn.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    conn.sendall(b"250 2.0.0 Ok\r\n")
        except (EOFError, OSError):
            return

    def messages(self):
        with self.lock:
            return [d for s in self.sessions for d in s["datas"]]

    def wait(self, count, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.messages()) >= count:
                return self.messages()
            time.sleep(0.05)
        raise AssertionError("sink has %d messages, expected %d" % (len(self.messages()), count))

    def reset(self):
        """Forget what was received; sessions still open go on recording."""
        with self.lock:
            for s in self.sessions:
                s["raw"] = b""
                s["datas"].clear()
                s["mails"].clear()

    def mails(self):
        with self.lock:
            return [m for s in self.sessions for m in s["mails"]]

    def raw(self):
        with self.lock:
            return [s["raw"] for s in self.sessions]


class SmugglingRelayBase(unittest.TestCase):
    """One instance per class relaying every remote domain to the raw sink."""

    params = {}

    @classmethod
    def setUpClass(cls):
        cls.sink = RawSink()
        settings = {"myhostname": HOSTNAME, "mynetworks": "127.0.0.0/8",
                    "relayhost": "[127.0.0.1]:%d" % cls.sink.port}
        settings.update(cls.params)
        cls.inst = harness.Instance(name="smuggle", main_cf=settings)
        cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.sink.stop()

    def setUp(self):
        self.sink.reset()

    def client(self):
        c = harness.RawSession(self.inst.port)
        self.addCleanup(c.close)
        c.send(b"EHLO client.example\r\n")
        self.assertEqual(c.read_reply()[0], 250)
        return c

    def payload(self, seq):
        """Content whose middle imitates the end of data and a second
        transaction, joined by the line-end imitation seq."""
        return (b"Subject: outer\r\n\r\nbefore" + seq + SMUGGLER + b"\r\n"
                b"RCPT TO:<victim@elsewhere.example>\r\nDATA\r\nSubject: smuggled\r\n\r\n"
                b"inner\r\n")

    def send_data(self, seq):
        c = self.client()
        c.send(b"MAIL FROM:<sender@example.org>\r\n")
        self.assertEqual(c.read_reply()[0], 250)
        c.send(b"RCPT TO:<rcpt@remote.example>\r\n")
        self.assertEqual(c.read_reply()[0], 250)
        c.send(b"DATA\r\n")
        self.assertEqual(c.read_reply()[0], 354)
        c.send(self.payload(seq) + b".\r\n")
        reply = c.read_reply()
        # the server saw exactly one message: nothing else is answered
        self.assertFalse(c.closed(timeout=0.3))
        self.assertEqual(c.buf, b"")
        return reply

    def send_bdat(self, seq):
        c = self.client()
        c.send(b"MAIL FROM:<sender@example.org>\r\n")
        self.assertEqual(c.read_reply()[0], 250)
        c.send(b"RCPT TO:<rcpt@remote.example>\r\n")
        self.assertEqual(c.read_reply()[0], 250)
        body = self.payload(seq) + b"\r\n.\r\n"
        half = len(body) // 2
        c.send(b"BDAT %d\r\n" % half + body[:half])
        self.assertEqual(c.read_reply()[0], 250)
        c.send(b"BDAT %d LAST\r\n" % (len(body) - half) + body[half:])
        return c.read_reply()

    def assert_relayed_clean(self):
        """Exactly one message reached the sink, in one transaction, and no
        bare CR or LF was on the wire in the whole session."""
        datas = self.sink.wait(1)
        time.sleep(0.5)             # a smuggled second message would come now
        self.assertEqual(len(self.sink.messages()), 1)
        mails = self.sink.mails()
        self.assertEqual(len(mails), 1, mails)
        for raw in self.sink.raw():
            self.assertEqual(bare_line_ends(raw), [], raw)
        data = datas[0]
        self.assertEqual(bare_line_ends(data), [], data)
        # even a receiver that takes any CR or LF for a line end sees a
        # lone "." only at the very end
        lines = lenient_lines(data)
        self.assertEqual(lines[-2:], [b".", b""], data)
        self.assertNotIn(b".", lines[:-2], data)
        # the smuggled text arrived as content of the one message
        self.assertIn(SMUGGLER, data)
        return data


# Every end-of-data imitation that involves a bare CR, and those with bare LF.
CR_SEQUENCES = {
    "CR.CRLF": b"\r.\r\n",
    "CR.CR": b"\r.\r",
    "CRLF.CR": b"\r\n.\r",
    "CR.LF": b"\r.\n",
    "x CR . CR more": b"x\r.\rmore\r\n",
}
LF_SEQUENCES = {
    "LF.LF": b"\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
}


class TestBareCrRefusedByDefault(SmugglingRelayBase):
    """smtpd_forbid_bare_cr at its default: a message with a bare CR is
    refused, by DATA and by BDAT, and nothing reaches the next server."""

    def test_data(self):
        for name, seq in CR_SEQUENCES.items():
            with self.subTest(sequence=name):
                bare_lf = b"\n" in seq.replace(b"\r\n", b"")
                want = "bare <LF>" if bare_lf else "bare <CR>"
                code, lines = self.send_data(seq)
                self.assertEqual(code, 550, lines)
                self.assertIn("5.5.2 Error: %s received" % want, lines[0])

    def test_bdat(self):
        for name, seq in CR_SEQUENCES.items():
            with self.subTest(sequence=name):
                code, lines = self.send_bdat(seq)
                self.assertEqual((code, lines), (550, ["550 5.5.2 Error: bare <CR> received"]))

    def test_nothing_relayed(self):
        self.send_data(b"\r.\r\n")
        self.send_bdat(b"x\r.\rmore\r\n")
        time.sleep(1.5)
        self.assertEqual(self.sink.messages(), [])


class TestBareCrAccepted(SmugglingRelayBase):
    """smtpd_forbid_bare_cr = no and smtpd_forbid_bare_newline = no: the
    messages are accepted, and what goes out has CR LF line ends only."""

    params = {"smtpd_forbid_bare_cr": "no", "smtpd_forbid_bare_newline": "no"}

    def relay(self, send, seq):
        self.sink.reset()
        code, lines = send(seq)
        self.assertEqual(code, 250, lines)
        data = self.assert_relayed_clean()
        self.assertIn(b"Subject: smuggled\r\n", data)
        return data

    def test_data_bare_cr(self):
        for name, seq in CR_SEQUENCES.items():
            with self.subTest(sequence=name):
                self.relay(self.send_data, seq)

    def test_data_bare_lf(self):
        for name, seq in LF_SEQUENCES.items():
            with self.subTest(sequence=name):
                self.relay(self.send_data, seq)

    def test_bdat(self):
        for name, seq in list(CR_SEQUENCES.items()) + list(LF_SEQUENCES.items()):
            with self.subTest(sequence=name):
                self.relay(self.send_bdat, seq)

    def test_bare_cr_becomes_line_end(self):
        data = self.relay(self.send_data, b"x\r.\rmore\r\n")
        # the dot after the bare CR is now at a line start: stuffed
        self.assertIn(b"beforex\r\n..\r\nmore\r\n", data)


class TestQueueFileWithBareCr(unittest.TestCase):
    """A queue file that holds bare CRs and bare LFs in its content (written
    by an old version, or planted by whoever runs as the mail owner): the
    smtp client sends CR LF only."""

    CONTENT = (b"Subject: planted\n\nbefore\r.\r" + SMUGGLER + b"\rRCPT TO:<v@x.example>\r"
               b"DATA\rx\r.\rmore\r\n.\r\nlast\r")

    @classmethod
    def setUpClass(cls):
        cls.sink = RawSink()
        cls.inst = harness.Instance(name="smuggleq", main_cf={"myhostname": HOSTNAME})
        cls.inst.start()
        # qmgr takes back whatever is in active/ when it starts: plant the
        # queue file only after it has taken in a message
        delivery.SmtpDeliveryTest.wait_qmgr_started.__func__(cls)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.sink.stop()

    def test_planted_content(self):
        qid, rcpts = delivery.write_queue_file(self.inst, "sender@example.org",
                                               ["rcpt@remote.example"], self.CONTENT)
        results = delivery.deliver(self.inst, qid, "[127.0.0.1]:%d" % self.sink.port,
                                   "sender@example.org", rcpts)
        self.assertEqual([r["status"] for r in results], ["2"], results)
        datas = self.sink.wait(1)
        for raw in self.sink.raw():
            self.assertEqual(bare_line_ends(raw), [], raw)
        self.assertEqual(len(self.sink.mails()), 1, self.sink.mails())
        data = datas[0]
        self.assertEqual(bare_line_ends(data), [], data)
        lines = lenient_lines(data)
        self.assertEqual(lines[-2:], [b".", b""], data)
        self.assertNotIn(b".", lines[:-2], data)
        self.assertTrue(data.endswith(b"\r\nlast\r\n.\r\n"), data)
        self.assertIn(b"before\r\n..\r\n" + SMUGGLER + b"\r\n", data)


class TestNoticeOfPlantedFile(unittest.TestCase):
    """A planted queue file with bare CRs in its header and body bounces:
    qmgr's notice quotes it, goes through cleanup and the smtp client, and
    reaches the sender's server with CR LF line ends only."""

    CONTENT = (b"Subject: planted\rX-Smuggled: .\r" + SMUGGLER + b"\nFrom: <a@example.org>\n\n"
               b"body\r.\rRCPT TO:<v@x.example>\rDATA\r\n.\r\nend\r")

    @classmethod
    def setUpClass(cls):
        cls.sink = RawSink()
        cls.sink.reject_rcpts.add("nobody@remote.example")
        cls.inst = harness.Instance(name="smugglen", main_cf={
            "myhostname": HOSTNAME, "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
            "queue_run_delay": "1s"})
        cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.sink.stop()

    def test_bounce_of_planted_content(self):
        qid, _ = delivery.write_queue_file(self.inst, "sender@sender.example",
                                           ["nobody@remote.example"], self.CONTENT)
        # into incoming/, where qmgr takes it up as a new message
        os.rename(os.path.join(self.inst.queue_dir, "active", qid),
                  os.path.join(self.inst.queue_dir, "incoming", qid))
        try:
            datas = self.sink.wait(1, timeout=40)
        except AssertionError:
            raise AssertionError("no notice; sink saw %r; log:\n%s" % (self.sink.raw(), self.inst.log_tail(30))) from None
        time.sleep(0.5)
        self.assertEqual(len(self.sink.messages()), 1)
        self.assertIn(b"MAIL FROM:<>", b"".join(self.sink.mails()))
        for raw in self.sink.raw():
            self.assertEqual(bare_line_ends(raw), [], raw)
        data = datas[0]
        self.assertEqual(bare_line_ends(data), [], data)
        lines = lenient_lines(data)
        self.assertEqual(lines[-2:], [b".", b""], data)
        self.assertNotIn(b".", lines[:-2], data)
        self.assertIn(b"nobody@remote.example", data)
        self.assertIn(b"Subject: planted", data)        # the original is quoted


class TestLocalSubmission(unittest.TestCase):
    """A local user's sendmail input with bare CRs goes through tern-drop
    and pickup to cleanup, which queues it without any CR, and leaves as CR
    LF only. Local mail stalls, so that its queue file can be read."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("tern-drop needs a set-group-ID copy: run as root")
        cls.sink = RawSink()
        cls.inst = local.make_instance("smuggles", {
            "myhostname": HOSTNAME, "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
            "local_transport": "stall"})
        cls.inst.stall_transport("stall")
        cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.cleanup()
        finally:
            cls.sink.stop()

    def test_sendmail_bare_cr(self):
        message = (b"Subject: local\n\nbefore\r.\r" + SMUGGLER + b"\rRCPT TO:<v@x.example>\r"
                   b"DATA\rx\r.\rmore\r\nlast\r")
        proc = local.sendmail(self.inst, ["-i", "-f", "sender@example.org", "rcpt@remote.example"],
                              message)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        datas = self.sink.wait(1)
        time.sleep(0.5)
        self.assertEqual(len(self.sink.messages()), 1)
        self.assertEqual(len(self.sink.mails()), 1)
        for raw in self.sink.raw():
            self.assertEqual(bare_line_ends(raw), [], raw)
        data = datas[0]
        lines = lenient_lines(data)
        self.assertEqual(lines[-2:], [b".", b""], data)
        self.assertNotIn(b".", lines[:-2], data)
        self.assertIn(b"before\r\n..\r\n" + SMUGGLER + b"\r\n", data)
        self.assertTrue(data.endswith(b"\r\nlast\r\n.\r\n"), data)

    def test_queued_without_cr(self):
        message = b"Subject: local\r\n\r\nbefore\r.\r" + SMUGGLER + b"\r\r\nlast\r"
        before = set(self.inst.queue_ids("active"))
        proc = local.sendmail(self.inst, ["-i", "-f", "sender@example.org", "root@" + HOSTNAME],
                              message)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        deadline = time.time() + 20
        while time.time() < deadline and not set(self.inst.queue_ids("active")) - before:
            time.sleep(0.05)
        new = set(self.inst.queue_ids("active")) - before
        self.assertEqual(len(new), 1, self.inst.log_tail())
        content = harness.read_queue_file(os.path.join(self.inst.queue_dir, "active",
                                                       new.pop()))["content"]
        self.assertNotIn(b"\r", content)
        # sendmail takes the CR LF off "CR CR LF"; cleanup makes the CR left a LF
        self.assertIn(b"\n\nbefore\n.\n" + SMUGGLER + b"\nlast\n", content)


if __name__ == "__main__":
    unittest.main()
