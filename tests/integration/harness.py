"""Integration-test harness: real processes on ipc:// in a temp dir.

Each test function takes a Platform, which owns a temp dir, a registryd on
ipc://<dir>/registry, and every process the test starts.  At teardown the
platform stops what is still running (SIGTERM, then SIGKILL of the process
group), and the test FAILS if any process outlived its stop, if a sanitizer
wrote a report, or if the temp dir could not be removed.

Run: /usr/bin/python3 tests/integration/run.py [BIN_DIR] [TEST_NAME ...]
The last line printed is "integration: N passed, N failed".
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

BIN = os.environ.get("SVC_BIN", "build/bin")
SAN_DIR = os.environ.get("SVC_SAN_DIR")  # where ASan/UBSan write reports (log_path)
# True in the second pass, against the ASan+UBSan build: programs run several
# times slower there, so heavy tests scale their loop counts down (the
# behaviour they assert stays the same) to keep `make test` under 10 minutes.
SANITIZED = bool(SAN_DIR)


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def wait_until(pred, timeout, step=0.05, what="condition"):
    """Polls pred until it returns a truthy value or timeout seconds pass."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise Failure("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(step)


class Proc:
    def __init__(self, name, popen, log):
        self.name, self.p, self.log = name, popen, log

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.alive():
            os.killpg(self.p.pid, sig)

    def stop(self, timeout=10):
        """SIGTERM and wait; returns the exit code (SIGKILL after timeout)."""
        self.signal(signal.SIGTERM)
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.p.wait(5)
            raise Failure("%s did not stop within %ss of SIGTERM" % (self.name, timeout))

    def kill(self):
        self.signal(signal.SIGKILL)
        self.p.wait(5)

    def output(self):
        with open(self.log, errors="replace") as f:
            return f.read()


class Result:
    def __init__(self, code, out, err, elapsed):
        self.code, self.out, self.err, self.elapsed = code, out, err, elapsed

    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return "exit %d after %.2fs\nstdout: %s\nstderr: %s" % (
            self.code, self.elapsed, self.out, self.err)


class Platform:
    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="svc-it-%s-" % name)
        self.registry = "ipc://%s/registry" % self.dir
        self.procs = []
        self.env = dict(os.environ)
        self.env["SVC_REGISTRY_ADDRESS"] = self.registry
        self.env.pop("SVC_LOG_LEVEL", None)

    def spawn(self, name, argv, env=None):
        log = os.path.join(self.dir, "%s-%d.log" % (name, len(self.procs)))
        e = dict(self.env)
        e.update(env or {})
        with open(log, "wb") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=e,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        proc = Proc(name, p, log)
        self.procs.append(proc)
        return proc

    def start_registry(self, *args):
        p = self.spawn("registryd", [os.path.join(BIN, "registryd"), "--register-interval", "1"] + list(args))
        wait_until(lambda: self.ctl("services").code == 0, 5, what="registryd to answer")
        return p

    def start_service(self, binary, *args, wait_name=None, env=None):
        """Starts a service binary and waits until its node is registered."""
        before = set(self.node_ids(wait_name)) if wait_name else set()
        p = self.spawn(binary, [os.path.join(BIN, binary)] + list(args), env=env)
        if wait_name:
            wait_until(lambda: (not p.alive() and Failure("%s exited: %s" % (binary, p.output())))
                       or set(self.node_ids(wait_name)) - before, 5,
                       what="%s to register" % wait_name)
            check(p.alive(), "%s exited early: %s" % (binary, p.output()))
        return p

    def ctl(self, *args, stdin=None, timeout=30):
        t0 = time.monotonic()
        r = subprocess.run([os.path.join(BIN, "svcctl")] + list(args), input=stdin,
                           capture_output=True, text=True, env=self.env, timeout=timeout)
        return Result(r.returncode, r.stdout, r.stderr, time.monotonic() - t0)

    def run(self, binary, *args, timeout=30):
        t0 = time.monotonic()
        r = subprocess.run([os.path.join(BIN, binary)] + list(args), capture_output=True,
                           text=True, env=self.env, timeout=timeout)
        return Result(r.returncode, r.stdout, r.stderr, time.monotonic() - t0)

    def service_json(self, name):
        r = self.ctl("-o", "json", "service", name)
        return r.json() if r.code == 0 else []

    def node_ids(self, name):
        return [n["id"] for s in self.service_json(name) for n in s.get("nodes", [])]

    def nodes(self, name):
        return [n for s in self.service_json(name) for n in s.get("nodes", [])]

    def teardown(self):
        problems = []
        for p in reversed(self.procs):
            if p.alive():
                try:
                    p.stop(10)
                except Failure as e:
                    problems.append(str(e))
            # Anything left in the process group is a leak.
            try:
                os.killpg(p.pid, 0)
                problems.append("process group of %s (pid %d) outlived it" % (p.name, p.pid))
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            except PermissionError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
        if os.path.exists(self.dir):
            problems.append("temp dir %s left behind" % self.dir)
        return problems


