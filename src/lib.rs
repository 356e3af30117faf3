//! # fluxcapacitor
//!
//! Safe, zero-copy AF_XDP (XDP sockets) for Rust — packet handling so fast it feels
//! like time travel.
//!
//! One [`FluxBuilder`] call loads the embedded XDP program, sizes its XSKMAP, attaches
//! it with a `bpf_link` (so it goes away when the process dies), creates the UMEM and
//! the socket, binds it and registers it. The [`Flux`] it returns owns all of that and
//! undoes it on drop.
//!
//! ```no_run
//! # fn main() -> Result<(), fluxcapacitor::Error> {
//! use fluxcapacitor::FluxBuilder;
//! let mut flux = FluxBuilder::new("veth0").queue(0).build()?;
//! println!("{}", flux.report());
//! assert!(flux.frame_counts().is_conserved());
//! # Ok(()) }
//! ```
//!
//! ## The vocabulary
//! | name | what it is |
//! |------|------------|
//! | [`FluxBuilder`] → [`Flux`] | one AF_XDP socket bound to one queue, with its UMEM, rings, program and device watch; [`SetupReport`] says what set-up chose and why |
//! | [`Umem`], [`FramePool`], [`FrameCounts`] | the packet memory, its free frames, and the census of where every frame is |
//! | [`ring`] | the SPSC ring and its four typed faces (FILL, RX, TX, COMPLETION), with reservation and peek guards |
//! | [`Device`] | the other side of the rings: the kernel socket (or a simulated device) — kicks, wake-ups, waits, statistics |
//! | [`XdpProgram`], [`SteeringFilter`] | the embedded XDP program and what it sends to the socket |
//! | [`watch`] | the device watch: [`DeviceEvent`]s that end a socket, [`DeviceStatus`], [`LinkDown`] |
//! | [`engine::Engine`] | the managed loop: a batch callback with zero-copy verdicts, one worker per queue |
//! | [`system::Rx`] / [`system::Tx`] / [`system::Frame`] | owned frames and blocking handles; `system::tokio` the same on tokio |
//! | [`proto`] | zero-copy packet views over etherparse with in-place edits and checksums |
//! | [`features`] → [`DeviceFeatures`] | what a device offers (native XDP, zero-copy, multi-buffer, RX/TX metadata), from the kernel's `netdev` netlink family: [`probe`] before binding |
//! | [`Error`] | every failure, typed, naming the stage, the cause and the fix |
//!
//! ## Features
//! | feature | default | what you get |
//! |---------|---------|--------------|
//! | (core)  | always  | UMEM, rings, socket, program loading, [`FluxBuilder`], the device watch, accounting, statistics |
//! | `raw`   | yes     | [`Flux::raw`]: typed FILL / COMPLETION / RX / TX rings and UMEM frames, for code that drives the rings itself |
//! | `engine` | yes    | [`engine::Engine`]: managed loop, batch callback with zero-copy verdicts, one worker per queue |
//! | `system` | yes    | [`system`]: `Rx` / `Tx` handles with owned frames, blocking calls |
//! | `proto` | yes     | [`proto`]: zero-copy Eth / VLAN / ARP / IPv4 / IPv6 / ICMP / UDP / TCP views, in-place edits, checksums |
//! | `async` | no      | `system::tokio`: the system handles as tokio futures, cancel-safe (pulls in tokio) |
//! | `sim`   | no      | `sim`: a simulated device, so engine and system code runs without root, a kernel or Linux |
//!
//! ## Requirements
//! Linux ≥ 5.11 (6.x recommended), root or CAP_NET_RAW + CAP_NET_ADMIN + CAP_BPF
//! (CAP_IPC_LOCK or a large enough memlock limit for the UMEM).
//!
//! ## Safety
//! The only `unsafe` the user ever writes is reading or writing frame bytes in raw mode
//! ([`Umem::slice`], [`Umem::slice_mut`]), where only the caller knows that a frame
//! is not on a ring.
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(target_os = "linux")]
#[allow(
    missing_docs,
    missing_debug_implementations,
    dead_code,
    unused_imports,
    unsafe_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/xsk.skel.rs"));
}

// One line each; the first line of each module's own docs says the same.
// Setting up a socket: every setting checked before any system call, then each step.
#[cfg(target_os = "linux")]
pub mod builder;
// The device seam: the kernel socket or a simulated device behind the rings.
pub mod device;
// The four-ring choreography the modes share.
mod driver;
// The managed loop: batch callback, verdicts, workers.
#[cfg(feature = "engine")]
pub mod engine;
// The crate's one error type.
pub mod error;
// What a device offers for XDP and AF_XDP: the netdev netlink probe.
pub mod features;
// One bound socket with everything it owns.
pub mod flux;
// Zero-copy packet views, edits and checksums.
#[cfg(feature = "proto")]
pub mod proto;
// Direct ring access for code that drives the rings itself.
#[cfg(feature = "raw")]
pub mod raw;
// The SPSC ring and the four typed rings.
pub mod ring;
// A simulated device: the kernel's side of the rings in process.
#[cfg(feature = "sim")]
pub mod sim;
// Making an XDP socket: UMEM registration, rings, bind.
mod socket;
// Everything that touches the kernel directly (ABI, syscalls, netlink, BPF).
pub(crate) mod sys;
// Owned frames and `Rx` / `Tx` handles, blocking and (with `async`) on tokio.
#[cfg(feature = "system")]
pub mod system;
// Per-packet RX metadata (timestamp, RSS hash, VLAN tag) and TX metadata requests.
pub mod meta;
// The packet memory, its free frames and the frame census.
pub mod umem;
// Noticing when the device under a socket changes.
pub mod watch;
// The interface: lookup, queues, MTU, driver features.
#[cfg(target_os = "linux")]
mod netdev;
// The embedded XDP program: load, attach, steer, register, count.
pub mod xdp;

#[cfg(target_os = "linux")]
pub use builder::FluxBuilder;
pub use device::{Device, PollEvents, XskStats};
pub use error::{ConfigError, DescError, Error, Feature, Result, Stage};
#[cfg(target_os = "linux")]
pub use features::probe;
pub use features::{DeviceFeatures, ProbeStatus, RxMetadataFeatures, XdpFeatures, XskFeatures};
pub use flux::{Flux, SetupReport};
pub use meta::{RssHashType, RxMetadata, VlanTag};
pub use socket::{BindMode, RingSizes};
pub use sys::abi::XdpDesc;
pub use umem::{FrameCounts, FramePool, Umem, UmemConfig};
pub use watch::{DeviceError, DeviceEvent, DeviceStatus, LinkDown};
#[cfg(target_os = "linux")]
pub use xdp::XdpProgram;
pub use xdp::{AttachedMode, Neighbours, ProgramCounters, SteeringFilter, XdpAttach, XdpMode};

/// The README's examples, compiled (and the simulated-device one run) as doc tests.
#[cfg(all(
    doctest,
    target_os = "linux",
    feature = "sim",
    feature = "engine",
    feature = "system",
    feature = "async",
    feature = "proto"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
