"""Worker pool wake policy: few threads run short handlers, blocked ones do not hold up the rest."""
import threading
import time

from harness import check


def test_blocking_handlers_run_side_by_side(p):
    # The pool keeps only (CPUs - 1) workers running while handlers are
    # short; handlers that block must still get a worker each at once, or
    # eight 700 ms sleeps would take 5.6 s one after another.
    p.start_registry()
    p.start_service("svc-testsvc", "--workers", "16", wait_name="testsvc")
    results = []
    lock = threading.Lock()

    def call():
        r = p.ctl("call", "testsvc", "Test.Sleep", '{"ms":700}')
        with lock:
            results.append(r)

    threads = [threading.Thread(target=call) for _ in range(8)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    check(len(results) == 8 and all(r.code == 0 for r in results),
          "a sleeping call failed: %r" % [r for r in results if r.code != 0])
    # Eight svcctl processes start on a loaded machine; serial would be >= 5.6 s.
    check(elapsed < 4.0, "8 blocking calls took %.2fs: they did not run side by side" % elapsed)
