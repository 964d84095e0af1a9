"""test_rewrite.py: address rewriting in cleanup and smtpd's view of it
(canonical(5), virtual(5), ADDRESS_REWRITING_README), through a whole
instance: messages go in through smtpd (and sendmail), every delivery goes
to a real SMTP server on loopback (local_transport and relayhost point at
it), and the test looks at what that server received (envelope and
bytes), at the log lines and at the queue.

Covered: canonical_maps, sender_ and recipient_canonical_maps with their
classes, address extensions (recipient_delimiter,
propagate_unmatched_extensions), header rewriting (From:, To:, Cc:,
Reply-To:, Sender:, Resent-*, display names and comments kept) and
local_header_rewrite_clients, masquerade_domains with exceptions and
classes, one-to-many virtual aliases mixing local, virtual-alias-domain and
remote targets with orig_to= kept, an alias listing itself, a loop and
virtual_alias_expansion_limit (451 4.6.0, nothing accepted), an unknown
address in a virtual alias domain refused at RCPT with 550 5.1.1, a
canonical address judged after rewriting by reject_unlisted_recipient,
message_drop_headers (Bcc:, Content-Length:, Resent-Bcc:, Return-Path:
removed by default, kept when the list is emptied),
recipient_bcc_maps, sender_bcc_maps and always_bcc, a table that cannot be
read (451 4.3.0, nothing queued, nothing bounced; through sendmail the
maildrop file waits), receive_override_options on a second smtpd service
(master.cf -o: no_address_mappings, no_unknown_recipient_checks,
no_header_body_checks, no_milters), -o on a second cleanup service, hash:
tables under the system call filters, a virtual alias domain as a
destination for clients outside mynetworks, mail from sendmail rewritten
the same way (an unaliased address in a virtual alias domain bounces as
unknown), and the Original-Recipient: of a bounce for an aliased
address."""
import mailbox
import os
import smtplib
import time
import unittest

import harness
import sink as sinkmod
import test_sendmail

HOST = "tern.test"
AGENTS = ["smtp unix - - n - - smtp", "relay unix - - n - - smtp"]


def smtp_agent_built():
    return os.path.exists(os.path.join(harness.LIBEXEC, "smtp"))


