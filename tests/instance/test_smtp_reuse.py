"""test_smtp_reuse.py: whole-instance tests of SMTP connection reuse in the
smtp delivery agent (smtp/smtp_cache.c) and of the site_failed attribute
of its closing frame.

The remote server is aiosmtpd on 127.0.0.1 with a protocol subclass that
records every TCP connection it accepts: when it opened and closed, whether
QUIT came, the RSETs and the messages it carried; a raw server, also on
127.0.0.1, plays the servers that fail (a 421 greeting, EHLO or MAIL FROM
answered 4xx). Mail gets there through smtpd and qmgr (relayhost =
[127.0.0.1]:PORT), or, for the checks of the closing frame, from the test
speaking the delivery protocol itself with the helpers of
test_smtp_delivery.py. Where a test needs to know which process serves the
next request, the smtp service runs at most one process.
"""
import os
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
import test_smtp_delivery as tsd  # noqa: E402

from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import SMTP  # noqa: E402

SHORT_TIMEOUTS = {name: "5s" for name in (
    "smtp_connect_timeout", "smtp_helo_timeout", "smtp_mail_timeout", "smtp_rcpt_timeout",
    "smtp_data_init_timeout", "smtp_data_xfer_timeout", "smtp_data_done_timeout",
    "smtp_quit_timeout", "smtp_rset_timeout")}


# ---- a remote server that counts connections ----

