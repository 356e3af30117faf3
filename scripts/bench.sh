#!/usr/bin/env bash
# fluxcapacitor's benchmark: every receiver variant against a kernel-speed
# generator (examples/xdpgen, BPF_PROG_RUN live frames) on a veth pair across a
# namespace, alternately, for several rounds, with the XDP_DROP ceiling measured
# in the same run. Prints one table.
#
#   scripts/bench.sh [--rounds N] [--secs S] [--quick] [--sizes "64 1514"]
#                    [--only REGEX] [--with-c-ref] [--no-build]
#
#   --rounds N     measured rounds per variant (default 3; a warm-up round of
#                  every variant runs first and is discarded)
#   --secs S       seconds per measurement (default 4)
#   --quick        1 round of 2 s, 64-byte frames only, no scaling section
#   --sizes LIST   frame sizes (default "64 1514")
#   --only REGEX   run only the variants whose name matches
#   --watch-cost   add engine_rxdrop_nowatch (the device watch off), to compare
#   --with-rust-peers  add the same rxdrop loop on other Rust AF_XDP crates
#                  (bench/peers: xdpilone), behind the same embedded XDP program
#   --with-c-ref   add the C reference receivers of ../shared/bench-ref (libxdp),
#                  built with `make -C ../shared/bench-ref BIN=<target>/bench-ref`
#   --no-build     use the binaries already built
#   --baseline LABEL=DIR  also run the receivers (engine/system/async rxdrop,
#                  l2fwd, txonly) from another build's examples directory DIR, as
#                  variants LABEL:NAME, alternating with this build's (repeatable;
#                  e.g. --baseline before=/tmp/old/target/release/examples)
#
# Placement (2 cores): the generator -- and with it the kernel's receive path,
# which on veth runs on the CPU that transmits -- on CPU0, the receiver on CPU1.
# "shared" variants are the placement of a box that runs its receive path where its
# receiver runs: the host end's NAPI thread and the receiver on CPU0, the generator
# on CPU1. Receiver CPU per packet is
# the receiver process's user+system time over the packets it handled (for l2fwd:
# forwarded, for txonly: sent); XDP_DROP has no receiver process ("-").
#
# Must run as root. Creates its own veth pairs/namespaces (unique names) and
# removes them on exit, Ctrl-C included; sysfs knobs it changes are restored.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

ROUNDS=3
SECS=4
QUICK=0
SIZES="64 1514"
ONLY=""
WITH_C=0
WITH_PEERS=0
WATCH_COST=0
BUILD=1
declare -A BASES=()
BASE_LABELS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="${2:?}"; shift 2 ;;
        --secs) SECS="${2:?}"; shift 2 ;;
        --quick) QUICK=1; shift ;;
        --sizes) SIZES="${2:?}"; shift 2 ;;
        --only) ONLY="${2:?}"; shift 2 ;;
        --with-c-ref) WITH_C=1; shift ;;
        --with-rust-peers) WITH_PEERS=1; shift ;;
        --watch-cost) WATCH_COST=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --baseline)
            [[ "${2:-}" == *=* ]] || { echo "--baseline wants LABEL=DIR" >&2; exit 2; }
            BASES["${2%%=*}"]="${2#*=}"; BASE_LABELS+=("${2%%=*}"); shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
if [ "$QUICK" -eq 1 ]; then
    ROUNDS=1; SECS=2; SIZES="64"
fi

fx_need_root
fx_install_deps
fx_ensure_rust
[ "$(nproc)" -ge 2 ] || fx_log "warning: fewer than 2 CPUs; placements will overlap"

TARGET="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
EX="$TARGET/release/examples"
CREF="$TARGET/bench-ref"
if [ "$BUILD" -eq 1 ]; then
    fx_log "build: cargo build --release --features async --examples"
    (cd "$REPO_ROOT" && cargo build --release --features async --examples -q)
