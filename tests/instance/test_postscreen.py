"""test_postscreen.py: pre-queue screening with a whole instance whose
master.cf runs postscreen in front of smtpd as Postfix does
("smtp inet n - n - 1 postscreen" and "smtpd pass - - n - - smtpd"):
a good client passes (PASS NEW, then PASS OLD from the cache until the
cache entry expires) and its mail reaches a sink with the client's real
address seen by smtpd; a client that talks first is logged (PREGREET) and
refused; weighted DNSBL/DNSWL scores from a real DNS server on loopback
decide below and above the threshold, and a negative weight rescues; the
deep protocol tests (pipelining, bare newline, non-SMTP command) fail bad
clients and make a good one come back; too many connections from one
client get 421, and a flood of connections does not keep a good client
out beyond the bounds. Clients use their own 127.0.0.x source address, so
that the cache entries of one test do not decide another."""
import os
import re
import smtplib
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import sink  # noqa: E402
from dnsserver import DnsServer  # noqa: E402
from test_metrics import scrape  # noqa: E402

GREET_WAIT = 1
ZONE = {
    # 127.0.0.2: zen only (weight 2, below the threshold of 3)
    "2.0.0.127.zen.example": {"A": ["127.0.0.2"]},
    # 127.0.0.3: zen and bl2 (2 + 1: at the threshold)
    "3.0.0.127.zen.example": {"A": ["127.0.0.4"]},
    "3.0.0.127.bl2.example": {"A": ["127.0.0.2"]},
    # 127.0.0.4: listed as 127.0.0.3, but the allowlist's -5 rescues it
    "4.0.0.127.zen.example": {"A": ["127.0.0.2"]},
    "4.0.0.127.bl2.example": {"A": ["127.0.0.2"]},
    "4.0.0.127.wl.example": {"A": ["127.0.5.2"]},
    # 127.0.0.5: a zen answer outside the reply filter does not count
    "5.0.0.127.zen.example": {"A": ["127.0.0.20"]},
    "5.0.0.127.bl2.example": {"A": ["127.0.0.2"]},
}
SITES = "zen.example=127.0.0.[2..11]*2, bl2.example*1, wl.example=127.0.[0..255].2*-5"
# The instance's smtp service (on its test port) becomes postscreen.
PASS_SERVICES = ["{port} inet n - n - 1 postscreen",
                 "smtpd pass - - n - - smtpd"]


def session(inst, source, timeout=15):
    return harness.RawSession(inst.port, greet=False, timeout=timeout, source=source)


def deliver(inst, source, rcpt="user@example.net", subject="screened", timeout=15):
    """A whole message from source; the last reply (code, lines)."""
    with session(inst, source, timeout) as s:
        code, lines = s.read_reply()
        assert code == 220, lines
        s.send(b"EHLO client.test\r\n")
        s.read_reply()
        s.send(b"MAIL FROM:<sender@client.test>\r\n")
        code, lines = s.read_reply()
        assert code == 250, lines
        s.send(("RCPT TO:<%s>\r\n" % rcpt).encode())
        code, lines = s.read_reply()
        if code != 250:
            return code, lines
        s.send(b"DATA\r\n")
        s.read_reply()
        s.send(("Subject: %s\r\n\r\nhello\r\n.\r\n" % subject).encode())
        code, lines = s.read_reply()
        s.send(b"QUIT\r\n")
        return code, lines


def rcpt_after_greeting(s, helo=b"EHLO bot.test\r\n"):
    """The RCPT reply of a session whose greeting is read next."""
    code, lines = s.read_reply()
    assert code == 220, lines
    s.send(helo)
    s.read_reply()
    s.send(b"MAIL FROM:<bot@bot.test>\r\n")
    s.read_reply()
    s.send(b"RCPT TO:<user@example.net>\r\n")
    return s.read_reply()


