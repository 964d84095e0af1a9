"""test_maps_pgsql_ldap.py: the pgsql: and ldap: tables against a real
PostgreSQL and a real slapd that the test starts on loopback
(dbservers.py): `tern map query` with Postfix's query files (quoting of
hostile keys, %u %d %1.. and result_format expansions, the domain
restriction, expansion_limit, bind, search bases made from the key, bad
query files), then a whole instance whose smtpd (chrooted, under its
system call filter) accepts and refuses relay recipients from a pgsql and
an ldap table and whose qmgr routes with a pgsql transport table. The
servers are stopped in the middle of the run: recipients get 4xx at RCPT,
mail already accepted is deferred, nothing bounces, and once the servers
are back everything goes through on connections the tables reopen."""
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dbservers  # noqa: E402
import harness  # noqa: E402
import sink  # noqa: E402

SUFFIX = "dc=example,dc=com"
SKIP = dbservers.available_postgres() or dbservers.available_slapd()

PG_SETUP = """
CREATE TABLE recipients (address text PRIMARY KEY, owner text);
INSERT INTO recipients VALUES ('alice@example.com', 'alice'),
  ('o''brien@example.com', 'obrien'), ('back\\slash@example.com', 'backslash'),
  ('@catchall.example.com', 'catchall');
CREATE TABLE aliases (address text, goto text, pos int);
INSERT INTO aliases VALUES ('list@example.com', 'one@example.net', 1),
  ('list@example.com', 'two@example.net', 2), ('list@example.com', 'three@example.net', 3),
  ('empty@example.com', '', 1), ('empty@example.com', NULL, 2);
CREATE TABLE transports (domain text PRIMARY KEY, transport text);
CREATE TABLE access (key text PRIMARY KEY, action text);
INSERT INTO access VALUES ('blocked@example.com', 'REJECT blocked by the database');
GRANT SELECT ON recipients, aliases, transports, access TO mail;
CREATE FUNCTION owner_of(a text) RETURNS text AS $$
  BEGIN RAISE NOTICE 'owner_of(%)', a; RETURN (SELECT owner FROM recipients WHERE address = a); END
$$ LANGUAGE plpgsql;
"""

LDIF = """dn: ou=people,{s}
objectClass: organizationalUnit
ou: people

dn: uid=bob,ou=people,{s}
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
mail: bob@example.org
mail: robert@example.org

dn: ou=example.org,{s}
objectClass: organizationalUnit
ou: example.org

dn: uid=carol,ou=example.org,{s}
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: C
mail: carol@example.org

dn: ou=groups,{s}
objectClass: organizationalUnit
ou: groups

dn: cn=staff,ou=groups,{s}
objectClass: groupOfNames
objectClass: extensibleObject
cn: staff
mail: staff@example.org
member: uid=bob,ou=people,{s}
member: uid=carol,ou=example.org,{s}
member: uid=ghost,ou=people,{s}

dn: cn=loop1,ou=groups,{s}
objectClass: groupOfNames
objectClass: extensibleObject
cn: loop1
mail: loop1@example.org
member: cn=loop2,ou=groups,{s}
member: uid=bob,ou=people,{s}

dn: cn=loop2,ou=groups,{s}
objectClass: groupOfNames
objectClass: extensibleObject
cn: loop2
mail: loop2@example.org
member: cn=loop1,ou=groups,{s}

dn: cn=routed,ou=groups,{s}
objectClass: groupOfNames
objectClass: extensibleObject
cn: routed
mail: routed@example.org
description: lists@lists.example.org
member: uid=bob,ou=people,{s}

dn: cn=byurl,ou=groups,{s}
objectClass: groupOfURLs
objectClass: extensibleObject
cn: byurl
mail: byurl@example.org
memberURL: ldap:///ou=example.org,{s}??one?(objectClass=inetOrgPerson)
""".format(s=SUFFIX)


