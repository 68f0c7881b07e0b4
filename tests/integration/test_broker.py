"""brokerd: pub/sub with queue groups and wildcards, durable event streams (issue 5)."""
import base64
import json
import os
import random
import signal
import struct
import time

import zmq

from harness import SANITIZED, check, wait_until


def broker_argv(p, *extra):
    return [os.path.join(os.environ.get("SVC_BIN", "build/bin"), "brokerd"),
            "--data-dir", os.path.join(p.dir, "data"),
            "--pubsub-address", "ipc://%s/pubsub" % p.dir,
            "--address", "ipc://%s/broker" % p.dir,
            "--register-interval", "1", "--register-ttl", "3"] + list(extra)


def start_broker(p, *extra, registry=True):
    if registry:
        p.start_registry()
    before = set(p.node_ids("svc.broker"))
    b = p.spawn("brokerd", broker_argv(p, *extra))
    wait_until(lambda: (not b.alive() and check(False, "brokerd exited: " + b.output()))
               or set(p.node_ids("svc.broker")) - before, 10, what="brokerd to register")
    return b


def tool(p, *args):
    return [os.path.join(os.environ.get("SVC_BIN", "build/bin"), "svc-brokertool")] + list(args)


def spawn_sub(p, name, *args):
    """A svc-brokertool subscriber, once it is subscribed."""
    s = p.spawn(name, tool(p, "sub", *args))
    wait_until(lambda: "ready" in s.output() or (not s.alive() and check(False, s.output())),
               10, what="%s to subscribe" % name)
    return s


def result(proc, timeout=60):
    """The JSON line a svc-brokertool process printed, after it exited 0."""
    code = proc.p.wait(timeout)
    out = proc.output()
    check(code == 0, "%s exited %d:\n%s" % (proc.name, code, out))
    lines = [l for l in out.splitlines() if l.startswith("{")]
    check(lines, "%s printed no result:\n%s" % (proc.name, out))
    return json.loads(lines[-1])


def call(p, endpoint, body):
    r = p.ctl("call", "svc.broker", endpoint, json.dumps(body))
    return r.code, (json.loads(r.out) if r.code == 0 else json.loads(r.err[r.err.index("{"):]))


def ok(p, endpoint, body):
    code, ans = call(p, endpoint, body)
    check(code == 0, "%s %r failed: %r" % (endpoint, body, ans))
    return ans


def err(p, endpoint, body, want):
    code, ans = call(p, endpoint, body)
    check(code == 1 and ans.get("code") == want,
          "%s %r: want error %d, got %r" % (endpoint, body, want, ans))
    return ans["detail"]


def b64(data):
    return base64.b64encode(data).decode()


def publish_event(p, stream, body, msg_id=""):
    return ok(p, "Events.Publish", {"stream": stream, "id": msg_id, "body": b64(body)})


def info(p, stream):
    return ok(p, "Events.StreamInfo", {"stream": stream})


# ---- pub/sub ------------------------------------------------------------------------


