"""scanners.py: shared helpers of the instance tests that run real content
scanners (amavisd-new in test_content_filter.py, the milters in
test_gateway_milters.py): the EICAR and GTUBE test strings, a daemon started
in the foreground and ended by PID, a bounded start wait that skips with the
daemon's log, and ClamAV's clamd on a one-signature database built with
sigtool (no freshclam, no download)."""
import os
import pwd
import signal
import subprocess
import time
import unittest

CLAMD = "/usr/sbin/clamd"
SIGTOOL = "/usr/bin/sigtool"
CLAMDSCAN = "/usr/bin/clamdscan"
CLAMD_START_LIMIT = 60

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
