#!/usr/bin/env bash
# The kernel matrix: every test suite on the kernels users run.
#
#   scripts/kernel-matrix.sh [--kernels "6.1 6.12 host"] [--suites REGEX] [--no-build]
#                            [--keep-going] [--zerocopy] [--out DIR]
#
# Builds the test binaries once on the host (cargo test --all-features --no-run),
# then boots ONE VM per kernel (scripts/vm/run-in-kernel.sh: a Debian kernel
# package, TCG, this machine's root file system read-only) that runs every suite
# binary in turn as root with FLUX_REQUIRE_ROOT_TESTS=1 and writes its results
# into a shared directory; "host" runs the same binaries on the running kernel.
# Each guest also gets two virtio-net NICs wired back to back on a private QEMU
# hub (fxzc0, fxzc1), probes the kernel's AF_XDP/XDP features with
# scripts/vm/kprobe.c, and runs the zero-copy suite (tests/zerocopy.rs) on them.
#
# Prints: kernel x suite -> passed/failed/skipped, the time of each boot and
# suite, every failure with its message, every skip with its reason, and the
# feature table. Exits non-zero if any test failed or a kernel could not run.
#
#   --kernels LIST  kernels to run: series (6.1, 6.12, 6.18), full versions, "host"
#                   (default "6.1 6.12 6.18 host")
#   --suites REGEX  only suites whose name matches (core, conformance, engine,
#                   engine_alloc, system, system_async, icmp_echo, fidelity, sim,
#                   zerocopy, lib)
#   --no-build      use the binaries of the last build (target/kernel-matrix/manifest.tsv)
#   --keep-going    run the remaining kernels after one has failures
#   --zerocopy      only the zero-copy run: kernels "6.18 6.12 6.1", suite zerocopy
#   --out DIR       results (default target/kernel-matrix/run)
# Env: FX_CARGO_LOCK (a file: cargo runs under `flock` on it), FX_TEST_THREADS
#      (1), FX_SUITE_TIMEOUT (1200 s a suite), FX_ZC_MIN (6.18: the oldest kernel whose
#      virtio-net is expected to do zero-copy; older ones must refuse it with the
#      typed error), FX_VM_* (see scripts/vm/run-in-kernel.sh).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

KERNELS="6.1 6.12 6.18 host"
SUITES='.'
BUILD=1
KEEP_GOING=0
OUT=""
while [ $# -gt 0 ]; do
    case "$1" in
        --kernels) KERNELS="$2"; shift 2 ;;
        --suites) SUITES="$2"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep-going) KEEP_GOING=1; shift ;;
        --zerocopy) KERNELS="6.18 6.12 6.1"; SUITES='^zerocopy$'; shift ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) fx_die "unknown argument: $1 (try --help)" ;;
    esac
done

fx_need_root
cd "$REPO_ROOT"
WORK="$REPO_ROOT/target/kernel-matrix"
OUT="${OUT:-$WORK/run}"
MANIFEST="$WORK/manifest.tsv"
mkdir -p "$WORK"
cargo_run() { if [ -n "${FX_CARGO_LOCK:-}" ]; then flock "$FX_CARGO_LOCK" cargo "$@"; else cargo "$@"; fi; }
START=$(date +%s)

# --- build once ------------------------------------------------------------
if [ "$BUILD" -eq 1 ]; then
    fx_install_deps
    fx_ensure_rust
    fx_log "matrix: building the test binaries (cargo test --all-features --no-run)"
    cargo_run test --all-features --no-run --message-format=json >"$WORK/build.json"
    # suite name <TAB> executable: the test target's name, "lib" for the unit tests.
    python3 - "$WORK/build.json" >"$MANIFEST.new" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        kind = m["target"]["kind"]
        name = "lib" if "lib" in kind else m["target"]["name"]
        print(f"{name}\t{m['executable']}")
EOF
    mv "$MANIFEST.new" "$MANIFEST"
fi
[ -s "$MANIFEST" ] || fx_die "no $MANIFEST: run once without --no-build"
while IFS=$'\t' read -r _ exe; do
    [ -x "$exe" ] || fx_die "$exe (from $MANIFEST) is gone: run without --no-build"
done <"$MANIFEST"
# Fixed order: fast suites first, so a broken kernel shows up early.
ORDER="lib sim core engine engine_alloc system system_async icmp_echo fidelity conformance zerocopy"
SEL="$WORK/selected.tsv"
: >"$SEL"
for s in $ORDER $(cut -f1 "$MANIFEST" | sort); do
    grep -qP "^\Q$s\E\t" "$SEL" && continue
    [[ $s =~ $SUITES ]] || continue
    grep -P "^\Q$s\E\t" "$MANIFEST" | head -n1 >>"$SEL" || true