fi
[ -x "$EX/xdpgen" ] && [ -x "$EX/xdpdrop" ] || fx_die "examples not built in $EX"
if [ "$WITH_PEERS" -eq 1 ] && [ "$BUILD" -eq 1 ]; then
    fx_log "build: the Rust peers (bench/peers)"
    (cd "$REPO_ROOT/bench/peers" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q)
fi
if [ "$WITH_C" -eq 1 ]; then
    if [ -d "$REPO_ROOT/../shared/bench-ref" ]; then
        fx_install_pkgs libbpf-dev libxdp-dev || true
        make -s -C "$REPO_ROOT/../shared/bench-ref" BIN="$CREF" >&2 || { fx_log "C reference: build failed; skipped"; WITH_C=0; }
    else
        fx_log "C reference: ../shared/bench-ref not found; skipped"; WITH_C=0
    fi
fi

# ---------------------------------------------------------------- set-up / clean-up
ID=$(( $$ % 10000 ))
NAME="fxb$ID"; NS="fxbns$ID"          # 1-queue pair
NAME2="fxq$ID"; NS2="fxqns$ID"        # 2-queue pair (scaling)
PIDS=()
RESTORE=()
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fx-bench.XXXXXX")"

cleanup() {
    local rc=$? p r
    trap - EXIT INT TERM
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -INT "$p" 2>/dev/null || true; done
    sleep 0.3
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -KILL "$p" 2>/dev/null || true; done
    for r in "${RESTORE[@]+"${RESTORE[@]}"}"; do eval "$r" 2>/dev/null || true; done
    "$SCRIPT_DIR/setup_veth.sh" --name "$NAME" --ns "$NS" --down >/dev/null 2>&1 || true
    "$SCRIPT_DIR/setup_veth.sh" --name "$NAME2" --ns "$NS2" --down >/dev/null 2>&1 || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

setup_pair() { # setup_pair NAME NS QUEUES THREADED -> sets H, P, HMAC, PMAC
    local out
    out="$("$SCRIPT_DIR/setup_veth.sh" --name "$1" --ns "$2" --queues "$3")"
    H="$(sed -n 's/^HOST_IF=//p' <<<"$out")"; P="$(sed -n 's/^PEER_IF=//p' <<<"$out")"
    HMAC="$(sed -n 's/^HOST_MAC=//p' <<<"$out")"; PMAC="$(sed -n 's/^PEER_MAC=//p' <<<"$out")"
    CUR_NS="$2"
    if [ "$4" = 1 ]; then threaded_napi "$H"; fi
}

# The host end's receive path (veth NAPI) as a kernel thread pinned to CPU0, next
# to the generator. Without it the softirq runs inline in the generator's syscall
# until it overruns and moves to ksoftirqd, and runs flip between the two regimes
# (the same receiver measured 2.3 and 9.3 Mpps in consecutive rounds). The NAPI
# thread exists only while an XDP program is attached and is re-created with each
# receiver, so a background loop pins every napi/<host-if>-* thread to CPU0.
threaded_napi() { # threaded_napi IF
    local f="/sys/class/net/$1/threaded"
    [ -w "$f" ] || { fx_log "note: $f missing; NAPI stays in softirq"; return 0; }
    # The flag can only be set while the device has a NAPI instance: attach the
    # counting XDP program for a moment.
    "$EX/xdpdrop" --iface "$1" --duration 1 >/dev/null 2>&1 &
    local d=$!
    sleep 0.5
    echo 1 >"$f" 2>/dev/null || fx_log "note: could not make $1's NAPI threaded"
    wait "$d" 2>/dev/null || true
    # Pure bash (builtins only but for the rare taskset), so the loop itself costs
    # next to nothing on either CPU.
    bg /dev/null bash -c 'pfx="napi/$1-"
    while sleep 0.1; do
        for d in /proc/[0-9]*; do
            read -r comm <"$d/comm" 2>/dev/null || continue
            [ "${comm#"$pfx"}" != "$comm" ] || continue
            while read -r k v; do
                [ "$k" = Cpus_allowed_list: ] || continue
                [ "$v" = 0 ] || taskset -pc 0 "${d#/proc/}" >/dev/null 2>&1
                break
            done <"$d/status"
        done
    done' pin-napi "$1"
    PIN_PID=$LAST_PID
}

# Sets a sysfs knob of the test veth and remembers how to restore it.
set_knob() { # set_knob IF KNOB VALUE
    local f="/sys/class/net/$1/$2" old
    [ -w "$f" ] || { fx_log "note: $f not writable; left alone"; return 0; }
    old="$(cat "$f")"
    RESTORE+=("echo $old > $f")
    echo "$3" >"$f"
}
restore_knobs() {
    local r
    for r in "${RESTORE[@]+"${RESTORE[@]}"}"; do eval "$r" 2>/dev/null || true; done
    RESTORE=()
}

# ---------------------------------------------------------------- running one measurement
# Starts a background command, remembers its pid.
bg() { # bg LOG cmd...
    local log="$1"; shift
    "$@" >"$log" 2>&1 &
    PIDS+=("$!")
    LAST_PID=$!
}
stop_pid() { # stop_pid PID: SIGINT, wait (bounded), SIGKILL
    local p="$1" i
    kill -INT "$p" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    local keep=() q
    for q in "${PIDS[@]+"${PIDS[@]}"}"; do [ "$q" = "$p" ] || keep+=("$q"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}
result_field() { # result_field LOG FIELD
    sed -n "s/^RESULT .*\b$2=\([0-9.]*\).*/\1/p" "$1" | tail -n1
}
# CPU seconds (user+sys) of a finished command run under `cputime`.
cputime() { bash -c '"$@"; rc=$?; times >&2; exit $rc' cputime "$@"; }
times_cpu() { # last `times` line of LOG (children) -> seconds
    awk '/^[0-9]+m[0-9.]+s [0-9]+m[0-9.]+s$/ { l = $0 } END {
        split(l, a, " "); s = 0
        for (i = 1; i <= 2; i++) { split(a[i], b, "m"); sub("s", "", b[2]); s += b[1] * 60 + b[2] }
        print s }' "$1"
}

gen() { # gen CPUS SIZE [THREADS]: the generator in the namespace, in the background
    local threads="${3:-1}"
    bg "$WORK/gen.log" ip netns exec "$CUR_NS" "$EX/xdpgen" --iface "$P" --dst-mac "$HMAC" \
        --size "$2" --threads "$threads" --cpu "$1" --duration $((SECS + 30))
    GEN_PID=$LAST_PID
    sleep 0.3
}

# measure VARIANT SIZE: one measurement; sets M_PPS and M_NS (M_NS may be -).
# Runs in the main shell (not a subshell) so that the EXIT trap knows every pid.
measure() {
    local v="$1" size="$2" log="$WORK/rx.log" cnt="$WORK/cnt.log" pps="" ns="-" c
    # LABEL:NAME runs NAME with the receiver binaries of baseline LABEL.
    local RX="$EX"
    if [[ "$v" == *:* ]]; then RX="${BASES[${v%%:*}]}"; v="${v#*:}"; fi
    case "$v" in
    xdp_drop|xdp_drop_softirq)
        gen 0 "$size"
        "$EX/xdpdrop" --iface "$H" --duration "$SECS" >"$log" 2>&1 || true
        pps="$(result_field "$log" pps)" ;;
    engine_rxdrop|engine_rxdrop_spin|engine_rxdrop_nowatch|engine_rxdrop_meta|system_rxdrop|async_rxdrop)
        local bin="${v%_spin}" extra=()
        bin="${bin%_nowatch}"; bin="${bin%_meta}"; bin="${bin#engine_}"; [ "$bin" = rxdrop ] || bin="$v"
        [ "$v" = engine_rxdrop_spin ] && extra=(--spin)
        [ "$v" = engine_rxdrop_nowatch ] && extra=(--no-watch)
        [ "$v" = engine_rxdrop_meta ] && extra=(--rx-metadata)
        gen 0 "$size"
        "$RX/$bin" --iface "$H" --pin 1 --duration "$SECS" "${extra[@]+"${extra[@]}"}" >"$log" 2>&1 || true
        pps="$(result_field "$log" pps)"; ns="$(result_field "$log" cpu_ns_per_pkt)" ;;
    shared_engine_rxdrop|shared_engine_rxdrop_busypoll)
        local extra=()
        if [ "$v" = shared_engine_rxdrop_busypoll ]; then
            extra=(--busy-poll)
            set_knob "$H" napi_defer_hard_irqs 2
            set_knob "$H" gro_flush_timeout 200000
        fi
        gen 1 "$size"
        "$EX/rxdrop" --iface "$H" --pin 0 --duration "$SECS" "${extra[@]+"${extra[@]}"}" >"$log" 2>&1 || true
        restore_knobs
        pps="$(result_field "$log" pps)"; ns="$(result_field "$log" cpu_ns_per_pkt)" ;;
    engine_l2fwd|engine_l2fwd_b128)
        local extra=()
        [ "$v" = engine_l2fwd_b128 ] && extra=(--tx-budget 128)
        gen 0 "$size"
        bg "$log" "$RX/l2fwd" --iface "$H" --pin 1 --duration $((SECS + 2)) "${extra[@]+"${extra[@]}"}"
        c=$LAST_PID; sleep 1
        ip netns exec "$CUR_NS" "$EX/xdpdrop" --iface "$P" --duration "$SECS" >"$cnt" 2>&1 || true
        stop_pid "$c"
        pps="$(result_field "$cnt" pps)"; ns="$(result_field "$log" cpu_ns_per_pkt)" ;;
    engine_txonly|engine_txonly_b128)
        local extra=()
        [ "$v" = engine_txonly_b128 ] && extra=(--tx-budget 128)
        bg "$cnt" "$EX/xdpdrop" --iface "$H" --duration $((SECS + 2))
        c=$LAST_PID; sleep 0.5
        ip netns exec "$CUR_NS" taskset -c 1 "$RX/txgen" --iface "$P" --dst-mac "$HMAC" \
            --size "$size" --duration "$SECS" "${extra[@]+"${extra[@]}"}" >"$log" 2>&1 || true
        stop_pid "$c"
        # What arrived over the txgen's own running time.
        local got; got="$(result_field "$cnt" pkts)"
        pps="$(awk -v n="$got" -v s="$(result_field "$log" secs)" 'BEGIN { if (s > 0) printf "%.0f", n / s }')"
        ns="$(result_field "$log" cpu_ns_per_pkt)" ;;
    rust_xdpilone_rxdrop)
        gen 0 "$size"
        "$TARGET/release/xdpilone_rxdrop" --iface "$H" --pin 1 --duration "$SECS" >"$log" 2>&1 || true
        pps="$(result_field "$log" pps)"; ns="$(result_field "$log" cpu_ns_per_pkt)" ;;
    c_rxdrop|c_rxdrop_poll|shared_c_rxdrop_poll|shared_c_rxdrop)
        local opt=() cpu=1
        [ "${v%_poll}" = "$v" ] || opt=(-p)
        local gcpu=0
        [ "${v#shared_}" = "$v" ] || { cpu=0; gcpu=1; }
        gen "$gcpu" "$size"
        cputime taskset -c "$cpu" "$CREF/xsk_bench" -m rxdrop "${opt[@]+"${opt[@]}"}" -d "$SECS" "$H" 0 >"$log" 2>&1 || true
        pps="$(sed -n 's/^avg_pps \([0-9.]*\).*/\1/p' "$log" | tail -n1)"
        c="$(times_cpu "$log")"
        ns="$(awk -v c="$c" -v p="$pps" -v s="$SECS" 'BEGIN { if (p > 0) printf "%.1f", c * 1e9 / (p * s) }')" ;;
    c_l2fwd)
        gen 0 "$size"
        bg "$log" bash -c '"$@"; times >&2' x taskset -c 1 "$CREF/xsk_bench" -m l2fwd -d $((SECS + 2)) "$H" 0
        c=$LAST_PID; sleep 1
        ip netns exec "$CUR_NS" "$EX/xdpdrop" --iface "$P" --duration "$SECS" >"$cnt" 2>&1 || true
        wait "$c" 2>/dev/null || true; stop_pid "$c"
        pps="$(result_field "$cnt" pps)"
        local fwd; fwd="$(sed -n 's/^avg_pps \([0-9.]*\).*/\1/p' "$log" | tail -n1)"
        ns="$(awk -v c="$(times_cpu "$log")" -v p="$fwd" -v s="$((SECS + 2))" 'BEGIN { if (p > 0) printf "%.1f", c * 1e9 / (p * s) }')" ;;
    c_txonly)
        bg "$cnt" "$EX/xdpdrop" --iface "$H" --duration $((SECS + 2))
        c=$LAST_PID; sleep 0.5
        cputime ip netns exec "$CUR_NS" taskset -c 1 "$CREF/xsk_bench" -m txonly -s "$size" -D "$HMAC" \
            -d "$SECS" "$P" 0 >"$log" 2>&1 || true
        stop_pid "$c"
        pps="$(awk -v n="$(result_field "$cnt" pkts)" -v s="$SECS" 'BEGIN { printf "%.0f", n / s }')"
        ns="$(awk -v c="$(times_cpu "$log")" -v p="$pps" -v s="$SECS" 'BEGIN { if (p > 0) printf "%.1f", c * 1e9 / (p * s) }')" ;;
    scale_xdp_drop_2q)
        gen 0,1 "$size" 2
        "$EX/xdpdrop" --iface "$H" --duration "$SECS" >"$log" 2>&1 || true
        pps="$(result_field "$log" pps)" ;;
    scale_rxdrop_1w|scale_rxdrop_2w)
        local q=(--queue 0)
        [ "$v" = scale_rxdrop_2w ] && q=(--all-queues)
        gen 0,1 "$size" 2
        taskset -c 0,1 "$EX/rxdrop" --iface "$H" "${q[@]}" --duration "$SECS" >"$log" 2>&1 || true
        pps="$(result_field "$log" pps)"; ns="$(result_field "$log" cpu_ns_per_pkt)" ;;
    *) fx_die "unknown variant $v" ;;
    esac
    [ -n "${FX_BENCH_DEBUG:-}" ] && cat "$WORK/gen.log" "$log" >&2
    [ -n "${GEN_PID:-}" ] && stop_pid "$GEN_PID"
    GEN_PID=""
    M_PPS="${pps:-0}"; M_NS="${ns:--}"
    [ -n "$M_PPS" ] || M_PPS=0
}

