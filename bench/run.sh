#!/usr/bin/env bash
# bench/run.sh BUILD_DIR — the `make bench` table: svc against its floor and its peers.
#
# Starts its own registryd and, per transport (tcp, ipc), the servers of
# plan() below (sockets in a temporary directory, tcp on free 127.0.0.1
# ports).  Then runs every bench of the plan once per round, in the plan's
# order, for BENCH_ROUNDS rounds, one bench at a time (a bench with PROCS > 1
# runs that many client processes at once).  bench/report.py reports each
# row's median over rounds and its ratios to the floor and the peer rows
# measured in the same round (this machine's speed drifts: only runs made
# back to back compare fairly), prints the table and writes every figure as
# one JSON object per line to build/bench/results.jsonl.  Stops every
# process it started, by pid.
#
# Adding a benchmark: start its server with `server NAME CMD...` in plan()
# (its first stdout line, if any, is its address: `addr_of NAME`), add
# `bench PROCS CMD...` lines (each client prints svc-bench's JSON result
# lines, bench/measure.h), and say in bench/report.py's COMPARE what its
# rows are compared with.
#
# Environment: BENCH_SECONDS (per run, default 1), BENCH_SIZE (payload
# bytes, default 64), BENCH_ROUNDS (default 5), BENCH_ONLY (a regular
# expression: only the benches whose command line matches it run).
# The gRPC rows need build/bin/grpc-bench (`make bench` builds it); without
# it they are left out with a note.
# Exit 0, 1 when a step fails (the logs go to stderr), 64 on usage.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = --help ]; then
    echo "usage: bench/run.sh BUILD_DIR" >&2
    [ $# -eq 1 ] && exit 0 || exit 64
fi
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=$1/bin
py=/usr/bin/python3
secs=${BENCH_SECONDS:-1}
size=${BENCH_SIZE:-64}
rounds=${BENCH_ROUNDS:-5}
only=${BENCH_ONLY:-}
out=build/bench/results.jsonl
for p in "$bin/svc-bench" "$bin/registryd"; do
    [ -x "$p" ] || { echo "bench/run.sh: \"$p\" not built (make BUILD=$1 all)" >&2; exit 1; }
done

. "$root/bench/lib.sh"
bench_init bench/run.sh svc-bench

# A fresh address of the current transport for server NAME.
addr() {
    if [ "$transport" = tcp ]; then
        echo "tcp://127.0.0.1:$(free_port)"
    else
        echo "ipc://$tmp/$1.ipc"
    fi
}

# server NAME CMD...: starts a server of this transport (stdout to NAME.out).
servers=()
server() {
    local name=$1
    shift
    "$@" >"$tmp/$name.out" 2>"$tmp/$name-$transport.log" &
    pids+=($!)
    servers+=($!)
}

# addr_of NAME: the address server NAME printed first on stdout (waits up to 5 s).
addr_of() {
    local i
    for i in $(seq 50); do [ -s "$tmp/$1.out" ] && break; sleep 0.1; done
    [ -s "$tmp/$1.out" ] || fail "server $1 printed no address"
    head -n1 "$tmp/$1.out"
}

# bench PROCS CMD...: adds a bench to this transport's plan (run each round).
cases=()
bench() {
    local line
    printf -v line '%q ' "$@"
    if [ -z "$only" ] || [[ "$line" =~ $only ]]; then
        cases+=("$line")
    fi
}

# CPU seconds (user + system) the servers of this transport have used so far.
hz=$(getconf CLK_TCK)
servers_cpu() {
    local p t=0
    for p in "${servers[@]}"; do
        # utime and stime are fields 14 and 15, counted after the ")" of the name.
        t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    "$py" -c "print($t / $hz)"
}

# Runs one bench: PROCS clients at once, each with a time limit, their JSON
# lines into one run file, plus a line with the CPU time the servers used
# meanwhile (report.py: server CPU per call).  In the background, so that a
# signal to this script is handled at once.
n=0
run_case() {
    local procs=$1 i pid cpids=() rc=0 cpu0
    shift
    n=$((n + 1))
    local file="$tmp/r$round-$(printf %03d $n).jsonl"
    cpu0=$(servers_cpu)
    for i in $(seq "$procs"); do
        timeout $((${secs%.*} + 30)) "$@" --seconds "$secs" --size "$size" \
            >"$file.$i" 2>>"$tmp/client.log" &
        pid=$!
        pids+=($pid)
        cpids+=($pid)
    done
    for pid in "${cpids[@]}"; do
        wait "$pid" || rc=1
        forget "$pid"
    done
    [ $rc -eq 0 ] || fail "bench failed: $*"
    cat "$file".* >"$file"
    rm -f "$file".*
    echo "{\"server_cpu_s\":$("$py" -c "print(round($(servers_cpu) - $cpu0, 3))")}" >>"$file"
}

# The plan of one transport: its servers and its benches, in the order each
# round runs them (floor, svc, peer, for each window size).
plan() {
    local echo_addr svc raw g=""
    server raw "$bin/svc-bench" raw-server "$(addr raw)"
    echo_addr=$(addr echo)
    server echo "$bin/svc-bench" bench-echo --name "bench.echo.$transport" \
        --address "$echo_addr" --registry "$registry" --log-level warn
    if [ -x "$bin/grpc-bench" ]; then
        server grpc "$bin/grpc-bench" server "$(addr grpc)"
        g=$(addr_of grpc)
    fi
    raw=$(addr_of raw)
    svc="--registry $registry --service bench.echo.$transport"

    bench 1 "$bin/svc-bench" raw-client "$raw"
    bench 1 "$bin/svc-bench" svc-client $svc --label svc-unary-pb
    bench 1 "$bin/svc-bench" svc-client $svc --label svc-unary-json --codec json
    [ -z "$g" ] || bench 1 "$bin/grpc-bench" client "$g"

    bench 1 "$bin/svc-bench" raw-client "$raw" --in-flight 64
    bench 1 "$bin/svc-bench" svc-client $svc --label svc-unary-pb --in-flight 64
    bench 1 "$bin/svc-bench" svc-client $svc --label svc-unary-json --in-flight 64 --codec json
    bench 1 "$bin/svc-bench" svc-client $svc --label svc-unary-pb-wire --in-flight 64 \
        --client wire
    bench 1 "$bin/svc-bench" svc-client $svc --label svc-unary-pb-inline --in-flight 64 \
        --endpoint Echo.Inline
    bench 4 "$bin/svc-bench" svc-client $svc --label svc-unary-pb --in-flight 16
    [ -z "$g" ] || bench 1 "$bin/grpc-bench" client "$g" --in-flight 64
}

port=$(free_port)
registry=tcp://127.0.0.1:$port
"$bin/registryd" --address "$registry" --log-level warn 2>"$tmp/registryd.log" &
pids+=($!)
wait_port "$port"

for transport in tcp ipc; do
    servers=()
    cases=()
    plan
    for round in $(seq "$rounds"); do
        for c in ${cases[@]+"${cases[@]}"}; do
            eval "run_case $c"
        done
    done
    for p in "${servers[@]}"; do stop "$p"; done
done

# Streams: one-way messages per second, svc against bare ZeroMQ PUSH/PULL
# (bench/stream.c); their own files, stream-N.jsonl, and table (stream_report.py).
sn=0
stream_client() {
    local pid
    sn=$((sn + 1))
    timeout $((${secs%.*} + 20)) "$bin/svc-bench" "$@" --seconds "$secs" --size "$size" \
        >"$tmp/stream-$sn.jsonl" 2>>"$tmp/client.log" &
    pid=$!
    pids+=($pid)
    wait "$pid" || { forget "$pid"; fail "svc-bench $1 failed"; }
    forget "$pid"
}
for t in tcp ipc; do
    if [ $t = tcp ]; then
        src_addr=tcp://127.0.0.1:$(free_port)
        str_addr=tcp://127.0.0.1:$(free_port)
    else
        src_addr=ipc://$tmp/source.ipc
        str_addr=ipc://$tmp/stream.ipc
    fi
    "$bin/svc-bench" raw-source "$src_addr" --size "$size" >"$tmp/src-$t.addr" 2>"$tmp/src-$t.log" &
    src_pid=$!
    pids+=($src_pid)
    "$bin/svc-bench" stream-source --name "bench.stream.$t" --address "$str_addr" \
        --registry "$registry" --log-level warn 2>"$tmp/stream-$t.log" &
    str_pid=$!
    pids+=($str_pid)
    for i in $(seq 50); do [ -s "$tmp/src-$t.addr" ] && break; sleep 0.1; done
    [ -s "$tmp/src-$t.addr" ] || fail "raw-source on $src_addr did not start"
    for r in $(seq "$rounds"); do
        stream_client raw-sink "$(head -n1 "$tmp/src-$t.addr")"
        stream_client stream-client --address "$str_addr" --service "bench.stream.$t"
        stream_client stream-client --address "$str_addr" --service "bench.stream.$t" \
            --endpoint Stream.Sink
    done
    stop "$src_pid"
    stop "$str_pid"
done

echo "make bench: ${size}-byte payloads, loopback tcp and ipc (unix sockets), median of $rounds" \
     "rounds of ${secs} s runs (after 0.5 s warm-up each); $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  raw-zmq: bare DEALER/ROUTER echo (the floor); svc-unary-pb/-json: bench.echo Echo.Call" \
     "(worker pool), protobuf / JSON bodies;"
echo "  -inline: Echo.Inline (handler on the loop thread); procs 4: four client processes at once;"
echo "  1 in flight: svc_call / svc_client_call_raw; more: svc_call_cb from one thread;"
echo "  -wire: the same calls from the bare wire encoder, no client library (bench/svcpipe.h);"
echo "  grpc-unary: gRPC C++ async echo, same messages (the peer)."
[ -x "$bin/grpc-bench" ] || echo "  (no $bin/grpc-bench: gRPC rows left out; make bench builds it)"
echo
"$py" bench/report.py "$out" "$tmp"/r*.jsonl
echo
echo "svc-bench streams: messages per second one way, ${size}-byte payload, one stream," \
     "median of $rounds rounds (raw-oneway: bare ZeroMQ PUSH/PULL, one frame per message)"
"$py" bench/stream_report.py "$out" "$tmp"/stream-*.jsonl
echo
echo "wrote $out"
bench/broker.sh "$1"

echo
bench/supervisor.sh "$1"   # supervisor restart latency vs s6, runit, supervisord; footprint; idle CPU

echo
bench/store.sh "$1" || fail "bench/store.sh failed"