done
[ -s "$SEL" ] || fx_die "no suite matches --suites '$SUITES' (have: $(cut -f1 "$MANIFEST" | tr '\n' ' '))"
SUITE_LIST="$(cut -f1 "$SEL" | tr '\n' ' ')"

command -v gcc >/dev/null 2>&1 || fx_install_pkgs gcc libc6-dev || fx_die "gcc needed for scripts/vm/kprobe.c"
gcc -O2 -Wall -o "$WORK/kprobe" "$SCRIPT_DIR/vm/kprobe.c" || fx_die "cannot build scripts/vm/kprobe.c"

# --- run -------------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT"
RAN=()
VM_FAIL=0
for k in $KERNELS; do
    dir="$OUT/$k"
    mkdir -p "$dir"
    t0=$(date +%s.%N)
    if [ "$k" = host ]; then
        fx_log "matrix: host kernel $(uname -r): $SUITE_LIST"
        # No back-to-back NICs here: the zero-copy suite runs as a plain test
        # (its NIC tests are #[ignore]d with their reason).
        FLUX_REQUIRE_ROOT_TESTS=1 FX_KPROBE="$WORK/kprobe" \
            bash "$SCRIPT_DIR/vm/run-suites.sh" "$SEL" "$dir" >&2
        rc=$?
    else
        # The zero-copy suite gets the two NICs and runs its #[ignore]d NIC tests.
        sed 's/^zerocopy\t.*/&\t--ignored/' "$SEL" >"$dir/manifest.tsv"
        kver="$("$SCRIPT_DIR/vm/run-in-kernel.sh" --fetch "$k")"
        # virtio-net has AF_XDP zero-copy from some version after 6.12 (6.12 refuses,
        # 6.18 works); below FX_ZC_MIN the zero-copy test checks the typed refusal.
        zc_expect=works
        if [ "$(printf '%s\n%s\n' "${FX_ZC_MIN:-6.18}" "$kver" | sort -V | head -n1)" != "${FX_ZC_MIN:-6.18}" ]; then
            zc_expect=refused
        fi
        fx_log "matrix: kernel $k ($kver, zero-copy expected: $zc_expect): $SUITE_LIST"
        set +e
        "$SCRIPT_DIR/vm/run-in-kernel.sh" --rwdir "$dir" --loop-nics \
            --timeout "${FX_VM_TIMEOUT:-2400}" \
            --env FLUX_REQUIRE_ROOT_TESTS=1 --env FX_KPROBE="$WORK/kprobe" \
            --env FX_KPROBE_IFACES="fxzc0 fxzc1" --env FLUX_ZC_IFACES=fxzc0,fxzc1 \
            --env FLUX_ZC_EXPECT="$zc_expect" \
            --env FX_TEST_THREADS="${FX_TEST_THREADS:-1}" \
            --env FX_SUITE_TIMEOUT="${FX_SUITE_TIMEOUT:-1200}" \
            "$kver" bash "$SCRIPT_DIR/vm/run-suites.sh" "$dir/manifest.tsv" "$dir" >&2
        rc=$?
        set -e
    fi
    awk -v a="$t0" -v b="$(date +%s.%N)" -v rc="$rc" \
        'BEGIN { printf "wall_secs=%.1f\nrunner_rc=%d\n", b - a, rc }' >>"$dir/env.txt"
    RAN+=("$k")
    bad=0
    [ "$rc" -eq 0 ] || { bad=1; VM_FAIL=1; fx_log "matrix: $k: runner exited $rc"; }
    for s in $SUITE_LIST; do
        if [ ! -f "$dir/$s.res" ]; then bad=1; continue; fi
        grep -q 'failed=0 ' "$dir/$s.res" || bad=1
    done
    if [ "$bad" -eq 1 ] && [ "$KEEP_GOING" -eq 0 ]; then
        fx_log "matrix: $k has failures; stopping (--keep-going runs the other kernels)"
        break
    fi
done

# --- report ----------------------------------------------------------------
export OUT SUITE_LIST
python3 "$SCRIPT_DIR/vm/matrix-report.py" "${RAN[@]}"
rc=$?
echo "matrix: total $(( $(date +%s) - START ))s"
[ "$VM_FAIL" -eq 0 ] || rc=1
exit "$rc"
