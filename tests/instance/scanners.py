"""scanners.py: shared helpers of the instance tests that run real content
scanners (amavisd-new in test_content_filter.py, the milters in
test_gateway_milters.py): the EICAR and GTUBE test strings, a daemon started
in the foreground and ended by PID, a bounded start wait that skips with the
daemon's log, and ClamAV's clamd on a one-signature database built with
sigtool (no freshclam, no download), clamav-milter in front of it, and
rspamd's proxy worker in milter mode on a configuration of the test's
(test_gateway_milters.py, test_gateway.py)."""
import os
import pwd
import socket
import signal
import subprocess
import time
import unittest

CLAMD = "/usr/sbin/clamd"
SIGTOOL = "/usr/bin/sigtool"
CLAMDSCAN = "/usr/bin/clamdscan"
CLAMD_START_LIMIT = 60
CLAMAV_MILTER = "/usr/sbin/clamav-milter"
RSPAMD = "/usr/bin/rspamd"
MILTER_START_LIMIT = 60

# The EICAR test file (a harmless string every virus scanner detects) and
# SpamAssassin's GTUBE, built from pieces so that this file is neither.
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*" + "GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

CLAMD_CONF = """LocalSocket {dir}/clamd.sock
LocalSocketMode 666
FixStaleSocket true
Foreground true
DatabaseDirectory {dir}/db
PidFile {dir}/clamd.pid
LogFile {dir}/clamd.log
LogTime true
User {user}
"""


class Daemon:
    """A daemon the test starts in the foreground and ends by PID."""

    def __init__(self, argv, log, **kw):
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True, **kw)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            # a daemon's children are in its process group: end the group
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def wait_for(what, ready, daemon, limit, logs):
    """Wait (at most limit seconds) until ready() while daemon runs; when
    it cannot start here, the tests are skipped with its log as the reason."""
    deadline = time.time() + limit
    while time.time() < deadline:
        if ready():
            return
        if not daemon.alive():
            raise unittest.SkipTest("%s exited at start (status %s) in this environment:\n%s"
                                    % (what, daemon.proc.returncode,
                                       "".join(tail(p) for p in logs)))
        time.sleep(0.2)
    raise unittest.SkipTest("%s did not start within %d s:\n%s"
                            % (what, limit, "".join(tail(p) for p in logs)))


def clamd_unavailable():
    """Why clamd with a sigtool-built database cannot run here, or None."""
    for path, pkg in ((CLAMD, "clamav-daemon"), (SIGTOOL, "clamav")):
        if not os.access(path, os.X_OK):
            return "%s is missing: install %s (tools/install-deps)" % (path, pkg)
    return None


def start_clamd(clam_dir, user, daemons, out_dir):
    """clamd in clam_dir (made here, owned by user, the account clamd drops
    to) with a database of one signature, the EICAR string, made by
    sigtool; appended to daemons once started. Returns (socket, config)."""
    os.makedirs(os.path.join(clam_dir, "db"))
    sample = os.path.join(clam_dir, "eicar.sample")
    with open(sample, "wb") as f:
        f.write(EICAR)
    hexsig = subprocess.run([SIGTOOL, "--hex-dump"], input=EICAR, capture_output=True,
                            check=True).stdout.decode().strip()
    with open(os.path.join(clam_dir, "db", "tern-test.ndb"), "w") as f:
        f.write("Tern.Test.EICAR:0:*:%s\n" % hexsig)
    conf = os.path.join(clam_dir, "clamd.conf")
    with open(conf, "w") as f:
        f.write(CLAMD_CONF.format(dir=clam_dir, user=user))
    account = pwd.getpwnam(user)
    os.chown(clam_dir, account.pw_uid, account.pw_gid)   # socket, pid and log files
    sock = os.path.join(clam_dir, "clamd.sock")
    clamd = Daemon([CLAMD, "--config-file=" + conf], os.path.join(out_dir, "clamd.out"))
    daemons.append(clamd)
    wait_for("clamd", lambda: os.path.exists(sock), clamd, CLAMD_START_LIMIT,
             [clamd.log, os.path.join(clam_dir, "clamd.log")])
    if os.path.exists(CLAMDSCAN):
        r = subprocess.run([CLAMDSCAN, "--no-summary", "--config-file=" + conf, sample],
                           capture_output=True, text=True)
        assert "Tern.Test.EICAR" in r.stdout, r.stdout + r.stderr
    return sock, conf


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


CLAMAV_MILTER_CONF = """MilterSocket inet:{port}@127.0.0.1
User clamav
Foreground yes
PidFile {dir}/clamav-milter.pid
TemporaryDirectory {dir}
ClamdSocket unix:{clamd}
LogFile {dir}/clamav-milter.log
LogTime yes
LogInfected Full
LogClean Full
OnClean Accept
OnInfected Reject
OnFail Defer
AddHeader Replace
RejectMsg Virus found: %v
MaxFileSize 25M
"""


