//! Per-packet RX metadata (timestamp, RSS hash, VLAN tag) and the TX metadata
//! requests (checksum offload, completion timestamp, launch time).
//!
//! **RX**: with [`FluxBuilder::rx_metadata(true)`](crate::FluxBuilder::rx_metadata)
//! the embedded program's metadata variant asks the driver, through the XDP metadata
//! kfuncs (`bpf_xdp_metadata_rx_timestamp`, `_rx_hash`, `_rx_vlan_tag`), for what it
//! knows of each packet, and writes it in front of the packet ([`RX_META_LEN`]
//! bytes, this layout, version [`RX_META_VERSION`]):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | RX timestamp, ns (the device's clock) |
//! | 8 | 4 | RSS hash |
//! | 12 | 4 | RSS hash type (`enum xdp_rss_hash_type`) |
//! | 16 | 2 | VLAN protocol (network byte order) |
//! | 18 | 2 | VLAN TCI |
//! | 20 | 1 | validity mask: bit 0 timestamp, bit 1 hash, bit 2 VLAN |
//! | 21 | 1 | version |
//! | 22 | 2 | magic `0xF17C` (native byte order) |
//!
//! The area lies in the kernel's 256 bytes of headroom in front of every received
//! packet, so the frame layout is unchanged. A field the driver does not provide for
//! a packet (or that this kernel has no kfunc for) has its bit clear and its accessor
//! says `None`. Without `rx_metadata(true)` the accessors say `None` at once: nothing
//! is read or written per packet.
//!
//! ```no_run
//! use fluxcapacitor::{FluxBuilder, XdpMode};
//! # fn main() -> Result<(), fluxcapacitor::Error> {
//! let (mut rx, _tx) = FluxBuilder::new("eth0")
//!     .xdp_mode(XdpMode::Native)
//!     .rx_metadata(true)
//!     .build()?
//!     .split();
//! let frame = rx.recv()?;
//! if let Some((hash, kind)) = frame.rx_hash() {
//!     println!("hash {hash:#x}, L4: {}", kind.is_l4());
//! }
//! println!("timestamp {:?}, vlan {:?}", frame.rx_timestamp(), frame.vlan());
//! # Ok(()) }
//! ```
//!
//! **TX**: with [`FluxBuilder::tx_metadata(true)`](crate::FluxBuilder::tx_metadata)
//! the UMEM is registered with `tx_metadata_len`, and a frame to send can carry
//! requests in the [`TX_META_LEN`] bytes in front of it (`struct xsk_tx_metadata`);
//! its descriptor then says `XDP_TX_METADATA`. Frames without a request are sent as
//! before.
//!
//! ```no_run
//! use fluxcapacitor::FluxBuilder;
//! # fn main() -> Result<(), fluxcapacitor::Error> {
//! let (_rx, mut tx) = FluxBuilder::new("eth0").tx_metadata(true).build()?.split();
//! let mut f = tx.alloc().expect("a free frame");
//! // ... write an Ethernet/IPv4/UDP packet whose UDP checksum field holds the
//! // pseudo-header sum, then:
//! f.set_len(60).unwrap();
//! f.request_tx_checksum(34, 6).unwrap(); // sum from the UDP header, store at +6
//! f.request_tx_timestamp().unwrap();
//! tx.send(f).ok();
//! tx.flush()?;
//! let mut stamps = Vec::new();
//! tx.take_tx_timestamps(&mut stamps); // (address at send, ns) per completed packet
//! # Ok(()) }
//! ```

/// Bytes of TX metadata in front of a packet to send (`struct xsk_tx_metadata`), on
/// a UMEM registered with [`FluxBuilder::tx_metadata(true)`](crate::FluxBuilder::tx_metadata).
pub const TX_META_LEN: usize = 24;

/// The TX completion timestamp of one packet sent with a timestamp request
/// ([`Tx::take_tx_timestamps`](crate::system::Tx::take_tx_timestamps)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxTimestamp {
    /// The packet's UMEM address when it was sent ([`Frame::addr`](crate::system::Frame::addr)).
    pub addr: u64,
    /// The timestamp, ns: `CLOCK_TAI` at completion in copy mode, the device's
    /// clock in zero-copy mode.
    pub ns: u64,
}

/// Writes TX metadata requests into the [`TX_META_LEN`] bytes in front of a packet
/// (`struct xsk_tx_metadata`: flags, csum_start, csum_offset, padding, launch_time).
#[cfg_attr(not(feature = "system"), allow(dead_code))]
pub(crate) mod tx {
    use crate::sys::{
        XDP_TXMD_FLAGS_CHECKSUM, XDP_TXMD_FLAGS_LAUNCH_TIME, XDP_TXMD_FLAGS_TIMESTAMP,
    };

