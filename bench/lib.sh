# bench/lib.sh — what the bench scripts share; source it, then call
# bench_init.  Needs bash with `set -euo pipefail` and $py (python3).
#
#   bench_init NAME TMP_PREFIX   makes $tmp (removed at exit), an empty
#                                $pids, and traps that stop every pid in
#                                $pids at exit (or on INT/TERM)
#   pids+=($!)                   after starting a process to be stopped
#   stop PID                     SIGTERM, up to 5 s, then SIGKILL; reaps it
#   fail MESSAGE                 "NAME: MESSAGE" and the tails of $tmp/*.log
#                                on stderr, exit 1
#   free_port                    a free 127.0.0.1 tcp port
#   wait_port PORT               waits up to 10 s for a listener on it

bench_init() {
    bench_name=$1
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/$2.XXXXXX")
    pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

# Drops a pid that has been reaped from the list of processes to stop.
forget() {
    local p keep=()
    for p in ${pids[@]+"${pids[@]}"}; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=(${keep[@]+"${keep[@]}"})
}

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

bench_cleanup() {
    local p
    for p in ${pids[@]+"${pids[@]}"}; do stop "$p"; done
    rm -rf "$tmp"
}

fail() {
    local f
    echo "$bench_name: $*" >&2
    for f in "$tmp"/*.log; do
        [ -s "$f" ] && { echo "--- $(basename "$f")" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() {
    "$py" - "$1" <<'PY' || fail "nothing listens on port $1"
import socket, sys, time
end = time.time() + 10
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}
