"""The client: many calls in flight from one thread, least-outstanding, the
retry policy, deadlines that passed, the watched registry cache, fan-out.

svc-testclient (tests/testclient.c) drives svc-testsvc's Test.Echo and prints
one line per call: "ok TAG NODE ATTEMPTS MS" or "error TAG CODE ATTEMPTS MS DETAIL".
"""
import collections
import json
import os
import re
import time

from harness import BIN, SANITIZED, check, wait_until


def lines(text):
    """svc-testclient output -> list of (kind, fields)."""
    out = []
    for line in text.splitlines():
        parts = line.split(" ")
        if parts[0] in ("ok", "error", "mismatch"):
            out.append((parts[0], parts[1:]))
    return out


def requests(p, name):
    """Debug.Stats requests of every node of service name, by node id."""
    r = p.ctl("-o", "json", "stats", name)
    check(r.code == 0, "stats %s: %r" % (name, r))
    return {n["node"]: int(n["requests"]) for n in r.json()}


def node_id(proc):
    m = wait_until(lambda: re.search(r'msg="serving" node=(\S+)', proc.output()), 5,
                   what="the node to log its id")
    return m.group(1)


def get_services(reg, name):
    """How many Registry.GetService calls for name registryd has logged (debug level)."""
    return len(re.findall(r'msg="get service" service=%s(?: |\n)' % re.escape(name), reg.output()))


def test_many_calls_in_flight_from_one_thread_all_answered(p):
    p.start_registry()
    p.start_service("svc-testsvc", wait_name="testsvc")
    p.start_service("svc-testsvc", wait_name="testsvc")
    n = 300 if SANITIZED else 2000
    r = p.run("svc-testclient", "--count", str(n), "--inflight", "64", timeout=120)
    got = lines(r.out)
    check(r.code == 0, "calls failed: %s" % r.out[-2000:] + r.err[-1000:])
    check(len(got) == n and all(k == "ok" for k, _ in got), "answers: %r" % collections.Counter(
        k for k, _ in got))
    check(sorted(int(f[0]) for _, f in got) == list(range(n)), "every tag answered once")
    check(len({f[1] for _, f in got}) == 2, "both nodes used")
    # Really in flight at once: 20 calls that each sleep 1 s, from one client
    # thread, fill the node's 16 workers (Debug.Stats inflight).
    p.start_service("svc-testsvc", "--name", "sleepy", wait_name="sleepy")
    c = p.spawn("client", [os.path.join(BIN, "svc-testclient"), "--service", "sleepy", "--count",
                           "20", "--inflight", "20", "--ms", "1000"])
    wait_until(lambda: any(int(n_["inflight"]) >= 16 for n_ in p.ctl("-o", "json", "stats",
                                                                      "sleepy").json()),
               15, what="16 calls of one client thread running at once on the node")
    wait_until(lambda: not c.alive(), 30, what="the sleepy calls to end")
    got = lines(c.output())
    check(c.p.returncode == 0 and len(got) == 20, "sleepy calls: %s" % c.output()[-1500:])


def test_least_outstanding_steers_away_from_slow_node(p):
    p.start_registry()
    slow = p.start_service("svc-testsvc", wait_name="testsvc", env={"TESTSVC_EXTRA_MS": "300"})
    p.start_service("svc-testsvc", wait_name="testsvc")
    p.start_service("svc-testsvc", wait_name="testsvc")
    slow_id = node_id(slow)
    n = 150 if SANITIZED else 600
    r = p.run("svc-testclient", "--count", str(n), "--inflight", "8", "--strategy", "least",
              timeout=120)
    check(r.code == 0, "calls failed: %r" % r)
    counts = collections.Counter(f[1] for _, f in lines(r.out))
    check(sum(counts.values()) == n and len(counts) == 3, "nodes used: %r" % counts)
    # Random choice would give the slow node a third of the calls.
    check(counts[slow_id] < n * 0.1, "slow node got %d of %d calls: %r" % (counts[slow_id], n,
                                                                          counts))