def test_broker_wildcards_match_as_documented(p):
    start_broker(p)
    # pattern -> (a topic it matches, used last as its end marker; topics it must get)
    cases = {
        "orders.*": ("orders.zzz", {"orders.created", "orders.x"}),
        "orders.>": ("orders.zzz", {"orders.created", "orders.x", "orders.a.b", "orders.a.b.c",
                                    "orders.a.c"}),
        "*.created": ("zzz.created", {"orders.created", "users.created"}),
        "orders.created": ("orders.created", {"orders.created"}),
        "*.*.c": ("zz.zz.c", {"orders.a.c", "x.y.c"}),
        ">": ("zzz", {"orders", "orders.created", "orders.x", "orders.a.b", "orders.a.b.c",
                      "users.created", "a.b.created", "other.x", "orders.a.c", "x.y.c"}),
    }
    topics = ["orders", "orders.created", "orders.x", "orders.a.b", "orders.a.b.c",
              "users.created", "a.b.created", "other.x", "orders.a.c", "x.y.c"]
    subs = {}
    for pat in cases:
        s = p.spawn("sub " + pat, [os.path.join(os.environ.get("SVC_BIN", "build/bin"), "svcctl"),
                                   "subscribe", pat])
        subs[pat] = s
    for pat, s in subs.items():
        wait_until(lambda: "subscribed" in s.output(), 10, what="svcctl subscribe %s" % pat)
    for t in topics:
        r = p.ctl("publish", t, '{"t":"%s"}' % t)
        check(r.code == 0, "publish %s: %r" % (t, r))
    for pat, (end, _) in cases.items():
        check(p.ctl("publish", end, '"END"').code == 0, "publish end marker")
    for pat, (end, want) in cases.items():
        s = subs[pat]
        wait_until(lambda: ("%s \"END\"" % end) in s.output(), 10, what="end marker for %s" % pat)
        got = set()
        for line in s.output().splitlines():
            if line.startswith("svcctl:") or line.endswith('"END"'):
                continue
            got.add(line.split(" ", 1)[0])
        check(got == want, "pattern %s got %s, want %s" % (pat, sorted(got), sorted(want)))
    # Invalid patterns are refused with a usage error.
    for bad in ["orders.>.x", "orders..x", "", "a b"]:
        r = p.ctl("subscribe", bad, "--count", "1")
        check(r.code == 64 and "invalid" in r.err, "pattern %r: %r" % (bad, r))


def test_broker_fanout_and_per_publisher_order(p):
    start_broker(p)
    n = 2000 if not SANITIZED else 500
    subs = [spawn_sub(p, "sub%d" % i, "--topic", "feed.*", "--count", str(3 * n), "--seconds", "60")
            for i in range(3)]
    pubs = [p.spawn("pub%d" % k, tool(p, "pub", "--topic", "feed.t%d" % (k % 2), "--count", str(n),
                                      "--id", str(k))) for k in range(3)]
    for pub in pubs:
        check(result(pub)["sent"] == n, "publisher did not send everything")
    for s in subs:
        r = result(s)
        check(r["received"] == 3 * n, "subscriber got %d of %d: %r" % (r["received"], 3 * n, r))
        check(r["out_of_order"] == 0, "a publisher's messages arrived out of order: %r" % r)


