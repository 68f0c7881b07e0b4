#!/usr/bin/env bash
# bench/broker.sh BUILD_DIR — brokerd against raw ZeroMQ PUB/SUB, NATS core and JetStream.
#
# One run, all on loopback tcp, 64-byte messages (BENCH_SIZE), each figure a
# BENCH_SECONDS run (default 3), BENCH_ROUNDS rounds (default 2, median kept):
#   pub/sub 1 -> 1 and 1 -> 4 subscribers, messages delivered per second:
#     raw ZeroMQ PUB/SUB (one message per send: the floor), brokerd, nats-server;
#   durable publishes acknowledged per second, 1 in flight and many in flight:
#     brokerd (ack after fsync'd commit; RPC with 1 and 16 threads, asynchronous
#     over BRK1 with up to 4096 in flight), JetStream (js_Publish, and
#     js_PublishAsync with 4096 pending; JetStream acks before fsync);
#   consume-and-ack, events per second: brokerd (fetch 500, batch ack),
#     JetStream pull consumer (fetch 500, ack each).
# The NATS peers need Debian's nats-server and libnats-dev (BENCH_PACKAGES in
# deploy/install-deps.sh); without them their rows say "not installed".
# Prints a table with ratios and writes build/bench/broker.jsonl.  Stops
# every process it started, by pid.  Exit 0, 1 when a step fails, 64 usage.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = --help ]; then
    echo "usage: bench/broker.sh BUILD_DIR" >&2
    [ $# -eq 1 ] && exit 0 || exit 64
fi
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$1/bin
py=/usr/bin/python3
secs=${BENCH_SECONDS:-3}
size=${BENCH_SIZE:-64}
rounds=${BENCH_ROUNDS:-2}
out=build/bench/broker.jsonl
for p in "$bin/svc-brokertool" "$bin/registryd" "$bin/brokerd"; do
    [ -x "$p" ] || { echo "bench/broker.sh: \"$p\" not built (make BUILD=$1 all)" >&2; exit 1; }
done
mkdir -p build/bench
. "$root/bench/lib.sh"
bench_init bench/broker.sh svc-bench-broker

# run NAME CMD... : runs a client with a time limit, appends {"name":NAME, ...its JSON} to $out.
run() {
    local name=$1 pid line
    shift
    timeout $((${secs%.*} * 2 + 60)) "$@" >"$tmp/run.out" 2>>"$tmp/client.log" &
    pid=$!
    wait "$pid" || fail "$name: $* failed"
    line=$(grep '^{' "$tmp/run.out" | tail -n 1)
    [ -n "$line" ] || fail "$name printed no result"
    echo "{\"name\":\"$name\",${line#\{}" >>"$out"
}

: >"$out"
rport=$(free_port)
export SVC_REGISTRY_ADDRESS=tcp://127.0.0.1:$rport
"$bin/registryd" --address "$SVC_REGISTRY_ADDRESS" --log-level warn 2>"$tmp/registryd.log" &
pids+=($!)
wait_port "$rport"
bport=$(free_port)
"$bin/brokerd" --data-dir "$tmp/broker" --pubsub-address "tcp://127.0.0.1:$bport" \
    --log-level warn 2>"$tmp/brokerd.log" &
pids+=($!)
wait_port "$bport"
for i in $(seq 50); do
    "$bin/svcctl" call svc.broker Broker.Info '{}' >/dev/null 2>&1 && break
    sleep 0.1
done

nats=""
if command -v nats-server >/dev/null 2>&1 && [ -f /usr/include/nats/nats.h ]; then
    cc -O2 -o "$tmp/natsbench" bench/nats/natsbench.c -lnats 2>"$tmp/natsbench-build.log" \
        || fail "cannot build bench/nats/natsbench.c"
    nport=$(free_port)
    nats-server -a 127.0.0.1 -p "$nport" -js -sd "$tmp/js" >"$tmp/nats.log" 2>&1 &
    pids+=($!)
    wait_port "$nport"
    nats=nats://127.0.0.1:$nport
fi

BT="$bin/svc-brokertool"
for r in $(seq "$rounds"); do
    for k in 1 4; do
        run "zmq-pubsub-1to$k" "$BT" bench-zmq --subs $k --seconds "$secs" --size "$size"
        run "svc-pubsub-1to$k" "$BT" bench-pubsub --subs $k --seconds "$secs" --size "$size"
        [ -n "$nats" ] && run "nats-pubsub-1to$k" "$tmp/natsbench" "$nats" pubsub $k "$secs" "$size"
    done
    run "svc-publish-1" "$BT" bench-epub --inflight 1 --stream b1 --seconds "$secs" --size "$size"
    run "svc-publish-rpc16" "$BT" bench-epub --inflight 16 --stream b1 --seconds "$secs" --size "$size"
    run "svc-publish-async" "$BT" bench-epub-async --stream b2 --seconds "$secs" --size "$size"
    run "svc-consume-ack" "$BT" bench-consume --stream b2 --group g$r --seconds "$secs"
    if [ -n "$nats" ]; then
        run "js-publish-1" "$tmp/natsbench" "$nats" jspub 1 "$secs" "$size"
        run "js-publish-async" "$tmp/natsbench" "$nats" jspub 4096 "$secs" "$size"
        run "js-consume-ack" "$tmp/natsbench" "$nats" jsconsume "$secs"
    fi
done

"$py" - "$out" "$size" "$secs" "$rounds" <<'PY'
import json, statistics, sys
path, size, secs, rounds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
runs = {}
for line in open(path):
    r = json.loads(line)
    v = r.get("delivered_per_s") or r.get("acked_per_s") or r.get("consumed_per_s") or 0
    runs.setdefault(r["name"], []).append(float(v))
med = {k: statistics.median(v) for k, v in runs.items()}
def f(k):
    return "%12s" % ("{:,.0f}".format(med[k]) if k in med else "not installed")
def ratio(a, b):
    return "%6.2f" % (med[a] / med[b]) if a in med and b in med and med[b] else "     -"
print("broker bench: %s-byte messages, loopback tcp, median of %s rounds of %s s runs" % (size, rounds, secs))
print("  pub/sub: messages delivered per second (all subscribers together); raw ZeroMQ sends")
print("  one message per zmq_send, brokerd and NATS batch on the wire")
print()
print("%-34s %12s %12s %12s %8s %8s" % ("pub/sub", "raw zmq", "svc broker", "nats core", "svc/zmq", "svc/nats"))
for k in (1, 4):
    z, s, n = "zmq-pubsub-1to%d" % k, "svc-pubsub-1to%d" % k, "nats-pubsub-1to%d" % k
    print("%-34s %s %s %s %8s %8s" % ("1 -> %d" % k, f(z), f(s), f(n), ratio(s, z), ratio(s, n)))
print()
print("%-34s %12s %12s %8s" % ("durable, acknowledged per second", "svc broker", "jetstream", "svc/js"))
print("%-34s %s %s %8s" % ("publish, 1 in flight", f("svc-publish-1"), f("js-publish-1"),
                             ratio("svc-publish-1", "js-publish-1")))
print("%-34s %s %12s %8s" % ("publish, 16 in flight (RPC)", f("svc-publish-rpc16"), "", ""))
print("%-34s %s %s %8s" % ("publish, 4096 in flight (async)", f("svc-publish-async"), f("js-publish-async"),
                             ratio("svc-publish-async", "js-publish-async")))
print("%-34s %s %s %8s" % ("consume and ack", f("svc-consume-ack"), f("js-consume-ack"),
                             ratio("svc-consume-ack", "js-consume-ack")))
print()
print("  svc acknowledges a publish after its fsync'd LMDB commit (group commit); JetStream")
print("  acknowledges before fsync (sync_interval), so its figures carry less durability.")
PY
echo
echo "wrote $out"
