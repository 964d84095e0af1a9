"""test_site_config.py: a whole site's Postfix configuration on Tern.

tests/instance/site/ holds the main.cf of a mid-sized organization's mail
host (example.org with Unix mailboxes, a subsidiary whose every address is
an alias kept in PostgreSQL, another whose mail is relayed to its own
server, mailing lists as LDAP groups, an internal relay network) with the
tables it names. Debian's postfix package (tools/install-deps; installed
unconfigured, never started) is the reference:

- every table of the site answers `tern map query` as it answers Postfix's
  `postmap -q`, for hits, misses, case, subdomains, user+ext keys, @domain
  catch-alls and networks; hash: tables are built by each MTA's own tool
  (postmap and postalias into one copy, `tern map build` and `tern
  aliases` into another), and
  the pgsql: and ldap: tables ask a real PostgreSQL and slapd that the test
  starts (dbservers.py), seeded from site/mail.sql and site/directory.ldif;
- Postfix's postconf reads the site's main.cf without a complaint, every
  parameter Tern implements has the same expanded value in `tern conf`,
  and `tern check` exits 0 and warns only about the Postfix parameters
  Tern does not implement;
- Tern's master runs the site's main.cf, and every test address ends up
  where Postfix 3.7 puts it: in a local mbox (Unix users the test makes),
  at the Internet (a test SMTP server standing for every remote MX), at the
  subsidiary's own server (a second test SMTP server), or refused at RCPT.
  The expected routing is written below from Postfix 3.7's documented
  semantics (canonical(5), virtual(5), postconf(5), smtpd recipient
  checks), and each step a table decides (canonical -> virtual ->
  delivery) is cross-checked with Postfix's own answer for that step.
  Also: header rewriting per class and client, the BCC copy, local
  submission with sendmail, mailbox headers (X-Original-To:,
  Delivered-To:), the bounce of a stale alias target, bare postmaster,
  STARTTLS with the site's certificate, strict_rfc821_envelopes, and the
  HR database going away (4xx, never 5xx).

What the test changes in the site's files, and nothing else:
- the paths /etc/postfix/NAME and /etc/aliases name the copy in the test's
  directory (a textual substitution in main.cf);
- the database and directory hosts (db1.example.org, ldap.example.org:389)
  become the test's servers on 127.0.0.1, and the subsidiary's server
  [10.30.0.25] in the transport table becomes its stand-in on 127.0.0.1;
- the TLS key and certificate are made by the test;
- an overlay at the end of Tern's main.cf (later settings win) sets what
  `tern init` chose for the instance (queue, data, daemon and mail spool
  directories, log file, accounts) and relayhost = the Internet's stand-in,
  since the test has no DNS to find MX hosts with.
The Postfix copy is the site's main.cf with the same substitutions and no
overlay (postmap reads nothing else of it).

Where Tern knowingly differs from Postfix, the case says so: Tern judges a
recipient at RCPT as it will be after canonical mapping and virtual
aliasing (the one address resolver of doc/ARCHITECTURE.md), so an address that a canonical or
virtual catch-all rewrites into an unknown one is refused with 550 at RCPT,
where Postfix accepts it and bounces it afterwards; and an alias loop is
refused at RCPT with 451 4.6.0 where Postfix answers 451 4.6.0 after DATA.
Either way the mail is not taken and the sender is told. And `tern map
query` on a cidr: table matches an IPv4-mapped IPv6 key against IPv4 rules,
where postmap does not (smtpd looks a mapped client address up in its IPv4
form in both, so mail sees no difference)."""
import mailbox
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

import dbservers
import harness
import sink as sinkmod

SITE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "site")
SUFFIX = "dc=example,dc=org"
POSTMAP = "/usr/sbin/postmap"
POSTALIAS = "/usr/sbin/postalias"
PG_ROLE, PG_PASSWORD = "postfix", "Zr8mK2vQ"     # as in site/pgsql-virtual.cf
USERS = ["asmith", "bjones", "cwong", "dlee"]    # the staff's Unix logins
HASH_TABLES = ["local_domains", "relay_domains", "relay_recipients", "transport",
               "sender_canonical", "recipient_canonical", "virtual", "recipient_bcc",
               "recipient_access"]

# The Postfix parameters of the site's main.cf that Tern does not implement:
# `tern check` and start warn about each and about nothing else.
UNSUPPORTED = ["biff", "append_dot_mydomain", "readme_directory", "compatibility_level",
               "smtpd_tls_session_cache_database", "smtp_tls_session_cache_database"]


def skip_reason():
    if not os.path.exists(POSTMAP):
        return "Debian's postfix package is not installed (tools/install-deps)"
    if not os.path.exists(os.path.join(harness.LIBEXEC, "smtp")):
        return "the smtp delivery agent is not built"
    return dbservers.available_postgres() or dbservers.available_slapd()


SKIP = skip_reason()


