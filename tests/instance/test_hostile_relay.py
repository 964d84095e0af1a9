"""test_hostile_relay.py: an untrusted internet client tries every way to
relay through Tern or to make it bounce to a forged sender: address
literals of every address of this host (each address getifaddrs lists,
other 127/8 addresses, IPv6 spellings, IPv4-mapped forms), sender routing
with %, ! and quoted @ (hop by hop, mixed, with trailing dots, through our
literals), source routes, postmaster variants, and routed local parts of
unknown users.

Rule checked for every form: it is refused at RCPT, or it is accepted AND
delivered locally (into the test user's Maildir, logged with relay=local).
Nothing may ever leave the host: relayhost points at an SMTP sink of the
test, so any mail that qmgr routes out (a relayed message, or a bounce to
the forged remote sender) lands there, and the test fails when it holds
anything. Unknown users behind routing get 550 5.1.1 at RCPT.

The client connects from 127.0.0.3; mynetworks is 127.0.0.2/32, so no
client of the test is trusted. Needs root (it creates a Unix user).
"""
import ctypes
import ctypes.util
import ipaddress
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sink  # noqa: E402

HOST = "tern.test"
USER = "terntestrelay"
CLIENT = "127.0.0.3"
SENDER = "attacker@example.org"     # forged: a bounce to it would leave the host
FOREIGN = "foreign.test"
MAX_HOPS = 10                        # lib/global/resolve.h RESOLVE_HOPS_MAX


# ---- this host's addresses, as getifaddrs(3) lists them ----

class _Sockaddr(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_ubyte * 14)]


class _SockaddrIn(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16),
                ("addr", ctypes.c_ubyte * 4)]


class _SockaddrIn6(ctypes.Structure):
    _fields_ = [("family", ctypes.c_ushort), ("port", ctypes.c_uint16),
                ("flowinfo", ctypes.c_uint32), ("addr", ctypes.c_ubyte * 16),
                ("scope", ctypes.c_uint32)]


class _Ifaddrs(ctypes.Structure):
    pass


_Ifaddrs._fields_ = [("next", ctypes.POINTER(_Ifaddrs)), ("name", ctypes.c_char_p),
                     ("flags", ctypes.c_uint), ("addr", ctypes.POINTER(_Sockaddr)),
                     ("netmask", ctypes.POINTER(_Sockaddr)), ("ifu", ctypes.POINTER(_Sockaddr)),
                     ("data", ctypes.c_void_p)]


