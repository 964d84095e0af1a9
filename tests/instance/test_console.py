"""test_console.py: whole-instance tests of the web console, on an instance
made by `tern init` (which puts the console on a loopback port), with logins
checked against smtpd_sasl_password_maps (an administrator, and a user who
is not one).

Checked where a user looks: in a real headless browser (Debian's chromium
through chromium-driver and python3-selenium) the login, the dashboard's
graphs with the numbers of a scripted workload, and holding and releasing
a real message seen in `tern queue`; with urllib, a wrong password refused
(after the delay, logged), CSRF refusals (a POST without or with a wrong
token gets 403 and the message stays where it was), a non-administrator
kept out of every administration page, a hostile sender and subject shown
escaped, and bad HTTP requests (malformed 400, a version 505, too long a
head 431, too large a body 413, no length 411, a slow client 408) after
which the console still serves. The browser saves screenshots of the
dashboard and the queue (to doc/screenshots/ with
TERN_SCREENSHOT_DIR=doc/screenshots). The browser part is skipped,
with the reason, only when chromium cannot start."""
import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# Screenshots go to one folder under /tmp, so a test run never changes the
# checkout; TERN_SCREENSHOT_DIR=doc/screenshots refreshes the ones the
# documentation shows.
SCREENSHOTS = os.environ.get("TERN_SCREENSHOT_DIR") or os.path.join(tempfile.gettempdir(), "tern-screenshots")


def save_screenshot(driver, name):
    """Save the browser's page as SCREENSHOTS/NAME, whole or not at all
    (the plain and the ASan runs may save at the same time); False if the
    browser could not."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    tmp = os.path.join(SCREENSHOTS, ".%d.%s" % (os.getpid(), name))
    if not driver.save_screenshot(tmp):
        return False
    os.replace(tmp, os.path.join(SCREENSHOTS, name))
    return True
ADMIN, ADMIN_PW = "admin", "admin secret 1"
USER, USER_PW = "bob", "bob secret 2"
HOSTILE_SENDER = '"<script>alert(1)</script>"@evil.test'
HOSTILE_SUBJECT = "<script>alert('subject')</script>"


def start_chromium(tmp, height):
    """Debian's chromium, headless, under chromium-driver through selenium,
    with its profile in tmp: (driver, None), or (None, why) when it is not
    installed or cannot start (the tests then skip with that reason)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        return None, "python3-selenium is missing (tools/install-deps installs it): %s" % e
    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not chromium or not os.path.exists(chromedriver):
        return None, "chromium or chromium-driver is not installed (tools/install-deps installs them)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,%d" % height, "--user-data-dir=" + os.path.join(tmp, "chromium")):
        options.add_argument(arg)
    try:
        driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
        driver.set_page_load_timeout(60)
    except Exception as e:      # noqa: BLE001 (any failure to start is a reason to skip)
        return None, "chromium cannot start: %s" % str(e).splitlines()[0]
    return driver, None


def sha512_hash(password):
    return subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True,
                          text=True, check=True).stdout.strip()


def console_port(inst):
    with open(os.path.join(inst.dir, "master.cf")) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and fields[1] == "inet" and fields[7] == "console":
                return int(fields[0].rsplit(":", 1)[1])
    raise AssertionError("no console service in master.cf")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Client:
    """A urllib client with its own cookie jar; answers as (status, headers, body)."""

    def __init__(self, port):
        self.base = "http://127.0.0.1:%d" % port
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(self.jar))

    def request(self, method, path, fields=None, timeout=20):
        data = urllib.parse.urlencode(fields).encode() if fields is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        try:
            with self.opener.open(req, timeout=timeout) as r:
                return r.status, r.headers, r.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode("utf-8", "replace")

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, fields):
        return self.request("POST", path, fields)

    def login(self, user, password):
        return self.post("/login", {"user": user, "password": password})

    def csrf(self, page="/queue"):
        status, _, body = self.get(page)
        m = re.search(r'name="csrf" value="([^"]+)"', body)
        assert m, "no csrf field on %s (%d): %s" % (page, status, body[:500])
        return m.group(1)


