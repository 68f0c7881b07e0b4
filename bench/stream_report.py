#!/usr/bin/python3
"""bench/stream_report.py OUT STREAM.jsonl... — the stream rows of `make bench`.

Each STREAM file (stream-N.jsonl, N in run order) holds one svc-bench run:
raw-oneway.<t> (bare ZeroMQ PUSH/PULL, the floor), svc-stream-down.<t>
(server stream) or svc-stream-up.<t> (client stream), all in msgs/s.
run.sh runs them in rounds, raw first; value is the median over runs and
ratio the median over rounds of value / the raw-oneway run of the same
transport just before it (the machine's speed drifts).  Appends one
{"bench","value","unit","against","ratio"} object per row to OUT and prints
a table, with the issue's goal of 500,000 msgs/s one way.
"""
import json
import os
import sys

GOAL = 500000.0


def _run_number(path):
    digits = "".join(ch for ch in os.path.basename(path) if ch.isdigit())
    return int(digits) if digits else 0


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def main():
    if len(sys.argv) < 3:
        sys.stderr.write("usage: stream_report.py OUT STREAM.jsonl...\n")
        return 64
    values, ratios, order, last = {}, {}, [], {}
    for p in sorted(sys.argv[2:], key=_run_number):
        with open(p) as f:
            for line in f:
                if not line.strip():
                    continue
                r = json.loads(line)
                b = r["bench"]
                if b not in values:
                    order.append(b)
                    values[b], ratios[b] = [], []
                values[b].append(r["value"])
                base, _, transport = b.rpartition(".")
                if base == "raw-oneway":
                    last[transport] = r["value"]
                elif last.get(transport):
                    ratios[b].append(r["value"] / last[transport])
    results = []
    for b in order:
        transport = b.rpartition(".")[2]
        raw = "raw-oneway." + transport
        results.append({"bench": b, "value": round(_median(values[b]), 1), "unit": "msgs/s",
                        "against": raw if raw in values and b != raw else None,
                        "ratio": round(_median(ratios[b]), 3) if ratios[b] else None})
    with open(sys.argv[1], "a") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    head = ("bench", "transport", "msgs/s", "against", "ratio", "runs")
    lines = [(r["bench"].rpartition(".")[0], r["bench"].rpartition(".")[2], "%.0f" % r["value"],
              r["against"] or "-", "-" if r["ratio"] is None else "%.3f" % r["ratio"],
              " ".join("%.0f" % v for v in values[r["bench"]])) for r in results]
    widths = [max(len(x[i]) for x in [head] + lines) for i in range(len(head))]
    fmt = "  ".join("%%-%ds" % w if i in (0, 1, 3, 5) else "%%%ds" % w
                    for i, w in enumerate(widths))
    print(fmt % head)
    print(fmt % tuple("-" * w for w in widths))
    for x in lines:
        print(fmt % x)
    for r in results:
        if r["bench"].startswith("svc-stream"):
            print("%s: %.0f msgs/s (%s the goal of %.0f)" % (
                r["bench"], r["value"], "meets" if r["value"] >= GOAL else "below", GOAL))
    return 0


if __name__ == "__main__":
    sys.exit(main())
