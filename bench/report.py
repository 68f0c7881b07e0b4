#!/usr/bin/python3
"""bench/report.py OUT RUN.jsonl... — the `make bench` table from the runs of bench/run.sh.

Each RUN file, named r<round>-<n>.jsonl, holds the JSON result lines of one
bench run (bench/measure.h), and a line {"server_cpu_s": S}: the CPU time
the servers used during the run, which divided by the calls answered
(warm-up included, "answers") gives the server's CPU per call — far
steadier than rates on a loaded machine.  Per client process a rate row
"<name>.<transport>" (calls/s, msgs/s, ...) and its "<name>-p50" /
"<name>-p99" latency rows (us), each with "in_flight".  A run of several
client processes at once holds one set per process: their rates and
windows add up, p50 is the median of theirs and p99 the worst.

A table row is (name, transport, in flight, processes).  Its value is the
median over rounds.  Its ratios are medians over rounds of value / the
value of the row it is compared with (COMPARE) in the same round, at the
same transport and the same total in flight: runs made back to back, while
the machine ran at the same speed.  Writes OUT as one JSON object per row
and prints the table and the goals (GOALS) on stdout.
"""
import json
import os
import re
import sys

# Row name prefix -> (floor, peer): the rows it is compared with (None: none).
# The longest matching prefix wins.  Add a line per new kind of benchmark.
COMPARE = {
    "svc-unary": ("raw-zmq", "grpc-unary"),
}

# (row name, in flight, processes, what, threshold): the goals.
# what: "rate" (at least), "floor" / "peer" (ratio at least).
GOALS = [(name, 64, 1, what, want)
         for name in ("svc-unary-pb", "svc-unary-pb-wire")
         for what, want in (("rate", 100000), ("floor", 0.7), ("peer", 1.0))]

_NAME = re.compile(r"^(?P<name>.+?)(?P<q>-p50|-p99)?\.(?P<transport>[a-z0-9]+)$")


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def _round_of(path):
    m = re.match(r"r(\d+)-(\d+)", os.path.basename(path))
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def load_run(path):
    """One run file -> {(name, transport, in_flight, procs): {rate, unit, p50, p99, note}}."""
    sets = {}
    cpu = None
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if "server_cpu_s" in r:
                cpu = r["server_cpu_s"]
                continue
            m = _NAME.match(r["bench"])
            if not m:
                continue
            key = (m.group("name"), m.group("transport"))
            s = sets.setdefault(key, {"rate": [], "in_flight": [], "p50": [], "p99": [],
                                      "answers": 0, "unit": None, "note": None})
            if m.group("q") == "-p50":
                s["p50"].append(r["value"])
            elif m.group("q") == "-p99":
                s["p99"].append(r["value"])
            else:
                s["rate"].append(r["value"])
                s["in_flight"].append(int(r.get("in_flight", 1)))
                s["answers"] += int(r.get("answers", 0))
                s["unit"] = r["unit"]
                s["note"] = r.get("note")
    out = {}
    for (name, transport), s in sets.items():
        if not s["rate"]:
            continue
        key = (name, transport, sum(s["in_flight"]), len(s["rate"]))
        out[key] = {"rate": sum(s["rate"]), "unit": s["unit"], "note": s["note"],
                    "p50": _median(s["p50"]) if s["p50"] else None,
                    "p99": max(s["p99"]) if s["p99"] else None,
                    "cpu_us": cpu * 1e6 / s["answers"] if cpu is not None and s["answers"]
                    and len(sets) == 1 else None}
    return out


def _compare_of(name):
    best = None
    for prefix, pair in COMPARE.items():
        if name.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, pair)
    return best[1] if best else (None, None)


