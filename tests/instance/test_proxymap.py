"""test_proxymap.py: proxy: tables and the proxymap service, in a running
instance against a real PostgreSQL that the test starts on loopback
(dbservers.py). virtual_alias_maps and a check_recipient_access table are
proxy:pgsql: tables; many SMTP sessions at once, spread over many smtpd
processes (chrooted when the test runs as root, so they reach
private/proxymap inside the queue directory), are all answered right while
PostgreSQL sees one connection, proxymap's. A client of private/proxymap
that asks for a table proxy_read_maps does not list (as a process of the
tern uid could) is refused; proxymap stopped, hung or restarted, and
PostgreSQL stopped, make recipients wait with 4xx, nothing is lost or
bounced, and everything works again once they are back. `tern map query
proxy:...` asks the running service, and `tern check` names a proxy: table
that proxy_read_maps leaves out. cidr:, texthash:, pcre:, hash: and
sqlite: tables work behind proxy: wherever main.cf takes a table, and an
ldap: table behind proxy: leaves the smtpd processes without a connection
to slapd (a real one, started by the test)."""
import os
import shutil
import signal
import socket
import sqlite3
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dbservers  # noqa: E402
import harness  # noqa: E402
import sink  # noqa: E402

SKIP = dbservers.available_postgres()

PG_SETUP = """
CREATE TABLE virtual (address text PRIMARY KEY, goto text);
INSERT INTO virtual SELECT 'user' || n || '@example.com', 'user' || n || '@dest.test'
  FROM generate_series(1, 50) AS n;
INSERT INTO virtual VALUES ('alice@example.com', 'alice@dest.test');
CREATE TABLE access (key text PRIMARY KEY, action text);
INSERT INTO access VALUES ('blocked@example.com', 'REJECT blocked by the database');
GRANT SELECT ON virtual, access TO mail;
"""

TABLES = 2              # pgsql tables behind proxy: (virtual, access): one connection each
SESSIONS = 24           # SMTP sessions at once
PER_PROCESS = 2         # sessions one smtpd process takes: 12 processes


