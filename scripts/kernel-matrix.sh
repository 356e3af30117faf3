#!/usr/bin/env bash
# The kernel matrix: every test suite on the kernels users run.
#
#   scripts/kernel-matrix.sh [--kernels "6.1 6.12 6.18 host"] [--suites REGEX] [--no-build]
#                            [--keep-going] [--zerocopy] [--ci] [--out DIR]
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
#   --kernels LIST  kernels to run: series (6.1, 6.12, 6.18), full versions, "host";
#                   KERNEL:REGEX runs only the suites matching REGEX on that kernel
#                   (default "6.1 6.12 6.18 host")
#   --suites REGEX  only suites whose name matches (core, conformance, engine,
#                   engine_alloc, system, system_async, icmp_echo, neighbours,
#                   stock_clients, jumbo, lifecycle, fidelity, probe, metadata, sim, zerocopy, lib)
#   --no-build      use the binaries of the last build (target/kernel-matrix/manifest.tsv;
#                   without it, cargo lists them: nothing is compiled after a
#                   `cargo test --all-features`)
#   --keep-going    run the remaining kernels after one has failures
#   --zerocopy      only the zero-copy run: kernels "6.18 6.12 6.1", suite zerocopy
#   --ci            what scripts/test.sh runs: 6.1 and 6.12 with every suite that
#                   talks to the kernel, 6.18 with the zero-copy suite, --keep-going
#   --out DIR       results (default target/kernel-matrix/run)
# Env: FX_CARGO_LOCK (a file: cargo runs under `flock` on it); FX_TEST_THREADS
#      (libtest threads, default 2, one a vCPU; 1 makes a guest run ~1.5x longer);
#      FX_SUITE_TIMEOUT (1200 s a suite); FX_ZC_MIN (6.16: the oldest kernel whose
#      virtio-net is expected to do zero-copy; older ones must refuse it with the
#      typed error); FX_VM_* (see scripts/vm/run-in-kernel.sh).
set -euo pipefail
# The whole script is one block: bash reads it completely before running it, so
# editing the file while a (long) run is under way cannot derail that run.
{

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
        --ci)
            # The suites that talk to the kernel on 6.1 and 6.12 (lib and sim do not),
            # zero-copy on 6.18 (the host is 6.18 too), all kernels.
            k='^(core|engine|engine_alloc|system|system_async|icmp_echo|fidelity|conformance|lifecycle|neighbours|stock_clients|jumbo|probe|metadata|zerocopy)$'
            KERNELS="6.1:$k 6.12:$k 6.18:^zerocopy\$"
            KEEP_GOING=1
            shift ;;
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
# --no-build without the list of a previous build asks cargo for it: after
# scripts/test.sh's `cargo test --all-features` that compiles nothing.
if [ "$BUILD" -eq 1 ] || [ ! -s "$MANIFEST" ]; then
    if [ "$BUILD" -eq 1 ]; then
        fx_install_deps
        fx_log "matrix: building the test binaries (cargo test --all-features --no-run)"
    else
        fx_log "matrix: --no-build: listing the built test binaries (cargo test --all-features --no-run)"
    fi
    fx_ensure_rust
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
while IFS=$'\t' read -r _ exe; do
    [ -x "$exe" ] || fx_die "$exe (from $MANIFEST) is gone: run without --no-build"
done <"$MANIFEST"
# Fixed order: fast suites first, so a broken kernel shows up early.
ORDER="lib sim core engine engine_alloc system system_async icmp_echo neighbours stock_clients jumbo lifecycle fidelity conformance zerocopy"
# select REGEX FILE: the manifest lines of the suites matching REGEX, in ORDER.
select_suites() {
    local re="$1" file="$2" s
    : >"$file"
    for s in $ORDER $(cut -f1 "$MANIFEST" | sort); do
        grep -qP "^\Q$s\E\t" "$file" && continue
        [[ $s =~ $re ]] || continue
        grep -P "^\Q$s\E\t" "$MANIFEST" | head -n1 >>"$file" || true
    done
    [ -s "$file" ] || fx_die "no suite matches '$re' (have: $(cut -f1 "$MANIFEST" | tr '\n' ' '))"
}

command -v gcc >/dev/null 2>&1 || fx_install_pkgs gcc libc6-dev || fx_die "gcc needed for scripts/vm/kprobe.c"
gcc -O2 -Wall -o "$WORK/kprobe" "$SCRIPT_DIR/vm/kprobe.c" || fx_die "cannot build scripts/vm/kprobe.c"

