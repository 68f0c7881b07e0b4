#!/bin/sh
# Installs the Debian packages svc needs to build, test and benchmark,
# only those that are missing. Safe to run again; does nothing when all
# are present. Needs root (or sudo) only when something is missing.
#
# Usage: deploy/install-deps.sh [--bench] [--print]
#   --bench   the peers `make bench` measures svc against (installed only
#             for the benchmark, never needed to build, run or test svc)
#   --print   list the packages and exit, installing nothing
set -eu

PACKAGES="
build-essential
pkg-config
libev-dev
libzmq3-dev
libprotobuf-c-dev
protobuf-c-compiler
libjansson-dev
liblmdb-dev
libbsd-dev
zlib1g-dev
libsystemd-dev
libssl-dev
clang
libclang-rt-14-dev
llvm
python3
python3-zmq
systemd
"

# Peers and tools for bench/ only, one per line.
BENCH_PACKAGES="
nats-server
libnats-dev
s6
runit
supervisor
libgrpc++-dev
protobuf-compiler-grpc
libprotobuf-dev
protobuf-compiler
redis-server
redis-tools
etcd-server
etcd-client
"

for a in "$@"; do
    case $a in
    --bench) PACKAGES=$BENCH_PACKAGES ;;
    --print) print=1 ;;
    *) echo "install-deps: unknown option \"$a\" (want --bench or --print)" >&2; exit 64 ;;
    esac
done
if [ -n "${print:-}" ]; then
    echo $PACKAGES
    exit 0
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps: not root and no sudo; install these packages:$missing" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing >&2
