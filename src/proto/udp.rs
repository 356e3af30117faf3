//! UDP datagrams (RFC 768).

use core::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{IpNumber, UdpSlice};

use crate::proto::checksum::{self, ChecksumState, ZeroField};
use crate::proto::field;
use crate::proto::{Layer, ProtoError};

mod offs {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LEN: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A view of a UDP datagram: 8-byte header and payload, `length` bytes
/// (bytes after the length are outside the datagram).
///
/// Checksum rule: a checksum field of 0 means "no checksum" (allowed on
/// IPv4 only); setters that update the checksum incrementally leave a 0
/// alone, and a computed checksum of 0 is sent as `0xffff`.
///
/// No accessor panics once [`UdpPacket::new_checked`] succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T> {
    buf: T,
    len: usize,
}

fn zero_rule(zero_allowed: bool) -> ZeroField {
    if zero_allowed {
        ZeroField::NoChecksum
    } else {
        ZeroField::Invalid
    }
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Length of the header.
    pub const HEADER_LEN: usize = 8;

    /// Wraps `buf` after checking with etherparse's `UdpSlice` that the
    /// header fits and the length field fits in `buf`. Unlike etherparse,
    /// a length field below 8 (0 included, which etherparse reads as "use
    /// the buffer length") is an error ([`ProtoError::BadLength`]).
    pub fn new_checked(buf: T) -> Result<Self, ProtoError> {
        let s = UdpSlice::from_slice(buf.as_ref())?;
        let len = usize::from(s.length());
        if len < Self::HEADER_LEN {
            return Err(ProtoError::BadLength {
                layer: Layer::Udp,
                value: len,
                min: Self::HEADER_LEN,
            });
        }
        Ok(Self { buf, len })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The datagram, `length` bytes.
    pub fn as_bytes(&self) -> &[u8] {
        field::range(self.buf.as_ref(), 0, self.len)
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::DST_PORT)
    }

    /// Length field (header plus payload).
    #[inline]
    pub fn len(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::LEN)
    }

    /// Whether the payload is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len <= Self::HEADER_LEN
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::CHECKSUM)
    }

    /// The payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        field::range(self.buf.as_ref(), Self::HEADER_LEN, self.len)
    }

    /// The checksum for the given pseudo-header sum, computed over the
    /// datagram with the checksum field taken as zero; 0 is mapped to
    /// `0xffff`.
    pub fn compute_checksum(&self, pseudo_header_sum: u16) -> u16 {
        let b = self.as_bytes();
        let mut s = checksum::add(
            pseudo_header_sum,
            checksum::sum(field::range(b, 0, offs::CHECKSUM)),
        );
        s = checksum::add(s, checksum::sum(field::range(b, Self::HEADER_LEN, b.len())));
        match checksum::finish(s) {
            0 => 0xffff,
            c => c,
        }
    }

    fn len_u16(&self) -> u16 {
        u16::try_from(self.len).unwrap_or(u16::MAX)
    }

    /// Pseudo-header sum for this datagram over IPv4.
    pub fn pseudo_header_sum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        checksum::pseudo_header_v4(src.octets(), dst.octets(), IpNumber::UDP, self.len_u16())
    }

    /// Pseudo-header sum for this datagram over IPv6.
    pub fn pseudo_header_sum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u16 {
        let len = u32::try_from(self.len).unwrap_or(u32::MAX);
        checksum::pseudo_header_v6(src.octets(), dst.octets(), IpNumber::UDP, len)
    }

    /// Whether the checksum is right for the given pseudo-header sum (a
    /// zero checksum field is *not* accepted here).
    pub fn verify_checksum(&self, pseudo_header_sum: u16) -> bool {
        self.checksum() != 0 && checksum::verify(pseudo_header_sum, self.as_bytes())
    }

    /// Whether the checksum is right over IPv4; a zero field ("no
    /// checksum") counts as right.
    pub fn verify_checksum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.checksum() == 0 || self.verify_checksum(self.pseudo_header_sum_v4(src, dst))
    }

    /// Whether the checksum is right over IPv6 (where it is mandatory).
    pub fn verify_checksum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        self.verify_checksum(self.pseudo_header_sum_v6(src, dst))
    }

    /// What the checksum field holds, from the header alone (constant time):
    /// [`ChecksumState::Zero`] (only with `zero_allowed`, i.e. over IPv4),
    /// [`ChecksumState::Partial`] or [`ChecksumState::Unverified`]; a zero
    /// field without `zero_allowed` is [`ChecksumState::Bad`].
    #[inline]
    pub fn checksum_state(&self, pseudo_header_sum: u16, zero_allowed: bool) -> ChecksumState {
        checksum::classify(self.checksum(), pseudo_header_sum, zero_rule(zero_allowed))
    }

    /// [`UdpPacket::checksum_state`] over IPv4 (zero allowed).
    #[inline]
    pub fn checksum_state_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> ChecksumState {
        self.checksum_state(self.pseudo_header_sum_v4(src, dst), true)
    }

    /// [`UdpPacket::checksum_state`] over IPv6 (zero is bad).
    #[inline]
    pub fn checksum_state_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> ChecksumState {
        self.checksum_state(self.pseudo_header_sum_v6(src, dst), false)
    }

    /// What the checksum field holds, reading the payload: never
    /// [`ChecksumState::Unverified`]. See [`checksum::classify_verified`].
    pub fn verify(&self, pseudo_header_sum: u16, zero_allowed: bool) -> ChecksumState {
        checksum::classify_verified(
            self.checksum(),
            pseudo_header_sum,
            zero_rule(zero_allowed),
            self.as_bytes(),
        )
    }

    /// [`UdpPacket::verify`] over IPv4.
    pub fn verify_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> ChecksumState {
        self.verify(self.pseudo_header_sum_v4(src, dst), true)
    }

    /// [`UdpPacket::verify`] over IPv6.
    pub fn verify_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> ChecksumState {
        self.verify(self.pseudo_header_sum_v6(src, dst), false)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        field::set_u16(self.buf.as_mut(), offs::CHECKSUM, value);
    }

    /// Recomputes the checksum from scratch for the given pseudo-header sum
    /// (always writes one, even where the field was 0). This is also how a
    /// [`ChecksumState::Partial`] field is completed.
    pub fn fill_checksum(&mut self, pseudo_header_sum: u16) {
        let c = self.compute_checksum(pseudo_header_sum);
        self.set_checksum(c);
    }

    /// [`UdpPacket::fill_checksum`] over IPv4.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let p = self.pseudo_header_sum_v4(src, dst);
        self.fill_checksum(p);
    }

    /// [`UdpPacket::fill_checksum`] over IPv6.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let p = self.pseudo_header_sum_v6(src, dst);
        self.fill_checksum(p);
    }

    /// Updates the checksum incrementally after covered data (for instance
    /// pseudo-header addresses) whose sum was `old_sum` now sums to
    /// `new_sum`. A zero checksum ("none") stays zero.
    #[inline]
    pub fn adjust_checksum(&mut self, old_sum: u16, new_sum: u16) {
        let b = self.buf.as_mut();
        let c = field::get_u16(b, offs::CHECKSUM);
        if c != 0 {
            let c = match checksum::incremental_update16(c, old_sum, new_sum) {
                0 => 0xffff,
                c => c,
            };
            field::set_u16(b, offs::CHECKSUM, c);
        }
    }

    fn set_port(&mut self, off: usize, port: u16) {
        let old = field::get_u16(self.buf.as_ref(), off);
        field::set_u16(self.buf.as_mut(), off, port);
        self.adjust_checksum(old, port);
    }

    /// Sets the source port, updating the checksum incrementally.
    pub fn set_src_port(&mut self, port: u16) {
        self.set_port(offs::SRC_PORT, port);
    }

    /// Sets the destination port, updating the checksum incrementally.
    pub fn set_dst_port(&mut self, port: u16) {
        self.set_port(offs::DST_PORT, port);
    }

    /// Swaps the ports (the checksum does not change).
    #[inline]
    pub fn swap_ports(&mut self) {
        field::swap::<2>(self.buf.as_mut(), offs::SRC_PORT, offs::DST_PORT);
    }

    /// Mutable access to the payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        field::range_mut(self.buf.as_mut(), Self::HEADER_LEN, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, PacketHeaders, TransportHeader};

    fn frame_v4() -> Vec<u8> {
        let mut v = vec![];
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 5)
            .udp(1000, 53)
            .write(&mut v, b"hello")
            .unwrap();
        v
    }

    #[test]
    fn read_edit_verify() {
        let mut v = frame_v4();
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let mut u = UdpPacket::new_checked(&mut v[20..]).unwrap();
        assert_eq!((u.src_port(), u.dst_port(), u.len()), (1000, 53, 13));
        assert_eq!(u.payload(), b"hello");
        assert!(!u.is_empty());
        assert!(u.verify_checksum_v4(src, dst));
        u.set_src_port(4242);
        u.set_dst_port(7);
        assert!(u.verify_checksum_v4(src, dst));
        let c = u.checksum();
        u.fill_checksum_v4(src, dst);
        assert_eq!(c, u.checksum());
        u.swap_ports();
        assert!(u.verify_checksum_v4(src, dst));
        u.payload_mut()[0] = b'j';
        let h = PacketHeaders::from_ip_slice(&v).unwrap();
        let Some(TransportHeader::Udp(udp)) = h.transport else {
            panic!()
        };
        assert_eq!((udp.source_port, udp.destination_port), (7, 4242));
        assert_eq!(h.payload.slice(), b"jello");
    }

    #[test]
    fn zero_checksum_stays_zero() {
        let mut v = frame_v4();
        let mut u = UdpPacket::new_checked(&mut v[20..]).unwrap();
        u.set_checksum(0);
        u.set_src_port(1);
        assert_eq!(u.checksum(), 0);
        assert!(u.verify_checksum_v4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED));
        assert!(!u.verify_checksum_v6(Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED));
    }

    #[test]
    fn length_lies() {
        let v = frame_v4();
        let mut b = v[20..].to_vec();
        b[4..6].copy_from_slice(&14u16.to_be_bytes());
        assert!(matches!(
            UdpPacket::new_checked(&b[..]),
            Err(ProtoError::Truncated {
                layer: Layer::Udp,
                required: 14,
                available: 13
            })
        ));
        for bad in [0u16, 7] {
            b[4..6].copy_from_slice(&bad.to_be_bytes());
            assert!(matches!(
                UdpPacket::new_checked(&b[..]),
                Err(ProtoError::BadLength {
                    layer: Layer::Udp,
                    ..
                })
            ));
        }
        // shorter length: trailing bytes are outside the datagram
        b[4..6].copy_from_slice(&9u16.to_be_bytes());
        let u = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(u.payload(), b"h");
        assert!(UdpPacket::new_checked(&b[..7]).is_err());
    }
}
