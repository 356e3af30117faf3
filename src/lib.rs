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
//! ## Features
//! | feature | what you get |
//! |---------|--------------|
//! | (core)  | UMEM, rings, socket, program loading, [`FluxBuilder`], accounting, statistics |
//! | `raw`   | [`Flux::raw`]: typed FILL / COMPLETION / RX / TX rings and UMEM frames |
//! | `proto` | [`proto`]: zero-copy Eth / VLAN / ARP / IPv4 / IPv6 / ICMP / UDP / TCP views, in-place edits, checksums |
//! | `engine` | [`engine::Engine`]: managed loop, batch callback with zero-copy verdicts, one worker per queue |
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

#[cfg(target_os = "linux")]
pub mod builder;
#[cfg(feature = "engine")]
pub mod engine;
pub mod error;
pub mod flux;
#[cfg(feature = "proto")]
pub mod proto;
#[cfg(feature = "raw")]
pub mod raw;
pub mod ring;
#[cfg(feature = "sim")]
pub mod sim;
pub mod socket;
pub mod sys;
#[cfg(feature = "system")]
pub mod system;
pub mod umem;
pub mod xdp;

#[cfg(target_os = "linux")]
pub use builder::FluxBuilder;
pub use error::{ConfigError, DescError, Error, Result, Stage};
pub use flux::{Flux, SetupReport};
pub use socket::{BindMode, PollEvents, RingSizes, XskFd, XskStats};
pub use sys::XdpDesc;
pub use umem::{FrameCounts, FramePool, Umem, UmemConfig};
#[cfg(target_os = "linux")]
pub use xdp::XdpProgram;
pub use xdp::{AttachedMode, Neighbours, ProgramCounters, SteeringFilter, XdpMode};

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
