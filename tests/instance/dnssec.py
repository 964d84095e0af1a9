"""dnssec.py: a DNSSEC-validating DNS set-up for whole-instance tests, made
and started by the test in a temporary directory, on loopback only.

Each zone the test gives is written as a zone file; zones marked signed get
an ECDSA P-256 key made with ldns-keygen and are signed with ldns-signzone
(a test may then spoil a signature on purpose: corrupt_rrsig). nsd serves
every zone (127.0.0.1, a free port) as the authority; unbound is the
validating recursive resolver (127.0.0.1, another free port) with a stub
zone per test zone and the signed zones' keys as its trust anchors, so
that answers from signed zones come with the AD bit, answers from unsigned
zones without it, and answers that fail validation as SERVFAIL. Both run in
the foreground as children of the test and are stopped by PID.

    dns = dnssec.Setup(tmpdir, {"sec.test": (True, records), ...})
    ... smtp_dns_servers = 127.0.0.1:<dns.port> ...
    dns.stop()

records are zone-file lines relative to the zone ("mx  A  127.0.0.21").
"""
import base64
import glob
import os
import signal
import socket
import struct
import subprocess
import time

import harness

NSD = "/usr/sbin/nsd"
UNBOUND = "/usr/sbin/unbound"
KEYGEN = "/usr/bin/ldns-keygen"
SIGNZONE = "/usr/bin/ldns-signzone"


def available():
    """Why the set-up cannot run here, or None."""
    for path in (NSD, UNBOUND, KEYGEN, SIGNZONE):
        if not os.access(path, os.X_OK):
            return "%s is not installed (tools/install-deps)" % path
    return None


def _run(args, cwd):
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s%s" % (args[0], r.stdout, r.stderr))
    return r.stdout


