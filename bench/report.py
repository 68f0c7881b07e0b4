#!/usr/bin/python3
"""bench/report.py OUT RUN.jsonl... — pick each bench's best run, pair it with its baseline.

Each RUN file holds the JSON lines of one svc-bench client run: a calls/s
row "<bench>.<transport>" and its "-p50"/"-p99" latency rows.  When a bench
ran several times, the run with the most calls/s is kept, with its own
latency rows (noise on a shared machine only ever slows a run down).
Each svc-unary* row is then compared with the raw-zmq* row of the same
suffix and transport: against = that row's bench name, ratio = value /
baseline value (for calls/s higher is better; for latency rows in us lower
is better).  Writes OUT as one {"bench","value","unit","against","ratio"}
object per line and prints a table on stdout.
"""
import json
import os
import sys

BASELINE = {"svc-unary": "raw-zmq"}   # measured bench -> its baseline
VARIANTS = ("-inline",)               # svc-unary-inline[-p50] is compared with raw-zmq[-p50]
GOAL = 0.8                            # svc calls/s over raw, from the issue


def load_runs(paths):
    """Returns {rate bench name: [rows of each run]} in order of first appearance."""
    runs = {}
    for p in paths:
        with open(p) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        rate = next(r for r in rows if r["unit"] == "calls/s")
        runs.setdefault(rate["bench"], []).append(rows)
    return runs


def best(runs):
    rows = []
    for name, all_rows in runs.items():
        rate_of = lambda rs: next(r["value"] for r in rs if r["bench"] == name)
        rows += max(all_rows, key=rate_of)
    return rows


def pair(rows):
    by_name = {r["bench"]: r for r in rows}
    out = []
    for r in rows:
        base, _, transport = r["bench"].rpartition(".")
        against = ratio = None
        for svc, raw in BASELINE.items():
            if base.startswith(svc):
                rest = base[len(svc):]
                for v in VARIANTS:
                    if rest.startswith(v):
                        rest = rest[len(v):]
                cand = raw + rest + "." + transport
                if cand in by_name and by_name[cand]["value"]:
                    against = cand
                    ratio = round(r["value"] / by_name[cand]["value"], 3)
        out.append({"bench": r["bench"], "value": r["value"], "unit": r["unit"],
                    "against": against, "ratio": ratio})
    return out


def table(results):
    head = ("bench", "transport", "value", "unit", "against", "ratio")
    lines = []
    for r in results:
        base, _, transport = r["bench"].rpartition(".")
        lines.append((base, transport, "%.1f" % r["value"], r["unit"],
                      r["against"] or "-", "-" if r["ratio"] is None else "%.3f" % r["ratio"]))
    widths = [max(len(x[i]) for x in [head] + lines) for i in range(len(head))]
    fmt = "  ".join("%%-%ds" % w if i in (0, 1, 3, 4) else "%%%ds" % w
                    for i, w in enumerate(widths))
    print(fmt % head)
    print(fmt % tuple("-" * w for w in widths))
    for x in lines:
        print(fmt % x)


def main():
    if len(sys.argv) < 3:
        sys.stderr.write("usage: report.py OUT RUN.jsonl...\n")
        return 64
    runs = load_runs(sys.argv[2:])
    results = pair(best(runs))
    out = sys.argv[1]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".tmp", "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    os.replace(out + ".tmp", out)

    table(results)
    print()
    for name, all_rows in runs.items():
        vals = [next(r["value"] for r in rs if r["bench"] == name) for rs in all_rows]
        print("%-16s calls/s of each run: %s" % (name, "  ".join("%.0f" % v for v in vals)))
    for r in results:
        if r["unit"] == "calls/s" and r["ratio"] is not None:
            verdict = "meets" if r["ratio"] >= GOAL else "below"
            print("%s: svc/raw = %.3f  (%s the goal of %.2f)" % (r["bench"], r["ratio"],
                                                                 verdict, GOAL))
    print("ratio = value / against; for the us (latency) rows lower is better.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