def host_addresses():
    """(IPv4 texts, IPv6 texts) of every interface address of this host."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    head = ctypes.POINTER(_Ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        raise OSError(ctypes.get_errno(), "getifaddrs")
    v4, v6 = [], []
    try:
        node = head
        for _ in range(10000):
            if not node:
                break
            sa = node.contents.addr
            if sa:
                if sa.contents.family == socket.AF_INET:
                    b = bytes(ctypes.cast(sa, ctypes.POINTER(_SockaddrIn)).contents.addr)
                    v4.append(socket.inet_ntop(socket.AF_INET, b))
                elif sa.contents.family == socket.AF_INET6:
                    b = bytes(ctypes.cast(sa, ctypes.POINTER(_SockaddrIn6)).contents.addr)
                    v6.append(socket.inet_ntop(socket.AF_INET6, b))
            node = node.contents.next
    finally:
        libc.freeifaddrs(head)
    return sorted(set(v4)), sorted(set(v6))


def literal_forms():
    """RCPT addresses with an address literal of this host, every spelling."""
    v4, v6 = host_addresses()
    forms = []
    for a in v4:
        forms += ["%s@[%s]" % (USER, a), "postmaster@[%s]" % a, "root@[%s]" % a,
                  "victim@[%s]" % a, "%s@[IPv6:::ffff:%s]" % (USER, a),
                  "%s@[ipv6:0:0:0:0:0:FFFF:%s]" % (USER, a)]
    for a in v6:
        ip = ipaddress.IPv6Address(a)
        for spelling in {a, ip.exploded, ip.exploded.upper(), a.upper()}:
            forms += ["%s@[IPv6:%s]" % (USER, spelling), "%s@[IPV6:%s]" % (USER, spelling),
                      "%s@[ipv6:%s]" % (USER, spelling)]
        forms.append("postmaster@[IPv6:%s]" % a)
    if "::1" in v6:
        forms += ["%s@[IPV6:0:0::1]" % USER, "%s@[IPv6:0:0:0:0:0:0:0:1]" % USER,
                  "root@[ipv6:0000:0000:0000:0000:0000:0000:0000:0001]"]
    # the rest of 127/8, and the wildcard addresses, all reach this host
    for a in ("127.0.0.2", "127.0.0.3", "127.1.2.3", "127.255.255.254", "0.0.0.0"):
        forms += ["%s@[%s]" % (USER, a), "postmaster@[%s]" % a]
    forms += ["%s@[IPv6:::]" % USER, "%s@[IPv6:::127.0.0.1]" % USER]
    # routed through our literals
    forms += ['"%s%%[127.0.0.1]"@localhost' % USER, "%s%%localhost@[127.0.0.1]" % USER,
              "@[127.0.0.1]:%s@[127.0.0.1]" % USER, '"%s@[127.0.0.1]"@%s' % (USER, HOST),
              "%s!%s@[127.0.0.1]" % (HOST, USER)]
    return forms


def relay_forms():
    """RCPT addresses that try to reach victim@foreign.test through us."""
    f, v = FOREIGN, "victim"
    deep = v + "%" + f + "%localhost" * MAX_HOPS + "@localhost"
    return [
        "%s@%s" % (v, f), "%s@%s." % (v, f), "%s@%s" % (v.upper(), f.upper()),
        # percent hack
        "%s%%%s@%s" % (v, f, HOST), "%s%%%s@localhost" % (v, f), "%s%%%s@[127.0.0.1]" % (v, f),
        "%s%%%s.@%s" % (v, f, HOST), "%s%%%s@%s." % (v, f, HOST),
        "%s%%%s@%s" % (v.upper(), f.upper(), HOST.upper()),
        "%s%%%s%%%s@%s" % (v, f, HOST, HOST), "%s%%%s%%localhost%%%s@[127.0.0.1]" % (v, f, HOST),
        deep,
        # bang paths
        "%s!%s@%s" % (f, v, HOST), "%s!%s@[127.0.0.1]" % (f, v), "%s!%s!%s@%s" % (HOST, f, v, HOST),
        "%s!%s%%%s@%s" % (f, v, HOST, HOST), "%s.!%s@%s" % (f, v, HOST),
        # quoted local parts with @ (and % and !)
        '"%s@%s"@%s' % (v, f, HOST), '"%s@%s"@[127.0.0.1]' % (v, f), '"%s@%s"@localhost.' % (v, f),
        '"%s@%s."@%s' % (v, f, HOST), '"%s%%%s"@%s' % (v, f, HOST), '"%s!%s"@%s' % (f, v, HOST),
        '"%s@%s@%s"@%s' % (v, f, HOST, HOST), '"%s%%%s"@[IPv6:::1]' % (v, f),
        '"%s%%[203.0.113.9]"@%s' % (v, HOST), '"%s@[203.0.113.9]"@%s' % (v, HOST),
        # without a domain: myorigin's is ours, the routing is not
        '"%s@%s"' % (v, f), "%s%%%s" % (v, f), "%s!%s" % (f, v),
        # source routes
        "@%s:%s@%s" % (HOST, v, f), "@[127.0.0.1]:%s@%s" % (v, f),
        "@%s,@localhost:%s@%s" % (HOST, v, f), "@%s:%s%%%s@%s" % (HOST, v, f, HOST),
        # malformed
        "%s@%s@%s" % (v, f, HOST), "%s@%s.%s" % (v, HOST, f), "%s@%s.." % (v, HOST),
        "%s%%@%s" % (v, HOST), "%%%s@%s" % (f, HOST), "!%s@%s" % (v, HOST),
        # postmaster elsewhere
        "postmaster@%s" % f, "postmaster%%%s@%s" % (f, HOST), '"postmaster@%s"' % f,
        "%s!postmaster@%s" % (f, HOST),
    ]


def postmaster_forms():
    return ["postmaster", "Postmaster", "POSTMASTER", "postmaster@%s" % HOST,
            "Postmaster@Tern.Test.", "postmaster@localhost", "postmaster@[127.0.0.1]",
            '"postmaster"@%s' % HOST, '"Postmaster"@[127.0.0.1]', '"postmaster"',
            "postmaster%%localhost@%s" % HOST, "localhost!postmaster@%s" % HOST,
            "@%s:postmaster@%s" % (HOST, HOST)]


UNKNOWN_ROUTED = ["nosuchuser%localhost@localhost", "localhost!nosuchuser@localhost",
                  '"nosuchuser@localhost"@localhost', "nosuchuser%%%s@%s" % (HOST, HOST),
                  "nosuchuser@[127.0.0.1]", "nosuchuser%localhost@[127.0.0.1]",
                  '"nosuchuser%localhost"@tern.test', "localhost!nosuchuser%tern.test@localhost",
                  "NoSuchUser%LOCALHOST.@localhost"]

VALID_ROUTED = ["%s%%localhost@localhost" % USER, "localhost!%s@localhost" % USER,
                '"%s@localhost"@localhost' % USER, "%s%%%s@%s" % (USER, HOST, HOST),
                "%s@[127.0.0.1]" % USER, "%s!%s%%localhost@[127.0.0.1]" % (HOST, USER),
                '"%s%%localhost"@%s' % (USER, HOST)]


class RelayInstance(unittest.TestCase):
    """An instance per class: a local user with a Maildir, aliases to it,
    relayhost pointing at an SMTP sink, mynetworks = 127.0.0.2/32."""

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("creates a Unix user: run as root")
        cls.homes = tempfile.mkdtemp(prefix="tern-relay-homes-", dir="/tmp")
        os.chmod(cls.homes, 0o755)
        cls.inst = cls.sink = None
        try:
            cls.make_user()
            cls.sink = cls.start_sink()
            cls.inst = harness.Instance("hostile-relay", main_cf={
                "mynetworks": "127.0.0.2/32",
                "relayhost": cls.relayhost(),
                "home_mailbox": "Maildir/",
                "local_recipient_maps": "unix:passwd.byname, $alias_maps",
            })
            aliases = os.path.join(cls.inst.dir, "relay-aliases")
            with open(aliases, "w") as f:
                f.write("postmaster %s\nroot %s\nabuse postmaster\n"
                        "MAILER-DAEMON postmaster\n" % (USER, USER))
            cls.inst.set_main_cf({"alias_maps": "texthash:" + aliases})
            cls.inst.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def start_sink(cls):
        return sink.Sink()

    @classmethod
    def relayhost(cls):
        return "[127.0.0.1]:%d" % cls.sink.port

    @classmethod
    def make_user(cls):
        subprocess.run(["userdel", USER], capture_output=True)
        home = os.path.join(cls.homes, USER)
        subprocess.run(["useradd", "-M", "-d", home, "-s", "/bin/sh", USER], check=True,
                       capture_output=True)
        os.mkdir(home)
        pw = pwd.getpwnam(USER)
        os.chown(home, pw.pw_uid, pw.pw_gid)
        os.chmod(home, 0o755)
        cls.home = home

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.inst:
                cls.inst.cleanup()
        finally:
            if cls.sink:
                cls.sink.stop()
            subprocess.run(["userdel", USER], capture_output=True)
            subprocess.run(["groupdel", USER], capture_output=True)
            shutil.rmtree(cls.homes, ignore_errors=True)


    # ---- one attempt ----

    def attempt(self, rcpt, token):
        """From the untrusted client: MAIL, RCPT TO:<rcpt>, and when that is
        accepted a message carrying token. Returns the RCPT reply."""
        c = harness.RawSession(self.inst.port, greet=True, timeout=20, source=CLIENT)
        try:
            self.assertEqual(c.greeting[0], 220)
            c.send("EHLO attacker.example\r\n")
            self.assertEqual(c.read_reply()[0], 250)
            c.send("MAIL FROM:<%s>\r\n" % SENDER)
            self.assertEqual(c.read_reply()[0], 250)
            c.send("RCPT TO:<%s>\r\n" % rcpt)
            code, lines = c.read_reply()
            if code == 250:
                c.send("DATA\r\n")
                self.assertEqual(c.read_reply()[0], 354)
                c.send("From: <%s>\r\nSubject: %s\r\n\r\nrelay attempt to <%s>\r\n.\r\n"
                       % (SENDER, token, rcpt))
                self.assertEqual(c.read_reply()[0], 250, rcpt)
            c.send("QUIT\r\n")
            return code, " ".join(line[4:] for line in lines)
        finally:
            c.close()

    def maildir_text(self):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.home, "Maildir", sub)
            for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                with open(os.path.join(d, name), "rb") as f:
                    out.append(f.read().decode("utf-8", "replace"))
        return "\n".join(out)

    def assert_nothing_left(self):
        """No message reached the sink (relayed mail or a bounce to the
        forged sender), and every delivery in the log was local."""
        time.sleep(1)
        self.assertEqual([(m[0], m[1]) for m in self.sink.handler.messages], [],
                         "mail left the host")
        for line in self.inst.log_text().splitlines():
            if " status=" in line and " to=<" in line:
                self.assertRegex(line, r"relay=local, .*status=sent ", line)

    def battery(self, forms, prefix):
        """Every form: refused at RCPT, or accepted and delivered locally."""
        accepted = {}
        for i, rcpt in enumerate(forms):
            token = "%s-%d-%d" % (prefix, os.getpid(), i)
            with self.subTest(rcpt=rcpt):
                code, text = self.attempt(rcpt, token)
                self.assertIn(code // 100, (2, 4, 5), text)
                if code == 250:
                    accepted[token] = rcpt
        self.inst.wait_empty(timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline:
            box = self.maildir_text()
            if all(t in box for t in accepted):
                break
            time.sleep(0.2)
        box = self.maildir_text()
        for token, rcpt in accepted.items():
            with self.subTest(delivered=rcpt):
                self.assertTrue(token in box, "<%s> was accepted but not delivered here" % rcpt)
        self.assert_nothing_left()
        return accepted



class HostileRelay(RelayInstance):
    # ---- the attacks ----

    def test_address_literals_of_every_local_address(self):
        accepted = self.battery(literal_forms(), "literal")
        # our own literal is a local destination: accepted, delivered by local(8)
        self.assertIn("%s@[127.0.0.1]" % USER, accepted.values())
        self.inst.wait_log(r"to=<%s@\[127\.0\.0\.1\]>, relay=local, .*status=sent" % USER)

    def test_sender_routing_to_a_foreign_domain_is_refused(self):
        for rcpt in relay_forms():
            with self.subTest(rcpt=rcpt):
                code, text = self.attempt(rcpt, "relay")
                self.assertIn(code, (454, 501, 550, 553, 554), text)
        self.assert_nothing_left()

    def test_postmaster_variants(self):
        accepted = self.battery(postmaster_forms(), "postmaster")
        for rcpt in ("postmaster", "Postmaster", "postmaster@%s" % HOST, "postmaster@[127.0.0.1]"):
            self.assertIn(rcpt, accepted.values())

    def test_unknown_routed_local_parts_get_550(self):
        for rcpt in UNKNOWN_ROUTED:
            with self.subTest(rcpt=rcpt):
                code, text = self.attempt(rcpt, "unknown")
                self.assertEqual(code, 550, text)
                self.assertTrue(text.startswith("5.1.1 <"), text)
                self.assertIn("User unknown in local recipient table", text)
        self.inst.wait_empty(timeout=30)
        self.assert_nothing_left()

    def test_valid_routed_local_parts_are_delivered_to_the_user(self):
        accepted = self.battery(VALID_ROUTED, "valid")
        self.assertEqual(sorted(accepted.values()), sorted(VALID_ROUTED))
        log = self.inst.log_text()
        for rcpt in VALID_ROUTED:
            self.assertRegex(log, r"to=<%s>, relay=local, .*status=sent \(delivered to maildir\)"
                             % re.escape(rcpt))


class LiteralToPort25(RelayInstance):
    """The attack as it was found: no relayhost, and a real SMTP server on
    port 25 of 127.0.0.1 (the sink, when the port is free). Mail to our own
    literals must be delivered here, never handed to that server."""

    @classmethod
    def start_sink(cls):
        try:
            return sink.Sink(port=25)
        except Exception as e:     # the port is taken, or not ours to bind
            raise unittest.SkipTest("cannot listen on 127.0.0.1:25: %s" % e)

    @classmethod
    def relayhost(cls):
        return ""

    def test_own_literal_never_reaches_port_25(self):
        forms = ["%s@[127.0.0.1]" % USER, "root@[127.0.0.1]", "postmaster@[127.0.0.1]",
                 "%s@[IPv6:::ffff:127.0.0.1]" % USER, '"%s@[127.0.0.1]"@localhost' % USER]
        accepted = self.battery(forms, "port25")
        self.assertEqual(sorted(accepted.values()), sorted(forms))


class TrustedRouting(RelayInstance):
    """From mynetworks sender routing may lead anywhere, and the next
    server is given the address as the resolver resolved it, as Postfix
    does: RCPT TO:<victim@foreign.test>, not the routed form."""

    def test_routed_address_is_resolved_for_delivery(self):
        forms = ["victim%%%s@localhost" % FOREIGN, '"victim@%s"@[127.0.0.1]' % FOREIGN,
                 "%s!victim@%s" % (FOREIGN, HOST)]
        for rcpt in forms:
            c = harness.RawSession(self.inst.port, timeout=20, source="127.0.0.2")
            self.addCleanup(c.close)
            for line, want in (("EHLO trusted.example", 250), ("MAIL FROM:<%s>" % SENDER, 250),
                               ("RCPT TO:<%s>" % rcpt, 250), ("DATA", 354),
                               ("Subject: routed\r\n\r\nvia %s\r\n." % rcpt, 250)):
                c.send(line + "\r\n")
                self.assertEqual(c.read_reply()[0], want, (rcpt, line))
            c.send("QUIT\r\n")
        msgs = self.sink.wait(len(forms), timeout=30)
        self.assertEqual(sorted(m[1][0] for m in msgs), ["victim@%s" % FOREIGN] * len(forms))
        for rcpt in forms:
            self.inst.wait_log(r"to=<%s>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*status=sent"
                               % (re.escape(rcpt), self.sink.port))


if __name__ == "__main__":
    unittest.main()
