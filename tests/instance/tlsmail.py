"""tlsmail.py: what the transport-security tests (test_dane, test_mta_sts)
share: certificates and their digests made with the openssl command, the
remote SMTP servers (aiosmtpd, STARTTLS offered with a given certificate,
or not at all) that record each message and whether it came over TLS, and
sending a message through the instance and finding its delivery line."""
import hashlib
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import threading

import harness
from aiosmtpd.controller import Controller

# the smtp client's timeouts, short enough for a test that waits on a
# server that never completes the handshake
SMTP_TIMEOUTS = {name: "5s" for name in (
    "smtp_connect_timeout", "smtp_helo_timeout", "smtp_mail_timeout", "smtp_rcpt_timeout",
    "smtp_data_init_timeout", "smtp_data_xfer_timeout", "smtp_data_done_timeout",
    "smtp_quit_timeout", "smtp_starttls_timeout")}


def openssl(*args, cwd, stdin=None):
    """Run the openssl command in cwd; its standard output."""
    return subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                          timeout=60, input=stdin).stdout


def spki_sha256(d, cert):
    """SHA2-256 of cert's public key (SubjectPublicKeyInfo, DER), hex."""
    pub = openssl("x509", "-in", cert, "-noout", "-pubkey", cwd=d)
    der = openssl("pkey", "-pubin", "-outform", "DER", cwd=d, stdin=pub)
    return hashlib.sha256(der).hexdigest()


def cert_sha512(d, cert):
    """SHA2-512 of the whole certificate (DER), hex."""
    return hashlib.sha512(openssl("x509", "-in", cert, "-outform", "DER", cwd=d)).hexdigest()


class RecordingHandler:
    """An aiosmtpd handler that records each message with its recipients
    and whether it came over TLS."""

    def __init__(self, reply="250 2.0.0 Ok: queued by the test"):
        self.messages, self.lock, self.reply = [], threading.Lock(), reply

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append({"tls": session.ssl is not None, "to": list(envelope.rcpt_tos),
                                  "data": envelope.original_content})
        return self.reply

    def with_subject(self, subject):
        with self.lock:
            return [m for m in self.messages if b"Subject: %s\r\n" % subject.encode() in m["data"]]


def temp_dir(cls, prefix):
    """A temporary directory (mode 0755: daemons read certificates there)
    removed when the test class ends."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    cls.addClassCleanup(shutil.rmtree, d, True)
    return d


def start_sink(cls, handler, addr, port, d=None, chain=None, key=None):
    """A started aiosmtpd server on addr:port (loopback) for handler that
    offers STARTTLS with chain and key from d, or no STARTTLS without them;
    stopped when the test class cls ends."""
    ctx = None
    if chain:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(d, chain), os.path.join(d, key))
    c = Controller(handler, hostname=addr, port=port, server_hostname="remote.test",
                   tls_context=ctx, require_starttls=False, ready_timeout=10)
    c.start()
    cls.addClassCleanup(c.stop)
    return c


def send(test, inst, rcpt, subject):
    """One message from sender@client.test to rcpt through inst's smtpd;
    its queue ID (the test fails unless it was accepted)."""
    with inst.smtp() as s:
        s.ehlo("client.example")
        s.mail("sender@client.test")
        s.rcpt(rcpt)
        code, reply = s.data(("Subject: %s\r\n\r\nbody of %s\r\n" % (subject, subject)).encode())
    test.assertEqual(code, 250, reply)
    return harness.queue_id_of(reply)


def outcome(inst, qid, rcpt, status):
    """The delivery log line of qid's rcpt with this status, waited for (a
    match whose group 2 is the reason)."""
    return inst.wait_log(r"%s: to=<%s>, relay=\S+, (conn_use=\d+, )?delay=\S+, delays=\S+, "
                         r"dsn=\S+, status=%s \((.*)\)" % (qid, re.escape(rcpt), status), timeout=30)
