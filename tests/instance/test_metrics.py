"""test_metrics.py: whole-instance tests of the metrics collector and its
Prometheus endpoint, on an instance made by `tern init` (which runs both).

Checked where a user looks: the exact values /metrics shows after a
scripted workload (accepted mail relayed to an aiosmtpd sink, refusals for
an unknown local user and for relaying, a deferral), `promtool check
metrics` on that page, the history the collector answers on
private/metrics and that it survives `tern stop` / `tern start`, mail that
flows with the collector missing or frozen (SIGSTOP) and nothing lost, and
the endpoint's answers to bad HTTP requests (wrong method, wrong path,
oversized or slow requests), after which it still serves, and the
collector's refusal of hostile update frames from a process of the tern
uid (unknown metrics, forged labels, its own gauges, overflowing counts,
oversized frames)."""
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sink as sinkmod  # noqa: E402

SERIES_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$")


def http_get(port, request=None, timeout=10):
    """(status, headers text, body) of one request (default GET /metrics)."""
    if request is None:
        request = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, head.decode("latin-1"), body.decode()


def parse_exposition(text):
    """{series: value} of the sample lines (series as written)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SERIES_RE.match(line)
        assert m, "not a sample line: %r" % line
        out[m.group(1)] = float(m.group(2))
    return out


def metrics_port(inst):
    """The port of the metrics endpoint in the instance's master.cf."""
    with open(os.path.join(inst.dir, "master.cf")) as f:
        for line in f:
            f = line.split()
            if len(f) >= 8 and f[1] == "inet" and f[7] == "metrics":
                return int(f[0].rsplit(":", 1)[1])
    raise AssertionError("no metrics inet service in master.cf")


def scrape(inst):
    status, _, body = http_get(metrics_port(inst))
    assert status == 200, "GET /metrics: %d %s" % (status, body)
    return parse_exposition(body), body


def wait_values(inst, expected, timeout=20):
    """Scrape until every series of expected has its value; the last scrape."""
    deadline = time.time() + timeout
    while True:
        values, body = scrape(inst)
        if all(values.get(k) == v for k, v in expected.items()):
            return values, body
        if time.time() > deadline:
            wrong = {k: (values.get(k), v) for k, v in expected.items() if values.get(k) != v}
            raise AssertionError("after %ds, (seen, expected): %r\n%s" % (timeout, wrong, body))
        time.sleep(0.3)