def write_table(inst, name, text, kind="texthash"):
    path = os.path.join(inst.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return "%s:%s" % (kind, path)


def message(seq, headers=b""):
    return (b"Subject: rewrite test\r\nX-Seq: " + seq.encode() + b"\r\n" + headers
            + b"\r\nbody\r\n")


class Base(unittest.TestCase):
    """An instance whose every delivery reaches self.sink."""
    main_cf = {}
    tables = {}
    master_cf_extra = []

    @classmethod
    def setUpClass(cls):
        if not smtp_agent_built():
            raise unittest.SkipTest("the smtp delivery agent is not built")
        cls.sink = sinkmod.Sink()
        cls.addClassCleanup(cls.sink.stop)
        inst = harness.Instance("rw", master_cf_extra=AGENTS + list(cls.master_cf_extra))
        cls.addClassCleanup(inst.cleanup)
        settings = {
            "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
            "local_transport": "smtp:[127.0.0.1]:%d" % cls.sink.port,
            "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
        }
        for param, (name, text, *kind) in cls.tables.items():
            settings[param] = write_table(inst, name, text, *kind)
        settings.update(cls.prepare(inst))
        settings.update(cls.main_cf)
        inst.set_main_cf(settings)
        inst.start()
        cls.inst = inst

    @classmethod
    def prepare(cls, inst):
        """More main.cf settings, made once the instance exists."""
        return {}

    def send(self, seq, rcpts, sender="sender@example.org", headers=b"", port=None):
        with smtplib.SMTP("127.0.0.1", port or self.inst.port, timeout=10) as s:
            s.ehlo("client.example")
            s.sendmail(sender, list(rcpts), message(seq, headers))

    def delivered(self, seq, count=1, timeout=20):
        """Every (mail_from, rcpts, data) the sink received with X-Seq: seq,
        once there are count of them."""
        marker = ("X-Seq: %s\r\n" % seq).encode()
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = [m for m in list(self.sink.handler.messages) if marker in m[2]]
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError("message %s: %d deliveries, expected %d; log:\n%s"
                             % (seq, len(got), count, self.inst.log_tail()))

    def rcpts_of(self, seq, count):
        """The sorted envelope recipients of the deliveries of seq, once
        there are count recipients in all."""
        marker = ("X-Seq: %s\r\n" % seq).encode()
        deadline = time.time() + 20
        while time.time() < deadline:
            got = sorted(r.lower() for m in list(self.sink.handler.messages) if marker in m[2]
                         for r in m[1])
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError("message %s: recipients %s, expected %d; log:\n%s"
                             % (seq, got, count, self.inst.log_tail()))

    def rcpt_reply(self, rcpt, sender="sender@example.org", port=None):
        with smtplib.SMTP("127.0.0.1", port or self.inst.port, timeout=10) as s:
            s.ehlo("client.example")
            s.mail(sender)
            code, text = s.rcpt(rcpt)
            return code, text.decode()

    def header(self, data, name):
        for line in data.decode().split("\r\n"):
            if line.lower().startswith(name.lower() + ":"):
                return line[len(name) + 1:].strip()
        return None


DROPPED_BY_DEFAULT = (b"Bcc: hidden@example.org\r\nContent-Length: 12345\r\n"
                      b"Resent-Bcc: hidden2@example.org\r\nReturn-Path: <forged@example.org>\r\n"
                      b"X-Kept: yes\r\n")


class TestDropHeaders(Base):
    """message_drop_headers at its default: what must not travel on."""

    def test_default_fields_removed(self):
        self.send("d1", ["someone@remote.example"], headers=DROPPED_BY_DEFAULT)
        data = self.delivered("d1")[0][2]
        for name in ("Bcc", "Content-Length", "Resent-Bcc", "Return-Path"):
            self.assertIsNone(self.header(data, name), name)
        self.assertEqual(self.header(data, "X-Kept"), "yes")
        self.assertNotIn(b"hidden", data)


class TestDropHeadersEmpty(Base):
    """message_drop_headers emptied: the fields stay as they came."""
    main_cf = {"message_drop_headers": ""}

    def test_fields_kept(self):
        self.send("d2", ["someone@remote.example"], headers=DROPPED_BY_DEFAULT)
        data = self.delivered("d2")[0][2]
        self.assertEqual(self.header(data, "Bcc"), "hidden@example.org")
        self.assertEqual(self.header(data, "Return-Path"), "<forged@example.org>")
        self.assertEqual(self.header(data, "Content-Length"), "12345")


class TestVirtualAliases(Base):
    """virtual_alias_maps with a virtual alias domain (virt.test, listed by
    its own key as virtual(5) describes), a local domain and remote
    targets."""
    tables = {"virtual_alias_maps": ("virtual", """
virt.test                    anything
info@virt.test               alice, bob@remote.example, sales@virt.test
sales@virt.test              carol@tern.test
self@tern.test               self@tern.test, archive@remote.example
loop-a@virt.test             loop-b@virt.test
loop-b@virt.test             loop-a@virt.test
many@virt.test               m1@remote.example m2@remote.example m3@remote.example m4@remote.example
catch@virt.test              dan
@other.test                  @remote.example
postmaster                   pm@remote.example
""")}
    main_cf = {"virtual_alias_expansion_limit": "3", "recipient_delimiter": "+",
               "local_recipient_maps": "inline:{alice=x, carol=x, dan=x, self=x}"}

    def test_one_to_many_mixed_targets(self):
        self.send("v1", ["info@virt.test"])
        rcpts = self.rcpts_of("v1", 3)
        self.assertEqual(rcpts, ["alice@tern.test", "bob@remote.example", "carol@tern.test"])
        # orig_to= of each delivery log line is the address the client gave
        for to in ("alice@tern.test", "bob@remote.example", "carol@tern.test"):
            self.inst.wait_log(r"to=<%s>, orig_to=<info@virt\.test>, relay=.*status=sent" % to)
        # the Received: header names the recipient as given
        data = self.delivered("v1")[0][2]
        self.assertIn(b"for <info@virt.test>", data)

    def test_unknown_in_virtual_alias_domain_refused_at_rcpt(self):
        code, text = self.rcpt_reply("nobody@virt.test")
        self.assertEqual(code, 550)
        self.assertIn("5.1.1 <nobody@virt.test>: Recipient address rejected: "
                      "User unknown in virtual alias table", text)

    def test_alias_to_itself_stops_there(self):
        self.send("v2", ["self@tern.test"])
        self.assertEqual(self.rcpts_of("v2", 2), ["archive@remote.example", "self@tern.test"])

    def test_loop_is_refused_not_accepted(self):
        code, text = self.rcpt_reply("loop-a@virt.test")
        self.assertEqual(code, 451)
        self.assertIn("4.6.0", text)
        self.inst.wait_log(r"NOQUEUE: .*unreasonable virtual_alias_maps map nesting for loop-a@virt\.test")

    def test_expansion_limit(self):
        code, text = self.rcpt_reply("many@virt.test")
        self.assertEqual(code, 451)
        self.assertIn("4.6.0", text)
        self.inst.wait_log(r"unreasonable virtual_alias_maps map expansion size for many@virt\.test")

    def test_extension_propagates(self):
        # catch@ matched without +tag: the extension goes to the target
        self.send("v3", ["catch+tag@virt.test"])
        self.assertEqual(self.rcpts_of("v3", 1), ["dan+tag@tern.test"])

    def test_at_domain_to_at_domain(self):
        self.send("v4", ["someone@other.test"])
        self.assertEqual(self.rcpts_of("v4", 1), ["someone@remote.example"])

    def test_bare_key_for_local_domain(self):
        # "postmaster" matches postmaster@ any local domain (not other ones)
        self.send("v5", ["postmaster@tern.test"])
        self.assertEqual(self.rcpts_of("v5", 1), ["pm@remote.example"])
        self.inst.wait_log(r"to=<pm@remote\.example>, orig_to=<postmaster@tern\.test>")

    def test_unknown_local_after_alias_refused(self):
        # not aliased, in the local domain, unknown to local_recipient_maps
        code, text = self.rcpt_reply("zed@tern.test")
        self.assertEqual(code, 550)
        self.assertIn("User unknown in local recipient table", text)


class TestHashTables(Base):
    """The same with Berkeley DB tables built by `tern map build`, read by
    smtpd and cleanup under their system call filters."""

    @classmethod
    def prepare(cls, inst):
        specs = {}
        for param, name, text in (
                ("virtual_alias_maps", "virtual.db-src",
                 "virt.test x\ninfo@virt.test ann@remote.example, bob@remote.example\n"),
                ("canonical_maps", "canonical.db-src", "old@example.org new@example.org\n")):
            spec = write_table(inst, name, text, "hash")
            inst.tern("map", "build", spec)
            specs[param] = spec
        return specs

    def test_hash_tables(self):
        self.send("t1", ["info@virt.test", "old@example.org"], headers=b"Cc: old@example.org\r\n")
        self.assertEqual(self.rcpts_of("t1", 3),
                         ["ann@remote.example", "bob@remote.example", "new@example.org"])
        data = self.delivered("t1")[0][2]
        self.assertEqual(self.header(data, "Cc"), "new@example.org")
        code, text = self.rcpt_reply("nobody@virt.test")
        self.assertEqual(code, 550)


class TestUntrustedClient(Base):
    """A client outside mynetworks: a virtual alias domain is one of our
    destinations (permit_auth_destination), other domains are not."""
    tables = {"virtual_alias_maps": ("virtual", "virt.test x\ninfo@virt.test ann@remote.example\n")}
    main_cf = {"mynetworks": "192.0.2.0/24"}

    def test_virtual_alias_domain_is_ours(self):
        self.send("u1", ["info@virt.test"])
        self.assertEqual(self.rcpts_of("u1", 1), ["ann@remote.example"])
        code, text = self.rcpt_reply("nobody@virt.test")
        self.assertEqual(code, 550)
        self.assertIn("User unknown in virtual alias table", text)
        # the default smtpd_relay_restrictions end in defer_unauth_destination
        code, text = self.rcpt_reply("ann@remote.example")
        self.assertEqual(code, 454)
        self.assertIn("Relay access denied", text)
        # sender routing through a virtual alias domain is not ours
        code, text = self.rcpt_reply("ann%remote.example@virt.test")
        self.assertEqual(code, 454)
        self.assertIn("Relay access denied", text)


class TestLocalMailbox(Base):
    """A virtual alias with a real local target: a Unix user's mailbox,
    judged at RCPT with the real local_recipient_maps (the passwd
    database), next to a remote target at the sink."""
    USER = "terntestrw"
    tables = {"virtual_alias_maps": ("virtual", "virt.test x\n"
                                     "info@virt.test terntestrw, ann@remote.example\n"
                                     "ghost@virt.test nosuchuser-rw\n")}
    main_cf = {"local_recipient_maps": "unix:passwd.byname", "local_transport": "local"}

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("local delivery tests create Unix users: run as root")
        homes = harness.make_unix_users([cls.USER], "tern-rw-homes-")
        cls.addClassCleanup(harness.remove_unix_users, [cls.USER], homes)
        super().setUpClass()

    def mailbox(self):
        path = os.path.join(self.inst.dir, "mail", self.USER)
        deadline = time.time() + 20
        while time.time() < deadline:
            if os.path.exists(path):
                box = mailbox.mbox(path, create=False)
                try:
                    msgs = [m for m in box]
                finally:
                    box.close()
                if msgs:
                    return msgs
            time.sleep(0.1)
        raise AssertionError("no mail in %s; log:\n%s" % (path, self.inst.log_tail()))

    def test_local_and_remote_targets(self):
        self.send("l1", ["info@virt.test"])
        self.assertEqual(self.rcpts_of("l1", 1), ["ann@remote.example"])
        msgs = self.mailbox()
        self.assertEqual(msgs[0]["X-Seq"], "l1")
        self.inst.wait_log(r"to=<terntestrw@tern\.test>, orig_to=<info@virt\.test>, relay=local, "
                           r".*status=sent")

    def test_alias_to_unknown_local_user_refused(self):
        code, text = self.rcpt_reply("ghost@virt.test")
        self.assertEqual(code, 550)
        self.assertIn("5.1.1 <ghost@virt.test>: Recipient address rejected: "
                      "User unknown in local recipient table", text)


class TestCanonical(Base):
    """canonical_maps, sender_ and recipient_canonical_maps, headers."""
    tables = {
        "canonical_maps": ("canonical", """
old@example.org              new@example.org
joe.user@example.org         jdoe@example.org
@legacy.example              @example.org
"""),
        "sender_canonical_maps": ("sender_canonical", """
sender@example.org           outbound@example.org
"""),
        "recipient_canonical_maps": ("recipient_canonical", """
alias@tern.test              alice@tern.test
"""),
    }
    main_cf = {"local_recipient_maps": "inline:{alice=x}", "recipient_delimiter": "+"}

    def test_envelope_sender_and_recipient(self):
        self.send("c1", ["old@example.org", "someone@legacy.example"])
        got = self.delivered("c1")
        self.assertEqual(got[0][0], "outbound@example.org")
        self.assertEqual(self.rcpts_of("c1", 2), ["new@example.org", "someone@example.org"])
        self.inst.wait_log(r"to=<new@example\.org>, orig_to=<old@example\.org>")

    def test_recipient_judged_after_rewriting(self):
        # alias@tern.test is no local user, but recipient_canonical_maps
        # makes it alice@tern.test, who is: accepted, delivered to alice
        self.send("c2", ["alias@tern.test"])
        self.assertEqual(self.rcpts_of("c2", 1), ["alice@tern.test"])

    def test_extension_kept_for_canonical(self):
        self.send("c3", ["old+news@example.org"])
        self.assertEqual(self.rcpts_of("c3", 1), ["new+news@example.org"])

    def test_headers_rewritten_names_and_comments_kept(self):
        headers = (b"From: \"Joe, User\" <joe.user@example.org>\r\n"
                   b"To: old@example.org (the old one), Other <other@example.net>\r\n"
                   b"Cc: team: old@example.org, x@legacy.example;\r\n"
                   b"Reply-To: <sender@example.org>\r\n"
                   b"Sender: sender@example.org\r\n"
                   b"Resent-From: someone@legacy.example\r\n"
                   b"Resent-To: old@example.org\r\n"
                   b"X-Other: old@example.org\r\n")
        self.send("c4", ["new@example.org"], headers=headers)
        data = self.delivered("c4")[0][2]
        self.assertEqual(self.header(data, "From"), "\"Joe, User\" <jdoe@example.org>")
        self.assertEqual(self.header(data, "To"),
                         "new@example.org (the old one), Other <other@example.net>")
        self.assertEqual(self.header(data, "Cc"), "team: new@example.org, x@example.org;")
        self.assertEqual(self.header(data, "Reply-To"), "<outbound@example.org>")
        self.assertEqual(self.header(data, "Sender"), "outbound@example.org")
        self.assertEqual(self.header(data, "Resent-From"), "someone@example.org")
        self.assertEqual(self.header(data, "Resent-To"), "new@example.org")
        # not an address header: as it was
        self.assertEqual(self.header(data, "X-Other"), "old@example.org")


class TestHeaderClients(Base):
    """local_header_rewrite_clients: a client that is not listed has its
    headers left as they are (the envelope is still rewritten)."""
    tables = {"canonical_maps": ("canonical", "old@example.org new@example.org\n")}
    main_cf = {"local_header_rewrite_clients": "permit_sasl_authenticated"}

    def test_remote_headers_untouched(self):
        self.send("h1", ["old@example.org"], headers=b"To: old@example.org\r\n")
        got = self.delivered("h1")[0]
        self.assertEqual(got[1], ["new@example.org"])
        self.assertEqual(self.header(got[2], "To"), "old@example.org")


class TestRemoteHeaderDomain(Base):
    """remote_header_rewrite_domain rewrites other clients' headers too."""
    tables = {"canonical_maps": ("canonical", "old@example.org new@example.org\n")}
    main_cf = {"local_header_rewrite_clients": "permit_sasl_authenticated",
               "remote_header_rewrite_domain": "domain.invalid"}

    def test_remote_headers_rewritten(self):
        self.send("h2", ["someone@example.net"], headers=b"To: old@example.org, bare\r\n")
        got = self.delivered("h2")[0]
        self.assertEqual(self.header(got[2], "To"), "new@example.org, bare@domain.invalid")


class TestMasquerade(Base):
    main_cf = {"masquerade_domains": "!keep.example.com, example.com",
               "masquerade_exceptions": "root"}

    def test_sender_and_headers_masqueraded(self):
        headers = (b"From: Joe <joe@host.example.com>\r\n"
                   b"To: ann@mail.example.com, kim@a.keep.example.com\r\n"
                   b"Cc: root@host.example.com\r\n")
        self.send("m1", ["ann@mail.example.com"], sender="joe@host.example.com", headers=headers)
        got = self.delivered("m1")[0]
        self.assertEqual(got[0], "joe@example.com")
        # envelope recipients are not in the default masquerade_classes
        self.assertEqual(got[1], ["ann@mail.example.com"])
        self.assertEqual(self.header(got[2], "From"), "Joe <joe@example.com>")
        self.assertEqual(self.header(got[2], "To"), "ann@example.com, kim@a.keep.example.com")
        self.assertEqual(self.header(got[2], "Cc"), "root@host.example.com")


class TestMasqueradeClasses(Base):
    main_cf = {"masquerade_domains": "example.com", "masquerade_classes": "envelope_recipient"}

    def test_only_envelope_recipient(self):
        self.send("m2", ["ann@mail.example.com"], sender="joe@host.example.com",
                  headers=b"From: joe@host.example.com\r\n")
        got = self.delivered("m2")[0]
        self.assertEqual(got[0], "joe@host.example.com")
        self.assertEqual(got[1], ["ann@example.com"])
        self.assertEqual(self.header(got[2], "From"), "joe@host.example.com")


class TestBcc(Base):
    tables = {
        "recipient_bcc_maps": ("rcpt_bcc", "ann@example.net rcpt-copy@archive.example\n"),
        "sender_bcc_maps": ("sender_bcc", "@example.org sender-copy@archive.example\n"),
    }
    main_cf = {"always_bcc": "all@archive.example"}

    def test_bcc_recipients_added(self):
        self.send("b1", ["ann@example.net"])
        self.assertEqual(self.rcpts_of("b1", 4),
                         ["all@archive.example", "ann@example.net", "rcpt-copy@archive.example",
                          "sender-copy@archive.example"])
        # the copies are not announced in the message
        data = self.delivered("b1")[0][2]
        self.assertNotIn(b"archive.example", data.split(b"\r\n\r\n")[0])

    def test_no_bcc_for_other_sender_and_recipient(self):
        self.send("b2", ["bob@example.net"], sender="x@example.com")
        self.assertEqual(self.rcpts_of("b2", 2), ["all@archive.example", "bob@example.net"])


class TestLookupFailure(Base):
    """A table that cannot be read: mail waits (4xx), nothing is queued,
    nothing bounces."""
    main_cf = {"virtual_alias_maps": "hash:/nonexistent/virtual"}
    master_cf_extra = []

    @classmethod
    def setUpClass(cls):
        cls.port2 = harness.free_port()
        cls.master_cf_extra = [
            "127.0.0.1:%d inet n - n - - smtpd -o receive_override_options=no_unknown_recipient_checks"
            % cls.port2]
        super().setUpClass()

    def test_rcpt_gets_451(self):
        code, text = self.rcpt_reply("someone@example.net")
        self.assertEqual(code, 451)
        self.assertIn("4.3.0", text)

    def test_cleanup_answers_451_and_keeps_nothing(self):
        with smtplib.SMTP("127.0.0.1", self.port2, timeout=10) as s:
            s.ehlo("client.example")
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail("sender@example.org", ["someone@example.net"], message("f1"))
        self.assertEqual(cm.exception.smtp_code, 451)
        self.assertIn(b"4.3.0", cm.exception.smtp_error)
        self.inst.wait_log(r"virtual_alias_maps map lookup problem for someone@example\.net -- "
                           r"message not accepted, try again later")
        for sub in ("incoming", "active", "deferred", "hold"):
            self.assertEqual(self.inst.queue_files(sub), [])
        self.assertEqual(self.inst.temp_files(), [])
        time.sleep(1)
        self.assertFalse([m for m in self.sink.handler.messages if b"X-Seq: f1" in m[2]])
        self.assertNotIn("status=bounced", self.inst.log_text())


class TestReceiveOverride(Base):
    """A second smtpd (as after a content filter) with -o
    receive_override_options=no_address_mappings: nothing is rewritten
    there, while the main smtpd rewrites."""
    tables = {"canonical_maps": ("canonical", "old@example.org new@example.org\n"),
              "recipient_bcc_maps": ("rcpt_bcc", "new@example.org copy@archive.example\n")}

    @classmethod
    def setUpClass(cls):
        cls.port2 = harness.free_port()
        cls.master_cf_extra = [
            "127.0.0.1:%d inet n - n - - smtpd -o receive_override_options=no_address_mappings"
            % cls.port2]
        super().setUpClass()

    def test_no_address_mappings(self):
        self.send("r1", ["old@example.org"], port=self.port2, headers=b"To: old@example.org\r\n")
        got = self.delivered("r1")[0]
        self.assertEqual(got[1], ["old@example.org"])
        self.assertEqual(self.header(got[2], "To"), "old@example.org")
        self.send("r2", ["old@example.org"], headers=b"To: old@example.org\r\n")
        self.assertEqual(self.rcpts_of("r2", 2), ["copy@archive.example", "new@example.org"])


class TestCleanupServiceOverride(Base):
    """master.cf -o reaches cleanup too: a second cleanup service with its
    own virtual_alias_maps, used by a second smtpd (cleanup_service_name)."""

    @classmethod
    def setUpClass(cls):
        cls.port2 = harness.free_port()
        cls.master_cf_extra = [
            "cleanup2 unix - - n - 0 cleanup -o virtual_alias_maps=inline:{info@virt.test=ann@remote.example}",
            "127.0.0.1:%d inet n - n - - smtpd -o cleanup_service_name=cleanup2" % cls.port2]
        super().setUpClass()

    def test_per_service_tables(self):
        self.send("p1", ["info@virt.test"], port=self.port2)
        self.assertEqual(self.rcpts_of("p1", 1), ["ann@remote.example"])
        self.send("p2", ["info@virt.test"])
        self.assertEqual(self.rcpts_of("p2", 1), ["info@virt.test"])


class TestReceiveOverrideChecks(Base):
    """no_header_body_checks and no_milters on a second smtpd: its mail
    skips header_checks and the milters (here one that cannot be reached,
    so the main smtpd refuses everything with 4xx)."""
    tables = {"header_checks": ("header_checks", "/^Subject: .*reject-me/ REJECT no\n", "pcre")}

    @classmethod
    def setUpClass(cls):
        cls.port2 = harness.free_port()
        cls.main_cf = {"smtpd_milters": "inet:127.0.0.1:%d" % harness.free_port(),
                       "milter_default_action": "tempfail"}
        cls.master_cf_extra = [
            "127.0.0.1:%d inet n - n - - smtpd -o receive_override_options=no_header_body_checks,"
            "no_milters" % cls.port2]
        super().setUpClass()

    def test_checks_and_milters_skipped(self):
        headers = b"X-Note: reject-me\r\n"
        with smtplib.SMTP("127.0.0.1", self.port2, timeout=10) as s:
            s.ehlo("client.example")
            s.sendmail("sender@example.org", ["someone@example.net"],
                       b"Subject: please reject-me\r\nX-Seq: o1\r\n\r\nbody\r\n")
        self.delivered("o1")
        with self.assertRaises(smtplib.SMTPException):
            self.send("o2", ["someone@example.net"], headers=headers)


class TestBounceOriginalRecipient(Base):
    """A bounce for an aliased recipient names the address the sender used."""
    tables = {"virtual_alias_maps": ("virtual", "info@virt.test gone@remote.example\n")}
    main_cf = {"virtual_alias_domains": "virt.test"}

    def test_original_recipient_in_bounce(self):
        self.sink.handler.reject_rcpts.add("gone@remote.example")
        self.send("d1", ["info@virt.test"], sender="sender@example.org")
        self.inst.wait_log(r"to=<gone@remote\.example>, orig_to=<info@virt\.test>, .*status=bounced")
        deadline = time.time() + 20
        bounce = None
        while time.time() < deadline and bounce is None:
            for m in list(self.sink.handler.messages):
                if m[0] in ("", "<>") and b"X-Seq: d1" in m[2]:
                    bounce = m
            time.sleep(0.1)
        self.assertIsNotNone(bounce, self.inst.log_tail())
        self.assertEqual(bounce[1], ["sender@example.org"])
        self.assertRegex(bounce[2].decode(), r"Original-Recipient: rfc822; ?info@virt\.test")
        self.assertIn(b"Final-Recipient: rfc822; gone@remote.example", bounce[2])


class TestLocalSubmission(unittest.TestCase):
    """Mail from sendmail (pickup): rewritten the same way, headers
    included; an address left in a virtual alias domain bounces as unknown
    (qmgr) instead of going to that domain's MX."""

    @classmethod
    def setUpClass(cls):
        if not smtp_agent_built():
            raise unittest.SkipTest("the smtp delivery agent is not built")
        if os.geteuid() != 0:
            raise unittest.SkipTest("sendmail's set-group-ID tern-drop needs root to install")
        cls.sink = sinkmod.Sink()
        cls.addClassCleanup(cls.sink.stop)
        inst = test_sendmail.make_instance("rwsm")
        cls.addClassCleanup(inst.cleanup)
        inst.set_main_cf({
            "relayhost": "[127.0.0.1]:%d" % cls.sink.port,
            "local_transport": "smtp:[127.0.0.1]:%d" % cls.sink.port,
            "virtual_alias_maps": write_table(inst, "virtual", "virt.test x\n"
                                              "info@virt.test ann@remote.example\n"),
            "canonical_maps": write_table(inst, "canonical", "old@example.org new@example.org\n"),
            "queue_run_delay": "1s",
        })
        inst.start()
        cls.inst = inst

    def submit(self, rcpts, seq, headers=""):
        msg = "Subject: local\nX-Seq: %s\n%s\nbody\n" % (seq, headers)
        r = test_sendmail.sendmail(self.inst, ["-f", "sender@example.org"] + rcpts, msg)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_rewritten_with_headers(self):
        self.submit(["info@virt.test", "old@example.org"], "s1", "From: old@example.org\n")
        got = Base.rcpts_of(self, "s1", 2)
        self.assertEqual(got, ["ann@remote.example", "new@example.org"])
        data = Base.delivered(self, "s1")[0][2]
        self.assertEqual(Base.header(self, data, "From"), "new@example.org")

    def test_unknown_in_virtual_alias_domain_bounces(self):
        self.submit(["nobody@virt.test"], "s2")
        self.inst.wait_log(r"to=<nobody@virt\.test>, relay=none, .*dsn=5\.1\.1, "
                           r"status=bounced \(User unknown in virtual alias table\)", timeout=20)


class TestLocalSubmissionLookupFailure(unittest.TestCase):
    """A table that cannot be read while pickup hands a message to cleanup:
    the maildrop file stays for a later try, nothing is queued or bounced."""

    def test_maildrop_file_waits(self):
        if os.geteuid() != 0:
            self.skipTest("sendmail's set-group-ID tern-drop needs root to install")
        inst = test_sendmail.make_instance("rwsmf", main_cf={
            "canonical_maps": "hash:/nonexistent/canonical"})
        self.addCleanup(inst.cleanup)
        inst.start()
        r = test_sendmail.sendmail(inst, ["-f", "sender@example.org", "someone@example.net"],
                                   "Subject: x\n\nbody\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        inst.wait_log(r"maildrop file \S+: .*4\.3\.0.*; trying again later", timeout=20)
        self.assertEqual(len(inst.queue_files("maildrop")), 1)
        for sub in ("incoming", "active", "deferred"):
            self.assertEqual(inst.queue_files(sub), [])
        self.assertNotIn("status=bounced", inst.log_text())

    def test_qmgr_defers_when_virtual_alias_domains_fail(self):
        if os.geteuid() != 0:
            self.skipTest("sendmail's set-group-ID tern-drop needs root to install")
        inst = test_sendmail.make_instance("rwsmd", main_cf={
            "virtual_alias_domains": "hash:/nonexistent/domains"})
        self.addCleanup(inst.cleanup)
        inst.start()
        r = test_sendmail.sendmail(inst, ["-f", "sender@example.org", "someone@example.net"],
                                   "Subject: x\n\nbody\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        inst.wait_log(r"to=<someone@example\.net>, relay=none, .*dsn=4\.3\.0, "
                      r"status=deferred \(virtual_alias_domains lookup failure\)", timeout=20)
        self.assertNotIn("status=bounced", inst.log_text())


if __name__ == "__main__":
    unittest.main()