def test_retry_policy_other_node_backoff_and_what_is_retried(p):
    p.start_registry()
    bad = p.start_service("svc-testsvc", wait_name="testsvc", env={"TESTSVC_FAIL_CODE": "503"})
    good = p.start_service("svc-testsvc", wait_name="testsvc")
    bad_id, good_id = node_id(bad), node_id(good)
    r = p.run("svc-testclient", "--count", "20", "--strategy", "round-robin")
    check(r.code == 0, "503 must be retried on the other node: %r" % r)
    got = lines(r.out)
    check({f[1] for _, f in got} == {good_id}, "answers came from %r" % {f[1] for _, f in got})
    attempts = collections.Counter(f[2] for _, f in got)
    check(set(attempts) == {"1", "2"} and attempts["2"] >= 5,
          "round-robin: every other call first hits the 503 node, then the other: %r" % attempts)

    # Non-retryable: 400 from both nodes of "bad" is answered after one attempt.
    for _ in range(2):
        p.start_service("svc-testsvc", "--name", "bad", wait_name="bad",
                        env={"TESTSVC_FAIL_CODE": "400"})
    before = sum(requests(p, "bad").values())
    r = p.run("svc-testclient", "--service", "bad")
    got = lines(r.out)
    check(r.code == 1 and got[0][0] == "error" and got[0][1][1:3] == ["400", "1"],
          "400 is not retried: %r" % r)
    # Counted at the nodes: the call (1) and this stats call (2 nodes).
    check(sum(requests(p, "bad").values()) - before == 1 + 2, "the nodes saw more than one call")

    # A code in the policy's list is retried: 1 + 2 retries (the default count).
    r = p.run("svc-testclient", "--service", "bad", "--retry-on", "transport,503,400",
              "--backoff", "0")
    got = lines(r.out)
    check(got and got[0][1][1:3] == ["400", "3"], "400 listed: retried twice: %r" % r)

    # Backoff: pauses of 150, 300 and 600 ms (no jitter) before the 3 retries.
    r = p.run("svc-testclient", "--service", "bad", "--retry-on", "400", "--retries", "3",
              "--backoff", "150,2,1000,0")
    got = lines(r.out)
    check(got and got[0][1][1:3] == ["400", "4"], "4 attempts: %r" % r)
    check(int(got[0][1][3]) >= 1050, "backoff of 150+300+600 ms not observed: %r" % r)
    r = p.run("svc-testclient", "--service", "bad", "--retry-on", "400", "--retries", "3",
              "--backoff", "150,2,200,0")
    got = lines(r.out)
    check(got and got[0][1][2] == "4" and int(got[0][1][3]) >= 550, "capped at 200: %r" % r)


def test_timeouts_retried_only_when_the_policy_says(p):
    p.start_registry()
    slow = p.start_service("svc-testsvc", wait_name="testsvc", env={"TESTSVC_EXTRA_MS": "1500"})
    fast = p.start_service("svc-testsvc", wait_name="testsvc")
    slow_id, fast_id = node_id(slow), node_id(fast)
    r = p.run("svc-testclient", "--count", "4", "--strategy", "round-robin", "--timeout", "5000",
              "--retry-on", "transport,503,timeout", "--attempt-timeout", "400", timeout=60)
    check(r.code == 0, "timeouts should be retried on the fast node: %r" % r)
    got = lines(r.out)
    check({f[1] for _, f in got} == {fast_id} and "2" in {f[2] for _, f in got},
          "answers and attempts: %r" % got)
    r = p.run("svc-testclient", "--count", "2", "--strategy", "round-robin", "--timeout", "600",
              timeout=60)
    got = lines(r.out)
    check(r.code == 1 and any(k == "error" and f[1:3] == ["408", "1"] for k, f in got),
          "without the policy a timeout is final: %r" % r)
    check(slow_id not in {f[1] for k, f in got if k == "ok"}, "the slow node never answers in time")


