//! ICMPv6 messages (RFC 4443).

use core::net::Ipv6Addr;

use etherparse::{Icmpv6Slice, IpNumber};

use crate::proto::checksum;
use crate::proto::field;
use crate::proto::ProtoError;

pub use etherparse::icmpv6::{TYPE_ECHO_REPLY, TYPE_ECHO_REQUEST};

mod offs {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
}

/// A view of an ICMPv6 message: type, code, checksum, 4 bytes of
/// type-specific header, then the payload, up to the end of the buffer
/// (give it exactly the IPv6 upper-layer data: the checksum covers it all,
/// plus the IPv6 pseudo header).
///
/// No accessor panics once [`Icmpv6Packet::new_checked`] succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv6Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Icmpv6Packet<T> {
    /// Length of the header (type, code, checksum, 4 type-specific bytes).
    pub const HEADER_LEN: usize = 8;

    /// Wraps `buf` after checking it with etherparse's `Icmpv6Slice` (at
    /// least 8 bytes).
    pub fn new_checked(buf: T) -> Result<Self, ProtoError> {
        Icmpv6Slice::from_slice(buf.as_ref())?;
        Ok(Self { buf })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The message.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        field::get_u8(self.buf.as_ref(), offs::TYPE)
    }

    /// Message code.
    #[inline]
    pub fn code(&self) -> u8 {
        field::get_u8(self.buf.as_ref(), offs::CODE)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::CHECKSUM)
    }

    /// The 4 type-specific header bytes.
    #[inline]
    pub fn rest_of_header(&self) -> [u8; 4] {
        field::get(self.buf.as_ref(), offs::REST)
    }

    /// Echo identifier (meaningful for echo request / reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::IDENT)
    }

    /// Echo sequence number (meaningful for echo request / reply).
    #[inline]
    pub fn echo_seq(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::SEQ)
    }

    /// Everything after the 8-byte header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(Self::HEADER_LEN..).unwrap_or(&[])
    }

    /// Pseudo-header sum for this message.
    pub fn pseudo_header_sum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u16 {
        let len = u32::try_from(self.buf.as_ref().len()).unwrap_or(u32::MAX);
        checksum::pseudo_header_v6(src.octets(), dst.octets(), IpNumber::IPV6_ICMP, len)
    }

    /// The checksum for the given pseudo-header sum, computed with the
    /// checksum field taken as zero.
    pub fn compute_checksum(&self, pseudo_header_sum: u16) -> u16 {
        let b = self.buf.as_ref();
        let mut s = checksum::add(
            pseudo_header_sum,
            checksum::sum(field::range(b, 0, offs::CHECKSUM)),
        );
        s = checksum::add(s, checksum::sum(b.get(offs::REST..).unwrap_or(&[])));
        checksum::finish(s)
    }

    /// Whether the checksum is right.
    pub fn verify_checksum(&self, src: Ipv6Addr, dst: Ipv6Addr) -> bool {
        checksum::verify(self.pseudo_header_sum(src, dst), self.buf.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv6Packet<T> {
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        field::set_u16(self.buf.as_mut(), offs::CHECKSUM, value);
    }

    /// Recomputes the checksum from scratch.
    pub fn fill_checksum(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let c = self.compute_checksum(self.pseudo_header_sum(src, dst));
        self.set_checksum(c);
    }

    /// Updates the checksum incrementally after covered data (e.g. a
    /// pseudo-header address) whose sum was `old_sum` now sums to `new_sum`.
    #[inline]
    pub fn adjust_checksum(&mut self, old_sum: u16, new_sum: u16) {
        let b = self.buf.as_mut();
        let c = checksum::incremental_update16(field::get_u16(b, offs::CHECKSUM), old_sum, new_sum);
        field::set_u16(b, offs::CHECKSUM, c);
    }

    /// Sets type and code, updating the checksum incrementally.
    pub fn set_type_code(&mut self, msg_type: u8, code: u8) {
        let old = field::get_u16(self.buf.as_ref(), offs::TYPE);
        let new = u16::from_be_bytes([msg_type, code]);
        field::set_u16(self.buf.as_mut(), offs::TYPE, new);
        self.adjust_checksum(old, new);
    }

    /// Sets the message type, updating the checksum incrementally.
    pub fn set_msg_type(&mut self, msg_type: u8) {
        let code = self.code();
        self.set_type_code(msg_type, code);
    }

    /// Mutable access to everything after the 8-byte header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buf
            .as_mut()
            .get_mut(Self::HEADER_LEN..)
            .unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    #[test]
    fn echo_roundtrip() {
        let mut v = vec![];
        PacketBuilder::ipv6([1; 16], [2; 16], 9)
            .icmpv6_echo_request(0x77, 3)
            .write(&mut v, b"ping6")
            .unwrap();
        let (s, d) = (Ipv6Addr::from([1; 16]), Ipv6Addr::from([2; 16]));
        let mut i = Icmpv6Packet::new_checked(&mut v[40..]).unwrap();
        assert_eq!(i.msg_type(), TYPE_ECHO_REQUEST);
        assert_eq!((i.echo_ident(), i.echo_seq(), i.code()), (0x77, 3, 0));
        assert_eq!(i.rest_of_header(), [0, 0x77, 0, 3]);
        assert_eq!(i.payload(), b"ping6");
        assert!(i.verify_checksum(s, d));
        assert_eq!(i.compute_checksum(i.pseudo_header_sum(s, d)), i.checksum());
        i.set_msg_type(TYPE_ECHO_REPLY);
        assert!(i.verify_checksum(s, d));
        i.payload_mut()[0] = b'P';
        i.fill_checksum(s, d);
        let e = Icmpv6Slice::from_slice(&v[40..]).unwrap();
        assert!(e.is_checksum_valid([1; 16], [2; 16]));
        assert_eq!(e.type_u8(), TYPE_ECHO_REPLY);
        assert!(Icmpv6Packet::new_checked(&v[40..47]).is_err());
    }
}
