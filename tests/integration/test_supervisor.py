"""Supervisor (issue 4): real processes under bin/supervisor, driven with svcctl.

Independent scenarios share one supervisor where that keeps them honest
(each service is its own scenario), to stay inside the time budget.
"""
import os
import signal
import subprocess
import tempfile
import time

import harness
from harness import BIN, check, serial, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SUPTEST = os.path.join(HERE, "suptest.py")
PY = "/usr/bin/python3"


class Sup:
    """A supervisor with its own manifest and state directories under p.dir."""

    def __init__(self, p, name="sup"):
        self.p = p
        self.mdir = os.path.join(p.dir, name + "-m")
        self.state = os.path.join(p.dir, name + "-s")
        self.addr = "ipc://%s/supervisor.sock" % self.state
        self.proc = None
        os.makedirs(self.mdir, exist_ok=True)

    def write(self, name, text):
        with open(os.path.join(self.mdir, name + ".ini"), "w") as f:
            f.write(text)

    def remove(self, name):
        os.unlink(os.path.join(self.mdir, name + ".ini"))

    def start(self):
        self.proc = self.p.spawn("supervisor", [os.path.join(BIN, "supervisor"), "--manifests",
                                                self.mdir, "--state-dir", self.state])
        wait_until(lambda: (not self.proc.alive() and harness.Failure(
            "supervisor exited: %s" % self.proc.output())) or self.ps() is not None, 10,
            what="supervisor control API")
        check(self.proc.alive(), "supervisor exited early: %s" % self.proc.output())
        return self.proc

    def ctl(self, *args):
        return self.p.ctl("--supervisor", self.addr, *args)

    def ps(self, name=None):
        r = self.ctl("-o", "json", "ps", *([name] if name else []))
        return r.json().get("instances", []) if r.code == 0 else None

    def by_service(self):
        out = {}
        for i in self.ps() or []:
            out.setdefault(i["service"], []).append(i)
        return out

    def wait_states(self, name, state, n=None, timeout=15):
        def ok():
            ins = [i for i in self.ps() or [] if i["service"] == name]
            return ins if ins and (n is None or len(ins) == n) and all(
                i["state"] == state for i in ins) else None
        return wait_until(ok, timeout, what="%s to be %s" % (name, state))


