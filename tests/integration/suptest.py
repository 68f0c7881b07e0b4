"""A program for the supervisor tests to supervise (not a test module).

suptest.py [--record FILE] [--ready-after S] [--foreign-ready] [--ignore-term]
           [--exit-after S] [--code N] [--mark TEXT]

Appends "<event> <pid> <time.time()>" lines to FILE: start, ready (written
just before READY=1 is sent), term (on SIGTERM).  --foreign-ready sends
READY=1 from a forked child instead of this process.  --ignore-term records
SIGTERM and keeps running.  --mark only makes the command line recognisable.
"""
import argparse
import os
import signal
import socket
import sys
import time


def record(path, event):
    if path:
        with open(path, "a") as f:
            f.write("%s %d %.6f\n" % (event, os.getpid(), time.time()))


def notify(msg):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(msg.encode(), addr)
    s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--record")
    ap.add_argument("--ready-after", type=float, default=-1)
    ap.add_argument("--foreign-ready", action="store_true")
    ap.add_argument("--ignore-term", action="store_true")
    ap.add_argument("--exit-after", type=float, default=-1)
    ap.add_argument("--code", type=int, default=0)
    ap.add_argument("--mark", default="")
    a = ap.parse_args()

    def on_term(sig, frame):
        record(a.record, "term")
        if not a.ignore_term:
            sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    record(a.record, "start")
    if a.foreign_ready:
        pid = os.fork()
        if pid == 0:
            notify("READY=1")
            os._exit(0)
        os.waitpid(pid, 0)
    elif a.ready_after >= 0:
        time.sleep(a.ready_after)
        record(a.record, "ready")
        notify("READY=1\nSTATUS=suptest ready")
    end = time.monotonic() + a.exit_after if a.exit_after >= 0 else None
    while end is None or time.monotonic() < end:
        time.sleep(0.05 if end else 3600)
    sys.exit(a.code)


if __name__ == "__main__":
    main()