def test_call_with_expired_deadline_is_not_sent(p):
    p.start_registry()
    p.start_service("svc-testsvc", "--name", "echo-b", wait_name="echo-b")
    p.start_service("svc-testsvc", "--name", "relay", wait_name="relay")
    before = sum(requests(p, "echo-b").values())
    r = p.run("svc-testclient", "--service", "echo-b", "--count", "5", "--deadline-passed")
    got = lines(r.out)
    check(r.code == 1 and len(got) == 5 and all(k == "error" and f[1] == "408" and
                                                "not sent" in " ".join(f) for k, f in got),
          "expired calls: %r" % r)
    r = p.run("svc-testclient", "--service", "echo-b", "--count", "5", "--deadline-passed",
              "--inflight", "5")
    check(r.code == 1 and len(lines(r.out)) == 5, "expired async calls: %r" % r)
    # svc_ctx_call: relay's handler sleeps 500 ms of a 200 ms deadline, then
    # calls echo-b; that call must not be sent.
    relay_before = sum(requests(p, "relay").values())
    r = p.run("svc-testclient", "--service", "relay", "--ms", "500", "--timeout", "200",
              "--onward", "echo-b", "--retries", "-1")
    check(r.code == 1 and "error 0 408" in r.out, "relay call should time out: %r" % r)
    wait_until(lambda: all(int(n["inflight"]) == 0 for n in
                           p.ctl("-o", "json", "stats", "relay").json()), 10,
               what="the relay handler to finish")
    check(sum(requests(p, "relay").values()) - relay_before >= 2, "relay saw the call")
    # echo-b saw only the stats calls (1 before, 1 now): nothing was sent to it.
    check(sum(requests(p, "echo-b").values()) - before == 1, "an expired call reached echo-b")
    # Control: with time left the onward call does arrive.
    r = p.run("svc-testclient", "--service", "relay", "--onward", "echo-b")
    check(r.code == 0, "relay with time left: %r" % r)
    check(sum(requests(p, "echo-b").values()) - before == 3, "the onward call should arrive")


def test_registry_cache_watch_no_lookups_in_steady_state(p):
    reg = p.start_registry("--log-level", "debug")
    p.start_service("svc-testsvc", wait_name="testsvc")
    for watch in (True, False):
        flags = ["--count", "150", "--interval", "10", "--cache-ms", "100"]
        if not watch:
            flags.append("--no-watch")
        c = p.spawn("client", [os.path.join(BIN, "svc-testclient")] + flags)
        # Warm-up: past the first view and the watch's settling (500 ms).
        wait_until(lambda: len(lines(c.output())) >= 80 or not c.alive(), 20,
                   what="the client to warm up")
        warm = get_services(reg, "testsvc")
        wait_until(lambda: not c.alive(), 30, what="the client to finish")
        check(c.p.returncode == 0, "client failed: %s" % c.output()[-1500:])
        calls = len(lines(c.output())) - 80
        lookups = get_services(reg, "testsvc") - warm
        if watch:
            check(calls >= 50 and lookups == 0,
                  "%d calls after warm-up made %d GetService calls" % (calls, lookups))
        else:
            # Control: the same calls without the watch look up every 100 ms.
            check(lookups >= 3, "counting GetService is broken: %d lookups" % lookups)


