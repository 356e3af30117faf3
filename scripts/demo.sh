#!/usr/bin/env bash
# fluxcapacitor demo: an AF_XDP receiver and generator talking over a veth pair.
#
#   scripts/demo.sh [--duration N]      (default 10 seconds; must be root)
#
# Builds the examples in release mode, creates the veth pair fxdemo (root
# namespace) <-> fxdemop (namespace fxdemons) with scripts/setup_veth.sh, runs
#   rx: target/release/examples/rxdrop --iface fxdemo --queue 0 --duration N
# in the root namespace, waits for it to report "attached", then runs
#   tx: target/release/examples/txgen --iface fxdemop --dst-mac HOST_MAC
#         --src-ip PEER_IP --dst-ip HOST_IP --size 64 --duration N
# inside the namespace. Each program prints one line per second; the lines are
# shown prefixed with [rx] / [tx]. Everything is torn down on exit or Ctrl-C.
# The last line is a summary, `demo: received N packets in S s (R pps)`, and the
# exit status is non-zero unless packets arrived and nothing was left behind.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/lib.sh"

DURATION=10
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION="${2:?--duration needs a value}"; shift 2 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
case "$DURATION" in ''|*[!0-9]*|0) echo "error: --duration must be a positive integer" >&2; exit 2 ;; esac

HOST_IF=fxdemo
DEMO_NS=fxdemons
RX_BIN="$REPO_ROOT/target/release/examples/rxdrop"
TX_BIN="$REPO_ROOT/target/release/examples/txgen"

fx_need_root
fx_install_deps
fx_ensure_rust

echo "== building the examples rxdrop and txgen (release)"
(cd "$REPO_ROOT" && cargo build --release --features async --example rxdrop --example txgen)
for b in "$RX_BIN" "$TX_BIN"; do
    [ -x "$b" ] || fx_die "example binary $b was not built"
done

RX_PID=""
TX_PID=""
RX_FIFO_DIR=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # Only the processes this script started, by pid.
    for pid in $TX_PID $RX_PID; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    for pid in $TX_PID $RX_PID; do
        wait "$pid" 2>/dev/null || true
    done
    bash "$SCRIPT_DIR/setup_veth.sh" --name "$HOST_IF" --ns "$DEMO_NS" --down >/dev/null 2>&1 \
        || echo "warning: could not remove $HOST_IF/$DEMO_NS" >&2
    [ -z "$RX_FIFO_DIR" ] || rm -rf "$RX_FIFO_DIR"
    if ip link show dev "$HOST_IF" >/dev/null 2>&1 || [ -e "/var/run/netns/$DEMO_NS" ]; then
        echo "demo: $HOST_IF or namespace $DEMO_NS is still there after clean-up" >&2
        [ "$rc" -ne 0 ] || rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== creating veth pair"
ENV_OUT="$(bash "$SCRIPT_DIR/setup_veth.sh" --name "$HOST_IF" --ns "$DEMO_NS")"
echo "$ENV_OUT"
HOST_MAC="$(sed -n 's/^HOST_MAC=//p' <<<"$ENV_OUT")"
HOST_IP="$(sed -n 's/^HOST_IP=//p' <<<"$ENV_OUT")"
PEER_IP="$(sed -n 's/^PEER_IP=//p' <<<"$ENV_OUT")"
PEER_IF="$(sed -n 's/^PEER_IF=//p' <<<"$ENV_OUT")"
[ -n "$HOST_MAC" ] && [ -n "$HOST_IP" ] && [ -n "$PEER_IP" ] && [ -n "$PEER_IF" ] \
    || fx_die "could not parse setup_veth.sh output"

# The receiver writes into a FIFO; a reader loop prefixes its lines and
# signals (via a marker file) once a line mentions "attached".
RX_FIFO_DIR="$(mktemp -d "${TMPDIR:-/tmp}/fxdemo.XXXXXX")"
mkfifo "$RX_FIFO_DIR/rx"
ATTACHED="$RX_FIFO_DIR/attached"

echo "== starting receiver on $HOST_IF"
"$RX_BIN" --iface "$HOST_IF" --queue 0 --duration "$DURATION" >"$RX_FIFO_DIR/rx" 2>&1 &
RX_PID=$!
(
    while IFS= read -r line; do
        printf '[rx] %s\n' "$line"
        case "$line" in
            *attached*) : >"$ATTACHED" ;;
            RESULT*) printf '%s\n' "$line" >"$RX_FIFO_DIR/result" ;;
        esac
    done <"$RX_FIFO_DIR/rx"
) &

for _ in $(seq 1 100); do
    [ -e "$ATTACHED" ] && break
    kill -0 "$RX_PID" 2>/dev/null || break
    sleep 0.1
done
if [ ! -e "$ATTACHED" ]; then
    rc=0
    kill -0 "$RX_PID" 2>/dev/null || { wait "$RX_PID" || rc=$?; RX_PID=""; }
    fx_die "receiver did not report 'attached' within 10s (exit status $rc if it ended)"
fi

echo "== starting generator in namespace $DEMO_NS on $PEER_IF"
ip netns exec "$DEMO_NS" "$TX_BIN" --iface "$PEER_IF" --dst-mac "$HOST_MAC" \
    --src-ip "$PEER_IP" --dst-ip "$HOST_IP" --size 64 --duration "$DURATION" \
    > >(while IFS= read -r line; do printf '[tx] %s\n' "$line"; done) 2>&1 &
TX_PID=$!

status=0
wait "$TX_PID" || { echo "generator exited with status $?" >&2; status=1; }
TX_PID=""
wait "$RX_PID" || { echo "receiver exited with status $?" >&2; status=1; }
RX_PID=""
wait  # the output-prefixing loops
RESULT_LINE="$(cat "$RX_FIFO_DIR/result" 2>/dev/null || true)"
PKTS="$(sed -n 's/.* pkts=\([0-9]*\).*/\1/p' <<<"$RESULT_LINE")"
SECS="$(sed -n 's/.* secs=\([0-9.]*\).*/\1/p' <<<"$RESULT_LINE")"
PPS="$(sed -n 's/.* pps=\([0-9]*\).*/\1/p' <<<"$RESULT_LINE")"
if [ -z "$PKTS" ] || [ "${PKTS:-0}" -eq 0 ]; then
    echo "demo: the receiver reported no packets (${RESULT_LINE:-no RESULT line})" >&2
    status=1
fi
echo "== demo finished (status $status)"
echo "demo: received ${PKTS:-0} packets in ${SECS:-?} s (${PPS:-0} pps)"
exit "$status"
