#!/usr/bin/python3
"""bench/store_report.py ROWS.jsonl — the store bench as a table with ratios.

ROWS holds {"bench","clients","value","unit","round"} lines (and {"note"}
lines) from one run of bench/store.sh.  Prints every row (the median over
rounds, and each round's figure), then stored's ratios (the median over
rounds of the ratio within each round, runs made minutes apart at most)
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
    ("stored write, 50 in flight from one thread / redis always, 50 clients", ("stored-write-async", 50), ("redis-set-always", 50), 1.0),
    ("stored write / redis appendfsync everysec, 1 client", ("stored-write", 1), ("redis-set-everysec", 1), None),
    ("stored write / redis appendfsync everysec, 50 clients", ("stored-write", 50), ("redis-set-everysec", 50), None),
    ("stored read / redis GET, 1 client", ("stored-read", 1), ("redis-get", 1), None),
    ("stored read / redis GET, 50 clients", ("stored-read", 50), ("redis-get", 50), 1.0),
    ("stored read, 50 in flight from one thread / redis GET, 50 clients", ("stored-read-async", 50), ("redis-get", 50), 1.0),
    ("stored write / etcd put, 1 client", ("stored-write", 1), ("etcd-put", 1), 1.0),
    ("stored write / etcd put, 50 clients", ("stored-write", 50), ("etcd-put", 50), 1.0),
    ("stored read / etcd get, 1 client", ("stored-read", 1), ("etcd-get", 1), 1.0),
    ("stored read / etcd get, 50 clients", ("stored-read", 50), ("etcd-get", 50), 1.0),
]


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: store_report.py ROWS.jsonl\n")
        return 64
    runs, notes, order = {}, [], []   # (bench, clients) -> {round: value}
    with open(sys.argv[1]) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if "note" in r:
                if r["note"] not in notes:
                    notes.append(r["note"])
                continue
            k = (r["bench"], r["clients"])
            if k not in runs:
                runs[k] = {}
                order.append(k)
            runs[k][r.get("round", 1)] = r["value"]
    rows = {k: _median(list(v.values())) for k, v in runs.items()}
    w = max([len(b) for b, _ in order] + [5])
    print("%-*s  %7s  %12s  %s" % (w, "bench", "clients", "ops/s", "each round"))
    print("%s  %s  %s  %s" % ("-" * w, "-" * 7, "-" * 12, "-" * 10))
    for k in order:
        each = "  ".join("%.0f" % runs[k][r] for r in sorted(runs[k]))
        print("%-*s  %7d  %12.1f  %s" % (w, k[0], k[1], rows[k], each))
    print()
    lw = max(len(r[0]) for r in RATIOS)
    for label, a, b, goal in RATIOS:
        if a not in runs or b not in runs:
            continue
        per_round = [runs[a][r] / runs[b][r] for r in runs[a] if r in runs[b] and runs[b][r]]
        if not per_round:
            continue
        ratio = _median(per_round)
        verdict = "" if goal is None else ("   meets the goal of %.1fx" % goal if ratio >= goal
                                           else "   below the goal of %.1fx" % goal)
        print("%-*s  %7.3f%s" % (lw, label, ratio, verdict))
    for n in notes:
        print("note: " + n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
