//! The XDP program: what it steers to the socket and answers itself (`filter`), the
//! embedded object loaded with its maps (`program`), attached by link or netlink and
//! told apart from programs already there (`attach`), and the neighbour responder's
//! TC half (`responder`).

use std::fmt;

#[cfg(target_os = "linux")]
mod attach;
mod filter;
#[cfg(target_os = "linux")]
mod program;
#[cfg(target_os = "linux")]
mod responder;

#[cfg(target_os = "linux")]
pub(crate) use attach::existing_program;
pub use filter::{Neighbours, SteeringFilter, MAX_FILTER_PORTS, MAX_NEIGHBOUR_ADDRS};
#[cfg(target_os = "linux")]
pub use program::XdpProgram;

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// Native (driver) mode if the driver supports it, else generic.
    #[default]
    Auto,
    /// Native (driver) mode only (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic (SKB) mode (`XDP_FLAGS_SKB_MODE`): works everywhere, slower.
    Generic,
}

/// How the program is attached to the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpAttach {
    /// A `bpf_link` (the default; kernel ≥ 5.9, else netlink): the program goes away
    /// when the process dies, and other tools cannot detach it by netlink.
    #[default]
    Link,
    /// Netlink (`IFLA_XDP`), as `ip link set dev X xdp obj …` does: for setups whose
    /// other tools expect it. The program stays if the process dies without
    /// dropping the `Flux` (the next build finds it and says so), and other tools can
    /// detach or replace it — which the device watch notices.
    Netlink,
}

/// The mode a program actually runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    /// Driver mode.
    Native,
    /// SKB mode.
    Generic,
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        })
    }
}

/// Per-queue counters of the default program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramCounters {
    /// Packets redirected to the socket.
    pub redirected: u64,
    /// Packets passed to the kernel because no socket was registered on the queue.
    pub passed: u64,
    /// Packets passed to the kernel because the steering filter did not match.
    pub filtered: u64,
    /// Packets dropped by the program's test hook.
    pub dropped: u64,
    /// ARP requests and Neighbor Solicitations for [`Neighbours`] addresses handed to
    /// the responder instead of the socket.
    pub nd_requests: u64,
    /// RX-metadata variant only: packets redirected without metadata because the
    /// frame had no room in front of the packet for it (their accessors say `None`).
    pub meta_missing: u64,
}

/// How the attach went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachInfo {
    /// The mode the program runs in.
    pub mode: AttachedMode,
    /// Attached through a `bpf_link` (auto-detaches when the process dies).
    pub link: bool,
    /// Why this mode (e.g. why native was not used).
    pub reason: String,
}
