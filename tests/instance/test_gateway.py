"""test_gateway.py: a whole mail gateway made by `tern init --gateway`, in
front of an "Exchange" (an SMTP server of the test that accepts only its
users at RCPT), with the test's ports and DNS server, the milters of
Debian's packages turned on (rspamd's proxy worker, clamav-milter in front
of clamd on a sigtool-built database) and policyd-spf run by spawn with
SPF records from the test's DNS. A labelled corpus is played through it
from clients on their own loopback addresses: ham from several senders,
GTUBE spam, the EICAR test virus, a client on the test's DNS block list
(postscreen), a bot that talks before the greeting, unknown recipients
(refused at RCPT by a probe of Exchange, never accepted and bounced), an
SPF-fail forgery, and the reply of a correspondent an internal user wrote
to first. The confusion matrix (spam stopped, ham delivered) is printed;
no ham may be lost and every spam class must be stopped. TestInitGateway:
the options `tern init --gateway` refuses, and its LDAP variant.

Addresses: 127.0.0.10 is the internal network (Exchange's outbound mail);
127.0.0.2 is listed on zen.test; 127.0.0.3 sends ham and the content spam;
127.0.0.4 is the pre-greeting bot; 127.0.0.5 the forger; 127.0.0.6 the
correspondent."""
import os
import shutil
import smtplib
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sink  # noqa: E402
from dnsserver import DnsServer  # noqa: E402
from scanners import (CLAMAV_MILTER, EICAR, GTUBE, RSPAMD, RSPAMD_OFFLINE,  # noqa: E402
                      clamd_unavailable, start_clamav_milter, start_clamd, start_rspamd, tail)
from test_policy import POLICYD_SPF, SPF_CONF, SPF_WRAPPER  # noqa: E402

USERS = {"alice@corp.test", "bob@corp.test", "carol@corp.test", "dave@corp.test"}
INTERNAL = "127.0.0.10"
ZONE = {
    "2.0.0.127.zen.test": {"A": ["127.0.0.2"]},
    "partner.test": {"TXT": ["v=spf1 ip4:127.0.0.0/24 -all"]},
    "pal.test": {"TXT": ["v=spf1 ip4:127.0.0.6 -all"]},
    "bank.test": {"TXT": ["v=spf1 ip4:192.0.2.1 -all"]},
}
GREET_WAIT = 2


def missing():
    if os.geteuid() != 0:
        return "the scanners are started as root to drop to their accounts"
    why = clamd_unavailable()
    if why:
        return why
    for path, pkg in ((RSPAMD, "rspamd"), (CLAMAV_MILTER, "clamav-milter"),
                      (POLICYD_SPF, "postfix-policyd-spf-python")):
        if not os.access(path, os.X_OK):
            return "%s is missing: install %s (tools/install-deps)" % (path, pkg)
    return None


class Exchange(sink.Handler):
    """The internal server: its users only, 550 5.1.1 for anyone else."""

    def __init__(self):
        super().__init__()
        self.refused = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() not in USERS:
            self.refused.append(address)
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"


def message(sender, rcpt, subject, body="Hello,\r\nthe minutes of Monday's meeting are below.\r\n",
            extra=""):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: Sun, 6 Dec 2026 12:00:00 +0000\r\n"
            "Message-ID: <%d.%s>\r\n%s\r\n%s"
            % (sender, rcpt, subject, abs(hash(subject)), sender, extra, body)).encode()


def eicar_body():
    import base64
    b64 = base64.encodebytes(EICAR).decode().replace("\n", "\r\n")
    return ("--b1\r\nContent-Type: text/plain\r\n\r\nthe invoice is attached\r\n"
            "--b1\r\nContent-Type: application/octet-stream; name=\"invoice.com\"\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n%s--b1--\r\n" % b64)


EICAR_MIME = 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n'