def raw_http(port, data, timeout=15, pause=None):
    """The status of the answer to raw bytes (0: none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass
        if pause:
            time.sleep(pause)
        got = b""
        deadline = time.time() + timeout
        while time.time() < deadline and b"\r\n" not in got:
            try:
                chunk = s.recv(4096)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", got)
    return int(m.group(1)) if m else 0


class ConsoleInstance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tern-console-")
        passwd = os.path.join(cls.tmp, "passwd")
        with open(passwd, "w") as f:
            f.write("%s %s\n%s %s\n" % (ADMIN, sha512_hash(ADMIN_PW), USER, sha512_hash(USER_PW)))
        os.chmod(passwd, 0o600)
        cls.dead_port = harness.free_port()     # nothing listens: relayed mail is deferred
        cls.inst = harness.Instance(name="console", main_cf={
            "mynetworks": "192.0.2.0/24",       # not the test: relaying elsewhere is refused
            "smtpd_peername_lookup": "no",
            "smtpd_sasl_password_maps": "texthash:" + passwd,
            "console_admins": ADMIN,
            "console_login_failure_delay": "1s",
            "console_hostnames": "console.corp.test",
            "console_timeout": "3s",
            "relayhost": "[127.0.0.1]:%d" % cls.dead_port,
            "relay_domains": "remote.test",
        })
        cls.port = console_port(cls.inst)
        cls.inst.start()
        cls.inst.wait_port(cls.port)

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def admin(self):
        c = Client(self.port)
        status, headers, _ = c.login(ADMIN, ADMIN_PW)
        self.assertEqual(status, 303, "admin login")
        return c

    def deferred_message(self, subject="held", sender="sender@client.test"):
        """A message relayed to a port where nothing listens: deferred, its ID."""
        before = set(self.inst.queue_ids("deferred"))
        with self.inst.smtp() as c:
            c.sendmail(sender, ["someone@remote.test"],
                       "From: x@client.test\r\nSubject: %s\r\n\r\nbody\r\n" % subject)
        deadline = time.time() + 20
        while time.time() < deadline:
            new = set(self.inst.queue_ids("deferred")) - before
            if new:
                return new.pop()
            time.sleep(0.2)
        raise AssertionError("no deferred message; log:\n%s" % self.inst.log_tail())

    def queue_state(self, qid):
        out = self.inst.tern("queue", "--json").stdout
        for line in out.splitlines():
            if qid in line:
                m = re.search(r'"queue_name": "(\w+)"', line)
                return m.group(1) if m else line
        return None


class TestLogin(ConsoleInstance):
    def test_wrong_password_refused_after_delay_and_logged(self):
        c = Client(self.port)
        t0 = time.time()
        status, headers, body = c.login(ADMIN, "not the password")
        self.assertGreaterEqual(time.time() - t0, 0.9)
        self.assertEqual(status, 200)
        self.assertIn("Wrong user name or password", body)
        self.assertIsNone(headers.get("Set-Cookie"))
        self.assertEqual(c.get("/dashboard")[0], 303)    # still not logged in
        self.inst.wait_log(r'console: login of "admin" from 127\.0\.0\.1 failed: wrong user name or password')

    def test_failures_from_one_address_lock_out_only_that_address(self):
        import concurrent.futures
        import http.client

        def attempt(source, password="wrong"):
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30,
                                              source_address=(source, 0))
            try:
                conn.request("POST", "/login", body=urllib.parse.urlencode(
                    {"user": ADMIN, "password": password}),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
                r = conn.getresponse()
                return r.status, r.read().decode("utf-8", "replace")
            finally:
                conn.close()
        with concurrent.futures.ThreadPoolExecutor(max_workers=10) as ex:
            results = list(ex.map(attempt, ["127.0.0.5"] * 10))
        self.assertTrue(all("Wrong user name or password" in b for _, b in results))
        status, body = attempt("127.0.0.5", ADMIN_PW)
        self.assertIn("Too many failed logins", body)
        self.inst.wait_log(r'console: login of "admin" from 127\.0\.0\.5 failed: too many failures')
        # everyone else still gets in
        self.assertEqual(attempt("127.0.0.6", ADMIN_PW)[0], 303)
        self.assertEqual(Client(self.port).login(ADMIN, ADMIN_PW)[0], 303)

    def test_unknown_user_refused(self):
        status, headers, body = Client(self.port).login("nobody", "x")
        self.assertIn("Wrong user name or password", body)
        self.assertIsNone(headers.get("Set-Cookie"))

    def test_login_cookie_and_logout(self):
        c = Client(self.port)
        status, headers, _ = c.login(ADMIN, ADMIN_PW)
        self.assertEqual(status, 303)
        cookie = headers.get("Set-Cookie")
        self.assertRegex(cookie, r"^tern_console=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; SameSite=Strict; Max-Age=\d+$")
        self.inst.wait_log(r"console: login of admin from 127\.0\.0\.1 \(administrator\)")
        self.assertEqual(c.get("/dashboard")[0], 200)
        token = c.csrf("/dashboard")
        self.assertEqual(c.post("/logout", {"csrf": token})[0], 303)
        self.assertEqual(c.get("/dashboard")[0], 303)

    def test_forged_cookie_is_no_session(self):
        c = Client(self.port)
        req = urllib.request.Request(c.base + "/dashboard", headers={"Cookie": "tern_console=" + "A" * 43})
        try:
            status = c.opener.open(req, timeout=10).status
        except urllib.error.HTTPError as e:
            status = e.code
        self.assertEqual(status, 303)

    def test_non_admin_kept_out(self):
        c = Client(self.port)
        self.assertEqual(c.login(USER, USER_PW)[0], 303)
        self.inst.wait_log(r"console: login of bob from 127\.0\.0\.1$|console: login of bob from 127\.0\.0\.1\n")
        status, _, body = c.get("/")
        self.assertEqual(status, 200)
        self.assertIn("logged in as bob", body)
        self.assertNotIn('href="/queue"', body)
        for page in ("/dashboard", "/queue", "/log", "/queue/show?id=ABC"):
            self.assertEqual(c.get(page)[0], 403, page)
        qid = self.deferred_message("not for bob")
        token = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
        status, _, _ = c.post("/queue/action", {"csrf": token, "op": "delete", "id": qid})
        self.assertEqual(status, 403)
        self.assertEqual(self.queue_state(qid), "deferred")


class TestCsrf(ConsoleInstance):
    def test_post_without_or_with_wrong_token_changes_nothing(self):
        c = self.admin()
        qid = self.deferred_message("csrf")
        for fields in ({"op": "delete", "id": qid}, {"op": "delete", "id": qid, "csrf": "x" * 43},
                       {"op": "hold", "id": qid, "csrf": ""}):
            status, _, body = c.post("/queue/action", fields)
            self.assertEqual(status, 403, fields)
            self.assertIn("nothing was changed", body)
        self.assertEqual(self.queue_state(qid), "deferred")
        # another session's token is no better
        other = self.admin()
        status, _, _ = c.post("/queue/action", {"op": "hold", "id": qid, "csrf": other.csrf()})
        self.assertEqual(status, 403)
        self.assertEqual(self.queue_state(qid), "deferred")
        # without a session at all
        self.assertEqual(Client(self.port).post("/queue/action", {"op": "delete", "id": qid})[0], 403)
        # a form posted from another site (the browser names it in Origin)
        req = urllib.request.Request(c.base + "/queue/action", method="POST", headers={
            "Origin": "http://evil.test"}, data=urllib.parse.urlencode(
                {"op": "delete", "id": qid, "csrf": c.csrf()}).encode())
        with self.assertRaises(urllib.error.HTTPError) as e:
            c.opener.open(req, timeout=10)
        self.assertEqual(e.exception.code, 403)
        self.assertEqual(self.queue_state(qid), "deferred")
        # the right token works
        status, _, body = c.post("/queue/action", {"op": "hold", "id": qid, "csrf": c.csrf()})
        self.assertEqual(status, 200)
        self.assertEqual(self.queue_state(qid), "hold")
        c.post("/queue/action", {"op": "delete", "id": qid, "csrf": c.csrf()})
        self.assertIsNone(self.queue_state(qid))
        self.inst.wait_log(r"%s: removed \(deleted by the administrator\)" % qid)


class TestHostileMail(ConsoleInstance):
    def test_sender_and_subject_escaped(self):
        qid = self.deferred_message(HOSTILE_SUBJECT, sender=HOSTILE_SENDER)
        c = self.admin()
        for page in ("/queue", "/queue/show?id=" + qid, "/log?id=" + qid):
            status, _, body = c.get(page)
            self.assertEqual(status, 200, page)
            self.assertNotIn("<script>", body, page)
        body = c.get("/queue/show?id=" + qid)[2]
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", body)
        self.assertIn("&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt;", body)
        body = c.get("/log?id=" + qid)[2]
        self.assertIn("&lt;script&gt;", body)
        self.assertRegex(body, r'id="log-count">[1-9]')


class TestBadRequests(ConsoleInstance):
    def test_bad_requests_answered_and_console_keeps_serving(self):
        p = self.port
        self.assertEqual(raw_http(p, b"GARBAGE\r\n\r\n"), 400)
        self.assertEqual(raw_http(p, b"GET /login HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n"), 505)
        self.assertEqual(raw_http(p, b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n"), 431)
        self.assertEqual(raw_http(p, b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: y\r\n\r\n"), 400)
        self.assertEqual(raw_http(p, b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\n"
                                  + b"a" * 100000), 413)
        self.assertEqual(raw_http(p, b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), 411)
        self.assertEqual(raw_http(p, b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400)
        self.assertEqual(raw_http(p, b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400)
        self.assertEqual(raw_http(p, b"DELETE /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), 405)
        self.assertEqual(raw_http(p, b"GET /nothing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), 404)
        # another site's name (DNS rebinding), or none: refused; this host's
        # own names, with or without the port, are served
        for host in (b"evil.test", b"evil.test:%d" % p, b"127.0.0.1.evil.test", b"[::2]"):
            self.assertEqual(raw_http(p, b"GET /login HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"), 400, host)
        self.assertEqual(raw_http(p, b"GET /login HTTP/1.1\r\n\r\n"), 400)
        for host in (b"localhost", b"LOCALHOST:%d" % p, b"127.0.0.1:%d" % p, b"console.corp.test"):
            self.assertEqual(raw_http(p, b"GET /login HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"), 200, host)
        self.inst.wait_log(r"console: GET /login from 127\.0\.0\.1 for another host name; refused")
        # a slow client: part of a head, then nothing (console_timeout = 3s)
        t0 = time.time()
        self.assertEqual(raw_http(p, b"GET /login HTTP/1.1\r\nHo", timeout=10), 408)
        self.assertLess(time.time() - t0, 8)
        # a client that keeps trickling bytes after its answer (each under
        # the idle timeout) is still cut off soon: the stage has an end
        with socket.create_connection(("127.0.0.1", p), timeout=15) as s:
            s.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            got = b""
            while True:                 # the answer, then the console's half-close
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got[:100])
            t0, cut = time.time(), False
            while time.time() - t0 < 12 and not cut:
                try:
                    s.sendall(b"x")
                except OSError:
                    cut = True          # reset: the console closed its side
                time.sleep(0.3)
            self.assertTrue(cut, "the console kept a trickling connection for 12 s")
            self.assertLess(time.time() - t0, 8)
        # many idle connections do not stop others from being served
        idle = [socket.create_connection(("127.0.0.1", p)) for _ in range(10)]
        try:
            status, _, body = Client(p).get("/login")
            self.assertEqual(status, 200)
            self.assertIn('name="password"', body)
        finally:
            for s in idle:
                s.close()
        self.assertNotIn("console", " ".join(harness.crash_reports(self.inst.log_text())))


class TestFreshInstance(unittest.TestCase):
    """An instance as `tern init` makes it serves the console on loopback;
    with no password table yet the login page says what to do."""

    def test_fresh_instance_serves_login_page(self):
        inst = harness.Instance(name="console-fresh")
        self.addCleanup(inst.cleanup)
        port = console_port(inst)
        inst.start()
        inst.wait_port(port)
        status, headers, body = Client(port).get("/login")
        self.assertEqual(status, 200)
        self.assertIn("smtpd_sasl_password_maps is empty", body)
        self.assertIn("default-src 'none'", headers.get("Content-Security-Policy"))
        self.assertEqual(Client(port).get("/")[0], 303)
        status, headers, body = Client(port).login("root", "x")
        self.assertIn("No login is possible yet", body)
        self.assertIsNone(headers.get("Set-Cookie"))
        inst.wait_log(r'console: login of "root" from 127\.0\.0\.1 failed: smtpd_sasl_password_maps is empty')


class TestSessionBounds(unittest.TestCase):
    """Sessions end after console_session_lifetime, and console_session_limit
    bounds how many are kept (a new login ends the oldest)."""

    def test_lifetime_and_limit(self):
        tmp = tempfile.mkdtemp(prefix="tern-console-sess-")
        self.addCleanup(shutil.rmtree, tmp, True)
        passwd = os.path.join(tmp, "passwd")
        with open(passwd, "w") as f:
            f.write("%s %s\n" % (ADMIN, sha512_hash(ADMIN_PW)))
            f.write("mallory %s\n" % sha512_hash("mallory pw"))
        inst = harness.Instance(name="console-sess", main_cf={
            "smtpd_sasl_password_maps": "texthash:" + passwd, "console_admins": ADMIN,
            "console_session_lifetime": "3s", "console_session_limit": "2"})
        self.addCleanup(inst.cleanup)
        port = console_port(inst)
        inst.start()
        inst.wait_port(port)
        first, second, third = Client(port), Client(port), Client(port)
        for c in (first, second):
            self.assertEqual(c.login(ADMIN, ADMIN_PW)[0], 303)
            self.assertEqual(c.get("/dashboard")[0], 200)
        self.assertEqual(third.login(ADMIN, ADMIN_PW)[0], 303)
        self.assertEqual(first.get("/dashboard")[0], 303)      # the oldest made room
        self.assertEqual(second.get("/dashboard")[0], 200)
        self.assertEqual(third.get("/dashboard")[0], 200)
        inst.wait_log(r"console: session of admin ended to make room")
        # an ordinary user logging in again and again ends no
        # administrator's session: with every slot an administrator's, the
        # login is refused
        for _ in range(3):
            status, _, body = Client(port).login("mallory", "mallory pw")
            self.assertEqual(status, 200)
            self.assertIn("No session is free now", body)
        self.assertEqual(inst.log_text().count("ended to make room"), 1)
        token = [c.value for c in third.jar if c.name == "tern_console"][0]
        time.sleep(3.5)
        # the browser would drop the cookie (Max-Age); the console ends the session itself
        req = urllib.request.Request(third.base + "/dashboard", headers={"Cookie": "tern_console=" + token})
        try:
            status = third.opener.open(req, timeout=10).status
        except urllib.error.HTTPError as e:
            status = e.code
        self.assertEqual(status, 303)
        inst.wait_log(r"console: session of admin ended \(expired\)")


class TestTls(unittest.TestCase):
    """console_tls = yes: HTTPS with smtpd's certificate, a Secure cookie."""

    def test_https_login_with_secure_cookie(self):
        import ssl
        tmp = tempfile.mkdtemp(prefix="tern-console-tls-")
        self.addCleanup(shutil.rmtree, tmp, True)
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        passwd = os.path.join(tmp, "passwd")
        with open(passwd, "w") as f:
            f.write("%s %s\n" % (ADMIN, sha512_hash(ADMIN_PW)))
        inst = harness.Instance(name="console-tls", main_cf={
            "smtpd_sasl_password_maps": "texthash:" + passwd, "console_admins": ADMIN,
            "console_tls": "yes", "smtpd_tls_cert_file": cert, "smtpd_tls_key_file": key})
        self.addCleanup(inst.cleanup)
        port = console_port(inst)
        inst.start()
        inst.wait_port(port)
        ctx = ssl.create_default_context(cafile=cert)
        c = Client(port)
        c.base = "https://127.0.0.1:%d" % port
        c.opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPCookieProcessor(c.jar),
                                               urllib.request.HTTPSHandler(context=ctx))
        status, headers, _ = c.login(ADMIN, ADMIN_PW)
        self.assertEqual(status, 303)
        self.assertIn("; Secure", headers.get("Set-Cookie"))
        self.assertIn("Strict-Transport-Security", str(headers))
        status, _, body = c.get("/dashboard")
        self.assertEqual(status, 200)
        self.assertIn("Dashboard", body)
        # plain HTTP on the TLS port gets no page
        self.assertEqual(raw_http(port, b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", timeout=5), 0)
        self.assertEqual(c.get("/login")[0], 303)      # and the console still serves


# the Dovecot configuration test_sasl.py runs its auth service with
from test_sasl import DOVECOT, DOVECOT_CONF  # noqa: E402


class TestDovecotLogin(unittest.TestCase):
    """smtpd_sasl_type = dovecot: logins checked by a real Dovecot auth
    service (Debian's dovecot-core), started by the test."""

    def test_dovecot_login(self):
        if not os.access(DOVECOT, os.X_OK):
            self.skipTest("dovecot (dovecot-core) is not installed (tools/install-deps installs it)")
        inst = harness.Instance(name="console-dovecot", main_cf={
            "smtpd_sasl_type": "dovecot", "smtpd_sasl_path": "private/auth",
            "smtpd_sasl_password_maps": "", "console_admins": ADMIN,
            "console_login_failure_delay": "1s"})
        self.addCleanup(inst.cleanup)
        d = os.path.join(inst.dir, "dovecot")
        for sub in ("run", "state"):
            os.makedirs(os.path.join(d, sub))
        with open(os.path.join(d, "users"), "w") as f:
            f.write("%s:%s::::::\n" % (ADMIN, sha512_hash(ADMIN_PW)))
            f.write("carol:%s::::::\n" % sha512_hash("carol secret"))
        socket_path = os.path.join(inst.queue_dir, "private", "auth")
        conf = os.path.join(d, "dovecot.conf")
        with open(conf, "w") as f:
            # names are checked in lower case without the domain: the
            # session must be the user Dovecot names, not the name typed
            f.write(DOVECOT_CONF.format(d=d, socket=socket_path) + "auth_username_format = %Ln\n")
        port = console_port(inst)
        inst.start()
        inst.wait_port(port)
        dovecot = subprocess.Popen([DOVECOT, "-F", "-c", conf], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(harness.stop_process_tree, dovecot)
        deadline = time.time() + 15
        while not os.path.exists(socket_path):
            self.assertLess(time.time(), deadline, "dovecot did not start")
            self.assertIsNone(dovecot.poll(), "dovecot exited")
            time.sleep(0.05)
        c = Client(port)
        self.assertEqual(c.login(ADMIN, ADMIN_PW)[0], 303)
        self.assertEqual(c.get("/dashboard")[0], 200)
        # carol typing an administrator's name with her own password:
        # Dovecot checks "carol" and says so; she is carol, not the admin
        c2 = Client(port)
        self.assertEqual(c2.login("Admin@Other.Test", "carol secret")[0], 200)
        self.assertEqual(c2.login("Carol@Corp.Test", "carol secret")[0], 303)
        inst.wait_log(r"console: login of carol from 127\.0\.0\.1$")
        self.assertEqual(c2.get("/queue")[0], 403)
        status, headers, body = Client(port).login(ADMIN, "wrong")
        self.assertIn("Wrong user name or password", body)
        self.assertIsNone(headers.get("Set-Cookie"))
        inst.wait_log(r'console: login of "admin" from 127\.0\.0\.1 failed: wrong user name or password')
        # Dovecot gone: the login is not checked, and says so
        harness.stop_process_tree(dovecot)
        os.unlink(socket_path)
        status, headers, body = Client(port).login(ADMIN, ADMIN_PW)
        self.assertIn("cannot be checked now", body)
        self.assertIsNone(headers.get("Set-Cookie"))


class TestDashboardAndQueueInBrowser(ConsoleInstance):
    """The console in Debian's chromium, headless, driven by selenium."""

    RECEIVED = 4     # accepted by smtpd in this test: 3 delivered locally, 1 deferred

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.driver, cls.skip_reason = start_chromium(cls.tmp, 2200)

    @classmethod
    def tearDownClass(cls):
        if cls.driver:
            cls.driver.quit()
        super().tearDownClass()

    def setUp(self):
        if not self.driver:
            self.skipTest(self.skip_reason)

    def browser_login(self, user, password):
        from selenium.webdriver.common.by import By
        d = self.driver
        d.get("http://127.0.0.1:%d/login" % self.port)
        d.find_element(By.ID, "user").send_keys(user)
        d.find_element(By.ID, "password").send_keys(password)
        d.find_element(By.ID, "login").click()

    def wait_until(self, what, condition, timeout=30):
        from selenium.webdriver.support.ui import WebDriverWait
        WebDriverWait(self.driver, timeout).until(lambda d: condition(), message=what)

    def notice(self, text):
        """Wait for the queue page's notice to say text (after a click)."""
        from selenium.webdriver.common.by import By

        def shown():
            found = self.driver.find_elements(By.ID, "notice")
            try:
                return found and text in found[0].text
            except Exception:       # noqa: BLE001 (the page was replaced meanwhile)
                return False
        self.wait_until("notice %r" % text, shown)

    def screenshot(self, name):
        self.assertTrue(save_screenshot(self.driver, name))

    def graph_total(self, section):
        from selenium.webdriver.common.by import By
        svg = self.driver.find_element(By.CSS_SELECTOR, "#%s svg" % section)
        return int(svg.get_attribute("data-total"))

    def test_login_dashboard_numbers_and_hold_release(self):
        from selenium.webdriver.common.by import By
        d = self.driver
        # a wrong password first: the page says so
        self.browser_login(ADMIN, "wrong")
        self.wait_until("the login error", lambda: d.find_elements(By.ID, "login-error"))
        self.assertIn("Wrong user name or password", d.find_element(By.ID, "login-error").text)
        # the workload: 3 messages delivered locally, 1 deferred
        for i in range(3):
            self.inst.send_mail(["postmaster@localhost"], "local %d" % i)
        qid = self.deferred_message("to be held")
        code, text = self.inst.rcpt_reply("someone@elsewhere.test")     # relaying refused
        self.assertIn(code, (454, 554), text)
        deadline = time.time() + 20
        while len(re.findall(r"orig_to=<postmaster@localhost>.*status=sent", self.inst.log_text())) < 3:
            self.assertLess(time.time(), deadline, "3 local deliveries; log:\n" + self.inst.log_tail())
            time.sleep(0.2)
        self.browser_login(ADMIN, ADMIN_PW)
        self.wait_until("the dashboard after the login", lambda: d.current_url.endswith("/dashboard"))
        # the collector gets the counts within seconds
        deadline = time.time() + 30
        while True:
            d.get("http://127.0.0.1:%d/dashboard" % self.port)
            received, delivered = self.graph_total("flow-0-0"), self.graph_total("flow-0-1")
            if (received, delivered, self.graph_total("flow-0-4")) == (self.RECEIVED, 3, 1) \
                    or time.time() > deadline:
                break
            time.sleep(1)
        self.assertEqual(received, self.RECEIVED)
        self.assertEqual(delivered, 3)
        self.assertEqual(self.graph_total("flow-1-0"), self.RECEIVED)     # per hour
        self.assertEqual(self.graph_total("flow-2-0"), self.RECEIVED)     # per day
        self.assertEqual(self.graph_total("flow-0-2"), 1)                  # deferred
        self.assertEqual(self.graph_total("flow-0-4"), 1)                  # rejected
        self.assertRegex(d.find_element(By.ID, "rejections").text, r"relay / \S+ 1")
        self.assertRegex(d.find_element(By.ID, "queue-state").text, r"deferred 1")
        self.assertGreaterEqual(len(d.find_elements(By.CSS_SELECTOR, "svg.graph")), 15)
        self.assertIn("remote.test", d.find_element(By.ID, "queue-destinations").text)
        self.assertIn("sender@client.test", d.find_element(By.ID, "top-senders").text)
        self.assertRegex(d.find_element(By.ID, "top-domains").text, r"tern\.test 3")
        self.assertRegex(d.find_element(By.ID, "processes").text, r"(?s)master 1 .*qmgr 1 ")
        self.screenshot("console-dashboard.png")
        # hold the deferred message from the queue page: `tern queue` sees it held
        d.get("http://127.0.0.1:%d/queue" % self.port)
        d.find_element(By.ID, "hold-" + qid).click()
        self.notice("%s: hold done" % qid)
        self.assertEqual(self.queue_state(qid), "hold")
        mailq = subprocess.run([os.path.join(harness.BUILD, "tern-mailq", "tern-mailq"), "-c", self.inst.dir],
                               capture_output=True, text=True, timeout=30)
        self.assertRegex(mailq.stdout, r"%s!" % qid)
        self.screenshot("console-queue.png")
        d.find_element(By.ID, "release-" + qid).click()
        self.notice("%s: release done" % qid)
        self.assertEqual(self.queue_state(qid), "deferred")
        self.inst.wait_log(r"%s: placed on hold by the administrator" % qid)
        self.inst.wait_log(r"%s: released from hold" % qid)
        # search and show
        d.get("http://127.0.0.1:%d/queue?domain=remote.test" % self.port)
        self.assertIn("1 message", d.find_element(By.ID, "queue-count").text)
        d.get("http://127.0.0.1:%d/queue?id=%s" % (self.port, qid[:6]))
        self.assertIn("1 message", d.find_element(By.ID, "queue-count").text)
        d.get("http://127.0.0.1:%d/queue?id=NOSUCH" % self.port)
        self.assertIn("0 messages", d.find_element(By.ID, "queue-count").text)
        d.get("http://127.0.0.1:%d/queue?domain=remote.test" % self.port)
        d.find_element(By.LINK_TEXT, qid).click()
        self.wait_until("the message page", lambda: d.find_elements(By.ID, "state"))
        self.assertEqual(d.find_element(By.ID, "state").text, "deferred")
        self.assertIn("Subject: to be held", d.find_element(By.ID, "content").text)
        # the log page filtered by the queue ID
        d.get("http://127.0.0.1:%d/log?id=%s" % (self.port, qid))
        self.assertIn("released from hold", d.find_element(By.ID, "log").text)
        d.find_element(By.ID, "logout").click()
        self.wait_until("the login page after logout", lambda: d.current_url.endswith("/login"))


if __name__ == "__main__":
    unittest.main()