def suptest(record, *args, **keys):
    """Manifest text for suptest.py; keys become [service] lines."""
    lines = ["[service]", "command = %s" % PY,
             "args = %s --record %s %s" % (SUPTEST, record, " ".join(args))]
    lines += ["%s = %s" % (k, v) for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def events(path, kind=None):
    """[(event, pid, time)] recorded by suptest.py (or sh) in path."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and (kind is None or parts[0] == kind):
                out.append((parts[0], int(parts[1]), float(parts[2])))
    return out


def times(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [float(x) for x in f.read().split()]


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def alive(pid):
    st = proc_state(pid)
    return st is not None and st != "Z"


@serial   # crash-loop delays are measured to +-20%: other tests beside it skew them
def test_sup_restarts_health_watchdog(p):
    """Backoff and start limit, counter reset, health restarts, watchdog, foreign READY."""
    p.start_registry()
    s = Sup(p)
    d = p.dir
    # Crash loop: exits 1 at once; delays 0.3 0.6 1.2 2.4, then failed at 5 starts.
    # (It starts once the others are up, so that their start-up does not skew it.)
    s.write("crash", "[service]\ncommand = /bin/sh\nafter = sick wd\n"
            "args = -c 'date +%%s.%%N >> %s/crash.t; date +%%s.%%N >> %s/crash.e; exit 1'\n"
            "[restart]\npolicy = on-failure\nbackoff_initial = 300ms\nbackoff_factor = 2\n"
            "backoff_cap = 10\nstart_limit_burst = 5\nstart_limit_interval = 30\n" % (d, d))
    # Up longer than start_limit_interval each time: the backoff counter resets,
    # so every delay stays 0.2 s (without the reset: 0.2, 1.0, 5.0).
    s.write("steady", "[service]\ncommand = /bin/sh\n"
            "args = -c 'date +%%s.%%N >> %s/steady.t; sleep 0.7; exit 1'\n"
            "[restart]\nbackoff_initial = 0.2\nbackoff_factor = 5\nstart_limit_burst = 2\n"
            "start_limit_interval = 0.5\n" % d)
    s.write("sick", suptest(d + "/sick.r", "--ready-after 0") +
            "ready = notify\n[health]\ncheck = exec\ncommand = test ! -e %s/sick\n"
            "interval = 0.3\nfailures = 3\ntimeout = 2\n[restart]\nbackoff_initial = 0.1\n" % d)
    s.write("wd", "[service]\ncommand = %s/greeter\nargs = --register-interval 1\n"
            "ready = notify\nwatchdog = 1\n[restart]\nbackoff_initial = 0.1\n" % os.path.abspath(BIN))
    s.write("foreign", suptest(d + "/foreign.r", "--foreign-ready") + "ready = notify\n")
    s.start()
    t_start = time.time()

    # Health: healthy first, then failing checks -> restart only after 3 failures.
    first = s.wait_states("sick", "ready", 1)[0]
    wait_until(lambda: (s.ps("sick") or [{}])[0].get("health") == "ok", 10, what="sick healthy")
    t_sick = time.monotonic()
    open(os.path.join(d, "sick"), "w").close()
    wait_until(lambda: len(events(d + "/sick.r", "start")) >= 2, 10, what="sick restarted")
    took = time.monotonic() - t_sick
    os.unlink(os.path.join(d, "sick"))
    check(took >= 0.55, "restarted %.2fs after checks began failing: before 3 failures of 0.3s" % took)
    logs = s.ctl("logs", "-n", "200", "sick").out
    for k in (1, 2, 3):
        check("health check failed (%d/3)" % k in logs, "no failure %d/3 in logs:\n%s" % (k, logs))
    check(first["pid"] != s.wait_states("sick", "ready", 1)[0]["pid"], "sick kept its pid")

    # Watchdog: pings keep it alive past 2 intervals; SIGSTOP -> killed and ready again in 2 s.
    wd = s.wait_states("wd", "ready", 1, timeout=10)[0]
    time.sleep(max(0, 2.2 - (time.time() - t_start)))
    wd2 = s.ps("wd")[0]
    check(wd2["pid"] == wd["pid"] and wd2["state"] == "ready",
          "greeter pinging its watchdog was restarted: %r -> %r" % (wd, wd2))
    os.kill(wd["pid"], signal.SIGSTOP)
    t_stop = time.monotonic()
    new = wait_until(lambda: [i for i in s.ps("wd") or [] if i["pid"] not in (0, wd["pid"])
                              and i["state"] == "ready"], 6, step=0.02, what="wd restarted")
    took = time.monotonic() - t_stop
    check(took <= 2.0, "watchdog 1s: new instance ready %.2fs after SIGSTOP (limit 2s)" % took)
    check(not alive(wd["pid"]), "the stopped greeter %d still exists" % wd["pid"])
    check(new[0]["restarts"] == wd2["restarts"] + 1, "restart not counted: %r -> %r" % (wd2, new))

    # Foreign READY=1 (from a child of the instance) is ignored.
    fo = s.ps("foreign")[0]
    check(fo["state"] == "starting", "READY=1 from a foreign pid was taken: %r" % fo)
    check("no instance's main process: ignored" in s.proc.output(), "foreign READY not reported")

    # Crash loop timings.
    wait_until(lambda: s.ps("crash")[0]["state"] == "failed", 15, what="crash to fail")
    t, e = times(d + "/crash.t"), times(d + "/crash.e")
    check(len(t) == 5, "crash started %d times, want 5 (start limit 5)" % len(t))
    for k in range(4):   # from its exit (just after the stamp in crash.e) to the next start
        want, got = 0.3 * 2 ** k, t[k + 1] - e[k]
        check(abs(got - want) <= 0.2 * want, "restart %d after %.3fs, want %.3fs +-20%%" % (k + 1, got, want))
    time.sleep(0.8)
    check(len(times(d + "/crash.t")) == 5, "a failed service was started again")

    # Counter reset.
    wait_until(lambda: len(times(d + "/steady.t")) >= 4, 10, what="steady to run 4 times")
    t = times(d + "/steady.t")
    for k in range(3):
        gap = t[k + 1] - t[k]
        check(0.8 <= gap <= 1.3, "steady restart %d after %.2fs: want 0.7 run + 0.2 delay" % (k + 1, gap))
    check(s.ps("steady")[0]["state"] != "failed", "steady marked failed")
    s.proc.stop(15)
    check(s.proc.p.returncode == 0, "supervisor exit %r" % s.proc.p.returncode)


def test_sup_dependencies_and_stop_order(p):
    """20 pairs: dependants start after a dependency that is ready only after 2 s; stop order."""
    s = Sup(p)
    d = p.dir
    n = 20
    for k in range(n):
        s.write("dep%d" % k, suptest("%s/dep%d.r" % (d, k), "--ready-after 2") +
                "ready = notify\nstop_timeout = 5\n")
        s.write("app%d" % k, suptest("%s/app%d.r" % (d, k), "--ready-after 0") +
                "ready = notify\nafter = dep%d\n" % k)
    s.write("stubborn", suptest(d + "/stub.r", "--ignore-term") + "stop_timeout = 1\n")
    s.start()
    for k in range(n):
        wait_until(lambda: events("%s/app%d.r" % (d, k), "ready"), 20, what="app%d ready" % k)
    for k in range(n):
        dep_ready = events("%s/dep%d.r" % (d, k), "ready")[0][2]
        dep_start = events("%s/dep%d.r" % (d, k), "start")[0][2]
        app_start = events("%s/app%d.r" % (d, k), "start")[0][2]
        check(app_start > dep_ready, "app%d started %.3fs before dep%d was ready" % (k, dep_ready - app_start, k))
        check(dep_ready - dep_start >= 2.0, "dep%d ready after %.2fs" % (k, dep_ready - dep_start))
    pids = [i["pid"] for i in s.ps()]
    check(len(pids) == 2 * n + 1 and all(pids), "ps: %r" % s.ps())
    t0 = time.monotonic()
    s.proc.stop(20)
    took = time.monotonic() - t0
    for k in range(n):
        app_term = events("%s/app%d.r" % (d, k), "term")
        dep_term = events("%s/dep%d.r" % (d, k), "term")
        check(app_term and dep_term, "pair %d not both stopped with SIGTERM" % k)
        check(app_term[0][2] <= dep_term[0][2], "dep%d stopped before its dependant" % k)
    check(events(d + "/stub.r", "term"), "stubborn got no SIGTERM")
    check(took >= 1.0, "stop took %.2fs: stubborn ignores SIGTERM, SIGKILL only after 1s" % took)
    with open(os.path.join(s.state, "logs", "stubborn.log")) as f:
        check("did not stop within 1.000s: SIGKILL" in f.read(), "stubborn's log shows no SIGKILL")
    left = [pid for pid in pids if alive(pid)]
    check(not left, "still running after stop: %r" % left)


def test_sup_reload(p):
    """Reload adds, removes, restarts only what changed; a bad manifest changes nothing."""
    s = Sup(p)
    d = p.dir
    for name in "abc":
        s.write(name, suptest("%s/%s.r" % (d, name)))
    s.start()
    wait_until(lambda: len([i for i in s.ps() if i["state"] == "ready"]) == 3, 10, what="a b c")
    before = {i["service"]: i["pid"] for i in s.ps()}
    s.remove("b")
    s.write("c", suptest(d + "/c.r", "--mark changed"))
    s.write("d", suptest(d + "/d.r"))
    r = s.ctl("reload")
    check(r.code == 0, "reload: %r" % r)
    check(sorted(r.out.split("\n")[:-1]) == ["added    d", "changed  c", "removed  b"], "reload said %r" % r.out)
    wait_until(lambda: sorted(s.by_service()) == ["a", "c", "d"] and all(
        i["state"] == "ready" and i["pid"] != before.get(i["service"]) or i["service"] == "a"
        for i in s.ps()), 10, what="reloaded set")
    after = {i["service"]: i["pid"] for i in s.ps()}
    check(after["a"] == before["a"], "unchanged a was restarted")
    check(not alive(before["b"]), "removed b still runs")
    check(after["c"] != before["c"] and not alive(before["c"]), "changed c not restarted")
    # A bad manifest rejects the whole reload, naming file, line and reason.
    s.write("e", "[service]\ncommand = x\nbogus = 1\n")
    s.write("a", suptest(d + "/a.r", "--mark would-change"))
    r = s.ctl("reload")
    check(r.code == 1, "bad reload exit %r" % r)
    check("e.ini:3: unknown key \"bogus\" in [service]" in r.err, "bad reload error: %r" % r.err)
    time.sleep(0.3)
    check({i["service"]: i["pid"] for i in s.ps()} == after, "a rejected reload changed the set")
    # SIGHUP reloads too.
    s.write("e", suptest(d + "/e.r"))
    s.write("a", suptest(d + "/a.r"))
    s.proc.signal(signal.SIGHUP)
    wait_until(lambda: "e" in s.by_service() and s.by_service()["e"][0]["state"] == "ready", 10,
               what="e added on SIGHUP")
    check(s.by_service()["a"][0]["pid"] == after["a"], "SIGHUP restarted unchanged a")
    s.proc.stop(15)


def test_sup_kill9_restart(p):
    """Supervisor SIGKILLed and started again: exactly the manifests' instances each time."""
    s = Sup(p)
    d = p.dir
    mark = "km-%d" % os.getpid()
    s.write("two", suptest(d + "/two.r", "--mark", mark) + "instances = 2\n")
    s.write("one", suptest(d + "/one.r", "--ready-after 0", "--mark", mark) + "ready = notify\n")
    # Ignores SIGTERM (and so the PDEATHSIG): only the next supervisor can end it.
    s.write("tough", suptest(d + "/tough.r", "--ignore-term", "--mark", mark) + "stop_timeout = 0.3\n")
    rounds = 3 if harness.SANITIZED else 10

    def marked():
        out = []
        for e in os.listdir("/proc"):
            if e.isdigit():
                try:
                    with open("/proc/%s/cmdline" % e, "rb") as f:
                        if mark.encode() in f.read() and alive(int(e)):
                            out.append(int(e))
                except OSError:
                    pass
        return sorted(out)

    for r in range(rounds):
        s.start()
        wait_until(lambda: len([i for i in s.ps() if i["state"] == "ready"]) == 4, 10,
                   what="4 instances ready in round %d" % r)
        pids = sorted(i["pid"] for i in s.ps())
        wait_until(lambda: marked() == pids, 5,
                   what="round %d: exactly %r running (see %r)" % (r, pids, marked()))
        if r < rounds - 1:
            s.proc.kill()
    s.proc.stop(15)
    wait_until(lambda: not marked(), 3, what="nothing left after the last stop (%r)" % marked())


def test_sup_bad_manifests(p):
    """Unknown key, missing command, bad number, cycle, unknown dependency: FILE:LINE: reason."""
    cases = {
        "unknown": ({"x": "[service]\ncommand = a\nfrobnicate = 1\n"},
                    'x.ini:3: unknown key "frobnicate" in [service]'),
        "nocommand": ({"x": "# none\n[service]\ninstances = 2\n"},
                      'x.ini:2: missing key "command" in [service]'),
        "badnumber": ({"x": "[service]\ncommand = a\n[restart]\nbackoff_initial = 1.5q\n"},
                      'x.ini:4: bad number "1.5q"'),
        "badcount": ({"x": "[service]\ncommand = a\ninstances = many\n"}, 'x.ini:3: bad number "many"'),
        "cycle": ({"a": "[service]\ncommand = a\nafter = b\n", "b": "[service]\ncommand = b\nafter = c\n",
                   "c": "[service]\ncommand = c\n\nafter = a\n"},
                  "c.ini:4: dependency cycle: a -> b -> c -> a"),
        "unknowndep": ({"a": "[service]\ncommand = a\nafter = ghost\n"},
                       'a.ini:3: unknown dependency "ghost" in after'),
    }
    for name, (files, want) in cases.items():
        s = Sup(p, name)
        for f, text in files.items():
            s.write(f, text)
        r = p.run("supervisor", "--check", "--manifests", s.mdir)
        check(r.code == 65, "%s: --check exit %d: %r" % (name, r.code, r))
        check(want in r.err and r.err.count("\n") == 1, "%s: want %r in one line, got %r" % (name, want, r.err))
        r = p.run("supervisor", "--manifests", s.mdir, "--state-dir", s.state)
        check(r.code == 65 and want in r.err, "%s: supervisor start: %r" % (name, r))
    s = Sup(p, "good")
    s.write("a", "[service]\ncommand = a\n")
    r = p.run("supervisor", "--check", "--manifests", s.mdir)
    check(r.code == 0 and "1 manifests ok" in r.out, "good manifest: %r" % r)
    r = p.run("supervisor", "--bogus")
    check(r.code == 64 and "unknown option" in r.err, "bad flag: %r" % r)


def _install(p, dest, prefix="/usr"):
    build = os.path.dirname(os.path.abspath(BIN))
    args = ["make", "-s", "-C", ROOT, "install", "BUILD=" + build, "PREFIX=" + prefix, "DESTDIR=" + dest]
    if harness.SANITIZED:
        args.append("SANITIZE=1")
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "make install failed: %s %s" % (r.stdout[-2000:], r.stderr[-2000:]))