def test_broker_queue_group_exactly_one_and_spread(p):
    start_broker(p)
    n = 3000 if not SANITIZED else 900
    members = [spawn_sub(p, "member%d" % i, "--topic", "jobs.*", "--queue", "workers",
                         "--count", "0", "--seconds", "120") for i in range(3)]
    plain = spawn_sub(p, "plain", "--topic", "jobs.>", "--count", str(n), "--seconds", "60")
    check(result(p.spawn("pub", tool(p, "pub", "--topic", "jobs.a", "--count", str(n))))["sent"] == n,
          "publisher failed")
    check(result(plain)["received"] == n, "the plain subscriber must get every message too")

    def group_delivered():
        st = ok(p, "Broker.Stats", {})
        return sum(int(s["delivered"]) for peer in st["peers"] for s in peer["subscriptions"]
                   if s["queue"] == "workers")
    wait_until(lambda: group_delivered() == n, 20, what="brokerd to deliver %d to the group" % n)
    got = []
    for m in members:
        m.signal(signal.SIGTERM)
        got.append(result(m)["received"])
    check(sum(got) == n, "queue group members got %r: %d in all, want exactly %d" % (got, sum(got), n))
    for g in got:
        check(abs(g - n / 3) <= 0.1 * n / 3, "spread %r is not within 10%% of %d each" % (got, n // 3))


def test_broker_slow_subscriber_keeps_memory_bounded(p):
    # Documented limit (docs/broker.md 4.6): with --sub-hwm 1000, brokerd's RSS stays
    # under 64 MiB (256 MiB under ASan) however far a subscriber falls behind.
    b = start_broker(p, "--sub-hwm", "1000")
    n = 200000 if not SANITIZED else 60000
    limit = (64 if not SANITIZED else 256) * 1024 * 1024
    stalled = spawn_sub(p, "stalled", "--topic", "flood", "--stall", "--count", "0", "--seconds", "300")
    pub = p.spawn("pub", tool(p, "pub", "--topic", "flood", "--count", str(n), "--size", "512"))
    peak = 0
    while pub.alive():
        with open("/proc/%d/status" % b.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        time.sleep(0.05)
    check(result(pub)["sent"] == n, "publisher failed")
    with open("/proc/%d/status" % b.pid) as f:
        rss = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:")][0]
    peak = max(peak, rss)
    print("     slow subscriber: %d messages of 512 bytes, brokerd peak RSS %.1f MiB (limit %d MiB)"
          % (n, peak / 1048576.0, limit >> 20))
    check(peak < limit, "brokerd RSS reached %d MiB (limit %d MiB)" % (peak >> 20, limit >> 20))
    st = ok(p, "Broker.Stats", {})
    drops = [int(peer["dropped"]) for peer in st["peers"]]
    check(int(st["dropped"]) > 0 and max(drops) > 0,
          "the stalled subscriber's drops must show in stats: %r" % st)
    check(int(st["published"]) == n, "stats published %s, want %d" % (st["published"], n))
    # brokerd keeps serving.
    check(publish_event(p, "after", b"x")["seq"] == "1", "brokerd stopped serving")
    stalled.signal(signal.SIGTERM)
    result(stalled)


# ---- event streams ----------------------------------------------------------------------


def test_events_at_least_once_across_sigkill(p):
    n = 20000 if not SANITIZED else 4000
    kills = 10 if not SANITIZED else 4
    b = start_broker(p)
    pub = p.spawn("epub", tool(p, "epub", "--stream", "alo", "--count", str(n), "--prefix", "e",
                               "--inflight", "8", "--seconds", "240"))
    con = p.spawn("econsume", tool(p, "econsume", "--stream", "alo", "--group", "g", "--count",
                                   str(n), "--prefix", "e", "--seconds", "300"))
    rnd = random.Random(5)
    during = 0
    for i in range(kills):
        time.sleep(rnd.uniform(0.3, 1.0))
        during += pub.alive()
        b.kill()
        b = p.spawn("brokerd", broker_argv(p))
        wait_until(lambda: b.alive() and p.ctl("call", "--address", "ipc://%s/broker" % p.dir,
                                               "svc.broker", "Broker.Info", "{}").code == 0,
                   15, what="brokerd restart %d" % (i + 1))
    pr = result(pub, 300)
    check(during > 0, "no kill happened while the publisher ran: the test proved nothing")
    check(pr["acked"] == n, "publisher got %d of %d acks: %r" % (pr["acked"], n, pr))
    cr = result(con, 300)
    print("     at-least-once: %d events, %d kills (%d while publishing), publisher retries %d "
          "(acked as duplicate %d), consumer deliveries %d, duplicates delivered %d, redelivered %d"
          % (n, kills, during, pr["retries"], pr["duplicates"], cr["deliveries"], cr["duplicates"],
             cr["redelivered"]))
    check(cr["distinct"] == n, "consumer saw %d of %d acknowledged events: %r" % (cr["distinct"], n, cr))
    check(cr["gaps"] == 0, "sequence gaps: %r" % cr)
    check(cr["max_seq"] == n, "retried publishes were stored twice: last seq %d for %d ids" %
          (cr["max_seq"], n))
    st = info(p, "alo")
    check(int(st["messages"]) == n and st["last_seq"] == str(n), "stream info %r" % st)


def test_events_redelivery_deadletter_and_stale_ack(p):
    start_broker(p)
    publish_event(p, "jobs", b"one")
    cfg = {"ack_wait_ms": 300, "max_deliver": 2}
    c = {"stream": "jobs", "group": "w", "config": cfg, "batch": 10}
    # The first delivery happens after t0, so its ack wait ends after t0 + 0.3 s.
    t0 = time.monotonic()
    r = ok(p, "Events.Consume", c)
    check([(e["seq"], e["delivery"]) for e in r["events"]] == [("1", 1)], "first delivery %r" % r)
    r = ok(p, "Events.Consume", c)
    check(r["events"] == [] or time.monotonic() - t0 >= 0.3,
          "redelivered before the ack wait: %r" % r)
    if not r["events"]:
        r = ok(p, "Events.Consume", dict(c, wait_ms=5000))
    check([(e["seq"], e["delivery"]) for e in r["events"]] == [("1", 2)], "redelivery %r" % r)
    check(time.monotonic() - t0 >= 0.3, "redelivered too early: %.3fs after the first consume"
          % (time.monotonic() - t0))
    # The ack for delivery 1 is stale: delivery 2 stays pending.
    d = err(p, "Events.Ack", {"stream": "jobs", "group": "w", "acks": [{"seq": 1, "delivery": 1}]}, 409)
    check("stale" in d, "stale ack detail %r" % d)
    cons = info(p, "jobs")["consumers"][0]
    check(cons["pending"] == "1" and cons["redelivered"] == "1", "after stale ack: %r" % cons)
    # Not acked again: after max_deliver (2) it moves to jobs.dlq instead of a 3rd delivery.
    r = ok(p, "Events.Consume", dict(c, wait_ms=1000))
    check(r["events"] == [], "delivered a third time: %r" % r)
    cons = info(p, "jobs")["consumers"][0]
    check(cons["dead_lettered"] == "1" and cons["pending"] == "0", "dead-letter counts %r" % cons)
    dl = ok(p, "Events.Consume", {"stream": "jobs.dlq", "group": "ops", "batch": 10})
    check(len(dl["events"]) == 1 and dl["events"][0]["body"] == "b25l", "dlq %r" % dl)
    md = dl["events"][0]["metadata"]
    check(md.get("dlq-seq") == "1" and md.get("dlq-deliveries") == "2" and
          md.get("dlq-stream") == "jobs" and md.get("dlq-group") == "w", "dlq metadata %r" % md)
    # A fresh ack for the current delivery works; the floor moves.
    publish_event(p, "jobs", b"two")
    r = ok(p, "Events.Consume", c)
    check([(e["seq"], e["delivery"]) for e in r["events"]] == [("2", 1)], "second event %r" % r)
    a = ok(p, "Events.Ack", {"stream": "jobs", "group": "w", "acks": [{"seq": 2, "delivery": 1}]})
    check(a["acked"] == 1, "ack %r" % a)
    cons = info(p, "jobs")["consumers"][0]
    check(cons["ack_floor"] == "2" and cons["pending"] == "0", "ack floor %r" % cons)
    # Nack with a delay: not before the delay, then with delivery 2.
    publish_event(p, "jobs", b"three")
    r = ok(p, "Events.Consume", c)
    ok(p, "Events.Ack", {"stream": "jobs", "group": "w", "nack": True, "delay_ms": 600,
                         "acks": [{"seq": 3, "delivery": 1}]})
    t0 = time.monotonic()
    r = ok(p, "Events.Consume", dict(c, wait_ms=5000))
    check([(e["seq"], e["delivery"]) for e in r["events"]] == [("3", 2)], "after nack %r" % r)
    check(time.monotonic() - t0 >= 0.4, "nacked event came back before its delay")
    ok(p, "Events.Ack", {"stream": "jobs", "group": "w", "acks": [{"seq": 3, "delivery": 2}]})
    # Acks can ride on the next fetch (one commit for both); a stale one there does not count.
    publish_event(p, "jobs", b"four")
    r = ok(p, "Events.Consume", dict(c, batch=1))
    e5 = r["events"][0]
    r = ok(p, "Events.Consume", dict(c, acks=[{"seq": int(e5["seq"]), "delivery": 2},
                                                {"seq": int(e5["seq"]), "delivery": e5["delivery"]}]))
    check(r["acked"] == 1 and r["events"] == [], "acks carried by a fetch: %r" % r)
    cons = [x for x in info(p, "jobs")["consumers"] if x["group"] == "w"][0]
    check(cons["pending"] == "0", "fetch-carried ack not applied: %r" % cons)
    # svcctl consume prints and acks.
    publish_event(p, "jobs", b'{"k":5}')
    r = p.ctl("consume", "jobs", "--group", "cli", "--once")
    check(r.code == 0 and r.out.splitlines()[-1] == '5 1 {"k":5}', "svcctl consume: %r" % r)
    cons = [x for x in info(p, "jobs")["consumers"] if x["group"] == "cli"][0]
    check(cons["pending"] == "0" and cons["ack_floor"] == "5", "svcctl consume did not ack: %r" % cons)


def test_events_dedup_window_and_retry_after_failure(p):
    start_broker(p, "--max-payload", "1024")
    a = publish_event(p, "dd", b"first", "order-1")
    b = publish_event(p, "dd", b"second", "order-1")
    check(a == {"seq": "1", "duplicate": False} and b == {"seq": "1", "duplicate": True},
          "dedup within window: %r %r" % (a, b))
    check(info(p, "dd")["messages"] == "1", "stored twice")
    # A publish that was never stored (too big) can be retried under the same id.
    d = err(p, "Events.Publish", {"stream": "dd", "id": "order-2", "body": b64(b"x" * 1200)}, 413)
    check("exceeds" in d, "413 detail %r" % d)
    c = publish_event(p, "dd", b"retry", "order-2")
    check(c == {"seq": "2", "duplicate": False}, "retry after a failed publish: %r" % c)
    # After the window, the id is new again.
    ok(p, "Events.CreateStream", {"config": {"name": "dw", "dedup_window_ms": 300}})
    publish_event(p, "dw", b"x", "k")
    time.sleep(0.5)
    e = publish_event(p, "dw", b"x", "k")
    check(e == {"seq": "2", "duplicate": False}, "id outside the window: %r" % e)
    # svcctl publish --stream --id
    r = p.ctl("publish", "--stream", "dd", "--id", "order-2", "t.x", '{"a":1}')
    check(r.code == 0 and "seq 2 (duplicate" in r.out, "svcctl duplicate publish: %r" % r)


def test_events_retention_count_bytes_age(p):
    start_broker(p)
    # A consumer positioned before what retention keeps.
    ok(p, "Events.CreateStream", {"config": {"name": "rc", "max_msgs": 5}})
    r = ok(p, "Events.Consume", {"stream": "rc", "group": "late"})
    check(r["events"] == [], "empty stream %r" % r)
    for i in range(8):
        publish_event(p, "rc", b"m%d" % i)
    s = info(p, "rc")
    check((s["messages"], s["first_seq"], s["last_seq"]) == ("5", "4", "8"), "count retention %r" % s)
    r = ok(p, "Events.Consume", {"stream": "rc", "group": "late", "batch": 10})
    check([e["seq"] for e in r["events"]] == ["4", "5", "6", "7", "8"] and r["missed"] == "3",
          "late consumer must start at the first retained event and be told it missed 3: %r" % r)
    check(info(p, "rc")["consumers"][0]["missed"] == "3", "missed not in stream info")
    # Bytes: 30-byte bodies under max_bytes 100 keep 3.
    ok(p, "Events.CreateStream", {"config": {"name": "rb", "max_bytes": 100}})
    for i in range(10):
        publish_event(p, "rb", b"%030d" % i)
    s = info(p, "rb")
    check((s["messages"], s["bytes"], s["first_seq"]) == ("3", "90", "8"), "bytes retention %r" % s)
    err(p, "Events.Publish", {"stream": "rb", "body": b64(b"x" * 120)}, 413)
    # Age: what is older than max_age goes, what is newer stays.
    ok(p, "Events.CreateStream", {"config": {"name": "ra", "max_age_ms": 1500}})
    for i in range(3):
        publish_event(p, "ra", b"old")
    time.sleep(1.7)
    for i in range(2):
        publish_event(p, "ra", b"new")
    s = info(p, "ra")
    check((s["messages"], s["first_seq"]) == ("2", "4"), "age retention %r" % s)
    wait_until(lambda: info(p, "ra")["messages"] == "0", 5, what="age retention of the rest")
    # svcctl streams lists them with counts.
    r = p.ctl("streams")
    rows = {l.split()[0]: l.split() for l in r.out.splitlines()[1:]}
    check(r.code == 0 and rows["rc"][1:5] == ["5", "10", "4", "8"], "svcctl streams:\n" + r.out)
    r = p.ctl("stream-info", "rc")
    check(r.code == 0 and "late" in r.out and "MISSED" in r.out, "svcctl stream-info:\n" + r.out)


def test_events_start_positions(p):
    start_broker(p)
    for i in range(5):
        publish_event(p, "sp", b"%d" % i)
    t_mid = int(time.time() * 1000) + 1
    time.sleep(0.05)
    for i in range(5, 8):
        publish_event(p, "sp", b"%d" % i)

    def seqs(group, cfg):
        r = ok(p, "Events.Consume", {"stream": "sp", "group": group, "config": cfg, "batch": 20})
        return [int(e["seq"]) for e in r["events"]]
    check(seqs("b", {"start": "START_BEGINNING"}) == list(range(1, 9)), "from the beginning")
    check(seqs("s", {"start": "START_SEQ", "start_seq": 6}) == [6, 7, 8], "from seq 6")
    check(seqs("t", {"start": "START_TIME", "start_time_ms": t_mid}) == [6, 7, 8], "from a time")
    check(seqs("e", {"start": "START_END"}) == [], "from the end")
    publish_event(p, "sp", b"9")
    check(seqs("e", {"start": "START_END"}) == [9], "end consumer gets new events")


def test_broker_bad_input_clear_errors_keeps_serving(p):
    start_broker(p, "--max-payload", "4096")
    # Event API
    err(p, "Events.Publish", {"stream": "bad name", "body": ""}, 400)
    err(p, "Events.Publish", {"stream": "", "body": ""}, 400)
    err(p, "Events.Publish", {"stream": "ok", "topic": "a..b", "body": ""}, 400)
    d = err(p, "Events.Publish", {"stream": "ok", "body": b64(b"x" * 6000)}, 413)
    check("4096" in d, "413 names the limit: %r" % d)
    check("not found" in err(p, "Events.StreamInfo", {"stream": "nope"}, 404), "404 detail")
    err(p, "Events.Consume", {"stream": "nope", "group": "g"}, 404)
    publish_event(p, "ok", b"x")
    for cfg, what in [({"ack_wait_ms": 5}, "ack_wait_ms"), ({"start": "START_SEQ"}, "start_seq"),
                      ({"max_deliver": 5000}, "max_deliver"), ({"start": 9}, "start"),
                      ({"start": "START_TIME"}, "start_time_ms"),
                      ({"max_ack_pending": 1000000}, "max_ack_pending")]:
        d = err(p, "Events.Consume", {"stream": "ok", "group": "g", "config": cfg}, 400)
        check(what in d, "consumer option %r: detail %r should name %s" % (cfg, d, what))
    err(p, "Events.Consume", {"stream": "ok", "group": "bad group"}, 400)
    err(p, "Events.Consume", {"stream": "ok", "group": "g", "batch": 5000}, 400)
    err(p, "Events.Consume", {"stream": "ok", "group": "g", "wait_ms": 99999}, 400)
    ok(p, "Events.Consume", {"stream": "ok", "group": "g", "config": {"ack_wait_ms": 1000}})
    d = err(p, "Events.Consume", {"stream": "ok", "group": "g", "config": {"ack_wait_ms": 2000}}, 409)
    check("other options" in d, "409 detail %r" % d)
    err(p, "Events.Ack", {"stream": "ok", "group": "g", "acks": []}, 400)
    err(p, "Events.Ack", {"stream": "ok", "group": "g", "acks": [{"seq": 0, "delivery": 1}]}, 400)
    err(p, "Events.Ack", {"stream": "ok", "group": "zz", "acks": [{"seq": 1, "delivery": 1}]}, 404)
    err(p, "Events.CreateStream", {"config": {"name": "big", "max_msg_size": 10000}}, 400)
    err(p, "Events.CreateStream", {}, 400)
    # BRK1 socket: malformed messages get BRK1E, nothing crashes.
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, 3000)
    s.connect("ipc://%s/pubsub" % p.dir)
    bad = [[b"BRK1X", b"a"], [b"BRK1P"], [b"BRK1P", b"bad topic", b"x"], [b"BRK1P", b"t", b"x" * 5000],
           [b"BRK1P", b"a.>", b"x"], [b"BRK1S", b"short", b"t", b""], [b"BRK1S", b"\0" * 8, b"a..b", b""],
           [b"BRK1U", b"\1" * 8], [b"BRK"], [b"BRK1P", b"t", b"x", b"m", b"5", b"6", b"7", b"8"],
           [b"BRK1B", b"\5\0"], [b"BRK1B", struct.pack("<HII", 200, 0, 0) + b"a"],
           [b"BRK1B", struct.pack("<HII", 1, 0, 0) + b"*"], [b"BRK1W", b"\1" * 5],
           [b"BRK1W", struct.pack("<QHHHHI", 1, 9, 0, 0, 0, 99) + b"x"]]
    for frames in bad:
        s.send_multipart(frames)
        reply = s.recv_multipart()
        check(reply[0][:5] == b"BRK1E" and int(reply[1]) in (400, 404, 413),
              "malformed %r answered %r" % (frames, reply))
    # A well-framed durable publish of an invalid stream is answered in a BRK1K ack.
    s.send_multipart([b"BRK1W", struct.pack("<QHHHHI", 77, 3, 0, 0, 0, 1) + b"a bx"])
    reply = s.recv_multipart()
    check(reply[0] == b"BRK1K", "BRK1W answer %r" % reply)
    req_id, seq, code, dup, dlen = struct.unpack("<QQHBH", reply[1][:21])
    check((req_id, seq, code) == (77, 0, 400) and b"invalid stream" in reply[1][21:],
          "BRK1K for an invalid stream: %r" % reply)
    # Empty frames and a lone empty message.
    s.send_multipart([b""])
    check(s.recv_multipart()[0][:5] == b"BRK1E", "empty command")
    s.close()
    ctx.term()
    st = ok(p, "Broker.Stats", {})
    check(int(st["rejected"]) >= 6, "rejected count %r" % st)
    # Still serving both halves.
    check(publish_event(p, "ok", b"y")["seq"] == "2", "publish after bad input")
    sub = spawn_sub(p, "sub", "--topic", "after.*", "--count", "1", "--seconds", "20")
    check(p.ctl("publish", "after.x", "1").code == 0, "pub/sub publish after bad input")
    check(result(sub)["received"] == 1, "pub/sub after bad input")


def test_service_declared_subscriber_shows_and_receives(p):
    p.start_registry()
    # The service starts before brokerd: its subscriber is retried until brokerd is there.
    p.start_service("svc-testsvc", "--register-interval", "1", wait_name="testsvc",
                    env={"TESTSVC_SUBSCRIBE": "1"})
    start_broker(p, registry=False)
    r = p.ctl("service", "testsvc")
    check(r.code == 0 and "Subscriber: ping.* (queue testsvc)" in r.out,
          "svcctl service shows no subscriber:\n" + r.out)
    eps = {e["name"]: e for e in p.service_json("testsvc")[0]["endpoints"]}
    check(eps["ping.*"]["metadata"] == {"subscriber": "true", "topic": "ping.*", "queue": "testsvc"},
          "subscriber endpoint metadata %r" % eps.get("ping.*"))
    pong = spawn_sub(p, "pong", "--topic", "pong.*", "--count", "1", "--seconds", "30")
    # Publish until the service's subscription is live (it retries once a second).
    wait_until(lambda: p.ctl("publish", "ping.a", '"x"').code == 0 and not pong.alive(), 15,
               step=0.3, what="the declared subscriber to answer ping.a with pong.a")
    check(result(pong)["received"] == 1, "pong not received")


def test_events_async_publish_many_in_flight_across_sigkill(p):
    # svc_events_publish_async over BRK1W: thousands in flight, each answered after its commit.
    # Enough events that the publisher is still at it when the first kills
    # land (10,000 could all be acked within the first 0.15 s).
    n = 100000 if not SANITIZED else 40000
    b = start_broker(p)
    pub = p.spawn("epub-async", tool(p, "epub-async", "--stream", "as", "--count", str(n),
                                     "--prefix", "a", "--seconds", "120"))
    during = 0
    for i in range(3):
        time.sleep(0.1)
        during += pub.alive()
        b.kill()
        b = p.spawn("brokerd", broker_argv(p))
        wait_until(lambda: b.alive() and p.ctl("call", "--address", "ipc://%s/broker" % p.dir,
                                               "svc.broker", "Broker.Info", "{}").code == 0,
                   15, what="brokerd restart %d" % (i + 1))
    pr = result(pub, 150)
    check(during > 0, "no kill happened while the publisher ran: the test proved nothing")
    check(pr["acked"] == n, "async publisher: %r" % pr)
    cr = result(p.spawn("econsume", tool(p, "econsume", "--stream", "as", "--group", "g", "--count",
                                         str(n), "--prefix", "a", "--seconds", "120")), 150)
    print("     async publish: %d events, %d of 3 kills while publishing, failed answers retried %d "
          "(were stored already: %d)" % (n, during, pr["failures"], pr["duplicates"]))
    check(cr["distinct"] == n and cr["gaps"] == 0 and cr["max_seq"] == n,
          "every acked event once, no gaps: %r" % cr)


def test_brokerd_sigterm_with_waiting_consumer_exits_clean(p):
    b = start_broker(p)
    publish_event(p, "st", b"x")
    ok(p, "Events.Consume", {"stream": "st", "group": "g", "batch": 10})   # nothing else ready
    import threading
    res = {}

    def waiting():
        res["r"] = p.ctl("call", "svc.broker", "Events.Consume",
                         json.dumps({"stream": "st", "group": "g", "wait_ms": 5000}))
    t = threading.Thread(target=waiting)
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    code = b.stop(15)
    t.join(10)
    check(code == 0, "brokerd exited %d on SIGTERM with a fetch waiting:\n%s" % (code, b.output()))
    check(time.monotonic() - t0 < 10, "stop took %.1fs" % (time.monotonic() - t0))
    check("stopped" in b.output(), "no clean stop logged")
    # What was acknowledged is there after the restart.
    start_broker(p, registry=False)
    check(info(p, "st")["messages"] == "1", "event lost over a clean restart")


def test_waiting_consumers_hold_no_worker(p):
    """20 long polls at once on a brokerd with 2 worker threads: a publish made
    while they wait is acknowledged at once, and every poll returns with it
    long before its wait_ms (a poll that held a worker would starve the rest)."""
    start_broker(p, "--workers", "2")
    n = 20
    publish_event(p, "lp", b"first")
    for i in range(n):   # each group's consumer exists and has taken "first"
        r = ok(p, "Events.Consume", {"stream": "lp", "group": "g%d" % i, "batch": 1})
        check(len(r["events"]) == 1, "group g%d's first event: %r" % (i, r))
    import threading
    res = [None] * n

    def poll(i):
        r = call(p, "Events.Consume", {"stream": "lp", "group": "g%d" % i, "batch": 1,
                                       "wait_ms": 5000})
        res[i] = (r, time.monotonic())
    ts = [threading.Thread(target=poll, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    time.sleep(1.0)   # every poll is waiting in brokerd by now
    t0 = time.monotonic()
    publish_event(p, "lp", b"second")
    took = time.monotonic() - t0
    for t in ts:
        t.join(15)
    check(took < 2.5, "publish took %.1fs while %d polls waited" % (took, n))
    for i, r in enumerate(res):
        check(r is not None, "poll %d never returned" % i)
        (code, ans), at = r
        check(code == 0 and [e["body"] for e in ans["events"]] == [b64(b"second")],
              "poll %d got %r" % (i, ans))
        check(at - t0 < 3.5, "poll %d returned %.1fs after the publish (wait_ms 5000)" % (i, at - t0))


def test_subscriber_resubscribes_after_brokerd_restart(p):
    b = start_broker(p)
    sub = spawn_sub(p, "sub", "--topic", "re.*", "--count", "1", "--seconds", "60")
    b.kill()
    start_broker(p, registry=False)
    # Messages published before the client noticed the new brokerd are lost (at most once);
    # within a few seconds it has subscribed again and gets them.
    wait_until(lambda: p.ctl("publish", "re.x", "1").code == 0 and not sub.alive(), 15, step=0.3,
               what="the subscriber to be subscribed again after the restart")
    check(result(sub)["received"] == 1, "message after restart not received")
