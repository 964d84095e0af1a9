"""test_scheduling.py: how qmgr decides where and when mail goes:
transport_maps (address, domain, parent domain, wildcard, the built-in
error: and retry: transports, a broken table), DSN notices as NOTIFY asks
(success, never, one delay warning), a destination that fails is suspended
and resumed, qmgr_message_recipient_limit bounds what is in memory, and
slow sites cannot take every delivery agent from the fast ones."""
import asyncio
import email
import email.policy
import os
import time
import unittest

import harness
import sink as sinkmod


def smtp_agent_built():
    return os.path.exists(os.path.join(harness.LIBEXEC, "smtp"))


def report_fields(data):
    """The per-recipient fields of a multipart/report notice, and the notice."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    status = [p for p in msg.get_payload() if p.get_content_type() == "message/delivery-status"][0]
    blocks = status.get_payload()
    return [dict((k.lower(), v) for k, v in b.items()) for b in blocks[1:]], msg


class Base(unittest.TestCase):
    main_cf = {}

    def setUp(self):
        self.sink = sinkmod.Sink()
        self.addCleanup(self.sink.stop)
        cf = {"relayhost": "[127.0.0.1]:%d" % self.sink.port,
              "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
              "queue_run_delay": "1s"}
        cf.update(self.main_cf)
        self.inst = harness.Instance("sched", main_cf=cf)
        self.addCleanup(self.inst.cleanup)

    def send(self, rcpts, body=b"Subject: test\r\n\r\nbody\r\n", sender="sender@example.org",
             rcpt_options=()):
        with self.inst.smtp() as s:
            s.ehlo("client.example")
            s.sendmail(sender, rcpts, body, rcpt_options=list(rcpt_options))

    def notices(self):
        return [m for m in self.sink.handler.messages if m[0] in ("", "<>")]


@unittest.skipUnless(smtp_agent_built(), "the smtp delivery agent is not built")
class TestTransportMaps(Base):
    def setUp(self):
        super().setUp()
        self.other = sinkmod.Sink()
        self.addCleanup(self.other.stop)
        table = os.path.join(self.inst.dir, "transport")
        with open(table, "w") as f:
            f.write("# routing exceptions\n")
            f.write("special.example  smtp:[127.0.0.1]:%d\n" % self.other.port)
            f.write(".sub.example     relay:[127.0.0.1]:%d\n" % self.other.port)
            f.write("boss@corp.example smtp:[127.0.0.1]:%d\n" % self.other.port)
            f.write("gone.example     error:5.1.2 this domain no longer receives mail\n")
            f.write("slow.example     retry:4.4.5 we are migrating, try later\n")
            f.write("closed.example   error\n")
        self.inst.set_main_cf({"transport_maps": "texthash:" + table, "recipient_delimiter": "+"})
        self.inst.start()

    def test_domain_address_and_parent_keys(self):
        self.send(["a@special.example", "b@x.sub.example", "boss+tag@corp.example",
                   "worker@corp.example", "c@sub.example"])
        got = self.other.wait(1, timeout=20)
        self.sink.wait(1, timeout=20)
        time.sleep(1)
        rcpts_other = sorted(r for m in self.other.handler.messages for r in m[1])
        rcpts_default = sorted(r for m in self.sink.handler.messages for r in m[1])
        self.assertEqual(rcpts_other, ["a@special.example", "b@x.sub.example", "boss+tag@corp.example"], got)
        # "sub.example" itself is not matched by ".sub.example"; worker@ has no entry
        self.assertEqual(rcpts_default, ["c@sub.example", "worker@corp.example"])
        self.inst.wait_log(r"to=<b@x\.sub\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d.*status=sent"
                           % self.other.port)
        self.inst.wait_empty()

    def test_error_transport_bounces_with_its_text(self):
        self.send(["someone@gone.example"])
        self.inst.wait_log(r"to=<someone@gone\.example>, relay=none.*dsn=5\.1\.2, status=bounced "
                           r"\(this domain no longer receives mail\)")
        notice = self.sink.wait(1)[0]
        fields, _ = report_fields(notice[2])
        self.assertEqual(fields[0]["action"], "failed")
        self.assertEqual(fields[0]["status"], "5.1.2")
        self.assertIn("no longer receives mail", fields[0]["diagnostic-code"])
        self.inst.wait_empty()

    def test_bare_error_transport_gives_a_generic_reason(self):
        # no text after "error": the reason is not the recipient's domain
        self.send(["someone@closed.example"])
        self.inst.wait_log(r"to=<someone@closed\.example>, relay=none.*dsn=5\.0\.0, status=bounced "
                           r"\(mail for this destination is not deliverable\)")
        self.inst.wait_empty()

    def test_retry_transport_defers(self):
        self.send(["someone@slow.example"])
        self.inst.wait_log(r"to=<someone@slow\.example>, relay=none.*dsn=4\.4\.5, status=deferred "
                           r"\(we are migrating, try later\)")
        self.inst.wait_queue("deferred", 1)
        self.assertEqual(self.sink.handler.messages, [])


class TestBrokenTransportTable(Base):
    main_cf = {"transport_maps": "hash:/nonexistent/transport"}

    def test_mail_waits_instead_of_going_the_default_way(self):
        self.inst.start()
        self.send(["someone@remote.example"])
        self.inst.wait_log(r"to=<someone@remote\.example>, relay=none.*dsn=4\.3\.0, status=deferred "
                           r"\(transport table lookup failure\)")
        self.inst.wait_log(r"warning: transport_maps: ")
        self.inst.wait_queue("deferred", 1)
        self.assertEqual(self.sink.handler.messages, [])


@unittest.skipUnless(smtp_agent_built(), "the smtp delivery agent is not built")
class TestNotify(Base):
    main_cf = {"delay_warning_time": "1s"}

    def setUp(self):
        super().setUp()
        self.inst.start()

    def test_success_notice_when_asked(self):
        self.send(["yes@remote.example", "quiet@remote.example"],
                  rcpt_options=["NOTIFY=SUCCESS"])
        msgs = self.sink.wait(2)
        time.sleep(1)
        notices = self.notices()
        self.assertEqual(len(notices), 1, [m[:2] for m in self.sink.handler.messages])
        self.assertEqual(notices[0][1], ["sender@example.org"])
        fields, msg = report_fields(notices[0][2])
        self.assertEqual(len(fields), 2)
        self.assertEqual({f["action"] for f in fields}, {"relayed"})   # the sink offers no DSN
        self.assertTrue(all(f["status"].startswith("2.") for f in fields))
        self.assertEqual(msg["Subject"], "Successful Mail Delivery Report")
        self.inst.wait_log(r"sender delivery status notification: \w+")
        self.inst.wait_empty()
        self.assertEqual(len(msgs), 2)

    def test_notify_never_sends_no_bounce(self):
        self.sink.handler.reject_rcpts.add("nobody@remote.example")
        self.send(["nobody@remote.example"], rcpt_options=["NOTIFY=NEVER"])
        self.inst.wait_log(r"to=<nobody@remote\.example>.*status=bounced")
        self.inst.wait_empty()
        time.sleep(1)
        self.assertEqual(self.notices(), [])
        self.assertNotIn("notification", self.inst.log_text())

    def test_one_delay_warning(self):
        self.sink.handler.tempfail_first = 4
        self.send(["later@remote.example"], rcpt_options=["NOTIFY=DELAY,FAILURE"])
        deadline = time.time() + 30
        while time.time() < deadline and not self.notices():
            time.sleep(0.1)
        notices = self.notices()
        self.assertEqual(len(notices), 1, "no delay notice")
        fields, msg = report_fields(notices[0][2])
        self.assertEqual(fields[0]["action"], "delayed")
        self.assertTrue(fields[0]["status"].startswith("4."))
        self.assertIn("will-retry-until", fields[0])
        self.assertIn("Delayed Mail", msg["Subject"])
        self.inst.wait_log(r"sender delay notification: \w+")
        # the message is delivered in the end, and warned about only once
        self.inst.wait_log(r"to=<later@remote\.example>.*status=sent", timeout=40)
        self.inst.wait_empty(30)
        self.assertEqual(len(self.notices()), 1)
        self.assertEqual(self.inst.log_text().count("sender delay notification"), 1)

    def test_delay_warning_is_recorded_in_the_queue_file(self):
        self.sink.handler.tempfail_first = 1000
        self.send(["stuck@remote.example"])
        self.inst.wait_log(r"sender delay notification: \w+", timeout=30)
        deadline = time.time() + 10
        parsed = None
        while time.time() < deadline:
            files = self.inst.queue_files("deferred")
            if files:
                try:
                    parsed = harness.read_queue_file(files[0])
                    if [r for r in parsed["recipients"] if r[0] == "stuck@remote.example"]:
                        break
                except (OSError, ValueError):
                    pass
            time.sleep(0.1)
        self.assertIsNotNone(parsed)
        self.assertGreater(parsed["warned"], 0)
        time.sleep(3)       # more retries, no second warning
        self.assertEqual(self.inst.log_text().count("sender delay notification"), 1)


@unittest.skipUnless(smtp_agent_built(), "the smtp delivery agent is not built")
class TestDestinationSuspended(unittest.TestCase):
    def test_failed_site_is_suspended_then_resumed(self):
        port = harness.free_port()          # nothing listens there yet
        inst = harness.Instance("susp", main_cf={
            "relayhost": "[127.0.0.1]:%d" % port,
            "minimal_backoff_time": "3s", "maximal_backoff_time": "3s", "queue_run_delay": "1s"})
        self.addCleanup(inst.cleanup)
        inst.start()
        with inst.smtp() as s:
            s.sendmail("sender@example.org", ["first@remote.example"], b"Subject: 1\r\n\r\nx\r\n")
        inst.wait_log(r"to=<first@remote\.example>.*status=deferred \(connect to")
        inst.wait_log(r"smtp: delivery to \[127\.0\.0\.1\]:%d suspended for 3s" % port)
        with inst.smtp() as s:
            for n in range(3):
                s.sendmail("sender@example.org", ["more%d@remote.example" % n], b"Subject: m\r\n\r\nx\r\n")
        for n in range(3):
            inst.wait_log(r"to=<more%d@remote\.example>, relay=none.*status=deferred "
                          r"\(delivery temporarily suspended: connect to" % n)
        inst.wait_log(r"delivery to \[127\.0\.0\.1\]:%d resumed" % port, timeout=10)
        sink = sinkmod.Sink(port=port)
        self.addCleanup(sink.stop)
        msgs = sink.wait(4, timeout=40)
        self.assertEqual(sorted(r for m in msgs for r in m[1]),
                         ["first@remote.example"] + ["more%d@remote.example" % n for n in range(3)])


@unittest.skipUnless(smtp_agent_built(), "the smtp delivery agent is not built")
class TestDeferredPass(unittest.TestCase):
    """A pass over deferred/ that meets the active queue's limit goes on
    when room is made, in the same pass: all 250 messages deferred for a
    site that was down go out after one flush, with room for 10 in active/
    and the next queue run 300 s away. (Before, the pass stopped at the
    limit and the rest waited for the next queue run.)"""

    def test_pass_goes_on_past_the_active_limit(self):
        port = harness.free_port()          # nothing listens there yet
        inst = harness.Instance("dpass", main_cf={
            "relayhost": "[127.0.0.1]:%d" % port, "qmgr_message_active_limit": "10",
            "queue_run_delay": "300s", "minimal_backoff_time": "300s",
            "maximal_backoff_time": "300s"})
        self.addCleanup(inst.cleanup)
        inst.start()
        count = 250
        with inst.smtp() as s:
            for n in range(count):
                s.sendmail("sender@example.org", ["r%d@remote.example" % n], b"Subject: d\r\n\r\nx\r\n")
        end = time.time() + 60
        while len(inst.queue_files("deferred")) < count and time.time() < end:
            time.sleep(0.2)
        self.assertEqual(len(inst.queue_files("deferred")), count)
        sink = sinkmod.Sink(port=port)
        self.addCleanup(sink.stop)
        inst.tern("flush")
        msgs = sink.wait(count, timeout=60)
        self.assertEqual(sorted(r for m in msgs for r in m[1]),
                         sorted("r%d@remote.example" % n for n in range(count)))
        self.assertEqual(inst.queue_files("deferred"), [])


@unittest.skipUnless(smtp_agent_built(), "the smtp delivery agent is not built")
class TestPerTransportRecipientLimit(Base):
    main_cf = {"smtp_destination_recipient_limit": "2"}

    def test_recipients_are_split_per_transport_limit(self):
        self.inst.start()
        rcpts = ["r%d@remote.example" % n for n in range(5)]
        self.send(rcpts)
        msgs = self.sink.wait(3)
        time.sleep(0.5)
        self.assertEqual(sorted(len(m[1]) for m in self.sink.handler.messages), [1, 2, 2])
        self.assertEqual(sorted(r for m in msgs for r in m[1]), rcpts)


class TestRecipientLimit(unittest.TestCase):
    def test_messages_wait_in_incoming_beyond_the_limit(self):
        inst = harness.Instance("rlim", main_cf={"local_transport": "stall",
                                                  "qmgr_message_recipient_limit": "2"})
        self.addCleanup(inst.cleanup)
        inst.stall_transport()
        inst.start()
        with inst.smtp() as s:
            for n in range(4):
                s.sendmail("sender@example.org", ["a%d@localhost" % n, "b%d@localhost" % n],
                           b"Subject: r\r\n\r\nx\r\n")
        inst.wait_queue("active", 1)
        time.sleep(1)
        self.assertEqual(len(inst.queue_files("active")), 1)
        self.assertEqual(len(inst.queue_files("incoming")), 3)



class DelayHandler(sinkmod.Handler):
    """A sink that answers DATA after delay seconds, and notes when."""

    def __init__(self, delay):
        super().__init__()
        self.delay = delay
        self.times = []

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        reply = await super().handle_DATA(server, session, envelope)
        self.times.append(time.time())
        return reply


@unittest.skipUnless(smtp_agent_built(), "the smtp delivery agent is not built")
class TestAgentsShared(Base):
    """smtp may run 4 processes. Two sites answer each message after 3 s
    and have 12 messages waiting; mail to a fast site queued after them
    must not wait for theirs: an agent that comes free goes to the waiting
    destination with the fewest deliveries running. (Before, qmgr opened a
    connection per job up to each site's window, and the fast site's jobs
    waited behind the slow ones in the agents' socket backlog, for 6 s and
    more.)"""

    def setUp(self):
        super().setUp()
        self.slow = [sinkmod.Sink(handler=DelayHandler(3)) for _ in range(2)]
        self.fast = sinkmod.Sink(handler=DelayHandler(0))
        for s in self.slow + [self.fast]:
            self.addCleanup(s.stop)
        table = os.path.join(self.inst.dir, "transport")
        with open(table, "w") as f:
            for i, s in enumerate(self.slow):
                f.write("slow%d.example smtp:[127.0.0.1]:%d\n" % (i, s.port))
            f.write("fast.example smtp:[127.0.0.1]:%d\n" % self.fast.port)
        self.inst.set_main_cf({"transport_maps": "texthash:" + table,
                               "smtp_connection_cache_on_demand": "no"})
        self.inst.set_master_cf(["smtp unix - - n - 4 smtp"])
        self.inst.start()

    def test_fast_site_is_not_starved(self):
        for n in range(6):
            for i in range(len(self.slow)):
                self.send(["u%d@slow%d.example" % (n, i)])
        time.sleep(0.5)              # the slow sites' jobs hold every agent now
        t0 = time.time()
        for n in range(6):
            self.send(["u%d@fast.example" % n])
        deadline = time.time() + 60
        while len(self.fast.handler.times) < 6 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(len(self.fast.handler.times), 6)
        fast_done = max(self.fast.handler.times) - t0
        # the first agent to come free (within 3 s) goes to the fast site
        # and stays with it while it has mail
        self.assertLess(fast_done, 5.0)
        while sum(len(s.handler.times) for s in self.slow) < 12 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(sum(len(s.handler.times) for s in self.slow), 12)
        self.assertGreater(max(max(s.handler.times) for s in self.slow) - t0, fast_done)


if __name__ == "__main__":
    unittest.main()
