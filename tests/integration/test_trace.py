"""Middleware and observability (issue 3): wrappers, trace ids across hops,
deadline propagation, per-endpoint stats.

svc-testsvc's Test.Chain calls Test.Chain of the next service named in
"hops" and answers what every hop saw; its wrappers (server s1, s2; client
c1, c2) record the order they ran in (tests/testsvc.c).
"""
import json
import re
import threading
import time

import pyclient
from harness import SANITIZED, check, wait_until

HOPS = ["hop1", "hop2", "hop3"]


def three_hops(p):
    """registryd and three testsvc nodes named hop1..hop3, logging every request
    (hop1, hop2 told so by the environment, hop3 by the flag)."""
    p.start_registry()
    procs = {h: p.start_service("svc-testsvc", "--name", h, env={"SVC_LOG_REQUESTS": "1"},
                                wait_name=h)
             for h in HOPS[:2]}
    procs["hop3"] = p.start_service("svc-testsvc", "--name", "hop3", "--log-requests",
                                    wait_name="hop3")
    return procs


def trace_of(r):
    m = re.search(r"^trace=([0-9A-Za-z_-]+)$", r.err, re.M)
    check(m, "svcctl call --trace printed no trace=ID line on stderr: %r" % r.err)
    return m.group(1)


def log_lines(proc, *needles):
    return [l for l in proc.output().splitlines() if all(n in l for n in needles)]


def wait_log(proc, *needles, timeout=5):
    return wait_until(lambda: log_lines(proc, *needles), timeout,
                      what="%s to log a line with %r" % (proc.name, needles))


def endpoint_stats(p, service, endpoint):
    r = p.ctl("-o", "json", "stats", service)
    check(r.code == 0, "stats %s: %r" % (service, r))
    nodes = r.json()
    check(len(nodes) == 1, "one node expected: %r" % nodes)
    eps = {e["name"]: e for e in nodes[0]["endpoints"]}
    check(endpoint in eps, "no %s in endpoints %r" % (endpoint, list(eps)))
    return eps[endpoint]


def test_one_trace_id_through_three_services(p):
    procs = three_hops(p)
    r = p.ctl("call", "--trace", "hop1", "Test.Chain", '{"hops":["hop2","hop3"]}')
    check(r.code == 0, "chain call failed: %r" % r)
    trace = trace_of(r)
    check(re.fullmatch(r"[0-9a-f]{32}", trace), "svcctl made trace id %r" % trace)
    hops = r.json()["hops"]          # stdout is only the answer
    check([h["service"] for h in hops] == HOPS, "hops %r" % hops)
    check(all(h["trace"] == trace for h in hops), "trace ids along the way: %r" % hops)
    spans = [h["span"] for h in hops]
    check(len(set(spans)) == 3 and all(re.fullmatch(r"[0-9a-f]{16}", s) for s in spans),
          "each hop needs its own span id: %r" % spans)
    check(hops[1]["parent"] == spans[0] and hops[2]["parent"] == spans[1],
          "each hop's parent is the previous hop's span: %r" % hops)
    for i, h in enumerate(HOPS):
        # The request log line and the handler's own line both carry the ids.
        wait_log(procs[h], 'msg="request" endpoint=Test.Chain code=200',
                 "trace=%s span=%s" % (trace, spans[i]))
        wait_log(procs[h], 'msg="chain hop"', "trace=%s span=%s" % (trace, spans[i]))
    # The onward calls are logged by the caller with the callee's span.
    wait_log(procs["hop1"], 'msg="call" service=hop2', "parent=%s" % spans[0],
             "trace=%s span=%s" % (trace, spans[1]))

    # A handler calling with svc_call on its own client continues the trace too.
    r = p.ctl("call", "hop1", "Test.Chain", '{"hops":["hop2","hop3"],"direct":true}')
    check(r.code == 0, "direct chain: %r" % r)
    hops = r.json()["hops"]
    check(len({h["trace"] for h in hops}) == 1 and hops[1]["parent"] == hops[0]["span"] and
          hops[2]["parent"] == hops[1]["span"], "direct calls keep the trace: %r" % hops)

    # A trace id given by the caller is kept, and --trace prints it.
    r = p.ctl("call", "--trace", "--metadata", "Micro-Trace-Id=abc123", "hop1", "Test.Chain",
              '{"hops":["hop2"]}')
    check(r.code == 0 and trace_of(r) == "abc123", "given trace id: %r" % r)
    check([h["trace"] for h in r.json()["hops"]] == ["abc123"] * 2, "kept: %r" % r.out)

    # A caller that sends no trace id (or a malformed one): the first server makes one.
    addr = p.nodes("hop1")[0]["address"]
    for meta in (None, {"Micro-Trace-Id": "bad id\"x", "Micro-Span-Id": "a b"}):
        kind, h, body = pyclient.call_json(addr, "hop1", "Test.Chain",
                                           {"hops": ["hop2", "hop3"]}, metadata=meta)
        check(kind == "RESPONSE", "direct call: %r %r" % (kind, h))
        traces = {x["trace"] for x in body["hops"]}
        check(len(traces) == 1 and re.fullmatch(r"[0-9a-f]{32}", traces.pop()),
              "server-made trace id should reach every hop: %r" % body)
        check(body["hops"][1]["parent"] == body["hops"][0]["span"] != "", "parent: %r" % body)
    check(not log_lines(procs["hop1"], "bad id"), "a malformed trace id reached the log")


