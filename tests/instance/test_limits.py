"""test_limits.py: whole-instance tests of smtpd's defences for an
internet-facing MX: the client limits counted by anvil across all smtpd
processes (connection count and rate, message and recipient rates, the
exempt networks), smtpd going on without the limits when anvil dies and
master restarting it, the error delay and the hard error limit, the
pre-greeting talker, the idle timeout, the per-record deadline, the session
time limit, and one process serving a normal client quickly while hundreds
of slow clients hang on.

Untrusted clients bind their sockets to 127.0.0.2 and up: every instance
here has mynetworks = smtpd_client_event_limit_exceptions = 127.0.0.1/32.
"""
import os
import resource
import signal
import smtplib
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HOSTNAME = "tern.test"
TRUSTED = "127.0.0.1"
BASE_PARAMS = {
    "mynetworks": "127.0.0.1/32",
    "smtpd_client_event_limit_exceptions": "127.0.0.1/32",
    "local_transport": "stall",
}


def start_instance(name, params):
    settings = dict(BASE_PARAMS)
    settings.update(params)
    inst = harness.Instance(name=name, main_cf=settings)
    inst.stall_transport("stall")
    inst.start()
    return inst


class Client(harness.RawSession):
    """A raw SMTP client from a chosen source address on 127.0.0.0/8; a
    reply is (code, the text of its last line)."""

    def __init__(self, port, source="127.0.0.2", greet=True, timeout=10):
        super().__init__(port, greet=False, timeout=timeout, source=source)
        self.greeting = self.reply() if greet else None

    def reply(self):
        code, lines = self.read_reply()
        return code, lines[-1][4:]

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()


class LimitsTestCase(unittest.TestCase):
    """One instance per class, with the class's main.cf settings."""

    params = {}
    name = "limits"

    @classmethod
    def setUpClass(cls):
        cls.inst = start_instance(cls.name, cls.params)
        cls.service = "127.0.0.1:%d" % cls.inst.port

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def client(self, source="127.0.0.2", **kw):
        c = Client(self.inst.port, source=source, **kw)
        self.addCleanup(c.close)
        return c

    def quit(self, c):
        self.assertEqual(c.cmd("QUIT")[0], 221)
        c.close()

    def wait_log(self, regex, timeout=10):
        return self.inst.wait_log(regex, timeout=timeout)

    def refused_connection(self, source):
        """A connection from source answered 421 "too many connections"."""
        c = self.client(source, greet=False)
        self.assertEqual(c.reply(), (421, "4.7.0 %s Error: too many connections from %s"
                                     % (HOSTNAME, source)))
        self.assertTrue(c.closed())
        c.close()


class TestConnectionCount(LimitsTestCase):
    """smtpd_client_connection_count_limit holds across smtpd processes:
    with two sessions per process, three connections need two processes."""

    name = "conncount"
    params = {"smtpd_client_connection_count_limit": "3",
              "smtpd_client_limit_per_process": "2"}

    def smtpd_pids(self):
        return sorted(p for p, _, n in self.inst.processes() if n == "smtpd")

    def test_count_limit_across_processes(self):
        held = [self.client("127.0.0.2") for _ in range(3)]
        for c in held:
            self.assertEqual(c.greeting[0], 220)
            self.assertEqual(c.cmd("EHLO c.example")[0], 250)
        self.assertGreaterEqual(len(self.smtpd_pids()), 2)
        self.refused_connection("127.0.0.2")
        self.refused_connection("127.0.0.2")
        self.wait_log(r"warning: Connection concurrency limit exceeded: 4 from "
                      r"unknown\[127\.0\.0\.2\] for service %s" % self.service)
        # other clients are not affected, the exempt one not even when it
        # has more connections than the limit
        other = self.client("127.0.0.3")
        self.assertEqual(other.greeting[0], 220)
        trusted = [self.client(TRUSTED) for _ in range(4)]
        self.assertTrue(all(c.greeting[0] == 220 for c in trusted))
        for c in trusted + [other]:
            self.quit(c)
        # one session ends: anvil hears of it, and a new one is welcome
        self.quit(held.pop())
        deadline, code = time.time() + 10, None
        while time.time() < deadline:
            c = self.client("127.0.0.2", greet=False)
            code = c.reply()[0]
            if code == 220:
                held.append(c)
                break
            c.close()
            time.sleep(0.2)
        self.assertEqual(code, 220)
        self.refused_connection("127.0.0.2")
        for c in held:
            self.quit(c)


