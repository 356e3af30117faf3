//! IPv6 packets (RFC 8200), extension headers included.

use core::net::Ipv6Addr;

use etherparse::{IpNumber, Ipv6Slice};

use crate::proto::checksum;
use crate::proto::field;
use crate::proto::ProtoError;

mod offs {
    pub const VER_TC_FLOW: usize = 0;
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}

/// A view of an IPv6 packet: the fixed header, extension headers, then the
/// upper-layer data, up to 40 + payload length bytes (padding after it is
/// outside the packet).
///
/// The extension header chain is walked by etherparse's `Ipv6Slice`;
/// [`Ipv6Packet::upper_layer_protocol`] and
/// [`Ipv6Packet::upper_layer_offset`] describe what follows it. A payload
/// length of 0 (jumbogram) is taken to mean "the rest of the buffer", as
/// etherparse does.
///
/// No accessor panics once [`Ipv6Packet::new_checked`] succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T> {
    buf: T,
    total_len: usize,
    upper_offset: usize,
    upper_protocol: IpNumber,
    fragmented: bool,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = 40;

    /// Wraps `buf` after checking it with etherparse's `Ipv6Slice`: version
    /// 6, header and payload length inside `buf`, and a valid extension
    /// header chain that fits in the payload length.
    pub fn new_checked(buf: T) -> Result<Self, ProtoError> {
        let s = Ipv6Slice::from_slice(buf.as_ref())?;
        let payload = s.payload();
        let upper_len = payload.payload.len();
        let exts_len = s.extensions().slice().len();
        let upper_offset = Self::HEADER_LEN.saturating_add(exts_len);
        Ok(Self {
            total_len: upper_offset.saturating_add(upper_len),
            upper_offset,
            upper_protocol: payload.ip_number,
            fragmented: payload.fragmented,
            buf,
        })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The packet (without any padding after it).
    pub fn as_bytes(&self) -> &[u8] {
        field::range(self.buf.as_ref(), 0, self.total_len)
    }

    /// Version field (always 6 after the check).
    #[inline]
    pub fn version(&self) -> u8 {
        field::get_u8(self.buf.as_ref(), offs::VER_TC_FLOW) >> 4
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        ((field::get_u32(self.buf.as_ref(), offs::VER_TC_FLOW) >> 20) & 0xff) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        field::get_u32(self.buf.as_ref(), offs::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length field (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::PAYLOAD_LEN)
    }

    /// Length of the packet as used: 40 + extension headers + upper-layer
    /// data.
    #[inline]
    pub fn total_len(&self) -> usize {
        self.total_len
    }

    /// Next header field of the fixed header.
    #[inline]
    pub fn next_header(&self) -> IpNumber {
        IpNumber(field::get_u8(self.buf.as_ref(), offs::NEXT_HEADER))
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        field::get_u8(self.buf.as_ref(), offs::HOP_LIMIT)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(field::get::<16>(self.buf.as_ref(), offs::SRC))
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(field::get::<16>(self.buf.as_ref(), offs::DST))
    }

    /// The raw extension headers (empty when there are none).
    #[inline]
    pub fn ext_headers(&self) -> &[u8] {
        field::range(self.buf.as_ref(), Self::HEADER_LEN, self.upper_offset)
    }

    /// Offset, from the start of the packet, of the upper-layer data.
    #[inline]
    pub fn upper_layer_offset(&self) -> usize {
        self.upper_offset
    }

    /// IP number of the upper-layer data (the last next-header value).
    #[inline]
    pub fn upper_layer_protocol(&self) -> IpNumber {
        self.upper_protocol
    }

    /// Whether a fragment header says the upper-layer data is a fragment.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.fragmented
    }

    /// Everything after the fixed header (extension headers included).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        field::range(self.buf.as_ref(), Self::HEADER_LEN, self.total_len)
    }

    /// The upper-layer data (transport header and payload).
    #[inline]
    pub fn upper_layer(&self) -> &[u8] {
        field::range(self.buf.as_ref(), self.upper_offset, self.total_len)
    }

    /// Sum of the pseudo header (UDP, TCP, ICMPv6) for `len` bytes of
    /// upper-layer data of this packet's upper-layer protocol.
    ///
    /// Uses the destination address of the fixed header (a routing header's
    /// final destination is not looked up).
    pub fn pseudo_header_sum(&self, len: u32) -> u16 {
        checksum::pseudo_header_v6(
            self.src_addr().octets(),
            self.dst_addr().octets(),
            self.upper_protocol,
            len,
        )
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the hop limit (IPv6 has no header checksum).
    #[inline]
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        field::set_u8(self.buf.as_mut(), offs::HOP_LIMIT, hop_limit);
    }

    /// Sets the payload length field.
    ///
    /// The view keeps the length it was checked with; this is for callers
    /// that re-parse afterwards.
    #[inline]
    pub fn set_payload_len(&mut self, len: u16) {
        field::set_u16(self.buf.as_mut(), offs::PAYLOAD_LEN, len);
    }

    /// Sets the source address (transport checksums are not touched, see
    /// [`edit::set_src_ip`](crate::proto::edit::set_src_ip)).
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        field::set(self.buf.as_mut(), offs::SRC, addr.octets());
    }

    /// Sets the destination address (transport checksums are not touched,
    /// see [`edit::set_dst_ip`](crate::proto::edit::set_dst_ip)).
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        field::set(self.buf.as_mut(), offs::DST, addr.octets());
    }

    /// Swaps source and destination addresses (pseudo-header sums do not
    /// change).
    #[inline]
    pub fn swap_addrs(&mut self) {
        field::swap::<16>(self.buf.as_mut(), offs::SRC, offs::DST);
    }

    /// Mutable access to the payload (see [`Ipv6Packet::payload`]).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        field::range_mut(self.buf.as_mut(), Self::HEADER_LEN, self.total_len)
    }

    /// Mutable access to the upper-layer data.
    pub fn upper_layer_mut(&mut self) -> &mut [u8] {
        field::range_mut(self.buf.as_mut(), self.upper_offset, self.total_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Layer, ProtoError};
    use etherparse::{
        IpHeaders, Ipv6Extensions, Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader, PacketBuilder,
    };

    fn packet(exts: Ipv6Extensions) -> Vec<u8> {
        let h = Ipv6Header {
            traffic_class: 0xb8,
            flow_label: 0x12345.try_into().unwrap(),
            payload_length: 0,
            next_header: IpNumber::UDP,
            hop_limit: 9,
            source: [1; 16],
            destination: [2; 16],
        };
        let b = PacketBuilder::ip(IpHeaders::Ipv6(h, exts)).udp(5, 6);
        let mut v = vec![];
        b.write(&mut v, &[1, 2, 3, 4]).unwrap();
        v
    }

    #[test]
    fn reads_plain() {
        let v = packet(Ipv6Extensions::default());
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 12);
        assert_eq!(p.total_len(), 52);
        assert_eq!(p.next_header(), IpNumber::UDP);
        assert_eq!(p.hop_limit(), 9);
        assert_eq!(p.src_addr(), Ipv6Addr::from([1; 16]));
        assert_eq!(p.dst_addr(), Ipv6Addr::from([2; 16]));
        assert!(p.ext_headers().is_empty());
        assert_eq!(p.upper_layer_offset(), 40);
        assert_eq!(p.upper_layer().len(), 12);
        assert!(!p.is_fragment());
    }

    #[test]
    fn reads_extensions() {
        let exts = Ipv6Extensions {
            hop_by_hop_options: Some(Ipv6RawExtHeader::new_raw(IpNumber(0), &[0; 6]).unwrap()),
            destination_options: Some(
                Ipv6RawExtHeader::new_raw(IpNumber(0), &[1, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0])
                    .unwrap(),
            ),
            ..Default::default()
        };
        let v = packet(exts);
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert_eq!(p.next_header(), IpNumber::IPV6_HEADER_HOP_BY_HOP);
        assert_eq!(p.ext_headers().len(), 8 + 16);
        assert_eq!(p.upper_layer_offset(), 64);
        assert_eq!(p.upper_layer_protocol(), IpNumber::UDP);
        assert_eq!(p.upper_layer().len(), 12);

        let frag = Ipv6Extensions {
            fragment: Some(Ipv6FragmentHeader::new(
                IpNumber(0),
                0.try_into().unwrap(),
                true,
                7,
            )),
            ..Default::default()
        };
        let v = packet(frag);
        let p = Ipv6Packet::new_checked(&v[..]).unwrap();
        assert!(p.is_fragment());
    }

    #[test]
    fn edits() {
        let mut v = packet(Ipv6Extensions::default());
        let mut p = Ipv6Packet::new_checked(&mut v[..]).unwrap();
        p.set_hop_limit(1);
        p.swap_addrs();
        p.set_payload_len(12);
        assert_eq!(p.src_addr(), Ipv6Addr::from([2; 16]));
        p.set_src_addr(Ipv6Addr::LOCALHOST);
        p.set_dst_addr(Ipv6Addr::UNSPECIFIED);
        p.upper_layer_mut()[0] = 0;
        let h = Ipv6Header::from_slice(&v).unwrap().0;
        assert_eq!(h.hop_limit, 1);
        assert_eq!(h.source, Ipv6Addr::LOCALHOST.octets());
        assert_eq!(h.destination, [0; 16]);
    }

    #[test]
    fn errors() {
        let v = packet(Ipv6Extensions::default());
        assert!(matches!(
            Ipv6Packet::new_checked(&v[..45]),
            Err(ProtoError::Truncated {
                layer: Layer::Ipv6,
                ..
            })
        ));
        let mut b = v.clone();
        b[0] = 0x40;
        assert!(matches!(
            Ipv6Packet::new_checked(&b[..]),
            Err(ProtoError::BadVersion { version: 4, .. })
        ));
        // hop-by-hop header that is not first
        let mut b = v.clone();
        b[6] = 60; // destination options
        b[40] = 0; // ... followed by hop-by-hop
        b[41] = 0;
        assert!(matches!(
            Ipv6Packet::new_checked(&b[..]),
            Err(ProtoError::BadExtension { .. }) | Err(ProtoError::BadLength { .. })
        ));
        // extension header longer than the payload length
        let mut b = v.clone();
        b[6] = 60;
        b[41] = 1; // 16 bytes, but only 12 in the payload
        assert!(matches!(
            Ipv6Packet::new_checked(&b[..]),
            Err(ProtoError::BadLength { .. })
        ));
    }
}