class PostscreenBase(unittest.TestCase):
    settings = {}

    @classmethod
    def setUpClass(cls):
        # 127.0.0.14: zen.example fails (SERVFAIL); bl2.example never answers
        cls.dns = DnsServer(ZONE, servfail=["14.0.0.127.zen.example"],
                            silent=["14.0.0.127.bl2.example"])
        cls.sink = sink.Sink()
        settings = {
            "mynetworks": "127.0.0.250/32", "relay_domains": "example.net",
            "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
            "smtpd_dns_servers": "127.0.0.1:%d" % cls.dns.port, "smtpd_dns_timeout": "2s",
            "postscreen_greet_wait": "%ds" % GREET_WAIT,
            "postscreen_dnsbl_sites": SITES, "postscreen_dnsbl_threshold": "3",
            "postscreen_dnsbl_timeout": "2s",
        }
        settings.update(cls.settings)
        cls.inst = harness.Instance(name="postscreen", main_cf=settings)
        # a second postscreen whose pass service does not exist (its cache
        # in memory only, so that it does not share the file)
        cls.broken_port = harness.free_port()
        cls.inst.set_master_cf([l.format(port="127.0.0.1:%d" % cls.inst.port)
                                for l in PASS_SERVICES]
                               + ["127.0.0.1:%d inet n - n - 1 postscreen" % cls.broken_port,
                                  "  -o smtpd_service_name=nosuch -o postscreen_cache_map="])
        cls.inst.start()

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()
        cls.sink.stop()
        cls.dns.stop()

    def wait_log(self, regex, timeout=10):
        return self.inst.wait_log(regex, timeout=timeout)


