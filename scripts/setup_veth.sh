#!/usr/bin/env bash
# Creates (or with --down removes) a veth pair for trying fluxcapacitor by hand:
# the host end stays in the root namespace, the peer end lives in namespace NS.
#
#   scripts/setup_veth.sh [--name NAME] [--ns NS] [--queues N] [--mtu M]
#                         [--host-ip A] [--peer-ip B] [--down]
#
# Defaults: NAME=fx0 (peer: NAMEp, e.g. fx0p), NS=fxns, 1 queue, kernel MTU,
# 198.18.0.1/30 on the host end and 198.18.0.2/30 on the peer (RFC 2544
# benchmarking range). IPv6 is disabled on both ends. No neighbour entries are
# made by hand: the ends resolve each other like any hosts (a socket that takes
# every packet of an end answers ARP for its address with
# `SteeringFilter::answering`, see the README). Idempotent: a pair that is already set up as asked is kept
# as it is (so a program attached to it keeps running); a half-made or different
# one of the same names is removed and made again. `--down` is the matching
# teardown (also idempotent). On success prints a KEY=VALUE block:
#   HOST_IF= PEER_IF= NS= HOST_MAC= PEER_MAC= HOST_IP= PEER_IP= QUEUES=
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

NAME=fx0
NS=fxns
QUEUES=1
MTU=
HOST_IP=198.18.0.1
PEER_IP=198.18.0.2
DOWN=0

while [ $# -gt 0 ]; do
    case "$1" in
        --name) NAME="${2:?--name needs a value}"; shift 2 ;;
        --ns) NS="${2:?--ns needs a value}"; shift 2 ;;
        --queues) QUEUES="${2:?--queues needs a value}"; shift 2 ;;
        --mtu) MTU="${2:?--mtu needs a value}"; shift 2 ;;
        --host-ip) HOST_IP="${2:?--host-ip needs a value}"; shift 2 ;;
        --peer-ip) PEER_IP="${2:?--peer-ip needs a value}"; shift 2 ;;
        --down) DOWN=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ "$(id -u)" -ne 0 ]; then
    echo "error: $0 must run as root (creates network namespaces and veth interfaces)" >&2
    exit 1
fi

PEER="${NAME}p"
if [ "${#PEER}" -gt 15 ]; then
    echo "error: interface name '$PEER' is longer than 15 characters; use a shorter --name" >&2
    exit 2
fi
case "$QUEUES" in ''|*[!0-9]*|0) echo "error: --queues must be a positive integer" >&2; exit 2 ;; esac
if [ -n "$MTU" ]; then
    case "$MTU" in *[!0-9]*) echo "error: --mtu must be an integer" >&2; exit 2 ;; esac
fi

teardown() {
    # Deleting the host end removes both ends; deleting the namespace removes
    # a peer that may have been left in it.
    if ip link show dev "$NAME" >/dev/null 2>&1; then
        ip link del dev "$NAME"
    fi
    if [ -e "/var/run/netns/$NS" ]; then
        ip netns del "$NS"
    fi
}

if [ "$DOWN" -eq 1 ]; then
    teardown
    echo "removed $NAME/$PEER and namespace $NS (if they existed)"
    exit 0
fi

mac_of() { # mac_of [ip options...] IFNAME
    local ifname="${*: -1}" opts=("${@:1:$#-1}")
    ip "${opts[@]}" -o link show dev "$ifname" | sed -n 's/.*link\/ether \([0-9a-f:]\{17\}\).*/\1/p'
}

print_block() {
    cat <<EOT
HOST_IF=$NAME
PEER_IF=$PEER
NS=$NS
HOST_MAC=$(mac_of "$NAME")
PEER_MAC=$(mac_of -n "$NS" "$PEER")
HOST_IP=$HOST_IP
PEER_IP=$PEER_IP
QUEUES=$QUEUES
EOT
}

# Already set up exactly as asked: keep it.
already() {
    [ -e "/var/run/netns/$NS" ] || return 1
    ip -o link show dev "$NAME" 2>/dev/null | grep -q "state UP\|,UP" || return 1
    ip -n "$NS" -o link show dev "$PEER" >/dev/null 2>&1 || return 1
    ip -o -4 addr show dev "$NAME" | grep -q " $HOST_IP/30 " || return 1
    ip -n "$NS" -o -4 addr show dev "$PEER" | grep -q " $PEER_IP/30 " || return 1
    [ "$(ls -d /sys/class/net/"$NAME"/queues/rx-* | wc -l)" -eq "$QUEUES" ] || return 1
    if [ -n "$MTU" ]; then
        [ "$(cat /sys/class/net/"$NAME"/mtu)" -eq "$MTU" ] || return 1
    fi
    return 0
}
if already; then
    print_block
    exit 0
fi

teardown

# If anything below fails, do not leave a half-made setup behind.
trap 'rc=$?; if [ $rc -ne 0 ]; then echo "setup failed (rc $rc); cleaning up" >&2; teardown || true; fi' EXIT

ip netns add "$NS"
ip netns exec "$NS" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
# numrxqueues/numtxqueues must come before `type veth`.
ip link add "$NAME" numrxqueues "$QUEUES" numtxqueues "$QUEUES" type veth \
    peer name "$PEER" numrxqueues "$QUEUES" numtxqueues "$QUEUES" netns "$NS"
echo 1 >"/proc/sys/net/ipv6/conf/$NAME/disable_ipv6"
ip netns exec "$NS" sysctl -q -w "net.ipv6.conf.$PEER.disable_ipv6=1"
if [ -n "$MTU" ]; then
    ip link set dev "$NAME" mtu "$MTU"
    ip -n "$NS" link set dev "$PEER" mtu "$MTU"
fi
ip addr add "$HOST_IP/30" dev "$NAME"
ip -n "$NS" addr add "$PEER_IP/30" dev "$PEER"
ip -n "$NS" link set dev lo up
ip link set dev "$NAME" up
ip -n "$NS" link set dev "$PEER" up

HOST_MAC="$(mac_of "$NAME")"
PEER_MAC="$(mac_of -n "$NS" "$PEER")"
[ -n "$HOST_MAC" ] && [ -n "$PEER_MAC" ] || { echo "error: could not read MAC addresses" >&2; exit 1; }


trap - EXIT
print_block
