"""test_hostile_seccomp.py: a taken-over smtpd, smtp or cleanup tries what
an exploit would do next, and the system call filter refuses it.

The test plays the exploit's payload with ptrace: it attaches (as root,
from outside, which the filter does not prevent) to a live daemon of a
running instance, stopped in its event loop's system call, and makes the
daemon itself execute execve("/bin/sh"), fork() and socket(AF_PACKET), as
injected code would (x86_64: the registers are set for the call and the
daemon's own `syscall` instruction is stepped once). Each call must fail
with EPERM inside the daemon, which is then put back as it was and must
still be the same program, with no child, and go on serving. Without the
filter, execve turns the daemon into /bin/sh and fork makes a second copy
of it, and the test fails.
"""
import ctypes
import os
import platform
import signal
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import sink as sinkmod  # noqa: E402

EPERM = 1
AF_PACKET, SOCK_RAW = 17, 3
NR_EXECVE, NR_FORK, NR_SOCKET = 59, 57, 41      # x86_64
PTRACE_PEEKTEXT, PTRACE_POKEDATA = 1, 5
PTRACE_GETREGS, PTRACE_SETREGS = 12, 13
PTRACE_SINGLESTEP, PTRACE_ATTACH, PTRACE_DETACH = 9, 16, 17
WALL = 0x40000000
# struct user_regs_struct (x86_64): 27 unsigned longs
REG = {n: i for i, n in enumerate(
    "r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags "
    "rsp ss fs_base gs_base ds es fs gs".split())}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]


def _ptrace(req, pid, addr=0, data=0):
    ctypes.set_errno(0)
    rc = _libc.ptrace(req, pid, ctypes.c_void_p(addr), ctypes.c_void_p(data))
    err = ctypes.get_errno()
    if rc == -1 and err:
        raise OSError(err, "ptrace(%d, %d): %s" % (req, pid, os.strerror(err)))
    return rc


def _getregs(pid):
    buf = (ctypes.c_ulong * 27)()
    _ptrace(PTRACE_GETREGS, pid, 0, ctypes.addressof(buf))
    return list(buf)


def _setregs(pid, regs):
    buf = (ctypes.c_ulong * 27)(*regs)
    _ptrace(PTRACE_SETREGS, pid, 0, ctypes.addressof(buf))


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def inject(pid, calls):
    """Make the stopped-in-a-syscall process pid execute each (nr, args)
    of calls; returns the raw results (-errno on failure). The process is
    put back as it was and released. None for a call that ended it."""
    _ptrace(PTRACE_ATTACH, pid)
    try:
        os.waitpid(pid, WALL)
        saved = _getregs(pid)
        rip = saved[REG["rip"]]
        word = _ptrace(PTRACE_PEEKTEXT, pid, rip - 2) & 0xffff
        if word != 0x050f:
            raise AssertionError("process %d is not stopped after a syscall instruction" % pid)
        # "/bin/sh\0" below the red zone of its stack
        path_addr = (saved[REG["rsp"]] - 4096) & ~7
        _ptrace(PTRACE_POKEDATA, pid, path_addr, struct.unpack("<Q", b"/bin/sh\0")[0])
        results = []
        for nr, args in calls:
            regs = list(saved)
            regs[REG["rax"]] = nr
            regs[REG["orig_rax"]] = (1 << 64) - 1
            for name, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args):
                regs[REG[name]] = path_addr if value == "PATH" else value
            regs[REG["rip"]] = rip - 2
            _setregs(pid, regs)
            _ptrace(PTRACE_SINGLESTEP, pid)
            _, status = os.waitpid(pid, WALL)
            if not os.WIFSTOPPED(status):
                results.append(None)
                return results
            results.append(_signed(_getregs(pid)[REG["rax"]]))
            if nr == NR_EXECVE and results[-1] == 0:
                return results      # it is another program now: nothing to put back
        _setregs(pid, saved)
        return results
    finally:
        try:
            _ptrace(PTRACE_DETACH, pid)
        except OSError:
            pass


def exe(pid):
    return os.readlink("/proc/%d/exe" % pid)


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


PAYLOAD = [
    (NR_EXECVE, ("PATH", 0, 0)),
    (NR_FORK, ()),
    (NR_SOCKET, (AF_PACKET, SOCK_RAW, 0)),
]


@unittest.skipUnless(platform.machine() == "x86_64", "the injection is written for x86_64")
@unittest.skipUnless(os.geteuid() == 0, "attaching to the daemons needs root")
class TestTakenOverDaemon(unittest.TestCase):
    def setUp(self):
        self.sink = sinkmod.Sink()
        self.addCleanup(self.sink.stop)
        self.inst = harness.Instance("hsec", master_cf_extra=[
            "smtp      unix  -       -       n       -       -       smtp"])
        self.inst.set_main_cf({"relayhost": "[127.0.0.1]:%d" % self.sink.port})
        self.addCleanup(self.inst.cleanup)
        self.inst.start()

    def send(self, tag):
        with self.inst.smtp() as s:
            s.sendmail("a@example.org", ["b@remote.example"], "Subject: %s\r\n\r\nx\r\n" % tag)
        self.sink.wait(1)
        self.inst.wait_empty()

    def attack(self, name):
        pid = self.inst.wait_process(name)[0]
        before = exe(pid)
        results = inject(pid, PAYLOAD)
        forked = children(pid)
        for child in forked:                 # a copy made by a fork that worked
            os.kill(child, signal.SIGKILL)
        self.assertEqual(results, [-EPERM, -EPERM, -EPERM],
                         "%s: execve, fork, socket(AF_PACKET) answered %s" % (name, results))
        self.assertEqual(exe(pid), before)
        self.assertEqual(forked, [])
        return pid

    def test_smtpd(self):
        with self.inst.smtp() as s:          # an smtpd process with a live session
            s.ehlo("attacker.example")
            pid = self.attack("smtpd")
            self.assertEqual(s.noop()[0], 250)
            s.sendmail("a@example.org", ["b@remote.example"], "Subject: after\r\n\r\nx\r\n")
        self.sink.wait(1)
        self.assertIn(pid, self.inst.wait_process("smtpd"))

    def test_cleanup_and_smtp(self):
        self.send("first")                   # leaves idle cleanup and smtp processes
        self.attack("cleanup")
        self.attack("smtp")
        self.sink.handler.messages.clear()
        self.send("second")                  # the same processes still work


if __name__ == "__main__":
    unittest.main()