class EarlyTests(PostscreenBase):
    settings = {"postscreen_greet_action": "enforce", "postscreen_dnsbl_action": "enforce",
                "postscreen_greet_ttl": "4s", "postscreen_dnsbl_min_ttl": "1s",
                "postscreen_dnsbl_max_ttl": "4s",
                "postscreen_client_connection_count_limit": "3",
                "postscreen_pre_queue_limit": "12",
                # the reply names a list by the name this table gives it
                "postscreen_dnsbl_reply_map": "inline:{zen.example=zen.shown.example}"}

    def test_good_client_passes_and_mail_is_delivered(self):
        code, lines = deliver(self.inst, "127.0.0.9", subject="good client")
        self.assertEqual(code, 250, lines)
        self.wait_log(r"postscreen\[\d+\]: PASS NEW \[127\.0\.0\.9\]:\d+")
        # smtpd got the real socket: it sees the client's own address
        self.wait_log(r"smtpd\[\d+\]: connect from \S*\[127\.0\.0\.9\]")
        msgs = [m for m in self.sink.wait(1) if b"good client" in m[2]]
        self.sink.wait(1)
        deadline = time.time() + 20
        while not msgs and time.time() < deadline:
            time.sleep(0.1)
            msgs = [m for m in self.sink.handler.messages if b"good client" in m[2]]
        self.assertTrue(msgs, self.inst.log_tail())
        received = msgs[0][2].split(b"\r\n\r\n")[0]
        self.assertRegex(received, rb"Received: from client\.test \([^)]*\[127\.0\.0\.9\]\)")

    def test_cache_hit_and_expiry(self):
        code, lines = deliver(self.inst, "127.0.0.10")
        self.assertEqual(code, 250, lines)
        self.wait_log(r"PASS NEW \[127\.0\.0\.10\]:")
        t0 = time.time()
        with session(self.inst, "127.0.0.10") as s:
            code, lines = s.read_reply()
            self.assertEqual(code, 220)
            # straight to smtpd: no "220-" line of postscreen, no greet wait
            self.assertEqual(len(lines), 1, lines)
        self.assertLess(time.time() - t0, GREET_WAIT)
        self.wait_log(r"PASS OLD \[127\.0\.0\.10\]:")
        time.sleep(4.5)          # postscreen_greet_ttl and the DNSBL ttl run out
        code, lines = deliver(self.inst, "127.0.0.10")
        self.assertEqual(code, 250, lines)
        text = self.inst.log_text()
        self.assertEqual(len(re.findall(r"PASS NEW \[127\.0\.0\.10\]:", text)), 2, text)

    def test_pregreet_bot_is_rejected_and_logged(self):
        with session(self.inst, "127.0.0.6") as s:
            s.send(b"EHLO bot.test\r\n")           # before the greeting
            code, lines = s.read_reply()
            self.assertEqual(code, 220, lines)
            code, lines = s.read_reply()           # the EHLO sent early
            self.assertEqual(code, 250, lines)
            s.send(b"MAIL FROM:<bot@bot.test>\r\n")
            s.read_reply()
            s.send(b"RCPT TO:<user@example.net>\r\n")
            code, lines = s.read_reply()
        self.assertEqual(code, 550, lines)
        self.assertIn("5.5.1 Protocol error", lines[0])
        self.wait_log(r"postscreen\[\d+\]: PREGREET 15 after [0-9.]+ from \[127\.0\.0\.6\]:\d+: "
                      r"EHLO bot\.test\\r\\n")
        self.wait_log(r"NOQUEUE: reject: RCPT from \[127\.0\.0\.6\]:\d+: 550 5\.5\.1 Protocol error; "
                      r"from=<bot@bot\.test>, to=<user@example\.net>, proto=ESMTP, helo=<bot\.test>")

    def test_dnsbl_below_threshold_passes(self):
        code, lines = deliver(self.inst, "127.0.0.2")
        self.assertEqual(code, 250, lines)
        self.wait_log(r"PASS NEW \[127\.0\.0\.2\]:")

    def test_dnsbl_filter_skips_other_answers(self):
        code, lines = deliver(self.inst, "127.0.0.5")
        self.assertEqual(code, 250, lines)
        self.wait_log(r"PASS NEW \[127\.0\.0\.5\]:")

    def test_dnsbl_at_threshold_is_rejected(self):
        with session(self.inst, "127.0.0.3") as s:
            code, lines = rcpt_after_greeting(s)
        self.assertEqual(code, 550, lines)
        self.assertIn("5.7.1 Service unavailable; client [127.0.0.3] blocked using "
                      "zen.shown.example", lines[0])
        self.wait_log(r"DNSBL rank 3 for \[127\.0\.0\.3\]:\d+")
        self.wait_log(r"NOQUEUE: reject: RCPT from \[127\.0\.0\.3\]:\d+: 550 5\.7\.1 Service "
                      r"unavailable; client \[127\.0\.0\.3\] blocked using zen\.shown\.example; "
                      r"from=<bot@bot\.test>, to=<user@example\.net>, proto=ESMTP, helo=<bot\.test>")

    def test_dnswl_negative_weight_rescues(self):
        code, lines = deliver(self.inst, "127.0.0.4")
        self.assertEqual(code, 250, lines)
        self.wait_log(r"PASS NEW \[127\.0\.0\.4\]:")
        self.assertNotIn("DNSBL rank", "\n".join(
            l for l in self.inst.log_text().splitlines() if "[127.0.0.4]" in l))

    def test_too_many_connections_get_421(self):
        held = []
        try:
            for _ in range(3):     # pregreet bots: held by postscreen's engine
                s = session(self.inst, "127.0.0.7")
                s.send(b"EHLO bot.test\r\n")
                held.append(s)
            for s in held:
                code, lines = s.read_reply()
                self.assertEqual(code, 220, lines)
            with session(self.inst, "127.0.0.7") as s:
                code, lines = s.read_reply()
            self.assertEqual(code, 421, lines)
            self.assertIn("too many connections", lines[0])
            self.wait_log(r"NOQUEUE: reject: CONNECT from \[127\.0\.0\.7\]:\d+: too many connections")
        finally:
            for s in held:
                s.close()

    def test_flood_does_not_keep_a_good_client_out(self):
        flood, refused = [], 0
        try:
            for i in range(30):     # idle connections from 30 addresses
                flood.append(session(self.inst, "127.0.1.%d" % (i + 1)))
            for s in flood:
                try:
                    code, lines = s.read_reply(timeout=GREET_WAIT + 5)
                except (EOFError, OSError):
                    continue
                if code == 421:
                    refused += 1
                    self.assertIn("All screening ports are busy", lines[0])
            self.assertGreaterEqual(refused, 30 - 13)
            # the flood went to smtpd or away: a good client gets through
            # within the greet wait and a retry
            t0 = time.time()
            code = None
            for _ in range(5):
                code, lines = deliver(self.inst, "127.0.0.11")
                if code == 250:
                    break
                time.sleep(0.5)
            self.assertEqual(code, 250, lines)
            self.assertLess(time.time() - t0, 4 * GREET_WAIT + 8)
        finally:
            for s in flood:
                s.close()

    def test_hangup_during_the_greet_wait_is_logged(self):
        s = session(self.inst, "127.0.0.13")
        s.close()
        self.wait_log(r"HANGUP after [0-9.]+ from \[127\.0\.0\.13\]:\d+ in tests before SMTP handshake")
        self.wait_log(r"DISCONNECT \[127\.0\.0\.13\]:\d+")

    def test_failing_lists_count_as_not_listing(self):
        t0 = time.time()
        code, lines = deliver(self.inst, "127.0.0.14")
        self.assertEqual(code, 250, lines)
        self.wait_log(r"warning: \[127\.0\.0\.14\]:\d+: DNSBL lookup under zen\.example failed")
        self.wait_log(r"PASS NEW \[127\.0\.0\.14\]:")
        # the silent list is given up at the end of the greet wait
        self.assertLess(time.time() - t0, GREET_WAIT + 3)

    def test_no_smtpd_to_take_the_client_gives_421(self):
        s = harness.RawSession(self.broken_port, greet=False, timeout=15, source="127.0.0.15")
        with s:
            code, lines = s.read_reply()
        self.assertEqual(code, 421, lines)
        self.assertIn("4.3.2 All server ports are busy", lines[-1])
        self.wait_log(r"warning: \[127\.0\.0\.15\]:\d+: cannot connect to service private/nosuch")
        self.wait_log(r"NOQUEUE: reject: CONNECT from \[127\.0\.0\.15\]:\d+: all server ports busy")

    def test_metrics(self):
        deliver(self.inst, "127.0.0.12")
        self.wait_log(r"PASS NEW \[127\.0\.0\.12\]:")
        deadline = time.time() + 15
        while True:
            values, body = scrape(self.inst)
            if values.get('tern_postscreen_passed_total{kind="new"}', 0) >= 1:
                break
            self.assertLess(time.time(), deadline, body)
            time.sleep(0.5)
        with session(self.inst, "127.0.0.3") as s:       # a DNSBL reject
            self.assertEqual(rcpt_after_greeting(s)[0], 550)
        deadline = time.time() + 15
        while values.get('tern_postscreen_rejects_total{reason="dnsbl"}', 0) < 1:
            self.assertLess(time.time(), deadline, body)
            time.sleep(0.5)
            values, body = scrape(self.inst)
        self.assertGreaterEqual(values.get('tern_postscreen_tests_total{test="dnsbl",result="fail"}', 0),
                                1, body)
        self.assertGreaterEqual(values.get("tern_postscreen_connections_total", 0), 2, body)
        self.assertGreaterEqual(values.get('tern_postscreen_tests_total{test="pregreet",result="pass"}', 0),
                                1, body)


