#!/usr/bin/env bash
# Runs every test suite and ends with one line "N passed, N failed".
#
#   tests/run.sh            all suites (expects `make all asan fuzz-build` done)
#
# Suites: unit tests (build/tests), integration tests against build/bin,
# the same two under AddressSanitizer + UndefinedBehaviorSanitizer
# (build/asan; any sanitizer report fails the test that caused it), and a
# short libFuzzer smoke run of every fuzz target.  Exit status 1 if anything
# failed.  FUZZ_SMOKE_SECONDS (default 15) sets the fuzz time per target
# (two run at once); SVC_TEST_JOBS (default 3) how many integration tests
# run at once (tests marked @harness.serial run alone).
set -u
cd "$(dirname "$0")/.."

PY=/usr/bin/python3
# Integration tests run this many at once (each is isolated; @serial ones run alone).
jobs=${SVC_TEST_JOBS:-3}
total_pass=0
total_fail=0
san_dir=$(mktemp -d -t svc-san-XXXXXX)
trap 'rm -rf "$san_dir"' EXIT

# Adds the counts from a line "<suite>: N passed, N failed" in $1 (a file).
count() {
    local line p f
    line=$(grep -E '^[A-Za-z0-9_./-]+: [0-9]+ passed, [0-9]+ failed$' "$1" | tail -n 1)
    if [ -z "$line" ]; then
        echo "suite $2 printed no result line: counted as 1 failure" >&2
        total_fail=$((total_fail + 1))
        return
    fi
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\1/')
    f=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed, ([0-9]+) failed/\2/')
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    echo "$2 -> $line"
}

run_suite() {   # name, command...
    local name=$1 out
    shift
    out=$(mktemp)
    echo "== $name"
    "$@" > "$out" 2> >(sed "s/^/   /" >&2)
    wait
    cat "$out"
    count "$out" "$name"
    rm -f "$out"
}

run_units() {   # build dir
    local t
    for t in "$1"/tests/test_*; do
        [ -x "$t" ] || continue
        run_suite "$(basename "$1")/$(basename "$t")" "$t"
    done
}

export SVC_LOG_LEVEL=warn

run_units build
run_suite integration $PY tests/integration/run.py -j "$jobs" build/bin

export ASAN_OPTIONS="log_path=$san_dir/asan:detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="log_path=$san_dir/ubsan:print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
export SVC_SAN_DIR=$san_dir
run_units build/asan
run_suite integration-asan $PY tests/integration/run.py -j "$jobs" build/asan/bin
# Unit tests report their own failures; a sanitizer report from them fails too.
if [ -n "$(ls -A "$san_dir" 2>/dev/null)" ]; then
    echo "sanitizer reports:" >&2
    for f in "$san_dir"/*; do echo "--- $f" >&2; head -50 "$f" >&2; done
    total_fail=$((total_fail + 1))
fi
unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS SVC_SAN_DIR

# Fuzz smoke: every target for FUZZ_SMOKE_SECONDS, two at a time.
fuzz_dir=$(mktemp -d)
fuzz_pass=0
fuzz_fail=0
fuzz_one() {   # target binary; writes $fuzz_dir/<name>.out and .rc
    local f=$1 n corpus seeds rc=0
    n=$(basename "$f")
    corpus=$(mktemp -d)
    seeds=tests/fuzz/corpus/$n
    [ -d "$seeds" ] || seeds=
    "$f" -max_total_time="${FUZZ_SMOKE_SECONDS:-15}" -max_len=65536 -artifact_prefix="$fuzz_dir/$n-" \
        "$corpus" $seeds \
        > "$fuzz_dir/$n.out" 2>&1 || rc=$?
    echo "$rc" > "$fuzz_dir/$n.rc"
    rm -rf "$corpus"
}
running=0
for f in build/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    if [ "$running" -ge 2 ]; then wait -n; running=$((running - 1)); fi
    fuzz_one "$f" &
    running=$((running + 1))
done
wait
for rcf in "$fuzz_dir"/*.rc; do
    [ -e "$rcf" ] || continue
    n=$(basename "$rcf" .rc)
    if [ "$(cat "$rcf")" = 0 ]; then
        fuzz_pass=$((fuzz_pass + 1))
        echo "ok   $n: $(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$fuzz_dir/$n.out" | head -1)" >&2
    else
        fuzz_fail=$((fuzz_fail + 1))
        echo "FAIL $n:" >&2
        tail -40 "$fuzz_dir/$n.out" >&2
    fi
done
rm -rf "$fuzz_dir"
echo "== fuzz"
echo "fuzz: $fuzz_pass passed, $fuzz_fail failed"
total_pass=$((total_pass + fuzz_pass))
total_fail=$((total_fail + fuzz_fail))

echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
