"""test_map_tables.py: the cidr:, static: and sqlite: table types and the
domain and network lists that hold tables, in a running instance with real
clients: a client refused by check_client_access cidr:..., relaying
permitted through mynetworks = cidr:... (with a "!" exclusion), a domain in
relay_domains = hash:... (built with `tern map build`) relayed to an SMTP
sink, sqlite: tables as local_recipient_maps and as an access table, a
relay_domains table that fails (mail waits with 4xx, nothing bounces),
`tern map query` for every table type, and `tern check` catching an
unusable list entry and a misspelled parameter name.

Clients connect from 127.0.0.x source addresses; mynetworks trusts
127.0.0.0/29 (cidr:) except 127.0.0.5, so 127.0.0.9 is an untrusted
client. Needs root (instances drop privileges to the tern account)."""
import os
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sink  # noqa: E402

HOST = "tern.test"
TRUSTED = "127.0.0.4"
EXCLUDED = "127.0.0.5"       # in the cidr network, excluded by "!" in mynetworks
REFUSED = "127.0.0.6"        # check_client_access cidr: says REJECT
UNTRUSTED = "127.0.0.9"
SENDMAIL = os.path.join(harness.BUILD, "sendmail", "sendmail")


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def make_db(path):
    """The SQLite database of the sqlite: tables, as an administrator's
    provisioning tool would write it."""
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE mailbox (username TEXT, domain TEXT, active INTEGER);
        INSERT INTO mailbox VALUES ('alice', 'tern.test', 1), ('gone', 'tern.test', 0),
                                   ('o''brien', 'tern.test', 1);
        CREATE TABLE access (address TEXT, action TEXT);
        INSERT INTO access VALUES ('blocked@relay.test', 'REJECT sqlite says no'),
                                  ('spammer@example.org', '554 5.7.1 sqlite knows you');
    """)
    db.commit()
    db.close()
    os.chmod(path, 0o644)


def rcpt(port, to, sender="someone@example.org", source=None):
    """(code, text) of RCPT TO in a fresh session (no message is sent)."""
    s = smtplib.SMTP(timeout=20, source_address=(source, 0) if source else None)
    try:
        s.connect("127.0.0.1", port)
        s.ehlo("client.example")
        code, text = s.mail(sender)
        if code != 250:
            return code, text.decode()
        code, text = s.rcpt(to)
        return code, text.decode()
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            s.close()


def send(port, to, subject, source=None, sender="someone@example.org"):
    msg = "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nbody of %s\r\n" % (sender, to, subject, subject)
    with smtplib.SMTP("127.0.0.1", port, timeout=20,
                      source_address=(source, 0) if source else None) as s:
        s.ehlo("client.example")
        refused = s.sendmail(sender, [to], msg)
    return refused


class TestTablesInstance(unittest.TestCase):
    """One instance whose lists and restrictions use the new table types."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-tables-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.sink = sink.Sink()
        cls.addClassCleanup(cls.sink.stop)
        t = cls.path
        write(t("trusted.cidr"), "# trusted networks\n127.0.0.0/29  trusted\n")
        write(t("clients.cidr"), "%s/32  REJECT cidr says no\n"
                                 "if 127.0.0.0/8\n!127.0.0.0/28 REJECT cidr not for you\nendif\n" % REFUSED)
        write(t("relay_domains"), "relay.test   OK\n.sub.relay.test OK\n")
        harness.tern("map", "build", t("relay_domains"))
        make_db(t("tables.db"))
        write(t("local.cf"), "dbpath = %s\nquery = SELECT username FROM mailbox\n"
                             "    WHERE username = '%%u' AND domain = '%%d' AND active = 1\n"
              % t("tables.db"))
        write(t("access.cf"), "dbpath = %s\nquery = SELECT action FROM access WHERE address = '%%s'\n"
              % t("tables.db"))
        cls.inst = harness.Instance("tables", main_cf={
            "mynetworks": "!%s, cidr:%s" % (EXCLUDED, t("trusted.cidr")),
            "relay_domains": "hash:%s" % t("relay_domains"),
            "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
            "local_recipient_maps": "sqlite:%s" % t("local.cf"),
            "smtpd_client_restrictions": "check_client_access cidr:%s" % t("clients.cidr"),
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "check_recipient_access sqlite:%s, "
                                            "check_sender_access sqlite:%s, "
                                            "check_recipient_access static:DUNNO"
                                            % (t("access.cf"), t("access.cf")),
        })
        cls.addClassCleanup(cls.inst.cleanup)
        cls.inst.start()

    @classmethod
    def path(cls, name):
        return os.path.join(cls.tmp, name)

    def setUp(self):
        self.sink.handler.messages.clear()

    def test_client_refused_by_cidr_access_table(self):
        code, text = rcpt(self.inst.port, "alice@" + HOST, source=REFUSED)
        self.assertEqual(code, 554, text)
        self.assertIn("cidr says no", text)
        code, text = rcpt(self.inst.port, "alice@" + HOST, source="127.0.0.20")
        self.assertEqual(code, 554, text)
        self.assertIn("cidr not for you", text)
        self.assertEqual(rcpt(self.inst.port, "alice@" + HOST, source=UNTRUSTED)[0], 250)
        self.inst.wait_log(r"NOQUEUE: reject: RCPT from \S+\[%s\]: 554 5\.7\.1 .*cidr says no"
                           % REFUSED.replace(".", r"\."))

    def test_relay_permitted_through_cidr_mynetworks(self):
        self.assertEqual(send(self.inst.port, "bob@remote.test", "trusted relay", source=TRUSTED), {})
        msgs = self.sink.wait(1)
        self.assertEqual(msgs[0][1], ["bob@remote.test"])
        self.assertIn(b"Subject: trusted relay", msgs[0][2])
        for source in (UNTRUSTED, EXCLUDED):
            code, text = rcpt(self.inst.port, "bob@remote.test", source=source)
            self.assertEqual(code, 554, "%s: %s" % (source, text))
            self.assertIn("Relay access denied", text)

    def test_relay_domains_hash_table_relayed_to_sink(self):
        self.assertEqual(send(self.inst.port, "carol@relay.test", "to a relay domain",
                              source=UNTRUSTED), {})
        msgs = self.sink.wait(1)
        self.assertEqual(msgs[0][1], ["carol@relay.test"])
        self.inst.wait_log(r"to=<carol@relay\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=sent"
                           % self.sink.port)
        self.assertEqual(rcpt(self.inst.port, "x@deep.sub.relay.test", source=UNTRUSTED)[0], 250)
        code, text = rcpt(self.inst.port, "x@other.test", source=UNTRUSTED)
        self.assertEqual(code, 554, text)

    def test_sqlite_local_recipient_maps(self):
        self.assertEqual(rcpt(self.inst.port, "alice@" + HOST, source=UNTRUSTED)[0], 250)
        self.assertEqual(rcpt(self.inst.port, "Alice@TERN.test", source=UNTRUSTED)[0], 250)
        self.assertEqual(rcpt(self.inst.port, "o'brien@" + HOST, source=UNTRUSTED)[0], 250)
        for user in ("gone", "nobody", "x'or'1'='1"):
            code, text = rcpt(self.inst.port, "%s@%s" % (user, HOST), source=UNTRUSTED)
            self.assertEqual(code, 550, "%s: %s" % (user, text))
            self.assertIn("User unknown in local recipient table", text)

    def test_sqlite_access_table(self):
        code, text = rcpt(self.inst.port, "blocked@relay.test", source=UNTRUSTED)
        self.assertEqual(code, 554, text)
        self.assertIn("sqlite says no", text)
        code, text = rcpt(self.inst.port, "alice@" + HOST, sender="spammer@example.org",
                          source=UNTRUSTED)
        self.assertEqual(code, 554, text)
        self.assertIn("sqlite knows you", text)

    def test_map_query_every_type(self):
        t = self.path
        write(t("plain"), "Key1 value one\nkey2 value two\n")
        shutil.copy(t("plain"), t("plain-btree"))
        harness.tern("map", "build", t("plain"))
        harness.tern("map", "build", "btree:" + t("plain-btree"))
        write(t("q.pcre"), "/^key(\\d)$/ pcre $1\n")
        write(t("q.regexp"), "/^key([0-9])$/ regexp $1\n")
        found = {
            "hash:" + t("plain"): ("KEY1", "value one"),
            "btree:" + t("plain-btree"): ("key2", "value two"),
            "texthash:" + t("plain"): ("key1", "value one"),
            "pcre:" + t("q.pcre"): ("key7", "pcre 7"),
            "regexp:" + t("q.regexp"): ("key8", "regexp 8"),
            "inline:{ a=b, { c = d e } }": ("c", "d e"),
            "unix:passwd.byname": ("root", "root:*:0:0:"),
            "cidr:" + t("trusted.cidr"): ("127.0.0.3", "trusted"),
            "static:{ one two }": ("anything", "one two"),
            "sqlite:" + t("access.cf"): ("blocked@relay.test", "REJECT sqlite says no"),
        }
        for spec, (key, want) in found.items():
            r = harness.tern("map", "query", spec, key, check=False)
            self.assertEqual(r.returncode, 0, "%s %s: %s%s" % (spec, key, r.stdout, r.stderr))
            self.assertTrue(r.stdout.startswith(want), "%s %s: %r" % (spec, key, r.stdout))
            if not spec.startswith("static:"):
                r = harness.tern("map", "query", spec, "nosuchkey-9", check=False)
                self.assertEqual((r.returncode, r.stdout), (1, ""), spec)
        # a lookup error is neither a value nor "not found"
        write(t("missing.cf"), "dbpath = %s\nquery = SELECT 1 WHERE '%%s' = ''\n" % t("no.db"))
        r = harness.tern("map", "query", "sqlite:" + t("missing.cf"), "x", check=False)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("lookup of \"x\" failed", r.stderr)
        write(t("bad.cidr"), "127.0.0.1/8 x\n")
        r = harness.tern("map", "query", "cidr:" + t("bad.cidr"), "127.0.0.1", check=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("bad.cidr:1: bad network entry", r.stderr)


class TestFailingListTable(unittest.TestCase):
    """relay_domains with a table whose lookups fail: smtpd answers 451
    4.3.0 (not 554) to untrusted and trusted clients alike, since it cannot
    tell what the address is, and mail submitted locally waits in the
    queue (deferred), nothing bounced."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tern-tables-fail-", dir="/tmp")
        os.chmod(self.tmp, 0o755)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.sink = sink.Sink()
        self.addCleanup(self.sink.stop)
        cf = write(os.path.join(self.tmp, "relay.cf"),
                   "dbpath = %s/absent.db\nquery = SELECT 1 FROM d WHERE domain = '%%s'\n" % self.tmp)
        self.inst = harness.Instance("tables-fail", main_cf={
            "mynetworks": "127.0.0.1/32",
            "relay_domains": "sqlite:" + cf,
            "relayhost": "[127.0.0.1]:%d" % self.sink.port,
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        })
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def test_lookup_failure_is_temporary(self):
        code, text = rcpt(self.inst.port, "x@elsewhere.test", source=UNTRUSTED)
        self.assertEqual(code, 451, text)
        self.assertIn("4.3.0", text)
        code, text = rcpt(self.inst.port, "x@elsewhere.test")      # from 127.0.0.1, trusted
        self.assertEqual(code, 451, text)
        msg = b"Subject: must wait\n\nbody\n"
        r = subprocess.run([SENDMAIL, "-C", self.inst.dir, "y@elsewhere.test"], input=msg,
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.inst.wait_log(r"to=<y@elsewhere\.test>.*status=deferred.*relay_domains lookup failed",
                           timeout=20)
        self.assertEqual(self.sink.handler.messages, [])
        self.assertNotIn("status=bounced", self.inst.log_text())
        r = self.inst.tern("check", check=False)
        self.assertEqual(r.returncode, 0, r.stdout)   # the table opens; the database is absent


class TestCheck(unittest.TestCase):
    """`tern check` on list entries it cannot use and on misspelled names."""

    def setUp(self):
        self.inst = harness.Instance("tables-check")
        self.addCleanup(self.inst.cleanup)

    def check(self, settings):
        self.inst.set_main_cf(settings)
        return self.inst.tern("check", check=False)

    def test_clean_configuration_passes(self):
        r = self.check({"my_own_setting": "1"})
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("unknown parameter my_own_setting", r.stdout)

    def test_unusable_list_entries(self):
        r = self.check({"relay_domains": "example.com, hash:/nonexistent/relay",
                        "mynetworks": "127.0.0.0/8 192.0.2.1/24",
                        "mydestination": "localhost, nosuchtype:/x",
                        "virtual_alias_domains": "/nonexistent/domains"})
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("relay_domains: table hash:/nonexistent/relay", r.stdout)
        self.assertIn("mynetworks: bad network entry \"192.0.2.1/24\": host bits set", r.stdout)
        self.assertIn("unsupported table type \"nosuchtype\"", r.stdout)
        self.assertIn("virtual_alias_domains: cannot read /nonexistent/domains", r.stdout)

    def test_start_with_unusable_domain_list(self):
        """start warns and runs; what the list decides waits (451)."""
        self.inst.set_main_cf({"relay_domains": "hash:/nonexistent/relay_domains",
                               "mynetworks": "127.0.0.1/32"})
        r = self.inst.tern("start")
        self.assertIn("warning", r.stdout + r.stderr)
        self.inst.wait_port()
        code, text = rcpt(self.inst.port, "x@relay.test")
        self.assertEqual(code, 451, text)
        self.inst.wait_log(r"relay_domains.*hash:/nonexistent/relay_domains")
        r = self.inst.tern("check", check=False)
        self.assertEqual(r.returncode, 1, r.stdout)

    def test_misspelled_parameter(self):
        # Postfix parameters Tern does not have are not misspellings
        r = self.check({"smtpd_tls_CAfile": "/etc/ssl/x.pem", "lmtp_tls_security_level": "may",
                        "smtpd_tls_dcert_file": "/etc/ssl/d.pem"})
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertNotIn("did you mean", r.stdout)
        r = self.check({"relay_domain": "example.com", "mynetwork": "127.0.0.0/8",
                        "smtpd_tls_security_levle": "may"})
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("unknown parameter relay_domain: did you mean relay_domains?", r.stdout)
        self.assertIn("unknown parameter mynetwork: did you mean mynetworks?", r.stdout)
        self.assertIn("did you mean smtpd_tls_security_level?", r.stdout)
        # start still runs: for it a misspelling stays a warning
        self.inst.start()
        self.assertTrue(self.inst.master_pid())


if __name__ == "__main__":
    unittest.main()