class DeepTests(PostscreenBase):
    settings = {"postscreen_dnsbl_sites": "",
                "postscreen_pipelining_enable": "yes", "postscreen_pipelining_action": "enforce",
                "postscreen_non_smtp_command_enable": "yes",
                "postscreen_bare_newline_enable": "yes", "postscreen_bare_newline_action": "enforce"}

    def test_good_client_comes_back_and_passes(self):
        with session(self.inst, "127.0.0.20") as s:
            code, lines = rcpt_after_greeting(s)
        self.assertEqual(code, 450, lines)
        self.assertIn("4.3.2 Service currently unavailable", lines[0])
        self.wait_log(r"PASS NEW \[127\.0\.0\.20\]:")
        code, lines = deliver(self.inst, "127.0.0.20", subject="deep good")
        self.assertEqual(code, 250, lines)
        self.wait_log(r"PASS OLD \[127\.0\.0\.20\]:")

    def test_pipelining_without_ehlo_fails(self):
        with session(self.inst, "127.0.0.21") as s:
            code, lines = s.read_reply()
            self.assertEqual(code, 220)
            s.send(b"HELO bot.test\r\nMAIL FROM:<bot@bot.test>\r\nRCPT TO:<user@example.net>\r\n")
            replies = s.read_all_replies(3)
        self.assertEqual(replies[2][0], 550, replies)
        self.wait_log(r"COMMAND PIPELINING from \[127\.0\.0\.21\]:\d+ after HELO: MAIL FROM:<bot@bot\.test>")

    def test_bare_newline_fails(self):
        with session(self.inst, "127.0.0.22") as s:
            code, lines = rcpt_after_greeting(s, helo=b"EHLO bot.test\n")
        self.assertEqual(code, 550, lines)
        self.wait_log(r"BARE NEWLINE from \[127\.0\.0\.22\]:\d+ after CONNECT")

    def test_non_smtp_command_is_dropped(self):
        with session(self.inst, "127.0.0.23") as s:
            code, lines = s.read_reply()
            self.assertEqual(code, 220)
            s.send(b"GET / HTTP/1.0\r\n")
            code, lines = s.read_reply()
            self.assertEqual(code, 521, lines)
            self.assertTrue(s.closed())
        self.wait_log(r"NON-SMTP COMMAND from \[127\.0\.0\.23\]:\d+ after CONNECT: GET / HTTP/1\.0")

    def test_drop_comes_after_the_replies_owed(self):
        """A client that pipelines after EHLO (which allows it) and then
        sends a non-SMTP command gets the replies it is owed first, then
        the 521 of the drop action; the drop never overtakes them."""
        with session(self.inst, "127.0.0.26") as s:
            code, lines = s.read_reply()
            self.assertEqual(code, 220, lines)
            s.send(b"EHLO bot.test\r\nNOOP\r\nGET / HTTP/1.0\r\n")
            replies = s.read_all_replies(3)
            self.assertTrue(s.closed())
        self.assertEqual([r[0] for r in replies], [250, 250, 521], replies)
        self.wait_log(r"NON-SMTP COMMAND from \[127\.0\.0\.26\]:\d+ after NOOP: GET / HTTP/1\.0")

    def test_long_line_is_refused(self):
        with session(self.inst, "127.0.0.24") as s:
            code, lines = s.read_reply()
            s.send(b"NOOP " + b"x" * 5000 + b"\r\n")
            code, lines = s.read_reply()
            self.assertEqual(code, 521, lines)
            self.assertTrue(s.closed())


