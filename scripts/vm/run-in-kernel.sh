#!/usr/bin/env bash
# Runs one command as root inside a throw-away QEMU VM that boots a Debian
# distribution kernel, with this machine's root file system (9p, read-only,
# tmpfs overlays), and exits with the command's status.
#
#   scripts/vm/run-in-kernel.sh [OPTIONS] KERNEL COMMAND [ARGS...]
#   scripts/vm/run-in-kernel.sh --fetch KERNEL     # install + fetch only; prints the version
#
# KERNEL is a series (6.1, 6.12, 6.18: the newest Debian package of that series;
# series the system's apt sources lack come from Debian 13 "trixie" and
# trixie-backports, through a private apt configuration in the cache) or a full
# version (6.1.0-57-amd64, 6.12.117+deb12-amd64, 6.18.15+deb13-amd64).
# The kernel package is fetched with `apt-get download`, unpacked with
# `dpkg-deb -x` into the cache (nothing goes into /boot) and `depmod`ed.
# Everything the VM needs is installed on first use: qemu-system-x86, kmod,
# busybox-static and udev from apt, virtme-ng from PyPI in a venv.
#
# Options:
#   --rwdir DIR     DIR (host path) is writable in the guest and kept (results)
#   --env NAME=VAL  set in the guest (repeatable; CARGO_* and RUST_* are passed too)
#   --loop-nics     two virtio-net NICs (fxzc0, fxzc1) wired back to back on a private
#                   QEMU hub: their traffic never leaves the VM (zero-copy tests)
#   --cpus N (2)  --mem SIZE (2G)  --timeout SECONDS (1800)  --verbose (kernel console)
#
# Env: FX_VM_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/fluxcapacitor): venv
#      and kernels. FX_VM_ACCEL=tcg (default) | kvm. A /dev/kvm that is software
#      nested virtualisation cannot boot stock kernels, so TCG is the default.
set -euo pipefail
# The whole script is one block: bash reads it completely before running it, so
# editing the file while a (long) run is under way cannot derail that run.
{

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/lib.sh
. "$SCRIPT_DIR/../lib.sh"

CACHE="${FX_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxcapacitor}"
VENV="$CACHE/venv"
KDIR="$CACHE/kernels"
VNG_VERSION=1.42
VM_PKGS=(qemu-system-x86 kmod busybox-static udev python3-venv)

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

# qemu, kmod, busybox, udev (without udevd vng loses the command's output and
# status) and a venv with virtme-ng.
fx_vm_tools() {
    fx_install_pkgs "${VM_PKGS[@]}" >&2 || fx_die "cannot install ${VM_PKGS[*]}"
    if [ ! -x "$VENV/bin/vng" ] || ! "$VENV/bin/vng" --version 2>/dev/null | grep -qF "$VNG_VERSION"; then
        fx_log "vm: installing virtme-ng $VNG_VERSION into $VENV"
        mkdir -p "$CACHE"
        python3 -m venv "$VENV" >&2 || fx_die "python3 -m venv $VENV failed"
        "$VENV/bin/pip" install -q "virtme-ng==$VNG_VERSION" >&2 || fx_die "pip install virtme-ng==$VNG_VERSION failed"
    fi
}

# Kernels newer than the release's own (6.16 ... 7.x, 6.12+deb13) come from Debian 13
# and its backports. Their package lists live in the cache, under a private apt
# configuration: the system's apt sources are not touched.
EXTRA_SUITES="trixie trixie-backports"
fx_apt_extra() {
    local d="$CACHE/apt"
    echo -o "Dir::Etc::sourcelist=$d/sources.list" -o Dir::Etc::sourceparts=- \
        -o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache" -o APT::Get::List-Cleanup=0
}
fx_apt_extra_update() {
    local d="$CACHE/apt" s
    mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
    : >"$d/sources.list.new"
    for s in $EXTRA_SUITES; do
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $s main" >>"$d/sources.list.new"
    done
    mv "$d/sources.list.new" "$d/sources.list"
    # Refreshed once a day at most.
    if [ -z "$(find "$d/lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n1)" ]; then
        # shellcheck disable=SC2046 # options, split on purpose
        apt-get $(fx_apt_extra) update -qq >&2 || fx_log "vm: apt-get update of $EXTRA_SUITES failed"
    fi
}

# Newest kernel package of a series in apt's lists (args: extra apt options).
fx_vm_search() {
    local re="$1"; shift
    apt-cache "$@" search --names-only "$re" 2>/dev/null | awk '{print $1}' | sort -V | tail -n1
}

# Newest Debian kernel package version of a series, e.g. 6.1 -> 6.1.0-57-amd64:
# from the system's apt sources first, else from Debian 13 and its backports.
fx_vm_newest() {
    local series="$1" re found
    re="^linux-image-${series//./\\.}(\\.0-[0-9]+|\\.[0-9]+\\+deb[0-9]+)-amd64\$"
    found="$(fx_vm_search "$re")"
    if [ -z "$found" ] && [ -z "${FX_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
        FX_APT_UPDATED=1
        found="$(fx_vm_search "$re")"
    fi
    if [ -z "$found" ]; then
        fx_apt_extra_update
        # shellcheck disable=SC2046
        found="$(fx_vm_search "$re" $(fx_apt_extra))"
    fi
    if [ -z "$found" ]; then
        # Offline: the newest one already in the cache will do.
        local d
        found="$(for d in "$KDIR/$series".*; do
            [[ ${d##*/} =~ ${re#^linux-image-} ]] && [ -d "$d" ] && echo "${d##*/}"
        done | sort -V | tail -n1)"
        [ -n "$found" ] || fx_die "no linux-image package of series $series in apt (apt-get update?) nor in $KDIR"
        echo "$found"
        return
    fi
    echo "${found#linux-image-}"
}

# Fetches and unpacks linux-image-VER into $KDIR/VER (once; concurrent callers wait).
fx_vm_fetch() {
    local ver="$1" root="$KDIR/$1"
    [ -f "$root/boot/vmlinuz-$ver" ] && return 0
    mkdir -p "$KDIR"
    (
        flock 9
        [ -f "$root/boot/vmlinuz-$ver" ] && exit 0
        local tmp
        tmp="$(mktemp -d "$KDIR/.dl.XXXXXX")"
        fx_log "vm: fetching linux-image-$ver"
        if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "linux-image-$ver" >&2); then
            fx_apt_extra_update
            # shellcheck disable=SC2046
            (cd "$tmp" && apt-get $(fx_apt_extra) download -q -o APT::Sandbox::User=root "linux-image-$ver" >&2) \
                || { rm -rf "$tmp"; fx_die "apt-get download linux-image-$ver failed"; }
        fi
        rm -rf "$root.part"
        dpkg-deb -x "$tmp"/linux-image-*.deb "$root.part" || { rm -rf "$tmp"; fx_die "dpkg-deb -x failed"; }
        # Debian 13 packages keep modules in /usr/lib/modules (merged /usr).
        if [ ! -e "$root.part/lib" ] && [ -d "$root.part/usr/lib/modules" ]; then
            ln -s usr/lib "$root.part/lib"
        fi
        depmod -a -b "$root.part" "$ver" || { rm -rf "$tmp"; fx_die "depmod failed for $ver"; }
        rm -rf "$tmp" "$root"
        mv "$root.part" "$root"
        fx_log "vm: $ver unpacked into $root"
    ) 9>"$KDIR/.lock"
}

fx_vm_resolve() {
    case "$1" in
        *-amd64) echo "$1" ;;
        [0-9]*.[0-9]*) fx_vm_newest "$1" ;;
        *) fx_die "kernel '$1': give a series (6.1, 6.12) or a full version (6.1.0-57-amd64)" ;;
    esac
}

