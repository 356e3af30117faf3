#!/usr/bin/env bash
# Runs prebuilt test binaries one after the other and writes per-suite results;
# scripts/kernel-matrix.sh runs it inside each guest kernel and on the host.
#
#   scripts/vm/run-suites.sh MANIFEST OUTDIR
#
# MANIFEST: lines `SUITE<TAB>EXECUTABLE[<TAB>EXTRA ARGS]`. For each suite, OUTDIR gets
#   SUITE.log  the binary's whole output (run with --test-threads=$FX_TEST_THREADS, default 2)
#   SUITE.res  `rc= passed= failed= ignored= secs=` (one line)
# and OUTDIR/env.txt has the kernel, the boot time (/proc/uptime at start) and
# the time each step took. If FX_KPROBE names the kprobe binary, its feature
# table goes to OUTDIR/probe.tsv first (FX_KPROBE_IFACES: NICs to probe too).
# Each suite is killed after FX_SUITE_TIMEOUT seconds (default 1200).
# Exits 0 even when tests fail: the caller reads the results.
set -uo pipefail

MANIFEST="$1"
OUT="$2"
THREADS="${FX_TEST_THREADS:-2}"
mkdir -p "$OUT"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

{
    echo "kernel=$(uname -r)"
    echo "uptime_at_start=$(cut -d' ' -f1 /proc/uptime)"
    echo "cpus=$(nproc)"
    echo "threads=$THREADS"
} >"$OUT/env.txt"

if [ -n "${FX_KPROBE:-}" ]; then
    t0=$(now)
    # shellcheck disable=SC2086 # a list of interface names
    "$FX_KPROBE" ${FX_KPROBE_IFACES:-} </dev/null >"$OUT/probe.tsv" 2>"$OUT/probe.err"
    echo "probe_rc=$? probe_secs=$(secs "$t0" "$(now)")" >>"$OUT/env.txt"
fi

while IFS=$'\t' read -r suite exe extra; do
    [ -n "$suite" ] || continue
    t0=$(now)
    # shellcheck disable=SC2086 # extra: libtest flags, split on purpose
    timeout -k 10 "${FX_SUITE_TIMEOUT:-1200}" "$exe" --test-threads="$THREADS" ${extra:-} </dev/null >"$OUT/$suite.log" 2>&1
    rc=$?
    t1=$(now)
    awk -v rc="$rc" -v s="$(secs "$t0" "$t1")" '
        /^test result:/ {
            for (i = 1; i < NF; i++) {
                if ($(i+1) ~ /^passed/) p += $i
                if ($(i+1) ~ /^failed/) f += $i
                if ($(i+1) ~ /^ignored/) g += $i
            }
            seen = 1
        }
        END {
            # A binary that died (signal, timeout) before its summary counts as a failure.
            if (!seen && rc != 0) f = f + 1
            printf "rc=%d passed=%d failed=%d ignored=%d secs=%s\n", rc, p, f, g, s
        }' "$OUT/$suite.log" >"$OUT/$suite.res"
    echo "$suite $(cat "$OUT/$suite.res")"
done <"$MANIFEST"
echo "end_uptime=$(cut -d' ' -f1 /proc/uptime)" >>"$OUT/env.txt"
exit 0
