//! ICMPv4 messages (RFC 792).

use etherparse::Icmpv4Slice;

use crate::proto::checksum;
use crate::proto::field;
use crate::proto::ProtoError;

pub use etherparse::icmpv4::{TYPE_ECHO_REPLY, TYPE_ECHO_REQUEST};

mod offs {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const REST: usize = 4;
    pub const IDENT: usize = 4;
    pub const SEQ: usize = 6;
}

/// A view of an ICMPv4 message: type, code, checksum, 4 bytes of
/// type-specific header, then the payload, up to the end of the buffer
/// (give it exactly the IP upper-layer data: the checksum covers it all).
///
/// Types and codes are plain `u8`s (constants such as [`TYPE_ECHO_REQUEST`]
/// come from etherparse), so any value from the wire is representable.
///
/// No accessor panics once [`Icmpv4Packet::new_checked`] succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Length of the header (type, code, checksum, 4 type-specific bytes).
    pub const HEADER_LEN: usize = 8;

    /// Wraps `buf` after checking it with etherparse's `Icmpv4Slice` (at
    /// least 8 bytes; exactly 20 for timestamp messages).
    pub fn new_checked(buf: T) -> Result<Self, ProtoError> {
        Icmpv4Slice::from_slice(buf.as_ref())?;
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

    /// The checksum the message should carry.
    pub fn compute_checksum(&self) -> u16 {
        let b = self.buf.as_ref();
        let s = checksum::add(
            checksum::sum(field::range(b, 0, offs::CHECKSUM)),
            checksum::sum(b.get(offs::REST..).unwrap_or(&[])),
        );
        checksum::finish(s)
    }

    /// Whether the checksum is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::verify(0, self.buf.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        field::set_u16(self.buf.as_mut(), offs::CHECKSUM, value);
    }

    /// Recomputes the checksum from scratch.
    pub fn fill_checksum(&mut self) {
        let c = self.compute_checksum();
        self.set_checksum(c);
    }

    /// Sets type and code, updating the checksum incrementally.
    pub fn set_type_code(&mut self, msg_type: u8, code: u8) {
        let b = self.buf.as_mut();
        let old = field::get_u16(b, offs::TYPE);
        let new = u16::from_be_bytes([msg_type, code]);
        field::set_u16(b, offs::TYPE, new);
        let c = checksum::incremental_update16(field::get_u16(b, offs::CHECKSUM), old, new);
        // A result of 0 can stand for an all-zero message, whose
        // checksum is 0xffff: recompute in that (rare) case.
        if c == 0 {
            self.fill_checksum();
        } else {
            field::set_u16(b, offs::CHECKSUM, c);
        }
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
    use etherparse::{IcmpEchoHeader, Icmpv4Type, PacketBuilder};

    #[test]
    fn echo_roundtrip() {
        let mut v = vec![];
        PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
            .icmpv4_echo_request(0x77, 3)
            .write(&mut v, b"ping")
            .unwrap();
        let mut i = Icmpv4Packet::new_checked(&mut v[20..]).unwrap();
        assert_eq!(i.msg_type(), TYPE_ECHO_REQUEST);
        assert_eq!(i.code(), 0);
        assert_eq!((i.echo_ident(), i.echo_seq()), (0x77, 3));
        assert_eq!(i.rest_of_header(), [0, 0x77, 0, 3]);
        assert_eq!(i.payload(), b"ping");
        assert!(i.verify_checksum());
        assert_eq!(i.compute_checksum(), i.checksum());
        i.set_msg_type(TYPE_ECHO_REPLY);
        assert!(i.verify_checksum());
        i.payload_mut()[0] = b'P';
        i.fill_checksum();
        let s = Icmpv4Slice::from_slice(&v[20..]).unwrap();
        assert_eq!(
            s.icmp_type(),
            Icmpv4Type::EchoReply(IcmpEchoHeader { id: 0x77, seq: 3 })
        );
        assert_eq!(s.checksum(), s.icmp_type().calc_checksum(s.payload()));
    }

    #[test]
    fn all_zero_reply_checksum() {
        // echo request with id 0, seq 0 and no payload: the reply is all
        // zero and its checksum must be 0xffff.
        let mut b = [8u8, 0, 0, 0, 0, 0, 0, 0];
        let mut i = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        i.fill_checksum();
        i.set_msg_type(TYPE_ECHO_REPLY);
        assert_eq!(i.checksum(), 0xffff);
        assert!(i.verify_checksum());
        assert!(Icmpv4Packet::new_checked(&b[..7]).is_err());
    }
}
