"""Runs every integration test: run.py [-j N] [BIN_DIR] [TEST_NAME ...]

-j N (or $SVC_TEST_JOBS) runs up to N tests at once (default 1); tests
marked @harness.serial run alone afterwards.
"""
import importlib
import inspect
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
args = sys.argv[1:]
jobs = int(os.environ.get("SVC_TEST_JOBS", "1"))
if len(args) >= 2 and args[0] == "-j":
    jobs = int(args[1])
    args = args[2:]
if args and os.path.isdir(args[0]):
    os.environ["SVC_BIN"] = args.pop(0)

import harness  # noqa: E402  (reads SVC_BIN)

tests = []
for f in sorted(os.listdir(here)):
    if f.startswith("test_") and f.endswith(".py"):
        mod = importlib.import_module(f[:-3])
        fns = [v for k, v in vars(mod).items() if k.startswith("test_") and callable(v)]
        tests += sorted(fns, key=lambda fn: inspect.getsourcelines(fn)[1])

passed, failed = harness.run_tests(tests, set(args), jobs)
print("integration: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
