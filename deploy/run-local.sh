#!/usr/bin/env bash
# Runs the platform in the foreground: the supervisor with the manifests in
# deploy/manifests (registryd, then three greeter instances) on a local state
# directory.  Ctrl-C (or SIGTERM) stops everything, dependants first.
#
#   deploy/run-local.sh [BIN_DIR]          (make run calls it with build/bin)
#
# Environment: the defaults come from deploy/svc.env (the platform config);
# SVC_REGISTRY_ADDRESS, SVC_LOG_LEVEL override it.  SVC_STATE_DIR (default
# build/run: logs, pid records, sockets), SVC_MANIFESTS (default deploy/manifests).
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "${1:-$root/build/bin}" && pwd) || exit 1
while IFS='=' read -r k v; do
    case $k in ''|\#*) continue ;; esac
    [ -z "${!k:-}" ] && export "$k=$v"
done < "$root/deploy/svc.env"
export SVC_STATE_DIR=${SVC_STATE_DIR:-$root/build/run}
export SVC_MANIFESTS=${SVC_MANIFESTS:-$root/deploy/manifests}
export SVC_SUPERVISOR_ADDRESS=${SVC_SUPERVISOR_ADDRESS:-ipc://$SVC_STATE_DIR/supervisor.sock}

cat >&2 <<TXT
run-local: supervisor with $SVC_MANIFESTS, state in $SVC_STATE_DIR; Ctrl-C stops everything.
In another terminal:
  export SVC_STATE_DIR=$SVC_STATE_DIR SVC_REGISTRY_ADDRESS=$SVC_REGISTRY_ADDRESS
  $bin/svcctl ps
  $bin/svcctl services
  $bin/svcctl call greeter Say.Hello '{"name":"John"}'
  $bin/svcctl logs -f greeter
  $bin/svcctl restart greeter

TXT
exec "$bin/supervisor"