class Setup:
    def __init__(self, workdir, zones, corrupt=()):
        """zones: {name: (signed, [record lines])}; corrupt: (zone, owner,
        type) whose signature is spoiled before the servers start."""
        self.dir = os.path.join(workdir, "dns")
        os.makedirs(self.dir)
        self.zones = zones
        self.served = {}
        self.anchors = []
        self.procs = []
        try:
            for name, (signed, records) in zones.items():
                self._write_zone(name, signed, records)
            for zone, owner, rrtype in corrupt:
                self.corrupt_rrsig(zone, owner, rrtype)
            self.nsd_port = harness.free_port()
            self.port = harness.free_port()
            self._start_nsd()
            self._start_unbound()
        except Exception:
            self.stop()
            raise

    # ---- zones ----
    def zone_path(self, name):
        return os.path.join(self.dir, name + ".zone")

    def _write_zone(self, name, signed, records):
        text = ["$ORIGIN %s." % name, "$TTL 60",
                "@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60" % (name, name),
                "@ NS ns.%s." % name, "ns A 127.0.0.1"] + list(records)
        path = self.zone_path(name)
        with open(path, "w") as f:
            f.write("\n".join(text) + "\n")
        if not signed:
            self.served[name] = path
            return
        # One key with the SEP flag signs everything; it is also the trust anchor.
        base = _run([KEYGEN, "-a", "ECDSAP256SHA256", "-k", name], cwd=self.dir).strip()
        with open(os.path.join(self.dir, base + ".key")) as f:
            self.anchors.append(f.read().strip())
        now = time.time()
        inception = time.strftime("%Y%m%d%H%M%S", time.gmtime(now - 86400))
        expiration = time.strftime("%Y%m%d%H%M%S", time.gmtime(now + 7 * 86400))
        _run([SIGNZONE, "-i", inception, "-e", expiration, "-o", name, "-f", path + ".signed",
              path, base], cwd=self.dir)
        self.served[name] = path + ".signed"

    def corrupt_rrsig(self, zone, owner, rrtype):
        """Spoil the signature over owner's rrtype records in a signed zone
        file (before nsd reads it)."""
        path = self.served[zone]
        with open(path) as f:
            lines = f.read().splitlines()
        done = False
        for i, line in enumerate(lines):
            f = line.split()
            if (len(f) > 5 and f[0].rstrip(".").lower() == owner.lower() and f[3] == "RRSIG"
                    and f[4] == rrtype):
                sig = bytearray(base64.b64decode("".join(f[12:])))
                sig[10] ^= 0xff
                lines[i] = " ".join(f[:12] + [base64.b64encode(bytes(sig)).decode()])
                done = True
        if not done:
            raise AssertionError("no RRSIG %s for %s in %s" % (rrtype, owner, path))
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    # ---- servers ----
    def _start_nsd(self):
        conf = os.path.join(self.dir, "nsd.conf")
        with open(conf, "w") as f:
            f.write('server:\n  ip-address: 127.0.0.1@%d\n  port: %d\n  do-ip6: no\n'
                    '  username: ""\n  chroot: ""\n  zonesdir: "%s"\n  database: ""\n'
                    '  pidfile: "%s/nsd.pid"\n  logfile: "%s/nsd.log"\n'
                    '  xfrdfile: "%s/xfrd.state"\n  xfrdir: "%s"\n  zonelistfile: "%s/zone.list"\n'
                    '  server-count: 1\n  verbosity: 1\n  hide-version: yes\n'
                    'remote-control:\n  control-enable: no\n'
                    % ((self.nsd_port, self.nsd_port, self.dir) + (self.dir,) * 5))
            for name, path in self.served.items():
                f.write('zone:\n  name: "%s"\n  zonefile: "%s"\n' % (name, path))
        self._spawn([NSD, "-d", "-c", conf], "nsd", self.nsd_port)

    def _start_unbound(self):
        anchors = os.path.join(self.dir, "anchors")
        with open(anchors, "w") as f:
            f.write("\n".join(self.anchors) + "\n")
        conf = os.path.join(self.dir, "unbound.conf")
        with open(conf, "w") as f:
            f.write('server:\n  interface: 127.0.0.1\n  port: %d\n  do-ip6: no\n'
                    '  username: ""\n  chroot: ""\n  directory: "%s"\n  pidfile: ""\n'
                    '  logfile: "%s/unbound.log"\n  use-syslog: no\n  do-daemonize: no\n'
                    '  verbosity: 1\n  val-log-level: 2\n  num-threads: 1\n'
                    '  access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n'
                    '  module-config: "validator iterator"\n  trust-anchor-file: "%s"\n'
                    '  qname-minimisation: no\n  aggressive-nsec: no\n  prefetch: no\n'
                    '  harden-referral-path: no\n  target-fetch-policy: "0 0 0 0 0"\n'
                    '  local-zone: "test." nodefault\n'
                    'remote-control:\n  control-enable: no\n'
                    % (self.port, self.dir, self.dir, anchors))
            for name in self.served:
                f.write('stub-zone:\n  name: "%s"\n  stub-addr: 127.0.0.1@%d\n'
                        % (name, self.nsd_port))
        self._spawn([UNBOUND, "-d", "-c", conf], "unbound", self.port)

    def _spawn(self, args, what, port):
        log = open(os.path.join(self.dir, what + ".out"), "w")
        proc = subprocess.Popen(args, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        self.procs.append(proc)
        deadline = time.time() + 15
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("%s exited: %s" % (what, self.log(what)))
            if _answers(port):
                return
            time.sleep(0.1)
        raise RuntimeError("%s does not answer on port %d: %s" % (what, port, self.log(what)))

    def log(self, what):
        text = ""
        for path in glob.glob(os.path.join(self.dir, what + "*")):
            if path.endswith((".out", ".log")):
                with open(path, errors="replace") as f:
                    text += f.read()[-4000:]
        return text

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self.procs = []


def _answers(port):
    """Whether a DNS server on 127.0.0.1:port answers a query (for ".", NS)."""
    query = struct.pack(">HHHHHH", 0x5445, 0x0100, 1, 0, 0, 0) + b"\x00" + struct.pack(">HH", 2, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        try:
            s.sendto(query, ("127.0.0.1", port))
            data = s.recv(4096)
        except OSError:
            return False
    return len(data) >= 12 and data[:2] == b"\x54\x45"


def query(port, name, rrtype, timeout=5):
    """(rcode, ad, answer types) of a query with the AD bit to 127.0.0.1:port."""
    from dnslib import DNSRecord, QTYPE
    q = DNSRecord.question(name, rrtype)
    q.header.ad = 1
    data = q.send("127.0.0.1", port, timeout=timeout)
    r = DNSRecord.parse(data)
    return r.header.rcode, bool(r.header.ad), [QTYPE[rr.rtype] for rr in r.rr]
