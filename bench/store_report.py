#!/usr/bin/python3
"""bench/store_report.py ROWS.jsonl — the store bench as a table with ratios.

ROWS holds {"bench","clients","value","unit"} lines (and {"note"} lines)
from one run of bench/store.sh.  Prints every row, then stored's ratios
against the floor (raw LMDB) and the peers measured in the same run, with
the goals of issue 6: reads >= 1.0x Redis GET at 50 clients, durable
writes >= 1.0x Redis appendfsync always, well ahead of etcd.
"""
import json
import sys

# (label, stored row, against row, goal or None)
RATIOS = [
    ("stored write / raw LMDB 1 put per commit", ("stored-write", 1), ("lmdb-put-commit1", 1), None),
    ("stored write x50 / raw LMDB 50 puts per commit", ("stored-write", 50), ("lmdb-put-commit50", 1), None),
    ("stored read / raw LMDB get", ("stored-read", 1), ("lmdb-get", 1), None),
    ("stored write / redis appendfsync always, 1 client", ("stored-write", 1), ("redis-set-always", 1), 1.0),
    ("stored write / redis appendfsync always, 50 clients", ("stored-write", 50), ("redis-set-always", 50), 1.0),
    ("stored write / redis appendfsync everysec, 1 client", ("stored-write", 1), ("redis-set-everysec", 1), None),
    ("stored write / redis appendfsync everysec, 50 clients", ("stored-write", 50), ("redis-set-everysec", 50), None),
    ("stored read / redis GET, 1 client", ("stored-read", 1), ("redis-get", 1), None),
    ("stored read / redis GET, 50 clients", ("stored-read", 50), ("redis-get", 50), 1.0),
    ("stored write / etcd put, 1 client", ("stored-write", 1), ("etcd-put", 1), 1.0),
    ("stored write / etcd put, 50 clients", ("stored-write", 50), ("etcd-put", 50), 1.0),
    ("stored read / etcd get, 1 client", ("stored-read", 1), ("etcd-get", 1), 1.0),
    ("stored read / etcd get, 50 clients", ("stored-read", 50), ("etcd-get", 50), 1.0),
]


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: store_report.py ROWS.jsonl\n")
        return 64
    rows, notes = {}, []
    order = []
    with open(sys.argv[1]) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if "note" in r:
                notes.append(r["note"])
                continue
            k = (r["bench"], r["clients"])
            rows[k] = r["value"]
            order.append(k)
    w = max([len(b) for b, _ in order] + [5])
    print("%-*s  %7s  %12s" % (w, "bench", "clients", "ops/s"))
    print("%s  %s  %s" % ("-" * w, "-" * 7, "-" * 12))
    for k in order:
        print("%-*s  %7d  %12.1f" % (w, k[0], k[1], rows[k]))
    print()
    lw = max(len(r[0]) for r in RATIOS)
    for label, a, b, goal in RATIOS:
        if a not in rows or b not in rows or not rows[b]:
            continue
        ratio = rows[a] / rows[b]
        verdict = "" if goal is None else ("   meets the goal of %.1fx" % goal if ratio >= goal
                                           else "   below the goal of %.1fx" % goal)
        print("%-*s  %7.3f%s" % (lw, label, ratio, verdict))
    for n in notes:
        print("note: " + n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
