"""test_admin_conf.py: the administrator's configuration commands, as a
Postfix administrator uses postconf, postmap and newaliases: `tern conf`
(effective values, -n, -d with descriptions, names, -h, -e and -X editing
main.cf in place, -M), `tern map build` and `tern map query` on the table
types, and `tern aliases` rebuilding an instance's aliases so that mail to
a new alias is delivered. Most instances are never started."""
import os
import re
import subprocess
import time
import unittest

import harness

SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def main_cf_settings(text):
    """{name: value} of main.cf text, read as Tern reads it: continuation
    lines joined with one space, comments and blank lines skipped, the last
    setting of a name wins."""
    settings, current = {}, None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0].isspace():
            settings[current] += " " + stripped
            continue
        name, _, value = line.partition("=")
        current = name.strip()
        settings[current] = value.strip()
    return settings


def params_def():
    """[(name, type, default or None when it is a build-time macro,
    description)] of lib/global/params.def."""
    out = []
    pattern = re.compile(r'^PARAM\((\w+), (PT_\w+), ("(?:[^"\\]|\\.)*"|\w+), "((?:[^"\\]|\\.)*)"\)\s*$')
    for line in read(os.path.join(SOURCE, "lib", "global", "params.def")).splitlines():
        if not line.startswith("PARAM("):
            continue
        m = pattern.match(line)
        assert m, "cannot read params.def line: " + line
        default = m.group(3)
        default = (default[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                   if default.startswith('"') else None)
        out.append((m.group(1), m.group(2), default, m.group(4).replace('\\"', '"')))
    return out


class ConfTestCase(unittest.TestCase):
    def setUp(self):
        self.inst = harness.Instance("conf")
        self.addCleanup(self.inst.cleanup)
        self.main_cf = os.path.join(self.inst.dir, "main.cf")

    def conf(self, *args, check=True):
        return self.inst.tern("conf", *args, check=check)


class TestConfShow(ConfTestCase):
    def test_effective_values_sorted_and_expanded(self):
        r = self.conf()
        self.assertEqual(r.stderr, "")
        lines = r.stdout.splitlines()
        self.assertIn("myhostname = tern.test", lines)
        self.assertIn("mydomain = test", lines)              # computed from myhostname
        self.assertIn("queue_directory = %s/queue" % self.inst.dir, lines)
        # $name references are expanded, as the daemons see them
        self.assertIn("smtpd_banner = tern.test ESMTP Tern", lines)
        self.assertIn("mydestination = tern.test, localhost", lines)
        self.assertIn("relay_domains =", lines)
        names = [l.split(" =")[0] for l in lines]
        self.assertEqual(names, sorted(names))
        self.assertEqual(set(names), {p[0] for p in params_def()})

    def test_n_shows_exactly_what_main_cf_sets(self):
        self.inst.set_main_cf(["smtpd_recipient_restrictions_note = ignored",
                               "smtpd_banner = $myhostname",
                               "    ready for mail", "max_idle = 50s"])
        expected = main_cf_settings(read(self.main_cf))
        r = self.conf("-n")
        got = r.stdout.splitlines()
        self.assertEqual(got, sorted(got))
        self.assertEqual(got, ["%s = %s" % (n, v) if v else "%s =" % n
                               for n, v in sorted(expected.items())])
        self.assertIn("smtpd_banner = $myhostname ready for mail", got)   # as written
        self.assertIn("mydestination = $myhostname, localhost", got)
        self.assertNotIn("smtpd_timeout", r.stdout)

    def test_d_shows_defaults_with_descriptions(self):
        r = self.conf("-d", "smtpd_timeout")
        self.assertEqual(r.stdout, "# Time smtpd waits for a client command or data line before "
                                   "disconnecting\nsmtpd_timeout = 300s\n")
        self.inst.set_main_cf({"smtpd_timeout": "20s"})
        self.assertEqual(self.conf("-d", "-h", "smtpd_timeout").stdout, "300s\n")
        self.assertEqual(self.conf("smtpd_timeout").stdout, "smtpd_timeout = 20s\n")
        # every parameter of the table, with its default and description
        lines = self.conf("-d").stdout.splitlines()
        self.assertEqual(len(lines), 2 * len(params_def()))
        shown = {}
        for comment, setting in zip(lines[0::2], lines[1::2]):
            self.assertTrue(comment.startswith("# "), comment)
            name, _, value = setting.partition(" =")
            shown[name] = (value.strip(), comment[2:])
        for name, _, default, description in params_def():
            self.assertIn(name, shown)
            self.assertEqual(shown[name][1], description)
            if default is not None:
                self.assertEqual(shown[name][0], default, name)

    def test_named_parameters_and_unknown_names(self):
        r = self.conf("myhostname", "no_such_parameter", "mail_name", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "myhostname = tern.test\nmail_name = Tern\n")
        self.assertEqual(r.stderr, "tern: warning: no_such_parameter: unknown parameter\n")
        r = self.conf("-h", "myhostname", "mydestination")
        self.assertEqual(r.stdout, "tern.test\ntern.test, localhost\n")
        # per-transport settings have the value of their table parameter
        self.assertEqual(self.conf("-h", "relay_destination_recipient_limit").stdout, "50\n")
        self.inst.set_main_cf({"relay_destination_recipient_limit": "7"})
        self.assertEqual(self.conf("-h", "relay_destination_recipient_limit").stdout, "7\n")
        r = self.conf("-n", "relay_destination_recipient_limit", "smtpd_timeout", "bogus_x",
                      check=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "relay_destination_recipient_limit = 7\n")
        self.assertIn("bogus_x: unknown parameter", r.stderr)

    def test_errors(self):
        empty = os.path.join(self.inst.dir, "empty")
        os.mkdir(empty)
        r = harness.tern("-c", empty, "conf", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot open %s/main.cf" % empty, r.stderr)
        r = harness.tern("conf", "-c", empty, "-e", "max_use=5", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertFalse(os.path.exists(os.path.join(empty, "main.cf")))
        r = self.conf("-n", "-d", check=False)
        self.assertEqual(r.returncode, 2)
        r = self.conf("--help")
        for option in ("-n", "-d", "-h", "-e NAME=VALUE", "-X NAME", "-M"):
            self.assertIn(option, r.stdout)


class TestConfEdit(ConfTestCase):
    def write_main_cf(self, body):
        """main.cf: the instance's settings and then body."""
        text = read(self.main_cf) + body
        write(self.main_cf, text)
        return text

    def test_replaces_a_continued_setting_keeping_everything_else(self):
        before = self.write_main_cf(
            "# restrictions for clients\n"
            "smtpd_banner = $myhostname\n"
            "    ESMTP ready\n"
            "# a comment between continuation lines stays\n"
            "\tand more text\n"
            "\n"
            "max_idle = 50s   \n"
            "# the end\n")
        st = os.stat(self.main_cf)
        os.chmod(self.main_cf, 0o640)
        self.conf("-e", "smtpd_banner=$myhostname welcomes you")
        expected = before.replace("smtpd_banner = $myhostname\n    ESMTP ready\n"
                                  "# a comment between continuation lines stays\n\tand more text\n",
                                  "smtpd_banner = $myhostname welcomes you\n"
                                  "# a comment between continuation lines stays\n")
        self.assertNotEqual(expected, before)
        self.assertEqual(read(self.main_cf), expected)
        self.assertEqual(self.conf("smtpd_banner").stdout, "smtpd_banner = tern.test welcomes you\n")
        after = os.stat(self.main_cf)
        self.assertEqual(after.st_mode & 0o7777, 0o640)
        self.assertEqual((after.st_uid, after.st_gid), (st.st_uid, st.st_gid))
        self.assertEqual([n for n in os.listdir(self.inst.dir) if n.startswith(".main.cf")], [])
        self.assertEqual(self.inst.tern("check").returncode, 0)

    def test_appends_new_settings(self):
        before = read(self.main_cf)
        self.conf("-e", "max_use = 7", "smtpd_timeout=20s")
        self.assertEqual(read(self.main_cf), before + "max_use = 7\nsmtpd_timeout = 20s\n")
        # a file without a final newline gets one before an appended line
        write(self.main_cf, before.rstrip("\n"))
        self.conf("-e", "relay_domains=example.org")
        edited = before.replace("relay_domains =\n", "relay_domains = example.org\n")
        self.assertEqual(read(self.main_cf), edited.rstrip("\n"))
        self.conf("-e", "max_use=8")
        self.assertEqual(read(self.main_cf), edited + "max_use = 8\n")
        self.assertEqual(self.conf("-n", "-h", "max_use").stdout, "8\n")

    def test_refuses_a_bad_time_value_without_touching_the_file(self):
        before = read(self.main_cf, "rb")
        ino = os.stat(self.main_cf).st_ino
        r = self.conf("-e", "smtpd_timeout=soon", "max_use=5", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("parameter smtpd_timeout: bad time value \"soon\"", r.stderr)
        self.assertIn("unchanged", r.stderr)
        self.assertEqual(read(self.main_cf, "rb"), before)
        self.assertEqual(os.stat(self.main_cf).st_ino, ino)
        # a value that breaks a parameter referring to it is refused too
        self.conf("-e", "my_timeout=30s", "smtpd_timeout=$my_timeout")
        before = read(self.main_cf, "rb")
        r = self.conf("-e", "my_timeout=later", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("smtpd_timeout: bad time value", r.stderr)
        self.assertEqual(read(self.main_cf, "rb"), before)
        for bad in ("max_use=many", "smtpd_helo_required=perhaps", "message_size_limit=big",
                    "relay_destination_recipient_limit=lots"):
            r = self.conf("-e", bad, check=False)
            self.assertEqual(r.returncode, 1, bad)
            self.assertIn("bad", r.stderr)
        self.assertEqual(read(self.main_cf, "rb"), before)

    def test_names_it_accepts(self):
        before = read(self.main_cf, "rb")
        r = self.conf("-e", "smtpd_tiemout=10s", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("smtpd_tiemout: unknown parameter", r.stderr)
        r = self.conf("-e", "bad name=1", check=False)
        self.assertEqual(r.returncode, 1)
        r = self.conf("-e", "just_a_name", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("expected NAME=VALUE", r.stderr)
        self.assertEqual(read(self.main_cf, "rb"), before)
        # per-transport settings, and a macro of one's own that is referred to
        self.conf("-e", "smtp_destination_concurrency_limit=4",
                  "site_banner=Welcome", "smtpd_banner=$myhostname $site_banner")
        self.assertEqual(self.conf("-h", "smtpd_banner", "smtp_destination_concurrency_limit").stdout,
                         "tern.test Welcome\n4\n")
        r = self.inst.tern("check")
        self.assertNotIn("unknown parameter", r.stdout)

    def test_reply_codes_are_checked(self):
        # a reject code that would accept, or a defer code that would refuse,
        # is refused by `tern conf -e` and named by `tern check`
        before = read(self.main_cf, "rb")
        r = self.conf("-e", "reject_code=250", "defer_code=550", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn('reject_code: bad reply code (400 to 599) value "250"', r.stderr)
        self.assertIn('defer_code: bad reply code (400 to 499) value "550"', r.stderr)
        self.assertEqual(read(self.main_cf, "rb"), before)
        with open(self.main_cf, "a") as f:
            f.write("reject_code = 250\n")
        r = self.inst.tern("check", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("reject_code", r.stdout + r.stderr)
        self.conf("-e", "reject_code=521", "defer_code=451")
        self.assertEqual(self.inst.tern("check").returncode, 0)

    def test_remove_settings(self):
        before = self.write_main_cf("smtpd_banner = hello\n  world\n# kept\nmax_idle = 50s\n")
        self.conf("-X", "smtpd_banner", "relay_domains")
        self.assertEqual(read(self.main_cf),
                         before.replace("relay_domains =\n", "")
                               .replace("smtpd_banner = hello\n  world\n", ""))
        self.assertEqual(self.conf("smtpd_banner").stdout, "smtpd_banner = tern.test ESMTP Tern\n")
        self.assertNotIn("smtpd_banner", self.conf("-n").stdout)
        r = self.conf("-X", "smtpd_banner")
        self.assertIn("not set", r.stderr)


class TestConfServices(ConfTestCase):
    def test_services_normalized(self):
        master_cf = os.path.join(self.inst.dir, "master.cf")
        written = [l.split() for l in read(master_cf).splitlines()
                   if l.strip() and not l.startswith("#")]
        extra = "127.0.0.1:%d" % (self.inst.port + 1)
        with open(master_cf, "a") as f:
            f.write("# a second listener\n"
                    "%s   inet n - n - 10 smtpd\n"
                    "   -o smtpd_banner=second\n"
                    "# a comment inside the entry\n"
                    "   -o { smtpd_timeout = 20s }\n" % extra)
        lines = self.conf("-M").stdout.splitlines()
        self.assertEqual([l.split() for l in lines[:-1]], written)
        qmgr = [l for l in lines if l.startswith("qmgr ")]
        self.assertEqual(qmgr, ["qmgr       unix  n       -       n       300     1       qmgr"])
        self.assertEqual(lines[-1], "%s inet  n       -       n       -       10      smtpd "
                                    "-o smtpd_banner=second -o { smtpd_timeout = 20s }" % extra)
        self.assertEqual(self.conf("-M", "qmgr/unix").stdout, qmgr[0] + "\n")
        self.assertEqual(self.conf("-M", extra).stdout, lines[-1] + "\n")
        r = self.conf("-M", "qmgr/inet", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("qmgr/inet: no such service", r.stderr)
        with open(master_cf, "a") as f:
            f.write("broken unix - - n\n")
        r = self.conf("-M", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"master\.cf:\d+: .*8 columns")


class TestMap(unittest.TestCase):
    def setUp(self):
        self.inst = harness.Instance("map")
        self.addCleanup(self.inst.cleanup)
        self.dir = self.inst.dir

    def tern(self, *args, check=False, input=None):
        return subprocess.run([harness.TERN] + list(args), capture_output=True, text=True,
                              timeout=60, input=input)

    def path(self, name, text=None):
        p = os.path.join(self.dir, name)
        if text is not None:
            write(p, text)
        return p

    def test_build_and_query_hash(self):
        src = self.path("transport", "# transport(5)\nExample.COM  smtp:[relay.example]\n"
                                     "user@example.org  error:5.1.1 gone,\n   really gone\n")
        r = self.tern("map", "build", "hash:" + src)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertTrue(os.path.exists(src + ".db"))
        r = self.tern("map", "query", "hash:" + src, "example.com")
        self.assertEqual((r.returncode, r.stdout), (0, "smtp:[relay.example]\n"))
        r = self.tern("map", "query", "hash:" + src, "EXAMPLE.Com")
        self.assertEqual((r.returncode, r.stdout), (0, "smtp:[relay.example]\n"))
        r = self.tern("map", "query", "hash:" + src, "USER@example.org")
        self.assertEqual(r.stdout, "error:5.1.1 gone, really gone\n")
        r = self.tern("map", "query", "hash:" + src, "example.net")
        self.assertEqual((r.returncode, r.stdout, r.stderr), (1, "", ""))
        r = self.tern("map", "query", "hash:" + src, "example.com", "example.net")
        self.assertEqual((r.returncode, r.stdout), (1, "example.com\tsmtp:[relay.example]\n"))
        r = self.tern("map", "query", "hash:" + src, "-", input="example.net\nexample.com\n")
        self.assertEqual((r.returncode, r.stdout), (1, "example.com\tsmtp:[relay.example]\n"))
        # a bare file name is a hash: table; btree: works the same way
        self.assertEqual(self.tern("map", "query", src, "example.com").stdout, "smtp:[relay.example]\n")
        tree = self.path("transport-btree", read(src))
        self.assertEqual(self.tern("map", "build", "btree:" + tree).returncode, 0)
        self.assertEqual(self.tern("map", "query", "btree:" + tree, "Example.com").stdout,
                         "smtp:[relay.example]\n")
        # a changed source is seen once it is built again
        write(src, "example.com relay:[other.example]\n")
        self.assertEqual(self.tern("map", "build", src).returncode, 0)
        self.assertEqual(self.tern("map", "query", "hash:" + src, "example.com").stdout,
                         "relay:[other.example]\n")
        self.assertEqual(self.tern("map", "query", "hash:" + src, "user@example.org").returncode, 1)

    @unittest.skipUnless(os.geteuid() == 0, "needs root")
    def test_root_builds_a_users_table_as_that_user(self):
        import pwd
        nobody = pwd.getpwnam("nobody")
        sub = os.path.join(self.dir, "user-tables")
        os.mkdir(sub)
        os.chown(sub, nobody.pw_uid, nobody.pw_gid)
        src = os.path.join(sub, "virtual")
        write(src, "info@example.com someone\n")
        os.chown(src, nobody.pw_uid, nobody.pw_gid)
        r = self.tern("map", "build", "hash:" + src)
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        st = os.stat(src + ".db")
        self.assertEqual((st.st_uid, st.st_gid), (nobody.pw_uid, nobody.pw_gid))
        # where that user may not write, the build fails and says as whom it ran
        src2 = self.path("virtual2", "a b\n")
        os.chown(src2, nobody.pw_uid, nobody.pw_gid)
        r = self.tern("map", "build", "hash:" + src2)
        self.assertEqual(r.returncode, 1)
        self.assertIn("privileges of uid %d" % nobody.pw_uid, r.stderr)
        self.assertFalse(os.path.exists(src2 + ".db"))

    def test_query_other_table_types(self):
        src = self.path("access", "Client.Example OK\nspammer.example REJECT go away\n")
        r = self.tern("map", "query", "texthash:" + src, "client.example")
        self.assertEqual((r.returncode, r.stdout), (0, "OK\n"))
        self.assertEqual(self.tern("map", "query", "texthash:" + src, "other").returncode, 1)
        # as in Postfix, patterns are case-insensitive unless flagged "i"
        pcre = self.path("checks.pcre", "/^From: .*@(spam\\.example)$/ REJECT from $1\n"
                                        "if /^Subject:/\n/offer/ DISCARD\n/Sale/i HOLD\nendif\n")
        r = self.tern("map", "query", "pcre:" + pcre, "From: x@spam.example")
        self.assertEqual((r.returncode, r.stdout), (0, "REJECT from spam.example\n"))
        r = self.tern("map", "query", "pcre:" + pcre, "Subject: An OFFER")
        self.assertEqual((r.returncode, r.stdout), (0, "DISCARD\n"))
        self.assertEqual(self.tern("map", "query", "pcre:" + pcre, "Subject: hello").returncode, 1)
        self.assertEqual(self.tern("map", "query", "pcre:" + pcre, "Subject: Sale").stdout, "HOLD\n")
        self.assertEqual(self.tern("map", "query", "pcre:" + pcre, "Subject: sale").returncode, 1)
        self.assertEqual(self.tern("map", "query", "pcre:" + pcre, "X: offer").returncode, 1)
        self.assertEqual(self.tern("map", "query", "regexp:" + pcre, "Subject: offer").stdout,
                         "DISCARD\n")
        r = self.tern("map", "query", "inline:{ a.example=OK, { b.example = REJECT no } }",
                      "B.example")
        self.assertEqual((r.returncode, r.stdout), (0, "REJECT no\n"))

    def test_errors_name_the_file_and_line(self):
        aliases = self.path("aliases2", "root: admin\n# comment\nthis line has no colon\n")
        r = self.tern("map", "build", "-a", "hash:" + aliases)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:3: missing ':'" % aliases, r.stderr)
        self.assertFalse(os.path.exists(aliases + ".db"))
        pcre = self.path("bad.pcre", "/good/ OK\n/unclosed(/ REJECT\n")
        r = self.tern("map", "query", "pcre:" + pcre, "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("%s:2: bad pattern" % pcre, r.stderr)
        r = self.tern("map", "query", "hash:" + self.path("never-built"), "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("tern map build", r.stderr)
        r = self.tern("map", "build", "texthash:" + aliases)
        self.assertEqual(r.returncode, 1)
        self.assertIn("only hash: and btree:", r.stderr)
        r = self.tern("map", "query", "nosuchtype:" + aliases, "x")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unsupported table type", r.stderr)
        self.assertEqual(self.tern("map").returncode, 2)
        self.assertEqual(self.tern("map", "frobnicate").returncode, 2)
        r = self.tern("map", "--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("tern map query", r.stdout)


class TestAliases(unittest.TestCase):
    USER = "terntestals"

    def setUp(self):
        self.inst = harness.Instance("aliases")
        self.addCleanup(self.inst.cleanup)
        self.aliases = os.path.join(self.inst.dir, "aliases")

    def query(self, key):
        return self.inst.tern("map", "query", "hash:" + self.aliases, key, check=False)

    def test_reports_bad_lines_and_skips_other_types(self):
        with open(self.aliases, "a") as f:
            f.write("good: root\nno colon here\n")
        nlines = read(self.aliases).count("\n")
        r = self.inst.tern("aliases", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("%s:%d: missing ':'" % (self.aliases, nlines), r.stderr)
        self.assertEqual(self.query("good").returncode, 1)     # the old table stays
        self.assertEqual(self.query("postmaster").returncode, 0)
        write(self.aliases, "good: root\n")
        self.inst.tern("conf", "-e", "alias_database = texthash:%s, hash:%s"
                       % (self.aliases, self.aliases))
        r = self.inst.tern("aliases")
        self.assertIn("texthash:%s skipped" % self.aliases, r.stderr)
        self.assertEqual(self.query("good").stdout, "root\n")

    @unittest.skipUnless(os.geteuid() == 0, "delivery to a new Unix user needs root")
    def test_new_alias_is_delivered_after_rebuild(self):
        subprocess.run(["userdel", self.USER], capture_output=True)
        subprocess.run(["useradd", "--no-create-home", "--home-dir", "/nonexistent", self.USER],
                       check=True, capture_output=True)
        self.addCleanup(subprocess.run, ["userdel", self.USER], capture_output=True)
        self.inst.start()
        with open(self.aliases, "a") as f:
            f.write("team-lead:\n    %s\n" % self.USER)
        self.assertEqual(self.query("team-lead").returncode, 1)
        r = self.inst.tern("aliases")
        self.assertEqual((r.stdout, r.stderr), ("", ""))
        self.assertEqual(self.query("Team-Lead").stdout, "%s\n" % self.USER)
        with self.inst.smtp() as s:
            s.sendmail("sender@example.org", ["team-lead@tern.test"],
                       "Subject: to the new alias\r\n\r\nhello\r\n")
        box = os.path.join(self.inst.dir, "mail", self.USER)
        deadline = time.time() + 20
        while time.time() < deadline and not (
                os.path.exists(box) and b"to the new alias" in read(box, "rb")):
            time.sleep(0.1)
        self.assertIn(b"Subject: to the new alias", read(box, "rb") if os.path.exists(box) else b"",
                      self.inst.log_tail())
        self.inst.wait_log(r"to=<%s@tern\.test>, orig_to=<team-lead@tern\.test>, relay=local.*"
                           r"status=sent" % self.USER)


if __name__ == "__main__":
    unittest.main()