def collector_query(inst, pairs):
    """One request to the collector on private/metrics; the answer's pairs."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(os.path.join(inst.queue_dir, "private", "metrics"))
        assert harness.read_attr_frame(s) == [("protocol", "metrics")]
        s.sendall(harness.encode_attr_frame(pairs))
        return dict(harness.read_attr_frame(s))


def history(inst, metric, labels="", step=60, span=3600):
    now = int(time.time())
    rep = collector_query(inst, [("request", "series"), ("metric", metric), ("labels", labels),
                                 ("value", 0), ("step", step), ("from", now - span), ("to", now)])
    assert rep["status"] == "0", rep
    return [None if p == "-" else int(p) for p in rep["points"].split()]


def message(i, size=200):
    body = ("line %d of the workload\r\n" % i) * (size // 24 + 1)
    return "From: sender@client.test\r\nSubject: workload %d\r\n\r\n%s" % (i, body)


class MetricsInstance(unittest.TestCase):
    """An instance whose smtpd does not trust 127.0.0.1 (mynetworks
    elsewhere), relays relay.test to the sink and defer.test to a closed
    port, and knows only the aliases as local users."""

    def make(self, name, **kw):
        self.sink = sinkmod.Sink()
        self.addCleanup(self.sink.stop)
        inst = harness.Instance(name, **kw)
        self.addCleanup(inst.cleanup)
        closed = harness.free_port()
        transport = os.path.join(inst.dir, "transport")
        with open(transport, "w") as f:
            f.write("defer.test smtp:[127.0.0.1]:%d\n" % closed)
        inst.set_main_cf({
            "mynetworks": "192.0.2.0/24",
            "relay_domains": "relay.test, defer.test",
            "relayhost": "[127.0.0.1]:%d" % self.sink.port,
            "transport_maps": "texthash:%s" % transport,
            "local_recipient_maps": "$alias_maps",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "metrics_http_timeout": "2s",
        })
        return inst


class TestWorkload(MetricsInstance):
    N, M, K = 12, 3, 2

    def test_exact_values_promtool_and_history(self):
        inst = self.make("metrics")
        inst.start()
        sent_bytes = 0
        # N relayed, then one for the closed port (deferred), in sessions of 4 messages
        with inst.smtp() as c:
            for i in range(self.N):
                text = message(i, size=100 + 300 * i)
                c.sendmail("sender@client.test", ["user%d@relay.test" % i], text)
                sent_bytes += len(text.encode())
        with inst.smtp() as c:
            text = message(99)
            c.sendmail("sender@client.test", ["someone@defer.test"], text)
            sent_bytes += len(text.encode())
            for i in range(self.M):
                c.mail("sender@client.test")
                code, reply = c.rcpt("nosuchuser%d@tern.test" % i)
                self.assertEqual(code, 550, reply)
                c.rset()
            for i in range(self.K):
                c.mail("sender@client.test")
                code, reply = c.rcpt("victim%d@elsewhere.test" % i)
                self.assertEqual(code, 554, reply)
                c.rset()
        self.sink.wait(self.N)
        inst.wait_queue("deferred", 1, timeout=30)
        n = float(self.N)
        # the two sessions, and the probe of `tern start` waiting for the port
        connections = len(re.findall(r"smtpd\[\d+\]: connect from", inst.log_text()))
        self.assertEqual(connections, 3)
        expected = {
            "tern_smtpd_connections_total": 3.0,
            "tern_smtpd_messages_accepted_total": n + 1,
            "tern_smtpd_received_bytes_total": float(sent_bytes),
            'tern_smtpd_rejects_total{class="recipient",restriction="reject_unlisted_recipient"}':
                float(self.M),
            'tern_smtpd_rejects_total{class="relay",restriction="reject_unauth_destination"}':
                float(self.K),
            "tern_cleanup_messages_total": n + 1,
            "tern_cleanup_message_size_bytes_count": n + 1,
            'tern_qmgr_deliveries_total{status="sent",transport="relay",domain="relay.test"}': n,
            'tern_qmgr_deliveries_total{status="deferred",transport="smtp",domain="defer.test"}': 1.0,
            "tern_qmgr_delivery_delay_seconds_count": n,
            'tern_qmgr_delivery_delay_seconds_bucket{le="+Inf"}': n,
            'tern_queue_messages{state="deferred"}': 1.0,
            'tern_queue_messages{state="active"}': 0.0,
            'tern_queue_messages{state="incoming"}': 0.0,
            'tern_master_processes{service="metrics/unix"}': 1.0,
            'tern_master_processes{service="qmgr/unix"}': 1.0,
            "tern_metrics_dropped_samples_total": 0.0,
        }
        values, body = wait_values(inst, expected)
        # nothing else was refused or delivered, and no other outcome counted
        rejects = {k: v for k, v in values.items() if k.startswith("tern_smtpd_rejects_total")}
        self.assertEqual(len(rejects), 2, rejects)
        outcomes = {k: v for k, v in values.items() if k.startswith("tern_qmgr_deliveries_total")}
        self.assertEqual(len(outcomes), 2, outcomes)
        # the size histogram holds every queued message
        self.assertLessEqual(values['tern_cleanup_message_size_bytes_bucket{le="1024"}'],
                             values['tern_cleanup_message_size_bytes_bucket{le="4096"}'])
        self.assertEqual(values['tern_cleanup_message_size_bytes_bucket{le="+Inf"}'], n + 1)
        # HELP and TYPE for every metric, each once
        self.assertEqual(body.count("# TYPE tern_smtpd_rejects_total counter\n"), 1)
        self.assertIn("# TYPE tern_qmgr_delivery_delay_seconds histogram\n", body)
        self.assertIn("# TYPE tern_queue_messages gauge\n", body)
        self.promtool_check(body)
        # the collector's history: this minute's point is the total
        pts = history(inst, "smtpd_messages_accepted_total", span=120)
        self.assertEqual(pts[-1], self.N + 1, pts)
        pts = history(inst, "qmgr_deliveries_total", "sent,relay,relay.test", step=3600, span=3600)
        self.assertEqual(pts[-1], self.N, pts)
        rep = collector_query(inst, [("request", "series"), ("metric", "smtpd_rejects_total"),
                                     ("labels", "nosuch,series"), ("value", 0), ("step", 60),
                                     ("from", 0), ("to", 60)])
        self.assertEqual(rep["status"], "1")

        # a restart keeps the values and their history
        inst.stop()
        self.assertTrue(os.path.exists(os.path.join(inst.dir, "data", "metrics.state")))
        inst.start()
        values, _ = wait_values(inst, {"tern_smtpd_messages_accepted_total": n + 1,
                                       "tern_cleanup_messages_total": n + 1}, timeout=10)
        pts = history(inst, "smtpd_messages_accepted_total", span=600)
        self.assertEqual(pts[-1], self.N + 1, pts)
        inst.send_mail(["again@relay.test"], "after the restart")
        self.sink.wait(self.N + 1)
        wait_values(inst, {"tern_smtpd_messages_accepted_total": n + 2,
                           'tern_qmgr_deliveries_total{status="sent",transport="relay",domain="relay.test"}':
                               n + 1})
        self.assertEqual(len(self.sink.handler.messages), self.N + 1)

    def promtool_check(self, body):
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool is not installed (Debian's prometheus package; tools/install-deps)")
        proc = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual((proc.stdout + proc.stderr).strip(), "", "promtool has remarks")


class TestCollectorDown(MetricsInstance):
    def test_mail_flows_without_a_collector(self):
        inst = self.make("metrics-off")
        # the collector and the endpoint taken out of master.cf, as an administrator would
        path = os.path.join(inst.dir, "master.cf")
        with open(path) as f:
            lines = [l for l in f if not (l.split()[7:8] == ["metrics"])]
        with open(path, "w") as f:
            f.writelines(lines)
        inst.start()
        for i in range(5):
            inst.send_mail(["user%d@relay.test" % i], "no collector %d" % i)
        self.sink.wait(5)
        inst.wait_empty()
        self.assertEqual(len(self.sink.handler.messages), 5)
        self.assertNotIn("metrics", [n for _, _, n in inst.processes()])

    def test_mail_flows_while_the_collector_is_frozen(self):
        inst = self.make("metrics-frozen")
        inst.start()
        inst.send_mail(["first@relay.test"], "before")
        self.sink.wait(1)
        wait_values(inst, {"tern_smtpd_messages_accepted_total": 1.0})
        (pid,) = [p for p, _, n in inst.processes() if n == "metrics"
                  and "unix" in harness.proc_cmdline(p)]
        os.kill(pid, signal.SIGSTOP)
        try:
            t0 = time.time()
            for i in range(20):
                inst.send_mail(["user%d@relay.test" % i], "frozen %d" % i)
            self.sink.wait(21, timeout=30)
            inst.wait_empty()
            self.assertLess(time.time() - t0, 30)
            self.assertEqual(len(self.sink.handler.messages), 21)
        finally:
            os.kill(pid, signal.SIGCONT)
        # once it runs again, what was sent while it was frozen arrives
        wait_values(inst, {"tern_smtpd_messages_accepted_total": 21.0,
                           'tern_qmgr_deliveries_total{status="sent",transport="relay",domain="relay.test"}':
                               21.0})


class TestBadHTTP(MetricsInstance):
    def test_bad_requests_get_errors_and_do_no_harm(self):
        inst = self.make("metrics-http")
        inst.start()
        port = metrics_port(inst)
        harness.wait_port(port)
        self.assertEqual(http_get(port, b"POST /metrics HTTP/1.1\r\n\r\n")[0], 405)
        status, head, _ = http_get(port, b"DELETE /metrics HTTP/1.0\r\n\r\n")
        self.assertEqual(status, 405)
        self.assertIn("Allow: GET", head)
        self.assertEqual(http_get(port, b"GET / HTTP/1.1\r\n\r\n")[0], 404)
        self.assertEqual(http_get(port, b"GET /metrics/../etc HTTP/1.1\r\n\r\n")[0], 404)
        self.assertEqual(http_get(port, b"GET /metrics HTTP/2.0\r\n\r\n")[0], 505)
        self.assertEqual(http_get(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\r\n\r\n")[0], 400)
        self.assertEqual(http_get(port, b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n")[0],
                         431)
        # slow clients: the request line never ends; both processes of the
        # endpoint are held until metrics_http_timeout (2s), then answer 408
        slow = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /metr")
            slow.append(s)
        t0 = time.time()
        for s in slow:
            data = s.recv(4096)
            self.assertTrue(data.startswith(b"HTTP/1.1 408 "), data)
            s.close()
        self.assertLess(time.time() - t0, 8)
        # the endpoint still serves, and the daemons did not crash
        status, _, body = http_get(port)
        self.assertEqual(status, 200)
        self.assertIn("tern_smtpd_connections_total", body)
        self.assertNotRegex(inst.log_text(), r"metrics\[\d+\]: (fatal|panic)")


class TestHostileFrames(MetricsInstance):
    def send_frames(self, inst, frames):
        """Send frames on one connection; whether the collector closed it."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2)
            s.connect(os.path.join(inst.queue_dir, "private", "metrics"))
            harness.read_attr_frame(s)
            try:
                for f in frames:
                    s.sendall(f)
                return s.recv(1) == b""
            except (ConnectionResetError, BrokenPipeError):
                return True
            except socket.timeout:
                return False

    def update(self, *samples):
        pairs = [("request", "update")]
        for sample in samples:
            pairs += list(sample)
        return harness.encode_attr_frame(pairs)

    def test_hostile_updates_are_refused_and_counted(self):
        inst = self.make("metrics-hostile")
        inst.start()
        wait_values(inst, {"tern_smtpd_messages_accepted_total": 0.0})
        good = [("metric", "smtpd_messages_accepted_total"), ("labels", ""), ("value", 5)]
        hostile = [
            [("metric", "no_such_metric_total"), ("labels", ""), ("value", 1)],
            [("metric", "smtpd_rejects_total"), ("labels", 'x"} 1\ntern_fake 1'), ("value", 1)],
            [("metric", "smtpd_rejects_total"), ("labels", "a,b,c"), ("value", 1)],
            [("metric", "smtpd_rejects_total"), ("labels", "a," + "b" * 65), ("value", 1)],
            [("metric", "smtpd_messages_accepted_total"), ("labels", ""), ("value", -1)],
            [("metric", "smtpd_messages_accepted_total"), ("labels", ""), ("value", 1 << 60)],
            [("metric", "cleanup_message_size_bytes"), ("labels", ""), ("value", 2), ("sum", 1),
             ("buckets", "1 0 0 0 0 0 0 0 0 0")],
            good + [("extra", "x")],
        ]
        for sample in hostile:
            self.assertTrue(self.send_frames(inst, [self.update(sample)]), sample)
        # a frame that announces more than the collector takes
        self.assertTrue(self.send_frames(inst, [struct.pack(">I", 64 * 1024 * 1024) + b"x" * 1024]))
        # (a malformed frame is refused whole: the good sample before the
        # fault in the last one was not taken either)
        # the collector's own figures are not taken from anyone, the rest of a frame is
        own = [("metric", "queue_messages"), ("labels", "deferred"), ("value", 999)]
        self.assertFalse(self.send_frames(inst, [self.update(good, own)]))
        # counts that would pass 2^52 in total are refused whole
        big = [("metric", "smtpd_received_bytes_total"), ("labels", ""), ("value", 1 << 52)]
        self.assertFalse(self.send_frames(inst, [self.update(big), self.update(big)]))
        values, body = wait_values(inst, {"tern_smtpd_messages_accepted_total": 5.0,
                                          'tern_queue_messages{state="deferred"}': 0.0,
                                          "tern_smtpd_received_bytes_total": float(1 << 52),
                                          "tern_metrics_dropped_samples_total": 10.0})
        self.assertNotIn("tern_fake", body)
        self.assertNotIn("no_such_metric", body)
        # mail still flows and is counted
        inst.send_mail(["user@relay.test"], "after the attack")
        self.sink.wait(1)
        wait_values(inst, {"tern_smtpd_messages_accepted_total": 6.0})
        self.promtool_check(body)

    promtool_check = TestWorkload.promtool_check


if __name__ == "__main__":
    unittest.main()