def summarize(paths):
    """Rows in first-seen order, with medians and same-round ratios."""
    rounds = {}     # round -> {key: run}
    order = []
    for p in sorted(paths, key=_round_of):
        rnd = _round_of(p)[0]
        for key, run in load_run(p).items():
            rounds.setdefault(rnd, {})[key] = run
            if key not in order:
                order.append(key)
    rows = []
    for key in order:
        name, transport, in_flight, procs = key
        floor, peer = _compare_of(name)
        runs = [r[key] for r in rounds.values() if key in r]
        row = {"bench": name, "transport": transport, "in_flight": in_flight, "procs": procs,
               "value": round(_median([x["rate"] for x in runs]), 1), "unit": runs[0]["unit"],
               "runs": [round(x["rate"], 1) for x in runs], "note": runs[0]["note"]}
        for q in ("p50", "p99"):
            v = [x[q] for x in runs if x[q] is not None]
            row[q + "_us"] = round(_median(v), 1) if v else None
        v = [x["cpu_us"] for x in runs if x["cpu_us"] is not None]
        row["server_cpu_us"] = round(_median(v), 2) if v else None
        for what, other in (("floor", floor), ("peer", peer)):
            okey = (other, transport, in_flight, 1)
            ratios = [r[key]["rate"] / r[okey]["rate"] for r in rounds.values()
                      if other and key in r and okey in r and r[okey]["rate"] > 0]
            row[what] = other if ratios else None
            row[what + "_ratio"] = round(_median(ratios), 3) if ratios else None
        rows.append(row)
    return rows


def _fmt(v, f):
    return "-" if v is None else f % v


def table(rows):
    head = ("bench", "transport", "in flight", "procs", "rate", "unit", "p50 us", "p99 us",
            "x floor", "x peer", "srv cpu us")
    lines = [(r["bench"], r["transport"], str(r["in_flight"]), str(r["procs"]),
              "{:,.0f}".format(r["value"]), r["unit"], _fmt(r["p50_us"], "%.0f"),
              _fmt(r["p99_us"], "%.0f"), _fmt(r["floor_ratio"], "%.3f"),
              _fmt(r["peer_ratio"], "%.3f"), _fmt(r["server_cpu_us"], "%.1f")) for r in rows]
    widths = [max(len(x[i]) for x in [head] + lines) for i in range(len(head))]
    left = (0, 1, 5)
    fmt = "  ".join("%%-%ds" % w if i in left else "%%%ds" % w for i, w in enumerate(widths))
    print(fmt % head)
    print(fmt % tuple("-" * w for w in widths))
    for x in lines:
        print(fmt % x)


def goals(rows):
    for name, in_flight, procs, what, want in GOALS:
        for r in rows:
            if (r["bench"], r["in_flight"], r["procs"]) != (name, in_flight, procs):
                continue
            if what == "rate":
                have, text = r["value"], "{:,.0f} {}".format(r["value"], r["unit"])
                goal = "{:,.0f}".format(want)
            else:
                have = r[what + "_ratio"]
                if have is None:
                    print("goal %s.%s %d in flight: x %s - (no %s row in this run)"
                          % (name, r["transport"], in_flight, what, what))
                    continue
                text, goal = "%.3f of %s" % (have, r[what]), "%.2f" % want
            print("goal %s.%s %d in flight, %s >= %s: %s  %s"
                  % (name, r["transport"], in_flight, what, goal, text,
                     "met" if have >= want else "NOT met"))


def main():
    if len(sys.argv) < 3:
        sys.stderr.write("usage: report.py OUT RUN.jsonl...\n")
        return 64
    rows = summarize(sys.argv[2:])
    out = sys.argv[1]
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".tmp", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    os.replace(out + ".tmp", out)

    table(rows)
    print()
    print("x floor / x peer: rate over the floor / peer row of the same round, transport and")
    print("total in flight (COMPARE in bench/report.py), median over rounds; latencies per call.")
    print("srv cpu us: CPU time (user + system) the servers used per call answered, median over")
    print("rounds: the server's cost, which the machine's load disturbs far less than the rates.")
    for r in rows:
        if len(r["runs"]) > 1:
            print("  %-22s %-3s %4d x%d  each round: %s" % (
                r["bench"], r["transport"], r["in_flight"], r["procs"],
                "  ".join("{:,.0f}".format(v) for v in r["runs"])))
    print()
    goals(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