# ---------------------------------------------------------------- what runs
have() { [ -x "$EX/$1" ]; }
# Set A (host veth NAPI threaded, pinned to CPU0): the receive variants.
MAIN=(xdp_drop engine_rxdrop engine_rxdrop_spin engine_rxdrop_meta)
for ex in system_rxdrop async_rxdrop; do
    if have "$ex"; then MAIN+=("$ex"); else fx_log "note: examples/$ex.rs not built yet; variant skipped"; fi
done
# Set B (plain softirq NAPI, as the kernel does by default): forwarding and transmit.
# The shared-core variants run in set A: NAPI thread and receiver share CPU0.
FWD=(xdp_drop_softirq engine_l2fwd engine_l2fwd_b128 engine_txonly engine_txonly_b128)
SHARED=(shared_engine_rxdrop shared_engine_rxdrop_busypoll)
SCALE=(scale_xdp_drop_2q scale_rxdrop_1w scale_rxdrop_2w)
[ "$WATCH_COST" -eq 1 ] && MAIN+=(engine_rxdrop_nowatch)
[ "$WITH_PEERS" -eq 1 ] && MAIN+=(rust_xdpilone_rxdrop)
for b in "${BASE_LABELS[@]+"${BASE_LABELS[@]}"}"; do
    [ -x "${BASES[$b]}/rxdrop" ] || fx_die "--baseline $b: no rxdrop in ${BASES[$b]}"
    MAIN+=("$b:engine_rxdrop" "$b:engine_rxdrop_spin" "$b:system_rxdrop" "$b:async_rxdrop")
    FWD+=("$b:engine_l2fwd" "$b:engine_txonly")