class TestRates(LimitsTestCase):
    """Connection, message and recipient rates per anvil_rate_time_unit;
    each test uses a client address of its own."""

    name = "rates"
    params = {"smtpd_client_connection_rate_limit": "3",
              "smtpd_client_message_rate_limit": "2",
              "smtpd_client_recipient_rate_limit": "3",
              "anvil_status_update_time": "2s"}

    def test_connection_rate(self):
        for _ in range(3):
            c = self.client("127.0.0.2")
            self.assertEqual(c.greeting[0], 220)
            self.quit(c)
        self.refused_connection("127.0.0.2")
        self.wait_log(r"warning: Connection rate limit exceeded: 4 from "
                      r"unknown\[127\.0\.0\.2\] for service %s" % self.service)

    def test_message_rate(self):
        c = self.client("127.0.0.3")
        self.assertEqual(c.cmd("EHLO c.example")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>"), (250, "2.1.0 Ok"))
        self.assertEqual(c.cmd("RSET")[0], 250)
        # pipelined: the replies stay in order while smtpd waits for anvil
        c.send("MAIL FROM:<b@example.org>\r\nRSET\r\nMAIL FROM:<c@example.org>\r\n"
               "RCPT TO:<postmaster@%s>\r\nNOOP\r\n" % HOSTNAME)
        self.assertEqual(c.reply(), (250, "2.1.0 Ok"))
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply(), (452, "4.3.2 Error: too much mail from 127.0.0.3"))
        self.assertEqual(c.reply(), (503, "5.5.1 Error: need MAIL command"))
        self.assertEqual(c.reply(), (250, "2.0.0 Ok"))
        self.wait_log(r"warning: Message delivery request rate limit exceeded: 3 from "
                      r"unknown\[127\.0\.0\.3\] for service %s" % self.service)
        self.quit(c)

    def test_recipient_rate(self):
        c = self.client("127.0.0.4")
        self.assertEqual(c.cmd("EHLO c.example")[0], 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
        for i in range(3):
            self.assertEqual(c.cmd("RCPT TO:<postmaster+%d@%s>" % (i, HOSTNAME)),
                             (250, "2.1.5 Ok"))
        self.assertEqual(c.cmd("RCPT TO:<postmaster@%s>" % HOSTNAME),
                         (452, "4.3.2 Error: too many recipients from 127.0.0.4"))
        self.wait_log(r"warning: Recipient address rate limit exceeded: 4 from "
                      r"unknown\[127\.0\.0\.4\] for service %s" % self.service)
        # the transaction goes on with the recipients it has
        self.assertEqual(c.cmd("DATA")[0], 354)
        code, text = c.cmd("Subject: t\r\n\r\nbody\r\n.")
        self.assertEqual(code, 250, text)
        self.quit(c)

    def test_exempt_client_not_limited(self):
        for _ in range(5):
            c = self.client(TRUSTED)
            self.assertEqual(c.greeting[0], 220)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
            for i in range(5):
                self.assertEqual(c.cmd("RCPT TO:<postmaster@%s>" % HOSTNAME)[0], 250)
            self.quit(c)

    def test_statistics_logged(self):
        c = self.client("127.0.0.5")
        self.quit(c)
        self.wait_log(r"anvil\[\d+\]: statistics: max connection rate \d+/60s for "
                      r"\(%s:127\.0\.0\.\d\) at \w{3} [ \d]\d \d\d:\d\d:\d\d" % self.service)
        self.wait_log(r"anvil\[\d+\]: statistics: max connection count \d+ for \(%s:127"
                      % self.service)
        self.wait_log(r"anvil\[\d+\]: statistics: max cache size \d+ at ")


class TestAnvilRestart(LimitsTestCase):
    """anvil killed: smtpd serves everyone without the limits meanwhile,
    master starts a new anvil, and the limits hold again."""

    name = "anvilkill"
    params = {"smtpd_client_connection_count_limit": "2",
              "smtpd_client_message_rate_limit": "100"}

    def test_anvil_killed(self):
        old = self.client("127.0.0.2")
        self.assertEqual(old.cmd("EHLO c.example")[0], 250)
        pids = self.inst.wait_process("anvil")
        self.assertEqual(len(pids), 1)
        os.kill(pids[0], signal.SIGKILL)
        self.wait_log(r"anvil pid %d killed by signal 9" % pids[0])
        # nobody is refused because anvil is gone
        self.assertEqual(old.cmd("MAIL FROM:<a@example.org>")[0], 250)
        self.assertEqual(old.cmd("RSET")[0], 250)
        for _ in range(4):
            start = time.time()
            c = self.client("127.0.0.2")
            self.assertEqual(c.greeting[0], 220)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.org>")[0], 250)
            self.quit(c)
            self.assertLess(time.time() - start, 5)
        # a new anvil runs, and counts again (it never saw the old session)
        deadline = time.time() + 10
        while time.time() < deadline:
            new = [p for p in self.inst.wait_process("anvil") if p != pids[0]]
            if new:
                break
            time.sleep(0.1)
        self.assertTrue(new, "no new anvil process")
        held = [self.client("127.0.0.2") for _ in range(2)]
        self.assertTrue(all(c.greeting[0] == 220 for c in held))
        self.refused_connection("127.0.0.2")
        for c in held + [old]:
            self.quit(c)

    def test_anvil_silent(self):
        """An anvil that does not answer (stopped) costs the first session a
        short wait; then the limits are skipped, with a warning, and come
        back once anvil answers again."""
        pid = self.inst.wait_process("anvil")[0]
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(os.kill, pid, signal.SIGCONT)
        start = time.time()
        first = self.client("127.0.0.3")
        self.assertEqual(first.greeting[0], 220)
        self.assertLess(time.time() - start, 5)
        self.wait_log(r"smtpd\[\d+\]: warning: problem talking to service private/anvil: "
                      r"timeout waiting for an answer; client connection and rate limits "
                      r"are not enforced until it answers")
        held = [first]
        for _ in range(3):      # over the limit of 2, and not refused
            start = time.time()
            c = self.client("127.0.0.3")
            self.assertEqual(c.greeting[0], 220)
            self.assertLess(time.time() - start, 1)
            held.append(c)
        os.kill(pid, signal.SIGCONT)
        # the limit comes back (smtpd tries anvil again within seconds); the
        # sessions held so far were never counted
        deadline, refused = time.time() + 30, False
        while time.time() < deadline and not refused:
            c = self.client("127.0.0.3", greet=False)
            code = c.reply()[0]
            if code == 220:
                held.append(c)
            else:
                self.assertEqual(code, 421)
                refused = True
            time.sleep(0.5)
        self.assertTrue(refused, "the connection count limit did not come back")
        for c in held:
            self.quit(c)


class TestErrorsAndDeadlines(LimitsTestCase):
    """The error delay and hard limit, the pre-greeting talker, the idle
    timeout, the per-record deadline and the session time limit."""

    name = "deadlines"
    params = {"smtpd_soft_error_limit": "2", "smtpd_hard_error_limit": "4",
              "smtpd_error_sleep_time": "1s", "smtpd_timeout": "3s",
              "smtpd_greet_pause": "1s", "smtpd_per_record_deadline": "yes",
              "smtpd_session_time_limit": "8s"}

    def test_error_delay_and_hard_limit(self):
        c = self.client()
        self.assertEqual(c.cmd("EHLO c.example")[0], 250)
        times = []
        for i in range(4):
            start = time.time()
            self.assertEqual(c.cmd("BOGUS%d" % i)[0], 500)
            times.append(time.time() - start)
        self.assertLess(times[0], 0.8)
        self.assertLess(times[1], 0.8)
        self.assertGreaterEqual(times[2], 0.9)
        self.assertGreaterEqual(times[3], 0.9)
        self.assertEqual(c.reply(), (421, "4.7.0 %s Error: too many errors" % HOSTNAME))
        self.assertTrue(c.closed())
        self.wait_log(r"too many errors after UNKNOWN from unknown\[127\.0\.0\.2\]")

    def test_pregreet_talker(self):
        c = self.client(greet=False)
        c.send("EHLO hasty.example\r\n")
        self.assertEqual(c.reply(), (554, "5.5.0 Error: SMTP protocol synchronization"))
        self.assertTrue(c.closed())
        self.wait_log(r"improper command pipelining after CONNECT from unknown\[127\.0\.0\.2\]")

    def test_idle_timeout(self):
        c = self.client()
        self.assertEqual(c.cmd("EHLO c.example")[0], 250)
        start = time.time()
        c.sock.settimeout(10)
        self.assertEqual(c.reply(), (421, "4.4.2 %s Error: timeout exceeded" % HOSTNAME))
        self.assertGreaterEqual(time.time() - start, 2.5)
        self.assertTrue(c.closed())
        self.wait_log(r"timeout after EHLO from unknown\[127\.0\.0\.2\]")

    def test_slow_line(self):
        """A byte a second never completes a line: the per-record deadline
        ends it although every read brings something."""
        c = self.client()
        start = time.time()
        c.sock.settimeout(0.5)
        reply = None
        for ch in "NOOP" * 5:
            try:
                c.send(ch)
            except OSError:
                break
            try:
                reply = c.reply()
                break
            except (socket.timeout, TimeoutError):
                pass
            time.sleep(0.5)
        elapsed = time.time() - start
        self.assertEqual(reply, (421, "4.4.2 %s Error: timeout exceeded" % HOSTNAME))
        self.assertGreaterEqual(elapsed, 2.5)
        self.assertLess(elapsed, 6)
        self.wait_log(r"timeout after CONNECT from unknown\[127\.0\.0\.2\]")

    def test_session_time_limit(self):
        """Whole lines in time, but a session may last only so long."""
        c = self.client()
        start = time.time()
        c.sock.settimeout(12)
        reply = None
        while time.time() - start < 15:
            code, text = c.cmd("NOOP")
            if code != 250:
                reply = (code, text)
                break
            time.sleep(1)
        elapsed = time.time() - start
        self.assertEqual(reply, (421, "4.4.2 %s Error: session time limit exceeded" % HOSTNAME))
        self.assertGreaterEqual(elapsed, 6)
        self.assertLess(elapsed, 11)
        self.assertTrue(c.closed())
        self.wait_log(r"session time limit exceeded after NOOP from unknown\[127\.0\.0\.2\]")


class TestManySlowClients(LimitsTestCase):
    """500 clients that send a byte now and then, or nothing, do not keep a
    normal client from being served quickly by the same smtpd process: one
    process may take them all (smtpd_client_limit_per_process, max_use)."""

    name = "slow"
    SLOW = 500
    params = {"smtpd_client_connection_count_limit": "1000", "smtpd_timeout": "60s",
              "smtpd_client_limit_per_process": "1000", "max_use": "10000"}

    @classmethod
    def setUpClass(cls):
        # the test process, and the instance started from it, need a
        # descriptor per slow client and then some
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = cls.SLOW + 512
        if soft != resource.RLIM_INFINITY and soft < want:
            if hard != resource.RLIM_INFINITY and hard < want:
                raise unittest.SkipTest("RLIMIT_NOFILE hard limit %d < %d" % (hard, want))
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        super().setUpClass()

    def test_normal_client_served_quickly(self):
        slow = []
        stop = threading.Event()
        try:
            for i in range(self.SLOW):
                s = socket.create_connection(("127.0.0.1", self.inst.port), timeout=10,
                                             source_address=("127.0.0.2", 0))
                s.setblocking(False)
                slow.append(s)
            trickling = slow[: self.SLOW // 2]

            def trickle():
                # a byte every 2 s from half of them, never a whole line
                while not stop.wait(2):
                    for s in trickling:
                        try:
                            s.send(b"N")
                        except OSError:
                            pass
            t = threading.Thread(target=trickle, daemon=True)
            t.start()
            self.wait_log(r"connect from unknown\[127\.0\.0\.2\]")
            time.sleep(1)
            start = time.time()
            with smtplib.SMTP("127.0.0.1", self.inst.port, timeout=10,
                              source_address=("127.0.0.3", 0)) as smtp:
                smtp.ehlo("normal.example")
                smtp.sendmail("a@example.org", ["postmaster@%s" % HOSTNAME],
                              "Subject: normal\r\n\r\nbody\r\n")
            elapsed = time.time() - start
            self.assertLess(elapsed, 5, "a normal session took %.1f s" % elapsed)
            # served by a process that holds slow clients too
            served = self.wait_log(r"smtpd\[(\d+)\]: \w+: client=unknown\[127\.0\.0\.3\]")
            self.assertRegex(self.inst.log_text(), r"smtpd\[%s\]: connect from unknown\[127\.0\.0\.2\]"
                             % served.group(1))
            self.assertEqual(len([p for p, _, n in self.inst.processes() if n == "smtpd"]), 1)
            # the slow ones are still there, every one of them
            alive = 0
            for s in slow:
                try:
                    data = s.recv(4096)
                    alive += data != b""
                except BlockingIOError:
                    alive += 1
                except OSError:
                    pass
            self.assertEqual(alive, self.SLOW)
        finally:
            stop.set()
            for s in slow:
                s.close()


if __name__ == "__main__":
    unittest.main()