    fn add_flags(m: &mut [u8; super::TX_META_LEN], f: u64) {
        let mut b = [0u8; 8];
        b.copy_from_slice(&m[..8]);
        m[..8].copy_from_slice(&(u64::from_ne_bytes(b) | f).to_ne_bytes());
    }
    /// Checksum offload: the sum from `start` to the end goes into the 16 bits at
    /// `start + offset`.
    pub(crate) fn checksum(m: &mut [u8; super::TX_META_LEN], start: u16, offset: u16) {
        add_flags(m, XDP_TXMD_FLAGS_CHECKSUM);
        m[8..10].copy_from_slice(&start.to_ne_bytes());
        m[10..12].copy_from_slice(&offset.to_ne_bytes());
    }
    /// The checksum request in `m`, if any, fits a packet of `len` bytes (the kernel
    /// refuses a field past the end, and copy mode then stalls on the descriptor).
    pub(crate) fn fits(m: &[u8], len: usize) -> bool {
        if m.len() < super::TX_META_LEN {
            return false;
        }
        let flags = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]]);
        if flags & XDP_TXMD_FLAGS_CHECKSUM == 0 {
            return true;
        }
        let start = u16::from_ne_bytes([m[8], m[9]]) as usize;
        let offset = u16::from_ne_bytes([m[10], m[11]]) as usize;
        start + offset + 2 <= len
    }
    /// A completion timestamp.
    pub(crate) fn timestamp(m: &mut [u8; super::TX_META_LEN]) {
        add_flags(m, XDP_TXMD_FLAGS_TIMESTAMP);
    }
    /// The [`super::TX_META_LEN`] bytes in front of the packet at `off` in `chunk`,
    /// zeroed when `fresh` (the first request for this send).
    pub(crate) fn area(
        chunk: &mut [u8],
        off: usize,
        fresh: bool,
    ) -> Result<&mut [u8; super::TX_META_LEN], crate::DescError> {
        const L: usize = super::TX_META_LEN;
        let start = off.checked_sub(L).ok_or(crate::DescError::TxMetadata(
            "the packet starts less than 24 bytes into its frame, no room for the metadata",
        ))?;
        let m: &mut [u8; L] = chunk
            .get_mut(start..off)
            .and_then(|m| m.try_into().ok())
            .ok_or(crate::DescError::TxMetadata(
                "the packet lies outside its frame",
            ))?;
        if fresh {
            m.fill(0);
        }
        Ok(m)
    }
    /// Moves the requests in front of a packet whose start moves from `from` to
    /// `to`; false when there is no room for them at `to`.
    pub(crate) fn relocate(chunk: &mut [u8], from: usize, to: usize) -> bool {
        const L: usize = super::TX_META_LEN;
        if to >= L && from >= L && to <= chunk.len() && from <= chunk.len() {
            chunk.copy_within(from - L..from, to - L);
            true
        } else {
            false
        }
    }
    /// A launch time (ns, the device's clock).
    pub(crate) fn launch_time(m: &mut [u8; super::TX_META_LEN], ns: u64) {
        add_flags(m, XDP_TXMD_FLAGS_LAUNCH_TIME);
        m[16..24].copy_from_slice(&ns.to_ne_bytes());
    }
}

/// Bytes of RX metadata in front of a packet.
pub const RX_META_LEN: usize = 24;
/// The layout version the embedded program writes.
pub const RX_META_VERSION: u8 = 1;
const RX_META_MAGIC: u16 = 0xF17C;
const VALID_TIMESTAMP: u8 = 1 << 0;
const VALID_HASH: u8 = 1 << 1;
const VALID_VLAN: u8 = 1 << 2;

/// What kind of header fields the device hashed (`enum xdp_rss_hash_type`): a bit
/// set of L3 and L4 facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RssHashType(u32);

impl RssHashType {
    /// IPv4 addresses went into the hash.
    pub const L3_IPV4: u32 = 1 << 0;
    /// IPv6 addresses went into the hash.
    pub const L3_IPV6: u32 = 1 << 1;
    /// The L3 header had options or extension headers.
    pub const L3_DYNHDR: u32 = 1 << 2;
    /// Ports (some L4 protocol) went into the hash.
    pub const L4: u32 = 1 << 3;
    /// TCP.
    pub const L4_TCP: u32 = 1 << 4;
    /// UDP.
    pub const L4_UDP: u32 = 1 << 5;
    /// SCTP.
    pub const L4_SCTP: u32 = 1 << 6;
    /// IPsec.
    pub const L4_IPSEC: u32 = 1 << 7;
    /// ICMP.
    pub const L4_ICMP: u32 = 1 << 8;

    /// From the kernel's value.
    pub const fn from_bits(bits: u32) -> RssHashType {
        RssHashType(bits)
    }
    /// The kernel's value.
    pub const fn bits(self) -> u32 {
        self.0
    }
    /// Nothing is known of the hash input (`XDP_RSS_TYPE_NONE` / `_L2`), e.g. a
    /// hash the kernel computed in software.
    pub const fn is_none(self) -> bool {
        self.0 == 0
    }
    /// The hash covers the IP addresses.
    pub const fn is_l3(self) -> bool {
        self.0 & (Self::L3_IPV4 | Self::L3_IPV6) != 0
    }
    /// The hash covers the L4 ports too.
    pub const fn is_l4(self) -> bool {
        self.0 & Self::L4 != 0
    }
}

