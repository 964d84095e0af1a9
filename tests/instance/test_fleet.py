"""test_fleet.py: two instances as two MX hosts of one fleet, sharing
postscreen's temporary allowlist and the address verification cache in
redis (redis:FILE, with AUTH and SELECT) and in memcached (memcache:FILE):
first postscreen's in redis and verify's in memcached, then the other way
round. The test starts Debian's redis-server and memcached itself, on
loopback, with their own configuration in a temporary directory, and
stops them by PID.

- a client that passes postscreen on the first host is PASS OLD on the
  second, without its greeting wait;
- a recipient verified through the first host (one probe to the internal
  server) is accepted by the second from the shared cache, without a
  probe of its own;
- the server of postscreen's cache stopped: postscreen screens the next client as new (the cache
  misses), its mail is delivered, and the log says that the cache server
  does not answer, once, not once per lookup; the server back, the hosts
  share through it again.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
import sink
from test_verify import InternalServer

GREET_WAIT = 1
PASS_SERVICES = ["{port} inet n - n - 1 postscreen", "smtpd pass - - n - - smtpd"]
REDIS_PASSWORD = "fleet-secret"


class CacheServer:
    """A server process of this test, on a free loopback port."""

    def __init__(self, argv, port, workdir):
        self.port = port
        self.log = open(os.path.join(workdir, "server.log"), "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=workdir)
        try:
            harness.wait_port(port, 10)
        except AssertionError:
            self.stop()
            raise

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def start_redis(workdir, port=None):
    port = port or harness.free_port()
    conf = os.path.join(workdir, "redis.conf")
    with open(conf, "w") as f:
        f.write("bind 127.0.0.1\nport %d\nprotected-mode yes\ndaemonize no\n"
                "save \"\"\nappendonly no\ndir %s\nrequirepass %s\ndatabases 4\n"
                "unixsocket \"\"\n" % (port, workdir, REDIS_PASSWORD))
    return CacheServer(["redis-server", conf], port, workdir)


def start_memcached(workdir, port=None):
    port = port or harness.free_port()
    argv = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "16"]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]
    return CacheServer(argv, port, workdir)


def session(inst, source, timeout=15):
    return harness.RawSession(inst.port, greet=False, timeout=timeout, source=source)


def deliver(inst, source, subject):
    """A whole message from source through postscreen; the last reply."""
    with session(inst, source) as s:
        code, lines = s.read_reply()
        assert code == 220, lines
        for cmd in (b"EHLO client.test\r\n", b"MAIL FROM:<sender@client.test>\r\n",
                    b"RCPT TO:<user@example.net>\r\n", b"DATA\r\n"):
            s.send(cmd)
            code, lines = s.read_reply()
            if code >= 400:
                return code, lines
        s.send(("Subject: %s\r\n\r\nhello\r\n.\r\n" % subject).encode())
        code, lines = s.read_reply()
        s.send(b"QUIT\r\n")
        return code, lines


class FleetBase:
    psc_type = "redis"          # the table type of postscreen_cache_map
    verify_type = "memcache"    # and of address_verify_map

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-fleet-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        for sub in ("redis", "memcached"):
            os.mkdir(os.path.join(cls.tmp, sub))
        if os.geteuid() == 0:
            shutil.chown(os.path.join(cls.tmp, "memcached"), "nobody")
        cls.redis = start_redis(os.path.join(cls.tmp, "redis"))
        cls.memcached = start_memcached(os.path.join(cls.tmp, "memcached"))
        cls.tables = {}
        for use, kind in (("psc", cls.psc_type), ("verify", cls.verify_type)):
            path = os.path.join(cls.tmp, "%s-%s.cf" % (kind, use))
            with open(path, "w") as f:
                if kind == "redis":
                    f.write("# shared by the fleet\nredis = inet:127.0.0.1:%d\npassword = %s\n"
                            "database = 2\nkey_format = %s:%%s\ntimeout = 2\nretry_pause = 1\n"
                            % (cls.redis.port, REDIS_PASSWORD, use))
                else:
                    f.write("memcache = inet:127.0.0.1:%d\nkey_format = %s:%%s\nttl = 600\n"
                            "timeout = 2\nretry_pause = 1\n" % (cls.memcached.port, use))
            cls.tables[use] = "%s:%s" % (kind, path)
        cls.internal = InternalServer()
        cls.sink = sink.Sink()
        cls.hosts = []
        for n in (1, 2):
            inst = harness.Instance(name="fleet%d" % n)
            transport = os.path.join(inst.dir, "transport")
            with open(transport, "w") as f:
                f.write("example.com smtp:[127.0.0.1]:%d\n" % cls.internal.port)
            inst.set_main_cf({
                "mynetworks": "127.0.0.250/32", "unverified_recipient_reject_code": "550",
                "relay_domains": "example.net example.com",
                "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
                "transport_maps": "texthash:" + transport,
                "postscreen_greet_wait": "%ds" % GREET_WAIT,
                "postscreen_greet_action": "enforce",
                "postscreen_cache_map": cls.tables["psc"],
                "address_verify_map": cls.tables["verify"],
                "address_verify_poll_count": "6",
                "address_verify_poll_delay": "1s",
                "smtp_connect_timeout": "5s",
            })
            inst.verify_port = harness.free_port()
            inst.set_master_cf([l.format(port="127.0.0.1:%d" % inst.port) for l in PASS_SERVICES]
                               + ["127.0.0.1:%d inet n - n - - smtpd -o smtpd_recipient_"
                                  "restrictions=reject_unauth_destination,reject_unverified_"
                                  "recipient" % inst.verify_port])
            cls.hosts.append(inst)
        try:
            for inst in cls.hosts:
                inst.start()
                inst.wait_port(inst.verify_port)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for inst in cls.hosts:
            inst.cleanup()
        cls.internal.stop()
        cls.sink.stop()
        cls.redis.stop()
        cls.memcached.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def shared_entry(self, key):
        """The value the cache server of postscreen holds under key, and its TTL."""
        if self.psc_type == "redis":
            return self.redis_cli("GET", key), int(self.redis_cli("TTL", key))
        with socket.create_connection(("127.0.0.1", self.memcached.port), timeout=5) as c:
            c.sendall(b"get %s\r\n" % key.encode())
            data = b""
            while not data.endswith(b"END\r\n") and len(data) < 4096:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
        lines = data.decode().split("\r\n")
        return (lines[1] if lines[0].startswith("VALUE ") else ""), 1

    def redis_cli(self, *args):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis.port),
                            "--no-auth-warning", "-a", REDIS_PASSWORD, "-n", "2"] + list(args),
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip()

    def rcpt(self, inst, address):
        with harness.RawSession(inst.verify_port, timeout=30) as s:
            s.send(b"EHLO client.test\r\n")
            s.read_reply()
            s.send(b"MAIL FROM:<client@client.test>\r\n")
            s.read_reply()
            s.send(("RCPT TO:<%s>\r\n" % address).encode())
            code, lines = s.read_reply()
            s.send(b"QUIT\r\n")
            return code, " ".join(lines)

    def test_1_postscreen_pass_is_shared(self):
        one, two = self.hosts
        code, lines = deliver(one, self.source, "screened on one")
        self.assertEqual(code, 250, lines)
        one.wait_log(r"PASS NEW \[%s\]:" % re.escape(self.source))
        # the entry is in redis, in the database and under the key the file names
        entry, ttl = self.shared_entry("psc:" + self.source)
        self.assertRegex(entry, r"^\d+;\d+;\d+;\d+;\d+$")
        self.assertGreater(ttl, 0)
        t0 = time.time()
        with session(two, self.source) as s:
            code, lines = s.read_reply()
            self.assertEqual(code, 220)
            self.assertEqual(len(lines), 1, lines)     # smtpd's greeting: no greet wait
        self.assertLess(time.time() - t0, GREET_WAIT)
        two.wait_log(r"PASS OLD \[%s\]:" % re.escape(self.source))
        self.assertNotRegex(two.log_text(), r"PASS NEW \[%s\]:" % re.escape(self.source))

    def test_2_verification_is_shared(self):
        one, two = self.hosts
        address = self.known
        code, text = 450, ""
        for _ in range(20):
            code, text = self.rcpt(one, address)
            if not (code == 450 and "verification in progress" in text):
                break
            time.sleep(0.5)
        self.assertEqual(code, 250, text)
        self.assertEqual(len(self.internal.probes_for(address)), 1)
        code, text = self.rcpt(two, address)
        self.assertEqual(code, 250, text)
        time.sleep(1)
        self.assertEqual(len(self.internal.probes_for(address)), 1)
        self.assertRegex(one.log_text(), r"probe for <%s>" % re.escape(address))
        self.assertNotRegex(two.log_text(), r"probe for <%s>" % re.escape(address))
        # an unknown address: refused on one after its probe, on two from the cache
        bad = "nobody-%s@example.com" % self.verify_type
        for _ in range(20):
            code, text = self.rcpt(one, bad)
            if not (code == 450 and "verification in progress" in text):
                break
            time.sleep(0.5)
        self.assertEqual(code // 100, 5, text)
        code, text = self.rcpt(two, bad)
        self.assertEqual(code // 100, 5, text)
        self.assertIn("User unknown in internal directory", text)
        self.assertNotRegex(two.log_text(), r"probe for <%s>" % re.escape(bad))

    def test_3_cache_server_down_mail_still_flows(self):
        one, two = self.hosts
        # the server goes away while postscreen holds a connection to it
        server = self.redis if self.psc_type == "redis" else self.memcached
        server.stop()
        for n, source in enumerate(self.down_sources):
            code, lines = deliver(one, source, "%s down %d" % (self.psc_type, n))
            self.assertEqual(code, 250, lines)
            one.wait_log(r"PASS NEW \[%s\]:" % re.escape(source))
        tag = ("%s down" % self.psc_type).encode()
        deadline = time.time() + 20
        while time.time() < deadline:
            if sum(tag in m[2] for m in self.sink.handler.messages) >= 2:
                break
            time.sleep(0.2)
        self.assertEqual(sum(tag in m[2] for m in self.sink.handler.messages), 2)
        warnings = re.findall(r"postscreen\[\d+\]: warning: %s: server inet:127\.0\.0\.1:"
                              r"%d: .*the cache misses until it answers" %
                              (re.escape(self.tables["psc"]), server.port), one.log_text())
        self.assertEqual(len(warnings), 1, one.log_tail())
        self.assertEqual(harness.crash_reports(one.log_text()), [])
        # the server back on its port: after retry_pause (1 s) the hosts
        # use it again, a pass on one is PASS OLD on two
        start = start_redis if self.psc_type == "redis" else start_memcached
        restarted = start(os.path.join(self.tmp, "redis" if self.psc_type == "redis"
                                       else "memcached"), server.port)
        if self.psc_type == "redis":
            self.redis = restarted
        else:
            self.memcached = restarted
        type(self).redis, type(self).memcached = self.redis, self.memcached
        time.sleep(1.5)
        source = self.down_sources[0][:-1] + "9"
        code, lines = deliver(one, source, "back")
        self.assertEqual(code, 250, lines)
        one.wait_log(r"PASS NEW \[%s\]:" % re.escape(source))
        with session(two, source) as s:
            code, lines = s.read_reply()
            self.assertEqual((code, len(lines)), (220, 1), lines)
        two.wait_log(r"PASS OLD \[%s\]:" % re.escape(source))


class RedisScreeningMemcacheVerify(FleetBase, unittest.TestCase):
    source = "127.0.0.21"
    down_sources = ("127.0.0.22", "127.0.0.23")
    known = "alice@example.com"


class MemcacheScreeningRedisVerify(FleetBase, unittest.TestCase):
    psc_type = "memcache"
    verify_type = "redis"
    source = "127.0.0.31"
    down_sources = ("127.0.0.32", "127.0.0.33")
    known = "bob@example.com"


class HostileServer:
    """A "redis server" on loopback that answers every request with reply
    (bytes), or never answers when reply is None; it reads what it gets."""

    def __init__(self, reply):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.conns = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.sock.settimeout(0.2)
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn):
        conn.settimeout(0.5)
        for _ in range(600):
            if self.stopping:
                break
            try:
                data = conn.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            if self.reply is not None:
                try:
                    conn.sendall(self.reply)
                except OSError:
                    break

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()


class HostileCacheServer(unittest.TestCase):
    """postscreen_cache_map on a server that answers garbage, an oversized
    value, an array, nothing at all, or refuses the password: each client
    is screened as new and its mail delivered; the warning names what went
    wrong; nothing crashes."""

    CASES = [
        ("garbage", b"HTTP/1.0 200 OK\r\n\r\n", "malformed or oversized reply"),
        ("oversized", b"$999999\r\n" + b"x" * 8000, "malformed or oversized reply"),
        ("array", b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", "malformed or oversized reply"),
        ("silent", None, "Connection timed out"),
        ("wrongpass", b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
         "AUTH: unexpected reply: WRONGPASS invalid"),
    ]

    @classmethod
    def setUpClass(cls):
        cls.sink = sink.Sink()
        cls.servers, cls.inst = [], None
        try:
            for _name, reply, _why in cls.CASES:
                cls.servers.append(HostileServer(reply))
            cls.inst = harness.Instance(name="fleet-hostile")
            cls.tables = []
            for (name, _reply, _why), server in zip(cls.CASES, cls.servers):
                path = os.path.join(cls.inst.dir, "redis-%s.cf" % name)
                with open(path, "w") as f:
                    f.write("redis = 127.0.0.1:%d\ntimeout = 1\nretry_pause = 60\n" % server.port)
                    if name == "wrongpass":
                        f.write("password = not-the-one\n")
                cls.tables.append("redis:" + path)
            cls.inst.set_main_cf({
                "mynetworks": "127.0.0.250/32", "relay_domains": "example.net",
                "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
                "postscreen_greet_wait": "%ds" % GREET_WAIT,
                "postscreen_greet_action": "enforce",
            })
            cls.ports = [harness.free_port() for _ in cls.CASES]
            services = ["127.0.0.1:%d inet n - n - 1 postscreen -o postscreen_cache_map=%s"
                        % (port, table) for port, table in zip(cls.ports, cls.tables)]
            cls.inst.set_master_cf(services + ["smtpd pass - - n - - smtpd"])
            cls.inst.start(wait_port=False)
            for port in cls.ports:
                cls.inst.wait_port(port)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.inst:
            cls.inst.cleanup()
        for server in cls.servers:
            server.stop()
        cls.sink.stop()

    def test_bad_server_is_a_cache_miss(self):
        for i, ((name, _reply, why), port) in enumerate(zip(self.CASES, self.ports)):
            source = "127.0.0.%d" % (41 + i)
            t0 = time.time()
            with harness.RawSession(port, greet=False, timeout=30, source=source) as s:
                code, lines = s.read_reply()
                self.assertEqual(code, 220, (name, lines))
                for cmd in (b"EHLO client.test\r\n", b"MAIL FROM:<sender@client.test>\r\n",
                            b"RCPT TO:<user@example.net>\r\n", b"DATA\r\n"):
                    s.send(cmd)
                    code, lines = s.read_reply()
                s.send(("Subject: hostile %s\r\n\r\nhello\r\n.\r\n" % name).encode())
                code, lines = s.read_reply()
                self.assertEqual(code, 250, (name, lines))
            # a lookup and at most one update wait for the timeout, no more
            self.assertLess(time.time() - t0, 10, name)
            self.inst.wait_log(r"PASS NEW \[%s\]:" % re.escape(source))
            self.inst.wait_log(r"postscreen\[\d+\]: warning: %s: server 127\.0\.0\.1:%d: "
                               r".*%s" % (re.escape(self.tables[i]), self.servers[i].port,
                                          re.escape(why)))
        self.sink.wait(len(self.CASES))
        self.assertEqual(harness.crash_reports(self.inst.log_text()), [])


if __name__ == "__main__":
    unittest.main()
