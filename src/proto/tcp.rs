//! TCP segments (RFC 9293).

use core::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{IpNumber, TcpOptionsIterator, TcpSlice};

use crate::proto::checksum::{self, ChecksumState, ZeroField};
use crate::proto::field;
use crate::proto::ProtoError;

mod offs {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const OFF_FLAGS: usize = 12;
    pub const WINDOW: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const OPTIONS: usize = 20;
}

/// TCP flags (the low 9 bits of the data-offset/flags word). A plain
/// newtype: any bit pattern read from the wire is representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x001);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x002);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x004);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x008);
    /// Acknowledgment field significant.
    pub const ACK: TcpFlags = TcpFlags(0x010);
    /// Urgent pointer field significant.
    pub const URG: TcpFlags = TcpFlags(0x020);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x040);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x080);
    /// ECN nonce (historic, RFC 3540).
    pub const NS: TcpFlags = TcpFlags(0x100);

    /// Whether every flag of `other` is set in `self`.
    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// A view of a TCP segment: header with options, then payload up to the end
/// of the buffer (give it exactly the IP upper-layer data).
///
/// No accessor panics once [`TcpPacket::new_checked`] succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T> {
    buf: T,
    header_len: usize,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Length of a header without options.
    pub const MIN_HEADER_LEN: usize = 20;

    /// Wraps `buf` after checking with etherparse's `TcpSlice` that the
    /// data offset is at least 5 and the header fits in `buf`.
    pub fn new_checked(buf: T) -> Result<Self, ProtoError> {
        let s = TcpSlice::from_slice(buf.as_ref())?;
        let header_len = s.header_slice().len();
        Ok(Self { buf, header_len })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The segment.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        field::get_u32(self.buf.as_ref(), offs::SEQ)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        field::get_u32(self.buf.as_ref(), offs::ACK)
    }

    /// Header length in bytes (data offset × 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The flags.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(field::get_u16(self.buf.as_ref(), offs::OFF_FLAGS) & 0x01ff)
    }

    /// Window size.
    #[inline]
    pub fn window(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::WINDOW)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_ptr(&self) -> u16 {
        field::get_u16(self.buf.as_ref(), offs::URGENT)
    }

    /// The raw options (empty without options).
    #[inline]
    pub fn options(&self) -> &[u8] {
        field::range(self.buf.as_ref(), offs::OPTIONS, self.header_len)
    }

    /// The options decoded one by one (etherparse's iterator; malformed
    /// options come out as errors, never panics).
    pub fn options_iter(&self) -> TcpOptionsIterator<'_> {
        TcpOptionsIterator::from_slice(self.options())
    }

    /// The payload.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(self.header_len..).unwrap_or(&[])
    }

    /// The checksum for the given pseudo-header sum, computed with the
    /// checksum field taken as zero.
    pub fn compute_checksum(&self, pseudo_header_sum: u16) -> u16 {
        let b = self.buf.as_ref();
        let mut s = checksum::add(
            pseudo_header_sum,
            checksum::sum(field::range(b, 0, offs::CHECKSUM)),
        );
        s = checksum::add(s, checksum::sum(b.get(offs::URGENT..).unwrap_or(&[])));
        checksum::finish(s)
    }

    /// Pseudo-header sum for this segment over IPv4.
    pub fn pseudo_header_sum_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let len = u16::try_from(self.buf.as_ref().len()).unwrap_or(u16::MAX);
        checksum::pseudo_header_v4(src.octets(), dst.octets(), IpNumber::TCP, len)
    }

    /// Pseudo-header sum for this segment over IPv6.
    pub fn pseudo_header_sum_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> u16 {
        let len = u32::try_from(self.buf.as_ref().len()).unwrap_or(u32::MAX);
        checksum::pseudo_header_v6(src.octets(), dst.octets(), IpNumber::TCP, len)
    }

    /// Whether the checksum is right for the given pseudo-header sum.
    pub fn verify_checksum(&self, pseudo_header_sum: u16) -> bool {
        checksum::verify(pseudo_header_sum, self.buf.as_ref())
    }

    /// What the checksum field holds, from the header alone (constant time):
    /// [`ChecksumState::Partial`] or [`ChecksumState::Unverified`] (zero is
    /// an ordinary TCP checksum value).
    #[inline]
    pub fn checksum_state(&self, pseudo_header_sum: u16) -> ChecksumState {
        checksum::classify(self.checksum(), pseudo_header_sum, ZeroField::Value)
    }

    /// [`TcpPacket::checksum_state`] over IPv4.
    #[inline]
    pub fn checksum_state_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> ChecksumState {
        self.checksum_state(self.pseudo_header_sum_v4(src, dst))
    }

    /// [`TcpPacket::checksum_state`] over IPv6.
    #[inline]
    pub fn checksum_state_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> ChecksumState {
        self.checksum_state(self.pseudo_header_sum_v6(src, dst))
    }

    /// What the checksum field holds, reading the payload: never
    /// [`ChecksumState::Unverified`]. See [`checksum::classify_verified`].
    pub fn verify(&self, pseudo_header_sum: u16) -> ChecksumState {
        checksum::classify_verified(
            self.checksum(),
            pseudo_header_sum,
            ZeroField::Value,
            self.buf.as_ref(),
        )
    }

    /// [`TcpPacket::verify`] over IPv4.
    pub fn verify_v4(&self, src: Ipv4Addr, dst: Ipv4Addr) -> ChecksumState {
        self.verify(self.pseudo_header_sum_v4(src, dst))
    }

    /// [`TcpPacket::verify`] over IPv6.
    pub fn verify_v6(&self, src: Ipv6Addr, dst: Ipv6Addr) -> ChecksumState {
        self.verify(self.pseudo_header_sum_v6(src, dst))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        field::set_u16(self.buf.as_mut(), offs::CHECKSUM, value);
    }

    /// Recomputes the checksum from scratch.
    pub fn fill_checksum(&mut self, pseudo_header_sum: u16) {
        let c = self.compute_checksum(pseudo_header_sum);
        self.set_checksum(c);
    }

    /// [`TcpPacket::fill_checksum`] over IPv4.
    pub fn fill_checksum_v4(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let p = self.pseudo_header_sum_v4(src, dst);
        self.fill_checksum(p);
    }

    /// [`TcpPacket::fill_checksum`] over IPv6.
    pub fn fill_checksum_v6(&mut self, src: Ipv6Addr, dst: Ipv6Addr) {
        let p = self.pseudo_header_sum_v6(src, dst);
        self.fill_checksum(p);
    }

    /// Updates the checksum incrementally after covered data whose sum was
    /// `old_sum` now sums to `new_sum`.
    #[inline]
    pub fn adjust_checksum(&mut self, old_sum: u16, new_sum: u16) {
        let b = self.buf.as_mut();
        let c = checksum::incremental_update16(field::get_u16(b, offs::CHECKSUM), old_sum, new_sum);
        field::set_u16(b, offs::CHECKSUM, c);
    }

    fn set_word(&mut self, off: usize, new: u16) {
        let old = field::get_u16(self.buf.as_ref(), off);
        field::set_u16(self.buf.as_mut(), off, new);
        self.adjust_checksum(old, new);
    }

    fn set_dword(&mut self, off: usize, new: u32) {
        let old = field::get_u32(self.buf.as_ref(), off);
        field::set_u32(self.buf.as_mut(), off, new);
        let b = self.buf.as_mut();
        let c = checksum::incremental_update32(field::get_u16(b, offs::CHECKSUM), old, new);
        field::set_u16(b, offs::CHECKSUM, c);
    }

    /// Sets the source port (checksum updated incrementally).
    pub fn set_src_port(&mut self, port: u16) {
        self.set_word(offs::SRC_PORT, port);
    }

    /// Sets the destination port (checksum updated incrementally).
    pub fn set_dst_port(&mut self, port: u16) {
        self.set_word(offs::DST_PORT, port);
    }

    /// Swaps the ports (the checksum does not change).
    #[inline]
    pub fn swap_ports(&mut self) {
        field::swap::<2>(self.buf.as_mut(), offs::SRC_PORT, offs::DST_PORT);
    }

    /// Sets the sequence number (checksum updated incrementally).
    pub fn set_seq_number(&mut self, seq: u32) {
        self.set_dword(offs::SEQ, seq);
    }

    /// Sets the acknowledgment number (checksum updated incrementally).
    pub fn set_ack_number(&mut self, ack: u32) {
        self.set_dword(offs::ACK, ack);
    }

    /// Sets the flags, keeping the data offset (checksum updated
    /// incrementally; only the low 9 bits of `flags` are used).
    pub fn set_flags(&mut self, flags: TcpFlags) {
        let old = field::get_u16(self.buf.as_ref(), offs::OFF_FLAGS);
        self.set_word(offs::OFF_FLAGS, (old & 0xfe00) | (flags.0 & 0x01ff));
    }

    /// Sets the window (checksum updated incrementally).
    pub fn set_window(&mut self, window: u16) {
        self.set_word(offs::WINDOW, window);
    }

    /// Mutable access to the payload.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len;
        self.buf.as_mut().get_mut(h..).unwrap_or(&mut [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Layer, ProtoError};
    use etherparse::{PacketBuilder, TcpHeader, TcpOptionElement};

    fn segment_v6() -> Vec<u8> {
        let mut v = vec![];
        PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .tcp(443, 50000, 0x1122_3344, 4096)
            .syn()
            .ack(0x5566_7788)
            .options(&[
                TcpOptionElement::MaximumSegmentSize(1460),
                TcpOptionElement::WindowScale(7),
                TcpOptionElement::SelectiveAcknowledgementPermitted,
                TcpOptionElement::Timestamp(1, 2),
            ])
            .unwrap()
            .write(&mut v, b"data")
            .unwrap();
        v
    }

    #[test]
    fn read_with_options() {
        let v = segment_v6();
        let t = TcpPacket::new_checked(&v[40..]).unwrap();
        let e = TcpHeader::from_slice(&v[40..]).unwrap().0;
        assert_eq!((t.src_port(), t.dst_port()), (443, 50000));
        assert_eq!(t.seq_number(), 0x1122_3344);
        assert_eq!(t.ack_number(), 0x5566_7788);
        assert_eq!(t.window(), 4096);
        assert!(t.flags().contains(TcpFlags::SYN | TcpFlags::ACK));
        assert!(!t.flags().contains(TcpFlags::FIN));
        assert_eq!(t.header_len(), e.header_len());
        assert_eq!(t.options(), e.options.as_slice());
        let opts: Vec<_> = t.options_iter().map(|o| o.unwrap()).collect();
        assert_eq!(opts[0], TcpOptionElement::MaximumSegmentSize(1460));
        assert_eq!(t.payload(), b"data");
        assert_eq!(t.urgent_ptr(), 0);
        let (s, d) = (Ipv6Addr::from([1; 16]), Ipv6Addr::from([2; 16]));
        assert!(t.verify_checksum(t.pseudo_header_sum_v6(s, d)));
        assert_eq!(
            t.checksum(),
            t.compute_checksum(t.pseudo_header_sum_v6(s, d))
        );
    }

    #[test]
    fn edits_keep_checksum() {
        let mut v = segment_v6();
        let (s, d) = (Ipv6Addr::from([1; 16]), Ipv6Addr::from([2; 16]));
        let mut t = TcpPacket::new_checked(&mut v[40..]).unwrap();
        t.set_src_port(1);
        t.set_dst_port(2);
        t.set_seq_number(0xffff_0000);
        t.set_ack_number(3);
        t.set_flags(TcpFlags::FIN | TcpFlags::ACK | TcpFlags::NS);
        t.set_window(0);
        t.swap_ports();
        let p = t.pseudo_header_sum_v6(s, d);
        assert!(t.verify_checksum(p));
        let c = t.checksum();
        t.fill_checksum_v6(s, d);
        assert_eq!(c, t.checksum());
        t.payload_mut()[0] = b'D';
        let e = TcpHeader::from_slice(&v[40..]).unwrap().0;
        assert_eq!((e.source_port, e.destination_port), (2, 1));
        assert!(e.fin && e.ack && e.ns && !e.syn);
        assert_eq!(e.sequence_number, 0xffff_0000);
        assert_eq!(e.options.as_slice().len(), 20);
    }

    #[test]
    fn errors() {
        let v = segment_v6();
        let mut b = v[40..].to_vec();
        b[12] = 0x40; // data offset 4
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            ProtoError::BadHeaderLen {
                layer: Layer::Tcp,
                value: 4
            }
        );
        b[12] = 0xf0; // 60 bytes of header, more than there is
        assert!(matches!(
            TcpPacket::new_checked(&b[..44]),
            Err(ProtoError::Truncated {
                layer: Layer::Tcp,
                ..
            })
        ));
        assert!(TcpPacket::new_checked(&b[..19]).is_err());
    }
}
