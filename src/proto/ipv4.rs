//! IPv4 packets (RFC 791), options included.

use core::net::Ipv4Addr;

use etherparse::{IpNumber, Ipv4Slice};

use crate::proto::checksum;
use crate::proto::field;
use crate::proto::ProtoError;

mod offs {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const OPTIONS: usize = 20;
}

/// A view of an IPv4 packet: header (with options), then payload up to the
/// total length. Bytes after the total length (Ethernet padding) are outside
/// the packet.
///
/// An IPsec authentication header right after the IPv4 header is validated
/// and skipped: [`Ipv4Packet::upper_layer_protocol`] and
/// [`Ipv4Packet::upper_layer_offset`] describe what follows it.
///
/// No accessor panics once [`Ipv4Packet::new_checked`] succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T> {
    buf: T,
    header_len: usize,
    total_len: usize,
    upper_offset: usize,
    upper_protocol: IpNumber,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of a header without options.
    pub const MIN_HEADER_LEN: usize = 20;

    /// Wraps `buf` after checking it with etherparse's `Ipv4Slice`: version
    /// 4, IHL at least 5, the header and the total length inside `buf`, the
    /// total length at least the header length, and a well-formed
    /// authentication header if there is one.
    pub fn new_checked(buf: T) -> Result<Self, ProtoError> {
        let s = Ipv4Slice::from_slice(buf.as_ref())?;
        let header_len = s.header().slice().len();
        let total_len = usize::from(s.header().total_len());
        let upper_offset = s
            .extensions()
            .auth
            .map_or(header_len, |a| header_len.saturating_add(a.slice().len()));
        let upper_protocol = s.payload_ip_number();
        Ok(Self {
            buf,
            header_len,
            total_len,
            upper_offset,
            upper_protocol,
        })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The packet, `total_len` bytes (without any padding after it).
    pub fn as_bytes(&self) -> &[u8] {
        field::range(self.buf.as_ref(), 0, self.total_len)
    }

    /// Version field (always 4 after the check).
    #[inline]
    pub fn version(&self) -> u8 {
        field::get_u8(self.buf.as_ref(), offs::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Differentiated services code point (6 bits).
    #[inline]
    pub fn dscp(&self) -> u8 {
        field::get_u8(self.buf.as_ref(), offs::TOS) >> 2
    }

    /// Explicit congestion notification (2 bits).
    #[inline]
    pub fn ecn(&self) -> u8 {
        field::get_u8(self.buf.as_ref(), offs::TOS) & 3
    }

    /// Total length field.
    #[inline]
    pub fn total_len(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::TOTAL_LEN)
    }

    /// Identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::IDENT)
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_fragment(&self) -> bool {
        field::get_u16(self.buf.as_ref(), offs::FLAGS_FRAG) & 0x4000 != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_fragments(&self) -> bool {
        field::get_u16(self.buf.as_ref(), offs::FLAGS_FRAG) & 0x2000 != 0
    }

    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::FLAGS_FRAG) & 0x1fff
    }

    /// Whether the payload is a fragment (more-fragments set or a non-zero
    /// offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        field::get_u16(self.buf.as_ref(), offs::FLAGS_FRAG) & 0x3fff != 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        field::get_u8(self.buf.as_ref(), offs::TTL)
    }

    /// Protocol field (the IP number right after the header).
    #[inline]
    pub fn protocol(&self) -> IpNumber {
        IpNumber(field::get_u8(self.buf.as_ref(), offs::PROTOCOL))
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(field::get::<4>(self.buf.as_ref(), offs::SRC))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(field::get::<4>(self.buf.as_ref(), offs::DST))
    }

    /// The header with its options.
    #[inline]
    pub fn header(&self) -> &[u8] {
        field::range(self.buf.as_ref(), 0, self.header_len)
    }

    /// The raw options (empty without options).
    #[inline]
    pub fn options(&self) -> &[u8] {
        field::range(self.buf.as_ref(), offs::OPTIONS, self.header_len)
    }

    /// Everything after the header up to the total length (an
    /// authentication header, if any, included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        field::range(self.buf.as_ref(), self.header_len, self.total_len)
    }

    /// Offset, from the start of the packet, of the upper-layer data (after
    /// an authentication header, if any).
    #[inline]
    pub fn upper_layer_offset(&self) -> usize {
        self.upper_offset
    }

    /// IP number of the upper-layer data (the protocol field, or the next
    /// header of the authentication header).
    #[inline]
    pub fn upper_layer_protocol(&self) -> IpNumber {
        self.upper_protocol
    }

    /// The upper-layer data (transport header and payload).
    #[inline]
    pub fn upper_layer(&self) -> &[u8] {
        field::range(self.buf.as_ref(), self.upper_offset, self.total_len)
    }

    /// Whether the header checksum is right.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(0, self.header())
    }

    /// The header checksum the header should carry.
    pub fn compute_checksum(&self) -> u16 {
        let h = self.header();
        let sum = checksum::add(
            checksum::sum(field::range(h, 0, offs::CHECKSUM)),
            checksum::sum(field::range(h, offs::SRC, h.len())),
        );
        checksum::finish(sum)
    }

    /// Sum of the UDP/TCP pseudo header for `len` bytes of upper-layer
    /// data of this packet's upper-layer protocol.
    pub fn pseudo_header_sum(&self, len: u16) -> u16 {
        checksum::pseudo_header_v4(
            self.src_addr().octets(),
            self.dst_addr().octets(),
            self.upper_protocol,
            len,
        )
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        field::set_u16(self.buf.as_mut(), offs::CHECKSUM, value);
    }

    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum();
        self.set_checksum(c);
    }

    /// Sets the TTL and updates the header checksum incrementally.
    pub fn set_ttl(&mut self, ttl: u8) {
        let b = self.buf.as_mut();
        let old = field::get_u16(b, offs::TTL);
        let new = (u16::from(ttl) << 8) | (old & 0xff);
        field::set_u16(b, offs::TTL, new);
        let c = checksum::incremental_update16(field::get_u16(b, offs::CHECKSUM), old, new);
        field::set_u16(b, offs::CHECKSUM, c);
    }

    /// Sets a 16-bit header word and updates the header checksum
    /// incrementally.
    fn set_word(&mut self, off: usize, new: u16) {
        let b = self.buf.as_mut();
        let old = field::get_u16(b, off);
        field::set_u16(b, off, new);
        let c = checksum::incremental_update16(field::get_u16(b, offs::CHECKSUM), old, new);
        field::set_u16(b, offs::CHECKSUM, c);
    }

    /// Sets the total length field (checksum updated incrementally).
    ///
    /// The view keeps the length it was checked with; this is for callers
    /// that re-parse afterwards (see
    /// [`set_udp_payload_len`](crate::proto::edit::set_udp_payload_len)).
    pub fn set_total_len(&mut self, len: u16) {
        self.set_word(offs::TOTAL_LEN, len);
    }

    /// Sets the identification field (checksum updated incrementally).
    pub fn set_ident(&mut self, ident: u16) {
        self.set_word(offs::IDENT, ident);
    }

    /// Sets the source address and updates the header checksum
    /// incrementally. Transport checksums are not touched (see
    /// [`edit::set_src_ip`](crate::proto::edit::set_src_ip)).
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.set_addr(offs::SRC, addr);
    }

    /// Sets the destination address and updates the header checksum
    /// incrementally. Transport checksums are not touched (see
    /// [`edit::set_dst_ip`](crate::proto::edit::set_dst_ip)).
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.set_addr(offs::DST, addr);
    }

    fn set_addr(&mut self, off: usize, addr: Ipv4Addr) {
        let b = self.buf.as_mut();
        let old: [u8; 4] = field::get(b, off);
        let new = addr.octets();
        field::set(b, off, new);
        let c = checksum::incremental_update_bytes(field::get_u16(b, offs::CHECKSUM), &old, &new);
        field::set_u16(b, offs::CHECKSUM, c);
    }

    /// Swaps source and destination addresses. No checksum changes: the
    /// header and pseudo-header sums do not depend on the order.
    #[inline]
    pub fn swap_addrs(&mut self) {
        field::swap::<4>(self.buf.as_mut(), offs::SRC, offs::DST);
    }

    /// Mutable access to the payload (see [`Ipv4Packet::payload`]).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        field::range_mut(self.buf.as_mut(), self.header_len, self.total_len)
    }

    /// Mutable access to the upper-layer data (see
    /// [`Ipv4Packet::upper_layer`]).
    pub fn upper_layer_mut(&mut self) -> &mut [u8] {
        field::range_mut(self.buf.as_mut(), self.upper_offset, self.total_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Layer, ProtoError};
    use etherparse::{IpHeaders, Ipv4Extensions, Ipv4Header, Ipv4Options, PacketBuilder};

    fn packet(options: &[u8]) -> Vec<u8> {
        let mut h = Ipv4Header::new(0, 64, IpNumber::UDP, [10, 0, 0, 1], [10, 0, 0, 2]).unwrap();
        h.options = Ipv4Options::try_from(options).unwrap();
        h.identification = 0x1234;
        h.dont_fragment = true;
        let b = PacketBuilder::ip(IpHeaders::Ipv4(h, Ipv4Extensions::default())).udp(1, 2);
        let mut v = vec![];
        b.write(&mut v, &[1, 2, 3]).unwrap();
        v
    }

    #[test]
    fn reads_with_options() {
        let v = packet(&[1, 1, 1, 1, 7, 4, 0, 0]);
        let p = Ipv4Packet::new_checked(&v[..]).unwrap();
        let e = Ipv4Slice::from_slice(&v).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.options(), e.header().options());
        assert_eq!(p.total_len(), e.header().total_len());
        assert_eq!(p.ident(), 0x1234);
        assert!(p.dont_fragment() && !p.more_fragments() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), IpNumber::UDP);
        assert_eq!(p.upper_layer_protocol(), IpNumber::UDP);
        assert_eq!(p.upper_layer_offset(), 28);
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert!(p.verify_checksum());
        assert_eq!(p.compute_checksum(), p.checksum());
        assert_eq!(p.payload().len(), 11);
        assert_eq!(p.upper_layer(), p.payload());
        assert_eq!(p.as_bytes().len(), v.len());
    }

    #[test]
    fn edits_keep_checksum() {
        let mut v = packet(&[]);
        let mut p = Ipv4Packet::new_checked(&mut v[..]).unwrap();
        p.set_ttl(3);
        p.set_src_addr(Ipv4Addr::new(192, 168, 1, 77));
        p.set_dst_addr(Ipv4Addr::new(8, 8, 4, 4));
        p.set_ident(7);
        p.swap_addrs();
        assert!(p.verify_checksum());
        let c = p.checksum();
        p.fill_checksum();
        assert_eq!(c, p.checksum());
        let h = Ipv4HeaderSliceOwned::new(&v);
        assert_eq!(h.time_to_live, 3);
        assert_eq!(h.source, [8, 8, 4, 4]);
        assert_eq!(h.destination, [192, 168, 1, 77]);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
    }

    struct Ipv4HeaderSliceOwned;
    impl Ipv4HeaderSliceOwned {
        #[allow(clippy::new_ret_no_self)]
        fn new(v: &[u8]) -> Ipv4Header {
            Ipv4Header::from_slice(v).unwrap().0
        }
    }

    #[test]
    fn errors() {
        let v = packet(&[]);
        // truncated buffer (total length lies)
        assert!(matches!(
            Ipv4Packet::new_checked(&v[..v.len() - 1]),
            Err(ProtoError::Truncated {
                layer: Layer::Ipv4,
                ..
            })
        ));
        // bad IHL
        let mut b = v.clone();
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            ProtoError::BadHeaderLen {
                layer: Layer::Ipv4,
                value: 4
            }
        );
        // wrong version
        let mut b = v.clone();
        b[0] = 0x65;
        assert!(matches!(
            Ipv4Packet::new_checked(&b[..]),
            Err(ProtoError::BadVersion { version: 6, .. })
        ));
        // total length shorter than the header
        let mut b = v.clone();
        b[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]).unwrap_err(),
            ProtoError::BadLength {
                layer: Layer::Ipv4,
                value: 19,
                min: 20
            }
        );
        // padding after the packet is outside it
        let mut b = v.clone();
        b.extend_from_slice(&[0; 10]);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.as_bytes().len(), v.len());
    }
}
