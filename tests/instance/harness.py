"""harness.py: whole-instance test support: a real Tern instance made with
`tern init` in a temporary directory, started with `tern start` exactly as
a user would, and helpers to look where a user looks: the SMTP replies, the
log file, the queue files and the processes.

The build tree comes from $TERN_BUILD_DIR (tern at tern/tern, daemons linked
under libexec/). Instances started as root drop privileges to the `tern`
account, which `tern init` creates when it is missing.

Typical use in a unittest.TestCase:

    inst = harness.Instance("mytest", main_cf={"smtpd_helo_required": "yes"})
    self.addCleanup(inst.cleanup)
    inst.start()
    with inst.smtp() as s: ...
    inst.wait_log(r"ID: from=<...>")
    msg = harness.read_queue_file(inst.queue_files("active")[0])

cleanup() fails the test when the instance's log shows a sanitizer report or
a daemon that died of a crash signal. TERN_KEEP_INSTANCES=1 in the
environment keeps the instance directories for a post-mortem.
"""
import atexit
import grp
import os
import pwd
import random
import re
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import tempfile
import time

BUILD = os.environ.get("TERN_BUILD_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))
TERN = os.path.join(BUILD, "tern", "tern")
LIBEXEC = os.path.join(BUILD, "libexec")

_instances = []

# The services Postfix lets run chrooted (all but local, virtual and pipe).
# TERN_TEST_CHROOT=1 in the environment makes every instance run them with
# chroot = y, so that any module's tests also run chrooted.
CHROOT_COMMANDS = {"smtpd", "cleanup", "qmgr", "smtp", "lmtp", "pickup", "showq", "anvil", "flush", "metrics",
                   "discard"}
CHROOT_ALL = os.environ.get("TERN_TEST_CHROOT") == "1"


def chroot_master_cf(path):
    """Set the chroot column to y for every service of the master.cf at
    path whose command is one of CHROOT_COMMANDS."""
    with open(path) as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        f = line.split()
        if (line.strip() and not line[0].isspace() and not line.startswith("#")
                and len(f) >= 8 and f[7] in CHROOT_COMMANDS):
            f[4] = "y"
            line = " ".join(f)
        out.append(line)
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


_ports_given = set()
# Ports are drawn below the kernel's ephemeral range (32768 and up by
# default), so that no bind to port 0 and no outgoing connection of another
# test can be given one between the draw and the bind. Test modules that
# run at once (run.py -j) claim each port with a file in the directory that
# run.py names in TERN_TEST_PORT_CLAIMS; two of them once drew the same port.
_PORT_RANGE = (10000, 32000)
_port_draw = random.Random(os.getpid() ^ int(time.time() * 1000))


def _claim_port(port):
    claims = os.environ.get("TERN_TEST_PORT_CLAIMS")
    if not claims:
        return True
    try:
        os.close(os.open(os.path.join(claims, str(port)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    return True


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that
    no test of this run has been handed before (the kernel may offer a
    port again as soon as it is closed, before whoever got it binds it:
    one instance's two services then got the same port)."""
    for _ in range(1000):
        port = _port_draw.randrange(*_PORT_RANGE)
        if port in _ports_given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _ports_given.add(port)
        if _claim_port(port):
            return port
    raise AssertionError("no fresh TCP port on 127.0.0.1 after 1000 tries")


def tern(*args, check=True, timeout=60):
    """Run the tern command; returns CompletedProcess with text output."""
    proc = subprocess.run([TERN] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError("tern %s failed (%d): %s%s" % (
            " ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


_build_conf = None


def build_config_dir():
    """A configuration directory whose main.cf only points daemon_directory
    at the build tree's daemons and table modules (map_pgsql.so and
    map_ldap.so), for `tern -c DIR ...` outside an instance."""
    global _build_conf
    if _build_conf is None:
        _build_conf = tempfile.mkdtemp(prefix="tern-buildconf-")
        atexit.register(shutil.rmtree, _build_conf, True)
        with open(os.path.join(_build_conf, "main.cf"), "w") as f:
            f.write("daemon_directory = %s\n" % os.path.join(BUILD, "libexec"))
        os.chmod(_build_conf, 0o755)
        os.chmod(os.path.join(_build_conf, "main.cf"), 0o644)
    return _build_conf


class Instance:
    """One self-contained instance. main_cf: dict (or list of "name = value"
    lines) appended to main.cf; master_cf_extra: lines appended to master.cf."""

    def __init__(self, name="t", main_cf=None, master_cf_extra=None, port=None, chroot=None,
                 init_args=()):
        """`tern init` into a new /tmp directory with smtpd on 127.0.0.1:port
        (a free port unless given); .dir, .port, .queue_dir, .log_path.
        chroot: run the services that may be chrooted with chroot = y
        (default: TERN_TEST_CHROOT=1 in the environment). init_args: more
        options of `tern init` (--gateway ...)."""
        self.chroot = CHROOT_ALL if chroot is None else chroot
        self.dir = tempfile.mkdtemp(prefix="tern-%s-" % name, dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port = port or free_port()
        try:
            tern("init", self.dir, "--port", str(self.port), "--daemon-directory", LIBEXEC,
                 "--hostname", "tern.test", "--force", "--metrics-port", str(free_port()),
                 "--console-port", str(free_port()), *init_args)
        except Exception:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.queue_dir = os.path.join(self.dir, "queue")
        self.log_path = os.path.join(self.dir, "log", "tern.log")
        # Tests write to made-up local users: accept every local address.
        # (By default smtpd refuses users that neither the passwd database
        # nor the aliases know; TestLocalRecipientMaps covers that.)
        self.set_main_cf(["local_recipient_maps ="])
        if self.chroot:
            chroot_master_cf(os.path.join(self.dir, "master.cf"))
        if main_cf:
            self.set_main_cf(main_cf)
        if master_cf_extra:
            if isinstance(master_cf_extra, str):
                master_cf_extra = master_cf_extra.splitlines()
            self.set_master_cf(master_cf_extra)
        self.started = False
        self._stalls = []
        _instances.append(self)

    def set_master_cf(self, lines):
        """Add master.cf services; a line for a service (name and type) that
        master.cf already has replaces that service's line."""
        path = os.path.join(self.dir, "master.cf")
        with open(path) as f:
            current = f.read().splitlines()
        keys = {tuple(l.split()[:2]) for l in lines if l.strip() and not l.startswith("#")}
        kept = [l for l in current
                if not (l.strip() and not l[0].isspace() and not l.startswith("#")
                        and tuple(l.split()[:2]) in keys)]
        with open(path, "w") as f:
            for line in kept + [l.rstrip("\n") for l in lines]:
                f.write(line + "\n")
        if self.chroot:
            chroot_master_cf(path)

    def set_main_cf(self, settings):
        """Append settings (dict or "name = value" lines) to main.cf; a later
        setting of a name wins, as in Postfix. Takes effect at start/reload."""
        if isinstance(settings, dict):
            settings = ["%s = %s" % kv for kv in settings.items()]
        with open(os.path.join(self.dir, "main.cf"), "a") as f:
            for line in settings:
                f.write(line.rstrip("\n") + "\n")

    def stall_transport(self, name="stall"):
        """A delivery agent at queue/private/NAME that accepts connections
        and never answers, so that qmgr's deliveries through it stay in
        progress and their messages stay in active/ (point a transport at
        it, e.g. main_cf={"local_transport": "stall"}). Call it before
        start(); it lives in the test process and so survives kill_all()."""
        private = os.path.join(self.queue_dir, "private")
        os.makedirs(private, exist_ok=True)
        path = os.path.join(private, name)
        if os.path.lexists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        os.chmod(path, 0o666)   # qmgr runs as mail_owner
        sock.listen(128)
        self._stalls.append(sock)
        return sock

    # ---- control ----
    def tern(self, *args, check=True):
        """Run `tern -c DIR ARGS...`; CompletedProcess (AssertionError when
        check and the exit status is not 0)."""
        return tern("-c", self.dir, *args, check=check)

    def start(self, wait_port=True):
        """`tern start`, then wait (10 s) until smtpd's port accepts."""
        self.tern("start")
        self.started = True
        if wait_port:
            self.wait_port()

    def wait_port(self, port=None, timeout=10):
        """Wait until 127.0.0.1:port (default: the instance's) accepts."""
        port = port or self.port
        try:
            wait_port(port, timeout)
        except AssertionError:
            raise AssertionError("port %d does not accept connections; log:\n%s"
                                 % (port, self.log_tail())) from None

    def stop(self):
        """`tern stop` (master ends its daemons); AssertionError if master
        is still there afterwards."""
        if self.master_pid():
            r = self.tern("stop", check=False)
            if self.master_pid():
                raise AssertionError("tern stop left master running: %s%s\nlog:\n%s" % (
                    r.stdout, r.stderr, self.log_tail()))
        self.started = False

    def reload(self):
        """`tern reload` (SIGHUP to master)."""
        self.tern("reload")

    def master_pid(self):
        """PID of this instance's live master, 0 when none runs. A stale
        master.pid left by a SIGKILL never names another process: the PID
        must be a master started with -c on this instance's directory."""
        try:
            with open(os.path.join(self.dir, "data", "master.pid")) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return 0
        if not _alive(pid) or _comm(pid) != "master":
            return 0
        args = proc_cmdline(pid)
        if self.dir not in args and os.path.realpath(self.dir) not in args:
            return 0
        return pid

    def processes(self):
        """[(pid, uid, name)] of master and every descendant (name is the
        process's comm: master, smtpd, cleanup, qmgr, ...)."""
        root = self.master_pid()
        if not root:
            return []
        children = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                ppid = _ppid(int(entry))
                if ppid is not None:
                    children.setdefault(ppid, []).append(int(entry))
        out, todo = [], [root]
        while todo:
            pid = todo.pop()
            uid = proc_uid(pid)
            if uid is not None and _alive(pid):
                out.append((pid, uid, _comm(pid)))
            todo.extend(children.get(pid, []))
        return out

    def wait_process(self, name, timeout=10):
        """PIDs of this instance's processes called name, waiting (bounded)
        until there is at least one; AssertionError otherwise."""
        deadline = time.time() + timeout
        while True:
            pids = [p for p, _, n in self.processes() if n == name]
            if pids:
                return pids
            if time.time() > deadline:
                raise AssertionError("no %s process after %ds; log:\n%s" % (
                    name, timeout, self.log_tail()))
            time.sleep(0.05)

    def kill_all(self, sig=signal.SIGKILL):
        """Send sig to master and all its descendants (those PIDs only, read
        once from /proc), wait up to 10 s for them to go; returns the list
        processes() gave."""
        procs = self.processes()
        for pid, _, _ in procs:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if sig in (signal.SIGKILL, signal.SIGTERM):
            deadline = time.time() + 10
            while time.time() < deadline and any(_alive(p) for p, _, _ in procs):
                time.sleep(0.05)
            self.started = False
        return procs

    def cleanup(self):
        """Stop the instance (tern stop, else SIGKILL to its processes) and
        remove its directory. Raises AssertionError afterwards when the log
        shows a sanitizer report or a daemon killed by a crash signal."""
        if self in _instances:
            _instances.remove(self)
        try:
            self.stop()
        except AssertionError:
            pass
        if self.master_pid():
            self.kill_all()
        for sock in self._stalls:
            sock.close()
        self._stalls = []
        problems = crash_reports(self.log_text())
        if problems:
            keep = os.path.join(BUILD, "failed-instance-logs")
            os.makedirs(keep, exist_ok=True)
            shutil.copy(self.log_path, os.path.join(keep, os.path.basename(self.dir) + ".log"))
        if not os.environ.get("TERN_KEEP_INSTANCES"):
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise AssertionError("instance %s: crash or sanitizer report in the log:\n%s"
                                 % (self.dir, "\n".join(problems[:20])))

    # ---- what a user sees ----
    def log_text(self):
        """The whole maillog_file (DIR/log/tern.log) as text."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, regex, timeout=10):
        """The first re.search match of regex in the log, waiting up to
        timeout seconds; AssertionError with the log's tail otherwise."""
        deadline = time.time() + timeout
        pattern = re.compile(regex)
        while True:
            m = pattern.search(self.log_text())
            if m:
                return m
            if time.time() > deadline:
                raise AssertionError("log has no match for %r; tail:\n%s" % (regex, self.log_tail()))
            time.sleep(0.05)

    def queue_files(self, sub="active"):
        """Sorted full paths of the committed queue files in queue/SUB (the
        base name of each is its queue ID; temporary .ID files excluded)."""
        d = os.path.join(self.queue_dir, sub)
        try:
            names = os.listdir(d)
        except OSError:
            return []
        return sorted(os.path.join(d, n) for n in names if not n.startswith("."))

    def queue_ids(self, sub="active"):
        """Sorted queue IDs of the committed files in queue/SUB."""
        return [os.path.basename(p) for p in self.queue_files(sub)]

    def queued(self, qid, subs=("active", "hold", "incoming"), timeout=10):
        """The parsed queue file of qid (read_queue_file) once it is
        complete in one of queue/SUBS, with "dir" set to that SUB; waits up
        to timeout seconds (a file qmgr moves meanwhile is looked for
        again), AssertionError with the log's tail otherwise."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for sub in subs:
                try:
                    q = read_queue_file(os.path.join(self.queue_dir, sub, qid))
                except FileNotFoundError:
                    continue
                if q["complete"]:
                    q["dir"] = sub
                    return q
            time.sleep(0.05)
        raise AssertionError("%s was not queued; log:\n%s" % (qid, self.log_tail()))

    def temp_files(self):
        """Names of the temporary files (.ID) in queue/incoming."""
        d = os.path.join(self.queue_dir, "incoming")
        try:
            return sorted(n for n in os.listdir(d) if n.startswith("."))
        except OSError:
            return []

    def wait_queue(self, sub, count, timeout=10):
        """Wait until queue/SUB holds exactly count committed files; returns
        their paths, or raises AssertionError."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            files = self.queue_files(sub)
            if len(files) == count:
                return files
            time.sleep(0.05)
        raise AssertionError("queue/%s has %d files, expected %d; log:\n%s" % (
            sub, len(self.queue_files(sub)), count, self.log_tail()))

    def wait_empty(self, timeout=20):
        """Wait until incoming/, active/ and deferred/ hold no message."""
        subs = ("incoming", "active", "deferred")
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not any(self.queue_files(sub) for sub in subs):
                return
            time.sleep(0.1)
        raise AssertionError("queue not empty: %s" % {sub: self.queue_files(sub) for sub in subs})

    def smtp(self):
        """smtplib.SMTP connected to the instance's smtpd (10 s timeout)."""
        return smtplib.SMTP("127.0.0.1", self.port, timeout=10)

    def raw_session(self, greet=True, port=None, timeout=10):
        """A RawSession to the instance's smtpd (or another port)."""
        return RawSession(port or self.port, greet=greet, timeout=timeout)

    def rcpt_reply(self, address, sender="sender@client.test"):
        """(code, text) of RCPT TO:<address> after EHLO and MAIL FROM:<sender>
        (the reply's lines joined by spaces); the session then ends."""
        with self.raw_session() as s:
            s.send(b"EHLO client.test\r\n")
            s.read_reply()
            s.send(("MAIL FROM:<%s>\r\n" % sender).encode())
            code, lines = s.read_reply()
            if code != 250:
                raise AssertionError("MAIL FROM refused: %s" % lines)
            s.send(("RCPT TO:<%s>\r\n" % address).encode())
            code, lines = s.read_reply()
            s.send(b"QUIT\r\n")
            return code, " ".join(lines)

    def send_mail(self, rcpts, subject, sender="sender@client.test"):
        """A short message from sender to rcpts through smtpd."""
        with self.smtp() as c:
            c.sendmail(sender, rcpts, "From: %s\r\nSubject: %s\r\n\r\nhello\r\n" % (sender, subject))


class RawSession:
    """Exact bytes to the server; replies read and parsed one at a time.
    greeting holds the (code, lines) of the 220 unless greet=False."""

    def __init__(self, port, greet=True, timeout=10, source=None, host="127.0.0.1"):
        """source: the local address to connect from (e.g. 127.0.0.2)."""
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.greeting = self.read_reply() if greet else None

    def send(self, data):
        """Send str (UTF-8) or bytes as they are: no CRLF is added."""
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def read_reply(self, timeout=None):
        """(code, [lines]) of one possibly multi-line reply; each line is the
        whole text ("250-PIPELINING"). socket.timeout after timeout seconds
        (default: the session's), EOFError when the server closes first."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; unread %r" % self.buf)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return int(text[:3]), lines

    def read_all_replies(self, n):
        """The next n replies, as a list of read_reply() results."""
        return [self.read_reply() for _ in range(n)]

    def closed(self, timeout=5):
        """True when the server closes the connection within timeout (what
        it sends first is kept in the buffer)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


CRASH_PATTERNS = re.compile(
    r"AddressSanitizer|UndefinedBehaviorSanitizer|LeakSanitizer|runtime error:"
    r"|killed by signal (4|6|7|8|11|31)\b")     # 31: SIGSYS, a call outside a syscall filter


def crash_reports(text):
    """Log lines that show a daemon crash or a sanitizer report."""
    return [line for line in text.splitlines() if CRASH_PATTERNS.search(line)]


QUEUE_ID_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"    # as lib's queue IDs
_qid_counter = [0]


def new_queue_id():
    """A fresh 16-character queue ID in Tern's alphabet, for queue files a
    test writes itself: microseconds, PID and a counter, so that IDs made
    in one test run never repeat."""
    _qid_counter[0] += 1
    n = int(time.time() * 1000000) * 1000 + os.getpid() % 1000 * 7 + _qid_counter[0]
    out = ""
    for _ in range(16):
        out = QUEUE_ID_ALPHABET[n % 31] + out
        n //= 31
    return out


def queue_record(rtype, data):
    """One queue file record (lib/global/QUEUE.md): the type letter, a 4-byte
    big-endian length, the data (bytes, or str as UTF-8)."""
    data = data if isinstance(data, bytes) else data.encode()
    return rtype.encode() + struct.pack(">I", len(data)) + data


def queue_id_of(reply):
    """The queue ID in a 250 reply to the end of DATA ("... queued as ID"),
    str or bytes; AssertionError when there is none."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    m = re.search(r"queued as ([0-9A-Z]+)", text)
    if not m:
        raise AssertionError("no queue ID in reply %r" % text)
    return m.group(1)


RECORD_TYPES = set("VTZSARDCXWE")


def read_queue_file(path):
    """Parse a queue file strictly by lib/global/QUEUE.md. Returns dict(sender,
    attrs {name: value}, recipients [(addr, orcpt, notify, done)], content
    bytes, complete bool, arrival str, size int or None, truncated bool,
    warned: when a delay warning was sent, 0 if none yet, None without W).

    Raises ValueError on corruption: an unknown type, a record over 1 MiB (a
    content record over 64 KiB), a first record that is not V, a repeated V,
    T, S, X or Z, an attribute inside the content, content after its end
    (an attribute after it is cleanup's content_filter), Z not
    matching the content, a non-empty E, or anything after E. A file whose
    last record is merely cut short is incomplete (complete False,
    truncated True), not corrupt."""
    with open(path, "rb") as f:
        data = f.read()
    out = {"sender": None, "attrs": {}, "recipients": [], "content": b"",
           "complete": False, "arrival": None, "size": None, "truncated": False,
           "warned": None}
    seen, pos = set(), 0
    while pos < len(data):
        if out["complete"]:
            raise ValueError("%s: data after the end record" % path)
        if len(data) - pos < 5:
            out["truncated"] = True
            break
        rtype = chr(data[pos])
        (length,) = struct.unpack(">I", data[pos + 1:pos + 5])
        if rtype not in RECORD_TYPES:
            raise ValueError("%s: unknown record type %r at offset %d" % (path, rtype, pos))
        if length > 1024 * 1024:
            raise ValueError("%s: record of %d bytes at offset %d" % (path, length, pos))
        if pos + 5 + length > len(data):
            out["truncated"] = True
            break
        body = data[pos + 5:pos + 5 + length]
        try:
            _queue_record(out, seen, rtype, body, pos)
        except ValueError as e:
            raise ValueError("%s: offset %d: %s" % (path, pos, e)) from None
        pos += 5 + length
    if out["complete"] and not {"S", "X"} <= seen:
        raise ValueError("%s: complete file without sender or end of content" % path)
    out.pop("_last", None)
    return out


def _queue_record(out, seen, rtype, body, pos):
    """Apply one record to the parsed view; ValueError when out of order.
    seen holds the types met so far, out["_last"] the previous type."""
    if not seen and rtype != "V":
        raise ValueError("first record is %r, not V" % rtype)
    if rtype in "VTSXZ" and rtype in seen:
        raise ValueError("second %s record" % rtype)
    if rtype in "CX" and "X" in seen:
        raise ValueError("%s record after the end of content" % rtype)
    if rtype == "A" and "C" in seen and "X" not in seen:
        raise ValueError("attribute inside the content")
    if rtype == "Z" and "X" not in seen:
        raise ValueError("content size before the end of content")
    text = body.decode("utf-8", "surrogateescape")
    if rtype == "V" and body != b"1":
        raise ValueError("unsupported version %r" % body)
    elif rtype == "T":
        if not re.fullmatch(r"\d+\.\d{6}", text):
            raise ValueError("bad arrival time %r" % text)
        out["arrival"] = text
    elif rtype == "S":
        out["sender"] = text
    elif rtype == "A":
        name, eq, value = text.partition("=")
        if not eq or not re.fullmatch(r"[a-z0-9_]+", name):
            raise ValueError("bad attribute %r" % text[:80])
        out["attrs"][name] = value
    elif rtype in "RD":
        parts = text.split("\0")
        if len(parts) != 3:
            raise ValueError("bad recipient record %r" % text[:80])
        out["recipients"].append((parts[0], parts[1], parts[2], rtype == "D"))
    elif rtype == "C":
        if len(body) > 65536:
            raise ValueError("content record of %d bytes" % len(body))
        if "C" in seen and out.get("_last") != "C":
            raise ValueError("content records are not contiguous")
        out["content"] += body
    elif rtype == "Z":
        if not text.isdigit() or int(text) != len(out["content"]):
            raise ValueError("content size %r, content has %d bytes" % (text, len(out["content"])))
        out["size"] = int(text)
    elif rtype == "W":
        if "W" in seen or not text.isdigit():
            raise ValueError("bad or second warning time %r" % text)
        out["warned"] = int(text)
    elif rtype == "E":
        if body:
            raise ValueError("end record with data")
        out["complete"] = True
    seen.add(rtype)
    out["_last"] = rtype


def _stat_fields(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    return s[s.rindex(")") + 2:].split()


def _ppid(pid):
    f = _stat_fields(pid)
    return int(f[1]) if f else None


def _alive(pid):
    f = _stat_fields(pid)
    return f is not None and f[0] != "Z"


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_start(pid):
    """The start time of a process (field 22 of /proc/PID/stat), None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def descendants(root):
    """[(pid, start time)] of every descendant of root, read from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            out.append((pid, proc_start(pid)))
            todo.append(pid)
    return out


def stop_process_tree(proc, timeout=15):
    """End a server the test started (a subprocess.Popen) and every process
    it had started: SIGTERM to it, SIGKILL if it does not go, then SIGKILL
    to its children that are still the same processes (a daemon's children
    may go on serving the connections they have)."""
    if proc.poll() is not None:
        return
    children = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    for pid, start in children:
        if proc_start(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def proc_cmdline(pid):
    """argv of pid as a list of str ([] when it is gone)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def proc_uid(pid):
    """The real uid of pid (None when it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def maildir_files(maildir, sub="new"):
    """The files in maildir/sub, sorted ([] when there is no such folder)."""
    d = os.path.join(maildir, sub)
    try:
        return sorted(os.path.join(d, n) for n in os.listdir(d))
    except FileNotFoundError:
        return []


def wait_port(port, timeout=10, host="127.0.0.1"):
    """Wait until something accepts connections on host:port (loopback)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listens on %s port %d" % (host, port))


# ---- Unix users (local delivery and local submission tests; run as root) ----

def make_unix_users(names, prefix, home_owned_by_user=lambda name: True):
    """Create the Unix users `names` afresh (an old one of the same name is
    removed first), each with a home directory 0755 in a new directory under
    /tmp whose name starts with prefix; a home is owned by its user unless
    home_owned_by_user(name) says no (then it stays root's). Returns the
    directory of the homes; on any failure the users made so far are removed."""
    homes = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(homes, 0o755)
    try:
        for name in names:
            subprocess.run(["userdel", name], capture_output=True)
            home = os.path.join(homes, name)
            subprocess.run(["useradd", "-M", "-d", home, "-s", "/bin/sh", name], check=True,
                           capture_output=True)
            os.mkdir(home)
            os.chmod(home, 0o755)
            if home_owned_by_user(name):
                pw = pwd.getpwnam(name)
                os.chown(home, pw.pw_uid, pw.pw_gid)
    except BaseException:
        remove_unix_users(names, homes)
        raise
    return homes


def remove_unix_users(names, homes=None):
    """Remove the users made by make_unix_users, their groups, and homes."""
    for name in names:
        subprocess.run(["userdel", name], capture_output=True)
        try:
            grp.getgrnam(name)
            subprocess.run(["groupdel", name], capture_output=True)
        except KeyError:
            pass
    if homes:
        shutil.rmtree(homes, ignore_errors=True)


# ---- the attribute frames of lib/util/attr.h (talking to a delivery agent) ----

def encode_attr_frame(pairs):
    """One frame from (name, value) pairs; a value is bytes, str or int."""
    payload = b""
    for name, value in pairs:
        name = name.encode()
        if not isinstance(value, bytes):
            value = str(value).encode()
        payload += bytes([len(name)]) + name + struct.pack(">I", len(value)) + value + b"\0"
    return struct.pack(">I", len(payload)) + payload


def decode_attr_payload(payload):
    """The (name, bytes value) pairs of a frame's payload, strictly parsed."""
    pairs, pos = [], 0
    while pos < len(payload):
        nlen = payload[pos]
        name = payload[pos + 1:pos + 1 + nlen].decode()
        pos += 1 + nlen
        (vlen,) = struct.unpack(">I", payload[pos:pos + 4])
        value = payload[pos + 4:pos + 4 + vlen]
        if payload[pos + 4 + vlen:pos + 5 + vlen] != b"\0":
            raise ValueError("attribute %s not terminated" % name)
        pos += 5 + vlen
        pairs.append((name, value))
    return pairs


def read_exact(sock, n):
    """n bytes from sock; EOFError when the peer closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(data), n))
        data += chunk
    return data


def read_attr_frame(sock, text=True):
    """One frame from sock as (name, value) pairs: values as str (text) or bytes."""
    (length,) = struct.unpack(">I", read_exact(sock, 4))
    if length > 1024 * 1024:
        raise ValueError("frame of %d bytes" % length)
    pairs = decode_attr_payload(read_exact(sock, length))
    if text:
        return [(name, value.decode("utf-8", "replace")) for name, value in pairs]
    return pairs


@atexit.register
def _cleanup_all():
    """Instances a test forgot to clean up: stopped and removed at exit."""
    for inst in list(_instances):
        try:
            inst.cleanup()
        except Exception as e:     # at exit there is no test left to fail
            print("harness: %s" % e)
