"""test_hostile_memory.py: an internet client tries to exhaust smtpd's
memory through the milters. With smtpd_milters set, a message is shown to
the filters only at its end, so it must be kept somewhere until then; kept
in memory, N concurrent sessions of one smtpd process cost N x
message_size_limit (and the per-client connection limit does not help
against an attacker with many addresses). The attack: N clients send large
messages at once and all hold back the final "." until every one of them
has sent its whole body, so that every message is in smtpd at the same
moment, while the test samples the proportional set size (Pss) of the
instance's smtpd processes. smtpd must spool the content (tmp/ in the
queue directory) and keep only bounded buffers per session: its peak must
stay far below N x size. The messages must still arrive intact, checked by
size and checksum in the queue files, and a filter that replaces the body
of a large message (the libmilter test filter's "upcase" action) must see
its edit in the queue file. The same must hold for a filter that asked not
to answer body chunks (SMFIP_NR_BODY) and reads them slowly: smtpd must not
queue the whole body for it. A spool file that cannot be created is a
temporary error, never a lost or truncated message."""
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402

C_MILTER = os.path.join(harness.BUILD, "tests", "milter", "test-milter")
SESSIONS = 20
SIZE = 5 * 1024 * 1024
# Far below SESSIONS x SIZE (100 MiB): bounded buffers per session only.
GROWTH_LIMIT = 64 * 1024 * 1024
TRANSFER_TIMEOUT = 120