def serial(fn):
    """Marks a test that must run alone (it measures memory or throughput,
    or loads the CPU enough to disturb others): run_tests runs it after the
    parallel ones, with nothing beside it."""
    fn.serial = True
    return fn


def _san_options(env, san_dir):
    """Points ASan/UBSan's log_path in env at san_dir, so that each test
    collects its own reports even while tests run side by side."""
    for var, prefix in (("ASAN_OPTIONS", "asan"), ("UBSAN_OPTIONS", "ubsan")):
        opts = [o for o in env.get(var, "").split(":") if o and not o.startswith("log_path=")]
        opts.append("log_path=%s/%s" % (san_dir, prefix))
        env[var] = ":".join(opts)


def _reports(san_dir):
    if not os.path.isdir(san_dir):
        return []
    return sorted(os.path.join(san_dir, f) for f in os.listdir(san_dir))


def run_one(fn):
    """Runs one test on a fresh Platform; returns (ok, report text)."""
    name = fn.__name__
    plat = Platform(name.replace("test_", "")[:20])
    san_dir = None
    if SAN_DIR:
        san_dir = tempfile.mkdtemp(prefix="%s-" % name, dir=SAN_DIR)
        _san_options(plat.env, san_dir)
    t0 = time.monotonic()
    err = None
    try:
        fn(plat)
    except Failure as e:
        err = str(e)
    except Exception:
        err = traceback.format_exc()
    log_text = ""
    if err:
        for i, p in enumerate(plat.procs):
            try:
                with open(p.log, errors="replace") as f:
                    log_text += "--- %s%d\n%s" % (p.name, i, f.read()[-3000:])
            except OSError:
                pass
    problems = plat.teardown()
    if san_dir:
        for r in _reports(san_dir):
            with open(r, errors="replace") as f:
                problems.append("sanitizer report %s:\n%s" % (r, f.read()[:4000]))
        shutil.rmtree(san_dir, ignore_errors=True)
    elapsed = time.monotonic() - t0
    if not err and not problems:
        return True, "ok   %s (%.1fs)" % (name, elapsed)
    lines = ["FAIL %s (%.1fs): %s" % (name, elapsed, err or "")]
    lines += ["     %s" % pr for pr in problems]
    if log_text:
        lines.append(log_text)
    return False, "\n".join(lines)


def run_tests(tests, selected, jobs=1):
    """Runs the selected tests (all when selected is empty), up to jobs at
    once — each has its own temp dir, sockets and processes — then those
    marked @serial one by one.  Prints one block per test on stderr as it
    ends; returns (passed, failed)."""
    chosen = [fn for fn in tests if not selected or fn.__name__ in selected]
    parallel = [fn for fn in chosen if not getattr(fn, "serial", False)]
    alone = [fn for fn in chosen if getattr(fn, "serial", False)]
    passed = failed = 0

    def done(ok, text):
        nonlocal passed, failed
        print(text, file=sys.stderr, flush=True)
        if ok:
            passed += 1
        else:
            failed += 1

    if jobs > 1 and len(parallel) > 1:
        from concurrent.futures import ThreadPoolExecutor, as_completed
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for f in as_completed([pool.submit(run_one, fn) for fn in parallel]):
                done(*f.result())
    else:
        for fn in parallel:
            done(*run_one(fn))
    for fn in alone:
        done(*run_one(fn))
    return passed, failed
