"""test_tls_client.py: whole-instance tests of the smtp client's STARTTLS
and AUTH (smtp/smtp_tls.c, smtp/smtp_sasl.c).

A test CA and server certificates are made with the openssl command in a
temporary directory. The remote servers are small threaded SMTP servers of
the test on 127.0.0.1 (Python's ssl module for STARTTLS, with a chosen
certificate and protocol range; AUTH PLAIN and LOGIN against one user), which
record per connection whether TLS was used, the protocol, the SNI name,
whether the TLS session was resumed, every AUTH attempt with its
credentials, and the messages. Mail gets there through smtpd and qmgr with
relayhost = [127.0.0.1]:PORT (or a name the DNS server of
test_smtp_delivery resolves to 127.0.0.1), and the tests check what the
server saw and the delivery log lines.
"""
import base64
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import servers  # noqa: E402
import test_smtp_delivery as tsd  # noqa: E402

SHORT_TIMEOUTS = {name: "5s" for name in (
    "smtp_connect_timeout", "smtp_helo_timeout", "smtp_mail_timeout", "smtp_rcpt_timeout",
    "smtp_data_init_timeout", "smtp_data_xfer_timeout", "smtp_data_done_timeout",
    "smtp_quit_timeout", "smtp_rset_timeout", "smtp_starttls_timeout")}

# Names the DNS server of test_smtp_delivery resolves for these tests.
tsd.ZONE.update({"mx.tls.test": {"A": ["127.0.0.1"]}, "wrong.tls.test": {"A": ["127.0.0.1"]},
                 "pol.tls.test": {"MX": [(10, "mx.tls.test")]},
                 "other.tls.test": {"MX": [(10, "wrong.tls.test")]}})

