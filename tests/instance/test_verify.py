"""test_verify.py: recipient and sender verification by probe (verify(8),
reject_unverified_recipient, reject_unverified_sender) through a whole
instance used as a gateway.

The instance relays example.com, senders.example and down.example; a
transport table sends the first two to an "internal server" (a scripted
SMTP server in this test that knows a few mailboxes and refuses the rest
at RCPT TO) and down.example to a port where nothing listens. smtpd's
recipient restrictions end with reject_unverified_recipient, so each new
recipient is probed through cleanup, qmgr and the smtp client before its
RCPT TO is answered:

- an unknown recipient gets 450 "verification in progress" or, once the
  probe's answer is in, 550 5.1.1 with the internal server's reason; a
  known one is accepted and its mail delivered; the internal server saw
  the probe as MAIL FROM <double-bounce@...> and RCPT TO, then RSET or
  QUIT, never DATA; no bounce is ever sent for a probe;
- the cache: kept across a restart in data_directory/verify_cache;
  positive and negative results are answered without a new
  probe until their refresh time, with one after it, and forgotten after
  their expiry time (`tern verify` shows each state);
- a local recipient is probed through local(8), which says "delivers to
  mailbox" and writes no mailbox; an unknown local user is refused;
- reject_unverified_sender on a second listener refuses a sender that the
  sender domain's server refuses;
- the internal server down: the probe is deferred, the client gets the
  tempfail action (450), nothing is accepted to bounce later;
- address_verify_transport_maps routes probes apart from the mail;
- a flood of random recipients on a third listener (one poll only) sends
  no more probes than address_verify_pending_limit and
  address_verify_probe_rate_limit allow, and every one of them is refused.
"""
import os
import re
import socket
import threading
import time
import unittest
import uuid

import harness
import servers

KNOWN = {"alice@example.com", "bob@example.com", "good@senders.example", "alice@split.example",
         "john.smith@example.com"}


class InternalServer(servers.Server):
    """An SMTP server that accepts RCPT TO only for its mailboxes and
    records every session's commands (.sessions: one list per connection)
    and every message it accepts (.messages)."""

    def __init__(self):
        self.known = set(KNOWN)
        self.sessions = []
        self.messages = []
        super().__init__()

    def handle(self, conn):
        cmds = []
        with self.lock:
            self.sessions.append(cmds)
        f = conn.makefile("rb")
        conn.sendall(b"220 internal.test ESMTP\r\n")
        mail_from, rcpts = None, []
        for _ in range(1000):
            line = f.readline(4096)
            if not line:
                return
            text = line.decode("latin-1").rstrip("\r\n")
            cmds.append(text)
            verb = text[:4].upper()
            if verb in ("EHLO", "HELO"):
                conn.sendall(b"250-internal.test\r\n250 PIPELINING\r\n" if verb == "EHLO"
                             else b"250 internal.test\r\n")
            elif verb == "MAIL":
                mail_from, rcpts = text[10:].strip("<>").split(">")[0], []
                conn.sendall(b"250 2.1.0 Ok\r\n")
            elif verb == "RCPT":
                addr = text[8:].split(">")[0].strip("<").lower()
                if addr in self.known:
                    rcpts.append(addr)
                    conn.sendall(b"250 2.1.5 Ok\r\n")
                else:
                    conn.sendall(("550 5.1.1 <%s>: Recipient address rejected: "
                                  "User unknown in internal directory\r\n" % addr).encode())
            elif verb == "DATA":
                conn.sendall(b"354 go ahead\r\n")
                body = b""
                while True:
                    l = f.readline(65536)
                    if not l or l == b".\r\n":
                        break
                    body += l
                with self.lock:
                    self.messages.append((mail_from, list(rcpts), body))
                cmds.append("<content>")
                conn.sendall(b"250 2.0.0 Ok: queued\r\n")
            elif verb == "RSET":
                mail_from, rcpts = None, []
                conn.sendall(b"250 2.0.0 Ok\r\n")
            elif verb == "QUIT":
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            else:
                conn.sendall(b"502 5.5.2 Error: command not recognized\r\n")

    def probes_for(self, address):
        """The sessions' transactions with RCPT TO:<address> sent by the
        probe sender, each as its list of commands from MAIL on."""
        out = []
        with self.lock:
            sessions = [list(s) for s in self.sessions]
        for cmds in sessions:
            tx = None
            for c in cmds:
                if c.upper().startswith("MAIL FROM:"):
                    tx = [c]
                    out.append(tx)
                elif tx is not None:
                    tx.append(c)
        return [tx for tx in out if "double-bounce@" in tx[0]
                and any(c.upper().startswith("RCPT TO:<%s>" % address.upper())
                        or c.lower().startswith("rcpt to:<%s>" % address) for c in tx)]


class VerifyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.internal = InternalServer()
        cls.down_port = harness.free_port()        # nothing listens here
        cls.sender_port = harness.free_port()      # reject_unverified_sender
        cls.flood_port = harness.free_port()       # one poll only
        cls.inst = harness.Instance("verify")
        d = cls.inst.dir
        cls.spool = os.path.join(d, "spool")
        os.makedirs(cls.spool)
        os.chmod(cls.spool, 0o1777)
        transport = os.path.join(d, "transport")
        with open(transport, "w") as f:
            f.write("example.com smtp:[127.0.0.1]:%d\n" % cls.internal.port)
            f.write("senders.example smtp:[127.0.0.1]:%d\n" % cls.internal.port)
            f.write("down.example smtp:[127.0.0.1]:%d\n" % cls.down_port)
        # probes take their own table: split.example's mail would go to the
        # dead port, its probes go to the internal server
        vtransport = os.path.join(d, "vtransport")
        with open(transport) as f, open(vtransport, "w") as v:
            v.write(f.read())
            v.write("split.example smtp:[127.0.0.1]:%d\n" % cls.internal.port)
        with open(transport, "a") as f:
            f.write("split.example smtp:[127.0.0.1]:%d\n" % cls.down_port)
        cls.inst.set_main_cf({
            "relay_domains": "example.com senders.example down.example split.example",
            "transport_maps": "texthash:" + transport,
            "address_verify_transport_maps": "texthash:" + vtransport,
            "mail_spool_directory": cls.spool,
            "smtpd_recipient_restrictions": "reject_unauth_destination, reject_unverified_recipient",
            "address_verify_poll_count": "6",
            "address_verify_poll_delay": "1s",
            "address_verify_positive_refresh_time": "4s",
            "address_verify_positive_expire_time": "8s",
            "address_verify_negative_refresh_time": "3s",
            "address_verify_negative_expire_time": "6s",
            "address_verify_pending_limit": "8",
            "address_verify_probe_rate_limit": "30",
            "unverified_recipient_reject_code": "550",
            "unverified_sender_reject_code": "550",
            "minimal_backoff_time": "1s",
            "smtp_connect_timeout": "5s",
        })
        cls.inst.set_master_cf([
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_sender_restrictions=reject_unverified_sender"
            " -o smtpd_recipient_restrictions=permit_mynetworks,reject" % cls.sender_port,
            "127.0.0.1:%d inet n - n - - smtpd -o address_verify_poll_count=1"
            " -o smtpd_hard_error_limit=100 -o smtpd_soft_error_limit=100"
            " -o smtpd_error_sleep_time=0" % cls.flood_port,
        ])
        cls.inst.start()
        cls.inst.wait_port(cls.sender_port)
        cls.inst.wait_port(cls.flood_port)

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()
        cls.internal.stop()

    # ---- helpers ----
    def rcpt(self, address, port=None, sender="client@client.test"):
        with harness.RawSession(port or self.inst.port, timeout=30) as s:
            s.send(b"EHLO client.test\r\n")
            s.read_reply()
            s.send(("MAIL FROM:<%s>\r\n" % sender).encode())
            code, lines = s.read_reply()
            if code != 250:
                return code, " ".join(lines)
            s.send(("RCPT TO:<%s>\r\n" % address).encode())
            code, lines = s.read_reply()
            s.send(b"QUIT\r\n")
            return code, " ".join(lines)

    def rcpt_final(self, address, **kw):
        """RCPT TO until the answer is no longer "in progress" (20 tries)."""
        for _ in range(20):
            code, text = self.rcpt(address, **kw)
            if not (code == 450 and "verification in progress" in text):
                return code, text
            time.sleep(0.5)
        return code, text

    def cache(self, address):
        r = self.inst.tern("verify", address, check=False)
        return r.stdout.strip()

    def wait_cache(self, address, word, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.cache(address)
            if line.startswith("%s: %s" % (address, word)):
                return line
            time.sleep(0.2)
        self.fail("cache of %s never became %s: %s\n%s" % (address, word, self.cache(address),
                                                           self.inst.log_tail()))

    def no_bounces(self):
        log = self.inst.log_text()
        self.assertNotIn("sender non-delivery notification", log)
        self.assertNotIn("notification:", log)
        self.assertNotIn("status=bounced", log)

    # ---- tests ----
    def test_known_recipient_accepted_and_delivered(self):
        code, text = self.rcpt_final("alice@example.com")
        self.assertEqual(code, 250, text)
        probes = self.internal.probes_for("alice@example.com")
        self.assertTrue(probes, self.internal.sessions)
        for tx in probes:
            self.assertNotIn("DATA", [c.upper() for c in tx])
            self.assertNotIn("<content>", tx)
        # the probe's transaction ended with RSET or QUIT
        with self.internal.lock:
            flat = [c.upper() for s in self.internal.sessions for c in s]
        self.assertTrue("RSET" in flat or "QUIT" in flat)
        self.assertIn("deliverable", self.cache("alice@example.com"))
        self.inst.send_mail(["alice@example.com"], "to alice")
        deadline = time.time() + 20
        while time.time() < deadline and not any(
                b"to alice" in m[2] for m in self.internal.messages):
            time.sleep(0.2)
        got = [m for m in self.internal.messages if b"to alice" in m[2]]
        self.assertEqual(len(got), 1, self.inst.log_tail())
        self.assertEqual(got[0][1], ["alice@example.com"])
        # no probe ever carried content
        self.assertFalse([m for m in self.internal.messages if "double-bounce" in (m[0] or "")])
        self.assertRegex(self.inst.log_text(), r"to=<alice@example\.com>.*status=deliverable")
        self.no_bounces()

    def test_probe_keeps_the_address_as_given(self):
        """The cache is keyed in lower case, but the probe asks for the
        address as the client spelled it (a remote local part may be
        case-sensitive)."""
        code, text = self.rcpt_final("John.Smith@example.com")
        self.assertEqual(code, 250, text)
        with self.internal.lock:
            flat = [c for sess in self.internal.sessions for c in sess]
        self.assertIn("RCPT TO:<John.Smith@example.com>", flat)
        self.assertIn("deliverable", self.cache("john.smith@example.com"))

    def test_unknown_recipient_refused(self):
        code, text = self.rcpt("nobody@example.com")
        self.assertIn(code, (450, 550), text)
        if code == 450:
            self.assertIn("4.1.1", text)
            self.assertIn("unverified address: Address verification in progress", text)
        code, text = self.rcpt_final("nobody@example.com")
        self.assertEqual(code, 550, text)
        self.assertIn("5.1.1 <nobody@example.com>: Recipient address rejected: unverified address:",
                      text)
        self.assertIn("User unknown in internal directory", text)
        self.assertIn("undeliverable", self.cache("nobody@example.com"))
        for tx in self.internal.probes_for("nobody@example.com"):
            self.assertNotIn("DATA", [c.upper() for c in tx])
        self.assertRegex(self.inst.log_text(), r"to=<nobody@example\.com>.*status=undeliverable")
        self.no_bounces()
        self.assertEqual(self.inst.queue_ids("deferred"), [])

    def test_positive_cache_refresh_and_expiry(self):
        addr = "bob@example.com"
        self.assertEqual(self.rcpt_final(addr)[0], 250)
        n = len(self.internal.probes_for(addr))
        self.assertGreaterEqual(n, 1)
        # within the refresh time: answered from the cache, no probe
        self.assertEqual(self.rcpt(addr)[0], 250)
        time.sleep(0.5)
        self.assertEqual(len(self.internal.probes_for(addr)), n)
        # past the refresh time: still accepted at once, and probed again
        time.sleep(4.5)
        self.assertEqual(self.rcpt(addr)[0], 250)
        deadline = time.time() + 15
        while time.time() < deadline and len(self.internal.probes_for(addr)) == n:
            time.sleep(0.2)
        self.assertEqual(len(self.internal.probes_for(addr)), n + 1)
        # bob leaves; past the expiry time the old result is forgotten
        self.internal.known.discard(addr)
        try:
            self.wait_cache(addr, "deliverable")
            time.sleep(9)
            self.assertTrue(self.cache(addr).startswith(addr + ": unknown"), self.cache(addr))
            code, text = self.rcpt_final(addr)
            self.assertEqual(code, 550, text)
        finally:
            self.internal.known.add(addr)

    def test_negative_cache_refresh(self):
        addr = "carol@example.com"
        self.assertEqual(self.rcpt_final(addr)[0], 550)
        n = len(self.internal.probes_for(addr))
        # a flood of the same unknown address sends no more probes
        for _ in range(5):
            self.assertEqual(self.rcpt(addr)[0], 550)
        self.assertEqual(len(self.internal.probes_for(addr)), n)
        # carol gets a mailbox; after the negative refresh time a new
        # probe finds her
        self.internal.known.add(addr)
        try:
            time.sleep(3.5)
            self.rcpt(addr)      # the old answer, and a new probe
            self.wait_cache(addr, "deliverable")
            self.assertEqual(self.rcpt(addr)[0], 250)
        finally:
            self.internal.known.discard(addr)

    def test_local_recipient_probe_writes_no_mailbox(self):
        import pwd
        user = pwd.getpwuid(os.getuid()).pw_name
        addr = "%s@tern.test" % user
        code, text = self.rcpt_final(addr)
        self.assertEqual(code, 250, text)
        self.assertIn("deliverable", self.cache(addr))
        self.assertRegex(self.inst.log_text(),
                         r"to=<%s>.*relay=local.*status=deliverable \(delivers to mailbox\)"
                         % re.escape(addr))
        self.assertEqual(os.listdir(self.spool), [])
        code, text = self.rcpt_final("no-such-user-xyz@tern.test")
        self.assertEqual(code, 550, text)
        self.assertIn('unknown user: \\"no-such-user-xyz\\"'.replace("\\", ""), text)
        self.assertEqual(os.listdir(self.spool), [])
        self.no_bounces()

    def test_unverified_sender(self):
        code, text = self.rcpt_final("postmaster@tern.test", port=self.sender_port,
                                     sender="forged@senders.example")
        self.assertEqual(code, 550, text)
        self.assertIn("5.1.7 <forged@senders.example>: Sender address rejected: unverified address:",
                      text)
        code, text = self.rcpt_final("postmaster@tern.test", port=self.sender_port,
                                     sender="good@senders.example")
        self.assertEqual(code, 250, text)

    def test_internal_server_down_defers(self):
        addr = "someone@down.example"
        code, text = self.rcpt(addr)
        self.assertEqual(code, 450, text)
        self.assertIn("4.1.1 <%s>: Recipient address rejected: unverified address:" % addr, text)
        self.wait_cache(addr, "deferred")
        code, text = self.rcpt(addr)
        self.assertEqual(code, 450, text)
        self.assertIn("unverified address:", text)
        # nothing was accepted for it, nothing waits to bounce
        with self.inst.smtp() as c:
            c.ehlo("client.test")
            c.mail("client@client.test")
            self.assertEqual(c.rcpt(addr)[0], 450)
        self.assertEqual(self.inst.queue_ids("deferred"), [])
        self.assertNotRegex(self.inst.log_text(), r"to=<someone@down\.example>.*status=(sent|bounced)")

    def test_cache_survives_a_restart(self):
        addr = "alice@example.com"
        self.assertEqual(self.rcpt_final(addr)[0], 250)
        before = self.wait_cache(addr, "deliverable")
        self.inst.stop()
        path = os.path.join(self.inst.dir, "data", "verify_cache")
        with open(path) as f:
            saved = f.read()
        self.assertRegex(saved, r"(?m)^alice@example\.com\t0\t\d+\t\d+\t250 2\.1\.5 Ok$")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        self.inst.start()
        self.inst.wait_port(self.sender_port)
        self.inst.wait_port(self.flood_port)
        self.assertEqual(self.cache(addr), before)

    def test_probes_take_address_verify_transport_maps(self):
        code, text = self.rcpt_final("alice@split.example")
        self.assertEqual(code, 250, text)
        self.assertTrue(self.internal.probes_for("alice@split.example"))

    def test_z_flood_of_random_recipients_is_bounded(self):
        # after the other tests (unittest runs them by name): this one fills
        # the minute's probe budget
        before = len(re.findall(r": probe for <", self.inst.log_text()))
        codes = []
        with harness.RawSession(self.flood_port, timeout=30) as s:
            s.send(b"EHLO client.test\r\n")
            s.read_reply()
            s.send(b"MAIL FROM:<client@client.test>\r\n")
            s.read_reply()
            for _ in range(60):
                s.send(("RCPT TO:<%s@example.com>\r\n" % uuid.uuid4().hex[:12]).encode())
                codes.append(s.read_reply()[0])
            s.send(b"QUIT\r\n")
        self.assertNotIn(250, codes)
        self.assertTrue(all(c in (450, 550) for c in codes), codes)
        time.sleep(2)
        log = self.inst.log_text()
        sent = len(re.findall(r": probe for <", log)) - before
        self.assertLessEqual(sent, 30)
        self.assertLess(sent, 60)
        self.assertIn("address_verify_pending_limit", log)
        self.assertEqual(self.inst.queue_ids("deferred"), [])
        self.no_bounces()


if __name__ == "__main__":
    unittest.main()
