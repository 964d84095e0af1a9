"""run.py: runs the whole-instance tests (tests/instance/test_*.py) with
unittest, one line per test, and a closing "N passed, N failed, N skipped".

    run.py [-j JOBS] [PATTERN...]

PATTERNs pick tests by name (unittest -k). With -j JOBS above 1, test
modules run as separate processes, JOBS at a time, longest first; each
module's lines are printed together when it ends. The modules can share a
machine: each instance has its own directory and ports, each Unix user a
module creates has a name of its own."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

# The modules that take longest, started first so that the last to end is
# a short one (the rest follow in name order).
LONGEST_FIRST = [
    "test_site_config", "test_gateway", "test_gateway_milters", "test_console",
    "test_hostile_root", "test_postscreen", "test_report", "test_maps_pgsql_ldap",
    "test_smtpd_protocol", "test_lmtp", "test_milter", "test_content_filter",
    "test_scheduling", "test_limits", "test_verify", "test_proxy_filter", "test_fleet",
    "test_hostile_memory", "test_console_quarantine", "test_sasl", "test_policy",
]
# The longest any one module may take before it counts as failed.
MODULE_TIME_LIMIT = 1200


class LineResult(unittest.TextTestResult):
    def startTest(self, test):
        self._t0 = time.time()
        super().startTest(test)

    def _line(self, word, test):
        # class and module fixtures that fail are reported without startTest
        t0 = getattr(self, "_t0", time.time())
        self.stream.write("%s %s (%.1fs)\n" % (word, test.id(), time.time() - t0))
        self.stream.flush()

    passed = 0

    def addSuccess(self, test):
        unittest.TestResult.addSuccess(self, test)
        self.passed += 1
        self._line("PASS", test)

    def addFailure(self, test, err):
        unittest.TestResult.addFailure(self, test, err)
        self._line("FAIL", test)
        self.stream.write(self._exc_info_to_string(err, test) + "\n")

    def addError(self, test, err):
        unittest.TestResult.addError(self, test, err)
        self._line("ERROR", test)
        self.stream.write(self._exc_info_to_string(err, test) + "\n")

    def addSkip(self, test, reason):
        unittest.TestResult.addSkip(self, test, reason)
        self._line("SKIP", test)


def run_modules_in_parallel(here, jobs, patterns):
    """Each test module in a process of its own, at most jobs at once."""
    names = sorted(f[:-3] for f in os.listdir(here) if f.startswith("test_") and f.endswith(".py"))
    order = [n for n in LONGEST_FIRST if n in names] + [n for n in names if n not in LONGEST_FIRST]
    running = []      # (name, process, output file, start time)
    passed = failed = skipped = 0
    took = []         # (seconds, name) of each module

    def finish(entry, timed_out):
        nonlocal passed, failed, skipped
        name, proc, out, started = entry
        took.append((time.time() - started, name))
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        out.close()
        sys.stdout.write(text)
        last = [l for l in text.splitlines() if l.endswith(" skipped") and " passed, " in l]
        if timed_out or proc.returncode not in (0, 1) or not last:
            why = "took longer than %d s" % MODULE_TIME_LIMIT if timed_out else \
                  "ended with status %s and no result line" % proc.returncode
            sys.stdout.write("FAIL %s (%s)\n" % (name, why))
            failed += 1
        if last:
            p, f, k = [int(w) for w in last[-1].replace(",", "").split()[0::2][:3]]
            passed, failed, skipped = passed + p, failed + f, skipped + k
        sys.stdout.flush()

    # one directory of port claims for every module of the run (harness.free_port)
    claims = tempfile.mkdtemp(prefix="tern-port-claims-")
    env = dict(os.environ, TERN_TEST_PORT_CLAIMS=claims)
    try:
        run_in_turn(order, running, jobs, patterns, env, finish)
    finally:
        shutil.rmtree(claims, ignore_errors=True)
    # the longest, so that LONGEST_FIRST can follow them
    print("modules that took longest (seconds):")
    for seconds, name in sorted(took, reverse=True)[:12]:
        print("  %-28s %6.1f" % (name, seconds))
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed or passed + skipped == 0 else 0


def run_in_turn(order, running, jobs, patterns, env, finish):
    """Start the modules of order, at most jobs at once, until all ended."""
    while order or running:
        while order and len(running) < jobs:
            name = order.pop(0)
            out = tempfile.TemporaryFile()
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--module", name]
                                    + patterns, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=env)
            running.append((name, proc, out, time.time()))
        time.sleep(0.2)
        for entry in list(running):
            name, proc, out, started = entry
            timed_out = proc.poll() is None and time.time() - started > MODULE_TIME_LIMIT
            if timed_out:
                proc.kill()
                proc.wait()
            if proc.returncode is not None:
                running.remove(entry)
                finish(entry, timed_out)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    args = sys.argv[1:]
    jobs, module = 1, None
    while args and args[0] in ("-j", "--module"):
        if args[0] == "-j":
            jobs = int(args[1])
        else:
            module = args[1]
        args = args[2:]
    if jobs > 1 and not module:
        return run_modules_in_parallel(here, jobs, args)
    loader = unittest.TestLoader()
    if args:
        loader.testNamePatterns = ["*%s*" % p for p in args]
    if module:
        sys.path.insert(0, here)
        suite = loader.loadTestsFromName(module)
    else:
        suite = loader.discover(here, pattern="test_*.py", top_level_dir=here)
    runner = unittest.TextTestRunner(stream=sys.stdout, resultclass=LineResult, verbosity=0)
    result = runner.run(suite)
    failed = len(result.failures) + len(result.errors)
    skipped = len(result.skipped)
    passed = result.passed
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    # a module whose tests a pattern all left out has nothing to run
    return 1 if failed or (result.testsRun == 0 and not module) else 0


if __name__ == "__main__":
    sys.exit(main())