def test_sup_install_unit_and_pkgconfig(p):
    """make install DESTDIR tree; the unit passes systemd-analyze verify; svc.pc builds a service."""
    dest = os.path.join(p.dir, "root")
    _install(p, dest)
    for f in ["usr/bin/supervisor", "usr/bin/registryd", "usr/bin/svcctl", "usr/bin/greeter",
              "usr/lib/libsvc.a", "usr/lib/libsvc.so.0", "usr/lib/libsvc.so", "usr/lib/pkgconfig/svc.pc",
              "usr/include/svc/svc.h", "usr/include/svc/service.h", "usr/include/svc/supervisor.pb-c.h",
              "usr/lib/systemd/system/svc-supervisor.service", "etc/svc/svc.env",
              "etc/svc/manifests/registryd.ini", "etc/svc/manifests/greeter.ini"]:
        check(os.path.lexists(os.path.join(dest, f)), "not installed: %s" % f)
    check(os.readlink(os.path.join(dest, "usr/lib/libsvc.so")) == "libsvc.so.0", "libsvc.so link")
    r = subprocess.run(["objdump", "-p", os.path.join(dest, "usr/lib/libsvc.so.0")], capture_output=True, text=True)
    check("SONAME               libsvc.so.0" in r.stdout, "soname: %s" % r.stdout[:300])
    unit = os.path.join(dest, "usr/lib/systemd/system/svc-supervisor.service")
    with open(unit) as f:
        text = f.read()
    for want in ("Type=notify", "WatchdogSec=", "ExecStart=/usr/bin/supervisor", "ExecReload=",
                 "EnvironmentFile=-/etc/svc/svc.env"):
        check(want in text, "unit lacks %s" % want)
    # systemd-analyze verify checks that ExecStart exists, so verify the unit of
    # a real install under a second prefix (same template, paths that exist).
    pre = os.path.join(p.dir, "prefix")
    _install(p, "", prefix=pre)
    r = subprocess.run(["systemd-analyze", "verify",
                        os.path.join(pre, "lib/systemd/system/svc-supervisor.service")],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and not r.stderr.strip(), "systemd-analyze verify: %r %r" % (r.stdout, r.stderr))
    # The shipped manifests are valid.
    r = p.run("supervisor", "--check", "--manifests", os.path.join(dest, "etc/svc/manifests"))
    check(r.code == 0, "installed manifests: %r" % r)

    src = os.path.join(p.dir, "tiny.c")
    with open(src, "w") as f:
        f.write('#include <svc/svc.h>\nint main(int argc, char **argv)\n{\n'
                '    svc_service *s = svc_new("tiny", argc, argv);\n'
                '    int rc = svc_run(s);\n    svc_destroy(&s);\n    return rc;\n}\n')
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(dest, "usr/lib/pkgconfig"),
               PKG_CONFIG_SYSROOT_DIR=dest)
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "svc"], capture_output=True, text=True,
                           env=env)
    check(flags.returncode == 0, "pkg-config svc: %r" % flags.stderr)
    exe = os.path.join(p.dir, "tiny")
    cmd = "cc -o %s %s %s" % (exe, src, flags.stdout.strip())
    if harness.SANITIZED:
        cmd += " -fsanitize=address,undefined"
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=120)
    check(r.returncode == 0, "cc against svc.pc failed: %s\n%s" % (cmd, r.stderr))
    p.start_registry()
    p.env["LD_LIBRARY_PATH"] = os.path.join(dest, "usr/lib")
    t = p.spawn("tiny", [exe, "--register-interval", "1"])
    wait_until(lambda: p.node_ids("tiny"), 10, what="tiny to register")
    r = p.ctl("health", "tiny")
    check(r.code == 0 and " ok" in r.out, "tiny health: %r" % r)
    check(t.stop(10) == 0, "tiny exit code")