def test_watch_brings_and_removes_nodes_and_stale_cache_survives_registry_stop(p):
    reg = p.start_registry()
    a = p.start_service("svc-testsvc", "--register-interval", "1", wait_name="testsvc")
    # Runs until stopped at the end (its last line may be cut there).
    c = p.spawn("client", [os.path.join(BIN, "svc-testclient"), "--count", "1000000",
                           "--interval", "20", "--strategy", "round-robin", "--cache-ms", "3000"])
    wait_until(lambda: len(lines(c.output())) >= 40, 20, what="the client to warm up")
    # A new node: the cached view (trusted 3 s without a watch, for ever
    # with one) learns it from the watch.
    b = p.start_service("svc-testsvc", "--register-interval", "1", wait_name="testsvc")
    bid = node_id(b)
    wait_until(lambda: bid in c.output(), 5, what="calls to reach the new node")
    # It stops (deregisters): the delete event takes it out of the view, so
    # calls neither go to it nor need retries (the view is not refetched).
    b.stop()
    seen = len(lines(c.output()))   # calls from seen + 1 on started after b exited
    wait_until(lambda: len(lines(c.output())) >= seen + 30, 20, what="calls after the stop")
    after = lines(c.output())[seen + 1:seen + 30]
    check(all(k == "ok" and f[1] != bid and f[2] == "1" for k, f in after),
          "calls after the node left: %r" % after)
    # registryd stops: the watch ends, the view expires 3 s later, the
    # registry cannot be asked, and calls go on from the stale view.
    reg.stop()
    wait_until(lambda: "using cached nodes" in c.output() or not c.alive(), 20,
               what="the client to fall back to its stale view")
    seen = len(lines(c.output()))
    wait_until(lambda: len(lines(c.output())) >= seen + 20 or not c.alive(), 20,
               what="calls to go on while registryd is down")
    # registryd back (empty): the watch reopens, views resync, new nodes show.
    # Until node a registers again (every second) the empty registry's 404
    # keeps the stale view for cache_ms (3 s: room for a slow ASan run).
    p.start_registry()
    cnode = p.start_service("svc-testsvc", "--register-interval", "1", wait_name="testsvc")
    cid = node_id(cnode)
    wait_until(lambda: cid in c.output() or not c.alive(), 15,
               what="the client to see a node registered after registryd came back")
    check(c.alive(), "the client stopped: %s" % c.output()[-1500:])
    c.stop()
    got = lines(c.output())
    errors = [f for k, f in got if k != "ok"]
    check(not errors, "%d calls, failures: %r" % (len(got), errors[:5]))
    check(a.alive(), "node a died")


def test_fanout_example_gathers_parallel_answers(p):
    p.start_registry()
    for _ in range(2):
        p.start_service("greeter", wait_name="greeter")
    p.start_service("svc-testsvc", wait_name="testsvc")
    r = p.run("fanout", "--each-node", "greeter", "Say.Hello", '{"name":"x"}')
    out = [json.loads(l) for l in r.out.splitlines()]
    check(r.code == 0 and len(out) == 2 and len({o["node"] for o in out}) == 2 and
          all(o["response"] == {"msg": "Hello x"} for o in out), "each node: %r" % r)
    r = p.run("fanout", "greeter", "Say.Hello", '{"name":"a"}', "testsvc", "Test.Echo",
              '{"tag":"t1","ms":300}', "testsvc", "Test.Echo", '{"tag":"t2","ms":300}',
              "nosuch", "X.Y", "{}")
    out = [json.loads(l) for l in r.out.splitlines()]
    check(r.code == 1 and len(out) == 4, "mixed fan-out: %r" % r)
    check(out[0]["response"]["msg"] == "Hello a" and out[1]["response"]["tag"] == "t1" and
          out[2]["response"]["tag"] == "t2" and out[3]["error"]["code"] == 404,
          "answers in call order: %r" % out)
    r = p.run("fanout", "greeter", "Say.Hello")
    check(r.code == 64 and "usage:" in r.err, "usage: %r" % r)
    r = p.run("fanout", "greeter", "Say.Hello", "[1]")
    check(r.code == 65 and "invalid JSON" in r.err, "bad JSON: %r" % r)
    r = p.run("fanout", "--help")
    check(r.code == 0 and "usage:" in r.out, "help: %r" % r)
