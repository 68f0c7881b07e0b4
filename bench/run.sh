#!/usr/bin/env bash
# bench/run.sh BUILD_DIR — svc unary calls against bare ZeroMQ, over tcp and ipc.
#
# Starts its own registryd and, per transport, a raw-server and a bench-echo
# (sockets in a temporary directory, tcp on free 127.0.0.1 ports).  Runs one
# client at a time with one request in flight, alternating raw and svc for
# BENCH_ROUNDS rounds; reports each bench's median run and the median of the
# per-round ratios (runs made back to back: the machine's speed drifts),
# prints a table and writes every figure as one JSON
# object per line to build/bench/results.jsonl.  Stops every process it
# started, by pid.
#
# Environment: BENCH_SECONDS (per run, default 3), BENCH_SIZE (payload
# bytes, default 64), BENCH_ROUNDS (default 3).
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
secs=${BENCH_SECONDS:-3}
size=${BENCH_SIZE:-64}
rounds=${BENCH_ROUNDS:-3}
out=build/bench/results.jsonl
for p in "$bin/svc-bench" "$bin/registryd"; do
    [ -x "$p" ] || { echo "bench/run.sh: \"$p\" not built (make BUILD=$1 all)" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/svc-bench.XXXXXX")
pids=()

# Drops a pid that has been reaped from the list of processes to stop.
forget() {
    local p keep=()
    for p in ${pids[@]+"${pids[@]}"}; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=(${keep[@]+"${keep[@]}"})
}

# Stops one process we started: SIGTERM, up to 5 s, then SIGKILL.
stop() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
}

cleanup() {
    local p
    for p in ${pids[@]+"${pids[@]}"}; do stop "$p"; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    local f
    echo "bench/run.sh: $*" >&2
    for f in "$tmp"/*.log; do
        [ -s "$f" ] && { echo "--- $(basename "$f")" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 5 s for something to listen on a 127.0.0.1 port.
wait_port() {
    "$py" - "$1" <<'PY' || fail "nothing listens on port $1"
import socket, sys, time
end = time.time() + 5
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

# Runs one client with a time limit; its JSON lines go to run-N.jsonl.  In the
# background, so that a signal to this script is handled at once.
n=0
client() {
    local pid
    n=$((n + 1))
    timeout $((${secs%.*} + 20)) "$bin/svc-bench" "$@" --seconds "$secs" --size "$size" \
        >"$tmp/run-$n.jsonl" 2>>"$tmp/client.log" &
    pid=$!
    pids+=($pid)
    wait "$pid" || { forget "$pid"; fail "svc-bench $1 failed"; }
    forget "$pid"
}

port=$(free_port)
registry=tcp://127.0.0.1:$port
"$bin/registryd" --address "$registry" --log-level warn 2>"$tmp/registryd.log" &
pids+=($!)
wait_port "$port"

for t in tcp ipc; do
    if [ $t = tcp ]; then
        raw_addr=tcp://127.0.0.1:$(free_port)
        echo_addr=tcp://127.0.0.1:$(free_port)
    else
        raw_addr=ipc://$tmp/raw.ipc
        echo_addr=ipc://$tmp/echo.ipc
    fi
    "$bin/svc-bench" raw-server "$raw_addr" >"$tmp/raw-$t.addr" 2>"$tmp/raw-$t.log" &
    raw_pid=$!
    pids+=($raw_pid)
    "$bin/svc-bench" bench-echo --name "bench.echo.$t" --address "$echo_addr" \
        --registry "$registry" --log-level warn 2>"$tmp/echo-$t.log" &
    echo_pid=$!
    pids+=($echo_pid)
    for i in $(seq 50); do [ -s "$tmp/raw-$t.addr" ] && break; sleep 0.1; done
    [ -s "$tmp/raw-$t.addr" ] || fail "raw-server on $raw_addr did not start"

    for r in $(seq "$rounds"); do
        client raw-client "$(head -n1 "$tmp/raw-$t.addr")"
        client svc-client --registry "$registry" --service "bench.echo.$t" --endpoint Echo.Call
        client svc-client --registry "$registry" --service "bench.echo.$t" --endpoint Echo.Inline \
            --label svc-unary-inline
    done
    stop "$raw_pid"
    stop "$echo_pid"
done

echo "svc-bench: 1 request in flight, ${size}-byte payload, median of $rounds rounds of ${secs} s runs" \
     "(after 0.5 s warm-up each)"
echo "  svc requests also carry the SVC01 signature and header frames; their protobuf body" \
     "is the payload + 2 bytes"
echo "  svc-unary: handler on the worker pool (svc_handle, the default);" \
     "svc-unary-inline: on the event-loop thread (svc_handle_inline)"
echo
"$py" bench/report.py "$out" "$tmp"/run-*.jsonl
echo
echo "wrote $out"
bench/store.sh "$1" || fail "bench/store.sh failed"
