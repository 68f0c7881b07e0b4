#!/usr/bin/env bash
# Starts the platform in the foreground: registryd, then three greeter
# instances.  Ctrl-C (or SIGTERM) stops them all, services first.
# A plain launcher until the supervisor replaces it.
#
#   deploy/run-local.sh [BIN_DIR]          (make run calls it with build/bin)
#
# Environment: SVC_REGISTRY_ADDRESS (default tcp://127.0.0.1:7700),
# SVC_GREETERS (instances, default 3), SVC_LOG_LEVEL.
set -u
bin=${1:-build/bin}
export SVC_REGISTRY_ADDRESS=${SVC_REGISTRY_ADDRESS:-tcp://127.0.0.1:7700}
n=${SVC_GREETERS:-3}
pids=()
reg_pid=

stop() {
    trap - INT TERM
    echo "run-local: stopping" >&2
    [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
    [ -n "$reg_pid" ] && kill -TERM "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
    exit 0
}
trap stop INT TERM

"$bin/registryd" &
reg_pid=$!
# Wait until the registry answers (or died: address in use, say).
for _ in $(seq 1 50); do
    kill -0 "$reg_pid" 2>/dev/null || { echo "run-local: registryd exited; is $SVC_REGISTRY_ADDRESS in use?" >&2; exit 1; }
    "$bin/svcctl" services >/dev/null 2>&1 && break
    sleep 0.1
done
for _ in $(seq 1 "$n"); do
    "$bin/greeter" &
    pids+=($!)
done

cat >&2 <<TXT

run-local: registryd at $SVC_REGISTRY_ADDRESS and $n greeters are running; Ctrl-C stops them.
In another terminal:
  $bin/svcctl services
  $bin/svcctl service greeter
  $bin/svcctl call greeter Say.Hello '{"name":"John"}'
  $bin/svcctl health greeter
  $bin/svcctl stats greeter

TXT
# Wait until interrupted, or until registryd dies.
while kill -0 "$reg_pid" 2>/dev/null; do
    wait -n 2>/dev/null || sleep 0.2
done
echo "run-local: registryd exited" >&2
stop
