"""test_console_quarantine.py: whole-instance tests of the web console's
quarantine and allow/deny list pages, on an instance made by `tern init`
where header_checks quarantine (HOLD) mail to two users, alice and bob,
whose logins are checked against smtpd_sasl_password_maps (a login that is
not an address means login@$mydomain), and an administrator.

Checked where a user looks: in headless chromium (Debian's chromium with
chromium-driver and python3-selenium) alice sees only her messages (a
hostile subject and sender shown as text, no script in the page), releases
one and the real SMTP sink of the test gets its bytes, and adds a sender to
her deny list from the page, after which smtpd refuses that sender for her
at RCPT with 550 (and not for bob); with urllib, alice guessing bob's
message ID gets the same 404 as for a missing ID and bob's message stays
held, a release without the CSRF token is refused with 403 and changes
nothing, a wrong password is refused, bad list entries are refused with a
clear error, and the administrator sees both users' mail. The browser saves
screenshots of the quarantine page, the lists page and the administrator's
dashboard (after a workload, so that the graphs have data), under
doc/screenshots/ with TERN_SCREENSHOT_DIR=doc/screenshots."""
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sink as sinkmod  # noqa: E402
from test_console import (Client, console_port, save_screenshot, sha512_hash,  # noqa: E402
                          start_chromium)

ADMIN, ADMIN_PW = "admin", "admin secret 1"
ALICE, ALICE_PW = "alice", "alice secret 2"
BOB, BOB_PW = "bob", "bob secret 3"
DOMAIN = "corp.test"
HOSTILE_SENDER = '"q\'<b>x</b>"@evil.test'
HOSTILE_SUBJECT = "XSPAMX <script>alert('subject')</script>"
NO_SUCH = "No such message in the quarantine"