def test_deadline_from_first_hop_ends_third_hops_work(p):
    procs = three_hops(p)
    # Onward through svc_ctx_call, and through a plain svc_call on the
    # handler's client: the deadline follows either way.
    for direct in ("false", "true"):
        t0 = time.monotonic()
        r = p.ctl("call", "--trace", "--timeout", "400", "hop1", "Test.Chain",
                  '{"hops":["hop2","hop3"],"ms":20000,"direct":%s}' % direct)
        elapsed = time.monotonic() - t0
        check(r.code == 1, "the call should fail: %r" % r)
        err = json.loads(r.err.strip().splitlines()[-1])
        check(err["code"] == 408, "edge should see 408: %r" % err)
        check(elapsed < 5, "408 took %.1fs for a 400 ms deadline" % elapsed)
        trace = trace_of(r)
        # The third hop got the remaining deadline, and its handler saw it
        # pass long before its 20 s of work were done.
        line = wait_log(procs["hop3"], 'msg="chain work"', "trace=" + trace)[0]
        left = int(re.search(r"remaining_ms=(-?\d+)", line).group(1))
        check(0 < left <= 400, "third hop should get what is left of 400 ms, got %d" % left)
        line = wait_log(procs["hop3"], 'msg="deadline passed, work stopped"', "trace=" + trace,
                        timeout=10)[0]
        worked = int(re.search(r"worked_ms=(\d+)", line).group(1))
        check(worked < 3000, "third hop worked %d ms past a 400 ms deadline" % worked)
        wait_log(procs["hop3"], 'msg="request" endpoint=Test.Chain code=408', "trace=" + trace)
        # The middle hop's onward call ended with the deadline too.
        wait_log(procs["hop2"], 'msg="request" endpoint=Test.Chain code=408', "trace=" + trace)


def test_wrappers_run_in_declared_order(p):
    procs = three_hops(p)
    r = p.ctl("call", "hop1", "Test.Chain", '{"hops":["hop2","hop3"]}')
    check(r.code == 0, "chain call failed: %r" % r)
    hops = r.json()["hops"]
    # On the way in: server s1 then s2 at each hop; between hops the caller's
    # client wrappers c1 then c2.  svcctl has no wrappers.
    inner = "s1,s2"
    want = [inner, inner + ",c1,c2," + inner, inner + ",c1,c2," + inner + ",c1,c2," + inner]
    check([h["order"] for h in hops] == want, "order in: %r" % [h["order"] for h in hops])
    # On the way out, innermost first.
    check([h["unwind"] for h in hops] == ["s2,s1"] * 3, "server unwind %r" % hops)
    check([h["call_unwind"] for h in hops] == ["c2,c1", "c2,c1", ""], "client unwind %r" % hops)

    # A server wrapper refuses: the handler never runs, the outer wrapper sees the error.
    r = p.ctl("call", "--trace", "--metadata", "Test-Deny=1", "hop1", "Test.Chain", "{}")
    check(r.code == 1 and '"code":403' in r.err and "refused by wrapper s2" in r.err,
          "server wrapper refusal: %r" % r)
    trace = trace_of(r)
    wait_log(procs["hop1"], 'msg="request" endpoint=Test.Chain code=403', "trace=" + trace)
    check(not log_lines(procs["hop1"], 'msg="chain hop"', "trace=" + trace),
          "the handler ran although a wrapper refused the request")

    # A client wrapper refuses: nothing is sent to hop2.
    before = int(endpoint_stats(p, "hop2", "Test.Chain")["requests"])
    r = p.ctl("call", "hop1", "Test.Chain", '{"hops":["hop2"],"deny_call":true}')
    check(r.code == 1 and '"code":401' in r.err and "refused by wrapper c2" in r.err,
          "client wrapper refusal: %r" % r)
    after = int(endpoint_stats(p, "hop2", "Test.Chain")["requests"])
    check(after == before, "a refused call reached hop2 (%d -> %d requests)" % (before, after))


