#!/usr/bin/env bash
# Runs each cargo-fuzz target of the proto module for a bounded time and
# prints how many inputs libFuzzer executed.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET=60] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly --profile minimal
#   cargo install cargo-fuzz
# Seeds are read from fuzz/corpus/<target>/ (committed, written by
#   PROTO_SEED_DIR=fuzz/corpus cargo test write_fuzz_seeds -- --ignored)
# and new inputs go to fuzz/corpus-work/<target>/ (ignored by git).
set -euo pipefail

secs="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(parse_frame edit_frame)
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

if [ -z "$(ls -A fuzz/corpus/parse_frame 2>/dev/null)" ]; then
    PROTO_SEED_DIR="$root/fuzz/corpus" cargo test --lib write_fuzz_seeds -- --ignored >/dev/null
fi

summary=()
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus-work/$t" "fuzz/corpus/$t"
    log="fuzz/corpus-work/$t.log"
    echo "== $t: ${secs}s" >&2
    set +e
    cargo +nightly fuzz run "$t" "fuzz/corpus-work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -max_len=1600 -print_final_stats=1 >"$log" 2>&1
    rc=$?
    set -e
    # libFuzzer ends with "#N DONE ..." and, with -print_final_stats,
    # "stat::number_of_executed_units: N".
    execs="$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | grep -oE '[0-9]+$' | tail -n1 || true)"
    if [ -z "$execs" ]; then
        execs="$(grep -oE '^#[0-9]+[[:space:]]+DONE' "$log" | grep -oE '[0-9]+' | tail -n1 || true)"
    fi
    done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n1 || true)"
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "!! $t failed (exit $rc), see $log" >&2
        tail -n 30 "$log" >&2
    fi
    summary+=("$t: ${execs:-?} executions in ${secs}s (exit $rc) ${done_line:+| $done_line}")
done

echo
for s in "${summary[@]}"; do
    echo "$s"
done
exit "$status"
