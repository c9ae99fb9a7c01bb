#!/usr/bin/env python3
"""Runs moat's integration tests.

    python3 test/integration/run.py [FILTER...]

Discovers test_*.py next to this file and runs them with unittest
(verbosity 2). FILTERs select tests whose full id (module.Class.method)
contains one of them, e.g. "TestCurl" or "test_tls13". Ends with the
line "N passed, N failed" (", N skipped" when some were skipped); exit
status 1 if any test failed or errored, else 0.

Environment: MOAT (binary, default build/moat), MOAT_WRAPPER (command to
run moat under, e.g. "valgrind -q"), MOAT_TIMEOUT_SCALE (multiply
timeouts), MOAT_KEEP=1 (keep the temporary directory).
"""

import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


def select(suite, filters):
    if not filters:
        return suite
    chosen = unittest.TestSuite()
    for t in flatten(suite):
        if any(f in t.id() for f in filters):
            chosen.addTest(t)
    return chosen


class CountingResult(unittest.TextTestResult):
    """Counts every test once: passed, failed (failures, errors, unexpected
    successes and failed subtests) or skipped."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.bad = set()
        self.ran_ids = []

    def startTest(self, test):
        self.ran_ids.append(test.id())
        super().startTest(test)

    def addFailure(self, test, err):
        self.bad.add(test.id())
        super().addFailure(test, err)

    def addError(self, test, err):
        # Errors in setUpModule/setUpClass come with a placeholder test.
        self.bad.add(test.id())
        super().addError(test, err)

    def addUnexpectedSuccess(self, test):
        self.bad.add(test.id())
        super().addUnexpectedSuccess(test)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self.bad.add(test.id())
        super().addSubTest(test, subtest, err)


def main(argv):
    sys.dont_write_bytecode = True     # keep the source tree clean
    sys.path.insert(0, HERE)
    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    suite = select(suite, argv)
    all_ids = [t.id() for t in flatten(suite)]
    n = len(all_ids)
    if argv and n == 0:
        print("no test matches %s" % " ".join(argv))
        print("0 passed, 0 failed")
        return 1
    runner = unittest.TextTestRunner(verbosity=2, resultclass=CountingResult,
                                     stream=sys.stdout)
    t0 = time.monotonic()
    result = runner.run(suite)
    skipped = {t.id() for t, _ in result.skipped}
    known = set(all_ids)
    ran = set(result.ran_ids)
    # Tests that never ran because a module or class fixture failed count
    # as failed; the fixture's own error (reported under a placeholder id)
    # counts only when it did not already cost tests that way.
    not_run = {i for i in all_ids if i not in ran and i not in skipped}
    failed = (result.bad & known) | not_run
    placeholders = result.bad - known
    if placeholders and not not_run:
        failed |= placeholders
    passed = len(ran - failed - skipped)
    line = "%d passed, %d failed" % (passed, len(failed))
    if skipped:
        line += ", %d skipped" % len(skipped)
    print("(%.1fs)" % (time.monotonic() - t0))
    print(line)
    return 1 if failed or not result.wasSuccessful() else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        print("\ninterrupted")
        sys.exit(130)