def test_endpoint_stats_count_requests_errors_and_latency(p):
    p.start_registry()
    proc = p.start_service("svc-testsvc", wait_name="testsvc")
    addr = p.nodes("testsvc")[0]["address"]
    n_sleep = 4 if SANITIZED else 8
    for _ in range(n_sleep):
        kind, h, _ = pyclient.call_json(addr, "testsvc", "Test.Sleep", {"ms": 50})
        check(kind == "RESPONSE", "Test.Sleep: %r" % (h,))
    for key in ("nope1", "nope2", "nope3", "Micro-Trace-Id", "Micro-Span-Id"):
        pyclient.call_json(addr, "testsvc", "Test.Meta", {"key": key})

    # In flight: a slow call is counted while it runs.
    done = threading.Event()
    th = threading.Thread(target=lambda: (pyclient.call_json(addr, "testsvc", "Test.Sleep",
                                                             {"ms": 1500}, timeout_ms=10000),
                                          done.set()))
    th.start()
    try:
        wait_until(lambda: int(endpoint_stats(p, "testsvc", "Test.Sleep")["inflight"]) == 1, 5,
                   what="Test.Sleep to show 1 in flight")
    finally:
        th.join(15)
    check(done.is_set(), "the slow call did not finish")

    st = endpoint_stats(p, "testsvc", "Test.Sleep")
    check(int(st["requests"]) == n_sleep + 1 and int(st["errors"]) == 0 and st["inflight"] == 0,
          "Test.Sleep counters %r" % st)
    p50, p99 = st["p50_us"], st["p99_us"]
    # n_sleep calls of 50 ms and one of 1.5 s: the median is a 50 ms call.
    check(45000 <= p50 <= 250000, "p50 of 50 ms calls is %d us" % p50)
    check(p50 <= p99, "p50 %d > p99 %d" % (p50, p99))
    check(1400000 <= p99 <= 5000000, "p99 should be the 1.5 s call: %d us" % p99)
    st = endpoint_stats(p, "testsvc", "Test.Meta")
    # Test.Meta answers 404 for a key it was not sent; pyclient sends no
    # trace ids, so the server made both (the handler sees them).
    check(int(st["requests"]) == 5 and int(st["errors"]) == 3, "Test.Meta counters %r" % st)
    st = endpoint_stats(p, "testsvc", "Test.Relay")
    check(int(st["requests"]) == 0 and st["p50_us"] == 0, "unused endpoint %r" % st)

    # The table: the node table as before, then each node's endpoints.
    r = p.ctl("stats", "testsvc")
    check(r.code == 0, "stats: %r" % r)
    blocks = r.out.strip().split("\n\n")
    check(blocks[0].splitlines()[0].split()[-2:] == ["REQUESTS", "ERRORS"], "node table %r" % r.out)
    lines = blocks[1].splitlines()
    check(lines[0] == p.node_ids("testsvc")[0], "endpoint table names its node: %r" % lines[0])
    check(lines[1].split() == ["ENDPOINT", "REQUESTS", "ERRORS", "INFLIGHT", "P50", "P99"],
          "endpoint header %r" % lines[1])
    row = [l.split() for l in lines if l.startswith("Test.Sleep ")][0]
    check(row[1] == str(n_sleep + 1) and row[2] == "0" and row[4].endswith("ms"),
          "Test.Sleep row %r" % row)
    # Request logging is off unless asked for.
    check(not log_lines(proc, 'msg="request"'), "requests logged without --log-requests")