/// An 802.1Q / 802.1ad tag the device (or the kernel, for a veth) stripped from the
/// packet: it is not in the packet bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// The tag protocol identifier (0x8100 for 802.1Q, 0x88A8 for 802.1ad), host
    /// byte order.
    pub proto: u16,
    /// The tag control information: priority (3 bits), drop eligible (1), VLAN id
    /// (12).
    pub tci: u16,
}

impl VlanTag {
    /// The VLAN id (the low 12 bits of the TCI).
    pub const fn id(self) -> u16 {
        self.tci & 0x0fff
    }
    /// The priority code point.
    pub const fn pcp(self) -> u8 {
        (self.tci >> 13) as u8
    }
    /// The drop eligible indicator.
    pub const fn dei(self) -> bool {
        self.tci & 0x1000 != 0
    }
}

/// The RX metadata of one packet, as the embedded program wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxMetadata {
    /// The device's receive timestamp, ns.
    pub timestamp: Option<u64>,
    /// The RSS hash and what it covers.
    pub hash: Option<(u32, RssHashType)>,
    /// The VLAN tag the device stripped.
    pub vlan: Option<VlanTag>,
}

impl RxMetadata {
    /// Decodes the [`RX_META_LEN`] bytes in front of a packet; `None` when they do
    /// not carry the magic and version (the program wrote none for this packet).
    pub fn decode(b: &[u8; RX_META_LEN]) -> Option<RxMetadata> {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if u16_at(22) != RX_META_MAGIC || b[21] != RX_META_VERSION {
            return None;
        }
        let valid = b[20];
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        Some(RxMetadata {
            timestamp: (valid & VALID_TIMESTAMP != 0).then(|| u64::from_ne_bytes(ts)),
            hash: (valid & VALID_HASH != 0).then(|| (u32_at(8), RssHashType(u32_at(12)))),
            vlan: (valid & VALID_VLAN != 0).then(|| VlanTag {
                proto: u16::from_be_bytes([b[16], b[17]]),
                tci: u16_at(18),
            }),
        })
    }

    /// The metadata in front of the packet starting at `off` in `chunk`.
    #[inline]
    pub(crate) fn in_front(chunk: &[u8], off: usize) -> Option<RxMetadata> {
        let start = off.checked_sub(RX_META_LEN)?;
        let bytes: &[u8; RX_META_LEN] = chunk.get(start..off)?.try_into().ok()?;
        RxMetadata::decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(ts: u64, hash: u32, ty: u32, proto: u16, tci: u16, valid: u8) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&ts.to_ne_bytes());
        b[8..12].copy_from_slice(&hash.to_ne_bytes());
        b[12..16].copy_from_slice(&ty.to_ne_bytes());
        b[16..18].copy_from_slice(&proto.to_be_bytes());
        b[18..20].copy_from_slice(&tci.to_ne_bytes());
        b[20] = valid;
        b[21] = RX_META_VERSION;
        b[22..24].copy_from_slice(&RX_META_MAGIC.to_ne_bytes());
        b
    }

    #[test]
    fn decodes_the_layout_and_the_mask() {
        let b = encode(5, 0xdead_beef, 41, 0x8100, 0x2000 | 42, 0b111);
        let m = RxMetadata::decode(&b).unwrap();
        assert_eq!(m.timestamp, Some(5));
        let (h, t) = m.hash.unwrap();
        assert_eq!(h, 0xdead_beef);
        assert!(t.is_l3() && t.is_l4() && t.bits() & RssHashType::L4_UDP != 0);
        let v = m.vlan.unwrap();
        assert_eq!((v.proto, v.id(), v.pcp(), v.dei()), (0x8100, 42, 1, false));
        let m = RxMetadata::decode(&encode(5, 1, 0, 0, 0, 0b010)).unwrap();
        assert_eq!((m.timestamp, m.vlan), (None, None));
        assert_eq!(m.hash, Some((1, RssHashType::default())));
    }

    #[test]
    fn refuses_bytes_without_magic_or_version() {
        let mut b = encode(1, 2, 3, 4, 5, 0b111);
        b[21] = RX_META_VERSION + 1;
        assert_eq!(RxMetadata::decode(&b), None);
        assert_eq!(RxMetadata::decode(&[0u8; 24]), None);
        let chunk = [0u8; 64];
        assert_eq!(RxMetadata::in_front(&chunk, 10), None);
        let mut chunk = vec![0u8; 64];
        chunk[16..40].copy_from_slice(&encode(9, 0, 0, 0, 0, 1));
        assert_eq!(RxMetadata::in_front(&chunk, 40).unwrap().timestamp, Some(9));
    }
}
