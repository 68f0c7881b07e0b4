#!/usr/bin/python3
"""bench/report.py OUT RUN.jsonl... — medians of the runs, ratios of runs made back to back.

Each RUN file (run-N.jsonl, N in the order the runs were made) holds the
JSON lines of one svc-bench client run: a calls/s row "<bench>.<transport>"
and its "-p50"/"-p99" latency rows.  run.sh alternates raw and svc runs in
rounds.  For every row, value is the median over its runs, and ratio the
median over rounds of value / the raw-zmq row of the same suffix and
transport measured just before it in the same round: this machine's speed
drifts between runs, so only runs made back to back compare fairly.  For
calls/s higher is better; for the latency rows (us) lower is better.
Writes OUT as one {"bench","value","unit","against","ratio"} object per
line and prints a table on stdout.
"""
import json
import os
import sys

BASELINE = {"svc-unary": "raw-zmq"}   # measured bench -> its baseline
VARIANTS = ("-inline",)               # svc-unary-inline[-p50] is compared with raw-zmq[-p50]
GOAL = 0.8                            # svc calls/s over raw, from the issue


def _run_number(path):
    digits = "".join(ch for ch in os.path.basename(path) if ch.isdigit())
    return int(digits) if digits else 0


def load_runs(paths):
    """Returns the runs in the order they ran: [(rate bench name, rows)]."""
    runs = []
    for p in sorted(paths, key=_run_number):
        with open(p) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        rate = next(r for r in rows if r["unit"] == "calls/s")
        runs.append((rate["bench"], rows))
    return runs


def _baseline_of(name):
    """The raw bench a measured row is compared with, or None."""
    base, _, transport = name.rpartition(".")
    for svc, raw in BASELINE.items():
        if base.startswith(svc):
            rest = base[len(svc):]
            for v in VARIANTS:
                if rest.startswith(v):
                    rest = rest[len(v):]
            return raw + rest + "." + transport
    return None


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def summarize(runs):
    """
    One result per row name.  value: the median over the runs.  ratio: the
    median over rounds of value / the baseline run of the same round (the
    latest baseline run before it), so that a ratio compares runs made back
    to back, while the machine ran at the same speed.
    """
    values, ratios, order = {}, {}, []
    last = {}   # baseline row name -> its latest value
    for name, rows in runs:
        for r in rows:
            if r["bench"] not in values:
                order.append(r["bench"])
                values[r["bench"]] = []
                ratios[r["bench"]] = []
            values[r["bench"]].append((r["value"], r["unit"]))
            base = _baseline_of(r["bench"])
            if base is None:
                last[r["bench"]] = r["value"]
            elif last.get(base):
                ratios[r["bench"]].append(r["value"] / last[base])
    out = []
    for b in order:
        base = _baseline_of(b)
        out.append({"bench": b, "value": round(_median([v for v, _ in values[b]]), 1),
                    "unit": values[b][0][1],
                    "against": base if base in values else None,
                    "ratio": round(_median(ratios[b]), 3) if ratios[b] else None})
    return out, values, ratios


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
    results, values, ratios = summarize(runs)
    out = sys.argv[1]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".tmp", "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    os.replace(out + ".tmp", out)

    table(results)
    print()
    for r in results:
        if r["unit"] != "calls/s":
            continue
        runs_txt = "  ".join("%.0f" % v for v, _ in values[r["bench"]])
        rat_txt = "  ".join("%.3f" % x for x in ratios[r["bench"]])
        print("%-22s calls/s of each run: %s%s" % (r["bench"], runs_txt,
              ("   ratio of each round: " + rat_txt) if rat_txt else ""))
    for r in results:
        if r["unit"] == "calls/s" and r["ratio"] is not None:
            verdict = "meets" if r["ratio"] >= GOAL else "below"
            print("%s: svc/raw = %.3f  (%s the goal of %.2f)" % (r["bench"], r["ratio"],
                                                                 verdict, GOAL))
    print("ratio = value / against; for the us (latency) rows lower is better.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