class CountingHandler:
    """aiosmtpd handler: keeps every message and, per connection (keyed by
    the client's address and port), its open/close times, QUIT and RSETs.
    close_idle_after: seconds after a RSET reply at which the server closes
    the connection (a server that drops idle clients). drop_second_mail:
    the server aborts a connection when a second MAIL FROM comes on it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.connections = []      # dicts: peer, opened, closed, quit, rsets, mails
        self.messages = []         # (peer, mail_from, [rcpt], data)
        self.close_idle_after = None
        self.drop_second_mail = False

    def opened(self, peer):
        with self.lock:
            self.connections.append({"peer": peer, "opened": time.time(), "closed": None,
                                     "quit": False, "rsets": [], "mails": 0})

    def conn(self, peer):
        with self.lock:
            for c in reversed(self.connections):
                if c["peer"] == peer:
                    return c
        raise AssertionError("no connection from %r" % (peer,))

    def closed(self, peer):
        with self.lock:
            for c in reversed(self.connections):
                if c["peer"] == peer and c["closed"] is None:
                    c["closed"] = time.time()
                    return

    async def handle_QUIT(self, server, session, envelope):
        self.conn(session.peer)["quit"] = True
        return "221 2.0.0 Bye"

    async def handle_RSET(self, server, session, envelope):
        self.conn(session.peer)["rsets"].append(time.time())
        if self.close_idle_after is not None and server.transport is not None:
            server.loop.call_later(self.close_idle_after, server.transport.close)
        return "250 2.0.0 Ok"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        c = self.conn(session.peer)
        c["mails"] += 1
        if self.drop_second_mail and c["mails"] > 1:
            server.transport.abort()            # gone without a word
            return "421 4.3.0 not reached"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((session.peer, envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.original_content))
            n = len(self.messages)
        return "250 2.0.0 Ok: queued as COUNT%d" % n


class CountingSMTP(SMTP):
    def connection_made(self, transport):
        super().connection_made(transport)
        if self.session is not None and self.session.peer:
            self.event_handler.opened(self.session.peer)

    def connection_lost(self, error):
        if self.session is not None and self.session.peer:
            self.event_handler.closed(self.session.peer)
        super().connection_lost(error)


class CountingController(Controller):
    def factory(self):
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


class CountingSink:
    def __init__(self):
        self.handler = CountingHandler()
        self.port = harness.free_port()
        self.controller = CountingController(self.handler, hostname="127.0.0.1", port=self.port,
                                             server_hostname="count.test", decode_data=False,
                                             ready_timeout=10)
        self.controller.start()
        # start() checks the server with a connection of its own: not counted.
        deadline = time.time() + 5
        while time.time() < deadline and not all(c["closed"] for c in self.connections):
            time.sleep(0.02)
        with self.handler.lock:
            self.handler.connections.clear()

    @property
    def connections(self):
        with self.handler.lock:
            return [dict(c) for c in self.handler.connections]

    def wait_messages(self, count, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.handler.messages) >= count:
                return list(self.handler.messages)
            time.sleep(0.05)
        raise AssertionError("sink has %d messages, expected %d"
                             % (len(self.handler.messages), count))

    def wait_all_closed(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            conns = self.connections
            if conns and all(c["closed"] for c in conns):
                return conns
            time.sleep(0.05)
        raise AssertionError("connections still open after %ds: %r" % (timeout, self.connections))

    def stop(self):
        self.controller.stop()


class ScriptServer(servers.Server):
    """A raw SMTP server on 127.0.0.1 for the failures aiosmtpd cannot act:
    a chosen greeting, then for each command the reply given for its verb
    (250 when none is), 221 to QUIT; one connection at a time."""

    def __init__(self, greeting="220 script.test ESMTP", replies=None):
        self.greeting = greeting
        self.replies = {"EHLO": "250 script.test", "QUIT": "221 2.0.0 Bye"}
        self.replies.update(replies or {})
        self.commands = []
        super().__init__(threaded=False)

    def handle(self, conn):
        with conn:
            conn.settimeout(5)
            try:
                self._session(conn)
            except OSError:
                pass

    def _session(self, conn):
        conn.sendall(self.greeting.encode() + b"\r\n")
        buf = b""
        for _ in range(100):
            while b"\r\n" not in buf:
                chunk = self.recv(conn, 4096)
                if not chunk:
                    return
                buf += chunk
            line, buf = buf.split(b"\r\n", 1)
            command = line.decode("utf-8", "replace")
            self.commands.append(command)
            verb = command.split(" ", 1)[0].upper()
            conn.sendall(self.replies.get(verb, "250 2.0.0 Ok").encode() + b"\r\n")
            if verb == "QUIT":
                return



def log_line(port, rcpt=r"[^>]+", conn_use=None, status="sent"):
    """A delivery log line through the sink on port (the Nth use of a
    connection shows conn_use=N after the relay, as in Postfix)."""
    use = ", conn_use=%d" % conn_use if conn_use else ""
    return (r"to=<%s>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d%s, delay=[0-9.]+, "
            r"delays=[0-9./]+, dsn=[245]\.\d+\.\d+, status=%s " % (rcpt, port, use, status))


# ---- through smtpd and qmgr ----

class ReuseThroughQmgrTest(unittest.TestCase):
    def setUp(self):
        self.sink = CountingSink()
        self.addCleanup(self.sink.stop)

    def start_instance(self, maxproc="-", **settings):
        main_cf = dict(SHORT_TIMEOUTS, relayhost="[127.0.0.1]:%d" % self.sink.port,
                       minimal_backoff_time="1s", maximal_backoff_time="2s", queue_run_delay="1s")
        main_cf.update(settings)
        inst = harness.Instance("reuse", main_cf=main_cf, master_cf_extra=[
            "smtp unix - - n - %s smtp" % maxproc, "relay unix - - n - %s smtp" % maxproc])
        self.addCleanup(inst.cleanup)
        inst.start()
        self.inst = inst
        return inst

    def send(self, count, tag, wait_each=False):
        """count messages to TAG-K@remote.example, one recipient each, in one
        SMTP session; with wait_each, each once the sink has the one before."""
        before = len(self.sink.handler.messages)
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            for k in range(count):
                s.sendmail("sender@example.org", ["%s-%d@remote.example" % (tag, k)],
                           b"Subject: %s %d\r\nX-Seq: %s-%d\r\n\r\nbody\r\n" % (
                               tag.encode(), k, tag.encode(), k))
                if wait_each:
                    self.sink.wait_messages(before + k + 1)

    def assert_each_once(self, expected):
        """The sink got exactly the messages X-Seq: expected, once each."""
        self.sink.wait_messages(len(expected))
        time.sleep(0.3)                 # a duplicate would show up now
        seqs = [re.search(rb"X-Seq: (\S+)", m[3]).group(1).decode() for m in self.sink.handler.messages]
        self.assertEqual(sorted(seqs), sorted(expected), "losses or duplicates")

    @staticmethod
    def seqs(tag, count):
        return ["%s-%d" % (tag, k) for k in range(count)]

    def test_messages_share_connections(self):
        self.start_instance()
        self.send(10, "share")
        self.assert_each_once(self.seqs("share", 10))
        conns = self.sink.connections
        self.assertLess(len(conns), 10, conns)
        self.inst.wait_log(log_line(self.sink.port, conn_use=2))
        # Connections that carried several messages were reset in between.
        carried = {}
        for peer, _, _, _ in self.sink.handler.messages:
            carried[peer] = carried.get(peer, 0) + 1
        for c in conns:
            self.assertGreaterEqual(len(c["rsets"]), carried.get(c["peer"], 0) - 1, c)
        self.assertNotIn("status=deferred", self.inst.log_text())

    def test_idle_session_closed_after_cache_time_limit(self):
        self.start_instance(smtp_connection_cache_time_limit="1s")
        self.send(3, "idle")
        self.assert_each_once(self.seqs("idle", 3))
        last = time.time()
        conns = self.sink.wait_all_closed(timeout=8)
        for c in conns:
            self.assertTrue(c["quit"], c)
            self.assertLess(c["closed"] - last, 5, c)
            # kept for about the time limit after its last RSET, not closed at once
            self.assertTrue(c["rsets"], c)
            self.assertGreaterEqual(c["closed"] - c["rsets"][-1], 0.8, c)

    def test_server_closing_idle_session_loses_nothing(self):
        self.start_instance(maxproc="1", smtp_connection_cache_time_limit="10s")
        self.sink.handler.close_idle_after = 0.2
        self.send(1, "one")
        self.sink.wait_messages(1)
        [conn] = self.sink.wait_all_closed(timeout=5)     # the server hung up on the idle session
        self.assertFalse(conn["quit"])
        self.send(1, "two")
        self.assert_each_once(["one-0", "two-0"])
        peers = [m[0] for m in self.sink.handler.messages]
        self.assertNotEqual(peers[0], peers[1], "not a new connection")
        self.inst.wait_log(log_line(self.sink.port, rcpt=r"two-0@remote\.example"))
        self.assertNotIn("status=deferred", self.inst.log_text())

    def test_reused_session_lost_at_mail_from_falls_back(self):
        self.start_instance(maxproc="1", smtp_connection_cache_time_limit="10s")
        self.sink.handler.drop_second_mail = True
        self.send(1, "one")
        self.sink.wait_messages(1)
        self.send(1, "two")
        self.assert_each_once(["one-0", "two-0"])
        peers = [m[0] for m in self.sink.handler.messages]
        self.assertNotEqual(peers[0], peers[1], "not a new connection")
        [first] = [c for c in self.sink.connections if c["peer"] == peers[0]]
        self.assertEqual(first["mails"], 2, "the cached session was not tried")
        # Delivered over the new connection: its first use, no conn_use.
        self.inst.wait_log(log_line(self.sink.port, rcpt=r"two-0@remote\.example")
                           + r"\(250 2\.0\.0 Ok: queued as COUNT2\)")
        self.assertNotIn("status=deferred", self.inst.log_text())

    def test_cache_on_demand_no_means_one_connection_per_message(self):
        self.start_instance(smtp_connection_cache_on_demand="no")
        self.send(5, "nocache")
        self.assert_each_once(self.seqs("nocache", 5))
        conns = self.sink.wait_all_closed(timeout=10)
        self.assertEqual(len(conns), 5)
        self.assertTrue(all(c["quit"] and not c["rsets"] for c in conns), conns)
        self.assertNotIn("conn_use=", self.inst.log_text())

    def test_reuse_count_limit(self):
        self.start_instance(maxproc="1", smtp_connection_reuse_count_limit="1",
                            smtp_connection_cache_time_limit="10s")
        self.send(4, "count", wait_each=True)
        self.assert_each_once(self.seqs("count", 4))
        peers = [m[0] for m in self.sink.handler.messages]
        self.assertEqual(len(set(peers)), 2, peers)        # two uses per connection
        self.assertNotIn("conn_use=3", self.inst.log_text())
        self.inst.wait_log(log_line(self.sink.port, conn_use=2))

    def test_unreachable_relayhost_defers(self):
        closed_port = harness.free_port()
        self.start_instance(relayhost="[127.0.0.1]:%d" % closed_port)
        self.send(1, "down")
        self.inst.wait_log(r"to=<down-0@remote\.example>, relay=none, delay=\S+, delays=\S+, "
                           r"dsn=4\.4\.1, status=deferred \(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: "
                           r"Connection refused\)" % closed_port, timeout=20)
        self.assertEqual(self.sink.handler.messages, [])


# ---- the delivery protocol spoken by the test ----

class DirectAgentTest(unittest.TestCase):
    """The test plays qmgr (test_smtp_delivery.deliver) against an smtp
    service of one process, with the DNS server of test_smtp_delivery."""

    @classmethod
    def setUpClass(cls):
        cls.dns = tsd.DnsServer()
        cls.inst = harness.Instance(
            name="reuse-direct", master_cf_extra=["smtp unix - - n - 1 smtp"],
            main_cf=dict(SHORT_TIMEOUTS, smtp_dns_servers="127.0.0.1:%d" % cls.dns.port,
                         smtp_dns_timeout="2s", smtp_connection_cache_time_limit="30s"))
        try:
            cls.inst.start()
            tsd.SmtpDeliveryTest.wait_qmgr_started.__func__(cls)
        except Exception:
            cls.inst.cleanup()
            cls.dns.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()
        cls.dns.stop()

    def sink(self):
        sink = CountingSink()
        self.addCleanup(sink.stop)
        return sink

    def scripted(self, **kwargs):
        server = ScriptServer(**kwargs)
        self.addCleanup(server.stop)
        return "[127.0.0.1]:%d" % server.port

    def deliver(self, nexthop, rcpt="b@x.test"):
        """One message to nexthop; (result frame, closing frame)."""
        qid, rcpts = tsd.write_queue_file(self.inst, "a@example.org", [rcpt], b"Subject: x\n\nhi\n")
        done = {}
        [res] = tsd.deliver(self.inst, qid, nexthop, "a@example.org", rcpts, done=done)
        self.assertEqual(list(done), ["done", "site_failed"])
        return qid, res, done

    def test_reuse_and_key_change(self):
        a, b = self.sink(), self.sink()
        hop_a, hop_b = "[127.0.0.1]:%d" % a.port, "[127.0.0.1]:%d" % b.port
        qid1, res1, done1 = self.deliver(hop_a)
        qid2, res2, done2 = self.deliver(hop_a)
        self.assertEqual((res1["status"], res2["status"]), ("2", "2"))
        self.assertEqual((done1["site_failed"], done2["site_failed"]), ("0", "0"))
        self.assertEqual(len(a.connections), 1)
        self.assertEqual(res2["relay"], "127.0.0.1[127.0.0.1]:%d" % a.port)   # unchanged for qmgr
        self.inst.wait_log(r"%s: %s" % (qid2, log_line(a.port, conn_use=2)))
        self.inst.wait_log(r"%s: %s" % (qid1, log_line(a.port)))
        # Another next hop: the session with a is closed with QUIT at once,
        # long before its idle time limit (30 s here).
        t0 = time.time()
        self.deliver(hop_b)
        [conn] = a.wait_all_closed(timeout=5)
        self.assertTrue(conn["quit"], conn)
        self.assertLess(conn["closed"] - t0, 5)
        self.assertEqual(len(b.connections), 1)

    def test_site_failed_when_nothing_answers(self):
        _, res, done = self.deliver("[127.0.0.1]:%d" % harness.free_port())
        self.assertEqual((res["status"], res["dsn"], done["site_failed"]), ("4", "4.4.1", "1"))

    def test_site_failed_on_dns_tempfail(self):
        _, res, done = self.deliver("fail.test", rcpt="b@fail.test")
        self.assertEqual((res["status"], done["site_failed"]), ("4", "1"))

    def test_site_not_failed_on_nxdomain_or_null_mx(self):
        for hop in ("nx.test", "null.test"):
            _, res, done = self.deliver(hop, rcpt="b@" + hop)
            self.assertEqual((res["status"], done["site_failed"]), ("5", "0"), hop)

    def test_site_failed_on_greeting_421(self):
        _, res, done = self.deliver(self.scripted(greeting="421 4.3.2 too busy"))
        self.assertEqual((res["status"], res["dsn"], done["site_failed"]), ("4", "4.3.2", "1"))

    def test_site_failed_on_ehlo_4xx(self):
        _, res, done = self.deliver(self.scripted(replies={"EHLO": "454 4.7.0 not now"}))
        self.assertEqual((res["status"], res["dsn"], done["site_failed"]), ("4", "4.7.0", "1"))

    def test_site_not_failed_when_a_transaction_was_answered(self):
        _, res, done = self.deliver(self.scripted(
            replies={"MAIL": "451 4.3.0 sender check failed, try later"}))
        self.assertEqual((res["status"], res["dsn"], done["site_failed"]), ("4", "4.3.0", "0"))
        self.assertIn("in reply to MAIL FROM command", res["reason"])


if __name__ == "__main__":
    unittest.main()
