"""stored: records, TTLs, CAS, transactions, crash durability, locks, leaders, bad input.

Every test starts a registryd and a stored on ipc:// in its temp dir and
talks to svc.store with pyclient (the SVC/1 client written from
docs/protocol.md), or through svcctl.
"""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import harness
import pyclient
import storehelper
from harness import BIN, Failure, check, wait_until
from storehelper import b64, call, unb64

HERE = os.path.dirname(os.path.abspath(__file__))


class Store:
    """One stored process on a fixed ipc address and data dir (restartable)."""

    def __init__(self, p, *args):
        self.p = p
        self.address = "ipc://%s/store" % p.dir
        self.data = os.path.join(p.dir, "data")
        self.args = list(args)
        self.proc = None

    def start(self, wait_registered=True):
        argv = [os.path.join(BIN, "stored"), "--data-dir", self.data, "--address", self.address,
                "--register-interval", "1"] + self.args
        if wait_registered:
            before = set(self.p.node_ids("svc.store"))
            self.proc = self.p.spawn("stored", argv)
            wait_until(lambda: (not self.proc.alive() and Failure("stored exited: " + self.proc.output()))
                       or set(self.p.node_ids("svc.store")) - before, 10, what="stored to register")
        else:
            self.proc = self.p.spawn("stored", argv)
        return self

    def call(self, endpoint, obj, timeout_ms=5000):
        return call(self.address, endpoint, obj, timeout_ms)

    def ok(self, endpoint, obj, timeout_ms=5000):
        code, r = self.call(endpoint, obj, timeout_ms)
        check(code == 0, "%s %s: %r" % (endpoint, json.dumps(obj)[:200], r))
        return r


def started(p, *args):
    p.start_registry()
    return Store(p, *args).start()


# ---- reference model -------------------------------------------------------------


def _model_select(model, db, table, prefix, suffix, offset, limit):
    keys = sorted(k for (d, t, k) in model if d == db and t == table
                  and k.startswith(prefix) and k.endswith(suffix))
    keys = keys[offset:]
    return keys[:limit] if limit else keys


def _restart(st, sig):
    """Stops stored with sig and starts it again on the same data dir; waits until it answers."""
    st.proc.signal(sig)
    st.proc.p.wait(10)
    st.start(wait_registered=False)

    def answers():
        try:
            return st.call("Store.Databases", {}, 200)[0] == 0
        except TimeoutError:
            return False
    wait_until(answers, 10, step=0.01, what="stored to answer after restart")


