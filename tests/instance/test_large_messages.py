"""test_large_messages.py: large messages stream through the whole path.

A whole instance relays ten 25 MB messages, sent at once in ten sessions,
to a sink on 127.0.0.1 (relayhost), with message_size_limit raised above
the message size. The sink is a small SMTP server of this module that
hashes each body as it arrives and keeps nothing else, so that the test
itself stays small. The checks:

- every byte arrives: the SHA-256 of each body at the sink equals the one
  the client computed while sending it (the bodies have lines that start
  with a dot, long lines and 8-bit bytes, so that dot stuffing on both
  connections and line ends are exercised);
- no process of the instance holds a message in memory: the resident set
  (VmRSS) of every process, sampled from /proc during the whole run, stays
  below 64 MiB, far below the 25 MB of one message and the 250 MB of all
  of them; the peak of the whole instance's PSS is printed too (it is not
  asserted: it counts the processes and their libraries, much larger with
  AddressSanitizer, rather than message content).
"""
import hashlib
import os
import socket
import socketserver
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SESSIONS = 10
SIZE = 25 * 1000 * 1000
BLOCK_LINES = 12000         # one block of varied lines, repeated to make a body
RSS_LIMIT = 64 * 1024 * 1024
RUN_TIMEOUT = 100           # seconds for all messages to reach the sink


def make_block():
    """About 1 MB of body lines (without their CR LF): lines of many
    lengths, some starting with a dot (stuffed on the wire), some with
    8-bit bytes, one of 998 bytes."""
    lines, seed = [], 4242
    for i in range(BLOCK_LINES):
        seed = (seed * 1103515245 + 12345) & 0x7fffffff
        n = 1 + seed % 150
        line = bytes((0x21 + (seed >> (k % 16)) % 90) for k in range(n))
        if i % 17 == 0:
            line = b"." + line
        if i % 101 == 0:
            line = b"caf\xc3\xa9 " + line
        if i % 5003 == 0:
            line = b"x" * 998
        if i % 911 == 0:
            line = b"."
        lines.append(line)
    return lines


def wire(lines):
    """Lines as DATA bytes: CR LF ends, a leading dot doubled."""
    return b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in lines)