def pss_bytes(pid):
    """Proportional set size of pid (smaps_rollup), VmRSS where that cannot
    be read; 0 when the process is gone."""
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Samples the summed Pss of the instance's smtpd processes every 50 ms
    until stopped; .peak holds the largest sum."""

    def __init__(self, inst):
        super().__init__(daemon=True)
        self.inst = inst
        self.peak = 0
        self.samples = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            pids = [p for p, _, n in self.inst.processes() if n == "smtpd"]
            self.peak = max(self.peak, sum(pss_bytes(p) for p in pids))
            self.samples += 1
            self.halt.wait(0.05)

    def stop(self):
        self.halt.set()
        self.join(10)


def make_body(seed, size):
    """size bytes of lines of lower-case hex (CR LF ends, no leading dot)."""
    lines, total, n = [], 0, 0
    while total < size:
        line = hashlib.sha256(b"%d-%d" % (seed, n)).hexdigest()[:76].encode() + b"\r\n"
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)


class SlowReader(servers.Server):
    """A milter in raw protocol that asks for no replies to body chunks
    (SMFIP_NR_BODY) and, at the first chunk of each message, stops reading
    for `pause` seconds (its receive buffer is small): queued for it in
    full, the body would sit in smtpd's memory. .bodies: the body bytes of
    each message it saw end."""

    NR_BODY = 0x080000

    def __init__(self, pause):
        self.pause = pause
        self.bodies = []
        # a small receive buffer, so that the pause pushes back on smtpd
        super().__init__(backlog=64, rcvbuf=65536, record=False)

    def handle(self, conn):
        conn.settimeout(TRANSFER_TIMEOUT)
        body, paused = 0, False
        try:
            while True:
                head = self.recv_exactly(conn, 4)
                pkt = head and self.recv_exactly(conn, struct.unpack(">I", head)[0])
                if not pkt:
                    return
                cmd = pkt[:1]
                if cmd == b"O":
                    reply = struct.pack(">III", 6, 0, self.NR_BODY)
                    conn.sendall(struct.pack(">I", len(reply) + 1) + b"O" + reply)
                elif cmd in (b"D", b"K"):
                    pass
                elif cmd == b"A":
                    body, paused = 0, False
                elif cmd == b"Q":
                    return
                elif cmd == b"B":
                    if not paused:
                        self.stopping.wait(self.pause)
                        paused = True
                    body += len(pkt) - 1
                else:
                    if cmd == b"E":
                        self.bodies.append(body)
                        body, paused = 0, False
                    conn.sendall(struct.pack(">I", 1) + b"c")
        except OSError:
            return
        finally:
            conn.close()


def start_instance(cls, name, milters):
    """An instance whose mail stays in active/ (a transport that never
    answers), for clients outside mynetworks, with smtpd_milters."""
    inst = harness.Instance(name)
    cls.addClassCleanup(inst.cleanup)
    inst.set_main_cf({
        "mynetworks": "127.0.0.2/32", "relay_domains": "example.com",
        "default_transport": "stall", "relay_transport": "stall", "local_transport": "stall",
        "message_size_limit": str(4 * SIZE), "smtpd_milters": milters})
    inst.stall_transport("stall")
    # Under AddressSanitizer freed memory waits in a quarantine (256 MiB
    # by default) before it is used again, which would count here as
    # growth; a small quarantine keeps the figure about Tern's memory.
    asan = os.environ.get("ASAN_OPTIONS")
    if asan is not None:
        os.environ["ASAN_OPTIONS"] = asan + ":quarantine_size_mb=4"
    try:
        inst.start()
    finally:
        if asan is not None:
            os.environ["ASAN_OPTIONS"] = asan
    return inst


def smtpd_pss(inst):
    return sum(pss_bytes(p) for p, _, n in inst.processes() if n == "smtpd")


def warm_up(inst):
    """An smtpd process exists and has served a session; its idle Pss."""
    with harness.RawSession(inst.port) as s:
        s.send("QUIT\r\n")
        s.read_reply()
    time.sleep(0.5)
    return smtpd_pss(inst)


def run_sessions(test, inst, messages):
    """Every message in its own session at once, each holding back its
    final dot until all bodies are sent; returns (clients, peak smtpd Pss)."""
    barrier = threading.Barrier(len(messages) + 1)
    sampler = Sampler(inst)
    sampler.start()
    clients = [Client(inst.port, m, barrier) for m in messages]
    started = time.time()
    for c in clients:
        c.start()
    try:
        barrier.wait(TRANSFER_TIMEOUT)
        time.sleep(0.5)     # every body is in smtpd now: sample it there
    except threading.BrokenBarrierError:
        pass
    for c in clients:
        c.join(max(1, TRANSFER_TIMEOUT - (time.time() - started)))
    time.sleep(0.2)
    sampler.stop()
    test.assertGreater(sampler.samples, 5)
    for c in clients:
        test.assertFalse(c.is_alive(), "a session did not finish in %d s" % TRANSFER_TIMEOUT)
        test.assertIsNone(c.error, "session failed: %r; log:\n%s" % (c.error, inst.log_tail()))
    return clients, sampler.peak


class Client(threading.Thread):
    """One session: the whole message but its final ".", then waits at the
    barrier, then the end of data; .reply is the final (code, lines)."""

    def __init__(self, port, message, barrier):
        super().__init__(daemon=True)
        self.port, self.message, self.barrier = port, message, barrier
        self.reply, self.error = None, None

    def run(self):
        try:
            with harness.RawSession(self.port, timeout=TRANSFER_TIMEOUT) as s:
                s.send("EHLO attacker.example\r\n")
                s.read_reply()
                s.send("MAIL FROM:<sender@example.org>\r\n")
                self.check(s.read_reply(), 250)
                s.send("RCPT TO:<someone@example.com>\r\n")
                self.check(s.read_reply(), 250)
                s.send("DATA\r\n")
                self.check(s.read_reply(), 354)
                s.send(self.message)
                self.barrier.wait(TRANSFER_TIMEOUT)
                s.send(".\r\n")
                self.reply = s.read_reply()
                s.send("QUIT\r\n")
        except Exception as e:      # reported by the test, not lost in the thread
            self.error = e
            try:
                self.barrier.abort()
            except threading.BrokenBarrierError:
                pass

    @staticmethod
    def check(reply, code):
        if reply[0] != code:
            raise AssertionError("expected %d, got %r" % (code, reply))


@unittest.skipUnless(os.path.exists(C_MILTER), "tests/milter/test-milter is not built (make check builds it)")
class TestMilterMemory(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mport = harness.free_port()
        cls.milter = subprocess.Popen([C_MILTER, "inet:%d@127.0.0.1" % cls.mport],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cls.addClassCleanup(cls.stop_milter)
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", cls.mport), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        cls.inst = start_instance(cls, "memory", "{ inet:127.0.0.1:%d, command_timeout=60s, "
                                  "content_timeout=120s }" % cls.mport)

    @classmethod
    def stop_milter(cls):
        if cls.milter.poll() is None:
            cls.milter.send_signal(signal.SIGTERM)
            try:
                cls.milter.wait(5)
            except subprocess.TimeoutExpired:
                cls.milter.kill()
                cls.milter.wait(5)

    def test_concurrent_large_messages_through_a_milter(self):
        idle = warm_up(self.inst)
        bodies, messages = [], []
        for i in range(SESSIONS):
            body = make_body(i, SIZE)
            action = "X-Test-Action: upcase\r\n" if i % 2 else ""
            head = ("From: <sender@example.org>\r\nTo: <someone@example.com>\r\n"
                    "Subject: large %d\r\n%s\r\n" % (i, action)).encode()
            bodies.append(body)
            messages.append(head + body)
        clients, peak = run_sessions(self, self.inst, messages)
        growth = peak - idle
        self.assertLess(growth, GROWTH_LIMIT,
                        "smtpd grew by %.1f MiB with %d sessions of %d MiB through a milter"
                        % (growth / 2**20, SESSIONS, SIZE // 2**20))

        for i, c in enumerate(clients):
            code, lines = c.reply
            self.assertEqual(code, 250, lines)
            q = self.inst.queued(lines[-1].split()[-1], timeout=30)
            head, body = q["content"].split(b"\n\n", 1)
            want = bodies[i].replace(b"\r\n", b"\n")
            if i % 2:
                want = want.upper()     # the filter's replacement body
            self.assertEqual(len(body), len(want), "message %d: body size" % i)
            self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(want).hexdigest(),
                             "message %d: body checksum" % i)
            # the filter saw the whole body (its byte count, with CR LF)
            self.assertIn(b"body=%d " % len(bodies[i]), head)
            self.assertIn(b"Subject: large %d\n" % i, head)
        # nothing is left behind in the spool directory
        self.assertEqual(os.listdir(os.path.join(self.inst.queue_dir, "tmp")), [])

    def test_spool_failure_is_a_temporary_error(self):
        tmp = os.path.join(self.inst.queue_dir, "tmp")
        os.chmod(tmp, 0o500)        # mail_owner may no longer create files there
        try:
            with harness.RawSession(self.inst.port) as s:
                s.send("EHLO attacker.example\r\nMAIL FROM:<sender@example.org>\r\n"
                       "RCPT TO:<someone@example.com>\r\nDATA\r\n")
                self.assertEqual([r[0] for r in s.read_all_replies(4)], [250, 250, 250, 354])
                s.send("Subject: no spool\r\n\r\nbody\r\n.\r\n")
                code, lines = s.read_reply()
                self.assertEqual(code, 451, lines)
                self.assertIn("4.3.0", lines[-1])
        finally:
            os.chmod(tmp, 0o700)
        self.inst.wait_log(r"cannot create a spool file in tmp/ for the milters")
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.mail("sender@example.org")
            s.rcpt("someone@example.com")
            code, text = s.data(b"Subject: spooled again\r\n\r\nbody\r\n")
        self.assertEqual(code, 250, text)


class TestSlowFilterMemory(unittest.TestCase):
    """A filter that takes body chunks without answering, slowly."""

    SESSIONS = 10
    SIZE = 8 * 1024 * 1024
    GROWTH_LIMIT = 24 * 1024 * 1024     # far below 10 x 8 MiB

    @classmethod
    def setUpClass(cls):
        cls.milter = SlowReader(pause=3)
        cls.addClassCleanup(cls.milter.stop)
        cls.inst = start_instance(cls, "slowmilter", "{ inet:127.0.0.1:%d, content_timeout=60s }"
                                  % cls.milter.port)

    def test_unanswered_body_chunks_wait_for_the_filter(self):
        idle = warm_up(self.inst)
        body = make_body(99, self.SIZE)
        messages = [b"Subject: slow %d\r\n\r\n" % i + body for i in range(self.SESSIONS)]
        clients, peak = run_sessions(self, self.inst, messages)
        growth = peak - idle
        self.assertLess(growth, self.GROWTH_LIMIT,
                        "smtpd grew by %.1f MiB with %d sessions of %d MiB to a slow filter"
                        % (growth / 2**20, self.SESSIONS, self.SIZE // 2**20))
        for c in clients:
            self.assertEqual(c.reply[0], 250, c.reply)
            q = self.inst.queued(c.reply[1][-1].split()[-1], timeout=30)
            self.assertEqual(q["content"].split(b"\n\n", 1)[1], body.replace(b"\r\n", b"\n"))
        self.assertEqual(self.milter.bodies, [len(body)] * self.SESSIONS)


if __name__ == "__main__":
    unittest.main()