def test_sup_notifies_systemd(p):
    """Under systemd: READY=1 once started, STATUS=, WATCHDOG=1 pings, STOPPING=1; children get our socket."""
    import socket
    path = os.path.join(p.dir, "systemd-notify.sock")
    sd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sd.bind(path)
    sd.settimeout(10)
    s = Sup(p)
    s.write("dep", suptest(p.dir + "/dep.r", "--ready-after 0.5") + "ready = notify\n")
    s.write("app", suptest(p.dir + "/app.r", "--ready-after 0") + "ready = notify\nafter = dep\n")
    p.env.update(NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    s.start()
    msgs, t0 = [], time.monotonic()
    while not any("READY=1" in m for m in msgs):
        msgs.append(sd.recv(4096).decode())
        check(time.monotonic() - t0 < 10, "no READY=1 from the supervisor: %r" % msgs)
    ready = [m for m in msgs if "READY=1" in m][0]
    check("STATUS=2 of 2 instances ready" in ready, "READY=1 came before both were ready: %r" % msgs)
    check(events(p.dir + "/app.r", "ready"), "READY=1 sent before app was ready")
    pings, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < 1.0:
        pings += sd.recv(4096).decode() == "WATCHDOG=1"
    check(3 <= pings <= 8, "%d WATCHDOG=1 in 1 s, want about 5 (every 200 ms)" % pings)
    s.proc.signal(signal.SIGTERM)
    while True:
        m = sd.recv(4096).decode()
        if m.startswith("STOPPING=1"):
            break
    check(s.proc.p.wait(10) == 0, "supervisor exit code")
    sd.close()


def test_sup_spawn_settings_and_log_rotation(p):
    """user, rlimits, environment, working directory, instances; stdout/stderr tagged; rotation."""
    s = Sup(p)
    s.write("who", "[service]\ncommand = /bin/sh\n"
            "args = -c 'id -un; ulimit -n; echo \"$FOO|$SVC_SERVICE|$SVC_INSTANCE\"; pwd; echo oops >&2'\n"
            "instances = 2\nuser = nobody\nenvironment = FOO=\"a b\"\nworking_directory = /tmp\n"
            "[restart]\npolicy = never\n[limits]\nnofile = 123\n")
    s.write("chatty", "[service]\ncommand = /bin/sh\n"
            "args = -c 'i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done'\n"
            "[restart]\npolicy = never\n[log]\nsink = file\nmax_size = 4096\nfiles = 2\n")
    s.start()
    s.wait_states("who", "stopped", 2)
    s.wait_states("chatty", "stopped", 1)
    out = s.ctl("logs", "-n", "100", "who").out
    for k in (0, 1):
        for want in ("who[%d] out: nobody" % k, "who[%d] out: 123" % k, "who[%d] out: a b|who|%d" % (k, k),
                     "who[%d] out: /tmp" % k, "who[%d] err: oops" % k, "who[%d] sup: pid" % k):
            check(want in out, "%r not in logs:\n%s" % (want, out))
    logs = os.path.join(s.state, "logs")
    names = sorted(f for f in os.listdir(logs) if f.startswith("chatty"))
    check(names == ["chatty.log", "chatty.log.1", "chatty.log.2"], "rotated files: %r" % names)
    sizes = [os.path.getsize(os.path.join(logs, f)) for f in names]
    check(all(0 < z <= 4096 for z in sizes), "sizes %r over max_size 4096" % sizes)
    with open(os.path.join(logs, "chatty.log")) as f:
        last = f.read().splitlines()
    check(" chatty[0] sup: pid " in last[-1] and last[-1].endswith(" exited: exit 0"), "last line %r" % last[-1])
    check(any(l.endswith("chatty[0] out: line-399-xxxxxxxxxxxxxxxxxxxxxxxx") for l in last), "last output line missing")
    s.proc.stop(10)


def test_sup_tcp_and_http_checks(p):
    """tcp and http health checks: healthy when they answer, restarted when they do not."""
    import socket

    def free_port():
        with socket.socket() as x:
            x.bind(("127.0.0.1", 0))
            return x.getsockname()[1]

    web, closed = free_port(), free_port()
    s = Sup(p)
    chk = "[health]\ncheck = %s\n%s\ninterval = 0.3\ntimeout = 1\nfailures = 2\n[restart]\nbackoff_initial = 0.1\n"
    s.write("web", "[service]\ncommand = %s\nargs = -m http.server %d --bind 127.0.0.1\n" % (PY, web) +
            chk % ("http", "url = http://127.0.0.1:%d/" % web))
    s.write("tcpok", "[service]\ncommand = /bin/sleep\nargs = 1000\nafter = web\n" +
            chk % ("tcp", "address = 127.0.0.1:%d" % web))
    s.write("http404", "[service]\ncommand = /bin/sleep\nargs = 1000\nafter = web\n" +
            chk % ("http", "url = http://127.0.0.1:%d/nope" % web))
    s.write("tcpbad", "[service]\ncommand = /bin/sleep\nargs = 1000\n" +
            chk % ("tcp", "address = 127.0.0.1:%d" % closed))
    s.start()
    for name in ("web", "tcpok"):
        wait_until(lambda: (s.ps(name) or [{}])[0].get("health") == "ok", 10, what="%s healthy" % name)
    for name, why in (("http404", "http status 404"), ("tcpbad", "connect: Connection refused")):
        wait_until(lambda: (s.ps(name) or [{}])[0].get("restarts", 0) >= 1, 10, what="%s restarted" % name)
        logs = s.ctl("logs", "-n", "50", name).out
        check("health check failed (2/2): " + why in logs, "%s: no %r in\n%s" % (name, why, logs))
    check(all(i["restarts"] == 0 for i in s.ps() if i["service"] in ("web", "tcpok")), "healthy ones restarted")
    s.proc.stop(10)
