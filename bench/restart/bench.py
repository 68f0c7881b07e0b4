#!/usr/bin/python3
"""bench/restart/bench.py BIN_DIR PROG TMP OUT.jsonl — restart latency and footprint.

Restart: for each supervisor (svc's, s6-supervise, runsv, supervisord) one
instance of PROG (bench/restart/prog.c) is supervised; BENCH_KILLS times
(default 100) the bench SIGKILLs it and times until the new process has
reported ready (PROG sends its CLOCK_MONOTONIC time on a datagram socket
right after telling its supervisor it is ready).  The floor is the same
without a supervisor: posix_spawn of PROG until its report.  Each
supervisor restarts as fast as it is configured to: svc with backoff 0
and no start limit, s6 with notification-fd (readiness), runit as is,
supervisord with startsecs=0.  Each process runs BENCH_SETTLE seconds
(default 1.1) before it is killed: s6 and runit delay the restart of a
process that ran under a second.  The four run side by side.

Footprint: 50 instances of PROG under each; the resident (VmRSS) and
proportional (Pss) memory of the supervisor processes (s6: s6-svscan plus
50 s6-supervise; runit: runsvdir plus 50 runsv).  Then the CPU time svc's
supervisor uses over BENCH_IDLE_SECONDS (default 60) of idling.

Prints a table; writes one {"bench","value","unit","against","ratio"} JSON
object per figure to OUT.  Stops every process it started.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

KILLS = int(os.environ.get("BENCH_KILLS", "100"))
IDLE = float(os.environ.get("BENCH_IDLE_SECONDS", "60"))
FOOT_N = 50
# Seconds a new process runs before the next kill: above 1 s, because s6
# and runit hold back a restart for 1 s after a process that ran less.
SETTLE = float(os.environ.get("BENCH_SETTLE", "1.1"))
PEERS = ("svc", "s6-supervise", "runsv", "supervisord")


class Reports:
    """The datagram socket PROG reports to."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)

    def recv(self, timeout):
        self.s.settimeout(timeout)
        pid, ns = self.s.recv(128).decode().split()
        return int(pid), int(ns)

    def drain(self):
        self.s.setblocking(False)
        try:
            while True:
                self.s.recv(128)
        except BlockingIOError:
            pass


class Procs:
    """Processes the bench started, stopped by pid at the end."""

    def __init__(self):
        self.ps = []

    def start(self, argv, log, **kw):
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, **kw)
        self.ps.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=20):
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        if p in self.ps:
            self.ps.remove(p)

    def stop_all(self):
        for p in list(reversed(self.ps)):
            self.stop(p)


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def kill_loop(rep, first_timeout=15):
    """SIGKILLs the reporting process KILLS times; restart latencies in ms."""
    pid, _ = rep.recv(first_timeout)
    out = []
    for _ in range(KILLS):
        time.sleep(SETTLE)
        rep.drain()
        t0 = time.monotonic_ns()
        os.kill(pid, signal.SIGKILL)
        while True:
            new, t1 = rep.recv(15)
            if new != pid:
                break
        out.append((t1 - t0) / 1e6)
        pid = new
    return out


def floor_loop(prog, env, rep):
    out = []
    for _ in range(KILLS):
        rep.drain()
        t0 = time.monotonic_ns()
        pid = os.posix_spawn(prog, [prog], env)
        _, t1 = rep.recv(15)
        out.append((t1 - t0) / 1e6)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        time.sleep(0.01)
    return out


def svc_setup(tmp, prog, n, name):
    m = os.path.join(tmp, name + "-m")
    os.makedirs(m)
    with open(os.path.join(m, "prog.ini"), "w") as f:
        f.write("[service]\ncommand = %s\ninstances = %d\nready = notify\n[restart]\npolicy = always\n"
                "backoff_initial = 0\nstart_limit_burst = 0\n[log]\nsink = none\n" % (prog, n))
    return ["--manifests", m, "--state-dir", os.path.join(tmp, name + "-s")]


def s6_dirs(tmp, prog, n, name):
    root = os.path.join(tmp, name)
    for k in range(n):
        d = os.path.join(root, "prog%d" % k)
        os.makedirs(d)
        shutil.copy(prog, os.path.join(d, "run"))
        with open(os.path.join(d, "notification-fd"), "w") as f:
            f.write("3\n")
    return root


def runit_dirs(tmp, prog, n, name):
    root = os.path.join(tmp, name)
    for k in range(n):
        d = os.path.join(root, "prog%d" % k)
        os.makedirs(d)
        shutil.copy(prog, os.path.join(d, "run"))
    return root