done
if [ "$WITH_C" -eq 1 ]; then
    MAIN+=(c_rxdrop c_rxdrop_poll)
    FWD+=(c_l2fwd c_txonly)
    SHARED+=(shared_c_rxdrop shared_c_rxdrop_poll)
fi
[ "$QUICK" -eq 1 ] && SCALE=()
filter() { local v; for v in "$@"; do if [ -z "$ONLY" ] || [[ "$v" =~ $ONLY ]]; then echo "$v"; fi; done; }
mapfile -t MAIN < <(filter "${MAIN[@]}")
mapfile -t FWD < <(filter "${FWD[@]}")
mapfile -t SHARED < <(filter "${SHARED[@]}")
mapfile -t SCALE < <(filter "${SCALE[@]+"${SCALE[@]}"}")

declare -A PPS CPU
# run_set PAIRNAME NS QUEUES THREADED SIZES VARIANTS...: warm-up round, then ROUNDS rounds,
# each variant once per round (alternating).
run_set() {
    local name="$1" ns="$2" queues="$3" threaded="$4" sizes="$5"; shift 5
    [ $# -gt 0 ] || return 0
    setup_pair "$name" "$ns" "$queues" "$threaded"
    fx_log "veth $H <-> $P (namespace $CUR_NS, $queues queue(s)): $*"
    local r v s
    for r in $(seq 0 "$ROUNDS"); do
        for s in $sizes; do
            for v in "$@"; do
                # Shared-core and scaling variants run at 64 bytes only.
                if [ "$s" != 64 ] && [[ "$v" == shared_* || "$v" == scale_* ]]; then continue; fi
                measure "$v" "$s"
                if [ "$r" -eq 0 ]; then
                    fx_log "  warm-up  $v/$s: $M_PPS pps"
                    continue
                fi
                fx_log "  round $r  $v/$s: $M_PPS pps, $M_NS ns/pkt"
                PPS[$v/$s]+="$M_PPS "
                CPU[$v/$s]+="$M_NS "
            done
        done
    done
    [ -n "${PIN_PID:-}" ] && stop_pid "$PIN_PID"
    PIN_PID=""
    "$SCRIPT_DIR/setup_veth.sh" --name "$name" --ns "$ns" --down >/dev/null
}

echo "fluxcapacitor bench: kernel $(uname -r), $(nproc) CPUs, $ROUNDS round(s) x ${SECS}s, sizes $SIZES" >&2
run_set "$NAME" "$NS" 1 1 "$SIZES" "${MAIN[@]+"${MAIN[@]}"}" "${SHARED[@]+"${SHARED[@]}"}"
run_set "$NAME" "$NS" 1 0 "$SIZES" "${FWD[@]+"${FWD[@]}"}"
if [ "${#SCALE[@]}" -gt 0 ] && [ -n "${SCALE[0]}" ]; then
    # Scaling: one worker on a 1-queue pair vs two workers on a 2-queue pair; two
    # generator threads (CPU0, CPU1) -- veth picks the receive queue by the sending
    # CPU, and its NAPI runs there (softirq, not threaded), so each core carries a
    # generator, a queue's receive path and a worker.
    run_set "$NAME" "$NS" 1 0 64 scale_rxdrop_1w
    run_set "$NAME2" "$NS2" 2 0 64 scale_xdp_drop_2q scale_rxdrop_2w
fi

# Heap allocations per packet in steady state (engine, drop and tx-in-place).
ALLOC_LINES=()
if [ -x "$EX/alloccount" ] && { [ -z "$ONLY" ] || [[ alloccount =~ $ONLY ]]; }; then
    setup_pair "$NAME" "$NS" 1 1
    for mode in drop tx; do
        opt=(); [ "$mode" = tx ] && opt=(--tx)
        gen 0 64
        "$EX/alloccount" --iface "$H" --pin 1 --warmup 1 --secs "$SECS" "${opt[@]+"${opt[@]}"}" >"$WORK/alloc.log" 2>&1 || true
        stop_pid "$GEN_PID"; GEN_PID=""
        ALLOC_LINES+=("engine $mode: $(sed -n 's/^RESULT name=alloccount_allocs //p' "$WORK/alloc.log")")
    done
    [ -n "${PIN_PID:-}" ] && stop_pid "$PIN_PID"
    PIN_PID=""
    "$SCRIPT_DIR/setup_veth.sh" --name "$NAME" --ns "$NS" --down >/dev/null
fi

# ---------------------------------------------------------------- the table
median() { tr ' ' '\n' | awk '$1 != "" && $1 != "-"' | sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "-"; exit } if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
minmax() { tr ' ' '\n' | awk '$1 != ""' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo / 1e6, hi / 1e6 }'; }
echo
echo "fluxcapacitor bench -- kernel $(uname -r), $(nproc) CPUs, veth copy mode, $ROUNDS round(s) x ${SECS}s"
echo "generator: xdpgen (BPF_PROG_RUN live frames) on CPU0, receiver on CPU1; 'shared': generator on CPU1,"
echo "receiver and host NAPI thread on CPU0. rx/shared variants: host NAPI threaded on CPU0 (ceiling xdp_drop); l2fwd/txonly: NAPI in softirq"
echo "(ceiling xdp_drop_softirq); scale: 2 generator threads (ceiling scale_xdp_drop_2q). _b128: --tx-budget 128"
printf '%-32s %6s %10s %13s %9s %12s\n' variant bytes "Mpps(med)" "min-max" "vs DROP" "rx ns/pkt"
for s in $SIZES; do
    for v in "${MAIN[@]+"${MAIN[@]}"}" "${FWD[@]+"${FWD[@]}"}" "${SHARED[@]+"${SHARED[@]}"}" \
        scale_rxdrop_1w scale_xdp_drop_2q scale_rxdrop_2w; do
        key="$v/$s"
        [ -n "${PPS[$key]:-}" ] || continue
        med="$(median <<<"${PPS[$key]}")"
        # The ceiling of the same set: threaded NAPI, softirq NAPI, 2 queues.
        ceil="$(median <<<"${PPS[xdp_drop/$s]:-}")"
        case " ${FWD[*]+"${FWD[*]}"} ${SHARED[*]+"${SHARED[*]}"} " in
            *" $v "*) ceil="$(median <<<"${PPS[xdp_drop_softirq/$s]:-}")" ;;
        esac
        [[ "$v" == scale_* ]] && ceil="$(median <<<"${PPS[scale_xdp_drop_2q/$s]:-}")"
        ratio="$(awk -v a="$med" -v b="$ceil" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }')"
        printf '%-32s %6s %10.2f %13s %9s %12s\n' "$v" "$s" "$(awk -v m="$med" 'BEGIN { print m / 1e6 }')" \
            "$(minmax <<<"${PPS[$key]}")" "$ratio" "$(median <<<"${CPU[$key]}")"
    done
