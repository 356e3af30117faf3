//! Shared fixture for the integration tests (`mod common;` in `tests/*.rs`).
//!
//! Everything here needs root (`CAP_NET_ADMIN`, `CAP_BPF`, `CAP_SYS_ADMIN` for
//! `setns`); tests call [`require_root`] (or [`VethPair::new`], which calls it)
//! and therefore *fail* rather than skip when not run as root.
//!
//! Network plumbing is done with iproute2 (`ip`) so the fixture needs no crate
//! beyond `libc`. Every network namespace and veth this module creates has a
//! name starting with `fx`, so `scripts/test.sh` can detect leftovers.
//!
//! All traffic stays between the veth ends of a [`VethPair`]: the host end in
//! the test's own (root) namespace and the peer end in a private namespace.
#![allow(dead_code, unused_imports)]

pub mod capture;
pub mod cmd;
pub mod ethtool;
pub mod frames;
pub mod leaks;
pub mod netns;
#[cfg(feature = "raw")]
pub mod raw;
pub mod udp;
pub mod veth;

pub use capture::*;
pub use cmd::fmt_mac;
pub use ethtool::*;
pub use frames::*;
pub use leaks::*;
pub use netns::*;
pub use udp::*;
pub use veth::*;

/// The running kernel is `major.minor` or later.
pub fn kernel_at_least(major: u32, minor: u32) -> bool {
    let rel = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("osrelease");
    let mut it = rel.trim().split(|c: char| !c.is_ascii_digit());
    let a: u32 = it.next().and_then(|s| s.parse().ok()).expect("major");
    let b: u32 = it.next().and_then(|s| s.parse().ok()).expect("minor");
    (a, b) >= (major, minor)
}

/// The running kernel binds multi-buffer sockets (`XDP_USE_SG`: Linux 6.6 or later).
pub fn kernel_has_multi_buffer() -> bool {
    kernel_at_least(6, 6)
}

/// On a kernel without multi-buffer, checks that a multi-buffer build was refused
/// with the typed [`Error::Unsupported`](fluxcapacitor::Error::Unsupported) and
/// returns true (the test ends there); on one with it, returns false.
pub fn refused_multi_buffer<T>(built: &Result<T, fluxcapacitor::Error>) -> bool {
    if kernel_has_multi_buffer() {
        return false;
    }
    match built {
        Err(fluxcapacitor::Error::Unsupported {
            feature: fluxcapacitor::Feature::MultiBuffer,
            ..
        }) => true,
        Err(e) => panic!("expected the typed multi-buffer refusal, got: {e}"),
        Ok(_) => panic!("a kernel before 6.6 bound a multi-buffer socket"),
    }
}

/// Panics unless the effective uid is 0. Never skips: a test that needs the
/// kernel must fail loudly when it cannot run.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        panic!(
            "these tests need root (CAP_NET_ADMIN, CAP_BPF): run scripts/test.sh as root \
             (current euid {euid})"
        );
    }
}

/// Kernel tests need root. Without it they fail when `FLUX_REQUIRE_ROOT_TESTS` is
/// set (scripts/test.sh and CI set it: there a root test must never be skipped), and
/// otherwise skip with a loud note — so that `cargo test --no-default-features
/// --features sim,engine,system` runs its simulated-device suite as a normal user.
pub fn skip_without_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return false;
    }
    if std::env::var_os("FLUX_REQUIRE_ROOT_TESTS").is_some() {
        require_root();
    }
    eprintln!(
        "SKIPPED: this test needs root (CAP_NET_ADMIN, CAP_BPF); run scripts/test.sh as root"
    );
    true
}