@unittest.skipIf(SKIP, SKIP or "")
class TestDatabaseTables(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-dbtables-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.pg = dbservers.Postgres()
        try:
            cls.pg.sql("CREATE ROLE mail LOGIN PASSWORD 'mail-pw'")
            cls.pg.sql("CREATE DATABASE mail OWNER admin")
            cls.pg.sql(PG_SETUP, db="mail")
            cls.ldap = dbservers.Slapd(SUFFIX, tls=True)
        except Exception:
            cls.pg.cleanup()
            raise
        try:
            cls.ldap.add(LDIF)
        except Exception:
            cls.ldap.cleanup()
            cls.pg.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.ldap.cleanup()
        cls.pg.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----
    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    def pg_file(self, name, extra, hosts=None):
        return self.write(name, "hosts = %s\nuser = mail\npassword = mail-pw\ndbname = mail\n%s"
                          % (hosts or "inet:127.0.0.1:%d" % self.pg.port, extra))

    def ldap_file(self, name, extra, bind=True):
        text = "server_host = 127.0.0.1\nserver_port = %d\nversion = 3\n" % self.ldap.port
        if bind:
            text += "bind_dn = %s\nbind_pw = %s\n" % (self.ldap.admin_dn, self.ldap.ADMIN_PASSWORD)
        return self.write(name, text + extra)

    def query(self, spec, key):
        r = subprocess.run([harness.TERN, "-c", harness.build_config_dir(), "map", "query", spec, key],
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        return (r.returncode, r.stdout.decode(errors="replace").strip(),
                r.stderr.decode(errors="replace"))

    def assertFound(self, spec, key, value):
        rc, out, err = self.query(spec, key)
        self.assertEqual((rc, out), (0, value), "%s %r: %s" % (spec, key, err))

    def assertNotFound(self, spec, key):
        rc, out, err = self.query(spec, key)
        self.assertEqual((rc, out), (1, ""), "%s %r: %s" % (spec, key, err))

    def assertLookupError(self, spec, key, stderr_regex=None):
        rc, out, err = self.query(spec, key)
        self.assertEqual(rc, 2, "%s %r: %s %s" % (spec, key, out, err))
        if stderr_regex:
            self.assertRegex(err, stderr_regex)
        return err

    # ---- pgsql: through `tern map query` ----
    def test_pgsql_query_and_quoting(self):
        spec = "pgsql:" + self.pg_file("pg-rcpt.cf",
                                       "query = SELECT owner FROM recipients WHERE address = '%s'\n")
        self.assertFound(spec, "alice@example.com", "alice")
        self.assertFound(spec, "ALICE@Example.COM", "alice")          # keys are folded
        self.assertFound(spec, "o'brien@example.com", "obrien")
        self.assertFound(spec, "back\\slash@example.com", "backslash")
        self.assertFound(spec, "@catchall.example.com", "catchall")
        self.assertNotFound(spec, "nobody@example.com")
        # hostile keys are data, never SQL
        self.assertNotFound(spec, "x' OR '1'='1")
        self.assertNotFound(spec, "x'; DROP TABLE recipients; --")
        self.assertNotFound(spec, "x\\' OR 1=1 --")
        self.assertFound(spec, "alice@example.com", "alice")
        self.assertNotFound(spec, "caf\xe9@example.com")
        # not UTF-8: cannot be in the database, and is no query
        rc, out, err = self.query(spec, b"caf\xe9@example.com")
        self.assertEqual((rc, out), (1, ""), err)
        self.assertIn("not valid UTF-8", err)

    def test_pgsql_expansions(self):
        spec = "pgsql:" + self.pg_file(
            "pg-parts.cf", "query = SELECT owner FROM recipients WHERE address = '%u@%d'\n")
        self.assertFound(spec, "alice@example.com", "alice")
        # no domain: %d suppresses the query ("not found", no error)
        self.assertNotFound(spec, "alice")
        self.assertNotFound(spec, "@example.com")                     # %u of "@domain"
        spec = "pgsql:" + self.pg_file("pg-labels.cf", "query = SELECT '%3/%2/%1'\n")
        self.assertFound(spec, "u@mail.example.com", "mail/example/com")
        self.assertNotFound(spec, "u@example.com")
        spec = "pgsql:" + self.pg_file(
            "pg-list.cf", "query = SELECT goto FROM aliases WHERE address = '%s' ORDER BY pos\n"
            "result_format = %u at %d for %U\n")
        self.assertFound(spec, "list@example.com",
                         "one at example.net for list,two at example.net for list,"
                         "three at example.net for list")
        self.assertNotFound(spec, "empty@example.com")                # '' and NULL skipped
        spec = "pgsql:" + self.pg_file(
            "pg-limit.cf", "query = SELECT goto FROM aliases WHERE address = '%s'\n"
            "expansion_limit = 2\n")
        self.assertLookupError(spec, "list@example.com", "expansion_limit")
        # older parameters make the same query
        spec = "pgsql:" + self.pg_file(
            "pg-old.cf", "select_field = owner\ntable = recipients\nwhere_field = address\n"
            "additional_conditions = AND owner <> 'nobody'\n")
        self.assertFound(spec, "alice@example.com", "alice")
        spec = "pgsql:" + self.pg_file("pg-function.cf", "select_function = owner_of\n")
        rc, out, err = self.query(spec, "o'brien@example.com")
        self.assertEqual((rc, out), (0, "obrien"), err)
        # the server's notices go to the log (here: standard error), one line
        self.assertIn("PostgreSQL server says: NOTICE:  owner_of(o'brien@example.com)", err)
        self.assertNotFound(spec, "nobody@example.com")                 # NULL

    def test_pgsql_connection_is_kept(self):
        # each lookup counts the table's connections: one, kept throughout
        spec = "pgsql:" + self.pg_file(
            "pg-count.cf", "query = SELECT count(*)::text || ' for %s' FROM pg_stat_activity "
            "WHERE application_name = 'tern' AND usename = 'mail'\n")
        r = subprocess.run([harness.TERN, "-c", harness.build_config_dir(), "map", "query", spec, "-"],
                           input="a\nb\nc\nd\n", capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "a\t1 for a\nb\t1 for b\nc\t1 for c\nd\t1 for d\n")

    def test_pgsql_domain_restriction(self):
        domains = self.write("domains", "example.com OK\n")
        spec = "pgsql:" + self.pg_file(
            "pg-domain.cf", "query = SELECT owner FROM recipients WHERE address = '%%s'\n"
            "domain = other.test, texthash:%s\n" % domains)
        self.assertFound(spec, "alice@example.com", "alice")
        self.assertNotFound(spec, "alice@elsewhere.test")
        self.assertNotFound(spec, "alice")
        # with the server unreachable, keys outside the domains never ask it
        spec = "pgsql:" + self.pg_file(
            "pg-domain-down.cf", "query = SELECT 1\ndomain = example.com\n",
            hosts="inet:127.0.0.1:%d" % harness.free_port())
        self.assertNotFound(spec, "alice@elsewhere.test")
        self.assertLookupError(spec, "alice@example.com", "cannot connect")

    def test_pgsql_failures_are_temporary(self):
        q = "query = SELECT owner FROM recipients WHERE address = '%s'\n"
        down = "pgsql:" + self.pg_file("pg-down.cf", q, hosts="127.0.0.1:%d" % harness.free_port())
        self.assertLookupError(down, "alice@example.com", "Connection refused")
        bad_pw = "pgsql:" + self.write(
            "pg-badpw.cf", "hosts = 127.0.0.1:%d\nuser = mail\npassword = wrong\ndbname = mail\n%s"
            % (self.pg.port, q))
        self.assertLookupError(bad_pw, "alice@example.com", "password authentication failed")
        no_table = "pgsql:" + self.pg_file("pg-notable.cf",
                                           "query = SELECT x FROM missing WHERE y = '%s'\n")
        self.assertLookupError(no_table, "alice@example.com", "does not exist")
        # a slow answer on a kept connection: one wait of query_timeout, not
        # one more on a new connection
        slow = "pgsql:" + self.pg_file(
            "pg-slow.cf", "query = SELECT CASE WHEN '%s' = 'slow' THEN pg_sleep(5)::text "
            "ELSE 'fast' END\nquery_timeout = 2\n")
        t0 = time.time()
        r = subprocess.run([harness.TERN, "-c", harness.build_config_dir(), "map", "query", slow,
                            "quick", "slow"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stdout, "quick\tfast\n")
        self.assertIn("did not answer within 2 s", r.stderr)
        self.assertLess(time.time() - t0, 3.8)
        # a second server in hosts takes over from one that is down
        two = "pgsql:" + self.pg_file("pg-two.cf", q, hosts="inet:127.0.0.1:%d 127.0.0.1:%d"
                                      % (harness.free_port(), self.pg.port))
        self.assertFound(two, "alice@example.com", "alice")
        # the UNIX socket: libpq takes its directory and appends .s.PGSQL.PORT
        # (the port, not 5432 here, is named in a URI)
        uri = "pgsql:" + self.write(
            "pg-uri.cf", "hosts = postgresql:///mail?host=%s&port=%d&user=mail&password=mail-pw\n%s"
            % (self.pg.sockdir, self.pg.port, q))
        self.assertFound(uri, "alice@example.com", "alice")

    def test_module_loaded_only_from_a_safe_file(self):
        """pgsql: and ldap: are modules in daemon_directory; tern (root
        here) loads one only when no other account could have written it."""
        spec = "pgsql:" + self.pg_file("pg-mod.cf", "query = SELECT 'x' WHERE '%s' = 'k'\n")
        moddir = os.path.join(self.tmp, "modules")
        os.makedirs(moddir, exist_ok=True)
        shutil.copy(os.path.join(harness.BUILD, "map_pgsql.so"), moddir)
        module = os.path.join(moddir, "map_pgsql.so")
        conf = os.path.join(self.tmp, "modconf")
        os.makedirs(conf, exist_ok=True)
        with open(os.path.join(conf, "main.cf"), "w") as f:
            f.write("daemon_directory = %s\n" % moddir)

        def query():
            r = subprocess.run([harness.TERN, "-c", conf, "map", "query", spec, "k"],
                               capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
            return r.returncode, r.stdout, r.stderr
        os.chmod(module, 0o755)
        self.assertEqual(query()[:2], (0, "x\n"))
        for mode, owner in ((0o775, 0), (0o757, 0), (0o755, pwd.getpwnam("nobody").pw_uid)):
            os.chmod(module, mode)
            os.chown(module, owner, -1)
            rc, out, err = query()
            self.assertEqual(rc, 2, (oct(mode), owner, out))
            self.assertIn("refusing to load %s" % module, err)
        # a safe file in a directory another account may write: it could
        # be swapped for another file after the check
        os.chmod(module, 0o755)
        os.chown(module, 0, -1)
        for mode in (0o775, 0o777):
            os.chmod(moddir, mode)
            rc, out, err = query()
            self.assertEqual(rc, 2, oct(mode))
            self.assertIn("refusing to load %s: its directory %s is not root's alone"
                          % (module, moddir), err)
        os.chmod(moddir, 0o755)
        # daemon_directory holding a link to a module elsewhere: the
        # folder the link leads to is checked as well
        other = os.path.join(self.tmp, "modules-elsewhere")
        os.makedirs(other, exist_ok=True)
        os.rename(module, os.path.join(other, "map_pgsql.so"))
        os.symlink(os.path.join(other, "map_pgsql.so"), module)
        self.assertEqual(query()[:2], (0, "x\n"))
        os.chmod(other, 0o777)
        rc, out, err = query()
        self.assertEqual(rc, 2)
        self.assertIn("its directory %s is not root's alone" % other, err)
        os.chmod(other, 0o755)
        os.unlink(os.path.join(other, "map_pgsql.so"))
        rc, out, err = query()
        self.assertEqual(rc, 2)
        self.assertIn("cannot find the module %s" % module, err)

    def test_pgsql_bad_query_files(self):
        cases = [
            ("hosts = 127.0.0.1\nthis line has no equals sign\n", r"pg-bad\.cf:2: expected"),
            ("hosts = 127.0.0.1\ndbname = mail\nquery = SELECT '%x'\n", r"unknown expansion \"%x\""),
            ("hosts = 127.0.0.1\ndbname = mail\nquery = SELECT '%s' %\n", r"'%' at the end"),
            ("hosts = 127.0.0.1\ndbname = mail\nquery = SELECT 1\nresult_format = %Q\n",
             r"unknown expansion"),
            ("hosts = 127.0.0.1\nquery = SELECT 1\n", r"dbname is not set"),
            ("hosts = 127.0.0.1\ndbname = mail\n", r"no query"),
            ("hosts = 127.0.0.1:port\ndbname = mail\nquery = SELECT 1\n", r"bad port"),
            ("hosts = 127.0.0.1\ndbname = mail\nquery = SELECT 1\nexpansion_limit = -1\n",
             r"expansion_limit"),
            # a domain list file is read, as Postfix does: one that is not
            # there is an error
            ("hosts = 127.0.0.1\ndbname = mail\nquery = SELECT 1\ndomain = /nonexistent/domains\n",
             r"domain: cannot read /nonexistent/domains"),
        ]
        for text, regex in cases:
            spec = "pgsql:" + self.write("pg-bad.cf", text)
            rc, out, err = self.query(spec, "alice@example.com")
            self.assertEqual(rc, 2, text)
            self.assertRegex(err, regex, text)
        self.assertLookupError("pgsql:" + os.path.join(self.tmp, "missing.cf"), "x",
                               "cannot open")
        # a misspelt name is reported, and the rest of the file still works
        spec = "pgsql:" + self.pg_file("pg-typo.cf", "query = SELECT owner FROM recipients "
                                       "WHERE address = '%s'\nreslut_format = x%s\n")
        rc, out, err = self.query(spec, "alice@example.com")
        self.assertEqual((rc, out), (0, "alice"))
        self.assertRegex(err, r'pg-typo\.cf, line 6: unknown parameter "reslut_format" ignored')

    # ---- ldap: through `tern map query` ----
    def test_ldap_query_and_quoting(self):
        spec = "ldap:" + self.ldap_file("ldap.cf", "search_base = %s\nquery_filter = (mail=%%s)\n"
                                        "result_attribute = uid\n" % SUFFIX)
        self.assertFound(spec, "bob@example.org", "bob")
        self.assertFound(spec, "Robert@EXAMPLE.org", "bob")
        self.assertNotFound(spec, "nobody@example.org")
        for hostile in ("*", "*)(uid=*", "bob@example.org)(|(mail=*", "\\2a", "b*@example.org"):
            self.assertNotFound(spec, hostile)
        spec = "ldap:" + self.ldap_file("ldap-multi.cf", "search_base = %s\n"
                                        "query_filter = (uid=%%u)\nresult_attribute = mail cn\n"
                                        "result_format = <%%s>\n" % SUFFIX)
        rc, out, err = self.query(spec, "bob@example.org")
        self.assertEqual(rc, 0, err)
        self.assertEqual(sorted(out.split(",")),
                         ["<Bob Builder>", "<bob@example.org>", "<robert@example.org>"])
        spec = "ldap:" + self.ldap_file("ldap-limit.cf", "search_base = %s\n"
                                        "query_filter = (uid=%%u)\nresult_attribute = mail\n"
                                        "expansion_limit = 1\n" % SUFFIX)
        self.assertLookupError(spec, "bob@example.org", "expansion_limit")

    def test_ldap_groups(self):
        """special_result_attribute (member DNs, memberURL URLs), leaf and
        terminal result attributes, loops, recursion_limit."""
        text = ("search_base = %s\nquery_filter = (mail=%%s)\nresult_attribute =\n"
                "special_result_attribute = member memberURL\nleaf_result_attribute = mail\n"
                "terminal_result_attribute = description\n" % SUFFIX)
        spec = "ldap:" + self.ldap_file("ldap-groups.cf", text)

        def found(key):
            rc, out, err = self.query(spec, key)
            self.assertEqual(rc, 0, "%s: %s" % (key, err))
            return sorted(out.split(",")), err
        members, err = found("staff@example.org")
        self.assertEqual(members, ["bob@example.org", "carol@example.org", "robert@example.org"])
        self.assertRegex(err, r'entry "uid=ghost,ou=people,dc=example,dc=com" not found, skipped')
        self.assertEqual(found("loop1@example.org")[0], ["bob@example.org", "robert@example.org"])
        self.assertEqual(found("loop2@example.org")[0], ["bob@example.org", "robert@example.org"])
        self.assertEqual(found("routed@example.org")[0], ["lists@lists.example.org"])
        self.assertEqual(found("byurl@example.org")[0], ["carol@example.org"])
        self.assertEqual(found("bob@example.org")[0], ["bob@example.org", "robert@example.org"])
        deep = "ldap:" + self.ldap_file("ldap-deep.cf", text + "recursion_limit = 1\n")
        self.assertEqual(self.query(deep, "staff@example.org")[0], 0)
        self.assertLookupError(deep, "loop1@example.org", "recursion_limit = 1")
        limited = "ldap:" + self.ldap_file("ldap-glimit.cf", text + "expansion_limit = 2\n")
        self.assertLookupError(limited, "staff@example.org", "expansion_limit = 2")

    def test_ldap_start_tls(self):
        base = ("search_base = %s\nquery_filter = (mail=%%s)\nresult_attribute = uid\n"
                "start_tls = yes\n" % SUFFIX)
        spec = "ldap:" + self.ldap_file("ldap-tls.cf", base + "tls_ca_cert_file = %s\n"
                                        "tls_require_cert = yes\n" % self.ldap.ca_file)
        self.assertFound(spec, "bob@example.org", "bob")
        # a certificate that the given CA did not sign
        spec = "ldap:" + self.ldap_file("ldap-tls-wrong.cf", base + "tls_ca_cert_file = "
                                        "/etc/ssl/certs/ca-certificates.crt\n"
                                        "tls_require_cert = yes\n")
        self.assertLookupError(spec, "bob@example.org", "STARTTLS with LDAP server .* failed")
        # as in Postfix, tls_require_cert = no does not check the certificate
        spec = "ldap:" + self.ldap_file("ldap-tls-nocheck.cf", base)
        self.assertFound(spec, "bob@example.org", "bob")
        spec = "ldap:" + self.ldap_file("ldap-tls-badfile.cf", base + "tls_ca_cert_file = "
                                        "/nonexistent/ca.pem\ntls_require_cert = demand\n")
        self.assertLookupError(spec, "bob@example.org", "cannot set up TLS")

    def test_ldap_search_base_scope_and_bind(self):
        # a search base made from the key: a base that does not exist is "not found"
        spec = "ldap:" + self.ldap_file("ldap-base.cf", "search_base = ou=%%d,%s\n"
                                        "query_filter = (mail=%%s)\nresult_attribute = uid\n"
                                        "bind = no\n" % SUFFIX, bind=False)
        self.assertFound(spec, "carol@example.org", "carol")
        self.assertNotFound(spec, "bob@example.org")
        self.assertNotFound(spec, "x@no-such-ou.test")
        self.assertNotFound(spec, "x@a,dc=example,dc=com")              # DN-quoted
        spec = "ldap:" + self.ldap_file("ldap-scope.cf", "search_base = %s\nscope = one\n"
                                        "query_filter = (mail=%%s)\nresult_attribute = uid\n"
                                        % SUFFIX)
        self.assertNotFound(spec, "bob@example.org")
        spec = "ldap:" + self.write(
            "ldap-badpw.cf", "server_host = ldap://127.0.0.1:%d\nversion = 3\nbind_dn = %s\n"
            "bind_pw = wrong\nsearch_base = %s\nquery_filter = (mail=%%s)\nresult_attribute = uid\n"
            % (self.ldap.port, self.ldap.admin_dn, SUFFIX))
        self.assertLookupError(spec, "bob@example.org", "Invalid credentials")
        # version defaults to 2, as in Postfix; this slapd speaks only 3
        spec = "ldap:" + self.write(
            "ldap-v2.cf", "server_host = 127.0.0.1:%d\nsearch_base = %s\n"
            "query_filter = (mail=%%s)\nresult_attribute = uid\n" % (self.ldap.port, SUFFIX))
        self.assertLookupError(spec, "bob@example.org")
        spec = "ldap:" + self.write(
            "ldap-down.cf", "server_host = 127.0.0.1\nserver_port = %d\nversion = 3\n"
            "search_base = %s\ntimeout = 2\n" % (harness.free_port(), SUFFIX))
        self.assertLookupError(spec, "bob@example.org", "Can't contact LDAP server")

    def test_ldap_bad_query_files(self):
        cases = [
            ("search_base = %s\nquery_filter = (mail=%%z)\n" % SUFFIX, r"unknown expansion"),
            ("scope = everything\n", r"expected sub, one or base"),
            ("bind = sasl\n", r"bind = sasl is not supported"),
            ("start_tls = maybe\n", r"start_tls"),
            ("tls_require_cert = sometimes\n", r"tls_require_cert"),
            ("sasl_mechs = GSSAPI\n", r"not supported"),
            ("recursion_limit = 0\n", r"recursion_limit"),
            ("result_attribute =\nspecial_result_attribute = member\n", r"result_attribute"),
            ("server_host = http://127.0.0.1/\n", r"not an LDAP URL"),
            ("version = 4\n", r"version"),
            ("timeout = 0\n", r"timeout"),
        ]
        for text, regex in cases:
            spec = "ldap:" + self.write("ldap-bad.cf", text)
            rc, out, err = self.query(spec, "bob@example.org")
            self.assertEqual(rc, 2, text)
            self.assertRegex(err, regex, text)

    # ---- a whole instance ----
    def make_instance(self, name, sink_port, chroot, extra=None):
        # retry_interval: a server that failed is left alone this long
        # (60 s by default, as in Postfix)
        relay_pg = self.pg_file("relay-pg.cf", "query = SELECT owner FROM recipients "
                                "WHERE address = '%s'\nretry_interval = 1\n")
        # STARTTLS with the CA checked: the CA file is read before the chroot
        relay_ldap = self.ldap_file("relay-ldap.cf", "search_base = %s\nquery_filter = (mail=%%s)\n"
                                    "result_attribute = uid\ndomain = example.org\n"
                                    "start_tls = yes\ntls_require_cert = yes\n"
                                    "tls_ca_cert_file = %s\n" % (SUFFIX, self.ldap.ca_file))
        # domain: only addresses in example.com cost a query (and need the
        # server), so example.org mail is accepted while PostgreSQL is down
        access = self.pg_file("access-pg.cf", "query = SELECT action FROM access "
                              "WHERE key = '%s'\nretry_interval = 1\ndomain = example.com\n")
        transport = self.pg_file("transport-pg.cf", "query = SELECT transport FROM transports "
                                 "WHERE domain = '%s'\nretry_interval = 1\n")
        self.pg.sql("DELETE FROM transports; INSERT INTO transports VALUES "
                    "('example.com', 'smtp:[127.0.0.1]:%d'), ('example.org', 'smtp:[127.0.0.1]:%d')"
                    % (sink_port, sink_port), db="mail")
        main_cf = {
            "relay_domains": "example.com, example.org",
            # ldap first: with PostgreSQL down, example.org is still known
            "relay_recipient_maps": "ldap:%s, pgsql:%s" % (relay_ldap, relay_pg),
            "transport_maps": "pgsql:" + transport,
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "smtpd_recipient_restrictions": "check_recipient_access pgsql:%s, "
                                            "reject_unlisted_recipient, permit_mynetworks, "
                                            "reject_unauth_destination" % access,
        }
        main_cf.update(extra or {})
        inst = harness.Instance(name, main_cf=main_cf, chroot=chroot)
        self.addCleanup(inst.cleanup)
        return inst

    def test_instance_accepts_refuses_and_waits_out_outages(self):
        out = sink.Sink()
        self.addCleanup(out.stop)
        inst = self.make_instance("dbtables", out.port, chroot=os.geteuid() == 0)
        inst.start()
        self.assertEqual(inst.tern("check", check=False).returncode, 0)
        # known in PostgreSQL, known in LDAP, unknown in both
        self.assertEqual(inst.rcpt_reply("alice@example.com")[0], 250)
        self.assertEqual(inst.rcpt_reply("robert@example.org")[0], 250)
        code, text = inst.rcpt_reply("nobody@example.com")[:2]
        self.assertEqual(code, 550, text)
        self.assertIn("5.1.1", text)
        self.assertEqual(inst.rcpt_reply("nobody@example.org")[0], 550)
        # an access table in PostgreSQL (check_recipient_access)
        code, text = inst.rcpt_reply("blocked@example.com")
        self.assertEqual(code // 100, 5, text)
        self.assertIn("blocked by the database", text)
        inst.send_mail(["alice@example.com", "bob@example.org"], "both up")
        msgs = out.wait(1)
        self.assertEqual(sorted(msgs[0][1]), ["alice@example.com", "bob@example.org"])

        # PostgreSQL goes away: its recipients wait at RCPT (4xx), LDAP's are
        # accepted, and their routing (the pgsql transport table) defers them
        self.pg.stop()
        try:
            code, text = inst.rcpt_reply("alice@example.com")[:2]
            self.assertEqual(code // 100, 4, text)
            inst.send_mail(["bob@example.org"], "postgres down")
            inst.wait_log(r"status=deferred.*transport table lookup failure", timeout=20)
            time.sleep(2)
            self.assertEqual(len(out.handler.messages), 1)
        finally:
            self.pg.start()
        out.wait(2, timeout=30)
        self.assertEqual(out.handler.messages[1][1], ["bob@example.org"])
        time.sleep(1.1)         # retry_interval
        self.assertEqual(inst.rcpt_reply("alice@example.com")[0], 250)

        # slapd goes away: its recipients wait; example.com is not in the
        # ldap table's domain, so it is not asked about alice@example.com
        self.ldap.stop()
        try:
            code, text = inst.rcpt_reply("bob@example.org")
            self.assertEqual(code // 100, 4, text)
            self.assertEqual(inst.rcpt_reply("alice@example.com")[0], 250)
        finally:
            self.ldap.start()
        self.assertEqual(inst.rcpt_reply("bob@example.org")[0], 250)
        inst.send_mail(["alice@example.com", "bob@example.org"], "both back")
        out.wait(3, timeout=30)
        inst.wait_empty(timeout=30)
        log = inst.log_text()
        self.assertNotRegex(log, r"status=bounced")
        self.assertNotIn("sender non-delivery notification", log)
        self.assertNotRegex(log, r"signal|SIGSYS|killed")
        self.assertRegex(log, r"connection to (PostgreSQL|LDAP) server .* lost")

    @unittest.skipUnless(os.geteuid() == 0, "chroot needs root")
    def test_unix_socket_in_chroot_is_a_clear_error(self):
        out = sink.Sink()
        self.addCleanup(out.stop)
        uri = self.write("relay-uri.cf",
                         "hosts = postgresql:///mail?host=%s&port=%d&user=mail&password=mail-pw\n"
                         "query = SELECT owner FROM recipients WHERE address = '%%s'\n"
                         % (self.pg.sockdir, self.pg.port))
        inst = self.make_instance("dbtables-unix", out.port, chroot=True,
                                  extra={"relay_recipient_maps": "pgsql:" + uri})
        inst.start()
        code, text = inst.rcpt_reply("alice@example.com")[:2]
        self.assertEqual(code // 100, 4, text)
        inst.wait_log(r"runs chrooted in queue_directory: name the server by IP address")
        inst.stop()
        # without chroot (and still under the system call filter), the same
        # table works, and so does an LDAP server named by host name
        by_name = self.write("relay-ldap-name.cf",
                             "server_host = localhost:%d\nversion = 3\nsearch_base = %s\n"
                             "query_filter = (mail=%%s)\nresult_attribute = uid\n"
                             "domain = example.org\n" % (self.ldap.port, SUFFIX))
        flat = self.make_instance("dbtables-unix2", out.port, chroot=False,
                                  extra={"relay_recipient_maps": "ldap:%s, pgsql:%s"
                                         % (by_name, uri)})
        flat.start()
        self.assertEqual(flat.rcpt_reply("alice@example.com")[0], 250)
        self.assertEqual(flat.rcpt_reply("robert@example.org")[0], 250)
        self.assertEqual(flat.rcpt_reply("nobody@example.org")[0], 550)
        self.assertNotRegex(flat.log_text(), r"signal|SIGSYS|warning: (pgsql|ldap)")

if __name__ == "__main__":
    unittest.main()
