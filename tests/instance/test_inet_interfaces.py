"""test_inet_interfaces.py: inet_interfaces, the addresses that inet
services without an address of their own listen on: a list of addresses
gets one socket each and nothing else (an event-mode smtpd and a
single-mode service alike, every address served), loopback-only, a change
taken at reload, and an address this host does not have refused with a
clear message at start."""
import os
import smtplib
import socket
import time
import unittest

import harness

MESSAGE = b"Subject: iface\r\n\r\nhello\r\n"


def refused(host, port):
    try:
        with socket.create_connection((host, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def wait_refused(host, port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if refused(host, port):
            return True
        time.sleep(0.1)
    return False


def hostless_instance(name, interfaces, extra=()):
    """An instance whose smtpd line names only its port, so that
    inet_interfaces decides where it listens; plus extra services."""
    inst = harness.Instance(name, main_cf={"inet_interfaces": interfaces})
    path = os.path.join(inst.dir, "master.cf")
    with open(path) as f:
        lines = [l for l in f.read().splitlines()
                 if not l.startswith("127.0.0.1:%d " % inst.port)]
    lines.append("%d inet n - n - - smtpd" % inst.port)
    lines += list(extra)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return inst


class TestAddressList(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.showq_port = harness.free_port()
        cls.inst = hostless_instance("ifaces", "127.0.0.3, [127.0.0.4]",
                                     ["%d inet n - n - - showq" % cls.showq_port])
        cls.inst.start(wait_port=False)
        for host in ("127.0.0.3", "127.0.0.4"):
            harness.wait_port(cls.inst.port, host=host)

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def test_smtpd_on_each_address_and_no_other(self):
        for host in ("127.0.0.3", "127.0.0.4"):
            with self.subTest(host=host):
                with smtplib.SMTP(host, self.inst.port, timeout=10) as s:
                    s.ehlo("client.example")
                    s.sendmail("a@example.org", ["someone@tern.test"], MESSAGE)
                self.inst.wait_log(r"connect from \S+\[127\.0\.0\.1\]|client=\S+\[127\.0\.0\.1\]")
        self.assertTrue(refused("127.0.0.1", self.inst.port))
        self.assertTrue(refused("127.0.0.5", self.inst.port))

    def test_single_mode_service_serves_every_address(self):
        # showq answers each connection with its protocol frame; one
        # process, several sockets: every one of them is served in turn
        for round_ in range(5):
            for host in ("127.0.0.4", "127.0.0.3"):
                with self.subTest(round=round_, host=host):
                    with socket.create_connection((host, self.showq_port), timeout=10) as c:
                        c.settimeout(10)
                        self.assertTrue(c.recv(64), "nothing from showq on %s" % host)
        self.assertTrue(refused("127.0.0.1", self.showq_port))


class TestChanges(unittest.TestCase):
    def test_reload_moves_and_loopback_only(self):
        inst = hostless_instance("ifreload", "127.0.0.3")
        self.addCleanup(inst.cleanup)
        inst.start(wait_port=False)
        harness.wait_port(inst.port, host="127.0.0.3")
        inst.set_main_cf({"inet_interfaces": "127.0.0.6"})
        inst.reload()
        harness.wait_port(inst.port, host="127.0.0.6")
        self.assertTrue(wait_refused("127.0.0.3", inst.port))
        inst.set_main_cf({"inet_interfaces": "loopback-only"})
        inst.reload()
        harness.wait_port(inst.port, host="127.0.0.1")
        self.assertTrue(wait_refused("127.0.0.6", inst.port))
        with smtplib.SMTP("127.0.0.1", inst.port, timeout=10) as s:
            self.assertEqual(s.ehlo("client.example")[0], 250)

    def test_address_not_on_this_host(self):
        inst = hostless_instance("ifbad", "192.0.2.77")
        self.addCleanup(inst.cleanup)
        r = inst.tern("start", check=False)
        text = r.stdout + r.stderr + inst.log_text()
        self.assertIn("192.0.2.77", text)
        self.assertIn("no such address on this host", text)
        self.assertTrue(refused("127.0.0.1", inst.port))

    def test_all_stays_the_default(self):
        inst = hostless_instance("ifall", "all")
        self.addCleanup(inst.cleanup)
        inst.start(wait_port=False)
        for host in ("127.0.0.1", "127.0.0.9"):
            harness.wait_port(inst.port, host=host)


if __name__ == "__main__":
    unittest.main()