def test_store_read_and_list_options_match_a_reference_model(p):
    # Checkpoints every 16 KiB of log, and restarts (kill -9: replay; SIGTERM: a
    # final checkpoint), so records sit in LMDB, in a checkpoint under way and in
    # memory at once, and deletes hide records that are already in LMDB.
    st = started(p, "--checkpoint-size", "16")
    rnd = random.Random(6)
    model = {}   # (db, table, key) -> value
    dbs, tables = ["default", "db2"], ["default", "t2"]
    alphabet = ["a", "b", "ab", "ba", "x"]
    steps = 120 if harness.SANITIZED else 400
    for step in range(steps):
        db, table = rnd.choice(dbs), rnd.choice(tables)
        key = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 3)))
        scope = {"database": db if db != "default" or rnd.random() < 0.5 else "",
                 "table": table if table != "default" or rnd.random() < 0.5 else ""}
        op = rnd.random()
        db_known = any(d == db for (d, _, _) in model)
        where = "step %d" % step
        if op < 0.35:
            value = "v%d" % step
            r = st.ok("Store.Write", dict(scope, record={"key": key, "value": b64(value),
                                                         "content_type": "text/plain",
                                                         "metadata": {"step": str(step)}}))
            check(int(r["revision"]) > 0, where)
            model[(db, table, key)] = value
        elif op < 0.5:
            code, r = st.call("Store.Delete", dict(scope, key=key))
            if not db_known and code == 0:
                check(not r["deleted"], "%s: deleted from an empty database" % where)
            check(code == 0, "%s: delete: %r" % (where, r))
            check(r["deleted"] == ((db, table, key) in model), "%s: deleted=%r for %r" % (where, r["deleted"], key))
            model.pop((db, table, key), None)
        elif op < 0.65:
            code, r = st.call("Store.Read", dict(scope, key=key))
            if not db_known:
                check(code == 404 and "database" in r["detail"], "%s: unknown database: %r" % (where, r))
            elif (db, table, key) in model:
                check(code == 0 and len(r["records"]) == 1, "%s: read %r: %r" % (where, key, r))
                rec = r["records"][0]
                check(rec["key"] == key and unb64(rec["value"]) == model[(db, table, key)]
                      and rec["content_type"] == "text/plain" and "step" in rec["metadata"],
                      "%s: read %r gave %r, model %r" % (where, key, rec, model[(db, table, key)]))
            else:
                check(code == 404 and "key" in r["detail"], "%s: absent key %r: %r" % (where, key, r))
        else:
            prefix = rnd.choice(["", "a", "b", "ab", "x"])
            suffix = rnd.choice(["", "", "a", "b"])
            offset, limit = rnd.choice([0, 0, 1, 2, 5]), rnd.choice([0, 0, 1, 2, 3, 10])
            want = _model_select(model, db, table, prefix, suffix, offset, limit)
            req = dict(scope, prefix=prefix, suffix=suffix, offset=offset, limit=limit)
            endpoint = "Store.List" if op < 0.85 else "Store.Read"
            code, r = st.call(endpoint, req)
            if not db_known:
                check(code == 404, "%s: %s on unknown database %r: %r" % (where, endpoint, db, r))
                continue
            check(code == 0, "%s: %s: %r" % (where, endpoint, r))
            got = r["keys"] if endpoint == "Store.List" else [x["key"] for x in r["records"]]
            check(got == want, "%s: %s %r gave %r, model %r" % (where, endpoint, req, got, want))
            if endpoint == "Store.Read":
                for x in r["records"]:
                    check(unb64(x["value"]) == model[(db, table, x["key"])], "%s: value of %r" % (where, x["key"]))
        if step in (steps // 3, 2 * steps // 3):
            _restart(st, signal.SIGKILL if step == steps // 3 else signal.SIGTERM)
        if step % 25 == 0:
            r = st.ok("Store.Databases", {})
            check(r["databases"] == sorted({d for (d, _, _) in model}), "%s: databases %r" % (where, r))
            for d in dbs:
                code, r = st.call("Store.Tables", {"database": d})
                want = sorted({t for (dd, t, _) in model if dd == d})
                check((code == 0 and r["tables"] == want) or (code == 404 and not want),
                      "%s: tables of %r: %r, model %r" % (where, d, r, want))


# ---- crash durability ---------------------------------------------------------------


class Writer(threading.Thread):
    """Writes unique keys and overwrites one key, recording what was acked."""

    def __init__(self, address, n, stop):
        super().__init__(daemon=True)
        self.address, self.n, self.stop = address, n, stop
        self.acked = {}          # key -> value (unique keys)
        self.attempted = {}      # key -> set of values sent
        self.last_acked = None   # last acked value of key "w{n}-last"
        self.unsure_last = set() # values of "w{n}-last" whose outcome is unknown
        self.error = None

    def run(self):
        i = 0
        try:
            while not self.stop.is_set():
                i += 1
                unique = (i % 2 == 1)
                key = "w%d-%d" % (self.n, i) if unique else "w%d-last" % self.n
                value = "%d:%d" % (self.n, i)
                self.attempted.setdefault(key, set()).add(value)
                try:
                    code, r = call(self.address, "Store.Write", {"record": {"key": key, "value": b64(value)}}, 1000)
                except TimeoutError:
                    code = -1
                if code == 0:
                    if unique:
                        self.acked[key] = value
                    else:
                        self.unsure_last.discard(value)
                        self.last_acked = value
                        self.unsure_last = set()
                elif not unique:
                    self.unsure_last.add(value)
                if code != 0:
                    time.sleep(0.01)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = repr(e)


def _all_records(st):
    out, offset = {}, 0
    while True:
        r = st.ok("Store.Read", {"prefix": "w", "offset": offset}, 10000)
        for x in r["records"]:
            out[x["key"]] = unb64(x["value"])
        offset += len(r["records"])
        if not r["more"]:
            return out


@harness.serial   # times restarts (1 s) and loads the CPU with 8 writers
def test_store_acked_writes_survive_kill_9(p):
    p.start_registry()
    # A checkpoint every 16 KiB of log: kills land during checkpoints and log switches too.
    st = Store(p, "--checkpoint-size", "16").start()
    rnd = random.Random(9)
    stop = threading.Event()
    writers = [Writer(st.address, n, stop) for n in range(8)]
    for w in writers:
        w.start()
    rounds = 5 if harness.SANITIZED else 20
    worst = 0.0
    try:
        for _ in range(rounds):
            time.sleep(rnd.uniform(0.05, 0.4))
            st.proc.signal(signal.SIGKILL)
            st.proc.p.wait(5)
            t0 = time.monotonic()
            st.start(wait_registered=False)
            # The store answers again within 1 s of the restart.
            def answers():
                try:
                    code, _ = st.call("Store.Databases", {}, 200)
                    return code == 0
                except TimeoutError:
                    return False
            wait_until(answers, 10, step=0.01, what="stored to answer after restart")
            worst = max(worst, time.monotonic() - t0)
        time.sleep(0.3)
    finally:
        stop.set()
        for w in writers:
            w.join(10)
    for w in writers:
        check(w.error is None, "writer %d failed: %s" % (w.n, w.error))
    limit = 3.0 if harness.SANITIZED else 1.0
    check(worst <= limit, "stored took %.2fs to answer after a restart (limit %.1fs)" % (worst, limit))
    got = _all_records(st)
    acked = sum(len(w.acked) for w in writers)
    check(acked > rounds * 4, "too few writes acked to mean anything: %d" % acked)
    for w in writers:
        for k, v in w.acked.items():
            check(got.get(k) == v, "acked write %s=%s is %r after kill -9" % (k, v, got.get(k)))
        last = "w%d-last" % w.n
        if w.last_acked is not None:
            check(got.get(last) in {w.last_acked} | w.unsure_last,
                  "%s is %r: not the last acked %r nor an unacknowledged later write"
                  % (last, got.get(last), w.last_acked))
    attempted = {}
    for w in writers:
        attempted.update(w.attempted)
    for k, v in got.items():
        check(k in attempted and v in attempted[k], "record %s=%r was never written" % (k, v))


def test_store_checkpoints_replay_after_kill_and_a_clean_stop_leaves_no_log(p):
    st = started(p, "--checkpoint-size", "16")
    model = {}

    def listed():
        r = st.ok("Store.Read", {"database": "ck", "table": "t"}, 20000)
        return {x["key"]: unb64(x["value"]) for x in r["records"]}

    def write_round(n):
        ops = []
        for i in range(20):
            k = "k%03d" % ((n * 7 + i * 13) % 400)
            if (n + i) % 5 == 0:
                ops.append({"delete": k})
                model.pop(k, None)
            else:
                ops.append({"put": {"key": k, "value": b64("%d.%d" % (n, i))}})
                model[k] = "%d.%d" % (n, i)
        st.ok("Store.Txn", {"database": "ck", "table": "t", "ops": ops})

    for n in range(150):
        write_round(n)
    stats = st.ok("Store.Stats", {})
    check(int(stats.get("checkpoints", 0)) >= 2, "no checkpoints after 3000 changes: %r" % stats)
    check(listed() == model, "records read while checkpoints ran differ from the model")
    # kill -9 between checkpoints: the records after the last one come back from the log.
    for n in range(150, 160):
        write_round(n)
    _restart(st, signal.SIGKILL)
    check("replayed the write-ahead log" in st.proc.output(), "no replay after kill -9: %r" % st.proc.output())
    check(listed() == model, "records after kill -9 and replay differ from the model")
    for n in range(160, 170):
        write_round(n)
    # A clean stop puts everything into LMDB: the next start has nothing to replay.
    _restart(st, signal.SIGTERM)
    check("replayed" not in st.proc.output(), "replay after a clean stop: %r" % st.proc.output())
    check(listed() == model, "records after a clean restart differ from the model")
    check(int(st.ok("Store.Stats", {}).get("pending", 0)) == 0, "changes pending right after a clean start")


@harness.serial   # 50 client threads
def test_store_group_commit_batches_50_concurrent_writers(p):
    st = started(p)
    before = st.ok("Store.Stats", {})
    # 50 C clients (svc-bench, one svc_client per thread), each writing back to back.
    r = p.run("svc-bench", "store-client", "--op", "write", "--clients", "50", "--keys", "50",
              "--seconds", "2" if harness.SANITIZED else "1", "--registry", p.registry, timeout=60)
    check(r.code == 0, "svc-bench store-client: %r" % r)
    acked = json.loads(r.out.splitlines()[-1])["value"] * (2 if harness.SANITIZED else 1)
    after = st.ok("Store.Stats", {})
    commits = int(after["commits"]) - int(before["commits"])
    ops = int(after["ops"]) - int(before["ops"])
    check(ops >= acked * 0.9, "stored counted %d ops for about %d acked writes" % (ops, acked))
    # 50 writers waiting at once must share commits: well under one fsync per write.
    check(ops >= 200 and commits * 3 <= ops, "%d writes took %d commits: not batched" % (ops, commits))
    r = st.ok("Store.List", {"prefix": "bench-"})
    check(len(r["keys"]) == 50, "listed %d keys" % len(r["keys"]))


# ---- TTL ------------------------------------------------------------------------------


def test_store_ttl_expires_on_time_and_survives_restart(p):
    st = started(p)
    ttl = 3000
    t_write = time.time()
    st.ok("Store.Write", {"record": {"key": "ttl", "value": b64("v")}, "ttl_ms": ttl})
    st.ok("Store.Write", {"record": {"key": "abs", "value": b64("v"),
                                     "expiry": int((t_write + 3) * 1000)}})
    st.ok("Store.Write", {"record": {"key": "keep", "value": b64("v")}})
    r = st.ok("Store.Read", {"key": "ttl"})
    exp = int(r["records"][0]["expiry"])
    check(abs(exp - (t_write * 1000 + ttl)) < 1000, "expiry %d vs written at %.3f" % (exp, t_write))
    # Restart (kill -9) before the expiry: the records are still there.
    st.proc.signal(signal.SIGKILL)
    st.proc.p.wait(5)
    st.start()
    for k in ("ttl", "abs"):
        code, r = st.call("Store.Read", {"key": k})
        check(code == 0 or time.time() > t_write + 2.0, "%s vanished %.2fs after a %d ms TTL write: %r"
              % (k, time.time() - t_write, ttl, r))

    def gone(k):
        code, _ = st.call("Store.Read", {"key": k})
        return code == 404
    for k in ("ttl", "abs"):
        wait_until(lambda: gone(k), 10, step=0.05, what="%s to expire" % k)
        at = time.time() - t_write
        check(2.0 <= at <= 4.0, "%s expired %.2fs after the write, want 3 s +- 1 s" % (k, at))
    r = st.ok("Store.List", {})
    check(r["keys"] == ["keep"], "list after expiry: %r" % r)
    # Reaped in the background: the table's record count drops, the database stays for "keep".
    st.ok("Store.Delete", {"key": "keep"})
    wait_until(lambda: st.ok("Store.Databases", {})["databases"] == [], 5,
               what="expired records to be reaped")


# ---- CAS and transactions ------------------------------------------------------------------


def test_store_cas_concurrent_incrementers_reach_the_exact_total(p):
    st = started(p)
    n, per = 8, (8 if harness.SANITIZED else 25)
    errors = []
    revisions = []

    def inc():
        for _ in range(per):
            for attempt in range(1000):
                code, r = call(st.address, "Store.Read", {"key": "counter"})
                if code == 404:
                    cur, rev = 0, 0
                elif code == 0:
                    cur, rev = int(unb64(r["records"][0]["value"])), int(r["records"][0]["revision"])
                else:
                    errors.append(r)
                    return
                code, r = call(st.address, "Store.CAS", {"record": {"key": "counter", "value": b64(str(cur + 1))},
                                                         "expect_revision": rev})
                if code:
                    errors.append(r)
                    return
                if r["swapped"]:
                    revisions.append(int(r["revision"]))
                    break
                check(int(r["current"]["revision"]) != rev, "CAS failed but revision unchanged")
            else:
                errors.append("no progress")
                return
    threads = [threading.Thread(target=inc) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not errors, "incrementers failed: %r" % errors[:3])
    r = st.ok("Store.Read", {"key": "counter"})
    check(int(unb64(r["records"][0]["value"])) == n * per, "counter is %s, want %d" % (unb64(r["records"][0]["value"]), n * per))
    check(len(set(revisions)) == n * per, "swap revisions are not unique")
    # expect_revision 0: create only if absent.
    r = st.ok("Store.CAS", {"record": {"key": "counter", "value": b64("0")}, "expect_revision": 0})
    check(not r["swapped"] and unb64(r["current"]["value"]) == str(n * per), "create-if-absent on a present key: %r" % r)


def test_store_txn_applies_all_or_nothing(p):
    st = started(p)
    r = st.ok("Store.Write", {"record": {"key": "a", "value": b64("1")}})
    rev_a = int(r["revision"])
    # A compare that fails: nothing of the ops is applied.
    r = st.ok("Store.Txn", {"compares": [{"key": "a", "revision": rev_a + 100}],
                            "ops": [{"put": {"key": "b", "value": b64("2")}}, {"delete": "a"}]})
    check(not r["succeeded"], "txn with a failing compare succeeded: %r" % r)
    check(st.call("Store.Read", {"key": "b"})[0] == 404, "failed txn wrote b")
    check(st.call("Store.Read", {"key": "a"})[0] == 0, "failed txn deleted a")
    # An invalid op (oversized value) anywhere: refused, nothing applied.
    code, e = st.call("Store.Txn", {"ops": [{"put": {"key": "c", "value": b64("3")}},
                                            {"put": {"key": "d", "value": b64(b"x" * (1024 * 1024 + 1))}}]}, 20000)
    check(code == 413 and "value" in e["detail"], "oversized op: %r" % (e,))
    check(st.call("Store.Read", {"key": "c"})[0] == 404, "refused txn wrote c")
    # A fenced txn whose fence does not hold: nothing applied.
    code, e = st.call("Store.Txn", {"ops": [{"put": {"key": "c", "value": b64("3")}}],
                                    "fence": {"lock": "nolock", "token": 5}})
    check(code == 409, "txn with a stale fence: %r" % (e,))
    check(st.call("Store.Read", {"key": "c"})[0] == 404, "fenced-out txn wrote c")
    # All compares hold: every op applied at one revision.
    r = st.ok("Store.Txn", {"compares": [{"key": "a", "revision": rev_a}, {"key": "zz", "revision": 0}],
                            "ops": [{"put": {"key": "b", "value": b64("2")}}, {"put": {"key": "c", "value": b64("3")}},
                                    {"delete": "a"}]})
    check(r["succeeded"], "txn failed: %r" % r)
    rb = st.ok("Store.Read", {"key": "b"})["records"][0]
    rc = st.ok("Store.Read", {"key": "c"})["records"][0]
    check(rb["revision"] == rc["revision"] == r["revision"], "txn revisions differ: %r %r %r" % (rb, rc, r))
    check(int(r["revision"]) > rev_a, "revision did not grow")
    check(st.call("Store.Read", {"key": "a"})[0] == 404, "txn did not delete a")


# ---- locks ------------------------------------------------------------------------------------


def test_lock_has_at_most_one_holder_over_contended_rounds(p):
    st = started(p)
    rounds = 200 if harness.SANITIZED else 1000
    n = 4
    holder = [None]
    guard = threading.Lock()
    done = [0]
    tokens = []
    errors = []

    def contender(i):
        while True:
            with guard:
                if done[0] >= rounds:
                    return
            code, r = call(st.address, "Sync.Lock", {"id": "L", "ttl_ms": 10000, "wait_ms": 10000,
                                                     "owner": "c%d" % i}, 15000)
            if code:
                errors.append(r)
                return
            with guard:
                if holder[0] is not None:
                    errors.append("c%d got the lock while c%s held it" % (i, holder[0]))
                holder[0] = i
                tokens.append(int(r["token"]))
                done[0] += 1
            time.sleep(0.0005)
            with guard:
                holder[0] = None
            code, e = call(st.address, "Sync.Unlock", {"id": "L", "token": int(r["token"])})
            if code:
                errors.append(e)
                return
    threads = [threading.Thread(target=contender, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not errors, "lock rounds: %r" % errors[:3])
    check(len(tokens) >= rounds, "only %d rounds" % len(tokens))
    check(tokens == sorted(tokens) and len(set(tokens)) == len(tokens), "fencing tokens did not grow with every grant")
    code, e = call(st.address, "Sync.Lock", {"id": "L", "ttl_ms": 5000})
    check(code == 0, "lock free after the rounds: %r" % e)
    code, e = call(st.address, "Sync.Lock", {"id": "L", "ttl_ms": 5000})
    check(code == 409 and "held" in e["detail"], "second lock without wait: %r" % e)


def _lock_waiters(st, lock, n, ttl_ms, wait_ms):
    """Starts n threads, each a Sync.Lock of lock waiting up to wait_ms; got[i] is
    thread i's (code, answer) once it has one."""
    got = [None] * n

    def waiter(i):
        got[i] = call(st.address, "Sync.Lock", {"id": lock, "ttl_ms": ttl_ms, "wait_ms": wait_ms,
                                                "owner": "w%d" % i}, wait_ms + 5000)
    threads = [threading.Thread(target=waiter, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return got, threads


def test_lock_waiters_hold_no_worker_and_each_gets_the_lock_in_turn(p):
    """More waiting Sync.Lock calls than stored has workers (1): another lock is
    granted at once while they wait, and as each holder's lease runs out the
    next waiter gets the lock, every grant with a larger fencing token."""
    st = started(p, "--workers", "1")
    n = 8 if harness.SANITIZED else 20
    first = st.ok("Sync.Lock", {"id": "busy", "ttl_ms": 2000, "owner": "first"})
    got, threads = _lock_waiters(st, "busy", n, 100, 15000)
    time.sleep(0.5)   # the waiters are in stored, waiting for "first"'s 2 s lease to end
    t0 = time.monotonic()
    other = st.ok("Sync.Lock", {"id": "free", "ttl_ms": 10000, "owner": "other"})
    took = time.monotonic() - t0
    for t in threads:
        t.join(30)
    check(took < 1.0, "a free lock took %.1fs while %d calls waited on a held one" % (took, n))
    check(int(other["token"]) > int(first["token"]), "tokens %r %r" % (first, other))
    tokens = []
    for i, r in enumerate(got):
        check(r is not None and r[0] == 0, "waiter %d: %r" % (i, r))
        tokens.append(int(r[1]["token"]))
    check(len(set(tokens)) == n and min(tokens) > int(first["token"]),
          "grants %r after the first %s" % (sorted(tokens), first["token"]))


def test_lock_waiters_are_woken_by_their_own_lock_only(p):
    """20 calls wait for lock A; 100 lock/unlock rounds on lock B must not make
    them try again (Store.Stats counts every op the writer runs); releasing A
    lets one of them in at once."""
    st = started(p)
    n = 20
    holder = st.ok("Sync.Lock", {"id": "A", "ttl_ms": 30000, "owner": "holder"})
    got, threads = _lock_waiters(st, "A", n, 30000, 20000)
    time.sleep(0.5)   # all parked
    before = int(st.ok("Store.Stats", {})["ops"])
    rounds = 100
    for _ in range(rounds):
        r = st.ok("Sync.Lock", {"id": "B", "ttl_ms": 10000, "owner": "b"})
        st.ok("Sync.Unlock", {"id": "B", "token": r["token"]})
    ops = int(st.ok("Store.Stats", {})["ops"]) - before
    # 2 ops a round for B itself (and perhaps an expiry sweep); a retry of the
    # 20 waiters at every release would add 2,000.
    check(ops < 2 * rounds + 50, "%d ops for %d rounds on B: A's waiters were retried" % (ops, rounds))
    t0 = time.monotonic()
    st.ok("Sync.Unlock", {"id": "A", "token": holder["token"]})
    wait_until(lambda: sum(1 for r in got if r is not None) >= 1, 5, what="a waiter to get A")
    check(time.monotonic() - t0 < 1.0, "releasing A took %.1fs to let a waiter in" % (time.monotonic() - t0))
    winners = [r for r in got if r is not None]
    check(len(winners) == 1 and winners[0][0] == 0, "after A's release: %r" % winners)
    # The rest get A in turn, each as the one before unlocks it.
    granted = 0
    deadline = time.monotonic() + 15
    while granted < n and time.monotonic() < deadline:
        for i, r in enumerate(got):
            if r is not None and r != "released":
                check(r[0] == 0, "waiter %d: %r" % (i, r))
                st.ok("Sync.Unlock", {"id": "A", "token": r[1]["token"]})
                got[i] = "released"
                granted += 1
        time.sleep(0.01)
    for t in threads:
        t.join(10)
    check(granted == n, "%d of %d waiters got A in turn" % (granted, n))


def test_stored_stops_promptly_with_a_lock_call_waiting(p):
    """SIGTERM while a Sync.Lock waits (wait_ms 10 s): the waiter is answered
    503 and stored exits cleanly within a couple of seconds, not at the end of
    the wait or of the drain timeout."""
    st = started(p)
    st.ok("Sync.Lock", {"id": "held", "ttl_ms": 30000, "owner": "a"})
    res = []
    t = threading.Thread(target=lambda: res.append(
        call(st.address, "Sync.Lock", {"id": "held", "ttl_ms": 1000, "wait_ms": 10000, "owner": "b"},
             15000)))
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    code = st.proc.stop(15)
    took = time.monotonic() - t0
    t.join(15)
    check(code == 0, "stored exited %r: %s" % (code, st.proc.output()[-500:]))
    check(took < 3.0, "stop took %.1fs with a lock call waiting" % took)
    check(res and res[0][0] != 0 and res[0][1].get("code") == 503,
          "the waiting lock call got %r" % (res,))


def test_lock_stalled_holder_loses_it_and_its_fenced_write_is_rejected(p):
    st = started(p)
    holder = subprocess.Popen([sys.executable, os.path.join(HERE, "storehelper.py"), "hold", st.address, "job", "1000"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True,
                              env=p.env)
    try:
        line = holder.stdout.readline().split()
        check(line[:1] == ["token"], "holder: %r" % line)
        old = int(line[1])
        # While it holds the lock, its fenced write goes through.
        holder.stdin.write("first\n")
        holder.stdin.flush()
        check(holder.stdout.readline().startswith("ok"), "fenced write of the live holder refused")
        os.killpg(holder.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        code, r = call(st.address, "Sync.Lock", {"id": "job", "ttl_ms": 10000, "wait_ms": 5000, "owner": "next"}, 8000)
        waited = time.monotonic() - t0
        check(code == 0, "second client did not get the lock after the holder stalled: %r" % r)
        new = int(r["token"])
        check(new > old, "new token %d not above the old %d" % (new, old))
        check(waited < 3.0, "lease of 1 s took %.2fs to end" % waited)
        st.ok("Store.Write", {"record": {"key": "fenced", "value": b64("second")}, "fence": {"lock": "job", "token": new}})
        os.killpg(holder.pid, signal.SIGCONT)
        holder.stdin.write("stale\n")
        holder.stdin.flush()
        out = holder.stdout.readline()
        check(out.startswith("refused 409"), "stale holder's fenced write: %r" % out)
        r = st.ok("Store.Read", {"key": "fenced"})
        check(unb64(r["records"][0]["value"]) == "second", "stale write landed: %r" % r)
        code, e = st.call("Sync.Unlock", {"id": "job", "token": old})
        check(code == 409, "unlock with the old token: %r" % e)
        code, e = st.call("Sync.Refresh", {"id": "job", "token": old})
        check(code == 409, "refresh with the old token: %r" % e)
    finally:
        try:
            os.killpg(holder.pid, signal.SIGCONT)
            os.killpg(holder.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        holder.wait(5)


def test_lock_survives_stored_restart(p):
    st = started(p)
    r = st.ok("Sync.Lock", {"id": "durable", "ttl_ms": 30000})
    st.proc.signal(signal.SIGKILL)
    st.proc.p.wait(5)
    st.start()
    code, e = st.call("Sync.Lock", {"id": "durable", "ttl_ms": 1000})
    check(code == 409, "a held lock was granted again after kill -9 of stored: %r" % (e,))
    r2 = st.ok("Sync.Refresh", {"id": "durable", "token": int(r["token"]), "ttl_ms": 1000})
    check(r2["token"] == r["token"], "refresh changed the token")
    r3 = st.ok("Sync.Lock", {"id": "durable", "ttl_ms": 1000, "wait_ms": 5000})
    check(int(r3["token"]) > int(r["token"]), "token after restart did not grow")


# ---- leader election -----------------------------------------------------------------------


class Candidate:
    def __init__(self, p, st, name):
        self.name = name
        self.lines = []
        self.proc = p.spawn("candidate-" + name, [sys.executable, "-u", os.path.join(HERE, "storehelper.py"),
                                                  "campaign", st.address, "E", name, "1000"])

    def events(self):
        out = []
        for line in self.proc.output().splitlines():
            f = line.split()
            if len(f) == 3 and f[0] in ("elected", "lost"):
                out.append((f[0], int(f[1]), float(f[2])))
        return out


def test_leader_election_one_leader_per_term_and_failover(p):
    st = started(p)
    obs = pyclient.open_stream(st.address, "svc.store", "Sync.Observe", json.dumps({"name": "E"}).encode(),
                               credit=1000)
    seen = []
    try:
        cands = [Candidate(p, st, "n%d" % i) for i in range(3)]

        def leader():
            code, r = st.call("Sync.Leader", {"name": "E"})
            return r if code == 0 else None
        first = wait_until(leader, 10, what="a leader")
        kills = 1 if harness.SANITIZED else 2
        for _ in range(kills):
            cur = leader() or first
            victim = [c for c in cands if c.name == cur["leader"]]
            check(len(victim) == 1, "leader %r is not a candidate" % cur)
            victim[0].proc.signal(signal.SIGKILL)
            victim[0].proc.p.wait(5)
            t0 = time.monotonic()
            nxt = wait_until(lambda: (lambda r: r if r and int(r["term"]) > int(cur["term"]) else None)(leader()),
                             10, what="a new leader after the leader died")
            check(nxt["leader"] != cur["leader"], "dead leader re-elected")
            check(time.monotonic() - t0 < 4.0, "failover took %.1fs with a 1 s lease" % (time.monotonic() - t0))
            cands = [c for c in cands if c is not victim[0]]
            cands.append(Candidate(p, st, "m%s" % cur["term"]))
        # Resign: the leader gives up its term, another candidate takes over.
        cur = leader()
        st.ok("Sync.Resign", {"name": "E", "term": int(cur["term"])})
        wait_until(lambda: (lambda r: r and int(r["term"]) > int(cur["term"]))(leader()), 10, what="a leader after resign")
        # Observe saw the changes (the first leader, one per failover, the one after resign),
        # with terms that only grow.
        final = int(wait_until(leader, 5, what="the leader after resign")["term"])
        end = time.monotonic() + 5
        while time.monotonic() < end and not any(int(e["term"]) >= final for e in seen):
            m = obs.recv(200)
            if m is None:
                continue
            kind, _, body = m
            check(kind == "STREAM_DATA", "observe ended: %r" % (obs.error,))
            seen.append(json.loads(body))
        terms = [int(e["term"]) for e in seen if e["leader"]]
        check(len(terms) >= kills + 2, "observer saw only %r" % seen)
        check(terms == sorted(terms), "observed terms went back: %r" % terms)
        # One leader per term, and elected terms never overlap in time.
        all_events = []
        for c in cands:
            all_events += [(t, c.name, kind, at) for kind, t, at in c.events()]
        by_term = {}
        for t, name, kind, _ in all_events:
            if kind == "elected":
                by_term.setdefault(t, set()).add(name)
        check(all(len(v) == 1 for v in by_term.values()), "a term with two leaders: %r" % by_term)
    finally:
        obs.cancel()


# ---- bad input ------------------------------------------------------------------------------------


def test_store_bad_input_gets_clear_errors_and_stored_keeps_serving(p):
    st = started(p)
    st.ok("Store.Write", {"record": {"key": "ok", "value": b64("v")}})
    cases = [
        ("Store.Write", {"record": {"key": "", "value": b64("v")}}, 400, "key is empty"),
        ("Store.Write", {"record": {"key": "k" * 369, "value": b64("v")}}, 400, "byte limit"),
        ("Store.Write", {"record": {"key": "big", "value": b64(b"x" * (1024 * 1024 + 1))}}, 413, "value"),
        ("Store.Write", {"database": "d" * 65, "record": {"key": "k"}}, 400, "database name"),
        ("Store.Write", {"table": "t\x01", "record": {"key": "k"}}, 400, "control character"),
        ("Store.Write", {}, 400, "no record"),
        ("Store.Write", {"record": {"key": "k"}, "ttl_ms": -1}, 400, "negative"),
        ("Store.Read", {"key": ""}, 404, None),   # no key, no filters: a listing of the default table
        ("Store.Read", {"database": "nosuch", "key": "k"}, 404, "database \"nosuch\" not found"),
        ("Store.List", {"database": "nosuch"}, 404, "database \"nosuch\" not found"),
        ("Store.Tables", {"database": "nosuch"}, 404, "not found"),
        ("Store.Read", {"key": "k", "prefix": "p"}, 400, "not both"),
        ("Store.Delete", {"key": ""}, 400, "key is empty"),
        ("Store.CAS", {"record": {"key": "k"}, "expect_revision": -1}, 400, "negative"),
        ("Store.Txn", {"ops": [{}]}, 400, "exactly one"),
        ("Store.Txn", {}, 400, "no ops"),
        ("Store.Txn", {"ops": [{"delete": "k"}] * 1025}, 400, "limit"),
        ("Sync.Lock", {"id": ""}, 400, "lock id is empty"),
        ("Sync.Lock", {"id": "x", "ttl_ms": 5}, 400, "ttl_ms"),
        ("Sync.Campaign", {"name": "e", "candidate": ""}, 400, "candidate is empty"),
        ("Sync.Leader", {"name": "none"}, 404, "no leader"),
        ("Store.Write", {"record": {"key": "k"}, "fence": {"lock": "x", "token": 0}}, 400, "not positive"),
        ("Store.Write", {"nosuchfield": 1}, 400, "nosuchfield"),
    ]
    for endpoint, body, code, text in cases:
        c, e = st.call(endpoint, body, 20000)
        if code == 404 and text is None:
            check(c == 0, "%s %r: %r" % (endpoint, body, e))   # Read with no key lists the table
            continue
        check(c == code and (text is None or text in e["detail"]),
              "%s %s: got %r %r, want %d %r" % (endpoint, json.dumps(body)[:80], c, e, code, text))
    # Garbage bodies and frames.
    kind, h, _ = pyclient.call(st.address, "svc.store", "Store.Write", b"\xff\xfe garbage", "application/protobuf")
    check(kind == "ERROR" and h["error"]["code"] == 400, "garbage protobuf body: %r" % (h,))
    kind, h, _ = pyclient.call(st.address, "svc.store", "Store.Write", b"{not json", "application/json")
    check(kind == "ERROR" and h["error"]["code"] == 400, "garbage json body: %r" % (h,))
    r = pyclient.send_raw_frames(st.address, [b"SVC01", b"\xff" * 11], 500)
    check(len(r) == 1, "garbage header: no answer")
    check(pyclient.send_raw_frames(st.address, [b"junk"], 300) == [], "answer to junk frames")
    r = st.ok("Store.Read", {"key": "ok"})
    check(unb64(r["records"][0]["value"]) == "v", "stored stopped serving after bad input")
    check(st.proc.alive(), "stored died")


def test_stored_flags_and_second_instance(p):
    r = p.run("stored", "--help")
    check(r.code == 0 and "--data-dir" in r.out and "SVC_STORE_DIR" in r.out and "--registry" in r.out,
          "stored --help: %r" % r)
    r = p.run("stored", "--map-size", "0")
    check(r.code == 64 and "map size" in r.err, "bad --map-size: %r" % r)
    r = p.run("stored", "--data-dir")
    check(r.code == 64 and "needs a value" in r.err, "missing --data-dir value: %r" % r)
    st = started(p)
    other = p.run("stored", "--data-dir", st.data, "--address", "ipc://%s/other" % p.dir, timeout=10)
    check(other.code == 1 and "in use by another stored" in other.err, "second stored on one data dir: %r" % other)
    check(st.proc.stop() == 0, "stored did not stop cleanly on SIGTERM")


# ---- svcctl ----------------------------------------------------------------------------------------


def test_svcctl_store_and_lock_verbs(p):
    started(p)
    ok = lambda *a, **k: (lambda r: (check(r.code == 0, "svcctl %s: %r" % (" ".join(a), r)), r)[1])(p.ctl(*a, **k))
    ok("store", "write", "user/1", '{"name":"ann"}', "--ttl", "1m", "--metadata", "by=test")
    ok("store", "write", "--database", "app", "--table", "t", "user/2", "plain text")
    ok("store", "write", "user/3", "-", stdin="bytes\x00\x01 here")
    r = ok("store", "read", "user/1")
    check(r.out == '{"name":"ann"}\n', "plain read: %r" % r.out)
    r = ok("store", "read", "-v", "--prefix", "user/")
    lines = r.out.splitlines()
    check(lines[0].split() == ["KEY", "VALUE", "EXPIRY"], "read -v header: %r" % r.out)
    check(lines[1].split()[0] == "user/1" and lines[1].split()[2] in ("1m0s", "59s"), "read -v row: %r" % lines[1])
    check(lines[2].split()[0] == "user/3" and lines[2].split()[2] == "none", "read -v row: %r" % lines[2])
    recs = ok("-o", "json", "store", "read", "--prefix", "user/").json()
    check(recs[0]["value"] == {"name": "ann"} and recs[0]["content_type"] == "application/json"
          and recs[0]["metadata"] == {"by": "test"}, "json value shown as JSON: %r" % recs[0])
    check(recs[1].get("encoding") == "base64" and unb64(recs[1]["value"]) == "bytes\x00\x01 here",
          "binary value as base64: %r" % recs[1])
    r = ok("-o", "json", "store", "read", "--database", "app", "--table", "t", "user/2")
    check(r.json()[0]["value"] == "plain text", "text value: %r" % r.out)
    check(ok("store", "list").out == "user/1\nuser/3\n", "list")
    check(ok("store", "list", "--limit", "1", "--offset", "1").out == "user/3\n", "list with limit/offset")
    check(ok("store", "list", "--suffix", "/1").out == "user/1\n", "list --suffix")
    check(ok("store", "databases").out == "app\ndefault\n", "databases")
    check(ok("store", "tables", "--database", "app").out == "t\n", "tables")
    ok("store", "delete", "user/1")
    r = p.ctl("store", "read", "user/1")
    check(r.code == 1 and 'key "user/1" not found' in r.err, "read of a deleted key: %r" % r)
    r = p.ctl("store", "read", "--database", "nope", "k")
    check(r.code == 1 and 'database "nope" not found' in r.err, "unknown database: %r" % r)
    r = p.ctl("store", "read")
    check(r.code == 64, "read without key: %r" % r)
    r = p.ctl("store", "write", "k", "v", "--ttl", "soon")
    check(r.code == 64 and "invalid duration" in r.err, "bad --ttl: %r" % r)
    # Locks and leaders.
    token = int(ok("lock", "job", "--ttl", "10s").out)
    r = p.ctl("lock", "job")
    check(r.code == 1 and 'lock "job" is held' in r.err, "second lock: %r" % r)
    r = ok("locks")
    check(r.out.split()[:4] == ["ID", "OWNER", "TOKEN", "EXPIRY"] and "job" in r.out, "locks: %r" % r.out)
    r = p.ctl("unlock", "job", str(token + 1000))
    check(r.code == 1 and "no longer holds" in r.err, "unlock with a wrong token: %r" % r)
    ok("unlock", "job", str(token))
    term = int(ok("leader", "campaign", "E", "me", "--ttl", "5s").out)
    r = ok("leader", "E")
    check(r.out.splitlines()[1].split()[:3] == ["E", "me", str(term)], "leader: %r" % r.out)
    ok("leader", "resign", "E", str(term))
    r = p.ctl("leader", "E")
    check(r.code == 1 and "no leader" in r.err, "leader after resign: %r" % r)


def test_store_full_map_refuses_the_whole_txn_and_keeps_serving(p):
    p.start_registry()
    st = Store(p, "--map-size", "2").start()
    st.ok("Store.Write", {"record": {"key": "small", "value": b64("v")}})
    big = b64(b"x" * (1024 * 1024 - 64))
    # The third put cannot fit in a 2 MiB map: the transaction fails as a whole.
    code, e = st.call("Store.Txn", {"ops": [{"put": {"key": "t%d" % i, "value": big}} for i in range(3)]}, 20000)
    check(code == 507 and "store is full" in e["detail"], "txn over the map size: %r %r" % (code, e))
    for i in range(3):
        check(st.call("Store.Read", {"key": "t%d" % i})[0] == 404, "failed txn left t%d behind" % i)
    r = st.ok("Store.Write", {"record": {"key": "after", "value": b64("ok")}})
    check(int(r["revision"]) > 1, "revision after a refused txn: %r" % r)
    check(unb64(st.ok("Store.Read", {"key": "small"})["records"][0]["value"]) == "v", "earlier record lost")


def test_store_longest_names_and_key_with_a_ttl_survive_replay_and_checkpoint(p):
    """The longest database, table and key, with a TTL (so an expiry-index key
    too), are written, replayed after kill -9 and checkpointed at a clean stop."""
    st = started(p)
    scope = {"database": "d" * 64, "table": "t" * 64}
    key = None
    for n in range(420, 300, -1):   # the longest key stored takes (docs: 368)
        code, r = st.call("Store.Write", dict(scope, record={"key": "k" * n, "value": b64("long")},
                                              ttl_ms=3600000))
        if code != 400:
            check(code == 0, "a %d-byte key: %r" % (n, r))
            key = "k" * n
            break
    check(key is not None, "no key length from 300 to 420 bytes was taken")
    for sig in (signal.SIGKILL, signal.SIGTERM):
        _restart(st, sig)
        r = st.ok("Store.Read", dict(scope, key=key))
        check(unb64(r["records"][0]["value"]) == "long", "after %s: %r" % (sig, r))
    r = st.ok("Store.Write", dict(scope, record={"key": "after", "value": b64("ok")}))
    check(int(r["revision"]) > 1, "writes after the restarts: %r" % r)


def test_store_small_map_takes_what_fits_without_a_false_full(p):
    """A 4 MiB map and bursts of 100-put transactions from 4 threads: 600 KB of
    records fit, so none may be refused as "store is full" while checkpoints
    make room; every record reads back."""
    p.start_registry()
    st = Store(p, "--map-size", "4").start()
    errors = []

    def writer(w):
        for t in range(10):
            ops = [{"put": {"key": "w%d-t%d-%03d" % (w, t, i), "value": b64("x" * 50)}} for i in range(100)]
            code, r = st.call("Store.Txn", {"ops": ops}, 20000)
            if code != 0 or not r.get("succeeded"):
                errors.append((w, t, code, r))
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    check(not errors, "transactions refused with room left: %r" % errors[:3])
    r = st.ok("Store.List", {}, 20000)
    check(len(r["keys"]) == 4000, "%d of 4000 records listed" % len(r["keys"]))


def test_c_client_api_and_leader_told_of_its_loss(p):
    st = started(p)
    r = p.run("svc-storeclient", "api", timeout=60)
    check(r.code == 0 and r.out == "ok\n", "svc-storeclient api: %r" % r)
    # A C leader (svc_leader_campaign) stalled past its lease: another takes over,
    # and once it runs again its renewal is refused and it learns it lost.
    lead = p.spawn("storeclient-leader", [os.path.join(BIN, "svc-storeclient"), "leader", "C", "c1", "1000"])
    wait_until(lambda: "elected" in lead.output(), 10, what="the C client to be elected")
    term = int(lead.output().split()[1])
    lead.signal(signal.SIGSTOP)
    code, r = st.call("Sync.Campaign", {"name": "C", "candidate": "other", "ttl_ms": 30000, "wait_ms": 5000}, 8000)
    lead.signal(signal.SIGCONT)
    check(code == 0 and int(r["term"]) > term, "takeover after the leader stalled: %r" % r)
    wait_until(lambda: "lost %d" % term in lead.output(), 5, what="the stalled C leader to learn it lost")
    lead.p.wait(5)
    check(lead.p.returncode == 0, "svc-storeclient leader exit %r" % lead.p.returncode)


def _random_message(rnd, depth=0):
    """Protobuf-shaped noise: fields 1..8 with random varints, strings and submessages."""
    out = b""
    for _ in range(rnd.randint(0, 5)):
        num = rnd.randint(1, 8)
        kind = rnd.random()
        if kind < 0.4:
            out += pyclient._vfield(num, rnd.choice([0, 1, 5, 100, 2 ** 31, 2 ** 63 - 1, -1, rnd.getrandbits(40)]))
        elif kind < 0.7 or depth >= 2:
            s = rnd.choice([b"", b"k", b"leader/x", b"\x00\x01", b"a" * rnd.randint(0, 600), bytes(rnd.getrandbits(8) for _ in range(8))])
            out += pyclient._lfield(num, s)
        elif kind < 0.9:
            out += pyclient._lfield(num, _random_message(rnd, depth + 1))
        else:
            out += bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 12)))   # raw garbage
    return out


def test_store_random_protobuf_requests_never_break_stored(p):
    st = started(p)
    rnd = random.Random(66)
    endpoints = ["Store.Read", "Store.Write", "Store.Delete", "Store.List", "Store.Databases", "Store.Tables",
                 "Store.CAS", "Store.Txn", "Store.Stats", "Sync.Lock", "Sync.Refresh", "Sync.Unlock", "Sync.Locks",
                 "Sync.Campaign", "Sync.Leader", "Sync.Resign"]
    seen = {}
    n = 100 if harness.SANITIZED else 400
    for i in range(n):
        ep = rnd.choice(endpoints)
        body = _random_message(rnd)
        kind, h, _ = pyclient.call(st.address, "svc.store", ep, body, "application/protobuf", timeout_ms=8000)
        code = 0 if kind == "RESPONSE" else h["error"]["code"]
        check(code in (0, 400, 404, 409, 413), "%s with %r: %r" % (ep, body[:80], h.get("error")))
        check(code != 400 or h["error"]["detail"], "400 without a detail")
        seen[code] = seen.get(code, 0) + 1
    print("     answers by code: %r" % seen, file=sys.stderr)
    check(seen.get(0, 0) >= n // 40 and seen.get(400, 0) >= n // 10,
          "noise never reached handlers or validation: %r" % seen)
    st.ok("Store.Write", {"record": {"key": "still", "value": b64("here")}})
    check(st.proc.alive(), "stored died")


def test_stored_clears_stale_reader_slots(p):
    st = started(p)
    st.ok("Store.Write", {"record": {"key": "k", "value": b64("v")}})
    # Another process reads the same LMDB environment and dies holding its reader slot.
    holder = p.spawn("lmdb-reader", [os.path.join(BIN, "svc-bench"), "lmdb-raw", "--op", "hold", st.data])
    wait_until(lambda: "holding" in holder.output(), 10, what="the reader to start")
    holder.kill()
    # (At a restart LMDB resets the reader table anyway: the check that matters runs while serving.)
    wait_until(lambda: 'msg="cleared stale reader slots" count=1' in st.proc.output(), 5,
               what="stored to clear the dead reader's slot")
    check(unb64(st.ok("Store.Read", {"key": "k"})["records"][0]["value"]) == "v", "record lost")