FETCH_ONLY=0
RWDIRS=()
ENVS=()
LOOP=0
CPUS=2
MEM=2G
TIMEOUT=1800
VERBOSE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --fetch) FETCH_ONLY=1; shift ;;
        --rwdir) RWDIRS+=("$2"); shift 2 ;;
        --env) ENVS+=("$2"); shift 2 ;;
        --loop-nics) LOOP=1; shift ;;
        --cpus) CPUS="$2"; shift 2 ;;
        --mem) MEM="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --verbose) VERBOSE=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        -*) fx_die "unknown option $1 (try --help)" ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { usage >&2; exit 2; }
fx_need_root
KSPEC="$1"; shift

fx_vm_tools
KVER="$(fx_vm_resolve "$KSPEC")"
fx_vm_fetch "$KVER"
if [ "$FETCH_ONLY" -eq 1 ]; then
    echo "$KVER"
    exit 0
fi
[ $# -ge 1 ] || fx_die "no command given"

# Environment for the guest: cargo's and rust's variables, and --env.
envs=()
while IFS='=' read -r name _; do
    [[ $name =~ ^(CARGO_|RUST_)[A-Za-z0-9_]*$ ]] && envs+=("$name=${!name}")
done < <(env)
envs+=(${ENVS[@]+"${ENVS[@]}"})
cmd="$(printf '%q ' cd "$PWD")&& $(printf '%q ' env "${envs[@]}" "$@")"

# Modules udev would load for QEMU's emulated PC devices: each costs about half a
# second of boot under TCG and none is needed (veth, virtio_net, bpf are not listed).
SKIP_MODS=kvm,kvm_intel,kvm_amd,irqbypass,ccp,ahci,libahci,libata,sr_mod,cdrom,sg,scsi_mod
SKIP_MODS+=,i2c_i801,i2c_smbus,lpc_ich,iTCO_wdt,iTCO_vendor_support,i6300esb,psmouse,pcspkr
SKIP_MODS+=,evdev,serio_raw,joydev,mousedev,button,qemu_fw_cfg,intel_rapl_msr,intel_rapl_common
SKIP_MODS+=,aesni_intel,ghash_clmulni_intel,sha1_ssse3,sha256_ssse3,sha512_ssse3,crc32_pclmul
SKIP_MODS+=,crc32c_intel,crct10dif_pclmul,polyval_clmulni,polyval_generic,intel_pmc_bxt

ROOT="$KDIR/$KVER"
args=(-r "$ROOT/boot/vmlinuz-$KVER" --force-9p --cpus "$CPUS" --memory "$MEM"
      --append "modprobe.blacklist=$SKIP_MODS")
[ "${FX_VM_ACCEL:-tcg}" = tcg ] && args+=(--disable-kvm)
for d in ${RWDIRS[@]+"${RWDIRS[@]}"}; do args+=(--rwdir "$d"); done
[ "$VERBOSE" -eq 1 ] && args+=(--verbose)
if [ "$LOOP" -eq 1 ]; then
    # One hub, two ports: whatever eth0 sends arrives on eth1 and back, nothing
    # else is on the hub. iommu_platform makes the NICs use the DMA API, which
    # virtio-net's AF_XDP zero-copy requires (virtqueue_dma_dev).
    for i in 0 1; do
        args+=("--qemu-opts=-netdev hubport,id=fxzc$i,hubid=42 -device virtio-net-pci,netdev=fxzc$i,mac=02:00:00:00:42:0$i,disable-legacy=on,iommu_platform=on")
    done
    # Whatever udev called them, the guest command sees them as fxzc0 and fxzc1, up.
    # shellcheck disable=SC2016 # expanded in the guest
    rename='for i in 0 1; do d=$(grep -lx 02:00:00:00:42:0$i /sys/class/net/*/address | cut -d/ -f5) && ip link set dev "$d" name fxzc$i && ip link set dev fxzc$i up || exit 70; done'
    cmd="$rename; $cmd"
fi

export PATH="$VENV/bin:$PATH"   # vng starts virtme-run from PATH
fx_log "vm: booting $KVER (${FX_VM_ACCEL:-tcg}, $CPUS cpus, $MEM)"
# QEMU opens its stdout and stderr anew and truncates them: through pipes, a log
# file that the caller redirected us into keeps what was written before.
set +e
timeout --foreground -k 10 "$TIMEOUT" "$VENV/bin/vng" "${args[@]}" -- "$cmd" 2> >(cat >&2) | cat
rc=${PIPESTATUS[0]}
wait "$!" 2>/dev/null
set -e
[ "$rc" -eq 124 ] && fx_log "vm: $KVER killed after ${TIMEOUT}s (--timeout)"
exit "$rc"
}