def start_clamav_milter(tmp, clamd_sock, daemons, logs):
    """clamav-milter (OnInfected Reject) on a free loopback port in front of
    the clamd at clamd_sock, its files in tmp/clamav-milter; appended to
    daemons once started, its logs to logs. Returns (port, daemon)."""
    import harness
    mdir = os.path.join(tmp, "clamav-milter")
    os.mkdir(mdir)
    acct = pwd.getpwnam("clamav")
    os.chown(mdir, acct.pw_uid, acct.pw_gid)
    port = harness.free_port()
    conf = os.path.join(tmp, "clamav-milter.conf")
    with open(conf, "w") as f:
        f.write(CLAMAV_MILTER_CONF.format(port=port, dir=mdir, clamd=clamd_sock))
    milter = Daemon([CLAMAV_MILTER, "--config-file=" + conf], os.path.join(tmp, "clamav-milter.out"))
    logs += [milter.log, os.path.join(mdir, "clamav-milter.log")]
    daemons.append(milter)
    wait_for("clamav-milter", lambda: port_open(port), milter, MILTER_START_LIMIT, logs)
    return port, milter


# rspamd.conf of the test: Debian's modules and rules (common.conf), its own
# directories, a scanner worker and a proxy worker in milter mode in front
# of it, each on a loopback port, every DNS lookup to the test's DNS server, and no
# Redis (the modules that need it stay off by themselves).
RSPAMD_CONF = """.include "$CONFDIR/common.conf"
options {{
    pidfile = "{dir}/rspamd.pid";
    .include "$CONFDIR/options.inc"
    .include(priority=10) "{dir}/options-tern.inc"
}}
logging {{
    type = "file";
    filename = "{dir}/rspamd.log";
    level = "info";
}}
worker "normal" {{
    bind_socket = "127.0.0.1:{scan_port}";
    .include "$CONFDIR/worker-normal.inc"
    count = 1;
}}
worker "rspamd_proxy" {{
    bind_socket = "127.0.0.1:{port}";
    milter = yes;
    timeout = 60s;
    count = 1;
    upstream "local" {{
        default = yes;
        hosts = "127.0.0.1:{scan_port}";
    }}
    spam_header = "X-Spam";
    reject_message = "Spam message rejected";
}}
"""

RSPAMD_OPTIONS = """dns {{
    nameserver = ["127.0.0.1:{dns}"];
    timeout = 1s;
    retransmits = 1;
}}
local_addrs = [];
"""

# local.d files that keep rspamd off the network: no map updates, no
# fuzzy servers, no phishing feeds
RSPAMD_OFFLINE = {
    "rspamd_update.conf": "enabled = false;\n",
    "fuzzy_check.conf": "enabled = false;\n",
    "phishing.conf": "openphish_enabled = false;\nphishtank_enabled = false;\n",
}


def start_rspamd(rdir, dns_port, local, daemons, logs, out_dir, files=None):
    """rspamd (Debian's modules and rules, no Redis) in rdir with the local.d
    files of local ({dir} is rdir) and files (path in rdir: text), every
    DNS lookup to the test's server on dns_port; its proxy worker in milter
    mode on a free loopback port, which is returned."""
    import harness
    acct = pwd.getpwnam("_rspamd")
    for sub in ("", "local.d", "override.d", "db"):
        os.makedirs(os.path.join(rdir, sub), exist_ok=True)
        os.chown(os.path.join(rdir, sub), acct.pw_uid, acct.pw_gid)
    port = harness.free_port()
    conf = os.path.join(rdir, "rspamd.conf")
    with open(conf, "w") as f:
        f.write(RSPAMD_CONF.format(dir=rdir, port=port, scan_port=harness.free_port()))
    with open(os.path.join(rdir, "options-tern.inc"), "w") as f:
        f.write(RSPAMD_OPTIONS.format(dns=dns_port))
    for name, text in local.items():
        with open(os.path.join(rdir, "local.d", name), "w") as f:
            f.write(text.format(dir=rdir))
    for name, text in (files or {}).items():
        with open(os.path.join(rdir, name), "w") as f:
            f.write(text)
    rspamd = Daemon([RSPAMD, "-f", "-c", conf, "-u", "_rspamd", "-g", "_rspamd",
                     "--var=LOCAL_CONFDIR=" + rdir, "--var=DBDIR=" + os.path.join(rdir, "db"),
                     "--var=RUNDIR=" + rdir, "--var=LOGDIR=" + rdir],
                    os.path.join(out_dir, "rspamd.out"))
    logs += [rspamd.log, os.path.join(rdir, "rspamd.log")]
    daemons.append(rspamd)
    wait_for("rspamd", lambda: port_open(port), rspamd, MILTER_START_LIMIT, logs)
    return port