def supervisord_conf(tmp, prog, n, name, sock):
    d = os.path.join(tmp, name)
    os.makedirs(d)
    conf = os.path.join(d, "supervisord.conf")
    env = 'environment=BENCH_SOCK="%s"\n' % sock if sock else ""
    with open(conf, "w") as f:
        f.write("[supervisord]\nnodaemon=true\nlogfile=%s/sd.log\npidfile=%s/sd.pid\n"
                "childlogdir=%s\n\n[program:prog]\ncommand=%s\nautorestart=true\nstartsecs=0\n"
                "startretries=1000000\nnumprocs=%d\nprocess_name=%%(program_name)s_%%(process_num)02d\n%s"
                % (d, d, d, prog, n, env))
    return conf


def proc_mem(pid):
    """(VmRSS, Pss) in bytes."""
    rss = pss = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def descendants_named(root, names):
    """pids under root (inclusive) whose comm is in names."""
    kids = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open("/proc/%s/stat" % e) as f:
                    st = f.read()
                comm = st[st.index("(") + 1:st.rindex(")")]
                ppid = int(st[st.rindex(")") + 2:].split()[1])
                kids.setdefault(ppid, []).append((int(e), comm))
            except (OSError, ValueError):
                pass
    out, todo = [], [root]
    try:
        with open("/proc/%d/comm" % root) as f:
            if f.read().strip() in names:
                out.append(root)
    except OSError:
        pass
    while todo:
        for pid, comm in kids.get(todo.pop(), []):
            todo.append(pid)
            if comm in names:
                out.append(pid)
    return out


