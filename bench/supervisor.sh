#!/usr/bin/env bash
# bench/supervisor.sh BUILD_DIR — svc's supervisor against s6, runit and supervisord.
#
# Restart latency after SIGKILL (median and p99 over BENCH_KILLS kills,
# default 100) until the new process is ready, against the floor (spawning
# the program without a supervisor) and the peers; memory of each with 50
# instances; svc's idle CPU time over BENCH_IDLE_SECONDS (default 60).
# The peers are the Debian packages s6, runit and supervisor
# (deploy/install-deps.sh --bench).  Table on stdout; figures as JSON lines
# in build/bench/supervisor.jsonl.  Details: bench/restart/bench.py.
set -euo pipefail
if [ $# -ne 1 ] || [ "$1" = --help ]; then
    echo "usage: bench/supervisor.sh BUILD_DIR" >&2
    [ $# -eq 1 ] && exit 0 || exit 64
fi
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "$1" && pwd)
for p in supervisor registryd; do
    [ -x "$build/bin/$p" ] || { echo "bench/supervisor.sh: \"$build/bin/$p\" not built" >&2; exit 1; }
done
for p in s6-supervise s6-svscan runsv runsvdir supervisord; do
    command -v "$p" >/dev/null || { echo "bench/supervisor.sh: \"$p\" missing (deploy/install-deps.sh --bench)" >&2; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/svc-supbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cc -O2 -o "$tmp/svc-restart-prog" "$root/bench/restart/prog.c" $(pkg-config --cflags --libs libsystemd)
mkdir -p "$root/build/bench"
/usr/bin/python3 "$root/bench/restart/bench.py" "$build/bin" "$tmp/svc-restart-prog" "$tmp" \
    "$root/build/bench/supervisor.jsonl" || { tail -n 30 "$tmp/bench-restart.log" >&2; exit 1; }
echo
echo "wrote build/bench/supervisor.jsonl"
