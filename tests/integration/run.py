"""Runs every integration test: run.py [BIN_DIR] [TEST_NAME ...]"""
import importlib
import inspect
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
args = sys.argv[1:]
if args and os.path.isdir(args[0]):
    os.environ["SVC_BIN"] = args.pop(0)

import harness  # noqa: E402  (reads SVC_BIN)

tests = []
for f in sorted(os.listdir(here)):
    if f.startswith("test_") and f.endswith(".py"):
        mod = importlib.import_module(f[:-3])
        fns = [v for k, v in vars(mod).items() if k.startswith("test_") and callable(v)]
        tests += sorted(fns, key=lambda fn: inspect.getsourcelines(fn)[1])

passed, failed = harness.run_tests(tests, set(args))
print("integration: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