def tcp_connections_to(pid, port):
    """How many TCP connections process pid holds to port on 127.0.0.1
    (its socket descriptors matched with /proc/net/tcp)."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port and fields[9] in inodes:
                count += 1
    return count


@unittest.skipIf(SKIP, SKIP or "")
class TestProxymap(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-proxymap-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.pg = dbservers.Postgres()
        try:
            cls.pg.sql("CREATE ROLE mail LOGIN PASSWORD 'mail-pw'")
            cls.pg.sql("CREATE DATABASE mail OWNER admin")
            cls.pg.sql(PG_SETUP, db="mail")
        except Exception:
            cls.pg.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.pg.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----
    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    def pg_file(self, name, query):
        # retry_interval: a server that failed is left alone this long
        return self.write(name, "hosts = inet:127.0.0.1:%d\nuser = mail\npassword = mail-pw\n"
                          "dbname = mail\nquery = %s\nretry_interval = 1\n"
                          % (self.pg.port, query))

    def pg_count(self):
        r = self.pg.sql("SELECT 'n=' || count(*) FROM pg_stat_activity WHERE usename = 'mail'")
        for word in r.stdout.split():
            if word.startswith("n="):
                return int(word[2:])
        raise AssertionError("no count in %r" % r.stdout)

    def make_instance(self, name, sink_port, extra=None):
        self.virtual = "proxy:pgsql:" + self.pg_file(
            "virtual.cf", "SELECT goto FROM virtual WHERE address = '%s'")
        self.access = "proxy:pgsql:" + self.pg_file(
            "access.cf", "SELECT action FROM access WHERE key = '%s'")
        transport = self.write("transport", "dest.test smtp:[127.0.0.1]:%d\n" % sink_port)
        main_cf = {
            "virtual_alias_domains": "example.com",
            "virtual_alias_maps": self.virtual,
            "relay_domains": "dest.test",
            "transport_maps": "texthash:" + transport,
            "smtpd_recipient_restrictions": "check_recipient_access %s, "
                                            "reject_unlisted_recipient" % self.access,
            "smtpd_client_limit_per_process": str(PER_PROCESS),
            "proxy_lookup_timeout": "3s",
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        }
        main_cf.update(extra or {})
        inst = harness.Instance(name, main_cf=main_cf, chroot=os.geteuid() == 0)
        self.addCleanup(inst.cleanup)
        return inst

    def proxymap_pids(self, inst):
        return [p for p, _, n in inst.processes() if n == "proxymap"]

    def assertOnlyProxymapConnects(self, inst):
        """PostgreSQL has one connection per table, and proxymap holds them."""
        self.assertEqual(self.pg_count(), TABLES)
        pids = self.proxymap_pids(inst)
        self.assertEqual(len(pids), 1)
        self.assertEqual(tcp_connections_to(pids[0], self.pg.port), TABLES)

    # ---- one connection for all ----
    def test_many_sessions_share_one_connection(self):
        out = sink.Sink()
        self.addCleanup(out.stop)
        inst = self.make_instance("proxymap", out.port)
        inst.start()
        self.assertEqual(inst.tern("check", check=False).returncode, 0,
                         inst.tern("check", check=False).stdout)
        results, errors = {}, []
        smtpds = []

        def count_smtpds():
            # run by the barrier while every session is open at once
            smtpds.append(len([1 for _, _, n in inst.processes() if n == "smtpd"]))

        ready = threading.Barrier(SESSIONS, action=count_smtpds, timeout=60)

        def session(n):
            try:
                with inst.raw_session(timeout=30) as s:
                    s.send(b"EHLO client%d.test\r\n" % n)
                    s.read_reply()
                    ready.wait()        # every session open at once
                    s.send(b"MAIL FROM:<sender@client.test>\r\n")
                    if s.read_reply()[0] != 250:
                        raise AssertionError("MAIL refused")
                    codes = []
                    for addr in ("user%d@example.com" % (n + 1), "nobody%d@example.com" % n,
                                 "blocked@example.com", "user%d@example.com" % (n + 25)):
                        s.send(("RCPT TO:<%s>\r\n" % addr).encode())
                        codes.append(s.read_reply()[0])
                    ready.wait()        # every session still open
                    s.send(b"QUIT\r\n")
                    results[n] = codes
            except Exception as e:       # reported by the main thread
                errors.append("session %d: %r" % (n, e))
                ready.abort()

        threads = [threading.Thread(target=session, args=(n,)) for n in range(SESSIONS)]
        for t in threads:
            t.start()
        # while the sessions are open: many smtpd processes, one proxymap
        for t in threads:
            t.join(timeout=60)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), SESSIONS)
        for n, codes in results.items():
            self.assertEqual(codes, [250, 550, 554, 250], "session %d" % n)
        self.assertGreaterEqual(max(smtpds), SESSIONS // PER_PROCESS // 2)
        self.assertOnlyProxymapConnects(inst)

        # cleanup rewrites through the same service: delivered to the target
        inst.send_mail(["alice@example.com", "user7@example.com"], "through proxymap")
        msgs = out.wait(1, timeout=30)
        self.assertEqual(sorted(msgs[0][1]), ["alice@dest.test", "user7@dest.test"])
        self.assertOnlyProxymapConnects(inst)

        # `tern map query` asks the running service, as postmap -q does
        r = inst.tern("map", "query", self.virtual, "user3@example.com", check=False)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "user3@dest.test"), r.stderr)
        r = inst.tern("map", "query", self.virtual, "nobody@example.com", check=False)
        self.assertEqual((r.returncode, r.stdout), (1, ""), r.stderr)
        r = inst.tern("map", "query", "proxy:hash:/etc/shadow", "root", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("proxy_read_maps", r.stderr)
        self.assertOnlyProxymapConnects(inst)
        log = inst.log_text()
        self.assertNotRegex(log, r"warning: .*pgsql|status=bounced|signal|SIGSYS")

        # stopped, `tern map query proxy:...` says what to do instead
        inst.stop()
        r = inst.tern("check", check=False)
        self.assertNotIn("proxymap", r.stdout)
        r = inst.tern("map", "query", self.virtual, "user3@example.com", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not running", r.stderr)

    # ---- what a process of the tern uid may ask ----
    def attacker_ask(self, inst, table, key=b"root"):
        """Ask private/proxymap directly, as any process of the tern uid
        could: (status, value), or None when the service closed."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(20)
            s.connect(os.path.join(inst.queue_dir, "private", "proxymap"))
            self.assertEqual(harness.read_attr_frame(s), [("protocol", "proxymap")])
            s.sendall(harness.encode_attr_frame(
                [("request", "lookup"), ("table", table), ("key", key)]))
            try:
                reply = dict(harness.read_attr_frame(s))
            except EOFError:
                return None
            return int(reply["status"]), reply["value"]

    def test_tables_not_listed_are_refused(self):
        out = sink.Sink()
        self.addCleanup(out.stop)
        inst = self.make_instance("proxymap-deny", out.port)
        inst.start()
        self.assertEqual(inst.rcpt_reply("alice@example.com")[0], 250)
        table = self.virtual[len("proxy:"):]
        self.assertEqual(self.attacker_ask(inst, table, b"alice@example.com"),
                         (0, "alice@dest.test"))
        self.assertEqual(self.attacker_ask(inst, table, b"x' OR '1'='1"), (1, ""))
        for bad in ("hash:/etc/shadow", "texthash:/etc/shadow", "unix:passwd.byname",
                    "pgsql:/etc/shadow", "sqlite:/etc/shadow", "proxy:" + table,
                    "proxy:proxy:" + table, "texthash:" + table.split(":", 1)[1]):
            self.assertEqual(self.attacker_ask(inst, bad), (3, ""), bad)
        inst.wait_log(r"proxymap\[\d+\]: warning: request for table hash:/etc/shadow refused: "
                      r"it is not in proxy_read_maps")
        inst.wait_log(r"request for nested table proxy:")
        # malformed requests: answered "bad request", then the connection closes
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(20)
            s.connect(os.path.join(inst.queue_dir, "private", "proxymap"))
            harness.read_attr_frame(s)
            s.sendall(harness.encode_attr_frame([("request", "update"), ("table", table),
                                                 ("key", "k")]))
            self.assertEqual(dict(harness.read_attr_frame(s))["status"], "4")
            self.assertEqual(s.recv(10), b"")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(20)
            s.connect(os.path.join(inst.queue_dir, "private", "proxymap"))
            harness.read_attr_frame(s)
            s.sendall(struct.pack(">I", 50 * 1024 * 1024) + b"x" * 1000)
            self.assertEqual(s.recv(10), b"")
        # still serving everyone else; opened nothing it was asked for
        self.assertEqual(inst.rcpt_reply("user9@example.com")[0], 250)
        log = inst.log_text()
        self.assertNotIn("cannot open table hash:/etc/shadow", log)
        self.assertNotRegex(log, r"signal|SIGSYS")

        # a table of the instance that proxy_read_maps leaves out: the
        # lookup fails (4xx, the mail waits), and `tern check` says so
        inst.stop()
        inst.set_main_cf({"proxy_read_maps": "$virtual_alias_maps"})
        r = inst.tern("check", check=False)
        self.assertIn("smtpd_recipient_restrictions names %s, which proxy_read_maps does not "
                      "list" % self.access, r.stdout)
        inst.start()
        code, text = inst.rcpt_reply("user9@example.com")
        self.assertEqual(code, 451, text)
        inst.wait_log(r"warning: %s: the proxymap service may not open table" % self.access)

    # ---- outages ----
    def test_outages_are_temporary(self):
        out = sink.Sink()
        self.addCleanup(out.stop)
        inst = self.make_instance("proxymap-down", out.port)
        inst.start()
        self.assertEqual(inst.rcpt_reply("alice@example.com")[0], 250)

        # proxymap restarted: the broken connection is opened again at once
        old = self.proxymap_pids(inst)
        for pid in old:
            os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 10
        while time.time() < deadline and set(old) & set(self.proxymap_pids(inst)):
            time.sleep(0.05)
        self.assertEqual(inst.rcpt_reply("user1@example.com")[0], 250)
        inst.wait_log(r"connection to the proxymap service lost; asking again")

        # proxymap hangs: no answer within proxy_lookup_timeout is a 4xx
        pids = self.proxymap_pids(inst)
        self.assertEqual(len(pids), 1)
        os.kill(pids[0], signal.SIGSTOP)
        try:
            code, text = inst.rcpt_reply("user2@example.com")
            self.assertEqual(code // 100, 4, text)
        finally:
            os.kill(pids[0], signal.SIGCONT)
        inst.wait_log(r"no answer from the proxymap service within proxy_lookup_timeout")
        self.assertEqual(inst.rcpt_reply("user2@example.com")[0], 250)

        # proxymap not in master.cf (not running): 4xx, until it is back
        master_cf = os.path.join(inst.dir, "master.cf")
        with open(master_cf) as f:
            lines = f.read().splitlines()
        with open(master_cf, "w") as f:
            f.write("\n".join(l for l in lines if not l.startswith("proxymap")) + "\n")
        self.assertRegex(inst.tern("check", check=False).stdout,
                         r"master.cf has no proxymap service: the lookups of proxy: tables "
                         r"will fail")
        inst.reload()
        deadline = time.time() + 20
        while time.time() < deadline and os.path.exists(
                os.path.join(inst.queue_dir, "private", "proxymap")):
            time.sleep(0.1)
        code, text = inst.rcpt_reply("user3@example.com")
        self.assertEqual(code // 100, 4, text)
        inst.wait_log(r"the proxymap service is not running")
        inst.set_master_cf(["proxymap unix - - n - - proxymap"])
        inst.reload()
        deadline = time.time() + 20
        while time.time() < deadline and not os.path.exists(
                os.path.join(inst.queue_dir, "private", "proxymap")):
            time.sleep(0.1)
        self.assertEqual(inst.rcpt_reply("user3@example.com")[0], 250)

        # PostgreSQL stopped: 4xx at RCPT, nothing bounces; back: 250 again
        inst.send_mail(["user4@example.com"], "before the outage")
        out.wait(1, timeout=30)
        self.pg.stop()
        try:
            code, text = inst.rcpt_reply("user5@example.com")
            self.assertEqual(code // 100, 4, text)
            code, text = inst.rcpt_reply("blocked@example.com")
            self.assertEqual(code // 100, 4, text)
        finally:
            self.pg.start()
        time.sleep(1.2)         # retry_interval
        self.assertEqual(inst.rcpt_reply("user5@example.com")[0], 250)
        inst.send_mail(["user5@example.com"], "after the outage")
        out.wait(2, timeout=30)
        self.assertEqual(out.handler.messages[1][1], ["user5@dest.test"])
        self.assertOnlyProxymapConnects(inst)
        inst.wait_empty(timeout=30)
        log = inst.log_text()
        self.assertNotRegex(log, r"status=bounced")
        self.assertNotIn("sender non-delivery notification", log)
        self.assertNotRegex(log, r"signal|SIGSYS|killed")


def smtp_rcpt(port, to, source=None):
    """(code, text) of RCPT TO in a fresh session from source."""
    with harness.RawSession(port, source=source, timeout=30) as s:
        s.send(b"EHLO client.test\r\n")
        s.read_reply()
        s.send(b"MAIL FROM:<sender@client.test>\r\n")
        s.read_reply()
        s.send(("RCPT TO:<%s>\r\n" % to).encode())
        code, lines = s.read_reply()[:2]
        s.send(b"QUIT\r\n")
        return code, " ".join(lines)


class TestProxyTypes(unittest.TestCase):
    """Tables of other types behind proxy:, wherever main.cf takes a table:
    a network list (cidr:), a domain list (texthash:), recipient tables
    (hash:), an access table (sqlite:), and patterns (pcre:) in a domain
    list, which stay patterns behind proxy:."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tern-proxytypes-", dir="/tmp")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    def test_every_place_a_table_is_taken(self):
        nets = self.write("nets", "127.0.0.4/32 OK\n")
        domains = self.write("domains", "local.test OK\n")
        # a pattern is asked about the whole domain, never its parents
        pattern = self.write("pattern", "/^pat[0-9]+\\.test$/ OK\n/^\\.test$/ OK\n")
        rcpts = self.write("rcpts", "known@relay.test OK\n")
        harness.tern("map", "build", "hash:" + rcpts)
        db = os.path.join(self.tmp, "access.db")
        con = sqlite3.connect(db)
        con.executescript("CREATE TABLE access (k TEXT, v TEXT);"
                          "INSERT INTO access VALUES ('blocked@relay.test', 'REJECT sqlite says no');")
        con.commit()
        con.close()
        os.chmod(db, 0o644)
        access = self.write("access.cf", "dbpath = %s\nquery = SELECT v FROM access WHERE k = '%%s'\n"
                            % db)
        inst = harness.Instance("proxytypes", main_cf={
            "mynetworks": "proxy:cidr:" + nets,
            "mydestination": "$myhostname, localhost, proxy:texthash:%s, proxy:pcre:%s"
                             % (domains, pattern),
            "relay_domains": "relay.test",
            "relay_recipient_maps": "proxy:hash:" + rcpts,
            "smtpd_recipient_restrictions": "check_recipient_access proxy:sqlite:" + access,
        }, chroot=os.geteuid() == 0)
        self.addCleanup(inst.cleanup)
        inst.start()
        self.assertEqual(inst.tern("check", check=False).returncode, 0)
        self.assertEqual(smtp_rcpt(inst.port, "known@relay.test")[0], 250)
        code, text = smtp_rcpt(inst.port, "unknown@relay.test")
        self.assertEqual(code, 550, text)
        code, text = smtp_rcpt(inst.port, "blocked@relay.test")
        self.assertEqual(code, 554, text)
        self.assertIn("sqlite says no", text)
        self.assertEqual(smtp_rcpt(inst.port, "anyone@local.test")[0], 250)
        self.assertEqual(smtp_rcpt(inst.port, "anyone@pat42.test")[0], 250)
        code, text = smtp_rcpt(inst.port, "anyone@other.test")
        self.assertNotEqual(code, 250, text)
        # relaying: only the client that proxy:cidr: lists is trusted
        self.assertEqual(smtp_rcpt(inst.port, "x@elsewhere.test", source="127.0.0.4")[0], 250)
        code, text = smtp_rcpt(inst.port, "x@elsewhere.test", source="127.0.0.1")
        self.assertNotEqual(code, 250, text)
        for spec, key, value in (("proxy:cidr:" + nets, "127.0.0.4", "OK"),
                                 ("proxy:texthash:" + domains, "LOCAL.test", "OK"),
                                 ("proxy:pcre:" + pattern, "pat7.test", "OK"),
                                 ("proxy:hash:" + rcpts, "Known@Relay.test", "OK"),
                                 ("proxy:sqlite:" + access, "blocked@relay.test",
                                  "REJECT sqlite says no")):
            r = inst.tern("map", "query", spec, key, check=False)
            self.assertEqual((r.returncode, r.stdout.strip()), (0, value), spec + r.stderr)
        self.assertEqual(len([1 for _, _, n in inst.processes() if n == "proxymap"]), 1)
        self.assertNotRegex(inst.log_text(), r"warning|signal|SIGSYS")


LDAP_SUFFIX = "dc=example,dc=org"
LDAP_SKIP = dbservers.available_slapd()


@unittest.skipIf(LDAP_SKIP, LDAP_SKIP or "")
class TestProxyLdap(unittest.TestCase):
    """relay_recipient_maps = proxy:ldap:...: the smtpd processes hold no
    connection to slapd, proxymap holds one."""

    def test_ldap_behind_proxy(self):
        tmp = tempfile.mkdtemp(prefix="tern-proxyldap-", dir="/tmp")
        os.chmod(tmp, 0o755)
        self.addCleanup(shutil.rmtree, tmp, True)
        ldap = dbservers.Slapd(LDAP_SUFFIX)
        self.addCleanup(ldap.cleanup)
        ldap.add("dn: ou=people,{s}\nobjectClass: organizationalUnit\nou: people\n\n"
                 "dn: uid=bob,ou=people,{s}\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob\n"
                 "sn: B\nmail: bob@example.org\n".format(s=LDAP_SUFFIX))
        cf = os.path.join(tmp, "relay-ldap.cf")
        with open(cf, "w") as f:
            f.write("server_host = 127.0.0.1\nserver_port = %d\nversion = 3\nsearch_base = %s\n"
                    "query_filter = (mail=%%s)\nresult_attribute = uid\n" % (ldap.port, LDAP_SUFFIX))
        os.chmod(cf, 0o644)
        inst = harness.Instance("proxyldap", main_cf={
            "relay_domains": "example.org",
            "relay_recipient_maps": "proxy:ldap:" + cf,
            "smtpd_client_limit_per_process": "1",
        }, chroot=os.geteuid() == 0)
        self.addCleanup(inst.cleanup)
        inst.start()
        sessions = [harness.RawSession(inst.port, timeout=30) for _ in range(4)]
        try:
            for s in sessions:
                s.send(b"EHLO client.test\r\nMAIL FROM:<a@client.test>\r\n"
                       b"RCPT TO:<bob@example.org>\r\nRCPT TO:<nobody@example.org>\r\n")
                codes = [s.read_reply()[0] for _ in range(4)]
                self.assertEqual(codes, [250, 250, 250, 550])
            smtpds = [p for p, _, n in inst.processes() if n == "smtpd"]
            self.assertGreaterEqual(len(smtpds), 2)
            for pid in smtpds:
                self.assertEqual(tcp_connections_to(pid, ldap.port), 0)
            pids = [p for p, _, n in inst.processes() if n == "proxymap"]
            self.assertEqual(len(pids), 1)
            self.assertEqual(tcp_connections_to(pids[0], ldap.port), 1)
        finally:
            for s in sessions:
                s.close()
        r = inst.tern("map", "query", "proxy:ldap:" + cf, "BOB@example.org", check=False)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "bob"), r.stderr)
        # slapd gone: 4xx; back: 250 on a connection proxymap opens again
        ldap.stop()
        try:
            self.assertEqual(smtp_rcpt(inst.port, "bob@example.org")[0] // 100, 4)
        finally:
            ldap.start()
        self.assertEqual(smtp_rcpt(inst.port, "bob@example.org")[0], 250)
        self.assertNotRegex(inst.log_text(), r"signal|SIGSYS")


if __name__ == "__main__":
    unittest.main()
