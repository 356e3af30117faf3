#!/usr/bin/env bash
# Shared shell helpers for fluxcapacitor's scripts. Source it:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# Every function prints what it does on stderr and returns non-zero on failure.

# Packages the build and the tests need (Debian names).
FX_DEPS=(clang llvm libelf-dev zlib1g-dev pkg-config iproute2 make iputils-ping python3 gcc ethtool bpftool socat netcat-openbsd tcpdump)

fx_log() { printf '%s\n' "$*" >&2; }
fx_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Fails (never skips) unless running as root.
fx_need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        fx_die "must run as root (AF_XDP, BPF and veth/netns setup need CAP_NET_ADMIN, CAP_BPF, CAP_SYS_ADMIN); try: sudo $0"
    fi
}

# True if the Debian package is installed.
fx_pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# Installs whichever of FX_DEPS is missing; `apt-get update` runs once, and
# only when something must be installed.
fx_install_deps() {
    local missing=() p
    for p in "${FX_DEPS[@]}"; do
        fx_pkg_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        fx_log "deps: all present (${FX_DEPS[*]})"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || fx_die "missing packages (${missing[*]}) and no apt-get"
    fx_log "deps: installing ${missing[*]}"
    if [ -z "${FX_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || fx_die "apt-get update failed"
        FX_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        || fx_die "apt-get install ${missing[*]} failed"
    for p in clang llc ip; do
        command -v "$p" >/dev/null 2>&1 || fx_log "deps: warning: '$p' still not on PATH"
    done
}

# Makes sure cargo is on PATH (also looks in ~/.cargo/bin). There is no way to
# download rustup here, so a missing toolchain is a hard failure.
fx_ensure_rust() {
    if ! command -v cargo >/dev/null 2>&1; then
        local d
        for d in "${CARGO_HOME:-$HOME/.cargo}/bin" "$HOME/.cargo/bin" /root/.cargo/bin /usr/local/cargo/bin; do
            if [ -x "$d/cargo" ]; then
                export PATH="$d:$PATH"
                break
            fi
        done
    fi
    command -v cargo >/dev/null 2>&1 \
        || fx_die "cargo not found (PATH or ~/.cargo/bin); install a Rust toolchain first (rustup cannot be downloaded from this environment)"
    fx_log "rust: $(cargo --version) / $(rustc --version 2>/dev/null)"
}

# Checks that clang can build BPF objects that include <linux/bpf.h>: the
# multiarch include dir (/usr/include/<triplet>/asm) must be found.
fx_clang_multiarch_check() {
    command -v clang >/dev/null 2>&1 || fx_die "clang not installed"
    local triplet tmp
    triplet="$(gcc -dumpmachine 2>/dev/null || echo "$(uname -m)-linux-gnu")"
    [ -d "/usr/include/$triplet/asm" ] \
        || fx_log "clang: warning: /usr/include/$triplet/asm missing (linux-libc-dev?)"
    tmp="$(mktemp -d)"
    printf '#include <linux/bpf.h>\nint f(struct xdp_md *c) { return XDP_PASS; }\n' >"$tmp/t.c"
    if ! clang -O2 -target bpf -I"/usr/include/$triplet" -c "$tmp/t.c" -o "$tmp/t.o" 2>"$tmp/err"; then
        cat "$tmp/err" >&2
        rm -rf "$tmp"
        fx_die "clang cannot compile a BPF object with <linux/bpf.h> (multiarch include path /usr/include/$triplet)"
    fi
    rm -rf "$tmp"
    fx_log "clang: BPF target OK ($(clang --version | head -n1); multiarch $triplet)"
}

# Installs the given Debian packages if missing (for optional tools, e.g. the C
# reference of scripts/bench.sh). Returns non-zero instead of dying on failure.
fx_install_pkgs() {
    local missing=() p
    for p in "$@"; do
        fx_pkg_installed "$p" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || { fx_log "deps: no apt-get to install ${missing[*]}"; return 1; }
    fx_log "deps: installing ${missing[*]}"
    if [ -z "${FX_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        FX_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