class DnswlAllowlist(PostscreenBase):
    """A negative postscreen_dnsbl_allowlist_threshold: a client whose
    score is at or below it skips the deep tests; others do not."""
    settings = {"postscreen_pipelining_enable": "yes", "postscreen_pipelining_action": "enforce",
                "postscreen_dnsbl_allowlist_threshold": "-2", "postscreen_greet_wait": "6s"}

    def test_allowlisted_client_skips_the_deep_tests(self):
        # 127.0.0.4: 3 - 5 = -2, at the threshold. Its DNS answers end the
        # greet wait (6 s here): it is handed over once they are in.
        t0 = time.time()
        code, lines = deliver(self.inst, "127.0.0.4", subject="dnswl first try")
        self.assertEqual(code, 250, lines)
        self.assertLess(time.time() - t0, 3)
        # 127.0.0.2: 2, not allowlisted: the deep tests run (450 the first time)
        with session(self.inst, "127.0.0.2") as s:
            code, lines = rcpt_after_greeting(s)
        self.assertEqual(code, 450, lines)


class AccessListAndCache(PostscreenBase):
    """postscreen_access_list with permit_mynetworks and a cidr: table,
    postscreen_blacklist_action (the former name of the denylist action),
    and a cache that survives a restart."""
    settings = {"postscreen_access_list": "permit_mynetworks, cidr:ACCESS",
                "postscreen_blacklist_action": "drop"}

    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.tmp = tempfile.mkdtemp(prefix="tern-postscreen-tables-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        path = os.path.join(cls.tmp, "access.cidr")
        with open(path, "w") as f:
            f.write("127.0.0.30/32 permit\n127.0.0.31/32 reject\n127.0.0.32/32 dunno\n")
        cls.settings = dict(cls.settings, postscreen_access_list="permit_mynetworks, cidr:" + path)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        import shutil
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_permitted_client_is_handed_over_at_once(self):
        for source in ("127.0.0.30", "127.0.0.250"):     # the table, then mynetworks
            t0 = time.time()
            with session(self.inst, source) as s:
                code, lines = s.read_reply()
            self.assertEqual((code, len(lines)), (220, 1), lines)
            self.assertLess(time.time() - t0, GREET_WAIT)
            self.wait_log(r"ALLOWLISTED \[%s\]:\d+" % re.escape(source))

    def test_denied_client_is_dropped(self):
        with session(self.inst, "127.0.0.31") as s:
            code, lines = s.read_reply()
            self.assertEqual(code, 521, lines)
            self.assertTrue(s.closed())
        self.wait_log(r"DENYLISTED \[127\.0\.0\.31\]:\d+")

    def test_dunno_runs_the_tests(self):
        code, lines = deliver(self.inst, "127.0.0.32")
        self.assertEqual(code, 250, lines)
        self.wait_log(r"PASS NEW \[127\.0\.0\.32\]:")

    def test_ignored_pregreet_is_handed_over_with_its_bytes(self):
        # postscreen_greet_action = ignore (the default): logged, then smtpd
        # gets the client and the bytes it sent too early, which its own
        # smtpd_forbid_unauth_pipelining check sees
        with session(self.inst, "127.0.0.34") as s:
            s.send(b"EHLO early.test\r\n")
            code, lines = s.read_reply()
        self.assertEqual(lines[0], "220-tern.test ESMTP Tern")
        self.assertEqual(code, 554, lines)
        self.wait_log(r"PREGREET 17 after [0-9.]+ from \[127\.0\.0\.34\]:\d+: EHLO early\.test")
        self.wait_log(r"smtpd\[\d+\]: improper command pipelining after CONNECT from "
                      r"\S*\[127\.0\.0\.34\]: EHLO early\.test")
        self.assertNotIn("PASS NEW [127.0.0.34]", self.inst.log_text())

    def test_runs_unprivileged_under_its_system_call_filter(self):
        # one postscreen process, as mail_owner, with its seccomp filter (a
        # call outside the set would have killed it: harness.cleanup()
        # counts that as a crash in every test of this module)
        pids = self.inst.wait_process("postscreen")
        self.assertEqual(len(pids), 1)
        with open("/proc/%d/status" % pids[0]) as f:
            status = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        self.assertEqual(status["Seccomp"].strip(), "2", status)
        self.assertNotEqual(status["Uid"].split()[1], "0", status)

    def test_cache_survives_a_restart(self):
        code, lines = deliver(self.inst, "127.0.0.33")
        self.assertEqual(code, 250, lines)
        self.wait_log(r"PASS NEW \[127\.0\.0\.33\]:")
        self.inst.stop()
        cache = os.path.join(self.inst.dir, "data", "postscreen", "cache")   # data_directory
        with open(cache) as f:
            self.assertRegex(f.read(), r"(?m)^127\.0\.0\.33 \d+ ")
        self.inst.start()
        with session(self.inst, "127.0.0.33") as s:
            code, lines = s.read_reply()
        self.assertEqual((code, len(lines)), (220, 1), lines)
        self.wait_log(r"PASS OLD \[127\.0\.0\.33\]:")


class CacheFull(PostscreenBase):
    """The cache at its bound, 1,000,000 entries (a flood of addresses, or
    years of clients): it is read at start in bounded time, a new client
    still passes and is remembered (the entry whose passes end first makes
    room), and the warning says so."""
    settings = {"postscreen_dnsbl_sites": ""}
    ENTRIES = 1000000

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        path = os.path.join(cls.inst.dir, "data", "postscreen", "cache")
        deadline = time.time() + 30          # postscreen makes its folder as it starts
        while not os.path.isdir(os.path.dirname(path)) and time.time() < deadline:
            time.sleep(0.1)
        cls.inst.stop()
        until = int(time.time()) + 30 * 86400
        line = " %d %d %d %d %d\n" % ((until,) * 5)
        with open(path, "w") as f:
            for i in range(0, cls.ENTRIES, 10000):
                f.write("".join("2001:db8::%x%s" % (j, line) for j in range(i, i + 10000)))
        t0 = time.time()
        cls.inst.start()
        cls.start_seconds = time.time() - t0

    def test_new_client_passes_and_is_kept(self):
        self.assertLess(self.start_seconds, 30)
        # postscreen reads the cache when master starts it, at this first
        # connection: a few seconds, more under the sanitizers on a busy machine
        code, lines = deliver(self.inst, "127.0.0.41", timeout=90)
        self.assertEqual(code, 250, lines)
        self.wait_log(r"PASS NEW \[127\.0\.0\.41\]:")
        self.wait_log(r"warning: the postscreen cache is full \(1000000 entries\): the clients "
                      r"whose passes end first make room")
        with session(self.inst, "127.0.0.41") as s:
            code, lines = s.read_reply()
        self.assertEqual((code, len(lines)), (220, 1), lines)
        self.wait_log(r"PASS OLD \[127\.0\.0\.41\]:")


class CacheCleanup(PostscreenBase):
    """Expired entries leave the cache at the next cleanup, which logs
    what it kept and dropped, and they are gone from the saved file."""
    settings = {"postscreen_dnsbl_sites": "", "postscreen_greet_ttl": "1s",
                "postscreen_cache_retention_time": "1s",
                "postscreen_cache_cleanup_interval": "2s"}

    def test_expired_entries_are_dropped(self):
        code, lines = deliver(self.inst, "127.0.0.40")
        self.assertEqual(code, 250, lines)
        self.wait_log(r"PASS NEW \[127\.0\.0\.40\]:")
        self.wait_log(r"postscreen\[\d+\]: cache btree:\S+ full cleanup: retained=0 dropped=1 entries",
                      timeout=15)
        self.inst.stop()
        with open(os.path.join(self.inst.dir, "data", "postscreen", "cache")) as f:
            self.assertNotIn("127.0.0.40 ", f.read())


if __name__ == "__main__":
    unittest.main()