def count_prog(root, prog_names):
    return len(descendants_named(root, prog_names))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    bin_dir, prog, tmp, out_path = sys.argv[1:]
    procs = Procs()
    rows = []
    log = open(os.path.join(tmp, "bench-restart.log"), "ab")
    sockpath = os.path.join(tmp, "r.sock")
    rep = Reports(sockpath)
    base_env = dict(os.environ, BENCH_SOCK=sockpath, SVC_LOG_LEVEL="warn")
    base_env.pop("NOTIFY_SOCKET", None)
    try:
        reg_addr = "ipc://%s/registry" % tmp
        reg = procs.start([os.path.join(bin_dir, "registryd"), "--address", reg_addr], log,
                          env=dict(base_env, SVC_REGISTRY_ADDRESS=reg_addr))
        base_env["SVC_REGISTRY_ADDRESS"] = reg_addr
        results = {}
        results["floor"] = floor_loop(prog, base_env, rep)

        # The four run side by side, each with its own report socket: kills
        # are SETTLE apart, so they rarely overlap, and the run takes a
        # quarter of the time.
        socks = {n: Reports(os.path.join(tmp, n + ".sock")) for n in PEERS}
        env = {n: dict(base_env, BENCH_SOCK=socks[n].path) for n in PEERS}
        started = {
            "svc": procs.start([os.path.join(bin_dir, "supervisor")] + svc_setup(tmp, prog, 1, "svc"),
                               log, env=env["svc"]),
            "s6-supervise": procs.start(["s6-supervise", os.path.join(s6_dirs(tmp, prog, 1, "s6"), "prog0")],
                                        log, env=dict(env["s6-supervise"], BENCH_S6_FD="3")),
            "runsv": procs.start(["runsv", os.path.join(runit_dirs(tmp, prog, 1, "runit"), "prog0")], log,
                                 env=env["runsv"]),
            "supervisord": procs.start(["supervisord", "-c", supervisord_conf(
                tmp, prog, 1, "sd", socks["supervisord"].path)], log, env=env["supervisord"]),
        }
        errors = []

        def run(n):
            try:
                results[n] = kill_loop(socks[n])
            except Exception as e:   # reported below, after every thread ended
                errors.append("%s: %r" % (n, e))

        threads = [threading.Thread(target=run, args=(n,)) for n in PEERS]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for n in PEERS:
            procs.stop(started[n])
        if errors:
            raise RuntimeError("; ".join(errors))

        prog_name = os.path.basename(prog)[:15]
        print("restart after SIGKILL until the new process is ready: %d kills each, %.0f ms apart"
              % (KILLS, SETTLE * 1000))
        print("  floor = posix_spawn of the same program until it reports, no supervisor")
        print()
        print("%-14s %10s %10s %14s %14s" % ("supervisor", "median ms", "p99 ms", "median/floor", "median/svc"))
        floor_med = percentile(results["floor"], 0.5)
        svc_med = percentile(results["svc"], 0.5)
        for name in ("floor", "svc", "s6-supervise", "runsv", "supervisord"):
            xs = results[name]
            med, p99 = percentile(xs, 0.5), percentile(xs, 0.99)
            print("%-14s %10.3f %10.3f %14.2f %14.2f" % (name, med, p99, med / floor_med, med / svc_med))
            rows.append({"bench": "restart-%s-p50" % name, "value": round(med, 3), "unit": "ms",
                         "against": "floor", "ratio": round(med / floor_med, 2)})
            rows.append({"bench": "restart-%s-p99" % name, "value": round(p99, 3), "unit": "ms",
                         "against": "floor", "ratio": round(p99 / percentile(results["floor"], 0.99), 2)})

        # Footprint with 50 instances.
        rep.drain()
        quiet = dict(base_env)
        quiet.pop("BENCH_SOCK")
        foot = {}

        def settle(root, names, want, what):
            end = time.monotonic() + 30
            while count_prog(root, names) < want:
                if time.monotonic() > end:
                    raise RuntimeError("%s: %d of %d instances started" % (what, count_prog(root, names), want))
                time.sleep(0.1)
            time.sleep(1.0)

        p = procs.start([os.path.join(bin_dir, "supervisor")] + svc_setup(tmp, prog, FOOT_N, "svc50"), log,
                        env=quiet)
        settle(p.pid, {prog_name}, FOOT_N, "svc")
        foot["svc"] = proc_mem(p.pid)
        t_cpu = cpu_seconds(p.pid)
        time.sleep(IDLE)
        idle_cpu = cpu_seconds(p.pid) - t_cpu
        procs.stop(p)

        d = s6_dirs(tmp, prog, FOOT_N, "s650")
        p = procs.start(["s6-svscan", d], log, env=dict(quiet, BENCH_S6_FD="3"))
        settle(p.pid, {"run"}, FOOT_N, "s6")
        pids = descendants_named(p.pid, {"s6-svscan", "s6-supervise"})
        foot["s6-supervise"] = tuple(sum(proc_mem(x)[k] for x in pids) for k in (0, 1))
        procs.stop(p)

        d = runit_dirs(tmp, prog, FOOT_N, "runit50")
        p = procs.start(["runsvdir", d], log, env=quiet)
        settle(p.pid, {"run"}, FOOT_N, "runit")
        pids = descendants_named(p.pid, {"runsvdir", "runsv"})
        foot["runsv"] = tuple(sum(proc_mem(x)[k] for x in pids) for k in (0, 1))
        procs.stop(p)   # SIGTERM to the process group: runsvdir, every runsv and program

        conf = supervisord_conf(tmp, prog, FOOT_N, "sd50", None)
        p = procs.start(["supervisord", "-c", conf], log, env=quiet)
        settle(p.pid, {prog_name}, FOOT_N, "supervisord")
        foot["supervisord"] = proc_mem(p.pid)
        procs.stop(p)
        procs.stop(reg)

        print()
        print("memory of the supervisor process(es) with %d instances" % FOOT_N)
        print("%-14s %10s %10s %12s" % ("supervisor", "RSS MiB", "PSS MiB", "PSS/svc"))
        for name in ("svc", "s6-supervise", "runsv", "supervisord"):
            rss, pss = foot[name]
            print("%-14s %10.2f %10.2f %12.2f" % (name, rss / 2**20, pss / 2**20, pss / foot["svc"][1]))
            rows.append({"bench": "footprint-%s-rss" % name, "value": round(rss / 2**20, 2), "unit": "MiB",
                         "against": "svc", "ratio": round(rss / foot["svc"][0], 2)})
            rows.append({"bench": "footprint-%s-pss" % name, "value": round(pss / 2**20, 2), "unit": "MiB",
                         "against": "svc", "ratio": round(pss / foot["svc"][1], 2)})
        print()
        print("svc supervisor CPU time over %.0f s idle with %d instances: %.3f s (%.4f%% of one core)"
              % (IDLE, FOOT_N, idle_cpu, 100 * idle_cpu / IDLE))
        rows.append({"bench": "svc-supervisor-idle-cpu", "value": round(idle_cpu, 3), "unit": "s",
                     "against": "%.0f s wall" % IDLE, "ratio": round(idle_cpu / IDLE, 5)})
    finally:
        procs.stop_all()
        log.close()
    with open(out_path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