class QuarantineConsole(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("instances drop privileges to the tern account: run as root")
        cls.tmp = tempfile.mkdtemp(prefix="tern-console-q-", dir="/tmp")
        os.chmod(cls.tmp, 0o755)
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        passwd = os.path.join(cls.tmp, "passwd")
        with open(passwd, "w") as f:
            for user, pw in ((ADMIN, ADMIN_PW), (ALICE, ALICE_PW), (BOB, BOB_PW)):
                f.write("%s %s\n" % (user, sha512_hash(pw)))
        os.chmod(passwd, 0o600)
        cls.sink = sinkmod.Sink()
        cls.addClassCleanup(cls.sink.stop)
        cls.inst = harness.Instance(name="console-q", main_cf={
            "mydomain": DOMAIN,
            "mynetworks": "127.0.0.1/32",
            "smtpd_peername_lookup": "no",
            "relay_domains": DOMAIN,
            "transport_maps": "inline:{ %s=smtp:[127.0.0.1]:%d }" % (DOMAIN, cls.sink.port),
            "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination, "
                                            "check_recipient_lists",
            "smtpd_sasl_password_maps": "texthash:" + passwd,
            "console_admins": ADMIN,
            "console_login_failure_delay": "1s",
        })
        cls.addClassCleanup(cls.inst.cleanup)
        with open(os.path.join(cls.inst.dir, "header_checks"), "w") as f:
            f.write("/^Subject:.*XSPAMX/ HOLD spam-like subject\n")
        cls.inst.set_main_cf({"header_checks": "pcre:%s/header_checks" % cls.inst.dir})
        cls.port = console_port(cls.inst)
        cls.inst.start()
        cls.inst.wait_port(cls.port)

    # ---- helpers ----

    def quarantined(self, rcpt, subject, sender="mallory@evil.test"):
        """A message that header_checks quarantines: its queue ID."""
        before = set(self.inst.queue_ids("hold"))
        with self.inst.smtp() as s:
            s.sendmail(sender, [rcpt], "From: <mallory@evil.test>\r\nSubject: %s\r\n\r\nthe text of %s\r\n"
                       % (subject, subject))
        deadline = time.time() + 20
        while time.time() < deadline:
            new = set(self.inst.queue_ids("hold")) - before
            if new:
                return new.pop()
            time.sleep(0.1)
        self.fail("nothing quarantined; log:\n" + self.inst.log_tail())

    def held(self, recipient=None):
        out = self.inst.tern("quarantine", "list", "--json",
                             *(["--recipient", recipient] if recipient else [])).stdout
        return {json.loads(line)["queue_id"] for line in out.splitlines()}

    def login(self, user, password):
        c = Client(self.port)
        status, _, _ = c.login(user, password)
        self.assertEqual(status, 303, "login of " + user)
        return c

    def sink_subject(self, subject, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for m in list(self.sink.handler.messages):
                if ("Subject: %s\r\n" % subject).encode() in m[2]:
                    return m
            time.sleep(0.1)
        self.fail("the sink did not get %r; log:\n%s" % (subject, self.inst.log_tail()))

    def rcpt(self, sender, rcpt):
        """(code, text) of RCPT TO from a client outside mynetworks."""
        s = harness.RawSession(self.inst.port, source="127.0.0.2")
        try:
            s.send(b"EHLO client.test\r\n")
            s.read_reply()
            s.send(("MAIL FROM:<%s>\r\n" % sender).encode())
            self.assertEqual(s.read_reply()[0], 250)
            s.send(("RCPT TO:<%s>\r\n" % rcpt).encode())
            code, lines = s.read_reply()
            s.send(b"QUIT\r\n")
            return code, " ".join(lines)
        finally:
            s.close()


class TestQuarantineAccess(QuarantineConsole):
    def test_user_cannot_reach_another_users_message(self):
        a = self.quarantined("alice@%s" % DOMAIN, "XSPAMX for alice")
        b = self.quarantined("bob@%s" % DOMAIN, "XSPAMX for bob")
        alice, bob = self.login(ALICE, ALICE_PW), self.login(BOB, BOB_PW)
        status, _, body = alice.get("/quarantine")
        self.assertEqual(status, 200)
        self.assertIn(a, body)
        self.assertNotIn(b, body)
        self.assertIn("alice@corp.test", body)
        status, _, body = bob.get("/quarantine")
        self.assertIn(b, body)
        self.assertNotIn(a, body)
        # a missing ID and bob's ID get the same answer
        missing = harness.new_queue_id()
        s1, _, miss = alice.get("/quarantine/show?id=" + missing)
        s2, _, other = alice.get("/quarantine/show?id=" + b)
        self.assertEqual((s1, s2), (404, 404))
        self.assertIn(NO_SUCH, other)
        self.assertEqual(miss, other)
        self.assertNotIn("XSPAMX for bob", other)
        token = alice.csrf("/quarantine")
        for op in ("release", "delete"):
            s1, _, miss = alice.post("/quarantine/action", {"csrf": token, "op": op, "id": missing})
            s2, _, other = alice.post("/quarantine/action", {"csrf": token, "op": op, "id": b})
            self.assertEqual((s1, s2), (404, 404), op)
            self.assertEqual(miss, other, op)
        self.assertIn(b, self.held())
        # a release without the form token (or with a wrong one) changes nothing
        for fields in ({"op": "release", "id": a}, {"op": "release", "id": a, "csrf": "x" * 43},
                       {"op": "release", "id": a, "csrf": bob.csrf("/quarantine")}):
            status, _, body = alice.post("/quarantine/action", fields)
            self.assertEqual(status, 403, fields)
            self.assertIn("nothing was changed", body)
        self.assertTrue({a, b} <= self.held())
        # without a session at all
        self.assertEqual(Client(self.port).post("/quarantine/action", {"op": "release", "id": a})[0], 403)
        self.assertEqual(Client(self.port).get("/quarantine")[0], 303)
        # the administrator sees both, and may delete bob's
        admin = self.login(ADMIN, ADMIN_PW)
        status, _, body = admin.get("/quarantine")
        self.assertIn(a, body)
        self.assertIn(b, body)
        body = admin.get("/quarantine?recipient=BOB@corp.test")[2]
        self.assertIn(b, body)
        self.assertNotIn(a, body)
        status, _, body = admin.get("/quarantine/show?id=" + b)
        self.assertEqual(status, 200)
        self.assertIn("Subject: XSPAMX for bob", body)
        self.assertIn("the text of XSPAMX for bob", body)
        status, _, body = admin.get("/dashboard")
        self.assertRegex(body, r'id="quarantine-total">[1-9]')
        status, _, body = admin.post("/quarantine/action", {"csrf": admin.csrf("/quarantine"), "op": "delete",
                                                             "id": b})
        self.assertEqual(status, 200)
        self.assertIn("%s: deleted" % b, body)
        self.assertNotIn(b, self.held())
        self.inst.wait_log(r"console: admin \(127\.0\.0\.1\) asks to delete %s from the quarantine" % b)
        # alice deletes her own: gone, and not delivered
        status, _, body = alice.post("/quarantine/action", {"csrf": token, "op": "delete", "id": a})
        self.assertEqual(status, 200)
        self.assertNotIn(a, self.held())
        self.assertEqual(alice.get("/quarantine/show?id=" + a)[0], 404)
        self.assertFalse([m for m in self.sink.handler.messages
                          if b"XSPAMX for alice\r\n" in m[2] or b"XSPAMX for bob\r\n" in m[2]])
        self.assertEqual(harness.crash_reports(self.inst.log_text()), [])

    def test_release_for_one_of_two_recipients(self):
        """A message for alice and bob: alice's release delivers her copy
        alone; bob's part stays in the quarantine for him."""
        before = set(self.inst.queue_ids("hold"))
        with self.inst.smtp() as s:
            s.sendmail("mallory@evil.test", ["alice@%s" % DOMAIN, "bob@%s" % DOMAIN],
                       "From: <mallory@evil.test>\r\nSubject: XSPAMX for both\r\n\r\nshared\r\n")
        deadline = time.time() + 20
        while not set(self.inst.queue_ids("hold")) - before:
            self.assertLess(time.time(), deadline, "nothing quarantined")
            time.sleep(0.1)
        qid = (set(self.inst.queue_ids("hold")) - before).pop()
        alice = self.login(ALICE, ALICE_PW)
        body = alice.get("/quarantine")[2]
        self.assertRegex(body, r'id="q-%s".*and 1 other<' % qid)
        self.assertNotIn("bob@corp.test", body)
        status, _, body = alice.post("/quarantine/action", {"csrf": alice.csrf("/quarantine"), "op": "release",
                                                            "id": qid})
        self.assertEqual(status, 200)
        self.assertRegex(body, r"%s: released as \w+" % qid)
        mail_from, rcpts, data = self.sink_subject("XSPAMX for both")
        self.assertEqual(rcpts, ["alice@%s" % DOMAIN])
        self.assertNotIn(qid, self.held("alice@%s" % DOMAIN))
        self.assertIn(qid, self.held("bob@%s" % DOMAIN))
        bob = self.login(BOB, BOB_PW)
        self.assertIn(qid, bob.get("/quarantine")[2])
        self.assertEqual(alice.get("/quarantine/show?id=" + qid)[0], 404)
        self.assertEqual(bob.get("/quarantine/show?id=" + qid)[0], 200)

    def test_wrong_password_refused(self):
        c = Client(self.port)
        status, headers, body = c.login(ALICE, "not her password")
        self.assertIn("Wrong user name or password", body)
        self.assertIsNone(headers.get("Set-Cookie"))
        self.assertEqual(c.get("/quarantine")[0], 303)
        self.inst.wait_log(r'console: login of "alice" from 127\.0\.0\.1 failed: wrong user name or password')

    def test_list_entries_checked(self):
        alice = self.login(ALICE, ALICE_PW)
        token = alice.csrf("/lists")
        for pattern in ("no at sign", "a,b@evil.test", "<x@evil.test>", "x" * 300 + "@evil.test", ""):
            status, _, body = alice.post("/lists/action", {"csrf": token, "op": "add", "kind": "deny",
                                                           "pattern": pattern})
            self.assertEqual(status, 400, pattern)
            self.assertRegex(body, r'class="error" id="notice">Nothing was changed: the pattern (must|is too long)', pattern)
        status, _, body = alice.post("/lists/action", {"csrf": token, "op": "add", "kind": "maybe",
                                                       "pattern": "x@evil.test"})
        self.assertEqual(status, 400)
        self.assertIn("Choose the allow or the deny list", body)
        # a user's own lists only: the user field is not hers to choose
        status, _, body = alice.post("/lists/action", {"csrf": token, "op": "add", "kind": "allow",
                                                       "pattern": "@friends.test", "user": "bob@corp.test"})
        self.assertEqual(status, 200)
        self.assertEqual(self.inst.tern("lists", "show", "bob@corp.test").stdout.strip(),
                         "bob@corp.test has no allow or deny list entries")
        self.assertIn("allow @friends.test", self.inst.tern("lists", "show", "alice@corp.test").stdout)
        self.assertNotIn("bob@corp.test", alice.get("/lists?user=bob@corp.test")[2])
        # the administrator picks a user
        admin = self.login(ADMIN, ADMIN_PW)
        status, _, body = admin.get("/lists?user=Alice@Corp.Test")
        self.assertEqual(status, 200)
        self.assertIn("@friends.test", body)
        status, _, body = admin.post("/lists/action", {"csrf": admin.csrf("/lists"), "op": "remove",
                                                       "kind": "allow", "pattern": "@friends.test",
                                                       "user": "alice@corp.test"})
        self.assertEqual(status, 200)
        self.assertIn("allow @friends.test: removed", body)
        self.assertEqual(admin.get("/lists?user=not-an-address")[0], 400)

    def test_console_and_tern_lists_write_together(self):
        """The console (as mail_owner) and `tern lists` change one user's
        lists at once, each under the table's lock: nothing is lost."""
        import concurrent.futures
        admin = self.login(ADMIN, ADMIN_PW)
        token = admin.csrf("/lists")

        def by_console(i):
            status, _, body = admin.post("/lists/action", {"csrf": token, "op": "add", "kind": "deny",
                                                           "pattern": "web%d@spam.test" % i,
                                                           "user": "busy@corp.test"})
            self.assertEqual(status, 200, body[-300:])

        def by_tern(i):
            self.inst.tern("lists", "add", "busy@corp.test", "deny", "cli%d@spam.test" % i)
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            jobs = [ex.submit(by_console, i) for i in range(12)] + [ex.submit(by_tern, i) for i in range(12)]
            for j in jobs:
                j.result(timeout=60)
        shown = set(self.inst.tern("lists", "show", "busy@corp.test").stdout.split("\n")[:-1])
        want = {"deny web%d@spam.test" % i for i in range(12)} | {"deny cli%d@spam.test" % i for i in range(12)}
        self.assertEqual(shown, want)
        body = admin.get("/lists?user=busy@corp.test")[2]
        self.assertEqual(len(re.findall(r'<td class="pattern">', body)), 24)
        self.assertEqual(self.rcpt("web3@spam.test", "busy@corp.test")[0], 550)
        self.assertEqual(self.rcpt("cli3@spam.test", "busy@corp.test")[0], 550)


class TestQuarantineInBrowser(QuarantineConsole):
    """alice in Debian's chromium, headless, driven by selenium."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.driver, cls.skip_reason = start_chromium(cls.tmp, 1400)
        if cls.driver:
            cls.addClassCleanup(cls.driver.quit)

    def setUp(self):
        if not self.driver:
            self.skipTest(self.skip_reason)
        self.driver.delete_all_cookies()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def browser_login(self, user, password):
        from selenium.webdriver.common.by import By
        d = self.driver
        d.get(self.url("/login"))
        d.find_element(By.ID, "user").send_keys(user)
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.ID, "login").click()
        self.wait_until("logged in", lambda: not d.current_url.endswith("/login"))

    def wait_until(self, what, condition, timeout=30):
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(self.driver, timeout).until(lambda d: condition(), message=what)

    def notice(self, text):
        from selenium.webdriver.common.by import By

        def shown():
            found = self.driver.find_elements(By.ID, "notice")
            try:
                return found and text in found[0].text
            except Exception:       # noqa: BLE001 (the page was replaced meanwhile)
                return False
        self.wait_until("notice %r" % text, shown)
        return self.driver.find_element(By.ID, "notice").text

    def screenshot(self, name):
        self.assertTrue(save_screenshot(self.driver, name))

    def test_alice_releases_her_message_and_denies_a_sender(self):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import Select
        d = self.driver
        keep = self.quarantined("alice@%s" % DOMAIN, "XSPAMX weekly offer")
        hostile = self.quarantined("alice@%s" % DOMAIN, HOSTILE_SUBJECT, sender=HOSTILE_SENDER)
        release = self.quarantined("alice@%s" % DOMAIN, "XSPAMX release me")
        bobs = self.quarantined("bob@%s" % DOMAIN, "XSPAMX bob only")
        hers = self.held("alice@%s" % DOMAIN)     # with what other tests left her
        self.assertTrue({keep, hostile, release} <= hers)
        self.browser_login(ALICE, ALICE_PW)
        # the home page: her own summary
        self.assertEqual(d.find_element(By.ID, "quarantine-mine").text, str(len(hers)))
        d.find_element(By.LINK_TEXT, "Quarantine").click()
        self.wait_until("the quarantine page", lambda: d.find_elements(By.ID, "quarantine-count"))
        self.assertEqual(d.find_element(By.ID, "quarantine-count").text, "%d messages" % len(hers))
        rows = {r.get_attribute("id") for r in d.find_elements(By.CSS_SELECTOR, "#quarantine tr[id]")}
        self.assertEqual(rows, {"q-" + i for i in hers})
        self.assertNotIn(bobs, d.page_source)
        # hostile mail is shown as text: no script, no element from mail
        row = d.find_element(By.ID, "q-" + hostile)
        self.assertEqual(row.find_element(By.CLASS_NAME, "subject").text, HOSTILE_SUBJECT)
        self.assertEqual(row.find_element(By.CLASS_NAME, "sender").text, HOSTILE_SENDER)
        self.assertEqual(d.find_elements(By.TAG_NAME, "script"), [])
        self.assertEqual(row.find_elements(By.TAG_NAME, "b"), [])
        self.screenshot("console-quarantine.png")
        d.find_element(By.LINK_TEXT, hostile).click()
        self.wait_until("the message page", lambda: d.find_elements(By.ID, "header"))
        self.assertIn("Subject: " + HOSTILE_SUBJECT, d.find_element(By.ID, "header").text)
        self.assertIn("the text of " + HOSTILE_SUBJECT, d.find_element(By.ID, "body").text)
        self.assertEqual(d.find_element(By.ID, "reason").text, "header_checks: spam-like subject")
        self.assertEqual(d.find_elements(By.TAG_NAME, "script"), [])
        # release one: the sink gets it, for alice alone, as it came
        d.get(self.url("/quarantine"))
        d.find_element(By.ID, "release-" + release).click()
        self.assertIn("released", self.notice(release))
        mail_from, rcpts, data = self.sink_subject("XSPAMX release me")
        self.assertEqual(rcpts, ["alice@%s" % DOMAIN])
        self.assertEqual(mail_from, "mallory@evil.test")
        self.assertIn(b"\r\n\r\nthe text of XSPAMX release me\r\n", data)
        self.assertNotIn(release, self.held())
        self.assertTrue({keep, hostile, bobs} <= self.held())
        self.assertEqual(d.find_element(By.ID, "quarantine-count").text, "%d messages" % (len(hers) - 1))
        self.inst.wait_log(r"%s: released from quarantine by alice@corp\.test" % release)
        # a sender on her deny list, added from the page: refused at RCPT for her only
        self.assertEqual(self.rcpt("pest@nuisance.test", "alice@%s" % DOMAIN)[0], 250)
        d.find_element(By.LINK_TEXT, "Lists").click()
        self.wait_until("the lists page", lambda: d.find_elements(By.ID, "pattern"))
        d.find_element(By.ID, "pattern").send_keys("Pest@Nuisance.test")
        Select(d.find_element(By.ID, "kind")).select_by_value("deny")
        d.find_element(By.ID, "add").click()
        self.assertIn("deny pest@nuisance.test: added", self.notice("added"))
        self.assertIn("pest@nuisance.test", d.find_element(By.ID, "deny-list").text)
        code, text = self.rcpt("pest@nuisance.test", "alice@%s" % DOMAIN)
        self.assertEqual(code, 550, text)
        self.assertEqual(self.rcpt("pest@nuisance.test", "bob@%s" % DOMAIN)[0], 250)
        self.assertEqual(self.rcpt("other@nuisance.test", "alice@%s" % DOMAIN)[0], 250)
        # a bad entry: a clear error, the typed text kept to be corrected
        d.find_element(By.ID, "pattern").send_keys("not-an-address")
        d.find_element(By.ID, "add").click()
        self.assertIn("must be an address", self.notice("Nothing was changed"))
        self.assertEqual(d.find_element(By.ID, "pattern").get_attribute("value"), "not-an-address")
        self.screenshot("console-lists.png")
        d.find_element(By.ID, "remove-deny-pest@nuisance.test").click()
        self.notice("removed")
        self.assertEqual(self.rcpt("pest@nuisance.test", "alice@%s" % DOMAIN)[0], 250)
        d.find_element(By.ID, "logout").click()
        self.wait_until("the login page", lambda: d.current_url.endswith("/login"))
        self.assertEqual(harness.crash_reports(self.inst.log_text()), [])

    def test_admin_dashboard_after_workload(self):
        from selenium.webdriver.common.by import By
        d = self.driver
        self.quarantined("alice@%s" % DOMAIN, "XSPAMX for the dashboard")
        for i in range(3):
            self.inst.send_mail(["carol@%s" % DOMAIN], "dashboard %d" % i)
        for i in range(3):
            self.sink_subject("dashboard %d" % i)
        self.assertIn(self.rcpt("x@client.test", "someone@elsewhere.test")[0], (454, 554))   # relaying
        self.browser_login(ADMIN, ADMIN_PW)
        self.wait_until("the dashboard", lambda: d.current_url.endswith("/dashboard"))
        deadline = time.time() + 30
        while True:      # the collector gets the counts within seconds
            received, delivered = (int(d.find_element(By.CSS_SELECTOR, "#flow-0-%d svg" % i)
                                       .get_attribute("data-total")) for i in (0, 1))
            if (received >= 4 and delivered >= 3) or time.time() > deadline:
                break
            time.sleep(1)
            d.get(self.url("/dashboard"))
        self.assertGreaterEqual(received, 4)
        self.assertGreaterEqual(delivered, 3)
        self.assertGreaterEqual(int(d.find_element(By.ID, "quarantine-total").text), 1)
        d.set_window_size(1400, 2600)      # the graphs and the tables below them
        try:
            self.screenshot("console-dashboard-quarantine.png")
        finally:
            d.set_window_size(1400, 1400)
        d.get(self.url("/quarantine"))
        self.assertIn("Every quarantined message", d.find_element(By.ID, "quarantine-whose").text)


if __name__ == "__main__":
    unittest.main()
