"""harness.py: whole-instance test support: a real Tern instance made with
`tern init` in a temporary directory, started with `tern start` exactly as
a user would, and helpers to look where a user looks: the SMTP replies, the
log file, the queue files and the processes.

The build tree comes from $TERN_BUILD_DIR (tern at tern/tern, daemons linked
under libexec/). Instances started as root drop privileges to the `tern`
account, which `tern init` creates when it is missing.
"""
import atexit
import os
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


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tern(*args, check=True, timeout=60):
    """Run the tern command; returns CompletedProcess with text output."""
    proc = subprocess.run([TERN] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError("tern %s failed (%d): %s%s" % (
            " ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


class Instance:
    """One self-contained instance. main_cf: dict (or list of "name = value"
    lines) appended to main.cf; master_cf_extra: lines appended to master.cf."""

    def __init__(self, name="t", main_cf=None, master_cf_extra=None, port=None):
        self.dir = tempfile.mkdtemp(prefix="tern-%s-" % name, dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port = port or free_port()
        tern("init", self.dir, "--port", str(self.port), "--daemon-directory", LIBEXEC,
             "--hostname", "tern.test", "--force")
        self.queue_dir = os.path.join(self.dir, "queue")
        self.log_path = os.path.join(self.dir, "log", "tern.log")
        if main_cf:
            self.set_main_cf(main_cf)
        if master_cf_extra:
            with open(os.path.join(self.dir, "master.cf"), "a") as f:
                for line in master_cf_extra:
                    f.write(line.rstrip("\n") + "\n")
        self.started = False
        _instances.append(self)

    def set_main_cf(self, settings):
        if isinstance(settings, dict):
            settings = ["%s = %s" % kv for kv in settings.items()]
        with open(os.path.join(self.dir, "main.cf"), "a") as f:
            for line in settings:
                f.write(line.rstrip("\n") + "\n")

    # ---- control ----
    def tern(self, *args, check=True):
        return tern("-c", self.dir, *args, check=check)

    def start(self, wait_port=True):
        self.tern("start")
        self.started = True
        if wait_port:
            self.wait_port()

    def wait_port(self, port=None, timeout=10):
        port = port or self.port
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("port %d does not accept connections; log:\n%s"
                             % (port, self.log_tail()))

    def stop(self):
        if self.master_pid():
            self.tern("stop", check=False)
        self.started = False

    def reload(self):
        self.tern("reload")

    def master_pid(self):
        try:
            with open(os.path.join(self.dir, "data", "master.pid")) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return 0
        try:
            os.kill(pid, 0)
        except OSError:
            return 0
        return pid if _comm(pid) == "master" else 0

    def processes(self):
        """[(pid, uid, name)] of master and every descendant."""
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
            uid = _uid(pid)
            if uid is not None:
                out.append((pid, uid, _comm(pid)))
            todo.extend(children.get(pid, []))
        return out

    def kill_all(self, sig=signal.SIGKILL):
        """Send sig to master and all its descendants (these PIDs only)."""
        procs = self.processes()
        for pid, _, _ in procs:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p, _, _ in procs):
            time.sleep(0.05)
        self.started = False
        return procs

    def cleanup(self):
        if self.master_pid():
            self.stop()
        if self.master_pid():
            self.kill_all()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- what a user sees ----
    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=30):
        return "\n".join(self.log_text().splitlines()[-n:])

    def wait_log(self, regex, timeout=10):
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
        """Sorted full paths of the committed queue files in queue/SUB."""
        d = os.path.join(self.queue_dir, sub)
        try:
            names = os.listdir(d)
        except OSError:
            return []
        return sorted(os.path.join(d, n) for n in names if not n.startswith("."))

    def temp_files(self):
        d = os.path.join(self.queue_dir, "incoming")
        try:
            return sorted(n for n in os.listdir(d) if n.startswith("."))
        except OSError:
            return []

    def wait_queue(self, sub, count, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            files = self.queue_files(sub)
            if len(files) == count:
                return files
            time.sleep(0.05)
        raise AssertionError("queue/%s has %d files, expected %d" % (
            sub, len(self.queue_files(sub)), count))

    def smtp(self):
        return smtplib.SMTP("127.0.0.1", self.port, timeout=10)

    def raw_session(self, greet=True):
        return RawSession(self.port, greet=greet)


class RawSession:
    """Exact bytes to the server; replies read and parsed one at a time."""

    def __init__(self, port, greet=True, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.greeting = self.read_reply() if greet else None

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def read_reply(self):
        """(code, [lines]) of one possibly multi-line reply."""
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
        return [self.read_reply() for _ in range(n)]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def read_queue_file(path):
    """Parse a queue file strictly (lib/QUEUE.md); raises ValueError on
    corruption. Returns dict(sender, attrs, recipients[(addr, orcpt, notify,
    done)], content, complete)."""
    with open(path, "rb") as f:
        data = f.read()
    out = {"sender": None, "attrs": {}, "recipients": [], "content": b"", "complete": False}
    pos, first = 0, True
    while pos < len(data):
        if out["complete"]:
            raise ValueError("data after the end record")
        if len(data) - pos < 5:
            raise ValueError("truncated record header")
        rtype = chr(data[pos])
        (length,) = struct.unpack(">I", data[pos + 1:pos + 5])
        if length > 1024 * 1024 or pos + 5 + length > len(data):
            raise ValueError("bad record length")
        body = data[pos + 5:pos + 5 + length]
        pos += 5 + length
        if first and rtype != "V":
            raise ValueError("first record is not V")
        first = False
        if rtype == "S":
            if out["sender"] is not None:
                raise ValueError("second sender record")
            out["sender"] = body.decode("utf-8", "surrogateescape")
        elif rtype == "A":
            k, _, v = body.decode("utf-8", "surrogateescape").partition("=")
            out["attrs"][k] = v
        elif rtype in "RD":
            parts = body.split(b"\0")
            if len(parts) != 3:
                raise ValueError("bad recipient record")
            out["recipients"].append((parts[0].decode("utf-8", "surrogateescape"),
                                      parts[1].decode(), parts[2].decode(), rtype == "D"))
        elif rtype == "C":
            out["content"] += body
        elif rtype == "E":
            out["complete"] = True
        elif rtype not in "VTXZW":
            raise ValueError("unknown record type %r" % rtype)
    return out


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


def _uid(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


@atexit.register
def _cleanup_all():
    for inst in _instances:
        inst.cleanup()
