#!/usr/bin/env bash
# bench/store.sh BUILD_DIR — stored against raw LMDB, Redis and etcd, in one run.
#
# 100-byte values (BENCH_STORE_SIZE), 1 and 50 clients, BENCH_STORE_SECONDS
# (default 2) per run, keys bench-0..999, all of it BENCH_STORE_ROUNDS times
# (default 2; each row is the median over rounds, each ratio the median of
# the ratios within a round: the shared disk's speed drifts):
#   raw LMDB (in-process, svc-bench lmdb-raw): one put per fsync'd commit,
#     50 puts per commit (what group commit can reach at best), gets
#   stored (svc-bench store-client, one svc_client per thread): Store.Write,
#     each acked only after its commit is on disk; Store.Read
#   redis-server, appendonly yes, appendfsync always and everysec
#     (redis-benchmark SET / GET)
#   etcd (etcd-server, bench/etcd_client.py over its v3 JSON gateway) put / get
# Peers missing from the machine are skipped with a note (make bench installs
# them: deploy/install-deps.sh --bench).  Data lives in a temp dir on the
# same disk as TMPDIR.  Prints a table and the ratios; appends the rows to
# build/bench/store.jsonl.  Stops every process it started, by pid.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = --help ]; then
    echo "usage: bench/store.sh BUILD_DIR" >&2
    [ $# -eq 1 ] && exit 0 || exit 64
fi
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$1/bin
py=/usr/bin/python3
secs=${BENCH_STORE_SECONDS:-2}
rounds=${BENCH_STORE_ROUNDS:-2}
size=${BENCH_STORE_SIZE:-100}
out=build/bench/store.jsonl
for p in "$bin/svc-bench" "$bin/registryd" "$bin/stored"; do
    [ -x "$p" ] || { echo "bench/store.sh: \"$p\" not built (make BUILD=$1 all)" >&2; exit 1; }
done

. "$root/bench/lib.sh"
TMPDIR=${TMPDIR:-/var/tmp} bench_init bench/store.sh svc-store-bench
rows=$tmp/rows.jsonl
: >"$rows"
# row NAME CLIENTS VALUE: one result line of this round
row() { printf '{"bench":"%s","clients":%s,"value":%s,"unit":"ops/s","round":%s}\n' "$1" "$2" "$3" "$round" >>"$rows"; }
note() { "$py" -c 'import json,sys; print(json.dumps({"note": " ".join(sys.argv[1:])}))' "$@" >>"$rows"; }

for round in $(seq "$rounds"); do
# --- raw LMDB: the floor ---------------------------------------------------------
for spec in "put 1 lmdb-put-commit1" "put 50 lmdb-put-commit50" "get 1 lmdb-get"; do
    set -- $spec
    v=$("$bin/svc-bench" lmdb-raw --op "$1" --batch "$2" --seconds "$secs" --size "$size" "$tmp/lmdb-$round" |
        "$py" -c 'import json,sys; print(json.load(sys.stdin)["value"])') || fail "lmdb-raw failed"
    row "$3" 1 "$v"
done

# --- stored ------------------------------------------------------------------------
rport=$(free_port)
registry=tcp://127.0.0.1:$rport
"$bin/registryd" --address "$registry" --log-level warn 2>>"$tmp/registryd.log" &
rpid0=$!
pids+=($rpid0)
wait_port "$rport"
"$bin/stored" --registry "$registry" --data-dir "$tmp/stored-$round" --address "ipc://$tmp/stored.ipc" \
    --log-level warn 2>>"$tmp/stored.log" &
spid=$!
pids+=($spid)
# "write 50 async": 50 calls in flight from one thread, as redis-benchmark's
# 50 connections run on one event loop; without it, 50 threads.
for spec in "write 1" "write 50" "write 50 async" "read 1" "read 50" "read 50 async"; do
    set -- $spec
    v=$(timeout $((${secs%.*} + 60)) "$bin/svc-bench" store-client --registry "$registry" --op "$1" \
            --clients "$2" --seconds "$secs" --size "$size" ${3:+--async} 2>>"$tmp/client.log" |
        "$py" -c 'import json,sys; print(json.load(sys.stdin)["value"])') || fail "store-client $1 failed"
    row "stored-$1${3:+-async}" "$2" "$v"
done
stats=$("$bin/svcctl" --registry "$registry" call svc.store Store.Stats '{}' 2>/dev/null || echo '{}')
note "stored group commit in round $round: $stats"
stop "$spid"
stop "$rpid0"

# --- redis ---------------------------------------------------------------------------
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    for fsync in always everysec; do
        port=$(free_port)
        mkdir -p "$tmp/redis-$fsync-$round"
        redis-server --port "$port" --bind 127.0.0.1 --dir "$tmp/redis-$fsync-$round" --appendonly yes \
            --appendfsync "$fsync" --save '' --daemonize no --logfile "$tmp/redis-$fsync.log" &
        rpid=$!
        pids+=($rpid)
        wait_port "$port"
        for c in 1 50; do
            # Enough requests for about secs seconds at a rate well above what we measure.
            for t in set get; do
                [ "$fsync" = everysec ] && [ "$t" = get ] && continue   # GET does not touch the log
                n=$([ "$c" = 1 ] && echo $((secs * 20000)) || echo $((secs * 60000)))
                [ "$fsync" = always ] && [ "$t" = set ] && [ "$c" = 1 ] && n=$((secs * 3000))
                v=$(timeout $((${secs%.*} * 10 + 60)) redis-benchmark -p "$port" -t "$t" -n "$n" -c "$c" \
                        -d "$size" -r 1000 -q --csv 2>>"$tmp/redis-bench.log" |
                    "$py" -c 'import csv,sys
rows=[r for r in csv.reader(sys.stdin) if r and r[0] in ("SET","GET")]
print(rows[0][1])') || fail "redis-benchmark failed"
                name=redis-$t
                [ "$t" = set ] && name=redis-set-$fsync
                row "$name" "$c" "$v"
            done
        done
        stop "$rpid"
    done
else
    note "redis-server / redis-benchmark not installed: redis rows skipped"
fi

# --- etcd ------------------------------------------------------------------------------
if command -v etcd >/dev/null; then
    cport=$(free_port)
    pport=$(free_port)
    etcd --name bench --data-dir "$tmp/etcd-$round" \
        --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "bench=http://127.0.0.1:$pport" --log-level error >"$tmp/etcd.log" 2>&1 &
    epid=$!
    pids+=($epid)
    wait_port "$cport"
    for spec in "put 1" "put 50" "get 1" "get 50"; do
        set -- $spec
        v=$(timeout $((${secs%.*} + 120)) "$py" bench/etcd_client.py "http://127.0.0.1:$cport" "$1" "$2" \
                "$secs" "$size" 1000 2>>"$tmp/etcd-client.log" |
            "$py" -c 'import json,sys; print(json.load(sys.stdin)["value"])') || fail "etcd client failed"
        row "etcd-$1" "$2" "$v"
    done
    stop "$epid"
else
    note "etcd not installed: etcd rows skipped"
fi

done

mkdir -p "$(dirname "$out")"
cat "$rows" >>"$out"
echo
echo "store bench: ${size}-byte values, ${secs} s per run, median of $rounds rounds; every write counted was acknowledged durably"
echo "  (stored: after its LMDB commit's fsync; redis always: after the AOF fsync; etcd: after the raft log fsync)"
echo
"$py" bench/store_report.py "$rows"
