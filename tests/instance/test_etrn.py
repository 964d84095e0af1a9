"""test_etrn.py: ETRN (RFC 1985) through a whole instance, as Postfix
answers it: smtpd checks the command and smtpd_etrn_restrictions, then asks
the flush service to make the deferred mail for the domain due now.

Mail for flushme.example and other.example goes to two remote servers that
are down when it is sent, so both messages are deferred, with backoff and
queue run times of an hour: once the servers are up, only ETRN can explain
a delivery. ETRN for flushme.example (in fast_flush_domains, which is
$relay_domains by default) gets 250 and its message arrives at once, while
the one for other.example stays deferred; ETRN for other.example gets 459.
The bad commands each get their reply; smtpd_etrn_restrictions (a second
smtpd with smtpd_helo_required = yes and check_etrn_access) refuses with
the restriction's reply; a flush service that is gone, that cannot use
fast_flush_domains or that never answers makes ETRN answer 458 and the
session go on."""
import os
import re
import socket
import time
import unittest

import harness
import sink as sinkmod

HOUR = "3600s"


class Client(harness.RawSession):
    def cmd(self, line):
        self.send(line + "\r\n")
        code, lines = self.read_reply()
        return code, [l[4:] for l in lines]


class EtrnTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port_flush = harness.free_port()     # flushme.example's server, down for now
        cls.port_other = harness.free_port()     # other.example's server, down for now
        cls.port_strict = harness.free_port()    # the smtpd with restrictions
        cls.inst = harness.Instance("etrn", main_cf={
            "relay_domains": "flushme.example",
            "mynetworks": "127.0.0.1/32",
            "minimal_backoff_time": HOUR, "maximal_backoff_time": HOUR,
            "queue_run_delay": HOUR,
        })
        d = cls.inst.dir
        transport, access = os.path.join(d, "transport"), os.path.join(d, "etrn_access")
        with open(transport, "w") as f:
            f.write("flushme.example smtp:[127.0.0.1]:%d\n" % cls.port_flush)
            f.write(".flushme.example smtp:[127.0.0.1]:%d\n" % cls.port_flush)
            f.write("other.example smtp:[127.0.0.1]:%d\n" % cls.port_other)
        with open(access, "w") as f:
            f.write("closed.flushme.example 554 5.7.1 no ETRN here\n")
            f.write("flushme.example OK\n")
        cls.inst.set_main_cf({"transport_maps": "texthash:" + transport})
        cls.inst.set_master_cf([
            "smtp unix - - n - - smtp",
            "127.0.0.1:%d inet n - n - - smtpd -o smtpd_helo_required=yes -o ipc_timeout=2s"
            " -o smtpd_etrn_restrictions=check_etrn_access,texthash:%s,permit_mynetworks,reject"
            % (cls.port_strict, access),
        ])
        cls.inst.start()
        cls.sinks = []

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()
        for s in cls.sinks:
            s.stop()

    def client(self, port=None, ehlo=True):
        c = Client(port or self.inst.port)
        self.addCleanup(c.close)
        if ehlo:
            self.assertEqual(c.cmd("EHLO client.example")[0], 250)
        return c

    def send(self, rcpt):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail("sender@example.org", [rcpt], "Subject: to %s\r\n\r\nhello\r\n" % rcpt)
        m = self.inst.wait_log(r"(\w+): to=<%s>, .*status=deferred" % re.escape(rcpt), timeout=20)
        qid = m.group(1)
        path = os.path.join(self.inst.queue_dir, "deferred", qid)
        deadline = time.time() + 10
        while time.time() < deadline and not os.path.exists(path):
            time.sleep(0.05)
        self.assertTrue(os.path.exists(path), "%s is not in deferred/" % qid)
        return qid

    def deferred(self):
        return set(os.listdir(os.path.join(self.inst.queue_dir, "deferred")))

    def test_01_etrn_delivers_deferred_mail_of_the_domain_at_once(self):
        q1 = self.send("user@flushme.example")
        q2 = self.send("user@other.example")
        # both servers come up; nothing is due for an hour
        flush_sink = sinkmod.Sink(port=self.port_flush)
        other_sink = sinkmod.Sink(port=self.port_other)
        self.sinks += [flush_sink, other_sink]
        time.sleep(2)
        self.assertEqual(flush_sink.handler.messages, [])
        c = self.client()
        t0 = time.time()
        self.assertEqual(c.cmd("ETRN flushme.example"), (250, ["2.0.0 Queuing started"]))
        msgs = flush_sink.wait(1, timeout=15)
        self.assertLess(time.time() - t0, 15)
        self.assertEqual(msgs[0][1], ["user@flushme.example"])
        self.inst.wait_log(r"%s: to=<user@flushme\.example>, .*status=sent" % q1, timeout=10)
        self.inst.wait_log(r"flush\[\d+\]: flush flushme\.example: 1 deferred message made due now")
        # the other domain's message stays deferred, and is not tried
        time.sleep(2)
        self.assertEqual(other_sink.handler.messages, [])
        self.assertIn(q2, self.deferred())
        self.assertNotIn(q1, self.deferred())
        # the session goes on
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))

    def test_02_domain_not_in_fast_flush_domains(self):
        c = self.client()
        self.assertEqual(c.cmd("ETRN other.example"),
                         (459, ["4.3.0 <other.example>: service unavailable"]))
        self.inst.wait_log(r"warning: reject: ETRN other\.example\.\.\. from \S+\[127\.0\.0\.1\]")
        self.assertEqual(c.cmd("ETRN [192.0.2.1]"), (459, ["4.3.0 <[192.0.2.1]>: service unavailable"]))
        # subdomains of a listed domain are eligible; '@' and '#' are stripped
        self.assertEqual(c.cmd("ETRN sub.flushme.example")[0], 250)
        self.assertEqual(c.cmd("ETRN @flushme.example")[0], 250)
        self.assertEqual(c.cmd("ETRN #FlushMe.Example")[0], 250)
        self.assertEqual(c.cmd("ETRN @other.example")[0], 459)

    def test_03_bad_commands(self):
        c = self.client()
        self.assertEqual(c.cmd("ETRN"), (500, ["5.5.4 Syntax: ETRN domain"]))
        self.assertEqual(c.cmd("ETRN   "), (500, ["5.5.4 Syntax: ETRN domain"]))
        self.assertEqual(c.cmd("ETRN one.example two.example"), (500, ["5.5.4 Syntax: ETRN domain"]))
        for bad in ("bad!domain", "@", "#", "a..b", "-x.example", "[not.an.address]",
                    "x" * 300 + ".example", ".".join(["a" * 60] * 5)):
            self.assertEqual(c.cmd("ETRN " + bad), (501, ["5.5.4 Error: invalid parameter syntax"]), bad)
        self.assertEqual(c.cmd("MAIL FROM:<sender@example.org>")[0], 250)
        self.assertEqual(c.cmd("ETRN flushme.example"),
                         (503, ["5.5.1 Error: MAIL transaction in progress"]))
        self.assertEqual(c.cmd("RSET")[0], 250)
        self.assertEqual(c.cmd("ETRN flushme.example")[0], 250)
        # a line beyond the line limit is refused as any command line is
        c.send("ETRN " + "x" * 5000 + ".example\r\n")
        code, _ = c.read_reply()
        self.assertIn(code, (500, 501))
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))

    def test_04_before_helo(self):
        # as Postfix: without smtpd_helo_required ETRN needs no HELO ...
        c = self.client(ehlo=False)
        self.assertEqual(c.cmd("ETRN flushme.example")[0], 250)
        # ... with it, it does
        c = self.client(self.port_strict, ehlo=False)
        self.assertEqual(c.cmd("ETRN flushme.example"), (503, ["5.5.1 Error: send HELO/EHLO first"]))
        self.assertEqual(c.cmd("HELO client.example")[0], 250)
        self.assertEqual(c.cmd("ETRN flushme.example")[0], 250)

    def test_05_ehlo_and_help(self):
        c = Client(self.inst.port)
        self.addCleanup(c.close)
        code, lines = c.cmd("EHLO client.example")
        self.assertIn("ETRN", lines)
        self.assertLess(lines.index("VRFY"), lines.index("ETRN"))
        code, lines = c.cmd("HELP")
        self.assertEqual(code, 214)
        self.assertIn("ETRN", lines[0].split())

    def test_06_etrn_restrictions(self):
        c = self.client(self.port_strict)
        # a table's reply, found by a parent domain lookup
        self.assertEqual(c.cmd("ETRN closed.flushme.example"),
                         (554, ["5.7.1 <closed.flushme.example>: Etrn command rejected: no ETRN here"]))
        self.inst.wait_log(r"NOQUEUE: reject: ETRN from \S+\[127\.0\.0\.1\]: 554 5\.7\.1 "
                           r"<closed\.flushme\.example>: Etrn command rejected: no ETRN here;"
                           r" proto=ESMTP helo=<client\.example>")
        self.assertEqual(c.cmd("ETRN a.flushme.example")[0], 250)      # OK from the table
        self.assertEqual(c.cmd("ETRN other.example")[0], 459)          # permit_mynetworks
        c2 = Client(self.port_strict, source="127.0.0.2")
        self.addCleanup(c2.close)
        self.assertEqual(c2.cmd("EHLO client.example")[0], 250)
        self.assertEqual(c2.cmd("ETRN other.example"),
                         (554, ["5.7.1 <other.example>: Etrn command rejected: Access denied"]))
        self.assertEqual(c2.cmd("ETRN flushme.example")[0], 250)

    def test_07_flush_service_gone_or_failing(self):
        saved = self.without_flush_service()
        deadline = time.time() + 10
        c = self.client()
        while True:
            reply = c.cmd("ETRN flushme.example")
            if reply[0] != 250 or time.time() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual(reply, (458, ["4.3.0 Unable to queue messages"]))
        self.inst.wait_log(r"warning: unable to talk to fast flush service")
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
        # back, with a fast_flush_domains it cannot use
        self.inst.set_main_cf({"fast_flush_domains": "texthash:/nonexistent/etrn-domains"})
        self.restore(saved)
        self.assertEqual(c.cmd("ETRN flushme.example"), (458, ["4.3.0 Unable to queue messages"]))
        self.inst.wait_log(r"warning: ETRN flushme\.example\.\.\. from \S+: the flush service could not")
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
        # and fixed again
        self.inst.set_main_cf({"fast_flush_domains": "$relay_domains"})
        self.inst.reload()
        deadline = time.time() + 10
        while c.cmd("ETRN flushme.example")[0] != 250 and time.time() < deadline:
            time.sleep(0.2)
        self.assertEqual(c.cmd("ETRN flushme.example")[0], 250)

    def test_08_flush_service_that_never_answers(self):
        self.without_flush_service()
        path = os.path.join(self.inst.queue_dir, "private", "flush")
        deadline = time.time() + 10
        while os.path.lexists(path) and time.time() < deadline:
            time.sleep(0.1)
        # a socket that takes connections and never answers
        stall = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stall.bind(path)
        os.chmod(path, 0o666)
        stall.listen(16)
        self.addCleanup(os.unlink, path)
        self.addCleanup(stall.close)
        # the strict smtpd has ipc_timeout = 2s
        c = self.client(self.port_strict)
        t0 = time.time()
        self.assertEqual(c.cmd("ETRN flushme.example"), (458, ["4.3.0 Unable to queue messages"]))
        self.assertLess(time.time() - t0, 10)
        self.inst.wait_log(r"warning: unable to talk to fast flush service private/flush: timeout")
        self.assertEqual(c.cmd("NOOP"), (250, ["2.0.0 Ok"]))
        # a client that leaves while its ETRN waits, and one that pipelines
        gone = self.client(self.port_strict)
        gone.send("ETRN flushme.example\r\nQUIT\r\n")
        gone.close()
        p = self.client(self.port_strict)
        p.send("ETRN flushme.example\r\nNOOP\r\n")
        self.assertEqual(p.read_reply(timeout=10)[0], 458)
        self.assertEqual(p.read_reply(timeout=10)[0], 250)
        self.inst.wait_log(r"disconnect from \S+ ehlo=1 etrn=0/1 quit=1 commands=2/3", timeout=10)

    def without_flush_service(self):
        """master.cf without its flush line, reloaded; returns the old text
        (put back at the end of the test)."""
        master_cf = os.path.join(self.inst.dir, "master.cf")
        with open(master_cf) as f:
            saved = f.read()
        self.addCleanup(self.restore, saved)
        with open(master_cf, "w") as f:
            f.write("".join(l for l in saved.splitlines(True) if not l.startswith("flush ")))
        self.inst.reload()
        return saved

    def restore(self, saved):
        with open(os.path.join(self.inst.dir, "master.cf"), "w") as f:
            f.write(saved)
        self.inst.reload()
        time.sleep(1)


if __name__ == "__main__":
    unittest.main()