class HashingSink(socketserver.ThreadingTCPServer):
    """An SMTP server on 127.0.0.1 that keeps, per message, only the
    SHA-256 and byte count of the body (after the first empty line),
    dot stuffing removed, each line counted with CR LF."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), SinkHandler)
        self.lock = threading.Lock()
        self.bodies = {}         # Subject -> (sha256 hex, bytes)
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    @property
    def port(self):
        return self.server_address[1]

    def stop(self):
        self.shutdown()
        self.server_close()


class SinkHandler(socketserver.StreamRequestHandler):
    def reply(self, text):
        self.wfile.write(text.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self):
        self.request.settimeout(60)
        self.reply("220 sink.test ESMTP")
        for _ in range(1000):
            line = self.rfile.readline(4096)
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-sink.test\r\n250-8BITMIME\r\n250-SIZE 100000000\r\n"
                                 b"250 PIPELINING\r\n")
                self.wfile.flush()
            elif verb == b"DATA":
                self.reply("354 go ahead")
                self.read_data()
                self.reply("250 2.0.0 Ok: hashed")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 Ok")

    def read_data(self):
        digest, count, subject, in_body = hashlib.sha256(), 0, None, False
        for _ in range(10 * SIZE):
            line = self.rfile.readline(2000)
            if not line or line == b".\r\n":
                break
            if line.startswith(b"."):
                line = line[1:]
            if in_body:
                digest.update(line)
                count += len(line)
            elif line == b"\r\n":
                in_body = True
            elif line.lower().startswith(b"subject:"):
                subject = line[8:].strip().decode("ascii", "replace")
        with self.server.lock:
            self.server.bodies[subject] = (digest.hexdigest(), count)


def send_message(port, index, block, plain, results):
    """One session: the message of `index` (a unique first line, then the
    block repeated to SIZE bytes), streamed; block is the wire form of the
    lines in plain (the body's bytes); results[index] gets the body's
    SHA-256 and size as sent, or the error."""
    try:
        digest, count = hashlib.sha256(), 0
        head = ("From: <sender@client.test>\r\nTo: <r%d@remote.test>\r\n"
                "Subject: large-%d\r\n\r\n" % (index, index)).encode()
        first = ("message %d of the large message test\r\n" % index).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            f = s.makefile("rb")

            def expect(code):
                for _ in range(50):
                    line = f.readline(4096)
                    if not line.startswith(code):
                        raise AssertionError("expected %s, got %r" % (code, line))
                    if line[3:4] != b"-":
                        return
            expect(b"220")
            s.sendall(b"EHLO client.test\r\n")
            expect(b"250")
            s.sendall(b"MAIL FROM:<sender@client.test> SIZE=%d\r\n" % (SIZE + 200))
            expect(b"250")
            s.sendall(b"RCPT TO:<r%d@remote.test>\r\n" % index)
            expect(b"250")
            s.sendall(b"DATA\r\n")
            expect(b"354")
            s.sendall(head + first)
            digest.update(first)
            count += len(first)
            while count + len(plain) <= SIZE:
                s.sendall(block)
                digest.update(plain)
                count += len(plain)
            s.sendall(b".\r\n")
            expect(b"250")
            s.sendall(b"QUIT\r\n")
        results[index] = (digest.hexdigest(), count)
    except Exception as e:        # reported by the test
        results[index] = e


def process_memory(pid):
    """(VmRSS, Pss) of pid in bytes; zeros when it is gone."""
    rss = pss = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


class Sampler(threading.Thread):
    """Every 100 ms: each process's RSS (peak kept per pid) and the whole
    instance's summed PSS (peak kept)."""

    def __init__(self, inst):
        super().__init__(daemon=True)
        self.inst = inst
        self.peak_rss = {}        # pid -> (bytes, name)
        self.peak_pss = 0
        self.samples = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            total = 0
            for pid, _, name in self.inst.processes():
                rss, pss = process_memory(pid)
                total += pss
                if rss > self.peak_rss.get(pid, (0, ""))[0]:
                    self.peak_rss[pid] = (rss, name)
            self.peak_pss = max(self.peak_pss, total)
            self.samples += 1
            self.halt.wait(0.1)

    def stop(self):
        self.halt.set()
        self.join(10)


class TestLargeMessages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sink = HashingSink()
        cls.addClassCleanup(cls.sink.stop)
        cls.inst = harness.Instance("large")
        cls.addClassCleanup(cls.inst.cleanup)
        cls.inst.set_main_cf({
            "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
            "mynetworks": "127.0.0.0/8", "mydestination": "", "relay_domains": "",
            "message_size_limit": str(2 * SIZE)})
        # Under AddressSanitizer freed memory waits in a quarantine (256 MiB
        # by default) and would count as resident: keep it small so the
        # figure is about Tern's memory.
        asan = os.environ.get("ASAN_OPTIONS")
        if asan is not None:
            os.environ["ASAN_OPTIONS"] = asan + ":quarantine_size_mb=4"
        try:
            cls.inst.start()
        finally:
            if asan is not None:
                os.environ["ASAN_OPTIONS"] = asan

    def test_concurrent_large_messages_stream(self):
        lines = make_block()
        block, plain = wire(lines), b"".join(l + b"\r\n" for l in lines)
        results = [None] * SESSIONS
        sampler = Sampler(self.inst)
        sampler.start()
        started = time.time()
        try:
            clients = [threading.Thread(target=send_message, args=(self.inst.port, i, block, plain, results),
                                        daemon=True) for i in range(SESSIONS)]
            for c in clients:
                c.start()
            for c in clients:
                c.join(max(1, RUN_TIMEOUT - (time.time() - started)))
            deadline = started + RUN_TIMEOUT
            while time.time() < deadline and len(self.sink.bodies) < SESSIONS:
                time.sleep(0.2)
        finally:
            sampler.stop()
        elapsed = time.time() - started
        for i, r in enumerate(results):
            self.assertIsInstance(r, tuple, "message %d: %r\n%s" % (i, r, self.inst.log_tail()))
        self.assertEqual(len(self.sink.bodies), SESSIONS, self.inst.log_tail())
        for i, sent in enumerate(results):
            self.assertEqual(self.sink.bodies.get("large-%d" % i), sent, "message %d changed" % i)
        self.assertGreater(sampler.samples, 5)
        worst_pid, (worst, name) = max(sampler.peak_rss.items(), key=lambda kv: kv[1][0])
        print("\n  %d x %d MB in %.1f s; peak PSS of the instance %.1f MiB; largest RSS %.1f MiB (%s)"
              % (SESSIONS, SIZE // 1000000, elapsed, sampler.peak_pss / 2**20, worst / 2**20, name),
              file=sys.stderr)
        for pid, (rss, pname) in sampler.peak_rss.items():
            self.assertLess(rss, RSS_LIMIT, "%s[%d] reached %.1f MiB resident"
                            % (pname, pid, rss / 2**20))


if __name__ == "__main__":
    unittest.main()
