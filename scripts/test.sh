#!/usr/bin/env bash
# The one test command for fluxcapacitor (README and .ci/run call it).
#
#   scripts/test.sh [--quick] [-- EXTRA CARGO TEST ARGS]
#
# Must run as root: the integration tests create network namespaces and veth
# pairs and load XDP programs, and they fail (never skip) without privileges.
# Installs missing build dependencies, then runs, stopping at the first
# failure:  cargo fmt --check, cargo clippy -D warnings, cargo doc -D warnings,
# a build per feature (these are skipped with --quick), cargo test
# --all-features, the seed's workflow line (`cargo test -p fluxcapacitor
# --features async`), the simulated-device suite as an unprivileged user, and
# the README's scripts end to end: setup_veth.sh (idempotent, with its
# teardown), demo.sh --duration 3 and bench.sh --quick, each of which must
# print non-zero rates and leave no namespace, interface or program behind, and
# (not with --quick) the kernel matrix: the same tests in 6.1 and 6.12 VMs,
# zero-copy on 6.18 (scripts/kernel-matrix.sh).
# Finally checks that the run left no network namespace or veth named fx*.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

QUICK=0
TEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; shift ;;
        --) shift; TEST_ARGS=("$@"); break ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

START=$(date +%s)
TEST_LOG="$(mktemp "${TMPDIR:-/tmp}/fx-test-log.XXXXXX")"
section() { printf '\n==================== %s ====================\n' "$*"; }
elapsed() { echo $(( $(date +%s) - START )); }

# Names of fx* network namespaces and veth interfaces (root namespace).
# Only the names the test fixture makes (fx + 5 base-36 pid digits + a counter + h, p
# or n), so that a benchmark or demo running beside the tests is not touched.
FX_TEST_NAME='^fx[0-9a-z]{5}[0-9a-z]+[hpn]$'
fx_netns_list() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "$FX_TEST_NAME" || true; }
fx_veth_list() {
    ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "$FX_TEST_NAME" || true
}

section "environment"
fx_need_root
fx_install_deps
fx_ensure_rust
fx_clang_multiarch_check
if [ -n "${CI:-}" ]; then
    export CARGO_TERM_COLOR=never
fi
export FLUX_REQUIRE_ROOT_TESTS=1
echo "kernel $(uname -r), $(nproc) cpus, repo $REPO_ROOT"

# fx* objects present before the run are not ours: report them, leave them.
PRE_NS="$(fx_netns_list)"
PRE_VETH="$(fx_veth_list)"
if [ -n "$PRE_NS$PRE_VETH" ]; then
    echo "note: fx* objects existed before this run and are left alone:" $PRE_NS $PRE_VETH
fi

leftover_check() {
    local rc=$? ns veth new_ns="" new_veth=""
    trap - EXIT INT TERM
    section "leftover check (netns/veth named fx*)"
    for ns in $(fx_netns_list); do
        grep -qxF "$ns" <<<"$PRE_NS" || new_ns="$new_ns $ns"
    done
    for veth in $(fx_veth_list); do
        grep -qxF "$veth" <<<"$PRE_VETH" || new_veth="$new_veth $veth"
    done
    if [ -n "$new_ns$new_veth" ]; then
        echo "FAIL: the run left behind namespaces:[${new_ns# }] veths:[${new_veth# }]; removing them"
        for veth in $new_veth; do ip link del dev "$veth" 2>/dev/null || true; done
        for ns in $new_ns; do ip netns del "$ns" 2>/dev/null || true; done
        [ "$rc" -ne 0 ] || rc=1
    else
        echo "ok: nothing left over"
    fi
    section "total time $(elapsed)s"
    if [ "$rc" -eq 0 ]; then
        echo "scripts/test.sh: all checks passed"
    else
        echo "scripts/test.sh: FAILED (exit $rc)"
    fi
    # Totals over every `test result:` line of cargo test (ignored = skipped).
    if [ -s "$TEST_LOG" ]; then
        awk '/^test result:/ {
                for (i = 1; i <= NF; i++) {
                    if ($(i+1) ~ /^passed/) p += $i
                    if ($(i+1) ~ /^failed/) f += $i
                    if ($(i+1) ~ /^ignored/) s += $i
                }
             }
             END {
                 printf "tests: %d passed, %d failed\n", p, f
                 if (s > 0) printf "(%d ignored: child-process helpers that other tests run themselves)\n", s
             }' "$TEST_LOG"
    fi
    rm -f "$TEST_LOG"
    exit "$rc"
}
trap leftover_check EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cd "$REPO_ROOT"