def install_site(dest, pg_port, ldap_port, shop_port=None):
    """Copy the site's files into dest with the substitutions the module's
    docstring lists; shop_port: the subsidiary's server's stand-in."""
    os.makedirs(dest, exist_ok=True)
    for name in sorted(os.listdir(SITE)):
        with open(os.path.join(SITE, name)) as f:
            text = f.read()
        text = text.replace("/etc/postfix/", dest + "/").replace("/etc/aliases",
                                                                 dest + "/aliases")
        if name == "pgsql-virtual.cf":
            text = text.replace("hosts = db1.example.org", "hosts = inet:127.0.0.1:%d" % pg_port)
        if name == "ldap-groups.cf":
            text = text.replace("ldap.example.org:389", "127.0.0.1:%d" % ldap_port)
        if name == "transport" and shop_port:
            text = text.replace("[10.30.0.25]", "[127.0.0.1]:%d" % shop_port)
        path = os.path.join(dest, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
    tls = os.path.join(dest, "tls")
    os.makedirs(tls, exist_ok=True)
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", os.path.join(tls, "mx1.example.org.key"),
                        "-out", os.path.join(tls, "mx1.example.org.crt"),
                        # a site's certificate: a year, so that tern check's
                        # warning of a near expiry stays out of this test
                        "-subj", "/CN=mx1.example.org", "-days", "365"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl: %s" % r.stderr)
    os.chmod(os.path.join(tls, "mx1.example.org.key"), 0o600)


def postmap_query(confdir, spec, key):
    """(found, value) of Postfix's postmap -q; AssertionError on a lookup error."""
    r = subprocess.run([POSTMAP, "-c", confdir, "-q", key, spec], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode not in (0, 1) or (r.returncode == 1 and r.stderr.strip()):
        raise AssertionError("postmap -q %r %s: %d %s" % (key, spec, r.returncode, r.stderr))
    return (r.returncode == 0, r.stdout.strip())


def tern_query(confdir, spec, key):
    """(found, value) of `tern -c confdir map query`; AssertionError on an error."""
    r = subprocess.run([harness.TERN, "-c", confdir, "map", "query", spec, key],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode not in (0, 1):
        raise AssertionError("tern map query %s %r: %d %s" % (spec, key, r.returncode, r.stderr))
    return (r.returncode == 0, r.stdout.strip())


def split_values(value):
    """The addresses of a table answer ("a, b" or "a,b"), sorted: the
    answers of pgsql and ldap have no defined order."""
    return sorted(v.strip() for v in value.split(",") if v.strip())


class Servers:
    """PostgreSQL and slapd for the whole module, seeded with the site's data."""
    pg = None
    ldap = None

    @classmethod
    def start(cls):
        if cls.pg:
            return
        pg = dbservers.Postgres()
        try:
            pg.sql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (PG_ROLE, PG_PASSWORD))
            pg.sql("CREATE DATABASE mail OWNER admin")
            with open(os.path.join(SITE, "mail.sql")) as f:
                pg.sql(f.read(), db="mail")
            ldap = dbservers.Slapd(SUFFIX)
        except BaseException:
            pg.cleanup()
            raise
        try:
            with open(os.path.join(SITE, "directory.ldif")) as f:
                ldap.add(f.read())
        except BaseException:
            ldap.cleanup()
            pg.cleanup()
            raise
        cls.pg, cls.ldap = pg, ldap

    @classmethod
    def stop(cls):
        if cls.ldap:
            cls.ldap.cleanup()
        if cls.pg:
            cls.pg.cleanup()
        cls.pg = cls.ldap = None


def tearDownModule():
    Servers.stop()


# ---- (a) every table answers as Postfix's postmap does ----

# table (the file in the site, TYPE:) -> keys
TABLE_KEYS = {
    "hash:local_domains": ["mail.example.org", "MAIL.Example.ORG", "legacy.example.org",
                           "example.org", "sub.mail.example.org", ".mail.example.org"],
    "hash:relay_domains": ["example-shop.net", "EXAMPLE-SHOP.NET", "sub.example-shop.net",
                           ".example-shop.net", "example.org"],
    "hash:relay_recipients": ["info@example-shop.net", "Info@Example-Shop.NET",
                              "eve.adams@example-shop.net", "nosuch@example-shop.net",
                              "info", "@example-shop.net", "info@sub.example-shop.net"],
    "hash:transport": ["example-shop.net", ".example-shop.net", "sub.example-shop.net",
                       "Example-Shop.Net", "example.org"],
    "hash:sender_canonical": ["asmith", "ASmith", "asmith@example.org", "asmith+x",
                              "dlee", "nosuch", "@example.org"],
    "hash:recipient_canonical": ["alice.smith@example.org", "Alice.Smith@EXAMPLE.org",
                                 "reception@example.org", "frontdesk@example.org",
                                 "alice.smith+news@example.org", "alice.smith",
                                 "alice.smith@mx1.example.org"],
    "hash:virtual": ["info@example.org", "INFO@example.org", "bjones@example.org",
                     "bjones+lists@example.org", "@examplelabs.net", "x@examplelabs.net",
                     "list-a@example-labs.com", "contact@example-labs.com", "info",
                     "press@example.org"],
    "hash:recipient_bcc": ["legal@example.org", "Legal@Example.org", "legal",
                           "legal+x@example.org", "d.lee@example-labs.com", "@example-labs.com"],
    "hash:recipient_access": ["noreply@example.org", "NoReply@Example.org",
                              "all-staff@example.org", "no-reply@example-labs.com",
                              "example.org", "noreply"],
    "hash:aliases": ["root", "ROOT", "helpdesk", "postmaster", "oncall", "legal", "nosuch",
                     "root@example.org", "mailer-daemon"],
    "pcre:recipient_canonical.pcre": [
        "alice.smith@example.org", "Alice_Smith@Mail.Example.org", "ALICE.SMITH@EXAMPLE.ORG",
        "alice.smith@sub.example.org", "alice-smith@example.org", "bob.jones@example.org",
        "bob_jones@mail.example.org", "Bob.Jones@example.org", "bob.jones@EXAMPLE.org",
        "alice.smithx@example.org", "xalice.smith@example.org"],
    "regexp:canonical.regexp": ["x@legacy.example.org", "X.Y@LEGACY.example.org",
                                "x@sub.legacy.example.org", "@legacy.example.org",
                                "a@b@legacy.example.org", "x@legacy.example.org.evil",
                                "x+ext@legacy.example.org"],
    "cidr:mynetworks.cidr": ["127.0.0.9", "127.0.0.8", "127.0.0.15", "127.0.0.16",
                             "127.0.0.1", "10.20.5.5", "10.20.255.255", "10.21.0.1",
                             "192.168.50.0", "192.168.51.1", "10.30.0.25", "10.30.1.25",
                             "2001:db8:20::1", "2001:DB8:20:ffff::1", "2001:db8:21::1",
                             "::ffff:10.20.0.1", "not-an-address"],
    "cidr:client_access.cidr": ["10.20.99.7", "10.20.98.7", "192.168.50.66",
                                "192.168.50.67", "127.0.0.14", "198.51.100.200",
                                "198.51.101.1", "127.0.0.1"],
    "pgsql:pgsql-virtual.cf": [
        "d.lee@example-labs.com", "D.Lee@Example-Labs.COM", "sales@example-labs.com",
        "ceo@example-labs.com", "assistant@example-labs.com", "former@example-labs.com",
        "nosuch@example-labs.com", "d.lee@example.org", "d.lee", "@example-labs.com",
        "d.lee+jobs@example-labs.com", "d.lee@sub.example-labs.com",
        "x' OR '1'='1@example-labs.com"],
    "ldap:ldap-groups.cf": [
        "all-staff@example.org", "ALL-STAFF@Example.ORG", "engineering@example.org",
        "labs-team@example-labs.com", "asmith@example.org", "nosuch@example.org",
        "all-staff@example.net", "all-staff", "*)(mail=*@example.org",
        "engineering+x@example.org"],
}

# Tables whose answers list addresses in no defined order.
UNORDERED = ("pgsql:", "ldap:")

# Where a raw table lookup knowingly differs: Tern's cidr: tables match an
# IPv4-mapped IPv6 key against IPv4 rules, Postfix's do not. Mail sees no
# difference: both SMTP servers look a client's mapped address up in its
# IPv4 form. (table, key) -> (Postfix's answer, Tern's)
TABLE_DIFFERENCES = {
    ("cidr:mynetworks.cidr", "::ffff:10.20.0.1"): ((False, ""), (True, "head office LAN")),
}


@unittest.skipIf(SKIP, SKIP or "")
class TestTablesLikePostmap(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        Servers.start()
        cls.tmp = tempfile.mkdtemp(prefix="tern-site-tables-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.pf = os.path.join(cls.tmp, "postfix")
        cls.tn = os.path.join(cls.tmp, "tern")
        for d in (cls.pf, cls.tn):
            install_site(d, Servers.pg.port, Servers.ldap.port)
        # Tern's pgsql: and ldap: modules come from the build tree
        with open(os.path.join(cls.tn, "main.cf"), "a") as f:
            f.write("daemon_directory = %s\n" % os.path.join(harness.BUILD, "libexec"))
        for name in HASH_TABLES:
            r = subprocess.run([POSTMAP, "-c", cls.pf, "hash:%s/%s" % (cls.pf, name)],
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            harness.tern("-c", cls.tn, "map", "build", "hash:%s/%s" % (cls.tn, name))
        r = subprocess.run([POSTALIAS, "-c", cls.pf, "hash:%s/aliases" % cls.pf],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        # newaliases: the tables of alias_database, as Postfix's postalias
        harness.tern("-c", cls.tn, "aliases")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def compare(self, table):
        kind, name = table.split(":", 1)
        mismatches = []
        for key in TABLE_KEYS[table]:
            want = postmap_query(self.pf, "%s:%s/%s" % (kind, self.pf, name), key)
            got = tern_query(self.tn, "%s:%s/%s" % (kind, self.tn, name), key)
            if table.startswith(UNORDERED):
                want = (want[0], split_values(want[1]))
                got = (got[0], split_values(got[1]))
            if (table, key) in TABLE_DIFFERENCES:
                self.assertEqual((want, got), TABLE_DIFFERENCES[table, key], key)
                continue
            if want != got:
                mismatches.append("%r: postfix %r, tern %r" % (key, want, got))
        self.assertEqual(mismatches, [], table)

    def test_hash_tables(self):
        for table in TABLE_KEYS:
            if table.startswith("hash:"):
                with self.subTest(table=table):
                    self.compare(table)

    def test_pattern_tables(self):
        for table in ("pcre:recipient_canonical.pcre", "regexp:canonical.regexp"):
            with self.subTest(table=table):
                self.compare(table)

    def test_cidr_tables(self):
        for table in ("cidr:mynetworks.cidr", "cidr:client_access.cidr"):
            with self.subTest(table=table):
                self.compare(table)

    def test_pgsql_table(self):
        self.compare("pgsql:pgsql-virtual.cf")

    def test_ldap_table(self):
        self.compare("ldap:ldap-groups.cf")

    def test_parameters_read_alike(self):
        """Every parameter the site sets and Tern implements has the same
        value, $name references expanded, in `tern conf` as in Postfix's
        postconf (smtpd_banner names each MTA through $mail_name)."""
        r = subprocess.run(["/usr/sbin/postconf", "-c", self.pf, "-n"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Postfix reads the site's main.cf without a complaint (the copy has
        # no master.cf, which postconf mentions)
        self.assertEqual([l for l in r.stderr.splitlines() if "master.cf" not in l], [])
        names = [l.split(" = ")[0].split(" =")[0] for l in r.stdout.splitlines()]
        names = [n for n in names if n not in UNSUPPORTED + ["config_directory", "smtpd_banner"]]
        self.assertIn("virtual_alias_maps", names)
        differ = []
        for name in names:
            want = subprocess.run(["/usr/sbin/postconf", "-c", self.pf, "-x", "-h", name],
                                  capture_output=True, text=True, timeout=60).stdout.strip()
            got = harness.tern("-c", self.tn, "conf", "-h", name).stdout.strip()
            if got != want.replace(self.pf, self.tn):
                differ.append("%s: postfix %r, tern %r" % (name, want, got))
        self.assertEqual(differ, [])

    def test_some_answers_are_what_the_site_means(self):
        # the comparison above would also pass if both MTAs answered nothing
        q = lambda spec, key: tern_query(self.tn, spec.replace("DIR", self.tn), key)
        self.assertEqual(q("pgsql:DIR/pgsql-virtual.cf", "sales@example-labs.com")[0], True)
        self.assertEqual(split_values(q("ldap:DIR/ldap-groups.cf", "labs-team@example-labs.com")[1]),
                         ["asmith@example.org", "cwong@example.org", "dlee@example.org",
                          "frank@contractor.example.net"])
        self.assertEqual(q("cidr:DIR/mynetworks.cidr", "127.0.0.9"), (True, "local relays"))
        self.assertEqual(q("hash:DIR/aliases", "helpdesk"), (True, "bjones, cwong"))


# ---- tern check ----

@unittest.skipIf(SKIP, SKIP or "")
class TestCheck(unittest.TestCase):
    def test_check_warns_only_about_what_tern_lacks(self):
        Servers.start()
        inst = SiteInstance(shop_port=harness.free_port(), relay_port=harness.free_port())
        self.addCleanup(inst.cleanup)
        r = inst.tern("check", check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout + r.stderr
        unknown = sorted(l.split("unknown parameter ")[1].split()[0]
                         for l in out.splitlines() if "unknown parameter" in l)
        self.assertEqual(unknown, sorted(UNSUPPORTED), out)
        for line in out.splitlines():
            if re.match(r"tern: \d+ warning\(s\)$", line):
                continue
            if "warning" in line and "unknown parameter" not in line:
                # the only other warnings tern check may give here are about
                # the build tree's programs not being installed set-group-ID
                self.assertRegex(line, r"is not set-group-ID", out)
            self.assertNotIn("error", line, out)


# ---- (b) the whole instance routes every address as Postfix does ----

class SiteInstance(harness.Instance):
    """An instance made by `tern init` whose main.cf is the site's, with
    the overlay of the module's docstring."""
    OVERLAY = ("queue_directory", "data_directory", "daemon_directory", "maillog_file",
               "mail_spool_directory", "mail_owner", "setgid_group")

    def __init__(self, shop_port, relay_port):
        super().__init__("site")
        with open(os.path.join(self.dir, "main.cf")) as f:
            init_lines = [l for l in f.read().splitlines()
                          if l.split("=")[0].strip() in self.OVERLAY]
        self.site_dir = os.path.join(self.dir, "etc")
        install_site(self.site_dir, Servers.pg.port, Servers.ldap.port, shop_port)
        for name in HASH_TABLES:
            self.tern("map", "build", "hash:%s/%s" % (self.site_dir, name))
        with open(os.path.join(self.site_dir, "main.cf")) as f:
            site = f.read()
        overlay = ["", "# ---- test overlay: this instance's directories and accounts, and",
                   "# the Internet's stand-in (no DNS here) ----"]
        overlay += init_lines + ["relayhost = [127.0.0.1]:%d" % relay_port]
        with open(os.path.join(self.dir, "main.cf"), "w") as f:
            f.write(site + "\n".join(overlay) + "\n")
        self.tern("aliases")          # newaliases: the site's alias_database


def message(seq, headers=b"", sender=b"partner@partner.example.net"):
    return (b"From: " + sender + b"\r\nSubject: site test\r\nX-Seq: " + seq.encode()
            + b"\r\n" + headers + b"\r\nbody of " + seq.encode() + b"\r\n")


OUTSIDE = "127.0.0.2"      # a client on the Internet: not in mynetworks
CIDR_TRUSTED = "127.0.0.9"  # in mynetworks through mynetworks.cidr
QUARANTINED = "127.0.0.14"  # in mynetworks, refused by client_access.cidr

# Inbound mail from the Internet (OUTSIDE): recipient -> where it ends up:
# "mbox:USER" (the Unix user's mailbox), "net:ADDRESS" (the Internet's
# stand-in received RCPT TO ADDRESS), "shop:ADDRESS" (the subsidiary's
# server received RCPT TO ADDRESS). steps: what Postfix's tables answer on
# the way (table, key, answer or None); each is checked with postmap.
INBOUND = [
    ("alice.smith@example.org", ["mbox:asmith"],
     [("hash:recipient_canonical", "alice.smith@example.org", "asmith@example.org"),
      ("hash:virtual", "asmith@example.org", None), ("ldap:ldap-groups.cf", "asmith@example.org", None)]),
    ("ALICE.SMITH@EXAMPLE.ORG", ["mbox:asmith"],
     [("hash:recipient_canonical", "ALICE.SMITH@EXAMPLE.ORG", "asmith@example.org")]),
    ("Alice_Smith@mail.example.org", ["mbox:asmith"],
     [("hash:local_domains", "mail.example.org", "local"),
      ("hash:recipient_canonical", "Alice_Smith@mail.example.org", None),
      ("pcre:recipient_canonical.pcre", "Alice_Smith@mail.example.org", "asmith@example.org")]),
    ("alice.smith+news@example.org", ["mbox:asmith"],
     [("hash:recipient_canonical", "alice.smith+news@example.org", None),
      ("hash:recipient_canonical", "alice.smith@example.org", "asmith@example.org")]),
    ("asmith@mx1.example.org", ["mbox:asmith"], []),
    ("bob_jones@example.org", ["mbox:bjones", "net:bjones@mobile.example.net"],
     [("pcre:recipient_canonical.pcre", "bob_jones@example.org", "bjones@example.org"),
      ("hash:virtual", "bjones@example.org", "bjones@example.org, bjones@mobile.example.net")]),
    ("bjones+lists@example.org", ["mbox:bjones", "net:bjones+lists@mobile.example.net"],
     [("hash:virtual", "bjones+lists@example.org", None),
      ("hash:virtual", "bjones@example.org", "bjones@example.org, bjones@mobile.example.net")]),
    ("reception@example.org", ["mbox:bjones", "mbox:cwong"],
     [("hash:recipient_canonical", "reception@example.org", "frontdesk@example.org"),
      ("hash:recipient_canonical", "frontdesk@example.org", "helpdesk@example.org"),
      ("hash:recipient_canonical", "helpdesk@example.org", None),
      ("hash:virtual", "helpdesk@example.org", None),
      ("hash:aliases", "helpdesk", "bjones, cwong")]),
    ("dlee@legacy.example.org", ["mbox:dlee"],
     [("hash:local_domains", "legacy.example.org", "local"),
      ("regexp:canonical.regexp", "dlee@legacy.example.org", "dlee@example.org")]),
    ("info@example.org", ["mbox:asmith", "mbox:cwong", "shop:info@example-shop.net",
                          "shop:orders@example-shop.net", "net:partner@partner.example.net"],
     [("hash:virtual", "info@example.org", "asmith, sales@example-labs.com, info@example-shop.net"),
      ("pgsql:pgsql-virtual.cf", "sales@example-labs.com",
       "cwong@example.org, orders@example-shop.net, partner@partner.example.net"),
      ("pgsql:pgsql-virtual.cf", "cwong@example.org", None),
      ("hash:relay_recipients", "info@example-shop.net", "OK"),
      ("hash:transport", "example-shop.net", "relay:[10.30.0.25]")]),
    ("Sales@Example-Labs.COM", ["mbox:cwong", "shop:orders@example-shop.net",
                                "net:partner@partner.example.net"], []),
    # the BCC table is asked before virtual aliasing, without the extension
    # too; its address is aliased like any recipient (assistant -> bjones ->
    # bjones and his phone)
    ("d.lee+jobs@example-labs.com", ["mbox:dlee", "mbox:bjones", "net:bjones@mobile.example.net"],
     [("hash:recipient_bcc", "d.lee+jobs@example-labs.com", None),
      ("hash:recipient_bcc", "d.lee@example-labs.com", "assistant@example-labs.com"),
      ("pgsql:pgsql-virtual.cf", "d.lee+jobs@example-labs.com", None),
      ("pgsql:pgsql-virtual.cf", "d.lee@example-labs.com", "dlee@example.org"),
      ("pgsql:pgsql-virtual.cf", "assistant@example-labs.com", "bjones")]),
    ("ceo@example-labs.com", ["mbox:dlee", "mbox:bjones", "net:bjones@mobile.example.net"],
     [("pgsql:pgsql-virtual.cf", "ceo@example-labs.com", "dlee@example.org, assistant@example-labs.com"),
      ("pgsql:pgsql-virtual.cf", "assistant@example-labs.com", "bjones")]),
    ("contact@examplelabs.net", ["mbox:asmith", "mbox:cwong", "shop:info@example-shop.net",
                                 "shop:orders@example-shop.net", "net:partner@partner.example.net"],
     [("hash:virtual", "contact@examplelabs.net", None),
      ("hash:virtual", "@examplelabs.net", "@example-labs.com"),
      ("hash:virtual", "contact@example-labs.com", "info@example.org")]),
    # "@domain" answers keep the whole local part, extension and all; no
    # BCC: the table is asked for the address before aliasing
    ("d.lee+x@examplelabs.net", ["mbox:dlee"],
     [("hash:recipient_bcc", "d.lee@examplelabs.net", None),
      ("hash:recipient_bcc", "@examplelabs.net", None),
      ("hash:virtual", "d.lee+x@examplelabs.net", None), ("hash:virtual", "d.lee@examplelabs.net", None),
      ("hash:virtual", "@examplelabs.net", "@example-labs.com"),
      ("pgsql:pgsql-virtual.cf", "d.lee+x@example-labs.com", None),
      ("pgsql:pgsql-virtual.cf", "d.lee@example-labs.com", "dlee@example.org")]),
    ("postmaster@example-labs.com", ["mbox:asmith"],
     [("hash:virtual", "postmaster@example-labs.com", "postmaster@example.org"),
      ("hash:aliases", "postmaster", "root"), ("hash:aliases", "root", "asmith")]),
    ("engineering@example.org", ["mbox:asmith", "mbox:cwong", "net:frank@contractor.example.net"],
     [("ldap:ldap-groups.cf", "engineering@example.org",
       "asmith@example.org, cwong@example.org, frank@contractor.example.net")]),
    ("labs-team@example-labs.com", ["mbox:dlee", "mbox:asmith", "mbox:cwong",
                                    "net:frank@contractor.example.net"], []),
    ("legal@example.org", ["mbox:dlee", "net:legal-archive@archive.example.net"],
     [("hash:recipient_bcc", "legal@example.org", "legal-archive@archive.example.net"),
      ("hash:aliases", "legal", "dlee")]),
    # the BCC table is asked without the extension too; the copy has none
    ("legal+contracts@example.org", ["mbox:dlee", "net:legal-archive@archive.example.net"],
     [("hash:recipient_bcc", "legal+contracts@example.org", None),
      ("hash:recipient_bcc", "legal@example.org", "legal-archive@archive.example.net")]),
    # propagate_unmatched_extensions: a list's extension goes to every member
    ("engineering+x@example.org", ["mbox:asmith", "mbox:cwong", "net:frank+x@contractor.example.net"],
     [("ldap:ldap-groups.cf", "engineering+x@example.org", None)]),
    ("oncall@example.org", ["net:oncall@pager.example.net"],
     [("hash:aliases", "oncall", "oncall@pager.example.net")]),
    ("info@example-shop.net", ["shop:info@example-shop.net"],
     [("hash:relay_domains", "example-shop.net", "OK")]),
    ("orders+web@example-shop.net", ["shop:orders+web@example-shop.net"],
     [("hash:relay_recipients", "orders+web@example-shop.net", None),
      ("hash:relay_recipients", "orders@example-shop.net", "OK")]),
    ("Eve.Adams@Example-Shop.NET", ["shop:Eve.Adams@Example-Shop.NET"],
     [("hash:relay_recipients", "Eve.Adams@Example-Shop.NET", "OK")]),
]

# Refused at RCPT from the Internet: recipient, client, (code, text).
# known_difference: Postfix accepts this one (a catch-all of canonical_maps
# or virtual_alias_maps lists it) and bounces it after rewriting.
REFUSED = [
    ("nosuch@example.org", OUTSIDE, 550,
     "5.1.1 <nosuch@example.org>: Recipient address rejected: User unknown in local recipient table"),
    ("Bob_Jones@example.org", OUTSIDE, 550,      # the i flag: case-sensitive pattern
     "5.1.1 <Bob_Jones@example.org>: Recipient address rejected: User unknown in local recipient table"),
    ("david.lee@mx1.example.org", OUTSIDE, 550,
     "5.1.1 <david.lee@mx1.example.org>: Recipient address rejected: User unknown in local recipient table"),
    ("nosuch@example-labs.com", OUTSIDE, 550,
     "5.1.1 <nosuch@example-labs.com>: Recipient address rejected: User unknown in virtual alias table"),
    ("former@example-labs.com", OUTSIDE, 550,
     "5.1.1 <former@example-labs.com>: Recipient address rejected: User unknown in virtual alias table"),
    ("nosuch@example-shop.net", OUTSIDE, 550,
     "5.1.1 <nosuch@example-shop.net>: Recipient address rejected: User unknown in relay recipient table"),
    ("info@sub.example-shop.net", OUTSIDE, 550,
     "5.1.1 <info@sub.example-shop.net>: Recipient address rejected: User unknown in relay recipient table"),
    ("someone@elsewhere.example.net", OUTSIDE, 554,
     "5.7.1 <someone@elsewhere.example.net>: Relay access denied"),
    # mydestination and virtual_alias_domains do not match subdomains
    ("asmith@sub.example.org", OUTSIDE, 554, "5.7.1 <asmith@sub.example.org>: Relay access denied"),
    ("x@sub.example-labs.com", OUTSIDE, 554, "5.7.1 <x@sub.example-labs.com>: Relay access denied"),
    # reject_non_fqdn_recipient
    ("asmith", OUTSIDE, 504, "5.5.2 <asmith>: Recipient address rejected: need fully-qualified address"),
    ("asmith@localhost", OUTSIDE, 504,
     "5.5.2 <asmith@localhost>: Recipient address rejected: need fully-qualified address"),
    ("noreply@example.org", OUTSIDE, 554,
     "5.7.1 <noreply@example.org>: Recipient address rejected: this address does not receive mail"),
    ("all-staff@example.org", OUTSIDE, 554,
     "5.7.1 <all-staff@example.org>: Recipient address rejected: Access denied"),
    ("info@example.org", QUARANTINED, 554,
     "5.7.1 <unknown[127.0.0.14]>: Client host rejected: this host is quarantined, call the help desk"),
    # internal clients too: smtpd_reject_unlisted_recipient applies after permit_mynetworks
    ("nosuch@example.org", "127.0.0.1", 550,
     "5.1.1 <nosuch@example.org>: Recipient address rejected: User unknown in local recipient table"),
    ("nosuch@example-shop.net", CIDR_TRUSTED, 550,
     "5.1.1 <nosuch@example-shop.net>: Recipient address rejected: User unknown in relay recipient table"),
]
KNOWN_DIFFERENCES = [
    # Postfix: accepted (canonical.regexp matches), bounced as unknown user nosuch@example.org
    ("nosuch@legacy.example.org", OUTSIDE, 550,
     "5.1.1 <nosuch@legacy.example.org>: Recipient address rejected: User unknown in local recipient table"),
    # Postfix: accepted (@examplelabs.net matches), bounced as unknown in virtual alias table
    ("nosuch@examplelabs.net", OUTSIDE, 550,
     "5.1.1 <nosuch@examplelabs.net>: Recipient address rejected: User unknown in virtual alias table"),
]


@unittest.skipIf(SKIP, SKIP or "")
class TestSiteRouting(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        Servers.start()
        cls.net = sinkmod.Sink()
        cls.addClassCleanup(cls.net.stop)
        cls.shop = sinkmod.Sink()
        cls.addClassCleanup(cls.shop.stop)
        cls.homes = harness.make_unix_users(USERS, "tern-site-homes-")
        cls.addClassCleanup(harness.remove_unix_users, USERS, cls.homes)
        cls.inst = SiteInstance(cls.shop.port, cls.net.port)
        cls.addClassCleanup(cls.inst.cleanup)
        cls.inst.start()
        # Postfix's copy of the site, for the table answers of each step
        cls.pf = tempfile.mkdtemp(prefix="tern-site-postfix-", dir="/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.pf, True)
        install_site(cls.pf, Servers.pg.port, Servers.ldap.port)
        for name in HASH_TABLES:
            subprocess.run([POSTMAP, "-c", cls.pf, "hash:%s/%s" % (cls.pf, name)],
                           check=True, capture_output=True, timeout=60)
        subprocess.run([POSTALIAS, "-c", cls.pf, "hash:%s/aliases" % cls.pf], check=True,
                       capture_output=True, timeout=60)

    # ---- helpers ----
    def smtp(self, source):
        s = smtplib.SMTP("127.0.0.1", self.inst.port, timeout=20,
                         source_address=(source, 0))
        s.ehlo("mail.partner.example.net" if source == OUTSIDE else "ws12.example.org")
        return s

    def send(self, seq, rcpts, source=OUTSIDE, sender="partner@partner.example.net",
             headers=b"", from_header=None):
        with self.smtp(source) as s:
            refused = s.sendmail(sender, rcpts, message(seq, headers,
                                                        (from_header or sender).encode()))
        self.assertEqual(refused, {})

    def mbox_seqs(self, user):
        path = os.path.join(self.inst.dir, "mail", user)
        if not os.path.exists(path):
            return []
        box = mailbox.mbox(path, create=False)
        try:
            return [m["X-Seq"] for m in box]
        finally:
            box.close()

    def net_messages(self, sink, seq):
        """What sink received of message seq (not the notices about it)."""
        marker = ("X-Seq: %s\r\n" % seq).encode()
        return [m for m in list(sink.handler.messages) if marker in m[2] and m[0] not in ("", "<>")]

    def destinations(self, seq):
        got = []
        for user in USERS:
            got += ["mbox:%s" % user] * self.mbox_seqs(user).count(seq)
        for prefix, sink in (("net", self.net), ("shop", self.shop)):
            for m in self.net_messages(sink, seq):
                got += ["%s:%s" % (prefix, r) for r in m[1]]
        return sorted(got)

    def wait_destinations(self, seq, want, timeout=30):
        want = sorted(want)
        deadline = time.time() + timeout
        got = []
        while time.time() < deadline:
            got = self.destinations(seq)
            if len(got) >= len(want):
                break
            time.sleep(0.1)
        time.sleep(0.5)      # nothing more arrives
        got = self.destinations(seq)
        self.assertEqual(got, want, "message %s; log:\n%s" % (seq, self.inst.log_tail(40)))
        return got

    def check_steps(self, steps):
        """Each step's table answers as the routing table says, in Postfix
        (postmap) and in Tern."""
        for table, key, want in steps:
            kind, name = table.split(":", 1)
            for who, answer in (
                    ("postfix", postmap_query(self.pf, "%s:%s/%s" % (kind, self.pf, name), key)),
                    ("tern", tern_query(self.inst.dir, "%s:%s/%s" % (kind, self.inst.site_dir, name),
                                        key))):
                expected = (want is not None, want or "")
                if who == "tern":       # the instance's copy of the transport table
                    expected = (expected[0], expected[1].replace(
                        "[10.30.0.25]", "[127.0.0.1]:%d" % self.shop.port))
                if table.startswith(UNORDERED) or kind == "hash" and want and "," in want:
                    answer = (answer[0], split_values(answer[1]))
                    expected = (expected[0], split_values(expected[1]))
                self.assertEqual(answer, expected, "%s: %s %r" % (who, table, key))

    # ---- inbound ----
    def test_inbound_routing(self):
        for i, (rcpt, where, steps) in enumerate(INBOUND):
            with self.subTest(rcpt=rcpt):
                self.check_steps(steps)
                seq = "in%d" % i
                self.send(seq, [rcpt])
                self.wait_destinations(seq, where)

    def test_refused_at_rcpt(self):
        for rcpt, source, code, text in REFUSED + KNOWN_DIFFERENCES:
            with self.subTest(rcpt=rcpt, client=source):
                with self.smtp(source) as s:
                    s.mail("partner@partner.example.net")
                    got = s.rcpt(rcpt)
                self.assertEqual((got[0], got[1].decode()), (code, text))

    def test_alias_loop_is_not_accepted(self):
        with self.smtp(OUTSIDE) as s:
            s.mail("partner@partner.example.net")
            code, text = s.rcpt("list-a@example-labs.com")
        # Postfix: 451 4.6.0 Alias expansion error after DATA; Tern at RCPT
        self.assertEqual(code, 451)
        self.assertIn(b"4.6.0", text)
        self.inst.wait_log(r"unreasonable virtual_alias_maps map nesting for list-a@example-labs\.com")

    def test_bare_postmaster_from_anyone(self):
        # RFC 5321 4.5.1: Postfix takes "postmaster" without a domain before
        # any restriction (reject_non_fqdn_recipient, a client's REJECT);
        # it becomes postmaster@$myorigin, an alias of root, of asmith
        self.check_steps([("hash:aliases", "postmaster", "root"), ("hash:aliases", "root", "asmith")])
        for i, (rcpt, source) in enumerate((("postmaster", OUTSIDE), ("PostMaster", QUARANTINED))):
            with self.subTest(rcpt=rcpt, client=source):
                self.send("pm%d" % i, [rcpt], source=source)
                self.wait_destinations("pm%d" % i, ["mbox:asmith"])
        with self.smtp(OUTSIDE) as s:
            s.mail("partner@partner.example.net")
            code, text = s.rcpt("postmaster+x")       # only the bare name
        self.assertEqual(code, 504, text)

    def test_stale_alias_target_bounces_alone(self):
        # the alias is listed, so RCPT is accepted (in Postfix too); the
        # target that no longer exists bounces, the others get the mail
        self.check_steps([("hash:virtual", "press@example.org",
                           "cwong@example.org, agency@pr.example.net, jdoe@example.org"),
                          ("hash:aliases", "jdoe", None)])
        self.send("stale", ["press@example.org"])
        self.wait_destinations("stale", ["mbox:cwong", "net:agency@pr.example.net"])
        deadline = time.time() + 20
        notices = []
        while time.time() < deadline and not notices:
            notices = [m for m in list(self.net.handler.messages)
                       if m[0] in ("", "<>") and b"X-Seq: stale\r\n" in m[2]]
            time.sleep(0.1)
        self.assertEqual(len(notices), 1, self.inst.log_tail(40))
        mail_from, rcpts, data = notices[0]
        self.assertEqual(rcpts, ["partner@partner.example.net"])
        text = data.decode()
        # the notice comes from MAILER-DAEMON at myorigin (example.org)
        self.assertIn("\r\nFrom: MAILER-DAEMON@example.org (Mail Delivery System)\r\n", text)
        self.assertIn("Final-Recipient: rfc822; jdoe@example.org", text)
        self.assertIn("Original-Recipient: rfc822;press@example.org", text)

    def test_mailbox_headers(self):
        # Postfix's local delivery: X-Original-To: the address as the mail
        # arrived, Delivered-To: the local recipient it was delivered for
        self.send("hdr1", ["Alice.Smith@example.org", "reception@example.org"])
        self.wait_destinations("hdr1", ["mbox:asmith", "mbox:bjones", "mbox:cwong"])
        for user, orig, delivered in (("asmith", "Alice.Smith@example.org", "asmith@example.org"),
                                      ("bjones", "reception@example.org", "helpdesk@example.org")):
            box = mailbox.mbox(os.path.join(self.inst.dir, "mail", user), create=False)
            try:
                msg = [m for m in box if m["X-Seq"] == "hdr1"][0]
            finally:
                box.close()
            self.assertEqual((msg["Return-Path"], msg["X-Original-To"], msg["Delivered-To"]),
                             ("<partner@partner.example.net>", orig, delivered), user)

    def test_starttls_and_size(self):
        # smtpd_tls_* with the site's key and certificate, the mandatory
        # protocol exclusions, message_size_limit in EHLO
        import ssl
        with self.smtp(OUTSIDE) as s:
            self.assertEqual(s.esmtp_features.get("size"), "52428800")
            self.assertIn("starttls", s.esmtp_features)
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s.starttls(context=ctx)
            cert = ssl.DER_cert_to_PEM_cert(s.sock.getpeercert(binary_form=True))
            with open(os.path.join(self.inst.site_dir, "tls", "mx1.example.org.crt")) as f:
                self.assertEqual(cert.strip(), f.read().strip())
            s.ehlo("mail.partner.example.net")
            s.mail("partner@partner.example.net")
            self.assertEqual(s.rcpt("alice.smith@example.org")[0], 250)

    def test_strict_rfc821_envelopes(self):
        with harness.RawSession(self.inst.port, source=OUTSIDE) as r:
            r.send(b"EHLO mail.partner.example.net\r\n")
            r.read_reply()
            r.send(b"MAIL FROM:partner@partner.example.net\r\n")
            self.assertEqual(r.read_reply(), (501, ["501 5.1.7 Bad sender address syntax"]))
            r.send(b"MAIL FROM:<partner@partner.example.net>\r\n")
            self.assertEqual(r.read_reply()[0], 250)
            r.send(b"RCPT TO:alice.smith@example.org\r\n")
            self.assertEqual(r.read_reply(), (501, ["501 5.1.3 Bad recipient address syntax"]))
            r.send(b"RCPT TO:<alice.smith@example.org>\r\n")
            self.assertEqual(r.read_reply()[0], 250)

    def test_vrfy_disabled(self):
        with self.smtp(OUTSIDE) as s:
            self.assertEqual(s.verify("asmith@example.org"), (502, b"5.5.1 VRFY command is disabled"))

    def test_database_down_is_temporary(self):
        # the HR database goes away: its addresses get 4xx at RCPT (Postfix:
        # 451 4.3.0 Temporary lookup failure), never 5xx; then it is back
        Servers.pg.stop()
        try:
            for rcpt in ("sales@example-labs.com", "nosuch@example-labs.com"):
                with self.smtp(OUTSIDE) as s:
                    s.mail("partner@partner.example.net")
                    code, text = s.rcpt(rcpt)
                self.assertEqual((code, text.decode()),
                                 (451, "4.3.0 <%s>: Temporary lookup failure" % rcpt))
        finally:
            Servers.pg.start()
        # a failed server is left alone for retry_interval (60 s, as in
        # Postfix); new daemons after a reload ask it at once
        self.inst.reload()
        deadline = time.time() + 70
        while True:
            with self.smtp(OUTSIDE) as s:
                s.mail("partner@partner.example.net")
                code, text = s.rcpt("d.lee@example-labs.com")
            if code == 250 or time.time() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(code, 250, text)
        self.send("dbback", ["d.lee@example-labs.com"])
        self.wait_destinations("dbback", ["mbox:dlee", "mbox:bjones", "net:bjones@mobile.example.net"])

    def test_internal_list_from_inside(self):
        # the group's members are aliased again: bjones@example.org has a
        # copy for his phone in the virtual table
        self.check_steps([("ldap:ldap-groups.cf", "all-staff@example.org",
                           "asmith@example.org, bjones@example.org, cwong@example.org, dlee@example.org"),
                          ("hash:virtual", "bjones@example.org",
                           "bjones@example.org, bjones@mobile.example.net")])
        self.send("staff", ["all-staff@example.org"], source="127.0.0.1",
                  sender="asmith@example.org")
        self.wait_destinations("staff", ["mbox:asmith", "mbox:bjones", "mbox:cwong", "mbox:dlee",
                                         "net:bjones@mobile.example.net"])

    def test_relay_from_cidr_network(self):
        self.send("relay1", ["someone@elsewhere.example.net"], source=CIDR_TRUSTED,
                  sender="backup@ws12.example.org")
        self.wait_destinations("relay1", ["net:someone@elsewhere.example.net"])

    # ---- outbound: canonical and masquerading of senders and headers ----
    def outbound(self, seq, sender, from_header, headers=b"", source="127.0.0.1"):
        """Send from an internal client to a remote address; (MAIL FROM,
        From:, the whole message) as the Internet's stand-in received them."""
        self.send(seq, ["partner@partner.example.net"], source=source, sender=sender,
                  headers=headers, from_header=from_header)
        self.wait_destinations(seq, ["net:partner@partner.example.net"])
        mail_from, _, data = self.net_messages(self.net, seq)[0]
        text = data.decode()
        head = text.split("\r\n\r\n", 1)[0]
        hdrs = {}
        for line in head.split("\r\n"):
            if ":" in line and not line[0].isspace():
                k, v = line.split(":", 1)
                hdrs.setdefault(k.lower(), v.strip())
        return mail_from, hdrs

    def test_outbound_login_becomes_published_address(self):
        # sender_canonical_maps: the bare key asmith matches asmith@ a local domain
        self.check_steps([("hash:sender_canonical", "asmith", "alice.smith@example.org")])
        mail_from, h = self.outbound("out1", "asmith@example.org", "Alice Smith <asmith@example.org>")
        self.assertEqual(mail_from, "alice.smith@example.org")
        self.assertEqual(h["from"], "Alice Smith <alice.smith@example.org>")

    def test_outbound_legacy_domain_is_local_for_bare_keys(self):
        # legacy.example.org is in mydestination (through local_domains), so
        # sender_canonical's bare key cwong matches before canonical.regexp
        mail_from, h = self.outbound("out2", "cwong@legacy.example.org", "cwong@legacy.example.org")
        self.assertEqual(mail_from, "carol.wong@example.org")
        self.assertEqual(h["from"], "carol.wong@example.org")

    def test_outbound_masquerading(self):
        # ws12.example.org is not local: no bare key; masqueraded afterwards,
        # and not looked up in sender_canonical again
        mail_from, h = self.outbound("out3", "bjones@ws12.example.org", "bjones@ws12.example.org",
                                     headers=b"To: ops@ws7.example.org\r\nCc: root@ws7.example.org,"
                                             b" payroll@ws3.hr.example.org\r\n")
        self.assertEqual(mail_from, "bjones@example.org")
        self.assertEqual(h["from"], "bjones@example.org")
        self.assertEqual(h["to"], "ops@example.org")
        # masquerade_exceptions (root) and the !hr.example.org exclusion
        self.assertEqual(h["cc"], "root@ws7.example.org, payroll@ws3.hr.example.org")

    def test_outbound_header_classes(self):
        # sender_canonical: From:, Reply-To: (header senders), with the
        # address extension carried over; recipient_canonical: To: (a header
        # recipient); masquerade_exceptions: root in Sender:
        self.check_steps([("hash:sender_canonical", "asmith+lists", None),
                          ("hash:sender_canonical", "asmith", "alice.smith@example.org"),
                          ("hash:sender_canonical", "dlee", "david.lee@example.org"),
                          ("hash:recipient_canonical", "bob.jones@example.org", "bjones@example.org")])
        mail_from, h = self.outbound(
            "out5", "asmith+lists@example.org", "asmith+lists@example.org",
            headers=b"To: Bob <bob.jones@example.org>, partner@partner.example.net\r\n"
                    b"Reply-To: dlee@example.org\r\nSender: root@ws12.example.org\r\n")
        self.assertEqual(mail_from, "alice.smith+lists@example.org")
        self.assertEqual(h["from"], "alice.smith+lists@example.org")
        self.assertEqual(h["to"], "Bob <bjones@example.org>, partner@partner.example.net")
        self.assertEqual(h["reply-to"], "david.lee@example.org")
        self.assertEqual(h["sender"], "root@ws12.example.org")

    def test_local_submission(self):
        # sendmail on the host (MAIL_CONFIG names the instance): bare names
        # are at $myorigin, the sender is canonical, the alias expands
        sendmail = os.path.join(harness.BUILD, "sendmail", "sendmail")
        env = dict(os.environ, MAIL_CONFIG=self.inst.dir)
        r = subprocess.run([sendmail, "-f", "asmith", "helpdesk", "partner@partner.example.net"],
                           input=b"Subject: from cron\nX-Seq: sm1\n\nnightly report\n",
                           capture_output=True, timeout=30, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_destinations("sm1", ["mbox:bjones", "mbox:cwong", "net:partner@partner.example.net"])
        mail_from, _, data = self.net_messages(self.net, "sm1")[0]
        self.assertEqual(mail_from, "alice.smith@example.org")
        self.assertIn(b"alice.smith@example.org", [l for l in data.split(b"\r\n")
                                                   if l.startswith(b"From:")][0])

    def test_outbound_headers_of_other_clients_are_left_alone(self):
        # local_header_rewrite_clients = permit_inet_interfaces (default):
        # a relay at 127.0.0.9 is trusted but not this host; its envelope is
        # rewritten, its headers are not
        mail_from, h = self.outbound("out4", "asmith@example.org", "asmith@ws12.example.org",
                                     source=CIDR_TRUSTED)
        self.assertEqual(mail_from, "alice.smith@example.org")
        self.assertEqual(h["from"], "asmith@ws12.example.org")


@unittest.skipIf(SKIP, SKIP or "")
class TestUnknownTableName(unittest.TestCase):
    """show_user_unknown_table_name = no (the site has Postfix's default,
    yes): replies and bounces say "User unknown" without the table."""

    def test_replies_without_table_name(self):
        inst = harness.Instance("unkname", main_cf={
            "show_user_unknown_table_name": "no", "virtual_alias_domains": "virt.test",
            "virtual_alias_maps": "inline:{a@virt.test=b@remote.example}",
            "local_recipient_maps": "inline:{x=1}", "relay_domains": "relay.test",
            "relay_recipient_maps": "inline:{x@relay.test=OK}"})
        self.addCleanup(inst.cleanup)
        inst.start()
        with inst.smtp() as s:
            s.ehlo("client.example")
            s.mail("sender@example.net")
            for rcpt in ("nobody@virt.test", "nobody@tern.test", "nobody@relay.test"):
                self.assertEqual(s.rcpt(rcpt), (550, ("5.1.1 <%s>: Recipient address rejected: "
                                                      "User unknown" % rcpt).encode()))


if __name__ == "__main__":
    unittest.main()
