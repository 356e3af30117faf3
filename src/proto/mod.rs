//! Safe, zero-copy views and in-place edits of Ethernet frames.
//!
//! Parsing is etherparse's (`Ethernet2Slice`, `Ipv4Slice`, `Ipv6Slice`,
//! `UdpSlice`, `TcpSlice`, ...): this module adds byte offsets, typed views
//! in the smoltcp style (`Packet<T: AsRef<[u8]>>`, editable when `T` is
//! also `AsMut<[u8]>`), and in-place edits that keep checksums right.
//!
//! * [`Layers::parse`] splits a frame into [`Layers`]: Ethernet, VLAN tags,
//!   [`Net`] (IPv4 / IPv6 / ARP / other EtherType) and [`Transport`] (UDP /
//!   TCP / ICMPv4 / ICMPv6 / fragment / other IP protocol), plus a
//!   [`FrameMeta`] of offsets to make mutable views from afterwards.
//! * One view per layer: [`EthernetFrame`], [`VlanPacket`], [`ArpPacket`],
//!   [`Ipv4Packet`], [`Ipv6Packet`], [`UdpPacket`], [`TcpPacket`],
//!   [`Icmpv4Packet`], [`Icmpv6Packet`], each with `new_checked(buf) ->
//!   Result<Self, ProtoError>`.
//! * [`edit`]: whole-frame edits (swap MACs / IPs / ports, TTL, address and
//!   port rewrites with RFC 1624 incremental checksum updates, echo and ARP
//!   replies, UDP replies and payload resizing, full checksum recompute).
//! * [`checksum`]: one's-complement sums, incremental updates, pseudo
//!   headers, and [`ChecksumState`]: whether a UDP/TCP checksum is verified,
//!   *partial* (left to an offload by the sender, as veth peers, containers
//!   and virtio guests send it), zero or bad — [`Layers::checksum_state`]
//!   tells from the headers alone, [`Layers::verify_checksum`] reads the
//!   payload. Every edit completes a partial checksum, so a reply built from
//!   a received frame is valid on the wire.
//!
//! Values from the wire are never Rust enums that could be invalid:
//! EtherTypes and IP protocols are etherparse's [`EtherType`] and
//! [`IpNumber`] newtypes, ICMP types are `u8`, and unknown values land in
//! an `Other` arm.
//!
//! # No panics
//!
//! Nothing in this module panics, on any input: every view's
//! `new_checked` validates what its accessors read, and the accessors read
//! through non-panicking helpers anyway (out-of-range reads give zeros,
//! writes do nothing), so even a view whose length fields were changed under
//! it cannot panic. There is no indexing, `unwrap` or unchecked arithmetic
//! outside tests (enforced with clippy lints on this module), and no
//! `unsafe`.
//!
//! # Example: an echo responder
//!
//! ```
//! use fluxcapacitor::proto::{edit, Layers, Transport};
//! # let mut frame = Vec::new();
//! # etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
//! #     .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
//! #     .udp(40000, 7)
//! #     .write(&mut frame, b"ping")
//! #     .unwrap();
//! # frame.resize(2048, 0);
//! let layers = Layers::parse(&frame)?;
//! if let Transport::Udp(udp) = layers.transport {
//!     assert_eq!(udp.payload(), b"ping");
//!     let meta = layers.meta();
//!     // Answer with a longer payload, in place.
//!     edit::udp_reply_in_place(&mut frame)?;
//!     let answer = b"pong!!";
//!     if let Some(dst) = frame.get_mut(meta.payload_offset..meta.payload_offset + answer.len()) {
//!         dst.copy_from_slice(answer);
//!     }
//!     let len = edit::set_udp_payload_len(&mut frame, answer.len())?;
//!     assert!(edit::checksums_valid(&frame[..len])?);
//!     assert_eq!(Layers::parse(&frame[..len])?.payload(), answer);
//! }
//! # Ok::<(), fluxcapacitor::proto::ProtoError>(())
//! ```
// Enforce "no panics" on the library code (tests may index and unwrap).
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::arithmetic_side_effects
    )
)]

pub mod arp;
pub mod checksum;
pub mod edit;
pub mod error;
pub mod ethernet;
mod field;
pub mod frame;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod responder;
pub mod tcp;
pub mod udp;
pub mod vlan;

#[cfg(test)]
mod tests;

pub use arp::ArpPacket;
pub use checksum::{ChecksumState, ZeroField};
pub use error::{Layer, ProtoError};
pub use ethernet::{EthernetFrame, MacAddr};
pub use etherparse::{ArpOperation, EtherType, IpNumber};
pub use frame::{FrameMeta, Layers, Net, NetKind, Transport, TransportKind};
pub use icmpv4::Icmpv4Packet;
pub use icmpv6::Icmpv6Packet;
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use responder::{answer_in_place, Answer, Identity};
pub use tcp::{TcpFlags, TcpPacket};
pub use udp::UdpPacket;
pub use vlan::{VlanPacket, VlanTag, VlanTags};