if [ "$QUICK" -eq 0 ]; then
    section "cargo fmt --all -- --check"
    cargo fmt --all -- --check

    section "cargo clippy --all-targets --all-features -- -D warnings"
    cargo clippy --all-targets --all-features -- -D warnings

    section "cargo doc --no-deps --all-features (RUSTDOCFLAGS=-D warnings)"
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

    section "a build per feature, warnings are errors (what a user with one feature builds)"
    for f in "" raw engine system async proto sim sim,engine sim,system; do
        out="$(cargo check --no-default-features ${f:+--features "$f"} --lib --examples --message-format=short 2>&1)" \
            || { echo "$out"; echo "FAIL: features [$f] do not build"; exit 1; }
        if grep -E '^(src|examples)/.*: warning' <<<"$out"; then
            echo "FAIL: features [$f] build with warnings"; exit 1
        fi
        echo "ok: features [${f}]"
    done
else
    section "--quick: skipping fmt, clippy and doc"
fi

section "FLUX_REQUIRE_ROOT_TESTS=1 cargo test --all-features"
cargo test --all-features ${TEST_ARGS[@]+"${TEST_ARGS[@]}"} 2>&1 | tee "$TEST_LOG"

section "the seed's workflow line: cargo test -p fluxcapacitor --features async"
cargo test -p fluxcapacitor --features async 2>&1 | tee -a "$TEST_LOG" | grep -E '^(test result|     Running)' || true
if grep -q '^test result: FAILED' "$TEST_LOG"; then
    echo "FAIL: cargo test -p fluxcapacitor --features async"; exit 1
fi

section "simulated device: sim suite as an unprivileged user (no root, no kernel)"
SIM_FEATURES="sim,engine,system,async"
cargo test --no-default-features --features "$SIM_FEATURES" --no-run 2>&1 | tee /tmp/fx-sim-build.$$ | tail -n 3
BINS=$(grep -o '(target/[^ )]*/deps/[^ )]*)' /tmp/fx-sim-build.$$ | tr -d '()')
rm -f /tmp/fx-sim-build.$$
if ! grep -q '/sim-' <<<"$BINS"; then
    echo "FAIL: the sim test binary was not built"; exit 1
fi
# Every test binary of this feature set, as nobody: the sim suite must pass without
# privileges; kernel tests skip (FLUX_REQUIRE_ROOT_TESTS is unset for this run only).
for b in $BINS; do
    echo "--- $b (as uid 65534)"
    set +e
    setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all \
        env -u FLUX_REQUIRE_ROOT_TESTS "$b" >/tmp/fx-bin.$$ 2>&1
    rc=$?
    set -e
    grep -E '^test result|FAILED|panicked|SKIPPED' /tmp/fx-bin.$$ | sort | uniq -c | sed 's/^ *//' || true
    if [ "$rc" -ne 0 ]; then
        cat /tmp/fx-bin.$$; rm -f /tmp/fx-bin.$$
        echo "FAIL: $b as an unprivileged user"; exit 1
    fi
    rm -f /tmp/fx-bin.$$
done

if [ "$QUICK" -eq 0 ]; then
    section "portable build: cargo check for macOS and Windows (sim, engine, system)"
    for t in x86_64-apple-darwin x86_64-pc-windows-gnu; do
        rustup target list --installed | grep -qx "$t" || rustup target add "$t"
        cargo check --no-default-features --features sim,engine,system --target "$t"
    done

    section "ring model test under Miri (scripts/miri.sh)"
    bash "$SCRIPT_DIR/miri.sh" 2>&1 | tee -a "$TEST_LOG"
fi