@unittest.skipIf(missing(), missing())
class TestGateway(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-gateway-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.daemons, cls.logs = [], []
        cls.addClassCleanup(lambda: [d.stop() for d in reversed(cls.daemons)])
        cls.dns = DnsServer(ZONE)
        cls.addClassCleanup(cls.dns.stop)
        cls.exchange = sink.Sink(handler=Exchange())
        cls.addClassCleanup(cls.exchange.stop)
        cls.internet = sink.Sink()
        cls.addClassCleanup(cls.internet.stop)
        # the milters, as an administrator turns them on
        clam_dir = os.path.join(cls.tmp, "clamav")
        clamd_sock, _ = start_clamd(clam_dir, "clamav", cls.daemons, cls.tmp)
        clam_port, _ = start_clamav_milter(cls.tmp, clamd_sock, cls.daemons, cls.logs)
        rspamd_port = start_rspamd(os.path.join(cls.tmp, "rspamd"), cls.dns.port, RSPAMD_OFFLINE,
                                   cls.daemons, cls.logs, cls.tmp)
        port = harness.free_port()
        cls.inst = harness.Instance(name="gateway", port=port, init_args=(
            "--gateway", "--next-hop", "127.0.0.1:%d" % cls.exchange.port, "--domain", "corp.test",
            "--internal-net", INTERNAL + "/32", "--listen", "127.0.0.1:%d" % port))
        cls.addClassCleanup(cls.inst.cleanup)
        # what the test changes in what `tern init --gateway` wrote: its DNS
        # server and block list, a short greeting wait, the internet as a
        # sink, the milters turned on, policyd-spf asking the test's DNS
        cls.inst.set_main_cf({
            "smtpd_dns_servers": "127.0.0.1:%d" % cls.dns.port, "smtpd_dns_timeout": "2s",
            "postscreen_dnsbl_sites": "zen.test*3", "postscreen_dnsbl_timeout": "2s",
            "postscreen_greet_wait": "%ds" % GREET_WAIT,
            "smtpd_peername_lookup": "no",
            "relayhost": "[127.0.0.1]:%d" % cls.internet.port,
            "smtpd_milters": "{ inet:127.0.0.1:%d, command_timeout=60s }, inet:127.0.0.1:%d"
                             % (rspamd_port, clam_port),
            "milter_default_action": "tempfail",
            "address_verify_poll_delay": "1s",
        })
        wrapper = os.path.join(cls.tmp, "spf-wrapper.py")
        spf_conf = os.path.join(cls.tmp, "policyd-spf.conf")
        with open(wrapper, "w") as f:
            f.write(SPF_WRAPPER)
        with open(spf_conf, "w") as f:
            f.write(SPF_CONF)
        master_cf = os.path.join(cls.inst.dir, "master.cf")
        with open(master_cf) as f:
            text = f.read()
        argv = "argv=" + POLICYD_SPF + "\n"
        assert argv in text, text
        with open(master_cf, "w") as f:
            f.write(text.replace(argv, "argv=/usr/bin/python3 %s %d %s %s\n"
                                 % (wrapper, cls.dns.port, POLICYD_SPF, spf_conf)))
        check = cls.inst.tern("check", check=False)
        assert check.returncode == 0, check.stdout + check.stderr
        cls.inst.start()
        cls.results = []          # (label, class, outcome, detail)

    def context(self):
        return "\nTern log:\n%s\n%s" % (self.inst.log_tail(40),
                                        "".join("%s:\n%s" % (p, tail(p, 20)) for p in self.logs))

    # ---- the clients ----

    def send(self, source, sender, rcpts, msg):
        """One SMTP session from source; the refusal as (code, text), or
        None when the message was accepted (for at least one recipient)."""
        try:
            with smtplib.SMTP("127.0.0.1", self.inst.port, timeout=90,
                              source_address=(source, 0)) as c:
                # some recipients refused, the others accepted: accepted
                c.sendmail(sender, rcpts, msg)
        except smtplib.SMTPRecipientsRefused as e:
            code, text = list(e.recipients.values())[0]
            return code, text.decode(errors="replace")
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as e:
            return e.smtp_code, e.smtp_error.decode(errors="replace")
        return None

    def pregreet(self, source, sender, rcpt):
        with harness.RawSession(self.inst.port, greet=False, timeout=30, source=source) as s:
            s.send(b"EHLO bot.test\r\n")          # before the greeting
            s.read_reply()                        # the greeting
            s.read_reply()                        # the early EHLO's answer
            s.send(("MAIL FROM:<%s>\r\n" % sender).encode())
            s.read_reply()
            s.send(("RCPT TO:<%s>\r\n" % rcpt).encode())
            code, lines = s.read_reply()
        return None if code // 100 == 2 else (code, " ".join(lines))

    def at_exchange(self, subject, timeout=0):
        deadline = time.time() + timeout
        while True:
            got = [m for m in self.exchange.handler.messages
                   if ("Subject: %s\r\n" % subject).encode() in m[2]]
            if got or time.time() >= deadline:
                return got
            time.sleep(0.1)

    def record(self, label, cls, subject, refusal):
        """A message's fate: delivered when Exchange got it, stopped when it
        was refused in the session (and Exchange never got it)."""
        if refusal is None:
            got = self.at_exchange(subject, timeout=30)
            outcome = "delivered" if got else "lost"
        else:
            outcome = "stopped"
        self.results.append((label, cls, outcome, refusal))
        return outcome

    # ---- the corpus ----

    def test_corpus(self):
        ham_senders = ["anna@partner.test", "ben@partner.test", "chris@partner.test",
                       "dora@partner.test", "eve@nospf.test", "finn@partner.test"]
        rcpts = sorted(USERS)
        for i, sender in enumerate(ham_senders):
            subject = "ham %d" % i
            rcpt = rcpts[i % len(rcpts)]
            self.record("ham", "ham", subject,
                        self.send("127.0.0.3", sender, [rcpt], message(sender, rcpt, subject)))
        # two recipients, one of them unknown: the known one gets the mail
        r = self.send("127.0.0.3", "anna@partner.test", ["alice@corp.test", "nobody@corp.test"],
                      message("anna@partner.test", "alice@corp.test", "ham two rcpts"))
        self.record("ham", "ham", "ham two rcpts", r)
        self.record("spam", "GTUBE", "gtube",
                    self.send("127.0.0.3", "promo@partner.test", ["bob@corp.test"],
                              message("promo@partner.test", "bob@corp.test", "gtube",
                                      body="Buy now\r\n%s\r\n" % GTUBE)))
        self.record("spam", "EICAR", "eicar",
                    self.send("127.0.0.3", "billing@partner.test", ["carol@corp.test"],
                              message("billing@partner.test", "carol@corp.test", "eicar",
                                      body=eicar_body(), extra=EICAR_MIME)))
        self.record("spam", "DNSBL-listed client", "listed",
                    self.send("127.0.0.2", "x@listed.test", ["alice@corp.test"],
                              message("x@listed.test", "alice@corp.test", "listed")))
        self.record("spam", "pre-greeting bot", "bot",
                    self.pregreet("127.0.0.4", "bot@bot.test", "alice@corp.test"))
        for i, rcpt in enumerate(["nobody@corp.test", "Admin@corp.test", "sales@corp.test"]):
            r = self.send("127.0.0.3", "anna@partner.test", [rcpt],
                          message("anna@partner.test", rcpt, "unknown %d" % i))
            self.record("spam", "unknown recipient", "unknown %d" % i, r)
            self.assertIsNotNone(r, "%s accepted%s" % (rcpt, self.context()))
            self.assertIn(r[0] // 100, (4, 5), r)
        # alice allowlisted her bank: a forgery of its address still fails SPF
        self.inst.tern("lists", "add", "alice@corp.test", "allow", "@bank.test")
        self.record("spam", "SPF-fail forgery", "forgery",
                    self.send("127.0.0.5", "ceo@bank.test", ["alice@corp.test"],
                              message("ceo@bank.test", "alice@corp.test", "forgery")))
        # dave writes out from the internal network; pen's reply comes back
        # past the checks after check_recipient_lists, marked
        self.assertIsNone(self.send(INTERNAL, "dave@corp.test", ["pen@pal.test"],
                                    message("dave@corp.test", "pen@pal.test", "dave writes")),
                          self.context())
        self.internet.wait(1, timeout=30)
        # smtpd writes the pair within a second or so (in a batch)
        table = "btree:%s/correspondents" % os.path.join(self.inst.dir, "data", "lists")
        for _ in range(100):
            if self.inst.tern("map", "query", table, "dave@corp.test pen@pal.test",
                              check=False).returncode == 0:
                break
            time.sleep(0.1)
        self.record("ham", "correspondent reply", "re: dave writes",
                    self.send("127.0.0.6", "pen@pal.test", ["dave@corp.test"],
                              message("pen@pal.test", "dave@corp.test", "re: dave writes")))

        self.report()
        lost = [r for r in self.results if r[0] == "ham" and r[2] != "delivered"]
        self.assertEqual(lost, [], "ham lost" + self.context())
        passed = [r for r in self.results if r[0] == "spam" and r[2] != "stopped"]
        self.assertEqual(passed, [], "spam not stopped" + self.context())

        # where a user sees it: the content checks, the marks, the log
        reply = self.at_exchange("re: dave writes")[0][2]
        self.assertIn(b"X-Tern-Allowlisted: <dave@corp.test> correspondent", reply)
        ham = self.at_exchange("ham 0")[0][2]
        self.assertRegex(ham, rb"\r\nX-Virus-Status: Clean")
        self.assertRegex(ham, rb"\r\nReceived-SPF: Pass ")
        self.assertEqual(self.at_exchange("ham two rcpts")[0][1], ["alice@corp.test"])
        by_class = {r[1]: r[3] for r in self.results}
        self.assertIn("Gtube pattern", by_class["GTUBE"][1])
        self.assertIn("Tern.Test.EICAR", by_class["EICAR"][1])
        self.assertEqual(by_class["DNSBL-listed client"][0], 550)
        self.assertEqual(by_class["pre-greeting bot"][0], 550)
        self.assertIn("5.7.23", by_class["SPF-fail forgery"][1])
        self.inst.wait_log(r"PREGREET \d+ after [0-9.]+ from \[127\.0\.0\.4\]")
        self.inst.wait_log(r"DNSBL rank 3 for \[127\.0\.0\.2\]")
        # unknown recipients were asked of Exchange by a probe, never sent
        # mail, and nobody got a bounce
        self.assertTrue({"nobody@corp.test", "sales@corp.test"} <= {a.lower() for a in
                                                                   self.exchange.handler.refused})
        for m in self.exchange.handler.messages:
            self.assertTrue(set(a.lower() for a in m[1]) <= USERS, m[1])
        time.sleep(1)
        self.assertEqual([m for m in self.internet.handler.messages if m[0] == ""], [],
                         "a bounce went out")
        self.assertEqual(len(self.internet.handler.messages), 1)

    def report(self):
        classes = []
        for r in self.results:
            if (r[0], r[1]) not in classes:
                classes.append((r[0], r[1]))
        lines = ["", "gateway corpus: %d messages" % len(self.results),
                 "%-6s %-22s %9s %9s %5s" % ("label", "class", "delivered", "stopped", "lost")]
        for label, cls in classes:
            rs = [r for r in self.results if r[1] == cls]
            lines.append("%-6s %-22s %9d %9d %5d" % (label, cls, sum(r[2] == "delivered" for r in rs),
                                                     sum(r[2] == "stopped" for r in rs),
                                                     sum(r[2] == "lost" for r in rs)))
        ham = [r for r in self.results if r[0] == "ham"]
        spam = [r for r in self.results if r[0] == "spam"]
        tp = sum(r[2] == "stopped" for r in spam)
        fn = len(spam) - tp
        tn = sum(r[2] == "delivered" for r in ham)
        fp = len(ham) - tn
        lines += ["confusion matrix        predicted spam  predicted ham",
                  "  actual spam           %14d  %13d" % (tp, fn),
                  "  actual ham            %14d  %13d" % (fp, tn),
                  "spam stopped %d/%d, ham delivered %d/%d" % (tp, len(spam), tn, len(ham)), ""]
        sys.stderr.write("\n".join(lines) + "\n")



class TestInitGateway(unittest.TestCase):
    """What `tern init --gateway` refuses, and its LDAP variant."""

    def init(self, *args):
        d = tempfile.mkdtemp(prefix="tern-gwinit-", dir="/tmp")
        self.addCleanup(shutil.rmtree, d, True)
        return d, harness.tern("init", d, "--daemon-directory", harness.LIBEXEC, "--hostname",
                               "gw.test", *args, check=False)

    def test_bad_options_refused(self):
        for args, why in [
                (("--gateway", "--next-hop", "10.0.0.5:25"), "at least one --domain"),
                (("--gateway", "--domain", "corp.test"), "--next-hop"),
                (("--domain", "corp.test"), "go with --gateway"),
                (("--gateway", "--next-hop", "mail.corp.test:25", "--domain", "corp.test"),
                 "--internal-net"),
                (("--gateway", "--next-hop", "10.0.0.5", "--domain", "corp.test"), "bad --next-hop"),
                (("--gateway", "--next-hop", "10.0.0.5:25", "--domain", "corp test"), "bad --domain"),
                (("--gateway", "--next-hop", "10.0.0.5:25", "--domain", "corp.test",
                  "--internal-net", "10.0.0.0/33"), "bad --internal-net"),
                (("--gateway", "--next-hop", "10.0.0.5:25", "--domain", "corp.test",
                  "--ldap-uri", "ldap://10.0.0.6"), "go together")]:
            d, r = self.init(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn(why, r.stderr, args)
            self.assertFalse(os.path.exists(os.path.join(d, "main.cf")), args)

    def test_ldap_recipients(self):
        d, r = self.init("--gateway", "--next-hop", "mail.corp.test:2525", "--domain", "corp.test",
                         "--internal-net", "10.1.0.0/16", "--ldap-uri", "ldap://10.1.0.6",
                         "--ldap-base", "dc=corp,dc=test", "--port", str(harness.free_port()))
        self.assertEqual(r.returncode, 0, r.stderr)
        check = harness.tern("-c", d, "check", check=False)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        conf = lambda name: harness.tern("-c", d, "conf", "-h", name).stdout.strip()
        self.assertEqual(conf("relay_recipient_maps"), "ldap:%s/ldap-recipients.cf" % d)
        self.assertNotIn("reject_unverified_recipient", conf("smtpd_recipient_restrictions"))
        self.assertIn("10.1.0.0/16", conf("mynetworks").split())
        with open(os.path.join(d, "ldap-recipients.cf")) as f:
            text = f.read()
        self.assertIn("server_host = ldap://10.1.0.6\n", text)
        self.assertIn("search_base = dc=corp,dc=test\n", text)
        with open(os.path.join(d, "transport")) as f:
            self.assertRegex(f.read(), r"\ncorp\.test +relay:\[mail\.corp\.test\]:2525\n")
        with open(os.path.join(d, "master.cf")) as f:
            master = f.read()
        self.assertRegex(master, r"\nsmtp +inet .* postscreen\nsmtpd +pass .* smtpd\n")


if __name__ == "__main__":
    unittest.main()
