//! What a test may leave behind: XDP programs on interfaces, descriptors, BPF
//! programs and maps, veth interfaces and namespaces; and link statistics.

use std::io;
use std::process::Command;

use super::cmd::*;

// ---------------------------------------------------------------------------
// XDP attachment checks
// ---------------------------------------------------------------------------

/// True if `ip -d link show` output lists an XDP program (any mode).
pub(crate) fn output_shows_xdp(out: &str) -> bool {
    out.split_whitespace().any(|t| {
        matches!(
            t,
            "xdp" | "xdpgeneric" | "xdpdrv" | "xdpoffload" | "xdpmulti"
        ) || t.starts_with("prog/xdp")
    })
}

/// True if an XDP program (native, generic or offloaded) is attached to
/// `ifname` in the current namespace; false if none or the link is missing.
pub fn xdp_attached(ifname: &str) -> bool {
    ip_try(&["-d", "link", "show", "dev", ifname])
        .map(|o| output_shows_xdp(&o))
        .unwrap_or(false)
}

/// Like [`xdp_attached`] for `ifname` inside namespace `ns`.
pub fn ns_xdp_attached(ns: &str, ifname: &str) -> bool {
    ip_try(&["-n", ns, "-d", "link", "show", "dev", ifname])
        .map(|o| output_shows_xdp(&o))
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// Resource counters (leak checks)
// ---------------------------------------------------------------------------

/// Number of open file descriptors of this process (entries of
/// `/proc/self/fd`, not counting the one used to list them). Note that other
/// tests running in parallel threads also open fds.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
        .saturating_sub(1)
}

/// `bpf(2)` command numbers from `<linux/bpf.h>`.
pub(crate) const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
pub(crate) const BPF_MAP_GET_NEXT_ID: libc::c_long = 12;

/// Prefix of `union bpf_attr` used by the `*_GET_NEXT_ID` commands, padded to
/// 128 zeroed bytes (the kernel requires unknown tail bytes to be zero).
#[repr(C)]
struct BpfGetNextIdAttr {
    start_id: u32,
    next_id: u32,
    open_flags: u32,
    _pad: [u8; 116],
}

/// Walks a `*_GET_NEXT_ID` id space system-wide.
pub(crate) fn bpf_ids(cmd: libc::c_long) -> Vec<u32> {
    let mut ids = Vec::new();
    let mut start = 0u32;
    loop {
        let mut attr = BpfGetNextIdAttr {
            start_id: start,
            next_id: 0,
            open_flags: 0,
            _pad: [0; 116],
        };
        // SAFETY: attr is a valid, fully initialised 128-byte bpf_attr prefix.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                &mut attr as *mut BpfGetNextIdAttr,
                std::mem::size_of::<BpfGetNextIdAttr>() as libc::c_uint,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) {
                return ids;
            }
            panic!("bpf(GET_NEXT_ID {cmd}): {e}");
        }
        ids.push(attr.next_id);
        start = attr.next_id;
    }
}

/// Ids of all BPF programs loaded system-wide (`BPF_PROG_GET_NEXT_ID`).
/// System-wide: compare before/after sets, not absolute counts.
pub fn bpf_prog_ids() -> Vec<u32> {
    bpf_ids(BPF_PROG_GET_NEXT_ID)
}

/// Ids of all BPF maps existing system-wide (`BPF_MAP_GET_NEXT_ID`).
pub fn bpf_map_ids() -> Vec<u32> {
    bpf_ids(BPF_MAP_GET_NEXT_ID)
}

/// Names of veth interfaces in the current namespace starting with `p`.
pub fn veth_names_with_prefix(p: &str) -> Vec<String> {
    let out = ip(&["-o", "link", "show", "type", "veth"]);
    out.lines()
        .filter_map(|l| {
            // "12: fx0h@if11: <...>" or "12: fx0h@fx0p: <...>"
            let name = l.split(": ").nth(1)?;
            let name = name.split('@').next()?.trim_end_matches(':');
            name.starts_with(p).then(|| name.to_string())
        })
        .collect()
}

/// Names of network namespaces (`ip netns list`) starting with `p`.
pub fn netns_names_with_prefix(p: &str) -> Vec<String> {
    ip_try(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(p))
        .map(str::to_string)
        .collect()
}

/// `ip -s link show` of an interface inside a namespace (for failure messages).
pub fn ns_link_stats(ns: &str, ifname: &str) -> String {
    Command::new("ip")
        .args(["-n", ns, "-s", "link", "show", "dev", ifname])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}