# The scripts the README names, run as a user runs them, from this checkout.
# nothing_left NAME...: fails when a namespace or interface of these names, or an
# XDP program on such an interface, is still there.
nothing_left() {
    local n bad=""
    for n in "$@"; do
        [ -e "/var/run/netns/$n" ] && bad="$bad namespace:$n"
        ip link show dev "$n" >/dev/null 2>&1 && bad="$bad interface:$n"
    done
    if [ -n "$bad" ]; then
        echo "FAIL: left behind:$bad"; return 1
    fi
}
flux_programs() { bpftool prog show 2>/dev/null | grep -c 'name flux_xsk' || true; }

section "scripts/setup_veth.sh: idempotent set-up, matching teardown"
S1="$(bash "$SCRIPT_DIR/setup_veth.sh" --name fxsv0 --ns fxsvns)"
S2="$(bash "$SCRIPT_DIR/setup_veth.sh" --name fxsv0 --ns fxsvns)"
[ "$S1" = "$S2" ] || { echo "FAIL: a second set-up changed the pair:"; diff <(echo "$S1") <(echo "$S2"); exit 1; }
echo "$S1"
ip netns exec fxsvns ping -c 2 -W 1 -q "$(sed -n 's/^HOST_IP=//p' <<<"$S1")" | tail -n 2
bash "$SCRIPT_DIR/setup_veth.sh" --name fxsv0 --ns fxsvns --down
bash "$SCRIPT_DIR/setup_veth.sh" --name fxsv0 --ns fxsvns --down
nothing_left fxsv0 fxsv0p fxsvns
echo "ok: set-up twice gives the same pair, teardown twice leaves nothing"

section "scripts/demo.sh --duration 3 (the README's first command)"
PROGS_BEFORE="$(flux_programs)"
DEMO_OUT="$(bash "$SCRIPT_DIR/demo.sh" --duration 3 2>&1)" || { echo "$DEMO_OUT"; echo "FAIL: demo.sh"; exit 1; }
echo "$DEMO_OUT" | tail -n 6
grep -Eq '^demo: received [1-9][0-9]* packets .*\([1-9][0-9]* pps\)' <<<"$DEMO_OUT" \
    || { echo "FAIL: the demo printed no packet rate"; exit 1; }
nothing_left fxdemo fxdemop fxdemons
[ "$(flux_programs)" = "$PROGS_BEFORE" ] || { echo "FAIL: the demo left an XDP program loaded"; exit 1; }
echo "ok: the demo moved packets and left nothing behind"

section "scripts/bench.sh --quick"
BENCH_OUT="$(bash "$SCRIPT_DIR/bench.sh" --quick 2>&1)" || { echo "$BENCH_OUT"; echo "FAIL: bench.sh --quick"; exit 1; }
echo "$BENCH_OUT" | sed -n '/^fluxcapacitor bench --/,$p'
for v in xdp_drop engine_rxdrop system_rxdrop async_rxdrop engine_l2fwd engine_txonly; do
    awk -v v="$v" '$1 == v && $2 == 64 && $3 + 0 > 0 { ok = 1 } END { exit !ok }' <<<"$BENCH_OUT" \
        || { echo "FAIL: bench.sh --quick printed no rate for $v"; exit 1; }
done
grep -q 'allocations per packet, engine drop: allocs=0 ' <<<"$BENCH_OUT" \
    || { echo "FAIL: bench.sh --quick: allocations per packet not 0"; exit 1; }
for n in $(ip netns list | awk '{print $1}' | grep -E '^fx[bq]ns[0-9]+$' || true); do
    echo "FAIL: bench.sh left namespace $n"; exit 1
done
[ "$(flux_programs)" = "$PROGS_BEFORE" ] || { echo "FAIL: the bench left an XDP program loaded"; exit 1; }
echo "ok: the bench printed its table and left nothing behind"

# ---- kernel matrix -----------------------------------------------------------
# The binaries cargo test built above, in VMs booting Debian's 6.1 and 6.12, and the
# zero-copy test on 6.18 (scripts/kernel-matrix.sh --help; README "Supported kernels").
if [ "$QUICK" -eq 0 ]; then
    section "kernel matrix: scripts/kernel-matrix.sh --ci --no-build"
    bash "$SCRIPT_DIR/kernel-matrix.sh" --ci --no-build
fi