USER, PASSWORD = "relayuser", "s3cret:with:colons"


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d):
    """A CA (ca.pem) and a certificate for mx.tls.test signed by it
    (mx.pem, mx.key); EC keys, valid for two days."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Tern Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "mx.key", "-out", "mx.csr", "-subj", "/CN=mx.tls.test", cwd=d)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:mx.tls.test\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "mx.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "mx.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    # the smtp client's own certificate, for servers that ask for one
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "client.key", "-out", "client.csr", "-subj", "/CN=client.tls.test", cwd=d)
    with open(os.path.join(d, "client.cnf"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.pem", "-days", "2", "-extfile", "client.cnf", cwd=d)


class RemoteServer(servers.Server):
    """An SMTP server on 127.0.0.1:port, one thread per connection.
    starttls: offer STARTTLS (with tls_context); auth: the mechanisms offered
    ("PLAIN LOGIN"), before TLS too unless auth_tls_only; require_auth: MAIL
    FROM is refused with 530 until AUTH succeeded; starttls_reply: the reply
    to STARTTLS (a 220 followed by injected text, or a refusal); stall_tls:
    never start the handshake. Every connection is a
    dict in .connections: tls (protocol or None), sni, resumed, auths
    [(mechanism, user, password)], commands, messages, handshake_error."""

    def __init__(self, tls_context=None, starttls=True, auth=None, auth_tls_only=False,
                 require_auth=False, starttls_reply="220 2.0.0 Ready to start TLS", stall_tls=False):
        self.starttls_reply, self.stall_tls = starttls_reply, stall_tls
        self.ctx = tls_context
        self.starttls = starttls and tls_context is not None
        self.auth, self.auth_tls_only, self.require_auth = auth, auth_tls_only, require_auth
        self.connections = []
        self.snis = []
        if self.ctx is not None:
            self.ctx.sni_callback = lambda sslobj, name, ctx: self.snis.append(name)
        super().__init__(backlog=16)

    def handle(self, conn):
        rec = {"tls": None, "cipher": None, "resumed": False, "client_cn": None, "auths": [], "commands": [],
               "messages": [], "handshake_error": None, "closed": False}
        with self.lock:
            self.connections.append(rec)
        conn.settimeout(20)
        state = {"sock": conn, "buf": b""}
        try:
            self._dialogue(state, rec)
        except (OSError, EOFError, ssl.SSLError, ValueError):
            pass
        finally:
            rec["closed"] = True
            try:
                state["sock"].close()
            except OSError:
                pass

    @staticmethod
    def _line(state):
        while b"\r\n" not in state["buf"]:
            chunk = state["sock"].recv(65536)
            if not chunk:
                raise EOFError
            state["buf"] += chunk
        line, state["buf"] = state["buf"].split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    @staticmethod
    def _send(state, text):
        state["sock"].sendall(text.encode() + b"\r\n")

    def _check(self, rec, mech, user, password):
        rec["auths"].append((mech, user, password))
        return user == USER and password == PASSWORD

    def _auth(self, state, rec, args):
        parts = args.split()
        mech = parts[0].upper() if parts else ""
        b64 = lambda s: base64.b64decode(s.encode()).decode("utf-8", "replace")  # noqa: E731
        if mech == "PLAIN":
            resp = parts[1] if len(parts) > 1 else None
            if resp is None:
                self._send(state, "334 ")
                resp = self._line(state)
            fields = b64(resp).split("\0")
            ok = len(fields) == 3 and self._check(rec, "PLAIN", fields[1], fields[2])
        elif mech == "LOGIN":
            self._send(state, "334 VXNlcm5hbWU6")
            user = b64(self._line(state))
            self._send(state, "334 UGFzc3dvcmQ6")
            ok = self._check(rec, "LOGIN", user, b64(self._line(state)))
        else:
            self._send(state, "504 5.5.4 Unrecognized authentication type")
            return False
        self._send(state, "235 2.7.0 Authentication successful" if ok
                   else "535 5.7.8 Error: authentication failed")
        return ok

    def _dialogue(self, state, rec):
        self._send(state, "220 remote.tls.test ESMTP")
        authed = False
        for _ in range(200):
            cmd = self._line(state)
            rec["commands"].append(cmd)
            verb, _, args = cmd.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                lines = ["remote.tls.test", "8BITMIME"]
                if self.starttls and rec["tls"] is None:
                    lines.append("STARTTLS")
                if self.auth and (rec["tls"] or not self.auth_tls_only):
                    lines.append("AUTH " + self.auth)
                self._send(state, "\r\n".join(
                    "250%s%s" % ("-" if i < len(lines) - 1 else " ", l) for i, l in enumerate(lines)))
            elif verb == "STARTTLS" and self.starttls and rec["tls"] is None:
                self._send(state, self.starttls_reply)
                if not self.starttls_reply.startswith("220"):
                    continue
                if self.stall_tls:
                    self._line(state)           # until the client gives up and closes
                    return
                try:
                    tls = self.ctx.wrap_socket(state["sock"], server_side=True)
                except (ssl.SSLError, OSError) as e:
                    rec["handshake_error"] = str(e)
                    return
                state["sock"], state["buf"] = tls, b""
                rec["tls"], rec["cipher"] = tls.version(), tls.cipher()
                rec["resumed"] = tls.session_reused
                peer = tls.getpeercert() or {}
                rec["client_cn"] = dict(x[0] for x in peer.get("subject", ())).get("commonName")
            elif verb == "AUTH" and self.auth:
                authed = self._auth(state, rec, args) or authed
            elif verb == "MAIL":
                if self.require_auth and not authed:
                    self._send(state, "530 5.7.0 Authentication required")
                else:
                    self._send(state, "250 2.1.0 Ok")
            elif verb == "DATA":
                self._send(state, "354 End data with <CR><LF>.<CR><LF>")
                data = []
                while True:
                    line = self._line(state)
                    if line == ".":
                        break
                    data.append(line)
                rec["messages"].append("\n".join(data))
                self._send(state, "250 2.0.0 Ok: queued as TLS%d" % len(rec["messages"]))
            elif verb == "QUIT":
                self._send(state, "221 2.0.0 Bye")
                return
            else:
                self._send(state, "250 2.0.0 Ok")

    def messages(self):
        with self.lock:
            return [(c, m) for c in self.connections for m in c["messages"]]

    def wait_messages(self, n, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.messages()
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError("server has %d messages, expected %d: %r" % (
            len(self.messages()), n, self.connections))



def log_result(rcpt, status, reason=r"[^)]*", port=None, dsn=r"\d\.\d+\.\d+"):
    relay = r"127\.0\.0\.1\[127\.0\.0\.1\]:%d" % port if port else r"\S+"
    return (r"to=<%s>, relay=%s, (conn_use=\d+, )?delay=\S+, delays=\S+, dsn=%s, status=%s \(%s\)"
            % (re.escape(rcpt), relay, dsn, status, reason))


class TlsClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = tempfile.mkdtemp(prefix="tern-tls-pki-")
        os.chmod(cls.pki, 0o755)
        try:
            make_pki(cls.pki)
        except Exception:
            shutil.rmtree(cls.pki, ignore_errors=True)
            raise
        cls.dns = tsd.DnsServer()

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        shutil.rmtree(cls.pki, ignore_errors=True)

    # ---- helpers ----
    def server_context(self, minimum=None, maximum=None, ask_client_cert=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(self.pki, "mx.pem"), os.path.join(self.pki, "mx.key"))
        if ask_client_cert:
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.load_verify_locations(self.ca())
        if minimum:
            ctx.set_ciphers("ALL:@SECLEVEL=0")
            ctx.minimum_version = minimum
        if maximum:
            ctx.maximum_version = maximum
        return ctx

    def server(self, **kwargs):
        srv = RemoteServer(**kwargs)
        self.addCleanup(srv.stop)
        return srv

    def instance(self, relayhost, maxproc="-", chroot="n", **settings):
        main_cf = dict(SHORT_TIMEOUTS, relayhost=relayhost, smtp_tls_loglevel="1",
                       smtp_dns_servers="127.0.0.1:%d" % self.dns.port, smtp_dns_timeout="2s")
        main_cf.update(settings)
        inst = harness.Instance("tlsc", main_cf=main_cf, master_cf_extra=[
            "smtp unix - - %s - %s smtp" % (chroot, maxproc),
            "relay unix - - %s - %s smtp" % (chroot, maxproc)])
        self.addCleanup(inst.cleanup)
        inst.start()
        self.inst = inst
        return inst

    def send(self, rcpts, tag="x"):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            for rcpt in rcpts:
                s.sendmail("sender@example.org", [rcpt],
                           b"Subject: %s\r\nX-Tag: %s\r\n\r\nbody\r\n" % (tag.encode(), rcpt.encode()))

    def ca(self):
        return os.path.join(self.pki, "ca.pem")

    # ---- opportunistic TLS ----
    def test_opportunistic_tls_delivers_over_tls(self):
        srv = self.server(tls_context=self.server_context())
        self.instance("[127.0.0.1]:%d" % srv.port)
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertTrue(conn["tls"], conn)
        self.assertEqual(conn["commands"][:2], ["EHLO tern.test", "STARTTLS"])
        self.assertEqual(conn["commands"][2], "EHLO tern.test")       # EHLO again after TLS
        self.inst.wait_log(r"Untrusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: "
                           r"TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)" % srv.port)
        self.inst.wait_log(log_result("b@remote.example", "sent", port=srv.port))
        self.assertEqual(srv.snis, [None])     # no SNI at level may by default

    def test_opportunistic_tls_from_a_chrooted_smtp(self):
        """With no TLS file to read at start-up, smtp makes its TLS context
        at the first STARTTLS it meets: here inside its chroot and under
        its system call filter, where no file of OpenSSL's is reachable."""
        srv = self.server(tls_context=self.server_context())
        self.instance("[127.0.0.1]:%d" % srv.port, chroot="y")
        self.send(["c@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertTrue(conn["tls"], conn)
        self.inst.wait_log(r"Untrusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: "
                           r"TLSv1\.[23] with cipher" % srv.port)
        self.inst.wait_log(log_result("c@remote.example", "sent", port=srv.port))
        self.assertNotRegex(self.inst.log_text(), r"smtp\[\d+\]: (warning|fatal|panic):")

    def test_opportunistic_without_starttls_is_plaintext(self):
        srv = self.server(tls_context=None)
        self.instance("[127.0.0.1]:%d" % srv.port)
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertIsNone(conn["tls"])
        self.inst.wait_log(log_result("b@remote.example", "sent", port=srv.port))
        self.assertNotIn("TLS connection established", self.inst.log_text())

    def test_level_none_never_starts_tls(self):
        srv = self.server(tls_context=self.server_context())
        self.instance("[127.0.0.1]:%d" % srv.port, smtp_tls_security_level="none")
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertIsNone(conn["tls"])
        self.assertNotIn("STARTTLS", conn["commands"])

    # ---- mandatory TLS ----
    def test_encrypt_to_server_without_starttls_defers(self):
        srv = self.server(tls_context=None)
        self.instance("[127.0.0.1]:%d" % srv.port, smtp_tls_security_level="encrypt")
        self.send(["b@remote.example"])
        self.inst.wait_log(log_result(
            "b@remote.example", "deferred", dsn=r"4\.7\.4",
            reason=r"TLS is required, but was not offered by host 127\.0\.0\.1\[127\.0\.0\.1\]"), timeout=20)
        self.assertEqual(srv.messages(), [])
        self.assertFalse(any(c.startswith("MAIL") for conn in srv.connections for c in conn["commands"]))

    def test_verify_with_wrong_name_defers(self):
        srv = self.server(tls_context=self.server_context())
        self.instance("[wrong.tls.test]:%d" % srv.port, smtp_tls_security_level="verify",
                      smtp_tls_CAfile=self.ca())
        self.send(["b@remote.example"])
        self.inst.wait_log(log_result(
            "b@remote.example", "deferred", dsn=r"4\.7\.5",
            reason=r"Server certificate not verified \(no certificate name matches wrong\.tls\.test\)"),
            timeout=20)
        self.inst.wait_log(r"Trusted TLS connection established to wrong\.tls\.test\[127\.0\.0\.1\]:%d"
                           % srv.port)
        self.assertEqual(srv.messages(), [])
        self.assertEqual(srv.snis, ["wrong.tls.test"])      # SNI: the host name when verifying
        for conn in srv.connections:
            self.assertFalse(any(c.startswith("MAIL") for c in conn["commands"]), conn)

    def test_verify_without_trusted_ca_defers(self):
        srv = self.server(tls_context=self.server_context())
        self.instance("[mx.tls.test]:%d" % srv.port, smtp_tls_security_level="verify")
        self.send(["b@remote.example"])
        self.inst.wait_log(log_result("b@remote.example", "deferred", dsn=r"4\.7\.5",
                                      reason=r"Server certificate not trusted \([^)]+\)"), timeout=20)
        self.assertEqual(srv.messages(), [])

    def test_verify_with_right_ca_and_name_delivers(self):
        srv = self.server(tls_context=self.server_context())
        self.instance("[mx.tls.test]:%d" % srv.port, smtp_tls_security_level="verify",
                      smtp_tls_CAfile=self.ca())
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertTrue(conn["tls"])
        self.inst.wait_log(r"Verified TLS connection established to mx\.tls\.test\[127\.0\.0\.1\]:%d: "
                           r"TLSv1\.[23] with cipher" % srv.port)
        self.inst.wait_log(log_result("b@remote.example", "sent"))
        self.assertEqual(srv.snis, ["mx.tls.test"])

    def test_policy_map_per_destination(self):
        """Global level none; the policy table asks for secure to one next
        hop (delivered over verified TLS) and encrypt to another whose
        server has no STARTTLS (deferred, nothing sent)."""
        tls_srv = self.server(tls_context=self.server_context())
        plain_srv = self.server(tls_context=None)
        d = tempfile.mkdtemp(prefix="tern-tls-maps-")
        self.addCleanup(shutil.rmtree, d, True)
        transport = os.path.join(d, "transport")
        policy = os.path.join(d, "tls_policy")
        with open(transport, "w") as f:
            f.write("secure.example smtp:[mx.tls.test]:%d\nplain.example smtp:[127.0.0.1]:%d\n"
                    "loose.example smtp:[127.0.0.1]:%d\n" % (tls_srv.port, plain_srv.port, tls_srv.port))
        with open(policy, "w") as f:
            f.write("[mx.tls.test]:%d secure match=nexthop:.tls.test protocols=>=TLSv1.2\n"
                    "[127.0.0.1]:%d encrypt\n" % (tls_srv.port, plain_srv.port))
        os.chmod(d, 0o755)
        self.instance("[127.0.0.1]:1", smtp_tls_security_level="none", smtp_tls_CAfile=self.ca(),
                      transport_maps="texthash:" + transport, smtp_tls_policy_maps="texthash:" + policy)
        self.send(["a@secure.example", "b@plain.example", "c@loose.example"])
        self.inst.wait_log(log_result("a@secure.example", "sent"))
        self.inst.wait_log(r"Verified TLS connection established to mx\.tls\.test\[127\.0\.0\.1\]:%d"
                           % tls_srv.port)
        self.inst.wait_log(log_result("b@plain.example", "deferred", dsn=r"4\.7\.4",
                                      reason=r"TLS is required, but was not offered by host [^)]+"))
        self.inst.wait_log(log_result("c@loose.example", "sent"))
        self.assertEqual(plain_srv.messages(), [])
        by_rcpt = {m.split("X-Tag: ")[1].split("\n")[0]: c for c, m in tls_srv.wait_messages(2)}
        self.assertTrue(by_rcpt["a@secure.example"]["tls"])
        self.assertIsNone(by_rcpt["c@loose.example"]["tls"])     # the global level: none

    def test_policy_for_parent_domain_checks_the_mx_name(self):
        """A policy keyed by a parent domain (.tls.test) applies to the MX
        destinations below it; at level verify the certificate must match
        the MX host name: mx.tls.test does, wrong.tls.test does not."""
        srv = self.server(tls_context=self.server_context())
        d = tempfile.mkdtemp(prefix="tern-tls-maps-")
        self.addCleanup(shutil.rmtree, d, True)
        policy = os.path.join(d, "tls_policy")
        with open(policy, "w") as f:
            f.write(".tls.test verify\n")
        os.chmod(d, 0o755)
        self.instance("", smtp_tcp_port=str(srv.port), smtp_tls_CAfile=self.ca(),
                      smtp_tls_policy_maps="texthash:" + policy)
        self.send(["a@pol.tls.test", "b@other.tls.test"])
        self.inst.wait_log(log_result("a@pol.tls.test", "sent"))
        self.inst.wait_log(r"Verified TLS connection established to mx\.tls\.test\[127\.0\.0\.1\]:%d"
                           % srv.port)
        self.inst.wait_log(log_result("b@other.tls.test", "deferred", dsn=r"4\.7\.5",
                                      reason=r"Server certificate not verified \(no certificate name "
                                             r"matches wrong\.tls\.test\)"))
        self.assertEqual(len(srv.messages()), 1)
        self.assertEqual(sorted(srv.snis), ["mx.tls.test", "wrong.tls.test"])

    def test_bad_policy_value_defers_with_configuration_problem(self):
        srv = self.server(tls_context=self.server_context())
        d = tempfile.mkdtemp(prefix="tern-tls-maps-")
        self.addCleanup(shutil.rmtree, d, True)
        policy = os.path.join(d, "tls_policy")
        with open(policy, "w") as f:
            f.write("[127.0.0.1]:%d encrypt match=mx.tls.test\n" % srv.port)   # match needs verify
        os.chmod(d, 0o755)
        self.instance("[127.0.0.1]:%d" % srv.port, smtp_tls_policy_maps="texthash:" + policy)
        self.send(["b@remote.example"])
        self.inst.wait_log(log_result("b@remote.example", "deferred", dsn=r"4\.7\.5",
                                      reason="client TLS configuration problem"), timeout=20)
        self.inst.wait_log(r"TLS policy lookup for \[127\.0\.0\.1\]:%d: attribute \"match\" is valid "
                           r"only with levels verify and secure" % srv.port)
        self.assertEqual(srv.connections, [])

    def test_starttls_refused_continues_in_clear_at_level_may(self):
        srv = self.server(tls_context=self.server_context(), starttls_reply="454 4.7.0 TLS not available")
        self.instance("[127.0.0.1]:%d" % srv.port)
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertIsNone(conn["tls"])
        self.assertEqual(len(srv.connections), 1)        # the same connection, in clear
        self.assertIn("STARTTLS", conn["commands"])

    def test_starttls_refused_defers_at_level_encrypt(self):
        srv = self.server(tls_context=self.server_context(), starttls_reply="454 4.7.0 TLS not available")
        self.instance("[127.0.0.1]:%d" % srv.port, smtp_tls_security_level="encrypt")
        self.send(["b@remote.example"])
        self.inst.wait_log(log_result(
            "b@remote.example", "deferred", dsn=r"4\.7\.0",
            reason=r"TLS is required, but host 127\.0\.0\.1\[127\.0\.0\.1\] refused to start TLS: "
                   r"454 4\.7\.0 TLS not available"), timeout=20)
        self.assertEqual(srv.messages(), [])

    def test_plaintext_injected_after_starttls_is_discarded(self):
        """Text the server (or a man in the middle) sends in clear behind
        the 220 must not be taken as a reply inside the TLS session."""
        srv = self.server(tls_context=self.server_context(),
                          starttls_reply="220 2.0.0 Ready\r\n250-injected\r\n250 STARTTLS")
        self.instance("[127.0.0.1]:%d" % srv.port, smtp_tls_security_level="encrypt")
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertTrue(conn["tls"])
        self.inst.wait_log(log_result("b@remote.example", "sent", port=srv.port))

    def test_stalled_handshake_times_out(self):
        srv = self.server(tls_context=self.server_context(), stall_tls=True)
        self.instance("[127.0.0.1]:%d" % srv.port, smtp_tls_security_level="encrypt",
                      smtp_starttls_timeout="2s")
        t0 = time.time()
        self.send(["b@remote.example"])
        self.inst.wait_log(log_result("b@remote.example", "deferred", dsn=r"4\.7\.5",
                                      reason=r"Cannot start TLS: handshake failure \(timed out\)"),
                           timeout=20)
        self.assertLess(time.time() - t0, 10)
        self.assertGreaterEqual(time.time() - t0, 1.8)

    def test_client_certificate_offered_when_asked(self):
        srv = self.server(tls_context=self.server_context(ask_client_cert=True))
        self.instance("[127.0.0.1]:%d" % srv.port,
                      smtp_tls_cert_file=os.path.join(self.pki, "client.pem"),
                      smtp_tls_key_file=os.path.join(self.pki, "client.key"))
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertTrue(conn["tls"])
        self.assertEqual(conn["client_cn"], "client.tls.test")

    def test_no_client_certificate_and_no_tls_log_line_by_default(self):
        srv = self.server(tls_context=self.server_context(ask_client_cert=True))
        self.instance("[127.0.0.1]:%d" % srv.port, smtp_tls_loglevel="0")    # quiet, as Postfix by default
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertTrue(conn["tls"])
        self.assertIsNone(conn["client_cn"])
        self.inst.wait_log(log_result("b@remote.example", "sent", port=srv.port))
        self.assertNotIn("TLS connection established", self.inst.log_text())

    def test_server_name_from_policy_and_setting(self):
        srv = self.server(tls_context=self.server_context())
        d = tempfile.mkdtemp(prefix="tern-tls-maps-")
        self.addCleanup(shutil.rmtree, d, True)
        policy = os.path.join(d, "tls_policy")
        with open(policy, "w") as f:
            f.write("[127.0.0.1]:%d encrypt servername=custom.tls.test\n" % srv.port)
        os.chmod(d, 0o755)
        self.instance("[127.0.0.1]:%d" % srv.port, smtp_tls_policy_maps="texthash:" + policy,
                      smtp_tls_servername="nexthop")
        self.send(["b@remote.example"])
        srv.wait_messages(1)
        self.assertEqual(srv.snis, ["custom.tls.test"])      # the policy wins over main.cf

    def test_server_name_nexthop_setting(self):
        srv = self.server(tls_context=self.server_context())
        self.instance("[mx.tls.test]:%d" % srv.port, smtp_tls_servername="nexthop")
        self.send(["b@remote.example"])
        srv.wait_messages(1)
        self.assertEqual(srv.snis, ["mx.tls.test"])           # sent at level may when set

    # ---- protocols ----
    def test_tls11_only_server_refused_when_tls_is_required(self):
        srv = self.server(tls_context=self.server_context(ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1))
        self.instance("[127.0.0.1]:%d" % srv.port, smtp_tls_security_level="encrypt",
                      smtp_tls_mandatory_protocols=">=TLSv1.2")
        self.send(["b@remote.example"])
        self.inst.wait_log(log_result("b@remote.example", "deferred", dsn=r"4\.7\.5",
                                      reason=r"Cannot start TLS: handshake failure \([^)]+\)"), timeout=20)
        self.inst.wait_log(r"SSL_connect error to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: " % srv.port)
        time.sleep(0.5)
        self.assertEqual(srv.messages(), [])
        self.assertEqual(len(srv.connections), 1, "no plaintext retry at level encrypt")

    def test_tls11_only_server_at_level_may_falls_back_to_plaintext(self):
        srv = self.server(tls_context=self.server_context(ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1))
        self.instance("[127.0.0.1]:%d" % srv.port, smtp_tls_protocols=">=TLSv1.2")
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertIsNone(conn["tls"])
        self.assertNotIn("STARTTLS", conn["commands"])
        self.assertEqual(len(srv.connections), 2)
        self.assertIn("STARTTLS", srv.connections[0]["commands"])
        self.inst.wait_log(r"Cannot start TLS: handshake failure \([^)]+\); trying again without TLS")
        self.inst.wait_log(log_result("b@remote.example", "sent", port=srv.port))

    # ---- AUTH ----
    def test_auth_plain_over_tls_to_relayhost(self):
        srv = self.server(tls_context=self.server_context(), auth="PLAIN LOGIN", auth_tls_only=True,
                          require_auth=True)
        hop = "[127.0.0.1]:%d" % srv.port
        pw = self.table_file("sasl_passwd", ["%s %s:%s" % (hop, USER, PASSWORD)])
        self.instance(hop, smtp_sasl_auth_enable="yes", smtp_sasl_password_maps=pw,
                      smtp_sasl_tls_security_options="noanonymous")
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertTrue(conn["tls"])
        self.assertEqual(conn["auths"], [("PLAIN", USER, PASSWORD)])
        self.inst.wait_log(log_result("b@remote.example", "sent", port=srv.port))
        self.assertNotIn(PASSWORD, self.inst.log_text())

    def test_auth_login_when_plain_is_filtered(self):
        srv = self.server(tls_context=self.server_context(), auth="PLAIN LOGIN", require_auth=True)
        hop = "[127.0.0.1]:%d" % srv.port
        pw = self.table_file("sasl_passwd", ["127.0.0.1 %s:%s" % (USER, PASSWORD)])   # by host name
        self.instance(hop, smtp_sasl_auth_enable="yes", smtp_sasl_password_maps=pw,
                      smtp_sasl_tls_security_options="noanonymous", smtp_sasl_mechanism_filter="login")
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertEqual(conn["auths"], [("LOGIN", USER, PASSWORD)])

    def test_auth_wrong_password_defers_with_server_reply(self):
        srv = self.server(tls_context=self.server_context(), auth="PLAIN", require_auth=True)
        hop = "[127.0.0.1]:%d" % srv.port
        pw = self.table_file("sasl_passwd", ["%s %s:wrong" % (hop, USER)])
        self.instance(hop, smtp_sasl_auth_enable="yes", smtp_sasl_password_maps=pw,
                      smtp_sasl_tls_security_options="noanonymous")
        self.send(["b@remote.example"])
        self.inst.wait_log(log_result(
            "b@remote.example", "deferred", dsn=r"4\.7\.8",
            reason=r"SASL authentication failed; server 127\.0\.0\.1\[127\.0\.0\.1\] said: "
                   r"535 5\.7\.8 Error: authentication failed"), timeout=20)
        self.assertEqual(srv.messages(), [])
        self.assertEqual(srv.connections[0]["auths"], [("PLAIN", USER, "wrong")])

    def test_no_password_in_clear_by_default(self):
        srv = self.server(tls_context=None, auth="PLAIN LOGIN", require_auth=True)
        hop = "[127.0.0.1]:%d" % srv.port
        pw = self.table_file("sasl_passwd", ["%s %s:%s" % (hop, USER, PASSWORD)])
        self.instance(hop, smtp_sasl_auth_enable="yes", smtp_sasl_password_maps=pw)
        self.send(["b@remote.example"])
        self.inst.wait_log(log_result(
            "b@remote.example", "deferred", dsn=r"4\.7\.0",
            reason=r"SASL authentication failed: server 127\.0\.0\.1\[127\.0\.0\.1\] offered no "
                   r"compatible authentication mechanisms for this type of connection security"),
            timeout=20)
        for conn in srv.connections:
            self.assertEqual(conn["auths"], [])
            self.assertFalse(any(c.upper().startswith("AUTH") for c in conn["commands"]), conn)

    def test_password_in_clear_when_the_administrator_allows_it(self):
        srv = self.server(tls_context=None, auth="PLAIN", require_auth=True)
        hop = "[127.0.0.1]:%d" % srv.port
        pw = self.table_file("sasl_passwd", ["%s %s:%s" % (hop, USER, PASSWORD)])
        self.instance(hop, smtp_sasl_auth_enable="yes", smtp_sasl_password_maps=pw,
                      smtp_sasl_security_options="noanonymous")
        self.send(["b@remote.example"])
        [(conn, _)] = srv.wait_messages(1)
        self.assertIsNone(conn["tls"])
        self.assertEqual(conn["auths"], [("PLAIN", USER, PASSWORD)])

    # ---- reuse ----
    def test_connection_reuse_over_tls(self):
        srv = self.server(tls_context=self.server_context(), auth="PLAIN", require_auth=True)
        hop = "[127.0.0.1]:%d" % srv.port
        pw = self.table_file("sasl_passwd", ["%s %s:%s" % (hop, USER, PASSWORD)])
        self.instance(hop, maxproc="1", smtp_connection_cache_time_limit="10s",
                      smtp_tls_security_level="encrypt", smtp_sasl_auth_enable="yes",
                      smtp_sasl_password_maps=pw, smtp_sasl_tls_security_options="noanonymous")
        self.send(["one@remote.example"])
        srv.wait_messages(1)
        self.send(["two@remote.example"])
        got = srv.wait_messages(2)
        self.assertEqual(len(srv.connections), 1, srv.connections)
        conn = srv.connections[0]
        self.assertTrue(conn["tls"])
        self.assertEqual(len(conn["messages"]), 2)
        self.assertEqual(conn["auths"], [("PLAIN", USER, PASSWORD)])       # once per connection
        self.assertEqual(conn["commands"].count("STARTTLS"), 1)
        self.assertIn("RSET", conn["commands"])
        self.assertEqual(len(got), 2)
        self.inst.wait_log(log_result("two@remote.example", "sent", port=srv.port)
                           .replace(r"(conn_use=\d+, )?", "conn_use=2, "))
        self.assertEqual(len(re.findall(r"TLS connection established", self.inst.log_text())), 1)

    def test_tls_session_resumed_by_the_next_connection(self):
        srv = self.server(tls_context=self.server_context())
        self.instance("[127.0.0.1]:%d" % srv.port, maxproc="1", smtp_connection_cache_on_demand="no",
                      smtp_tls_loglevel="2")
        self.send(["one@remote.example"])
        srv.wait_messages(1)
        self.send(["two@remote.example"])
        srv.wait_messages(2)
        self.assertEqual(len(srv.connections), 2)
        self.assertEqual([c["resumed"] for c in srv.connections], [False, True])
        self.inst.wait_log(r"127\.0\.0\.1\[127\.0\.0\.1\]:%d: TLS session resumed" % srv.port)

    def table_file(self, name, lines):
        d = tempfile.mkdtemp(prefix="tern-tls-maps-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(path, 0o600)      # read as root before the privilege drop
        return "texthash:" + path


if __name__ == "__main__":
    unittest.main()