# --- run -------------------------------------------------------------------
rm -rf "$OUT"
mkdir -p "$OUT/bin"
# The guests run private copies: a build while the matrix runs (same paths, new
# files) must not change a binary under a running suite.
while IFS=$'\t' read -r suite exe; do
    cp "$exe" "$OUT/bin/$suite"
    printf '%s\t%s\n' "$suite" "$OUT/bin/$suite"
done <"$MANIFEST" >"$OUT/manifest.tsv"
MANIFEST="$OUT/manifest.tsv"
RAN=()
VM_FAIL=0
for spec in $KERNELS; do
    # KERNEL or KERNEL:REGEX (that kernel runs only the suites matching REGEX).
    k="${spec%%:*}"
    re="$SUITES"
    [ "$k" = "$spec" ] || re="${spec#*:}"
    dir="$OUT/$k"
    mkdir -p "$dir"
    select_suites "$re" "$dir/suites.tsv"
    list="$(cut -f1 "$dir/suites.tsv" | tr '\n' ' ')"
    t0=$(date +%s.%N)
    if [ "$k" = host ]; then
        fx_log "matrix: host kernel $(uname -r): $list"
        # No back-to-back NICs here: the zero-copy suite runs as a plain test
        # (its NIC tests are #[ignore]d with their reason).
        cp "$dir/suites.tsv" "$dir/manifest.tsv"
        set +e
        FLUX_REQUIRE_ROOT_TESTS=1 FX_KPROBE="$WORK/kprobe" \
            bash "$SCRIPT_DIR/vm/run-suites.sh" "$dir/manifest.tsv" "$dir" >&2
        rc=$?
        set -e
    else
        # The zero-copy suite gets the two NICs and runs its #[ignore]d NIC tests.
        sed 's/^zerocopy\t.*/&\t--ignored --nocapture/' "$dir/suites.tsv" >"$dir/manifest.tsv"
        kver="$("$SCRIPT_DIR/vm/run-in-kernel.sh" --fetch "$k")"
        # virtio-net has AF_XDP zero-copy from some version after 6.12 (6.12 refuses;
        # 6.16, 6.17, 6.18 work; Debian packages nothing in between); below FX_ZC_MIN
        # the zero-copy test checks the typed refusal.
        zc_expect=works
        if [ "$(printf '%s\n%s\n' "${FX_ZC_MIN:-6.16}" "$kver" | sort -V | head -n1)" != "${FX_ZC_MIN:-6.16}" ]; then
            zc_expect=refused
        fi
        fx_log "matrix: kernel $k ($kver, zero-copy expected: $zc_expect): $list"
        set +e
        "$SCRIPT_DIR/vm/run-in-kernel.sh" --rwdir "$dir" --loop-nics \
            --timeout "${FX_VM_TIMEOUT:-2400}" \
            --env FLUX_REQUIRE_ROOT_TESTS=1 --env FX_KPROBE="$WORK/kprobe" \
            --env FX_KPROBE_IFACES="fxzc0 fxzc1" --env FLUX_ZC_IFACES=fxzc0,fxzc1 \
            --env FLUX_ZC_EXPECT="$zc_expect" \
            --env FX_TEST_THREADS="${FX_TEST_THREADS:-2}" \
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
    for s in $list; do
        if [ ! -f "$dir/$s.res" ]; then bad=1; continue; fi
        grep -q 'failed=0 ' "$dir/$s.res" || bad=1
    done
    if [ "$bad" -eq 1 ] && [ "$KEEP_GOING" -eq 0 ]; then
        fx_log "matrix: $k has failures; stopping (--keep-going runs the other kernels)"
        break
    fi
done

# --- report ----------------------------------------------------------------
SUITE_LIST="$(for k in "${RAN[@]}"; do cut -f1 "$OUT/$k/suites.tsv"; done | awk '!seen[$0]++' | tr '\n' ' ')"
export OUT SUITE_LIST
set +e
python3 "$SCRIPT_DIR/vm/matrix-report.py" "${RAN[@]}"
rc=$?
set -e
echo "matrix: total $(( $(date +%s) - START ))s"
[ "$VM_FAIL" -eq 0 ] || rc=1
exit "$rc"
}