done
for l in "${ALLOC_LINES[@]+"${ALLOC_LINES[@]}"}"; do echo "allocations per packet, $l"; done

# ---------------------------------------------------------------- the ratios the goals are about
med_of() { median <<<"${PPS[$1]:-}"; }
ratio_line() { # ratio_line LABEL NUM_KEY DEN_KEY GOAL
    local a b
    a="$(med_of "$2")"; b="$(med_of "$3")"
    [ "$a" != "-" ] && [ "$b" != "-" ] || return 0
    awk -v l="$1" -v a="$a" -v b="$b" -v g="$4" -v n="$2" -v d="$3" 'BEGIN {
        if (b + 0 <= 0) exit
        r = a / b
        printf "  %-44s %6.2fx  (%s / %s; goal %s: %s)\n", l, r, n, d, g, (r >= g ? "met" : "NOT met") }'
}
best_peer() { # best_peer SIZE -> the key of the fastest peer receiver at SIZE
    local s="$1" k best="" bv=0 m
    for k in rust_xdpilone_rxdrop/$s c_rxdrop/$s c_rxdrop_poll/$s; do
        m="$(med_of "$k")"; [ "$m" != "-" ] || continue
        if awk -v m="$m" -v b="$bv" 'BEGIN { exit !(m > b) }'; then best="$k"; bv="$m"; fi
    done
    echo "$best"
}
echo
echo "ratios (medians above):"
for s in $SIZES; do
    bp="$(best_peer "$s")"
    [ -n "$bp" ] && ratio_line "engine rxdrop vs the best peer, $s B" "engine_rxdrop/$s" "$bp" 1.05
    ratio_line "engine rxdrop vs system rxdrop, $s B" "engine_rxdrop/$s" "system_rxdrop/$s" 1.0
    ratio_line "async rxdrop (defaults) vs engine, $s B" "async_rxdrop/$s" "engine_rxdrop/$s" 0.8
    ratio_line "engine l2fwd vs C l2fwd, $s B" "engine_l2fwd/$s" "c_l2fwd/$s" 1.1
    ratio_line "engine txonly vs C txonly, $s B" "engine_txonly/$s" "c_txonly/$s" 1.1
    for b in "${BASE_LABELS[@]+"${BASE_LABELS[@]}"}"; do
        for v in engine_rxdrop system_rxdrop async_rxdrop engine_l2fwd engine_txonly; do
            ratio_line "$v vs $b, $s B" "$v/$s" "$b:$v/$s" 1.0
        done
    done
done
# What RX metadata costs: the receiver's CPU per packet with it on minus off.
for s in $SIZES; do
    on="$(tr ' ' '\n' <<<"${CPU[engine_rxdrop_meta/$s]:-}" | median)"
    off="$(tr ' ' '\n' <<<"${CPU[engine_rxdrop/$s]:-}" | median)"
    [ "$on" != "-" ] && [ "$off" != "-" ] && [ -n "$on" ] && [ -n "$off" ] || continue
    awk -v a="$on" -v b="$off" -v s="$s" -v pa="$(med_of "engine_rxdrop_meta/$s")" -v pb="$(med_of "engine_rxdrop/$s")" 'BEGIN {
        printf "  %-44s %+6.1f ns/pkt receiver CPU, %6.2fx the rate (on %s / off %s)\n", "rx metadata on vs off, " s " B", a - b, (pb > 0 ? pa / pb : 0), pa, pb }'
done
ratio_line "shared core: engine vs C poll, 64 B" "shared_engine_rxdrop/64" "shared_c_rxdrop_poll/64" 5
ratio_line "2 queues, 2 workers vs 1 queue, 64 B" "scale_rxdrop_2w/64" "scale_rxdrop_1w/64" 1.6
