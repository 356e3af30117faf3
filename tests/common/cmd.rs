//! Running `ip` and `sysctl`, and small parsers of their output.

use std::ffi::CString;
use std::io;
use std::process::Command;

// ---------------------------------------------------------------------------
// Command helpers
// ---------------------------------------------------------------------------

/// Runs `ip ARGS...`; returns stdout on success, a description including
/// stderr on failure.
pub(crate) fn ip_try(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `ip ARGS...` and panics with its stderr if it fails.
pub(crate) fn ip(args: &[&str]) -> String {
    ip_try(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub(crate) fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads the MAC of `ifname` from `ip -o link show` output (optionally `-n NS`).
pub(crate) fn link_mac(ns: Option<&str>, ifname: &str) -> [u8; 6] {
    let mut args = Vec::new();
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["-o", "link", "show", "dev", ifname]);
    let out = ip(&args);
    let toks: Vec<&str> = out.split_whitespace().collect();
    let mac = toks
        .windows(2)
        .find(|w| w[0] == "link/ether")
        .and_then(|w| parse_mac(w[1]));
    if let Some(mac) = mac {
        return mac;
    }
    panic!("no link/ether address for {ifname} in: {out}");
}

/// `if_nametoindex(3)` in the calling thread's network namespace.
pub(crate) fn ifindex_of(ifname: &str) -> io::Result<u32> {
    let c = CString::new(ifname).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

/// Writes a sysctl through `/proc/sys` of the calling thread's namespace
/// for the root namespace, or with `ip netns exec NS sysctl` inside `ns`.
pub(crate) fn sysctl(ns: Option<&str>, key: &str, value: &str) {
    match ns {
        None => {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::write(&path, value)
                .unwrap_or_else(|e| panic!("cannot write {value} to {path}: {e}"));
        }
        Some(ns) => {
            let kv = format!("{key}={value}");
            ip(&["netns", "exec", ns, "sysctl", "-q", "-w", &kv]);
        }
    }
}
